/*
 * mem_big: one 256 MiB private anonymous area, every page filled with PRNG
 * data (nothing compresses, nothing is zero), hashed before READY; after the
 * restore the hash must be the same. On a mismatch the pattern says where.
 * This is the test of the page-copy path at scale (batched reads, image
 * streaming, compression) rather than of the layout.
 */
#include "testlib.h"

#include <sys/mman.h>

#define BIG (256UL << 20)
#define SEED 0xb16b00b5cafeULL

int main(void)
{
	unsigned char *p;
	uint64_t before, after;

	install_sigterm(SA_RESTART);
	p = (void *)SYS(mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	fill_pattern(p, BIG, SEED);
	before = hash64(p, BIG);
	note("hash of the 256 MiB area: %016llx", (unsigned long long)before);
	ready();
	wait_for_sigterm();

	expect_mapped("256 MiB area", p, BIG, "rw-p");
	after = hash64(p, BIG);
	if (after != before) {
		expect_pattern("256 MiB area", p, BIG, SEED);
		fail("256 MiB area: hash %016llx, want %016llx (pattern matches?)",
		     (unsigned long long)after, (unsigned long long)before);
	}
	/* the hash and the pattern are independent: check the pattern too */
	expect_pattern("256 MiB area", p, BIG, SEED);
	pass();
}
