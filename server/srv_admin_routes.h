/* srv_admin_routes.h — the admin API's route table, read-only (server/admin.c).
 *
 * For the docs unit suite (tests/unit/test_docs.c), which checks that
 * docs/reference.md §4 lists every endpoint with its scope and nothing
 * that is not served.
 */
#ifndef TOLLGATE_SRV_ADMIN_ROUTES_H
#define TOLLGATE_SRV_ADMIN_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

/* Line `i` of the table: its method ("GET", "POST", "DELETE"), its path
 * (ending in '*': that prefix and any rest) and whether it needs a write
 * token.  false past the end. */
bool srv_admin_route_at(size_t i, const char **method, const char **path, bool *write);

/* The line that serves `method` `path` (the index srv_admin_route_at
 * takes), or -1: a 404. */
long srv_admin_route_find(const char *method, const char *path);

#endif
