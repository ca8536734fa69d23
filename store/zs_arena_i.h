/*
 * zs_arena: private to the zs_pool allocator (store/zs_pool.c).
 *
 * The arena is one memfd, sized sparse and mapped MAP_SHARED once, out of
 * which spans of 1..ZS_MAX_SPAN_PAGES contiguous pages are carved.  A page
 * costs memory only from its first write until its span is handed back,
 * when zs_arena_put() punches it out of the file.  Which pages belong to a
 * span is kept in a bitmap, one bit per page, claimed and released with
 * compare-and-swap, so spans are created and freed without a lock.  See
 * the essay at the top of zs_pool.c for why.
 *
 * Also here: the byte account (struct zs_acct) that the arena and the pool
 * both charge, so that one counter holds everything taken from the OS.
 */
#ifndef FUSEZRAM_ZS_ARENA_I_H
#define FUSEZRAM_ZS_ARENA_I_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "store/zs_pool.h"

#define ZS_MAX_SPAN_PAGES 8		/* longest span (zsmalloc's chain) */
#define ZS_WORD_PAGES 64		/* pages per bitmap word */
#define ZS_RESERVE_RUNS 512		/* runs a stack's cap may be, at most */
/* The spill (zs_pool.h, zs_arena.c): at most this many pages in all. */
#define ZS_SPILL_MAX_PAGES 16384	/* 64 MiB */

/*
 * struct zs_acct - bytes held from the OS, and the cap on them.
 * Lock-free: charges are compare-and-swap, so the cap is never overshot
 * even when classes charge at once.
 */
struct zs_acct {
	_Atomic uint64_t total;		/* bytes held now */
	_Atomic uint64_t limit;		/* cap on total, 0 = none */
};

/*
 * zs_acct_charge - add @bytes to the account unless that would pass the
 * limit.  Returns 0 or -ENOSPC (nothing charged).  Lock-free.
 */
static inline int zs_acct_charge(struct zs_acct *ac, uint64_t bytes)
{
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

/* zs_acct_uncharge - give back @bytes charged before.  Cannot fail. */
static inline void zs_acct_uncharge(struct zs_acct *ac, uint64_t bytes)
{
	atomic_fetch_sub_explicit(&ac->total, bytes, memory_order_relaxed);
}

/*
 * struct zs_rstack - the reserve of one run length: free runs whose pages
 * are resident (pre-faulted by zs_arena_refill() where the kernel lets
 * it, or left so when their span was freed).  Their bitmap bits stay
 * set, so nobody else claims them; a run leaves the stack for a new span,
 * or is punched when the stack is over its cap and the spill is full, or
 * when it has sat in the spill (past the cap) for a whole
 * ZS_SPILL_PERIOD_MS.
 */
struct zs_rstack {
	pthread_mutex_t lock;		/* leaf; held for a push or a pop */
	uint32_t n;			/* guarded by lock: runs held */
	uint32_t low;			/* guarded by lock: least n since the
					 * last zs_arena_age() */
	uint32_t cap;			/* guarded by lock: runs kept for good;
					 * zs_arena_set_reserve() */
	uint32_t size;			/* length of run[]; fixed at init */
	uint32_t *run;			/* guarded by lock: first pages */
};

/*
 * struct zs_arena - the pages spans are made of.
 * The bitmap words are claimed with compare-and-swap; the reserve stacks
 * each have a leaf mutex, taken under refill_lock by the refill; every
 * other field is fixed after zs_arena_init() or an approximate hint.
 */
struct zs_arena {
	char *base;			/* the memfd's mapping; never moves */
	int fd;				/* the memfd */
	uint64_t nr_words;		/* bitmap words = arena pages / 64 */
	uint64_t map_bytes;		/* length of the mapping */
	_Atomic uint64_t *bits;		/* one bit per page, 1 = in a span */
	uint64_t bits_bytes;		/* length of the bitmap mapping */
	_Atomic uint64_t open_words;	/* words [0, open_words) are in
					 * use; the rest is untouched */
	_Atomic uint64_t pages_used;	/* pages in spans (approximate) */
	_Atomic uint64_t free_seq;	/* bumped on every zs_arena_put() */
	/* Hints for the search of freed runs, per span length: */
	_Atomic uint64_t cursor[ZS_MAX_SPAN_PAGES + 1];	/* where to look */
	_Atomic uint64_t fail_seq[ZS_MAX_SPAN_PAGES + 1];	/* free_seq when
					 * a sweep of all words last failed */
	_Atomic uint64_t sweep_seq[ZS_MAX_SPAN_PAGES + 1];	/* free_seq the
					 * current sweep began at */
	_Atomic uint64_t sweep_words[ZS_MAX_SPAN_PAGES + 1];	/* words it
					 * has looked at */
	struct zs_acct *acct;		/* charged for bitmap pages */
	struct zs_rstack reserve[ZS_MAX_SPAN_PAGES + 1];	/* by length;
					 * [0] unused */
	_Atomic uint64_t reserve_pages;	/* pages held in the stacks */
	_Atomic uint64_t spill_pages;	/* of those, pages past the caps; the
					 * stack locks (atomic for readers) */
	_Atomic uint64_t spill_max;	/* cap on spill_pages */
	_Atomic unsigned reserve_want;	/* bit L: stack L below half its cap;
					 * bit 0: words ahead below half;
					 * ZS_WANT_AGE: the spill is filling */
	_Atomic uint64_t bitmap_owed;	/* bitmap pages opened by the refill,
					 * not yet charged */
	pthread_mutex_t refill_lock;	/* one zs_arena_refill() at a time */
	_Atomic uint64_t ahead_cap;	/* words to keep populated past the
					 * open ones; zs_arena_set_reserve */
	_Atomic uint64_t populated_to;	/* words below it (from the last open
					 * one) are populated; refill_lock */
};

#define ZS_WANT_AGE (1u << (ZS_MAX_SPAN_PAGES + 1))

/*
 * zs_arena_init - map an arena of @bytes of address space (no memory is
 * used until pages are written), or of less where address space is short:
 * the size is halved down to 64 MiB until mmap succeeds.  @acct is
 * charged for the bitmap pages as they come into use.
 * Returns 0 or -errno from memfd_create/ftruncate/mmap, -ENOMEM for the
 * stacks' arrays.
 */
int zs_arena_init(struct zs_arena *a, uint64_t bytes, struct zs_acct *acct);

/*
 * zs_arena_fini - unmap and close the arena; every page goes back to the
 * OS.  Uncharges the bitmap pages.  No other call may be in progress.
 */
void zs_arena_fini(struct zs_arena *a);

/*
 * zs_arena_get - claim a run of @pages (1..ZS_MAX_SPAN_PAGES) contiguous
 * pages that does not cross a 64-page boundary: from the reserve of that
 * length if it has one (resident pages: no page fault when written),
 * else from the bitmap (pages that fault in on first write).  No syscall;
 * takes the length's reserve lock for a pop.  Returns the first page
 * number (>= 0), -ENOSPC if a new bitmap page would pass the limit,
 * -ENOMEM if the arena is full.
 */
int64_t zs_arena_get(struct zs_arena *a, unsigned pages);

/*
 * zs_arena_put - give back a run from zs_arena_get().  It goes to the
 * reserve of its length while that is under its cap, or past the cap
 * into the spill while that has room (pages stay resident); otherwise its
 * pages are punched out of the memfd (the memory returns to the OS at
 * once, also under mlockall) and the run becomes free for reuse.  Cannot
 * fail.  Takes the length's reserve lock.
 */
void zs_arena_put(struct zs_arena *a, uint64_t page, unsigned pages);

/*
 * zs_arena_set_reserve - hold up to about @pages resident free pages:
 * half in the stacks, a share for each run length (length L keeps
 * @pages / (16 * L) runs, at most ZS_RESERVE_RUNS), and half as whole
 * words populated ahead of the open ones, where fresh runs are cut, so
 * that a growing pool finds its new pages resident too; and let the
 * stacks spill up to ZS_SPILL_FACTOR * @pages (at most ZS_SPILL_MAX_PAGES)
 * of freed pages past their caps for a short time.  0 turns the reserve
 * and the spill off.  Takes effect at the next zs_arena_refill(), which
 * fills or trims; marks everything wanted.  Takes every reserve lock
 * briefly.  Cannot fail.
 */
void zs_arena_set_reserve(struct zs_arena *a, uint64_t pages);

/*
 * zs_arena_refill - bring every stack up to its cap with fresh runs, and
 * the words ahead up to theirs, faulted in here (MADV_POPULATE_WRITE, a
 * word at a time) so that the I/O path does not have to, or left to fault
 * in at first use where the kernel refuses; no byte of the arena is
 * written, live spans among those words included.  Punch the words
 * past the ahead cap, and the whole spill if it is over its cap (both
 * only after zs_arena_set_reserve() lowered them; a spill within its cap
 * is zs_arena_age()'s).  May sleep in the page allocator: call it from a thread
 * that serves no I/O.  Takes refill_lock (one refill at a time) and each
 * reserve lock briefly per run, never a class lock.  Returns the pages
 * added to the reserve.  The stacks stop early if the arena is full or
 * the bitmap's account is at its limit.
 */
uint64_t zs_arena_refill(struct zs_arena *a);

/*
 * zs_arena_reserve_pages - resident pages held for the future: the
 * stacks' (the spill included), and the words populated past the open
 * ones.  Approximate.
 */
uint64_t zs_arena_reserve_pages(const struct zs_arena *a);

/*
 * zs_arena_age - punch the spilled runs that no pop has needed since the
 * last call: in each stack, those that stayed past its cap all along.
 * Called every ZS_SPILL_PERIOD_MS while there is a spill, a freed run is
 * kept one to two periods.  Punches: call it from a thread that serves
 * no I/O.  Takes each reserve lock briefly per run.  Returns the pages
 * still spilled.
 */
uint64_t zs_arena_age(struct zs_arena *a);

/* zs_arena_spill_pages - pages spilled past the caps now.  Approximate. */
static inline uint64_t zs_arena_spill_pages(const struct zs_arena *a)
{
	return atomic_load_explicit(&a->spill_pages, memory_order_relaxed);
}

/* zs_arena_reserve_wanted - true if a zs_arena_refill() has work. */
static inline int zs_arena_reserve_wanted(const struct zs_arena *a)
{
	return atomic_load_explicit(&a->reserve_want,
				    memory_order_relaxed) != 0;
}

/* zs_arena_addr - address of arena page @page.  Cannot fail. */
static inline char *zs_arena_addr(const struct zs_arena *a, uint64_t page)
{
	return a->base + page * ZS_PAGE_SIZE;
}

#endif /* FUSEZRAM_ZS_ARENA_I_H */
