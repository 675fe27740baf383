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

static int load_registers(struct restore_ctx *r)
{
	struct user_regs_struct regs;
	struct iovec iov = { r->xstate, r->xstate_size };
	uint64_t mask = r->thread.sigmask;

	memcpy(&regs, r->thread.regs, sizeof(regs));
	fix_restart_block(&regs);
	if (ptrace(PTRACE_SETREGS, r->pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading registers: %s",
				 r->thread.tid, strerror(errno));
	if (ptrace(PTRACE_SETREGSET, r->pid, NT_X86_XSTATE, &iov) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading XSAVE state: %s",
				 r->thread.tid, strerror(errno));
	if (ptrace(PTRACE_SETSIGMASK, r->pid, sizeof(mask), &mask) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: thread %d: loading signal mask: %s",
				 r->thread.tid, strerror(errno));
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
		ret = unmap_restorer(r);
	if (!ret)
		ret = load_registers(r);
	if (!ret)
		ret = fault_point("restore:resume") ? CRYO_ERESTORE : 0;
	if (ret)
		return ret;
	if (r->task.flags & CRYO_TASK_STOPPED)
		kill(r->pid, SIGSTOP);	/* dequeued right after detach: stopped again */
	if (ptrace(PTRACE_DETACH, r->pid, 0, 0) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: detach: %s", r->pid,
				 strerror(errno));
	return 0;
}
