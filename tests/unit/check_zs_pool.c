/*
 * Unit tests of the zs_pool allocator (store/zs_pool.c, store/zs_arena.c).
 *
 * Every object is filled with a pattern derived from a seed, so contents
 * are checked without keeping copies.  The class shapes are recomputed
 * here in floating point, independently of the allocator's integer
 * arithmetic.  The memory tests fork a child (so they work with
 * CK_FORK=no too), one of which mlockall()s, as the daemon does, and
 * check that RssShmem follows the span pages up and falls back when they
 * are freed.  Must run as root (mlockall of the whole address space);
 * the concurrency test must also be clean under ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/zs_pool.h"
#include "store/zs_arena_i.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define MiB (1024 * 1024ULL)

static struct zs_pool *pool;

static void setup(void)
{
	pool = zs_pool_create(256 * MiB);
	ck_assert_ptr_nonnull(pool);
}

static void teardown(void)
{
	atomic_store(&tu_madvise_refuse, 0);	/* a failed check left it on */
	zs_pool_destroy(pool);
	pool = NULL;
}

/* ---- Helpers ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rnd(uint64_t *s, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(splitmix(s) % (hi - lo + 1));
}

/* Fill @buf with the pattern of @seed. */
static void pattern(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t s = seed * 0x100000001b3ULL + len, v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i & 7))
			v = splitmix(&s);
		p[i] = (unsigned char)(v >> ((i & 7) * 8));
	}
}

static int pattern_ok(const void *buf, size_t len, uint64_t seed)
{
	unsigned char want[ZS_MAX_ALLOC];

	pattern(want, len, seed);
	return memcmp(buf, want, len) == 0;
}

static uint64_t store_pat(struct zs_pool *p, size_t len, uint64_t seed)
{
	unsigned char buf[ZS_MAX_ALLOC];
	uint64_t h = 0;
	int ret;

	pattern(buf, len, seed);
	ret = zs_store(p, buf, len, &h);
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_ne(h, 0);
	return h;
}

static int load_ok(struct zs_pool *p, uint64_t h, size_t len, uint64_t seed)
{
	unsigned char buf[ZS_MAX_ALLOC];

	if (zs_load(p, h, buf, len))
		return 0;
	return pattern_ok(buf, len, seed);
}

/* Reference class shape, in floating point: least wasted fraction. */
static unsigned ref_pages(unsigned size)
{
	double best = 2.0;
	unsigned p, bp = 0;

	for (p = 1; p <= 8; p++) {
		double w = (double)(p * 4096 % size) / (p * 4096.0);

		if (w < best) {
			best = w;
			bp = p;
		}
	}
	return bp;
}

static unsigned ref_objs(unsigned size)
{
	return ref_pages(size) * 4096 / size;
}

/* Reference class size: the largest size packing like roundup(len, 16). */
static unsigned ref_class_size(size_t len)
{
	unsigned r = (unsigned)((len + 15) / 16 * 16), s = r;

	while (s + 16 <= 4096 && ref_pages(s + 16) == ref_pages(r) &&
	       ref_objs(s + 16) == ref_objs(r))
		s += 16;
	return s;
}

/* Index of the class of objects of @len, from the stats. */
static unsigned class_of(struct zs_pool *p, size_t len)
{
	struct zs_class_stats st;
	unsigned i;

	for (i = 0; i < zs_class_count(p); i++) {
		ck_assert_int_eq(zs_get_class_stats(p, i, &st), 0);
		if (st.size == zs_class_size(len))
			return i;
	}
	ck_abort_msg("no class for %zu", len);
	return 0;
}

static struct zs_class_stats stats(struct zs_pool *p, unsigned i)
{
	struct zs_class_stats st;

	ck_assert_int_eq(zs_get_class_stats(p, i, &st), 0);
	return st;
}

static uint64_t total_spans(struct zs_pool *p)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < zs_class_count(p); i++)
		n += stats(p, i).spans;
	return n;
}

static uint64_t span_bytes(struct zs_pool *p)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < zs_class_count(p); i++) {
		struct zs_class_stats st = stats(p, i);

		n += st.spans * st.span_pages * 4096;
	}
	return n;
}

/* ---- Create and destroy ------------------------------------------------- */

START_TEST(test_create_destroy)
{
	static const uint64_t maxes[] = { 0, 1, 1ULL << 40, UINT64_MAX };
	unsigned i, k;

	zs_pool_destroy(NULL);
	ck_assert_uint_eq(zs_total_bytes(pool), 0);	/* nothing held yet */
	ck_assert_uint_eq(zs_pages_compacted(pool), 0);
	ck_assert(!zs_fragmented(pool));
	ck_assert_uint_eq(zs_compact(pool), 0);
	for (i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		struct zs_pool *p = zs_pool_create(maxes[i]);
		uint64_t h[64];

		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(zs_class_count(p), zs_class_count(pool));
		for (k = 0; k < 64; k++)
			h[k] = store_pat(p, 1 + k * 64, k);
		for (k = 0; k < 64; k++)
			ck_assert(load_ok(p, h[k], 1 + k * 64, k));
		for (k = 0; k < 64; k += 2)
			zs_free(p, h[k], 1 + k * 64);
		/* Destroyed with live objects, in every kind of class. */
		zs_pool_destroy(p);
	}
}
END_TEST

/* ---- Classes ------------------------------------------------------------ */

START_TEST(test_class_size)
{
	uint64_t h = 0, before = zs_total_bytes(pool);
	unsigned char buf[ZS_MAX_ALLOC + 1] = { 0 };
	size_t len;

	ck_assert_uint_eq(zs_class_size(0), 0);
	ck_assert_uint_eq(zs_class_size(1), 16);
	ck_assert_uint_eq(zs_class_size(15), 16);
	ck_assert_uint_eq(zs_class_size(16), 16);
	ck_assert_uint_eq(zs_class_size(17), 32);
	ck_assert_uint_eq(zs_class_size(4080), 4096);	/* merged: 1 per page */
	ck_assert_uint_eq(zs_class_size(4095), 4096);
	ck_assert_uint_eq(zs_class_size(4096), 4096);
	ck_assert_uint_eq(zs_class_size(4097), 0);
	ck_assert_uint_eq(zs_class_size(SIZE_MAX), 0);
	for (len = 1; len <= 4096; len++) {
		size_t cs = zs_class_size(len);

		ck_assert_uint_ge(cs, len);
		ck_assert_uint_eq(cs % 16, 0);
		ck_assert_uint_eq(cs, ref_class_size(len));
	}
	ck_assert_int_eq(zs_store(pool, buf, 0, &h), -EINVAL);
	ck_assert_int_eq(zs_store(pool, buf, 4097, &h), -EINVAL);
	ck_assert_uint_eq(h, 0);
	ck_assert_uint_eq(zs_total_bytes(pool), before);
	ck_assert_uint_eq(total_spans(pool), 0);
}
END_TEST

START_TEST(test_class_table)
{
	struct zs_class_stats st;
	unsigned i, n = zs_class_count(pool), distinct = 0, prev = 0;
	size_t len;

	for (len = 1; len <= 4096; len++) {
		if (zs_class_size(len) != prev)
			distinct++;
		prev = (unsigned)zs_class_size(len);
	}
	ck_assert_uint_eq(n, distinct);
	ck_assert_int_eq(zs_get_class_stats(pool, n, &st), -EINVAL);
	prev = 0;
	for (i = 0; i < n; i++) {
		unsigned p;

		st = stats(pool, i);
		ck_assert_uint_gt(st.size, prev);	/* ascending */
		prev = st.size;
		ck_assert_uint_eq(st.span_pages, ref_pages(st.size));
		ck_assert_uint_eq(st.objs_per_span, ref_objs(st.size));
		ck_assert_uint_eq(st.objs_per_span,
				  st.span_pages * 4096 / st.size);
		ck_assert(st.span_pages >= 1 && st.span_pages <= 8);
		/* None wastes a smaller fraction, none shorter as little. */
		for (p = 1; p <= 8; p++) {
			unsigned w = p * 4096 % st.size;
			unsigned bw = st.span_pages * 4096 % st.size;

			ck_assert_uint_ge((uint64_t)w * st.span_pages,
					  (uint64_t)bw * p);
			if (p < st.span_pages)
				ck_assert_uint_gt((uint64_t)w * st.span_pages,
						  (uint64_t)bw * p);
		}
		ck_assert_uint_eq(st.spans, 0);
	}
	st = stats(pool, n - 1);
	ck_assert_uint_eq(st.size, 4096);
	ck_assert_uint_eq(st.span_pages, 1);
	ck_assert_uint_eq(st.objs_per_span, 1);
}
END_TEST

/* Objects of a class fill whole spans: objs_per_span per span, no more. */
START_TEST(test_span_packing)
{
	static const unsigned sizes[] = { 16, 48, 1200, 2512, 3264, 4096 };
	uint64_t *h = malloc(600 * sizeof(*h));
	unsigned k, j;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned ci = class_of(pool, sizes[k]);
		struct zs_class_stats st = stats(pool, ci);
		uint64_t t0 = zs_total_bytes(pool), t1;

		ck_assert_uint_eq(st.size, sizes[k]);
		ck_assert_uint_le(st.objs_per_span + 1, 600);
		for (j = 0; j < st.objs_per_span; j++)
			h[j] = store_pat(pool, sizes[k], j);
		st = stats(pool, ci);
		ck_assert_uint_eq(st.spans, 1);
		ck_assert_uint_eq(st.objs_used, st.objs_per_span);
		ck_assert_uint_eq(st.objs_total, st.objs_per_span);
		t1 = zs_total_bytes(pool);
		ck_assert_uint_ge(t1 - t0, st.span_pages * 4096ULL);
		/* span pages, one span struct, one handle chunk */
		ck_assert_uint_le(t1 - t0, st.span_pages * 4096ULL +
				  st.objs_per_span * 4 + 12288);
		h[j] = store_pat(pool, sizes[k], j);
		st = stats(pool, ci);
		ck_assert_uint_eq(st.spans, 2);
		ck_assert_uint_eq(st.objs_total, 2 * st.objs_per_span);
		ck_assert_uint_ge(zs_total_bytes(pool) - t1,
				  st.span_pages * 4096ULL);
		for (j = 0; j <= st.objs_per_span; j++)
			ck_assert(load_ok(pool, h[j], sizes[k], j));
		/* The last object went alone into the second span. */
		zs_free(pool, h[st.objs_per_span], sizes[k]);
		ck_assert_uint_eq(stats(pool, ci).spans, 1);
		/* (A handle chunk it may have needed stays as the spare.) */
		ck_assert_uint_le(zs_total_bytes(pool), t1 + 4096);
		for (j = 0; j < st.objs_per_span; j++)
			zs_free(pool, h[j], sizes[k]);
		ck_assert_uint_eq(stats(pool, ci).spans, 0);
		ck_assert_uint_le(zs_total_bytes(pool), t0 + 12288);
	}
	free(h);
}
END_TEST

/* Classes whose objects cross page boundaries inside their spans. */
START_TEST(test_straddle)
{
	static const unsigned sizes[] = { 1200, 2512, 3632, 48, 720 };
	uint64_t h[3 * 256];
	unsigned k, j;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct zs_class_stats st = stats(pool, class_of(pool,
								sizes[k]));
		unsigned n = 3 * st.objs_per_span, crossing = 0;
		size_t len;

		ck_assert_uint_gt(st.span_pages, 1);
		ck_assert_uint_le(n, 3 * 256);
		for (j = 0; j < st.objs_per_span; j++)
			if (j * st.size / 4096 !=
			    ((j + 1) * st.size - 1) / 4096)
				crossing++;
		ck_assert_uint_gt(crossing, 0);
		for (j = 0; j < n; j++) {
			len = sizes[k] - (j % 16);	/* same class */
			h[j] = store_pat(pool, len, 1000 * k + j);
		}
		for (j = 0; j < n; j++)
			ck_assert(load_ok(pool, h[j], sizes[k] - (j % 16),
					  1000 * k + j));
		/* Free every other one and refill: neighbours stay intact. */
		for (j = 0; j < n; j += 2)
			zs_free(pool, h[j], sizes[k] - (j % 16));
		for (j = 0; j < n; j += 2)
			h[j] = store_pat(pool, sizes[k] - (j % 16),
					 5000 + 1000 * k + j);
		for (j = 0; j < n; j++)
			ck_assert(load_ok(pool, h[j], sizes[k] - (j % 16),
					  (j % 2 ? 0 : 5000) + 1000 * k + j));
		ck_assert_uint_eq(stats(pool, class_of(pool, sizes[k])).spans,
				  3);
	}
}
END_TEST

/* ---- Fullness ----------------------------------------------------------- */

START_TEST(test_fullness)
{
	enum { N = 6000 };
	uint64_t *h = malloc(N * sizeof(*h)), seed = 7;
	unsigned *len = malloc(N * sizeof(*len)), *order = malloc(N * 4);
	uint64_t base = zs_total_bytes(pool), peak;
	unsigned i;

	for (i = 0; i < N; i++) {
		len[i] = rnd(&seed, 1, 4096);
		h[i] = store_pat(pool, len[i], i);
		order[i] = i;
	}
	peak = zs_total_bytes(pool);
	ck_assert_uint_gt(peak, base + 6 * MiB);
	for (i = N - 1; i > 0; i--) {
		unsigned j = rnd(&seed, 0, i), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < N; i++) {
		unsigned k = order[i];

		ck_assert(load_ok(pool, h[k], len[k], k));
		zs_free(pool, h[k], len[k]);
	}
	ck_assert_uint_eq(total_spans(pool), 0);
	for (i = 0; i < zs_class_count(pool); i++) {
		ck_assert_uint_eq(stats(pool, i).objs_used, 0);
		ck_assert_uint_eq(stats(pool, i).objs_total, 0);
	}
	/* Nothing is left: handle and span-struct pages went back too. */
	ck_assert_uint_eq(base, 0);
	ck_assert_uint_eq(zs_total_bytes(pool), 0);
	ck_assert(!zs_fragmented(pool));
	free(h);
	free(len);
	free(order);
}
END_TEST

/* ---- Compaction --------------------------------------------------------- */

START_TEST(test_compact_stable)
{
	enum { N = 12000 };
	uint64_t *h = malloc(N * sizeof(*h)), seed = 11, got, before;
	unsigned *len = malloc(N * sizeof(*len));
	unsigned i;

	for (i = 0; i < N; i++) {
		len[i] = rnd(&seed, 1, 4096);
		h[i] = store_pat(pool, len[i], i);
	}
	for (i = 0; i < N; i++) {
		if (i % 3) {
			zs_free(pool, h[i], len[i]);
			h[i] = 0;
		}
	}
	ck_assert(zs_fragmented(pool));
	before = zs_total_bytes(pool);
	ck_assert_uint_eq(zs_pages_compacted(pool), 0);
	got = zs_compact(pool);
	ck_assert_uint_gt(got, 256);
	ck_assert_uint_eq(zs_pages_compacted(pool), got);
	ck_assert_uint_le(zs_total_bytes(pool), before - got * 4096);
	ck_assert(!zs_fragmented(pool));
	for (i = 0; i < zs_class_count(pool); i++) {
		struct zs_class_stats st = stats(pool, i);

		ck_assert_uint_lt(st.objs_total - st.objs_used,
				  st.objs_per_span);
	}
	/* Same handles, same contents. */
	for (i = 0; i < N; i++)
		if (h[i])
			ck_assert(load_ok(pool, h[i], len[i], i));
	ck_assert_uint_eq(zs_compact(pool), 0);
	ck_assert_uint_eq(zs_pages_compacted(pool), got);
	/* The pool works on: store, free, compact again. */
	for (i = 0; i < N; i++) {
		if (!h[i]) {
			h[i] = store_pat(pool, len[i], i + N);
		} else if (i % 2) {
			zs_free(pool, h[i], len[i]);
			h[i] = 0;
		}
	}
	zs_compact(pool);
	for (i = 0; i < N; i++) {
		if (h[i]) {
			ck_assert(load_ok(pool, h[i], len[i],
					  i % 3 ? i + N : i));
			zs_free(pool, h[i], len[i]);
		}
	}
	ck_assert_uint_eq(total_spans(pool), 0);
	free(h);
	free(len);
}
END_TEST

/* Compaction while readers and writers run, in every class. */
enum { CC_SHARED = 6000, CC_WRITERS = 2, CC_READERS = 2 };

struct cc_ctx {
	uint64_t h[CC_SHARED];		/* odd ones live, read-only */
	unsigned len[CC_SHARED];
	atomic_int stop;
	atomic_int bad;
	atomic_uint compactions;
};

struct cc_arg {
	struct cc_ctx *cc;
	uint64_t seed;
};

static int cc_read_cb(const void *obj, size_t len, void *arg)
{
	return pattern_ok(obj, len, *(uint64_t *)arg) ? 7 : -1;
}

static void *cc_writer(void *p)
{
	struct cc_arg *a = p;
	uint64_t h[128] = { 0 }, seed = a->seed;
	unsigned len[128], i, k;
	unsigned char buf[ZS_MAX_ALLOC];

	for (i = 0; i < 20000; i++) {
		k = rnd(&seed, 0, 127);
		if (h[k]) {
			if (!load_ok(pool, h[k], len[k], a->seed + k))
				atomic_fetch_add(&a->cc->bad, 1);
			zs_free(pool, h[k], len[k]);
			h[k] = 0;
		} else {
			len[k] = rnd(&seed, 1, 4096);
			pattern(buf, len[k], a->seed + k);
			if (zs_store(pool, buf, len[k], &h[k]))
				atomic_fetch_add(&a->cc->bad, 1);
		}
	}
	for (k = 0; k < 128; k++) {
		if (h[k]) {
			if (!load_ok(pool, h[k], len[k], a->seed + k))
				atomic_fetch_add(&a->cc->bad, 1);
			zs_free(pool, h[k], len[k]);
		}
	}
	return NULL;
}

static void *cc_reader(void *p)
{
	struct cc_arg *a = p;
	uint64_t seed = a->seed, s;
	unsigned i, k;

	for (i = 0; i < 40000; i++) {
		k = rnd(&seed, 0, CC_SHARED / 2 - 1) * 2 + 1;
		s = k;
		if (i % 2) {
			if (!load_ok(pool, a->cc->h[k], a->cc->len[k], k))
				atomic_fetch_add(&a->cc->bad, 1);
		} else if (zs_read(pool, a->cc->h[k], a->cc->len[k],
				   cc_read_cb, &s) != 7) {
			atomic_fetch_add(&a->cc->bad, 1);
		}
	}
	return NULL;
}

static void *cc_compactor(void *p)
{
	struct cc_arg *a = p;
	struct zs_class_stats st;
	unsigned i = 0;

	while (!atomic_load(&a->cc->stop)) {
		if (zs_cache_wanted(pool)) {
			zs_cache_refill(pool);
			zs_cache_age(pool);
		}
		zs_compact(pool);
		(void)zs_fragmented(pool);
		zs_get_class_stats(pool, i++ % zs_class_count(pool), &st);
		atomic_fetch_add(&a->cc->compactions, 1);
	}
	return NULL;
}

/*
 * Writers, readers and a compactor at once; with a @cache target the
 * compactor also refills and ages the cache, which the writers drain and
 * feed.
 */
static void compact_concurrent(uint64_t cache)
{
	struct cc_ctx *cc = calloc(1, sizeof(*cc));
	pthread_t w[CC_WRITERS], r[CC_READERS], c;
	struct cc_arg wa[CC_WRITERS], ra[CC_READERS], ca = { cc, 0 };
	uint64_t seed = 3;
	unsigned i;

	zs_set_cache(pool, cache);
	for (i = 0; i < CC_SHARED; i++) {
		cc->len[i] = rnd(&seed, 1, 4096);
		cc->h[i] = store_pat(pool, cc->len[i], i);
	}
	for (i = 0; i < CC_SHARED; i += 2)
		zs_free(pool, cc->h[i], cc->len[i]);
	ck_assert_int_eq(pthread_create(&c, NULL, cc_compactor, &ca), 0);
	for (i = 0; i < CC_WRITERS; i++) {
		wa[i] = (struct cc_arg){ cc, 1000000 * (i + 1) };
		ck_assert_int_eq(pthread_create(&w[i], NULL, cc_writer,
						&wa[i]), 0);
	}
	for (i = 0; i < CC_READERS; i++) {
		ra[i] = (struct cc_arg){ cc, 77 + i };
		ck_assert_int_eq(pthread_create(&r[i], NULL, cc_reader,
						&ra[i]), 0);
	}
	for (i = 0; i < CC_WRITERS; i++)
		pthread_join(w[i], NULL);
	for (i = 0; i < CC_READERS; i++)
		pthread_join(r[i], NULL);
	atomic_store(&cc->stop, 1);
	pthread_join(c, NULL);

	ck_assert_int_eq(atomic_load(&cc->bad), 0);
	ck_assert_uint_gt(atomic_load(&cc->compactions), 0);
	ck_assert_uint_gt(zs_pages_compacted(pool), 0);
	for (i = 1; i < CC_SHARED; i += 2) {
		ck_assert(load_ok(pool, cc->h[i], cc->len[i], i));
		zs_free(pool, cc->h[i], cc->len[i]);
	}
	ck_assert_uint_eq(total_spans(pool), 0);
	ck_assert_uint_eq(zs_total_bytes(pool), 0);
	ck_assert_uint_le(zs_cache_bytes(pool), cache * ZS_CACHE_ROOM_FACTOR);
	free(cc);
}

START_TEST(test_compact_concurrent)
{
	compact_concurrent(0);
	ck_assert_uint_eq(zs_cache_bytes(pool), 0);
}
END_TEST

START_TEST(test_cache_concurrent)
{
	compact_concurrent(1 * MiB);
}
END_TEST


/*
 * Two compactors at once (the store calls zs_compact() from the I/O path
 * on -ENOSPC, from its background thread and for control/compact): the
 * handle page's "pinned" is one flag, not a count, so one walk unpins,
 * and a free then drops, the handle page the other walk is still on.
 * Frees here empty whole handle pages (handle >> 8 is the entry index,
 * 512 a page, as the essay in zs_pool.c says).
 */
enum { TC_N = 509 * 64, TC_LEN = 2000, TC_COMPACTORS = 2 };
/* ThreadSanitizer runs it some twenty times slower: fewer rounds there
 * (still hundreds of walks crossing each other). */
#if defined(__SANITIZE_THREAD__)
#define TC_ROUNDS 100
#else
#define TC_ROUNDS 1500
#endif

struct tc_ctx {
	uint64_t h[TC_N];
	atomic_int stop;
	atomic_int bad;
};

static void *tc_compactor(void *p)
{
	struct tc_ctx *t = p;

	while (!atomic_load(&t->stop))
		zs_compact(pool);
	return NULL;
}

static void tc_free(struct tc_ctx *t, unsigned k)
{
	if (!load_ok(pool, t->h[k], TC_LEN, k))
		atomic_fetch_add(&t->bad, 1);
	zs_free(pool, t->h[k], TC_LEN);
	t->h[k] = 0;
}

START_TEST(test_compact_two_walks)
{
	struct tc_ctx *t = calloc(1, sizeof(*t));
	pthread_t c[TC_COMPACTORS];
	uint64_t seed = 11;
	unsigned i, k, round;

	for (i = 0; i < TC_N; i++)
		t->h[i] = store_pat(pool, TC_LEN, i);
	for (i = 0; i < TC_COMPACTORS; i++)
		ck_assert_int_eq(pthread_create(&c[i], NULL, tc_compactor, t),
				 0);
	for (round = 0; round < TC_ROUNDS; round++) {
		/* Empty the handle page of a random live handle... */
		uint64_t page = (t->h[rnd(&seed, 0, TC_N - 1)] >> 8) / 512;

		for (k = 0; k < TC_N; k++)
			if (t->h[k] && (t->h[k] >> 8) / 512 == page)
				tc_free(t, k);
		/* ...leave spans sparse... */
		for (i = 0; i < 64; i++) {
			k = rnd(&seed, 0, TC_N - 1);
			if (t->h[k])
				tc_free(t, k);
		}
		/* ...and store again (into other handle pages). */
		if (round % 8 == 7)
			for (k = 0; k < TC_N; k++)
				if (!t->h[k])
					t->h[k] = store_pat(pool, TC_LEN, k);
	}
	atomic_store(&t->stop, 1);
	for (i = 0; i < TC_COMPACTORS; i++)
		pthread_join(c[i], NULL);
	for (i = 0; i < TC_N; i++)
		if (t->h[i])
			tc_free(t, i);
	ck_assert_int_eq(atomic_load(&t->bad), 0);
	ck_assert_uint_eq(total_spans(pool), 0);
	ck_assert_uint_eq(zs_total_bytes(pool), 0);
	free(t);
}
END_TEST


/*
 * zs_cache_age() reads the clock once and then takes the cache lock per
 * stack; a run cached meanwhile has a stamp after that reading.  It is
 * 0 ms old, not 2^32 - 5 ms: it must stay cached.
 */
START_TEST(test_age_stamp_ahead)
{
	struct zs_arena a;
	uint32_t now;
	int64_t pg;

	ck_assert_int_eq(zs_arena_init(&a, 64 * MiB), 0);
	zs_arena_set_cache(&a, 8);
	now = zs_arena_now_ms();	/* the aging pass reads its clock */
	pg = zs_arena_get(&a, 1);	/* an I/O thread frees a span */
	ck_assert_int_ge(pg, 0);
	memset(zs_arena_addr(&a, (uint64_t)pg), 1, ZS_PAGE_SIZE);
	usleep(20000);
	zs_arena_put(&a, (uint64_t)pg, 1);
	ck_assert_uint_eq(zs_arena_cache_pages(&a), 1);
	zs_arena_age(&a, now);		/* the pass gets to stack 1 */
	ck_assert_uint_eq(zs_arena_cache_pages(&a), 1);
	zs_arena_fini(&a);
}
END_TEST

/* Heap allocations made inside @call (not by the test's assertions). */
#define COUNT_MALLOCS(n, call) do { \
	unsigned long b_ = atomic_load(&tu_mallocs); \
	call; \
	(n) += atomic_load(&tu_mallocs) - b_; \
} while (0)

/*
 * No heap allocation at all once the pool exists, by construction, not
 * after a warm-up: a fresh pool's first stores of every kind of class,
 * growth into new spans and handle pages, churn as swap makes it (a ring
 * of live objects, the oldest freed as each new one is stored),
 * compaction, and the cache's refill and aging, counted by the binary's
 * wrapped malloc around each call into the pool.
 */
START_TEST(test_no_malloc)
{
	enum { N = 4096, RING = 512 };
	static uint64_t h[N];
	static unsigned len[N];
	unsigned char buf[ZS_MAX_ALLOC];
	uint64_t seed = 17;
	unsigned long n = 0, sane = 0;
	unsigned i, k, bad = 0, failed = 0;
	struct zs_pool *p = zs_pool_create(256 * MiB);

	ck_assert_ptr_nonnull(p);
	/* The counter sees this binary's mallocs. */
	COUNT_MALLOCS(sane, { void *volatile q = malloc(16); free(q); });
	ck_assert_uint_eq(sane, 1);
	COUNT_MALLOCS(n, zs_set_cache(p, 1 * MiB));
	COUNT_MALLOCS(n, zs_cache_refill(p));
	for (k = 0; k < N; k++) {
		len[k] = rnd(&seed, 1, 4096);
		pattern(buf, len[k], k);
		COUNT_MALLOCS(n, failed += !!zs_store(p, buf, len[k], &h[k]));
	}
	for (k = 0; k < N; k++) {
		COUNT_MALLOCS(n, zs_load(p, h[k], buf, len[k]));
		bad += !pattern_ok(buf, len[k], k);
		COUNT_MALLOCS(n, zs_free(p, h[k], len[k]));
		h[k] = 0;
	}
	for (i = 0; i < 40000; i++) {
		k = i % RING;
		if (i == 20000) {
			COUNT_MALLOCS(n, zs_compact(p));
			COUNT_MALLOCS(n, zs_cache_refill(p));
			COUNT_MALLOCS(n, zs_cache_age(p));
		}
		if (h[k]) {
			COUNT_MALLOCS(n, zs_load(p, h[k], buf, len[k]));
			bad += !pattern_ok(buf, len[k], i - RING);
			COUNT_MALLOCS(n, zs_free(p, h[k], len[k]));
		}
		len[k] = rnd(&seed, 1, 4096);
		pattern(buf, len[k], i);
		COUNT_MALLOCS(n, failed += !!zs_store(p, buf, len[k], &h[k]));
		if (i % 7 == 0 && i < 20000) {	/* fragment, for compaction */
			COUNT_MALLOCS(n, zs_free(p, h[k], len[k]));
			h[k] = 0;
		}
	}
	ck_assert_uint_eq(failed, 0);
	ck_assert_uint_eq(bad, 0);
	ck_assert_msg(n == 0, "%lu heap allocations by the pool", n);
	for (k = 0; k < RING; k++)
		if (h[k])
			zs_free(p, h[k], len[k]);
	ck_assert_uint_eq(total_spans(p), 0);
	ck_assert_uint_eq(zs_total_bytes(p), 0);
	zs_pool_destroy(p);
}
END_TEST

/*
 * Metadata is whole arena pages, charged like span pages: a class's first
 * object costs its span, a handle page and (the pool's first span) a
 * span-struct page; another class's first shares the span-struct page;
 * the raw class has no span struct.  All of it goes when they are freed.
 */
START_TEST(test_metadata_bytes)
{
	struct zs_class_stats a = stats(pool, class_of(pool, 1000));
	struct zs_class_stats b = stats(pool, class_of(pool, 2000));
	uint64_t ha, hb, hr, hr2;

	ck_assert_uint_eq(zs_total_bytes(pool), 0);
	ha = store_pat(pool, 1000, 1);
	ck_assert_uint_eq(zs_total_bytes(pool),
			  (a.span_pages + 1 + 1) * 4096ULL);
	hb = store_pat(pool, 2000, 2);
	ck_assert_uint_eq(zs_total_bytes(pool),
			  (a.span_pages + b.span_pages + 3) * 4096ULL);
	hr = store_pat(pool, 4096, 3);
	hr2 = store_pat(pool, 4000, 4);
	ck_assert_uint_eq(zs_total_bytes(pool),
			  (a.span_pages + b.span_pages + 3 + 3) * 4096ULL);
	zs_free(pool, hr, 4096);
	zs_free(pool, ha, 1000);
	ck_assert_uint_eq(zs_total_bytes(pool),
			  (b.span_pages + 2 + 2) * 4096ULL);
	zs_free(pool, hb, 2000);
	zs_free(pool, hr2, 4000);
	ck_assert_uint_eq(zs_total_bytes(pool), 0);
}
END_TEST

/* ---- Limit -------------------------------------------------------------- */

START_TEST(test_limit)
{
	enum { LEN = 3000, MAX = 1000 };
	uint64_t h[MAX], t, lim, hx = 0, hy, hz = 0;
	unsigned char buf[ZS_MAX_ALLOC];
	unsigned n = 0, i, ci = class_of(pool, LEN);
	struct zs_class_stats st, st2;
	int ret;

	ck_assert_uint_eq(zs_get_limit(pool), 0);
	lim = zs_total_bytes(pool) + 256 * 1024;
	zs_set_limit(pool, lim);
	ck_assert_uint_eq(zs_get_limit(pool), lim);
	pattern(buf, LEN, 0);
	for (;;) {
		ck_assert_uint_lt(n, MAX);
		pattern(buf, LEN, n);
		ret = zs_store(pool, buf, LEN, &h[n]);
		ck_assert_uint_le(zs_total_bytes(pool), lim);
		if (ret)
			break;
		n++;
	}
	ck_assert_int_eq(ret, -ENOSPC);
	ck_assert_uint_gt(n, 40);
	/* The refusal allocated nothing; it goes on refusing. */
	t = zs_total_bytes(pool);
	st = stats(pool, ci);
	ck_assert_uint_eq(st.objs_used, n);
	ck_assert_uint_eq(st.objs_total, n);	/* spans are all full */
	ck_assert_int_eq(zs_store(pool, buf, LEN, &hx), -ENOSPC);
	ck_assert_int_eq(zs_store(pool, buf, 100, &hx), -ENOSPC);
	ck_assert_uint_eq(hx, 0);
	ck_assert_uint_eq(zs_total_bytes(pool), t);
	st2 = stats(pool, ci);
	ck_assert_uint_eq(st2.spans, st.spans);
	ck_assert_uint_eq(stats(pool, class_of(pool, 100)).spans, 0);
	/* Freeing one object makes room in its span, without a new span. */
	zs_free(pool, h[0], LEN);
	h[0] = store_pat(pool, LEN, 0);
	ck_assert_uint_eq(zs_total_bytes(pool), t);
	/* Freeing a whole span's worth lets a new span in. */
	for (i = 0; i < st.objs_per_span; i++)
		zs_free(pool, h[--n], LEN);
	ck_assert_uint_lt(zs_total_bytes(pool), t);
	hx = store_pat(pool, 2000, 99);	/* a 1-page class, 2 per span */
	ck_assert_uint_le(zs_total_bytes(pool), lim);
	/* A limit under current use: objects stay, room is used, no span. */
	zs_set_limit(pool, zs_total_bytes(pool) / 2);
	for (i = 0; i < n; i++)
		ck_assert(load_ok(pool, h[i], LEN, i));
	ck_assert(load_ok(pool, hx, 2000, 99));
	zs_free(pool, h[--n], LEN);
	h[n] = store_pat(pool, LEN, n);	/* into the freed slot */
	n++;
	hy = store_pat(pool, 2000, 98);	/* beside hx */
	t = zs_total_bytes(pool);
	ck_assert_int_eq(zs_store(pool, buf, 2000, &hz), -ENOSPC);
	ck_assert_int_eq(zs_store(pool, buf, 100, &hz), -ENOSPC);
	ck_assert_uint_eq(hz, 0);
	ck_assert_uint_eq(zs_total_bytes(pool), t);
	zs_free(pool, hx, 2000);
	zs_free(pool, hy, 2000);
	/* No limit. */
	zs_set_limit(pool, 0);
	ck_assert_uint_eq(zs_get_limit(pool), 0);
	for (i = 0; i < 20; i++, n++)
		h[n] = store_pat(pool, LEN, n);
	for (i = 0; i < n; i++) {
		ck_assert(load_ok(pool, h[i], LEN, i));
		zs_free(pool, h[i], LEN);
	}
}
END_TEST

/* ---- zs_read ------------------------------------------------------------ */

struct read_arg {
	uint64_t seed;
	size_t seen_len;
	int calls;
};

static int read_cb(const void *obj, size_t len, void *arg)
{
	struct read_arg *ra = arg;

	ra->calls++;
	ra->seen_len = len;
	return pattern_ok(obj, len, ra->seed) ? (int)len : -EIO;
}

static int read_fail_cb(const void *obj, size_t len, void *arg)
{
	(void)obj;
	(void)len;
	(void)arg;
	return -EBADMSG;
}

START_TEST(test_read_cb)
{
	static const size_t lens[] = { 1, 16, 17, 1000, 2512, 4095, 4096 };
	unsigned i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t h = store_pat(pool, lens[i], 40 + i);
		struct read_arg ra = { 40 + i, 0, 0 };

		ck_assert_int_eq(zs_read(pool, h, lens[i], read_cb, &ra),
				 (int)lens[i]);
		ck_assert_int_eq(ra.calls, 1);
		ck_assert_uint_eq(ra.seen_len, lens[i]);
		ck_assert_int_eq(zs_read(pool, h, lens[i], read_fail_cb, NULL),
				 -EBADMSG);
		zs_free(pool, h, lens[i]);
	}
}
END_TEST

/* ---- Randomized, against a model ---------------------------------------- */

START_TEST(test_random_model)
{
	enum { SLOTS = 3000, OPS = 60000 };
	struct { uint64_t h, seed; unsigned len; } *m = calloc(SLOTS,
							       sizeof(*m));
	uint64_t seed = 1234, next_seed = 1, live_bytes = 0;
	unsigned i, k, live = 0;

	for (i = 0; i < OPS; i++) {
		unsigned op = rnd(&seed, 0, 99);

		k = rnd(&seed, 0, SLOTS - 1);
		if (!m[k].h) {
			unsigned r = rnd(&seed, 0, 9);

			/* Mostly compressed-page sizes; some at the edges. */
			m[k].len = r == 0 ? rnd(&seed, 1, 64) :
				   r == 1 ? rnd(&seed, 4000, 4096) :
				   rnd(&seed, 900, 3900);
			m[k].seed = next_seed++;
			m[k].h = store_pat(pool, m[k].len, m[k].seed);
			live++;
			live_bytes += m[k].len;
		} else if (op < 55) {
			ck_assert(load_ok(pool, m[k].h, m[k].len, m[k].seed));
		} else {
			ck_assert(load_ok(pool, m[k].h, m[k].len, m[k].seed));
			zs_free(pool, m[k].h, m[k].len);
			m[k].h = 0;
			live--;
			live_bytes -= m[k].len;
		}
		if (i % 20000 == 19999)
			zs_compact(pool);
	}
	{
		uint64_t used = 0;

		for (k = 0; k < zs_class_count(pool); k++)
			used += stats(pool, k).objs_used;
		ck_assert_uint_eq(used, live);
	}
	ck_assert_uint_ge(zs_total_bytes(pool), live_bytes);
	for (k = 0; k < SLOTS; k++) {
		if (m[k].h) {
			ck_assert(load_ok(pool, m[k].h, m[k].len, m[k].seed));
			zs_free(pool, m[k].h, m[k].len);
		}
	}
	ck_assert_uint_eq(total_spans(pool), 0);
	free(m);
}
END_TEST

/* ---- Efficiency --------------------------------------------------------- */

START_TEST(test_efficiency)
{
	enum { N = 60000 };
	uint64_t *h = malloc(N * sizeof(*h)), seed = 99;
	unsigned *len = malloc(N * sizeof(*len));
	uint64_t sum_class = 0, sum_len = 0, t;
	double full, third;
	unsigned i;

	for (i = 0; i < N; i++) {
		len[i] = rnd(&seed, 1200, 3800);
		sum_class += zs_class_size(len[i]);
		h[i] = store_pat(pool, len[i], i);
	}
	t = zs_total_bytes(pool);
	full = (double)t / (double)sum_class;
	ck_assert_uint_le(t, sum_class * 103 / 100 + MiB);
	for (i = 0; i < N; i++) {
		if (i % 3) {
			zs_free(pool, h[i], len[i]);
		} else {
			sum_len += len[i];
		}
	}
	zs_compact(pool);
	t = zs_total_bytes(pool);
	third = (double)t / (double)sum_len;
	ck_assert_uint_le(t, sum_len * 110 / 100 + 2 * MiB);
	for (i = 0; i < N; i += 3) {
		if (i % 97 == 0)
			ck_assert(load_ok(pool, h[i], len[i], i));
		zs_free(pool, h[i], len[i]);
	}
	t = zs_total_bytes(pool);
	fprintf(stderr, "zs_pool efficiency: full %.4f x class sizes, "
		"a third compacted %.4f x lengths, empty %llu bytes\n",
		full, third, (unsigned long long)t);
	ck_assert_uint_lt(t, 2 * MiB);
	free(h);
	free(len);
}
END_TEST

/*
 * A small arena (64 MiB of address space) serves three times its size in
 * churn: freed runs of every length are found and reused.
 */
START_TEST(test_arena_reuse)
{
	enum { SLOTS = 4000 };
	struct zs_pool *p = zs_pool_create(1);
	uint64_t *h = calloc(SLOTS, sizeof(*h)), seed = 17, churn = 0;
	unsigned *len = calloc(SLOTS, sizeof(*len)), k;
	unsigned char buf[ZS_MAX_ALLOC];

	ck_assert_ptr_nonnull(p);
	memset(buf, 0x5a, sizeof(buf));
	while (churn < 200 * MiB) {
		k = rnd(&seed, 0, SLOTS - 1);
		if (h[k]) {
			zs_free(p, h[k], len[k]);
			h[k] = 0;
		}
		/* Phases of different sizes, so span lengths keep changing. */
		len[k] = (unsigned)(churn >> 25) % 2 ? rnd(&seed, 1, 400) :
			 rnd(&seed, 1000, 4096);
		ck_assert_int_eq(zs_store(p, buf, len[k], &h[k]), 0);
		churn += len[k];
		if (!(churn & 0xfff))
			zs_compact(p);
	}
	for (k = 0; k < SLOTS; k++)
		if (h[k])
			zs_free(p, h[k], len[k]);
	ck_assert_uint_eq(total_spans(p), 0);
	ck_assert_uint_le(zs_total_bytes(p), 4096);
	zs_pool_destroy(p);
	free(h);
	free(len);
}
END_TEST

/*
 * Pre-faulting never writes to the arena: with MADV_POPULATE_WRITE
 * refused (ENOMEM, as in a memory cgroup at its limit), refills still
 * fill the cache, with pages that fault in at first use, and every
 * stored byte, before and after, reads back as it was.
 */
START_TEST(test_refill_populate_refused)
{
	enum { N = 2 * 1024 + 20, FREED = 64 };
	static uint64_t h[N];
	unsigned char buf[ZS_MAX_ALLOC];
	unsigned i, bad = 0;

	zs_set_cache(pool, 4 * MiB);
	atomic_store(&tu_madvise_refused, 0);
	atomic_store(&tu_madvise_refuse, 1);
	ck_assert_uint_eq(zs_cache_refill(pool), 4 * MiB);
	for (i = 0; i < N; i++) {
		h[i] = store_pat(pool, ZS_MAX_ALLOC, i);
		if (zs_cache_wanted(pool))
			zs_cache_refill(pool);
	}
	for (i = 0; i < FREED; i++)
		zs_free(pool, h[i], ZS_MAX_ALLOC);
	zs_cache_refill(pool);
	atomic_store(&tu_madvise_refuse, 0);
	ck_assert_uint_gt(atomic_load(&tu_madvise_refused), 0);
	for (i = FREED; i < N; i++) {
		ck_assert_int_eq(zs_load(pool, h[i], buf, ZS_MAX_ALLOC), 0);
		bad += !pattern_ok(buf, ZS_MAX_ALLOC, i);
	}
	ck_assert_msg(bad == 0, "%u of %u pages changed by a refill", bad,
		      N - FREED);
	for (i = FREED; i < N; i++)
		zs_free(pool, h[i], ZS_MAX_ALLOC);
}
END_TEST

/* ---- Memory goes back to the OS, also when mlocked ---------------------- */

static long rss_shmem_kib(void)
{
	return tu_status_kib("RssShmem:");
}

/* The child's checks; returns the number of the one that failed, or 0. */
static int mlock_child(int lock)
{
	enum { N = 12000 };
	static uint64_t h[N];
	static unsigned len[N];
	struct zs_pool *p;
	uint64_t seed = 5, spans;
	long s0, s1, s2;
	unsigned i;

	if (lock && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT))
		return 1;
	p = zs_pool_create(64 * MiB);
	if (!p)
		return 2;
	s0 = rss_shmem_kib();
	for (i = 0; i < N; i++) {
		unsigned char buf[ZS_MAX_ALLOC];

		len[i] = rnd(&seed, 800, 4096);
		pattern(buf, len[i], i);
		if (zs_store(p, buf, len[i], &h[i]))
			return 3;
	}
	s1 = rss_shmem_kib();
	spans = span_bytes(p);
	/* Span pages are resident (written), and counted in the total. */
	if ((uint64_t)(s1 - s0) * 1024 > spans ||
	    (uint64_t)(s1 - s0) * 1024 < spans * 95 / 100)
		return 4;
	if (zs_total_bytes(p) < spans)
		return 5;
	for (i = 0; i < N; i++) {
		if (!load_ok(p, h[i], len[i], i))
			return 6;
		zs_free(p, h[i], len[i]);
	}
	s2 = rss_shmem_kib();
	if (s2 - s0 > 64)
		return 7;
	if (zs_total_bytes(p) >= 2 * MiB)
		return 8;
	zs_pool_destroy(p);
	return 0;
}

START_TEST(test_rss_returns)
{
	tu_run_child(mlock_child, 0, "memory");
}
END_TEST

/*
 * Store @n raw (4096-byte) objects, each a span of one page, into @p;
 * returns the KiB of shared memory that brought in (pages faulted in
 * by the stores), or -1 if a store failed.  (Not a count of page
 * faults: under AddressSanitizer its shadow memory faults too.)
 */
static long huge_store_kib(struct zs_pool *p, uint64_t *h, unsigned n)
{
	unsigned char buf[ZS_MAX_ALLOC];
	long s0;
	unsigned i;

	pattern(buf, sizeof(buf), 1);
	s0 = rss_shmem_kib();
	for (i = 0; i < n; i++)
		if (zs_store(p, buf, sizeof(buf), &h[i]))
			return -1;
	return rss_shmem_kib() - s0;
}

/*
 * The cache's target, in a child; returns the number of the check that
 * failed, or 0.  A refilled cache is resident and outside the byte
 * account; stores served from it bring in no memory (without a cache
 * each new page is faulted in by its store); draining it raises the
 * signal; a zero target gives it all back.
 */
static int cache_child(int unused)
{
	enum { N = 96 };	/* raw objects: a part of the 4 MiB target */
	static uint64_t h[N], h2[N];
	struct zs_pool *p, *q;
	long s0, s1, s2, s3, k_res, k_none;
	uint64_t added, seed = 9;
	unsigned i;

	(void)unused;
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT))
		return 1;
	p = zs_pool_create(64 * MiB);
	q = zs_pool_create(64 * MiB);
	if (!p || !q)
		return 2;
	s0 = rss_shmem_kib();
	zs_set_cache(p, 4 * MiB);
	if (!zs_cache_wanted(p))
		return 3;
	added = zs_cache_refill(p);
	s1 = rss_shmem_kib();
	if (added != 4 * MiB || zs_cache_bytes(p) != added)
		return 4;
	/* Resident, and not in the account: an empty pool counts 0. */
	if ((uint64_t)(s1 - s0) * 1024 < added)
		return 5;
	if (zs_total_bytes(p) != 0 || zs_cache_wanted(p))
		return 6;

	k_res = huge_store_kib(p, h, N);
	k_none = huge_store_kib(q, h2, N);
	if (k_res < 0 || k_none < 0)
		return 7;
	/* From the cache: nothing new; without one: a page each. */
	if (k_res != 0 || k_none < N * 4)
		return 8;
	for (i = 0; i < N; i++)
		zs_free(q, h2[i], ZS_MAX_ALLOC);
	zs_pool_destroy(q);

	/* Churn: spans of every length come from and go to the cache. */
	for (i = 0; i < N; i++)
		zs_free(p, h[i], ZS_MAX_ALLOC);
	for (i = 0; i < 4000; i++) {
		unsigned len = rnd(&seed, 200, 4096);

		h[i % N] = store_pat(p, len, i);
		if (!h[i % N] || !load_ok(p, h[i % N], len, i))
			return 9;
		zs_free(p, h[i % N], len);
		if (zs_cache_wanted(p))
			zs_cache_refill(p);
	}
	s2 = rss_shmem_kib();
	if (zs_total_bytes(p) != 0 ||
	    zs_cache_bytes(p) > 4 * MiB * ZS_CACHE_ROOM_FACTOR ||
	    (uint64_t)(s2 - s0) * 1024 > zs_cache_bytes(p) + 64 * 1024)
		return 10;
	/* A zero target gives everything back at the next refill. */
	zs_set_cache(p, 0);
	zs_cache_refill(p);
	s3 = rss_shmem_kib();
	if (zs_cache_bytes(p) != 0 || s3 - s0 > 64)
		return 11;
	zs_pool_destroy(p);
	return 0;
}

START_TEST(test_cache)
{
	tu_run_child(cache_child, 0, "cache");
}
END_TEST

/*
 * The cache's room and aging, in a child; returns the number of the check
 * that failed, or 0.  A wave of frees past the target stays resident, up
 * to the room; the stores that follow take it back without new memory;
 * what sits unused ZS_CACHE_AGE_MS goes back to the OS, but the target.
 */
static int age_child(int unused)
{
	enum { N = 4096 };	/* raw objects, 16 MiB: the room of 4 MiB */
	static uint64_t h[N];
	struct zs_pool *p;
	long base, s0, s1, s2, s3;
	uint64_t held, room = 4 * MiB * ZS_CACHE_ROOM_FACTOR;
	unsigned i, ms;

	(void)unused;
	base = rss_shmem_kib();
	p = zs_pool_create(64 * MiB);
	if (!p)
		return 1;
	zs_set_cache(p, 4 * MiB);
	zs_cache_refill(p);
	if (huge_store_kib(p, h, N) < 0)
		return 2;
	s0 = rss_shmem_kib();
	for (i = 0; i < N; i++)
		zs_free(p, h[i], ZS_MAX_ALLOC);
	s1 = rss_shmem_kib();
	held = zs_cache_bytes(p);
	/* Kept up to the room, the rest punched; the thread is called. */
	if (held != room || !zs_cache_wanted(p) ||
	    (uint64_t)(s0 - s1) * 1024 < (uint64_t)N * ZS_PAGE_SIZE - room)
		return 3;
	zs_cache_refill(p);
	/* Nothing is old yet: nothing goes, and aging asks to be called. */
	ms = zs_cache_age(p);
	if (!ms || ms > ZS_CACHE_AGE_MS || zs_cache_bytes(p) != held)
		return 4;
	/* The next wave of stores takes it back: no new memory. */
	if (huge_store_kib(p, h, 1024) != 0)
		return 5;
	for (i = 0; i < 1024; i++)
		zs_free(p, h[i], ZS_MAX_ALLOC);
	/* Unused for a whole age: all of it goes (short runs only). */
	usleep((ZS_CACHE_AGE_MS + 100) * 1000);
	if (zs_cache_age(p) != 0 || zs_cache_bytes(p) != 0)
		return 6;
	s2 = rss_shmem_kib();
	if ((uint64_t)(s1 - s2) * 1024 < room - 64 * 1024)
		return 7;
	/* The target's long runs are refilled, and never age. */
	if (zs_cache_refill(p) != 4 * MiB)
		return 8;
	usleep((ZS_CACHE_AGE_MS + 100) * 1000);
	if (zs_cache_age(p) != 0 || zs_cache_bytes(p) != 4 * MiB)
		return 9;
	/* Without a cache, a freed span is punched at once. */
	zs_set_cache(p, 0);
	zs_cache_refill(p);
	if (huge_store_kib(p, h, 64) < 0)
		return 10;
	for (i = 0; i < 64; i++)
		zs_free(p, h[i], ZS_MAX_ALLOC);
	s3 = rss_shmem_kib();
	if (zs_cache_bytes(p) != 0 || s3 - base > 64)
		return 11;
	zs_pool_destroy(p);
	return 0;
}

START_TEST(test_cache_age)
{
	tu_run_child(age_child, 0, "cache aging");
}
END_TEST

/*
 * A refill during which the cache is made smaller than what it holds
 * within 5 s, in a child (it claimed and released runs for ever: the
 * room left, room - held, wrapped), and the next refill brings
 * the cache down to its new room.  The cache is shrunk from the refill's
 * own pre-faulting (tu_madvise_hook), after the refill has read the old
 * target.
 */
static struct zs_pool *shrink_pool;

static _Atomic bool shrink_done;

static void shrink_hook(void)
{
	zs_set_cache(shrink_pool, 16 * ZS_PAGE_SIZE);
}

static void *shrink_refill(void *p)
{
	zs_cache_refill(p);
	atomic_store(&shrink_done, true);
	return NULL;
}

static int shrink_child(int unused)
{
	enum { N = 2048 };	/* raw objects: 8 MiB of 1-page runs */
	static uint64_t h[N];
	struct zs_pool *p;
	uint64_t held;
	pthread_t t;
	unsigned i;

	(void)unused;
	p = zs_pool_create(64 * MiB);
	if (!p)
		return 2;
	zs_set_cache(p, 4 * MiB);
	zs_cache_refill(p);
	if (huge_store_kib(p, h, N) < 0)
		return 3;
	for (i = 0; i < N; i++)
		zs_free(p, h[i], ZS_MAX_ALLOC);
	/* Short runs, under the room of 16 MiB, far over the next one. */
	held = zs_cache_bytes(p);
	if (held < 1024 * ZS_PAGE_SIZE || held >= 16 * MiB)
		return 4;
	shrink_pool = p;
	atomic_store(&tu_madvise_hook, shrink_hook);
	if (pthread_create(&t, NULL, shrink_refill, p))
		return 7;
	for (i = 0; i < 500 && !atomic_load(&shrink_done); i++)
		usleep(10000);
	if (!atomic_load(&shrink_done))
		return 8;		/* still refilling after 5 s */
	pthread_join(t, NULL);
	if (atomic_load(&tu_madvise_hook))
		return 5;		/* the refill faulted nothing in */
	zs_cache_refill(p);
	if (zs_cache_bytes(p) > 16 * ZS_CACHE_ROOM_FACTOR * ZS_PAGE_SIZE)
		return 6;
	zs_pool_destroy(p);
	return 0;
}

START_TEST(test_cache_shrunk_midrefill)
{
	tu_run_child(shrink_child, 0, "cache shrunk during a refill");
}
END_TEST

START_TEST(test_rss_returns_mlocked)
{
	tu_run_child(mlock_child, 1, "mlocked memory");
}
END_TEST

Suite *zs_pool_suite(void)
{
	Suite *s = suite_create("zs_pool");
	TCase *tc;

	tc = tcase_create("classes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_create_destroy);
	tcase_add_test(tc, test_class_size);
	tcase_add_test(tc, test_class_table);
	tcase_add_test(tc, test_span_packing);
	tcase_add_test(tc, test_straddle);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fullness);
	tcase_add_test(tc, test_read_cb);
	tcase_add_test(tc, test_limit);
	tcase_add_test(tc, test_random_model);
	tcase_add_test(tc, test_efficiency);
	tcase_add_test(tc, test_arena_reuse);
	tcase_add_test(tc, test_refill_populate_refused);
	tcase_add_test(tc, test_no_malloc);
	tcase_add_test(tc, test_metadata_bytes);
	tcase_add_test(tc, test_age_stamp_ahead);
	suite_add_tcase(s, tc);

	tc = tcase_create("compaction");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_compact_stable);
	tcase_add_test(tc, test_compact_concurrent);
	tcase_add_test(tc, test_cache_concurrent);
	tcase_add_test(tc, test_compact_two_walks);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rss_returns);
	tcase_add_test(tc, test_rss_returns_mlocked);
	tcase_add_test(tc, test_cache);
	tcase_add_test(tc, test_cache_age);
	tcase_add_test(tc, test_cache_shrunk_midrefill);
	suite_add_tcase(s, tc);
	return s;
}
