/*
 * event_loop: an event loop as servers write them, in a thread: epoll
 * watching a periodic timerfd (every 20 ms), an eventfd (edge-triggered)
 * and a signalfd for SIGUSR1. After SIGTERM the loop must still run: the
 * timer keeps ticking, a value written to the eventfd and a SIGUSR1 both
 * reach the loop through epoll, and a last value stops it.
 */
#include "testlib.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#define TICK_NS 20000000L
#define STOP_VALUE 99

enum { SRC_TIMER = 1, SRC_EVENT, SRC_SIGNAL };

static int ep, tfd, efd, sfd;
static volatile uint64_t ticks, last_event;
static volatile int last_signo, stopped, loop_error;

static void *loop(void *arg)
{
	struct epoll_event evs[4];

	(void)arg;
	while (!stopped) {
		int n = epoll_wait(ep, evs, 4, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			loop_error = errno;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t v;
			struct signalfd_siginfo si;

			switch (evs[i].data.u32) {
			case SRC_TIMER:
				if (read(tfd, &v, sizeof(v)) == sizeof(v))
					ticks += v;
				break;
			case SRC_EVENT:
				if (read(efd, &v, sizeof(v)) == sizeof(v)) {
					last_event = v;
					stopped = v == STOP_VALUE;
				}
				break;
			case SRC_SIGNAL:
				if (read(sfd, &si, sizeof(si)) == sizeof(si))
					last_signo = (int)si.ssi_signo;
				break;
			}
		}
	}
	return NULL;
}

static void watch(int fd, uint32_t events, uint32_t src)
{
	struct epoll_event ev = { .events = events, .data.u32 = src };

	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
}

/* Wait (10 s at most: the loop must be alive) until cond() holds. */
static int wait_until(int (*cond)(void))
{
	for (int i = 0; i < 1000 && !cond(); i++)
		usleep(10000);
	return cond();
}

static uint64_t ticks_seen;
static int ticked(void) { return ticks >= ticks_seen + 3; }
static int got_event(void) { return last_event == 42; }
static int got_signal(void) { return last_signo == SIGUSR1; }
static int got_stop(void) { return stopped; }

int main(void)
{
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	sigset_t usr1, all, old;
	pthread_t t;
	uint64_t v;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	SYS(sigprocmask(SIG_BLOCK, &usr1, NULL));
	ep = SYS(epoll_create1(EPOLL_CLOEXEC));
	tfd = SYS(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
	efd = SYS(eventfd(0, EFD_NONBLOCK));
	sfd = SYS(signalfd(-1, &usr1, SFD_NONBLOCK));
	watch(tfd, EPOLLIN, SRC_TIMER);
	watch(efd, EPOLLIN | EPOLLET, SRC_EVENT);
	watch(sfd, EPOLLIN, SRC_SIGNAL);
	SYS(timerfd_settime(tfd, 0, &its, NULL));
	/* the loop blocks every signal: SIGTERM must reach the main thread */
	sigfillset(&all);
	SYS(pthread_sigmask(SIG_BLOCK, &all, &old));
	if (pthread_create(&t, NULL, loop, NULL))
		fail("setup: pthread_create");
	SYS(pthread_sigmask(SIG_SETMASK, &old, NULL));
	ticks_seen = 0;
	CHECK(wait_until(ticked), "setup: the timer did not tick");
	ready();
	wait_for_sigterm();

	CHECK(!loop_error, "epoll_wait failed: %s", strerror(loop_error));
	ticks_seen = ticks;
	CHECK(wait_until(ticked), "the timer stopped ticking (%llu ticks)",
	      (unsigned long long)ticks);
	v = 42;
	SYS(write(efd, &v, sizeof(v)));
	CHECK(wait_until(got_event), "the loop did not see the eventfd's value (last %llu)",
	      (unsigned long long)last_event);
	SYS(kill(getpid(), SIGUSR1));
	CHECK(wait_until(got_signal), "the loop did not read SIGUSR1 from the signalfd (last %d)",
	      last_signo);
	v = STOP_VALUE;
	SYS(write(efd, &v, sizeof(v)));
	CHECK(wait_until(got_stop), "the loop did not stop");
	pthread_join(t, NULL);
	pass();
}
