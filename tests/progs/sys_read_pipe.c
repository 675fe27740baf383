/*
 * sys_read_pipe: pipes with both ends in the process, and a read() blocked
 * on an empty one.
 *
 *  - pipe 1 (fds 40 = read end, 41 = write end): F_SETPIPE_SZ to 256 KiB
 *    (the default is 64 KiB), O_NONBLOCK on the read end only, FD_CLOEXEC
 *    on the write end only; three writes (5000, 100 and 70000 bytes of
 *    pattern, more than a default-sized pipe holds), then 3000 bytes read
 *    back, so 72100 bytes remain, starting in the middle of a buffer;
 *  - pipe 2 (fds 50, 51): empty; the program blocks in read(50).
 *  - SIGUSR1 has a SA_RESTART handler (never sent; its flags must
 *    survive); SIGTERM a handler without SA_RESTART, so the read returns
 *    -1/EINTR on SIGTERM and only then.
 * After SIGTERM: the read's result, the pipe sizes, fd and file status
 * flags, FIONREAD, the remaining data byte for byte and nothing more, and
 * that each pair of fds is still one pipe (same inode, data flows).
 */
#include "testlib.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

#define R1 40
#define W1 41
#define R2 50
#define W2 51
#define PIPE_SIZE (256 * 1024)
#define SEED 0x919e
#define CONSUMED 3000

static const size_t chunks[] = { 5000, 100, 70000 };
static size_t total;
static void on_usr1(int sig) { (void)sig; }

static void make_pipe(int r, int w)
{
	int p[2];

	SYS(pipe(p));
	SYS(dup2(p[0], r));
	SYS(dup2(p[1], w));
	close(p[0]);
	close(p[1]);
}

static void check_pipe_pair(const char *what, int r, int w)
{
	struct stat sr, sw;
	char c = 0;

	CHECK(!fstat(r, &sr) && !fstat(w, &sw), "%s: fstat: %s", what, strerror(errno));
	CHECK(S_ISFIFO(sr.st_mode) && S_ISFIFO(sw.st_mode), "%s: fds %d/%d are not pipes", what, r,
	      w);
	CHECK(sr.st_ino == sw.st_ino, "%s: fds %d and %d are different pipes (inodes %lu, %lu)",
	      what, r, w, (unsigned long)sr.st_ino, (unsigned long)sw.st_ino);
	CHECK(write(w, "z", 1) == 1, "%s: write to fd %d: %s", what, w, strerror(errno));
	CHECK(read(r, &c, 1) == 1 && c == 'z', "%s: the byte written to fd %d did not come out of %d",
	      what, w, r);
}

int main(void)
{
	static unsigned char data[80000], buf[80000];
	struct sigaction sa;
	size_t off = 0;
	int size, n;
	ssize_t r;
	char c;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	SYS(sigaction(SIGUSR1, &sa, NULL));
	install_sigterm(0);

	make_pipe(R1, W1);
	make_pipe(R2, W2);
	size = SYS(fcntl(W1, F_SETPIPE_SZ, PIPE_SIZE));
	if (size != PIPE_SIZE)
		fail("setup: F_SETPIPE_SZ gave %d, want %d", size, PIPE_SIZE);
	SYS(fcntl(R1, F_SETFL, O_NONBLOCK));
	SYS(fcntl(W1, F_SETFD, FD_CLOEXEC));
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++)
		total += chunks[i];
	fill_pattern(data, total, SEED);
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		if (SYS(write(W1, data + off, chunks[i])) != (ssize_t)chunks[i])
			fail("setup: short write to the pipe");
		off += chunks[i];
	}
	if (SYS(read(R1, buf, CONSUMED)) != CONSUMED)
		fail("setup: short read from the pipe");

	ready();
	r = read(R2, &c, 1);
	int err = errno;
	if (!got_sigterm) {
		char why[200];
		snprintf(why, sizeof(why), "read on the empty pipe returned %zd (%s) before SIGTERM", r,
			 r < 0 ? strerror(err) : "no error");
		wait_for_sigterm();
		fail("%s", why);
	}
	CHECK(r == -1 && err == EINTR, "read on the empty pipe returned %zd (%s), want -1 (EINTR)", r,
	      r < 0 ? strerror(err) : "no error");

	CHECK(sigaction(SIGUSR1, NULL, &sa) == 0, "sigaction: %s", strerror(errno));
	CHECK(sa.sa_handler == on_usr1 && (sa.sa_flags & SA_RESTART),
	      "SIGUSR1: handler %p flags %#x, want %p with SA_RESTART", (void *)sa.sa_handler,
	      sa.sa_flags, (void *)on_usr1);

	CHECK_EQ_U64("F_GETPIPE_SZ of pipe 1 (read end)", PIPE_SIZE, fcntl(R1, F_GETPIPE_SZ));
	CHECK_EQ_U64("F_GETPIPE_SZ of pipe 1 (write end)", PIPE_SIZE, fcntl(W1, F_GETPIPE_SZ));
	CHECK_EQ_U64("F_GETFL of fd 40 (pipe 1 read end)", O_RDONLY | O_NONBLOCK, fcntl(R1, F_GETFL));
	CHECK_EQ_U64("F_GETFL of fd 41 (pipe 1 write end)", O_WRONLY, fcntl(W1, F_GETFL));
	CHECK_EQ_U64("F_GETFL of fd 50 (pipe 2 read end)", O_RDONLY, fcntl(R2, F_GETFL));
	CHECK_EQ_U64("F_GETFL of fd 51 (pipe 2 write end)", O_WRONLY, fcntl(W2, F_GETFL));
	CHECK_EQ_U64("F_GETFD of fd 40", 0, fcntl(R1, F_GETFD));
	CHECK_EQ_U64("F_GETFD of fd 41", FD_CLOEXEC, fcntl(W1, F_GETFD));

	CHECK(ioctl(R1, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
	CHECK_EQ_U64("bytes in pipe 1 (FIONREAD)", total - CONSUMED, n);
	CHECK(ioctl(R2, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
	CHECK_EQ_U64("bytes in pipe 2 (FIONREAD)", 0, n);
	off = 0;
	while (off < sizeof(buf) && (r = read(R1, buf + off, sizeof(buf) - off)) > 0)
		off += (size_t)r;
	CHECK(r == -1 && errno == EAGAIN, "pipe 1: the last read returned %zd (%s), want EAGAIN", r,
	      r < 0 ? strerror(errno) : "data");
	CHECK_EQ_U64("bytes read from pipe 1", total - CONSUMED, off);
	long bad = check_pattern_at(buf, off, SEED, CONSUMED);
	CHECK(bad < 0, "pipe 1: byte %ld of the remaining data is 0x%02x, want 0x%02x", bad, buf[bad],
	      pattern_byte(SEED, CONSUMED + (size_t)bad));
	check_pipe_pair("pipe 1", R1, W1);
	check_pipe_pair("pipe 2", R2, W2);
	struct stat s1, s2;
	fstat(R1, &s1);
	fstat(R2, &s2);
	CHECK(s1.st_ino != s2.st_ino, "pipes 1 and 2 are the same pipe");
	pass();
}
