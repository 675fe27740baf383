/*
 * signalfd: SIGUSR1 and SIGUSR2 blocked; a nonblocking signalfd for both,
 * with SIGUSR2 already pending, and a blocking signalfd for SIGUSR1 that a
 * thread is reading. After SIGTERM: fdinfo shows the same masks, the flags
 * are the same, the first signalfd reads the pending SIGUSR2 then nothing
 * (EAGAIN), and SIGUSR1 sent to the process wakes the thread with it.
 */
#include "testlib.h"

#include <pthread.h>
#include <sys/signalfd.h>

static int both, usr1_only;
static volatile int thread_signo;

static void *reader(void *arg)
{
	struct signalfd_siginfo si;
	ssize_t n;

	(void)arg;
	do
		n = read(usr1_only, &si, sizeof(si));
	while (n < 0 && errno == EINTR);
	thread_signo = n == sizeof(si) ? (int)si.ssi_signo : -1;
	return NULL;
}

static unsigned long long fdinfo_sigmask(int fd)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		fail("reading %s: %s", path, strerror(errno));
	p = strstr(buf, "sigmask:");
	return p ? strtoull(p + 8, NULL, 16) : 0;
}

int main(void)
{
	unsigned long long mask_both, mask_usr1;
	struct signalfd_siginfo si;
	sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	SYS(sigprocmask(SIG_BLOCK, &set, NULL));
	both = SYS(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
	sigdelset(&set, SIGUSR2);
	usr1_only = SYS(signalfd(-1, &set, 0));
	SYS(kill(getpid(), SIGUSR2));
	/* the reader blocks every signal: SIGTERM must go to the main thread */
	sigset_t all, old;
	sigfillset(&all);
	SYS(pthread_sigmask(SIG_BLOCK, &all, &old));
	if (pthread_create(&t, NULL, reader, NULL))
		fail("setup: pthread_create");
	SYS(pthread_sigmask(SIG_SETMASK, &old, NULL));
	usleep(50000);	/* let it block in read() */
	mask_both = fdinfo_sigmask(both);
	mask_usr1 = fdinfo_sigmask(usr1_only);
	CHECK(mask_both == (1ull << (SIGUSR1 - 1) | 1ull << (SIGUSR2 - 1)),
	      "setup: mask %#llx", mask_both);
	ready();
	wait_for_sigterm();

	CHECK(fdinfo_sigmask(both) == mask_both, "mask of the first signalfd: %#llx, want %#llx",
	      fdinfo_sigmask(both), mask_both);
	CHECK(fdinfo_sigmask(usr1_only) == mask_usr1,
	      "mask of the second signalfd: %#llx, want %#llx", fdinfo_sigmask(usr1_only),
	      mask_usr1);
	CHECK(SYS(fcntl(both, F_GETFL)) & O_NONBLOCK, "first signalfd: O_NONBLOCK lost");
	CHECK(SYS(fcntl(both, F_GETFD)) & FD_CLOEXEC, "first signalfd: FD_CLOEXEC lost");
	CHECK(!(SYS(fcntl(usr1_only, F_GETFL)) & O_NONBLOCK),
	      "second signalfd: O_NONBLOCK appeared");
	CHECK(thread_signo == 0, "the reading thread woke before SIGUSR1 (signal %d)",
	      thread_signo);
	CHECK(read(both, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
	      "the pending SIGUSR2 was not read from the first signalfd");
	CHECK(read(both, &si, sizeof(si)) < 0 && errno == EAGAIN,
	      "the first signalfd had more than SIGUSR2 pending");
	SYS(kill(getpid(), SIGUSR1));
	pthread_join(t, NULL);
	CHECK(thread_signo == SIGUSR1, "the reading thread got signal %d, want SIGUSR1",
	      thread_signo);
	pass();
}
