/*
 * Signals pending privately on a secondary thread (pthread_kill while the
 * thread blocks them) must stay that thread's after restore, not move to
 * the main thread; one pending on the process queue stays process-wide.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t terminated;
static volatile int worker_go, worker_ready;
static char verdict[160];

static void on_term(int sig) { (void)sig; terminated = 1; }

static void *worker(void *arg)
{
	sigset_t pending;

	(void)arg;
	worker_ready = 1;
	while (!worker_go)
		usleep(1000);
	sigpending(&pending);	/* private and process-wide, as the kernel reports them */
	if (!sigismember(&pending, SIGUSR1))
		snprintf(verdict, sizeof(verdict), "SIGUSR1 no longer pending on the thread");
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	sigset_t block, pending;
	pthread_t th;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, NULL);	/* inherited by the worker */
	pthread_create(&th, NULL, worker, NULL);
	while (!worker_ready)
		usleep(1000);
	pthread_kill(th, SIGUSR1);	/* private to the worker */
	kill(getpid(), SIGUSR2);	/* process-wide */
	printf("READY\n");
	fflush(stdout);
	while (!terminated)
		pause();

	sigpending(&pending);
	if (sigismember(&pending, SIGUSR1)) {
		printf("FAIL: the worker's private SIGUSR1 is pending on the main thread\n");
		return 1;
	}
	if (!sigismember(&pending, SIGUSR2)) {
		printf("FAIL: process-wide SIGUSR2 no longer pending\n");
		return 1;
	}
	worker_go = 1;
	pthread_join(th, NULL);
	if (verdict[0]) {
		printf("FAIL: %s\n", verdict);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
