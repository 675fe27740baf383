/*
 * mem_text: 56 MiB of compressible data (lines of words, each page naming
 * its own number) in a private anonymous area, with runs of zero pages in
 * between, and 24 MiB of the same in a shared anonymous area (a shmem
 * object). Under 64 MiB of private memory, so not pre-copied: the frozen
 * checkpoint's page pipe takes it all. Compressed, the private area is
 * about 25 chunks that the compression threads finish in any order and the
 * writer must put back in order; the shared object spans 12 chunks (3
 * uncompressed). A page written in the wrong place, a chunk lost or
 * doubled, a zero page not restored as zeros: all change the content
 * checked at SIGTERM.
 */
#include "testlib.h"

#include <sys/mman.h>

#define PRIV (56UL << 20)
#define SHARED (24UL << 20)

static const char *const words[] = {
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
};

/* Every 13th page, and a run of 40 pages every 1000, stays zero. */
static int zero_page(size_t i)
{
	return i % 13 == 5 || i % 1000 < 40;
}

/* Page i of an area tagged tag: words chosen by (tag, i), the page number in every line. */
static void fill_page(unsigned char *p, unsigned tag, size_t i)
{
	uint64_t s = (uint64_t)tag << 40 | i;
	size_t o = 0;

	while (o < PAGE) {
		char line[96];
		int n = snprintf(line, sizeof(line), "%s %s page %zu of %u\n",
				 words[splitmix64(&s) % ARRAY_SIZE(words)],
				 words[splitmix64(&s) % ARRAY_SIZE(words)], i, tag);

		for (int k = 0; k < n && o < PAGE; k++)
			p[o++] = (unsigned char)line[k];
	}
}

static void fill(unsigned char *a, size_t len, unsigned tag)
{
	for (size_t i = 0; i < len / PAGE; i++)
		if (zero_page(i))
			memset(a + i * PAGE, 0, PAGE);	/* touched, all zeros */
		else
			fill_page(a + i * PAGE, tag, i);
}

static void check(const char *what, const unsigned char *a, size_t len, unsigned tag)
{
	static unsigned char want[PAGE];

	for (size_t i = 0; i < len / PAGE; i++) {
		if (zero_page(i))
			memset(want, 0, PAGE);
		else
			fill_page(want, tag, i);
		if (memcmp(a + i * PAGE, want, PAGE)) {
			size_t k = 0;

			while (a[i * PAGE + k] == want[k])
				k++;
			fail("%s: page %zu differs at byte %zu: 0x%02x, want 0x%02x (%.20s...)", what,
			     i, k, a[i * PAGE + k], want[k], (const char *)a + i * PAGE);
		}
	}
}

int main(void)
{
	unsigned char *priv, *shared;

	install_sigterm(SA_RESTART);
	priv = (void *)SYS((long)mmap(NULL, PRIV, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	shared = (void *)SYS((long)mmap(NULL, SHARED, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	fill(priv, PRIV, 1);
	fill(shared, SHARED, 2);
	ready();
	wait_for_sigterm();

	expect_mapped("private area", priv, PRIV, "rw-p");
	expect_mapped("shared area", shared, SHARED, "rw-s");
	check("private area", priv, PRIV, 1);
	check("shared area", shared, SHARED, 2);
	pass();
}
