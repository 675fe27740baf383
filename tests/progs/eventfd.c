/*
 * eventfd: three eventfds. One holds a count wider than 32 bits (eventfd()
 * takes only 32 for its initial value), one is a nonblocking semaphore
 * with 3, and one is shared with a child process blocked reading it.
 * After SIGTERM: fdinfo shows the same counts and semaphore flag, the
 * descriptor flags are the same, reads return what they would have, and a
 * write to the shared one wakes the child with that value (the same eventfd
 * in both processes, not two copies).
 */
#include "testlib.h"

#include <sys/eventfd.h>
#include <sys/wait.h>

#define WIDE_COUNT 0x123456789ull
#define WAKE_VALUE 7

/* "eventfd-count:" and "eventfd-semaphore:" of one of our fds. */
static void fdinfo(int fd, uint64_t *count, int *semaphore)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		fail("reading %s: %s", path, strerror(errno));
	p = strstr(buf, "eventfd-count:");
	*count = p ? strtoull(p + 14, NULL, 16) : ~0ull;
	p = strstr(buf, "eventfd-semaphore:");
	*semaphore = p ? atoi(p + 18) : -1;
}

static void expect_state(const char *what, int fd, uint64_t count, int semaphore, int nonblock,
			 int cloexec)
{
	uint64_t got_count;
	int got_sem, fl = SYS(fcntl(fd, F_GETFL)), fdfl = SYS(fcntl(fd, F_GETFD));

	fdinfo(fd, &got_count, &got_sem);
	CHECK(got_count == count, "%s: count %#llx, want %#llx", what,
	      (unsigned long long)got_count, (unsigned long long)count);
	CHECK(got_sem == semaphore, "%s: semaphore %d, want %d", what, got_sem, semaphore);
	CHECK(!!(fl & O_NONBLOCK) == nonblock, "%s: O_NONBLOCK %s", what,
	      nonblock ? "lost" : "appeared");
	CHECK(!!(fdfl & FD_CLOEXEC) == cloexec, "%s: FD_CLOEXEC %s", what,
	      cloexec ? "lost" : "appeared");
}

int main(void)
{
	uint64_t v = WIDE_COUNT;
	int wide, sem, shared, st;
	pid_t child;

	wide = SYS(eventfd(0, EFD_CLOEXEC));
	SYS(write(wide, &v, sizeof(v)));
	sem = SYS(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK));
	shared = SYS(eventfd(0, 0));
	child = SYS(fork());
	if (child == 0) {
		uint64_t got = 0;
		ssize_t n;

		do
			n = read(shared, &got, sizeof(got));
		while (n < 0 && errno == EINTR);
		_exit(n == sizeof(got) && got == WAKE_VALUE ? 0 : 1);
	}
	usleep(50000);	/* let the child block in read() */
	expect_state("setup: wide", wide, WIDE_COUNT, 0, 0, 1);
	ready();
	wait_for_sigterm();

	expect_state("wide", wide, WIDE_COUNT, 0, 0, 1);
	expect_state("semaphore", sem, 3, 1, 1, 0);
	expect_state("shared", shared, 0, 0, 0, 0);
	v = 0;
	SYS(read(wide, &v, sizeof(v)));
	CHECK(v == WIDE_COUNT, "wide: read %#llx, want %#llx", (unsigned long long)v,
	      WIDE_COUNT);
	for (int i = 0; i < 3; i++) {
		v = 0;
		SYS(read(sem, &v, sizeof(v)));
		CHECK(v == 1, "semaphore: read %llu, want 1", (unsigned long long)v);
	}
	CHECK(read(sem, &v, sizeof(v)) < 0 && errno == EAGAIN,
	      "semaphore: a fourth read did not fail with EAGAIN");
	v = WAKE_VALUE;
	SYS(write(shared, &v, sizeof(v)));
	CHECK(waitpid(child, &st, 0) == child, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child did not read %d from the shared eventfd (status %#x)", WAKE_VALUE, st);
	pass();
}
