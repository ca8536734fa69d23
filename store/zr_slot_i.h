/*
 * zr_slot: one page-table entry and its lock.  Private to store/.
 *
 * A slot is 16 bytes, like the kernel's struct zram_table_entry: a 32-bit
 * reader/writer lock, 32 bits of metadata and a 64-bit value that is
 * either an allocator handle or, for a same-filled page, the fill word.
 *
 * The lock is a futex-based reader/writer lock in one 32-bit word, so that
 * the page table costs 16 bytes a page instead of the 56 of a
 * pthread_rwlock_t.  It prefers readers (as the kernel's per-slot locks
 * do); writers of one page are rare and short, so starvation is not a
 * concern.  Callers never touch the lock word: they go through
 * zr_slot_lock_read/zr_slot_lock_write/zr_slot_unlock_*, so the lock can
 * change without touching them.
 *
 * Lock word: bit 31 = held by a writer, bit 30 = someone sleeps on the
 * word, bits 0..29 = number of readers.
 *
 * Locking: a slot lock is a leaf with respect to other slots (never hold
 * two); it may be held while taking a zs_pool class lock, never the other
 * way round.
 */
#ifndef FUSEZRAM_ZR_SLOT_I_H
#define FUSEZRAM_ZR_SLOT_I_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ZR_SLOT_WRITER  0x80000000u
#define ZR_SLOT_WAITERS 0x40000000u
#define ZR_SLOT_READERS 0x3fffffffu
#define ZR_SLOT_SPINS   64

/*
 * meta: bits 0..12 = stored length (1..4096), bits 13..15 flags, bits
 * 16..31 = last access, in seconds since the store was made, modulo 2^16
 * (so ages are exact up to about 18 hours).  0 = empty, always.
 */
#define ZR_META_SIZE_MASK  0x1fffu
#define ZR_META_SAME       (1u << 13)	/* handle is the fill word */
#define ZR_META_HUGE       (1u << 14)	/* stored raw, length 4096 */
#define ZR_META_IDLE       (1u << 15)	/* marked idle (control/idle) */
#define ZR_META_TIME_SHIFT 16
#define ZR_META_TIME_MASK  0xffff0000u

struct zr_slot {
	_Atomic uint32_t lock;
	/*
	 * guarded by lock for its length and SAME/HUGE bits; the access time
	 * and IDLE bit may also change under the read lock, by atomic
	 * compare-and-swap (readers touch pages, zr_mark_idle marks them).
	 */
	_Atomic uint32_t meta;
	uint64_t handle;	/* guarded by lock: zs handle or fill word */
};

/* zr_slot_meta - the slot's metadata.  Needs the slot's lock. */
static inline uint32_t zr_slot_meta(const struct zr_slot *s)
{
	return atomic_load_explicit(&s->meta, memory_order_relaxed);
}

/* zr_slot_set_meta - replace it.  Needs the slot's write lock. */
static inline void zr_slot_set_meta(struct zr_slot *s, uint32_t meta)
{
	atomic_store_explicit(&s->meta, meta, memory_order_relaxed);
}

_Static_assert(sizeof(struct zr_slot) == 16, "a slot is 16 bytes");

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
 * zr_slot_wait - sleep until the lock word moves on from @v, a state in
 * which the caller could not take the lock.  Marks the word as having a
 * sleeper first, so that the unlocker knows to wake it.
 */
static inline void zr_slot_wait(struct zr_slot *s, uint32_t v)
{
	if (!(v & ZR_SLOT_WAITERS) &&
	    !atomic_compare_exchange_weak_explicit(&s->lock, &v,
						   v | ZR_SLOT_WAITERS,
						   memory_order_relaxed,
						   memory_order_relaxed))
		return;		/* changed under us: retry */
	zr_futex_wait(&s->lock, v | ZR_SLOT_WAITERS);
}

/*
 * zr_slot_acquire - wait (spin, then sleep) until no bit of @busy is set
 * in the lock word, then add @add to it in the same compare-and-swap: a
 * reader waits for the writer bit and adds one; the writer waits for
 * everything but the sleeper bit and adds its own bit.
 */
static inline void zr_slot_acquire(struct zr_slot *s, uint32_t busy,
				   uint32_t add)
{
	unsigned spins = 0;

	for (;;) {
		uint32_t v = atomic_load_explicit(&s->lock,
						  memory_order_relaxed);

		if (!(v & busy)) {
			if (atomic_compare_exchange_weak_explicit(
				    &s->lock, &v, v + add,
				    memory_order_acquire,
				    memory_order_relaxed))
				return;
			continue;
		}
		if (++spins < ZR_SLOT_SPINS)
			zr_cpu_relax();
		else
			zr_slot_wait(s, v);
	}
}

/* zr_slot_lock_read - take the slot shared.  Cannot fail. */
static inline void zr_slot_lock_read(struct zr_slot *s)
{
	zr_slot_acquire(s, ZR_SLOT_WRITER, 1);
}

/* zr_slot_lock_write - take the slot exclusive.  Cannot fail. */
static inline void zr_slot_lock_write(struct zr_slot *s)
{
	zr_slot_acquire(s, ~ZR_SLOT_WAITERS, ZR_SLOT_WRITER);
}

/* zr_slot_unlock_read - drop a shared hold.  Cannot fail. */
static inline void zr_slot_unlock_read(struct zr_slot *s)
{
	uint32_t v = atomic_fetch_sub_explicit(&s->lock, 1,
					       memory_order_release) - 1;

	/* Last reader out with sleepers: clear the flag and wake them. */
	if (v == ZR_SLOT_WAITERS &&
	    atomic_compare_exchange_strong_explicit(&s->lock, &v, 0,
						    memory_order_relaxed,
						    memory_order_relaxed))
		zr_futex_wake_all(&s->lock);
}

/* zr_slot_unlock_write - drop the exclusive hold.  Cannot fail. */
static inline void zr_slot_unlock_write(struct zr_slot *s)
{
	uint32_t v = atomic_exchange_explicit(&s->lock, 0,
					      memory_order_release);

	if (v & ZR_SLOT_WAITERS)
		zr_futex_wake_all(&s->lock);
}

#endif /* FUSEZRAM_ZR_SLOT_I_H */
