/*
 * The unit-test binary's heap allocator, counted: the binary is linked
 * with -Wl,--wrap for malloc, calloc, realloc, aligned_alloc and
 * posix_memalign, so that every call from its own objects (the store and
 * the allocator among them) comes here first, is counted in tu_mallocs,
 * and goes on to the C library's (or a sanitizer's) allocator.  Calls
 * from shared libraries are not seen.
 */
#include <stdatomic.h>
#include <stddef.h>

#include "tests/unit/check_util.h"

_Atomic unsigned long tu_mallocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static void tu_count(void)
{
	atomic_fetch_add_explicit(&tu_mallocs, 1, memory_order_relaxed);
}

void *__wrap_malloc(size_t n)
{
	tu_count();
	return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
	tu_count();
	return __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
	tu_count();
	return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	tu_count();
	return __real_aligned_alloc(a, n);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
	tu_count();
	return __real_posix_memalign(p, a, n);
}
