/*
 * Eight threads, each blocked in a different syscall (futex wait, nanosleep,
 * read on a pipe, absolute clock_nanosleep) with its own TLS value, name,
 * and blocked signal. After restore every thread must still have its TID,
 * TLS, name and mask, and its syscall must resume: woken by main after
 * SIGTERM, each returns as the kernel says it should (futex and read: the
 * value or data main sent; sleeps: EINTR from a SIGUSR1 handler).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NR_THREADS 8

static __thread long tls_value;
static volatile sig_atomic_t terminated;
static pid_t tids[NR_THREADS];
static pthread_t handles[NR_THREADS];
static int futex_words[NR_THREADS];
static int pipes[NR_THREADS][2];
static char failures[NR_THREADS][160];
static volatile int started;

static void on_term(int sig) { (void)sig; terminated = 1; }
static void on_usr1(int sig) { (void)sig; }

static int blocked_signal(long i) { return SIGRTMIN + 2 + (int)i; }

static void *worker(void *arg)
{
	long i = (long)arg;
	char name[16], got[16];
	sigset_t set, cur;
	char *why = failures[i];
	struct timespec ts;
	int r = 0, err = 0;
	char c = 0;

	tls_value = 7000 + i;
	tids[i] = syscall(SYS_gettid);
	snprintf(name, sizeof(name), "cryo-w%ld", i);
	prctl(PR_SET_NAME, name);
	sigemptyset(&set);
	sigaddset(&set, blocked_signal(i));
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);

	switch (i % 4) {
	case 0:	/* woken by main with FUTEX_WAKE after setting the word */
		while (__atomic_load_n(&futex_words[i], __ATOMIC_SEQ_CST) == 0)
			syscall(SYS_futex, &futex_words[i], FUTEX_WAIT, 0, NULL, NULL, 0);
		break;
	case 1:	/* relative sleep, interrupted by SIGUSR1 */
		ts.tv_sec = 100000;
		ts.tv_nsec = 0;
		r = nanosleep(&ts, NULL);
		err = errno;
		if (r != -1 || err != EINTR)
			snprintf(why, 160, "thread %ld: nanosleep returned %d/%s, want EINTR", i, r,
				 strerror(err));
		break;
	case 2:	/* read on a pipe: main writes one byte */
		r = read(pipes[i][0], &c, 1);
		if (r != 1 || c != (char)('a' + i))
			snprintf(why, 160, "thread %ld: read returned %d '%c'", i, r, c);
		break;
	case 3:	/* absolute sleep far away, interrupted by SIGUSR1 */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 100000;
		r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		if (r != EINTR)
			snprintf(why, 160, "thread %ld: clock_nanosleep returned %d, want EINTR", i, r);
		break;
	}
	if (!terminated && !why[0])
		snprintf(why, 160, "thread %ld: woke before SIGTERM", i);
	if (tls_value != 7000 + i && !why[0])
		snprintf(why, 160, "thread %ld: TLS %ld, want %ld", i, tls_value, 7000 + i);
	if (syscall(SYS_gettid) != tids[i] && !why[0])
		snprintf(why, 160, "thread %ld: TID %ld, was %d", i, syscall(SYS_gettid), tids[i]);
	prctl(PR_GET_NAME, got);
	if (strcmp(got, name) && !why[0])
		snprintf(why, 160, "thread %ld: name '%s', want '%s'", i, got, name);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (!sigismember(&cur, blocked_signal(i)) && !why[0])
		snprintf(why, 160, "thread %ld: signal %d no longer blocked", i, blocked_signal(i));
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	sigset_t block, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr1;	/* no SA_RESTART: sleeps return EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	/* only main takes SIGTERM */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (long i = 0; i < NR_THREADS; i++) {
		if (pipe(pipes[i]))
			return 1;
		pthread_create(&handles[i], NULL, worker, (void *)i);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR_THREADS)
		usleep(1000);
	usleep(100000);	/* let them enter their syscalls */
	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		sigsuspend(&old);

	for (long i = 0; i < NR_THREADS; i++) {
		switch (i % 4) {
		case 0:
			__atomic_store_n(&futex_words[i], 1, __ATOMIC_SEQ_CST);
			syscall(SYS_futex, &futex_words[i], FUTEX_WAKE, 1, NULL, NULL, 0);
			break;
		case 2:
			if (write(pipes[i][1], &(char){ (char)('a' + i) }, 1) != 1)
				return 1;
			break;
		default:
			pthread_kill(handles[i], SIGUSR1);
			break;
		}
	}
	for (long i = 0; i < NR_THREADS; i++)
		pthread_join(handles[i], NULL);
	for (long i = 0; i < NR_THREADS; i++)
		if (failures[i][0]) {
			printf("FAIL: %s\n", failures[i]);
			return 1;
		}
	printf("PASS\n");
	return 0;
}
