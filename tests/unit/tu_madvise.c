/*
 * The unit-test binary's madvise(): it takes the place of libc's (and of
 * a sanitizer's interceptor) for every call the binary makes.  While
 * tu_madvise_refuse is set, MADV_POPULATE_WRITE fails with ENOMEM, as it
 * does when the memory cgroup is at its limit, and each refusal is
 * counted in tu_madvise_refused; every other call goes to the kernel.
 * A hook set in tu_madvise_hook runs once, at the next
 * MADV_POPULATE_WRITE, before that call goes on.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/unit/check_util.h"

_Atomic int tu_madvise_refuse;
_Atomic unsigned long tu_madvise_refused;
void (*_Atomic tu_madvise_hook)(void);

int madvise(void *addr, size_t len, int advice)
{
	void (*hook)(void);

	if (advice == MADV_POPULATE_WRITE &&
	    (hook = atomic_exchange(&tu_madvise_hook, NULL)))
		hook();
	if (advice == MADV_POPULATE_WRITE &&
	    atomic_load_explicit(&tu_madvise_refuse, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&tu_madvise_refused, 1,
					  memory_order_relaxed);
		errno = ENOMEM;
		return -1;
	}
	return (int)syscall(SYS_madvise, addr, len, advice);
}
