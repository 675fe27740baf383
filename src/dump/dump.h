/*
 * The checkpoint side. dump.c runs the steps in order:
 *   freeze.c -> collect_task.c -> collect_mm.c -> collect_fds.c
 *   -> write metadata -> pages.c -> commit -> leave/kill/stop the target.
 * Everything collected lives in struct dump_ctx until it is written.
 */
#ifndef CRYO_DUMP_H
#define CRYO_DUMP_H

#include <sys/stat.h>

#include "cryo.h"
#include "image/image.h"
#include "kernel/proc.h"
#include "kernel/ptrace.h"

struct page_runs {
	struct cryo_img_page_run *runs;
	uint32_t nr, cap;
};

/* Append one page to a list of runs, extending the last run when contiguous. */
int page_runs_add(struct page_runs *r, uint64_t vaddr);

struct fd_blob {
	uint64_t id;
	int src_fd;		/* where to read the content from (ours) */
	uint64_t len;
	uint8_t *data;		/* small blobs (pipe data) kept in memory */
};

struct dump_tree;
struct precopy;
struct precopy_proc;

/* One process of the checkpoint. */
struct dump_ctx {
	struct dump_tree *tree;
	pid_t pid;
	int zombie;		/* only IDs and exit status are saved */
	int exit_status;	/* zombies: as waitpid() would report it */
	/* threads[0] is the main thread (tid == pid); the others in /proc order */
	struct frozen_task *threads;
	struct cryo_img_thread *img_threads;
	int nr_threads;
	struct cryo_img_task img_task;
	struct strtab *strings;	/* the tree's */

	struct proc_vma *vmas;
	int nr_vmas;
	struct cryo_img_vma *img_vmas;
	struct page_runs *runs;	/* per VMA */
	int *vma_src_fds;	/* per VMA: fd to read shared memory data from, or -1 */
	uint64_t *shmem_inos;	/* per VMA: inode of shared anonymous memory, or 0 */

	struct cryo_img_fd *fds;
	struct stat *fd_stats;	/* what each fd points at, for sharing analysis */
	int nr_fds;

	struct cryo_img_siginfo *sigs;
	int nr_sigs;

	struct precopy_proc *pre;	/* its pre-copy state, or NULL (precopy.c) */
	struct page_runs precopy_drop;	/* pre-copied pages restore must zero */

	int mem_fd;		/* /proc/PID/mem, for areas without PROT_READ */
	uint64_t zero_pfn;	/* PFN of the kernel's zero page (skipped) */
};

/* A shared anonymous memory object, saved once for all areas mapping it. */
struct dump_shmem {
	struct cryo_img_shmem img;
	struct page_runs runs;	/* offsets in the object */
	int src_fd;		/* a map_files (or /proc/PID/fd) fd on it */
	int mapped;		/* some area maps it */
};

/* The whole checkpoint: every process in scope, in tree order (parents first). */
struct dump_tree {
	struct dump_ctx **procs;
	int nr_procs;
	struct strtab strings;
	struct fd_blob *blobs;
	int nr_blobs;
	uint64_t next_file_id;
	int external;		/* --external: pipes/FIFOs leading outside are allowed */
	struct codec *codec;	/* page data compression, or NULL; the page pipe's
				   threads each use a copy (codec_new_like) */
	int codec_id;		/* enum cryo_codec */
	struct dump_shmem *shmems;
	int nr_shmems;
	uint64_t image_bytes;
	struct precopy *precopy;	/* NULL without pre-copy */
	/*
	 * The pre-copy's page pipe, still writing its last chunks while the
	 * tree is frozen and collected; write_image() takes it over.
	 */
	struct page_pipe *pipe;
};

int freeze_process(struct dump_ctx *c);
void thaw_process(struct dump_ctx *c);
void kill_process(struct dump_ctx *c);
int collect_task(struct dump_ctx *c);
int collect_mm(struct dump_ctx *c);
int collect_fds(struct dump_ctx *c);
/* After every process is collected: pipes across processes, shared files. */
int resolve_shared_fds(struct dump_tree *t);
int add_blob(struct dump_tree *t, struct cryo_img_fd *f, int src_fd, uint64_t len,
	     uint8_t *data);
/*
 * The page pipe (pages.c): chunks of page data read by the calling thread,
 * compressed by a pool of threads (compressed images), written in order by
 * a writer thread. While it runs, only the pipe writes to the image:
 * page_pipe_drain() before writing anything else.
 */
struct page_pipe;
/* A chunk: the caller fills buf (page_pipe_chunk_bytes()) and may use kept. */
struct page_chunk {
	uint8_t *buf;
	struct page_runs kept;	/* the caller's: page list of buf, if it wants one */
	/* the pipe's: */
	const struct page_runs *map;	/* written as PAGEMAP before the data, or NULL */
	size_t len;
	uint64_t id;
	uint8_t *zbuf;		/* ZPAGES payload (compressed images) */
	size_t zlen;
	uint32_t crc;		/* of what is written: buf[0..len) or zbuf[0..zlen) */
};
int page_pipe_start(struct page_pipe **ppp, struct dump_tree *t, struct img_writer *w);
size_t page_pipe_chunk_bytes(const struct page_pipe *pp);
/* The next chunk to fill, once one is free; NULL and *err if the pipe failed. */
struct page_chunk *page_pipe_get(struct page_pipe *pp, int *err);
/*
 * Queue the chunk from page_pipe_get(): len bytes of buf as section id,
 * after a PAGEMAP of map (kept or a list that outlives the pipe) if not NULL.
 */
void page_pipe_put(struct page_pipe *pp, struct page_chunk *ch, uint64_t id,
		   const struct page_runs *map, size_t len);
/* Is this page all zeros? (Zero pages are left out of images.) */
int page_is_zero(const uint8_t *p);
/* Wait until everything queued is written; the pipe's first error. */
int page_pipe_drain(struct page_pipe *pp);
/* Write what is queued (or drop it if ret != 0), stop and free; ret or the pipe's error. */
int page_pipe_finish(struct page_pipe *pp, int ret);
/* Each drains the pipe before it returns. */
int dump_pages(struct dump_ctx *c, struct page_pipe *pp);
/* Group shared memory areas and memfd descriptors into objects; find their pages. */
int collect_shmem(struct dump_tree *t);
int dump_shmem_pages(struct dump_tree *t, struct page_pipe *pp);

/*
 * Pre-copy (precopy.c): with the tree frozen, arm write tracking in each
 * process of `frozen`; with it running, copy their memory; frozen again,
 * per process before collect_mm, find what is still exact, and after it,
 * take that out of the page lists.
 */
int precopy_wanted(pid_t root, enum cryo_precopy mode);
int precopy_arm(struct dump_tree *t, struct dump_tree *frozen);
int precopy_copy(struct dump_tree *t, struct img_writer *w);
int precopy_final_scan(struct dump_ctx *c);
int precopy_trim(struct dump_ctx *c);
int precopy_registered(const struct dump_ctx *c, uint64_t start, uint64_t end);
void precopy_release(struct dump_tree *t, int killed);
void precopy_free(struct dump_tree *t);
uint64_t precopy_pages(const struct dump_tree *t);	/* copied while running */

#endif
