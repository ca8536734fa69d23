/*
 * uring_shim - an LD_PRELOAD library that makes liburing's submissions
 * fail as io_uring_enter(2) does when the kernel is short of memory for
 * them: the call returns the error and nothing reaches the kernel (what
 * was queued stays queued for the next call).
 *
 *	LD_PRELOAD=build/uring_shim.so FZ_URING_SHIM_SUBMIT=N
 *	    FZ_URING_SHIM_WAIT_EVERY=M FZ_URING_SHIM_ERRNO=E
 *	    FZ_URING_SHIM_LOG=FILE prog...
 *
 * FZ_URING_SHIM_SUBMIT: the first N calls of io_uring_submit() fail.
 * FZ_URING_SHIM_WAIT_EVERY: every M-th call of io_uring_submit_and_wait()
 * fails.  FZ_URING_SHIM_ERRNO: the error, a number (default 11, EAGAIN).
 * Unset or 0: that function is left alone.
 *
 * So that a test can tell that the shim was in the way, the first refusal
 * of each function and every 64th after it append a line "submit N" or
 * "wait N" (N: that function's refusals so far) to FZ_URING_SHIM_LOG when
 * it is set.  Thread-safe; never allocates.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic unsigned long shim_submits, shim_waits;
static _Atomic unsigned long shim_submit_refused, shim_wait_refused;

/* The environment variable @name as a number; 0 if unset or bad. */
static unsigned long shim_env(const char *name)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return 0;
	n = strtoul(v, &end, 10);
	return *end ? 0 : n;
}

/* Append "@what @n" to $FZ_URING_SHIM_LOG; errno is left as it was. */
static void shim_log(const char *what, unsigned long n)
{
	const char *path = getenv("FZ_URING_SHIM_LOG");
	int saved = errno, fd, len;
	char line[48];

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		len = snprintf(line, sizeof(line), "%s %lu\n", what, n);
		if (write(fd, line, (size_t)len) < 0) {
			/* A missing line fails the test: nothing to do. */
		}
		close(fd);
	}
	errno = saved;
}

/* Count a refusal of @what in @counter and return the error to give. */
static int shim_refuse(const char *what, _Atomic unsigned long *counter)
{
	unsigned long n = atomic_fetch_add(counter, 1) + 1;
	unsigned long e = shim_env("FZ_URING_SHIM_ERRNO");

	if (n == 1 || n % 64 == 0)
		shim_log(what, n);
	return -(int)(e ? e : EAGAIN);
}

int io_uring_submit(struct io_uring *ring)
{
	static int (*real)(struct io_uring *);
	unsigned long limit = shim_env("FZ_URING_SHIM_SUBMIT");

	if (limit && atomic_fetch_add(&shim_submits, 1) < limit)
		return shim_refuse("submit", &shim_submit_refused);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit");
	return real ? real(ring) : -ENOSYS;
}

int io_uring_submit_and_wait(struct io_uring *ring, unsigned int wait_nr)
{
	static int (*real)(struct io_uring *, unsigned int);
	unsigned long every = shim_env("FZ_URING_SHIM_WAIT_EVERY");

	if (every && (atomic_fetch_add(&shim_waits, 1) + 1) % every == 0)
		return shim_refuse("wait", &shim_wait_refused);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit_and_wait");
	return real ? real(ring, wait_nr) : -ENOSYS;
}
