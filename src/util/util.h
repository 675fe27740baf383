/*
 * Small helpers used everywhere: the log sink, a growable buffer, reading a
 * whole (/proc) file, and error-return conventions.
 *
 * Internal functions return 0 or a negative CRYO_E* status (include/cryo.h)
 * after logging one line that names the object at fault; callers only add
 * context when they know more.
 */
#ifndef CRYO_UTIL_H
#define CRYO_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cryo.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE_BYTES 4096UL
#define PAGE_ALIGN_DOWN(x) ((x) & ~(PAGE_SIZE_BYTES - 1))
#define PAGE_ALIGN_UP(x) (((x) + PAGE_SIZE_BYTES - 1) & ~(PAGE_SIZE_BYTES - 1))

/* Log one line through the sink set by cryo_set_log(); "cryo: " is added. */
void cryo_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and return status, for "return cryo_fail(CRYO_EIMAGE, ...)". */
int cryo_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Verbose progress, printed only when CRYO_DEBUG is set in the environment. */
void cryo_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable byte buffer (always NUL-terminated, so usable as a string). */
struct buf {
	char *data;
	size_t len, cap;
};
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

/* Read a whole file (e.g. under /proc) into b; returns 0 or -errno. */
int read_whole_file(const char *path, struct buf *b);
/* Same, path built from a format. */
int read_proc(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write/read exactly n bytes (retrying short transfers); 0 or -errno. */
int write_full(int fd, const void *p, size_t n);
int pread_full(int fd, void *p, size_t n, off_t off);

/* Allocation that logs and returns NULL on failure. */
void *xzalloc(size_t n);

uint64_t now_ns(void);		/* CLOCK_MONOTONIC */



/*
 * Test-only fault injection: when the environment variable CRYO_FAULT names
 * this point, log it and return CRYO_EINTERNAL (else 0); "point:kill"
 * makes cryo SIGKILL itself there instead. Points are listed by
 * "CRYO_FAULT=list cryo check" and in docs/cryo.1, and walked by the tests.
 */
int fault_point(const char *name);
/* Print every fault point, one per line. */
void fault_list(FILE *out);

#endif
