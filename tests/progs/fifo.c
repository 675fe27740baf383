/*
 * fifo: a named FIFO in the test directory, opened by main read-write
 * (blocking) and read-only non-blocking, and by a child write-only; the
 * child writes 3000 bytes before the checkpoint, main reads none, and the
 * FIFO's buffer is 64 KiB. A restore must reopen the FIFO by its path with
 * each descriptor's flags, put the bytes in flight back and the size.
 * After SIGTERM: the 3000 bytes arrive in order through the non-blocking
 * descriptor, then what the child writes after restore; flags and size.
 */
#include "testlib.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define IN_FLIGHT 3000

int main(void)
{
	const char *dir = getenv("TEST_DIR");
	char path[4096], buf[IN_FLIGHT + 16];
	int rw, rd, go[2];
	pid_t child;

	if (!dir)
		fail("setup: TEST_DIR is not set");
	snprintf(path, sizeof(path), "%s/fifo", dir);
	SYS(mkfifo(path, 0600));
	rw = SYS(open(path, O_RDWR));
	rd = SYS(open(path, O_RDONLY | O_NONBLOCK));
	SYS(fcntl(rw, F_SETPIPE_SZ, 65536));
	SYS(pipe(go));
	child = SYS(fork());
	if (child == 0) {
		int wr = open(path, O_WRONLY);
		char c;

		for (int i = 0; i < IN_FLIGHT; i++) {
			c = (char)('a' + i % 26);
			if (wr < 0 || write(wr, &c, 1) != 1)
				_exit(1);
		}
		if (read(go[0], &c, 1) != 1 || write(wr, "after", 5) != 5)
			_exit(1);
		_exit(0);
	}
	for (int i = 0; i < 200; i++) {
		int n = 0;

		if (ioctl(rd, FIONREAD, &n) == 0 && n == IN_FLIGHT)
			break;
		usleep(10000);
	}
	ready();
	wait_for_sigterm();

	CHECK(fcntl(rw, F_GETPIPE_SZ) == 65536, "FIFO size %d, want 65536",
	      fcntl(rw, F_GETPIPE_SZ));
	CHECK((fcntl(rd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == (O_RDONLY | O_NONBLOCK),
	      "flags of the read-only fd: %#x", fcntl(rd, F_GETFL));
	CHECK((fcntl(rw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_RDWR,
	      "flags of the read-write fd: %#x", fcntl(rw, F_GETFL));
	ssize_t n = read(rd, buf, sizeof(buf));
	CHECK(n == IN_FLIGHT, "read %zd bytes in flight, want %d", n, IN_FLIGHT);
	for (int i = 0; i < IN_FLIGHT; i++)
		if (buf[i] != (char)('a' + i % 26))
			fail("byte %d in flight: %#x", i, buf[i]);
	CHECK(read(rd, buf, 1) < 0 && errno == EAGAIN, "more data than was in flight");
	CHECK(write(go[1], "g", 1) == 1, "cannot wake the child");
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child status %#x", st);
	CHECK(read(rw, buf, 5) == 5 && !memcmp(buf, "after", 5), "the child's later write");
	unlink(path);
	pass();
}
