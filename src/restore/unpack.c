/*
 * Phase 40's helper: page data read (and decompressed) by several threads.
 *
 * A compressed area's chunks (ZPAGES sections, each on its own), and the
 * pre-copied data of the whole process (plain or compressed), are shared
 * out as jobs to threads of the process being restored, which read, check
 * and decompress them straight into the premapped areas. With one CPU, or
 * if no thread can be started, the calling thread does every job. Those threads must not
 * take a TID the image needs (the restorer creates the image's threads
 * later with exactly their TIDs): each is created with clone3 set_tid at an
 * ID the image does not use, and is gone, its TID free again, before the
 * restorer runs. They have no C library state of their own (no TLS, no
 * malloc, no errno): they make raw system calls and only compute.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/futex.h>

#include "image/codec.h"
#include "restore/restore.h"
#include "util/util.h"

#define MAX_WORKERS 7
#define WORKER_STACK_BYTES (256 * 1024)
#define ZIN_BYTES (2 * (size_t)CRYO_ZPAGES_MAX_RAW)
#define TID_ATTEMPTS 256
/* plain data is read in pieces, each populated first and checksummed while in the cache */
#define PLAIN_PIECE_BYTES (1ul << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum job_error {
	JOB_OK,
	JOB_READ,		/* err: errno */
	JOB_CRC,
	JOB_DECOMPRESS,
};

/*
 * One page data section (ZPAGES, or plain PAGES), and where its pages go:
 * from byte run_off of run `run` of v's page list on. v is the area being
 * filled, or (pre-copy, p set) the process's pre-copy list, whose pages go
 * to each area of p that takes them.
 */
struct unpack_job {
	const struct restore_vma *v;
	const struct restore_proc *p;
	int (*takes)(const struct restore_vma *area);
	uint64_t file_off;	/* its data (compressed: after the header) */
	uint64_t comp_len, raw_len;	/* plain: raw_len only */
	int plain;
	uint32_t run;
	uint64_t run_off;
	uint32_t sec, crc_seed, crc_want;
	int codec;
	int error, err;
};

struct unpack_pool;

struct unpack_worker {
	struct unpack_pool *pool;
	uint8_t *zin, *zraw;	/* compressed input; output that is scattered */
	struct codec_dctx *dctx;
	uint8_t *stack;
	pid_t tid;
	int32_t alive;		/* CLONE_CHILD_CLEARTID: the kernel zeroes it at exit */
};

struct unpack_pool {
	int img_fd;
	struct unpack_job *jobs;
	uint32_t count;
	uint64_t ticket;	/* batch << 32 | next job to take */
	uint32_t batch;		/* futex: workers sleep here between batches */
	uint32_t done;		/* futex: jobs of the batch finished */
	uint32_t quit;
	int nr_workers;
	struct unpack_worker w[MAX_WORKERS + 1];	/* [0]: the calling thread */
};

/* ------------------------------------------------ raw calls, for the workers */

static inline long raw4(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static void futex_wait(uint32_t *word, uint32_t seen)
{
	raw4(SYS_futex, (long)word, FUTEX_WAIT_PRIVATE, seen, 0);
}

/* CLONE_CHILD_CLEARTID wakes with a shared futex: wait on the same kind */
static void futex_wait_shared(int32_t *word, int32_t seen)
{
	raw4(SYS_futex, (long)word, FUTEX_WAIT, seen, 0);
}

static void futex_wake(uint32_t *word)
{
	raw4(SYS_futex, (long)word, FUTEX_WAKE_PRIVATE, INT32_MAX, 0);
}

struct clone_args_raw {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/*
 * clone3 for a worker: the child starts on its own stack, calls fn(arg)
 * and exits the thread. fn and arg travel in callee-saved registers, which
 * the child inherits.
 */
long unpack_clone_thread(struct clone_args_raw *ca, uint64_t size, void *arg,
			 void (*fn)(void *));
__asm__(".text\n"
	".type unpack_clone_thread, @function\n"
	"unpack_clone_thread:\n"
	"	push %r12\n"
	"	push %r13\n"
	"	mov %rdx, %r12\n"
	"	mov %rcx, %r13\n"
	"	mov $435, %eax\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	xor %ebp, %ebp\n"
	"	mov %r12, %rdi\n"
	"	call *%r13\n"
	"	mov $60, %eax\n"	/* exit: this thread only */
	"	xor %edi, %edi\n"
	"	syscall\n"
	"	ud2\n"
	"1:	pop %r13\n"
	"	pop %r12\n"
	"	ret\n"
	".size unpack_clone_thread, .-unpack_clone_thread\n");

/* ------------------------------------------------------------------- jobs */

static int read_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		long r = raw4(SYS_pread64, fd, (long)p, (long)n, (long)off);

		if (r == -EINTR)
			continue;
		if (r < 0)
			return (int)-r;
		if (r == 0)
			return EIO;	/* the image shrank since phase 10 */
		p += r;
		n -= r;
		off += r;
	}
	return 0;
}

/* The area of p that holds addr or, if none, the first one above it. */
static const struct restore_vma *area_from(const struct restore_proc *p, uint64_t addr)
{
	uint32_t lo = 0, hi = p->nr_vmas;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->vmas[mid].img.end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->nr_vmas ? &p->vmas[lo] : NULL;
}

/* Where [addr, addr + n) of the job's pages lands whole, or NULL. */
static uint8_t *dest_of(const struct unpack_job *j, uint64_t addr, uint64_t n)
{
	const struct restore_vma *a = j->v;

	if (j->p) {
		a = area_from(j->p, addr);
		if (!a || a->img.start > addr || addr + n > a->img.end || !j->takes(a))
			return NULL;
	}
	return (uint8_t *)(a->premap_addr + (addr - a->img.start));
}

/* Copy the job's pages [addr, addr + n) from src to where they go, if anywhere. */
static void place(const struct unpack_job *j, uint64_t addr, const uint8_t *src, uint64_t n)
{
	if (!j->p) {
		memcpy(dest_of(j, addr, n), src, n);
		return;
	}
	while (n) {
		const struct restore_vma *a = area_from(j->p, addr);
		uint64_t skip, m;

		if (!a || a->img.start >= addr + n)
			return;
		skip = a->img.start > addr ? a->img.start - addr : 0;
		addr += skip;
		src += skip;
		n -= skip;
		m = a->img.end - addr < n ? a->img.end - addr : n;
		if (j->takes(a))
			memcpy((void *)(a->premap_addr + (addr - a->img.start)), src, m);
		addr += m;
		src += m;
		n -= m;
	}
}

/*
 * Where the job's pages from addr on go, for at most *n bytes (shortened
 * to what goes to one place): the premapped area, or NULL for pages that
 * go nowhere (pre-copied pages of an area that does not take them).
 */
static uint8_t *piece_dest(const struct unpack_job *j, uint64_t addr, uint64_t *n)
{
	const struct restore_vma *a = j->v;

	if (j->p) {
		a = area_from(j->p, addr);
		if (!a || a->img.start >= addr + *n)
			return NULL;
		if (a->img.start > addr) {
			*n = a->img.start - addr;
			return NULL;
		}
		if (a->img.end - addr < *n)
			*n = a->img.end - addr;
		if (!j->takes(a))
			return NULL;
	}
	return (uint8_t *)(a->premap_addr + (addr - a->img.start));
}

/* Plain data: read piece by piece straight into place, checksummed as it lands. */
static void do_plain_job(struct unpack_pool *u, struct unpack_worker *w, struct unpack_job *j)
{
	const struct cryo_img_page_run *runs = j->v->runs;
	uint64_t off = j->run_off, left = j->raw_len, file_off = j->file_off;
	uint32_t crc = 0;

	for (uint32_t i = j->run; left; i++, off = 0) {
		uint64_t addr = runs[i].vaddr + off;
		uint64_t in_run = runs[i].nr_pages * PAGE_SIZE_BYTES - off;

		if (in_run > left)
			in_run = left;
		left -= in_run;
		while (in_run) {
			uint64_t n = in_run < PLAIN_PIECE_BYTES ? in_run : PLAIN_PIECE_BYTES;
			uint8_t *dst = piece_dest(j, addr, &n);

			if (dst)
				raw4(SYS_madvise, (long)dst, (long)n, MADV_POPULATE_WRITE, 0);
			else
				dst = w->zin;	/* read for the checksum only */
			j->err = read_all(u->img_fd, dst, n, file_off);
			if (j->err) {
				j->error = JOB_READ;
				return;
			}
			crc = crc32c(crc, dst, n);
			addr += n;
			file_off += n;
			in_run -= n;
		}
	}
	if (crc != j->crc_want)
		j->error = JOB_CRC;
}

static void do_job(struct unpack_pool *u, struct unpack_worker *w, struct unpack_job *j)
{
	const struct cryo_img_page_run *runs = j->v->runs;
	uint64_t start = runs[j->run].vaddr + j->run_off;
	uint8_t *dst = NULL;

	if (j->plain) {
		do_plain_job(u, w, j);
		return;
	}
	j->err = read_all(u->img_fd, w->zin, j->comp_len, j->file_off);
	if (j->err) {
		j->error = JOB_READ;
		return;
	}
	if (crc32c(j->crc_seed, w->zin, j->comp_len) != j->crc_want) {
		j->error = JOB_CRC;
		return;
	}
	/* pages of one run that land in one area: decompress in place */
	if (j->run_off + j->raw_len <= runs[j->run].nr_pages * PAGE_SIZE_BYTES)
		dst = dest_of(j, start, j->raw_len);
	if (dst)	/* allocating in bulk is much cheaper than a fault per page */
		raw4(SYS_madvise, (long)dst, j->raw_len, MADV_POPULATE_WRITE, 0);
	if (codec_decompress_in(w->dctx, j->codec, dst ? dst : w->zraw, j->raw_len, w->zin,
				j->comp_len)) {
		j->error = JOB_DECOMPRESS;
		return;
	}
	if (dst)
		return;
	/* the section spans runs (zero pages were left out between them) or areas */
	uint64_t off = j->run_off, left = j->raw_len;
	const uint8_t *src = w->zraw;

	for (uint32_t i = j->run; left; i++, off = 0) {
		uint64_t room = runs[i].nr_pages * PAGE_SIZE_BYTES - off;
		uint64_t n = left < room ? left : room;

		place(j, runs[i].vaddr + off, src, n);
		src += n;
		left -= n;
	}
}

static struct unpack_job *take_job(struct unpack_pool *u, uint32_t batch)
{
	uint64_t t = __atomic_load_n(&u->ticket, __ATOMIC_ACQUIRE);

	for (;;) {
		if ((uint32_t)(t >> 32) != batch ||
		    (uint32_t)t >= __atomic_load_n(&u->count, __ATOMIC_RELAXED))
			return NULL;
		/* a stale batch number makes this fail: jobs are only taken in their batch */
		if (__atomic_compare_exchange_n(&u->ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return &u->jobs[(uint32_t)t];
	}
}

static void run_jobs(struct unpack_pool *u, struct unpack_worker *w, uint32_t batch)
{
	struct unpack_job *j;

	while ((j = take_job(u, batch))) {
		do_job(u, w, j);
		if (__atomic_add_fetch(&u->done, 1, __ATOMIC_ACQ_REL) ==
		    __atomic_load_n(&u->count, __ATOMIC_RELAXED))
			futex_wake(&u->done);
	}
}

static void worker_main(void *arg)
{
	struct unpack_worker *w = arg;
	struct unpack_pool *u = w->pool;
	uint32_t seen = 0;

	for (;;) {
		uint32_t b = __atomic_load_n(&u->batch, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&u->quit, __ATOMIC_ACQUIRE))
			return;
		if (b == seen) {
			futex_wait(&u->batch, seen);
			continue;
		}
		seen = b;
		run_jobs(u, w, b);
	}
}

/* ----------------------------------------------------------- the pool */

static int buffers_new(struct unpack_worker *w)
{
	void *p = mmap(NULL, ZIN_BYTES + CRYO_ZPAGES_MAX_RAW, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	w->zin = p;
	w->zraw = w->zin + ZIN_BYTES;
	w->dctx = codec_dctx_new();
	return w->dctx ? 0 : -ENOMEM;
}

static void buffers_free(struct unpack_worker *w)
{
	if (w->zin)
		munmap(w->zin, ZIN_BYTES + CRYO_ZPAGES_MAX_RAW);
	if (w->stack)
		munmap(w->stack, WORKER_STACK_BYTES);
	codec_dctx_free(w->dctx);
	w->zin = w->zraw = w->stack = NULL;
	w->dctx = NULL;
}

static int tid_in_image(const struct restore_ctx *r, pid_t tid)
{
	for (uint32_t i = 0; i < r->nr_threads; i++)
		if (r->threads[i].tid == tid)
			return 1;
	return 0;
}

/* Start worker w at a free ID below *next that the image does not use. */
static int start_worker(const struct restore_ctx *r, struct unpack_worker *w, pid_t *next)
{
	sigset_t all, old;
	long ret = -EEXIST;

	w->stack = mmap(NULL, WORKER_STACK_BYTES, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (w->stack == MAP_FAILED) {
		w->stack = NULL;
		return -errno;
	}
	/* the thread starts with every signal blocked: it must never run a handler */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < TID_ATTEMPTS && ret == -EEXIST && *next > 300; i++) {
		pid_t tid = (*next)--;
		struct clone_args_raw ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				 CLONE_SYSVSEM | CLONE_CHILD_CLEARTID | CLONE_UNTRACED,
			.child_tid = (uint64_t)&w->alive,
			.stack = (uint64_t)w->stack,
			.stack_size = WORKER_STACK_BYTES,
			.set_tid = (uint64_t)&tid,
			.set_tid_size = 1,
		};

		if (tid_in_image(r, tid))
			continue;
		w->alive = 1;
		ret = unpack_clone_thread(&ca, sizeof(ca), w, worker_main);
		if (ret > 0)
			w->tid = tid;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret > 0 ? 0 : (int)ret;
}

/* Stop every worker and wait until its TID is free again. */
static void pool_stop(struct unpack_pool *u)
{
	__atomic_store_n(&u->quit, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&u->batch, 1, __ATOMIC_RELEASE);
	futex_wake(&u->batch);
	for (int i = 1; i <= u->nr_workers; i++) {
		struct unpack_worker *w = &u->w[i];
		int32_t a;

		while ((a = __atomic_load_n(&w->alive, __ATOMIC_ACQUIRE)))
			futex_wait_shared(&w->alive, a);
		/* cleared at exit_mm; the TID is released a moment later */
		while (raw4(SYS_tgkill, getpid(), w->tid, 0, 0) == 0)
			sched_yield();
	}
	for (int i = 0; i <= u->nr_workers; i++)
		buffers_free(&u->w[i]);
}

struct unpack_pool *unpack_start(const struct restore_ctx *r)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct unpack_pool *u;
	long pid_max = 0;
	pid_t next;
	FILE *f;

	f = fopen("/proc/sys/kernel/pid_max", "re");
	if (f) {
		if (fscanf(f, "%ld", &pid_max) != 1)
			pid_max = 0;
		fclose(f);
	}
	if (pid_max < 1024)
		cpus = 1;	/* no room to step around the image's IDs: no threads */
	u = xzalloc(sizeof(*u));
	if (!u)
		return NULL;
	u->img_fd = r->img_fd;
	if (buffers_new(&u->w[0])) {
		buffers_free(&u->w[0]);
		free(u);
		return NULL;
	}
	/* from the top of the ID space down: where the image's IDs are least likely */
	next = (pid_t)(pid_max - 1);
	for (long i = 1; i < cpus && i <= MAX_WORKERS; i++) {
		struct unpack_worker *w = &u->w[i];
		int ret;

		w->pool = u;
		ret = buffers_new(w);
		if (!ret)
			ret = start_worker(r, w, &next);
		if (ret) {
			/* fewer threads (or none): the work is only slower */
			cryo_debug("restore: decompression thread %ld not started: %s", i,
				   strerror(-ret));
			buffers_free(w);
			break;
		}
		u->nr_workers++;
	}
	cryo_debug("restore: process %d decompresses on %d threads", r->me->task.pid,
		   u->nr_workers + 1);
	return u;
}

void unpack_stop(struct unpack_pool *u)
{
	if (!u)
		return;
	pool_stop(u);
	free(u);
}

static int fail_area(const struct restore_ctx *r, const struct restore_vma *v,
		     const char *what, int err)
{
	if (v == &r->me->precopy)
		return cryo_fail(CRYO_ERESTORE, "restore: process %d: pre-copied pages: %s: %s",
				 r->me->task.pid, what, strerror(err));
	return cryo_fail(CRYO_ERESTORE, "restore: memory area %lx-%lx (%s): %s: %s",
			 (unsigned long)v->img.start, (unsigned long)v->img.end,
			 v->name[0] ? v->name : "anonymous", what, strerror(err));
}

int unpack_area_wanted(const struct restore_ctx *r, const struct restore_vma *v)
{
	uint32_t n = 0;

	for (uint32_t s = v->first_pages_section; s < v->first_pages_section + v->nr_pages_sections;
	     s++) {
		uint32_t type = imgr_section(r->img, s)->type;

		n += type == CRYO_SEC_PAGES || type == CRYO_SEC_ZPAGES;
	}
	return n > 1;
}

/* The job of page data section sec, its pages from byte run_off of run `run` of v on. */
static int plan_job(struct restore_ctx *r, const struct restore_vma *v, uint32_t sec,
		    uint32_t run, uint64_t run_off, struct unpack_job *j)
{
	const struct cryo_img_index_entry *e = imgr_section(r->img, sec);
	uint64_t off = imgr_payload_offset(r->img, sec);
	struct cryo_zpages_header zh;
	int ret;

	if (run >= v->nr_runs)
		return fail_area(r, v, "page data longer than its page list", EINVAL);
	if (e->type == CRYO_SEC_PAGES) {
		/* phase 10 checked that the length is whole pages, matching the list */
		*j = (struct unpack_job){
			.v = v, .file_off = off, .raw_len = e->length, .plain = 1,
			.run = run, .run_off = run_off, .sec = sec,
			.crc_want = imgr_payload_crc(r->img, sec),
		};
		return 0;
	}
	/* lengths were checked in phase 10, but the file may have changed since */
	if (e->length <= sizeof(zh) || e->length - sizeof(zh) > ZIN_BYTES)
		return fail_area(r, v, "reading its compressed pages", EINVAL);
	ret = pread_full(r->img_fd, &zh, sizeof(zh), off);
	if (ret)
		return fail_area(r, v, "reading its compressed pages", -ret);
	if (!zh.raw_len || zh.raw_len > CRYO_ZPAGES_MAX_RAW)
		return fail_area(r, v, "decompressing its pages", EINVAL);
	*j = (struct unpack_job){
		.v = v, .file_off = off + sizeof(zh),
		.comp_len = e->length - sizeof(zh), .raw_len = zh.raw_len,
		.run = run, .run_off = run_off, .sec = sec,
		.crc_seed = crc32c(0, &zh, sizeof(zh)),
		.crc_want = imgr_payload_crc(r->img, sec), .codec = (int)zh.codec,
	};
	return 0;
}

/* Move (run, run_off) on by n bytes of v's page list; -1 if the list ends first. */
static int advance(const struct restore_vma *v, uint32_t *run, uint64_t *run_off, uint64_t n)
{
	while (n) {
		uint64_t room;

		if (*run >= v->nr_runs)
			return -1;
		room = v->runs[*run].nr_pages * PAGE_SIZE_BYTES - *run_off;
		if (n < room) {
			*run_off += n;
			return 0;
		}
		n -= room;
		(*run)++;
		*run_off = 0;
	}
	return 0;
}

/* Run the jobs on every thread; report the first failure in file order. */
static int run_batch(struct unpack_pool *u, struct restore_ctx *r, struct unpack_job *jobs,
		     uint32_t count)
{
	uint32_t batch, d;
	int ret = 0;

	/* publish: jobs and count before the ticket that makes them takeable */
	u->jobs = jobs;
	__atomic_store_n(&u->count, count, __ATOMIC_RELAXED);
	__atomic_store_n(&u->done, 0, __ATOMIC_RELAXED);
	batch = __atomic_load_n(&u->batch, __ATOMIC_RELAXED) + 1;
	__atomic_store_n(&u->ticket, (uint64_t)batch << 32, __ATOMIC_RELEASE);
	__atomic_store_n(&u->batch, batch, __ATOMIC_RELEASE);
	futex_wake(&u->batch);
	run_jobs(u, &u->w[0], batch);
	while ((d = __atomic_load_n(&u->done, __ATOMIC_ACQUIRE)) != count)
		futex_wait(&u->done, d);
	for (uint32_t i = 0; i < count && !ret; i++) {
		const struct unpack_job *j = &jobs[i];

		if (j->error == JOB_READ)
			ret = fail_area(r, j->v, "reading its pages from the image", j->err);
		else if (j->error == JOB_CRC)
			ret = imgr_payload_crc_mismatch(r->img, j->sec);
		else if (j->error == JOB_DECOMPRESS)
			ret = fail_area(r, j->v, "decompressing its pages", EINVAL);
	}
	return ret;
}

int unpack_area(struct unpack_pool *u, struct restore_ctx *r, struct restore_vma *v)
{
	struct unpack_job *jobs = calloc(v->nr_pages_sections, sizeof(*jobs));
	uint32_t count = 0, run = 0;
	uint64_t run_off = 0;
	int ret = 0;

	if (!jobs)
		return fail_area(r, v, "allocating decompression jobs", ENOMEM);
	for (uint32_t s = 0; s < v->nr_pages_sections && !ret; s++) {
		uint32_t sec = v->first_pages_section + s;
		uint32_t type = imgr_section(r->img, sec)->type;

		if (type != CRYO_SEC_PAGES && type != CRYO_SEC_ZPAGES)
			continue;
		ret = plan_job(r, v, sec, run, run_off, &jobs[count]);
		if (!ret && advance(v, &run, &run_off, jobs[count].raw_len))
			ret = fail_area(r, v, "page data longer than its page list", EINVAL);
		count++;
	}
	if (!ret && run < v->nr_runs)
		ret = fail_area(r, v, "page data ends early", EINVAL);
	if (!ret)
		ret = run_batch(u, r, jobs, count);
	free(jobs);
	return ret;
}

int unpack_precopy(struct unpack_pool *u, struct restore_ctx *r,
		   int (*takes)(const struct restore_vma *area))
{
	const struct restore_proc *p = r->me;
	const struct restore_vma *pre = &p->precopy;
	struct unpack_job *jobs = calloc(p->nr_precopy_secs, sizeof(*jobs));
	int ret = 0;

	if (!jobs)
		return fail_area(r, pre, "allocating decompression jobs", ENOMEM);
	for (uint32_t k = 0; k < p->nr_precopy_secs && !ret; k++) {
		const struct restore_page_section *ps = &p->precopy_secs[k];
		uint32_t lo = 0, hi = pre->nr_runs;

		/* the run holding the section's first page (phase 10 matched them) */
		while (hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (p->precopy_run_page[mid] <= ps->first_page)
				lo = mid;
			else
				hi = mid;
		}
		ret = plan_job(r, pre, ps->index, lo,
			       (ps->first_page - p->precopy_run_page[lo]) * PAGE_SIZE_BYTES,
			       &jobs[k]);
		if (ret)
			break;
		if (jobs[k].raw_len != ps->pages * PAGE_SIZE_BYTES ||
		    ps->first_page - p->precopy_run_page[lo] >= pre->runs[lo].nr_pages) {
			ret = fail_area(r, pre, "decompressing its pages", EINVAL);
			break;
		}
		jobs[k].p = p;
		jobs[k].takes = takes;
	}
	if (!ret && p->nr_precopy_secs) {
		uint32_t run = jobs[p->nr_precopy_secs - 1].run;
		uint64_t off = jobs[p->nr_precopy_secs - 1].run_off;

		/* the last section must end within the list, like every other */
		if (advance(pre, &run, &off, jobs[p->nr_precopy_secs - 1].raw_len))
			ret = fail_area(r, pre, "page data longer than its page list", EINVAL);
	}
	if (!ret)
		ret = run_batch(u, r, jobs, p->nr_precopy_secs);
	free(jobs);
	return ret;
}
