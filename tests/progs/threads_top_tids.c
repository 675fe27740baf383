/*
 * threads_top_tids: a child with a thread whose ID is the highest the
 * kernel hands out (pid_max - 1; if another task holds it, one of the next
 * few down), and a parent with 192 MiB of data. A restore must bring every
 * ID back exactly, wherever it sits in the ID space. Compressed, the
 * parent's pages are decompressed by extra threads of the parent, started
 * from the top of the ID space down while the child's restorer creates its
 * threads: they must step around every ID the image holds, or the child's
 * thread could not get its own. After SIGTERM the child checks each
 * thread's TID and that it has exactly its own threads; the parent checks
 * its data.
 */
#include "testlib.h"

#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MAX_THREADS 32
#define BIG (192UL << 20)
#define SEED 0x70b71d5ULL

static long pid_max;
static pid_t want_tid[MAX_THREADS];
static char thread_why[MAX_THREADS][128];
static int wake_word;

static void set_last_pid(long last)
{
	FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");

	if (!f || fprintf(f, "%ld", last) < 0 || fclose(f))
		fail("cannot write /proc/sys/kernel/ns_last_pid: %s", strerror(errno));
}

static void *thread_main(void *arg)
{
	long i = (long)arg;

	want_tid[i] = (pid_t)syscall(SYS_gettid);
	while (!__atomic_load_n(&wake_word, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &wake_word, FUTEX_WAIT, 0, NULL, NULL, 0);
	if (syscall(SYS_gettid) != want_tid[i])
		snprintf(thread_why[i], sizeof(thread_why[i]), "thread %ld: TID %ld, want %d",
			 i, syscall(SYS_gettid), want_tid[i]);
	return NULL;
}

/* The child: threads at the top IDs; on a byte from `in`, checks, answers on `out`. */
static void child_main(int in, int out)
{
	pthread_t h[MAX_THREADS];
	char why[256] = "", c;
	int nr_tasks = 0, nr_threads = 0, top = 0;
	DIR *d;
	struct dirent *e;

	/* aim at the top ID; if some other task keeps it, at the next ones down */
	while (!top && nr_threads < MAX_THREADS) {
		long i = nr_threads++, target = pid_max - 1 - i / 4;

		set_last_pid(target - 1);
		if (pthread_create(&h[i], NULL, thread_main, (void *)i))
			fail("pthread_create failed");
		while (!__atomic_load_n(&want_tid[i], __ATOMIC_SEQ_CST))
			usleep(1000);
		top = want_tid[i] == target;
	}
	if (!top)
		fail("no thread got a TID at the top (%ld...%ld) in %d tries", pid_max - 1,
		     pid_max - MAX_THREADS / 4, MAX_THREADS);
	if (write(out, "R", 1) != 1)
		_exit(2);
	if (read(in, &c, 1) != 1)
		_exit(2);
	__atomic_store_n(&wake_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &wake_word, FUTEX_WAKE, MAX_THREADS, NULL, NULL, 0);
	for (int i = 0; i < nr_threads; i++) {
		pthread_join(h[i], NULL);
		if (thread_why[i][0] && !why[0])
			copy_str(why, sizeof(why), thread_why[i]);
	}
	/* nothing else may run in this process: only the main thread is left */
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d)))
		nr_tasks += e->d_name[0] != '.';
	if (d)
		closedir(d);
	if (!why[0] && nr_tasks != 1)
		snprintf(why, sizeof(why), "%d tasks in /proc/self/task after the joins, want 1",
			 nr_tasks);
	if (!why[0])
		copy_str(why, sizeof(why), "OK");
	if (write(out, why, strlen(why)) < 0)
		_exit(2);
	_exit(0);
}

int main(void)
{
	int down[2], up[2], status;
	char answer[256], c;
	unsigned char *p;
	uint64_t before;
	ssize_t n;
	pid_t child;
	FILE *f;

	install_sigterm(SA_RESTART);
	f = fopen("/proc/sys/kernel/pid_max", "r");
	if (!f || fscanf(f, "%ld", &pid_max) != 1)
		fail("cannot read /proc/sys/kernel/pid_max");
	fclose(f);
	SYS(pipe(down));
	SYS(pipe(up));
	child = SYS(fork());
	if (!child) {
		close(down[1]);
		close(up[0]);
		child_main(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	if (read(up[0], &c, 1) != 1)
		fail("the child did not start its threads");
	p = (void *)SYS(mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	fill_pattern(p, BIG, SEED);
	before = hash64(p, BIG);
	note("child %d has a thread at the top of the ID space (pid_max %ld); 192 MiB hashed %016llx",
	     child, pid_max, (unsigned long long)before);
	ready();
	wait_for_sigterm();

	if (write(down[1], "C", 1) != 1)
		fail("cannot wake the child: %s", strerror(errno));
	n = read(up[0], answer, sizeof(answer) - 1);
	if (n <= 0)
		fail("no answer from the child");
	answer[n] = 0;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("child %d: exit status %#x", child, status);
	if (strcmp(answer, "OK"))
		fail("child: %s", answer);
	if (hash64(p, BIG) != before) {
		expect_pattern("192 MiB area", p, BIG, SEED);
		fail("192 MiB area: hash changed");
	}
	pass();
}
