/*
 * fusezram - a compressed RAM disk presented as one file through FUSE.
 *
 * The FUSE glue and nothing else: a fixed namespace of a few inodes; the
 * low-level handlers, which call the device (store/zr_dev.h: the store,
 * its configuration, the control attributes, the option parsers) and
 * turn its -errno into fuse_reply_err(req, -ret); the fuse_opt table and
 * --help; detaching, memory discipline and signals.
 *
 * Locking:
 *	The device's init lock is taken inside zr_dev_* calls, never here;
 *	no lock of this file is held across one.
 *	fz_data.attr_lock protects the image's mode, uid, gid and atime: a
 *	leaf.  Its mtime and ctime are atomics, bumped by a write or
 *	discard at most once per second of CLOCK_REALTIME_COARSE so that
 *	the line stays shared on the I/O path.  Read buffers are per thread.
 *
 * The mount holds `image`, a file of exactly disksize bytes, and
 * `control/`, one file per device attribute.  The namespace never
 * changes: inode numbers are fixed (FZ_INO_*), lookup counts need no
 * bookkeeping.  The image's attributes are never cached, so that
 * st_blocks (the memory used) and st_size (disksize) are fresh.
 * The image is opened FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES; with
 * FUSE_CAP_ASYNC_DIO a loop device's queue depth is that many requests in
 * flight, bounded by max_background, served by up to max_threads workers.
 * Control files are direct_io: st_size neither limits nor pads a read;
 * writing one without store is EACCES even to root, as in kernfs.
 * Requests come through /dev/fuse, or, when the kernel offers it, through
 * fz_ring's per-CPU io_uring queues (fz_ring.h), which serve the image's
 * READ and WRITE in their own buffers with fz_ring_read/_write and hand
 * every other request to the same handlers through libfuse.
 *
 * TODO: splice (write_buf / fuse_reply_data) once measured to help;
 * mmap of the image (needs FUSE_DIRECT_IO_ALLOW_MMAP, libfuse > 3.14).
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fz_ring.h"
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
 * The connection's defaults where -o leaves them (limits: ZR_DEV_*).
 * max_write is below ZR_DEV_IO_MAX so that a loop device's 1 MiB direct
 * I/O comes as 8 requests that several workers compress at once.
 */
#define FZ_DEFAULT_MAX_WRITE (128u << 10)
#define FZ_STR_(x) #x
#define FZ_STR(x) FZ_STR_(x)
#define FZ_CONGESTION_THRESHOLD 48	/* the kernel throttles from here */

/* Names never change; attributes of everything but the image rarely. */
#define FZ_ENTRY_TIMEOUT 86400.0
#define FZ_ATTR_TIMEOUT 1.0
#define FZ_IMAGE_ATTR_TIMEOUT 0.0
#define FZ_NSEC_PER_SEC 1000000000LL

/* A second exit signal this soon after one refused forces the unmount. */
#define FZ_FORCE_WINDOW_SEC 5

/* The OOM killer takes nearly anything first, but -1000 would leave no
 * way out if we are the leak. */
#define FZ_OOM_SCORE_ADJ "-900"

enum {
	FZ_INO_ROOT = FUSE_ROOT_ID,
	FZ_INO_IMAGE,
	FZ_INO_CONTROL,
	FZ_INO_ATTR0,		/* zr_dev_attr(0); one inode per attribute */
};

#define fz_log(level, fmt, ...) \
	fuse_log(level, FZ_PROG ": " fmt "\n", ##__VA_ARGS__)

/* Everything the handlers share; fuse_req_userdata(). */
struct fz_data {
	struct zr_dev *dev;		/* the device; set before the mount */
	struct fz_ring *ring;		/* the transport; set before the mount */

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

/* fz_touch - the image was modified: mtime and ctime, once a second. */
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

/* The exit signals: see fz_sig_handler(). */
static const int fz_exit_signals[] = { SIGHUP, SIGINT, SIGTERM };
#define FZ_NSIGS (sizeof(fz_exit_signals) / sizeof(fz_exit_signals[0]))

/* ---- requests ------------------------------------------------------------ */

/*
 * fz_thread_check - on a thread's first request, check that it inherited
 * PR_SET_IO_FLUSHER from the main thread; log once if not.
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
	return ino < FZ_INO_ATTR0 ? NULL : zr_dev_attr(ino - FZ_INO_ATTR0);
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
	static const char *const root_names[] = {
		".", "..", "image", "control",
	};

	if (idx < 2 || (dir == FZ_INO_ROOT && idx < 4)) {
		*name = root_names[idx];
		*child = idx == 0 ? dir : idx == 1 ? FZ_INO_ROOT :
			 FZ_INO_IMAGE + idx - 2;
		return 1;
	}
	if (dir == FZ_INO_CONTROL && idx - 2 < zr_dev_nattrs()) {
		*name = zr_dev_attr(idx - 2)->name;
		*child = FZ_INO_ATTR0 + idx - 2;
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

/* fz_stat - fill @stbuf for inode @ino.  Returns 0, or -ENOENT. */
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
 * Each worker thread gets one buffer for read replies, made at its first
 * read, of the largest read the kernel sends: no allocation on the read
 * path after warm-up; the key's destructor frees it when the thread ends.
 * Under the memory discipline it is pre-faulted, so locked (MCL_ONFAULT)
 * before a read that swap waits on needs it.
 */
struct fz_rbuf {
	size_t cap;
	char data[];
};

static pthread_key_t fz_rbuf_key;	/* its destructor: free() */

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
	 * The loop device depends on ASYNC_DIO and ASYNC_READ.  No splice:
	 * replies come from our buffers.  No HANDLE_KILLPRIV: libfuse 3.14
	 * cannot tell write() to kill suid, so the kernel does it.
	 */
	conn->want |= FUSE_CAP_ASYNC_DIO | FUSE_CAP_ASYNC_READ;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE | FUSE_CAP_HANDLE_KILLPRIV);

	conn->max_write = FZ_DEFAULT_MAX_WRITE;
	/* libfuse insists that it matches the max_read= mount option. */
	conn->max_read = fz->max_read;
	/* max_readahead, the kernel's offer, matters to control files only. */
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

	/* Reads are at most max_pages (from max_write), and max_read. */
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
 * fz_setattr_other - anything but the image.  As kernfs: truncating a
 * control file (echo's O_TRUNC) and its times succeed and change nothing;
 * its mode and owner, and the directories', are fixed.
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
 * The image's mode, owner and times change, and are remembered; its size
 * is disksize: another (truncate(2), O_TRUNC) is refused with EPERM.
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

/*
 * The namespace is fixed: nothing may be created, removed or renamed.
 * (Their other parameters are unused.)
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
static void fz_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EPERM);
}

static void fz_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	fuse_reply_err(req, EPERM);
}

static void fz_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void fz_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void fz_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, EPERM);
}

static void fz_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	fuse_reply_err(req, EPERM);
}

static void fz_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EPERM);
}

/* Nothing is buffered here: every write is in the store when answered. */
static void fz_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* fsync and fsyncdir alike. */
static void fz_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}
#pragma GCC diagnostic pop

/*
 * The image: counted open (zr_dev_open(): replacements answer EBUSY)
 * with FOPEN_PARALLEL_DIRECT_WRITES, which libfuse 3.14's fuse_file_info
 * has no bit for: fuse_reply_buf() of a struct fuse_open_out sends the
 * same bytes as fuse_reply_open(), fh 0.  The flag lets synchronous
 * O_DIRECT writers of the image run in parallel (4.3 times the IOPS with
 * 4 writers, bench/RESULTS.md); a loop device's async I/O does anyway.
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

static void fz_open_attr(fuse_req_t req, struct fz_data *fz,
			 const struct zr_dev_attr *attr, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct zr_dev_file *f;

	/* As kernfs: refused even to root, whatever the mode bits say. */
	if ((acc != O_WRONLY && !attr->readable) ||
	    (acc != O_RDONLY && !attr->writable)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (zr_dev_file_open(attr, &f) < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* If the open was interrupted, no release will come for it. */
	if (fuse_reply_open(req, fi) != 0)
		zr_dev_file_close(fz->dev, f);
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
	fz_open_attr(req, fz, attr, fi);
}

static void fz_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);

	if (ino == FZ_INO_IMAGE)
		zr_dev_release(fz->dev);
	else if (fz_ino_attr(ino))
		zr_dev_file_close(fz->dev,
				  (struct zr_dev_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * A control file's text is made whole into the buffer first, so that is
 * at least the file's size (zr_dev_file_read()).  Replies come from this
 * thread's buffer: the release of the file may run while writev() does.
 */
static void fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	struct zr_dev_file *f = (struct zr_dev_file *)(uintptr_t)fi->fh;
	size_t need = size;
	ssize_t ret;
	char *buf;

	if (ino != FZ_INO_IMAGE && zr_dev_file_attr(f)->size > need)
		need = zr_dev_file_attr(f)->size;
	buf = fz_rbuf_get(fz, need);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == FZ_INO_IMAGE)
		ret = zr_dev_read(fz->dev, buf, size, (uint64_t)off);
	else
		ret = zr_dev_file_read(fz->dev, f, buf, size, (uint64_t)off);
	if (ret < 0) {
		fuse_reply_err(req, (int)-ret);
		return;
	}
	fuse_reply_buf(req, buf, (size_t)ret);
}

/*
 * One write(2) to a control file is one zr_dev_store(), as in sysfs; one
 * that replaced the store modified the image.  The image never grows:
 * -EFBIG at or past its end.
 */
static void fz_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	const struct zr_dev_attr *attr;
	ssize_t ret;

	if (ino == FZ_INO_IMAGE) {
		ret = zr_dev_write(fz->dev, buf, size, (uint64_t)off);
		if (ret < 0) {
			fuse_reply_err(req, (int)-ret);
			return;
		}
		if (ret > 0)
			fz_touch(fz);
		fuse_reply_write(req, (size_t)ret);
		return;
	}
	attr = zr_dev_file_attr((struct zr_dev_file *)(uintptr_t)fi->fh);
	ret = attr->writable ? zr_dev_store(fz->dev, attr, buf, size) : -EACCES;
	if (ret < 0) {
		if (ret != -EINVAL && ret != -EACCES)
			fz_log(FUSE_LOG_INFO, "control/%s: %s", attr->name,
			       strerror((int)-ret));
		fuse_reply_err(req, (int)-ret);
		return;
	}
	if (size && attr->replaces)
		fz_touch(fz);
	fuse_reply_write(req, size);
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
	sv.f_namemax = 255;	/* f_ffree, f_favail: 0 */
	fuse_reply_statfs(req, &sv);
}

/* fallocate on the image: zr_dev_fallocate() says what each mode does. */
static void fz_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct fz_data *fz = fz_req(req);
	bool changed;
	int ret;

	(void)fi;
	if (ino != FZ_INO_IMAGE || offset < 0 || length <= 0) {
		fuse_reply_err(req, ino != FZ_INO_IMAGE ? EOPNOTSUPP : EINVAL);
		return;
	}
	ret = zr_dev_fallocate(fz->dev, mode, (uint64_t)offset,
			       (uint64_t)length, &changed);
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
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
		fuse_reply_err(req, whence == SEEK_DATA ||
			       whence == SEEK_HOLE ? ENXIO : EINVAL);
		return;
	}
	if (ino != FZ_INO_IMAGE) {
		/* One run of data; ENOSYS would stop SEEK_DATA on the image. */
		attr = fz_ino_attr(ino);
		size = attr ? (off_t)attr->size : 0;
		if (off >= size)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ? off : size);
		return;
	}
	ret = zr_dev_seek(fz->dev, (uint64_t)off, whence);
	if (ret < 0)
		fuse_reply_err(req, (int)-ret);
	else
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
	.fsyncdir	= fz_fsync,
	.statfs		= fz_statfs,
	.fallocate	= fz_fallocate,
	.lseek		= fz_lseek,
};

/* ---- options ----------------------------------------------------------- */

/*
 * Keys: ZR_OPT_* for "name=value", checked by zr_dev_check_opts();
 * libfuse's (ZR_OPT_LIBFUSE on) are passed on once checked (fz_pass_opts).
 */
enum {
	FZ_KEY_NOVALUE = 100,		/* + ZR_OPT_*: given without "=" */
	FZ_KEY_NOMLOCK = 200,		/* -o nomlock */
	FZ_KEY_IGNORE,			/* generic, meaningless here */
	FZ_KEY_NO_ASYNC_DIO,		/* refused: see fz_opt_proc */
	FZ_KEY_IO_URING,		/* -o io_uring, without a value */
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
	FZ_OPT("backing_dev", ZR_OPT_BACKING_DEV),
	FZ_OPT("backing_size", ZR_OPT_BACKING_SIZE),
	FZ_OPT("writeback_age", ZR_OPT_WRITEBACK_AGE),
	FZ_OPT("recomp_algorithm", ZR_OPT_RECOMP_ALGORITHM),
	FZ_OPT("recompress_age", ZR_OPT_RECOMPRESS_AGE),
	FZ_LOPT("io_uring", ZR_OPT_IO_URING),
	FUSE_OPT_KEY("io_uring", FZ_KEY_IO_URING),	/* = io_uring=on */
	FZ_OPT("io_uring_depth", ZR_OPT_IO_URING_DEPTH),
	FUSE_OPT_KEY("nomlock", FZ_KEY_NOMLOCK),
	FUSE_OPT_KEY("no_async_dio", FZ_KEY_NO_ASYNC_DIO),
	FZ_LOPT("max_threads", ZR_OPT_MAX_THREADS),
	FZ_LOPT("max_read", ZR_OPT_MAX_READ),
	FZ_LOPT("max_write", ZR_OPT_MAX_WRITE),
	FZ_LOPT("max_background", ZR_OPT_MAX_BACKGROUND),
	FZ_LOPT("congestion_threshold", ZR_OPT_CONGESTION_THRESHOLD),
	/* From fstab, unknown to libfuse, meaningless here (S_NOATIME). */
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

/* What fz_opt_proc collects: raw values (owned; the last one wins). */
struct fz_opts {
	struct zr_dev_opts raw;
	int nomlock;
	char *pos[2];			/* [SOURCE] MOUNTPOINT */
	int npos;
};

/* fz_strdup - strdup(@s) into *@slot, freeing what was there. */
static int fz_strdup(char **slot, const char *s)
{
	char *v = strdup(s);

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
		return fz_strdup(&o->raw.val[key], strchr(arg, '=') + 1);
	if (key >= FZ_KEY_NOVALUE && key < FZ_KEY_NOVALUE + ZR_NOPTS) {
		if (o->raw.novalue < 0)
			o->raw.novalue = key - FZ_KEY_NOVALUE;
		return 0;
	}
	if (key == FZ_KEY_IO_URING)
		return fz_strdup(&o->raw.val[ZR_OPT_IO_URING], "on");
	if (key == FZ_KEY_NOMLOCK || key == FZ_KEY_IGNORE) {
		o->nomlock |= key == FZ_KEY_NOMLOCK;
		return 0;
	}
	if (key == FZ_KEY_NO_ASYNC_DIO)	/* why: fusezram(8), mem_limit */
		return fz_log(FUSE_LOG_ERR, "option 'no_async_dio' refused: a write that fails part way would reach a loop device as a successful short write"), -1;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;	/* everything else is for libfuse */
	/* Kept aside; the mount point goes back in after parsing. */
	if (o->npos == 2) {
		fz_log(FUSE_LOG_ERR, "unexpected argument '%s'; " FZ_USAGE, arg);
		return -1;
	}
	return fz_strdup(&o->pos[o->npos++], arg);
}

/*
 * fz_pass_opts - libfuse's checked options, as typed, to the end of @args
 * (they win over ours), but max_threads (the loop config's).  Returns 0,
 * or -1 after "out of memory".
 */
static int fz_pass_opts(const struct fz_opts *o, struct fuse_args *args)
{
	char *arg;
	int i, ret;

	for (i = ZR_OPT_LIBFUSE; i < ZR_NOPTS; i++) {
		if (i == ZR_OPT_MAX_THREADS || !o->raw.val[i])
			continue;
		if (asprintf(&arg, "-o%s=%s", zr_dev_opt_name(i),
			     o->raw.val[i]) < 0) {
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
	char ours[4096];

	zr_dev_opts_help(ours, sizeof(ours));
	printf(FZ_USAGE "\n\n"
	       "Presents MOUNTPOINT/image, a file of disksize bytes whose pages are kept\n"
	       "compressed in RAM, and MOUNTPOINT/control/ with zram's attributes.\n"
	       "Use it through a loop device: losetup -f --show --direct-io=on MOUNTPOINT/image\n"
	       "SOURCE (any word, as mount(8) passes it) is ignored; in /etc/fstab:\n"
	       "    fusezram /mnt/fz fuse.fusezram disksize=1G,nofail 0 0\n"
	       "\n"
	       "fusezram options:\n%s"
	       "    -o nomlock             no memory discipline: do not lock the daemon in\n"
	       "                           RAM, set PR_SET_IO_FLUSHER or lower its\n"
	       "                           oom_score_adj (for unprivileged use; unsafe\n"
	       "                           for swap)\n"
	       "    -o max_threads=N       most FUSE worker threads, 1 to %d (libfuse's\n"
	       "                           option; default: %d here)\n"
	       "\n"
	       "FUSE options:\n", ours, ZR_DEV_THREADS_MAX, ZR_DEV_WORKERS_DEFAULT);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("    -o max_write=N, max_read=N\n"
	       "                           largest write and read in bytes, %u to %u\n"
	       "                           (default: %u and %u here)\n"
	       "    -o max_background=N    requests in flight, 1 to 65535 (default: %u)\n"
	       "    -o congestion_threshold=N\n"
	       "                           requests in flight from which the kernel\n"
	       "                           throttles, 1 to max_background (default: %u)\n"
	       "    -o max_readahead=N, async_dio, async_read, sync_read\n"
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
 * Not fuse_daemonize(), which forks after the mount: zr_dev_create()
 * starts threads and must run before the mount (nothing is mounted if it
 * fails), and a fork would leave them in the parent.  So the parent
 * forks first and exits 0 once the child reports the mount up, or with
 * the child's status if the child fails first.
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
 * fz_set_io_flusher - PR_SET_IO_FLUSHER on the main thread, before any
 * other exists: every thread inherits it (fz_thread_check() verifies),
 * and the kernel never makes our allocations wait for I/O, which could be
 * swap I/O to our own image.  Needs CAP_SYS_RESOURCE; failure goes to @w.
 */
static void fz_set_io_flusher(struct fz_data *fz, struct fz_warn *w)
{
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0)
		fz->io_flusher = true;
	else
		fz_warn_add(w, "PR_SET_IO_FLUSHER", errno);
}

/*
 * fz_lock_memory - keep the daemon in RAM (mlockall MCL_ONFAULT: a page
 * is locked once touched, so sparse mappings stay sparse, and punch-hole
 * still frees) and out of the OOM killer's first choices.  Needs
 * CAP_IPC_LOCK and CAP_SYS_RESOURCE; failures go into @w.
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
 * SIGHUP, SIGINT and SIGTERM end the daemon only while the image is not
 * open (zr_dev_opens()): a loop device on it may be swap.  While it is,
 * the signal is refused with a log line, unless it is the second within
 * FZ_FORCE_WINDOW_SEC seconds.  The handler decides with atomics and
 * hands a message to fz_sig_logger() through a pipe.  Other threads
 * block them: it interrupts the main thread's sem_wait() (read(), -s).
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
/* Last refusal (CLOCK_MONOTONIC), 0 for none: the handler's alone. */
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

	memset(&sa, 0, sizeof(sa));	/* no SA_RESTART: sem_wait() returns */
	sa.sa_handler = fz_sig_handler;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < FZ_NSIGS; i++)
		sigaddset(&sa.sa_mask, fz_exit_signals[i]);
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

/* What main sets up, step by step; fz_teardown() undoes it. */
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
 * fz_parse_cmdline - the command line: our options checked by the
 * device, libfuse's handed on, the session made (it reports unknown
 * options).  Returns 0 to go on, 1 when done (-h, -V), -1 after a message.
 */
static int fz_parse_cmdline(struct fz_main *m)
{
	char msg[ZR_DEV_MSG_SIZE];

	if (fuse_opt_parse(&m->args, &m->o, fz_opt_spec, fz_opt_proc) != 0)
		return -1;
	/* [SOURCE] MOUNTPOINT: the source is ignored, as by mount.fuse3. */
	if (m->o.npos && fuse_opt_add_arg(&m->args, m->o.pos[m->o.npos - 1]))
		return -1;
	/* First, so that the user's fsname=, max_read= ... win. */
	if (fuse_opt_insert_arg(&m->args, 1,
			"-ofsname=" FZ_PROG ",subtype=" FZ_PROG ",default_permissions"
			",max_read=" FZ_STR(ZR_DEV_READ_DEFAULT)) != 0 ||
	    fuse_parse_cmdline(&m->args, &m->opts) != 0)
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
	if (zr_dev_check_opts(&m->o.raw, &m->conf, msg, sizeof(msg)) < 0) {
		fz_log(FUSE_LOG_ERR, "%s", msg);
		return -1;
	}
	if (!m->opts.mountpoint) {
		fz_log(FUSE_LOG_ERR, "missing mountpoint; " FZ_USAGE);
		return -1;
	}
	if (fz_pass_opts(&m->o, &m->args) != 0)
		return -1;
	m->fz.conn_opts = fuse_parse_conn_info_opts(&m->args);
	if (!m->fz.conn_opts)
		return -1;
	m->se = fuse_session_new(&m->args, &fz_ops, sizeof(fz_ops), &m->fz);
	return m->se ? 0 : -1;
}

/*
 * fz_raise_nofile - the soft RLIMIT_NOFILE up to the hard one, as a
 * daemon that needs many descriptors should (nothing here uses
 * select()): the rings take two a worker, an io_uring and an eventfd,
 * for possible CPUs x io_uring_depth workers, which at 64 CPUs and the
 * default depth is the usual soft limit of 1024 alone; short of them
 * the transport would fall back to /dev/fuse.  A failure changes
 * nothing and is no error.
 */
static void fz_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * fz_make_device - the device, inside the memory discipline: the I/O
 * flusher flag before any thread exists (threads inherit it), mlockall
 * after.  Returns 0, or an FZ_EXIT_* status after a message.
 */
static int fz_make_device(struct fz_main *m)
{
	struct fz_data *fz = &m->fz;
	struct fz_warn warn = { .len = 0 };
	int ret;

	fz_raise_nofile();
	fz->discipline = !m->o.nomlock;
	if (fz->discipline)
		fz_set_io_flusher(fz, &warn);
	ret = zr_dev_create(&m->conf, &fz->dev);
	if (ret < 0) {
		fz_log(FUSE_LOG_ERR, "cannot create a store of %llu bytes (comp_algorithm %s, backing_dev %s): %s",
		       (unsigned long long)m->conf.zc.disksize, m->conf.zc.algorithm,
		       m->conf.backing_dev ?: "none", strerror(-ret));
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
	fz->max_read = m->conf.max_read;
	clock_gettime(CLOCK_REALTIME, &fz->mount_time);
	fz->img_mode = 0600;
	fz->img_uid = fz->uid;
	fz->img_gid = fz->gid;
	fz->img_atime = fz->mount_time;
	atomic_init(&fz->img_mtime_ns, fz_ts_to_ns(fz->mount_time));
	atomic_init(&fz->img_ctime_ns, fz_ts_to_ns(fz->mount_time));
	atomic_init(&fz->read_bufsize, (size_t)ZR_DEV_IO_MAX);
	return 0;
}

/* The transport's own READ and WRITE of the image, into and from its
 * ring buffers: what fz_read() and fz_write() do for the image. */
static ssize_t fz_ring_read(void *arg, void *buf, size_t size, uint64_t off)
{
	struct fz_data *fz = arg;

	fz_thread_check(fz);
	return zr_dev_read(fz->dev, buf, size, off);
}

static ssize_t fz_ring_write(void *arg, const void *buf, size_t size,
			     uint64_t off)
{
	struct fz_data *fz = arg;
	ssize_t ret;

	fz_thread_check(fz);
	ret = zr_dev_write(fz->dev, buf, size, off);
	if (ret > 0)
		fz_touch(fz);
	return ret;
}

static void fz_describe_transport(void *arg, char *buf, size_t len)
{
	fz_ring_describe(arg, buf, len);
}

/*
 * fz_make_loop - the read buffers' key, the transport (io_uring when the
 * kernel offers it at INIT) and the worker loop's config, which serves
 * /dev/fuse in any case.
 */
static int fz_make_loop(struct fz_main *m)
{
	struct fz_ring_conf rc = {
		.enable = m->conf.io_uring, .depth = m->conf.io_uring_depth,
		.ino = FZ_INO_IMAGE, .arg = &m->fz,
		.read = fz_ring_read, .write = fz_ring_write,
	};
	struct zr_config zc;
	int ret;

	if (m->opts.debug) {
		zr_dev_get_config(m->fz.dev, &zc);
		fz_log(FUSE_LOG_DEBUG, "disksize=%llu comp_algorithm=%s comp_level=%d mem_limit=%llu threads=%u max_threads=%u mlock=%d io_flusher=%d",
		       (unsigned long long)zc.disksize, zc.algorithm, zc.level,
		       (unsigned long long)zc.mem_limit, m->conf.threads,
		       m->conf.max_threads, m->fz.mlocked, m->fz.io_flusher);
	}
	ret = pthread_key_create(&fz_rbuf_key, free);
	if (ret != 0) {
		fz_log(FUSE_LOG_ERR, "pthread_key_create: %s", strerror(ret));
		return -1;
	}
	m->have_key = true;
	ret = fz_ring_create(&rc, &m->fz.ring);
	if (ret < 0) {
		fz_log(FUSE_LOG_ERR, "cannot make the transport: %s",
		       strerror(-ret));
		return -1;
	}
	zr_dev_set_transport(m->fz.dev, fz_describe_transport, m->fz.ring);
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
	sigset_t all, saved_mask;
	pthread_t logger;

	/* Ours instead of fuse_set_signal_handlers(): see fz_sig_handler. */
	if (fz_sig_install(m->se, &m->fz) != 0 ||
	    fuse_session_mount(m->se, m->opts.mountpoint) != 0)
		goto out_signals;
	if (fz_ring_attach(m->fz.ring, m->se) != 0) {
		fz_log(FUSE_LOG_ERR, "cannot attach the transport to the session");
		fuse_session_unmount(m->se);
		goto out_signals;
	}
	if (!m->opts.foreground)
		fz_detached(m->notify_fd);
	else if (chdir("/") != 0)
		fz_log(FUSE_LOG_WARNING, "chdir /: %s", strerror(errno));
	/* After fz_detached() (the final log function); it takes no signal. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved_mask);
	ret = pthread_create(&logger, NULL, fz_sig_logger, NULL);
	pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
	if (ret != 0)
		fz_log(FUSE_LOG_WARNING, "cannot start the signal logger: %s",
		       strerror(ret));
	have_logger = ret == 0;

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
	/* After the unmount: its threads' requests ended with it. */
	fz_ring_destroy(m->fz.ring);
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
		free(m->o.raw.val[i]);
	for (i = 0; i < m->o.npos; i++)
		free(m->o.pos[i]);
	fuse_opt_free_args(&m->args);
	pthread_mutex_destroy(&m->fz.attr_lock);
}

int main(int argc, char *argv[])
{
	static struct fz_main m;
	int status;

	m.args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	m.o.raw.novalue = -1;
	m.notify_fd = -1;
	m.fz.uid = getuid();
	m.fz.gid = getgid();
	pthread_mutex_init(&m.fz.attr_lock, NULL);

	status = fz_parse_cmdline(&m);
	if (status != 0) {
		status = status > 0 ? FZ_EXIT_OK : FZ_EXIT_USAGE;
		goto out;
	}
	/* From here on, failures are not the command line's fault. */
	status = FZ_EXIT_FAIL;
	/* Before the device: its threads must not be forked away. */
	if (!m.opts.foreground && fz_detach(&m.notify_fd) != 0)
		goto out;
	status = fz_make_device(&m);
	if (status == 0)
		status = fz_make_loop(&m) ? FZ_EXIT_FAIL : fz_serve(&m);
out:
	fz_teardown(&m);
	return status;
}
