/*
 * Unit tests of writeback (zr_writeback() in store/zr_store.c): pages
 * moved to a backing file (store/zb_file.c) on the real file system read
 * back the same, leave mm_stat, come back out of the file when
 * overwritten, discarded or destroyed, and stop cleanly when the file is
 * full or its data is corrupt.  Each loop test runs once per compressor.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define WT_PAGE ZR_PAGE_SIZE
#define WT_PAGES 512
#define WT_DISK ((uint64_t)WT_PAGES * WT_PAGE)

/* The three kinds of page the tests write, by page number. */
enum { WT_TEXT, WT_RANDOM, WT_SAME };

static char wt_dir[] = "/var/tmp/fusezram-wb.XXXXXX";
static char wt_path[sizeof(wt_dir) + 16];
static struct zb_file *wt_bd;
static struct zr_store *wt_st;

static int wt_kind(uint64_t idx)
{
	return idx % 5 == 1 ? WT_RANDOM : idx % 5 == 3 ? WT_SAME : WT_TEXT;
}

/* The content of page @idx, generation @gen. */
static void wt_page(uint64_t idx, unsigned gen, uint8_t *buf)
{
	uint64_t seed = (idx + 1) * 0x9e3779b97f4a7c15ULL + gen;
	size_t i;

	switch (wt_kind(idx)) {
	case WT_RANDOM:
		tu_fill_random(buf, WT_PAGE, &seed);
		break;
	case WT_SAME:
		memset(buf, (int)(idx + gen) | 1, WT_PAGE);
		break;
	default:
		for (i = 0; i < WT_PAGE; i++)
			buf[i] = (uint8_t)("fusezram writes back "[
				(i + idx + gen) % 21] ^ (i % 61 == 0 ?
				tu_rand(&seed) : 0));
	}
}

static uint64_t wt_disk;	/* disksize of the stores made next */
static uint64_t wt_limit;	/* their mem_limit */
static unsigned wt_age;		/* their writeback_age */
static struct zr_wb_limit wt_wbl;	/* their writeback_limit */

static void wt_open_store(int backend, struct zb_file *bd)
{
	const struct zcomp_backend *const *be = zcomp_backends();
	struct zr_config cfg = {
		.disksize = wt_disk,
		.algorithm = be[backend]->name,
		.level = ZCOMP_LEVEL_DEFAULT,
		.mem_limit = wt_limit,
		.backing = bd,
		.writeback_age = wt_age,
		.wb_limit = &wt_wbl,
	};

	ck_assert_int_eq(zr_store_create(&cfg, &wt_st), 0);
}

static void setup(void)
{
	memcpy(wt_dir, "/var/tmp/fusezram-wb.XXXXXX", sizeof(wt_dir));
	ck_assert_ptr_nonnull(mkdtemp(wt_dir));
	snprintf(wt_path, sizeof(wt_path), "%s/backing", wt_dir);
	wt_bd = NULL;
	wt_st = NULL;
	wt_disk = WT_DISK;
	wt_limit = 0;
	wt_age = 0;
	atomic_store(&wt_wbl.pages, 0);
	atomic_store(&wt_wbl.on, false);
}

static void teardown(void)
{
	zr_store_destroy(wt_st);
	zb_close(wt_bd);
	unlink(wt_path);
	rmdir(wt_dir);
}

/* Write generation @gen of every page in [@first, @last). */
static void wt_write(uint64_t first, uint64_t last, unsigned gen)
{
	uint8_t buf[WT_PAGE];
	uint64_t i;

	for (i = first; i < last; i++) {
		wt_page(i, gen, buf);
		ck_assert_int_eq(zr_write(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
	}
}

/* Every page of [@first, @last) reads back as generation @gen. */
static void wt_check(uint64_t first, uint64_t last, unsigned gen)
{
	uint8_t want[WT_PAGE], got[WT_PAGE];
	uint64_t i;

	for (i = first; i < last; i++) {
		wt_page(i, gen, want);
		ck_assert_int_eq(zr_read(wt_st, got, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
		ck_assert_msg(memcmp(want, got, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
}

static struct zr_stats wt_stats(void)
{
	struct zr_stats s;

	zr_get_stats(wt_st, &s);
	return s;
}

static struct zb_stats wt_bd_stats(void)
{
	struct zb_stats s;

	zb_get_stats(wt_bd, &s);
	return s;
}

/* The pages of [0, @n) that are not same-filled. */
static uint64_t wt_objects(uint64_t n)
{
	uint64_t i, c = 0;

	for (i = 0; i < n; i++)
		c += wt_kind(i) != WT_SAME;
	return c;
}

START_TEST(test_writeback_idle)
{
	struct zr_stats before, after;
	uint64_t objs = wt_objects(WT_PAGES);

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_PAGES, 0);
	before = wt_stats();
	/* Nothing is idle yet. */
	ck_assert_int_eq(zr_writeback(wt_st, ZR_WB_IDLE, 0, WT_PAGES,
				      UINT64_MAX), 0);
	ck_assert_uint_eq(zr_mark_idle(wt_st, 0), WT_PAGES);
	ck_assert_int_eq(zr_writeback(wt_st, ZR_WB_IDLE, 0, WT_PAGES,
				      UINT64_MAX), (int64_t)objs);
	after = wt_stats();
	/* mm_stat is of RAM: only the same-filled pages are left there. */
	ck_assert_uint_eq(after.pages_stored, WT_PAGES - objs);
	ck_assert_uint_eq(after.compr_data_size, 0);
	ck_assert_uint_eq(after.huge_pages, 0);
	ck_assert_uint_eq(after.bd_count, objs);
	ck_assert_uint_eq(after.bd_writes, objs);
	ck_assert_uint_eq(after.bd_bytes, before.compr_data_size);
	ck_assert_uint_eq(wt_bd_stats().objs, objs);
	ck_assert_uint_eq(wt_bd_stats().bytes_stored, before.compr_data_size);
	/* Moved pages lost their IDLE mark; same-filled ones kept theirs. */
	ck_assert_uint_eq(after.idle_pages, WT_PAGES - objs);
	ck_assert_uint_lt(zr_compact(wt_st) + after.mem_used_total, UINT64_MAX);
	ck_assert_uint_lt(wt_stats().mem_used_total, before.mem_used_total / 8);
	/* Read from the file, and they stay there. */
	wt_check(0, WT_PAGES, 0);
	ck_assert_uint_eq(wt_stats().bd_reads, objs);
	ck_assert_uint_eq(wt_stats().bd_count, objs);
	/* A second pass finds nothing more to move (reads cleared marks). */
	ck_assert_uint_eq(zr_mark_idle(wt_st, 0), WT_PAGES);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, WT_PAGES, UINT64_MAX), 0);
}
END_TEST

START_TEST(test_writeback_types)
{
	struct zr_stats s;
	uint64_t i, huge = 0, huge_idle = 0;

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_PAGES, 0);
	for (i = 0; i < WT_PAGES; i++)
		huge += wt_kind(i) == WT_RANDOM;
	ck_assert_uint_eq(wt_stats().huge_pages, huge);
	/* Idle marks on the first half only: huge_idle takes those. */
	ck_assert_uint_eq(zr_mark_idle(wt_st, 0), WT_PAGES);
	wt_check(WT_PAGES / 2, WT_PAGES, 0);	/* reads clear the mark */
	for (i = 0; i < WT_PAGES / 2; i++)
		huge_idle += wt_kind(i) == WT_RANDOM;
	ck_assert_int_eq(zr_writeback(wt_st, ZR_WB_HUGE | ZR_WB_IDLE, 0,
				      WT_PAGES, UINT64_MAX),
			 (int64_t)huge_idle);
	ck_assert_int_eq(zr_writeback(wt_st, ZR_WB_HUGE, 0, WT_PAGES,
				      UINT64_MAX), (int64_t)(huge - huge_idle));
	s = wt_stats();
	ck_assert_uint_eq(s.huge_pages, 0);
	ck_assert_uint_eq(s.bd_count, huge);
	ck_assert_uint_eq(s.bd_bytes, huge * WT_PAGE);
	/* page_index= and page_indexes=: any page, one range, a budget. */
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, 1, UINT64_MAX), 1);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 10, 20, 3), 3);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 10, 20, UINT64_MAX),
			 (int64_t)(wt_objects(20) - wt_objects(10) - 3 -
				   2 /* huge 11, 16 */));
	ck_assert_int_eq(zr_writeback(wt_st, 0x1, 0, WT_PAGES, 1), -EINVAL);
	wt_check(0, WT_PAGES, 0);
}
END_TEST

START_TEST(test_writeback_rewrite)
{
	uint8_t buf[WT_PAGE], want[WT_PAGE];
	uint64_t objs = wt_objects(WT_PAGES);

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_PAGES, 0);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, WT_PAGES, UINT64_MAX),
			 (int64_t)objs);
	/* Overwrite the first half: their objects leave the file. */
	wt_write(0, WT_PAGES / 2, 1);
	ck_assert_uint_eq(wt_stats().bd_count,
			  objs - wt_objects(WT_PAGES / 2));
	/* A partial write of a page in the file: read, modified, stored. */
	wt_page(WT_PAGES - 5, 0, want);
	memset(want + 100, 0xab, 50);
	memset(buf, 0xab, 50);
	ck_assert_int_eq(zr_write(wt_st, buf, 50,
				  (WT_PAGES - 5) * WT_PAGE + 100), 50);
	ck_assert_int_eq(zr_read(wt_st, buf, WT_PAGE,
				 (WT_PAGES - 5) * WT_PAGE), WT_PAGE);
	ck_assert(memcmp(buf, want, WT_PAGE) == 0);
	wt_check(0, WT_PAGES / 2, 1);
	wt_check(WT_PAGES / 2, WT_PAGES - 5, 0);
	/* Discard everything: the file holds nothing. */
	ck_assert_int_eq(zr_discard(wt_st, 0, WT_DISK), 0);
	ck_assert_uint_eq(wt_stats().bd_count, 0);
	ck_assert_uint_eq(wt_stats().bd_bytes, 0);
	ck_assert_uint_eq(wt_bd_stats().objs, 0);
	ck_assert_uint_eq(wt_stats().pages_stored, 0);
}
END_TEST

START_TEST(test_writeback_destroy)
{
	uint64_t objs = wt_objects(WT_PAGES);

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_PAGES, 0);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, WT_PAGES, UINT64_MAX),
			 (int64_t)objs);
	/* A reset replaces the store and keeps the file: none of it left. */
	zr_store_destroy(wt_st);
	wt_st = NULL;
	ck_assert_uint_eq(wt_bd_stats().objs, 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, 8, 2);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, 8, UINT64_MAX),
			 (int64_t)wt_objects(8));
	wt_check(0, 8, 2);
}
END_TEST

START_TEST(test_writeback_no_file)
{
	wt_open_store(_i, NULL);
	wt_write(0, 4, 0);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, WT_PAGES, UINT64_MAX),
			 -ENODEV);
	wt_check(0, 4, 0);
}
END_TEST

START_TEST(test_writeback_full)
{
	/* Random pages: 4 KiB each in the file, which holds two segments. */
	uint8_t buf[WT_PAGE];
	uint64_t i, room = 2 * ZB_SEG_SIZE / WT_PAGE;
	int64_t moved, total = 0;

	ck_assert_int_eq(zb_open(wt_path, 2 * ZB_SEG_SIZE, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	for (i = 0; i < WT_PAGES; i++) {
		uint64_t seed = i + 77;

		tu_fill_random(buf, WT_PAGE, &seed);
		ck_assert_int_eq(zr_write(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
	}
	while ((moved = zr_writeback(wt_st, 0, 0, WT_PAGES, UINT64_MAX)) > 0)
		total += moved;
	ck_assert_int_eq(moved, -ENOSPC);
	ck_assert_int_eq(total, (int64_t)room);
	ck_assert_uint_eq(wt_stats().bd_count, room);
	ck_assert_uint_eq(wt_stats().pages_stored, WT_PAGES - room);
	for (i = 0; i < WT_PAGES; i++) {
		uint64_t seed = i + 77;
		uint8_t want[WT_PAGE];

		tu_fill_random(want, WT_PAGE, &seed);
		ck_assert_int_eq(zr_read(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
		ck_assert_msg(memcmp(buf, want, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
}
END_TEST

START_TEST(test_writeback_corrupt)
{
	uint8_t buf[WT_PAGE];
	static uint8_t junk[ZB_SEG_SIZE];
	uint64_t seed = 5;
	off_t size;
	int fd;

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, 1, 0);		/* page 0: text */
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, 1, 1), 1);
	ck_assert_int_eq(zb_flush(wt_bd), 0);
	/* Garbage over the whole file, wherever the object went. */
	tu_fill_random(junk, sizeof(junk), &seed);
	fd = open(wt_path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	size = lseek(fd, 0, SEEK_END);
	ck_assert_int_ge(size, ZB_SEG_SIZE);
	for (off_t off = 0; off < size; off += ZB_SEG_SIZE)
		ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), off),
				 (ssize_t)sizeof(junk));
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	ck_assert_int_eq(zr_read(wt_st, buf, WT_PAGE, 0), -EIO);
	ck_assert_uint_eq(wt_stats().failed_reads, 1);
}
END_TEST

/*
 * Writeback racing the I/O: each of WT_THREADS threads owns every
 * WT_THREADS-th page and writes, reads back and discards its own pages
 * at random, checking every read against what it last wrote, while the
 * main thread marks everything idle, writes everything back and
 * compacts the file, over and over.
 */
#define WT_THREADS 3
#define WT_ROUNDS 3000

struct wt_owner {
	unsigned id;
	unsigned gen[WT_PAGES];		/* 0: discarded, else generation */
	int bad;
};

static _Atomic int wt_done;

static void *wt_owner_run(void *arg)
{
	struct wt_owner *o = arg;
	uint64_t seed = o->id + 1, idx;
	uint8_t want[WT_PAGE], got[WT_PAGE];
	unsigned r, g;

	for (r = 0; r < WT_ROUNDS && !o->bad; r++) {
		idx = tu_rand(&seed) % (WT_PAGES / WT_THREADS) * WT_THREADS +
		      o->id;
		switch (tu_rand(&seed) % 4) {
		case 0:
		case 1:
			g = r + 1;
			wt_page(idx, g, want);
			if (zr_write(wt_st, want, WT_PAGE, idx * WT_PAGE) !=
			    WT_PAGE)
				o->bad = 1;
			o->gen[idx] = g;
			break;
		case 2:
			if (zr_discard(wt_st, idx * WT_PAGE, WT_PAGE))
				o->bad = 2;
			o->gen[idx] = 0;
			break;
		default:
			if (o->gen[idx])
				wt_page(idx, o->gen[idx], want);
			else
				memset(want, 0, WT_PAGE);
			if (zr_read(wt_st, got, WT_PAGE, idx * WT_PAGE) !=
			    WT_PAGE || memcmp(want, got, WT_PAGE))
				o->bad = 3;
		}
	}
	atomic_fetch_add(&wt_done, 1);
	return NULL;
}

static void wt_race(int backend, bool writeback)
{
	static struct wt_owner own[WT_THREADS];
	pthread_t t[WT_THREADS];
	uint64_t moved = 0, compacted = 0;
	unsigned i;
	int64_t n;

	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(backend, wt_bd);
	atomic_store(&wt_done, 0);
	for (i = 0; i < WT_THREADS; i++) {
		memset(&own[i], 0, sizeof(own[i]));
		own[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, wt_owner_run,
						&own[i]), 0);
	}
	while (atomic_load(&wt_done) < WT_THREADS) {
		if (!writeback) {
			usleep(1000);
			continue;
		}
		zr_mark_idle(wt_st, 0);
		n = zr_writeback(wt_st, ZR_WB_IDLE, 0, WT_PAGES, UINT64_MAX);
		ck_assert_int_ge(n, 0);
		moved += (uint64_t)n;
		/* The file compacted under the owners' feet too. */
		n = zr_compact_file(wt_st);
		ck_assert_int_ge(n, 0);
		compacted += (uint64_t)n;
	}
	for (i = 0; i < WT_THREADS; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_msg(!own[i].bad, "thread %u: check %d failed", i,
			      own[i].bad);
	}
	ck_assert_uint_gt(moved + wt_stats().bd_spills, 0);
	if (writeback)
		ck_assert_uint_gt(compacted, 0);
	ck_assert_uint_le(wt_stats().mem_used_max, wt_limit ? wt_limit :
			  UINT64_MAX);
	ck_assert_int_eq(zr_discard(wt_st, 0, WT_DISK), 0);
	ck_assert_uint_eq(wt_bd_stats().objs, 0);
}

START_TEST(test_writeback_race)
{
	wt_race(_i, true);
}
END_TEST

/* The same, under a memory limit: the owners' writes spill instead. */
START_TEST(test_spill_race)
{
	wt_limit = 128 << 10;
	wt_race(_i, false);
	ck_assert_uint_gt(wt_stats().bd_spills, 0);
}
END_TEST

/*
 * wt_fill_to - write generation @gen of pages from 0 up, one at a time,
 * until mem_used_total passes @bytes or the background thread has
 * spilled; returns the pages written.
 */
static uint64_t wt_fill_to(uint64_t bytes, unsigned gen)
{
	uint64_t i;

	for (i = 0; i < WT_PAGES && wt_stats().mem_used_total <= bytes &&
	     !wt_stats().bd_ahead; i++)
		wt_write(i, i + 1, gen);
	ck_assert_uint_lt(i, WT_PAGES);
	return i;
}

/*
 * A full device spills: 2 MiB written through a 256 KiB mem_limit with a
 * backing file all succeed, the memory stays under the limit, and every
 * page reads back; without room in the file either, ENOSPC, and what was
 * written reads back.
 */
START_TEST(test_spill)
{
	wt_limit = 256 << 10;
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_PAGES, 0);
	tu_settle(wt_st, wt_limit);
	ck_assert_uint_le(wt_stats().mem_used_max, wt_limit);
	ck_assert_uint_gt(wt_stats().bd_spills, 0);
	ck_assert_uint_eq(wt_stats().bd_spills, wt_stats().bd_writes);
	wt_check(0, WT_PAGES, 0);
	/* Overwritten, the pages leave the file; the limit still holds. */
	wt_write(0, WT_PAGES, 1);
	wt_check(0, WT_PAGES, 1);
	ck_assert_uint_le(wt_stats().mem_used_max, wt_limit);
}
END_TEST

/*
 * Spilling ahead: a pool filled just past 15/16 of mem_limit, and not
 * to it, falls to 7/8 of it on its own, by the background thread: no
 * store spilled or waited, and every page reads back.
 */
START_TEST(test_spill_ahead)
{
	uint64_t n, low;
	int i;

	wt_limit = 256 << 10;
	low = wt_limit - wt_limit / ZR_AHEAD_LOW_DIV;
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	n = wt_fill_to(wt_limit - wt_limit / ZR_AHEAD_HIGH_DIV, 0);
	for (i = 0; i < 1000 && wt_stats().mem_used_total > low; i++)
		usleep(10000);
	ck_assert_msg(wt_stats().mem_used_total <= low,
		      "mem_used_total %llu, above %llu after 10 s",
		      (unsigned long long)wt_stats().mem_used_total,
		      (unsigned long long)low);
	ck_assert_uint_gt(wt_stats().bd_ahead, 0);
	ck_assert_uint_eq(wt_stats().bd_ahead, wt_stats().bd_spills);
	ck_assert_uint_eq(wt_stats().bd_spills, wt_stats().bd_writes);
	ck_assert_uint_lt(wt_stats().mem_used_max, wt_limit);
	wt_check(0, n, 0);
}
END_TEST

START_TEST(test_spill_full)
{
	uint8_t buf[WT_PAGE], want[WT_PAGE];
	uint64_t i, seed, written;
	ssize_t ret = 0;

	wt_limit = 256 << 10;
	ck_assert_int_eq(zb_open(wt_path, 2 * ZB_SEG_SIZE, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	for (i = 0; i < WT_PAGES; i++) {
		seed = i + 99;
		tu_fill_random(buf, WT_PAGE, &seed);
		ret = zr_write(wt_st, buf, WT_PAGE, i * WT_PAGE);
		if (ret != WT_PAGE)
			break;
	}
	ck_assert_int_eq(ret, -ENOSPC);
	written = i;
	/* RAM and file both full: 64 + 128 pages (random, so 4 KiB each),
	 * less the RAM's metadata: a span of 8 pages at most. */
	ck_assert_msg(written >= 184 && written <= 192,
		      "%llu pages written before ENOSPC, expected 64 in RAM and 128 in the file",
		      (unsigned long long)written);
	ck_assert_uint_le(wt_stats().mem_used_max, wt_limit);
	for (i = 0; i < written; i++) {
		seed = i + 99;
		tu_fill_random(want, WT_PAGE, &seed);
		ck_assert_int_eq(zr_read(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
		ck_assert_msg(memcmp(buf, want, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
	/* A discard makes room again. */
	ck_assert_int_eq(zr_discard(wt_st, 0, WT_DISK), 0);
	wt_write(0, 64, 3);
	wt_check(0, 64, 3);
}
END_TEST

/*
 * Spilled pages lie in the file in the table's order, whatever windows
 * the spills looked at: WT_ORDER_WINS windows of ZR_SPILL_SCAN pages of
 * about 200 compressed bytes, spilled, then read back in order one page
 * a request, take about one read of the file per ZB_WIN_SIZE of it (and
 * two per segment), not one per ZR_SPILL_BATCH pages (the 64 pages of a
 * window that one spill took, 100 KiB from the next 64 in the file).
 */
#define WT_ORDER_WINS 8
#define WT_ORDER_PAGES (WT_ORDER_WINS * ZR_SPILL_SCAN)

static void wt_order_page(uint64_t idx, uint8_t *buf)
{
	uint64_t seed = idx + 7;

	memset(buf, 0, WT_PAGE);
	memcpy(buf, &idx, sizeof(idx));
	tu_fill_random(buf + 64, 160, &seed);
}

START_TEST(test_spill_order)
{
	uint8_t buf[WT_PAGE], want[WT_PAGE];
	uint64_t i, r0, reads, in_file;

	wt_disk = (uint64_t)WT_ORDER_PAGES * WT_PAGE;
	wt_limit = 1 << 20;
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	for (i = 0; i < WT_ORDER_PAGES; i++) {
		wt_order_page(i, buf);
		ck_assert_int_eq(zr_write(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
	}
	tu_settle(wt_st, wt_limit);
	ck_assert_int_eq(zb_flush(wt_bd), 0);
	in_file = wt_stats().bd_count;
	ck_assert_uint_gt(in_file, WT_ORDER_PAGES / 2);
	r0 = wt_bd_stats().disk_reads;
	for (i = 0; i < WT_ORDER_PAGES; i++) {
		wt_order_page(i, want);
		ck_assert_int_eq(zr_read(wt_st, buf, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
		ck_assert_msg(memcmp(buf, want, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
	reads = wt_bd_stats().disk_reads - r0;
	ck_assert_msg(reads < in_file / (2 * ZR_SPILL_BATCH),
		      "%llu pages read back from the file in %llu reads",
		      (unsigned long long)in_file, (unsigned long long)reads);
}
END_TEST

/*
 * Read-ahead: pages written back together come back from the file in
 * one read per request, same-filled pages between them or not; and
 * what a read brought in serves the next request without another.
 */
START_TEST(test_read_ahead)
{
	uint8_t *buf = malloc(16 * WT_PAGE), want[WT_PAGE];
	uint64_t r0, i;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, 64, 0);
	ck_assert_int_eq(zr_writeback(wt_st, 0, 0, 64, 64), wt_objects(64));
	ck_assert_int_eq(zb_flush(wt_bd), 0);
	r0 = wt_bd_stats().disk_reads;
	ck_assert_int_eq(zr_read(wt_st, buf, 16 * WT_PAGE, 0), 16 * WT_PAGE);
	ck_assert_uint_eq(wt_bd_stats().disk_reads - r0, 1);
	for (i = 0; i < 16; i++) {
		wt_page(i, 0, want);
		ck_assert_msg(memcmp(buf + i * WT_PAGE, want, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
	/* Sequential: the next requests take whole windows. */
	for (i = 16; i < 64; i += 16)
		ck_assert_int_eq(zr_read(wt_st, buf, 16 * WT_PAGE,
					 i * WT_PAGE), 16 * WT_PAGE);
	ck_assert_uint_le(wt_bd_stats().disk_reads - r0, 3);
	wt_check(0, 64, 0);
	free(buf);
}
END_TEST

/* wt_wait_bd - wait (10 s at most) until @n pages are in the file. */
static bool wt_wait_bd(uint64_t n)
{
	int i;

	for (i = 0; i < 1000 && wt_stats().bd_count < n; i++)
		usleep(10000);
	return wt_stats().bd_count >= n;
}

/*
 * The age policy: pages left alone for writeback_age go to the file on
 * their own, within writeback_limit; pages in use stay; 0 turns it off.
 */
START_TEST(test_writeback_age)
{
	uint64_t objs = wt_objects(WT_PAGES);

	wt_age = 1;
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	atomic_store(&wt_wbl.pages, 10);
	atomic_store(&wt_wbl.on, true);
	wt_write(0, WT_PAGES, 0);
	ck_assert(wt_wait_bd(10));
	usleep(1500000);		/* a sweep or more: no more than 10 */
	ck_assert_uint_eq(wt_stats().bd_count, 10);
	ck_assert_uint_eq(wt_stats().bd_aged, 10);
	ck_assert_uint_eq(atomic_load(&wt_wbl.pages), 0);
	atomic_store(&wt_wbl.on, false);
	zr_set_writeback_age(wt_st, 1);	/* a kick */
	ck_assert_msg(wt_wait_bd(objs), "%llu of %llu pages written back",
		      (unsigned long long)wt_stats().bd_count,
		      (unsigned long long)objs);
	ck_assert_uint_eq(wt_stats().pages_stored, WT_PAGES - objs);
	wt_check(0, WT_PAGES, 0);
	/* Off: rewritten pages stay in RAM however old they get. */
	zr_set_writeback_age(wt_st, 0);
	wt_write(0, WT_PAGES, 1);
	usleep(2500000);
	ck_assert_uint_eq(wt_stats().bd_count, 0);
	ck_assert_uint_eq(wt_stats().wb_age, 0);
	wt_check(0, WT_PAGES, 1);
}
END_TEST

/*
 * Compaction of the file: random rewrites of pages written back leave
 * most segments of the file a few objects each; the maintainer moves
 * those on its own once they waste a quarter of the file, and
 * zr_compact_file() moves all it can when asked: pages keep their data,
 * ages and marks, the figures of both tiers stay, and it moves nothing
 * once writeback_limit is used up.
 */
#define WT_BC_PAGES 16384
START_TEST(test_bd_compact)
{
	unsigned *gen = calloc(WT_BC_PAGES, sizeof(*gen));
	uint8_t buf[WT_PAGE];
	uint64_t seed = 11, i, idx, idle;
	struct zr_stats s0, s1;
	struct zb_stats b0, b1;
	unsigned r;
	int k;

	ck_assert_ptr_nonnull(gen);
	wt_disk = (uint64_t)WT_BC_PAGES * WT_PAGE;
	ck_assert_int_eq(zb_open(wt_path, 0, &wt_bd), 0);
	wt_open_store(_i, wt_bd);
	wt_write(0, WT_BC_PAGES, 0);
	for (r = 1; r <= 6; r++) {
		ck_assert_int_ge(zr_writeback(wt_st, 0, 0, WT_BC_PAGES,
					      UINT64_MAX), 0);
		for (i = 0; i < WT_BC_PAGES / 3; i++) {
			idx = tu_rand(&seed) % WT_BC_PAGES;
			gen[idx] = r;
			wt_page(idx, r, buf);
			ck_assert_int_eq(zr_write(wt_st, buf, WT_PAGE,
						  idx * WT_PAGE), WT_PAGE);
		}
	}
	zr_mark_idle(wt_st, 0);
	idle = wt_stats().idle_pages;
	/* The maintainer: within a few periods, the waste is gone below
	 * the quarter that starts a pass. */
	for (k = 0; k < 1000; k++) {
		b0 = wt_bd_stats();
		if (b0.objs_relocated &&
		    b0.bytes_sparse_waste * 4 < b0.segs_used * ZB_SEG_SIZE)
			break;
		usleep(10000);
	}
	b0 = wt_bd_stats();
	ck_assert_uint_gt(b0.objs_relocated, 0);
	ck_assert_uint_lt(b0.bytes_sparse_waste * 4,
			  b0.segs_used * ZB_SEG_SIZE);
	/* Asked for: none under half live is left. */
	s0 = wt_stats();
	ck_assert_int_ge(zr_compact_file(wt_st), 0);
	s1 = wt_stats();
	b1 = wt_bd_stats();
	fprintf(stderr, "%s: file compaction: %llu pages moved by the "
		"maintainer, %llu in all; %llu pages in %llu segments, %llu "
		"bytes live\n", zcomp_backends()[_i]->name,
		(unsigned long long)b0.objs_relocated,
		(unsigned long long)b1.objs_relocated,
		(unsigned long long)s1.bd_count,
		(unsigned long long)b1.segs_used,
		(unsigned long long)b1.bytes_stored);
	ck_assert_uint_eq(b1.segs_sparse, 0);
	ck_assert_uint_le(b1.segs_used * ZB_SEG_SIZE, 2 * b1.bytes_stored +
			  ZB_SEG_SIZE);
	ck_assert_uint_eq(s1.bd_count, s0.bd_count);
	ck_assert_uint_eq(s1.bd_bytes, s0.bd_bytes);
	ck_assert_uint_eq(s1.bd_writes, s0.bd_writes);
	ck_assert_uint_eq(s1.idle_pages, idle);
	ck_assert_uint_eq(b1.bytes_stored, s1.bd_bytes);
	for (i = 0; i < WT_BC_PAGES; i++) {
		uint8_t got[WT_PAGE];

		wt_page(i, gen[i], buf);
		ck_assert_int_eq(zr_read(wt_st, got, WT_PAGE, i * WT_PAGE),
				 WT_PAGE);
		ck_assert_msg(memcmp(buf, got, WT_PAGE) == 0,
			      "page %llu differs", (unsigned long long)i);
	}
	/* More churn; with writeback_limit on and used up, nothing moves. */
	for (i = 0; i < WT_BC_PAGES / 2; i++) {
		idx = tu_rand(&seed) % WT_BC_PAGES;
		if (zr_writeback(wt_st, 0, idx, idx + 1, 1) > 0)
			continue;
		ck_assert_int_eq(zr_discard(wt_st, idx * WT_PAGE, WT_PAGE), 0);
	}
	atomic_store(&wt_wbl.pages, 0);
	atomic_store(&wt_wbl.on, true);
	b0 = wt_bd_stats();
	ck_assert_int_eq(zr_compact_file(wt_st), 0);
	ck_assert_uint_eq(wt_bd_stats().objs_relocated, b0.objs_relocated);
	free(gen);
}
END_TEST

Suite *zr_writeback_suite(void)
{
	Suite *s = suite_create("zr_writeback");
	TCase *tc = tcase_create("core");
	int n = tu_nbackends();

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_writeback_idle, 0, n);
	tcase_add_loop_test(tc, test_writeback_types, 0, n);
	tcase_add_loop_test(tc, test_writeback_rewrite, 0, n);
	tcase_add_loop_test(tc, test_writeback_destroy, 0, n);
	tcase_add_loop_test(tc, test_writeback_no_file, 0, n);
	tcase_add_loop_test(tc, test_writeback_full, 0, n);
	tcase_add_loop_test(tc, test_writeback_corrupt, 0, n);
	tcase_add_loop_test(tc, test_writeback_race, 0, n);
	tcase_add_loop_test(tc, test_spill, 0, n);
	tcase_add_loop_test(tc, test_spill_full, 0, n);
	tcase_add_loop_test(tc, test_spill_ahead, 0, n);
	tcase_add_loop_test(tc, test_spill_order, 0, n);
	tcase_add_loop_test(tc, test_spill_race, 0, n);
	tcase_add_loop_test(tc, test_read_ahead, 0, n);
	tcase_add_loop_test(tc, test_writeback_age, 0, n);
	tcase_add_loop_test(tc, test_bd_compact, 0, n);
	suite_add_tcase(s, tc);
	return s;
}
