/*
 * The unit-test runner: every module's suite in one binary, linked
 * without libfuse.  CK_RUN_SUITE / CK_RUN_CASE select a subset.
 */
#include <stdlib.h>

#include "tests/unit/check_suites.h"

int main(void)
{
	SRunner *sr = srunner_create(zcomp_suite());
	int failed;

	srunner_add_suite(sr, zs_pool_suite());
	srunner_add_suite(sr, zr_store_suite());
	srunner_add_suite(sr, zb_file_suite());
	srunner_add_suite(sr, zr_writeback_suite());
	srunner_add_suite(sr, zr_recomp_suite());
	srunner_add_suite(sr, zr_dev_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
