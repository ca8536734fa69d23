/*
 * check_zcomp.c - unit tests for compressors/.
 *
 * Almost every test is a loop test run once per row of zcomp_backends()
 * (_i is the row).  Buffers handed to decompression are allocated at
 * their exact size, so the sanitizer build catches any read or write out
 * of bounds; compression outputs also carry a canary tail, so the plain
 * build catches overruns too.  Random data comes from a fixed-seed
 * generator: a failure reproduces exactly.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "compressors/zcomp.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

/* Comfortably above every backend's worst case for ZCOMP_MAX_SRC bytes. */
#define ROOM		(2 * ZCOMP_MAX_SRC + 256)
#define CANARY_LEN	64
#define CANARY		0xa5
#define FUZZ_ROUNDS	2000

enum kind { K_TEXT, K_MIXED, K_RANDOM, K_ZERO, K_NKINDS };

/* ---- helpers ------------------------------------------------------ */

static const struct zcomp_backend *backend(int i)
{
	return zcomp_backends()[i];
}

static size_t rnd_below(uint64_t *s, size_t n)
{
	return n ? (size_t)(tu_rand(s) % n) : 0;
}

static void fill_text(unsigned char *buf, size_t len, unsigned variant)
{
	static const char words[] =
		"zram creates RAM based block devices named /dev/zramN. "
		"Pages written to these disks are compressed and stored in "
		"memory itself. These disks allow very fast I/O and "
		"compression provides good amounts of memory savings. ";
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)words[(i + variant) %
					     (sizeof(words) - 1)];
	/* A little variety so the stream is not one long match. */
	for (i = variant % 97; i < len; i += 97 + variant % 13)
		buf[i] = (unsigned char)('0' + (i / 97) % 10);
}

/* Runs, copies of earlier bytes and noise, like real page contents. */
static void fill_mixed(uint64_t *s, unsigned char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = 1 + rnd_below(s, 200);

		if (n > len - i)
			n = len - i;
		switch (rnd_below(s, 3)) {
		case 0:
			memset(buf + i, (int)rnd_below(s, 256), n);
			break;
		case 1:
			if (i >= n) {
				memmove(buf + i, buf + rnd_below(s, i - n + 1),
					n);
				break;
			}
			/* fall through */
		default:
			tu_fill_random(buf + i, n, s);
			break;
		}
		i += n;
	}
}

static void fill(enum kind k, uint64_t *s, unsigned char *buf, size_t len)
{
	switch (k) {
	case K_TEXT:
		fill_text(buf, len, (unsigned)rnd_below(s, 1000));
		break;
	case K_MIXED:
		fill_mixed(s, buf, len);
		break;
	case K_RANDOM:
		tu_fill_random(buf, len, s);
		break;
	default:
		memset(buf, 0, len);
		break;
	}
}

/* malloc of at least one byte, so a zero length still gets a pointer. */
static void *xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	return p;
}

static void *xdup(const void *src, size_t len)
{
	void *p = xmalloc(len);

	if (len)
		memcpy(p, src, len);
	return p;
}

static struct zcomp_ctx *ctx_new(const struct zcomp_backend *be, int level)
{
	struct zcomp_ctx *ctx = NULL;

	ck_assert_int_eq(zcomp_ctx_create(be, level, &ctx), 0);
	ck_assert_ptr_nonnull(ctx);
	return ctx;
}

/*
 * Compress @len bytes of @src with room to spare; returns the compressed
 * copy (exact size, caller frees) and its length in *@clen.
 */
static unsigned char *compress_exact(struct zcomp_ctx *ctx,
				     const unsigned char *src, size_t len,
				     size_t *clen)
{
	unsigned char *room = xmalloc(ROOM);
	unsigned char *out;
	int ret;

	ret = zcomp_compress(ctx, src, len, room, ROOM);
	ck_assert_msg(ret > 0 && ret < ROOM,
		      "%s: compress(%zu) = %d",
		      zcomp_ctx_backend(ctx)->name, len, ret);
	out = xdup(room, (size_t)ret);
	free(room);
	*clen = (size_t)ret;
	return out;
}

/* Decompress into a buffer of exactly @len bytes and compare. */
static void check_decompress(struct zcomp_ctx *ctx, const unsigned char *c,
			     size_t clen, const unsigned char *orig,
			     size_t len)
{
	unsigned char *out = xmalloc(len);
	int ret;

	ret = zcomp_decompress(ctx, c, clen, out, len);
	ck_assert_msg(ret == 0, "%s level %d: decompress(%zu -> %zu) = %d",
		      zcomp_ctx_backend(ctx)->name, zcomp_ctx_level(ctx),
		      clen, len, ret);
	ck_assert_msg(len == 0 || memcmp(out, orig, len) == 0,
		      "%s level %d: round trip of %zu bytes differs",
		      zcomp_ctx_backend(ctx)->name, zcomp_ctx_level(ctx), len);
	free(out);
}

static void roundtrip(struct zcomp_ctx *ctx, const unsigned char *src,
		      size_t len)
{
	unsigned char *c;
	size_t clen;

	c = compress_exact(ctx, src, len, &clen);
	check_decompress(ctx, c, clen, src, len);
	free(c);
}

static const size_t lengths[] = {
	0, 1, 2, 3, 5, 17, 255, 256, 257, 1000, 2047, 4093, 4095, 4096,
};
#define NLENGTHS (sizeof(lengths) / sizeof(lengths[0]))

static void roundtrip_all_lengths(const struct zcomp_backend *be, int level)
{
	struct zcomp_ctx *ctx = ctx_new(be, level);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	uint64_t seed = 0x5eed0001;
	size_t i;
	int k;

	for (k = 0; k < K_NKINDS; k++) {
		for (i = 0; i < NLENGTHS; i++) {
			/* Exact-size source: over-reads trip the sanitizer. */
			unsigned char *exact;

			fill((enum kind)k, &seed, src, lengths[i]);
			exact = xdup(src, lengths[i]);
			roundtrip(ctx, exact, lengths[i]);
			free(exact);
		}
	}
	free(src);
	zcomp_ctx_destroy(ctx);
}

/* ---- the table and contexts --------------------------------------- */

START_TEST(test_table)
{
	const struct zcomp_backend *const *be = zcomp_backends();
	int n = tu_nbackends(), i, j;

	ck_assert_int_ge(n, 3);
	ck_assert_ptr_eq(zcomp_find("lz4"), be[0]);
	ck_assert_ptr_nonnull(zcomp_find("lz4hc"));
	ck_assert_ptr_nonnull(zcomp_find("zstd"));
	for (i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(be[i]->name);
		ck_assert_ptr_eq(zcomp_find(be[i]->name), be[i]);
		ck_assert_int_le(be[i]->level_min, be[i]->level_default);
		ck_assert_int_le(be[i]->level_default, be[i]->level_max);
		ck_assert(be[i]->level_min > ZCOMP_LEVEL_DEFAULT);
		ck_assert_ptr_nonnull(be[i]->create);
		ck_assert_ptr_nonnull(be[i]->destroy);
		ck_assert_ptr_nonnull(be[i]->compress);
		ck_assert_ptr_nonnull(be[i]->decompress);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(be[i]->name, be[j]->name);
	}
	ck_assert_ptr_null(be[n]);
}
END_TEST

START_TEST(test_find_unknown)
{
	static const char *const bad[] = {
		"", "LZ4", "Zstd", "lz4 ", " lz4", "lz", "lz4h", "lz4hcx",
		"zstd1", "zlib", "lzo", "lzo-rle", "deflate", "842",
	};
	size_t i;

	ck_assert_ptr_null(zcomp_find(NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(zcomp_find(bad[i]) == NULL, "found \"%s\"",
			      bad[i]);
}
END_TEST

START_TEST(test_ctx_levels)
{
	const struct zcomp_backend *be = backend(_i);
	const int bad[] = {
		be->level_min - 1, be->level_max + 1, INT_MIN, INT_MAX,
		ZCOMP_LEVEL_DEFAULT + 1, ZCOMP_LEVEL_DEFAULT - 1,
	};
	struct zcomp_ctx *ctx;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctx = (struct zcomp_ctx *)&ctx;	/* must be overwritten */
		ck_assert_msg(zcomp_ctx_create(be, bad[i], &ctx) == -EINVAL,
			      "%s accepted level %d", be->name, bad[i]);
		ck_assert_ptr_null(ctx);
	}
	ck_assert_int_eq(zcomp_ctx_create(NULL, 1, &ctx), -EINVAL);
	ck_assert_ptr_null(ctx);

	ctx = ctx_new(be, ZCOMP_LEVEL_DEFAULT);
	ck_assert_ptr_eq(zcomp_ctx_backend(ctx), be);
	ck_assert_int_eq(zcomp_ctx_level(ctx), be->level_default);
	zcomp_ctx_destroy(ctx);

	ctx = ctx_new(be, be->level_min);
	ck_assert_int_eq(zcomp_ctx_level(ctx), be->level_min);
	zcomp_ctx_destroy(ctx);

	ctx = ctx_new(be, be->level_max);
	ck_assert_int_eq(zcomp_ctx_level(ctx), be->level_max);
	zcomp_ctx_destroy(ctx);

	zcomp_ctx_destroy(NULL);
	be->destroy(NULL);
}
END_TEST

START_TEST(test_src_too_long)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = calloc(1, ZCOMP_MAX_SRC + 1);
	unsigned char *dst = xmalloc(ROOM);

	ck_assert_ptr_nonnull(src);
	ck_assert_int_eq(zcomp_compress(ctx, src, ZCOMP_MAX_SRC + 1, dst,
					ROOM), -EINVAL);
	ck_assert_int_eq(zcomp_compress(ctx, src, SIZE_MAX, dst, ROOM),
			 -EINVAL);
	/* The context is still usable. */
	roundtrip(ctx, src, ZCOMP_MAX_SRC);
	free(dst);
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/* ---- round trips -------------------------------------------------- */

START_TEST(test_roundtrip_default)
{
	roundtrip_all_lengths(backend(_i), ZCOMP_LEVEL_DEFAULT);
}
END_TEST

START_TEST(test_roundtrip_min)
{
	roundtrip_all_lengths(backend(_i), backend(_i)->level_min);
}
END_TEST

START_TEST(test_roundtrip_max)
{
	roundtrip_all_lengths(backend(_i), backend(_i)->level_max);
}
END_TEST

/*
 * Every level once, with one text and one mixed page; for lz4's long
 * acceleration range, the first few and then powers of two.
 */
START_TEST(test_every_level)
{
	const struct zcomp_backend *be = backend(_i);
	unsigned char *text = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *mixed = xmalloc(ZCOMP_MAX_SRC);
	uint64_t seed = 0x5eed0002;
	long level, step = 1;

	fill_text(text, ZCOMP_MAX_SRC, 7);
	fill_mixed(&seed, mixed, ZCOMP_MAX_SRC);
	for (level = be->level_min; level <= be->level_max; level += step) {
		struct zcomp_ctx *ctx = ctx_new(be, (int)level);

		roundtrip(ctx, text, ZCOMP_MAX_SRC);
		roundtrip(ctx, mixed, ZCOMP_MAX_SRC);
		zcomp_ctx_destroy(ctx);
		if (level - be->level_min >= 32)
			step *= 2;
		if (level < be->level_max && level + step > be->level_max)
			step = be->level_max - level;
	}
	free(mixed);
	free(text);
}
END_TEST

START_TEST(test_compressible)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *c;
	size_t clen;

	fill_text(src, ZCOMP_MAX_SRC, 0);
	c = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
	ck_assert_msg(clen < ZCOMP_MAX_SRC / 2, "%s: text page -> %zu bytes",
		      backend(_i)->name, clen);
	check_decompress(ctx, c, clen, src, ZCOMP_MAX_SRC);
	free(c);

	memset(src, 0, ZCOMP_MAX_SRC);
	c = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
	ck_assert_msg(clen < 64, "%s: zero page -> %zu bytes",
		      backend(_i)->name, clen);
	check_decompress(ctx, c, clen, src, ZCOMP_MAX_SRC);
	free(c);

	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/* Empty input: some bytes come out, and they decode to nothing. */
START_TEST(test_empty)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char room[64];
	unsigned char one;
	int clen;

	clen = zcomp_compress(ctx, NULL, 0, room, sizeof(room));
	ck_assert_int_gt(clen, 0);
	ck_assert_int_eq(zcomp_decompress(ctx, room, (size_t)clen, NULL, 0),
			 0);
	ck_assert_int_eq(zcomp_decompress(ctx, room, (size_t)clen, &one, 1),
			 -EIO);
	/* The result must be smaller than dst_cap, so 1 byte never fits. */
	ck_assert_int_eq(zcomp_compress(ctx, NULL, 0, room, 1), 0);
	ck_assert_int_eq(zcomp_compress(ctx, NULL, 0, room, 0), 0);
	ck_assert_int_eq(zcomp_compress(ctx, NULL, 0, room, (size_t)clen), 0);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/*
 * What a page pays in headers: lz4 blocks carry none, and the zstd frame
 * has no magic, size, checksum or dictionary id (descriptor, window byte,
 * block header: 5 bytes for empty input).
 */
START_TEST(test_frame_overhead)
{
	static const struct {
		const char *name;
		int empty;
	} want[] = {
		{ "lz4", 1 }, { "lz4hc", 1 }, { "zstd", 5 },
	};
	unsigned char room[64];
	struct zcomp_ctx *ctx;
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ctx = ctx_new(zcomp_find(want[i].name), ZCOMP_LEVEL_DEFAULT);
		ck_assert_int_eq(zcomp_compress(ctx, NULL, 0, room,
						sizeof(room)), want[i].empty);
		zcomp_ctx_destroy(ctx);
	}
}
END_TEST

/* ---- output capacity ---------------------------------------------- */

/* Compress into exactly @cap bytes followed by a canary. */
static int compress_capped(struct zcomp_ctx *ctx, const unsigned char *src,
			   size_t len, size_t cap, unsigned char *out)
{
	unsigned char *dst = xmalloc(cap + CANARY_LEN);
	size_t i;
	int ret;

	memset(dst, CANARY, cap + CANARY_LEN);
	ret = zcomp_compress(ctx, src, len, dst, cap);
	for (i = cap; i < cap + CANARY_LEN; i++)
		ck_assert_msg(dst[i] == CANARY,
			      "%s: wrote past dst_cap %zu (byte %zu)",
			      zcomp_ctx_backend(ctx)->name, cap, i);
	if (ret > 0 && out)
		memcpy(out, dst, (size_t)ret);
	free(dst);
	return ret;
}

START_TEST(test_incompressible)
{
	static const size_t caps[] = {
		0, 1, 2, 5, 16, 100, 1000, 2048, 4000, 4095,
	};
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *out = xmalloc(ROOM);
	uint64_t seed = 0x5eed0003;
	size_t i;
	int ret, round;

	for (round = 0; round < 20; round++) {
		tu_fill_random(src, ZCOMP_MAX_SRC, &seed);
		/* A whole page of noise into a page: 0 or a real gain. */
		ret = compress_capped(ctx, src, ZCOMP_MAX_SRC, ZCOMP_MAX_SRC,
				      out);
		ck_assert_int_ge(ret, 0);
		ck_assert_int_lt(ret, ZCOMP_MAX_SRC);
		if (ret > 0)
			check_decompress(ctx, out, (size_t)ret, src,
					 ZCOMP_MAX_SRC);
		/* Less room than input: noise never fits. */
		for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
			ck_assert_int_eq(compress_capped(ctx, src,
							 ZCOMP_MAX_SRC,
							 caps[i], NULL), 0);
		ck_assert_int_eq(compress_capped(ctx, src, 1000, 999, NULL),
				 0);
	}
	/* Plenty of room: noise still round-trips. */
	roundtrip(ctx, src, ZCOMP_MAX_SRC);
	free(out);
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/* The backend row itself, below the wrapper: 0 for "no room", never < 0. */
START_TEST(test_backend_no_room)
{
	const struct zcomp_backend *be = backend(_i);
	void *priv = be->create(be->level_default, true);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *dst = xmalloc(ZCOMP_MAX_SRC);
	uint64_t seed = 0x5eed0004;
	int ret;

	ck_assert_ptr_nonnull(priv);
	tu_fill_random(src, ZCOMP_MAX_SRC, &seed);
	ret = be->compress(priv, src, ZCOMP_MAX_SRC, dst, ZCOMP_MAX_SRC);
	ck_assert_int_ge(ret, 0);
	ck_assert_int_le(ret, ZCOMP_MAX_SRC);
	ck_assert_int_eq(be->compress(priv, src, ZCOMP_MAX_SRC, dst, 100), 0);
	ck_assert_int_eq(be->compress(priv, src, ZCOMP_MAX_SRC, dst, 0), 0);
	be->destroy(priv);
	free(dst);
	free(src);
}
END_TEST

/*
 * Sweep dst_cap around the compressed size of a compressible page: too
 * little room gives 0 and leaves the canary alone; enough room gives the
 * same stream as unlimited room.  Between the two, up to CAP_SLACK bytes
 * of room beyond the result, a backend may still say 0 (zstd does).
 */
#define CAP_SLACK 16
START_TEST(test_cap_sweep)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *out = xmalloc(ROOM);
	unsigned char *ref;
	uint64_t seed = 0x5eed0005;
	size_t clen, cap;
	int k, ret;

	for (k = 0; k < 2; k++) {
		if (k)
			fill_mixed(&seed, src, ZCOMP_MAX_SRC);
		else
			fill_text(src, ZCOMP_MAX_SRC, 3);
		ref = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
		for (cap = 0; cap <= clen + 2 * CAP_SLACK; cap++) {
			ret = compress_capped(ctx, src, ZCOMP_MAX_SRC, cap,
					      out);
			if (cap <= clen) {
				ck_assert_msg(ret == 0,
					      "%s: cap %zu, clen %zu -> %d",
					      backend(_i)->name, cap, clen,
					      ret);
				continue;
			}
			/* zstd's bit writer wants a few bytes of slack. */
			if (ret == 0 && cap < clen + CAP_SLACK)
				continue;
			ck_assert_msg(ret == (int)clen,
				      "%s: cap %zu, clen %zu -> %d",
				      backend(_i)->name, cap, clen, ret);
			ck_assert(memcmp(out, ref, clen) == 0);
		}
		check_decompress(ctx, ref, clen, src, ZCOMP_MAX_SRC);
		free(ref);
	}
	free(out);
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/*
 * A context that only decompresses reads what a full one of the same
 * backend wrote, at any level, and refuses to compress.
 */
START_TEST(test_dctx)
{
	const struct zcomp_backend *be = backend(_i);
	struct zcomp_ctx *full = ctx_new(be, be->level_max), *dec = NULL;
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC), *c, dst[64];
	uint64_t seed = 0x5eed0010;
	size_t clen, i;

	for (i = 0; i < ZCOMP_MAX_SRC; i++)
		src[i] = (unsigned char)('a' + (tu_rand(&seed) & 7));
	ck_assert_int_eq(zcomp_dctx_create(be, &dec), 0);
	ck_assert(!zcomp_ctx_compresses(dec));
	ck_assert(zcomp_ctx_compresses(full));
	ck_assert_int_eq(zcomp_compress(dec, src, ZCOMP_MAX_SRC, dst,
					sizeof(dst)), -EINVAL);
	c = compress_exact(full, src, ZCOMP_MAX_SRC, &clen);
	check_decompress(dec, c, clen, src, ZCOMP_MAX_SRC);
	zcomp_ctx_destroy(dec);
	ck_assert_int_eq(zcomp_dctx_create(NULL, &dec), -EINVAL);
	ck_assert_ptr_null(dec);
	free(c);
	free(src);
	zcomp_ctx_destroy(full);
}
END_TEST

/*
 * One context, many pages of every kind and length, some first refused
 * for lack of room: state carried between calls must never leak into
 * the next result.  Two contexts of one backend interleave.
 */
START_TEST(test_reuse)
{
	const struct zcomp_backend *be = backend(_i);
	struct zcomp_ctx *a = ctx_new(be, ZCOMP_LEVEL_DEFAULT);
	struct zcomp_ctx *b = ctx_new(be, be->level_min);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *c;
	uint64_t seed = 0x5eed0006;
	size_t len, clen;
	int round;

	for (round = 0; round < 300; round++) {
		struct zcomp_ctx *ctx = (round & 1) ? a : b;

		len = rnd_below(&seed, ZCOMP_MAX_SRC + 1);
		fill((enum kind)rnd_below(&seed, K_NKINDS), &seed, src, len);
		if (round % 3 == 0)
			ck_assert_int_eq(compress_capped(ctx, src, len, 1,
							 NULL), 0);
		c = compress_exact(ctx, src, len, &clen);
		/* Decode with the other context: no hidden shared state. */
		check_decompress(ctx == a ? b : a, c, clen, src, len);
		free(c);
	}
	free(src);
	zcomp_ctx_destroy(b);
	zcomp_ctx_destroy(a);
}
END_TEST

/* ---- corrupt input ------------------------------------------------ */

static int decompress_exact(struct zcomp_ctx *ctx, const unsigned char *c,
			    size_t clen, size_t dst_len)
{
	unsigned char *src = xdup(c, clen);
	unsigned char *dst = xmalloc(dst_len);
	int ret;

	ret = zcomp_decompress(ctx, src, clen, dst, dst_len);
	free(dst);
	free(src);
	return ret;
}

START_TEST(test_corrupt_random)
{
	static const size_t dst_lens[] = { ZCOMP_MAX_SRC, 1000, 64 };
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *junk = xmalloc(ROOM);
	uint64_t seed = 0x5eed0007;
	size_t len, dst_len;
	int round, ret;

	for (round = 0; round < FUZZ_ROUNDS; round++) {
		len = rnd_below(&seed, ROOM);
		dst_len = dst_lens[round % 3];
		tu_fill_random(junk, len, &seed);
		ret = decompress_exact(ctx, junk, len, dst_len);
		ck_assert_msg(ret == -EIO, "%s: junk %zu -> %zu: %d",
			      backend(_i)->name, len, dst_len, ret);
	}
	ck_assert_int_eq(zcomp_decompress(ctx, NULL, 0, junk, ZCOMP_MAX_SRC),
			 -EIO);
	free(junk);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/* Every prefix of a valid stream is refused. */
START_TEST(test_corrupt_truncated)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *c;
	uint64_t seed = 0x5eed0008;
	size_t clen, t;
	int k;

	for (k = 0; k < K_NKINDS; k++) {
		if (k == K_RANDOM)
			continue;	/* does not compress */
		fill((enum kind)k, &seed, src, ZCOMP_MAX_SRC);
		c = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
		for (t = 0; t < clen; t++)
			ck_assert_msg(decompress_exact(ctx, c, t,
						       ZCOMP_MAX_SRC) == -EIO,
				      "%s: kind %d, prefix %zu of %zu decoded",
				      backend(_i)->name, k, t, clen);
		check_decompress(ctx, c, clen, src, ZCOMP_MAX_SRC);
		free(c);
	}
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/*
 * Flip bits or overwrite bytes of valid streams.  Without a checksum a
 * damaged literal can still decode to the right length (0); anything
 * else must be -EIO, and nothing may crash or overrun.
 */
START_TEST(test_corrupt_bitflip)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *c;
	uint64_t seed = 0x5eed0009;
	size_t len, clen, n;
	int round, ret, eio = 0;

	for (round = 0; round < FUZZ_ROUNDS; round++) {
		len = 1 + rnd_below(&seed, ZCOMP_MAX_SRC);
		fill(round & 1 ? K_MIXED : K_TEXT, &seed, src, len);
		c = compress_exact(ctx, src, len, &clen);
		for (n = 1 + rnd_below(&seed, 4); n; n--) {
			size_t at = rnd_below(&seed, clen);

			if (round & 2)
				c[at] ^= (unsigned char)(1u <<
							 rnd_below(&seed, 8));
			else
				c[at] = (unsigned char)tu_rand(&seed);
		}
		ret = decompress_exact(ctx, c, clen, len);
		ck_assert_msg(ret == 0 || ret == -EIO, "%s: %d",
			      backend(_i)->name, ret);
		eio += ret == -EIO;
		free(c);
	}
	/* Sanity: the damage was noticed most of the time. */
	ck_assert_int_gt(eio, FUZZ_ROUNDS / 4);
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_wrong_length)
{
	static const size_t wrong[] = {
		0, 1, 100, 2048, ZCOMP_MAX_SRC - 1, ZCOMP_MAX_SRC + 1,
		2 * ZCOMP_MAX_SRC,
	};
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *c;
	uint64_t seed = 0x5eed000a;
	size_t clen, i;

	fill_mixed(&seed, src, ZCOMP_MAX_SRC);
	c = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
	for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
		ck_assert_msg(decompress_exact(ctx, c, clen, wrong[i]) == -EIO,
			      "%s: 4096 bytes decoded as %zu",
			      backend(_i)->name, wrong[i]);
	free(c);

	c = compress_exact(ctx, src, 100, &clen);
	ck_assert_int_eq(decompress_exact(ctx, c, clen, 99), -EIO);
	ck_assert_int_eq(decompress_exact(ctx, c, clen, 101), -EIO);
	ck_assert_int_eq(decompress_exact(ctx, c, clen, ZCOMP_MAX_SRC), -EIO);
	check_decompress(ctx, c, clen, src, 100);
	free(c);

	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

/*
 * Junk after a valid stream is refused: the stream must be exactly
 * src_len bytes.  1..3 junk bytes once made libzstd 1.5.4 read past src.
 */
START_TEST(test_trailing_junk)
{
	struct zcomp_ctx *ctx = ctx_new(backend(_i), ZCOMP_LEVEL_DEFAULT);
	unsigned char *src = xmalloc(ZCOMP_MAX_SRC);
	unsigned char *buf = xmalloc(ROOM + 64);
	unsigned char *c;
	uint64_t seed = 0x5eed000b;
	size_t clen, extra;
	int round, ret;

	for (round = 0; round < 200; round++) {
		fill_text(src, ZCOMP_MAX_SRC, (unsigned)round);
		c = compress_exact(ctx, src, ZCOMP_MAX_SRC, &clen);
		extra = 1 + rnd_below(&seed, round < 100 ? 3 : 64);
		memcpy(buf, c, clen);
		tu_fill_random(buf + clen, extra, &seed);
		ret = decompress_exact(ctx, buf, clen + extra, ZCOMP_MAX_SRC);
		ck_assert_msg(ret == -EIO, "%s: %zu junk bytes accepted: %d",
			      backend(_i)->name, extra, ret);
		free(c);
	}
	free(buf);
	free(src);
	zcomp_ctx_destroy(ctx);
}
END_TEST

Suite *zcomp_suite(void)
{
	Suite *s = suite_create("zcomp");
	int n = tu_nbackends();
	TCase *tc;

	tc = tcase_create("table");
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_find_unknown);
	tcase_add_loop_test(tc, test_ctx_levels, 0, n);
	tcase_add_loop_test(tc, test_src_too_long, 0, n);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip_default, 0, n);
	tcase_add_loop_test(tc, test_roundtrip_min, 0, n);
	tcase_add_loop_test(tc, test_roundtrip_max, 0, n);
	tcase_add_loop_test(tc, test_every_level, 0, n);
	tcase_add_loop_test(tc, test_compressible, 0, n);
	tcase_add_loop_test(tc, test_empty, 0, n);
	tcase_add_test(tc, test_frame_overhead);
	tcase_add_loop_test(tc, test_reuse, 0, n);
	tcase_add_loop_test(tc, test_dctx, 0, n);
	suite_add_tcase(s, tc);

	tc = tcase_create("capacity");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_incompressible, 0, n);
	tcase_add_loop_test(tc, test_backend_no_room, 0, n);
	tcase_add_loop_test(tc, test_cap_sweep, 0, n);
	suite_add_tcase(s, tc);

	tc = tcase_create("corrupt");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_corrupt_random, 0, n);
	tcase_add_loop_test(tc, test_corrupt_truncated, 0, n);
	tcase_add_loop_test(tc, test_corrupt_bitflip, 0, n);
	tcase_add_loop_test(tc, test_wrong_length, 0, n);
	tcase_add_loop_test(tc, test_trailing_junk, 0, n);
	suite_add_tcase(s, tc);

	return s;
}
