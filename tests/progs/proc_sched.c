/*
 * proc_sched: scheduling attributes, each different from what a fresh
 * process inherits:
 *  - nice 7 (setpriority);
 *  - policy SCHED_BATCH (sched_setscheduler, priority 0);
 *  - CPU affinity: one CPU only, the highest allowed one (only when more
 *    than one is allowed; otherwise not tested, with a comment);
 *  - I/O priority: best-effort class, level 6 (ioprio_set).
 * After SIGTERM each is read back and compared.
 */
#include "testlib.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define NICE 7
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_CLASS_BE 2
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 6)

static cpu_set_t affinity;
static int affinity_tested;

static void setup(void)
{
	cpu_set_t all;
	struct sched_param sp = { 0 };
	int last = -1;

	SYS(sched_setscheduler(0, SCHED_BATCH, &sp));
	SYS(setpriority(PRIO_PROCESS, 0, NICE));	/* after: the policy change keeps nice */
	SYS(syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO));
	SYS(sched_getaffinity(0, sizeof(all), &all));
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all))
			last = c;
	if (CPU_COUNT(&all) > 1) {
		CPU_ZERO(&affinity);
		CPU_SET(last, &affinity);
		SYS(sched_setaffinity(0, sizeof(affinity), &affinity));
		affinity_tested = 1;
	} else {
		note("only one CPU allowed: affinity not tested");
	}
}

static void check(void)
{
	cpu_set_t now;
	long v;

	errno = 0;
	v = getpriority(PRIO_PROCESS, 0);
	CHECK(errno == 0, "getpriority: %s", strerror(errno));
	CHECK_EQ_U64("nice", NICE, v);
	v = sched_getscheduler(0);
	CHECK(v == SCHED_BATCH, "scheduling policy %ld, want SCHED_BATCH (%d)", v, SCHED_BATCH);
	v = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	CHECK(v == IOPRIO, "I/O priority class %ld level %ld, want class %d level %d",
	      v >> IOPRIO_CLASS_SHIFT, v & 0xff, IOPRIO_CLASS_BE, IOPRIO & 0xff);
	if (affinity_tested) {
		CHECK(sched_getaffinity(0, sizeof(now), &now) == 0, "sched_getaffinity: %s",
		      strerror(errno));
		for (int c = 0; c < CPU_SETSIZE; c++)
			CHECK(CPU_ISSET(c, &now) == CPU_ISSET(c, &affinity),
			      "CPU affinity: CPU %d is %s, want %s", c,
			      CPU_ISSET(c, &now) ? "allowed" : "not allowed",
			      CPU_ISSET(c, &affinity) ? "allowed" : "not allowed");
	}
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
