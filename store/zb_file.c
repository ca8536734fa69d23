/*
 * zb_file: the backing-file tier's storage.  The contract is in
 * zb_file.h; this is the design.
 *
 * Locking:
 *	f->lock (a mutex; one per file): the segment table, the lists, the
 *	  buffers' ownership, the gauges.  Leaf: nothing else is taken
 *	  under it, and it is never held across a system call; it covers
 *	  list and counter updates and at most one memcpy of an object
 *	  (4 KiB).  f->buf_cond waits on it for a buffer or for writes in
 *	  progress, f->win_cond for a read window (or read-ahead idle),
 *	  f->ra_cond (the read-ahead thread) for a window asked for.
 * Cumulative counters (f->ctr) are relaxed atomics, approximate while
 * I/O runs.  zb_open()/zb_close() are not concurrent with anything.
 *
 * Segments
 * --------
 * The file is an array of ZB_SEG_SIZE segments; an object lies wholly in
 * one, at any byte offset (no alignment: packing is the point).  256 KiB
 * because: one pwrite of it runs at the device's streaming speed (a
 * request queue's largest I/O is typically 128 KiB..1 MiB); the unused
 * tail a segment is closed with averages half an object, 0.5% at the
 * 2.5 KiB a compressed swap page averages; ZB_NBUF buffers of it are
 * 4 MiB of locked memory; it holds about 100 such objects, so under
 * churn a segment empties (and is reused whole) far sooner than a 1 MiB
 * one would, and a future compaction rewrites at most 256 KiB to win
 * one back; and the table costs 28 bytes per 256 KiB of cap (112 KiB per
 * GiB, address space touched only as the file grows).
 *
 * A segment is, in f->segs[i].state:
 *	HOLE	   no blocks (never allocated, or punched); below f->hwm it
 *		   is on the hole list
 *	READY	   allocated, free: on the ready list, the reserve
 *	BUSY	   being allocated or punched by a thread without the lock
 *	FILLING	   the open segment, in a buffer, taking objects
 *	FLUSHING   closed: waiting on the write queue, or its buffer
 *		   being written by one thread
 *	DISK	   written; objects are read from the file
 *	HELD	   its write failed: its objects stay in its buffer, read
 *		   from there, so that nothing written back is lost; the
 *		   buffer goes when the last object does, and the segment
 *		   becomes BAD
 *	BAD	   retired for good, its write having failed (never reused:
 *		   the error may repeat)
 * A segment in FILLING, FLUSHING, DISK, HELD or BAD is "used" (f->nused).
 * Buffers held by failed segments are not there for new segments: when
 * the open segment and those hold every buffer, zb_write() fails with
 * -EIO (the caller keeps its page in RAM) instead of waiting.
 * What the file takes is (nused + nready) segments (plus BUSY ones in
 * transit): the reserve is the only allocated space that holds nothing.
 *
 * Life: HOLE -> (zb_refill, or zb_write finding no reserve: fallocate)
 * -> READY -> FILLING -> FLUSHING -> DISK; when its last object is freed
 * it goes back to READY with its blocks (no I/O in zb_free()), and
 * zb_refill() punches the READY segments past ZB_RESERVE_SEGS that no
 * write needed for a whole period (ZB_AGE_MS) back to HOLE: swap frees
 * and refills segments in waves, and punching each one only to
 * fallocate it again moments later costs two system calls per segment,
 * each of which, on ext4, excludes direct I/O on the file while it runs.  A new segment is always taken from the reserve, and the reserve
 * is refilled from holes before the file is extended (f->hwm), so the
 * file grows only while the objects it holds need more segments.  A
 * segment emptied while FILLING is simply rewound; one whose objects are
 * all freed before it is written is not written at all.
 *
 * Writes
 * ------
 * Objects are appended, under the lock, into the buffer of the FILLING
 * segment.  The zb_write() that finds it full takes a free buffer and a
 * READY segment, makes them the open segment, stores its own object
 * there, and puts the old segment on the write queue; it writes nothing
 * itself, so that a page written back (a spill, on the path of a swap
 * write) costs a copy and not a 256 KiB write.  zb_write_queued(), on a
 * background thread, writes the queue: one pwritev per run of up to
 * ZB_WRITE_RUN queued segments that lie together in the file (1 MiB, a
 * large request of a disk's queue), of their filled bytes rounded up to
 * ZB_ALIGN, at an aligned offset, into blocks allocated ahead.  Readers of a queued segment copy from its buffer
 * until the write is done.  With ZB_NBUF buffers, that many segments can
 * wait or be written at once; a zb_write() that finds none free writes
 * the oldest queued segment itself (so the file makes progress without
 * the background thread), or waits for a write in progress
 * (f->buf_cond).
 *
 * Space is allocated ahead, segment by segment, with fallocate(2), so a
 * segment write allocates no file-system blocks on the path that frees
 * RAM, and a full file system shows up as -ENOSPC from fallocate, where
 * nothing has been stored yet, never as a failed write of objects
 * already accepted.  Where fallocate(2) is missing (EOPNOTSUPP) the
 * segment is written with zeros instead, which allocates its blocks just
 * the same; where punching is missing, free segments keep their blocks
 * and are only reused.  A block device needs no allocation (its
 * segments are always there); its free segments are discarded
 * (BLKDISCARD) where punching would punch, so that an SSD, a thin volume
 * or a loop device gets their blocks back, unless it has no discard.
 *
 * Reads
 * -----
 * Under the lock, the location is checked against the table (segment
 * in use, within its filled bytes) and, if the segment is still in a
 * buffer, the object is copied out.  Otherwise it comes from one of the
 * file's read windows (struct zb_win): ZB_NWIN aligned buffers shared by
 * all readers, each holding a range of one segment tagged with the
 * segment's generation (bumped each time the segment is opened, so a
 * window on a reused segment never matches).  On a miss the least
 * recently used window is claimed (marked reading), the lock dropped,
 * and the window filled with one read of the aligned blocks from the
 * object through the caller's read-ahead guess, or a whole window when
 * the object starts where a window of its segment ends (a sequential
 * reader), within the segment's filled bytes.  Pages written back
 * together lie together in a segment, and swap reads them back in
 * order, a few neighbours at a time (the kernel's swap read-ahead), from
 * whichever thread takes the request: shared windows let one read serve
 * several requests.  What a window read stays valid: the segment cannot
 * be reopened while the object asked for (which the caller keeps alive)
 * lies in it.  Objects are copied out of a window under the lock (at
 * most ZB_MAX_OBJ bytes), so a window is never refilled under a reader.
 *
 * Read-ahead.  A swap reader in order (the hog's verify pass) still
 * waited for the disk at each new window: one synchronous read every
 * 40 pages or so.  So a reader that reads a whole window (sequential,
 * above), or first uses a window read ahead, asks the file's read-ahead
 * thread (zb_ra_main()) for the window after it: the rest of the
 * segment, from the block before the window's end (an object may
 * straddle it), or, past the segment's end, the start of the segment
 * sealed right after it (struct zb_seg.after: the store writes pages
 * back in the order of its table, so that is where such a reader goes
 * on), and for the one after that (ZB_RA_DEPTH).  The reader thus
 * finds the next windows read while it is served, and waits for the
 * disk where its order breaks.  The thread claims its window like a
 * reader, and tags it with the segment and range before the read, so a
 * reader of that range waits for the read instead of doing its own
 * (zb_win_pending_locked()); its generation makes a segment reused
 * meanwhile never match.  A thread of its own, not the store's: the
 * maintainer runs zstd and segment writes of a millisecond or more, and
 * the store's helper threads exist only with threads > 1 and compress.
 * Random readers ask nothing of it.
 *
 * Compaction.  A segment is reused only once all its objects are freed.
 * Swap-like churn, where objects die roughly in the order they were
 * written, keeps the file at the live bytes (test_churn_fifo), but
 * random churn does not: in test_churn_random (3000 live objects of
 * 1000..3500 bytes, each replaced 40 times at random) the file settles
 * at 5.6 times the live bytes without compaction.  Only the caller knows
 * who holds a loc, so compaction is split: zb_compact_pick() marks the
 * sparsest written segments (evac), and the caller finds the holders of
 * their objects (the store sweeps its page table), moves each with
 * zb_relocate() (a read through the windows and an append to the open
 * segment, like any object's), swaps the new loc in and frees the old;
 * a segment is free once its last object has gone.  A mark is only a
 * filter: the check that the object is still the holder's is the
 * caller's, under its own lock, and a segment freed and reopened meanwhile
 * has lost its mark.  Segments over half live are never picked, so a
 * pass rewrites at most half a segment for each it frees.
 *
 * TODO: the reserve size and segment size are constants; a file system that
 * allocates on overwrite (btrfs with CoW, ZFS) can still fail a segment
 * write with ENOSPC (its objects then stay in RAM, in the buffer); a
 * failed segment is never written again; a stale loc of a reused
 * segment is not detected (no generation number in the loc); a local
 * file system is not checked for (NFS is accepted).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store/zb_file.h"

#define ZB_NONE UINT32_MAX		/* end of a list; no segment */
/* Queued segments that follow one another in the file go in one write of
 * up to this many: 1 MiB, one request of the disk's queue here. */
#define ZB_WRITE_RUN 4
#define ZB_MAX_SEGS ((1u << 29) - 2)	/* loc keeps index + 1 in 29 bits */
/* Windows asked of read-ahead and not yet taken: a few readers in order
 * at once; past that, asks are dropped. */
#define ZB_RA_QUEUE 8

#define ZB_LOC_LEN_BITS 12
#define ZB_LOC_OFF_BITS ZB_SEG_SHIFT
#define ZB_LOC_RSVD_MASK (((1ULL << 32) - 1) & \
			  ~((1ULL << (ZB_LOC_LEN_BITS + ZB_LOC_OFF_BITS)) - 1))

_Static_assert(ZB_LOC_LEN_BITS + ZB_LOC_OFF_BITS <= 32, "loc layout");
_Static_assert(ZB_MAX_OBJ == 1 << ZB_LOC_LEN_BITS, "loc length field");
_Static_assert(ZB_SEG_SIZE % ZB_ALIGN == 0, "segments are aligned");

enum zb_state {
	ZB_HOLE = 0,			/* zeroed table = holes */
	ZB_READY,
	ZB_BUSY,
	ZB_FILLING,
	ZB_FLUSHING,
	ZB_DISK,
	ZB_HELD,
	ZB_BAD,
};

/* zb_seg.evac: compaction's mark. */
enum {
	ZB_EVAC_NO = 0,
	ZB_EVAC_YES,		/* picked: zb_relocate() moves its
				 * objects */
	ZB_EVAC_NEVER,		/* a read for compaction failed: not
				 * picked again while it holds objects */
};

/* One segment.  Every field is guarded by f->lock. */
struct zb_seg {
	uint32_t live_bytes;		/* bytes of live objects */
	uint32_t live_objs;		/* live objects */
	uint32_t fill;			/* bytes appended since it was opened */
	uint32_t next;			/* ready or hole list link */
	uint8_t state;			/* enum zb_state */
	uint8_t buf;			/* its buffer, in FILLING / FLUSHING */
	uint8_t sparse;			/* counted in nsparse / sparse_waste */
	uint8_t evac;			/* DISK: ZB_EVAC_* */
	uint32_t gen;			/* bumped each time it is opened:
					 * windows (zb_win) check it */
	uint32_t after;			/* the segment sealed next (where
					 * read-ahead guesses a reader in
					 * order goes on), or ZB_NONE */
};
_Static_assert(sizeof(struct zb_seg) == 28, "the table's cost is documented");

/* A segment buffer: ZB_SEG_SIZE bytes, aligned, allocated at open. */
struct zb_buf {
	unsigned char *data;		/* contents: see below */
	bool busy;			/* [lock] a segment owns it */
};
/*
 * data[] belongs to its segment: while FILLING, bytes [0, fill) are
 * written under f->lock; while FLUSHING, nobody writes it and the
 * flushing thread reads it without the lock.  A buffer is given back
 * (busy = false) under the lock after the write returned.
 */

/*
 * A read window: bytes [start, end) of segment seg - 1 as they were at
 * generation gen (seg 0: holds nothing).  Fields [lock]; data[] is
 * written only by the thread that set reading, without the lock, and
 * copied from under the lock.
 */
struct zb_win {
	unsigned char *data;		/* ZB_WIN_SIZE, aligned */
	uint32_t seg, gen, start, end;
	uint64_t used;			/* win_clock at its last use */
	bool reading;			/* a read into it is under way:
					 * a reader's (seg 0), or
					 * read-ahead's (seg, gen, start,
					 * end: the range it will hold) */
	bool ahead;			/* read ahead, not yet used */
};

/*
 * A window read-ahead is asked to read: the one that holds byte @off of
 * segment @seg and the ZB_MAX_OBJ bytes before it (an object that began
 * in the window before and ends past it), and runs on from there.
 */
struct zb_ra {
	uint32_t seg, off;
};

struct zb_counters {			/* relaxed atomics, cumulative */
	_Atomic uint64_t reads, writes, failed_reads, failed_writes, disk_reads;
	_Atomic uint64_t segs_written, disk_writes, segs_punched, bad_frees;
	_Atomic uint64_t nospace;	/* zb_write() refused: -ENOSPC */
	_Atomic uint64_t ra_reads, ra_used;	/* windows read ahead, and
						 * of those used */
	_Atomic uint64_t relocated;	/* objects moved by zb_relocate() */
};

struct zb_file {
	int fd;
	char *path;			/* as given to zb_open() */
	bool direct;			/* O_DIRECT is set on fd */
	bool blockdev;
	_Atomic bool no_falloc;		/* fallocate(2) said EOPNOTSUPP */
	_Atomic bool no_punch;		/* punching said EOPNOTSUPP */
	uint32_t seg_max;		/* segments the cap allows */

	pthread_mutex_t lock;		/* guards what is marked [lock] */
	pthread_cond_t buf_cond;	/* [lock] a buffer freed, a write done */

	struct zb_seg *segs;		/* [lock] seg_max entries, mmap'ed */
	size_t segs_bytes;
	uint32_t hwm;			/* [lock] segments ever claimed */
	uint32_t ready, nready;		/* [lock] reserve list */
	uint32_t holes, nholes;		/* [lock] punched segments < hwm */
	uint32_t open;			/* [lock] the FILLING segment */
	uint32_t nused;			/* [lock] FILLING..BAD segments */
	uint32_t nflushing;		/* [lock] FLUSHING: queued or being
					 * written */
	uint32_t queue, queue_tail;	/* [lock] FLUSHING segments no one
					 * writes yet, oldest first, linked
					 * by next */
	uint32_t nqueued;		/* [lock] their number */
	uint32_t nbad;			/* [lock] HELD and BAD segments */
	uint32_t nheld;			/* [lock] HELD: buffers they keep */
	uint32_t nsparse;		/* [lock] DISK, under half live */
	uint32_t nevac;			/* [lock] segments ZB_EVAC_YES */
	uint32_t ready_low;		/* [lock] the fewest in the reserve
					 * since age_ms */
	uint32_t age_ms;		/* [lock] zb_now_ms() when the
					 * current period began */
	bool full;			/* [lock] a zb_write() was refused
					 * -ENOSPC and no segment has been
					 * freed or allocated since */
	uint64_t sparse_waste;		/* [lock] their bytes not live */
	uint64_t objs, bytes;		/* [lock] live objects, their bytes */

	struct zb_buf bufs[ZB_NBUF];
	struct zb_win wins[ZB_NWIN];
	uint64_t win_clock;		/* [lock] stamps windows' use */
	pthread_cond_t win_cond;	/* [lock] a window's read is done */
	uint32_t last_sealed;		/* [lock] segment sealed last */

	/* Read-ahead: the thread and its queue of windows to read. */
	pthread_t ra_thread;
	pthread_cond_t ra_cond;		/* [lock] queued, or stop */
	struct zb_ra ra_q[ZB_RA_QUEUE];	/* [lock] ring, ra_head first */
	unsigned ra_head, ra_n;		/* [lock] */
	bool ra_busy;			/* [lock] the thread has taken an
					 * ask and not yet gone idle */
	bool ra_stop;			/* [lock] zb_close() */
	struct zb_counters ctr;
};

#define CTR_INC(f, name) \
	atomic_fetch_add_explicit(&(f)->ctr.name, 1, memory_order_relaxed)
#define CTR_GET(f, name) \
	atomic_load_explicit(&(f)->ctr.name, memory_order_relaxed)

static uint64_t zb_seg_off(uint32_t idx)
{
	return (uint64_t)idx << ZB_SEG_SHIFT;
}

static uint64_t zb_roundup(uint64_t n)
{
	return (n + ZB_ALIGN - 1) & ~(uint64_t)(ZB_ALIGN - 1);
}

/* ---- Lists and counters (all _locked: f->lock held) ------------------- */

static void zb_push_locked(struct zb_file *f, uint32_t idx, enum zb_state st)
{
	struct zb_seg *s = &f->segs[idx];

	s->state = st;
	if (st == ZB_READY) {
		f->full = false;	/* room again for the next segment */
		s->next = f->ready;
		f->ready = idx;
		f->nready++;
	} else {
		assert(st == ZB_HOLE);
		s->next = f->holes;
		f->holes = idx;
		f->nholes++;
	}
}

/* Pop the reserve's first segment, BUSY; ZB_NONE if empty. */
static uint32_t zb_pop_ready_locked(struct zb_file *f)
{
	uint32_t idx = f->ready;

	if (idx == ZB_NONE)
		return ZB_NONE;
	f->ready = f->segs[idx].next;
	f->nready--;
	if (f->nready < f->ready_low)
		f->ready_low = f->nready;
	f->segs[idx].state = ZB_BUSY;
	return idx;
}

/* A segment without blocks, BUSY: a hole, else a new one past hwm. */
static uint32_t zb_claim_hole_locked(struct zb_file *f)
{
	uint32_t idx = f->holes;

	if (idx != ZB_NONE) {
		f->holes = f->segs[idx].next;
		f->nholes--;
	} else if (f->hwm < f->seg_max) {
		idx = f->hwm++;
	} else {
		return ZB_NONE;
	}
	f->segs[idx].state = ZB_BUSY;
	return idx;
}

/*
 * Segment @s is counted sparse when written, under half live and not
 * one compaction failed to read: what a compaction would rewrite,
 * winning back ZB_SEG_SIZE - live_bytes (its dead bytes and the tail it
 * was closed with).  Call _del before changing s, _add after.
 */
static void zb_sparse_del_locked(struct zb_file *f, struct zb_seg *s)
{
	if (!s->sparse)
		return;
	s->sparse = 0;
	f->nsparse--;
	f->sparse_waste -= ZB_SEG_SIZE - s->live_bytes;
}

static void zb_sparse_add_locked(struct zb_file *f, struct zb_seg *s)
{
	if (s->state != ZB_DISK || !s->live_objs ||
	    s->live_bytes >= ZB_SEG_SIZE / 2 || s->evac == ZB_EVAC_NEVER)
		return;
	s->sparse = 1;
	f->nsparse++;
	f->sparse_waste += ZB_SEG_SIZE - s->live_bytes;
}

/* ---- Space: allocate and punch (no lock) ------------------------------- */

static int zb_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* zb_writev_all - pwritev(2) of @n buffers at @off, to the end (the
 * iovecs are consumed).  0 or -errno. */
static int zb_writev_all(int fd, struct iovec *iov, unsigned n, uint64_t off)
{
	ssize_t w;

	while (n) {
		w = pwritev(fd, iov, (int)n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Where fallocate(2) is missing: write the segment with zeros. */
static int zb_zero_seg(struct zb_file *f, uint32_t idx)
{
	static const unsigned char zero[ZB_ALIGN] __attribute__((aligned(ZB_ALIGN)));
	uint64_t off = zb_seg_off(idx);
	unsigned i;
	int r;

	for (i = 0; i < ZB_SEG_SIZE / ZB_ALIGN; i++) {
		r = zb_write_all(f->fd, zero, ZB_ALIGN, off + (uint64_t)i * ZB_ALIGN);
		if (r)
			return r;
	}
	return 0;
}

/* Give segment @idx its blocks.  0 or -errno (-ENOSPC for EDQUOT too). */
static int zb_alloc_seg(struct zb_file *f, uint32_t idx)
{
	int r = 0;

	if (f->blockdev)
		return 0;
	if (!atomic_load_explicit(&f->no_falloc, memory_order_relaxed)) {
		if (!fallocate(f->fd, 0, (off_t)zb_seg_off(idx), ZB_SEG_SIZE))
			return 0;
		r = -errno;
		if (r == -EOPNOTSUPP)
			atomic_store_explicit(&f->no_falloc, true,
					      memory_order_relaxed);
	}
	if (atomic_load_explicit(&f->no_falloc, memory_order_relaxed))
		r = zb_zero_seg(f, idx);
	return r == -EDQUOT ? -ENOSPC : r;
}

/*
 * Free segment @idx's blocks: punch a hole in a file, discard a block
 * device's range (an SSD's blocks, a thin or loop device's space).  0 or
 * -errno (kept: -EOPNOTSUPP, and then never tried again).
 */
static int zb_punch_seg(struct zb_file *f, uint32_t idx)
{
	uint64_t range[2] = { zb_seg_off(idx), ZB_SEG_SIZE };
	int e;

	if (f->blockdev)
		e = ioctl(f->fd, BLKDISCARD, range);
	else
		e = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)range[0], ZB_SEG_SIZE);
	if (e) {
		int r = -errno;

		if (r == -EOPNOTSUPP)
			atomic_store_explicit(&f->no_punch, true,
					      memory_order_relaxed);
		return r;
	}
	CTR_INC(f, segs_punched);
	return 0;
}

/*
 * Add one allocated segment to the reserve.  Drops f->lock around the
 * allocation.  Returns 0, -ENOSPC (cap reached, file system full) or
 * another -errno.
 */
static int zb_add_ready_locked(struct zb_file *f)
{
	uint32_t idx = zb_claim_hole_locked(f);
	int r;

	if (idx == ZB_NONE)
		return -ENOSPC;
	pthread_mutex_unlock(&f->lock);
	r = zb_alloc_seg(f, idx);
	pthread_mutex_lock(&f->lock);
	zb_push_locked(f, idx, r ? ZB_HOLE : ZB_READY);
	return r;
}

/* ---- Segment writes ---------------------------------------------------- */

/*
 * Write segment @idx's buffer: its filled bytes rounded up to ZB_ALIGN.
 * Without the lock (the segment is FLUSHING: nobody writes the buffer).
 * Through the page cache, the range is written back and dropped at once.
 */
static int zb_write_seg(struct zb_file *f, uint32_t idx, struct iovec *iov,
			unsigned n)
{
	uint64_t off = zb_seg_off(idx), len = 0;
	unsigned i;
	int r = 0;

	for (i = 0; i < n; i++)
		len += iov[i].iov_len;
	CTR_INC(f, disk_writes);
	r = zb_writev_all(f->fd, iov, n, off);
	if (r || f->direct)
		return r;
	if (sync_file_range(f->fd, (off_t)off, (off_t)len,
			    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			    SYNC_FILE_RANGE_WAIT_AFTER))
		return -errno;
	/* Ignored where the page cache is the storage (ramfs, tmpfs: no
	 * backing device), so it never drops data that is nowhere else. */
	posix_fadvise(f->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

/*
 * Close FILLING segment @idx (no longer f->open).  Returns true if it
 * must now be written: it is FLUSHING, its buffer's tail up to ZB_ALIGN
 * zeroed, and at the end of the write queue; false if it held nothing
 * and went back to the reserve.
 */
static bool zb_seal_locked(struct zb_file *f, uint32_t idx)
{
	struct zb_seg *s = &f->segs[idx];
	struct zb_buf *b = &f->bufs[s->buf];

	assert(s->state == ZB_FILLING);
	if (!s->live_objs) {
		b->busy = false;
		pthread_cond_broadcast(&f->buf_cond);
		f->nused--;
		zb_push_locked(f, idx, ZB_READY);
		return false;
	}
	memset(b->data + s->fill, 0, zb_roundup(s->fill) - s->fill);
	if (f->last_sealed != ZB_NONE)
		f->segs[f->last_sealed].after = idx;
	f->last_sealed = idx;
	s->after = ZB_NONE;
	s->state = ZB_FLUSHING;
	f->nflushing++;
	s->next = ZB_NONE;
	if (f->nqueued++)
		f->segs[f->queue_tail].next = idx;
	else
		f->queue = idx;
	f->queue_tail = idx;
	return true;
}

static int zb_written_locked(struct zb_file *f, uint32_t idx, int r);

/*
 * zb_flush_segs_locked - write the @n sealed segments of @run, which lie
 * one after another in the file and all but the last full (so their
 * buffers make one write), and record each outcome.  Drops the lock.
 * Returns 0, or -EIO if the write failed.
 */
static int zb_flush_segs_locked(struct zb_file *f, const uint32_t *run,
				unsigned n)
{
	struct iovec iov[ZB_WRITE_RUN];
	unsigned i;
	int r, ret = 0;

	for (i = 0; i < n; i++) {
		/* fill is frozen while FLUSHING */
		iov[i].iov_base = f->bufs[f->segs[run[i]].buf].data;
		iov[i].iov_len = zb_roundup(f->segs[run[i]].fill);
	}
	pthread_mutex_unlock(&f->lock);
	r = zb_write_seg(f, run[0], iov, n);
	pthread_mutex_lock(&f->lock);
	for (i = 0; i < n; i++)
		if (zb_written_locked(f, run[i], r))
			ret = -EIO;
	return ret;
}

/* Write sealed segment @idx and record the outcome.  Drops the lock. */
static int zb_flush_seg_locked(struct zb_file *f, uint32_t idx)
{
	return zb_flush_segs_locked(f, &idx, 1);
}

/*
 * zb_written_locked - record the outcome @r (0 or -errno) of sealed
 * segment @idx's write.  Returns 0, or -EIO if it failed.
 */
static int zb_written_locked(struct zb_file *f, uint32_t idx, int r)
{
	struct zb_seg *s = &f->segs[idx];
	struct zb_buf *b = &f->bufs[s->buf];

	f->nflushing--;
	if (r) {
		/* Its objects stay readable from the buffer: see HELD. */
		CTR_INC(f, failed_writes);
		f->nbad++;
		if (s->live_objs) {
			s->state = ZB_HELD;
			f->nheld++;
		} else {
			s->state = ZB_BAD;
			b->busy = false;
		}
		pthread_cond_broadcast(&f->buf_cond);
		return -EIO;
	}
	b->busy = false;
	pthread_cond_broadcast(&f->buf_cond);
	CTR_INC(f, segs_written);
	if (!s->live_objs) {		/* all freed during the write */
		f->nused--;
		zb_push_locked(f, idx, ZB_READY);
		return 0;
	}
	s->state = ZB_DISK;
	zb_sparse_add_locked(f, s);
	return 0;
}

/*
 * zb_write_next_locked - take the oldest queued segment off the queue and
 * write it, together with those queued right after it that extend it to
 * a range of the file (either way), up to ZB_WRITE_RUN
 * (zb_flush_segs_locked()).  Drops the lock.
 * Returns 0, -EIO if the write failed, or -ENOENT if none is queued.
 */
static int zb_write_next_locked(struct zb_file *f)
{
	uint32_t lo, hi, next, run[ZB_WRITE_RUN];
	unsigned n, i;

	if (!f->nqueued)
		return -ENOENT;
	lo = hi = f->queue;
	for (n = 1;; n++) {
		f->queue = f->segs[f->queue].next;
		f->nqueued--;
		if (n == ZB_WRITE_RUN || !f->nqueued)
			break;
		/* The reserve is a stack, so segments are taken in either
		 * order; all but the last in the file must be full. */
		next = f->queue;
		if (next == hi + 1 && f->segs[hi].fill == ZB_SEG_SIZE)
			hi = next;
		else if (next + 1 == lo && f->segs[next].fill == ZB_SEG_SIZE)
			lo = next;
		else
			break;
	}
	for (i = 0; i < n; i++)
		run[i] = lo + i;
	return zb_flush_segs_locked(f, run, n);
}

/*
 * zb_retry_held_locked - write a HELD segment again, its error may have
 * passed: written, it is DISK and its buffer free; failed, it is HELD
 * again.  Drops the lock.  Returns 0, or -EIO (none held, or it failed).
 */
static int zb_retry_held_locked(struct zb_file *f)
{
	uint32_t i;

	for (i = 0; i < f->hwm && f->segs[i].state != ZB_HELD; i++)
		;
	if (i == f->hwm)
		return -EIO;
	f->segs[i].state = ZB_FLUSHING;
	f->nheld--;
	f->nbad--;
	f->nflushing++;
	return zb_flush_seg_locked(f, i);
}

/* A free buffer's index, or -1. */
static int zb_free_buf_locked(struct zb_file *f)
{
	int i;

	for (i = 0; i < ZB_NBUF; i++)
		if (!f->bufs[i].busy)
			return i;
	return -1;
}

/* ---- The interface ----------------------------------------------------- */

/* Append @len bytes of @obj to the open segment, which has room. */
static uint64_t zb_append_locked(struct zb_file *f, const void *obj,
				 size_t len)
{
	struct zb_seg *s = &f->segs[f->open];
	uint64_t loc = ((uint64_t)f->open + 1) << 32 |
		       (uint64_t)s->fill << ZB_LOC_LEN_BITS | (len - 1);

	assert(s->state == ZB_FILLING && s->fill + len <= ZB_SEG_SIZE);
	memcpy(f->bufs[s->buf].data + s->fill, obj, len);
	s->fill += (uint32_t)len;
	s->live_bytes += (uint32_t)len;
	s->live_objs++;
	f->objs++;
	f->bytes += len;
	CTR_INC(f, writes);
	return loc;
}

int zb_write(struct zb_file *f, const void *obj, size_t len, uint64_t *loc)
{
	uint32_t idx, old;
	struct zb_seg *s;
	bool retried = false;
	int b, r;

	if (len < 1 || len > ZB_MAX_OBJ)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	while (f->open == ZB_NONE || f->segs[f->open].fill + len > ZB_SEG_SIZE) {
		/* A new segment: a buffer first, then a READY segment. */
		b = zb_free_buf_locked(f);
		if (b < 0 && f->nqueued) {
			/* The writer is behind: write the oldest here. */
			zb_write_next_locked(f);	/* failure: counted */
			continue;
		}
		if (b < 0 && !f->nflushing) {
			/* No write under way will free one: failed writes
			 * keep the others.  Try one of those once more, else
			 * store nothing. */
			if (!retried && f->nheld) {
				retried = true;
				zb_retry_held_locked(f);
				continue;
			}
			pthread_mutex_unlock(&f->lock);
			return -EIO;
		}
		if (b < 0) {
			pthread_cond_wait(&f->buf_cond, &f->lock);
			continue;
		}
		if (!f->nready) {
			r = zb_add_ready_locked(f);	/* drops the lock */
			if (r) {
				/* The summary tells that writeback stopped
				 * for want of room, and how often. */
				if (r == -ENOSPC) {
					f->full = true;
					CTR_INC(f, nospace);
				}
				pthread_mutex_unlock(&f->lock);
				return r;
			}
			continue;
		}
		idx = zb_pop_ready_locked(f);
		s = &f->segs[idx];
		s->state = ZB_FILLING;
		s->gen++;			/* windows on it are stale */
		s->buf = (uint8_t)b;
		s->fill = s->live_bytes = s->live_objs = 0;
		f->bufs[b].busy = true;
		f->nused++;
		old = f->open;
		f->open = idx;
		*loc = zb_append_locked(f, obj, len);
		r = old != ZB_NONE && zb_seal_locked(f, old);
		pthread_mutex_unlock(&f->lock);
		return r;
	}
	*loc = zb_append_locked(f, obj, len);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/*
 * Decode @loc into segment, offset and length and check it against the
 * table: a segment holding objects, the object within its filled bytes.
 * Returns the segment or NULL.
 */
static struct zb_seg *zb_loc_locked(struct zb_file *f, uint64_t loc,
				    uint32_t *idx, uint32_t *off, uint32_t *len)
{
	uint64_t seg1 = loc >> 32;
	struct zb_seg *s;

	*len = (uint32_t)(loc & ((1u << ZB_LOC_LEN_BITS) - 1)) + 1;
	*off = (uint32_t)(loc >> ZB_LOC_LEN_BITS) & ((1u << ZB_LOC_OFF_BITS) - 1);
	if (!seg1 || seg1 > f->hwm || (loc & ZB_LOC_RSVD_MASK))
		return NULL;
	*idx = (uint32_t)(seg1 - 1);
	s = &f->segs[*idx];
	if (s->state < ZB_FILLING || !s->live_objs ||
	    (uint64_t)*off + *len > s->fill)
		return NULL;
	return s;
}

/*
 * zb_win_find_locked - the window holding [@off, @off+@len) of segment
 * @idx at its current generation, or NULL.  With @len 0: one that ends
 * where @off begins, or within an alignment block before (a sequential
 * reader's last window).
 */
static struct zb_win *zb_win_find_locked(struct zb_file *f, uint32_t idx,
					 uint32_t off, size_t len)
{
	uint32_t gen = f->segs[idx].gen;
	struct zb_win *w;

	for (w = f->wins; w < f->wins + ZB_NWIN; w++) {
		if (w->reading || w->seg != idx + 1 || w->gen != gen)
			continue;
		if (len ? off >= w->start && (uint64_t)off + len <= w->end :
			  off >= w->start && off <= w->end + ZB_ALIGN)
			return w;
	}
	return NULL;
}

/* zb_win_claim_locked - the least recently used window not being read
 * into, marked reading; waits for one if all are.  Drops the lock while
 * it waits. */
static struct zb_win *zb_win_claim_locked(struct zb_file *f)
{
	struct zb_win *w, *lru;

	for (;;) {
		lru = NULL;
		for (w = f->wins; w < f->wins + ZB_NWIN; w++)
			if (!w->reading && (!lru || w->used < lru->used))
				lru = w;
		if (lru)
			break;
		pthread_cond_wait(&f->win_cond, &f->lock);
	}
	lru->reading = true;
	lru->ahead = false;
	lru->seg = 0;
	return lru;
}

/*
 * zb_win_pending_locked - a window read-ahead is reading [@off,
 * @off+@len) of segment @idx into, at its current generation, or NULL.
 */
static struct zb_win *zb_win_pending_locked(struct zb_file *f, uint32_t idx,
					    uint32_t off, size_t len)
{
	uint32_t gen = f->segs[idx].gen;
	struct zb_win *w;

	for (w = f->wins; w < f->wins + ZB_NWIN; w++)
		if (w->reading && w->seg == idx + 1 && w->gen == gen &&
		    off >= w->start && (uint64_t)off + len <= w->end)
			return w;
	return NULL;
}

/* The range [*@start, *@end) of segment @ra->seg that @ra reads. */
static void zb_ra_range_locked(struct zb_file *f, const struct zb_ra *ra,
			       uint64_t *start, uint64_t *end)
{
	uint32_t fill = f->segs[ra->seg].fill;

	*start = ra->off > ZB_MAX_OBJ ? ra->off - ZB_MAX_OBJ : 0;
	if (f->direct)
		*start &= ~(uint64_t)(ZB_ALIGN - 1);
	*end = *start + ZB_WIN_SIZE;
	if (*end > fill)
		*end = fill;
	if (f->direct)
		*end = zb_roundup(*end);
}

/*
 * zb_ra_ask_locked - a reader in order has reached window @w: ask
 * read-ahead for the ZB_RA_DEPTH windows after it, each the rest of its
 * segment or else the start of the segment sealed after it.  An ask
 * already queued is not queued again; with the queue full, it is
 * dropped.
 */
static void zb_ra_ask_locked(struct zb_file *f, const struct zb_win *w)
{
	struct zb_ra ra = { w->seg - 1, 0 };
	uint64_t start, end = w->end;
	unsigned d, i;

	for (d = 0; d < ZB_RA_DEPTH; d++) {
		if (end >= f->segs[ra.seg].fill) {
			ra.seg = f->segs[ra.seg].after;
			if (ra.seg == ZB_NONE)
				return;
			ra.off = 0;
		} else {
			ra.off = (uint32_t)end;
		}
		for (i = 0; i < f->ra_n; i++) {
			const struct zb_ra *q =
				&f->ra_q[(f->ra_head + i) % ZB_RA_QUEUE];

			if (q->seg == ra.seg && q->off == ra.off)
				break;
		}
		if (i == f->ra_n) {
			if (f->ra_n == ZB_RA_QUEUE)
				return;
			f->ra_q[(f->ra_head + f->ra_n++) % ZB_RA_QUEUE] = ra;
			pthread_cond_signal(&f->ra_cond);
		}
		zb_ra_range_locked(f, &ra, &start, &end);
	}
}

/* Is @ra still worth reading: on disk, within its bytes, in no window? */
static bool zb_ra_wanted_locked(struct zb_file *f, const struct zb_ra *ra)
{
	const struct zb_seg *s = &f->segs[ra->seg];	/* < seg_max */

	return ra->seg < f->hwm && s->state == ZB_DISK && ra->off < s->fill &&
	       !zb_win_find_locked(f, ra->seg, ra->off, 1) &&
	       !zb_win_pending_locked(f, ra->seg, ra->off, 1);
}

/*
 * zb_ra_main - the read-ahead thread: reads each window asked for into
 * the least recently used window, unless it is there already or its
 * segment has left the disk meanwhile.  The window is tagged with the
 * segment's generation before the read, so a segment reused during it
 * never matches.  A failed read leaves the window empty: the reader that
 * wants it reads it itself, and sees the error.
 */
static void *zb_ra_main(void *arg)
{
	struct zb_file *f = arg;
	uint64_t start, end;
	struct zb_win *w;
	struct zb_ra ra;
	ssize_t n;

	pthread_setname_np(pthread_self(), "zb-readahead");
	pthread_mutex_lock(&f->lock);
	for (;;) {
		if (!f->ra_n && f->ra_busy) {	/* idle: zb_ra_wait() */
			f->ra_busy = false;
			pthread_cond_broadcast(&f->win_cond);
		}
		while (!f->ra_n && !f->ra_stop)
			pthread_cond_wait(&f->ra_cond, &f->lock);
		if (f->ra_stop)
			break;
		f->ra_busy = true;
		ra = f->ra_q[f->ra_head];
		f->ra_head = (f->ra_head + 1) % ZB_RA_QUEUE;
		f->ra_n--;
		if (!zb_ra_wanted_locked(f, &ra))
			continue;
		w = zb_win_claim_locked(f);
		if (!zb_ra_wanted_locked(f, &ra)) {
			w->reading = false;
			pthread_cond_broadcast(&f->win_cond);
			continue;
		}
		zb_ra_range_locked(f, &ra, &start, &end);
		w->seg = ra.seg + 1;
		w->gen = f->segs[ra.seg].gen;
		w->start = (uint32_t)start;
		w->end = (uint32_t)end;
		pthread_mutex_unlock(&f->lock);
		do
			n = pread(f->fd, w->data, (size_t)(end - start),
				  (off_t)(zb_seg_off(ra.seg) + start));
		while (n < 0 && errno == EINTR);
		pthread_mutex_lock(&f->lock);
		w->reading = false;
		pthread_cond_broadcast(&f->win_cond);
		if (n <= 0) {
			w->seg = 0;
			continue;
		}
		w->end = (uint32_t)(start + (uint64_t)n);
		w->used = ++f->win_clock;
		w->ahead = true;
		CTR_INC(f, ra_reads);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int zb_read(struct zb_file *f, uint64_t loc, void *dst, size_t len,
	    size_t ahead)
{
	uint32_t idx, off, olen, gen;
	uint64_t start, end, lim;
	struct zb_seg *s;
	struct zb_win *w;
	bool seq;
	ssize_t n;
	int r = -EINVAL;

	pthread_mutex_lock(&f->lock);
again:
	s = zb_loc_locked(f, loc, &idx, &off, &olen);
	if (!s || olen != len)
		goto out_unlock;
	if (s->state == ZB_FILLING || s->state == ZB_FLUSHING ||
	    s->state == ZB_HELD) {
		memcpy(dst, f->bufs[s->buf].data + off, len);
		goto out_copied;
	}
	r = -EIO;
	if (s->state == ZB_BAD)
		goto out_unlock;
	/*
	 * DISK.  A window matches only if it was read from this incarnation
	 * of the segment: a segment is rewritten only after it is reopened,
	 * which bumps gen, and it cannot be reopened while an object the
	 * caller keeps alive is in it.
	 */
	w = zb_win_find_locked(f, idx, off, len);
	if (w) {
		memcpy(dst, w->data + (off - w->start), len);
		w->used = ++f->win_clock;
		if (w->ahead) {		/* keep ZB_RA_DEPTH ahead */
			w->ahead = false;
			CTR_INC(f, ra_used);
			zb_ra_ask_locked(f, w);
		}
		goto out_copied;
	}
	if (zb_win_pending_locked(f, idx, off, len)) {
		pthread_cond_wait(&f->win_cond, &f->lock);
		goto again;
	}
	seq = zb_win_find_locked(f, idx, off, 0) != NULL;
	if (seq)
		ahead = ZB_WIN_SIZE;		/* sequential: a whole window */
	w = zb_win_claim_locked(f);
	/* While we waited the segment may have changed, or another
	 * reader or read-ahead read the object in: look again. */
	s = zb_loc_locked(f, loc, &idx, &off, &olen);
	if (!s || s->state != ZB_DISK ||
	    zb_win_find_locked(f, idx, off, len) ||
	    zb_win_pending_locked(f, idx, off, len)) {
		w->reading = false;
		pthread_cond_broadcast(&f->win_cond);
		goto again;
	}
	gen = s->gen;
	lim = s->fill;
	pthread_mutex_unlock(&f->lock);

	/* The blocks from the object's through @ahead more, as allowed. */
	start = f->direct ? off & ~(uint64_t)(ZB_ALIGN - 1) : off;
	end = (uint64_t)off + len + ahead;
	if (end > lim)
		end = lim;
	if (end > start + ZB_WIN_SIZE)
		end = start + ZB_WIN_SIZE;
	if (f->direct)
		end = zb_roundup(end);
	do
		n = pread(f->fd, w->data, (size_t)(end - start),
			  (off_t)(zb_seg_off(idx) + start));
	while (n < 0 && errno == EINTR);

	pthread_mutex_lock(&f->lock);
	w->reading = false;
	pthread_cond_broadcast(&f->win_cond);
	if (n < (ssize_t)(off - start + len)) {
		r = -EIO;
		goto out_unlock;
	}
	w->seg = idx + 1;
	w->gen = gen;
	w->start = (uint32_t)start;
	w->end = (uint32_t)(start + (uint64_t)n);
	w->used = ++f->win_clock;
	memcpy(dst, w->data + (off - start), len);
	CTR_INC(f, disk_reads);
	if (seq)
		zb_ra_ask_locked(f, w);
out_copied:
	pthread_mutex_unlock(&f->lock);
	CTR_INC(f, reads);
	return 0;

out_unlock:
	pthread_mutex_unlock(&f->lock);
	CTR_INC(f, failed_reads);
	return r;
}

void zb_free(struct zb_file *f, uint64_t loc)
{
	uint32_t idx, off, len;
	struct zb_seg *s;

	pthread_mutex_lock(&f->lock);
	s = zb_loc_locked(f, loc, &idx, &off, &len);
	if (!s || s->live_bytes < len) {
		pthread_mutex_unlock(&f->lock);
		CTR_INC(f, bad_frees);
		return;
	}
	zb_sparse_del_locked(f, s);
	s->live_bytes -= len;
	s->live_objs--;
	f->objs--;
	f->bytes -= len;
	if (!s->live_objs) {
		if (s->state == ZB_DISK) {	/* blocks kept: the reserve */
			f->nevac -= s->evac == ZB_EVAC_YES;
			s->evac = ZB_EVAC_NO;
			f->nused--;
			zb_push_locked(f, idx, ZB_READY);
		} else if (s->state == ZB_FILLING) {
			s->fill = 0;		/* rewind: nothing to keep */
		} else if (s->state == ZB_HELD) {
			s->state = ZB_BAD;	/* retired; the buffer is free */
			f->nheld--;
			f->bufs[s->buf].busy = false;
			pthread_cond_broadcast(&f->buf_cond);
		}
		/* FLUSHING: done after the write. */
	} else {
		zb_sparse_add_locked(f, s);
	}
	pthread_mutex_unlock(&f->lock);
}

/*
 * Compaction is worth a pass when the sparse segments waste at least
 * ZB_COMPACT_MIN_WASTE and a quarter of what the used segments take:
 * under swap-like churn sparse segments soon empty on their own, and
 * rewriting their last objects would only cost I/O.
 */
#define ZB_COMPACT_MIN_WASTE (16ULL * ZB_SEG_SIZE)

static bool zb_compact_worth_locked(const struct zb_file *f)
{
	return f->sparse_waste >= ZB_COMPACT_MIN_WASTE &&
	       f->sparse_waste * 4 >= (uint64_t)f->nused * ZB_SEG_SIZE;
}

/* Sort @n segment indexes ascending (n is small: insertion). */
static void zb_sort_idx(uint32_t *v, unsigned n)
{
	unsigned i, j;
	uint32_t t;

	for (i = 1; i < n; i++) {
		t = v[i];
		for (j = i; j && v[j - 1] > t; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
}

unsigned zb_compact_pick(struct zb_file *f, uint32_t *segs, unsigned max,
			 bool all)
{
	unsigned n = 0, i, j;
	struct zb_seg *s;
	uint32_t idx;

	pthread_mutex_lock(&f->lock);
	if (!all && !zb_compact_worth_locked(f))
		max = 0;
	if (!max && !f->nevac) {	/* the common case: no scan */
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	/* Unmark all; keep in segs[] the @max sparse segments with the
	 * fewest live bytes, fewest first (an insertion). */
	for (idx = 0; idx < f->hwm; idx++) {
		s = &f->segs[idx];
		if (s->evac == ZB_EVAC_YES)
			s->evac = ZB_EVAC_NO;
		if (!s->sparse || s->evac || !max)
			continue;
		if (n == max &&
		    f->segs[segs[n - 1]].live_bytes <= s->live_bytes)
			continue;
		j = n < max ? n++ : n - 1;
		for (; j && f->segs[segs[j - 1]].live_bytes > s->live_bytes;
		     j--)
			segs[j] = segs[j - 1];
		segs[j] = idx;
	}
	for (i = 0; i < n; i++)
		f->segs[segs[i]].evac = ZB_EVAC_YES;
	f->nevac = n;
	pthread_mutex_unlock(&f->lock);
	zb_sort_idx(segs, n);
	return n;
}

int zb_relocate(struct zb_file *f, uint64_t loc, size_t len, void *buf,
		uint64_t *newloc)
{
	uint32_t idx, off, olen;
	struct zb_seg *s;
	bool marked;
	int r;

	pthread_mutex_lock(&f->lock);
	s = zb_loc_locked(f, loc, &idx, &off, &olen);
	marked = s && olen == len && s->state == ZB_DISK &&
		 s->evac == ZB_EVAC_YES;
	pthread_mutex_unlock(&f->lock);
	if (!marked)
		return 0;
	/* The caller sweeps in the order pages were written back, which
	 * is the file's: a whole window serves the objects after. */
	if (zb_read(f, loc, buf, len, ZB_WIN_SIZE)) {
		/* Counted in failed_reads; the object stays (the segment
		 * is the same: the caller keeps the object alive). */
		pthread_mutex_lock(&f->lock);
		if (s->evac == ZB_EVAC_YES)
			f->nevac--;
		/* Out of the sparse figures too, or its waste alone could
		 * keep a compaction worth it, and the table scanned, for
		 * good. */
		zb_sparse_del_locked(f, s);
		s->evac = ZB_EVAC_NEVER;
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	r = zb_write(f, buf, len, newloc);
	if (r < 0)
		return r;
	CTR_INC(f, relocated);
	return 1;
}

int zb_flush(struct zb_file *f)
{
	uint64_t failed = CTR_GET(f, failed_writes);
	uint32_t idx;

	pthread_mutex_lock(&f->lock);
	idx = f->open;
	if (idx != ZB_NONE && f->segs[idx].live_objs) {
		f->open = ZB_NONE;
		zb_seal_locked(f, idx);
	}
	while (zb_write_next_locked(f) != -ENOENT)
		;				/* failures: counted */
	/* Segments other writers queue meanwhile count in nflushing too:
	 * write them rather than wait for nobody to. */
	while (f->nflushing)
		if (zb_write_next_locked(f) == -ENOENT)
			pthread_cond_wait(&f->buf_cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	return CTR_GET(f, failed_writes) != failed ? -EIO : 0;
}

void zb_ra_wait(struct zb_file *f)
{
	pthread_mutex_lock(&f->lock);
	while (f->ra_n || f->ra_busy)
		pthread_cond_wait(&f->win_cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

int zb_write_queued(struct zb_file *f)
{
	int r, ret = 0;

	pthread_mutex_lock(&f->lock);
	while ((r = zb_write_next_locked(f)) != -ENOENT)
		if (r)
			ret = r;
	pthread_mutex_unlock(&f->lock);
	return ret;
}

uint32_t zb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000 +
			  (uint64_t)ts.tv_nsec / 1000000);
}

/* Can free segments be punched (discarded) at all? */
static bool zb_can_punch(struct zb_file *f)
{
	return !atomic_load_explicit(&f->no_punch, memory_order_relaxed);
}

int zb_refill(struct zb_file *f, uint32_t now_ms)
{
	uint32_t idx, excess = 0;
	bool tick;
	int r = 0;

	pthread_mutex_lock(&f->lock);
	tick = now_ms - f->age_ms >= ZB_AGE_MS;
	if (tick) {
		/* What the reserve never needed in the period just over. */
		if (f->ready_low > ZB_RESERVE_SEGS)
			excess = f->ready_low - ZB_RESERVE_SEGS;
		f->age_ms = now_ms;
	}
	while (excess-- && f->nready > ZB_RESERVE_SEGS && zb_can_punch(f)) {
		idx = zb_pop_ready_locked(f);
		pthread_mutex_unlock(&f->lock);
		r = zb_punch_seg(f, idx);
		pthread_mutex_lock(&f->lock);
		zb_push_locked(f, idx, r ? ZB_READY : ZB_HOLE);
		if (r)
			break;			/* keep the blocks; reuse only */
	}
	r = 0;
	while (f->nready < ZB_RESERVE_SEGS) {
		/* Full: fallocate would fail again until a segment is
		 * freed (zb_write() still tries when it finds none). */
		r = f->full ? -ENOSPC : zb_add_ready_locked(f);
		if (r == -ENOSPC)
			f->full = true;
		if (r)
			break;
	}
	if (tick)			/* a new period from what is left */
		f->ready_low = f->nready;
	pthread_mutex_unlock(&f->lock);
	return r;
}

int zb_refill_wanted(struct zb_file *f, uint32_t now_ms, unsigned *after_ms)
{
	uint32_t gone;
	int w;

	*after_ms = 0;
	pthread_mutex_lock(&f->lock);
	/* Not while full: fallocate would only fail again until a
	 * segment is freed. */
	w = f->nqueued || (f->nready < ZB_RESERVE_SEGS / 2 && !f->full &&
			   (f->nholes || f->hwm < f->seg_max));
	if (f->nready > ZB_RESERVE_SEGS && zb_can_punch(f)) {
		gone = now_ms - f->age_ms;
		if (gone >= ZB_AGE_MS)
			w = 1;
		else
			*after_ms = ZB_AGE_MS - gone;
	}
	pthread_mutex_unlock(&f->lock);
	return w;
}

void zb_get_stats(struct zb_file *f, struct zb_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&f->lock);
	st->objs = f->objs;
	st->bytes_stored = f->bytes;
	st->bytes_allocated = ((uint64_t)f->nused + f->nready) * ZB_SEG_SIZE;
	st->bytes_file = (uint64_t)f->hwm * ZB_SEG_SIZE;
	st->segs_used = f->nused;
	st->segs_reserved = f->nready;
	st->segs_sparse = f->nsparse;
	st->bytes_sparse_waste = f->sparse_waste;
	st->segs_bad = f->nbad;
	st->full = f->full;
	pthread_mutex_unlock(&f->lock);
	st->cap_bytes = (uint64_t)f->seg_max * ZB_SEG_SIZE;
	st->segs_written = CTR_GET(f, segs_written);
	st->disk_writes = CTR_GET(f, disk_writes);
	st->segs_punched = CTR_GET(f, segs_punched);
	st->reads = CTR_GET(f, reads);
	st->disk_reads = CTR_GET(f, disk_reads);
	st->writes = CTR_GET(f, writes);
	st->failed_reads = CTR_GET(f, failed_reads);
	st->failed_writes = CTR_GET(f, failed_writes);
	st->bad_frees = CTR_GET(f, bad_frees);
	st->nospace = CTR_GET(f, nospace);
	st->ra_reads = CTR_GET(f, ra_reads);
	st->ra_used = CTR_GET(f, ra_used);
	st->objs_relocated = CTR_GET(f, relocated);
	st->direct = f->direct;
	st->blockdev = f->blockdev;
}

/* ---- Open and close ---------------------------------------------------- */

/*
 * Open @path without following a symlink at its last component and
 * without blocking (a FIFO) or taking a terminal; a block device again
 * with O_EXCL.  Returns the fd, or -errno; *@st is its fstat.
 */
static int zb_open_path(const char *path, struct stat *st)
{
	int fd, fd2, r;
	struct stat st2;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
		  O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st)) {
		r = -errno;
		goto out_close;
	}
	if (S_ISREG(st->st_mode)) {
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
			r = -errno;
			goto out_close;
		}
		return fd;
	}
	if (!S_ISBLK(st->st_mode)) {
		r = -EINVAL;
		goto out_close;
	}
	/* O_EXCL: refused (EBUSY) while mounted or claimed by the kernel. */
	fd2 = open(path, O_RDWR | O_EXCL | O_NOFOLLOW | O_CLOEXEC);
	if (fd2 < 0) {
		r = -errno;
		goto out_close;
	}
	if (fstat(fd2, &st2) || !S_ISBLK(st2.st_mode) ||
	    st2.st_rdev != st->st_rdev) {
		close(fd2);
		r = -EINVAL;			/* replaced under us */
		goto out_close;
	}
	close(fd);
	return fd2;

out_close:
	close(fd);
	return r;
}

/* O_DIRECT if the file system takes it with our alignment. */
static bool zb_try_direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);

#ifdef STATX_DIOALIGN
	struct statx sx;

	if (!statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) &&
	    (sx.stx_mask & STATX_DIOALIGN) &&
	    (!sx.stx_dio_offset_align || ZB_ALIGN % sx.stx_dio_offset_align ||
	     ZB_ALIGN % sx.stx_dio_mem_align))
		return false;		/* none, or coarser than ours */
#endif
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT))
		return false;		/* EINVAL: not on this file system */
	return true;
}

int zb_open(const char *path, uint64_t cap_bytes, struct zb_file **out)
{
	struct zb_file *f;
	struct statvfs sv;
	struct stat st;
	uint64_t size;
	int fd, r, i;

	fd = zb_open_path(path, &st);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out_close;
	}
	if (S_ISREG(st.st_mode)) {
		if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600)) {
			r = -errno;
			goto out_close;
		}
		if (ftruncate(fd, 0) || fstatvfs(fd, &sv)) {
			r = -errno;
			goto out_close;
		}
		size = (uint64_t)sv.f_bavail * sv.f_frsize;
		if (!cap_bytes)
			cap_bytes = size;
	} else {
		if (ioctl(fd, BLKGETSIZE64, &size)) {
			r = -errno;
			goto out_close;
		}
		if (!cap_bytes || cap_bytes > size)
			cap_bytes = size;
	}
	if (cap_bytes >> ZB_SEG_SHIFT == 0) {
		r = -ENOSPC;
		goto out_close;
	}

	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out_close;
	}
	f->fd = fd;
	f->path = strdup(path);
	if (!f->path) {
		r = -ENOMEM;
		goto out_free;
	}
	f->blockdev = S_ISBLK(st.st_mode);
	f->direct = zb_try_direct(fd);
	f->seg_max = cap_bytes >> ZB_SEG_SHIFT > ZB_MAX_SEGS ? ZB_MAX_SEGS :
		     (uint32_t)(cap_bytes >> ZB_SEG_SHIFT);
	f->ready = f->holes = f->open = f->queue = f->last_sealed = ZB_NONE;
	f->segs_bytes = (size_t)f->seg_max * sizeof(struct zb_seg);
	f->segs = mmap(NULL, f->segs_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (f->segs == MAP_FAILED) {
		f->segs = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < ZB_NBUF; i++) {
		if (posix_memalign((void **)&f->bufs[i].data, ZB_ALIGN,
				   ZB_SEG_SIZE)) {
			r = -ENOMEM;
			goto out_free;
		}
		memset(f->bufs[i].data, 0, ZB_SEG_SIZE);	/* resident now */
	}
	for (i = 0; i < ZB_NWIN; i++) {
		if (posix_memalign((void **)&f->wins[i].data, ZB_ALIGN,
				   ZB_WIN_SIZE)) {
			r = -ENOMEM;
			goto out_free;
		}
		memset(f->wins[i].data, 0, ZB_WIN_SIZE);
	}
	if ((r = pthread_mutex_init(&f->lock, NULL))) {
		r = -r;
		goto out_free;
	}
	if ((r = pthread_cond_init(&f->buf_cond, NULL))) {
		pthread_mutex_destroy(&f->lock);
		r = -r;
		goto out_free;
	}
	if ((r = pthread_cond_init(&f->win_cond, NULL))) {
		r = -r;
		goto out_buf_cond;
	}
	if ((r = pthread_cond_init(&f->ra_cond, NULL))) {
		r = -r;
		goto out_win_cond;
	}
	if ((r = pthread_create(&f->ra_thread, NULL, zb_ra_main, f))) {
		r = -r;
		goto out_ra_cond;
	}
	f->age_ms = zb_now_ms();
	zb_refill(f, f->age_ms);	/* what it cannot get, zb_write() reports */
	*out = f;
	return 0;

out_ra_cond:
	pthread_cond_destroy(&f->ra_cond);
out_win_cond:
	pthread_cond_destroy(&f->win_cond);
out_buf_cond:
	pthread_cond_destroy(&f->buf_cond);
	pthread_mutex_destroy(&f->lock);
out_free:
	for (i = 0; i < ZB_NBUF; i++)
		free(f->bufs[i].data);
	for (i = 0; i < ZB_NWIN; i++)
		free(f->wins[i].data);
	if (f->segs)
		munmap(f->segs, f->segs_bytes);
	free(f->path);
	free(f);
out_close:
	close(fd);			/* releases the flock */
	return r;
}

void zb_close(struct zb_file *f)
{
	int i;

	if (!f)
		return;
	assert(f->nflushing == f->nqueued);	/* queued writes are moot */
	pthread_mutex_lock(&f->lock);
	f->ra_stop = true;
	pthread_cond_signal(&f->ra_cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->ra_thread, NULL);
	if (!f->blockdev && ftruncate(f->fd, 0)) {
		/* nothing to do: the content is void anyway */
	}
	close(f->fd);			/* releases the flock */
	munmap(f->segs, f->segs_bytes);
	for (i = 0; i < ZB_NBUF; i++)
		free(f->bufs[i].data);
	for (i = 0; i < ZB_NWIN; i++)
		free(f->wins[i].data);
	pthread_cond_destroy(&f->ra_cond);
	pthread_cond_destroy(&f->win_cond);
	pthread_cond_destroy(&f->buf_cond);
	pthread_mutex_destroy(&f->lock);
	free(f->path);
	free(f);
}

const char *zb_path(const struct zb_file *f)
{
	return f->path;
}
