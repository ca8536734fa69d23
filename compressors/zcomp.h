/*
 * zcomp: the table of compression backends (lz4, lz4hc, zstd).
 *
 * A backend is a row of struct zcomp_backend: a name, a level range and
 * four functions.  Callers never talk to lz4 or zstd directly; they look a
 * backend up by name, create one context per worker thread with
 * zcomp_ctx_create() and then compress and decompress single pages (or
 * any buffer up to ZCOMP_MAX_SRC bytes) through it.
 *
 * Contexts are not thread-safe: one context belongs to one thread at a
 * time.  Backends themselves are immutable and may be shared freely.
 *
 * This module includes no FUSE header and allocates nothing on the
 * compress/decompress path: all memory is set up by zcomp_ctx_create().
 * One exception: for lz4hc levels 10..12 liblz4 itself mallocs a ~64 KiB
 * table per call, and if that fails the page is reported as "does not
 * fit" (0), never as an error.
 */
#ifndef FUSEZRAM_ZCOMP_H
#define FUSEZRAM_ZCOMP_H

#include <stdbool.h>
#include <stddef.h>

/* Largest input a context accepts, in bytes: one page. */
#define ZCOMP_MAX_SRC 4096

struct zcomp_ctx;

struct zcomp_backend {
	const char *name;	/* "lz4", "lz4hc", "zstd" */
	int level_min;		/* smallest accepted level */
	int level_max;		/* largest accepted level */
	int level_default;	/* level used when the user gives none */

	/*
	 * Create the backend's private state for one thread at @level
	 * (already range-checked by zcomp_ctx_create()); with @compress
	 * false, only what decompress() needs (compress() is then never
	 * called on it).  Returns NULL on ENOMEM.
	 */
	void *(*create)(int level, bool compress);
	/* Free what create() returned.  Accepts NULL. */
	void (*destroy)(void *priv);
	/*
	 * Compress @src_len bytes into @dst (capacity @dst_cap).  Returns the
	 * compressed length (> 0), 0 if the result does not fit in @dst_cap
	 * (the caller then stores the data raw), or -errno on a real failure.
	 */
	int (*compress)(void *priv, const void *src, size_t src_len,
			void *dst, size_t dst_cap);
	/*
	 * Decompress @src_len bytes from @src into @dst, which must come out
	 * exactly @dst_len bytes long.  Returns 0, or -EIO if the input is
	 * corrupt or decodes to any other length.  Never reads or writes out
	 * of bounds, whatever @src holds.
	 */
	int (*decompress)(void *priv, const void *src, size_t src_len,
			  void *dst, size_t dst_len);
};

/*
 * zcomp_find - look a backend up by name.
 * Returns the backend, or NULL if @name is NULL or names no backend in
 * zcomp_backends().
 * Cannot fail otherwise.
 */
const struct zcomp_backend *zcomp_find(const char *name);

/*
 * zcomp_backends - the whole table, NULL-terminated, in display order.
 * Cannot fail.
 */
const struct zcomp_backend *const *zcomp_backends(void);

/*
 * zcomp_ctx_create - a context for one thread.
 * @level: compression level; ZCOMP_LEVEL_DEFAULT picks the backend's
 *         default.  Levels outside [level_min, level_max] are refused.
 * @out:   receives the context, owned by the caller (zcomp_ctx_destroy).
 * Returns 0, -EINVAL for a bad level, -ENOMEM.
 */
#define ZCOMP_LEVEL_DEFAULT (-1000000)
int zcomp_ctx_create(const struct zcomp_backend *be, int level,
		     struct zcomp_ctx **out);

/*
 * zcomp_dctx_create - a context that only decompresses, for a thread
 * that reads pages of @be but compresses none: it holds no compression
 * state (lz4hc's is 256 KiB, zstd's 90 KiB at level 3), and
 * zcomp_compress() on it returns -EINVAL.  The level is @be's default.
 * Returns 0 and sets *@out, -EINVAL if @be is NULL, -ENOMEM.
 */
int zcomp_dctx_create(const struct zcomp_backend *be, struct zcomp_ctx **out);

/* zcomp_ctx_destroy - free a context.  Accepts NULL. */
void zcomp_ctx_destroy(struct zcomp_ctx *ctx);

/*
 * zcomp_compress - compress @src_len (<= ZCOMP_MAX_SRC) bytes.
 * @dst_cap: size of @dst.  A result of @dst_cap bytes or more is not
 *           useful to the caller, so it is reported as 0.
 * Returns the compressed length (1..dst_cap-1), 0 for "does not fit",
 * -EINVAL for src_len > ZCOMP_MAX_SRC or a context that only
 * decompresses (zcomp_dctx_create()), or another -errno from the
 * library.  A src_len of 0 compresses to whatever the backend emits for
 * empty input (still > 0 bytes) or 0 if that does not fit.
 */
int zcomp_compress(struct zcomp_ctx *ctx, const void *src, size_t src_len,
		   void *dst, size_t dst_cap);

/*
 * zcomp_decompress - decompress into exactly @dst_len bytes.
 * Returns 0, or -EIO if @src is corrupt, truncated or decodes to a
 * different length.  Never crashes on bad input.
 */
int zcomp_decompress(struct zcomp_ctx *ctx, const void *src, size_t src_len,
		     void *dst, size_t dst_len);

/* zcomp_ctx_compresses - false for a context of zcomp_dctx_create(). */
bool zcomp_ctx_compresses(const struct zcomp_ctx *ctx);

/* zcomp_ctx_backend / zcomp_ctx_level - what a context was made with. */
const struct zcomp_backend *zcomp_ctx_backend(const struct zcomp_ctx *ctx);
int zcomp_ctx_level(const struct zcomp_ctx *ctx);

#endif /* FUSEZRAM_ZCOMP_H */
