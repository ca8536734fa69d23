/*
 * madvise_shim - an LD_PRELOAD library that makes madvise() refuse
 * MADV_POPULATE_WRITE with ENOMEM, as the kernel does when the caller's
 * memory cgroup is at its limit; every other call goes to the kernel.
 *
 *	LD_PRELOAD=build/madvise_shim.so FZ_MADVISE_SHIM_LOG=FILE prog...
 *
 * So that a test can tell that the shim was in the way (and cannot pass
 * because nothing was refused), the first refusal and every 256th after
 * it append a line "refused N" (N: refusals so far) to the file named by
 * FZ_MADVISE_SHIM_LOG, when set.  Thread-safe; never allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic unsigned long shim_refused;

/* Append "refused @n" to $FZ_MADVISE_SHIM_LOG; errno is left as it was. */
static void shim_log(unsigned long n)
{
	const char *path = getenv("FZ_MADVISE_SHIM_LOG");
	int saved = errno, fd, len;
	char line[40];

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		len = snprintf(line, sizeof(line), "refused %lu\n", n);
		if (write(fd, line, (size_t)len) < 0) {
			/* A missing line fails the test: nothing to do. */
		}
		close(fd);
	}
	errno = saved;
}

int madvise(void *addr, size_t len, int advice)
{
	unsigned long n;

	if (advice != MADV_POPULATE_WRITE)
		return (int)syscall(SYS_madvise, addr, len, advice);
	n = atomic_fetch_add_explicit(&shim_refused, 1,
				      memory_order_relaxed) + 1;
	if (n == 1 || n % 256 == 0)
		shim_log(n);
	errno = ENOMEM;
	return -1;
}
