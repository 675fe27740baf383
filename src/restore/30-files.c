/*
 * Phase 30 (in the new task): descriptors, working directory, umask.
 *
 * cryo's own descriptors (the image, the report pipe, copies of its stdio)
 * are first moved above the highest fd of the image; then every fd of the
 * image is recreated at its number with its flags and offset; everything
 * else is closed. Files deleted while open are recreated under their old
 * name, filled, opened and unlinked again, so the kernel shows the same
 * "/path (deleted)" as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/proc.h"
#include "restore/restore.h"
#include "util/util.h"

#define STDIO_FDS 3
/* Flags that describe how a file was opened, not what to do on reopening. */
#define REOPEN_IGNORED_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC)
#define SETFL_FLAGS (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

struct fd_state {
	int stdio_copy[STDIO_FDS];
	int base;		/* first number above every fd of the image */
	uint8_t *done;		/* per image fd: already installed */
};

static int fail_fd(struct restore_ctx *r, const struct cryo_img_fd *f, const char *what)
{
	return cryo_fail(CRYO_ERESTORE, "restore: fd %d of task %d (%s): %s: %s", f->fd,
			 r->task.pid, imgr_str(r->img, f->path), what, strerror(errno));
}

/* Put tmp at number f->fd with f's close-on-exec flag; tmp is consumed. */
static int install(struct restore_ctx *r, const struct cryo_img_fd *f, int tmp)
{
	int cloexec = (f->flags & O_CLOEXEC) ? O_CLOEXEC : 0;

	if (tmp == f->fd) {
		if (fcntl(tmp, F_SETFD, cloexec ? FD_CLOEXEC : 0) < 0)
			return fail_fd(r, f, "fcntl(F_SETFD)");
		return 0;
	}
	if (dup3(tmp, f->fd, cloexec) < 0) {
		int ret = fail_fd(r, f, "dup3");
		close(tmp);
		return ret;
	}
	close(tmp);
	return 0;
}

static int move_high(int fd, int base)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, base);

	if (n >= 0)
		close(fd);
	return n;
}

static void path_in_root(struct restore_ctx *r, const char *path, char *out, size_t len)
{
	if (!strcmp(r->root_path, "/"))
		snprintf(out, len, "%s", path);
	else
		snprintf(out, len, "%s%s", r->root_path, path);
}

static int open_by_path(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	char path[PATH_MAX + 64];
	int fd;

	path_in_root(r, imgr_str(r->img, f->path), path, sizeof(path));
	fd = open(path, (f->flags & ~REOPEN_IGNORED_FLAGS) | O_CLOEXEC);
	if (fd < 0)
		return fail_fd(r, f, "open");
	if (f->kind != CRYO_FD_CHR && lseek(fd, f->pos, SEEK_SET) < 0 && errno != ESPIPE) {
		int ret = fail_fd(r, f, "lseek");
		close(fd);
		return ret;
	}
	return fd;
}

/*
 * Recreate a deleted file: fill a temporary file in the same directory, give
 * it the original name (swapping with whatever holds that name now), open
 * it, unlink it, and give the name back to its current owner.
 */
static int open_deleted(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	char orig[PATH_MAX + 64], tmp[PATH_MAX + 96];
	const char *slash;
	int wfd, fd = -1, swapped = 0, ret;
	uint64_t len = 0;

	path_in_root(r, imgr_str(r->img, f->path), orig, sizeof(orig));
	orig[strlen(orig) - strlen(" (deleted)")] = 0;
	slash = strrchr(orig, '/');
	snprintf(tmp, sizeof(tmp), "%.*s/.cryo-restore.%d.%d", (int)(slash - orig), orig,
		 getpid(), f->fd);
	wfd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, f->mode & 07777);
	if (wfd < 0)
		return fail_fd(r, f, "creating its content in the same directory");
	ret = restore_copy_blob(r, f->blob_id, wfd, &len);
	close(wfd);
	if (ret)
		goto out_unlink;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, orig, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST ||
		    renameat2(AT_FDCWD, tmp, AT_FDCWD, orig, RENAME_EXCHANGE) < 0) {
			ret = fail_fd(r, f, "renaming into place");
			goto out_unlink;
		}
		swapped = 1;
	}
	fd = open(orig, (f->flags & ~REOPEN_IGNORED_FLAGS) | O_CLOEXEC);
	if (fd < 0)
		ret = fail_fd(r, f, "open");
	else if (lseek(fd, f->pos, SEEK_SET) < 0)
		ret = fail_fd(r, f, "lseek");
	unlink(orig);	/* ours: the name now shows "(deleted)" */
	if (swapped && rename(tmp, orig) < 0)
		cryo_log("restore: could not give %s back its name (left at %s): %s", orig, tmp,
			 strerror(errno));
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	return fd;
out_unlink:
	unlink(tmp);
	return ret;
}

/* Both ends of each pipe come from one pipe2(); its data goes back in first. */
static int open_pipe_end(struct restore_ctx *r, struct fd_state *s, uint32_t idx)
{
	const struct cryo_img_fd *f = &r->fds[idx];
	int want_read = (f->flags & O_ACCMODE) == O_RDONLY;
	int p[2], ret;

	/* an end of this pipe already restored: reopen through /proc (new description) */
	for (uint32_t j = 0; j < idx; j++) {
		const struct cryo_img_fd *g = &r->fds[j];
		char path[64];
		int fd;

		if (g->kind != CRYO_FD_PIPE || g->pipe_ino != f->pipe_ino)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", g->fd);
		fd = open(path, (want_read ? O_RDONLY : O_WRONLY) | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return fail_fd(r, f, "reopening pipe end");
		if (fcntl(fd, F_SETFL, f->flags & SETFL_FLAGS) < 0)
			return fail_fd(r, f, "fcntl(F_SETFL)");
		return fd;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail_fd(r, f, "pipe2");
	if (f->pipe_size && fcntl(p[1], F_SETPIPE_SZ, f->pipe_size) < 0) {
		ret = fail_fd(r, f, "setting pipe size");
		goto out_close;
	}
	/* the data of a pipe is stored with its first read end */
	for (uint32_t j = idx; j < r->nr_fds; j++) {
		const struct cryo_img_fd *g = &r->fds[j];
		uint64_t len;

		if (g->kind == CRYO_FD_PIPE && g->pipe_ino == f->pipe_ino && g->blob_id) {
			ret = restore_copy_blob(r, g->blob_id, p[1], &len);
			if (ret)
				goto out_close;
			break;
		}
	}
	if (fcntl(p[want_read ? 0 : 1], F_SETFL, f->flags & SETFL_FLAGS) < 0) {
		ret = fail_fd(r, f, "fcntl(F_SETFL)");
		goto out_close;
	}
	/*
	 * The other end must stay open until its own fd is restored: park it
	 * at its image number right away if it is in the image.
	 */
	for (uint32_t j = idx + 1; j < r->nr_fds; j++) {
		const struct cryo_img_fd *g = &r->fds[j];

		if (g->kind == CRYO_FD_PIPE && g->pipe_ino == f->pipe_ino &&
		    ((g->flags & O_ACCMODE) == O_RDONLY) != want_read) {
			int other = p[want_read ? 1 : 0];

			if (fcntl(other, F_SETFL, g->flags & SETFL_FLAGS) < 0 ||
			    install(r, g, other)) {
				ret = fail_fd(r, g, "installing pipe end");
				close(p[want_read ? 0 : 1]);
				return ret;
			}
			s->done[j] = 1;
			return p[want_read ? 0 : 1];
		}
	}
	close(p[want_read ? 1 : 0]);
	return p[want_read ? 0 : 1];
out_close:
	close(p[0]);
	close(p[1]);
	return ret;
}

static int restore_one(struct restore_ctx *r, struct fd_state *s, uint32_t idx)
{
	const struct cryo_img_fd *f = &r->fds[idx];
	int fd;

	switch (f->kind) {
	case CRYO_FD_REG:
	case CRYO_FD_DIR:
	case CRYO_FD_CHR:
		fd = open_by_path(r, f);
		break;
	case CRYO_FD_DELETED:
		fd = open_deleted(r, f);
		break;
	case CRYO_FD_PIPE:
		fd = open_pipe_end(r, s, idx);
		break;
	case CRYO_FD_DUP:
		fd = fcntl(f->dup_of, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return fail_fd(r, f, "dup");
		break;
	case CRYO_FD_INHERIT:
		if (f->fd >= STDIO_FDS || s->stdio_copy[f->fd] < 0) {
			errno = EBADF;
			return fail_fd(r, f, "connecting to cryo's own stdio, which is closed");
		}
		fd = fcntl(s->stdio_copy[f->fd], F_DUPFD_CLOEXEC, 0);
		break;
	default:
		errno = EINVAL;
		return fail_fd(r, f, "unknown kind");
	}
	if (fd < 0)
		return CRYO_ERESTORE;
	return install(r, f, fd);
}

static int close_others(struct restore_ctx *r, struct fd_state *s, int report_fd)
{
	int *fds = NULL, nr = 0, ret;

	ret = proc_list_fds(getpid(), &fds, &nr);
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: listing own fds: %s", strerror(-ret));
	for (int i = 0; i < nr; i++) {
		int keep = fds[i] == r->img_fd || fds[i] == report_fd;

		for (uint32_t j = 0; j < r->nr_fds && !keep; j++)
			keep = r->fds[j].fd == fds[i];
		if (!keep)
			close(fds[i]);
	}
	for (int i = 0; i < STDIO_FDS; i++)
		s->stdio_copy[i] = -1;	/* closed above */
	free(fds);
	return 0;
}

int restore_files(struct restore_ctx *r)
{
	struct fd_state s;
	int ret, img_fd;
	char cwd[PATH_MAX + 64];

	s.base = STDIO_FDS;
	for (uint32_t i = 0; i < r->nr_fds; i++)
		if (r->fds[i].fd >= s.base)
			s.base = r->fds[i].fd + 1;
	for (int i = 0; i < STDIO_FDS; i++)
		s.stdio_copy[i] = fcntl(i, F_DUPFD_CLOEXEC, s.base);
	s.done = xzalloc(r->nr_fds);
	if (!s.done)
		return CRYO_ERESTORE;
	img_fd = move_high(imgr_fd(r->img), s.base);
	r->report_pipe[1] = move_high(r->report_pipe[1], s.base);
	if (img_fd < 0 || r->report_pipe[1] < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: moving cryo's own fds above %d: %s",
				 s.base, strerror(errno));
	r->img_fd = img_fd;
	ret = fault_point("restore:files");
	if (ret)
		return ret;
	/* numbers of the image that cryo itself holds now would be clobbered: free them */
	for (uint32_t i = 0; i < r->nr_fds; i++)
		if (r->fds[i].kind != CRYO_FD_INHERIT || r->fds[i].fd >= STDIO_FDS)
			close(r->fds[i].fd);
	for (uint32_t i = 0; i < r->nr_fds; i++) {
		if (s.done[i])
			continue;
		ret = restore_one(r, &s, i);
		if (ret)
			return ret;
		s.done[i] = 1;
	}
	ret = close_others(r, &s, r->report_pipe[1]);
	if (ret)
		return ret;
	path_in_root(r, r->cwd_path, cwd, sizeof(cwd));
	if (chdir(cwd) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: working directory %s: %s",
				 r->task.pid, cwd, strerror(errno));
	umask(r->task.umask);
	return restore_memory_and_jump(r);
}
