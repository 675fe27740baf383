/*
 * The restore pipeline. Phases run in this order; each file is one phase:
 *
 *   10-validate.c  cryo     load the image, check every table and the tree,
 *                           check that every PID and TID is free
 *   15-plan.c      cryo     who creates whom: sessions, groups, helper tasks
 *                           for leaders that are gone
 *   20-tree.c      each     create the processes with their PIDs (clone3
 *                           set_tid), parents first; sessions and groups;
 *                           zombies exit with their status
 *   30-files.c     each     descriptors: objects shared between processes are
 *                           opened once by the root and inherited; cwd, umask
 *   40-memory.c    each     premap every area, fill pages, jump to the restorer
 *   (restorer)     each     unmap cryo, move areas into place, mm, signals,
 *                           threads (clone3 set_tid), credentials
 *   50-resume.c    cryo     trace everything; when every process is parked,
 *                           load registers, FPU state, masks; let all go
 *
 * "cryo" is the restoring process (the tracer); "each" runs in every
 * process being restored, which starts as a copy of cryo. Only 10-validate
 * reads untrusted bytes into meaning; later phases rely on what it checked.
 * Any failure kills every task created (PTRACE_O_EXITKILL and SIGKILL), so
 * nothing half-restored survives.
 */
#ifndef CRYO_RESTORE_H
#define CRYO_RESTORE_H

#include <sys/types.h>

#include "cryo.h"
#include "image/image.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020	/* Linux 6.3; older libc headers lack it */
#endif

#define MAX_EPOLL_WATCHES (1u << 20)

struct restore_vma {
	struct cryo_img_vma img;
	const char *name;
	struct cryo_img_page_run *runs;
	uint32_t nr_runs;
	/* page data: the PAGES sections of this area, in order */
	uint32_t first_pages_section, nr_pages_sections;
	uint64_t premap_addr;	/* where 40-memory.c mapped it */
	int deleted_fd;		/* CRYO_VMA_DELETED: the recreated file, or -1 */
};

/* A section of page data, and which pages of its run list it holds. */
struct restore_page_section {
	uint32_t index;		/* in the image's index */
	uint32_t pages;
	uint64_t first_page;	/* counted over the runs, in order */
};

/* One process of the image. */
struct restore_proc {
	struct cryo_img_task task;
	int parent;		/* index in procs[]; -1: cryo (the root, or its parent is not in the image) */
	int creator;		/* who creates it (phase 15); -1: cryo */
	int clone_parent;	/* created with CLONE_PARENT: its parent is the creator's */
	int helper;		/* not of the image: holds a dead leader's PID (phase 15) */
	int zombie;
	struct cryo_img_thread *threads;	/* [0] is the main thread */
	uint32_t nr_threads;
	struct cryo_img_fd *fds;		/* slice of restore_ctx.fds */
	uint32_t nr_fds;
	int *fd_park;				/* per fd: inherited object, or -1 */
	struct cryo_img_siginfo *sigs;
	uint32_t nr_sigs;
	struct restore_vma *vmas;
	uint32_t nr_vmas;
	const char *exe_path, *cwd_path, *root_path;
	/*
	 * Pre-copy (image 1.1): page data saved while the process still ran,
	 * runs over the whole address space; applied to private anonymous
	 * areas first, then precopy_drop zeroed, then each area's own pages.
	 */
	struct restore_vma precopy;
	uint64_t *precopy_run_page;	/* per run: its first page in the data */
	struct restore_page_section *precopy_secs;
	uint32_t nr_precopy_secs;
	struct cryo_img_page_run *precopy_drop;
	uint32_t nr_precopy_drop;

	/* cryo's side (phase 50) */
	int seized;		/* attached (auto-attached at creation) */
	int parked;		/* its restorer stopped and waits for us */
	int exited;		/* zombies: their exit was seen */
	pid_t *seized_threads;
	uint32_t nr_seized;
	uint64_t restorer_args_addr, restorer_area, restorer_area_len;
};

/* A shared anonymous memory object: mapped once by the root, inherited by all. */
struct restore_shmem {
	struct restore_vma area;	/* start 0, end = size; its pages */
	uint64_t addr;			/* where the root mapped it */
	struct cryo_img_shmem img;
	const char *memfd_name;		/* CRYO_SHMEM_MEMFD */
	int mapped;			/* some area maps it */
	int fd;				/* memfd: the root's, parked; else -1 */
	int sysv_created;		/* SYSV: made by this restore (undo removes it) */
};

/* What a process tells cryo before it jumps into the restorer. */
struct restore_report {
	pid_t pid;
	uint32_t pad;
	uint64_t args, area, area_len;
};

struct restore_ctx {
	const struct cryo_restore_opts *opts;
	struct img_reader *img;

	struct restore_proc *procs;	/* parents before children; [0] is the root */
	uint32_t nr_procs;		/* the image's, then phase 15's helpers */
	uint32_t nr_image_procs;
	int plan_only;			/* phase 15 run by a checkpoint: no PID is taken yet */
	struct cryo_img_thread *threads;
	uint32_t nr_threads;
	struct cryo_img_fd *fds;
	uint32_t nr_fds;
	struct cryo_img_siginfo *sigs;
	uint32_t nr_sigs;
	uint8_t *xstate;
	uint32_t xstate_size;
	size_t pages_cursor;	/* phase 10: where the last area's page data ended */
	struct pagemap_ref *pagemaps;	/* phase 10: PAGEMAP sections by id, then index */
	size_t nr_pagemaps;
	uint8_t *claimed;	/* phase 10: per section, 1 once a page list or drop list is used */
	struct restore_shmem *shmems;
	uint32_t nr_shmems;
	uint64_t shmem_stage, shmem_stage_len;	/* where the root mapped them all */

	/* descriptor numbers: image fds < internal_base <= cryo's own < park_base <= parked */
	int internal_base, park_base;
	int nr_parks;

	struct restore_proc *me;	/* in a process being restored: itself */
	int img_fd;		/* the image (moved to a high number in each process) */
	int go_pipe[2];		/* cryo -> root: "you are traced, go on" */
	int barrier_pipe[2];	/* cryo -> all: "every process exists" (one byte each) */
	int report_pipe[2];	/* all -> cryo: struct restore_report */
	int release_pipe[2];	/* cryo -> leader helpers: EOF = every group joined, exit */
	int arrive_pipe[2];	/* all -> cryo: "my session, group and children exist" */
	uint32_t arrived;
	int stdio_copy[3];	/* cryo's own stdio, for inherited descriptors */
	int *inherit_copy;	/* opts->inherit[i].from, moved above the image's fds */

	/* tasks holding the PIDs of dead tasks named by /proc fds, until the end */
	pid_t *helpers;
	uint32_t nr_helpers;
	int helper_pipe[2];
	pid_t anonymous_helper;	/* for pidfds of tasks already reaped (no PID) */
	int root_needs_session_helper;	/* the root's session leader is gone */
	/* phase 40: decompression threads (unpack.c), started at the first use */
	struct unpack_pool *unpack;
	int unpack_tried;
};

/* Is this fd reopened in the restorer's late step (it names a task)? */
int restore_fd_is_late(const struct restore_proc *p, const struct cryo_img_fd *f);
/* Does this path (or cwd) name a task, so it must be reopened late? */
int restore_is_proc_path(const char *path);

int restore_validate(struct restore_ctx *r);
int restore_find_proc(const struct restore_ctx *r, pid_t pid);
/* Phase 15: creators, CLONE_PARENT and helpers for sessions and groups. */
int restore_plan_tree(struct restore_ctx *r);
/* Phase 10 alone, on opts->image: everything it checks, no task created (fuzzing). */
int restore_validate_only(const struct cryo_restore_opts *opts);
int restore_create_tree(struct restore_ctx *r);
void restore_end_helpers(struct restore_ctx *r);
/* Runs in each process being restored; never returns (exits on failure). */
void __attribute__((noreturn)) restore_proc_main(struct restore_ctx *r, int index);
/* Phase 30 in the root: open objects shared between processes, park them. */
int restore_shared_files(struct restore_ctx *r);
/* Phase 30 in each process; returns only on failure (after logging). */
int restore_files(struct restore_ctx *r);
/* Exit status of a task that found the image corrupt while restoring itself (logged). */
#define RESTORE_CHILD_EXIT_IMAGE 122
int restore_memory_and_jump(struct restore_ctx *r);
/*
 * unpack.c, for phase 40: page data read (and decompressed) as jobs, by
 * this thread and extra threads of the process being restored, at TIDs the
 * image does not use and free again once unpack_stop() returns (none with
 * one CPU). unpack_start() returns NULL only when out of memory.
 */
struct unpack_pool;
struct unpack_pool *unpack_start(const struct restore_ctx *r);
void unpack_stop(struct unpack_pool *u);
/* Has v more than one section of page data (worth sharing out)? */
int unpack_area_wanted(const struct restore_ctx *r, const struct restore_vma *v);
/* Fill the premapped copy of v from its page data, each section checked as it lands. */
int unpack_area(struct unpack_pool *u, struct restore_ctx *r, struct restore_vma *v);
/*
 * Pre-copied pages (plain or compressed) into every premapped area of ours
 * that takes() them, each section checked as it lands.
 */
int unpack_precopy(struct unpack_pool *u, struct restore_ctx *r,
		   int (*takes)(const struct restore_vma *area));
/* In the root, before any child: make, map and fill every shared memory object. */
int restore_shared_memory(struct restore_ctx *r);
int restore_resume(struct restore_ctx *r);
/* SysV segments (sysv.c): ids back before any task; removal marks once attached. */
int restore_sysv_prepare(struct restore_ctx *r);
int restore_sysv_finish(struct restore_ctx *r);
void restore_sysv_undo(struct restore_ctx *r);
void restore_kill_all(struct restore_ctx *r);

/* Blob sections with this id, concatenated, written to fd. */
int restore_copy_blob(struct restore_ctx *r, uint64_t blob_id, int fd, uint64_t *len);
/* Recreate a file deleted while open or mapped; returns an fd on it or < 0. */
int restore_recreate_deleted(struct restore_ctx *r, const char *root, const char *shown,
			     uint32_t mode, uint64_t blob_id, int open_flags, const char *what);
/* Move fd to the lowest free number >= base (close-on-exec); the old one is closed. */
int restore_move_fd(int fd, int base);

#endif
