/*
 * hog: holds MiB (argv[1], default 64) of incompressible data in one private
 * anonymous area, for the durability check of tests/robust.sh (an image
 * that cannot fit on a small file system). The test protocol: READY once
 * the data is written and hashed, then wait for SIGTERM, check the data is
 * unchanged (and still mapped where it was), print PASS or "FAIL: why".
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

static void fill(uint64_t *p, size_t words)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

static uint64_t hash(const uint64_t *p, size_t words)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < words; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	size_t size = mib << 20, words = size / 8;
	struct sigaction sa;
	uint64_t *p, before, after;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("FAIL: mmap %zu MiB\n", mib);
		return 1;
	}
	fill(p, words);
	before = hash(p, words);
	printf("# %zu MiB at %p, hash %016llx\nREADY\n", mib, (void *)p,
	       (unsigned long long)before);
	fflush(stdout);
	while (!terminated)
		pause();
	after = hash(p, words);
	if (after != before) {
		printf("FAIL: the %zu MiB changed: hash %016llx, was %016llx\n", mib,
		       (unsigned long long)after, (unsigned long long)before);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
