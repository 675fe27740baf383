/*
 * mem_file_deleted: mappings of files that were deleted while mapped (an
 * upgraded binary or library, a scratch file unlinked after mmap), with no
 * descriptor left open: the mappings alone hold the files.
 *
 *  - gone-shared.dat, 32 KiB, MAP_SHARED read-write, half rewritten
 *    through the mapping;
 *  - gone-private.dat, 64 KiB, MAP_PRIVATE read-write, some pages written
 *    (copy-on-write), the others the file's.
 *
 * After restore: maps names each one "<path> (deleted)", the path did not
 * come back into the directory, the contents are right, and the mappings
 * still share the deleted files: through /proc/self/map_files (an fd on
 * the very file a mapping maps) the shared file holds what was written
 * through the mapping (and what is written now), and a write to the
 * private mapping's file shows through its unwritten pages but not the
 * written ones.
 */
#include "testlib.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define SHARED_LEN (32 * 1024)
#define PRIV_LEN (64 * 1024)
#define PRIV_PAGES (PRIV_LEN / PAGE)

static unsigned char *shared, *priv;
static char shared_path[4096], priv_path[4096];
static const char priv_map[PRIV_PAGES + 1] = "w..w.r.ww......w";

static void *map_new_file(const char *path, size_t len, uint64_t seed, int flags)
{
	static unsigned char buf[PRIV_LEN];
	int fd = SYS(open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
	void *p;

	fill_pattern(buf, len, seed);
	if (SYS(write(fd, buf, len)) != (ssize_t)len)
		fail("setup: short write");
	p = (void *)SYS(mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0));
	close(fd);
	SYS(unlink(path));
	return p;
}

/* An fd on the file that the mapping at p..p+len maps. */
static int map_file_fd(void *p, size_t len, int flags)
{
	char link[128];
	int fd;

	snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + len);
	fd = open(link, flags | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %s", link, strerror(errno));
	return fd;
}

static void expect_deleted_name(const char *what, void *p, const char *path)
{
	char line[4600], want[4200];

	CHECK(!maps_line(p, line, sizeof(line)), "%s: no mapping at %p", what, p);
	snprintf(want, sizeof(want), " %s (deleted)", path);
	size_t n = strlen(line), m = strlen(want);
	CHECK(n >= m && !strcmp(line + n - m, want), "%s: maps says '%s', want it to end in '%s'",
	      what, line, want);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT, "%s: %s exists again", what, path);
}

int main(void)
{
	static unsigned char buf[PRIV_LEN];
	const char *td = getenv("TEST_DIR");
	struct stat st;
	char what[128];
	int fd;

	install_sigterm(SA_RESTART);
	if (!td)
		fail("setup: TEST_DIR is not set");
	snprintf(shared_path, sizeof(shared_path), "%.3000s/gone-shared.dat", td);
	snprintf(priv_path, sizeof(priv_path), "%.3000s/gone-private.dat", td);
	shared = map_new_file(shared_path, SHARED_LEN, 0xde1001, MAP_SHARED);
	fill_pattern(shared, SHARED_LEN / 2, 0xde1002);
	priv = map_new_file(priv_path, PRIV_LEN, 0xde1003, MAP_PRIVATE);
	for (unsigned i = 0; i < PRIV_PAGES; i++) {
		volatile unsigned char sink;
		if (priv_map[i] == 'w')
			fill_pattern(priv + i * PAGE, PAGE, 0xde2000 + i);
		else if (priv_map[i] == 'r')
			sink = priv[i * PAGE], (void)sink;
	}
	ready();
	wait_for_sigterm();

	/* shared */
	expect_mapped("deleted shared mapping", shared, SHARED_LEN, "rw-s");
	expect_deleted_name("deleted shared mapping", shared, shared_path);
	expect_pattern("deleted shared mapping, first half", shared, SHARED_LEN / 2, 0xde1002);
	CHECK(check_pattern_at(shared + SHARED_LEN / 2, SHARED_LEN / 2, 0xde1001, SHARED_LEN / 2) < 0,
	      "deleted shared mapping, second half: not the file's original data");
	fd = map_file_fd(shared, SHARED_LEN, O_RDWR);
	CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0 && st.st_size == SHARED_LEN,
	      "deleted shared file: nlink %lu size %ld, want 0 and %d", (unsigned long)st.st_nlink,
	      (long)st.st_size, SHARED_LEN);
	CHECK(pread(fd, buf, SHARED_LEN, 0) == SHARED_LEN, "deleted shared file: short read");
	expect_pattern("deleted shared file (read through map_files), first half", buf,
		       SHARED_LEN / 2, 0xde1002);
	fill_pattern(shared + SHARED_LEN / 2, SHARED_LEN / 2, 0xde1004);
	CHECK(pread(fd, buf, SHARED_LEN / 2, SHARED_LEN / 2) == SHARED_LEN / 2, "short read");
	expect_pattern("deleted shared file after a write through the mapping after restore", buf,
		       SHARED_LEN / 2, 0xde1004);
	close(fd);

	/* private */
	expect_mapped("deleted private mapping", priv, PRIV_LEN, "rw-p");
	expect_deleted_name("deleted private mapping", priv, priv_path);
	for (unsigned i = 0; i < PRIV_PAGES; i++) {
		snprintf(what, sizeof(what), "deleted private mapping page %u ('%c')", i, priv_map[i]);
		if (priv_map[i] == 'w')
			expect_pattern(what, priv + i * PAGE, PAGE, 0xde2000 + i);
		else
			CHECK(check_pattern_at(priv + i * PAGE, PAGE, 0xde1003, i * PAGE) < 0,
			      "%s: not the file's data", what);
	}
	fd = map_file_fd(priv, PRIV_LEN, O_RDWR);
	CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0 && st.st_size == PRIV_LEN,
	      "deleted private file: nlink %lu size %ld, want 0 and %d", (unsigned long)st.st_nlink,
	      (long)st.st_size, PRIV_LEN);
	CHECK(pread(fd, buf, PRIV_LEN, 0) == PRIV_LEN, "deleted private file: short read");
	expect_pattern("deleted private file (private writes must not reach it)", buf, PRIV_LEN,
		       0xde1003);
	fill_pattern(buf, PRIV_LEN, 0xde1005);
	CHECK(pwrite(fd, buf, PRIV_LEN, 0) == PRIV_LEN, "pwrite: %s", strerror(errno));
	close(fd);
	for (unsigned i = 0; i < PRIV_PAGES; i++) {
		snprintf(what, sizeof(what),
			 "deleted private mapping page %u ('%c') after a write to its file", i,
			 priv_map[i]);
		if (priv_map[i] == 'w')
			expect_pattern(what, priv + i * PAGE, PAGE, 0xde2000 + i);
		else
			CHECK(check_pattern_at(priv + i * PAGE, PAGE, 0xde1005, i * PAGE) < 0,
			      "%s: does not show the file (a copy, not the file's page?)", what);
	}
	pass();
}
