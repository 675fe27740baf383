/*
 * The contract between the restore code (src/restore/, libc world) and the
 * freestanding restorer (src/restorer/restorer.c, no libc), which runs
 * inside the task being restored after its old image is gone.
 *
 * The restore code maps one "restorer area": the blob (code) at its start,
 * then struct restorer_args and the tables it points to, then a stack, then
 * a parking place for the vDSO. Everything here is plain data: no pointers
 * to the libc world survive the unmapping.
 */
#ifndef CRYO_RESTORER_H
#define CRYO_RESTORER_H

#include <stdint.h>

#define RESTORER_MAX_KEEP 8
#define RESTORER_MAX_SPECIAL 3	/* [vvar], [vvar_vclock], [vdso] */
#define RESTORER_MAX_CLOSE 16
#define RESTORER_MAX_REAP 64	/* leader helpers one process may parent */
#define RESTORER_NSIG 64
#define RESTORER_NLIMITS 16
#define RESTORER_MAX_GROUPS 256
#define RESTORER_THREAD_STACK_BYTES (16 * 1024)

/* Steps, in order; on failure args->fail_step says which one failed. */
enum restorer_step {
	RSTEP_NONE = 0,
	RSTEP_UNMAP,
	RSTEP_PARK_VDSO,
	RSTEP_MOVE_AREAS,
	RSTEP_SHARED_MEMORY,
	RSTEP_PLACE_VDSO,
	RSTEP_DROP_PREMAP,
	RSTEP_MM_MAP,
	RSTEP_SIGACTION,
	RSTEP_ITIMER,
	RSTEP_SIGALTSTACK,
	RSTEP_PRCTL,
	RSTEP_TID_ADDRESS,
	RSTEP_RLIMIT,
	RSTEP_CLOSE_FDS,
	RSTEP_CREDS,
	RSTEP_DUMPABLE,
	RSTEP_SIGQUEUE,
	RSTEP_RSEQ,
	RSTEP_THREADS,
	RSTEP_LATE_FDS,
	RSTEP_LATE_CWD,
	RSTEP_SCHED,
	RSTEP_REAP_HELPERS,
	RSTEP_TIMERFD,
	RSTEP_COUNT,
};

struct restorer_range {
	uint64_t start, end;
};

struct restorer_move {
	uint64_t from, to, len;
};

/* Another mapping of shared memory the root mapped for everybody (mremap, old size 0). */
struct restorer_dup {
	uint64_t from, to, len;
	uint32_t prot;
	uint32_t advice;	/* bit 0: MADV_DONTFORK, bit 1: MADV_DONTDUMP */
};

/* Kernel ABI structs, spelled out so the restorer needs no libc headers. */
struct restorer_sigaction {
	uint64_t handler, flags, restorer, mask;
};

struct restorer_itimerval {
	int64_t interval_sec, interval_usec, value_sec, value_usec;
};

struct restorer_rlimit {
	uint64_t cur, max;
};

/* Same layout as struct prctl_mm_map (linux/prctl.h). */
struct restorer_mm_map {
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv;		/* pointer into the restorer area */
	uint32_t auxv_size;
	uint32_t exe_fd;
};

struct restorer_siginfo {
	int32_t tid;		/* 0: process-wide queue */
	int32_t signo;
	uint8_t info[128];
};

/* A timerfd to arm, last: the time it had left runs on from there. */
struct restorer_timerfd {
	int32_t fd;
	int32_t clockid;
	int32_t flags;		/* TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET */
	int32_t set;		/* timerfd_settime() it (else it was never set) */
	uint64_t value_ns, interval_ns;
	uint64_t ticks;		/* expirations not read yet */
};

/* Scheduling of one thread: struct sched_attr (48-byte version), I/O priority, CPUs. */
struct restorer_sched {
	uint32_t size;		/* 48 */
	uint32_t policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t ioprio;
	uint32_t affinity_bytes;
	uint8_t affinity[128];
};

/* A secondary thread: created by the restorer, set up by itself. */
struct restorer_thread {
	int32_t tid;
	int32_t fail_step;
	int32_t fail_errno;
	int32_t sas_flags;
	uint64_t sas_sp, sas_size;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_list_len;
	uint64_t rseq_ptr;
	uint32_t rseq_len, rseq_sig;
	uint64_t stack_top;
	char comm[16];
	struct restorer_sched sched;
};

/* A descriptor that names a task, reopened once every PID and TID exists. */
struct restorer_late_fd {
	int32_t fd;
	int32_t dup_of;		/* >= 0: a duplicate of that (earlier, late) fd */
	int32_t is_pidfd;
	int32_t flags;		/* open flags, or pidfd_open flags */
	int32_t cloexec;
	int32_t pid;		/* pidfd: the task */
	uint32_t path;		/* offset in the late string area */
	uint64_t pos;
};

struct restorer_args {
	/* step bookkeeping, read back by the tracer */
	int32_t fail_step;
	int32_t fail_errno;
	uint64_t fail_detail;

	int32_t pid, tid;

	/* 1. unmap everything of the restoring process but these ranges */
	struct restorer_range keep[RESTORER_MAX_KEEP];
	uint32_t nr_keep;

	/* 2-4. kernel areas: where ours are, where to park, where they go */
	uint32_t nr_special;
	struct restorer_range special_now[RESTORER_MAX_SPECIAL];
	uint64_t special_park[RESTORER_MAX_SPECIAL];
	uint64_t special_target[RESTORER_MAX_SPECIAL];	/* 0: unmap it */

	/* 3. premapped areas to move into place; then the premap region goes */
	uint64_t moves;		/* struct restorer_move[nr_moves], in the area */
	uint32_t nr_moves;
	uint32_t pad0;
	struct restorer_range premap;
	uint64_t dups;		/* struct restorer_dup[nr_dups], in the area */
	uint32_t nr_dups;
	uint32_t pad2;
	struct restorer_range shmem_stage;	/* unmapped once the dups are made */

	struct restorer_mm_map mm;
	uint64_t auxv[2 * 64];

	struct restorer_sigaction sigactions[RESTORER_NSIG];
	struct restorer_itimerval itimers[3];
	uint64_t sas_sp, sas_size;
	int32_t sas_flags;
	int32_t personality;
	char comm[16];
	int32_t pdeathsig;
	int32_t dumpable;
	int32_t child_subreaper;
	int32_t thp_disable;
	uint64_t timerslack_ns;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_list_len;

	struct restorer_rlimit rlimits[RESTORER_NLIMITS];
	struct restorer_sched sched;	/* of the main thread */

	int32_t close_fds[RESTORER_MAX_CLOSE];
	uint32_t nr_close_fds;
	/* leader helpers (restore phase 15) whose parent we are: reaped before we run */
	int32_t reap_pids[RESTORER_MAX_REAP];
	uint32_t nr_reap_pids;

	/* credentials; change_creds = 0 when they equal the restorer's own */
	int32_t change_creds;
	int32_t change_ids;	/* uids, gids or groups differ from the restorer's own */
	uint32_t uid[4], gid[4];
	uint32_t ngroups;
	uint32_t groups[RESTORER_MAX_GROUPS];
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t securebits;
	uint32_t no_new_privs;

	uint64_t sigs;		/* struct restorer_siginfo[nr_sigs], in the area */
	uint32_t nr_sigs;
	uint32_t nr_timerfds;
	uint64_t timerfds;	/* struct restorer_timerfd[nr_timerfds], in the area */

	uint32_t rseq_len;
	uint64_t rseq_ptr;
	uint32_t rseq_sig;

	/* secondary threads: struct restorer_thread[nr_threads], in the area */
	uint32_t nr_threads;
	uint64_t threads;
	int32_t threads_ready;	/* incremented by each thread when set up */
	int32_t threads_release;	/* futex the threads sleep on until seized */

	/*
	 * After stopping once (every thread of the tree exists when cryo lets
	 * us go on), reopen what names tasks: fds, and a cwd under /proc.
	 */
	uint64_t late_fds;	/* struct restorer_late_fd[nr_late_fds] */
	uint32_t nr_late_fds;
	uint32_t late_cwd;	/* offset in the string area, 0: none */
	uint64_t late_strings;	/* NUL-terminated paths */
};

/* Entry point: the first byte of the blob. Never returns. */
typedef void (*restorer_entry_fn)(struct restorer_args *args);

#endif
