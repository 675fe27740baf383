/*
 * Memory contents for the benchmark programs (memhog, scale, bounds), so
 * that the bounds are measured on the very data cryo is timed on.
 *
 * Every page is a function of (seed, page index) alone: any program can
 * produce a given page again, in any order.
 *
 *	random	xorshift64 output: incompressible, the worst case
 *	zero	written with zeros: present (faulted in) but all zero
 *	text	words of a 256-word vocabulary in lines of varying length, with
 *		numbers: compresses like a typical heap or text buffer
 *		(zstd -1 about 3:1, lz4 about 2:1)
 *	sparse	random data in the first SPARSE_RUN_PAGES pages of every
 *		SPARSE_STRIDE_PAGES (4 MiB of every 64 MiB): large areas never
 *		touched, hence not present and never in an image
 */
#ifndef CRYO_BENCH_PATTERNS_H
#define CRYO_BENCH_PATTERNS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAT_PAGE_BYTES		4096UL
#define SPARSE_STRIDE_PAGES	16384UL	/* 64 MiB */
#define SPARSE_RUN_PAGES	1024UL	/* 4 MiB written at the start of each */

enum pattern { PAT_RANDOM, PAT_ZERO, PAT_TEXT, PAT_SPARSE, PAT_COUNT };
static const char *const pattern_names[PAT_COUNT] = { "random", "zero", "text", "sparse" };

/* The pattern named s, or -1. */
static inline int pattern_by_name(const char *s)
{
	for (int i = 0; i < PAT_COUNT; i++)
		if (!strcmp(s, pattern_names[i]))
			return i;
	return -1;
}

static inline int pattern_is_written(enum pattern pat, size_t page)
{
	return pat != PAT_SPARSE || page % SPARSE_STRIDE_PAGES < SPARSE_RUN_PAGES;
}

static inline uint64_t pat_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t pat_xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static const char *const pat_words[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
	"on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
	"an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
	"there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "she",
	"other", "its", "may", "these", "what", "them", "than", "some", "him", "time", "into",
	"only", "do", "out", "people", "could", "any", "then", "about", "first", "also",
	"new", "very", "two", "like", "our", "made", "years", "well", "after", "between",
	"system", "process", "memory", "page", "kernel", "thread", "signal", "file", "image",
	"restore", "checkpoint", "address", "buffer", "value", "table", "index", "count",
	"error", "status", "request", "response", "server", "client", "session", "user",
	"name", "type", "size", "length", "offset", "start", "end", "list", "node", "tree",
	"key", "data", "result", "state", "event", "queue", "lock", "cache", "block", "device",
	"network", "socket", "stream", "channel", "message", "header", "body", "field",
	"record", "entry", "object", "class", "method", "function", "return", "call", "stack",
	"frame", "pointer", "array", "string", "number", "integer", "float", "double", "char",
	"byte", "word", "line", "text", "input", "output", "read", "write", "open", "close",
	"create", "delete", "update", "insert", "select", "query", "database", "transaction",
	"commit", "rollback", "version", "config", "option", "parameter", "argument", "flag",
	"mode", "level", "limit", "range", "scope", "context", "handle", "resource", "service",
	"module", "package", "library", "interface", "protocol", "format", "encoding", "path",
	"directory", "volume", "partition", "sector", "cluster", "region", "segment", "area",
	"map", "set", "hash", "sort", "search", "match", "filter", "merge", "split", "join",
	"copy", "move", "swap", "load", "store", "fetch", "push", "pop", "peek", "wait",
	"notify", "wake", "sleep", "run", "stop", "pause", "resume", "kill", "exit", "fork",
	"spawn", "child", "parent", "group", "owner", "permission", "access", "security",
	"policy", "rule", "check", "verify", "test", "debug", "trace", "log", "warning",
	"info", "fatal", "panic", "abort", "retry", "timeout", "deadline",
};

/* Text: lines of 3 to 18 words, each line ending in a number 0..99999. */
static inline void pat_fill_text(uint8_t *p, uint64_t x)
{
	size_t off = 0, words_left = 0;
	char num[16];

	while (off < PAT_PAGE_BYTES) {
		uint64_t r = pat_xorshift64(&x);
		const char *s;
		size_t n;

		if (!words_left) {
			words_left = 3 + r % 16;
			r >>= 8;
		}
		if (--words_left) {
			s = pat_words[r & 255];
			n = strlen(s);
			if (off + n < PAT_PAGE_BYTES) {
				memcpy(p + off, s, n);
				p[off + n] = ' ';
			} else {
				memcpy(p + off, s, PAT_PAGE_BYTES - off);
			}
			off += n + 1;
		} else {
			unsigned v = (unsigned)((r >> 8) % 100000);
			int k = 0;

			do
				num[k++] = (char)('0' + v % 10);
			while ((v /= 10));
			while (k && off < PAT_PAGE_BYTES)
				p[off++] = (uint8_t)num[--k];
			if (off < PAT_PAGE_BYTES)
				p[off++] = '\n';
		}
	}
}

/* Write page number `page` of the pattern at p (for untouched pages: nothing). */
static inline void pattern_fill_page(uint8_t *p, size_t page, enum pattern pat, uint64_t seed)
{
	uint64_t x = pat_splitmix64(seed ^ (page * 0x2545f4914f6cdd1dULL)) | 1;

	if (!pattern_is_written(pat, page))
		return;
	switch (pat) {
	case PAT_ZERO:
		memset(p, 0, PAT_PAGE_BYTES);
		break;
	case PAT_TEXT:
		pat_fill_text(p, x);
		break;
	case PAT_RANDOM:
	case PAT_SPARSE:
	case PAT_COUNT:
		for (size_t w = 0; w < PAT_PAGE_BYTES / sizeof(x); w++) {
			uint64_t v = pat_xorshift64(&x);

			memcpy(p + w * sizeof(v), &v, sizeof(v));
		}
		break;
	}
}

/* Fill bytes (a multiple of pages) at mem, page 0 being first_page. */
static inline void pattern_fill(uint8_t *mem, size_t bytes, size_t first_page, enum pattern pat,
				uint64_t seed)
{
	for (size_t i = 0; i < bytes / PAT_PAGE_BYTES; i++)
		pattern_fill_page(mem + i * PAT_PAGE_BYTES, first_page + i, pat, seed);
}

/*
 * FNV-1a over 64-bit words of the written pages, chained from h. *stray
 * (if check_untouched) counts never-written pages that do not read as
 * zeros. Untouched pages are only read at verification, so that a
 * checkpoint sees them as never faulted in.
 */
static inline uint64_t pattern_hash(const uint8_t *mem, size_t bytes, size_t first_page,
				    enum pattern pat, uint64_t h, int check_untouched,
				    size_t *stray)
{
	uint64_t w;

	for (size_t i = 0; i < bytes / PAT_PAGE_BYTES; i++) {
		const uint8_t *p = mem + i * PAT_PAGE_BYTES;

		if (pattern_is_written(pat, first_page + i)) {
			for (size_t off = 0; off < PAT_PAGE_BYTES; off += sizeof(w)) {
				memcpy(&w, p + off, sizeof(w));
				h = (h ^ w) * 0x100000001b3ULL;
			}
		} else if (check_untouched) {
			for (size_t off = 0; off < PAT_PAGE_BYTES; off += sizeof(w)) {
				memcpy(&w, p + off, sizeof(w));
				if (w) {
					(*stray)++;
					break;
				}
			}
		}
	}
	return h;
}

_Static_assert(sizeof(pat_words) / sizeof(pat_words[0]) == 256, "256 words");

#define PATTERN_HASH_INIT 0xcbf29ce484222325ULL

#endif
