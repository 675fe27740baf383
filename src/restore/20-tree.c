/*
 * Phase 20: create the task with its original PID and take hold of it.
 *
 * clone3() with set_tid gives the child the image's PID. The child waits on
 * a pipe until the parent has seized it with PTRACE_O_EXITKILL, so if cryo
 * dies at any point before the final detach, the half-restored task dies
 * with it. With --detach an intermediate process creates the task and
 * exits at once, so the task is reparented to init (or the subreaper).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "restore/restore.h"
#include "util/util.h"

#define CHILD_EXIT_FAILED 121	/* the child logged why */

static pid_t clone_with_pid(pid_t pid)
{
	struct clone_args args;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&pid;
	args.set_tid_size = 1;
	return syscall(SYS_clone3, &args, sizeof(args));
}

/*
 * Give the new task its session and process group. A task that led its own
 * session or group gets it back with setsid()/setpgid(); otherwise it must
 * join a group of the restoring cryo's own session that still exists.
 * Sessions and groups whose leader is gone need helper tasks (process trees).
 */
static int restore_session_and_group(struct restore_ctx *r)
{
	pid_t pid = r->task.pid, sid = r->task.sid, pgid = r->task.pgid;

	if (sid == pid) {
		if (setsid() < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: task %d: setsid: %s", pid,
					 strerror(errno));
		return 0;
	}
	if (getsid(0) != sid)
		return cryo_fail(CRYO_EUNSUPP,
				 "restore: task %d belonged to session %d, which is not cryo's "
				 "(%d): restore it from a process of that session, or restore a "
				 "process that leads its own session", pid, sid, getsid(0));
	if (pgid == getpgid(0))
		return 0;
	if (setpgid(0, pgid == pid ? 0 : pgid) < 0)
		return cryo_fail(CRYO_EUNSUPP, "restore: task %d: cannot join process group %d: %s",
				 pid, pgid, strerror(errno));
	return 0;
}

/* The child's life: wait to be seized, then run phases 30 and 40. */
static void __attribute__((noreturn)) child_main(struct restore_ctx *r)
{
	char go;

	close(r->go_pipe[1]);
	close(r->report_pipe[0]);
	/*
	 * EOF here means cryo died before seizing us: we must not live on.
	 * After the seize, PTRACE_O_EXITKILL takes over that duty.
	 */
	if (read(r->go_pipe[0], &go, 1) != 1)
		_exit(CHILD_EXIT_FAILED);
	close(r->go_pipe[0]);
	if (restore_session_and_group(r) == 0)
		restore_files(r);
	/* restore_files/restore_memory_and_jump only return on failure */
	_exit(CHILD_EXIT_FAILED);
}

static int clone_failed(struct restore_ctx *r, int err)
{
	if (err == EEXIST)
		return cryo_fail(CRYO_ECONFLICT, "restore: PID %d was taken while restoring",
				 r->task.pid);
	if (err == EPERM)
		return cryo_fail(CRYO_EPERM, "restore: creating PID %d needs CAP_CHECKPOINT_RESTORE "
				 "(clone3 set_tid): %s", r->task.pid, strerror(err));
	return cryo_fail(CRYO_ERESTORE, "restore: clone3 with PID %d: %s", r->task.pid,
			 strerror(err));
}

static int create_detached(struct restore_ctx *r)
{
	pid_t mid = fork(), got;
	int st;

	if (mid < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: fork: %s", strerror(errno));
	if (mid == 0) {
		pid_t pid = clone_with_pid(r->task.pid);

		if (pid == 0)
			child_main(r);
		/* errno fits an exit status: it is how the parent learns it */
		_exit(pid < 0 ? errno : 0);
	}
	while ((got = waitpid(mid, &st, 0)) < 0 && errno == EINTR)
		;
	if (got < 0 || !WIFEXITED(st))
		return cryo_fail(CRYO_ERESTORE, "restore: helper process failed");
	if (WEXITSTATUS(st) != 0)
		return clone_failed(r, WEXITSTATUS(st));
	r->pid = r->task.pid;
	return 0;
}

int restore_create_tree(struct restore_ctx *r)
{
	int ret;

	if (pipe2(r->go_pipe, O_CLOEXEC) || pipe2(r->report_pipe, O_CLOEXEC))
		return cryo_fail(CRYO_ERESTORE, "restore: pipe: %s", strerror(errno));
	ret = fault_point("restore:tree");
	if (ret)
		return CRYO_ERESTORE;
	if (r->opts->detach) {
		ret = create_detached(r);
		if (ret)
			return ret;
	} else {
		pid_t pid = clone_with_pid(r->task.pid);

		if (pid < 0)
			return clone_failed(r, errno);
		if (pid == 0)
			child_main(r);
		r->pid = pid;
	}
	close(r->go_pipe[0]);
	close(r->report_pipe[1]);
	r->go_pipe[0] = r->report_pipe[1] = -1;
	if (r->pid != r->task.pid) {
		restore_kill_all(r);
		return cryo_fail(CRYO_ERESTORE, "restore: got PID %d instead of %d", r->pid,
				 r->task.pid);
	}
	if (ptrace(PTRACE_SEIZE, r->pid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD) < 0) {
		ret = cryo_fail(CRYO_ERESTORE, "restore: cannot trace the new task %d: %s", r->pid,
				strerror(errno));
		restore_kill_all(r);
		return ret;
	}
	if (write(r->go_pipe[1], "g", 1) != 1) {
		restore_kill_all(r);
		return cryo_fail(CRYO_ERESTORE, "restore: task %d vanished", r->pid);
	}
	close(r->go_pipe[1]);
	r->go_pipe[1] = -1;
	return 0;
}

void restore_kill_all(struct restore_ctx *r)
{
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGKILL);
	/* reap it if it is ours; as its tracer we also see it die */
	waitpid(r->pid, NULL, __WALL);
	r->pid = 0;
}
