/*
 * libFuzzer target for the image reader (src/image/image.c): imgr_open()
 * may refuse the input but must never crash, and whatever it accepts must
 * be safe to load, section by section, as blobs and as tables. Input: one
 * mode byte, then the image (fuzz_common.h); mode bits 1-7 pick the entry
 * size asked of imgr_load_table(). Built and run by tests/fuzz/run.sh.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_image_path(data, size);
	struct img_reader *r;

	if (!path || imgr_open(&r, path))
		return 0;
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
	return 0;
}
