/*
 * itimer_fire: an ITIMER_REAL that keeps firing across the restore.
 * Armed for 2 s with a 1 s interval before READY; SIGALRM has a counting
 * SA_RESTART handler; the program waits in sigsuspend. After SIGTERM: the
 * timer is still armed with its 1 s interval, and it still fires: at
 * least one more SIGALRM must arrive within 5 s (waited for here, so the
 * runner's timing does not matter). A fresh process has no timer and
 * would count nothing.
 */
#include "testlib.h"

#include <sys/time.h>

static volatile int alarms;

static void on_alrm(int sig)
{
	(void)sig;
	alarms++;
}

int main(void)
{
	struct itimerval it = { { 1, 0 }, { 2, 0 } };
	struct sigaction sa;

	install_sigterm(SA_RESTART);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	SYS(sigaction(SIGALRM, &sa, NULL));
	SYS(setitimer(ITIMER_REAL, &it, NULL));
	ready();
	wait_for_sigterm();

	CHECK(getitimer(ITIMER_REAL, &it) == 0, "getitimer: %s", strerror(errno));
	CHECK(it.it_interval.tv_sec == 1 && it.it_interval.tv_usec == 0,
	      "ITIMER_REAL interval %ld.%06ld s, want 1 s", (long)it.it_interval.tv_sec,
	      (long)it.it_interval.tv_usec);
	CHECK(it.it_value.tv_sec > 0 || it.it_value.tv_usec > 0,
	      "ITIMER_REAL is disarmed (value 0), want armed");
	CHECK(it.it_value.tv_sec < 2 || (it.it_value.tv_sec == 2 && it.it_value.tv_usec == 0),
	      "ITIMER_REAL value %ld.%06ld s, want at most 2 s", (long)it.it_value.tv_sec,
	      (long)it.it_value.tv_usec);
	int before = alarms;
	double t0 = now_mono();
	while (alarms == before && now_mono() - t0 < 5.0) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK(alarms > before, "no SIGALRM within 5 s after SIGTERM (%d before SIGTERM)", before);
	note("%d SIGALRMs before SIGTERM", before);
	pass();
}
