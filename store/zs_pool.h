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
 * Handle 0 is never returned and means "no object".  Handles are below
 * 2^49 (an entry index of at most 41 bits, and the class's 8).
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
 * @src into it, atomically with respect to compaction.  Makes no malloc
 * and no syscall; takes no page fault while the cache keeps up.
 * Returns 0 and sets *@handle, -EINVAL for a bad length, -ENOSPC if the
 * memory limit would be exceeded, -ENOMEM if the arena is full.  On
 * error nothing is allocated.  Takes the class lock exclusive, and when a
 * span or handle page is made, the span-struct lock and the cache lock.
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
 * at once if it becomes empty (its pages go to the cache, or are punched
 * if the cache has no room).  Cannot fail.  Takes the class lock
 * exclusive, then the span-struct and cache locks if a span emptied.
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
 * zs_total_bytes - memory the pool holds for data: span pages plus the
 * pages of span structs and handles, in whole pages.  0 for an empty
 * pool.  Approximate (atomic read).  Cannot fail.
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
 * The cache: free pages of the arena kept resident, so that a new span is
 * written without a page fault (zs_arena.c has the rules).  Its pages
 * belong to no span and are not in zs_total_bytes(); they are in the
 * process's RSS.  A pool starts with a target of 0: no cache.
 *
 * zs_set_cache - the target: @bytes (rounded down to pages) kept in runs
 * of 8 pages, faulted in by zs_cache_refill(); freed spans may stay past
 * it, up to ZS_CACHE_ROOM_FACTOR times it (64 MiB at most), until they
 * age out.  0 turns the cache off: freed pages are punched at once.
 * Takes effect at the next zs_cache_refill().  Cannot fail.
 * zs_cache_wanted - true when the background thread has work: the long
 * runs are down to half the target, or a run was cached that will age
 * out and zs_cache_age() has not been told.  One atomic load; the store
 * checks it after each zs_store() and zs_free().
 * zs_cache_refill - clear the wanted signal, punch what a lowered target
 * left past the room, and fill the target with fresh runs faulted in here
 * (so the I/O path does not have to; where the kernel refuses to fault
 * them in ahead, they fault in at first use).  May sleep in the page
 * allocator: call it from a thread that serves no I/O.  Takes the
 * arena's refill lock and its cache lock briefly; calls from several
 * threads run one after another.  Returns the bytes added.
 * zs_cache_age - punch the runs cached ZS_CACHE_AGE_MS ago or more and
 * not used since, but the target's.  Call it from a thread that serves no
 * I/O, when zs_cache_wanted() says so and then when it asks: returns the
 * milliseconds until the next run ages out, 0 if none will.  Takes the
 * cache lock per run length.
 * zs_cache_bytes - bytes held in the cache now.  Approximate.
 */
#define ZS_CACHE_ROOM_FACTOR 4		/* room: this times the target */
#define ZS_CACHE_AGE_MS 1000		/* a run unused this long goes */
void zs_set_cache(struct zs_pool *pool, uint64_t bytes);
int zs_cache_wanted(const struct zs_pool *pool);
uint64_t zs_cache_refill(struct zs_pool *pool);
unsigned zs_cache_age(struct zs_pool *pool);
uint64_t zs_cache_bytes(const struct zs_pool *pool);

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
