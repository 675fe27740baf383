/*
 * What the libFuzzer targets of tests/fuzz share. The first input byte is a
 * mode, the rest an image. In mode bit 0 set, every checksum is recomputed
 * before reading (as a malicious writer would), so the fuzzer gets past the
 * CRCs to the meaning of the index and tables; clear, the bytes are used as
 * they are. The image is written to a memfd, read through /proc/self/fd.
 */
#ifndef CRYO_FUZZ_COMMON_H
#define CRYO_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cryo.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_quiet(const char *line, void *opaque)
{
	(void)line;
	(void)opaque;
}

static void fuzz_reseal(unsigned char *img, size_t len)
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

/* Put the input's image into the memfd; its path, or NULL for an empty input. */
static const char *fuzz_image_path(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	unsigned char *img;

	if (fd < 0) {
		/* FUZZ_VERBOSE=1: cryo's messages on stderr, to see why an input is refused */
		if (!getenv("FUZZ_VERBOSE"))
			cryo_set_log(fuzz_quiet, NULL);
		fd = memfd_create("fuzz-image", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (size < 1)
		return NULL;
	img = malloc(size);
	if (!img)
		abort();
	memcpy(img, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_reseal(img, size - 1);
	if (ftruncate(fd, 0) || pwrite(fd, img, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	free(img);
	return path;
}

#endif
