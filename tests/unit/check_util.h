/* Helpers shared by the unit-test suites: deterministic noise, backends. */
#ifndef FUSEZRAM_CHECK_UTIL_H
#define FUSEZRAM_CHECK_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "compressors/zcomp.h"

/* tu_rand - xorshift64*: small, fixed-seed, good enough to make noise. */
static inline uint64_t tu_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* tu_fill_random - @len incompressible bytes from seed @s. */
static inline void tu_fill_random(void *buf, size_t len, uint64_t *s)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(tu_rand(s) >> 56);
}

/* tu_nbackends - the number of rows in zcomp_backends(). */
static inline int tu_nbackends(void)
{
	const struct zcomp_backend *const *be = zcomp_backends();
	int n = 0;

	while (be[n])
		n++;
	return n;
}

/*
 * The binary's own madvise() (tests/unit/tu_madvise.c): while
 * tu_madvise_refuse is set, MADV_POPULATE_WRITE fails with ENOMEM and
 * tu_madvise_refused counts the refusals; other calls reach the kernel.
 */
extern _Atomic int tu_madvise_refuse;
extern _Atomic unsigned long tu_madvise_refused;

/*
 * Heap allocations made by the binary's own code since it started
 * (tests/unit/tu_malloc.c): malloc, calloc, realloc, aligned_alloc and
 * posix_memalign, from every thread.
 */
extern _Atomic unsigned long tu_mallocs;

#endif /* FUSEZRAM_CHECK_UTIL_H */
