/*
 * The image writer and reader (layout in format.h, prose in
 * docs/image-format.md).
 *
 * Writer: sections are appended to "<dir>/.<name>.tmp.<pid>". Headers and
 * small payloads go through a small buffer; large payloads (page data) are
 * handed to writev() straight from the caller's memory, so page data is
 * never copied. The writer tracks its offset itself and never seeks, so the
 * same code can later write to a pipe. Every section, PAD ones included, is
 * recorded for the INDEX that imgw_commit() writes before the footer.
 *
 * Reader: imgr_open() trusts nothing. It checks the header, the footer and
 * the index, requires the sections to tile the file exactly (every byte
 * between the header page and the INDEX belongs to one section or to the
 * zero padding after it), then streams through the whole file once in
 * fixed-size chunks, checking every section header against the index and
 * every payload against its CRC. Memory use is bounded by the chunk size
 * and the index, never by the size of a payload.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "util/util.h"

#define SECTION_ALIGN_BYTES 8
#define SECTION_HEADER_BYTES ((uint64_t)sizeof(struct cryo_section_header))
#define FOOTER_BYTES ((uint64_t)sizeof(struct cryo_footer))
#define INDEX_ENTRY_BYTES ((uint32_t)sizeof(struct cryo_img_index_entry))
/* The file header occupies the first page; sections start right after it. */
#define FIRST_SECTION_OFFSET ((uint64_t)CRYO_IMG_PAGE_SIZE)

/* Writer: headers and payloads below the threshold are buffered. */
#define WBUF_BYTES (64u << 10)
#define WRITEBACK_KICK_BYTES (32ull << 20)
#define DIRECT_WRITE_MIN_BYTES (16u << 10)

/* Reader: validation reads the file in chunks of this size. */
#define SCAN_CHUNK_BYTES (1u << 20)
/* Limits that keep a hostile image from making us allocate absurd amounts. */
#define MAX_LOAD_BYTES (1ull << 30)
#define MAX_INDEX_ENTRIES (1u << 22)
#define MAX_INDEX_ENTRY_BYTES 4096u

static inline uint64_t align_up8(uint64_t x)
{
	return (x + SECTION_ALIGN_BYTES - 1) & ~(uint64_t)(SECTION_ALIGN_BYTES - 1);
}

static const unsigned char zeros[CRYO_IMG_PAGE_SIZE];

const char *img_section_type_name(uint32_t type)
{
	switch (type) {
	case CRYO_SEC_INDEX:	return "INDEX";
	case CRYO_SEC_PAD:	return "PAD";
	case CRYO_SEC_STRINGS:	return "STRINGS";
	case CRYO_SEC_TASK:	return "TASK";
	case CRYO_SEC_THREAD:	return "THREAD";
	case CRYO_SEC_XSTATE:	return "XSTATE";
	case CRYO_SEC_SIGINFO:	return "SIGINFO";
	case CRYO_SEC_VMA:	return "VMA";
	case CRYO_SEC_PAGEMAP:	return "PAGEMAP";
	case CRYO_SEC_PAGES:	return "PAGES";
	case CRYO_SEC_FD:	return "FD";
	case CRYO_SEC_BLOB:	return "BLOB";
	case CRYO_SEC_ZPAGES:	return "ZPAGES";
	case CRYO_SEC_SHMEM:	return "SHMEM";
	case CRYO_SEC_PRECOPY_DROP:	return "PRECOPY_DROP";
	}
	return "unknown";
}

static int type_is_known(uint32_t type)
{
	return type != CRYO_SEC_INDEX && strcmp(img_section_type_name(type), "unknown");
}

/* Sections whose payload is a byte string, never an array of entries. */
static int type_is_untyped(uint32_t type)
{
	return type == CRYO_SEC_PAD || type == CRYO_SEC_STRINGS || type == CRYO_SEC_BLOB ||
	       type == CRYO_SEC_INDEX || type == CRYO_SEC_ZPAGES;
}

/* Sections that are always arrays of entries (INDEX is checked on its own). */
static int type_is_table(uint32_t type)
{
	return type == CRYO_SEC_TASK || type == CRYO_SEC_THREAD || type == CRYO_SEC_SIGINFO ||
	       type == CRYO_SEC_VMA || type == CRYO_SEC_PAGEMAP || type == CRYO_SEC_PAGES ||
	       type == CRYO_SEC_FD || type == CRYO_SEC_SHMEM || type == CRYO_SEC_PRECOPY_DROP;
}

/*
 * Shape rules shared by writer and reader: a table has entry_size > 0 and
 * exactly entry_size * entry_count bytes; a byte string has neither. XSTATE
 * and types from a newer minor may be either. Returns a reason, or NULL if
 * the shape is fine.
 */
static const char *check_shape(uint32_t type, uint32_t entry_size, uint32_t entry_count,
			       uint64_t len)
{
	if (type_is_untyped(type) && type != CRYO_SEC_INDEX) {
		if (entry_size || entry_count)
			return "byte-string payload with an entry size or count";
		return NULL;
	}
	if (type == CRYO_SEC_PAGES && entry_size != CRYO_IMG_PAGE_SIZE)
		return "page data whose entry size is not the page size";
	if (!entry_size) {
		if (type_is_table(type))
			return "table without an entry size";
		if (entry_count)
			return "entry count without an entry size";
		return NULL;
	}
	if ((uint64_t)entry_size * entry_count != len)
		return "entry size * entry count differs from the payload length";
	return NULL;
}

/* ---------------------------------------------------------------- writer */

struct img_writer {
	int fd;
	char *path;		/* final name */
	char *tmp_path;
	char *dir_path;		/* to fsync after the rename */
	uint64_t off;		/* bytes written so far, buffered ones included */
	unsigned char *wbuf;
	size_t wbuf_len;
	struct cryo_img_index_entry *index;
	size_t nr_index, cap_index;
	int err;		/* sticky: once a write failed, everything fails */
	int tmp_exists;		/* tmp_path is ours to unlink */
	uint64_t written_back;	/* writeback started up to here */
};

static int w_fail(struct img_writer *w, int err, const char *what)
{
	w->err = CRYO_EWRITE;
	return cryo_fail(CRYO_EWRITE, "image %s: %s %s: %s", w->path, what, w->tmp_path,
			 strerror(err));
}

/* write() all of iov, retrying short writes and EINTR. */
static int writev_full(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt) {
		ssize_t n = writev(fd, iov, iovcnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		while (iovcnt && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* Write the buffer, then (optionally) a large payload straight from memory. */
static int w_flush(struct img_writer *w, const void *direct, uint64_t direct_len)
{
	struct iovec iov[2];
	int n = 0, ret;

	if (w->err)
		return w->err;
	if (w->wbuf_len)
		iov[n++] = (struct iovec){ w->wbuf, w->wbuf_len };
	while (direct_len || n) {
		/* writev() caps one call at 2 GiB anyway; keep each iov sane */
		size_t part = direct_len > (1ull << 30) ? (1ull << 30) : direct_len;

		if (part) {
			iov[n++] = (struct iovec){ (void *)direct, part };
			direct = (const char *)direct + part;
			direct_len -= part;
		}
		ret = writev_full(w->fd, iov, n);
		if (ret)
			return w_fail(w, -ret, "writing");
		n = 0;
	}
	w->wbuf_len = 0;
	return 0;
}

static int w_emit(struct img_writer *w, const void *p, size_t len)
{
	const unsigned char *c = p;

	while (len) {
		size_t n = WBUF_BYTES - w->wbuf_len;

		if (n > len)
			n = len;
		memcpy(w->wbuf + w->wbuf_len, c, n);
		w->wbuf_len += n;
		w->off += n;
		c += n;
		len -= n;
		if (w->wbuf_len == WBUF_BYTES && w_flush(w, NULL, 0))
			return w->err;
	}
	return 0;
}

static int w_payload(struct img_writer *w, const void *p, uint64_t len)
{
	int ret;

	if (len < DIRECT_WRITE_MIN_BYTES)
		return w_emit(w, p, len);
	ret = w_flush(w, p, len);
	if (ret)
		return ret;
	w->off += len;
	/*
	 * Start writeback of what is written as we go: the final fsync, which
	 * the target waits for frozen, then has little left to flush. A no-op
	 * on tmpfs; only a hint, so its failure is ignored.
	 */
	if (w->off - w->written_back >= WRITEBACK_KICK_BYTES) {
		sync_file_range(w->fd, w->written_back, w->off - w->written_back,
				SYNC_FILE_RANGE_WRITE);
		w->written_back = w->off;
	}
	return 0;
}

static int w_add_index(struct img_writer *w, const struct cryo_section_header *h,
		       uint64_t offset)
{
	if (w->nr_index == w->cap_index) {
		size_t cap = w->cap_index ? 2 * w->cap_index : 64;
		struct cryo_img_index_entry *p = realloc(w->index, cap * sizeof(*p));

		if (!p) {
			w->err = CRYO_EWRITE;
			return cryo_fail(CRYO_EWRITE, "image %s: out of memory for the index",
					 w->path);
		}
		w->index = p;
		w->cap_index = cap;
	}
	w->index[w->nr_index++] = (struct cryo_img_index_entry){
		.type = h->type, .entry_count = h->entry_count, .id = h->id,
		.offset = offset, .length = h->length,
	};
	return 0;
}

static void fill_section_header(struct cryo_section_header *h, uint32_t type, uint64_t id,
				uint32_t entry_size, uint32_t entry_count, uint32_t payload_crc,
				uint64_t len)
{
	memset(h, 0, sizeof(*h));
	h->magic = CRYO_SECTION_MAGIC;
	h->type = type;
	h->length = len;
	h->id = id;
	h->entry_size = entry_size;
	h->entry_count = entry_count;
	h->payload_crc = payload_crc;
	h->header_crc = crc32c(0, h, offsetof(struct cryo_section_header, header_crc));
}

static int w_section_crc(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
			 uint32_t entry_count, const void *payload, uint64_t len, uint32_t crc,
			 int index_it)
{
	struct cryo_section_header h;
	uint64_t offset = w->off;
	uint64_t pad = align_up8(len) - len;
	int ret;

	fill_section_header(&h, type, id, entry_size, entry_count, crc, len);
	if (index_it) {
		ret = w_add_index(w, &h, offset);
		if (ret)
			return ret;
	}
	ret = w_emit(w, &h, sizeof(h));
	if (!ret)
		ret = w_payload(w, payload, len);
	if (!ret && pad)
		ret = w_emit(w, zeros, pad);
	return ret;
}

static int w_section(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
		     uint32_t entry_count, const void *payload, uint64_t len, int index_it)
{
	return w_section_crc(w, type, id, entry_size, entry_count, payload, len,
			     crc32c(0, payload, len), index_it);
}

static int w_check_args(struct img_writer *w, uint32_t type, uint32_t entry_size,
			uint32_t entry_count, const void *payload, uint64_t len, int aligned)
{
	const char *why;

	if (w->err)
		return w->err;
	if (type == CRYO_SEC_INDEX || type == CRYO_SEC_PAD)
		why = "INDEX and PAD sections are written by the image layer itself";
	else if (len && !payload)
		why = "no payload";
	else if (type == CRYO_SEC_PAGES && !aligned)
		why = "page data must be written with imgw_section_aligned()";
	else
		why = check_shape(type, entry_size, entry_count, len);
	if (!why)
		return 0;
	return cryo_fail(CRYO_EINTERNAL, "image %s: section %s (type %u) of %llu bytes: %s",
			 w->path, img_section_type_name(type), type, (unsigned long long)len, why);
}

int imgw_section(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
		 uint32_t entry_count, const void *payload, uint64_t len)
{
	int ret = w_check_args(w, type, entry_size, entry_count, payload, len, 0);

	return ret ? ret : w_section(w, type, id, entry_size, entry_count, payload, len, 1);
}

int imgw_section_crc(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
		     uint32_t entry_count, const void *payload, uint64_t len, uint32_t payload_crc)
{
	int ret = w_check_args(w, type, entry_size, entry_count, payload, len, 0);

	return ret ? ret : w_section_crc(w, type, id, entry_size, entry_count, payload, len,
					 payload_crc, 1);
}

int imgw_section_aligned(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
			 uint32_t entry_count, const void *payload, uint64_t len)
{
	return imgw_section_aligned_crc(w, type, id, entry_size, entry_count, payload, len,
					crc32c(0, payload, len));
}

int imgw_section_aligned_crc(struct img_writer *w, uint32_t type, uint64_t id,
			     uint32_t entry_size, uint32_t entry_count, const void *payload,
			     uint64_t len, uint32_t payload_crc)
{
	uint64_t payload_off = w->off + SECTION_HEADER_BYTES;
	int ret = w_check_args(w, type, entry_size, entry_count, payload, len, 1);

	if (ret)
		return ret;
	if (len >= CRYO_IMG_PAGES_ALIGN_MIN && payload_off % CRYO_IMG_PAGE_SIZE) {
		/*
		 * A PAD section (header + zeros) so that the header after it
		 * ends on a page boundary. w->off is 8-aligned, so is the gap.
		 */
		uint64_t next_payload = (w->off + 2 * SECTION_HEADER_BYTES + CRYO_IMG_PAGE_SIZE - 1) &
					~(uint64_t)(CRYO_IMG_PAGE_SIZE - 1);
		uint64_t pad_len = next_payload - 2 * SECTION_HEADER_BYTES - w->off;

		ret = w_section(w, CRYO_SEC_PAD, 0, 0, 0, zeros, pad_len, 1);
		if (ret)
			return ret;
	}
	return w_section_crc(w, type, id, entry_size, entry_count, payload, len, payload_crc, 1);
}

static int split_path(struct img_writer *w, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int n;

	if (!*base)
		return cryo_fail(CRYO_EWRITE, "image %s: not a file name", path);
	if (!slash)
		w->dir_path = strdup(".");
	else if (slash == path)
		w->dir_path = strdup("/");
	else
		w->dir_path = strndup(path, slash - path);
	n = asprintf(&w->tmp_path, "%s/.%s.tmp.%d", w->dir_path ? w->dir_path : "", base,
		     (int)getpid());
	if (!w->dir_path || n < 0) {
		w->tmp_path = NULL;
		return cryo_fail(CRYO_EWRITE, "image %s: out of memory", path);
	}
	return 0;
}

/*
 * A cryo killed while writing leaves its temporary file (never the final
 * name). Remove those of this image whose writer is gone, so they do not
 * pile up; one of a live writer (another cryo) is left alone.
 */
static void remove_stale_temporaries(const struct img_writer *w)
{
	const char *slash = strrchr(w->tmp_path, '/');
	const char *dot = strrchr(w->tmp_path, '.');
	size_t prefix_len;
	struct dirent *de;
	DIR *d;

	if (!slash || !dot || dot < slash)
		return;
	prefix_len = dot - (slash + 1) + 1;	/* ".NAME.tmp." */
	d = opendir(w->dir_path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end, stale[PATH_MAX];
		long pid;

		if (strncmp(de->d_name, slash + 1, prefix_len))
			continue;
		pid = strtol(de->d_name + prefix_len, &end, 10);
		if (*end || pid <= 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(stale, sizeof(stale), "%s/%s", w->dir_path, de->d_name);
		unlink(stale);
	}
	closedir(d);
}

int imgw_open(struct img_writer **wp, const char *path, uint64_t xfeatures, uint64_t flags)
{
	struct cryo_file_header hdr;
	struct timespec ts;
	struct img_writer *w;
	int ret;

	*wp = NULL;
	w = xzalloc(sizeof(*w));
	if (!w)
		return CRYO_EWRITE;
	w->fd = -1;
	w->path = strdup(path);
	w->wbuf = malloc(WBUF_BYTES);
	if (!w->path || !w->wbuf) {
		ret = cryo_fail(CRYO_EWRITE, "image %s: out of memory", path);
		goto out_free;
	}
	ret = split_path(w, path);
	if (ret)
		goto out_free;
	remove_stale_temporaries(w);
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = cryo_fail(CRYO_EWRITE, "image %s: cannot create %s: %s", path, w->tmp_path,
				strerror(errno));
		goto out_free;
	}
	w->tmp_exists = 1;
	/* 0600 whatever the umask: the image holds the target's memory. */
	if (fchmod(w->fd, 0600)) {
		ret = w_fail(w, errno, "chmod");
		goto out_free;
	}

	memset(&hdr, 0, sizeof(hdr));
	memcpy(hdr.magic, CRYO_IMG_MAGIC, sizeof(hdr.magic));
	hdr.version_major = CRYO_IMG_MAJOR;
	hdr.version_minor = CRYO_IMG_MINOR;
	hdr.header_size = sizeof(hdr);
	hdr.arch = CRYO_IMG_ARCH_X86_64;
	hdr.page_size = CRYO_IMG_PAGE_SIZE;
	clock_gettime(CLOCK_REALTIME, &ts);
	hdr.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	hdr.xfeatures = xfeatures;
	hdr.flags = flags;
	hdr.crc = crc32c(0, &hdr, offsetof(struct cryo_file_header, crc));
	ret = w_emit(w, &hdr, sizeof(hdr));
	if (!ret)
		ret = w_emit(w, zeros, FIRST_SECTION_OFFSET - sizeof(hdr));
	if (ret)
		goto out_free;
	*wp = w;
	return 0;

out_free:
	imgw_abort(w);
	return ret;
}

static int fsync_dir(struct img_writer *w)
{
	int fd = open(w->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return cryo_fail(CRYO_EWRITE, "image %s: cannot open directory %s to sync it: %s",
				 w->path, w->dir_path, strerror(errno));
	/* Some file systems cannot sync a directory; nothing more we can do there. */
	if (fsync(fd) && errno != EINVAL && errno != EOPNOTSUPP)
		ret = cryo_fail(CRYO_EWRITE, "image %s: fsync of directory %s: %s", w->path,
				w->dir_path, strerror(errno));
	close(fd);
	return ret;
}

/* Index, footer, fsync, rename, fsync of the directory; w stays allocated. */
static int commit(struct img_writer *w, int no_sync)
{
	struct cryo_footer footer;
	uint64_t index_off = w->off;
	uint64_t index_len = (uint64_t)w->nr_index * INDEX_ENTRY_BYTES;
	int ret;

	if (w->err)
		return w->err;
	if (w->nr_index > MAX_INDEX_ENTRIES)
		return cryo_fail(CRYO_EWRITE, "image %s: %zu sections, at most %u are allowed",
				 w->path, w->nr_index, MAX_INDEX_ENTRIES);
	ret = w_section(w, CRYO_SEC_INDEX, 0, INDEX_ENTRY_BYTES, w->nr_index, w->index,
			index_len, 0);
	if (ret)
		return ret;

	memset(&footer, 0, sizeof(footer));
	memcpy(footer.magic, CRYO_IMG_FOOTER_MAGIC, sizeof(footer.magic));
	footer.index_offset = index_off;
	footer.file_size = w->off + sizeof(footer);
	footer.crc = crc32c(0, &footer, offsetof(struct cryo_footer, crc));
	ret = w_emit(w, &footer, sizeof(footer));
	if (!ret)
		ret = w_flush(w, NULL, 0);
	if (ret)
		return ret;

	if (!no_sync && fsync(w->fd))
		return w_fail(w, errno, "fsync of");
	/* NFS and friends report delayed write errors at close. */
	ret = close(w->fd);
	w->fd = -1;
	if (ret)
		return w_fail(w, errno, "closing");
	if (rename(w->tmp_path, w->path))
		return cryo_fail(CRYO_EWRITE, "image %s: cannot rename %s into place: %s",
				 w->path, w->tmp_path, strerror(errno));
	w->tmp_exists = 0;
	/*
	 * The image is complete and in place; if the directory cannot be
	 * synced we still say so, as the rename may not survive a crash.
	 */
	if (!no_sync)
		return fsync_dir(w);
	return 0;
}

int imgw_commit(struct img_writer *w, int no_sync)
{
	int ret = commit(w, no_sync);

	imgw_abort(w);
	return ret;
}

void imgw_abort(struct img_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_exists)
		unlink(w->tmp_path);
	free(w->path);
	free(w->tmp_path);
	free(w->dir_path);
	free(w->wbuf);
	free(w->index);
	free(w);
}

uint64_t imgw_bytes_written(const struct img_writer *w)
{
	return w->off;
}

/* ---------------------------------------------------------------- reader */

/* What the reader keeps per section beyond the index entry. */
struct section_extra {
	uint32_t payload_crc;
	uint32_t entry_size;
};

struct img_reader {
	int fd;
	char *path;
	uint64_t file_size;
	struct cryo_file_header hdr;
	struct cryo_img_index_entry *index;	/* INDEX itself excluded */
	struct section_extra *extra;
	size_t nr;
	char *strings;
	uint64_t strings_len;
	int defer_page_data;	/* IMGR_DEFER_PAGE_DATA */
};

/* Sequential chunked reads over the file, for the validation pass. */
struct scan {
	unsigned char *buf;
	size_t buf_size;	/* at least one page, at most SCAN_CHUNK_BYTES */
	uint64_t buf_off;	/* file offset of buf[0] */
	size_t buf_len;
};

static int bad(const struct img_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(const struct img_reader *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cryo_fail(CRYO_EIMAGE, "image %s: %s", r->path, msg);
}

static int bad_section(const struct img_reader *r, long i, uint32_t type, uint64_t off,
		       const char *what)
{
	if (i < 0)
		return bad(r, "index section at offset %llu: %s", (unsigned long long)off, what);
	return bad(r, "section %ld (%s) at offset %llu: %s", i, img_section_type_name(type),
		   (unsigned long long)off, what);
}

static int read_at(const struct img_reader *r, void *p, size_t n, uint64_t off)
{
	int ret = pread_full(r->fd, p, n, off);

	if (ret == -EIO)
		return bad(r, "read error or truncated at offset %llu (file is %llu bytes)",
			   (unsigned long long)off, (unsigned long long)r->file_size);
	if (ret)
		return bad(r, "reading at offset %llu: %s", (unsigned long long)off,
			   strerror(-ret));
	return 0;
}

/*
 * Make at least min_bytes at off available (min_bytes <= s->buf_size,
 * off + min_bytes <= limit). *p points at them, *avail says how many
 * contiguous bytes (up to limit) are in the buffer.
 */
static int scan_at(const struct img_reader *r, struct scan *s, uint64_t off, size_t min_bytes,
		   uint64_t limit, const unsigned char **p, size_t *avail)
{
	int ret;

	if (off > limit || limit - off < min_bytes)
		return bad(r, "internal: read of %zu bytes at %llu past %llu", min_bytes,
			   (unsigned long long)off, (unsigned long long)limit);
	if (off < s->buf_off || off + min_bytes > s->buf_off + s->buf_len) {
		uint64_t n = limit - off;

		if (n > s->buf_size)
			n = s->buf_size;
		ret = read_at(r, s->buf, n, off);
		if (ret)
			return ret;
		s->buf_off = off;
		s->buf_len = n;
	}
	*p = s->buf + (off - s->buf_off);
	*avail = s->buf_off + s->buf_len - off;
	return 0;
}

static int all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/*
 * CRC of the payload at off (len bytes), and check that the zero padding
 * up to the next 8-byte boundary is zero. PAD payloads must be zero too.
 */
static int scan_payload(const struct img_reader *r, struct scan *s, long i, uint32_t type,
			uint64_t hdr_off, uint64_t off, uint64_t len, uint32_t want_crc)
{
	uint64_t end = off + len, limit = align_up8(end);
	uint32_t crc = 0;
	int ret;

	while (off < limit) {
		const unsigned char *p;
		size_t avail;

		ret = scan_at(r, s, off, 1, limit, &p, &avail);
		if (ret)
			return ret;
		if (avail > limit - off)
			avail = limit - off;

		size_t in_payload = off < end ? (end - off < avail ? end - off : avail) : 0;

		crc = crc32c(crc, p, in_payload);
		if (type == CRYO_SEC_PAD && !all_zero(p, in_payload))
			return bad_section(r, i, type, hdr_off, "padding is not zero");
		if (!all_zero(p + in_payload, avail - in_payload))
			return bad_section(r, i, type, hdr_off,
					   "alignment padding after the payload is not zero");
		off += avail;
	}
	if (crc != want_crc)
		return bad_section(r, i, type, hdr_off, "checksum mismatch");
	return 0;
}

static const char *arch_name(uint32_t arch)
{
	return arch == CRYO_IMG_ARCH_X86_64 ? "x86_64" : "?";
}

static int check_header(struct img_reader *r, struct scan *s)
{
	const struct cryo_file_header *h = (const void *)s->buf;
	uint64_t size = r->file_size;
	uint32_t hsize, crc;
	int ret;

	if (size < sizeof(h->magic))
		return bad(r, "not a cryo image (file is %llu bytes)", (unsigned long long)size);
	ret = read_at(r, s->buf, size < FIRST_SECTION_OFFSET ? size : FIRST_SECTION_OFFSET, 0);
	if (ret)
		return ret;
	if (memcmp(h->magic, CRYO_IMG_MAGIC, sizeof(h->magic)))
		return bad(r, "not a cryo image (no %s magic)", CRYO_IMG_MAGIC);
	if (size < sizeof(*h))
		return bad(r, "truncated: header incomplete (file is %llu bytes)",
			   (unsigned long long)size);
	/* Before anything else: a newer major may have changed everything after. */
	if (h->version_major != CRYO_IMG_MAJOR)
		return bad(r, "unsupported version %u.%u (this cryo reads %u.x)",
			   h->version_major, h->version_minor, CRYO_IMG_MAJOR);
	hsize = h->header_size;
	if (hsize < sizeof(*h) || hsize > FIRST_SECTION_OFFSET || hsize % 4)
		return bad(r, "bad header size %u", hsize);
	if (size < FIRST_SECTION_OFFSET + SECTION_HEADER_BYTES + FOOTER_BYTES)
		return bad(r, "truncated: footer missing (file is %llu bytes)",
			   (unsigned long long)size);
	/* A newer minor may grow the header; its CRC is always its last field. */
	memcpy(&crc, s->buf + hsize - sizeof(crc), sizeof(crc));
	if (crc32c(0, s->buf, hsize - sizeof(crc)) != crc)
		return bad(r, "file header checksum mismatch");
	if (h->arch != CRYO_IMG_ARCH_X86_64)
		return bad(r, "built for architecture %u, this machine is %s (%u)", h->arch,
			   arch_name(CRYO_IMG_ARCH_X86_64), CRYO_IMG_ARCH_X86_64);
	if (h->page_size != CRYO_IMG_PAGE_SIZE)
		return bad(r, "page size %u, this cryo supports only %u", h->page_size,
			   CRYO_IMG_PAGE_SIZE);
	if (h->flags & ~(uint64_t)CRYO_IMG_F_PRECOPY)
		return bad(r, "unknown header flags 0x%llx", (unsigned long long)h->flags);
	if (!all_zero(s->buf + hsize, FIRST_SECTION_OFFSET - hsize))
		return bad(r, "padding after the file header is not zero");
	memcpy(&r->hdr, h, sizeof(r->hdr));
	r->hdr.crc = crc;
	return 0;
}

static int check_footer(struct img_reader *r, struct cryo_footer *f)
{
	uint64_t size = r->file_size;
	int ret;

	ret = read_at(r, f, sizeof(*f), size - sizeof(*f));
	if (ret)
		return ret;
	if (memcmp(f->magic, CRYO_IMG_FOOTER_MAGIC, sizeof(f->magic)))
		return bad(r, "truncated: footer missing (file is %llu bytes)",
			   (unsigned long long)size);
	if (crc32c(0, f, offsetof(struct cryo_footer, crc)) != f->crc)
		return bad(r, "footer checksum mismatch");
	if (f->file_size != size)
		return bad(r, "%s: footer says %llu bytes, file is %llu bytes",
			   f->file_size > size ? "truncated" : "trailing data",
			   (unsigned long long)f->file_size, (unsigned long long)size);
	if (f->index_offset < FIRST_SECTION_OFFSET || f->index_offset % SECTION_ALIGN_BYTES ||
	    f->index_offset > size - FOOTER_BYTES - SECTION_HEADER_BYTES)
		return bad(r, "footer: index offset %llu out of range",
			   (unsigned long long)f->index_offset);
	return 0;
}

/* Header checks common to INDEX and ordinary sections. */
static int check_section_header(const struct img_reader *r, long i,
				const struct cryo_section_header *h, uint64_t off)
{
	const char *why;

	if (h->magic != CRYO_SECTION_MAGIC)
		return bad_section(r, i, h->type, off, "no section magic");
	if (crc32c(0, h, offsetof(struct cryo_section_header, header_crc)) != h->header_crc)
		return bad_section(r, i, h->type, off, "header checksum mismatch");
	if (h->flags)
		return bad_section(r, i, h->type, off, "unknown section flags");
	why = check_shape(h->type, h->entry_size, h->entry_count, h->length);
	if (why)
		return bad_section(r, i, h->type, off, why);
	return 0;
}

/* Read and check the INDEX section; fills r->index and r->nr. */
static int load_index(struct img_reader *r, struct scan *s, const struct cryo_footer *f)
{
	struct cryo_section_header h;
	uint64_t off = f->index_offset;
	uint64_t payload_off = off + SECTION_HEADER_BYTES;
	uint64_t space = r->file_size - FOOTER_BYTES - payload_off;
	uint32_t crc = 0;
	int ret;

	ret = read_at(r, &h, sizeof(h), off);
	if (ret)
		return ret;
	ret = check_section_header(r, -1, &h, off);
	if (ret)
		return ret;
	if (h.type != CRYO_SEC_INDEX)
		return bad_section(r, -1, h.type, off, "not an INDEX section");
	if (h.entry_size < INDEX_ENTRY_BYTES || h.entry_size > MAX_INDEX_ENTRY_BYTES)
		return bad_section(r, -1, h.type, off, "bad index entry size");
	if (h.entry_count > MAX_INDEX_ENTRIES)
		return bad_section(r, -1, h.type, off, "too many sections");
	/* The INDEX payload, padded to 8, must end exactly where the footer starts. */
	if (h.length > space || align_up8(h.length) != space)
		return bad_section(r, -1, h.type, off, "length does not reach the footer");

	r->index = calloc(h.entry_count ? h.entry_count : 1, sizeof(*r->index));
	r->extra = calloc(h.entry_count ? h.entry_count : 1, sizeof(*r->extra));
	if (!r->index || !r->extra)
		return bad(r, "out of memory for an index of %u sections", h.entry_count);
	r->nr = h.entry_count;
	for (uint32_t k = 0; k < h.entry_count; k++) {
		const unsigned char *p;
		size_t avail;
		uint64_t eoff = payload_off + (uint64_t)k * h.entry_size;

		ret = scan_at(r, s, eoff, h.entry_size, payload_off + h.length, &p, &avail);
		if (ret)
			return ret;
		crc = crc32c(crc, p, h.entry_size);
		/* A newer minor may append fields to an entry: we know the first ones. */
		memcpy(&r->index[k], p, INDEX_ENTRY_BYTES);
	}
	if (crc != h.payload_crc)
		return bad_section(r, -1, h.type, off, "checksum mismatch");
	if (space != h.length) {
		unsigned char pad[SECTION_ALIGN_BYTES];

		ret = read_at(r, pad, space - h.length, payload_off + h.length);
		if (ret)
			return ret;
		if (!all_zero(pad, space - h.length))
			return bad_section(r, -1, h.type, off, "alignment padding is not zero");
	}
	return 0;
}

/*
 * The sections must tile [FIRST_SECTION_OFFSET, index_offset) in order:
 * each starts at the 8-aligned end of the one before. This rules out
 * overlaps, gaps that could hide data and offsets outside the file.
 */
static int check_index_entries(const struct img_reader *r, uint64_t index_off)
{
	uint64_t next = FIRST_SECTION_OFFSET;

	for (size_t i = 0; i < r->nr; i++) {
		const struct cryo_img_index_entry *e = &r->index[i];

		if (e->offset != next)
			return bad(r, "index entry %zu: section at offset %llu, expected %llu", i,
				   (unsigned long long)e->offset, (unsigned long long)next);
		if (e->type == CRYO_SEC_INDEX)
			return bad(r, "index entry %zu: a second INDEX section", i);
		if (index_off - e->offset < SECTION_HEADER_BYTES ||
		    e->length > index_off - e->offset - SECTION_HEADER_BYTES)
			return bad(r, "index entry %zu (%s): length %llu runs past the index", i,
				   img_section_type_name(e->type), (unsigned long long)e->length);
		next = align_up8(e->offset + SECTION_HEADER_BYTES + e->length);
	}
	if (next != index_off)
		return bad(r, "index: sections end at offset %llu, the index starts at %llu",
			   (unsigned long long)next, (unsigned long long)index_off);
	return 0;
}

static int is_page_data(uint32_t type)
{
	return type == CRYO_SEC_PAGES || type == CRYO_SEC_ZPAGES;
}

/* Deferred page data: only the (at most 7) alignment bytes after it are read here. */
static int check_deferred_padding(const struct img_reader *r, long i, uint32_t type,
				  uint64_t hdr_off, uint64_t len)
{
	uint64_t end = hdr_off + SECTION_HEADER_BYTES + len;
	unsigned char pad[SECTION_ALIGN_BYTES];
	size_t n = align_up8(end) - end;
	int ret;

	if (!n)
		return 0;
	ret = read_at(r, pad, n, end);
	if (!ret && !all_zero(pad, n))
		ret = bad_section(r, i, type, hdr_off,
				  "alignment padding after the payload is not zero");
	return ret;
}

static int check_sections(struct img_reader *r, struct scan *s, uint64_t index_off)
{
	long strings = -1;
	size_t next_deferred = 0;
	int ret;

	for (size_t i = 0; i < r->nr; i++) {
		const struct cryo_img_index_entry *e = &r->index[i];
		struct cryo_section_header h;
		const unsigned char *p;
		size_t avail;
		uint64_t stop = index_off;

		/* never read ahead into page data that is checked later */
		if (r->defer_page_data) {
			if (next_deferred < i)
				next_deferred = i;
			while (next_deferred < r->nr && !is_page_data(r->index[next_deferred].type))
				next_deferred++;
			if (next_deferred < r->nr)
				stop = r->index[next_deferred].offset + SECTION_HEADER_BYTES;
		}
		ret = scan_at(r, s, e->offset, sizeof(h), stop, &p, &avail);
		if (ret)
			return ret;
		memcpy(&h, p, sizeof(h));
		ret = check_section_header(r, i, &h, e->offset);
		if (ret)
			return ret;
		if (h.type != e->type || h.id != e->id || h.length != e->length ||
		    h.entry_count != e->entry_count)
			return bad_section(r, i, h.type, e->offset,
					   "header does not match the index");
		if (!type_is_known(h.type) && r->hdr.version_minor <= CRYO_IMG_MINOR)
			return bad_section(r, i, h.type, e->offset,
					   "unknown section type in an image of a known version");
		if (h.type == CRYO_SEC_PAGES && h.length >= CRYO_IMG_PAGES_ALIGN_MIN &&
		    (e->offset + SECTION_HEADER_BYTES) % CRYO_IMG_PAGE_SIZE)
			return bad_section(r, i, h.type, e->offset,
					   "page data not aligned to a page");
		if (h.type == CRYO_SEC_STRINGS) {
			if (strings >= 0)
				return bad_section(r, i, h.type, e->offset,
						   "a second STRINGS section");
			strings = i;
		}
		r->extra[i].payload_crc = h.payload_crc;
		r->extra[i].entry_size = h.entry_size;
		if (r->defer_page_data && is_page_data(h.type)) {
			ret = check_deferred_padding(r, i, h.type, e->offset, h.length);
			if (ret)
				return ret;
			continue;
		}
		ret = scan_payload(r, s, i, h.type, e->offset, e->offset + SECTION_HEADER_BYTES,
				   h.length, h.payload_crc);
		if (ret)
			return ret;
	}
	if (strings < 0)
		return 0;
	r->strings = imgr_load_blob(r, strings, &r->strings_len);
	if (!r->strings)
		return CRYO_EIMAGE;
	/* Terminated at both ends: offset 0 is "", and strlen never runs off. */
	if (r->strings_len && (r->strings[0] || r->strings[r->strings_len - 1]))
		return bad_section(r, strings, CRYO_SEC_STRINGS, r->index[strings].offset,
				   "strings not NUL-terminated");
	return 0;
}

int imgr_open(struct img_reader **rp, const char *path)
{
	return imgr_open_flags(rp, path, 0);
}

int imgr_open_flags(struct img_reader **rp, const char *path, unsigned flags)
{
	struct img_reader *r;
	struct cryo_footer footer;
	struct scan s = { 0 };
	struct stat st;
	int ret;

	*rp = NULL;
	r = xzalloc(sizeof(*r));
	if (!r)
		return CRYO_EINTERNAL;
	r->fd = -1;
	r->defer_page_data = !!(flags & IMGR_DEFER_PAGE_DATA);
	r->path = strdup(path);
	if (!r->path) {
		ret = cryo_fail(CRYO_EINTERNAL, "image %s: out of memory", path);
		goto out_err;
	}
	/* O_NONBLOCK: a FIFO must not hang us before we can refuse it. */
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0) {
		ret = cryo_fail(CRYO_ENOIMAGE, "image %s: %s", path, strerror(errno));
		goto out_err;
	}
	if (fstat(r->fd, &st)) {
		ret = cryo_fail(CRYO_ENOIMAGE, "image %s: %s", path, strerror(errno));
		goto out_err;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = cryo_fail(CRYO_ENOIMAGE, "image %s: not a regular file", path);
		goto out_err;
	}
	fcntl(r->fd, F_SETFL, 0);
	r->file_size = st.st_size;
	/* small images, small buffer; never less than the header page */
	s.buf_size = r->file_size < SCAN_CHUNK_BYTES ? r->file_size : SCAN_CHUNK_BYTES;
	if (s.buf_size < FIRST_SECTION_OFFSET)
		s.buf_size = FIRST_SECTION_OFFSET;
	s.buf = malloc(s.buf_size);
	if (!s.buf) {
		ret = cryo_fail(CRYO_EINTERNAL, "image %s: out of memory", path);
		goto out_err;
	}
	/* One sequential pass over everything: let the kernel read ahead widely. */
	posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);

	ret = check_header(r, &s);
	if (!ret)
		ret = check_footer(r, &footer);
	if (!ret)
		ret = load_index(r, &s, &footer);
	if (!ret)
		ret = check_index_entries(r, footer.index_offset);
	s.buf_len = 0;
	if (!ret)
		ret = check_sections(r, &s, footer.index_offset);
	if (ret)
		goto out_err;
	free(s.buf);
	*rp = r;
	return 0;

out_err:
	free(s.buf);
	imgr_close(r);
	return ret;
}

void imgr_close(struct img_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r->index);
	free(r->extra);
	free(r->strings);
	free(r);
}

const struct cryo_file_header *imgr_header(const struct img_reader *r)
{
	return &r->hdr;
}

int imgr_fd(const struct img_reader *r)
{
	return r->fd;
}

uint32_t imgr_payload_crc(const struct img_reader *r, size_t i)
{
	return r->extra[i].payload_crc;
}

int imgr_payload_crc_mismatch(const struct img_reader *r, size_t i)
{
	return bad_section(r, i, r->index[i].type, r->index[i].offset, "checksum mismatch");
}

uint64_t imgr_file_size(const struct img_reader *r)
{
	return r->file_size;
}

size_t imgr_nr_sections(const struct img_reader *r)
{
	return r->nr;
}

const struct cryo_img_index_entry *imgr_section(const struct img_reader *r, size_t i)
{
	return i < r->nr ? &r->index[i] : NULL;
}

uint64_t imgr_payload_offset(const struct img_reader *r, size_t i)
{
	return i < r->nr ? r->index[i].offset + SECTION_HEADER_BYTES : 0;
}

long imgr_find(const struct img_reader *r, uint32_t type, uint64_t id, int any_id, size_t from)
{
	for (size_t i = from; i < r->nr; i++)
		if (r->index[i].type == type && (any_id || r->index[i].id == id))
			return i;
	return -1;
}

/*
 * Copy the payload of section i into out, entry by entry: entries of
 * entry_size bytes become want_size bytes (cut or zero-extended; out must be
 * zeroed). With entry_size == want_size this is a straight read. The CRC is
 * checked again: the file may have changed since imgr_open().
 */
static int load_entries(struct img_reader *r, size_t i, unsigned char *out,
			uint32_t entry_size, uint32_t want_size)
{
	const struct cryo_img_index_entry *e = &r->index[i];
	uint64_t off = e->offset + SECTION_HEADER_BYTES, len = e->length, pos = 0;
	unsigned char *buf = NULL;
	size_t chunk;
	uint32_t crc = 0;
	int ret = 0;

	if (entry_size == want_size) {
		ret = read_at(r, out, len, off);
		if (ret)
			return ret;
		crc = crc32c(0, out, len);
		goto out_check;
	}
	chunk = len < SCAN_CHUNK_BYTES ? len : SCAN_CHUNK_BYTES;
	buf = malloc(chunk ? chunk : 1);
	if (!buf)
		return bad(r, "out of memory");
	while (pos < len) {
		size_t n = len - pos < chunk ? len - pos : chunk;

		ret = read_at(r, buf, n, off + pos);
		if (ret)
			goto out_free;
		crc = crc32c(crc, buf, n);
		for (size_t j = 0; j < n;) {
			uint64_t k = (pos + j) / entry_size, within = (pos + j) % entry_size;
			size_t seg = entry_size - within < n - j ? entry_size - within : n - j;

			if (within < want_size)
				memcpy(out + k * want_size + within, buf + j,
				       seg < want_size - within ? seg : want_size - within);
			j += seg;
		}
		pos += n;
	}
out_check:
	if (crc != r->extra[i].payload_crc)
		ret = bad_section(r, i, e->type, e->offset,
				  "checksum mismatch (the file changed after it was opened)");
out_free:
	free(buf);
	return ret;
}

void *imgr_load_table(struct img_reader *r, size_t i, uint32_t want_size, uint32_t *count)
{
	const struct cryo_img_index_entry *e;
	uint32_t entry_size;
	unsigned char *out;

	*count = 0;
	if (i >= r->nr) {
		cryo_log("image %s: no section %zu (the image has %zu)", r->path, i, r->nr);
		return NULL;
	}
	e = &r->index[i];
	entry_size = r->extra[i].entry_size;
	if (!want_size || type_is_untyped(e->type) || !entry_size ||
	    (uint64_t)entry_size * e->entry_count != e->length) {
		bad_section(r, i, e->type, e->offset, "not a table");
		return NULL;
	}
	if (e->length > MAX_LOAD_BYTES || (uint64_t)want_size * e->entry_count > MAX_LOAD_BYTES) {
		bad_section(r, i, e->type, e->offset, "table larger than 1 GiB");
		return NULL;
	}
	out = xzalloc((size_t)want_size * e->entry_count);
	if (!out)
		return NULL;
	if (load_entries(r, i, out, entry_size, want_size)) {
		free(out);
		return NULL;
	}
	*count = e->entry_count;
	return out;
}

void *imgr_load_blob(struct img_reader *r, size_t i, uint64_t *len)
{
	const struct cryo_img_index_entry *e;
	unsigned char *out;

	*len = 0;
	if (i >= r->nr) {
		cryo_log("image %s: no section %zu (the image has %zu)", r->path, i, r->nr);
		return NULL;
	}
	e = &r->index[i];
	if (e->length > MAX_LOAD_BYTES) {
		bad_section(r, i, e->type, e->offset, "payload larger than 1 GiB");
		return NULL;
	}
	/* One byte more, NUL, so text payloads can be used as strings. */
	out = xzalloc(e->length + 1);
	if (!out)
		return NULL;
	if (load_entries(r, i, out, 1, 1)) {
		free(out);
		return NULL;
	}
	*len = e->length;
	return out;
}

const char *imgr_str(const struct img_reader *r, cryo_str_t off)
{
	if (off == 0)
		return "";
	if (off >= r->strings_len)
		return NULL;
	return r->strings + off;
}
