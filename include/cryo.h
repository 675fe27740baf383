/*
 * libcryo: checkpoint a running Linux process to an image file and restore
 * it later with the same PID, memory, registers, signals and descriptors.
 *
 * This header is the whole public API. The `cryo` command is a thin layer
 * over it: it parses options, fills the option structs below and maps the
 * returned status to the exit codes documented in docs/cryo.1.
 *
 * Every function returns 0 on success or a negative CRYO_E* status. The
 * reason is reported, one line naming the object at fault, through the log
 * callback (stderr by default).
 */
#ifndef CRYO_H
#define CRYO_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CRYO_VERSION "0.1.0"

/* Status codes; the CLI exits with the absolute value. */
enum cryo_status {
	CRYO_OK = 0,
	CRYO_EUSAGE = -64,	 /* bad command line */
	CRYO_EIMAGE = -65,	 /* image corrupt, truncated, wrong version or arch */
	CRYO_ENOIMAGE = -66,	 /* image cannot be opened */
	CRYO_ENOPROC = -67,	 /* no such process */
	CRYO_EPERM = -68,	 /* not permitted to trace or restore */
	CRYO_EUNSUPP = -69,	 /* state cryo cannot save or restore exactly */
	CRYO_EINTERNAL = -70,	 /* unexpected failure (a bug or the kernel said no) */
	CRYO_ECONFLICT = -71,	 /* an ID of the image is in use */
	CRYO_ENOFEATURE = -72,	 /* the kernel lacks a feature cryo needs */
	CRYO_EWRITE = -73,	 /* the image could not be written completely */
	CRYO_ERESTORE = -74,	 /* restore failed; every task created was killed */
};

/* What happens to the target once its image is safely on disk. */
enum cryo_after {
	CRYO_LEAVE_RUNNING = 0,
	CRYO_KILL,
	CRYO_STOP,
};

/* Which processes a checkpoint takes, as BLCR's cr_checkpoint had it. */
enum cryo_scope {
	CRYO_SCOPE_TREE = 0,	/* the process and all its descendants */
	CRYO_SCOPE_PID,		/* that process alone (refused if it has children) */
	CRYO_SCOPE_PGID,	/* every process of process group `pid` */
	CRYO_SCOPE_SID,		/* every process of session `pid` */
};

/* Figures a checkpoint or restore reports when asked (opts->stats). */
struct cryo_stats {
	uint64_t frozen_ns;	/* how long the targets were stopped */
	uint64_t total_ns;	/* the whole operation */
	uint64_t image_bytes;	/* image size */
	uint64_t pages;		/* memory pages saved or loaded */
	uint32_t processes, threads;
	uint64_t precopy_pages;	/* checkpoint: pages copied before the final freeze */
};

/* Copy memory while the tree runs, then only what changed while frozen. */
enum cryo_precopy {
	CRYO_PRECOPY_AUTO = 0,	/* when the tree holds enough anonymous memory */
	CRYO_PRECOPY_NEVER,
	CRYO_PRECOPY_ALWAYS,
};

struct cryo_checkpoint_opts {
	pid_t pid;		/* the process (root of the tree), or the PGID/SID */
	enum cryo_scope scope;
	const char *output;	/* image path */
	enum cryo_after after;
	int no_sync;		/* skip fsync of image and directory (faster, unsafe) */
	int compress;		/* 0 none, 1 zstd, 2 lz4 (page data, per chunk) */
	int compress_level;	/* zstd level; 0 = default */
	int external;		/* pipes/FIFOs leading outside on fds > 2: save as external */
	struct cryo_stats *stats;	/* filled on success if not NULL */
	enum cryo_precopy precopy;
};

/* At restore, descriptor `fd` of task `pid` (external in the image) becomes a copy of ours, `from`. */
struct cryo_inherit_fd {
	pid_t pid;
	int fd;
	int from;
};

struct cryo_restore_opts {
	const char *image;
	int detach;		/* restored process is reparented to init/subreaper */
	const struct cryo_inherit_fd *inherit;	/* for external descriptors */
	int nr_inherit;
	int hangup_external;	/* external descriptors without `inherit`: a pipe whose
				 * other end is closed (EOF, EPIPE) */
	struct cryo_stats *stats;	/* filled on success if not NULL */
};

/* Log sink for error and progress lines (without trailing newline). */
typedef void (*cryo_log_fn)(const char *line, void *opaque);
void cryo_set_log(cryo_log_fn fn, void *opaque);

int cryo_checkpoint(const struct cryo_checkpoint_opts *opts);

/*
 * Restore the image. On success *pid_out holds the restored PID and the
 * process is running (or stopped, if it was stopped at checkpoint). Without
 * opts->detach the caller is the parent of the restored process and should
 * wait for it.
 */
int cryo_restore(const struct cryo_restore_opts *opts, pid_t *pid_out);

/* Print what the image holds, as text or JSON. */
int cryo_inspect(const char *image, FILE *out, int json);

/* Probe the kernel features cryo needs; print one line per feature. */
int cryo_check(FILE *out);

const char *cryo_status_name(int status);

#endif
