/*
 * The benchmark's target: a process holding N MiB of anonymous memory whose
 * contents are checked after it has been checkpointed and restored.
 *
 * usage: memhog [-m MiB] [-p random|zero|text|sparse]
 *
 *	random	incompressible data in every page (the default, the worst case)
 *	zero	every page written with zeros: present, but trivially compressible
 *	text	repeated ASCII lines: compressible like a typical heap
 *	sparse	one page in SPARSE_STRIDE_PAGES written, the rest never touched
 *		(not present, so not in the image)
 *
 * It fills the memory, prints "READY pid=P mib=N pattern=X hash=H" on
 * stdout, waits for SIGTERM, then hashes everything again and prints PASS
 * or "FAIL: why", exiting 0 or 1. Pages never touched must still read as
 * zeros: a restore may not invent data.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB			(1024UL * 1024)
#define PAGE_BYTES		4096UL
#define DEFAULT_MIB		1024
#define SPARSE_STRIDE_PAGES	16

enum pattern { PAT_RANDOM, PAT_ZERO, PAT_TEXT, PAT_SPARSE };
static const char *const pattern_names[] = { "random", "zero", "text", "sparse" };

static volatile sig_atomic_t got_sigterm;

static void on_sigterm(int sig)
{
	(void)sig;
	got_sigterm = 1;
}

static int is_written(enum pattern pat, size_t page)
{
	return pat != PAT_SPARSE || page % SPARSE_STRIDE_PAGES == 0;
}

static void fill(uint8_t *mem, size_t bytes, enum pattern pat)
{
	static const char line[] = "the quick brown fox jumps over the lazy dog, line ";
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	char text[96];

	for (size_t page = 0; page < bytes / PAGE_BYTES; page++) {
		uint8_t *p = mem + page * PAGE_BYTES;

		if (!is_written(pat, page))
			continue;
		switch (pat) {
		case PAT_ZERO:
			memset(p, 0, PAGE_BYTES);
			break;
		case PAT_TEXT:
			for (size_t off = 0; off < PAGE_BYTES;) {
				int n = snprintf(text, sizeof(text), "%s%zu\n", line, page);
				size_t k = PAGE_BYTES - off < (size_t)n ? PAGE_BYTES - off : (size_t)n;

				memcpy(p + off, text, k);
				off += k;
			}
			break;
		case PAT_RANDOM:
		case PAT_SPARSE:
			for (size_t w = 0; w < PAGE_BYTES / sizeof(x); w++) {	/* xorshift64 */
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				memcpy(p + w * sizeof(x), &x, sizeof(x));
			}
			break;
		}
	}
}

/*
 * Hash of the written pages; *stray counts untouched pages that are not
 * all zeros. Untouched pages are only read at verification, so that the
 * checkpoint sees them as never faulted in.
 */
static uint64_t hash(const uint8_t *mem, size_t bytes, enum pattern pat, int check_untouched,
		     size_t *stray)
{
	uint64_t h = 0xcbf29ce484222325ULL, w;

	*stray = 0;
	for (size_t page = 0; page < bytes / PAGE_BYTES; page++) {
		const uint8_t *p = mem + page * PAGE_BYTES;

		if (is_written(pat, page)) {
			for (size_t off = 0; off < PAGE_BYTES; off += sizeof(w)) {
				memcpy(&w, p + off, sizeof(w));
				h = (h ^ w) * 0x100000001b3ULL;
			}
		} else if (check_untouched) {
			for (size_t off = 0; off < PAGE_BYTES; off += sizeof(w)) {
				memcpy(&w, p + off, sizeof(w));
				if (w) {
					(*stray)++;
					break;
				}
			}
		}
	}
	return h;
}

static void usage(void)
{
	fputs("usage: memhog [-m MiB] [-p random|zero|text|sparse]\n", stderr);
	exit(64);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigterm };
	enum pattern pat = PAT_RANDOM;
	unsigned long mib = DEFAULT_MIB;
	sigset_t block, old;
	uint64_t want, got;
	size_t bytes, stray;
	uint8_t *mem;
	int c;

	while ((c = getopt(argc, argv, "m:p:")) != -1) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			for (pat = 0; pat < 4 && strcmp(optarg, pattern_names[pat]); pat++)
				;
			if (pat == 4)
				usage();
			break;
		default:
			usage();
		}
	}
	if (!mib || optind != argc)
		usage();
	bytes = mib * MIB;

	/* SIGTERM is blocked until we wait for it, so it cannot come too early. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGTERM, &sa, NULL);

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("memhog: mmap");
		return 1;
	}
	fill(mem, bytes, pat);
	want = hash(mem, bytes, pat, 0, &stray);
	/* Unbuffered: the log is a file, and the runner polls it for READY. */
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("READY pid=%d mib=%lu pattern=%s hash=%016llx\n", getpid(), mib,
	       pattern_names[pat], (unsigned long long)want);

	while (!got_sigterm)
		sigsuspend(&old);

	got = hash(mem, bytes, pat, 1, &stray);
	if (got != want)
		printf("FAIL: hash %016llx, expected %016llx\n", (unsigned long long)got,
		       (unsigned long long)want);
	else if (stray)
		printf("FAIL: %zu never-written pages are not zero\n", stray);
	else
		printf("PASS\n");
	return got != want || stray;
}
