/*
 * scope_pgid: checkpointed with `--pgid` (the runner picks the scope from
 * the name). main leads its session and group; a helper process forks Y
 * into main's group and exits, so Y's parent is init: Y is not main's
 * descendant and only a group scope takes it. Y and main talk through two
 * pipes, one holding data Y wrote before the checkpoint. scope_sid builds
 * the same plus W, in a group of its own whose leader is gone, which only
 * a session scope takes.
 * After SIGTERM: the in-flight data arrives, Y (and W) answer a ping, and
 * their parent, group and session are what they were.
 */
#include "testlib.h"

#include <sys/wait.h>

#define HELLO "hello from the member"

struct member {
	pid_t pid;
	int up, down;		/* main's ends: read from it, write to it */
};

/* The member: says hello, then answers each ping until main closes its pipe. */
static void member_main(int up, int down)
{
	char buf[16];

	if (write(up, HELLO, sizeof(HELLO)) != sizeof(HELLO))
		_exit(1);
	while (read(down, buf, sizeof(buf)) > 0)
		if (write(up, "pong", 4) != 4)
			_exit(1);
	_exit(0);
}

/* Fork a member through a middle process that exits: the member's parent becomes init. */
static struct member start_member(int own_group)
{
	int up[2], down[2], report[2];
	struct member m;
	pid_t mid;

	SYS(pipe(up));
	SYS(pipe(down));
	SYS(pipe(report));
	mid = SYS(fork());
	if (mid == 0) {
		pid_t pid;

		if (own_group && setpgid(0, 0) < 0)
			_exit(1);
		pid = fork();
		if (pid == 0) {
			close(up[0]);
			close(down[1]);
			close(report[0]);
			close(report[1]);
			member_main(up[1], down[0]);
		}
		if (write(report[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	close(report[1]);
	if (read(report[0], &m.pid, sizeof(m.pid)) != sizeof(m.pid))
		fail("setup: no member PID");
	close(report[0]);
	SYS(waitpid(mid, NULL, 0));
	m.up = up[0];
	m.down = down[1];
	return m;
}

static void check_member(const struct member *m, const char *name, pid_t pgid, pid_t sid,
			 pid_t ppid)
{
	char buf[sizeof(HELLO)];

	CHECK(read(m->up, buf, sizeof(buf)) == sizeof(buf) && !memcmp(buf, HELLO, sizeof(HELLO)),
	      "%s %d: the data in flight did not arrive", name, m->pid);
	CHECK(getpgid(m->pid) == pgid, "%s %d: pgid %d, want %d", name, m->pid, getpgid(m->pid),
	      pgid);
	CHECK(getsid(m->pid) == sid, "%s %d: sid %d, want %d", name, m->pid, getsid(m->pid), sid);
	CHECK(parent_of(m->pid) == ppid, "%s %d: parent %d, want %d", name, m->pid,
	      parent_of(m->pid), ppid);
	CHECK(write(m->down, "ping", 4) == 4, "%s %d: cannot write to it", name, m->pid);
	CHECK(read(m->up, buf, 4) == 4 && !memcmp(buf, "pong", 4), "%s %d: no answer", name,
	      m->pid);
}

int main(void)
{
	pid_t me = getpid();
	struct member y, w = { 0 };
	pid_t y_parent, w_parent = 0, w_group = 0;
#ifdef WITH_OTHER_GROUP
	const int other_group = 1;
#else
	const int other_group = 0;
#endif

	CHECK(getsid(0) == me && getpgid(0) == me, "setup: not a session leader");
	install_sigterm(0);
	y = start_member(0);
	if (other_group)
		w = start_member(1);
	/* let the members be reparented and write their hello */
	usleep(100000);
	y_parent = parent_of(y.pid);
	if (other_group) {
		w_parent = parent_of(w.pid);
		w_group = getpgid(w.pid);
		note("member %d (parent %d), member %d in group %d (parent %d)", y.pid, y_parent,
		     w.pid, w_group, w_parent);
	} else {
		note("member %d (parent %d)", y.pid, y_parent);
	}
	ready();
	wait_for_sigterm();

	/* after --detach the members' parent is init (or the subreaper) again */
	check_member(&y, "member", me, me, y_parent);
	if (other_group) {
		check_member(&w, "member of the other group", w_group, me, w_parent);
		CHECK(kill(w_group, 0) < 0 && errno == ESRCH, "the other group's leader PID %d "
		      "is in use", w_group);
	}
	close(y.down);
	if (other_group)
		close(w.down);
	pass();
}
