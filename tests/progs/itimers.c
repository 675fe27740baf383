/*
 * itimers: the three interval timers, armed with long values so that none
 * fires during the test (each has a counting handler: it must not run).
 *   ITIMER_REAL     100 s, interval 200 s
 *   ITIMER_VIRTUAL   50 s, interval  70 s
 *   ITIMER_PROF      60 s, interval  80 s
 * A fresh process has all three disarmed. After SIGTERM, getitimer: the
 * intervals exact; each value > 0 and <= what was set (+ 0.1 s: the kernel
 * adds a tick to a CPU timer's value when it is set), and not less than
 * the set value minus the time that could have been charged to it since
 * (real: CLOCK_MONOTONIC time since arming; virtual/prof: the process's CPU
 * time, which a restore does not carry over, so it is bounded by wall time
 * too) with 1 s of slack.
 */
#include "testlib.h"

#include <sys/time.h>

static volatile int fired[3];
static const int which[3] = { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF };
static const int sigs[3] = { SIGALRM, SIGVTALRM, SIGPROF };
static const char *names[3] = { "ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF" };
static const long value_s[3] = { 100, 50, 60 };
static const long interval_s[3] = { 200, 70, 80 };

static void on_timer(int sig)
{
	for (int i = 0; i < 3; i++)
		if (sig == sigs[i])
			fired[i]++;
}

int main(void)
{
	struct sigaction sa;
	double armed;

	install_sigterm(SA_RESTART);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_timer;
	sa.sa_flags = SA_RESTART;
	for (int i = 0; i < 3; i++)
		SYS(sigaction(sigs[i], &sa, NULL));
	armed = now_mono();
	for (int i = 0; i < 3; i++) {
		struct itimerval it = { { interval_s[i], 0 }, { value_s[i], 0 } };
		SYS(setitimer(which[i], &it, NULL));
	}
	ready();
	wait_for_sigterm();

	double since = now_mono() - armed;
	for (int i = 0; i < 3; i++) {
		struct itimerval it;
		CHECK(getitimer(which[i], &it) == 0, "getitimer: %s", strerror(errno));
		CHECK(fired[i] == 0, "%s fired %d times; it was set to %ld s", names[i], fired[i],
		      value_s[i]);
		CHECK(it.it_interval.tv_sec == interval_s[i] && it.it_interval.tv_usec == 0,
		      "%s interval %ld.%06ld s, want %ld s", names[i], (long)it.it_interval.tv_sec,
		      (long)it.it_interval.tv_usec, interval_s[i]);
		double v = (double)it.it_value.tv_sec + (double)it.it_value.tv_usec / 1e6;
		/* the kernel adds a tick to CPU timer values when they are set (and
		 * a restore sets them again): up to 0.1 s more is fine */
		CHECK(v > 0 && v <= value_s[i] + 0.1, "%s value %.6f s, want in (0, %ld.1]",
		      names[i], v, value_s[i]);
		CHECK(v >= value_s[i] - since - 1.0,
		      "%s value %.6f s, but only %.3f s went by since it was set to %ld s", names[i],
		      v, since, value_s[i]);
	}
	pass();
}
