/*
 * The physical limits cryo's speed is judged against.
 *
 * A checkpoint cannot be faster than reading the target's memory and
 * writing the image to its storage; a restore cannot be faster than reading
 * the image back into fresh memory. This program measures those bounds on
 * this machine, each as the best of several rounds (a bound is what the
 * machine can do; in a VM the first touch of guest memory the host has not
 * backed yet is several times slower than any later one):
 *
 *	memcpy		 large buffers, far beyond the caches
 *	process_vm_readv another process's memory (a child holding --mib MiB,
 *			 at most 1024, of random data) copied into an 8 MiB
 *			 buffer, 8 MiB per call: how cryo reads a target
 *
 * and for every LABEL=DIR given (default tmpfs=/dev/shm disk=/var/tmp), on
 * a file of --mib MiB (default 1024) written from and read into a buffer as
 * large (cryo's data is process memory, not a small cache-resident buffer):
 *
 *	write		  write() only, left in the page cache (cryo --no-sync)
 *	write+fsync	  write() then fsync(), as cryo writes images
 *	write O_DIRECT	  around the page cache (n/a where refused)
 *	read		  read() from the page cache into memory already faulted in
 *	read, fresh	  read() from the page cache into fresh memory, which the
 *			  kernel must allocate and zero first, as in a restore:
 *			  the restore bound. mmap(MAP_POPULATE) and read() are
 *			  timed together (populating first is ~1.5 times as fast
 *			  as taking one page fault per page, here)
 *	read O_DIRECT	  around the page cache (the device's speed; on tmpfs
 *			  about the cached figure), into faulted-in memory
 *	read O_DIRECT, fresh  the same into fresh memory
 *	read cold, fresh  read() of the file just dropped from the page cache
 *			  (posix_fadvise DONTNEED: the file is clean) into fresh
 *			  memory, with the kernel's readahead; the cold-restore
 *			  bound is the better of this and the previous figure
 *
 * and the codecs cryo offers, on 256 MiB of the "text" pattern: compression
 * as cryo's checkpoint does it (one thread per CPU, each with its own
 * context, zstd level 1 and lz4 default, whole 2 MiB chunks), decompression
 * as cryo's restore does it (the same chunks, a thread per CPU), in
 * uncompressed bytes per second; the ratio.
 *
 * Page-cache dropping needs root and is global, so the cold read figures
 * come from O_DIRECT instead.
 *
 * usage: bounds [--mib N] [--no-codecs] [--json | --vars] [LABEL=DIR ...]
 *
 * --vars prints KEY=VALUE lines for a shell (bench/run.sh evaluates them):
 * memcpy_gbps, pvr_gbps, LABEL_{write,write_fsync,write_direct,read_cached,
 * read_fresh,read_direct,read_direct_fresh,read_cold_fresh}_gbps per directory, and
 * {zstd,lz4}_{compress_gbps,decompress_gbps,ratio} (empty when not measured).
 * GB/s are 10^9 bytes per second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "patterns.h"

#define MIB			(1024UL * 1024)
#define DEFAULT_FILE_MIB	1024
#define MEMCPY_BUF_MIB		256	/* far beyond any last-level cache */
#define MEMCPY_ROUNDS		3	/* best of: the first pays for page faults */
#define MEMCPY_COPIES		4	/* per round */
#define PVR_MAX_MIB		1024
#define PVR_ROUNDS		3
#define IO_ROUNDS		3	/* best of, for each storage figure */
#define IO_CHUNK_BYTES		(4 * MIB)	/* mmap()ed, so page-aligned for O_DIRECT */
#define CODEC_CHUNK_BYTES	(8 * MIB)	/* the checkpoint's plain chunk (src/dump/pages.c) */
#define ZCHUNK_BYTES		(2 * MIB)	/* checkpoint's compressed chunk (src/dump/pages.c) */
#define MAX_COMPRESS_THREADS	8		/* the same cap as cryo's */
#define CODEC_DATA_MIB		256
#define CODEC_ROUNDS		2
#define ZSTD_LEVEL		1	/* cryo's default (src/image/codec.c) */
#define FREE_SPACE_MARGIN_MIB	64
#define MAX_DIRS		8
#define NO_FIGURE		(-1.0)

enum output { OUT_TEXT, OUT_JSON, OUT_VARS };

enum io_figure {
	IO_WRITE, IO_WRITE_FSYNC, IO_WRITE_DIRECT,
	IO_READ_CACHED, IO_READ_FRESH, IO_READ_DIRECT, IO_READ_DIRECT_FRESH, IO_READ_COLD_FRESH,
	IO_COUNT
};

static const struct {
	const char *key, *text;
} io_names[IO_COUNT] = {
	[IO_WRITE] = { "write_gbps", "write (page cache)" },
	[IO_WRITE_FSYNC] = { "write_fsync_gbps", "write+fsync" },
	[IO_WRITE_DIRECT] = { "write_direct_gbps", "write O_DIRECT" },
	[IO_READ_CACHED] = { "read_cached_gbps", "read (page cache)" },
	[IO_READ_FRESH] = { "read_fresh_gbps", "read into fresh memory" },
	[IO_READ_DIRECT] = { "read_direct_gbps", "read O_DIRECT" },
	[IO_READ_DIRECT_FRESH] = { "read_direct_fresh_gbps", "read O_DIRECT, fresh memory" },
	[IO_READ_COLD_FRESH] = { "read_cold_fresh_gbps", "read cold, fresh memory" },
};

struct storage {
	const char *label, *dir;
	double gbps[IO_COUNT];
	char skipped[128];	/* why nothing was measured, or "" */
};

enum codec_figure { CODEC_COMPRESS, CODEC_DECOMPRESS, CODEC_RATIO, CODEC_FIGURES };
static const char *const codec_keys[CODEC_FIGURES] = { "compress_gbps", "decompress_gbps",
						       "ratio" };
enum { CODEC_ZSTD, CODEC_LZ4, CODECS };
static const char *const codec_names[CODECS] = { "zstd", "lz4" };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double gbps(uint64_t bytes, double seconds)
{
	return bytes / seconds / 1e9;
}

static void keep_best(double *best, uint64_t bytes, double seconds)
{
	if (seconds > 0 && gbps(bytes, seconds) > *best)
		*best = gbps(bytes, seconds);
}

static void *map_buffer(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "bounds: mmap %zu MiB: %s\n", bytes / MIB, strerror(errno));
		exit(1);
	}
	return p;
}

/* Random bytes, so no layer on the way can compress or skip zeros. */
static void fill_random(void *p, size_t bytes)
{
	pattern_fill(p, bytes, 0, PAT_RANDOM, 1);
}

static double measure_memcpy(void)
{
	size_t bytes = MEMCPY_BUF_MIB * MIB;
	char *src = map_buffer(bytes), *dst = map_buffer(bytes);
	double best = NO_FIGURE;

	fill_random(src, bytes);
	for (int r = 0; r < MEMCPY_ROUNDS; r++) {
		double t = now_s();

		for (int i = 0; i < MEMCPY_COPIES; i++) {
			memcpy(dst, src, bytes);
			/* Keep the compiler from proving the copies useless. */
			__asm__ volatile("" : : "r"(dst) : "memory");
		}
		keep_best(&best, bytes * MEMCPY_COPIES, now_s() - t);
	}
	munmap(src, bytes);
	munmap(dst, bytes);
	return best;
}

/*
 * A child fills `bytes` of random memory and waits; we copy it out with
 * process_vm_readv, CODEC_CHUNK_BYTES per call into one reused buffer, as
 * cryo does.
 */
static double measure_pvr(size_t bytes)
{
	char *src = map_buffer(bytes), *dst = map_buffer(CODEC_CHUNK_BYTES);
	double best = NO_FIGURE;
	int ready[2];
	pid_t pid;
	char c;

	if (pipe(ready))
		return NO_FIGURE;
	pid = fork();
	if (pid < 0)
		return NO_FIGURE;
	if (pid == 0) {
		fill_random(src, bytes);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	munmap(src, bytes);	/* ours was never touched: the child's is the copy */
	if (read(ready[0], &c, 1) != 1)
		goto out;
	memset(dst, 0, CODEC_CHUNK_BYTES);
	for (int r = 0; r < PVR_ROUNDS; r++) {
		double t = now_s();
		size_t done;

		for (done = 0; done < bytes; done += CODEC_CHUNK_BYTES) {
			struct iovec local = { dst, CODEC_CHUNK_BYTES };
			struct iovec remote = { src + done, CODEC_CHUNK_BYTES };

			if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != CODEC_CHUNK_BYTES)
				break;
		}
		if (done < bytes) {
			fprintf(stderr, "bounds: process_vm_readv: %s\n", strerror(errno));
			break;
		}
		keep_best(&best, bytes, now_s() - t);
	}
out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ready[0]);
	munmap(dst, CODEC_CHUNK_BYTES);
	return best;
}

/* Write bytes from buf (as large) in IO_CHUNK_BYTES calls; seconds or -errno. */
static double write_file(const char *path, int flags, int do_fsync, const char *buf,
			 uint64_t bytes)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | flags);
	double t;

	if (fd < 0)
		return -errno;
	t = now_s();
	for (uint64_t done = 0; done < bytes; done += IO_CHUNK_BYTES) {
		ssize_t n = write(fd, buf + done, IO_CHUNK_BYTES);

		if (n != (ssize_t)IO_CHUNK_BYTES) {
			t = n < 0 ? -errno : -EIO;
			close(fd);
			return t;
		}
	}
	if (do_fsync && fsync(fd)) {
		t = -errno;
		close(fd);
		return t;
	}
	t = now_s() - t;
	close(fd);
	return t;
}

/*
 * Read the whole file into buf (as large; NULL: into a fresh mapping, whose
 * allocation is part of the time), after dropping it from the page cache
 * if cold; seconds, or a negative errno.
 */
static double read_file(const char *path, int flags, int cold, char *buf, uint64_t bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	char *dst = buf;
	uint64_t done = 0;
	ssize_t n = 0;
	double t;

	if (fd < 0)
		return -errno;
	if (cold && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) {
		close(fd);
		return -EINVAL;
	}
	t = now_s();
	if (!dst) {
		dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (dst == MAP_FAILED) {
			t = -errno;
			close(fd);
			return t;
		}
	}
	while (done < bytes && (n = read(fd, dst + done, IO_CHUNK_BYTES)) > 0)
		done += n;
	t = now_s() - t;
	if (n < 0)
		t = -errno;
	if (!buf)
		munmap(dst, bytes);
	close(fd);
	return t;
}

static void measure_storage(struct storage *s, uint64_t bytes, char *buf)
{
	struct statvfs vfs;
	char path[4096];
	double t;
	int fd;

	for (int i = 0; i < IO_COUNT; i++)
		s->gbps[i] = NO_FIGURE;
	if (statvfs(s->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < bytes + FREE_SPACE_MARGIN_MIB * MIB) {
		snprintf(s->skipped, sizeof(s->skipped), "only %llu MiB free",
			 (unsigned long long)vfs.f_bavail * vfs.f_frsize / MIB);
		return;
	}
	snprintf(path, sizeof(path), "%s/cryo-bounds.XXXXXX", s->dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		snprintf(s->skipped, sizeof(s->skipped), "cannot create a file: %s",
			 strerror(errno));
		return;
	}
	close(fd);
	for (int r = 0; r < IO_ROUNDS; r++) {
		/* Some file systems refuse O_DIRECT (EINVAL): no figure, not an error. */
		keep_best(&s->gbps[IO_WRITE_DIRECT], bytes, write_file(path, O_DIRECT, 0, buf, bytes));
		keep_best(&s->gbps[IO_WRITE], bytes, write_file(path, 0, 0, buf, bytes));
		/* last, so the file is clean for the reads */
		t = write_file(path, 0, 1, buf, bytes);
		if (t < 0) {
			snprintf(s->skipped, sizeof(s->skipped), "write: %s", strerror((int)-t));
			for (int i = 0; i < IO_COUNT; i++)
				s->gbps[i] = NO_FIGURE;
			goto out;
		}
		keep_best(&s->gbps[IO_WRITE_FSYNC], bytes, t);
	}
	for (int r = 0; r < IO_ROUNDS; r++) {
		keep_best(&s->gbps[IO_READ_CACHED], bytes, read_file(path, 0, 0, buf, bytes));
		keep_best(&s->gbps[IO_READ_FRESH], bytes, read_file(path, 0, 0, NULL, bytes));
		keep_best(&s->gbps[IO_READ_DIRECT], bytes, read_file(path, O_DIRECT, 0, buf, bytes));
		keep_best(&s->gbps[IO_READ_DIRECT_FRESH], bytes,
			  read_file(path, O_DIRECT, 0, NULL, bytes));
		keep_best(&s->gbps[IO_READ_COLD_FRESH], bytes, read_file(path, 0, 1, NULL, bytes));
	}
out:
	unlink(path);
}

/* One (de)compression thread: every nth 2 MiB chunk, its own context. */
struct zjob {
	int codec, first, step, nchunks;
	const char *src;
	char *out;
	size_t *lens;		/* per chunk: its compressed length */
	size_t cap, total;
	int failed;
	pthread_t thread;
};

static void *compress_thread(void *arg)
{
	struct zjob *j = arg;
	ZSTD_CCtx *z = j->codec == CODEC_ZSTD ? ZSTD_createCCtx() : NULL;

	if (j->codec == CODEC_ZSTD && !z) {
		j->failed = 1;
		return NULL;
	}
	if (z)
		ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	for (int i = j->first; i < j->nchunks; i += j->step) {
		const char *in = j->src + (size_t)i * ZCHUNK_BYTES;
		char *o = j->out + (size_t)i * j->cap;
		size_t n;

		if (z) {
			n = ZSTD_compress2(z, o, j->cap, in, ZCHUNK_BYTES);
			n = ZSTD_isError(n) ? 0 : n;
		} else {
			int r = LZ4_compress_default(in, o, ZCHUNK_BYTES, (int)j->cap);

			n = r > 0 ? (size_t)r : 0;
		}
		if (!n)
			j->failed = 1;
		j->lens[i] = n;
		j->total += n;
	}
	ZSTD_freeCCtx(z);
	return NULL;
}

static void *decompress_thread(void *arg)
{
	struct zjob *j = arg;
	ZSTD_DCtx *z = j->codec == CODEC_ZSTD ? ZSTD_createDCtx() : NULL;
	char *raw = malloc(ZCHUNK_BYTES);

	if ((j->codec == CODEC_ZSTD && !z) || !raw) {
		j->failed = 1;
		ZSTD_freeDCtx(z);
		free(raw);
		return NULL;
	}
	memset(raw, 0, ZCHUNK_BYTES);
	for (int i = j->first; i < j->nchunks; i += j->step) {
		const char *in = j->out + (size_t)i * j->cap;
		int ok;

		if (z)
			ok = ZSTD_decompressDCtx(z, raw, ZCHUNK_BYTES, in, j->lens[i]) == ZCHUNK_BYTES;
		else
			ok = LZ4_decompress_safe(in, raw, (int)j->lens[i], ZCHUNK_BYTES) ==
			     ZCHUNK_BYTES;
		if (!ok || memcmp(raw, j->src + (size_t)i * ZCHUNK_BYTES, 64))
			j->failed = 1;
	}
	ZSTD_freeDCtx(z);
	free(raw);
	return NULL;
}

/*
 * Seconds to compress bytes of src with one thread per CPU (or, decompress:
 * to decompress what that left in out and lens); 0 on failure.
 */
static double codec_parallel(int codec, int decompress, const char *src, size_t bytes, char *out,
			     size_t cap, size_t *lens, size_t *total)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 1 : cpus > MAX_COMPRESS_THREADS ? MAX_COMPRESS_THREADS : (int)cpus;
	struct zjob jobs[MAX_COMPRESS_THREADS];
	int started = 0, failed = 0;
	double t = now_s();

	*total = 0;
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct zjob){ .codec = codec, .first = i, .step = n,
					 .nchunks = (int)(bytes / ZCHUNK_BYTES), .src = src,
					 .out = out, .lens = lens, .cap = cap };
		if (pthread_create(&jobs[i].thread, NULL,
				   decompress ? decompress_thread : compress_thread, &jobs[i])) {
			failed = 1;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(jobs[i].thread, NULL);
		failed |= jobs[i].failed;
		*total += jobs[i].total;
	}
	t = now_s() - t;
	return failed ? 0 : t;
}

/*
 * Compress CODEC_DATA_MIB of text as cryo's checkpoint does, then
 * decompress it as cryo's restore does.
 */
static void measure_codecs(double fig[CODECS][CODEC_FIGURES])
{
	size_t bytes = CODEC_DATA_MIB * MIB, nchunks = bytes / ZCHUNK_BYTES;
	size_t zcap = ZSTD_compressBound(ZCHUNK_BYTES);
	size_t out_bytes;
	char *src = map_buffer(bytes), *out;
	size_t *lens = calloc(nchunks, sizeof(*lens));

	if ((size_t)LZ4_compressBound(ZCHUNK_BYTES) > zcap)
		zcap = LZ4_compressBound(ZCHUNK_BYTES);
	out_bytes = nchunks * zcap;
	out = map_buffer(out_bytes);
	for (int k = 0; k < CODECS; k++)
		for (int f = 0; f < CODEC_FIGURES; f++)
			fig[k][f] = NO_FIGURE;
	if (!lens)
		goto out;
	pattern_fill((uint8_t *)src, bytes, 0, PAT_TEXT, 1);
	for (int k = 0; k < CODECS; k++) {
		for (int r = 0; r < CODEC_ROUNDS; r++) {
			size_t ztotal;
			double zt = codec_parallel(k, 0, src, bytes, out, zcap, lens, &ztotal);

			if (zt <= 0)
				goto out;
			keep_best(&fig[k][CODEC_COMPRESS], bytes, zt);
			fig[k][CODEC_RATIO] = (double)bytes / ztotal;
		}
		for (int r = 0; r < CODEC_ROUNDS; r++) {
			size_t unused;
			double t = codec_parallel(k, 1, src, bytes, out, zcap, lens, &unused);

			if (t <= 0) {
				fig[k][CODEC_DECOMPRESS] = NO_FIGURE;
				goto out;
			}
			keep_best(&fig[k][CODEC_DECOMPRESS], bytes, t);
		}
	}
out:
	free(lens);
	munmap(src, bytes);
	munmap(out, out_bytes);
}

static void print_figure(const char *what, double v, const char *unit)
{
	if (v < 0)
		printf("  %-46s %8s\n", what, "n/a");
	else
		printf("  %-46s %8.2f %s\n", what, v, unit);
}

static void print_text(double memcpy_gbps, double pvr_gbps, const struct storage *s, int n,
		       unsigned mib, double codec[CODECS][CODEC_FIGURES], int codecs)
{
	char what[160];

	printf("bounds (%u MiB files, %d MiB memcpy buffers)\n", mib, MEMCPY_BUF_MIB);
	print_figure("memcpy", memcpy_gbps, "GB/s");
	print_figure("process_vm_readv from another process", pvr_gbps, "GB/s");
	for (int i = 0; i < n; i++) {
		if (s[i].skipped[0]) {
			printf("  %s (%s): skipped, %s\n", s[i].label, s[i].dir, s[i].skipped);
			continue;
		}
		for (int f = 0; f < IO_COUNT; f++) {
			snprintf(what, sizeof(what), "%s (%s) %s", s[i].label, s[i].dir,
				 io_names[f].text);
			print_figure(what, s[i].gbps[f], "GB/s");
		}
	}
	for (int k = 0; codecs && k < CODECS; k++) {
		snprintf(what, sizeof(what), "%s compress (text, a thread per CPU)", codec_names[k]);
		print_figure(what, codec[k][CODEC_COMPRESS], "GB/s");
		snprintf(what, sizeof(what), "%s decompress (a thread per CPU)", codec_names[k]);
		print_figure(what, codec[k][CODEC_DECOMPRESS], "GB/s");
		snprintf(what, sizeof(what), "%s ratio", codec_names[k]);
		print_figure(what, codec[k][CODEC_RATIO], ": 1");
	}
}

static void print_var(const char *label, const char *key, double v)
{
	if (v < 0)
		printf("%s%s%s=\n", label, *label ? "_" : "", key);
	else
		printf("%s%s%s=%.3f\n", label, *label ? "_" : "", key, v);
}

static void print_vars(double memcpy_gbps, double pvr_gbps, const struct storage *s, int n,
		       double codec[CODECS][CODEC_FIGURES], int codecs)
{
	print_var("", "memcpy_gbps", memcpy_gbps);
	print_var("", "pvr_gbps", pvr_gbps);
	for (int i = 0; i < n; i++)
		for (int f = 0; f < IO_COUNT; f++)
			print_var(s[i].label, io_names[f].key, s[i].gbps[f]);
	for (int k = 0; k < CODECS; k++)
		for (int f = 0; f < CODEC_FIGURES; f++)
			print_var(codec_names[k], codec_keys[f], codecs ? codec[k][f] : NO_FIGURE);
}

static void print_json_figure(const char *key, double v, const char *sep)
{
	if (v < 0)
		printf("\"%s\": null%s", key, sep);
	else
		printf("\"%s\": %.3f%s", key, v, sep);
}

/* Labels and directories are checked to need no JSON escaping. */
static void print_json(double memcpy_gbps, double pvr_gbps, const struct storage *s, int n,
		       unsigned mib, double codec[CODECS][CODEC_FIGURES], int codecs)
{
	printf("{\"file_mib\": %u, \"memcpy_buffer_mib\": %d, ", mib, MEMCPY_BUF_MIB);
	print_json_figure("memcpy_gbps", memcpy_gbps, ", ");
	print_json_figure("pvr_gbps", pvr_gbps, ", ");
	printf("\"storage\": {");
	for (int i = 0; i < n; i++) {
		printf("%s\"%s\": {\"dir\": \"%s\"", i ? ", " : "", s[i].label, s[i].dir);
		for (int f = 0; f < IO_COUNT; f++) {
			printf(", ");
			print_json_figure(io_names[f].key, s[i].gbps[f], "");
		}
		if (s[i].skipped[0])
			printf(", \"skipped\": \"%s\"", s[i].skipped);
		printf("}");
	}
	printf("}, \"codecs\": {");
	for (int k = 0; k < CODECS; k++) {
		printf("%s\"%s\": {", k ? ", " : "", codec_names[k]);
		for (int f = 0; f < CODEC_FIGURES; f++)
			print_json_figure(codec_keys[f], codecs ? codec[k][f] : NO_FIGURE,
					  f + 1 < CODEC_FIGURES ? ", " : "");
		printf("}");
	}
	printf("}}\n");
}

static int is_plain(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && !strchr(extra, *s))
			return 0;
	return 1;
}

static void usage(void)
{
	fputs("usage: bounds [--mib N] [--no-codecs] [--json | --vars] [LABEL=DIR ...]\n"
	      "Measure memory, process_vm_readv, storage and codec bandwidth\n"
	      "(default dirs: tmpfs=/dev/shm disk=/var/tmp).\n",
	      stderr);
	exit(64);
}

int main(int argc, char **argv)
{
	struct storage dirs[MAX_DIRS];
	double codec[CODECS][CODEC_FIGURES];
	enum output out = OUT_TEXT;
	unsigned mib = DEFAULT_FILE_MIB;
	double memcpy_gbps, pvr_gbps;
	int n = 0, codecs = 1;
	char *buf;

	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!strcmp(argv[i], "--json")) {
			out = OUT_JSON;
		} else if (!strcmp(argv[i], "--vars")) {
			out = OUT_VARS;
		} else if (!strcmp(argv[i], "--no-codecs")) {
			codecs = 0;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			mib = strtoul(argv[++i], NULL, 10);
			if (!mib || mib * MIB % CODEC_CHUNK_BYTES)
				usage();
		} else if (eq && n < MAX_DIRS) {
			*eq = 0;
			dirs[n] = (struct storage){ .label = argv[i], .dir = eq + 1 };
			if (!*argv[i] || !is_plain(argv[i], "") || !is_plain(eq + 1, "/.-"))
				usage();
			n++;
		} else {
			usage();
		}
	}
	if (!n) {
		dirs[n++] = (struct storage){ .label = "tmpfs", .dir = "/dev/shm" };
		dirs[n++] = (struct storage){ .label = "disk", .dir = "/var/tmp" };
	}

	memcpy_gbps = measure_memcpy();
	pvr_gbps = measure_pvr((size_t)(mib < PVR_MAX_MIB ? mib : PVR_MAX_MIB) * MIB);
	if (codecs)
		measure_codecs(codec);
	buf = map_buffer((size_t)mib * MIB);
	fill_random(buf, (size_t)mib * MIB);
	for (int i = 0; i < n; i++)
		measure_storage(&dirs[i], (uint64_t)mib * MIB, buf);

	if (out == OUT_JSON)
		print_json(memcpy_gbps, pvr_gbps, dirs, n, mib, codec, codecs);
	else if (out == OUT_VARS)
		print_vars(memcpy_gbps, pvr_gbps, dirs, n, codec, codecs);
	else
		print_text(memcpy_gbps, pvr_gbps, dirs, n, mib, codec, codecs);
	return 0;
}
