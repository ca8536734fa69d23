/*
 * zcomp_zstd.c - the "zstd" backend.
 *
 * Each context owns one compression and one decompression context, both
 * built once in create() inside workspaces we allocate ourselves
 * (ZSTD_initStaticCCtx/ZSTD_initStaticDCtx).  A static zstd context can
 * never allocate: if it ever needed more room it would fail with
 * memory_allocation (reported as -ENOMEM) rather than call malloc, so the
 * "nothing allocates on the I/O path" rule holds by construction, not by
 * warming up a cache.  The compression workspace is sized for the largest
 * input we accept (ZCOMP_MAX_SRC) at the context's level; smaller inputs
 * make zstd pick smaller tables, never larger ones.  With 1.5.4 it is
 * 88 KiB at level 3, 270 KiB from level 12 up; the decompression one is
 * 94 KiB.
 *
 * Per-page overhead: the frame carries no magic number
 * (ZSTD_f_zstd1_magicless), no content size (the caller knows it), no
 * checksum and no dictionary id.  What is left is a 2-byte frame header
 * (descriptor and window byte) and a 3-byte header per block; a 4 KiB
 * page is one block.  Without the checksum, corruption that still decodes
 * to the right length goes unnoticed, as with lz4.  The data lives only
 * in RAM and dies with the process, so the format never has to be read
 * by another program or another version of this one.
 *
 * Experimental API: ZSTD_c_format/ZSTD_d_format, the static-context
 * functions and the buffer-less decoder (see zcomp_zstd_decompress()) sit
 * behind ZSTD_STATIC_LINKING_ONLY.  zstd only promises their ABI when
 * linked statically, but Debian 12's libzstd.so.1 (1.5.4) exports every
 * one of them, and their values and signatures are unchanged through
 * 1.5.x.  A library that refuses a parameter makes create() fail, so the
 * user gets -ENOMEM from zcomp_ctx_create(); the unit tests are what
 * would catch a subtler change.
 *
 * Room: zstd's entropy coder wants up to 8 bytes of slack at the end of
 * dst, so a page whose stream would land within 8 bytes of dst_cap is
 * reported as not fitting (0) although it would have.  Such a page gains
 * next to nothing; compressing into a bounce buffer to catch it would
 * cost a copy on every page.
 *
 * Levels: -7..22.  22 is ZSTD_maxCLevel().  Negative levels are zstd's
 * "fast" modes; ZSTD_minCLevel() is -131072, a range that means nothing
 * for 4 KiB pages, so ours stops at -7 (lz4 is the backend for speed).
 * 0 is accepted and means zstd's default (3).
 * The default is ZSTD_CLEVEL_DEFAULT (3), as in the kernel's zram.
 */
#include <errno.h>
#include <stdlib.h>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "compressors/zcomp.h"
#include "compressors/zcomp_i.h"

#define ZCOMP_ZSTD_LEVEL_MIN	(-7)
#define ZCOMP_ZSTD_LEVEL_MAX	22

struct zcomp_zstd_priv {
	ZSTD_CCtx *cctx;	/* lives inside cwksp; NULL in a context that
				 * only decompresses */
	ZSTD_DCtx *dctx;	/* lives inside dwksp */
	void *cwksp;
	void *dwksp;
};

static void zcomp_zstd_destroy(void *priv)
{
	struct zcomp_zstd_priv *p = priv;

	if (!p)
		return;
	/* Static contexts are not freed by zstd: dropping the memory is all. */
	free(p->dwksp);
	free(p->cwksp);
	free(p);
}

static int zcomp_zstd_set_params(struct zcomp_zstd_priv *p, int level)
{
	static const struct {
		ZSTD_cParameter param;
		int value;
	} cparams[] = {
		{ ZSTD_c_format,		ZSTD_f_zstd1_magicless },
		{ ZSTD_c_contentSizeFlag,	0 },
		{ ZSTD_c_checksumFlag,		0 },
		{ ZSTD_c_dictIDFlag,		0 },
	};
	size_t i;

	if (ZSTD_isError(ZSTD_DCtx_setParameter(p->dctx, ZSTD_d_format,
						ZSTD_f_zstd1_magicless)))
		return -EINVAL;
	if (!p->cctx)			/* decompression only */
		return 0;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(p->cctx,
						ZSTD_c_compressionLevel,
						level)))
		return -EINVAL;
	for (i = 0; i < sizeof(cparams) / sizeof(cparams[0]); i++)
		if (ZSTD_isError(ZSTD_CCtx_setParameter(p->cctx,
							cparams[i].param,
							cparams[i].value)))
			return -EINVAL;
	return 0;
}

static void *zcomp_zstd_create(int level, bool compress)
{
	struct zcomp_zstd_priv *p;
	size_t csize, dsize;

	/* A library older or smaller than our range: refuse, don't clamp. */
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return NULL;

	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;

	dsize = ZSTD_estimateDCtxSize();
	/* malloc's alignment satisfies the 8 bytes zstd asks for. */
	p->dwksp = malloc(dsize);
	if (!p->dwksp)
		goto out_destroy;
	p->dctx = ZSTD_initStaticDCtx(p->dwksp, dsize);
	if (!p->dctx)
		goto out_destroy;
	if (compress) {
		csize = ZSTD_estimateCCtxSize_usingCParams(
				ZSTD_getCParams(level, ZCOMP_MAX_SRC, 0));
		p->cwksp = malloc(csize);
		if (!p->cwksp)
			goto out_destroy;
		p->cctx = ZSTD_initStaticCCtx(p->cwksp, csize);
		if (!p->cctx)
			goto out_destroy;
	}
	if (zcomp_zstd_set_params(p, level))
		goto out_destroy;
	return p;

out_destroy:
	zcomp_zstd_destroy(p);
	return NULL;
}

static int zcomp_zstd_compress(void *priv, const void *src, size_t src_len,
			       void *dst, size_t dst_cap)
{
	struct zcomp_zstd_priv *p = priv;
	size_t ret;

	/* ZSTD_compress2() resets the session; the parameters stay. */
	ret = ZSTD_compress2(p->cctx, dst, dst_cap, src, src_len);
	if (!ZSTD_isError(ret))
		return (int)ret;	/* <= ZSTD_compressBound(4096) */
	switch (ZSTD_getErrorCode(ret)) {
	case ZSTD_error_dstSize_tooSmall:
		return 0;
	case ZSTD_error_memory_allocation:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* base + off without arithmetic on a NULL base (dst may be NULL, len 0). */
static void *zcomp_zstd_at(void *base, size_t off)
{
	return off ? (char *)base + off : base;
}

/*
 * One frame, pulled through the buffer-less decoder: zstd names the size
 * of each next piece (header, block header, block) and we hand it exactly
 * that many bytes, so nothing past src_len is ever touched and bytes left
 * over after the frame are an error.  ZSTD_decompressDCtx() would be the
 * obvious call, but its multi-frame loop mishandles magicless input: in
 * 1.5.4, with 1..3 bytes left after a frame (or in all), it reads a
 * 4-byte magic number past the end of src (valgrind shows it; fixed in
 * 1.5.5), and up to 1.5.5 it tests magicless frames against the legacy
 * and skippable magic numbers (zstd's doc/decompressor_errata.md; fixed
 * in 1.5.6).  Output lands contiguously in dst, so blocks can refer back
 * to earlier ones.
 */
static int zcomp_zstd_decompress(void *priv, const void *src, size_t src_len,
				 void *dst, size_t dst_len)
{
	struct zcomp_zstd_priv *p = priv;
	size_t in = 0, out = 0, need, ret;

	if (ZSTD_isError(ZSTD_decompressBegin(p->dctx)))
		return -EIO;
	while ((need = ZSTD_nextSrcSizeToDecompress(p->dctx)) != 0) {
		if (need > src_len - in)
			return -EIO;	/* truncated */
		ret = ZSTD_decompressContinue(p->dctx,
					      zcomp_zstd_at(dst, out),
					      dst_len - out,
					      (const char *)src + in, need);
		/* Output beyond dst_len is dstSize_tooSmall, an error. */
		if (ZSTD_isError(ret) || ret > dst_len - out)
			return -EIO;
		in += need;
		out += ret;
	}
	if (in != src_len || out != dst_len)
		return -EIO;
	return 0;
}

const struct zcomp_backend zcomp_zstd = {
	.name		= "zstd",
	.level_min	= ZCOMP_ZSTD_LEVEL_MIN,
	.level_max	= ZCOMP_ZSTD_LEVEL_MAX,
	.level_default	= ZSTD_CLEVEL_DEFAULT,
	.create		= zcomp_zstd_create,
	.destroy	= zcomp_zstd_destroy,
	.compress	= zcomp_zstd_compress,
	.decompress	= zcomp_zstd_decompress,
};
