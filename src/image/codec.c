/*
 * zstd and lz4 behind one small interface (codec.h). Contexts are
 * single-threaded: the checkpoint's page pipe runs one per compression
 * thread on whole chunks, which scales better than zstd's own workers
 * inside one chunk. The level defaults to 1; negative zstd levels trade
 * ratio for speed.
 */
#include "image/codec.h"

#define ZSTD_STATIC_LINKING_ONLY	/* ZSTD_estimateCCtxSize_usingCParams */
#include <lz4.h>
#include <stdlib.h>
#include <zstd.h>

#include "image/format.h"
#include "util/util.h"

#define ZSTD_DEFAULT_LEVEL 1

struct codec {
	int codec;
	int level;
	ZSTD_CCtx *zctx;
};

const char *codec_name(int codec)
{
	switch (codec) {
	case CRYO_CODEC_NONE:
		return "none";
	case CRYO_CODEC_ZSTD:
		return "zstd";
	case CRYO_CODEC_LZ4:
		return "lz4";
	}
	return "unknown";
}

struct codec *codec_new(int codec, int level)
{
	struct codec *c = xzalloc(sizeof(*c));

	if (!c)
		return NULL;
	c->codec = codec;
	c->level = level ? level : ZSTD_DEFAULT_LEVEL;
	if (codec == CRYO_CODEC_ZSTD) {
		c->zctx = ZSTD_createCCtx();
		if (!c->zctx) {
			free(c);
			cryo_log("cannot create a zstd context");
			return NULL;
		}
		ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_compressionLevel, c->level);
	} else if (codec != CRYO_CODEC_LZ4) {
		free(c);
		cryo_log("unknown compression %d", codec);
		return NULL;
	}
	return c;
}

void codec_free(struct codec *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->zctx);
	free(c);
}

struct codec *codec_new_like(const struct codec *c)
{
	return codec_new(c->codec, c->level);
}

size_t codec_context_bytes(const struct codec *c, size_t chunk)
{
	if (c->codec != CRYO_CODEC_ZSTD)
		return 16 << 10;	/* lz4's state, on the stack */
	return ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(c->level, chunk, 0));
}

size_t codec_bound(const struct codec *c, size_t n)
{
	return c->codec == CRYO_CODEC_ZSTD ? ZSTD_compressBound(n) :
					    (size_t)LZ4_compressBound((int)n);
}

size_t codec_compress(struct codec *c, void *dst, size_t cap, const void *src, size_t n)
{
	if (c->codec == CRYO_CODEC_ZSTD) {
		size_t r = ZSTD_compress2(c->zctx, dst, cap, src, n);
		return ZSTD_isError(r) ? 0 : r;
	}
	int r = LZ4_compress_default(src, dst, (int)n, (int)cap);
	return r > 0 ? (size_t)r : 0;
}

int codec_decompress(int codec, void *dst, size_t raw_len, const void *src, size_t n)
{
	if (codec == CRYO_CODEC_ZSTD) {
		size_t r = ZSTD_decompress(dst, raw_len, src, n);
		return !ZSTD_isError(r) && r == raw_len ? 0 : -1;
	}
	if (codec == CRYO_CODEC_LZ4) {
		int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw_len);
		return r >= 0 && (size_t)r == raw_len ? 0 : -1;
	}
	return -1;
}

struct codec_dctx {
	ZSTD_DCtx *z;
};

struct codec_dctx *codec_dctx_new(void)
{
	struct codec_dctx *d = xzalloc(sizeof(*d));

	if (d && !(d->z = ZSTD_createDCtx())) {
		free(d);
		d = NULL;
	}
	return d;
}

void codec_dctx_free(struct codec_dctx *d)
{
	if (!d)
		return;
	ZSTD_freeDCtx(d->z);
	free(d);
}

int codec_decompress_in(struct codec_dctx *d, int codec, void *dst, size_t raw_len,
			const void *src, size_t n)
{
	if (codec == CRYO_CODEC_ZSTD) {
		/* with its context given, a single-frame decompression allocates nothing */
		size_t r = ZSTD_decompressDCtx(d->z, dst, raw_len, src, n);
		return !ZSTD_isError(r) && r == raw_len ? 0 : -1;
	}
	return codec_decompress(codec, dst, raw_len, src, n);
}
