/*
 * static_counter_static: a statically linked program (built with -static:
 * no ld.so, no shared libc; glibc puts the main thread's TLS block on the
 * brk heap and resolves its IFUNCs itself).
 *
 * State: __thread variables (an initialized one from .tdata, a zeroed one
 * from .tbss that is then written), malloc'd blocks holding patterns, and
 * a counter loop: every 10 ms it bumps a global counter, a TLS counter and
 * a counter on its stack together; READY is printed after the first 10
 * rounds. The loop runs until SIGTERM, also across the checkpoint.
 *
 * After SIGTERM: the three counters agree (state lost or mixed up from
 * different moments would not), they went on after READY, the TLS values
 * and the heap blocks are intact, %fs still points at this thread's TLS
 * (__builtin_thread_pointer matches the address recorded), and the vDSO
 * clock still works (CLOCK_MONOTONIC moves forward).
 */
#include "testlib.h"

#define NBLOCKS 64

static __thread uint64_t tls_init = 0x7157da7a;	/* .tdata */
static __thread uint64_t tls_zero;			/* .tbss */
static __thread long tls_count;
static volatile long count;
static unsigned char *blocks[NBLOCKS];
static size_t lens[NBLOCKS];

int main(void)
{
	volatile long stack_count = 0;
	uint64_t rng = 42;
	void *tp = __builtin_thread_pointer();
	long at_ready = -1;

	install_sigterm(SA_RESTART);
	tls_zero = 0x2e2e2e2e5eed;
	for (int i = 0; i < NBLOCKS; i++) {
		lens[i] = 1 + splitmix64(&rng) % 50000;
		blocks[i] = malloc(lens[i]);
		if (!blocks[i])
			fail("setup: malloc failed");
		fill_pattern(blocks[i], lens[i], 0x57a7 + i);
	}
	while (!got_sigterm) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		count++;
		tls_count++;
		stack_count++;
		if (count == 10) {
			at_ready = count;
			ready();
		}
		nanosleep(&ts, NULL);
	}
	double t1 = now_mono();

	CHECK(at_ready == 10, "the loop ended before READY (count %ld)", count);
	CHECK(count == tls_count && count == stack_count,
	      "counters disagree: global %ld, TLS %ld, stack %ld", count, tls_count,
	      (long)stack_count);
	CHECK(count > at_ready, "the counter did not move after READY (%ld)", count);
	CHECK(__builtin_thread_pointer() == tp, "thread pointer %p, want %p",
	      __builtin_thread_pointer(), tp);
	CHECK_EQ_U64("TLS .tdata variable", 0x7157da7a, tls_init);
	CHECK_EQ_U64("TLS .tbss variable", 0x2e2e2e2e5eed, tls_zero);
	for (int i = 0; i < NBLOCKS; i++) {
		char what[64];
		snprintf(what, sizeof(what), "heap block %d", i);
		expect_pattern(what, blocks[i], lens[i], 0x57a7 + i);
	}
	double t2 = now_mono();
	CHECK(t2 >= t1 && t1 > 0, "CLOCK_MONOTONIC went backwards (%.6f then %.6f)", t1, t2);
	void *p = malloc(100000);
	CHECK(p != NULL, "malloc after restore failed");
	free(p);
	note("counter at READY %ld, at SIGTERM %ld", at_ready, count);
	pass();
}
