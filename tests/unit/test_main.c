/* test_main.c — the one CUnit runner for every suite in tests/unit/.
 * Usage: unit-tests [--set fast|server|all] [FILE]
 *   --set fast    the suites that start no server (make test-unit, seconds)
 *   --set server  the suites that start redis-server / the 6-node cluster
 *                 (make test-unit-redis); all (the default): both
 *   FILE          only the suites of tests/unit/test_FILE.c
 * Run from tests/unit/ (fixtures are relative). */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit.h"

enum { SET_FAST = 1, SET_SERVER = 2, SET_ALL = 3 };
static int g_sets = SET_ALL;

static int add_suite(const char *name, const unit_test_t *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);

    if (s == NULL)
        return -1;
    for (; tests->name != NULL; tests++)
        if (CU_add_test(s, tests->name, tests->fn) == NULL)
            return -1;
    return 0;
}

int unit_add_suite(const char *name, const unit_test_t *tests)
{
    return (g_sets & SET_FAST) ? add_suite(name, tests) : 0;
}

int unit_add_server_suite(const char *name, const unit_test_t *tests)
{
    return (g_sets & SET_SERVER) ? add_suite(name, tests) : 0;
}

int unit_servers_allowed(void)
{
    return (g_sets & SET_SERVER) != 0;
}

/* --set NAME; -1 when NAME is none of them. */
static int parse_set(const char *name)
{
    if (strcmp(name, "fast") == 0)
        return SET_FAST;
    if (strcmp(name, "server") == 0)
        return SET_SERVER;
    if (strcmp(name, "all") == 0)
        return SET_ALL;
    return -1;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    unsigned failed;

    if (argc > 2 && strcmp(argv[1], "--set") == 0) {
        g_sets = parse_set(argv[2]);
        argc -= 2;
        argv += 2;
    }
    if (g_sets < 0 || argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: unit-tests [--set fast|server|all] [FILE]\n");
        return 2;
    }
    only = argc > 1 ? argv[1] : NULL;

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
