/*
 * Collect the descriptors of the frozen task: path, flags, offset and kind
 * of each, which fds share one open file description (kcmp), the content of
 * files deleted while open and of pipes whose both ends are in the image.
 * A descriptor cryo cannot restore exactly fails the checkpoint, naming it;
 * only stdin/stdout/stderr that lead outside the image (a terminal, a pipe
 * or socket to another process) are recorded as "inherited": restore
 * connects them to the restoring cryo's own stdio, as BLCR's cr_restart did.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dump/dump.h"
#include "util/util.h"

#define STDIO_FDS 3
#define TTY_MAJOR_PTS 136
#define TTY_MAJOR_VC 4
#define TTY_MAJOR_AUX 5

static int is_simple_chardev(const char *path)
{
	static const char *const ok[] = { "/dev/null", "/dev/zero", "/dev/full",
					  "/dev/random", "/dev/urandom" };

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (!strcmp(path, ok[i]))
			return 1;
	return 0;
}

int add_blob(struct dump_tree *t, struct cryo_img_fd *f, int src_fd, uint64_t len,
	     uint8_t *data)
{
	struct fd_blob *b = realloc(t->blobs, (t->nr_blobs + 1) * sizeof(*b));

	if (!b)
		return CRYO_EINTERNAL;
	t->blobs = b;
	b[t->nr_blobs].id = t->nr_blobs + 1;
	b[t->nr_blobs].src_fd = src_fd;
	b[t->nr_blobs].len = len;
	b[t->nr_blobs].data = data;
	f->blob_id = b[t->nr_blobs].id;
	t->nr_blobs++;
	return 0;
}

/* Copy what sits in a pipe without consuming it: tee() into a private pipe. */
static int read_pipe_data(struct dump_ctx *c, int fd, struct cryo_img_fd *f)
{
	char path[64];
	int src, tmp[2] = { -1, -1 }, ret = 0;
	uint8_t *data = NULL;
	ssize_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, fd);
	src = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (src < 0)
		return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: open %s: %s", c->pid, fd, path,
				 strerror(errno));
	f->pipe_size = fcntl(src, F_GETPIPE_SZ);
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) ||
	    fcntl(tmp[1], F_SETPIPE_SZ, f->pipe_size) < (int)f->pipe_size) {
		ret = cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: cannot make a pipe to copy "
				"its data: %s", c->pid, fd, strerror(errno));
		goto out;
	}
	n = tee(src, tmp[1], f->pipe_size, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		ret = cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: tee: %s", c->pid, fd,
				strerror(errno));
		goto out;
	}
	if (n > 0) {
		data = malloc(n);
		if (!data || read(tmp[0], data, n) != n) {
			ret = cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: reading pipe copy", c->pid,
					fd);
			free(data);
			goto out;
		}
		ret = add_blob(c->tree, f, -1, n, data);
	}
out:
	close(src);
	if (tmp[0] >= 0)
		close(tmp[0]);
	if (tmp[1] >= 0)
		close(tmp[1]);
	return ret;
}

static int find_dup(struct dump_ctx *c, int idx, const struct stat *sb, struct stat *sbs)
{
	for (int j = 0; j < idx; j++) {
		if (sbs[j].st_dev != sb->st_dev || sbs[j].st_ino != sb->st_ino)
			continue;
		if (syscall(SYS_kcmp, c->pid, c->pid, KCMP_FILE, c->fds[idx].fd, c->fds[j].fd) == 0)
			return j;
	}
	return -1;
}

static int unsupported(struct dump_ctx *c, int fd, const char *kind, const char *path)
{
	return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (%s) is a %s: not supported yet",
			 c->pid, fd, path, kind);
}

/* "/proc/<digits>" or "/proc/<digits>/...": the pid, else 0 */
static pid_t proc_path_pid(const char *path)
{
	char *end;
	long pid;

	if (strncmp(path, "/proc/", 6) || path[6] < '1' || path[6] > '9')
		return 0;
	pid = strtol(path + 6, &end, 10);
	return (*end == '/' || *end == 0) && pid > 0 ? pid : 0;
}

/*
 * A descriptor that names a task: only path, flags and position are kept;
 * it is reopened by its path in the restorer's late step, once every PID
 * and TID is back. Whether the task is in the image is decided later, with
 * the whole tree known; here: is the entry still alive?
 */
static int classify_proc(struct dump_ctx *c, struct cryo_img_fd *f, const struct stat *sb,
			 const char *path)
{
	struct stat now;

	f->kind = CRYO_FD_PROC;
	f->proc_pid = proc_path_pid(path);
	/* the fd pins its dentry: a live entry looks up to the same inode */
	if (stat(path, &now) || now.st_ino != sb->st_ino || now.st_dev != sb->st_dev)
		f->proc_target = CRYO_TARGET_DEAD;
	if (f->proc_target == CRYO_TARGET_DEAD && proc_task_state(f->proc_pid))
		return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (%s) names a task that died "
				 "while PID %d was reused: not supported", c->pid, f->fd, path,
				 f->proc_pid);
	return 0;
}

#define EPOLL_PRIVATE_BITS (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)

/*
 * Restore disarms a fired one-shot watch by firing it once more, which
 * needs its file ready for some event: try it on a new description of it.
 */
static int ready_for_something(struct dump_ctx *c, int tfd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP };
	struct proc_fdinfo fi;
	char path[64];
	int fd, ep, ready = 0;

	if (proc_read_fdinfo(c->pid, tfd, &fi))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", c->pid, tfd);
	fd = open(path, (fi.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (fd >= 0 && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		ready = epoll_wait(ep, &ev, 1, 0) == 1;
	if (fd >= 0)
		close(fd);
	if (ep >= 0)
		close(ep);
	return ready;
}

/*
 * A timerfd's state from fdinfo. A periodic timer that expired and was not
 * read shows no time left: the kernel moves it on to its next period (and
 * counts the periods it missed) only when it is read or asked. Asking,
 * timerfd_gettime() run in the task, does that without consuming
 * anything the program could see; then fdinfo tells the time left.
 */
static int read_timerfd(struct dump_ctx *c, int fd, struct proc_fdinfo *fi)
{
	struct frozen_task *main = &c->threads[0];
	int ret = 0;

	for (int tries = 0;; tries++) {
		if (proc_read_fdinfo(c->pid, fd, fi) || fi->timer_fields != 5)
			return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (timerfd): its state is "
					 "not in fdinfo on this kernel: not supported", c->pid, fd);
		if (!fi->timer_interval_ns || fi->timer_value_ns || !fi->timer_ticks)
			break;
		if (tries == 3)
			/* a period shorter than reading fdinfo: due again at once */
			return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (timerfd) expires every "
					 "%llu ns, faster than cryo can read it: not supported",
					 c->pid, fd, (unsigned long long)fi->timer_interval_ns);
		int64_t r;

		ret = inject_prepare(main);
		if (!ret)
			ret = inject_syscall(main, __NR_timerfd_gettime, fd, main->scratch, 0, 0, 0, 0,
					     &r);
		if (!ret)
			ret = inject_finish(main);
		if (!ret && r < 0)
			ret = cryo_fail(CRYO_EINTERNAL, "process %d: fd %d (timerfd): "
					"timerfd_gettime failed inside it: %s", c->pid, fd,
					strerror((int)-r));
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * An epoll instance: its watches, from fdinfo ("tfd: N events: X data: Y").
 * kcmp(KCMP_EPOLL_TFD) tells whether fd N still is the file watched (a
 * watch outlives the closing of its fd while a dup of the file is open
 * elsewhere): a watch on a file with no fd of its own cannot be re-added.
 */
static int collect_epoll(struct dump_ctx *c, struct cryo_img_fd *f)
{
	struct cryo_img_epoll_watch *w = NULL;
	struct buf b = { 0 };
	char *line, *save;
	int n = 0, cap = 0, ret;

	f->kind = CRYO_FD_EPOLL;
	ret = read_proc(&b, "/proc/%d/fdinfo/%d", c->pid, f->fd);
	if (ret)
		return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d (epoll): fdinfo: %s", c->pid,
				 f->fd, strerror(-ret));
	for (line = strtok_r(b.data, "\n", &save); line && !ret;
	     line = strtok_r(NULL, "\n", &save)) {
		struct { uint32_t efd, tfd, toff; } slot;
		int tfd;
		unsigned events;
		unsigned long long data;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
			continue;
		slot.efd = f->fd;
		slot.tfd = tfd;
		slot.toff = 0;
		if (syscall(SYS_kcmp, c->pid, c->pid, KCMP_EPOLL_TFD, tfd, &slot) != 0) {
			ret = cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (epoll) watches a file that "
					"fd %d no longer holds: not supported", c->pid, f->fd, tfd);
			break;
		}
		if (n == cap) {
			struct cryo_img_epoll_watch *p;

			cap = cap ? 2 * cap : 16;
			p = realloc(w, cap * sizeof(*w));
			if (!p) {
				ret = CRYO_EINTERNAL;
				break;
			}
			w = p;
		}
		if (!(events & ~EPOLL_PRIVATE_BITS) && !ready_for_something(c, tfd)) {
			ret = cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (epoll) has a fired one-shot "
					"watch on fd %d, which is ready for nothing: it could not be "
					"restored disarmed", c->pid, f->fd, tfd);
			break;
		}
		w[n].tfd = tfd;
		w[n].events = events;
		w[n].data = data;
		n++;
	}
	buf_free(&b);
	if (!ret && n)
		ret = add_blob(c->tree, f, -1, n * sizeof(*w), (uint8_t *)w);
	else
		free(w);
	return ret;
}

static int classify_fd(struct dump_ctx *c, int idx, struct stat *sbs, const char *path)
{
	struct cryo_img_fd *f = &c->fds[idx];
	const struct stat *sb = &sbs[idx];
	int fd = f->fd;
	size_t plen = strlen(path);
	int deleted = plen > 10 && !strcmp(path + plen - 10, " (deleted)");

	if (proc_path_pid(path))
		return classify_proc(c, f, sb, path);
	if (deleted && !strncmp(path, "/proc/", 6)) {
		/* the entry of a task that is gone: the kernel marks it like a deleted file */
		char live[PATH_MAX];

		snprintf(live, sizeof(live), "%.*s", (int)(plen - 10), path);
		if (proc_path_pid(live)) {
			f->path = strtab_add(c->strings, live);
			if (f->path == (cryo_str_t)-1)
				return CRYO_EINTERNAL;
			f->kind = CRYO_FD_PROC;
			f->proc_pid = proc_path_pid(live);
			f->proc_target = CRYO_TARGET_DEAD;
			if (proc_task_state(f->proc_pid))
				return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (%s) names a task "
						 "that died while PID %d was reused: not supported",
						 c->pid, fd, path, f->proc_pid);
			return 0;
		}
	}
	if (!strcmp(path, "anon_inode:[eventpoll]"))
		return collect_epoll(c, f);
	/*
	 * Their whole state is in fdinfo. (An eventfd shared with a task
	 * outside the tree comes back cut off from it: cryo cannot see who
	 * else holds it. Kernel users of eventfds, io_uring or KVM, come with
	 * descriptors cryo refuses.)
	 */
	if (!strcmp(path, "anon_inode:[eventfd]") || !strcmp(path, "anon_inode:[signalfd]")) {
		struct proc_fdinfo fi;
		int eventfd = !strcmp(path, "anon_inode:[eventfd]");

		/* before Linux 6.6 fdinfo does not tell EFD_SEMAPHORE */
		if (proc_read_fdinfo(c->pid, fd, &fi) ||
		    !(eventfd ? fi.has_eventfd_count && fi.has_eventfd_semaphore : fi.has_sigmask))
			return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (%s): its state is not "
					 "in fdinfo on this kernel: not supported", c->pid, fd, path);
		f->kind = eventfd ? CRYO_FD_EVENTFD : CRYO_FD_SIGNALFD;
		f->eventfd_count = fi.eventfd_count;
		f->eventfd_flags = fi.eventfd_semaphore ? CRYO_EVENTFD_SEMAPHORE : 0;
		f->signal_mask = fi.sigmask;
		return 0;
	}
	if (!strcmp(path, "anon_inode:[timerfd]")) {
		struct proc_fdinfo fi;
		int ret = read_timerfd(c, fd, &fi);

		if (ret)
			return ret;
		/* the time left is kept; the timer runs on from the restore (as interval timers) */
		f->kind = CRYO_FD_TIMERFD;
		f->timer_clockid = fi.timer_clockid;
		f->timer_flags = fi.timer_flags;
		f->timer_ticks = fi.timer_ticks;
		f->timer_value_ns = fi.timer_value_ns;
		f->timer_interval_ns = fi.timer_interval_ns;
		return 0;
	}
	if (!strcmp(path, "anon_inode:[pidfd]")) {
		struct proc_fdinfo fi;

		if (proc_read_fdinfo(c->pid, fd, &fi))
			return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: fdinfo", c->pid, fd);
		f->kind = CRYO_FD_PIDFD;
		f->proc_pid = fi.pidfd_pid;
		if (fi.pidfd_pid <= 0)
			f->proc_target = CRYO_TARGET_DEAD;
		return 0;
	}

	if (S_ISREG(sb->st_mode) && deleted && !strncmp(path, "/memfd:", 7)) {
		f->kind = CRYO_FD_MEMFD;	/* its object: collect_shmem() */
		return 0;
	}
	if (S_ISREG(sb->st_mode)) {
		if (path[0] != '/')
			return unsupported(c, fd, "special file", path);
		if (deleted) {
			char p[64];
			int src;

			snprintf(p, sizeof(p), "/proc/%d/fd/%d", c->pid, fd);
			src = open(p, O_RDONLY | O_CLOEXEC);
			if (src < 0)
				return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d (%s): %s", c->pid,
						 fd, path, strerror(errno));
			f->kind = CRYO_FD_DELETED;
			return add_blob(c->tree, f, src, sb->st_size, NULL);
		}
		f->kind = CRYO_FD_REG;
		return 0;
	}
	if (S_ISDIR(sb->st_mode)) {
		if (path[0] != '/' || deleted)
			return unsupported(c, fd, "deleted directory", path);
		f->kind = CRYO_FD_DIR;
		return 0;
	}
	if (S_ISCHR(sb->st_mode)) {
		unsigned maj = major(sb->st_rdev);
		if (is_simple_chardev(path)) {
			f->kind = CRYO_FD_CHR;
			return 0;
		}
		if (maj == TTY_MAJOR_PTS || maj == TTY_MAJOR_VC || maj == TTY_MAJOR_AUX) {
			if (fd < STDIO_FDS) {
				f->kind = CRYO_FD_INHERIT;
				return 0;
			}
			return unsupported(c, fd, "terminal (not on stdin/stdout/stderr)", path);
		}
		return unsupported(c, fd, "character device", path);
	}
	if (S_ISFIFO(sb->st_mode)) {
		if (!strncmp(path, "pipe:", 5)) {
			/* both ends may be in different processes: resolve_shared_fds() decides */
			f->kind = CRYO_FD_PIPE;
			f->pipe_ino = sb->st_ino;
			return 0;
		}
		if (path[0] == '/' && !deleted) {
			/* like a pipe: resolve_shared_fds() checks both ends are here */
			f->kind = CRYO_FD_FIFO;
			f->pipe_ino = sb->st_ino;
			return 0;
		}
		if (fd < STDIO_FDS) {
			f->kind = CRYO_FD_INHERIT;
			return 0;
		}
		return unsupported(c, fd, "deleted named FIFO", path);
	}
	if (S_ISSOCK(sb->st_mode)) {
		if (fd < STDIO_FDS) {
			f->kind = CRYO_FD_INHERIT;
			return 0;
		}
		return unsupported(c, fd, "socket", path);
	}
	return unsupported(c, fd, "special descriptor", path);
}

int collect_fds(struct dump_ctx *c)
{
	int *fds = NULL, nr = 0, ret;
	struct stat *sbs = NULL;

	ret = proc_list_fds(c->pid, &fds, &nr);
	if (ret)
		return cryo_fail(CRYO_EINTERNAL, "process %d: listing fds: %s", c->pid,
				 strerror(-ret));
	c->fds = xzalloc(nr * sizeof(*c->fds));
	sbs = xzalloc(nr * sizeof(*sbs));
	if (!c->fds || !sbs) {
		ret = CRYO_EINTERNAL;
		goto out;
	}
	c->nr_fds = nr;
	/* first pass: identity, flags and offsets of all, so pipes can see both ends */
	for (int i = 0; i < nr; i++) {
		struct cryo_img_fd *f = &c->fds[i];
		struct proc_fdinfo fi;
		char link[64], path[PATH_MAX];
		ssize_t n;

		f->pid = c->pid;
		f->fd = fds[i];
		f->dup_of = -1;
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", c->pid, fds[i]);
		n = readlink(link, path, sizeof(path) - 1);
		if (n < 0 || stat(link, &sbs[i]) || proc_read_fdinfo(c->pid, fds[i], &fi)) {
			ret = cryo_fail(CRYO_EINTERNAL, "process %d: fd %d: %s", c->pid, fds[i],
					strerror(errno));
			goto out;
		}
		path[n] = 0;
		f->path = strtab_add(c->strings, path);
		if (f->path == (cryo_str_t)-1) {
			ret = CRYO_EINTERNAL;
			goto out;
		}
		f->flags = fi.flags;
		f->pos = fi.pos;
		f->mode = sbs[i].st_mode;
		f->size = sbs[i].st_size;
		f->mtime_ns = sbs[i].st_mtim.tv_sec * 1000000000ull + sbs[i].st_mtim.tv_nsec;
		f->rdev_major = major(sbs[i].st_rdev);
		f->rdev_minor = minor(sbs[i].st_rdev);
	}
	for (int i = 0; i < nr; i++) {
		struct cryo_img_fd *f = &c->fds[i];
		int dup = find_dup(c, i, &sbs[i], sbs);

		if (dup >= 0) {
			f->kind = CRYO_FD_DUP;
			f->dup_of = c->fds[dup].fd;
			continue;
		}
		ret = classify_fd(c, i, sbs, c->strings->data + f->path);
		if (ret)
			goto out;
	}
out:
	free(fds);
	c->fd_stats = sbs;
	return ret;
}

/* Pipes: both ends must be somewhere in the checkpoint; the data goes with one read end. */
static int resolve_pipes(struct dump_tree *t)
{
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		for (int i = 0; i < c->nr_fds; i++) {
			struct cryo_img_fd *f = &c->fds[i];
			int have_read = 0, have_write = 0, data_owner = 1;

			if (f->kind != CRYO_FD_PIPE && f->kind != CRYO_FD_FIFO)
				continue;
			for (int q = 0; q < t->nr_procs; q++)
				for (int j = 0; j < t->procs[q]->nr_fds; j++) {
					const struct cryo_img_fd *g = &t->procs[q]->fds[j];

					if (g->kind != f->kind || g->pipe_ino != f->pipe_ino)
						continue;
					/* a FIFO opened O_RDWR is both ends */
					if ((g->flags & O_ACCMODE) != O_WRONLY) {
						have_read = 1;
						if ((q < p || (q == p && j < i)))
							data_owner = 0;
					}
					if ((g->flags & O_ACCMODE) != O_RDONLY)
						have_write = 1;
				}
			if (!have_read || !have_write) {
				if (f->fd < STDIO_FDS) {
					f->kind = CRYO_FD_INHERIT;
					continue;
				}
				if (t->external) {
					/* restore --inherit-fd or --hangup-external says what it becomes */
					f->kind = CRYO_FD_EXTERNAL;
					continue;
				}
				return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (%s) is a %s whose "
						 "other end is outside the checkpoint (see --external)",
						 c->pid, f->fd, (const char *)t->strings.data + f->path,
						 f->kind == CRYO_FD_PIPE ? "pipe" : "named FIFO");
			}
			if (data_owner && (f->flags & O_ACCMODE) != O_WRONLY) {
				int ret = read_pipe_data(c, f->fd, f);
				if (ret)
					return ret;
			}
		}
	}
	return 0;
}

/*
 * Open file descriptions shared between processes (inherited across fork):
 * give every fd that shares one the same file_id, found with kcmp.
 */
static int resolve_shared_files(struct dump_tree *t)
{
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		for (int i = 0; i < c->nr_fds; i++) {
			struct cryo_img_fd *f = &c->fds[i];

			/*
			 * Task-naming descriptors are reopened late, each in its own
			 * process: one inherited across fork comes back unshared.
			 */
			if (f->kind == CRYO_FD_DUP || f->kind == CRYO_FD_INHERIT ||
			    f->kind == CRYO_FD_PROC || f->kind == CRYO_FD_PIDFD)
				continue;
			for (int q = p + 1; q < t->nr_procs; q++) {
				struct dump_ctx *d = t->procs[q];

				for (int j = 0; j < d->nr_fds; j++) {
					struct cryo_img_fd *g = &d->fds[j];

					if (g->kind == CRYO_FD_DUP || g->kind == CRYO_FD_INHERIT ||
					    g->kind == CRYO_FD_PROC || g->kind == CRYO_FD_PIDFD ||
					    g->file_id || d->fd_stats[j].st_ino != c->fd_stats[i].st_ino ||
					    d->fd_stats[j].st_dev != c->fd_stats[i].st_dev)
						continue;
					if (syscall(SYS_kcmp, c->pid, d->pid, KCMP_FILE, f->fd, g->fd))
						continue;
					if (!f->file_id)
						f->file_id = ++t->next_file_id;
					g->file_id = f->file_id;
				}
			}
		}
	}
	return 0;
}

static int in_tree(struct dump_tree *t, pid_t tid)
{
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		if (c->pid == tid)
			return 1;
		for (int i = 0; i < c->nr_threads; i++)
			if (c->threads[i].tid == tid)
				return 1;
	}
	return 0;
}

/* Tasks named by /proc descriptors and pidfds: in the image, outside, or dead. */
static int resolve_proc_targets(struct dump_tree *t)
{
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		for (int i = 0; i < c->nr_fds; i++) {
			struct cryo_img_fd *f = &c->fds[i];
			struct proc_stat st;

			if ((f->kind != CRYO_FD_PROC && f->kind != CRYO_FD_PIDFD) ||
			    f->proc_target == CRYO_TARGET_DEAD)
				continue;
			if (in_tree(t, f->proc_pid)) {
				f->proc_target = CRYO_TARGET_IMAGE;
				continue;
			}
			if (proc_read_stat(f->proc_pid, 0, &st))
				return cryo_fail(CRYO_EINTERNAL, "process %d: fd %d names task %d, "
						 "which just vanished", c->pid, f->fd, f->proc_pid);
			f->proc_target = CRYO_TARGET_OUTSIDE;
			f->proc_starttime = st.starttime;
		}
	}
	return 0;
}

static const struct fd_blob *find_blob(const struct dump_tree *t, uint64_t id)
{
	for (int i = 0; i < t->nr_blobs; i++)
		if (t->blobs[i].id == id)
			return &t->blobs[i];
	return NULL;
}

/*
 * An epoll instance is rebuilt in its process once every other fd is back:
 * its watches must be on fds restored before it (not on task-naming fds,
 * reopened later, nor on another epoll), and it must not be shared with
 * another process (it could only name one process's fds).
 */
static int check_epolls(struct dump_tree *t)
{
	for (int p = 0; p < t->nr_procs; p++) {
		struct dump_ctx *c = t->procs[p];

		for (int i = 0; i < c->nr_fds; i++) {
			const struct cryo_img_fd *f = &c->fds[i];
			const struct fd_blob *b;

			if (f->kind != CRYO_FD_EPOLL)
				continue;
			if (f->file_id)
				return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (epoll) is shared with "
						 "another process: not supported", c->pid, f->fd);
			b = f->blob_id ? find_blob(t, f->blob_id) : NULL;
			for (uint64_t k = 0; b && k < b->len / sizeof(struct cryo_img_epoll_watch);
			     k++) {
				const struct cryo_img_epoll_watch *w =
					(const struct cryo_img_epoll_watch *)b->data + k;
				const struct cryo_img_fd *g = NULL;

				for (int j = 0; j < c->nr_fds; j++)
					if (c->fds[j].fd == w->tfd)
						g = &c->fds[j];
				while (g && g->kind == CRYO_FD_DUP) {
					const struct cryo_img_fd *orig = NULL;

					for (int j = 0; j < c->nr_fds; j++)
						if (c->fds[j].fd == g->dup_of)
							orig = &c->fds[j];
					g = orig;
				}
				if (!g || g->kind == CRYO_FD_EPOLL || g->kind == CRYO_FD_PROC ||
				    g->kind == CRYO_FD_PIDFD)
					return cryo_fail(CRYO_EUNSUPP, "process %d: fd %d (epoll) watches "
							 "fd %d, %s: not supported", c->pid, f->fd,
							 w->tfd, !g ? "which is not saved" :
							 g->kind == CRYO_FD_EPOLL ? "another epoll" :
							 "which names a task");
			}
		}
	}
	return 0;
}

int resolve_shared_fds(struct dump_tree *t)
{
	int ret = resolve_pipes(t);

	if (!ret)
		ret = resolve_proc_targets(t);
	if (!ret)
		ret = resolve_shared_files(t);
	if (!ret)
		ret = check_epolls(t);
	return ret;
}
