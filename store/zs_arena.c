/*
 * zs_arena: the pages of zs_pool's spans and metadata (private to the
 * allocator).
 *
 * Locking:
 *	refill_lock: one zs_arena_refill() at a time
 *	  -> cache.lock: leaf, held for one push or pop (the I/O path takes
 *	     it under a class lock) or one stack's aging; guards the stacks,
 *	     their counts and the aging flag, and is the only writer of
 *	     cache.pages (an atomic, so that readers need no lock).
 * Bitmap words change only by compare-and-swap or atomic and; open_words
 * only by compare-and-swap; the other counters are hints.  Nothing here
 * blocks except the punch and the refill's page faults.
 *
 * One memfd, ftruncate'd to a large sparse size and mapped MAP_SHARED
 * once: one VMA however many runs come and go, an address that never
 * moves, and memory that returns to the OS at once with
 * fallocate(FALLOC_FL_PUNCH_HOLE), which (unlike MADV_DONTNEED) also works
 * when the daemon has mlockall()ed itself.  The reasoning is in the essay
 * at the top of zs_pool.c.
 *
 * Free space is a bitmap, one bit per page.  A run is 1..8 set bits
 * inside one 64-bit word, so claiming it is one compare-and-swap and no
 * run crosses a 64-page boundary (at most 7 pages of a word go unused,
 * and only by runs of the longer lengths; the pages themselves cost
 * nothing, being never written).  Words are opened in order: the bitmap
 * past open_words has never been touched, and the last open word is
 * where fresh runs are cut.  Runs freed below it are found again by a
 * bounded scan from a per-length cursor, skipped altogether while nothing
 * has been freed since the last full scan failed.  Freed runs are never
 * merged; none need be, since a run only has to fit in its word.  The
 * bitmap costs 32 KiB per GiB of the arena's high-water mark and is never
 * shrunk; it is not in the pool's byte account (like the store's page
 * table, it is touched only where pages are used).
 *
 * The cache.  A run given back is not punched at once: it goes into the
 * cache, a stack per run length under one lock, while the cache has room,
 * and the next run taken comes from there, its pages still resident, so
 * written without a page fault.  A pool that frees and stores at the same
 * rate (overwrites, swap slots discarded and reused) makes no syscall and
 * takes no fault at all.  A run longer than asked for is split, and the
 * rest stays cached, so a run of ZS_MAX_SPAN_PAGES serves any length.
 *
 * Three rules keep it:
 *  - the target: zs_arena_refill(), run by the store's background thread
 *    when a get leaves the cache's runs of ZS_MAX_SPAN_PAGES at half the
 *    target or less, claims fresh runs of that length up to the target
 *    and faults them in itself (madvise(MADV_POPULATE_WRITE), which
 *    writes no byte; where the kernel refuses, as in a memory cgroup at
 *    its limit or before Linux 5.14, the pages fault in at first use
 *    instead).  So a store on the I/O path neither takes a fault nor
 *    waits in the page allocator, which under memory pressure could mean
 *    waiting on reclaim, and so on swap I/O to our own image;
 *  - the room: frees come in waves (swap discards a 2 MiB cluster, a hog
 *    exits, compaction empties many spans), rarely of the length the next
 *    stores want, so the cache holds up to ZS_CACHE_ROOM_FACTOR times the
 *    target (ZS_CACHE_MAX_PAGES at most) and punches only past that;
 *  - aging: a run cached ZS_CACHE_AGE_MS ago and still unused is punched
 *    by zs_arena_age(), except the target's long runs.  Stacks are LIFO,
 *    so the oldest runs sit at the bottom, where aging looks.  Memory
 *    freed in a wave goes back to the OS within one or two periods.
 * Cached pages are resident but belong to nobody: they are not in the
 * pool's byte account (mem_used_total).
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
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "store/zs_arena_i.h"

#define ZS_SCAN_WORDS 256		/* words a search looks at, at most */
/* Runs keep 32-bit page numbers, and the pool's lists end at UINT32_MAX. */
#define ZS_ARENA_MAX_PAGES ((1ULL << 32) - ZS_WORD_PAGES)
#define ZS_ARENA_MIN_PAGES (1ULL << 14)	/* 64 MiB: the least we settle for */
#define ZS_REFILL_BATCH 8		/* runs faulted in by one madvise */

/* Set the arena's size fields for @pages (a multiple of 64). */
static void zs_arena_size(struct zs_arena *a, uint64_t pages)
{
	a->nr_words = pages / ZS_WORD_PAGES;
	a->map_bytes = pages * ZS_PAGE_SIZE;
	a->bits_bytes = (a->nr_words * sizeof(uint64_t) + ZS_PAGE_SIZE - 1) /
			ZS_PAGE_SIZE * ZS_PAGE_SIZE;
}


/*
 * The stacks, in one allocation: room for the whole cache in runs of each
 * length.  Untouched pages of it cost nothing.  Returns 0 or -ENOMEM.
 */
static int zs_cache_init(struct zs_cache *c)
{
	size_t total = 0;
	struct zs_crun *run;
	unsigned l;

	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++)
		total += ZS_CACHE_MAX_PAGES / l;
	run = calloc(total, sizeof(*run));
	if (!run)
		return -ENOMEM;
	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		c->run[l] = run;
		run += ZS_CACHE_MAX_PAGES / l;
	}
	pthread_mutex_init(&c->lock, NULL);
	return 0;
}

int zs_arena_init(struct zs_arena *a, uint64_t bytes)
{
	uint64_t pages = (bytes + ZS_PAGE_SIZE - 1) / ZS_PAGE_SIZE;
	int ret;

	pages = (pages + ZS_WORD_PAGES - 1) / ZS_WORD_PAGES * ZS_WORD_PAGES;
	if (pages < ZS_WORD_PAGES)
		pages = ZS_WORD_PAGES;
	if (pages > ZS_ARENA_MAX_PAGES)
		pages = ZS_ARENA_MAX_PAGES;

	*a = (struct zs_arena){ .fd = -1 };
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
	if (zs_cache_init(&a->cache) < 0) {
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
	if (a->fd < 0)
		return;
	munmap((void *)a->bits, a->bits_bytes);
	munmap(a->base, a->map_bytes);
	close(a->fd);
	a->fd = -1;
	free(a->cache.run[1]);	/* the first of one allocation */
	pthread_mutex_destroy(&a->cache.lock);
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


/* zs_arena_claim - a run from the bitmap (see zs_arena_get()). */
static int64_t zs_arena_claim(struct zs_arena *a, unsigned pages)
{
	uint64_t open, used;
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

		/* Open the next word. */
		if (open >= a->nr_words) {
			pg = zs_arena_scan(a, pages, a->nr_words);
			if (pg >= 0)
				goto out;
			return -ENOMEM;
		}
		atomic_compare_exchange_strong_explicit(&a->open_words, &open,
				open + 1, memory_order_acq_rel,
				memory_order_relaxed);
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


uint32_t zs_arena_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000 +
			  (uint64_t)ts.tv_nsec / 1000000);
}

/* Runs of stack @l that aging leaves alone: the target's long runs. */
static uint32_t zs_cache_kept_locked(const struct zs_cache *c, unsigned l)
{
	uint64_t keep;

	if (l != ZS_MAX_SPAN_PAGES)
		return 0;
	keep = atomic_load_explicit(&c->target, memory_order_relaxed) /
	       ZS_MAX_SPAN_PAGES;
	return keep < c->n[l] ? (uint32_t)keep : c->n[l];
}

/* Push a run on stack @l.  Needs the lock and room. */
static void zs_cache_push_locked(struct zs_cache *c, unsigned l,
				 uint64_t page, uint32_t stamp)
{
	c->run[l][c->n[l]++] = (struct zs_crun){ (uint32_t)page, stamp };
	atomic_store_explicit(&c->pages, atomic_load_explicit(&c->pages,
			      memory_order_relaxed) + l, memory_order_relaxed);
}

/* Pop the top run of stack @l (it has one).  Needs the lock. */
static struct zs_crun zs_cache_pop_locked(struct zs_cache *c, unsigned l)
{
	atomic_store_explicit(&c->pages, atomic_load_explicit(&c->pages,
			      memory_order_relaxed) - l, memory_order_relaxed);
	return c->run[l][--c->n[l]];
}

/*
 * zs_cache_want - raise the wanted signal, unless it is up.  The cache's
 * signal is one flag; the store's background thread clears it.
 */
static void zs_cache_want(struct zs_cache *c)
{
	if (!atomic_load_explicit(&c->wanted, memory_order_relaxed))
		atomic_store_explicit(&c->wanted, true, memory_order_relaxed);
}

/*
 * zs_cache_get - a cached run of @l pages into *@page: from stack @l, or
 * split off the shortest longer one.  Returns false if none is cached.
 * Raises the signal when the long runs fall to half the target.
 */
static bool zs_cache_get(struct zs_cache *c, unsigned l, uint64_t *page)
{
	uint64_t target = atomic_load_explicit(&c->target,
					       memory_order_relaxed);
	struct zs_crun r;
	bool got = false;
	unsigned m;

	if (!atomic_load_explicit(&c->pages, memory_order_relaxed) &&
	    !target)
		return false;
	pthread_mutex_lock(&c->lock);
	for (m = l; m <= ZS_MAX_SPAN_PAGES; m++) {
		if (!c->n[m])
			continue;
		r = zs_cache_pop_locked(c, m);
		if (m > l)
			zs_cache_push_locked(c, m - l, r.page + l, r.stamp);
		*page = r.page;
		got = true;
		break;
	}
	if (target && (uint64_t)c->n[ZS_MAX_SPAN_PAGES] * ZS_MAX_SPAN_PAGES <=
		      target / 2)
		zs_cache_want(c);
	pthread_mutex_unlock(&c->lock);
	return got;
}

/*
 * zs_cache_put - cache a run of @l pages if the room allows.  Returns
 * false if it did not.  Raises the signal when the run will age out and
 * the background thread does not know yet.
 */
static bool zs_cache_put(struct zs_cache *c, unsigned l, uint64_t page)
{
	uint64_t room = atomic_load_explicit(&c->room, memory_order_relaxed);
	uint32_t stamp;
	bool done = false;

	if (!room)
		return false;
	stamp = zs_arena_now_ms();
	pthread_mutex_lock(&c->lock);
	if (atomic_load_explicit(&c->pages, memory_order_relaxed) + l <=
	    room) {
		zs_cache_push_locked(c, l, page, stamp);
		if (!c->aging && c->n[l] > zs_cache_kept_locked(c, l)) {
			c->aging = true;
			zs_cache_want(c);
		}
		done = true;
	}
	pthread_mutex_unlock(&c->lock);
	return done;
}

int64_t zs_arena_get(struct zs_arena *a, unsigned pages)
{
	uint64_t page;

	assert(pages >= 1 && pages <= ZS_MAX_SPAN_PAGES);
	if (zs_cache_get(&a->cache, pages, &page))
		return (int64_t)page;
	return zs_arena_claim(a, pages);
}

void zs_arena_put(struct zs_arena *a, uint64_t page, unsigned pages)
{
	assert(pages >= 1 && pages <= ZS_MAX_SPAN_PAGES);
	if (!zs_cache_put(&a->cache, pages, page))
		zs_arena_release(a, page, pages);
}

void zs_arena_set_cache(struct zs_arena *a, uint64_t pages)
{
	struct zs_cache *c = &a->cache;
	uint64_t room = pages * ZS_CACHE_ROOM_FACTOR;

	if (room > ZS_CACHE_MAX_PAGES)
		room = ZS_CACHE_MAX_PAGES;
	if (pages > room)
		pages = room;
	pthread_mutex_lock(&c->lock);
	atomic_store_explicit(&c->target, pages, memory_order_relaxed);
	atomic_store_explicit(&c->room, room, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	zs_cache_want(c);
}

/*
 * zs_cache_trim - punch runs off the tops of the stacks, shortest first,
 * until the cache holds at most @keep pages.  Takes the lock per run.
 */
static void zs_cache_trim(struct zs_arena *a, uint64_t keep)
{
	struct zs_cache *c = &a->cache;
	unsigned l = 1;
	struct zs_crun r;

	while (l <= ZS_MAX_SPAN_PAGES) {
		pthread_mutex_lock(&c->lock);
		if (atomic_load_explicit(&c->pages, memory_order_relaxed) <=
		    keep) {
			pthread_mutex_unlock(&c->lock);
			return;
		}
		if (!c->n[l]) {
			pthread_mutex_unlock(&c->lock);
			l++;
			continue;
		}
		r = zs_cache_pop_locked(c, l);
		pthread_mutex_unlock(&c->lock);
		zs_arena_release(a, r.page, l);
	}
}

/*
 * zs_arena_populate - fault in @pages pages from @page, so that writing
 * them later takes no fault.  Changes no byte.  Where the kernel will not
 * (ENOMEM in a memory cgroup at its limit, EINTR, EINVAL before Linux
 * 5.14), nothing is done and each page faults in at its first write.
 * Cannot fail.
 */
static void zs_arena_populate(struct zs_arena *a, uint64_t page,
			      unsigned pages)
{
	(void)madvise(zs_arena_addr(a, page), (size_t)pages * ZS_PAGE_SIZE,
		      MADV_POPULATE_WRITE);
}

/*
 * zs_refill_batch - fault in the @n fresh runs of @got (each of
 * ZS_MAX_SPAN_PAGES, in claim order), one madvise per contiguous stretch,
 * then cache them; those the room no longer takes are released.  Returns
 * the pages cached.
 */
static uint64_t zs_refill_batch(struct zs_arena *a, const uint64_t *got,
				unsigned n)
{
	const unsigned l = ZS_MAX_SPAN_PAGES;
	struct zs_cache *c = &a->cache;
	uint64_t room, added = 0;
	uint32_t stamp = zs_arena_now_ms();
	unsigned i, j;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && got[j] == got[j - 1] + l; j++)
			;
		zs_arena_populate(a, got[i], (j - i) * l);
	}
	room = atomic_load_explicit(&c->room, memory_order_relaxed);
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < n; i++) {
		if (atomic_load_explicit(&c->pages, memory_order_relaxed) + l >
		    room)
			break;
		zs_cache_push_locked(c, l, got[i], stamp);
		added += l;
	}
	pthread_mutex_unlock(&c->lock);
	for (; i < n; i++)
		zs_arena_release(a, got[i], l);
	return added;
}

uint64_t zs_arena_refill(struct zs_arena *a)
{
	const unsigned l = ZS_MAX_SPAN_PAGES;
	struct zs_cache *c = &a->cache;
	uint64_t got[ZS_REFILL_BATCH], added = 0, target, have, room, held;
	unsigned n;
	int64_t pg;

	pthread_mutex_lock(&a->refill_lock);
	/* Cleared first: a get that drains the cache meanwhile raises it. */
	atomic_store_explicit(&c->wanted, false, memory_order_relaxed);
	zs_cache_trim(a, atomic_load_explicit(&c->room, memory_order_relaxed));
	for (;;) {
		target = atomic_load_explicit(&c->target, memory_order_relaxed);
		room = atomic_load_explicit(&c->room, memory_order_relaxed);
		pthread_mutex_lock(&c->lock);
		have = (uint64_t)c->n[l] * l;
		held = atomic_load_explicit(&c->pages, memory_order_relaxed);
		pthread_mutex_unlock(&c->lock);
		/* Short runs fill the room: the long ones wait till they age.
		 * A room made smaller meanwhile (zs_arena_set_cache()) may be
		 * overfull: then nothing is added. */
		if (held >= room)
			break;
		if (target > have + (room - held))
			target = have + (room - held);
		if (have + l > target)
			break;
		for (n = 0; n < ZS_REFILL_BATCH && have + (n + 1) * l <= target;
		     n++) {
			pg = zs_arena_claim(a, l);
			if (pg < 0)
				break;
			got[n] = (uint64_t)pg;
		}
		if (!n)
			break;
		added += zs_refill_batch(a, got, n);
		if (pg < 0)
			break;
	}
	pthread_mutex_unlock(&a->refill_lock);
	return added;
}

unsigned zs_arena_age(struct zs_arena *a, uint32_t now_ms)
{
	struct zs_cache *c = &a->cache;
	struct zs_crun buf[ZS_REFILL_BATCH * 8];
	const uint32_t max = sizeof(buf) / sizeof(buf[0]);
	uint32_t next = 0, kept, k, take, i, age;
	bool more, left = false;
	unsigned l;

	for (l = 1; l <= ZS_MAX_SPAN_PAGES; l++) {
		do {
			pthread_mutex_lock(&c->lock);
			/* The oldest are at the bottom, over the target's. */
			kept = zs_cache_kept_locked(c, l);
			for (k = kept; k < c->n[l] && k - kept < max; k++) {
				/* A run cached after @now_ms was read is new,
				 * not 2^32 ms old. */
				age = (int32_t)(now_ms - c->run[l][k].stamp) < 0 ?
				      0 : now_ms - c->run[l][k].stamp;
				if (age < ZS_CACHE_AGE_MS) {
					if (!next || ZS_CACHE_AGE_MS - age < next)
						next = ZS_CACHE_AGE_MS - age;
					break;
				}
			}
			take = k - kept;
			memcpy(buf, c->run[l] + kept, take * sizeof(*buf));
			memmove(c->run[l] + kept, c->run[l] + k,
				(c->n[l] - k) * sizeof(*buf));
			c->n[l] -= take;
			atomic_store_explicit(&c->pages,
				atomic_load_explicit(&c->pages,
				memory_order_relaxed) - (uint64_t)take * l,
				memory_order_relaxed);
			more = take == max;
			if (!more)
				left |= c->n[l] > kept;
			pthread_mutex_unlock(&c->lock);
			for (i = 0; i < take; i++)
				zs_arena_release(a, buf[i].page, l);
		} while (more);
	}
	pthread_mutex_lock(&c->lock);
	c->aging = left;
	pthread_mutex_unlock(&c->lock);
	return left ? (next ? next : 1) : 0;
}
