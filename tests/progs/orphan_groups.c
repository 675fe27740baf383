/*
 * orphan_groups: a process group and a session whose leaders are gone.
 * main (a child subreaper) forks L, which starts its own group, forks two
 * members and exits; and S, which starts a session, forks C1 (in S's group)
 * and C2 (its own group) and exits. All four are reparented to main. A
 * restore can only put them back with helper tasks holding PIDs L and S,
 * which must be gone again before anything runs, leaving main no stray
 * child to reap and no stray SIGCHLD.
 * After SIGTERM: every group and session ID, parent, that L and S are free,
 * that main has no pending SIGCHLD and no unexpected child.
 */
#include "testlib.h"

#include <sys/prctl.h>
#include <sys/wait.h>

/* Idles until its parent is neither its leader nor main (main died). */
static pid_t fork_idle(pid_t main_pid)
{
	pid_t pid = SYS(fork());

	if (pid == 0) {
		pid_t leader = getppid();

		while (getppid() == leader || getppid() == main_pid)
			sleep(1);
		_exit(0);
	}
	return pid;
}

/* Forks the leader, which builds its group or session and reports its children. */
static pid_t start_leader(int session, pid_t kids[2], pid_t main_pid)
{
	int p[2];
	pid_t leader;

	SYS(pipe(p));
	leader = SYS(fork());
	if (leader == 0) {
		pid_t k[2];

		if (session ? setsid() < 0 : setpgid(0, 0) < 0)
			_exit(1);
		k[0] = fork_idle(main_pid);
		k[1] = fork_idle(main_pid);
		if (session && setpgid(k[1], k[1]) < 0)
			_exit(1);
		if (write(p[1], k, sizeof(k)) != sizeof(k))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], kids, 2 * sizeof(pid_t)) != 2 * sizeof(pid_t))
		fail("setup: leader %d did not report its children", leader);
	close(p[0]);
	int st;
	SYS(waitpid(leader, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "setup: leader %d failed (%#x)", leader, st);
	return leader;
}

int main(void)
{
	pid_t me = getpid(), members[2], scs[2], leader, sleader;
	sigset_t chld, pending;
	struct timespec zero = { 0, 0 };

	SYS(prctl(PR_SET_CHILD_SUBREAPER, 1));
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	SYS(sigprocmask(SIG_BLOCK, &chld, NULL));
	install_sigterm(0);
	leader = start_leader(0, members, me);
	sleader = start_leader(1, scs, me);
	/* let the orphans reach us, then forget the SIGCHLDs of the leaders */
	for (int i = 0; i < 200 && (parent_of(members[1]) != me || parent_of(scs[1]) != me); i++)
		usleep(10000);
	while (sigtimedwait(&chld, NULL, &zero) > 0)
		;
	note("group %d (members %d %d), session %d (%d, %d)", leader, members[0], members[1],
	     sleader, scs[0], scs[1]);
	ready();
	wait_for_sigterm();

	for (int i = 0; i < 2; i++) {
		CHECK(getpgid(members[i]) == leader, "member %d: pgid %d, want %d", members[i],
		      getpgid(members[i]), leader);
		CHECK(getsid(members[i]) == me, "member %d: sid %d, want %d", members[i],
		      getsid(members[i]), me);
		CHECK(getsid(scs[i]) == sleader, "session member %d: sid %d, want %d", scs[i],
		      getsid(scs[i]), sleader);
		CHECK(parent_of(members[i]) == me && parent_of(scs[i]) == me,
		      "parents of %d and %d: %d and %d, want %d", members[i], scs[i],
		      parent_of(members[i]), parent_of(scs[i]), me);
	}
	CHECK(getpgid(scs[0]) == sleader, "session member %d: pgid %d, want %d", scs[0],
	      getpgid(scs[0]), sleader);
	CHECK(getpgid(scs[1]) == scs[1], "session member %d: pgid %d, want its own", scs[1],
	      getpgid(scs[1]));
	CHECK(kill(leader, 0) < 0 && errno == ESRCH, "group leader PID %d is in use", leader);
	CHECK(kill(sleader, 0) < 0 && errno == ESRCH, "session leader PID %d is in use", sleader);
	SYS(sigpending(&pending));
	CHECK(!sigismember(&pending, SIGCHLD), "a SIGCHLD is pending that nobody sent before");
	pid_t stray = waitpid(-1, NULL, WNOHANG);
	CHECK(stray == 0, "waitpid(-1) found %d, want 0 (no child exited)", stray);
	pid_t all[4] = { members[0], members[1], scs[0], scs[1] };
	for (int i = 0; i < 4; i++) {
		int st;

		kill(all[i], SIGKILL);
		CHECK(waitpid(all[i], &st, 0) == all[i] && WIFSIGNALED(st),
		      "waitpid(%d) did not report its death", all[i]);
	}
	pass();
}
