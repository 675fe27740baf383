/*
 * The restore pipeline. Phases run in this order; each file is one phase:
 *
 *   10-validate.c  parent  load the image, check every table, check the IDs are free
 *   20-tree.c      parent  create the task with its PID (clone3 set_tid), seize it
 *   30-files.c     child   descriptors, deleted files, pipes; cwd, umask
 *   40-memory.c    child   premap every area, fill pages, jump to the restorer
 *   (restorer)     child   unmap cryo, move areas into place, mm, signals, creds
 *   50-resume.c    parent  registers, FPU state, signal mask; let the task go
 *
 * Only 10-validate reads untrusted bytes into meaning; later phases rely on
 * what it checked. Any failure kills every task created (PTRACE_O_EXITKILL
 * and an explicit SIGKILL), so nothing half-restored survives.
 */
#ifndef CRYO_RESTORE_H
#define CRYO_RESTORE_H

#include <sys/types.h>

#include "cryo.h"
#include "image/image.h"

struct restore_vma {
	struct cryo_img_vma img;
	const char *name;
	struct cryo_img_page_run *runs;
	uint32_t nr_runs;
	/* page data: the PAGES sections of this area, in order */
	uint32_t first_pages_section, nr_pages_sections;
	uint64_t premap_addr;	/* where 40-memory.c mapped it */
};

struct restore_ctx {
	const struct cryo_restore_opts *opts;
	struct img_reader *img;

	struct cryo_img_task task;
	struct cryo_img_thread *threads;	/* [0] is the main thread */
	uint32_t nr_threads;
	pid_t *seized_threads;	/* secondary threads cryo traces in phase 50 */
	uint32_t nr_seized;
	uint8_t *xstate;
	uint32_t xstate_size;
	struct cryo_img_siginfo *sigs;
	uint32_t nr_sigs;
	struct cryo_img_fd *fds;
	uint32_t nr_fds;
	struct restore_vma *vmas;
	uint32_t nr_vmas;
	const char *exe_path, *cwd_path, *root_path;

	int img_fd;		/* the image, as seen by the child after phase 30 */
	pid_t pid;		/* the restored task, once created */
	int go_pipe[2];		/* parent -> child: "you are seized, go on" */
	int report_pipe[2];	/* child -> parent: address of the restorer args */
	uint64_t restorer_args_addr;
	uint64_t restorer_area, restorer_area_len;
};

int restore_validate(struct restore_ctx *r);
int restore_create_tree(struct restore_ctx *r);
/* Runs in the child; returns only on failure (after logging). */
int restore_files(struct restore_ctx *r);
int restore_memory_and_jump(struct restore_ctx *r);
int restore_resume(struct restore_ctx *r);
void restore_kill_all(struct restore_ctx *r);

/* Blob sections with this id, concatenated, written to fd. */
int restore_copy_blob(struct restore_ctx *r, uint64_t blob_id, int fd, uint64_t *len);

#endif
