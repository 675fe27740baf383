/*
 * The string table builder: the checkpoint side adds every path and name
 * here and stores the returned offset (cryo_str_t); the table becomes the
 * STRINGS section. Offset 0 is always the empty string, so a zeroed struct
 * in the image means "no string" without any special case.
 *
 * Strings are deduplicated through a small open-addressing hash of offsets
 * (a process with 60000 mappings of the same few libraries must not make
 * the table, or the time to build it, grow with the number of mappings).
 */
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#define STRTAB_MIN_BYTES 256
#define STRTAB_MIN_SLOTS 64
/* Offsets must fit in cryo_str_t, and (cryo_str_t)-1 means failure. */
#define STRTAB_MAX_BYTES ((size_t)UINT32_MAX - 1)

static uint32_t str_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (len--) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

/* Slot of s, or of the empty slot where it would go. Slots hold offset + 1. */
static size_t find_slot(const struct strtab *t, const char *s, size_t len, uint32_t h)
{
	size_t mask = t->hash_slots - 1;
	size_t i = h & mask;

	for (;;) {
		uint32_t v = t->hash[i];

		if (!v)
			return i;
		if (!strncmp(t->data + v - 1, s, len + 1))
			return i;
		i = (i + 1) & mask;
	}
}

static int grow_hash(struct strtab *t)
{
	size_t slots = t->hash_slots ? 2 * t->hash_slots : STRTAB_MIN_SLOTS;
	uint32_t *old = t->hash;
	size_t old_slots = t->hash_slots;

	t->hash = calloc(slots, sizeof(*t->hash));
	if (!t->hash) {
		t->hash = old;
		return -1;
	}
	t->hash_slots = slots;
	for (size_t i = 0; i < old_slots; i++) {
		if (!old[i])
			continue;
		const char *s = t->data + old[i] - 1;
		size_t len = strlen(s);

		t->hash[find_slot(t, s, len, str_hash(s, len))] = old[i];
	}
	free(old);
	return 0;
}

static int reserve(struct strtab *t, size_t extra)
{
	size_t cap = t->cap ? t->cap : STRTAB_MIN_BYTES;
	char *p;

	if (extra > STRTAB_MAX_BYTES - t->len)
		return -1;
	if (t->len + extra <= t->cap)
		return 0;
	while (cap < t->len + extra)
		cap *= 2;
	p = realloc(t->data, cap);
	if (!p)
		return -1;
	t->data = p;
	t->cap = cap;
	return 0;
}

cryo_str_t strtab_add(struct strtab *t, const char *s)
{
	size_t len, slot;
	uint32_t h;

	if (!t->len) {
		if (reserve(t, 1))
			return (cryo_str_t)-1;
		t->data[0] = '\0';
		t->len = 1;
	}
	if (!s || !*s)
		return 0;
	/* Keep the load factor at or below one half. */
	if (2 * (t->hash_used + 1) > t->hash_slots && grow_hash(t))
		return (cryo_str_t)-1;
	len = strlen(s);
	h = str_hash(s, len);
	slot = find_slot(t, s, len, h);
	if (t->hash[slot])
		return t->hash[slot] - 1;
	if (reserve(t, len + 1))
		return (cryo_str_t)-1;

	cryo_str_t off = t->len;

	memcpy(t->data + off, s, len + 1);
	t->len += len + 1;
	t->hash[slot] = off + 1;
	t->hash_used++;
	return off;
}

void strtab_free(struct strtab *t)
{
	free(t->data);
	free(t->hash);
	memset(t, 0, sizeof(*t));
}
