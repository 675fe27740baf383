/*
 * cryo inspect: print what an image holds, as text for people or as one
 * JSON document for programs.
 *
 * imgr_open() has validated structure and checksums, but the meaning of
 * every field is still untrusted: counts are clamped to their arrays,
 * fixed-size names may lack their NUL, string offsets may point nowhere
 * (printed as "?", or null in JSON), and text is escaped so that neither a
 * terminal nor a JSON parser can be confused by what a process named itself.
 *
 * Both formats go through one small emitter (struct out): objects, arrays
 * and key/value fields. In JSON they nest as such; in text an object with a
 * label starts a new line, fields follow as "key value", and o_break()
 * continues a long record on an indented line.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "image/image.h"
#include "util/util.h"

#define OUT_MAX_DEPTH 16
#define RLIM_INFINITY_VALUE (~0ull)
#define MAPS_NAME_COLUMN 73	/* where /proc/PID/maps starts the name (seq_pad) */

struct out {
	FILE *f;
	int json;
	int depth;
	int first[OUT_MAX_DEPTH];	/* JSON: nothing printed at this level yet */
	int text_indent;		/* text: labelled objects currently open */
	int label_stack[OUT_MAX_DEPTH];	/* text: did this level have a label */
	int text_started;		/* text: something is on the first line */
};

/* ------------------------------------------------------------ escaping */

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* A JSON string: escapes per RFC 8259; invalid UTF-8 becomes U+FFFD. */
static void put_json_str(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	for (size_t i = 0; i < n && p[i];) {
		unsigned char c = p[i];
		size_t len;

		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else if (c >= 0x80) {
			len = utf8_len(p + i, strnlen(s + i, n - i));
			if (!len) {
				fputs("\\ufffd", f);
				i++;
				continue;
			}
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		} else {
			fputc(c, f);
		}
		i++;
	}
	fputc('"', f);
}

/* Text: printable ASCII and valid UTF-8 as is, everything else as \xNN. */
static void put_text_str(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n && p[i];) {
		unsigned char c = p[i];
		size_t len = c >= 0x80 ? utf8_len(p + i, strnlen(s + i, n - i)) : 0;

		if (len) {
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		if (c == '\\' || c == '"')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
		i++;
	}
}

/* ------------------------------------------------------------- emitter */

static void json_indent(struct out *o)
{
	fputc('\n', o->f);
	for (int i = 0; i < o->depth; i++)
		fputs("  ", o->f);
}

static void text_newline(struct out *o, int extra)
{
	if (o->text_started)
		fputc('\n', o->f);
	o->text_started = 1;
	for (int i = 0; i < o->text_indent + extra; i++)
		fputs("  ", o->f);
}

/* JSON: comma and key; text: " key ". */
static void o_key(struct out *o, const char *key)
{
	if (o->json) {
		if (!o->first[o->depth])
			fputc(',', o->f);
		o->first[o->depth] = 0;
		json_indent(o);
		if (key) {
			put_json_str(o->f, key, SIZE_MAX);
			fputs(": ", o->f);
		}
	} else {
		fprintf(o->f, key ? " %s " : " ", key ? key : "");
	}
}

static void o_push(struct out *o, int labelled)
{
	if (o->depth + 1 < OUT_MAX_DEPTH) {
		o->depth++;
		o->first[o->depth] = 1;
		o->label_stack[o->depth] = labelled;
	}
	if (labelled)
		o->text_indent++;
}

static void o_pop(struct out *o, char close)
{
	if (o->label_stack[o->depth])
		o->text_indent--;
	if (o->json) {
		int empty = o->first[o->depth];

		o->depth--;
		if (!empty)
			json_indent(o);
		fputc(close, o->f);
	} else {
		o->depth--;
	}
}

/*
 * Start an object. key names it inside a JSON object (NULL inside an
 * array); label, if not NULL, starts a text line ("task", "fd"...).
 */
static void o_obj(struct out *o, const char *key, const char *label)
{
	if (o->json) {
		o_key(o, key);
		fputc('{', o->f);
	} else if (label) {
		text_newline(o, 0);
		fputs(label, o->f);
	}
	o_push(o, label != NULL);
}

static void o_obj_end(struct out *o)
{
	o_pop(o, '}');
}

static void o_arr(struct out *o, const char *key)
{
	if (o->json) {
		o_key(o, key);
		fputc('[', o->f);
	}
	o_push(o, 0);
}

static void o_arr_end(struct out *o)
{
	o_pop(o, ']');
}

/* Text only: continue the current record on a new, indented line. */
static void o_break(struct out *o)
{
	if (!o->json) {
		text_newline(o, 0);
		fputc(' ', o->f);	/* with the key's own space: 2 deeper than records */
	}
}

/* A key that JSON needs but text leaves out ("task 1234", not "task pid 1234"). */
#define JSON_ONLY(o, key) ((o)->json ? (key) : NULL)

static void o_u64(struct out *o, const char *key, uint64_t v)
{
	o_key(o, key);
	fprintf(o->f, "%" PRIu64, v);
}

static void o_i64(struct out *o, const char *key, int64_t v)
{
	o_key(o, key);
	fprintf(o->f, "%" PRId64, v);
}

/* Addresses and masks: hex strings in JSON (numbers lose bits above 2^53). */
static void o_hex(struct out *o, const char *key, uint64_t v)
{
	o_key(o, key);
	fprintf(o->f, o->json ? "\"0x%" PRIx64 "\"" : "0x%" PRIx64, v);
}

static void o_oct(struct out *o, const char *key, uint64_t v)
{
	o_key(o, key);
	fprintf(o->f, o->json ? "\"0%" PRIo64 "\"" : "0%" PRIo64, v);
}

/* A string of at most n bytes (fixed-size fields may lack the NUL); NULL → "?". */
static void o_strn(struct out *o, const char *key, const char *s, size_t n)
{
	o_key(o, key);
	if (!s) {
		fputs(o->json ? "null" : "?", o->f);
	} else if (o->json) {
		put_json_str(o->f, s, n);
	} else {
		fputc('"', o->f);
		put_text_str(o->f, s, n);
		fputc('"', o->f);
	}
}

static void o_str(struct out *o, const char *key, const char *s)
{
	o_strn(o, key, s, SIZE_MAX);
}

/* A bare word: a name from our own tables, never from the image. */
static void o_word(struct out *o, const char *key, const char *w)
{
	o_key(o, key);
	fprintf(o->f, o->json ? "\"%s\"" : "%s", w);
}

/* v may be a packed (unaligned) array: read it bytewise. */
static void o_u32_list(struct out *o, const char *key, const void *v, size_t n)
{
	o_key(o, key);
	fputs(o->json ? "[" : "", o->f);
	for (size_t i = 0; i < n; i++) {
		uint32_t x;

		memcpy(&x, (const char *)v + i * sizeof(x), sizeof(x));
		fprintf(o->f, "%s%u", i ? (o->json ? ", " : ",") : "", x);
	}
	fputs(o->json ? "]" : (n ? "" : "-"), o->f);
}

/* Names of the set bits, "a|b|c", or "-" if none; unknown bits in hex. */
static void o_flags(struct out *o, const char *key, uint64_t v, const char *const *names,
		    size_t nr_names)
{
	int any = 0;

	o_key(o, key);
	fputs(o->json ? "[" : "", o->f);
	for (size_t bit = 0; bit < 64; bit++) {
		if (!(v & (1ull << bit)))
			continue;
		if (o->json)
			fputs(any ? ", " : "", o->f);
		else
			fputs(any ? "|" : "", o->f);
		if (bit < nr_names && names[bit])
			fprintf(o->f, o->json ? "\"%s\"" : "%s", names[bit]);
		else
			fprintf(o->f, o->json ? "\"0x%llx\"" : "0x%llx", 1ull << bit);
		any = 1;
	}
	fputs(o->json ? "]" : (any ? "" : "-"), o->f);
}

/* ---------------------------------------------------------------- names */

static const char *const signal_names[] = {
	NULL, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
	"SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
	"SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
	"SIGIO", "SIGPWR", "SIGSYS",
};

static void o_signal(struct out *o, const char *key, int64_t sig)
{
	char buf[32];

	if (sig > 0 && (size_t)sig < ARRAY_SIZE(signal_names))
		o_word(o, key, signal_names[sig]);
	else {
		snprintf(buf, sizeof(buf), "SIG%" PRId64, sig);	/* real-time or junk */
		o_word(o, key, buf);
	}
}

static const char *const rlimit_names[CRYO_RLIM_NLIMITS] = {
	"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
	"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
};

static const char *const itimer_names[3] = { "REAL", "VIRTUAL", "PROF" };

static const char *const task_flag_names[] = { "stopped", "zombie" };

static const char *const vma_kind_names[] = {
	NULL, "anon-private", "anon-shared", "file-private", "file-shared",
	"vvar", "vvar_vclock", "vdso", "vsyscall",
};

static const char *const vma_flag_names[] = {
	"growsdown", "dontfork", "dontdump", "hugepage", "nohugepage", "wipeonfork",
	"locked", "seq_read", "rand_read", "mergeable", "maywrite", "noreserve",
	"heap", "stack", "deleted",
};

static const char *const fd_kind_names[] = {
	NULL, "reg", "dir", "chr", "deleted", "pipe", "dup", "inherit", "proc", "pidfd", "memfd",
	"fifo", "external", "epoll", "eventfd", "signalfd", "timerfd",
};

static const char *const shmem_kind_names[] = { "anonymous", "memfd", "sysv", "deleted" };

static const char *const proc_target_names[] = { NULL, "image", "outside", "dead" };

/* user_regs_struct order, as in format.h (CRYO_NR_GREGS). */
static const char *const reg_names[CRYO_NR_GREGS] = {
	"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
	"rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp",
	"ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
};
#define REG_RAX 10
#define REG_ORIG_RAX 15
#define REG_RIP 16
#define REG_RSP 19

static const char *name_of(const char *const *names, size_t nr, uint64_t v)
{
	return v < nr && names[v] ? names[v] : "unknown";
}

/* ------------------------------------------------------------- sections */

struct inspect {
	struct img_reader *r;
	struct out o;
	int status;		/* first failure, reported at the end */
};

static void *load(struct inspect *in, size_t i, uint32_t size, uint32_t *n)
{
	void *p = imgr_load_table(in->r, i, size, n);

	if (!p && !in->status)
		in->status = CRYO_EIMAGE;
	return p;
}

static const char *const header_flag_names[] = { "precopy" };

static void print_header(struct inspect *in, const char *path)
{
	const struct cryo_file_header *h = imgr_header(in->r);
	struct out *o = &in->o;
	time_t secs = h->created_ns / 1000000000ull;
	char when[64] = "?";
	struct stat st;
	struct tm tm;

	if (gmtime_r(&secs, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%09lluZ",
			 (unsigned long long)(h->created_ns % 1000000000ull));
	o_obj(o, "header", "image");
	if (!o->json)
		fprintf(o->f, " %s", path);
	o_break(o);
	o_u64(o, "version_major", h->version_major);
	o_u64(o, "version_minor", h->version_minor);
	o_u64(o, "arch", h->arch);
	if (h->arch == CRYO_IMG_ARCH_X86_64)
		o_word(o, "arch_name", "x86_64");
	o_u64(o, "page_size", h->page_size);
	o_break(o);
	if (!fstat(imgr_fd(in->r), &st))
		o_u64(o, "file_size", st.st_size);
	o_u64(o, "sections", imgr_nr_sections(in->r));
	o_break(o);
	o_word(o, "created", when);
	o_u64(o, "created_ns", h->created_ns);
	o_hex(o, "xfeatures", h->xfeatures);
	o_flags(o, "flags", h->flags, header_flag_names, ARRAY_SIZE(header_flag_names));
	o_obj_end(o);
}

static void print_task(struct inspect *in, const struct cryo_img_task *t)
{
	struct out *o = &in->o;
	uint32_t ngroups = t->ngroups < CRYO_MAX_GROUPS ? t->ngroups : CRYO_MAX_GROUPS;

	o_obj(o, NULL, "task");
	o_i64(o, JSON_ONLY(o, "pid"), t->pid);
	o_i64(o, "ppid", t->ppid);
	o_i64(o, "pgid", t->pgid);
	o_i64(o, "sid", t->sid);
	o_strn(o, "comm", t->comm, sizeof(t->comm));
	o_u64(o, "nr_threads", t->nr_threads);
	o_break(o);
	o_str(o, "exe", imgr_str(in->r, t->exe_path));
	o_str(o, "cwd", imgr_str(in->r, t->cwd_path));
	o_str(o, "root", imgr_str(in->r, t->root_path));
	o_break(o);
	o_oct(o, "umask", t->umask);
	o_hex(o, "personality", t->personality);
	o_flags(o, "flags", t->flags, task_flag_names, ARRAY_SIZE(task_flag_names));
	o_signal(o, "exit_signal", t->exit_signal);
	if (t->flags & CRYO_TASK_ZOMBIE || o->json)
		o_i64(o, "exit_status", t->exit_status);
	o_i64(o, "pdeathsig", t->pdeathsig);
	o_u64(o, "dumpable", t->dumpable);
	o_u64(o, "child_subreaper", t->child_subreaper);
	o_u64(o, "thp_disable", t->thp_disable);
	o_u64(o, "timerslack_ns", t->timerslack_ns);
	o_break(o);
	o_u32_list(o, "uid", (const char *)t + offsetof(struct cryo_img_task, uid), 4);
	o_u32_list(o, "gid", (const char *)t + offsetof(struct cryo_img_task, gid), 4);
	o_u32_list(o, "groups", (const char *)t + offsetof(struct cryo_img_task, groups), ngroups);
	o_u64(o, "no_new_privs", t->no_new_privs);
	o_hex(o, "securebits", t->securebits);
	o_break(o);
	o_hex(o, "cap_inh", t->cap_inh);
	o_hex(o, "cap_prm", t->cap_prm);
	o_hex(o, "cap_eff", t->cap_eff);
	o_hex(o, "cap_bnd", t->cap_bnd);
	o_hex(o, "cap_amb", t->cap_amb);
	o_break(o);
	o_hex(o, "start_code", t->start_code);
	o_hex(o, "end_code", t->end_code);
	o_hex(o, "start_data", t->start_data);
	o_hex(o, "end_data", t->end_data);
	o_hex(o, "start_brk", t->start_brk);
	o_hex(o, "brk", t->brk);
	o_break(o);
	o_hex(o, "start_stack", t->start_stack);
	o_hex(o, "arg_start", t->arg_start);
	o_hex(o, "arg_end", t->arg_end);
	o_hex(o, "env_start", t->env_start);
	o_hex(o, "env_end", t->env_end);
	o_u64(o, "auxv_words", t->auxv_words);
	o_break(o);
	o_u64(o, "exe_dev", t->exe_dev);
	o_u64(o, "exe_ino", t->exe_ino);
	o_u64(o, "exe_size", t->exe_size);
	o_u64(o, "exe_mtime_ns", t->exe_mtime_ns);

	o_arr(o, "rlimits");
	for (int i = 0; i < CRYO_RLIM_NLIMITS; i++) {
		if (t->rlim_cur[i] == RLIM_INFINITY_VALUE && t->rlim_max[i] == RLIM_INFINITY_VALUE)
			continue;
		o_obj(o, NULL, "rlimit");
		o_word(o, JSON_ONLY(o, "resource"), rlimit_names[i]);
		if (t->rlim_cur[i] == RLIM_INFINITY_VALUE)
			o_word(o, "cur", "unlimited");
		else
			o_u64(o, "cur", t->rlim_cur[i]);
		if (t->rlim_max[i] == RLIM_INFINITY_VALUE)
			o_word(o, "max", "unlimited");
		else
			o_u64(o, "max", t->rlim_max[i]);
		o_obj_end(o);
	}
	o_arr_end(o);

	o_arr(o, "itimers");
	for (int i = 0; i < 3; i++) {
		const struct cryo_img_itimer *it = &t->itimers[i];

		if (!it->value_sec && !it->value_usec)
			continue;	/* disarmed */
		o_obj(o, NULL, "itimer");
		o_word(o, JSON_ONLY(o, "which"), itimer_names[i]);
		o_i64(o, "value_sec", it->value_sec);
		o_i64(o, "value_usec", it->value_usec);
		o_i64(o, "interval_sec", it->interval_sec);
		o_i64(o, "interval_usec", it->interval_usec);
		o_obj_end(o);
	}
	o_arr_end(o);

	o_arr(o, "sigactions");
	for (int i = 0; i < CRYO_NSIG; i++) {
		const struct cryo_img_sigaction *sa = &t->sigactions[i];

		if (!sa->handler && !sa->flags && !sa->restorer && !sa->mask)
			continue;	/* SIG_DFL, no flags: the default */
		o_obj(o, NULL, "sigaction");
		o_signal(o, JSON_ONLY(o, "signal"), i + 1);
		if (sa->handler <= 1)
			o_word(o, "handler", sa->handler ? "SIG_IGN" : "SIG_DFL");
		else
			o_hex(o, "handler", sa->handler);
		o_hex(o, "flags", sa->flags);
		o_hex(o, "restorer", sa->restorer);
		o_hex(o, "mask", sa->mask);
		o_obj_end(o);
	}
	o_arr_end(o);
	o_obj_end(o);
}

static void print_thread(struct inspect *in, const struct cryo_img_thread *t)
{
	struct out *o = &in->o;

	o_obj(o, NULL, "thread");
	o_i64(o, JSON_ONLY(o, "tid"), t->tid);
	o_i64(o, "pid", t->pid);
	o_strn(o, "comm", t->comm, sizeof(t->comm));
	o_hex(o, "rip", t->regs[REG_RIP]);
	o_hex(o, "rsp", t->regs[REG_RSP]);
	o_hex(o, "rax", t->regs[REG_RAX]);
	o_i64(o, "orig_rax", (int64_t)t->regs[REG_ORIG_RAX]);
	o_break(o);
	o_hex(o, "sigmask", t->sigmask);
	o_hex(o, "sas_sp", t->sas_sp);
	o_u64(o, "sas_size", t->sas_size);
	o_hex(o, "sas_flags", t->sas_flags);
	o_break(o);
	o_hex(o, "rseq", t->rseq_ptr);
	o_u64(o, "rseq_len", t->rseq_len);
	o_hex(o, "rseq_sig", t->rseq_sig);
	o_hex(o, "clear_child_tid", t->clear_child_tid);
	o_hex(o, "robust_list", t->robust_list);
	o_u64(o, "robust_list_len", t->robust_list_len);
	o_break(o);
	o_u64(o, "xstate_offset", t->xstate_offset);
	o_u64(o, "xstate_size", t->xstate_size);
	if (o->json) {
		o_obj(o, "regs", NULL);
		for (int i = 0; i < CRYO_NR_GREGS; i++)
			o_hex(o, reg_names[i], t->regs[i]);
		o_obj_end(o);
	}
	o_obj_end(o);
}

static void print_siginfo(struct inspect *in, const struct cryo_img_siginfo *s)
{
	struct out *o = &in->o;
	int32_t signo, err, code, pid;
	uint32_t uid;

	/* siginfo_t: si_signo, si_errno, si_code, pad, then the union */
	memcpy(&signo, s->info, 4);
	memcpy(&err, s->info + 4, 4);
	memcpy(&code, s->info + 8, 4);
	memcpy(&pid, s->info + 16, 4);
	memcpy(&uid, s->info + 20, 4);
	o_obj(o, NULL, "signal");
	o_signal(o, JSON_ONLY(o, "signo"), signo);
	o_i64(o, "tid", s->tid);
	o_word(o, "queue", s->tid ? "thread" : "process");
	o_i64(o, "pid", s->pid);
	o_i64(o, "code", code);
	o_i64(o, "errno", err);
	/* SI_USER (0) and the negative codes (SI_QUEUE, SI_TKILL...) carry a sender. */
	if (code <= 0) {
		o_i64(o, "sender_pid", pid);
		o_u64(o, "sender_uid", uid);
	}
	o_obj_end(o);
}

static void print_vma(struct inspect *in, const struct cryo_img_vma *v, uint64_t index)
{
	struct out *o = &in->o;
	int shared = v->kind == CRYO_VMA_ANON_SHARED || v->kind == CRYO_VMA_FILE_SHARED;
	char perms[5] = {
		v->prot & PROT_READ ? 'r' : '-', v->prot & PROT_WRITE ? 'w' : '-',
		v->prot & PROT_EXEC ? 'x' : '-', shared ? 's' : 'p', 0,
	};
	const char *name = imgr_str(in->r, v->name);

	o_obj(o, NULL, NULL);
	if (o->json) {
		o_u64(o, "index", index);
		o_hex(o, "start", v->start);
		o_hex(o, "end", v->end);
		o_word(o, "perms", perms);
		o_hex(o, "pgoff", v->pgoff);
		o_u64(o, "dev_major", v->dev_major);
		o_u64(o, "dev_minor", v->dev_minor);
		o_u64(o, "ino", v->ino);
		o_str(o, "name", name);
	} else {
		/* the /proc/PID/maps line, then what cryo adds */
		int n;

		fputc('\n', o->f);
		n = fprintf(o->f, "  %08" PRIx64 "-%08" PRIx64 " %s %08" PRIx64 " %02x:%02x %" PRIu64
			    " ", v->start, v->end, perms, v->pgoff, v->dev_major, v->dev_minor,
			    v->ino);
		if (!name || *name)
			fprintf(o->f, "%*s", n < MAPS_NAME_COLUMN + 2 ? MAPS_NAME_COLUMN + 2 - n : 0,
				"");
		if (name)
			put_text_str(o->f, name, SIZE_MAX);
		else
			fputc('?', o->f);
		fprintf(o->f, "\n     ");
	}
	o_word(o, "kind", name_of(vma_kind_names, ARRAY_SIZE(vma_kind_names), v->kind));
	o_flags(o, "flags", v->flags, vma_flag_names, ARRAY_SIZE(vma_flag_names));
	o_oct(o, "open_flags", v->open_flags);
	o_u64(o, "pages_dumped", v->nr_pages_dumped);
	if (o->json) {
		o_u64(o, "prot", v->prot);
		o_u64(o, "file_size", v->file_size);
		o_u64(o, "file_mtime_ns", v->file_mtime_ns);
	}
	o_obj_end(o);
}

static void print_fd(struct inspect *in, const struct cryo_img_fd *f)
{
	struct out *o = &in->o;

	o_obj(o, NULL, "fd");
	o_i64(o, JSON_ONLY(o, "fd"), f->fd);
	o_i64(o, "pid", f->pid);
	o_word(o, "kind", name_of(fd_kind_names, ARRAY_SIZE(fd_kind_names), f->kind));
	o_oct(o, "flags", f->flags);
	o_u64(o, "pos", f->pos);
	o_str(o, "path", imgr_str(in->r, f->path));
	o_break(o);
	o_oct(o, "mode", f->mode);
	o_u64(o, "size", f->size);
	o_u64(o, "mtime_ns", f->mtime_ns);
	if (f->kind == CRYO_FD_DUP || o->json)
		o_i64(o, "dup_of", f->dup_of);
	if (f->kind == CRYO_FD_PIPE || f->kind == CRYO_FD_FIFO || o->json) {
		o_u64(o, "pipe_ino", f->pipe_ino);
		o_u64(o, "pipe_size", f->pipe_size);
	}
	if (f->kind == CRYO_FD_CHR || o->json) {
		o_u64(o, "rdev_major", f->rdev_major);
		o_u64(o, "rdev_minor", f->rdev_minor);
	}
	if (f->blob_id || o->json)
		o_u64(o, "blob_id", f->blob_id);
	if (f->file_id || o->json)
		o_u64(o, "file_id", f->file_id);
	if (f->kind == CRYO_FD_PROC || f->kind == CRYO_FD_PIDFD || o->json) {
		o_i64(o, "proc_pid", f->proc_pid);
		o_word(o, "proc_target", name_of(proc_target_names, ARRAY_SIZE(proc_target_names),
						 f->proc_target));
		o_u64(o, "proc_starttime", f->proc_starttime);
	}
	if (f->kind == CRYO_FD_MEMFD || o->json)
		o_u64(o, "shmem", f->shmem);
	if (f->kind == CRYO_FD_EVENTFD || o->json) {
		o_u64(o, "eventfd_count", f->eventfd_count);
		o_u64(o, "eventfd_flags", f->eventfd_flags);
	}
	if (f->kind == CRYO_FD_SIGNALFD || o->json)
		o_hex(o, "signal_mask", f->signal_mask);
	if (f->kind == CRYO_FD_TIMERFD || o->json) {
		o_i64(o, "timer_clockid", f->timer_clockid);
		o_oct(o, "timer_flags", f->timer_flags);
		o_u64(o, "timer_ticks", f->timer_ticks);
		o_u64(o, "timer_value_ns", f->timer_value_ns);
		o_u64(o, "timer_interval_ns", f->timer_interval_ns);
	}
	o_obj_end(o);
}

static void print_shmem(struct inspect *in, const struct cryo_img_shmem *s)
{
	struct out *o = &in->o;

	o_obj(o, NULL, "shared memory");
	o_u64(o, "id", s->id);
	o_word(o, "kind", name_of(shmem_kind_names, ARRAY_SIZE(shmem_kind_names), s->kind));
	o_u64(o, "size", s->size);
	o_u64(o, "nr_pages_dumped", s->nr_pages_dumped);
	if (s->kind == CRYO_SHMEM_MEMFD || s->kind == CRYO_SHMEM_DELETED || o->json) {
		o_str(o, "name", imgr_str(in->r, s->name));
		o_u64(o, "file_size", s->file_size);
		o_oct(o, "mode", s->mode);
		o_u64(o, "seals", s->seals);
	}
	if (s->kind == CRYO_SHMEM_SYSV || o->json) {
		o_u64(o, "sysv_key", (uint32_t)s->sysv_key);
		o_i64(o, "sysv_id", s->sysv_id);
		o_u64(o, "segment_size", s->file_size);
		o_oct(o, "sysv_mode", s->mode);
		o_u64(o, "uid", s->sysv_uid);
		o_u64(o, "gid", s->sysv_gid);
		o_u64(o, "sysv_flags", s->sysv_flags);
	}
	o_obj_end(o);
}

/* Every entry of every section of one type, printed by fn. */
static void print_tables(struct inspect *in, const char *key, uint32_t type, uint32_t size,
			 void (*fn)(struct inspect *in, const void *entry))
{
	struct out *o = &in->o;

	o_arr(o, key);
	for (long i = imgr_find(in->r, type, 0, 1, 0); i >= 0;
	     i = imgr_find(in->r, type, 0, 1, i + 1)) {
		uint32_t n;
		unsigned char *t = load(in, i, size, &n);

		for (uint32_t k = 0; t && k < n; k++)
			fn(in, t + (size_t)k * size);
		free(t);
	}
	o_arr_end(o);
}

static void task_fn(struct inspect *in, const void *e) { print_task(in, e); }
static void thread_fn(struct inspect *in, const void *e) { print_thread(in, e); }
static void siginfo_fn(struct inspect *in, const void *e) { print_siginfo(in, e); }
static void fd_fn(struct inspect *in, const void *e) { print_fd(in, e); }
static void shmem_fn(struct inspect *in, const void *e) { print_shmem(in, e); }

/* Pages in every page-run table of that type and id (pre-copy data, drop lists). */
static uint64_t count_run_pages(struct inspect *in, uint32_t type, uint64_t id)
{
	uint64_t pages = 0;

	for (long i = imgr_find(in->r, type, id, 0, 0); i >= 0;
	     i = imgr_find(in->r, type, id, 0, i + 1)) {
		uint32_t n;
		struct cryo_img_page_run *runs = load(in, i, sizeof(*runs), &n);

		for (uint32_t k = 0; runs && k < n; k++)
			pages += runs[k].nr_pages;
		free(runs);
	}
	return pages;
}

/* One group per VMA section (id = pid), then the total of page data. */
static void print_memory(struct inspect *in)
{
	struct out *o = &in->o;
	uint64_t page_bytes = 0, nr_pages_sections = 0;

	o_arr(o, "memory");
	for (long i = imgr_find(in->r, CRYO_SEC_VMA, 0, 1, 0); i >= 0;
	     i = imgr_find(in->r, CRYO_SEC_VMA, 0, 1, i + 1)) {
		uint32_t n;
		struct cryo_img_vma *v = load(in, i, sizeof(*v), &n);

		uint64_t pid = imgr_section(in->r, i)->id;

		o_obj(o, NULL, "memory of task");
		o_u64(o, JSON_ONLY(o, "pid"), pid);
		o_u64(o, "areas", n);
		if (imgr_header(in->r)->flags & CRYO_IMG_F_PRECOPY) {
			o_u64(o, "precopy_pages",
			      count_run_pages(in, CRYO_SEC_PAGEMAP, CRYO_PRECOPY_PAGES_ID | pid));
			o_u64(o, "precopy_dropped",
			      count_run_pages(in, CRYO_SEC_PRECOPY_DROP, pid));
		}
		o_arr(o, "vmas");
		for (uint32_t k = 0; v && k < n; k++)
			print_vma(in, &v[k], k);
		o_arr_end(o);
		o_obj_end(o);
		free(v);
	}
	o_arr_end(o);
	for (size_t i = 0; i < imgr_nr_sections(in->r); i++) {
		const struct cryo_img_index_entry *e = imgr_section(in->r, i);

		if (e->type == CRYO_SEC_PAGES) {
			page_bytes += e->length;
			nr_pages_sections++;
		}
	}
	o_obj(o, "pages", "pages");
	o_u64(o, "dumped_bytes", page_bytes);
	o_u64(o, "dumped_pages", page_bytes / CRYO_IMG_PAGE_SIZE);
	o_u64(o, "sections", nr_pages_sections);
	o_obj_end(o);
}

static void print_sections(struct inspect *in)
{
	struct out *o = &in->o;

	o_arr(o, "sections");
	for (size_t i = 0; i < imgr_nr_sections(in->r); i++) {
		const struct cryo_img_index_entry *e = imgr_section(in->r, i);

		o_obj(o, NULL, "section");
		o_u64(o, JSON_ONLY(o, "index"), i);
		o_word(o, JSON_ONLY(o, "type"), img_section_type_name(e->type));
		o_u64(o, "type_id", e->type);
		o_u64(o, "id", e->id);
		o_u64(o, "offset", e->offset);
		o_u64(o, "length", e->length);
		o_u64(o, "entries", e->entry_count);
		o_obj_end(o);
	}
	o_arr_end(o);
}

int cryo_inspect(const char *image, FILE *out, int json)
{
	struct inspect in = { .o = { .f = out, .json = json } };
	int ret;

	ret = imgr_open(&in.r, image);
	if (ret)
		return ret;
	if (json) {
		fputc('{', out);
		in.o.depth = 1;
		in.o.first[1] = 1;
		o_str(&in.o, "image", image);
	}
	print_header(&in, image);
	print_tables(&in, "tasks", CRYO_SEC_TASK, sizeof(struct cryo_img_task), task_fn);
	print_tables(&in, "threads", CRYO_SEC_THREAD, sizeof(struct cryo_img_thread), thread_fn);
	print_tables(&in, "signals", CRYO_SEC_SIGINFO, sizeof(struct cryo_img_siginfo),
		     siginfo_fn);
	print_memory(&in);
	print_tables(&in, "fds", CRYO_SEC_FD, sizeof(struct cryo_img_fd), fd_fn);
	print_tables(&in, "shared_memory", CRYO_SEC_SHMEM, sizeof(struct cryo_img_shmem),
		     shmem_fn);
	print_sections(&in);
	if (json)
		fputs("\n}", out);
	fputc('\n', out);
	imgr_close(in.r);
	if (fflush(out) || ferror(out))
		return cryo_fail(CRYO_EWRITE, "inspect %s: output error", image);
	return in.status;
}
