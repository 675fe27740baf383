/*
 * The caller's credentials and the rules that keep a privileged cryo acting
 * for its caller only (see creds.h and docs/security.md).
 *
 * A cryo given cap_checkpoint_restore by setcap is started with AT_SECURE:
 * the caller's own capabilities are gone by then (file capabilities replace
 * them), so such a caller is taken to hold none. Without AT_SECURE, cryo's
 * permitted set is what the caller handed down (ambient capabilities).
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernel/creds.h"
#include "kernel/proc.h"
#include "util/util.h"

#define CAP_BIT(c) (1ull << (c))

static struct creds_caller caller;
static int caller_known;

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int get_caps(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	*eff = data[0].effective | (uint64_t)data[1].effective << 32;
	*prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	*inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	return 0;
}

/* Keep only CAP_CHECKPOINT_RESTORE beyond what the caller holds. */
static int drop_extra_caps(uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uint64_t keep = prm & (caller.caps | CAP_BIT(CAP_CHECKPOINT_RESTORE));

	if (keep == prm)
		return 0;
	data[0].effective = data[0].permitted = (uint32_t)keep;
	data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
	data[0].inheritable = (uint32_t)inh;
	data[1].inheritable = (uint32_t)(inh >> 32);
	if (syscall(SYS_capset, &hdr, data))
		return cryo_fail(CRYO_EINTERNAL, "cannot drop cryo's extra capabilities: %s",
				 strerror(errno));
	return 0;
}

int creds_init(void)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	struct proc_status st;
	uint64_t eff = 0, prm = 0, inh = 0;
	int n;

	if (caller_known)
		return 0;
	if (getresuid(&ruid, &euid, &suid) || getresgid(&rgid, &egid, &sgid) ||
	    get_caps(&eff, &prm, &inh) || proc_read_status(getpid(), &st))
		return cryo_fail(CRYO_EINTERNAL, "cannot read cryo's own credentials: %s",
				 strerror(errno));
	memset(&caller, 0, sizeof(caller));
	caller.raised = getauxval(AT_SECURE) != 0;
	caller.restricted = ruid || euid || suid || caller.raised;
	caller.uid = ruid;
	caller.gid = rgid;
	caller.caps = caller.raised ? 0 : prm;
	caller.cap_inh = inh;
	caller.cap_bnd = st.cap_bnd;
	caller.securebits = prctl(PR_GET_SECUREBITS) & ~SECBIT_KEEP_CAPS;
	caller.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
	n = getgroups(CRYO_MAX_GROUPS, (gid_t *)caller.groups);
	if (n < 0)
		return cryo_fail(CRYO_EUNSUPP, "the caller has more than %d supplementary groups",
				 CRYO_MAX_GROUPS);
	caller.ngroups = n;
	qsort(caller.groups, caller.ngroups, sizeof(uint32_t), cmp_u32);
	if (caller.restricted && (euid != ruid || suid != ruid || egid != rgid || sgid != rgid))
		return cryo_fail(CRYO_EPERM, "cryo runs with uid %u/%u/%u and gid %u/%u/%u "
				 "(installed setuid or setgid?): not supported; grant "
				 "cap_checkpoint_restore with setcap instead (docs/security.md)",
				 ruid, euid, suid, rgid, egid, sgid);
	if (caller.restricted) {
		int ret = drop_extra_caps(prm, inh);

		if (ret)
			return ret;
	}
	caller_known = 1;
	return 0;
}

const struct creds_caller *creds_caller(void)
{
	return &caller;
}

static int groups_equal(const struct cryo_img_task *t)
{
	uint32_t g[CRYO_MAX_GROUPS];
	uint32_t n = t->ngroups, m = 0;

	if (n > CRYO_MAX_GROUPS)
		return 0;
	memcpy(g, t->groups, n * sizeof(uint32_t));
	qsort(g, n, sizeof(uint32_t), cmp_u32);
	/* a set: the kernel keeps groups sorted, duplicates mean nothing */
	for (uint32_t i = 0; i < n; i++)
		if (!m || g[m - 1] != g[i])
			g[m++] = g[i];
	return m == caller.ngroups && !memcmp(g, caller.groups, m * sizeof(uint32_t));
}

int creds_mismatch(const struct cryo_img_task *t, int at_checkpoint, char *why, size_t len)
{
	static const char *const which[4] = { "real", "effective", "saved", "filesystem" };
	uint64_t extra;

	for (int i = 0; i < 4; i++) {
		if (t->uid[i] != caller.uid) {
			snprintf(why, len, "%s uid %u is not the caller's uid %u", which[i],
				 t->uid[i], caller.uid);
			return 1;
		}
		if (t->gid[i] != caller.gid) {
			snprintf(why, len, "%s gid %u is not the caller's gid %u", which[i],
				 t->gid[i], caller.gid);
			return 1;
		}
	}
	if (!groups_equal(t)) {
		snprintf(why, len, "its %u supplementary groups are not the caller's %u",
			 t->ngroups, caller.ngroups);
		return 1;
	}
	extra = (t->cap_prm | t->cap_eff | t->cap_amb) & ~caller.caps;
	if (extra) {
		snprintf(why, len, "it holds capabilities %#llx the caller does not have",
			 (unsigned long long)extra);
		return 1;
	}
	extra = t->cap_inh & ~(caller.caps | caller.cap_inh);
	if (extra) {
		snprintf(why, len, "inheritable capabilities %#llx exceed the caller's %#llx",
			 (unsigned long long)t->cap_inh, (unsigned long long)caller.cap_inh);
		return 1;
	}
	/* a smaller bounding set is no gain, but setting it needs CAP_SETPCAP */
	if (t->cap_bnd != caller.cap_bnd) {
		snprintf(why, len, "capability bounding set %#llx differs from the caller's %#llx",
			 (unsigned long long)t->cap_bnd, (unsigned long long)caller.cap_bnd);
		return 1;
	}
	if ((t->securebits & ~SECBIT_KEEP_CAPS) != caller.securebits) {
		snprintf(why, len, "securebits %#x differ from the caller's %#x", t->securebits,
			 caller.securebits);
		return 1;
	}
	if (!t->no_new_privs && caller.no_new_privs) {
		snprintf(why, len, "no_new_privs is off and the caller's is on");
		return 1;
	}
	if (at_checkpoint ? t->dumpable != 1 : t->dumpable > 1) {
		snprintf(why, len, "dumpable is %u (a setuid or setgid program, or "
			 "prctl(PR_SET_DUMPABLE))", t->dumpable);
		return 1;
	}
	return 0;
}

int creds_check_live(pid_t pid, pid_t tid)
{
	static struct cryo_img_task t;	/* big: not on the stack */
	struct proc_status st;
	struct stat sb;
	char path[64], why[160];
	int ret;

	if (!caller.restricted)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, tid);
	ret = proc_read_status(tid, &st);
	if (!ret && stat(path, &sb))
		ret = -errno;
	if (ret == -ENOENT || ret == -ESRCH)
		return CRYO_ENOPROC;
	if (ret)
		return cryo_fail(CRYO_EPERM, "process %d: cannot read its credentials: %s", pid,
				 strerror(-ret));
	memset(&t, 0, sizeof(t));
	memcpy(t.uid, st.uid, sizeof(t.uid));
	memcpy(t.gid, st.gid, sizeof(t.gid));
	t.ngroups = st.ngroups;
	memcpy(t.groups, st.groups, st.ngroups * sizeof(uint32_t));
	t.cap_inh = st.cap_inh;
	t.cap_prm = st.cap_prm;
	t.cap_eff = st.cap_eff;
	t.cap_bnd = st.cap_bnd;
	t.cap_amb = st.cap_amb;
	t.no_new_privs = st.no_new_privs;
	t.securebits = caller.securebits;	/* not in /proc; checked once frozen */
	/* the kernel gives /proc/PID of a task that is not dumpable to root */
	t.dumpable = sb.st_uid == caller.uid;
	if (!creds_mismatch(&t, 1, why, sizeof(why)))
		return 0;
	if (tid == pid)
		return cryo_fail(CRYO_EPERM, "process %d: %s: cryo acts for uid %u only", pid,
				 why, caller.uid);
	return cryo_fail(CRYO_EPERM, "process %d, thread %d: %s: cryo acts for uid %u only",
			 pid, tid, why, caller.uid);
}
