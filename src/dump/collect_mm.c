/*
 * Classify every memory area of the frozen task and decide, page by page,
 * what goes into the image (pagemap): private anonymous pages that are
 * present or swapped (except the kernel's shared zero page), the
 * copy-on-write pages of private file mappings, and the data of shared
 * anonymous memory. Shared file mappings and unmodified file pages are kept
 * by reference; the kernel's own areas ([vdso], [vvar]...) never.
 */
#include <errno.h>
#include <linux/magic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "dump/dump.h"
#include "kernel/uffd.h"
#include "util/util.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)
#define PM_PFN_MASK ((1ull << 55) - 1)
#define PAGEMAP_BATCH_PAGES 8192
#define PAGEMAP_SCAN_REGIONS 512

static const char *const deleted_suffix = " (deleted)";

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* The PFN of the zero page, read from our own pagemap (0 if hidden). */
static uint64_t find_zero_pfn(void)
{
	volatile char *p = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	uint64_t entry = 0;
	int fd;

	if (p == MAP_FAILED)
		return 0;
	(void)p[0];	/* a read fault maps the shared zero page */
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &entry, sizeof(entry), (uintptr_t)p / PAGE_SIZE_BYTES * 8) != 8)
			entry = 0;
		close(fd);
	}
	munmap((void *)p, PAGE_SIZE_BYTES);
	return (entry & PM_PRESENT) ? (entry & PM_PFN_MASK) : 0;
}

int page_runs_add(struct page_runs *r, uint64_t vaddr)
{
	if (r->nr && r->runs[r->nr - 1].vaddr + r->runs[r->nr - 1].nr_pages * PAGE_SIZE_BYTES ==
			     vaddr) {
		r->runs[r->nr - 1].nr_pages++;
		return 0;
	}
	if (r->nr == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 16;
		struct cryo_img_page_run *p = realloc(r->runs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		r->runs = p;
		r->cap = cap;
	}
	r->runs[r->nr].vaddr = vaddr;
	r->runs[r->nr].nr_pages = 1;
	r->nr++;
	return 0;
}

/*
 * The same choice with PAGEMAP_SCAN (Linux 6.7): the kernel returns runs
 * and skips holes, instead of 8 bytes read and tested per page (128 MiB of
 * pagemap for a 64 GiB sparse reservation). -errno if it is not there.
 */
static int scan_pagemap_ioctl(int pagemap_fd, const struct cryo_img_vma *v,
			      struct page_runs *runs)
{
	/* not the zero page; in private file maps, not the file's own page */
	uint64_t not = PM_IS_PFNZERO | (v->kind == CRYO_VMA_FILE_PRIVATE ? PM_IS_FILE : 0);
	struct pm_region vec[PAGEMAP_SCAN_REGIONS];

	for (uint64_t start = v->start; start < v->end;) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg), .start = start, .end = v->end,
			.vec = (uintptr_t)vec, .vec_len = ARRAY_SIZE(vec),
			.category_mask = not, .category_inverted = not,
			.category_anyof_mask = PM_IS_PRESENT | PM_IS_SWAPPED,
			.return_mask = PM_IS_PRESENT | PM_IS_SWAPPED,
		};
		int n = ioctl(pagemap_fd, PM_SCAN_IOCTL, &arg);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++)
			for (uint64_t a = vec[i].start; a < vec[i].end; a += PAGE_SIZE_BYTES)
				if (page_runs_add(runs, a))
					return -ENOMEM;
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	return 0;
}

static int scan_pagemap(struct dump_ctx *c, int pagemap_fd, const struct cryo_img_vma *v,
			struct page_runs *runs)
{
	static uint64_t entries[PAGEMAP_BATCH_PAGES];
	int file_private = v->kind == CRYO_VMA_FILE_PRIVATE;
	int ret = scan_pagemap_ioctl(pagemap_fd, v, runs);

	if (ret == -ENOMEM)
		return CRYO_EINTERNAL;
	if (!ret)
		return 0;
	runs->nr = 0;	/* an older kernel: read pagemap page by page */

	for (uint64_t addr = v->start; addr < v->end;) {
		uint64_t n = (v->end - addr) / PAGE_SIZE_BYTES;
		if (n > PAGEMAP_BATCH_PAGES)
			n = PAGEMAP_BATCH_PAGES;
		ret = pread_full(pagemap_fd, entries, n * 8, addr / PAGE_SIZE_BYTES * 8);
		if (ret)
			return cryo_fail(CRYO_EINTERNAL, "process %d: reading pagemap at %#lx: %s",
					 c->pid, (unsigned long)addr, strerror(-ret));
		for (uint64_t i = 0; i < n; i++, addr += PAGE_SIZE_BYTES) {
			uint64_t e = entries[i];
			int dump;

			if (e & PM_SWAPPED)
				dump = 1;
			else if (!(e & PM_PRESENT))
				dump = 0;
			else if (file_private && (e & PM_FILE))
				dump = 0;	/* still the file's own page */
			else
				dump = !(c->zero_pfn && (e & PM_PFN_MASK) == c->zero_pfn);
			if (dump && page_runs_add(runs, addr))
				return CRYO_EINTERNAL;
		}
	}
	return 0;
}

/*
 * Shared anonymous memory: the data lives in a shmem file, which may be
 * mapped by several areas and processes. Here: remember which file (its
 * inode, and an fd on it); collect_shmem() gathers the objects.
 */
static int note_shmem(struct dump_ctx *c, int vma_index)
{
	const struct cryo_img_vma *v = &c->img_vmas[vma_index];
	char path[96];
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", c->pid,
		 (unsigned long)v->start, (unsigned long)v->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return cryo_fail(CRYO_EINTERNAL, "process %d: memory area %lx-%lx: open %s: %s",
				 c->pid, (unsigned long)v->start, (unsigned long)v->end, path,
				 strerror(err));
	}
	c->vma_src_fds[vma_index] = fd;
	c->shmem_inos[vma_index] = sb.st_ino;
	return 0;
}

static int scan_object(struct dump_shmem *o)
{
	off_t off = 0, end = o->img.size;

	while (off < end) {
		off_t data = lseek(o->src_fd, off, SEEK_DATA);
		if (data < 0 || data >= end)
			break;
		off_t hole = lseek(o->src_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		for (off_t p = data & ~(off_t)(PAGE_SIZE_BYTES - 1); p < hole; p += PAGE_SIZE_BYTES)
			if (page_runs_add(&o->runs, p))
				return CRYO_EINTERNAL;
		off = hole;
	}
	for (uint32_t r = 0; r < o->runs.nr; r++)
		o->img.nr_pages_dumped += o->runs.runs[r].nr_pages;
	return 0;
}

/* The object with this inode, added (with a dup of src_fd) if new; < 0 on failure. */
static int shmem_object(struct dump_tree *t, uint64_t ino, int src_fd)
{
	struct dump_shmem *s;
	int k;

	for (k = 0; k < t->nr_shmems; k++)
		if (t->shmems[k].img.id == ino)
			return k;
	s = realloc(t->shmems, (k + 1) * sizeof(*s));
	if (!s)
		return CRYO_EINTERNAL;
	t->shmems = s;
	memset(&s[k], 0, sizeof(s[k]));
	s[k].img.id = ino;
	/* the object outlives the fd's owner: keep our own */
	s[k].src_fd = fcntl(src_fd, F_DUPFD_CLOEXEC, 0);
	if (s[k].src_fd < 0)
		return cryo_fail(CRYO_EINTERNAL, "shared memory object %llu: dup: %s",
				 (unsigned long long)ino, strerror(errno));
	t->nr_shmems++;
	return k;
}

static const char *memfd_prefix = "/memfd:";

/* "/memfd:NAME (deleted)" -> NAME, in the string table. */
static cryo_str_t memfd_name(struct dump_tree *t, const char *shown)
{
	char name[PATH_MAX];
	int len = (int)(strlen(shown) - strlen(memfd_prefix) - strlen(deleted_suffix));

	snprintf(name, sizeof(name), "%.*s", len, shown + strlen(memfd_prefix));
	return strtab_add(&t->strings, name);
}

/*
 * Descriptors on memfds: each names the object it opens, which is saved
 * once with the areas mapping it (or alone if nothing maps it).
 */
static int note_memfd_fds(struct dump_tree *t, struct dump_ctx *c)
{
	for (int i = 0; i < c->nr_fds; i++) {
		struct cryo_img_fd *f = &c->fds[i];
		char path[64], shown[PATH_MAX];
		ssize_t n;
		int src, k;

		if (f->kind != CRYO_FD_MEMFD)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, f->fd);
		n = readlink(path, shown, sizeof(shown) - 1);
		src = open(path, O_RDONLY | O_CLOEXEC);
		if (src < 0 || n < (ssize_t)(strlen(memfd_prefix) + strlen(deleted_suffix))) {
			if (src >= 0)
				close(src);
			return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d (memfd): %s", c->pid,
					 f->fd, strerror(errno));
		}
		shown[n] = 0;
		k = shmem_object(t, c->fd_stats[i].st_ino, src);
		close(src);
		if (k < 0)
			return k;
		if (t->shmems[k].img.kind != CRYO_SHMEM_MEMFD) {
			t->shmems[k].img.kind = CRYO_SHMEM_MEMFD;
			t->shmems[k].img.name = memfd_name(t, shown);
			if (t->shmems[k].img.name == (cryo_str_t)-1)
				return CRYO_EINTERNAL;
		}
		f->shmem = k;
	}
	return 0;
}

/*
 * A memfd's seals, mode and exact size. Its pages are staged through a
 * writable shared mapping at restore, and F_SEAL_WRITE cannot be added
 * while one exists: a write-sealed memfd that is also mapped is refused.
 */
static int describe_memfd(struct dump_tree *t, struct dump_shmem *o, const struct stat *sb)
{
	const char *name = (const char *)t->strings.data + o->img.name;
	int seals = fcntl(o->src_fd, F_GET_SEALS);

	if (seals < 0)
		return cryo_fail(CRYO_EINTERNAL, "memfd %s: F_GET_SEALS: %s", name, strerror(errno));
	if (sb->st_blksize != PAGE_SIZE_BYTES)
		return cryo_fail(CRYO_EUNSUPP, "memfd %s: huge pages (MFD_HUGETLB): not supported",
				 name);
	if (o->mapped && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
		return cryo_fail(CRYO_EUNSUPP, "memfd %s is mapped and sealed against writes: "
				 "not supported yet", name);
	o->img.seals = seals;
	o->img.mode = sb->st_mode & 07777;
	o->img.file_size = sb->st_size;
	return 0;
}

/*
 * A System V segment as /proc/sysvipc/shm lists it (its inode number is its
 * shmid). A segment removed while attached (IPC_RMID) has key 0 there and
 * SHM_DEST in its mode; the key it had stays in the area's name.
 */
static int describe_sysv(struct dump_shmem *o)
{
	struct buf b = { 0 };
	char *line, *save = NULL;
	int found = 0;

	if (read_whole_file("/proc/sysvipc/shm", &b))
		return cryo_fail(CRYO_EINTERNAL, "cannot read /proc/sysvipc/shm: %s",
				 strerror(errno));
	for (line = strtok_r(b.data, "\n", &save); line && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		long long key, id, size;
		unsigned perms, uid, gid;

		if (sscanf(line, "%lld %lld %o %lld %*d %*d %*d %u %u", &key, &id, &perms, &size,
			   &uid, &gid) != 6 || (uint64_t)id != o->img.id)
			continue;
		found = 1;
		o->img.sysv_id = id;
		o->img.mode = perms & 0777;
		o->img.file_size = size;
		o->img.sysv_uid = uid;
		o->img.sysv_gid = gid;
		if (perms & SHM_DEST)
			o->img.sysv_flags |= CRYO_SYSV_REMOVED;
		if (perms & SHM_LOCKED)
			o->img.sysv_flags |= CRYO_SYSV_LOCKED;
		if (!(perms & SHM_DEST) && (int32_t)key != o->img.sysv_key)
			found = -1;
	}
	buf_free(&b);
	if (found <= 0)
		return cryo_fail(CRYO_EUNSUPP, "SysV shared memory segment %llu (key %#x): %s",
				 (unsigned long long)o->img.id, (unsigned)o->img.sysv_key,
				 found ? "its key changed" : "not in /proc/sysvipc/shm (another "
				 "IPC namespace?): not supported");
	return 0;
}

/*
 * A deleted file (not on tmpfs) comes back as one copy per process: fine
 * for one process, but two processes sharing it would no longer see each
 * other's writes. Refuse that.
 */
static int check_deleted_shared(struct dump_tree *t)
{
	for (int p = 0; p < t->nr_procs; p++)
		for (int i = 0; i < t->procs[p]->nr_vmas; i++) {
			const struct cryo_img_vma *v = &t->procs[p]->img_vmas[i];

			if (!(v->flags & CRYO_VMA_DELETED) || v->kind != CRYO_VMA_FILE_SHARED)
				continue;
			for (int q = p + 1; q < t->nr_procs; q++)
				for (int j = 0; j < t->procs[q]->nr_vmas; j++) {
					const struct cryo_img_vma *w = &t->procs[q]->img_vmas[j];

					if ((w->flags & CRYO_VMA_DELETED) && w->ino == v->ino &&
					    w->dev_major == v->dev_major && w->dev_minor == v->dev_minor)
						return cryo_fail(CRYO_EUNSUPP, "deleted file %s is mapped "
								 "shared by processes %d and %d: not "
								 "supported (only on tmpfs)",
								 t->procs[p]->vmas[i].path,
								 t->procs[p]->pid, t->procs[q]->pid);
				}
		}
	return 0;
}

int collect_shmem(struct dump_tree *t)
{
	int ret0 = check_deleted_shared(t);

	if (ret0)
		return ret0;
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		for (int i = 0; i < c->nr_vmas; i++) {
			struct cryo_img_vma *v = &c->img_vmas[i];
			uint64_t need = v->pgoff + (v->end - v->start);
			int k;

			if (v->kind != CRYO_VMA_ANON_SHARED)
				continue;
			k = shmem_object(t, c->shmem_inos[i], c->vma_src_fds[i]);
			if (k < 0)
				return k;
			t->shmems[k].mapped = 1;
			if (c->vmas[i].path[0] == '/' && ends_with(c->vmas[i].path, deleted_suffix) &&
			    strncmp(c->vmas[i].path, "/SYSV", 5) &&
			    strncmp(c->vmas[i].path, memfd_prefix, strlen(memfd_prefix)) &&
			    strcmp(c->vmas[i].path, "/dev/zero (deleted)")) {
				t->shmems[k].img.kind = CRYO_SHMEM_DELETED;
				t->shmems[k].img.name = strtab_add(&t->strings, c->vmas[i].path);
				if (t->shmems[k].img.name == (cryo_str_t)-1)
					return CRYO_EINTERNAL;
			} else if (!strncmp(c->vmas[i].path, "/SYSV", 5)) {
				t->shmems[k].img.kind = CRYO_SHMEM_SYSV;
				t->shmems[k].img.sysv_key = strtoul(c->vmas[i].path + 5, NULL, 16);
			} else if (!strncmp(c->vmas[i].path, memfd_prefix, strlen(memfd_prefix)) &&
				   t->shmems[k].img.kind != CRYO_SHMEM_MEMFD) {
				t->shmems[k].img.kind = CRYO_SHMEM_MEMFD;
				t->shmems[k].img.name = memfd_name(t, c->vmas[i].path);
				if (t->shmems[k].img.name == (cryo_str_t)-1)
					return CRYO_EINTERNAL;
			}
			if (need > t->shmems[k].img.size)
				t->shmems[k].img.size = need;
			v->shmem = k;
		}
	}
	for (int p = 0; p < t->nr_procs; p++) {
		int ret = note_memfd_fds(t, t->procs[p]);
		if (ret)
			return ret;
	}
	for (int k = 0; k < t->nr_shmems; k++) {
		struct dump_shmem *o = &t->shmems[k];
		struct stat sb;
		int ret;

		if (fstat(o->src_fd, &sb))
			return cryo_fail(CRYO_EINTERNAL, "shared memory object %llu: fstat: %s",
					 (unsigned long long)o->img.id, strerror(errno));
		/* the object may be larger than what is mapped: keep all of it */
		if ((uint64_t)sb.st_size > o->img.size)
			o->img.size = PAGE_ALIGN_UP((uint64_t)sb.st_size);
		if (o->img.kind == CRYO_SHMEM_MEMFD) {
			ret = describe_memfd(t, o, &sb);
			if (ret)
				return ret;
		}
		if (o->img.kind == CRYO_SHMEM_SYSV) {
			ret = describe_sysv(o);
			if (ret)
				return ret;
		}
		if (o->img.kind == CRYO_SHMEM_DELETED) {
			o->img.mode = sb.st_mode & 07777;
			o->img.file_size = sb.st_size;
		}
		ret = scan_object(o);
		if (ret)
			return ret;
	}
	return 0;
}

static unsigned translate_flags(unsigned vmf)
{
	unsigned f = 0;

	if (vmf & VMF_GROWSDOWN)
		f |= CRYO_VMA_GROWSDOWN;
	if (vmf & VMF_DONTCOPY)
		f |= CRYO_VMA_DONTFORK;
	if (vmf & VMF_DONTDUMP)
		f |= CRYO_VMA_DONTDUMP;
	if (vmf & VMF_HUGEPAGE)
		f |= CRYO_VMA_HUGEPAGE;
	if (vmf & VMF_NOHUGEPAGE)
		f |= CRYO_VMA_NOHUGEPAGE;
	if (vmf & VMF_WIPEONFORK)
		f |= CRYO_VMA_WIPEONFORK;
	if (vmf & VMF_LOCKED)
		f |= CRYO_VMA_LOCKED;
	if (vmf & VMF_SEQ_READ)
		f |= CRYO_VMA_SEQ_READ;
	if (vmf & VMF_RAND_READ)
		f |= CRYO_VMA_RAND_READ;
	if (vmf & VMF_MERGEABLE)
		f |= CRYO_VMA_MERGEABLE;
	if (vmf & VMF_MAYWRITE)
		f |= CRYO_VMA_MAYWRITE;
	if (vmf & VMF_NORESERVE)
		f |= CRYO_VMA_NORESERVE;
	return f;
}

static int classify_file(struct dump_ctx *c, const struct proc_vma *pv, struct cryo_img_vma *v)
{
	char link[96];
	struct stat mapped, named;

	snprintf(link, sizeof(link), "/proc/%d/map_files/%lx-%lx", c->pid,
		 (unsigned long)pv->start, (unsigned long)pv->end);
	if (stat(link, &mapped))
		return cryo_fail(CRYO_EINTERNAL, "process %d: memory area %lx-%lx (%s): %s: %s",
				 c->pid, (unsigned long)pv->start, (unsigned long)pv->end,
				 pv->path, link, strerror(errno));
	if (stat(pv->path, &named) || named.st_dev != mapped.st_dev ||
	    named.st_ino != mapped.st_ino)
		return cryo_fail(CRYO_EUNSUPP,
				 "process %d: memory area %lx-%lx maps %s, but that path now names "
				 "another file (replaced on disk)", c->pid,
				 (unsigned long)pv->start, (unsigned long)pv->end, pv->path);
	if (!S_ISREG(mapped.st_mode) && !S_ISCHR(mapped.st_mode))
		return cryo_fail(CRYO_EUNSUPP, "process %d: memory area %lx-%lx maps %s: "
				 "not a regular file", c->pid, (unsigned long)pv->start,
				 (unsigned long)pv->end, pv->path);
	if (S_ISCHR(mapped.st_mode) && strcmp(pv->path, "/dev/zero"))
		return cryo_fail(CRYO_EUNSUPP, "process %d: memory area %lx-%lx maps device %s: "
				 "not supported", c->pid, (unsigned long)pv->start,
				 (unsigned long)pv->end, pv->path);
	v->kind = pv->shared ? CRYO_VMA_FILE_SHARED : CRYO_VMA_FILE_PRIVATE;
	v->ino = mapped.st_ino;
	v->file_size = S_ISREG(mapped.st_mode) ? mapped.st_size : 0;
	v->file_mtime_ns = S_ISREG(mapped.st_mode) ?
		mapped.st_mtim.tv_sec * 1000000000ull + mapped.st_mtim.tv_nsec : 0;
	v->open_flags = (pv->shared && (pv->vmflags & VMF_MAYWRITE)) ? O_RDWR : O_RDONLY;
	return 0;
}

/*
 * A file deleted while mapped: nothing on disk names it any more, so its
 * whole content goes into the image once (areas of the same file share the
 * blob), read through the mapping's map_files link.
 */
/* Is the file an area maps on tmpfs (shmem: /dev/shm, /tmp on tmpfs...)? */
static int on_tmpfs(struct dump_ctx *c, const struct proc_vma *pv)
{
	char link[96];
	struct statfs fs;

	snprintf(link, sizeof(link), "/proc/%d/map_files/%lx-%lx", c->pid,
		 (unsigned long)pv->start, (unsigned long)pv->end);
	return statfs(link, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

static int classify_deleted(struct dump_ctx *c, const struct proc_vma *pv, struct cryo_img_vma *v)
{
	char link[96];
	struct stat sb;
	int fd, ret;

	snprintf(link, sizeof(link), "/proc/%d/map_files/%lx-%lx", c->pid,
		 (unsigned long)pv->start, (unsigned long)pv->end);
	fd = open(link, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		ret = cryo_fail(CRYO_EUNSUPP, "process %d: memory area %lx-%lx maps %s: cannot "
				"read the deleted file: %s", c->pid, (unsigned long)pv->start,
				(unsigned long)pv->end, pv->path,
				fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return ret;
	}
	v->kind = pv->shared ? CRYO_VMA_FILE_SHARED : CRYO_VMA_FILE_PRIVATE;
	v->flags |= CRYO_VMA_DELETED;
	v->ino = sb.st_ino;
	v->file_size = sb.st_size;
	v->file_mode = sb.st_mode;
	v->open_flags = (pv->shared && (pv->vmflags & VMF_MAYWRITE)) ? O_RDWR : O_RDONLY;
	/* the same file mapped before: share its content */
	for (int i = 0; i < c->nr_vmas && &c->img_vmas[i] != v; i++)
		if ((c->img_vmas[i].flags & CRYO_VMA_DELETED) && c->img_vmas[i].ino == sb.st_ino &&
		    c->img_vmas[i].dev_major == v->dev_major &&
		    c->img_vmas[i].dev_minor == v->dev_minor) {
			v->blob_id = c->img_vmas[i].blob_id;
			close(fd);
			return 0;
		}
	{
		struct cryo_img_fd owner = { 0 };

		ret = add_blob(c->tree, &owner, fd, sb.st_size, NULL);
		v->blob_id = owner.blob_id;
	}
	return ret;
}

static int classify(struct dump_ctx *c, const struct proc_vma *pv, struct cryo_img_vma *v)
{
	const char *p = pv->path;
	const char *what = NULL;

	memset(v, 0, sizeof(*v));
	v->start = pv->start;
	v->end = pv->end;
	v->pgoff = pv->pgoff;
	v->prot = pv->prot;
	v->dev_major = pv->dev_major;
	v->dev_minor = pv->dev_minor;
	v->ino = pv->ino;
	v->flags = translate_flags(pv->vmflags);
	v->name = strtab_add(c->strings, p);
	if (v->name == (cryo_str_t)-1)
		return CRYO_EINTERNAL;

	if (p[0] == '[' && (!strcmp(p, "[vdso]") || !strncmp(p, "[vvar", 5) ||
			    !strcmp(p, "[vsyscall]")))
		what = NULL;	/* the kernel's own: flags do not matter */
	else if (pv->vmflags & VMF_HUGETLB)
		what = "hugetlbfs memory";
	else if (pv->vmflags & VMF_IO)
		what = "device (I/O) memory";
	else if ((pv->vmflags & VMF_UFFD) ||
		 ((pv->vmflags & VMF_UFFD_WP) && !precopy_registered(c, pv->start, pv->end)))
		what = "memory registered with userfaultfd";
	else if (pv->vmflags & VMF_SEALED)
		what = "sealed memory (mseal)";
	if (what)
		return cryo_fail(CRYO_EUNSUPP, "process %d: memory area %lx-%lx (%s) is %s: not "
				 "supported", c->pid, (unsigned long)pv->start,
				 (unsigned long)pv->end, p[0] ? p : "anonymous", what);

	if (!strcmp(p, "[vdso]"))
		v->kind = CRYO_VMA_VDSO;
	else if (!strcmp(p, "[vvar]"))
		v->kind = CRYO_VMA_VVAR;
	else if (!strcmp(p, "[vvar_vclock]"))
		v->kind = CRYO_VMA_VVAR_VCLOCK;
	else if (!strcmp(p, "[vsyscall]"))
		v->kind = CRYO_VMA_VSYSCALL;
	else if (!strcmp(p, "[heap]")) {
		v->kind = CRYO_VMA_ANON_PRIVATE;
		v->flags |= CRYO_VMA_HEAP;
	} else if (!strcmp(p, "[stack]")) {
		v->kind = CRYO_VMA_ANON_PRIVATE;
		v->flags |= CRYO_VMA_STACK;
	} else if (!p[0] || !strncmp(p, "[anon:", 6)) {
		v->kind = pv->shared ? CRYO_VMA_ANON_SHARED : CRYO_VMA_ANON_PRIVATE;
	} else if (!strncmp(p, "[anon_shmem:", 12) ||
		   (pv->shared && !strcmp(p, "/dev/zero (deleted)"))) {
		v->kind = CRYO_VMA_ANON_SHARED;
	} else if (p[0] == '/' && ends_with(p, deleted_suffix) && pv->shared && on_tmpfs(c, pv)) {
		/* shared by whoever maps it: one object, like shared anonymous memory */
		v->kind = CRYO_VMA_ANON_SHARED;
	} else if (p[0] == '/' && ends_with(p, deleted_suffix) && strncmp(p, "/memfd:", 7) &&
		   strncmp(p, "/SYSV", 5) && strncmp(p, "/dev/", 5)) {
		return classify_deleted(c, pv, v);
	} else if (!strncmp(p, "/memfd:", 7) && ends_with(p, deleted_suffix) && pv->shared) {
		v->kind = CRYO_VMA_ANON_SHARED;	/* a shared memory object with a name */
	} else if (!strncmp(p, "/SYSV", 5) && ends_with(p, deleted_suffix) && pv->shared) {
		v->kind = CRYO_VMA_ANON_SHARED;	/* a System V segment */
	} else if (p[0] == '/' && ends_with(p, deleted_suffix)) {
		return cryo_fail(CRYO_EUNSUPP,
				 "process %d: memory area %lx-%lx maps %s: %s not supported yet",
				 c->pid, (unsigned long)pv->start, (unsigned long)pv->end, p,
				 "a private mapping of a memfd or SysV segment is");
	} else if (p[0] == '/') {
		return classify_file(c, pv, v);
	} else {
		return cryo_fail(CRYO_EUNSUPP, "process %d: memory area %lx-%lx (%s): unknown kind",
				 c->pid, (unsigned long)pv->start, (unsigned long)pv->end, p);
	}
	return 0;
}

int collect_mm(struct dump_ctx *c)
{
	char path[64];
	int pagemap_fd, ret;

	ret = proc_read_vmas(c->pid, &c->vmas, &c->nr_vmas);
	if (ret)
		return cryo_fail(CRYO_EINTERNAL, "process %d: reading smaps: %s", c->pid,
				 strerror(-ret));
	c->img_vmas = xzalloc(c->nr_vmas * sizeof(*c->img_vmas));
	c->runs = xzalloc(c->nr_vmas * sizeof(*c->runs));
	c->vma_src_fds = malloc(c->nr_vmas * sizeof(int));
	c->shmem_inos = xzalloc(c->nr_vmas * sizeof(uint64_t));
	if (!c->img_vmas || !c->runs || !c->vma_src_fds || !c->shmem_inos)
		return CRYO_EINTERNAL;
	for (int i = 0; i < c->nr_vmas; i++)
		c->vma_src_fds[i] = -1;
	c->zero_pfn = find_zero_pfn();

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: open %s: %s", c->pid, path,
				 strerror(errno));
	for (int i = 0; i < c->nr_vmas && !ret; i++) {
		struct cryo_img_vma *v = &c->img_vmas[i];

		ret = classify(c, &c->vmas[i], v);
		if (ret)
			break;
		switch (v->kind) {
		case CRYO_VMA_ANON_PRIVATE:
		case CRYO_VMA_FILE_PRIVATE:
			ret = scan_pagemap(c, pagemap_fd, v, &c->runs[i]);
			break;
		case CRYO_VMA_ANON_SHARED:
			ret = note_shmem(c, i);
			break;
		default:
			break;
		}
		for (uint32_t r = 0; r < c->runs[i].nr; r++)
			v->nr_pages_dumped += c->runs[i].runs[r].nr_pages;
	}
	close(pagemap_fd);
	return ret;
}
