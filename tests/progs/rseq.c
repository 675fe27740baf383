/*
 * rseq: the restartable-sequences registration of the thread. glibc
 * registers a struct rseq in every thread's TLS (at thread pointer +
 * __rseq_offset); without glibc's (tunable off, old glibc) the program
 * registers its own. The kernel keeps the registration (address, length,
 * signature) outside the process's memory: a restore must register it
 * again, or glibc's sched_getcpu and every rseq user read a stale CPU.
 *
 * After SIGTERM:
 *  - registering the same area again must fail with EBUSY (it is still
 *    registered with exactly these parameters; 0 means it was not, EINVAL
 *    that it was, with other ones);
 *  - the kernel still updates it: the program moves itself to each
 *    allowed CPU in turn and the area's cpu_id must follow (getcpu).
 */
#include "testlib.h"

#include <linux/rseq.h>
#include <stddef.h>
#include <sched.h>
#include <sys/syscall.h>

#define RSEQ_SIG 0x53053053	/* x86: what glibc uses */

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static struct rseq own __attribute__((aligned(32)));
static volatile struct rseq *area;
static unsigned int area_len;

static long sys_rseq(volatile struct rseq *r, unsigned int len, int flags, unsigned int sig)
{
	return syscall(SYS_rseq, r, len, flags, sig);
}

int main(void)
{
	cpu_set_t all, one;
	long r;

	install_sigterm(SA_RESTART);
	if (&__rseq_size && __rseq_size > 0) {
		area = (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		area_len = __rseq_size < 32 ? 32 : __rseq_size;
		note("glibc's rseq area, %u bytes", area_len);
	} else {
		area = &own;
		area_len = sizeof(own);
		SYS(sys_rseq(area, area_len, 0, RSEQ_SIG));
		note("own rseq area (glibc did not register one)");
	}
	/* the registration holds: a second one with the same parameters is EBUSY */
	if (sys_rseq(area, area_len, 0, RSEQ_SIG) != -1 || errno != EBUSY)
		fail("setup: re-registering the rseq area did not give EBUSY (size %u)", area_len);
	if ((int)area->cpu_id < 0)
		fail("setup: rseq cpu_id is %d", (int)area->cpu_id);
	SYS(sched_getaffinity(0, sizeof(all), &all));
	ready();
	wait_for_sigterm();

	r = sys_rseq(area, area_len, 0, RSEQ_SIG);
	if (r == 0)
		fail("rseq: registering the area again succeeded: it was not registered after the "
		     "restore");
	CHECK(errno == EBUSY,
	      "rseq: registering the area again (%p, %u bytes) gave %s, want EBUSY (registered "
	      "with other parameters?)",
	      (void *)area, area_len, strerror(errno));
	for (int pass_ = 0; pass_ < 2; pass_++)
		for (int c = 0; c < CPU_SETSIZE; c++) {
			if (!CPU_ISSET(c, &all))
				continue;
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "sched_setaffinity(%d): %s",
			      c, strerror(errno));
			unsigned cpu = 0;
			CHECK(syscall(SYS_getcpu, &cpu, NULL, NULL) == 0, "getcpu: %s", strerror(errno));
			CHECK(cpu == (unsigned)c, "getcpu says %u after moving to CPU %d", cpu, c);
			CHECK(area->cpu_id == cpu && area->cpu_id_start == cpu,
			      "rseq area: cpu_id %d, cpu_id_start %u on CPU %u: the kernel does not "
			      "update it",
			      (int)area->cpu_id, area->cpu_id_start, cpu);
		}
	sched_setaffinity(0, sizeof(all), &all);
	pass();
}
