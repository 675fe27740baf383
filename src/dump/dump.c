/*
 * cryo_checkpoint(): the checkpoint pipeline.
 *
 *   freeze every process in scope (tree order) -> collect each one's task,
 *   memory areas and descriptors -> resolve what processes share -> write
 *   metadata -> pages and blobs -> commit (fsync, rename) -> leave/kill/stop
 *
 * The targets are never harmed: on any failure their registers and scratch
 * memory are put back and they are detached, running as before. --kill
 * kills them only after the image is durably on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dump/dump.h"
#include "image/codec.h"
#include "kernel/creds.h"
#include "restore/restore.h"
#include "util/util.h"

#define BLOB_CHUNK_BYTES (8ul << 20)
#define MAX_PROCS 32768

static const int deferred_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
					SIGPIPE, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ };

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static struct dump_ctx *find_proc(struct dump_tree *t, pid_t pid)
{
	for (int i = 0; i < t->nr_procs; i++)
		if (t->procs[i]->pid == pid)
			return t->procs[i];
	return NULL;
}

static struct dump_ctx *new_proc(struct dump_tree *t, pid_t pid)
{
	struct dump_ctx **procs, *c;

	if (t->nr_procs == MAX_PROCS) {
		cryo_log("more than %d processes in scope", MAX_PROCS);
		return NULL;
	}
	procs = realloc(t->procs, (t->nr_procs + 1) * sizeof(*procs));
	c = xzalloc(sizeof(*c));
	if (!procs || !c) {
		free(c);
		return NULL;
	}
	t->procs = procs;
	c->tree = t;
	c->pid = pid;
	c->mem_fd = -1;
	c->strings = &t->strings;
	t->procs[t->nr_procs++] = c;
	return c;
}

/* A zombie keeps only its IDs and exit status; it cannot be traced. */
static int record_zombie(struct dump_ctx *c, const struct proc_stat *st)
{
	struct cryo_img_task *t = &c->img_task;

	c->zombie = 1;
	t->pid = c->pid;
	t->ppid = st->ppid;
	t->pgid = st->pgrp;
	t->sid = st->session;
	t->flags = CRYO_TASK_ZOMBIE;
	t->exit_status = st->exit_code;
	t->exit_signal = st->exit_signal;
	snprintf(t->comm, sizeof(t->comm), "%.15s", st->comm);
	return 0;
}

/* Children of every thread of c, frozen (or recorded as zombies) in turn. */
static int add_children(struct dump_tree *t, struct dump_ctx *c, enum cryo_scope scope)
{
	for (int i = 0; i < c->nr_threads; i++) {
		struct buf b = { 0 };
		char *p, *end;

		if (read_proc(&b, "/proc/%d/task/%d/children", c->pid, c->threads[i].tid))
			continue;
		for (p = b.data; p && *p; p = end) {
			pid_t child = strtol(p, &end, 10);
			struct proc_stat st;
			struct dump_ctx *cc;
			int ret;

			if (end == p)
				break;
			if (find_proc(t, child))
				continue;
			if (scope == CRYO_SCOPE_PGID || scope == CRYO_SCOPE_SID) {
				buf_free(&b);
				return cryo_fail(CRYO_EUNSUPP, "process %d has child process %d, "
						 "which is not in the %s: it could not be "
						 "restored", c->pid, child,
						 scope == CRYO_SCOPE_PGID ? "process group" :
						 "session");
			}
			if (scope == CRYO_SCOPE_PID) {
				buf_free(&b);
				return cryo_fail(CRYO_EUNSUPP, "process %d has child process %d: "
						 "checkpoint the whole tree (--tree) so it can be "
						 "restored", c->pid, child);
			}
			if (proc_read_stat(child, 0, &st))
				continue;	/* already gone */
			cc = new_proc(t, child);
			if (!cc) {
				buf_free(&b);
				return CRYO_EINTERNAL;
			}
			if (st.state == 'Z' || st.state == 'X')
				ret = record_zombie(cc, &st);
			else
				ret = freeze_process(cc);
			if (ret) {
				buf_free(&b);
				return ret;
			}
		}
		buf_free(&b);
	}
	return 0;
}

static int freeze_tree(struct dump_tree *t, pid_t root, enum cryo_scope scope)
{
	struct dump_ctx *c = new_proc(t, root);
	int ret;

	if (!c)
		return CRYO_EINTERNAL;
	ret = freeze_process(c);
	/* parents come before their children: the list grows while we walk it */
	for (int i = 0; !ret && i < t->nr_procs; i++)
		if (!t->procs[i]->zombie)
			ret = add_children(t, t->procs[i], scope);
	return ret;
}

static void free_proc(struct dump_ctx *c);

static pid_t scope_id_of(const struct proc_stat *st, enum cryo_scope scope)
{
	return scope == CRYO_SCOPE_PGID ? st->pgrp : st->session;
}

/* One pass over /proc: freeze every member not seen yet; returns how many, or < 0. */
static int freeze_new_members(struct dump_tree *t, enum cryo_scope scope, pid_t id)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int added = 0, ret = 0;

	if (!d)
		return cryo_fail(CRYO_EINTERNAL, "cannot list /proc: %s", strerror(errno));
	while (!ret && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);
		struct proc_stat st;
		struct dump_ctx *c;

		if (pid <= 0 || find_proc(t, pid) || proc_read_stat(pid, 0, &st) ||
		    scope_id_of(&st, scope) != id)
			continue;
		c = new_proc(t, pid);
		if (!c) {
			ret = CRYO_EINTERNAL;
			break;
		}
		ret = st.state == 'Z' || st.state == 'X' ? record_zombie(c, &st) : freeze_process(c);
		if (ret == CRYO_ENOPROC) {
			ret = 0;	/* exited meanwhile: a zombie now, found next pass */
			t->nr_procs--;
			free(c->threads);
			free(c);
			continue;
		}
		added++;
	}
	closedir(d);
	return ret ? ret : added;
}

static pid_t parent_pid(struct dump_ctx *c)
{
	struct proc_stat st;

	if (c->zombie)
		return c->img_task.ppid;
	return proc_read_stat(c->pid, 0, &st) ? -1 : st.ppid;
}

static int depth_in_scope(struct dump_tree *t, struct dump_ctx *c)
{
	int depth = 0;

	for (struct dump_ctx *p = find_proc(t, parent_pid(c)); p && depth <= t->nr_procs;
	     p = find_proc(t, parent_pid(p)))
		depth++;
	return depth;
}

/* By depth, then session leaders, group leaders, the rest; then as found. */
static int cmp_depth(const void *a, const void *b)
{
	const int *x = a, *y = b;

	for (int k = 0; k < 3; k++)
		if (x[k] != y[k])
			return x[k] - y[k];
	return 0;
}

/*
 * 0 for a session leader, 1 for a group leader, 2 for the rest: restore
 * creates a session or group with its leader, before the members that join
 * it. (PIDs say nothing of that order once they wrapped around pid_max.)
 */
static int leader_rank(const struct dump_ctx *c)
{
	pid_t pid = c->img_task.pid, sid = c->img_task.sid, pgid = c->img_task.pgid;
	struct proc_stat st;

	if (!c->zombie && !proc_read_stat(c->pid, 0, &st)) {
		pid = c->pid;
		sid = st.session;
		pgid = st.pgrp;
	}
	return pid == sid ? 0 : pid == pgid ? 1 : 2;
}

/*
 * --pgid/--sid: every process of the group or session, frozen pass after
 * pass until a pass finds no new one (a member not frozen yet may fork).
 * Zombies whose parent is outside are not ours (their parent reaps them);
 * a member's child outside the scope could not be restored: refused.
 * Then parents are put before their children, as the image wants.
 */
static int freeze_members(struct dump_tree *t, enum cryo_scope scope, pid_t id)
{
	const char *what = scope == CRYO_SCOPE_PGID ? "process group" : "session";
	struct dump_ctx **sorted;
	int n, (*order)[3];

	if ((scope == CRYO_SCOPE_PGID ? getpgid(0) : getsid(0)) == id)
		return cryo_fail(CRYO_EUSAGE, "cryo itself is in %s %d: run it from outside",
				 what, id);
	while ((n = freeze_new_members(t, scope, id)) > 0)
		;
	if (n < 0)
		return n;
	if (!t->nr_procs)
		return cryo_fail(CRYO_ENOPROC, "%s %d: no such %s", what, id, what);
	for (int i = 0; i < t->nr_procs; i++) {
		struct dump_ctx *c = t->procs[i];
		struct proc_stat st;

		if (c->zombie && !find_proc(t, c->img_task.ppid)) {
			free_proc(c);
			t->procs[i--] = t->procs[--t->nr_procs];
			continue;
		}
		if (!c->zombie && (proc_read_stat(c->pid, 0, &st) || scope_id_of(&st, scope) != id))
			return cryo_fail(CRYO_EUNSUPP, "process %d left %s %d during the checkpoint: "
					 "try again", c->pid, what, id);
	}
	for (int i = 0; i < t->nr_procs; i++) {
		int ret;

		if (t->procs[i]->zombie)
			continue;
		ret = add_children(t, t->procs[i], scope);
		if (ret)
			return ret;
	}
	order = malloc(t->nr_procs * sizeof(*order));
	sorted = malloc(t->nr_procs * sizeof(*sorted));
	if (!order || !sorted) {
		free(order);
		free(sorted);
		return CRYO_EINTERNAL;
	}
	for (int i = 0; i < t->nr_procs; i++) {
		order[i][0] = depth_in_scope(t, t->procs[i]);
		order[i][1] = leader_rank(t->procs[i]);
		order[i][2] = i;
	}
	qsort(order, t->nr_procs, sizeof(*order), cmp_depth);
	for (int i = 0; i < t->nr_procs; i++)
		sorted[i] = t->procs[order[i][2]];
	free(t->procs);
	free(order);
	t->procs = sorted;
	return 0;
}

/*
 * A checkpoint refuses what its restore could not recreate: the sessions
 * and groups of the tree go through the restore's own plan (phase 15) now,
 * so that no job is killed for an image that cannot come back.
 */
static int check_plan(struct dump_tree *t)
{
	struct restore_ctx r;
	int ret;

	if (t->nr_procs < 2)
		return 0;
	memset(&r, 0, sizeof(r));
	r.plan_only = 1;
	r.nr_procs = r.nr_image_procs = t->nr_procs;
	r.procs = xzalloc(t->nr_procs * sizeof(*r.procs));
	if (!r.procs)
		return CRYO_EINTERNAL;
	for (int i = 0; i < t->nr_procs; i++) {
		r.procs[i].task = t->procs[i]->img_task;
		r.procs[i].zombie = t->procs[i]->zombie;
	}
	for (int i = 0; i < t->nr_procs; i++)
		r.procs[i].parent = i ? restore_find_proc(&r, r.procs[i].task.ppid) : -1;
	ret = restore_plan_tree(&r);
	free(r.procs);
	return ret;
}

static int collect_tree(struct dump_tree *t)
{
	int ret;

	for (int i = 0; i < t->nr_procs; i++) {
		struct dump_ctx *c = t->procs[i];

		if (c->zombie)
			continue;
		ret = collect_task(c);
		/* before collect_mm: it refuses areas registered with userfaultfd */
		if (!ret)
			ret = precopy_final_scan(c);
		if (!ret)
			ret = collect_mm(c);
		if (!ret)
			ret = precopy_trim(c);
		if (!ret)
			ret = collect_fds(c);
		if (ret)
			return ret;
	}
	ret = collect_shmem(t);
	if (!ret)
		ret = resolve_shared_fds(t);
	return ret ? ret : check_plan(t);
}

static int write_blob_from_fd(struct img_writer *w, const struct fd_blob *b, uint8_t *buf)
{
	for (uint64_t off = 0; off < b->len;) {
		size_t n = b->len - off < BLOB_CHUNK_BYTES ? b->len - off : BLOB_CHUNK_BYTES;
		ssize_t r = pread(b->src_fd, buf, n, off);
		int ret;

		if (r <= 0)
			return cryo_fail(CRYO_EINTERNAL, "reading deleted file content: %s",
					 r < 0 ? strerror(errno) : "file shrank");
		ret = imgw_section(w, CRYO_SEC_BLOB, b->id, 0, 0, buf, r);
		if (ret)
			return ret;
		off += r;
	}
	return 0;
}

static int write_blobs(struct dump_tree *t, struct img_writer *w)
{
	uint8_t *buf = NULL;
	int ret = 0;

	for (int i = 0; i < t->nr_blobs && !ret; i++) {
		struct fd_blob *b = &t->blobs[i];

		if (b->data) {
			ret = imgw_section(w, CRYO_SEC_BLOB, b->id, 0, 0, b->data, b->len);
			continue;
		}
		if (!buf) {
			buf = mmap(NULL, BLOB_CHUNK_BYTES, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (buf == MAP_FAILED)
				return cryo_fail(CRYO_EINTERNAL, "cannot allocate blob buffer");
		}
		ret = write_blob_from_fd(w, b, buf);
	}
	if (buf)
		munmap(buf, BLOB_CHUNK_BYTES);
	return ret;
}

/* Concatenate one kind of per-process table into one section. */
#define GATHER(t, type, field, count_field, out, nr)                                  \
	do {                                                                          \
		size_t total = 0;                                                     \
		for (int p = 0; p < (t)->nr_procs; p++)                               \
			total += (t)->procs[p]->count_field;                          \
		(out) = malloc((total ? total : 1) * sizeof(type));                   \
		(nr) = 0;                                                             \
		if (out)                                                              \
			for (int p = 0; p < (t)->nr_procs; p++) {                     \
				if (!(t)->procs[p]->count_field)                      \
					continue;                                     \
				memcpy((out) + (nr), (t)->procs[p]->field,            \
				       (t)->procs[p]->count_field * sizeof(type));    \
				(nr) += (t)->procs[p]->count_field;                   \
			}                                                             \
	} while (0)

static int write_tables(struct dump_tree *t, struct img_writer *w)
{
	struct cryo_img_task *tasks = malloc(t->nr_procs * sizeof(*tasks));
	struct cryo_img_thread *threads;
	struct cryo_img_siginfo *sigs;
	struct cryo_img_fd *fds;
	uint8_t *xstate = NULL;
	size_t nr_threads, nr_sigs, nr_fds;
	uint64_t xstate_len = 0;
	int ret;

	GATHER(t, struct cryo_img_thread, img_threads, nr_threads, threads, nr_threads);
	GATHER(t, struct cryo_img_siginfo, sigs, nr_sigs, sigs, nr_sigs);
	GATHER(t, struct cryo_img_fd, fds, nr_fds, fds, nr_fds);
	for (int p = 0; p < t->nr_procs; p++)
		for (int i = 0; i < t->procs[p]->nr_threads; i++)
			xstate_len += t->procs[p]->threads[i].xstate_size;
	xstate = malloc(xstate_len ? xstate_len : 1);
	if (!tasks || !threads || !sigs || !fds || !xstate) {
		ret = cryo_fail(CRYO_EINTERNAL, "out of memory for the image tables");
		goto out;
	}
	/* XSAVE areas one after the other; each thread entry says where its own is */
	xstate_len = 0;
	for (int p = 0, k = 0; p < t->nr_procs; p++) {
		tasks[p] = t->procs[p]->img_task;
		for (int i = 0; i < t->procs[p]->nr_threads; i++, k++) {
			const struct frozen_task *ft = &t->procs[p]->threads[i];

			memcpy(xstate + xstate_len, ft->xstate, ft->xstate_size);
			threads[k].xstate_offset = xstate_len;
			xstate_len += ft->xstate_size;
		}
	}
	ret = imgw_section(w, CRYO_SEC_STRINGS, 0, 0, 0, t->strings.data, t->strings.len);
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_TASK, 0, sizeof(*tasks), t->nr_procs, tasks,
				   (uint64_t)t->nr_procs * sizeof(*tasks));
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_THREAD, 0, sizeof(*threads), nr_threads, threads,
				   nr_threads * sizeof(*threads));
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_XSTATE, 0, 0, 0, xstate, xstate_len);
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_SIGINFO, 0, sizeof(*sigs), nr_sigs, sigs,
				   nr_sigs * sizeof(*sigs));
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_FD, 0, sizeof(*fds), nr_fds, fds,
				   nr_fds * sizeof(*fds));
out:
	free(tasks);
	free(threads);
	free(sigs);
	free(fds);
	free(xstate);
	return ret;
}

static int write_image(struct dump_tree *t, struct img_writer *w)
{
	struct page_pipe *pp = t->pipe;
	int ret = pp ? page_pipe_drain(pp) : 0;

	t->pipe = NULL;
	if (!ret)
		ret = write_tables(t, w);
	if (!ret)
		ret = write_blobs(t, w);
	if (!ret && !pp)
		ret = page_pipe_start(&pp, t, w);
	if (!ret && t->nr_shmems) {
		struct cryo_img_shmem *tab = malloc(t->nr_shmems * sizeof(*tab));

		if (!tab)
			return page_pipe_finish(pp, cryo_fail(CRYO_EINTERNAL, "out of memory"));
		for (int k = 0; k < t->nr_shmems; k++)
			tab[k] = t->shmems[k].img;
		ret = imgw_section(w, CRYO_SEC_SHMEM, 0, sizeof(*tab), t->nr_shmems, tab,
				   (uint64_t)t->nr_shmems * sizeof(*tab));
		free(tab);
		if (!ret)
			ret = dump_shmem_pages(t, pp);
	}
	for (int p = 0; p < t->nr_procs && !ret; p++) {
		struct dump_ctx *c = t->procs[p];

		if (c->zombie)
			continue;
		ret = imgw_section(w, CRYO_SEC_VMA, c->pid, sizeof(*c->img_vmas), c->nr_vmas,
				   c->img_vmas, (uint64_t)c->nr_vmas * sizeof(*c->img_vmas));
		if (!ret && c->precopy_drop.nr)
			ret = imgw_section(w, CRYO_SEC_PRECOPY_DROP, c->pid,
					   sizeof(struct cryo_img_page_run), c->precopy_drop.nr,
					   c->precopy_drop.runs,
					   (uint64_t)c->precopy_drop.nr * sizeof(struct cryo_img_page_run));
		if (!ret)
			ret = dump_pages(c, pp);
	}
	return page_pipe_finish(pp, ret);
}

static void free_proc(struct dump_ctx *c)
{
	for (int i = 0; c->vma_src_fds && i < c->nr_vmas; i++)
		if (c->vma_src_fds[i] >= 0)
			close(c->vma_src_fds[i]);
	if (c->runs)
		for (int i = 0; i < c->nr_vmas; i++)
			free(c->runs[i].runs);
	if (c->mem_fd >= 0)
		close(c->mem_fd);
	free(c->vma_src_fds);
	free(c->precopy_drop.runs);
	free(c->shmem_inos);
	free(c->runs);
	free(c->img_vmas);
	free(c->vmas);
	free(c->fds);
	free(c->fd_stats);
	free(c->sigs);
	for (int i = 0; i < c->nr_threads; i++)
		free(c->threads[i].xstate);
	free(c->threads);
	free(c->img_threads);
	free(c);
}

static void free_tree(struct dump_tree *t)
{
	for (int i = 0; i < t->nr_blobs; i++) {
		if (t->blobs[i].src_fd >= 0)
			close(t->blobs[i].src_fd);
		free(t->blobs[i].data);
	}
	free(t->blobs);
	for (int k = 0; k < t->nr_shmems; k++) {
		if (t->shmems[k].src_fd >= 0)
			close(t->shmems[k].src_fd);
		free(t->shmems[k].runs.runs);
	}
	free(t->shmems);
	for (int i = 0; i < t->nr_procs; i++)
		free_proc(t->procs[i]);
	free(t->procs);
	precopy_free(t);
	codec_free(t->codec);
	strtab_free(&t->strings);
}

static void fill_stats(struct cryo_stats *st, const struct dump_tree *t, uint64_t frozen,
		       uint64_t total, uint64_t precopy_pages)
{
	memset(st, 0, sizeof(*st));
	st->precopy_pages = precopy_pages;
	st->frozen_ns = frozen;
	st->total_ns = total;
	st->image_bytes = t->image_bytes;
	st->processes = t->nr_procs;
	for (int i = 0; i < t->nr_procs; i++) {
		st->threads += t->procs[i]->nr_threads;
		for (int v = 0; v < t->procs[i]->nr_vmas; v++)
			st->pages += t->procs[i]->img_vmas[v].nr_pages_dumped;
	}
}

static void release_tree(struct dump_tree *t, enum cryo_after after)
{
	for (int i = 0; i < t->nr_procs; i++) {
		struct dump_ctx *c = t->procs[i];

		if (c->zombie)
			continue;
		switch (after) {
		case CRYO_KILL:
			kill_process(c);
			break;
		case CRYO_STOP:
			thaw_process(c);
			kill(c->pid, SIGSTOP);
			break;
		case CRYO_LEAVE_RUNNING:
			thaw_process(c);
			break;
		}
	}
}

/*
 * Pre-copy, before the real freeze: freeze the tree briefly to arm write
 * tracking, let it run again, and copy its memory meanwhile. *frozen_ns
 * gets how long the tree was stopped. On failure the tree runs as before.
 */
static int freeze_scope(struct dump_tree *t, const struct cryo_checkpoint_opts *opts)
{
	if (opts->scope == CRYO_SCOPE_PGID || opts->scope == CRYO_SCOPE_SID)
		return freeze_members(t, opts->scope, opts->pid);
	return freeze_tree(t, opts->pid, opts->scope);
}

static int run_precopy(struct dump_tree *t, const struct cryo_checkpoint_opts *opts,
		       struct img_writer *w, uint64_t *frozen_ns)
{
	struct dump_tree armed = { 0 };
	uint64_t t0 = now_ns();
	int ret;

	ret = freeze_scope(&armed, opts);
	if (!ret)
		ret = precopy_arm(t, &armed);
	release_tree(&armed, CRYO_LEAVE_RUNNING);
	*frozen_ns = now_ns() - t0;
	cryo_debug("pre-copy: armed in %.1f ms (frozen)", *frozen_ns / 1e6);
	free_tree(&armed);
	return ret ? ret : precopy_copy(t, w);
}

int cryo_checkpoint(const struct cryo_checkpoint_opts *opts)
{
	struct dump_tree tree = { 0 };
	struct img_writer *w = NULL;
	sigset_t defer, old_mask;
	uint64_t t0 = now_ns(), t_frozen = 0, t_frozen_start = 0, t_pre_frozen = 0;
	/* t_thawed != 0: the tree is released */
	uint64_t t_collected = 0, t_written = 0, t_thawed = 0;
	int ret;

	if (opts->pid <= 0)
		return cryo_fail(CRYO_EUSAGE, "invalid PID %d", opts->pid);
	ret = creds_init();
	if (ret)
		return ret;
	if (opts->scope == CRYO_SCOPE_PGID || opts->scope == CRYO_SCOPE_SID)
		;	/* an ID, checked by freeze_members() */
	else if (proc_task_state(opts->pid) && proc_tgid(opts->pid) != opts->pid)
		return cryo_fail(CRYO_EUNSUPP, "%d is a thread of process %d: give the process ID",
				 opts->pid, proc_tgid(opts->pid));
	else if (opts->pid == getpid() || opts->pid == getppid())
		return cryo_fail(CRYO_EUSAGE, "cryo cannot checkpoint itself or its parent");

	/*
	 * While targets are frozen, a signal must not end cryo between two
	 * ptrace calls: defer the catchable ones until they are thawed.
	 * (SIGKILL cannot be deferred; see docs/cryo.1, BUGS.)
	 */
	sigemptyset(&defer);
	for (size_t i = 0; i < ARRAY_SIZE(deferred_signals); i++)
		sigaddset(&defer, deferred_signals[i]);
	sigprocmask(SIG_BLOCK, &defer, &old_mask);

	tree.external = opts->external;
	if (opts->compress) {
		tree.codec_id = opts->compress;
		tree.codec = codec_new(opts->compress, opts->compress_level);
		if (!tree.codec) {
			sigprocmask(SIG_SETMASK, &old_mask, NULL);
			return CRYO_EUSAGE;
		}
	}
	/* auto: measured on the tree of a PID; a group or session must ask for it */
	if (opts->scope == CRYO_SCOPE_PGID || opts->scope == CRYO_SCOPE_SID ?
		    opts->precopy == CRYO_PRECOPY_ALWAYS : precopy_wanted(opts->pid, opts->precopy)) {
		ret = imgw_open(&w, opts->output, read_xcr0(), CRYO_IMG_F_PRECOPY);
		if (!ret)
			ret = run_precopy(&tree, opts, w, &t_pre_frozen);
		if (ret)
			goto out;
	}
	t_frozen_start = now_ns();
	ret = freeze_scope(&tree, opts);
	t_frozen = now_ns();
	if (!ret)
		ret = fault_point("checkpoint:frozen");
	if (!ret)
		ret = collect_tree(&tree);
	t_collected = now_ns();
	if (!ret)
		ret = fault_point("checkpoint:injected");
	if (!ret && !w)
		ret = imgw_open(&w, opts->output, read_xcr0(), 0);
	if (!ret)
		ret = write_image(&tree, w);
	t_written = now_ns();
	if (!ret)
		ret = fault_point("checkpoint:write");
	if (!ret)
		tree.image_bytes = imgw_bytes_written(w);
	/*
	 * Left running, the tree need not wait for the image to reach the
	 * storage (on a slow disk, seconds): all of it is written, and if the
	 * commit fails the tree runs on, as after any failure. Killed or
	 * stopped, it waits: then it must stay as it was until the image is safe.
	 */
	if (!ret && opts->after == CRYO_LEAVE_RUNNING) {
		release_tree(&tree, CRYO_LEAVE_RUNNING);
		t_thawed = now_ns();
	}
	if (!ret) {
		ret = imgw_commit(w, opts->no_sync);
		w = NULL;	/* commit consumes it, successful or not */
	}
	if (!ret)
		ret = fault_point("checkpoint:committed");
out:
	/* the pre-copy's pipe, if collecting failed: its threads use w */
	page_pipe_finish(tree.pipe, ret ? ret : CRYO_EINTERNAL);
	tree.pipe = NULL;
	if (w)
		imgw_abort(w);
	if (ret) {
		if (!t_thawed)
			release_tree(&tree, CRYO_LEAVE_RUNNING);
	} else {
		uint64_t t_end = now_ns();

		if (!t_thawed) {
			release_tree(&tree, opts->after);
			t_thawed = now_ns();
		}
		cryo_debug("checkpoint of %d (%d processes): frozen %.1f ms, total %.1f ms "
			   "(freeze %.1f, collect %.1f, write %.1f, commit %.1f)",
			   opts->pid, tree.nr_procs, (t_thawed - t_frozen) / 1e6,
			   (t_end - t0) / 1e6, (t_frozen - t_frozen_start) / 1e6,
			   (t_collected - t_frozen) / 1e6, (t_written - t_collected) / 1e6,
			   (t_end - t_written) / 1e6);
		precopy_release(&tree, opts->after == CRYO_KILL);
		if (opts->stats)
			fill_stats(opts->stats, &tree, t_pre_frozen + t_thawed - t_frozen_start,
				   now_ns() - t0, precopy_pages(&tree));
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	free_tree(&tree);
	return ret;
}
