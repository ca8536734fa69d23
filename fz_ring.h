/*
 * fz_ring - FUSE over io_uring for a libfuse 3.14 session: the kernel
 * hands requests to per-CPU rings of buffers we registered, and takes
 * the replies from them, instead of read(2) and writev(2) on /dev/fuse.
 *
 * libfuse 3.14 knows nothing of it: it still mounts, parses options and
 * answers INIT.  fz_ring_attach() puts its own read and writev under the
 * session (fuse_session_custom_io()): read notes what the kernel offers
 * in INIT, writev adds FUSE_OVER_IO_URING to libfuse's INIT reply when
 * the rings could be made, and starts them once the reply is written.
 * On a ring, READ and WRITE of one inode (the image) are served straight
 * from and into the ring's payload buffer by the caller's callbacks;
 * every other request goes through libfuse's dispatcher, its reply caught
 * by the same writev.  FORGET and INTERRUPT still come through /dev/fuse,
 * so the session loop keeps running beside the rings.
 *
 * Whenever the rings cannot run (-o io_uring=off, a kernel that does not
 * offer it, a ring that cannot be made or registered) the session serves
 * /dev/fuse as it would have without us, and the reason is logged once
 * (fuse_log) and shown by fz_ring_describe().
 */
#ifndef FUSEZRAM_FZ_RING_H
#define FUSEZRAM_FZ_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fuse_session;
struct fz_ring;

#define FZ_RING_DEPTH_DEFAULT 8		/* entries per queue */
#define FZ_RING_DEPTH_MAX 128

struct fz_ring_conf {
	bool enable;			/* -o io_uring: use it if offered */
	unsigned int depth;		/* entries per queue, 1..MAX */
	uint64_t ino;			/* the inode served by read/write */
	void *arg;			/* passed to the callbacks */
	/*
	 * READ of @ino: at most @size bytes at @off into @buf (the ring's
	 * payload buffer).  Bytes read, or -errno.  Called on ring threads,
	 * concurrently.
	 */
	ssize_t (*read)(void *arg, void *buf, size_t size, uint64_t off);
	/* WRITE of @ino: bytes written, or -errno. */
	ssize_t (*write)(void *arg, const void *buf, size_t size,
			 uint64_t off);
};

/*
 * fz_ring_create - a transport for one session, not yet attached; the
 * description says so.  Returns 0 and sets *@out, -EINVAL for a depth
 * out of range, -ENOMEM.  At most one per process (the session's custom
 * I/O callbacks find it through a static pointer).
 */
int fz_ring_create(const struct fz_ring_conf *conf, struct fz_ring **out);

/*
 * fz_ring_attach - route @se's /dev/fuse I/O through the transport.
 * After fuse_session_mount(), before the session loop.  Returns 0, or
 * -EIO if libfuse refused the custom I/O (the session is unchanged).
 */
int fz_ring_attach(struct fz_ring *r, struct fuse_session *se);

/*
 * fz_ring_destroy - stop the ring threads (after the session loop has
 * returned and the file system is unmounted: requests in flight end
 * with the connection) and free everything.  Accepts NULL.
 */
void fz_ring_destroy(struct fz_ring *r);

/*
 * fz_ring_describe - one line for a status report: which transport runs
 * and why, and, on rings, how many requests they served.  Any thread,
 * any time.  @buf gets a NUL-terminated string, cut to @len.
 */
void fz_ring_describe(struct fz_ring *r, char *buf, size_t len);

/* fz_ring_active - true while requests come through the rings. */
bool fz_ring_active(struct fz_ring *r);

#endif /* FUSEZRAM_FZ_RING_H */
