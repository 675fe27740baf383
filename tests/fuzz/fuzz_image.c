/*
 * libFuzzer target for the image reader and cryo inspect:
 *
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       -Iinclude -Isrc tests/fuzz/fuzz_image.c src/image/{image,crc32c,strtab,inspect}.c \
 *       src/util/util.c -o build/fuzz_image
 *   build/fuzz_image -max_len=65536 CORPUS_DIR
 *
 * Seed the corpus with small real images, each prefixed by one mode byte
 * (e.g. `{ printf '\1'; cat small.cryo; } > corpus/seed1`).
 *
 * The first input byte selects a mode, the rest is the image. In mode 1 the
 * target recomputes every checksum before reading (as a malicious writer
 * would), so the fuzzer gets past the CRCs and exercises the semantic
 * checks of the index and sections; in mode 0 the bytes are used as they
 * are. Either way imgr_open() may refuse the image but must never crash,
 * and whatever it accepts must be safe to load and to inspect.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cryo.h"
#include "image/image.h"

static void quiet(const char *line, void *opaque)
{
	(void)line;
	(void)opaque;
}

static void reseal(unsigned char *img, size_t len)
{
	struct cryo_file_header *h = (void *)img;
	struct cryo_section_header sh, s2;
	struct cryo_img_index_entry e;
	struct cryo_footer f;
	uint64_t io;

	if (len < sizeof(*h) + sizeof(f))
		return;
	if (h->header_size >= sizeof(*h) && h->header_size <= len && h->header_size % 4 == 0) {
		uint32_t crc = crc32c(0, img, h->header_size - 4);

		memcpy(img + h->header_size - 4, &crc, 4);
	}
	memcpy(&f, img + len - sizeof(f), sizeof(f));
	io = f.index_offset;
	if (io < len && len - io >= sizeof(sh) + sizeof(f)) {
		uint64_t room = len - io - sizeof(sh) - sizeof(f), plen;

		memcpy(&sh, img + io, sizeof(sh));
		plen = sh.length < room ? sh.length : room;
		for (uint64_t k = 0; sh.entry_size >= sizeof(e) && k < sh.entry_count &&
		     (k + 1) * sh.entry_size <= plen; k++) {
			memcpy(&e, img + io + sizeof(sh) + k * sh.entry_size, sizeof(e));
			if (e.offset >= len || len - e.offset < sizeof(s2))
				continue;
			memcpy(&s2, img + e.offset, sizeof(s2));
			uint64_t r2 = len - e.offset - sizeof(s2);

			s2.payload_crc = crc32c(0, img + e.offset + sizeof(s2),
						s2.length < r2 ? s2.length : r2);
			s2.header_crc = crc32c(0, &s2, offsetof(struct cryo_section_header,
								 header_crc));
			memcpy(img + e.offset, &s2, sizeof(s2));
		}
		sh.payload_crc = crc32c(0, img + io + sizeof(sh), plen);
		sh.header_crc = crc32c(0, &sh, offsetof(struct cryo_section_header, header_crc));
		memcpy(img + io, &sh, sizeof(sh));
	}
	f.crc = crc32c(0, &f, offsetof(struct cryo_footer, crc));
	memcpy(img + len - sizeof(f), &f, sizeof(f));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static FILE *devnull;
	static char path[64];
	struct img_reader *r;
	unsigned char *img;

	if (fd < 0) {
		cryo_set_log(quiet, NULL);
		fd = memfd_create("fuzz-image", 0);
		devnull = fopen("/dev/null", "w");
		if (fd < 0 || !devnull)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (size < 1)
		return 0;
	img = malloc(size);
	memcpy(img, data + 1, size - 1);
	if (data[0] & 1)
		reseal(img, size - 1);
	if (ftruncate(fd, 0) || pwrite(fd, img, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	free(img);

	if (imgr_open(&r, path) == 0) {
		for (size_t i = 0; i < imgr_nr_sections(r); i++) {
			uint64_t len;
			uint32_t n;

			free(imgr_load_blob(r, i, &len));
			free(imgr_load_table(r, i, 1 + (data[0] >> 1), &n));
		}
		for (uint32_t off = 0; off < 64; off++) {
			const char *s = imgr_str(r, off);

			if (s && strlen(s) > size)
				abort();
		}
		imgr_close(r);
		cryo_inspect(path, devnull, 0);
		cryo_inspect(path, devnull, 1);
	}
	return 0;
}
