/*
 * Collect the per-process and per-thread state of a frozen task: IDs,
 * credentials, limits, mm bounds, registers, signal state, timers and prctl
 * knobs. What /proc and ptrace cannot tell (sigactions, itimers, brk, the
 * sigaltstack, several prctl values) is asked by syscalls run inside the
 * task (kernel/ptrace.c injection).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "dump/dump.h"
#include "kernel/creds.h"
#include "util/util.h"

#define CRYO_PTRACE_GET_RSEQ_CONFIGURATION 0x420f
struct cryo_rseq_configuration {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

static int inject_value(struct dump_ctx *c, struct frozen_task *t, long nr, uint64_t a1,
			uint64_t a2, uint64_t a3, int64_t *out, const char *what)
{
	int ret = inject_syscall(t, nr, a1, a2, a3, 0, 0, 0, out);

	if (ret)
		return ret;
	if (*out < 0 && *out > -4096)
		return cryo_fail(CRYO_EINTERNAL, "task %d of process %d: %s failed inside it: %s",
				 t->tid, c->pid, what, strerror((int)-*out));
	return 0;
}

/* Run a syscall whose result is written to scratch memory, then copy it out. */
static int inject_out(struct dump_ctx *c, struct frozen_task *t, long nr, uint64_t a1,
		      uint64_t a2_is_scratch, uint64_t a3, void *out, size_t len, const char *what)
{
	int64_t r;
	uint64_t scratch = t->scratch;
	int ret;

	/* a2_is_scratch selects which argument points at the scratch buffer */
	if (a2_is_scratch)
		ret = inject_value(c, t, nr, a1, scratch, a3, &r, what);
	else
		ret = inject_value(c, t, nr, a1, a3, scratch, &r, what);
	if (ret)
		return ret;
	ret = inject_read(t, 0, out, len);
	if (ret)
		return cryo_fail(CRYO_EINTERNAL, "process %d: reading result of %s: %s", c->pid,
				 what, strerror(-ret));
	return 0;
}

static int collect_sigactions(struct dump_ctx *c)
{
	struct frozen_task *main = &c->threads[0];

	for (int sig = 1; sig <= CRYO_NSIG; sig++) {
		struct cryo_img_sigaction *sa = &c->img_task.sigactions[sig - 1];
		char what[48];
		int64_t r;
		int ret;

		snprintf(what, sizeof(what), "rt_sigaction(%d)", sig);
		/* the kernel wants the sigset size as 4th argument */
		ret = inject_syscall(main, __NR_rt_sigaction, sig, 0, main->scratch,
				     sizeof(uint64_t), 0, 0, &r);
		if (ret)
			return ret;
		if (r < 0)
			return cryo_fail(CRYO_EINTERNAL, "process %d: %s failed inside the task: %s",
					 c->pid, what, strerror((int)-r));
		if (inject_read(main, 0, sa, sizeof(*sa)))
			return cryo_fail(CRYO_EINTERNAL, "process %d: reading result of %s", c->pid,
					 what);
	}
	return 0;
}

/* Process-wide state only the task can tell, asked through its main thread. */
static int collect_injected_process(struct dump_ctx *c)
{
	struct cryo_img_task *t = &c->img_task;
	struct frozen_task *main = &c->threads[0];
	int64_t r;
	int ret, val;

	ret = collect_sigactions(c);
	if (ret)
		return ret;
	for (int which = 0; which < 3; which++) {
		struct itimerval itv;

		ret = inject_out(c, main, __NR_getitimer, which, 1, 0, &itv, sizeof(itv),
				 "getitimer");
		if (ret)
			return ret;
		t->itimers[which].interval_sec = itv.it_interval.tv_sec;
		t->itimers[which].interval_usec = itv.it_interval.tv_usec;
		t->itimers[which].value_sec = itv.it_value.tv_sec;
		t->itimers[which].value_usec = itv.it_value.tv_usec;
	}
	ret = inject_value(c, main, __NR_brk, 0, 0, 0, &r, "brk");
	if (ret)
		return ret;
	t->brk = r;
	ret = inject_out(c, main, __NR_prctl, PR_GET_PDEATHSIG, 1, 0, &val, sizeof(val),
			 "prctl(PR_GET_PDEATHSIG)");
	if (ret)
		return ret;
	t->pdeathsig = val;
	ret = inject_out(c, main, __NR_prctl, PR_GET_CHILD_SUBREAPER, 1, 0, &val, sizeof(val),
			 "prctl(PR_GET_CHILD_SUBREAPER)");
	if (ret)
		return ret;
	t->child_subreaper = val;
	ret = inject_value(c, main, __NR_prctl, PR_GET_DUMPABLE, 0, 0, &r,
			   "prctl(PR_GET_DUMPABLE)");
	if (ret)
		return ret;
	t->dumpable = r;
	ret = inject_value(c, main, __NR_prctl, PR_GET_TIMERSLACK, 0, 0, &r,
			   "prctl(PR_GET_TIMERSLACK)");
	if (ret)
		return ret;
	t->timerslack_ns = r;
	ret = inject_value(c, main, __NR_prctl, PR_GET_THP_DISABLE, 0, 0, &r,
			   "prctl(PR_GET_THP_DISABLE)");
	if (ret)
		return ret;
	t->thp_disable = r;
	ret = inject_value(c, main, __NR_prctl, PR_GET_SECUREBITS, 0, 0, &r,
			   "prctl(PR_GET_SECUREBITS)");
	if (ret)
		return ret;
	t->securebits = r;
	return 0;
}

/* Per-thread state only the thread can tell. */
static int collect_injected_thread(struct dump_ctx *c, int i)
{
	struct frozen_task *ft = &c->threads[i];
	struct cryo_img_thread *th = &c->img_threads[i];
	struct {
		uint64_t sp;
		int32_t flags;
		int32_t pad;
		uint64_t size;
	} ss;
	uint64_t tid_address;
	int ret;

	/* threads share the address space: the main thread's vDSO lookup serves all */
	ft->syscall_insn = c->threads[0].syscall_insn;
	ret = inject_prepare(ft);
	if (ret)
		return ret;
	ret = inject_out(c, ft, __NR_sigaltstack, 0, 1, 0, &ss, sizeof(ss), "sigaltstack");
	if (ret)
		return ret;
	th->sas_sp = ss.sp;
	th->sas_flags = ss.flags;
	th->sas_size = ss.size;
	ret = inject_out(c, ft, __NR_prctl, PR_GET_TID_ADDRESS, 1, 0, &tid_address,
			 sizeof(tid_address), "prctl(PR_GET_TID_ADDRESS)");
	if (ret)
		return ret;
	th->clear_child_tid = tid_address;
	return 0;
}

static int add_siginfo(struct dump_ctx *c, pid_t tid, const siginfo_t *si)
{
	struct cryo_img_siginfo *s = realloc(c->sigs, (c->nr_sigs + 1) * sizeof(*s));

	if (!s)
		return CRYO_EINTERNAL;
	c->sigs = s;
	s[c->nr_sigs].tid = tid;
	s[c->nr_sigs].pid = c->pid;
	memcpy(s[c->nr_sigs].info, si, sizeof(siginfo_t));
	c->nr_sigs++;
	return 0;
}

/* Pending signals of one queue: a thread's private one, or the shared one (tid 0). */
static int collect_queue(struct dump_ctx *c, pid_t tid, int shared)
{
	struct __ptrace_peeksiginfo_args args = {
		.off = 0, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = 16,
	};
	siginfo_t si[16];

	for (;;) {
		long n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, si);

		if (n < 0)
			return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_PEEKSIGINFO: %s", tid,
					 strerror(errno));
		if (n == 0)
			return 0;
		for (long i = 0; i < n; i++)
			if (add_siginfo(c, shared ? 0 : tid, &si[i]))
				return CRYO_EINTERNAL;
		args.off += n;
	}
}

static int collect_signals(struct dump_ctx *c)
{
	int ret;

	for (int i = 0; i < c->nr_threads; i++) {
		struct frozen_task *ft = &c->threads[i];
		uint64_t mask;

		if (ptrace(PTRACE_GETSIGMASK, ft->tid, sizeof(mask), &mask) < 0)
			return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_GETSIGMASK: %s", ft->tid,
					 strerror(errno));
		c->img_threads[i].sigmask = mask;
		/* signals a thread dequeued while being frozen were at the head of its queue */
		for (int k = 0; k < ft->nr_dequeued; k++)
			if (add_siginfo(c, ft->tid, &ft->dequeued[k]))
				return CRYO_EINTERNAL;
		ret = collect_queue(c, ft->tid, 0);
		if (ret)
			return ret;
	}
	return collect_queue(c, c->pid, 1);
}

/* Scheduling of a thread: readable from outside for any task we may trace. */
static int collect_sched(pid_t tid, struct cryo_img_thread *th)
{
	struct {
		uint32_t size, policy;
		uint64_t flags;
		int32_t nice;
		uint32_t priority;
		uint64_t runtime, deadline, period;
	} attr;
	long n, prio;

	memset(&attr, 0, sizeof(attr));
	if (syscall(SYS_sched_getattr, tid, &attr, sizeof(attr), 0) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: sched_getattr: %s", tid, strerror(errno));
	th->sched_policy = attr.policy;
	th->sched_flags = attr.flags;
	th->sched_nice = attr.nice;
	th->sched_priority = attr.priority;
	th->sched_runtime = attr.runtime;
	th->sched_deadline = attr.deadline;
	th->sched_period = attr.period;
	prio = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, tid);
	if (prio < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: ioprio_get: %s", tid, strerror(errno));
	th->ioprio = prio;
	n = syscall(SYS_sched_getaffinity, tid, sizeof(th->affinity), th->affinity);
	if (n < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: sched_getaffinity: %s", tid,
				 strerror(errno));
	th->affinity_bytes = n;
	return 0;
}

static int collect_thread(struct dump_ctx *c, int i, uint64_t *xstate_offset)
{
	int ret;

	struct frozen_task *ft = &c->threads[i];
	struct cryo_img_thread *th = &c->img_threads[i];
	struct cryo_rseq_configuration rseq;
	long robust_len = 0;
	void *robust_head = NULL;
	struct buf b = { 0 };

	th->tid = ft->tid;
	th->pid = c->pid;
	_Static_assert(sizeof(ft->regs) == sizeof(th->regs), "user_regs_struct layout");
	memcpy(th->regs, &ft->regs, sizeof(th->regs));
	th->xstate_offset = *xstate_offset;
	th->xstate_size = ft->xstate_size;
	*xstate_offset += ft->xstate_size;
	memset(&rseq, 0, sizeof(rseq));
	if (ptrace(CRYO_PTRACE_GET_RSEQ_CONFIGURATION, ft->tid, sizeof(rseq), &rseq) < 0 &&
	    errno != EIO && errno != EINVAL)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_GET_RSEQ_CONFIGURATION: %s",
				 ft->tid, strerror(errno));
	th->rseq_ptr = rseq.rseq_abi_pointer;
	th->rseq_len = rseq.rseq_abi_size;
	th->rseq_sig = rseq.signature;
	if (syscall(SYS_get_robust_list, ft->tid, &robust_head, &robust_len) == 0) {
		th->robust_list = (uint64_t)robust_head;
		th->robust_list_len = robust_len;
	}
	ret = collect_sched(ft->tid, th);
	if (ret)
		return ret;
	if (read_proc(&b, "/proc/%d/task/%d/comm", c->pid, ft->tid) == 0 && b.len) {
		b.data[strcspn(b.data, "\n")] = 0;
		snprintf(th->comm, sizeof(th->comm), "%s", b.data);
	}
	buf_free(&b);
	return collect_injected_thread(c, i);
}

static int readlink_str(struct dump_ctx *c, const char *what, cryo_str_t *out)
{
	char path[64], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", c->pid, what);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: readlink %s: %s", c->pid, path,
				 strerror(errno));
	target[n] = 0;
	*out = strtab_add(c->strings, target);
	return *out == (cryo_str_t)-1 ? CRYO_EINTERNAL : 0;
}

/* The target must live in cryo's own namespaces: we restore into them. */
static int check_namespaces(struct dump_ctx *c)
{
	static const char *const kinds[] = { "pid", "mnt", "net", "ipc", "uts", "user",
					     "cgroup", "time" };

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char a[64], b[64];
		struct stat sa, sb;

		snprintf(a, sizeof(a), "/proc/self/ns/%s", kinds[i]);
		snprintf(b, sizeof(b), "/proc/%d/ns/%s", c->pid, kinds[i]);
		if (stat(a, &sa) || stat(b, &sb))
			continue;
		if (sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev)
			return cryo_fail(CRYO_EUNSUPP,
					 "process %d lives in another %s namespace than cryo: "
					 "namespaces are not supported yet", c->pid, kinds[i]);
	}
	return 0;
}

static int check_unsupported(struct dump_ctx *c, const struct proc_status *ps)
{
	struct buf b = { 0 };
	int ret = 0;

	if (ps->threads != c->nr_threads)
		return cryo_fail(CRYO_EINTERNAL, "process %d: %d threads frozen, %d exist", c->pid,
				 c->nr_threads, ps->threads);
	if (ps->seccomp)
		return cryo_fail(CRYO_EUNSUPP, "process %d uses seccomp (mode %d): not supported yet",
				 c->pid, ps->seccomp);
	if (ps->groups_truncated)
		return cryo_fail(CRYO_EUNSUPP, "process %d has more than %d supplementary groups",
				 c->pid, CRYO_MAX_GROUPS);
	if (read_proc(&b, "/proc/%d/timers", c->pid) == 0 && b.len > 0) {
		ret = cryo_fail(CRYO_EUNSUPP, "process %d has POSIX timers (timer_create): not "
				"supported yet", c->pid);
		goto out;
	}
	ret = check_namespaces(c);
out:
	buf_free(&b);
	return ret;
}

/*
 * Resource limits, from /proc/PID/limits: prlimit() on a process with
 * other uids needs CAP_SYS_RESOURCE, which even root may lack. The kernel
 * prints one line per resource in RLIMIT_* order, in fixed-width columns.
 */
#define LIMITS_SOFT_COLUMN 26
#define LIMITS_HARD_COLUMN 47

static uint64_t parse_limit(const char *s)
{
	while (*s == ' ')
		s++;
	return !strncmp(s, "unlimited", 9) ? UINT64_MAX : strtoull(s, NULL, 10);
}

static int read_rlimits(struct dump_ctx *c)
{
	struct buf b = { 0 };
	char *line, *save;
	int r = -1, ret = 0;

	if (read_proc(&b, "/proc/%d/limits", c->pid)) {
		buf_free(&b);
		return cryo_fail(CRYO_EINTERNAL, "process %d: reading /proc/%d/limits", c->pid,
				 c->pid);
	}
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save), r++) {
		if (r < 0)
			continue;	/* the heading */
		if (r >= CRYO_RLIM_NLIMITS || strlen(line) < LIMITS_HARD_COLUMN + 1)
			break;
		c->img_task.rlim_cur[r] = parse_limit(line + LIMITS_SOFT_COLUMN - 1);
		c->img_task.rlim_max[r] = parse_limit(line + LIMITS_HARD_COLUMN - 1);
	}
	if (r != CRYO_RLIM_NLIMITS)
		ret = cryo_fail(CRYO_EINTERNAL, "process %d: /proc/%d/limits has %d limits, "
				"expected %d", c->pid, c->pid, r, CRYO_RLIM_NLIMITS);
	buf_free(&b);
	return ret;
}

static int exe_is_mapped(pid_t pid, const char *path)
{
	struct proc_vma *vmas;
	int n, found = 0;

	if (proc_read_vmas(pid, &vmas, &n))
		return 0;
	for (int i = 0; i < n && !found; i++)
		found = !strcmp(vmas[i].path, path);
	free(vmas);
	return found;
}

static int collect_ids_and_creds(struct dump_ctx *c)
{
	struct cryo_img_task *t = &c->img_task;
	struct proc_status ps;
	struct proc_stat st;
	struct buf b = { 0 };
	int ret;

	ret = proc_read_status(c->pid, &ps);
	if (!ret)
		ret = proc_read_stat(c->pid, 0, &st);
	if (ret)
		return cryo_fail(CRYO_ENOPROC, "process %d: reading /proc: %s", c->pid,
				 strerror(-ret));
	ret = check_unsupported(c, &ps);
	if (ret)
		return ret;
	t->pid = c->pid;
	t->ppid = st.ppid;
	t->pgid = st.pgrp;
	t->sid = st.session;
	t->nr_threads = c->nr_threads;
	t->flags = c->threads[0].group_stopped ? CRYO_TASK_STOPPED : 0;
	t->exit_signal = st.exit_signal;
	t->umask = ps.umask;
	memcpy(t->uid, ps.uid, sizeof(t->uid));
	memcpy(t->gid, ps.gid, sizeof(t->gid));
	t->ngroups = ps.ngroups;
	memcpy(t->groups, ps.groups, ps.ngroups * sizeof(uint32_t));
	t->cap_inh = ps.cap_inh;
	t->cap_prm = ps.cap_prm;
	t->cap_eff = ps.cap_eff;
	t->cap_bnd = ps.cap_bnd;
	t->cap_amb = ps.cap_amb;
	t->no_new_privs = ps.no_new_privs;

	t->start_code = st.start_code;
	t->end_code = st.end_code;
	t->start_data = st.start_data;
	t->end_data = st.end_data;
	t->start_brk = st.start_brk;
	t->start_stack = st.start_stack;
	t->arg_start = st.arg_start;
	t->arg_end = st.arg_end;
	t->env_start = st.env_start;
	t->env_end = st.env_end;

	proc_comm(c->pid, t->comm, sizeof(t->comm));
	if (read_proc(&b, "/proc/%d/personality", c->pid) == 0)
		t->personality = strtoul(b.data, NULL, 16);
	if (read_proc(&b, "/proc/%d/auxv", c->pid) == 0) {
		size_t words = b.len / sizeof(uint64_t);
		if (words > CRYO_AUXV_WORDS) {
			buf_free(&b);
			return cryo_fail(CRYO_EUNSUPP, "process %d: auxv too long (%zu words)",
					 c->pid, words);
		}
		memcpy(t->auxv, b.data, words * sizeof(uint64_t));
		t->auxv_words = words;
	}
	buf_free(&b);

	ret = read_rlimits(c);
	if (ret)
		return ret;

	cryo_str_t exe, cwd, root;

	ret = readlink_str(c, "exe", &exe);
	if (!ret)
		ret = readlink_str(c, "cwd", &cwd);
	if (!ret)
		ret = readlink_str(c, "root", &root);
	if (ret)
		return ret;
	t->exe_path = exe;
	t->cwd_path = cwd;
	t->root_path = root;
	{
		const char *e = c->strings->data + exe;
		size_t n = strlen(e);

		/* a deleted executable is fine if still mapped: its content is saved then */
		if (n > 10 && !strcmp(e + n - 10, " (deleted)") && !exe_is_mapped(c->pid, e))
			return cryo_fail(CRYO_EUNSUPP, "process %d: its executable %s was deleted or "
					 "replaced and is no longer mapped: cannot restore it",
					 c->pid, e);
	}
	{
		char p[64];
		struct stat sb;

		snprintf(p, sizeof(p), "/proc/%d/exe", c->pid);
		if (stat(p, &sb) == 0) {
			t->exe_dev = sb.st_dev;
			t->exe_ino = sb.st_ino;
			t->exe_size = sb.st_size;
			t->exe_mtime_ns = sb.st_mtim.tv_sec * 1000000000ull + sb.st_mtim.tv_nsec;
		}
	}
	return 0;
}

/*
 * Frozen, the credentials cannot change any more: check them all, every
 * thread's too (the kernel keeps them per thread), for a restricted cryo.
 */
static int check_creds(struct dump_ctx *c)
{
	const struct creds_caller *me = creds_caller();
	char why[160];

	if (!me->restricted)
		return 0;
	for (int i = 0; i < c->nr_threads; i++) {
		int ret = creds_check_live(c->pid, c->threads[i].tid);

		if (ret)
			return ret == CRYO_ENOPROC ? cryo_fail(CRYO_EPERM, "process %d, thread %d: "
					"gone while frozen", c->pid, c->threads[i].tid) : ret;
	}
	if (creds_mismatch(&c->img_task, 1, why, sizeof(why)))
		return cryo_fail(CRYO_EPERM, "process %d: %s: cryo acts for uid %u only", c->pid,
				 why, me->uid);
	return 0;
}

int collect_task(struct dump_ctx *c)
{
	uint64_t xstate_offset = 0;
	int ret;

	c->img_threads = xzalloc(c->nr_threads * sizeof(*c->img_threads));
	if (!c->img_threads)
		return CRYO_EINTERNAL;
	ret = collect_ids_and_creds(c);
	if (ret)
		return ret;
	ret = fault_point("checkpoint:collect");
	if (ret)
		return ret;
	ret = inject_prepare(&c->threads[0]);
	if (ret)
		return ret;
	ret = collect_injected_process(c);
	if (!ret)
		ret = check_creds(c);
	if (ret)
		return ret;
	for (int i = 0; i < c->nr_threads; i++) {
		ret = collect_thread(c, i, &xstate_offset);
		/* keep the window in which cryo's death would hurt the task short */
		if (!ret)
			ret = inject_finish(&c->threads[i]);
		if (ret)
			return ret;
	}
	return collect_signals(c);
}
