/* The Check suites of the unit-test binary, one per module. */
#ifndef FUSEZRAM_CHECK_SUITES_H
#define FUSEZRAM_CHECK_SUITES_H

#include <check.h>

Suite *zcomp_suite(void);	/* tests/unit/check_zcomp.c */
Suite *zs_pool_suite(void);	/* tests/unit/check_zs_pool.c */
Suite *zr_store_suite(void);	/* tests/unit/check_zr_store.c */
Suite *zb_file_suite(void);	/* tests/unit/check_zb_file.c */
Suite *zr_writeback_suite(void);	/* tests/unit/check_zr_writeback.c */
Suite *zr_recomp_suite(void);	/* tests/unit/check_zr_recomp.c */
Suite *zr_dev_suite(void);	/* tests/unit/check_zr_dev.c */

#endif
