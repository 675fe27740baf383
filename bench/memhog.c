/*
 * The benchmark's target: a process holding N MiB of anonymous memory whose
 * contents are checked after it has been checkpointed and restored.
 *
 * usage: memhog [-m MiB] [-p random|zero|text|sparse] [-s SEED]
 *
 *	random	incompressible data in every page (the default, the worst case)
 *	zero	every page written with zeros: present, but all zero
 *	text	text-like lines of words: compressible like a typical heap
 *	sparse	4 MiB of random data at the start of every 64 MiB, the rest
 *		never touched (not present, so it should not be in the image)
 *
 * (patterns.h has the details.) It fills the memory, prints
 * "READY pid=P mib=N pattern=X hash=H" on stdout and waits for signals:
 *
 *	SIGUSR1	hash the written pages again, print PASS or "FAIL: why", and
 *		go on waiting (so that the same process can be checkpointed
 *		and restored again, and checked after every restore). With the
 *		zero pattern, the pages are then written with zeros again: a
 *		restore may leave all-zero pages unpopulated, and reading them
 *		maps the kernel's zero page, so without this the next
 *		checkpoint would not see "zero-filled but touched" memory.
 *	SIGTERM	the same, and check that every page never written reads as
 *		zeros (a restore may not invent data); exit 0 or 1.
 *		Untouched pages are read only then, so that until the end a
 *		checkpoint sees them as never faulted in.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "patterns.h"

#define MIB		(1024UL * 1024)
#define DEFAULT_MIB	1024

static volatile sig_atomic_t got_sigterm, got_sigusr1;

static void on_signal(int sig)
{
	if (sig == SIGTERM)
		got_sigterm = 1;
	else
		got_sigusr1 = 1;
}

/* Print PASS or FAIL; returns 0 if PASS. */
static int verify(const uint8_t *mem, size_t bytes, enum pattern pat, uint64_t want,
		  int check_untouched)
{
	size_t stray = 0;
	uint64_t got = pattern_hash(mem, bytes, 0, pat, PATTERN_HASH_INIT, check_untouched,
				    &stray);

	if (got != want)
		printf("FAIL: hash %016llx, expected %016llx\n", (unsigned long long)got,
		       (unsigned long long)want);
	else if (stray)
		printf("FAIL: %zu never-written pages are not zero\n", stray);
	else
		printf("PASS\n");
	return got != want || stray;
}

static void usage(void)
{
	fputs("usage: memhog [-m MiB] [-p random|zero|text|sparse] [-s SEED]\n", stderr);
	exit(64);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	enum pattern pat = PAT_RANDOM;
	unsigned long mib = DEFAULT_MIB;
	uint64_t seed = 1, want;
	sigset_t block, old;
	size_t bytes, stray = 0;
	uint8_t *mem;
	int c;

	while ((c = getopt(argc, argv, "m:p:s:")) != -1) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			c = pattern_by_name(optarg);
			if (c < 0)
				usage();
			pat = c;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (!mib || optind != argc)
		usage();
	bytes = mib * MIB;

	/* The signals are blocked until we wait for them, so they cannot come too early. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("memhog: mmap");
		return 1;
	}
	pattern_fill(mem, bytes, 0, pat, seed);
	want = pattern_hash(mem, bytes, 0, pat, PATTERN_HASH_INIT, 0, &stray);
	/* Unbuffered: the log is a file, and the runner polls it for READY. */
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("READY pid=%d mib=%lu pattern=%s hash=%016llx\n", getpid(), mib,
	       pattern_names[pat], (unsigned long long)want);

	for (;;) {
		while (!got_sigterm && !got_sigusr1)
			sigsuspend(&old);
		if (got_sigterm)
			return verify(mem, bytes, pat, want, 1);
		got_sigusr1 = 0;
		verify(mem, bytes, pat, want, 0);
		if (pat == PAT_ZERO)
			pattern_fill(mem, bytes, 0, pat, seed);
	}
}
