/*
 * Phase 50 (in cryo, the tracer): hand the task its own registers back.
 *
 * The restorer ends by stopping itself with SIGSTOP. From that stop we run
 * one munmap of the restorer area inside the task (through the restorer's
 * last `syscall` instruction, so no code is left behind), return the task to
 * a PTRACE_EVENT_STOP without letting it run user code, and load the saved
 * registers, XSAVE state and signal mask. Detaching from that stop lets the
 * kernel finish an interrupted syscall exactly as after a signal.
 */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/ptrace.h"
#include "restore/restore.h"
#include "restorer/restorer.h"
#include "util/util.h"

#define SYSCALL_INSN_BYTES 2

static const char *const step_names[RSTEP_COUNT] = {
	[RSTEP_UNMAP] = "unmapping cryo", [RSTEP_PARK_VDSO] = "parking the vDSO",
	[RSTEP_MOVE_AREAS] = "moving memory areas into place",
	[RSTEP_PLACE_VDSO] = "placing the vDSO", [RSTEP_DROP_PREMAP] = "dropping staging area",
	[RSTEP_MM_MAP] = "prctl(PR_SET_MM_MAP)", [RSTEP_SIGACTION] = "rt_sigaction",
	[RSTEP_ITIMER] = "setitimer", [RSTEP_SIGALTSTACK] = "sigaltstack",
	[RSTEP_PRCTL] = "prctl", [RSTEP_TID_ADDRESS] = "set_robust_list",
	[RSTEP_RLIMIT] = "setrlimit", [RSTEP_CLOSE_FDS] = "closing fds",
	[RSTEP_CREDS] = "credentials", [RSTEP_DUMPABLE] = "dumpable",
	[RSTEP_SIGQUEUE] = "queueing pending signals", [RSTEP_RSEQ] = "rseq registration",
	[RSTEP_THREADS] = "creating threads",
};

static int wait_for(struct restore_ctx *r, int *st, const char *what)
{
	for (;;) {
		if (waitpid(r->pid, st, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: waitpid: %s", r->pid,
					 strerror(errno));
		}
		if (WIFEXITED(*st) || WIFSIGNALED(*st)) {
			r->pid = 0;	/* reaped */
			return cryo_fail(CRYO_ERESTORE, "restore: task %d died while %s (%s %d)",
					 r->task.pid, what,
					 WIFEXITED(*st) ? "exit status" : "signal",
					 WIFEXITED(*st) ? WEXITSTATUS(*st) : WTERMSIG(*st));
		}
		return 0;
	}
}

static int read_report(struct restore_ctx *r)
{
	uint64_t report[3];

	if (read(r->report_pipe[0], report, sizeof(report)) != sizeof(report))
		return cryo_fail(CRYO_ERESTORE, "restore: task %d stopped without reporting",
				 r->pid);
	r->restorer_args_addr = report[0];
	r->restorer_area = report[1];
	r->restorer_area_len = report[2];
	return 0;
}

static int check_restorer(struct restore_ctx *r)
{
	struct restorer_args a;
	int ret = remote_read(r->pid, r->restorer_args_addr, &a,
			      offsetof(struct restorer_args, pid));

	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading restorer status: %s",
				 strerror(-ret));
	if (!a.fail_step)
		return 0;
	return cryo_fail(CRYO_ERESTORE, "restore: task %d: restorer failed while %s (detail %#llx): %s",
			 r->task.pid,
			 a.fail_step > 0 && a.fail_step < RSTEP_COUNT && step_names[a.fail_step] ?
				 step_names[a.fail_step] : "?",
			 (unsigned long long)a.fail_detail, strerror(a.fail_errno));
}

/* munmap the restorer area from inside the task, using its last syscall insn. */
static int unmap_restorer(struct restore_ctx *r)
{
	struct user_regs_struct regs;
	int st, ret;

	if (ptrace(PTRACE_GETREGS, r->pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_GETREGS: %s", strerror(errno));
	regs.rip -= SYSCALL_INSN_BYTES;	/* the tgkill that stopped it */
	regs.rax = __NR_munmap;
	regs.orig_rax = -1;
	regs.rdi = r->restorer_area;
	regs.rsi = r->restorer_area_len;
	if (ptrace(PTRACE_SETREGS, r->pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_SETREGS: %s", strerror(errno));
	/* suppress the SIGSTOP; stop at syscall entry, then exit */
	for (int i = 0; i < 2; i++) {
		if (ptrace(PTRACE_SYSCALL, r->pid, 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_SYSCALL: %s",
					 strerror(errno));
		ret = wait_for(r, &st, "unmapping the restorer");
		if (ret)
			return ret;
		if (!WIFSTOPPED(st) || WSTOPSIG(st) != (SIGTRAP | 0x80))
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: unexpected stop %#x",
					 r->pid, st);
	}
	if (ptrace(PTRACE_GETREGS, r->pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_GETREGS: %s", strerror(errno));
	if ((int64_t)regs.rax != 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: unmapping the restorer: %s",
				 r->pid, strerror((int)-(int64_t)regs.rax));
	/* back to a ptrace event stop without running user code */
	if (ptrace(PTRACE_INTERRUPT, r->pid, 0, 0) < 0 || ptrace(PTRACE_CONT, r->pid, 0, 0) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_INTERRUPT: %s", strerror(errno));
	ret = wait_for(r, &st, "returning to its stop");
	if (ret)
		return ret;
	if (!WIFSTOPPED(st) || (st >> 16) != PTRACE_EVENT_STOP)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: unexpected stop %#x", r->pid,
				 st);
	return 0;
}

/*
 * A syscall interrupted with -ERESTART_RESTARTBLOCK would be resumed through
 * the task's restart block, which the new task does not have: run the
 * original syscall again instead (its arguments are still in registers).
 */
static void fix_restart_block(struct user_regs_struct *regs)
{
	if ((int64_t)regs->orig_rax >= 0 && (int64_t)regs->rax == -KERN_ERESTART_RESTARTBLOCK) {
		regs->rax = regs->orig_rax;
		regs->rip -= SYSCALL_INSN_BYTES;
		regs->orig_rax = -1;
	}
}

static int load_registers(struct restore_ctx *r, pid_t tid, const struct cryo_img_thread *th)
{
	struct user_regs_struct regs;
	struct iovec iov = { r->xstate + th->xstate_offset, th->xstate_size };
	uint64_t mask = th->sigmask;

	memcpy(&regs, th->regs, sizeof(regs));
	fix_restart_block(&regs);
	if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading registers: %s", tid,
				 strerror(errno));
	if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading XSAVE state: %s", tid,
				 strerror(errno));
	if (ptrace(PTRACE_SETSIGMASK, tid, sizeof(mask), &mask) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading signal mask: %s", tid,
				 strerror(errno));
	return 0;
}

/*
 * The secondary threads wait on a futex in the restorer: seize each, check
 * what it reported, and leave it at an event stop for load_registers().
 */
static int seize_threads(struct restore_ctx *r)
{
	struct restorer_thread t;
	uint64_t threads_addr;
	int ret, st;

	ret = remote_read(r->pid, r->restorer_args_addr + offsetof(struct restorer_args, threads),
			  &threads_addr, sizeof(threads_addr));
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading thread table: %s", strerror(-ret));
	r->seized_threads = calloc(r->nr_threads, sizeof(pid_t));
	if (!r->seized_threads)
		return CRYO_ERESTORE;
	for (uint32_t i = 1; i < r->nr_threads; i++) {
		pid_t tid = r->threads[i].tid;

		if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD) < 0 ||
		    ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: thread %d: cannot trace it: %s",
					 tid, strerror(errno));
		r->seized_threads[r->nr_seized++] = tid;
		for (;;) {
			if (waitpid(tid, &st, __WALL) < 0 && errno != EINTR)
				return cryo_fail(CRYO_ERESTORE, "restore: thread %d: waitpid: %s",
						 tid, strerror(errno));
			if (WIFEXITED(st) || WIFSIGNALED(st))
				return cryo_fail(CRYO_ERESTORE, "restore: thread %d died", tid);
			if (WIFSTOPPED(st) && (st >> 16) == PTRACE_EVENT_STOP)
				break;
			ptrace(PTRACE_CONT, tid, 0, 0);
		}
		ret = remote_read(r->pid, threads_addr + (i - 1) * sizeof(t), &t, sizeof(t));
		if (ret)
			return cryo_fail(CRYO_ERESTORE, "restore: reading thread status: %s",
					 strerror(-ret));
		if (t.fail_step)
			return cryo_fail(CRYO_ERESTORE, "restore: thread %d: restorer failed while %s: %s",
					 tid,
					 t.fail_step > 0 && t.fail_step < RSTEP_COUNT &&
							 step_names[t.fail_step] ?
						 step_names[t.fail_step] : "?",
					 strerror(t.fail_errno));
	}
	return 0;
}

int restore_resume(struct restore_ctx *r)
{
	int st, ret;

	ret = wait_for(r, &st, "being restored (see the lines above)");
	if (ret)
		return ret;
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP || (st >> 16))
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: unexpected stop %#x", r->pid, st);
	ret = read_report(r);
	if (!ret)
		ret = check_restorer(r);
	if (!ret)
		ret = seize_threads(r);
	if (!ret)
		ret = unmap_restorer(r);
	for (uint32_t i = 0; i < r->nr_threads && !ret; i++)
		ret = load_registers(r, r->threads[i].tid, &r->threads[i]);
	if (!ret)
		ret = fault_point("restore:resume") ? CRYO_ERESTORE : 0;
	if (ret)
		return ret;
	if (r->task.flags & CRYO_TASK_STOPPED)
		kill(r->pid, SIGSTOP);	/* dequeued right after detach: stopped again */
	for (uint32_t i = 0; i < r->nr_seized; i++)
		if (ptrace(PTRACE_DETACH, r->seized_threads[i], 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: thread %d: detach: %s",
					 r->seized_threads[i], strerror(errno));
	if (ptrace(PTRACE_DETACH, r->pid, 0, 0) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: detach: %s", r->pid,
				 strerror(errno));
	return 0;
}
