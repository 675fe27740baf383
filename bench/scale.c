/*
 * The scaling benchmark's target: a process with a chosen amount of memory,
 * number of memory areas (VMAs) and number of threads, whose state is
 * checked after it has been checkpointed and restored.
 *
 * usage: scale [--mib N] [--vmas N] [--threads N] [--pattern P] [--seed S]
 *
 *	--mib N		memory, split evenly between the areas (rounded down to
 *			whole pages, at least one page each; default 64)
 *	--vmas N	separate anonymous private read-write areas, one page
 *			apart so the kernel cannot merge them (default 1)
 *	--threads N	threads in all, the main one included (default 1); the
 *			others wait on a condition variable with 64 KiB stacks
 *	--pattern P	random (default), zero, text or sparse (patterns.h)
 *
 * It prints "READY pid=P vmas=N threads=N bytes=B" on stdout, then waits:
 * on SIGUSR1 it checks its state, prints PASS or "FAIL: why" and goes on
 * waiting; on SIGTERM it checks, prints and exits 0 or 1. The check: the
 * hash of every area, that every area is still where it was, and that every
 * other thread wakes up and answers (so the threads really run again).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "patterns.h"

#define MIB			(1024UL * 1024)
#define THREAD_STACK_BYTES	(64 * 1024)
#define ANSWER_TIMEOUT_S	30

static volatile sig_atomic_t got_sigterm, got_sigusr1;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, answered = PTHREAD_COND_INITIALIZER;
static unsigned generation, answers;

static void on_signal(int sig)
{
	if (sig == SIGTERM)
		got_sigterm = 1;
	else
		got_sigusr1 = 1;
}

/* Every other thread: wait for a new generation, answer, wait again. */
static void *waiter(void *arg)
{
	unsigned seen = 0;

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (generation == seen)
			pthread_cond_wait(&wake, &lock);
		seen = generation;
		answers++;
		pthread_cond_signal(&answered);
	}
	return NULL;
}

/* Wake every other thread; 0 if all nthreads - 1 answered in time. */
static int call_threads(unsigned others, unsigned *got)
{
	struct timespec deadline;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ANSWER_TIMEOUT_S;
	pthread_mutex_lock(&lock);
	answers = 0;
	generation++;
	pthread_cond_broadcast(&wake);
	while (answers < others && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&answered, &lock, &deadline);
	*got = answers;
	pthread_mutex_unlock(&lock);
	return *got == others ? 0 : -1;
}

static unsigned count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct {
	uint8_t **area;
	unsigned nr;
	size_t bytes;	/* each */
	enum pattern pat;
	uint64_t want;
} mem;

static uint64_t hash_all(int check_untouched, size_t *stray)
{
	uint64_t h = PATTERN_HASH_INIT;

	*stray = 0;
	for (unsigned i = 0; i < mem.nr; i++)
		h = pattern_hash(mem.area[i], mem.bytes, i * (mem.bytes / PAT_PAGE_BYTES), mem.pat,
				 h, check_untouched, stray);
	return h;
}

/* PASS or FAIL on stdout; 0 if PASS. */
static int verify(unsigned threads, int final)
{
	size_t stray = 0;
	uint64_t got = hash_all(final, &stray);
	unsigned tasks = count_tasks(), answers;

	if (got != mem.want)
		printf("FAIL: hash %016llx, expected %016llx\n", (unsigned long long)got,
		       (unsigned long long)mem.want);
	else if (stray)
		printf("FAIL: %zu never-written pages are not zero\n", stray);
	else if (tasks != threads)
		printf("FAIL: %u threads, expected %u\n", tasks, threads);
	else if (call_threads(threads - 1, &answers))
		printf("FAIL: %u of %u threads answered\n", answers, threads - 1);
	else {
		printf("PASS\n");
		return 0;
	}
	return 1;
}

/*
 * nr areas of `bytes` each, one unmapped page between neighbours: a
 * PROT_NONE reservation first, so nothing else lands in the gaps meanwhile.
 */
static int map_areas(unsigned nr, size_t bytes)
{
	size_t step = bytes + PAT_PAGE_BYTES, span = step * nr;
	uint8_t *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     -1, 0);

	if (base == MAP_FAILED)
		return -errno;
	mem.area = calloc(nr, sizeof(*mem.area));
	if (!mem.area)
		return -ENOMEM;
	for (unsigned i = 0; i < nr; i++) {
		uint8_t *p = base + i * step;

		if (mmap(p, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) == MAP_FAILED)
			return -errno;
		if (munmap(p + bytes, PAT_PAGE_BYTES))
			return -errno;
		mem.area[i] = p;
	}
	mem.nr = nr;
	mem.bytes = bytes;
	return 0;
}

static void usage(void)
{
	fputs("usage: scale [--mib N] [--vmas N] [--threads N] [--pattern P] [--seed S]\n", stderr);
	exit(64);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "vmas", required_argument, NULL, 'v' },
		{ "threads", required_argument, NULL, 't' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ 0 }
	};
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned long mib = 64, vmas = 1, threads = 1;
	uint64_t seed = 1;
	sigset_t block, old;
	pthread_attr_t attr;
	size_t per_area, stray;
	unsigned answers;
	int c, ret;

	mem.pat = PAT_RANDOM;
	while ((c = getopt_long(argc, argv, "m:v:t:p:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			vmas = strtoul(optarg, NULL, 10);
			break;
		case 't':
			threads = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			c = pattern_by_name(optarg);
			if (c < 0)
				usage();
			mem.pat = c;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !mib || !vmas || vmas > 1000000 || !threads || threads > 100000)
		usage();
	per_area = mib * MIB / vmas / PAT_PAGE_BYTES * PAT_PAGE_BYTES;
	if (!per_area)
		per_area = PAT_PAGE_BYTES;

	/* Signals wait until we wait for them; the threads inherit the mask. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	ret = map_areas(vmas, per_area);
	if (ret) {
		fprintf(stderr, "scale: mapping %lu areas: %s\n", vmas, strerror(-ret));
		return 1;
	}
	for (unsigned i = 0; i < mem.nr; i++)
		pattern_fill(mem.area[i], per_area, i * (per_area / PAT_PAGE_BYTES), mem.pat, seed);
	mem.want = hash_all(0, &stray);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
	for (unsigned long i = 1; i < threads; i++) {
		pthread_t t;

		ret = pthread_create(&t, &attr, waiter, NULL);
		if (ret) {
			fprintf(stderr, "scale: thread %lu: %s\n", i, strerror(ret));
			return 1;
		}
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	/* Every thread has answered once: all are waiting when READY is seen. */
	if (call_threads(threads - 1, &answers)) {
		fprintf(stderr, "scale: %u of %lu threads answered\n", answers, threads - 1);
		return 1;
	}
	printf("READY pid=%d vmas=%lu threads=%lu bytes=%zu\n", getpid(), vmas, threads,
	       per_area * vmas);

	for (;;) {
		while (!got_sigterm && !got_sigusr1)
			sigsuspend(&old);
		if (got_sigterm)
			return verify(threads, 1);
		got_sigusr1 = 0;
		verify(threads, 0);
	}
}
