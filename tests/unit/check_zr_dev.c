/*
 * Unit tests of the device (store/zr_dev.c): the size and number
 * parsers, every -o option the device checks (good values, every kind of
 * bad one, and the one-line message naming it), every control attribute
 * (show formats, good and bad writes with nothing changed, EBUSY while
 * open or holding data), recompression's keys and counts, the I/O
 * wrappers and open control files.  No root, no FUSE.
 *
 * Loop tests run once per backend in zcomp_backends(); the fixture-less
 * helpers give each a fresh device of TD_DISK bytes with no reserve.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compressors/zcomp.h"
#include "store/zr_dev.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define TD_DISK (1u << 20)

/* Values no parser of the device takes, whatever the option. */
static const char *const td_junk[] = {
	"", "banana", "-1", "0x10", "1e99", "1G1", " 1", "1 ", "1.5", "1KK",
	"1K1", "1.5G", "1X", "K", "\t1", "1\n2", "99999999999999999999",
	"999999999999999999999999999999999999999999999999999999999999999999",
};
#define TD_NJUNK (sizeof(td_junk) / sizeof(td_junk[0]))

static const char *td_backend(int i)
{
	return zcomp_backends()[i]->name;
}

/* td_secondary - a denser algorithm than backend @i: zstd, or lz4hc. */
static const char *td_secondary(int i)
{
	return strcmp(td_backend(i), "zstd") ? "zstd" : "lz4hc";
}

/* td_algo_line - comp_algorithm's line with @cur bracketed, into @buf. */
static const char *td_algo_line(const char *cur, char *buf, size_t size)
{
	const struct zcomp_backend *const *be;
	size_t len = 0;

	buf[0] = '\0';
	for (be = zcomp_backends(); *be; be++)
		len += (size_t)snprintf(buf + len, size - len,
					strcmp((*be)->name, cur) ? "%s%s" :
					"%s[%s]", len ? " " : "", (*be)->name);
	snprintf(buf + len, size - len, "\n");
	return buf;
}

/* td_create - a device of @disksize bytes compressing with backend @i. */
static struct zr_dev *td_create(int i, const char *disksize)
{
	struct zr_dev_opts o = { .novalue = -1 };
	struct zr_dev_conf conf;
	struct zr_dev *dev = NULL;
	char msg[ZR_DEV_MSG_SIZE];

	o.val[ZR_OPT_DISKSIZE] = (char *)disksize;
	o.val[ZR_OPT_COMP_ALGORITHM] = (char *)td_backend(i);
	o.val[ZR_OPT_RESERVE] = (char *)"0";
	o.val[ZR_OPT_THREADS] = (char *)"2";
	ck_assert_int_eq(zr_dev_check_opts(&o, &conf, msg, sizeof(msg)), 0);
	ck_assert_int_eq(zr_dev_create(&conf, &dev), 0);
	ck_assert_ptr_nonnull(dev);
	return dev;
}

static const struct zr_dev_attr *td_attr(const char *name)
{
	const struct zr_dev_attr *a = zr_dev_attr_find(name);

	ck_assert_msg(a != NULL, "no attribute %s", name);
	return a;
}

/* td_show - the text of attribute @name; static, overwritten next call. */
static const char *td_show_buf(struct zr_dev *dev, const char *name,
			       char *buf, size_t size)
{
	int ret = zr_dev_show(dev, td_attr(name), buf, size);

	ck_assert_msg(ret >= 0, "show %s: %d", name, ret);
	ck_assert_uint_eq(strlen(buf), (size_t)ret);
	return buf;
}

static char td_buf[ZR_DEV_SUMMARY_SIZE];
#define td_show(dev, name) td_show_buf(dev, name, td_buf, sizeof(td_buf))

static int td_store(struct zr_dev *dev, const char *name, const char *text)
{
	return zr_dev_store(dev, td_attr(name), text, strlen(text));
}

/*
 * td_store_bad - @text to @name is refused with @err and changes nothing
 * that any readable attribute shows (summary aside: its figures move).
 */
static void td_store_bad(struct zr_dev *dev, const char *name,
			 const char *text, int err)
{
	static char before[64][ZR_DEV_ATTR_SIZE];
	const struct zr_dev_attr *a;
	size_t i, n = zr_dev_nattrs(), shown = 0;

	ck_assert_uint_le(n, sizeof(before) / sizeof(before[0]));
	for (i = 0; i < n; i++) {
		a = zr_dev_attr(i);
		if (!a->readable || !strcmp(a->name, "summary"))
			continue;
		td_show_buf(dev, a->name, before[i], sizeof(before[i]));
		shown++;
	}
	/* Every configuration and statistics file, not a chosen few. */
	ck_assert_uint_ge(shown, 16);
	ck_assert_msg(td_store(dev, name, text) == err,
		      "write '%s' to %s: not %d", text, name, err);
	for (i = 0; i < n; i++) {
		a = zr_dev_attr(i);
		if (!a->readable || !strcmp(a->name, "summary"))
			continue;
		ck_assert_msg(!strcmp(td_show(dev, a->name), before[i]),
			      "write '%s' to %s (refused) changed %s: '%s' "
			      "-> '%s'", text, name, a->name, before[i],
			      td_buf);
	}
}

/*
 * td_store_junk - every junk value to @name is refused, changing nothing;
 * an empty write(2) does nothing at all, an empty line is refused.
 */
static void td_store_junk(struct zr_dev *dev, const char *name)
{
	size_t j;

	for (j = 0; j < TD_NJUNK; j++)
		td_store_bad(dev, name, td_junk[j], td_junk[j][0] ? -EINVAL : 0);
	td_store_bad(dev, name, "\n", -EINVAL);
}

/* The number of whitespace-separated fields in @s. */
static int td_fields(const char *s)
{
	int n = 0;

	while (*s) {
		while (*s == ' ' || *s == '\n')
			s++;
		if (!*s)
			break;
		n++;
		while (*s && *s != ' ' && *s != '\n')
			s++;
	}
	return n;
}

/* td_fill - write @pages pages of text-like data from offset 0. */
static void td_fill(struct zr_dev *dev, unsigned pages)
{
	static char page[ZR_PAGE_SIZE];
	unsigned i;

	for (i = 0; i < sizeof(page); i++)
		page[i] = "fusezram device test "[i % 21];
	for (i = 0; i < pages; i++)
		ck_assert_int_eq(zr_dev_write(dev, page, sizeof(page),
					      (uint64_t)i * sizeof(page)),
				 (ssize_t)sizeof(page));
}

/* ---- parsers ------------------------------------------------------------- */

START_TEST(test_parse_size)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "1k", 1024 }, { "1K", 1024 },
		{ "2m", 2 << 20 }, { "2M", 2 << 20 }, { "3G", 3ULL << 30 },
		{ "1t", 1ULL << 40 }, { "007", 7 },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ULL << 40 },
		{ "1p", 1ULL << 50 }, { "1P", 1ULL << 50 },
		{ "1e", 1ULL << 60 }, { "1E", 1ULL << 60 },
		{ "16383P", 16383ULL << 50 }, { "15E", 15ULL << 60 },
		{ "0E", 0 }, { "007P", 7ULL << 50 },
	};
	static const char *const inval[] = {
		"", "x", "-1", "+1", " 1", "1 ", "1KK", "1K1", "1.5G", "1X",
		"K", "1e3", "0x10", "1KiB", "\n",
		"1PB", "1PiB", "1P1", "1EE", "P", "E", "1 P", "+1P",
	};
	static const char *const range[] = {
		"18446744073709551616", "16777216T", "17179869184G",
		"99999999999999999999999",
		"16384P", "16E", "99999999999E", "18446744073709551616E",
	};
	uint64_t v = 42;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_int_eq(zr_dev_parse_size(good[i].s, &v), 0);
		ck_assert_uint_eq(v, good[i].v);
	}
	for (i = 0; i < sizeof(inval) / sizeof(inval[0]); i++) {
		v = 42;
		ck_assert_msg(zr_dev_parse_size(inval[i], &v) == -EINVAL,
			      "'%s' is a size", inval[i]);
		ck_assert_uint_eq(v, 42);
	}
	for (i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		ck_assert_int_eq(zr_dev_parse_size(range[i], &v), -ERANGE);
		ck_assert_uint_eq(v, 42);
	}
}
END_TEST

START_TEST(test_parse_numbers)
{
	static const char *const bad_u64[] = {
		"", "-1", "+1", " 1", "1 ", "1K", "1.5", "0x10",
		"18446744073709551616",
	};
	static const char *const bad_int[] = {
		"", "-", "+", " 1", "1 ", "1K", "1.5", "0x10", "2147483648",
		"-2147483649", "--1",
	};
	uint64_t u;
	size_t i;
	int v;

	ck_assert_int_eq(zr_dev_parse_u64("0", &u), 0);
	ck_assert_uint_eq(u, 0);
	ck_assert_int_eq(zr_dev_parse_u64("18446744073709551615", &u), 0);
	ck_assert_uint_eq(u, UINT64_MAX);
	for (i = 0; i < sizeof(bad_u64) / sizeof(bad_u64[0]); i++)
		ck_assert_msg(zr_dev_parse_u64(bad_u64[i], &u) == -EINVAL,
			      "'%s' is a u64", bad_u64[i]);
	ck_assert_int_eq(zr_dev_parse_int("-5", &v), 0);
	ck_assert_int_eq(v, -5);
	ck_assert_int_eq(zr_dev_parse_int("+7", &v), 0);
	ck_assert_int_eq(v, 7);
	ck_assert_int_eq(zr_dev_parse_int("2147483647", &v), 0);
	ck_assert_int_eq(v, 2147483647);
	ck_assert_int_eq(zr_dev_parse_int("-2147483648", &v), 0);
	for (i = 0; i < sizeof(bad_int) / sizeof(bad_int[0]); i++)
		ck_assert_msg(zr_dev_parse_int(bad_int[i], &v) == -EINVAL,
			      "'%s' is an int", bad_int[i]);
}
END_TEST

/* ---- options --------------------------------------------------------------- */

static int td_check(int opt, const char *val, struct zr_dev_conf *conf,
		    char *msg)
{
	struct zr_dev_opts o = { .novalue = -1 };

	o.val[opt] = (char *)val;
	msg[0] = '\0';
	return zr_dev_check_opts(&o, conf, msg, ZR_DEV_MSG_SIZE);
}

/*
 * memparse()'s P and E (parsed in test_parse_size) in the options and
 * the files: disksize keeps its own maximum (16T less a page), mem_limit and
 * backing_size theirs (the largest off_t), and each refusal names the
 * value as typed.
 */
START_TEST(test_parse_size_pe)
{
	static const struct { int opt; const char *val, *msg; } t[] = {
		{ ZR_OPT_DISKSIZE, "1P", "invalid disksize '1P': too large" },
		{ ZR_OPT_DISKSIZE, "1e", "invalid disksize '1e': too large" },
		{ ZR_OPT_MEM_LIMIT, "8E", "invalid mem_limit '8E': too large" },
		{ ZR_OPT_MEM_LIMIT, "16E", "invalid mem_limit '16E': too large" },
		{ ZR_OPT_MEM_LIMIT, "8192P", "invalid mem_limit '8192P': too large" },
		{ ZR_OPT_BACKING_SIZE, "16384P", "invalid backing_size '16384P': too large" },
		{ ZR_OPT_RESERVE, "1P", "invalid reserve '1P': expected a size from 0 to 16M, such as 4M" },
		{ ZR_OPT_MEM_LIMIT, "1PB", "invalid mem_limit '1PB': expected a size such as 512M or 4G, or 0 for no limit" },
	};
	struct zr_dev_conf c;
	struct zr_dev *dev;
	char msg[ZR_DEV_MSG_SIZE];
	size_t i;

	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "1P", &c, msg), 0);
	ck_assert_uint_eq(c.zc.mem_limit, 1ULL << 50);
	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "7e", &c, msg), 0);
	ck_assert_uint_eq(c.zc.mem_limit, 7ULL << 60);
	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "8191P", &c, msg), 0);
	ck_assert_uint_eq(c.zc.mem_limit, 8191ULL << 50);
	ck_assert_int_eq(td_check(ZR_OPT_BACKING_SIZE, "2E", &c, msg), 0);
	ck_assert_uint_eq(c.backing_size, 2ULL << 60);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_int_eq(td_check(t[i].opt, t[i].val, &c, msg), -EINVAL);
		ck_assert_str_eq(msg, t[i].msg);
	}
	/* The files read a size as the options do. */
	dev = td_create(0, "1M");
	ck_assert_int_eq(td_store(dev, "mem_limit", "1p\n"), 0);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "1125899906842624\n");
	td_store_bad(dev, "mem_limit", "8E", -EINVAL);
	td_store_bad(dev, "disksize", "1P", -EINVAL);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "1125899906842624\n");
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_opts_defaults)
{
	struct zr_dev_opts o = { .novalue = -1 };
	struct zr_dev_conf c;
	char msg[ZR_DEV_MSG_SIZE];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(c.zc.disksize, ZR_DEV_DISKSIZE_DEFAULT);
	ck_assert_str_eq(c.zc.algorithm, "lz4");
	ck_assert_int_eq(c.zc.level, ZCOMP_LEVEL_DEFAULT);
	ck_assert_uint_eq(c.zc.mem_limit, 0);
	ck_assert_uint_eq(c.zc.reserve, ZR_RESERVE_DEFAULT);
	ck_assert_uint_eq(c.threads, cpus < 1 ? 1 : cpus > 1024 ? 1024 :
			  (unsigned)cpus);
	ck_assert_uint_eq(c.zc.workers, c.threads - 1);
	ck_assert_uint_eq(c.max_read, ZR_DEV_READ_DEFAULT);
	ck_assert_uint_eq(c.max_threads, ZR_DEV_WORKERS_DEFAULT);
	for (int p = 0; p < ZR_RECOMP_MAX; p++)
		ck_assert_ptr_null(c.zc.recomp[p].name);
	ck_assert_uint_eq(c.zc.recompress_age, 0);
	ck_assert(c.io_uring);
	ck_assert_uint_eq(c.io_uring_depth, ZR_DEV_URING_DEPTH_DEFAULT);
	ck_assert_str_eq(zr_dev_opt_name(ZR_OPT_IO_URING), "io_uring");
	ck_assert_str_eq(zr_dev_opt_name(ZR_OPT_IO_URING_DEPTH),
			 "io_uring_depth");
	ck_assert_str_eq(zr_dev_opt_name(ZR_OPT_RECOMP_ALGORITHM),
			 "recomp_algorithm");
	ck_assert_str_eq(zr_dev_opt_name(ZR_OPT_RECOMPRESS_AGE),
			 "recompress_age");
	ck_assert_str_eq(zr_dev_opt_name(ZR_OPT_CONGESTION_THRESHOLD),
			 "congestion_threshold");
	ck_assert_ptr_null(zr_dev_opt_name(ZR_NOPTS));
	ck_assert_ptr_null(zr_dev_opt_name(-1));
}
END_TEST

START_TEST(test_opts_good)
{
	struct zr_dev_opts o = { .novalue = -1 };
	struct zr_dev_conf c;
	char msg[ZR_DEV_MSG_SIZE];

	o.val[ZR_OPT_DISKSIZE] = (char *)"5000";
	o.val[ZR_OPT_COMP_ALGORITHM] = (char *)"zstd";
	o.val[ZR_OPT_COMP_LEVEL] = (char *)"-2";
	o.val[ZR_OPT_MEM_LIMIT] = (char *)"1";
	o.val[ZR_OPT_THREADS] = (char *)"+3";
	o.val[ZR_OPT_RESERVE] = (char *)"16M";
	o.val[ZR_OPT_MAX_THREADS] = (char *)"1024";
	o.val[ZR_OPT_MAX_READ] = (char *)"4096";
	o.val[ZR_OPT_MAX_WRITE] = (char *)"1048576";
	o.val[ZR_OPT_MAX_BACKGROUND] = (char *)"16";
	o.val[ZR_OPT_CONGESTION_THRESHOLD] = (char *)"16";
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(c.zc.disksize, 8192);		/* rounded up */
	ck_assert_str_eq(c.zc.algorithm, "zstd");
	ck_assert_int_eq(c.zc.level, -2);
	ck_assert_uint_eq(c.zc.mem_limit, 4096);
	ck_assert_uint_eq(c.threads, 3);
	ck_assert_uint_eq(c.zc.workers, 2);
	ck_assert_uint_eq(c.zc.reserve, 16 << 20);
	ck_assert_uint_eq(c.max_threads, 1024);
	ck_assert_uint_eq(c.max_read, 4096);
	/* The largest disk the store numbers (2^32 - 1 pages) is taken;
	 * a mem_limit of the largest off_t, rounded down to pages, too. */
	ck_assert_int_eq(td_check(ZR_OPT_DISKSIZE, "17592186040320", &c, msg),
			 0);
	ck_assert_uint_eq(c.zc.disksize, (uint64_t)UINT32_MAX * 4096);
	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "8388607T", &c, msg), 0);
	ck_assert_uint_eq(c.zc.mem_limit, 8388607ULL << 40);
	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "0", &c, msg), 0);
	ck_assert_int_eq(td_check(ZR_OPT_RESERVE, "0", &c, msg), 0);
	ck_assert_uint_eq(c.zc.reserve, 0);
	ck_assert_int_eq(td_check(ZR_OPT_CONGESTION_THRESHOLD, "64", &c, msg),
			 0);
	ck_assert_int_eq(td_check(ZR_OPT_IO_URING, "off", &c, msg), 0);
	ck_assert(!c.io_uring);
	ck_assert_int_eq(td_check(ZR_OPT_IO_URING, "on", &c, msg), 0);
	ck_assert(c.io_uring);
	ck_assert_int_eq(td_check(ZR_OPT_IO_URING_DEPTH, "1", &c, msg), 0);
	ck_assert_uint_eq(c.io_uring_depth, 1);
	ck_assert_int_eq(td_check(ZR_OPT_IO_URING_DEPTH, "128", &c, msg), 0);
	ck_assert_uint_eq(c.io_uring_depth, 128);
}
END_TEST

/* Exactly the messages of fusezram before the device layer. */
START_TEST(test_opts_messages)
{
	static const struct { int opt; const char *val, *msg; } t[] = {
		{ ZR_OPT_DISKSIZE, "banana", "invalid disksize 'banana': expected a size such as 512M or 4G" },
		{ ZR_OPT_DISKSIZE, "0", "invalid disksize '0': must be greater than 0" },
		{ ZR_OPT_DISKSIZE, "99999999999T", "invalid disksize '99999999999T': too large" },
		{ ZR_OPT_DISKSIZE, "8388608T", "invalid disksize '8388608T': too large" },
		/* Pages are numbered in 32 bits: at most 16T less a page. */
		{ ZR_OPT_DISKSIZE, "16T", "invalid disksize '16T': too large" },
		{ ZR_OPT_COMP_ALGORITHM, "nosuch", "invalid comp_algorithm 'nosuch': expected one of lz4, lz4hc, zstd" },
		{ ZR_OPT_COMP_LEVEL, "65538", "invalid comp_level '65538': expected an integer from 1 to 65537 for lz4" },
		{ ZR_OPT_COMP_LEVEL, "x", "invalid comp_level 'x': expected an integer from 1 to 65537 for lz4" },
		{ ZR_OPT_MEM_LIMIT, "x", "invalid mem_limit 'x': expected a size such as 512M or 4G, or 0 for no limit" },
		{ ZR_OPT_MEM_LIMIT, "5Z", "invalid mem_limit '5Z': expected a size such as 512M or 4G, or 0 for no limit" },
		{ ZR_OPT_MEM_LIMIT, "99999999999999999999", "invalid mem_limit '99999999999999999999': too large" },
		{ ZR_OPT_THREADS, "banana", "invalid threads 'banana': expected an integer from 1 to 1024" },
		{ ZR_OPT_THREADS, "0", "invalid threads '0': expected an integer from 1 to 1024" },
		{ ZR_OPT_THREADS, "-1", "invalid threads '-1': expected an integer from 1 to 1024" },
		{ ZR_OPT_RESERVE, "17M", "invalid reserve '17M': expected a size from 0 to 16M, such as 4M" },
		{ ZR_OPT_RESERVE, "lots", "invalid reserve 'lots': expected a size from 0 to 16M, such as 4M" },
		{ ZR_OPT_MAX_THREADS, "1025", "invalid max_threads '1025': expected an integer from 1 to 1024" },
		{ ZR_OPT_MAX_READ, "64K", "invalid max_read '64K': expected a number of bytes from 4096 to 1048576" },
		{ ZR_OPT_MAX_WRITE, "4095", "invalid max_write '4095': expected a number of bytes from 4096 to 1048576" },
		{ ZR_OPT_MAX_BACKGROUND, "0", "invalid max_background '0': expected an integer from 1 to 65535" },
		{ ZR_OPT_CONGESTION_THRESHOLD, "65536", "invalid congestion_threshold '65536': expected an integer from 1 to 65535" },
		{ ZR_OPT_CONGESTION_THRESHOLD, "65", "invalid congestion_threshold '65': expected an integer from 1 to 64 (max_background)" },
		{ ZR_OPT_RECOMP_ALGORITHM, "nosuch", "invalid recomp_algorithm 'nosuch': expected one of lz4, lz4hc, zstd, then optionally :LEVEL" },
		{ ZR_OPT_RECOMP_ALGORITHM, ":3", "invalid recomp_algorithm ':3': expected one of lz4, lz4hc, zstd, then optionally :LEVEL" },
		{ ZR_OPT_RECOMP_ALGORITHM, "zstd 3", "invalid recomp_algorithm 'zstd 3': expected one of lz4, lz4hc, zstd, then optionally :LEVEL" },
		{ ZR_OPT_RECOMP_ALGORITHM, "zstd:99", "invalid recomp_algorithm 'zstd:99': expected a level from -7 to 22 for zstd" },
		{ ZR_OPT_RECOMP_ALGORITHM, "zstd:", "invalid recomp_algorithm 'zstd:': expected a level from -7 to 22 for zstd" },
		{ ZR_OPT_RECOMP_ALGORITHM, "zstd:3:4", "invalid recomp_algorithm 'zstd:3:4': expected a level from -7 to 22 for zstd" },
		{ ZR_OPT_RECOMP_ALGORITHM, "lz4hc:2", "invalid recomp_algorithm 'lz4hc:2': expected a level from 3 to 12 for lz4hc" },
		{ ZR_OPT_RECOMP_ALGORITHM, "lz4:x", "invalid recomp_algorithm 'lz4:x': expected a level from 1 to 65537 for lz4" },
		{ ZR_OPT_RECOMPRESS_AGE, "65536", "invalid recompress_age '65536': expected a number of seconds from 0 to 65535" },
		{ ZR_OPT_RECOMPRESS_AGE, "5m", "invalid recompress_age '5m': expected a number of seconds from 0 to 65535" },
		{ ZR_OPT_IO_URING, "maybe", "invalid io_uring 'maybe': expected on or off" },
		{ ZR_OPT_IO_URING, "", "invalid io_uring '': expected on or off" },
		{ ZR_OPT_IO_URING, "ON", "invalid io_uring 'ON': expected on or off" },
		{ ZR_OPT_IO_URING_DEPTH, "0", "invalid io_uring_depth '0': expected an integer from 1 to 128" },
		{ ZR_OPT_IO_URING_DEPTH, "129", "invalid io_uring_depth '129': expected an integer from 1 to 128" },
		{ ZR_OPT_IO_URING_DEPTH, "-1", "invalid io_uring_depth '-1': expected an integer from 1 to 128" },
	};
	struct zr_dev_opts o = { .novalue = ZR_OPT_THREADS };
	struct zr_dev_conf c;
	char msg[ZR_DEV_MSG_SIZE];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_int_eq(td_check(t[i].opt, t[i].val, &c, msg), -EINVAL);
		ck_assert_str_eq(msg, t[i].msg);
	}
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), -EINVAL);
	ck_assert_str_eq(msg, "option 'threads' needs a value, as in -o threads=...");
	/* The level's range is the chosen compressor's. */
	o.novalue = -1;
	o.val[ZR_OPT_COMP_ALGORITHM] = (char *)"zstd";
	o.val[ZR_OPT_COMP_LEVEL] = (char *)"999";
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "invalid comp_level '999'"));
	ck_assert_ptr_nonnull(strstr(msg, "for zstd"));
	/* A threshold past a max_background given, in either order. */
	memset(o.val, 0, sizeof(o.val));
	o.val[ZR_OPT_MAX_BACKGROUND] = (char *)"16";
	o.val[ZR_OPT_CONGESTION_THRESHOLD] = (char *)"17";
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), -EINVAL);
	ck_assert_str_eq(msg, "invalid congestion_threshold '17': expected an integer from 1 to 16 (max_background)");
	/* A message is cut to the caller's buffer, never overrun. */
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, 8), -EINVAL);
	ck_assert_str_eq(msg, "invalid");
}
END_TEST

/* Every option refuses every junk value, naming itself and the value. */
START_TEST(test_opts_junk)
{
	struct zr_dev_conf c;
	char msg[ZR_DEV_MSG_SIZE], want[ZR_DEV_MSG_SIZE];
	size_t j;
	int opt;

	for (opt = 0; opt < ZR_NOPTS; opt++) {
		for (j = 0; j < TD_NJUNK; j++) {
			ck_assert_msg(td_check(opt, td_junk[j], &c, msg) ==
				      -EINVAL, "%s='%s' taken",
				      zr_dev_opt_name(opt), td_junk[j]);
			snprintf(want, sizeof(want), "invalid %s '%s': ",
				 zr_dev_opt_name(opt), td_junk[j]);
			ck_assert_msg(strncmp(msg, want, strlen(want)) == 0,
				      "message '%s'", msg);
			ck_assert_ptr_null(strchr(msg + strlen(want), '\n'));
		}
		/* A sign is an integer's, never a size's or a count's. */
		if (opt != ZR_OPT_THREADS && opt != ZR_OPT_COMP_LEVEL &&
		    opt != ZR_OPT_COMP_ALGORITHM)
			ck_assert_int_eq(td_check(opt, "+1", &c, msg), -EINVAL);
	}
	/* Suffixes: sizes take one, counts and integers none. */
	ck_assert_int_eq(td_check(ZR_OPT_MEM_LIMIT, "1K", &c, msg), 0);
	ck_assert_int_eq(td_check(ZR_OPT_MAX_WRITE, "64K", &c, msg), -EINVAL);
	ck_assert_int_eq(td_check(ZR_OPT_THREADS, "1K", &c, msg), -EINVAL);
	ck_assert_int_eq(td_check(ZR_OPT_MAX_THREADS, "4294967297", &c, msg),
			 -EINVAL);
}
END_TEST

START_TEST(test_opts_help)
{
	char buf[4096];

	zr_dev_opts_help(buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "    -o disksize=SIZE"));
	ck_assert_ptr_nonnull(strstr(buf, "    -o recomp_algorithm=ALG[:N]\n"));
	/* Whole: the last line is there, and fusezram.c's buffer holds it. */
	ck_assert_ptr_nonnull(strstr(buf, "(default with recomp_algorithm: 300)\n"));
	ck_assert_uint_lt(strlen(buf), sizeof(buf) - 1);
	ck_assert_ptr_nonnull(strstr(buf, "                             zstd   "));
	ck_assert_ptr_nonnull(strstr(buf, "0 to 16M (default: 4M)\n"));
	zr_dev_opts_help(buf, 10);
	ck_assert_uint_eq(strlen(buf), 9);
}
END_TEST

/* ---- attributes ------------------------------------------------------------ */

START_TEST(test_attr_table)
{
	static const struct { const char *name; mode_t mode; } t[] = {
		{ "disksize", 0644 }, { "comp_algorithm", 0644 },
		{ "algorithm_params", 0644 }, { "mem_limit", 0644 },
		{ "mem_used_max", 0644 }, { "compact", 0200 },
		{ "reset", 0200 }, { "idle", 0200 },
		{ "max_comp_streams", 0444 }, { "mm_stat", 0444 },
		{ "io_stat", 0444 }, { "debug_stat", 0444 },
		{ "summary", 0444 }, { "backing_dev", 0644 },
		{ "writeback", 0200 }, { "writeback_limit", 0644 },
		{ "writeback_limit_enable", 0644 }, { "bd_stat", 0444 },
		{ "writeback_age", 0644 }, { "recomp_algorithm", 0644 },
		{ "recompress", 0200 }, { "recompress_age", 0644 },
	};
	const struct zr_dev_attr *a;
	size_t i;

	ck_assert_uint_eq(zr_dev_nattrs(), sizeof(t) / sizeof(t[0]));
	ck_assert_ptr_null(zr_dev_attr(zr_dev_nattrs()));
	ck_assert_ptr_null(zr_dev_attr_find("nosuch"));
	for (i = 0; i < zr_dev_nattrs(); i++) {
		a = zr_dev_attr(i);
		ck_assert_str_eq(a->name, t[i].name);
		ck_assert_uint_eq(a->mode, t[i].mode);
		ck_assert(a->readable == !!(t[i].mode & 0400));
		ck_assert(a->writable == !!(t[i].mode & 0200));
		ck_assert_uint_eq(a->size, strcmp(a->name, "summary") ?
				  ZR_DEV_ATTR_SIZE : ZR_DEV_SUMMARY_SIZE);
		ck_assert_ptr_eq(zr_dev_attr_find(a->name), a);
	}
	ck_assert(td_attr("reset")->replaces && td_attr("disksize")->replaces);
	ck_assert(td_attr("recomp_algorithm")->replaces);
	ck_assert(!td_attr("mem_limit")->replaces);
	ck_assert(!td_attr("recompress")->replaces);
	ck_assert(!td_attr("recompress_age")->replaces);
}
END_TEST

/*
 * Read-only refuse writes, write-only refuse reads: -EACCES.  An empty
 * write to a writable one succeeds and changes nothing any file shows,
 * with pages stored (so that a reset, compaction, idle marking or
 * recompression would show).
 */
START_TEST(test_attr_access)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char buf[64];
	size_t i;

	td_fill(dev, 16);
	for (i = 0; i < zr_dev_nattrs(); i++) {
		const struct zr_dev_attr *a = zr_dev_attr(i);

		if (!a->readable)
			ck_assert_int_eq(zr_dev_show(dev, a, buf, sizeof(buf)),
					 -EACCES);
		if (!a->writable)
			ck_assert_int_eq(zr_dev_store(dev, a, "1", 1), -EACCES);
		if (a->writable)
			td_store_bad(dev, a->name, "", 0);
	}
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_disksize)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char big[ZR_DEV_ATTR_SIZE + 100];

	ck_assert_str_eq(td_show(dev, "disksize"), "1048576\n");
	ck_assert_uint_eq(zr_dev_disksize(dev), 1 << 20);
	ck_assert_int_eq(td_store(dev, "disksize", "2M\n"), 0);
	ck_assert_str_eq(td_show(dev, "disksize"), "2097152\n");
	ck_assert_int_eq(td_store(dev, "disksize", "5000"), 0);
	ck_assert_str_eq(td_show(dev, "disksize"), "8192\n");
	ck_assert_int_eq(td_store(dev, "disksize", "1k"), 0);
	ck_assert_str_eq(td_show(dev, "disksize"), "4096\n");
	td_store_junk(dev, "disksize");
	td_store_bad(dev, "disksize", "0", -EINVAL);
	td_store_bad(dev, "disksize", "+4096", -EINVAL);
	td_store_bad(dev, "disksize", "8388608T", -EINVAL);
	td_store_bad(dev, "disksize", "1M\n\n", -EINVAL);
	/* Past a page the rest is dropped, as kernfs: 4096 digits, too large. */
	memset(big, '1', sizeof(big));
	ck_assert_int_eq(zr_dev_store(dev, td_attr("disksize"), big,
				      sizeof(big)), -EINVAL);
	ck_assert_str_eq(td_show(dev, "disksize"), "4096\n");
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_comp_algorithm)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char want[64];
	int n = tu_nbackends(), k;

	for (k = 0; k < n; k++) {
		ck_assert_int_eq(td_store(dev, "comp_algorithm", td_backend(k)),
				 0);
		ck_assert_ptr_nonnull(strstr(td_show(dev, "comp_algorithm"),
					     (snprintf(want, sizeof(want), "[%s]",
						       td_backend(k)), want)));
		ck_assert_uint_eq(td_fields(td_buf), n);
		snprintf(want, sizeof(want), "algo=%s level=%d\n",
			 td_backend(k), zcomp_backends()[k]->level_default);
		ck_assert_str_eq(td_show(dev, "algorithm_params"), want);
	}
	ck_assert_int_eq(td_store(dev, "comp_algorithm", td_backend(_i)), 0);
	td_store_bad(dev, "comp_algorithm", "", 0);	/* empty: nothing */
	td_store_bad(dev, "comp_algorithm", "nosuch", -EINVAL);
	td_store_bad(dev, "comp_algorithm", " lz4", -EINVAL);
	td_store_bad(dev, "comp_algorithm", "lz4 ", -EINVAL);
	td_store_bad(dev, "comp_algorithm", "LZ4", -EINVAL);
	td_store_bad(dev, "comp_algorithm", "lz4\n\n", -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_algorithm_params)
{
	const struct zcomp_backend *be = zcomp_backends()[_i];
	struct zr_dev *dev = td_create(_i, "1M");
	char text[128], want[128];

	snprintf(text, sizeof(text), "level=%d\n", be->level_max);
	ck_assert_int_eq(td_store(dev, "algorithm_params", text), 0);
	snprintf(want, sizeof(want), "algo=%s level=%d\n", be->name,
		 be->level_max);
	ck_assert_str_eq(td_show(dev, "algorithm_params"), want);
	snprintf(text, sizeof(text), "algo=%s  priority=0\tlevel=%d",
		 be->name, be->level_min);
	ck_assert_int_eq(td_store(dev, "algorithm_params", text), 0);
	snprintf(want, sizeof(want), "algo=%s level=%d\n", be->name,
		 be->level_min);
	ck_assert_str_eq(td_show(dev, "algorithm_params"), want);

	td_store_bad(dev, "algorithm_params", "level=", -EINVAL);
	td_store_bad(dev, "algorithm_params", "level", -EINVAL);
	td_store_bad(dev, "algorithm_params", "level=abc", -EINVAL);
	td_store_bad(dev, "algorithm_params", "level=1K", -EINVAL);
	td_store_bad(dev, "algorithm_params", "level=99999999", -EINVAL);
	td_store_bad(dev, "algorithm_params", "level=-99999999", -EINVAL);
	td_store_bad(dev, "algorithm_params", "algo=lz4", -EINVAL);
	td_store_bad(dev, "algorithm_params", "priority=0", -EINVAL);
	td_store_bad(dev, "algorithm_params", "priority=1 level=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "dict=/x level=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "foo=1 level=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "banana", -EINVAL);
	td_store_bad(dev, "algorithm_params", " ", -EINVAL);
	snprintf(text, sizeof(text), "algo=%s level=%d",
		 strcmp(be->name, "zstd") ? "zstd" : "lz4", be->level_default);
	td_store_bad(dev, "algorithm_params", text, -EINVAL);
	snprintf(text, sizeof(text), "level=%d", be->level_max + 1);
	td_store_bad(dev, "algorithm_params", text, -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_mem_limit)
{
	struct zr_dev *dev = td_create(_i, "1M");
	struct zr_stats s;
	uint64_t size;

	ck_assert_str_eq(td_show(dev, "mem_limit"), "0\n");
	ck_assert_int_eq(td_store(dev, "mem_limit", "1M\n"), 0);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "1048576\n");
	zr_dev_get_stats(dev, &s, &size);
	ck_assert_uint_eq(s.mem_limit, 1 << 20);
	ck_assert_uint_eq(size, 1 << 20);
	ck_assert_int_eq(td_store(dev, "mem_limit", "5000"), 0);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "8192\n");
	td_store_junk(dev, "mem_limit");
	td_store_bad(dev, "mem_limit", "8388608T", -EINVAL);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "8192\n");
	ck_assert_int_eq(td_store(dev, "mem_limit", "0"), 0);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "0\n");
	/* A limit survives a replacement of the store. */
	ck_assert_int_eq(td_store(dev, "mem_limit", "64K"), 0);
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	ck_assert_str_eq(td_show(dev, "mem_limit"), "65536\n");
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_mem_used_max)
{
	struct zr_dev *dev = td_create(_i, "1M");
	unsigned long long peak, peak2;

	td_fill(dev, 64);
	ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu\n", &peak),
			 1);
	ck_assert_uint_gt(peak, 0);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE |
					  FALLOC_FL_KEEP_SIZE, 0, TD_DISK,
					  &(bool){ false }), 0);
	td_store_bad(dev, "mem_used_max", "1", -EINVAL);
	td_store_bad(dev, "mem_used_max", " 0", -EINVAL);
	td_store_bad(dev, "mem_used_max", "banana", -EINVAL);
	ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu",
				&peak2), 1);
	ck_assert_uint_eq(peak2, peak);
	ck_assert_int_eq(td_store(dev, "mem_used_max", "0\n"), 0);
	ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu",
				&peak2), 1);
	ck_assert_uint_le(peak2, peak);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * zram's mem_used_max_store(): kstrtoul(buf, 10) must read 0, so "00",
 * "+0" and "0\n" reset the peak as "0" does; any other number, a '-', a
 * blank or a second value do not, and leave the peak as it was.
 */
START_TEST(test_attr_mem_used_max_zero)
{
	static const char *const zero[] = { "0", "00", "+0", "0\n", "+000\n" };
	static const char *const bad[] = {
		"1", "01", "+1", "-0", "++0", "+", "0 ", " 0", "0\n\n", "0x0",
		"0 0", "18446744073709551616", "0K",
	};
	struct zr_dev *dev = td_create(_i, "1M");
	unsigned long long peak, now;
	size_t j;

	for (j = 0; j < sizeof(zero) / sizeof(zero[0]); j++) {
		td_fill(dev, 64);
		ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu",
					&peak), 1);
		ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE |
						  FALLOC_FL_KEEP_SIZE, 0,
						  TD_DISK, &(bool){ false }),
				 0);
		ck_assert_msg(td_store(dev, "mem_used_max", zero[j]) == 0,
			      "'%s' refused", zero[j]);
		ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu",
					&now), 1);
		ck_assert_msg(now < peak, "'%s': peak %llu, then %llu",
			      zero[j], peak, now);
	}
	td_fill(dev, 64);
	ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu", &peak),
			 1);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE |
					  FALLOC_FL_KEEP_SIZE, 0, TD_DISK,
					  &(bool){ false }), 0);
	for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
		td_store_bad(dev, "mem_used_max", bad[j], -EINVAL);
	td_store_junk(dev, "mem_used_max");
	ck_assert_int_eq(sscanf(td_show(dev, "mem_used_max"), "%llu", &now),
			 1);
	ck_assert_uint_eq(now, peak);
	zr_dev_destroy(dev);
}
END_TEST

START_TEST(test_attr_compact_idle)
{
	struct zr_dev *dev = td_create(_i, "1M");

	td_fill(dev, 32);
	ck_assert_int_eq(td_store(dev, "compact", "1"), 0);
	ck_assert_int_eq(td_store(dev, "compact", "anything at all"), 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
			      "  idle:         0 pages marked idle"));
	ck_assert_int_eq(td_store(dev, "idle", "all\n"), 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
			      "  idle:         32 pages marked idle"));
	ck_assert_int_eq(td_store(dev, "idle", "1"), 0);
	ck_assert_int_eq(td_store(dev, "idle", "65535"), 0);
	td_store_junk(dev, "idle");
	td_store_bad(dev, "idle", "65536", -EINVAL);
	td_store_bad(dev, "idle", "ALL", -EINVAL);
	td_store_bad(dev, "idle", "all ", -EINVAL);
	td_store_bad(dev, "idle", "1m", -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * idle 0: zram's idle_store() takes any age kstrtoull() reads, 0 too,
 * and marks the pages accessed before now less that age: with 0, every
 * stored page, as "all".  Pages just written, which an age of 1 s may
 * not reach yet, are marked; a page read since is marked again.
 */
START_TEST(test_attr_idle_zero)
{
	static const char *const zero[] = { "0", "0\n", "00", "+0" };
	struct zr_dev *dev = td_create(_i, "1M");
	char page[ZR_PAGE_SIZE];
	size_t j;

	for (j = 0; j < sizeof(zero) / sizeof(zero[0]); j++) {
		td_fill(dev, 32);
		ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				      "  idle:         0 pages marked idle"));
		ck_assert_msg(td_store(dev, "idle", zero[j]) == 0,
			      "'%s' refused", zero[j]);
		ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				      "  idle:         32 pages marked idle"));
		ck_assert_int_eq(zr_dev_read(dev, page, sizeof(page), 0),
				 (ssize_t)sizeof(page));
		ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				      "  idle:         31 pages marked idle"));
		ck_assert_int_eq(td_store(dev, "idle", zero[j]), 0);
		ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				      "  idle:         32 pages marked idle"));
		ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	}
	/* The range is as it was above 0. */
	td_store_bad(dev, "idle", "65536", -EINVAL);
	td_store_bad(dev, "idle", "-0", -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

/* reset: empties the disk, keeping its settings; busy only while open. */
START_TEST(test_attr_reset)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char before[ZR_DEV_ATTR_SIZE], page[ZR_PAGE_SIZE];
	size_t j;

	ck_assert_int_eq(td_store(dev, "mem_limit", "1M"), 0);
	td_fill(dev, 8);
	td_show_buf(dev, "algorithm_params", before, sizeof(before));
	td_store_junk(dev, "reset");
	td_store_bad(dev, "reset", "0", -EINVAL);
	ck_assert_int_eq(td_store(dev, "reset", "1\n"), 0);
	ck_assert_int_eq(zr_dev_read(dev, page, sizeof(page), 0),
			 (ssize_t)sizeof(page));
	for (j = 0; j < sizeof(page); j++)
		ck_assert_int_eq(page[j], 0);
	ck_assert_str_eq(td_show(dev, "algorithm_params"), before);
	ck_assert_str_eq(td_show(dev, "disksize"), "1048576\n");
	ck_assert_str_eq(td_show(dev, "mem_limit"), "1048576\n");
	ck_assert_int_eq(td_store(dev, "reset", "18446744073709551615"), 0);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * zram reads the numbers that only its files take with kstrtoul() and
 * its kin (reset with kstrtou16()): one '+' may come first, and leading
 * zeros, so "+1" and "01" reset; a lone or second sign does not.  The
 * files that are also -o options read as the option does: no sign.
 */
START_TEST(test_attr_plus)
{
	static const char *const bad[] = {
		"+0", "++1", "+", "+-1", "-+1", "-1", "+ 1", " +1", "+1 ",
		"+\n", "+0x1",
	};
	struct zr_dev *dev = td_create(_i, "1M");
	size_t j;

	td_fill(dev, 8);
	ck_assert_uint_gt(strtoull(td_show(dev, "mm_stat"), NULL, 10), 0);
	ck_assert_int_eq(td_store(dev, "reset", "+1\n"), 0);
	ck_assert_uint_eq(strtoull(td_show(dev, "mm_stat"), NULL, 10), 0);
	td_fill(dev, 8);
	ck_assert_int_eq(td_store(dev, "reset", "01"), 0);
	ck_assert_uint_eq(strtoull(td_show(dev, "mm_stat"), NULL, 10), 0);
	td_fill(dev, 8);
	for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
		td_store_bad(dev, "reset", bad[j], -EINVAL);
	ck_assert_uint_gt(strtoull(td_show(dev, "mm_stat"), NULL, 10), 0);
	/* Every count that only a file takes, the same. */
	ck_assert_int_eq(td_store(dev, "idle", "+1"), 0);
	ck_assert_int_eq(td_store(dev, "writeback_limit", "+7"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit"), "7\n");
	ck_assert_int_eq(td_store(dev, "writeback_limit", "+007\n"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit"), "7\n");
	ck_assert_int_eq(td_store(dev, "writeback_limit_enable", "+1"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit_enable"), "1\n");
	td_store_bad(dev, "writeback_limit", "++7", -EINVAL);
	td_store_bad(dev, "writeback_limit_enable", "+2", -EINVAL);
	td_store_bad(dev, "idle", "+65536", -EINVAL);
	/* An option's value: as -o reads it. */
	td_store_bad(dev, "writeback_age", "+5", -EINVAL);
	td_store_bad(dev, "mem_limit", "+1M", -EINVAL);
	td_store_bad(dev, "disksize", "+1M", -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * While open, every replacement is EBUSY; with data, all but reset.  Bad
 * text is EINVAL whether or not the disk is busy.
 */
START_TEST(test_attr_busy)
{
	static const char *const replacing[] = {
		"disksize", "comp_algorithm", "algorithm_params",
		"recomp_algorithm", "reset",
	};
	enum { N = sizeof(replacing) / sizeof(replacing[0]) };
	struct zr_dev *dev = td_create(_i, "1M");
	char good[N][64];
	size_t j;

	snprintf(good[0], sizeof(good[0]), "2M");
	snprintf(good[1], sizeof(good[1]), "%s", td_backend(_i));
	snprintf(good[2], sizeof(good[2]), "level=%d",
		 zcomp_backends()[_i]->level_default);
	snprintf(good[3], sizeof(good[3]), "algo=%s priority=2",
		 td_secondary(_i));
	snprintf(good[4], sizeof(good[4]), "1");
	zr_dev_open(dev);
	zr_dev_open(dev);
	ck_assert_int_eq(zr_dev_opens(dev), 2);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "Image:          open 2 time(s)"));
	for (j = 0; j < N; j++) {
		td_store_bad(dev, replacing[j], good[j], -EBUSY);
		td_store_bad(dev, replacing[j], "banana", -EINVAL);
	}
	zr_dev_release(dev);
	td_store_bad(dev, "reset", "1", -EBUSY);
	zr_dev_release(dev);
	ck_assert_int_eq(zr_dev_opens(dev), 0);

	td_fill(dev, 1);
	for (j = 0; j + 1 < N; j++) {
		td_store_bad(dev, replacing[j], good[j], -EBUSY);
		td_store_bad(dev, replacing[j], "banana", -EINVAL);
	}
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	for (j = 0; j < N; j++)
		ck_assert_int_eq(td_store(dev, replacing[j], good[j]), 0);
	ck_assert_str_eq(td_show(dev, "disksize"), "2097152\n");
	snprintf(good[0], sizeof(good[0]), "#2: ");
	td_algo_line(td_secondary(_i), good[0] + 4, sizeof(good[0]) - 4);
	ck_assert_str_eq(td_show(dev, "recomp_algorithm"), good[0]);
	/* A secondary algorithm's level: the same rule. */
	td_fill(dev, 1);
	td_store_bad(dev, "algorithm_params", "priority=2 level=5", -EBUSY);
	snprintf(good[0], sizeof(good[0]), "algo=%s level=5", td_secondary(_i));
	td_store_bad(dev, "algorithm_params", good[0], -EBUSY);
	td_store_bad(dev, "algorithm_params", "priority=2 level=99", -EINVAL);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * td_signal_takers - how many of the process's threads named "zb-..." or
 * "zr-..." (the store's and the backing file's) do not block @sig: the
 * exit signals are the main thread's, and a store thread that took one
 * would not wake it.
 */
static int td_signal_takers(int sig)
{
	char p[300], line[160];
	unsigned long long blk;
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	FILE *f;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/task/%s/comm", de->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;		/* gone meanwhile */
		if (!fgets(line, sizeof(line), f) ||
		    (strncmp(line, "zb-", 3) && strncmp(line, "zr-", 3))) {
			fclose(f);
			continue;
		}
		fclose(f);
		snprintf(p, sizeof(p), "/proc/self/task/%s/status", de->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1 &&
			    !(blk >> (sig - 1) & 1))
				n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* A fresh directory under /var/tmp for backing files; removed by td_rmdir. */
static char td_dir[64];

static void td_mkdir(void)
{
	snprintf(td_dir, sizeof(td_dir), "/var/tmp/fusezram-dev.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(td_dir));
}

static void td_rmdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", td_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/*
 * backing_dev, writeback, writeback_limit(_enable), bd_stat: zram's
 * interface on a file.  Everything refused changes nothing.
 */
START_TEST(test_attr_writeback)
{
	static const char *const bad_words[] = {
		"foo", "idle huge", "type=", "type=all", "page_index=",
		"page_index=-1", "page_indexes=3-2", "page_indexes=3",
		"page_indexes=0-256", "page_index=256", "page_indexes=1-x",
		"idle=1", "huge_idle type=idle",
	};
	struct zr_dev *dev = td_create(_i, "1M");
	char path[128], link[128], shown[160];
	char page[ZR_PAGE_SIZE], want[ZR_PAGE_SIZE];
	unsigned long long bd[3];
	size_t j;

	td_mkdir();
	snprintf(path, sizeof(path), "%s/backing", td_dir);
	snprintf(link, sizeof(link), "%s/link", td_dir);
	ck_assert_str_eq(td_show(dev, "backing_dev"), "none\n");
	ck_assert_str_eq(td_show(dev, "bd_stat"), "       0        0        0\n");
	ck_assert_int_eq(td_store(dev, "writeback", "idle"), -ENODEV);
	td_store_junk(dev, "backing_dev");
	td_store_bad(dev, "backing_dev", "relative/path", -EINVAL);
	ck_assert_int_eq(symlink(path, link), 0);
	td_store_bad(dev, "backing_dev", link, -ELOOP);
	ck_assert_int_eq(access(path, F_OK), -1);	/* nothing created */
	td_store_junk(dev, "writeback_limit");
	td_store_junk(dev, "writeback_limit_enable");
	td_store_bad(dev, "writeback_limit_enable", "2", -EINVAL);

	/* Data in RAM: no file may be set (nor touched); then it may. */
	td_fill(dev, 16);
	ck_assert_int_eq(symlink("/", path), 0);
	td_store_bad(dev, "backing_dev", path, -EBUSY);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	ck_assert_int_eq(td_store(dev, "backing_dev", path), 0);
	ck_assert_int_eq(access(path, F_OK), 0);
	/* The file's read-ahead thread came from this thread, whose
	 * signals are not blocked; it blocks them all the same. */
	ck_assert_int_eq(td_signal_takers(SIGTERM), 0);
	snprintf(shown, sizeof(shown), "%s\n", path);
	ck_assert_str_eq(td_show(dev, "backing_dev"), shown);
	for (j = 0; j < sizeof(bad_words) / sizeof(bad_words[0]); j++)
		td_store_bad(dev, "writeback", bad_words[j], -EINVAL);
	td_store_junk(dev, "writeback");

	/* idle: everything marked goes; mm_stat is of RAM only. */
	td_fill(dev, 16);
	ck_assert_int_eq(td_store(dev, "idle", "all"), 0);
	ck_assert_int_eq(td_store(dev, "writeback", "huge"), 0);
	ck_assert_str_eq(td_show(dev, "bd_stat"), "       0        0        0\n");
	ck_assert_int_eq(td_store(dev, "writeback", "idle\n"), 0);
	ck_assert_int_eq(sscanf(td_show(dev, "bd_stat"), "%llu %llu %llu",
				&bd[0], &bd[1], &bd[2]), 3);
	ck_assert(bd[0] == 16 && bd[1] == 0 && bd[2] == 16);
	ck_assert_uint_eq(strtoull(td_show(dev, "mm_stat"), NULL, 10), 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "16 pages written back"));
	for (j = 0; j < sizeof(page); j++)
		want[j] = "fusezram device test "[j % 21];
	ck_assert_int_eq(zr_dev_read(dev, page, sizeof(page), 15 * 4096),
			 (ssize_t)sizeof(page));
	ck_assert(memcmp(page, want, sizeof(page)) == 0);
	/* Data in the file only: still no new file, disksize, algorithm. */
	td_store_bad(dev, "backing_dev", link, -EBUSY);
	td_store_bad(dev, "disksize", "2M", -EBUSY);

	/* The limit: pages, taken by each writeback, -EIO once used up. */
	td_fill(dev, 16);
	ck_assert_int_eq(td_store(dev, "writeback_limit", "3"), 0);
	ck_assert_int_eq(td_store(dev, "writeback_limit_enable", "1"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit_enable"), "1\n");
	ck_assert_int_eq(td_store(dev, "writeback", "page_indexes=0-9"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit"), "0\n");
	ck_assert_int_eq(td_store(dev, "writeback", "page_index=12"), -EIO);
	ck_assert_int_eq(td_store(dev, "writeback_limit", "100"), 0);
	ck_assert_int_eq(td_store(dev, "writeback",
				  "page_index=12 page_indexes=14-15"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_limit"), "97\n");
	ck_assert_int_eq(sscanf(td_show(dev, "bd_stat"), "%llu %llu %llu",
				&bd[0], &bd[1], &bd[2]), 3);
	ck_assert(bd[0] == 6 && bd[2] == 22);
	ck_assert_int_eq(td_store(dev, "writeback_limit_enable", "0"), 0);
	ck_assert_int_eq(td_store(dev, "writeback", "type=idle"), 0);
	ck_assert_int_eq(td_store(dev, "writeback", "page_indexes=0-15"), 0);
	ck_assert_int_eq(sscanf(td_show(dev, "bd_stat"), "%llu", &bd[0]), 1);
	ck_assert_uint_eq(bd[0], 16);

	/* reset keeps the file, empty; a discard empties it too. */
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	ck_assert_str_eq(td_show(dev, "bd_stat"), "       0        0        0\n");
	ck_assert_str_eq(td_show(dev, "backing_dev"), shown);
	zr_dev_destroy(dev);
	td_rmdir();
}
END_TEST

/*
 * td_long_path - a path of exactly @len bytes under td_dir into @buf
 * (@len + 1 bytes at least): its directories made, its last name not.
 */
static const char *td_long_path(char *buf, size_t len)
{
	size_t n = strlen(td_dir);

	memcpy(buf, td_dir, n);
	while (len - n > NAME_MAX + 1) {
		buf[n++] = '/';
		memset(buf + n, 'd', 200);
		n += 200;
		buf[n] = '\0';
		ck_assert(mkdir(buf, 0700) == 0 || errno == EEXIST);
	}
	buf[n++] = '/';
	memset(buf + n, 'f', len - n);
	buf[len] = '\0';
	return buf;
}

/*
 * control/backing_dev shows the path whole, with its newline, in a page
 * (as zram, whose show has the same bound).  The longest path taken,
 * ZR_DEV_PATH_MAX (4094) bytes, fills it; one byte more (PATH_MAX - 1,
 * which open() takes) was taken and then shown cut, without its
 * newline: it is refused, by the file and by -o, with a message that
 * names its head and length and says why.  A whole read of the open
 * file (cat) gets the page's text.
 */
START_TEST(test_attr_backing_dev_long)
{
	static char path[PATH_MAX], shown[ZR_DEV_ATTR_SIZE + 1];
	static char buf[ZR_DEV_ATTR_SIZE];
	struct zr_dev *dev = td_create(0, "1M");
	const struct zr_dev_attr *a = td_attr("backing_dev");
	char msg[ZR_DEV_MSG_SIZE], want[ZR_DEV_MSG_SIZE];
	struct zr_dev_file *f;
	struct zr_dev_conf c;

	td_mkdir();
	ck_assert_int_eq(ZR_DEV_PATH_MAX, PATH_MAX - 2);
	td_long_path(path, PATH_MAX - 1);
	ck_assert_int_eq(td_store(dev, "backing_dev", path), -EINVAL);
	ck_assert_int_eq(access(path, F_OK), -1);	/* nothing created */
	ck_assert_str_eq(td_show(dev, "backing_dev"), "none\n");
	ck_assert_int_eq(td_check(ZR_OPT_BACKING_DEV, path, &c, msg), -EINVAL);
	snprintf(want, sizeof(want), "invalid backing_dev '%.64s'... (4095 bytes): expected an absolute path of at most 4094 bytes",
		 path);
	ck_assert_str_eq(msg, want);

	td_long_path(path, ZR_DEV_PATH_MAX);
	ck_assert_int_eq(td_check(ZR_OPT_BACKING_DEV, path, &c, msg), 0);
	snprintf(shown, sizeof(shown), "%s\n", path);
	ck_assert_int_eq(td_store(dev, "backing_dev", shown), 0);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(zr_dev_show(dev, a, buf, sizeof(buf)),
			 ZR_DEV_ATTR_SIZE - 1);
	ck_assert_str_eq(buf, shown);
	ck_assert_int_eq(zr_dev_file_open(a, &f), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(zr_dev_file_read(dev, f, buf, sizeof(buf), 0),
			 ZR_DEV_ATTR_SIZE - 1);
	ck_assert(memcmp(buf, shown, ZR_DEV_ATTR_SIZE - 1) == 0);
	zr_dev_file_close(dev, f);
	zr_dev_destroy(dev);
	td_rmdir();
}
END_TEST

/* -o backing_dev=, backing_size=: the file is opened at create. */
START_TEST(test_opts_backing)
{
	struct zr_dev_opts o = { .novalue = -1 };
	struct zr_dev_conf conf;
	struct zr_dev *dev = NULL;
	char msg[ZR_DEV_MSG_SIZE], path[128];

	td_mkdir();
	ck_assert_int_eq(td_check(ZR_OPT_BACKING_DEV, "rel", &conf, msg),
			 -EINVAL);
	ck_assert_str_eq(msg, "invalid backing_dev 'rel': expected an absolute path");
	ck_assert_int_eq(td_check(ZR_OPT_BACKING_SIZE, "1X", &conf, msg),
			 -EINVAL);
	ck_assert_str_eq(msg, "invalid backing_size '1X': expected a size such as 512M or 4G, or 0 for the file system's free space");
	snprintf(path, sizeof(path), "%s/file", td_dir);
	o.val[ZR_OPT_DISKSIZE] = (char *)"1M";
	o.val[ZR_OPT_BACKING_DEV] = path;
	o.val[ZR_OPT_BACKING_SIZE] = (char *)"4M";
	ck_assert_int_eq(zr_dev_check_opts(&o, &conf, msg, sizeof(msg)), 0);
	ck_assert_str_eq(conf.backing_dev, path);
	ck_assert_uint_eq(conf.backing_size, 4 << 20);
	/* The age policy: on with a file unless told otherwise. */
	ck_assert_uint_eq(conf.zc.writeback_age, ZR_DEV_WB_AGE_DEFAULT);
	ck_assert_int_eq(zr_dev_create(&conf, &dev), 0);
	ck_assert_int_eq(td_signal_takers(SIGTERM), 0);
	/* A second device cannot share the file. */
	{
		struct zr_dev *dev2 = NULL;

		ck_assert_int_eq(zr_dev_create(&conf, &dev2), -EBUSY);
		ck_assert_ptr_null(dev2);
	}
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"), path));
	ck_assert_str_eq(td_show(dev, "writeback_age"), "1800\n");
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "pages unused for 1800 s go"));
	td_store_junk(dev, "writeback_age");
	td_store_bad(dev, "writeback_age", "65536", -EINVAL);
	ck_assert_int_eq(td_store(dev, "writeback_age", "0"), 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "by age off"));
	ck_assert_int_eq(td_store(dev, "writeback_age", "65535"), 0);
	/* A reset keeps it, as it keeps mem_limit. */
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	ck_assert_str_eq(td_show(dev, "writeback_age"), "65535\n");
	zr_dev_destroy(dev);
	o.val[ZR_OPT_WRITEBACK_AGE] = (char *)"60";
	ck_assert_int_eq(zr_dev_check_opts(&o, &conf, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(conf.zc.writeback_age, 60);
	ck_assert_int_eq(td_check(ZR_OPT_WRITEBACK_AGE, "65536", &conf, msg),
			 -EINVAL);
	ck_assert_str_eq(msg, "invalid writeback_age '65536': expected a number of seconds from 0 to 65535");
	o.val[ZR_OPT_WRITEBACK_AGE] = NULL;
	o.val[ZR_OPT_BACKING_DEV] = td_dir;	/* a directory */
	ck_assert_int_eq(zr_dev_check_opts(&o, &conf, msg, sizeof(msg)), 0);
	ck_assert_int_eq(zr_dev_create(&conf, &dev), -EISDIR);
	td_rmdir();
}
END_TEST

/* The read-only attributes' formats, kernel zram's field for field. */
START_TEST(test_attr_formats)
{
	struct zr_dev *dev = td_create(_i, "1M");
	unsigned long long v[9];
	char *line2, want[128];

	ck_assert_str_eq(td_show(dev, "max_comp_streams"), "2\n");
	td_fill(dev, 16);
	td_show(dev, "mm_stat");
	ck_assert_uint_eq(td_fields(td_buf), 9);
	ck_assert_int_eq(sscanf(td_buf, "%llu %llu %llu %llu %llu %llu %llu %llu %llu",
				&v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
				&v[6], &v[7], &v[8]), 9);
	ck_assert_uint_eq(v[0], 16 * ZR_PAGE_SIZE);	/* orig_data_size */
	ck_assert_uint_gt(v[1], 0);			/* compr_data_size */
	ck_assert_uint_ge(v[4], v[2]);			/* max >= used */
	ck_assert_uint_eq(td_buf[strlen(td_buf) - 1], '\n');
	ck_assert_uint_eq(td_fields(td_show(dev, "io_stat")), 4);
	ck_assert_int_eq(sscanf(td_buf, "%llu %llu %llu %llu", &v[0], &v[1],
				&v[2], &v[3]), 4);
	ck_assert_uint_eq(v[2], 0);
	td_show(dev, "debug_stat");
	ck_assert_int_eq(strncmp(td_buf, "version: 1\n0 ", 13), 0);
	line2 = td_buf + 11;
	/* zram's second line, then ours: one per algorithm, the counts. */
	line2 = strchr(line2, '\n') + 1;
	snprintf(want, sizeof(want), "#0 %s 16\nrecompressed 0 saved 0 aged 0 incompressible 0\n",
		 td_backend(_i));
	ck_assert_str_eq(line2, want);
	zr_dev_destroy(dev);
}
END_TEST

/* The summary: every line, empty and with data. */
/* The glue's transport line, here its argument. */
static void td_transport(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%s", (const char *)arg);
}

START_TEST(test_attr_summary)
{
	static const char *const lines[] = {
		"fusezram: a disk of 1.0 MiB (256 pages of 4 KiB) kept in RAM, each page\n",
		"\nData stored:    ", "\n  same-filled:  ", "\n  huge:         ",
		"\n  idle:         ", "\nCompressed to:  ", "\nMemory used:    ",
		"\nMemory saved:   ", "\nOverhead:       ", "\nReserve:        ",
		"\nBacking file:   none",
		"\nRecompression:  none (-o recomp_algorithm=), by age off too\n",
		"\nNot counted:    ",
		"\nFailed I/O:     ",
		"\nImage:          open 0 time(s); 2 thread(s)",
		"\nMemory lock:    ", "\nSize classes in use.",
		"   class  pages/span   spans   objects used / room   fill\n",
	};
	struct zr_dev *dev = td_create(_i, "1M");
	char want[128];
	size_t i;

	td_show(dev, "summary");
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		ck_assert_msg(strstr(td_buf, lines[i]) != NULL,
			      "summary lacks '%s':\n%s", lines[i], td_buf);
	snprintf(want, sizeof(want), "compressed with %s at level %d.\n\n",
		 td_backend(_i), zcomp_backends()[_i]->level_default);
	ck_assert_ptr_nonnull(strstr(td_buf, want));
	ck_assert_ptr_nonnull(strstr(td_buf,
		"  (none: no compressed page is stored)\n"));
	ck_assert_ptr_nonnull(strstr(td_buf,
		"Memory lock:    off (-o nomlock)"));
	ck_assert_ptr_nonnull(strstr(td_buf, "limit none)"));

	zr_dev_set_discipline(dev, &(struct zr_dev_discipline){
		.on = true, .mlocked = true, .io_flusher = false,
		.oom_score_adj = "-900" });
	td_fill(dev, 16);
	td_show(dev, "summary");
	ck_assert_ptr_nonnull(strstr(td_buf,
		"Memory lock:    mlockall on, I/O flusher FAILED, oom_score_adj -900\n"));
	ck_assert_ptr_nonnull(strstr(td_buf, "64.0 KiB in 16 pages (6.2% of the disk)"));
	ck_assert_ptr_null(strstr(td_buf, "Transport:"));	/* none set */
	zr_dev_set_transport(dev, td_transport, (void *)"a ring");
	td_show(dev, "summary");
	ck_assert_ptr_nonnull(strstr(td_buf, "\nTransport:      a ring\n"));
	ck_assert_ptr_null(strstr(td_buf, "(none: no compressed page"));
	ck_assert_uint_eq(td_buf[strlen(td_buf) - 1], '\n');
	zr_dev_destroy(dev);
}
END_TEST

/* ---- recompression ---------------------------------------------------------- */

/*
 * -o recomp_algorithm=NAME[:LEVEL] sets priority 1; recompress_age is 300
 * with it, 0 without, and taken (doing nothing) without it.
 */
START_TEST(test_opts_recomp)
{
	struct zr_dev_opts o = { .novalue = -1 };
	struct zr_dev_conf c;
	struct zr_dev *dev = NULL;
	char msg[ZR_DEV_MSG_SIZE];

	ck_assert_int_eq(td_check(ZR_OPT_RECOMP_ALGORITHM, "zstd", &c, msg), 0);
	ck_assert_str_eq(c.zc.recomp[0].name, "zstd");
	ck_assert_int_eq(c.zc.recomp[0].level, ZCOMP_LEVEL_DEFAULT);
	ck_assert_ptr_null(c.zc.recomp[1].name);
	ck_assert_ptr_null(c.zc.recomp[2].name);
	ck_assert_uint_eq(c.zc.recompress_age, ZR_DEV_RC_AGE_DEFAULT);
	ck_assert_int_eq(td_check(ZR_OPT_RECOMP_ALGORITHM, "zstd:-7", &c, msg),
			 0);
	ck_assert_int_eq(c.zc.recomp[0].level, -7);
	ck_assert_int_eq(td_check(ZR_OPT_RECOMP_ALGORITHM, "lz4hc:12", &c,
				  msg), 0);
	ck_assert_str_eq(c.zc.recomp[0].name, "lz4hc");
	ck_assert_int_eq(c.zc.recomp[0].level, 12);
	ck_assert_int_eq(td_check(ZR_OPT_RECOMP_ALGORITHM, "zstd:+22", &c,
				  msg), 0);
	ck_assert_int_eq(c.zc.recomp[0].level, 22);
	/* The age alone: taken, kept, nothing to do. */
	ck_assert_int_eq(td_check(ZR_OPT_RECOMPRESS_AGE, "60", &c, msg), 0);
	ck_assert_ptr_null(c.zc.recomp[0].name);
	ck_assert_uint_eq(c.zc.recompress_age, 60);
	ck_assert_int_eq(td_check(ZR_OPT_RECOMPRESS_AGE, "65535", &c, msg), 0);
	ck_assert_uint_eq(c.zc.recompress_age, 65535);
	o.val[ZR_OPT_RECOMP_ALGORITHM] = (char *)"zstd:9";
	o.val[ZR_OPT_RECOMPRESS_AGE] = (char *)"0";
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(c.zc.recompress_age, 0);
	o.val[ZR_OPT_RECOMPRESS_AGE] = (char *)"3";
	o.val[ZR_OPT_DISKSIZE] = (char *)"1M";
	o.val[ZR_OPT_RESERVE] = (char *)"0";
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(c.zc.recompress_age, 3);
	/* The device shows what it was made with. */
	ck_assert_int_eq(zr_dev_create(&c, &dev), 0);
	ck_assert_str_eq(td_show(dev, "recomp_algorithm"),
			 "#1: lz4 lz4hc [zstd]\n");
	ck_assert_str_eq(td_show(dev, "algorithm_params"),
			 "algo=lz4 level=1\npriority=1 algo=zstd level=9\n");
	ck_assert_str_eq(td_show(dev, "recompress_age"), "3\n");
	{
		struct zr_config zc;

		zr_dev_get_config(dev, &zc);
		ck_assert_str_eq(zc.recomp[0].name, "zstd");
		ck_assert_int_eq(zc.recomp[0].level, 9);
		ck_assert_uint_eq(zc.recompress_age, 3);
	}
	zr_dev_destroy(dev);
	o.novalue = ZR_OPT_RECOMP_ALGORITHM;
	ck_assert_int_eq(zr_dev_check_opts(&o, &c, msg, sizeof(msg)), -EINVAL);
	ck_assert_str_eq(msg, "option 'recomp_algorithm' needs a value, as in -o recomp_algorithm=...");
}
END_TEST

/*
 * recomp_algorithm: "algo=NAME [priority=N]" replaces the store, read
 * back as zram prints it; algorithm_params reaches a secondary's level;
 * recompress_age reads and writes seconds.  Everything refused changes
 * nothing.
 */
START_TEST(test_attr_recomp_algorithm)
{
	static const char *const bad[] = {
		"zstd", "algo=", "algo", "algo=nosuch", "algo=ZSTD",
		"priority=1", "algo=zstd priority=0", "algo=zstd priority=4",
		"algo=zstd priority=-1", "algo=zstd priority=x",
		"algo=zstd priority=", "algo=zstd foo=1", "algo=zstd level=3",
		"=zstd", "algo=zstd priority=1 priority=2 foo",
	};
	const char *sec = td_secondary(_i);
	const struct zcomp_backend *sbe = zcomp_find(sec);
	struct zr_dev *dev = td_create(_i, "1M");
	char want[256], line[64], text[128];
	size_t j;

	ck_assert_str_eq(td_show(dev, "recomp_algorithm"), "");
	ck_assert_str_eq(td_show(dev, "recompress_age"), "0\n");
	for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
		td_store_bad(dev, "recomp_algorithm", bad[j], -EINVAL);
	td_store_junk(dev, "recomp_algorithm");

	snprintf(text, sizeof(text), "algo=%s\n", sec);
	ck_assert_int_eq(td_store(dev, "recomp_algorithm", text), 0);
	snprintf(want, sizeof(want), "#1: %s", td_algo_line(sec, line,
							    sizeof(line)));
	ck_assert_str_eq(td_show(dev, "recomp_algorithm"), want);
	ck_assert_int_eq(td_store(dev, "recomp_algorithm",
				  "priority=3  algo=lz4"), 0);
	snprintf(want + strlen(want), sizeof(want) - strlen(want), "#3: %s",
		 td_algo_line("lz4", line, sizeof(line)));
	ck_assert_str_eq(td_show(dev, "recomp_algorithm"), want);
	/* Set through control/, the age stays as it was: 0. */
	ck_assert_str_eq(td_show(dev, "recompress_age"), "0\n");

	/* algorithm_params: a line per algorithm; each line writes back. */
	snprintf(want, sizeof(want),
		 "algo=%s level=%d\npriority=1 algo=%s level=%d\npriority=3 algo=lz4 level=1\n",
		 td_backend(_i), zcomp_backends()[_i]->level_default, sec,
		 sbe->level_default);
	ck_assert_str_eq(td_show(dev, "algorithm_params"), want);
	snprintf(text, sizeof(text), "priority=1 level=%d", sbe->level_max);
	ck_assert_int_eq(td_store(dev, "algorithm_params", text), 0);
	snprintf(text, sizeof(text), "priority=1 algo=%s level=%d\n", sec,
		 sbe->level_max);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "algorithm_params"), text));
	snprintf(text, sizeof(text), "algo=%s level=%d", sec, sbe->level_min);
	ck_assert_int_eq(td_store(dev, "algorithm_params", text), 0);
	snprintf(text, sizeof(text), "priority=1 algo=%s level=%d\n", sec,
		 sbe->level_min);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "algorithm_params"), text));
	ck_assert_int_eq(td_store(dev, "algorithm_params",
				  "priority=3 algo=lz4 level=7"), 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "algorithm_params"),
				     "priority=3 algo=lz4 level=7\n"));
	/* The primary's line is untouched by all that. */
	snprintf(text, sizeof(text), "algo=%s level=%d\n", td_backend(_i),
		 zcomp_backends()[_i]->level_default);
	ck_assert_int_eq(strncmp(td_show(dev, "algorithm_params"), text,
				 strlen(text)), 0);
	td_store_bad(dev, "algorithm_params", "priority=2 level=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "priority=4 level=1", -EINVAL);
	snprintf(text, sizeof(text), "priority=1 level=%d", sbe->level_max + 1);
	td_store_bad(dev, "algorithm_params", text, -EINVAL);
	snprintf(text, sizeof(text), "priority=3 algo=%s level=5", sec);
	td_store_bad(dev, "algorithm_params", text, -EINVAL);
	td_store_bad(dev, "algorithm_params", "algo=nosuch level=1", -EINVAL);
	td_store_bad(dev, "algorithm_params", "priority=1", -EINVAL);

	/* Rewriting a priority: the level goes back to the default. */
	ck_assert_int_eq(td_store(dev, "recomp_algorithm", "algo=lz4 priority=3"),
			 0);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "algorithm_params"),
				     "priority=3 algo=lz4 level=1\n"));

	/* recompress_age: seconds, at once; kept by every replacement. */
	ck_assert_int_eq(td_store(dev, "recompress_age", "60\n"), 0);
	ck_assert_str_eq(td_show(dev, "recompress_age"), "60\n");
	td_store_junk(dev, "recompress_age");
	td_store_bad(dev, "recompress_age", "65536", -EINVAL);
	td_store_bad(dev, "recompress_age", "+1", -EINVAL);
	td_store_bad(dev, "recompress_age", "5m", -EINVAL);
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	ck_assert_int_eq(td_store(dev, "comp_algorithm", td_backend(_i)), 0);
	snprintf(text, sizeof(text), "priority=2 algo=%s", sec);
	ck_assert_int_eq(td_store(dev, "recomp_algorithm", text), 0);
	ck_assert_str_eq(td_show(dev, "recompress_age"), "60\n");
	/* ... and the secondary algorithms are kept too. */
	ck_assert_ptr_nonnull(strstr(td_show(dev, "recomp_algorithm"), "#1: "));
	ck_assert_ptr_nonnull(strstr(td_buf, "#2: "));
	ck_assert_ptr_nonnull(strstr(td_buf, "#3: "));
	ck_assert_int_eq(td_store(dev, "recompress_age", "0"), 0);
	ck_assert_str_eq(td_show(dev, "recompress_age"), "0\n");
	zr_dev_destroy(dev);
}
END_TEST

/*
 * td_debug - a count of debug_stat: the pages of the algorithm of
 * priority P for @what "#P", else the figure after the word @what on
 * its last line ("recompressed", "saved", "aged", "incompressible").
 */
static unsigned long long td_debug(struct zr_dev *dev, const char *what)
{
	static const char *const words[] = {
		"recompressed", "saved", "aged", "incompressible",
	};
	unsigned long long v[4] = { 0 };
	const char *p = td_show(dev, "debug_stat");
	size_t n = strlen(what), i;

	if (what[0] == '#') {	/* "#P NAME PAGES" */
		for (; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			if (strncmp(p, what, n) == 0 && p[n] == ' ') {
				ck_assert_int_eq(sscanf(p + n, " %*s %llu",
							&v[0]), 1);
				return v[0];
			}
		ck_abort_msg("debug_stat has no '%s':\n%s", what, td_buf);
	}
	p = strstr(td_buf, "\nrecompressed ");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p, " recompressed %llu saved %llu aged %llu incompressible %llu",
				&v[0], &v[1], &v[2], &v[3]), 4);
	for (i = 0; i < 4; i++)
		if (strcmp(what, words[i]) == 0)
			return v[i];
	ck_abort_msg("no count '%s' in debug_stat", what);
	return 0;
}

/*
 * recompress: zram's keys; every bad one EINVAL with nothing changed
 * (no page recompressed); then idle pages go to the secondary algorithm,
 * debug_stat and summary count them, and every byte reads back.
 */
START_TEST(test_attr_recompress)
{
	static const char *const bad[] = {
		"idle", "type=", "type=all", "type=IDLE", "type=incompressible",
		"type=idle type=huge", "type=idle type=idle", "threshold=4096",
		"threshold=-1", "threshold=1K", "threshold=x", "max_pages=0",
		"max_pages=-1", "max_pages=x", "priority=0", "priority=2",
		"priority=4", "priority=x", "algo=nosuch", "algo=",
		"algo=zstd priority=1 algo=zstd", "foo=1", "type=idle foo=bar",
		"=1", "type=idle=1",
	};
	const char *sec = td_secondary(_i);
	struct zr_dev *dev = td_create(_i, "1M");
	char text[128], page[ZR_PAGE_SIZE], want[ZR_PAGE_SIZE];
	unsigned long long n0, n1;
	size_t j;

	td_fill(dev, 32);
	/* No secondary algorithm: refused, whatever the words. */
	td_store_bad(dev, "recompress", "type=idle", -EINVAL);
	td_store_bad(dev, "recompress", "\n", -EINVAL);
	ck_assert_int_eq(td_store(dev, "reset", "1"), 0);
	snprintf(text, sizeof(text), "algo=%s", sec);
	ck_assert_int_eq(td_store(dev, "recomp_algorithm", text), 0);
	td_fill(dev, 32);
	ck_assert_uint_eq(td_debug(dev, "#0"), 32);
	ck_assert_uint_eq(td_debug(dev, "#1"), 0);

	for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
		td_store_bad(dev, "recompress", bad[j], -EINVAL);
	for (j = 0; j < TD_NJUNK; j++)
		if (td_junk[j][0] && strcmp(td_junk[j], "\n"))
			td_store_bad(dev, "recompress", td_junk[j], -EINVAL);
	/* algo= names a secondary algorithm, not the primary ... */
	snprintf(text, sizeof(text), "algo=%s", td_backend(_i));
	td_store_bad(dev, "recompress", text, -EINVAL);
	/* ... and the same as priority= when both are given. */
	snprintf(text, sizeof(text), "algo=%s priority=2", sec);
	td_store_bad(dev, "recompress", text, -EINVAL);
	ck_assert_uint_eq(td_debug(dev, "recompressed"), 0);
	ck_assert_uint_eq(td_debug(dev, "#0"), 32);

	/* Nothing idle: nothing done, and no error. */
	ck_assert_int_eq(td_store(dev, "recompress", "type=idle"), 0);
	ck_assert_uint_eq(td_debug(dev, "recompressed"), 0);
	/* A threshold above every object: nothing done either. */
	ck_assert_int_eq(td_store(dev, "idle", "all"), 0);
	ck_assert_int_eq(td_store(dev, "recompress",
				  "type=idle threshold=4095"), 0);
	ck_assert_uint_eq(td_debug(dev, "recompressed"), 0);
	/* max_pages: at most that many. */
	snprintf(text, sizeof(text), "type=idle max_pages=4 algo=%s priority=1\n",
		 sec);
	ck_assert_int_eq(td_store(dev, "recompress", text), 0);
	n1 = td_debug(dev, "#1");
	ck_assert_uint_le(n1, 4);
	ck_assert_uint_eq(td_debug(dev, "recompressed"), n1);
	ck_assert_int_eq(td_store(dev, "recompress", "type=idle threshold=0"),
			 0);
	n0 = td_debug(dev, "#0");
	n1 = td_debug(dev, "#1");
	ck_assert_uint_eq(n0 + n1, 32);
	ck_assert_uint_eq(td_debug(dev, "recompressed"), n1);
	/* lz4 to zstd shrinks this text: every page moves. */
	if (strcmp(td_backend(_i), "lz4") == 0) {
		ck_assert_uint_eq(n1, 32);
		ck_assert_uint_gt(td_debug(dev, "saved"), 0);
	}
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "\nRecompression:  compressed pages in RAM by algorithm:\n"));
	snprintf(text, sizeof(text), "pages recompressed so far (0 by age)");
	ck_assert_ptr_nonnull(strstr(td_buf, text));
	ck_assert_ptr_nonnull(strstr(td_buf, "by age off (recompress_age 0)"));
	ck_assert_int_eq(td_store(dev, "recompress_age", "30"), 0);
	snprintf(text, sizeof(text), "pages unused for 30 s are recompressed\n"
		 "                (with %s first)\n", sec);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"), text));
	/* Recompressed pages keep their idle mark. */
	ck_assert_ptr_nonnull(strstr(td_buf,
			      "  idle:         32 pages marked idle"));

	/* Every byte reads back; a rewrite goes back to the primary. */
	for (j = 0; j < sizeof(want); j++)
		want[j] = "fusezram device test "[j % 21];
	for (j = 0; j < 32; j++) {
		ck_assert_int_eq(zr_dev_read(dev, page, sizeof(page),
					     j * ZR_PAGE_SIZE),
				 (ssize_t)sizeof(page));
		ck_assert(memcmp(page, want, sizeof(page)) == 0);
	}
	td_fill(dev, 32);
	ck_assert_uint_eq(td_debug(dev, "#0"), 32);
	ck_assert_uint_eq(td_debug(dev, "#1"), 0);
	/* Without type or algorithm: every page, each secondary in turn. */
	ck_assert_int_eq(td_store(dev, "recompress", "\n"), 0);
	ck_assert_uint_eq(td_debug(dev, "#0") + td_debug(dev, "#1"), 32);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * recompress with algo= and priority= both given: they must name the
 * same algorithm, and one algorithm may be the secondary of two
 * priorities (at two levels, say): algo=zstd priority=2 names zstd at
 * 2 when zstd is at 1 too (it was refused, algo= taken as priority 1).
 */
START_TEST(test_attr_recompress_algo_prio)
{
	struct zr_dev *dev = td_create(0, "1M");	/* lz4 */

	ck_assert_str_eq(td_backend(0), "lz4");
	ck_assert_int_eq(td_store(dev, "recomp_algorithm",
				  "algo=zstd priority=1"), 0);
	ck_assert_int_eq(td_store(dev, "recomp_algorithm",
				  "algo=zstd priority=2"), 0);
	ck_assert_int_eq(td_store(dev, "algorithm_params",
				  "priority=2 level=19"), 0);
	td_fill(dev, 32);
	td_store_bad(dev, "recompress", "algo=lz4hc priority=2", -EINVAL);
	td_store_bad(dev, "recompress", "algo=lz4 priority=2", -EINVAL);
	/* A priority with no algorithm: refused, not a crash. */
	td_store_bad(dev, "recompress", "algo=zstd priority=3", -EINVAL);
	td_store_bad(dev, "recompress", "priority=3 algo=zstd", -EINVAL);
	ck_assert_int_eq(td_store(dev, "recompress", "algo=zstd priority=2"),
			 0);
	ck_assert_uint_eq(td_debug(dev, "#1"), 0);
	ck_assert_uint_eq(td_debug(dev, "#2"), 32);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * writeback's incompressible: the pages recompress marked (no secondary
 * algorithm shrank them), not huge ones in general.
 */
START_TEST(test_attr_incompressible)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char path[128], page[ZR_PAGE_SIZE], back[ZR_PAGE_SIZE];
	unsigned long long bd[3];
	uint64_t seed = 99 + (uint64_t)_i;

	td_mkdir();
	snprintf(path, sizeof(path), "%s/backing", td_dir);
	ck_assert_int_eq(td_store(dev, "backing_dev", path), 0);
	snprintf(page, sizeof(page), "algo=%s", td_secondary(_i));
	ck_assert_int_eq(td_store(dev, "recomp_algorithm", page), 0);
	td_fill(dev, 8);
	tu_fill_random(page, sizeof(page), &seed);
	ck_assert_int_eq(zr_dev_write(dev, page, sizeof(page), 20 * 4096),
			 (ssize_t)sizeof(page));
	/* Huge, not yet marked: incompressible takes nothing. */
	ck_assert_int_eq(td_store(dev, "writeback", "incompressible"), 0);
	ck_assert_str_eq(td_show(dev, "bd_stat"), "       0        0        0\n");
	ck_assert_int_eq(td_store(dev, "recompress", "type=huge"), 0);
	ck_assert_uint_eq(td_debug(dev, "incompressible"), 1);
	ck_assert_ptr_nonnull(strstr(td_show(dev, "summary"),
				     "; 1 pages no secondary algorithm shrank"));
	ck_assert_int_eq(td_store(dev, "writeback", "type=incompressible\n"),
			 0);
	ck_assert_int_eq(sscanf(td_show(dev, "bd_stat"), "%llu %llu %llu",
				&bd[0], &bd[1], &bd[2]), 3);
	ck_assert(bd[0] == 1 && bd[2] == 1);
	ck_assert_uint_eq(td_debug(dev, "incompressible"), 0);
	ck_assert_int_eq(zr_dev_read(dev, back, sizeof(back), 20 * 4096),
			 (ssize_t)sizeof(back));
	ck_assert(memcmp(page, back, sizeof(page)) == 0);
	zr_dev_destroy(dev);
	td_rmdir();
}
END_TEST

/* ---- I/O and open files ---------------------------------------------------- */

START_TEST(test_io)
{
	struct zr_dev *dev = td_create(_i, "1M");
	char page[ZR_PAGE_SIZE], back[ZR_PAGE_SIZE];
	uint64_t seed = 12345 + (uint64_t)_i;
	bool changed;

	tu_fill_random(page, sizeof(page), &seed);
	ck_assert_int_eq(zr_dev_write(dev, page, sizeof(page), 8192),
			 (ssize_t)sizeof(page));
	ck_assert_int_eq(zr_dev_read(dev, back, sizeof(back), 8192),
			 (ssize_t)sizeof(back));
	ck_assert_int_eq(memcmp(page, back, sizeof(page)), 0);
	ck_assert_int_eq(zr_dev_write(dev, page, 1, TD_DISK), -EFBIG);
	ck_assert_int_eq(zr_dev_read(dev, back, 1, TD_DISK), 0);
	ck_assert_int_eq(zr_dev_seek(dev, 0, SEEK_DATA), 8192);
	ck_assert_int_eq(zr_dev_seek(dev, 8192, SEEK_HOLE), 12288);

	/* fallocate: each mode as zr_dev.h's table says. */
	ck_assert_int_eq(zr_dev_fallocate(dev, 0, 0, TD_DISK, &changed), 0);
	ck_assert(!changed);
	ck_assert_int_eq(zr_dev_fallocate(dev, 0, 1, TD_DISK, &changed),
			 -EFBIG);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_KEEP_SIZE, 0,
					  2 * TD_DISK, &changed), 0);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_ZERO_RANGE, 8192,
					  TD_DISK, &changed), -EFBIG);
	ck_assert(!changed);
	ck_assert_int_eq(zr_dev_seek(dev, 0, SEEK_DATA), 8192);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE |
					  FALLOC_FL_KEEP_SIZE, TD_DISK, 4096,
					  &changed), 0);
	ck_assert(!changed);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE |
					  FALLOC_FL_KEEP_SIZE, 4096, TD_DISK,
					  &changed), 0);
	ck_assert(changed);
	ck_assert_int_eq(zr_dev_seek(dev, 0, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_PUNCH_HOLE, 0, 4096,
					  &changed), -EOPNOTSUPP);
	ck_assert_int_eq(zr_dev_fallocate(dev, FALLOC_FL_ZERO_RANGE, 0, 4096,
					  &changed), 0);
	ck_assert(changed);
	zr_dev_destroy(dev);
}
END_TEST

/*
 * An open control file: a whole read keeps only its length (EOF next); a
 * piecewise reader's pieces come from one copy, however the text moves.
 */
START_TEST(test_open_file)
{
	struct zr_dev *dev = td_create(_i, "1M");
	static char buf[ZR_DEV_SUMMARY_SIZE], whole[ZR_DEV_SUMMARY_SIZE];
	const struct zr_dev_attr *a = td_attr("summary");
	struct zr_dev_file *f, *g;
	ssize_t n, len = 0;

	ck_assert_int_eq(zr_dev_file_open(a, &f), 0);
	ck_assert_ptr_eq(zr_dev_file_attr(f), a);
	n = zr_dev_file_read(dev, f, buf, sizeof(buf), 0);
	ck_assert_int_gt(n, 100);
	ck_assert_int_eq(zr_dev_file_read(dev, f, buf, sizeof(buf),
					  (uint64_t)n), 0);
	zr_dev_file_close(dev, f);

	ck_assert_int_eq(zr_dev_file_open(a, &g), 0);
	n = zr_dev_file_read(dev, g, buf, 10, 0);
	ck_assert_int_eq(n, 10);
	memcpy(whole, buf, 10);
	len = 10;
	td_fill(dev, 16);	/* the text changes; the copy does not */
	while ((n = zr_dev_file_read(dev, g, buf, 7, (uint64_t)len)) > 0) {
		memcpy(whole + len, buf, (size_t)n);
		len += n;
	}
	ck_assert_int_eq(n, 0);
	whole[len] = '\0';
	ck_assert_ptr_nonnull(strstr(whole, "(none: no compressed page"));
	zr_dev_file_close(dev, g);
	zr_dev_file_close(dev, NULL);

	/* Write-only: no show. */
	ck_assert_int_eq(zr_dev_file_open(td_attr("reset"), &f), 0);
	ck_assert_int_eq(zr_dev_file_read(dev, f, buf, 10, 0), -EACCES);
	zr_dev_file_close(dev, f);
	zr_dev_destroy(dev);
}
END_TEST

/* Copies of piecewise readers stop at ZR_DEV_COPY_BUDGET: -ENOMEM. */
START_TEST(test_open_file_budget)
{
	struct zr_dev *dev = td_create(0, "1M");
	static char buf[ZR_DEV_SUMMARY_SIZE];
	enum { N = 2048 };
	static struct zr_dev_file *f[N];
	ssize_t n;
	int i, refused = 0;

	for (i = 0; i < N; i++) {
		ck_assert_int_eq(zr_dev_file_open(td_attr("summary"), &f[i]), 0);
		n = zr_dev_file_read(dev, f[i], buf, 1, 0);
		ck_assert(n == 1 || n == -ENOMEM);
		refused += n == -ENOMEM;
	}
	ck_assert_int_gt(refused, 0);
	for (i = 0; i < N; i++)
		zr_dev_file_close(dev, f[i]);
	/* The budget is given back. */
	ck_assert_int_eq(zr_dev_file_open(td_attr("summary"), &f[0]), 0);
	ck_assert_int_eq(zr_dev_file_read(dev, f[0], buf, 1, 0), 1);
	zr_dev_file_close(dev, f[0]);
	zr_dev_destroy(dev);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------ */

struct td_race {
	struct zr_dev *dev;
	atomic_bool stop;
};

static void *td_reader(void *arg)
{
	struct td_race *r = arg;
	char page[ZR_PAGE_SIZE];
	uint64_t off = 0;

	while (!atomic_load(&r->stop)) {
		ck_assert_int_ge(zr_dev_read(r->dev, page, sizeof(page), off),
				 0);
		ck_assert_int_ge(zr_dev_show(r->dev, td_attr("mm_stat"), page,
					     sizeof(page)), 0);
		off = (off + ZR_PAGE_SIZE) % TD_DISK;
	}
	return NULL;
}

/*
 * Replacements while requests run: each is 0 or -EBUSY, never a wait
 * behind I/O, never a torn store.
 */
START_TEST(test_replace_race)
{
	struct td_race r = { .dev = td_create(_i, "1M") };
	pthread_t t[2];
	int i, ret, done = 0;

	atomic_init(&r.stop, false);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, td_reader, &r), 0);
	for (i = 0; i < 50; i++) {
		ret = td_store(r.dev, i % 2 ? "reset" : "disksize",
			       i % 2 ? "1" : (i % 4 ? "1M" : "2M"));
		ck_assert(ret == 0 || ret == -EBUSY);
		done += ret == 0;
	}
	atomic_store(&r.stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_gt(done, 0);
	zr_dev_destroy(r.dev);
}
END_TEST

/* td_page - the content of page @idx in test_recompress_race. */
static void td_page(char *page, uint64_t idx)
{
	size_t j;

	for (j = 0; j < ZR_PAGE_SIZE; j++)
		page[j] = "recompress race page "[(j + idx) % 21];
}

/* Rewrites and reads pages of the first 256 KiB, checking each read. */
static void *td_rewriter(void *arg)
{
	struct td_race *r = arg;
	char page[ZR_PAGE_SIZE], want[ZR_PAGE_SIZE];
	uint64_t idx = 0;

	while (!atomic_load(&r->stop)) {
		td_page(want, idx);
		if (idx % 3 == 0)
			ck_assert_int_eq(zr_dev_write(r->dev, want, sizeof(want),
						      idx * ZR_PAGE_SIZE),
					 (ssize_t)sizeof(want));
		ck_assert_int_eq(zr_dev_read(r->dev, page, sizeof(page),
					     idx * ZR_PAGE_SIZE),
				 (ssize_t)sizeof(page));
		ck_assert(memcmp(page, want, sizeof(page)) == 0);
		idx = (idx + 7) % 64;
	}
	return NULL;
}

/*
 * recompress while pages are read and written: every read sees the
 * page's content, whichever algorithm holds it.
 */
START_TEST(test_recompress_race)
{
	struct td_race r = { .dev = td_create(_i, "1M") };
	char page[ZR_PAGE_SIZE], text[64];
	pthread_t t[2];
	uint64_t idx;
	int i;

	snprintf(text, sizeof(text), "algo=%s", td_secondary(_i));
	ck_assert_int_eq(td_store(r.dev, "recomp_algorithm", text), 0);
	for (idx = 0; idx < 64; idx++) {
		td_page(page, idx);
		ck_assert_int_eq(zr_dev_write(r.dev, page, sizeof(page),
					      idx * ZR_PAGE_SIZE),
				 (ssize_t)sizeof(page));
	}
	atomic_init(&r.stop, false);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, td_rewriter, &r),
				 0);
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(td_store(r.dev, "idle", "all"), 0);
		ck_assert_int_eq(td_store(r.dev, "recompress",
					  i % 2 ? "type=idle" : "\n"), 0);
		ck_assert_int_ge(zr_dev_show(r.dev, td_attr("debug_stat"),
					     page, sizeof(page)), 0);
	}
	atomic_store(&r.stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (idx = 0; idx < 64; idx++) {
		char want[ZR_PAGE_SIZE];

		td_page(want, idx);
		ck_assert_int_eq(zr_dev_read(r.dev, page, sizeof(page),
					     idx * ZR_PAGE_SIZE),
				 (ssize_t)sizeof(page));
		ck_assert(memcmp(page, want, sizeof(page)) == 0);
	}
	zr_dev_destroy(r.dev);
}
END_TEST

/*
 * An age written while a reset makes its new store holds for the new
 * store: the reset copied the configuration before, and took back only
 * mem_limit, so the write was acknowledged and then undone.
 */
struct td_reset {
	struct zr_dev *dev;
	atomic_int go;
	int ret;
};

static void *td_resetter(void *arg)
{
	struct td_reset *r = arg;

	atomic_store(&r->go, 1);
	r->ret = td_store(r->dev, "reset", "1");
	return NULL;
}

START_TEST(test_age_across_reset)
{
	struct zr_dev *dev = td_create(0, "64M");
	static const char *const attr[] = { "recompress_age",
					    "writeback_age" };
	char v[32];
	int i;

	for (i = 0; i < 400; i++) {
		struct td_reset r = { .dev = dev };
		const char *a = attr[i % 2];
		pthread_t t;

		atomic_init(&r.go, 0);
		ck_assert_int_eq(pthread_create(&t, NULL, td_resetter, &r), 0);
		while (!atomic_load(&r.go))
			;
		usleep((useconds_t)(i % 20) * 20);
		snprintf(v, sizeof(v), "%d", 1000 + i);
		ck_assert_int_eq(td_store(dev, a, v), 0);
		ck_assert_int_eq(pthread_join(t, NULL), 0);
		strcat(v, "\n");
		ck_assert_msg(!strcmp(td_show(dev, a), v),
			      "%s: wrote %s read %s (a reset ran meanwhile: %d)",
			      a, v, td_buf, r.ret);
	}
	zr_dev_destroy(dev);
}
END_TEST

/*
 * writeback_limit_enable turned on during a run: what the run took while
 * the limit was off came out of nothing, so nothing goes back.
 */
START_TEST(test_wb_limit_enabled_midrun)
{
	struct zr_wb_limit l;
	uint64_t b;
	bool counted;

	atomic_init(&l.pages, 0);
	atomic_init(&l.on, false);
	b = zr_wb_limit_take(&l, 2048, &counted);	/* a run, limit off */
	ck_assert_uint_eq(b, 2048);
	atomic_store(&l.pages, 10);		/* echo 10 > writeback_limit */
	atomic_store(&l.on, true);		/* echo 1 > ..._enable */
	zr_wb_limit_give(&l, b - 5, counted);	/* the run wrote 5 */
	ck_assert_uint_eq(atomic_load(&l.pages), 10);
	/* Taken from the limit: given back to it. */
	b = zr_wb_limit_take(&l, 4, &counted);
	ck_assert_uint_eq(b, 4);
	ck_assert_uint_eq(atomic_load(&l.pages), 6);
	zr_wb_limit_give(&l, 3, counted);
	ck_assert_uint_eq(atomic_load(&l.pages), 9);
}
END_TEST

Suite *zr_dev_suite(void)
{
	Suite *s = suite_create("zr_dev");
	TCase *tp = tcase_create("parsers");
	TCase *ta = tcase_create("attributes");
	TCase *tc = tcase_create("concurrency");
	int n = tu_nbackends();

	tcase_add_test(tp, test_parse_size);
	tcase_add_test(tp, test_parse_size_pe);
	tcase_add_test(tp, test_parse_numbers);
	tcase_add_test(tp, test_opts_defaults);
	tcase_add_test(tp, test_opts_good);
	tcase_add_test(tp, test_opts_messages);
	tcase_add_test(tp, test_opts_junk);
	tcase_add_test(tp, test_opts_help);
	tcase_add_test(tp, test_attr_table);
	tcase_add_test(tp, test_opts_backing);
	tcase_add_test(tp, test_opts_recomp);
	suite_add_tcase(s, tp);

	tcase_add_loop_test(ta, test_attr_access, 0, n);
	tcase_add_loop_test(ta, test_attr_disksize, 0, n);
	tcase_add_loop_test(ta, test_attr_comp_algorithm, 0, n);
	tcase_add_loop_test(ta, test_attr_algorithm_params, 0, n);
	tcase_add_loop_test(ta, test_attr_mem_limit, 0, n);
	tcase_add_loop_test(ta, test_attr_mem_used_max, 0, n);
	tcase_add_loop_test(ta, test_attr_mem_used_max_zero, 0, n);
	tcase_add_loop_test(ta, test_attr_compact_idle, 0, n);
	tcase_add_loop_test(ta, test_attr_idle_zero, 0, n);
	tcase_add_loop_test(ta, test_attr_reset, 0, n);
	tcase_add_loop_test(ta, test_attr_plus, 0, n);
	tcase_add_loop_test(ta, test_attr_busy, 0, n);
	tcase_add_loop_test(ta, test_attr_writeback, 0, n);
	tcase_add_loop_test(ta, test_attr_formats, 0, n);
	tcase_add_loop_test(ta, test_attr_summary, 0, n);
	tcase_add_loop_test(ta, test_attr_recomp_algorithm, 0, n);
	tcase_add_loop_test(ta, test_attr_recompress, 0, n);
	tcase_add_test(ta, test_attr_recompress_algo_prio);
	tcase_add_loop_test(ta, test_attr_incompressible, 0, n);
	tcase_add_loop_test(ta, test_io, 0, n);
	tcase_add_loop_test(ta, test_open_file, 0, n);
	tcase_add_test(ta, test_open_file_budget);
	tcase_add_test(ta, test_attr_backing_dev_long);
	suite_add_tcase(s, ta);

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_replace_race, 0, n);
	tcase_add_loop_test(tc, test_recompress_race, 0, n);
	tcase_add_test(tc, test_age_across_reset);
	tcase_add_test(tc, test_wb_limit_enabled_midrun);
	suite_add_tcase(s, tc);
	return s;
}
