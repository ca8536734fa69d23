/*
 * Helpers shared by the unit-test suites: deterministic noise, backends,
 * memory figures of the process and checks run in a forked child.
 */
#ifndef FUSEZRAM_CHECK_UTIL_H
#define FUSEZRAM_CHECK_UTIL_H

#include <check.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/zr_store.h"

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
 * tu_settle - wait (10 s at most) until @st's background thread has
 * stopped spilling ahead: bd_writes still for 50 ms, and the pool at
 * most 7/8 of @limit (its mem_limit) unless it stopped short of it.
 */
static inline void tu_settle(struct zr_store *st, uint64_t limit)
{
	uint64_t low = limit - limit / ZR_AHEAD_LOW_DIV, w = UINT64_MAX;
	struct zr_stats s;
	int i;

	for (i = 0; i < 200; i++) {
		zr_get_stats(st, &s);
		if (s.mem_used_total <= low && s.bd_writes == w)
			break;
		w = s.bd_writes;
		usleep(50000);
	}
}

/*
 * The binary's own madvise() (tests/unit/tu_madvise.c): while
 * tu_madvise_refuse is set, MADV_POPULATE_WRITE fails with ENOMEM and
 * tu_madvise_refused counts the refusals; other calls reach the kernel.
 */
extern _Atomic int tu_madvise_refuse;
extern _Atomic unsigned long tu_madvise_refused;
/* Runs once at the next MADV_POPULATE_WRITE, then clears itself. */
extern void (*_Atomic tu_madvise_hook)(void);

/*
 * The binary's own pwritev() (tests/unit/tu_pwritev.c): the next call
 * of the thread named by tu_pwritev_hold clears it, posts
 * tu_pwritev_entered and waits on tu_pwritev_release before writing;
 * other calls go straight to the kernel.  The test initialises the
 * semaphores.
 */
extern _Atomic pthread_t tu_pwritev_hold;
extern sem_t tu_pwritev_entered, tu_pwritev_release;

/*
 * tu_status_kib - the figure of @field ("VmRSS:", "RssShmem:", with the
 * colon) in /proc/self/status, in KiB; -1 if it cannot be read.
 */
static inline long tu_status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = strlen(field);
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n))
			v = atol(line + n);
	fclose(f);
	return v;
}

/*
 * tu_run_child - run @check(@arg) in a forked child and fail with @what and
 * the number it returned unless that is 0 (1 always means mlockall
 * failed).  Memory figures measured in the child are its own, whatever
 * the other tests did and whether Check forks (CK_FORK=no) or not; the
 * child reports by exit status only, so it must not use ck_assert.
 */
static inline void tu_run_child(int (*check)(int), int arg, const char *what)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(check(arg));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "%s: child died", what);
	ck_assert_msg(WEXITSTATUS(status) == 0, "%s check %d failed%s", what,
		      WEXITSTATUS(status), WEXITSTATUS(status) == 1 ?
		      " (mlockall: run as root)" : "");
}

/*
 * Heap allocations made by the binary's own code since it started
 * (tests/unit/tu_malloc.c): malloc, calloc, realloc, aligned_alloc and
 * posix_memalign, from every thread.
 */
extern _Atomic unsigned long tu_mallocs;

#endif /* FUSEZRAM_CHECK_UTIL_H */
