/*
 * fusezram - a compressed RAM disk presented as one file through FUSE.
 *
 * This file is the FUSE glue and nothing else: option parsing, a fixed
 * namespace of a few inodes, and the translation of FUSE low-level
 * requests into calls on the store (store/zr_store.h).  All data logic
 * (pages, compression, statistics) lives in the store; errors come back
 * from it as negative errno and only this file turns them into
 * fuse_reply_err(req, -ret).
 *
 * The mount holds:
 *
 *	image			regular file of exactly disksize bytes
 *	control/		kernel zram's sysfs attributes, one row each
 *	control/disksize	of fz_attrs[] below, plus "summary", a
 *	control/mm_stat ...	report in plain words
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
 * Control files are snapshots: show() runs once at open into a per-open
 * buffer (fi->fh) and reads are served from it, like sysfs.  They are
 * opened with direct_io, so their st_size (4096, as in sysfs) does not
 * limit or pad what read(2) returns.  Write access is checked twice: the
 * kernel checks mode bits (we mount with default_permissions), and open
 * refuses writing an attribute that has no store() with EACCES even to
 * root, as kernfs does.  Each write(2) is one store() call.
 *
 * Memory discipline (unless -o nomlock): the daemon may be the swap
 * device of the machine it runs on, so it must not itself be swapped out
 * or stall in reclaim that waits on its own I/O.  Before the store or any
 * thread exists the main thread sets PR_SET_IO_FLUSHER (inherited by
 * every thread created later: allocations never recurse into I/O); after
 * the store exists it calls mlockall(MCL_CURRENT | MCL_FUTURE |
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
 * Locking:
 *	fz_data.store_lock (a reader/writer lock) protects the store
 *	pointer, disksize and the configuration the store was made with.
 *	Every request that touches them takes it shared (image I/O,
 *	getattr, statfs, control files); only replacing the store takes it
 *	exclusive (reset, and disksize, comp_algorithm and
 *	algorithm_params while the disk is empty), and waits for the
 *	requests in flight.  Writer-preferring, never taken recursively.
 *	Its cost on the I/O path is one atomic add and one atomic sub on a
 *	shared line per request; see fz_store_lock_shared().
 *	  -> the store's own locks (zr_store.h), taken inside store calls.
 *	fz_data.attr_lock protects the image's mode, uid, gid and atime;
 *	a leaf, never held across a store call.  The image's mtime and
 *	ctime are atomics: every write or discard may bump them, but at
 *	most once per second of CLOCK_REALTIME_COARSE, so the cache line
 *	stays shared on the I/O path.
 *	fz_data.img_opens, the number of open handles of the image, is an
 *	atomic, changed with store_lock held shared, read by replacers
 *	(exclusive, so it cannot rise meanwhile) and by the signal handler.
 *	The per-thread read buffers are thread-local and need no lock.
 *
 * TODO:
 *	- control/idle needs zr_mark_idle() from the store; until then a
 *	  valid write fails with EOPNOTSUPP (fz_mark_idle()).
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

#include "compressors/zcomp.h"
#include "store/zr_store.h"
#include "store/zs_pool.h"

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

/* zram's own default is chosen by its users; 1G is a useful swap size. */
#define FZ_DEFAULT_DISKSIZE (1ULL << 30)
/*
 * FUSE worker threads (libfuse's max_threads).  The loop driver queues up
 * to 128 requests, and the kernel lets max_background (FZ_MAX_BACKGROUND)
 * of them be in flight as async direct I/O.  Each one holds a worker
 * thread while it is compressed or decompressed, so 16 threads keep 16 in
 * the store at once: past the core count of most machines, where more
 * threads only add switching.
 */
#define FZ_DEFAULT_FUSE_THREADS 16
/*
 * -o threads=: the threads that compress one large request, the calling
 * worker included; default the online CPUs (zram compresses on every
 * CPU).  Also the upper bound of max_threads.
 */
#define FZ_MAX_THREADS 1024
/*
 * Largest read or write: libfuse 3.14 sizes its receive buffers for
 * FUSE_MAX_MAX_PAGES (256) pages and derives max_pages from max_write,
 * so 1 MiB is the most it can take; the kernel splits larger direct I/O
 * into requests of that size.
 */
#define FZ_MAX_IO (1u << 20)
/* Async direct I/O in flight, and where the kernel starts throttling. */
#define FZ_MAX_BACKGROUND 64
#define FZ_CONGESTION_THRESHOLD 48

/* Names never change; attributes of everything but the image rarely. */
#define FZ_ENTRY_TIMEOUT 86400.0
#define FZ_ATTR_TIMEOUT 1.0
#define FZ_IMAGE_ATTR_TIMEOUT 0.0

/* A control file's content, at most one page, as sysfs ... */
#define FZ_ATTR_BUFSZ 4096
/* ... except control/summary: one line per size class in use. */
#define FZ_SUMMARY_BUFSZ (64 * 1024)

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
	FZ_INO_ATTR0,		/* first row of fz_attrs[]; one inode per row */
};

#define fz_log(level, fmt, ...) \
	fuse_log(level, FZ_PROG ": " fmt "\n", ##__VA_ARGS__)

struct fz_data;

/*
 * struct fz_attr - one file in control/, the analogue of a zram sysfs
 * attribute.  Add a row to fz_attrs[] to add a file.
 *
 * @name:  file name in control/.
 * @mode:  permission bits (0444 read-only, 0644 read-write, 0200
 *         write-only); the kernel enforces them (default_permissions).
 * @show:  write the attribute's text into @buf (@size bytes, NUL
 *         included) and return its length, or -errno.  NULL if the
 *         attribute cannot be read.  Called at open; may run concurrently
 *         with I/O and with other show/store calls.
 * @store: act on @len bytes the user wrote (@buf is NUL-terminated at
 *         @buf[@len]; at most FZ_ATTR_BUFSZ bytes, the rest of a longer
 *         write is dropped, as in kernfs).  Return 0, or -errno: -EINVAL
 *         for text it does not understand.  NULL if read-only.
 *
 * Both get the whole fz_data, not just the store, as zram's get the
 * device: reset and disksize will replace the store itself.
 */
struct fz_attr {
	const char *name;
	mode_t mode;
	int (*show)(struct fz_data *fz, char *buf, size_t size);
	int (*store)(struct fz_data *fz, const char *buf, size_t len);
};

/* An open control file: the snapshot taken at open.  Owned by fi->fh. */
struct fz_open_attr {
	const struct fz_attr *attr;
	size_t len;			/* bytes of buf that are content */
	char buf[FZ_ATTR_BUFSZ];
};

/* Everything the handlers share; fuse_req_userdata(). */
struct fz_data {
	struct zr_store *st;		/* set before mount, never changes */
	uint64_t disksize;		/* bytes, multiple of ZR_PAGE_SIZE */
	uid_t uid;			/* owner of the directories and */
	gid_t gid;			/* control files: the mounting user */
	struct timespec mount_time;	/* their times */
	struct fuse_conn_info_opts *conn_opts;	/* -o max_write= etc. */
	/* Set by init before any I/O, then only read; atomic for TSan. */
	_Atomic size_t read_bufsize;

	pthread_mutex_t attr_lock;	/* protects the four fields below */
	mode_t img_mode;		/* permission bits only */
	uid_t img_uid;
	gid_t img_gid;
	struct timespec img_atime;
	_Atomic int64_t img_mtime_ns;	/* ns since the epoch */
	_Atomic int64_t img_ctime_ns;
};

/* ---- control/ attributes ---------------------------------------------- */

/* kernel zram's mm_stat, field for field. */
static int fz_show_mm_stat(struct fz_data *fz, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(fz->st, &s);
	return snprintf(buf, size,
			"%8llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu\n",
			(unsigned long long)s.orig_data_size,
			(unsigned long long)s.compr_data_size,
			(unsigned long long)s.mem_used_total,
			(unsigned long long)s.mem_limit,
			(unsigned long long)s.mem_used_max,
			(unsigned long long)s.same_pages,
			(unsigned long long)s.pages_compacted,
			(unsigned long long)s.huge_pages,
			(unsigned long long)s.huge_pages_since);
}

/* kernel zram's io_stat; the third field (invalid_io) is always 0 there. */
static int fz_show_io_stat(struct fz_data *fz, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(fz->st, &s);
	return snprintf(buf, size, "%8llu %8llu 0 %8llu\n",
			(unsigned long long)s.failed_reads,
			(unsigned long long)s.failed_writes,
			(unsigned long long)s.notify_free);
}

/* kernel zram's debug_stat, version 1. */
static int fz_show_debug_stat(struct fz_data *fz, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(fz->st, &s);
	return snprintf(buf, size, "version: %d\n0 %8llu\n", 1,
			(unsigned long long)s.miss_free);
}

static const struct fz_attr fz_attrs[] = {
	{ "mm_stat",	0444, fz_show_mm_stat,		NULL },
	{ "io_stat",	0444, fz_show_io_stat,		NULL },
	{ "debug_stat",	0444, fz_show_debug_stat,	NULL },
};

#define FZ_NATTRS (sizeof(fz_attrs) / sizeof(fz_attrs[0]))

/* The row behind inode @ino, or NULL if @ino is not a control file. */
static const struct fz_attr *fz_ino_attr(fuse_ino_t ino)
{
	if (ino < FZ_INO_ATTR0 || ino - FZ_INO_ATTR0 >= FZ_NATTRS)
		return NULL;
	return &fz_attrs[ino - FZ_INO_ATTR0];
}

/* ---- the namespace ----------------------------------------------------- */

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
	if (dir == FZ_INO_CONTROL && idx < FZ_NATTRS) {
		*name = fz_attrs[idx].name;
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

/*
 * fz_stat - fill @stbuf for inode @ino.
 * Returns 0, or -ENOENT for an inode that does not exist.  Takes
 * attr_lock for the image.
 */
static int fz_stat(struct fz_data *fz, fuse_ino_t ino, struct stat *stbuf)
{
	const struct fz_attr *attr;
	struct zr_stats s;

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
		zr_get_stats(fz->st, &s);
		stbuf->st_nlink = 1;
		stbuf->st_size = (off_t)fz->disksize;
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
		return 0;
	}

	attr = fz_ino_attr(ino);
	if (!attr)
		return -ENOENT;
	stbuf->st_mode = S_IFREG | attr->mode;
	stbuf->st_nlink = 1;
	stbuf->st_size = FZ_ATTR_BUFSZ;
	return 0;
}

/* ---- the per-thread read buffer ---------------------------------------- */

/*
 * Each worker thread gets one buffer for read replies, allocated at its
 * first read and sized to the largest read the kernel will send, so the
 * read path does not allocate after warm-up.  libfuse 3.14 never retires
 * idle workers by default (max_idle_threads -1); the key's destructor
 * frees a buffer when its thread ends (libfuse cancels workers at exit).
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

	conn->max_write = FZ_MAX_IO;
	/*
	 * max_readahead is the kernel's offer and can only be lowered; keep
	 * it.  It only matters for control files: the image bypasses the
	 * page cache.
	 */
	conn->max_background = FZ_MAX_BACKGROUND;
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
	 * pages, and at most -o max_read= if that was given.
	 */
	rbuf = ((size_t)conn->max_write + ZR_PAGE_SIZE - 1) &
		~(size_t)(ZR_PAGE_SIZE - 1);
	if (conn->max_read && conn->max_read < rbuf)
		rbuf = conn->max_read;
	atomic_store_explicit(&fz->read_bufsize, rbuf, memory_order_relaxed);
}

static void fz_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fz_data *fz = fuse_req_userdata(req);
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
	struct fz_data *fz = fuse_req_userdata(req);
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
 * Only the image's attributes change: its mode, owner and times, which
 * are remembered.  Its size is disksize, always; resizing it to anything
 * else (truncate(2), O_TRUNC without FUSE_CAP_ATOMIC_O_TRUNC) is refused
 * with EPERM before anything is changed.
 */
static void fz_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
	struct timespec now;
	struct stat stbuf;

	(void)fi;
	if (ino != FZ_INO_IMAGE) {
		fuse_reply_err(req, fz_stat(fz, ino, &stbuf) ? ENOENT : EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (uint64_t)attr->st_size != fz->disksize) {
		fz_log(FUSE_LOG_WARNING,
		       "refusing to resize image to %lld bytes: its size is fixed at disksize (%llu bytes)",
		       (long long)attr->st_size,
		       (unsigned long long)fz->disksize);
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

static void fz_open_image(fuse_req_t req, struct fz_data *fz,
			  struct fuse_file_info *fi)
{
	struct fuse_open_out out;

	/* FUSE_CAP_ATOMIC_O_TRUNC: the truncation comes with the open. */
	if (fi->flags & O_TRUNC) {
		fz_log(FUSE_LOG_WARNING,
		       "refusing O_TRUNC open of image: its size is fixed at disksize (%llu bytes)",
		       (unsigned long long)fz->disksize);
		fuse_reply_err(req, EPERM);
		return;
	}

	/*
	 * libfuse 3.14's struct fuse_file_info has no bit for
	 * FOPEN_PARALLEL_DIRECT_WRITES, so build the reply ourselves.
	 * fuse_reply_open() zeroes a struct fuse_open_out, sets fh and the
	 * FOPEN_* bits from fi, and sends it with send_reply_ok(req, &arg,
	 * sizeof(arg)); fuse_reply_buf(req, &out, sizeof(out)) is the same
	 * send_reply_ok() call, so the bytes on the wire are identical.  fh
	 * stays 0: the image needs no per-open state.  O_DIRECT opens need
	 * nothing more: the kernel handles them like any direct_io file.
	 */
	memset(&out, 0, sizeof(out));
	out.fh = 0;
	out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	fuse_reply_buf(req, (const char *)&out, sizeof(out));
}

static void fz_open_attr(fuse_req_t req, struct fz_data *fz,
			 const struct fz_attr *attr, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct fz_open_attr *oa;
	int ret;

	/* As kernfs: refused even to root, whatever the mode bits say. */
	if ((acc != O_WRONLY && !attr->show) ||
	    (acc != O_RDONLY && !attr->store)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	oa = malloc(sizeof(*oa));
	if (!oa) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	oa->attr = attr;
	oa->len = 0;
	if (attr->show) {
		ret = attr->show(fz, oa->buf, sizeof(oa->buf));
		if (ret < 0)
			goto out_free;
		oa->len = (size_t)ret < sizeof(oa->buf) ?
			(size_t)ret : sizeof(oa->buf) - 1;
	}

	fi->fh = (uint64_t)(uintptr_t)oa;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* If the open was interrupted, no release will come for it. */
	if (fuse_reply_open(req, fi) != 0)
		free(oa);
	return;

out_free:
	free(oa);
	fuse_reply_err(req, -ret);
}

static void fz_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
	const struct fz_attr *attr;

	if (ino == FZ_INO_IMAGE) {
		fz_open_image(req, fz, fi);
		return;
	}
	attr = fz_ino_attr(ino);
	if (!attr) {
		fuse_reply_err(req, fz_is_dir(ino) ? EISDIR : ENOENT);
		return;
	}
	fz_open_attr(req, fz, attr, fi);
}

static void fz_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (fz_ino_attr(ino))
		free((struct fz_open_attr *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
	struct fz_open_attr *oa;
	ssize_t ret;
	char *buf;

	if (ino != FZ_INO_IMAGE) {
		oa = (struct fz_open_attr *)(uintptr_t)fi->fh;
		if ((uint64_t)off >= oa->len) {
			fuse_reply_buf(req, NULL, 0);
			return;
		}
		if (size > oa->len - (size_t)off)
			size = oa->len - (size_t)off;
		fuse_reply_buf(req, oa->buf + off, size);
		return;
	}

	buf = fz_rbuf_get(fz, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = zr_read(fz->st, buf, size, (uint64_t)off);
	if (ret < 0) {
		fuse_reply_err(req, (int)-ret);
		return;
	}
	fuse_reply_buf(req, buf, (size_t)ret);
}

static void fz_write_attr(fuse_req_t req, struct fz_data *fz,
			  struct fz_open_attr *oa, const char *buf,
			  size_t size)
{
	char text[FZ_ATTR_BUFSZ + 1];
	size_t len = size < FZ_ATTR_BUFSZ ? size : FZ_ATTR_BUFSZ;
	int ret;

	if (!oa->attr->store) {		/* open refused it; be sure */
		fuse_reply_err(req, EACCES);
		return;
	}
	if (len == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	ret = oa->attr->store(fz, text, len);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fuse_reply_write(req, size);
}

static void fz_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
	ssize_t ret;

	if (ino != FZ_INO_IMAGE) {
		fz_write_attr(req, fz, (struct fz_open_attr *)(uintptr_t)fi->fh,
			      buf, size);
		return;
	}
	/* -EFBIG at or past the end: the image never grows. */
	ret = zr_write(fz->st, buf, size, (uint64_t)off);
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
	struct fz_data *fz = fuse_req_userdata(req);
	struct statvfs sv;
	struct zr_stats s;
	uint64_t pages = fz->disksize >> ZR_PAGE_SHIFT;

	(void)ino;
	zr_get_stats(fz->st, &s);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = ZR_PAGE_SIZE;
	sv.f_frsize = ZR_PAGE_SIZE;
	sv.f_blocks = pages;
	sv.f_bfree = pages - (s.pages_stored < pages ? s.pages_stored : pages);
	sv.f_bavail = sv.f_bfree;
	sv.f_files = FZ_INO_ATTR0 - FZ_INO_ROOT + FZ_NATTRS;
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
 *   PUNCH_HOLE|KEEP_SIZE,	zr_discard, clipped at the end; a range
 *   ZERO_RANGE|KEEP_SIZE	starting at or past the end: nothing, 0
 *   ZERO_RANGE			zr_discard inside the size; a range ending
 *				past the end: EFBIG, nothing done
 *   anything else		EOPNOTSUPP
 */
static void fz_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
	uint64_t off = (uint64_t)offset, end;
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
	end = off + (uint64_t)length;	/* both < 2^63: no overflow */

	switch (mode) {
	case 0:
		if (end > fz->disksize)
			ret = -EFBIG;
		break;
	case FALLOC_FL_KEEP_SIZE:
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		if (off < fz->disksize) {
			ret = zr_discard(fz->st, off, (uint64_t)length);
			fz_touch(fz);
		}
		break;
	case FALLOC_FL_ZERO_RANGE:
		if (end > fz->disksize) {
			ret = -EFBIG;
			break;
		}
		ret = zr_discard(fz->st, off, (uint64_t)length);
		fz_touch(fz);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	fuse_reply_err(req, -ret);
}

static void fz_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fz_data *fz = fuse_req_userdata(req);
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
		if (off >= FZ_ATTR_BUFSZ)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ?
					 off : FZ_ATTR_BUFSZ);
		return;
	}
	ret = zr_seek(fz->st, (uint64_t)off, whence);
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

/* Our -o options, in the order of --help.  Values are checked after parsing. */
enum {
	FZ_OPT_DISKSIZE,
	FZ_OPT_COMP_ALGORITHM,
	FZ_OPT_COMP_LEVEL,
	FZ_OPT_MEM_LIMIT,
	FZ_OPT_THREADS,
	FZ_NOPTS,
	FZ_KEY_NOVALUE = 100,		/* + FZ_OPT_*: given without "=" */
	FZ_KEY_MAX_THREADS = 200,	/* libfuse's -o max_threads= */
};

static const char *const fz_opt_names[FZ_NOPTS] = {
	"disksize", "comp_algorithm", "comp_level", "mem_limit", "threads",
};

#define FZ_OPT(name, idx) \
	FUSE_OPT_KEY(name "=", idx), FUSE_OPT_KEY(name, FZ_KEY_NOVALUE + idx)

static const struct fuse_opt fz_opt_spec[] = {
	FZ_OPT("disksize", FZ_OPT_DISKSIZE),
	FZ_OPT("comp_algorithm", FZ_OPT_COMP_ALGORITHM),
	FZ_OPT("comp_level", FZ_OPT_COMP_LEVEL),
	FZ_OPT("mem_limit", FZ_OPT_MEM_LIMIT),
	FZ_OPT("threads", FZ_OPT_THREADS),
	FUSE_OPT_KEY("max_threads=", FZ_KEY_MAX_THREADS),
	FUSE_OPT_END
};

/* What fz_opt_proc collects: raw values, the last one given wins. */
struct fz_opts {
	char *val[FZ_NOPTS];
	int novalue;			/* FZ_OPT_* given without "=", or -1 */
	int max_threads_set;
};

/* The checked configuration. */
struct fz_conf {
	struct zr_config zc;
	const struct zcomp_backend *be;
	unsigned int threads;
};

static int fz_opt_proc(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct fz_opts *o = data;
	char *v;

	(void)outargs;
	if (key >= 0 && key < FZ_NOPTS) {
		v = strdup(strchr(arg, '=') + 1);
		if (!v) {
			fz_log(FUSE_LOG_ERR, "out of memory");
			return -1;
		}
		free(o->val[key]);
		o->val[key] = v;
		return 0;
	}
	if (key >= FZ_KEY_NOVALUE && key < FZ_KEY_NOVALUE + FZ_NOPTS) {
		if (o->novalue < 0)
			o->novalue = key - FZ_KEY_NOVALUE;
		return 0;
	}
	if (key == FZ_KEY_MAX_THREADS)
		o->max_threads_set = 1;
	return 1;	/* everything else is for libfuse */
}

/* "lz4, lz4hc, zstd" into @buf. */
static void fz_backend_list(char *buf, size_t size)
{
	const struct zcomp_backend *const *be;
	size_t pos = 0;

	buf[0] = '\0';
	for (be = zcomp_backends(); *be && pos < size; be++) {
		int n = snprintf(buf + pos, size - pos, "%s%s",
				 pos ? ", " : "", (*be)->name);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

/*
 * fz_check_opts - turn the raw values into @conf.
 * Returns 0, or -EINVAL after printing one line naming the bad value.
 */
static int fz_check_opts(const struct fz_opts *o, struct fz_conf *conf)
{
	const char *v;
	char list[128];
	uint64_t size;
	int ret, level, n;

	memset(conf, 0, sizeof(*conf));
	if (o->novalue >= 0) {
		fz_log(FUSE_LOG_ERR, "option '%s' needs a value, as in -o %s=...",
		       fz_opt_names[o->novalue], fz_opt_names[o->novalue]);
		return -EINVAL;
	}

	conf->zc.disksize = FZ_DEFAULT_DISKSIZE;
	v = o->val[FZ_OPT_DISKSIZE];
	if (v) {
		ret = fz_parse_size(v, &size);
		if (ret == -EINVAL) {
			fz_log(FUSE_LOG_ERR, "invalid disksize '%s': expected a size such as 512M or 4G", v);
			return -EINVAL;
		}
		if (ret == -ERANGE || size > FZ_SIZE_MAX) {
			fz_log(FUSE_LOG_ERR, "invalid disksize '%s': too large", v);
			return -EINVAL;
		}
		if (size == 0) {
			fz_log(FUSE_LOG_ERR, "invalid disksize '%s': must be greater than 0", v);
			return -EINVAL;
		}
		conf->zc.disksize = fz_round_page(size);
	}

	v = o->val[FZ_OPT_COMP_ALGORITHM];
	conf->zc.algorithm = v ? v : "lz4";
	conf->be = zcomp_find(conf->zc.algorithm);
	if (!conf->be) {
		fz_backend_list(list, sizeof(list));
		fz_log(FUSE_LOG_ERR, "invalid comp_algorithm '%s': expected one of %s",
		       conf->zc.algorithm, list);
		return -EINVAL;
	}

	conf->zc.level = ZCOMP_LEVEL_DEFAULT;
	v = o->val[FZ_OPT_COMP_LEVEL];
	if (v) {
		if (fz_parse_int(v, &level) < 0 ||
		    level < conf->be->level_min || level > conf->be->level_max) {
			fz_log(FUSE_LOG_ERR, "invalid comp_level '%s': expected an integer from %d to %d for %s",
			       v, conf->be->level_min, conf->be->level_max,
			       conf->be->name);
			return -EINVAL;
		}
		conf->zc.level = level;
	}

	conf->zc.mem_limit = 0;
	v = o->val[FZ_OPT_MEM_LIMIT];
	if (v) {
		ret = fz_parse_size(v, &size);
		if (ret == -EINVAL) {
			fz_log(FUSE_LOG_ERR, "invalid mem_limit '%s': expected a size such as 512M or 4G, or 0 for no limit", v);
			return -EINVAL;
		}
		if (ret == -ERANGE || size > FZ_SIZE_MAX) {
			fz_log(FUSE_LOG_ERR, "invalid mem_limit '%s': too large", v);
			return -EINVAL;
		}
		conf->zc.mem_limit = fz_round_page(size);
	}

	conf->threads = FZ_DEFAULT_THREADS;
	v = o->val[FZ_OPT_THREADS];
	if (v) {
		if (fz_parse_int(v, &n) < 0 || n < 1 || n > FZ_MAX_THREADS) {
			fz_log(FUSE_LOG_ERR, "invalid threads '%s': expected an integer from 1 to %d",
			       v, FZ_MAX_THREADS);
			return -EINVAL;
		}
		conf->threads = (unsigned int)n;
	}
	return 0;
}

static void fz_help(void)
{
	const struct zcomp_backend *const *be;

	printf(FZ_USAGE "\n\n"
	       "Presents MOUNTPOINT/image, a file of disksize bytes whose pages are kept\n"
	       "compressed in RAM, and MOUNTPOINT/control/ with zram-style statistics.\n"
	       "Use it through a loop device: losetup -f --show --direct-io=on MOUNTPOINT/image\n"
	       "\n"
	       "fusezram options:\n"
	       "    -o disksize=SIZE       size of image (default: 1G); SIZE is bytes or a\n"
	       "                           number with K, M, G or T (powers of 1024),\n"
	       "                           rounded up to a multiple of 4096\n"
	       "    -o comp_algorithm=ALG  compressor (default: lz4)\n"
	       "    -o comp_level=N        compression level (default: the compressor's):\n");
	for (be = zcomp_backends(); *be; be++)
		printf("                             %-6s %d to %d, default %d\n",
		       (*be)->name, (*be)->level_min, (*be)->level_max,
		       (*be)->level_default);
	printf("    -o mem_limit=SIZE      most memory to use for data, rounded up to\n"
	       "                           4096 bytes; 0 for no limit (default: 0)\n"
	       "    -o threads=N           most FUSE worker threads, 1 to %d (default: %d);\n"
	       "                           -o max_threads=N below is the same, but its\n"
	       "                           default is %d here\n"
	       "\n"
	       "FUSE options:\n", FZ_MAX_THREADS, FZ_DEFAULT_THREADS,
	       FZ_DEFAULT_THREADS);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("    -o max_write=N, max_background=N, congestion_threshold=N,\n"
	       "       max_readahead=N, [no_]async_dio, async_read, sync_read\n"
	       "                           connection tuning, see fuse_common.h\n"
	       "\nSee fusezram(8) and mount.fuse3(8).\n");
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
 * starts threads (its compactor, its workers) in zr_store_create(), which
 * must run before the mount so that nothing is mounted when it fails.  A
 * fork would leave those threads behind in the parent.  So we fork first,
 * before the store exists, and the parent waits: it exits 0 once the
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

/* ---- main -------------------------------------------------------------- */

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct fz_opts o;
	struct fz_conf conf;
	struct fz_data fz;
	int status = FZ_EXIT_USAGE;
	int notify_fd = -1;
	int ret, i;

	memset(&opts, 0, sizeof(opts));
	memset(&o, 0, sizeof(o));
	o.novalue = -1;
	memset(&fz, 0, sizeof(fz));
	fz.uid = getuid();
	fz.gid = getgid();
	pthread_mutex_init(&fz.attr_lock, NULL);

	if (fuse_opt_parse(&args, &o, fz_opt_spec, fz_opt_proc) != 0)
		goto out_args;
	/*
	 * First in line (args is a copy now, so it can grow), so that the
	 * user's own fsname= or subtype= win; default_permissions makes the
	 * kernel check mode bits.
	 */
	if (fuse_opt_insert_arg(&args, 1,
			"-ofsname=" FZ_PROG ",subtype=" FZ_PROG ",default_permissions") != 0)
		goto out_args;
	fz.conn_opts = fuse_parse_conn_info_opts(&args);
	if (!fz.conn_opts)
		goto out_args;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;

	if (opts.show_help) {
		fz_help();
		status = FZ_EXIT_OK;
		goto out_args;
	}
	if (opts.show_version) {
		printf(FZ_PROG " version %s\n", FUSEZRAM_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fflush(stdout);		/* fusermount3 --version follows */
		fuse_lowlevel_version();
		status = FZ_EXIT_OK;
		goto out_args;
	}
	if (fz_check_opts(&o, &conf) != 0)
		goto out_args;
	if (!opts.mountpoint) {
		fz_log(FUSE_LOG_ERR, "missing mountpoint; " FZ_USAGE);
		goto out_args;
	}
	if (!o.val[FZ_OPT_THREADS] && o.max_threads_set) {
		if (opts.max_threads < 1 || opts.max_threads > FZ_MAX_THREADS) {
			fz_log(FUSE_LOG_ERR, "invalid max_threads '%u': expected an integer from 1 to %d",
			       opts.max_threads, FZ_MAX_THREADS);
			goto out_args;
		}
		conf.threads = opts.max_threads;
	}

	/* Unknown options are reported here, before anything is created. */
	se = fuse_session_new(&args, &fz_ops, sizeof(fz_ops), &fz);
	if (!se)
		goto out_args;

	/* From here on, failures are not the command line's fault. */
	status = FZ_EXIT_FAIL;
	if (!opts.foreground && fz_detach(&notify_fd) != 0)
		goto out_session;
	ret = zr_store_create(&conf.zc, &fz.st);
	if (ret < 0) {
		fz_log(FUSE_LOG_ERR, "cannot create a store of %llu bytes (comp_algorithm %s): %s",
		       (unsigned long long)conf.zc.disksize, conf.zc.algorithm,
		       strerror(-ret));
		if (ret == -EINVAL)
			status = FZ_EXIT_USAGE;
		goto out_session;
	}
	fz.disksize = zr_disksize(fz.st);
	clock_gettime(CLOCK_REALTIME, &fz.mount_time);
	fz.img_mode = 0600;
	fz.img_uid = fz.uid;
	fz.img_gid = fz.gid;
	fz.img_atime = fz.mount_time;
	atomic_init(&fz.img_mtime_ns, fz_ts_to_ns(fz.mount_time));
	atomic_init(&fz.img_ctime_ns, fz_ts_to_ns(fz.mount_time));
	atomic_init(&fz.read_bufsize, (size_t)FZ_MAX_IO);
	if (opts.debug)
		fz_log(FUSE_LOG_DEBUG, "disksize=%llu comp_algorithm=%s comp_level=%d mem_limit=%llu threads=%u",
		       (unsigned long long)fz.disksize, zr_algorithm(fz.st),
		       zr_level(fz.st),
		       (unsigned long long)conf.zc.mem_limit, conf.threads);

	ret = pthread_key_create(&fz_rbuf_key, fz_rbuf_free);
	if (ret != 0) {
		fz_log(FUSE_LOG_ERR, "pthread_key_create: %s", strerror(ret));
		goto out_store;
	}
	if (!opts.singlethread) {
		loop_cfg = fuse_loop_cfg_create();
		if (!loop_cfg) {
			fz_log(FUSE_LOG_ERR, "out of memory");
			goto out_key;
		}
		fuse_loop_cfg_set_clone_fd(loop_cfg, (unsigned int)opts.clone_fd);
		fuse_loop_cfg_set_max_threads(loop_cfg, conf.threads);
		/* libfuse's default (-1: keep idle workers) unless given. */
		if (opts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(loop_cfg,
						       opts.max_idle_threads);
	}

	if (fuse_set_signal_handlers(se) != 0)
		goto out_cfg;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	if (opts.foreground) {
		if (chdir("/") != 0)
			fz_log(FUSE_LOG_WARNING, "chdir /: %s", strerror(errno));
	} else {
		fz_detached(notify_fd);
	}

	/* Until fusermount3 -u, or SIGINT, SIGTERM, SIGHUP. */
	if (opts.singlethread)
		ret = fuse_session_loop(se);
	else
		ret = fuse_session_loop_mt(se, loop_cfg);
	if (ret < 0)
		fz_log(FUSE_LOG_ERR, "session ended: %s", strerror(-ret));
	else
		status = FZ_EXIT_OK;	/* 0, or the signal that ended it */

	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_cfg:
	fuse_loop_cfg_destroy(loop_cfg);
out_key:
	free(pthread_getspecific(fz_rbuf_key));	/* -s: the main thread's */
	pthread_key_delete(fz_rbuf_key);
out_store:
	/* Every worker has been joined: no I/O can run any more. */
	zr_store_destroy(fz.st);
out_session:
	fuse_session_destroy(se);
out_args:
	free(opts.mountpoint);
	free(fz.conn_opts);
	for (i = 0; i < FZ_NOPTS; i++)
		free(o.val[i]);
	fuse_opt_free_args(&args);
	pthread_mutex_destroy(&fz.attr_lock);
	return status;
}
