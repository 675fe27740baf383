/*
 * sys_nanosleep: checkpointed inside a relative nanosleep (10 minutes).
 *
 * The kernel interrupts a relative nanosleep with -ERESTART_RESTARTBLOCK:
 * it would continue through restart_syscall with the remaining time kept
 * in the task's restart block, which a restored task does not have. A
 * restore that only backs rip up and sets rax to __NR_restart_syscall makes
 * nanosleep return EINTR at once (the fresh task's restart block says "no
 * restart"), long before SIGTERM; that is the failure this test catches.
 *
 * The SIGTERM handler has no SA_RESTART: after SIGTERM nanosleep must
 * return -1/EINTR, not earlier, and the remaining time it reports must be
 * sane (at most the request; request - remaining no more than the time
 * actually spent, give or take a second).
 */
#include "testlib.h"

#define REQUEST 600

int main(void)
{
	struct timespec req = { REQUEST, 0 }, rem = { -1, -1 };
	double t0, elapsed, r_s;
	int r, err;
	char why[256] = "";

	install_sigterm(0);
	ready();
	t0 = now_mono();
	r = nanosleep(&req, &rem);
	err = errno;
	elapsed = now_mono() - t0;
	if (!got_sigterm) {
		/* woke up before SIGTERM: remember why, wait for the runner anyway */
		snprintf(why, sizeof(why),
			 "nanosleep returned %d (%s) after %.3f s, before SIGTERM (want -1/EINTR on "
			 "SIGTERM only)",
			 r, r ? strerror(err) : "no error", elapsed);
		wait_for_sigterm();
		fail("%s", why);
	}
	CHECK(r == -1 && err == EINTR, "nanosleep returned %d (%s), want -1 (EINTR)", r,
	      r ? strerror(err) : "no error");
	r_s = ts_seconds(&rem);
	CHECK(rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000 && r_s > 0 && r_s <= REQUEST,
	      "remaining time %ld.%09ld s, want in (0, %d]", (long)rem.tv_sec, rem.tv_nsec, REQUEST);
	/* slept REQUEST - rem: not more than what really went by (1 s of slack) */
	CHECK(REQUEST - r_s <= elapsed + 1.0,
	      "remaining time %.3f s: says it slept %.3f s, but only %.3f s went by", r_s,
	      REQUEST - r_s, elapsed);
	note("interrupted after %.3f s, %.3f s remaining", elapsed, r_s);
	pass();
}
