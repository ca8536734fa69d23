/*
 * zr_slot: one page-table entry and its lock.  Private to store/.
 *
 * A slot is 16 bytes, like the kernel's struct zram_table_entry: a 32-bit
 * reader/writer lock, 32 bits of metadata and a 64-bit value that is
 * either an allocator handle or, for a same-filled page, the fill word.
 *
 * The lock is a zr_rwlock (zr_lock_i.h), a futex-based reader/writer lock
 * in one 32-bit word, so that the page table costs 16 bytes a page
 * instead of the 56 of a pthread_rwlock_t.  It prefers readers (as the
 * kernel's per-slot locks do); writers of one page are rare and short, so
 * starvation is not a concern.  Callers go through
 * zr_slot_lock_read/zr_slot_lock_write/zr_slot_unlock_*.
 *
 * Locking: a slot lock is a leaf with respect to other slots (never wait
 * for one while holding another: zr_slot_trylock_write() alone may take
 * a second); it may be held while taking a zs_pool class lock, never
 * the other way round.
 */
#ifndef FUSEZRAM_ZR_SLOT_I_H
#define FUSEZRAM_ZR_SLOT_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/zr_lock_i.h"

/*
 * meta: bits 0..12 = stored length (1..4096), bits 13..15 flags, bits
 * 16..31 = last access, in seconds since the store was made, modulo 2^16
 * (so ages are exact up to about 18 hours; the maintainer keeps older
 * ones from wrapping, zr_age_clamp()).  0 = empty, always.
 */
#define ZR_META_SIZE_MASK  0x1fffu
#define ZR_META_SAME       (1u << 13)	/* handle is the fill word */
#define ZR_META_HUGE       (1u << 14)	/* stored raw, length 4096 */
#define ZR_META_IDLE       (1u << 15)	/* marked idle (control/idle) */
/*
 * SAME and HUGE together, which no page in RAM has: the object is in the
 * backing file, handle is its zb_file loc; the length is the object's
 * (ZR_PAGE_SIZE: stored raw).  So whether a page is in RAM can be told
 * from meta alone, without the lock.
 */
#define ZR_META_FILE       (ZR_META_SAME | ZR_META_HUGE)
#define ZR_META_TIME_SHIFT 16
#define ZR_META_TIME_MASK  0xffff0000u

/*
 * handle: for a same-filled page, the fill word, all 64 bits.  For an
 * object, in the pool or in the file: bits 60..0 are its zs handle or zb
 * loc (both stay below 2^61, see zs_pool.h and zb_file.h), bits 63..62
 * the priority of the algorithm that compressed it (0 the primary, 1..3
 * a secondary, zr_recompress(); 0 for a page stored raw), and bit 61 is
 * set once recompression found that no secondary algorithm shrinks it
 * (zram's ZRAM_INCOMPRESSIBLE).  Kept there rather than in meta, whose
 * bits are all taken, because they are needed only under the lock.
 */
#define ZR_H_PRIO_SHIFT    62
#define ZR_H_INCOMP        (1ULL << 61)
#define ZR_H_OBJ_MASK      (ZR_H_INCOMP - 1)

struct zr_slot {
	struct zr_rwlock lock;
	/*
	 * guarded by lock for its length and SAME/HUGE bits; the access time
	 * and IDLE bit may also change under the read lock, by atomic
	 * compare-and-swap (readers touch pages, zr_mark_idle marks them),
	 * and only while it is not 0.  So it leaves and enters 0 only under
	 * the write lock, and whether it is 0 may be loaded without any
	 * lock (zr_slot_empty).
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

/*
 * zr_slot_empty - true if the slot holds nothing (meta is 0), with one
 * relaxed load and no lock: it writes nothing, so the page-table page of
 * a slot never written stays unfaulted (reads of it map the zero page).
 * The answer is a snapshot; a writer may fill the slot right after.  Only
 * "empty" lets a caller skip the lock (see zr_store.c, "Empty slots"); a
 * slot found full must be locked and looked at again.  The slot is on
 * the cache line its lock word is, so on the read path this costs no
 * extra miss.  Cannot fail.
 */
static inline bool zr_slot_empty(const struct zr_slot *s)
{
	return atomic_load_explicit(&s->meta, memory_order_relaxed) == 0;
}

_Static_assert(sizeof(struct zr_slot) == 16, "a slot is 16 bytes");

/* zr_slot_lock_read - take the slot shared.  Cannot fail. */
static inline void zr_slot_lock_read(struct zr_slot *s)
{
	zr_rw_lock_read(&s->lock);
}

/* zr_slot_lock_write - take the slot exclusive.  Cannot fail. */
static inline void zr_slot_lock_write(struct zr_slot *s)
{
	zr_rw_lock_write(&s->lock);
}

/*
 * zr_slot_trylock_write - take the slot exclusive if it is free, without
 * waiting: for a thread that may hold another slot's lock (never wait
 * for a second one).  Returns true if taken.
 */
static inline bool zr_slot_trylock_write(struct zr_slot *s)
{
	return zr_rw_trylock_write(&s->lock);
}

/* zr_slot_unlock_read - drop a shared hold.  Cannot fail. */
static inline void zr_slot_unlock_read(struct zr_slot *s)
{
	zr_rw_unlock_read(&s->lock);
}

/* zr_slot_unlock_write - drop the exclusive hold.  Cannot fail. */
static inline void zr_slot_unlock_write(struct zr_slot *s)
{
	zr_rw_unlock_write(&s->lock);
}

#endif /* FUSEZRAM_ZR_SLOT_I_H */
