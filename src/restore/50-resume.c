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
	[RSTEP_SHARED_MEMORY] = "mapping shared memory",
	[RSTEP_PLACE_VDSO] = "placing the vDSO", [RSTEP_DROP_PREMAP] = "dropping staging area",
	[RSTEP_MM_MAP] = "prctl(PR_SET_MM_MAP)", [RSTEP_SIGACTION] = "rt_sigaction",
	[RSTEP_ITIMER] = "setitimer", [RSTEP_SIGALTSTACK] = "sigaltstack",
	[RSTEP_PRCTL] = "prctl", [RSTEP_TID_ADDRESS] = "set_robust_list",
	[RSTEP_RLIMIT] = "setrlimit", [RSTEP_CLOSE_FDS] = "closing fds",
	[RSTEP_CREDS] = "credentials", [RSTEP_DUMPABLE] = "dumpable",
	[RSTEP_SIGQUEUE] = "queueing pending signals", [RSTEP_RSEQ] = "rseq registration",
	[RSTEP_THREADS] = "creating threads",
	[RSTEP_LATE_FDS] = "reopening descriptors that name tasks",
	[RSTEP_LATE_CWD] = "entering a working directory under /proc",
	[RSTEP_SCHED] = "setting scheduling (policy, nice, I/O priority, CPUs)",
	[RSTEP_REAP_HELPERS] = "reaping a leader helper",
	[RSTEP_TIMERFD] = "arming a timerfd",
};

/* A task that died while being restored: was it the image's fault? */
static int died_status(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == RESTORE_CHILD_EXIT_IMAGE ? CRYO_EIMAGE :
									       CRYO_ERESTORE;
}

static int wait_for(pid_t pid, int *st, const char *what)
{
	for (;;) {
		if (waitpid(pid, st, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: waitpid: %s", pid,
					 strerror(errno));
		}
		if (WIFEXITED(*st) || WIFSIGNALED(*st))
			return cryo_fail(died_status(*st), "restore: task %d died while %s (%s %d)",
					 pid, what, WIFEXITED(*st) ? "exit status" : "signal",
					 WIFEXITED(*st) ? WEXITSTATUS(*st) : WTERMSIG(*st));
		return 0;
	}
}

static struct restore_proc *proc_of(struct restore_ctx *r, pid_t pid)
{
	for (uint32_t i = 0; i < r->nr_procs; i++)
		if (r->procs[i].task.pid == pid)
			return &r->procs[i];
	return NULL;
}

static int read_reports(struct restore_ctx *r)
{
	struct restore_report rep;

	while (read(r->report_pipe[0], &rep, sizeof(rep)) == sizeof(rep)) {
		struct restore_proc *p = proc_of(r, rep.pid);

		if (!p)
			return cryo_fail(CRYO_ERESTORE, "restore: report from unknown task %d",
					 rep.pid);
		p->restorer_args_addr = rep.args;
		p->restorer_area = rep.area;
		p->restorer_area_len = rep.area_len;
	}
	return 0;
}

static int check_restorer(struct restore_proc *p)
{
	struct restorer_args a;
	int ret;

	if (!p->restorer_args_addr)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d stopped without reporting",
				 p->task.pid);
	ret = remote_read(p->task.pid, p->restorer_args_addr, &a,
			  offsetof(struct restorer_args, pid));
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading restorer status: %s",
				 strerror(-ret));
	if (!a.fail_step)
		return 0;
	return cryo_fail(CRYO_ERESTORE, "restore: task %d: restorer failed while %s (detail %#llx): %s",
			 p->task.pid,
			 a.fail_step > 0 && a.fail_step < RSTEP_COUNT && step_names[a.fail_step] ?
				 step_names[a.fail_step] : "?",
			 (unsigned long long)a.fail_detail, strerror(a.fail_errno));
}

/* munmap the restorer area from inside the task, using its last syscall insn. */
static int unmap_restorer(struct restore_proc *p)
{
	pid_t pid = p->task.pid;
	struct user_regs_struct regs;
	int st, ret;

	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_GETREGS: %s", strerror(errno));
	regs.rip -= SYSCALL_INSN_BYTES;	/* the tgkill that stopped it */
	regs.rax = __NR_munmap;
	regs.orig_rax = -1;
	regs.rdi = p->restorer_area;
	regs.rsi = p->restorer_area_len;
	if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_SETREGS: %s", strerror(errno));
	/* suppress the SIGSTOP; stop at syscall entry, then exit */
	for (int i = 0; i < 2; i++) {
		if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_SYSCALL: %s",
					 strerror(errno));
		ret = wait_for(pid, &st, "unmapping the restorer");
		if (ret)
			return ret;
		if (!WIFSTOPPED(st) || WSTOPSIG(st) != (SIGTRAP | 0x80))
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: unexpected stop %#x",
					 pid, st);
	}
	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_GETREGS: %s", strerror(errno));
	if ((int64_t)regs.rax != 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: unmapping the restorer: %s",
				 pid, strerror((int)-(int64_t)regs.rax));
	/* back to a ptrace event stop without running user code */
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0 || ptrace(PTRACE_CONT, pid, 0, 0) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: PTRACE_INTERRUPT: %s", strerror(errno));
	ret = wait_for(pid, &st, "returning to its stop");
	if (ret)
		return ret;
	if (!WIFSTOPPED(st) || (st >> 16) != PTRACE_EVENT_STOP)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: unexpected stop %#x", pid, st);
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
static int seize_threads(struct restore_proc *p)
{
	struct restorer_thread t;
	uint64_t threads_addr;
	int ret, st;

	ret = remote_read(p->task.pid, p->restorer_args_addr + offsetof(struct restorer_args, threads),
			  &threads_addr, sizeof(threads_addr));
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading thread table: %s", strerror(-ret));
	p->seized_threads = calloc(p->nr_threads, sizeof(pid_t));
	if (!p->seized_threads)
		return CRYO_ERESTORE;
	for (uint32_t i = 1; i < p->nr_threads; i++) {
		pid_t tid = p->threads[i].tid;

		if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD) < 0 ||
		    ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: thread %d: cannot trace it: %s",
					 tid, strerror(errno));
		p->seized_threads[p->nr_seized++] = tid;
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
		ret = remote_read(p->task.pid, threads_addr + (i - 1) * sizeof(t), &t, sizeof(t));
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

/*
 * Run the tree until every process is parked in its restorer: continue the
 * fork events and the first stop of each new process, pass other signals
 * on, let zombies die, and release the barrier once every process has
 * arrived there (with its session, group and children).
 * Leader helpers (phase 15) must live through stage 1 and exit in stage 2.
 */
static int release_barrier(struct restore_ctx *r)
{
	char go[256];

	memset(go, 'g', sizeof(go));
	for (uint32_t left = r->nr_procs; left;) {
		uint32_t n = left < sizeof(go) ? left : sizeof(go);

		if (write(r->barrier_pipe[1], go, n) != (ssize_t)n)
			return cryo_fail(CRYO_ERESTORE, "restore: releasing the barrier: %s",
					 strerror(errno));
		left -= n;
	}
	return 0;
}

static int run_until_parked(struct restore_ctx *r, int stage)
{
	uint32_t live = 0, parked = 0, exited = 0, exiting = 0;
	uint64_t deadline = now_ns() + 60ull * 1000000000ull;

	for (uint32_t i = 0; i < r->nr_procs; i++) {
		struct restore_proc *p = &r->procs[i];

		if (p->zombie || (p->helper && stage == 2)) {
			exiting++;
			exited += p->exited;
		} else if (!p->helper) {
			live++;
		}
		p->parked = 0;
	}
	while (parked < live || exited < exiting) {
		int progress = 0;
		char arrivals[256];
		ssize_t n;

		while (stage == 1 && r->arrived < r->nr_procs &&
		       (n = read(r->arrive_pipe[0], arrivals, sizeof(arrivals))) > 0) {
			progress = 1;
			r->arrived += n;
			if (r->arrived == r->nr_procs) {
				int ret = release_barrier(r);
				if (ret)
					return ret;
			}
		}

		for (uint32_t i = 0; i < r->nr_procs; i++) {
			struct restore_proc *p = &r->procs[i];
			pid_t pid = p->task.pid;
			int st, sig;

			if (p->exited || p->parked)
				continue;
			if (waitpid(pid, &st, __WALL | WNOHANG) <= 0)
				continue;
			progress = 1;
			p->seized = 1;	/* first stop of a process traced from birth */
			if (WIFEXITED(st) || WIFSIGNALED(st)) {
				p->exited = 1;
				if (!p->zombie && !(p->helper && stage == 2))
					return cryo_fail(died_status(st),
							 "restore: %s %d died while being restored "
							 "(%s %d; see above)",
							 p->helper ? "leader helper" : "task", pid,
							 WIFEXITED(st) ? "exit status" : "signal",
							 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
				exited++;
				continue;
			}
			if (!WIFSTOPPED(st))
				continue;
			sig = WSTOPSIG(st);
			if ((st >> 16) == 0 && sig == SIGSTOP && !p->zombie && !p->helper) {
				p->parked = 1;	/* the restorer's hand-over */
				parked++;
				continue;
			}
			/* fork events, initial event stops: go on; other signals: deliver */
			if ((st >> 16) || sig == SIGTRAP || sig == SIGSTOP)
				sig = 0;
			ptrace(PTRACE_CONT, pid, 0, sig);
		}
		if (!progress) {
			if (now_ns() > deadline)
				return cryo_fail(CRYO_ERESTORE, "restore: timed out waiting for the "
						 "restored processes");
			usleep(200);
		}
	}
	return read_reports(r);
}

int restore_resume(struct restore_ctx *r)
{
	int ret;

	/*
	 * Stage 1: every process has its memory and threads. Only now may
	 * descriptors naming any task be reopened: let them all go on.
	 */
	ret = run_until_parked(r, 1);
	/* every process has joined its group: leader helpers may exit now */
	if (r->release_pipe[1] >= 0)
		close(r->release_pipe[1]);
	r->release_pipe[1] = -1;
	for (uint32_t i = 0; i < r->nr_procs && !ret; i++) {
		struct restore_proc *p = &r->procs[i];

		if (p->zombie || p->helper)
			continue;
		ret = check_restorer(p);
		if (!ret && ptrace(PTRACE_CONT, p->task.pid, 0, 0) < 0)
			ret = cryo_fail(CRYO_ERESTORE, "restore: task %d: PTRACE_CONT: %s",
					p->task.pid, strerror(errno));
	}
	/* Stage 2: every process parked for good, ready for its registers. */
	if (!ret)
		ret = run_until_parked(r, 2);
	for (uint32_t i = 0; i < r->nr_procs && !ret; i++) {
		struct restore_proc *p = &r->procs[i];

		if (p->zombie || p->helper)
			continue;
		ret = check_restorer(p);
		if (!ret)
			ret = seize_threads(p);
		if (!ret)
			ret = unmap_restorer(p);
		for (uint32_t t = 0; t < p->nr_threads && !ret; t++)
			ret = load_registers(r, p->threads[t].tid, &p->threads[t]);
	}
	if (!ret)
		ret = restore_sysv_finish(r);
	if (!ret)
		ret = fault_point("restore:resume") ? CRYO_ERESTORE : 0;
	if (ret)
		return ret;
	/* every process is ready: only now does any of them run again */
	for (uint32_t i = 0; i < r->nr_procs; i++) {
		struct restore_proc *p = &r->procs[i];

		if (p->zombie || p->helper)
			continue;
		if (p->task.flags & CRYO_TASK_STOPPED)
			kill(p->task.pid, SIGSTOP);	/* dequeued right after detach */
		for (uint32_t t = 0; t < p->nr_seized; t++)
			if (ptrace(PTRACE_DETACH, p->seized_threads[t], 0, 0) < 0)
				return cryo_fail(CRYO_ERESTORE, "restore: thread %d: detach: %s",
						 p->seized_threads[t], strerror(errno));
		if (ptrace(PTRACE_DETACH, p->task.pid, 0, 0) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: detach: %s", p->task.pid,
					 strerror(errno));
		p->seized = 0;
	}
	return 0;
}
