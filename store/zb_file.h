/*
 * zb_file: the backing-file tier's storage, after zram's backing_dev
 * writeback, but packed: compressed objects of 1..ZB_MAX_OBJ bytes are
 * appended end to end into fixed-size segments of a regular file or a
 * block device, so that the file holds about the compressed size, and a
 * segment whose objects are all freed is reused or punched, so that
 * churn does not grow the file.  The file's content means nothing after
 * zb_close() (as zram's): it is emptied at open and at close.
 *
 * Callers hold a 64-bit location ("loc") per object, never a pointer:
 *
 *	bits 63..61  0 (the store keeps flags of its own there)
 *	bits 60..32  segment index + 1 (so loc 0 is never returned and
 *	             means "no object")
 *	bits 31..30  0
 *	bits 29..12  byte offset of the object in its segment
 *	bits 11..0   length - 1
 *
 * A loc stays valid until zb_free(); objects never move on their own
 * (compaction, zb_relocate(), gives the caller a new loc).  A stale loc, once
 * its segment is reused, reads whatever is there now: the caller must not use a
 * loc after zb_free().  A loc that is malformed or names a segment holding no
 * objects is refused with -EINVAL, never followed.
 *
 * Writes are buffered: zb_write() copies the object into the segment
 * being filled (a preallocated buffer) and returns; the segment is
 * written, whole and aligned, by the zb_write() that finds it full, or
 * by zb_flush().  Reads of objects not yet written are served from the
 * buffer, so no caller needs to flush for correctness.
 *
 * Locking (details in zb_file.c): one mutex per file guards the segment
 * table and the buffers' states; it is held for a memcpy of at most one
 * object and never across a system call.  Any number of threads may
 * call zb_write(), zb_read(), zb_free(), zb_flush(), zb_refill(),
 * zb_relocate(), zb_compact_pick(), zb_ra_wait() and zb_get_stats() at
 * once (a zb_compact_pick() clears the marks of any before it, so one
 * compaction runs at a time: the caller's to see to); zb_open() and
 * zb_close() are not concurrent with anything on the same file.
 *
 * No FUSE header is included; nothing here knows about pages or slots.
 */
#ifndef FUSEZRAM_ZB_FILE_H
#define FUSEZRAM_ZB_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZB_MAX_OBJ 4096			/* largest object */
#define ZB_ALIGN 4096			/* O_DIRECT offset and memory alignment */
#define ZB_SEG_SHIFT 18
#define ZB_SEG_SIZE (1u << ZB_SEG_SHIFT)	/* 256 KiB (zb_file.c: why) */
#define ZB_RESERVE_SEGS 8		/* free segments kept allocated: 2 MiB */
#define ZB_NBUF 16			/* segment buffers, preallocated: 4 MiB;
					 * with 4, FUSE threads wrote half the
					 * segments themselves (RESULTS.md) */

struct zb_file;

/*
 * zb_open - take @path as a backing file.
 * @path: a regular file, created 0600 if missing, or a block device.  A
 *        symlink at the last component is refused (-ELOOP), whatever it
 *        points to, and nothing is created through it; directories
 *        (-EISDIR) and every other kind of file (-EINVAL; a socket
 *        -ENXIO) are refused.
 *        An existing regular file is made 0600: it is going to hold
 *        swapped memory.  A block device is opened O_EXCL (-EBUSY while
 *        mounted or otherwise claimed).
 * @cap_bytes: the most the file may take, rounded down to segments; 0
 *        means the file system's free space at open (after emptying the
 *        file), or the device's size.  A device never gives more than
 *        its size.  The file system filling up before the cap is reached
 *        is reported the same way as the cap (-ENOSPC from zb_write()).
 * @out: set to the file on success.
 *
 * The file is locked (flock LOCK_EX, non-blocking; -EBUSY if another
 * process or another zb_open() holds it) before anything is changed,
 * then emptied: a regular file is truncated to 0, a device left as it
 * is (its content is never read before it is written).
 *
 * I/O is O_DIRECT where the file system allows it; where it refuses
 * (open with O_DIRECT fails with EINVAL: ramfs, FUSE, some network file
 * systems) the file is used through the page cache.  That costs a
 * memory copy each way, and a segment write then dirties 256 KiB of page
 * cache that the kernel must allocate and write out under the memory
 * pressure writeback is meant to relieve; zb_file limits it by writing
 * each segment back and dropping it from the cache at once
 * (sync_file_range, POSIX_FADV_DONTNEED), so that at most ZB_NBUF
 * segments of ours are dirty at once; reads leave clean pages, which the
 * kernel may reclaim.  zb_get_stats() tells which mode is in use.
 *
 * Allocates the segment buffers (ZB_NBUF * ZB_SEG_SIZE, touched here so
 * that they are resident and, under mlockall, locked) and the read
 * windows (ZB_NWIN * ZB_WIN_SIZE, likewise), a segment table of 28
 * bytes per segment of the cap (address space, touched as the file
 * grows), starts the file's read-ahead thread (zb_read()), which
 * inherits the caller's memory discipline (PR_SET_IO_FLUSHER, mlockall),
 * and fills the reserve (zb_refill()).
 *
 * Returns 0, or -errno: -ELOOP, -EISDIR, -EINVAL as above, -EBUSY, -ENOSPC
 * when the cap (or the free space, or the device) is less than one
 * segment, -ENOMEM, -EAGAIN (no thread), or what open(2), fstat(2) or
 * ioctl(2) failed with.
 * On error nothing is left open or locked (a file created here is left,
 * empty).
 */
int zb_open(const char *path, uint64_t cap_bytes, struct zb_file **out);

/*
 * zb_close - write nothing more, stop the read-ahead thread (waiting for
 * a read it has under way), empty a regular file (truncate to 0),
 * release the lock and free everything.  The file itself stays.  Accepts
 * NULL.  No other call on @f may be in progress or follow.
 */
void zb_close(struct zb_file *f);

/* zb_path - the path @f was opened with; valid until zb_close(). */
const char *zb_path(const struct zb_file *f);

/*
 * zb_write - store @len bytes (1..ZB_MAX_OBJ) from @obj and set *@loc.
 * Returns once the bytes are in the segment buffer: they are readable at
 * once, and written to the file after the segment fills, by
 * zb_write_queued() (or by a later zb_write() that needs the buffer, or
 * by zb_flush()).  Writes nothing itself unless every buffer is taken:
 * then, if some wait in the queue, it writes the oldest run of them (one
 * pwritev of adjacent segments, outside the lock); if none is queued
 * and none is being written, it writes once more a segment whose write
 * failed (below); else it waits for a write in progress.
 *
 * A new segment comes from the reserve (allocated ahead by zb_refill(),
 * so the write allocates no file-system blocks); only if the reserve is
 * empty does this call allocate one itself (fallocate(2) on the
 * caller's thread).
 *
 * Returns 0; 1 when this call closed a segment, which now waits on the
 * queue (the caller should see that zb_write_queued() runs); -EINVAL for
 * a bad length, -ENOSPC when no segment can be had (the cap reached, or
 * the file system full: counted in nospace, and the file is "full" until
 * a segment is freed or allocated), or another -errno from
 * fallocate(2), or -EIO when failed segment writes keep every buffer
 * (below).  On error nothing is stored and *@loc is untouched: the
 * caller keeps its data.  A failure to write a segment out is not this
 * call's error: it is counted (failed_writes), the segment's blocks are
 * retired, and its objects stay readable from its buffer, which it
 * keeps until they are all freed: nothing stored is lost.  Takes the
 * file's mutex.
 */
int zb_write(struct zb_file *f, const void *obj, size_t len, uint64_t *loc);

/*
 * zb_read - copy the object at @loc, of length @len, to @dst[0..@len).
 * Objects of a segment on disk come through the file's read windows
 * (ZB_NWIN buffers of ZB_WIN_SIZE, shared by all readers): if one holds
 * the object, nothing is read from the file.  Otherwise one read fills
 * the least recently used window with the aligned blocks from the
 * object's start through @ahead more bytes (the caller's guess of what
 * it will ask for next: 0 for only this object), or through a whole
 * window when the object follows right after a window of its segment
 * (a sequential reader), within the segment's written bytes.  The
 * caller must keep the object alive (not free @loc) during the call.
 * Returns 0; -EINVAL if @loc is malformed, does not name a segment
 * holding objects, or its length is not @len; -EIO if the read fails or
 * comes back short.  An object whose segment is still (or, its write
 * having failed, for good) in a buffer is copied from there.  Takes the
 * file's mutex, never across the read; may wait for a window while
 * ZB_NWIN reads are in progress, or for read-ahead's read of the object.
 *
 * Read-ahead: a sequential reader (as above), and one that first uses a window
 * read ahead, asks the file's read-ahead thread for the ZB_RA_DEPTH windows
 * after: the rest of the segment, or, past its end, the start of the segment
 * written right after it (a swap reader in order goes on there).  So the
 * windows ahead of such a reader are read while it is served, and it waits for
 * the file only where its order breaks.
 */
#define ZB_WIN_SIZE (64u << 10)
#define ZB_NWIN 16
#define ZB_RA_DEPTH 2	/* with 1, the hog's reader caught up with
			 * read-ahead half the time (RESULTS.md) */
int zb_read(struct zb_file *f, uint64_t loc, void *dst, size_t len,
	    size_t ahead);

/*
 * zb_ra_wait - wait until read-ahead has nothing asked of it and no read
 * in progress (tests, and anyone who counts reads).  Takes the file's
 * mutex.
 */
void zb_ra_wait(struct zb_file *f);

/*
 * zb_free - the object at @loc is dead.  A segment whose last object is
 * freed becomes free: back in the reserve, its blocks kept, or, beyond
 * the reserve, punched by the next zb_refill().  No I/O.  A malformed
 * @loc is ignored (and counted: bad_frees).  Cannot fail.  Takes the
 * file's mutex.
 */
void zb_free(struct zb_file *f, uint64_t loc);

/*
 * Compaction.  A segment is reused only once all its objects are freed,
 * so random churn leaves segments mostly dead.  The file cannot tell who
 * holds a loc; its caller can.  So:
 *
 * zb_compact_pick - unmark every segment, then mark for compaction up to
 * @max of the written segments under half live (segs_sparse), those with
 * the fewest live bytes, and put their indexes in @segs[0..n), ascending
 * (zb_loc_seg() names a loc's).  Unless @all, only when compacting is
 * worth it: the sparse segments waste 4 MiB or more and at least a
 * quarter of what the used segments take (else n is 0).  A segment a
 * compaction could not read is never picked.  Returns n.
 * Scans the segment table under the file's mutex (about a microsecond
 * per 100 segments) only to mark or unmark: a call that finds it not
 * worth it and nothing marked only tests two figures.  A segment's mark
 * goes when its last object is freed.
 *
 * zb_relocate - if the object at @loc, of length @len, lies in a marked
 * segment, read it (through @buf, ZB_MAX_OBJ bytes the caller owns; a miss
 * reads a whole window, for the objects after it) and store it again as
 * zb_write() does, setting *@newloc.  Returns 1 if so; 0 if @loc is not in a
 * marked segment, or if the read failed (counted in failed_reads; the object
 * stays where it is, and its segment is not picked again while it holds
 * objects): nothing done; or zb_write()'s -errno (nothing stored, the file full
 * or failing: stop).  The caller must keep the object alive, and its holder
 * from changing, across the call, then put *@newloc in its place and zb_free()
 * @loc; a segment whose objects have all gone so is free.  Takes the file's
 * mutex as those two do.
 *
 * zb_loc_seg - the segment index of a loc (for zb_compact_pick()'s
 * list); meaningless for a malformed loc.
 */
unsigned zb_compact_pick(struct zb_file *f, uint32_t *segs, unsigned max,
			 bool all);
int zb_relocate(struct zb_file *f, uint64_t loc, size_t len, void *buf,
		uint64_t *newloc);
static inline uint32_t zb_loc_seg(uint64_t loc)
{
	return (uint32_t)((loc >> 32) & ((1u << 29) - 1)) - 1;
}

/*
 * zb_flush - write the segment being filled, if it holds objects, and
 * the queued ones (also those other writers queue meanwhile), and wait
 * until no segment write is in progress: when it returns, every object
 * stored before the call is in the file (or, its write having failed,
 * kept in a buffer).  The segment is closed, so the space left in it
 * stays unused until all its objects are freed: call it when I/O has to
 * be finished (tests, an idle writeback thread before it sleeps), not
 * per object.  Returns 0, or -EIO if a segment write failed meanwhile
 * (failed_writes grew: this call's or another thread's).  Takes the
 * file's mutex, and writes outside it.
 */
int zb_flush(struct zb_file *f);

/*
 * zb_write_queued - write every segment on the write queue, oldest
 * first.  Call it from a background thread when zb_write() returned 1
 * or zb_refill_wanted() says so.  Returns 0, or -EIO if a write failed
 * (counted; its objects stay in its buffer, as above).  Takes the
 * file's mutex, and writes outside it.
 */
int zb_write_queued(struct zb_file *f);

/*
 * zb_refill - bring the reserve of free, allocated segments up to
 * ZB_RESERVE_SEGS: allocate new ones (fallocate(2), or zeros written
 * where the file system has no fallocate) when short; and, once per
 * ZB_AGE_MS, punch (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) the free
 * segments past it that went unused for the whole period just ended:
 * the fewest the reserve held in it, less ZB_RESERVE_SEGS.  Freed
 * segments that swap-like churn takes again within a period keep their
 * blocks (no punch and fallocate again per segment); a wave of frees
 * goes back to the file system within two periods.  A block device's
 * are discarded (BLKDISCARD) instead, where it allows.  Reuses punched
 * segments before it extends the file.  @now_ms: zb_now_ms(), or a
 * test's clock.  Call it from a thread that serves no I/O, when
 * zb_refill_wanted() says so.  Returns 0, or the -errno that stopped the
 * allocation (-ENOSPC: the cap reached or the file system full; the
 * reserve then holds what it could get).  Takes the file's mutex, never
 * across fallocate(2).
 * zb_refill_wanted - 1 when zb_refill() or zb_write_queued() has work
 * now: segments queued, the reserve under half (and the cap allows
 * more), or a period over with free segments past the reserve; else 0,
 * and *@after_ms is the milliseconds until such a period ends (0: none
 * pending).  Takes the file's mutex briefly.
 * zb_now_ms - CLOCK_MONOTONIC in milliseconds, modulo 2^32.
 */
#define ZB_AGE_MS 2000
int zb_refill(struct zb_file *f, uint32_t now_ms);
int zb_refill_wanted(struct zb_file *f, uint32_t now_ms, unsigned *after_ms);
uint32_t zb_now_ms(void);

/* Figures for statistics files.  Approximate while I/O runs. */
struct zb_stats {
	uint64_t objs;			/* live objects */
	uint64_t bytes_stored;		/* their bytes */
	uint64_t bytes_allocated;	/* segments holding objects, being
					 * filled, or in the reserve, times
					 * ZB_SEG_SIZE: what the file takes */
	uint64_t bytes_file;		/* file size: segments ever used */
	uint64_t cap_bytes;		/* the cap, in whole segments */
	uint64_t segs_used;		/* segments holding objects */
	uint64_t segs_reserved;		/* free and allocated */
	uint64_t segs_sparse;		/* written, under half live: what a
					 * compaction would rewrite (not
					 * those it could not read) */
	uint64_t bytes_sparse_waste;	/* what compacting those would give
					 * back: their size less live bytes */
	uint64_t segs_bad;		/* could not be written; retired */
	uint64_t segs_written;		/* segment writes done */
	uint64_t disk_writes;		/* write calls they took: adjacent
					 * segments go in one */
	uint64_t segs_punched;		/* punches done */
	uint64_t reads;			/* zb_read() calls served */
	uint64_t disk_reads;		/* of those, read from the file (the
					 * rest from a window or a buffer) */
	uint64_t ra_reads;		/* windows read ahead (not counted in
					 * disk_reads) */
	uint64_t ra_used;		/* of those, used by a reader */
	uint64_t objs_relocated;	/* objects moved by compaction
					 * (zb_relocate()) */
	uint64_t writes;		/* objects stored */
	uint64_t failed_reads;		/* -EIO or -EINVAL from zb_read() */
	uint64_t failed_writes;		/* segment writes that failed */
	uint64_t bad_frees;		/* zb_free() of a malformed loc */
	uint64_t nospace;		/* zb_write() calls refused with
					 * -ENOSPC: the cap reached or the
					 * file system full */
	int full;			/* 1: the last segment wanted was
					 * refused (-ENOSPC) and none has
					 * been freed or allocated since */
	int direct;			/* 1: O_DIRECT; 0: page cache */
	int blockdev;			/* 1: a block device */
};

/* zb_get_stats - fill @st.  Takes the file's mutex.  Cannot fail. */
void zb_get_stats(struct zb_file *f, struct zb_stats *st);

#endif /* FUSEZRAM_ZB_FILE_H */
