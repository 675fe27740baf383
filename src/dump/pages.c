/*
 * Copy the pages chosen by collect_mm.c into the image. For each area: a
 * PAGEMAP section listing its runs of pages, then PAGES sections (at most
 * one chunk each, page aligned in the file from 64 KiB on) with their data
 * in run order.
 * Memory is read with one process_vm_readv per chunk; areas the task cannot
 * read (PROT_NONE...) through /proc/PID/mem, which may; shared anonymous
 * memory through its shmem file so holes are never populated. Reading,
 * compressing and writing overlap in threads (struct page_pipe).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dump/dump.h"
#include "image/codec.h"
#include "image/image.h"
#include "util/util.h"

/* Uncompressed: a ring of three 8 MiB chunks (one read, one written, one spare). */
#define CHUNK_BYTES (8ul << 20)
#define NR_PLAIN_SLOTS 3
/*
 * Compressed: smaller chunks, so that a chunk per compression thread plus
 * one being read, one being written and a spare fit in PIPE_BUDGET with
 * their output buffers and contexts (peak RSS <= 64 MiB). zstd -1 and lz4
 * look back 512 KiB and 64 KiB: 2 MiB chunks cost no ratio.
 */
#define ZCHUNK_BYTES (2ul << 20)
#define MAX_WORKERS 8
#define MAX_SLOTS (MAX_WORKERS + 3)
#define PIPE_BUDGET (40ul << 20)
#define MAX_IOV 1024

static uint64_t pages_id(const struct dump_ctx *c, int vma_index)
{
	return (uint64_t)c->pid << 32 | (uint32_t)vma_index;
}

/* What the next chunk will read: ranges of one area of the target. */
struct chunk_plan {
	struct iovec remote[MAX_IOV];
	int nr_iov;
	size_t len;
};

enum slot_state {
	SLOT_FREE,
	SLOT_QUEUED,		/* read, waiting for a compression thread */
	SLOT_COMPRESSING,
	SLOT_READY,		/* for the writer thread */
};

struct worker {
	struct page_pipe *pp;
	struct codec *codec;
	pthread_t thread;
};

/*
 * Reading the target, compressing and writing the image overlap: the
 * calling thread reads chunks (process_vm_readv), drops zero pages and, for
 * uncompressed images, checksums them; compression threads (compressed
 * images only) each take the oldest chunk not yet taken and compress it
 * with a context of their own; the writer thread writes the chunks strictly
 * in the order they were read, from a ring of slots. While the pipe runs
 * only the writer thread touches the image writer (page_pipe_drain() hands
 * it back). The tree's codec only serves as the model of the threads'
 * contexts. The threads inherit cryo's mask of deferred signals.
 */
struct page_pipe {
	struct dump_tree *t;
	struct img_writer *w;
	uint8_t *mem;
	size_t mem_len;
	size_t chunk_bytes, zcap;	/* zcap: a slot's output buffer */
	struct page_chunk slot[MAX_SLOTS];
	uint8_t state[MAX_SLOTS];	/* enum slot_state */
	int nr_slots;
	unsigned head, count;	/* oldest slot in use, number in use */
	int err;		/* first failure of a pipe thread */
	int closing;		/* no more chunks will come */
	int abort;		/* drop what is queued */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* broadcast on every change of the above */
	pthread_t writer;
	int writer_started;
	struct worker workers[MAX_WORKERS];
	int nr_workers;
	uint64_t reader_wait_ns, writer_wait_ns;	/* for CRYO_DEBUG */
};

size_t page_pipe_chunk_bytes(const struct page_pipe *pp)
{
	return pp->chunk_bytes;
}

static int read_chunk(struct dump_ctx *c, int vma_index, const struct chunk_plan *pl,
		      uint8_t *buf)
{
	const struct cryo_img_vma *v = &c->img_vmas[vma_index];
	int src_fd = c->vma_src_fds[vma_index];
	size_t done = 0;

	if (src_fd < 0 && (v->prot & PROT_READ)) {
		struct iovec local = { buf, pl->len };
		ssize_t n = process_vm_readv(c->pid, &local, 1, pl->remote, pl->nr_iov, 0);
		if (n == (ssize_t)pl->len)
			return 0;
		/* fall through to the slower path, which reads what readv could not */
	}
	for (int i = 0; i < pl->nr_iov; i++) {
		uint64_t addr = (uint64_t)pl->remote[i].iov_base;
		int ret;

		if (src_fd >= 0)
			ret = pread_full(src_fd, buf + done, pl->remote[i].iov_len,
					 v->pgoff + (addr - v->start));
		else
			ret = pread_full(c->mem_fd, buf + done, pl->remote[i].iov_len, addr);
		if (ret)
			return cryo_fail(CRYO_EINTERNAL,
					 "process %d: reading memory %lx-%lx: %s", c->pid,
					 (unsigned long)addr,
					 (unsigned long)(addr + pl->remote[i].iov_len), strerror(-ret));
		done += pl->remote[i].iov_len;
	}
	return 0;
}

/* Into out: a ZPAGES payload (header, then the data compressed); its length or 0. */
static size_t compress_to(struct dump_tree *t, struct codec *codec, uint8_t *out, size_t cap,
			  const uint8_t *buf, size_t len)
{
	struct cryo_zpages_header h = { 0 };
	size_t n = codec_compress(codec, out + sizeof(h), cap - sizeof(h), buf, len);

	if (!n)
		return 0;
	h.codec = t->codec_id;
	h.raw_len = len;
	memcpy(out, &h, sizeof(h));
	return sizeof(h) + n;
}

/* Stops at the first non-zero word: random data costs a few loads per page. */
int page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE_SIZE_BYTES / sizeof(uint64_t); i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] |
		    q[i + 7])
			return 0;
	return 1;
}

/*
 * Drop the pages of the chunk that read as all zeros (memory touched but
 * never written, or zeroed by the program): they cost no image space, and
 * restore leaves them to the kernel's fresh zero pages. The chunk's data is
 * compacted in place; its page list becomes the runs of what is left.
 */
static int compact_chunk(const struct chunk_plan *pl, struct page_chunk *ch)
{
	size_t in = 0, out = 0;

	ch->kept.nr = 0;
	for (int i = 0; i < pl->nr_iov; i++) {
		uint64_t addr = (uint64_t)pl->remote[i].iov_base;

		for (size_t off = 0; off < pl->remote[i].iov_len; off += PAGE_SIZE_BYTES) {
			if (!page_is_zero(ch->buf + in)) {
				if (out != in)
					memcpy(ch->buf + out, ch->buf + in, PAGE_SIZE_BYTES);
				out += PAGE_SIZE_BYTES;
				if (page_runs_add(&ch->kept, addr + off))
					return CRYO_EINTERNAL;
			}
			in += PAGE_SIZE_BYTES;
		}
	}
	ch->len = out;
	return 0;
}

/* Writer thread: the chunk's page list (PAGEMAP) if it has one, then its data (PAGES or ZPAGES). */
static int write_chunk(struct page_pipe *pp, const struct page_chunk *ch)
{
	int ret = 0;

	if (ch->map)
		ret = imgw_section(pp->w, CRYO_SEC_PAGEMAP, ch->id,
				   sizeof(struct cryo_img_page_run), ch->map->nr, ch->map->runs,
				   (uint64_t)ch->map->nr * sizeof(struct cryo_img_page_run));
	if (ret || !ch->len)
		return ret;
	if (pp->t->codec)
		return imgw_section_crc(pp->w, CRYO_SEC_ZPAGES, ch->id, 0, 0, ch->zbuf, ch->zlen,
					ch->crc);
	return imgw_section_aligned_crc(pp->w, CRYO_SEC_PAGES, ch->id, PAGE_SIZE_BYTES,
					ch->len / PAGE_SIZE_BYTES, ch->buf, ch->len, ch->crc);
}

static void *writer_main(void *arg)
{
	struct page_pipe *pp = arg;

	/*
	 * While the first chunk is read into slot 0, fault in the other slots'
	 * input buffers (in a VM, 2-3 ms per 8 MiB touched the first time):
	 * the reader then finds them ready, and this thread is running on the
	 * other CPU by the time the first chunk comes. (Not the compressed
	 * output buffers: each is filled only as far as its chunk compresses.)
	 */
	if (pp->nr_slots > 1)
		madvise(pp->slot[1].buf, (pp->nr_slots - 1) * pp->chunk_bytes, MADV_POPULATE_WRITE);

	pthread_mutex_lock(&pp->lock);
	for (;;) {
		uint64_t t = now_ns();

		while (!pp->err && !pp->abort && !(pp->count && pp->state[pp->head] == SLOT_READY) &&
		       !(pp->closing && !pp->count))
			pthread_cond_wait(&pp->cond, &pp->lock);
		pp->writer_wait_ns += now_ns() - t;
		if (pp->err || pp->abort || !pp->count)
			break;
		struct page_chunk *ch = &pp->slot[pp->head];

		pthread_mutex_unlock(&pp->lock);
		int ret = write_chunk(pp, ch);
		pthread_mutex_lock(&pp->lock);
		if (ret) {
			if (!pp->err)
				pp->err = ret;
			break;
		}
		pp->state[pp->head] = SLOT_FREE;
		pp->head = (pp->head + 1) % pp->nr_slots;
		pp->count--;
		pthread_cond_broadcast(&pp->cond);
	}
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

/* The oldest chunk waiting for compression, or -1. Called locked. */
static int oldest_queued(const struct page_pipe *pp)
{
	for (unsigned i = 0; i < pp->count; i++) {
		unsigned k = (pp->head + i) % pp->nr_slots;

		if (pp->state[k] == SLOT_QUEUED)
			return (int)k;
	}
	return -1;
}

/* Compression thread: whole chunks, any order; the writer restores the order. */
static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct page_pipe *pp = wk->pp;

	pthread_mutex_lock(&pp->lock);
	for (;;) {
		int k;

		while ((k = oldest_queued(pp)) < 0 && !pp->err && !pp->abort && !pp->closing)
			pthread_cond_wait(&pp->cond, &pp->lock);
		if (k < 0 || pp->err || pp->abort)
			break;
		struct page_chunk *ch = &pp->slot[k];

		pp->state[k] = SLOT_COMPRESSING;
		pthread_mutex_unlock(&pp->lock);
		ch->zlen = compress_to(pp->t, wk->codec, ch->zbuf, pp->zcap, ch->buf, ch->len);
		if (ch->zlen)
			ch->crc = crc32c(0, ch->zbuf, ch->zlen);
		pthread_mutex_lock(&pp->lock);
		if (!ch->zlen) {
			if (!pp->err)
				pp->err = cryo_fail(CRYO_EINTERNAL,
						    "compressing page data (%s) of section %llx failed",
						    codec_name(pp->t->codec_id),
						    (unsigned long long)ch->id);
			break;
		}
		pp->state[k] = SLOT_READY;
		pthread_cond_broadcast(&pp->cond);
	}
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

/*
 * Compression threads: one per CPU, as many as fit in PIPE_BUDGET with
 * their contexts and chunks, at least one: 6 for lz4 and zstd level 1, 2
 * for level 7, 1 from level 9 (whose contexts take 12 MiB and more).
 */
static int nr_workers_for(const struct dump_tree *t)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t slot_bytes = ZCHUNK_BYTES + sizeof(struct cryo_zpages_header) +
			    codec_bound(t->codec, ZCHUNK_BYTES);
	size_t per_worker = slot_bytes + codec_context_bytes(t->codec, ZCHUNK_BYTES);
	int n = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;

	while (n > 1 && 3 * slot_bytes + n * per_worker > PIPE_BUDGET)
		n--;
	return n;
}

static void pipe_stop_threads(struct page_pipe *pp)
{
	pthread_mutex_lock(&pp->lock);
	pp->closing = 1;
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
	if (pp->writer_started)
		pthread_join(pp->writer, NULL);
	pp->writer_started = 0;
	for (int i = 0; i < pp->nr_workers; i++) {
		pthread_join(pp->workers[i].thread, NULL);
		codec_free(pp->workers[i].codec);
	}
	pp->nr_workers = 0;
}

static void pipe_free(struct page_pipe *pp)
{
	pthread_mutex_destroy(&pp->lock);
	pthread_cond_destroy(&pp->cond);
	for (int i = 0; i < pp->nr_slots; i++)
		free(pp->slot[i].kept.runs);
	if (pp->mem)
		munmap(pp->mem, pp->mem_len);
	free(pp);
}

int page_pipe_start(struct page_pipe **ppp, struct dump_tree *t, struct img_writer *w)
{
	struct page_pipe *pp = xzalloc(sizeof(*pp));
	int workers = t->codec ? nr_workers_for(t) : 0;
	size_t in_bytes;
	int err;

	*ppp = NULL;
	if (!pp)
		return CRYO_EINTERNAL;
	pp->t = t;
	pp->w = w;
	pthread_mutex_init(&pp->lock, NULL);
	pthread_cond_init(&pp->cond, NULL);
	pp->chunk_bytes = t->codec ? ZCHUNK_BYTES : CHUNK_BYTES;
	pp->nr_slots = t->codec ? workers + 3 : NR_PLAIN_SLOTS;
	if (t->codec)
		pp->zcap = (sizeof(struct cryo_zpages_header) +
			    codec_bound(t->codec, ZCHUNK_BYTES) + PAGE_SIZE_BYTES - 1) &
			   ~(size_t)(PAGE_SIZE_BYTES - 1);
	in_bytes = pp->nr_slots * pp->chunk_bytes;
	pp->mem_len = in_bytes + pp->nr_slots * pp->zcap;
	pp->mem = mmap(NULL, pp->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (pp->mem == MAP_FAILED) {
		pp->mem = NULL;
		pipe_free(pp);
		return cryo_fail(CRYO_EINTERNAL, "cannot allocate the page buffers");
	}
	for (int i = 0; i < pp->nr_slots; i++) {
		pp->slot[i].buf = pp->mem + i * pp->chunk_bytes;
		if (t->codec)
			pp->slot[i].zbuf = pp->mem + in_bytes + i * pp->zcap;
	}
	for (int i = 0; i < workers; i++) {
		struct worker *wk = &pp->workers[i];

		wk->pp = pp;
		wk->codec = codec_new_like(t->codec);
		if (!wk->codec) {
			err = CRYO_EINTERNAL;
			goto fail;
		}
		err = pthread_create(&wk->thread, NULL, worker_main, wk);
		if (err) {
			codec_free(wk->codec);
			err = cryo_fail(CRYO_EINTERNAL, "cannot start a compression thread: %s",
					strerror(err));
			goto fail;
		}
		pp->nr_workers++;
	}
	err = pthread_create(&pp->writer, NULL, writer_main, pp);
	if (err) {
		err = cryo_fail(CRYO_EINTERNAL, "cannot start the image writer thread: %s",
				strerror(err));
		goto fail;
	}
	pp->writer_started = 1;
	cryo_debug("page pipe: %zu KiB chunks, %d slots, %d compression threads",
		   pp->chunk_bytes >> 10, pp->nr_slots, pp->nr_workers);
	*ppp = pp;
	return 0;
fail:
	pipe_stop_threads(pp);
	pipe_free(pp);
	return err;
}

struct page_chunk *page_pipe_get(struct page_pipe *pp, int *err)
{
	struct page_chunk *ch = NULL;
	uint64_t t = now_ns();

	pthread_mutex_lock(&pp->lock);
	while (pp->count == (unsigned)pp->nr_slots && !pp->err)
		pthread_cond_wait(&pp->cond, &pp->lock);
	pp->reader_wait_ns += now_ns() - t;
	if (!pp->err)
		ch = &pp->slot[(pp->head + pp->count) % pp->nr_slots];
	*err = pp->err;
	pthread_mutex_unlock(&pp->lock);
	return ch;
}

void page_pipe_put(struct page_pipe *pp, struct page_chunk *ch, uint64_t id,
		   const struct page_runs *map, size_t len)
{
	int k = (int)(ch - pp->slot);

	if (!map && !len)
		return;
	ch->id = id;
	ch->map = map;
	ch->len = len;
	/* uncompressed: checksummed here, while the data is in this CPU's cache */
	ch->crc = pp->t->codec || !len ? 0 : crc32c(0, ch->buf, len);
	pthread_mutex_lock(&pp->lock);
	pp->state[k] = pp->t->codec && len ? SLOT_QUEUED : SLOT_READY;
	pp->count++;
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
}

int page_pipe_drain(struct page_pipe *pp)
{
	int err;

	pthread_mutex_lock(&pp->lock);
	while (pp->count && !pp->err)
		pthread_cond_wait(&pp->cond, &pp->lock);
	err = pp->err;
	pthread_mutex_unlock(&pp->lock);
	return err;
}

int page_pipe_finish(struct page_pipe *pp, int ret)
{
	if (!pp)
		return ret;
	if (!ret)
		ret = page_pipe_drain(pp);
	pthread_mutex_lock(&pp->lock);
	pp->abort = ret != 0;
	pthread_mutex_unlock(&pp->lock);
	pipe_stop_threads(pp);
	if (!ret)
		ret = pp->err;
	/* which side is the bottleneck: the one that hardly waits */
	cryo_debug("page pipe: reader waited %.1f ms for a free slot, writer %.1f ms for data",
		   pp->reader_wait_ns / 1e6, pp->writer_wait_ns / 1e6);
	pipe_free(pp);
	return ret;
}

/* Read the planned chunk, drop its zero pages and queue it. */
static int flush_chunk(struct dump_ctx *c, struct page_pipe *pp, int vma_index,
		       struct chunk_plan *pl)
{
	struct page_chunk *ch;
	int ret;

	if (!pl->len)
		return 0;
	ch = page_pipe_get(pp, &ret);
	if (!ch)
		return ret;	/* a pipe thread failed and said why */
	ret = read_chunk(c, vma_index, pl, ch->buf);
	if (!ret)
		ret = compact_chunk(pl, ch);
	pl->len = 0;
	pl->nr_iov = 0;
	if (ret)
		return ret;
	if (ch->len)
		page_pipe_put(pp, ch, pages_id(c, vma_index), &ch->kept, ch->len);
	return fault_point("checkpoint:pages");
}

static int dump_vma_pages(struct dump_ctx *c, struct page_pipe *pp, int vma_index,
			  struct chunk_plan *pl)
{
	const struct page_runs *r = &c->runs[vma_index];
	size_t chunk = page_pipe_chunk_bytes(pp);
	int ret;

	for (uint32_t i = 0; i < r->nr; i++) {
		uint64_t addr = r->runs[i].vaddr;
		uint64_t left = r->runs[i].nr_pages * PAGE_SIZE_BYTES;

		while (left) {
			size_t room = chunk - pl->len;
			size_t n = left < room ? left : room;

			pl->remote[pl->nr_iov].iov_base = (void *)addr;
			pl->remote[pl->nr_iov].iov_len = n;
			pl->nr_iov++;
			pl->len += n;
			addr += n;
			left -= n;
			if (pl->len == chunk || pl->nr_iov == MAX_IOV) {
				ret = flush_chunk(c, pp, vma_index, pl);
				if (ret)
					return ret;
			}
		}
	}
	return flush_chunk(c, pp, vma_index, pl);
}

int dump_pages(struct dump_ctx *c, struct page_pipe *pp)
{
	struct chunk_plan *pl;
	char path[64];
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	c->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->mem_fd < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: open %s: %s", c->pid, path,
				 strerror(errno));
	pl = xzalloc(sizeof(*pl));
	if (!pl)
		return CRYO_EINTERNAL;
	for (int i = 0; i < c->nr_vmas && !ret; i++)
		if (c->runs[i].nr)
			ret = dump_vma_pages(c, pp, i, pl);
	free(pl);
	/* the caller writes the next process's sections itself */
	return ret ? ret : page_pipe_drain(pp);
}

/* Shared anonymous memory objects: their pages, read through the shmem file. */
/* A memfd's last page may end before the page does: the rest reads as zeros. */
static int pread_to_eof(int fd, uint8_t *p, size_t n, off_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			memset(p, 0, n);
			break;
		}
		p += r;
		n -= r;
		off += r;
	}
	return 0;
}

/*
 * One PAGEMAP per object (its whole page list), then its data in chunks;
 * zero pages are kept (the list is written first).
 */
int dump_shmem_pages(struct dump_tree *t, struct page_pipe *pp)
{
	size_t chunk = page_pipe_chunk_bytes(pp);
	int ret = 0;

	for (int k = 0; k < t->nr_shmems && !ret; k++) {
		const struct dump_shmem *o = &t->shmems[k];
		uint64_t id = CRYO_SHMEM_PAGES_ID | (uint32_t)k;
		const struct page_runs *map = &o->runs;	/* goes with the first chunk */
		struct page_chunk *ch = page_pipe_get(pp, &ret);
		size_t used = 0;

		for (uint32_t r = 0; ch && r < o->runs.nr && !ret; r++) {
			uint64_t off = o->runs.runs[r].vaddr;
			uint64_t left = o->runs.runs[r].nr_pages * PAGE_SIZE_BYTES;

			while (left && !ret) {
				size_t n = left < chunk - used ? left : chunk - used;

				ret = pread_to_eof(o->src_fd, ch->buf + used, n, off);
				if (ret) {
					ret = cryo_fail(CRYO_EINTERNAL,
							"shared memory object %d: reading: %s", k,
							strerror(-ret));
					break;
				}
				used += n;
				off += n;
				left -= n;
				if (used == chunk && (left || r + 1 < o->runs.nr)) {
					page_pipe_put(pp, ch, id, map, used);
					map = NULL;
					used = 0;
					ch = page_pipe_get(pp, &ret);
					if (!ch)
						break;
				}
			}
		}
		if (ch && !ret)
			page_pipe_put(pp, ch, id, map, used);
	}
	return ret ? ret : page_pipe_drain(pp);
}
