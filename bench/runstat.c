/*
 * Run a command and report its wall time and peak resident set size.
 *
 * usage: runstat [-w MIB] OUTFILE COMMAND [ARG...]
 *
 * -w MIB: before starting the clock, allocate MIB MiB of memory, touch it
 * and free it. In a VM whose host takes back the guest's free memory
 * (virtio-balloon free page reporting, as here), the first touch of a page
 * the host no longer backs costs several times a normal allocation: without
 * this, a command that allocates memory (tmpfs pages for an image, the
 * restored process's memory) is timed 1 to 4 times slower depending on how
 * long the memory it gets happened to sit free. The warm-up does not count
 * in the time.
 *
 * COMMAND runs with this program's stdin, stdout and stderr. When it ends,
 * OUTFILE gets one line "seconds=S maxrss_kib=K status=X" (X: exit status,
 * or 128+signal) and runstat exits with the same status. maxrss_kib is
 * wait4()'s ru_maxrss: the peak RSS of COMMAND, or of the largest of the
 * descendants it waited for, whichever is larger.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	double t0, t1;
	int status, code;
	FILE *out;
	pid_t pid;

	if (argc >= 3 && !strcmp(argv[1], "-w")) {
		size_t bytes = strtoul(argv[2], NULL, 10) << 20;
		void *p = bytes ? mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0) : MAP_FAILED;

		if (p != MAP_FAILED)
			munmap(p, bytes);
		argc -= 2;
		argv += 2;
	}
	if (argc < 3) {
		fputs("usage: runstat [-w MIB] OUTFILE COMMAND [ARG...]\n", stderr);
		return 64;
	}
	out = fopen(argv[1], "we");
	if (!out) {
		fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
		return 70;
	}
	t0 = now_s();
	pid = fork();
	if (pid < 0) {
		perror("runstat: fork");
		return 70;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "runstat: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("runstat: wait4");
			return 70;
		}
	t1 = now_s();
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	fprintf(out, "seconds=%.6f maxrss_kib=%ld status=%d\n", t1 - t0, ru.ru_maxrss, code);
	fclose(out);
	return code;
}
