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
};

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
 * page counts in failed_reads).  Takes slot locks shared, one at a time.
 */
ssize_t zr_read(struct zr_store *st, void *buf, size_t len, uint64_t off);

/*
 * zr_write - write @len bytes from @buf at @off.
 * Returns the bytes written: @len, or fewer if the range crosses the end
 * of the disk; -EFBIG if @off is at or past the end (and @len > 0);
 * -ENOSPC if the memory limit is reached, -ENOMEM if the OS refuses
 * memory, -EIO if a partial page's old data is corrupt.  Pages are
 * written in order; on an error the pages before the failing one hold the
 * new data and the failing page keeps its old content (counted in
 * failed_writes); if some pages were written the count of bytes written
 * is returned instead of the error.  Takes slot locks exclusive, one at a
 * time.
 */
ssize_t zr_write(struct zr_store *st, const void *buf, size_t len,
		 uint64_t off);

/*
 * zr_discard - make [@off, @off+@len) read as zeros, freeing the memory of
 * every whole page in it and zeroing the partial pages at its edges.  The
 * range is clipped at the end of the disk.  Returns 0, or -ENOSPC/-ENOMEM
 * /-EIO from rewriting a partial edge page (whole pages are freed first,
 * so nothing is lost).  Takes slot locks exclusive, one at a time, and may
 * wake the background compaction thread.
 */
int zr_discard(struct zr_store *st, uint64_t off, uint64_t len);

/*
 * zr_seek - SEEK_DATA / SEEK_HOLE at page granularity.  A page is data
 * once written (even with zeros) until discarded; the end of the disk is
 * a hole.  Returns the offset, -ENXIO if @off >= disksize or (SEEK_DATA)
 * no data follows, -EINVAL for another @whence.  Takes slot locks
 * shared, one at a time; the answer may be stale once returned.
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
 * zr_mark_idle - mark idle every stored page not read or written for at
 * least @min_age seconds (0 = every stored page, zram's "all").  Reading
 * or writing a page clears its mark.  Ages are kept modulo 65536 s
 * (about 18 hours).  Returns how many pages this call marked.  Takes
 * each slot lock shared in turn.
 */
uint64_t zr_mark_idle(struct zr_store *st, uint64_t min_age);

/* zr_algorithm / zr_level - what the store compresses with.  Cannot fail;
 * the string is static. */
const char *zr_algorithm(const struct zr_store *st);
int zr_level(const struct zr_store *st);

/* zr_pool - the store's allocator, for per-class statistics; owned by the
 * store and valid until zr_store_destroy().  Cannot fail. */
struct zs_pool *zr_pool(struct zr_store *st);

#endif /* FUSEZRAM_ZR_STORE_H */
