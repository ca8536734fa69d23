/*
 * nullfs: the ceiling of the FUSE + loop path, for bench/run.sh.
 *
 * A low-level libfuse file system with a single regular file, "image", of
 * a size given with -o size=SIZE.  It stores nothing: writes succeed and
 * are dropped, reads return zeros, punch-hole succeeds.  The connection is
 * set up as fusezram sets up its own (fz_init() in fusezram.c): async
 * direct I/O, max_background 64, no splice; the image is opened with
 * FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES and served by the
 * multithreaded loop with 16 workers.  One difference: requests of up to
 * 1 MiB (the fewest round trips, since there is nothing to overlap them
 * with), where fusezram sends writes of 128 KiB and reads of 64 KiB so
 * that several are compressed at once.  So the time a request spends
 * here is the least any FUSE block store can spend on this path, and
 * whatever fusezram measures above nullfs is the cost of its page table,
 * compression and allocator.
 *
 * The transport is fusezram's (fz_ring.c): FUSE over io_uring when the
 * kernel offers it (Linux 6.14+, /sys/module/fuse/parameters/enable_uring
 * on) and -o io_uring=on, the default; /dev/fuse otherwise.  On the rings
 * READ and WRITE of the image are answered in place (zeros into the ring's
 * buffer; writes dropped), everything else through the same handlers as
 * on /dev/fuse.  fz_ring logs the transport once it is settled ("transport:
 * io_uring, ..." or "transport: /dev/fuse (why)"); nullfs logs it again
 * at exit, with the number of requests the rings served ("nullfs: at exit,
 * transport: ..."), which is what bench/run.sh checks an io_uring row by.
 *
 *	nullfs [-f] [-s] -o size=1G[,io_uring=on|off][,io_uring_depth=N] MOUNTPOINT
 *
 * Built by bench/run.sh on its own (no Makefile rule), with the transport:
 *	cc -O2 -Wall -Wextra -D_GNU_SOURCE -pthread -I. bench/nullfs.c \
 *		fz_ring.c $(pkg-config --cflags --libs fuse3 liburing)
 * (fz_ring.c needs _GNU_SOURCE from the command line, as the Makefile
 * gives it.)
 *
 * TODO: nothing counts requests on /dev/fuse; a per-op counter would show
 * how the kernel splits loop I/O into FUSE requests (the rings' count is
 * in the exit line).
 */
#define FUSE_USE_VERSION 314
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif

#include <fuse_lowlevel.h>
/* struct fuse_open_out and FOPEN_*, as in fusezram.c. */
#include <linux/fuse.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fz_ring.h"

#define NF_IMAGE_INO	2
#define NF_IMAGE_NAME	"image"
#define NF_ZERO_SIZE	(1u << 20)	/* one shared buffer of zeros */
#define NF_ATTR_TIMEOUT	3600.0
/* fusezram.c's FZ_MAX_IO, FZ_MAX_BACKGROUND, ... */
#define NF_MAX_IO		(1u << 20)
#define NF_MAX_BACKGROUND	64
#define NF_CONGESTION_THRESHOLD	48
#define NF_DEFAULT_THREADS	16
#define NF_STR_(x)		#x
#define NF_STR(x)		NF_STR_(x)

#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif

/* Set once in main() before the session starts; read-only afterwards. */
static uint64_t nf_size;
static const char nf_zero[NF_ZERO_SIZE];

struct nf_opts {
	char *size;
	char *io_uring;			/* "on" or "off" */
	unsigned int io_uring_depth;
};

static const struct fuse_opt nf_opt_spec[] = {
	{ "size=%s", offsetof(struct nf_opts, size), 0 },
	{ "io_uring=%s", offsetof(struct nf_opts, io_uring), 0 },
	{ "io_uring_depth=%u", offsetof(struct nf_opts, io_uring_depth), 0 },
	FUSE_OPT_END
};

/* Parse "256M", "1G", "4096": returns 0 and sets *out, or -EINVAL. */
static int nf_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end != '\0' || v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static void nf_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = (off_t)nf_size;
	}
	st->st_blksize = 4096;
}

static void nf_init(void *userdata, struct fuse_conn_info *conn)
{
	unsigned int cap = conn->max_write;	/* libfuse's buffer */

	(void)userdata;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE);
	conn->want &= conn->capable;
	conn->max_write = NF_MAX_IO < cap ? NF_MAX_IO : cap;
	conn->max_background = NF_MAX_BACKGROUND;
	conn->congestion_threshold = NF_CONGESTION_THRESHOLD;
}

static void nf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, NF_IMAGE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = NF_IMAGE_INO;
	e.attr_timeout = NF_ATTR_TIMEOUT;
	e.entry_timeout = NF_ATTR_TIMEOUT;
	nf_stat(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void nf_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != NF_IMAGE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nf_stat(ino, &st);
	fuse_reply_attr(req, &st, NF_ATTR_TIMEOUT);
}

/* Only a no-op truncate to the current size is accepted. */
static void nf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	if (ino == NF_IMAGE_INO && (to_set & FUSE_SET_ATTR_SIZE) &&
	    (uint64_t)attr->st_size != nf_size) {
		fuse_reply_err(req, EPERM);
		return;
	}
	nf_getattr(req, ino, fi);
}

static void nf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	static const struct {
		const char *name;
		fuse_ino_t ino;
	} ents[] = {
		{ ".", FUSE_ROOT_ID },
		{ "..", FUSE_ROOT_ID },
		{ NF_IMAGE_NAME, NF_IMAGE_INO },
	};
	char buf[512];
	size_t len = 0;
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (; off >= 0 && (size_t)off < sizeof(ents) / sizeof(ents[0]); off++) {
		size_t n;

		nf_stat(ents[off].ino, &st);
		n = fuse_add_direntry(req, buf + len, size - len, ents[off].name,
				      &st, off + 1);
		if (n > size - len)
			break;
		len += n;
	}
	fuse_reply_buf(req, buf, len);
}

/*
 * libfuse 3.14's fuse_file_info has no bit for FOPEN_PARALLEL_DIRECT_WRITES,
 * so the reply is built by hand, as fusezram does: fuse_reply_open() with
 * fi->direct_io = 1 sends the same struct without that bit.
 */
static void nf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_open_out out;

	(void)fi;
	if (ino != NF_IMAGE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	memset(&out, 0, sizeof(out));
	out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	fuse_reply_buf(req, (const char *)&out, sizeof(out));
}

static void nf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct iovec iov[64];
	int n = 0;

	(void)ino;
	(void)fi;
	if (off < 0 || (uint64_t)off >= nf_size)
		size = 0;
	else if (size > nf_size - (uint64_t)off)
		size = nf_size - (uint64_t)off;
	while (size > 0 && n < 64) {
		size_t chunk = size < NF_ZERO_SIZE ? size : NF_ZERO_SIZE;

		iov[n].iov_base = (void *)nf_zero;
		iov[n].iov_len = chunk;
		size -= chunk;
		n++;
	}
	fuse_reply_iov(req, iov, n);
}

static void nf_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)fi;
	if (off < 0 || (uint64_t)off >= nf_size) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	if (size > nf_size - (uint64_t)off)
		size = nf_size - (uint64_t)off;
	fuse_reply_write(req, size);
}

/* The rings' READ and WRITE of the image, in place (fz_ring_conf). */
static ssize_t nf_ring_read(void *arg, void *buf, size_t size, uint64_t off)
{
	(void)arg;
	if (off >= nf_size)
		return 0;
	if (size > nf_size - off)
		size = nf_size - off;
	memset(buf, 0, size);
	return (ssize_t)size;
}

static ssize_t nf_ring_write(void *arg, const void *buf, size_t size,
			     uint64_t off)
{
	(void)arg;
	(void)buf;
	if (off >= nf_size)
		return -ENOSPC;
	if (size > nf_size - off)
		size = nf_size - off;
	return (ssize_t)size;
}

static void nf_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)ino;
	(void)mode;
	(void)off;
	(void)len;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void nf_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void nf_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)datasync;
	nf_ok(req, ino, fi);
}

static const struct fuse_lowlevel_ops nf_ops = {
	.init		= nf_init,
	.lookup		= nf_lookup,
	.getattr	= nf_getattr,
	.setattr	= nf_setattr,
	.readdir	= nf_readdir,
	.open		= nf_open,
	.read		= nf_read,
	.write		= nf_write,
	.flush		= nf_ok,
	.release	= nf_ok,
	.fsync		= nf_fsync,
	.fallocate	= nf_fallocate,
};

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_cmdline_opts opts = { 0 };
	struct fuse_loop_config *config;
	struct fuse_session *se;
	struct nf_opts nopts = { .io_uring_depth = FZ_RING_DEPTH_DEFAULT };
	struct fz_ring_conf rc = {
		.ino = NF_IMAGE_INO,
		.read = nf_ring_read, .write = nf_ring_write,
	};
	struct fz_ring *ring = NULL;
	char line[384];
	int ret = 1, err;

	/* fusezram's worker count first, so that -o max_threads= wins. */
	if (fuse_opt_add_arg(&args, argv[0]) != 0 ||
	    fuse_opt_add_arg(&args, "-omax_threads=" NF_STR(NF_DEFAULT_THREADS)) != 0)
		goto out_args;
	for (int i = 1; i < argc; i++)
		if (fuse_opt_add_arg(&args, argv[i]) != 0)
			goto out_args;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	if (opts.show_help || opts.show_version || !opts.mountpoint) {
		printf("usage: %s [-f] [-s] -o size=SIZE[,io_uring=on|off][,io_uring_depth=N] MOUNTPOINT\n",
		       argv[0]);
		ret = !(opts.show_help || opts.show_version);
		goto out_args;
	}
	if (fuse_opt_parse(&args, &nopts, nf_opt_spec, NULL) != 0)
		goto out_args;
	if (!nopts.size || nf_parse_size(nopts.size, &nf_size) != 0) {
		fprintf(stderr, "nullfs: need -o size=SIZE (e.g. 1G)\n");
		goto out_args;
	}
	if (nopts.io_uring && strcmp(nopts.io_uring, "on") != 0 &&
	    strcmp(nopts.io_uring, "off") != 0) {
		fprintf(stderr, "nullfs: -o io_uring=%s: expected on or off\n",
			nopts.io_uring);
		goto out_args;
	}
	rc.enable = !nopts.io_uring || strcmp(nopts.io_uring, "on") == 0;
	rc.depth = nopts.io_uring_depth;
	err = fz_ring_create(&rc, &ring);
	if (err) {
		fprintf(stderr, "nullfs: the transport (-o io_uring_depth=%u, 1 to %d): %s\n",
			rc.depth, FZ_RING_DEPTH_MAX, strerror(-err));
		goto out_args;
	}

	se = fuse_session_new(&args, &nf_ops, sizeof(nf_ops), NULL);
	if (!se)
		goto out_args;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	if (fz_ring_attach(ring, se) != 0) {
		fprintf(stderr, "nullfs: cannot attach the transport to the session\n");
		goto out_unmount;
	}
	fuse_daemonize(opts.foreground);

	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		config = fuse_loop_cfg_create();
		if (!config)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(config, opts.clone_fd);
		fuse_loop_cfg_set_max_threads(config, opts.max_threads);
		ret = fuse_session_loop_mt(se, config);
		fuse_loop_cfg_destroy(config);
	}
	ret = ret != 0;

out_unmount:
	fuse_session_unmount(se);
	fz_ring_describe(ring, line, sizeof(line));
	fuse_log(FUSE_LOG_NOTICE, "nullfs: at exit, transport: %s\n", line);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out_args:
	/* After the unmount: the rings' requests ended with it. */
	fz_ring_destroy(ring);
	free(nopts.size);
	free(nopts.io_uring);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
