/*
 * ptrace plumbing: freeze a task without disturbing it, run syscalls inside
 * it, and let it go exactly as it was.
 *
 * The "home" state of a frozen task is a PTRACE_EVENT_STOP inside the
 * kernel's signal delivery path. Only from there does PTRACE_DETACH let the
 * kernel apply its own syscall-restart logic (-ERESTARTSYS and friends), so
 * after injecting syscalls we always go back home (PTRACE_INTERRUPT, then
 * continue) before restoring registers and detaching.
 */
#include "kernel/ptrace.h"

#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/proc.h"
#include "util/util.h"

#define STOP_IS_EVENT_STOP(st) (((st) >> 16) == PTRACE_EVENT_STOP)
#define STOP_IS_SYSCALL(st) (WSTOPSIG(st) == (SIGTRAP | 0x80))

int remote_read(pid_t pid, uint64_t addr, void *buf, size_t n)
{
	struct iovec local = { buf, n }, remote = { (void *)addr, n };
	ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (r < 0)
		return -errno;
	return (size_t)r == n ? 0 : -EFAULT;
}

int remote_write(pid_t pid, uint64_t addr, const void *buf, size_t n)
{
	struct iovec local = { (void *)buf, n }, remote = { (void *)addr, n };
	ssize_t r = process_vm_writev(pid, &local, 1, &remote, 1, 0);

	if (r < 0)
		return -errno;
	return (size_t)r == n ? 0 : -EFAULT;
}

static void remember_dequeued(struct frozen_task *t)
{
	siginfo_t si;

	if (ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si) < 0)
		return;
	if (t->nr_dequeued < (int)ARRAY_SIZE(t->dequeued))
		t->dequeued[t->nr_dequeued++] = si;
	else
		cryo_log("task %d: too many signals arrived while frozen; signal %d lost",
			 t->tid, si.si_signo);
}

/*
 * Wait for the next stop of interest. Signal-delivery stops on the way mean
 * the task dequeued a signal: remember it (it is put back later) and resume
 * with the signal suppressed, using `resume` so syscall stops still come.
 */
static int wait_stop(struct frozen_task *t, int want_syscall, int resume, int *status)
{
	for (;;) {
		int st;

		if (waitpid(t->tid, &st, __WALL) < 0)
			return cryo_fail(CRYO_EINTERNAL, "task %d: waitpid: %s", t->tid,
					 strerror(errno));
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return cryo_fail(CRYO_ENOPROC, "task %d exited while frozen", t->tid);
		if (!WIFSTOPPED(st))
			continue;
		if (want_syscall && STOP_IS_SYSCALL(st)) {
			*status = st;
			return 0;
		}
		if (STOP_IS_EVENT_STOP(st)) {
			if (!want_syscall) {
				*status = st;
				return 0;
			}
			/* A group stop while we wait for a syscall stop: keep going. */
			if (ptrace(resume, t->tid, 0, 0) < 0)
				return -errno;
			continue;
		}
		if (WSTOPSIG(st) == SIGTRAP && (st >> 16)) {
			/* other ptrace events: not enabled, ignore */
			if (ptrace(resume, t->tid, 0, 0) < 0)
				return -errno;
			continue;
		}
		remember_dequeued(t);
		if (ptrace(resume, t->tid, 0, 0) < 0)
			return cryo_fail(CRYO_EINTERNAL, "task %d: resume: %s", t->tid,
					 strerror(errno));
	}
}

static int read_xstate(struct frozen_task *t)
{
	struct iovec iov;

	t->xstate = xzalloc(XSTATE_MAX_BYTES);
	if (!t->xstate)
		return CRYO_EINTERNAL;
	iov.iov_base = t->xstate;
	iov.iov_len = XSTATE_MAX_BYTES;
	if (ptrace(PTRACE_GETREGSET, t->tid, NT_X86_XSTATE, &iov) < 0)
		return cryo_fail(CRYO_ENOFEATURE, "task %d: PTRACE_GETREGSET(NT_X86_XSTATE): %s",
				 t->tid, strerror(errno));
	t->xstate_size = iov.iov_len;
	return 0;
}

int ptrace_seize_interrupt(struct frozen_task *t, int group_stopped)
{
	t->group_stopped = group_stopped;
	if (ptrace(PTRACE_SEIZE, t->tid, 0, PTRACE_O_TRACESYSGOOD) < 0) {
		int err = errno;
		pid_t tracer = proc_tracer_pid(t->tid);

		if (err == ESRCH)
			return CRYO_ENOPROC;	/* the caller knows whether that matters */
		if (tracer > 0)
			return cryo_fail(CRYO_EPERM, "task %d is already traced by process %d",
					 t->tid, tracer);
		return cryo_fail(err == EPERM ? CRYO_EPERM : CRYO_EINTERNAL,
				 "task %d: cannot trace it: %s", t->tid, strerror(err));
	}
	t->seized = 1;
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_INTERRUPT: %s", t->tid,
				 strerror(errno));
	return 0;
}

int ptrace_wait_frozen(struct frozen_task *t)
{
	int st, ret;

	ret = wait_stop(t, 0, PTRACE_CONT, &st);
	if (ret)
		return ret;
	t->stopped = 1;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->regs) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_GETREGS: %s", t->tid,
				 strerror(errno));
	return read_xstate(t);
}

int inject_prepare(struct frozen_task *t)
{
	struct proc_vma_range vdso;
	uint8_t *text;
	int ret;

	if (t->scratch_dirty)
		return 0;	/* already prepared */
	if (t->syscall_insn)
		goto scratch;	/* found through another thread of the same process */
	ret = proc_find_named_vma(t->tid, "[vdso]", &vdso);
	if (ret)
		return cryo_fail(CRYO_EUNSUPP,
				 "process %d has no [vdso]: cannot run syscalls in it", t->tid);
	text = malloc(vdso.end - vdso.start);
	if (!text)
		return CRYO_EINTERNAL;
	ret = remote_read(t->tid, vdso.start, text, vdso.end - vdso.start);
	if (ret) {
		free(text);
		return cryo_fail(CRYO_EINTERNAL, "process %d: reading [vdso]: %s", t->tid,
				 strerror(-ret));
	}
	t->syscall_insn = 0;
	for (uint64_t i = 0; i + 1 < vdso.end - vdso.start; i++) {
		if (text[i] == 0x0f && text[i + 1] == 0x05) {
			t->syscall_insn = vdso.start + i;
			break;
		}
	}
	free(text);
	if (!t->syscall_insn)
		return cryo_fail(CRYO_EUNSUPP, "process %d: no syscall instruction in [vdso]",
				 t->tid);
scratch:
	/* Below the 128-byte red zone: memory no code may rely on. */
	t->scratch = (t->regs.rsp - 128 - INJECT_SCRATCH_BYTES) & ~63ull;
	ret = remote_read(t->tid, t->scratch, t->scratch_saved, INJECT_SCRATCH_BYTES);
	if (ret)
		return cryo_fail(CRYO_EUNSUPP,
				 "process %d: no room below its stack pointer %#llx for injected calls",
				 t->tid, (unsigned long long)t->regs.rsp);
	t->scratch_dirty = 1;
	return 0;
}

int inject_write(struct frozen_task *t, uint64_t off, const void *p, size_t n)
{
	if (off + n > INJECT_SCRATCH_BYTES)
		return -EINVAL;
	return remote_write(t->tid, t->scratch + off, p, n);
}

int inject_read(struct frozen_task *t, uint64_t off, void *p, size_t n)
{
	if (off + n > INJECT_SCRATCH_BYTES)
		return -EINVAL;
	return remote_read(t->tid, t->scratch + off, p, n);
}

int inject_syscall(struct frozen_task *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		   uint64_t a4, uint64_t a5, uint64_t a6, int64_t *ret)
{
	struct user_regs_struct r = t->regs;
	int st, err;

	r.rip = t->syscall_insn;
	r.rax = nr;
	r.orig_rax = -1;	/* not in a syscall: no restart handling on resume */
	r.rdi = a1;
	r.rsi = a2;
	r.rdx = a3;
	r.r10 = a4;
	r.r8 = a5;
	r.r9 = a6;
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_SETREGS: %s", t->tid,
				 strerror(errno));
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_SYSCALL: %s", t->tid,
				 strerror(errno));
	err = wait_stop(t, 1, PTRACE_SYSCALL, &st);	/* entry */
	if (err)
		return err;
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_SYSCALL: %s", t->tid,
				 strerror(errno));
	err = wait_stop(t, 1, PTRACE_SYSCALL, &st);	/* exit */
	if (err)
		return err;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_GETREGS: %s", t->tid,
				 strerror(errno));
	*ret = (int64_t)r.rax;
	return 0;
}

/* From a syscall-exit stop back to an EVENT_STOP, without running user code. */
static int go_home(struct frozen_task *t)
{
	int st;

	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 || ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: returning to stop: %s", t->tid,
				 strerror(errno));
	return wait_stop(t, 0, PTRACE_CONT, &st);
}

/* Give back signals the task dequeued while we froze it. */
static int requeue_dequeued(struct frozen_task *t)
{
	for (int i = 0; i < t->nr_dequeued; i++) {
		int64_t r;
		int ret = inject_write(t, 0, &t->dequeued[i], sizeof(siginfo_t));

		if (ret)
			return cryo_fail(CRYO_EINTERNAL, "task %d: writing siginfo: %s", t->tid,
					 strerror(-ret));
		ret = inject_syscall(t, __NR_rt_tgsigqueueinfo, proc_tgid(t->tid), t->tid,
				     t->dequeued[i].si_signo, t->scratch, 0, 0, &r);
		if (ret)
			return ret;
		if (r < 0)
			return cryo_fail(CRYO_EINTERNAL, "task %d: re-queueing signal %d: %s",
					 t->tid, t->dequeued[i].si_signo, strerror(-r));
	}
	t->nr_dequeued = 0;
	return 0;
}

static int restore_frozen_state(struct frozen_task *t, int requeue)
{
	int ret = 0;

	if (requeue && t->nr_dequeued && !t->scratch_dirty) {
		ret = inject_prepare(t);
		if (ret)
			return ret;
	}
	if (t->scratch_dirty) {
		if (requeue && t->nr_dequeued) {
			ret = requeue_dequeued(t);
			if (ret)
				return ret;
		}
		ret = go_home(t);
		if (ret)
			return ret;
		ret = remote_write(t->tid, t->scratch, t->scratch_saved, INJECT_SCRATCH_BYTES);
		if (ret)
			return cryo_fail(CRYO_EINTERNAL, "task %d: restoring scratch memory: %s",
					 t->tid, strerror(-ret));
		t->scratch_dirty = 0;
	}
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &t->regs) < 0)
		return cryo_fail(CRYO_EINTERNAL, "task %d: restoring registers: %s", t->tid,
				 strerror(errno));
	return 0;
}

int inject_finish(struct frozen_task *t)
{
	return restore_frozen_state(t, 0);
}

int ptrace_thaw(struct frozen_task *t)
{
	int ret = 0;

	if (!t->seized)
		return 0;
	if (t->stopped)
		ret = restore_frozen_state(t, 1);
	t->seized = 0;
	if (ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0 && !ret)
		ret = cryo_fail(CRYO_EINTERNAL, "task %d: PTRACE_DETACH: %s", t->tid,
				strerror(errno));
	free(t->xstate);
	t->xstate = NULL;
	return ret;
}

int ptrace_detach_dead(struct frozen_task *t)
{
	if (t->seized)
		ptrace(PTRACE_DETACH, t->tid, 0, 0);
	t->seized = 0;
	free(t->xstate);
	t->xstate = NULL;
	return 0;
}
