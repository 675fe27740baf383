/*
 * Freezing a task with ptrace and running syscalls inside it.
 *
 * A task is seized (PTRACE_SEIZE never changes the task's job-control state,
 * unlike PTRACE_ATTACH) and interrupted. Syscall injection borrows a
 * `syscall` instruction in the task's own vDSO, so no code is written into
 * the target; its scratch memory is the dead area below the stack's red
 * zone, saved before and written back after.
 */
#ifndef CRYO_KERNEL_PTRACE_H
#define CRYO_KERNEL_PTRACE_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Kernel-internal restart codes a task frozen inside a syscall shows in rax. */
#define KERN_ERESTARTSYS		512
#define KERN_ERESTARTNOINTR		513
#define KERN_ERESTARTNOHAND		514
#define KERN_ERESTART_RESTARTBLOCK	516

#define XSTATE_MAX_BYTES (16 * 1024)

struct frozen_task {
	pid_t tid;
	int seized;			/* we are its tracer */
	int stopped;			/* it reached its first stop; regs are valid */
	int group_stopped;		/* was in job-control stop before we seized it */
	struct user_regs_struct regs;	/* as frozen */
	uint8_t *xstate;		/* XSAVE area, xstate_size bytes */
	uint32_t xstate_size;
	/* Signals dequeued by the task while we were freezing it. */
	int nr_dequeued;
	siginfo_t dequeued[8];

	/* injection */
	uint64_t syscall_insn;		/* address of a `syscall` instruction */
	uint64_t scratch;		/* scratch area in the task */
	uint8_t scratch_saved[512];
	int scratch_dirty;
};

#define INJECT_SCRATCH_BYTES 512

/* Seize and interrupt; CRYO_ENOPROC (silently) if the task is gone. */
int ptrace_seize_interrupt(struct frozen_task *t, int group_stopped);
/* Wait for the interrupt to take effect; fills regs and xstate. */
int ptrace_wait_frozen(struct frozen_task *t);
/* Put back registers and scratch memory; detach (task resumes). */
int ptrace_thaw(struct frozen_task *t);
/* Detach from a task that was killed. */
int ptrace_detach_dead(struct frozen_task *t);

/* Prepare injection: find a syscall instruction, save scratch memory. */
int inject_prepare(struct frozen_task *t);
/* Run a syscall inside the task; result (or -errno) in *ret. */
int inject_syscall(struct frozen_task *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		   uint64_t a4, uint64_t a5, uint64_t a6, int64_t *ret);
/*
 * Done injecting: back to the event stop with the original registers and
 * scratch memory. From then on, cryo dying leaves the task exactly as it was.
 */
int inject_finish(struct frozen_task *t);
/* Copy to/from scratch memory in the task. */
int inject_write(struct frozen_task *t, uint64_t off, const void *p, size_t n);
int inject_read(struct frozen_task *t, uint64_t off, void *p, size_t n);

int remote_read(pid_t pid, uint64_t addr, void *buf, size_t n);
int remote_write(pid_t pid, uint64_t addr, const void *buf, size_t n);

#endif
