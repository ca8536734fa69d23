/*
 * zr_dev: the device, as the kernel's struct zram.  It owns the store
 * (zr_store.h) and the lock that guards replacing it, the configuration
 * the store was made with, the count of opens behind EBUSY, the control
 * attributes (show/store, the files of control/), the summary, and the
 * one set of size and number parsers that both -o options and attribute
 * writes go through, and the open control files (kernfs's open file).
 * The FUSE glue (fusezram.c) sees only this header (and zr_store.h, which
 * it includes).
 *
 * Locking:
 *	init_lock (a reader/writer lock, zram's init_lock) guards the store
 *	pointer, disksize and the configuration.  Every call below that
 *	touches them takes it shared, for the length of one store call;
 *	only a replacement of the store (reset, and disksize,
 *	comp_algorithm, algorithm_params and recomp_algorithm of an empty
 *	disk) takes it
 *	exclusive, by trylock only and just to swap the pointer, so that
 *	no request ever waits behind a replacement.  Never taken
 *	recursively; no call here expects it held by the caller.
 *	  -> the store's own locks (zr_store.h), taken inside store calls.
 *	The open count is an atomic changed with init_lock held shared and
 *	read by replacers with it held exclusive (so it cannot rise
 *	meanwhile) and lock-free by zr_dev_opens().  Open control files
 *	and their copies' budget are atomics: no lock.
 *
 * Errors are -errno; nothing here logs.  No FUSE header is included.
 */
#ifndef FUSEZRAM_ZR_DEV_H
#define FUSEZRAM_ZR_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/zr_store.h"

/* ---- limits and defaults ------------------------------------------------- */

/* zram's own default is chosen by its users; 1G is a useful swap size. */
#define ZR_DEV_DISKSIZE_DEFAULT (1ULL << 30)
/* The largest mem_limit and backing_size: st_size is an off_t. */
#define ZR_DEV_SIZE_MAX ((uint64_t)INT64_MAX & ~(uint64_t)(ZR_PAGE_SIZE - 1))
/* The largest disk: the store numbers its pages in 32 bits (16T less
 * one page). */
#define ZR_DEV_DISKSIZE_MAX ((uint64_t)UINT32_MAX * ZR_PAGE_SIZE)
/* -o reserve=: at most this many MiB, so the reserve stays small. */
#define ZR_DEV_RESERVE_MAX_MIB 16
#define ZR_DEV_RESERVE_MAX ((uint64_t)ZR_DEV_RESERVE_MAX_MIB << 20)
/* -o threads= and -o max_threads=: at most this many. */
#define ZR_DEV_THREADS_MAX 1024
/*
 * The largest read or write request: libfuse 3.14 sizes its receive
 * buffers for 256 pages (FUSE_MAX_MAX_PAGES), so 1 MiB is the most it
 * takes; the kernel splits larger direct I/O.
 */
#define ZR_DEV_IO_MAX (1u << 20)
/*
 * The transport's defaults where the options leave them unset.  FUSE
 * workers (max_threads): each request in flight holds one while it is
 * compressed; 16 is past most machines' cores, where more only switch.
 * The largest read (max_read, pasted into the mount options, so a
 * literal): a 1 MiB direct read comes as 16 requests of 64 KiB, which
 * keep every CPU decompressing (bench/RESULTS.md).  Requests in flight
 * (max_background): a loop device queues up to 128.
 */
#define ZR_DEV_WORKERS_DEFAULT 16
#define ZR_DEV_READ_DEFAULT 65536
#define ZR_DEV_BACKGROUND_DEFAULT 64
/*
 * idle: the store keeps access times in 16 bits of seconds (ages
 * saturate below 65535 s, zr_store.c), so a longer age could never be
 * reached; it is refused rather than marking nothing.
 */
#define ZR_DEV_IDLE_MAX_AGE 65535
/*
 * writeback_age with a backing file, unless told otherwise: pages left
 * alone for half an hour are rarely wanted soon (swap reads them back on
 * the next use of a process that slept that long), and 30 minutes keeps
 * the file's writes to what has settled.
 */
#define ZR_DEV_WB_AGE_DEFAULT 1800
/*
 * recompress_age with a secondary algorithm, unless told otherwise: five
 * minutes, shorter than writeback's half hour because a recompressed
 * page costs only a slower decompression when it is wanted again, not a
 * read of the file.  0 (off) without one.
 */
#define ZR_DEV_RC_AGE_DEFAULT 300
/*
 * io_uring_depth: entries (requests in flight) per CPU's queue.  8 per
 * CPU covers a loop device's queue depth on a small machine; each entry
 * holds a buffer of the largest request (128 KiB by default), locked.
 */
#define ZR_DEV_URING_DEPTH_DEFAULT 8
#define ZR_DEV_URING_DEPTH_MAX 128
/* A control file's content, at most one page, as sysfs ... */
#define ZR_DEV_ATTR_SIZE 4096
/* ... except summary: one line per size class in use. */
#define ZR_DEV_SUMMARY_SIZE (64 * 1024)
/*
 * backing_dev: the longest path, in bytes, so that control/backing_dev
 * shows it whole with its newline in a page, NUL included (PATH_MAX less
 * one would lose the newline).  zram's backing_dev_show() has the same
 * bound: file_path() into PAGE_SIZE - 1 bytes, then the newline.
 */
#define ZR_DEV_PATH_MAX (ZR_DEV_ATTR_SIZE - 2)
/* A message of zr_dev_check_opts(): room enough for any. */
#define ZR_DEV_MSG_SIZE 512

/* ---- parsers --------------------------------------------------------------- */

/*
 * zr_dev_parse_size - a byte count: digits, then optionally one of K, M,
 * G, T, P, E (either case; powers of 1024, the suffixes of the kernel's
 * memparse()), nothing else (no sign, no space).
 * Returns 0 and sets *@out; -EINVAL if @s is not a size, -ERANGE if it
 * does not fit in 64 bits (*@out untouched).  Cannot fail otherwise.
 */
int zr_dev_parse_size(const char *s, uint64_t *out);

/*
 * zr_dev_parse_u64 - a whole decimal number, digits only.  Returns 0 and
 * sets *@out, or -EINVAL (also past 64 bits).
 */
int zr_dev_parse_u64(const char *s, uint64_t *out);

/*
 * zr_dev_parse_int - a whole decimal int, a sign allowed first.  Returns
 * 0 and sets *@out, or -EINVAL (also past int).
 */
int zr_dev_parse_int(const char *s, int *out);

/* ---- options ----------------------------------------------------------------- */

/*
 * The -o options whose values the device checks, in the order of
 * --help: ours first, then libfuse's numeric ones (ZR_OPT_LIBFUSE on),
 * which libfuse reads with sscanf("%u") and would take " 1", "1G1" or
 * "-1" from.  The glue's fuse_opt table maps names to these.
 */
enum zr_dev_opt {
	ZR_OPT_DISKSIZE,
	ZR_OPT_COMP_ALGORITHM,
	ZR_OPT_COMP_LEVEL,
	ZR_OPT_MEM_LIMIT,
	ZR_OPT_THREADS,
	ZR_OPT_RESERVE,
	ZR_OPT_BACKING_DEV,
	ZR_OPT_BACKING_SIZE,
	ZR_OPT_WRITEBACK_AGE,
	ZR_OPT_RECOMP_ALGORITHM,
	ZR_OPT_RECOMPRESS_AGE,
	ZR_OPT_IO_URING,
	ZR_OPT_IO_URING_DEPTH,
	ZR_OPT_MAX_THREADS,
	ZR_OPT_LIBFUSE = ZR_OPT_MAX_THREADS,
	ZR_OPT_MAX_READ,
	ZR_OPT_MAX_WRITE,
	ZR_OPT_MAX_BACKGROUND,
	ZR_OPT_CONGESTION_THRESHOLD,
	ZR_NOPTS,
};

/* The options as given: the caller's strings (owned and freed by the
 * caller, never changed here), the last given of each. */
struct zr_dev_opts {
	char *val[ZR_NOPTS];		/* as typed; NULL if not given */
	int novalue;			/* one of ours given without "=", or -1 */
};

/* The checked configuration, every default filled in. */
struct zr_dev_conf {
	/* algorithm is a backend's own (static) name; workers threads-1 */
	struct zr_config zc;
	unsigned int threads;		/* compressing threads per request */
	unsigned int max_read;		/* bytes; ZR_DEV_READ_DEFAULT if unset */
	unsigned int max_threads;	/* FUSE workers; ZR_DEV_WORKERS_DEFAULT */
	/* The backing file's path (the option's string, not copied), or
	 * NULL for none; its cap in bytes, 0 for the free space. */
	const char *backing_dev;
	uint64_t backing_size;
	/* The FUSE transport (the glue's): io_uring when the kernel offers
	 * it (-o io_uring=on, the default), its entries per queue. */
	bool io_uring;
	unsigned int io_uring_depth;
};

/* zr_dev_opt_name - "disksize" for ZR_OPT_DISKSIZE; NULL out of range. */
const char *zr_dev_opt_name(int opt);

/*
 * zr_dev_check_opts - check the raw values of @o and fill @conf.
 * @msg, @msgsize: where a refusal is explained, in one line without a
 * newline that names the option and the value as typed (e.g. "invalid
 * disksize '0': must be greater than 0"); ZR_DEV_MSG_SIZE is enough.
 * Returns 0, or -EINVAL with the first bad value explained in @msg (and
 * @conf undefined).  Takes no lock; reads the online CPU count.
 */
int zr_dev_check_opts(const struct zr_dev_opts *o, struct zr_dev_conf *conf,
		      char *msg, size_t msgsize);

/*
 * zr_dev_opts_help - the --help lines of the device's own options
 * (disksize to recompress_age, with every compressor's levels), into @buf
 * (truncated to @size).  Cannot fail.
 */
void zr_dev_opts_help(char *buf, size_t size);

/* ---- the device ---------------------------------------------------------------- */

struct zr_dev;

/*
 * The memory discipline of the process, which the summary reports; the
 * glue sets it with zr_dev_set_discipline() before serving requests.
 */
struct zr_dev_discipline {
	bool on;			/* not -o nomlock */
	bool mlocked;			/* mlockall() succeeded */
	bool io_flusher;		/* PR_SET_IO_FLUSHER is set */
	const char *oom_score_adj;	/* what was set, NULL if unchanged */
};

/*
 * zr_dev_create - a device with an empty store made from @conf (as
 * zr_dev_check_opts() left it), and its backing file opened (zb_open():
 * created 0600 if missing, locked, emptied) if @conf names one.  The
 * store's threads start with every signal blocked, so signals stay the
 * caller's.
 * Returns 0 and sets *@out (free with zr_dev_destroy()); -EINVAL for a
 * configuration the store refuses, -ENOMEM, an error of
 * pthread_rwlock_init(), or zb_open()'s (-ELOOP for a symlink, -EBUSY
 * for a file another daemon holds, -ENOSPC, ...).
 */
int zr_dev_create(const struct zr_dev_conf *conf, struct zr_dev **out);

/*
 * zr_dev_destroy - free the device and its store.  Accepts NULL.  No
 * other call may run or follow.
 */
void zr_dev_destroy(struct zr_dev *dev);

/*
 * zr_dev_set_discipline - what the summary says about the memory
 * discipline; @d is copied (its string must be static).  Call before
 * requests are served.  Cannot fail.
 */
void zr_dev_set_discipline(struct zr_dev *dev,
			   const struct zr_dev_discipline *d);

/*
 * zr_dev_set_transport - the summary's "Transport:" line is what
 * @describe(@arg, buf, len) writes, called from whatever thread reads
 * the summary (it must be safe there).  Call before requests are
 * served; without it the line is left out.  Cannot fail.
 */
void zr_dev_set_transport(struct zr_dev *dev,
			  void (*describe)(void *arg, char *buf, size_t len),
			  void *arg);

/* ---- I/O: each one store call under init_lock held shared ------------------ */

/* zr_dev_read - zr_read() on the current store: bytes read or -errno. */
ssize_t zr_dev_read(struct zr_dev *dev, void *buf, size_t len, uint64_t off);

/*
 * zr_dev_write - zr_write() on the current store: bytes written, or
 * -errno (-EFBIG at or past the end: the disk never grows).
 */
ssize_t zr_dev_write(struct zr_dev *dev, const void *buf, size_t len,
		     uint64_t off);

/*
 * zr_dev_fallocate - fallocate(2) of the disk, which never grows (after
 * one without FALLOC_FL_KEEP_SIZE the kernel would grow its cached size
 * to @off+@len).  @off >= 0 and @len > 0, both below 2^63.
 *
 *   0 (allocate)		inside the size: nothing to do, 0; a range
 *				ending past the end: -EFBIG
 *   KEEP_SIZE			nothing to allocate: 0
 *   PUNCH_HOLE|KEEP_SIZE,	zr_discard(), clipped at the end; a range
 *   ZERO_RANGE|KEEP_SIZE	starting at or past the end: nothing, 0
 *   ZERO_RANGE			zr_discard() inside the size; a range ending
 *				past the end: -EFBIG, nothing done
 *   anything else		-EOPNOTSUPP
 *
 * Sets *@changed when the store was asked to discard (even if it then
 * failed: whole pages go first).  Returns 0 or -errno as above, or from
 * zr_discard().  Takes init_lock shared.
 */
int zr_dev_fallocate(struct zr_dev *dev, int mode, uint64_t off, uint64_t len,
		     bool *changed);

/* zr_dev_seek - zr_seek() on the current store: an offset or -errno. */
int64_t zr_dev_seek(struct zr_dev *dev, uint64_t off, int whence);

/* zr_dev_disksize - the disk size in bytes now.  Cannot fail. */
uint64_t zr_dev_disksize(struct zr_dev *dev);

/*
 * zr_dev_get_stats - the store's statistics (zr_get_stats()) and the
 * disk size, read together.  Cannot fail.
 */
void zr_dev_get_stats(struct zr_dev *dev, struct zr_stats *s,
		      uint64_t *disksize);

/*
 * zr_dev_get_config - what the current store was made with, its levels
 * (the secondary algorithms' too) resolved (never ZCOMP_LEVEL_DEFAULT),
 * and the memory limit and the ages in force.
 * Takes init_lock shared.  Cannot fail.
 */
void zr_dev_get_config(struct zr_dev *dev, struct zr_config *zc);

/*
 * zr_dev_open / zr_dev_release - count an open handle of the disk, or
 * its end.  While any is open the store cannot be replaced (-EBUSY).
 * Cannot fail.
 */
void zr_dev_open(struct zr_dev *dev);
void zr_dev_release(struct zr_dev *dev);

/*
 * zr_dev_opens - open handles now.  Lock-free, async-signal-safe.
 * Cannot fail.
 */
int zr_dev_opens(const struct zr_dev *dev);

/* ---- control attributes ----------------------------------------------------- */

/*
 * One file of control/, the analogue of a zram sysfs attribute.  The
 * table is fixed: zr_dev_attr(i) for i from 0 to zr_dev_nattrs()-1.
 */
struct zr_dev_attr {
	const char *name;	/* file name in control/ */
	mode_t mode;		/* 0444 read-only, 0644, 0200 write-only */
	size_t size;		/* the show() buffer; also the st_size */
	bool readable;		/* has a show(): zr_dev_show() works */
	bool writable;		/* has a store(): zr_dev_store() works */
	bool replaces;		/* a successful store replaced the store */
};

/* zr_dev_nattrs - how many rows the table has.  Cannot fail. */
size_t zr_dev_nattrs(void);

/* zr_dev_attr - row @i, or NULL past the last. */
const struct zr_dev_attr *zr_dev_attr(size_t i);

/* zr_dev_attr_find - the row named @name, or NULL. */
const struct zr_dev_attr *zr_dev_attr_find(const char *name);

/*
 * zr_dev_show - the text of @attr, NUL-terminated, into @buf (@size
 * bytes, at least 1; attr->size always holds it whole).
 * Returns its length (at most @size - 1), -EACCES if @attr is not
 * readable.  Takes init_lock shared.
 */
int zr_dev_show(struct zr_dev *dev, const struct zr_dev_attr *attr,
		char *buf, size_t size);

/*
 * zr_dev_store - act on what one write(2) of @len bytes at @buf said
 * (not NUL-terminated): at most ZR_DEV_ATTR_SIZE bytes are used (the
 * rest dropped, as in kernfs) and one trailing newline ignored (so that
 * "echo" works).
 * Returns 0 (also for @len 0, which does nothing), or -errno having
 * changed nothing: -EACCES if @attr is not writable, -EINVAL for text
 * it does not understand, -EBUSY when the disk is open (reset,
 * disksize, comp_algorithm, algorithm_params, recomp_algorithm) or holds
 * data (all but reset), or init_lock stayed held for too long, -ENOMEM
 * (a new store); writeback and recompress also the errors of their
 * store calls (see those attributes in zr_dev.c).  Takes init_lock
 * shared, or for a replacement as described at the top.
 */
int zr_dev_store(struct zr_dev *dev, const struct zr_dev_attr *attr,
		 const char *buf, size_t len);

/* ---- open control files ------------------------------------------------------ */

/*
 * An open control file, as kernfs's open file: the text is made by show
 * at a read from offset 0.  A read that takes it whole (cat, fzramctl,
 * any reader with a buffer of attr->size) keeps nothing but its length,
 * so that the next read, at that offset, is EOF.  A reader that takes
 * it in pieces, or starts past 0, gets a copy made at that read and kept
 * until close, so that its pieces fit together; the copies of all open
 * files of a device hold at most ZR_DEV_COPY_BUDGET bytes (the daemon
 * is mlocked: opens must not pin memory).  Reads of one file may run
 * concurrently.
 */
struct zr_dev_file;

#define ZR_DEV_COPY_BUDGET (1u << 20)

/*
 * zr_dev_file_open - a new open file of @attr (any attribute; access
 * modes are the caller's to check).  Returns 0 and sets *@out (close
 * with zr_dev_file_close()), or -ENOMEM.  Takes no lock.
 */
int zr_dev_file_open(const struct zr_dev_attr *attr, struct zr_dev_file **out);

/* zr_dev_file_attr - the attribute @f is a file of.  Cannot fail. */
const struct zr_dev_attr *zr_dev_file_attr(const struct zr_dev_file *f);

/*
 * zr_dev_file_read - read up to @size bytes at @off into @buf, which
 * holds at least @size and attr->size bytes.  Returns the bytes read (0
 * at the end), -ENOMEM when a piecewise reader's copy is refused (budget
 * or malloc), -EACCES if the attribute has no show.  Takes init_lock
 * shared around show.
 */
ssize_t zr_dev_file_read(struct zr_dev *dev, struct zr_dev_file *f,
			 char *buf, size_t size, uint64_t off);

/*
 * zr_dev_file_close - free @f and its copy, giving the copy's budget
 * back.  Accepts NULL.  No read of @f may run or follow.
 */
void zr_dev_file_close(struct zr_dev *dev, struct zr_dev_file *f);

#endif /* FUSEZRAM_ZR_DEV_H */
