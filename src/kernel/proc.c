/*
 * /proc parsers used by the checkpoint side (and by restore to look at its
 * own address space and at who owns a PID).
 */
#include "kernel/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/util.h"

static unsigned parse_vmflags(const char *s)
{
	static const struct {
		char name[3];
		unsigned bit;
	} table[] = {
		{ "gd", VMF_GROWSDOWN }, { "dc", VMF_DONTCOPY }, { "dd", VMF_DONTDUMP },
		{ "hg", VMF_HUGEPAGE }, { "nh", VMF_NOHUGEPAGE }, { "wf", VMF_WIPEONFORK },
		{ "lo", VMF_LOCKED }, { "sr", VMF_SEQ_READ }, { "rr", VMF_RAND_READ },
		{ "mg", VMF_MERGEABLE }, { "mw", VMF_MAYWRITE }, { "nr", VMF_NORESERVE },
		{ "sh", VMF_SHARED }, { "ht", VMF_HUGETLB }, { "io", VMF_IO }, { "pf", VMF_IO },
		{ "um", VMF_UFFD }, { "ui", VMF_UFFD }, { "uw", VMF_UFFD_WP },
		{ "mr", VMF_MAYREAD },
		{ "me", VMF_MAYEXEC }, { "sl", VMF_SEALED },
	};
	unsigned flags = 0;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!s[0] || !s[1])
			break;
		for (size_t i = 0; i < ARRAY_SIZE(table); i++)
			if (s[0] == table[i].name[0] && s[1] == table[i].name[1])
				flags |= table[i].bit;
		s += 2;
	}
	return flags;
}

/* "start-end perms offset dev inode   path"; v->path points into line. */
static int parse_maps_line(char *line, struct proc_vma *v)
{
	char perms[5];
	int n = 0;

	memset(v, 0, sizeof(*v));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 "%n",
		   &v->start, &v->end, perms, &v->pgoff, &v->dev_major, &v->dev_minor, &v->ino,
		   &n) != 7)
		return -EINVAL;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	line += n;
	while (*line == ' ')
		line++;
	line[strcspn(line, "\n")] = 0;
	v->path = line;
	return 0;
}

static int is_maps_header(const char *line)
{
	/* smaps field lines look like "Name:   value"; headers start with hex-hex */
	const char *p = line;

	while (isxdigit((unsigned char)*p))
		p++;
	return p != line && *p == '-';
}

/*
 * smaps (or maps) is read line by line (smaps is ~1.5 KiB per area: 90 MiB
 * for 60 000 areas), and each area keeps only its path, in a string area
 * that ends up in the same allocation as the array, so one free() releases
 * everything.
 */
static int read_vmas(pid_t pid, const char *which, struct proc_vma **vmas, int *nr)
{
	struct buf paths = { 0 };
	struct proc_vma *arr = NULL, *out;
	char *line = NULL, file[64];
	size_t line_cap = 0;
	int n = 0, cap = 0, ret = 0;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/%s", pid, which);
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (getline(&line, &line_cap, f) > 0) {
		if (is_maps_header(line)) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				struct proc_vma *p = realloc(arr, cap * sizeof(*arr));
				if (!p) {
					ret = -ENOMEM;
					goto out;
				}
				arr = p;
			}
			ret = parse_maps_line(line, &arr[n]);
			if (ret)
				goto out;
			/* an offset for now: the string area moves as it grows */
			size_t len = strlen(arr[n].path) + 1;
			if (buf_reserve(&paths, len)) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(paths.data + paths.len, arr[n].path, len);
			arr[n].path = (const char *)(uintptr_t)paths.len;
			paths.len += len;
			n++;
		} else if (n && !strncmp(line, "VmFlags:", 8)) {
			arr[n - 1].vmflags = parse_vmflags(line + 8);
		}
	}
	if (ferror(f)) {
		ret = -EIO;
		goto out;
	}
	out = malloc(n * sizeof(*arr) + paths.len + 1);
	if (!out) {
		ret = -ENOMEM;
		goto out;
	}
	char *strings = (char *)(out + n);
	memcpy(strings, paths.data ? paths.data : "", paths.len);
	for (int i = 0; i < n; i++) {
		out[i] = arr[i];
		out[i].path = strings + (uintptr_t)arr[i].path;
	}
	*vmas = out;
	*nr = n;
out:
	free(arr);
	free(line);
	buf_free(&paths);
	fclose(f);
	return ret;
}

int proc_read_vmas(pid_t pid, struct proc_vma **vmas, int *nr)
{
	return read_vmas(pid, "smaps", vmas, nr);
}

int proc_read_maps(pid_t pid, struct proc_vma **vmas, int *nr)
{
	return read_vmas(pid, "maps", vmas, nr);
}

int proc_find_named_vma(pid_t pid, const char *name, struct proc_vma_range *r)
{
	struct buf b = { 0 };
	char *line, *save;
	int ret = -ENOENT;

	if (read_proc(&b, "/proc/%d/maps", pid)) {
		buf_free(&b);
		return -ESRCH;
	}
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct proc_vma v;

		if (parse_maps_line(line, &v) == 0 && !strcmp(v.path, name)) {
			r->start = v.start;
			r->end = v.end;
			ret = 0;
			break;
		}
	}
	buf_free(&b);
	return ret;
}

int proc_read_stat(pid_t pid, pid_t tid, struct proc_stat *st)
{
	struct buf b = { 0 };
	char *open, *close;
	int ret;
	unsigned long long f[60] = { 0 };
	int nf = 0;

	memset(st, 0, sizeof(*st));
	if (tid && tid != pid)
		ret = read_proc(&b, "/proc/%d/task/%d/stat", pid, tid);
	else
		ret = read_proc(&b, "/proc/%d/stat", pid);
	if (ret)
		goto out;
	/* comm may contain spaces and parentheses: it ends at the last ')' */
	open = strchr(b.data, '(');
	close = strrchr(b.data, ')');
	if (!open || !close || close < open || close[1] != ' ') {
		ret = -EINVAL;
		goto out;
	}
	snprintf(st->comm, sizeof(st->comm), "%.*s", (int)(close - open - 1), open + 1);
	st->state = close[2];
	/* fields after the state, numbered from 4 (ppid) as in proc(5) */
	char *p = close + 3;
	while (*p && nf < 60) {
		char *end;
		f[nf++] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
		while (*p == ' ')
			p++;
	}
	/* f[i] is proc(5) field i + 4 */
#define F(n) f[(n) - 4]
	st->ppid = F(4);
	st->pgrp = F(5);
	st->session = F(6);
	st->flags = F(9);
	st->num_threads = F(20);
	st->starttime = F(22);
	st->start_code = F(26);
	st->end_code = F(27);
	st->start_stack = F(28);
	st->exit_signal = F(38);
	st->start_data = F(45);
	st->end_data = F(46);
	st->start_brk = F(47);
	st->arg_start = F(48);
	st->arg_end = F(49);
	st->env_start = F(50);
	st->env_end = F(51);
	st->exit_code = F(52);
#undef F
out:
	buf_free(&b);
	return ret;
}

static void parse_ids(const char *s, uint32_t *out, int n)
{
	for (int i = 0; i < n; i++) {
		char *end;
		out[i] = strtoul(s, &end, 10);
		s = end;
	}
}

int proc_read_status(pid_t pid, struct proc_status *st)
{
	struct buf b = { 0 };
	char *line, *save;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = read_proc(&b, "/proc/%d/status", pid);
	if (ret)
		goto out;
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *v = strchr(line, ':');

		if (!v)
			continue;
		*v++ = 0;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!strcmp(line, "Uid"))
			parse_ids(v, st->uid, 4);
		else if (!strcmp(line, "Gid"))
			parse_ids(v, st->gid, 4);
		else if (!strcmp(line, "Groups")) {
			char *end;
			while (*v) {
				unsigned long g = strtoul(v, &end, 10);
				if (end == v)
					break;
				if (st->ngroups < ARRAY_SIZE(st->groups))
					st->groups[st->ngroups++] = g;
				else
					st->groups_truncated = 1;
				v = end;
				while (*v == ' ')
					v++;
			}
		} else if (!strcmp(line, "CapInh"))
			st->cap_inh = strtoull(v, NULL, 16);
		else if (!strcmp(line, "CapPrm"))
			st->cap_prm = strtoull(v, NULL, 16);
		else if (!strcmp(line, "CapEff"))
			st->cap_eff = strtoull(v, NULL, 16);
		else if (!strcmp(line, "CapBnd"))
			st->cap_bnd = strtoull(v, NULL, 16);
		else if (!strcmp(line, "CapAmb"))
			st->cap_amb = strtoull(v, NULL, 16);
		else if (!strcmp(line, "Umask"))
			st->umask = strtoul(v, NULL, 8);
		else if (!strcmp(line, "NoNewPrivs"))
			st->no_new_privs = atoi(v);
		else if (!strcmp(line, "Seccomp"))
			st->seccomp = atoi(v);
		else if (!strcmp(line, "Threads"))
			st->threads = atoi(v);
		else if (!strcmp(line, "TracerPid"))
			st->tracer_pid = atoi(v);
		else if (!strcmp(line, "Tgid"))
			st->tgid = atoi(v);
		else if (!strcmp(line, "NSpid")) {
			int n = 0;
			char *tok, *s2;
			for (tok = strtok_r(v, " \t", &s2); tok; tok = strtok_r(NULL, " \t", &s2))
				n++;
			st->nspid_levels = n;
		}
	}
out:
	buf_free(&b);
	return ret;
}

char proc_task_state(pid_t tid)
{
	struct proc_stat st;

	if (proc_read_stat(tid, 0, &st))
		return 0;
	return st.state;
}

pid_t proc_tracer_pid(pid_t tid)
{
	struct proc_status st;

	if (proc_read_status(tid, &st))
		return -1;
	return st.tracer_pid;
}

pid_t proc_tgid(pid_t tid)
{
	struct proc_status st;

	if (proc_read_status(tid, &st))
		return tid;
	return st.tgid;
}

/* "KEY (S, NS)" as timerfd's fdinfo prints a time: 1 and *ns set if line is that. */
static int parse_timespec_ns(const char *line, const char *key, uint64_t *ns)
{
	unsigned long long s, n;
	size_t len = strlen(key);

	if (strncmp(line, key, len) || sscanf(line + len, " (%llu, %llu)", &s, &n) != 2 ||
	    n >= 1000000000ull || s >= UINT64_MAX / 1000000000ull)
		return 0;
	*ns = s * 1000000000ull + n;
	return 1;
}

int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *fi)
{
	struct buf b = { 0 };
	char *line, *save;
	int ret;

	memset(fi, 0, sizeof(*fi));
	ret = read_proc(&b, "/proc/%d/fdinfo/%d", pid, fd);
	if (ret)
		goto out;
	for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "pos:", 4))
			fi->pos = strtoull(line + 4, NULL, 10);
		else if (!strncmp(line, "flags:", 6))
			fi->flags = strtoul(line + 6, NULL, 8);
		else if (!strncmp(line, "mnt_id:", 7))
			fi->mnt_id = atoi(line + 7);
		else if (!strncmp(line, "ino:", 4))
			fi->ino = strtoull(line + 4, NULL, 10);
		else if (!strncmp(line, "Pid:", 4))
			fi->pidfd_pid = atoi(line + 4);
		else if (!strncmp(line, "eventfd-count:", 14)) {
			fi->eventfd_count = strtoull(line + 14, NULL, 16);
			fi->has_eventfd_count = 1;
		} else if (!strncmp(line, "eventfd-semaphore:", 18)) {
			fi->eventfd_semaphore = atoi(line + 18);
			fi->has_eventfd_semaphore = 1;
		} else if (!strncmp(line, "sigmask:", 8)) {
			fi->sigmask = strtoull(line + 8, NULL, 16);
			fi->has_sigmask = 1;
		} else if (sscanf(line, "clockid: %d", &fi->timer_clockid) == 1 ||
			   sscanf(line, "settime flags: %o", &fi->timer_flags) == 1 ||
			   sscanf(line, "ticks: %" SCNu64, &fi->timer_ticks) == 1 ||
			   parse_timespec_ns(line, "it_value:", &fi->timer_value_ns) ||
			   parse_timespec_ns(line, "it_interval:", &fi->timer_interval_ns)) {
			fi->timer_fields++;
		}
	}
out:
	buf_free(&b);
	return ret;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int proc_list_fds(pid_t pid, int **fds, int *nr)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int *arr = NULL, n = 0, cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			int *p = realloc(arr, cap * sizeof(int));
			if (!p) {
				free(arr);
				closedir(d);
				return -ENOMEM;
			}
			arr = p;
		}
		arr[n++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(arr, n, sizeof(int), cmp_int);
	*fds = arr;
	*nr = n;
	return 0;
}

void proc_comm(pid_t pid, char *buf, size_t len)
{
	struct buf b = { 0 };

	if (read_proc(&b, "/proc/%d/comm", pid) == 0 && b.len) {
		if (b.data[b.len - 1] == '\n')
			b.data[--b.len] = 0;
		snprintf(buf, len, "%s", b.data);
	} else {
		snprintf(buf, len, "?");
	}
	buf_free(&b);
}
