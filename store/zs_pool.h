/*
 * zs_pool: a size-classed allocator for compressed pages, in the manner
 * of the kernel's zsmalloc, with handles instead of pointers.
 *
 * Objects of 1..ZS_MAX_ALLOC bytes are rounded up to a size class (16-byte
 * steps) and packed into spans: runs of 1..ZS_MAX_SPAN_PAGES contiguous
 * pages taken from an arena of our own and handed back to the OS as soon
 * as a span empties.  Objects may straddle page boundaries inside a span.
 *
 * The allocator owns every object.  Callers hold a 64-bit handle, never a
 * pointer: they copy data in with zs_store(), read it with zs_load() or
 * zs_read(), and give it back with zs_free().  Because nobody outside
 * holds a pointer, zs_compact() may move objects between spans of the
 * same class at any time; it rewrites the handle's location under the
 * class lock, so a reader never sees a half-moved object.
 *
 * Handle 0 is never returned and means "no object".
 *
 * Locking (details in zs_pool.c): one reader/writer lock per class.
 * zs_load()/zs_read() take it shared, zs_store()/zs_free()/zs_compact()
 * take it exclusive.  Different classes never contend.  No function here
 * takes more than one class lock at a time, and none calls back into the
 * caller with a lock held except zs_read(), whose callback must not call
 * into the pool.
 *
 * No FUSE header is included; nothing here knows about pages of an image.
 */
#ifndef FUSEZRAM_ZS_POOL_H
#define FUSEZRAM_ZS_POOL_H

#include <stddef.h>
#include <stdint.h>

#define ZS_PAGE_SIZE 4096
#define ZS_MAX_ALLOC ZS_PAGE_SIZE	/* largest object */
#define ZS_ALIGN 16			/* class granularity */

struct zs_pool;

/*
 * zs_pool_create - an empty pool.
 * @max_bytes: upper bound on the bytes of data the caller will ever hold
 *             at once (for a store, its disk size); used to size the
 *             arena's address-space reservation, not memory.  0 picks a
 *             default.
 * Returns the pool (free with zs_pool_destroy) or NULL on ENOMEM.
 */
struct zs_pool *zs_pool_create(uint64_t max_bytes);

/*
 * zs_pool_destroy - free the pool and every object in it, returning all
 * memory to the OS.  Accepts NULL.  No other call may be in progress.
 */
void zs_pool_destroy(struct zs_pool *pool);

/*
 * zs_store - allocate an object of @len bytes (1..ZS_MAX_ALLOC) and copy
 * @src into it, atomically with respect to compaction.
 * Returns 0 and sets *@handle, -EINVAL for a bad length, -ENOSPC if the
 * memory limit would be exceeded, -ENOMEM if the OS refuses memory.  On
 * error nothing is allocated.  Takes the class lock exclusive.
 */
int zs_store(struct zs_pool *pool, const void *src, size_t len,
	     uint64_t *handle);

/*
 * zs_load - copy object @handle (stored with length @len) into @dst.
 * Returns 0.  @handle must be live and @len its stored length.  Takes the
 * class lock shared.
 */
int zs_load(struct zs_pool *pool, uint64_t handle, void *dst, size_t len);

/*
 * zs_read - call @fn(obj, len, arg) with a pointer to object @handle, held
 * stable for the duration of the call (class lock shared).  @fn must not
 * call into the pool, must not keep @obj and must not write to it.
 * Returns what @fn returns.
 */
int zs_read(struct zs_pool *pool, uint64_t handle, size_t len,
	    int (*fn)(const void *obj, size_t len, void *arg), void *arg);

/*
 * zs_free - free object @handle (stored with length @len).  Frees its span
 * at once if it becomes empty.  Cannot fail.  Takes the class lock
 * exclusive.
 */
void zs_free(struct zs_pool *pool, uint64_t handle, size_t len);

/*
 * zs_class_size - the bytes an object of @len really occupies (its class
 * size).  0 for a bad length.  Cannot fail.
 */
size_t zs_class_size(size_t len);

/*
 * zs_set_limit - cap the bytes zs_total_bytes() may reach; 0 means no cap.
 * A lower cap than current use is accepted: existing objects stay, new
 * spans are refused until use falls under it.  Cannot fail.
 */
void zs_set_limit(struct zs_pool *pool, uint64_t bytes);
uint64_t zs_get_limit(const struct zs_pool *pool);

/*
 * zs_total_bytes - memory the pool holds from the OS for data: span pages
 * plus span and handle metadata.  Approximate (atomic read).
 * Cannot fail.
 */
uint64_t zs_total_bytes(const struct zs_pool *pool);

/*
 * zs_compact - move objects out of sparse spans into fuller ones of the
 * same class, one class at a time, and free the spans that empty.
 * Returns the number of pages given back to the OS by this call.  Takes
 * each class lock exclusive in turn; readers of other classes go on.
 */
uint64_t zs_compact(struct zs_pool *pool);

/*
 * zs_fragmented - true when the pool wastes enough that compaction is
 * worth it: more than ZS_AUTO_COMPACT_PCT percent of span bytes are free
 * slots and at least ZS_AUTO_COMPACT_MIN_PAGES pages could be reclaimed.
 * Cheap (atomic reads, no lock); callers use it to trigger zs_compact().
 */
#define ZS_AUTO_COMPACT_PCT 25
#define ZS_AUTO_COMPACT_MIN_PAGES 256
int zs_fragmented(const struct zs_pool *pool);

/*
 * The reserve: up to about @bytes of free pages kept resident, so that
 * new spans are made without a page fault (see zs_arena.c).  Its pages
 * belong to no span and are not in zs_total_bytes(); they are in the
 * process's RSS.  A pool starts with none.
 *
 * Freed spans may also stay resident past the budget for a short time,
 * in the spill (up to ZS_SPILL_FACTOR times the budget, 64 MiB at most),
 * so that a wave of frees feeds the stores that follow instead of being
 * punched and faulted in again; zs_age() gives back what sat unused.
 *
 * zs_set_reserve - set the budget (0: free pages are punched at once, as
 * without a reserve; no spill either); the reserve follows at the next
 * zs_refill().  Cannot fail.
 * zs_refill - fill the reserve up to its budget (faulting the pages in
 * here); what a lowered budget leaves over counts as spill, punched here
 * if the spill is over its cap (a budget of 0: everything), else aged out
 * by zs_age(); first, make new spare span structs and handle chunks
 * (malloc) for the classes whose stores used theirs, so that the next
 * stores need not.  May sleep in the page allocator: call
 * it from a thread that serves no I/O.  Takes each class lock that needs
 * spares twice, briefly (never across a malloc), then the arena's refill
 * lock and its reserve stack locks briefly; calls from several threads
 * run one after another.  Returns the pages added.
 * zs_reserve_wanted - true when a zs_refill() or zs_age() has work: some
 * run length's stack is at or below half its share, fewer than half the
 * words ahead are populated, a spill has begun, or a class's spares are
 * down to half.  Two atomic loads.
 * zs_reserve_bytes - bytes held in the reserve now, the spill included.
 * Approximate.
 * zs_age - punch the spilled pages that no new span has taken since the
 * last call; call it every ZS_SPILL_PERIOD_MS (1 s) while
 * zs_spill_bytes() is not 0, from a thread that serves no I/O.  Takes the
 * reserve stack locks briefly.  Returns the bytes still spilled.
 * zs_spill_bytes - bytes spilled past the budget now.  Approximate.
 */
#define ZS_SPILL_FACTOR 4		/* spill: at most this times the budget */
#define ZS_SPILL_PERIOD_MS 1000		/* zs_age() every this */
void zs_set_reserve(struct zs_pool *pool, uint64_t bytes);
uint64_t zs_refill(struct zs_pool *pool);
int zs_reserve_wanted(const struct zs_pool *pool);
uint64_t zs_reserve_bytes(const struct zs_pool *pool);
uint64_t zs_age(struct zs_pool *pool);
uint64_t zs_spill_bytes(const struct zs_pool *pool);

/*
 * zs_allocs - heap allocations stores have made for the pool's metadata
 * since it was created (span structs, handle chunks, directory growth);
 * not those of zs_refill().  Freed span structs (a few per class) and one
 * handle chunk per class are kept for reuse, and zs_refill() makes new
 * ones once stores have used them, so a workload that stores and frees at
 * a steady rate, such as swap, stops adding to it once warm, and so does
 * a growing one that calls zs_refill() when zs_reserve_wanted() says so.
 * Approximate.  Cannot fail.
 */
uint64_t zs_allocs(const struct zs_pool *pool);

/* zs_pages_compacted - total pages freed by compaction so far. */
uint64_t zs_pages_compacted(const struct zs_pool *pool);

/* Per-class figures, for statistics files.  All approximate. */
struct zs_class_stats {
	unsigned size;		/* object size of the class, bytes */
	unsigned span_pages;	/* pages per span */
	unsigned objs_per_span;
	uint64_t spans;		/* spans allocated */
	uint64_t objs_used;	/* live objects */
	uint64_t objs_total;	/* slots in all spans */
};

/*
 * zs_class_count / zs_class_stats - number of distinct classes (after
 * merging) and the figures of class @i.  Returns 0 or -EINVAL for a bad
 * index.  Takes the class lock shared.
 */
unsigned zs_class_count(const struct zs_pool *pool);
int zs_get_class_stats(struct zs_pool *pool, unsigned i,
		       struct zs_class_stats *out);

#endif /* FUSEZRAM_ZS_POOL_H */
