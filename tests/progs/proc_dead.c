/*
 * A descriptor on /proc/<pid> of a task that had already exited and been
 * reaped at checkpoint time (an unhashed /proc entry), and a pidfd of it:
 * after restore they are the same kind of dead entries: same path
 * (readlink), reads fail with ESRCH, the directory lists nothing, the
 * pidfd reports Pid: -1, and the PID itself is free again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

static int fail(const char *what)
{
	printf("FAIL: %s\n", what);
	return 1;
}

int main(void)
{
	char path[64], link[64], before[128], after[128], buf[256], fdinfo[512];
	struct sigaction sa;
	int stat_fd, dir_fd, pidfd, n;
	pid_t child;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", child);
	stat_fd = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d", child);
	dir_fd = open(path, O_RDONLY | O_DIRECTORY);
	pidfd = syscall(SYS_pidfd_open, child, 0);
	if (stat_fd < 0 || dir_fd < 0 || pidfd < 0)
		return fail("opening the child's /proc entries");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);	/* reaped: the entries are dead now */
	if (read(stat_fd, buf, sizeof(buf)) >= 0 || errno != ESRCH)
		return fail("setup: read of a dead /proc entry did not fail with ESRCH");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", stat_fd);
	n = readlink(link, before, sizeof(before) - 1);
	before[n > 0 ? n : 0] = 0;
	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		pause();

	n = readlink(link, after, sizeof(after) - 1);
	after[n > 0 ? n : 0] = 0;
	if (strcmp(before, after)) {
		printf("FAIL: path was %s, now %s\n", before, after);
		return 1;
	}
	errno = 0;
	if (read(stat_fd, buf, sizeof(buf)) >= 0 || errno != ESRCH) {
		printf("FAIL: reading the dead %s gave %s, want ESRCH\n", after, strerror(errno));
		return 1;
	}
	if (syscall(SYS_getdents64, dir_fd, buf, sizeof(buf)) > 0 && errno != ESRCH) {
		/* a dead /proc/<pid> directory lists nothing (or fails) */
		char *name = buf + 19;
		if (strcmp(name, ".") && strcmp(name, ".."))
			return fail("the dead directory still lists entries");
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	int fi = open(path, O_RDONLY);
	n = fi >= 0 ? read(fi, fdinfo, sizeof(fdinfo) - 1) : -1;
	fdinfo[n > 0 ? n : 0] = 0;
	if (!strstr(fdinfo, "Pid:\t-1"))
		return fail("the pidfd does not report Pid: -1");
	if (kill(child, 0) == 0)
		return fail("the dead child's PID is in use after restore (helper left behind)");
	printf("PASS\n");
	return 0;
}
