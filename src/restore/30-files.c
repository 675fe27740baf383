/*
 * Phase 30: descriptors, working directory, umask.
 *
 * Open file descriptions shared by several processes (inherited across
 * fork) and every pipe are materialized once, by the root before it creates
 * any child, and parked at high fd numbers: every process inherits them and
 * dups what it needs, so sharing (one offset, one set of flags, one pipe
 * buffer) comes back as it was. Each process then opens its own descriptors
 * at their numbers with their flags and offsets, and closes everything
 * else. Files deleted while open are recreated under their old name,
 * filled, opened and unlinked again, so the kernel shows the same
 * "/path (deleted)".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "kernel/proc.h"
#include "restore/restore.h"
#include "util/util.h"

#define STDIO_FDS 3
#define INTERNAL_FDS 16
/* Flags that describe how a file was opened, not what to do on reopening. */
#define REOPEN_IGNORED_FLAGS (O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC)
#define SETFL_FLAGS (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK)

static int fail_fd(struct restore_ctx *r, const struct cryo_img_fd *f, const char *what)
{
	return cryo_fail(CRYO_ERESTORE, "restore: fd %d of task %d (%s): %s: %s", f->fd, f->pid,
			 imgr_str(r->img, f->path), what, strerror(errno));
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

int restore_move_fd(int fd, int base)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, base);

	if (n >= 0)
		close(fd);
	return n;
}

static void path_in_root(const char *root, const char *path, char *out, size_t len)
{
	if (!strcmp(root, "/"))
		snprintf(out, len, "%s", path);
	else
		snprintf(out, len, "%s%s", root, path);
}

static const char *root_of(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	for (uint32_t i = 0; i < r->nr_image_procs; i++)
		if (r->procs[i].task.pid == f->pid)
			return r->procs[i].root_path;
	return "/";
}

static int open_by_path(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	char path[PATH_MAX + 64];
	int fd;

	path_in_root(root_of(r, f), imgr_str(r->img, f->path), path, sizeof(path));
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
 * it, unlink it, and give the name back to its current owner. The kernel
 * then shows the new file as "<path> (deleted)", as before.
 */
int restore_recreate_deleted(struct restore_ctx *r, const char *root, const char *shown,
			     uint32_t mode, uint64_t blob_id, int open_flags, const char *what)
{
	char orig[PATH_MAX + 64], tmp[PATH_MAX + 96];
	const char *slash;
	int wfd, fd = -1, swapped = 0, ret = 0;
	uint64_t len = 0;

	path_in_root(root, shown, orig, sizeof(orig));
	orig[strlen(orig) - strlen(" (deleted)")] = 0;
	slash = strrchr(orig, '/');
	snprintf(tmp, sizeof(tmp), "%.*s/.cryo-restore.%d.%llu", (int)(slash - orig), orig,
		 getpid(), (unsigned long long)blob_id);
	wfd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	if (wfd < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: %s (%s): creating its content in the same "
				 "directory: %s", what, shown, strerror(errno));
	ret = restore_copy_blob(r, blob_id, wfd, &len);
	close(wfd);
	if (ret)
		goto out_unlink;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, orig, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST ||
		    renameat2(AT_FDCWD, tmp, AT_FDCWD, orig, RENAME_EXCHANGE) < 0) {
			ret = cryo_fail(CRYO_ERESTORE, "restore: %s (%s): renaming into place: %s",
					what, shown, strerror(errno));
			goto out_unlink;
		}
		swapped = 1;
	}
	fd = open(orig, open_flags | O_CLOEXEC);
	if (fd < 0)
		ret = cryo_fail(CRYO_ERESTORE, "restore: %s (%s): open: %s", what, shown,
				strerror(errno));
	unlink(orig);	/* ours: the name now shows "(deleted)" */
	if (swapped && rename(tmp, orig) < 0)
		cryo_log("restore: could not give %s back its name (left at %s): %s", orig, tmp,
			 strerror(errno));
	return ret ? ret : fd;
out_unlink:
	unlink(tmp);
	return ret;
}

static int open_deleted(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	char what[64];
	int fd;

	snprintf(what, sizeof(what), "fd %d of task %d", f->fd, f->pid);
	fd = restore_recreate_deleted(r, root_of(r, f), imgr_str(r->img, f->path), f->mode,
				      f->blob_id, f->flags & ~REOPEN_IGNORED_FLAGS, what);
	if (fd >= 0 && lseek(fd, f->pos, SEEK_SET) < 0) {
		close(fd);
		return fail_fd(r, f, "lseek");
	}
	return fd;
}

/* Park fd at the next parking number; every entry sharing it will dup it. */
static int park(struct restore_ctx *r, int fd)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, r->park_base + r->nr_parks);

	close(fd);
	if (n < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: parking a shared descriptor: %s",
				 strerror(errno));
	r->nr_parks = n - r->park_base + 1;
	return n;
}

static int same_description(const struct cryo_img_fd *a, const struct cryo_img_fd *b)
{
	return a == b || (a->file_id && a->file_id == b->file_id);
}

/* Both ends of a pipe come from one pipe2(); its saved data goes back in first. */
static int materialize_pipe(struct restore_ctx *r, uint32_t g, int *park_of)
{
	const struct cryo_img_fd *f = &r->fds[g];
	int p[2], ret, ends[2] = { -1, -1 };
	uint64_t len;

	if (pipe2(p, O_CLOEXEC) < 0)
		return fail_fd(r, f, "pipe2");
	for (uint32_t j = 0; j < r->nr_fds; j++) {
		const struct cryo_img_fd *h = &r->fds[j];

		if (h->kind != CRYO_FD_PIPE || h->pipe_ino != f->pipe_ino)
			continue;
		if (h->pipe_size && fcntl(p[1], F_SETPIPE_SZ, h->pipe_size) < 0) {
			ret = fail_fd(r, h, "setting pipe size");
			goto out;
		}
		if (h->blob_id) {
			ret = restore_copy_blob(r, h->blob_id, p[1], &len);
			if (ret)
				goto out;
		}
	}
	/* one description per distinct (shared) read or write end */
	for (uint32_t j = 0; j < r->nr_fds; j++) {
		const struct cryo_img_fd *h = &r->fds[j];
		int end = (h->flags & O_ACCMODE) == O_RDONLY ? 0 : 1, fd;

		if (h->kind != CRYO_FD_PIPE || h->pipe_ino != f->pipe_ino || park_of[j] >= 0)
			continue;
		if (ends[end] < 0) {
			fd = p[end];
			p[end] = -1;
		} else {
			char path[64];

			snprintf(path, sizeof(path), "/proc/self/fd/%d", ends[end]);
			fd = open(path, (end ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
			if (fd < 0) {
				ret = fail_fd(r, h, "reopening pipe end");
				goto out;
			}
		}
		if (fcntl(fd, F_SETFL, h->flags & SETFL_FLAGS) < 0) {
			close(fd);
			ret = fail_fd(r, h, "fcntl(F_SETFL)");
			goto out;
		}
		fd = park(r, fd);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		if (ends[end] < 0)
			ends[end] = fd;
		for (uint32_t k = j; k < r->nr_fds; k++)
			if (same_description(h, &r->fds[k]))
				park_of[k] = fd;
	}
	ret = 0;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return ret;
}

/*
 * A named FIFO: its pipe lives as long as someone has it open. An anchor
 * opened read-write (which never blocks) takes the saved data and size;
 * every description of the image is then opened by path (it cannot block
 * either: the anchor is a reader and a writer) and parked; the anchor goes.
 */
static int materialize_fifo(struct restore_ctx *r, uint32_t g, int *park_of)
{
	const struct cryo_img_fd *f = &r->fds[g];
	char path[PATH_MAX + 64];
	struct stat sb;
	uint64_t len;
	int anchor, ret = 0;

	path_in_root(root_of(r, f), imgr_str(r->img, f->path), path, sizeof(path));
	anchor = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (anchor < 0)
		return fail_fd(r, f, "opening the named FIFO");
	if (fstat(anchor, &sb) < 0 || !S_ISFIFO(sb.st_mode)) {
		errno = ENOTSUP;
		ret = fail_fd(r, f, "the path is no longer a named FIFO");
		goto out;
	}
	for (uint32_t j = g; j < r->nr_fds && !ret; j++) {
		const struct cryo_img_fd *h = &r->fds[j];

		if (h->kind != CRYO_FD_FIFO || h->pipe_ino != f->pipe_ino)
			continue;
		if (h->pipe_size && fcntl(anchor, F_SETPIPE_SZ, h->pipe_size) < 0)
			ret = fail_fd(r, h, "setting pipe size");
		else if (h->blob_id)
			ret = restore_copy_blob(r, h->blob_id, anchor, &len);
	}
	for (uint32_t j = g; j < r->nr_fds && !ret; j++) {
		const struct cryo_img_fd *h = &r->fds[j];
		int fd;

		if (h->kind != CRYO_FD_FIFO || h->pipe_ino != f->pipe_ino || park_of[j] >= 0)
			continue;
		fd = open(path, (h->flags & ~REOPEN_IGNORED_FLAGS) | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			ret = fail_fd(r, h, "opening the named FIFO");
			break;
		}
		if (fcntl(fd, F_SETFL, h->flags & SETFL_FLAGS) < 0) {
			close(fd);
			ret = fail_fd(r, h, "fcntl(F_SETFL)");
			break;
		}
		fd = park(r, fd);
		if (fd < 0) {
			ret = fd;
			break;
		}
		for (uint32_t k = j; k < r->nr_fds; k++)
			if (k == j || same_description(h, &r->fds[k]))
				park_of[k] = fd;
	}
out:
	close(anchor);
	return ret;
}

/* A new open file description of the memfd the root made (phase 40). */
static int open_memfd(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->shmems[f->shmem].fd);
	fd = open(path, (f->flags & ~REOPEN_IGNORED_FLAGS) | O_CLOEXEC);
	if (fd < 0)
		return fail_fd(r, f, "reopening the memfd");
	if (lseek(fd, f->pos, SEEK_SET) < 0) {
		int ret = fail_fd(r, f, "lseek");
		close(fd);
		return ret;
	}
	return fd;
}

/*
 * A pipe or FIFO that led outside: the caller's descriptor given with
 * --inherit-fd, or with --hangup-external the same end of a pipe whose
 * other end is closed (reads see EOF, writes EPIPE).
 */
static int open_external(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	int p[2], keep;

	for (int i = 0; i < r->opts->nr_inherit; i++)
		if (r->opts->inherit[i].pid == f->pid && r->opts->inherit[i].fd == f->fd) {
			keep = fcntl(r->inherit_copy[i], F_DUPFD_CLOEXEC, 0);
			return keep < 0 ? fail_fd(r, f, "dup of the --inherit-fd descriptor") : keep;
		}
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail_fd(r, f, "pipe2");
	keep = (f->flags & O_ACCMODE) == O_RDONLY ? 0 : 1;
	close(p[!keep]);
	if (fcntl(p[keep], F_SETFL, f->flags & SETFL_FLAGS) < 0) {
		close(p[keep]);
		return fail_fd(r, f, "fcntl(F_SETFL)");
	}
	return p[keep];
}

/* An eventfd with its counter; O_NONBLOCK is set by the caller with the other flags. */
static int open_eventfd(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK |
			  (f->eventfd_flags & CRYO_EVENTFD_SEMAPHORE ? EFD_SEMAPHORE : 0));

	if (efd < 0)
		return fail_fd(r, f, "eventfd");
	/* the count is 64 bits wide, eventfd()'s initial value only 32 */
	if (f->eventfd_count &&
	    write(efd, &f->eventfd_count, sizeof(f->eventfd_count)) != sizeof(f->eventfd_count)) {
		int ret = fail_fd(r, f, "setting its counter");

		close(efd);
		return ret;
	}
	return efd;
}

/* A signalfd for the same signals (their pending state is the process's own, phase 50). */
static int open_signalfd(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	sigset_t mask;
	int sfd;

	/* bit by bit: sigaddset() refuses the signals glibc keeps for itself (32, 33) */
	sigemptyset(&mask);
	memcpy(&mask, &f->signal_mask, sizeof(f->signal_mask));
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	return sfd < 0 ? fail_fd(r, f, "signalfd") : sfd;
}

/*
 * A timerfd on its clock; the restorer arms it and gives it its
 * expirations not read yet, last (restorer.c, arm_timers).
 */
static int open_timerfd(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	int tfd = timerfd_create(f->timer_clockid, TFD_CLOEXEC | TFD_NONBLOCK);

	return tfd < 0 ? fail_fd(r, f, "timerfd_create") : tfd;
}

static int open_description(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	switch (f->kind) {
	case CRYO_FD_TIMERFD:
		return open_timerfd(r, f);
	case CRYO_FD_EVENTFD:
		return open_eventfd(r, f);
	case CRYO_FD_SIGNALFD:
		return open_signalfd(r, f);
	case CRYO_FD_EXTERNAL:
		return open_external(r, f);
	case CRYO_FD_DELETED:
		return open_deleted(r, f);
	case CRYO_FD_MEMFD:
		return open_memfd(r, f);
	default:
		return open_by_path(r, f);
	}
}

int restore_shared_files(struct restore_ctx *r)
{
	int *park_of = malloc((r->nr_fds ? r->nr_fds : 1) * sizeof(int));
	int ret = 0, max_fd = STDIO_FDS - 1;

	if (!park_of)
		return CRYO_ERESTORE;
	for (uint32_t g = 0; g < r->nr_fds; g++) {
		park_of[g] = -1;
		if (r->fds[g].fd > max_fd)
			max_fd = r->fds[g].fd;
	}
	/* cryo's own descriptors go above every image fd, parked objects above those */
	r->internal_base = max_fd + 1;
	r->park_base = r->internal_base + INTERNAL_FDS;
	for (int i = 0; i < STDIO_FDS; i++)
		r->stdio_copy[i] = fcntl(i, F_DUPFD_CLOEXEC, r->internal_base);
	for (int i = 0; i < r->opts->nr_inherit; i++) {
		r->inherit_copy[i] = fcntl(r->opts->inherit[i].from, F_DUPFD_CLOEXEC,
					   r->internal_base);
		if (r->inherit_copy[i] < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: --inherit-fd: fd %d: %s",
					 r->opts->inherit[i].from, strerror(errno));
	}
	r->img_fd = restore_move_fd(r->img_fd, r->internal_base);
	r->barrier_pipe[0] = restore_move_fd(r->barrier_pipe[0], r->internal_base);
	r->report_pipe[1] = restore_move_fd(r->report_pipe[1], r->internal_base);
	if (r->img_fd < 0 || r->barrier_pipe[0] < 0 || r->report_pipe[1] < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: moving cryo's own fds above %d: %s",
				 r->internal_base, strerror(errno));
	/* memfds exist before the descriptors that open them */
	ret = restore_shared_memory(r);
	if (ret)
		return ret;

	for (uint32_t g = 0; g < r->nr_fds && !ret; g++) {
		const struct cryo_img_fd *f = &r->fds[g];
		int fd;

		if (park_of[g] >= 0)
			continue;
		if (f->kind == CRYO_FD_PIPE) {
			ret = materialize_pipe(r, g, park_of);
			continue;
		}
		if (f->kind == CRYO_FD_FIFO) {
			ret = materialize_fifo(r, g, park_of);
			continue;
		}
		if (!f->file_id || f->kind == CRYO_FD_DUP || f->kind == CRYO_FD_INHERIT)
			continue;
		fd = open_description(r, f);
		if (fd >= 0 && f->kind != CRYO_FD_CHR &&
		    fcntl(fd, F_SETFL, f->flags & SETFL_FLAGS) < 0)
			fd = fail_fd(r, f, "fcntl(F_SETFL)");
		if (fd >= 0)
			fd = park(r, fd);
		if (fd < 0) {
			ret = fd;
			break;
		}
		for (uint32_t k = g; k < r->nr_fds; k++)
			if (same_description(f, &r->fds[k]))
				park_of[k] = fd;
	}
	/* every process finds its parked objects through its own slice */
	for (uint32_t i = 0; i < r->nr_image_procs; i++)
		r->procs[i].fd_park = park_of + (r->procs[i].fds - r->fds);
	return ret;
}

/* Flags epoll keeps in a disarmed watch, and the events that make a watch fire. */
#define EPOLL_PRIVATE_BITS (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
#define EPOLL_ANY_EVENT (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLRDNORM | EPOLLWRNORM)

/* A new epoll instance with the watches it had, on the fds restored before it. */
static int restore_epoll(struct restore_ctx *r, const struct cryo_img_fd *f)
{
	struct cryo_img_epoll_watch *w = NULL;
	uint64_t len = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return fail_fd(r, f, "epoll_create1");
	if (f->blob_id) {
		long i = imgr_find(r->img, CRYO_SEC_BLOB, f->blob_id, 0, 0);

		/* phase 10 checked it (a single section); read through our own image fd */
		len = i < 0 ? 0 : imgr_section(r->img, i)->length;
		w = len && len % sizeof(*w) == 0 && len / sizeof(*w) <= MAX_EPOLL_WATCHES ?
			    malloc(len) : NULL;
		if (!w || pread_full(r->img_fd, w, len, imgr_payload_offset(r->img, i))) {
			free(w);
			close(ep);
			errno = EINVAL;
			return fail_fd(r, f, "reading its watch list");
		}
	}
	/*
	 * A one-shot watch that fired is disarmed (no events left, not even
	 * EPOLLERR|EPOLLHUP, which EPOLL_CTL_ADD always sets): added first,
	 * ready for anything, and fired once more it is disarmed again. The
	 * checkpoint made sure each of these fds is ready for something.
	 */
	int ret = 0, disarmed = 0;

	for (int pass = 0; pass < 2 && !ret; pass++) {
		for (uint64_t k = 0; k < len / sizeof(*w) && !ret; k++) {
			int off = (w[k].events & ~EPOLL_PRIVATE_BITS) == 0;
			struct epoll_event ev = { .events = w[k].events, .data.u64 = w[k].data };

			if (off != !pass)
				continue;
			if (off) {
				ev.events |= EPOLL_ANY_EVENT;
				disarmed++;
			}
			if (epoll_ctl(ep, EPOLL_CTL_ADD, w[k].tfd, &ev) < 0)
				ret = fail_fd(r, f, "re-adding a watch (epoll_ctl)");
		}
		if (!pass && disarmed && !ret) {
			struct epoll_event fired[64];
			int n = 0, got;

			while ((got = epoll_wait(ep, fired, 64, 0)) > 0)
				n += got;
			if (n != disarmed) {
				errno = EAGAIN;
				ret = fail_fd(r, f, "disarming its fired one-shot watches");
			}
		}
	}
	free(w);
	if (ret) {
		close(ep);
		return ret;
	}
	return ep;
}

static int restore_one(struct restore_ctx *r, uint32_t i)
{
	struct restore_proc *p = r->me;
	const struct cryo_img_fd *f = &p->fds[i];
	int fd;

	if (restore_fd_is_late(p, f))
		return 0;	/* reopened by the restorer once every task exists */
	if (p->fd_park[i] >= 0) {
		fd = fcntl(p->fd_park[i], F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return fail_fd(r, f, "dup of shared descriptor");
		return install(r, f, fd);
	}
	switch (f->kind) {
	case CRYO_FD_REG:
	case CRYO_FD_DIR:
	case CRYO_FD_CHR:
		fd = open_by_path(r, f);
		if (fd >= 0 && f->kind != CRYO_FD_CHR &&
		    fcntl(fd, F_SETFL, f->flags & SETFL_FLAGS) < 0)
			fd = fail_fd(r, f, "fcntl(F_SETFL)");
		break;
	case CRYO_FD_DELETED:
	case CRYO_FD_MEMFD:
	case CRYO_FD_EXTERNAL:
	case CRYO_FD_EVENTFD:
	case CRYO_FD_SIGNALFD:
	case CRYO_FD_TIMERFD:
		fd = open_description(r, f);
		if (fd >= 0 && f->kind != CRYO_FD_DELETED && f->kind != CRYO_FD_EXTERNAL &&
		    fcntl(fd, F_SETFL, f->flags & SETFL_FLAGS) < 0)
			fd = fail_fd(r, f, "fcntl(F_SETFL)");
		break;
	case CRYO_FD_EPOLL:
		fd = restore_epoll(r, f);
		break;
	case CRYO_FD_DUP:
		fd = fcntl(f->dup_of, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return fail_fd(r, f, "dup");
		break;
	case CRYO_FD_PROC:
	case CRYO_FD_PIDFD:
		return 0;	/* reopened by the restorer once every task exists */
	case CRYO_FD_INHERIT:
		if (f->fd >= STDIO_FDS || r->stdio_copy[f->fd] < 0) {
			errno = EBADF;
			return fail_fd(r, f, "connecting to cryo's own stdio, which is closed");
		}
		fd = fcntl(r->stdio_copy[f->fd], F_DUPFD_CLOEXEC, 0);
		break;
	default:
		errno = EINVAL;
		return fail_fd(r, f, "unexpected kind");
	}
	if (fd < 0)
		return CRYO_ERESTORE;
	return install(r, f, fd);
}

/* Everything that is neither an image fd nor still needed by cryo goes. */
static int close_others(struct restore_ctx *r)
{
	int *fds = NULL, nr = 0, ret;

	ret = proc_list_fds(getpid(), &fds, &nr);
	if (ret)
		return cryo_fail(CRYO_ERESTORE, "restore: listing own fds: %s", strerror(-ret));
	for (int i = 0; i < nr; i++) {
		int keep = fds[i] == r->img_fd || fds[i] == r->report_pipe[1] ||
			   fds[i] == r->stdio_copy[2];	/* cryo's stderr, for messages */

		for (uint32_t j = 0; j < r->me->nr_fds && !keep; j++)
			keep = r->me->fds[j].fd == fds[i];
		if (!keep)
			close(fds[i]);
	}
	free(fds);
	return 0;
}

static int is_epoll(const struct restore_proc *p, const struct cryo_img_fd *f)
{
	if (f->kind == CRYO_FD_DUP)
		for (uint32_t i = 0; i < p->nr_fds; i++)
			if (p->fds[i].fd == f->dup_of)
				return p->fds[i].kind == CRYO_FD_EPOLL;
	return f->kind == CRYO_FD_EPOLL;
}

int restore_files(struct restore_ctx *r)
{
	struct restore_proc *p = r->me;
	char cwd[PATH_MAX + 64];
	int ret;

	ret = fault_point("restore:files");
	if (ret)
		return ret;
	/* numbers of the image that cryo's copy still holds would be clobbered: free them */
	for (uint32_t i = 0; i < p->nr_fds; i++)
		if (p->fds[i].kind != CRYO_FD_INHERIT || p->fds[i].fd >= STDIO_FDS)
			close(p->fds[i].fd);
	/* epoll instances (and dups of them) last: their watches name other fds */
	for (int epolls = 0; epolls < 2; epolls++)
		for (uint32_t i = 0; i < p->nr_fds; i++) {
			if (is_epoll(p, &p->fds[i]) != epolls)
				continue;
			ret = restore_one(r, i);
			if (ret)
				return ret;
		}
	ret = close_others(r);
	if (ret)
		return ret;
	path_in_root(p->root_path, p->cwd_path, cwd, sizeof(cwd));
	/* a cwd under /proc/<pid> waits for the restorer's late step */
	if (!restore_is_proc_path(p->cwd_path) && chdir(cwd) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: working directory %s: %s",
				 p->task.pid, cwd, strerror(errno));
	umask(p->task.umask);
	return restore_memory_and_jump(r);
}
