/*
 * `cryo check`: probe, on the running kernel, every feature cryo relies on.
 *
 * No probe trusts a kernel version or a config file: each one does what
 * checkpoint or restore will do and looks at the result. One line is
 * printed per feature:
 *
 *	ok   <feature>: <detail>
 *	MISSING <feature>: <what fails without it>
 *
 * A missing required feature makes cryo_check() return CRYO_ENOFEATURE;
 * optional ones only cost an optimisation or a rare kind of state, and
 * their lines end in "(optional)".
 *
 * Most probes share one "target" child shaped like a typical checkpoint
 * target: it writes two pages of a four-page private area, says it is
 * ready and sleeps in pause(). Probes that would change the caller itself
 * (clone3 with set_tid, PR_SET_MM_MAP, moving the vDSO, unshare) run in a
 * short-lived child of their own, so checking never alters the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <asm/prctl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>

#include "cryo.h"
#include "kernel/proc.h"
#include "kernel/ptrace.h"
#include "kernel/uffd.h"
#include "util/util.h"

/* Capability numbers (linux/capability.h), by name for the report. */
#define CAP_NR_SYS_PTRACE		19
#define CAP_NR_SYS_ADMIN		21
#define CAP_NR_SYS_RESOURCE		24
#define CAP_NR_CHECKPOINT_RESTORE	40	/* Linux 5.9 */

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT		(1ULL << 63)
#define PM_EXCLUSIVE		(1ULL << 56)
#define PM_SOFT_DIRTY		(1ULL << 55)
#define PM_PFN_MASK		((1ULL << 55) - 1)
#define PM_ENTRY_BYTES		8
#define CLEAR_REFS_SOFT_DIRTY	"4"

/*
 * The kernel copies its xstate_fx_sw_bytes into the software-reserved part
 * of the FXSAVE header it returns for NT_X86_XSTATE; XCR0 sits at byte 464
 * (gdb reads it from the same place).
 */
#define XSAVE_XCR0_OFFSET	464

#define TARGET_AREA_PAGES	4
#define TARGET_MAGIC		0x626f72706f797263ULL	/* "cryoprob" */
#define SET_TID_ATTEMPTS	32
#define FREE_PID_DISTANCE	1000	/* from ns_last_pid, so a fork race is unlikely */

/* A probe child reports an errno through its 8-bit exit status. */
#define CHILD_ERR_MAX		255

enum need { OPTIONAL, REQUIRED };

struct check {
	FILE *out;
	int nr_missing_required;
};

/* The shared probe child; see the comment at the top. */
struct target {
	pid_t pid;
	int ready[2];		/* ready[0] stays open in both: the same file for kcmp */
	int child_wfd;		/* ready[1] as numbered in the child: another file */
	uint8_t *area;		/* pages 0 and 2 written by the child only */
	int stopped;		/* seized and in a ptrace stop */
};

static void report(struct check *c, enum need need, int ok, const char *feature,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct check *c, enum need need, int ok, const char *feature,
		   const char *fmt, ...)
{
	va_list ap;

	fprintf(c->out, ok ? "ok   %s: " : "MISSING %s: ", feature);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	if (need == OPTIONAL)
		fputs(" (optional)", c->out);
	fputc('\n', c->out);
	if (!ok && need == REQUIRED)
		c->nr_missing_required++;
}

/* Why a probe child failed: a positive errno it returned, or minus a signal. */
static const char *child_error(int r)
{
	return r > 0 ? strerror(r) : strsignal(-r);
}

/* Run fn in a forked child; returns what it returned (0 or an errno), or -signal. */
static int in_child(int (*fn)(void *arg), void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(fn(arg) & CHILD_ERR_MAX);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return errno;
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int read_proc_u64(const char *path, uint64_t *v)
{
	struct buf b = { 0 };
	int ret = read_whole_file(path, &b);

	if (!ret && sscanf(b.data, "%" SCNu64, v) != 1)
		ret = -EINVAL;
	buf_free(&b);
	return ret;
}

/* ---- the target child ---- */

static void __attribute__((noreturn)) target_main(const struct target *t)
{
	uint64_t magic = TARGET_MAGIC;

	/* Never outlive cryo, whatever happens to it mid-check. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	memcpy(t->area, &magic, sizeof(magic));
	memcpy(t->area + 2 * PAGE_SIZE_BYTES, &magic, sizeof(magic));
	if (write(t->ready[1], "r", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static int target_start(struct target *t)
{
	char c;

	memset(t, 0, sizeof(*t));
	t->ready[0] = t->ready[1] = -1;
	/* Untouched in the parent: the child's writes create pages only it maps. */
	t->area = mmap(NULL, TARGET_AREA_PAGES * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->area == MAP_FAILED) {
		t->area = NULL;
		return cryo_fail(CRYO_EINTERNAL, "check: mmap of the probe area: %s", strerror(errno));
	}
	if (pipe2(t->ready, O_CLOEXEC))
		return cryo_fail(CRYO_EINTERNAL, "check: pipe: %s", strerror(errno));
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0)
		return cryo_fail(CRYO_EINTERNAL, "check: fork of the probe child: %s", strerror(errno));
	if (t->pid == 0)
		target_main(t);
	t->child_wfd = t->ready[1];
	close(t->ready[1]);
	t->ready[1] = -1;
	if (read(t->ready[0], &c, 1) != 1)
		return cryo_fail(CRYO_EINTERNAL, "check: probe child %d died before it was ready",
				 t->pid);
	return 0;
}

static void target_stop(struct target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		while (waitpid(t->pid, NULL, __WALL) < 0 && errno == EINTR)
			;
	}
	if (t->ready[0] >= 0)
		close(t->ready[0]);
	if (t->ready[1] >= 0)
		close(t->ready[1]);
	if (t->area)
		munmap(t->area, TARGET_AREA_PAGES * PAGE_SIZE_BYTES);
}

/* ---- caller's privileges ---- */

static uint64_t own_effective_caps(void)
{
	struct buf b = { 0 };
	uint64_t caps = 0;
	char *p;

	if (read_whole_file("/proc/self/status", &b) == 0 && (p = strstr(b.data, "CapEff:")))
		caps = strtoull(p + strlen("CapEff:"), NULL, 16);
	buf_free(&b);
	return caps;
}

static int has_cap(uint64_t caps, int nr)
{
	return !!(caps & (1ULL << nr));
}

static void probe_capabilities(struct check *c, uint64_t caps)
{
	uint64_t last_cap = 0;

	read_proc_u64("/proc/sys/kernel/cap_last_cap", &last_cap);
	if (has_cap(caps, CAP_NR_CHECKPOINT_RESTORE))
		report(c, REQUIRED, 1, "CAP_CHECKPOINT_RESTORE", "held");
	else if (has_cap(caps, CAP_NR_SYS_ADMIN))
		report(c, REQUIRED, 1, "CAP_CHECKPOINT_RESTORE", "%s; CAP_SYS_ADMIN stands in",
		       last_cap < CAP_NR_CHECKPOINT_RESTORE ? "unknown to this kernel" : "not held");
	else
		report(c, REQUIRED, 0, "CAP_CHECKPOINT_RESTORE",
		       "neither it nor CAP_SYS_ADMIN is held: restore cannot choose PIDs "
		       "(clone3 set_tid), open map_files or set the exe link");

	report(c, OPTIONAL, has_cap(caps, CAP_NR_SYS_PTRACE), "CAP_SYS_PTRACE", "%s",
	       has_cap(caps, CAP_NR_SYS_PTRACE) ? "held" :
	       "only dumpable processes of cryo's own uid can be checkpointed");
	report(c, OPTIONAL, has_cap(caps, CAP_NR_SYS_ADMIN), "CAP_SYS_ADMIN", "%s",
	       has_cap(caps, CAP_NR_SYS_ADMIN) ? "held" :
	       "pagemap hides page frame numbers; time namespaces cannot be created");
	report(c, OPTIONAL, has_cap(caps, CAP_NR_SYS_RESOURCE), "CAP_SYS_RESOURCE", "%s",
	       has_cap(caps, CAP_NR_SYS_RESOURCE) ? "held" :
	       "a hard rlimit above cryo's own cannot be restored");
}

static void probe_ptrace_scope(struct check *c, uint64_t caps)
{
	uint64_t scope;

	if (read_proc_u64("/proc/sys/kernel/yama/ptrace_scope", &scope)) {
		report(c, REQUIRED, 1, "ptrace_scope", "no Yama LSM: ordinary ptrace rules");
		return;
	}
	switch (scope) {
	case 0:
		report(c, REQUIRED, 1, "ptrace_scope", "0 (classic ptrace permissions)");
		break;
	case 1:
	case 2:
		if (has_cap(caps, CAP_NR_SYS_PTRACE))
			report(c, REQUIRED, 1, "ptrace_scope", "%" PRIu64 ", CAP_SYS_PTRACE held",
			       scope);
		else if (scope == 1)
			report(c, REQUIRED, 1, "ptrace_scope",
			       "1: only descendants of cryo can be checkpointed");
		else
			report(c, REQUIRED, 0, "ptrace_scope",
			       "2 without CAP_SYS_PTRACE: no process can be checkpointed");
		break;
	default:
		report(c, REQUIRED, 0, "ptrace_scope",
		       "%" PRIu64 ": ptrace is disabled, no process can be checkpointed", scope);
	}
}

/* ---- ptrace ---- */

static void probe_ptrace_seize(struct check *c, struct target *t)
{
	int status;

	if (ptrace(PTRACE_SEIZE, t->pid, 0, 0)) {
		report(c, REQUIRED, 0, "ptrace-seize",
		       "cannot freeze a process: PTRACE_SEIZE: %s", strerror(errno));
		return;
	}
	if (ptrace(PTRACE_INTERRUPT, t->pid, 0, 0)) {
		report(c, REQUIRED, 0, "ptrace-seize",
		       "cannot freeze a process: PTRACE_INTERRUPT: %s", strerror(errno));
		return;
	}
	while (waitpid(t->pid, &status, __WALL) < 0) {
		if (errno != EINTR) {
			report(c, REQUIRED, 0, "ptrace-seize", "cannot freeze a process: waitpid: %s",
			       strerror(errno));
			return;
		}
	}
	if (!WIFSTOPPED(status) || status >> 16 != PTRACE_EVENT_STOP) {
		report(c, REQUIRED, 0, "ptrace-seize",
		       "cannot freeze a process: PTRACE_INTERRUPT gave wait status 0x%x", status);
		return;
	}
	t->stopped = 1;
	report(c, REQUIRED, 1, "ptrace-seize",
	       "PTRACE_SEIZE + PTRACE_INTERRUPT stop a task in pause()");
}

static void describe_xcr0(uint64_t xcr0, char *s, size_t len)
{
	static const struct {
		uint64_t mask;
		const char *name;
	} parts[] = {
		{ 1ULL << 0, "x87" }, { 1ULL << 1, "SSE" }, { 1ULL << 2, "AVX" },
		{ 3ULL << 3, "MPX" }, { 7ULL << 5, "AVX-512" }, { 1ULL << 9, "PKRU" },
		{ 1ULL << 11, "CET_U" }, { 3ULL << 17, "AMX" }, { 1ULL << 19, "APX" },
	};
	size_t n = 0;

	s[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(parts) && n < len; i++)
		if (xcr0 & parts[i].mask)
			n += snprintf(s + n, len - n, "%s%s", n ? " " : "", parts[i].name);
}

static void probe_xstate(struct check *c, struct target *t)
{
	uint8_t *xs;
	struct iovec iov;
	uint64_t xcr0;
	char names[128];

	if (!t->stopped) {
		report(c, REQUIRED, 0, "xstate", "not probed: ptrace-seize failed");
		return;
	}
	xs = xzalloc(XSTATE_MAX_BYTES);
	if (!xs) {
		report(c, REQUIRED, 0, "xstate", "not probed: out of memory");
		return;
	}
	iov.iov_base = xs;
	iov.iov_len = XSTATE_MAX_BYTES;
	if (ptrace(PTRACE_GETREGSET, t->pid, NT_X86_XSTATE, &iov)) {
		report(c, REQUIRED, 0, "xstate",
		       "AVX and later registers cannot be saved: PTRACE_GETREGSET NT_X86_XSTATE: %s",
		       strerror(errno));
	} else if (iov.iov_len >= XSTATE_MAX_BYTES) {
		/* The kernel truncates silently to the buffer it is given. */
		report(c, REQUIRED, 0, "xstate",
		       "the XSAVE area is larger than cryo's %d-byte buffer", XSTATE_MAX_BYTES);
	} else if (iov.iov_len <= XSAVE_XCR0_OFFSET + sizeof(xcr0)) {
		report(c, REQUIRED, 0, "xstate", "the kernel returned a %zu-byte XSAVE area",
		       iov.iov_len);
	} else {
		memcpy(&xcr0, xs + XSAVE_XCR0_OFFSET, sizeof(xcr0));
		describe_xcr0(xcr0, names, sizeof(names));
		report(c, REQUIRED, 1, "xstate", "XSAVE area %zu bytes, XCR0 0x%" PRIx64 " (%s)",
		       iov.iov_len, xcr0, names);
	}
	free(xs);
}

static void probe_rseq(struct check *c, struct target *t)
{
	struct __ptrace_rseq_configuration conf;
	long r;

	if (!t->stopped) {
		report(c, REQUIRED, 0, "rseq-config", "not probed: ptrace-seize failed");
		return;
	}
	memset(&conf, 0, sizeof(conf));
	r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->pid, sizeof(conf), &conf);
	if (r < 0)
		report(c, REQUIRED, 0, "rseq-config",
		       "the rseq registration glibc makes in every thread cannot be saved: "
		       "PTRACE_GET_RSEQ_CONFIGURATION: %s", strerror(errno));
	else if (conf.rseq_abi_pointer)
		report(c, REQUIRED, 1, "rseq-config",
		       "probe child's rseq area: %u bytes, signature 0x%x",
		       conf.rseq_abi_size, conf.signature);
	else
		report(c, REQUIRED, 1, "rseq-config",
		       "readable (the probe child has no rseq registered)");
}

/* ---- memory ---- */

static void probe_process_vm_readv(struct check *c, struct target *t)
{
	uint64_t got[2] = { 0, 0 };
	struct iovec local = { got, sizeof(got) };
	/* Two remote pieces in one call: the dump batches many pages this way. */
	struct iovec remote[2] = {
		{ t->area, sizeof(got[0]) },
		{ t->area + 2 * PAGE_SIZE_BYTES, sizeof(got[1]) },
	};
	ssize_t n = process_vm_readv(t->pid, &local, 1, remote, 2, 0);

	if (n < 0)
		report(c, REQUIRED, 0, "process_vm_readv", "memory cannot be read: %s",
		       strerror(errno));
	else if (n != sizeof(got) || got[0] != TARGET_MAGIC || got[1] != TARGET_MAGIC)
		report(c, REQUIRED, 0, "process_vm_readv",
		       "read %zd bytes that differ from what the probe child wrote", n);
	else
		report(c, REQUIRED, 1, "process_vm_readv", "batched read of two pages matches");
}

static int read_pagemap(int fd, const struct target *t, uint64_t e[TARGET_AREA_PAGES])
{
	off_t off = (uintptr_t)t->area / PAGE_SIZE_BYTES * PM_ENTRY_BYTES;

	return pread_full(fd, e, TARGET_AREA_PAGES * PM_ENTRY_BYTES, off);
}

/* Soft-dirty: new pages carry the bit, clear_refs "4" clears it. */
static void probe_soft_dirty(struct check *c, struct target *t, int pagemap_fd,
			     const uint64_t e[TARGET_AREA_PAGES])
{
	uint64_t again[TARGET_AREA_PAGES];
	char path[64];
	int fd, ok = 0;

	if (e[0] & PM_SOFT_DIRTY) {
		snprintf(path, sizeof(path), "/proc/%d/clear_refs", t->pid);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && write(fd, CLEAR_REFS_SOFT_DIRTY, 1) == 1 &&
		    read_pagemap(pagemap_fd, t, again) == 0 && !(again[0] & PM_SOFT_DIRTY))
			ok = 1;
		if (fd >= 0)
			close(fd);
	}
	report(c, OPTIONAL, ok, "soft-dirty", "%s",
	       ok ? "set on write, cleared through clear_refs" :
	       "no incremental checkpoints: each one copies every page");
}

static void probe_pagemap_scan(struct check *c, const struct target *t, int pagemap_fd)
{
	struct pm_region vec[TARGET_AREA_PAGES];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)t->area,
		.end = (uintptr_t)t->area + TARGET_AREA_PAGES * PAGE_SIZE_BYTES,
		.vec = (uintptr_t)vec,
		.vec_len = ARRAY_SIZE(vec),
		.category_anyof_mask = PM_IS_PRESENT,
		.return_mask = PM_IS_PRESENT,
	};
	uintptr_t a = (uintptr_t)t->area;
	int n = ioctl(pagemap_fd, PM_SCAN_IOCTL, &arg);

	if (n < 0)
		report(c, OPTIONAL, 0, "pagemap-scan",
		       "PAGEMAP_SCAN: %s; present pages are found by reading pagemap instead",
		       strerror(errno));
	else if (n != 2 || vec[0].start != a || vec[0].end != a + PAGE_SIZE_BYTES ||
		 vec[1].start != a + 2 * PAGE_SIZE_BYTES)
		report(c, OPTIONAL, 0, "pagemap-scan",
		       "PAGEMAP_SCAN returned %d unexpected regions; pagemap is read instead", n);
	else
		report(c, OPTIONAL, 1, "pagemap-scan", "finds the probe child's present pages");
}

static void probe_pagemap(struct check *c, struct target *t)
{
	uint64_t e[TARGET_AREA_PAGES];
	char path[64];
	int fd, ret;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report(c, REQUIRED, 0, "pagemap", "present pages cannot be told apart: open %s: %s",
		       path, strerror(errno));
		return;
	}
	ret = read_pagemap(fd, t, e);
	if (ret) {
		report(c, REQUIRED, 0, "pagemap", "present pages cannot be told apart: read: %s",
		       strerror(-ret));
	} else if (!(e[0] & PM_PRESENT) || !(e[2] & PM_PRESENT) || (e[1] & PM_PRESENT) ||
		   (e[3] & PM_PRESENT)) {
		report(c, REQUIRED, 0, "pagemap",
		       "present bits do not match the pages the probe child wrote");
	} else if (!(e[0] & PM_EXCLUSIVE)) {
		report(c, REQUIRED, 0, "pagemap",
		       "no exclusive-mapping bit: copied-on-write file pages cannot be found");
	} else {
		report(c, REQUIRED, 1, "pagemap", "present and exclusive bits match");
		report(c, OPTIONAL, (e[0] & PM_PFN_MASK) != 0, "pagemap-pfn", "%s",
		       (e[0] & PM_PFN_MASK) ? "page frame numbers visible" :
		       "PFNs hidden (no CAP_SYS_ADMIN): pages shared between processes "
		       "are saved once per process");
		probe_soft_dirty(c, t, fd, e);
	}
	probe_pagemap_scan(c, t, fd);
	close(fd);
}

static void probe_map_files(struct check *c, struct target *t)
{
	struct proc_vma *vmas = NULL, *v = NULL;
	char path[PATH_MAX + 64], link[PATH_MAX];
	struct stat st;
	ssize_t n;
	int nr = 0, fd, i;

	if (proc_read_vmas(t->pid, &vmas, &nr)) {
		report(c, REQUIRED, 0, "map_files", "not probed: /proc/%d/smaps unreadable", t->pid);
		return;
	}
	for (i = 0; i < nr && !v; i++)
		if (vmas[i].path[0] == '/')
			v = &vmas[i];
	if (!v) {
		report(c, REQUIRED, 0, "map_files", "not probed: the probe child maps no file");
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, t->pid,
		 v->start, v->end);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		report(c, REQUIRED, 0, "map_files", "mapped files cannot be named: readlink %s: %s",
		       path, strerror(errno));
		goto out;
	}
	link[n] = 0;
	/* Opening, not only reading the link, is what needs CAP_CHECKPOINT_RESTORE. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report(c, REQUIRED, 0, "map_files", "mapped files cannot be identified: open %s: %s%s",
		       path, strerror(errno),
		       errno == EPERM ? " (needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN)" : "");
		goto out;
	}
	if (fstat(fd, &st) || st.st_ino != v->ino)
		report(c, REQUIRED, 0, "map_files", "%s opens a different file than %s", path,
		       link);
	else
		report(c, REQUIRED, 1, "map_files", "links readable and openable");
	close(fd);
out:
	free(vmas);
}

/* ---- descriptors ---- */

static void probe_kcmp(struct check *c, struct target *t)
{
	pid_t self = getpid();
	long same = syscall(SYS_kcmp, self, t->pid, KCMP_FILE, t->ready[0], t->ready[0]);
	long other = syscall(SYS_kcmp, self, t->pid, KCMP_FILE, t->ready[0], t->child_wfd);

	if (same < 0)
		report(c, REQUIRED, 0, "kcmp",
		       "files shared between descriptors or processes cannot be recognised: %s",
		       strerror(errno));
	else if (same != 0 || other <= 0)
		report(c, REQUIRED, 0, "kcmp", "KCMP_FILE answered %ld and %ld, expected 0 and >0",
		       same, other);
	else
		report(c, REQUIRED, 1, "kcmp", "KCMP_FILE tells shared and distinct files apart");
}

static void probe_pidfd_open(struct check *c, struct target *t)
{
	struct buf b = { 0 };
	char want[32];
	int fd = syscall(SYS_pidfd_open, t->pid, 0);

	if (fd < 0) {
		report(c, OPTIONAL, 0, "pidfd_open", "processes holding pidfds cannot be restored: %s",
		       strerror(errno));
		return;
	}
	snprintf(want, sizeof(want), "Pid:\t%d\n", t->pid);
	if (read_proc(&b, "/proc/self/fdinfo/%d", fd) == 0 && strstr(b.data, want))
		report(c, OPTIONAL, 1, "pidfd_open", "pidfd names the probe child in its fdinfo");
	else
		report(c, OPTIONAL, 0, "pidfd_open",
		       "fdinfo of a pidfd shows no Pid: pidfds cannot be saved");
	buf_free(&b);
	close(fd);
}

/* ---- restore-side primitives, each in a child of its own ---- */

/* A PID that looks free now; the clone3 probe retries if it is taken meanwhile. */
static pid_t pick_free_pid(int attempt)
{
	uint64_t last = 0, max = 0, tries;
	char path[32];
	pid_t pid;

	read_proc_u64("/proc/sys/kernel/ns_last_pid", &last);
	if (read_proc_u64("/proc/sys/kernel/pid_max", &max) || max < 2 * FREE_PID_DISTANCE)
		max = 32768;
	pid = (last + FREE_PID_DISTANCE + attempt * 97) % max;
	for (tries = 0; tries < max; tries++, pid = (pid + 1) % max) {
		if (pid < FREE_PID_DISTANCE)
			continue;
		snprintf(path, sizeof(path), "/proc/%d", pid);
		if (access(path, F_OK) && errno == ENOENT)
			break;
	}
	return pid;	/* if every PID is taken, clone3 says EEXIST */
}

static void probe_clone3_set_tid(struct check *c)
{
	struct clone_args args;
	pid_t want = 0;
	long r = -1;
	int attempt;

	for (attempt = 0; attempt < SET_TID_ATTEMPTS; attempt++) {
		want = pick_free_pid(attempt);
		memset(&args, 0, sizeof(args));
		args.exit_signal = SIGCHLD;
		args.set_tid = (uintptr_t)&want;
		args.set_tid_size = 1;
		fflush(NULL);
		r = syscall(SYS_clone3, &args, sizeof(args));
		if (r == 0)
			_exit(0);
		if (r > 0 || errno != EEXIST)
			break;
	}
	if (r < 0) {
		const char *why = errno == EPERM ? " (needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN)" :
				  errno == ENOSYS ? " (no clone3: Linux < 5.3)" :
				  errno == EINVAL || errno == E2BIG ? " (no set_tid: Linux < 5.5)" :
				  "";
		report(c, REQUIRED, 0, "clone3-set_tid",
		       "processes cannot get their PIDs back: clone3 set_tid=%d: %s%s", want,
		       strerror(errno), why);
		return;
	}
	while (waitpid(r, NULL, 0) < 0 && errno == EINTR)
		;
	if (r != want)
		report(c, REQUIRED, 0, "clone3-set_tid", "asked for PID %d, got %ld", want, r);
	else
		report(c, REQUIRED, 1, "clone3-set_tid", "child created with chosen PID %d", want);
}

/* Child: set this process's own mm fields to what they already are. */
static int child_set_mm_map(void *arg)
{
	struct prctl_mm_map map;
	struct proc_stat st;
	struct buf auxv = { 0 };
	pid_t self = getpid();

	(void)arg;
	if (proc_read_stat(self, self, &st) || read_proc(&auxv, "/proc/self/auxv"))
		return EIO;
	memset(&map, 0, sizeof(map));
	map.start_code = st.start_code;
	map.end_code = st.end_code;
	map.start_data = st.start_data;
	map.end_data = st.end_data;
	map.start_brk = st.start_brk;
	map.brk = (uintptr_t)sbrk(0);
	map.start_stack = st.start_stack;
	map.arg_start = st.arg_start;
	map.arg_end = st.arg_end;
	map.env_start = st.env_start;
	map.env_end = st.env_end;
	map.auxv = (__u64 *)auxv.data;
	map.auxv_size = auxv.len;
	map.exe_fd = -1;	/* keep the exe link: replacing it needs the old one unmapped */
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof(map), 0))
		return errno;
	return 0;
}

static void probe_prctl_mm_map(struct check *c)
{
	unsigned int size = 0;
	int r;

	if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0)) {
		report(c, REQUIRED, 0, "prctl-mm-map",
		       "brk, argv/env bounds and auxv cannot be restored: PR_SET_MM_MAP_SIZE: %s",
		       strerror(errno));
		return;
	}
	if (size != sizeof(struct prctl_mm_map)) {
		report(c, REQUIRED, 0, "prctl-mm-map",
		       "kernel's struct prctl_mm_map is %u bytes, cryo's %zu", size,
		       sizeof(struct prctl_mm_map));
		return;
	}
	r = in_child(child_set_mm_map, NULL);
	if (r)
		report(c, REQUIRED, 0, "prctl-mm-map",
		       "brk, argv/env bounds and auxv cannot be restored: PR_SET_MM_MAP: %s",
		       child_error(r));
	else
		report(c, REQUIRED, 1, "prctl-mm-map",
		       "PR_SET_MM_MAP (%u bytes) accepted a process's own layout", size);
}

/* The kernel's special mappings, in address order. */
struct vdso_layout {
	struct proc_vma_range vvar, vclock, vdso;
	int has_vclock;		/* [vvar_vclock] exists since Linux 6.13 */
};

static int read_vdso_layout(pid_t pid, struct vdso_layout *l)
{
	memset(l, 0, sizeof(*l));
	if (proc_find_named_vma(pid, "[vdso]", &l->vdso) ||
	    proc_find_named_vma(pid, "[vvar]", &l->vvar))
		return -ENOENT;
	l->has_vclock = proc_find_named_vma(pid, "[vvar_vclock]", &l->vclock) == 0;
	return 0;
}

static int layout_moved_to(const struct vdso_layout *old, const struct vdso_layout *now,
			   uint64_t base)
{
	uint64_t delta = base - old->vvar.start;

	return now->vvar.start == old->vvar.start + delta &&
	       now->vdso.start == old->vdso.start + delta &&
	       now->vdso.end == old->vdso.end + delta &&
	       (!old->has_vclock || now->vclock.start == old->vclock.start + delta);
}

/* A free range as large as the vDSO areas together, to move them to. */
static uint64_t reserve_vdso_span(const struct vdso_layout *l)
{
	uint64_t span = l->vdso.end - l->vvar.start;
	void *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? 0 : (uintptr_t)p;
}

static int move_area(const struct proc_vma_range *r, uint64_t to)
{
	void *p = mremap((void *)(uintptr_t)r->start, r->end - r->start, r->end - r->start,
			 MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)to);

	return p == MAP_FAILED ? errno : 0;
}

/*
 * Child: move [vvar], [vvar_vclock] and [vdso] elsewhere, either with
 * mremap (arg NULL) or by unmapping them and asking for a fresh copy with
 * ARCH_MAP_VDSO_64, as the restorer will. Nothing here may call into the
 * vDSO: no clock_gettime, gettimeofday or time.
 */
static int child_move_vdso(void *arg)
{
	int use_arch_prctl = arg != NULL;
	struct vdso_layout old, now;
	uint64_t base, delta;
	int r;

	if (read_vdso_layout(getpid(), &old))
		return ENOENT;
	base = reserve_vdso_span(&old);
	if (!base)
		return ENOMEM;
	delta = base - old.vvar.start;
	if (use_arch_prctl) {
		/* The address is only a hint: the reservation must go first. */
		munmap((void *)(uintptr_t)base, old.vdso.end - old.vvar.start);
		munmap((void *)(uintptr_t)old.vvar.start, old.vdso.end - old.vvar.start);
		/* Success is not always 0: some kernels return the vDSO text offset. */
		if (syscall(SYS_arch_prctl, ARCH_MAP_VDSO_64, base) < 0)
			return errno;
	} else {
		r = move_area(&old.vvar, old.vvar.start + delta);
		if (!r && old.has_vclock)
			r = move_area(&old.vclock, old.vclock.start + delta);
		if (!r)
			r = move_area(&old.vdso, old.vdso.start + delta);
		if (r)
			return r;
	}
	if (read_vdso_layout(getpid(), &now))
		return ENOENT;
	/* The areas exist but somewhere else, or with other sizes. */
	return layout_moved_to(&old, &now, base) ? 0 : EADDRNOTAVAIL;
}

static void probe_vdso(struct check *c)
{
	struct vdso_layout l;
	char sizes[128];
	int by_mremap, by_arch_prctl;

	if (read_vdso_layout(getpid(), &l)) {
		report(c, REQUIRED, 0, "vdso", "no [vdso] or [vvar] in /proc/self/maps");
		return;
	}
	if (l.has_vclock)
		snprintf(sizes, sizeof(sizes), "[vvar] %" PRIu64 " KiB, [vvar_vclock] %" PRIu64
			 " KiB, [vdso] %" PRIu64 " KiB", (l.vvar.end - l.vvar.start) >> 10,
			 (l.vclock.end - l.vclock.start) >> 10, (l.vdso.end - l.vdso.start) >> 10);
	else
		snprintf(sizes, sizeof(sizes), "[vvar] %" PRIu64 " KiB, [vdso] %" PRIu64 " KiB",
			 (l.vvar.end - l.vvar.start) >> 10, (l.vdso.end - l.vdso.start) >> 10);
	by_mremap = in_child(child_move_vdso, NULL);
	by_arch_prctl = in_child(child_move_vdso, (void *)1);
	if (by_mremap && by_arch_prctl)
		report(c, REQUIRED, 0, "vdso",
		       "%s; cannot be put at an image's addresses: mremap: %s, "
		       "ARCH_MAP_VDSO_64: %s", sizes, child_error(by_mremap),
		       child_error(by_arch_prctl));
	else
		report(c, REQUIRED, 1, "vdso", "%s; movable by %s%s%s", sizes,
		       by_mremap ? "" : "mremap", !by_mremap && !by_arch_prctl ? " and " : "",
		       by_arch_prctl ? "" : "ARCH_MAP_VDSO_64");
}

/* ---- optional extras ---- */

static void probe_userfaultfd(struct check *c)
{
	struct uffdio_api api = { .api = UFFD_API };
	const char *mode = "";
	int fd;

	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) {
		/* vm.unprivileged_userfaultfd=0 still allows user-mode-only faults. */
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		mode = ", user-mode faults only";
	}
	if (fd < 0) {
		report(c, OPTIONAL, 0, "userfaultfd", "no lazy (post-copy) restore: %s",
		       strerror(errno));
		report(c, OPTIONAL, 0, "uffd-wp", "no userfaultfd");
		return;
	}
	/* Asking for no features makes the kernel answer with all it has. */
	if (ioctl(fd, UFFDIO_API, &api)) {
		report(c, OPTIONAL, 0, "userfaultfd", "UFFDIO_API: %s", strerror(errno));
		report(c, OPTIONAL, 0, "uffd-wp", "no userfaultfd");
		close(fd);
		return;
	}
	close(fd);
	report(c, OPTIONAL, 1, "userfaultfd", "features 0x%llx%s", (unsigned long long)api.features,
	       mode);
	if (api.features & UFFD_FEATURE_WP_ASYNC)
		report(c, OPTIONAL, 1, "uffd-wp", "write-protect with WP_ASYNC%s",
		       api.features & UFFD_FEATURE_WP_UNPOPULATED ? " and WP_UNPOPULATED" : "");
	else if (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		report(c, OPTIONAL, 1, "uffd-wp", "synchronous write-protect only (no WP_ASYNC)");
	else
		report(c, OPTIONAL, 0, "uffd-wp", "no write-protect tracking of dirty pages");
}

static int child_unshare_time(void *arg)
{
	(void)arg;
	return unshare(CLONE_NEWTIME) ? errno : 0;
}

static void probe_time_namespace(struct check *c)
{
	const char *lost = "a restored process's CLOCK_MONOTONIC and CLOCK_BOOTTIME follow "
			   "the new boot";
	int r;

	if (access("/proc/self/ns/time", F_OK)) {
		report(c, OPTIONAL, 0, "time-namespace", "%s (no /proc/self/ns/time)", lost);
		return;
	}
	r = in_child(child_unshare_time, NULL);
	if (r)
		report(c, OPTIONAL, 0, "time-namespace", "%s (unshare: %s)", lost, child_error(r));
	else
		report(c, OPTIONAL, 1, "time-namespace", "unshare(CLONE_NEWTIME) works");
}

int cryo_check(FILE *out)
{
	struct check c = { .out = out };
	struct target t;
	uint64_t caps = own_effective_caps();
	int ret;

	probe_capabilities(&c, caps);
	probe_ptrace_scope(&c, caps);

	ret = target_start(&t);
	if (ret) {
		target_stop(&t);
		return ret;
	}
	probe_ptrace_seize(&c, &t);
	probe_xstate(&c, &t);
	probe_rseq(&c, &t);
	probe_process_vm_readv(&c, &t);
	probe_pagemap(&c, &t);
	probe_map_files(&c, &t);
	probe_kcmp(&c, &t);
	probe_pidfd_open(&c, &t);
	target_stop(&t);

	probe_clone3_set_tid(&c);
	probe_prctl_mm_map(&c);
	probe_vdso(&c);
	probe_userfaultfd(&c);
	probe_time_namespace(&c);

	fflush(out);
	return c.nr_missing_required ? CRYO_ENOFEATURE : CRYO_OK;
}
