/*
 * mem_many_areas: 34 000 private anonymous areas of one page each, one
 * unmapped page apart so the kernel cannot merge them, each page written
 * with its own pattern. That is more than half of vm.max_map_count
 * (65 530 by default): a restore that needs two mappings per area while it
 * rebuilds the layout (as cryo's premap step once did) fails here, although
 * the process itself fits. After the restore every area must still be a
 * separate one-page mapping with its content.
 */
#include "testlib.h"

#include <sys/mman.h>

#define WANT_AREAS 34000L
#define MAPS_HEADROOM 2000L	/* the program's own mappings, and slack */
#define SEED 0x3a3a5eedULL

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long n = 0;

	if (!f || fscanf(f, "%ld", &n) != 1)
		fail("setup: cannot read /proc/sys/vm/max_map_count");
	fclose(f);
	return n;
}

/* Mappings of /proc/self/maps that start in [lo, hi), each one page long. */
static long count_one_page_maps(uintptr_t lo, uintptr_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long start, end;
	char line[512];
	long n = 0;

	CHECK(f, "cannot open /proc/self/maps");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &start, &end) != 2)
			continue;
		if (start < lo || start >= hi)
			continue;
		CHECK(end - start == PAGE, "area %lx-%lx is not one page", start, end);
		n++;
	}
	fclose(f);
	return n;
}

int main(void)
{
	long areas = WANT_AREAS, max = max_map_count();
	unsigned char *base;

	install_sigterm(SA_RESTART);
	if (areas > max - MAPS_HEADROOM)
		areas = max - MAPS_HEADROOM;
	note("%ld one-page areas (vm.max_map_count %ld)", areas, max);
	base = (void *)SYS(mmap(NULL, 2 * areas * PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	for (long i = 0; i < areas; i++) {
		uint64_t *w = (uint64_t *)(base + 2 * i * PAGE);

		SYS(munmap(base + (2 * i + 1) * PAGE, PAGE));
		for (size_t k = 0; k < PAGE / sizeof(*w); k++)
			w[k] = pattern_word(SEED + i, k);
	}
	CHECK_EQ_U64("one-page areas before", areas,
		     count_one_page_maps((uintptr_t)base, (uintptr_t)base + 2 * areas * PAGE));
	ready();
	wait_for_sigterm();

	CHECK_EQ_U64("one-page areas after the restore", areas,
		     count_one_page_maps((uintptr_t)base, (uintptr_t)base + 2 * areas * PAGE));
	for (long i = 0; i < areas; i++) {
		const uint64_t *w = (const uint64_t *)(base + 2 * i * PAGE);

		for (size_t k = 0; k < PAGE / sizeof(*w); k++)
			CHECK(w[k] == pattern_word(SEED + i, k),
			      "area %ld at %p: word %zu differs", i, (void *)w, k);
	}
	pass();
}
