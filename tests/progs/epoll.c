/*
 * epoll: an epoll instance watching two pipes (one level-triggered with
 * data 111, one EPOLLET|EPOLLRDHUP with data 222) and a third registration
 * disarmed by EPOLLONESHOT, with a thread blocked in epoll_wait on it. A
 * restore must rebuild the instance after the fds it watches, with every
 * watch's events and data, and the thread must go on waiting in it.
 * After SIGTERM: the watch list in fdinfo is what it was; a write to the
 * first pipe wakes the thread with data 111; the disarmed one stays silent.
 */
#include "testlib.h"

#include <pthread.h>
#include <sys/epoll.h>

static int ep, a[2], b[2], c[2];
static volatile int woke;
static volatile uint64_t woke_data;

static void *waiter(void *arg)
{
	struct epoll_event ev;
	int n;

	(void)arg;
	do
		n = epoll_wait(ep, &ev, 1, -1);
	while (n < 0 && errno == EINTR);
	woke_data = n == 1 ? ev.data.u64 : (uint64_t)-1;
	woke = 1;
	return NULL;
}

/*
 * The "tfd:" lines of our epoll fd's fdinfo, without pos/ino/sdev, by fd
 * number (the kernel lists them in the order of its tree of files).
 */
static void watches(char *out, size_t len)
{
	char path[64], line[256], by_fd[64][48] = { { 0 } };
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	f = fopen(path, "r");
	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		int tfd;
		unsigned events;
		unsigned long long data;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3 &&
		    tfd >= 0 && tfd < 64)
			snprintf(by_fd[tfd], sizeof(by_fd[tfd]), "%d:%x:%llx ", tfd, events, data);
	}
	if (f)
		fclose(f);
	for (int i = 0; i < 64; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s", by_fd[i]);
}

int main(void)
{
	struct epoll_event ev;
	char before[512], after[512];
	pthread_t t;

	ep = SYS(epoll_create1(EPOLL_CLOEXEC));
	SYS(pipe(a));
	SYS(pipe(b));
	SYS(pipe(c));
	ev.events = EPOLLIN;
	ev.data.u64 = 111;
	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev));
	ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
	ev.data.u64 = 222;
	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, b[0], &ev));
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.u64 = 333;
	SYS(epoll_ctl(ep, EPOLL_CTL_ADD, c[0], &ev));
	SYS(write(c[1], "x", 1));	/* fires the one-shot watch, which disarms it */
	SYS(epoll_wait(ep, &ev, 1, 0));
	CHECK(ev.data.u64 == 333, "setup: the one-shot watch did not fire");
	watches(before, sizeof(before));
	if (pthread_create(&t, NULL, waiter, NULL))
		fail("setup: pthread_create");
	usleep(50000);	/* let it block in epoll_wait */
	note("watches: %s", before);
	ready();
	wait_for_sigterm();

	watches(after, sizeof(after));
	CHECK_EQ_STR("epoll watches", before, after);
	CHECK(!woke, "the waiting thread woke up before anything was written");
	SYS(write(a[1], "y", 1));
	pthread_join(t, NULL);
	CHECK(woke_data == 111, "the thread woke with data %llu, want 111",
	      (unsigned long long)woke_data);
	CHECK(epoll_wait(ep, &ev, 1, 0) == 1 && ev.data.u64 == 111,
	      "level-triggered watch not ready while data is there");
	char ch;
	SYS(read(a[0], &ch, 1));
	CHECK(epoll_wait(ep, &ev, 1, 0) == 0, "an event is ready though nothing is (data %llu)",
	      (unsigned long long)ev.data.u64);
	pass();
}
