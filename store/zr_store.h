/*
 * zr_store: the compressed image.  One slot per 4 KiB page of a disk of
 * fixed size; each slot is empty (reads as zeros), a same-filled page (one
 * 8-byte word repeated, stored in the slot itself), a compressed object or
 * a raw ("huge") page in the zs_pool allocator.
 *
 * Reads, writes and discards work at any offset and length inside the
 * disk.  Whole pages are compressed outside any lock into per-thread
 * buffers; the slot's reader/writer lock is held only to swap handles.
 * Partial pages are read-modify-written under the slot's write lock.
 *
 * Thread safety: every function may be called from any number of threads
 * at once, except zr_store_create/zr_store_destroy.  There is no global
 * lock on the read/write path.
 *
 * No FUSE header is included.
 */
#ifndef FUSEZRAM_ZR_STORE_H
#define FUSEZRAM_ZR_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ZR_PAGE_SHIFT 12
#define ZR_PAGE_SIZE (1u << ZR_PAGE_SHIFT)

/*
 * Compressed pages longer than this are stored raw: past ~7/8 of a page
 * the memory saved no longer pays for the decompression on every read.
 */
#define ZR_HUGE_THRESHOLD 3584

struct zr_store;
struct zb_file;

/*
 * zram's writeback_limit: while @on, each page written back to the
 * backing file takes one of @pages, and writeback stops at 0.  Owned by
 * the device, shared by its stores' writebacks (control/writeback and
 * the age policy); lock-free.
 */
struct zr_wb_limit {
	_Atomic uint64_t pages;
	atomic_bool on;
};

/*
 * zr_wb_limit_take - take up to @want pages of @l (NULL: no limit):
 * returns what may be written, @want if the limit is off, 0 when it is
 * used up, and sets *@counted to whether they came out of the limit.
 * zr_wb_limit_give - give back @n of them that were not written, with
 * the @counted their take set: only pages the limit lent go back to it,
 * so a limit turned on during a run gains nothing.  Cannot fail.
 */
uint64_t zr_wb_limit_take(struct zr_wb_limit *l, uint64_t want,
			  bool *counted);
void zr_wb_limit_give(struct zr_wb_limit *l, uint64_t n, bool counted);

/*
 * Secondary algorithms, for recompression (zram's recomp_algorithm):
 * priorities 1..ZR_RECOMP_MAX; 0 is the primary, the one every write
 * compresses with.
 */
#define ZR_RECOMP_MAX 3

/* Spilling ahead of the stores (zr_config.backing): its marks. */
#define ZR_AHEAD_HIGH_DIV 16	/* starts above 15/16 of mem_limit */
#define ZR_AHEAD_LOW_DIV 8	/* and stops at 7/8 of it */
/* A spill looks at windows of ZR_SPILL_SCAN slots and moves at most
 * ZR_SPILL_BATCH pages at a time (zr_store.c: Spilling). */
#define ZR_SPILL_SCAN 4096
#define ZR_SPILL_BATCH 64

/* An algorithm and its level. */
struct zr_algo {
	const char *name;	/* backend name (zcomp_find()); NULL: none */
	int level;		/* ZCOMP_LEVEL_DEFAULT or a backend level */
};

struct zr_config {
	uint64_t disksize;	/* bytes; multiple of ZR_PAGE_SIZE, > 0 */
	const char *algorithm;	/* backend name, see zcomp_find() */
	int level;		/* ZCOMP_LEVEL_DEFAULT or a backend level */
	uint64_t mem_limit;	/* bytes; 0 = no limit */
	/*
	 * Helper threads that compress or decompress the pages of one large
	 * request in parallel with the calling thread (zram's page-based
	 * parallel write).  0 = none: every request runs on its caller.
	 */
	unsigned workers;
	/*
	 * The target of the allocator's cache of resident free pages
	 * (zs_set_cache()), kept faulted in by the background thread so
	 * that storing a page takes no page fault and never waits in the
	 * page allocator on the I/O path.  Not part of mem_used_total.
	 * 0 = no cache.  See ZR_RESERVE_DEFAULT.
	 */
	uint64_t reserve;
	/*
	 * The backing file pages are written back to (zr_writeback()), or
	 * NULL for none.  Borrowed: it must outlive the store, which frees
	 * its objects in it at zr_store_destroy() and never closes it.
	 * With a mem_limit too, a store that would pass the limit writes
	 * cold pages back (spills) instead of failing, and the background
	 * thread spills ahead of the stores: from above mem_limit less
	 * mem_limit / ZR_AHEAD_HIGH_DIV down to mem_limit less mem_limit /
	 * ZR_AHEAD_LOW_DIV (zr_stats.bd_ahead).
	 */
	struct zb_file *backing;
	/* The device's writeback_limit (borrowed, may be NULL). */
	struct zr_wb_limit *wb_limit;
	/*
	 * Seconds: pages not read or written for that long are written back
	 * to the backing file in the background, huge ones first; 0 = off.
	 * At most ZR_WB_AGE_MAX (ages are kept in 16 bits of seconds).
	 */
	unsigned writeback_age;
	/*
	 * recomp[p - 1]: the secondary algorithm of priority p, or a NULL
	 * name for none at that priority (priorities may be left out, as
	 * in zram).
	 */
	struct zr_algo recomp[ZR_RECOMP_MAX];
	/*
	 * Seconds: pages in RAM not read or written for that long are
	 * recompressed in the background with the first secondary
	 * algorithm (the lowest priority given), or the next where that
	 * does not shrink a page (zr_recompress()'s priority 0); 0 = off,
	 * and off while there is no secondary algorithm.  At most
	 * ZR_WB_AGE_MAX.
	 */
	unsigned recompress_age;
};

#define ZR_WB_AGE_MAX 65535

/* What the daemon reserves unless told otherwise (-o reserve=). */
#define ZR_RESERVE_DEFAULT (4ULL << 20)

/* Requests of at least this many bytes are split across workers. */
#define ZR_PARALLEL_MIN (16 * ZR_PAGE_SIZE)

/*
 * zr_store_create - an empty store (every page reads as zeros).
 * Returns 0 and sets *@out (free with zr_store_destroy), -EINVAL for a
 * bad disksize, algorithm or level, -ENOMEM.
 */
int zr_store_create(const struct zr_config *cfg, struct zr_store **out);

/* zr_store_destroy - free everything.  Accepts NULL.  No I/O may run. */
void zr_store_destroy(struct zr_store *st);

/* zr_disksize - the disk size in bytes.  Cannot fail. */
uint64_t zr_disksize(const struct zr_store *st);

/*
 * zr_read - read @len bytes at @off into @buf.
 * Returns the bytes read: @len, fewer if the range crosses the end of the
 * disk, 0 at or past the end; or -EIO if a page's data is corrupt (that
 * page counts in failed_reads).  Takes the slot locks of the pages that
 * are not empty shared, one at a time; never-written pages are read
 * without writing to the page table.
 */
ssize_t zr_read(struct zr_store *st, void *buf, size_t len, uint64_t off);

/*
 * zr_write - write @len bytes from @buf at @off.
 * Returns:
 *   @len, every byte written;
 *   the bytes from @off to the end of the disk, if the range crosses the
 *   end (they are written; the rest is dropped);
 *   0 if @len is 0;
 *   -EFBIG if @off is at or past the end and @len > 0 (nothing written);
 *   -ENOSPC if the memory limit is reached (with a backing file: and
 *   spilling cold pages to it, zr_spill() in zr_store.c, made no room),
 *   -ENOMEM if the OS refuses memory, -EIO if a partial page's old data
 *   is corrupt.
 * These three fail the write as a whole, never with a short count: a
 * loop device would take a short count from the kernel's synchronous
 * FUSE direct I/O for a successful write and lose the rest.  After such
 * an error each page of the range holds either its old content or its
 * new one, never a mix, and which pages got the new one is unspecified
 * (pages are written in parallel, and no more are started once one
 * fails); each failed page counts in failed_writes.  Takes slot locks
 * exclusive, one at a time (and a spill, other pages' by trylock while
 * a partial page's is held).
 */
ssize_t zr_write(struct zr_store *st, const void *buf, size_t len,
		 uint64_t off);

/*
 * zr_discard - make [@off, @off+@len) read as zeros, freeing the memory of
 * every whole page in it and zeroing the partial pages at its edges.  The
 * range is clipped at the end of the disk.  Returns 0, or -ENOSPC/-ENOMEM
 * /-EIO from rewriting a partial edge page (whole pages are freed first,
 * so nothing is lost).  Takes the slot locks of the pages that are not
 * empty exclusive, one at a time (empty ones are passed without writing to
 * the page table), and may wake the background compaction thread.
 */
int zr_discard(struct zr_store *st, uint64_t off, uint64_t len);

/*
 * zr_seek - SEEK_DATA / SEEK_HOLE at page granularity.  A page is data
 * once written (even with zeros) until discarded; the end of the disk is
 * a hole.  Returns the offset, -ENXIO if @off >= disksize or (SEEK_DATA)
 * no data follows, -EINVAL for another @whence.  Takes no lock and
 * writes nothing (one atomic load per page passed); the answer may be
 * stale once returned.
 */
int64_t zr_seek(struct zr_store *st, uint64_t off, int whence);

/* Statistics, in the sense of kernel zram's mm_stat / io_stat. */
struct zr_stats {
	uint64_t orig_data_size;	/* bytes of pages stored (not empty) */
	uint64_t compr_data_size;	/* compressed bytes (huge count 4096) */
	uint64_t mem_used_total;	/* allocator memory, zs_total_bytes() */
	uint64_t mem_limit;		/* bytes, 0 = none */
	uint64_t mem_used_max;		/* peak of mem_used_total */
	uint64_t same_pages;
	uint64_t pages_compacted;
	uint64_t huge_pages;
	uint64_t huge_pages_since;
	uint64_t failed_reads;
	uint64_t failed_writes;
	uint64_t notify_free;		/* pages freed by discard */
	uint64_t miss_free;		/* discards of already-empty pages */
	uint64_t pages_stored;		/* non-empty slots */
	uint64_t idle_pages;		/* stored pages marked idle */
	uint64_t reserve_bytes;		/* resident free pages held by the
					 * allocator's cache (zs_cache_bytes);
					 * about zr_config.reserve when idle */
	uint64_t split_requests;	/* large requests shared with helpers */
	/* The backing file (zram's bd_stat, in pages): not in the above. */
	uint64_t bd_count;		/* pages written back, there now */
	uint64_t bd_bytes;		/* their compressed bytes */
	uint64_t bd_reads;		/* pages read from the file */
	uint64_t bd_writes;		/* pages written to the file */
	uint64_t bd_spills;		/* of those, to stay under mem_limit */
	uint64_t bd_ahead;		/* of those, by the background thread
					 * before a store needed the room */
	uint64_t bd_aged;		/* of those, by the age policy */
	uint64_t wb_age;		/* the policy's age, seconds; 0 off */
	uint64_t wb_oldest;		/* age of the oldest page in RAM seen
					 * by the policy's last sweep, s */
	/*
	 * Recompression.  algo_pages[p]: compressed pages in RAM stored by
	 * the algorithm of priority p (0 the primary; huge and same-filled
	 * pages are in none).  recompressed: pages recompressed into a
	 * smaller object since the store was made, recomp_saved the bytes
	 * that saved, of which recomp_aged by the age policy;
	 * incompressible: pages in RAM marked so (no secondary algorithm
	 * shrank them).
	 */
	uint64_t algo_pages[ZR_RECOMP_MAX + 1];
	uint64_t recompressed;
	uint64_t recomp_saved;
	uint64_t recomp_aged;
	uint64_t incompressible;
	uint64_t rc_age;		/* the policy's age, seconds; 0 off */
};

/* zr_get_stats - fill @out; each field an atomic read.  Cannot fail. */
void zr_get_stats(struct zr_store *st, struct zr_stats *out);

/* zr_set_mem_limit - 0 = none; effective at once.  Cannot fail. */
void zr_set_mem_limit(struct zr_store *st, uint64_t bytes);

/* zr_reset_mem_used_max - set the peak to current use.  Cannot fail. */
void zr_reset_mem_used_max(struct zr_store *st);

/*
 * zr_compact - compact the allocator now (zs_compact()): takes each size
 * class's lock exclusive in turn, never a slot lock.  Returns the pages
 * given back to the OS.  Cannot fail.
 */
uint64_t zr_compact(struct zr_store *st);

/*
 * zr_compact_file - compact the backing file now: move the pages whose
 * objects lie in its segments under half live (zb_compact_pick()) to
 * new places in the file, until none is left, so that those segments
 * are free (the maintainer does the same on its own once they waste a
 * quarter of the file; see zr_store.c).  Within writeback_limit when it
 * is on.  Returns the pages moved (0: none to move), -ENODEV without a
 * backing file, -ENOMEM, or the -errno of the file that stopped it
 * before anything moved (what moved stays moved).  Takes the store's
 * compaction lock (waits for the maintainer's run), then each page's
 * write lock in turn, with the file's reads and writes under it.
 */
int64_t zr_compact_file(struct zr_store *st);

/*
 * zr_mark_idle - mark idle every stored page not read or written for at
 * least @min_age seconds (0 = every stored page, zram's "all").  Reading
 * or writing a page clears its mark.  Ages are exact up to 64271 s
 * (17.9 hours); an older page counts as 64271 to 65471 s old, never
 * younger (zr_store.c: ZR_AGE_CAP).  Returns how many pages this call
 * marked.  Takes the lock of each stored page shared in turn; empty
 * slots are passed without writing to the page table.
 */
uint64_t zr_mark_idle(struct zr_store *st, uint64_t min_age);

/* Flags a page must have to be written back (zr_writeback()) or
 * recompressed (zr_recompress()). */
#define ZR_WB_IDLE 0x8000u		/* marked idle (zr_mark_idle()) */
#define ZR_WB_HUGE 0x4000u		/* stored raw: compression did not pay */
#define ZR_WB_INCOMPRESSIBLE 0x10000u	/* marked by zr_recompress(): no
					 * secondary algorithm shrank it */

/*
 * zr_writeback - move stored pages to the backing file, as zram's
 * writeback: each page of [@first, @last) (page numbers, clipped to the
 * disk) whose compressed object is in RAM and that has every flag of
 * @want (ZR_WB_IDLE, ZR_WB_HUGE, ZR_WB_INCOMPRESSIBLE; 0: any such
 * page, zram's page_index=), until @max pages have
 * moved.  Same-filled pages and pages already in the file are passed.
 * The compressed bytes move as they are (packed by zb_file), but for a
 * page stored with the primary when there is a secondary algorithm: it
 * goes in the first secondary one if that makes it smaller (a cold page
 * is best stored densest; so do the age policy's, but not a spill's,
 * see zr_wb_encode() in zr_store.c; one whose object does not
 * decompress goes as it is, counted in failed_reads); the RAM is
 * freed, and mm_stat no longer counts the page; a moved page loses its
 * IDLE mark.  It is read from the file from then on, and stays there
 * until it is overwritten or discarded.
 * Returns the pages moved (0 or more); or, when none moved, -ENODEV
 * without a backing file, -EINVAL for a bad @want, -ENOMEM, or the
 * -errno of zb_write() that stopped it (-ENOSPC: the file is full; the
 * page stays in RAM).  Takes each page's slot lock exclusive in turn,
 * held while its bytes are copied into the file (see zb_write()).
 */
int64_t zr_writeback(struct zr_store *st, uint32_t want, uint64_t first,
		     uint64_t last, uint64_t max);

/*
 * zr_recompress - zram's recompress: each page of [@first, @last) (page
 * numbers, clipped to the disk) whose object is in RAM, that has every
 * flag of @want (ZR_WB_IDLE, ZR_WB_HUGE; 0: any page), whose object is
 * at least @threshold bytes (0: any; a huge page counts ZR_PAGE_SIZE),
 * that is not marked incompressible and was stored by an algorithm of
 * lower priority than the one tried, is recompressed with the
 * secondary algorithm of priority @prio (1..ZR_RECOMP_MAX), or with
 * @prio 0 with each secondary algorithm in priority order until one
 * shrinks it.  The new object replaces the old only if it is smaller
 * (and, for a huge page, below ZR_HUGE_THRESHOLD).  A page that the
 * last secondary algorithm (the highest priority given) did not shrink
 * is marked incompressible: recompression passes it from then on, and
 * zr_writeback() with ZR_WB_INCOMPRESSIBLE takes it.  A recompressed
 * page keeps its access time and IDLE mark (it was not used); a write
 * stores it with the primary algorithm again and clears the mark.
 * Stops after @max pages were tried (zram's max_pages).  Then, if any
 * page was recompressed, compacts the pool (zr_compact()), so that the
 * memory the old objects held goes back at once.
 * Returns the pages recompressed (0 or more); -EINVAL if @prio names no
 * secondary algorithm (or, @prio 0, none is given) or @want has other
 * bits; -ENOMEM.  A page whose object does not decompress is passed
 * and counted in failed_reads.  Takes each page's slot lock exclusive
 * in turn, while its new object is swapped in (the compression runs
 * under it too: a concurrent write of that page waits for one page's
 * recompression).
 */
int64_t zr_recompress(struct zr_store *st, uint32_t want, size_t threshold,
		      uint64_t first, uint64_t last, uint64_t max,
		      unsigned prio);

/*
 * zr_set_recompress_age - the recompression policy's age in seconds
 * (see zr_config.recompress_age), at once; 0 turns it off.  Cannot fail.
 */
void zr_set_recompress_age(struct zr_store *st, unsigned secs);

/*
 * zr_recomp_algorithm - the secondary algorithm of priority @prio
 * (1..ZR_RECOMP_MAX): its backend's static name, or NULL for none (or
 * a priority out of range), and its level (resolved) in *@level.
 * Cannot fail.
 */
const char *zr_recomp_algorithm(const struct zr_store *st, unsigned prio,
				int *level);

/*
 * zr_set_writeback_age - the age policy's age in seconds (see
 * zr_config.writeback_age), at once; 0 turns it off.  Cannot fail.
 */
void zr_set_writeback_age(struct zr_store *st, unsigned secs);

/* zr_algorithm / zr_level - what the store compresses with.  Cannot fail;
 * the string is static. */
const char *zr_algorithm(const struct zr_store *st);
int zr_level(const struct zr_store *st);

/* Per-size-class figures of the allocator, for the summary.  Approximate. */
struct zr_class_stats {
	unsigned size;		/* object size of the class, bytes */
	unsigned span_pages;	/* pages per span */
	uint64_t spans;		/* spans allocated */
	uint64_t objs_used;	/* live objects */
	uint64_t objs_total;	/* room for objects in all spans */
};

/*
 * zr_class_count / zr_get_class_stats - the number of size classes, and
 * the figures of class @i.  Returns 0, or -EINVAL for an index past the
 * last.  Takes the class's lock shared.
 */
unsigned zr_class_count(struct zr_store *st);
int zr_get_class_stats(struct zr_store *st, unsigned i,
		       struct zr_class_stats *out);

/* zr_pool - the store's allocator, for per-class statistics; owned by the
 * store and valid until zr_store_destroy().  Cannot fail. */
struct zs_pool *zr_pool(struct zr_store *st);

#endif /* FUSEZRAM_ZR_STORE_H */
