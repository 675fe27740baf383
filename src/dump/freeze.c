/*
 * Freeze every thread of a process, race-free: seize and interrupt every
 * thread listed in /proc/PID/task, wait until all have stopped, and list
 * again; a thread created meanwhile by a not-yet-stopped thread shows up in
 * the next round. When a round finds nothing new, nothing can run.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "dump/dump.h"
#include "kernel/creds.h"
#include "util/util.h"

#define MAX_THREADS 32768

static int known(const struct dump_ctx *c, pid_t tid)
{
	for (int i = 0; i < c->nr_threads; i++)
		if (c->threads[i].tid == tid)
			return 1;
	return 0;
}

/* Seize the tids not seen before; returns how many were new, or < 0. */
static int seize_new_threads(struct dump_ctx *c, int group_stopped)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int added = 0, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", c->pid);
	d = opendir(path);
	if (!d)
		return cryo_fail(CRYO_ENOPROC, "process %d: no such process", c->pid);
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || known(c, tid))
			continue;
		if (c->nr_threads == MAX_THREADS) {
			ret = cryo_fail(CRYO_EUNSUPP, "process %d has more than %d threads", c->pid,
					MAX_THREADS);
			break;
		}
		struct frozen_task *t = realloc(c->threads, (c->nr_threads + 1) * sizeof(*t));
		if (!t) {
			ret = CRYO_EINTERNAL;
			break;
		}
		c->threads = t;
		memset(&t[c->nr_threads], 0, sizeof(*t));
		t[c->nr_threads].tid = tid;
		ret = ptrace_seize_interrupt(&t[c->nr_threads], group_stopped);
		if (ret == CRYO_ENOPROC && tid != c->pid) {
			ret = 0;	/* the thread exited meanwhile */
			continue;
		}
		c->nr_threads++;
		if (ret)
			break;
		added++;
	}
	closedir(d);
	return ret ? ret : added;
}

int freeze_process(struct dump_ctx *c)
{
	char state = proc_task_state(c->pid);
	int group_stopped, first = 0, n;

	if (state == 0)
		return cryo_fail(CRYO_ENOPROC, "process %d: no such process", c->pid);
	if (state == 'Z' || state == 'X')
		return cryo_fail(CRYO_EUNSUPP, "process %d is a zombie", c->pid);
	/* before touching it: a restricted cryo acts for its caller only */
	n = creds_check_live(c->pid, c->pid);
	if (n == CRYO_ENOPROC)
		return cryo_fail(CRYO_ENOPROC, "process %d: no such process", c->pid);
	if (n)
		return n;
	group_stopped = state == 'T';
	/* the main thread first, so it is threads[0] */
	c->threads = xzalloc(sizeof(*c->threads));
	if (!c->threads)
		return CRYO_EINTERNAL;
	c->threads[0].tid = c->pid;
	c->nr_threads = 1;
	n = ptrace_seize_interrupt(&c->threads[0], group_stopped);
	if (n == CRYO_ENOPROC)
		return cryo_fail(CRYO_ENOPROC, "process %d: no such process", c->pid);
	if (n)
		return n;
	do {
		n = seize_new_threads(c, group_stopped);
		if (n < 0)
			return n;
		for (int i = first; i < c->nr_threads; i++) {
			int ret = ptrace_wait_frozen(&c->threads[i]);

			if (ret == CRYO_ENOPROC && i > 0) {
				/* exited before stopping: forget it */
				ptrace_detach_dead(&c->threads[i]);
				c->threads[i] = c->threads[--c->nr_threads];
				i--;
				continue;
			}
			if (ret)
				return ret;
		}
		first = c->nr_threads;
	} while (n > 0);
	return 0;
}

void thaw_process(struct dump_ctx *c)
{
	for (int i = 0; i < c->nr_threads; i++)
		ptrace_thaw(&c->threads[i]);
}

void kill_process(struct dump_ctx *c)
{
	kill(c->pid, SIGKILL);
	for (int i = 0; i < c->nr_threads; i++)
		ptrace_detach_dead(&c->threads[i]);
}
