/*
 * zs_pool: a size-classed allocator for compressed pages, after the
 * kernel's zsmalloc.  The contract is in zs_pool.h; this is the design.
 *
 * Locking:
 *	class->lock (zr_rwlock, zr_lock_i.h; one per class)
 *	  -> pool->spans_lock (leaf mutex but for the arena: span-struct
 *	     pages)
 *	    -> arena cache lock (leaf mutex), bitmap and counters
 *	       (lock-free, never block)
 * A thread holds at most one class lock.  zs_load()/zs_read()/
 * zs_get_class_stats() take it shared; zs_store(), zs_free() and
 * zs_compact() exclusive.  zs_read() calls its callback with the lock
 * held shared: the callback must not call into the pool (a nested class
 * lock could deadlock against a writer of that class).  Statistics are
 * atomics written under the class lock and read without it, so they are
 * approximate.
 *
 * Size classes
 * ------------
 * An object of len bytes is rounded up to a multiple of 16 (ZS_ALIGN):
 * 256 raw sizes, 16..4096.  Objects of one size are packed end to end
 * into spans, runs of 1..8 contiguous pages; an object may straddle a
 * page boundary, and since a span is contiguous in our address space it
 * is still one plain memcpy.  For each size the span length is the one
 * that wastes the smallest fraction of the span (the tail that no whole
 * object fits in); ties go to the shorter span, which costs less to
 * create, free and compact.  Sizes whose spans come out alike (the same
 * pages and objects per span) are one class, of the largest of those
 * sizes, as in zsmalloc: a span holds no more objects of the smaller
 * size, so keeping them apart would only multiply the partly-full spans.
 * That leaves 120 classes, none with more than 256 objects a span.  From
 * 3648 bytes up no span length beats one object per page, so those sizes
 * all fall into the 4096 class, whose spans are single raw pages.  That
 * class needs no span struct at all (a span is one object, full or
 * gone): its handle entry holds the page.
 *
 * Unlike zsmalloc we keep no header inside the object (zsmalloc stores
 * the handle in front of each object, making it 8 bytes bigger, and so
 * often one class bigger).
 *
 * The arena
 * ---------
 * Every page the pool uses, for objects and for its own metadata, comes
 * from zs_arena.c: one memfd, ftruncate'd sparse and mapped MAP_SHARED
 * once.  The daemon backs a swap device and so will mlockall(MCL_CURRENT
 * | MCL_FUTURE | MCL_ONFAULT).  That rules out the obvious designs:
 * malloc'd spans never give memory back; MADV_DONTNEED fails with EINVAL
 * on locked VMAs; and an mmap/munmap per span leaves the address space in
 * holes, a VMA per surviving run, up against vm.max_map_count (65530
 * VMAs: 256 MiB of one-page spans).  A memfd gives one VMA for the whole
 * arena, and fallocate(PUNCH_HOLE) frees a run's pages at once whether or
 * not they are locked (a test checks that RssShmem falls in a child that
 * has mlockall()ed).  Only written pages cost memory, so the arena is
 * sized 4 * max_bytes + 64 MiB of address space: data that fragments
 * before compaction has room, and the headroom costs nothing but address
 * space (where that is short, zs_arena_init() settles for less).  It does
 * not grow (see TODO).
 *
 * Free pages are found through a bitmap, one bit a page, claimed and
 * released with compare-and-swap.  Between the bitmap and the pool sits
 * the arena's cache of free runs still resident, so that a new span is
 * written without a page fault (zs_arena.c has its rules: a target the
 * store's background thread keeps faulted in, a room for waves of frees,
 * and an age after which a run goes back to the OS).
 *
 * Metadata
 * --------
 * zsmalloc takes its handles and zspage structs from slab caches of its
 * own; we take ours from arena pages, so that storing an object makes no
 * malloc at all, by construction.  Two kinds of page:
 *
 *  - handle pages, a class's own: a 24-byte header, then 509 entries of
 *    8 bytes.  A handle is the entry's place in the arena, (page * 512 +
 *    entry) << 8 | class: never 0, and it never changes.  The entry holds
 *    the object's current place: its span struct's address and its slot,
 *    packed (a span struct lives below 2^56 and is 64-byte aligned, so
 *    address / 16 takes 52 bits and the slot the top 12).  Loading an
 *    object is handle -> entry -> span -> arena page + slot * size.  (In
 *    the 4096 class the entry is (page + 1) << 16 instead.)  Free entries
 *    of a page are a list threaded through the entries, marked by the top
 *    bit; pages with free entries are a list of their own, and every
 *    handle page of the class is on a second list, which compaction
 *    walks.  A free handle is reused before a page is added, and a page
 *    whose entries are all free is given back at once;
 *  - span pages, shared by all classes: 64 units of 64 bytes, the first
 *    a header (a bitmap of free units and the links of the pool's list of
 *    pages with free units), each other a span struct: the span's list
 *    links, its first page, and a bitmap of its used slots (256 bits).
 *    A page whose units are all free is given back at once.
 *
 * So metadata is 8 bytes per object and 64 per span, plus at most a
 * partly used handle page per class and the span pages' free units: for
 * a 2512-byte class (13 objects in 8 pages) 0.5% of the span.  All of it
 * is in whole pages, counted in zs_total_bytes() like the spans' own.
 * Handle and span pages come and go through the same arena cache as the
 * spans' pages.
 *
 * Fullness
 * --------
 * The spans of a class sit in ZS_NR_PARTIAL lists by how full they are
 * (tenths, as zsmalloc's fullness groups) plus a list of full spans, and
 * a bitmask says which lists are non-empty.  A new object goes into the
 * first span of the fullest non-empty partial list: the fullest spans
 * fill up and the sparse ones are left to empty.  A span is freed the
 * moment its last object is.
 *
 * Compaction
 * ----------
 * Per class, under its exclusive lock: while the class has a whole span's
 * worth of free slots, take the sparsest spans off their lists
 * (isolated), as many as the others' free slots can absorb.  Then walk
 * the class's handle pages: each entry that points into an isolated span
 * has its object copied, one memcpy, into the fullest span with room,
 * and is rewritten.  Stores never choose an isolated span, so once the
 * walk is through, the isolated spans are empty and are freed (a store
 * that took the room meanwhile only leaves a span isolated-then-restored).
 * The lock is dropped every handle page or ZS_COMPACT_BATCH bytes copied,
 * whichever comes first (the walk's page is pinned meanwhile), and the
 * spans' pages are given back while it is not held, so readers and
 * writers wait for at most 32 KiB of copying.  Walking the handles in
 * place of zsmalloc's in-object handle costs a read of 8 bytes per
 * object of the class per compaction, and saves 4 bytes per object held.
 *
 * Accounting and the limit
 * ------------------------
 * One counter (struct zs_acct) holds every page the pool holds from the
 * arena: span pages, handle pages and span-struct pages.  The pool's
 * fixed structs (about 30 KiB, allocated at create), the arena's bitmap
 * (32 KiB per GiB of arena used) and its cache are left out, so that an
 * empty pool counts 0, as zram's does.  Anything new is charged before it
 * is allocated, by a compare-and-swap that fails with -ENOSPC rather than
 * pass the limit, and uncharged after it is freed, so the counter never
 * undershoots the truth and never passes the limit.  Only creating a span
 * or a handle page can fail: storing into a span with room is always
 * allowed, even over a lowered limit.
 *
 * Costs
 * -----
 * zs_store() and zs_load() make no syscall and no malloc.  zs_store()
 * takes no page fault while the arena's cache keeps up (its target is
 * refilled in the background, and freed runs feed it).  zs_free() makes
 * one syscall (the punch) when a span empties and the cache has no room.
 * Shared state touched on the hot path is the atomic byte counter, the
 * cache's lock and the span-page lock, and only when a span or a handle
 * page comes or goes.
 *
 * TODO: the arena does not grow past its size at create; compaction does
 * not repack handle pages or span-struct pages (a page with one live
 * entry stays: with 2 of 3 objects freed at random and the rest
 * compacted, they cost 0.7% of the data); zs_compact() has no way to
 * stop early.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/zs_pool.h"
#include "store/zs_arena_i.h"
#include "store/zr_lock_i.h"

#define ZS_NR_SIZES (ZS_MAX_ALLOC / ZS_ALIGN)	/* raw sizes, 16..4096 */
#define ZS_NR_PARTIAL 10	/* fullness lists of partly used spans */
#define ZS_GROUP_FULL ZS_NR_PARTIAL
#define ZS_PARTIAL_MASK ((1u << ZS_NR_PARTIAL) - 1)
#define ZS_MAX_OBJS 256		/* per span: the span struct's bitmap */

#define ZS_CLASS_BITS 8		/* handle = entry index << 8 | class */
#define ZS_PAGE_ENTS (ZS_PAGE_SIZE / 8)	/* 8-byte entries a page */
#define ZS_HPAGE_FIRST 3	/* entries [0, 3) hold the page's header */
#define ZS_PNONE UINT32_MAX	/* end of a list of pages */
#define ZS_HENT_FREE (1ULL << 63)	/* a free entry: next free | this */
#define ZS_HENT_NONE 0xffffu	/* end of a page's free-entry list */
#define ZS_ENT_SLOT_SHIFT 52	/* handle entry: slot << 52 | span / 16 */

#define ZS_UNIT 64		/* a span struct, in a span-struct page */
#define ZS_UNITS (ZS_PAGE_SIZE / ZS_UNIT)
#define ZS_UNITS_ALL_FREE (~1ULL)	/* unit 0 is the header */

#define ZS_COMPACT_BATCH (32 << 10)	/* bytes copied per lock hold */

/* Default for max_bytes == 0 (address space only, see the essay). */
#define ZS_DEFAULT_MAX_BYTES (16ULL << 30)
#define ZS_ARENA_EXTRA (64ULL << 20)

/*
 * struct zs_acct - bytes held from the arena, and the cap on them.
 * Lock-free: charges are compare-and-swap, so the cap is never overshot
 * even when classes charge at once.
 */
struct zs_acct {
	_Atomic uint64_t total;		/* bytes held now */
	_Atomic uint64_t limit;		/* cap on total, 0 = none */
};

/*
 * struct zs_span - one span: a run of class->span_pages arena pages.  One
 * unit of a span-struct page (64-byte aligned).
 */
struct zs_span {
	struct zs_span *prev, *next;	/* fullness or isolated list; class
					 * lock */
	uint32_t page;			/* first arena page; fixed */
	uint16_t inuse;			/* used slots; class lock */
	uint8_t isolated;		/* compaction is emptying it; class
					 * lock */
	uint8_t pad;
	uint64_t used[ZS_MAX_OBJS / 64];	/* bit per slot; class lock */
	uint64_t pad2;
};

/* struct zs_hpage - the header of a handle page (entries [0, 3)). */
struct zs_hpage {
	uint32_t prev_free, next_free;	/* class's pages with free entries */
	uint32_t prev, next;		/* all the class's handle pages */
	uint16_t used;			/* entries in use */
	uint16_t free;			/* first free entry or ZS_HENT_NONE */
	uint16_t pinned;		/* compaction walks here (a count: several
					 * may run at once): kept */
	uint16_t pad;
};

/* struct zs_upage - the header of a span-struct page (unit 0). */
struct zs_upage {
	uint64_t free;			/* bit i: unit i free; spans_lock */
	uint32_t prev, next;		/* pages with free units; spans_lock */
};

_Static_assert(sizeof(struct zs_span) == ZS_UNIT, "span struct: one unit");
_Static_assert(sizeof(struct zs_hpage) == ZS_HPAGE_FIRST * 8,
	       "handle page header");

/* struct zs_classdef - the shape of a class (computed once, shared). */
struct zs_classdef {
	uint16_t size;			/* object size, bytes */
	uint16_t pages;			/* pages per span */
	uint16_t objs;			/* objects per span */
};

struct zs_class {
	/*
	 * lock: guards every field below marked "lock" and the spans and
	 * handle pages of the class, including the object bytes (so
	 * compaction never moves a half-written object).  A zr_rwlock
	 * (spin briefly, then futex; see zr_lock_i.h for why not glibc's
	 * rwlock).  Held for one memcpy of an object, or up to
	 * ZS_COMPACT_BATCH bytes' worth when compacting.
	 * Measured, one thread on a 2-CPU VM, 1.2..3.7 KiB objects: zs_load
	 * 0.22 us, zs_free 0.22 us, zs_store 1.6 us (of which ~1.4 us are
	 * the page faults of fresh span pages, taken under the lock).
	 */
	struct zr_rwlock lock;
	/* Fixed at create: */
	unsigned id;			/* index in pool->classes */
	unsigned size, span_pages, objs;
	int huge;			/* 1 object a page, no span struct */
	uint64_t span_bytes;		/* bytes charged per span's pages */
	/* lock: */
	struct zs_span *group[ZS_GROUP_FULL + 1];	/* fullness lists */
	unsigned gmask;			/* bit g: group[g] non-empty */
	struct zs_span *isolated;	/* spans compaction is emptying */
	uint32_t hfree;			/* first handle page with free entries */
	uint32_t hpages;		/* first of all handle pages */
	/* Written under lock (exclusive), read anywhere (approximate): */
	_Atomic uint64_t nr_spans;
	_Atomic uint64_t nr_used;
} __attribute__((aligned(64)));

struct zs_pool {
	struct zs_acct acct;		/* lock-free */
	struct zs_arena arena;		/* see zs_arena_i.h */
	/*
	 * spans_lock: guards the span-struct pages' headers and uspans.
	 * Taken when a span is created or freed, under a class lock or
	 * none; takes the arena's cache lock for a page.
	 */
	pthread_mutex_t spans_lock;
	uint32_t uspans;		/* first span-struct page with a free
					 * unit; spans_lock */
	_Atomic uint64_t pages_compacted;
	unsigned nr_classes;		/* fixed */
	struct zs_class *classes;	/* fixed array, [nr_classes] */
};


/* The class table, the same for every pool; built once. */
static struct zs_classdef zs_defs[ZS_NR_SIZES];	/* ascending size */
static uint8_t zs_class_of[ZS_NR_SIZES];	/* raw size -> class */
static unsigned zs_nr_defs;
static pthread_once_t zs_defs_once = PTHREAD_ONCE_INIT;

/* Pages per span for objects of @size: least wasted fraction, ties short. */
static unsigned zs_span_pages_for(unsigned size)
{
	unsigned best = 1, best_waste = ZS_PAGE_SIZE % size, p;

	for (p = 2; p <= ZS_MAX_SPAN_PAGES; p++) {
		unsigned waste = p * ZS_PAGE_SIZE % size;

		/* waste / p < best_waste / best, without division */
		if (waste * best < best_waste * p) {
			best = p;
			best_waste = waste;
		}
	}
	return best;
}

static void zs_defs_init(void)
{
	struct zs_classdef raw[ZS_NR_SIZES];
	uint8_t top[ZS_NR_SIZES];	/* raw size -> class, from the top */
	unsigned i, n = 0;

	for (i = 0; i < ZS_NR_SIZES; i++) {
		raw[i].size = (uint16_t)((i + 1) * ZS_ALIGN);
		raw[i].pages = (uint16_t)zs_span_pages_for(raw[i].size);
		raw[i].objs = (uint16_t)(raw[i].pages * ZS_PAGE_SIZE /
					 raw[i].size);
		assert(raw[i].objs <= ZS_MAX_OBJS);
	}
	/* Merge downwards into the largest size of each alike run. */
	for (i = ZS_NR_SIZES; i-- > 0;) {
		if (i == ZS_NR_SIZES - 1 || raw[i].pages != raw[i + 1].pages ||
		    raw[i].objs != raw[i + 1].objs)
			zs_defs[n++] = raw[i];
		top[i] = (uint8_t)(n - 1);
	}
	/* Number the classes in ascending size. */
	for (i = 0; i < n / 2; i++) {
		struct zs_classdef t = zs_defs[i];

		zs_defs[i] = zs_defs[n - 1 - i];
		zs_defs[n - 1 - i] = t;
	}
	for (i = 0; i < ZS_NR_SIZES; i++)
		zs_class_of[i] = (uint8_t)(n - 1 - top[i]);
	zs_nr_defs = n;
}

static void zs_defs_get(void)
{
	pthread_once(&zs_defs_once, zs_defs_init);
}

/* Class index of a valid length (1..ZS_MAX_ALLOC). */
static unsigned zs_class_index(size_t len)
{
	return zs_class_of[(len + ZS_ALIGN - 1) / ZS_ALIGN - 1];
}



/* Class lock wrappers, so the lock can change without touching callers. */
static void zs_class_lock(struct zs_class *c)
{
	zr_rw_lock_write(&c->lock);
}

static void zs_class_unlock(struct zs_class *c)
{
	zr_rw_unlock_write(&c->lock);
}

static void zs_class_lock_shared(struct zs_class *c)
{
	zr_rw_lock_read(&c->lock);
}

static void zs_class_unlock_shared(struct zs_class *c)
{
	zr_rw_unlock_read(&c->lock);
}

/* Statistics counters: written only with the class lock held exclusive. */
static void zs_stat_add(_Atomic uint64_t *v, int64_t d)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed)
			      + (uint64_t)d, memory_order_relaxed);
}

static uint64_t zs_stat(const _Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* ---- The byte account ------------------------------------------------- */

/*
 * zs_charge - add @bytes to the account unless that would pass the limit.
 * Returns 0 or -ENOSPC (nothing charged).  Lock-free.
 */
static int zs_charge(struct zs_pool *pool, uint64_t bytes)
{
	struct zs_acct *ac = &pool->acct;
	uint64_t cur = atomic_load_explicit(&ac->total, memory_order_relaxed);
	uint64_t lim;

	do {
		lim = atomic_load_explicit(&ac->limit, memory_order_relaxed);
		if (lim && cur + bytes > lim)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(&ac->total, &cur,
			cur + bytes, memory_order_relaxed,
			memory_order_relaxed));
	return 0;
}

/* zs_uncharge - give back @bytes charged before.  Cannot fail. */
static void zs_uncharge(struct zs_pool *pool, uint64_t bytes)
{
	atomic_fetch_sub_explicit(&pool->acct.total, bytes,
				  memory_order_relaxed);
}

/* ---- Handle pages ------------------------------------------------------ */

static struct zs_hpage *zs_hpage(const struct zs_pool *pool, uint32_t page)
{
	return (struct zs_hpage *)zs_arena_addr(&pool->arena, page);
}

/* The entry of handle index @idx (page * 512 + entry). */
static uint64_t *zs_hent(const struct zs_pool *pool, uint64_t idx)
{
	assert(idx % ZS_PAGE_ENTS >= ZS_HPAGE_FIRST);
	return (uint64_t *)zs_arena_addr(&pool->arena, 0) + idx;
}

static uint64_t zs_ent_pack(const struct zs_span *s, unsigned slot)
{
	return (uint64_t)(uintptr_t)s >> 4 |
	       (uint64_t)slot << ZS_ENT_SLOT_SHIFT;
}

static struct zs_span *zs_ent_span(uint64_t e)
{
	return (struct zs_span *)(uintptr_t)
		((e & ((1ULL << ZS_ENT_SLOT_SHIFT) - 1)) << 4);
}

static unsigned zs_ent_slot(uint64_t e)
{
	return (unsigned)(e >> ZS_ENT_SLOT_SHIFT);
}

/* The 4096 class: the entry is the page, (page + 1) << 16 (see essay). */
static uint64_t zs_ent_huge(uint64_t page)
{
	return (page + 1) << 16;
}

static uint64_t zs_ent_huge_page(uint64_t e)
{
	return (e >> 16) - 1;
}

/* Take handle page @p off the class's list of pages with free entries. */
static void zs_hfree_del_locked(struct zs_pool *pool, struct zs_class *c,
				uint32_t p)
{
	struct zs_hpage *h = zs_hpage(pool, p);

	if (h->prev_free != ZS_PNONE)
		zs_hpage(pool, h->prev_free)->next_free = h->next_free;
	else
		c->hfree = h->next_free;
	if (h->next_free != ZS_PNONE)
		zs_hpage(pool, h->next_free)->prev_free = h->prev_free;
}

static void zs_hfree_add_locked(struct zs_pool *pool, struct zs_class *c,
				uint32_t p)
{
	struct zs_hpage *h = zs_hpage(pool, p);

	h->prev_free = ZS_PNONE;
	h->next_free = c->hfree;
	if (c->hfree != ZS_PNONE)
		zs_hpage(pool, c->hfree)->prev_free = p;
	c->hfree = p;
}

/*
 * Make arena page @p (charged by the caller) an empty handle page of @c,
 * first on both lists.  Cannot fail.
 */
static void zs_hpage_init_locked(struct zs_pool *pool, struct zs_class *c,
				 uint32_t p)
{
	struct zs_hpage *h = zs_hpage(pool, p);
	uint64_t *ent = (uint64_t *)h;
	unsigned i;

	for (i = ZS_HPAGE_FIRST; i < ZS_PAGE_ENTS; i++)
		ent[i] = ZS_HENT_FREE |
			 (i + 1 < ZS_PAGE_ENTS ? i + 1 : ZS_HENT_NONE);
	*h = (struct zs_hpage){ .prev = ZS_PNONE, .next = c->hpages,
				.free = ZS_HPAGE_FIRST };
	if (c->hpages != ZS_PNONE)
		zs_hpage(pool, c->hpages)->prev = p;
	c->hpages = p;
	zs_hfree_add_locked(pool, c, p);
}

/*
 * Take empty handle page @p off both lists.  The caller gives the page
 * back to the arena and uncharges it (after unlocking, if it likes).
 */
static void zs_hpage_drop_locked(struct zs_pool *pool, struct zs_class *c,
				 uint32_t p)
{
	struct zs_hpage *h = zs_hpage(pool, p);

	assert(!h->used && !h->pinned);
	zs_hfree_del_locked(pool, c, p);
	if (h->prev != ZS_PNONE)
		zs_hpage(pool, h->prev)->next = h->next;
	else
		c->hpages = h->next;
	if (h->next != ZS_PNONE)
		zs_hpage(pool, h->next)->prev = h->prev;
}

/* Give back a dropped handle page, or a run, and uncharge it. */
static void zs_page_release(struct zs_pool *pool, uint64_t page,
			    unsigned pages)
{
	zs_arena_put(&pool->arena, page, pages);
	zs_uncharge(pool, (uint64_t)pages * ZS_PAGE_SIZE);
}

/* Take a free handle entry; one must exist.  Returns its index. */
static uint64_t zs_hent_alloc_locked(struct zs_pool *pool, struct zs_class *c)
{
	uint32_t p = c->hfree;
	struct zs_hpage *h = zs_hpage(pool, p);
	uint64_t *ent = (uint64_t *)h;
	unsigned e = h->free;

	assert(p != ZS_PNONE && e != ZS_HENT_NONE &&
	       (ent[e] & ZS_HENT_FREE));
	h->free = (uint16_t)ent[e];
	h->used++;
	if (h->free == ZS_HENT_NONE)
		zs_hfree_del_locked(pool, c, p);
	return (uint64_t)p * ZS_PAGE_ENTS + e;
}

/*
 * Free handle entry @idx.  Returns the handle page if it emptied and was
 * dropped (the caller releases it), else ZS_PNONE.
 */
static uint32_t zs_hent_free_locked(struct zs_pool *pool, struct zs_class *c,
				    uint64_t idx)
{
	uint32_t p = (uint32_t)(idx / ZS_PAGE_ENTS);
	struct zs_hpage *h = zs_hpage(pool, p);
	unsigned e = (unsigned)(idx % ZS_PAGE_ENTS);

	((uint64_t *)h)[e] = ZS_HENT_FREE | h->free;
	if (h->free == ZS_HENT_NONE)
		zs_hfree_add_locked(pool, c, p);
	h->free = (uint16_t)e;
	if (--h->used || h->pinned)
		return ZS_PNONE;
	zs_hpage_drop_locked(pool, c, p);
	return p;
}

/* ---- Span structs ------------------------------------------------------ */

static struct zs_upage *zs_upage(const struct zs_pool *pool, uint32_t page)
{
	return (struct zs_upage *)zs_arena_addr(&pool->arena, page);
}

static void zs_uspans_del_locked(struct zs_pool *pool, uint32_t p)
{
	struct zs_upage *u = zs_upage(pool, p);

	if (u->prev != ZS_PNONE)
		zs_upage(pool, u->prev)->next = u->next;
	else
		pool->uspans = u->next;
	if (u->next != ZS_PNONE)
		zs_upage(pool, u->next)->prev = u->prev;
}

static void zs_uspans_add_locked(struct zs_pool *pool, uint32_t p)
{
	struct zs_upage *u = zs_upage(pool, p);

	u->prev = ZS_PNONE;
	u->next = pool->uspans;
	if (pool->uspans != ZS_PNONE)
		zs_upage(pool, pool->uspans)->prev = p;
	pool->uspans = p;
}

/*
 * zs_span_struct_alloc - a span struct from a span-struct page, adding a
 * page (charged here) if none has a free unit.  Returns it, or NULL with
 * *@err set to -ENOSPC or -ENOMEM.  Takes spans_lock.
 */
static struct zs_span *zs_span_struct_alloc(struct zs_pool *pool, int *err)
{
	struct zs_upage *u;
	int64_t page = -1;
	unsigned i;
	uint32_t p;

	pthread_mutex_lock(&pool->spans_lock);
	if (pool->uspans == ZS_PNONE) {
		pthread_mutex_unlock(&pool->spans_lock);
		*err = zs_charge(pool, ZS_PAGE_SIZE);
		if (*err)
			return NULL;
		page = zs_arena_get(&pool->arena, 1);
		if (page < 0) {
			zs_uncharge(pool, ZS_PAGE_SIZE);
			*err = (int)page;
			return NULL;
		}
		pthread_mutex_lock(&pool->spans_lock);
		zs_upage(pool, (uint32_t)page)->free = ZS_UNITS_ALL_FREE;
		zs_uspans_add_locked(pool, (uint32_t)page);
	}
	p = pool->uspans;
	u = zs_upage(pool, p);
	i = (unsigned)__builtin_ctzll(u->free);
	u->free &= ~(1ULL << i);
	if (!u->free)
		zs_uspans_del_locked(pool, p);
	pthread_mutex_unlock(&pool->spans_lock);
	return (struct zs_span *)((char *)u + i * ZS_UNIT);
}

/* zs_span_struct_free - give a span struct back.  Takes spans_lock. */
static void zs_span_struct_free(struct zs_pool *pool, struct zs_span *s)
{
	uintptr_t off = (uintptr_t)((char *)s - zs_arena_addr(&pool->arena, 0));
	uint32_t p = (uint32_t)(off / ZS_PAGE_SIZE);
	struct zs_upage *u = zs_upage(pool, p);
	unsigned i = (unsigned)(off % ZS_PAGE_SIZE / ZS_UNIT);
	bool empty;

	pthread_mutex_lock(&pool->spans_lock);
	if (!u->free)
		zs_uspans_add_locked(pool, p);
	u->free |= 1ULL << i;
	empty = u->free == ZS_UNITS_ALL_FREE;
	if (empty)
		zs_uspans_del_locked(pool, p);
	pthread_mutex_unlock(&pool->spans_lock);
	if (empty)
		zs_page_release(pool, p, 1);
}

/* ---- Spans --------------------------------------------------------------- */

static unsigned zs_group_of(const struct zs_class *c, unsigned inuse)
{
	if (inuse == c->objs)
		return ZS_GROUP_FULL;
	return inuse * ZS_NR_PARTIAL / c->objs;
}

/* Lists are by s->inuse: the callers move a span when inuse changes. */
static void zs_group_add_locked(struct zs_class *c, struct zs_span *s)
{
	unsigned g = zs_group_of(c, s->inuse);

	s->prev = NULL;
	s->next = c->group[g];
	if (s->next)
		s->next->prev = s;
	c->group[g] = s;
	c->gmask |= 1u << g;
}

static void zs_group_del_locked(struct zs_class *c, struct zs_span *s,
				unsigned g)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->group[g] = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (!c->group[g])
		c->gmask &= ~(1u << g);
}

/* Move @s to its list after s->inuse changed from @old. */
static void zs_regroup_locked(struct zs_class *c, struct zs_span *s,
			      unsigned old)
{
	unsigned g = zs_group_of(c, old);

	if (zs_group_of(c, s->inuse) != g) {
		zs_group_del_locked(c, s, g);
		zs_group_add_locked(c, s);
	}
}

/* The fullest partly used span, or NULL. */
static struct zs_span *zs_fullest_locked(struct zs_class *c)
{
	unsigned mask = c->gmask & ZS_PARTIAL_MASK;

	if (!mask)
		return NULL;
	return c->group[31 - (unsigned)__builtin_clz(mask)];
}

static char *zs_obj_addr(const struct zs_pool *pool, const struct zs_class *c,
			 const struct zs_span *s, unsigned slot)
{
	return zs_arena_addr(&pool->arena, s->page) + (size_t)slot * c->size;
}

/*
 * Create an empty span and put it on the lowest fullness list.  The caller
 * has charged c->span_bytes.  Returns 0, -ENOSPC (a span-struct page over
 * the limit) or -ENOMEM (the arena is full).
 */
static int zs_span_create_locked(struct zs_pool *pool, struct zs_class *c)
{
	struct zs_span *s;
	int64_t page;
	int ret;

	page = zs_arena_get(&pool->arena, c->span_pages);
	if (page < 0)
		return (int)page;
	s = zs_span_struct_alloc(pool, &ret);
	if (!s) {
		zs_arena_put(&pool->arena, (uint64_t)page, c->span_pages);
		return ret;
	}
	/* The handle entry keeps address / 16 in 52 bits. */
	assert((uint64_t)(uintptr_t)s >> (ZS_ENT_SLOT_SHIFT + 4) == 0);
	memset(s, 0, sizeof(*s));
	s->page = (uint32_t)page;
	zs_group_add_locked(c, s);
	zs_stat_add(&c->nr_spans, 1);
	return 0;
}

/* zs_span_release - give back an empty span taken off its lists. */
static void zs_span_release(struct zs_pool *pool, struct zs_class *c,
			    struct zs_span *s)
{
	uint32_t page = s->page;

	zs_span_struct_free(pool, s);
	zs_page_release(pool, page, c->span_pages);
}

/* Put handle @idx's object in a free slot of @s.  Returns the slot. */
static unsigned zs_slot_alloc_locked(struct zs_class *c, struct zs_span *s)
{
	unsigned w, slot;

	for (w = 0; ~s->used[w] == 0; w++)
		assert(w + 1 < ZS_MAX_OBJS / 64);
	slot = w * 64 + (unsigned)__builtin_ctzll(~s->used[w]);
	assert(slot < c->objs && !s->isolated);
	s->used[w] |= 1ULL << (slot % 64);
	s->inuse++;
	zs_regroup_locked(c, s, s->inuse - 1u);
	return slot;
}

/*
 * Free @slot of @s.  Returns true if @s is now empty and not isolated, in
 * which case it has been taken off its list and counted out: the caller
 * releases it.  An isolated span is left to compaction.
 */
static bool zs_slot_free_locked(struct zs_class *c, struct zs_span *s,
				unsigned slot)
{
	assert((s->used[slot / 64] >> (slot % 64) & 1) && s->inuse);
	s->used[slot / 64] &= ~(1ULL << (slot % 64));
	s->inuse--;
	if (s->isolated)
		return false;
	if (s->inuse) {
		zs_regroup_locked(c, s, s->inuse + 1u);
		return false;
	}
	zs_group_del_locked(c, s, zs_group_of(c, 1));
	zs_stat_add(&c->nr_spans, -1);
	return true;
}

/*
 * Make sure the class has a free handle entry and a span with room,
 * charging first what must be created; for the huge class, take the page
 * the object will have to itself and return it in *@page.  On failure
 * nothing new is left behind.  Returns 0, -ENOSPC or -ENOMEM.
 */
static int zs_prepare_locked(struct zs_pool *pool, struct zs_class *c,
			     int64_t *page)
{
	bool need_h = c->hfree == ZS_PNONE;
	bool need_s = c->huge || !(c->gmask & ZS_PARTIAL_MASK);
	uint64_t cost = (need_h ? ZS_PAGE_SIZE : 0) +
			(need_s ? c->span_bytes : 0);
	int64_t hp = -1;
	int ret;

	if (!cost)
		return 0;
	ret = zs_charge(pool, cost);
	if (ret)
		return ret;
	if (need_h) {
		hp = zs_arena_get(&pool->arena, 1);
		if (hp < 0) {
			ret = (int)hp;
			goto out_uncharge;
		}
		zs_hpage_init_locked(pool, c, (uint32_t)hp);
	}
	if (c->huge) {
		*page = zs_arena_get(&pool->arena, 1);
		if (*page < 0) {
			ret = (int)*page;
			goto out_drop_hpage;
		}
	} else if (need_s) {
		ret = zs_span_create_locked(pool, c);
		if (ret)
			goto out_drop_hpage;
	}
	return 0;

out_drop_hpage:
	if (hp >= 0) {
		zs_hpage_drop_locked(pool, c, (uint32_t)hp);
		zs_arena_put(&pool->arena, (uint64_t)hp, 1);
	}
out_uncharge:
	zs_uncharge(pool, cost);
	return ret;
}

/* ---- The API ------------------------------------------------------------- */

struct zs_pool *zs_pool_create(uint64_t max_bytes)
{
	struct zs_pool *pool;
	uint64_t arena;
	unsigned i;

	zs_defs_get();
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->nr_classes = zs_nr_defs;
	pool->classes = aligned_alloc(64, zs_nr_defs * sizeof(struct zs_class));
	if (!pool->classes)
		goto out_free_pool;
	memset(pool->classes, 0, zs_nr_defs * sizeof(struct zs_class));

	if (!max_bytes)
		max_bytes = ZS_DEFAULT_MAX_BYTES;
	if (max_bytes > (1ULL << 42))
		max_bytes = 1ULL << 42;	/* the arena caps itself at 16 TiB */
	arena = 4 * max_bytes + ZS_ARENA_EXTRA;
	if (zs_arena_init(&pool->arena, arena) < 0)
		goto out_free_classes;
	pthread_mutex_init(&pool->spans_lock, NULL);
	pool->uspans = ZS_PNONE;

	for (i = 0; i < zs_nr_defs; i++) {
		struct zs_class *c = &pool->classes[i];

		c->id = i;
		c->size = zs_defs[i].size;
		c->span_pages = zs_defs[i].pages;
		c->objs = zs_defs[i].objs;
		c->huge = c->objs == 1;
		c->span_bytes = (uint64_t)c->span_pages * ZS_PAGE_SIZE;
		c->hfree = ZS_PNONE;
		c->hpages = ZS_PNONE;
		atomic_init(&c->lock.word, 0);
	}
	return pool;

out_free_classes:
	free(pool->classes);
out_free_pool:
	free(pool);
	return NULL;
}

void zs_pool_destroy(struct zs_pool *pool)
{
	if (!pool)
		return;
	/* Everything lives in the arena: closing it frees it all at once. */
	zs_arena_fini(&pool->arena);
	pthread_mutex_destroy(&pool->spans_lock);
	free(pool->classes);
	free(pool);
}

size_t zs_class_size(size_t len)
{
	if (!len || len > ZS_MAX_ALLOC)
		return 0;
	zs_defs_get();
	return zs_defs[zs_class_index(len)].size;
}

/* The class of @handle, checked against the length the caller gives. */
static struct zs_class *zs_handle_class(struct zs_pool *pool, uint64_t handle,
					size_t len)
{
	unsigned id = (unsigned)(handle & ((1u << ZS_CLASS_BITS) - 1));

	assert(handle >> ZS_CLASS_BITS && id < pool->nr_classes);
	assert(len && len <= ZS_MAX_ALLOC && zs_class_index(len) == id);
	(void)len;
	return &pool->classes[id];
}

static uint64_t zs_handle_index(uint64_t handle)
{
	return handle >> ZS_CLASS_BITS;
}

int zs_store(struct zs_pool *pool, const void *src, size_t len,
	     uint64_t *handle)
{
	struct zs_class *c;
	int64_t page = -1;
	uint64_t idx, e;
	char *dst;
	int ret;

	if (!len || len > ZS_MAX_ALLOC)
		return -EINVAL;
	c = &pool->classes[zs_class_index(len)];

	zs_class_lock(c);
	ret = zs_prepare_locked(pool, c, &page);
	if (ret)
		goto out_unlock;
	idx = zs_hent_alloc_locked(pool, c);
	if (c->huge) {
		dst = zs_arena_addr(&pool->arena, (uint64_t)page);
		e = zs_ent_huge((uint64_t)page);
		zs_stat_add(&c->nr_spans, 1);
	} else {
		struct zs_span *s = zs_fullest_locked(c);
		unsigned slot = zs_slot_alloc_locked(c, s);

		dst = zs_obj_addr(pool, c, s, slot);
		e = zs_ent_pack(s, slot);
	}
	memcpy(dst, src, len);
	*zs_hent(pool, idx) = e;
	zs_stat_add(&c->nr_used, 1);
	*handle = idx << ZS_CLASS_BITS | c->id;
out_unlock:
	zs_class_unlock(c);
	return ret;
}

/* Where the object of handle entry @e is. */
static const char *zs_ent_addr(const struct zs_pool *pool,
			       const struct zs_class *c, uint64_t e)
{
	if (c->huge)
		return zs_arena_addr(&pool->arena, zs_ent_huge_page(e));
	return zs_obj_addr(pool, c, zs_ent_span(e), zs_ent_slot(e));
}

int zs_load(struct zs_pool *pool, uint64_t handle, void *dst, size_t len)
{
	struct zs_class *c = zs_handle_class(pool, handle, len);

	zs_class_lock_shared(c);
	memcpy(dst, zs_ent_addr(pool, c, *zs_hent(pool,
				zs_handle_index(handle))), len);
	zs_class_unlock_shared(c);
	return 0;
}

int zs_read(struct zs_pool *pool, uint64_t handle, size_t len,
	    int (*fn)(const void *obj, size_t len, void *arg), void *arg)
{
	struct zs_class *c = zs_handle_class(pool, handle, len);
	int ret;

	zs_class_lock_shared(c);
	ret = fn(zs_ent_addr(pool, c, *zs_hent(pool,
				zs_handle_index(handle))), len, arg);
	zs_class_unlock_shared(c);
	return ret;
}

void zs_free(struct zs_pool *pool, uint64_t handle, size_t len)
{
	struct zs_class *c = zs_handle_class(pool, handle, len);
	uint64_t idx = zs_handle_index(handle), e;
	struct zs_span *s = NULL;
	uint32_t hp;
	bool empty = false;

	zs_class_lock(c);
	e = *zs_hent(pool, idx);
	assert(!(e & ZS_HENT_FREE));
	hp = zs_hent_free_locked(pool, c, idx);
	if (c->huge) {
		zs_stat_add(&c->nr_spans, -1);
	} else {
		s = zs_ent_span(e);
		empty = zs_slot_free_locked(c, s, zs_ent_slot(e));
	}
	zs_stat_add(&c->nr_used, -1);
	zs_class_unlock(c);

	if (hp != ZS_PNONE)
		zs_page_release(pool, hp, 1);
	if (c->huge)
		zs_page_release(pool, zs_ent_huge_page(e), 1);
	else if (empty)
		zs_span_release(pool, c, s);
}

void zs_set_limit(struct zs_pool *pool, uint64_t bytes)
{
	atomic_store_explicit(&pool->acct.limit, bytes, memory_order_relaxed);
}

uint64_t zs_get_limit(const struct zs_pool *pool)
{
	return atomic_load_explicit(&pool->acct.limit, memory_order_relaxed);
}

uint64_t zs_total_bytes(const struct zs_pool *pool)
{
	return atomic_load_explicit(&pool->acct.total, memory_order_relaxed);
}

/* ---- Compaction ------------------------------------------------------- */

/*
 * A whole span's worth of slots is free: compaction can free a span.
 * Exact under the class lock, a hint without it.
 */
static bool zs_can_compact(const struct zs_class *c)
{
	uint64_t slots = zs_stat(&c->nr_spans) * c->objs;

	return slots - zs_stat(&c->nr_used) >= c->objs;
}

/*
 * Isolate the sparsest spans, as many as the other spans' free slots can
 * take the objects of.  Returns how many.
 */
static unsigned zs_isolate_locked(struct zs_class *c)
{
	uint64_t spare = zs_stat(&c->nr_spans) * c->objs -
			 zs_stat(&c->nr_used);
	unsigned n = 0;

	/* Each span isolated and emptied leaves a span's worth fewer. */
	while (spare >= c->objs && (c->gmask & ZS_PARTIAL_MASK)) {
		unsigned g = (unsigned)__builtin_ctz(c->gmask &
						     ZS_PARTIAL_MASK);
		struct zs_span *s = c->group[g];

		zs_group_del_locked(c, s, g);
		s->isolated = 1;
		s->prev = NULL;
		s->next = c->isolated;
		if (s->next)
			s->next->prev = s;
		c->isolated = s;
		spare -= c->objs;
		n++;
	}
	return n;
}

/* Take @s off the isolated list; back on its fullness list if @keep. */
static void zs_unisolate_locked(struct zs_class *c, struct zs_span *s,
				bool keep)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->isolated = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->isolated = 0;
	if (keep)
		zs_group_add_locked(c, s);
}

/*
 * Move the object of handle entry @ent (in isolated span @src) into the
 * fullest span with room.  Returns the bytes copied; 0 if no span had
 * room, in which case @src is put back on its list and keeps its objects.
 */
static unsigned zs_move_locked(struct zs_pool *pool, struct zs_class *c,
			       uint64_t *ent, struct zs_span *src)
{
	struct zs_span *dst = zs_fullest_locked(c);
	unsigned slot = zs_ent_slot(*ent), dslot;

	if (!dst) {
		zs_unisolate_locked(c, src, true);
		return 0;
	}
	dslot = zs_slot_alloc_locked(c, dst);
	memcpy(zs_obj_addr(pool, c, dst, dslot),
	       zs_obj_addr(pool, c, src, slot), c->size);
	*ent = zs_ent_pack(dst, dslot);
	zs_slot_free_locked(c, src, slot);
	return c->size;
}

/*
 * zs_walk_page_locked - move the objects of isolated spans named in
 * handle page @p from entry *@e on, until the page ends or
 * ZS_COMPACT_BATCH bytes are copied.  Advances *@e.
 */
static void zs_walk_page_locked(struct zs_pool *pool, struct zs_class *c,
				uint32_t p, unsigned *e)
{
	uint64_t *ent = (uint64_t *)zs_hpage(pool, p);
	unsigned copied = 0;

	for (; *e < ZS_PAGE_ENTS && copied < ZS_COMPACT_BATCH; (*e)++) {
		struct zs_span *s;

		if (ent[*e] & ZS_HENT_FREE)
			continue;
		s = zs_ent_span(ent[*e]);
		if (s->isolated)
			copied += zs_move_locked(pool, c, &ent[*e], s);
	}
}

/*
 * Free the isolated spans that emptied, put the others back.  Returns the
 * emptied ones, linked by next, for zs_span_release() without the lock.
 */
static struct zs_span *zs_isolated_done_locked(struct zs_class *c)
{
	struct zs_span *s, *done = NULL;

	while ((s = c->isolated)) {
		zs_unisolate_locked(c, s, s->inuse != 0);
		if (!s->inuse) {
			zs_stat_add(&c->nr_spans, -1);
			s->next = done;
			done = s;
		}
	}
	return done;
}

/* Compact one class; returns the pages freed. */
static uint64_t zs_compact_class(struct zs_pool *pool, struct zs_class *c)
{
	uint64_t pages = 0, freed;
	struct zs_span *done;
	uint32_t p, next, drop;
	unsigned e;

	/* Look before locking: most classes need nothing, leave them be. */
	while (zs_can_compact(c)) {
		zs_class_lock(c);
		if (!zs_isolate_locked(c)) {
			zs_class_unlock(c);
			break;
		}
		/* Walk every handle page, pinned while the lock is dropped. */
		p = c->hpages;
		if (p != ZS_PNONE)
			zs_hpage(pool, p)->pinned++;
		e = ZS_HPAGE_FIRST;
		while (p != ZS_PNONE) {
			zs_walk_page_locked(pool, c, p, &e);
			drop = ZS_PNONE;
			if (e == ZS_PAGE_ENTS) {
				struct zs_hpage *h = zs_hpage(pool, p);

				next = h->next;
				if (next != ZS_PNONE)
					zs_hpage(pool, next)->pinned++;
				h->pinned--;
				if (!h->used && !h->pinned) {
					zs_hpage_drop_locked(pool, c, p);
					drop = p;
				}
				p = next;
				e = ZS_HPAGE_FIRST;
			}
			zs_class_unlock(c);
			if (drop != ZS_PNONE)
				zs_page_release(pool, drop, 1);
			zs_class_lock(c);
		}
		done = zs_isolated_done_locked(c);
		zs_class_unlock(c);

		freed = 0;
		while (done) {
			struct zs_span *s = done;

			done = s->next;
			zs_span_release(pool, c, s);
			freed += c->span_pages;
		}
		pages += freed;
		if (!freed)
			break;	/* stores took the room: another time */
	}
	return pages;
}

uint64_t zs_compact(struct zs_pool *pool)
{
	uint64_t pages = 0;
	unsigned i;

	for (i = 0; i < pool->nr_classes; i++)
		pages += zs_compact_class(pool, &pool->classes[i]);
	atomic_fetch_add_explicit(&pool->pages_compacted, pages,
				  memory_order_relaxed);
	return pages;
}

int zs_fragmented(const struct zs_pool *pool)
{
	uint64_t free_bytes = 0, span_bytes = 0, pages = 0;
	unsigned i;

	for (i = 0; i < pool->nr_classes; i++) {
		const struct zs_class *c = &pool->classes[i];
		uint64_t spans = zs_stat(&c->nr_spans);
		uint64_t used = zs_stat(&c->nr_used);
		uint64_t slots = spans * c->objs;
		uint64_t free = slots > used ? slots - used : 0;

		free_bytes += free * c->size;
		span_bytes += spans * c->span_pages * ZS_PAGE_SIZE;
		pages += free / c->objs * c->span_pages;
	}
	return free_bytes * 100 > span_bytes * ZS_AUTO_COMPACT_PCT &&
	       pages >= ZS_AUTO_COMPACT_MIN_PAGES;
}

/* ---- The cache ---------------------------------------------------------- */

void zs_set_cache(struct zs_pool *pool, uint64_t bytes)
{
	zs_arena_set_cache(&pool->arena, bytes / ZS_PAGE_SIZE);
}

int zs_cache_wanted(const struct zs_pool *pool)
{
	return zs_arena_cache_wanted(&pool->arena);
}

uint64_t zs_cache_refill(struct zs_pool *pool)
{
	return zs_arena_refill(&pool->arena) * ZS_PAGE_SIZE;
}

unsigned zs_cache_age(struct zs_pool *pool)
{
	return zs_arena_age(&pool->arena, zs_arena_now_ms());
}

uint64_t zs_cache_bytes(const struct zs_pool *pool)
{
	return zs_arena_cache_pages(&pool->arena) * ZS_PAGE_SIZE;
}

/* ---- Statistics -------------------------------------------------------- */

uint64_t zs_pages_compacted(const struct zs_pool *pool)
{
	return atomic_load_explicit(&pool->pages_compacted,
				   memory_order_relaxed);
}

unsigned zs_class_count(const struct zs_pool *pool)
{
	return pool->nr_classes;
}

int zs_get_class_stats(struct zs_pool *pool, unsigned i,
		       struct zs_class_stats *out)
{
	struct zs_class *c;

	if (i >= pool->nr_classes)
		return -EINVAL;
	c = &pool->classes[i];
	zs_class_lock_shared(c);
	out->size = c->size;
	out->span_pages = c->span_pages;
	out->objs_per_span = c->objs;
	out->spans = zs_stat(&c->nr_spans);
	out->objs_used = zs_stat(&c->nr_used);
	out->objs_total = out->spans * c->objs;
	zs_class_unlock_shared(c);
	return 0;
}
