/*
 * Reading and writing cryo images (layout in format.h).
 *
 * The writer appends sections to a temporary file next to the final path
 * (mode 0600), and only imgw_commit() writes the index and footer, fsyncs
 * the file, renames it into place and fsyncs the directory: a crash or a
 * failed checkpoint never leaves a file that looks like a valid image.
 *
 * The reader treats every byte as hostile. imgr_open() checks the header,
 * footer, index and the CRC of every section (page data included) before it
 * returns, so a caller can rely on checksums and bounds, but must still check
 * the meaning of what it loads (addresses, counts, fd numbers).
 */
#ifndef CRYO_IMAGE_H
#define CRYO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

struct img_writer;

/* Create path's temporary sibling; xfeatures and flags go into the file header. */
int imgw_open(struct img_writer **w, const char *path, uint64_t xfeatures, uint64_t flags);
/* Append one section whose payload is in memory. */
int imgw_section(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
		 uint32_t entry_count, const void *payload, uint64_t len);
/* imgw_section() with the payload's CRC-32C already computed (by another thread). */
int imgw_section_crc(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
		     uint32_t entry_count, const void *payload, uint64_t len, uint32_t payload_crc);
/*
 * Page data: the payload starts on a page boundary (PAD section before it)
 * if it is at least CRYO_IMG_PAGES_ALIGN_MIN long.
 */
int imgw_section_aligned(struct img_writer *w, uint32_t type, uint64_t id, uint32_t entry_size,
			 uint32_t entry_count, const void *payload, uint64_t len);
/* Same, with the payload's CRC-32C already computed by the caller (page data). */
int imgw_section_aligned_crc(struct img_writer *w, uint32_t type, uint64_t id,
			     uint32_t entry_size, uint32_t entry_count, const void *payload,
			     uint64_t len, uint32_t payload_crc);
/*
 * Write index and footer, fsync (unless no_sync), rename into place.
 * Consumes w, successful or not (on failure the temporary file is removed).
 */
int imgw_commit(struct img_writer *w, int no_sync);
/* Remove the temporary file and free w (also fine after a failed imgw_section). */
void imgw_abort(struct img_writer *w);
uint64_t imgw_bytes_written(const struct img_writer *w);

struct img_reader;

/* Open and fully validate; CRYO_ENOIMAGE / CRYO_EIMAGE with one log line. */
int imgr_open(struct img_reader **r, const char *path);
/*
 * IMGR_DEFER_PAGE_DATA: everything but the payloads of PAGES and ZPAGES
 * sections is validated; the caller reads those only once, straight where
 * they go, and must check each against imgr_payload_crc() before using it
 * (a restore does: it saves reading gigabytes twice).
 */
#define IMGR_DEFER_PAGE_DATA 1u
int imgr_open_flags(struct img_reader **r, const char *path, unsigned flags);
/* The CRC-32C the header of section i announces for its payload. */
uint32_t imgr_payload_crc(const struct img_reader *r, size_t i);
/* Log "checksum mismatch" for section i, naming the image; returns CRYO_EIMAGE. */
int imgr_payload_crc_mismatch(const struct img_reader *r, size_t i);
void imgr_close(struct img_reader *r);
const struct cryo_file_header *imgr_header(const struct img_reader *r);
int imgr_fd(const struct img_reader *r);
uint64_t imgr_file_size(const struct img_reader *r);

/* The index, in file order (excluding the INDEX section itself). */
size_t imgr_nr_sections(const struct img_reader *r);
const struct cryo_img_index_entry *imgr_section(const struct img_reader *r, size_t i);
/* File offset of the payload of section i. */
uint64_t imgr_payload_offset(const struct img_reader *r, size_t i);
/* First section of that type (and id, unless any_id) at or after index from; -1 if none. */
long imgr_find(const struct img_reader *r, uint32_t type, uint64_t id, int any_id, size_t from);

/*
 * Load a table section as an array of *count entries of want_size bytes
 * each: longer entries (newer minor version) are cut, shorter ones are
 * zero-extended. Returns malloc'd memory (free()) or NULL with a log line.
 * A section of another type, a zero entry_size or entry_size * entry_count
 * != length is rejected as corrupt.
 */
void *imgr_load_table(struct img_reader *r, size_t i, uint32_t want_size, uint32_t *count);
/* Load a whole payload (blobs, strings); NULL with a log line on failure. */
void *imgr_load_blob(struct img_reader *r, size_t i, uint64_t *len);

/* String from the STRINGS section; NULL if off is out of range or unterminated. */
const char *imgr_str(const struct img_reader *r, cryo_str_t off);

/* "PAGES", "VMA", ... for messages; "unknown" for types this cryo does not know. */
const char *img_section_type_name(uint32_t type);

/* CRC-32C (Castagnoli), hardware-accelerated where the CPU allows. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/*
 * String table builder used by the checkpoint side (zero-initialise it).
 * hash/hash_slots/hash_used are private to strtab.c (deduplication index).
 */
struct strtab {
	char *data;
	size_t len, cap;
	uint32_t *hash;
	size_t hash_slots, hash_used;
};
/* Add s (deduplicated); returns its offset, or (cryo_str_t)-1 on ENOMEM. */
cryo_str_t strtab_add(struct strtab *t, const char *s);
void strtab_free(struct strtab *t);

#endif
