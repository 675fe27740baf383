/*
 * mem_anon: private anonymous memory in all the shapes cryo must rebuild.
 *
 *  - three plain areas of different sizes, each a PRNG pattern;
 *  - an area with holes: pages never touched, a page only read (zero page),
 *    a page written then MADV_DONTNEED'd (must read back as zero);
 *  - two adjacent areas with the same protection that the kernel keeps
 *    separate (two VMAs: moved next to each other with mremap after each
 *    got its own anon_vma) and two that it merged (one VMA): the restore
 *    must neither merge the first pair nor split the second;
 *  - four adjacent pages of one area with different protections
 *    (rw-, r--, ---, rwx), written before the mprotect;
 *  - an area written then made PROT_NONE (content checked after
 *    mprotect back);
 *  - a MAP_GROWSDOWN area (VmFlags gd) that must still grow after restore;
 *  - areas with MADV_DONTFORK (dc), MADV_DONTDUMP (dd), MADV_WIPEONFORK (wf),
 *    MADV_HUGEPAGE (hg, 4 MiB, so it may hold transparent huge pages),
 *    MADV_NOHUGEPAGE (nh), MADV_MERGEABLE (mg, if the kernel has KSM),
 *    mlock (lo) and MAP_NORESERVE (nr, 64 MiB with 16 pages touched).
 *
 * Sparse stays sparse: in the holes area and the MAP_NORESERVE area, the
 * number of pages present (/proc/self/pagemap) after the restore must not
 * exceed the number before (a restore that writes zero pages where there
 * were none would turn 64 MiB of address space into 64 MiB of memory).
 *
 * Every byte of every area is checked against its pattern (or zero); the
 * VmFlags are read from /proc/self/smaps. A fresh process has none of these
 * areas; a restore that refilled them with zeroes or put them elsewhere
 * fails here.
 */
#include "testlib.h"

#include <sys/mman.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

struct area {
	const char *name;
	unsigned char *p;
	size_t len;
	uint64_t seed;
	const char *perms;
};

static struct area plain[3] = {
	{ "plain 1 page", NULL, PAGE, 0x1001, "rw-p" },
	{ "plain 16 pages", NULL, 16 * PAGE, 0x1002, "rw-p" },
	{ "plain 300 pages", NULL, 300 * PAGE + 0, 0x1003, "rw-p" },
};

#define HOLES_PAGES 64
static unsigned char *holes;
/* page i of the holes area: 'w' written, 'r' only read, 'd' dontneed, '.' untouched */
static const char holes_map[HOLES_PAGES + 1] =
	"w.w..r.d" "wwww...." "........" "d.w.r.w." "w......." "........" ".....rww" "d......w";

static unsigned char *sep_a, *sep_b;	/* adjacent, same prot, two VMAs */
static unsigned char *merged;		/* two mmaps the kernel made one VMA */
static unsigned char *prots;		/* 4 pages: rw- r-- --- rwx */
static unsigned char *none_area;	/* 8 pages written, then PROT_NONE */
static unsigned char *gd;		/* MAP_GROWSDOWN, 16 pages */
#define NMADV 7
#define MLOCK_AREA 6	/* index of the area that is mlock'ed rather than madvise'd */
static struct area madv[NMADV] = {
	{ "MADV_DONTFORK area", NULL, 8 * PAGE, 0x5001, "rw-p" },
	{ "MADV_DONTDUMP area", NULL, 8 * PAGE, 0x5002, "rw-p" },
	{ "MADV_WIPEONFORK area", NULL, 8 * PAGE, 0x5003, "rw-p" },
	{ "MADV_HUGEPAGE area", NULL, 4UL << 20, 0x5004, "rw-p" },
	{ "MADV_NOHUGEPAGE area", NULL, 8 * PAGE, 0x5005, "rw-p" },
	{ "MADV_MERGEABLE area", NULL, 8 * PAGE, 0x5006, "rw-p" },
	{ "mlock'ed area", NULL, 8 * PAGE, 0x5007, "rw-p" },
};
static const char *madv_flag[NMADV] = { "dc", "dd", "wf", "hg", "nh", "mg", "lo" };
static const int madv_advice[NMADV] = { MADV_DONTFORK,	 MADV_DONTDUMP,	 MADV_WIPEONFORK,
					MADV_HUGEPAGE,	 MADV_NOHUGEPAGE, MADV_MERGEABLE, -1 };
static int madv_skip[NMADV];	/* the kernel does not have it: not checked */
static long holes_present, noreserve_present;
#define NORESERVE_LEN (64UL << 20)
static unsigned char *noreserve;
static int overcommit_never;

static void *map_anon(size_t len, int prot, int extra)
{
	return (void *)SYS(mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0));
}

/* How many /proc/self/maps lines start inside [lo, hi)? */
static int vmas_in(const void *lo, const void *hi)
{
	static char buf[1 << 17];
	int n = 0;

	if (read_file("/proc/self/maps", buf, sizeof(buf)) < 0)
		fail("cannot read /proc/self/maps");
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long s, e;
		if (sscanf(l, "%lx-%lx", &s, &e) == 2 && s >= (uintptr_t)lo && s < (uintptr_t)hi)
			n++;
	}
	return n;
}

/* How many pages of [p, p + len) are present in memory (pagemap bit 63)? */
static long present_pages(const void *p, size_t len)
{
	static uint64_t ent[(NORESERVE_LEN / PAGE)];
	size_t n = len / PAGE;
	long count = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open /proc/self/pagemap: %s", strerror(errno));
	if (n > ARRAY_SIZE(ent) ||
	    pread(fd, ent, n * 8, (off_t)((uintptr_t)p / PAGE * 8)) != (ssize_t)(n * 8))
		fail("cannot read /proc/self/pagemap");
	close(fd);
	for (size_t i = 0; i < n; i++)
		count += (ent[i] >> 63) & 1;
	return count;
}

static void expect_flag(const char *what, const void *addr, const char *flag, int want)
{
	char flags[256];

	if (smaps_vmflags(addr, flags, sizeof(flags)))
		fail("%s: no smaps entry for %p", what, addr);
	if (has_vmflag(flags, flag) != want)
		fail("%s at %p: VmFlags '%s' %s '%s'", what, addr, flags,
		     want ? "lack" : "have", flag);
}

static void setup(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		plain[i].p = map_anon(plain[i].len, PROT_READ | PROT_WRITE, 0);
		fill_pattern(plain[i].p, plain[i].len, plain[i].seed);
	}

	/* holes */
	holes = map_anon(HOLES_PAGES * PAGE, PROT_READ | PROT_WRITE, 0);
	for (int i = 0; i < HOLES_PAGES; i++) {
		unsigned char *pg = holes + i * PAGE;
		volatile unsigned char sink;
		switch (holes_map[i]) {
		case 'w':
		case 'd':
			fill_pattern(pg, PAGE, 0x2000 + i);
			break;
		case 'r':
			sink = pg[100];	/* maps the shared zero page */
			(void)sink;
			break;
		}
	}
	for (int i = 0; i < HOLES_PAGES; i++)
		if (holes_map[i] == 'd')
			SYS(madvise(holes + i * PAGE, PAGE, MADV_DONTNEED));

	/*
	 * Two VMAs with the same protection side by side: a and b are mapped
	 * and written apart (each gets its own anon_vma and page offset),
	 * then b is moved right after a. The kernel cannot merge them.
	 */
	unsigned char *b = map_anon(4 * PAGE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(b, 4 * PAGE, 0x3002);
	unsigned char *resv = map_anon(8 * PAGE, PROT_NONE, 0);
	SYS(munmap(resv, 8 * PAGE));
	sep_a = (void *)SYS(mmap(resv, 4 * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	fill_pattern(sep_a, 4 * PAGE, 0x3001);
	sep_b = (void *)SYS(mremap(b, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
				   sep_a + 4 * PAGE));
	if (vmas_in(sep_a, sep_a + 8 * PAGE) != 2)
		note("the kernel merged the mremap'd pair: the separate-VMA case is not tested");

	/*
	 * Two mmaps that the kernel merged into one VMA: the second one is
	 * placed right after the first before either is touched.
	 */
	resv = map_anon(8 * PAGE, PROT_NONE, 0);
	SYS(munmap(resv, 8 * PAGE));
	merged = (void *)SYS(mmap(resv, 4 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	SYS(mmap(resv + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	fill_pattern(merged, 8 * PAGE, 0x3003);
	if (vmas_in(merged, merged + 8 * PAGE) != 1)
		note("the kernel did not merge the adjacent pair: the merged case is not tested");

	/* one area, four protections */
	prots = map_anon(4 * PAGE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(prots, 4 * PAGE, 0x4001);
	SYS(mprotect(prots + 1 * PAGE, PAGE, PROT_READ));
	SYS(mprotect(prots + 2 * PAGE, PAGE, PROT_NONE));
	SYS(mprotect(prots + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC));

	none_area = map_anon(8 * PAGE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(none_area, 8 * PAGE, 0x4002);
	SYS(mprotect(none_area, 8 * PAGE, PROT_NONE));

	/*
	 * MAP_GROWSDOWN with room to grow: [anchor, PROT_NONE][1 MiB hole][gd].
	 * The hole keeps other mappings away; a PROT_NONE neighbour does not
	 * count for the stack guard gap, so the area can grow into the hole.
	 */
	resv = map_anon(2 * PAGE + (1UL << 20) + 16 * PAGE, PROT_NONE, 0);
	SYS(munmap(resv + 2 * PAGE, (1UL << 20) + 16 * PAGE));
	gd = (void *)SYS(mmap(resv + 2 * PAGE + (1UL << 20), 16 * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE,
			      -1, 0));
	fill_pattern(gd, 16 * PAGE, 0x4003);

	for (int i = 0; i < NMADV; i++) {
		madv[i].p = map_anon(madv[i].len, PROT_READ | PROT_WRITE, 0);
		if (madv_advice[i] == MADV_HUGEPAGE)	/* before the first touch */
			SYS(madvise(madv[i].p, madv[i].len, MADV_HUGEPAGE));
		fill_pattern(madv[i].p, madv[i].len, madv[i].seed);
		if (i == MLOCK_AREA)
			SYS(mlock(madv[i].p, madv[i].len));
		else if (madv_advice[i] != MADV_HUGEPAGE &&
			 madvise(madv[i].p, madv[i].len, madv_advice[i])) {
			if (errno != EINVAL)
				fail("setup: madvise %s: %s", madv[i].name, strerror(errno));
			note("%s: madvise says EINVAL, not tested", madv[i].name);
			madv_skip[i] = 1;
		}
	}

	noreserve = map_anon(NORESERVE_LEN, PROT_READ | PROT_WRITE, MAP_NORESERVE);
	for (int i = 0; i < 16; i++)	/* a few pages spread over 64 MiB */
		fill_pattern(noreserve + (size_t)i * (NORESERVE_LEN / 16), PAGE, 0x6000 + i);
	char buf[16];
	overcommit_never = read_file("/proc/sys/vm/overcommit_memory", buf, sizeof(buf)) > 0 &&
			   buf[0] == '2';

	/* the flags are set now, or the checks after restore would be wrong */
	expect_flag("setup: MAP_GROWSDOWN", gd, "gd", 1);
	for (int i = 0; i < NMADV; i++)
		if (!madv_skip[i])
			expect_flag("setup: madvise", madv[i].p, madv_flag[i], 1);
	holes_present = present_pages(holes, HOLES_PAGES * PAGE);
	noreserve_present = present_pages(noreserve, NORESERVE_LEN);
	note("pages present: holes area %ld of %d, MAP_NORESERVE area %ld of %lu", holes_present,
	     HOLES_PAGES, noreserve_present, NORESERVE_LEN / PAGE);
}

static void check(void)
{
	char what[64];

	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		expect_mapped(plain[i].name, plain[i].p, plain[i].len, plain[i].perms);
		expect_pattern(plain[i].name, plain[i].p, plain[i].len, plain[i].seed);
	}

	expect_mapped("holes area", holes, HOLES_PAGES * PAGE, "rw-p");
	long n = present_pages(holes, HOLES_PAGES * PAGE);
	CHECK(n <= holes_present, "holes area: %ld pages present, %ld before the checkpoint", n,
	      holes_present);
	for (int i = 0; i < HOLES_PAGES; i++) {
		snprintf(what, sizeof(what), "holes area page %d ('%c')", i, holes_map[i]);
		if (holes_map[i] == 'w')
			expect_pattern(what, holes + i * PAGE, PAGE, 0x2000 + i);
		else
			expect_zero(what, holes + i * PAGE, PAGE);
	}

	expect_mapped("separate pair", sep_a, 8 * PAGE, "rw-p");
	expect_pattern("separate pair, first", sep_a, 4 * PAGE, 0x3001);
	expect_pattern("separate pair, second", sep_b, 4 * PAGE, 0x3002);
	expect_mapped("merged pair", merged, 8 * PAGE, "rw-p");
	expect_pattern("merged pair", merged, 8 * PAGE, 0x3003);

	expect_mapped("prot rw-", prots, PAGE, "rw-p");
	expect_mapped("prot r--", prots + PAGE, PAGE, "r--p");
	expect_mapped("prot ---", prots + 2 * PAGE, PAGE, "---p");
	expect_mapped("prot rwx", prots + 3 * PAGE, PAGE, "rwxp");
	SYS(mprotect(prots + 2 * PAGE, PAGE, PROT_READ));
	expect_pattern("4-prot area", prots, 4 * PAGE, 0x4001);
	/* the protections are real, not only in maps: write to the rwx page */
	volatile unsigned char *x = prots + 3 * PAGE + 5;
	*x ^= 0xff;
	*x ^= 0xff;

	expect_mapped("PROT_NONE area", none_area, 8 * PAGE, "---p");
	SYS(mprotect(none_area, 8 * PAGE, PROT_READ));
	expect_pattern("PROT_NONE area (read after mprotect)", none_area, 8 * PAGE, 0x4002);

	expect_mapped("MAP_GROWSDOWN area", gd, 16 * PAGE, "rw-p");
	expect_flag("MAP_GROWSDOWN area", gd, "gd", 1);
	expect_pattern("MAP_GROWSDOWN area", gd, 16 * PAGE, 0x4003);
	/* it must still grow: touch the page below its start */
	gd[-1] = 0x5a;
	CHECK(gd[-PAGE] == 0 && gd[-1] == 0x5a, "MAP_GROWSDOWN area did not grow properly");
	expect_mapped("MAP_GROWSDOWN area after growing", gd - PAGE, 17 * PAGE, "rw-p");

	for (int i = 0; i < NMADV; i++) {
		expect_mapped(madv[i].name, madv[i].p, madv[i].len, madv[i].perms);
		if (!madv_skip[i])
			expect_flag(madv[i].name, madv[i].p, madv_flag[i], 1);
		expect_pattern(madv[i].name, madv[i].p, madv[i].len, madv[i].seed);
	}
	n = present_pages(madv[MLOCK_AREA].p, madv[MLOCK_AREA].len);
	CHECK(n == (long)(madv[MLOCK_AREA].len / PAGE), "mlock'ed area: %ld pages present, want %lu",
	      n, madv[MLOCK_AREA].len / PAGE);

	expect_mapped("MAP_NORESERVE area", noreserve, NORESERVE_LEN, "rw-p");
	n = present_pages(noreserve, NORESERVE_LEN);
	CHECK(n <= noreserve_present,
	      "MAP_NORESERVE area: %ld pages present, %ld before the checkpoint (16 touched)", n,
	      noreserve_present);
	if (!overcommit_never)
		expect_flag("MAP_NORESERVE area", noreserve, "nr", 1);
	for (int i = 0; i < 16; i++) {
		unsigned char *chunk = noreserve + (size_t)i * (NORESERVE_LEN / 16);
		snprintf(what, sizeof(what), "MAP_NORESERVE area chunk %d", i);
		expect_pattern(what, chunk, PAGE, 0x6000 + i);
		expect_zero(what, chunk + PAGE, NORESERVE_LEN / 16 - PAGE);
	}
	/* the plain areas must not have picked up flags on the way */
	expect_flag("plain area", plain[1].p, "dc", 0);
	expect_flag("plain area", plain[1].p, "wf", 0);
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
