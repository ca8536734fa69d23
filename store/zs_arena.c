/*
 * zs_arena: the pages of zs_pool's spans (private to the allocator).
 *
 * One memfd, ftruncate'd to a large sparse size and mapped MAP_SHARED
 * once: one VMA however many spans come and go, an address that never
 * moves, and memory that returns to the OS at once with
 * fallocate(FALLOC_FL_PUNCH_HOLE), which (unlike MADV_DONTNEED) also works
 * when the daemon has mlockall()ed itself.  The reasoning is in the essay
 * at the top of zs_pool.c.
 *
 * Free space is a bitmap, one bit per page.  A span is a run of 1..8 set
 * bits inside one 64-bit word, so claiming it is one compare-and-swap and
 * no span crosses a 64-page boundary (at most 7 pages of a word go
 * unused, and only by spans of the longer lengths; the pages themselves
 * cost nothing, being never written).  Words are opened in order: the
 * bitmap past open_words has never been touched, and the last open word
 * is where fresh runs are cut.  Runs freed below it are found again by a
 * bounded scan from a per-length cursor, skipped altogether while nothing
 * has been freed since the last full scan failed.  Freed runs are never
 * merged; none need be, since a run only has to fit in its word.
 *
 * Memory: the arena's pages are charged by the pool, span by span; the
 * bitmap is charged here, one page per 512 words (128 MiB of arena) as
 * words are opened (those the reserve's refill opens, at the next span
 * made).  The bitmap is never shrunk: 32 KiB per GiB of the arena's
 * high-water mark.
 *
 * The reserve.  A freed run is not punched at once if the stack of its
 * length has room: its pages stay resident and the next span of that
 * length takes them without a page fault, so a pool that frees and
 * stores at the same rate (overwrites, swap slots freed by discard and
 * reused) makes no syscall and takes no fault at all.  zs_arena_refill(),
 * run by the store's background thread, tops the stacks up with fresh
 * runs that it faults in itself, so that a store on the I/O path finds
 * its pages present: it neither takes a fault nor waits in the page
 * allocator, which under memory pressure could mean waiting on reclaim,
 * and so on swap I/O to our own image.  Faulting in is
 * madvise(MADV_POPULATE_WRITE), which changes no byte; where the kernel
 * refuses it (a memory cgroup at its limit, Linux before 5.14) the pages
 * stay absent and the stores that use them fault them in.  Half the
 * budget given to zs_arena_set_reserve() goes to the stacks (split evenly
 * by length), half to whole words populated ahead of the open ones, where
 * fresh runs are cut (populated_to), so that a pool that grows finds its
 * new pages resident as well.  Those pages are resident but belong to no
 * span, so they are not in the pool's byte account (mem_used_total).
 *
 * The spill.  Frees and stores come in waves, and rarely of the same run
 * length at once: swap discards a 2 MiB cluster, then writes out again;
 * overwrites of one kind of data empty the spans of one class while
 * another's grows.  A stack already at its cap (the refill keeps it
 * there) would punch every run of such a wave, and the refill would then
 * fault fresh pages in for the stores that follow: a punch, a TLB
 * shootdown, a page allocation and a page clear for every page that
 * merely changed hands.  So a freed run may stay in its stack past the
 * cap, in the spill (at most spill_max pages in all, ZS_SPILL_FACTOR
 * times the reserve), where the next span of that length takes it.
 * zs_arena_age(), every ZS_SPILL_PERIOD_MS while there is a spill,
 * punches what no pop has needed for a whole period: a stack's pops come
 * off the top, so its entries below the least depth of the period (low)
 * were idle all along, and that many past the cap go.  Freed memory goes
 * back to the OS one to two periods late, or at once when the spill is
 * full.
 *
 * Locking:
 *	refill_lock: one zs_arena_refill() at a time; guards populated_to's
 *	  writes (readers load it without the lock, as a hint)
 *	  -> zs_rstack.lock (one per run length): leaf, held for one push
 *	     or pop; the I/O path takes it under a class lock.  Guards the
 *	     stack's n, low, cap and run[], and its share of spill_pages
 *	     (an atomic, so that readers need no lock).
 * Bitmap words change only by compare-and-swap or atomic and; open_words
 * only by compare-and-swap; the other counters are hints.  Nothing here
 * blocks except the punch and the refill's page faults.
 *
 * TODO: the arena does not grow; when its address space is used up,
 * zs_arena_get() fails with -ENOMEM.  It is sized (zs_pool.c) with ample
 * headroom, since unused address space costs nothing.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/zs_arena_i.h"

#define ZS_BITMAP_WORDS_PER_PAGE (ZS_PAGE_SIZE / sizeof(uint64_t))
#define ZS_SCAN_WORDS 256		/* words a search looks at, at most */
#define ZS_ARENA_MAX_PAGES (1ULL << 32)	/* spans keep 32-bit page numbers */
#define ZS_ARENA_MIN_PAGES (1ULL << 14)	/* 64 MiB: the least we settle for */

/* Set the arena's size fields for @pages (a multiple of 64). */
static void zs_arena_size(struct zs_arena *a, uint64_t pages)
{
	a->nr_words = pages / ZS_WORD_PAGES;
	a->map_bytes = pages * ZS_PAGE_SIZE;
	a->bits_bytes = (a->nr_words * sizeof(uint64_t) + ZS_PAGE_SIZE - 1) /
			ZS_PAGE_SIZE * ZS_PAGE_SIZE;
}

/*
 * The stacks' arrays, in one allocation: room for the largest cap and the
 * whole spill in runs of each length.  Untouched pages of it cost nothing.
 * Returns 0 or -ENOMEM.
 */
static int zs_rstacks_init(struct zs_arena *a)
{
	uint32_t size[ZS_MAX_SPAN_PAGES + 1], total = 0, *run;
	unsigned l;

	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		size[l] = ZS_RESERVE_RUNS + ZS_SPILL_MAX_PAGES / l;
		total += size[l];
	}
	run = calloc(total, sizeof(*run));
	if (!run)
		return -ENOMEM;
	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		struct zs_rstack *r = &a->reserve[l];

		pthread_mutex_init(&r->lock, NULL);
		r->size = size[l];
		r->run = run;
		run += size[l];
	}
	return 0;
}

int zs_arena_init(struct zs_arena *a, uint64_t bytes, struct zs_acct *acct)
{
	uint64_t pages = (bytes + ZS_PAGE_SIZE - 1) / ZS_PAGE_SIZE;
	int ret;

	pages = (pages + ZS_WORD_PAGES - 1) / ZS_WORD_PAGES * ZS_WORD_PAGES;
	if (pages < ZS_WORD_PAGES)
		pages = ZS_WORD_PAGES;
	if (pages > ZS_ARENA_MAX_PAGES)
		pages = ZS_ARENA_MAX_PAGES;

	*a = (struct zs_arena){ .fd = -1, .acct = acct };
	a->fd = memfd_create("fusezram-zs", MFD_CLOEXEC);
	if (a->fd < 0)
		return -errno;
	/*
	 * The size is headroom, not a need: where address space is short
	 * (ulimit -v, sanitizers), settle for less, down to a floor.
	 */
	for (;;) {
		zs_arena_size(a, pages);
		if (ftruncate(a->fd, (off_t)a->map_bytes) < 0)
			goto out_errno;
		a->base = mmap(NULL, a->map_bytes, PROT_READ | PROT_WRITE,
			       MAP_SHARED, a->fd, 0);
		if (a->base != MAP_FAILED)
			break;
		if (errno != ENOMEM || pages <= ZS_ARENA_MIN_PAGES)
			goto out_errno;
		pages = pages / 2 / ZS_WORD_PAGES * ZS_WORD_PAGES;
		if (pages < ZS_ARENA_MIN_PAGES)
			pages = ZS_ARENA_MIN_PAGES;
	}
	/* Anonymous and NORESERVE: only the words opened are ever touched. */
	a->bits = mmap(NULL, a->bits_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->bits == MAP_FAILED)
		goto out_unmap;
	if (zs_rstacks_init(a) < 0) {
		munmap((void *)a->bits, a->bits_bytes);
		errno = ENOMEM;
		goto out_unmap;
	}
	pthread_mutex_init(&a->refill_lock, NULL);
	return 0;

out_unmap:
	ret = -errno;
	munmap(a->base, a->map_bytes);
	goto out_close;
out_errno:
	ret = -errno;
out_close:
	close(a->fd);
	a->fd = -1;
	return ret;
}

void zs_arena_fini(struct zs_arena *a)
{
	uint64_t open;

	if (a->fd < 0)
		return;
	open = atomic_load_explicit(&a->open_words, memory_order_relaxed);
	zs_acct_uncharge(a->acct, ((open + ZS_BITMAP_WORDS_PER_PAGE - 1) /
			 ZS_BITMAP_WORDS_PER_PAGE -
			 atomic_load_explicit(&a->bitmap_owed,
					      memory_order_relaxed)) *
			 ZS_PAGE_SIZE);
	munmap((void *)a->bits, a->bits_bytes);
	munmap(a->base, a->map_bytes);
	close(a->fd);
	a->fd = -1;
	free(a->reserve[1].run);	/* the first of one allocation */
	for (unsigned l = 1; l <= ZS_MAX_SPAN_PAGES; l++)
		pthread_mutex_destroy(&a->reserve[l].lock);
	pthread_mutex_destroy(&a->refill_lock);
}

/* Bit i set in the result: pages i..i+pages-1 are all free in @used. */
static uint64_t zs_runs(uint64_t used, unsigned pages)
{
	uint64_t free = ~used, m = free;
	unsigned k;

	for (k = 1; k < pages; k++)
		m &= free >> k;
	return m;
}

/* Claim a run of @pages in word @w.  Returns the first page or -1. */
static int64_t zs_arena_try_word(struct zs_arena *a, uint64_t w,
				 unsigned pages)
{
	uint64_t old = atomic_load_explicit(&a->bits[w], memory_order_relaxed);
	uint64_t m;
	unsigned i;

	do {
		m = zs_runs(old, pages);
		if (!m)
			return -1;
		i = (unsigned)__builtin_ctzll(m);
	} while (!atomic_compare_exchange_weak_explicit(&a->bits[w], &old,
			old | (((1ULL << pages) - 1) << i),
			memory_order_acquire, memory_order_relaxed));
	return (int64_t)(w * ZS_WORD_PAGES + i);
}

/*
 * Look for a freed run among the open words, at most @max words from the
 * length's cursor.  Returns the first page or -1.
 */
static int64_t zs_arena_scan(struct zs_arena *a, unsigned pages,
			     uint64_t max)
{
	uint64_t open = atomic_load_explicit(&a->open_words,
					     memory_order_acquire);
	uint64_t seq = atomic_load_explicit(&a->free_seq, memory_order_relaxed);
	uint64_t start, k, n;
	int64_t pg;

	if (!open)
		return -1;
	n = max < open ? max : open;
	start = atomic_load_explicit(&a->cursor[pages],
				     memory_order_relaxed) % open;
	for (k = 0; k < n; k++) {
		uint64_t w = (start + k) % open;

		pg = zs_arena_try_word(a, w, pages);
		if (pg >= 0) {
			atomic_store_explicit(&a->cursor[pages], w,
					      memory_order_relaxed);
			return pg;
		}
	}
	atomic_store_explicit(&a->cursor[pages], (start + n) % open,
			      memory_order_relaxed);
	/* A sweep is all open words looked at with no free in between. */
	if (atomic_load_explicit(&a->sweep_seq[pages],
				 memory_order_relaxed) != seq) {
		atomic_store_explicit(&a->sweep_seq[pages], seq,
				      memory_order_relaxed);
		atomic_store_explicit(&a->sweep_words[pages], 0,
				      memory_order_relaxed);
	}
	if (atomic_fetch_add_explicit(&a->sweep_words[pages], n,
				      memory_order_relaxed) + n >= open)
		atomic_store_explicit(&a->fail_seq[pages], seq,
				      memory_order_relaxed);
	return -1;
}

/*
 * zs_arena_check_ahead - @open words are open now: ask for a refill when
 * fewer than half the wanted words past them are populated.
 */
static void zs_arena_check_ahead(struct zs_arena *a, uint64_t open)
{
	uint64_t cap = atomic_load_explicit(&a->ahead_cap,
					    memory_order_relaxed);

	if (cap && atomic_load_explicit(&a->populated_to,
					memory_order_relaxed) <= open + cap / 2)
		atomic_fetch_or_explicit(&a->reserve_want, 1u,
					 memory_order_relaxed);
}

/*
 * zs_arena_claim - a run from the bitmap (see zs_arena_get()).  With
 * @defer (the refill), a new bitmap page is not charged now but owed, and
 * paid by the next zs_arena_get(): a store holding nothing but its
 * reserve counts nothing, as an empty zram does.
 */
static int64_t zs_arena_claim(struct zs_arena *a, unsigned pages, bool defer)
{
	uint64_t open, used;
	bool newpage;
	int64_t pg;

	for (;;) {
		/* Fresh pages at the end of the last open word. */
		open = atomic_load_explicit(&a->open_words,
					    memory_order_acquire);
		if (open) {
			pg = zs_arena_try_word(a, open - 1, pages);
			if (pg >= 0)
				goto out;
		}

		/* Runs freed below it, unless a search already came up dry. */
		used = atomic_load_explicit(&a->pages_used,
					    memory_order_relaxed);
		if (open * ZS_WORD_PAGES >= used + pages &&
		    atomic_load_explicit(&a->fail_seq[pages],
					 memory_order_relaxed) !=
		    atomic_load_explicit(&a->free_seq, memory_order_relaxed)) {
			pg = zs_arena_scan(a, pages, ZS_SCAN_WORDS);
			if (pg >= 0)
				goto out;
		}

		/* Open the next word; its bitmap page may be a new one. */
		if (open >= a->nr_words) {
			pg = zs_arena_scan(a, pages, a->nr_words);
			if (pg >= 0)
				goto out;
			return -ENOMEM;
		}
		newpage = open % ZS_BITMAP_WORDS_PER_PAGE == 0;
		if (newpage && !defer &&
		    zs_acct_charge(a->acct, ZS_PAGE_SIZE) < 0)
			return -ENOSPC;
		if (atomic_compare_exchange_strong_explicit(&a->open_words,
				&open, open + 1, memory_order_acq_rel,
				memory_order_relaxed)) {
			if (newpage && defer)
				atomic_fetch_add_explicit(&a->bitmap_owed, 1,
						memory_order_relaxed);
			zs_arena_check_ahead(a, open + 1);
		} else if (newpage && !defer) {
			zs_acct_uncharge(a->acct, ZS_PAGE_SIZE);
		}
		/* Someone opened a word, us or another: try again. */
	}
out:
	atomic_fetch_add_explicit(&a->pages_used, pages, memory_order_relaxed);
	return pg;
}

/* zs_arena_release - punch a run and clear its bits.  Cannot fail. */
static void zs_arena_release(struct zs_arena *a, uint64_t page,
			     unsigned pages)
{
	uint64_t w = page / ZS_WORD_PAGES;
	uint64_t mask = ((1ULL << pages) - 1) << (page % ZS_WORD_PAGES);

	assert((atomic_load_explicit(&a->bits[w], memory_order_relaxed) &
		mask) == mask);
	/*
	 * Punch before the bits are cleared: once they are, another class
	 * may take the run and write to it.  Punching a hole in a memfd only
	 * fails on a bad fd or range, which would be a bug here.
	 */
	while (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)(page * ZS_PAGE_SIZE),
			 (off_t)pages * ZS_PAGE_SIZE) < 0 && errno == EINTR)
		;
	atomic_fetch_and_explicit(&a->bits[w], ~mask, memory_order_release);
	atomic_fetch_sub_explicit(&a->pages_used, pages, memory_order_relaxed);
	atomic_fetch_add_explicit(&a->free_seq, 1, memory_order_relaxed);
}

/*
 * Take one spill page slot of @l pages if the spill has room.  Needs the
 * stack's lock (for the stack's share).  Returns true if it did.
 */
static bool zs_spill_take_locked(struct zs_arena *a, unsigned l)
{
	uint64_t max = atomic_load_explicit(&a->spill_max,
					    memory_order_relaxed);
	uint64_t cur = atomic_load_explicit(&a->spill_pages,
					    memory_order_relaxed);

	do {
		if (cur + l > max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&a->spill_pages, &cur,
			cur + l, memory_order_relaxed, memory_order_relaxed));
	if (!cur &&
	    !(atomic_load_explicit(&a->reserve_want, memory_order_relaxed) &
	      ZS_WANT_AGE))
		atomic_fetch_or_explicit(&a->reserve_want, ZS_WANT_AGE,
					 memory_order_relaxed);
	return true;
}

/*
 * Push @page on stack @l if it is under its cap, or, with @spill, past
 * the cap while the spill has room.  Returns true if it did.
 */
static bool zs_rstack_push(struct zs_arena *a, unsigned l, uint64_t page,
			   bool spill)
{
	struct zs_rstack *r = &a->reserve[l];
	bool done = false;

	pthread_mutex_lock(&r->lock);
	if (r->n < r->cap ||
	    (spill && r->n < r->size && zs_spill_take_locked(a, l))) {
		r->run[r->n++] = (uint32_t)page;
		done = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (done)
		atomic_fetch_add_explicit(&a->reserve_pages, l,
					  memory_order_relaxed);
	return done;
}

/*
 * Take the top run off stack @l (it has one), for the spill's and low's
 * accounting.  Needs the stack's lock; reserve_pages is the caller's.
 */
static uint64_t zs_rstack_take_locked(struct zs_arena *a, unsigned l)
{
	struct zs_rstack *r = &a->reserve[l];
	uint64_t page = r->run[--r->n];

	if (r->n >= r->cap)
		atomic_fetch_sub_explicit(&a->spill_pages, l,
					  memory_order_relaxed);
	if (r->n < r->low)
		r->low = r->n;
	return page;
}

/*
 * Pop a run off stack @l into *@page.  Returns false if the stack is
 * empty.  Marks the length wanted when it falls below half its cap.
 */
static bool zs_rstack_pop(struct zs_arena *a, unsigned l, uint64_t *page)
{
	struct zs_rstack *r = &a->reserve[l];
	bool done = false;
	uint32_t left, cap;

	pthread_mutex_lock(&r->lock);
	if (r->n) {
		*page = zs_rstack_take_locked(a, l);
		done = true;
	}
	left = r->n;
	cap = r->cap;
	pthread_mutex_unlock(&r->lock);
	if (done)
		atomic_fetch_sub_explicit(&a->reserve_pages, l,
					  memory_order_relaxed);
	if (cap && left <= cap / 2 &&
	    !(atomic_load_explicit(&a->reserve_want, memory_order_relaxed) &
	      (1u << l)))
		atomic_fetch_or_explicit(&a->reserve_want, 1u << l,
					 memory_order_relaxed);
	return done;
}

/*
 * zs_rstack_trim - punch runs off stack @l until it holds at most @keep,
 * or @count runs are punched.  Takes the stack's lock once per run, not
 * across the punch.
 */
static void zs_rstack_trim(struct zs_arena *a, unsigned l, uint32_t keep,
			   uint32_t count)
{
	struct zs_rstack *r = &a->reserve[l];
	uint64_t page = 0;
	bool over;

	for (; count; count--) {
		pthread_mutex_lock(&r->lock);
		over = r->n > keep;
		if (over)
			page = zs_rstack_take_locked(a, l);
		pthread_mutex_unlock(&r->lock);
		if (!over)
			return;
		atomic_fetch_sub_explicit(&a->reserve_pages, l,
					  memory_order_relaxed);
		zs_arena_release(a, page, l);
	}
}

/* zs_arena_drain - punch every run in the reserve.  Cannot fail. */
static void zs_arena_drain(struct zs_arena *a)
{
	unsigned l;

	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++)
		zs_rstack_trim(a, l, 0, UINT32_MAX);
}

/* Charge the bitmap pages the refill opened.  Returns 0 or -ENOSPC. */
static int zs_arena_pay_owed(struct zs_arena *a)
{
	uint64_t owed;

	if (!atomic_load_explicit(&a->bitmap_owed, memory_order_relaxed))
		return 0;
	owed = atomic_exchange_explicit(&a->bitmap_owed, 0,
					memory_order_relaxed);
	if (owed && zs_acct_charge(a->acct, owed * ZS_PAGE_SIZE) < 0) {
		atomic_fetch_add_explicit(&a->bitmap_owed, owed,
					  memory_order_relaxed);
		return -ENOSPC;
	}
	return 0;
}

int64_t zs_arena_get(struct zs_arena *a, unsigned pages)
{
	uint64_t page;
	int64_t pg;

	assert(pages >= 1 && pages <= ZS_MAX_SPAN_PAGES);
	if (zs_arena_pay_owed(a) < 0)
		return -ENOSPC;
	if (zs_rstack_pop(a, pages, &page))
		return (int64_t)page;
	pg = zs_arena_claim(a, pages, false);
	/* A full arena: the other lengths' reserves are the last room. */
	if (pg == -ENOMEM &&
	    atomic_load_explicit(&a->reserve_pages, memory_order_relaxed)) {
		zs_arena_drain(a);
		pg = zs_arena_claim(a, pages, false);
	}
	return pg;
}

void zs_arena_put(struct zs_arena *a, uint64_t page, unsigned pages)
{
	assert(pages >= 1 && pages <= ZS_MAX_SPAN_PAGES);
	if (zs_rstack_push(a, pages, page, true))
		return;
	zs_arena_release(a, page, pages);
}

static void zs_arena_populate(struct zs_arena *a, uint64_t page,
			      unsigned pages);

void zs_arena_set_reserve(struct zs_arena *a, uint64_t pages)
{
	uint64_t stacks = pages / 2, words = pages / 2 / ZS_WORD_PAGES;

	uint64_t spill = pages * ZS_SPILL_FACTOR;
	unsigned l;

	atomic_store_explicit(&a->spill_max, spill < ZS_SPILL_MAX_PAGES ?
			      spill : ZS_SPILL_MAX_PAGES,
			      memory_order_relaxed);
	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		struct zs_rstack *r = &a->reserve[l];
		uint64_t runs = stacks / ((uint64_t)ZS_MAX_SPAN_PAGES * l);
		uint64_t was, now;

		if (runs > ZS_RESERVE_RUNS)
			runs = ZS_RESERVE_RUNS;
		/* What is past the new cap is spill now, and ages out. */
		pthread_mutex_lock(&r->lock);
		was = r->n > r->cap ? r->n - r->cap : 0;
		r->cap = (uint32_t)runs;
		now = r->n > r->cap ? r->n - r->cap : 0;
		if (now > was)
			atomic_fetch_add_explicit(&a->spill_pages, (now - was) * l,
						  memory_order_relaxed);
		else if (was > now)
			atomic_fetch_sub_explicit(&a->spill_pages, (was - now) * l,
						  memory_order_relaxed);
		pthread_mutex_unlock(&r->lock);
	}
	/* One word of the half is the last open word's populated tail. */
	atomic_store_explicit(&a->ahead_cap, words ? words - 1 : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&a->reserve_want,
			      (1u << (ZS_MAX_SPAN_PAGES + 1)) - 1,
			      memory_order_relaxed);
}

uint64_t zs_arena_reserve_pages(const struct zs_arena *a)
{
	uint64_t open = atomic_load_explicit(&a->open_words,
					     memory_order_relaxed);
	uint64_t to = atomic_load_explicit(&a->populated_to,
					   memory_order_relaxed);

	return atomic_load_explicit(&a->reserve_pages, memory_order_relaxed) +
	       (to > open ? (to - open) * ZS_WORD_PAGES : 0);
}

/*
 * zs_arena_trim_word - punch the free pages of word @w.  They are claimed
 * first (all at once, by compare-and-swap), so nobody can take one while
 * it is punched, then freed again.  Pages in use are left alone.
 */
static void zs_arena_trim_word(struct zs_arena *a, uint64_t w)
{
	uint64_t v = atomic_load_explicit(&a->bits[w], memory_order_relaxed);
	uint64_t mine;
	unsigned i, j;

	do {
		mine = ~v;
		if (!mine)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&a->bits[w], &v,
			~0ULL, memory_order_acquire, memory_order_relaxed));
	for (i = 0; i < ZS_WORD_PAGES; i = j) {
		if (!(mine >> i & 1)) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < ZS_WORD_PAGES && (mine >> j & 1); j++)
			;
		while (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE |
				 FALLOC_FL_KEEP_SIZE,
				 (off_t)((w * ZS_WORD_PAGES + i) * ZS_PAGE_SIZE),
				 (off_t)(j - i) * ZS_PAGE_SIZE) < 0 &&
		       errno == EINTR)
			;
	}
	atomic_fetch_and_explicit(&a->bits[w], ~mine, memory_order_release);
	atomic_fetch_add_explicit(&a->free_seq, 1, memory_order_relaxed);
}

/*
 * zs_arena_ahead - populate the words from the last open one to
 * ahead_cap past it, or punch what lies beyond that (the cap was
 * lowered).  Needs refill_lock.
 */
static void zs_arena_ahead(struct zs_arena *a)
{
	uint64_t open = atomic_load_explicit(&a->open_words,
					     memory_order_acquire);
	uint64_t cap = atomic_load_explicit(&a->ahead_cap,
					    memory_order_relaxed);
	uint64_t to = atomic_load_explicit(&a->populated_to,
					   memory_order_relaxed);
	uint64_t lo = open ? open - 1 : 0, end, w;

	end = cap ? open + cap : lo;
	if (end > a->nr_words)
		end = a->nr_words;
	/* Too much populated: give the free pages past @end back. */
	for (w = to; w > end; w--)
		zs_arena_trim_word(a, w - 1);
	if (to > end)
		to = end;
	if (to < lo)
		to = lo;
	atomic_store_explicit(&a->populated_to, to, memory_order_relaxed);
	/*
	 * A word at a time, one madvise each.  The last open word holds live
	 * spans, and stores may open the next words meanwhile: populating
	 * changes no byte of them.  A page freed (punched) meanwhile in the
	 * last open word comes back resident, and is the next one claimed.
	 */
	for (; to < end; to++) {
		zs_arena_populate(a, to * ZS_WORD_PAGES, ZS_WORD_PAGES);
		atomic_store_explicit(&a->populated_to, to + 1,
				      memory_order_relaxed);
	}
}

/*
 * zs_arena_populate - fault in @pages pages from @page, so that writing
 * them later takes no fault.  Changes no byte: pages of live spans may be
 * in the range.  Where the kernel will not (ENOMEM in a memory cgroup at
 * its limit, EINTR, EINVAL before Linux 5.14), nothing is done and each
 * page faults in at its first write.  Cannot fail.
 */
static void zs_arena_populate(struct zs_arena *a, uint64_t page,
			      unsigned pages)
{
	(void)madvise(zs_arena_addr(a, page), (size_t)pages * ZS_PAGE_SIZE,
		      MADV_POPULATE_WRITE);
}

uint64_t zs_arena_refill(struct zs_arena *a)
{
	uint64_t before, after;
	bool spill_over;
	unsigned l;
	int64_t pg;

	pthread_mutex_lock(&a->refill_lock);
	before = zs_arena_reserve_pages(a);
	/* Every stack is topped up, not just the ones that asked. */
	atomic_store_explicit(&a->reserve_want, 0, memory_order_relaxed);
	/* Over the spill's cap (it was lowered): no spill at all. */
	spill_over = zs_arena_spill_pages(a) >
		     atomic_load_explicit(&a->spill_max, memory_order_relaxed);
	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		struct zs_rstack *r = &a->reserve[l];
		uint32_t n, cap;

		pthread_mutex_lock(&r->lock);
		cap = r->cap;
		pthread_mutex_unlock(&r->lock);
		if (spill_over)
			zs_rstack_trim(a, l, cap, UINT32_MAX);
		for (;;) {
			pthread_mutex_lock(&r->lock);
			n = r->n;
			pthread_mutex_unlock(&r->lock);
			if (n >= cap)
				break;
			pg = zs_arena_claim(a, l, true);
			if (pg < 0)
				goto out;
			zs_arena_populate(a, (uint64_t)pg, l);
			if (!zs_rstack_push(a, l, (uint64_t)pg, false)) {
				zs_arena_release(a, (uint64_t)pg, l);
				break;
			}
		}
	}
out:
	/* After the stacks: their claims may have opened words. */
	zs_arena_ahead(a);
	atomic_fetch_and_explicit(&a->reserve_want, ~1u, memory_order_relaxed);
	after = zs_arena_reserve_pages(a);
	pthread_mutex_unlock(&a->refill_lock);
	return after > before ? after - before : 0;
}

uint64_t zs_arena_age(struct zs_arena *a)
{
	unsigned l;

	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		struct zs_rstack *r = &a->reserve[l];
		uint32_t idle, cap;

		pthread_mutex_lock(&r->lock);
		idle = r->low < r->n ? r->low : r->n;
		idle = idle > r->cap ? idle - r->cap : 0;
		cap = r->cap;
		pthread_mutex_unlock(&r->lock);
		/* That many, not down to a depth: pushes meanwhile are new. */
		if (idle)
			zs_rstack_trim(a, l, cap, idle);
		/* The next period starts here. */
		pthread_mutex_lock(&r->lock);
		r->low = r->n;
		pthread_mutex_unlock(&r->lock);
	}
	atomic_fetch_and_explicit(&a->reserve_want, ~ZS_WANT_AGE,
				  memory_order_relaxed);
	return zs_arena_spill_pages(a);
}
