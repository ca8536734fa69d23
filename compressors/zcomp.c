/*
 * zcomp.c - the backend table and the per-thread context wrappers.
 *
 * Design: the table is a constant array of pointers to the backend rows
 * defined in zcomp_lz4.c and zcomp_zstd.c.  A context is the pair
 * (backend, private state); the wrappers here range-check what the
 * public contract promises (level range, ZCOMP_MAX_SRC, "a result of
 * dst_cap bytes or more is reported as 0") so each backend only has to
 * speak to its library.
 *
 * Nothing here takes a lock: the table is immutable, and a context
 * belongs to one thread at a time (see zcomp.h).
 *
 * TODO:
 *  - lzo/lzo-rle and deflate, to match the kernel's list, if anyone asks.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compressors/zcomp.h"
#include "compressors/zcomp_i.h"

struct zcomp_ctx {
	const struct zcomp_backend *be;
	int level;		/* resolved: never ZCOMP_LEVEL_DEFAULT */
	bool compress;		/* not a zcomp_dctx_create() context */
	void *priv;		/* be->create(level, compress) */
};

/* Display order: fastest first, as zram lists its algorithms. */
static const struct zcomp_backend *const zcomp_table[] = {
	&zcomp_lz4,
	&zcomp_lz4hc,
	&zcomp_zstd,
	NULL,
};

const struct zcomp_backend *zcomp_find(const char *name)
{
	const struct zcomp_backend *const *be;

	if (!name)
		return NULL;
	for (be = zcomp_table; *be; be++)
		if (strcmp((*be)->name, name) == 0)
			return *be;
	return NULL;
}

const struct zcomp_backend *const *zcomp_backends(void)
{
	return zcomp_table;
}

/* zcomp_make - zcomp_ctx_create() or, !@compress, zcomp_dctx_create(). */
static int zcomp_make(const struct zcomp_backend *be, int level,
		      bool compress, struct zcomp_ctx **out)
{
	struct zcomp_ctx *ctx;

	assert(out);
	*out = NULL;
	if (!be)
		return -EINVAL;
	if (level == ZCOMP_LEVEL_DEFAULT)
		level = be->level_default;
	if (level < be->level_min || level > be->level_max)
		return -EINVAL;

	ctx = malloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->be = be;
	ctx->level = level;
	ctx->compress = compress;
	ctx->priv = be->create(level, compress);
	if (!ctx->priv)
		goto out_free;
	*out = ctx;
	return 0;

out_free:
	free(ctx);
	return -ENOMEM;
}

int zcomp_ctx_create(const struct zcomp_backend *be, int level,
		     struct zcomp_ctx **out)
{
	return zcomp_make(be, level, true, out);
}

int zcomp_dctx_create(const struct zcomp_backend *be, struct zcomp_ctx **out)
{
	return zcomp_make(be, ZCOMP_LEVEL_DEFAULT, false, out);
}

void zcomp_ctx_destroy(struct zcomp_ctx *ctx)
{
	if (!ctx)
		return;
	ctx->be->destroy(ctx->priv);
	free(ctx);
}

int zcomp_compress(struct zcomp_ctx *ctx, const void *src, size_t src_len,
		   void *dst, size_t dst_cap)
{
	int ret;

	if (src_len > ZCOMP_MAX_SRC || !ctx->compress)
		return -EINVAL;
	if (dst_cap == 0)
		return 0;
	ret = ctx->be->compress(ctx->priv, src, src_len, dst, dst_cap);
	if (ret < 0)
		return ret;
	/* Not smaller than the room given: useless to the caller. */
	if ((size_t)ret >= dst_cap)
		return 0;
	return ret;
}

int zcomp_decompress(struct zcomp_ctx *ctx, const void *src, size_t src_len,
		     void *dst, size_t dst_len)
{
	/* Backends promise 0 or -EIO; hold any future one to that. */
	return ctx->be->decompress(ctx->priv, src, src_len, dst, dst_len) ?
		-EIO : 0;
}

bool zcomp_ctx_compresses(const struct zcomp_ctx *ctx)
{
	return ctx->compress;
}

const struct zcomp_backend *zcomp_ctx_backend(const struct zcomp_ctx *ctx)
{
	return ctx->be;
}

int zcomp_ctx_level(const struct zcomp_ctx *ctx)
{
	return ctx->level;
}
