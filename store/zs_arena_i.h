/*
 * zs_arena: private to the zs_pool allocator (store/zs_pool.c).
 *
 * The arena is one memfd, sized sparse and mapped MAP_SHARED once, out of
 * which runs of 1..ZS_MAX_SPAN_PAGES contiguous pages are carved: spans,
 * and single pages for the pool's own metadata.  A page costs memory from
 * its first write until it is punched out of the file.  Which pages are
 * taken is kept in a bitmap, one bit per page, claimed and released with
 * compare-and-swap, so runs are taken and given back without a lock.
 *
 * Between the two sits the cache: free runs whose pages are still
 * resident, so that the next run taken is written without a page fault.
 * See zs_arena.c for its rules and the essay at the top of zs_pool.c for
 * why an arena at all.
 */
#ifndef FUSEZRAM_ZS_ARENA_I_H
#define FUSEZRAM_ZS_ARENA_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/zs_pool.h"

#define ZS_MAX_SPAN_PAGES 8		/* longest run (zsmalloc's chain) */
#define ZS_WORD_PAGES 64		/* pages per bitmap word */
#define ZS_CACHE_MAX_PAGES 16384	/* 64 MiB: the cache's room at most */

/* A cached run: its first page, and when it was cached (ms, wrapping). */
struct zs_crun {
	uint32_t page;
	uint32_t stamp;
};

/*
 * struct zs_cache - free runs kept resident, by length: their bitmap bits
 * stay set, so nobody else claims them.  One lock, one target, one room.
 */
struct zs_cache {
	pthread_mutex_t lock;		/* leaf; held for a push, a pop or
					 * one stack's aging */
	struct zs_crun *run[ZS_MAX_SPAN_PAGES + 1];	/* lock: a stack per
					 * length, oldest at the bottom */
	uint32_t n[ZS_MAX_SPAN_PAGES + 1];	/* lock: runs in each stack */
	bool aging;			/* lock: some run will age out, and
					 * the background thread knows */
	_Atomic uint64_t pages;		/* written under lock: pages held */
	_Atomic uint64_t target;	/* pages the refill keeps in runs of
					 * ZS_MAX_SPAN_PAGES; 0 = no cache */
	_Atomic uint64_t room;		/* most pages held at once */
	_Atomic bool wanted;		/* the background thread has work */
};

/*
 * struct zs_arena - the pages runs are made of.
 * The bitmap words are claimed with compare-and-swap; the cache has its
 * own lock; every other field is fixed after zs_arena_init() or an
 * approximate hint.
 */
struct zs_arena {
	char *base;			/* the memfd's mapping; never moves */
	int fd;				/* the memfd */
	uint64_t nr_words;		/* bitmap words = arena pages / 64 */
	uint64_t map_bytes;		/* length of the mapping */
	_Atomic uint64_t *bits;		/* one bit per page, 1 = taken */
	uint64_t bits_bytes;		/* length of the bitmap mapping */
	_Atomic uint64_t open_words;	/* words [0, open_words) are in
					 * use; the rest is untouched */
	_Atomic uint64_t pages_used;	/* pages taken (approximate) */
	_Atomic uint64_t free_seq;	/* bumped on every run released */
	/* Hints for the search of freed runs, per run length: */
	_Atomic uint64_t cursor[ZS_MAX_SPAN_PAGES + 1];	/* where to look */
	_Atomic uint64_t fail_seq[ZS_MAX_SPAN_PAGES + 1];	/* free_seq when
					 * a sweep of all words last failed */
	_Atomic uint64_t sweep_seq[ZS_MAX_SPAN_PAGES + 1];	/* free_seq the
					 * current sweep began at */
	_Atomic uint64_t sweep_words[ZS_MAX_SPAN_PAGES + 1];	/* words it
					 * has looked at */
	struct zs_cache cache;
	pthread_mutex_t refill_lock;	/* one zs_arena_refill() at a time */
};

/*
 * zs_arena_init - map an arena of @bytes of address space (no memory is
 * used until pages are written), or of less where address space is short:
 * the size is halved down to 64 MiB until mmap succeeds.  The cache
 * starts empty, with a target of 0.
 * Returns 0 or -errno from memfd_create/ftruncate/mmap, -ENOMEM for the
 * cache's stacks.
 */
int zs_arena_init(struct zs_arena *a, uint64_t bytes);

/*
 * zs_arena_fini - unmap and close the arena; every page goes back to the
 * OS.  No other call may be in progress.
 */
void zs_arena_fini(struct zs_arena *a);

/*
 * zs_arena_get - take a run of @pages (1..ZS_MAX_SPAN_PAGES) contiguous
 * pages that does not cross a 64-page boundary: from the cache if it
 * holds a run that long or longer (resident pages: no page fault when
 * written; a longer run is split and the rest stays cached), else from
 * the bitmap (pages that fault in on first write).  No syscall, no
 * malloc; takes the cache lock.  Returns the first page number (>= 0) or
 * -ENOMEM if the arena is full.
 */
int64_t zs_arena_get(struct zs_arena *a, unsigned pages);

/*
 * zs_arena_put - give back a run from zs_arena_get(): into the cache if
 * that stays within its room, else punched out of the memfd (the memory
 * returns to the OS at once, also under mlockall).  Cannot fail.  Takes
 * the cache lock.
 */
void zs_arena_put(struct zs_arena *a, uint64_t page, unsigned pages);

/*
 * zs_arena_set_cache - the cache's target: @pages kept in runs of
 * ZS_MAX_SPAN_PAGES by zs_arena_refill(); its room becomes
 * ZS_CACHE_ROOM_FACTOR times that, at most ZS_CACHE_MAX_PAGES.  0 turns
 * the cache off.  What a lowered room leaves over is punched by the next
 * zs_arena_refill().  Takes the cache lock.  Cannot fail.
 */
void zs_arena_set_cache(struct zs_arena *a, uint64_t pages);

/*
 * zs_arena_refill - bring the runs of ZS_MAX_SPAN_PAGES in the cache up to
 * the target with fresh runs, faulted in here (MADV_POPULATE_WRITE,
 * which writes no byte; where the kernel refuses, they fault in at first
 * use instead); punch what is past the room.  Clears the wanted signal.
 * May sleep in the page allocator: call it from a thread that serves no
 * I/O.  Takes refill_lock, and the cache lock briefly per run.  Returns
 * the pages added.
 */
uint64_t zs_arena_refill(struct zs_arena *a);

/*
 * zs_arena_age - punch the cached runs cached ZS_CACHE_AGE_MS ago or more
 * (at @now_ms, on the clock of zs_arena_now_ms()), except the target's
 * runs of ZS_MAX_SPAN_PAGES.  Punches: call it from a thread that serves
 * no I/O.  Takes the cache lock per stack.  Returns the milliseconds
 * until the next run ages out (call again then), or 0 if none will.
 */
unsigned zs_arena_age(struct zs_arena *a, uint32_t now_ms);

/* zs_arena_now_ms - the cache's clock: CLOCK_MONOTONIC_COARSE, in ms. */
uint32_t zs_arena_now_ms(void);

/* zs_arena_cache_pages - pages held in the cache.  Approximate. */
static inline uint64_t zs_arena_cache_pages(const struct zs_arena *a)
{
	return atomic_load_explicit(&a->cache.pages, memory_order_relaxed);
}

/*
 * zs_arena_cache_wanted - true when the cache's long runs are down to half
 * the target, or a run was cached that will age out and the background
 * thread has not looked since.  One atomic load.
 */
static inline bool zs_arena_cache_wanted(const struct zs_arena *a)
{
	return atomic_load_explicit(&a->cache.wanted, memory_order_relaxed);
}

/* zs_arena_addr - address of arena page @page.  Cannot fail. */
static inline char *zs_arena_addr(const struct zs_arena *a, uint64_t page)
{
	return a->base + page * ZS_PAGE_SIZE;
}

#endif /* FUSEZRAM_ZS_ARENA_I_H */
