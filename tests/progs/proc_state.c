/*
 * proc_state: per-process attributes, each set to a value a fresh process
 * would not have.
 *
 *  - cwd: a subdirectory of TEST_DIR; umask 027;
 *  - rlimits: soft limits lowered (NOFILE 512, STACK 7 MiB, NPROC, CPU,
 *    FSIZE, MEMLOCK, SIGPENDING, MSGQUEUE, LOCKS), hard limits lowered for
 *    CORE and NOFILE; all 16 compared after;
 *  - prctl: PR_SET_NAME "cryo-test-name" (also /proc/self/comm),
 *    PR_SET_PDEATHSIG SIGUSR2, PR_SET_DUMPABLE 0, PR_SET_CHILD_SUBREAPER 1,
 *    PR_SET_TIMERSLACK 12345 ns, PR_SET_NO_NEW_PRIVS 1 (a restore that
 *    drops it hands back privileges), PR_SET_THP_DISABLE 1;
 *  - personality ADDR_NO_RANDOMIZE|UNAME26 (matters only at exec, and for
 *    uname(): the release must read "2.6.x").
 * Credentials are in proc_creds, scheduling (nice, policy, affinity,
 * I/O priority) in proc_sched. The restore must set the parent-death
 * signal and the dumpable flag after the credentials: changing
 * credentials resets both in the kernel.
 *
 * SIGUSR2 (the parent-death signal) has a counting handler: if the restore
 * makes the restored process's parent exit (cryo restore --detach), the
 * kernel sends it; that is reported as a comment, not a failure.
 */
#include "testlib.h"

#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
#endif

#define NAME "cryo-test-name"
#define TIMERSLACK 12345
#define PERS (ADDR_NO_RANDOMIZE | UNAME26)

static struct rlimit rl_before[RLIM_NLIMITS];
static const char *rl_names[RLIM_NLIMITS] = {
	"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
	"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
};
static char cwd_before[4096];
static volatile int usr2;

static void on_usr2(int sig)
{
	(void)sig;
	usr2++;
}

/* lower the soft limit to soft (if it is lower than now), the hard one to hard (ditto) */
static void lower(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;

	SYS(getrlimit(res, &rl));
	if (hard != RLIM_INFINITY && (rl.rlim_max == RLIM_INFINITY || hard < rl.rlim_max))
		rl.rlim_max = hard;
	if (soft < rl.rlim_cur || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = soft;
	if (rl.rlim_cur > rl.rlim_max && rl.rlim_max != RLIM_INFINITY)
		rl.rlim_cur = rl.rlim_max;
	SYS(setrlimit(res, &rl));
}

static void setup(void)
{
	const char *td = getenv("TEST_DIR");
	struct sigaction sa;

	if (!td)
		fail("setup: TEST_DIR is not set");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	SYS(sigaction(SIGUSR2, &sa, NULL));

	SYS(chdir(td));
	SYS(mkdir("sub", 0755));
	SYS(mkdir("sub/dir", 0755));
	SYS(chdir("sub/dir"));
	if (!getcwd(cwd_before, sizeof(cwd_before)))
		fail("setup: getcwd: %s", strerror(errno));
	umask(027);

	lower(RLIMIT_NOFILE, 512, 4096);
	lower(RLIMIT_STACK, 7 << 20, RLIM_INFINITY);
	lower(RLIMIT_CORE, 0, 1 << 20);
	lower(RLIMIT_NPROC, 3333, RLIM_INFINITY);
	lower(RLIMIT_CPU, 100000, RLIM_INFINITY);
	lower(RLIMIT_FSIZE, 1UL << 40, RLIM_INFINITY);
	lower(RLIMIT_MEMLOCK, 1 << 20, RLIM_INFINITY);
	lower(RLIMIT_SIGPENDING, 777, RLIM_INFINITY);
	lower(RLIMIT_MSGQUEUE, 65536, RLIM_INFINITY);
	lower(RLIMIT_LOCKS, 4444, RLIM_INFINITY);
	for (int i = 0; i < RLIM_NLIMITS; i++)
		SYS(getrlimit(i, &rl_before[i]));

	SYS(prctl(PR_SET_NAME, NAME, 0, 0, 0));
	SYS(prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0));
	SYS(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
	SYS(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
	SYS(prctl(PR_SET_TIMERSLACK, TIMERSLACK, 0, 0, 0));
	SYS(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	SYS(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
	SYS(personality(PERS));
}

static void check(void)
{
	char buf[4096], what[64];
	struct rlimit rl;
	int v = -1;

	if (usr2)
		note("SIGUSR2 (the parent-death signal) arrived %d times: a parent of this "
		     "process exited",
		     usr2);
	CHECK(getcwd(buf, sizeof(buf)) != NULL, "getcwd: %s", strerror(errno));
	CHECK_EQ_STR("cwd", cwd_before, buf);
	mode_t m = umask(0);
	umask(m);
	CHECK(m == 027, "umask %03o, want 027", m);

	for (int i = 0; i < RLIM_NLIMITS; i++) {
		CHECK(getrlimit(i, &rl) == 0, "getrlimit: %s", strerror(errno));
		snprintf(what, sizeof(what), "RLIMIT_%s soft", rl_names[i]);
		CHECK_EQ_U64(what, rl_before[i].rlim_cur, rl.rlim_cur);
		snprintf(what, sizeof(what), "RLIMIT_%s hard", rl_names[i]);
		CHECK_EQ_U64(what, rl_before[i].rlim_max, rl.rlim_max);
	}

	memset(buf, 0, 32);
	CHECK(prctl(PR_GET_NAME, buf, 0, 0, 0) == 0, "PR_GET_NAME: %s", strerror(errno));
	CHECK_EQ_STR("PR_GET_NAME", NAME, buf);
	CHECK(read_file("/proc/self/comm", buf, sizeof(buf)) > 0, "cannot read /proc/self/comm");
	buf[strcspn(buf, "\n")] = 0;
	CHECK_EQ_STR("/proc/self/comm", NAME, buf);
	CHECK(prctl(PR_GET_PDEATHSIG, &v, 0, 0, 0) == 0, "PR_GET_PDEATHSIG: %s", strerror(errno));
	CHECK_EQ_U64("PR_GET_PDEATHSIG", SIGUSR2, v);
	CHECK_EQ_U64("PR_GET_DUMPABLE", 0, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	v = -1;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0) == 0, "PR_GET_CHILD_SUBREAPER: %s",
	      strerror(errno));
	CHECK_EQ_U64("PR_GET_CHILD_SUBREAPER", 1, v);
	CHECK_EQ_U64("PR_GET_TIMERSLACK", TIMERSLACK, prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
	CHECK_EQ_U64("PR_GET_NO_NEW_PRIVS", 1, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	CHECK_EQ_U64("PR_GET_THP_DISABLE", 1, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	CHECK_EQ_U64("personality", PERS, personality(0xffffffff));
	struct utsname u;
	CHECK(uname(&u) == 0, "uname: %s", strerror(errno));
	CHECK(!strncmp(u.release, "2.6.", 4), "uname release '%s', want 2.6.x (UNAME26)", u.release);
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
