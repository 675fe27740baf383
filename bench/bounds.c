/*
 * The physical limits cryo's speed is judged against.
 *
 * A checkpoint cannot be faster than copying memory and writing the image
 * to its storage; a restore cannot be faster than reading it back. This
 * program measures those bounds on this machine:
 *
 *	memcpy		large buffers, far beyond the caches
 *	write+fsync	a file of --mib MiB (default 1024) written with write()
 *			then fsync(), as cryo writes images
 *	read, cached	the same file read back while it is in the page cache
 *	read, O_DIRECT	read around the page cache (the device's speed; on tmpfs,
 *			where O_DIRECT is a no-op, about the cached figure)
 *
 * The file's data comes from and goes to a buffer as large as the file,
 * not a small cache-resident one, since cryo's data is process memory.
 *
 * for every LABEL=DIR given (default tmpfs=/dev/shm disk=/var/tmp).
 * Page-cache dropping needs root and is global, so the disk read figure
 * comes from O_DIRECT instead.
 *
 * usage: bounds [--mib N] [--json | --vars] [LABEL=DIR ...]
 *
 * --vars prints KEY=VALUE lines for a shell (bench/run.sh evaluates them):
 * memcpy_gbps, and LABEL_write_gbps, LABEL_read_cached_gbps,
 * LABEL_read_direct_gbps per directory (empty when not measurable).
 * GB/s are 10^9 bytes per second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MIB			(1024UL * 1024)
#define DEFAULT_FILE_MIB	1024
#define MEMCPY_BUF_MIB		256	/* far beyond any last-level cache */
#define MEMCPY_ROUNDS		3	/* best of: the first pays for page faults */
#define MEMCPY_COPIES		4	/* per round */
#define IO_ROUNDS		3	/* best of, for each storage figure */
#define IO_CHUNK_BYTES		(4 * MIB)	/* mmap()ed, so page-aligned for O_DIRECT */
#define FREE_SPACE_MARGIN_MIB	64
#define MAX_DIRS		8
#define NO_FIGURE		(-1.0)

enum output { OUT_TEXT, OUT_JSON, OUT_VARS };

struct storage {
	const char *label, *dir;
	double write_gbps, read_cached_gbps, read_direct_gbps;
	char skipped[128];	/* why nothing was measured, or "" */
};

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
	uint64_t *w = p, x = 0x9e3779b97f4a7c15ULL;

	for (size_t i = 0; i < bytes / sizeof(*w); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

static double measure_memcpy(void)
{
	size_t bytes = MEMCPY_BUF_MIB * MIB;
	char *src = map_buffer(bytes), *dst = map_buffer(bytes);
	double best = 0;

	fill_random(src, bytes);
	for (int r = 0; r < MEMCPY_ROUNDS; r++) {
		double t = now_s();

		for (int i = 0; i < MEMCPY_COPIES; i++) {
			memcpy(dst, src, bytes);
			/* Keep the compiler from proving the copies useless. */
			__asm__ volatile("" : : "r"(dst) : "memory");
		}
		t = now_s() - t;
		if (gbps(bytes * MEMCPY_COPIES, t) > best)
			best = gbps(bytes * MEMCPY_COPIES, t);
	}
	munmap(src, bytes);
	munmap(dst, bytes);
	return best;
}

/* Write bytes from buf (as large) in IO_CHUNK_BYTES calls, then fsync. */
static int write_file(int fd, const char *buf, uint64_t bytes)
{
	for (uint64_t done = 0; done < bytes; done += IO_CHUNK_BYTES) {
		ssize_t n = write(fd, buf + done, IO_CHUNK_BYTES);

		if (n != (ssize_t)IO_CHUNK_BYTES)
			return n < 0 ? -errno : -EIO;
	}
	return fsync(fd) ? -errno : 0;
}

/* Read the whole file into buf (as large); returns seconds, or a negative errno. */
static double read_file(const char *path, int flags, char *buf, uint64_t bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	double t = now_s();
	uint64_t done = 0;
	ssize_t n = 0;

	if (fd < 0)
		return -errno;
	while (done < bytes && (n = read(fd, buf + done, IO_CHUNK_BYTES)) > 0)
		done += n;
	t = now_s() - t;
	if (n < 0)
		t = -errno;
	close(fd);
	return t;
}

static void keep_best(double *best, uint64_t bytes, double seconds)
{
	if (seconds > 0 && gbps(bytes, seconds) > *best)
		*best = gbps(bytes, seconds);
}

static void measure_storage(struct storage *s, uint64_t bytes, char *buf)
{
	struct statvfs vfs;
	char path[4096];
	double t;
	int fd, ret;

	s->write_gbps = s->read_cached_gbps = s->read_direct_gbps = NO_FIGURE;
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
	/*
	 * Best of several rounds: a bound is what the machine can do. In a VM
	 * the first touch of guest memory the host has not backed yet (tmpfs
	 * pages, here) is several times slower than any later one.
	 */
	for (int r = 0; r < IO_ROUNDS; r++) {
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0) {
			snprintf(s->skipped, sizeof(s->skipped), "open: %s", strerror(errno));
			goto out;
		}
		t = now_s();
		ret = write_file(fd, buf, bytes);
		t = now_s() - t;
		close(fd);
		if (ret) {
			snprintf(s->skipped, sizeof(s->skipped), "write: %s", strerror(-ret));
			s->write_gbps = NO_FIGURE;
			goto out;
		}
		keep_best(&s->write_gbps, bytes, t);
	}
	for (int r = 0; r < IO_ROUNDS; r++) {
		keep_best(&s->read_cached_gbps, bytes, read_file(path, 0, buf, bytes));
		/* Some file systems refuse O_DIRECT (EINVAL): no figure, not an error. */
		keep_best(&s->read_direct_gbps, bytes, read_file(path, O_DIRECT, buf, bytes));
	}
out:
	unlink(path);
}

static void print_figure(const char *what, double v)
{
	if (v < 0)
		printf("  %-40s %8s\n", what, "n/a");
	else
		printf("  %-40s %8.2f GB/s\n", what, v);
}

static void print_text(double memcpy_gbps, const struct storage *s, int n, unsigned mib)
{
	char what[128];

	printf("bounds (%u MiB files, %d MiB memcpy buffers)\n", mib, MEMCPY_BUF_MIB);
	print_figure("memcpy", memcpy_gbps);
	for (int i = 0; i < n; i++) {
		if (s[i].skipped[0]) {
			printf("  %s (%s): skipped, %s\n", s[i].label, s[i].dir, s[i].skipped);
			continue;
		}
		snprintf(what, sizeof(what), "%s (%s) write+fsync", s[i].label, s[i].dir);
		print_figure(what, s[i].write_gbps);
		snprintf(what, sizeof(what), "%s (%s) read, cached", s[i].label, s[i].dir);
		print_figure(what, s[i].read_cached_gbps);
		snprintf(what, sizeof(what), "%s (%s) read, O_DIRECT", s[i].label, s[i].dir);
		print_figure(what, s[i].read_direct_gbps);
	}
}

static void print_var(const char *label, const char *key, double v)
{
	if (v < 0)
		printf("%s%s%s=\n", label, *label ? "_" : "", key);
	else
		printf("%s%s%s=%.3f\n", label, *label ? "_" : "", key, v);
}

static void print_vars(double memcpy_gbps, const struct storage *s, int n)
{
	print_var("", "memcpy_gbps", memcpy_gbps);
	for (int i = 0; i < n; i++) {
		print_var(s[i].label, "write_gbps", s[i].write_gbps);
		print_var(s[i].label, "read_cached_gbps", s[i].read_cached_gbps);
		print_var(s[i].label, "read_direct_gbps", s[i].read_direct_gbps);
	}
}

static void print_json_figure(const char *key, double v, const char *sep)
{
	if (v < 0)
		printf("\"%s\": null%s", key, sep);
	else
		printf("\"%s\": %.3f%s", key, v, sep);
}

/* Labels and directories are checked to need no JSON escaping. */
static void print_json(double memcpy_gbps, const struct storage *s, int n, unsigned mib)
{
	printf("{\"file_mib\": %u, \"memcpy_buffer_mib\": %d, ", mib, MEMCPY_BUF_MIB);
	print_json_figure("memcpy_gbps", memcpy_gbps, ", ");
	printf("\"storage\": {");
	for (int i = 0; i < n; i++) {
		printf("%s\"%s\": {\"dir\": \"%s\", ", i ? ", " : "", s[i].label, s[i].dir);
		print_json_figure("write_gbps", s[i].write_gbps, ", ");
		print_json_figure("read_cached_gbps", s[i].read_cached_gbps, ", ");
		print_json_figure("read_direct_gbps", s[i].read_direct_gbps, "");
		if (s[i].skipped[0])
			printf(", \"skipped\": \"%s\"", s[i].skipped);
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
	fputs("usage: bounds [--mib N] [--json | --vars] [LABEL=DIR ...]\n"
	      "Measure memcpy and storage bandwidth (default dirs: tmpfs=/dev/shm disk=/var/tmp).\n",
	      stderr);
	exit(64);
}

int main(int argc, char **argv)
{
	struct storage dirs[MAX_DIRS];
	enum output out = OUT_TEXT;
	unsigned mib = DEFAULT_FILE_MIB;
	double memcpy_gbps;
	char *buf;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!strcmp(argv[i], "--json")) {
			out = OUT_JSON;
		} else if (!strcmp(argv[i], "--vars")) {
			out = OUT_VARS;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			mib = strtoul(argv[++i], NULL, 10);
			if (!mib || mib * MIB % IO_CHUNK_BYTES)
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
	/*
	 * Data goes between the file and a buffer as large as the file, in
	 * memory already faulted in: like a checkpoint writing a process's
	 * pages, or a restore filling them, minus cryo's own costs.
	 */
	buf = map_buffer((size_t)mib * MIB);
	fill_random(buf, (size_t)mib * MIB);
	for (int i = 0; i < n; i++)
		measure_storage(&dirs[i], (uint64_t)mib * MIB, buf);

	if (out == OUT_JSON)
		print_json(memcpy_gbps, dirs, n, mib);
	else if (out == OUT_VARS)
		print_vars(memcpy_gbps, dirs, n);
	else
		print_text(memcpy_gbps, dirs, n, mib);
	return 0;
}
