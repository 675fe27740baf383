/*
 * mem_precopy: memory that keeps changing during the checkpoint. With more
 * than 64 MiB of anonymous memory cryo copies memory while the program
 * still runs (pre-copy) and then, frozen, only what changed: a page written
 * during that window and restored from its first copy would bring back an
 * old generation.
 *
 * Writers (three threads, and a child process) cycle through their region:
 * before writing generation g into page k they check it still holds
 * generation g - N (or the first one) and that the log agrees; after
 * writing they log g and bump their counter. Another thread replaces a
 * small area with MAP_FIXED (old pages unmapped, a new area mapped) and
 * fills it, drops pages with MADV_DONTNEED, and swaps the contents of two
 * areas with three mremap(MREMAP_DONTUNMAP) through a third: pages never
 * written since they were filled, that land where other pages were, in an
 * area the kernel made anew. All checked the same way.
 * 80 MiB of ballast never change (on transparent huge pages, like one
 * writer's region). A slow writer visits each page of its region once per
 * pass of seconds, longer than a checkpoint: a page it writes after its
 * copy is written once, not again before the freeze (so the copy must
 * not start before the page is write-protected). After SIGTERM everything
 * must agree with the counters: every page, log entry and the ballast.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define WRITERS 3
#define REGION_PAGES 2048
#define BALLAST_BYTES (80ul << 20)
#define CHURN_PAGES 16
#define DROP_PAGES 64
#define PAUSE_EVERY_PAGES 8
#define PAUSE_NS 200000
#define SLOW_PAUSE_NS 1000000	/* the slow writer: one page per millisecond */
#define CHURN_PAUSE_NS 1000000	/* the churner: its remaps make a maps read racy */
#define SLOW_ID 20

struct writer {
	int id;
	uint8_t *region;
	uint64_t *log;		/* per page: the generation it holds */
	_Atomic uint64_t count;	/* last generation completed */
	pthread_t thread;
};

static struct writer writers[WRITERS + 1];	/* the last one runs in the child */
static struct writer slow_writer;
static uint8_t *ballast, *churn, *dropped, *swap_a, *swap_b, *swap_s;
static _Atomic uint64_t churn_gen, drop_step, swaps;
static uint64_t drop_gen[DROP_PAGES];
static int drop_zero[DROP_PAGES];
static atomic_int stop;
static char trouble[512];	/* first inconsistency a worker saw */

static uint64_t page_seed(int region, uint64_t k, uint64_t gen)
{
	return ((uint64_t)(region + 1) << 56) ^ (k << 32) ^ (gen + 1);
}

static void complain(const char *fmt, ...)
{
	va_list ap;

	if (trouble[0])
		return;
	va_start(ap, fmt);
	vsnprintf(trouble, sizeof(trouble), fmt, ap);
	va_end(ap);
	atomic_store(&stop, 1);
}

static long first_nonzero(const uint8_t *p, size_t len)
{
	for (long i = 0; i < (long)len; i++)
		if (p[i])
			return i;
	return -1;
}

#define SWAP_SEED_A 0x5a
#define SWAP_SEED_B 0x5b
static const char *swap_what;

/* Are A, B and S what the number of swaps says? (off: first bad byte) */
static int swap_check(long *off)
{
	int odd = atomic_load(&swaps) % 2;

	swap_what = "area A";
	*off = check_pattern(swap_a, CHURN_PAGES * PAGE, odd ? SWAP_SEED_B : SWAP_SEED_A);
	if (*off < 0) {
		swap_what = "area B";
		*off = check_pattern(swap_b, CHURN_PAGES * PAGE, odd ? SWAP_SEED_A : SWAP_SEED_B);
	}
	if (*off < 0) {
		swap_what = "area S (should be empty)";
		*off = first_nonzero(swap_s, CHURN_PAGES * PAGE);
	}
	return *off >= 0;
}

/* Move the pages of from onto to; from stays mapped, empty. */
static int move(uint8_t *from, uint8_t *to)
{
	if (mremap(from, CHURN_PAGES * PAGE, CHURN_PAGES * PAGE,
		   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) == to)
		return 0;
	complain("mremap MREMAP_DONTUNMAP: %s", strerror(errno));
	return -1;
}

static void pause_ns(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

/* What page k of writer w must hold when its counter is c. */
static uint64_t expected_gen(uint64_t c, uint64_t k)
{
	if (c < k || (k == 0 && c < REGION_PAGES))
		return 0;
	return c - (c - k) % REGION_PAGES;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;

	for (uint64_t g = atomic_load(&w->count) + 1; !atomic_load(&stop); g++) {
		uint64_t k = g % REGION_PAGES, prev = g >= REGION_PAGES ? g - REGION_PAGES : 0;
		uint8_t *page = w->region + k * PAGE;

		if (w->log[k] != prev || check_pattern(page, PAGE, page_seed(w->id, k, prev)) >= 0) {
			complain("writer %d, generation %llu: page %llu holds log %llu, want %llu%s",
				 w->id, (unsigned long long)g, (unsigned long long)k,
				 (unsigned long long)w->log[k], (unsigned long long)prev,
				 w->log[k] == prev ? " (content differs)" : "");
			break;
		}
		fill_pattern(page, PAGE, page_seed(w->id, k, g));
		atomic_signal_fence(memory_order_seq_cst);
		w->log[k] = g;
		atomic_signal_fence(memory_order_seq_cst);
		atomic_store(&w->count, g);
		if (w->id == SLOW_ID)
			pause_ns(SLOW_PAUSE_NS);
		else if (g % PAUSE_EVERY_PAGES == 0)
			pause_ns(PAUSE_NS);
	}
	return NULL;
}

static void check_writer(struct writer *w)
{
	uint64_t c = atomic_load(&w->count);

	CHECK(c > 0, "writer %d never ran", w->id);
	for (uint64_t k = 0; k < REGION_PAGES; k++) {
		uint64_t e = expected_gen(c, k);
		long off;

		CHECK(w->log[k] == e, "writer %d (count %llu): log of page %llu is %llu, want %llu",
		      w->id, (unsigned long long)c, (unsigned long long)k,
		      (unsigned long long)w->log[k], (unsigned long long)e);
		off = check_pattern(w->region + k * PAGE, PAGE, page_seed(w->id, k, e));
		CHECK(off < 0, "writer %d (count %llu): page %llu differs at byte %ld from "
		      "generation %llu", w->id, (unsigned long long)c, (unsigned long long)k, off,
		      (unsigned long long)e);
	}
}

static void setup_writer(struct writer *w, int id)
{
	w->id = id;
	w->region = (uint8_t *)SYS(mmap(NULL, REGION_PAGES * PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	w->log = (uint64_t *)SYS(mmap(NULL, REGION_PAGES * sizeof(uint64_t),
				      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	/* one writer on transparent huge pages: write-protected and split per 2 MiB */
	if (id == 1)
		SYS(madvise(w->region, REGION_PAGES * PAGE, MADV_HUGEPAGE));
	for (uint64_t k = 0; k < REGION_PAGES; k++)
		fill_pattern(w->region + k * PAGE, PAGE, page_seed(id, k, 0));
}

/*
 * MAP_FIXED over the churn area: the kernel unmaps the old pages and maps
 * a new area at the same place (the same line in maps: the neighbours are
 * PROT_NONE guards). Then MADV_DONTNEED or a new generation on one page.
 */
static void *churn_loop(void *arg)
{
	(void)arg;
	for (uint64_t g = atomic_load(&churn_gen) + 1; !atomic_load(&stop); g++) {
		long off = check_pattern(churn, CHURN_PAGES * PAGE, page_seed(10, 0, g - 1));
		uint64_t s = atomic_load(&drop_step) + 1, j = s % DROP_PAGES;
		uint8_t *page = dropped + j * PAGE;

		if (off >= 0) {
			complain("churn area, generation %llu: byte %ld differs",
				 (unsigned long long)g - 1, off);
			break;
		}
		if (mmap(churn, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != churn) {
			complain("mmap MAP_FIXED of the churn area: %s", strerror(errno));
			break;
		}
		fill_pattern(churn, CHURN_PAGES * PAGE, page_seed(10, 0, g));
		atomic_signal_fence(memory_order_seq_cst);
		atomic_store(&churn_gen, g);

		off = drop_zero[j] ? first_nonzero(page, PAGE) :
				     check_pattern(page, PAGE, page_seed(11, j, drop_gen[j]));
		if (off >= 0) {
			complain("dropped page %llu (%s, generation %llu): byte %ld differs",
				 (unsigned long long)j, drop_zero[j] ? "zero" : "written",
				 (unsigned long long)drop_gen[j], off);
			break;
		}
		/* each page is dropped and written in turn, one visit each */
		if ((s / DROP_PAGES + j) % 2) {
			if (madvise(page, PAGE, MADV_DONTNEED)) {
				complain("madvise: %s", strerror(errno));
				break;
			}
			atomic_signal_fence(memory_order_seq_cst);
			drop_zero[j] = 1;
		} else {
			fill_pattern(page, PAGE, page_seed(11, j, s));
			atomic_signal_fence(memory_order_seq_cst);
			drop_gen[j] = s;
			drop_zero[j] = 0;
		}
		atomic_signal_fence(memory_order_seq_cst);
		atomic_store(&drop_step, s);

		/* A and B hold the two patterns, in turn; S is empty */
		if (swap_check(&off)) {
			complain("swapped areas, after %llu swaps: %s byte %ld differs",
				 (unsigned long long)atomic_load(&swaps), swap_what, off);
			break;
		}
		if (move(swap_a, swap_s) || move(swap_b, swap_a) || move(swap_s, swap_b))
			break;
		atomic_signal_fence(memory_order_seq_cst);
		atomic_store(&swaps, atomic_load(&swaps) + 1);
		pause_ns(CHURN_PAUSE_NS);
	}
	return NULL;
}

static void child_main(void)
{
	struct writer *w = &writers[WRITERS];

	install_sigterm(SA_RESTART);
	SYS(pthread_create(&w->thread, NULL, write_loop, w));
	wait_for_sigterm();
	atomic_store(&stop, 1);
	pthread_join(w->thread, NULL);
	if (trouble[0]) {
		note("child: %s", trouble);
		_exit(1);
	}
	check_writer(w);	/* fail() prints FAIL: the parent reports it */
	_exit(0);
}

int main(void)
{
	pthread_t churner;
	uint8_t *guarded;
	pid_t child;
	int status;

	install_sigterm(SA_RESTART);
	ballast = (uint8_t *)SYS(mmap(NULL, BALLAST_BYTES, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	SYS(madvise(ballast, BALLAST_BYTES, MADV_HUGEPAGE));	/* kept from the pre-copy as THPs */
	fill_pattern(ballast, BALLAST_BYTES, 0xba11a57);
	for (int i = 0; i <= WRITERS; i++)
		setup_writer(&writers[i], i);
	setup_writer(&slow_writer, SLOW_ID);
	/* guard, churn, guard, dropped pages, guard, A, guard, B, guard, S, guard */
	guarded = (uint8_t *)SYS(mmap(NULL, (4 * CHURN_PAGES + DROP_PAGES + 6) * PAGE, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	churn = guarded + PAGE;
	dropped = churn + (CHURN_PAGES + 1) * PAGE;
	swap_a = dropped + (DROP_PAGES + 1) * PAGE;
	swap_b = swap_a + (CHURN_PAGES + 1) * PAGE;
	swap_s = swap_b + (CHURN_PAGES + 1) * PAGE;
	SYS(mprotect(churn, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE));
	SYS(mprotect(dropped, DROP_PAGES * PAGE, PROT_READ | PROT_WRITE));
	SYS(mprotect(swap_a, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE));
	SYS(mprotect(swap_b, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE));
	SYS(mprotect(swap_s, CHURN_PAGES * PAGE, PROT_READ | PROT_WRITE));
	fill_pattern(swap_a, CHURN_PAGES * PAGE, SWAP_SEED_A);
	fill_pattern(swap_b, CHURN_PAGES * PAGE, SWAP_SEED_B);
	fill_pattern(churn, CHURN_PAGES * PAGE, page_seed(10, 0, 0));
	for (int j = 0; j < DROP_PAGES; j++)
		fill_pattern(dropped + j * PAGE, PAGE, page_seed(11, j, 0));

	child = SYS(fork());
	if (child == 0)
		child_main();
	for (int i = 0; i < WRITERS; i++)
		SYS(pthread_create(&writers[i].thread, NULL, write_loop, &writers[i]));
	SYS(pthread_create(&churner, NULL, churn_loop, NULL));
	SYS(pthread_create(&slow_writer.thread, NULL, write_loop, &slow_writer));
	ready();
	wait_for_sigterm();

	atomic_store(&stop, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(writers[i].thread, NULL);
	pthread_join(churner, NULL);
	pthread_join(slow_writer.thread, NULL);
	SYS(kill(child, SIGTERM));
	SYS(waitpid(child, &status, 0));
	CHECK(!trouble[0], "%s", trouble);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child's writer found its memory inconsistent (status 0x%x)", status);
	for (int i = 0; i < WRITERS; i++)
		check_writer(&writers[i]);
	check_writer(&slow_writer);
	expect_pattern("churn area", churn, CHURN_PAGES * PAGE,
		       page_seed(10, 0, atomic_load(&churn_gen)));
	for (int j = 0; j < DROP_PAGES; j++) {
		if (drop_zero[j])
			expect_zero("dropped page", dropped + j * PAGE, PAGE);
		else
			expect_pattern("dropped page", dropped + j * PAGE, PAGE,
				       page_seed(11, j, drop_gen[j]));
	}
	{
		long off;

		CHECK(!swap_check(&off), "swapped areas, after %llu swaps: %s byte %ld differs",
		      (unsigned long long)atomic_load(&swaps), swap_what, off);
	}
	expect_pattern("ballast", ballast, BALLAST_BYTES, 0xba11a57);
	note("writers at %llu %llu %llu, slow writer at %llu, churn at %llu, drop at %llu, "
	     "swaps %llu", (unsigned long long)writers[0].count,
	     (unsigned long long)writers[1].count, (unsigned long long)writers[2].count,
	     (unsigned long long)slow_writer.count, (unsigned long long)churn_gen,
	     (unsigned long long)drop_step, (unsigned long long)swaps);
	pass();
}
