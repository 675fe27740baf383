/*
 * Shared anonymous memory: one MAP_SHARED|MAP_ANONYMOUS region shared by a
 * parent and its child, part of it made read-only after fork (so the
 * parent's region is two areas of one object), and a /dev/zero shared
 * mapping private to the parent. After restore: contents intact, and a
 * write by one process after restore is seen by the other (still shared),
 * through both of the parent's areas.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGION (64 * 4096)
#define HALF (REGION / 2)

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

int main(void)
{
	struct sigaction sa;
	unsigned char *shared, *zero;
	int zfd, go[2], st;
	pid_t child;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	shared = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	zfd = open("/dev/zero", O_RDWR);
	zero = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	close(zfd);
	if (shared == MAP_FAILED || zero == MAP_FAILED || pipe(go))
		return 1;
	for (int i = 0; i < REGION; i++)
		shared[i] = (unsigned char)(i * 7 + 1);
	memset(zero + 4096, 0x5a, 4096);
	child = fork();
	if (child == 0) {
		char c;
		close(go[1]);
		/* wait until after restore, then write where the parent will look */
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		shared[HALF + 5] = 0xee;
		shared[3] = 0xdd;
		_exit(shared[100] == (unsigned char)(100 * 7 + 1) ? 0 : 3);
	}
	close(go[0]);
	mprotect(shared + HALF, HALF, PROT_READ);	/* two areas, one object */
	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		pause();

	for (int i = 0; i < REGION; i++)
		if (shared[i] != (unsigned char)(i * 7 + 1)) {
			printf("FAIL: shared byte %d is %d\n", i, shared[i]);
			return 1;
		}
	if (zero[4096] != 0x5a || zero[0] != 0) {
		printf("FAIL: /dev/zero shared mapping content\n");
		return 1;
	}
	if (write(go[1], "g", 1) != 1 || waitpid(child, &st, 0) != child || !WIFEXITED(st) ||
	    WEXITSTATUS(st)) {
		printf("FAIL: child status %#x\n", st);
		return 1;
	}
	if (shared[HALF + 5] != 0xee || shared[3] != 0xdd) {
		printf("FAIL: the child's writes are not seen by the parent (not shared)\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
