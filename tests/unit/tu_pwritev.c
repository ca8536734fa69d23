/*
 * The unit-test binary's pwritev() (pwritev64: the binary is built with
 * _FILE_OFFSET_BITS=64): it takes the place of libc's (and of a
 * sanitizer's interceptor) for every call the binary makes.  The next
 * call of the thread named by tu_pwritev_hold stops until the test lets
 * it go: it clears tu_pwritev_hold, posts tu_pwritev_entered and waits
 * on tu_pwritev_release, then writes.  Every other call goes straight to
 * the kernel.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tests/unit/check_util.h"

_Atomic pthread_t tu_pwritev_hold;
sem_t tu_pwritev_entered, tu_pwritev_release;

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	pthread_t self = pthread_self(), held = self;

	if (atomic_compare_exchange_strong(&tu_pwritev_hold, &held, 0)) {
		sem_post(&tu_pwritev_entered);
		sem_wait(&tu_pwritev_release);
	}
	/* The kernel takes the offset as two longs, low half first. */
	return syscall(SYS_pwritev, fd, iov, n, (long)off,
		       (long)((unsigned long long)off >> 32));
}
