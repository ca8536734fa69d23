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

#endif /* FUSEZRAM_ZR_STORE_I_H */
