/*
 * zr_store: the page table of a compressed image.
 *
 * Design.  The disk is an array of 4 KiB pages; each has one 16-byte slot
 * (zr_slot_i.h).  A slot is empty (reads as zeros), same-filled (one
 * 8-byte word repeated: the word lives in the slot, no allocation, as
 * zram's ZRAM_SAME), a compressed object, or a raw page when compression
 * leaves more than ZR_HUGE_THRESHOLD bytes (zram's ZRAM_HUGE).  Objects
 * live in a zs_pool and are named by handles.
 *
 * A whole-page write compresses outside any lock, into the calling
 * thread's stream (a compressor context and buffers created once per
 * thread and recycled when the thread exits), copies the result into a
 * new object (zs_store), and only then takes the slot's write lock to swap
 * the handle in.  The old object is freed after the lock is dropped.  So
 * the slot lock covers a few loads and stores; two writers of one page
 * simply race to the swap and the last one wins, as on a disk.  A partial
 * page write is a read-modify-write and holds the write lock throughout.
 *
 * A read takes the slot's read lock and decompresses straight out of the
 * allocator (zs_read), or fills zeros or the same-fill word.
 *
 * Recompression (zr_recompress(), zram's recomp_algorithm and
 * recompress).  Up to ZR_RECOMP_MAX secondary algorithms; each object
 * records, in its slot's handle, the priority of the one that made it
 * (zr_slot_i.h), so a read picks the right decompressor, in RAM or in the
 * backing file.  Writes always compress with the primary.  Recompressing
 * a page holds its write lock from the decompression to the swap, one
 * page at a time: the page is idle by choice, so a write of it waits for
 * one page's compression at most, and no check-and-retry is needed for a
 * write racing the new object in.
 *
 * The page table is an anonymous mapping touched only where pages are
 * written; it is not counted in mem_used_total (see the man page).
 *
 * Empty slots.  Taking a slot lock, even shared, writes the slot (a
 * compare-and-swap on its word), which would fault in, and under the
 * daemon's mlockall pin, the table page of every slot a read, seek, idle
 * marking or discard passes over: 4 GiB for `echo all > idle` on a 1 TiB
 * disk.  So those look at a slot first with zr_slot_empty(), one relaxed
 * load that writes nothing, and do nothing more with a slot found empty.
 * This is correct because meta leaves 0 only in zr_swap_locked(), under
 * the write lock, in one atomic store: a load that returns 0 is ordered
 * before that store, so the operation takes effect (is linearized) at the
 * load, before the write, exactly as if it had taken the read lock just
 * before the writer took the write lock.  The write is concurrent with it
 * (neither finished before the other began: a writer that finished is
 * ordered before, and then coherence makes the load see its store), and
 * two concurrent operations on one page may take effect in either order,
 * as on a disk.  A slot found non-empty is locked and its meta read
 * again under the lock, since it may have been emptied in between.
 *
 * One background thread, the maintainer (zr_maintainer()), runs a small
 * table of tasks (zr_tasks): keeping the allocator's cache of resident
 * free pages at its target (zs_cache_refill(), cfg->reserve bytes), so
 * that the page faults and any wait in the page allocator are its and not
 * the I/O path's; giving back what that cache kept and nothing reused
 * (zs_cache_age()); and compacting when zs_fragmented() says the pool
 * wastes more than its threshold; and, first of all, writing the
 * backing file's closed segments (zb_write_queued()) and keeping its free
 * segments ready, punching those no write needed for a while
 * (zb_refill()); and recompressing (zr_task_recompress()) and writing
 * back (zr_task_writeback()) what has not been used for their ages;
 * compacting the backing file (zr_task_bdcompact()); and keeping ages
 * from wrapping (zr_task_ages()).
 * Each task says when it wants to run again; otherwise
 * the thread sleeps until kicked.  One wake-up,
 * zr_maint_kick(): after a store or a free when zs_cache_wanted() says
 * so, and after a discard when the pool is fragmented.  The cache is
 * filled once before zr_store_create() returns.
 *
 * Locking:
 *   bc_lock                   the backing file's compaction (the
 *                             maintainer's run, zr_compact_file()); held
 *                             across a run of slot locks, taken by the
 *                             maintainer only by trylock
 *   -> slot lock (zr_slot_i.h) one per page; never waited for while
 *                             another is held (a spill inside a partial
 *                             write takes its victims' by trylock);
 *                             held exclusive across a recompression
 *     -> zs_pool class lock   taken inside zs_store/zs_read/zs_free
 *     -> zb_file's mutex      inside zb_write/zb_read/zb_free: a page is
 *                             copied to the backing file under its own
 *                             slot's write lock
 *   streams_lock              leaf; only on thread start/exit
 *   maint_lock                leaf; the maintainer's sleep and stop
 *   work_lock                 leaf; taken twice per large request (post,
 *                             unlink) and by idle workers, never per page
 * Statistics are relaxed atomics: each figure is exact when I/O is idle,
 * approximate while it runs.
 *
 * Large requests (ZR_PARALLEL_MIN bytes or more) are split: the caller
 * posts the request on a work list, idle helper threads join it, and all
 * of them claim pages one at a time with an atomic counter, so a 1 MiB
 * write is compressed on every CPU, as zram's page-based parallel write
 * proposal intended.  Only while fewer large requests are in flight than
 * there are threads to compress (big_inflight): when the kernel already
 * sends one per CPU (a loop device's 1 MiB direct I/O comes as 8 requests
 * of 128 KiB), splitting each only adds wake-ups (always splitting read
 * a fifth slower than threads=1; bench/RESULTS.md).  A busy machine
 * simply leaves the caller to do its own pages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "compressors/zcomp.h"
#include "store/zr_slot_i.h"
#include "store/zr_store_i.h"
#include "store/zr_store.h"
#include "store/zs_pool.h"
#include "store/zb_file.h"

#define ZR_COMPACT_PERIOD_MS 10000	/* between fragmentation checks */
/* Between looks at the backing file's waste (a look is two loads under
 * its mutex, or a scan of its segment table when it is worth a pass). */
#define ZR_BC_PERIOD_MS 2000
/* Segments of the backing file one sweep of the table compacts: 16 MiB,
 * of which at most half is rewritten. */
#define ZR_BC_SEGS 64
/*
 * The maintainer's nice value.  The I/O path waits for some of its tasks
 * (the allocator's cache, the backing file's segment writes), and its
 * policies have CPU budgets of their own; at nice 0 it got a fair share
 * among the FUSE threads, which under load left the recompression policy
 * a seventh of its budget (bench/RESULTS.md).  Lowering it needs
 * CAP_SYS_NICE (root has it); without, it stays at 0.
 */
#define ZR_MAINT_NICE (-7)

struct zr_job;

/* One per thread that does I/O: created once, recycled at thread exit. */
struct zr_stream {
	/*
	 * ctx[p]: the algorithm of priority p (0 the primary), NULL where
	 * the store has none: every thread may read a recompressed page.
	 * A secondary's context only decompresses until the thread first
	 * recompresses (zr_stream_recomp()): the compression state of
	 * lz4hc or zstd, 90-256 KiB, is not kept by every I/O thread.
	 */
	struct zcomp_ctx *ctx[ZR_RECOMP_MAX + 1];
	struct zr_stream *next;		/* guarded by streams_lock */
	struct zr_stream *all_next;	/* guarded by streams_lock */
	uint8_t cbuf[ZR_PAGE_SIZE];	/* compressed output */
	uint8_t page[ZR_PAGE_SIZE];	/* bounce page for partial I/O */
	/*
	 * With a backing file only, else NULL: a page's compressed copy on
	 * its way to or from the file, ZR_PAGE_SIZE; with a secondary
	 * algorithm too, twice that: the page itself, then its copy in the
	 * first secondary algorithm (zr_wb_encode()).  Not cbuf or page:
	 * a spill writes back while those hold the page being stored.
	 */
	uint8_t *bdbuf;
};

struct zr_store {
	uint64_t disksize;
	uint64_t npages;
	struct zr_slot *table;		/* npages slots, mmap'ed */
	size_t table_bytes;
	struct zs_pool *pool;
	struct zb_file *bd;		/* the backing file, or NULL; borrowed */
	/* backend[p], level[p]: the algorithm of priority p (0 the
	 * primary), backend NULL where none is given. */
	const struct zcomp_backend *backend[ZR_RECOMP_MAX + 1];
	int level[ZR_RECOMP_MAX + 1];
	unsigned rc_first, rc_last;	/* lowest, highest secondary; 0 none */

	pthread_key_t stream_key;	/* this thread's zr_stream */
	pthread_mutex_t streams_lock;	/* protects spare and all */
	struct zr_stream *spare;	/* streams of exited threads */
	struct zr_stream *all;		/* every stream, for destroy */

	unsigned nworkers;
	pthread_t *workers;		/* nworkers helper threads */
	_Atomic unsigned big_inflight;	/* zr_io()s of ZR_PARALLEL_MIN or more */
	pthread_mutex_t work_lock;	/* protects work, work_stop */
	pthread_cond_t work_cond;	/* signalled when a job is posted */
	struct zr_job *work;		/* guarded by work_lock: open jobs */
	bool work_stop;			/* guarded by work_lock */

	pthread_t maintainer;		/* zr_maintainer() */
	pthread_mutex_t maint_lock;	/* leaf; the maintainer sleeps on it */
	pthread_cond_t maint_cond;	/* signalled by a kick or the stop */
	bool maint_stop;		/* guarded by maint_lock */
	atomic_bool maint_kicked;	/* set by a kick, cleared by the
					 * maintainer before its tasks run;
					 * signalled under maint_lock */

	/* Statistics: relaxed atomics, approximate while I/O runs. */
	_Atomic uint64_t pages_stored;
	_Atomic uint64_t compr_data_size;
	_Atomic uint64_t same_pages;
	_Atomic uint64_t huge_pages;
	_Atomic uint64_t huge_pages_since;
	_Atomic uint64_t failed_reads;
	_Atomic uint64_t failed_writes;
	_Atomic uint64_t notify_free;
	_Atomic uint64_t miss_free;
	_Atomic uint64_t mem_used_max;
	_Atomic uint64_t idle_pages;
	_Atomic uint64_t split_requests;
	_Atomic uint64_t bd_count;	/* pages in the backing file */
	_Atomic uint64_t bd_bytes;	/* their compressed bytes */
	_Atomic uint64_t bd_reads;	/* pages read from it */
	_Atomic uint64_t bd_writes;	/* pages written to it */
	_Atomic uint64_t bd_spills;	/* of those, by zr_spill() */
	_Atomic uint64_t bd_ahead;	/* of those, by zr_task_spill() */
	_Atomic uint64_t bd_aged;	/* of those, by zr_task_writeback() */
	struct zr_wb_limit *wb_limit;	/* the device's; may be NULL */
	_Atomic unsigned wb_age;	/* the age policy's age, s; 0 off */
	_Atomic uint64_t wb_oldest;	/* see zr_stats */
	/* The age policy's sweep; the maintainer's alone, no lock. */
	uint64_t wb_hand;		/* next slot to look at */
	bool wb_huge_done;		/* this sweep's huge pass is done */
	uint32_t wb_sweep_oldest;	/* oldest in RAM seen so far */
	_Atomic uint64_t spill_hand;	/* zr_spill()'s next window */
	/* zr_task_spill()'s state; the maintainer's alone, no lock. */
	bool spill_ahead;		/* at work, down to the low mark */
	bool spill_wait;		/* the file refused or nothing moved:
					 * not before spill_retry */
	uint32_t spill_retry;		/* a zb_now_ms() */
	_Atomic uint64_t algo_pages[ZR_RECOMP_MAX + 1];
	_Atomic uint64_t recompressed;
	_Atomic uint64_t recomp_saved;
	_Atomic uint64_t recomp_aged;
	_Atomic uint64_t incompressible;
	_Atomic unsigned rc_age;	/* the recompression policy's age, s */
	/* Its sweep; the maintainer's alone, no lock. */
	uint64_t rc_hand;		/* next slot to look at */
	uint64_t rc_sweep_done;		/* pages recompressed since the
					 * sweep's last compaction */
	/* The backing file's compaction (zr_bc_run()): the maintainer's
	 * pass or zr_compact_file(), one at a time. */
	pthread_mutex_t bc_lock;	/* guards the bc_ fields */
	uint32_t bc_segs[ZR_BC_SEGS];	/* [bc_lock] segments picked,
					 * ascending (zb_compact_pick()) */
	unsigned bc_n;			/* [bc_lock] 0 = none picked */
	uint64_t bc_hand;		/* [bc_lock] next slot to look at */
	uint32_t bc_next;		/* [bc_lock] zb_now_ms() of the next
					 * run (the maintainer runs every
					 * task at every kick) */
	uint64_t age_next;		/* zr_task_ages()'s next sweep, a
					 * zr_now(); the maintainer's alone */
	struct timespec epoch;		/* CLOCK_MONOTONIC_COARSE at create */
};

#define zr_stat_add(st, field, n) \
	atomic_fetch_add_explicit(&(st)->field, (n), memory_order_relaxed)
#define zr_stat_sub(st, field, n) \
	atomic_fetch_sub_explicit(&(st)->field, (n), memory_order_relaxed)
#define zr_stat_get(st, field) \
	atomic_load_explicit(&(st)->field, memory_order_relaxed)

/* ------------------------------------------------------------------ */
/* Streams                                                             */

static void zr_stream_release(void *arg);
static void *zr_worker(void *arg);
static void zr_refill_kick(struct zr_store *st);
static void zr_bd_kick(struct zr_store *st);
static void zr_maint_kick(struct zr_store *st);
static void zr_compact_kick(struct zr_store *st);
static void zr_spill_kick(struct zr_store *st);

/* Key destructors get only the value, so each stream remembers its store. */
struct zr_stream_owner {
	struct zr_stream stream;
	struct zr_store *st;
};

/* zr_stream_free - free a stream that is in no list. */
static void zr_stream_free(struct zr_stream *s)
{
	unsigned p;

	for (p = 0; p <= ZR_RECOMP_MAX; p++)
		zcomp_ctx_destroy(s->ctx[p]);
	free(s->bdbuf);
	free((struct zr_stream_owner *)s);
}

/* zr_stream_ctxs - a context for each of the store's algorithms, the
 * secondaries' for decompression: 0 or -ENOMEM (the ones made are left
 * for zr_stream_free()). */
static int zr_stream_ctxs(struct zr_store *st, struct zr_stream *s)
{
	unsigned p;
	int ret;

	for (p = 0; p <= ZR_RECOMP_MAX; p++) {
		if (!st->backend[p])
			continue;
		ret = p ? zcomp_dctx_create(st->backend[p], &s->ctx[p]) :
		      zcomp_ctx_create(st->backend[p], st->level[p],
				       &s->ctx[p]);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * zr_stream_recomp - make @s's secondary contexts able to compress, for
 * a thread about to recompress.  Returns 0 or -ENOMEM (@s unchanged
 * where it failed).  Allocates: call it outside any slot lock.
 */
static int zr_stream_recomp(struct zr_store *st, struct zr_stream *s)
{
	struct zcomp_ctx *ctx;
	unsigned p;
	int ret;

	for (p = 1; p <= ZR_RECOMP_MAX; p++) {
		if (!s->ctx[p] || zcomp_ctx_compresses(s->ctx[p]))
			continue;
		ret = zcomp_ctx_create(st->backend[p], st->level[p], &ctx);
		if (ret)
			return ret;
		zcomp_ctx_destroy(s->ctx[p]);
		s->ctx[p] = ctx;
	}
	return 0;
}

static void zr_stream_release(void *arg)
{
	struct zr_stream_owner *o = arg;
	struct zr_store *st = o->st;

	pthread_mutex_lock(&st->streams_lock);
	o->stream.next = st->spare;
	st->spare = &o->stream;
	pthread_mutex_unlock(&st->streams_lock);
}

/*
 * zr_stream_get - this thread's stream, made or recycled on first use.
 * Returns NULL on ENOMEM.  Lock-free after the first call in a thread.
 */
static struct zr_stream *zr_stream_get(struct zr_store *st)
{
	struct zr_stream *s = pthread_getspecific(st->stream_key);
	struct zr_stream_owner *o;

	if (s)
		return s;

	pthread_mutex_lock(&st->streams_lock);
	s = st->spare;
	if (s)
		st->spare = s->next;
	pthread_mutex_unlock(&st->streams_lock);

	if (!s) {
		o = calloc(1, sizeof(*o));
		if (!o)
			return NULL;
		o->st = st;
		if (st->bd) {
			o->stream.bdbuf = malloc(st->rc_first ?
						 2 * ZR_PAGE_SIZE :
						 ZR_PAGE_SIZE);
			if (!o->stream.bdbuf) {
				free(o);
				return NULL;
			}
		}
		s = &o->stream;
		if (zr_stream_ctxs(st, s)) {
			zr_stream_free(s);
			return NULL;
		}
		pthread_mutex_lock(&st->streams_lock);
		s->all_next = st->all;
		st->all = s;
		pthread_mutex_unlock(&st->streams_lock);
	}
	if (pthread_setspecific(st->stream_key, s)) {
		zr_stream_release(s);
		return NULL;
	}
	return s;
}

/* ------------------------------------------------------------------ */
/* Page helpers                                                        */

/* Word access that works on any alignment (user buffers may be odd). */
static inline uint64_t zr_load_word(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* zr_same_filled - true if @page is one 8-byte word repeated. */
static bool zr_same_filled(const void *page, uint64_t *word)
{
	const uint8_t *p = page;
	uint64_t v = zr_load_word(p);
	size_t i;

	/* Check the last word first: most pages fail fast. */
	if (zr_load_word(p + ZR_PAGE_SIZE - 8) != v)
		return false;
	for (i = 8; i < ZR_PAGE_SIZE - 8; i += 8)
		if (zr_load_word(p + i) != v)
			return false;
	*word = v;
	return true;
}

static void zr_fill_word(void *dst, uint64_t word)
{
	uint8_t *p = dst;
	size_t i;

	if (word == 0) {
		memset(dst, 0, ZR_PAGE_SIZE);
		return;
	}
	for (i = 0; i < ZR_PAGE_SIZE; i += 8)
		memcpy(p + i, &word, sizeof(word));
}

static void zr_update_max(struct zr_store *st)
{
	uint64_t cur = zs_total_bytes(st->pool);
	uint64_t max = zr_stat_get(st, mem_used_max);

	while (cur > max &&
	       !atomic_compare_exchange_weak_explicit(&st->mem_used_max, &max,
						      cur,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/* zr_now - seconds since the store was made (coarse clock, no syscall). */
static uint64_t zr_now(const struct zr_store *st)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (uint64_t)(t.tv_sec - st->epoch.tv_sec);
}

/* zr_now16 - zr_now() placed in a slot's access-time bits. */
static uint32_t zr_now16(const struct zr_store *st)
{
	return (uint32_t)(zr_now(st) & 0xffff) << ZR_META_TIME_SHIFT;
}

/*
 * zr_age_at - seconds from the access recorded in @meta to @now, a
 * zr_now() (mod 2^16): sweeps read the clock once, not once a slot.  A
 * page touched after that reading, in a later second, has a time ahead
 * of @now, which modulo 2^16 would make it about 65535 s old (so the
 * age clamp would date it 17.9 hours back, and idle marking take it):
 * a time up to ZR_AGE_AHEAD s ahead counts as age 0.  ZR_AGE_CAP keeps
 * every real age out of that range.
 */
#define ZR_AGE_AHEAD 64
static uint32_t zr_age_at(uint64_t now, uint32_t meta)
{
	uint32_t age = ((uint32_t)now - (meta >> ZR_META_TIME_SHIFT)) & 0xffff;

	return age > 0xffff - ZR_AGE_AHEAD ? 0 : age;
}

/* zr_meta_age - seconds since the access recorded in @meta (mod 2^16). */
static uint32_t zr_meta_age(const struct zr_store *st, uint32_t meta)
{
	return zr_age_at(zr_now(st), meta);
}

uint64_t zr_clock(const struct zr_store *st)
{
	return zr_now(st);
}

/*
 * Ages saturate instead of wrapping.  A slot keeps the second of its
 * last access modulo 2^16, so a page left alone for 65536 s would seem
 * new again.  So, once the store is old enough for any page to be
 * ZR_AGE_CAP old, the maintainer sweeps the table every ZR_AGE_SWEEP_S
 * (zr_task_ages()) and sets the time of every page older than
 * ZR_AGE_CAP to exactly that age: between sweeps such a page ages to
 * ZR_AGE_CAP + ZR_AGE_SWEEP_S, and a sweep may be as late again before
 * any age reaches the ZR_AGE_AHEAD seconds below 65536 that count as
 * new (zr_age_at()).  Ages up to ZR_AGE_CAP (64271 s, 17.9 hours) are
 * exact; older pages count as 64271 to 65471 s old.
 */
#define ZR_AGE_SWEEP_S 600
#define ZR_AGE_CAP (0xffff - ZR_AGE_AHEAD - 2 * ZR_AGE_SWEEP_S)

uint64_t zr_age_clamp(struct zr_store *st, uint64_t now)
{
	uint32_t old, t = (uint32_t)((now - ZR_AGE_CAP) & 0xffff)
			  << ZR_META_TIME_SHIFT;
	uint64_t idx, n = 0;
	struct zr_slot *slot;

	for (idx = 0; idx < st->npages; idx++) {
		slot = &st->table[idx];
		/* Without the lock, as zr_spill()'s; checked below. */
		old = zr_slot_meta(slot);
		if (!old || zr_age_at(now, old) <= ZR_AGE_CAP)
			continue;
		zr_slot_lock_read(slot);	/* as zr_touch_locked() */
		old = zr_slot_meta(slot);
		while (old && zr_age_at(now, old) > ZR_AGE_CAP) {
			if (atomic_compare_exchange_weak_explicit(
				    &slot->meta, &old,
				    (old & ~ZR_META_TIME_MASK) | t,
				    memory_order_relaxed,
				    memory_order_relaxed)) {
				n++;
				break;
			}
		}
		zr_slot_unlock_read(slot);
	}
	return n;
}

/*
 * zr_touch_locked - record an access: set the time, clear IDLE.  Needs
 * the slot's lock, shared is enough (compare-and-swap on meta).
 */
static void zr_touch_locked(struct zr_store *st, struct zr_slot *slot)
{
	uint32_t now = zr_now16(st);
	uint32_t old = zr_slot_meta(slot), new;

	do {
		new = (old & ~(ZR_META_TIME_MASK | ZR_META_IDLE)) | now;
		if (new == old)
			return;
	} while (!atomic_compare_exchange_weak_explicit(&slot->meta, &old,
							new,
							memory_order_relaxed,
							memory_order_relaxed));
	if (old & ZR_META_IDLE)
		zr_stat_sub(st, idle_pages, 1);
}

/* The stored form of a page, ready to swap into a slot. */
struct zr_entry {
	uint32_t meta;
	uint64_t handle;
};

static uint32_t zr_meta_len(uint32_t meta)
{
	return meta & ZR_META_SIZE_MASK;
}

/*
 * An object's bytes are in the pool or, once written back, in the backing
 * file: then meta has ZR_META_FILE (zr_slot_i.h) and the handle is the
 * file's loc.
 */
_Static_assert(ZR_WB_IDLE == ZR_META_IDLE && ZR_WB_HUGE == ZR_META_HUGE,
	       "zr_writeback()'s flags are the slot's");

/* Is this an object in the pool (not empty, same-filled or in the file)? */
static bool zr_meta_in_pool(uint32_t meta)
{
	return meta && !(meta & ZR_META_SAME);
}

/* Is this an object in the backing file? */
static bool zr_meta_in_file(uint32_t meta)
{
	return (meta & ZR_META_FILE) == ZR_META_FILE;
}

/* An object's zs handle or zb loc, without the store's bits. */
static uint64_t zr_h_obj(uint64_t handle)
{
	return handle & ZR_H_OBJ_MASK;
}

/* The priority of the algorithm that compressed an object. */
static unsigned zr_h_prio(uint64_t handle)
{
	return (unsigned)(handle >> ZR_H_PRIO_SHIFT);
}

/* Is an object in RAM compressed (not same-filled, raw or in the file)? */
static bool zr_meta_compressed(uint32_t meta)
{
	return zr_meta_in_pool(meta) && !(meta & ZR_META_HUGE);
}

/*
 * zr_wants - has the object in slot state @meta/@handle every flag of
 * @want (ZR_WB_IDLE, ZR_WB_HUGE: meta's; ZR_WB_INCOMPRESSIBLE: the
 * handle's)?  Needs the slot's lock, for the handle.
 */
static bool zr_wants(uint32_t meta, uint64_t handle, uint32_t want)
{
	if ((want & ZR_WB_INCOMPRESSIBLE) && !(handle & ZR_H_INCOMP))
		return false;
	want &= ~ZR_WB_INCOMPRESSIBLE;
	return (meta & want) == want;
}

/* Who writes a page back: what it is counted as, and how it goes. */
enum zr_wb_by {
	ZR_WB_BY_ASK,		/* zr_writeback() */
	ZR_WB_BY_AGE,		/* the age policy: bd_aged */
	ZR_WB_BY_SPILL,		/* a store's spill: bd_spills */
	ZR_WB_BY_AHEAD,		/* the maintainer's: bd_spills, bd_ahead */
};

static int zr_writeback_page(struct zr_store *st, struct zr_stream *s,
			     uint64_t idx, uint32_t want, enum zr_wb_by by,
			     uint32_t min_age);
static int zr_recompress_page(struct zr_store *st, struct zr_stream *s,
			      uint64_t idx, uint32_t want, size_t threshold,
			      unsigned prio, uint32_t min_age, bool *tried);

/*
 * Spilling.  With a backing file, a store that would pass mem_limit
 * writes cold pages back to the file first (zr_spill()) instead of
 * failing: a full device spills to the file, and ENOSPC comes only when
 * the file takes no more.  A spill looks at windows of ZR_SPILL_SCAN
 * slots from a hand that goes round the table (as a clock), and in each
 * writes back the pages in RAM at least half as old as the oldest it
 * saw, until ZR_SPILL_BATCH have gone or it has been once round.  A
 * spill that stops within a window leaves the hand where it stopped, so
 * that the next one carries on there: pages go to the file in the
 * table's order, the order in which swap reads them back (a hand moved
 * a whole window per spill left the file ZR_SPILL_BATCH pages of each
 * window in turn, and a reader in order a new segment every 64 pages).
 * On a store's path it takes each victim's lock by trylock only, since
 * the storing thread may hold its own page's lock (a partial write).
 *
 * Most spilling is done ahead, by the maintainer (zr_task_spill()): once
 * the pool passes the limit less 1/ZR_AHEAD_HIGH_DIV of it (225 MiB of
 * 240), a store kicks it, and it spills until the pool is down to the
 * limit less 1/ZR_AHEAD_LOW_DIV (210 MiB), compacting as it goes, so
 * that a store seldom finds the pool full and spills on its own path.
 * Off the store's path a spill may wait for a victim's lock, and stores
 * the page densest, as the age policy does (zr_wb_encode()): with a
 * secondary algorithm, the file takes that algorithm's bytes and no
 * write waits for them.  The store's own spill stays for bursts the
 * maintainer cannot follow.
 */
#define ZR_SPILL_IDLE 4
#define ZR_SPILL_ROUNDS 1024
#define ZR_AHEAD_RUN 1024	/* pages per run, then the other tasks */

/*
 * zr_spill - write back up to ZR_SPILL_BATCH cold pages (see above):
 * with @ahead, from the maintainer (waiting for each victim's lock, and
 * densest), else from a store (trylock, as they are).  Returns the pages
 * moved, or, when none moved, the -errno of the file (-ENOSPC: full) or
 * 0 (nothing to move).
 */
static int zr_spill(struct zr_store *st, struct zr_stream *s, bool ahead)
{
	uint32_t meta, age, oldest;
	uint64_t start, idx, i, w, now, hand, hand_to;
	int moved = 0, ret = 0;

	for (w = 0; w * ZR_SPILL_SCAN < st->npages && moved < ZR_SPILL_BATCH;
	     w++) {
		hand = atomic_fetch_add_explicit(&st->spill_hand,
						 ZR_SPILL_SCAN,
						 memory_order_relaxed);
		start = hand % st->npages;
		oldest = 0;
		now = zr_now(st);
		for (i = 0; i < ZR_SPILL_SCAN && i < st->npages; i++) {
			meta = zr_slot_meta(&st->table[(start + i) %
							st->npages]);
			age = zr_age_at(now, meta);
			if (zr_meta_in_pool(meta) && age > oldest)
				oldest = age;
		}
		for (i = 0; i < ZR_SPILL_SCAN && i < st->npages &&
		     moved < ZR_SPILL_BATCH; i++) {
			idx = (start + i) % st->npages;
			meta = zr_slot_meta(&st->table[idx]);
			age = zr_age_at(now, meta);
			if (!zr_meta_in_pool(meta) || age < oldest / 2)
				continue;
			ret = zr_writeback_page(st, s, idx, 0, ahead ?
						ZR_WB_BY_AHEAD :
						ZR_WB_BY_SPILL, 0);
			if (ret < 0)
				goto out;
			moved += ret;
		}
		/* Stopped within the window: the next spill goes on from
		 * here, unless another spill moved the hand meanwhile. */
		hand_to = hand + i;
		hand += ZR_SPILL_SCAN;
		if (i < ZR_SPILL_SCAN && i < st->npages)
			atomic_compare_exchange_strong_explicit(
				&st->spill_hand, &hand, hand_to,
				memory_order_relaxed, memory_order_relaxed);
	}
out:
	if (moved)
		zr_bd_kick(st);
	return moved ? moved : ret;
}

/*
 * zr_store_obj - zs_store(), and with a backing file, when the memory
 * limit refuses, spill (zr_spill()) and try again, compacting once the
 * spilled room alone does not do: returns as zs_store().
 */
static int zr_store_obj(struct zr_store *st, struct zr_stream *s,
			const void *src, size_t len, uint64_t *handle)
{
	int ret = zs_store(st->pool, src, len, handle), n, rounds, idle = 0;

	/*
	 * Other writers spill and store at the same time, and may take the
	 * room ours made, or hold the pages ours would take: try again until
	 * ZR_SPILL_IDLE spills in a row moved nothing (or the file refused),
	 * within ZR_SPILL_ROUNDS.
	 */
	for (rounds = 0; ret == -ENOSPC && st->bd && idle < ZR_SPILL_IDLE &&
	     rounds < ZR_SPILL_ROUNDS; rounds++) {
		n = zr_spill(st, s, false);
		if (n < 0)
			break;
		idle = n ? 0 : idle + 1;
		ret = zs_store(st->pool, src, len, handle);
		if (ret == -ENOSPC) {
			zs_compact(st->pool);
			ret = zs_store(st->pool, src, len, handle);
		}
	}
	return ret;
}

/*
 * zr_encode - compress @page and store it in the pool.
 * Returns 0 and fills @e, or -ENOSPC / -ENOMEM / -errno from the
 * compressor.  Takes no slot lock.
 */
static int zr_encode(struct zr_store *st, struct zr_stream *s,
		     const void *page, struct zr_entry *e)
{
	uint64_t word;
	const void *src;
	int len, ret;

	if (zr_same_filled(page, &word)) {
		e->meta = ZR_META_SAME;
		e->handle = word;
		return 0;
	}
	len = zcomp_compress(s->ctx[0], page, ZR_PAGE_SIZE, s->cbuf,
			     ZR_HUGE_THRESHOLD + 1);
	if (len < 0)
		return len;
	if (len == 0) {
		src = page;
		len = ZR_PAGE_SIZE;
		e->meta = ZR_PAGE_SIZE | ZR_META_HUGE;
	} else {
		src = s->cbuf;
		e->meta = (uint32_t)len;
	}
	ret = zr_store_obj(st, s, src, (size_t)len, &e->handle);
	zr_refill_kick(st);
	if (ret)
		return ret;
	zr_update_max(st);
	if (st->bd)
		zr_spill_kick(st);
	return 0;
}

/* zr_release - free what an entry held, after it left its slot. */
static void zr_release(struct zr_store *st, const struct zr_entry *e)
{
	if (zr_meta_in_file(e->meta)) {
		zb_free(st->bd, zr_h_obj(e->handle));
		zr_bd_kick(st);
		return;
	}
	if (!zr_meta_in_pool(e->meta))
		return;
	zs_free(st->pool, zr_h_obj(e->handle), zr_meta_len(e->meta));
	/* A freed span may have cached pages that the thread ages. */
	zr_refill_kick(st);
}

/*
 * Account for @old leaving a slot and @new entering it.  A page in the
 * backing file counts in bd_count and bd_bytes only: mm_stat's figures
 * are of RAM, as zram's.  The file's figures change by their net, so a
 * page moved within the file (compaction) never shows them a page short
 * to a reader meanwhile.
 */
static void zr_account(struct zr_store *st, const struct zr_entry *old,
		       const struct zr_entry *new)
{
	bool old_file = zr_meta_in_file(old->meta);
	bool new_file = zr_meta_in_file(new->meta);
	uint64_t old_bytes = old_file ? zr_meta_len(old->meta) : 0;
	uint64_t new_bytes = new_file ? zr_meta_len(new->meta) : 0;

	if (old->meta & ZR_META_IDLE)
		zr_stat_sub(st, idle_pages, 1);
	if (new->meta & ZR_META_IDLE)
		zr_stat_add(st, idle_pages, 1);
	if (zr_meta_compressed(old->meta))
		zr_stat_sub(st, algo_pages[zr_h_prio(old->handle)], 1);
	if (zr_meta_compressed(new->meta))
		zr_stat_add(st, algo_pages[zr_h_prio(new->handle)], 1);
	if (zr_meta_in_pool(old->meta) && (old->handle & ZR_H_INCOMP))
		zr_stat_sub(st, incompressible, 1);
	if (zr_meta_in_pool(new->meta) && (new->handle & ZR_H_INCOMP))
		zr_stat_add(st, incompressible, 1);
	if (old_file != new_file) {
		if (new_file)
			zr_stat_add(st, bd_count, 1);
		else
			zr_stat_sub(st, bd_count, 1);
	}
	if (new_bytes > old_bytes)
		zr_stat_add(st, bd_bytes, new_bytes - old_bytes);
	else if (old_bytes > new_bytes)
		zr_stat_sub(st, bd_bytes, old_bytes - new_bytes);
	if (!old_file && old->meta) {
		zr_stat_sub(st, pages_stored, 1);
		if (old->meta & ZR_META_SAME)
			zr_stat_sub(st, same_pages, 1);
		else
			zr_stat_sub(st, compr_data_size, zr_meta_len(old->meta));
		if (old->meta & ZR_META_HUGE)
			zr_stat_sub(st, huge_pages, 1);
	}
	if (!new_file && new->meta) {
		zr_stat_add(st, pages_stored, 1);
		if (new->meta & ZR_META_SAME)
			zr_stat_add(st, same_pages, 1);
		else
			zr_stat_add(st, compr_data_size, zr_meta_len(new->meta));
		if (new->meta & ZR_META_HUGE) {
			zr_stat_add(st, huge_pages, 1);
			zr_stat_add(st, huge_pages_since, 1);
		}
	}
}

/*
 * zr_put_locked - put @new in slot @s as it is (its access time
 * included), return what was there in @old.  Needs the slot's write
 * lock.
 */
static void zr_put_locked(struct zr_store *st, struct zr_slot *s,
			  const struct zr_entry *new, struct zr_entry *old)
{
	old->meta = zr_slot_meta(s);
	old->handle = s->handle;
	zr_slot_set_meta(s, new->meta);
	s->handle = new->handle;
	zr_account(st, old, new);
}

/* zr_swap_locked - zr_put_locked(), the page accessed now. */
static void zr_swap_locked(struct zr_store *st, struct zr_slot *s,
			   const struct zr_entry *new, struct zr_entry *old)
{
	struct zr_entry e = *new;

	if (e.meta)
		e.meta |= zr_now16(st);
	zr_put_locked(st, s, &e, old);
}

struct zr_decomp {
	struct zcomp_ctx *ctx;
	void *dst;
};

static int zr_decomp_cb(const void *obj, size_t len, void *arg)
{
	struct zr_decomp *d = arg;

	return zcomp_decompress(d->ctx, obj, len, d->dst, ZR_PAGE_SIZE);
}

/*
 * zr_file_ahead - what a read of page @idx from the file should bring in
 * beyond it: the compressed bytes of the pages after it, up to @last
 * (the request's last page), that are in the file too (pages in RAM,
 * same-filled or empty in between take no room there).  Written back
 * together, they most likely lie right after it (zb_read() checks; this
 * is only a guess, from meta alone, which needs no lock).
 */
static size_t zr_file_ahead(const struct zr_store *st, uint64_t idx,
			    uint64_t last)
{
	size_t ahead = 0;
	uint32_t meta;

	while (++idx <= last && ahead < ZB_WIN_SIZE) {
		meta = zr_slot_meta(&st->table[idx]);
		if (zr_meta_in_file(meta))
			ahead += zr_meta_len(meta);
	}
	return ahead;
}

/*
 * zr_decode_file - the page whose object is at @handle in the backing
 * file into @dst, reading ahead @ahead bytes (zb_read()).
 * The page stays in the file (as zram's): a read brings nothing back to
 * RAM.  Returns 0 or -EIO (the read failed, or the object does not
 * decompress).
 */
static int zr_decode_file(struct zr_store *st, struct zr_stream *s,
			  uint32_t meta, uint64_t handle, void *dst,
			  size_t ahead)
{
	struct zcomp_ctx *ctx = s->ctx[zr_h_prio(handle)];
	size_t len = zr_meta_len(meta);
	int ret;

	if (len == ZR_PAGE_SIZE)		/* stored raw */
		ret = zb_read(st->bd, zr_h_obj(handle), dst, len, ahead);
	else
		ret = zb_read(st->bd, zr_h_obj(handle), s->bdbuf, len, ahead);
	if (ret)
		return -EIO;
	zr_stat_add(st, bd_reads, 1);
	if (len == ZR_PAGE_SIZE)
		return 0;
	if (!ctx)			/* a priority the store has not */
		return -EIO;
	return zcomp_decompress(ctx, s->bdbuf, len, dst, ZR_PAGE_SIZE);
}

/*
 * zr_decode_locked - the page in slot @s into @dst (ZR_PAGE_SIZE bytes).
 * Needs the slot's lock, shared or exclusive.  @last: the last page of
 * the request, for a page in the file to read its neighbours ahead with
 * it (the slot's own index: none).  Returns 0 or -EIO.
 */
static int zr_decode_locked(struct zr_store *st, struct zr_stream *s,
			    const struct zr_slot *slot, void *dst,
			    uint64_t last)
{
	uint32_t meta = zr_slot_meta(slot);
	struct zr_decomp d = { s->ctx[zr_h_prio(slot->handle)], dst };

	if (!meta) {
		memset(dst, 0, ZR_PAGE_SIZE);
		return 0;
	}
	if (zr_meta_in_file(meta))
		return zr_decode_file(st, s, meta, slot->handle, dst,
				      zr_file_ahead(st, (uint64_t)(slot -
							st->table), last));
	if (meta & ZR_META_SAME) {
		zr_fill_word(dst, slot->handle);
		return 0;
	}
	if (meta & ZR_META_HUGE)
		return zs_load(st->pool, zr_h_obj(slot->handle), dst,
			       ZR_PAGE_SIZE);
	if (!d.ctx)			/* a priority the store has not */
		return -EIO;
	return zs_read(st->pool, zr_h_obj(slot->handle), zr_meta_len(meta),
		       zr_decomp_cb, &d);
}

/* ------------------------------------------------------------------ */
/* Page operations                                                     */

/* zr_write_full - store a whole page.  Returns 0 or -errno. */
static int zr_write_full(struct zr_store *st, struct zr_stream *s,
			 uint64_t idx, const void *src)
{
	struct zr_slot *slot = &st->table[idx];
	struct zr_entry new, old;
	int ret;

	ret = zr_encode(st, s, src, &new);
	if (ret)
		return ret;
	zr_slot_lock_write(slot);
	zr_swap_locked(st, slot, &new, &old);
	zr_slot_unlock_write(slot);
	zr_release(st, &old);
	return 0;
}

/*
 * zr_write_partial - read-modify-write @len bytes at @pg_off of page @idx
 * (@src NULL writes zeros).  Holds the slot's write lock throughout, so
 * concurrent partial writes to one page never lose each other's bytes.
 */
static int zr_write_partial(struct zr_store *st, struct zr_stream *s,
			    uint64_t idx, const void *src, size_t pg_off,
			    size_t len)
{
	struct zr_slot *slot = &st->table[idx];
	struct zr_entry new, old;
	int ret;

	/*
	 * Zeroing part of an empty page: nothing to do, and found without
	 * writing the slot ("Empty slots" above); checked again under the
	 * lock, since the page may have been emptied meanwhile.
	 */
	if (!src && zr_slot_empty(slot))
		return 0;
	zr_slot_lock_write(slot);
	if (!src && !zr_slot_meta(slot)) {
		ret = 0;
		goto out_unlock;
	}
	ret = zr_decode_locked(st, s, slot, s->page, idx);
	if (ret)
		goto out_unlock;
	if (src)
		memcpy(s->page + pg_off, src, len);
	else
		memset(s->page + pg_off, 0, len);
	ret = zr_encode(st, s, s->page, &new);
	if (ret)
		goto out_unlock;
	zr_swap_locked(st, slot, &new, &old);
	zr_slot_unlock_write(slot);
	zr_release(st, &old);
	return 0;

out_unlock:
	zr_slot_unlock_write(slot);
	return ret;
}

/*
 * zr_read_page - @len bytes at @pg_off of page @idx into @dst; @last is
 * the request's last page (zr_decode_locked()).  Returns 0 or -EIO.
 */
static int zr_read_page(struct zr_store *st, struct zr_stream *s,
			uint64_t idx, void *dst, size_t pg_off, size_t len,
			uint64_t last)
{
	struct zr_slot *slot = &st->table[idx];
	bool whole = pg_off == 0 && len == ZR_PAGE_SIZE;
	int ret;

	/*
	 * A hole reads as zeros without its slot being written ("Empty
	 * slots" above): the read takes effect at this load, before any
	 * write racing it.  The load is of the line the lock would take.
	 */
	if (zr_slot_empty(slot)) {
		memset(dst, 0, len);
		return 0;
	}
	zr_slot_lock_read(slot);
	if (!zr_slot_meta(slot)) {	/* emptied since the load above */
		memset(dst, 0, len);
		ret = 0;
	} else {
		ret = zr_decode_locked(st, s, slot, whole ? dst : s->page,
				       last);
		if (!ret && !whole)
			memcpy(dst, s->page + pg_off, len);
		zr_touch_locked(st, slot);
	}
	zr_slot_unlock_read(slot);
	return ret;
}

/*
 * zr_free_page - empty page @idx.  Returns true if it held something.
 * An empty slot is left unwritten ("Empty slots" above): the discard of
 * that page takes effect at the load, before any write racing it.
 */
static bool zr_free_page(struct zr_store *st, uint64_t idx)
{
	struct zr_slot *slot = &st->table[idx];
	struct zr_entry empty = { 0, 0 }, old;

	if (zr_slot_empty(slot))
		return false;
	zr_slot_lock_write(slot);
	zr_swap_locked(st, slot, &empty, &old);
	zr_slot_unlock_write(slot);
	zr_release(st, &old);
	return old.meta != 0;
}

/* ------------------------------------------------------------------ */
/* The maintainer: one background thread, a table of tasks             */

/*
 * struct zr_task - one of the maintainer's tasks.  @run does the work if
 * there is any (each checks cheaply first) and returns the milliseconds
 * after which it wants to run again, or 0 to wait for a kick.  Tasks run
 * in table order at every wake-up, whatever woke the thread, so each must
 * be harmless to run early.
 */
struct zr_task {
	const char *name;
	unsigned (*run)(struct zr_store *st);
};

/* Keep the allocator's cache at its target (the page faults are ours). */
static unsigned zr_task_refill(struct zr_store *st)
{
	if (zs_cache_wanted(st->pool))
		zs_cache_refill(st->pool);
	return 0;
}

/* Give back what the cache kept and nothing reused; again when due. */
static unsigned zr_task_age(struct zr_store *st)
{
	return zs_cache_age(st->pool);
}

/* Compact when the pool wastes enough; look again every period. */
static unsigned zr_task_compact(struct zr_store *st)
{
	if (zs_fragmented(st->pool))
		zs_compact(st->pool);
	return ZR_COMPACT_PERIOD_MS;
}

/* Write the backing file's closed segments; keep its free segments
 * ready, punch those past it that went unused for a period
 * (zb_refill()); look again when due. */
static unsigned zr_task_backing(struct zr_store *st)
{
	uint32_t now;
	unsigned after;

	if (!st->bd)
		return 0;
	now = zb_now_ms();
	if (zb_refill_wanted(st->bd, now, &after)) {
		zb_write_queued(st->bd);	/* failures: counted */
		zb_refill(st->bd, now);
		zb_refill_wanted(st->bd, now, &after);
	}
	return after;
}

/*
 * The age policy (zr_config.writeback_age).  The maintainer sweeps the
 * table, in runs of at most ZR_WB_RUN_SLOTS slots and ZR_WB_RUN_PAGES
 * pages written back, ZR_WB_RUN_GAP_MS apart while a sweep lasts, so
 * that it takes a bounded share of a CPU and of the file's bandwidth
 * (about 8 MiB of pages, a few ms of copying, per 20 ms) and foreground
 * I/O keeps its speed.  Each sweep takes the huge pages first (they
 * free a whole page each and need no decompression to read back), then
 * the rest; pages not read or written for the age go, within
 * writeback_limit when it is on.  Between sweeps it sleeps a quarter of
 * the age (1 s to ZR_WB_SLEEP_MAX_MS), so a page goes at most about
 * 1.25 ages after its last access.
 */
#define ZR_WB_RUN_SLOTS (1u << 16)
#define ZR_WB_RUN_PAGES 2048
#define ZR_WB_RUN_GAP_MS 20
#define ZR_WB_SLEEP_MAX_MS 60000

/* One run of a sweep; returns true when the sweep is over. */
static bool zr_wb_run(struct zr_store *st, struct zr_stream *s,
		      uint32_t age)
{
	uint32_t want = st->wb_huge_done ? 0 : ZR_WB_HUGE, meta, a;
	uint64_t budget, done = 0, end, idx, now = zr_now(st);
	bool counted;
	int ret = 0;

	budget = zr_wb_limit_take(st->wb_limit, ZR_WB_RUN_PAGES, &counted);
	end = st->wb_hand + ZR_WB_RUN_SLOTS;
	if (end > st->npages)
		end = st->npages;
	for (idx = st->wb_hand; idx < end && done < budget && ret >= 0;
	     idx++) {
		meta = zr_slot_meta(&st->table[idx]);
		if (!zr_meta_in_pool(meta))
			continue;
		a = zr_age_at(now, meta);
		if (a < age) {
			if (st->wb_huge_done && a > st->wb_sweep_oldest)
				st->wb_sweep_oldest = a;
			continue;
		}
		if ((meta & want) != want)
			continue;
		ret = zr_writeback_page(st, s, idx, want, ZR_WB_BY_AGE, age);
		if (ret > 0)
			done++;
	}
	zr_wb_limit_give(st->wb_limit, budget - done, counted);
	st->wb_hand = idx;
	if (done)
		zr_compact_kick(st);
	/* The file full or failing, or the limit used up: sweep later. */
	if (ret < 0 || (done == budget && budget < ZR_WB_RUN_PAGES))
		idx = st->npages;
	if (idx < st->npages)
		return false;
	st->wb_hand = 0;
	if (!st->wb_huge_done) {
		st->wb_huge_done = true;
		st->wb_sweep_oldest = 0;
		return false;
	}
	st->wb_huge_done = false;
	atomic_store_explicit(&st->wb_oldest, st->wb_sweep_oldest,
			      memory_order_relaxed);
	return true;
}

/* Write back what has not been used for the age: see zr_wb_run(). */
static unsigned zr_task_writeback(struct zr_store *st)
{
	uint32_t age = atomic_load_explicit(&st->wb_age, memory_order_relaxed);
	struct zr_stream *s;
	uint64_t ms;

	if (!st->bd || !age)
		return 0;
	s = zr_stream_get(st);
	if (s && !zr_stream_recomp(st, s) && !zr_wb_run(st, s, age))
		return ZR_WB_RUN_GAP_MS;
	ms = (uint64_t)age * 1000 / 4;
	return ms < 1000 ? 1000 : ms > ZR_WB_SLEEP_MAX_MS ?
		ZR_WB_SLEEP_MAX_MS : (unsigned)ms;
}

/*
 * Spill ahead of the stores (see zr_spill()): from above the high mark
 * down to the low one, ZR_AHEAD_RUN pages a run; then again at once if
 * the pool is still above the low mark, else when a store kicks.  When
 * the file takes no more (or nothing moves), it waits ZR_AHEAD_RETRY_MS
 * before trying again, however often stores kick: the stores' own
 * spills find out and fail meanwhile.
 */
#define ZR_AHEAD_RETRY_MS 1000
static unsigned zr_task_spill(struct zr_store *st)
{
	uint64_t limit = zs_get_limit(st->pool), low, used;
	struct zr_stream *s;
	unsigned moved = 0;
	int n = 0;

	if (!st->bd || !limit)
		return 0;
	if (st->spill_wait && (int32_t)(zb_now_ms() - st->spill_retry) < 0)
		return 0;
	st->spill_wait = false;
	low = limit - limit / ZR_AHEAD_LOW_DIV;
	used = zs_total_bytes(st->pool);
	if (used <= low ||
	    (!st->spill_ahead && used <= limit - limit / ZR_AHEAD_HIGH_DIV)) {
		st->spill_ahead = false;
		return 0;
	}
	st->spill_ahead = true;
	s = zr_stream_get(st);
	if (!s || zr_stream_recomp(st, s))
		return ZR_WB_RUN_GAP_MS;	/* no memory: the stores spill */
	while (moved < ZR_AHEAD_RUN && used > low) {
		n = zr_spill(st, s, true);
		if (n <= 0)
			break;
		moved += (unsigned)n;
		used = zs_total_bytes(st->pool);
	}
	/* What moved left holes in the spans: close them to count. */
	if (moved && used > low) {
		zs_compact(st->pool);
		used = zs_total_bytes(st->pool);
	}
	if (n <= 0) {
		st->spill_wait = true;
		st->spill_retry = zb_now_ms() + ZR_AHEAD_RETRY_MS;
	}
	if (used <= low || n <= 0) {
		st->spill_ahead = false;
		return 0;
	}
	return 1;
}

/*
 * Compaction of the backing file.  zb_file reuses a segment only once
 * all its objects are freed; under random churn most segments keep a
 * few, and the file grows to several times its live bytes.  Every
 * ZR_BC_PERIOD_MS the maintainer asks zb_compact_pick() whether
 * that is worth undoing and, if so, for the ZR_BC_SEGS sparsest
 * segments; then it sweeps the table in runs as the age policy does
 * (ZR_WB_RUN_SLOTS slots, ZR_WB_RUN_PAGES pages moved, ZR_WB_RUN_GAP_MS
 * apart) and moves each page whose object lies in one of them
 * (zr_bc_page()), within writeback_limit when it is on: these are
 * writes to the device too.  A page moved keeps its age and marks; it is
 * counted in bd_stat's bd_writes no more than once (when it left RAM).
 */

/* Was segment @seg picked?  bc_segs[] is sorted. */
static bool zr_bc_picked(const struct zr_store *st, uint32_t seg)
{
	unsigned lo = 0, hi = st->bc_n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (st->bc_segs[mid] == seg)
			return true;
		if (st->bc_segs[mid] < seg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * zr_bc_page - move slot @idx's object to a new place in the file if it
 * lies in a picked segment.  Returns 1 if it moved, 0 if not, or the
 * -errno of zb_relocate() (the page stays where it was).  Holds the
 * slot's write lock across the move (a read of the file, at most, and
 * a copy into the open segment), so the page cannot change under it;
 * copies through @s->bdbuf.  Needs bc_lock.
 */
static int zr_bc_page(struct zr_store *st, struct zr_stream *s, uint64_t idx)
{
	struct zr_slot *slot = &st->table[idx];
	struct zr_entry new, old;
	uint64_t loc, nloc;
	uint32_t meta;
	int ret;

	/* A snapshot without the lock, as zr_spill()'s; checked below. */
	if (!zr_meta_in_file(zr_slot_meta(slot)))
		return 0;
	zr_slot_lock_write(slot);
	meta = zr_slot_meta(slot);
	loc = zr_h_obj(slot->handle);
	if (!zr_meta_in_file(meta) || !zr_bc_picked(st, zb_loc_seg(loc))) {
		zr_slot_unlock_write(slot);
		return 0;
	}
	ret = zb_relocate(st->bd, loc, zr_meta_len(meta), s->bdbuf, &nloc);
	if (ret <= 0) {
		zr_slot_unlock_write(slot);
		return ret;
	}
	new.meta = meta;			/* its age and marks kept */
	new.handle = nloc | (slot->handle & ~ZR_H_OBJ_MASK);
	zr_put_locked(st, slot, &new, &old);
	zr_slot_unlock_write(slot);
	zb_free(st->bd, loc);
	return 1;
}

/*
 * One run of a compaction sweep, from bc_hand: at most @slots slots and
 * @max pages moved.  Returns the pages moved, or -errno if the file
 * stopped it (full, failing); *@over is set when the sweep reached the
 * table's end (the picks are then dropped: bc_n = 0).  Needs bc_lock.
 */
static int64_t zr_bc_run(struct zr_store *st, struct zr_stream *s,
			 uint64_t slots, uint64_t max, bool *over)
{
	uint64_t idx, end, done = 0;
	int ret = 0;

	end = st->bc_hand + slots;
	if (end > st->npages || end < st->bc_hand)
		end = st->npages;
	for (idx = st->bc_hand; idx < end && done < max; idx++) {
		ret = zr_bc_page(st, s, idx);
		if (ret < 0)
			break;
		done += (uint64_t)ret;
	}
	st->bc_hand = idx;
	*over = idx >= st->npages || ret < 0;
	if (*over)
		st->bc_n = 0;
	if (done)
		zr_bd_kick(st);
	return ret < 0 && !done ? ret : (int64_t)done;
}

/* Keep ages from wrapping: see zr_age_clamp(). */
static unsigned zr_task_ages(struct zr_store *st)
{
	uint64_t now = zr_now(st);

	if (!st->age_next)
		st->age_next = ZR_AGE_CAP;
	if (now < st->age_next)
		return (unsigned)((st->age_next - now) * 1000);
	zr_age_clamp(st, now);
	st->age_next = now + ZR_AGE_SWEEP_S;
	return ZR_AGE_SWEEP_S * 1000;
}

/* The maintainer's compaction of the file: see above. */
static unsigned zr_task_bdcompact(struct zr_store *st)
{
	struct zr_stream *s;
	uint64_t budget;
	bool counted;
	uint32_t now;
	int64_t done;
	bool over = true;
	unsigned ms;

	if (!st->bd)
		return 0;
	if (pthread_mutex_trylock(&st->bc_lock))
		return ZR_WB_RUN_GAP_MS;	/* zr_compact_file() runs */
	now = zb_now_ms();
	if ((int32_t)(st->bc_next - now) > 0) {
		ms = st->bc_next - now;
		pthread_mutex_unlock(&st->bc_lock);
		return ms;
	}
	if (!st->bc_n) {
		st->bc_n = zb_compact_pick(st->bd, st->bc_segs, ZR_BC_SEGS,
					   false);
		st->bc_hand = 0;
	}
	s = st->bc_n ? zr_stream_get(st) : NULL;
	if (s) {
		budget = zr_wb_limit_take(st->wb_limit, ZR_WB_RUN_PAGES,
					  &counted);
		done = budget ? zr_bc_run(st, s, ZR_WB_RUN_SLOTS, budget,
					  &over) : 0;
		zr_wb_limit_give(st->wb_limit,
				 budget - (done > 0 ? (uint64_t)done : 0),
				 counted);
		if (!budget)		/* the limit used up: later */
			st->bc_n = 0;
	}
	ms = over ? ZR_BC_PERIOD_MS : ZR_WB_RUN_GAP_MS;
	st->bc_next = now + ms;
	pthread_mutex_unlock(&st->bc_lock);
	return ms;
}

/*
 * The recompression policy (zr_config.recompress_age): the maintainer
 * sweeps the table and recompresses the pages in RAM not read or
 * written for the age, with the first secondary algorithm, or, where
 * that does not shrink a page, the next (zr_recompress()'s priority 0):
 * so a page none shrinks is marked incompressible and not tried at
 * every sweep again.  Its CPU budget: a run works ZR_RC_RUN_MS at most,
 * of the thread's CPU time (so the budget holds whether or not the CPUs
 * are busy), then the thread sleeps ZR_RC_RUN_GAP_MS while the sweep
 * lasts: the policy takes at most a third of one CPU, and foreground I/O
 * keeps its speed (zstd at its default level recompresses some 10,000
 * pages a second in that share here).  Every ZR_RC_COMPACT_PAGES pages
 * recompressed, and at the end of a sweep that recompressed any, a
 * compaction gives back what the old objects held.  Between sweeps it
 * sleeps as the writeback policy does.
 */
#define ZR_RC_RUN_MS 5
#define ZR_RC_RUN_GAP_MS 10
#define ZR_RC_COMPACT_PAGES 16384	/* 64 MiB of pages */
/* The clock is read once this much work is done: a slot passed counts
 * 1, a page tried ZR_RC_PAGE_WORK (some 20 us of it, not 20 ns). */
#define ZR_RC_CLOCK_WORK 1024
#define ZR_RC_PAGE_WORK 64

/* zr_thread_ms - the calling thread's CPU time, in milliseconds. */
static uint64_t zr_thread_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* One run of a sweep; returns true when the sweep is over. */
static bool zr_rc_run(struct zr_store *st, struct zr_stream *s,
		      uint32_t age)
{
	uint64_t idx, done = 0, start = zr_thread_ms(), now = zr_now(st);
	uint32_t meta, work = 0;
	bool tried;

	for (idx = st->rc_hand; idx < st->npages; idx++) {
		if (work >= ZR_RC_CLOCK_WORK) {
			if (zr_thread_ms() - start >= ZR_RC_RUN_MS)
				break;
			work = 0;
		}
		work++;
		meta = zr_slot_meta(&st->table[idx]);
		if (!zr_meta_in_pool(meta) || zr_age_at(now, meta) < age)
			continue;
		tried = false;
		if (zr_recompress_page(st, s, idx, 0, 0, 0, age, &tried) > 0)
			done++;
		if (tried)
			work += ZR_RC_PAGE_WORK;
	}
	st->rc_hand = idx;
	zr_stat_add(st, recomp_aged, done);
	st->rc_sweep_done += done;
	/* The old objects left holes all over the classes: close them. */
	if (st->rc_sweep_done >= ZR_RC_COMPACT_PAGES ||
	    (idx == st->npages && st->rc_sweep_done)) {
		zs_compact(st->pool);
		st->rc_sweep_done = 0;
	}
	if (idx < st->npages)
		return false;
	st->rc_hand = 0;
	return true;
}

/* Recompress what has not been used for the age: see zr_rc_run(). */
static unsigned zr_task_recompress(struct zr_store *st)
{
	uint32_t age = atomic_load_explicit(&st->rc_age, memory_order_relaxed);
	struct zr_stream *s;
	uint64_t ms;

	if (!st->rc_first || !age)
		return 0;
	s = zr_stream_get(st);
	if (s && !zr_stream_recomp(st, s) && !zr_rc_run(st, s, age))
		return ZR_RC_RUN_GAP_MS;
	ms = (uint64_t)age * 1000 / 4;
	return ms < 1000 ? 1000 : ms > ZR_WB_SLEEP_MAX_MS ?
		ZR_WB_SLEEP_MAX_MS : (unsigned)ms;
}

static const struct zr_task zr_tasks[] = {
	{ "backing file", zr_task_backing },	/* first: writes wait on it */
	{ "spill ahead", zr_task_spill },	/* then: stores wait on it */
	{ "cache refill", zr_task_refill },
	{ "cache aging", zr_task_age },
	{ "compaction", zr_task_compact },
	{ "recompression by age", zr_task_recompress },
	{ "writeback by age", zr_task_writeback },
	{ "file compaction", zr_task_bdcompact },
	{ "ages", zr_task_ages },
};

/* @t plus @ms milliseconds. */
static struct timespec zr_ts_add_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool zr_ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * zr_maintainer - the background thread: runs every task of zr_tasks at
 * each wake-up, then sleeps until the soonest time a task asked for or
 * until zr_maint_kick().
 */
static void *zr_maintainer(void *arg)
{
	struct zr_store *st = arg;
	struct timespec now, until;
	unsigned i, ms, soonest;

	pthread_setname_np(pthread_self(), "zr-maintainer");
	/* See ZR_MAINT_NICE; without the privilege it stays at 0. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), ZR_MAINT_NICE);
	for (;;) {
		/* Cleared first: a kick while the tasks run is not lost. */
		atomic_store_explicit(&st->maint_kicked, false,
				      memory_order_relaxed);
		soonest = 0;
		for (i = 0; i < sizeof(zr_tasks) / sizeof(zr_tasks[0]); i++) {
			ms = zr_tasks[i].run(st);
			if (ms && (!soonest || ms < soonest))
				soonest = ms;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		until = zr_ts_add_ms(now, soonest ? soonest :
				     ZR_COMPACT_PERIOD_MS);
		pthread_mutex_lock(&st->maint_lock);
		while (!st->maint_stop &&
		       !atomic_load_explicit(&st->maint_kicked,
					     memory_order_relaxed) &&
		       zr_ts_before(&now, &until)) {
			pthread_cond_timedwait(&st->maint_cond, &st->maint_lock,
					       &until);
			clock_gettime(CLOCK_MONOTONIC, &now);
		}
		if (st->maint_stop) {
			pthread_mutex_unlock(&st->maint_lock);
			return NULL;
		}
		pthread_mutex_unlock(&st->maint_lock);
	}
}

/*
 * zr_maint_kick - wake the maintainer, at most once until it has looked:
 * one atomic load while a kick is pending.  maint_lock must not be held.
 */
static void zr_maint_kick(struct zr_store *st)
{
	if (atomic_load_explicit(&st->maint_kicked, memory_order_relaxed) ||
	    atomic_exchange_explicit(&st->maint_kicked, true,
				     memory_order_relaxed))
		return;
	pthread_mutex_lock(&st->maint_lock);
	pthread_cond_signal(&st->maint_cond);
	pthread_mutex_unlock(&st->maint_lock);
}

/*
 * zr_bd_kick - wake the maintainer if the backing file's reserve wants a
 * refill or a punch (zb_refill_wanted(), which takes the file's mutex:
 * called only where the file was used, never per RAM store).
 */
static void zr_bd_kick(struct zr_store *st)
{
	unsigned after;

	if (zb_refill_wanted(st->bd, zb_now_ms(), &after))
		zr_maint_kick(st);
}

/* After a store, with a backing file: the pool is near its limit. */
static void zr_spill_kick(struct zr_store *st)
{
	uint64_t limit = zs_get_limit(st->pool);

	if (limit && zs_total_bytes(st->pool) > limit - limit /
	    ZR_AHEAD_HIGH_DIV)
		zr_maint_kick(st);
}

/* After a store or a free: the allocator's cache wants the maintainer. */
static void zr_refill_kick(struct zr_store *st)
{
	if (zs_cache_wanted(st->pool))
		zr_maint_kick(st);
}

/* After a discard: the pool has become worth compacting. */
static void zr_compact_kick(struct zr_store *st)
{
	if (zs_fragmented(st->pool))
		zr_maint_kick(st);
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

int zr_store_create(const struct zr_config *cfg, struct zr_store **out)
{
	struct zr_store *st;
	struct zcomp_ctx *probe;
	pthread_condattr_t ca;
	unsigned p;
	int ret;

	if (!cfg->disksize || cfg->disksize % ZR_PAGE_SIZE ||
	    cfg->disksize / ZR_PAGE_SIZE > UINT32_MAX)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (p = 0; p <= ZR_RECOMP_MAX; p++) {
		const struct zr_algo a = p ? cfg->recomp[p - 1] :
			(struct zr_algo){ cfg->algorithm ? cfg->algorithm :
					  "lz4", cfg->level };

		if (p && !a.name)
			continue;
		st->backend[p] = zcomp_find(a.name);
		if (!st->backend[p]) {
			ret = -EINVAL;
			goto out_free;
		}
		st->level[p] = a.level == ZCOMP_LEVEL_DEFAULT ?
			       st->backend[p]->level_default : a.level;
		ret = zcomp_ctx_create(st->backend[p], st->level[p], &probe);
		if (ret)
			goto out_free;
		zcomp_ctx_destroy(probe);
		if (p && !st->rc_first)
			st->rc_first = p;
		if (p)
			st->rc_last = p;
	}

	clock_gettime(CLOCK_MONOTONIC_COARSE, &st->epoch);
	st->disksize = cfg->disksize;
	st->bd = cfg->backing;
	st->wb_limit = cfg->wb_limit;
	atomic_init(&st->wb_age, cfg->writeback_age > ZR_WB_AGE_MAX ?
		    ZR_WB_AGE_MAX : cfg->writeback_age);
	atomic_init(&st->rc_age, cfg->recompress_age > ZR_WB_AGE_MAX ?
		    ZR_WB_AGE_MAX : cfg->recompress_age);
	st->npages = cfg->disksize / ZR_PAGE_SIZE;
	st->table_bytes = st->npages * sizeof(struct zr_slot);
	st->table = mmap(NULL, st->table_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st->table == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_free;
	}
	st->pool = zs_pool_create(cfg->disksize);
	if (!st->pool) {
		ret = -ENOMEM;
		goto out_unmap;
	}
	zs_set_limit(st->pool, cfg->mem_limit);
	/* Touched before the first request, on this thread. */
	zs_set_cache(st->pool, cfg->reserve);
	zs_cache_refill(st->pool);
	atomic_init(&st->maint_kicked, false);
	atomic_init(&st->big_inflight, 0);

	ret = -pthread_key_create(&st->stream_key, zr_stream_release);
	if (ret)
		goto out_pool;
	pthread_mutex_init(&st->streams_lock, NULL);
	pthread_mutex_init(&st->maint_lock, NULL);
	pthread_mutex_init(&st->bc_lock, NULL);
	st->bc_next = zb_now_ms();
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->maint_cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = -pthread_create(&st->maintainer, NULL, zr_maintainer, st);
	if (ret)
		goto out_key;
	pthread_mutex_init(&st->work_lock, NULL);
	pthread_cond_init(&st->work_cond, NULL);
	if (cfg->workers) {
		st->workers = calloc(cfg->workers, sizeof(*st->workers));
		if (!st->workers) {
			zr_store_destroy(st);
			return -ENOMEM;
		}
		for (; st->nworkers < cfg->workers; st->nworkers++) {
			ret = -pthread_create(&st->workers[st->nworkers], NULL,
					      zr_worker, st);
			if (ret) {
				zr_store_destroy(st);
				return ret;
			}
		}
	}
	*out = st;
	return 0;

out_key:
	pthread_cond_destroy(&st->maint_cond);
	pthread_mutex_destroy(&st->bc_lock);
	pthread_mutex_destroy(&st->maint_lock);
	pthread_mutex_destroy(&st->streams_lock);
	pthread_key_delete(st->stream_key);
out_pool:
	zs_pool_destroy(st->pool);
out_unmap:
	munmap(st->table, st->table_bytes);
out_free:
	free(st);
	return ret;
}

/*
 * zr_free_file_objects - give the backing file back the objects of every
 * page written back, which a store being destroyed leaves there (the
 * file outlives the store: a reset keeps it).  Walks the page table only
 * while some page is in the file.
 */
static void zr_free_file_objects(struct zr_store *st)
{
	uint64_t idx;

	for (idx = 0; idx < st->npages && zr_stat_get(st, bd_count); idx++) {
		struct zr_slot *slot = &st->table[idx];
		struct zr_entry empty = { 0, 0 }, old;

		if (zr_slot_empty(slot) ||
		    !zr_meta_in_file(zr_slot_meta(slot)))
			continue;
		zr_swap_locked(st, slot, &empty, &old);
		zr_release(st, &old);
	}
}

void zr_store_destroy(struct zr_store *st)
{
	struct zr_stream *s, *next;

	if (!st)
		return;
	pthread_mutex_lock(&st->maint_lock);
	st->maint_stop = true;
	pthread_cond_signal(&st->maint_cond);
	pthread_mutex_unlock(&st->maint_lock);
	pthread_join(st->maintainer, NULL);

	pthread_mutex_lock(&st->work_lock);
	st->work_stop = true;
	pthread_cond_broadcast(&st->work_cond);
	pthread_mutex_unlock(&st->work_lock);
	while (st->nworkers)
		pthread_join(st->workers[--st->nworkers], NULL);
	free(st->workers);
	pthread_cond_destroy(&st->work_cond);
	pthread_mutex_destroy(&st->work_lock);

	/*
	 * Streams still attached to live threads are freed too: after
	 * pthread_key_delete() their destructors never run.
	 */
	pthread_key_delete(st->stream_key);
	for (s = st->all; s; s = next) {
		next = s->all_next;
		zr_stream_free(s);
	}
	/* Before maint_lock goes: a free may kick the (stopped) thread. */
	zr_free_file_objects(st);
	pthread_cond_destroy(&st->maint_cond);
	pthread_mutex_destroy(&st->bc_lock);
	pthread_mutex_destroy(&st->maint_lock);
	pthread_mutex_destroy(&st->streams_lock);
	zs_pool_destroy(st->pool);
	munmap(st->table, st->table_bytes);
	free(st);
}

uint64_t zr_disksize(const struct zr_store *st)
{
	return st->disksize;
}

/* Clip [off, off+len) to the disk; returns the usable length. */
static size_t zr_clip(const struct zr_store *st, uint64_t off, size_t len)
{
	if (off >= st->disksize)
		return 0;
	if (len > st->disksize - off)
		len = (size_t)(st->disksize - off);
	return len;
}

/*
 * A request split into pages.  The caller and any idle workers claim pages
 * with @next until all are taken; the caller then waits for the workers
 * that joined (@refs) to finish the pages they claimed.
 */
struct zr_job {
	struct zr_store *st;
	bool write;
	uint8_t *buf;
	uint64_t off;
	size_t len;
	uint64_t first;			/* first page index */
	uint32_t npages;
	_Atomic uint32_t next;		/* next page to claim */
	_Atomic uint32_t refs;		/* workers inside the job */
	_Atomic uint32_t fail;		/* lowest failed page, or npages */
	_Atomic int err;		/* error of some failed page */
	struct zr_job *link;		/* guarded by work_lock */
};

/* zr_job_page - do page @j of @job with stream @s.  Returns 0 or -errno. */
static int zr_job_page(struct zr_job *job, struct zr_stream *s, uint32_t j)
{
	struct zr_store *st = job->st;
	uint64_t idx = job->first + j;
	uint64_t start = idx << ZR_PAGE_SHIFT, end = start + ZR_PAGE_SIZE;
	uint8_t *p;
	size_t n, pg_off;

	if (start < job->off)
		start = job->off;
	if (end > job->off + job->len)
		end = job->off + job->len;
	p = job->buf + (start - job->off);
	pg_off = start & (ZR_PAGE_SIZE - 1);
	n = (size_t)(end - start);
	if (!job->write)
		return zr_read_page(st, s, idx, p, pg_off, n,
				    job->first + job->npages - 1);
	if (n == ZR_PAGE_SIZE)
		return zr_write_full(st, s, idx, p);
	return zr_write_partial(st, s, idx, p, pg_off, n);
}

/* zr_job_run - claim and do pages of @job until none are left. */
static void zr_job_run(struct zr_job *job, struct zr_stream *s)
{
	uint32_t j, f;
	int ret;

	while ((j = atomic_fetch_add_explicit(&job->next, 1,
					      memory_order_relaxed)) <
	       job->npages) {
		ret = zr_job_page(job, s, j);
		if (!ret)
			continue;
		if (job->write) {
			zr_stat_add(job->st, failed_writes, 1);
			/* The write fails as a whole: claim no more pages. */
			atomic_store_explicit(&job->next, job->npages,
					      memory_order_relaxed);
		} else {
			zr_stat_add(job->st, failed_reads, 1);
		}
		atomic_store_explicit(&job->err, ret, memory_order_relaxed);
		f = atomic_load_explicit(&job->fail, memory_order_relaxed);
		while (j < f &&
		       !atomic_compare_exchange_weak_explicit(
			       &job->fail, &f, j, memory_order_relaxed,
			       memory_order_relaxed))
			;
	}
}

/* zr_job_unlink_locked - take @job off the work list.  Needs work_lock. */
static void zr_job_unlink_locked(struct zr_store *st, struct zr_job *job)
{
	struct zr_job **pp;

	for (pp = &st->work; *pp; pp = &(*pp)->link)
		if (*pp == job) {
			*pp = job->link;
			return;
		}
}

static void *zr_worker(void *arg)
{
	struct zr_store *st = arg;
	struct zr_stream *s = zr_stream_get(st);
	struct zr_job *job;

	pthread_mutex_lock(&st->work_lock);
	while (!st->work_stop) {
		job = st->work;
		if (!job || !s) {
			pthread_cond_wait(&st->work_cond, &st->work_lock);
			if (!s) {
				/* It takes streams_lock: work_lock stays a
				 * leaf. */
				pthread_mutex_unlock(&st->work_lock);
				s = zr_stream_get(st);
				pthread_mutex_lock(&st->work_lock);
			}
			continue;
		}
		if (atomic_load_explicit(&job->next, memory_order_relaxed) >=
		    job->npages) {
			/* Fully claimed: nothing left for anyone to join. */
			zr_job_unlink_locked(st, job);
			continue;
		}
		atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
		pthread_mutex_unlock(&st->work_lock);

		zr_job_run(job, s);
		/* Last touch of @job: the caller may return right after. */
		if (atomic_fetch_sub_explicit(&job->refs, 1,
					      memory_order_release) == 1)
			zr_futex_wake_all(&job->refs);
		pthread_mutex_lock(&st->work_lock);
	}
	pthread_mutex_unlock(&st->work_lock);
	return NULL;
}

/*
 * zr_io - read or write [@off, @off+@len) (already clipped, @len > 0).
 * Returns @len if every page was done.  Otherwise a read returns the
 * bytes before its first failed page, or that page's -errno if it is the
 * first; a write returns the -errno of a failed page (see zr_write).
 */
static ssize_t zr_io(struct zr_store *st, bool write, void *buf, size_t len,
		     uint64_t off)
{
	struct zr_stream *s = zr_stream_get(st);
	struct zr_job job = {
		.st = st,
		.write = write,
		.buf = buf,
		.off = off,
		.len = len,
		.first = off >> ZR_PAGE_SHIFT,
	};
	bool big, parallel;
	uint32_t refs, fail;
	uint64_t done;

	if (!s)
		return -ENOMEM;
	job.npages = (uint32_t)(((off + len - 1) >> ZR_PAGE_SHIFT) -
				job.first + 1);
	atomic_init(&job.next, 0);
	atomic_init(&job.refs, 0);
	atomic_init(&job.fail, job.npages);
	atomic_init(&job.err, 0);

	big = st->nworkers && len >= ZR_PARALLEL_MIN;
	/* Split only while some of the nworkers + 1 threads would be idle. */
	parallel = big && atomic_fetch_add_explicit(&st->big_inflight, 1,
				memory_order_relaxed) < st->nworkers;
	if (parallel) {
		zr_stat_add(st, split_requests, 1);
		pthread_mutex_lock(&st->work_lock);
		job.link = st->work;
		st->work = &job;
		pthread_cond_broadcast(&st->work_cond);
		pthread_mutex_unlock(&st->work_lock);
	}
	zr_job_run(&job, s);
	if (parallel) {
		pthread_mutex_lock(&st->work_lock);
		zr_job_unlink_locked(st, &job);
		pthread_mutex_unlock(&st->work_lock);
		while ((refs = atomic_load_explicit(&job.refs,
						    memory_order_acquire)))
			zr_futex_wait(&job.refs, refs);
	}
	if (big)
		atomic_fetch_sub_explicit(&st->big_inflight, 1,
					  memory_order_relaxed);

	fail = atomic_load_explicit(&job.fail, memory_order_relaxed);
	if (fail == job.npages)
		return (ssize_t)len;
	if (write)
		return atomic_load_explicit(&job.err, memory_order_relaxed);
	done = ((job.first + fail) << ZR_PAGE_SHIFT);
	done = done > off ? done - off : 0;
	if (done)
		return (ssize_t)done;
	return atomic_load_explicit(&job.err, memory_order_relaxed);
}

ssize_t zr_read(struct zr_store *st, void *buf, size_t len, uint64_t off)
{
	len = zr_clip(st, off, len);
	if (!len)
		return 0;
	return zr_io(st, false, buf, len, off);
}

ssize_t zr_write(struct zr_store *st, const void *buf, size_t len,
		 uint64_t off)
{
	if (!len)
		return 0;
	len = zr_clip(st, off, len);
	if (!len)
		return -EFBIG;
	/* zr_io only reads through @buf when writing. */
	return zr_io(st, true, (void *)(uintptr_t)buf, len, off);
}

int zr_discard(struct zr_store *st, uint64_t off, uint64_t len)
{
	struct zr_stream *s;
	uint64_t end, first, last, idx, freed = 0;
	int ret = 0, ret2;

	len = off < st->disksize ? (st->disksize - off < len ?
				    st->disksize - off : len) : 0;
	if (!len)
		return 0;
	end = off + len;
	first = (off + ZR_PAGE_SIZE - 1) >> ZR_PAGE_SHIFT;	/* whole pages */
	last = end >> ZR_PAGE_SHIFT;				/* exclusive */

	/* Counted once: a discard of a whole device passes every slot. */
	for (idx = first; idx < last; idx++)
		freed += zr_free_page(st, idx);
	if (last > first) {
		zr_stat_add(st, notify_free, freed);
		zr_stat_add(st, miss_free, last - first - freed);
	}

	/* Partial edges: zero them inside their page. */
	if (first > last || (off & (ZR_PAGE_SIZE - 1)) ||
	    (end & (ZR_PAGE_SIZE - 1))) {
		s = zr_stream_get(st);
		if (!s)
			return -ENOMEM;
		if (first > last) {
			/* Inside one page. */
			ret = zr_write_partial(st, s, off >> ZR_PAGE_SHIFT,
					       NULL, off & (ZR_PAGE_SIZE - 1),
					       (size_t)len);
		} else {
			if (off & (ZR_PAGE_SIZE - 1))
				ret = zr_write_partial(st, s,
					off >> ZR_PAGE_SHIFT, NULL,
					off & (ZR_PAGE_SIZE - 1),
					ZR_PAGE_SIZE -
					(off & (ZR_PAGE_SIZE - 1)));
			if (end & (ZR_PAGE_SIZE - 1)) {
				ret2 = zr_write_partial(st, s,
					end >> ZR_PAGE_SHIFT, NULL, 0,
					end & (ZR_PAGE_SIZE - 1));
				if (!ret)
					ret = ret2;
			}
		}
		if (ret)
			zr_stat_add(st, failed_writes, 1);
	}
	zr_compact_kick(st);
	return ret;
}

int64_t zr_seek(struct zr_store *st, uint64_t off, int whence)
{
	uint64_t idx;
	bool want_data;

	if (whence == SEEK_DATA)
		want_data = true;
	else if (whence == SEEK_HOLE)
		want_data = false;
	else
		return -EINVAL;
	if (off >= st->disksize)
		return -ENXIO;
	/*
	 * Without locks: whether a slot is empty is all a seek needs, and
	 * each answer takes effect at its load ("Empty slots" above).
	 */
	for (idx = off >> ZR_PAGE_SHIFT; idx < st->npages; idx++) {
		bool data = !zr_slot_empty(&st->table[idx]);

		if (data == want_data) {
			uint64_t pos = idx << ZR_PAGE_SHIFT;

			return (int64_t)(pos > off ? pos : off);
		}
	}
	return want_data ? -ENXIO : (int64_t)st->disksize;
}

uint64_t zr_mark_idle(struct zr_store *st, uint64_t min_age)
{
	uint64_t now = zr_now(st), idx, marked = 0;

	for (idx = 0; idx < st->npages; idx++) {
		struct zr_slot *slot = &st->table[idx];
		uint32_t old;

		/*
		 * An empty slot is not a page to mark, and is passed without
		 * being written ("Empty slots" above): marking it takes effect
		 * before a write racing it, which would clear the mark anyway.
		 */
		if (zr_slot_empty(slot))
			continue;
		zr_slot_lock_read(slot);
		old = zr_slot_meta(slot);
		while (old && !(old & ZR_META_IDLE)) {
			if (zr_age_at(now, old) < min_age)
				break;
			if (atomic_compare_exchange_weak_explicit(
				    &slot->meta, &old, old | ZR_META_IDLE,
				    memory_order_relaxed,
				    memory_order_relaxed)) {
				zr_stat_add(st, idle_pages, 1);
				marked++;
				break;
			}
		}
		zr_slot_unlock_read(slot);
	}
	return marked;
}

/*
 * zr_wb_encode - the bytes that slot @slot's object (in the pool) goes
 * to the backing file as, in @s->bdbuf: *@obj and *@len; *@bits, the
 * handle's bits of the object, are changed to match.  With @denser and
 * a secondary algorithm, an object made by one of lower priority than
 * the first secondary goes in that one when it comes out smaller (@s
 * must hold a compressing context of it, zr_stream_recomp()): a page
 * written back because it is cold is best stored densest, as every byte
 * not written is disk bandwidth and space.  Else, and for a spill, the
 * object goes as it is: a spill runs on the write that needs the room,
 * of pages that may be wanted again soon, and the hog of bench/tier.sh
 * took 36% longer with zstd there (bench/RESULTS.md).  An object that
 * does not decompress goes as it is too (counted in failed_reads): its
 * bytes still read back as -EIO from the file, and one bad page does
 * not stop the writeback of the others.  Returns 0 (cannot fail).
 * Needs the slot's write lock.
 */
static int zr_wb_encode(struct zr_store *st, struct zr_stream *s,
			const struct zr_slot *slot, bool denser,
			const void **obj, size_t *len, uint64_t *bits)
{
	uint32_t meta = zr_slot_meta(slot);
	uint8_t *out = s->bdbuf + ZR_PAGE_SIZE;
	unsigned p = st->rc_first;
	int clen;

	*len = zr_meta_len(meta);
	if (!denser || !p || zr_h_prio(slot->handle) >= p)
		goto as_is;
	if (zr_decode_locked(st, s, slot, s->bdbuf,
			     (uint64_t)(slot - st->table))) {
		zr_stat_add(st, failed_reads, 1);
		goto as_is;
	}
	clen = zcomp_compress(s->ctx[p], s->bdbuf, ZR_PAGE_SIZE, out, *len);
	if (clen <= 0)
		goto as_is;
	*obj = out;
	*len = (size_t)clen;
	*bits = (*bits & ZR_H_INCOMP) | (uint64_t)p << ZR_H_PRIO_SHIFT;
	return 0;

as_is:
	*obj = s->bdbuf;
	return zs_load(st->pool, zr_h_obj(slot->handle), s->bdbuf, *len);
}

/*
 * zr_writeback_page - move slot @idx's object to the backing file if the
 * slot holds one in the pool with every flag of @want.  Returns 1 if it
 * moved, 0 if the page is not one to move (or, for a store's spill, its
 * lock is taken), or -errno from zb_write() (the page then stays in
 * RAM).  Holds the slot's write lock across the copy into the file's
 * segment buffer (zb_write() writes no segment out unless the maintainer
 * has fallen behind), so that the page cannot change under the copy.  Copies
 * through @s->bdbuf, which no caller uses across this call (cbuf and
 * page may hold the page being stored).
 * @by: who asks, counted with bd_writes as it moves (so that the figures
 * agree whenever they are read); ZR_WB_BY_SPILL: only if the lock is
 * free (the caller may hold another slot's), and the object goes as it
 * is (zr_wb_encode()).
 * @min_age: only if not read or written for that many seconds (0: any).
 */
static int zr_writeback_page(struct zr_store *st, struct zr_stream *s,
			     uint64_t idx, uint32_t want, enum zr_wb_by by,
			     uint32_t min_age)
{
	bool spill = by == ZR_WB_BY_SPILL;
	struct zr_slot *slot = &st->table[idx];
	struct zr_entry new, old;
	uint64_t loc, bits;
	const void *obj;
	uint32_t meta;
	size_t len;
	int ret;

	if (zr_slot_empty(slot))	/* "Empty slots" above */
		return 0;
	if (!spill)
		zr_slot_lock_write(slot);
	else if (!zr_slot_trylock_write(slot))
		return 0;
	meta = zr_slot_meta(slot);
	if (!zr_meta_in_pool(meta) || !zr_wants(meta, slot->handle, want) ||
	    zr_meta_age(st, meta) < min_age) {
		zr_slot_unlock_write(slot);
		return 0;
	}
	bits = slot->handle & ~ZR_H_OBJ_MASK;	/* its algorithm, its mark */
	ret = zr_wb_encode(st, s, slot, !spill, &obj, &len, &bits);
	if (!ret)
		ret = zb_write(st->bd, obj, len, &loc);
	if (ret < 0) {
		zr_slot_unlock_write(slot);
		return ret;
	}
	if (ret)			/* a segment waits to be written */
		zr_maint_kick(st);
	new.meta = (uint32_t)len | ZR_META_FILE;
	new.handle = loc | bits;
	zr_swap_locked(st, slot, &new, &old);
	zr_slot_unlock_write(slot);
	zr_release(st, &old);
	zr_stat_add(st, bd_writes, 1);
	if (by == ZR_WB_BY_AGE)
		zr_stat_add(st, bd_aged, 1);
	if (by == ZR_WB_BY_SPILL || by == ZR_WB_BY_AHEAD)
		zr_stat_add(st, bd_spills, 1);
	if (by == ZR_WB_BY_AHEAD)
		zr_stat_add(st, bd_ahead, 1);
	return 1;
}

int64_t zr_writeback(struct zr_store *st, uint32_t want, uint64_t first,
		     uint64_t last, uint64_t max)
{
	struct zr_stream *s;
	uint64_t idx, done = 0;
	int ret = 0;

	if (!st->bd)
		return -ENODEV;
	if (want & ~(ZR_WB_IDLE | ZR_WB_HUGE | ZR_WB_INCOMPRESSIBLE))
		return -EINVAL;
	s = zr_stream_get(st);
	if (!s || zr_stream_recomp(st, s))
		return -ENOMEM;
	if (last > st->npages)
		last = st->npages;
	for (idx = first; idx < last && done < max; idx++) {
		ret = zr_writeback_page(st, s, idx, want, ZR_WB_BY_ASK, 0);
		if (ret < 0)
			break;
		done += (uint64_t)ret;
	}
	if (done) {
		zr_compact_kick(st);
		zr_bd_kick(st);
	}
	/* Stopped by the file (full, failing): what moved stays moved. */
	if (ret < 0 && !done)
		return ret;
	return (int64_t)done;
}

int64_t zr_compact_file(struct zr_store *st)
{
	uint64_t budget, pass, total = 0, passes;
	bool counted;
	struct zr_stream *s;
	struct zb_stats bs;
	int64_t done = 0;
	bool over = false;

	if (!st->bd)
		return -ENODEV;
	s = zr_stream_get(st);
	if (!s)
		return -ENOMEM;
	/* Each pass frees the segments it picked; frees meanwhile may make
	 * more sparse, so the passes are bounded by those there were. */
	zb_get_stats(st->bd, &bs);
	passes = bs.segs_sparse / ZR_BC_SEGS + 1;
	pthread_mutex_lock(&st->bc_lock);
	while (passes-- &&
	       (st->bc_n = zb_compact_pick(st->bd, st->bc_segs, ZR_BC_SEGS,
					   true))) {
		st->bc_hand = 0;
		pass = 0;
		do {
			budget = zr_wb_limit_take(st->wb_limit,
						  ZR_WB_RUN_PAGES, &counted);
			done = budget ? zr_bc_run(st, s, UINT64_MAX, budget,
						  &over) : 0;
			zr_wb_limit_give(st->wb_limit, budget -
					 (done > 0 ? (uint64_t)done : 0),
					 counted);
			if (done > 0)
				pass += (uint64_t)done;
		} while (budget && done >= 0 && !over);
		total += pass;
		if (!budget || done < 0 || !pass)
			break;
	}
	st->bc_n = 0;		/* the last pick's marks: dropped */
	pthread_mutex_unlock(&st->bc_lock);
	return done < 0 && !total ? done : (int64_t)total;
}

/*
 * zr_recompress_page - recompress slot @idx's object if it is one to
 * (zr_recompress(); @min_age as zr_writeback_page()'s), with the
 * algorithm of priority @prio, or with @prio 0 each secondary above the
 * one that stored it, in order, until one shrinks it.  Returns 1 if a
 * smaller object replaced it, 0 if not (passed, or tried and not shrunk:
 * *@tried is set once it was decompressed), or -ENOMEM.  Holds the
 * slot's write lock from the decompression to the swap (see
 * zr_recompress()); uses @s->page and @s->cbuf.
 */
static int zr_recompress_page(struct zr_store *st, struct zr_stream *s,
			      uint64_t idx, uint32_t want, size_t threshold,
			      unsigned prio, uint32_t min_age, bool *tried)
{
	struct zr_slot *slot = &st->table[idx];
	unsigned cur, p, from, to;
	struct zr_entry new, old;
	int clen = 0, ret = 0;
	size_t len, cap;
	uint32_t meta;
	uint64_t h;

	/* A snapshot without the lock, as zr_spill()'s; checked below. */
	if (!zr_meta_in_pool(zr_slot_meta(slot)))
		return 0;
	zr_slot_lock_write(slot);
	meta = zr_slot_meta(slot);
	cur = zr_h_prio(slot->handle);
	from = prio ? prio : cur + 1;
	to = prio ? prio : st->rc_last;
	len = zr_meta_len(meta);
	if (!zr_meta_in_pool(meta) || (slot->handle & ZR_H_INCOMP) ||
	    !zr_wants(meta, slot->handle, want) || len < threshold ||
	    cur >= to || zr_meta_age(st, meta) < min_age)
		goto out_unlock;
	if (zr_decode_locked(st, s, slot, s->page, idx)) {
		zr_stat_add(st, failed_reads, 1);
		goto out_unlock;
	}
	*tried = true;
	/* Smaller than it is; a huge page small enough not to be huge. */
	cap = (meta & ZR_META_HUGE) ? ZR_HUGE_THRESHOLD + 1 : len;
	for (p = from; p <= to; p++) {
		if (!s->ctx[p])
			continue;
		clen = zcomp_compress(s->ctx[p], s->page, ZR_PAGE_SIZE,
				      s->cbuf, cap);
		if (clen != 0)
			break;
	}
	if (clen <= 0) {
		/* The last algorithm there is did not shrink it either. */
		if (clen == 0 && to == st->rc_last) {
			slot->handle |= ZR_H_INCOMP;
			zr_stat_add(st, incompressible, 1);
		}
		goto out_unlock;
	}
	/* At the memory limit, or short of memory: passed, nothing lost. */
	ret = zs_store(st->pool, s->cbuf, (size_t)clen, &h);
	if (ret) {
		ret = ret == -ENOMEM ? ret : 0;
		goto out_unlock;
	}
	/* Not an access: the page keeps its age and its IDLE mark. */
	new.meta = (uint32_t)clen |
		   (meta & (ZR_META_TIME_MASK | ZR_META_IDLE));
	new.handle = h | (uint64_t)p << ZR_H_PRIO_SHIFT;
	zr_put_locked(st, slot, &new, &old);
	zr_slot_unlock_write(slot);
	zr_release(st, &old);
	zr_stat_add(st, recompressed, 1);
	zr_stat_add(st, recomp_saved, len - (size_t)clen);
	return 1;

out_unlock:
	zr_slot_unlock_write(slot);
	return ret;
}

int64_t zr_recompress(struct zr_store *st, uint32_t want, size_t threshold,
		      uint64_t first, uint64_t last, uint64_t max,
		      unsigned prio)
{
	uint64_t idx, done = 0, tried = 0;
	struct zr_stream *s;
	bool t;
	int ret = 0;

	if ((want & ~(ZR_WB_IDLE | ZR_WB_HUGE)) || prio > ZR_RECOMP_MAX ||
	    !st->rc_first || (prio && !st->backend[prio]))
		return -EINVAL;
	s = zr_stream_get(st);
	if (!s || zr_stream_recomp(st, s))
		return -ENOMEM;
	if (last > st->npages)
		last = st->npages;
	for (idx = first; idx < last && tried < max; idx++) {
		t = false;
		ret = zr_recompress_page(st, s, idx, want, threshold, prio, 0,
					 &t);
		if (ret < 0)
			break;
		done += (uint64_t)ret;
		tried += t;
	}
	if (done)
		zs_compact(st->pool);
	if (ret < 0 && !done)
		return ret;
	return (int64_t)done;
}

void zr_set_recompress_age(struct zr_store *st, unsigned secs)
{
	atomic_store_explicit(&st->rc_age, secs > ZR_WB_AGE_MAX ?
			      ZR_WB_AGE_MAX : secs, memory_order_relaxed);
	zr_maint_kick(st);
}

const char *zr_recomp_algorithm(const struct zr_store *st, unsigned prio,
				int *level)
{
	if (prio < 1 || prio > ZR_RECOMP_MAX || !st->backend[prio])
		return NULL;
	*level = st->level[prio];
	return st->backend[prio]->name;
}

void zr_get_stats(struct zr_store *st, struct zr_stats *out)
{
	unsigned p;

	memset(out, 0, sizeof(*out));
	out->pages_stored = zr_stat_get(st, pages_stored);
	out->orig_data_size = out->pages_stored << ZR_PAGE_SHIFT;
	out->compr_data_size = zr_stat_get(st, compr_data_size);
	out->mem_used_total = zs_total_bytes(st->pool);
	out->mem_limit = zs_get_limit(st->pool);
	out->mem_used_max = zr_stat_get(st, mem_used_max);
	if (out->mem_used_max < out->mem_used_total)
		out->mem_used_max = out->mem_used_total;
	out->same_pages = zr_stat_get(st, same_pages);
	out->pages_compacted = zs_pages_compacted(st->pool);
	out->huge_pages = zr_stat_get(st, huge_pages);
	out->huge_pages_since = zr_stat_get(st, huge_pages_since);
	out->failed_reads = zr_stat_get(st, failed_reads);
	out->failed_writes = zr_stat_get(st, failed_writes);
	out->notify_free = zr_stat_get(st, notify_free);
	out->miss_free = zr_stat_get(st, miss_free);
	out->idle_pages = zr_stat_get(st, idle_pages);
	out->reserve_bytes = zs_cache_bytes(st->pool);
	out->split_requests = zr_stat_get(st, split_requests);
	out->bd_count = zr_stat_get(st, bd_count);
	out->bd_bytes = zr_stat_get(st, bd_bytes);
	out->bd_reads = zr_stat_get(st, bd_reads);
	out->bd_writes = zr_stat_get(st, bd_writes);
	out->bd_spills = zr_stat_get(st, bd_spills);
	out->bd_ahead = zr_stat_get(st, bd_ahead);
	out->bd_aged = zr_stat_get(st, bd_aged);
	out->wb_age = atomic_load_explicit(&st->wb_age, memory_order_relaxed);
	out->wb_oldest = zr_stat_get(st, wb_oldest);
	for (p = 0; p <= ZR_RECOMP_MAX; p++)
		out->algo_pages[p] = zr_stat_get(st, algo_pages[p]);
	out->recompressed = zr_stat_get(st, recompressed);
	out->recomp_saved = zr_stat_get(st, recomp_saved);
	out->recomp_aged = zr_stat_get(st, recomp_aged);
	out->incompressible = zr_stat_get(st, incompressible);
	out->rc_age = atomic_load_explicit(&st->rc_age, memory_order_relaxed);
}

uint64_t zr_wb_limit_take(struct zr_wb_limit *l, uint64_t want,
			  bool *counted)
{
	uint64_t have, take;

	*counted = l && atomic_load(&l->on);
	if (!*counted)
		return want;
	have = atomic_load(&l->pages);
	do {
		take = have < want ? have : want;
	} while (!atomic_compare_exchange_weak(&l->pages, &have,
					       have - take));
	return take;
}

void zr_wb_limit_give(struct zr_wb_limit *l, uint64_t n, bool counted)
{
	if (counted && n)
		atomic_fetch_add(&l->pages, n);
}

void zr_set_writeback_age(struct zr_store *st, unsigned secs)
{
	atomic_store_explicit(&st->wb_age, secs > ZR_WB_AGE_MAX ?
			      ZR_WB_AGE_MAX : secs, memory_order_relaxed);
	zr_maint_kick(st);
}

void zr_set_mem_limit(struct zr_store *st, uint64_t bytes)
{
	zs_set_limit(st->pool, bytes);
}

void zr_reset_mem_used_max(struct zr_store *st)
{
	atomic_store_explicit(&st->mem_used_max, zs_total_bytes(st->pool),
			      memory_order_relaxed);
}

uint64_t zr_compact(struct zr_store *st)
{
	return zs_compact(st->pool);
}

const char *zr_algorithm(const struct zr_store *st)
{
	return st->backend[0]->name;
}

int zr_level(const struct zr_store *st)
{
	return st->level[0];
}

unsigned zr_class_count(struct zr_store *st)
{
	return zs_class_count(st->pool);
}

int zr_get_class_stats(struct zr_store *st, unsigned i,
		       struct zr_class_stats *out)
{
	struct zs_class_stats cs;
	int ret;

	ret = zs_get_class_stats(st->pool, i, &cs);
	if (ret < 0)
		return ret;
	out->size = cs.size;
	out->span_pages = cs.span_pages;
	out->spans = cs.spans;
	out->objs_used = cs.objs_used;
	out->objs_total = cs.objs_total;
	return 0;
}

struct zs_pool *zr_pool(struct zr_store *st)
{
	return st->pool;
}

struct zr_slot *zr_slot_of(struct zr_store *st, uint64_t idx)
{
	return &st->table[idx];
}
