/* unit.h — shared by every CUnit suite (tests/unit/test_NAME.c).
 *
 * Each suite file defines `int test_NAME_add(void)` which adds its suite and
 * tests to the registry and returns 0 (or -1).  The runner's list of suites is
 * generated from the file names (build/gen/unit_suites.h).
 */
#ifndef TOLLGATE_TESTS_UNIT_H
#define TOLLGATE_TESTS_UNIT_H

#include <CUnit/CUnit.h>

#define SUITE(n) int test_##n##_add(void);
#include "unit_suites.h"
#undef SUITE

/* Add a suite named `name` with the NULL-terminated table `tests`. */
typedef struct unit_test {
    const char *name;
    void (*fn)(void);
} unit_test_t;

int unit_add_suite(const char *name, const unit_test_t *tests);

#endif
