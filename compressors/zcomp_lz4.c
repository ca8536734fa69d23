/*
 * zcomp_lz4.c - the "lz4" and "lz4hc" backends.
 *
 * Both produce a raw LZ4 block (no frame, no header, no checksum): the
 * caller already knows the decompressed length, and every byte of header
 * would be paid once per page.  Both formats decode with the same
 * LZ4_decompress_safe(), which never reads or writes outside the buffers
 * it is given, whatever the input holds.
 *
 * Levels:
 *  - "lz4": the level is lz4's acceleration, as in the kernel's zram
 *    (backend_lz4.c passes its level to LZ4_compress_fast()).  1 is the
 *    default and the best ratio; larger is faster and compresses less.
 *    The range 1..65537 is lz4's own: LZ4_ACCELERATION_MAX in lz4.c
 *    (not exported by lz4.h), above which the library silently clamps.
 *  - "lz4hc": LZ4HC_CLEVEL_MIN..LZ4HC_CLEVEL_MAX (3..12), default
 *    LZ4HC_CLEVEL_DEFAULT (9).  10 and up use the optimal parser and are
 *    several times slower.
 *
 * Memory: one state buffer per context, allocated in create() and reused
 * by every compress() through the *_extState entry points.
 * LZ4_sizeofState() is about 16 KiB, LZ4_sizeofStateHC() about 256 KiB.
 * Decompression needs no state.  One exception to "no allocation on the
 * I/O path", which we cannot fix from outside: liblz4 is built with
 * LZ4HC_HEAPMODE=1, so its optimal parser (lz4hc levels 10..12) mallocs a
 * ~64 KiB table on every call and returns 0 if that fails.  We pass the
 * 0 on as "does not fit": the page is stored raw, nothing errors.  Capping
 * lz4hc at 9 would remove the exception at the cost of the kernel's
 * three slowest levels.
 *
 * TODO:
 *  - LZ4_compress_fast_extState() clears its 16 KiB hash table on every
 *    call.  LZ4_compress_fast_extState_fastReset() would avoid that, but
 *    it is in lz4's static-only API and Debian's liblz4.so does not
 *    export it.  The exported LZ4_resetStream_fast() +
 *    LZ4_compress_fast_continue() pair avoids the clear too, but always
 *    uses the 32-bit table: measured on the bench corpus it stores 1.3%
 *    more pages raw and loses 0.6% of the ratio (1.524 against 1.533),
 *    so we keep extState, as the kernel's lz4 backend does.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <lz4.h>
#include <lz4hc.h>

#include "compressors/zcomp.h"
#include "compressors/zcomp_i.h"

/* LZ4_ACCELERATION_MAX in lz4.c; lz4.h only mentions it. */
#define ZCOMP_LZ4_ACCEL_MIN	1
#define ZCOMP_LZ4_ACCEL_MAX	65537

struct zcomp_lz4_priv {
	int level;	/* acceleration (lz4) or compression level (lz4hc) */
	void *state;	/* LZ4_sizeofState() or LZ4_sizeofStateHC() bytes;
			 * NULL in a context that only decompresses (lz4's
			 * decompression needs no state) */
};

static void *zcomp_lz4_create_common(int level, bool compress,
				     int state_size)
{
	struct zcomp_lz4_priv *p;

	p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	p->level = level;
	p->state = NULL;
	if (!compress)
		return p;
	/* malloc's alignment satisfies LZ4_stream_t and LZ4_streamHC_t. */
	p->state = malloc((size_t)state_size);
	if (!p->state)
		goto out_free;
	return p;

out_free:
	free(p);
	return NULL;
}

static void *zcomp_lz4_create(int level, bool compress)
{
	return zcomp_lz4_create_common(level, compress, LZ4_sizeofState());
}

static void *zcomp_lz4hc_create(int level, bool compress)
{
	return zcomp_lz4_create_common(level, compress, LZ4_sizeofStateHC());
}

static void zcomp_lz4_destroy(void *priv)
{
	struct zcomp_lz4_priv *p = priv;

	if (!p)
		return;
	free(p->state);
	free(p);
}

/* lz4 counts in int; a larger capacity is as good as INT_MAX. */
static int zcomp_lz4_cap(size_t dst_cap)
{
	return dst_cap > INT_MAX ? INT_MAX : (int)dst_cap;
}

/* Returns 0 when the block does not fit: lz4 reports that as 0 too. */
static int zcomp_lz4_compress(void *priv, const void *src, size_t src_len,
			      void *dst, size_t dst_cap)
{
	struct zcomp_lz4_priv *p = priv;

	if (dst_cap == 0)
		return 0;
	return LZ4_compress_fast_extState(p->state, src, dst, (int)src_len,
					  zcomp_lz4_cap(dst_cap), p->level);
}

static int zcomp_lz4hc_compress(void *priv, const void *src, size_t src_len,
				void *dst, size_t dst_cap)
{
	struct zcomp_lz4_priv *p = priv;

	if (dst_cap == 0)
		return 0;
	return LZ4_compress_HC_extStateHC(p->state, src, dst, (int)src_len,
					  zcomp_lz4_cap(dst_cap), p->level);
}

static int zcomp_lz4_decompress(void *priv, const void *src, size_t src_len,
				void *dst, size_t dst_len)
{
	int ret;

	(void)priv;
	if (src_len > INT_MAX || dst_len > INT_MAX)
		return -EIO;
	ret = LZ4_decompress_safe(src, dst, (int)src_len, (int)dst_len);
	if (ret < 0 || (size_t)ret != dst_len)
		return -EIO;
	return 0;
}

const struct zcomp_backend zcomp_lz4 = {
	.name		= "lz4",
	.level_min	= ZCOMP_LZ4_ACCEL_MIN,
	.level_max	= ZCOMP_LZ4_ACCEL_MAX,
	.level_default	= 1,
	.create		= zcomp_lz4_create,
	.destroy	= zcomp_lz4_destroy,
	.compress	= zcomp_lz4_compress,
	.decompress	= zcomp_lz4_decompress,
};

const struct zcomp_backend zcomp_lz4hc = {
	.name		= "lz4hc",
	.level_min	= LZ4HC_CLEVEL_MIN,
	.level_max	= LZ4HC_CLEVEL_MAX,
	.level_default	= LZ4HC_CLEVEL_DEFAULT,
	.create		= zcomp_lz4hc_create,
	.destroy	= zcomp_lz4_destroy,
	.compress	= zcomp_lz4hc_compress,
	.decompress	= zcomp_lz4_decompress,
};
