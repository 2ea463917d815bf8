/* test_main.c — the one CUnit runner for every suite in tests/unit/.
 * Usage: unit-tests [SUITE]   (run from tests/unit/, fixtures are relative) */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit.h"

int unit_add_suite(const char *name, const unit_test_t *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);

    if (s == NULL)
        return -1;
    for (; tests->name != NULL; tests++)
        if (CU_add_test(s, tests->name, tests->fn) == NULL)
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
#define SUITE(n)                                                                          \
    if ((only == NULL || strcmp(only, #n) == 0) && test_##n##_add() != 0) {              \
        fprintf(stderr, "cannot add suite %s\n", #n);                                    \
        CU_cleanup_registry();                                                            \
        return 2;                                                                         \
    }
#include "unit_suites.h"
#undef SUITE
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
