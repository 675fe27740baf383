/*
 * testlib.h: helpers shared by cryo's test programs (tests/progs/NAME.c).
 *
 * The protocol (tests/README.md says it in full): build kernel state, print
 * READY, wait for SIGTERM, check every piece of state, print PASS or
 * "FAIL: why" and exit 0 or 1. Nothing else may go to stdout before the
 * verdict except lines starting with "# ".
 *
 * Everything here is static inline so that a program includes only this
 * header; no helper allocates memory or maps anything once READY is printed
 * (the runner compares /proc/PID/maps before and after the restore).
 */
#ifndef CRYO_TESTLIB_H
#define CRYO_TESTLIB_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- verdict */

/* Print "FAIL: why" (one line) and exit 1. */
__attribute__((format(printf, 1, 2), noreturn, unused))
static void fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* one line, whatever the message holds */
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("FAIL: %s\n", buf);
	fflush(stdout);
	exit(1);
}

__attribute__((noreturn, unused))
static void pass(void)
{
	printf("PASS\n");
	fflush(stdout);
	exit(0);
}

/* A "# " comment line: allowed at any time. */
__attribute__((format(printf, 1, 2), unused))
static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* fail() unless cond, e.g. CHECK(x == 3, "x is %d, want 3", x) */
#define CHECK(cond, ...)                 \
	do {                             \
		if (!(cond))             \
			fail(__VA_ARGS__); \
	} while (0)

/* Setup steps that must not fail (before READY): FAIL with errno. */
#define SYS(call)                                                            \
	({                                                                   \
		long _r = (long)(call);                                      \
		if (_r == -1)                                                \
			fail("setup: %s: %s (line %d)", #call, strerror(errno), \
			     __LINE__);                                      \
		_r;                                                          \
	})

#define CHECK_EQ_U64(what, want, got)                                          \
	do {                                                                   \
		unsigned long long _w = (unsigned long long)(want);            \
		unsigned long long _g = (unsigned long long)(got);             \
		if (_w != _g)                                                  \
			fail("%s: want %llu (0x%llx), got %llu (0x%llx)", what, \
			     _w, _w, _g, _g);                                  \
	} while (0)

#define CHECK_EQ_STR(what, want, got)                                        \
	do {                                                                 \
		const char *_w = (want), *_g = (got);                        \
		if (strcmp(_w, _g))                                          \
			fail("%s: want '%s', got '%s'", what, _w, _g);       \
	} while (0)

/* -------------------------------------------------------- READY, SIGTERM */

static volatile sig_atomic_t got_sigterm;

static void testlib_on_sigterm(int sig)
{
	(void)sig;
	got_sigterm = 1;
}

/*
 * Install the SIGTERM handler that sets got_sigterm. flags: 0 makes a
 * blocking syscall return EINTR on SIGTERM; SA_RESTART makes the kernel
 * restart the ones it can.
 */
__attribute__((unused))
static void install_sigterm(int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = testlib_on_sigterm;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	SYS(sigaction(SIGTERM, &sa, NULL));
}

/* State built: say so. Must be the first line that is not a comment. */
__attribute__((unused))
static void ready(void)
{
	printf("READY\n");
	fflush(stdout);
}

static int sigset_equal(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s <= 64; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

/* The first signal (1..64) whose membership differs, 0 if none. */
__attribute__((unused))
static int sigset_first_diff(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s <= 64; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return s;
	return 0;
}

/*
 * Wait for SIGTERM in a sigsuspend loop. Installs the handler if it is not
 * installed yet. SIGTERM is blocked outside sigsuspend, so a SIGTERM sent
 * between the flag test and sigsuspend is not lost.
 *
 * The process is checkpointed inside sigsuspend, where the kernel runs with
 * a temporary mask and keeps the real one aside (saved_sigmask,
 * TIF_RESTORE_SIGMASK). A restore that takes the temporary mask for the
 * real one leaves SIGTERM unblocked when sigsuspend returns: checked here,
 * for every test that waits this way.
 */
__attribute__((unused))
static void wait_for_sigterm(void)
{
	struct sigaction cur;
	sigset_t term, before, during, after;

	SYS(sigaction(SIGTERM, NULL, &cur));
	if (cur.sa_handler != testlib_on_sigterm)
		install_sigterm(SA_RESTART);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	SYS(sigprocmask(SIG_BLOCK, &term, &before));
	during = before;
	sigdelset(&during, SIGTERM);
	while (!got_sigterm)
		sigsuspend(&during);
	/* sigsuspend put back the mask it replaced: before + SIGTERM */
	SYS(sigprocmask(SIG_SETMASK, NULL, &after));
	sigaddset(&before, SIGTERM);
	if (!sigset_equal(&after, &before)) {
		int s = sigset_first_diff(&after, &before);
		fail("signal mask after sigsuspend: signal %d (%s) is %s, want %s", s,
		     strsignal(s), sigismember(&after, s) ? "blocked" : "unblocked",
		     sigismember(&before, s) ? "blocked" : "unblocked");
	}
	sigdelset(&before, SIGTERM);
	SYS(sigprocmask(SIG_SETMASK, &before, NULL));
}

/* ------------------------------------------------------- PRNG and hashing */

/* splitmix64: a fast, good 64-bit generator; state is any 64-bit value. */
static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The 64-bit word at word index i of the pattern named seed (random access). */
static inline uint64_t pattern_word(uint64_t seed, uint64_t i)
{
	uint64_t s = seed * 0x2545f4914f6cdd1dULL + i * 0x9e3779b97f4a7c15ULL;

	return splitmix64(&s);
}

/*
 * Fill len bytes at p with the pattern named seed. The pattern depends only
 * on the seed and the offset (word-granular; a partial tail word is cut), so
 * any part can be checked on its own. Seeds are non-zero and differ per
 * area: a page of zeroes, or another area's data, never matches.
 */
__attribute__((unused))
static void fill_pattern(void *p, size_t len, uint64_t seed)
{
	unsigned char *b = p;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, i / 8);
		memcpy(b + i, &w, 8);
	}
	if (i < len) {
		uint64_t w = pattern_word(seed, i / 8);
		memcpy(b + i, &w, len - i);
	}
}

/*
 * Offset of the first byte of p[0..len) that differs from the pattern named
 * seed at offset base (p holds pattern bytes base..base+len), or -1.
 */
__attribute__((unused))
static long check_pattern_at(const void *p, size_t len, uint64_t seed, size_t base)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		size_t o = base + i;
		uint64_t w = pattern_word(seed, o / 8);
		if (b[i] != (unsigned char)(w >> (8 * (o % 8))))
			return (long)i;
	}
	return -1;
}

/* Fast path when base is 0 and everything matches; exact offset otherwise. */
__attribute__((unused))
static long check_pattern(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, i / 8), g;
		memcpy(&g, b + i, 8);
		if (g != w)
			break;
	}
	if (i >= len)
		return -1;
	long r = check_pattern_at(b + i, len - i, seed, i);
	return r < 0 ? -1 : (long)i + r;
}

/* Byte that the pattern named seed holds at offset o. */
__attribute__((unused))
static unsigned char pattern_byte(uint64_t seed, size_t o)
{
	return (unsigned char)(pattern_word(seed, o / 8) >> (8 * (o % 8)));
}

/*
 * FAIL with where and what if p[0..len) is not the pattern named seed.
 * what names the area in the message.
 */
__attribute__((unused))
static void expect_pattern(const char *what, const void *p, size_t len, uint64_t seed)
{
	long off = check_pattern(p, len, seed);

	if (off >= 0)
		fail("%s: byte at offset %ld (address %p) is 0x%02x, want 0x%02x", what, off,
		     (const char *)p + off, ((const unsigned char *)p)[off],
		     pattern_byte(seed, (size_t)off));
}

/* FAIL unless p[0..len) is all zero. */
__attribute__((unused))
static void expect_zero(const char *what, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			fail("%s: byte at offset %zu (address %p) is 0x%02x, want 0", what, i,
			     (const void *)(b + i), b[i]);
}

/*
 * A 64-bit hash of a buffer (word-at-a-time multiply/xor-shift, in the
 * spirit of xxhash; not cryptographic). Fast enough for hundreds of MiB.
 */
__attribute__((unused))
static uint64_t hash64(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0x84222325cbf29ce4ULL ^ len;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		w *= 0x87c37b91114253d5ULL;
		w = (w << 31) | (w >> 33);
		h ^= w * 0x4cf5ad432745937fULL;
		h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
	}
	for (; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* ------------------------------------------------------------- /proc/self */

/* Copy the string src into dst of size bytes, cut if need be. */
static inline void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (!size)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* Read a whole small file into buf (NUL-terminated); returns length or -1. */
__attribute__((unused))
static long read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return (long)n;
}

/*
 * The VmFlags of the mapping that contains addr, from /proc/self/smaps,
 * into flags (e.g. "rd wr mr mw me ac dc"); 0, or -1 if no mapping holds
 * addr. Reads smaps with a fixed buffer, no allocation.
 */
__attribute__((unused))
static int smaps_vmflags(const void *addr, char *flags, size_t size)
{
	static char buf[1 << 16];
	char line[512];
	size_t have = 0, lpos = 0;
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC), in = 0;
	ssize_t r;
	uintptr_t a = (uintptr_t)addr;

	if (fd < 0)
		return -1;
	for (;;) {
		r = read(fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		size_t start = 0;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\n')
				continue;
			lpos = i - start < sizeof(line) - 1 ? i - start : sizeof(line) - 1;
			memcpy(line, buf + start, lpos);
			line[lpos] = 0;
			start = i + 1;
			unsigned long lo, hi;
			if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') &&
			    line[0] != 'V') {
				in = a >= lo && a < hi;
			} else if (in && !strncmp(line, "VmFlags:", 8)) {
				const char *f = line + 8;
				while (*f == ' ')
					f++;
				copy_str(flags, size, f);
				close(fd);
				return 0;
			}
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	close(fd);
	return -1;
}

/* Is the two-letter flag f in a VmFlags string? */
__attribute__((unused))
static int has_vmflag(const char *flags, const char *f)
{
	size_t n = strlen(f);

	for (const char *p = flags; *p;) {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ' ')
			e++;
		if ((size_t)(e - p) == n && !strncmp(p, f, n))
			return 1;
		p = e;
	}
	return 0;
}

/*
 * The /proc/self/maps line of the mapping that contains addr (without the
 * newline) into out; 0, or -1 if none.
 */
__attribute__((unused))
static int maps_line(const void *addr, char *out, size_t size)
{
	static char buf[1 << 17];
	uintptr_t a = (uintptr_t)addr;

	if (read_file("/proc/self/maps", buf, sizeof(buf)) < 0)
		return -1;
	for (char *l = buf; *l;) {
		char *e = strchr(l, '\n');
		if (e)
			*e = 0;
		unsigned long lo, hi;
		if (sscanf(l, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
			copy_str(out, size, l);
			return 0;
		}
		if (!e)
			break;
		l = e + 1;
	}
	return -1;
}

/*
 * FAIL unless [addr, addr+len) is covered, without holes, by mappings with
 * permissions perms (e.g. "rw-p"). Used before touching restored memory, so
 * that a missing area gives a verdict rather than a SIGSEGV.
 */
__attribute__((unused))
static void expect_mapped(const char *what, const void *addr, size_t len, const char *perms)
{
	char line[512], p[8];
	unsigned long lo, hi;
	uintptr_t a = (uintptr_t)addr, end = a + len;

	while (a < end) {
		if (maps_line((const void *)a, line, sizeof(line)))
			fail("%s: no mapping at %p (want %#lx bytes at %p, %s)", what, (void *)a,
			     (unsigned long)len, addr, perms);
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) != 3)
			fail("%s: cannot parse maps line '%s'", what, line);
		if (strcmp(p, perms))
			fail("%s: mapping at %p is %s, want %s ('%s')", what, (void *)a, p, perms,
			     line);
		a = hi;
	}
}

/* Field n (1-based, as in proc(5)) of /proc/self/stat, as unsigned long. */
__attribute__((unused))
static unsigned long proc_stat_field(int n)
{
	char buf[2048];
	char *p;
	int f;

	if (read_file("/proc/self/stat", buf, sizeof(buf)) < 0)
		fail("cannot read /proc/self/stat: %s", strerror(errno));
	p = strrchr(buf, ')');	/* comm may hold spaces and parentheses */
	if (!p)
		fail("cannot parse /proc/self/stat");
	p += 2;			/* now at field 3 (state) */
	for (f = 3; f < n; f++) {
		p = strchr(p, ' ');
		if (!p)
			fail("/proc/self/stat has no field %d", n);
		p++;
	}
	return strtoul(p, NULL, 10);
}

/* The value of "Key:" in /proc/self/status (rest of the line, trimmed). */
__attribute__((unused))
static int proc_status(const char *key, char *out, size_t size)
{
	char buf[8192];
	size_t n = strlen(key);

	if (read_file("/proc/self/status", buf, sizeof(buf)) < 0)
		return -1;
	for (char *l = buf; *l;) {
		char *e = strchr(l, '\n');
		if (e)
			*e = 0;
		if (!strncmp(l, key, n) && l[n] == ':') {
			const char *v = l + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			copy_str(out, size, v);
			return 0;
		}
		if (!e)
			break;
		l = e + 1;
	}
	return -1;
}

/* The parent of process pid, from /proc (-1 if it is gone). */
__attribute__((unused))
static pid_t parent_of(pid_t pid)
{
	char path[64], line[256];
	pid_t ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "PPid: %d", &ppid) == 1)
			break;
	fclose(f);
	return ppid;
}

/* ------------------------------------------------------------------ time */

__attribute__((unused))
static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((unused))
static double ts_seconds(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

#endif
