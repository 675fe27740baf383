/*
 * Phase 10: load the image and check that everything in it makes sense
 * before any task exists. imgr_open() already verified structure and
 * checksums; here every value is checked for meaning (addresses, counts,
 * fd numbers, string references, cross references), and the machine for
 * fitness: CPU features for the saved FPU state, vDSO layout, free PID.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/proc.h"
#include "restore/restore.h"
#include "util/util.h"

#define USER_SPACE_END 0x7ffffffff000ull
#define VSYSCALL_START 0xffffffffff600000ull
#define MAX_TABLE_ENTRIES (1u << 20)
#define MAX_FD_NUMBER (1 << 20)
#define MAX_PENDING_SIGNALS 65536
#define XSAVE_HEADER_OFFSET 512
#define SI_SIGNO_OFFSET 0
#define MAX_THREADS 32768
#define XSTATE_MAX_BYTES (16 * 1024)

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

/* Exactly one table section of this type; its entries, copied. */
static void *load_single(struct restore_ctx *r, uint32_t type, const char *what, uint32_t size,
			 uint32_t *count)
{
	long i = imgr_find(r->img, type, 0, 1, 0);

	if (i < 0) {
		bad(r, "no %s section", what);
		return NULL;
	}
	if (imgr_find(r->img, type, 0, 1, i + 1) >= 0) {
		bad(r, "more than one %s section (process trees need a newer cryo)", what);
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

static int validate_threads(struct restore_ctx *r, long pid_max)
{
	uint64_t xcr0 = read_xcr0();

	if (r->nr_threads != r->task.nr_threads || r->threads[0].tid != r->task.pid)
		return bad(r, "task %d: thread table does not match (%u threads, first %d)",
			   r->task.pid, r->nr_threads, r->threads[0].tid);
	for (uint32_t i = 0; i < r->nr_threads; i++) {
		struct cryo_img_thread *th = &r->threads[i];
		uint64_t xfeatures;

		th->comm[sizeof(th->comm) - 1] = 0;
		if (th->pid != r->task.pid || th->tid <= 0 || th->tid >= pid_max)
			return bad(r, "thread %d does not belong to task %d", th->tid, r->task.pid);
		for (uint32_t j = 0; j < i; j++)
			if (r->threads[j].tid == th->tid)
				return bad(r, "thread %d listed twice", th->tid);
		if (th->xstate_size < XSAVE_HEADER_OFFSET + 64 ||
		    th->xstate_size > XSTATE_MAX_BYTES || th->xstate_offset > r->xstate_size ||
		    th->xstate_size > r->xstate_size - th->xstate_offset)
			return bad(r, "thread %d: XSAVE area (%u bytes at %llu) outside the saved %u",
				   th->tid, th->xstate_size, (unsigned long long)th->xstate_offset,
				   r->xstate_size);
		memcpy(&xfeatures, r->xstate + th->xstate_offset + XSAVE_HEADER_OFFSET,
		       sizeof(xfeatures));
		if (xfeatures & ~xcr0)
			return cryo_fail(CRYO_EUNSUPP,
					 "image %s: thread %d uses CPU state components %#llx this "
					 "CPU does not have (it has %#llx)", r->opts->image, th->tid,
					 (unsigned long long)(xfeatures & ~xcr0),
					 (unsigned long long)xcr0);
	}
	return 0;
}

static int validate_task(struct restore_ctx *r)
{
	struct cryo_img_task *t = &r->task;
	struct buf b = { 0 };
	long pid_max = 4194304;
	int ret;

	if (read_whole_file("/proc/sys/kernel/pid_max", &b) == 0)
		pid_max = atol(b.data);
	buf_free(&b);
	if (t->pid <= 0 || t->pid >= pid_max)
		return bad(r, "task PID %d out of range (pid_max %ld)", t->pid, pid_max);
	if (t->nr_threads < 1 || t->nr_threads > MAX_THREADS)
		return bad(r, "task %d: %u threads", t->pid, t->nr_threads);
	ret = validate_threads(r, pid_max);
	if (ret)
		return ret;
	t->comm[sizeof(t->comm) - 1] = 0;
	if (t->auxv_words > CRYO_AUXV_WORDS || t->auxv_words % 2)
		return bad(r, "task %d: bad auxv length %u", t->pid, t->auxv_words);
	if (t->ngroups > CRYO_MAX_GROUPS)
		return bad(r, "task %d: %u supplementary groups", t->pid, t->ngroups);
	for (int i = 0; i < CRYO_RLIM_NLIMITS; i++)
		if (t->rlim_cur[i] > t->rlim_max[i])
			return bad(r, "task %d: rlimit %d soft limit above hard limit", t->pid, i);
	if (!(r->exe_path = str_or_bad(r, t->exe_path, "exe")) ||
	    !(r->cwd_path = str_or_bad(r, t->cwd_path, "cwd")) ||
	    !(r->root_path = str_or_bad(r, t->root_path, "root")))
		return CRYO_EIMAGE;
	if (r->exe_path[0] != '/' || r->cwd_path[0] != '/' || r->root_path[0] != '/')
		return bad(r, "task %d: exe, cwd and root must be absolute paths", t->pid);
	if (t->pdeathsig < 0 || t->pdeathsig > CRYO_NSIG)
		return bad(r, "task %d: bad parent-death signal %d", t->pid, t->pdeathsig);
	for (uint32_t i = 0; i < r->nr_sigs; i++) {
		int signo, known = r->sigs[i].tid == 0;

		memcpy(&signo, r->sigs[i].info + SI_SIGNO_OFFSET, sizeof(signo));
		if (signo < 1 || signo > CRYO_NSIG)
			return bad(r, "pending signal %u: bad signal number %d", i, signo);
		for (uint32_t j = 0; j < r->nr_threads && !known; j++)
			known = r->sigs[i].tid == r->threads[j].tid;
		if (!known)
			return bad(r, "pending signal %u: unknown thread %d", i, r->sigs[i].tid);
	}
	return 0;
}

static int validate_fds(struct restore_ctx *r)
{
	for (uint32_t i = 0; i < r->nr_fds; i++) {
		struct cryo_img_fd *f = &r->fds[i];
		const char *path = str_or_bad(r, f->path, "fd path");

		if (!path)
			return CRYO_EIMAGE;
		if (f->fd < 0 || f->fd >= MAX_FD_NUMBER || (i && f->fd <= r->fds[i - 1].fd))
			return bad(r, "fd table: fd %d out of range or out of order", f->fd);
		if (f->pid != r->task.pid)
			return bad(r, "fd %d belongs to unknown task %d", f->fd, f->pid);
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
		case CRYO_FD_DUP: {
			int found = 0;
			for (uint32_t j = 0; j < i; j++)
				if (r->fds[j].fd == f->dup_of && r->fds[j].kind != CRYO_FD_DUP)
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

static int validate_runs(struct restore_ctx *r, uint32_t vi)
{
	struct restore_vma *v = &r->vmas[vi];
	uint64_t pages = 0, prev_end = v->img.start, section_pages = 0;
	long pm = imgr_find(r->img, CRYO_SEC_PAGEMAP, vi, 0, 0);

	if (pm < 0) {
		if (v->img.nr_pages_dumped)
			return bad(r, "memory area %lx-%lx: page list missing",
				   (unsigned long)v->img.start, (unsigned long)v->img.end);
		return 0;
	}
	v->runs = imgr_load_table(r->img, pm, sizeof(*v->runs), &v->nr_runs);
	if (!v->runs)
		return CRYO_EIMAGE;
	for (uint32_t i = 0; i < v->nr_runs; i++) {
		const struct cryo_img_page_run *run = &v->runs[i];

		if (run->vaddr % PAGE_SIZE_BYTES || run->vaddr < prev_end || run->nr_pages == 0 ||
		    run->nr_pages > (v->img.end - run->vaddr) / PAGE_SIZE_BYTES)
			return bad(r, "memory area %lx-%lx: page run %u out of the area",
				   (unsigned long)v->img.start, (unsigned long)v->img.end, i);
		prev_end = run->vaddr + run->nr_pages * PAGE_SIZE_BYTES;
		pages += run->nr_pages;
	}
	if (pages != v->img.nr_pages_dumped)
		return bad(r, "memory area %lx-%lx: %llu pages listed, %llu announced",
			   (unsigned long)v->img.start, (unsigned long)v->img.end,
			   (unsigned long long)pages, (unsigned long long)v->img.nr_pages_dumped);
	/* the PAGES sections of this area follow its page list */
	v->first_pages_section = pm + 1;
	for (size_t s = pm + 1; s < imgr_nr_sections(r->img); s++) {
		const struct cryo_img_index_entry *e = imgr_section(r->img, s);

		if (e->type == CRYO_SEC_PAD)
			continue;
		if (e->type != CRYO_SEC_PAGES || e->id != vi)
			break;
		if (e->length != (uint64_t)e->entry_count * PAGE_SIZE_BYTES ||
		    imgr_payload_offset(r->img, s) % PAGE_SIZE_BYTES)
			return bad(r, "memory area %lx-%lx: malformed page data section",
				   (unsigned long)v->img.start, (unsigned long)v->img.end);
		section_pages += e->entry_count;
		v->nr_pages_sections = s - v->first_pages_section + 1;
	}
	if (section_pages != pages)
		return bad(r, "memory area %lx-%lx: %llu pages of data for %llu listed",
			   (unsigned long)v->img.start, (unsigned long)v->img.end,
			   (unsigned long long)section_pages, (unsigned long long)pages);
	return 0;
}

static int validate_vmas(struct restore_ctx *r, struct cryo_img_vma *img, uint32_t n)
{
	uint64_t prev_end = 0;

	r->vmas = xzalloc(n * sizeof(*r->vmas));
	if (!r->vmas)
		return CRYO_EINTERNAL;
	r->nr_vmas = n;
	for (uint32_t i = 0; i < n; i++) {
		struct restore_vma *v = &r->vmas[i];
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
		if (v->img.kind == CRYO_VMA_ANON_SHARED && v->img.pgoff)
			return cryo_fail(CRYO_EUNSUPP, "image %s: shared anonymous area %lx-%lx at "
					 "offset %#llx: split shared anonymous mappings are not "
					 "supported yet", r->opts->image, (unsigned long)v->img.start,
					 (unsigned long)v->img.end, (unsigned long long)v->img.pgoff);
		if (v->img.kind >= CRYO_VMA_VVAR && v->img.nr_pages_dumped)
			return bad(r, "memory area %s has page data", v->name);
		ret = validate_runs(r, i);
		if (ret)
			return ret;
		prev_end = v->img.end;
	}
	return 0;
}

/* The kernel's vDSO areas must match ours in size and relative position. */
static int validate_vdso(struct restore_ctx *r)
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

		for (uint32_t j = 0; j < r->nr_vmas; j++)
			if (r->vmas[j].img.kind == special[i].kind)
				img = &r->vmas[j];
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

/* Every PID and TID of the image must be free; name all that are not. */
static int check_pid_free(struct restore_ctx *r)
{
	struct buf msg = { 0 };
	int taken = 0;

	for (uint32_t i = 0; i < r->nr_threads; i++) {
		pid_t id = r->threads[i].tid;
		char comm[64];

		if (proc_task_state(id) == 0)
			continue;
		proc_comm(proc_tgid(id), comm, sizeof(comm));
		buf_printf(&msg, "%s%s %d is in use by process %d (%s)", taken ? "; " : "",
			   i ? "TID" : "PID", id, proc_tgid(id), comm);
		taken++;
	}
	if (!taken)
		return 0;
	cryo_log("restore: %s", msg.data);
	buf_free(&msg);
	return CRYO_ECONFLICT;
}

int restore_validate(struct restore_ctx *r)
{
	struct cryo_img_task *task;
	struct cryo_img_vma *vmas;
	uint32_t n;
	long xs;
	uint64_t xlen;
	int ret;

	ret = imgr_open(&r->img, r->opts->image);
	if (ret)
		return ret;
	task = load_single(r, CRYO_SEC_TASK, "task", sizeof(*task), &n);
	if (!task)
		return CRYO_EIMAGE;
	if (n != 1) {
		free(task);
		return bad(r, "%u tasks (process trees need a newer cryo)", n);
	}
	r->task = *task;
	free(task);
	r->threads = load_single(r, CRYO_SEC_THREAD, "thread", sizeof(*r->threads),
				 &r->nr_threads);
	if (!r->threads)
		return CRYO_EIMAGE;
	if (r->nr_threads == 0)
		return bad(r, "no threads");
	xs = imgr_find(r->img, CRYO_SEC_XSTATE, 0, 1, 0);
	if (xs < 0)
		return bad(r, "no XSTATE section");
	r->xstate = imgr_load_blob(r->img, xs, &xlen);
	if (!r->xstate)
		return CRYO_EIMAGE;
	r->xstate_size = xlen;
	r->sigs = load_single(r, CRYO_SEC_SIGINFO, "signal", sizeof(*r->sigs), &r->nr_sigs);
	if (!r->sigs)
		return CRYO_EIMAGE;
	if (r->nr_sigs > MAX_PENDING_SIGNALS)
		return bad(r, "%u pending signals", r->nr_sigs);
	r->fds = load_single(r, CRYO_SEC_FD, "descriptor", sizeof(*r->fds), &r->nr_fds);
	if (!r->fds)
		return CRYO_EIMAGE;
	vmas = load_single(r, CRYO_SEC_VMA, "memory area", sizeof(*vmas), &n);
	if (!vmas)
		return CRYO_EIMAGE;
	ret = validate_vmas(r, vmas, n);
	free(vmas);
	if (!ret)
		ret = validate_task(r);
	if (!ret)
		ret = validate_fds(r);
	if (!ret)
		ret = validate_vdso(r);
	if (!ret)
		ret = check_pid_free(r);
	if (!ret && r->task.sid != r->task.pid && getsid(0) != r->task.sid)
		ret = cryo_fail(CRYO_EUNSUPP,
				"restore: task %d belonged to session %d, which is not cryo's (%d): "
				"restore it from a process of that session, or checkpoint a process "
				"that leads its own session (setsid)", r->task.pid, r->task.sid,
				getsid(0));
	return ret;
}
