/*
 * Unit tests of the store (store/zr_store.c) over every compressor.
 *
 * Each loop test runs once per backend in zcomp_backends(); the fixture
 * gives it a fresh store of ZT_DISK bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compressors/zcomp.h"
#include "store/zr_store.h"
#include "store/zs_pool.h"
#include "store/zr_store_i.h"
#include "store/zs_pool.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define ZT_PAGE ZR_PAGE_SIZE
#define ZT_PAGES 256
#define ZT_DISK ((uint64_t)ZT_PAGES * ZT_PAGE)

static unsigned zt_workers;	/* helper threads for stores made below */
static uint64_t zt_reserve;	/* their reserve, bytes */

static struct zr_store *zt_open(int backend, uint64_t disksize,
				uint64_t limit)
{
	const struct zcomp_backend *const *be = zcomp_backends();
	struct zr_config cfg = {
		.disksize = disksize,
		.algorithm = be[backend]->name,
		.level = ZCOMP_LEVEL_DEFAULT,
		.mem_limit = limit,
		.workers = zt_workers,
		.reserve = zt_reserve,
	};
	struct zr_store *st = NULL;

	ck_assert_int_eq(zr_store_create(&cfg, &st), 0);
	ck_assert_ptr_nonnull(st);
	return st;
}

/* Text-like data: compresses to roughly a third. */
static void zt_text_bytes(void *buf, size_t len, uint64_t *seed)
{
	static const char *words[] = { "page ", "zram ", "slot ", "lock ",
		"compress ", "the ", "memory ", "fuse ", "\n", "0x1f ",
		"swap ", "class " };
	uint8_t *p = buf;
	size_t i = 0;

	while (i < len) {
		const char *w = words[tu_rand(seed) % 12];

		while (*w && i < len)
			p[i++] = (uint8_t)*w++;
		if (i < len && tu_rand(seed) % 5 == 0)
			p[i++] = (uint8_t)(tu_rand(seed) >> 56);
	}
}

static struct zr_stats zt_stats(struct zr_store *st)
{
	struct zr_stats s;

	zr_get_stats(st, &s);
	return s;
}

START_TEST(test_create_bad)
{
	struct zr_config cfg = { .disksize = ZT_DISK, .algorithm = "lz4",
				 .level = ZCOMP_LEVEL_DEFAULT };
	struct zr_store *st = NULL;

	cfg.disksize = 0;
	ck_assert_int_eq(zr_store_create(&cfg, &st), -EINVAL);
	cfg.disksize = ZT_DISK + 1;
	ck_assert_int_eq(zr_store_create(&cfg, &st), -EINVAL);
	cfg.disksize = ZT_DISK;
	cfg.algorithm = "nosuch";
	ck_assert_int_eq(zr_store_create(&cfg, &st), -EINVAL);
	cfg.algorithm = "zstd";
	cfg.level = 1000;
	ck_assert_int_eq(zr_store_create(&cfg, &st), -EINVAL);
	ck_assert_ptr_null(st);
	zr_store_destroy(NULL);
}
END_TEST

START_TEST(test_unwritten_zero)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t buf[3 * ZT_PAGE];
	size_t i;

	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(zr_read(st, buf, sizeof(buf), 5 * ZT_PAGE + 7),
			 sizeof(buf));
	for (i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_uint_eq(zt_stats(st).mem_used_total, 0);
	ck_assert_str_eq(zr_algorithm(st), zcomp_backends()[_i]->name);
	ck_assert_uint_eq(zr_disksize(st), ZT_DISK);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_roundtrip_lengths)
{
	static const size_t lens[] = { 0, 1, 4095, 4096, 4097, 3 * 4096 + 5 };
	static const uint64_t offs[] = { 0, 1, 4095, 4096, 10 * 4096 + 33 };
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t in[4 * ZT_PAGE], out[4 * ZT_PAGE];
	uint64_t seed = 42;
	size_t a, b;

	for (a = 0; a < sizeof(lens) / sizeof(lens[0]); a++)
		for (b = 0; b < sizeof(offs) / sizeof(offs[0]); b++) {
			size_t len = lens[a];

			zt_text_bytes(in, len, &seed);
			ck_assert_int_eq(zr_write(st, in, len, offs[b]),
					 (ssize_t)len);
			memset(out, 0x5a, sizeof(out));
			ck_assert_int_eq(zr_read(st, out, len, offs[b]),
					 (ssize_t)len);
			ck_assert_mem_eq(in, out, len);
		}
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_incompressible)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t in[ZT_PAGE], out[ZT_PAGE];
	uint64_t seed = 7;
	struct zr_stats s;

	tu_fill_random(in, sizeof(in), &seed);
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, 3 * ZT_PAGE), ZT_PAGE);
	ck_assert_int_eq(zr_read(st, out, ZT_PAGE, 3 * ZT_PAGE), ZT_PAGE);
	ck_assert_mem_eq(in, out, ZT_PAGE);
	s = zt_stats(st);
	ck_assert_uint_eq(s.huge_pages, 1);
	ck_assert_uint_eq(s.huge_pages_since, 1);
	ck_assert_uint_eq(s.compr_data_size, ZT_PAGE);
	ck_assert_uint_eq(s.orig_data_size, ZT_PAGE);
	ck_assert_uint_ge(s.mem_used_total, ZT_PAGE);

	/* Overwrite with text: no longer huge, "since" keeps counting. */
	zt_text_bytes(in, sizeof(in), &seed);
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, 3 * ZT_PAGE), ZT_PAGE);
	s = zt_stats(st);
	ck_assert_uint_eq(s.huge_pages, 0);
	ck_assert_uint_eq(s.huge_pages_since, 1);
	ck_assert_uint_lt(s.compr_data_size, ZT_PAGE);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_same_filled)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint64_t in[ZT_PAGE / 8], out[ZT_PAGE / 8];
	struct zr_stats s;
	size_t i;

	for (i = 0; i < ZT_PAGE / 8; i++)
		in[i] = 0x0123456789abcdefULL;
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, 0), ZT_PAGE);
	memset(in, 0, sizeof(in));
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, ZT_PAGE), ZT_PAGE);
	s = zt_stats(st);
	ck_assert_uint_eq(s.same_pages, 2);
	ck_assert_uint_eq(s.orig_data_size, 2 * ZT_PAGE);
	ck_assert_uint_eq(s.compr_data_size, 0);
	ck_assert_uint_eq(s.mem_used_total, 0);	/* no allocation */
	ck_assert_int_eq(zr_read(st, out, ZT_PAGE, 0), ZT_PAGE);
	for (i = 0; i < ZT_PAGE / 8; i++)
		ck_assert_uint_eq(out[i], 0x0123456789abcdefULL);

	/* A one-byte change makes it a normal page, and back. */
	ck_assert_int_eq(zr_write(st, "x", 1, 100), 1);
	s = zt_stats(st);
	ck_assert_uint_eq(s.same_pages, 1);
	ck_assert_uint_gt(s.mem_used_total, 0);
	ck_assert_int_eq(zr_read(st, out, ZT_PAGE, 0), ZT_PAGE);
	ck_assert_uint_eq(((uint8_t *)out)[100], 'x');
	ck_assert_uint_eq(out[0], 0x0123456789abcdefULL);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_past_end)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t buf[2 * ZT_PAGE];

	memset(buf, 'q', sizeof(buf));
	ck_assert_int_eq(zr_write(st, buf, 1, ZT_DISK), -EFBIG);
	ck_assert_int_eq(zr_write(st, buf, 1, ZT_DISK + 5000), -EFBIG);
	ck_assert_int_eq(zr_write(st, buf, 0, ZT_DISK + 5000), 0);
	/* Crossing the end: only the part inside is written. */
	ck_assert_int_eq(zr_write(st, buf, sizeof(buf), ZT_DISK - 10), 10);
	ck_assert_int_eq(zr_read(st, buf, sizeof(buf), ZT_DISK - 10), 10);
	ck_assert_int_eq(zr_read(st, buf, 1, ZT_DISK), 0);
	ck_assert_int_eq(zr_read(st, buf, 1, UINT64_MAX - 1), 0);
	ck_assert_int_eq(zr_discard(st, ZT_DISK, 100), 0);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_discard_edges)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t in[8 * ZT_PAGE], out[8 * ZT_PAGE];
	uint64_t seed = 99;
	struct zr_stats s;
	size_t i;

	zt_text_bytes(in, sizeof(in), &seed);
	ck_assert_int_eq(zr_write(st, in, sizeof(in), 0), sizeof(in));
	s = zt_stats(st);
	ck_assert_uint_eq(s.orig_data_size, sizeof(in));

	/* From the middle of page 1 to the middle of page 5. */
	ck_assert_int_eq(zr_discard(st, ZT_PAGE + 100, 4 * ZT_PAGE), 0);
	for (i = ZT_PAGE + 100; i < 5 * ZT_PAGE + 100; i++)
		in[i] = 0;
	ck_assert_int_eq(zr_read(st, out, sizeof(out), 0), sizeof(out));
	ck_assert_mem_eq(in, out, sizeof(in));
	s = zt_stats(st);
	ck_assert_uint_eq(s.orig_data_size, 5 * ZT_PAGE);	/* 2,3,4 freed */
	ck_assert_uint_eq(s.notify_free, 3);

	/* Inside one page. */
	ck_assert_int_eq(zr_discard(st, 6 * ZT_PAGE + 10, 20), 0);
	memset(in + 6 * ZT_PAGE + 10, 0, 20);
	ck_assert_int_eq(zr_read(st, out, sizeof(out), 0), sizeof(out));
	ck_assert_mem_eq(in, out, sizeof(in));

	/* Discarding empty pages counts as a miss. */
	ck_assert_int_eq(zr_discard(st, 100 * ZT_PAGE, ZT_PAGE), 0);
	ck_assert_uint_eq(zt_stats(st).miss_free, 1);

	/* Everything: memory back to nothing. */
	ck_assert_int_eq(zr_discard(st, 0, ZT_DISK), 0);
	s = zt_stats(st);
	ck_assert_uint_eq(s.orig_data_size, 0);
	ck_assert_uint_eq(s.compr_data_size, 0);
	ck_assert_uint_lt(s.mem_used_total, 2 << 20);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_seek)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t page[ZT_PAGE];

	memset(page, 0, sizeof(page));
	ck_assert_int_eq(zr_seek(st, 0, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(zr_seek(st, 0, SEEK_HOLE), 0);
	ck_assert_int_eq(zr_write(st, page, 1, 10 * ZT_PAGE + 5), 1);
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, 11 * ZT_PAGE), ZT_PAGE);
	ck_assert_int_eq(zr_seek(st, 0, SEEK_DATA), 10 * ZT_PAGE);
	ck_assert_int_eq(zr_seek(st, 10 * ZT_PAGE + 7, SEEK_DATA),
			 10 * ZT_PAGE + 7);
	ck_assert_int_eq(zr_seek(st, 10 * ZT_PAGE, SEEK_HOLE), 12 * ZT_PAGE);
	ck_assert_int_eq(zr_seek(st, 5, SEEK_HOLE), 5);
	ck_assert_int_eq(zr_discard(st, 11 * ZT_PAGE, ZT_PAGE), 0);
	ck_assert_int_eq(zr_seek(st, 10 * ZT_PAGE, SEEK_HOLE), 11 * ZT_PAGE);
	ck_assert_int_eq(zr_seek(st, 11 * ZT_PAGE, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, ZT_DISK - ZT_PAGE),
			 ZT_PAGE);
	ck_assert_int_eq(zr_seek(st, ZT_DISK - ZT_PAGE, SEEK_HOLE),
			 (int64_t)ZT_DISK);
	ck_assert_int_eq(zr_seek(st, ZT_DISK, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(zr_seek(st, 0, 42), -EINVAL);
	zr_store_destroy(st);
}
END_TEST

/* Replace page @idx's object with garbage of the same length. */
static void zt_corrupt(struct zr_store *st, uint64_t idx, uint64_t *seed)
{
	struct zr_slot *slot = zr_slot_of(st, idx);
	static uint8_t junk[ZT_PAGE];
	uint32_t len;
	uint64_t h;

	zr_slot_lock_write(slot);
	len = zr_slot_meta(slot) & ZR_META_SIZE_MASK;
	ck_assert(len > 0 &&
		  !(zr_slot_meta(slot) & (ZR_META_SAME | ZR_META_HUGE)));
	zs_load(zr_pool(st), slot->handle, junk, len);
	tu_fill_random(junk + len / 4, len - len / 4, seed);
	ck_assert_int_eq(zs_store(zr_pool(st), junk, len, &h), 0);
	zs_free(zr_pool(st), slot->handle, len);
	slot->handle = h;
	zr_slot_unlock_write(slot);
}

START_TEST(test_corrupt_eio)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t in[ZT_PAGE], out[ZT_PAGE];
	uint64_t seed = 1234;
	int round;

	for (round = 0; round < 50; round++) {
		ssize_t r;

		zt_text_bytes(in, sizeof(in), &seed);
		ck_assert_int_eq(zr_write(st, in, ZT_PAGE, 0), ZT_PAGE);
		zt_corrupt(st, 0, &seed);
		r = zr_read(st, out, ZT_PAGE, 0);
		/* Garbage may by chance decode; if not, it must be -EIO. */
		ck_assert(r == -EIO || r == ZT_PAGE);
		r = zr_read(st, out, 10, 5);
		ck_assert(r == -EIO || r == 10);
		/* A partial write must not store garbage over an EIO page. */
		r = zr_write(st, "ab", 2, 7);
		ck_assert(r == -EIO || r == 2);
	}
	ck_assert_uint_gt(zt_stats(st).failed_reads, 0);
	/* A whole-page write replaces it and all is well again. */
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, 0), ZT_PAGE);
	ck_assert_int_eq(zr_read(st, out, ZT_PAGE, 0), ZT_PAGE);
	ck_assert_mem_eq(in, out, ZT_PAGE);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_mem_limit)
{
	const uint64_t limit = 256 << 10;
	const uint64_t disk = 4096ull * ZT_PAGE;	/* 16 MiB */
	struct zr_store *st = zt_open(_i, disk, limit);
	static uint8_t in[ZT_PAGE], out[ZT_PAGE];
	uint64_t seed = 5, idx, written = 0;
	ssize_t r = 0;
	struct zr_stats s;

	for (idx = 0; idx < disk / ZT_PAGE; idx++) {
		seed = idx + 1;
		tu_fill_random(in, sizeof(in), &seed);
		r = zr_write(st, in, ZT_PAGE, idx * ZT_PAGE);
		if (r < 0)
			break;
		written++;
	}
	ck_assert_int_eq(r, -ENOSPC);
	s = zt_stats(st);
	ck_assert_uint_le(s.mem_used_total, limit);
	ck_assert_uint_le(s.mem_used_max, limit);
	ck_assert_uint_eq(s.mem_limit, limit);
	ck_assert_uint_ge(s.failed_writes, 1);
	ck_assert_uint_gt(written, 10);

	/* Everything before the error reads back; the failed page is empty. */
	for (idx = 0; idx < written; idx++) {
		seed = idx + 1;
		tu_fill_random(in, sizeof(in), &seed);
		ck_assert_int_eq(zr_read(st, out, ZT_PAGE, idx * ZT_PAGE),
				 ZT_PAGE);
		ck_assert_mem_eq(in, out, ZT_PAGE);
	}
	ck_assert_int_eq(zr_read(st, out, ZT_PAGE, written * ZT_PAGE),
			 ZT_PAGE);
	memset(in, 0, sizeof(in));
	ck_assert_mem_eq(in, out, ZT_PAGE);

	/* Free some, and writes work again. */
	ck_assert_int_eq(zr_discard(st, 0, 16 * ZT_PAGE), 0);
	seed = 77;
	tu_fill_random(in, sizeof(in), &seed);
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, written * ZT_PAGE),
			 ZT_PAGE);
	/* Raising the limit takes effect at once. */
	zr_set_mem_limit(st, 0);
	ck_assert_int_eq(zr_write(st, in, ZT_PAGE, (written + 1) * ZT_PAGE),
			 ZT_PAGE);
	zr_reset_mem_used_max(st);
	s = zt_stats(st);
	ck_assert_uint_eq(s.mem_used_max, s.mem_used_total);
	zr_store_destroy(st);
}
END_TEST

/*
 * A write that meets the memory limit part way fails as a whole: a short
 * count would reach a loop device as a successful write (the kernel's
 * synchronous FUSE direct I/O passes it on) and lose the rest silently.
 * Each page is left with its old content or the new, never a mix.
 */
START_TEST(test_mem_limit_whole)
{
	const uint64_t limit = 256 << 10;
	const size_t len = 1 << 20;			/* 4x the limit */
	const uint64_t off = 3 * ZT_PAGE + 100;		/* partial edges */
	struct zr_store *st = zt_open(_i, 1024ull * ZT_PAGE, limit);
	static uint8_t in[1 << 20], out[1 << 20];
	static const uint8_t zero[ZT_PAGE];
	uint64_t seed = 21;
	size_t i, n;

	tu_fill_random(in, len, &seed);
	ck_assert_int_eq(zr_write(st, in, len, off), -ENOSPC);
	ck_assert_uint_ge(zt_stats(st).failed_writes, 1);
	ck_assert_uint_le(zt_stats(st).mem_used_total, limit);
	ck_assert_int_eq(zr_read(st, out, len, off), (ssize_t)len);
	/* Page by page (the first and last are partial). */
	for (i = 0; i < len; i += n) {
		n = ZT_PAGE - ((off + i) & (ZT_PAGE - 1));
		if (n > len - i)
			n = len - i;
		ck_assert_msg(!memcmp(out + i, in + i, n) ||
			      !memcmp(out + i, zero, n),
			      "bytes %zu..%zu are neither old nor new", i, i + n);
	}
	/* Within the limit, the same write is whole. */
	zr_set_mem_limit(st, 0);
	ck_assert_int_eq(zr_write(st, in, len, off), (ssize_t)len);
	ck_assert_int_eq(zr_read(st, out, len, off), (ssize_t)len);
	ck_assert_mem_eq(in, out, len);
	zr_store_destroy(st);
}
END_TEST

/* The age of slot @idx's page at @now, a zr_clock() value. */
static uint32_t zt_age(struct zr_store *st, uint64_t idx, uint64_t now)
{
	uint32_t meta = atomic_load(&zr_slot_of(st, idx)->meta);

	return ((uint32_t)now - (meta >> ZR_META_TIME_SHIFT)) & 0xffff;
}

/*
 * Ages saturate instead of wrapping: a slot keeps its access time in 16
 * bits of seconds, so without the maintainer's sweep (zr_age_clamp()) a
 * page left alone for 65536 s would seem new.  The sweep, given a clock
 * as it would be then, sets pages older than the cap to the cap and
 * leaves the rest, their idle marks included; a page so set is still
 * older than the cap a whole sweep period (600 s) later.
 */
START_TEST(test_age_saturates)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t page[ZT_PAGE];
	uint64_t seed = 5, t0 = zr_clock(st), i;
	const uint64_t cap = 65535 - 64 - 2 * 600;

	zt_text_bytes(page, sizeof(page), &seed);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(zr_write(st, page, ZT_PAGE, i * ZT_PAGE),
				 ZT_PAGE);
	ck_assert_uint_eq(zr_mark_idle(st, 0), 4);
	/* Ten hours on: nothing over the cap, nothing set. */
	ck_assert_uint_eq(zr_age_clamp(st, t0 + 36000), 0);
	ck_assert_uint_ge(zt_age(st, 0, t0 + 36000), 36000 - 2);
	/* Just over it, then a period later. */
	ck_assert_uint_eq(zr_age_clamp(st, t0 + cap + 100), 4);
	for (i = 0; i < 4; i++) {
		ck_assert_uint_eq(zt_age(st, i, t0 + cap + 100), cap);
		ck_assert_uint_eq(zt_age(st, i, t0 + cap + 700), cap + 600);
	}
	ck_assert_uint_eq(zr_age_clamp(st, t0 + cap + 100), 0);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 4);
	/* Set again at the next sweep: never past 65535. */
	ck_assert_uint_eq(zr_age_clamp(st, t0 + cap + 700), 4);
	ck_assert_uint_eq(zt_age(st, 2, t0 + cap + 1300), cap + 600);
	zr_store_destroy(st);
}
END_TEST

/*
 * A sweep reads the clock once: a page written after that, in a later
 * second, is new, not 65535 s old.  Without that the age clamp dated it
 * 17.9 hours back, and idle marking with an hour's min_age then took
 * it, on a store seconds old.
 */
START_TEST(test_age_ahead)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t page[ZT_PAGE];
	uint64_t seed = 8, t0 = zr_clock(st);
	int i;

	zt_text_bytes(page, sizeof(page), &seed);
	for (i = 0; i < 300 && zr_clock(st) == t0; i++)
		usleep(10 * 1000);
	ck_assert_uint_gt(zr_clock(st), t0);
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, 0), ZT_PAGE);
	ck_assert_uint_eq(zr_age_clamp(st, t0), 0);
	ck_assert_uint_eq(zr_mark_idle(st, 3600), 0);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 0);
	zr_store_destroy(st);
}
END_TEST

START_TEST(test_idle)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	static uint8_t page[ZT_PAGE];
	uint64_t seed = 3;

	zt_text_bytes(page, sizeof(page), &seed);
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, 0), ZT_PAGE);
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, 5 * ZT_PAGE), ZT_PAGE);
	memset(page, 0, sizeof(page));
	ck_assert_int_eq(zr_write(st, page, ZT_PAGE, 9 * ZT_PAGE), ZT_PAGE);
	/* Nothing is an hour old. */
	ck_assert_uint_eq(zr_mark_idle(st, 3600), 0);
	/* "all": every stored page, empty ones are not pages. */
	ck_assert_uint_eq(zr_mark_idle(st, 0), 3);
	ck_assert_uint_eq(zr_mark_idle(st, 0), 0);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 3);
	/* A read, a write and a discard each clear one mark. */
	ck_assert_int_eq(zr_read(st, page, 10, 5 * ZT_PAGE + 3), 10);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 2);
	ck_assert_int_eq(zr_write(st, page, 1, 0), 1);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 1);
	ck_assert_int_eq(zr_discard(st, 9 * ZT_PAGE, ZT_PAGE), 0);
	ck_assert_uint_eq(zt_stats(st).idle_pages, 0);
	ck_assert_uint_eq(zr_mark_idle(st, 0), 2);
	zr_store_destroy(st);
}
END_TEST

/*
 * The page table of a 1 TiB disk is a 4 GiB sparse mapping.  Operations
 * that meet only never-written pages must not write to it: reads of
 * holes, SEEK_DATA across the disk, marking "all" idle and discarding a
 * never-written range.  Each runs on a fresh store in a child that
 * mlockall()s as the daemon does; its RSS must grow by less than
 * ZT_TABLE_SLACK_KIB (touching the table would cost 16 bytes per 4 KiB of
 * disk covered: 4 MiB for the 1 GiB read, 4 GiB for the others).
 */
/*
 * Not under ThreadSanitizer: it writes shadow memory for every load, four
 * times the table's size (16 GiB a phase), so RSS says nothing there.
 */
#if defined(__SANITIZE_THREAD__)
#define ZT_TABLE_TEST 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZT_TABLE_TEST 0
#endif
#endif
#ifndef ZT_TABLE_TEST
#define ZT_TABLE_TEST 1
#endif

#define ZT_BIG_DISK (1ULL << 40)
#define ZT_TABLE_SLACK_KIB 2048
#define ZT_HOLE_CHUNK (1U << 20)

enum zt_table_phase { ZT_READ, ZT_SEEK, ZT_IDLE, ZT_DISCARD, ZT_NPHASES };

/* One phase on a fresh store; returns the number of a failed check or 0. */
static int zt_table_child(int phase)
{
	static uint8_t buf[ZT_HOLE_CHUNK], zero[ZT_HOLE_CHUNK], page[ZT_PAGE];
	struct zr_config cfg = {
		.disksize = ZT_BIG_DISK,
		.algorithm = "lz4",
		.level = ZCOMP_LEVEL_DEFAULT,
	};
	const uint64_t last = ZT_BIG_DISK - ZT_PAGE;
	struct zr_store *st = NULL;
	uint64_t off, seed = 9;
	long rss0, rss1;

	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT))
		return 1;
	if (zr_store_create(&cfg, &st))
		return 2;
	/* Data at both ends; this thread's stream made; buffers resident. */
	tu_fill_random(page, sizeof(page), &seed);
	if (zr_write(st, page, ZT_PAGE, 0) != ZT_PAGE ||
	    zr_write(st, page, ZT_PAGE, last) != ZT_PAGE)
		return 3;
	memset(buf, 0xa5, sizeof(buf));
	memset(zero, 0, sizeof(zero));
	if (zr_read(st, buf, ZT_PAGE, ZT_PAGE) != ZT_PAGE)
		return 4;

	rss0 = tu_status_kib("VmRSS:");
	switch (phase) {
	case ZT_READ:		/* 1 GiB of holes, from 1 GiB on */
		for (off = 1ULL << 30; off < 2ULL << 30; off += ZT_HOLE_CHUNK)
			if (zr_read(st, buf, ZT_HOLE_CHUNK, off) !=
			    ZT_HOLE_CHUNK || memcmp(buf, zero, ZT_HOLE_CHUNK))
				return 10;
		break;
	case ZT_SEEK:		/* across the whole disk */
		if (zr_seek(st, 0, SEEK_HOLE) != ZT_PAGE ||
		    zr_seek(st, ZT_PAGE, SEEK_DATA) != (int64_t)last ||
		    zr_seek(st, ZT_PAGE, SEEK_HOLE) != ZT_PAGE)
			return 11;
		break;
	case ZT_IDLE:		/* "all": the two stored pages */
		if (zr_mark_idle(st, 0) != 2 || zt_stats(st).idle_pages != 2)
			return 12;
		break;
	case ZT_DISCARD:	/* everything between the two pages */
		if (zr_discard(st, ZT_PAGE, last - ZT_PAGE) ||
		    zt_stats(st).miss_free != last / ZT_PAGE - 1 ||
		    zt_stats(st).pages_stored != 2)
			return 13;
		break;
	}
	rss1 = tu_status_kib("VmRSS:");
	if (rss0 < 0 || rss1 < 0)
		return 5;
	if (rss1 - rss0 >= ZT_TABLE_SLACK_KIB) {
		fprintf(stderr, "phase %d: RSS grew by %ld KiB\n", phase,
			rss1 - rss0);
		return 20 + phase;
	}
	/* What was written is still there. */
	if (zr_read(st, buf, ZT_PAGE, last) != ZT_PAGE ||
	    memcmp(buf, page, ZT_PAGE))
		return 6;
	zr_store_destroy(st);
	return 0;
}

START_TEST(test_table_untouched)
{
	static const char *const what[ZT_NPHASES] = {
		"reading holes", "seeking", "marking all idle",
		"discarding never-written pages",
	};

	tu_run_child(zt_table_child, _i, what[_i]);
}
END_TEST

/* Randomized: reads, writes, discards at random places vs. a plain model. */
START_TEST(test_random_model)
{
	const uint64_t disk = 64 * ZT_PAGE;
	struct zr_store *st = zt_open(_i, disk, 0);
	uint8_t *model = calloc(1, disk), *buf = malloc(disk + 32 * ZT_PAGE);
	uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
	int op;

	ck_assert_ptr_nonnull(model);
	ck_assert_ptr_nonnull(buf);
	for (op = 0; op < 3000; op++) {
		uint64_t off = tu_rand(&seed) % (disk + 100);
		static const size_t maxlen[] = { 64, 3 * ZT_PAGE, 24 * ZT_PAGE };
		size_t len = tu_rand(&seed) % maxlen[tu_rand(&seed) % 3];
		size_t in = off < disk ? (len < disk - off ? len :
					  disk - off) : 0;
		unsigned kind = tu_rand(&seed) % 10;
		ssize_t r;

		if (kind < 4) {
			switch (tu_rand(&seed) % 3) {
			case 0:
				zt_text_bytes(buf, len, &seed);
				break;
			case 1:
				tu_fill_random(buf, len, &seed);
				break;
			default:
				memset(buf, (int)(tu_rand(&seed) % 3), len);
			}
			r = zr_write(st, buf, len, off);
			if (!len)
				ck_assert_int_eq(r, 0);
			else if (!in)
				ck_assert_int_eq(r, -EFBIG);
			else
				ck_assert_int_eq(r, (ssize_t)in);
			if (in)
				memcpy(model + off, buf, in);
		} else if (kind < 6) {
			ck_assert_int_eq(zr_discard(st, off, len), 0);
			if (in)
				memset(model + off, 0, in);
		} else {
			r = zr_read(st, buf, len, off);
			ck_assert_int_eq(r, (ssize_t)in);
			if (in)
				ck_assert_mem_eq(buf, model + off, in);
		}
		if (op % 500 == 0)
			zr_compact(st);
	}
	ck_assert_int_eq(zr_read(st, buf, disk, 0), (ssize_t)disk);
	ck_assert_mem_eq(buf, model, disk);
	free(model);
	free(buf);
	zr_store_destroy(st);
}
END_TEST

/*
 * Hammer: threads write self-describing pages (every word holds the page
 * index and a version) to a shared range, read them back and check every
 * page they see is whole, while others discard and compact.
 */
struct zt_hammer {
	struct zr_store *st;
	int id;
	int bad;
};

#define ZT_HAMMER_PAGES 64
#define ZT_HAMMER_THREADS 4
#define ZT_HAMMER_OPS 4000

static void zt_fill_versioned(uint64_t *page, uint64_t idx, uint64_t ver)
{
	size_t i;

	for (i = 0; i < ZT_PAGE / 8; i++)
		page[i] = (idx << 40) | (ver << 12) | (i % 7 ? i : ver % 5);
}

static int zt_check_versioned(const uint64_t *page, uint64_t idx)
{
	uint64_t ver;
	size_t i;

	if (page[0] == 0) {	/* discarded: all zero */
		for (i = 0; i < ZT_PAGE / 8; i++)
			if (page[i])
				return 0;
		return 1;
	}
	ver = (page[1] >> 12) & 0xfffffff;
	for (i = 0; i < ZT_PAGE / 8; i++)
		if (page[i] != ((idx << 40) | (ver << 12) |
				(i % 7 ? i : ver % 5)))
			return 0;
	return 1;
}

static void *zt_hammer_thread(void *arg)
{
	struct zt_hammer *h = arg;
	uint64_t seed = 0xabcdef + (uint64_t)h->id * 7919;
	static __thread uint64_t page[ZT_PAGE / 8];
	static __thread uint64_t big[20 * ZT_PAGE / 8];
	int op, j;

	for (op = 0; op < ZT_HAMMER_OPS; op++) {
		uint64_t idx = 1 + tu_rand(&seed) % ZT_HAMMER_PAGES;
		unsigned kind = tu_rand(&seed) % 16;

		if (kind < 6) {
			zt_fill_versioned(page, idx,
					  1 + tu_rand(&seed) % 100000);
			if (zr_write(h->st, page, ZT_PAGE, idx * ZT_PAGE) !=
			    ZT_PAGE)
				h->bad++;
		} else if (kind < 7) {
			if (zr_discard(h->st, idx * ZT_PAGE, ZT_PAGE))
				h->bad++;
		} else if (kind == 15) {
			/* 20 pages in one request: split across workers. */
			idx = 1 + tu_rand(&seed) % (ZT_HAMMER_PAGES - 20);
			if (tu_rand(&seed) % 2) {
				for (j = 0; j < 20; j++)
					zt_fill_versioned(big + j * ZT_PAGE / 8,
						idx + j,
						1 + tu_rand(&seed) % 100000);
				if (zr_write(h->st, big, sizeof(big),
					     idx * ZT_PAGE) != sizeof(big))
					h->bad++;
			} else {
				if (zr_read(h->st, big, sizeof(big),
					    idx * ZT_PAGE) != sizeof(big))
					h->bad++;
				for (j = 0; j < 20; j++)
					if (!zt_check_versioned(
						big + j * ZT_PAGE / 8, idx + j))
						h->bad++;
			}
		} else if (kind < 8 && h->id == 0) {
			zr_compact(h->st);
		} else {
			if (zr_read(h->st, page, ZT_PAGE, idx * ZT_PAGE) !=
			    ZT_PAGE || !zt_check_versioned(page, idx))
				h->bad++;
		}
	}
	return NULL;
}

START_TEST(test_hammer)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	struct zt_hammer h[ZT_HAMMER_THREADS];
	pthread_t t[ZT_HAMMER_THREADS];
	struct zr_stats s;
	int i;

	for (i = 0; i < ZT_HAMMER_THREADS; i++) {
		h[i] = (struct zt_hammer){ st, i, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, zt_hammer_thread,
						&h[i]), 0);
	}
	for (i = 0; i < ZT_HAMMER_THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(h[i].bad, 0);
	}
	s = zt_stats(st);
	ck_assert_uint_le(s.orig_data_size, ZT_HAMMER_PAGES * ZT_PAGE);
	ck_assert_int_eq(zr_discard(st, 0, ZT_DISK), 0);
	s = zt_stats(st);
	ck_assert_uint_eq(s.orig_data_size, 0);
	ck_assert_uint_eq(s.compr_data_size, 0);
	zr_store_destroy(st);
}
END_TEST

/* The same tests with requests split across helper threads. */
static void zt_parallel_setup(void)
{
	zt_workers = 2;
}

static void zt_parallel_teardown(void)
{
	zt_workers = 0;
}

/* The same tests with a reserve of resident free pages. */
static void zt_reserve_setup(void)
{
	zt_reserve = 1 << 20;
	zt_workers = 1;
}

static void zt_reserve_teardown(void)
{
	zt_reserve = 0;
	zt_workers = 0;
}

/*
 * The cache is filled to its target (the reserve) before the store is
 * handed out, drained by stores and filled again by the background
 * thread, woken by the allocator's signal; the data written meanwhile
 * reads back.  Pages freed past the target stay for reuse, and the
 * thread gives them back within a few seconds.
 */
START_TEST(test_reserve_refill)
{
	struct zr_store *st = zt_open(_i, ZT_DISK, 0);
	uint8_t *buf = malloc(ZT_DISK), *back = malloc(ZT_DISK);
	uint64_t first, seed = 21;
	struct zr_stats s;
	int tries;

	first = zt_stats(st).reserve_bytes;
	ck_assert_uint_eq(first, zt_reserve);
	/*
	 * Random bytes: raw pages, as many as the whole target, and a handle
	 * page: the stores empty the cache unless the thread refills it,
	 * which it does whenever the long runs are down to half.
	 */
	tu_fill_random(buf, ZT_DISK, &seed);
	ck_assert_uint_ge(ZT_DISK, zt_reserve);
	ck_assert_int_eq(zr_write(st, buf, ZT_DISK, 0), (ssize_t)ZT_DISK);
	s = zt_stats(st);
	ck_assert_uint_eq(s.huge_pages, ZT_PAGES);
	for (tries = 0; tries < 500; tries++) {
		s = zt_stats(st);
		if (s.reserve_bytes > zt_reserve / 2)
			break;
		usleep(10000);
	}
	ck_assert_msg(s.reserve_bytes > zt_reserve / 2,
		      "cache %llu bytes 5 s after the stores, %llu at create",
		      (unsigned long long)s.reserve_bytes,
		      (unsigned long long)first);
	ck_assert_int_eq(zr_read(st, back, ZT_DISK, 0), (ssize_t)ZT_DISK);
	ck_assert_mem_eq(back, buf, ZT_DISK);
	/* Freed pages go to the cache, past its target, and age out. */
	ck_assert_int_eq(zr_discard(st, 0, ZT_DISK), 0);
	s = zt_stats(st);
	ck_assert_uint_gt(s.reserve_bytes, zt_reserve);
	ck_assert_uint_le(s.reserve_bytes, zt_reserve * ZS_CACHE_ROOM_FACTOR);
	ck_assert_uint_eq(s.mem_used_total, 0);
	for (tries = 0; tries < 500 && s.reserve_bytes > zt_reserve; tries++) {
		usleep(10000);
		s = zt_stats(st);
	}
	ck_assert_msg(s.reserve_bytes <= zt_reserve,
		      "cache of %llu bytes 5 s after the discard",
		      (unsigned long long)s.reserve_bytes);
	zr_store_destroy(st);
	free(buf);
	free(back);
}
END_TEST

/*
 * A large request alone is shared with the helpers (split_requests counts
 * it); a small one, or any request without helpers, is not.
 */
START_TEST(test_split_alone)
{
	struct zr_store *st = zt_open(0, ZT_DISK, 0);
	uint8_t *buf = malloc(ZT_DISK);
	uint64_t seed = 5;

	tu_fill_random(buf, ZT_DISK, &seed);
	ck_assert_int_eq(zr_write(st, buf, ZR_PARALLEL_MIN - ZT_PAGE, 0),
			 (ssize_t)(ZR_PARALLEL_MIN - ZT_PAGE));
	ck_assert_uint_eq(zt_stats(st).split_requests, 0);
	ck_assert_int_eq(zr_write(st, buf, ZT_DISK, 0), (ssize_t)ZT_DISK);
	ck_assert_int_eq(zr_read(st, buf, ZT_DISK, 0), (ssize_t)ZT_DISK);
	ck_assert_uint_eq(zt_stats(st).split_requests, zt_workers ? 2 : 0);
	zr_store_destroy(st);
	free(buf);
}
END_TEST

/*
 * The slot lock alone: writers keep two counters equal under the write
 * lock, readers check them under the read lock.  Four threads on one
 * slot spin out and sleep on the futex often, so the wake-up paths run.
 */
static struct zr_slot zt_slot;
static uint64_t zt_a, zt_b;	/* guarded by zt_slot */

#define ZT_LOCK_THREADS 4
#define ZT_LOCK_OPS 20000

static void *zt_lock_thread(void *arg)
{
	int *bad = arg, i;

	for (i = 0; i < ZT_LOCK_OPS; i++) {
		if (i % 4 == 0) {
			zr_slot_lock_write(&zt_slot);
			zt_a++;
			sched_yield();	/* hold it long enough to be seen */
			zt_b++;
			zr_slot_unlock_write(&zt_slot);
		} else {
			zr_slot_lock_read(&zt_slot);
			if (zt_a != zt_b)
				(*bad)++;
			zr_slot_unlock_read(&zt_slot);
		}
	}
	return NULL;
}

START_TEST(test_slot_lock)
{
	pthread_t t[ZT_LOCK_THREADS];
	int bad[ZT_LOCK_THREADS] = { 0 };
	int i;

	memset(&zt_slot, 0, sizeof(zt_slot));
	zt_a = zt_b = 0;
	for (i = 0; i < ZT_LOCK_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, zt_lock_thread,
						&bad[i]), 0);
	for (i = 0; i < ZT_LOCK_THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(bad[i], 0);
	}
	ck_assert_uint_eq(zt_a, (uint64_t)ZT_LOCK_THREADS * ZT_LOCK_OPS / 4);
	ck_assert_uint_eq(zt_b, zt_a);
	/* Free again: nothing held, no sleeper left marked. */
	ck_assert_uint_eq(atomic_load(&zt_slot.lock.word) & ~ZR_RW_WAITERS, 0);
}
END_TEST

Suite *zr_store_suite(void)
{
	Suite *s = suite_create("zr_store");
	TCase *tc = tcase_create("core");
	TCase *tm = tcase_create("concurrency");
	TCase *tp, *tl, *tr;
	int n = tu_nbackends();

	tcase_add_test(tc, test_create_bad);
	tcase_add_test(tc, test_split_alone);
	tcase_add_loop_test(tc, test_unwritten_zero, 0, n);
	tcase_add_loop_test(tc, test_roundtrip_lengths, 0, n);
	tcase_add_loop_test(tc, test_incompressible, 0, n);
	tcase_add_loop_test(tc, test_same_filled, 0, n);
	tcase_add_loop_test(tc, test_past_end, 0, n);
	tcase_add_loop_test(tc, test_discard_edges, 0, n);
	tcase_add_loop_test(tc, test_seek, 0, n);
	tcase_add_loop_test(tc, test_corrupt_eio, 0, n);
	tcase_add_loop_test(tc, test_mem_limit, 0, n);
	tcase_add_loop_test(tc, test_mem_limit_whole, 0, n);
	tcase_add_loop_test(tc, test_random_model, 0, n);
	tcase_add_loop_test(tc, test_idle, 0, n);
	tcase_add_loop_test(tc, test_age_saturates, 0, n);
	tcase_add_loop_test(tc, test_age_ahead, 0, n);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(tm, test_hammer, 0, n);
	tcase_set_timeout(tm, 600);
	suite_add_tcase(s, tm);

	tl = tcase_create("slot_lock");
	tcase_add_test(tl, test_slot_lock);
	if (ZT_TABLE_TEST)
		tcase_add_loop_test(tl, test_table_untouched, 0, ZT_NPHASES);
	tcase_set_timeout(tl, 120);
	suite_add_tcase(s, tl);

	tp = tcase_create("parallel");
	tcase_add_checked_fixture(tp, zt_parallel_setup, zt_parallel_teardown);
	tcase_add_loop_test(tp, test_random_model, 0, n);
	tcase_add_loop_test(tp, test_discard_edges, 0, n);
	tcase_add_loop_test(tp, test_mem_limit, 0, n);
	tcase_add_loop_test(tp, test_mem_limit_whole, 0, n);
	tcase_add_loop_test(tp, test_hammer, 0, n);
	tcase_add_test(tp, test_split_alone);
	tcase_set_timeout(tp, 600);
	suite_add_tcase(s, tp);

	tr = tcase_create("reserve");
	tcase_add_checked_fixture(tr, zt_reserve_setup, zt_reserve_teardown);
	tcase_add_loop_test(tr, test_reserve_refill, 0, n);
	tcase_add_loop_test(tr, test_random_model, 0, n);
	tcase_add_loop_test(tr, test_mem_limit, 0, n);
	tcase_add_loop_test(tr, test_hammer, 0, n);
	tcase_set_timeout(tr, 600);
	suite_add_tcase(s, tr);
	return s;
}
