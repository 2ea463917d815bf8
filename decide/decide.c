/* decide.c — the door of the decision core (decide.h): dec_start() runs
 * the steps of docs/architecture.md §5 in order on a dec_req_t, and the
 * verdict goes to `done` once, later, on the context's thread.
 *
 *   identify   request id, client ip, refused heads and headers  (dec_identify.c)
 *   own paths  health, forward-auth's original request, tickets   (dec_identify.c)
 *   route      route, methods, path ambiguities, CORS             (dec_route.c)
 *   lockout    a locked-out client ip                       -> 429 (dec_authn.c)
 *   authn      API key, JWT, ticket                         -> 401 (dec_authn.c)
 *   authz      route scopes                                 -> 403 (dec_authn.c)
 *   limits     rl_check()                             -> 429 / 503 (dec_limits.c)
 *   allow      identity headers; proxy: where to forward           (dec_allow.c)
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tollgate/util_clock.h"
#include "dec_internal.h"

dec_ctx_t *dec_ctx_new(const dec_ctx_cfg_t *cfg)
{
    dec_ctx_t *ctx;

    if (cfg->stores == NULL || cfg->hooks.timer_add == NULL ||
        cfg->hooks.timer_cancel == NULL || (ctx = calloc(1, sizeof(*ctx))) == NULL)
        return NULL;
    ctx->c = *cfg;
    return ctx;
}

dec_ctx_t *dec_ctx_new_replay(const dec_ctx_cfg_t *cfg)
{
    dec_ctx_t *ctx = dec_ctx_new(cfg);

    if (ctx != NULL)
        ctx->replay = true;
    return ctx;
}

void dec_ctx_free(dec_ctx_t *ctx)
{
    free(ctx);
}

int64_t dec_wall_ms(const dec_req_t *r)
{
    const dec_hooks_t *h = &r->ctx->c.hooks;

    return h->wall_ms != NULL ? h->wall_ms(h->arg) : util_wall_ms();
}

uint64_t dec_mono_ms(const dec_req_t *r)
{
    const dec_hooks_t *h = &r->ctx->c.hooks;

    return h->mono_ms != NULL ? h->mono_ms(h->arg) : util_mono_ms();
}

void dec_explain_clear(dec_explain_t *e)
{
    if (e == NULL)
        return;
    free(e->limits);
    e->limits = NULL;
    e->nlimits = 0;
}

/* ---- the verdict -------------------------------------------------------- */

/* Record a denial: status and the error envelope's code and message
 * (r->v.reason says why).  Returns DEC_ANSWERED, for the step to return. */
dec_step_t dec_verdict(dec_req_t *r, int status, const char *code, const char *message)
{
    r->v.kind = DEC_ANSWER;
    r->v.status = status;
    r->v.code = code;
    r->v.message = message;
    return DEC_ANSWERED;
}

/* Record an answer that is not a denial (a preflight, health): `body`
 * (JSON, copied) or NULL. */
dec_step_t dec_verdict_body(dec_req_t *r, int status, const char *body)
{
    if (body != NULL && (r->v.body = strdup(body)) == NULL) {
        r->v.reason = "out_of_memory";
        r->v.decision = NULL;
        return dec_verdict(r, 500, "unavailable", "out of memory");
    }
    r->v.kind = DEC_ANSWER;
    r->v.status = status;
    r->v.code = NULL;
    return DEC_ANSWERED;
}

/* A header of the verdict: `value` copied (cut to DEC_VERDICT_VAL, at most
 * DEC_VERDICT_VALS of them) or borrowed (it must outlive the decision). */
void dec_verdict_header(dec_req_t *r, const char *name, const char *value, bool copy)
{
    dec_verdict_t *v = &r->v;

    if (v->nset == DEC_VERDICT_HDRS || (copy && v->nvals == DEC_VERDICT_VALS))
        return;
    if (copy) {
        snprintf(v->vals[v->nvals], sizeof v->vals[v->nvals], "%s", value);
        value = v->vals[v->nvals++];
    }
    v->set[v->nset++] = (dec_header_t){name, value};
}

static const char *mode_name(dec_mode_t m)
{
    switch (m) {
    case DEC_MODE_FWD_ENVOY:
        return "envoy";
    case DEC_MODE_FWD_NGINX:
        return "nginx";
    case DEC_MODE_FWD_TRAEFIK:
        return "traefik";
    case DEC_MODE_TICKET:
        return "ticket";
    case DEC_MODE_PROXY:
    default:
        return "proxy";
    }
}

/* Who asked for what, as far as the steps have found out. */
static void account_who(dec_req_t *r)
{
    dec_verdict_t *v = &r->v;

    v->id = r->id.kind != AUTH_KIND_NONE ? &r->id : NULL;
    v->request_id = r->reqid;
    v->client_ip = r->ip;
    v->method = r->method;
    v->target = r->target;
    v->host = r->host;
    v->origin = r->origin;
    v->https = r->https;
    v->deprecated = r->deprecated;
    v->bearer_failed = r->bearer_failed;
    v->route = r->route;
    v->auth_method = r->auth_method;
    v->decided_ms = r->decided_ms;
    v->peer = r->in.peer != NULL ? r->in.peer : "";
    v->mode = mode_name(r->mode);
}

/* The account of the decision, for the audit line and the answer. */
static void account(dec_req_t *r)
{
    dec_verdict_t *v = &r->v;

    if (v->kind == DEC_ANSWER && v->code != NULL && v->reason == NULL)
        v->reason = v->code;
    if (v->decision == NULL)
        v->decision = v->status < 400 ? "allow" : v->status >= 500 ? "error" : "deny";
    if (v->reason == NULL)
        v->reason = v->status < 400 ? "ok" : "error";
    account_who(r);
    if (r->in.want_keys)
        dec_limits_keys(r);
}

static void req_free(dec_req_t *r)
{
    auth_identity_clear(&r->id);
    if (r->v.body != NULL) {
        OPENSSL_cleanse(r->v.body, strlen(r->v.body)); /* an issued ticket */
        free(r->v.body);
    }
    free(r->v.limits.policy);
    free(r->v.limits.state);
    free(r->path);
    free(r->target_own);
    for (size_t i = 0; i < sizeof r->owned / sizeof r->owned[0]; i++)
        free(r->owned[i]);
    OPENSSL_cleanse(r->ticket, sizeof r->ticket);
    free(r);
}

static void deliver_now(dec_req_t *r)
{
    account(r);
    r->done(&r->v, r->arg);
    req_free(r);
}

static void delivery_timer(void *arg)
{
    dec_req_t *r = arg;

    r->timer = NULL;
    deliver_now(r);
}

/* The verdict is final: to `done` now, or (inside dec_start) from a timer. */
static void deliver(dec_req_t *r)
{
    r->delivered = true;
    if (!r->starting)
        deliver_now(r);
}

/* ---- the run ------------------------------------------------------------ */

static dec_step_t (*const steps[])(dec_req_t *) = {
    dec_step_identify,     /* 1. request id, client ip, refused heads and headers */
    dec_step_own_paths,    /* 2. health, forward-auth, tickets; forged headers */
    dec_step_route,        /* 3. route, methods, CORS */
    dec_step_ban_ip,       /* 4a. an IP / CIDR ban: before credentials */
    dec_step_lockout,      /* 4. */
    dec_step_authenticate, /* 5. */
    dec_step_ban_client,   /* 5a. a client-id ban: before scopes and limits */
    dec_step_authorize,    /* 6. */
    dec_step_limits,       /* 7. */
    dec_allow,             /* the answer of an allowed request */
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

void dec_run(dec_req_t *r)
{
    dec_step_t st;

    for (; r->step < NSTEPS; r->step++) {
        st = steps[r->step](r);
        if (st == DEC_PENDING)
            return;
        if (st == DEC_ANSWERED)
            break;
    }
    deliver(r);
}

void dec_step_done(dec_req_t *r, dec_step_t st)
{
    if (st == DEC_NEXT) {
        r->step++;
        dec_run(r);
    } else if (st == DEC_ANSWERED) {
        deliver(r);
    }
}

dec_pending_t *dec_start(dec_ctx_t *ctx, const cfg_t *snapshot, const dec_input_t *in,
                         dec_done_fn *done, void *arg)
{
    dec_req_t *r = malloc(sizeof(*r));

    if (r == NULL)
        return NULL;
    /* what needs zeroing: a request's scratch is a few kB (dec_internal.h) */
    memset(r, 0, offsetof(dec_req_t, hostbuf));
    memset(&r->v, 0, offsetof(dec_verdict_t, set));
    r->ctx = ctx;
    r->cfg = snapshot;
    r->in = *in;
    r->done = done;
    r->arg = arg;
    r->starting = true;
    r->decided_ms = dec_wall_ms(r);
    dec_run(r);
    r->starting = false;
    if (!r->delivered)
        return r;
    r->timer = ctx->c.hooks.timer_add(ctx->c.hooks.arg, 0, delivery_timer, r);
    if (r->timer == NULL) {
        req_free(r);
        return NULL;
    }
    return r;
}

const dec_verdict_t *dec_progress(dec_pending_t *r)
{
    account_who(r);
    return &r->v;
}

void dec_cancel(dec_pending_t *r)
{
    const dec_ctx_cfg_t *c;

    if (r == NULL)
        return;
    c = &r->ctx->c;
    if (r->rl_pending != NULL)
        rl_cancel(r->rl_pending);
    if (r->lock_pending != NULL)
        c->stores->lockout_detach(r->lock_pending);
    if (r->tkt_pending != NULL)
        c->stores->ticket_cancel(r->tkt_pending);
    if (r->timer != NULL)
        c->hooks.timer_cancel(c->hooks.arg, r->timer);
    req_free(r);
}
