/*
 * System V shared memory segments of the image (phase 40's shared memory
 * objects of kind SYSV), in cryo, around the restore:
 *
 *   prepare  before any task exists: each segment gets its shmid back. One
 *            still there with the same key and size and nobody attached
 *            (the job was killed after its checkpoint) is taken over; else it
 *            is created with that id (shm_next_id) and key. Owner, mode and
 *            SHM_LOCK as they were. Anything else holding the id or the key
 *            is a conflict, named.
 *   finish   once every process has attached it again: IPC_RMID for those
 *            that had been removed while attached.
 *   undo     after a failure: remove the segments cryo created.
 *
 * The root attaches every segment at its staging address, where phase 40
 * fills it (after punching out what a taken-over segment held), and each
 * restorer moves its own attachments into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/shm.h>
#include <unistd.h>

#include "restore/restore.h"
#include "util/util.h"

static int set_next_id(int id)
{
	char text[32];
	int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC), n, ok;

	if (fd < 0)
		return -errno;
	n = snprintf(text, sizeof(text), "%d", id);
	ok = write(fd, text, n) == n;
	close(fd);
	return ok ? 0 : -errno;
}

static int create_segment(struct restore_shmem *o)
{
	const struct cryo_img_shmem *s = &o->img;
	int id, err;

	if (s->sysv_key != IPC_PRIVATE && shmget(s->sysv_key, 0, 0) >= 0)
		return cryo_fail(CRYO_ECONFLICT, "restore: SysV segment %d: its key %#x is used by "
				 "segment %d", s->sysv_id, (unsigned)s->sysv_key,
				 shmget(s->sysv_key, 0, 0));
	err = set_next_id(s->sysv_id);
	if (err)
		return cryo_fail(CRYO_EPERM, "restore: SysV segment %d: setting shm_next_id: %s",
				 s->sysv_id, strerror(-err));
	id = shmget(s->sysv_key, s->file_size, IPC_CREAT | IPC_EXCL | s->mode);
	if (id < 0)
		return cryo_fail(CRYO_ERESTORE, "restore: SysV segment %d (key %#x): shmget: %s",
				 s->sysv_id, (unsigned)s->sysv_key, strerror(errno));
	o->sysv_created = 1;
	if (id != s->sysv_id) {
		shmctl(id, IPC_RMID, NULL);
		o->sysv_created = 0;
		return cryo_fail(CRYO_ECONFLICT, "restore: SysV segment %d came back as %d (taken "
				 "meanwhile?)", s->sysv_id, id);
	}
	return 0;
}

/* A segment left over from the checkpointed job itself: the same, unused. */
static int take_over(struct restore_shmem *o, const struct shmid_ds *ds)
{
	const struct cryo_img_shmem *s = &o->img;

	if (ds->shm_perm.__key != s->sysv_key || ds->shm_segsz != s->file_size ||
	    (ds->shm_perm.mode & SHM_DEST))
		return cryo_fail(CRYO_ECONFLICT, "restore: SysV segment id %d is in use by another "
				 "segment (key %#x, %zu bytes)", s->sysv_id,
				 (unsigned)ds->shm_perm.__key, (size_t)ds->shm_segsz);
	if (ds->shm_nattch)
		return cryo_fail(CRYO_ECONFLICT, "restore: SysV segment %d (key %#x) is attached "
				 "by %lu process(es), last %d", s->sysv_id, (unsigned)s->sysv_key,
				 (unsigned long)ds->shm_nattch, ds->shm_lpid);
	return 0;
}

int restore_sysv_prepare(struct restore_ctx *r)
{
	for (uint32_t k = 0; k < r->nr_shmems; k++) {
		struct restore_shmem *o = &r->shmems[k];
		struct shmid_ds ds;
		int ret;

		if (o->img.kind != CRYO_SHMEM_SYSV)
			continue;
		if (shmctl(o->img.sysv_id, IPC_STAT, &ds) == 0)
			ret = take_over(o, &ds);
		else if (errno == EINVAL || errno == EIDRM)
			ret = create_segment(o);
		else
			ret = cryo_fail(CRYO_EPERM, "restore: SysV segment %d: %s", o->img.sysv_id,
					strerror(errno));
		if (ret)
			return ret;
		memset(&ds, 0, sizeof(ds));
		ds.shm_perm.uid = o->img.sysv_uid;
		ds.shm_perm.gid = o->img.sysv_gid;
		ds.shm_perm.mode = o->img.mode;
		if (shmctl(o->img.sysv_id, IPC_SET, &ds) < 0 ||
		    ((o->img.sysv_flags & CRYO_SYSV_LOCKED) &&
		     shmctl(o->img.sysv_id, SHM_LOCK, NULL) < 0))
			return cryo_fail(CRYO_ERESTORE, "restore: SysV segment %d: setting owner, "
					 "mode or lock: %s", o->img.sysv_id, strerror(errno));
	}
	return 0;
}

int restore_sysv_finish(struct restore_ctx *r)
{
	for (uint32_t k = 0; k < r->nr_shmems; k++) {
		struct restore_shmem *o = &r->shmems[k];

		if (o->img.kind != CRYO_SHMEM_SYSV || !(o->img.sysv_flags & CRYO_SYSV_REMOVED))
			continue;
		if (shmctl(o->img.sysv_id, IPC_RMID, NULL) < 0)
			return cryo_fail(CRYO_ERESTORE, "restore: SysV segment %d: IPC_RMID: %s",
					 o->img.sysv_id, strerror(errno));
		o->sysv_created = 0;	/* gone with its last attachment */
	}
	return 0;
}

void restore_sysv_undo(struct restore_ctx *r)
{
	for (uint32_t k = 0; r->shmems && k < r->nr_shmems; k++)
		if (r->shmems[k].sysv_created)
			shmctl(r->shmems[k].img.sysv_id, IPC_RMID, NULL);
}
