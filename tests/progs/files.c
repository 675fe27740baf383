/*
 * files: open file descriptions of every common kind, at their numbers,
 * with their flags and offsets, and the sharing between them.
 *
 *   rw      rw.dat O_RDWR, offset 12345
 *   append  append.log O_WRONLY|O_APPEND, "line1\n" written, then lseek'd
 *           back to 2: the next write must still append
 *   cloexec cloexec.dat O_RDWR|O_CLOEXEC|O_DSYNC
 *   nonblk  plain.dat O_RDONLY|O_NONBLOCK (no FD_CLOEXEC)
 *   eof     ro.dat O_RDONLY|O_NOATIME at its end (offset 5000)
 *   dir     d/ (200 files) O_DIRECTORY, partly read with getdents64: the
 *           next getdents64 must return exactly the entries not seen yet
 *   null, zero, urandom  the devices
 *   dupA    shared.dat O_RDWR, offset 777; dupB = dup(dupA); fd 100 =
 *           dup2(dupA) with FD_CLOEXEC: one description, three fds
 *   other   shared.dat opened again, offset 5: its own description
 *   deleted deleted.dat, 100 KiB of pattern, offset 4321, then unlinked
 *   and a hole at fd 3 (the lowest free number)
 * plus stdin, stdout and stderr as the runner set them.
 *
 * After SIGTERM: the set of open fds is the same (nothing leaked by the
 * restore, nothing missing), and for each: the path /proc/self/fd/N names
 * (for the deleted one: "<path> (deleted)"), F_GETFL, F_GETFD and the
 * offset, as before. Then behaviour: data at the offsets, O_APPEND
 * appends, a read on dupA moves dupB and fd 100 but not other, the
 * directory read resumes where it stopped, the deleted file holds its data
 * and did not come back into the directory, /dev/zero reads zeros,
 * /dev/urandom reads, and the next open() gets fd 3.
 */
#include "testlib.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NFILES 200
#define DELETED_LEN (100 * 1024)

enum { RW, APPEND, CLOEXEC, NONBLK, EOF_, DIR_, NUL, ZERO, URANDOM, DUPA, DUPB, DUP100, OTHER,
       DELETED, STDIN, STDOUT, STDERR, NFDS };
static const char *names[NFDS] = { "rw", "append", "cloexec", "nonblk", "eof", "dir", "null",
				   "zero", "urandom", "dupA", "dupB", "fd 100", "other",
				   "deleted", "stdin", "stdout", "stderr" };

struct fdrec {
	int fd;
	char path[4096];
	int fl, fdflags;
	off_t off;
};
static struct fdrec recs[NFDS];
static char dir[3000], deleted_path[4096];
static int hole;
static unsigned char seen[NFILES + 2];	/* f000..f199, ".", ".." */
static long dir_pos;
static char fdset_before[4096];

static void path_of(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, size - 1);
	if (n < 0)
		fail("readlink %s: %s", link, strerror(errno));
	out[n] = 0;
}

/* The open fds, as a string "0 1 2 4 ..." (without the one used to list them). */
static void fd_set_string(char *out, size_t size)
{
	int fds[1024], n = 0, dfd;
	char buf[4096];
	size_t len = 0;

	dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail("open /proc/self/fd: %s", strerror(errno));
	for (;;) {
		long r = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (long o = 0; o < r;) {
			struct dirent64 *d = (void *)(buf + o);
			if (d->d_name[0] != '.' && atoi(d->d_name) != dfd && n < 1024)
				fds[n++] = atoi(d->d_name);
			o += d->d_reclen;
		}
	}
	close(dfd);
	for (int i = 0; i < n; i++)	/* sort */
		for (int j = i + 1; j < n; j++)
			if (fds[j] < fds[i]) {
				int t = fds[i];
				fds[i] = fds[j];
				fds[j] = t;
			}
	out[0] = 0;
	for (int i = 0; i < n && len + 12 < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%d", i ? " " : "", fds[i]);
}

/* index in seen[] of a directory entry name, or -1 */
static int entry_index(const char *name)
{
	if (!strcmp(name, "."))
		return NFILES;
	if (!strcmp(name, ".."))
		return NFILES + 1;
	if (name[0] == 'f' && strlen(name) == 4) {
		int i = atoi(name + 1);
		if (i >= 0 && i < NFILES)
			return i;
	}
	return -1;
}

/* Read up to size bytes of entries from the directory fd; marks them seen. */
static long read_dir(int fd, size_t size, int after_restore)
{
	char buf[32768];
	long r = syscall(SYS_getdents64, fd, buf, size < sizeof(buf) ? size : sizeof(buf));

	if (r < 0)
		fail("getdents64: %s", strerror(errno));
	for (long o = 0; o < r;) {
		struct dirent64 *d = (void *)(buf + o);
		int i = entry_index(d->d_name);
		if (i < 0)
			fail("directory: unexpected entry '%s'", d->d_name);
		if (seen[i])
			fail("directory: entry '%s' returned twice (%s)", d->d_name,
			     after_restore ? "the read after restore did not resume where it stopped"
					   : "during setup");
		seen[i] = 1;
		o += d->d_reclen;
	}
	return r;
}

static void write_file(const char *name, const void *data, size_t len)
{
	int fd = SYS(open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));

	if (SYS(write(fd, data, len)) != (ssize_t)len)
		fail("setup: short write to %s", name);
	close(fd);
}

static void setup(void)
{
	static unsigned char buf[DELETED_LEN];
	const char *td = getenv("TEST_DIR");
	int *fd[NFDS];

	for (int i = 0; i < NFDS; i++)
		fd[i] = &recs[i].fd;
	if (!td)
		fail("setup: TEST_DIR is not set");
	copy_str(dir, sizeof(dir), td);
	SYS(chdir(dir));

	fill_pattern(buf, 65536, 0xf001);
	write_file("rw.dat", buf, 65536);
	write_file("cloexec.dat", "cloexec", 7);
	write_file("plain.dat", "plain", 5);
	fill_pattern(buf, 5000, 0xf002);
	write_file("ro.dat", buf, 5000);
	fill_pattern(buf, 4096, 0xf003);
	write_file("shared.dat", buf, 4096);
	SYS(mkdir("d", 0755));
	for (int i = 0; i < NFILES; i++) {
		char name[16];
		snprintf(name, sizeof(name), "d/f%03d", i);
		write_file(name, "", 0);
	}

	/* the hole: this one takes the lowest free number and is closed at the end */
	hole = SYS(open("/dev/null", O_RDONLY));

	*fd[RW] = SYS(open("rw.dat", O_RDWR));
	SYS(lseek(*fd[RW], 12345, SEEK_SET));
	*fd[APPEND] = SYS(open("append.log", O_WRONLY | O_APPEND | O_CREAT, 0644));
	if (SYS(write(*fd[APPEND], "line1\n", 6)) != 6)
		fail("setup: short write");
	SYS(lseek(*fd[APPEND], 2, SEEK_SET));
	*fd[CLOEXEC] = SYS(open("cloexec.dat", O_RDWR | O_CLOEXEC | O_DSYNC));
	*fd[NONBLK] = SYS(open("plain.dat", O_RDONLY | O_NONBLOCK));
	*fd[EOF_] = SYS(open("ro.dat", O_RDONLY | O_NOATIME));
	SYS(lseek(*fd[EOF_], 0, SEEK_END));
	*fd[DIR_] = SYS(open("d", O_RDONLY | O_DIRECTORY));
	/* about a fifth of the entries */
	if (read_dir(*fd[DIR_], 1024, 0) <= 0)
		fail("setup: getdents64 read nothing");
	dir_pos = SYS(lseek(*fd[DIR_], 0, SEEK_CUR));
	*fd[NUL] = SYS(open("/dev/null", O_WRONLY));
	*fd[ZERO] = SYS(open("/dev/zero", O_RDONLY));
	*fd[URANDOM] = SYS(open("/dev/urandom", O_RDONLY));
	*fd[DUPA] = SYS(open("shared.dat", O_RDWR));
	*fd[DUPB] = SYS(dup(*fd[DUPA]));
	*fd[DUP100] = SYS(dup2(*fd[DUPA], 100));
	SYS(fcntl(100, F_SETFD, FD_CLOEXEC));
	SYS(lseek(*fd[DUPA], 777, SEEK_SET));
	*fd[OTHER] = SYS(open("shared.dat", O_RDONLY));
	SYS(lseek(*fd[OTHER], 5, SEEK_SET));

	snprintf(deleted_path, sizeof(deleted_path), "%s/deleted.dat", dir);
	*fd[DELETED] = SYS(open(deleted_path, O_RDWR | O_CREAT | O_EXCL, 0600));
	fill_pattern(buf, DELETED_LEN, 0xde1e7ed);
	if (SYS(write(*fd[DELETED], buf, DELETED_LEN)) != DELETED_LEN)
		fail("setup: short write");
	SYS(lseek(*fd[DELETED], 4321, SEEK_SET));
	SYS(unlink(deleted_path));
	*fd[STDIN] = 0;
	*fd[STDOUT] = 1;
	*fd[STDERR] = 2;
	SYS(close(hole));

	for (int i = 0; i < NFDS; i++) {
		struct fdrec *r = &recs[i];
		path_of(r->fd, r->path, sizeof(r->path));
		r->fl = SYS(fcntl(r->fd, F_GETFL));
		r->fdflags = SYS(fcntl(r->fd, F_GETFD));
		r->off = lseek(r->fd, 0, SEEK_CUR);	/* -1 (ESPIPE) for pipes on stdio */
	}
	/* what the kernel made of the flags asked for */
	if (!(recs[APPEND].fl & O_APPEND) || !(recs[CLOEXEC].fdflags & FD_CLOEXEC) ||
	    (recs[CLOEXEC].fl & O_DSYNC) != O_DSYNC || !(recs[NONBLK].fl & O_NONBLOCK) ||
	    !(recs[EOF_].fl & O_NOATIME) || !(recs[DUP100].fdflags & FD_CLOEXEC) ||
	    (recs[DUPA].fdflags & FD_CLOEXEC))
		fail("setup: the flags are not what was asked for");
	char want[4200];
	snprintf(want, sizeof(want), "%s (deleted)", deleted_path);
	if (strcmp(recs[DELETED].path, want))
		fail("setup: the deleted file shows as '%s'", recs[DELETED].path);
	fd_set_string(fdset_before, sizeof(fdset_before));
}

static void check(void)
{
	static unsigned char buf[DELETED_LEN];
	char now[4096], what[128];
	struct stat st;
	ssize_t r;

	fd_set_string(now, sizeof(now));
	CHECK_EQ_STR("open fds", fdset_before, now);
	for (int i = 0; i < NFDS; i++) {
		struct fdrec *r = &recs[i];
		path_of(r->fd, now, sizeof(now));
		snprintf(what, sizeof(what), "fd %d (%s) path", r->fd, names[i]);
		if (strncmp(r->path, "pipe:", 5) && strncmp(r->path, "socket:", 7))
			CHECK_EQ_STR(what, r->path, now);
		snprintf(what, sizeof(what), "fd %d (%s) F_GETFL", r->fd, names[i]);
		CHECK_EQ_U64(what, r->fl, fcntl(r->fd, F_GETFL));
		snprintf(what, sizeof(what), "fd %d (%s) F_GETFD", r->fd, names[i]);
		CHECK_EQ_U64(what, r->fdflags, fcntl(r->fd, F_GETFD));
		snprintf(what, sizeof(what), "fd %d (%s) offset", r->fd, names[i]);
		/* stdout and stderr: READY moved the offset; pipes have none */
		if (r->off >= 0 && i != STDOUT && i != STDERR)
			CHECK_EQ_U64(what, r->off, lseek(r->fd, 0, SEEK_CUR));
	}

	/* rw: reads the file at 12345, then writes there */
	r = read(recs[RW].fd, buf, 100);
	CHECK(r == 100, "rw: read returned %zd", r);
	CHECK(check_pattern_at(buf, 100, 0xf001, 12345) < 0, "rw: wrong data at offset 12345");
	CHECK(write(recs[RW].fd, "XYZ", 3) == 3, "rw: write: %s", strerror(errno));
	CHECK(pread(recs[RW].fd, buf, 3, 12445) == 3 && !memcmp(buf, "XYZ", 3),
	      "rw: the write did not land at offset 12445");

	/* append */
	CHECK(write(recs[APPEND].fd, "line2\n", 6) == 6, "append: write: %s", strerror(errno));
	int fd = open("append.log", O_RDONLY);
	CHECK(fd >= 0, "open append.log: %s", strerror(errno));
	r = read(fd, buf, 100);
	close(fd);
	CHECK(r == 12 && !memcmp(buf, "line1\nline2\n", 12),
	      "append.log holds %zd bytes '%.*s', want 'line1\\nline2\\n' (O_APPEND)", r,
	      (int)(r > 0 ? r : 0), buf);

	/* eof */
	CHECK(read(recs[EOF_].fd, buf, 10) == 0, "eof: read at the end of ro.dat returned data");

	/* dir: the rest of the entries, each once */
	CHECK_EQ_U64("dir: getdents position", dir_pos, lseek(recs[DIR_].fd, 0, SEEK_CUR));
	while (read_dir(recs[DIR_].fd, 4096, 1) > 0)
		;
	for (int i = 0; i < NFILES + 2; i++)
		CHECK(seen[i], "directory: entry %d ('%s%03d') never returned", i,
		      i < NFILES ? "f" : "", i < NFILES ? i : 0);

	/* devices */
	CHECK(write(recs[NUL].fd, "hello", 5) == 5, "/dev/null: write: %s", strerror(errno));
	memset(buf, 0xff, 4096);
	CHECK(read(recs[ZERO].fd, buf, 4096) == 4096, "/dev/zero: read: %s", strerror(errno));
	expect_zero("/dev/zero", buf, 4096);
	memset(buf, 0, 64);
	CHECK(read(recs[URANDOM].fd, buf, 64) == 64, "/dev/urandom: read: %s", strerror(errno));
	int nz = 0;
	for (int i = 0; i < 64; i++)
		nz += buf[i] != 0;
	CHECK(nz > 32, "/dev/urandom: 64 bytes with only %d non-zero", nz);

	/* one description behind dupA, dupB and fd 100; other is apart */
	r = read(recs[DUPA].fd, buf, 10);
	CHECK(r == 10 && check_pattern_at(buf, 10, 0xf003, 777) < 0,
	      "dupA: read at 777 returned %zd bytes or wrong data", r);
	CHECK_EQ_U64("dupB offset after a read on dupA (shared description)", 787,
		     lseek(recs[DUPB].fd, 0, SEEK_CUR));
	CHECK_EQ_U64("fd 100 offset after a read on dupA (shared description)", 787,
		     lseek(100, 0, SEEK_CUR));
	CHECK_EQ_U64("other offset after a read on dupA (separate description)", 5,
		     lseek(recs[OTHER].fd, 0, SEEK_CUR));
	SYS(fcntl(recs[DUPB].fd, F_SETFL, O_NONBLOCK));	/* file status flags are shared too */
	CHECK(fcntl(100, F_GETFL) & O_NONBLOCK, "fd 100 did not see O_NONBLOCK set on dupB");
	CHECK(!(fcntl(recs[OTHER].fd, F_GETFL) & O_NONBLOCK), "other saw O_NONBLOCK set on dupB");

	/* deleted */
	CHECK(fstat(recs[DELETED].fd, &st) == 0, "deleted: fstat: %s", strerror(errno));
	CHECK_EQ_U64("deleted: st_nlink", 0, st.st_nlink);
	CHECK_EQ_U64("deleted: st_size", DELETED_LEN, st.st_size);
	CHECK(pread(recs[DELETED].fd, buf, DELETED_LEN, 0) == DELETED_LEN, "deleted: short pread");
	expect_pattern("deleted file", buf, DELETED_LEN, 0xde1e7ed);
	CHECK(access(deleted_path, F_OK) == -1 && errno == ENOENT,
	      "%s exists again after the restore", deleted_path);
	CHECK(write(recs[DELETED].fd, "abc", 3) == 3 && pread(recs[DELETED].fd, buf, 3, 4321) == 3 &&
		      !memcmp(buf, "abc", 3),
	      "deleted: a write at offset 4321 did not land there");

	/* the hole */
	fd = open("/dev/null", O_RDONLY);
	CHECK(fd == hole, "open() returned fd %d, want %d (the lowest free number)", fd, hole);
}

int main(void)
{
	install_sigterm(SA_RESTART);
	setup();
	ready();
	wait_for_sigterm();
	check();
	pass();
}
