/*
 * fusezram - a compressed RAM disk presented as one file through FUSE.
 *
 * This file is the FUSE glue and nothing else: a fixed namespace of a few
 * inodes, the low-level handlers that turn requests into calls on the
 * device (store/zr_dev.h: the store, its configuration, the control
 * attributes, the option parsers) and its -errno into
 * fuse_reply_err(req, -ret), the fuse_opt table and --help, detaching,
 * memory discipline and signals.
 *
 * Locking:
 *	The device's init lock (zr_dev.h) is taken inside zr_dev_* calls,
 *	never here; no lock of this file is held across one.
 *	fz_data.attr_lock protects the image's mode, uid, gid and atime: a
 *	leaf.  The image's mtime and ctime are atomics, bumped by a write
 *	or discard at most once per second of CLOCK_REALTIME_COARSE so the
 *	line stays shared on the I/O path.  fz_data.snap_bytes and the two
 *	fields of an open control file are atomics.  The per-thread read
 *	buffers are thread-local.
 *
 * The mount holds:
 *
 *	image			regular file of exactly disksize bytes
 *	control/		the device's attributes (zr_dev_attr()), one
 *	control/disksize ...	file each, kernel zram's plus "summary"
 *
 * The namespace never changes, so inode numbers are fixed (FZ_INO_*),
 * lookup counts need no bookkeeping and forget is left to libfuse's
 * default (no reply).  Entries are cached for a long time; the image's
 * attributes are not cached at all (attr_timeout 0) so that st_blocks,
 * the memory actually used, is fresh at every stat(2), and so is
 * st_size after a write to control/disksize.
 *
 * The image is opened with FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES:
 * no page cache between a loop device and the store, and the kernel may
 * send several non-extending writes to the same inode at once.  With
 * FUSE_CAP_ASYNC_DIO the loop driver's queue depth turns into that many
 * requests in flight (bounded by max_background), served by up to
 * max_threads FUSE worker threads; each large request is compressed by
 * its worker and the store's threads-1 helpers (-o threads=).
 *
 * Control files are read as kernfs files are: the text is made by the
 * device's show at a read from offset 0 (fz_read_attr()).  They are
 * opened with direct_io, so their st_size (4096, as in sysfs; more for
 * summary) does not limit or pad what read(2) returns.  Write access is
 * checked twice: the kernel checks mode bits (we mount with
 * default_permissions), and open refuses writing an attribute that has
 * no store with EACCES even to root, as kernfs does.  Each write(2) is
 * one zr_dev_store() call.
 *
 * Memory discipline (unless -o nomlock): the daemon may be the swap
 * device of the machine it runs on, so it must not itself be swapped out
 * or stall in reclaim that waits on its own I/O.  Before the device or
 * any thread exists the main thread sets PR_SET_IO_FLUSHER (inherited by
 * every thread created later: allocations never recurse into I/O); after
 * the device exists it calls mlockall(MCL_CURRENT | MCL_FUTURE |
 * MCL_ONFAULT) (the allocator frees pages with fallocate punch-hole,
 * which works on locked mappings) and sets oom_score_adj to -900; read
 * buffers are pre-faulted.  Missing privileges cost one warning.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP unmount and exit only while the
 * image is not open; otherwise they are refused with a log line (a loop
 * device may be swap: unmounting would kill its users), unless a second
 * one follows within FZ_FORCE_WINDOW_SEC seconds.  The handler decides
 * (atomics only) and a logger thread writes the message.
 *
 * TODO:
 *	- splice (write_buf / fuse_reply_data) once measured to help.
 *	- mmap of the image (needs FUSE_DIRECT_IO_ALLOW_MMAP, libfuse > 3.14).
 */

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
/*
 * For struct fuse_open_out and FOPEN_*: the kernel's UAPI header does not
 * clash with libfuse's public headers (they never include their private
 * copy of it), in either include order.
 */
#include <linux/fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/zr_dev.h"

#ifndef FUSEZRAM_VERSION
#define FUSEZRAM_VERSION "unknown"
#endif

/* Linux 5.19 / protocol 7.36; libfuse 3.14 has no fuse_file_info bit for it. */
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif

/* Linux 5.6; glibc 2.32 has them, older headers may not. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#define PR_GET_IO_FLUSHER 58
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

#define FZ_PROG "fusezram"
#define FZ_USAGE "usage: " FZ_PROG " [-o OPTIONS] [SOURCE] MOUNTPOINT"

/*
 * The connection's defaults where -o leaves them (the device checks the
 * options' values and keeps these limits: ZR_DEV_* in zr_dev.h).
 *
 * FUSE worker threads (max_threads, ZR_DEV_WORKERS_DEFAULT 16): the loop
 * driver queues up to 128 requests, max_background (64) of them in
 * flight as async direct I/O, each holding a worker while it is
 * compressed; 16 keep 16 in the store at once, past the core count of
 * most machines, where more threads only add switching.
 *
 * max_write (FZ_DEFAULT_MAX_WRITE, and so max_pages): smaller than
 * ZR_DEV_IO_MAX on purpose: the kernel splits a loop device's 1 MiB
 * direct I/O into 8 requests sent at once, so several workers compress
 * at the same time and one's reply copy overlaps another's compression
 * (413 against 368 MB/s with 1 MiB on 2 CPUs; bench/RESULTS.md).  Each
 * request is still at least ZR_PARALLEL_MIN, so the store's helpers
 * share its pages when it is alone.
 *
 * max_read (ZR_DEV_READ_DEFAULT, a mount option, so passed to the kernel
 * at mount time): a 1 MiB direct read comes as 16 requests of 64 KiB;
 * decompression is several times faster than compression, so more,
 * smaller requests keep every CPU busy (bench/RESULTS.md).
 */
#define FZ_DEFAULT_MAX_WRITE (128u << 10)
#define FZ_STR_(x) #x
#define FZ_STR(x) FZ_STR_(x)
/* Where the kernel starts throttling async direct I/O. */
#define FZ_CONGESTION_THRESHOLD 48

/* Names never change; attributes of everything but the image rarely. */
#define FZ_ENTRY_TIMEOUT 86400.0
#define FZ_ATTR_TIMEOUT 1.0
#define FZ_IMAGE_ATTR_TIMEOUT 0.0

#define FZ_NSEC_PER_SEC 1000000000LL

/*
 * A second SIGTERM/SIGINT/SIGHUP within this many seconds of one refused
 * because the image is open forces the unmount.
 */
#define FZ_FORCE_WINDOW_SEC 5

/*
 * oom_score_adj of the daemon: the OOM killer takes nearly anything else
 * first (a memory hog, whose pages we may be holding as swap), but not
 * -1000, which would leave the machine no way out if we are the leak.
 */
#define FZ_OOM_SCORE_ADJ "-900"

enum {
	FZ_INO_ROOT = FUSE_ROOT_ID,
	FZ_INO_IMAGE,
	FZ_INO_CONTROL,
	FZ_INO_ATTR0,		/* zr_dev_attr(0); one inode per attribute */
};

#define fz_log(level, fmt, ...) \
	fuse_log(level, FZ_PROG ": " fmt "\n", ##__VA_ARGS__)

/* A control file's text, copied for a reader that reads it in pieces. */
struct fz_snap {
	size_t len;
	char text[];
};

/*
 * An open control file.  Owned by fi->fh; freed, with its snap, by
 * release.  Reads of one handle may run concurrently: both fields are
 * atomics, snap set once.
 */
struct fz_open_attr {
	const struct zr_dev_attr *attr;
	/* Length of the text last read whole from offset 0: EOF past it. */
	_Atomic size_t whole;
	/* The copy for a piecewise reader, or NULL; see fz_read_attr(). */
	struct fz_snap *_Atomic snap;
};

/*
 * What the copies of all open control files may hold in all.  A summary
 * is a few KiB and read whole by cat, fzramctl and any reader with a
 * buffer of st_size; this is for the rest, and keeps opens from pinning
 * memory (the daemon is mlocked).
 */
#define FZ_SNAP_BUDGET (1u << 20)

/* Everything the handlers share; fuse_req_userdata(). */
struct fz_data {
	struct zr_dev *dev;		/* the device; set before the mount */
	/* Bytes held by struct fz_snap copies, at most FZ_SNAP_BUDGET. */
	_Atomic size_t snap_bytes;

	uid_t uid;			/* owner of the directories and */
	gid_t gid;			/* control files: the mounting user */
	struct timespec mount_time;	/* their times */
	struct fuse_conn_info_opts *conn_opts;	/* -o max_write= etc. */
	unsigned int max_read;		/* the max_read= mount option */
	/* Set by init before any I/O, then only read; atomic for TSan. */
	_Atomic size_t read_bufsize;

	/* Memory discipline: set before the mount, then only read. */
	bool discipline;		/* not -o nomlock */
	bool io_flusher;		/* PR_SET_IO_FLUSHER is set */
	bool mlocked;			/* mlockall() succeeded */
	bool oom_adjusted;		/* oom_score_adj is FZ_OOM_SCORE_ADJ */
	atomic_bool io_flusher_warned;	/* a thread without it was logged */

	pthread_mutex_t attr_lock;	/* protects the four fields below */
	mode_t img_mode;		/* permission bits only */
	uid_t img_uid;
	gid_t img_gid;
	struct timespec img_atime;
	_Atomic int64_t img_mtime_ns;	/* ns since the epoch */
	_Atomic int64_t img_ctime_ns;
};

/* ---- time --------------------------------------------------------------- */

static struct timespec fz_ns_to_ts(int64_t ns)
{
	struct timespec ts = {
		.tv_sec = ns / FZ_NSEC_PER_SEC,
		.tv_nsec = ns % FZ_NSEC_PER_SEC,
	};

	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += FZ_NSEC_PER_SEC;
	}
	return ts;
}

static int64_t fz_ts_to_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * FZ_NSEC_PER_SEC + ts.tv_nsec;
}

/*
 * fz_touch - the image was modified: bump its mtime and ctime, at most
 * once per second so that parallel writers do not fight over the line.
 * Cannot fail.
 */
static void fz_touch(struct fz_data *fz)
{
	struct timespec ts;
	int64_t now, old;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	now = fz_ts_to_ns(ts);
	old = atomic_load_explicit(&fz->img_mtime_ns, memory_order_relaxed);
	if (now / FZ_NSEC_PER_SEC == old / FZ_NSEC_PER_SEC)
		return;
	atomic_store_explicit(&fz->img_mtime_ns, now, memory_order_relaxed);
	atomic_store_explicit(&fz->img_ctime_ns, now, memory_order_relaxed);
}

/* ---- exit signals (see fz_sig_handler) ---------------------------------- */

static const int fz_exit_signals[] = { SIGHUP, SIGINT, SIGTERM };
#define FZ_NSIGS (sizeof(fz_exit_signals) / sizeof(fz_exit_signals[0]))

/*
 * fz_block_exit_signals - block (or, with @block false, restore) the exit
 * signals in the calling thread, so that threads created meanwhile never
 * take them.
 */
static void fz_block_exit_signals(bool block, sigset_t *saved)
{
	sigset_t set;
	unsigned int i;

	if (!block) {
		pthread_sigmask(SIG_SETMASK, saved, NULL);
		return;
	}
	sigemptyset(&set);
	for (i = 0; i < FZ_NSIGS; i++)
		sigaddset(&set, fz_exit_signals[i]);
	pthread_sigmask(SIG_BLOCK, &set, saved);
}

/* ---- requests ------------------------------------------------------------ */

/*
 * fz_thread_check - on a thread's first request, check that it inherited
 * PR_SET_IO_FLUSHER from the main thread (libfuse creates its workers
 * after we set it, so they should have); log once, for all threads, if
 * not.  Cannot fail.
 */
static void fz_thread_check(struct fz_data *fz)
{
	static __thread bool checked;
	int ret;

	if (checked)
		return;
	checked = true;
	if (!fz->io_flusher)
		return;
	ret = prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0);
	if (ret == 1)
		return;
	if (!atomic_exchange(&fz->io_flusher_warned, true))
		fz_log(FUSE_LOG_WARNING,
		       "worker thread %d runs without PR_SET_IO_FLUSHER (%s): its allocations may wait for swap I/O to this very image",
		       (int)gettid(), ret < 0 ? strerror(errno) : "not inherited");
}

/* fz_req - the shared data of a request; checks the thread first. */
static struct fz_data *fz_req(fuse_req_t req)
{
	struct fz_data *fz = fuse_req_userdata(req);

	fz_thread_check(fz);
	return fz;
}

/* ---- the namespace ----------------------------------------------------- */

/* The attribute behind inode @ino, or NULL if @ino is not a control file. */
static const struct zr_dev_attr *fz_ino_attr(fuse_ino_t ino)
{
	if (ino < FZ_INO_ATTR0)
		return NULL;
	return zr_dev_attr(ino - FZ_INO_ATTR0);
}

static int fz_is_dir(fuse_ino_t ino)
{
	return ino == FZ_INO_ROOT || ino == FZ_INO_CONTROL;
}

/*
 * fz_dirent - the @idx-th entry of directory @dir, "." and ".." first.
 * Returns 1 and sets *@name and *@child, or 0 past the last entry.
 */
static int fz_dirent(fuse_ino_t dir, size_t idx, const char **name,
		     fuse_ino_t *child)
{
	static const char *const root_names[] = { "image", "control" };

	if (idx == 0) {
		*name = ".";
		*child = dir;
		return 1;
	}
	if (idx == 1) {
		*name = "..";
		*child = FZ_INO_ROOT;
		return 1;
	}
	idx -= 2;
	if (dir == FZ_INO_ROOT && idx < 2) {
		*name = root_names[idx];
		*child = FZ_INO_IMAGE + idx;
		return 1;
	}
	if (dir == FZ_INO_CONTROL && idx < zr_dev_nattrs()) {
		*name = zr_dev_attr(idx)->name;
		*child = FZ_INO_ATTR0 + idx;
		return 1;
	}
	return 0;
}

/* The inode named @name in @parent, or 0 if there is none. */
static fuse_ino_t fz_child(fuse_ino_t parent, const char *name)
{
	const char *n;
	fuse_ino_t child;
	size_t i;

	if (!fz_is_dir(parent))
		return 0;
	for (i = 2; fz_dirent(parent, i, &n, &child); i++)
		if (strcmp(n, name) == 0)
			return child;
	return 0;
}

static double fz_attr_timeout(fuse_ino_t ino)
{
	return ino == FZ_INO_IMAGE ? FZ_IMAGE_ATTR_TIMEOUT : FZ_ATTR_TIMEOUT;
}

/* fz_stat_image - the image's part of fz_stat(); takes attr_lock. */
static void fz_stat_image(struct fz_data *fz, struct stat *stbuf)
{
	struct zr_stats s;
	uint64_t disksize;

	zr_dev_get_stats(fz->dev, &s, &disksize);
	stbuf->st_size = (off_t)disksize;
	stbuf->st_nlink = 1;
	/* Memory actually used, as du(1) should see it. */
	stbuf->st_blocks = (blkcnt_t)((s.mem_used_total + 511) / 512);
	pthread_mutex_lock(&fz->attr_lock);
	stbuf->st_mode = S_IFREG | fz->img_mode;
	stbuf->st_uid = fz->img_uid;
	stbuf->st_gid = fz->img_gid;
	stbuf->st_atim = fz->img_atime;
	pthread_mutex_unlock(&fz->attr_lock);
	stbuf->st_mtim = fz_ns_to_ts(atomic_load_explicit(
			&fz->img_mtime_ns, memory_order_relaxed));
	stbuf->st_ctim = fz_ns_to_ts(atomic_load_explicit(
			&fz->img_ctime_ns, memory_order_relaxed));
}

/*
 * fz_stat - fill @stbuf for inode @ino.
 * Returns 0, or -ENOENT for an inode that does not exist.
 */
static int fz_stat(struct fz_data *fz, fuse_ino_t ino, struct stat *stbuf)
{
	const struct zr_dev_attr *attr;

	memset(stbuf, 0, sizeof(*stbuf));
	stbuf->st_ino = ino;
	stbuf->st_uid = fz->uid;
	stbuf->st_gid = fz->gid;
	stbuf->st_blksize = ZR_PAGE_SIZE;
	stbuf->st_atim = fz->mount_time;
	stbuf->st_mtim = fz->mount_time;
	stbuf->st_ctim = fz->mount_time;

	switch (ino) {
	case FZ_INO_ROOT:
		stbuf->st_mode = S_IFDIR | 0755;
		stbuf->st_nlink = 3;	/* ".", "..", control/.. */
		return 0;
	case FZ_INO_CONTROL:
		stbuf->st_mode = S_IFDIR | 0755;
		stbuf->st_nlink = 2;
		return 0;
	case FZ_INO_IMAGE:
		fz_stat_image(fz, stbuf);
		return 0;
	}

	attr = fz_ino_attr(ino);
	if (!attr)
		return -ENOENT;
	stbuf->st_mode = S_IFREG | attr->mode;
	stbuf->st_nlink = 1;
	stbuf->st_size = (off_t)attr->size;
	return 0;
}

/* ---- the per-thread read buffer ---------------------------------------- */

/*
 * Each worker thread gets one buffer for read replies, allocated at its
 * first read and sized to the largest read the kernel will send, so the
 * read path does not allocate after warm-up.  libfuse 3.14 never retires
 * idle workers by default (max_idle_threads -1); the key's destructor
 * frees a buffer when its thread ends (libfuse cancels workers at exit).
 * Under the memory discipline a new buffer is pre-faulted, so that it is
 * locked in memory (mlockall MCL_ONFAULT) before the first read that
 * needs it, not faulted in while swap waits on that read.
 */
struct fz_rbuf {
	size_t cap;
	char data[];
};

static pthread_key_t fz_rbuf_key;

static void fz_rbuf_free(void *p)
{
	free(p);
}

/*
 * fz_rbuf_get - this thread's read buffer, at least @len bytes long.
 * Returns NULL on ENOMEM (the thread's old buffer stays valid).
 */
static char *fz_rbuf_get(struct fz_data *fz, size_t len)
{
	struct fz_rbuf *b = pthread_getspecific(fz_rbuf_key);
	struct fz_rbuf *nb;
	size_t cap;

	if (b && b->cap >= len)
		return b->data;
	cap = atomic_load_explicit(&fz->read_bufsize, memory_order_relaxed);
	if (cap < len)
		cap = len;
	nb = malloc(sizeof(*nb) + cap);
	if (!nb)
		return NULL;
	nb->cap = cap;
	if (fz->discipline)
		memset(nb->data, 0, cap);
	if (pthread_setspecific(fz_rbuf_key, nb) != 0) {
		free(nb);
		return NULL;
	}
	free(b);
	return nb->data;
}

/* ---- handlers ---------------------------------------------------------- */

static void fz_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fz_data *fz = userdata;
	unsigned int max_write_cap = conn->max_write;	/* libfuse's buffer */
	size_t rbuf;

	/*
	 * libfuse already wants ASYNC_READ and ASYNC_DIO where the kernel
	 * offers them; say so, since the loop device depends on them.
	 */
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* No splice for now: replies come from our own buffers. */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE);
	/*
	 * libfuse 3.14 does not tell write() when to kill suid/sgid; without
	 * this capability the kernel sends the mode change itself.
	 */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;

	conn->max_write = FZ_DEFAULT_MAX_WRITE;
	/* libfuse insists that it matches the max_read= mount option. */
	conn->max_read = fz->max_read;
	/*
	 * max_readahead is the kernel's offer and can only be lowered; keep
	 * it.  It only matters for control files: the image bypasses the
	 * page cache.
	 */
	conn->max_background = ZR_DEV_BACKGROUND_DEFAULT;
	conn->congestion_threshold = FZ_CONGESTION_THRESHOLD;

	/* -o max_write=, max_background=, async_dio, ... override ours. */
	if (fz->conn_opts)
		fuse_apply_conn_info_opts(fz->conn_opts, conn);

	/* The image must not be cached: its size and content are ours. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Never ask for what the kernel lacks: libfuse would abort INIT. */
	conn->want &= conn->capable;
	/* libfuse does not re-check max_write against its buffers. */
	if (conn->max_write > max_write_cap)
		conn->max_write = max_write_cap;
	if (conn->max_write < ZR_PAGE_SIZE)
		conn->max_write = ZR_PAGE_SIZE;

	/*
	 * Reads are at most max_pages (derived by libfuse from max_write)
	 * pages, and at most max_read.
	 */
	rbuf = ((size_t)conn->max_write + ZR_PAGE_SIZE - 1) &
		~(size_t)(ZR_PAGE_SIZE - 1);
	if (conn->max_read && conn->max_read < rbuf)
		rbuf = conn->max_read;
	atomic_store_explicit(&fz->read_bufsize, rbuf, memory_order_relaxed);
}

static void fz_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fz_data *fz = fz_req(req);
	struct fuse_entry_param e;
	fuse_ino_t ino;

	ino = fz_child(parent, name);
	if (!ino) {
		fuse_reply_err(req, fz_is_dir(parent) ? ENOENT : ENOTDIR);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = fz_attr_timeout(ino);
	e.entry_timeout = FZ_ENTRY_TIMEOUT;
	fz_stat(fz, ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fz_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	struct stat stbuf;
	int ret;

	(void)fi;
	ret = fz_stat(fz, ino, &stbuf);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fuse_reply_attr(req, &stbuf, fz_attr_timeout(ino));
}

/*
 * fz_setattr_other - setattr of anything but the image.  As kernfs:
 * truncating a control file ("echo 1 > reset" where O_TRUNC comes as a
 * setattr) and setting its times succeed and change nothing; mode and
 * owner are fixed, and so is everything about the directories.
 */
static void fz_setattr_other(fuse_req_t req, struct fz_data *fz,
			     fuse_ino_t ino, int to_set)
{
	struct stat stbuf;

	if (fz_stat(fz, ino, &stbuf) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!fz_ino_attr(ino) ||
	    (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		       FUSE_SET_ATTR_GID))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_attr(req, &stbuf, fz_attr_timeout(ino));
}

/*
 * Only the image's attributes change: its mode, owner and times, which
 * are remembered.  Its size is disksize, always; resizing it to anything
 * else (truncate(2), O_TRUNC without FUSE_CAP_ATOMIC_O_TRUNC) is refused
 * with EPERM before anything is changed.
 */
static void fz_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	struct timespec now;
	struct stat stbuf;
	uint64_t disksize;

	(void)fi;
	if (ino != FZ_INO_IMAGE) {
		fz_setattr_other(req, fz, ino, to_set);
		return;
	}
	disksize = zr_dev_disksize(fz->dev);
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (uint64_t)attr->st_size != disksize) {
		fz_log(FUSE_LOG_WARNING,
		       "refusing to resize image to %lld bytes: its size is fixed at disksize (%llu bytes)",
		       (long long)attr->st_size, (unsigned long long)disksize);
		fuse_reply_err(req, EPERM);
		return;
	}

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&fz->attr_lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		fz->img_mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		fz->img_uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		fz->img_gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		fz->img_atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		fz->img_atime = attr->st_atim;
	pthread_mutex_unlock(&fz->attr_lock);

	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		atomic_store(&fz->img_mtime_ns, fz_ts_to_ns(now));
	else if (to_set & FUSE_SET_ATTR_MTIME)
		atomic_store(&fz->img_mtime_ns, fz_ts_to_ns(attr->st_mtim));
	atomic_store(&fz->img_ctime_ns, fz_ts_to_ns(
		(to_set & FUSE_SET_ATTR_CTIME) ? attr->st_ctim : now));

	fz_stat(fz, ino, &stbuf);
	fuse_reply_attr(req, &stbuf, fz_attr_timeout(ino));
}

/* The namespace is fixed: nothing may be created, removed or renamed. */
static void fz_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EPERM);
}

static void fz_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EPERM);
}

static void fz_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EPERM);
}

static void fz_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EPERM);
}

static void fz_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EPERM);
}

static void fz_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EPERM);
}

static void fz_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EPERM);
}

/*
 * The image: counted open (zr_dev_open(), the EBUSY of replacements)
 * and answered with FOPEN_PARALLEL_DIRECT_WRITES, which libfuse 3.14's
 * struct fuse_file_info has no bit for, so the reply is built here.
 * fuse_reply_open() zeroes a struct fuse_open_out, sets fh and the
 * FOPEN_* bits from fi, and sends it with send_reply_ok(req, &arg,
 * sizeof(arg)); fuse_reply_buf(req, &out, sizeof(out)) is the same
 * send_reply_ok() call, so the bytes on the wire are identical.  fh
 * stays 0: the image needs no per-open state.  The flag lets the kernel
 * run synchronous O_DIRECT writers of the image in parallel, which the
 * inode lock would otherwise serialize (fio psync 4k randwrite, 4 jobs:
 * 70-78K IOPS with it, 17K without; bench/RESULTS.md); a loop device's
 * async direct I/O reaches us in parallel either way.
 */
static void fz_open_image(fuse_req_t req, struct fz_data *fz,
			  struct fuse_file_info *fi)
{
	struct fuse_open_out out;

	/* FUSE_CAP_ATOMIC_O_TRUNC: the truncation comes with the open. */
	if (fi->flags & O_TRUNC) {
		fz_log(FUSE_LOG_WARNING,
		       "refusing O_TRUNC open of image: its size is fixed at disksize (%llu bytes)",
		       (unsigned long long)zr_dev_disksize(fz->dev));
		fuse_reply_err(req, EPERM);
		return;
	}
	zr_dev_open(fz->dev);
	memset(&out, 0, sizeof(out));
	out.fh = 0;
	out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	/* If the open was interrupted, no release will come for it. */
	if (fuse_reply_buf(req, (const char *)&out, sizeof(out)) != 0)
		zr_dev_release(fz->dev);
}

static void fz_open_attr(fuse_req_t req, const struct zr_dev_attr *attr,
			 struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct fz_open_attr *oa;

	/* As kernfs: refused even to root, whatever the mode bits say. */
	if ((acc != O_WRONLY && !attr->readable) ||
	    (acc != O_RDONLY && !attr->writable)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	/* The text is made at read: an open holds nothing more. */
	oa = malloc(sizeof(*oa));
	if (!oa) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	oa->attr = attr;
	atomic_init(&oa->whole, 0);
	atomic_init(&oa->snap, NULL);

	fi->fh = (uint64_t)(uintptr_t)oa;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* If the open was interrupted, no release will come for it. */
	if (fuse_reply_open(req, fi) != 0)
		free(oa);
}

/* fz_attr_free - free @oa and its copy, giving the copy's budget back. */
static void fz_attr_free(struct fz_data *fz, struct fz_open_attr *oa)
{
	struct fz_snap *snap = atomic_load(&oa->snap);

	if (snap) {
		atomic_fetch_sub(&fz->snap_bytes, snap->len);
		free(snap);
	}
	free(oa);
}

/*
 * fz_snap_keep - copy the @len bytes of @text for @oa, within
 * FZ_SNAP_BUDGET.  Returns the copy @oa holds now (another read of the
 * same handle may have set one first: that one is returned, ours freed),
 * or NULL when the budget or malloc refuses.
 */
static struct fz_snap *fz_snap_keep(struct fz_data *fz,
				    struct fz_open_attr *oa,
				    const char *text, size_t len)
{
	struct fz_snap *snap, *was = NULL;

	if (atomic_fetch_add(&fz->snap_bytes, len) + len > FZ_SNAP_BUDGET)
		goto out_unbudget;
	snap = malloc(sizeof(*snap) + len);
	if (!snap)
		goto out_unbudget;
	snap->len = len;
	memcpy(snap->text, text, len);
	if (atomic_compare_exchange_strong(&oa->snap, &was, snap))
		return snap;
	free(snap);
	atomic_fetch_sub(&fz->snap_bytes, len);
	return was;

out_unbudget:
	atomic_fetch_sub(&fz->snap_bytes, len);
	return NULL;
}

/*
 * fz_read_attr - read(2) of a control file, as of kernfs: the text is
 * made by the device's show at a read from offset 0.  A read that takes
 * it whole (cat, fzramctl, any reader with a buffer of st_size) keeps
 * nothing but its length, so that the next read, at that offset, is
 * EOF.  A reader that takes it in pieces, or starts past 0, gets a copy
 * made at that read and kept until close (fz_snap_keep), so that its
 * pieces fit together; when the copies of all handles would pass
 * FZ_SNAP_BUDGET the read fails with ENOMEM.
 */
static void fz_read_attr(fuse_req_t req, struct fz_data *fz,
			 struct fz_open_attr *oa, size_t size, off_t off)
{
	size_t bufsize = oa->attr->size, whole, len;
	struct fz_snap *snap = atomic_load(&oa->snap);
	char *buf;
	int ret;

	/*
	 * Reply from this thread's buffer, never from oa: the reader may
	 * close the file as soon as the kernel has the data, and the
	 * release on another thread frees oa while our writev() is still
	 * returning.
	 */
	buf = fz_rbuf_get(fz, size > bufsize ? size : bufsize);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!snap) {
		whole = atomic_load(&oa->whole);
		if (off > 0 && whole && (uint64_t)off >= whole) {
			fuse_reply_buf(req, NULL, 0);
			return;
		}
		ret = zr_dev_show(fz->dev, oa->attr, buf, bufsize);
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
		len = (size_t)ret;
		if (off == 0 && size >= len) {
			atomic_store(&oa->whole, len);
			fuse_reply_buf(req, buf, len);
			return;
		}
		snap = fz_snap_keep(fz, oa, buf, len);
		if (!snap) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	if ((uint64_t)off >= snap->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > snap->len - (size_t)off)
		size = snap->len - (size_t)off;
	memcpy(buf, snap->text + off, size);
	fuse_reply_buf(req, buf, size);
}

static void fz_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	const struct zr_dev_attr *attr;

	if (ino == FZ_INO_IMAGE) {
		fz_open_image(req, fz, fi);
		return;
	}
	attr = fz_ino_attr(ino);
	if (!attr) {
		fuse_reply_err(req, fz_is_dir(ino) ? EISDIR : ENOENT);
		return;
	}
	fz_open_attr(req, attr, fi);
}

static void fz_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);

	if (ino == FZ_INO_IMAGE)
		zr_dev_release(fz->dev);
	else if (fz_ino_attr(ino))
		fz_attr_free(fz, (struct fz_open_attr *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	ssize_t ret;
	char *buf;

	if (ino != FZ_INO_IMAGE) {
		fz_read_attr(req, fz, (struct fz_open_attr *)(uintptr_t)fi->fh,
			     size, off);
		return;
	}

	buf = fz_rbuf_get(fz, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = zr_dev_read(fz->dev, buf, size, (uint64_t)off);
	if (ret < 0) {
		fuse_reply_err(req, (int)-ret);
		return;
	}
	fuse_reply_buf(req, buf, (size_t)ret);
}

/*
 * One write(2) to a control file is one zr_dev_store() call, whatever
 * its offset, as in sysfs.  A write that replaced the store (disksize,
 * reset, ...) modified the image.
 */
static void fz_write_attr(fuse_req_t req, struct fz_data *fz,
			  struct fz_open_attr *oa, const char *buf,
			  size_t size)
{
	const struct zr_dev_attr *attr = oa->attr;
	int ret;

	if (!attr->writable) {		/* open refused it; be sure */
		fuse_reply_err(req, EACCES);
		return;
	}
	ret = zr_dev_store(fz->dev, attr, buf, size);
	if (ret < 0) {
		if (ret != -EINVAL)
			fz_log(FUSE_LOG_INFO, "control/%s: %s", attr->name,
			       strerror(-ret));
		fuse_reply_err(req, -ret);
		return;
	}
	if (size && attr->replaces)
		fz_touch(fz);
	fuse_reply_write(req, size);
}

static void fz_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	ssize_t ret;

	if (ino != FZ_INO_IMAGE) {
		fz_write_attr(req, fz, (struct fz_open_attr *)(uintptr_t)fi->fh,
			      buf, size);
		return;
	}
	/* -EFBIG at or past the end: the image never grows. */
	ret = zr_dev_write(fz->dev, buf, size, (uint64_t)off);
	if (ret < 0) {
		fuse_reply_err(req, (int)-ret);
		return;
	}
	if (ret > 0)
		fz_touch(fz);
	fuse_reply_write(req, (size_t)ret);
}

/* Nothing is buffered here: every write is in the store when answered. */
static void fz_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino; (void)fi;
	fuse_reply_err(req, 0);
}

static void fz_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino; (void)datasync; (void)fi;
	fuse_reply_err(req, 0);
}

static void fz_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	const char *name;
	fuse_ino_t child;
	size_t pos = 0, idx, n;
	char *buf;

	(void)fi;
	if (!fz_is_dir(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* An entry's offset is the index of the next one. */
	for (idx = (size_t)off; fz_dirent(ino, idx, &name, &child); idx++) {
		struct stat st = {
			.st_ino = child,
			.st_mode = fz_is_dir(child) ? S_IFDIR : S_IFREG,
		};

		n = fuse_add_direntry(req, buf + pos, size - pos, name, &st,
				      (off_t)(idx + 1));
		if (n > size - pos)
			break;
		pos += n;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void fz_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino; (void)datasync; (void)fi;
	fuse_reply_err(req, 0);
}

static void fz_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fz_data *fz = fz_req(req);
	struct statvfs sv;
	struct zr_stats s;
	uint64_t pages;

	(void)ino;
	zr_dev_get_stats(fz->dev, &s, &pages);
	pages >>= ZR_PAGE_SHIFT;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = ZR_PAGE_SIZE;
	sv.f_frsize = ZR_PAGE_SIZE;
	sv.f_blocks = pages;
	sv.f_bfree = pages - (s.pages_stored < pages ? s.pages_stored : pages);
	sv.f_bavail = sv.f_bfree;
	sv.f_files = FZ_INO_ATTR0 - FZ_INO_ROOT + zr_dev_nattrs();
	sv.f_ffree = 0;
	sv.f_favail = 0;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/*
 * fallocate on the image.  The file never grows, and after a successful
 * fallocate without FALLOC_FL_KEEP_SIZE the kernel would grow its cached
 * size to offset+length, so:
 *
 *   0 (allocate)		inside the size: nothing to do, 0; a range
 *				ending past the end: EFBIG
 *   KEEP_SIZE			nothing to allocate: 0
 *   PUNCH_HOLE|KEEP_SIZE,	discard, clipped at the end; a range
 *   ZERO_RANGE|KEEP_SIZE	starting at or past the end: nothing, 0
 *   ZERO_RANGE			discard inside the size; a range ending
 *				past the end: EFBIG, nothing done
 *   anything else		EOPNOTSUPP
 */
static void fz_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	uint64_t off = (uint64_t)offset, len = (uint64_t)length;
	bool changed = false;
	int ret = 0;

	(void)fi;
	if (ino != FZ_INO_IMAGE) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	switch (mode) {
	case 0:		/* both < 2^63: no overflow */
		if (off + len > zr_dev_disksize(fz->dev))
			ret = -EFBIG;
		break;
	case FALLOC_FL_KEEP_SIZE:
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		ret = zr_dev_discard(fz->dev, off, len, true, &changed);
		break;
	case FALLOC_FL_ZERO_RANGE:
		ret = zr_dev_discard(fz->dev, off, len, false, &changed);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	if (changed)
		fz_touch(fz);
	fuse_reply_err(req, -ret);
}

static void fz_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	const struct zr_dev_attr *attr;
	off_t size;
	int64_t ret;

	(void)fi;
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (ino != FZ_INO_IMAGE) {
		/*
		 * A control file is one run of data of st_size bytes.  Never
		 * answer ENOSYS here: the kernel would stop asking for the
		 * image too.
		 */
		attr = fz_ino_attr(ino);
		size = attr ? (off_t)attr->size : 0;
		if (off >= size)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ? off : size);
		return;
	}
	ret = zr_dev_seek(fz->dev, (uint64_t)off, whence);
	if (ret < 0) {
		fuse_reply_err(req, (int)-ret);
		return;
	}
	fuse_reply_lseek(req, (off_t)ret);
}

static const struct fuse_lowlevel_ops fz_ops = {
	.init		= fz_init,
	.lookup		= fz_lookup,
	.getattr	= fz_getattr,
	.setattr	= fz_setattr,
	.mknod		= fz_mknod,
	.mkdir		= fz_mkdir,
	.unlink		= fz_unlink,
	.rmdir		= fz_unlink,
	.symlink	= fz_symlink,
	.rename		= fz_rename,
	.link		= fz_link,
	.create		= fz_create,
	.open		= fz_open,
	.read		= fz_read,
	.write		= fz_write,
	.flush		= fz_flush,
	.release	= fz_release,
	.fsync		= fz_fsync,
	.readdir	= fz_readdir,
	.fsyncdir	= fz_fsyncdir,
	.statfs		= fz_statfs,
	.fallocate	= fz_fallocate,
	.lseek		= fz_lseek,
};

/* ---- options ----------------------------------------------------------- */

/*
 * The fuse_opt keys: ZR_OPT_* for "name=value" (the device checks every
 * value: zr_dev_check_opts()), FZ_KEY_NOVALUE + ZR_OPT_* for one of ours
 * given without "=".  libfuse's numeric options (ZR_OPT_LIBFUSE on) are
 * held back until checked, then passed on as typed (fz_pass_opts).
 */
enum {
	FZ_KEY_NOVALUE = 100,		/* + ZR_OPT_*: given without "=" */
	FZ_KEY_NOMLOCK = 200,		/* -o nomlock */
	FZ_KEY_IGNORE,			/* generic, meaningless here */
};

#define FZ_OPT(name, idx) \
	FUSE_OPT_KEY(name "=", idx), FUSE_OPT_KEY(name, FZ_KEY_NOVALUE + idx)
#define FZ_LOPT(name, idx) FUSE_OPT_KEY(name "=", idx)

static const struct fuse_opt fz_opt_spec[] = {
	FZ_OPT("disksize", ZR_OPT_DISKSIZE),
	FZ_OPT("comp_algorithm", ZR_OPT_COMP_ALGORITHM),
	FZ_OPT("comp_level", ZR_OPT_COMP_LEVEL),
	FZ_OPT("mem_limit", ZR_OPT_MEM_LIMIT),
	FZ_OPT("threads", ZR_OPT_THREADS),
	FZ_OPT("reserve", ZR_OPT_RESERVE),
	FUSE_OPT_KEY("nomlock", FZ_KEY_NOMLOCK),
	FZ_LOPT("max_threads", ZR_OPT_MAX_THREADS),
	FZ_LOPT("max_read", ZR_OPT_MAX_READ),
	FZ_LOPT("max_write", ZR_OPT_MAX_WRITE),
	FZ_LOPT("max_background", ZR_OPT_MAX_BACKGROUND),
	FZ_LOPT("congestion_threshold", ZR_OPT_CONGESTION_THRESHOLD),
	/*
	 * Generic mount options that mount(8) passes on from /etc/fstab
	 * and libfuse 3.14 does not know.  They could not do anything: the
	 * kernel leaves the access times of FUSE files to the daemon (its
	 * inodes are S_NOATIME).  Dropped, instead of failing the mount.
	 */
	FUSE_OPT_KEY("relatime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("norelatime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("strictatime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("nostrictatime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("diratime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("nodiratime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("lazytime", FZ_KEY_IGNORE),
	FUSE_OPT_KEY("nolazytime", FZ_KEY_IGNORE),
	FUSE_OPT_END
};

/*
 * What fz_opt_proc collects: raw values (owned; the last one given
 * wins), and the arguments that are not options: [SOURCE] MOUNTPOINT, as
 * mount.fuse3(8) passes them.
 */
struct fz_opts {
	char *val[ZR_NOPTS];
	int novalue;			/* ZR_OPT_* given without "=", or -1 */
	int nomlock;
	char *pos[2];			/* [SOURCE] MOUNTPOINT */
	int npos;
};

/* Keep the value of "name=value" @arg in *@slot (the last one wins). */
static int fz_keep_value(char **slot, const char *arg)
{
	char *v = strdup(strchr(arg, '=') + 1);

	if (!v) {
		fz_log(FUSE_LOG_ERR, "out of memory");
		return -1;
	}
	free(*slot);
	*slot = v;
	return 0;
}

static int fz_opt_proc(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct fz_opts *o = data;

	(void)outargs;
	if (key >= 0 && key < ZR_NOPTS)
		return fz_keep_value(&o->val[key], arg);
	if (key >= FZ_KEY_NOVALUE && key < FZ_KEY_NOVALUE + ZR_NOPTS) {
		if (o->novalue < 0)
			o->novalue = key - FZ_KEY_NOVALUE;
		return 0;
	}
	if (key == FZ_KEY_NOMLOCK) {
		o->nomlock = 1;
		return 0;
	}
	if (key == FZ_KEY_IGNORE)
		return 0;
	if (key == FUSE_OPT_KEY_NONOPT) {
		/* Kept aside; the mount point goes back in after parsing. */
		if (o->npos == 2) {
			fz_log(FUSE_LOG_ERR, "unexpected argument '%s'; " FZ_USAGE,
			       arg);
			return -1;
		}
		o->pos[o->npos] = strdup(arg);
		if (!o->pos[o->npos]) {
			fz_log(FUSE_LOG_ERR, "out of memory");
			return -1;
		}
		o->npos++;
		return 0;
	}
	return 1;	/* everything else is for libfuse */
}

/*
 * fz_check_opts - the device's check of the raw values, into @conf.
 * Returns 0, or -EINVAL after printing one line naming the bad value.
 */
static int fz_check_opts(const struct fz_opts *o, struct zr_dev_conf *conf)
{
	struct zr_dev_opts raw = { .novalue = o->novalue };
	char msg[ZR_DEV_MSG_SIZE];
	int i;

	for (i = 0; i < ZR_NOPTS; i++)
		raw.val[i] = o->val[i];
	if (zr_dev_check_opts(&raw, conf, msg, sizeof(msg)) < 0) {
		fz_log(FUSE_LOG_ERR, "%s", msg);
		return -EINVAL;
	}
	return 0;
}

/*
 * fz_pass_opts - hand the values of libfuse's options that fz_check_opts
 * accepted on to libfuse, as typed, at the end of @args (so they win over
 * our defaults), all but max_threads, which is the loop config's.
 * Returns 0, or -1 after "out of memory".
 */
static int fz_pass_opts(const struct fz_opts *o, struct fuse_args *args)
{
	char *arg;
	int i, ret;

	for (i = ZR_OPT_LIBFUSE; i < ZR_NOPTS; i++) {
		if (i == ZR_OPT_MAX_THREADS || !o->val[i])
			continue;
		if (asprintf(&arg, "-o%s=%s", zr_dev_opt_name(i),
			     o->val[i]) < 0) {
			fz_log(FUSE_LOG_ERR, "out of memory");
			return -1;
		}
		ret = fuse_opt_add_arg(args, arg);
		free(arg);
		if (ret != 0)
			return -1;	/* libfuse said "out of memory" */
	}
	return 0;
}

static void fz_help(void)
{
	char levels[1024];

	zr_dev_algorithms_help(levels, sizeof(levels),
			       "                             ");
	printf(FZ_USAGE "\n\n"
	       "Presents MOUNTPOINT/image, a file of disksize bytes whose pages are kept\n"
	       "compressed in RAM, and MOUNTPOINT/control/ with zram's attributes.\n"
	       "Use it through a loop device: losetup -f --show --direct-io=on MOUNTPOINT/image\n"
	       "SOURCE (any word, as mount(8) passes it) is ignored; in /etc/fstab:\n"
	       "    fusezram /mnt/fz fuse.fusezram disksize=1G,nofail 0 0\n"
	       "\n"
	       "fusezram options:\n"
	       "    -o disksize=SIZE       size of image (default: 1G); SIZE is bytes or a\n"
	       "                           number with K, M, G or T (powers of 1024),\n"
	       "                           rounded up to a multiple of %u\n"
	       "    -o comp_algorithm=ALG  compressor (default: lz4)\n"
	       "    -o comp_level=N        compression level (default: the compressor's):\n"
	       "%s", ZR_PAGE_SIZE, levels);
	printf("    -o mem_limit=SIZE      most memory to use for data, rounded up to\n"
	       "                           %u bytes; 0 for no limit (default: 0)\n"
	       "    -o threads=N           threads that compress the pages of one large\n"
	       "                           request, its FUSE worker included; 1 to %d\n"
	       "                           (default: the online CPUs, %ld here)\n"
	       "    -o reserve=SIZE        free memory kept resident so that storing a page\n"
	       "                           takes no page fault, 0 to %dM (default: %lluM)\n"
	       "    -o nomlock             no memory discipline: do not lock the daemon in\n"
	       "                           RAM, set PR_SET_IO_FLUSHER or lower its\n"
	       "                           oom_score_adj (for unprivileged use; unsafe\n"
	       "                           for swap)\n"
	       "    -o max_threads=N       most FUSE worker threads, 1 to %d (libfuse's\n"
	       "                           option; default: %d here)\n"
	       "\n"
	       "FUSE options:\n", ZR_PAGE_SIZE, ZR_DEV_THREADS_MAX,
	       sysconf(_SC_NPROCESSORS_ONLN), ZR_DEV_RESERVE_MAX_MIB,
	       (unsigned long long)(ZR_RESERVE_DEFAULT >> 20),
	       ZR_DEV_THREADS_MAX, ZR_DEV_WORKERS_DEFAULT);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("    -o max_write=N, max_read=N\n"
	       "                           largest write and read in bytes, %u to %u\n"
	       "                           (default: %u and %u here)\n"
	       "    -o max_background=N    requests in flight, 1 to 65535 (default: %u)\n"
	       "    -o congestion_threshold=N\n"
	       "                           requests in flight from which the kernel\n"
	       "                           throttles, 1 to max_background (default: %u)\n"
	       "    -o max_readahead=N, [no_]async_dio, async_read, sync_read\n"
	       "                           connection tuning, see fusezram(8)\n"
	       "\nSee fusezram(8) and mount.fuse3(8).\n",
	       ZR_PAGE_SIZE, ZR_DEV_IO_MAX, FZ_DEFAULT_MAX_WRITE,
	       ZR_DEV_READ_DEFAULT, ZR_DEV_BACKGROUND_DEFAULT,
	       FZ_CONGESTION_THRESHOLD);
}

static void fz_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
	vsyslog((int)level, fmt, ap);
}

/* Exit statuses, see EXIT STATUS in fusezram(8). */
enum {
	FZ_EXIT_OK = 0,
	FZ_EXIT_USAGE = 1,	/* bad command line; nothing was mounted */
	FZ_EXIT_FAIL = 2,	/* could not set up or serve the mount */
};

/* ---- detaching -------------------------------------------------------- */

/*
 * Why not fuse_daemonize(): it forks after the mount, and the store
 * starts threads (its compactor, its workers) in zr_dev_create(), which
 * must run before the mount so that nothing is mounted when it fails.  A
 * fork would leave those threads behind in the parent.  So we fork first,
 * before the device exists, and the parent waits: it exits 0 once the
 * child reports the mount is up, or with the child's own status if the
 * child fails first (its error message went to the same stderr).  The
 * child then does what fuse_daemonize() does: setsid(), chdir("/"), stdio
 * to /dev/null.
 */

/*
 * fz_detach - fork; only the child returns.
 * Returns 0 in the child with *@notify_fd set for fz_detached(), or
 * -errno if there is no child (message printed).
 */
static int fz_detach(int *notify_fd)
{
	int pfd[2], wstatus;
	char word;
	ssize_t n;
	pid_t pid;

	/* CLOEXEC: fusermount3 (-o auto_unmount) must not keep it open. */
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		fz_log(FUSE_LOG_ERR, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		fz_log(FUSE_LOG_ERR, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid > 0) {
		close(pfd[1]);
		do
			n = read(pfd[0], &word, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(word);
		/* The child ended without a word: pass its status on. */
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : FZ_EXIT_FAIL);
	}
	close(pfd[0]);
	if (setsid() == -1)
		fz_log(FUSE_LOG_WARNING, "setsid: %s", strerror(errno));
	*notify_fd = pfd[1];
	return 0;
}

/*
 * fz_detached - the mount is up: let the parent exit 0, drop the
 * terminal, log to syslog from now on.  Cannot fail.
 */
static void fz_detached(int notify_fd)
{
	char word = FZ_EXIT_OK;
	int nullfd;

	if (chdir("/") != 0)
		fz_log(FUSE_LOG_WARNING, "chdir /: %s", strerror(errno));
	openlog(FZ_PROG, LOG_PID, LOG_DAEMON);
	fuse_set_log_func(fz_syslog);
	nullfd = open("/dev/null", O_RDWR);
	if (nullfd >= 0) {
		dup2(nullfd, STDIN_FILENO);
		dup2(nullfd, STDOUT_FILENO);
		dup2(nullfd, STDERR_FILENO);
		if (nullfd > STDERR_FILENO)
			close(nullfd);
	}
	if (write(notify_fd, &word, 1) != 1)
		fz_log(FUSE_LOG_WARNING, "cannot notify the parent: %s",
		       strerror(errno));
	close(notify_fd);
}

/* ---- memory discipline ------------------------------------------------- */

/* What of the memory discipline failed, for one warning at the end. */
struct fz_warn {
	char text[512];
	size_t len;
};

static void fz_warn_add(struct fz_warn *w, const char *what, int err)
{
	int n;

	if (w->len >= sizeof(w->text))
		return;
	n = snprintf(w->text + w->len, sizeof(w->text) - w->len, "%s%s: %s",
		     w->len ? "; " : "", what, strerror(err));
	if (n > 0)
		w->len += (size_t)n;
	if (w->len >= sizeof(w->text))
		w->len = sizeof(w->text) - 1;
}

/*
 * fz_set_io_flusher - PR_SET_IO_FLUSHER on the calling (main) thread.
 * Call before the store or any other thread exists: the flag is copied to
 * every thread created afterwards, the store's helpers and libfuse's
 * workers alike (fz_thread_check() verifies the latter).  With it the
 * kernel never makes our allocations wait for I/O, which could be swap
 * I/O to our own image.  Needs CAP_SYS_RESOURCE; failure goes into @w.
 */
static void fz_set_io_flusher(struct fz_data *fz, struct fz_warn *w)
{
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0)
		fz->io_flusher = true;
	else
		fz_warn_add(w, "PR_SET_IO_FLUSHER", errno);
}

/*
 * fz_lock_memory - keep the daemon in RAM and out of the OOM killer's
 * first choices.  mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): a page
 * is locked once touched, so the sparse page table and arena stay sparse;
 * the allocator frees its pages with fallocate punch-hole, which works on
 * locked mappings.  Then oom_score_adj FZ_OOM_SCORE_ADJ.  Needs
 * CAP_IPC_LOCK (or a large RLIMIT_MEMLOCK) and CAP_SYS_RESOURCE; failures
 * go into @w.
 */
static void fz_lock_memory(struct fz_data *fz, struct fz_warn *w)
{
	int fd;

	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
		fz->mlocked = true;
	else
		fz_warn_add(w, "mlockall", errno);

	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fz_warn_add(w, "oom_score_adj", errno);
		return;
	}
	if (write(fd, FZ_OOM_SCORE_ADJ, strlen(FZ_OOM_SCORE_ADJ)) < 0)
		fz_warn_add(w, "oom_score_adj", errno);
	else
		fz->oom_adjusted = true;
	close(fd);
}

/* ---- signals ----------------------------------------------------------- */

/*
 * SIGHUP, SIGINT and SIGTERM end the daemon, as libfuse's own handlers
 * do, but only while nobody has the image open: a loop device on it may
 * be swap, and unmounting would fail its I/O.  While it is open the
 * signal is refused with a log line, unless it is the second within
 * FZ_FORCE_WINDOW_SEC seconds of a refused one.  The handler decides
 * with atomics only and hands a message to fz_sig_logger() through a
 * pipe.  libfuse blocks these signals in its workers, and the store's
 * threads are created with every signal blocked (zr_dev_create()), so
 * the handler always runs on the main thread, whose sem_wait() (or
 * read(), with -s) it interrupts.
 */
enum {
	FZ_SIG_EXIT,		/* image not open: unmount */
	FZ_SIG_REFUSED,		/* image open: go on serving */
	FZ_SIG_FORCED,		/* second within the window: unmount */
};

struct fz_sig_msg {
	int sig;
	int what;		/* FZ_SIG_* */
	int opens;		/* zr_dev_opens() when it came */
};

/* Set before the handlers are installed, unchanged while they are. */
static struct fuse_session *fz_sig_se;
static struct fz_data *fz_sig_fz;
static int fz_sig_pipe[2] = { -1, -1 };	/* write end non-blocking */
static bool fz_sig_installed[FZ_NSIGS];
static bool fz_sig_pipe_installed;	/* SIGPIPE: ignored by us */
/*
 * CLOCK_MONOTONIC time of the last refusal, 0 for none.  Only the
 * handler touches it, and it blocks the other exit signals while it runs.
 */
static int64_t fz_sig_refused_ns;

static void fz_sig_handler(int sig)
{
	struct fz_sig_msg m = { .sig = sig, .what = FZ_SIG_EXIT };
	int saved_errno = errno;
	struct timespec ts;
	int64_t now;
	ssize_t n;

	m.opens = zr_dev_opens(fz_sig_fz->dev);
	if (m.opens > 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = fz_ts_to_ns(ts);
		if (fz_sig_refused_ns && now - fz_sig_refused_ns <=
		    FZ_FORCE_WINDOW_SEC * FZ_NSEC_PER_SEC) {
			m.what = FZ_SIG_FORCED;
		} else {
			fz_sig_refused_ns = now;
			m.what = FZ_SIG_REFUSED;
		}
	}
	if (m.what != FZ_SIG_REFUSED)
		fuse_session_exit(fz_sig_se);	/* as libfuse's handler */
	/* A full pipe loses the message, never the signal's effect. */
	n = write(fz_sig_pipe[1], &m, sizeof(m));
	(void)n;
	errno = saved_errno;
}

/* Logs what the handler decided; ends when the pipe is closed. */
static void *fz_sig_logger(void *arg)
{
	struct fz_sig_msg m;
	const char *name;
	ssize_t n;

	(void)arg;
	for (;;) {
		n = read(fz_sig_pipe[0], &m, sizeof(m));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(m))
			break;
		name = sigabbrev_np(m.sig);
		if (!name)
			name = "?";
		switch (m.what) {
		case FZ_SIG_EXIT:
			fz_log(FUSE_LOG_NOTICE, "SIG%s: unmounting", name);
			break;
		case FZ_SIG_REFUSED:
			fz_log(FUSE_LOG_WARNING,
			       "SIG%s: image in use by %d opener(s); not unmounting: swapoff, umount or losetup -d its users first, or send SIG%s again within %d s to force the unmount (the data is lost, and its users get I/O errors)",
			       name, m.opens, name, FZ_FORCE_WINDOW_SEC);
			break;
		case FZ_SIG_FORCED:
			fz_log(FUSE_LOG_WARNING,
			       "SIG%s again within %d s: forcing the unmount with the image in use by %d opener(s); its data is lost",
			       name, FZ_FORCE_WINDOW_SEC, m.opens);
			break;
		}
	}
	return NULL;
}

/*
 * fz_sig_install - the pipe, then our handler for the exit signals that
 * are not ignored (as libfuse: a daemon started with SIGHUP ignored keeps
 * it so) and SIGPIPE ignored.  Returns 0 or -errno (message printed).
 */
static int fz_sig_install(struct fuse_session *se, struct fz_data *fz)
{
	struct sigaction sa, old;
	unsigned int i;

	if (pipe2(fz_sig_pipe, O_CLOEXEC) != 0 ||
	    fcntl(fz_sig_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
		fz_log(FUSE_LOG_ERR, "pipe: %s", strerror(errno));
		return -errno;
	}
	fz_sig_se = se;
	fz_sig_fz = fz;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fz_sig_handler;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < FZ_NSIGS; i++)
		sigaddset(&sa.sa_mask, fz_exit_signals[i]);
	sa.sa_flags = 0;	/* no SA_RESTART: sem_wait() must return */
	for (i = 0; i < FZ_NSIGS; i++) {
		if (sigaction(fz_exit_signals[i], NULL, &old) != 0 ||
		    old.sa_handler != SIG_DFL)
			continue;
		if (sigaction(fz_exit_signals[i], &sa, NULL) != 0) {
			fz_log(FUSE_LOG_ERR, "sigaction: %s", strerror(errno));
			return -errno;
		}
		fz_sig_installed[i] = true;
	}
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    signal(SIGPIPE, SIG_IGN) != SIG_ERR)
		fz_sig_pipe_installed = true;
	return 0;
}

/*
 * fz_sig_remove - default handlers again; close the pipe, letting
 * @logger (NULL if it was never started) log what is left and end.  Also
 * undoes a half-done fz_sig_install().  Cannot fail.
 */
static void fz_sig_remove(const pthread_t *logger)
{
	unsigned int i;

	for (i = 0; i < FZ_NSIGS; i++)
		if (fz_sig_installed[i])
			signal(fz_exit_signals[i], SIG_DFL);
	if (fz_sig_pipe_installed)
		signal(SIGPIPE, SIG_DFL);
	if (fz_sig_pipe[1] >= 0)
		close(fz_sig_pipe[1]);
	if (logger)
		pthread_join(*logger, NULL);
	if (fz_sig_pipe[0] >= 0)
		close(fz_sig_pipe[0]);
	fz_sig_pipe[0] = fz_sig_pipe[1] = -1;
}

/* ---- main -------------------------------------------------------------- */

/* What main sets up, step by step; fz_teardown() undoes it all. */
struct fz_main {
	struct fuse_args args;
	struct fuse_cmdline_opts opts;
	struct fz_opts o;
	struct zr_dev_conf conf;
	struct fz_data fz;
	struct fuse_session *se;
	struct fuse_loop_config *loop_cfg;
	bool have_key;			/* fz_rbuf_key was created */
	int notify_fd;			/* fz_detach()'s, or -1 */
};

/*
 * fz_parse_cmdline - the command line into @m: our options checked by
 * the device, libfuse's handed on, the session made (which reports
 * unknown options).  Returns 0 to go on, 1 when done (-h, -V), -1 after
 * a message.
 */
static int fz_parse_cmdline(struct fz_main *m)
{
	if (fuse_opt_parse(&m->args, &m->o, fz_opt_spec, fz_opt_proc) != 0)
		return -1;
	/* [SOURCE] MOUNTPOINT: the source is ignored, as by mount.fuse3. */
	if (m->o.npos && fuse_opt_add_arg(&m->args, m->o.pos[m->o.npos - 1]))
		return -1;
	/*
	 * First in line (args is a copy now, so it can grow), so that the
	 * user's own fsname=, subtype= or max_read= (added back at the end
	 * by fz_pass_opts) win; default_permissions makes the kernel check
	 * mode bits.
	 */
	if (fuse_opt_insert_arg(&m->args, 1,
			"-ofsname=" FZ_PROG ",subtype=" FZ_PROG ",default_permissions"
			",max_read=" FZ_STR(ZR_DEV_READ_DEFAULT)) != 0)
		return -1;
	if (fuse_parse_cmdline(&m->args, &m->opts) != 0)
		return -1;
	if (m->opts.show_help) {
		fz_help();
		return 1;
	}
	if (m->opts.show_version) {
		printf(FZ_PROG " version %s\n", FUSEZRAM_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fflush(stdout);		/* fusermount3 --version follows */
		fuse_lowlevel_version();
		return 1;
	}
	if (fz_check_opts(&m->o, &m->conf) != 0)
		return -1;
	if (!m->opts.mountpoint) {
		fz_log(FUSE_LOG_ERR, "missing mountpoint; " FZ_USAGE);
		return -1;
	}
	if (fz_pass_opts(&m->o, &m->args) != 0)
		return -1;
	m->fz.conn_opts = fuse_parse_conn_info_opts(&m->args);
	if (!m->fz.conn_opts)
		return -1;
	/* Unknown options are reported here, before anything is created. */
	m->se = fuse_session_new(&m->args, &fz_ops, sizeof(fz_ops), &m->fz);
	return m->se ? 0 : -1;
}

/*
 * fz_make_device - the memory discipline around the device's creation:
 * the I/O flusher flag before any thread exists (it is inherited), the
 * device, then mlockall.  Returns 0, or an FZ_EXIT_* status after a
 * message.
 */
static int fz_make_device(struct fz_main *m)
{
	struct fz_data *fz = &m->fz;
	struct fz_warn warn = { .len = 0 };
	int ret;

	fz->discipline = !m->o.nomlock;
	if (fz->discipline)
		fz_set_io_flusher(fz, &warn);
	ret = zr_dev_create(&m->conf, &fz->dev);
	if (ret < 0) {
		fz_log(FUSE_LOG_ERR, "cannot create a store of %llu bytes (comp_algorithm %s): %s",
		       (unsigned long long)m->conf.zc.disksize,
		       m->conf.zc.algorithm, strerror(-ret));
		return ret == -EINVAL ? FZ_EXIT_USAGE : FZ_EXIT_FAIL;
	}
	if (fz->discipline)
		fz_lock_memory(fz, &warn);
	if (warn.len)
		fz_log(FUSE_LOG_WARNING,
		       "warning: memory discipline incomplete (%s; mlockall needs CAP_IPC_LOCK, the others CAP_SYS_RESOURCE): the daemon may be swapped out or stall in reclaim, so swap on this image can deadlock under memory pressure; -o nomlock turns the discipline, and this warning, off",
		       warn.text);
	zr_dev_set_discipline(fz->dev, &(struct zr_dev_discipline){
		.on = fz->discipline, .mlocked = fz->mlocked,
		.io_flusher = fz->io_flusher,
		.oom_score_adj = fz->oom_adjusted ? FZ_OOM_SCORE_ADJ : NULL,
	});
	return 0;
}

/* fz_init_data - the image's attributes and the read buffers' size. */
static void fz_init_data(struct fz_main *m)
{
	struct fz_data *fz = &m->fz;
	struct zr_config zc;

	fz->max_read = m->conf.max_read;
	clock_gettime(CLOCK_REALTIME, &fz->mount_time);
	fz->img_mode = 0600;
	fz->img_uid = fz->uid;
	fz->img_gid = fz->gid;
	fz->img_atime = fz->mount_time;
	atomic_init(&fz->img_mtime_ns, fz_ts_to_ns(fz->mount_time));
	atomic_init(&fz->img_ctime_ns, fz_ts_to_ns(fz->mount_time));
	atomic_init(&fz->read_bufsize, (size_t)ZR_DEV_IO_MAX);
	if (!m->opts.debug)
		return;
	zr_dev_get_config(fz->dev, &zc);
	fz_log(FUSE_LOG_DEBUG, "disksize=%llu comp_algorithm=%s comp_level=%d mem_limit=%llu threads=%u max_threads=%u mlock=%d io_flusher=%d",
	       (unsigned long long)zc.disksize, zc.algorithm, zc.level,
	       (unsigned long long)zc.mem_limit,
	       m->conf.threads, m->conf.max_threads, fz->mlocked,
	       fz->io_flusher);
}

/* fz_make_loop - the read-buffer key and the worker loop's config. */
static int fz_make_loop(struct fz_main *m)
{
	int ret;

	ret = pthread_key_create(&fz_rbuf_key, fz_rbuf_free);
	if (ret != 0) {
		fz_log(FUSE_LOG_ERR, "pthread_key_create: %s", strerror(ret));
		return -1;
	}
	m->have_key = true;
	if (m->opts.singlethread)
		return 0;
	m->loop_cfg = fuse_loop_cfg_create();
	if (!m->loop_cfg) {
		fz_log(FUSE_LOG_ERR, "out of memory");
		return -1;
	}
	fuse_loop_cfg_set_clone_fd(m->loop_cfg, (unsigned int)m->opts.clone_fd);
	fuse_loop_cfg_set_max_threads(m->loop_cfg, m->conf.max_threads);
	/* libfuse's default (-1: keep idle workers) unless given. */
	if (m->opts.max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(m->loop_cfg,
					       m->opts.max_idle_threads);
	return 0;
}

/*
 * fz_serve - our signal handlers, the mount, the parent told (unless
 * -f), requests served until fusermount3 -u or an exit signal, the
 * unmount.  Returns FZ_EXIT_OK or FZ_EXIT_FAIL.
 */
static int fz_serve(struct fz_main *m)
{
	int status = FZ_EXIT_FAIL, ret;
	bool have_logger = false;
	sigset_t saved_mask;
	pthread_t logger;

	/* Ours instead of fuse_set_signal_handlers(): see fz_sig_handler. */
	if (fz_sig_install(m->se, &m->fz) != 0)
		goto out_signals;
	if (fuse_session_mount(m->se, m->opts.mountpoint) != 0)
		goto out_signals;
	if (m->opts.foreground) {
		if (chdir("/") != 0)
			fz_log(FUSE_LOG_WARNING, "chdir /: %s", strerror(errno));
	} else {
		fz_detached(m->notify_fd);
	}
	/* After fz_detached(): it logs through the final log function. */
	fz_block_exit_signals(true, &saved_mask);
	ret = pthread_create(&logger, NULL, fz_sig_logger, NULL);
	fz_block_exit_signals(false, &saved_mask);
	if (ret != 0)
		fz_log(FUSE_LOG_WARNING, "cannot start the signal logger: %s",
		       strerror(ret));
	else
		have_logger = true;

	if (m->opts.singlethread)
		ret = fuse_session_loop(m->se);
	else
		ret = fuse_session_loop_mt(m->se, m->loop_cfg);
	if (ret < 0)
		fz_log(FUSE_LOG_ERR, "session ended: %s", strerror(-ret));
	else
		status = FZ_EXIT_OK;
	fuse_session_unmount(m->se);
out_signals:
	fz_sig_remove(have_logger ? &logger : NULL);
	return status;
}

/* fz_teardown - undo whatever of @m was set up, in reverse order. */
static void fz_teardown(struct fz_main *m)
{
	int i;

	fuse_loop_cfg_destroy(m->loop_cfg);
	if (m->have_key) {
		free(pthread_getspecific(fz_rbuf_key));	/* -s: main's */
		pthread_key_delete(fz_rbuf_key);
	}
	/* Every worker has been joined: no I/O can run any more. */
	zr_dev_destroy(m->fz.dev);
	if (m->se)
		fuse_session_destroy(m->se);
	free(m->opts.mountpoint);
	free(m->fz.conn_opts);
	for (i = 0; i < ZR_NOPTS; i++)
		free(m->o.val[i]);
	for (i = 0; i < m->o.npos; i++)
		free(m->o.pos[i]);
	fuse_opt_free_args(&m->args);
	pthread_mutex_destroy(&m->fz.attr_lock);
}

int main(int argc, char *argv[])
{
	static struct fz_main m;
	int status, ret;

	m.args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	m.o.novalue = -1;
	m.notify_fd = -1;
	m.fz.uid = getuid();
	m.fz.gid = getgid();
	pthread_mutex_init(&m.fz.attr_lock, NULL);
	atomic_init(&m.fz.snap_bytes, 0);
	atomic_init(&m.fz.io_flusher_warned, false);

	ret = fz_parse_cmdline(&m);
	if (ret != 0) {
		status = ret > 0 ? FZ_EXIT_OK : FZ_EXIT_USAGE;
		goto out;
	}
	/* From here on, failures are not the command line's fault. */
	status = FZ_EXIT_FAIL;
	/* Before the device: its threads must not be forked away. */
	if (!m.opts.foreground && fz_detach(&m.notify_fd) != 0)
		goto out;
	status = fz_make_device(&m);
	if (status != 0)
		goto out;
	fz_init_data(&m);
	status = FZ_EXIT_FAIL;
	if (fz_make_loop(&m) != 0)
		goto out;
	status = fz_serve(&m);
out:
	fz_teardown(&m);
	return status;
}
