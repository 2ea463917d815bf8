/* pipeline.c — the decision pipeline for the main listener
 * (docs/architecture.md §5).
 *
 * One srv_req_t per request moves through the steps in order and stops at the
 * first step that decides the answer.  A step records that answer in
 * r->verdict and returns; only answer() (and allow()) send:
 *   begin:  request id, client ip, own paths, dialect, normalized path
 *   route:  route match (default_route in forward-auth), CORS, preflight
 *   authn:  API key or JWT, per route.auth and auth.mode      -> 401
 *   authz:  route scopes within the credential's scopes       -> 403
 *   limits: rl_check(), answered later through limits_done()  -> 429 / 503
 *   allow:  forward-auth 200 with identity headers, or proxy upstream
 * While a step waits (limiter, upstream) the connection's close callback
 * points at the request, so a client that goes away cancels the step and the
 * context is freed exactly once (finish()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <errno.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "tollgate/util_clock.h"
#include "tollgate/auth_apikey.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/auth_ticket.h"
#include "tollgate/log.h"
#include "tollgate/util_fmt.h"
#include "srv_req.h"

/* What a pipeline step did.  A step never answers: one that decided the
 * answer has recorded it in r->verdict (verdict()) and returns
 * STEP_ANSWERED, and whoever ran the step sends it (answer(): run(), or the
 * callback of a pending step through step_done()). */
typedef enum {
    STEP_NEXT,     /* go on with the next step */
    STEP_ANSWERED, /* r->verdict is the answer: send it, stop */
    STEP_PENDING,  /* waiting on Redis / the limiter: its callback goes on */
} step_result_t;

static void limits_done(const rl_result_t *res, void *privdata);
static void proxy_head(const srv_proxy_resp_t *resp, void *privdata);
static void proxy_body(struct evbuffer *piece, void *privdata);
static void proxy_done(const srv_proxy_resp_t *resp, void *privdata);

static const srv_proxy_stream_t proxy_stream = {proxy_head, proxy_body, proxy_done};
static void resume(srv_req_t *r);
static void run(srv_req_t *r);
static void answer(srv_req_t *r);

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* ---- end of a request ------------------------------------------------- */

static void on_close(struct evhttp_connection *conn, void *arg);

/* libevent 2.1 stops reading a connection while its request is being
 * answered, so it never notices a client that leaves meanwhile (and turning
 * its reading back on would abort on pipelined input).  Like nginx's
 * ngx_http_test_reading, watch the socket ourselves and peek: 0 bytes is the
 * client gone (a half-close counts, as in nginx); data is a pipelined request,
 * after which we stop watching.
 *
 * Watching a socket costs two epoll_ctl calls, and most steps are answered in
 * microseconds, so a step first arms only a timer (no syscall): the socket is
 * watched once the step has been pending for SRV_WATCH_AFTER_MS.  A client
 * that leaves a quicker step is simply answered into a closed socket. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    srv_req_t *r = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK);

    (void)what;
    if (n > 0)
        return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(&r->watch_ev, NULL);
        return;
    }
    /* Calls on_close() through the close callback, which frees r. */
    evhttp_connection_free(r->conn);
}

/* Still pending after SRV_WATCH_AFTER_MS: now watch the socket. */
static void watch_socket(evutil_socket_t fd, short what, void *arg)
{
    srv_req_t *r = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);

    (void)fd;
    (void)what;
    if (bev == NULL || bufferevent_getfd(bev) < 0)
        return;
    event_assign(&r->watch_ev, r->w->base, bufferevent_getfd(bev), EV_READ, on_readable, r);
    event_add(&r->watch_ev, NULL);
}

/* Watch (or stop watching) for the client leaving while a step is pending. */
static void watch_close(srv_req_t *r, bool on)
{
    static const struct timeval after = {0, SRV_WATCH_AFTER_MS * 1000};

    if (r->conn == NULL)
        return;
    if (!on) {
        srv_conn_watch(r->w, r->conn, NULL, NULL);
        if (r->watching) {
            event_del(&r->watch_ev);
            r->watching = false;
        }
        return;
    }
    srv_conn_watch(r->w, r->conn, on_close, r);
    if (!r->watching) {
        event_assign(&r->watch_ev, r->w->base, -1, 0, watch_socket, r);
        event_add(&r->watch_ev, &after);
        r->watching = true;
    }
}

/* Audit line, metrics, free.  The reply has been sent (or the client left). */
static void finish(srv_req_t *r)
{
    double secs = util_elapsed_s(&r->start);
    srv_worker_t *w = r->w;

    if (r->decision == NULL)
        r->decision = r->status < 400 ? "allow" : r->status >= 500 ? "error" : "deny";
    if (r->reason == NULL)
        r->reason = r->status < 400 ? "ok" : "error";
    metrics_request(w->metrics, r->decision, r->reason, secs);
    if (w->audit != NULL) {
        audit_rec_t a = {
            .ts_ms = util_wall_ms(),
            .request_id = r->reqid,
            .client_id = r->id.client_id,
            .method = r->method,
            .target = r->target,
            .status = r->status,
            .duration_ms = secs * 1000.0,
            .ip = r->ip[0] ? r->ip : NULL,
            .decision = r->decision,
            .reason = r->reason,
            .limit = r->limit,
            .upstream_status = r->upstream_status,
            .redact = r->cfg->audit_redact.v,
            .nredact = r->cfg->audit_redact.n,
        };
        audit_log(w->audit, &a);
    }
    if (r->watching)
        event_del(&r->watch_ev);
    if (r->jwks_waiting)
        event_del(&r->jwks_ev);
    auth_identity_clear(&r->id);
    free(r->verdict.body);
    free(r->path);
    free(r->target_own);
    free(r->verdict.limits.policy);
    free(r->verdict.limits.state);
    cfg_unref(r->cfg);
    free(r);
    w->inflight--;
}

/* Record a denial: status and the error envelope's code and message
 * (r->reason says why, for the audit line).  Returns STEP_ANSWERED, for the
 * step to return: nothing is sent here. */
static step_result_t verdict(srv_req_t *r, int status, const char *code,
                             const char *message)
{
    r->verdict.status = status;
    r->verdict.code = code;
    r->verdict.message = message;
    return STEP_ANSWERED;
}

/* A header of the verdict's answer: `value` copied (cut to
 * DEC_VERDICT_VAL) or borrowed (it must outlive the request).  A step sets
 * at most DEC_VERDICT_HDRS (a preflight's three is the most). */
static void verdict_header(srv_req_t *r, const char *name, const char *value, bool copy)
{
    srv_verdict_t *v = &r->verdict;

    if (v->nset == DEC_VERDICT_HDRS)
        return;
    if (copy) {
        snprintf(v->vals[v->nset], sizeof v->vals[v->nset], "%s", value);
        value = v->vals[v->nset];
    }
    v->set[v->nset++] = (dec_header_t){name, value};
}

/* Connection: close on the answer, whichever it is (a verdict or an
 * allow), once. */
static void answer_close(srv_req_t *r)
{
    if (!r->verdict.close)
        return;
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Connection", "close");
    r->verdict.close = false;
}

/* Record an answer that is not a denial (a preflight, health): `body`
 * (JSON, copied) or NULL. */
static step_result_t verdict_body(srv_req_t *r, int status, const char *body)
{
    if (body != NULL && (r->verdict.body = strdup(body)) == NULL) {
        r->reason = "out_of_memory";
        r->decision = NULL;
        return verdict(r, 500, "unavailable", "out of memory");
    }
    r->verdict.status = status;
    r->verdict.code = NULL;
    return STEP_ANSWERED;
}

/* Send the recorded verdict and end the request: the one way a decision
 * becomes an answer. */
static void answer(srv_req_t *r)
{
    const srv_verdict_t *v = &r->verdict;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

    watch_close(r, false);
    answer_close(r);
    for (size_t i = 0; i < v->nset; i++)
        evhttp_add_header(out, v->set[i].name, v->set[i].value);
    if (v->code != NULL)
        srv_send_error(r, v->status, v->code, v->message);
    else
        srv_send_json(r, v->status, v->body);
    finish(r);
}

/* A pending step's callback ends the way run() would: go on, answer, or
 * wait for the next callback. */
static void step_done(srv_req_t *r, step_result_t st)
{
    if (st == STEP_NEXT)
        resume(r);
    else if (st == STEP_ANSWERED)
        answer(r);
}

/* The client went away while a step was pending: cancel it.  Either
 * libevent saw it and detached the request from the dying connection (then
 * the request is ours to free), or on_readable() freed the connection (then
 * libevent frees the request right after this callback). */
static void on_close(struct evhttp_connection *conn, void *arg)
{
    srv_req_t *r = arg;
    struct evhttp_request *orphan;

    if (r->rl_pending != NULL) {
        rl_cancel(r->rl_pending);
        r->rl_pending = NULL;
    }
    if (r->proxy_pending != NULL) {
        srv_proxy_cancel(r->proxy_pending);
        r->proxy_pending = NULL;
    }
    if (r->lock_pending != NULL) {
        srv_shared_lockout_detach(r->lock_pending);
        r->lock_pending = NULL;
    }
    if (r->jwks_waiting) {
        event_del(&r->jwks_ev);
        r->jwks_waiting = false;
    }
    if (r->tkt_pending != NULL) {
        auth_ticket_cancel(r->tkt_pending);
        r->tkt_pending = NULL;
    }
    watch_close(r, false);
    (void)conn;
    if (!r->streaming) { /* else: the upstream's status was sent, decision allow */
        r->status = 499; /* nginx's "client closed request" */
        r->decision = "error";
    }
    r->reason = "client_closed";
    /* r->target and r->host point into the request: freed after the audit */
    orphan = evhttp_request_get_connection(r->req) == NULL ? r->req : NULL;
    r->req = NULL;
    finish(r);
    if (orphan != NULL)
        evhttp_request_free(orphan);
}

/* ---- step: lockout ---------------------------------------------------- */

static auth_lockout_policy_t lockout_policy(const cfg_t *c)
{
    return (auth_lockout_policy_t){
        .max_failures = c->auth.lockout.max_failures,
        .window_ms = (uint64_t)c->auth.lockout.window_s * 1000,
        .base_backoff_ms = (uint64_t)c->auth.lockout.base_backoff_s * 1000,
        .max_backoff_ms = (uint64_t)c->auth.lockout.max_backoff_s * 1000,
    };
}

/* Step 4: a client ip locked out after too many failures is refused before
 * its credentials are looked at. */
static step_result_t step_lockout(srv_req_t *r)
{
    uint64_t ms;
    unsigned long long secs;
    char retry[24];

    if (r->cfg->auth.lockout.max_failures == 0 || r->route->auth == CFG_ROUTE_NONE ||
        r->cfg->auth.mode == CFG_AUTH_NONE)
        return STEP_NEXT;
    ms = auth_lockout_check(r->w->srv->lockout, r->ip_key, util_wall_ms());
    if (ms == 0)
        return STEP_NEXT;
    secs = (ms + 999) / 1000;
    snprintf(retry, sizeof(retry), "%llu", secs < 1 ? 1ULL : secs);
    verdict_header(r, "Retry-After", retry, true);
    r->reason = "locked_out";
    return verdict(r,
                   r->mode == SRV_MODE_FWD_NGINX
                       ? r->cfg->forward_auth.nginx_rate_limited_status
                       : 429,
                   "locked_out", "too many failed authentications; retry later");
}

static step_result_t unauthorized(srv_req_t *r)
{
    return verdict(r, 401, "unauthorized", "authentication required");
}

static void failure_counted(void *privdata)
{
    srv_req_t *r = privdata;

    r->lock_pending = NULL;
    step_done(r, unauthorized(r));
}

/* A presented credential was refused: count it against the client ip, and
 * answer 401 once it is counted (with Redis, after lua/lockout.lua replied:
 * a client that sees its failure answered finds the lock already in place,
 * on this replica and, through the channel, on the others). */
static step_result_t count_failure(srv_req_t *r)
{
    auth_lockout_policy_t p = lockout_policy(r->cfg);

    if (p.max_failures > 0) {
        r->lock_pending = srv_shared_lockout_fail(r->w, r->ip_key, &p, failure_counted, r);
        if (r->lock_pending != NULL) {
            watch_close(r, true);
            return STEP_PENDING;
        }
    }
    return unauthorized(r);
}

/* ---- step: authentication --------------------------------------------- */

static bool mode_has(cfg_auth_mode_t m, cfg_auth_mode_t want)
{
    return m == want || m == CFG_AUTH_ANY;
}

/* ---- one-time tickets ----------------------------------------------------- */

/* `?ticket=` of the (original) query, copied into r->ticket when it has a
 * ticket's shape; a value of any other shape is not a ticket. */
static bool ticket_param(srv_req_t *r)
{
    const char *q = r->query, *v, *end;

    for (; q != NULL; q = strchr(q, '&') ? strchr(q, '&') + 1 : NULL) {
        if (strncmp(q, "ticket=", 7) != 0)
            continue;
        v = q + 7;
        end = strchr(v, '&');
        if (end == NULL)
            end = v + strlen(v);
        if (!auth_ticket_wellformed(v, (size_t)(end - v)))
            return false;
        memcpy(r->ticket, v, AUTH_TICKET_LEN);
        r->ticket[AUTH_TICKET_LEN] = '\0';
        return true;
    }
    return false;
}

static const char *ticket_prefix(const srv_req_t *r)
{
    return r->w->srv->redis_prefix; /* set for the server's life (srv_new) */
}

/* The stored identity back into r->id, if the credential it was issued
 * for is still good under this config (auth_ticket_restore: key removed or
 * rotated, JWT expired or revoked).  STEP_NEXT, or answered. */
static step_result_t ticket_identity(srv_req_t *r, const char *val, size_t len)
{
    const cfg_t *c = r->cfg;
    auth_ticket_check_t chk = {
        .ticket = r->ticket,
        .keys = mode_has(c->auth.mode, CFG_AUTH_API_KEY) && c->auth.api_key_enabled
                    ? c->auth.keys
                    : NULL,
        .jwt = mode_has(c->auth.mode, CFG_AUTH_JWT) && c->auth.jwt_verifier != NULL,
        .revoked = r->w->srv->revoked,
        .leeway_s = c->auth.jwt.leeway_s,
        .now_s = (int64_t)(util_wall_ms() / 1000),
    };

    const char *why = auth_ticket_restore(val, len, &chk, &r->id);

    if (why == NULL)
        return STEP_NEXT;
    r->reason = why;
    metrics_auth_failure(r->w->metrics, why);
    return count_failure(r);
}

static void ticket_redeemed(const char *val, size_t len, bool failed, void *privdata)
{
    srv_req_t *r = privdata;

    r->tkt_pending = NULL;
    if (failed) {
        r->reason = "ticket_unavailable";
        metrics_auth_failure(r->w->metrics, r->reason);
        step_done(r, unauthorized(r));
        return;
    }
    step_done(r, ticket_identity(r, val, len));
}

/* Use the ticket once: GETDEL in Redis (any replica), else this replica's
 * store.  Redis down: refused (tickets fail closed). */
static step_result_t redeem_ticket(srv_req_t *r)
{
    char key[AUTH_TICKET_KEY_MAX], *val;
    step_result_t st;

    if (auth_ticket_key(ticket_prefix(r), r->ticket, AUTH_TICKET_LEN, key, sizeof key) != 0)
        return count_failure(r);
    if (r->w->rc == NULL) {
        val = auth_tickets_take(r->w->srv->tickets, key, (int64_t)util_wall_ms());
        st = ticket_identity(r, val, val != NULL ? strlen(val) : 0);
        free(val);
        return st;
    }
    r->tkt_pending = auth_ticket_redeem(&rc_client_ops, r->w->rc, key, ticket_redeemed, r);
    if (r->tkt_pending == NULL) {
        r->reason = "ticket_unavailable";
        metrics_auth_failure(r->w->metrics, r->reason);
        return unauthorized(r);
    }
    watch_close(r, true);
    return STEP_PENDING;
}

static void ticket_answer(srv_req_t *r, bool stored)
{
    char body[128];

    if (!stored) {
        r->reason = "ticket_unavailable";
        verdict(r, 503, "unavailable", "the ticket could not be stored");
        answer(r);
        return;
    }
    snprintf(body, sizeof body, "{\"ticket\":\"%s\",\"expires_in\":%u}", r->ticket,
             r->cfg->tickets.ttl_s);
    OPENSSL_cleanse(r->ticket, sizeof r->ticket);
    r->decision = "allow";
    r->reason = "ticket_issued";
    watch_close(r, false);
    srv_send_json(r, 200, body);
    OPENSSL_cleanse(body, sizeof body);
    finish(r);
}

static void ticket_stored(const char *val, size_t len, bool failed, void *privdata)
{
    srv_req_t *r = privdata;

    (void)len;
    r->tkt_pending = NULL;
    ticket_answer(r, !failed && val != NULL);
}

/* POST tickets.path, authenticated and within its limits: a new ticket for
 * this identity (SET ... EX ttl NX in Redis, else this replica's store). */
static void issue_ticket(srv_req_t *r)
{
    char key[AUTH_TICKET_KEY_MAX], *val = NULL;
    bool ok = auth_ticket_make(r->ticket) == 0 &&
              auth_ticket_key(ticket_prefix(r), r->ticket, AUTH_TICKET_LEN, key,
                              sizeof key) == 0 &&
              (val = auth_ticket_encode(&r->id, r->ticket, r->cfg->auth.keys)) != NULL;

    if (!ok || r->w->rc == NULL) {
        ok = ok && auth_tickets_put(r->w->srv->tickets, key, val,
                                    (int64_t)util_wall_ms() +
                                        (int64_t)r->cfg->tickets.ttl_s * 1000) == 0;
        free(val);
        ticket_answer(r, ok);
        return;
    }
    r->tkt_pending = auth_ticket_issue(&rc_client_ops, r->w->rc, key, val,
                                       r->cfg->tickets.ttl_s, ticket_stored, r);
    free(val);
    if (r->tkt_pending == NULL) {
        ticket_answer(r, false);
        return;
    }
    watch_close(r, true);
}

#define JWKS_POLL_MS 10

static void jwks_poll(evutil_socket_t fd, short what, void *arg)
{
    srv_req_t *r = arg;

    (void)fd;
    (void)what;
    r->jwks_waiting = false;
    run(r); /* step_authenticate again, with whatever the fetch brought */
}

/* The token's key may arrive with a JWKS fetch that is running: look again
 * every JWKS_POLL_MS until it ends, at most auth_jwt_max_wait_ms(). */
static step_result_t jwks_wait(srv_req_t *r)
{
    static const struct timeval poll = {0, JWKS_POLL_MS * 1000};
    uint64_t now = util_mono_ms();

    if (r->jwks_deadline_ms == 0)
        r->jwks_deadline_ms = now + auth_jwt_max_wait_ms(r->cfg->auth.jwt_verifier);
    if (now >= r->jwks_deadline_ms)
        return STEP_NEXT; /* decide with what there is */
    evtimer_assign(&r->jwks_ev, r->w->base, jwks_poll, r);
    evtimer_add(&r->jwks_ev, &poll);
    r->jwks_waiting = true;
    watch_close(r, true);
    return STEP_PENDING;
}

/* Step 5.  Next with the identity filled (or anonymous where allowed);
 * a refused credential is counted (pending with Redis) and answered 401. */
static step_result_t step_authenticate(srv_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *key = r->h.api_key;
    const char *authz = r->h.authorization;
    const char *reason;
    unsigned methods = r->route->auth_methods != 0 ? r->route->auth_methods
                                                   : CFG_METHOD_API_KEY | CFG_METHOD_JWT;
    bool bearer = authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0;

    if (r->route->auth == CFG_ROUTE_NONE || c->auth.mode == CFG_AUTH_NONE)
        return STEP_NEXT;
    if (key != NULL && mode_has(c->auth.mode, CFG_AUTH_API_KEY) &&
        c->auth.api_key_enabled && (methods & CFG_METHOD_API_KEY)) {
        const auth_apikey_t *k = auth_keystore_lookup(c->auth.keys, key, strlen(key));

        if (k != NULL && k->not_after != 0 &&
            auth_apikey_expired(k, (int64_t)(util_wall_ms() / 1000))) {
            reason = "key_expired"; /* a good key past its not_after */
            goto out_fail;
        }
        if (k != NULL && auth_apikey_identity(k, &r->id) == 0)
            return STEP_NEXT;
        reason = "invalid_api_key";
        goto out_fail;
    }
    if (bearer && mode_has(c->auth.mode, CFG_AUTH_JWT) && c->auth.jwt_verifier != NULL &&
        (methods & CFG_METHOD_JWT)) {
        const char *tok = authz + 7;
        auth_jwt_status_t st;

        while (*tok == ' ')
            tok++;
        int64_t now = util_wall_ms() / 1000;

        st = auth_jwt_verify(c->auth.jwt_verifier, r->w->jwt_local, tok, strlen(tok), now,
                             &r->id);
        if (st == AUTH_JWT_OK)
            metrics_jwt_cache(r->w->metrics, auth_jwt_local_last_hit(r->w->jwt_local));
        if (st == AUTH_JWT_KEYS_PENDING && jwks_wait(r) == STEP_PENDING)
            return STEP_PENDING;
        if (st == AUTH_JWT_KEYS_PENDING)
            st = AUTH_JWT_UNKNOWN_KID; /* waited long enough */
        if (st == AUTH_JWT_OK) {
            /* Revocation is checked only after signature and claims pass. */
            if (!auth_revoke_check(r->w->srv->revoked, r->id.jti, r->id.subject, r->id.iat,
                                   now))
                return STEP_NEXT;
            reason = "revoked";
        } else {
            reason = auth_jwt_status_str(st);
        }
        auth_identity_clear(&r->id);
        r->bearer_failed = true;
        goto out_fail;
    }
    if ((key != NULL && !(methods & CFG_METHOD_API_KEY)) ||
        (bearer && !(methods & CFG_METHOD_JWT))) {
        reason = "auth_method"; /* a credential this route does not take */
        goto out_fail;
    }

    if (r->route->tickets && ticket_param(r))
        return redeem_ticket(r);
    if (r->route->auth == CFG_ROUTE_OPTIONAL)
        return STEP_NEXT;
    /* A token came but no key is configured to check it (development only:
     * production refuses such a config): no_key, not missing_credentials,
     * which would send an SRE after an ingress that drops Authorization.
     * Not counted for lockout: the client is not at fault. */
    reason = "missing_credentials";
    if (bearer && mode_has(c->auth.mode, CFG_AUTH_JWT) && (methods & CFG_METHOD_JWT))
        reason = "no_key";
    metrics_auth_failure(r->w->metrics, reason);
    r->reason = reason;
    return unauthorized(r);
out_fail:
    metrics_auth_failure(r->w->metrics, reason);
    r->reason = reason;
    return count_failure(r);
}

/* Step 6: the route's scopes must all be the credential's. */
static step_result_t step_authorize(srv_req_t *r)
{
    if (r->route->scopes.n > 0 &&
        !auth_identity_has_scopes(&r->id, r->route->scopes.v, r->route->scopes.n)) {
        r->reason = "insufficient_scope";
        return verdict(r, 403, "forbidden", "insufficient scope");
    }
    return STEP_NEXT;
}

/* ---- step: limits ------------------------------------------------------- */

static const char *req_header(void *ctx, const char *name)
{
    srv_req_t *r = ctx;

    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

static const char *req_claim(void *ctx, const char *name)
{
    srv_req_t *r = ctx;

    return auth_identity_claim(&r->id, name, r->claimbuf, sizeof(r->claimbuf));
}

/* The `client` of a limit's identity: API key ids and JWT subjects live in
 * separate namespaces ("k:ID", "j:ISS|SUB"), so a user whose `sub` is named
 * like a service never spends that service's buckets.  NULL: anonymous. */
static const char *bucket_client(const srv_req_t *r, char *buf, size_t len)
{
    const char *iss;
    int n;

    if (r->id.client_id == NULL)
        return NULL;
    if (r->id.kind == AUTH_KIND_JWT) {
        iss = auth_identity_claim(&r->id, "iss", NULL, 0);
        n = snprintf(buf, len, "j:%s|%s", iss != NULL ? iss : "", r->id.client_id);
    } else {
        n = snprintf(buf, len, "k:%s", r->id.client_id);
    }
    return n >= 0 && (size_t)n < len ? buf : NULL;
}

/* Step 7: every matching limit, decided in limits_done(). */
static step_result_t step_limits(srv_req_t *r)
{
    char client[2048];
    rl_request_t q = {
        .method = r->method_bit,
        .path = r->path,
        .host = r->host,
        .client_id = bucket_client(r, client, sizeof(client)),
        .ip = r->ip_key,
        .route = r->route->name,
        .tier = r->id.tier,
        .cost = 1,
        .header = req_header,
        .claim = req_claim,
        .ctx = r,
    };

    watch_close(r, true);
    r->rl_pending = rl_check(r->w->limiter, &r->cfg->policy, &q, limits_done, r);
    if (r->rl_pending != NULL)
        return STEP_PENDING;
    r->reason = "limiter_unavailable";
    return verdict(r, 503, "unavailable", "rate limiter unavailable");
}

/* A growing string (the RateLimit fields); `s` NULL once out of memory. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *p, size_t n)
{
    if (b->s == NULL)
        return;
    if (b->len + n + 1 > b->cap) {
        char *t;

        while (b->len + n + 1 > b->cap)
            b->cap *= 2;
        t = realloc(b->s, b->cap);
        if (t == NULL) {
            free(b->s);
            b->s = NULL;
            return;
        }
        b->s = t;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *p)
{
    sb_add(b, p, strlen(p));
}

static void sb_u64(sbuf_t *b, uint64_t v)
{
    char d[UTIL_FMT_U64_MAX];

    sb_add(b, d, util_fmt_u64(d, v));
}

/* RateLimit-Policy (`"name";q=N;w=W`, every enforced limit) or RateLimit
 * (`"name";r=R;t=T`, the limit `only`) as RFC 8941 list items; limit names
 * are validated by the config to need no escaping.  NULL when empty. */
static char *join_items(const rl_result_t *res, bool policy, int only)
{
    sbuf_t b = {malloc(128), 0, 128};

    if (b.s == NULL)
        return NULL;
    b.s[0] = '\0';
    for (size_t i = 0; i < res->n; i++) {
        const rl_limit_result_t *lr = &res->limits[i];

        if (lr->limit->mode == RL_MODE_SHADOW || (only >= 0 && (size_t)only != i))
            continue;
        if (b.len > 0)
            sb_str(&b, ", ");
        sb_str(&b, "\"");
        sb_str(&b, lr->limit->name);
        sb_str(&b, policy ? "\";q=" : "\";r=");
        sb_u64(&b, policy ? lr->rate.n : lr->v.remaining);
        sb_str(&b, policy ? ";w=" : ";t=");
        sb_u64(&b, policy ? lr->rate.period_ms / 1000 : (lr->v.reset_ms + 999) / 1000);
    }
    if (b.s != NULL && b.len == 0) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* The limit whose numbers the answer shows: the limiter's report
 * (rl_result_t.report, one rule for every caller), when it is an enforced
 * limit that was decided.  -1 otherwise: the limiter reports a shadow limit
 * only when no enforced one has numbers, and a `failed` one (the backend
 * failed: RL_ERR, or every limit `open`) has none to show. */
static int shown_limit(const rl_result_t *res)
{
    const rl_limit_result_t *lr;

    if (res->report < 0 || (size_t)res->report >= res->n)
        return -1;
    lr = &res->limits[res->report];
    return lr->limit->mode == RL_MODE_SHADOW || lr->failed ? -1 : res->report;
}

_Static_assert(DEC_NUM_MAX >= UTIL_FMT_U64_MAX, "a u64 fits a dec_limits_t field");

static void record_limits(srv_req_t *r, const rl_result_t *res)
{
    int best = shown_limit(res);

    for (size_t i = 0; i < res->n; i++) {
        const rl_limit_result_t *lr = &res->limits[i];

        metrics_limit(r->w->metrics, lr->limit->name,
                      lr->failed      ? "error"
                      : lr->v.allowed ? "allow"
                                      : "deny",
                      lr->limit->mode == RL_MODE_SHADOW ? "shadow" : "enforce");
        if (lr->limit->mode == RL_MODE_SHADOW && !lr->v.allowed && r->limit == NULL) {
            r->limit = lr->limit->name; /* audit: a shadow limit would have denied */
            r->reason = "shadow_rate_limited";
        }
    }
    if (best < 0)
        return;
    const rl_limit_result_t *b = &res->limits[best];
    util_fmt_u64(r->verdict.limits.limit, b->rate.n);
    util_fmt_u64(r->verdict.limits.remaining, b->v.remaining);
    util_fmt_u64(r->verdict.limits.reset, (b->v.reset_ms + 999) / 1000);
    if (res->status == RL_DENIED) {
        uint64_t ra = (b->v.retry_after_ms + 999) / 1000;

        util_fmt_u64(r->verdict.limits.retry, ra < 1 ? 1 : ra);
        r->limit = b->limit->name;
    }
    r->verdict.limits.policy = join_items(res, true, -1);
    r->verdict.limits.state = join_items(res, false, best);
}

/* ---- step: allow -------------------------------------------------------- */

/* X-Auth-* of an allow, values encoded (http_hdr_value_encode).  Anonymous
 * forward-auth allows carry them too, empty (X-Auth-Method: none), so an
 * ingress that copies them onto the upstream request replaces whatever a
 * client sent under those names. */
typedef struct ident_hdrs {
    char client_id[3 * AUTH_MAX_ID_LEN + 1];
    char subject[3 * AUTH_MAX_ID_LEN + 1];
    char scopes[3 * 1024]; /* room for every escape: never a scope cut short */
    const char *method;
} ident_hdrs_t;

static void identity_values(const srv_req_t *r, ident_hdrs_t *v)
{
    char scopes[1024];

    http_hdr_value_encode(r->id.client_id, false, v->client_id, sizeof(v->client_id));
    http_hdr_value_encode(r->id.subject, false, v->subject, sizeof(v->subject));
    auth_identity_scopes_str(&r->id, scopes, sizeof(scopes));
    http_hdr_value_encode(scopes, true, v->scopes, sizeof(v->scopes));
    v->method = r->id.ticket                      ? "ticket"
                : r->id.kind == AUTH_KIND_API_KEY ? "api_key"
                : r->id.kind == AUTH_KIND_JWT     ? "jwt"
                                                  : "none";
}

/* The identity headers as four entries of add[]; returns 4. */
static size_t identity_add(const ident_hdrs_t *v, srv_proxy_hdr_t *add)
{
    add[0] = (srv_proxy_hdr_t){"X-Auth-Client-Id", v->client_id};
    add[1] = (srv_proxy_hdr_t){"X-Auth-Subject", v->subject};
    add[2] = (srv_proxy_hdr_t){"X-Auth-Scopes", v->scopes};
    add[3] = (srv_proxy_hdr_t){"X-Auth-Method", v->method};
    return 4;
}

/* claim_to_headers values, encoded like the identity headers, into `buf`
 * (one allocation, freed by the caller).  Forward-auth sends every
 * configured name (empty when this identity has none, so an ingress that
 * copies it replaces a client's); the proxy sends the identity's own.
 * Returns the entries added to `add` (room for AUTH_JWT_MAX_CLAIM_HDRS). */
static size_t claim_add(const srv_req_t *r, bool every, srv_proxy_hdr_t *add, char **buf)
{
    size_t nnames = 0, need = 1, used = 0, n = 0;
    const char *const *names =
        every ? auth_jwt_claim_headers(r->cfg->auth.jwt_verifier, &nnames) : NULL;

    *buf = NULL;
    for (size_t i = 0; i < r->id.nhdrs; i++)
        need += 3 * strlen(r->id.hdrs[i].value) + 1;
    if ((nnames == 0 && r->id.nhdrs == 0) || (*buf = malloc(need)) == NULL)
        return 0;
    for (size_t i = 0; i < r->id.nhdrs && n < AUTH_JWT_MAX_CLAIM_HDRS; i++) {
        add[n++] = (srv_proxy_hdr_t){r->id.hdrs[i].name, *buf + used};
        used += http_hdr_value_encode(r->id.hdrs[i].value, true, *buf + used, need - used);
        used++;
    }
    for (size_t i = 0; i < nnames && n < AUTH_JWT_MAX_CLAIM_HDRS; i++) {
        size_t k;

        for (k = 0; k < r->id.nhdrs; k++)
            if (strcasecmp(r->id.hdrs[k].name, names[i]) == 0)
                break;
        if (k == r->id.nhdrs)
            add[n++] = (srv_proxy_hdr_t){names[i], ""};
    }
    return n;
}

static void allow(srv_req_t *r)
{
    srv_proxy_hdr_t add[10 + AUTH_JWT_MAX_CLAIM_HDRS];
    ident_hdrs_t idv;
    size_t n = 0;
    unsigned flags = 0;
    char *target = NULL, *claims = NULL;

    answer_close(r); /* a TRACE allowed: the connection ends with it */
    if (r->mode == SRV_MODE_TICKET) {
        issue_ticket(r);
        return;
    }
    r->decision = "allow";
    if (r->reason == NULL)
        r->reason = "ok";
    r->verdict.id = r->id.kind != AUTH_KIND_NONE ? &r->id : NULL;
    if (r->id.kind == AUTH_KIND_API_KEY &&
        (r->id.deprecated || r->cfg->auth.api_keys.deprecated)) {
        r->deprecated = true;
        metrics_deprecated(r->w->metrics, r->id.client_id);
    }
    identity_values(r, &idv);
    if (r->mode != SRV_MODE_PROXY) {
        watch_close(r, false);
        n = identity_add(&idv, add);
        n += claim_add(r, true, add + n, &claims);
        srv_send_json_with(r, 200, NULL, add, n);
        free(claims);
        finish(r);
        return;
    }
    /* Vouch for these ourselves: a client's own values are never passed on. */
    add[n++] = (srv_proxy_hdr_t){"X-Request-ID", r->reqid};
    add[n++] = (srv_proxy_hdr_t){"X-Forwarded-Proto", r->https ? "https" : "http"};
    add[n++] = (srv_proxy_hdr_t){"X-Real-IP", r->ip};
    if (r->host != NULL)
        add[n++] = (srv_proxy_hdr_t){"X-Forwarded-Host", r->host};
    if (r->id.kind != AUTH_KIND_NONE) {
        n += identity_add(&idv, add + n);
        n += claim_add(r, false, add + n, &claims);
    }
    if (r->peer_trusted)
        flags |= SRV_PROXY_PEER_TRUSTED;
    if (r->cfg->proxy.hide_credentials)
        flags |= SRV_PROXY_HIDE_CREDENTIALS;
    /* Forward the normalized path and the query unchanged. */
    if (asprintf(&target, "%s%s%s", r->path, r->query ? "?" : "",
                 r->query ? r->query : "") < 0) {
        r->reason = "out_of_memory";
        verdict(r, 500, "unavailable", "out of memory");
        free(claims);
        answer(r);
        return;
    }
    watch_close(r, true);
    r->proxy_pending = srv_proxy_forward_stream(
        r->w->proxy, r->req, r->route->upstream, target, add, n, r->ip, flags,
        r->route->upstream_timeout_ms, &proxy_stream, r);
    free(target);
    free(claims);
    if (r->proxy_pending == NULL) {
        verdict(r, 502, "bad_gateway", "upstream unavailable");
        answer(r);
    }
}

/* The upstream's answer head: send ours.  From here evhttp reads the client
 * socket itself (to see a close), so the peek watch stops; the close
 * callback stays, for a client that leaves mid-answer. */
static void proxy_head(const srv_proxy_resp_t *resp, void *privdata)
{
    srv_req_t *r = privdata;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);

    if (r->watching) {
        event_del(&r->watch_ev);
        r->watching = false;
    }
    r->streaming = true;
    r->upstream_status = resp->code;
    r->status = resp->code;
    srv_proxy_copy_headers(resp->headers, out);
    srv_add_proxied_headers(r, out);
    srv_reply_start(r, resp->code, resp->reason ? resp->reason : "");
}

/* The client has written everything queued: read the upstream again. */
static void client_drained(struct evhttp_connection *conn, void *arg)
{
    srv_req_t *r = arg;

    (void)conn;
    srv_proxy_pause(r->proxy_pending, 0);
}

/* A piece of the upstream's body: on to the client.  Past
 * SRV_PROXY_STREAM_BUFFER bytes waiting for the client, the upstream is not
 * read until the client has taken all of them (evhttp's write callback), so
 * a slow client holds at most about that much here whatever the answer's
 * size; TCP holds the upstream back meanwhile. */
static void proxy_body(struct evbuffer *piece, void *privdata)
{
    srv_req_t *r = privdata;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);
    size_t queued = bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;

    if (queued + evbuffer_get_length(piece) <= SRV_PROXY_STREAM_BUFFER) {
        evhttp_send_reply_chunk(r->req, piece);
        return;
    }
    srv_proxy_pause(r->proxy_pending, 1);
    evhttp_send_reply_chunk_with_cb(r->req, piece, client_drained, r);
}

/* The end of a streamed answer: complete, or cut short by the upstream or
 * for a client too slow to keep its upstream connection (its status line
 * was sent, so the client must see a truncated answer: the connection is
 * closed without the last chunk, or short of the Content-Length, never
 * ended as if the body were whole). */
static void stream_done(srv_req_t *r, srv_proxy_status_t status)
{
    struct evhttp_connection *conn = r->conn;

    watch_close(r, false);
    if (status == SRV_PROXY_OK) {
        struct evhttp_request *req = r->req;

        /* finish first: r->target points into the request, which
         * evhttp_send_reply_end frees at once when nothing is left to write
         * and no last chunk is due (a Content-Length or close-delimited
         * answer, e.g. to HTTP/1.0) — ASan caught the audit line reading it */
        finish(r);
        evhttp_send_reply_end(req);
        return;
    }
    if (status == SRV_PROXY_SLOW_CLIENT)
        r->reason = "client_too_slow"; /* its upstream connection went to a waiter */
    else
        r->reason = "upstream_truncated";
    r->req = NULL;
    finish(r);                    /* first: r->target and r->host point into the request */
    evhttp_connection_free(conn); /* frees the request; conn.c counts the answer done */
}

/* The verdict on an upstream that gave no answer to pass on. */
static void proxy_failed(srv_req_t *r, srv_proxy_status_t status)
{
    if (status == SRV_PROXY_TIMEOUT) {
        r->reason = "upstream_timeout";
        verdict(r, 504, "bad_gateway", "upstream timed out");
    } else if (status == SRV_PROXY_BAD_ANSWER) {
        r->reason = "upstream_bad_answer";
        verdict(r, 502, "bad_gateway", "upstream answer refused");
    } else {
        r->reason = "upstream_error";
        verdict(r, 502, "bad_gateway", "upstream unavailable");
    }
}

static void proxy_done(const srv_proxy_resp_t *resp, void *privdata)
{
    srv_req_t *r = privdata;
    struct evkeyvalq *out;

    r->proxy_pending = NULL;
    if (r->streaming) {
        stream_done(r, resp->status);
        return;
    }
    if (resp->status != SRV_PROXY_OK) {
        proxy_failed(r, resp->status);
        answer(r);
        return;
    }
    watch_close(r, false);
    r->upstream_status = resp->code;
    r->status = resp->code;
    out = evhttp_request_get_output_headers(r->req);
    srv_proxy_copy_headers(resp->headers, out);
    srv_add_proxied_headers(r, out);
    srv_reply(r, resp->code, resp->reason ? resp->reason : "", resp->body);
    finish(r);
}

/* The limits step's result, once the limiter has answered. */
static step_result_t limits_verdict(srv_req_t *r, rl_status_t status)
{
    switch (status) {
    case RL_DENIED:
        r->reason = "rate_limited";
        return verdict(r,
                       r->mode == SRV_MODE_FWD_NGINX
                           ? r->cfg->forward_auth.nginx_rate_limited_status
                           : 429,
                       "rate_limited", "rate limit exceeded");
    case RL_ERR:
        r->reason = "limiter_unavailable";
        return verdict(r, 503, "unavailable", "rate limiter unavailable");
    case RL_OK:
    default:
        return STEP_NEXT;
    }
}

static void limits_done(const rl_result_t *res, void *privdata)
{
    srv_req_t *r = privdata;

    r->rl_pending = NULL;
    record_limits(r, res);
    step_done(r, limits_verdict(r, res->status));
}

/* ---- step: route, CORS ------------------------------------------------- */

/* The first route that matches; a route with other_methods: deny also
 * stops the search for a request on its paths with another method
 * (*denied: answer 405 rather than let a later route decide it). */
static const cfg_route_t *match_route(const srv_req_t *r, bool *denied)
{
    const cfg_t *c = r->cfg;

    *denied = false;
    if (r->mode == SRV_MODE_TICKET)
        return &c->tickets.route;
    for (size_t i = 0; i < c->nroutes; i++) {
        const cfg_route_t *rt = &c->routes[i];

        if (r->mode == SRV_MODE_PROXY && rt->upstream == NULL)
            continue;
        if (rl_match_request(&rt->match, r->method_bit, r->path, r->host))
            return rt;
        if (rt->other_methods_deny && rl_match_target(&rt->match, r->path, r->host)) {
            *denied = true;
            return rt;
        }
    }
    return r->mode == SRV_MODE_PROXY ? NULL : &c->default_route;
}

/* The methods served here: allowed_methods; proxy mode never forwards TRACE. */
static unsigned methods_served(const srv_req_t *r)
{
    unsigned m = r->cfg->allowed_methods;

    return r->mode == SRV_MODE_PROXY ? m & ~(unsigned)RL_METHOD_TRACE : m;
}

/* 405 with Allow: `allow`.  The nginx dialect answers 403 (nginx turns any
 * other status of an auth subrequest into a 500); the body says why. */
static step_result_t refuse_method(srv_req_t *r, unsigned allow)
{
    char list[80];

    rl_method_list(allow, list, sizeof list);
    verdict_header(r, "Allow", list, true);
    r->reason = "method_not_allowed";
    return verdict(r, r->mode == SRV_MODE_FWD_NGINX ? 403 : 405, "method_not_allowed",
                   "method not allowed");
}

/* OPTIONS with Origin and Access-Control-Request-Method. */
static bool is_preflight(const srv_req_t *r)
{
    return strcmp(r->method, "OPTIONS") == 0 && r->h.origin != NULL && r->h.acrm != NULL;
}

/* CORS: remember an allowed Origin; answer a preflight. */
static step_result_t cors(srv_req_t *r)
{
    const char *origin = r->h.origin;
    const char *acrh;
    char list[80];

    if (origin != NULL &&
        http_cors_origin_allowed(origin, r->cfg->cors_origins.v, r->cfg->cors_origins.n))
        r->origin = origin;
    if (!is_preflight(r))
        return STEP_NEXT;
    if (r->origin == NULL) {
        r->reason = "cors_origin";
        return verdict(r, 403, "forbidden", "origin not allowed");
    }
    /* Forward-auth: a 2xx lets the ingress forward this OPTIONS request to
     * the upstream, which may serve it like any method (Go net/http, Express
     * app.all): it is decided like any request (credential, scopes, limits).
     * The ingress answers preflights itself (docs/forward-auth.md). */
    if (r->mode != SRV_MODE_PROXY)
        return STEP_NEXT;
    rl_method_list(r->route_method_denied ? r->route->match.methods & methods_served(r)
                                          : methods_served(r),
                   list, sizeof list);
    verdict_header(r, "Access-Control-Allow-Methods", list, true);
    acrh = r->h.acrh; /* borrowed: a request header outlives the answer */
    verdict_header(r, "Access-Control-Allow-Headers",
                   acrh != NULL && strlen(acrh) < 512 && !strpbrk(acrh, "\r\n")
                       ? acrh
                       : "Authorization, Content-Type, X-API-Key, X-Request-ID",
                   false);
    verdict_header(r, "Access-Control-Max-Age", "600", false);
    r->reason = "preflight";
    r->decision = "allow";
    return verdict_body(r, r->mode == SRV_MODE_PROXY ? 204 : 200, NULL);
}

/* ---- steps: identify, own paths, route; the pipeline ------------------- */

/* Does normalized `path` name the forward-auth endpoint (`/auth`, `/auth/...`)? */
static bool is_fwd_path(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Does the raw target name it (then the end, '/' or '?')?  Decided before
 * anything is normalized: "/auth/../healthz" is a forward-auth question
 * about "/../healthz", never the health endpoint (whose 200 is an allow in
 * the Envoy form). */
static bool is_fwd_target(const char *target, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(target, prefix, n) == 0 &&
           (target[n] == '\0' || target[n] == '/' || target[n] == '?');
}

static step_result_t answer_health(srv_req_t *r, bool ready)
{
    char body[2048];
    int status;

    r->reason = "health";
    if (!ready)
        return verdict_body(r, 200, "{\"status\":\"ok\"}");
    status = srv_readyz(r->w->srv, r->cfg, false, body, sizeof(body));
    return verdict_body(r, status, body);
}

/* All X-Forwarded-For headers joined with ", " (a proxy may add its own
 * header line rather than append to the first).  NULL when none, or when
 * out of memory (then the peer is the client).  The join is never cut: the
 * rightmost hops are the trusted proxies' own, and a cut would let a client
 * that sent a long first line choose the address (*owned: free it). */
static const char *forwarded_for(srv_req_t *r, char **owned)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    size_t need = 1, used = 0, n;
    char *buf;

    *owned = NULL;
    if (r->h.nxff <= 1)
        return r->h.xff;
    for (struct evkeyval *h = in->tqh_first; h != NULL; h = h->next.tqe_next)
        if (strcasecmp(h->key, "X-Forwarded-For") == 0)
            need += strlen(h->value) + 2;
    if ((buf = malloc(need)) == NULL)
        return NULL;
    for (struct evkeyval *h = in->tqh_first; h != NULL; h = h->next.tqe_next) {
        if (strcasecmp(h->key, "X-Forwarded-For") != 0)
            continue;
        if (used > 0) {
            memcpy(buf + used, ", ", 2);
            used += 2;
        }
        n = strlen(h->value);
        memcpy(buf + used, h->value, n);
        used += n;
    }
    buf[used] = '\0';
    *owned = buf;
    return buf;
}

/* Split r->target into normalized path and query.  -1: bad path. */
static int normalize(srv_req_t *r)
{
    const char *q = strchr(r->target, '?');
    size_t len = q ? (size_t)(q - r->target) : strlen(r->target);
    const char *hash = memchr(r->target, '#', len);
    int n;

    if (hash != NULL)
        len = (size_t)(hash - r->target);
    r->query = q ? q + 1 : NULL;
    r->path = malloc(len + 1 < HTTP_MAX_PATH ? len + 1 : HTTP_MAX_PATH);
    if (r->path == NULL)
        return -1;
    n = http_path_normalize(r->target, len, r->path,
                            len + 1 < HTTP_MAX_PATH ? len + 1 : HTTP_MAX_PATH,
                            &r->path_flags);
    return n < 0 ? -1 : 0;
}

/* Names spelled like tollgate's own headers (X-Auth-*, X-Request-ID,
 * X-Forwarded-*, X-Real-IP: docs/reference.md §5.2, §5.4).  Forward-auth
 * cannot drop what the ingress passes on, so a '_'/'.' spelling of an
 * identity header is refused there; proxy.reserved_headers: reject refuses
 * every reserved spelling and any X-Auth-* in both modes (the default,
 * drop, has proxy.c leave them out). */
/* A POST whose body names another method: a _method form field (Rails'
 * Rack::MethodOverride, on by default; Symfony/Laravel; Express's
 * method-override with a body getter), or a "_method" key of a JSON body
 * (Laravel reads input from JSON too).  Those frameworks override POST
 * only.  Forward-auth sees a body only when the proxy sends one (Envoy's
 * with_request_body); nginx and Traefik do not, which docs/security.md
 * says. */
static bool body_overrides_method(srv_req_t *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = in != NULL ? evbuffer_get_length(in) : 0;
    const char *ctype;
    unsigned char *body;

    if (len == 0 || strcmp(r->method, "POST") != 0)
        return false;
    ctype = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
    if (!http_body_type_has_params(ctype))
        return false; /* no copy of a body nothing reads parameters from */
    body = evbuffer_pullup(in, -1);
    return body == NULL || http_body_has_param(ctype, (const char *)body, len, "_method");
}

static step_result_t forged_headers(srv_req_t *r)
{
    const srv_hdrs_t *h = &r->h;
    bool reject = r->cfg->proxy.reserved == CFG_RESERVED_REJECT;

    /* The upstream may execute the method an override header or a _method
     * query parameter (Symfony with httpMethodParameterOverride, as Laravel
     * sets it; Express's method-override) names, not the one decided on:
     * refused (proxy mode drops the headers, proxy.c, but forwards the
     * query as it came). */
    if ((r->mode != SRV_MODE_PROXY && h->method_override) ||
        http_query_has(r->query, "_method") || body_overrides_method(r)) {
        r->reason = "method_override";
        return verdict(r, 400, "bad_request", "method override");
    }
    if (!(r->mode != SRV_MODE_PROXY && h->identity_variant) &&
        !(reject && (h->identity_exact || h->reserved_variant)))
        return STEP_NEXT;
    r->reason = "reserved_header";
    return verdict(r, 400, "bad_request", "request header spelled like one tollgate sets");
}

/* Double encoding and ';' path parameters, unless the matched route allows
 * them (no route: refused too, not a 404 that hides why). */
static step_result_t path_refused(srv_req_t *r)
{
    const cfg_route_t *rt = r->route;

    if (((r->path_flags & HTTP_PATH_PCT25) && !(rt && rt->allow_encoded_percent)) ||
        ((r->path_flags & HTTP_PATH_SEMICOLON) && !(rt && rt->allow_semicolon))) {
        r->reason = "bad_path";
        return verdict(r, 400, "bad_request", "ambiguous request path (%25 escape or ';')");
    }
    return STEP_NEXT;
}

/* Headers libevent accepted that tollgate refuses (hdrs.c): the framing may
 * be ambiguous, so the connection is closed after the answer. */
static step_result_t refuse_headers(srv_req_t *r)
{
    r->verdict.close = true;
    if (r->h.dup_name != NULL && is_fwd_target(r->target, r->cfg->forward_auth.path))
        srv_fwdauth_note_repeat(r);
    r->reason = r->h.bad;
    return verdict(r, 400, "bad_request", "malformed request header");
}

/* The head conn.c refused before evhttp read it (its size, its method, whose
 * name is kept for the audit line): the request evhttp handed
 * over is a stand-in, so nothing of it is reported as the client's. */
static step_result_t refuse_head(srv_req_t *r, srv_conn_verdict_t v)
{
    r->verdict.close = true;
    r->method = NULL;
    r->target = NULL;
    if (v == SRV_CONN_METHOD) {
        r->method = r->method_own[0] != '\0' ? r->method_own : NULL;
        return refuse_method(r, methods_served(r));
    }
    if (v == SRV_CONN_HEAD_TOO_LARGE) {
        r->reason = "headers_too_large";
        return verdict(r, 431, "headers_too_large",
                       "request headers over max_header_bytes");
    }
    r->reason = "body_too_large";
    return verdict(r, 413, "payload_too_large", "request body over max_body_bytes");
}

/* Step 1: who is asking — request id, client address, method, target; the
 * header scan's verdict (srv_hdrs_scan, done before the first step). */
static step_result_t step_identify(srv_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *rid = r->h.request_id;
    const char *own = evhttp_request_get_uri(r->req);
    char *peer_addr = NULL;
    ev_uint16_t peer_port = 0;

    if (rid != NULL && http_reqid_valid(rid))
        snprintf(r->reqid, sizeof(r->reqid), "%s", rid);
    else
        http_reqid_new(r->reqid);
    if (r->conn != NULL)
        evhttp_connection_get_peer(r->conn, &peer_addr, &peer_port);
    snprintf(r->peer, sizeof(r->peer), "%s", peer_addr ? peer_addr : "");
    r->peer_trusted = r->peer[0] && http_cidr_list_contains(&c->trusted_proxies, r->peer);
    if (r->peer_trusted) {
        char *xff = NULL;

        /* X-Forwarded-For; else X-Real-IP, which nginx auth_request setups
         * often send alone (one hop: treated like a one-entry XFF). */
        http_client_ip(r->peer, r->h.nxff ? forwarded_for(r, &xff) : r->h.real_ip,
                       &c->trusted_proxies, r->ip, sizeof(r->ip));
        free(xff);
    } else {
        http_client_ip(r->peer, NULL, &c->trusted_proxies, r->ip, sizeof(r->ip));
    }
    http_ip_key(r->ip, c->client_ipv6_prefix, r->ip_key, sizeof(r->ip_key));
    r->method = method_name(evhttp_request_get_command(r->req));
    r->method_bit = rl_method_bit(r->method);
    /* libevent reads no body of a TRACE: bytes after its head would be
     * parsed as the next request, where a proxy in front sees a body.
     * Whatever the answer, the connection ends with it. */
    if (r->method_bit == RL_METHOD_TRACE)
        r->verdict.close = true;
    r->target = own != NULL ? own : "/";
    r->host = r->h.host;
    r->mode = SRV_MODE_PROXY;
    if (r->size_verdict != SRV_CONN_OK)
        return refuse_head(r, r->size_verdict);
    if (r->h.bad != NULL)
        return refuse_headers(r);
    return STEP_NEXT;
}

/* A forward-auth request whose dialect headers srv_fwdauth_parse refused. */
static step_result_t refuse_forward(srv_req_t *r, srv_fwd_result_t st)
{
    switch (st) {
    case SRV_FWD_UNTRUSTED:
        return verdict(r, 403, "forbidden", "forward-auth headers from an untrusted peer");
    case SRV_FWD_CONFLICT:
        return verdict(r, 400, "bad_request",
                       "forward-auth headers of more than one dialect, or that disagree");
    case SRV_FWD_NOMEM:
        return verdict(r, 500, "unavailable", "out of memory");
    case SRV_FWD_BAD:
    case SRV_FWD_OK:
    default:
        return verdict(r, 400, "bad_request", "malformed original request");
    }
}

/* The original request replaces method, target and host.  A dot segment
 * or an empty one in the path it authorizes is refused: nginx and Traefik
 * forward the raw path, which the upstream may resolve differently or not at
 * all, so "/p/admin/../pub/x" must not be decided as "/p/pub/x", nor
 * "/p/admin//" as "/p/admin/". */
static step_result_t forward_auth(srv_req_t *r)
{
    srv_fwd_result_t st;

    free(r->path);
    r->path = NULL;
    st = srv_fwdauth_parse(r, r->target);
    if (st != SRV_FWD_OK)
        return refuse_forward(r, st);
    if (normalize(r) != 0 || (r->path_flags & (HTTP_PATH_DOTSEG | HTTP_PATH_EMPTYSEG))) {
        r->reason = "bad_path";
        return verdict(r, 400, "bad_request", "malformed original request");
    }
    return forged_headers(r);
}

/* Step 2: tollgate's own paths, matched on the normalized path — health,
 * and forward-auth, whose original request replaces method, target and
 * host; then the names no client may send. */
static step_result_t step_own_paths(srv_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *xfp;

    if (normalize(r) != 0) {
        r->reason = "bad_path";
        return verdict(r, 400, "bad_request", "malformed request path");
    }
    if (is_fwd_target(r->target, c->forward_auth.path))
        return forward_auth(r);
    if (strcmp(r->path, c->healthz_path) == 0 || strcmp(r->path, c->readyz_path) == 0) {
        return answer_health(r, strcmp(r->path, c->readyz_path) == 0);
    }
    if (strcmp(r->path, c->tickets.path) == 0) {
        if (strcmp(r->method, "POST") != 0) {
            verdict_header(r, "Allow", "POST", false);
            r->reason = "method_not_allowed";
            return verdict(r, 405, "method_not_allowed", "tickets are issued by POST");
        }
        r->mode = SRV_MODE_TICKET;
        return forged_headers(r);
    }
    if (is_fwd_path(r->path, c->forward_auth.path)) {
        /* "/x/../auth/y": the raw target does not start with the prefix */
        r->reason = "bad_path";
        return verdict(r, 400, "bad_request", "malformed request path");
    } else {
        xfp = r->h.f_proto;
        if (r->peer_trusted && xfp != NULL && strcasecmp(xfp, "https") == 0)
            r->https = true;
    }
    return forged_headers(r);
}

/* Step 3: the route (forward-auth: default_route when none matches), the
 * path ambiguities it allows, CORS. */
static step_result_t step_route(srv_req_t *r)
{
    if ((r->method_bit & methods_served(r)) == 0)
        return refuse_method(r, methods_served(r)); /* before any route can decide it */
    r->route = match_route(r, &r->route_method_denied);
    if (path_refused(r) == STEP_ANSWERED)
        return STEP_ANSWERED;
    /* a proxy-mode preflight is tollgate's to answer (cors), never forwarded */
    if (r->route_method_denied && !(r->mode == SRV_MODE_PROXY && is_preflight(r)))
        return refuse_method(r, r->route->match.methods & methods_served(r));
    if (r->route == NULL) {
        r->reason = "no_route";
        return verdict(r, 404, "not_found", "no route");
    }
    return cors(r);
}

/* The pipeline (docs/architecture.md §5), in order; allow() answers after
 * the last. */
static step_result_t (*const steps[])(srv_req_t *) = {
    step_identify,     /* 1. request id, client ip (and malformed headers) */
    step_own_paths,    /* 2. size is libevent's; own paths, forward-auth */
    step_route,        /* 3. route and CORS */
    step_lockout,      /* 4. */
    step_authenticate, /* 5. */
    step_authorize,    /* 6. */
    step_limits,       /* 7. */
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* Run the steps from r->step on; allow the request when all went on. */
static void run(srv_req_t *r)
{
    step_result_t st;

    for (; r->step < NSTEPS; r->step++) {
        st = steps[r->step](r);
        if (st == STEP_ANSWERED)
            answer(r);
        if (st != STEP_NEXT)
            return;
    }
    allow(r);
}

/* A pending step's callback decided "go on": continue after that step. */
static void resume(srv_req_t *r)
{
    r->step++;
    run(r);
}

void srv_pipeline_handle(struct evhttp_request *req, void *arg)
{
    srv_worker_t *w = arg;
    srv_req_t *r = calloc(1, sizeof(*r));
    srv_conn_verdict_t v = srv_conn_request(w, req);

    if (r == NULL) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    util_mono_now(&r->start);
    r->w = w;
    r->cfg = cfg_ref(w->cfg);
    r->req = req;
    r->conn = evhttp_request_get_connection(req);
    r->upstream_status = -1;
    (void)srv_hdrs_scan(&r->h, evhttp_request_get_input_headers(req)); /* see step 1 */
    if (v ==
        SRV_CONN_NUL) /* evhttp cut the value there: what it kept is not what was sent */
        r->h.bad = "nul_in_header";
    else if (v != SRV_CONN_OK)
        r->size_verdict = v;
    if (v == SRV_CONN_METHOD)
        srv_conn_method(w, req, r->method_own, sizeof r->method_own);
    w->inflight++;
    run(r);
}
