/*
 * timerfd: six timerfds. A periodic one on CLOCK_MONOTONIC (1000 s, then
 * every 500 s, nonblocking); an absolute one on CLOCK_REALTIME with
 * TFD_TIMER_CANCEL_ON_SET, due in 1000 s; a one-shot on CLOCK_BOOTTIME
 * that expired once and was not read; one never set; one disarmed with an
 * interval left; and one every 10 ms never read (so at the checkpoint it
 * has expired, and the kernel shows no time left for it). After SIGTERM
 * each has the same clock, settime flags, interval and expirations not
 * read yet (the fast one: at least as many); an armed one has at most the
 * time it had left before the checkpoint, and some left (it ran on from
 * the restore: 1000 s are far away); reads return what they would, and the
 * fast one keeps expiring.
 */
#include "testlib.h"

#include <sys/timerfd.h>

#define NR_TIMERS 6
#define FAST 5
#define SEC 1000000000ull

struct timer_info {
	int clockid;
	unsigned flags;
	unsigned long long ticks, value_ns, interval_ns;
};

static int tfd[NR_TIMERS];
static const char *const names[NR_TIMERS] = {
	"periodic", "absolute", "expired", "never set", "disarmed", "fast",
};

static void info_of(int fd, struct timer_info *ti)
{
	char path[64], buf[512], *p;
	unsigned long long s, ns;

	memset(ti, 0, sizeof(*ti));
	ti->clockid = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		fail("reading %s: %s", path, strerror(errno));
	if ((p = strstr(buf, "clockid:")))
		sscanf(p, "clockid: %d", &ti->clockid);
	if ((p = strstr(buf, "settime flags:")))
		sscanf(p, "settime flags: %o", &ti->flags);
	if ((p = strstr(buf, "ticks:")))
		sscanf(p, "ticks: %llu", &ti->ticks);
	if ((p = strstr(buf, "it_value:")) && sscanf(p, "it_value: (%llu, %llu)", &s, &ns) == 2)
		ti->value_ns = s * SEC + ns;
	if ((p = strstr(buf, "it_interval:")) &&
	    sscanf(p, "it_interval: (%llu, %llu)", &s, &ns) == 2)
		ti->interval_ns = s * SEC + ns;
}

static void set(int fd, int flags, long value_s, long value_ns, long interval_s)
{
	struct itimerspec its = { { interval_s, 0 }, { value_s, value_ns } };

	SYS(timerfd_settime(fd, flags, &its, NULL));
}

int main(void)
{
	struct timer_info before[NR_TIMERS], after;
	struct timespec now;
	uint64_t n;

	tfd[0] = SYS(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
	set(tfd[0], 0, 1000, 0, 500);
	tfd[1] = SYS(timerfd_create(CLOCK_REALTIME, 0));
	SYS(clock_gettime(CLOCK_REALTIME, &now));
	set(tfd[1], TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, now.tv_sec + 1000, now.tv_nsec,
	    0);
	tfd[2] = SYS(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK));
	set(tfd[2], 0, 0, 1000000, 0);
	tfd[3] = SYS(timerfd_create(CLOCK_MONOTONIC, 0));
	tfd[4] = SYS(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
	set(tfd[4], 0, 0, 0, 2);
	tfd[FAST] = SYS(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
	struct itimerspec fast = { { 0, 10000000 }, { 0, 10000000 } };
	SYS(timerfd_settime(tfd[FAST], 0, &fast, NULL));
	usleep(20000);	/* the one-shot expires */
	for (int i = 0; i < NR_TIMERS; i++)
		info_of(tfd[i], &before[i]);
	CHECK(before[2].ticks == 1, "setup: the one-shot timer expired %llu times",
	      before[2].ticks);
	ready();
	wait_for_sigterm();

	for (int i = 0; i < NR_TIMERS; i++) {
		info_of(tfd[i], &after);
		CHECK(after.clockid == before[i].clockid, "%s: clock %d, want %d", names[i],
		      after.clockid, before[i].clockid);
		CHECK(after.flags == before[i].flags, "%s: settime flags %o, want %o", names[i],
		      after.flags, before[i].flags);
		CHECK(after.interval_ns == before[i].interval_ns, "%s: interval %llu ns, want %llu",
		      names[i], after.interval_ns, before[i].interval_ns);
		if (i == FAST) {
			CHECK(after.ticks >= before[i].ticks,
			      "%s: %llu expirations not read, had %llu", names[i], after.ticks,
			      before[i].ticks);
			continue;
		}
		CHECK(after.ticks == before[i].ticks, "%s: %llu expirations not read, want %llu",
		      names[i], after.ticks, before[i].ticks);
		if (before[i].value_ns)
			CHECK(after.value_ns && after.value_ns <= before[i].value_ns,
			      "%s: %llu ns left, had %llu ns before the checkpoint", names[i],
			      after.value_ns, before[i].value_ns);
		else
			CHECK(!after.value_ns, "%s: armed (%llu ns left), was not", names[i],
			      after.value_ns);
	}
	CHECK((SYS(fcntl(tfd[0], F_GETFL)) & O_NONBLOCK) && (SYS(fcntl(tfd[0], F_GETFD)) & FD_CLOEXEC),
	      "periodic: O_NONBLOCK or FD_CLOEXEC lost");
	CHECK(!(SYS(fcntl(tfd[1], F_GETFL)) & O_NONBLOCK), "absolute: O_NONBLOCK appeared");
	CHECK(read(tfd[0], &n, sizeof(n)) < 0 && errno == EAGAIN,
	      "periodic: readable before its first expiration");
	CHECK(read(tfd[2], &n, sizeof(n)) == sizeof(n) && n == 1,
	      "expired: did not read its one expiration");
	CHECK(read(tfd[2], &n, sizeof(n)) < 0 && errno == EAGAIN, "expired: readable again");
	CHECK(read(tfd[FAST], &n, sizeof(n)) == sizeof(n) && n >= before[FAST].ticks,
	      "fast: read %llu expirations, had %llu before the checkpoint",
	      (unsigned long long)n, before[FAST].ticks);
	usleep(50000);
	CHECK(read(tfd[FAST], &n, sizeof(n)) == sizeof(n) && n >= 1,
	      "fast: stopped expiring after the restore");
	pass();
}
