/*
 * fz_ring: FUSE over io_uring.  The contract is in fz_ring.h; this is the
 * design.
 *
 * Threads and locking:
 *	Each worker is a thread that alone owns its io_uring, its entry and
 *	its dispatch buffer: nothing of a worker is shared, so nothing of
 *	it is locked.
 *	r->go_lock (a mutex, a leaf) guards r->go, on which the queue
 *	threads wait (r->go_cond) between their creation and the INIT
 *	reply.
 *	r->st (the state, with the reason and error that go with it, in
 *	one atomic word so that a reader never pairs a state with another
 *	settle's reason) is moved out of NEW or STARTING once, by
 *	compare-and-swap, by whoever settles the transport (that one logs
 *	it); the counters are relaxed atomics, r->stopping and r->qdead
 *	sequentially consistent ones.
 *	r->init_unique and r->init_offered are written by the session
 *	thread that reads INIT and read by the one that writes its reply:
 *	the kernel sends nothing else before INIT is answered, and libfuse
 *	answers INIT on the thread that read it.  r->init_seen and
 *	r->init_done, which every reply tests, are atomics.
 *
 * Protocol (Linux 6.14, include/uapi/linux/fuse.h): the kernel offers
 * FUSE_OVER_IO_URING in INIT's flags when the fuse module's enable_uring
 * is on; a reply that sets it makes the kernel hold every request until
 * each queue (one per possible CPU) has an entry registered, or until a
 * registration fails (then /dev/fuse serves).  So the rings, their
 * buffers and threads are all made before the reply is written, and a
 * failure there leaves the flag out.  An entry is registered with
 * FUSE_IO_URING_CMD_REGISTER (an IORING_OP_URING_CMD on the /dev/fuse fd,
 * a fixed file; 128-byte SQEs carry struct fzr_cmd_req): an iovec of its
 * header buffer (fuse_in_header, then the operation's first argument,
 * then struct fzr_ent_in_out) and its payload buffer (the other
 * arguments, at least the largest request).  Its completion is a
 * request; the reply is written into the same buffers (fuse_out_header,
 * then every reply argument in the payload) and handed back with
 * FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also re-arms the entry.
 * A submission the kernel fails (no memory) is tried again: at the start
 * for a while, after which the thread gives up, and the last of its
 * queue to give up makes the kernel fall back to /dev/fuse with a
 * registration it refuses (the kernel would hold every request for
 * ever); once serving, for as long as it fails, since the entry may
 * hold a request.
 *
 * The kernel puts a request on the queue of the CPU that issued it, and
 * hands it to the first free entry registered to that queue, whichever
 * io_uring that entry's command came from.  A loop device issues a
 * large direct I/O's requests (16 reads of 64 KiB for 1 MiB) from one
 * CPU, and any request may take long (a SEEK_DATA scan of a large
 * image, control/writeback, a read of the backing file).  A thread that
 * serves one request while other entries of its own ring hold requests
 * makes those wait behind it: with one thread per queue, a 1 MiB read's
 * 16 requests were served one after another (sequential reads at 0.73x
 * of /dev/fuse's); with one worker per CPU sharing the queue's entries,
 * a reset waited behind a 2 s scan (t_busy) and an image read would
 * wait behind a writeback.  So each queue has depth workers, each a
 * thread with its own io_uring and one entry, not pinned: a worker that
 * has taken a request has no entry free, so the next request goes to an
 * idle worker, on any CPU, as /dev/fuse's requests go to idle libfuse
 * workers.  The price is a wake-up and a system call per request (one,
 * where /dev/fuse takes two); batching several entries per thread
 * halved the CPU per read but cannot keep a long request from holding
 * up others.
 *
 * TODO: entries shared by a thread per CPU, with requests other than
 * the image's READ and WRITE handed to a pool of threads that commit
 * through their worker (an eventfd), would keep the batching without
 * the head-of-line blocking, except behind slow image I/O.
 */
#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fz_ring.h"

/* The io_uring part of the FUSE protocol (7.42); Debian 12's UAPI header
 * (Linux 6.1) predates it, so it is spelled out here under our names. */
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)
#endif
#define FZR_CMD_REGISTER 1
#define FZR_CMD_COMMIT_AND_FETCH 2
#define FZR_HDR_SZ 128			/* fuse_in_header / fuse_out_header */
#define FZR_OP_SZ 128			/* the operation's first argument */
#define FZR_DEFAULT_MAX_PAGES 32	/* without FUSE_MAX_PAGES */
#define FZR_FIRST_TRIES 13		/* fzr_submit_first(): 0.77 s */

struct fzr_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;		/* the request's, for its commit */
	uint32_t payload_sz;		/* bytes in the payload buffer */
	uint32_t padding;
	uint64_t reserved;
};

struct fzr_req_header {
	char in_out[FZR_HDR_SZ];
	char op_in[FZR_OP_SZ];
	struct fzr_ent_in_out ent;
};

struct fzr_cmd_req {			/* in the SQE's 80-byte command area */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

enum fzr_state {
	FZR_NEW,		/* INIT not answered yet */
	FZR_FUSE,		/* /dev/fuse, for r->why */
	FZR_STARTING,		/* INIT answered with the flag; registering */
	FZR_RING,		/* every queue registered */
};

enum fzr_why {
	FZR_WHY_NONE,
	FZR_WHY_OFF,		/* -o io_uring=off */
	FZR_WHY_NOT_OFFERED,	/* INIT without FUSE_OVER_IO_URING */
	FZR_WHY_SETUP,		/* a ring, buffer or thread: r->err */
	FZR_WHY_REPLY,		/* writing the INIT reply failed */
	FZR_WHY_REGISTER,	/* the kernel refused a registration */
	FZR_WHY_SUBMIT,		/* a queue could not submit its own */
};

struct fz_ring;

struct fzr_ent {
	struct fzr_req_header *hdr;	/* page-aligned, a page */
	char *payload;			/* r->payload_sz bytes */
	struct iovec iov[2];		/* the two, for REGISTER */
	uint64_t commit_id;		/* of the request in it */
	uint64_t unique;		/* of the request being dispatched */
	uint32_t cmd;			/* the command last submitted */
	bool replied;			/* the dispatcher's reply was caught */
};

/* A thread, its io_uring and its entries, all registered to queue qid. */
struct fzr_worker {
	struct fz_ring *r;
	unsigned int qid;
	unsigned int idx;		/* among the queue's workers */
	unsigned int nent;		/* its entries */
	struct io_uring ring;
	bool ring_made;
	int evfd;			/* written to stop the thread */
	pthread_t tid;
	bool thread_made;
	struct fzr_ent *ents;		/* nent */
	char *msg;			/* a request made whole for libfuse */
	size_t msg_cap;
};

struct fz_ring {
	struct fz_ring_conf c;
	struct fuse_session *se;
	int fd;				/* /dev/fuse: our own duplicate */
	unsigned int nq;		/* queues: possible CPUs */
	unsigned int per;		/* workers per queue: c.depth */
	unsigned int nw;		/* workers: nq * per */
	size_t payload_sz;		/* each entry's payload buffer */
	struct fzr_worker *ws;		/* nw, made at INIT */

	uint64_t init_unique;		/* see Locking */
	bool init_offered;
	/* Tested by every reply's writev, on any thread: atomics. */
	atomic_bool init_seen, init_done;

	pthread_mutex_t go_lock;
	pthread_cond_t go_cond;
	int go;				/* [go_lock] 0 wait, 1 register, -1 quit */

	/* enum fzr_state, enum fzr_why and an errno (for SETUP, REPLY,
	 * REGISTER, SUBMIT): see fzr_st(). */
	_Atomic uint64_t st;
	_Atomic unsigned int registered;	/* workers registered */
	_Atomic unsigned int resolved;	/* ... or given up */
	_Atomic unsigned int *qdead;	/* nq: workers given up, per queue */
	atomic_bool stopping;		/* fzr_teardown() has begun */
	atomic_bool retry_warned;	/* a failed enter was logged */
	_Atomic uint64_t served;	/* requests answered on the rings */
	_Atomic uint64_t in_place;	/* of which READ/WRITE of c.ino */
	_Atomic uint64_t lost;		/* commits the kernel refused */
	atomic_bool lost_warned;	/* a reply not caught was logged */
};

/* The session's custom I/O callbacks get the session's user data, not
 * ours: one transport per process, found here. */
static struct fz_ring *fzr_the;
/* On a queue thread, while libfuse dispatches a request of this entry. */
static __thread struct fzr_ent *fzr_cur;

/* ---- state --------------------------------------------------------------- */

/* One word of r->st: @state in bits 0-7, @why in 8-15, @err from 32. */
static uint64_t fzr_st(int state, int why, int err)
{
	return (uint64_t)state | (uint64_t)why << 8 |
	       (uint64_t)(uint32_t)err << 32;
}

static int fzr_st_state(uint64_t st) { return (int)(st & 0xff); }
static int fzr_st_why(uint64_t st) { return (int)(st >> 8 & 0xff); }
static int fzr_st_err(uint64_t st) { return (int)(uint32_t)(st >> 32); }

static const char *fzr_why_text(int why)
{
	switch (why) {
	case FZR_WHY_OFF:
		return "-o io_uring=off";
	case FZR_WHY_NOT_OFFERED:
		return "the kernel does not offer FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING, and /sys/module/fuse/parameters/enable_uring on)";
	case FZR_WHY_SETUP:
		return "the rings could not be set up";
	case FZR_WHY_REPLY:
		return "the INIT reply failed";
	case FZR_WHY_REGISTER:
		return "the kernel refused a ring registration";
	case FZR_WHY_SUBMIT:
		return "a queue's registrations could not be submitted";
	default:
		return "not negotiated yet";
	}
}

void fz_ring_describe(struct fz_ring *r, char *buf, size_t len)
{
	uint64_t st = atomic_load(&r->st);
	int why = fzr_st_why(st), err = fzr_st_err(st);
	unsigned int threads = r->nw - atomic_load(&r->resolved) +
			       atomic_load(&r->registered);

	switch (fzr_st_state(st)) {
	case FZR_RING:
		snprintf(buf, len, "io_uring, %u queue(s) of depth %u (%u threads); %llu requests on the rings, %llu image reads and writes in place, %llu replies refused",
			 r->nq, r->c.depth, threads,
			 (unsigned long long)atomic_load_explicit(
				 &r->served, memory_order_relaxed),
			 (unsigned long long)atomic_load_explicit(
				 &r->in_place, memory_order_relaxed),
			 (unsigned long long)atomic_load_explicit(
				 &r->lost, memory_order_relaxed));
		break;
	case FZR_STARTING:
		snprintf(buf, len, "io_uring, registering (%u of %u threads)",
			 atomic_load(&r->registered), r->nw);
		break;
	default:
		snprintf(buf, len, "/dev/fuse (%s%s%s)", fzr_why_text(why),
			 err ? ": " : "", err ? strerror(err) : "");
		break;
	}
}

bool fz_ring_active(struct fz_ring *r)
{
	return fzr_st_state(atomic_load(&r->st)) == FZR_RING;
}

/*
 * fzr_settle - move the transport from @from to @to (for @why, @err), and
 * log the outcome; nothing if another thread settled it first.
 */
static void fzr_settle(struct fz_ring *r, int from, int to, int why, int err)
{
	uint64_t cur = atomic_load(&r->st);
	char line[384];

	do {
		if (fzr_st_state(cur) != from)
			return;
	} while (!atomic_compare_exchange_weak(&r->st, &cur,
					       fzr_st(to, why, err)));
	if (to == FZR_RING)
		snprintf(line, sizeof(line), "io_uring, %u queue(s) of depth %u (%u threads)",
			 r->nq, r->c.depth, atomic_load(&r->registered));
	else
		fz_ring_describe(r, line, sizeof(line));
	fuse_log(to == FZR_FUSE && why != FZR_WHY_OFF &&
		 why != FZR_WHY_NOT_OFFERED ? FUSE_LOG_WARNING : FUSE_LOG_NOTICE,
		 "transport: %s\n", line);
}

/* ---- submissions --------------------------------------------------------- */

/* Zero a 128-byte SQE (liburing's type is its first half). */
static void fzr_sqe_clear(struct io_uring_sqe *sqe)
{
	memset(sqe, 0, 2 * sizeof(*sqe));
}

/*
 * fzr_get_sqe - a free SQE of @q.  The SQ has depth + 1 slots: an entry
 * has at most one command queued, and the eventfd poll is the one more;
 * should it be full all the same, what it holds is submitted first.
 */
static struct io_uring_sqe *fzr_get_sqe(struct fzr_worker *q)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&q->ring)))
		io_uring_submit(&q->ring);
	fzr_sqe_clear(sqe);
	return sqe;
}

/* Queue @cmd for entry @e (submitted by the thread's next enter). */
static void fzr_prep(struct fzr_worker *q, struct fzr_ent *e, uint32_t cmd)
{
	struct io_uring_sqe *sqe = fzr_get_sqe(q);
	struct fzr_cmd_req *req;

	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->fd = 0;				/* the /dev/fuse fd, fixed */
	sqe->cmd_op = cmd;
	io_uring_sqe_set_data(sqe, e);
	if (cmd == FZR_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
	}
	req = (struct fzr_cmd_req *)(void *)sqe->cmd;
	req->qid = (uint16_t)q->qid;
	req->commit_id = cmd == FZR_CMD_COMMIT_AND_FETCH ? e->commit_id : 0;
	e->cmd = cmd;
}

/* ---- serving -------------------------------------------------------------- */

/* The reply of entry @e: @err (0 or -errno) and @plen payload bytes. */
static void fzr_reply(struct fzr_ent *e, uint64_t unique, int err,
		      size_t plen)
{
	struct fuse_out_header *out = (struct fuse_out_header *)e->hdr->in_out;

	out->unique = unique;
	out->error = err;
	out->len = (uint32_t)(sizeof(*out) + plen);
	e->hdr->ent.payload_sz = (uint32_t)plen;
}

/*
 * fzr_capture - the session's writev on a queue thread, for the request
 * being dispatched: copy the reply into the entry.  Returns what writev
 * would, or -1 with errno EINVAL for a reply larger than the payload
 * buffer (the request then fails with EIO).
 */
static ssize_t fzr_capture(struct fz_ring *r, struct fzr_ent *e,
			   const struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	size_t plen = 0, off = 0;
	int i;

	for (i = 1; i < count; i++)
		plen += iov[i].iov_len;
	e->replied = true;
	if (plen > r->payload_sz) {
		fzr_reply(e, e->unique, -EIO, 0);
		errno = EINVAL;
		return -1;
	}
	for (i = 1; i < count; i++) {
		memcpy(e->payload + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	fzr_reply(e, oh->unique, oh->error, plen);
	return (ssize_t)(sizeof(*oh) + plen);
}

/*
 * fzr_dispatch - serve a request of entry @e through libfuse's
 * dispatcher: made whole (header, first argument, payload) in the
 * queue's buffer, its reply caught by fzr_capture().
 */
static void fzr_dispatch(struct fzr_worker *q, struct fzr_ent *e,
			 const struct fuse_in_header *in, size_t argsz,
			 size_t psz)
{
	struct fuse_buf fb = { .size = in->len, .mem = q->msg };

	memcpy(q->msg, in, sizeof(*in));
	memcpy(q->msg + sizeof(*in), e->hdr->op_in, argsz);
	memcpy(q->msg + sizeof(*in) + argsz, e->payload, psz);
	e->unique = in->unique;
	e->replied = false;
	fzr_cur = e;
	fuse_session_process_buf(q->r->se, &fb);
	fzr_cur = NULL;
	if (!e->replied) {
		/* Our handlers all reply before they return; a request that
		 * did not must not keep its entry forever. */
		if (!atomic_exchange(&q->r->lost_warned, true))
			fuse_log(FUSE_LOG_ERR, "io_uring: opcode %u got no reply from its handler: EIO\n",
				 in->opcode);
		fzr_reply(e, e->unique, -EIO, 0);
	}
}

/* fzr_serve - answer the request that entry @e completed with. */
static void fzr_serve(struct fzr_worker *q, struct fzr_ent *e)
{
	struct fz_ring *r = q->r;
	const struct fuse_in_header *in =
		(const struct fuse_in_header *)e->hdr->in_out;
	size_t psz = e->hdr->ent.payload_sz, argsz, plen = 0;
	uint64_t unique = in->unique;
	ssize_t n = 0;

	e->commit_id = e->hdr->ent.commit_id;
	/* A request on a ring: the kernel found every queue registered. */
	if (fzr_st_state(atomic_load_explicit(&r->st, memory_order_relaxed)) ==
	    FZR_STARTING)
		fzr_settle(r, FZR_STARTING, FZR_RING, FZR_WHY_NONE, 0);
	if (in->len < sizeof(*in) + psz || psz > r->payload_sz ||
	    in->len - sizeof(*in) - psz > FZR_OP_SZ) {
		fzr_reply(e, unique, -EIO, 0);		/* malformed */
		goto commit;
	}
	argsz = in->len - sizeof(*in) - psz;
	if (in->nodeid == r->c.ino && in->opcode == FUSE_READ &&
	    argsz >= sizeof(struct fuse_read_in)) {
		const struct fuse_read_in *ri =
			(const struct fuse_read_in *)(void *)e->hdr->op_in;

		n = ri->size > r->payload_sz ? -EINVAL :
		    r->c.read(r->c.arg, e->payload, ri->size, ri->offset);
		plen = n > 0 ? (size_t)n : 0;
		atomic_fetch_add_explicit(&r->in_place, 1, memory_order_relaxed);
	} else if (in->nodeid == r->c.ino && in->opcode == FUSE_WRITE &&
		   argsz >= sizeof(struct fuse_write_in)) {
		const struct fuse_write_in *wi =
			(const struct fuse_write_in *)(void *)e->hdr->op_in;
		struct fuse_write_out wo = { 0 };

		n = wi->size != psz ? -EINVAL :
		    r->c.write(r->c.arg, e->payload, wi->size, wi->offset);
		if (n >= 0) {
			wo.size = (uint32_t)n;
			memcpy(e->payload, &wo, sizeof(wo));
			plen = sizeof(wo);
		}
		atomic_fetch_add_explicit(&r->in_place, 1, memory_order_relaxed);
	} else {
		fzr_dispatch(q, e, in, argsz, psz);
		goto commit;
	}
	fzr_reply(e, unique, n < 0 ? (int)n : 0, plen);
commit:
	atomic_fetch_add_explicit(&r->served, 1, memory_order_relaxed);
	fzr_prep(q, e, FZR_CMD_COMMIT_AND_FETCH);
}

/*
 * fzr_completions - handle every completion ready on @q; *@live counts
 * the entries still armed.  A registration refused ends the transport
 * (the kernel then serves /dev/fuse).  Returns *@live, or -1 once the
 * stop eventfd fired.
 */
static int fzr_completions(struct fzr_worker *q, int *live)
{
	struct io_uring_cqe *cqe;
	struct fzr_ent *e;
	unsigned int head, seen = 0;
	bool stop = false;

	io_uring_for_each_cqe(&q->ring, head, cqe) {
		seen++;
		e = io_uring_cqe_get_data(cqe);
		if (!e) {
			stop = true;		/* the eventfd */
			continue;
		}
		if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
			fzr_prep(q, e, e->cmd);	/* again */
			continue;
		}
		if (cqe->res < 0 && cqe->res != -ENOTCONN &&
		    e->cmd == FZR_CMD_COMMIT_AND_FETCH) {
			/* The kernel no longer knew the request (it ended
			 * without us): the entry is out of its queue, so it
			 * goes in again as a new one. */
			atomic_fetch_add_explicit(&q->r->lost, 1,
						  memory_order_relaxed);
			fzr_prep(q, e, FZR_CMD_REGISTER);
			continue;
		}
		if (cqe->res < 0) {
			/* -ENOTCONN: unmounted; a registration refused. */
			(*live)--;
			if (cqe->res != -ENOTCONN)
				fzr_settle(q->r, FZR_STARTING, FZR_FUSE,
					   FZR_WHY_REGISTER, -cqe->res);
			continue;
		}
		fzr_serve(q, e);
	}
	io_uring_cq_advance(&q->ring, seen);
	return stop ? -1 : *live;
}

/*
 * fzr_backoff - the pause after the @n-th failure in a row (from 1): 1 ms,
 * doubling to 128 ms.  False, at once, while the transport stops.
 */
static bool fzr_backoff(struct fz_ring *r, unsigned int n)
{
	struct timespec ts = { 0, 1000000L << (n < 8 ? n - 1 : 7) };

	if (atomic_load(&r->stopping))
		return false;
	nanosleep(&ts, NULL);
	return !atomic_load(&r->stopping);
}

/*
 * fzr_refuse_once - send the kernel a registration it refuses (a queue
 * past the last), from an io_uring made for it.  A refused registration
 * makes the kernel give the rings up for this connection and hand every
 * request, the ones it holds too, to /dev/fuse (fuse_uring_cmd(), Linux
 * 6.14 and later).  0 once refused (or the connection gone), else -errno
 * (it may be tried again).
 */
static int fzr_refuse_once(struct fz_ring *r)
{
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct fzr_cmd_req *req;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128;
	ret = io_uring_queue_init_params(1, &ring, &p);
	if (ret < 0)
		return ret;
	sqe = io_uring_get_sqe(&ring);
	if (!sqe) {			/* a fresh ring has a free SQE */
		io_uring_queue_exit(&ring);
		return -EAGAIN;
	}
	fzr_sqe_clear(sqe);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = r->fd;
	sqe->cmd_op = FZR_CMD_REGISTER;
	req = (struct fzr_cmd_req *)(void *)sqe->cmd;
	req->qid = (uint16_t)r->nq;		/* nq <= UINT16_MAX: fzr_setup() */
	ret = io_uring_submit_and_wait(&ring, 1);
	if (ret >= 0)
		ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret >= 0) {
		ret = cqe->res;
		if (ret == -EINVAL || ret == -ENOTCONN || ret == -ECONNABORTED)
			ret = 0;
		else if (ret >= 0)
			ret = -EPROTO;		/* taken: not a kernel we know */
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_queue_exit(&ring);
	return ret;
}

/*
 * fzr_resolve - a worker has registered its entries (@registered) or
 * never will; the last of all settles the rings, unless a queue that has
 * none made the kernel fall back first (fzr_give_up()).
 */
static void fzr_resolve(struct fz_ring *r, bool registered)
{
	if (registered)
		atomic_fetch_add(&r->registered, 1);
	if (atomic_fetch_add(&r->resolved, 1) + 1 == r->nw)
		fzr_settle(r, FZR_STARTING, FZR_RING, FZR_WHY_NONE, 0);
}

/*
 * fzr_give_up - worker @q could not submit its registration (-@err).
 * Its queue's other workers may cover it; if it was the last, the kernel
 * holds every request for ever, so it is made to fall back to /dev/fuse
 * (fzr_refuse_once(), tried until it works or the transport stops: the
 * connection is ending then).  Either way the rings never ran, so the
 * transport settles on /dev/fuse before this worker counts as resolved
 * (else the last to resolve would settle it on the rings, with a queue
 * that has no entry).
 */
static void fzr_give_up(struct fzr_worker *q, int err)
{
	struct fz_ring *r = q->r;
	unsigned int n;
	int ret;

	fuse_log(FUSE_LOG_ERR, "io_uring: thread fz-ring-%u.%u could not submit its registration: %s\n",
		 q->qid, q->idx, strerror(err));
	if (atomic_fetch_add(&r->qdead[q->qid], 1) + 1 == r->per) {
		for (n = 1; !atomic_load(&r->stopping) &&
			    (ret = fzr_refuse_once(r)) != 0; n++) {
			if (n == 1)
				fuse_log(FUSE_LOG_ERR, "io_uring: queue %u has no entry, so the kernel holds every request; making it fall back to /dev/fuse failed: %s; trying again\n",
					 q->qid, strerror(-ret));
			if (!fzr_backoff(r, n))
				break;
		}
		fzr_settle(r, FZR_STARTING, FZR_FUSE, FZR_WHY_SUBMIT, err);
	}
	fzr_resolve(r, false);
}

/*
 * fzr_submit_first - submit @q's registrations and its eventfd poll.  A
 * failure (no memory for the submission) is tried again for about 0.8 s
 * in all: the kernel holds every request until each queue has an entry.
 * 0, or the last -errno.
 */
static int fzr_submit_first(struct fzr_worker *q)
{
	unsigned int n;
	int ret;

	for (n = 1;; n++) {
		ret = io_uring_submit(&q->ring);
		if (ret >= 0)
			return 0;
		if (n == FZR_FIRST_TRIES || !fzr_backoff(q->r, n))
			return ret;
	}
}

static void *fzr_thread(void *arg)
{
	struct fzr_worker *q = arg;
	struct fz_ring *r = q->r;
	struct io_uring_sqe *sqe;
	char name[16];
	unsigned int i, fails;
	int go, live = (int)q->nent, ret;

	snprintf(name, sizeof(name), "fz-ring-%u.%u", q->qid, q->idx);
	pthread_setname_np(pthread_self(), name);

	pthread_mutex_lock(&r->go_lock);
	while (!r->go)
		pthread_cond_wait(&r->go_cond, &r->go_lock);
	go = r->go;
	pthread_mutex_unlock(&r->go_lock);
	if (go < 0)
		return NULL;

	for (i = 0; i < q->nent; i++)
		fzr_prep(q, &q->ents[i], FZR_CMD_REGISTER);
	sqe = fzr_get_sqe(q);
	io_uring_prep_poll_add(sqe, q->evfd, POLLIN);
	io_uring_sqe_set_data(sqe, NULL);
	ret = fzr_submit_first(q);
	if (ret < 0) {
		fzr_give_up(q, -ret);
		return NULL;
	}
	/* A refused registration completes during the submission. */
	if (fzr_completions(q, &live) < 0)
		return NULL;
	fzr_resolve(r, live == (int)q->nent);

	for (fails = 0; live > 0;) {
		ret = io_uring_submit_and_wait(&q->ring, 1);
		if (ret < 0 && ret != -EINTR) {
			/* No memory for the submission, or completions to
			 * reap first (-EBUSY).  A thread that left would
			 * strand the request its entry holds, and the
			 * queue's share of the entries: it tries again. */
			if (!atomic_exchange(&r->retry_warned, true))
				fuse_log(FUSE_LOG_WARNING, "io_uring: queue %u: %s; trying again (logged once)\n",
					 q->qid, strerror(-ret));
			if (fzr_completions(q, &live) < 0 ||
			    !fzr_backoff(r, ++fails))
				break;
			continue;
		}
		fails = 0;
		if (fzr_completions(q, &live) < 0)
			break;
	}
	return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

/* Possible CPUs, from /sys (the kernel makes one queue for each). */
static unsigned int fzr_possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned int a, b, n = 0;
	int c;

	if (!f)
		return 0;
	while (fscanf(f, "%u", &a) == 1) {
		b = a;
		c = fgetc(f);
		if (c == '-') {
			if (fscanf(f, "%u", &b) != 1)
				break;
			c = fgetc(f);
		}
		n += b >= a ? b - a + 1 : 0;
		if (c != ',')
			break;
	}
	fclose(f);
	return n;
}

/* Free what fzr_setup() made of worker @q; its thread is gone. */
static void fzr_worker_free(struct fzr_worker *q)
{
	unsigned int i;

	if (q->ring_made)
		io_uring_queue_exit(&q->ring);
	if (q->evfd >= 0)
		close(q->evfd);
	for (i = 0; q->ents && i < q->nent; i++) {
		free(q->ents[i].hdr);
		free(q->ents[i].payload);
	}
	free(q->ents);
	free(q->msg);
}

/* Free the worker and queue tables and our /dev/fuse descriptor. */
static void fzr_free_tables(struct fz_ring *r)
{
	free(r->ws);
	r->ws = NULL;
	free(r->qdead);
	r->qdead = NULL;
	close(r->fd);
	r->fd = -1;
}

/* Stop and join every queue thread (after @go = -1 or the eventfds),
 * then free the queues. */
static void fzr_teardown(struct fz_ring *r)
{
	unsigned int i;

	if (!r->ws)
		return;
	atomic_store(&r->stopping, true);
	pthread_mutex_lock(&r->go_lock);
	if (r->go == 0)
		r->go = -1;
	pthread_cond_broadcast(&r->go_cond);
	pthread_mutex_unlock(&r->go_lock);
	for (i = 0; i < r->nw; i++) {
		struct fzr_worker *q = &r->ws[i];

		if (!q->thread_made)
			continue;
		if (q->evfd >= 0)
			(void)eventfd_write(q->evfd, 1);
		pthread_join(q->tid, NULL);
	}
	for (i = 0; i < r->nw; i++)
		fzr_worker_free(&r->ws[i]);
	fzr_free_tables(r);
}

/* Buffers of one entry, touched so that mlockall(MCL_ONFAULT) keeps them. */
static int fzr_ent_make(struct fz_ring *r, struct fzr_ent *e)
{
	long page = sysconf(_SC_PAGESIZE);

	e->hdr = aligned_alloc((size_t)page, (size_t)page);
	e->payload = aligned_alloc((size_t)page, r->payload_sz);
	if (!e->hdr || !e->payload)
		return -ENOMEM;
	memset(e->hdr, 0, (size_t)page);
	memset(e->payload, 0, r->payload_sz);
	e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
	e->iov[1] = (struct iovec){ e->payload, r->payload_sz };
	return 0;
}

/* Worker @q: its ring (the /dev/fuse @fd fixed), eventfd and entries. */
static int fzr_worker_make(struct fz_ring *r, struct fzr_worker *q, int fd)
{
	struct io_uring_params p;
	unsigned int i;
	int ret;

	q->evfd = eventfd(0, EFD_CLOEXEC);
	if (q->evfd < 0)
		return -errno;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * (q->nent + 1);
	ret = io_uring_queue_init_params(q->nent + 1, &q->ring, &p);
	if (ret < 0)
		return ret;
	q->ring_made = true;
	ret = io_uring_register_files(&q->ring, &fd, 1);
	if (ret < 0)
		return ret;
	q->msg_cap = sizeof(struct fuse_in_header) + FZR_OP_SZ + r->payload_sz;
	q->msg = malloc(q->msg_cap);
	q->ents = calloc(q->nent, sizeof(*q->ents));
	if (!q->msg || !q->ents)
		return -ENOMEM;
	memset(q->msg, 0, q->msg_cap);
	for (i = 0; i < q->nent; i++) {
		ret = fzr_ent_make(r, &q->ents[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * fzr_setup - every queue's workers with their rings, buffers and
 * threads (waiting for r->go), for requests of up to @payload bytes.
 * 0 or -errno (all undone).
 */
static int fzr_setup(struct fz_ring *r, int fd, size_t payload)
{
	sigset_t all, saved;
	unsigned int i, per;
	int ret = 0;

	r->nq = fzr_possible_cpus();
	if (!r->nq || r->nq > UINT16_MAX)
		return -ENODEV;
	/* One worker per entry: see the design. */
	per = r->c.depth;
	/* Ours, for fzr_refuse_once(): the session closes its own at the
	 * unmount, before the threads are stopped. */
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (r->fd < 0)
		return -errno;
	r->per = per;
	r->nw = r->nq * per;
	r->payload_sz = payload;
	r->qdead = calloc(r->nq, sizeof(*r->qdead));
	r->ws = calloc(r->nw, sizeof(*r->ws));
	if (!r->ws || !r->qdead) {
		fzr_free_tables(r);
		return -ENOMEM;
	}
	for (i = 0; i < r->nw; i++) {
		r->ws[i].r = r;
		r->ws[i].qid = i % r->nq;
		r->ws[i].idx = i / r->nq;
		r->ws[i].nent = r->c.depth / per +
				(r->ws[i].idx < r->c.depth % per);
		r->ws[i].evfd = -1;
	}
	for (i = 0; i < r->nw && !ret; i++)
		ret = fzr_worker_make(r, &r->ws[i], fd);
	/* Signals stay with the threads that take them (see fusezram.c). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	for (i = 0; i < r->nw && !ret; i++) {
		ret = -pthread_create(&r->ws[i].tid, NULL, fzr_thread,
				      &r->ws[i]);
		r->ws[i].thread_made = !ret;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (ret)
		fzr_teardown(r);
	return ret;
}

/* ---- the session's I/O ---------------------------------------------------- */

/* read(2) of /dev/fuse, noting what INIT offers. */
static ssize_t fzr_io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fz_ring *r = fzr_the;
	const struct fuse_in_header *in = buf;
	const struct fuse_init_in *ii = (const void *)(in + 1);
	ssize_t n = read(fd, buf, len);
	uint64_t flags;

	(void)userdata;
	if (n < (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags) +
			  sizeof(ii->flags)) ||
	    in->opcode != FUSE_INIT || atomic_load(&r->init_seen))
		return n;
	flags = ii->flags;
	if ((flags & FUSE_INIT_EXT) &&
	    n >= (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags2) +
			   sizeof(ii->flags2)))
		flags |= (uint64_t)ii->flags2 << 32;
	r->init_unique = in->unique;
	r->init_offered = (flags & FUSE_OVER_IO_URING) != 0;
	atomic_store(&r->init_seen, true);
	return n;
}

/*
 * fzr_init_reply - write libfuse's INIT reply (@iov, @count), with
 * FUSE_OVER_IO_URING added when the rings are wanted, offered and made;
 * then let the rings register.
 */
static ssize_t fzr_init_reply(struct fz_ring *r, int fd, struct iovec *iov,
			      int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct fuse_init_out io;
	struct iovec v[2];
	size_t pages, payload, page = (size_t)sysconf(_SC_PAGESIZE);
	ssize_t n;
	int ret, saved;

	atomic_store(&r->init_done, true);
	if (count != 2 || oh->error ||
	    iov[1].iov_len < offsetof(struct fuse_init_out, flags2) +
			     sizeof(io.flags2) ||
	    iov[1].iov_len > sizeof(io))
		return writev(fd, iov, count);	/* not one we can extend */
	if (!r->c.enable || !r->init_offered) {
		fzr_settle(r, FZR_NEW, FZR_FUSE, r->c.enable ?
			   FZR_WHY_NOT_OFFERED : FZR_WHY_OFF, 0);
		return writev(fd, iov, count);
	}
	memset(&io, 0, sizeof(io));
	memcpy(&io, iov[1].iov_base, iov[1].iov_len);
	/* The kernel wants room for its largest request. */
	pages = (io.flags & FUSE_MAX_PAGES) && io.max_pages ? io.max_pages :
		FZR_DEFAULT_MAX_PAGES;
	payload = pages * page;
	if (payload < io.max_write)
		payload = io.max_write;
	if (payload < FUSE_MIN_READ_BUFFER)
		payload = FUSE_MIN_READ_BUFFER;
	payload = (payload + page - 1) & ~(page - 1);
	ret = fzr_setup(r, fd, payload);
	if (ret) {
		fzr_settle(r, FZR_NEW, FZR_FUSE, FZR_WHY_SETUP, -ret);
		return writev(fd, iov, count);
	}
	io.flags |= FUSE_INIT_EXT;
	io.flags2 |= (uint32_t)(FUSE_OVER_IO_URING >> 32);
	v[0] = iov[0];
	v[1] = (struct iovec){ &io, iov[1].iov_len };
	atomic_store(&r->st, fzr_st(FZR_STARTING, FZR_WHY_NONE, 0));
	n = writev(fd, v, 2);
	if (n < 0) {
		saved = errno;
		fzr_teardown(r);
		fzr_settle(r, FZR_STARTING, FZR_FUSE, FZR_WHY_REPLY, saved);
		errno = saved;
		return n;
	}
	pthread_mutex_lock(&r->go_lock);
	r->go = 1;
	pthread_cond_broadcast(&r->go_cond);
	pthread_mutex_unlock(&r->go_lock);
	return n;
}

/* writev(2) of /dev/fuse, or into the ring entry being dispatched. */
static ssize_t fzr_io_writev(int fd, struct iovec *iov, int count,
			     void *userdata)
{
	struct fz_ring *r = fzr_the;
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct fzr_ent *e = fzr_cur;

	(void)userdata;
	if (e && oh->unique == e->unique)
		return fzr_capture(r, e, iov, count);
	if (atomic_load_explicit(&r->init_seen, memory_order_relaxed) &&
	    !atomic_load_explicit(&r->init_done, memory_order_relaxed) &&
	    oh->unique == r->init_unique)
		return fzr_init_reply(r, fd, iov, count);
	return writev(fd, iov, count);
}

/* ---- the interface -------------------------------------------------------- */

int fz_ring_create(const struct fz_ring_conf *conf, struct fz_ring **out)
{
	struct fz_ring *r;

	if (conf->depth < 1 || conf->depth > FZ_RING_DEPTH_MAX ||
	    !conf->read || !conf->write || fzr_the)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->c = *conf;
	r->fd = -1;
	pthread_mutex_init(&r->go_lock, NULL);
	pthread_cond_init(&r->go_cond, NULL);
	atomic_init(&r->st, fzr_st(FZR_NEW, FZR_WHY_NONE, 0));
	fzr_the = r;
	*out = r;
	return 0;
}

int fz_ring_attach(struct fz_ring *r, struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = fzr_io_read,
		.writev = fzr_io_writev,
	};

	r->se = se;
	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) ? -EIO : 0;
}

void fz_ring_destroy(struct fz_ring *r)
{
	if (!r)
		return;
	fzr_teardown(r);
	pthread_cond_destroy(&r->go_cond);
	pthread_mutex_destroy(&r->go_lock);
	if (fzr_the == r)
		fzr_the = NULL;
	free(r);
}
