/*
 * Phase 15 (in cryo, before anything exists): decide who creates whom.
 *
 * A process inherits its session from the task that creates it and can
 * only join a process group of its own session. Most processes are created
 * by their parent. The others are created, with CLONE_PARENT so that their
 * parent is still the right one, by a task that is already in their
 * session:
 *  - a process whose parent is not in the image (scopes --pgid, --sid) is
 *    created by the root, so it also inherits what the root set up (shared
 *    descriptors, shared memory) and has cryo as its parent;
 *  - a process whose session leader is gone is created by a helper task
 *    that takes the leader's PID and starts the session again (setsid).
 * A process group whose leader is gone gets a helper task too, holding the
 * leader's PID as its group until every member has joined; it is a child
 * of the first member's creator, which reaps it.
 *
 * Helpers are entries of procs[] after the image's processes, with no
 * threads, memory or descriptors. They exit before any process runs again;
 * a helper's parent reaps it (in its restorer, or cryo) and the signal its
 * exit raised is dropped with every other signal raised during the restore.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/proc.h"
#include "restore/restore.h"
#include "restorer/restorer.h"
#include "util/util.h"

/* Run by a checkpoint (plan_only), the same refusals say what they protect. */
#define WHO(r) ((r)->plan_only ? "checkpoint: the restore could not recreate this: " : "restore: ")

int restore_find_proc(const struct restore_ctx *r, pid_t pid)
{
	for (uint32_t i = 0; i < r->nr_procs; i++)
		if (r->procs[i].task.pid == pid)
			return i;
	return -1;
}

static pid_t session_of(const struct restore_ctx *r, int index)
{
	return index < 0 ? getsid(0) : r->procs[index].task.sid;
}

static int exit_signal_of(const struct restore_ctx *r, int index)
{
	return index < 0 ? SIGCHLD : (int)r->procs[index].task.exit_signal;
}

/* A helper taking pid, made by creator the way a process of the image would be. */
static int add_helper(struct restore_ctx *r, pid_t pid, pid_t sid, int creator,
		      int clone_parent, int parent, const char *why)
{
	struct restore_proc *h;

	uint32_t siblings = 0;

	for (uint32_t i = r->nr_image_procs; i < r->nr_procs; i++)
		siblings += r->procs[i].parent == parent;
	if (parent >= 0 && siblings == RESTORER_MAX_REAP)
		return cryo_fail(CRYO_EUNSUPP, "%stask %d would parent more than %d leader "
				 "helpers", WHO(r), r->procs[parent].task.pid, RESTORER_MAX_REAP);
	if (!r->plan_only && proc_task_state(pid))
		return cryo_fail(CRYO_ECONFLICT, "%sPID %d, the dead leader of %s, is in "
				 "use by another process", WHO(r), pid, why);
	h = &r->procs[r->nr_procs];
	memset(h, 0, sizeof(*h));
	h->helper = 1;
	h->task.pid = h->task.pgid = pid;
	h->task.sid = sid;
	h->task.ppid = parent < 0 ? getpid() : r->procs[parent].task.pid;
	/* CLONE_PARENT gives it its creator's exit signal; else none: no SIGCHLD */
	h->task.exit_signal = clone_parent ? exit_signal_of(r, creator) : 0;
	snprintf(h->task.comm, sizeof(h->task.comm), "cryo-leader");
	h->creator = creator;
	h->clone_parent = clone_parent;
	h->parent = parent;
	return r->nr_procs++;
}

/* Created inside its session: by its parent, the root, or a session helper. */
static int plan_session(struct restore_ctx *r, int i)
{
	struct restore_proc *p = &r->procs[i];
	const struct cryo_img_task *t = &p->task;
	int h;

	p->creator = p->parent;
	if (p->parent < 0) {
		p->creator = 0;
		p->clone_parent = 1;
		if (t->exit_signal != r->procs[0].task.exit_signal)
			return cryo_fail(CRYO_EUNSUPP, "%stask %d has exit signal %u, the "
					 "root %d has %u: tasks whose parent is not in the image "
					 "must have the root's", WHO(r), t->pid, t->exit_signal,
					 r->procs[0].task.pid, r->procs[0].task.exit_signal);
	}
	if (t->sid == t->pid || t->sid == session_of(r, p->creator))
		return 0;
	h = restore_find_proc(r, t->sid);
	if (h < 0) {
		h = add_helper(r, t->sid, t->sid, p->creator, p->clone_parent, p->parent,
			       "a session");
		if (h < 0)
			return h;
		/* its members, created with CLONE_PARENT, get its exit signal */
		r->procs[h].task.exit_signal = p->clone_parent ?
						       (uint32_t)exit_signal_of(r, p->creator) :
						       t->exit_signal;
	} else if (!r->procs[h].helper || r->procs[h].parent != p->parent) {
		return cryo_fail(CRYO_EUNSUPP, "%stask %d belonged to session %d, which "
				 "neither its parent nor cryo is in and whose leader %s: not "
				 "supported", WHO(r), t->pid, t->sid,
				 r->procs[h].helper ? "is gone and its other members have "
						      "another parent" :
						      "is elsewhere in the tree");
	}
	if (r->procs[h].task.exit_signal != t->exit_signal)
		return cryo_fail(CRYO_EUNSUPP, "%stasks %d and %d of session %d (whose "
				 "leader is gone) have different exit signals: not supported", WHO(r),
				 t->pid, r->procs[h].task.pid, t->sid);
	p->creator = h;
	p->clone_parent = 1;
	return 0;
}

/* The group must exist in the session when the process joins it, after the barrier. */
static int plan_group(struct restore_ctx *r, int i)
{
	struct restore_proc *p = &r->procs[i];
	const struct cryo_img_task *t = &p->task;
	int leader, h;

	if (t->pgid == t->pid)
		return 0;
	leader = restore_find_proc(r, t->pgid);
	if (leader >= 0) {
		if (r->procs[leader].task.sid != t->sid)
			return cryo_fail(CRYO_EUNSUPP, "%stask %d: its process group %d "
					 "belongs to another session", WHO(r), t->pid, t->pgid);
		return 0;
	}
	/* a group of cryo's own session, outside the image: joined as it is */
	if (t->sid == getsid(0) && proc_task_state(t->pgid))
		return 0;
	if (t->sid == t->pid)
		return cryo_fail(CRYO_EUNSUPP, "%stask %d leads session %d but was in "
				 "group %d, whose leader is gone: not supported", WHO(r), t->pid, t->sid,
				 t->pgid);
	/* its creator's own child: reaped by it, whatever the members' parent */
	h = add_helper(r, t->pgid, t->sid, p->creator, 0, p->creator, "a process group");
	return h < 0 ? h : 0;
}

int restore_plan_tree(struct restore_ctx *r)
{
	uint32_t nr_image = r->nr_procs;
	struct restore_proc *procs;
	int ret;

	r->procs[0].creator = -1;
	r->nr_image_procs = nr_image;
	if (nr_image < 2)
		return 0;
	/* at most two helpers per process: its session's and its group's */
	procs = realloc(r->procs, 3 * nr_image * sizeof(*procs));
	if (!procs)
		return CRYO_EINTERNAL;
	r->procs = procs;
	for (uint32_t i = 1; i < nr_image; i++) {
		ret = plan_session(r, i);
		if (!ret)
			ret = plan_group(r, i);
		if (ret)
			return ret;
	}
	return 0;
}
