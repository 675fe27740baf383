/*
 * A three-level tree: main -> middle -> leaf, connected by pipes that carry
 * data in flight at checkpoint time, plus two zombies (one exited with 42,
 * one killed by SIGUSR2) that main reaps only after restore, and a file
 * whose open description (and offset) main shares with its children.
 * After restore: the pipes deliver exactly what was written, before and
 * after; the zombies report their saved status; the shared offset moves
 * for everybody; every process kept its PID and parent.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define IN_FLIGHT 1000
#define AFTER 2000

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

static long drain(int fd)
{
	char buf[512];
	long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			total += n;
	return total;
}

/* leaf: counts what the middle forwards, exits 0 if all of it arrived */
static void leaf(int in)
{
	_exit(drain(in) == IN_FLIGHT + AFTER ? 0 : 1);
}

/*
 * middle: forwards main's bytes to the leaf, checks its parent, moves the
 * offset of the file it shares with main, exits with the leaf's status
 */
static void middle(int in, pid_t parent, int shared)
{
	int down[2], st;
	pid_t l;
	char buf[256];
	ssize_t n;

	if (pipe(down))
		_exit(2);
	l = fork();
	if (l == 0) {
		close(down[1]);
		close(in);
		leaf(down[0]);
	}
	close(down[0]);
	while ((n = read(in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && write(down[1], buf, n) != n)
			_exit(3);
	close(down[1]);
	if (getppid() != parent)
		_exit(4);
	if (lseek(shared, 7, SEEK_SET) != 7)
		_exit(6);
	if (waitpid(l, &st, 0) != l || !WIFEXITED(st))
		_exit(5);
	_exit(WEXITSTATUS(st));
}

int main(void)
{
	struct sigaction sa;
	char block[AFTER];
	int up[2], shared, st;
	pid_t zombie_exit, zombie_sig, mid, me = getpid();
	off_t before;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	shared = open("shared.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (shared < 0 || write(shared, "0123456789", 10) != 10 || lseek(shared, 3, SEEK_SET) != 3)
		return 1;
	if (pipe(up))
		return 1;
	zombie_exit = fork();
	if (zombie_exit == 0)
		_exit(42);
	zombie_sig = fork();
	if (zombie_sig == 0) {
		pause();
		_exit(0);
	}
	kill(zombie_sig, SIGUSR2);
	mid = fork();
	if (mid == 0) {
		close(up[1]);
		middle(up[0], me, shared);
	}
	close(up[0]);
	memset(block, 'x', sizeof(block));
	if (write(up[1], block, IN_FLIGHT) != IN_FLIGHT)
		return 1;
	usleep(200000);	/* let the zombies die and the data travel */
	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		pause();

	before = lseek(shared, 0, SEEK_CUR);
	if (before != 3) {
		printf("FAIL: shared offset %ld, want 3\n", (long)before);
		return 1;
	}
	if (write(up[1], block, AFTER) != AFTER)
		return 1;
	close(up[1]);
	if (waitpid(zombie_exit, &st, 0) != zombie_exit || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 42) {
		printf("FAIL: zombie %d: status %#x, want exit 42\n", zombie_exit, st);
		return 1;
	}
	if (waitpid(zombie_sig, &st, 0) != zombie_sig || !WIFSIGNALED(st) ||
	    WTERMSIG(st) != SIGUSR2) {
		printf("FAIL: zombie %d: status %#x, want killed by SIGUSR2\n", zombie_sig, st);
		return 1;
	}
	if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL: middle %d: status %#x (1: leaf lost data, 4: wrong parent)\n", mid,
		       st);
		return 1;
	}
	if (lseek(shared, 0, SEEK_CUR) != 7) {
		printf("FAIL: offset moved by the child is %ld in the parent, want 7 (not shared)\n",
		       (long)lseek(shared, 0, SEEK_CUR));
		return 1;
	}
	printf("PASS\n");
	return 0;
}
