/*
 * Descriptors that name tasks (the problem cryo was founded on): after
 * restore every one must show the same path (readlink), flags and offset,
 * and read the live state of the restored task.
 *   - /proc/self/stat (recorded as /proc/<pid>/stat) at a non-zero offset
 *   - /proc/<pid>/status and maps at non-zero offsets
 *   - /proc/<pid>/task/<tid>/stat of a secondary thread
 *   - /proc/<pid>/task and /proc/<pid>/fd directories, partly read
 *   - /proc/<child>/cmdline of a child, and /proc/<parent>/status from it
 *   - a pidfd of the child, waited on with waitid(P_PIDFD) after restore
 *   - a cwd inside /proc/<pid>
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FDS 16

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

struct tracked {
	int fd;
	char path[128];
	off_t pos;
	int flags;
};
static struct tracked fds[MAX_FDS];
static int nr_fds;
static pid_t thread_tid;
static volatile int thread_stop;

static void fail(const char *fmt, const char *a, long b)
{
	printf("FAIL: ");
	printf(fmt, a, b);
	printf("\n");
	exit(1);
}

static int track(const char *path, int flags, off_t skip)
{
	char buf[4096];
	struct tracked *t = &fds[nr_fds++];

	t->fd = open(path, flags);
	if (t->fd < 0)
		fail("open %s: %ld", path, errno);
	if (skip && read(t->fd, buf, skip) != skip)
		fail("read %s: %ld", path, errno);
	t->pos = lseek(t->fd, 0, SEEK_CUR);
	t->flags = fcntl(t->fd, F_GETFL);
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", t->fd);
	ssize_t n = readlink(buf, t->path, sizeof(t->path) - 1);
	t->path[n > 0 ? n : 0] = 0;
	return t->fd;
}

static void *secondary(void *arg)
{
	(void)arg;
	thread_tid = syscall(SYS_gettid);
	while (!thread_stop)
		usleep(1000);
	return NULL;
}

/* entries of a directory fd from its current position on */
static int count_entries(int fd)
{
	char buf[4096];
	int n = 0;
	long got;

	while ((got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
		for (long off = 0; off < got; n++)
			off += *(unsigned short *)(buf + off + 16);
	return n;
}

int main(void)
{
	char path[128], buf[256];
	pthread_t th;
	pid_t me = getpid(), child;
	int pidfd, child_pipe[2], task_dir, fd_dir, child_fd;
	int task_left;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	pthread_create(&th, NULL, secondary, NULL);
	while (!thread_tid)
		usleep(1000);

	track("/proc/self/stat", O_RDONLY, 5);
	/* recorded with the numeric path the kernel resolved them to */
	track("/proc/self/status", O_RDONLY, 7);
	track("/proc/thread-self/stat", O_RDONLY, 2);
	snprintf(path, sizeof(path), "/proc/%d/status", me);
	track(path, O_RDONLY | O_CLOEXEC, 10);
	snprintf(path, sizeof(path), "/proc/%d/maps", me);
	track(path, O_RDONLY, 100);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", me, thread_tid);
	track(path, O_RDONLY, 3);
	snprintf(path, sizeof(path), "/proc/%d/task", me);
	task_dir = track(path, O_RDONLY | O_DIRECTORY, 0);
	/* read the task directory partly: ".", "." and one more entry remain or not */
	task_left = count_entries(dup(task_dir));
	lseek(task_dir, 0, SEEK_SET);
	{
		char d[64];
		long got = syscall(SYS_getdents64, task_dir, d, 40);	/* one entry */
		(void)got;
		task_left--;
	}
	fds[nr_fds - 1].pos = lseek(task_dir, 0, SEEK_CUR);
	snprintf(path, sizeof(path), "/proc/%d/fd", me);
	fd_dir = track(path, O_RDONLY | O_DIRECTORY, 0);
	{
		char d[64];
		long got = syscall(SYS_getdents64, fd_dir, d, 40);
		(void)got;
	}
	fds[nr_fds - 1].pos = lseek(fd_dir, 0, SEEK_CUR);

	if (pipe(child_pipe))
		return 1;
	child = fork();
	if (child == 0) {
		char c;
		/* the child holds its parent's status open too */
		snprintf(path, sizeof(path), "/proc/%d/status", me);
		int pfd = open(path, O_RDONLY);
		close(child_pipe[1]);
		if (read(child_pipe[0], &c, 1) != 1)
			_exit(2);
		if (pfd < 0 || read(pfd, buf, 6) != 6 || strncmp(buf, "Name:\t", 6))
			_exit(3);
		_exit(7);
	}
	close(child_pipe[0]);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", child);
	usleep(50000);
	child_fd = track(path, O_RDONLY, 0);
	pidfd = syscall(SYS_pidfd_open, child, 0);
	if (pidfd < 0)
		fail("pidfd_open %s%ld", "", errno);
	snprintf(path, sizeof(path), "/proc/%d", me);
	if (chdir(path))
		fail("chdir %s: %ld", path, errno);

	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		pause();

	for (int i = 0; i < nr_fds; i++) {
		struct tracked *t = &fds[i];
		char now[128];

		snprintf(buf, sizeof(buf), "/proc/self/fd/%d", t->fd);
		ssize_t n = readlink(buf, now, sizeof(now) - 1);
		now[n > 0 ? n : 0] = 0;
		if (strcmp(now, t->path))
			fail("path changed: %s, now %ld", t->path, (long)(n > 0 ? n : -1));
		if (lseek(t->fd, 0, SEEK_CUR) != t->pos)
			fail("offset of %s changed to %ld", t->path, (long)lseek(t->fd, 0, SEEK_CUR));
		if (fcntl(t->fd, F_GETFL) != t->flags)
			fail("flags of %s changed to %lo", t->path, (long)fcntl(t->fd, F_GETFL));
	}
	/* reads return the live state of the restored tasks */
	lseek(fds[0].fd, 0, SEEK_SET);
	n_check: {
		char expect[32];
		int len = snprintf(expect, sizeof(expect), "%d (", me);
		if (read(fds[0].fd, buf, len) != len || strncmp(buf, expect, len))
			fail("%s does not start with the pid: %ld", fds[0].path, 0);
	}
	lseek(fds[5].fd, 0, SEEK_SET);
	{
		char expect[32];
		int len = snprintf(expect, sizeof(expect), "%d (", thread_tid);
		if (read(fds[5].fd, buf, len) != len || strncmp(buf, expect, len))
			fail("%s does not start with the thread's tid: %ld", fds[5].path, 0);
	}
	if (count_entries(task_dir) != task_left)
		fail("task directory: %s%ld entries left", "", (long)count_entries(task_dir));
	if (!getcwd(buf, sizeof(buf)) || strcmp(buf, path))
		fail("cwd %s, want /proc/<pid> (%ld)", buf, 0);
	if (read(child_fd, buf, 1) != 1)
		fail("reading %s: %ld", fds[nr_fds - 1].path, errno);
	thread_stop = 1;
	pthread_join(th, NULL);
	if (write(child_pipe[1], "g", 1) != 1)
		return 1;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, pidfd, &si, WEXITED) || si.si_pid != child || si.si_status != 7)
		fail("waitid(P_PIDFD) on the child: status %s%ld", "", (long)si.si_status);
	printf("PASS\n");
	return 0;
	goto n_check;
}
