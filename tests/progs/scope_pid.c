/*
 * scope_pid: checkpointed with `--pid` (the runner picks the scope from the
 * name): one process with a second thread and no children, the case --pid
 * exists for. The thread blocks in read() on a pipe main writes to after
 * restore.
 * After SIGTERM: the thread is there with its TID and gets main's message.
 */
#include "testlib.h"

#include <pthread.h>
#include <sys/syscall.h>

static int pipefd[2];
static volatile pid_t thread_tid;
static char received[8];

static void *reader(void *arg)
{
	(void)arg;
	thread_tid = syscall(SYS_gettid);
	if (read(pipefd[0], received, sizeof(received) - 1) < 0)
		received[0] = '!';
	return NULL;
}

int main(void)
{
	pthread_t t;
	pid_t tid;

	SYS(pipe(pipefd));
	if (pthread_create(&t, NULL, reader, NULL))
		fail("setup: pthread_create");
	while (!thread_tid)
		usleep(1000);
	tid = thread_tid;
	usleep(50000);	/* let it block in read() */
	ready();
	wait_for_sigterm();

	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d", tid);
	CHECK(access(path, F_OK) == 0, "thread %d is gone", tid);
	CHECK(write(pipefd[1], "ping", 4) == 4, "cannot write to the pipe");
	pthread_join(t, NULL);
	CHECK_EQ_STR("what the thread read", "ping", received);
	pass();
}
