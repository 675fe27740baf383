/*
 * Phase 20: create every process with its original PID, parents first.
 *
 * cryo creates the root with clone3(set_tid) and seizes it with
 * PTRACE_O_TRACEFORK | PTRACE_O_EXITKILL before letting it go on: from
 * then on every process the root (or its descendants) creates is traced
 * from birth, and dies if cryo dies. Each process, a copy of cryo, runs
 * restore_proc_main(): it takes its session and group (leaders first),
 * creates its own children the same way, waits until every process exists
 * (a barrier released by cryo), joins its group, and goes on to phase 30.
 * Zombies exit with their saved status right there, for their parent to
 * reap after the restore. With --detach an intermediate process creates the
 * root and exits at once, so the root is reparented to init (or the
 * nearest subreaper).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/creds.h"
#include "kernel/proc.h"
#include "restore/restore.h"
#include "util/util.h"

#define CHILD_EXIT_FAILED 121	/* the child logged why */
/* CLONE: a process whose exit signal is not SIGCHLD is a "clone" to ptrace */
#define TRACE_OPTIONS (PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | \
		       PTRACE_O_TRACECLONE)

static pid_t clone_with_pid_flags(pid_t pid, uint64_t flags, int exit_signal)
{
	struct clone_args args;

	memset(&args, 0, sizeof(args));
	args.flags = flags;
	/* with CLONE_PARENT the exit signal is the caller's own (clone3 wants 0 here) */
	args.exit_signal = (flags & CLONE_PARENT) ? 0 : exit_signal;
	args.set_tid = (uint64_t)(uintptr_t)&pid;
	args.set_tid_size = 1;
	return syscall(SYS_clone3, &args, sizeof(args));
}

static pid_t clone_with_pid(pid_t pid)
{
	return clone_with_pid_flags(pid, 0, SIGCHLD);
}

/*
 * An entry of the plan, by its creator: with the signal its parent gets
 * when it dies, or with CLONE_PARENT (the creator's signal, phase 15).
 */
static pid_t clone_entry(const struct restore_proc *p)
{
	return clone_with_pid_flags(p->task.pid, p->clone_parent ? CLONE_PARENT : 0,
				    p->task.exit_signal);
}

static int clone_failed(pid_t pid, int err)
{
	if (err == EEXIST)
		return cryo_fail(CRYO_ECONFLICT, "restore: PID %d was taken while restoring", pid);
	if (err == EPERM)
		return cryo_fail(CRYO_EPERM, "restore: creating PID %d needs CAP_CHECKPOINT_RESTORE "
				 "(clone3 set_tid): %s", pid, strerror(err));
	return cryo_fail(CRYO_ERESTORE, "restore: clone3 with PID %d: %s", pid, strerror(err));
}

/* Leaders first: a session or group leader takes it now, before its children exist. */
static int take_own_session_and_group(struct restore_proc *p)
{
	pid_t pid = p->task.pid;

	if (p->task.sid == pid && getsid(0) != pid && setsid() < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: setsid: %s", pid, strerror(errno));
	if (p->task.pgid == pid && getpgid(0) != pid && setpgid(0, 0) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: setpgid: %s", pid,
				 strerror(errno));
	return 0;
}

/* After the barrier every group leader exists: members can join. */
static int join_group(struct restore_proc *p)
{
	if (getpgid(0) == p->task.pgid)
		return 0;
	if (setpgid(0, p->task.pgid) < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: task %d: joining process group %d: %s",
				 p->task.pid, p->task.pgid, strerror(errno));
	return 0;
}

/*
 * Tell cryo we are here with our own session, group and children; cryo
 * opens the barrier once everybody is, so no one joins a group that its
 * leader has not made yet.
 */
static int wait_barrier(struct restore_ctx *r)
{
	char c = 'a';

	if (write(r->arrive_pipe[1], &c, 1) != 1)
		return CRYO_ERESTORE;
	close(r->arrive_pipe[1]);
	r->arrive_pipe[1] = -1;

	/* EOF: cryo died (its end closed); every process must then go too */
	if (read(r->barrier_pipe[0], &c, 1) != 1)
		return CRYO_ERESTORE;
	return 0;
}

static void __attribute__((noreturn)) exit_like(const struct cryo_img_task *t)
{
	int st = t->exit_status;

	prctl(PR_SET_NAME, t->comm);	/* ps shows a zombie by its name */
	if (WIFSIGNALED(st)) {
		struct rlimit no_core = { 0, 0 };
		sigset_t all;

		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(st), SIG_DFL);
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), WTERMSIG(st));
	}
	_exit(WEXITSTATUS(st));
}

/* Helpers first: the groups and sessions they hold must exist for the others. */
static int create_children(struct restore_ctx *r, int index)
{
	for (int helpers = 1; helpers >= 0; helpers--)
		for (uint32_t j = 0; j < r->nr_procs; j++) {
			pid_t pid;

			if (r->procs[j].creator != index || r->procs[j].helper != helpers)
				continue;
			pid = clone_entry(&r->procs[j]);
			if (pid < 0)
				return clone_failed(r->procs[j].task.pid, errno);
			if (pid == 0)
				restore_proc_main(r, j);
		}
	return 0;
}

/* A leader helper: holds its group (and session) until cryo says all joined. */
static void __attribute__((noreturn)) helper_main(struct restore_ctx *r, int index)
{
	char c;

	prctl(PR_SET_NAME, r->procs[index].task.comm);
	if (create_children(r, index) || wait_barrier(r))
		_exit(CHILD_EXIT_FAILED);
	while (read(r->release_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	/* a session helper parents the group helpers it made: reap them */
	while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
		;
	_exit(0);
}

/*
 * Once a process has installed the image's descriptors, its fd 2 is the
 * restored program's stderr: cryo's messages go to a saved copy of cryo's.
 */
static int log_fd = 2;

static void log_to_saved_stderr(const char *line, void *opaque)
{
	struct iovec iov[2] = { { (void *)line, strlen(line) }, { "\n", 1 } };

	(void)opaque;
	if (writev(log_fd, iov, 2) < 0)
		return;
}

void restore_proc_main(struct restore_ctx *r, int index)
{
	struct restore_proc *p = &r->procs[index];
	int ret;

	r->me = p;
	/*
	 * cryo's ends first (-1, so that our children do not close someone
	 * else's fd): with our copy of the go pipe's write end closed, cryo's
	 * death shows as EOF below.
	 */
	int *theirs[] = { &r->go_pipe[1], &r->barrier_pipe[1], &r->report_pipe[0],
			  &r->helper_pipe[0], &r->helper_pipe[1], &r->release_pipe[1],
			  &r->arrive_pipe[0] };
	for (size_t i = 0; i < ARRAY_SIZE(theirs); i++) {
		if (*theirs[i] >= 0)
			close(*theirs[i]);
		*theirs[i] = -1;
	}
	if (index == 0) {
		char go;

		/* EOF: cryo died before tracing us, and we must not live on */
		if (read(r->go_pipe[0], &go, 1) != 1)
			_exit(CHILD_EXIT_FAILED);
	}
	if (r->go_pipe[0] >= 0)
		close(r->go_pipe[0]);
	r->go_pipe[0] = -1;
	ret = take_own_session_and_group(p);
	if (!ret && p->helper)
		helper_main(r, index);
	if (!ret && index == 0)
		ret = restore_shared_files(r);	/* and shared memory, memfds first */
	if (!ret && r->stdio_copy[2] >= 0) {
		log_fd = r->stdio_copy[2];
		cryo_set_log(log_to_saved_stderr, NULL);
	}
	if (!ret)
		ret = create_children(r, index);
	/* only helpers wait for the release; every helper is created by now */
	if (r->release_pipe[0] >= 0)
		close(r->release_pipe[0]);
	r->release_pipe[0] = -1;
	if (!ret)
		ret = wait_barrier(r);
	if (!ret)
		ret = join_group(p);
	if (!ret && p->zombie)
		exit_like(&p->task);
	if (!ret)
		ret = restore_files(r);	/* returns only on failure */
	/* corrupt page data is found only now (IMGR_DEFER_PAGE_DATA): say so */
	_exit(ret == CRYO_EIMAGE ? RESTORE_CHILD_EXIT_IMAGE : CHILD_EXIT_FAILED);
}

/*
 * Create the root task; returns its PID in the caller (never returns in the
 * root). When the root's session leader is gone, a helper takes the
 * leader's PID, starts the session (and its group) with setsid(), and
 * creates the root inside it with CLONE_PARENT, so the root's parent is
 * still the caller. The helper lives until cryo ends the restore, then its
 * PID is free again, as the session leader's was.
 */
static pid_t create_root(struct restore_ctx *r)
{
	const struct cryo_img_task *t = &r->procs[0].task;
	pid_t helper, pid;
	int st;

	if (!r->root_needs_session_helper) {
		pid = clone_entry(&r->procs[0]);
		if (pid == 0)
			restore_proc_main(r, 0);
		return pid < 0 ? -errno : pid;
	}
	/* the root inherits its exit signal from the helper (CLONE_PARENT) */
	helper = clone_with_pid_flags(t->sid, 0, t->exit_signal);
	if (helper < 0)
		return -errno;
	if (helper == 0) {
		char c;

		if (setsid() < 0)
			_exit(errno);
		pid = clone_with_pid_flags(t->pid, CLONE_PARENT, 0);
		if (pid == 0)
			restore_proc_main(r, 0);
		if (pid < 0)
			_exit(errno);
		close(r->helper_pipe[1]);
		while (read(r->helper_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	/* ours to reap at the end (in --detach mode we are the short-lived middle) */
	pid_t *hs = realloc(r->helpers, (r->nr_helpers + 1) * sizeof(*hs));
	if (hs) {
		r->helpers = hs;
		r->helpers[r->nr_helpers++] = helper;
	}
	/* the root appears, or the helper says why not */
	for (int tries = 0; tries < 10000; tries++) {
		if (proc_task_state(t->pid))
			return t->pid;
		if (waitpid(helper, &st, WNOHANG) == helper)
			return -(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : EIO);
		usleep(500);
	}
	return -ETIMEDOUT;
}

static int create_detached(struct restore_ctx *r)
{
	pid_t mid = fork(), got;
	int st;

	if (mid < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: fork: %s", strerror(errno));
	if (mid == 0) {
		pid_t pid = create_root(r);

		/* errno fits an exit status: it is how cryo learns it */
		_exit(pid < 0 ? -pid : 0);
	}
	while ((got = waitpid(mid, &st, 0)) < 0 && errno == EINTR)
		;
	if (got < 0 || !WIFEXITED(st))
		return cryo_fail(CRYO_ERESTORE, "restore: helper process failed");
	if (WEXITSTATUS(st) != 0)
		return clone_failed(r->procs[0].task.pid, WEXITSTATUS(st));
	return 0;
}

int restore_is_proc_path(const char *path)
{
	return !strncmp(path, "/proc/", 6) && path[6] >= '1' && path[6] <= '9';
}

static pid_t start_helper(struct restore_ctx *r, pid_t pid)
{
	pid_t h = pid > 0 ? clone_with_pid(pid) : fork();
	char c;

	if (h == 0) {
		/* hold the PID until cryo closes the pipe */
		close(r->helper_pipe[1]);
		while (read(r->helper_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (h < 0)
		return clone_failed(pid, errno);
	pid_t *hs = realloc(r->helpers, (r->nr_helpers + 1) * sizeof(*hs));
	if (!hs) {
		kill(h, SIGKILL);
		waitpid(h, NULL, 0);
		return CRYO_ERESTORE;
	}
	r->helpers = hs;
	r->helpers[r->nr_helpers++] = h;
	return h;
}

/*
 * A descriptor on /proc/<pid> (or a pidfd) of a task that was already dead
 * at checkpoint time comes back as the same kind of dead entry: a helper
 * holds the PID while the restorer opens it, and dies at the end.
 */
static int start_dead_task_helpers(struct restore_ctx *r)
{
	if (pipe2(r->helper_pipe, O_CLOEXEC))
		return cryo_fail(CRYO_ERESTORE, "restore: pipe: %s", strerror(errno));
	for (uint32_t i = 0; i < r->nr_fds; i++) {
		struct cryo_img_fd *f = &r->fds[i];
		int known = 0;
		pid_t h;

		if ((f->kind != CRYO_FD_PROC && f->kind != CRYO_FD_PIDFD) ||
		    f->proc_target != CRYO_TARGET_DEAD)
			continue;
		if (f->proc_pid <= 0) {
			if (!r->anonymous_helper) {
				h = start_helper(r, 0);
				if (h < 0)
					return h;
				r->anonymous_helper = h;
			}
			continue;
		}
		for (uint32_t j = 0; j < i; j++)
			known |= r->fds[j].proc_target == CRYO_TARGET_DEAD &&
				 r->fds[j].proc_pid == f->proc_pid;
		if (!known && (h = start_helper(r, f->proc_pid)) < 0)
			return h;
	}
	return 0;
}

void restore_end_helpers(struct restore_ctx *r)
{
	if (r->helper_pipe[1] >= 0)
		close(r->helper_pipe[1]);
	r->helper_pipe[1] = -1;
	for (uint32_t i = 0; i < r->nr_helpers; i++)
		waitpid(r->helpers[i], NULL, 0);
	r->nr_helpers = 0;
}

int restore_create_tree(struct restore_ctx *r)
{
	pid_t root = r->procs[0].task.pid;
	int ret;

	ret = start_dead_task_helpers(r);
	if (ret)
		return ret;

	if (pipe2(r->go_pipe, O_CLOEXEC) || pipe2(r->barrier_pipe, O_CLOEXEC) ||
	    pipe2(r->report_pipe, O_CLOEXEC) || pipe2(r->release_pipe, O_CLOEXEC) ||
	    pipe2(r->arrive_pipe, O_CLOEXEC))
		return cryo_fail(CRYO_ERESTORE, "restore: pipe: %s", strerror(errno));
	if (fault_point("restore:tree"))
		return CRYO_ERESTORE;
	/*
	 * A cryo started with file capabilities is not dumpable, nor are the
	 * copies of it that become the restored processes, and then it cannot
	 * trace them. Making it dumpable opens nothing to the caller: ptrace
	 * and /proc/PID/mem still refuse a tracer lacking cryo's capability.
	 */
	if (creds_caller()->raised && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return cryo_fail(CRYO_ERESTORE, "restore: prctl(PR_SET_DUMPABLE): %s",
				 strerror(errno));
	if (r->opts->detach) {
		ret = create_detached(r);
		if (ret)
			return ret;
	} else {
		pid_t pid = create_root(r);

		if (pid < 0)
			return clone_failed(root, -pid);
	}
	if (r->helper_pipe[0] >= 0)
		close(r->helper_pipe[0]);
	r->helper_pipe[0] = -1;
	close(r->go_pipe[0]);
	close(r->barrier_pipe[0]);
	close(r->report_pipe[1]);
	close(r->release_pipe[0]);
	close(r->arrive_pipe[1]);
	r->go_pipe[0] = r->barrier_pipe[0] = r->report_pipe[1] = r->release_pipe[0] = -1;
	r->arrive_pipe[1] = -1;
	if (ptrace(PTRACE_SEIZE, root, 0, TRACE_OPTIONS) < 0) {
		ret = cryo_fail(CRYO_ERESTORE, "restore: cannot trace the new task %d: %s", root,
				strerror(errno));
		restore_kill_all(r);
		return ret;
	}
	r->procs[0].seized = 1;
	if (write(r->go_pipe[1], "g", 1) != 1) {
		restore_kill_all(r);
		return cryo_fail(CRYO_ERESTORE, "restore: task %d vanished", root);
	}
	close(r->go_pipe[1]);
	r->go_pipe[1] = -1;
	return 0;
}

void restore_kill_all(struct restore_ctx *r)
{
	/*
	 * Every process of the tree is traced by us from birth, seen yet or
	 * not: SIGKILL each, then collect their deaths as their tracer,
	 * threads we seized first (a leader is reaped only after them). No
	 * blocking wait: a task we do not trace must not hang us.
	 */
	for (uint32_t i = 0; i < r->nr_procs; i++) {
		pid_t pid = r->procs[i].task.pid;

		if (!r->procs[i].exited && proc_tracer_pid(pid) == getpid())
			kill(pid, SIGKILL);
	}
	for (int round = 0; round < 2000; round++) {
		int left = 0;

		for (uint32_t i = 0; i < r->nr_procs; i++) {
			struct restore_proc *p = &r->procs[i];

			for (uint32_t t = 0; t < p->nr_seized; t++) {
				if (p->seized_threads[t] <= 0)
					continue;
				if (waitpid(p->seized_threads[t], NULL, __WALL | WNOHANG) != 0)
					p->seized_threads[t] = 0;	/* reaped, or not ours */
				else
					left++;
			}
			if (p->exited)
				continue;
			pid_t got = waitpid(p->task.pid, NULL, __WALL | WNOHANG);
			if (got != 0)
				p->exited = 1;	/* reaped, or not ours to reap */
			else
				left++;
		}
		if (!left)
			break;
		usleep(1000);
	}
}
