/*
 * Parsers for /proc/PID files. Every parser tolerates missing fields (older
 * kernels) by leaving them zero, and reports malformed input as -EINVAL.
 */
#ifndef CRYO_KERNEL_PROC_H
#define CRYO_KERNEL_PROC_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_vma_range {
	uint64_t start, end;
};

/* VmFlags letters from smaps that cryo keeps. */
enum proc_vmflag {
	VMF_GROWSDOWN = 1 << 0,	/* gd */
	VMF_DONTCOPY = 1 << 1,	/* dc */
	VMF_DONTDUMP = 1 << 2,	/* dd */
	VMF_HUGEPAGE = 1 << 3,	/* hg */
	VMF_NOHUGEPAGE = 1 << 4,	/* nh */
	VMF_WIPEONFORK = 1 << 5,	/* wf */
	VMF_LOCKED = 1 << 6,	/* lo */
	VMF_SEQ_READ = 1 << 7,	/* sr */
	VMF_RAND_READ = 1 << 8,	/* rr */
	VMF_MERGEABLE = 1 << 9,	/* mg */
	VMF_MAYWRITE = 1 << 10,	/* mw */
	VMF_NORESERVE = 1 << 11,	/* nr */
	VMF_SHARED = 1 << 12,	/* sh */
	VMF_HUGETLB = 1 << 13,	/* ht */
	VMF_IO = 1 << 14,	/* io / pf (pfn maps) */
	VMF_UFFD = 1 << 15,	/* um / ui: missing or minor faults */
	VMF_MAYREAD = 1 << 16,	/* mr */
	VMF_MAYEXEC = 1 << 17,	/* me */
	VMF_SEALED = 1 << 18,	/* sl (mseal) */
	VMF_UFFD_WP = 1 << 19,	/* uw: write-protect faults */
};

struct proc_vma {
	uint64_t start, end, pgoff;
	int prot;		/* PROT_* */
	int shared;		/* 's' in maps */
	unsigned dev_major, dev_minor;
	uint64_t ino;
	unsigned vmflags;	/* enum proc_vmflag */
	const char *path;	/* "" for anonymous; lives in the array's allocation */
};

/* Parse /proc/PID/smaps into a malloc'd array (one free() releases it all). */
int proc_read_vmas(pid_t pid, struct proc_vma **vmas, int *nr);
/* The same from /proc/PID/maps: no vmflags, but no page-table walk (fast on big areas). */
int proc_read_maps(pid_t pid, struct proc_vma **vmas, int *nr);
int proc_find_named_vma(pid_t pid, const char *name, struct proc_vma_range *r);

struct proc_stat {
	char state;
	pid_t ppid, pgrp, session;
	unsigned long flags;
	long num_threads;
	unsigned long long starttime;
	uint64_t start_code, end_code, start_stack;
	int exit_signal;
	int exit_code;		/* field 52: wait status, for zombies */
	uint64_t start_data, end_data, start_brk;
	uint64_t arg_start, arg_end, env_start, env_end;
	char comm[64];
};
int proc_read_stat(pid_t pid, pid_t tid, struct proc_stat *st);

struct proc_status {
	uint32_t uid[4], gid[4];
	uint32_t ngroups;
	uint32_t groups[256];
	int groups_truncated;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t umask;
	int no_new_privs;
	int seccomp;
	int threads;
	pid_t tracer_pid;
	pid_t tgid;
	int nspid_levels;	/* number of entries in NSpid */
};
int proc_read_status(pid_t pid, struct proc_status *st);

char proc_task_state(pid_t tid);	/* 0 if no such task */
pid_t proc_tracer_pid(pid_t tid);
pid_t proc_tgid(pid_t tid);

struct proc_fdinfo {
	uint64_t pos;
	uint32_t flags;
	int mnt_id;
	uint64_t ino;
	int pidfd_pid;		/* "Pid:" of a pidfd; -1 once the task is reaped */
	int has_eventfd_count;	/* an eventfd's fdinfo was read: */
	uint64_t eventfd_count;	/* "eventfd-count:" (hex) */
	int has_eventfd_semaphore;	/* the line is there (Linux 6.6+) */
	int eventfd_semaphore;	/* "eventfd-semaphore:" */
	int has_sigmask;	/* a signalfd's fdinfo was read: */
	uint64_t sigmask;	/* "sigmask:" (hex, bit N-1 for signal N) */
	int timer_fields;	/* a timerfd's fdinfo: how many of these were read (5) */
	int timer_clockid;	/* "clockid:" */
	uint32_t timer_flags;	/* "settime flags:" (octal) */
	uint64_t timer_ticks;	/* "ticks:" */
	uint64_t timer_value_ns, timer_interval_ns;	/* "it_value: (s, ns)", "it_interval:" */
};
int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *fi);

/* List open fd numbers of pid (sorted); malloc'd. */
int proc_list_fds(pid_t pid, int **fds, int *nr);
/* Comm of pid or "?" */
void proc_comm(pid_t pid, char *buf, size_t len);

#endif
