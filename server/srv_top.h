/* srv_top.h — who is limited (top.c, admin_top.c), for server/ sources only.
 *
 * Each main-listener worker records into its own rl_topk_t from its
 * limiter (no lock on the request path) and, every SRV_TOP_SNAPSHOT_MS on
 * its own loop, publishes a view of its windows under a mutex that only
 * that timer and the admin thread take.  The admin thread merges the
 * workers' views into the replica's, publishes it to Redis every
 * `top.publish_interval`, answers GET /admin/v1/limits/{name}/top and
 * renders tollgate_limit_top_denied.
 */
#ifndef TOLLGATE_SRV_TOP_H
#define TOLLGATE_SRV_TOP_H

#include "tollgate/rl_topk.h"
#include "srv_process.h"

#define SRV_TOP_SNAPSHOT_MS 1000 /* a worker's view is at most this old */
#define SRV_TOP_TTL_FACTOR 3     /* a replica's lists count for 3 intervals */

/* Worker `w` (main listener) records and publishes; -1 out of memory. */
int srv_top_worker_init(srv_worker_t *w);
void srv_top_worker_clear(srv_worker_t *w);

/* Admin thread: the replica view and the Redis publisher (after the fleet,
 * whose instance id names this replica). */
int srv_top_start(srv_t *s, char *err, size_t errlen);
void srv_top_stop(srv_t *s);

/* Admin thread: this replica's lists now (every worker's merged); valid
 * until the next call.  NULL when out of memory. */
const rl_topk_view_t *srv_top_replica(srv_t *s);
/* The instance id the replica publishes under, NULL without Redis. */
const char *srv_top_id(const srv_t *s);
/* Admin thread: `key` (RL_TOPK_KEY_LEN) of the limit's lists / deadlines. */
#define SRV_TOP_KEY_LEN 192
void srv_top_keys(const srv_t *s, const char *limit, char *lists, char *until);

/* Admin thread: tollgate_limit_top_denied for the top `n` of each limit. */
struct evbuffer;
void srv_top_metrics(srv_t *s, const cfg_t *c, struct evbuffer *out);

/* admin_top.c: GET /admin/v1/limits/{name}/top; `rest` is what follows
 * "/admin/v1/limits/". */
void srv_admin_top(srv_worker_t *w, struct evhttp_request *req, const char *rest);
/* admin_top.c: drop every such request still waiting on Redis, unanswered
 * (shutdown: its evhttp request goes with the admin listener). */
void srv_admin_top_cancel_all(srv_t *s);
/* top.c: the head of admin_top.c's list of those requests (admin thread). */
void **srv_top_pending(srv_t *s);

#endif
