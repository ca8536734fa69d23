/*
 * Private interface of zr_store for white-box tests.  Not for the glue.
 */
#ifndef FUSEZRAM_ZR_STORE_I_H
#define FUSEZRAM_ZR_STORE_I_H

#include "store/zr_slot_i.h"
#include "store/zr_store.h"

/*
 * zr_slot_of - the slot of page @idx (< disksize / ZR_PAGE_SIZE).  The
 * caller must take its lock through the zr_slot_lock_* wrappers before
 * touching meta or handle.  Cannot fail.
 */
struct zr_slot *zr_slot_of(struct zr_store *st, uint64_t idx);

/*
 * zr_clock - the store's clock: seconds since it was made, the time
 * that slots' access times are taken from (modulo 2^16).
 * zr_age_clamp - set the access time of every page older than the cap
 * (zr_store.c: ZR_AGE_CAP) at @now, a zr_clock() value, to the cap: the
 * maintainer's sweep, given any time.  Returns the pages set.  Takes
 * each such page's lock shared in turn.
 */
uint64_t zr_clock(const struct zr_store *st);
uint64_t zr_age_clamp(struct zr_store *st, uint64_t now);

#endif /* FUSEZRAM_ZR_STORE_I_H */
