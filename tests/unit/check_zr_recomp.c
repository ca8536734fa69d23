/*
 * Unit tests of recompression (zr_recompress() and the age policy in
 * store/zr_store.c): pages recompressed with a secondary algorithm read
 * back the same, in RAM and from a backing file; only smaller objects
 * are kept; each filter of zram's recompress holds; pages no secondary
 * algorithm shrinks are marked incompressible, and writeback's
 * incompressible takes them; a write goes back to the primary; the
 * policy runs on its own; and concurrent I/O loses nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compressors/zcomp.h"
#include "store/zb_file.h"
#include "store/zr_store.h"
#include "store/zr_store_i.h"
#include "store/zs_pool.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define RT_PAGE ZR_PAGE_SIZE
#define RT_PAGES 256
#define RT_DISK ((uint64_t)RT_PAGES * RT_PAGE)

/*
 * The kinds of page, by page number: text (lz4 compresses it, zstd
 * more), noise (random bytes: no algorithm shrinks it), same-filled,
 * and symbols (random bytes of a 16-letter alphabet: lz4 leaves it huge,
 * zstd's entropy coder takes it to about half a page).
 */
enum { RT_TEXT, RT_NOISE, RT_SAME, RT_SYMBOLS };

static int rt_kind(uint64_t idx)
{
	return (int)(idx % 4);
}

/* Pages of each kind (RT_PAGES is a multiple of 4). */
static uint64_t rt_count(int kind)
{
	(void)kind;
	return RT_PAGES / 4;
}

/* The content of page @idx, generation @gen. */
static void rt_page(uint64_t idx, unsigned gen, uint8_t *buf)
{
	uint64_t seed = (idx + 1) * 0x9e3779b97f4a7c15ULL + gen;
	size_t i;

	switch (rt_kind(idx)) {
	case RT_NOISE:
		tu_fill_random(buf, RT_PAGE, &seed);
		break;
	case RT_SAME:
		memset(buf, (int)(idx + gen) | 1, RT_PAGE);
		break;
	case RT_SYMBOLS:
		for (i = 0; i < RT_PAGE; i++)
			buf[i] = (uint8_t)('a' + (tu_rand(&seed) & 15));
		break;
	default:
		for (i = 0; i < RT_PAGE; i++)
			buf[i] = (uint8_t)("pages idle for long are "
					   "recompressed, "[(i * 7 + idx + gen)
							    % 38] ^
					   (i % 29 == 0 ? tu_rand(&seed) : 0));
	}
}

static char rt_dir[] = "/var/tmp/fusezram-rc.XXXXXX";
static char rt_path[sizeof(rt_dir) + 16];
static struct zb_file *rt_bd;
static struct zr_store *rt_st;
static uint64_t rt_limit;	/* mem_limit of the stores made next */

static void setup(void)
{
	memcpy(rt_dir, "/var/tmp/fusezram-rc.XXXXXX", sizeof(rt_dir));
	ck_assert_ptr_nonnull(mkdtemp(rt_dir));
	snprintf(rt_path, sizeof(rt_path), "%s/backing", rt_dir);
	rt_bd = NULL;
	rt_st = NULL;
	rt_limit = 0;
}

static void teardown(void)
{
	zr_store_destroy(rt_st);
	zb_close(rt_bd);
	unlink(rt_path);
	rmdir(rt_dir);
}

/*
 * rt_open - a store with lz4 as the primary and @sec1, @sec2 (NULL:
 * none) as the secondary algorithms of priority 1 and 2, the policy at
 * @age, and a backing file if @bd.
 */
static void rt_open(const char *sec1, const char *sec2, unsigned age,
		    bool bd)
{
	struct zr_config cfg = {
		.disksize = RT_DISK,
		.algorithm = "lz4",
		.level = ZCOMP_LEVEL_DEFAULT,
		.mem_limit = rt_limit,
		.recomp = { { sec1, ZCOMP_LEVEL_DEFAULT },
			    { sec2, ZCOMP_LEVEL_DEFAULT } },
		.recompress_age = age,
	};

	if (bd) {
		ck_assert_int_eq(zb_open(rt_path, 0, &rt_bd), 0);
		cfg.backing = rt_bd;
	}
	ck_assert_int_eq(zr_store_create(&cfg, &rt_st), 0);
}

/* Write generation @gen of every page in [@first, @last). */
static void rt_write(uint64_t first, uint64_t last, unsigned gen)
{
	uint8_t buf[RT_PAGE];
	uint64_t i;

	for (i = first; i < last; i++) {
		rt_page(i, gen, buf);
		ck_assert_int_eq(zr_write(rt_st, buf, RT_PAGE, i * RT_PAGE),
				 RT_PAGE);
	}
}

/* Every page of [@first, @last) reads back as generation @gen. */
static void rt_check(uint64_t first, uint64_t last, unsigned gen)
{
	uint8_t want[RT_PAGE], got[RT_PAGE];
	uint64_t i;

	for (i = first; i < last; i++) {
		rt_page(i, gen, want);
		ck_assert_int_eq(zr_read(rt_st, got, RT_PAGE, i * RT_PAGE),
				 RT_PAGE);
		ck_assert_msg(memcmp(want, got, RT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
}

static struct zr_stats rt_stats(void)
{
	struct zr_stats s;

	zr_get_stats(rt_st, &s);
	return s;
}

/* zr_recompress() of the whole disk. */
static int64_t rt_recompress(uint32_t want, size_t threshold, uint64_t max,
			     unsigned prio)
{
	return zr_recompress(rt_st, want, threshold, 0, RT_PAGES, max, prio);
}

/*
 * Idle pages recompressed with zstd: text and symbol pages shrink (the
 * symbol pages stop being huge), noise pages are marked incompressible,
 * same-filled pages are passed; mm_stat follows, the pages keep their
 * idle mark, every byte reads back, and a second call finds nothing.
 */
START_TEST(test_recomp_idle)
{
	uint64_t shrunk = rt_count(RT_TEXT) + rt_count(RT_SYMBOLS);
	struct zr_stats a, b;

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	ck_assert_uint_eq(zr_mark_idle(rt_st, 0), RT_PAGES);
	a = rt_stats();
	ck_assert_uint_eq(a.huge_pages,
			  rt_count(RT_NOISE) + rt_count(RT_SYMBOLS));
	ck_assert_uint_eq(a.algo_pages[0], rt_count(RT_TEXT));
	ck_assert_int_eq(rt_recompress(ZR_WB_IDLE, 0, UINT64_MAX, 0),
			 (int64_t)shrunk);
	b = rt_stats();
	ck_assert_uint_eq(b.algo_pages[0], 0);
	ck_assert_uint_eq(b.algo_pages[1], shrunk);
	ck_assert_uint_eq(b.recompressed, shrunk);
	ck_assert_uint_eq(b.huge_pages, rt_count(RT_NOISE));
	ck_assert_uint_eq(b.incompressible, rt_count(RT_NOISE));
	ck_assert_uint_eq(b.pages_stored, RT_PAGES);
	ck_assert_uint_eq(b.idle_pages, RT_PAGES);
	ck_assert_uint_eq(b.recomp_saved,
			  a.compr_data_size - b.compr_data_size);
	ck_assert_uint_gt(b.recomp_saved,
			  rt_count(RT_SYMBOLS) * RT_PAGE / 3);
	ck_assert_uint_eq(b.recomp_aged, 0);
	/* Nothing is left to try: all at the last priority, or marked. */
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0), 0);
	ck_assert_uint_eq(rt_stats().recompressed, shrunk);
	rt_check(0, RT_PAGES, 0);
	/* The reads touched every page: the marks went, the objects stay. */
	ck_assert_uint_eq(rt_stats().idle_pages, 0);
	ck_assert_uint_eq(rt_stats().algo_pages[1], shrunk);
}
END_TEST

/*
 * Recompressing every other text page leaves holes all over their
 * class's spans: zr_recompress() compacts, so the memory goes back.
 */
START_TEST(test_recomp_compacts)
{
	uint8_t buf[RT_PAGE];
	struct zr_stats a, b;
	uint64_t i;

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	ck_assert_uint_eq(zr_mark_idle(rt_st, 0), RT_PAGES);
	for (i = 0; i < RT_PAGES; i += 8)	/* text pages, touched */
		ck_assert_int_eq(zr_read(rt_st, buf, RT_PAGE, i * RT_PAGE),
				 RT_PAGE);
	a = rt_stats();
	ck_assert_int_eq(rt_recompress(ZR_WB_IDLE, 0, UINT64_MAX, 0),
			 (int64_t)(rt_count(RT_TEXT) / 2 +
				   rt_count(RT_SYMBOLS)));
	b = rt_stats();
	ck_assert_uint_gt(b.pages_compacted, a.pages_compacted);
	ck_assert_uint_lt(b.mem_used_total, a.mem_used_total);
	rt_check(0, RT_PAGES, 0);
}
END_TEST

/*
 * A write stores the primary again, a whole page or a part of one; the
 * incompressible mark goes with the old object.
 */
START_TEST(test_recomp_rewrite)
{
	uint8_t buf[RT_PAGE], part[100];
	uint64_t shrunk = rt_count(RT_TEXT) + rt_count(RT_SYMBOLS);

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0),
			 (int64_t)shrunk);
	rt_write(0, RT_PAGES / 2, 1);
	ck_assert_uint_eq(rt_stats().algo_pages[1],
			  shrunk - shrunk / 2);
	ck_assert_uint_eq(rt_stats().incompressible,
			  rt_count(RT_NOISE) - rt_count(RT_NOISE) / 2);
	rt_check(0, RT_PAGES / 2, 1);
	rt_check(RT_PAGES / 2, RT_PAGES, 0);
	/* A partial write into a recompressed text page. */
	memset(part, 'x', sizeof(part));
	ck_assert_int_eq(zr_write(rt_st, part, sizeof(part),
				  (RT_PAGES - 4) * (uint64_t)RT_PAGE + 1000),
			 sizeof(part));
	rt_page(RT_PAGES - 4, 0, buf);
	memcpy(buf + 1000, part, sizeof(part));
	{
		uint8_t got[RT_PAGE];

		ck_assert_int_eq(zr_read(rt_st, got, RT_PAGE,
					 (RT_PAGES - 4) * (uint64_t)RT_PAGE),
				 RT_PAGE);
		ck_assert_mem_eq(got, buf, RT_PAGE);
	}
	ck_assert_uint_eq(rt_stats().algo_pages[1],
			  shrunk - shrunk / 2 - 1);
}
END_TEST

/* zram's filters: type, threshold, max_pages; and what is refused. */
START_TEST(test_recomp_filters)
{
	struct zr_stats s;

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	/* Nothing is idle yet. */
	ck_assert_int_eq(rt_recompress(ZR_WB_IDLE, 0, UINT64_MAX, 0), 0);
	ck_assert_uint_eq(rt_stats().incompressible, 0);
	/* huge: the symbol pages shrink, the noise pages are marked. */
	ck_assert_int_eq(rt_recompress(ZR_WB_HUGE, 0, UINT64_MAX, 0),
			 (int64_t)rt_count(RT_SYMBOLS));
	s = rt_stats();
	ck_assert_uint_eq(s.algo_pages[0], rt_count(RT_TEXT));
	ck_assert_uint_eq(s.incompressible, rt_count(RT_NOISE));
	/* A threshold above every text page's object: none is tried. */
	ck_assert_int_eq(rt_recompress(0, RT_PAGE - 1, UINT64_MAX, 0), 0);
	ck_assert_uint_eq(rt_stats().algo_pages[0], rt_count(RT_TEXT));
	/* max_pages counts the pages tried. */
	ck_assert_int_eq(rt_recompress(0, 0, 3, 0), 3);
	ck_assert_uint_eq(rt_stats().algo_pages[0], rt_count(RT_TEXT) - 3);
	rt_check(0, RT_PAGES, 0);
	/* Refused, and nothing changed. */
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 2), -EINVAL);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, ZR_RECOMP_MAX + 1),
			 -EINVAL);
	ck_assert_int_eq(rt_recompress(ZR_WB_INCOMPRESSIBLE, 0, UINT64_MAX,
				       0), -EINVAL);
	ck_assert_int_eq(rt_recompress(0x1, 0, UINT64_MAX, 0), -EINVAL);
	ck_assert_uint_eq(rt_stats().algo_pages[0], rt_count(RT_TEXT) - 3);
	zr_store_destroy(rt_st);
	rt_st = NULL;
	/* Without a secondary algorithm there is nothing to use. */
	rt_open(NULL, NULL, 0, false);
	rt_write(0, 8, 0);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0), -EINVAL);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 1), -EINVAL);
	ck_assert_ptr_null(zr_recomp_algorithm(rt_st, 1, &(int){ 0 }));
}
END_TEST

/*
 * Two secondary algorithms: a page recompressed at priority 2 is not
 * taken by priority 1; priority 0 tries them in order; only the last
 * one's failure marks a page incompressible.
 */
START_TEST(test_recomp_priorities)
{
	int level = 0;

	rt_open("lz4hc", "zstd", 0, false);
	ck_assert_str_eq(zr_recomp_algorithm(rt_st, 1, &level), "lz4hc");
	ck_assert_int_eq(level, 9);
	ck_assert_str_eq(zr_recomp_algorithm(rt_st, 2, &level), "zstd");
	ck_assert_int_eq(level, 3);
	ck_assert_ptr_null(zr_recomp_algorithm(rt_st, 3, &level));
	ck_assert_ptr_null(zr_recomp_algorithm(rt_st, 0, &level));
	rt_write(0, RT_PAGES, 0);
	/* lz4hc shrinks no symbol page below huge, nor any noise page. */
	ck_assert_int_eq(rt_recompress(ZR_WB_HUGE, 0, UINT64_MAX, 1), 0);
	ck_assert_uint_eq(rt_stats().incompressible, 0);
	ck_assert_int_eq(rt_recompress(ZR_WB_HUGE, 0, UINT64_MAX, 2),
			 (int64_t)rt_count(RT_SYMBOLS));
	ck_assert_uint_eq(rt_stats().algo_pages[2], rt_count(RT_SYMBOLS));
	ck_assert_uint_eq(rt_stats().incompressible, rt_count(RT_NOISE));
	/* Priority 2 pages are past priority 1. */
	ck_assert_int_eq(rt_recompress(ZR_WB_HUGE, 0, UINT64_MAX, 1), 0);
	/* Text: lz4hc first (priority 0), then zstd takes them further. */
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0),
			 (int64_t)rt_count(RT_TEXT));
	ck_assert_uint_eq(rt_stats().algo_pages[0], 0);
	ck_assert_uint_eq(rt_stats().algo_pages[1], rt_count(RT_TEXT));
	ck_assert_uint_eq(rt_stats().algo_pages[2], rt_count(RT_SYMBOLS));
	rt_check(0, RT_PAGES, 0);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 2),
			 (int64_t)rt_count(RT_TEXT));
	ck_assert_uint_eq(rt_stats().algo_pages[0], 0);
	ck_assert_uint_eq(rt_stats().algo_pages[1], 0);
	ck_assert_uint_eq(rt_stats().algo_pages[2],
			  rt_count(RT_TEXT) + rt_count(RT_SYMBOLS));
	rt_check(0, RT_PAGES, 0);
}
END_TEST

/*
 * Recompressed pages written back to the file read back the same (the
 * file's objects keep their algorithm); writeback's incompressible takes
 * the marked pages and no others.
 */
START_TEST(test_recomp_writeback)
{
	uint64_t shrunk = rt_count(RT_TEXT) + rt_count(RT_SYMBOLS);
	struct zr_stats s;

	rt_open("zstd", NULL, 0, true);
	rt_write(0, RT_PAGES, 0);
	/* Nothing is marked yet, though the noise pages are huge. */
	ck_assert_int_eq(zr_writeback(rt_st, ZR_WB_INCOMPRESSIBLE, 0,
				      RT_PAGES, UINT64_MAX), 0);
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0),
			 (int64_t)shrunk);
	ck_assert_int_eq(zr_writeback(rt_st, ZR_WB_INCOMPRESSIBLE, 0,
				      RT_PAGES, UINT64_MAX),
			 (int64_t)rt_count(RT_NOISE));
	s = rt_stats();
	ck_assert_uint_eq(s.incompressible, 0);
	ck_assert_uint_eq(s.bd_count, rt_count(RT_NOISE));
	ck_assert_int_eq(zr_writeback(rt_st, 0, 0, RT_PAGES, UINT64_MAX),
			 (int64_t)shrunk);
	s = rt_stats();
	ck_assert_uint_eq(s.algo_pages[1], 0);
	ck_assert_uint_eq(s.bd_count, shrunk + rt_count(RT_NOISE));
	rt_check(0, RT_PAGES, 0);
	/* Nothing in the file is recompressed again. */
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0), 0);
}
END_TEST

/*
 * With a secondary algorithm, pages stored with the primary go to the
 * file in it when it shrinks them (noise pages stay raw): the file
 * holds fewer bytes than RAM did, and every page reads back.
 */
START_TEST(test_recomp_wb_denser)
{
	uint64_t raw = rt_count(RT_NOISE) * RT_PAGE;
	struct zr_stats a, b;

	rt_open("zstd", NULL, 0, true);
	rt_write(0, RT_PAGES, 0);
	a = rt_stats();
	ck_assert_int_eq(zr_writeback(rt_st, 0, 0, RT_PAGES, UINT64_MAX),
			 (int64_t)(RT_PAGES - rt_count(RT_SAME)));
	b = rt_stats();
	ck_assert_uint_eq(b.compr_data_size, 0);
	/* zstd takes the symbol pages to about half, text a good part. */
	ck_assert_uint_lt(b.bd_bytes - raw, (a.compr_data_size - raw) * 3 / 4);
	rt_check(0, RT_PAGES, 0);
	/* Without a secondary algorithm the bytes move as they are. */
	zr_store_destroy(rt_st);
	zb_close(rt_bd);
	rt_st = NULL;
	rt_bd = NULL;
	rt_open(NULL, NULL, 0, true);
	rt_write(0, RT_PAGES, 0);
	a = rt_stats();
	ck_assert_int_eq(zr_writeback(rt_st, 0, 0, RT_PAGES, UINT64_MAX),
			 (int64_t)(RT_PAGES - rt_count(RT_SAME)));
	ck_assert_uint_eq(rt_stats().bd_bytes, a.compr_data_size);
	rt_check(0, RT_PAGES, 0);
}
END_TEST

/*
 * rt_corrupt - replace page @idx's compressed object (in the pool, not
 * raw) with garbage of its length, keeping its algorithm's bits.
 */
static void rt_corrupt(uint64_t idx, uint64_t seed)
{
	struct zr_slot *slot = zr_slot_of(rt_st, idx);
	uint8_t junk[RT_PAGE];
	uint64_t h, obj;
	uint32_t len;

	zr_slot_lock_write(slot);
	len = zr_slot_meta(slot) & ZR_META_SIZE_MASK;
	ck_assert(len > 0 &&
		  !(zr_slot_meta(slot) & (ZR_META_SAME | ZR_META_HUGE)));
	obj = slot->handle & ZR_H_OBJ_MASK;
	zs_load(zr_pool(rt_st), obj, junk, len);
	tu_fill_random(junk + len / 4, len - len / 4, &seed);
	ck_assert_int_eq(zs_store(zr_pool(rt_st), junk, len, &h), 0);
	zs_free(zr_pool(rt_st), obj, len);
	slot->handle = (slot->handle & ~ZR_H_OBJ_MASK) | h;
	zr_slot_unlock_write(slot);
}

/*
 * Writeback with a secondary algorithm decompresses a page to store it
 * densest; a page whose object does not decompress must not stop the
 * writeback of the others (it stopped it with -EIO, and the age
 * policy's sweep at that page, every sweep): it goes to the file as
 * it is, still -EIO when read, and counts in failed_reads.
 */
START_TEST(test_recomp_wb_corrupt)
{
	uint8_t buf[RT_PAGE];
	struct zr_stats a, b;

	rt_open("zstd", NULL, 0, true);
	rt_write(0, RT_PAGES, 0);
	rt_corrupt(0, 99);		/* page 0: text, compressed by lz4 */
	ck_assert_int_eq(zr_read(rt_st, buf, RT_PAGE, 0), -EIO);
	a = rt_stats();
	ck_assert_uint_eq(a.failed_reads, 1);
	ck_assert_int_eq(zr_writeback(rt_st, 0, 0, RT_PAGES, UINT64_MAX),
			 (int64_t)(RT_PAGES - rt_count(RT_SAME)));
	b = rt_stats();
	ck_assert_uint_eq(b.failed_reads, 2);
	ck_assert_uint_eq(b.compr_data_size, 0);
	ck_assert_uint_eq(b.bd_count, RT_PAGES - rt_count(RT_SAME));
	ck_assert_int_eq(zr_read(rt_st, buf, RT_PAGE, 0), -EIO);
	rt_check(1, RT_PAGES, 0);
}
END_TEST

/*
 * A write past mem_limit spills: a spill on the store's own path moves
 * its pages as they are, in the primary, and one ahead of the stores,
 * by the background thread, in the first secondary where that is
 * smaller; so RAM and file together hold at most what lz4 alone
 * stores, and exactly that when no spill went ahead.
 */
START_TEST(test_recomp_spill)
{
	uint64_t lz4;
	struct zr_stats s;

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	lz4 = rt_stats().compr_data_size;
	zr_store_destroy(rt_st);
	rt_st = NULL;
	rt_limit = 256 << 10;
	rt_open("zstd", NULL, 0, true);
	/* This thread may compress with zstd now, as one that wrote
	 * control/recompress may: its spills still must not. */
	ck_assert_int_eq(rt_recompress(0, 0, UINT64_MAX, 0), 0);
	rt_write(0, RT_PAGES, 0);
	tu_settle(rt_st, rt_limit);
	s = rt_stats();
	ck_assert_uint_gt(s.bd_spills, 0);
	ck_assert_uint_eq(s.bd_spills, s.bd_writes);
	if (s.bd_ahead)
		ck_assert_uint_le(s.compr_data_size + s.bd_bytes, lz4);
	else
		ck_assert_uint_eq(s.compr_data_size + s.bd_bytes, lz4);
	rt_check(0, RT_PAGES, 0);
}
END_TEST

/*
 * Spilling ahead stores densest: pages written just past 15/16 of
 * mem_limit (never to it, so no store spills) go to the file in zstd,
 * and RAM and file together hold less than lz4 stores of them.
 */
START_TEST(test_recomp_spill_ahead)
{
	uint64_t lz4, n, high;
	struct zr_stats s;

	rt_limit = 256 << 10;
	high = rt_limit - rt_limit / ZR_AHEAD_HIGH_DIV;
	rt_open("zstd", NULL, 0, true);
	for (n = 0; n < RT_PAGES && rt_stats().mem_used_total <= high &&
	     !rt_stats().bd_ahead; n++)
		rt_write(n, n + 1, 0);
	ck_assert_uint_lt(n, RT_PAGES);
	tu_settle(rt_st, rt_limit);
	s = rt_stats();
	ck_assert_uint_gt(s.bd_ahead, 0);
	ck_assert_uint_eq(s.bd_ahead, s.bd_spills);
	ck_assert_uint_eq(s.bd_spills, s.bd_writes);
	rt_check(0, n, 0);
	/* The same pages in lz4 alone, without a limit. */
	zr_store_destroy(rt_st);
	zb_close(rt_bd);
	rt_st = NULL;
	rt_bd = NULL;
	rt_limit = 0;
	rt_open(NULL, NULL, 0, false);
	rt_write(0, n, 0);
	lz4 = rt_stats().compr_data_size;
	ck_assert_uint_lt(s.compr_data_size + s.bd_bytes, lz4);
}
END_TEST

/* rt_wait - wait (10 s at most) until @n pages were recompressed by age. */
static bool rt_wait_aged(uint64_t n)
{
	int i;

	for (i = 0; i < 1000 && rt_stats().recomp_aged < n; i++)
		usleep(10000);
	return rt_stats().recomp_aged >= n;
}

/*
 * The policy: pages left alone for recompress_age are recompressed on
 * their own; 0 turns it off; without a secondary algorithm it is off.
 */
START_TEST(test_recomp_age)
{
	uint64_t shrunk = rt_count(RT_TEXT) + rt_count(RT_SYMBOLS);

	rt_open("zstd", NULL, 1, false);
	ck_assert_uint_eq(rt_stats().rc_age, 1);
	rt_write(0, RT_PAGES, 0);
	ck_assert_msg(rt_wait_aged(shrunk), "%llu of %llu recompressed",
		      (unsigned long long)rt_stats().recomp_aged,
		      (unsigned long long)shrunk);
	ck_assert_uint_eq(rt_stats().algo_pages[1], shrunk);
	ck_assert_uint_eq(rt_stats().incompressible, rt_count(RT_NOISE));
	rt_check(0, RT_PAGES, 0);
	/* Off: rewritten pages stay with the primary however old. */
	zr_set_recompress_age(rt_st, 0);
	ck_assert_uint_eq(rt_stats().rc_age, 0);
	rt_write(0, RT_PAGES, 1);
	usleep(2500000);
	ck_assert_uint_eq(rt_stats().algo_pages[1], 0);
	ck_assert_uint_eq(rt_stats().recomp_aged, shrunk);
	rt_check(0, RT_PAGES, 1);
	zr_store_destroy(rt_st);
	rt_st = NULL;
	rt_open(NULL, NULL, 1, false);
	rt_write(0, RT_PAGES, 0);
	usleep(2500000);
	ck_assert_uint_eq(rt_stats().recomp_aged, 0);
	ck_assert_uint_eq(rt_stats().algo_pages[0], rt_count(RT_TEXT));
}
END_TEST

/*
 * Concurrent I/O during recompression: two threads each rewrite and
 * check their own half of the pages while a third recompresses and
 * marks idle all the time; every read sees the last write, whole.
 */
#define RT_RACE_ROUNDS 40

static _Atomic bool rt_stop;
static const char *const rt_errors[] = {
	NULL, "write failed", "a page read back wrong", "recompress failed",
};

static void *rt_owner(void *arg)
{
	uint64_t half = (uint64_t)(uintptr_t)arg, i, first, last;
	uint8_t want[RT_PAGE], got[RT_PAGE];
	unsigned gen;

	first = half * (RT_PAGES / 2);
	last = first + RT_PAGES / 2;
	for (gen = 1; gen <= RT_RACE_ROUNDS; gen++) {
		for (i = first; i < last; i++) {
			rt_page(i, gen, want);
			if (zr_write(rt_st, want, RT_PAGE, i * RT_PAGE) !=
			    RT_PAGE)
				return (void *)1;
		}
		for (i = first; i < last; i++) {
			rt_page(i, gen, want);
			if (zr_read(rt_st, got, RT_PAGE, i * RT_PAGE) !=
			    RT_PAGE || memcmp(want, got, RT_PAGE) != 0)
				return (void *)2;
		}
	}
	return NULL;
}

static void *rt_recompressor(void *arg)
{
	(void)arg;
	while (!atomic_load(&rt_stop)) {
		zr_mark_idle(rt_st, 0);
		if (rt_recompress(0, 0, UINT64_MAX, 0) < 0)
			return (void *)3;
	}
	return NULL;
}

START_TEST(test_recomp_race)
{
	pthread_t owners[2], rc;
	void *ret;
	int i;

	rt_open("zstd", NULL, 0, false);
	rt_write(0, RT_PAGES, 0);
	atomic_store(&rt_stop, false);
	ck_assert_int_eq(pthread_create(&rc, NULL, rt_recompressor, NULL), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&owners[i], NULL, rt_owner,
						(void *)(uintptr_t)i), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(owners[i], &ret), 0);
		ck_assert_msg(ret == NULL, "%s", rt_errors[(uintptr_t)ret]);
	}
	atomic_store(&rt_stop, true);
	ck_assert_int_eq(pthread_join(rc, &ret), 0);
	ck_assert_msg(ret == NULL, "%s", rt_errors[(uintptr_t)ret]);
	ck_assert_uint_gt(rt_stats().recompressed, 0);
	rt_check(0, RT_PAGES, RT_RACE_ROUNDS);
}
END_TEST

Suite *zr_recomp_suite(void)
{
	Suite *s = suite_create("zr_recomp");
	TCase *tc = tcase_create("recompress");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_recomp_idle);
	tcase_add_test(tc, test_recomp_compacts);
	tcase_add_test(tc, test_recomp_rewrite);
	tcase_add_test(tc, test_recomp_filters);
	tcase_add_test(tc, test_recomp_priorities);
	tcase_add_test(tc, test_recomp_writeback);
	tcase_add_test(tc, test_recomp_wb_denser);
	tcase_add_test(tc, test_recomp_wb_corrupt);
	tcase_add_test(tc, test_recomp_spill);
	tcase_add_test(tc, test_recomp_spill_ahead);
	tcase_add_test(tc, test_recomp_age);
	tcase_add_test(tc, test_recomp_race);
	suite_add_tcase(s, tc);
	return s;
}
