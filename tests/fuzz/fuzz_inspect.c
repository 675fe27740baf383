/*
 * libFuzzer target for `cryo inspect` (src/image/inspect.c): any input,
 * as text and as JSON, must print or refuse, never crash. Input: one mode
 * byte, then the image (fuzz_common.h). Built and run by tests/fuzz/run.sh.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	const char *path = fuzz_image_path(data, size);

	if (!devnull && !(devnull = fopen("/dev/null", "w")))
		abort();
	if (!path)
		return 0;
	cryo_inspect(path, devnull, 0);
	cryo_inspect(path, devnull, 1);
	return 0;
}
