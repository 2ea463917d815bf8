/* unit.h — shared by every CUnit suite (tests/unit/test_NAME.c).
 *
 * Each suite file defines `int test_NAME_add(void)` which adds its suites and
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

/* Two sets of suites (`unit-tests --set fast|server|all`, default all):
 *   unit_add_suite         the fast set (make test-unit): no server of any
 *                          kind is started, loopback sockets of the test's
 *                          own and fakes behind ops tables only;
 *   unit_add_server_suite  the server set (make test-unit-redis): suites
 *                          that start redis-server or the 6-node cluster
 *                          (support_redis.h), by convention named NAME_server.
 * A suite added to a set that is not run is skipped (0).  In the fast set
 * tu_redis_start and tu_cluster_start fail the test that calls them, so a
 * test that needs a server cannot hide in the fast set. */
int unit_add_suite(const char *name, const unit_test_t *tests);
int unit_add_server_suite(const char *name, const unit_test_t *tests);
/* May a test start a server (the server set is being run)? */
int unit_servers_allowed(void);

#endif
