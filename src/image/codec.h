/*
 * Compression of page data, one chunk at a time: a damaged chunk is caught
 * by its section checksum and never affects another. A context is used by
 * one thread at a time; parallel compression takes one context per thread
 * (codec_new_like). Both codecs decompress straight into the buffer given.
 */
#ifndef CRYO_IMAGE_CODEC_H
#define CRYO_IMAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct codec;

/* NULL with a log line on failure; codec is enum cryo_codec, level 0 the default. */
struct codec *codec_new(int codec, int level);
/* Another context with the same codec and level. */
struct codec *codec_new_like(const struct codec *c);
/* About how much memory one context takes to compress chunks of that size. */
size_t codec_context_bytes(const struct codec *c, size_t chunk);
void codec_free(struct codec *c);
/* Worst-case output size for n input bytes. */
size_t codec_bound(const struct codec *c, size_t n);
/* Compress src into dst (of codec_bound() bytes); returns the length or 0. */
size_t codec_compress(struct codec *c, void *dst, size_t cap, const void *src, size_t n);
/* Decompress exactly raw_len bytes; 0 on success, -1 if the data is bad. */
int codec_decompress(int codec, void *dst, size_t raw_len, const void *src, size_t n);
const char *codec_name(int codec);

/*
 * A decompression context made ahead, for threads that must not allocate
 * (restore's decompression threads have no C library state of their own):
 * codec_decompress_in() only computes.
 */
struct codec_dctx;
struct codec_dctx *codec_dctx_new(void);
void codec_dctx_free(struct codec_dctx *d);
int codec_decompress_in(struct codec_dctx *d, int codec, void *dst, size_t raw_len,
			const void *src, size_t n);

#endif
