/*
 * proc_creds: credentials that differ from a fresh root process's while
 * the process stays root (real and effective ids 0):
 *  - saved uid 4243, saved gid 4242 (as a set-user-ID program that dropped
 *    privileges temporarily would have them);
 *  - supplementary groups {0, 1234, 5678};
 *  - CAP_SYS_BOOT and CAP_WAKE_ALARM dropped from the bounding set, and
 *    CAP_SYS_BOOT from the permitted and effective sets;
 *  - PR_SET_KEEPCAPS 1 (a securebit);
 *  - and, set after the credentials because a credential change resets
 *    them, the parent-death signal (SIGUSR2) and dumpable 0.
 * After SIGTERM every one of them is compared (uids, gids, groups, the
 * three capability sets, the bounding set, keepcaps, pdeathsig, dumpable).
 *
 * Note for the checkpoint: with a saved uid different from the caller's,
 * prlimit() and other "same credentials" checks on this process need
 * CAP_SYS_RESOURCE, which root lacks on some machines (this VM).
 * SIGUSR2 has a counting handler: see proc_state.
 */
#include "testlib.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static struct __user_cap_data_struct caps_before[2];
static volatile int usr2;

static void on_usr2(int sig)
{
	(void)sig;
	usr2++;
}

static void capget_self(struct __user_cap_data_struct *d)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	if (syscall(SYS_capget, &h, d))
		fail("capget: %s", strerror(errno));
}

static void setup(void)
{
	gid_t groups[] = { 0, 1234, 5678 };
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	struct sigaction sa;

	if (geteuid() != 0)
		fail("setup: must run as root (it sets saved ids and groups)");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	SYS(sigaction(SIGUSR2, &sa, NULL));

	SYS(setgroups(3, groups));
	SYS(setresgid(0, 0, 4242));
	SYS(setresuid(0, 0, 4243));
	SYS(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0));
	SYS(prctl(PR_CAPBSET_DROP, CAP_WAKE_ALARM, 0, 0, 0));
	capget_self(d);
	d[0].effective &= ~(1U << CAP_SYS_BOOT);
	d[0].permitted &= ~(1U << CAP_SYS_BOOT);
	SYS(syscall(SYS_capset, &h, d));
	SYS(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	capget_self(caps_before);
	if (caps_before[0].permitted & (1U << CAP_SYS_BOOT))
		fail("setup: CAP_SYS_BOOT still permitted");

	/* after the credentials: a change of credentials resets these two */
	SYS(prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0));
	SYS(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
}

static void check(void)
{
	char what[64];
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[64];
	int v = -1;

	if (usr2)
		note("SIGUSR2 (the parent-death signal) arrived %d times: a parent of this "
		     "process exited",
		     usr2);
	CHECK(getresuid(&ru, &eu, &su) == 0 && ru == 0 && eu == 0 && su == 4243,
	      "uids (real effective saved) %d %d %d, want 0 0 4243", ru, eu, su);
	CHECK(getresgid(&rg, &eg, &sg) == 0 && rg == 0 && eg == 0 && sg == 4242,
	      "gids (real effective saved) %d %d %d, want 0 0 4242", rg, eg, sg);
	int ng = getgroups(64, groups);
	CHECK(ng == 3 && groups[0] == 0 && groups[1] == 1234 && groups[2] == 5678,
	      "supplementary groups: %d of them (%d %d %d), want 0 1234 5678", ng,
	      ng > 0 ? (int)groups[0] : -1, ng > 1 ? (int)groups[1] : -1,
	      ng > 2 ? (int)groups[2] : -1);
	CHECK_EQ_U64("PR_CAPBSET_READ CAP_SYS_BOOT", 0, prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0));
	CHECK_EQ_U64("PR_CAPBSET_READ CAP_WAKE_ALARM", 0,
		     prctl(PR_CAPBSET_READ, CAP_WAKE_ALARM, 0, 0, 0));
	CHECK_EQ_U64("PR_CAPBSET_READ CAP_KILL", 1, prctl(PR_CAPBSET_READ, CAP_KILL, 0, 0, 0));
	struct __user_cap_data_struct caps[2];
	capget_self(caps);
	for (int i = 0; i < 2; i++) {
		snprintf(what, sizeof(what), "effective capabilities [%d]", i);
		CHECK_EQ_U64(what, caps_before[i].effective, caps[i].effective);
		snprintf(what, sizeof(what), "permitted capabilities [%d]", i);
		CHECK_EQ_U64(what, caps_before[i].permitted, caps[i].permitted);
		snprintf(what, sizeof(what), "inheritable capabilities [%d]", i);
		CHECK_EQ_U64(what, caps_before[i].inheritable, caps[i].inheritable);
	}
	CHECK_EQ_U64("PR_GET_KEEPCAPS", 1, prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
	CHECK(prctl(PR_GET_PDEATHSIG, &v, 0, 0, 0) == 0, "PR_GET_PDEATHSIG: %s", strerror(errno));
	CHECK_EQ_U64("PR_GET_PDEATHSIG", SIGUSR2, v);
	CHECK_EQ_U64("PR_GET_DUMPABLE", 0, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
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
