/*
 * mem_file: file-backed mappings.
 *
 *  - private.dat (64 KiB, pattern P) mapped MAP_PRIVATE read-write; some
 *    pages written (copy-on-write: now anonymous pages), one only partly;
 *    the others only read, or never touched;
 *  - the same file mapped MAP_PRIVATE read-only;
 *  - shared.dat (32 KiB, pattern S) mapped MAP_SHARED read-write, written
 *    through the mapping;
 *  - /dev/zero mapped MAP_PRIVATE (an anonymous area that names /dev/zero
 *    in maps), written.
 * The descriptors are closed after mmap: the mappings alone hold the files.
 *
 * After restore:
 *  - COW pages hold the modified data, the others the file data, and the
 *    file itself is unchanged (private writes never reach it);
 *  - the unmodified pages are still the file's pages, not copies: a write
 *    to the file after restore shows through them (Linux semantics of
 *    MAP_PRIVATE), while a COW page does not change;
 *  - the shared mapping shows the written data, pread on the file too, and
 *    a write through the mapping after restore reaches the file;
 *  - the /dev/zero area holds its data.
 */
#include "testlib.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define PRIV_LEN (64 * 1024)
#define PRIV_PAGES (PRIV_LEN / PAGE)
#define SHARED_LEN (32 * 1024)
#define ZERO_LEN (16 * PAGE)
#define SEED_FILE 0xf11e0001ULL
#define SEED_COW 0xc0c0c0c0ULL
#define SEED_SHARED_FILE 0x5a5a0001ULL
#define SEED_SHARED_MAP 0x5a5a0002ULL
#define SEED_SHARED_LATE 0x5a5a0003ULL
#define SEED_ZERO 0x2e2000ULL

/* page i of the private rw mapping: 'w' written, 'p' one byte written, 'r' read, '.' untouched */
static const char priv_map[PRIV_PAGES + 1] = "r.wwp.r..w.r.p.w";
static unsigned char *priv_rw, *priv_ro, *shared, *zero;
static char priv_path[4096], shared_path[4096];

static void write_file(const char *path, size_t len, uint64_t seed)
{
	static unsigned char buf[PRIV_LEN];
	int fd = SYS(open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));

	fill_pattern(buf, len, seed);
	if (SYS(pwrite(fd, buf, len, 0)) != (ssize_t)len)
		fail("setup: short write to %s", path);
	close(fd);
}

/* The byte written into 'p' pages: at offset 1234, the file's byte + 1. */
#define PARTIAL_OFF 1234

static void setup(void)
{
	const char *dir = getenv("TEST_DIR");
	int fd;

	if (!dir)
		fail("setup: TEST_DIR is not set");
	snprintf(priv_path, sizeof(priv_path), "%s/private.dat", dir);
	snprintf(shared_path, sizeof(shared_path), "%s/shared.dat", dir);
	write_file(priv_path, PRIV_LEN, SEED_FILE);
	write_file(shared_path, SHARED_LEN, SEED_SHARED_FILE);

	fd = SYS(open(priv_path, O_RDONLY | O_CLOEXEC));
	priv_rw = (void *)SYS(mmap(NULL, PRIV_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	priv_ro = (void *)SYS(mmap(NULL, PRIV_LEN, PROT_READ, MAP_PRIVATE, fd, 0));
	close(fd);
	for (unsigned i = 0; i < PRIV_PAGES; i++) {
		unsigned char *pg = priv_rw + i * PAGE;
		volatile unsigned char sink;
		switch (priv_map[i]) {
		case 'w':
			fill_pattern(pg, PAGE, SEED_COW + i);
			break;
		case 'p':
			pg[PARTIAL_OFF]++;
			break;
		case 'r':
			sink = pg[7];
			(void)sink;
			break;
		}
	}
	/* read the read-only mapping fully: its pages are the file's */
	expect_pattern("setup: read-only private mapping", priv_ro, PRIV_LEN, SEED_FILE);

	fd = SYS(open(shared_path, O_RDWR | O_CLOEXEC));
	shared = (void *)SYS(mmap(NULL, SHARED_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	close(fd);
	/* the first half rewritten through the mapping, the second half left as the file has it */
	fill_pattern(shared, SHARED_LEN / 2, SEED_SHARED_MAP);

	fd = SYS(open("/dev/zero", O_RDWR | O_CLOEXEC));
	zero = (void *)SYS(mmap(NULL, ZERO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	close(fd);
	fill_pattern(zero, ZERO_LEN / 2, SEED_ZERO);	/* second half stays zero */
}

/* The private rw mapping's page i as it must be now; file_seed: the file's pattern. */
static void check_priv_page(unsigned i, uint64_t file_seed, const char *when)
{
	unsigned char *pg = priv_rw + i * PAGE;
	char what[128];

	snprintf(what, sizeof(what), "private rw mapping page %u ('%c', %s)", i, priv_map[i], when);
	switch (priv_map[i]) {
	case 'w':
		expect_pattern(what, pg, PAGE, SEED_COW + i);
		break;
	case 'p': {
		/* copied at the time of the write: the original file data, one byte + 1 */
		unsigned char want = (unsigned char)(pattern_byte(SEED_FILE, i * PAGE + PARTIAL_OFF) + 1);
		long off = check_pattern_at(pg, PARTIAL_OFF, SEED_FILE, i * PAGE);
		if (off < 0) {
			off = check_pattern_at(pg + PARTIAL_OFF + 1, PAGE - PARTIAL_OFF - 1, SEED_FILE,
					       i * PAGE + PARTIAL_OFF + 1);
			if (off >= 0)
				off += PARTIAL_OFF + 1;
		}
		if (off >= 0)
			fail("%s: byte at offset %ld is 0x%02x, want the original file's 0x%02x", what,
			     off, pg[off], pattern_byte(SEED_FILE, i * PAGE + (size_t)off));
		CHECK(pg[PARTIAL_OFF] == want, "%s: byte %d is 0x%02x, want 0x%02x", what,
		      PARTIAL_OFF, pg[PARTIAL_OFF], want);
		break;
	}
	default: {
		long off = check_pattern_at(pg, PAGE, file_seed, i * PAGE);
		if (off >= 0)
			fail("%s: byte at offset %ld is 0x%02x, want the file's 0x%02x", what, off,
			     pg[off], pattern_byte(file_seed, i * PAGE + (size_t)off));
	}
	}
}

static void check(void)
{
	static unsigned char buf[PRIV_LEN];
	int fd;

	/* private read-write */
	expect_mapped("private rw mapping", priv_rw, PRIV_LEN, "rw-p");
	for (unsigned i = 0; i < PRIV_PAGES; i++)
		check_priv_page(i, SEED_FILE, "after restore");
	expect_mapped("private ro mapping", priv_ro, PRIV_LEN, "r--p");
	expect_pattern("private ro mapping", priv_ro, PRIV_LEN, SEED_FILE);
	fd = open(priv_path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", priv_path, strerror(errno));
	CHECK(pread(fd, buf, PRIV_LEN, 0) == PRIV_LEN, "short read of %s", priv_path);
	expect_pattern("private.dat (the file: private writes must not reach it)", buf, PRIV_LEN,
		       SEED_FILE);

	/*
	 * Rewrite the file: pages of the private mappings that were never
	 * written must show the new data (they are the page cache's), the
	 * written ones must not change.
	 */
	fill_pattern(buf, PRIV_LEN, SEED_FILE + 1);
	CHECK(pwrite(fd, buf, PRIV_LEN, 0) == PRIV_LEN, "pwrite %s: %s", priv_path, strerror(errno));
	close(fd);
	for (unsigned i = 0; i < PRIV_PAGES; i++)
		check_priv_page(i, SEED_FILE + 1,
				"after a write to the file: an unwritten page of a private mapping "
				"shows the file, or the restore copied it");
	expect_pattern("private ro mapping after a write to the file (a page of a private "
		       "mapping shows the file, or the restore copied it)",
		       priv_ro, PRIV_LEN, SEED_FILE + 1);

	/* shared */
	expect_mapped("shared mapping", shared, SHARED_LEN, "rw-s");
	expect_pattern("shared mapping, first half", shared, SHARED_LEN / 2, SEED_SHARED_MAP);
	if (check_pattern_at(shared + SHARED_LEN / 2, SHARED_LEN / 2, SEED_SHARED_FILE,
			     SHARED_LEN / 2) >= 0)
		fail("shared mapping, second half: not the file's original data");
	fd = open(shared_path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", shared_path, strerror(errno));
	CHECK(pread(fd, buf, SHARED_LEN, 0) == SHARED_LEN, "short read of %s", shared_path);
	expect_pattern("shared.dat read with pread, first half", buf, SHARED_LEN / 2, SEED_SHARED_MAP);
	if (check_pattern_at(buf + SHARED_LEN / 2, SHARED_LEN / 2, SEED_SHARED_FILE,
			     SHARED_LEN / 2) >= 0)
		fail("shared.dat read with pread, second half: not the original data");
	/* a write through the mapping now reaches the file, and the reverse */
	fill_pattern(shared + SHARED_LEN / 2, SHARED_LEN / 2, SEED_SHARED_LATE);
	CHECK(pread(fd, buf, SHARED_LEN / 2, SHARED_LEN / 2) == SHARED_LEN / 2, "short read");
	expect_pattern("shared.dat after a write through the mapping after restore", buf,
		       SHARED_LEN / 2, SEED_SHARED_LATE);
	fill_pattern(buf, PAGE, SEED_SHARED_LATE + 1);
	CHECK(pwrite(fd, buf, PAGE, 0) == PAGE, "pwrite %s", shared_path);
	expect_pattern("shared mapping after pwrite to the file", shared, PAGE, SEED_SHARED_LATE + 1);
	close(fd);

	/* /dev/zero */
	char line[512];
	CHECK(!maps_line(zero, line, sizeof(line)), "no mapping at %p", (void *)zero);
	CHECK(strstr(line, "/dev/zero") != NULL, "private /dev/zero mapping: maps says '%s'", line);
	expect_mapped("private /dev/zero mapping", zero, ZERO_LEN, "rw-p");
	expect_pattern("private /dev/zero mapping", zero, ZERO_LEN / 2, SEED_ZERO);
	expect_zero("private /dev/zero mapping, second half", zero + ZERO_LEN / 2, ZERO_LEN / 2);
}

int main(void)
{
	install_sigterm(SA_RESTART);
	setup();
	ready();
	wait_for_sigterm();
	check();
	pass();
}
