/*
 * zr_dev: the device, as the kernel's struct zram (drivers/block/zram/
 * zram_drv.c): the store and its init lock, the configuration, the count
 * of opens, the control attributes with their show and store functions,
 * the summary, and the parsers of sizes and numbers shared by -o options
 * (zr_dev_check_opts()) and attribute writes.
 *
 * Locking:
 *	dev->init_lock (rwlock)	guards st, disksize, zc; shared for every
 *				call, exclusive only in zr_dev_replace(),
 *				by trylock, to swap st
 *	  -> the store's locks	(zr_store.h), inside store calls
 *	dev->opens		atomic; changed under init_lock shared
 *	dev->copy_bytes, the fields of an open file: atomics, no lock
 *	dev->wb (writeback_limit): atomics, no lock; zc.backing is
 *				guarded by init_lock like the rest of zc
 * No function here is called with init_lock held by its caller, and none
 * takes it twice.
 *
 * Replacing the store (zr_dev_replace()) is what zram does in
 * disksize_store() and reset_store() with init_lock held for writing,
 * but done so that a request never queues behind it: busy is answered at
 * once under the lock shared, the new store is made outside the lock,
 * and the lock is then taken exclusive only by trylock, just to swap the
 * pointer; shared holders that keep it for ZR_DEV_REPLACE_WAIT_MS (an
 * `idle all` or a SEEK_DATA scan of a large disk) make it -EBUSY.
 *
 * Options and attribute values go through one table of values
 * (zr_values[]): a name, how it is parsed and its range, and the words
 * of a refusal.  An attribute's store() parses its text with the same
 * row as the -o option of the same name, so `-o disksize=X` and `echo X
 * > control/disksize` accept exactly the same X.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compressors/zcomp.h"
#include "store/zb_file.h"
#include "store/zr_dev.h"
#include "store/zr_store.h"
/* For the page-size assertion below only: the device never calls it. */
#include "store/zs_pool.h"

/* One page size: the store's.  The allocator's and compressors' follow. */
_Static_assert(ZS_PAGE_SIZE == ZR_PAGE_SIZE, "allocator page != store page");
_Static_assert(ZS_MAX_ALLOC >= ZR_PAGE_SIZE, "a huge page must fit");
_Static_assert(ZCOMP_MAX_SRC == ZR_PAGE_SIZE, "compressor input != page");
_Static_assert(ZR_DEV_ATTR_SIZE == ZR_PAGE_SIZE, "an attribute is a page");

/*
 * How long a replacement of the store tries for init_lock while other
 * calls hold it, before it answers -EBUSY.
 */
#define ZR_DEV_REPLACE_WAIT_MS 500

struct zr_dev {
	/*
	 * zram's init_lock: guards st, disksize and zc.  Shared for every
	 * call; exclusive only by zr_dev_replace()'s trylock.
	 */
	pthread_rwlock_t init_lock;
	struct zr_store *st;		/* guarded by init_lock */
	uint64_t disksize;		/* guarded by init_lock; zr_disksize() */
	/*
	 * Guarded by init_lock: what st was made with.  algorithm is a
	 * backend's own (static) name; mem_limit is the one at creation,
	 * the one in force is in zr_get_stats().
	 */
	struct zr_config zc;
	unsigned int threads;		/* compressing threads: zc.workers + 1 */
	/*
	 * Open handles.  Changed with init_lock held shared; read by
	 * replacers (exclusive: it cannot rise meanwhile) and lock-free.
	 */
	atomic_int opens;
	/* Set before requests are served, then only read. */
	struct zr_dev_discipline disc;
	void (*transport)(void *arg, char *buf, size_t len);
	void *transport_arg;
	/* Bytes held by the copies of open files, ZR_DEV_COPY_BUDGET. */
	_Atomic size_t copy_bytes;
	/*
	 * The backing file is zc.backing (guarded by init_lock, closed by
	 * whoever replaces it, after the store that used it is gone); a
	 * file set through control/backing_dev gets this cap.
	 */
	uint64_t backing_size;
	/* zram's writeback_limit and writeback_limit_enable; every store's
	 * zc.wb_limit points here. */
	struct zr_wb_limit wb;
};

/* ---- parsers -------------------------------------------------------------- */

int zr_dev_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift;
	char *end;

	if (*s < '0' || *s > '9')	/* strtoull takes " -1" */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (*end) {
	case '\0':		shift = 0;  break;
	case 'k': case 'K':	shift = 10; break;
	case 'm': case 'M':	shift = 20; break;
	case 'g': case 'G':	shift = 30; break;
	case 't': case 'T':	shift = 40; break;
	case 'p': case 'P':	shift = 50; break;
	case 'e': case 'E':	shift = 60; break;
	default:
		return -EINVAL;
	}
	if (shift && end[1] != '\0')
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int zr_dev_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int zr_dev_parse_int(const char *s, int *out)
{
	char *end;
	long v;

	if (*s == '\0' || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < INT_MIN || v > INT_MAX)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static uint64_t zr_round_page(uint64_t v)
{
	return (v + ZR_PAGE_SIZE - 1) & ~(uint64_t)(ZR_PAGE_SIZE - 1);
}

/* ---- text helpers ----------------------------------------------------------------- */

/* Text for show(): a buffer filled by zr_printf(). */
struct zr_text {
	char *buf;
	size_t size;
	size_t len;
};

static void zr_printf(struct zr_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* zr_printf - append to @t; what does not fit is dropped.  Cannot fail. */
static void zr_printf(struct zr_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len + 1 >= t->size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	t->len += (size_t)n;
	if (t->len >= t->size)
		t->len = t->size - 1;
}

/* @bytes with a binary unit, e.g. "1.5 GiB", into @buf; returns @buf. */
static const char *zr_human(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
	};
	double v = (double)bytes / 1024;
	unsigned int u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* "3.07:1", or "-" when there is nothing to compare. */
static const char *zr_ratio(uint64_t a, uint64_t b, char *buf, size_t size)
{
	if (!a || !b)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.2f:1", (double)a / (double)b);
	return buf;
}

/* ---- the table of values ---------------------------------------------------- */

enum zr_kind {
	ZR_KIND_PATH,		/* an absolute path, ZR_DEV_PATH_MAX at most */
	ZR_KIND_SIZE,		/* zr_dev_parse_size(), rounded up to a page */
	ZR_KIND_INT,		/* zr_dev_parse_int(), within min..max */
	ZR_KIND_COUNT,		/* zr_dev_parse_u64(), within min..max;
				 * rows past ZR_NOPTS allow one '+' first */
	ZR_KIND_ALGORITHM,	/* a backend's name */
	ZR_KIND_LEVEL,		/* zr_dev_parse_int(), the backend's range */
	ZR_KIND_ALGO_LEVEL,	/* NAME[:LEVEL]: ALGORITHM, then its LEVEL */
	ZR_KIND_SWITCH,		/* "on" (u = 1) or "off" (u = 0) */
};

/*
 * Values that only attributes take, after the options' rows.  zram reads
 * these with kstrtoul() and its kin, which allow one '+' first (and
 * leading zeros, as every count here does), so a count of these does too.
 */
enum {
	ZR_VAL_RESET = ZR_NOPTS,	/* reset: any positive number */
	ZR_VAL_MEM_USED_MAX,		/* mem_used_max: 0 only */
	ZR_VAL_IDLE,			/* idle: an age in seconds */
	ZR_VAL_PRIORITY,		/* algorithm_params priority= */
	ZR_VAL_RECOMP_PRIORITY,		/* recomp_algorithm, recompress */
	ZR_VAL_THRESHOLD,		/* recompress threshold= */
	ZR_VAL_MAX_PAGES,		/* recompress max_pages= */
	ZR_VAL_PAGE_INDEX,		/* writeback page_index= */
	ZR_VAL_WB_LIMIT,		/* writeback_limit: pages */
	ZR_VAL_WB_LIMIT_ENABLE,		/* writeback_limit_enable: 0 or 1 */
	ZR_NVALS,
};

#define ZR_STR_(x) #x
#define ZR_STR(x) ZR_STR_(x)

/*
 * struct zr_value - how one value is parsed and refused.
 * @what:  SIZE: the refusal of text that is no size; INT, COUNT: what
 *         is expected ("an integer"), said with the range.
 * @big:   SIZE: the refusal past @max (NULL: @what).
 * @small: SIZE: the refusal below @min.
 */
struct zr_value {
	const char *name;
	enum zr_kind kind;
	uint64_t min, max;
	const char *what, *big, *small;
};

#define ZR_SIZE_WORDS "expected a size such as 512M or 4G"
#define ZR_RESERVE_WORDS \
	"expected a size from 0 to " ZR_STR(ZR_DEV_RESERVE_MAX_MIB) "M, such as 4M"

static const struct zr_value zr_values[ZR_NVALS] = {
	[ZR_OPT_DISKSIZE] = { "disksize", ZR_KIND_SIZE, 1, ZR_DEV_DISKSIZE_MAX,
			      ZR_SIZE_WORDS, "too large",
			      "must be greater than 0" },
	[ZR_OPT_COMP_ALGORITHM] = { "comp_algorithm", ZR_KIND_ALGORITHM,
				    0, 0, NULL, NULL, NULL },
	[ZR_OPT_COMP_LEVEL] = { "comp_level", ZR_KIND_LEVEL, 0, 0,
				"an integer", NULL, NULL },
	[ZR_OPT_MEM_LIMIT] = { "mem_limit", ZR_KIND_SIZE, 0, ZR_DEV_SIZE_MAX,
			       ZR_SIZE_WORDS ", or 0 for no limit",
			       "too large", NULL },
	[ZR_OPT_THREADS] = { "threads", ZR_KIND_INT, 1, ZR_DEV_THREADS_MAX,
			     "an integer", NULL, NULL },
	[ZR_OPT_RESERVE] = { "reserve", ZR_KIND_SIZE, 0, ZR_DEV_RESERVE_MAX,
			     ZR_RESERVE_WORDS, NULL, NULL },
	[ZR_OPT_BACKING_DEV] = { "backing_dev", ZR_KIND_PATH, 0, 0,
				 "expected an absolute path", NULL, NULL },
	[ZR_OPT_BACKING_SIZE] = { "backing_size", ZR_KIND_SIZE, 0,
				  ZR_DEV_SIZE_MAX, ZR_SIZE_WORDS
				  ", or 0 for the file system's free space",
				  "too large", NULL },
	[ZR_OPT_WRITEBACK_AGE] = { "writeback_age", ZR_KIND_COUNT, 0,
				   ZR_WB_AGE_MAX, "a number of seconds",
				   NULL, NULL },
	[ZR_OPT_RECOMP_ALGORITHM] = { "recomp_algorithm", ZR_KIND_ALGO_LEVEL,
				      0, 0, "a level", NULL, NULL },
	[ZR_OPT_RECOMPRESS_AGE] = { "recompress_age", ZR_KIND_COUNT, 0,
				    ZR_WB_AGE_MAX, "a number of seconds",
				    NULL, NULL },
	[ZR_OPT_IO_URING] = { "io_uring", ZR_KIND_SWITCH, 0, 0,
			      "expected on or off", NULL, NULL },
	[ZR_OPT_IO_URING_DEPTH] = { "io_uring_depth", ZR_KIND_COUNT, 1,
				    ZR_DEV_URING_DEPTH_MAX, "an integer",
				    NULL, NULL },
	[ZR_OPT_MAX_THREADS] = { "max_threads", ZR_KIND_COUNT,
				 1, ZR_DEV_THREADS_MAX, "an integer",
				 NULL, NULL },
	/* libfuse's receive buffers hold ZR_DEV_IO_MAX; the kernel a page. */
	[ZR_OPT_MAX_READ] = { "max_read", ZR_KIND_COUNT,
			      ZR_PAGE_SIZE, ZR_DEV_IO_MAX,
			      "a number of bytes", NULL, NULL },
	[ZR_OPT_MAX_WRITE] = { "max_write", ZR_KIND_COUNT,
			       ZR_PAGE_SIZE, ZR_DEV_IO_MAX,
			       "a number of bytes", NULL, NULL },
	/*
	 * 16 bits in the INIT reply, and 0 would be the kernel's default
	 * (12), not ours; without CAP_SYS_ADMIN the kernel lowers it to
	 * /proc/sys/fs/fuse/max_user_bgreq.
	 */
	[ZR_OPT_MAX_BACKGROUND] = { "max_background", ZR_KIND_COUNT,
				    1, 65535, "an integer", NULL, NULL },
	/* Also at most max_background: zr_dev_check_opts(). */
	[ZR_OPT_CONGESTION_THRESHOLD] = { "congestion_threshold",
					  ZR_KIND_COUNT, 1, 65535,
					  "an integer", NULL, NULL },
	[ZR_VAL_RESET] = { "reset", ZR_KIND_COUNT, 1, UINT64_MAX,
			   "a positive number", NULL, NULL },
	[ZR_VAL_MEM_USED_MAX] = { "mem_used_max", ZR_KIND_COUNT, 0, 0,
				  "a number", NULL, NULL },
	[ZR_VAL_IDLE] = { "idle", ZR_KIND_COUNT, 0, ZR_DEV_IDLE_MAX_AGE,
			  "a number of seconds", NULL, NULL },
	[ZR_VAL_PRIORITY] = { "priority", ZR_KIND_INT, 0, ZR_RECOMP_MAX,
			      "an integer", NULL, NULL },
	[ZR_VAL_RECOMP_PRIORITY] = { "priority", ZR_KIND_INT, 1,
				     ZR_RECOMP_MAX, "an integer", NULL, NULL },
	/* zram's: below its huge class; here below a page. */
	[ZR_VAL_THRESHOLD] = { "threshold", ZR_KIND_COUNT, 0,
			       ZR_PAGE_SIZE - 1, "a number of bytes", NULL,
			       NULL },
	[ZR_VAL_MAX_PAGES] = { "max_pages", ZR_KIND_COUNT, 1, UINT64_MAX,
			       "a number of pages", NULL, NULL },
	[ZR_VAL_PAGE_INDEX] = { "page_index", ZR_KIND_COUNT, 0, UINT64_MAX,
				"a page number", NULL, NULL },
	[ZR_VAL_WB_LIMIT] = { "writeback_limit", ZR_KIND_COUNT, 0,
			      UINT64_MAX, "a number of pages", NULL, NULL },
	[ZR_VAL_WB_LIMIT_ENABLE] = { "writeback_limit_enable",
				     ZR_KIND_COUNT, 0, 1, "a flag", NULL, NULL },
};

/* What zr_parse() found. */
struct zr_parsed {
	uint64_t u;				/* SIZE, COUNT */
	int i;					/* INT, LEVEL */
	const struct zcomp_backend *be;		/* ALGORITHM */
};

static void zr_msg(char *msg, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void zr_msg(char *msg, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, size, fmt, ap);
	va_end(ap);
}

/* "lz4, lz4hc, zstd" into @buf. */
static void zr_backend_list(char *buf, size_t size)
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
 * zr_parse - parse @s as value @idx of zr_values[] into @out.  @be: the
 * backend whose range a LEVEL is checked against.  Returns 0, or -EINVAL
 * with the refusal in @msg (may be NULL), naming the value as typed.
 */
static int zr_parse(int idx, const char *s, const struct zcomp_backend *be,
		    struct zr_parsed *out, char *msg, size_t msgsize)
{
	const struct zr_value *v = &zr_values[idx];
	char list[128], name[32];
	const char *colon;
	uint64_t u = 0;
	size_t len;
	int ret, i = 0;

	switch (v->kind) {
	case ZR_KIND_SWITCH:
		if (strcmp(s, "on") && strcmp(s, "off")) {
			zr_msg(msg, msgsize, "invalid %s '%s': %s", v->name, s,
			       v->what);
			return -EINVAL;
		}
		out->u = !strcmp(s, "on");
		return 0;
	case ZR_KIND_PATH:
		if (s[0] != '/') {
			zr_msg(msg, msgsize, "invalid %s '%s': %s", v->name, s,
			       v->what);
			return -EINVAL;
		}
		/* Its head and length: the whole would hide the reason. */
		len = strlen(s);
		if (len > ZR_DEV_PATH_MAX) {
			zr_msg(msg, msgsize,
			       "invalid %s '%.64s'... (%zu bytes): %s of at most %d bytes",
			       v->name, s, len, v->what, ZR_DEV_PATH_MAX);
			return -EINVAL;
		}
		return 0;
	case ZR_KIND_SIZE:
		ret = zr_dev_parse_size(s, &u);
		if (ret == -EINVAL) {
			zr_msg(msg, msgsize, "invalid %s '%s': %s", v->name, s,
			       v->what);
			return -EINVAL;
		}
		if (ret == -ERANGE || u > v->max) {
			zr_msg(msg, msgsize, "invalid %s '%s': %s", v->name, s,
			       v->big ? v->big : v->what);
			return -EINVAL;
		}
		if (u < v->min) {
			zr_msg(msg, msgsize, "invalid %s '%s': %s", v->name, s,
			       v->small ? v->small : v->what);
			return -EINVAL;
		}
		out->u = zr_round_page(u);
		return 0;
	case ZR_KIND_INT:
	case ZR_KIND_COUNT:
		if (v->kind == ZR_KIND_INT) {
			ret = zr_dev_parse_int(s, &i);
			u = (uint64_t)i;
			if (!ret && i < 0)
				ret = -EINVAL;
		} else {
			/*
			 * What only attributes take is read as zram reads
			 * it, with kstrtoull(): one '+' may come first.  An
			 * option's count, shared with libfuse, takes none.
			 */
			ret = zr_dev_parse_u64(idx >= ZR_NOPTS && s[0] == '+' ?
					       s + 1 : s, &u);
		}
		if (ret < 0 || u < v->min || u > v->max) {
			zr_msg(msg, msgsize,
			       "invalid %s '%s': expected %s from %llu to %llu",
			       v->name, s, v->what, (unsigned long long)v->min,
			       (unsigned long long)v->max);
			return -EINVAL;
		}
		out->u = u;
		out->i = i;
		return 0;
	case ZR_KIND_ALGORITHM:
		out->be = zcomp_find(s);
		if (!out->be) {
			zr_backend_list(list, sizeof(list));
			zr_msg(msg, msgsize,
			       "invalid %s '%s': expected one of %s", v->name,
			       s, list);
			return -EINVAL;
		}
		return 0;
	case ZR_KIND_LEVEL:
		if (zr_dev_parse_int(s, &i) < 0 || i < be->level_min ||
		    i > be->level_max) {
			zr_msg(msg, msgsize,
			       "invalid %s '%s': expected %s from %d to %d for %s",
			       v->name, s, v->what, be->level_min,
			       be->level_max, be->name);
			return -EINVAL;
		}
		out->i = i;
		return 0;
	case ZR_KIND_ALGO_LEVEL:
		colon = strchr(s, ':');
		len = colon ? (size_t)(colon - s) : strlen(s);
		snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ?
							   len : 0), s);
		out->be = len < sizeof(name) ? zcomp_find(name) : NULL;
		if (!out->be) {
			zr_backend_list(list, sizeof(list));
			zr_msg(msg, msgsize,
			       "invalid %s '%s': expected one of %s, then optionally :LEVEL",
			       v->name, s, list);
			return -EINVAL;
		}
		out->i = ZCOMP_LEVEL_DEFAULT;
		if (colon && (zr_dev_parse_int(colon + 1, &out->i) < 0 ||
			      out->i < out->be->level_min ||
			      out->i > out->be->level_max)) {
			zr_msg(msg, msgsize,
			       "invalid %s '%s': expected %s from %d to %d for %s",
			       v->name, s, v->what, out->be->level_min,
			       out->be->level_max, out->be->name);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

/* ---- options ----------------------------------------------------------------- */

const char *zr_dev_opt_name(int opt)
{
	return opt >= 0 && opt < ZR_NOPTS ? zr_values[opt].name : NULL;
}

/* The online CPUs, within 1..ZR_DEV_THREADS_MAX. */
static unsigned int zr_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > ZR_DEV_THREADS_MAX ? ZR_DEV_THREADS_MAX :
		(unsigned int)n;
}

/*
 * zr_check_libfuse - libfuse's numeric options into @num (0 if unset),
 * and the one rule between two of them.  As zr_dev_check_opts().
 */
static int zr_check_libfuse(const struct zr_dev_opts *o,
			    unsigned int num[ZR_NOPTS], char *msg,
			    size_t msgsize)
{
	struct zr_parsed p;
	unsigned int background;
	int i;

	for (i = ZR_OPT_LIBFUSE; i < ZR_NOPTS; i++) {
		num[i] = 0;
		if (!o->val[i])
			continue;
		if (zr_parse(i, o->val[i], NULL, &p, msg, msgsize) < 0)
			return -EINVAL;
		num[i] = (unsigned int)p.u;
	}
	/* A threshold past max_background would never be reached. */
	background = num[ZR_OPT_MAX_BACKGROUND] ?
		num[ZR_OPT_MAX_BACKGROUND] : ZR_DEV_BACKGROUND_DEFAULT;
	if (num[ZR_OPT_CONGESTION_THRESHOLD] > background) {
		zr_msg(msg, msgsize, "invalid congestion_threshold '%s': expected an integer from 1 to %u (max_background)",
		       o->val[ZR_OPT_CONGESTION_THRESHOLD], background);
		return -EINVAL;
	}
	return 0;
}

int zr_dev_check_opts(const struct zr_dev_opts *o, struct zr_dev_conf *conf,
		      char *msg, size_t msgsize)
{
	unsigned int num[ZR_NOPTS];
	const struct zcomp_backend *be;
	struct zr_parsed p;
	const char *v;

	memset(conf, 0, sizeof(*conf));
	if (o->novalue >= 0) {
		v = zr_dev_opt_name(o->novalue);
		zr_msg(msg, msgsize, "option '%s' needs a value, as in -o %s=...",
		       v, v);
		return -EINVAL;
	}

#define ZR_OPT_PARSE(opt, be) \
	(o->val[opt] && zr_parse(opt, o->val[opt], be, &p, msg, msgsize) < 0)

	conf->zc.disksize = ZR_DEV_DISKSIZE_DEFAULT;
	if (ZR_OPT_PARSE(ZR_OPT_DISKSIZE, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_DISKSIZE])
		conf->zc.disksize = p.u;

	p.be = zcomp_find("lz4");
	if (ZR_OPT_PARSE(ZR_OPT_COMP_ALGORITHM, NULL))
		return -EINVAL;
	be = p.be;
	conf->zc.algorithm = be->name;		/* static, unlike the text */

	conf->zc.level = ZCOMP_LEVEL_DEFAULT;
	if (ZR_OPT_PARSE(ZR_OPT_COMP_LEVEL, be))
		return -EINVAL;
	if (o->val[ZR_OPT_COMP_LEVEL])
		conf->zc.level = p.i;

	conf->zc.mem_limit = 0;
	if (ZR_OPT_PARSE(ZR_OPT_MEM_LIMIT, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_MEM_LIMIT])
		conf->zc.mem_limit = p.u;

	conf->threads = zr_online_cpus();
	if (ZR_OPT_PARSE(ZR_OPT_THREADS, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_THREADS])
		conf->threads = (unsigned int)p.i;
	conf->zc.workers = conf->threads - 1;	/* the caller is one */

	conf->zc.reserve = ZR_RESERVE_DEFAULT;
	if (ZR_OPT_PARSE(ZR_OPT_RESERVE, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_RESERVE])
		conf->zc.reserve = p.u;

	if (ZR_OPT_PARSE(ZR_OPT_BACKING_DEV, NULL))
		return -EINVAL;
	conf->backing_dev = o->val[ZR_OPT_BACKING_DEV];
	if (ZR_OPT_PARSE(ZR_OPT_BACKING_SIZE, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_BACKING_SIZE])
		conf->backing_size = p.u;
	conf->zc.writeback_age = conf->backing_dev ? ZR_DEV_WB_AGE_DEFAULT : 0;
	if (ZR_OPT_PARSE(ZR_OPT_WRITEBACK_AGE, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_WRITEBACK_AGE])
		conf->zc.writeback_age = (unsigned int)p.u;

	/* Priority 1 only; more through control/recomp_algorithm. */
	if (ZR_OPT_PARSE(ZR_OPT_RECOMP_ALGORITHM, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_RECOMP_ALGORITHM]) {
		conf->zc.recomp[0].name = p.be->name;	/* static */
		conf->zc.recomp[0].level = p.i;
	}
	/* Without a secondary algorithm it is kept, and does nothing. */
	conf->zc.recompress_age = conf->zc.recomp[0].name ?
		ZR_DEV_RC_AGE_DEFAULT : 0;
	if (ZR_OPT_PARSE(ZR_OPT_RECOMPRESS_AGE, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_RECOMPRESS_AGE])
		conf->zc.recompress_age = (unsigned int)p.u;

	conf->io_uring = true;
	if (ZR_OPT_PARSE(ZR_OPT_IO_URING, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_IO_URING])
		conf->io_uring = p.u;
	conf->io_uring_depth = ZR_DEV_URING_DEPTH_DEFAULT;
	if (ZR_OPT_PARSE(ZR_OPT_IO_URING_DEPTH, NULL))
		return -EINVAL;
	if (o->val[ZR_OPT_IO_URING_DEPTH])
		conf->io_uring_depth = (unsigned int)p.u;
#undef ZR_OPT_PARSE

	if (zr_check_libfuse(o, num, msg, msgsize) < 0)
		return -EINVAL;
	conf->max_read = num[ZR_OPT_MAX_READ] ?
		num[ZR_OPT_MAX_READ] : ZR_DEV_READ_DEFAULT;
	conf->max_threads = num[ZR_OPT_MAX_THREADS] ?
		num[ZR_OPT_MAX_THREADS] : ZR_DEV_WORKERS_DEFAULT;
	return 0;
}

void zr_dev_opts_help(char *buf, size_t size)
{
	const struct zcomp_backend *const *be;
	struct zr_text t = { buf, size, 0 };

	zr_printf(&t, "    -o disksize=SIZE       size of image (default: 1G); SIZE is bytes or a\n"
		  "                           number with K, M, G, T, P or E (powers of\n"
		  "                           1024), rounded up to a multiple of %u\n"
		  "    -o comp_algorithm=ALG  compressor (default: lz4)\n"
		  "    -o comp_level=N        compression level (default: the compressor's):\n",
		  ZR_PAGE_SIZE);
	for (be = zcomp_backends(); *be; be++)
		zr_printf(&t, "                             %-6s %d to %d, default %d\n",
			  (*be)->name, (*be)->level_min, (*be)->level_max,
			  (*be)->level_default);
	zr_printf(&t, "    -o mem_limit=SIZE      most memory to use for data, rounded up to\n"
		  "                           %u bytes; 0 for no limit (default: 0)\n"
		  "    -o threads=N           threads that compress the pages of one large\n"
		  "                           request, its FUSE worker included; 1 to %d\n"
		  "                           (default: the online CPUs, %ld here)\n"
		  "    -o reserve=SIZE        free memory kept resident so that storing a page\n"
		  "                           takes no page fault, 0 to %dM (default: %lluM)\n"
		  "    -o backing_dev=PATH    a file (created 0600) or block device that pages\n"
		  "                           are written back to (control/writeback)\n"
		  "    -o backing_size=SIZE   the most the backing file may take (default:\n"
		  "                           the file system's free space)\n"
		  "    -o writeback_age=SECS  write back pages unused for that long, 0 for\n"
		  "                           never (default with a backing file: %d)\n"
		  "    -o recomp_algorithm=ALG[:N]\n"
		  "                           a denser compressor for idle pages, and its\n"
		  "                           level (control/recompress; priority 1)\n"
		  "    -o recompress_age=SECS recompress pages unused for that long, 0 for\n"
		  "                           never (default with recomp_algorithm: %d)\n"
		  "    -o io_uring=on|off     FUSE over io_uring when the kernel offers it\n"
		  "                           (default: on), else /dev/fuse\n"
		  "    -o io_uring_depth=N    requests in flight per CPU on io_uring, 1 to\n"
		  "                           %d (default: %d)\n",
		  ZR_PAGE_SIZE, ZR_DEV_THREADS_MAX, sysconf(_SC_NPROCESSORS_ONLN),
		  ZR_DEV_RESERVE_MAX_MIB,
		  (unsigned long long)(ZR_RESERVE_DEFAULT >> 20),
		  ZR_DEV_WB_AGE_DEFAULT, ZR_DEV_RC_AGE_DEFAULT,
		  ZR_DEV_URING_DEPTH_MAX, ZR_DEV_URING_DEPTH_DEFAULT);
}

/* ---- the device ---------------------------------------------------------------- */

/*
 * zr_make_store, zr_open_backing - zr_store_create(), zb_open() with
 * every signal blocked in the calling thread meanwhile, so that the
 * threads they start (the store's; the file's read-ahead thread), which
 * inherit its mask, never take one: the exit signals are the main
 * thread's (fusezram.c).
 */
static void zr_block_signals(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
}

static int zr_make_store(const struct zr_config *zc, struct zr_store **out)
{
	sigset_t saved;
	int ret;

	zr_block_signals(&saved);
	ret = zr_store_create(zc, out);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return ret;
}

static int zr_open_backing(const char *path, uint64_t size,
			   struct zb_file **out)
{
	sigset_t saved;
	int ret;

	zr_block_signals(&saved);
	ret = zb_open(path, size, out);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return ret;
}

int zr_dev_create(const struct zr_dev_conf *conf, struct zr_dev **out)
{
	struct zr_dev *dev;
	int ret;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	/* Taken exclusive by trylock only: its kind does not matter. */
	ret = -pthread_rwlock_init(&dev->init_lock, NULL);
	if (ret)
		goto out_free;
	dev->zc = conf->zc;
	dev->zc.wb_limit = &dev->wb;
	atomic_init(&dev->wb.pages, 0);
	atomic_init(&dev->wb.on, false);
	dev->backing_size = conf->backing_size;
	if (conf->backing_dev) {
		ret = zr_open_backing(conf->backing_dev, conf->backing_size,
				      &dev->zc.backing);
		if (ret < 0)
			goto out_lock;
	}
	ret = zr_make_store(&dev->zc, &dev->st);
	if (ret < 0)
		goto out_backing;
	dev->threads = conf->threads;
	dev->disksize = zr_disksize(dev->st);
	atomic_init(&dev->opens, 0);
	atomic_init(&dev->copy_bytes, 0);
	*out = dev;
	return 0;

out_backing:
	zb_close(dev->zc.backing);
out_lock:
	pthread_rwlock_destroy(&dev->init_lock);
out_free:
	free(dev);
	return ret;
}

void zr_dev_destroy(struct zr_dev *dev)
{
	if (!dev)
		return;
	zr_store_destroy(dev->st);
	zb_close(dev->zc.backing);
	pthread_rwlock_destroy(&dev->init_lock);
	free(dev);
}

void zr_dev_set_discipline(struct zr_dev *dev,
			   const struct zr_dev_discipline *d)
{
	dev->disc = *d;
}

void zr_dev_set_transport(struct zr_dev *dev,
			  void (*describe)(void *arg, char *buf, size_t len),
			  void *arg)
{
	dev->transport = describe;
	dev->transport_arg = arg;
}

static void zr_lock_shared(struct zr_dev *dev)
{
	pthread_rwlock_rdlock(&dev->init_lock);
}

static void zr_unlock(struct zr_dev *dev)
{
	pthread_rwlock_unlock(&dev->init_lock);
}

/* ---- I/O ---------------------------------------------------------------------- */

/*
 * The I/O calls are the hot path: one shared lock, one store call.
 * glibc's rwlock costs one atomic read-modify-write to take and one to
 * drop, on a line every worker shares: tens of nanoseconds when workers
 * collide, against microseconds to compress a page; measured within the
 * run-to-run noise (bench/RESULTS.md, "Tuning figures").
 */
ssize_t zr_dev_read(struct zr_dev *dev, void *buf, size_t len, uint64_t off)
{
	ssize_t ret;

	zr_lock_shared(dev);
	ret = zr_read(dev->st, buf, len, off);
	zr_unlock(dev);
	return ret;
}

ssize_t zr_dev_write(struct zr_dev *dev, const void *buf, size_t len,
		     uint64_t off)
{
	ssize_t ret;

	zr_lock_shared(dev);
	ret = zr_write(dev->st, buf, len, off);
	zr_unlock(dev);
	return ret;
}

int zr_dev_fallocate(struct zr_dev *dev, int mode, uint64_t off, uint64_t len,
		     bool *changed)
{
	uint64_t end = off + len;	/* both < 2^63: no overflow */
	int ret = 0;

	*changed = false;
	zr_lock_shared(dev);
	switch (mode) {
	case 0:
		if (end > dev->disksize)
			ret = -EFBIG;
		break;
	case FALLOC_FL_KEEP_SIZE:
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		if (off < dev->disksize) {
			ret = zr_discard(dev->st, off, len);
			*changed = true;
		}
		break;
	case FALLOC_FL_ZERO_RANGE:
		if (end > dev->disksize) {
			ret = -EFBIG;
			break;
		}
		ret = zr_discard(dev->st, off, len);
		*changed = true;
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	zr_unlock(dev);
	return ret;
}

int64_t zr_dev_seek(struct zr_dev *dev, uint64_t off, int whence)
{
	int64_t ret;

	zr_lock_shared(dev);
	ret = zr_seek(dev->st, off, whence);
	zr_unlock(dev);
	return ret;
}

uint64_t zr_dev_disksize(struct zr_dev *dev)
{
	uint64_t size;

	zr_lock_shared(dev);
	size = dev->disksize;
	zr_unlock(dev);
	return size;
}

void zr_dev_get_stats(struct zr_dev *dev, struct zr_stats *s,
		      uint64_t *disksize)
{
	zr_lock_shared(dev);
	zr_get_stats(dev->st, s);
	*disksize = dev->disksize;
	zr_unlock(dev);
}

void zr_dev_open(struct zr_dev *dev)
{
	zr_lock_shared(dev);
	atomic_fetch_add(&dev->opens, 1);
	zr_unlock(dev);
}

void zr_dev_release(struct zr_dev *dev)
{
	zr_lock_shared(dev);
	atomic_fetch_sub(&dev->opens, 1);
	zr_unlock(dev);
}

int zr_dev_opens(const struct zr_dev *dev)
{
	return atomic_load(&dev->opens);
}

/* ---- replacing the store ------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds. */
static int64_t zr_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * zr_cur_config - the configuration for a replacement store: what the
 * store was made with, with the memory limit in force now.  Needs
 * init_lock.  Cannot fail.
 */
static struct zr_config zr_cur_config(struct zr_dev *dev)
{
	struct zr_config zc = dev->zc;
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	zc.mem_limit = s.mem_limit;
	zc.writeback_age = (unsigned int)s.wb_age;
	zc.recompress_age = (unsigned int)s.rc_age;
	return zc;
}

void zr_dev_get_config(struct zr_dev *dev, struct zr_config *zc)
{
	unsigned int p;

	zr_lock_shared(dev);
	*zc = zr_cur_config(dev);
	zc->level = zr_level(dev->st);
	for (p = 1; p <= ZR_RECOMP_MAX; p++)
		if (zc->recomp[p - 1].name)
			zr_recomp_algorithm(dev->st, p,
					    &zc->recomp[p - 1].level);
	zr_unlock(dev);
}

/*
 * zr_busy - may the store be replaced now?  Returns -EBUSY while the
 * disk is open or, with @need_empty, while any page is stored; else 0.
 * Needs init_lock (shared is enough to answer at once; exclusive to know
 * the answer still holds).
 */
static int zr_busy(struct zr_dev *dev, bool need_empty)
{
	struct zr_stats s;

	if (atomic_load(&dev->opens) > 0)
		return -EBUSY;
	if (need_empty) {
		zr_get_stats(dev->st, &s);
		if (s.pages_stored || s.bd_count)
			return -EBUSY;
	}
	return 0;
}

/*
 * zr_dev_replace - swap the store for a new, empty one and free the old
 * one with all its data: reset, and disksize, comp_algorithm,
 * algorithm_params and recomp_algorithm while the disk is empty (zram
 * refuses those once the device is initialised).
 * @edit:       changes the configuration for the new store (what the
 *              store was made with, and the memory limit in force); may
 *              refuse with -EINVAL, checked against the current store.
 * @arg:        passed to @edit.
 * @need_empty: also refuse while any page is stored.
 *
 * Called without init_lock; takes it as described at the top.
 * Returns 0; -EBUSY (disk open, data stored, lock held too long, or a
 * concurrent replacement won); -EINVAL from @edit; -EINVAL/-ENOMEM from
 * zr_store_create().  On error nothing has changed.
 */
static int zr_dev_replace(struct zr_dev *dev,
			  int (*edit)(struct zr_config *zc, const void *arg),
			  const void *arg, bool need_empty)
{
	struct zr_store *nst, *old;
	struct zr_config zc, base, cur;
	int64_t deadline;
	int ret;

	/* Bad text is EINVAL whether or not the disk is busy. */
	zr_lock_shared(dev);
	old = dev->st;
	base = zc = zr_cur_config(dev);
	ret = edit ? edit(&zc, arg) : 0;
	if (!ret)
		ret = zr_busy(dev, need_empty);
	zr_unlock(dev);
	if (ret)
		return ret;

	/* New first: if it cannot be made, nothing has changed. */
	ret = zr_make_store(&zc, &nst);
	if (ret < 0)
		return ret;

	deadline = zr_mono_ns() + ZR_DEV_REPLACE_WAIT_MS * 1000000LL;
	while (pthread_rwlock_trywrlock(&dev->init_lock) != 0) {
		if (zr_mono_ns() >= deadline) {
			ret = -EBUSY;
			goto out_destroy;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	/* Opened, written or replaced while the new store was made? */
	ret = zr_busy(dev, need_empty);
	if (!ret && dev->st != old)
		ret = -EBUSY;
	if (ret) {
		zr_unlock(dev);
		goto out_destroy;
	}
	/* What was written to the old store meanwhile (the attributes
	 * that do not replace it) holds for the new one too. */
	cur = zr_cur_config(dev);
	if (cur.mem_limit != base.mem_limit)
		zc.mem_limit = cur.mem_limit;
	if (cur.writeback_age != base.writeback_age)
		zc.writeback_age = cur.writeback_age;
	if (cur.recompress_age != base.recompress_age)
		zc.recompress_age = cur.recompress_age;
	zr_set_mem_limit(nst, zc.mem_limit);
	zr_set_writeback_age(nst, zc.writeback_age);
	zr_set_recompress_age(nst, zc.recompress_age);
	dev->st = nst;
	dev->zc = zc;
	dev->disksize = zr_disksize(nst);
	zr_unlock(dev);
	nst = old;		/* freed outside the lock */
	ret = 0;
out_destroy:
	zr_store_destroy(nst);
	return ret;
}

/* ---- attributes --------------------------------------------------------------- */

/*
 * show() writes the attribute's text into @buf (@size bytes, NUL
 * included) and returns its length, or -errno; called with init_lock
 * held shared.  store() gets the user's text NUL-terminated, one
 * trailing newline removed, and returns 0 or -errno having changed
 * nothing; called with init_lock held shared, or without it if it
 * replaces the store (zr_dev_replace() takes it).  Both get the whole
 * device, as zram's get the device: reset and disksize replace the
 * store itself.
 */

/* disksize: bytes. */
static int zr_show_disksize(struct zr_dev *dev, char *buf, size_t size)
{
	return snprintf(buf, size, "%llu\n", (unsigned long long)dev->disksize);
}

static int zr_edit_disksize(struct zr_config *zc, const void *arg)
{
	zc->disksize = *(const uint64_t *)arg;
	return 0;
}

/*
 * A size as for -o disksize=.  Takes effect with a new, empty store;
 * refused with EBUSY while the disk is open or holds data (zram: once
 * initialised).
 */
static int zr_store_disksize(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_OPT_DISKSIZE, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	return zr_dev_replace(dev, zr_edit_disksize, &p.u, true);
}

/* zr_algo_line - every backend, @cur in brackets, and a newline. */
static void zr_algo_line(struct zr_text *t, const char *cur)
{
	const struct zcomp_backend *const *be;

	for (be = zcomp_backends(); *be; be++)
		zr_printf(t, strcmp((*be)->name, cur) ? "%s%s" : "%s[%s]",
			  be == zcomp_backends() ? "" : " ", (*be)->name);
	zr_printf(t, "\n");
}

/* comp_algorithm: every backend, the one in use in brackets. */
static int zr_show_comp_algorithm(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_text t = { buf, size, 0 };

	zr_algo_line(&t, zr_algorithm(dev->st));
	return (int)t.len;
}

/* As in zram, the level goes back to the new backend's default. */
static int zr_edit_algorithm(struct zr_config *zc, const void *arg)
{
	zc->algorithm = ((const struct zcomp_backend *)arg)->name;
	zc->level = ZCOMP_LEVEL_DEFAULT;
	return 0;
}

/* A backend's name, as for -o comp_algorithm=.  Same rule as disksize. */
static int zr_store_comp_algorithm(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_OPT_COMP_ALGORITHM, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	return zr_dev_replace(dev, zr_edit_algorithm, p.be, true);
}

/*
 * zr_next_key - the next word of zram's "key=value ..." syntax at *@pos
 * (words separated by blanks), split in place: returns 1 with *@key and
 * *@val set and *@pos moved past it, 0 at the end, -EINVAL for a word
 * without "=" or with nothing after it.  Cannot fail otherwise.
 */
static int zr_next_key(char **pos, char **key, char **val)
{
	char *s = *pos + strspn(*pos, " \t\n"), *end;

	if (*s == '\0')
		return 0;
	end = s + strcspn(s, " \t\n");
	if (*end != '\0')
		*end++ = '\0';
	*pos = end;
	*key = s;
	*val = strchr(s, '=');
	if (!*val || (*val)[1] == '\0')
		return -EINVAL;
	*(*val)++ = '\0';
	return 1;
}

/*
 * algorithm_params: write-only in zram; here it reads as it is written,
 * a line for the primary algorithm and one per secondary one.
 */
static int zr_show_algorithm_params(struct zr_dev *dev, char *buf,
				    size_t size)
{
	struct zr_text t = { buf, size, 0 };
	const char *name;
	unsigned int p;
	int level;

	zr_printf(&t, "algo=%s level=%d\n", zr_algorithm(dev->st),
		  zr_level(dev->st));
	for (p = 1; p <= ZR_RECOMP_MAX; p++) {
		name = zr_recomp_algorithm(dev->st, p, &level);
		if (name)
			zr_printf(&t, "priority=%u algo=%s level=%d\n", p, name,
				  level);
	}
	return (int)t.len;
}

/* What algorithm_params said, checked against the store in zr_edit_params. */
struct zr_params {
	const char *algo;		/* NULL: not given */
	int prio;			/* -1: not given */
	const char *level;		/* the text of level= */
};

/*
 * The algorithm is the one of priority=, or else the first (the primary
 * first) named by algo=, or else the primary; algo= and priority= given
 * together must name the same one.  level= must be in its range.
 */
static int zr_edit_params(struct zr_config *zc, const void *arg)
{
	const struct zr_params *p = arg;
	const struct zcomp_backend *be;
	const char *name;
	struct zr_parsed v;
	int prio = p->prio, i, *level;

	for (i = 0; prio < 0 && p->algo && i <= ZR_RECOMP_MAX; i++) {
		name = i ? zc->recomp[i - 1].name : zc->algorithm;
		if (name && strcmp(p->algo, name) == 0)
			prio = i;
	}
	if (prio < 0)
		prio = 0;	/* algo= naming none is refused below */
	name = prio ? zc->recomp[prio - 1].name : zc->algorithm;
	level = prio ? &zc->recomp[prio - 1].level : &zc->level;
	be = name ? zcomp_find(name) : NULL;
	if (!be || (p->algo && strcmp(p->algo, be->name) != 0) ||
	    zr_parse(ZR_OPT_COMP_LEVEL, p->level, be, &v, NULL, 0) < 0)
		return -EINVAL;
	*level = v.i;
	return 0;
}

/*
 * zram's "key=value ..." syntax: level=N is required (as -o comp_level=,
 * in the range of the algorithm it is for); algo=NAME and priority=N (0
 * the primary, 1 to ZR_RECOMP_MAX a secondary algorithm given) choose
 * the algorithm, the primary by default; dict= and anything else is
 * refused.  Same rule as disksize.
 */
static int zr_store_algorithm_params(struct zr_dev *dev, const char *buf)
{
	char text[ZR_DEV_ATTR_SIZE + 1], *pos = text, *key, *val;
	struct zr_params p = { NULL, -1, NULL };
	struct zr_parsed v;
	int ret;

	snprintf(text, sizeof(text), "%s", buf);
	while ((ret = zr_next_key(&pos, &key, &val)) > 0) {
		if (strcmp(key, "algo") == 0) {
			p.algo = val;
		} else if (strcmp(key, "priority") == 0) {
			if (zr_parse(ZR_VAL_PRIORITY, val, NULL, &v, NULL, 0))
				return -EINVAL;
			p.prio = v.i;
		} else if (strcmp(key, "level") == 0) {
			if (zr_dev_parse_int(val, &v.i) < 0)
				return -EINVAL;
			p.level = val;
		} else {
			return -EINVAL;
		}
	}
	if (ret < 0 || !p.level)
		return -EINVAL;
	return zr_dev_replace(dev, zr_edit_params, &p, true);
}

/*
 * recomp_algorithm: zram's, "#P: " and comp_algorithm's line for each
 * priority P that has a secondary algorithm; nothing when none has.
 */
static int zr_show_recomp_algorithm(struct zr_dev *dev, char *buf,
				    size_t size)
{
	struct zr_text t = { buf, size, 0 };
	const char *name;
	unsigned int p;
	int level;

	buf[0] = '\0';
	for (p = 1; p <= ZR_RECOMP_MAX; p++) {
		name = zr_recomp_algorithm(dev->st, p, &level);
		if (name) {
			zr_printf(&t, "#%u: ", p);
			zr_algo_line(&t, name);
		}
	}
	return (int)t.len;
}

/* The secondary algorithm recomp_algorithm sets, and its priority. */
struct zr_recomp_set {
	const struct zcomp_backend *be;
	unsigned int prio;
};

/* As comp_algorithm, the level goes back to the backend's default. */
static int zr_edit_recomp(struct zr_config *zc, const void *arg)
{
	const struct zr_recomp_set *r = arg;

	zc->recomp[r->prio - 1].name = r->be->name;
	zc->recomp[r->prio - 1].level = ZCOMP_LEVEL_DEFAULT;
	return 0;
}

/*
 * zram's "algo=NAME [priority=N]": the secondary algorithm of priority
 * N (1 to ZR_RECOMP_MAX, default 1), replacing the one there if any.
 * Same rule as disksize.  recompress_age is left as it is (it stays 0
 * unless set).
 */
static int zr_store_recomp_algorithm(struct zr_dev *dev, const char *buf)
{
	char text[ZR_DEV_ATTR_SIZE + 1], *pos = text, *key, *val;
	struct zr_recomp_set r = { NULL, 1 };
	struct zr_parsed v;
	int ret;

	snprintf(text, sizeof(text), "%s", buf);
	while ((ret = zr_next_key(&pos, &key, &val)) > 0) {
		if (strcmp(key, "algo") == 0) {
			if (zr_parse(ZR_OPT_COMP_ALGORITHM, val, NULL, &v,
				     NULL, 0) < 0)
				return -EINVAL;
			r.be = v.be;
		} else if (strcmp(key, "priority") == 0) {
			if (zr_parse(ZR_VAL_RECOMP_PRIORITY, val, NULL, &v,
				     NULL, 0) < 0)
				return -EINVAL;
			r.prio = (unsigned int)v.i;
		} else {
			return -EINVAL;
		}
	}
	if (ret < 0 || !r.be)
		return -EINVAL;
	return zr_dev_replace(dev, zr_edit_recomp, &r, true);
}

/* mem_limit: write-only in zram; here it reads in bytes, 0 for none. */
static int zr_show_mem_limit(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%llu\n", (unsigned long long)s.mem_limit);
}

/* A size as for -o mem_limit=; 0 lifts the limit.  At once. */
static int zr_store_mem_limit(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_OPT_MEM_LIMIT, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	zr_set_mem_limit(dev->st, p.u);
	return 0;
}

/* mem_used_max: write-only in zram; here it reads in bytes. */
static int zr_show_mem_used_max(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%llu\n",
			(unsigned long long)s.mem_used_max);
}

/*
 * 0 resets the peak to the memory used now ("00" and "+0" too: zram
 * takes any number kstrtoul() reads as 0); anything else EINVAL.
 */
static int zr_store_mem_used_max(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_VAL_MEM_USED_MAX, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	zr_reset_mem_used_max(dev->st);
	return 0;
}

/*
 * Anything compacts now: the pool (pages_compacted in mm_stat counts the
 * result) and, with a backing file, the file (zr_compact_file(); the
 * summary counts the pages moved).  Never fails, as zram's: a file that
 * stops the compaction shows in its own counters.
 */
static int zr_store_compact(struct zr_dev *dev, const char *buf)
{
	(void)buf;
	zr_compact(dev->st);
	if (dev->zc.backing)
		zr_compact_file(dev->st);
	return 0;
}

/*
 * Any positive number: free everything, keeping the settings (zram also
 * forgets its disksize; we keep it, so the image stays usable).  Refused
 * with EBUSY while the disk is open.
 */
static int zr_store_reset(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_VAL_RESET, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	return zr_dev_replace(dev, NULL, NULL, false);
}

/*
 * "all", or a number of seconds, 0 to ZR_DEV_IDLE_MAX_AGE: mark idle the
 * pages not read or written for that long.  0 marks every stored page,
 * as "all" does (zram's cutoff is then now: every page was accessed
 * before it).  The count shows in summary.
 */
static int zr_store_idle(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p = { .u = 0 };

	if (strcmp(buf, "all") != 0 &&
	    zr_parse(ZR_VAL_IDLE, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	zr_mark_idle(dev->st, p.u);
	return 0;
}

/*
 * max_comp_streams: the threads that compress one request (zram's, long
 * ignored, was the number of compression streams).
 */
static int zr_show_max_comp_streams(struct zr_dev *dev, char *buf,
				    size_t size)
{
	return snprintf(buf, size, "%u\n", dev->threads);
}

/* kernel zram's mm_stat, field for field. */
static int zr_show_mm_stat(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
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
static int zr_show_io_stat(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%8llu %8llu 0 %8llu\n",
			(unsigned long long)s.failed_reads,
			(unsigned long long)s.failed_writes,
			(unsigned long long)s.notify_free);
}

/*
 * kernel zram's debug_stat, version 1; then "#P NAME PAGES" for the
 * algorithm of each priority P given (0 the primary): the compressed
 * pages in RAM it stored; and the recompression counts of zr_stats.
 */
static int zr_show_debug_stat(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_text t = { buf, size, 0 };
	const char *name;
	struct zr_stats s;
	unsigned int p;
	int level;

	zr_get_stats(dev->st, &s);
	zr_printf(&t, "version: %d\n0 %8llu\n", 1,
		  (unsigned long long)s.miss_free);
	for (p = 0; p <= ZR_RECOMP_MAX; p++) {
		name = p ? zr_recomp_algorithm(dev->st, p, &level) :
			zr_algorithm(dev->st);
		if (name)
			zr_printf(&t, "#%u %s %llu\n", p, name,
				  (unsigned long long)s.algo_pages[p]);
	}
	zr_printf(&t, "recompressed %llu saved %llu aged %llu incompressible %llu\n",
		  (unsigned long long)s.recompressed,
		  (unsigned long long)s.recomp_saved,
		  (unsigned long long)s.recomp_aged,
		  (unsigned long long)s.incompressible);
	return (int)t.len;
}

/* summary, part 1: the data, the memory, the process. */
static void zr_summary_figures(struct zr_dev *dev, struct zr_text *t,
			       const struct zr_stats *s)
{
	char h1[32], h2[32], h3[32], r[32];
	uint64_t pages = dev->disksize / ZR_PAGE_SIZE;

	zr_printf(t, "fusezram: a disk of %s (%llu pages of 4 KiB) kept in RAM, each page\n"
		  "compressed with %s at level %d.\n\n",
		  zr_human(dev->disksize, h1, sizeof(h1)),
		  (unsigned long long)pages, zr_algorithm(dev->st),
		  zr_level(dev->st));
	zr_printf(t, "Data stored:    %s in %llu pages (%.1f%% of the disk)\n",
		  zr_human(s->orig_data_size, h1, sizeof(h1)),
		  (unsigned long long)s->pages_stored,
		  pages ? 100.0 * (double)s->pages_stored / (double)pages : 0.0);
	zr_printf(t, "  same-filled:  %llu pages are one 8-byte value repeated: they cost no memory\n",
		  (unsigned long long)s->same_pages);
	zr_printf(t, "  huge:         %llu pages did not compress and are kept as they are\n"
		  "                (%llu such pages written since the start)\n",
		  (unsigned long long)s->huge_pages,
		  (unsigned long long)s->huge_pages_since);
	zr_printf(t, "  idle:         %llu pages marked idle (control/idle) and not accessed since\n",
		  (unsigned long long)s->idle_pages);
	zr_printf(t, "Compressed to:  %s (ratio %s)\n",
		  zr_human(s->compr_data_size, h1, sizeof(h1)),
		  zr_ratio(s->orig_data_size, s->compr_data_size, r, sizeof(r)));
	zr_printf(t, "Memory used:    %s for the compressed pages and their bookkeeping\n"
		  "                (ratio %s; peak %s; limit %s)\n",
		  zr_human(s->mem_used_total, h1, sizeof(h1)),
		  zr_ratio(s->orig_data_size, s->mem_used_total, r, sizeof(r)),
		  zr_human(s->mem_used_max, h2, sizeof(h2)),
		  s->mem_limit ? zr_human(s->mem_limit, h3, sizeof(h3)) : "none");
	if (s->orig_data_size >= s->mem_used_total)
		zr_printf(t, "Memory saved:   %s (%.0f%% of the data stored)\n",
			  zr_human(s->orig_data_size - s->mem_used_total, h1,
				   sizeof(h1)),
			  s->orig_data_size ? 100.0 *
			  (double)(s->orig_data_size - s->mem_used_total) /
			  (double)s->orig_data_size : 0.0);
	else
		zr_printf(t, "Memory saved:   none: %s more than the data stored\n",
			  zr_human(s->mem_used_total - s->orig_data_size, h1,
				   sizeof(h1)));
	zr_printf(t, "Overhead:       %s of the memory used holds no compressed data\n"
		  "                (fragmentation); compaction has freed %llu pages\n",
		  zr_human(s->mem_used_total > s->compr_data_size ?
			   s->mem_used_total - s->compr_data_size : 0,
			   h1, sizeof(h1)),
		  (unsigned long long)s->pages_compacted);
	zr_printf(t, "Reserve:        %s of free pages kept resident, so that stores take\n"
		  "                no page fault (not in memory used; -o reserve=\n"
		  "                is its target; pages freed past it go within seconds)\n",
		  zr_human(s->reserve_bytes, h1, sizeof(h1)));
}

/* summary, part 2: allocations, I/O, the process, the size classes. */
static void zr_summary_process(struct zr_dev *dev, struct zr_text *t,
			       const struct zr_stats *s)
{
	zr_printf(t, "Not counted:    the page table (16 bytes per page written), buffers,\n"
		  "                the reserve and the process itself\n");
	zr_printf(t, "Failed I/O:     %llu reads, %llu writes\n",
		  (unsigned long long)s->failed_reads,
		  (unsigned long long)s->failed_writes);
	zr_printf(t, "Image:          open %d time(s); %u thread(s) compress each large request\n"
		  "                when it is alone (%llu requests shared so far)\n",
		  atomic_load(&dev->opens), dev->threads,
		  (unsigned long long)s->split_requests);
	if (!dev->disc.on)
		zr_printf(t, "Memory lock:    off (-o nomlock): this memory may be swapped out\n");
	else
		zr_printf(t, "Memory lock:    mlockall %s, I/O flusher %s, oom_score_adj %s\n",
			  dev->disc.mlocked ? "on" : "FAILED",
			  dev->disc.io_flusher ? "on" : "FAILED",
			  dev->disc.oom_score_adj ? dev->disc.oom_score_adj :
			  "unchanged");
	if (dev->transport) {
		char line[384];

		dev->transport(dev->transport_arg, line, sizeof(line));
		zr_printf(t, "Transport:      %s\n", line);
	}
}

/* summary, part 3: one line per size class in use. */
static void zr_summary_classes(struct zr_dev *dev, struct zr_text *t)
{
	struct zr_class_stats cs;
	unsigned int i, n, shown = 0;

	zr_printf(t, "\nSize classes in use.  A compressed page is rounded up to the size of\n"
		  "its class and packed with others of that class into spans of 1 to 8\n"
		  "pages; fill is how much of the spans' room holds objects.\n"
		  "   class  pages/span   spans   objects used / room   fill\n");
	n = zr_class_count(dev->st);
	for (i = 0; i < n; i++) {
		if (zr_get_class_stats(dev->st, i, &cs) < 0 || !cs.spans)
			continue;
		zr_printf(t, "  %6u  %10u  %6llu  %12llu / %-6llu  %3.0f%%\n",
			  cs.size, cs.span_pages,
			  (unsigned long long)cs.spans,
			  (unsigned long long)cs.objs_used,
			  (unsigned long long)cs.objs_total,
			  cs.objs_total ? 100.0 * (double)cs.objs_used /
			  (double)cs.objs_total : 0.0);
		shown++;
	}
	if (!shown)
		zr_printf(t, "  (none: no compressed page is stored)\n");
}

/* ---- writeback (zram's backing_dev, writeback, bd_stat) ----------------- */

/* backing_dev: the path given, or "none" (zram's words). */
static int zr_show_backing_dev(struct zr_dev *dev, char *buf, size_t size)
{
	return snprintf(buf, size, "%s\n", dev->zc.backing ?
			zb_path(dev->zc.backing) : "none");
}

/* The new file for zr_edit_backing(), and the old one it replaced. */
struct zr_backing_swap {
	struct zb_file *new, *old;
};

static int zr_edit_backing(struct zr_config *zc, const void *arg)
{
	struct zr_backing_swap *b = (struct zr_backing_swap *)arg;

	b->old = zc->backing;
	zc->backing = b->new;
	return 0;
}

/*
 * An absolute path, as for -o backing_dev=: opened (zb_open()) and put
 * under a new, empty store, as zram takes a backing device only before
 * it is initialised: -EBUSY while the disk is open or holds data (in RAM
 * or in the file).  The old file, if any, is emptied and let go.  A
 * reset keeps the file (zram's forgets it).
 */
static int zr_store_backing_dev(struct zr_dev *dev, const char *buf)
{
	struct zr_backing_swap b = { NULL, NULL };
	struct zr_parsed p;
	int ret;

	if (zr_parse(ZR_OPT_BACKING_DEV, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	/* Busy first: opening empties the file. */
	zr_lock_shared(dev);
	ret = zr_busy(dev, true);
	zr_unlock(dev);
	if (ret)
		return ret;
	ret = zr_open_backing(buf, dev->backing_size, &b.new);
	if (ret < 0)
		return ret;
	ret = zr_dev_replace(dev, zr_edit_backing, &b, true);
	/* The store that used the old file is gone; the new one's too. */
	zb_close(ret ? b.new : b.old);
	return ret;
}

/*
 * zram's page types, for writeback and recompress: the flags a page must
 * have (zr_writeback(), zr_recompress()).  Only writeback takes
 * incompressible (recompression passes those pages).
 */
static const struct { const char *name; uint32_t want; } zr_types[] = {
	{ "idle", ZR_WB_IDLE }, { "huge", ZR_WB_HUGE },
	{ "huge_idle", ZR_WB_HUGE | ZR_WB_IDLE },
	{ "incompressible", ZR_WB_INCOMPRESSIBLE },
};
#define ZR_NTYPES (sizeof(zr_types) / sizeof(zr_types[0]))

/*
 * zr_wb_parse - zram's writeback words: "idle", "huge", "huge_idle",
 * "incompressible" (the pages no secondary algorithm shrank, marked by
 * recompress), or "type=" one of those, and up to ZR_WB_RANGES
 * "page_index=N" and "page_indexes=LOW-HIGH" (inclusive) that limit it
 * to those pages (a type is then optional), of a disk of @npages.  Sets *@want (flags for
 * zr_writeback()) and @range[0..*@nranges) ([first, last) page numbers;
 * the whole disk when none is given).  Returns 0 or -EINVAL.
 */
#define ZR_WB_RANGES 16
static int zr_wb_parse(const char *text, uint64_t npages, uint32_t *want,
		       uint64_t range[][2], unsigned int *nranges)
{
	char copy[ZR_DEV_ATTR_SIZE + 1], *tok, *save = NULL, *val, *dash;
	bool typed = false;
	struct zr_parsed p, q;
	unsigned int i;

	*want = 0;
	*nranges = 0;
	snprintf(copy, sizeof(copy), "%s", text);
	for (tok = strtok_r(copy, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		val = strchr(tok, '=');
		if (val)
			*val++ = '\0';
		if (!val || !strcmp(tok, "type")) {
			for (i = 0; i < ZR_NTYPES; i++)
				if (!strcmp(val ? val : tok, zr_types[i].name))
					break;
			if (typed || i == ZR_NTYPES)
				return -EINVAL;
			*want = zr_types[i].want;
			typed = true;
			continue;
		}
		if (*nranges == ZR_WB_RANGES)
			return -EINVAL;
		dash = strcmp(tok, "page_indexes") ? NULL : strchr(val, '-');
		if (dash)
			*dash++ = '\0';
		if ((strcmp(tok, "page_index") && !dash) ||
		    zr_parse(ZR_VAL_PAGE_INDEX, val, NULL, &p, NULL, 0) < 0 ||
		    zr_parse(ZR_VAL_PAGE_INDEX, dash ? dash : val, NULL, &q,
			     NULL, 0) < 0 || p.u > q.u || q.u >= npages)
			return -EINVAL;
		range[*nranges][0] = p.u;
		range[(*nranges)++][1] = q.u + 1;
	}
	if (!typed && !*nranges)
		return -EINVAL;
	if (!*nranges) {
		range[0][0] = 0;
		range[0][1] = npages;
		*nranges = 1;
	}
	return 0;
}

/*
 * writeback: move the chosen pages' compressed bytes to the backing file
 * now (zr_writeback()), within writeback_limit when it is enabled.
 * -ENODEV without a backing file, -EIO once the limit is used up (both
 * as zram), -EINVAL for words it does not know, -ENOSPC when the file
 * took none (full).  Holds init_lock shared throughout.
 */
static int zr_store_writeback(struct zr_dev *dev, const char *buf)
{
	uint64_t range[ZR_WB_RANGES][2], budget, left;
	bool counted;
	unsigned int i, n;
	uint32_t want;
	int64_t done = 0;

	if (zr_wb_parse(buf, dev->disksize / ZR_PAGE_SIZE, &want, range, &n))
		return -EINVAL;
	if (!dev->zc.backing)
		return -ENODEV;
	for (i = 0; i < n; i++) {
		budget = zr_wb_limit_take(&dev->wb,
					  range[i][1] - range[i][0], &counted);
		if (!budget)
			return -EIO;
		done = zr_writeback(dev->st, want, range[i][0], range[i][1],
				    budget);
		left = budget - (done > 0 ? (uint64_t)done : 0);
		zr_wb_limit_give(&dev->wb, left, counted);
		if (done < 0)
			return (int)done;
	}
	return 0;
}

/* writeback_limit: pages the writebacks may still write, when enabled. */
static int zr_show_wb_limit(struct zr_dev *dev, char *buf, size_t size)
{
	return snprintf(buf, size, "%llu\n",
			(unsigned long long)atomic_load(&dev->wb.pages));
}

static int zr_store_wb_limit(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_VAL_WB_LIMIT, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	atomic_store(&dev->wb.pages, p.u);
	return 0;
}

/* writeback_limit_enable: 0 or 1. */
static int zr_show_wb_limit_enable(struct zr_dev *dev, char *buf,
				   size_t size)
{
	return snprintf(buf, size, "%d\n", atomic_load(&dev->wb.on));
}

static int zr_store_wb_limit_enable(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_VAL_WB_LIMIT_ENABLE, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	atomic_store(&dev->wb.on, p.u != 0);
	return 0;
}

/* writeback_age: seconds, 0 off; as -o writeback_age=, at once. */
static int zr_show_wb_age(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%llu\n", (unsigned long long)s.wb_age);
}

static int zr_store_wb_age(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_OPT_WRITEBACK_AGE, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	zr_set_writeback_age(dev->st, (unsigned int)p.u);
	return 0;
}

/* ---- recompression (zram's recompress; recompress_age) ------------------ */

/*
 * zr_recomp_prio - the priority of the first secondary algorithm named
 * @name (NULL: of any), or 0 for none.  Needs init_lock.  Cannot fail.
 */
static unsigned int zr_recomp_prio(struct zr_dev *dev, const char *name)
{
	const char *cur;
	unsigned int p;
	int level;

	for (p = 1; p <= ZR_RECOMP_MAX; p++) {
		cur = zr_recomp_algorithm(dev->st, p, &level);
		if (cur && (!name || strcmp(cur, name) == 0))
			return p;
	}
	return 0;
}

/*
 * recompress: zram's keys, each at most once: type=idle|huge|huge_idle
 * (none: every page), threshold=BYTES (0 to 4095: only objects at least
 * that large), max_pages=N (at least 1: stop after trying N pages),
 * algo=NAME or priority=N (a secondary algorithm given; both must then
 * name the same one: the algorithm of priority N must be NAME, which
 * may be at a lower priority too; neither: each in priority order until
 * one shrinks the page).  Recompresses now (zr_recompress()) every page
 * of the disk that qualifies; returns 0 whatever the count, -EINVAL for
 * anything else or without a secondary algorithm, -ENOMEM.  Holds
 * init_lock shared throughout.
 */
static int zr_store_recompress(struct zr_dev *dev, const char *buf)
{
	static const char *const keys[] = {
		"type", "threshold", "max_pages", "algo", "priority",
	};
	enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
	char text[ZR_DEV_ATTR_SIZE + 1], *pos = text, *key, *val;
	const char *algo = NULL;
	unsigned int k, seen = 0, prio = 0, named = 0, i;
	uint64_t threshold = 0, max = UINT64_MAX;
	uint32_t want = 0;
	struct zr_parsed v;
	int64_t done;
	int ret, level;

	snprintf(text, sizeof(text), "%s", buf);
	while ((ret = zr_next_key(&pos, &key, &val)) > 0) {
		for (k = 0; k < NKEYS && strcmp(key, keys[k]) != 0; k++)
			;
		if (k == NKEYS || (seen & (1u << k)))
			return -EINVAL;
		seen |= 1u << k;
		switch (k) {
		case 0:
			/* zr_types but the last, incompressible. */
			for (i = 0; i + 1 < ZR_NTYPES; i++)
				if (strcmp(val, zr_types[i].name) == 0)
					break;
			if (i + 1 == ZR_NTYPES)
				return -EINVAL;
			want = zr_types[i].want;
			break;
		case 1:
		case 2:
			if (zr_parse(k == 1 ? ZR_VAL_THRESHOLD :
				     ZR_VAL_MAX_PAGES, val, NULL, &v, NULL, 0))
				return -EINVAL;
			*(k == 1 ? &threshold : &max) = v.u;
			break;
		case 3:
			named = zr_recomp_prio(dev, val);
			if (!named)
				return -EINVAL;
			algo = val;
			break;
		case 4:
			if (zr_parse(ZR_VAL_RECOMP_PRIORITY, val, NULL, &v,
				     NULL, 0) ||
			    !zr_recomp_algorithm(dev->st, (unsigned int)v.i,
						 &level))
				return -EINVAL;
			prio = (unsigned int)v.i;
			break;
		}
	}
	/* Both: priority= chooses, algo= must be its name (the first
	 * priority of that name is only what algo= alone chooses). */
	if (ret < 0 || (algo && prio &&
			strcmp(zr_recomp_algorithm(dev->st, prio, &level),
			       algo) != 0))
		return -EINVAL;
	if (named && !prio)
		prio = named;
	if (!zr_recomp_prio(dev, NULL))
		return -EINVAL;		/* no secondary algorithm at all */
	done = zr_recompress(dev->st, want, (size_t)threshold, 0,
			     dev->disksize / ZR_PAGE_SIZE, max, prio);
	return done < 0 ? (int)done : 0;
}

/* recompress_age: seconds, 0 off; as -o recompress_age=, at once. */
static int zr_show_rc_age(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%llu\n", (unsigned long long)s.rc_age);
}

static int zr_store_rc_age(struct zr_dev *dev, const char *buf)
{
	struct zr_parsed p;

	if (zr_parse(ZR_OPT_RECOMPRESS_AGE, buf, NULL, &p, NULL, 0) < 0)
		return -EINVAL;
	zr_set_recompress_age(dev->st, (unsigned int)p.u);
	return 0;
}

/* summary, the recompression part. */
static void zr_summary_recomp(struct zr_dev *dev, struct zr_text *t,
			      const struct zr_stats *s)
{
	unsigned int p, first = zr_recomp_prio(dev, NULL);
	const char *name;
	char h1[32];
	int level;

	if (!first) {
		zr_printf(t, "Recompression:  none (-o recomp_algorithm=), by age off too\n");
		return;
	}
	zr_printf(t, "Recompression:  compressed pages in RAM by algorithm:\n"
		  "                  #0 %-6s level %-4d %llu pages (the primary)\n",
		  zr_algorithm(dev->st), zr_level(dev->st),
		  (unsigned long long)s->algo_pages[0]);
	for (p = 1; p <= ZR_RECOMP_MAX; p++) {
		name = zr_recomp_algorithm(dev->st, p, &level);
		if (name)
			zr_printf(t, "                  #%u %-6s level %-4d %llu pages\n",
				  p, name, level,
				  (unsigned long long)s->algo_pages[p]);
	}
	zr_printf(t, "                %llu pages recompressed so far (%llu by age), saving\n"
		  "                %s; %llu pages no secondary algorithm shrank\n"
		  "                (incompressible)\n",
		  (unsigned long long)s->recompressed,
		  (unsigned long long)s->recomp_aged,
		  zr_human(s->recomp_saved, h1, sizeof(h1)),
		  (unsigned long long)s->incompressible);
	if (!s->rc_age)
		zr_printf(t, "                by age off (recompress_age 0)\n");
	else
		zr_printf(t, "                by age: pages unused for %llu s are recompressed\n"
			  "                (with %s first)\n",
			  (unsigned long long)s->rc_age,
			  zr_recomp_algorithm(dev->st, first, &level));
}

/* bd_stat: zram's, in 4 KiB pages: in the file, read, written. */
static int zr_show_bd_stat(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	return snprintf(buf, size, "%8llu %8llu %8llu\n",
			(unsigned long long)s.bd_count,
			(unsigned long long)s.bd_reads,
			(unsigned long long)s.bd_writes);
}

/* summary, the backing file's part. */
static void zr_summary_backing(struct zr_dev *dev, struct zr_text *t,
			       const struct zr_stats *s)
{
	char h1[32], h2[32], h3[32];
	struct zb_stats b;

	if (!dev->zc.backing) {
		zr_printf(t, "Backing file:   none (-o backing_dev=)\n");
		return;
	}
	zb_get_stats(dev->zc.backing, &b);
	zr_printf(t, "Backing file:   %s (%s, %s)\n"
		  "                %llu pages written back, %s compressed, in %s\n"
		  "                of the file (%s at most); %llu written so far\n"
		  "                (%llu by spilling past mem_limit, %llu of\n"
		  "                them ahead of the writes); %llu pages read\n"
		  "                back in %llu reads of the file, and %llu\n"
		  "                windows read ahead (%llu of them used);\n"
		  "                %llu segments written, %llu punched;\n"
		  "                %llu failed segment writes, %llu failed reads\n",
		  zb_path(dev->zc.backing),
		  b.blockdev ? "block device" : "file",
		  b.direct ? "direct I/O" : "page cache",
		  (unsigned long long)s->bd_count,
		  zr_human(s->bd_bytes, h1, sizeof(h1)),
		  zr_human(b.bytes_allocated, h2, sizeof(h2)),
		  zr_human(b.cap_bytes, h3, sizeof(h3)),
		  (unsigned long long)s->bd_writes,
		  (unsigned long long)s->bd_spills,
		  (unsigned long long)s->bd_ahead,
		  (unsigned long long)s->bd_reads,
		  (unsigned long long)b.disk_reads,
		  (unsigned long long)b.ra_reads,
		  (unsigned long long)b.ra_used,
		  (unsigned long long)b.segs_written,
		  (unsigned long long)b.segs_punched,
		  (unsigned long long)b.failed_writes,
		  (unsigned long long)b.failed_reads);
	zr_printf(t, "                %llu segments under half live, %s to win\n"
		  "                back by compaction; %llu pages moved by it\n",
		  (unsigned long long)b.segs_sparse,
		  zr_human(b.bytes_sparse_waste, h1, sizeof(h1)),
		  (unsigned long long)b.objs_relocated);
	/* Why writeback stops with pages still in RAM: no room. */
	zr_printf(t, "                %s; writes refused\n"
		  "                for want of room: %llu\n",
		  b.full ? "the file is full (its file system or its cap)" :
		  "the file has room",
		  (unsigned long long)b.nospace);
	if (!s->wb_age)
		zr_printf(t, "Writeback:      by age off (writeback_age 0)\n");
	else
		zr_printf(t, "Writeback:      pages unused for %llu s go to the file, huge ones\n"
			  "                first: %llu so far; the last sweep left pages up\n"
			  "                to %llu s old in RAM\n",
			  (unsigned long long)s->wb_age,
			  (unsigned long long)s->bd_aged,
			  (unsigned long long)s->wb_oldest);
}

/* summary: the figures of mm_stat and the allocator's, for people. */
static int zr_show_summary(struct zr_dev *dev, char *buf, size_t size)
{
	struct zr_text t = { buf, size, 0 };
	struct zr_stats s;

	zr_get_stats(dev->st, &s);
	zr_summary_figures(dev, &t, &s);
	zr_summary_backing(dev, &t, &s);
	zr_summary_recomp(dev, &t, &s);
	zr_summary_process(dev, &t, &s);
	zr_summary_classes(dev, &t);
	return (int)t.len;
}

/* A row of the table: what the glue sees, and the functions behind it. */
struct zr_attr_row {
	struct zr_dev_attr pub;		/* first: rows are found from it */
	int (*show)(struct zr_dev *dev, char *buf, size_t size);
	int (*store)(struct zr_dev *dev, const char *buf);
};

/* Read-write, write-only, read-only; @rep: store() replaces the store. */
#define ZR_ATTR_RW(name, show, store, rep) \
	{ { name, 0644, ZR_DEV_ATTR_SIZE, true, true, rep }, show, store }
#define ZR_ATTR_WO(name, store, rep) \
	{ { name, 0200, ZR_DEV_ATTR_SIZE, false, true, rep }, NULL, store }
#define ZR_ATTR_RO(name, show, size) \
	{ { name, 0444, size, true, false, false }, show, NULL }

static const struct zr_attr_row zr_attrs[] = {
	ZR_ATTR_RW("disksize", zr_show_disksize, zr_store_disksize, true),
	ZR_ATTR_RW("comp_algorithm", zr_show_comp_algorithm,
		   zr_store_comp_algorithm, true),
	ZR_ATTR_RW("algorithm_params", zr_show_algorithm_params,
		   zr_store_algorithm_params, true),
	ZR_ATTR_RW("mem_limit", zr_show_mem_limit, zr_store_mem_limit, false),
	ZR_ATTR_RW("mem_used_max", zr_show_mem_used_max,
		   zr_store_mem_used_max, false),
	ZR_ATTR_WO("compact", zr_store_compact, false),
	ZR_ATTR_WO("reset", zr_store_reset, true),
	ZR_ATTR_WO("idle", zr_store_idle, false),
	ZR_ATTR_RO("max_comp_streams", zr_show_max_comp_streams,
		   ZR_DEV_ATTR_SIZE),
	ZR_ATTR_RO("mm_stat", zr_show_mm_stat, ZR_DEV_ATTR_SIZE),
	ZR_ATTR_RO("io_stat", zr_show_io_stat, ZR_DEV_ATTR_SIZE),
	ZR_ATTR_RO("debug_stat", zr_show_debug_stat, ZR_DEV_ATTR_SIZE),
	ZR_ATTR_RO("summary", zr_show_summary, ZR_DEV_SUMMARY_SIZE),
	ZR_ATTR_RW("backing_dev", zr_show_backing_dev, zr_store_backing_dev,
		   true),
	ZR_ATTR_WO("writeback", zr_store_writeback, false),
	ZR_ATTR_RW("writeback_limit", zr_show_wb_limit, zr_store_wb_limit,
		   false),
	ZR_ATTR_RW("writeback_limit_enable", zr_show_wb_limit_enable,
		   zr_store_wb_limit_enable, false),
	ZR_ATTR_RO("bd_stat", zr_show_bd_stat, ZR_DEV_ATTR_SIZE),
	ZR_ATTR_RW("writeback_age", zr_show_wb_age, zr_store_wb_age, false),
	ZR_ATTR_RW("recomp_algorithm", zr_show_recomp_algorithm,
		   zr_store_recomp_algorithm, true),
	ZR_ATTR_WO("recompress", zr_store_recompress, false),
	ZR_ATTR_RW("recompress_age", zr_show_rc_age, zr_store_rc_age, false),
};

#define ZR_NATTRS (sizeof(zr_attrs) / sizeof(zr_attrs[0]))

size_t zr_dev_nattrs(void)
{
	return ZR_NATTRS;
}

const struct zr_dev_attr *zr_dev_attr(size_t i)
{
	return i < ZR_NATTRS ? &zr_attrs[i].pub : NULL;
}

const struct zr_dev_attr *zr_dev_attr_find(const char *name)
{
	size_t i;

	for (i = 0; i < ZR_NATTRS; i++)
		if (strcmp(zr_attrs[i].pub.name, name) == 0)
			return &zr_attrs[i].pub;
	return NULL;
}

static const struct zr_attr_row *zr_row(const struct zr_dev_attr *attr)
{
	return (const struct zr_attr_row *)(const void *)attr;
}

int zr_dev_show(struct zr_dev *dev, const struct zr_dev_attr *attr,
		char *buf, size_t size)
{
	const struct zr_attr_row *row = zr_row(attr);
	int ret;

	if (!row->show)
		return -EACCES;
	zr_lock_shared(dev);
	ret = row->show(dev, buf, size);
	zr_unlock(dev);
	if (ret >= 0 && (size_t)ret >= size)
		ret = (int)size - 1;	/* snprintf truncated it */
	return ret;
}

int zr_dev_store(struct zr_dev *dev, const struct zr_dev_attr *attr,
		 const char *buf, size_t len)
{
	const struct zr_attr_row *row = zr_row(attr);
	char text[ZR_DEV_ATTR_SIZE + 1];
	int ret;

	if (!row->store)
		return -EACCES;
	if (len == 0)
		return 0;
	if (len > ZR_DEV_ATTR_SIZE)
		len = ZR_DEV_ATTR_SIZE;
	memcpy(text, buf, len);
	if (text[len - 1] == '\n')
		len--;
	text[len] = '\0';
	/* A replacement takes init_lock itself (zr_dev_replace). */
	if (attr->replaces)
		return row->store(dev, text);
	zr_lock_shared(dev);
	ret = row->store(dev, text);
	zr_unlock(dev);
	return ret;
}

/* ---- open control files ------------------------------------------------------ */

/* A file's text, copied for a reader that reads it in pieces. */
struct zr_copy {
	size_t len;
	char text[];
};

/* Owned by its opener; both fields atomics, copy set once. */
struct zr_dev_file {
	const struct zr_dev_attr *attr;
	/* Length of the text last read whole from offset 0: EOF past it. */
	_Atomic size_t whole;
	/* The copy for a piecewise reader, or NULL. */
	struct zr_copy *_Atomic copy;
};

int zr_dev_file_open(const struct zr_dev_attr *attr, struct zr_dev_file **out)
{
	struct zr_dev_file *f = malloc(sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->attr = attr;
	atomic_init(&f->whole, 0);
	atomic_init(&f->copy, NULL);
	*out = f;
	return 0;
}

const struct zr_dev_attr *zr_dev_file_attr(const struct zr_dev_file *f)
{
	return f->attr;
}

void zr_dev_file_close(struct zr_dev *dev, struct zr_dev_file *f)
{
	struct zr_copy *copy;

	if (!f)
		return;
	copy = atomic_load(&f->copy);
	if (copy) {
		atomic_fetch_sub(&dev->copy_bytes, copy->len);
		free(copy);
	}
	free(f);
}

/*
 * zr_copy_keep - copy the @len bytes of @text for @f, within
 * ZR_DEV_COPY_BUDGET.  Returns the copy @f holds now (another read of
 * the same file may have set one first: that one is returned, ours
 * freed), or NULL when the budget or malloc refuses.
 */
static struct zr_copy *zr_copy_keep(struct zr_dev *dev, struct zr_dev_file *f,
				    const char *text, size_t len)
{
	struct zr_copy *copy, *was = NULL;

	if (atomic_fetch_add(&dev->copy_bytes, len) + len > ZR_DEV_COPY_BUDGET)
		goto out_unbudget;
	copy = malloc(sizeof(*copy) + len);
	if (!copy)
		goto out_unbudget;
	copy->len = len;
	memcpy(copy->text, text, len);
	if (atomic_compare_exchange_strong(&f->copy, &was, copy))
		return copy;
	free(copy);
	atomic_fetch_sub(&dev->copy_bytes, len);
	return was;

out_unbudget:
	atomic_fetch_sub(&dev->copy_bytes, len);
	return NULL;
}

ssize_t zr_dev_file_read(struct zr_dev *dev, struct zr_dev_file *f,
			 char *buf, size_t size, uint64_t off)
{
	struct zr_copy *copy = atomic_load(&f->copy);
	size_t whole, len;
	int ret;

	if (!copy) {
		whole = atomic_load(&f->whole);
		if (off > 0 && whole && off >= whole)
			return 0;
		ret = zr_dev_show(dev, f->attr, buf, f->attr->size);
		if (ret < 0)
			return ret;
		len = (size_t)ret;
		if (off == 0 && size >= len) {
			atomic_store(&f->whole, len);
			return (ssize_t)len;
		}
		copy = zr_copy_keep(dev, f, buf, len);
		if (!copy)
			return -ENOMEM;
	}
	if (off >= copy->len)
		return 0;
	if (size > copy->len - (size_t)off)
		size = copy->len - (size_t)off;
	memcpy(buf, copy->text + off, size);
	return (ssize_t)size;
}
