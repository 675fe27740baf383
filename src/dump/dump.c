/*
 * cryo_checkpoint(): the checkpoint pipeline.
 *
 *   freeze -> collect task, memory areas, descriptors -> write metadata ->
 *   write pages and blobs -> commit (fsync, rename) -> leave / kill / stop
 *
 * The target is never harmed: on any failure its registers and scratch
 * memory are put back and it is detached, running as before. --kill kills
 * it only after the image is durably on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dump/dump.h"
#include "util/util.h"

#define BLOB_CHUNK_BYTES (8ul << 20)

static const int deferred_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
					SIGPIPE, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ };

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
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

int dump_blobs(struct dump_ctx *c, struct img_writer *w)
{
	uint8_t *buf = NULL;
	int ret = 0;

	for (int i = 0; i < c->nr_blobs && !ret; i++) {
		struct fd_blob *b = &c->blobs[i];

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

/* The XSAVE areas of all threads, one after the other (offsets in THREAD). */
static int write_xstate(struct dump_ctx *c, struct img_writer *w)
{
	uint64_t total = 0, off = 0;
	uint8_t *all;
	int ret;

	for (int i = 0; i < c->nr_threads; i++)
		total += c->threads[i].xstate_size;
	all = malloc(total ? total : 1);
	if (!all)
		return cryo_fail(CRYO_EINTERNAL, "out of memory for XSAVE areas");
	for (int i = 0; i < c->nr_threads; i++) {
		memcpy(all + off, c->threads[i].xstate, c->threads[i].xstate_size);
		off += c->threads[i].xstate_size;
	}
	ret = imgw_section(w, CRYO_SEC_XSTATE, c->pid, 0, 0, all, total);
	free(all);
	return ret;
}

static int write_metadata(struct dump_ctx *c, struct img_writer *w)
{
	int ret;

	ret = imgw_section(w, CRYO_SEC_STRINGS, 0, 0, 0, c->strings.data, c->strings.len);
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_TASK, c->pid, sizeof(c->img_task), 1, &c->img_task,
				   sizeof(c->img_task));
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_THREAD, c->pid, sizeof(*c->img_threads),
				   c->nr_threads, c->img_threads,
				   (uint64_t)c->nr_threads * sizeof(*c->img_threads));
	if (!ret)
		ret = write_xstate(c, w);
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_SIGINFO, c->pid, sizeof(*c->sigs), c->nr_sigs, c->sigs,
				   (uint64_t)c->nr_sigs * sizeof(*c->sigs));
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_FD, c->pid, sizeof(*c->fds), c->nr_fds, c->fds,
				   (uint64_t)c->nr_fds * sizeof(*c->fds));
	if (!ret)
		ret = dump_blobs(c, w);
	if (!ret)
		ret = imgw_section(w, CRYO_SEC_VMA, c->pid, sizeof(*c->img_vmas), c->nr_vmas,
				   c->img_vmas, (uint64_t)c->nr_vmas * sizeof(*c->img_vmas));
	return ret;
}

static void free_ctx(struct dump_ctx *c)
{
	for (int i = 0; i < c->nr_blobs; i++) {
		if (c->blobs[i].src_fd >= 0)
			close(c->blobs[i].src_fd);
		free(c->blobs[i].data);
	}
	for (int i = 0; c->vma_src_fds && i < c->nr_vmas; i++)
		if (c->vma_src_fds[i] >= 0)
			close(c->vma_src_fds[i]);
	if (c->runs)
		for (int i = 0; i < c->nr_vmas; i++)
			free(c->runs[i].runs);
	if (c->mem_fd > 0)
		close(c->mem_fd);
	free(c->blobs);
	free(c->vma_src_fds);
	free(c->runs);
	free(c->img_vmas);
	free(c->vmas);
	free(c->fds);
	free(c->sigs);
	for (int i = 0; i < c->nr_threads; i++)
		free(c->threads[i].xstate);
	free(c->threads);
	free(c->img_threads);
	strtab_free(&c->strings);
}

int cryo_checkpoint(const struct cryo_checkpoint_opts *opts)
{
	struct dump_ctx c = { 0 };
	struct img_writer *w = NULL;
	int ret, frozen = 0;
	uint64_t t0 = now_ns(), t_frozen = 0;

	c.pid = opts->pid;
	c.mem_fd = -1;
	if (opts->pid <= 0)
		return cryo_fail(CRYO_EUSAGE, "invalid PID %d", opts->pid);
	if (proc_tgid(opts->pid) != opts->pid && proc_task_state(opts->pid))
		return cryo_fail(CRYO_EUNSUPP, "%d is a thread of process %d: give the process ID",
				 opts->pid, proc_tgid(opts->pid));
	if (opts->pid == getpid())
		return cryo_fail(CRYO_EUSAGE, "cryo cannot checkpoint itself");

	/*
	 * While the target is frozen, a signal must not end cryo between two
	 * ptrace calls: defer the catchable ones until it is thawed. (SIGKILL
	 * cannot be deferred; see docs/cryo.1, BUGS.)
	 */
	sigset_t defer, old_mask;
	sigemptyset(&defer);
	for (size_t i = 0; i < ARRAY_SIZE(deferred_signals); i++)
		sigaddset(&defer, deferred_signals[i]);
	sigprocmask(SIG_BLOCK, &defer, &old_mask);

	frozen = 1;
	ret = freeze_process(&c);
	if (ret)
		goto out;
	t_frozen = now_ns();
	ret = collect_task(&c);
	if (!ret)
		ret = collect_mm(&c);
	if (!ret)
		ret = collect_fds(&c);
	if (ret)
		goto out;

	ret = imgw_open(&w, opts->output, read_xcr0());
	if (ret)
		goto out;
	ret = write_metadata(&c, w);
	if (!ret)
		ret = dump_pages(&c, w);
	if (!ret)
		ret = fault_point("checkpoint:write");
	if (!ret)
		ret = imgw_commit(w, opts->no_sync);
	w = NULL;	/* commit consumed it, successful or not */
	if (ret)
		goto out;

	cryo_debug("checkpoint of %d: frozen %.1f ms, total %.1f ms", c.pid,
		   (now_ns() - t_frozen) / 1e6, (now_ns() - t0) / 1e6);
	switch (opts->after) {
	case CRYO_KILL:
		kill_process(&c);
		break;
	case CRYO_STOP:
		thaw_process(&c);
		kill(c.pid, SIGSTOP);
		break;
	case CRYO_LEAVE_RUNNING:
		thaw_process(&c);
		break;
	}
	frozen = 0;
out:
	if (w)
		imgw_abort(w);
	if (frozen)
		thaw_process(&c);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	free_ctx(&c);
	return ret;
}
