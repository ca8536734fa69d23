/*
 * zs_pool: a size-classed allocator for compressed pages, after the
 * kernel's zsmalloc.  The contract is in zs_pool.h; this is the design.
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
 * That leaves 120 classes.  From 3648 bytes up no span length beats one
 * object per page, so those sizes all fall into the 4096 class, whose
 * spans are single raw pages.  That class needs no span struct at all
 * (a span is one object, full or gone): its handle entry holds the page.
 *
 * Unlike zsmalloc we keep no header inside the object (zsmalloc stores
 * the handle in front of each object, making it 8 bytes bigger, and so
 * often one class bigger): what compaction needs to find an object's
 * handle is kept beside the span instead (below).
 *
 * The arena
 * ---------
 * Span pages come from zs_arena.c: one memfd, ftruncate'd sparse and
 * mapped MAP_SHARED once.  The daemon backs a swap device and so will
 * mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT).  That rules out the
 * obvious designs: malloc'd spans never give memory back; MADV_DONTNEED
 * fails with EINVAL on locked VMAs; and an mmap/munmap per span leaves
 * the address space in holes, a VMA per surviving run, up against
 * vm.max_map_count (65530 VMAs: 256 MiB of one-page spans).  A memfd
 * gives one VMA for the whole arena, and fallocate(PUNCH_HOLE) frees a
 * span's pages at once whether or not they are locked (a test checks
 * that RssShmem falls in a child that has mlockall()ed).  Only written
 * pages cost memory, so the arena is sized 4 * max_bytes + 64 MiB of
 * address space: data that fragments before compaction has room, and
 * the headroom costs nothing but address space (where that is short,
 * zs_arena_init() settles for less).  It does not grow (see TODO).
 *
 * Free pages are found through a bitmap, one bit a page, claimed and
 * released with compare-and-swap (zs_arena.c): creating or freeing a span
 * takes no lock shared between classes, and the bitmap costs 32 KiB per
 * GiB of arena used.  We keep no page-to-span map: nothing needs to go
 * from an address to its span, because the handle table stores the span
 * itself (next paragraph).
 *
 * Handles
 * -------
 * A handle is (index + 1) << 8 | class: never 0, and it never changes.
 * The index names an 8-byte entry in the class's handle table, which
 * holds the object's current place: its span's address and its slot in
 * the span, packed (a span struct is 16-byte aligned and lives below
 * 2^56, so address / 16 takes 52 bits and the slot the top 12).  Loading
 * an object is entry -> span -> arena page + slot * size.  (In the 4096
 * class the entry is (page + 1) << 16 instead.)  The table is a directory
 * of 2 KiB chunks of 256 entries, so growing it never moves an entry, and
 * a class holding few objects holds little table.  Free entries of a
 * chunk are a list threaded through the entries; chunks with free
 * entries are a list of their own.  A free handle
 * is reused before the table grows.  A chunk whose entries are all free
 * is given back at once, and the directory with the last chunk, so an
 * emptied pool holds nothing but the arena's bitmap pages.
 *
 * Each span ends in an array of 4-byte back-references, one per slot:
 * for a used slot, the index of its handle (so compaction can rewrite the
 * entry when it moves the object); for a free slot, the next free slot,
 * with the top bit set.  A span thus finds a free slot and knows its used
 * ones without touching its pages.
 *
 * Metadata is therefore 12 bytes per object slot (8 for the handle entry,
 * 4 for the back-reference), 24 bytes per span (plus malloc's 8 and its
 * rounding), 1 bit per arena page, and the directory (24 bytes per 256
 * handles).  For a 2512-byte class (13 objects in 8 pages) that is 0.6%
 * of the span; for raw pages 0.2%.  All of it, and the span pages, is
 * counted in zs_total_bytes(), with malloc's overhead estimated.  With
 * compressed sizes spread over 30%..90% of a page this comes to 0.8% over
 * the span pages, and the whole is within 0.3% of what zsmalloc's pages
 * alone would be for the same objects (its 8-byte in-object header costs
 * about what our metadata does).
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
 * worth of free slots, take a span from the sparsest list and move its
 * objects, one memcpy each, into the fullest other spans with room,
 * rewriting each moved object's handle entry; then free the emptied span.
 * The free slots of the other spans always suffice (they number at least
 * the source's used ones), so each source empties.  The lock is dropped
 * between source spans, and the span's pages are punched while it is not
 * held, so readers and writers wait for at most one span's worth of
 * copying (32 KiB).
 *
 * Accounting and the limit
 * ------------------------
 * One counter (struct zs_acct) holds every byte taken from the OS for
 * data: span pages, span structs, handle chunks, directories, the bitmap.
 * Only the pool's fixed structs (about 30 KiB, allocated at create) are
 * left out, so that an empty pool counts 0, as zram's does.  Anything new
 * is charged before it is allocated, by a compare-and-swap that fails
 * with -ENOSPC rather than pass the limit, and uncharged after it is
 * freed, so the counter never undershoots the truth and never passes the
 * limit.  Only creating a span or a handle chunk can fail: storing into
 * a span with room is always allowed, even over a lowered limit.
 *
 * Costs
 * -----
 * zs_store() and zs_load() make no syscall and zs_store() no malloc
 * unless a span or a handle chunk is created and the class has no spare
 * left.  Each class keeps spare span structs (ZS_SPARE_SPANS at first)
 * and one chunk: left by emptied spans and chunks, and, once a store has
 * taken some (the class's spares_low), made again by zs_refill() on the
 * store's background thread.  A store that finds none doubles the
 * class's number (to ZS_SPARE_MAX, or ZS_SPARE_BYTES of structs), so a
 * class that grows in bursts, as swap-out does, soon keeps enough for
 * the refill to keep up.  So steady churn mallocs nothing, nor, once
 * its spares have grown, does a growing class; a handle directory that
 * must grow is still realloc'd by the store that finds it full (its size
 * doubles each time).
 * zs_free() makes one syscall (the punch) when a span empties and the
 * reserve of its length is full.  With a reserve (zs_set_reserve()), a
 * new span's pages are resident already, so zs_store() takes no page
 * fault either while zs_refill() keeps up.  Shared state touched on the
 * hot path is the atomic byte counter and a reserve stack's mutex, and
 * only when a span or chunk comes or goes.
 *
 * Locking:
 *	class->lock (zr_rwlock, zr_lock_i.h; one per class)
 *	  -> arena reserve stacks (zs_rstack.lock, leaf mutexes), bitmap and
 *	     counters (lock-free, never block)
 *	arena refill_lock (zs_refill(), after the spares: never with a
 *	  class lock) -> arena reserve stacks
 * A thread holds at most one class lock.  zs_load()/zs_read()/
 * zs_get_class_stats() take it shared; zs_store(), zs_free() and
 * zs_compact() exclusive.  zs_read() calls its callback with the lock
 * held shared: the callback must not call into the pool (a nested class
 * lock could deadlock against a writer of that class).  Statistics are
 * atomics written under the class lock and read without it, so they are
 * approximate.
 *
 * TODO: the arena does not grow past its size at create; compaction does
 * not repack handle tables (a chunk with one live handle stays); span
 * structs come from malloc, whose header and rounding cost up to 24
 * bytes a span, and the first spans and chunks of a class are malloc'd
 * on the I/O path (spares make that a warm-up cost only; zs_refill()
 * tops them up, but only once a store has used them); zs_compact() has
 * no way to stop early.
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

#define ZS_CLASS_BITS 8		/* handle = (index + 1) << 8 | class */
#define ZS_MAX_HANDLES (1u << 31)	/* per class; back-refs keep 31 bits */

#define ZS_HCHUNK_SHIFT 8	/* 256 entries: a 2 KiB handle chunk */
#define ZS_HCHUNK_ENTS (1u << ZS_HCHUNK_SHIFT)
#define ZS_HNONE UINT32_MAX	/* end of a chunk list */
#define ZS_HENT_NONE 0xffffu	/* end of a chunk's free-entry list */

#define ZS_SPARE_SPANS 8	/* span structs a class keeps for reuse, at
				 * first; doubled each time a store finds
				 * none, up to ZS_SPARE_MAX and about
				 * ZS_SPARE_BYTES of structs */
#define ZS_SPARE_MAX 256
#define ZS_SPARE_BYTES (64 << 10)

#define ZS_SLOT_FREE 0x80000000u	/* back-ref of a free slot */
#define ZS_SLOT_NONE 0xffffu	/* end of a span's free-slot list */
#define ZS_ENT_SLOT_SHIFT 52	/* handle entry: slot << 52 | span / 16 */

/* Default for max_bytes == 0 (address space only, see the essay). */
#define ZS_DEFAULT_MAX_BYTES (16ULL << 30)
#define ZS_ARENA_EXTRA (64ULL << 20)

/*
 * struct zs_span - one span: a run of class->span_pages arena pages.
 * Allocated 16-byte aligned (handle entries store its address / 16).
 */
struct zs_span {
	struct zs_span *prev, *next;	/* fullness list; class lock */
	uint32_t page;			/* first arena page; fixed */
	uint16_t inuse;			/* used slots; class lock */
	uint16_t free_slot;		/* first free slot; class lock */
	uint32_t slot[];		/* back-refs; class lock */
};

/* struct zs_hchunk - one directory entry of a handle table. */
struct zs_hchunk {
	uint64_t *ent;			/* ZS_HCHUNK_ENTS entries, or NULL */
	uint32_t prev, next;		/* list of chunks with free entries, or
					 * (ent == NULL) of unused entries */
	uint16_t used;			/* entries in use */
	uint16_t free;			/* first free entry or ZS_HENT_NONE */
};

/* struct zs_classdef - the shape of a class (computed once, shared). */
struct zs_classdef {
	uint16_t size;			/* object size, bytes */
	uint16_t pages;			/* pages per span */
	uint16_t objs;			/* objects per span */
};

struct zs_class {
	/*
	 * lock: guards every field below marked "lock" and the spans and
	 * handle chunks of the class, including the object bytes (so
	 * compaction never moves a half-written object).  A zr_rwlock
	 * (spin briefly, then futex; see zr_lock_i.h for why not glibc's
	 * rwlock).  Held for one memcpy of an object, or one span's worth
	 * when compacting.
	 * Measured, one thread on a 2-CPU VM, 1.2..3.7 KiB objects: zs_load
	 * 0.22 us, zs_free 0.22 us, zs_store 1.6 us (of which ~1.4 us are
	 * the page faults of fresh span pages, taken under the lock).
	 */
	struct zr_rwlock lock;
	/* Fixed at create: */
	unsigned id;			/* index in pool->classes */
	unsigned size, span_pages, objs;
	int huge;			/* 1 object a page, no span struct */
	uint64_t span_cost;		/* bytes charged per span */
	/* lock: */
	struct zs_span *group[ZS_GROUP_FULL + 1];	/* fullness lists */
	unsigned gmask;			/* bit g: group[g] non-empty */
	struct zs_hchunk *hdir;		/* handle-table directory */
	uint32_t hdir_cap, hdir_len;	/* directory entries allocated, used */
	uint32_t hfree;			/* chunks with free entries */
	uint32_t hunused;		/* directory entries without a chunk */
	uint32_t hchunks;		/* chunks allocated; 0: no directory */
	/*
	 * Spares, so that a steady workload mallocs nothing: span structs
	 * (linked by next) and one handle chunk's entries, freed but kept.
	 * Not charged (like malloc's own free lists).
	 */
	struct zs_span *spare;		/* lock */
	unsigned nspare;		/* lock: at most spare_target */
	unsigned spare_target;		/* lock: ZS_SPARE_SPANS and up */
	uint64_t *spare_chunk;		/* lock */
	_Atomic bool spares_low;	/* a store used spares: zs_refill()
					 * tops them up (lock-free flag) */
	/* Written under lock (exclusive), read anywhere (approximate): */
	_Atomic uint64_t nr_spans;
	_Atomic uint64_t nr_used;
} __attribute__((aligned(64)));

struct zs_pool {
	struct zs_acct acct;		/* lock-free */
	_Atomic uint64_t allocs;	/* heap allocations by stores */
	_Atomic bool spares_want;	/* some class's spares_low is set */
	struct zs_arena arena;		/* lock-free */
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

/* What a malloc of @n bytes costs in glibc: header and 16-byte rounding. */
static uint64_t zs_malloc_cost(size_t n)
{
	uint64_t c = (n + sizeof(size_t) + 15) & ~(uint64_t)15;

	return c < 32 ? 32 : c;
}

static size_t zs_span_struct_size(unsigned objs)
{
	size_t n = sizeof(struct zs_span) + objs * sizeof(uint32_t);

	return (n + 15) & ~(size_t)15;	/* aligned_alloc wants a multiple */
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

/* zs_count_alloc - one more heap allocation by a store (zs_allocs()). */
static void zs_count_alloc(struct zs_pool *pool)
{
	atomic_fetch_add_explicit(&pool->allocs, 1, memory_order_relaxed);
}

/*
 * zs_spares_used - a store took a spare or had none: ask zs_refill() to
 * top @c's up.  Lock-free; two loads while already asked.
 */
static void zs_spares_used(struct zs_pool *pool, struct zs_class *c)
{
	if (!atomic_load_explicit(&c->spares_low, memory_order_relaxed))
		atomic_store_explicit(&c->spares_low, true,
				      memory_order_relaxed);
	if (!atomic_load_explicit(&pool->spares_want, memory_order_relaxed))
		atomic_store_explicit(&pool->spares_want, true,
				      memory_order_relaxed);
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

/* ---- Handle entries ---------------------------------------------------- */

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

static uint64_t *zs_hent_locked(struct zs_class *c, uint32_t idx)
{
	struct zs_hchunk *ch = &c->hdir[idx >> ZS_HCHUNK_SHIFT];

	assert((idx >> ZS_HCHUNK_SHIFT) < c->hdir_len && ch->ent);
	return &ch->ent[idx & (ZS_HCHUNK_ENTS - 1)];
}

static uint64_t zs_hchunk_cost(void)
{
	return zs_malloc_cost(ZS_HCHUNK_ENTS * sizeof(uint64_t));
}

/* Bytes a new chunk would cost now, its directory's growth included. */
static uint64_t zs_hchunk_need_locked(const struct zs_class *c,
				      uint32_t *newcap)
{
	uint64_t cost = zs_hchunk_cost();

	*newcap = c->hdir_cap;
	if (c->hunused == ZS_HNONE && c->hdir_len == c->hdir_cap) {
		*newcap = c->hdir_cap ? c->hdir_cap * 2 : 4;
		cost += zs_malloc_cost(*newcap * sizeof(struct zs_hchunk));
		if (c->hdir_cap)
			cost -= zs_malloc_cost(c->hdir_cap *
					       sizeof(struct zs_hchunk));
	}
	return cost;
}

static void zs_hlist_del_locked(struct zs_class *c, uint32_t ci)
{
	struct zs_hchunk *ch = &c->hdir[ci];

	if (ch->prev != ZS_HNONE)
		c->hdir[ch->prev].next = ch->next;
	else
		c->hfree = ch->next;
	if (ch->next != ZS_HNONE)
		c->hdir[ch->next].prev = ch->prev;
}

static void zs_hlist_add_locked(struct zs_class *c, uint32_t ci)
{
	struct zs_hchunk *ch = &c->hdir[ci];

	ch->prev = ZS_HNONE;
	ch->next = c->hfree;
	if (c->hfree != ZS_HNONE)
		c->hdir[c->hfree].prev = ci;
	c->hfree = ci;
}

/*
 * Add an empty handle chunk, growing the directory to @newcap if needed.
 * The caller has charged zs_hchunk_need_locked().  Returns 0 or -ENOMEM.
 */
static int zs_hchunk_add_locked(struct zs_pool *pool, struct zs_class *c,
				uint32_t newcap)
{
	struct zs_hchunk *ch;
	uint64_t *ent;
	uint32_t ci, i;

	if (c->hunused == ZS_HNONE &&
	    (uint64_t)c->hdir_len * ZS_HCHUNK_ENTS >= ZS_MAX_HANDLES)
		return -ENOMEM;
	ent = c->spare_chunk;
	c->spare_chunk = NULL;
	zs_spares_used(pool, c);
	if (!ent) {
		ent = malloc(ZS_HCHUNK_ENTS * sizeof(uint64_t));
		if (!ent)
			return -ENOMEM;
		zs_count_alloc(pool);
	}
	if (newcap != c->hdir_cap) {
		ch = realloc(c->hdir, newcap * sizeof(*ch));
		if (!ch) {
			c->spare_chunk = ent;
			return -ENOMEM;
		}
		zs_count_alloc(pool);
		c->hdir = ch;
		c->hdir_cap = newcap;
	}
	if (c->hunused != ZS_HNONE) {
		ci = c->hunused;
		c->hunused = c->hdir[ci].next;
	} else {
		ci = c->hdir_len++;
	}
	ch = &c->hdir[ci];
	for (i = 0; i < ZS_HCHUNK_ENTS; i++)
		ent[i] = i + 1 < ZS_HCHUNK_ENTS ? i + 1 : ZS_HENT_NONE;
	ch->ent = ent;
	ch->used = 0;
	ch->free = 0;
	zs_hlist_add_locked(c, ci);
	c->hchunks++;
	return 0;
}

/*
 * Give back empty chunk @ci, and the directory with the last chunk.
 * Returns the bytes freed, for the caller to uncharge.
 */
static uint64_t zs_hchunk_drop_locked(struct zs_class *c, uint32_t ci)
{
	struct zs_hchunk *ch = &c->hdir[ci];
	uint64_t freed = zs_hchunk_cost();

	assert(ch->used == 0);
	zs_hlist_del_locked(c, ci);
	if (!c->spare_chunk)
		c->spare_chunk = ch->ent;
	else
		free(ch->ent);
	ch->ent = NULL;
	ch->next = c->hunused;
	c->hunused = ci;
	if (--c->hchunks)
		return freed;
	freed += zs_malloc_cost(c->hdir_cap * sizeof(struct zs_hchunk));
	free(c->hdir);
	c->hdir = NULL;
	c->hdir_cap = c->hdir_len = 0;
	c->hunused = ZS_HNONE;
	return freed;
}

/* Take a free handle entry; one must exist.  Cannot fail. */
static uint32_t zs_hent_alloc_locked(struct zs_class *c)
{
	uint32_t ci = c->hfree;
	struct zs_hchunk *ch = &c->hdir[ci];
	unsigned e = ch->free;

	assert(ci != ZS_HNONE && e != ZS_HENT_NONE);
	ch->free = (uint16_t)ch->ent[e];
	ch->used++;
	if (ch->free == ZS_HENT_NONE)
		zs_hlist_del_locked(c, ci);
	return ci << ZS_HCHUNK_SHIFT | e;
}

/* Free handle entry @idx; returns the bytes given back (an empty chunk). */
static uint64_t zs_hent_free_locked(struct zs_class *c, uint32_t idx)
{
	uint32_t ci = idx >> ZS_HCHUNK_SHIFT;
	struct zs_hchunk *ch = &c->hdir[ci];
	unsigned e = idx & (ZS_HCHUNK_ENTS - 1);

	ch->ent[e] = ch->free;
	if (ch->free == ZS_HENT_NONE)
		zs_hlist_add_locked(c, ci);
	ch->free = (uint16_t)e;
	if (--ch->used)
		return 0;
	return zs_hchunk_drop_locked(c, ci);
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

/* The fullest partly used span other than @not, or NULL. */
static struct zs_span *zs_fullest_locked(struct zs_class *c,
					 const struct zs_span *not)
{
	unsigned mask = c->gmask & ZS_PARTIAL_MASK;

	while (mask) {
		unsigned g = 31 - (unsigned)__builtin_clz(mask);
		struct zs_span *s = c->group[g];

		if (s == not)
			s = s->next;
		if (s)
			return s;
		mask &= ~(1u << g);
	}
	return NULL;
}

static char *zs_obj_addr(const struct zs_pool *pool, const struct zs_class *c,
			 const struct zs_span *s, unsigned slot)
{
	return zs_arena_addr(&pool->arena, s->page) + (size_t)slot * c->size;
}

/* The most spares @c may keep: ZS_SPARE_MAX, and about ZS_SPARE_BYTES. */
static unsigned zs_spare_max(const struct zs_class *c)
{
	size_t n = ZS_SPARE_BYTES / zs_span_struct_size(c->objs);

	if (n < ZS_SPARE_SPANS)
		return ZS_SPARE_SPANS;
	return n < ZS_SPARE_MAX ? (unsigned)n : ZS_SPARE_MAX;
}

/*
 * Create an empty span and put it on the lowest fullness list.  The caller
 * has charged c->span_cost.  Returns 0, -ENOMEM or -ENOSPC (arena).
 */
static int zs_span_create_locked(struct zs_pool *pool, struct zs_class *c)
{
	struct zs_span *s;
	int64_t page;
	unsigned i;

	page = zs_arena_get(&pool->arena, c->span_pages);
	if (page < 0)
		return (int)page;
	s = c->spare;
	if (c->nspare <= c->spare_target / 2 + 1)
		zs_spares_used(pool, c);
	if (s) {
		c->spare = s->next;
		c->nspare--;
	} else {
		/* The refill did not keep up: keep more from now on. */
		if (c->spare_target * 2 <= zs_spare_max(c))
			c->spare_target *= 2;
		s = aligned_alloc(16, zs_span_struct_size(c->objs));
		if (!s) {
			zs_arena_put(&pool->arena, (uint64_t)page,
				     c->span_pages);
			return -ENOMEM;
		}
		zs_count_alloc(pool);
	}
	/* The handle entry keeps address / 16 in 52 bits. */
	assert(((uintptr_t)s & 15) == 0 &&
	       (uint64_t)(uintptr_t)s >> (ZS_ENT_SLOT_SHIFT + 4) == 0);
	s->page = (uint32_t)page;
	s->inuse = 0;
	s->free_slot = 0;
	for (i = 0; i < c->objs; i++)
		s->slot[i] = ZS_SLOT_FREE |
			     (i + 1 < c->objs ? i + 1 : ZS_SLOT_NONE);
	zs_group_add_locked(c, s);
	zs_stat_add(&c->nr_spans, 1);
	return 0;
}

/*
 * zs_span_retire_locked - @s has emptied and is off its list: keep its
 * struct as a spare if there is room.  Returns @s if the caller must free
 * it (after zs_span_release()), NULL if it was kept.
 */
static struct zs_span *zs_span_retire_locked(struct zs_class *c,
					     struct zs_span *s)
{
	if (c->nspare >= c->spare_target)
		return s;
	s->next = c->spare;
	c->spare = s;
	c->nspare++;
	return NULL;
}

/*
 * zs_span_release - give back the pages of a retired span that began at
 * arena page @page, and its struct @s unless it was kept (NULL).  No lock
 * needed.  Cannot fail.
 */
static void zs_span_release(struct zs_pool *pool, struct zs_class *c,
			    uint64_t page, struct zs_span *s)
{
	zs_arena_put(&pool->arena, page, c->span_pages);
	free(s);
	zs_acct_uncharge(&pool->acct, c->span_cost);
}

/* Put handle @idx in a free slot of @s.  Returns the slot. */
static unsigned zs_slot_alloc_locked(struct zs_class *c, struct zs_span *s,
				     uint32_t idx)
{
	unsigned slot = s->free_slot;

	assert(slot != ZS_SLOT_NONE && (s->slot[slot] & ZS_SLOT_FREE));
	s->free_slot = (uint16_t)(s->slot[slot] & ~ZS_SLOT_FREE);
	s->slot[slot] = idx;
	s->inuse++;
	zs_regroup_locked(c, s, s->inuse - 1u);
	return slot;
}

/*
 * Free @slot of @s.  Returns true if @s is now empty, in which case it has
 * been taken off its list and counted out: the caller releases it.
 */
static int zs_slot_free_locked(struct zs_class *c, struct zs_span *s,
			       unsigned slot)
{
	assert(!(s->slot[slot] & ZS_SLOT_FREE) && s->inuse);
	s->slot[slot] = ZS_SLOT_FREE | s->free_slot;
	s->free_slot = (uint16_t)slot;
	if (--s->inuse) {
		zs_regroup_locked(c, s, s->inuse + 1u);
		return 0;
	}
	zs_group_del_locked(c, s, zs_group_of(c, 1));
	zs_stat_add(&c->nr_spans, -1);
	return 1;
}

/*
 * Make sure the class has a free handle entry and a span with room,
 * charging first what must be created; for the huge class, take the page
 * the object will have to itself and return it in *@page.  On failure
 * nothing new is left behind (a grown directory may stay, charged).
 * Returns 0, -ENOSPC or -ENOMEM.
 */
static int zs_reserve_locked(struct zs_pool *pool, struct zs_class *c,
			     int64_t *page)
{
	int need_h = c->hfree == ZS_HNONE;
	int need_s = c->huge || !(c->gmask & ZS_PARTIAL_MASK);
	uint64_t hcost = 0, cost;
	uint32_t newcap = 0;
	int ret;

	if (!need_h && !need_s)
		return 0;
	if (need_h)
		hcost = zs_hchunk_need_locked(c, &newcap);
	cost = hcost + (need_s ? c->span_cost : 0);
	ret = zs_acct_charge(&pool->acct, cost);
	if (ret)
		return ret;
	if (need_h) {
		ret = zs_hchunk_add_locked(pool, c, newcap);
		if (ret)
			goto out_uncharge;
	}
	if (c->huge) {
		*page = zs_arena_get(&pool->arena, 1);
		if (*page < 0) {
			ret = (int)*page;
			goto out_drop_chunk;
		}
	} else if (need_s) {
		ret = zs_span_create_locked(pool, c);
		if (ret)
			goto out_drop_chunk;
	}
	return 0;

out_drop_chunk:
	if (need_h) {
		/* A grown directory stays, and stays charged, unless freed. */
		cost -= hcost;
		cost += zs_hchunk_drop_locked(c, c->hfree);
	}
out_uncharge:
	zs_acct_uncharge(&pool->acct, cost);
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
	if (zs_arena_init(&pool->arena, arena, &pool->acct) < 0)
		goto out_free_classes;

	for (i = 0; i < zs_nr_defs; i++) {
		struct zs_class *c = &pool->classes[i];

		c->id = i;
		c->size = zs_defs[i].size;
		c->span_pages = zs_defs[i].pages;
		c->objs = zs_defs[i].objs;
		c->huge = c->objs == 1;
		c->span_cost = (uint64_t)c->span_pages * ZS_PAGE_SIZE;
		if (!c->huge)
			c->span_cost += zs_malloc_cost(zs_span_struct_size(
								c->objs));
		c->hfree = ZS_HNONE;
		c->hunused = ZS_HNONE;
		c->spare_target = ZS_SPARE_SPANS;
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
	unsigned i, g;
	uint32_t ci;

	if (!pool)
		return;
	/* Closing the memfd frees every span page at once: no punching. */
	for (i = 0; i < pool->nr_classes; i++) {
		struct zs_class *c = &pool->classes[i];

		for (g = 0; g <= ZS_GROUP_FULL; g++) {
			while (c->group[g]) {
				struct zs_span *s = c->group[g];

				c->group[g] = s->next;
				free(s);
			}
		}
		for (ci = 0; ci < c->hdir_len; ci++)
			free(c->hdir[ci].ent);
		free(c->hdir);
		while (c->spare) {
			struct zs_span *s = c->spare;

			c->spare = s->next;
			free(s);
		}
		free(c->spare_chunk);
	}
	zs_arena_fini(&pool->arena);
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

static uint32_t zs_handle_index(uint64_t handle)
{
	return (uint32_t)((handle >> ZS_CLASS_BITS) - 1);
}

int zs_store(struct zs_pool *pool, const void *src, size_t len,
	     uint64_t *handle)
{
	struct zs_class *c;
	int64_t page = -1;
	uint32_t idx;
	uint64_t e;
	char *dst;
	int ret;

	if (!len || len > ZS_MAX_ALLOC)
		return -EINVAL;
	c = &pool->classes[zs_class_index(len)];

	zs_class_lock(c);
	ret = zs_reserve_locked(pool, c, &page);
	if (ret)
		goto out_unlock;
	idx = zs_hent_alloc_locked(c);
	if (c->huge) {
		dst = zs_arena_addr(&pool->arena, (uint64_t)page);
		e = zs_ent_huge((uint64_t)page);
		zs_stat_add(&c->nr_spans, 1);
	} else {
		struct zs_span *s = zs_fullest_locked(c, NULL);
		unsigned slot = zs_slot_alloc_locked(c, s, idx);

		dst = zs_obj_addr(pool, c, s, slot);
		e = zs_ent_pack(s, slot);
	}
	memcpy(dst, src, len);
	*zs_hent_locked(c, idx) = e;
	zs_stat_add(&c->nr_used, 1);
	*handle = ((uint64_t)idx + 1) << ZS_CLASS_BITS | c->id;
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
	memcpy(dst, zs_ent_addr(pool, c, *zs_hent_locked(c,
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
	ret = fn(zs_ent_addr(pool, c, *zs_hent_locked(c,
				zs_handle_index(handle))), len, arg);
	zs_class_unlock_shared(c);
	return ret;
}

void zs_free(struct zs_pool *pool, uint64_t handle, size_t len)
{
	struct zs_class *c = zs_handle_class(pool, handle, len);
	uint32_t idx = zs_handle_index(handle);
	struct zs_span *s = NULL;
	uint64_t e, freed, page = 0;
	int empty = 0;

	zs_class_lock(c);
	e = *zs_hent_locked(c, idx);
	freed = zs_hent_free_locked(c, idx);
	if (c->huge) {
		zs_stat_add(&c->nr_spans, -1);
	} else {
		unsigned slot = zs_ent_slot(e);

		s = zs_ent_span(e);
		assert(s->slot[slot] == idx);
		empty = zs_slot_free_locked(c, s, slot);
		if (empty) {
			page = s->page;
			s = zs_span_retire_locked(c, s);
		}
	}
	zs_stat_add(&c->nr_used, -1);
	zs_class_unlock(c);

	if (freed)
		zs_acct_uncharge(&pool->acct, freed);
	if (c->huge) {
		zs_arena_put(&pool->arena, zs_ent_huge_page(e), 1);
		zs_acct_uncharge(&pool->acct, c->span_cost);
	} else if (empty) {
		zs_span_release(pool, c, page, s);
	}
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

/*
 * A whole span's worth of slots is free: compaction can free a span.
 * Exact under the class lock, a hint without it.
 */
static int zs_can_compact(const struct zs_class *c)
{
	uint64_t slots = zs_stat(&c->nr_spans) * c->objs;

	return slots - zs_stat(&c->nr_used) >= c->objs;
}

/*
 * Move the object in @slot of @src to the fullest other span with room.
 * Returns true when @src has emptied (see zs_slot_free_locked()).
 */
static int zs_move_locked(struct zs_pool *pool, struct zs_class *c,
			  struct zs_span *src, unsigned slot)
{
	struct zs_span *dst = zs_fullest_locked(c, src);
	uint32_t idx = src->slot[slot];
	unsigned dslot;

	assert(dst);	/* the free slots elsewhere outnumber src's objects */
	dslot = zs_slot_alloc_locked(c, dst, idx);
	memcpy(zs_obj_addr(pool, c, dst, dslot),
	       zs_obj_addr(pool, c, src, slot), c->size);
	*zs_hent_locked(c, idx) = zs_ent_pack(dst, dslot);
	return zs_slot_free_locked(c, src, slot);
}

/* Compact one class; returns the pages freed. */
static uint64_t zs_compact_class(struct zs_pool *pool, struct zs_class *c)
{
	uint64_t pages = 0;

	/* Look before locking: most classes need nothing, leave them be. */
	while (zs_can_compact(c)) {
		struct zs_span *src;
		uint64_t page;
		unsigned slot;
		int empty = 0;

		zs_class_lock(c);
		if (!zs_can_compact(c)) {
			zs_class_unlock(c);
			break;
		}
		/* The sparsest span; there are at least two partial ones. */
		src = c->group[__builtin_ctz(c->gmask & ZS_PARTIAL_MASK)];
		for (slot = 0; !empty; slot++) {
			assert(slot < c->objs);
			if (!(src->slot[slot] & ZS_SLOT_FREE))
				empty = zs_move_locked(pool, c, src, slot);
		}
		page = src->page;
		src = zs_span_retire_locked(c, src);
		zs_class_unlock(c);
		zs_span_release(pool, c, page, src);
		pages += c->span_pages;
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

void zs_set_reserve(struct zs_pool *pool, uint64_t bytes)
{
	zs_arena_set_reserve(&pool->arena, bytes / ZS_PAGE_SIZE);
}

/*
 * zs_refill_spares - bring the spares of the classes whose stores used
 * them back to spare_target span structs and one handle chunk.  The
 * mallocs happen outside the class lock, which is taken twice per class.
 */
static void zs_refill_spares(struct zs_pool *pool)
{
	struct zs_span *got[ZS_SPARE_MAX];
	unsigned i, k, need, n;
	uint64_t *chunk;
	bool want_chunk;

	if (!atomic_exchange_explicit(&pool->spares_want, false,
				      memory_order_relaxed))
		return;
	for (i = 0; i < pool->nr_classes; i++) {
		struct zs_class *c = &pool->classes[i];

		if (!atomic_load_explicit(&c->spares_low,
					  memory_order_relaxed) ||
		    !atomic_exchange_explicit(&c->spares_low, false,
					      memory_order_relaxed))
			continue;
		zs_class_lock(c);
		need = c->huge ? 0 : c->spare_target - c->nspare;
		want_chunk = !c->spare_chunk;
		zs_class_unlock(c);

		for (n = 0; n < need; n++) {
			got[n] = aligned_alloc(16, zs_span_struct_size(c->objs));
			if (!got[n])
				break;
		}
		chunk = want_chunk ? malloc(ZS_HCHUNK_ENTS * sizeof(uint64_t))
				   : NULL;

		zs_class_lock(c);
		for (k = 0; k < n && c->nspare < c->spare_target; k++) {
			got[k]->next = c->spare;
			c->spare = got[k];
			c->nspare++;
		}
		if (chunk && !c->spare_chunk) {
			c->spare_chunk = chunk;
			chunk = NULL;
		}
		zs_class_unlock(c);
		/* Stores that freed spans meanwhile filled the room. */
		for (; k < n; k++)
			free(got[k]);
		free(chunk);
	}
}

uint64_t zs_refill(struct zs_pool *pool)
{
	zs_refill_spares(pool);
	return zs_arena_refill(&pool->arena);
}

int zs_reserve_wanted(const struct zs_pool *pool)
{
	return zs_arena_reserve_wanted(&pool->arena) ||
	       atomic_load_explicit(&pool->spares_want, memory_order_relaxed);
}

uint64_t zs_age(struct zs_pool *pool)
{
	return zs_arena_age(&pool->arena) * ZS_PAGE_SIZE;
}

uint64_t zs_spill_bytes(const struct zs_pool *pool)
{
	return zs_arena_spill_pages(&pool->arena) * ZS_PAGE_SIZE;
}

uint64_t zs_reserve_bytes(const struct zs_pool *pool)
{
	return zs_arena_reserve_pages(&pool->arena) * ZS_PAGE_SIZE;
}

uint64_t zs_allocs(const struct zs_pool *pool)
{
	return atomic_load_explicit(&pool->allocs, memory_order_relaxed);
}

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
