/*
 * Copy the pages chosen by collect_mm.c into the image. For each area: a
 * PAGEMAP section listing its runs of pages, then PAGES sections (at most
 * CHUNK_BYTES each, page aligned in the file) with their data in run order.
 * Memory is read with one process_vm_readv per chunk; areas the task cannot
 * read (PROT_NONE...) through /proc/PID/mem, which may; shared anonymous
 * memory through its shmem file so holes are never populated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dump/dump.h"
#include "image/codec.h"
#include "util/util.h"

#define CHUNK_BYTES (8ul << 20)
#define MAX_IOV 1024

static uint64_t pages_id(const struct dump_ctx *c, int vma_index)
{
	return (uint64_t)c->pid << 32 | (uint32_t)vma_index;
}

struct chunk {
	uint8_t *buf;
	size_t len;
	struct iovec remote[MAX_IOV];
	int nr_iov;
	struct page_runs kept;	/* pages of the chunk that are not all zero */
};


static int read_chunk(struct dump_ctx *c, int vma_index, struct chunk *ch)
{
	const struct cryo_img_vma *v = &c->img_vmas[vma_index];
	int src_fd = c->vma_src_fds[vma_index];
	size_t done = 0;

	if (src_fd < 0 && (v->prot & PROT_READ)) {
		struct iovec local = { ch->buf, ch->len };
		ssize_t n = process_vm_readv(c->pid, &local, 1, ch->remote, ch->nr_iov, 0);
		if (n == (ssize_t)ch->len)
			return 0;
		/* fall through to the slower path, which reads what readv could not */
	}
	for (int i = 0; i < ch->nr_iov; i++) {
		uint64_t addr = (uint64_t)ch->remote[i].iov_base;
		int ret;

		if (src_fd >= 0)
			ret = pread_full(src_fd, ch->buf + done, ch->remote[i].iov_len,
					 v->pgoff + (addr - v->start));
		else
			ret = pread_full(c->mem_fd, ch->buf + done, ch->remote[i].iov_len, addr);
		if (ret)
			return cryo_fail(CRYO_EINTERNAL,
					 "process %d: reading memory %lx-%lx: %s", c->pid,
					 (unsigned long)addr,
					 (unsigned long)(addr + ch->remote[i].iov_len), strerror(-ret));
		done += ch->remote[i].iov_len;
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

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t acc = 0;

	for (size_t i = 0; i < PAGE_SIZE_BYTES / sizeof(uint64_t); i++)
		acc |= q[i];
	return !acc;
}

/*
 * Drop the pages of the chunk that read as all zeros (memory touched but
 * never written, or zeroed by the program): they cost no image space, and
 * restore leaves them to the kernel's fresh zero pages. The chunk's data is
 * compacted in place; its page list becomes the runs of what is left.
 */
static int compact_chunk(struct chunk *ch, struct page_runs *kept)
{
	size_t in = 0, out = 0;

	kept->nr = 0;
	for (int i = 0; i < ch->nr_iov; i++) {
		uint64_t addr = (uint64_t)ch->remote[i].iov_base;

		for (size_t off = 0; off < ch->remote[i].iov_len; off += PAGE_SIZE_BYTES) {
			if (!page_is_zero(ch->buf + in)) {
				if (out != in)
					memcpy(ch->buf + out, ch->buf + in, PAGE_SIZE_BYTES);
				out += PAGE_SIZE_BYTES;
				if (page_runs_add(kept, addr + off))
					return CRYO_EINTERNAL;
			}
			in += PAGE_SIZE_BYTES;
		}
	}
	ch->len = out;
	return 0;
}

/* One chunk: its page list (PAGEMAP), then its data (PAGES or ZPAGES). */
static int flush_chunk(struct dump_ctx *c, struct img_writer *w, int vma_index, struct chunk *ch)
{
	uint64_t id = pages_id(c, vma_index);
	int ret;

	if (!ch->len)
		return 0;
	ret = read_chunk(c, vma_index, ch);
	if (!ret)
		ret = compact_chunk(ch, &ch->kept);
	if (!ret && ch->len)
		ret = imgw_section(w, CRYO_SEC_PAGEMAP, id, sizeof(struct cryo_img_page_run),
				   ch->kept.nr, ch->kept.runs,
				   (uint64_t)ch->kept.nr * sizeof(struct cryo_img_page_run));
	if (!ret && ch->len && c->tree->codec)
		ret = write_compressed(c->tree, w, id, ch->buf, ch->len);
	else if (!ret && ch->len)
		ret = imgw_section_aligned(w, CRYO_SEC_PAGES, id, PAGE_SIZE_BYTES,
					   ch->len / PAGE_SIZE_BYTES, ch->buf, ch->len);
	ch->len = 0;
	ch->nr_iov = 0;
	return ret ? ret : fault_point("checkpoint:pages");
}

static int dump_vma_pages(struct dump_ctx *c, struct img_writer *w, int vma_index,
			  struct chunk *ch)
{
	const struct page_runs *r = &c->runs[vma_index];
	int ret;

	for (uint32_t i = 0; i < r->nr; i++) {
		uint64_t addr = r->runs[i].vaddr;
		uint64_t left = r->runs[i].nr_pages * PAGE_SIZE_BYTES;

		while (left) {
			size_t room = CHUNK_BYTES - ch->len;
			size_t n = left < room ? left : room;

			ch->remote[ch->nr_iov].iov_base = (void *)addr;
			ch->remote[ch->nr_iov].iov_len = n;
			ch->nr_iov++;
			ch->len += n;
			addr += n;
			left -= n;
			if (ch->len == CHUNK_BYTES || ch->nr_iov == MAX_IOV) {
				ret = flush_chunk(c, w, vma_index, ch);
				if (ret)
					return ret;
			}
		}
	}
	return flush_chunk(c, w, vma_index, ch);
}

int dump_pages(struct dump_ctx *c, struct img_writer *w)
{
	struct chunk *ch;
	char path[64];
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	c->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->mem_fd < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: open %s: %s", c->pid, path,
				 strerror(errno));
	ch = xzalloc(sizeof(*ch));
	if (!ch)
		return CRYO_EINTERNAL;
	ch->buf = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (ch->buf == MAP_FAILED) {
		free(ch);
		return cryo_fail(CRYO_EINTERNAL, "cannot allocate the page buffer");
	}
	for (int i = 0; i < c->nr_vmas && !ret; i++)
		if (c->runs[i].nr)
			ret = dump_vma_pages(c, w, i, ch);
	munmap(ch->buf, CHUNK_BYTES);
	free(ch->kept.runs);
	free(ch);
	return ret;
}

/* Shared anonymous memory objects: their pages, read through the shmem file. */
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

				ret = pread_full(o->src_fd, buf + used, n, off);
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
