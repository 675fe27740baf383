/*
 * sys_nanosleep_restart: checkpointed inside an absolute
 * clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), in a loop: each sleep
 * ends at the previous wakeup + 1 s, counting wakeups.
 *
 * An absolute sleep interrupted by the checkpoint shows -ERESTARTNOHAND:
 * the restore must re-run the call with the same arguments (same absolute
 * deadline, which is in the program's memory). The checks:
 *  - no early wakeup: every sleep that returned 0 did so at or after its
 *    deadline (CLOCK_MONOTONIC, which keeps running across the restore on
 *    the same machine);
 *  - no spurious EINTR: only SIGTERM (handler without SA_RESTART)
 *    interrupts a sleep;
 *  - no hang: when SIGTERM arrives, the sleep in progress has a deadline
 *    no more than SLACK seconds in the past (a sleep whose deadline
 *    passed while the process was checkpointed must end as soon as it is
 *    restored).
 * The period is 1 s (not longer) so that sleeps end during the runner's
 * cycle too.
 */
#include "testlib.h"

#define PERIOD_NS 1000000000L
#define SLACK 2.0

static char why[256];

/* Remember the first failure; the verdict comes after SIGTERM. */
__attribute__((format(printf, 1, 2))) static void failure(const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

int main(void)
{
	struct timespec dl, now;
	long wakeups = 0;
	double max_late = 0;
	int r;

	install_sigterm(0);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	ready();
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_nsec += PERIOD_NS;
		while (dl.tv_nsec >= 1000000000L) {
			dl.tv_nsec -= 1000000000L;
			dl.tv_sec++;
		}
		r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		double late = ts_seconds(&now) - ts_seconds(&dl);
		if (r == 0) {
			wakeups++;
			if (late < 0)
				failure("clock_nanosleep returned %.9f s before its deadline (wakeup "
					"at %.9f)",
					-late, ts_seconds(&now));
			if (late > max_late)
				max_late = late;
		} else if (r == EINTR && got_sigterm) {
			if (late > SLACK)
				failure("at SIGTERM the sleep in progress was %.3f s past its deadline "
					"(%.3f): it hung",
					late, ts_seconds(&dl));
			break;
		} else if (r == EINTR) {
			failure("clock_nanosleep returned EINTR without SIGTERM (%.3f s before its "
				"deadline %.3f)",
				-late, ts_seconds(&dl));
		} else {
			failure("clock_nanosleep returned %d (%s), want 0 or EINTR", r, strerror(r));
		}
	}
	if (why[0])
		fail("%s", why);
	note("%ld wakeups, the latest %.3f s after its deadline", wakeups, max_late);
	pass();
}
