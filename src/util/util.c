/*
 * Implementation of the helpers declared in util.h. The log sink is global
 * to libcryo: the CLI points it at stderr, embedders at their own logger.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

static void default_log(const char *line, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "%s\n", line);
}

static cryo_log_fn log_fn = default_log;
static void *log_opaque;

void cryo_set_log(cryo_log_fn fn, void *opaque)
{
	log_fn = fn ? fn : default_log;
	log_opaque = opaque;
}

static void vlog(const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "cryo: ");

	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	log_fn(line, log_opaque);
}

void cryo_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

int cryo_fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	return status;
}

void cryo_debug(const char *fmt, ...)
{
	static int enabled = -1;
	va_list ap;

	if (enabled < 0)
		enabled = secure_getenv("CRYO_DEBUG") != NULL;
	if (!enabled)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	char *p;

	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, n))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int read_whole_file(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = 0;

	b->len = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		if (buf_reserve(b, 4096)) {
			ret = -ENOMEM;
			break;
		}
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		b->len += n;
	}
	if (b->data)
		b->data[b->len] = 0;
	close(fd);
	return ret;
}

int read_proc(struct buf *b, const char *fmt, ...)
{
	char path[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return read_whole_file(path, b);
}

int write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		c += w;
		n -= w;
	}
	return 0;
}

int pread_full(int fd, void *p, size_t n, off_t off)
{
	char *c = p;

	while (n) {
		ssize_t r = pread(fd, c, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		c += r;
		n -= r;
		off += r;
	}
	return 0;
}

void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		cryo_log("out of memory allocating %zu bytes", n);
	return p;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Every point, in the order a checkpoint or restore reaches them. */
static const char *const fault_points[] = {
	"checkpoint:precopy-armed", "checkpoint:precopy-copy", "checkpoint:frozen",
	"checkpoint:collect", "checkpoint:precopy-final", "checkpoint:injected", "checkpoint:pages",
	"checkpoint:write", "checkpoint:committed",
	"restore:tree", "restore:files", "restore:memory", "restore:resume",
};

void fault_list(FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(fault_points); i++)
		fprintf(out, "%s\n", fault_points[i]);
}

int fault_point(const char *name)
{
	const char *want = secure_getenv("CRYO_FAULT");
	size_t n = strlen(name);

	if (!want || strncmp(want, name, n))
		return 0;
	/* "point:kill": die right here, as if killed by the user or the OOM killer */
	if (!strcmp(want + n, ":kill"))
		kill(getpid(), SIGKILL);
	if (want[n])
		return 0;
	return cryo_fail(CRYO_EINTERNAL, "fault injected at %s (CRYO_FAULT)", name);
}
