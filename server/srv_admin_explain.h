/* srv_admin_explain.h — POST /admin/v1/explain (admin_explain.c): one dry
 * run of the decision core on the admin thread, answered as JSON.
 */
#ifndef TOLLGATE_SRV_ADMIN_EXPLAIN_H
#define TOLLGATE_SRV_ADMIN_EXPLAIN_H

#include "srv_process.h"

/* Answer `req` (authenticated by the caller) on the admin thread of `w`. */
void srv_admin_explain(srv_worker_t *w, struct evhttp_request *req);

/* After the admin loop stopped, before the admin listener and Redis client
 * go: every explain request still deciding (its Redis call pending) is
 * cancelled and freed, its connection no longer told of it, and those
 * answered but not yet freed are freed (their free would have run on the
 * loop).  Their requests go unanswered with the listener. */
void srv_admin_explain_cancel_all(srv_t *s);

#endif
