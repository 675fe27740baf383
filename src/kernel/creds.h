/*
 * Who cryo acts for. Root (real, effective and saved uid 0, not started
 * through a privilege-raising exec) may checkpoint and restore anything the
 * kernel lets it. Anyone else runs cryo "restricted": typically a cryo
 * binary given cap_checkpoint_restore with setcap, so cryo holds more
 * privilege than its caller. Then cryo keeps only that capability, and only
 * touches processes and images whose credentials are exactly the caller's
 * (docs/security.md).
 */
#ifndef CRYO_KERNEL_CREDS_H
#define CRYO_KERNEL_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/format.h"

struct creds_caller {
	int restricted;		/* acting for a user: check every target and image */
	int raised;		/* started through a privilege-raising exec (AT_SECURE) */
	uid_t uid;
	gid_t gid;
	uint32_t ngroups;
	uint32_t groups[CRYO_MAX_GROUPS];	/* sorted */
	uint64_t caps;		/* capabilities the caller itself holds */
	uint64_t cap_inh, cap_bnd;
	uint32_t securebits;	/* without SECBIT_KEEP_CAPS (exec clears it) */
	int no_new_privs;
};

/*
 * Find out who the caller is; when restricted, drop every capability but
 * CAP_CHECKPOINT_RESTORE (so files are opened with the caller's rights).
 * Idempotent. Fails (CRYO_EPERM) for a setuid or setgid installation.
 */
int creds_init(void);
const struct creds_caller *creds_caller(void);

/*
 * Would a process with these credentials hold something the caller does
 * not (or differ from the caller's so that a restore could not set them
 * without privilege)? Returns 0, or 1 with the first difference in why.
 * at_checkpoint also refuses a process that is not dumpable.
 */
int creds_mismatch(const struct cryo_img_task *t, int at_checkpoint, char *why, size_t len);

/* Checkpoint: the live task tid of process pid, from /proc, before and after freezing. */
int creds_check_live(pid_t pid, pid_t tid);

#endif
