/*
 * compspeed: single-core speed of the project's compressors, for
 * bench/run.sh.
 *
 * The corpus file is cut into 4 KiB pages, as fusezram cuts its image,
 * and every page goes through zcomp_compress() and zcomp_decompress() of
 * compressors/ with one context, on one thread, at the backend's default
 * level (lz4: acceleration 1; zstd: level 3).  This is the ceiling of one
 * fusezram worker thread: no page table, no allocator, no FUSE.
 *
 *	compspeed CORPUS [BACKEND...]		(default: lz4 zstd)
 *
 * Output, one line per backend after a header:
 *	backend level comp_MBps decomp_MBps ratio pages raw_pages
 * MB is 10^6 bytes of uncompressed data, as dd counts.  ratio is corpus
 * bytes / sum of compressed page sizes, a page that does not compress
 * counting 4096 (stored raw, as zram does); there is no same-filled page
 * detection here, so the ratio is a little below what the store reaches.
 * Every page is checked after decompression; a mismatch exits 1.
 *
 * Built by bench/run.sh on its own (no Makefile rule):
 *	cc -O2 -I. compressors/zcomp*.c bench/compspeed.c \
 *		$(pkg-config --cflags --libs liblz4 libzstd)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compressors/zcomp.h"

#define CS_PAGE		4096
#define CS_MIN_SECONDS	1.0	/* repeat a pass until this much time */

struct cs_result {
	double comp_mbps;
	double decomp_mbps;
	double ratio;
	size_t raw_pages;
};

static double cs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Compress every page of @src (@npages pages) into its own 4 KiB slot of
 * @dst, lengths into @len (0 = stored raw).  Returns 0 or -errno.
 */
static int cs_compress_all(struct zcomp_ctx *ctx, const unsigned char *src,
			   size_t npages, unsigned char *dst, int *len)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		int ret = zcomp_compress(ctx, src + i * CS_PAGE, CS_PAGE,
					 dst + i * CS_PAGE, CS_PAGE);

		if (ret < 0)
			return ret;
		len[i] = ret;
	}
	return 0;
}

/* Decompress every non-raw page into @out.  Returns 0 or -EIO. */
static int cs_decompress_all(struct zcomp_ctx *ctx, const unsigned char *dst,
			     size_t npages, const int *len, unsigned char *out)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		if (len[i] == 0)
			continue;
		if (zcomp_decompress(ctx, dst + i * CS_PAGE, len[i],
				     out + i * CS_PAGE, CS_PAGE) != 0)
			return -EIO;
	}
	return 0;
}

/*
 * Measure one backend over the corpus.  @dst, @len and @out are
 * caller-allocated scratch of npages slots.  Returns 0, -errno from the
 * library, or -EIO when a page does not round-trip.
 */
static int cs_run(const char *name, const unsigned char *src, size_t npages,
		  unsigned char *dst, int *len, unsigned char *out,
		  struct cs_result *res, int *level)
{
	const struct zcomp_backend *be = zcomp_find(name);
	struct zcomp_ctx *ctx;
	double t0, t;
	unsigned long long csize = 0;
	size_t i, passes;
	int ret;

	if (!be)
		return -ENOENT;
	ret = zcomp_ctx_create(be, ZCOMP_LEVEL_DEFAULT, &ctx);
	if (ret)
		return ret;
	*level = zcomp_ctx_level(ctx);

	passes = 0;
	t0 = cs_now();
	do {
		ret = cs_compress_all(ctx, src, npages, dst, len);
		if (ret)
			goto out_ctx;
		passes++;
		t = cs_now() - t0;
	} while (t < CS_MIN_SECONDS);
	res->comp_mbps = (double)passes * npages * CS_PAGE / t / 1e6;

	res->raw_pages = 0;
	for (i = 0; i < npages; i++) {
		csize += len[i] ? (unsigned)len[i] : CS_PAGE;
		res->raw_pages += len[i] == 0;
	}
	res->ratio = (double)npages * CS_PAGE / (double)csize;

	passes = 0;
	t0 = cs_now();
	do {
		ret = cs_decompress_all(ctx, dst, npages, len, out);
		if (ret)
			goto out_ctx;
		passes++;
		t = cs_now() - t0;
	} while (t < CS_MIN_SECONDS);
	/* Only compressed pages were decoded, but all pages are delivered. */
	res->decomp_mbps = (double)passes * npages * CS_PAGE / t / 1e6;

	for (i = 0; i < npages; i++) {
		if (len[i] && memcmp(out + i * CS_PAGE, src + i * CS_PAGE,
				     CS_PAGE) != 0) {
			ret = -EIO;
			goto out_ctx;
		}
	}
out_ctx:
	zcomp_ctx_destroy(ctx);
	return ret;
}

int main(int argc, char *argv[])
{
	static const char *const defaults[] = { "lz4", "zstd" };
	const char *const *names = defaults;
	int nnames = 2;
	unsigned char *src, *dst, *out;
	struct stat st;
	size_t npages;
	int *len;
	int fd, i, status = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS [BACKEND...]\n", argv[0]);
		return 2;
	}
	if (argc > 2) {
		names = (const char *const *)&argv[2];
		nnames = argc - 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(argv[1]);
		return 2;
	}
	npages = (size_t)st.st_size / CS_PAGE;
	if (npages == 0) {
		fprintf(stderr, "%s: shorter than one page\n", argv[1]);
		return 2;
	}
	src = mmap(NULL, npages * CS_PAGE, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
		   fd, 0);
	close(fd);
	dst = malloc(npages * CS_PAGE);
	out = malloc(npages * CS_PAGE);
	len = calloc(npages, sizeof(*len));
	if (src == MAP_FAILED || !dst || !out || !len) {
		fprintf(stderr, "compspeed: out of memory\n");
		return 2;
	}
	/* Fault the scratch buffers in before timing. */
	memset(dst, 0, npages * CS_PAGE);
	memset(out, 0, npages * CS_PAGE);

	printf("%-8s %5s %10s %12s %6s %9s %9s\n", "backend", "level",
	       "comp_MBps", "decomp_MBps", "ratio", "pages", "raw_pages");
	for (i = 0; i < nnames; i++) {
		struct cs_result res;
		int level = 0;
		int ret = cs_run(names[i], src, npages, dst, len, out, &res,
				 &level);

		if (ret) {
			fprintf(stderr, "compspeed: %s: %s\n", names[i],
				ret == -EIO ? "pages do not round-trip" :
				strerror(-ret));
			status = 1;
			continue;
		}
		printf("%-8s %5d %10.1f %12.1f %6.3f %9zu %9zu\n", names[i],
		       level, res.comp_mbps, res.decomp_mbps, res.ratio, npages,
		       res.raw_pages);
		fflush(stdout);
	}
	free(len);
	free(out);
	free(dst);
	munmap(src, npages * CS_PAGE);
	return status;
}
