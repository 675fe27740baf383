/*
 * cryo_restore(): runs the restore phases in order (see restore.h for the
 * table) and guarantees that a failure anywhere leaves no task behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/creds.h"
#include "restore/restore.h"
#include "util/util.h"

#define BLOB_COPY_BYTES (1ul << 20)

int restore_copy_blob(struct restore_ctx *r, uint64_t blob_id, int fd, uint64_t *len)
{
	uint8_t *buf = mmap(NULL, BLOB_COPY_BYTES, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = 0;

	*len = 0;
	if (buf == MAP_FAILED)
		return cryo_fail(CRYO_ERESTORE, "restore: no memory for file content");
	for (size_t i = 0; i < imgr_nr_sections(r->img) && !ret; i++) {
		const struct cryo_img_index_entry *e = imgr_section(r->img, i);
		uint64_t off = imgr_payload_offset(r->img, i);

		if (e->type != CRYO_SEC_BLOB || e->id != blob_id)
			continue;
		for (uint64_t done = 0; done < e->length && !ret;) {
			size_t n = e->length - done < BLOB_COPY_BYTES ? e->length - done :
									 BLOB_COPY_BYTES;
			ret = pread_full(r->img_fd, buf, n, off + done);
			if (!ret)
				ret = write_full(fd, buf, n);
			if (ret)
				ret = cryo_fail(CRYO_ERESTORE, "restore: copying saved content: %s",
						strerror(-ret));
			done += n;
			*len += n;
		}
	}
	munmap(buf, BLOB_COPY_BYTES);
	return ret;
}

static void free_ctx(struct restore_ctx *r)
{
	for (uint32_t i = 0; r->procs && i < r->nr_procs; i++) {
		struct restore_proc *p = &r->procs[i];

		for (uint32_t v = 0; p->vmas && v < p->nr_vmas; v++)
			free(p->vmas[v].runs);
		free(p->vmas);
		free(p->precopy.runs);
		free(p->precopy_run_page);
		free(p->precopy_secs);
		free(p->precopy_drop);
		free(p->seized_threads);
	}
	if (r->procs && r->procs[0].fd_park)
		free(r->procs[0].fd_park);	/* start of the shared array */
	free(r->procs);
	for (uint32_t k = 0; r->shmems && k < r->nr_shmems; k++)
		free(r->shmems[k].area.runs);
	free(r->shmems);
	free(r->threads);
	free(r->fds);
	free(r->sigs);
	free(r->xstate);
	free(r->pagemaps);
	for (int i = 0; i < 2; i++) {
		if (r->go_pipe[i] >= 0)
			close(r->go_pipe[i]);
		if (r->barrier_pipe[i] >= 0)
			close(r->barrier_pipe[i]);
		if (r->report_pipe[i] >= 0)
			close(r->report_pipe[i]);
		if (r->release_pipe[i] >= 0)
			close(r->release_pipe[i]);
		if (r->arrive_pipe[i] >= 0)
			close(r->arrive_pipe[i]);
	}
	restore_end_helpers(r);
	if (r->helper_pipe[0] >= 0)
		close(r->helper_pipe[0]);
	free(r->helpers);
	free(r->inherit_copy);
	if (r->img)
		imgr_close(r->img);
	free(r->claimed);
}

/* Each --inherit-fd must name an external descriptor of the image, and be open here. */
static int check_inherit_fds(struct restore_ctx *r)
{
	r->inherit_copy = malloc((r->opts->nr_inherit + 1) * sizeof(int));
	if (!r->inherit_copy)
		return CRYO_EINTERNAL;
	for (int i = 0; i < r->opts->nr_inherit; i++) {
		const struct cryo_inherit_fd *in = &r->opts->inherit[i];
		int found = 0;

		r->inherit_copy[i] = -1;
		for (uint32_t k = 0; k < r->nr_fds; k++)
			found |= r->fds[k].pid == in->pid && r->fds[k].fd == in->fd &&
				 r->fds[k].kind == CRYO_FD_EXTERNAL;
		if (!found)
			return cryo_fail(CRYO_EUSAGE, "restore: --inherit-fd %d:%d: the image has no "
					 "external descriptor %d in task %d", in->pid, in->fd, in->fd,
					 in->pid);
		if (fcntl(in->from, F_GETFD) < 0)
			return cryo_fail(CRYO_EUSAGE, "restore: --inherit-fd %d:%d=%d: fd %d is not "
					 "open", in->pid, in->fd, in->from, in->from);
	}
	return 0;
}

static void init_ctx(struct restore_ctx *r, const struct cryo_restore_opts *opts)
{
	memset(r, 0, sizeof(*r));
	r->opts = opts;
	for (int i = 0; i < 2; i++)
		r->go_pipe[i] = r->barrier_pipe[i] = r->report_pipe[i] = r->helper_pipe[i] =
			r->release_pipe[i] = r->arrive_pipe[i] = -1;
}

int restore_validate_only(const struct cryo_restore_opts *opts)
{
	struct restore_ctx r;
	int ret;

	init_ctx(&r, opts);
	ret = creds_init();
	if (!ret)
		ret = restore_validate(&r);
	free_ctx(&r);
	return ret;
}

int cryo_restore(const struct cryo_restore_opts *opts, pid_t *pid_out)
{
	struct restore_ctx r;
	uint64_t t0 = now_ns();
	int ret;

	init_ctx(&r, opts);
	ret = creds_init();
	if (!ret)
		ret = restore_validate(&r);
	if (!ret)
		ret = check_inherit_fds(&r);
	if (ret)
		goto out;
	r.img_fd = imgr_fd(r.img);
	ret = restore_sysv_prepare(&r);
	if (!ret)
		ret = restore_create_tree(&r);
	if (ret)
		goto out;
	fcntl(r.report_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(r.arrive_pipe[0], F_SETFL, O_NONBLOCK);
	ret = restore_resume(&r);
	if (ret)
		restore_kill_all(&r);
	restore_end_helpers(&r);
	if (ret)
		goto out;
	*pid_out = r.procs[0].task.pid;
	if (opts->stats) {
		memset(opts->stats, 0, sizeof(*opts->stats));
		opts->stats->total_ns = now_ns() - t0;
		opts->stats->processes = r.nr_image_procs;
		opts->stats->threads = r.nr_threads;
		opts->stats->image_bytes = imgr_file_size(r.img);
		for (uint32_t i = 0; i < r.nr_procs; i++)
			for (uint32_t v = 0; v < r.procs[i].nr_vmas; v++)
				opts->stats->pages += r.procs[i].vmas[v].img.nr_pages_dumped;
	}
out:
	if (ret)
		restore_sysv_undo(&r);
	free_ctx(&r);
	return ret;
}
