/*
 * Pre-copy: copy most of a large process's memory while it still runs, so
 * that the final freeze only copies what changed meanwhile.
 *
 *   arm    (tree briefly frozen) per process: a userfaultfd is created
 *          inside the task by an injected call, taken over with
 *          pidfd_getfd and closed in the task, so cryo holds the only
 *          reference; its private anonymous areas are registered for
 *          asynchronous write-protection (WP_ASYNC, WP_UNPOPULATED).
 *   protect (tree running) the present pages of those areas are
 *          write-protected with PAGEMAP_SCAN, COPY_SCAN_BYTES at a time,
 *          each window just before the copy reads it. A write then only
 *          clears the page's protection, in the kernel, without any message
 *          to read. (No need to freeze for it: a page is read only once
 *          protected, so a write after its copy is always seen. Protecting
 *          1 GiB walks 262 144 page table entries, 10 ms, that the tree
 *          used to spend frozen. The copy's thread does it, not a thread of
 *          its own: the image writer is the bottleneck, and a third busy
 *          thread on a two-CPU machine took the writer's CPU.)
 *   copy   (tree running) every present page of those areas goes into the
 *          image as pre-copy data (CRYO_PRECOPY_PAGES_ID | pid), each
 *          window once protected.
 *   final  (tree frozen again, before collect_mm) PAGEMAP_SCAN tells which
 *          pre-copied pages are still exact: in an area still registered
 *          (a moved or new area is not), present, not the zero page, not
 *          written. The areas stay registered until the tree is thawed or
 *          killed (precopy_release closes the userfaultfd, which unregisters
 *          everything): unregistering walks every page table entry to drop
 *          its protection (20 ms per GiB), time the tree need not stay
 *          frozen for. collect_mm accepts the "uw" flag on them.
 *   trim   (after collect_mm) the pages still exact leave the area's page
 *          list; every other pre-copied page of a private anonymous area
 *          goes into the process's PRECOPY_DROP list, which restore zeroes
 *          before the area's own pages.
 *
 * If cryo dies at any point, the kernel closes the userfaultfd, which
 * unregisters the areas and drops the protection: the target runs on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#include "dump/dump.h"
#include "kernel/uffd.h"
#include "util/util.h"

#define PRECOPY_MAX_IOV 1024
#define SCAN_REGIONS 512
/* The copy scans an area this much at a time, so the first chunk is read at once. */
#define COPY_SCAN_BYTES (64ull << 20)
/* Below this much anonymous memory in the tree, one freeze costs less than two. */
#define PRECOPY_MIN_BYTES (64ull << 20)

struct precopy_area {
	uint64_t start, end;
	int untrusted;		/* protecting failed: unregistered, nothing of it is reused */
	uint64_t *copied;	/* one bit per page: its data is in the image */
	uint64_t *reuse;	/* final: copied and still exact */
	uint64_t *kept;		/* trim: reuse and present, so not copied again */
};

/* A thread the arm freeze interrupted in a call the kernel resumes through restart_syscall. */
struct restart_note {
	pid_t tid;
	struct user_regs_struct regs;	/* as frozen at the arm */
};

struct precopy_proc {
	pid_t pid;
	unsigned long long starttime;
	int uffd;
	int pagemap_fd;
	struct precopy_area *areas;
	int nr_areas;
	struct restart_note *restarts;
	int nr_restarts;
};

struct precopy {
	struct precopy_proc *procs;
	int nr_procs;
	uint64_t pages_copied;
	struct iovec remote[PRECOPY_MAX_IOV];	/* the next chunk to read */
	struct precopy_area *remote_area[PRECOPY_MAX_IOV];	/* what each range is part of */
	int nr_iov;
	size_t len;
};

static inline void bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}

static inline int bit_test(const uint64_t *map, uint64_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}

static size_t bitmap_bytes(const struct precopy_area *a)
{
	uint64_t pages = (a->end - a->start) / PAGE_SIZE_BYTES;

	return (pages + 63) / 64 * sizeof(uint64_t);
}

static uint64_t *bitmap_new(const struct precopy_area *a)
{
	return xzalloc(bitmap_bytes(a));
}

/* Sum of RssAnon of root and its descendants (a cheap hint, read without freezing). */
static uint64_t tree_anon_bytes(pid_t pid, int depth)
{
	struct buf b = { 0 };
	uint64_t total = 0;
	char *p, *end;

	if (!read_proc(&b, "/proc/%d/status", pid) && (p = strstr(b.data, "RssAnon:")))
		total = strtoull(p + 8, NULL, 10) << 10;
	buf_free(&b);
	if (depth > 64 || read_proc(&b, "/proc/%d/task/%d/children", pid, pid))
		return total;
	for (p = b.data; p && *p; p = end) {
		pid_t child = strtol(p, &end, 10);

		if (end == p)
			break;
		total += tree_anon_bytes(child, depth + 1);
	}
	buf_free(&b);
	return total;
}

int precopy_wanted(pid_t root, enum cryo_precopy mode)
{
	if (mode == CRYO_PRECOPY_NEVER)
		return 0;
	if (mode == CRYO_PRECOPY_ALWAYS)
		return 1;
	return tree_anon_bytes(root, 0) >= PRECOPY_MIN_BYTES;
}

/*
 * Private anonymous memory cryo can read: what pre-copy tracks. (From
 * /proc/PID/maps, without VmFlags: the kernel refuses to register what
 * userfaultfd cannot track, or what the program registered itself.)
 */
static int trackable(const struct proc_vma *v)
{
	const char *p = v->path;

	if (v->shared || !(v->prot & PROT_READ))
		return 0;
	return !p[0] || !strcmp(p, "[heap]") || !strcmp(p, "[stack]") || !strncmp(p, "[anon:", 6);
}

/*
 * Run userfaultfd() inside the frozen process and take the descriptor over:
 * after the injected close() cryo holds the only reference, so cryo's death
 * closes it and the kernel unregisters every area.
 */
static int take_uffd(struct dump_ctx *c, int *uffd)
{
	struct frozen_task *t = &c->threads[0];
	int64_t fd = -1, r;
	int pidfd, ret;

	*uffd = -1;
	ret = inject_prepare(t);
	if (ret)
		return ret;
	ret = inject_syscall(t, __NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
			     0, 0, 0, 0, 0, &fd);
	if (!ret && fd == -EINVAL)	/* kernels before 5.11 lack user-mode-only */
		ret = inject_syscall(t, __NR_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0,
				     &fd);
	if (!ret && fd >= 0) {
		pidfd = syscall(SYS_pidfd_open, c->pid, 0);
		if (pidfd >= 0) {
			*uffd = syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
			close(pidfd);
		}
		ret = inject_syscall(t, __NR_close, fd, 0, 0, 0, 0, 0, &r);
	}
	if (!ret)
		ret = inject_finish(t);
	else
		inject_finish(t);
	if (ret && *uffd >= 0) {
		close(*uffd);
		*uffd = -1;
	}
	if (!ret && *uffd < 0)
		cryo_debug("pre-copy: process %d: no userfaultfd (%s)", c->pid,
			   fd < 0 ? strerror((int)-fd) : strerror(errno));
	return ret;
}

/*
 * Write-protect the pages of [start, end) that are present (or swapped).
 * Holes are left alone: protecting them would make the kernel allocate
 * page tables for a whole sparse reservation, and a page faulted in later
 * is not protected, so it counts as written anyway.
 */
static int write_protect(int pagemap_fd, uint64_t start, uint64_t end)
{
	struct pm_region vec[SCAN_REGIONS];

	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start, .end = end,
			.vec = (uintptr_t)vec, .vec_len = SCAN_REGIONS,
			.category_anyof_mask = PM_IS_PRESENT | PM_IS_SWAPPED,
			.return_mask = PM_IS_PRESENT,
		};

		if (ioctl(pagemap_fd, PM_SCAN_IOCTL, &arg) < 0)
			return -errno;
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	return 0;
}

static int add_area(struct precopy_proc *pp, uint64_t start, uint64_t end)
{
	struct precopy_area *a = realloc(pp->areas, (pp->nr_areas + 1) * sizeof(*a));

	if (!a)
		return CRYO_EINTERNAL;
	pp->areas = a;
	a = &a[pp->nr_areas];
	memset(a, 0, sizeof(*a));
	a->start = start;
	a->end = end;
	a->copied = bitmap_new(a);
	a->reuse = bitmap_new(a);
	a->kept = bitmap_new(a);
	pp->nr_areas++;
	return a->copied && a->reuse && a->kept ? 0 : CRYO_EINTERNAL;
}

static int interrupted_with_restart_block(const struct user_regs_struct *r)
{
	return (int64_t)r->rax == -KERN_ERESTART_RESTARTBLOCK && (int64_t)r->orig_rax >= 0;
}

/*
 * Thawing after the arm resumes a call interrupted with -ERESTART_RESTARTBLOCK
 * (nanosleep, poll with a timeout...) as restart_syscall, which only this
 * task's kernel restart block can complete: frozen again, it shows
 * restart_syscall instead of the call. Remember the call, to put it back
 * into the image (precopy_final_scan).
 */
static int note_restarts(struct precopy_proc *pp, const struct dump_ctx *c)
{
	for (int i = 0; i < c->nr_threads; i++) {
		const struct user_regs_struct *r = &c->threads[i].regs;
		struct restart_note *n;

		if (!interrupted_with_restart_block(r) || r->orig_rax == __NR_restart_syscall)
			continue;
		n = realloc(pp->restarts, (pp->nr_restarts + 1) * sizeof(*n));
		if (!n)
			return CRYO_EINTERNAL;
		pp->restarts = n;
		n[pp->nr_restarts].tid = c->threads[i].tid;
		n[pp->nr_restarts].regs = *r;
		pp->nr_restarts++;
	}
	return 0;
}

/*
 * A thread frozen in the restart_syscall that continues the call it was in
 * at the arm (same place, same arguments): save it as in that call, which
 * restore runs again (docs/design.md).
 */
static void undo_restarts(struct precopy_proc *pp, struct dump_ctx *c)
{
	for (int i = 0; i < c->nr_threads; i++) {
		struct user_regs_struct r;

		memcpy(&r, c->img_threads[i].regs, sizeof(r));
		if (!interrupted_with_restart_block(&r) || r.orig_rax != __NR_restart_syscall)
			continue;
		for (int k = 0; k < pp->nr_restarts; k++) {
			const struct user_regs_struct *a = &pp->restarts[k].regs;

			if (pp->restarts[k].tid != c->img_threads[i].tid || a->rip != r.rip ||
			    a->rdi != r.rdi || a->rsi != r.rsi || a->rdx != r.rdx ||
			    a->r10 != r.r10 || a->r8 != r.r8 || a->r9 != r.r9)
				continue;
			r.orig_rax = a->orig_rax;
			memcpy(c->img_threads[i].regs, &r, sizeof(r));
			break;
		}
	}
}

/*
 * Register and write-protect the process's private anonymous areas. What
 * the kernel will not track (no userfaultfd for the process, an area the
 * program registered itself: EBUSY) is simply left to the final freeze.
 */
static int arm_process(struct precopy *pc, struct dump_ctx *c)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct precopy_proc *pp;
	struct proc_vma *vmas = NULL;
	struct proc_stat st;
	int nr = 0, uffd, pagemap_fd = -1, ret;
	char path[64];

	/* maps, not smaps: smaps walks every page table (200 ms for 4 GiB), frozen */
	ret = proc_read_maps(c->pid, &vmas, &nr);
	if (ret)
		return cryo_fail(CRYO_EINTERNAL, "process %d: reading maps: %s", c->pid,
				 strerror(-ret));
	if (proc_read_stat(c->pid, 0, &st)) {
		free(vmas);
		return cryo_fail(CRYO_ENOPROC, "process %d: no such process", c->pid);
	}
	ret = take_uffd(c, &uffd);
	if (ret || uffd < 0) {
		free(vmas);
		return ret;
	}
	if (ioctl(uffd, UFFDIO_API, &api) < 0) {
		cryo_debug("pre-copy: process %d: UFFDIO_API: %s", c->pid, strerror(errno));
		close(uffd);
		free(vmas);
		return 0;
	}
	pp = realloc(pc->procs, (pc->nr_procs + 1) * sizeof(*pp));
	if (!pp) {
		close(uffd);
		free(vmas);
		return CRYO_EINTERNAL;
	}
	pc->procs = pp;
	pp = &pp[pc->nr_procs++];
	memset(pp, 0, sizeof(*pp));
	pp->pid = c->pid;
	pp->starttime = st.starttime;
	pp->uffd = uffd;
	ret = note_restarts(pp, c);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	pp->pagemap_fd = pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0)
		ret = cryo_fail(CRYO_EINTERNAL, "process %d: open %s: %s", c->pid, path,
				strerror(errno));
	for (int i = 0; i < nr && !ret; i++) {
		struct uffdio_register reg = {
			.range = { vmas[i].start, vmas[i].end - vmas[i].start },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};

		if (!trackable(&vmas[i]) || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			continue;	/* not tracked: copied whole at the final freeze */
		ret = add_area(pp, vmas[i].start, vmas[i].end);
	}
	free(vmas);
	return ret;
}

int precopy_arm(struct dump_tree *t, struct dump_tree *frozen)
{
	int ret = 0;

	t->precopy = xzalloc(sizeof(*t->precopy));
	if (!t->precopy)
		return CRYO_EINTERNAL;
	for (int i = 0; i < frozen->nr_procs && !ret; i++)
		if (!frozen->procs[i]->zombie)
			ret = arm_process(t->precopy, frozen->procs[i]);
	return ret ? ret : fault_point("checkpoint:precopy-armed");
}

/*
 * Regions of [start, end) matching a PAGEMAP_SCAN filter, one callback
 * each. Returns 0, -errno of the ioctl, or the callback's nonzero value.
 */
static int scan(int pagemap_fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		uint64_t anyof, int (*fn)(void *, uint64_t, uint64_t), void *opaque)
{
	struct pm_region vec[SCAN_REGIONS];

	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg), .start = start, .end = end,
			.vec = (uintptr_t)vec, .vec_len = SCAN_REGIONS,
			.category_mask = mask, .category_inverted = inverted,
			.category_anyof_mask = anyof, .return_mask = PM_IS_PRESENT | PM_IS_SWAPPED,
		};
		int n = ioctl(pagemap_fd, PM_SCAN_IOCTL, &arg);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++) {
			int ret = fn(opaque, vec[i].start, vec[i].end);
			if (ret)
				return ret;
		}
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	return 0;
}

struct copy_ctx {
	struct dump_tree *t;
	struct page_pipe *pipe;
	struct precopy_proc *pp;
	struct precopy_area *a;
	int err;		/* CRYO_E* from writing the image */
};

/*
 * Read the batched ranges while the task runs: what could be read is
 * marked copied (a range unmapped meanwhile simply is not), pages of zeros
 * cost nothing (restore starts from zeros), the rest goes to the image.
 */
static int flush(struct copy_ctx *x)
{
	struct precopy *pc = x->t->precopy;
	struct page_chunk *ch;
	size_t in = 0, out = 0;
	ssize_t n;
	int ret = 0;

	if (!pc->len)
		return 0;
	ch = page_pipe_get(x->pipe, &ret);
	if (!ch)
		return ret;
	struct iovec local = { ch->buf, pc->len };

	n = process_vm_readv(x->pp->pid, &local, 1, pc->remote, pc->nr_iov, 0);
	ch->kept.nr = 0;
	for (int i = 0; i < pc->nr_iov && n > 0; i++) {
		uint64_t addr = (uint64_t)pc->remote[i].iov_base;
		struct precopy_area *a = pc->remote_area[i];

		for (size_t off = 0; off < pc->remote[i].iov_len && in < (size_t)n;
		     off += PAGE_SIZE_BYTES, in += PAGE_SIZE_BYTES) {
			bit_set(a->copied, (addr + off - a->start) / PAGE_SIZE_BYTES);
			if (page_is_zero(ch->buf + in))
				continue;
			if (out != in)
				memcpy(ch->buf + out, ch->buf + in, PAGE_SIZE_BYTES);
			out += PAGE_SIZE_BYTES;
			if (page_runs_add(&ch->kept, addr + off))
				return CRYO_EINTERNAL;
		}
	}
	if (out) {
		/* marked copied now, in the image once the pipe is drained (or the checkpoint fails) */
		page_pipe_put(x->pipe, ch, CRYO_PRECOPY_PAGES_ID | (uint32_t)x->pp->pid, &ch->kept,
			      out);
		pc->pages_copied += out / PAGE_SIZE_BYTES;
	}
	pc->len = 0;
	pc->nr_iov = 0;
	return fault_point("checkpoint:precopy-copy");
}

static int copy_region(void *opaque, uint64_t start, uint64_t end)
{
	struct copy_ctx *x = opaque;
	struct precopy *pc = x->t->precopy;
	size_t chunk = page_pipe_chunk_bytes(x->pipe);

	while (start < end) {
		size_t room = chunk - pc->len;
		size_t n = end - start < room ? end - start : room;
		int ret;

		pc->remote[pc->nr_iov].iov_base = (void *)start;
		pc->remote[pc->nr_iov].iov_len = n;
		pc->remote_area[pc->nr_iov] = x->a;
		pc->nr_iov++;
		pc->len += n;
		start += n;
		if (pc->len == chunk || pc->nr_iov == PRECOPY_MAX_IOV) {
			ret = flush(x);
			if (ret) {
				x->err = ret;
				return 1;
			}
		}
	}
	return 0;
}

/*
 * Protect [start, end) of area a before the copy reads it. If that fails the
 * area is partly protected: it must not be trusted, nor stay registered.
 */
static int protect_window(struct precopy_proc *pp, struct precopy_area *a, uint64_t start,
			  uint64_t end)
{
	int err = write_protect(pp->pagemap_fd, start, end);

	if (err) {
		struct uffdio_range r = { a->start, a->end - a->start };

		ioctl(pp->uffd, UFFDIO_UNREGISTER, &r);
		a->untrusted = 1;
		cryo_debug("pre-copy: process %d: protecting %lx-%lx: %s", pp->pid,
			   (unsigned long)start, (unsigned long)end, strerror(-err));
	}
	return err;
}

int precopy_copy(struct dump_tree *t, struct img_writer *w)
{
	struct precopy *pc = t->precopy;
	struct page_pipe *pipe;
	uint64_t t0 = now_ns();
	int ret = page_pipe_start(&pipe, t, w);

	if (ret)
		return ret;
	for (int p = 0; p < pc->nr_procs && !ret; p++) {
		struct precopy_proc *pp = &pc->procs[p];

		/* chunks span areas: a small area does not take a slot of the pipe alone */
		struct copy_ctx x = { t, pipe, pp, NULL, 0 };

		for (int i = 0; i < pp->nr_areas && !x.err; i++) {
			x.a = &pp->areas[i];
			/*
			 * Present, not the zero page: the same choice as collect_mm. A
			 * scan that fails (the process exited...) just copies less; an
			 * area that could not be protected, none of the rest.
			 */
			for (uint64_t s = x.a->start; s < x.a->end && !x.err; s += COPY_SCAN_BYTES) {
				uint64_t e = x.a->end - s > COPY_SCAN_BYTES ? s + COPY_SCAN_BYTES : x.a->end;

				if (protect_window(pp, x.a, s, e) ||
				    scan(pp->pagemap_fd, s, e, PM_IS_PFNZERO, PM_IS_PFNZERO,
					 PM_IS_PRESENT | PM_IS_SWAPPED, copy_region, &x))
					break;
			}
		}
		ret = x.err ? x.err : flush(&x);
	}
	/* the last chunks are written while the tree is frozen and collected */
	if (ret)
		page_pipe_finish(pipe, ret);
	else
		t->pipe = pipe;
	cryo_debug("pre-copy: %llu pages read while running, in %.1f ms",
		   (unsigned long long)pc->pages_copied, (now_ns() - t0) / 1e6);
	return ret;
}

static struct precopy_proc *find_pp(struct precopy *pc, pid_t pid)
{
	for (int i = 0; pc && i < pc->nr_procs; i++)
		if (pc->procs[i].pid == pid && pc->procs[i].uffd >= 0)
			return &pc->procs[i];
	return NULL;
}

struct reuse_ctx {
	struct precopy_area *a;
};

static int mark_reuse(void *opaque, uint64_t start, uint64_t end)
{
	struct precopy_area *a = ((struct reuse_ctx *)opaque)->a;

	for (uint64_t addr = start; addr < end; addr += PAGE_SIZE_BYTES) {
		uint64_t i = (addr - a->start) / PAGE_SIZE_BYTES;

		if (bit_test(a->copied, i))
			bit_set(a->reuse, i);
	}
	return 0;
}

int precopy_final_scan(struct dump_ctx *c)
{
	struct precopy_proc *pp = find_pp(c->tree->precopy, c->pid);
	struct proc_stat st;
	char path[64];
	int fd, ret;

	if (!pp)
		return 0;
	c->pre = pp;
	undo_restarts(pp, c);
	/*
	 * The same PID, but not the same process: nothing it copied is reused,
	 * nothing of it is registered (closing is cheap: the old one is gone).
	 */
	if (proc_read_stat(c->pid, 0, &st) || st.starttime != pp->starttime) {
		close(pp->uffd);
		pp->uffd = -1;
		return fault_point("checkpoint:precopy-final");
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < pp->nr_areas; i++) {
		struct precopy_area *a = &pp->areas[i];
		struct reuse_ctx x = { a };

		/*
		 * Still registered (PAGE_IS_WPALLOWED: an area moved by mremap or
		 * mapped anew is not), not written since the arm, present, and
		 * not the zero page (a page zapped then read maps it).
		 */
		ret = fd < 0 ? -EBADF : a->untrusted ? -EIO :
		      scan(fd, a->start, a->end, PM_IS_WPALLOWED | PM_IS_WRITTEN | PM_IS_PFNZERO,
			   PM_IS_WRITTEN | PM_IS_PFNZERO, PM_IS_PRESENT | PM_IS_SWAPPED,
			   mark_reuse, &x);
		if (ret) {
			/* doubtful: copy the whole area again (mark_reuse never fails) */
			cryo_debug("pre-copy: process %d: scanning %lx-%lx: %s", c->pid,
				   (unsigned long)a->start, (unsigned long)a->end, strerror(-ret));
			memset(a->reuse, 0, bitmap_bytes(a));
		}
	}
	if (fd >= 0)
		close(fd);
	return fault_point("checkpoint:precopy-final");
}

/*
 * Is [start, end) of c registered by cryo's own userfaultfd? (Inside an
 * area registered at the arm, while the descriptor is open. A program's
 * own userfaultfd in the tree is refused as a descriptor, collect_fds.c.)
 */
int precopy_registered(const struct dump_ctx *c, uint64_t start, uint64_t end)
{
	if (!c->pre || c->pre->uffd < 0)
		return 0;
	for (int i = 0; i < c->pre->nr_areas; i++)
		if (start >= c->pre->areas[i].start && end <= c->pre->areas[i].end)
			return 1;	/* even untrusted: ours if unregistering it failed */
	return 0;
}

static struct precopy_area *area_of(struct precopy_proc *pp, uint64_t addr)
{
	for (int i = 0; i < pp->nr_areas; i++)
		if (addr >= pp->areas[i].start && addr < pp->areas[i].end)
			return &pp->areas[i];
	return NULL;
}

/* Take the pages still exact out of area i's list; mark them kept. */
static int trim_area(struct dump_ctx *c, int i)
{
	struct page_runs *r = &c->runs[i], out = { 0 };
	struct precopy_area *a = NULL;

	for (uint32_t k = 0; k < r->nr; k++)
		for (uint64_t n = 0; n < r->runs[k].nr_pages; n++) {
			uint64_t addr = r->runs[k].vaddr + n * PAGE_SIZE_BYTES;
			uint64_t bit;

			/* runs are in address order: the last area found nearly always holds */
			if (!a || addr < a->start || addr >= a->end)
				a = area_of(c->pre, addr);
			bit = a ? (addr - a->start) / PAGE_SIZE_BYTES : 0;

			if (a && bit_test(a->reuse, bit)) {
				bit_set(a->kept, bit);
				continue;
			}
			if (page_runs_add(&out, addr)) {
				free(out.runs);
				return CRYO_EINTERNAL;
			}
		}
	free(r->runs);
	*r = out;
	return 0;
}

/* Pre-copied pages of area i that restore must zero before its own pages. */
static int drop_stale(struct dump_ctx *c, int i)
{
	const struct cryo_img_vma *v = &c->img_vmas[i];

	for (int k = 0; k < c->pre->nr_areas; k++) {
		struct precopy_area *a = &c->pre->areas[k];
		uint64_t lo = a->start > v->start ? a->start : v->start;
		uint64_t hi = a->end < v->end ? a->end : v->end;

		for (uint64_t addr = lo; addr < hi; addr += PAGE_SIZE_BYTES) {
			uint64_t bit = (addr - a->start) / PAGE_SIZE_BYTES;

			/* sparse areas: skip 64 pages at a time where nothing was copied */
			if (bit % 64 == 0 && !a->copied[bit / 64] &&
			    hi - addr >= 64 * PAGE_SIZE_BYTES) {
				addr += 63 * PAGE_SIZE_BYTES;
				continue;
			}
			if (bit_test(a->copied, bit) && !bit_test(a->kept, bit) &&
			    page_runs_add(&c->precopy_drop, addr))
				return CRYO_EINTERNAL;
		}
	}
	return 0;
}

int precopy_trim(struct dump_ctx *c)
{
	uint64_t left = 0;
	int ret = 0;

	if (!c->pre)
		return 0;
	for (int i = 0; i < c->nr_vmas && !ret; i++) {
		if (c->img_vmas[i].kind != CRYO_VMA_ANON_PRIVATE)
			continue;
		ret = trim_area(c, i);
		if (!ret)
			ret = drop_stale(c, i);
		for (uint32_t k = 0; k < c->runs[i].nr; k++)
			left += c->runs[i].runs[k].nr_pages;
	}
	cryo_debug("pre-copy: process %d: %llu pages left to copy frozen", c->pid,
		   (unsigned long long)left);
	return ret;
}

/* Has the killed process pid let go of its memory (or is it gone)? */
static int memory_released(pid_t pid)
{
	struct buf b = { 0 };
	int released = read_proc(&b, "/proc/%d/statm", pid) || !strncmp(b.data, "0 0 ", 4);

	buf_free(&b);
	return released;
}

/*
 * After the tree was thawed or killed: close the userfaultfds, which
 * unregisters the areas. Killed processes first drop their memory: closing
 * then skips the walk over page tables the kernel frees anyway (a killed
 * process lets go within a millisecond; cryo waits 50 ms at most).
 */
void precopy_release(struct dump_tree *t, int killed)
{
	struct precopy *pc = t->precopy;
	uint64_t deadline = now_ns() + 50 * 1000000ull;

	for (int p = 0; pc && p < pc->nr_procs; p++) {
		if (pc->procs[p].uffd < 0)
			continue;
		while (killed && !memory_released(pc->procs[p].pid) && now_ns() < deadline)
			usleep(200);
		close(pc->procs[p].uffd);
		pc->procs[p].uffd = -1;
	}
}

void precopy_free(struct dump_tree *t)
{
	struct precopy *pc = t->precopy;

	if (!pc)
		return;
	for (int p = 0; p < pc->nr_procs; p++) {
		if (pc->procs[p].uffd >= 0)
			close(pc->procs[p].uffd);
		if (pc->procs[p].pagemap_fd >= 0)
			close(pc->procs[p].pagemap_fd);
		for (int i = 0; i < pc->procs[p].nr_areas; i++) {
			free(pc->procs[p].areas[i].copied);
			free(pc->procs[p].areas[i].reuse);
			free(pc->procs[p].areas[i].kept);
		}
		free(pc->procs[p].areas);
		free(pc->procs[p].restarts);
	}
	free(pc->procs);
	free(pc);
	t->precopy = NULL;
}

uint64_t precopy_pages(const struct dump_tree *t)
{
	return t->precopy ? t->precopy->pages_copied : 0;
}
