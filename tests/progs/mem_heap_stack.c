/*
 * mem_heap_stack: the heap (brk), the main stack, and the mm fields the
 * kernel keeps about them.
 *
 *  - about 8 MiB of malloc'd blocks of varied sizes (below the mmap
 *    threshold, so on the brk heap), each a pattern, every 7th freed again
 *    (malloc's free lists are part of the state), then 1 MiB more taken
 *    with sbrk directly; the break recorded both as libc sees it (sbrk(0)
 *    reads libc's cached value) and as the kernel does (brk(0));
 *  - 512 frames of recursion holding 4 KiB of pattern each (2 MiB of
 *    stack); the program prints READY and waits for SIGTERM in the
 *    deepest frame.
 *
 * After restore, from the deepest frame: the break (libc's and the
 * kernel's), the mm fields of /proc/self/stat (start_code .. env_end,
 * start_brk, start_stack), /proc/self/auxv, cmdline, environ, exe, argv[0]
 * and getenv("TEST_DIR"), every heap block, the sbrk'd area and every stack
 * frame; then the stack must still grow (1 MiB more of recursion), the
 * break must still move (sbrk) and malloc/free must still work. Every frame
 * is checked again on the way back up.
 */
#include "testlib.h"

#include <sys/syscall.h>

#define NBLOCKS 2000
#define DEPTH 512
#define MORE 256
#define FRAME_WORDS 512	/* 4 KiB per frame */
#define SBRK_LEN (1UL << 20)

static unsigned char *blocks[NBLOCKS];
static size_t block_len[NBLOCKS];
static unsigned char *sbrk_area;
static void *brk_libc, *brk_kernel;
static uint64_t *frames[DEPTH + MORE];
static char **saved_argv;
static char *argv0_copy;
static char testdir_copy[4096];
static char exe_before[4096];
static unsigned long stat_before[64];
static const int stat_fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
static const char *stat_names[] = { "start_code", "end_code", "start_stack", "start_data",
				    "end_data", "start_brk", "arg_start", "arg_end",
				    "env_start", "env_end" };
static char auxv_before[4096], cmdline_before[8192], environ_before[65536];
static long auxv_len, cmdline_len, environ_len;

static void *kernel_brk(void)
{
	return (void *)syscall(SYS_brk, 0);
}

static void record(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(stat_fields); i++)
		stat_before[i] = proc_stat_field(stat_fields[i]);
	auxv_len = read_file("/proc/self/auxv", auxv_before, sizeof(auxv_before));
	cmdline_len = read_file("/proc/self/cmdline", cmdline_before, sizeof(cmdline_before));
	environ_len = read_file("/proc/self/environ", environ_before, sizeof(environ_before));
	if (auxv_len <= 0 || cmdline_len <= 0 || environ_len <= 0)
		fail("setup: cannot read /proc/self/auxv, cmdline or environ");
	if (readlink("/proc/self/exe", exe_before, sizeof(exe_before) - 1) <= 0)
		fail("setup: readlink /proc/self/exe: %s", strerror(errno));
}

static void build_heap(void)
{
	uint64_t rng = 0x4ea9;

	for (int i = 0; i < NBLOCKS; i++) {
		block_len[i] = 64 + splitmix64(&rng) % 8000;
		blocks[i] = malloc(block_len[i]);
		if (!blocks[i])
			fail("setup: malloc(%zu) failed", block_len[i]);
		fill_pattern(blocks[i], block_len[i], 0x70000 + i);
	}
	for (int i = 0; i < NBLOCKS; i += 7) {
		free(blocks[i]);
		blocks[i] = NULL;
	}
	sbrk_area = sbrk(SBRK_LEN);
	if (sbrk_area == (void *)-1)
		fail("setup: sbrk: %s", strerror(errno));
	fill_pattern(sbrk_area, SBRK_LEN, 0xb7c);
	brk_libc = sbrk(0);
	brk_kernel = kernel_brk();
	if (brk_libc != brk_kernel)
		fail("setup: sbrk(0) %p != brk(0) %p", brk_libc, brk_kernel);
}

static void check_state(void)
{
	char buf[65536], what[128];
	long n;

	CHECK(sbrk(0) == brk_libc, "sbrk(0) (libc's idea of the break) is %p, want %p", sbrk(0),
	      brk_libc);
	CHECK(kernel_brk() == brk_kernel, "brk(0) (the kernel's break) is %p, want %p",
	      kernel_brk(), brk_kernel);
	for (size_t i = 0; i < ARRAY_SIZE(stat_fields); i++) {
		snprintf(what, sizeof(what), "/proc/self/stat %s (field %d)", stat_names[i],
			 stat_fields[i]);
		CHECK_EQ_U64(what, stat_before[i], proc_stat_field(stat_fields[i]));
	}
	n = read_file("/proc/self/auxv", buf, sizeof(buf));
	CHECK(n == auxv_len && !memcmp(buf, auxv_before, n),
	      "/proc/self/auxv differs (%ld bytes, was %ld)", n, auxv_len);
	n = read_file("/proc/self/cmdline", buf, sizeof(buf));
	CHECK(n == cmdline_len && !memcmp(buf, cmdline_before, n),
	      "/proc/self/cmdline differs (%ld bytes '%s', was %ld '%s')", n, buf, cmdline_len,
	      cmdline_before);
	n = read_file("/proc/self/environ", buf, sizeof(buf));
	CHECK(n == environ_len && !memcmp(buf, environ_before, n),
	      "/proc/self/environ differs (%ld bytes, was %ld)", n, environ_len);
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	buf[n] = 0;
	CHECK_EQ_STR("/proc/self/exe", exe_before, buf);
	CHECK_EQ_STR("argv[0]", argv0_copy, saved_argv[0]);
	CHECK(saved_argv[1] == NULL, "argv[1] is not NULL");
	const char *td = getenv("TEST_DIR");
	CHECK(td != NULL, "getenv(\"TEST_DIR\") is NULL, want '%s'", testdir_copy);
	CHECK_EQ_STR("getenv(\"TEST_DIR\")", testdir_copy, td);

	for (int i = 0; i < NBLOCKS; i++) {
		if (!blocks[i])
			continue;
		snprintf(what, sizeof(what), "heap block %d (%zu bytes)", i, block_len[i]);
		expect_pattern(what, blocks[i], block_len[i], 0x70000 + i);
	}
	expect_pattern("sbrk'd area", sbrk_area, SBRK_LEN, 0xb7c);
	for (int d = 0; d < DEPTH; d++) {
		snprintf(what, sizeof(what), "stack frame %d at %p", d, (void *)frames[d]);
		expect_pattern(what, frames[d], FRAME_WORDS * 8, 0x90000 + d);
	}
}

/* After restore: the heap still works. */
static void check_heap_works(void)
{
	uint64_t rng = 0x777;
	unsigned char *p[500];
	char what[64];

	unsigned char *more = sbrk(SBRK_LEN);
	CHECK(more != (void *)-1, "sbrk(1 MiB) after restore: %s", strerror(errno));
	CHECK(more == brk_libc, "sbrk returned %p, want the old break %p", (void *)more, brk_libc);
	fill_pattern(more, SBRK_LEN, 0xb7d);
	expect_pattern("area sbrk'd after restore", more, SBRK_LEN, 0xb7d);
	CHECK(kernel_brk() == (char *)brk_kernel + SBRK_LEN, "brk(0) after sbrk: %p, want %p",
	      kernel_brk(), (char *)brk_kernel + SBRK_LEN);

	for (int i = 0; i < NBLOCKS; i++)
		free(blocks[i]);
	for (int i = 0; i < 500; i++) {
		size_t len = 16 + splitmix64(&rng) % 20000;
		p[i] = malloc(len);
		CHECK(p[i] != NULL, "malloc(%zu) after restore failed", len);
		fill_pattern(p[i], len, 0x1234 + i);
		block_len[i] = len;
	}
	for (int i = 0; i < 500; i++) {
		snprintf(what, sizeof(what), "block %d malloc'd after restore", i);
		expect_pattern(what, p[i], block_len[i], 0x1234 + i);
		free(p[i]);
	}
	void *big = malloc(8 << 20);	/* mmap'd by malloc */
	CHECK(big != NULL, "malloc(8 MiB) after restore failed");
	memset(big, 0x11, 8 << 20);
	free(big);
}

static volatile int sink;

/* One 4 KiB frame per level. The address escapes into frames[], so the
 * compiler must keep the data in memory. */
__attribute__((noinline)) static void deep(int d, int last, void (*at_bottom)(void))
{
	uint64_t buf[FRAME_WORDS];
	char what[64];

	frames[d] = buf;
	fill_pattern(buf, sizeof(buf), 0x90000 + d);
	if (d + 1 < last)
		deep(d + 1, last, at_bottom);
	else
		at_bottom();
	snprintf(what, sizeof(what), "stack frame %d at %p (on the way up)", d, (void *)buf);
	expect_pattern(what, buf, sizeof(buf), 0x90000 + d);
	sink += (int)buf[d % FRAME_WORDS];
}

static void after_more(void)
{
	/* 1 MiB below where the stack was at the checkpoint: it grew */
	char line[512];
	CHECK(!maps_line(frames[DEPTH + MORE - 1], line, sizeof(line)), "no mapping for the stack");
	CHECK(strstr(line, "[stack]") != NULL, "the grown stack is in '%s', not [stack]", line);
}

static void bottom(void)
{
	ready();
	wait_for_sigterm();
	check_state();
	deep(DEPTH, DEPTH + MORE, after_more);
	check_heap_works();
}

int main(int argc, char **argv)
{
	const char *td = getenv("TEST_DIR");

	(void)argc;
	if (!td)
		fail("setup: TEST_DIR is not set");
	install_sigterm(SA_RESTART);
	saved_argv = argv;
	argv0_copy = strdup(argv[0]);
	copy_str(testdir_copy, sizeof(testdir_copy), td);
	/* stdio mallocs its buffer at the first output: now, not after the
	 * break is recorded */
	note("heap blocks: %d, stack frames: %d of %d bytes", NBLOCKS, DEPTH, FRAME_WORDS * 8);
	record();
	build_heap();
	deep(0, DEPTH, bottom);
	pass();
}
