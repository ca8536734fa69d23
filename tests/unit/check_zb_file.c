/*
 * Unit tests of the backing-file storage (store/zb_file.c).
 *
 * Each test gets a fresh directory under /var/tmp (a real file system:
 * ext4 on the CI machine, with O_DIRECT, fallocate and punching) and
 * removes everything in it afterwards.  Objects are filled with a
 * pattern derived from a seed, so contents are checked without copies.
 * The tests that need a file system of their own (ramfs, which refuses
 * O_DIRECT and has no fallocate; a 4 MiB tmpfs that fills up) mount it
 * in a forked child inside a private mount namespace, so the mount goes
 * away with the child whatever happens; the block-device test uses a
 * loop device set to detach itself when closed.  Must run as root.  The
 * concurrency test must also be clean under ThreadSanitizer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/zb_file.h"
#include "tests/unit/check_suites.h"
#include "tests/unit/check_util.h"

#define MiB (1024 * 1024ULL)

static char tdir[96];		/* the test's directory */
static char tpath[160];		/* tdir/backing */
static unsigned char *rbuf;	/* ZB_MAX_OBJ + 1 bytes: any buffer will do */

static void rm_tree(const char *dir)
{
	char p[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) && errno == EISDIR)
			rm_tree(p);
	}
	closedir(d);
	rmdir(dir);
}

static void mk_tdir(const char *base)
{
	snprintf(tdir, sizeof(tdir), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	snprintf(tpath, sizeof(tpath), "%s/backing", tdir);
}

/*
 * Each test case gets a directory under /var/tmp and one under /dev/shm,
 * made and removed by the runner itself (an unchecked fixture), and each
 * test a directory of its own inside (a checked fixture, in the test's
 * process).  When Check forks, a failed assertion ends the test's
 * process at once, without its teardown; the case's teardown, in the
 * runner, still removes everything.
 */
static char base_var[64], base_shm[64];

static void case_setup(void)
{
	strcpy(base_var, "/var/tmp/zb_test.XXXXXX");
	strcpy(base_shm, "/dev/shm/zb_test.XXXXXX");
	if (!mkdtemp(base_var) || !mkdtemp(base_shm))
		abort();
}

static void case_teardown(void)
{
	rm_tree(base_var);
	rm_tree(base_shm);
}

/* The test clock of refill_if_wanted(), started at its first use. */
static uint32_t tclock;
static bool tclock_on;

static void setup(void)
{
	mk_tdir(base_var);
	rbuf = malloc(ZB_MAX_OBJ + 1);
	ck_assert_ptr_nonnull(rbuf);
	tclock_on = false;
}

static void teardown(void)
{
	free(rbuf);
	rbuf = NULL;
	if (tdir[0])
		rm_tree(tdir);
	tdir[0] = 0;
}

/* ---- Helpers ------------------------------------------------------------ */

struct obj {
	uint64_t loc;		/* 0: none */
	uint32_t len;
	uint32_t seed;
};

static void pattern(void *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + len + 1;
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(tu_rand(&s) >> 56);
}

static unsigned rnd(uint64_t *s, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(tu_rand(s) % (hi - lo + 1));
}

/* Store object @o (len and seed set); returns zb_write's result: 0, 1
 * when the call closed a segment (now on the write queue), or -errno. */
static int put(struct zb_file *f, struct obj *o)
{
	unsigned char data[ZB_MAX_OBJ];

	pattern(data, o->len, o->seed);
	return zb_write(f, data, o->len, &o->loc);
}

/* put(), and when it closed a segment, write the queue at once, as the
 * store's background thread would.  0, 1, or -errno (-EIO: the queue's
 * write failed). */
static int put_bg(struct zb_file *f, struct obj *o)
{
	int r = put(f, o);

	if (r == 1 && zb_write_queued(f))
		return -EIO;
	return r;
}

/* Read @o back into @buf, reading @ahead bytes ahead, and compare: 0,
 * -errno, or 1 for a mismatch. */
static int check_ahead(struct zb_file *f, const struct obj *o,
		       unsigned char *buf, size_t ahead)
{
	unsigned char want[ZB_MAX_OBJ];
	int r = zb_read(f, o->loc, buf, o->len, ahead);

	if (r)
		return r;
	pattern(want, o->len, o->seed);
	return memcmp(buf, want, o->len) ? 1 : 0;
}

static int check_buf(struct zb_file *f, const struct obj *o, unsigned char *buf)
{
	return check_ahead(f, o, buf, 0);
}

static int check(struct zb_file *f, const struct obj *o)
{
	return check_buf(f, o, rbuf);
}

static uint64_t st_blocks_bytes(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static uint64_t st_size_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/*
 * What the background thread of the store will do, on a test clock that
 * advances TCLOCK_STEP_MS per call: a period (ZB_AGE_MS) is 2000 calls,
 * under a round of the churn tests, so that their free segments can age
 * and be punched within the run, and the run does not depend on the
 * machine's speed.  The clock starts at zb_now_ms() on the first call,
 * after zb_open() (which starts the file's first period).
 */
#define TCLOCK_STEP_MS 1
static void refill_if_wanted(struct zb_file *f)
{
	unsigned after;

	if (!tclock_on) {
		tclock = zb_now_ms();
		tclock_on = true;
	}
	tclock += TCLOCK_STEP_MS;
	if (zb_refill_wanted(f, tclock, &after)) {
		zb_write_queued(f);	/* failures: counted, checked by callers */
		zb_refill(f, tclock);
	}
}

/* ---- Round trips -------------------------------------------------------- */

/* Write @n objects (1, 4096, random between), reading each back at once
 * and all again after a flush; closed segments are written at once, as
 * the store's background thread does.  Returns 0 or a check number
 * (children). */
static int roundtrip(struct zb_file *f, unsigned n, uint64_t seed,
		     unsigned char *buf)
{
	struct obj *o = calloc(n, sizeof(*o));
	struct zb_stats st;
	uint64_t bytes = 0;
	unsigned i;
	int ret = 0;

	if (!o)
		return 90;
	for (i = 0; i < n; i++) {
		o[i].len = i % 97 == 0 ? 1 : i % 89 == 0 ? ZB_MAX_OBJ :
			   rnd(&seed, 1, ZB_MAX_OBJ);
		o[i].seed = i;
		if (put_bg(f, &o[i]) < 0) {
			ret = 91;
			goto out;
		}
		bytes += o[i].len;
		if (check_buf(f, &o[i], buf)) {	/* from the buffer */
			ret = 92;
			goto out;
		}
		if (i > 0 && check_buf(f, &o[i / 2], buf)) {	/* often on disk */
			ret = 93;
			goto out;
		}
	}
	if (zb_flush(f)) {
		ret = 94;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (check_buf(f, &o[i], buf)) {
			ret = 95;
			goto out;
		}
	zb_get_stats(f, &st);
	if (st.objs != n || st.bytes_stored != bytes || st.failed_reads ||
	    st.failed_writes)
		ret = 96;
out:
	free(o);
	return ret;
}

START_TEST(test_roundtrip)
{
	struct zb_file *f;
	struct zb_stats st;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	ck_assert_int_eq(roundtrip(f, 4000, 1, rbuf), 0);	/* ~8 MiB */
	zb_get_stats(f, &st);
	ck_assert_int_eq(st.direct, 1);		/* ext4 takes O_DIRECT */
	ck_assert_int_eq(st.blockdev, 0);
	ck_assert_uint_gt(st.segs_written, 20);	/* crossed segments */
	ck_assert_uint_eq(st.reads, 4000 * 3 - 1);
	zb_close(f);
	ck_assert_uint_eq(st_size_of(tpath), 0);	/* emptied, kept */
	ck_assert_uint_eq(st_blocks_bytes(tpath), 0);
}
END_TEST

START_TEST(test_buffer_and_flush)
{
	struct obj o[3] = { { 0, 1, 1 }, { 0, 4096, 2 }, { 0, 1500, 3 } };
	struct zb_file *f;
	struct zb_stats st;
	int i;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(put(f, &o[i]), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 0);	/* served from the buffer */
	ck_assert_int_eq(zb_flush(f), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 1);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);	/* from the file */
	ck_assert_int_eq(zb_flush(f), 0);	/* nothing open: no write */
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 1);
	/* The next object opens a new segment: the flushed one is closed. */
	o[0].seed = 9;
	ck_assert_int_eq(put(f, &o[0]), 0);
	ck_assert_uint_ne(o[0].loc >> 32, o[1].loc >> 32);
	ck_assert_uint_eq(o[0].loc & 0xffffffff, 0);	/* at its start */
	ck_assert_int_eq(check(f, &o[0]), 0);
	zb_close(f);
}
END_TEST

/*
 * zb_flush() writes the segments other writers queue while it waits for
 * a write in progress.  Every buffer taken, a writer writes the oldest
 * queued run itself and is held inside that write (tu_pwritev_hold);
 * zb_flush() writes the rest and waits for it; meanwhile the test seals
 * one more segment.  Before the fix zb_flush() then waited for that
 * queued segment, which nothing would write.
 */
static struct zb_file *fm_f;
static _Atomic int fm_done;

static void *fm_writer(void *arg)
{
	atomic_store(&tu_pwritev_hold, pthread_self());
	ck_assert_int_ge(put(fm_f, arg), 0);
	return NULL;
}

static void *fm_flusher(void *arg)
{
	(void)arg;
	ck_assert_int_eq(zb_flush(fm_f), 0);
	atomic_store(&fm_done, 1);
	return NULL;
}

START_TEST(test_flush_meanwhile)
{
	enum { PER = ZB_SEG_SIZE / ZB_MAX_OBJ, N = (ZB_NBUF + 1) * PER + 2 };
	struct obj *o = calloc(N, sizeof(*o));
	pthread_t w, fl;
	unsigned i, n = ZB_NBUF * PER;

	ck_assert_ptr_nonnull(o);
	for (i = 0; i < N; i++)
		o[i] = (struct obj){ 0, ZB_MAX_OBJ, i };
	ck_assert_int_eq(sem_init(&tu_pwritev_entered, 0, 0), 0);
	ck_assert_int_eq(sem_init(&tu_pwritev_release, 0, 0), 0);
	ck_assert_int_eq(zb_open(tpath, 0, &fm_f), 0);
	/* ZB_NBUF segments filled, none written: one open, the rest
	 * queued. */
	for (i = 0; i < n; i++)
		ck_assert_int_ge(put(fm_f, &o[i]), 0);
	ck_assert_int_eq(pthread_create(&w, NULL, fm_writer, &o[n++]), 0);
	ck_assert_int_eq(sem_wait(&tu_pwritev_entered), 0);
	ck_assert_int_eq(pthread_create(&fl, NULL, fm_flusher, NULL), 0);
	usleep(200 * 1000);		/* zb_flush() comes to wait */
	ck_assert_int_eq(atomic_load(&fm_done), 0);
	for (; n < N; n++)		/* a segment sealed and queued */
		ck_assert_int_ge(put(fm_f, &o[n]), 0);
	ck_assert_int_eq(sem_post(&tu_pwritev_release), 0);
	ck_assert_int_eq(pthread_join(w, NULL), 0);
	for (i = 0; i < 100 && !atomic_load(&fm_done); i++)
		usleep(50 * 1000);
	ck_assert_msg(atomic_load(&fm_done),
		      "zb_flush() still waiting 5 s after the last write");
	ck_assert_int_eq(pthread_join(fl, NULL), 0);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(check(fm_f, &o[i]), 0);
	zb_close(fm_f);
	sem_destroy(&tu_pwritev_entered);
	sem_destroy(&tu_pwritev_release);
	free(o);
}
END_TEST

/* Lengths, exact fills, bad arguments. */
START_TEST(test_edges)
{
	unsigned char data[ZB_MAX_OBJ + 1] = { 0 };
	struct obj o = { 0, ZB_MAX_OBJ, 5 }, full[ZB_SEG_SIZE / ZB_MAX_OBJ];
	struct zb_file *f;
	uint64_t loc = 0;
	unsigned i;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	ck_assert_int_eq(zb_write(f, data, 0, &loc), -EINVAL);
	ck_assert_int_eq(zb_write(f, data, ZB_MAX_OBJ + 1, &loc), -EINVAL);
	ck_assert_uint_eq(loc, 0);
	/* 64 objects of 4096 fill a segment exactly; the 65th opens one,
	 * closing the full one (1: it waits on the write queue). */
	for (i = 0; i < ZB_SEG_SIZE / ZB_MAX_OBJ; i++) {
		full[i] = (struct obj){ 0, ZB_MAX_OBJ, 100 + i };
		ck_assert_int_eq(put(f, &full[i]), 0);
		ck_assert_uint_eq(full[i].loc >> 32, full[0].loc >> 32);
	}
	ck_assert_int_eq(put(f, &o), 1);
	ck_assert_uint_ne(o.loc >> 32, full[0].loc >> 32);
	ck_assert_uint_eq(o.loc & 0xffffffff, ZB_MAX_OBJ - 1);	/* at 0 */
	for (i = 0; i < ZB_SEG_SIZE / ZB_MAX_OBJ; i++)
		ck_assert_int_eq(check(f, &full[i]), 0);
	ck_assert_int_eq(zb_read(f, o.loc, rbuf, o.len - 1, 0), -EINVAL);
	ck_assert_int_eq(zb_read(f, o.loc, rbuf, o.len + 1, 0), -EINVAL);
	/* Any buffer will do, aligned or not: from a buffer, from the file. */
	ck_assert_int_eq(check_buf(f, &o, rbuf + 1), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_int_eq(zb_read(f, full[3].loc, rbuf, ZB_MAX_OBJ - 1,
				 ZB_WIN_SIZE), -EINVAL);
	ck_assert_int_eq(check_buf(f, &o, rbuf + 1), 0);
	ck_assert_int_eq(check_ahead(f, &full[5], rbuf + 1, ZB_WIN_SIZE), 0);
	ck_assert_int_eq(check_ahead(f, &full[6], rbuf + 1, 0), 0);
	ck_assert_int_eq(check(f, &o), 0);
	zb_close(f);
	zb_close(NULL);
}
END_TEST

/* Garbage locations are refused, never followed. */
START_TEST(test_bad_loc)
{
	struct zb_file *f;
	struct zb_stats st, st2;
	struct obj o[200];
	uint64_t s = 77, loc;
	unsigned i;
	int r;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < 200; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1000, 3500), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	zb_get_stats(f, &st);
	ck_assert_int_eq(zb_read(f, 0, rbuf, 1, 0), -EINVAL);
	ck_assert_int_eq(zb_read(f, o[0].loc | 1ULL << 31, rbuf, o[0].len, 0),
			 -EINVAL);			/* reserved bits */
	ck_assert_int_eq(zb_read(f, (1ULL << 40) | (o[0].loc & 0xffffffff),
				 rbuf, o[0].len, 0), -EINVAL);	/* past hwm */
	ck_assert_int_eq(zb_read(f, (o[199].loc + (8000ULL << 12)), rbuf,
				 o[199].len, 0), -EINVAL);	/* past the fill */
	for (i = 0; i < 100000; i++) {
		unsigned len;

		loc = tu_rand(&s);
		if (i & 1)	/* plausible: a real segment, random rest */
			loc = (o[i % 200].loc & ~0xffffffffULL) |
			      (loc & 0x3fffffff);
		len = (unsigned)(loc & 0xfff) + 1;
		r = zb_read(f, loc, rbuf, len, i & 2 ? ZB_WIN_SIZE : 0);
		ck_assert(r == 0 || r == -EINVAL || r == -EIO);
		zb_free(f, loc);
	}
	/* Garbage that lands on live bytes frees them (the caller's bug:
	 * the accounting is then wrong, harmlessly); the rest is refused and
	 * counted.  No crash either way, and garbage with reserved bits
	 * changes nothing. */
	zb_get_stats(f, &st);
	zb_free(f, 0);
	zb_free(f, o[0].loc | 1ULL << 30);
	zb_get_stats(f, &st2);
	ck_assert_uint_eq(st2.bad_frees, st.bad_frees + 2);
	ck_assert_uint_eq(st2.objs, st.objs);
	/* A segment freed entirely: its locations are refused. */
	zb_close(f);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < 200; i++)
		ck_assert_int_ge(put(f, &o[i]), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	for (i = 0; i < 200; i++)
		zb_free(f, o[i].loc);
	for (i = 0; i < 200; i++)
		ck_assert_int_eq(zb_read(f, o[i].loc, rbuf, o[i].len, 0), -EINVAL);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.objs, 0);
	ck_assert_uint_eq(st.bytes_stored, 0);
	ck_assert_uint_eq(st.failed_reads, 200);
	zb_close(f);
}
END_TEST

/* Every one of o[0..@n) reads back; then close @f and free @o. */
static void check_all_close(struct zb_file *f, struct obj *o, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_close(f);
	free(o);
}

/* ---- Space -------------------------------------------------------------- */

/*
 * fill - store objects of 1000..3500 bytes (random from *@s) into o[0..]
 * until @bytes are stored, at most @max of them; returns how many.
 */
static unsigned fill(struct zb_file *f, struct obj *o, unsigned max,
		     uint64_t bytes, uint64_t *s)
{
	uint64_t stored = 0;
	unsigned n = 0;

	while (stored < bytes) {
		ck_assert_uint_lt(n, max);
		o[n] = (struct obj){ 0, rnd(s, 1000, 3500), n };
		ck_assert_int_ge(put(f, &o[n]), 0);
		stored += o[n++].len;
	}
	return n;
}

/* Lengths of compressed swap pages, roughly: 1000..3500 bytes. */
START_TEST(test_packing)
{
	struct zb_file *f;
	struct zb_stats st;
	uint64_t s = 3, stored = 0, alloc;
	struct obj o;
	unsigned i = 0;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	while (stored < 48 * MiB) {
		o = (struct obj){ 0, rnd(&s, 1000, 3500), i++ };
		ck_assert_int_ge(put(f, &o), 0);
		stored += o.len;
	}
	ck_assert_int_eq(zb_flush(f), 0);
	refill_if_wanted(f);
	alloc = st_blocks_bytes(tpath);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.bytes_stored, stored);
	ck_assert_msg(alloc * 100 <= stored * 115,
		      "file takes %llu bytes for %llu stored (%.3fx)",
		      (unsigned long long)alloc, (unsigned long long)stored,
		      (double)alloc / (double)stored);
	/* The figure we report is what the file system says. */
	ck_assert_uint_le(alloc, st.bytes_allocated + 64 * 1024);
	ck_assert_uint_ge(alloc, st.bytes_allocated);
	zb_close(f);
}
END_TEST

/*
 * Freeing everything punches all but the reserve, once the free segments
 * have gone unused for a whole period (test_punch_aged tells the
 * periods apart); holes are reused.
 */
START_TEST(test_punch)
{
	unsigned n, i, max = 8000, after;
	struct obj *o = calloc(max, sizeof(*o));
	uint64_t s = 11, full, size;
	struct zb_file *f;
	struct zb_stats st;
	uint32_t now;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	n = fill(f, o, max, 16 * MiB, &s);
	ck_assert_int_eq(zb_flush(f), 0);
	full = st_blocks_bytes(tpath);
	size = st_size_of(tpath);
	ck_assert_uint_ge(full, 16 * MiB);
	for (i = 0; i < n; i++)
		zb_free(f, o[i].loc);
	now = zb_now_ms();
	ck_assert_int_eq(zb_refill_wanted(f, now + ZB_AGE_MS, &after), 1);
	ck_assert_int_eq(zb_refill(f, now + ZB_AGE_MS), 0);
	ck_assert_int_eq(zb_refill(f, now + 2 * ZB_AGE_MS), 0);
	ck_assert_int_eq(zb_refill_wanted(f, now + 2 * ZB_AGE_MS, &after), 0);
	ck_assert_uint_eq(after, 0);		/* nothing left to age */
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.objs, 0);
	ck_assert_uint_eq(st.segs_used, 0);
	ck_assert_uint_eq(st.segs_reserved, ZB_RESERVE_SEGS);
	ck_assert_uint_gt(st.segs_punched, 0);
	ck_assert_uint_le(st_blocks_bytes(tpath),
			  ZB_RESERVE_SEGS * ZB_SEG_SIZE + 64 * 1024);
	ck_assert_uint_lt(st_blocks_bytes(tpath), 8 * MiB);	/* the target */
	/* Writing it all again fills the holes: the file does not grow. */
	for (i = 0; i < n; i++)
		ck_assert_int_ge(put(f, &o[i]), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_uint_eq(st_size_of(tpath), size);
	ck_assert_uint_le(st_blocks_bytes(tpath), full + ZB_SEG_SIZE);
	check_all_close(f, o, n);
}
END_TEST

/*
 * Free segments are punched only once they went unused for a whole
 * period: a wave of frees that writes take again within the period keeps
 * its blocks (the file is neither punched nor extended); one that stays
 * free goes back at the second zb_refill() a period apart.
 */
START_TEST(test_punch_aged)
{
	enum { MAX = 40 * (ZB_SEG_SIZE / 1000) };
	struct obj *o = calloc(MAX, sizeof(*o));
	uint64_t s = 13, size, full;
	unsigned n, i, after;
	struct zb_file *f;
	struct zb_stats st;
	uint32_t now;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	n = fill(f, o, MAX, 40ULL * ZB_SEG_SIZE * 97 / 100, &s); /* ~40 segs */
	ck_assert_int_eq(zb_flush(f), 0);
	size = st_size_of(tpath);
	full = st_blocks_bytes(tpath);
	for (i = 0; i < n; i++)
		zb_free(f, o[i].loc);
	now = zb_now_ms();
	ck_assert_int_eq(zb_refill(f, now), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_punched, 0);		/* not yet */
	ck_assert_uint_gt(st.segs_reserved, ZB_RESERVE_SEGS + 30);
	ck_assert_uint_ge(st_blocks_bytes(tpath), full);
	ck_assert_int_eq(zb_refill_wanted(f, now, &after), 0);
	ck_assert_uint_gt(after, 0);
	ck_assert_uint_le(after, ZB_AGE_MS);

	/* The same again: the free segments are taken, blocks and all. */
	for (i = 0; i < n; i++) {
		o[i].seed += 100000;
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_uint_eq(st_size_of(tpath), size);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_punched, 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);

	/* Freed again, and left: the period in which the writes took them
	 * punches nothing; the next one, in which they were all free,
	 * punches all but the reserve. */
	for (i = 0; i < n; i++)
		zb_free(f, o[i].loc);
	ck_assert_int_eq(zb_refill(f, now + ZB_AGE_MS), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_punched, 0);
	ck_assert_uint_gt(st.segs_reserved, ZB_RESERVE_SEGS + 30);
	ck_assert_int_eq(zb_refill_wanted(f, now + 2 * ZB_AGE_MS, &after), 1);
	ck_assert_int_eq(zb_refill(f, now + 2 * ZB_AGE_MS), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_reserved, ZB_RESERVE_SEGS);
	ck_assert_uint_gt(st.segs_punched, 30);
	ck_assert_uint_eq(st.segs_used, 0);
	ck_assert_uint_le(st_blocks_bytes(tpath),
			  ZB_RESERVE_SEGS * ZB_SEG_SIZE + 64 * 1024);
	ck_assert_uint_eq(st_size_of(tpath), size);	/* KEEP_SIZE */
	zb_close(f);
	free(o);
}
END_TEST

/*
 * Churn, as swap does it: a fixed number of live objects, the oldest
 * freed (with some jitter) as new ones come.  The file stays at about
 * the live bytes: free segments are reused before the file grows.
 */
START_TEST(test_churn_fifo)
{
	enum { LIVE = 3000, ROUNDS = 30 };
	struct obj *o = calloc(LIVE, sizeof(*o));
	uint64_t s = 5, live = 0, max_alloc = 0, size_warm = 0, a;
	struct zb_file *f;
	struct zb_stats st;
	unsigned r, i, head = 0, seed = 0;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < LIVE; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1000, 3500), seed++ };
		ck_assert_int_ge(put(f, &o[i]), 0);
		live += o[i].len;
	}
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < LIVE; i++) {
			/* the oldest or, one time in four, one of the
			 * next 63, whose slot the oldest then takes */
			unsigned j = (head + (rnd(&s, 0, 3) ? 0 :
					      rnd(&s, 0, 63))) % LIVE;

			zb_free(f, o[j].loc);
			live -= o[j].len;
			o[j] = o[head];
			o[head] = (struct obj){ 0, rnd(&s, 1000, 3500), seed++ };
			ck_assert_int_ge(put(f, &o[head]), 0);
			live += o[head].len;
			head = (head + 1) % LIVE;
			refill_if_wanted(f);
		}
		a = st_blocks_bytes(tpath);
		if (a > max_alloc)
			max_alloc = a;
		if (r == 4)
			size_warm = st_size_of(tpath);
	}
	zb_get_stats(f, &st);
	fprintf(stderr, "zb_file fifo churn: %llu live, %llu allocated at "
		"most (bound %llu), %llu segments punched\n",
		(unsigned long long)live, (unsigned long long)max_alloc,
		(unsigned long long)(live * 115 / 100 + (2 * ZB_RESERVE_SEGS +
						  ZB_NBUF) * ZB_SEG_SIZE),
		(unsigned long long)st.segs_punched);
	/* Live bytes packed, plus the reserve (up to twice, before a
	 * refill punches), the open segment and those being written. */
	ck_assert_msg(max_alloc <= live * 115 / 100 +
		      (2 * ZB_RESERVE_SEGS + ZB_NBUF) * ZB_SEG_SIZE,
		      "file took %llu bytes for %llu live",
		      (unsigned long long)max_alloc, (unsigned long long)live);
	ck_assert_uint_le(st_size_of(tpath), size_warm + 4 * ZB_SEG_SIZE);
	ck_assert_int_eq(zb_flush(f), 0);
	check_all_close(f, o, LIVE);
}
END_TEST

/*
 * Random churn: store @n objects of 1000..3500 bytes in @o, or, with
 * @replace, @n times free a random one of them and store a new one in
 * its place (the background thread's work done between, as the store's
 * would).  *@live counts the bytes stored; *@s and *@seed go on.
 */
static void churn(struct zb_file *f, struct obj *o, unsigned n, bool replace,
		  uint64_t *s, unsigned *seed, uint64_t *live)
{
	unsigned i, j;

	for (i = 0; i < n; i++) {
		j = replace ? rnd(s, 0, n - 1) : i;
		if (replace) {
			zb_free(f, o[j].loc);
			*live -= o[j].len;
		}
		o[j] = (struct obj){ 0, rnd(s, 1000, 3500), (*seed)++ };
		ck_assert_int_ge(put(f, &o[j]), 0);
		*live += o[j].len;
		if (replace)
			refill_if_wanted(f);
	}
}

/*
 * Random churn: objects die in any order, so without compaction the
 * file holds more than the live bytes; it must still stop growing, and
 * what it holds must be what the statistics say.
 */
START_TEST(test_churn_random)
{
	enum { LIVE = 3000, ROUNDS = 40 };
	struct obj *o = calloc(LIVE, sizeof(*o));
	uint64_t s = 6, live = 0, size_half = 0, a;
	struct zb_file *f;
	struct zb_stats st;
	unsigned r, seed = 0;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	churn(f, o, LIVE, false, &s, &seed, &live);
	for (r = 0; r < ROUNDS; r++) {
		churn(f, o, LIVE, true, &s, &seed, &live);
		if (r == ROUNDS / 2)
			size_half = st_size_of(tpath);
	}
	zb_get_stats(f, &st);
	a = st_blocks_bytes(tpath);
	fprintf(stderr, "zb_file random churn: %llu live, %llu allocated "
		"(%.2fx), file %llu, %llu sparse segments, %llu to win back in them\n",
		(unsigned long long)live, (unsigned long long)a,
		(double)a / (double)live, (unsigned long long)st.bytes_file,
		(unsigned long long)st.segs_sparse,
		(unsigned long long)st.bytes_sparse_waste);
	ck_assert_uint_eq(st.bytes_stored, live);
	ck_assert_uint_ge(a, st.bytes_allocated);
	ck_assert_uint_le(a, st.bytes_allocated + 64 * 1024);
	/* The second half of the run grew the file by under 10%. */
	ck_assert_uint_le(st_size_of(tpath), size_half + size_half / 10);
	ck_assert_uint_gt(st.segs_sparse, 0);
	ck_assert_uint_gt(st.bytes_sparse_waste, 0);
	check_all_close(f, o, LIVE);
}
END_TEST

/* Does segment @idx appear in @segs[0..@n), sorted ascending? */
static bool in_segs(const uint32_t *segs, unsigned n, uint32_t idx)
{
	unsigned lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (segs[mid] == idx)
			return true;
		if (segs[mid] < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * One compaction pass, as the store makes it: pick, then move every
 * object of a picked segment (the test's table is the holder), then
 * free the old loc.  Returns the objects moved; *@picked the segments.
 */
static unsigned compact_pass(struct zb_file *f, struct obj *o, unsigned n,
			     bool all, unsigned *picked)
{
	unsigned char buf[ZB_MAX_OBJ];
	uint32_t segs[32];
	unsigned i, moved = 0, k;
	uint64_t nl, old;
	int r;

	k = zb_compact_pick(f, segs, 32, all);
	for (i = 1; i < k; i++)
		ck_assert_uint_lt(segs[i - 1], segs[i]);
	for (i = 0; i < n && k; i++) {
		r = zb_relocate(f, o[i].loc, o[i].len, buf, &nl);
		ck_assert_int_ge(r, 0);
		/* Moved exactly when its segment was picked. */
		ck_assert_int_eq(r, in_segs(segs, k, zb_loc_seg(o[i].loc)));
		if (!r)
			continue;
		old = o[i].loc;
		o[i].loc = nl;
		zb_free(f, old);
		refill_if_wanted(f);
		moved++;
	}
	if (picked)
		*picked = k;
	return moved;
}

/*
 * Compaction under random churn: the test's table plays the store.
 * Without it the file settles at 5.6x the live bytes (test_churn_random);
 * with a pass after each round, when zb_compact_pick() finds it worth
 * it, the segments in use stay under 2x (1.6x measured; free segments
 * wait in the reserve to be punched, as ever); passes with @all then
 * leave no sparse segment, and every object reads back.
 */
START_TEST(test_compact)
{
	enum { LIVE = 3000, ROUNDS = 40 };
	struct obj *o = calloc(LIVE, sizeof(*o));
	uint64_t s = 6, live = 0, a, max_a = 0;
	unsigned r, i, seed = 0, moved = 0, picked, passes = 0;
	unsigned char buf[ZB_MAX_OBJ];
	struct zb_file *f;
	struct zb_stats st;
	uint64_t nl = 42;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	churn(f, o, LIVE, false, &s, &seed, &live);
	/* Nothing worth it yet, and nothing marked: nothing moves. */
	ck_assert_uint_eq(compact_pass(f, o, LIVE, false, &picked), 0);
	ck_assert_uint_eq(picked, 0);
	ck_assert_int_eq(zb_relocate(f, o[0].loc, o[0].len, buf, &nl), 0);
	ck_assert_uint_eq(nl, 42);
	for (r = 0; r < ROUNDS; r++) {
		churn(f, o, LIVE, true, &s, &seed, &live);
		moved += compact_pass(f, o, LIVE, false, &picked);
		passes += picked > 0;
		zb_write_queued(f);
		zb_get_stats(f, &st);
		a = st.segs_used * ZB_SEG_SIZE;
		if (r >= ROUNDS / 2 && a > max_a)
			max_a = a;
	}
	zb_get_stats(f, &st);
	fprintf(stderr, "zb_file random churn, compacted: %llu live, at most "
		"%llu in used segments (%.2fx) in the second half; %u moved "
		"in %u passes\n", (unsigned long long)live,
		(unsigned long long)max_a, (double)max_a / (double)live,
		moved, passes);
	ck_assert_uint_eq(st.bytes_stored, live);
	ck_assert_uint_eq(st.objs_relocated, moved);
	ck_assert_uint_gt(passes, 0);
	ck_assert_uint_le(max_a, 2 * live);
	/* Everything sparse goes when asked for, however little. */
	for (i = 0; i < 8 && compact_pass(f, o, LIVE, true, &picked); i++)
		;
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_sparse, 0);
	ck_assert_uint_eq(st.bytes_stored, live);
	a = st_blocks_bytes(tpath);
	ck_assert_uint_le(a, st.bytes_allocated + 64 * 1024);
	check_all_close(f, o, LIVE);
}
END_TEST

/* The cap: -ENOSPC, nothing stored by the refused call, nothing lost. */
START_TEST(test_cap)
{
	const uint64_t cap = 4 * MiB + 1000;	/* 16 segments */
	struct obj *o = calloc(4000, sizeof(*o));
	uint64_t s = 8, loc = 42;
	struct zb_file *f;
	struct zb_stats st, st2;
	unsigned n = 0, i;
	int r;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 100, &f), -ENOSPC);	/* < 1 segment */
	ck_assert_int_eq(zb_open(tpath, cap, &f), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.cap_bytes, 4 * MiB);
	ck_assert_int_eq(st.full, 0);
	ck_assert_uint_eq(st.nospace, 0);
	for (;;) {
		o[n] = (struct obj){ 0, rnd(&s, 1000, 3500), n };
		r = put(f, &o[n]);
		if (r < 0)
			break;
		n++;
		ck_assert_uint_lt(n, 4000);
	}
	ck_assert_int_eq(r, -ENOSPC);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.objs, n);
	/* Full but for the 16 segments' tails and 16 KiB (the slack this
	 * had as ZB_NBUF * 4096 when ZB_NBUF was 4; kept). */
	ck_assert_uint_ge(st.bytes_stored, 4 * MiB - 4 * 4096 - 16 * 3500);
	/* (a shorter one may still fit in the open segment's tail) */
	ck_assert_int_eq(zb_write(f, rbuf, ZB_MAX_OBJ, &loc), -ENOSPC);
	ck_assert_uint_eq(loc, 42);
	ck_assert_int_eq(zb_refill(f, zb_now_ms()), -ENOSPC);
	zb_get_stats(f, &st2);
	ck_assert_uint_eq(st2.objs, n);
	ck_assert_int_eq(st2.full, 1);		/* the summary says so */
	ck_assert_uint_eq(st2.nospace, 2);	/* both refusals counted */
	ck_assert_uint_le(st_size_of(tpath), 4 * MiB);
	ck_assert_int_eq(zb_flush(f), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);
	/* Free the first segment's worth: room again. */
	for (i = 0; i < n && o[i].loc >> 32 == o[0].loc >> 32; i++)
		zb_free(f, o[i].loc);
	zb_get_stats(f, &st2);
	ck_assert_int_eq(st2.full, 0);
	ck_assert_uint_eq(st2.nospace, 2);
	o[n] = (struct obj){ 0, 2000, 99999 };
	ck_assert_int_eq(put(f, &o[n]), 0);	/* nothing open: closes none */
	ck_assert_int_eq(check(f, &o[n]), 0);
	for (; i < n; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_close(f);
	free(o);
}
END_TEST

/* ---- Opening ------------------------------------------------------------ */

START_TEST(test_symlink)
{
	char target[160], dangling[160];
	struct zb_file *f = NULL;
	struct stat st;
	char buf[8] = { 0 };
	int fd;

	snprintf(target, sizeof(target), "%s/precious", tdir);
	snprintf(dangling, sizeof(dangling), "%s/nothing", tdir);
	fd = open(target, O_RDWR | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "keep me", 7), 7);
	close(fd);
	ck_assert_int_eq(symlink(target, tpath), 0);
	ck_assert_int_eq(zb_open(tpath, 0, &f), -ELOOP);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_uint_eq(st.st_size, 7);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	fd = open(target, O_RDONLY);
	ck_assert_int_eq(read(fd, buf, 7), 7);
	close(fd);
	ck_assert_str_eq(buf, "keep me");
	/* A dangling link: nothing is created through it. */
	ck_assert_int_eq(unlink(tpath), 0);
	ck_assert_int_eq(symlink(dangling, tpath), 0);
	ck_assert_int_eq(zb_open(tpath, 0, &f), -ELOOP);
	ck_assert_int_eq(access(dangling, F_OK), -1);
}
END_TEST

START_TEST(test_busy)
{
	struct zb_file *f, *g = NULL;
	struct obj o = { 0, 3000, 1 };
	struct stat st;
	int fd;

	/* An existing file: taken, emptied, made 0600. */
	fd = open(tpath, O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 12345), 0);
	close(fd);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	ck_assert_int_eq(stat(tpath, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(put(f, &o), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_int_eq(zb_open(tpath, 0, &g), -EBUSY);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(check(f, &o), 0);	/* the loser changed nothing */
	zb_close(f);
	ck_assert_int_eq(zb_open(tpath, 0, &g), 0);	/* released */
	zb_close(g);
}
END_TEST

START_TEST(test_not_a_file)
{
	char p[160];
	struct zb_file *f = NULL;

	snprintf(p, sizeof(p), "%s/dir", tdir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(zb_open(p, 0, &f), -EISDIR);
	snprintf(p, sizeof(p), "%s/fifo", tdir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	ck_assert_int_eq(zb_open(p, 0, &f), -EINVAL);	/* and no hang */
	ck_assert_int_eq(zb_open("/dev/null", 0, &f), -EINVAL);
	ck_assert_ptr_null(f);
	snprintf(p, sizeof(p), "%s/nodir/backing", tdir);
	ck_assert_int_eq(zb_open(p, 0, &f), -ENOENT);
}
END_TEST

START_TEST(test_created_0600)
{
	struct zb_file *f;
	struct stat st;
	mode_t old = umask(0);

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	umask(old);
	ck_assert_int_eq(stat(tpath, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	zb_close(f);
}
END_TEST

START_TEST(test_unlinked)
{
	struct obj o[600];
	struct zb_file *f;
	uint64_t s = 4;
	unsigned i;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < 300; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1, 4096), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_int_eq(unlink(tpath), 0);
	for (; i < 600; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1, 4096), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	for (i = 0; i < 600; i += 2)
		zb_free(f, o[i].loc);
	ck_assert_int_eq(zb_refill(f, zb_now_ms()), 0);
	for (i = 1; i < 600; i += 2)
		ck_assert_int_eq(check(f, &o[i]), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	for (i = 1; i < 600; i += 2)
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_close(f);
	ck_assert_int_eq(access(tpath, F_OK), -1);	/* not recreated */
}
END_TEST

/*
 * The descriptor zb_file holds on @path (the only one open on it), found
 * through /proc/self/fd, so that a test can swap another file
 * description in under it with dup2(): a read-only one makes segment
 * writes fail (EBADF), a write-only one makes reads fail.  I/O errors
 * without a failing device (there is no device-mapper here).
 */
static int zb_fd_of(const char *path)
{
	char target[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int fd = -1;
	ssize_t n;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (!strcmp(target, path))
			fd = atoi(de->d_name);
	}
	closedir(d);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/*
 * I/O errors: a failed segment write loses nothing (its objects are read
 * from the buffer it keeps, until freed); failed reads are -EIO; when
 * failed segments keep every buffer, zb_write() refuses (-EIO) instead
 * of waiting.
 */
START_TEST(test_io_errors)
{
	/* M: more objects than ZB_NBUF segments hold */
	enum { N = 300, M = (ZB_NBUF + 1) * (ZB_SEG_SIZE / 1000) };
	struct obj a[N], b[N], c[N], x[ZB_NWIN], y, *d = calloc(M, sizeof(*d));
	struct zb_file *f;
	struct zb_stats st, st2;
	uint64_t s = 31;
	int zfd, orig, ro, wo;
	unsigned i;

	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < N; i++) {
		a[i] = (struct obj){ 0, rnd(&s, 1000, 3500), i };
		ck_assert_int_ge(put(f, &a[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	/* A segment between a[]'s and x[]'s, freed below: read-ahead past
	 * a[]'s last segment finds it free, and reads none of x[]. */
	y = (struct obj){ 0, 100, 4000 };
	ck_assert_int_eq(put(f, &y), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	/* A segment of ZB_NWIN aligned blocks, to take every read window
	 * away from a[] below. */
	for (i = 0; i < ZB_NWIN; i++) {
		x[i] = (struct obj){ 0, ZB_ALIGN, 5000 + i };
		ck_assert_int_eq(put(f, &x[i]), 0);
		ck_assert_uint_eq(x[i].loc & 0xffffffff,
				  (uint64_t)i * ZB_ALIGN << 12 | (ZB_ALIGN - 1));
	}
	ck_assert_int_eq(zb_flush(f), 0);
	zb_free(f, y.loc);
	zfd = zb_fd_of(tpath);
	orig = dup(zfd);
	ro = open(tpath, O_RDONLY);
	wo = open(tpath, O_WRONLY);
	ck_assert(orig >= 0 && ro >= 0 && wo >= 0);

	/* Segment writes fail: the writes themselves succeed (the reserve
	 * was allocated ahead), their segments keep their buffers. */
	ck_assert_int_eq(dup2(ro, zfd), zfd);
	for (i = 0; i < N; i++) {
		b[i] = (struct obj){ 0, rnd(&s, 1000, 3500), 1000 + i };
		ck_assert_int_ge(put(f, &b[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), -EIO);
	zb_get_stats(f, &st);
	ck_assert_uint_ge(st.failed_writes, 2);
	ck_assert_uint_eq(st.segs_bad, st.failed_writes);
	ck_assert_uint_lt(st.failed_writes, ZB_NBUF);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(check(f, &b[i]), 0);
		ck_assert_int_eq(check(f, &a[i]), 0);
	}

	/* Reads fail, then the file comes back.  The windows hold a[]'s
	 * last objects read: fill each with a block of x[] (backwards, so
	 * that no read looks sequential and takes a whole window), so that
	 * every read of a[] goes to the file. */
	zb_ra_wait(f);
	zb_get_stats(f, &st);
	for (i = ZB_NWIN; i--;)
		ck_assert_int_eq(check(f, &x[i]), 0);
	zb_get_stats(f, &st2);
	ck_assert_uint_eq(st2.disk_reads, st.disk_reads + ZB_NWIN);
	ck_assert_int_eq(dup2(wo, zfd), zfd);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(check(f, &a[i]), -EIO);
	ck_assert_int_eq(dup2(orig, zfd), zfd);
	for (i = 0; i < N; i++) {
		c[i] = (struct obj){ 0, rnd(&s, 1000, 3500), 2000 + i };
		ck_assert_int_ge(put(f, &c[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(check(f, &a[i]), 0);
		ck_assert_int_eq(check(f, &b[i]), 0);
		ck_assert_int_eq(check(f, &c[i]), 0);
	}
	/* Bad segments are retired, not reused, once emptied. */
	for (i = 0; i < N; i++)
		zb_free(f, b[i].loc);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.objs, 2 * N + ZB_NWIN);
	/* A segment written again once the error passed is not bad. */
	ck_assert_uint_le(st.segs_bad, st.failed_writes);
	ck_assert_uint_eq(st.failed_reads, N);

	/*
	 * Writes failing for good: once failed segments keep every buffer,
	 * writes are refused (-EIO), and nothing stored is lost.  First a
	 * reserve of more segments than buffers (written and freed: no
	 * refill, so none is punched), so that no allocation, which would
	 * fail too, is needed on the way.
	 */
	for (i = 0; i < (ZB_NBUF + 2) * (ZB_SEG_SIZE / ZB_MAX_OBJ); i++) {
		d[i] = (struct obj){ 0, ZB_MAX_OBJ, 4000 + i };
		ck_assert_int_ge(put(f, &d[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	while (i--)
		zb_free(f, d[i].loc);
	zb_get_stats(f, &st);
	ck_assert_uint_ge(st.segs_reserved, ZB_NBUF + 2);
	ck_assert_int_eq(dup2(ro, zfd), zfd);
	for (i = 0; i < M; i++) {
		d[i] = (struct obj){ 0, rnd(&s, 1000, 3500), 3000 + i };
		if (put(f, &d[i]) < 0)
			break;
	}
	ck_assert_uint_lt(i, M);
	/* every buffer: the open segment and ZB_NBUF - 1 full ones, held */
	ck_assert_uint_ge(i, (ZB_NBUF - 1) * (ZB_SEG_SIZE / 3500));
	ck_assert_int_eq(put(f, &d[i]), -EIO);
	zb_get_stats(f, &st2);
	ck_assert_uint_ge(st2.segs_bad, st.segs_bad + ZB_NBUF - 1);
	while (i--)
		ck_assert_int_eq(check(f, &d[i]), 0);
	ck_assert_int_eq(dup2(orig, zfd), zfd);
	close(orig);
	close(ro);
	close(wo);
	zb_close(f);
	free(d);
}
END_TEST

/* The bytes of objects @i + 1 .. @n - 1 of @o: what a reader of object
 * @i will ask for next, when they lie one after the other in a segment. */
static size_t bytes_after(const struct obj *o, unsigned i, unsigned n)
{
	size_t b = 0;

	while (++i < n)
		b += o[i].len;
	return b;
}

/*
 * Read windows: one read brings in the objects the caller said it would
 * ask for next, and a window read from a segment is never served once
 * the segment is reused (its generation changed), even for a location
 * equal to an old one.
 */
START_TEST(test_window_stale)
{
	enum { N = 300 };
	struct obj o[N], n[N];
	struct zb_file *f;
	struct zb_stats st, st2;
	uint64_t s = 41, seg;
	unsigned i, k, tries;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < N; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 500, 2000), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	seg = o[0].loc >> 32;
	for (k = 0; k < N && o[k].loc >> 32 == seg; k++)
		;
	ck_assert_uint_ge(k, 50);		/* about 200 */
	ck_assert_uint_lt(k, N);

	/* 50 objects in a row, each read with the rest of the run ahead:
	 * at most 2 reads of the file (at most 100,000 bytes: within two
	 * windows, each read starting at most a block before its object). */
	zb_get_stats(f, &st);
	for (i = 0; i < 50; i++)
		ck_assert_int_eq(check_ahead(f, &o[i], rbuf, bytes_after(o, i, 50)),
				 0);
	zb_get_stats(f, &st2);
	ck_assert_uint_eq(st2.reads, st.reads + 50);
	ck_assert_uint_ge(st2.disk_reads, st.disk_reads + 1);
	ck_assert_uint_le(st2.disk_reads, st.disk_reads + 2);
	/* The rest of the segment, read in order: windows cover it all. */
	for (; i < k; i++)
		ck_assert_int_eq(check_ahead(f, &o[i], rbuf, ZB_WIN_SIZE), 0);
	for (i = 0; i < k; i++)		/* all from windows now */
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_le(st.disk_reads, st2.disk_reads + ZB_SEG_SIZE /
			  ZB_WIN_SIZE + 1);

	/* Free the segment: READY.  Write objects of the same lengths, new
	 * contents, into fresh segments until one lands in it: at the same
	 * locations as the old ones. */
	for (i = 0; i < k; i++)
		zb_free(f, o[i].loc);
	for (tries = 0; tries < 2 * ZB_RESERVE_SEGS + 2; tries++) {
		for (i = 0; i < k; i++) {
			n[i] = (struct obj){ 0, o[i].len,
					     10000 * (tries + 1) + i };
			ck_assert_int_ge(put(f, &n[i]), 0);
			ck_assert_uint_eq(n[i].loc >> 32, n[0].loc >> 32);
		}
		ck_assert_int_eq(zb_flush(f), 0);	/* closes it */
		if (n[0].loc >> 32 == seg)
			break;
	}
	ck_assert_uint_eq(n[0].loc >> 32, seg);
	zb_get_stats(f, &st);
	for (i = 0; i < k; i++) {
		ck_assert_uint_eq(n[i].loc, o[i].loc);
		ck_assert_int_eq(check(f, &n[i]), 0);	/* new, not a window's */
	}
	zb_get_stats(f, &st2);
	ck_assert_uint_ge(st2.disk_reads, st.disk_reads + 1);
	for (i = k; i < N; i++)			/* the next segment's, intact */
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_close(f);
}
END_TEST

/*
 * Read-ahead: a reader in order over segments written one after another
 * waits for the file twice (its first object's block, then the first
 * whole window, after which ZB_RA_DEPTH windows are read ahead);
 * read-ahead brings in every later window while it is served, across
 * segments, and the reader uses each one.
 */
START_TEST(test_read_ahead_thread)
{
	enum { N = 800, LEN = 1000 };	/* 262 a segment: 4 segments */
	struct obj o[N];
	struct zb_file *f;
	struct zb_stats st, st2;
	uint64_t ahead0 = 0;
	unsigned i, segs = 1;

	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < N; i++) {
		o[i] = (struct obj){ 0, LEN, 77 + i };
		ck_assert_int_ge(put(f, &o[i]), 0);
		segs += i && o[i].loc >> 32 != o[i - 1].loc >> 32;
	}
	ck_assert_uint_eq(segs, 4);
	ck_assert_int_eq(zb_flush(f), 0);
	zb_get_stats(f, &st);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(check(f, &o[i]), 0);
		zb_ra_wait(f);
		zb_get_stats(f, &st2);
		/* Right after the first whole window: the two after it. */
		if (st2.disk_reads - st.disk_reads == 2 && !ahead0)
			ahead0 = st2.ra_reads - st.ra_reads;
	}
	ck_assert_uint_eq(ahead0, ZB_RA_DEPTH);
	ck_assert_uint_eq(st2.disk_reads - st.disk_reads, 2);
	/* 800,000 bytes in windows of 64 KiB that overlap by a block */
	ck_assert_uint_ge(st2.ra_reads - st.ra_reads, 12);
	ck_assert_uint_le(st2.ra_reads - st.ra_reads, 16);
	ck_assert_uint_eq(st2.ra_used - st.ra_used, st2.ra_reads - st.ra_reads);
	ck_assert_uint_eq(st2.failed_reads, 0);
	zb_close(f);
}
END_TEST

/*
 * The write queue: zb_write() closes a segment (1) without writing it;
 * its objects are read from its buffer until zb_write_queued() writes
 * it, and from the file after.  Without anyone calling
 * zb_write_queued(), zb_write() writes queued segments itself once every
 * buffer is taken.
 */
START_TEST(test_write_queue)
{
	enum { M = (ZB_NBUF + 4) * (ZB_SEG_SIZE / 2900) };
	struct obj *o = calloc(M, sizeof(*o));
	struct zb_file *f;
	struct zb_stats st, st2;
	uint64_t s = 51;
	unsigned i, n, closed = 0, after;
	uint32_t now;
	int r;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	now = zb_now_ms();
	ck_assert_int_eq(zb_refill_wanted(f, now, &after), 0);
	for (n = 0;; n++) {
		ck_assert_uint_lt(n, ZB_SEG_SIZE / 2900 + 1);
		o[n] = (struct obj){ 0, rnd(&s, 2900, 3100), n };
		r = put(f, &o[n]);
		if (r)
			break;
	}
	ck_assert_int_eq(r, 1);
	ck_assert_uint_ne(o[n].loc >> 32, o[0].loc >> 32);
	ck_assert_uint_eq(o[n - 1].loc >> 32, o[0].loc >> 32);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 0);	/* queued, not written */
	ck_assert_int_eq(zb_refill_wanted(f, now, &after), 1);
	for (i = 0; i < n; i++)			/* from its buffer */
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_get_stats(f, &st2);
	ck_assert_uint_eq(st2.disk_reads, st.disk_reads);
	ck_assert_uint_eq(st2.reads, st.reads + n);
	ck_assert_int_eq(zb_write_queued(f), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 1);
	ck_assert_int_eq(zb_refill_wanted(f, now, &after), 0);	/* done */
	ck_assert_int_eq(zb_write_queued(f), 0);		/* no-op */
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 1);
	for (i = 0; i < n; i++)			/* from the file */
		ck_assert_int_eq(check(f, &o[i]), 0);
	zb_get_stats(f, &st2);
	ck_assert_uint_gt(st2.disk_reads, st.disk_reads);
	ck_assert_uint_eq(st2.reads, st.reads + n);

	/* Nobody writes the queue: the first ZB_NBUF - 1 segments closed
	 * wait in buffers (one more is open); then zb_write() writes the
	 * oldest itself to have a buffer.  All succeed, all read back. */
	for (n++; n < M; n++) {
		o[n] = (struct obj){ 0, rnd(&s, 2900, 3100), n };
		r = put(f, &o[n]);
		ck_assert_int_ge(r, 0);
		if (r == 1 && ++closed == ZB_NBUF - 1) {
			zb_get_stats(f, &st);
			ck_assert_uint_eq(st.segs_written, 1);
		}
	}
	ck_assert_uint_ge(closed, ZB_NBUF + 2);
	zb_get_stats(f, &st);
	ck_assert_uint_ge(st.segs_written, 1 + closed - (ZB_NBUF - 1));
	ck_assert_uint_eq(st.objs, M);
	ck_assert_uint_eq(st.failed_writes, 0);
	for (i = 0; i < M; i++)
		ck_assert_int_eq(check(f, &o[i]), 0);
	ck_assert_int_eq(zb_flush(f), 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.segs_written, 2 + closed);	/* each once */
	check_all_close(f, o, M);
}
END_TEST

/*
 * Queued segments that lie together in the file go in one write of up
 * to ZB_WRITE_RUN (4): segments taken one by one as the file grows lie
 * in ascending order, those from a refilled reserve (a stack) in
 * descending order; both make runs.  Only the last in the file may be
 * partly filled, so a run stops at the open segment's predecessor.
 */
START_TEST(test_write_runs)
{
	enum { PER = ZB_SEG_SIZE / ZB_MAX_OBJ, M = 12 * PER };
	struct obj *o = calloc(M, sizeof(*o));
	struct zb_file *f;
	struct zb_stats st, st2;
	unsigned n = 0, closed;
	int phase, r;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (phase = 0; phase < 2; phase++) {
		/* phase 1: 8 segments pushed on the reserve, taken last
		 * first */
		if (phase == 1)
			ck_assert_int_eq(zb_refill(f, zb_now_ms()), 0);
		zb_get_stats(f, &st);
		for (closed = 0; closed < 5; n++) {
			ck_assert_uint_lt(n, M);
			o[n] = (struct obj){ 0, ZB_MAX_OBJ, n };
			r = put(f, &o[n]);
			ck_assert_int_ge(r, 0);
			closed += (unsigned)r;
		}
		ck_assert_int_eq(zb_write_queued(f), 0);
		zb_get_stats(f, &st2);
		ck_assert_uint_eq(st2.segs_written - st.segs_written, 5);
		/* phase 0: 0-3 and 4; phase 1: 5, then 13 down to 10 */
		ck_assert_uint_eq(st2.disk_writes - st.disk_writes, 2);
		ck_assert_uint_eq(st2.failed_writes, 0);
	}
	check_all_close(f, o, n);
}
END_TEST

/* tmpfs (/dev/shm): O_DIRECT since Linux 6.6, fallocate and punching. */
START_TEST(test_tmpfs)
{
	struct zb_file *f;
	struct zb_stats st;
	uint64_t before;

	rm_tree(tdir);			/* the fixture's, empty */
	mk_tdir(base_shm);
	ck_assert_int_eq(zb_open(tpath, 64 * MiB, &f), 0);
	ck_assert_int_eq(roundtrip(f, 3000, 2, rbuf), 0);
	zb_get_stats(f, &st);
	fprintf(stderr, "zb_file on tmpfs: %s\n", st.direct ? "O_DIRECT" :
		"page cache");
	before = st_blocks_bytes(tpath);
	zb_close(f);
	ck_assert_uint_ge(before, 5 * MiB);
	ck_assert_uint_eq(st_blocks_bytes(tpath), 0);
}
END_TEST

/* ---- File systems of our own, in a child's mount namespace -------------- */

#define CHILD_CHECK(cond, code) do {					\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: %s\n", __FILE__,	\
				__LINE__, #cond);			\
			return (code);					\
		}							\
	} while (0)

/* Mount @type (@opts) on tdir in a mount namespace of our own. */
static int child_mount(const char *type, const char *opts)
{
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("none", tdir, type, 0, opts))
		return -1;
	return 0;
}

/*
 * ramfs refuses O_DIRECT and has neither fallocate nor punching: the
 * page-cache fallback, zeros written ahead, free segments kept.
 */
static int ramfs_child(int arg)
{
	unsigned char *buf = malloc(ZB_MAX_OBJ);
	struct zb_file *f;
	struct zb_stats st;
	int r;

	(void)arg;
	CHILD_CHECK(buf, 2);
	CHILD_CHECK(!child_mount("ramfs", NULL), 3);
	CHILD_CHECK(zb_open(tpath, 0, &f) == -ENOSPC, 4);  /* no free space */
	CHILD_CHECK(zb_open(tpath, 32 * MiB, &f) == 0, 5);
	zb_get_stats(f, &st);
	CHILD_CHECK(!st.direct, 6);
	CHILD_CHECK(st.segs_reserved == ZB_RESERVE_SEGS, 7);
	r = roundtrip(f, 3000, 3, buf);
	CHILD_CHECK(!r, r);
	CHILD_CHECK(!zb_refill(f, zb_now_ms()), 8);
	zb_close(f);
	free(buf);
	return 0;
}

START_TEST(test_ramfs_fallback)
{
	tu_run_child(ramfs_child, 0, "ramfs");
}
END_TEST

/*
 * A 4 MiB tmpfs and a cap of 64 MiB: the file system fills before the
 * cap.  Writes then fail with -ENOSPC, every object stored reads back,
 * and space freed is taken again.
 */
static int full_child(int arg)
{
	unsigned char *buf = malloc(ZB_MAX_OBJ);
	struct obj *o = calloc(4000, sizeof(*o));
	uint64_t s = 21;
	struct zb_file *f;
	unsigned n = 0, i;
	int r;

	(void)arg;
	CHILD_CHECK(buf && o, 2);
	CHILD_CHECK(!child_mount("tmpfs", "size=4m"), 3);
	CHILD_CHECK(zb_open(tpath, 64 * MiB, &f) == 0, 4);
	for (;;) {
		o[n] = (struct obj){ 0, rnd(&s, 1000, 3500), n };
		r = put(f, &o[n]);
		if (r < 0)
			break;
		CHILD_CHECK(++n < 4000, 5);
	}
	CHILD_CHECK(r == -ENOSPC, 6);
	CHILD_CHECK(n > 1000, 7);		/* about 3.5 MiB went in */
	CHILD_CHECK(zb_flush(f) == 0, 8);
	for (i = 0; i < n; i++)
		CHILD_CHECK(!check_buf(f, &o[i], buf), 9);
	CHILD_CHECK(zb_refill(f, zb_now_ms()) == -ENOSPC, 10);
	for (i = 0; i < n && o[i].loc >> 32 == o[0].loc >> 32; i++)
		zb_free(f, o[i].loc);
	o[n] = (struct obj){ 0, 3000, 77777 };
	CHILD_CHECK(put(f, &o[n]) >= 0, 11);
	CHILD_CHECK(!check_buf(f, &o[n], buf), 12);
	for (; i < n; i++)
		CHILD_CHECK(!check_buf(f, &o[i], buf), 13);
	zb_close(f);
	free(o);
	free(buf);
	return 0;
}

START_TEST(test_fs_full)
{
	tu_run_child(full_child, 0, "file system full");
}
END_TEST

/* ---- A block device (a loop device that detaches itself) ---------------- */

static int loop_attach(const char *file, char *dev, size_t devlen)
{
	struct loop_config cfg;
	int ctl, lfd, bfd, n, tries;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -1;
	bfd = open(file, O_RDWR | O_CLOEXEC);
	if (bfd < 0) {
		close(ctl);
		return -1;
	}
	for (tries = 0; tries < 16; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			break;
		snprintf(dev, devlen, "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			continue;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)bfd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (!ioctl(lfd, LOOP_CONFIGURE, &cfg)) {
			close(bfd);
			close(ctl);
			return lfd;	/* detaches when the last fd closes */
		}
		close(lfd);		/* taken by someone else meanwhile */
	}
	close(bfd);
	close(ctl);
	return -1;
}

START_TEST(test_blockdev)
{
	enum { N = 2000 };		/* about 17 segments */
	char img[160], dev[32];
	struct zb_file *f, *g = NULL;
	struct zb_stats st;
	uint64_t s = 51, a0, a1;
	struct obj *o;
	unsigned i;
	int fd, lfd;

	snprintf(img, sizeof(img), "%s/img", tdir);
	fd = open(img, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 16 * MiB), 0);
	close(fd);
	lfd = loop_attach(img, dev, sizeof(dev));
	ck_assert_msg(lfd >= 0, "no loop device: %s", strerror(errno));
	ck_assert_int_eq(zb_open(dev, 0, &f), 0);
	zb_get_stats(f, &st);
	ck_assert_int_eq(st.blockdev, 1);
	ck_assert_int_eq(st.direct, 1);
	ck_assert_uint_eq(st.cap_bytes, 16 * MiB);	/* the device's size */
	ck_assert_int_eq(zb_open(dev, 0, &g), -EBUSY);
	ck_assert_int_eq(roundtrip(f, 4000, 4, rbuf), 0);
	zb_close(f);
	ck_assert_int_eq(zb_open(dev, 1 * MiB, &f), 0);	/* cap under size */
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.cap_bytes, 1 * MiB);
	zb_close(f);

	/* Free segments past the reserve are discarded, as a file's are
	 * punched: the loop device punches them out of its file. */
	ck_assert_int_eq(zb_open(dev, 0, &f), 0);
	o = calloc(N, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	for (i = 0; i < N; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1000, 3500), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	ck_assert_int_eq(fsync(lfd), 0);
	a0 = st_blocks_bytes(img);
	for (i = 0; i < N; i++)
		zb_free(f, o[i].loc);
	for (i = 0; i < 3 * ZB_AGE_MS; i++)	/* three periods */
		refill_if_wanted(f);
	zb_get_stats(f, &st);
	ck_assert_uint_gt(st.segs_punched, 0);
	ck_assert_uint_eq(st.bytes_allocated, ZB_RESERVE_SEGS * ZB_SEG_SIZE);
	a1 = st_blocks_bytes(img);
	ck_assert_msg(a1 + st.segs_punched * ZB_SEG_SIZE <= a0,
		      "the loop's file: %llu bytes allocated, %llu before "
		      "%llu segments were discarded", (unsigned long long)a1,
		      (unsigned long long)a0,
		      (unsigned long long)st.segs_punched);
	zb_close(f);
	free(o);
	close(lfd);
}
END_TEST

/* ---- Concurrency -------------------------------------------------------- */

enum { CW = 2, CR = 3, CPERM = 3000, CPRIV = 4000, CRING = 64 };

struct cshared {
	struct zb_file *f;
	struct obj perm[CW][CPERM];	/* written before published */
	_Atomic unsigned published[CW];
	_Atomic int writers_done;
	_Atomic int failures;
};

struct carg {
	struct cshared *sh;
	unsigned id;
};

/*
 * A writer: objects that stay (published for the readers) and private
 * ones read back and freed soon after, so segments empty and are reused
 * while readers run.
 */
static void *cwriter(void *p)
{
	struct carg *a = p;
	struct cshared *sh = a->sh;
	unsigned char *buf = malloc(ZB_MAX_OBJ);
	struct obj ring[CRING] = { { 0 } }, *o;
	uint64_t s = 100 + a->id;
	unsigned i, np = 0;

	for (i = 0; buf && i < CPERM + CPRIV; i++) {
		bool perm = i % 7 < 3 && np < CPERM;

		o = perm ? &sh->perm[a->id][np] : &ring[i % CRING];
		if (!perm && o->loc) {
			if (check_buf(sh->f, o, buf))
				atomic_fetch_add(&sh->failures, 1);
			zb_free(sh->f, o->loc);
		}
		*o = (struct obj){ 0, rnd(&s, 1, ZB_MAX_OBJ),
				   (a->id + 1) << 24 | i };
		if (put(sh->f, o) < 0) {
			atomic_fetch_add(&sh->failures, 1);
			break;
		}
		if (perm)
			atomic_store_explicit(&sh->published[a->id], ++np,
					      memory_order_release);
		if (i % 1000 == 999 && zb_flush(sh->f))
			atomic_fetch_add(&sh->failures, 1);
	}
	free(buf);
	atomic_fetch_add(&sh->writers_done, 1);
	return NULL;
}

static void *creader(void *p)
{
	struct carg *a = p;
	struct cshared *sh = a->sh;
	unsigned char *buf = malloc(ZB_MAX_OBJ);
	uint64_t s = 200 + a->id;
	unsigned w, n, j, k;

	/* Runs of up to 8 published objects in the order they were
	 * written, the first read with some read-ahead, as swap reads: the
	 * readers share the windows, and writers reuse segments under
	 * them. */
	while (buf && atomic_load(&sh->writers_done) < CW) {
		w = rnd(&s, 0, CW - 1);
		n = atomic_load_explicit(&sh->published[w],
					 memory_order_acquire);
		if (!n)
			continue;
		j = rnd(&s, 0, n - 1);
		for (k = 0; k < 8 && j + k < n; k++)
			if (check_ahead(sh->f, &sh->perm[w][j + k], buf,
					k ? 0 : rnd(&s, 0, 8) * 4096))
				atomic_fetch_add(&sh->failures, 1);
	}
	free(buf);
	return NULL;
}

/* The store's background thread: writes the queue, keeps the reserve,
 * reads the stats. */
static void *crefill(void *p)
{
	struct cshared *sh = p;
	struct zb_stats st;
	unsigned after;
	uint32_t now;

	while (atomic_load(&sh->writers_done) < CW) {
		now = zb_now_ms();
		if (zb_refill_wanted(sh->f, now, &after)) {
			if (zb_write_queued(sh->f))
				atomic_fetch_add(&sh->failures, 1);
			zb_refill(sh->f, now);
		}
		zb_get_stats(sh->f, &st);
		usleep(200);
	}
	return NULL;
}

START_TEST(test_concurrent)
{
	struct cshared *sh = calloc(1, sizeof(*sh));
	pthread_t w[CW], r[CR], bg;
	struct carg wa[CW], ra[CR];
	struct zb_stats st;
	unsigned i, j;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(zb_open(tpath, 0, &sh->f), 0);
	for (i = 0; i < CW; i++) {
		wa[i] = (struct carg){ sh, i };
		ck_assert_int_eq(pthread_create(&w[i], NULL, cwriter, &wa[i]), 0);
	}
	for (i = 0; i < CR; i++) {
		ra[i] = (struct carg){ sh, i };
		ck_assert_int_eq(pthread_create(&r[i], NULL, creader, &ra[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&bg, NULL, crefill, sh), 0);
	for (i = 0; i < CW; i++)
		pthread_join(w[i], NULL);
	for (i = 0; i < CR; i++)
		pthread_join(r[i], NULL);
	pthread_join(bg, NULL);
	ck_assert_int_eq(atomic_load(&sh->failures), 0);
	for (i = 0; i < CW; i++) {
		ck_assert_uint_eq(atomic_load(&sh->published[i]), CPERM);
		for (j = 0; j < CPERM; j++)
			ck_assert_int_eq(check(sh->f, &sh->perm[i][j]), 0);
	}
	zb_get_stats(sh->f, &st);
	ck_assert_uint_eq(st.failed_reads + st.failed_writes + st.bad_frees, 0);
	ck_assert_uint_eq(st.objs, CW * (CPERM + CRING));
	ck_assert_uint_gt(st.ra_reads, 0);	/* it ran among them */
	printf("zb_file concurrent: %llu reads of the file, "
	       "%llu windows read ahead, %llu used\n",
	       (unsigned long long)st.disk_reads,
	       (unsigned long long)st.ra_reads,
	       (unsigned long long)st.ra_used);
	zb_close(sh->f);
	free(sh);
}
END_TEST

/*
 * A compaction that cannot read a segment: the objects stay where they
 * are and read back once the file does, the failure is counted once per
 * segment, and the segment is not picked again while it holds objects.
 */
START_TEST(test_compact_read_error)
{
	enum { N = 400 };
	struct obj *o = calloc(N, sizeof(*o));
	unsigned char buf[ZB_MAX_OBJ];
	uint32_t segs[32];
	struct zb_file *f;
	struct zb_stats st, st0;
	uint64_t s = 41, nl;
	unsigned i, k, kept = 0;
	int zfd, orig, wo;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(zb_open(tpath, 0, &f), 0);
	for (i = 0; i < N; i++) {
		o[i] = (struct obj){ 0, rnd(&s, 1000, 3500), i };
		ck_assert_int_ge(put(f, &o[i]), 0);
	}
	ck_assert_int_eq(zb_flush(f), 0);
	for (i = 0; i < N; i++) {	/* a fifth kept: all sparse */
		if (i % 5) {
			zb_free(f, o[i].loc);
			o[i].loc = 0;
		} else {
			o[kept++] = o[i];
		}
	}
	zfd = zb_fd_of(tpath);
	orig = dup(zfd);
	wo = open(tpath, O_WRONLY);
	ck_assert(orig >= 0 && wo >= 0);
	ck_assert_int_eq(dup2(wo, zfd), zfd);
	zb_get_stats(f, &st0);
	k = zb_compact_pick(f, segs, 32, true);
	ck_assert_uint_gt(k, 1);
	ck_assert_uint_eq(k, st0.segs_sparse);	/* every sparse one */
	for (i = 0; i < kept; i++)
		ck_assert_int_eq(zb_relocate(f, o[i].loc, o[i].len, buf, &nl),
				 0);
	zb_get_stats(f, &st);
	ck_assert_uint_eq(st.failed_reads, k);
	/* Segments compaction cannot read are out of the sparse figures,
	 * which would otherwise keep a compaction worth it for good. */
	ck_assert_uint_eq(st.segs_sparse, 0);
	ck_assert_uint_eq(st.bytes_sparse_waste, 0);
	ck_assert_uint_eq(st.objs_relocated, 0);
	ck_assert_uint_eq(zb_compact_pick(f, segs, 32, true), 0);
	ck_assert_int_eq(dup2(orig, zfd), zfd);
	close(orig);
	close(wo);
	ck_assert_uint_eq(zb_compact_pick(f, segs, 32, true), 0);
	check_all_close(f, o, kept);
}
END_TEST

Suite *zb_file_suite(void)
{
	Suite *s = suite_create("zb_file");
	TCase *tc;

	tc = tcase_create("objects");
	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_buffer_and_flush);
	tcase_add_test(tc, test_flush_meanwhile);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_bad_loc);
	tcase_add_test(tc, test_io_errors);
	tcase_add_test(tc, test_window_stale);
	tcase_add_test(tc, test_read_ahead_thread);
	tcase_add_test(tc, test_write_queue);
	tcase_add_test(tc, test_write_runs);
	tcase_add_test(tc, test_tmpfs);
	suite_add_tcase(s, tc);

	tc = tcase_create("space");
	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_packing);
	tcase_add_test(tc, test_punch);
	tcase_add_test(tc, test_punch_aged);
	tcase_add_test(tc, test_churn_fifo);
	tcase_add_test(tc, test_churn_random);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_compact_read_error);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_fs_full);
	suite_add_tcase(s, tc);

	tc = tcase_create("opening");
	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_symlink);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_not_a_file);
	tcase_add_test(tc, test_created_0600);
	tcase_add_test(tc, test_unlinked);
	tcase_add_test(tc, test_ramfs_fallback);
	tcase_add_test(tc, test_blockdev);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_concurrent);
	suite_add_tcase(s, tc);
	return s;
}
