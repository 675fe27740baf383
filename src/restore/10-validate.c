/*
 * Phase 10: load the image and check that everything in it makes sense
 * before any task exists. imgr_open() already verified structure and
 * checksums; here every value is checked for meaning (addresses, counts,
 * fd numbers, string references, the shape of the tree, cross references),
 * and the machine for fitness: CPU features for the saved FPU state, vDSO
 * layout, free PIDs and TIDs, sessions cryo can recreate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "kernel/creds.h"
#include "kernel/proc.h"
#include "restore/restore.h"
#include "util/util.h"

#define USER_SPACE_END 0x7ffffffff000ull
#define MAX_FD_NUMBER (1 << 20)
#define MAX_PENDING_SIGNALS 65536
#define XSAVE_HEADER_OFFSET 512
#define SI_SIGNO_OFFSET 0
#define MAX_THREADS 32768
#define MAX_PROCS 32768
#define XSTATE_MAX_BYTES (16 * 1024)
#define REG_CS 17	/* user_regs_struct order */
#define REG_SS 20
#define USER_CS 0x33
#define USER_DS 0x2b
#define RSEQ_MIN_BYTES 32
#define MMAP_MIN_ADDR 4096

static int bad(struct restore_ctx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct restore_ctx *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cryo_fail(CRYO_EIMAGE, "image %s: %s", r->opts->image, msg);
}

/* Exactly one table section of this type (and id); its entries, copied. */
static void *load_single(struct restore_ctx *r, uint32_t type, uint64_t id, const char *what,
			 uint32_t size, uint32_t *count)
{
	long i = imgr_find(r->img, type, id, 0, 0);

	if (i < 0) {
		bad(r, "no %s section", what);
		return NULL;
	}
	if (imgr_find(r->img, type, id, 0, i + 1) >= 0) {
		bad(r, "more than one %s section", what);
		return NULL;
	}
	return imgr_load_table(r->img, i, size, count);
}

static const char *str_or_bad(struct restore_ctx *r, cryo_str_t off, const char *what)
{
	const char *s = imgr_str(r->img, off);

	if (!s)
		bad(r, "%s: string reference %u out of range", what, off);
	return s;
}

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static int validate_threads(struct restore_ctx *r, struct restore_proc *p, long pid_max)
{
	uint64_t xcr0 = read_xcr0();

	if (p->nr_threads != p->task.nr_threads || p->threads[0].tid != p->task.pid)
		return bad(r, "task %d: thread table does not match (%u threads, first %d)",
			   p->task.pid, p->nr_threads, p->nr_threads ? p->threads[0].tid : 0);
	for (uint32_t i = 0; i < p->nr_threads; i++) {
		struct cryo_img_thread *th = &p->threads[i];
		uint64_t xfeatures;

		th->comm[sizeof(th->comm) - 1] = 0;
		if (th->pid != p->task.pid || th->tid <= 0 || th->tid >= pid_max)
			return bad(r, "thread %d does not belong to task %d", th->tid, p->task.pid);
		if (th->xstate_size < XSAVE_HEADER_OFFSET + 64 ||
		    th->xstate_size > XSTATE_MAX_BYTES || th->xstate_offset > r->xstate_size ||
		    th->xstate_size > r->xstate_size - th->xstate_offset)
			return bad(r, "thread %d: XSAVE area (%u bytes at %llu) outside the saved %u",
				   th->tid, th->xstate_size, (unsigned long long)th->xstate_offset,
				   r->xstate_size);
		memcpy(&xfeatures, r->xstate + th->xstate_offset + XSAVE_HEADER_OFFSET,
		       sizeof(xfeatures));
		/* the XSAVE header after xfeatures (xcomp_bv, reserved) is zero in ptrace's format */
		for (int b = 8; b < 64; b++)
			if (r->xstate[th->xstate_offset + XSAVE_HEADER_OFFSET + b])
				return bad(r, "thread %d: XSAVE header has reserved bits set", th->tid);
		if (th->regs[REG_CS] != USER_CS || th->regs[REG_SS] != USER_DS)
			return cryo_fail(CRYO_EUNSUPP, "image %s: thread %d runs in a 32-bit or odd "
					 "segment (cs %#llx): not supported", r->opts->image, th->tid,
					 (unsigned long long)th->regs[REG_CS]);
		if (th->rseq_ptr && (th->rseq_len < RSEQ_MIN_BYTES || th->rseq_len > PAGE_SIZE_BYTES ||
				     th->rseq_ptr % RSEQ_MIN_BYTES))
			return bad(r, "thread %d: bad rseq area (%u bytes at %#llx)", th->tid,
				   th->rseq_len, (unsigned long long)th->rseq_ptr);
		if (xfeatures & ~xcr0)
			return cryo_fail(CRYO_EUNSUPP,
					 "image %s: thread %d uses CPU state components %#llx this "
					 "CPU does not have (it has %#llx)", r->opts->image, th->tid,
					 (unsigned long long)(xfeatures & ~xcr0),
					 (unsigned long long)xcr0);
	}
	return 0;
}

/* What prctl(PR_SET_MM_MAP) checks, checked here so a bad image is named as such. */
static int mm_fields_ok(const struct cryo_img_task *t)
{
	const uint64_t v[] = { t->start_code, t->end_code, t->start_data, t->end_data,
			       t->start_brk, t->brk, t->start_stack, t->arg_start,
			       t->arg_end, t->env_start, t->env_end };

	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		if (v[i] < MMAP_MIN_ADDR || v[i] >= USER_SPACE_END)
			return 0;
	return t->start_code < t->end_code && t->start_data <= t->end_data &&
	       t->start_brk <= t->brk && t->arg_start <= t->arg_end &&
	       t->env_start <= t->env_end;
}

static int validate_task(struct restore_ctx *r, struct restore_proc *p, long pid_max)
{
	struct cryo_img_task *t = &p->task;
	char why[160];
	int ret;

	t->comm[sizeof(t->comm) - 1] = 0;
	if (p->zombie) {
		if (t->nr_threads || p->nr_fds || p->nr_sigs)
			return bad(r, "zombie %d has threads, fds or signals", t->pid);
		return 0;
	}
	if (t->nr_threads < 1 || t->nr_threads > MAX_THREADS)
		return bad(r, "task %d: %u threads", t->pid, t->nr_threads);
	ret = validate_threads(r, p, pid_max);
	if (ret)
		return ret;
	if (!mm_fields_ok(t))
		return bad(r, "task %d: code, data, brk, argument or environment bounds out of "
			   "order or out of user space", t->pid);
	if (t->auxv_words > CRYO_AUXV_WORDS || t->auxv_words % 2)
		return bad(r, "task %d: bad auxv length %u", t->pid, t->auxv_words);
	if (t->ngroups > CRYO_MAX_GROUPS)
		return bad(r, "task %d: %u supplementary groups", t->pid, t->ngroups);
	if (creds_caller()->restricted && creds_mismatch(t, 0, why, sizeof(why)))
		return cryo_fail(CRYO_EPERM, "image %s: task %d: %s: cryo acts for uid %u only",
				 r->opts->image, t->pid, why, creds_caller()->uid);
	for (int i = 0; i < CRYO_RLIM_NLIMITS; i++)
		if (t->rlim_cur[i] > t->rlim_max[i])
			return bad(r, "task %d: rlimit %d soft limit above hard limit", t->pid, i);
	if (!(p->exe_path = str_or_bad(r, t->exe_path, "exe")) ||
	    !(p->cwd_path = str_or_bad(r, t->cwd_path, "cwd")) ||
	    !(p->root_path = str_or_bad(r, t->root_path, "root")))
		return CRYO_EIMAGE;
	if (p->exe_path[0] != '/' || p->cwd_path[0] != '/' || p->root_path[0] != '/')
		return bad(r, "task %d: exe, cwd and root must be absolute paths", t->pid);
	if (t->pdeathsig < 0 || t->pdeathsig > CRYO_NSIG)
		return bad(r, "task %d: bad parent-death signal %d", t->pid, t->pdeathsig);
	for (uint32_t i = 0; i < p->nr_sigs; i++) {
		int signo, known = p->sigs[i].tid == 0;

		memcpy(&signo, p->sigs[i].info + SI_SIGNO_OFFSET, sizeof(signo));
		if (signo < 1 || signo > CRYO_NSIG)
			return bad(r, "task %d: pending signal %u: bad signal number %d", t->pid, i,
				   signo);
		for (uint32_t j = 0; j < p->nr_threads && !known; j++)
			known = p->sigs[i].tid == p->threads[j].tid;
		if (!known)
			return bad(r, "task %d: pending signal %u for unknown thread %d", t->pid, i,
				   p->sigs[i].tid);
	}
	return 0;
}

static int image_has_task(struct restore_ctx *r, pid_t tid)
{
	for (uint32_t i = 0; i < r->nr_threads; i++)
		if (r->threads[i].tid == tid)
			return 1;
	for (uint32_t i = 0; i < r->nr_procs; i++)
		if (r->procs[i].task.pid == tid)
			return 1;
	return 0;
}

/*
 * A descriptor naming a task is reopened by its path. The task must be in
 * the image, or be the very same live task as at checkpoint (same start
 * time), or have been dead already (a helper task holds its PID meanwhile).
 */
static int validate_proc_target(struct restore_ctx *r, struct restore_proc *p,
				const struct cryo_img_fd *f, const char *path)
{
	struct proc_stat st;
	char expect[32];

	if (f->kind == CRYO_FD_PROC) {
		snprintf(expect, sizeof(expect), "/proc/%d", f->proc_pid);
		if (f->proc_pid <= 0 || strncmp(path, expect, strlen(expect)) ||
		    (path[strlen(expect)] != '/' && path[strlen(expect)] != 0))
			return bad(r, "fd %d of task %d: path %s does not name task %d", f->fd,
				   p->task.pid, path, f->proc_pid);
	}
	switch (f->proc_target) {
	case CRYO_TARGET_IMAGE:
		if (!image_has_task(r, f->proc_pid))
			return bad(r, "fd %d of task %d (%s): task %d is not in the image", f->fd,
				   p->task.pid, path, f->proc_pid);
		return 0;
	case CRYO_TARGET_OUTSIDE:
		if (proc_read_stat(f->proc_pid, 0, &st))
			return cryo_fail(CRYO_ERESTORE, "restore: fd %d of task %d (%s): task %d is "
					 "not in the image and no longer exists", f->fd,
					 p->task.pid, path, f->proc_pid);
		if (st.starttime != f->proc_starttime)
			return cryo_fail(CRYO_ERESTORE, "restore: fd %d of task %d (%s): PID %d now "
					 "belongs to another process (%s, started later)", f->fd,
					 p->task.pid, path, f->proc_pid, st.comm);
		return 0;
	case CRYO_TARGET_DEAD:
		if (f->proc_pid > 0 && proc_task_state(f->proc_pid))
			return cryo_fail(CRYO_ECONFLICT, "restore: fd %d of task %d (%s) names the "
					 "dead task %d, whose PID is now in use", f->fd,
					 p->task.pid, path, f->proc_pid);
		return 0;
	default:
		return bad(r, "fd %d of task %d: unknown target kind %u", f->fd, p->task.pid,
			   f->proc_target);
	}
}

/* The kind of fd `fd` of p, through dups; 0 if p has no such fd. */
static uint32_t fd_kind_of(const struct restore_proc *p, int fd)
{
	for (int hops = 0; hops < 2; hops++)	/* a dup never names a dup */
		for (uint32_t i = 0; i < p->nr_fds; i++) {
			if (p->fds[i].fd != fd)
				continue;
			if (p->fds[i].kind != CRYO_FD_DUP)
				return p->fds[i].kind;
			fd = p->fds[i].dup_of;
			break;
		}
	return 0;
}

/*
 * An epoll fd is rebuilt after every other fd of its process: each watch
 * must name one of them (not a task-naming fd, reopened later, nor an epoll).
 */
static int validate_epoll(struct restore_ctx *r, struct restore_proc *p,
			  const struct cryo_img_fd *f)
{
	struct cryo_img_epoll_watch *w;
	uint64_t len;
	long i;

	if (f->file_id)
		return bad(r, "fd %d of task %d: epoll shared with another process", f->fd,
			   p->task.pid);
	if (!f->blob_id)
		return 0;
	i = imgr_find(r->img, CRYO_SEC_BLOB, f->blob_id, 0, 0);
	if (i < 0)
		return bad(r, "fd %d: epoll watches (blob %llu) missing", f->fd,
			   (unsigned long long)f->blob_id);
	w = imgr_load_blob(r->img, i, &len);
	if (!w)
		return CRYO_EIMAGE;
	if (len % sizeof(*w) || len / sizeof(*w) > MAX_EPOLL_WATCHES) {
		free(w);
		return bad(r, "fd %d: epoll watch list of %llu bytes", f->fd,
			   (unsigned long long)len);
	}
	for (uint64_t k = 0; k < len / sizeof(*w); k++) {
		uint32_t kind = fd_kind_of(p, w[k].tfd);

		if (!kind || kind == CRYO_FD_EPOLL || kind == CRYO_FD_PROC || kind == CRYO_FD_PIDFD) {
			int tfd = w[k].tfd;

			free(w);
			return bad(r, "fd %d of task %d: epoll watch on fd %d, which is not an "
				   "fd it can watch", f->fd, p->task.pid, tfd);
		}
	}
	free(w);
	return 0;
}

/* Times of a timerfd: far below where nanoseconds since the epoch stop fitting. */
#define MAX_TIMER_NS (1ull << 62)

/* The clocks timerfd_create() takes. */
static int timerfd_clock(int32_t clockid)
{
	return clockid == CLOCK_REALTIME || clockid == CLOCK_MONOTONIC ||
	       clockid == CLOCK_BOOTTIME || clockid == CLOCK_REALTIME_ALARM ||
	       clockid == CLOCK_BOOTTIME_ALARM;
}

static int validate_fds(struct restore_ctx *r, struct restore_proc *p)
{
	for (uint32_t i = 0; i < p->nr_fds; i++) {
		struct cryo_img_fd *f = &p->fds[i];
		const char *path = str_or_bad(r, f->path, "fd path");

		if (!path)
			return CRYO_EIMAGE;
		if (f->fd < 0 || f->fd >= MAX_FD_NUMBER || (i && f->fd <= p->fds[i - 1].fd))
			return bad(r, "task %d: fd %d out of range or out of order", p->task.pid,
				   f->fd);
		switch (f->kind) {
		case CRYO_FD_REG:
		case CRYO_FD_DIR:
		case CRYO_FD_CHR:
		case CRYO_FD_DELETED:
			if (path[0] != '/')
				return bad(r, "fd %d: path %s is not absolute", f->fd, path);
			if (f->kind == CRYO_FD_DELETED &&
			    (strlen(path) <= 10 || strcmp(path + strlen(path) - 10, " (deleted)")))
				return bad(r, "fd %d: deleted file without (deleted) mark", f->fd);
			break;
		case CRYO_FD_PIPE:
		case CRYO_FD_INHERIT:
			break;
		case CRYO_FD_FIFO:
			if (path[0] != '/')
				return bad(r, "fd %d: named FIFO path %s is not absolute", f->fd, path);
			break;
		case CRYO_FD_EVENTFD:
			if (strcmp(path, "anon_inode:[eventfd]") ||
			    f->eventfd_flags & ~CRYO_EVENTFD_SEMAPHORE ||
			    f->eventfd_count == UINT64_MAX)
				return bad(r, "fd %d: eventfd with path %s, flags %#x, count %llu",
					   f->fd, path, f->eventfd_flags,
					   (unsigned long long)f->eventfd_count);
			break;
		case CRYO_FD_SIGNALFD:
			if (strcmp(path, "anon_inode:[signalfd]"))
				return bad(r, "fd %d: signalfd with path %s", f->fd, path);
			break;
		case CRYO_FD_TIMERFD:
			if (strcmp(path, "anon_inode:[timerfd]") || !timerfd_clock(f->timer_clockid) ||
			    f->timer_flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) ||
			    f->timer_value_ns > MAX_TIMER_NS || f->timer_interval_ns > MAX_TIMER_NS)
				return bad(r, "fd %d: timerfd with path %s, clock %d, flags %#x, "
					   "value %llu ns, interval %llu ns", f->fd, path,
					   f->timer_clockid, f->timer_flags,
					   (unsigned long long)f->timer_value_ns,
					   (unsigned long long)f->timer_interval_ns);
			break;
		case CRYO_FD_EPOLL: {
			int ret = validate_epoll(r, p, f);
			if (ret)
				return ret;
			break;
		}
		case CRYO_FD_EXTERNAL: {
			int given = 0;

			for (int k = 0; k < r->opts->nr_inherit; k++)
				given |= r->opts->inherit[k].pid == f->pid &&
					 r->opts->inherit[k].fd == f->fd;
			if (!given && !r->opts->hangup_external)
				return cryo_fail(CRYO_EUSAGE, "restore: fd %d of task %d (%s) led "
						 "outside the checkpoint: give --inherit-fd %d:%d=FD "
						 "or --hangup-external", f->fd, p->task.pid, path,
						 p->task.pid, f->fd);
			break;
		}
		case CRYO_FD_MEMFD:
			if (f->shmem >= r->nr_shmems ||
			    r->shmems[f->shmem].img.kind != CRYO_SHMEM_MEMFD)
				return bad(r, "fd %d: memfd object %u missing", f->fd, f->shmem);
			break;
		case CRYO_FD_PROC:
		case CRYO_FD_PIDFD: {
			int ret = validate_proc_target(r, p, f, path);
			if (ret)
				return ret;
			break;
		}
		case CRYO_FD_DUP: {
			int found = 0;
			for (uint32_t j = 0; j < i; j++)
				if (p->fds[j].fd == f->dup_of && p->fds[j].kind != CRYO_FD_DUP)
					found = 1;
			if (!found)
				return bad(r, "fd %d: duplicate of unknown fd %d", f->fd, f->dup_of);
			break;
		}
		default:
			return bad(r, "fd %d: unknown kind %u", f->fd, f->kind);
		}
		if (f->blob_id && imgr_find(r->img, CRYO_SEC_BLOB, f->blob_id, 0, 0) < 0)
			return bad(r, "fd %d: content blob %llu missing", f->fd,
				   (unsigned long long)f->blob_id);
	}
	return 0;
}

/* Pages of one PAGES or ZPAGES section; 0 if it is malformed. */
static uint64_t data_section_pages(struct restore_ctx *r, size_t s)
{
	const struct cryo_img_index_entry *e = imgr_section(r->img, s);

	if (e->type == CRYO_SEC_ZPAGES) {
		struct cryo_zpages_header zh;

		if (e->length <= sizeof(zh) ||
		    pread_full(imgr_fd(r->img), &zh, sizeof(zh), imgr_payload_offset(r->img, s)) ||
		    (zh.codec != CRYO_CODEC_ZSTD && zh.codec != CRYO_CODEC_LZ4) || !zh.raw_len ||
		    zh.raw_len % PAGE_SIZE_BYTES || zh.raw_len > CRYO_ZPAGES_MAX_RAW)
			return 0;
		return zh.raw_len / PAGE_SIZE_BYTES;
	}
	if (e->length != (uint64_t)e->entry_count * PAGE_SIZE_BYTES ||
	    (e->length >= CRYO_IMG_PAGES_ALIGN_MIN &&
	     imgr_payload_offset(r->img, s) % PAGE_SIZE_BYTES))
		return 0;
	return e->entry_count;
}

struct pagemap_ref {
	uint64_t id;
	size_t index;
};

static int cmp_pagemap_ref(const void *a, const void *b)
{
	const struct pagemap_ref *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * First PAGEMAP section of that id at or after index from, else the first
 * of that id at all; -1 if none. The same answer as imgr_find() from
 * 'from', then from 0, but in O(log n) from a table built on the first
 * call: a scan of the index per area made restore quadratic in areas.
 */
static long find_pagemap(struct restore_ctx *r, uint64_t id, size_t from)
{
	size_t lo = 0, hi;

	if (!r->pagemaps) {
		size_t n = 0;

		r->pagemaps = malloc((imgr_nr_sections(r->img) + 1) * sizeof(*r->pagemaps));
		if (!r->pagemaps)
			return -2;
		for (size_t i = 0; i < imgr_nr_sections(r->img); i++)
			if (imgr_section(r->img, i)->type == CRYO_SEC_PAGEMAP)
				r->pagemaps[n++] = (struct pagemap_ref){ imgr_section(r->img, i)->id, i };
		qsort(r->pagemaps, n, sizeof(*r->pagemaps), cmp_pagemap_ref);
		r->nr_pagemaps = n;
	}
	/* first entry >= (id, 0) */
	hi = r->nr_pagemaps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->pagemaps[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->nr_pagemaps || r->pagemaps[lo].id != id)
		return -1;
	for (size_t k = lo; k < r->nr_pagemaps && r->pagemaps[k].id == id; k++)
		if (r->pagemaps[k].index >= from)
			return (long)r->pagemaps[k].index;
	return (long)r->pagemaps[lo].index;
}

/*
 * The page data of an area: one or more groups, each a PAGEMAP section (its
 * runs, in address order across groups) followed by the PAGES or ZPAGES
 * sections holding exactly those pages. Pages that were all zeros are in
 * no group (the count announced in the area is an upper bound).
 */
static int validate_runs(struct restore_ctx *r, struct restore_vma *v, uint64_t id)
{
	uint64_t pages = 0, prev_end = v->img.start;
	/* areas come in file order: search on from where the last one's data ended */
	long pm = find_pagemap(r, id, r->pages_cursor);

	if (pm == -2)
		return cryo_fail(CRYO_EINTERNAL, "restore: out of memory for the page list index");

	if (pm < 0)
		return 0;	/* nothing stored: every page read as zero */
	v->first_pages_section = pm;
	while (pm >= 0) {
		struct cryo_img_page_run *runs;
		uint32_t nr;
		uint64_t group = 0, data = 0;
		size_t s;

		runs = imgr_load_table(r->img, pm, sizeof(*runs), &nr);
		if (!runs)
			return CRYO_EIMAGE;
		r->claimed[pm] = 1;
		struct cryo_img_page_run *all = realloc(v->runs, (v->nr_runs + nr + 1) * sizeof(*all));
		if (!all) {
			free(runs);
			return CRYO_EINTERNAL;
		}
		v->runs = all;
		for (uint32_t i = 0; i < nr; i++) {
			const struct cryo_img_page_run *run = &runs[i];

			if (run->vaddr % PAGE_SIZE_BYTES || run->vaddr < prev_end ||
			    run->vaddr >= v->img.end || run->nr_pages == 0 ||
			    run->nr_pages > (v->img.end - run->vaddr) / PAGE_SIZE_BYTES) {
				free(runs);
				return bad(r, "memory area %lx-%lx: page run %u out of the area",
					   (unsigned long)v->img.start, (unsigned long)v->img.end,
					   v->nr_runs + i);
			}
			prev_end = run->vaddr + run->nr_pages * PAGE_SIZE_BYTES;
			group += run->nr_pages;
			v->runs[v->nr_runs + i] = *run;
		}
		v->nr_runs += nr;
		free(runs);
		/* its data follows, up to the next page list */
		for (s = pm + 1; s < imgr_nr_sections(r->img); s++) {
			const struct cryo_img_index_entry *e = imgr_section(r->img, s);
			uint64_t n;

			if (e->type == CRYO_SEC_PAD)
				continue;
			if ((e->type != CRYO_SEC_PAGES && e->type != CRYO_SEC_ZPAGES) || e->id != id)
				break;
			n = data_section_pages(r, s);
			if (!n)
				return bad(r, "memory area %lx-%lx: malformed page data section",
					   (unsigned long)v->img.start, (unsigned long)v->img.end);
			data += n;
		}
		if (data != group)
			return bad(r, "memory area %lx-%lx: %llu pages of data for %llu listed",
				   (unsigned long)v->img.start, (unsigned long)v->img.end,
				   (unsigned long long)data, (unsigned long long)group);
		pages += group;
		v->nr_pages_sections = s - v->first_pages_section;
		r->pages_cursor = s;
		/* the next group of this area, if any, starts right here */
		pm = s < imgr_nr_sections(r->img) && imgr_section(r->img, s)->type == CRYO_SEC_PAGEMAP &&
		     imgr_section(r->img, s)->id == id ? (long)s : -1;
	}
	if (pages > v->img.nr_pages_dumped)
		return bad(r, "memory area %lx-%lx: %llu pages stored, at most %llu announced",
			   (unsigned long)v->img.start, (unsigned long)v->img.end,
			   (unsigned long long)pages, (unsigned long long)v->img.nr_pages_dumped);
	return 0;
}

/* Runs in address order, page aligned, not empty, inside user space. */
static int check_run_list(struct restore_ctx *r, const struct cryo_img_page_run *runs,
			  uint32_t nr, const char *what, pid_t pid)
{
	uint64_t prev_end = 0;

	for (uint32_t i = 0; i < nr; i++)
		if (runs[i].vaddr % PAGE_SIZE_BYTES || runs[i].vaddr < prev_end ||
		    runs[i].vaddr >= USER_SPACE_END || !runs[i].nr_pages ||
		    runs[i].nr_pages > (USER_SPACE_END - runs[i].vaddr) / PAGE_SIZE_BYTES)
			return bad(r, "process %d: %s run %u out of order or out of bounds", pid,
				   what, i);
		else
			prev_end = runs[i].vaddr + runs[i].nr_pages * PAGE_SIZE_BYTES;
	return 0;
}

/*
 * Pre-copy data of a process (image 1.1): page groups like an area's, over
 * the whole address space, and at most one PRECOPY_DROP list. Where each
 * run's and each section's pages start is worked out here once; phase 40
 * reads each section whole and sends its pages to the areas they belong to.
 */
static int validate_precopy(struct restore_ctx *r, struct restore_proc *p)
{
	struct restore_vma *v = &p->precopy;
	uint64_t page = 0;
	long d;
	int ret;

	v->img.start = 0;
	v->img.end = USER_SPACE_END;
	v->img.nr_pages_dumped = USER_SPACE_END / PAGE_SIZE_BYTES;
	v->name = "pre-copy";
	v->deleted_fd = -1;
	ret = validate_runs(r, v, CRYO_PRECOPY_PAGES_ID | (uint32_t)p->task.pid);
	if (ret || !v->nr_runs)
		goto drop;
	p->precopy_run_page = malloc(v->nr_runs * sizeof(uint64_t));
	p->precopy_secs = malloc(v->nr_pages_sections * sizeof(*p->precopy_secs));
	if (!p->precopy_run_page || !p->precopy_secs)
		return CRYO_EINTERNAL;
	for (uint32_t i = 0; i < v->nr_runs; i++) {
		p->precopy_run_page[i] = page;
		page += v->runs[i].nr_pages;
	}
	page = 0;
	for (uint32_t s = v->first_pages_section;
	     s < v->first_pages_section + v->nr_pages_sections; s++) {
		const struct cryo_img_index_entry *e = imgr_section(r->img, s);
		struct restore_page_section *ps = &p->precopy_secs[p->nr_precopy_secs];

		/* phase 40 checks each section whole, on its one read (IMGR_DEFER_PAGE_DATA) */
		if (e->type != CRYO_SEC_PAGES && e->type != CRYO_SEC_ZPAGES)
			continue;
		ps->index = s;
		ps->pages = data_section_pages(r, s);	/* validate_runs checked it */
		ps->first_page = page;
		page += ps->pages;
		p->nr_precopy_secs++;
	}
drop:
	if (ret)
		return ret;
	d = imgr_find(r->img, CRYO_SEC_PRECOPY_DROP, p->task.pid, 0, 0);
	if (d < 0)
		return 0;
	if (imgr_find(r->img, CRYO_SEC_PRECOPY_DROP, p->task.pid, 0, d + 1) >= 0)
		return bad(r, "process %d: more than one PRECOPY_DROP section", p->task.pid);
	p->precopy_drop = imgr_load_table(r->img, d, sizeof(*p->precopy_drop),
					  &p->nr_precopy_drop);
	if (!p->precopy_drop)
		return CRYO_EIMAGE;
	r->claimed[d] = 1;
	return check_run_list(r, p->precopy_drop, p->nr_precopy_drop, "PRECOPY_DROP",
			      p->task.pid);
}

static int validate_vmas(struct restore_ctx *r, struct restore_proc *p, struct cryo_img_vma *img,
			 uint32_t n)
{
	uint64_t prev_end = 0;

	p->vmas = xzalloc(n * sizeof(*p->vmas));
	if (!p->vmas)
		return CRYO_EINTERNAL;
	p->nr_vmas = n;
	for (uint32_t i = 0; i < n; i++) {
		struct restore_vma *v = &p->vmas[i];
		int ret;

		v->img = img[i];
		if (v->img.start % PAGE_SIZE_BYTES || v->img.end % PAGE_SIZE_BYTES ||
		    v->img.start >= v->img.end || v->img.start < prev_end ||
		    (v->img.kind != CRYO_VMA_VSYSCALL && v->img.end > USER_SPACE_END) ||
		    v->img.pgoff % PAGE_SIZE_BYTES)
			return bad(r, "memory area %u (%lx-%lx): bad or overlapping bounds", i,
				   (unsigned long)v->img.start, (unsigned long)v->img.end);
		if (v->img.kind < CRYO_VMA_ANON_PRIVATE || v->img.kind > CRYO_VMA_VSYSCALL)
			return bad(r, "memory area %lx-%lx: unknown kind %u",
				   (unsigned long)v->img.start, (unsigned long)v->img.end,
				   v->img.kind);
		if (v->img.prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
			return bad(r, "memory area %lx-%lx: bad protection %#x",
				   (unsigned long)v->img.start, (unsigned long)v->img.end,
				   v->img.prot);
		v->name = str_or_bad(r, v->img.name, "memory area name");
		if (!v->name)
			return CRYO_EIMAGE;
		if ((v->img.kind == CRYO_VMA_FILE_PRIVATE || v->img.kind == CRYO_VMA_FILE_SHARED) &&
		    v->name[0] != '/')
			return bad(r, "memory area %lx-%lx: file path %s not absolute",
				   (unsigned long)v->img.start, (unsigned long)v->img.end, v->name);
		if (v->img.kind == CRYO_VMA_ANON_SHARED && v->img.shmem < r->nr_shmems)
			r->shmems[v->img.shmem].mapped = 1;
		if (v->img.kind == CRYO_VMA_ANON_SHARED &&
		    (v->img.shmem >= r->nr_shmems || v->img.nr_pages_dumped ||
		     v->img.pgoff > r->shmems[v->img.shmem].area.img.end ||
		     v->img.end - v->img.start >
			     r->shmems[v->img.shmem].area.img.end - v->img.pgoff))
			return bad(r, "shared anonymous area %lx-%lx: bad object %u or offset",
				   (unsigned long)v->img.start, (unsigned long)v->img.end,
				   v->img.shmem);
		v->deleted_fd = -1;
		if (v->img.nr_pages_dumped > (v->img.end - v->img.start) / PAGE_SIZE_BYTES)
			return bad(r, "memory area %lx-%lx: %llu pages announced", (unsigned long)v->img.start,
				   (unsigned long)v->img.end, (unsigned long long)v->img.nr_pages_dumped);
		if ((v->img.flags & CRYO_VMA_DELETED) &&
		    (strlen(v->name) <= 10 || strcmp(v->name + strlen(v->name) - 10, " (deleted)") ||
		     imgr_find(r->img, CRYO_SEC_BLOB, v->img.blob_id, 0, 0) < 0 ||
		     (v->img.kind != CRYO_VMA_FILE_PRIVATE && v->img.kind != CRYO_VMA_FILE_SHARED)))
			return bad(r, "memory area %lx-%lx: deleted file without content or mark",
				   (unsigned long)v->img.start, (unsigned long)v->img.end);
		if (v->img.kind >= CRYO_VMA_VVAR && v->img.nr_pages_dumped)
			return bad(r, "memory area %s has page data", v->name);
		ret = validate_runs(r, v, (uint64_t)p->task.pid << 32 | i);
		if (ret)
			return ret;
		prev_end = v->img.end;
	}
	return 0;
}

/* The kernel's vDSO areas must match ours in size and relative position. */
static int validate_vdso(struct restore_ctx *r, struct restore_proc *p)
{
	static const struct {
		const char *name;
		uint32_t kind;
	} special[] = {
		{ "[vvar]", CRYO_VMA_VVAR },
		{ "[vvar_vclock]", CRYO_VMA_VVAR_VCLOCK },
		{ "[vdso]", CRYO_VMA_VDSO },
	};
	int64_t delta = 0;
	int have_delta = 0;

	for (size_t i = 0; i < ARRAY_SIZE(special); i++) {
		struct proc_vma_range ours;
		const struct restore_vma *img = NULL;
		int have_ours = proc_find_named_vma(getpid(), special[i].name, &ours) == 0;

		for (uint32_t j = 0; j < p->nr_vmas; j++)
			if (p->vmas[j].img.kind == special[i].kind)
				img = &p->vmas[j];
		if (!img)
			continue;
		if (!have_ours || ours.end - ours.start != img->img.end - img->img.start)
			return cryo_fail(CRYO_EUNSUPP,
					 "image %s: the image's %s is %llu bytes, this kernel's is "
					 "%llu: cannot restore on this kernel", r->opts->image,
					 special[i].name,
					 (unsigned long long)(img->img.end - img->img.start),
					 have_ours ? (unsigned long long)(ours.end - ours.start) : 0ull);
		if (have_delta && (int64_t)(img->img.start - ours.start) != delta)
			return cryo_fail(CRYO_EUNSUPP, "image %s: vDSO areas laid out differently "
					 "from this kernel's", r->opts->image);
		delta = img->img.start - ours.start;
		have_delta = 1;
	}
	return 0;
}

static int cmp_tid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

/* No TID twice in the whole image. */
static int check_unique_tids(struct restore_ctx *r)
{
	pid_t *ids = malloc((r->nr_threads + r->nr_procs + 1) * sizeof(pid_t));
	size_t n = 0;
	int ret = 0;

	if (!ids)
		return CRYO_EINTERNAL;
	for (uint32_t i = 0; i < r->nr_threads; i++)
		ids[n++] = r->threads[i].tid;
	for (uint32_t i = 0; i < r->nr_procs; i++)
		if (r->procs[i].zombie)
			ids[n++] = r->procs[i].task.pid;
	qsort(ids, n, sizeof(pid_t), cmp_tid);
	for (size_t i = 1; i < n && !ret; i++)
		if (ids[i] == ids[i - 1])
			ret = bad(r, "TID %d appears twice", ids[i]);
	free(ids);
	return ret;
}

/* Every PID and TID of the image must be free; name all that are not. */
static int check_ids_free(struct restore_ctx *r)
{
	struct buf msg = { 0 };
	int taken = 0;

	for (uint32_t p = 0; p < r->nr_procs; p++) {
		struct restore_proc *pr = &r->procs[p];
		uint32_t n = pr->zombie ? 1 : pr->nr_threads;

		for (uint32_t i = 0; i < n; i++) {
			pid_t id = pr->zombie ? pr->task.pid : pr->threads[i].tid;
			char comm[64];

			if (proc_task_state(id) == 0)
				continue;
			proc_comm(proc_tgid(id), comm, sizeof(comm));
			buf_printf(&msg, "%s%s %d is in use by process %d (%s)", taken ? "; " : "",
				   i ? "TID" : "PID", id, proc_tgid(id), comm);
			taken++;
		}
	}
	if (!taken)
		return 0;
	cryo_log("restore: %s", msg.data);
	buf_free(&msg);
	return CRYO_ECONFLICT;
}

/*
 * Parents come before their children; a process whose parent is not in the
 * image (scopes --pgid and --sid) becomes a child of cryo. The root's
 * session and group are checked here; phase 15 plans everyone else's.
 */
static int validate_tree(struct restore_ctx *r, long pid_max)
{
	for (uint32_t i = 0; i < r->nr_procs; i++) {
		struct restore_proc *p = &r->procs[i];
		const struct cryo_img_task *t = &p->task;
		int sid_ok, pgid_ok;

		if (t->pid <= 0 || t->pid >= pid_max)
			return bad(r, "task PID %d out of range (pid_max %ld)", t->pid, pid_max);
		if (restore_find_proc(r, t->pid) != (int)i)
			return bad(r, "task %d listed twice", t->pid);
		if (t->exit_signal > CRYO_NSIG)
			return bad(r, "task %d: exit signal %u", t->pid, t->exit_signal);
		p->parent = i ? restore_find_proc(r, t->ppid) : -1;
		if (p->parent >= (int)i)
			return bad(r, "task %d: parent %d is not before it in the image", t->pid,
				   t->ppid);
		if (p->parent >= 0 && r->procs[p->parent].zombie)
			return bad(r, "task %d: its parent %d is a zombie", t->pid, t->ppid);
		if (!i && p->zombie)
			return bad(r, "the root task %d is a zombie", t->pid);
		if (i)
			continue;
		/*
		 * A session whose leader is gone (a daemon after double fork):
		 * a helper task takes the leader's PID and creates the root
		 * inside the session. Its group is the root's own or the
		 * leader's.
		 */
		r->root_needs_session_helper = t->sid != t->pid && t->sid != getsid(0) &&
					       restore_find_proc(r, t->sid) < 0;
		if (r->root_needs_session_helper && proc_task_state(t->sid))
			return cryo_fail(CRYO_ECONFLICT, "restore: PID %d, the leader of task %d's "
					 "session, is in use by another process", t->sid, t->pid);
		sid_ok = t->sid == t->pid || t->sid == getsid(0) ||
			 (r->root_needs_session_helper && (t->pgid == t->pid || t->pgid == t->sid));
		if (!sid_ok)
			return cryo_fail(CRYO_EUNSUPP,
					 "restore: task %d belonged to session %d, which is cryo's "
					 "neither its own, and its group is another process's: not "
					 "supported yet; restore from a process of that session",
					 t->pid, t->sid);
		pgid_ok = t->pgid == t->pid || t->pgid == getpgid(0) ||
			  r->root_needs_session_helper || t->sid == getsid(0);
		if (!pgid_ok) {
			int leader = restore_find_proc(r, t->pgid);

			pgid_ok = leader >= 0 && r->procs[leader].task.sid == t->sid;
		}
		if (!pgid_ok)
			return cryo_fail(CRYO_EUNSUPP,
					 "restore: task %d belonged to process group %d of another "
					 "session, whose leader is not in the image", t->pid, t->pgid);
	}
	return 0;
}

/* Shared anonymous memory objects: sizes, and their pages like an area's at offset 0. */
static int validate_shmems(struct restore_ctx *r)
{
	long i = imgr_find(r->img, CRYO_SEC_SHMEM, 0, 0, 0);
	struct cryo_img_shmem *tab;

	if (i < 0)
		return 0;
	tab = imgr_load_table(r->img, i, sizeof(*tab), &r->nr_shmems);
	if (!tab)
		return CRYO_EIMAGE;
	r->shmems = xzalloc((r->nr_shmems ? r->nr_shmems : 1) * sizeof(*r->shmems));
	if (!r->shmems) {
		free(tab);
		return CRYO_EINTERNAL;
	}
	for (uint32_t k = 0; k < r->nr_shmems; k++) {
		struct restore_vma *v = &r->shmems[k].area;
		int ret;

		if (!tab[k].size || tab[k].size % PAGE_SIZE_BYTES || tab[k].size > USER_SPACE_END) {
			free(tab);
			return bad(r, "shared memory object %u: bad size", k);
		}
		r->shmems[k].img = tab[k];
		r->shmems[k].fd = -1;
		if (tab[k].kind == CRYO_SHMEM_MEMFD) {
			const uint32_t known = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW |
					       F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

			r->shmems[k].memfd_name = str_or_bad(r, tab[k].name, "memfd name");
			if (!r->shmems[k].memfd_name) {
				free(tab);
				return CRYO_EIMAGE;
			}
			/* memfd_create() takes at most 249 bytes of name */
			if (strlen(r->shmems[k].memfd_name) > 249 || (tab[k].seals & ~known) ||
			    tab[k].mode > 07777 || tab[k].file_size > tab[k].size) {
				free(tab);
				return bad(r, "memfd object %u: bad name, seals, mode or size", k);
			}
		} else if (tab[k].kind == CRYO_SHMEM_SYSV) {
			if (tab[k].sysv_id < 0 || tab[k].mode > 0777 || !tab[k].file_size ||
			    PAGE_ALIGN_UP(tab[k].file_size) != tab[k].size ||
			    (tab[k].sysv_flags & ~(CRYO_SYSV_REMOVED | CRYO_SYSV_LOCKED))) {
				free(tab);
				return bad(r, "SysV segment object %u: bad id, mode, size or flags",
					   k);
			}
		} else if (tab[k].kind == CRYO_SHMEM_DELETED) {
			const char *name = str_or_bad(r, tab[k].name, "deleted file name");
			size_t n = name ? strlen(name) : 0;

			r->shmems[k].memfd_name = name;
			if (!name || name[0] != '/' || n <= 10 || strcmp(name + n - 10, " (deleted)") ||
			    tab[k].mode > 07777 || tab[k].file_size > tab[k].size) {
				free(tab);
				return name ? bad(r, "deleted shared file object %u: bad name, mode "
						  "or size", k) : CRYO_EIMAGE;
			}
		} else if (tab[k].kind != CRYO_SHMEM_ANON) {
			free(tab);
			return bad(r, "shared memory object %u: unknown kind %u", k,
				   r->shmems[k].img.kind);
		}
		v->img.start = 0;
		v->img.end = tab[k].size;
		v->img.nr_pages_dumped = tab[k].nr_pages_dumped;
		v->name = "shared memory";
		v->deleted_fd = -1;
		ret = validate_runs(r, v, CRYO_SHMEM_PAGES_ID | k);
		if (ret) {
			free(tab);
			return ret;
		}
	}
	free(tab);
	return 0;
}

/* Give each process its slice of the global tables (they are grouped by pid). */
static int slice_tables(struct restore_ctx *r)
{
	uint32_t th = 0, fd = 0, sg = 0;

	for (uint32_t i = 0; i < r->nr_procs; i++) {
		struct restore_proc *p = &r->procs[i];
		pid_t pid = p->task.pid;

		p->zombie = !!(p->task.flags & CRYO_TASK_ZOMBIE);
		p->threads = r->threads + th;
		while (th < r->nr_threads && r->threads[th].pid == pid) {
			th++;
			p->nr_threads++;
		}
		p->fds = r->fds + fd;
		while (fd < r->nr_fds && r->fds[fd].pid == pid) {
			fd++;
			p->nr_fds++;
		}
		p->sigs = r->sigs + sg;
		while (sg < r->nr_sigs && ((struct cryo_img_siginfo *)r->sigs)[sg].pid == pid) {
			sg++;
			p->nr_sigs++;
		}
	}
	if (th != r->nr_threads || fd != r->nr_fds || sg != r->nr_sigs)
		return bad(r, "threads, fds or signals not grouped by task in tree order");
	return 0;
}

/*
 * Every page list and drop list must belong to an area, an object or a
 * process: one that does not (its id changed, or cut off from its group)
 * would silently leave pages out.
 */
static int check_unclaimed(struct restore_ctx *r)
{
	for (size_t i = 0; i < imgr_nr_sections(r->img); i++) {
		const struct cryo_img_index_entry *e = imgr_section(r->img, i);

		if ((e->type == CRYO_SEC_PAGEMAP || e->type == CRYO_SEC_PRECOPY_DROP) &&
		    !r->claimed[i])
			return bad(r, "section %zu (%s, id %#llx) belongs to no memory area or "
				   "process", i, img_section_type_name(e->type),
				   (unsigned long long)e->id);
	}
	return 0;
}

int restore_validate(struct restore_ctx *r)
{
	struct cryo_img_task *tasks;
	struct buf b = { 0 };
	long pid_max = 4194304, xs;
	uint64_t xlen;
	int ret;

	ret = imgr_open_flags(&r->img, r->opts->image, IMGR_DEFER_PAGE_DATA);
	if (ret)
		return ret;
	r->claimed = xzalloc(imgr_nr_sections(r->img) + 1);
	if (!r->claimed)
		return CRYO_EINTERNAL;
	if (read_whole_file("/proc/sys/kernel/pid_max", &b) == 0)
		pid_max = atol(b.data);
	buf_free(&b);
	tasks = load_single(r, CRYO_SEC_TASK, 0, "task", sizeof(*tasks), &r->nr_procs);
	if (!tasks)
		return CRYO_EIMAGE;
	if (r->nr_procs == 0 || r->nr_procs > MAX_PROCS) {
		free(tasks);
		return bad(r, "%u tasks", r->nr_procs);
	}
	r->procs = xzalloc(r->nr_procs * sizeof(*r->procs));
	if (!r->procs) {
		free(tasks);
		return CRYO_EINTERNAL;
	}
	for (uint32_t i = 0; i < r->nr_procs; i++)
		r->procs[i].task = tasks[i];
	free(tasks);

	r->threads = load_single(r, CRYO_SEC_THREAD, 0, "thread", sizeof(*r->threads),
				 &r->nr_threads);
	if (!r->threads)
		return CRYO_EIMAGE;
	xs = imgr_find(r->img, CRYO_SEC_XSTATE, 0, 0, 0);
	if (xs < 0)
		return bad(r, "no XSTATE section");
	r->xstate = imgr_load_blob(r->img, xs, &xlen);
	if (!r->xstate)
		return CRYO_EIMAGE;
	r->xstate_size = xlen;
	r->sigs = load_single(r, CRYO_SEC_SIGINFO, 0, "signal", sizeof(*r->sigs), &r->nr_sigs);
	if (!r->sigs)
		return CRYO_EIMAGE;
	if (r->nr_sigs > MAX_PENDING_SIGNALS)
		return bad(r, "%u pending signals", r->nr_sigs);
	r->fds = load_single(r, CRYO_SEC_FD, 0, "descriptor", sizeof(*r->fds), &r->nr_fds);
	if (!r->fds)
		return CRYO_EIMAGE;
	ret = slice_tables(r);
	if (!ret)
		ret = validate_tree(r, pid_max);
	if (!ret)
		ret = validate_shmems(r);
	for (uint32_t i = 0; i < r->nr_procs && !ret; i++) {
		struct restore_proc *p = &r->procs[i];

		ret = validate_task(r, p, pid_max);
		if (!ret && !p->zombie) {
			struct cryo_img_vma *vmas;
			uint32_t n;

			if (imgr_header(r->img)->flags & CRYO_IMG_F_PRECOPY) {
				ret = validate_precopy(r, p);
				if (ret)
					return ret;
			}
			vmas = load_single(r, CRYO_SEC_VMA, p->task.pid, "memory area",
					   sizeof(*vmas), &n);
			if (!vmas)
				return CRYO_EIMAGE;
			ret = validate_vmas(r, p, vmas, n);
			free(vmas);
			if (!ret)
				ret = validate_fds(r, p);
			if (!ret)
				ret = validate_vdso(r, p);
		}
	}
	if (!ret)
		ret = check_unclaimed(r);
	if (!ret)
		ret = check_unique_tids(r);
	if (!ret)
		ret = check_ids_free(r);
	r->nr_image_procs = r->nr_procs;
	if (!ret)
		ret = restore_plan_tree(r);
	return ret;
}
