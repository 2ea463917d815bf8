/* srv_admin_explain.h — POST /admin/v1/explain (admin_explain.c): one dry
 * run of the decision core on the admin thread, answered as JSON.
 */
#ifndef TOLLGATE_SRV_ADMIN_EXPLAIN_H
#define TOLLGATE_SRV_ADMIN_EXPLAIN_H

#include "srv_process.h"

/* Answer `req` (authenticated by the caller) on the admin thread of `w`. */
void srv_admin_explain(srv_worker_t *w, struct evhttp_request *req);

#endif
