/*
 * The freestanding restorer. It runs inside the task being restored, on its
 * own stack, after the restore code has premapped every memory area of the
 * image somewhere out of the way. It tears down what is left of the cryo
 * process image, moves the premapped areas to their exact addresses, puts
 * the kernel's vDSO where the image had it, and sets what only the task
 * itself can set (mm fields, sigactions, timers, credentials...). It ends by
 * stopping itself with SIGSTOP: the tracer (cryo restore) then unmaps this
 * code, loads the saved registers and lets the task go.
 *
 * No libc, no globals, no relocations: the blob is copied to an address
 * chosen at run time. Every failure records its step and errno in args and
 * stops, so the tracer can report it and kill the task.
 */
#include "restorer/restorer.h"

#define NR_sched_yield 24
#define NR_futex 202
#define NR_clone3 435
#define NR_sched_setaffinity 203
#define NR_ioprio_set 251
#define NR_sched_setattr 314
#define IOPRIO_WHO_PROCESS 1
#define NR_mprotect 10
#define NR_madvise 28
#define MADV_DONTFORK 10
#define MADV_DONTDUMP 16
#define NR_close 3
#define NR_lseek 8
#define NR_chdir 80
#define NR_dup3 292
#define NR_openat 257
#define NR_pidfd_open 434
#define AT_FDCWD -100
#define O_CLOEXEC_FLAG 02000000
#define NR_munmap 11
#define NR_rt_sigaction 13
#define NR_mremap 25
#define NR_setitimer 38
#define NR_clock_gettime 228
#define NR_timerfd_settime 286
#define NR_ioctl 16
#define NR_setgroups 116
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_setfsuid 122
#define NR_setfsgid 123
#define NR_capset 126
#define NR_rt_sigqueueinfo 129
#define NR_sigaltstack 131
#define NR_personality 135
#define NR_prctl 157
#define NR_set_tid_address 218
#define NR_exit_group 231
#define NR_tgkill 234
#define NR_set_robust_list 273
#define NR_rt_tgsigqueueinfo 297
#define NR_prlimit64 302
#define NR_rseq 334
#define NR_wait4 61
#define NR_rt_sigtimedwait 128
#define WALL_FLAG 0x40000000

#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define SIGKILL 9
#define SIGSTOP 19
#define SS_DISABLE 2
#define TFD_TIMER_ABSTIME 1
#define TFD_IOC_SET_TICKS 0x40085400	/* _IOW('T', 0, __u64) */
#define SS_ONSTACK 1
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define PR_GET_KEEPCAPS 7
#define PR_SET_KEEPCAPS 8
#define PR_SET_NAME 15
#define PR_CAPBSET_READ 23
#define PR_CAPBSET_DROP 24
#define PR_GET_SECUREBITS 27
#define PR_SET_SECUREBITS 28
#define PR_SET_TIMERSLACK 29
#define PR_SET_MM 35
#define PR_SET_MM_MAP 14
#define PR_SET_CHILD_SUBREAPER 36
#define PR_SET_NO_NEW_PRIVS 38
#define PR_SET_THP_DISABLE 41
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define SECBIT_KEEP_CAPS (1 << 4)
#define CAP_VERSION_3 0x20080522
#define CAP_LAST 63
#define FUTEX_WAIT 0
/* VM FS FILES SIGHAND THREAD SYSVSEM, and UNTRACED: cryo seizes threads itself */
#define CLONE_THREAD_FLAGS (0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x800000)

static inline long sys6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long ret;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys0(nr) sys6(nr, 0, 0, 0, 0, 0, 0)
#define sys1(nr, a) sys6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b) sys6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(nr, a, b, c, d, e) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Stop; cryo (our tracer) looks at args and either lets us go on or takes over. */
static void stop_for_tracer(struct restorer_args *a)
{
	sys3(NR_tgkill, a->pid, a->tid, SIGSTOP);
}

static void __attribute__((noreturn)) hand_over(struct restorer_args *a)
{
	/* The tracer takes it from here (or kills us if fail_step is set). */
	stop_for_tracer(a);
	for (;;)
		sys1(NR_exit_group, 125);
}

static int failed(struct restorer_args *a, int step, long ret, uint64_t detail)
{
	a->fail_step = step;
	a->fail_errno = (int)-ret;
	a->fail_detail = detail;
	hand_over(a);
	return -1;
}

#define CHECK(a, step, expr, detail)                              \
	do {                                                      \
		long __r = (expr);                                \
		if (__r < 0 && __r > -4096)                       \
			return failed(a, step, __r, (uint64_t)(detail)); \
	} while (0)

/* Unmap every range of [low, high) not covered by a kept range. */
static int unmap_all_but_kept(struct restorer_args *a)
{
	const uint64_t low = 4096, high = 0x7ffffffff000ull;
	uint64_t cur = low;

	/* kept ranges are sorted by the restore code */
	for (uint32_t i = 0; i <= a->nr_keep; i++) {
		uint64_t next = i < a->nr_keep ? a->keep[i].start : high;

		if (next > cur)
			CHECK(a, RSTEP_UNMAP, sys2(NR_munmap, cur, next - cur), cur);
		if (i < a->nr_keep && a->keep[i].end > cur)
			cur = a->keep[i].end;
	}
	return 0;
}

static int move_range(struct restorer_args *a, int step, uint64_t from, uint64_t to, uint64_t len)
{
	long r;

	if (from == to)
		return 0;
	r = sys5(NR_mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (r < 0 && r > -4096)
		return failed(a, step, r, to);
	return 0;
}

/*
 * Shared anonymous memory: every area is another mapping of an object the
 * root mapped before creating any process (mremap with old size 0 maps the
 * same pages again), so all areas and processes share it as before.
 */
static int map_shared_memory(struct restorer_args *a)
{
	const struct restorer_dup *d = (const struct restorer_dup *)a->dups;

	for (uint32_t i = 0; i < a->nr_dups; i++) {
		long r = sys5(NR_mremap, d[i].from, 0, d[i].len, MREMAP_MAYMOVE | MREMAP_FIXED,
			      d[i].to);
		if (r < 0 && r > -4096)
			return failed(a, RSTEP_SHARED_MEMORY, r, d[i].to);
		CHECK(a, RSTEP_SHARED_MEMORY, sys3(NR_mprotect, d[i].to, d[i].len, d[i].prot),
		      d[i].to);
		if (d[i].advice & 1)
			CHECK(a, RSTEP_SHARED_MEMORY,
			      sys3(NR_madvise, d[i].to, d[i].len, MADV_DONTFORK), d[i].to);
		if (d[i].advice & 2)
			CHECK(a, RSTEP_SHARED_MEMORY,
			      sys3(NR_madvise, d[i].to, d[i].len, MADV_DONTDUMP), d[i].to);
	}
	if (a->shmem_stage.end > a->shmem_stage.start)
		CHECK(a, RSTEP_SHARED_MEMORY,
		      sys2(NR_munmap, a->shmem_stage.start,
			   a->shmem_stage.end - a->shmem_stage.start), a->shmem_stage.start);
	return 0;
}

static int rebuild_memory(struct restorer_args *a)
{
	const struct restorer_move *moves = (const struct restorer_move *)a->moves;

	if (unmap_all_but_kept(a))
		return -1;
	for (uint32_t i = 0; i < a->nr_special; i++)
		if (move_range(a, RSTEP_PARK_VDSO, a->special_now[i].start, a->special_park[i],
			       a->special_now[i].end - a->special_now[i].start))
			return -1;
	for (uint32_t i = 0; i < a->nr_moves; i++)
		if (move_range(a, RSTEP_MOVE_AREAS, moves[i].from, moves[i].to, moves[i].len))
			return -1;
	if (map_shared_memory(a))
		return -1;
	for (uint32_t i = 0; i < a->nr_special; i++) {
		uint64_t len = a->special_now[i].end - a->special_now[i].start;

		if (a->special_target[i])
			CHECK(a, RSTEP_PLACE_VDSO,
			      sys5(NR_mremap, a->special_park[i], len, len,
				   MREMAP_MAYMOVE | MREMAP_FIXED, a->special_target[i]),
			      a->special_target[i]);
		else
			CHECK(a, RSTEP_PLACE_VDSO, sys2(NR_munmap, a->special_park[i], len),
			      a->special_park[i]);
	}
	if (a->premap.end > a->premap.start)
		CHECK(a, RSTEP_DROP_PREMAP,
		      sys2(NR_munmap, a->premap.start, a->premap.end - a->premap.start),
		      a->premap.start);
	return 0;
}

static int restore_signals(struct restorer_args *a)
{
	for (int sig = 1; sig <= RESTORER_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		CHECK(a, RSTEP_SIGACTION,
		      sys4(NR_rt_sigaction, sig, &a->sigactions[sig - 1], 0, 8), sig);
	}
	if (!(a->sas_flags & SS_DISABLE)) {
		struct {
			uint64_t sp;
			int32_t flags;
			int32_t pad;
			uint64_t size;
		} ss = { a->sas_sp, a->sas_flags & ~SS_ONSTACK, 0, a->sas_size };

		CHECK(a, RSTEP_SIGALTSTACK, sys2(NR_sigaltstack, &ss, 0), a->sas_sp);
	}
	return 0;
}

/*
 * Arm the interval timers and the timerfds with the time they had left, as
 * late as possible: the time the process spent checkpointed and being
 * restored does not count, and a SIGALRM due meanwhile would have been
 * dropped with the restore's own signals (drop_pending_signals). An
 * absolute timerfd stays absolute, due that long from now on its clock.
 * Then the timerfds' expirations not read yet: timerfd_settime() clears
 * them.
 */
static int arm_timers(struct restorer_args *a)
{
	const struct restorer_timerfd *tf = (const struct restorer_timerfd *)a->timerfds;

	for (int which = 0; which < 3; which++)
		CHECK(a, RSTEP_ITIMER, sys3(NR_setitimer, which, &a->itimers[which], 0), which);

	for (uint32_t i = 0; i < a->nr_timerfds; i++) {
		struct { int64_t s, ns; } now = { 0, 0 };
		struct { int64_t interval_s, interval_ns, value_s, value_ns; } its;
		uint64_t value = tf[i].value_ns;

		if (tf[i].ticks && !tf[i].set) {
			CHECK(a, RSTEP_TIMERFD, sys3(NR_ioctl, tf[i].fd, TFD_IOC_SET_TICKS, &tf[i].ticks),
			      tf[i].fd);
			continue;
		}
		if (value && (tf[i].flags & TFD_TIMER_ABSTIME)) {
			CHECK(a, RSTEP_TIMERFD, sys2(NR_clock_gettime, tf[i].clockid, &now), tf[i].fd);
			value += (uint64_t)now.s * 1000000000ull + (uint64_t)now.ns;
		}
		its.interval_s = tf[i].interval_ns / 1000000000ull;
		its.interval_ns = tf[i].interval_ns % 1000000000ull;
		its.value_s = value / 1000000000ull;
		its.value_ns = value % 1000000000ull;
		CHECK(a, RSTEP_TIMERFD, sys4(NR_timerfd_settime, tf[i].fd, tf[i].flags, &its, 0),
		      tf[i].fd);
		if (tf[i].ticks)
			CHECK(a, RSTEP_TIMERFD,
			      sys3(NR_ioctl, tf[i].fd, TFD_IOC_SET_TICKS, &tf[i].ticks), tf[i].fd);
	}
	return 0;
}

static int restore_prctls(struct restorer_args *a)
{
	sys1(NR_personality, a->personality);
	CHECK(a, RSTEP_PRCTL, sys2(NR_prctl, PR_SET_NAME, a->comm), PR_SET_NAME);
	CHECK(a, RSTEP_PRCTL, sys2(NR_prctl, PR_SET_CHILD_SUBREAPER, a->child_subreaper),
	      PR_SET_CHILD_SUBREAPER);
	CHECK(a, RSTEP_PRCTL, sys2(NR_prctl, PR_SET_TIMERSLACK, a->timerslack_ns),
	      PR_SET_TIMERSLACK);
	if (a->thp_disable)
		CHECK(a, RSTEP_PRCTL, sys5(NR_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0),
		      PR_SET_THP_DISABLE);
	sys1(NR_set_tid_address, a->clear_child_tid);
	if (a->robust_list)
		CHECK(a, RSTEP_TID_ADDRESS,
		      sys2(NR_set_robust_list, a->robust_list, a->robust_list_len), 0);
	return 0;
}

/* Policy, nice and priority, I/O priority, CPUs of the calling thread; 0 or -errno. */
static long set_sched(const struct restorer_sched *s, uint64_t *detail)
{
	long r = sys3(NR_sched_setattr, 0, s, 0);

	*detail = 1;
	if (r < 0)
		return r;
	*detail = 2;
	r = sys3(NR_ioprio_set, IOPRIO_WHO_PROCESS, 0, s->ioprio);
	if (r < 0)
		return r;
	*detail = 3;
	if (s->affinity_bytes)
		r = sys3(NR_sched_setaffinity, 0, s->affinity_bytes, s->affinity);
	return r < 0 ? r : 0;
}

static int restore_rlimits(struct restorer_args *a)
{
	uint64_t detail;
	long r;

	for (int i = 0; i < RESTORER_NLIMITS; i++)
		CHECK(a, RSTEP_RLIMIT, sys4(NR_prlimit64, 0, i, &a->rlimits[i], 0), i);
	r = set_sched(&a->sched, &detail);
	if (r)
		return failed(a, RSTEP_SCHED, r, detail);
	return 0;
}

/*
 * Credentials are per thread for the kernel (glibc broadcasts setuid to all
 * threads; raw syscalls do not), so every thread runs this for itself.
 * Returns 0 or -errno, with *detail saying which call failed.
 */
static long set_creds(const struct restorer_args *a, uint64_t *detail)
{
	struct {
		uint32_t version;
		int32_t pid;
	} hdr = { CAP_VERSION_3, 0 };
	struct {
		uint32_t effective, permitted, inheritable;
	} data[2] = {
		{ (uint32_t)a->cap_eff, (uint32_t)a->cap_prm, (uint32_t)a->cap_inh },
		{ (uint32_t)(a->cap_eff >> 32), (uint32_t)(a->cap_prm >> 32),
		  (uint32_t)(a->cap_inh >> 32) },
	};
	long r, bits;

#define TRY(expr, what)                          \
	do {                                     \
		r = (expr);                      \
		if (r < 0 && r > -4096) {        \
			*detail = (what);        \
			return r;                \
		}                                \
	} while (0)

	/*
	 * Drop bounding caps and set securebits while still privileged. Each
	 * step runs only when it changes something: a cryo acting for a user
	 * (docs/security.md) has none of the privileges they need, and there
	 * only the capability sets differ (they shrink).
	 */
	for (int cap = 0; cap <= CAP_LAST; cap++)
		if (!(a->cap_bnd & (1ull << cap)) && sys2(NR_prctl, PR_CAPBSET_READ, cap) == 1) {
			r = sys2(NR_prctl, PR_CAPBSET_DROP, cap);
			if (r < 0 && r != -22) {	/* EINVAL: cap unknown to this kernel */
				*detail = 100 + cap;
				return r;
			}
		}
	/* keep the capabilities across the uid change; cleared below if not wanted */
	bits = a->securebits | (a->change_ids ? SECBIT_KEEP_CAPS : 0);
	if (sys1(NR_prctl, PR_GET_SECUREBITS) != bits)
		TRY(sys2(NR_prctl, PR_SET_SECUREBITS, bits), 1);
	if (a->change_ids) {
		TRY(sys2(NR_setgroups, a->ngroups, a->groups), 2);
		TRY(sys3(NR_setresgid, a->gid[0], a->gid[1], a->gid[2]), 3);
		sys1(NR_setfsgid, a->gid[3]);
		TRY(sys3(NR_setresuid, a->uid[0], a->uid[1], a->uid[2]), 4);
		sys1(NR_setfsuid, a->uid[3]);
	}
	TRY(sys2(NR_capset, &hdr, data), 5);
	for (int cap = 0; cap <= CAP_LAST; cap++)
		if (a->cap_amb & (1ull << cap))
			TRY(sys5(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), 200 + cap);
	if (!(a->securebits & SECBIT_KEEP_CAPS) && sys1(NR_prctl, PR_GET_KEEPCAPS) == 1)
		TRY(sys2(NR_prctl, PR_SET_KEEPCAPS, 0), 6);
	if (a->no_new_privs)
		TRY(sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 7);
#undef TRY
	return 0;
}

static int restore_creds(struct restorer_args *a)
{
	uint64_t detail = 0;
	long r;

	if (!a->change_creds) {
		if (a->no_new_privs)
			sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		return 0;
	}
	r = set_creds(a, &detail);
	if (r)
		return failed(a, RSTEP_CREDS, r, detail);
	return 0;
}

static long queue_own(struct restorer_args *a, int32_t tid, int shared_too, uint64_t *detail);

struct clone_args_raw {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/*
 * clone3 for a thread: the child starts on its own stack and calls
 * fn(args, index); registers other than rax, rcx and r11 survive clone, so
 * fn and its arguments travel in callee-saved registers.
 */
long restorer_clone_thread(struct clone_args_raw *ca, uint64_t size, void *args, long index,
			   void (*fn)(struct restorer_args *, long));
__asm__(".text\n"
	".type restorer_clone_thread, @function\n"
	"restorer_clone_thread:\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	mov %rdx, %r12\n"
	"	mov %rcx, %r13\n"
	"	mov %r8, %r14\n"
	"	mov $435, %eax\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	xor %ebp, %ebp\n"
	"	mov %r12, %rdi\n"
	"	mov %r13, %rsi\n"
	"	call *%r14\n"
	"	ud2\n"
	"1:	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	ret\n");

static void __attribute__((noreturn)) thread_park(struct restorer_args *a)
{
	__atomic_add_fetch(&a->threads_ready, 1, __ATOMIC_SEQ_CST);
	/* cryo seizes us here and sets our registers; nothing wakes this futex */
	for (;;)
		sys4(NR_futex, &a->threads_release, FUTEX_WAIT, 0, 0);
}

static int thread_failed(struct restorer_args *a, struct restorer_thread *t, int step, long r)
{
	t->fail_step = step;
	t->fail_errno = (int)-r;
	thread_park(a);
	return -1;
}

#define TCHECK(a, t, step, expr)                                   \
	do {                                                       \
		long __r = (expr);                                 \
		if (__r < 0 && __r > -4096)                        \
			return thread_failed(a, t, step, __r);     \
	} while (0)

static int thread_setup(struct restorer_args *a, struct restorer_thread *t)
{
	if (!(t->sas_flags & SS_DISABLE)) {
		struct {
			uint64_t sp;
			int32_t flags;
			int32_t pad;
			uint64_t size;
		} ss = { t->sas_sp, t->sas_flags & ~SS_ONSTACK, 0, t->sas_size };

		TCHECK(a, t, RSTEP_SIGALTSTACK, sys2(NR_sigaltstack, &ss, 0));
	}
	sys1(NR_set_tid_address, t->clear_child_tid);
	if (t->robust_list)
		TCHECK(a, t, RSTEP_TID_ADDRESS,
		       sys2(NR_set_robust_list, t->robust_list, t->robust_list_len));
	TCHECK(a, t, RSTEP_PRCTL, sys2(NR_prctl, PR_SET_NAME, t->comm));
	{
		uint64_t detail;
		TCHECK(a, t, RSTEP_SIGQUEUE, queue_own(a, t->tid, 0, &detail));
	}
	{
		uint64_t detail;
		TCHECK(a, t, RSTEP_SCHED, set_sched(&t->sched, &detail));
	}
	if (t->rseq_ptr)
		TCHECK(a, t, RSTEP_RSEQ, sys4(NR_rseq, t->rseq_ptr, t->rseq_len, 0, t->rseq_sig));
	return 0;
}

static void __attribute__((noreturn)) thread_main(struct restorer_args *a, long index)
{
	struct restorer_thread *t = (struct restorer_thread *)a->threads + index;

	uint64_t detail;
	long r;

	if (thread_setup(a, t))
		thread_park(a);
	if (a->change_creds) {
		r = set_creds(a, &detail);
		if (r)
			thread_failed(a, t, RSTEP_CREDS, r);
	} else if (a->no_new_privs) {
		sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	}
	thread_park(a);
}

static int create_threads(struct restorer_args *a)
{
	struct restorer_thread *threads = (struct restorer_thread *)a->threads;

	for (uint32_t i = 0; i < a->nr_threads; i++) {
		int32_t tid = threads[i].tid;
		struct clone_args_raw ca = {
			.flags = CLONE_THREAD_FLAGS,
			.stack = threads[i].stack_top - RESTORER_THREAD_STACK_BYTES,
			.stack_size = RESTORER_THREAD_STACK_BYTES,
			.set_tid = (uint64_t)&tid,
			.set_tid_size = 1,
		};
		long r = restorer_clone_thread(&ca, sizeof(ca), a, i, thread_main);

		if (r < 0)
			return failed(a, RSTEP_THREADS, r, tid);
	}
	while (__atomic_load_n(&a->threads_ready, __ATOMIC_SEQ_CST) < (int32_t)a->nr_threads)
		sys0(NR_sched_yield);
	return 0;
}

/* Reopen descriptors naming tasks by their original paths, at their numbers. */
static int restore_late_fds(struct restorer_args *a)
{
	const struct restorer_late_fd *late = (const struct restorer_late_fd *)a->late_fds;
	const char *strings = (const char *)a->late_strings;

	for (uint32_t i = 0; i < a->nr_late_fds; i++) {
		const struct restorer_late_fd *l = &late[i];
		long fd;

		if (l->dup_of >= 0) {
			long r = sys3(NR_dup3, l->dup_of, l->fd, l->cloexec ? O_CLOEXEC_FLAG : 0);
			if (r < 0)
				return failed(a, RSTEP_LATE_FDS, r, i);
			continue;
		}
		if (l->is_pidfd)
			fd = sys2(NR_pidfd_open, l->pid, l->flags);
		else
			fd = sys4(NR_openat, AT_FDCWD, strings + l->path, l->flags, 0);
		if (fd < 0)
			return failed(a, RSTEP_LATE_FDS, fd, i);
		if (!l->is_pidfd && l->pos) {
			long r = sys3(NR_lseek, fd, l->pos, 0);
			if (r < 0)
				return failed(a, RSTEP_LATE_FDS, r, i);
		}
		if (fd != l->fd) {
			long r = sys3(NR_dup3, fd, l->fd, l->cloexec ? O_CLOEXEC_FLAG : 0);
			sys1(NR_close, fd);
			if (r < 0)
				return failed(a, RSTEP_LATE_FDS, r, i);
		}
	}
	if (a->late_cwd)
		CHECK(a, RSTEP_LATE_CWD, sys1(NR_chdir, strings + a->late_cwd), 0);
	return 0;
}

/*
 * Queue again the signals pending on the process and on the main thread.
 * The kernel lets only a thread itself queue a kernel- or tgkill-made
 * siginfo to itself, so every other thread queues its own (queue_own).
 */
static long queue_own(struct restorer_args *a, int32_t tid, int shared_too, uint64_t *detail)
{
	const struct restorer_siginfo *s = (const struct restorer_siginfo *)a->sigs;

	for (uint32_t i = 0; i < a->nr_sigs; i++) {
		long r;

		if (s[i].tid == tid)
			r = sys4(NR_rt_tgsigqueueinfo, a->pid, tid, s[i].signo, s[i].info);
		else if (!s[i].tid && shared_too)
			r = sys3(NR_rt_sigqueueinfo, a->pid, s[i].signo, s[i].info);
		else
			continue;
		if (r < 0) {
			*detail = s[i].signo;
			return r;
		}
	}
	return 0;
}

/*
 * Signals raised while the restore ran (a helper's or zombie's exit, a
 * kill from outside) are not the program's: the pending set must be the
 * image's alone. Dequeue whatever is pending on us and the process.
 */
static void drop_pending_signals(void)
{
	uint64_t all = ~0ull;
	struct { int64_t sec, nsec; } now = { 0, 0 };
	uint8_t info[128];

	while (sys4(NR_rt_sigtimedwait, &all, info, &now, sizeof(all)) > 0)
		;
}

static int reap_helpers(struct restorer_args *a)
{
	for (uint32_t i = 0; i < a->nr_reap_pids; i++) {
		long r;

		do
			r = sys4(NR_wait4, a->reap_pids[i], 0, WALL_FLAG, 0);
		while (r == -4);	/* EINTR */
		if (r < 0)
			return failed(a, RSTEP_REAP_HELPERS, r, a->reap_pids[i]);
	}
	return 0;
}

static int queue_signals(struct restorer_args *a)
{
	uint64_t detail = 0;
	long r = queue_own(a, a->tid, 1, &detail);

	return r ? failed(a, RSTEP_SIGQUEUE, r, detail) : 0;
}

__attribute__((section(".text.entry"), used, noreturn)) void
restorer_entry(struct restorer_args *a)
{
	if (rebuild_memory(a))
		goto out;
	a->mm.auxv = (uint64_t)a->auxv;

	{
		long r = sys5(NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0);
		if (r < 0 && r > -4096) {
			failed(a, RSTEP_MM_MAP, r, 0);
			goto out;
		}
	}
	if (restore_signals(a) || restore_prctls(a) || restore_rlimits(a))
		goto out;
	/* before the credentials change: set_tid needs CAP_CHECKPOINT_RESTORE */
	if (create_threads(a))
		goto out;
	for (uint32_t i = 0; i < a->nr_close_fds; i++)
		sys1(NR_close, a->close_fds[i]);
	/* cryo lets us go on when every process and thread of the tree exists */
	stop_for_tracer(a);
	if (reap_helpers(a))
		goto out;
	if (restore_late_fds(a))
		goto out;
	if (restore_creds(a))
		goto out;
	/* after the credentials: changing them resets the dumpable flag */
	if (a->pdeathsig)
		sys2(NR_prctl, PR_SET_PDEATHSIG, a->pdeathsig);
	sys2(NR_prctl, PR_SET_DUMPABLE, a->dumpable);
	drop_pending_signals();
	if (queue_signals(a) || arm_timers(a))
		goto out;
	if (a->rseq_ptr) {
		long r = sys4(NR_rseq, a->rseq_ptr, a->rseq_len, 0, a->rseq_sig);
		if (r < 0 && r > -4096) {
			failed(a, RSTEP_RSEQ, r, a->rseq_ptr);
			goto out;
		}
	}
out:
	hand_over(a);
	__builtin_unreachable();
}
