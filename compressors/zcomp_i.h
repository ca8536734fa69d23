/*
 * zcomp_i.h - private to compressors/: the backend rows that zcomp.c
 * puts in its table.  Each backend file defines exactly one or two of
 * these and nothing else with external linkage.
 *
 * A backend's functions follow the contracts written on struct
 * zcomp_backend in zcomp.h.  In addition, every backend here promises:
 *  - create() does all the allocation; compress() and decompress() never
 *    call malloc, directly or through the library (lz4hc levels 10..12
 *    excepted, see zcomp_lz4.c);
 *  - compress() may be handed any dst_cap, including 0 and values above
 *    INT_MAX, and src_len is at most ZCOMP_MAX_SRC;
 *  - decompress() may be handed any src/src_len/dst_len, including
 *    lengths above INT_MAX and a NULL buffer with a zero length.
 */
#ifndef FUSEZRAM_ZCOMP_I_H
#define FUSEZRAM_ZCOMP_I_H

#include "compressors/zcomp.h"

extern const struct zcomp_backend zcomp_lz4;	/* zcomp_lz4.c */
extern const struct zcomp_backend zcomp_lz4hc;	/* zcomp_lz4.c */
extern const struct zcomp_backend zcomp_zstd;	/* zcomp_zstd.c */

#endif /* FUSEZRAM_ZCOMP_I_H */
