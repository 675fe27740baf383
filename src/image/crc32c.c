/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum of
 * every header and payload of an image. crc32c(0, buf, len) is the standard
 * CRC-32C (pre- and post-inverted: crc32c(0, "123456789", 9) == 0xe3069283)
 * and crc32c(crc32c(0, a, m), b, n) == crc32c(0, a || b, m + n).
 *
 * Page data of multi-GiB images goes through here twice (write, validate),
 * so speed matters. With SSE4.2 the crc32 instruction does 8 bytes per
 * instruction but has a 3-cycle latency, so one dependent chain runs at a
 * third of what the CPU can do: we run three independent chains over three
 * adjacent blocks and merge them afterwards. Merging needs "the CRC state
 * after feeding N zero bytes", a linear map on 32 bits that we precompute as
 * four 256-entry lookup tables per block size (Mark Adler's method).
 * Without SSE4.2 (or with CRYO_CRC32C_SOFTWARE set in the environment, for
 * tests), slicing-by-8 tables do about 1 byte per cycle.
 */
#include <nmmintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#define CRC32C_POLY 0x82f63b78u

/* Block sizes of the three-way interleaved loop (must be multiples of 8). */
#define LONG_BLOCK_BYTES 8192
#define SHORT_BLOCK_BYTES 256

static uint32_t sw_table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static int have_sse42;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Raw (not inverted) byte-wise update, for table construction only. */
static uint32_t crc_zeros_slow(uint32_t crc, size_t nr_zero_bytes)
{
	while (nr_zero_bytes--)
		crc = (crc >> 8) ^ sw_table[0][crc & 0xff];
	return crc;
}

/*
 * Appending zero bytes is linear over GF(2) in the CRC state: compute the
 * image of each of the 32 basis vectors once, then every table entry is an
 * XOR of those images.
 */
static void build_shift_table(uint32_t table[4][256], size_t nr_zero_bytes)
{
	uint32_t basis[32];

	for (int bit = 0; bit < 32; bit++)
		basis[bit] = crc_zeros_slow(1u << bit, nr_zero_bytes);
	for (int k = 0; k < 4; k++) {
		for (uint32_t n = 0; n < 256; n++) {
			uint32_t v = n << (8 * k), out = 0;

			for (int bit = 0; bit < 32; bit++)
				if (v & (1u << bit))
					out ^= basis[bit];
			table[k][n] = out;
		}
	}
}

static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		sw_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = sw_table[0][n];

		for (int k = 1; k < 8; k++) {
			c = (c >> 8) ^ sw_table[0][c & 0xff];
			sw_table[k][n] = c;
		}
	}
	build_shift_table(shift_long, LONG_BLOCK_BYTES);
	build_shift_table(shift_short, SHORT_BLOCK_BYTES);
	__builtin_cpu_init();
	/* The variable lets tests exercise the fallback on any CPU. */
	have_sse42 = __builtin_cpu_supports("sse4.2") && !secure_getenv("CRYO_CRC32C_SOFTWARE");
}

static inline uint32_t crc_shift(uint32_t table[4][256], uint32_t crc)
{
	return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^
	       table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));	/* unaligned-safe; compiles to one mov */
	return v;
}

/* Slicing-by-8 on the raw state. */
static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t v = load64(p) ^ crc;

		crc = sw_table[7][v & 0xff] ^ sw_table[6][(v >> 8) & 0xff] ^
		      sw_table[5][(v >> 16) & 0xff] ^ sw_table[4][(v >> 24) & 0xff] ^
		      sw_table[3][(v >> 32) & 0xff] ^ sw_table[2][(v >> 40) & 0xff] ^
		      sw_table[1][(v >> 48) & 0xff] ^ sw_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

/* Three chains over blocks of block_bytes each, merged with the shift table. */
__attribute__((target("sse4.2")))
static inline uint64_t crc_3way(uint64_t crc0, const unsigned char **pp, size_t *lenp,
				size_t block_bytes, uint32_t table[4][256])
{
	const unsigned char *p = *pp;
	size_t len = *lenp;

	while (len >= 3 * block_bytes) {
		uint64_t crc1 = 0, crc2 = 0;
		const unsigned char *end = p + block_bytes;

		do {
			crc0 = _mm_crc32_u64(crc0, load64(p));
			crc1 = _mm_crc32_u64(crc1, load64(p + block_bytes));
			crc2 = _mm_crc32_u64(crc2, load64(p + 2 * block_bytes));
			p += 8;
		} while (p < end);
		crc0 = crc_shift(table, (uint32_t)crc0) ^ crc1;
		crc0 = crc_shift(table, (uint32_t)crc0) ^ crc2;
		p += 2 * block_bytes;
		len -= 3 * block_bytes;
	}
	*pp = p;
	*lenp = len;
	return crc0;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t crc0 = crc;

	while (len && ((uintptr_t)p & 7)) {
		crc0 = _mm_crc32_u8((uint32_t)crc0, *p++);
		len--;
	}
	crc0 = crc_3way(crc0, &p, &len, LONG_BLOCK_BYTES, shift_long);
	crc0 = crc_3way(crc0, &p, &len, SHORT_BLOCK_BYTES, shift_short);
	while (len >= 8) {
		crc0 = _mm_crc32_u64(crc0, load64(p));
		p += 8;
		len -= 8;
	}
	while (len--)
		crc0 = _mm_crc32_u8((uint32_t)crc0, *p++);
	return (uint32_t)crc0;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&init_once, crc32c_init);
	crc = ~crc;
	if (have_sse42)
		crc = crc32c_hw(crc, p, len);
	else
		crc = crc32c_sw(crc, p, len);
	return ~crc;
}
