/*
 * zr_rwlock: a reader/writer lock in one 32-bit word.  Private to store/.
 *
 * Used for each page-table slot (zr_slot_i.h: 4 bytes instead of the 56
 * of a pthread_rwlock_t) and for each zs_pool size class.  A waiter spins
 * a little (ZR_RW_SPINS pauses: the holder is usually running on another
 * CPU and about to let go, since every critical section here is a few
 * loads and stores or one memcpy of at most a page) and then sleeps on the
 * word with a futex.  glibc's writer-preferring rwlock, which the classes
 * used before, spun inside pthread_rwlock_wrlock() for 10% of the daemon's
 * time under 4 KiB random writes (fio, 32 deep, 2 jobs, 16 FUSE threads
 * on 2 CPUs): its holders are often preempted.
 *
 * It prefers readers: a writer waits until no reader holds the lock.
 * Every hold is short, and on the CPUs a machine has only that many
 * readers overlap, so a writer finds a gap; callers that hold a lock for
 * long (compaction: one span's worth of copies) are writers themselves.
 * Callers never touch the word: they go through the functions below.
 *
 * Word: bit 31 = held by a writer, bit 30 = someone sleeps on the word,
 * bits 0..29 = number of readers.
 *
 * Locking: this is the lock; what it guards and the order between such
 * locks is written down by each user.
 */
#ifndef FUSEZRAM_ZR_LOCK_I_H
#define FUSEZRAM_ZR_LOCK_I_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ZR_RW_WRITER  0x80000000u
#define ZR_RW_WAITERS 0x40000000u
#define ZR_RW_SPINS   64

struct zr_rwlock {
	_Atomic uint32_t word;		/* 0 = free (zeroed memory is free) */
};

static inline void zr_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static inline void zr_futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void zr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/*
 * zr_rw_wait - sleep until the word moves on from @v, a state in which
 * the caller could not take the lock.  Marks the word as having a sleeper
 * first, so that the unlocker knows to wake it.
 */
static inline void zr_rw_wait(struct zr_rwlock *l, uint32_t v)
{
	if (!(v & ZR_RW_WAITERS) &&
	    !atomic_compare_exchange_weak_explicit(&l->word, &v,
						   v | ZR_RW_WAITERS,
						   memory_order_relaxed,
						   memory_order_relaxed))
		return;		/* changed under us: retry */
	zr_futex_wait(&l->word, v | ZR_RW_WAITERS);
}

/*
 * zr_rw_acquire - wait (spin, then sleep) until no bit of @busy is set in
 * the word, then add @add to it in the same compare-and-swap: a reader
 * waits for the writer bit and adds one; the writer waits for everything
 * but the sleeper bit and adds its own bit.
 */
static inline void zr_rw_acquire(struct zr_rwlock *l, uint32_t busy,
				 uint32_t add)
{
	unsigned spins = 0;

	for (;;) {
		uint32_t v = atomic_load_explicit(&l->word,
						  memory_order_relaxed);

		if (!(v & busy)) {
			if (atomic_compare_exchange_weak_explicit(
				    &l->word, &v, v + add,
				    memory_order_acquire,
				    memory_order_relaxed))
				return;
			continue;
		}
		if (++spins < ZR_RW_SPINS)
			zr_cpu_relax();
		else
			zr_rw_wait(l, v);
	}
}

/* zr_rw_lock_read - take @l shared.  Cannot fail. */
static inline void zr_rw_lock_read(struct zr_rwlock *l)
{
	zr_rw_acquire(l, ZR_RW_WRITER, 1);
}

/* zr_rw_lock_write - take @l exclusive.  Cannot fail. */
static inline void zr_rw_lock_write(struct zr_rwlock *l)
{
	zr_rw_acquire(l, ~ZR_RW_WAITERS, ZR_RW_WRITER);
}

/*
 * zr_rw_trylock_write - take @l exclusive if nobody holds or waits for
 * it, without waiting.  Returns true if taken.
 */
static inline bool zr_rw_trylock_write(struct zr_rwlock *l)
{
	uint32_t v = 0;

	return atomic_compare_exchange_strong_explicit(&l->word, &v,
						       ZR_RW_WRITER,
						       memory_order_acquire,
						       memory_order_relaxed);
}

/* zr_rw_unlock_read - drop a shared hold.  Cannot fail. */
static inline void zr_rw_unlock_read(struct zr_rwlock *l)
{
	uint32_t v = atomic_fetch_sub_explicit(&l->word, 1,
					       memory_order_release) - 1;

	/* Last reader out with sleepers: clear the flag and wake them. */
	if (v == ZR_RW_WAITERS &&
	    atomic_compare_exchange_strong_explicit(&l->word, &v, 0,
						    memory_order_relaxed,
						    memory_order_relaxed))
		zr_futex_wake_all(&l->word);
}

/* zr_rw_unlock_write - drop the exclusive hold.  Cannot fail. */
static inline void zr_rw_unlock_write(struct zr_rwlock *l)
{
	uint32_t v = atomic_exchange_explicit(&l->word, 0,
					      memory_order_release);

	if (v & ZR_RW_WAITERS)
		zr_futex_wake_all(&l->word);
}

#endif /* FUSEZRAM_ZR_LOCK_I_H */
