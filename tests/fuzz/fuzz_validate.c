/*
 * libFuzzer target for the restore-side validation (phase 10,
 * src/restore/10-validate.c): restore_validate_only() runs the very code
 * cryo restore runs before it creates any task, and creates none. Any
 * input must be accepted or refused, never crash, leak or hang. Input: one
 * mode byte, then the image (fuzz_common.h). Built and run by
 * tests/fuzz/run.sh.
 */
#include "fuzz_common.h"
#include "restore/restore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cryo_restore_opts opts = { 0 };

	opts.image = fuzz_image_path(data, size);
	if (opts.image)
		restore_validate_only(&opts);
	return 0;
}
