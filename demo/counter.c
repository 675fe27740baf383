/*
 * The demo's target: a counter that survives being checkpointed, killed
 * and restored.
 *
 * Every half second it writes one line to stdout:
 *
 *	count 7 pid 1234 state ok
 *
 * The count lives only in memory, so after a restore it must go on from
 * where it was, not from 1. "state" checks a megabyte of pseudo-random heap
 * data against the hash taken at start: a restore that loses or corrupts
 * memory prints "state CORRUPT". On SIGTERM it prints "stopped at N" and
 * exits 0, which shows the signal handler came back too.
 *
 * Build: cc -O2 -o counter counter.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS		500000000L
#define NS_PER_S	1000000000L
#define STATE_BYTES	(1 << 20)

static volatile sig_atomic_t stop_requested;

static void on_sigterm(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t hash_bytes(const uint64_t *p, size_t n_words)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n_words; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* write() directly: stdio would buffer a whole block before the log shows it. */
static void say(const char *fmt, long a, long b, const char *s)
{
	char line[128];
	int n = snprintf(line, sizeof(line), fmt, a, b, s);

	if (write(STDOUT_FILENO, line, n) != n)
		exit(2);
}

/* Sleep half a second. */
static void tick(void)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_nsec += TICK_NS;
	if (deadline.tv_nsec >= NS_PER_S) {
		deadline.tv_sec++;
		deadline.tv_nsec -= NS_PER_S;
	}
	/*
	 * An absolute deadline and a loop: a sleep cut short by the checkpoint
	 * (the kernel cannot always restart it in a new task) just goes on,
	 * and one that ends late after a restore ends at once.
	 */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR &&
	       !stop_requested)
		;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_sigterm };
	uint64_t *state = malloc(STATE_BYTES);
	uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL | 1, want;
	size_t words = STATE_BYTES / sizeof(*state);
	long count = 0;

	if (!state)
		return 1;
	for (size_t i = 0; i < words; i++) {	/* xorshift64 */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		state[i] = x;
	}
	want = hash_bytes(state, words);
	sigaction(SIGTERM, &sa, NULL);

	while (!stop_requested) {
		count++;
		say("count %ld pid %ld state %s\n", count, (long)getpid(),
		    hash_bytes(state, words) == want ? "ok" : "CORRUPT");
		tick();
	}
	say("stopped at %ld pid %ld%s\n", count, (long)getpid(), "");
	return 0;
}
