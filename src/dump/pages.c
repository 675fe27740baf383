/*
 * Copy the pages chosen by collect_mm.c into the image. For each area: a
 * PAGEMAP section listing its runs of pages, then PAGES sections (at most
 * CHUNK_BYTES each, page aligned in the file) with their data in run order.
 * Memory is read with one process_vm_readv per chunk; areas the task cannot
 * read (PROT_NONE...) through /proc/PID/mem, which may; shared anonymous
 * memory through its shmem file so holes are never populated. A writer
 * thread writes one chunk while the next is read (struct page_pipe).
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

#define CHUNK_BYTES (8ul << 20)
#define MAX_IOV 1024
/* Chunks in flight: one being read, one being written, one spare for jitter. */
#define NR_CHUNK_BUFFERS 3

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

/* A chunk read and checked, waiting for the writer thread. */
struct chunk {
	uint8_t *buf;
	size_t len;
	uint64_t id;
	uint32_t crc;		/* of buf[0..len), uncompressed images only */
	struct page_runs kept;	/* pages of the chunk that are not all zero */
};

/*
 * Reading the target and writing the image overlap: this thread reads
 * chunks (process_vm_readv), drops zero pages and checksums them; a writer
 * thread compresses (if asked) and writes them, in order, from a ring of
 * NR_CHUNK_BUFFERS buffers. While the pipe runs only the writer thread
 * touches the image writer and the codec.
 */
struct page_pipe {
	struct dump_tree *t;
	struct img_writer *w;
	uint8_t *mem;
	struct chunk slot[NR_CHUNK_BUFFERS];
	unsigned head, count;	/* oldest queued slot, number queued */
	int err;		/* first failure of the writer thread */
	int closing;		/* no more chunks will come */
	int abort;		/* drop what is queued */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	uint64_t reader_wait_ns, writer_wait_ns;	/* for CRYO_DEBUG */
};

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

static int write_compressed(struct dump_tree *t, struct img_writer *w, uint64_t id,
			    const uint8_t *buf, size_t len)
{
	struct cryo_zpages_header h = { 0 };
	size_t n;

	if (!t->zbuf) {
		t->zbuf_len = sizeof(h) + codec_bound(t->codec, CHUNK_BYTES);
		t->zbuf = malloc(t->zbuf_len);
		if (!t->zbuf)
			return cryo_fail(CRYO_EINTERNAL, "out of memory for compression");
	}
	n = codec_compress(t->codec, t->zbuf + sizeof(h), t->zbuf_len - sizeof(h), buf, len);
	if (!n)
		return cryo_fail(CRYO_EINTERNAL, "compressing page data failed");
	h.codec = t->codec_id;
	h.raw_len = len;
	memcpy(t->zbuf, &h, sizeof(h));
	return imgw_section(w, CRYO_SEC_ZPAGES, id, 0, 0, t->zbuf, sizeof(h) + n);
}

int dump_write_pages(struct dump_tree *t, struct img_writer *w, uint64_t id,
		     const struct page_runs *runs, const uint8_t *buf, size_t len)
{
	int ret = imgw_section(w, CRYO_SEC_PAGEMAP, id, sizeof(struct cryo_img_page_run), runs->nr,
			       runs->runs, (uint64_t)runs->nr * sizeof(struct cryo_img_page_run));

	if (!ret && t->codec)
		ret = write_compressed(t, w, id, buf, len);
	else if (!ret)
		ret = imgw_section_aligned(w, CRYO_SEC_PAGES, id, PAGE_SIZE_BYTES,
					   len / PAGE_SIZE_BYTES, buf, len);
	return ret;
}

/* Stops at the first non-zero word: random data costs a few loads per page. */
static int page_is_zero(const uint8_t *p)
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
static int compact_chunk(const struct chunk_plan *pl, struct chunk *ch)
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

/* Writer thread: one chunk's page list (PAGEMAP), then its data (PAGES or ZPAGES). */
static int write_chunk(struct page_pipe *pp, const struct chunk *ch)
{
	int ret = imgw_section(pp->w, CRYO_SEC_PAGEMAP, ch->id, sizeof(struct cryo_img_page_run),
			       ch->kept.nr, ch->kept.runs,
			       (uint64_t)ch->kept.nr * sizeof(struct cryo_img_page_run));

	if (!ret && pp->t->codec)
		ret = write_compressed(pp->t, pp->w, ch->id, ch->buf, ch->len);
	else if (!ret)
		ret = imgw_section_aligned_crc(pp->w, CRYO_SEC_PAGES, ch->id, PAGE_SIZE_BYTES,
					       ch->len / PAGE_SIZE_BYTES, ch->buf, ch->len,
					       ch->crc);
	return ret;
}

static void *writer_main(void *arg)
{
	struct page_pipe *pp = arg;

	pthread_mutex_lock(&pp->lock);
	for (;;) {
		uint64_t t = now_ns();

		while (!pp->count && !pp->closing)
			pthread_cond_wait(&pp->cond, &pp->lock);
		pp->writer_wait_ns += now_ns() - t;
		if (!pp->count || pp->abort)
			break;
		struct chunk *ch = &pp->slot[pp->head];

		pthread_mutex_unlock(&pp->lock);
		int ret = write_chunk(pp, ch);
		pthread_mutex_lock(&pp->lock);
		if (ret) {
			pp->err = ret;
			break;
		}
		pp->head = (pp->head + 1) % NR_CHUNK_BUFFERS;
		pp->count--;
		pthread_cond_broadcast(&pp->cond);
	}
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

static int pipe_start(struct page_pipe *pp, struct dump_tree *t, struct img_writer *w)
{
	int err;

	memset(pp, 0, sizeof(*pp));
	pp->t = t;
	pp->w = w;
	pp->mem = mmap(NULL, NR_CHUNK_BUFFERS * CHUNK_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pp->mem == MAP_FAILED)
		return cryo_fail(CRYO_EINTERNAL, "cannot allocate the page buffers");
	for (int i = 0; i < NR_CHUNK_BUFFERS; i++)
		pp->slot[i].buf = pp->mem + i * CHUNK_BYTES;
	pthread_mutex_init(&pp->lock, NULL);
	pthread_cond_init(&pp->cond, NULL);
	err = pthread_create(&pp->thread, NULL, writer_main, pp);
	if (err) {
		munmap(pp->mem, NR_CHUNK_BUFFERS * CHUNK_BYTES);
		return cryo_fail(CRYO_EINTERNAL, "cannot start the image writer thread: %s",
				 strerror(err));
	}
	return 0;
}

/* The slot to fill next, once the writer has freed one; NULL if it failed. */
static struct chunk *pipe_free_slot(struct page_pipe *pp)
{
	struct chunk *ch = NULL;

	uint64_t t = now_ns();

	pthread_mutex_lock(&pp->lock);
	while (pp->count == NR_CHUNK_BUFFERS && !pp->err)
		pthread_cond_wait(&pp->cond, &pp->lock);
	pp->reader_wait_ns += now_ns() - t;
	if (!pp->err)
		ch = &pp->slot[(pp->head + pp->count) % NR_CHUNK_BUFFERS];
	pthread_mutex_unlock(&pp->lock);
	return ch;
}

static void pipe_submit(struct page_pipe *pp)
{
	pthread_mutex_lock(&pp->lock);
	pp->count++;
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
}

/* Let the writer finish what is queued (or drop it if ret says we failed). */
static int pipe_finish(struct page_pipe *pp, int ret)
{
	pthread_mutex_lock(&pp->lock);
	pp->closing = 1;
	pp->abort = ret != 0;
	pthread_cond_broadcast(&pp->cond);
	pthread_mutex_unlock(&pp->lock);
	pthread_join(pp->thread, NULL);
	if (!ret)
		ret = pp->err;
	/* which side is the bottleneck: the one that hardly waits */
	cryo_debug("page pipe: reader waited %.1f ms for the writer, writer %.1f ms for data",
		   pp->reader_wait_ns / 1e6, pp->writer_wait_ns / 1e6);
	pthread_mutex_destroy(&pp->lock);
	pthread_cond_destroy(&pp->cond);
	for (int i = 0; i < NR_CHUNK_BUFFERS; i++)
		free(pp->slot[i].kept.runs);
	munmap(pp->mem, NR_CHUNK_BUFFERS * CHUNK_BYTES);
	return ret;
}

/* Read the planned chunk, drop its zero pages, checksum it and queue it. */
static int flush_chunk(struct dump_ctx *c, struct page_pipe *pp, int vma_index,
		       struct chunk_plan *pl)
{
	struct chunk *ch;
	int ret;

	if (!pl->len)
		return 0;
	ch = pipe_free_slot(pp);
	if (!ch)
		return pp->err;	/* the writer thread failed and said why */
	ret = read_chunk(c, vma_index, pl, ch->buf);
	if (!ret)
		ret = compact_chunk(pl, ch);
	pl->len = 0;
	pl->nr_iov = 0;
	if (ret)
		return ret;
	if (ch->len) {
		ch->id = pages_id(c, vma_index);
		ch->crc = pp->t->codec ? 0 : crc32c(0, ch->buf, ch->len);
		pipe_submit(pp);
	}
	return fault_point("checkpoint:pages");
}

static int dump_vma_pages(struct dump_ctx *c, struct page_pipe *pp, int vma_index,
			  struct chunk_plan *pl)
{
	const struct page_runs *r = &c->runs[vma_index];
	int ret;

	for (uint32_t i = 0; i < r->nr; i++) {
		uint64_t addr = r->runs[i].vaddr;
		uint64_t left = r->runs[i].nr_pages * PAGE_SIZE_BYTES;

		while (left) {
			size_t room = CHUNK_BYTES - pl->len;
			size_t n = left < room ? left : room;

			pl->remote[pl->nr_iov].iov_base = (void *)addr;
			pl->remote[pl->nr_iov].iov_len = n;
			pl->nr_iov++;
			pl->len += n;
			addr += n;
			left -= n;
			if (pl->len == CHUNK_BYTES || pl->nr_iov == MAX_IOV) {
				ret = flush_chunk(c, pp, vma_index, pl);
				if (ret)
					return ret;
			}
		}
	}
	return flush_chunk(c, pp, vma_index, pl);
}

int dump_pages(struct dump_ctx *c, struct img_writer *w)
{
	struct page_pipe *pp;
	struct chunk_plan *pl;
	char path[64];
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	c->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->mem_fd < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: open %s: %s", c->pid, path,
				 strerror(errno));
	pl = xzalloc(sizeof(*pl));
	pp = xzalloc(sizeof(*pp));
	if (!pl || !pp) {
		free(pl);
		free(pp);
		return CRYO_EINTERNAL;
	}
	ret = pipe_start(pp, c->tree, w);
	if (!ret) {
		for (int i = 0; i < c->nr_vmas && !ret; i++)
			if (c->runs[i].nr)
				ret = dump_vma_pages(c, pp, i, pl);
		ret = pipe_finish(pp, ret);
	}
	free(pp);
	free(pl);
	return ret;
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

int dump_shmem_pages(struct dump_tree *t, struct img_writer *w)
{
	uint8_t *buf;
	int ret = 0;

	if (!t->nr_shmems)
		return 0;
	buf = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return cryo_fail(CRYO_EINTERNAL, "cannot allocate the page buffer");
	for (int k = 0; k < t->nr_shmems && !ret; k++) {
		const struct dump_shmem *o = &t->shmems[k];
		uint64_t id = CRYO_SHMEM_PAGES_ID | (uint32_t)k;
		size_t used = 0;

		ret = imgw_section(w, CRYO_SEC_PAGEMAP, id, sizeof(struct cryo_img_page_run),
				   o->runs.nr, o->runs.runs,
				   (uint64_t)o->runs.nr * sizeof(struct cryo_img_page_run));
		for (uint32_t r = 0; r < o->runs.nr && !ret; r++) {
			uint64_t off = o->runs.runs[r].vaddr;
			uint64_t left = o->runs.runs[r].nr_pages * PAGE_SIZE_BYTES;

			while (left && !ret) {
				size_t n = left < CHUNK_BYTES - used ? left : CHUNK_BYTES - used;

				ret = pread_to_eof(o->src_fd, buf + used, n, off);
				if (ret) {
					ret = cryo_fail(CRYO_EINTERNAL, "reading shared memory: %s",
							strerror(-ret));
					break;
				}
				used += n;
				off += n;
				left -= n;
				if (used == CHUNK_BYTES || (!left && r + 1 == o->runs.nr)) {
					if (t->codec)
						ret = write_compressed(t, w, id, buf, used);
					else
						ret = imgw_section_aligned(w, CRYO_SEC_PAGES, id,
									   PAGE_SIZE_BYTES,
									   used / PAGE_SIZE_BYTES,
									   buf, used);
					used = 0;
				}
			}
		}
	}
	munmap(buf, CHUNK_BYTES);
	return ret;
}
