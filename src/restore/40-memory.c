/*
 * Phase 40 (in the new task): rebuild the address space, part one.
 *
 * Every area of the image is mapped in a "premap" region that overlaps
 * neither the image's layout nor ours, filled straight from the image
 * (large page data is page aligned in the file; areas with several sections of
 * it, and pre-copied data, on several threads: unpack.c), given its
 * protection and madvise flags. Areas are spaced one unmapped page apart
 * so that when the restorer moves them into place with mremap their page
 * offsets never line up: areas that were separate in the image stay
 * separate, exactly as in /proc/PID/maps. Then the freestanding restorer is copied into place and
 * entered on its own stack; it never returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/codec.h"
#include "kernel/proc.h"
#include "restore/restore.h"
#include "restorer/restorer.h"
#include "util/util.h"

#define USER_SPACE_END 0x7ffffffff000ull
#define SEARCH_START 0x10000000ull
#define RESTORER_STACK_BYTES (64 * 1024)
#define THREAD_STACK_BYTES RESTORER_THREAD_STACK_BYTES
#define RSEQ_SIG_X86 0x53053053
#define RSEQ_FLAG_UNREGISTER 1
#define GLIBC_RSEQ_AREA_BYTES 32
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

extern const char cryo_restorer_blob[], cryo_restorer_blob_end[];
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

struct busy {
	struct restorer_range *r;
	size_t nr, cap;
};

static int busy_add(struct busy *b, uint64_t start, uint64_t end)
{
	if (b->nr == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct restorer_range *p = realloc(b->r, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		b->r = p;
		b->cap = cap;
	}
	b->r[b->nr].start = start;
	b->r[b->nr].end = end;
	b->nr++;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct restorer_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Lowest free gap of len bytes (plus a guard page each side) above SEARCH_START. */
static uint64_t find_hole(struct busy *b, uint64_t len)
{
	uint64_t cur = SEARCH_START;

	qsort(b->r, b->nr, sizeof(*b->r), cmp_range);
	for (size_t i = 0; i <= b->nr; i++) {
		uint64_t next = i < b->nr ? b->r[i].start : USER_SPACE_END;

		if (next > cur && next - cur >= len + 2 * PAGE_SIZE_BYTES)
			return cur + PAGE_SIZE_BYTES;
		if (i < b->nr && b->r[i].end > cur)
			cur = b->r[i].end;
	}
	return 0;
}

/* Areas mapped in the premap region here (shared anonymous memory is the root's). */
static int is_premapped(const struct restore_vma *v)
{
	return v->img.kind == CRYO_VMA_ANON_PRIVATE || v->img.kind == CRYO_VMA_FILE_PRIVATE ||
	       v->img.kind == CRYO_VMA_FILE_SHARED;
}

static int fail_vma(const struct restore_vma *v, const char *what, int err)
{
	return cryo_fail(CRYO_ERESTORE, "restore: memory area %lx-%lx (%s): %s: %s",
			 (unsigned long)v->img.start, (unsigned long)v->img.end,
			 v->name[0] ? v->name : "anonymous", what, strerror(err));
}

/*
 * A file deleted while mapped is recreated once per process (its areas
 * share it), from its content in the image, and unlinked again.
 */
static int open_deleted_mapping(struct restore_ctx *r, const struct restore_vma *v)
{
	struct restore_proc *p = r->me;
	char what[96];

	for (const struct restore_vma *w = p->vmas; w < v; w++)
		if ((w->img.flags & CRYO_VMA_DELETED) && w->img.blob_id == v->img.blob_id &&
		    w->deleted_fd >= 0)
			return fcntl(w->deleted_fd, F_DUPFD_CLOEXEC, 0);
	snprintf(what, sizeof(what), "memory area %lx-%lx of task %d",
		 (unsigned long)v->img.start, (unsigned long)v->img.end, p->task.pid);
	/* opened as the most demanding area of that file needs (writable shared maps) */
	int mode = O_RDONLY;
	for (uint32_t i = 0; i < p->nr_vmas; i++)
		if (p->vmas[i].img.blob_id == v->img.blob_id &&
		    (p->vmas[i].img.flags & CRYO_VMA_DELETED) && p->vmas[i].img.open_flags == O_RDWR)
			mode = O_RDWR;
	int fd = restore_recreate_deleted(r, p->root_path, v->name, v->img.file_mode,
					  v->img.blob_id, mode, what);
	if (fd < 0)
		return fd;
	((struct restore_vma *)v)->deleted_fd = fcntl(fd, F_DUPFD_CLOEXEC, r->internal_base);
	return fd;
}

static int open_mapped_file(struct restore_ctx *r, const struct restore_vma *v)
{
	const char *root = r->me->root_path;

	if (v->img.flags & CRYO_VMA_DELETED)
		return open_deleted_mapping(r, v);
	char path[PATH_MAX + 64];
	struct stat sb;
	int fd;

	if (!strcmp(root, "/"))
		snprintf(path, sizeof(path), "%s", v->name);
	else
		snprintf(path, sizeof(path), "%s%s", root, v->name);
	fd = open(path, v->img.open_flags | O_CLOEXEC);
	if (fd < 0)
		return fail_vma(v, "open", errno);
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return fail_vma(v, "fstat", errno);
	}
	/* Private maps take their unmodified pages from the file: it must not have changed. */
	if (v->img.kind == CRYO_VMA_FILE_PRIVATE && S_ISREG(sb.st_mode) &&
	    ((uint64_t)sb.st_size != v->img.file_size ||
	     (uint64_t)(sb.st_mtim.tv_sec * 1000000000ull + sb.st_mtim.tv_nsec) !=
		     v->img.file_mtime_ns)) {
		close(fd);
		return cryo_fail(CRYO_ERESTORE, "restore: memory area %lx-%lx maps %s, which "
				 "changed since the checkpoint (size or mtime differ)",
				 (unsigned long)v->img.start, (unsigned long)v->img.end, v->name);
	}
	return fd;
}

/*
 * Where the page data of a section comes from: plain sections are read
 * straight into place; compressed ones are decompressed into a bounce
 * buffer first (each chunk decompresses on its own). The image was opened
 * with IMGR_DEFER_PAGE_DATA: every section's CRC is checked here, on the
 * one read of its data (compressed: before decompressing; plain: piece by
 * piece as it lands, the area is then torn down with the task on mismatch).
 */
struct page_source {
	uint64_t left, off;	/* bytes left, and where (file offset or buffer index) */
	uint8_t *zraw, *zin;	/* decompressed chunk, compressed input */
	int compressed;
	uint32_t sec;		/* the section being consumed */
	uint32_t crc;		/* of its payload so far (plain sections) */
};

/*
 * Plain page data is read in pieces of this size: each is populated first
 * (MADV_POPULATE_WRITE allocates in bulk, much cheaper than a fault per
 * page during the copy) and checksummed while it is still in the cache.
 */
#define FILL_PIECE_BYTES (1ul << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int next_section(struct restore_ctx *r, struct restore_vma *v, uint32_t *sec,
			struct page_source *src)
{
	for (;;) {
		/* phase 10 checked that the data of the runs is all there, in order */
		if (*sec >= v->first_pages_section + v->nr_pages_sections)
			return fail_vma(v, "page data ends early", EINVAL);
		const struct cryo_img_index_entry *e = imgr_section(r->img, *sec);
		uint64_t off = imgr_payload_offset(r->img, *sec);
		struct cryo_zpages_header zh;
		uint32_t crc;
		int ret;

		src->sec = (*sec)++;
		if (e->type == CRYO_SEC_PAGES) {
			src->compressed = 0;
			src->left = e->length;
			src->off = off;
			src->crc = 0;
			return 0;
		}
		if (e->type != CRYO_SEC_ZPAGES)
			continue;
		if (!src->zraw) {
			src->zraw = malloc(CRYO_ZPAGES_MAX_RAW);
			src->zin = malloc(CRYO_ZPAGES_MAX_RAW * 2);
			if (!src->zraw || !src->zin)
				return fail_vma(v, "allocating decompression buffers", ENOMEM);
		}
		/* lengths were checked in phase 10, but the file may have changed since */
		ret = pread_full(r->img_fd, &zh, sizeof(zh), off);
		if (!ret && (e->length <= sizeof(zh) ||
			     e->length - sizeof(zh) > CRYO_ZPAGES_MAX_RAW * 2))
			ret = -EINVAL;
		if (!ret)
			ret = pread_full(r->img_fd, src->zin, e->length - sizeof(zh), off + sizeof(zh));
		if (ret)
			return fail_vma(v, "reading its compressed pages", -ret);
		crc = crc32c(crc32c(0, &zh, sizeof(zh)), src->zin, e->length - sizeof(zh));
		if (crc != imgr_payload_crc(r->img, src->sec))
			return imgr_payload_crc_mismatch(r->img, src->sec);
		if (zh.raw_len > CRYO_ZPAGES_MAX_RAW ||
		    codec_decompress(zh.codec, src->zraw, zh.raw_len, src->zin,
				     e->length - sizeof(zh)))
			return fail_vma(v, "decompressing its pages", EINVAL);
		src->compressed = 1;
		src->left = zh.raw_len;
		src->off = 0;
		return 0;
	}
}

/* Fill the premapped copy of v; populate: allocate its pages in bulk first. */
static int fill_pages(struct restore_ctx *r, struct restore_vma *v, int populate)
{
	struct page_source src = { 0 };
	uint32_t sec = v->first_pages_section;
	int ret = 0;

	for (uint32_t i = 0; i < v->nr_runs && !ret; i++) {
		uint64_t addr = v->premap_addr + (v->runs[i].vaddr - v->img.start);
		uint64_t left = v->runs[i].nr_pages * PAGE_SIZE_BYTES;

		while (left && !ret) {
			if (!src.left) {
				ret = next_section(r, v, &sec, &src);
				if (ret)
					break;
			}
			uint64_t n = left < src.left ? left : src.left;
			if (src.compressed) {
				memcpy((void *)addr, src.zraw + src.off, n);
			} else {
				if (n > FILL_PIECE_BYTES)
					n = FILL_PIECE_BYTES;
				/* only an optimisation: the read faults pages in anyway */
				if (populate)
					madvise((void *)addr, n, MADV_POPULATE_WRITE);
				ret = pread_full(r->img_fd, (void *)addr, n, src.off);
				if (ret) {
					ret = fail_vma(v, "reading its pages from the image", -ret);
					break;
				}
				src.crc = crc32c(src.crc, (void *)addr, n);
				if (n == src.left && src.crc != imgr_payload_crc(r->img, src.sec))
					ret = imgr_payload_crc_mismatch(r->img, src.sec);
			}
			addr += n;
			left -= n;
			src.left -= n;
			src.off += n;
		}
	}
	/* phase 10 matched the runs to the data: every section read is used up */
	if (!ret && src.left)
		ret = fail_vma(v, "page data longer than its page list", EINVAL);
	free(src.zraw);
	free(src.zin);
	return ret;
}

/* First run of the sorted list that ends above addr. */
static uint32_t first_run_above(const struct cryo_img_page_run *runs, uint32_t nr, uint64_t addr)
{
	uint32_t lo = 0, hi = nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (runs[mid].vaddr + runs[mid].nr_pages * PAGE_SIZE_BYTES <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Does pre-copied data go into v: private anonymous areas with pages. */
static int takes_precopy(const struct restore_vma *v)
{
	return v->img.kind == CRYO_VMA_ANON_PRIVATE && v->img.nr_pages_dumped;
}

/* The page data jobs' threads (unpack.c), started at the first use (NULL: out of memory). */
static struct unpack_pool *pool_of(struct restore_ctx *r)
{
	if (!r->unpack_tried) {
		r->unpack_tried = 1;
		r->unpack = unpack_start(r);
	}
	return r->unpack;
}

/*
 * Pre-copy, for every area at once (a compressed chunk may hold pages of
 * several areas): the pages saved while the process still ran. Each area
 * then gets zeros over those that went stale (drop_stale_precopy), and
 * its own pages, saved frozen, over both.
 */
static int fill_precopy_all(struct restore_ctx *r)
{
	struct restore_proc *p = r->me;

	if (!p->nr_precopy_secs)
		return 0;
	if (!pool_of(r))
		return cryo_fail(CRYO_ERESTORE, "restore: process %d: pre-copied pages: %s",
				 p->task.pid, strerror(ENOMEM));
	return unpack_precopy(r->unpack, r, takes_precopy);
}

static int drop_stale_precopy(struct restore_ctx *r, struct restore_vma *v)
{
	const struct restore_proc *p = r->me;

	for (uint32_t i = first_run_above(p->precopy_drop, p->nr_precopy_drop, v->img.start);
	     i < p->nr_precopy_drop && p->precopy_drop[i].vaddr < v->img.end; i++) {
		const struct cryo_img_page_run *d = &p->precopy_drop[i];
		uint64_t end = d->vaddr + d->nr_pages * PAGE_SIZE_BYTES;
		uint64_t lo = d->vaddr > v->img.start ? d->vaddr : v->img.start;
		uint64_t hi = end < v->img.end ? end : v->img.end;

		/* a private anonymous page dropped reads as zeros again, as it was */
		if (madvise((void *)(v->premap_addr + (lo - v->img.start)), hi - lo,
			    MADV_DONTNEED) < 0)
			return fail_vma(v, "zeroing stale pre-copied pages", errno);
	}
	return 0;
}

static int apply_advice(const struct restore_vma *v)
{
	static const struct {
		uint32_t flag;
		int advice;
	} table[] = {
		{ CRYO_VMA_DONTFORK, MADV_DONTFORK }, { CRYO_VMA_DONTDUMP, MADV_DONTDUMP },
		{ CRYO_VMA_HUGEPAGE, MADV_HUGEPAGE }, { CRYO_VMA_NOHUGEPAGE, MADV_NOHUGEPAGE },
		{ CRYO_VMA_WIPEONFORK, MADV_WIPEONFORK }, { CRYO_VMA_SEQ_READ, MADV_SEQUENTIAL },
		{ CRYO_VMA_RAND_READ, MADV_RANDOM }, { CRYO_VMA_MERGEABLE, MADV_MERGEABLE },
	};
	void *addr = (void *)v->premap_addr;
	size_t len = v->img.end - v->img.start;

	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if ((v->img.flags & table[i].flag) && madvise(addr, len, table[i].advice) < 0)
			return fail_vma(v, "madvise", errno);
	/* the raw call: ASan builds of cryo turn mlock() into a no-op */
	if ((v->img.flags & CRYO_VMA_LOCKED) && syscall(SYS_mlock, addr, len) < 0)
		return fail_vma(v, "mlock", errno);
	if (!strncmp(v->name, "[anon:", 6) || !strncmp(v->name, "[anon_shmem:", 12)) {
		char name[256];
		const char *start = strchr(v->name, ':') + 1;
		size_t n = strlen(start);

		snprintf(name, sizeof(name), "%.*s", (int)(n ? n - 1 : 0), start);
		if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)addr, len,
			  (unsigned long)name) < 0)
			return fail_vma(v, "naming it", errno);
	}
	return 0;
}

/* Map v at addr in the premap region: writable while it is filled. */
static int premap_map(struct restore_ctx *r, struct restore_vma *v, uint64_t addr)
{
	size_t len = v->img.end - v->img.start;
	int prot = v->img.prot, flags = MAP_FIXED, fd = -1;
	void *p;

	if (v->img.nr_pages_dumped)
		prot |= PROT_READ | PROT_WRITE;
	if (v->img.flags & CRYO_VMA_NORESERVE)
		flags |= MAP_NORESERVE;
	switch (v->img.kind) {
	case CRYO_VMA_ANON_PRIVATE:
		flags |= MAP_PRIVATE | MAP_ANONYMOUS;
		if (v->img.flags & CRYO_VMA_GROWSDOWN)
			flags |= MAP_GROWSDOWN;
		break;
	case CRYO_VMA_ANON_SHARED:
		flags |= MAP_SHARED | MAP_ANONYMOUS;
		break;
	case CRYO_VMA_FILE_PRIVATE:
	case CRYO_VMA_FILE_SHARED:
		fd = open_mapped_file(r, v);
		if (fd < 0)
			return fd;
		flags |= v->img.kind == CRYO_VMA_FILE_SHARED ? MAP_SHARED : MAP_PRIVATE;
		break;
	}
	p = mmap((void *)addr, len, prot, flags, fd, fd >= 0 ? v->img.pgoff : 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return fail_vma(v, "mmap", errno);
	v->premap_addr = addr;
	return 0;
}

/* Fill v with its own pages (pre-copied ones are in), then its protection and advice. */
static int premap_fill(struct restore_ctx *r, struct restore_vma *v)
{
	size_t len = v->img.end - v->img.start;
	int ret = 0;

	/* pre-copied pages can only be kept where the area has pages (nr_pages_dumped) */
	if (takes_precopy(v))
		ret = drop_stale_precopy(r, v);
	if (!ret && unpack_area_wanted(r, v) && pool_of(r)) {
		ret = unpack_area(r->unpack, r, v);
	} else if (!ret) {
		ret = fill_pages(r, v, v->img.kind == CRYO_VMA_ANON_PRIVATE);
	}
	if (ret)
		return ret;
	if (v->img.nr_pages_dumped && (v->img.prot & (PROT_READ | PROT_WRITE)) !=
					      (PROT_READ | PROT_WRITE) &&
	    mprotect((void *)v->premap_addr, len, v->img.prot) < 0)
		return fail_vma(v, "mprotect", errno);
	return apply_advice(v);
}

struct layout {
	uint64_t area, area_len;	/* restorer area, premap region right after */
	uint64_t blob_len, args_off, stack_top, park_off;
	uint64_t premap, premap_len;
	struct proc_vma *own;
	int nr_own;
};

static int plan_layout(struct restore_ctx *r, struct layout *l, size_t args_bytes)
{
	struct restore_proc *p = r->me;
	struct busy b = { 0 };
	uint64_t park_len = 0;
	int ret;

	ret = proc_read_vmas(getpid(), &l->own, &l->nr_own);
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading own maps: %s", strerror(-ret));
	for (int i = 0; i < l->nr_own; i++) {
		if (busy_add(&b, l->own[i].start, l->own[i].end))
			return CRYO_ERESTORE;
		/* room to park our own vDSO areas while the image's are put in place */
		if (!strcmp(l->own[i].path, "[vdso]") || !strncmp(l->own[i].path, "[vvar", 5))
			park_len += l->own[i].end - l->own[i].start;
	}
	l->premap_len = 0;
	for (uint32_t i = 0; i < p->nr_vmas; i++) {
		if (busy_add(&b, p->vmas[i].img.start, p->vmas[i].img.end))
			return CRYO_ERESTORE;
		if (is_premapped(&p->vmas[i]))
			l->premap_len += p->vmas[i].img.end - p->vmas[i].img.start + PAGE_SIZE_BYTES;
	}
	l->blob_len = PAGE_ALIGN_UP((uint64_t)(cryo_restorer_blob_end - cryo_restorer_blob));
	l->args_off = l->blob_len;
	l->stack_top = l->args_off + PAGE_ALIGN_UP(args_bytes) + RESTORER_STACK_BYTES;
	l->park_off = l->stack_top;
	l->area_len = l->park_off + PAGE_ALIGN_UP(park_len);
	l->area = find_hole(&b, l->area_len + l->premap_len);
	free(b.r);
	if (!l->area)
		return cryo_fail(CRYO_ERESTORE, "restore: no room in the address space for %llu "
				 "bytes of staging", (unsigned long long)(l->area_len + l->premap_len));
	l->premap = l->area + l->area_len;
	l->stack_top += l->area;
	return 0;
}

static uint64_t image_special_start(struct restore_ctx *r, const char *name)
{
	uint32_t kind = !strcmp(name, "[vdso]") ? CRYO_VMA_VDSO :
			!strcmp(name, "[vvar]") ? CRYO_VMA_VVAR :
			!strcmp(name, "[vvar_vclock]") ? CRYO_VMA_VVAR_VCLOCK : 0;

	for (uint32_t i = 0; i < r->me->nr_vmas; i++)
		if (kind && r->me->vmas[i].img.kind == kind)
			return r->me->vmas[i].img.start;
	return 0;
}

/* 1 if t's uids, gids and groups are ours, 0 if not, 2 if their capabilities are too. */
static int same_creds_as_ours(const struct cryo_img_task *t)
{
	struct proc_status ours;

	if (proc_read_status(getpid(), &ours))
		return 0;
	if (memcmp(ours.uid, t->uid, sizeof(ours.uid)) ||
	    memcmp(ours.gid, t->gid, sizeof(ours.gid)) || ours.ngroups != t->ngroups ||
	    memcmp(ours.groups, t->groups, t->ngroups * sizeof(uint32_t)))
		return 0;
	return 1 + (ours.cap_inh == t->cap_inh && ours.cap_prm == t->cap_prm &&
	       ours.cap_eff == t->cap_eff && ours.cap_bnd == t->cap_bnd &&
	       ours.cap_amb == t->cap_amb && !t->securebits);
}

static void fill_sched(struct restorer_sched *s, const struct cryo_img_thread *th)
{
	memset(s, 0, sizeof(*s));
	s->size = 48;
	s->policy = th->sched_policy;
	s->flags = th->sched_flags;
	s->nice = th->sched_nice;
	s->priority = th->sched_priority;
	s->runtime = th->sched_runtime;
	s->deadline = th->sched_deadline;
	s->period = th->sched_period;
	s->ioprio = th->ioprio;
	s->affinity_bytes = th->affinity_bytes <= sizeof(s->affinity) ? th->affinity_bytes : 0;
	memcpy(s->affinity, th->affinity, s->affinity_bytes);
}

/* Is this fd reopened late: it names a task, or duplicates one that does? */
static int is_late(const struct restore_proc *p, const struct cryo_img_fd *f)
{
	if (f->kind == CRYO_FD_PROC || f->kind == CRYO_FD_PIDFD)
		return 1;
	if (f->kind != CRYO_FD_DUP)
		return 0;
	for (uint32_t i = 0; i < p->nr_fds; i++)
		if (p->fds[i].fd == f->dup_of)
			return p->fds[i].kind == CRYO_FD_PROC || p->fds[i].kind == CRYO_FD_PIDFD;
	return 0;
}

int restore_fd_is_late(const struct restore_proc *p, const struct cryo_img_fd *f)
{
	return is_late(p, f);
}

/* Room for the late descriptor table and its paths. */
static size_t late_bytes(struct restore_ctx *r)
{
	const struct restore_proc *p = r->me;
	size_t n = strlen(p->cwd_path) + 2;

	for (uint32_t i = 0; i < p->nr_fds; i++) {
		const struct cryo_img_fd *f = &p->fds[i];

		if (is_late(p, f))
			n += sizeof(struct restorer_late_fd) + strlen(imgr_str(r->img, f->path)) + 1;
	}
	return n + 16;
}

/* Descriptors naming tasks, and a cwd under /proc: for the restorer's late step. */
static void fill_late(struct restore_ctx *r, struct restorer_args *a, uint8_t *at)
{
	const struct restore_proc *p = r->me;
	struct restorer_late_fd *late = (struct restorer_late_fd *)(((uintptr_t)at + 7) & ~7ul);
	char *strings;
	uint32_t n = 0, off = 1;

	for (uint32_t i = 0; i < p->nr_fds; i++)
		n += is_late(p, &p->fds[i]);
	strings = (char *)(late + n);
	strings[0] = 0;
	n = 0;
	for (uint32_t i = 0; i < p->nr_fds; i++) {
		const struct cryo_img_fd *f = &p->fds[i];
		struct restorer_late_fd *l = &late[n];
		const char *path = imgr_str(r->img, f->path);

		if (!is_late(p, f))
			continue;
		memset(l, 0, sizeof(*l));
		l->fd = f->fd;
		l->dup_of = f->kind == CRYO_FD_DUP ? f->dup_of : -1;
		l->cloexec = !!(f->flags & O_CLOEXEC);
		l->is_pidfd = f->kind == CRYO_FD_PIDFD;
		if (f->kind == CRYO_FD_DUP) {
			/* nothing more: dup3 of the fd it shares a description with */
		} else if (l->is_pidfd) {
			l->pid = f->proc_pid > 0 ? f->proc_pid : r->anonymous_helper;
			l->flags = f->flags & (O_NONBLOCK | O_EXCL);	/* PIDFD_NONBLOCK, _THREAD */
		} else {
			l->flags = (f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
			l->pos = f->pos;
			l->path = off;
			strcpy(strings + off, path);
			off += strlen(path) + 1;
		}
		n++;
	}
	a->late_fds = (uint64_t)late;
	a->nr_late_fds = n;
	a->late_strings = (uint64_t)strings;
	if (restore_is_proc_path(p->cwd_path)) {
		a->late_cwd = off;
		strcpy(strings + off, p->cwd_path);
	}
}

static void fill_args(struct restore_ctx *r, const struct layout *l, struct restorer_args *a,
		      int exe_fd)
{
	const struct restore_proc *p = r->me;
	const struct cryo_img_task *t = &p->task;
	const struct cryo_img_thread *th = &p->threads[0];
	struct restorer_move *moves = (struct restorer_move *)(a + 1);
	struct restorer_siginfo *sigs;
	uint32_t nk = 0;
	int same;

	memset(a, 0, sizeof(*a));
	a->pid = t->pid;
	a->tid = th->tid;
	a->keep[nk].start = l->area;
	a->keep[nk++].end = l->premap + l->premap_len;
	for (int i = 0; i < l->nr_own; i++) {
		const struct proc_vma *o = &l->own[i];
		uint64_t park = l->area + l->park_off;

		if (strcmp(o->path, "[vdso]") && strncmp(o->path, "[vvar", 5))
			continue;
		for (uint32_t s = 0; s < a->nr_special; s++)
			park += a->special_now[s].end - a->special_now[s].start;
		a->special_now[a->nr_special].start = o->start;
		a->special_now[a->nr_special].end = o->end;
		a->special_park[a->nr_special] = park;
		a->special_target[a->nr_special] = image_special_start(r, o->path);
		a->nr_special++;
		a->keep[nk].start = o->start;
		a->keep[nk++].end = o->end;
	}
	qsort(a->keep, nk, sizeof(a->keep[0]), cmp_range);
	a->nr_keep = nk;

	for (uint32_t i = 0; i < p->nr_vmas; i++) {
		const struct restore_vma *v = &p->vmas[i];
		if (!is_premapped(v))
			continue;
		moves[a->nr_moves].from = v->premap_addr;
		moves[a->nr_moves].to = v->img.start;
		moves[a->nr_moves].len = v->img.end - v->img.start;
		a->nr_moves++;
	}
	a->moves = (uint64_t)moves;
	a->premap.start = l->premap;
	a->premap.end = l->premap + l->premap_len;

	struct restorer_dup *dups = (struct restorer_dup *)(moves + a->nr_moves);
	for (uint32_t i = 0; i < p->nr_vmas; i++) {
		const struct restore_vma *v = &p->vmas[i];
		struct restorer_dup *d = &dups[a->nr_dups];

		if (v->img.kind != CRYO_VMA_ANON_SHARED)
			continue;
		d->from = r->shmems[v->img.shmem].addr + v->img.pgoff;
		d->to = v->img.start;
		d->len = v->img.end - v->img.start;
		d->prot = v->img.prot;
		d->advice = (v->img.flags & CRYO_VMA_DONTFORK ? 1 : 0) |
			    (v->img.flags & CRYO_VMA_DONTDUMP ? 2 : 0);
		a->nr_dups++;
	}
	a->dups = (uint64_t)dups;
	if (r->shmem_stage_len) {
		a->shmem_stage.start = r->shmem_stage;
		a->shmem_stage.end = r->shmem_stage + r->shmem_stage_len;
		a->keep[nk].start = r->shmem_stage;
		a->keep[nk++].end = r->shmem_stage + r->shmem_stage_len;
		qsort(a->keep, nk, sizeof(a->keep[0]), cmp_range);
		a->nr_keep = nk;
	}

	sigs = (struct restorer_siginfo *)(dups + a->nr_dups);
	for (uint32_t i = 0; i < p->nr_sigs; i++) {
		sigs[i].tid = p->sigs[i].tid;
		memcpy(&sigs[i].signo, p->sigs[i].info, sizeof(int32_t));
		memcpy(sigs[i].info, p->sigs[i].info, sizeof(sigs[i].info));
	}
	a->sigs = (uint64_t)sigs;
	a->nr_sigs = p->nr_sigs;

	struct restorer_timerfd *timerfds = (struct restorer_timerfd *)(sigs + p->nr_sigs);
	for (uint32_t i = 0; i < p->nr_fds; i++) {
		const struct cryo_img_fd *f = &p->fds[i];
		struct restorer_timerfd *tf = &timerfds[a->nr_timerfds];

		if (f->kind != CRYO_FD_TIMERFD)
			continue;
		/* a fresh timerfd is what one never set looks like */
		tf->set = f->timer_value_ns || f->timer_interval_ns || f->timer_flags;
		tf->ticks = f->timer_ticks;
		if (!tf->set && !tf->ticks)
			continue;
		tf->fd = f->fd;
		tf->clockid = f->timer_clockid;
		tf->flags = (int32_t)f->timer_flags;
		tf->value_ns = f->timer_value_ns;
		tf->interval_ns = f->timer_interval_ns;
		a->nr_timerfds++;
	}
	a->timerfds = (uint64_t)timerfds;

	/* secondary threads, then their stacks (page aligned, growing down) */
	struct restorer_thread *threads = (struct restorer_thread *)(timerfds + a->nr_timerfds);
	uint64_t stacks = PAGE_ALIGN_UP((uint64_t)(threads + p->nr_threads));
	a->threads = (uint64_t)threads;
	a->nr_threads = p->nr_threads - 1;
	for (uint32_t i = 1; i < p->nr_threads; i++) {
		const struct cryo_img_thread *it = &p->threads[i];
		struct restorer_thread *t = &threads[i - 1];

		memset(t, 0, sizeof(*t));
		t->tid = it->tid;
		t->sas_flags = it->sas_flags;
		t->sas_sp = it->sas_sp;
		t->sas_size = it->sas_size;
		t->clear_child_tid = it->clear_child_tid;
		t->robust_list = it->robust_list;
		t->robust_list_len = it->robust_list_len;
		t->rseq_ptr = it->rseq_ptr;
		t->rseq_len = it->rseq_len;
		t->rseq_sig = it->rseq_sig;
		memcpy(t->comm, it->comm, sizeof(t->comm));
		fill_sched(&t->sched, it);
		t->stack_top = stacks + (uint64_t)i * THREAD_STACK_BYTES;
	}
	fill_late(r, a, (uint8_t *)(stacks + (uint64_t)p->nr_threads * THREAD_STACK_BYTES));

	a->mm.start_code = t->start_code;
	a->mm.end_code = t->end_code;
	a->mm.start_data = t->start_data;
	a->mm.end_data = t->end_data;
	a->mm.start_brk = t->start_brk;
	a->mm.brk = t->brk;
	a->mm.start_stack = t->start_stack;
	a->mm.arg_start = t->arg_start;
	a->mm.arg_end = t->arg_end;
	a->mm.env_start = t->env_start;
	a->mm.env_end = t->env_end;
	memcpy(a->auxv, t->auxv, t->auxv_words * sizeof(uint64_t));
	a->mm.auxv_size = t->auxv_words * sizeof(uint64_t);
	a->mm.exe_fd = exe_fd;

	_Static_assert(sizeof(a->sigactions) == sizeof(t->sigactions), "sigaction layout");
	memcpy(a->sigactions, t->sigactions, sizeof(a->sigactions));
	for (int i = 0; i < 3; i++) {
		a->itimers[i].interval_sec = t->itimers[i].interval_sec;
		a->itimers[i].interval_usec = t->itimers[i].interval_usec;
		a->itimers[i].value_sec = t->itimers[i].value_sec;
		a->itimers[i].value_usec = t->itimers[i].value_usec;
		/* an armed timer about to fire reads as 0: keep it armed */
		if (!a->itimers[i].value_sec && !a->itimers[i].value_usec &&
		    (a->itimers[i].interval_sec || a->itimers[i].interval_usec))
			a->itimers[i].value_usec = 1;
	}
	a->sas_sp = th->sas_sp;
	a->sas_size = th->sas_size;
	a->sas_flags = th->sas_flags;
	a->personality = t->personality;
	memcpy(a->comm, t->comm, sizeof(a->comm));
	a->pdeathsig = t->pdeathsig;
	a->dumpable = t->dumpable;
	a->child_subreaper = t->child_subreaper;
	a->thp_disable = t->thp_disable;
	a->timerslack_ns = t->timerslack_ns;
	a->clear_child_tid = th->clear_child_tid;
	a->robust_list = th->robust_list;
	a->robust_list_len = th->robust_list_len;
	for (int i = 0; i < RESTORER_NLIMITS; i++) {
		a->rlimits[i].cur = t->rlim_cur[i];
		a->rlimits[i].max = t->rlim_max[i];
	}
	fill_sched(&a->sched, th);
	a->close_fds[a->nr_close_fds++] = r->img_fd;
	a->close_fds[a->nr_close_fds++] = r->report_pipe[1];
	a->close_fds[a->nr_close_fds++] = exe_fd;
	if (r->stdio_copy[2] >= 0)
		a->close_fds[a->nr_close_fds++] = r->stdio_copy[2];
	for (uint32_t h = r->nr_image_procs; h < r->nr_procs; h++) {
		/* phase 15 made sure they fit */
		if (r->procs[h].parent == r->me - r->procs && a->nr_reap_pids < RESTORER_MAX_REAP)
			a->reap_pids[a->nr_reap_pids++] = r->procs[h].task.pid;
	}

	same = same_creds_as_ours(t);
	a->change_creds = same != 2;
	a->change_ids = same == 0;
	memcpy(a->uid, t->uid, sizeof(a->uid));
	memcpy(a->gid, t->gid, sizeof(a->gid));
	a->ngroups = t->ngroups;
	memcpy(a->groups, t->groups, t->ngroups * sizeof(uint32_t));
	a->cap_inh = t->cap_inh;
	a->cap_prm = t->cap_prm;
	a->cap_eff = t->cap_eff;
	a->cap_bnd = t->cap_bnd;
	a->cap_amb = t->cap_amb;
	a->securebits = t->securebits;
	a->no_new_privs = t->no_new_privs;
	a->rseq_ptr = th->rseq_ptr;
	a->rseq_len = th->rseq_len;
	a->rseq_sig = th->rseq_sig;
}

/* glibc registered rseq for this thread; the area is about to disappear. */
static int drop_own_rseq(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (!__rseq_size)
		return 0;
	if (syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_X86) == 0 ||
	    syscall(SYS_rseq, area, GLIBC_RSEQ_AREA_BYTES, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_X86) == 0)
		return 0;
	return cryo_fail(CRYO_ERESTORE, "restore: cannot unregister cryo's own rseq area: %s",
			 strerror(errno));
}

/*
 * The executable, for PR_SET_MM_MAP: by path, or, when it was deleted, the
 * file recreated for the areas that map it. Kept high, so that it cannot
 * sit on the number of a late descriptor.
 */
static int open_exe(struct restore_ctx *r)
{
	struct restore_proc *p = r->me;
	int fd = -1;

	for (uint32_t i = 0; i < p->nr_vmas && fd < 0; i++)
		if ((p->vmas[i].img.flags & CRYO_VMA_DELETED) && p->vmas[i].deleted_fd >= 0 &&
		    !strcmp(p->vmas[i].name, p->exe_path))
			fd = fcntl(p->vmas[i].deleted_fd, F_DUPFD_CLOEXEC, r->internal_base);
	if (fd < 0)
		fd = restore_move_fd(open(p->exe_path, O_RDONLY | O_CLOEXEC), r->internal_base);
	if (fd < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: executable %s: %s", p->task.pid,
				 p->exe_path, strerror(errno));
	return fd;
}

static void __attribute__((noreturn)) jump(uint64_t entry, uint64_t stack_top, void *args)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "jmp *%1"
			 :
			 : "r"(stack_top), "r"(entry), "D"(args)
			 : "memory");
	__builtin_unreachable();
}

int restore_memory_and_jump(struct restore_ctx *r)
{
	struct restore_proc *pr = r->me;
	size_t args_bytes = sizeof(struct restorer_args) +
			    pr->nr_vmas * sizeof(struct restorer_move) +
			    pr->nr_vmas * sizeof(struct restorer_dup) +
			    pr->nr_sigs * sizeof(struct restorer_siginfo) +
			    pr->nr_fds * sizeof(struct restorer_timerfd) +
			    pr->nr_threads * sizeof(struct restorer_thread) +
			    (size_t)pr->nr_threads * THREAD_STACK_BYTES + PAGE_SIZE_BYTES +
			    late_bytes(r);
	struct layout l = { 0 };
	struct restorer_args *a;
	uint64_t cursor;
	sigset_t all;
	int ret, exe_fd;
	void *p;

	ret = fault_point("restore:memory");
	if (ret)
		return ret;
	ret = plan_layout(r, &l, args_bytes);
	if (ret)
		return ret;
	p = mmap((void *)l.area, l.area_len + l.premap_len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return cryo_fail(CRYO_ERESTORE, "restore: reserving %#llx bytes at %#llx: %s",
				 (unsigned long long)(l.area_len + l.premap_len),
				 (unsigned long long)l.area, strerror(errno));
	cursor = l.premap;
	for (uint32_t i = 0; i < pr->nr_vmas; i++) {
		struct restore_vma *v = &pr->vmas[i];

		if (!is_premapped(v))
			continue;
		ret = premap_map(r, v, cursor);
		if (ret)
			return ret;
		cursor += v->img.end - v->img.start;
		/*
		 * Leave a hole, not a piece of the reservation, between two
		 * areas: a separate PROT_NONE mapping per area would double the
		 * mappings and fail a target with over vm.max_map_count / 2.
		 */
		if (munmap((void *)cursor, PAGE_SIZE_BYTES) < 0)
			return fail_vma(v, "munmap of the gap after it", errno);
		cursor += PAGE_SIZE_BYTES;
	}
	ret = fill_precopy_all(r);
	for (uint32_t i = 0; i < pr->nr_vmas && !ret; i++)
		if (is_premapped(&pr->vmas[i]))
			ret = premap_fill(r, &pr->vmas[i]);
	if (ret)
		return ret;
	/* the threads are gone, their TIDs free, before the restorer makes the image's */
	unpack_stop(r->unpack);
	r->unpack = NULL;
	exe_fd = open_exe(r);
	for (uint32_t i = 0; i < pr->nr_vmas; i++)
		if (pr->vmas[i].deleted_fd >= 0)
			close(pr->vmas[i].deleted_fd);
	if (exe_fd < 0)
		return exe_fd;

	/* the restorer area: code, then args and tables, then the stack */
	if (mmap((void *)l.area, l.park_off, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return cryo_fail(CRYO_ERESTORE, "restore: mapping the restorer: %s",
				 strerror(errno));
	memcpy((void *)l.area, cryo_restorer_blob, cryo_restorer_blob_end - cryo_restorer_blob);
	if (mprotect((void *)l.area, l.blob_len, PROT_READ | PROT_EXEC) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: mprotect restorer: %s", strerror(errno));
	a = (struct restorer_args *)(l.area + l.args_off);
	fill_args(r, &l, a, exe_fd);

	if (strcmp(pr->root_path, "/")) {
		if (chroot(pr->root_path) < 0 || chdir(pr->cwd_path) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: chroot %s: %s",
					 pr->task.pid, pr->root_path, strerror(errno));
	}
	{
		struct restore_report report = {
			.pid = pr->task.pid, .args = (uint64_t)a, .area = l.area,
			.area_len = l.area_len,
		};
		/* one write below PIPE_BUF: reports of several processes never mix */
		if (write(r->report_pipe[1], &report, sizeof(report)) != sizeof(report))
			return cryo_fail(CRYO_ERESTORE, "restore: reporting to cryo: %s",
					 strerror(errno));
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	ret = drop_own_rseq();
	if (ret)
		return ret;
	jump(l.area, l.stack_top, a);
}

/*
 * Shared anonymous memory objects, mapped and filled by the root before it
 * creates any child, at a place free in every process's layout: every
 * process inherits them, and its restorer maps each of its areas onto them.
 */
/*
 * A memfd with its name, parked above the image's descriptors so that every
 * process inherits it until its own descriptors and areas are set up.
 * Staged at full size to be filled; seals come once it is filled.
 */
static int make_memfd(struct restore_ctx *r, struct restore_shmem *o)
{
	int fd = memfd_create(o->memfd_name, MFD_ALLOW_SEALING | MFD_CLOEXEC);

	if (fd < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: memfd %s: memfd_create: %s", o->memfd_name,
				 strerror(errno));
	o->fd = restore_move_fd(fd, r->park_base);
	if (o->fd < 0 || ftruncate(o->fd, o->area.img.end) < 0 ||
	    fchmod(o->fd, o->img.mode) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: memfd %s: setting it up: %s",
				 o->memfd_name, strerror(errno));
	return 0;
}

/*
 * A tmpfs file deleted while mapped shared: made again under its old name
 * (which the maps show with " (deleted)"), opened and unlinked at once, as
 * for any deleted file; then staged and filled like the other objects.
 */
static int make_deleted(struct restore_ctx *r, struct restore_shmem *o)
{
	int fd = restore_recreate_deleted(r, r->procs[0].root_path, o->memfd_name, o->img.mode, 0,
					  O_RDWR, "shared memory file");

	if (fd < 0)
		return fd;
	o->fd = restore_move_fd(fd, r->park_base);
	if (o->fd < 0 || ftruncate(o->fd, o->area.img.end) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: %s: setting it up: %s", o->memfd_name,
				 strerror(errno));
	return 0;
}

/*
 * Exact size, then the seals. A memfd nothing maps loses its staging
 * mapping first (a writable mapping would forbid F_SEAL_WRITE); a
 * placeholder keeps the range reserved, the staging area stays one piece.
 */
static int finish_memfd(struct restore_ctx *r, struct restore_shmem *o, void *staged)
{
	(void)r;
	if (!o->mapped && mmap(staged, o->area.img.end, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return cryo_fail(CRYO_ERESTORE, "restore: memfd %s: releasing its staging: %s",
				 o->memfd_name, strerror(errno));
	if (ftruncate(o->fd, o->img.file_size) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: memfd %s: ftruncate to %llu bytes: %s",
				 o->memfd_name, (unsigned long long)o->img.file_size,
				 strerror(errno));
	if (o->img.seals && fcntl(o->fd, F_ADD_SEALS, o->img.seals) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: memfd %s: adding seals %#x: %s",
				 o->memfd_name, o->img.seals, strerror(errno));
	return 0;
}

int restore_shared_memory(struct restore_ctx *r)
{
	struct busy b = { 0 };
	struct proc_vma *own = NULL;
	int nr_own = 0, ret;
	uint64_t cursor;

	if (!r->nr_shmems)
		return 0;
	ret = proc_read_vmas(getpid(), &own, &nr_own);
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: reading own maps: %s", strerror(-ret));
	for (int i = 0; i < nr_own; i++)
		busy_add(&b, own[i].start, own[i].end);
	free(own);
	for (uint32_t p = 0; p < r->nr_procs; p++)
		for (uint32_t i = 0; i < r->procs[p].nr_vmas; i++)
			busy_add(&b, r->procs[p].vmas[i].img.start, r->procs[p].vmas[i].img.end);
	r->shmem_stage_len = 0;
	for (uint32_t k = 0; k < r->nr_shmems; k++)
		r->shmem_stage_len += r->shmems[k].area.img.end + PAGE_SIZE_BYTES;
	r->shmem_stage = find_hole(&b, r->shmem_stage_len);
	free(b.r);
	if (!r->shmem_stage)
		return cryo_fail(CRYO_ERESTORE, "restore: no room for shared memory staging");
	cursor = r->shmem_stage;
	for (uint32_t k = 0; k < r->nr_shmems; k++) {
		struct restore_shmem *o = &r->shmems[k];
		struct restore_vma *v = &o->area;
		void *p;

		if (o->img.kind == CRYO_SHMEM_MEMFD || o->img.kind == CRYO_SHMEM_DELETED) {
			ret = o->img.kind == CRYO_SHMEM_MEMFD ? make_memfd(r, o) : make_deleted(r, o);
			if (ret)
				return ret;
		}
		if (o->img.kind == CRYO_SHMEM_SYSV) {
			/* a segment taken over may hold data the image does not: punch it out */
			p = shmat(o->img.sysv_id, (void *)cursor, 0);
			if (p != MAP_FAILED && madvise(p, v->img.end, MADV_REMOVE) < 0)
				return cryo_fail(CRYO_ERESTORE, "restore: SysV segment %d: clearing "
						 "it: %s", o->img.sysv_id, strerror(errno));
		} else {
			p = mmap((void *)cursor, v->img.end, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED_NOREPLACE | (o->fd < 0 ? MAP_ANONYMOUS : 0),
				 o->fd, 0);
		}
		if (p == MAP_FAILED)
			return cryo_fail(CRYO_ERESTORE, "restore: mapping shared memory object %u "
					 "(%llu bytes): %s", k, (unsigned long long)v->img.end,
					 strerror(errno));
		o->addr = cursor;
		v->premap_addr = cursor;
		ret = fill_pages(r, v, 1);
		if (!ret && o->img.kind == CRYO_SHMEM_MEMFD)
			ret = finish_memfd(r, o, p);
		if (!ret && o->img.kind == CRYO_SHMEM_DELETED && ftruncate(o->fd, o->img.file_size))
			ret = cryo_fail(CRYO_ERESTORE, "restore: %s: ftruncate: %s", o->memfd_name,
					strerror(errno));
		if (ret)
			return ret;
		cursor += v->img.end + PAGE_SIZE_BYTES;
	}
	return 0;
}
