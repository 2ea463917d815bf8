/* dec_authn.c — steps 4 to 6: lockout, authentication (API key, JWT,
 * one-time ticket), authorization (route scopes); and the ticket a POST to
 * tickets.path is issued.  Lockout counting and tickets go through the
 * context's stores (dec_stores_ops_t); a dry run writes nothing there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "tollgate/auth_apikey.h"
#include "tollgate/auth_jwt.h"
#include "dec_internal.h"

#define JWKS_POLL_MS 10

static const dec_stores_ops_t *stores(const dec_req_t *r)
{
    return r->ctx->c.stores;
}

static auth_lockout_policy_t lockout_policy(const cfg_t *c)
{
    return (auth_lockout_policy_t){
        .max_failures = c->auth.lockout.max_failures,
        .window_ms = (uint64_t)c->auth.lockout.window_s * 1000,
        .base_backoff_ms = (uint64_t)c->auth.lockout.base_backoff_s * 1000,
        .max_backoff_ms = (uint64_t)c->auth.lockout.max_backoff_s * 1000,
    };
}

static int denied_status(const dec_req_t *r)
{
    return r->mode == DEC_MODE_FWD_NGINX ? r->cfg->forward_auth.nginx_rate_limited_status
                                         : 429;
}

/* Step 4: a client ip locked out after too many failures is refused before
 * its credentials are looked at. */
dec_step_t dec_step_lockout(dec_req_t *r)
{
    uint64_t ms;
    unsigned long long secs;
    char retry[24];

    if (r->cfg->auth.lockout.max_failures == 0 || r->route->auth == CFG_ROUTE_NONE ||
        r->cfg->auth.mode == CFG_AUTH_NONE)
        return DEC_NEXT;
    ms = stores(r)->lockout_check(r->ctx->c.store, r->ip_key, dec_wall_ms(r));
    if (ms == 0)
        return DEC_NEXT;
    secs = (ms + 999) / 1000;
    snprintf(retry, sizeof(retry), "%llu", secs < 1 ? 1ULL : secs);
    dec_verdict_header(r, "Retry-After", retry, true);
    r->v.reason = "locked_out";
    return dec_verdict(r, denied_status(r), "locked_out",
                       "too many failed authentications; retry later");
}

static dec_step_t unauthorized(dec_req_t *r)
{
    return dec_verdict(r, 401, "unauthorized", "authentication required");
}

static void failure_counted(void *arg)
{
    dec_req_t *r = arg;

    r->lock_pending = NULL;
    dec_step_done(r, unauthorized(r));
}

/* A presented credential was refused (r->v.reason says why): count it
 * against the client ip, and answer 401 once it is counted (with Redis,
 * after lua/lockout.lua replied: a client that sees its failure answered
 * finds the lock already in place).  A dry run counts nothing. */
static dec_step_t count_failure(dec_req_t *r)
{
    auth_lockout_policy_t p = lockout_policy(r->cfg);

    DEC_HOOK(r, auth_failure, r->v.reason);
    if (p.max_failures > 0 && !r->in.dry_run) {
        r->lock_pending = stores(r)->lockout_fail(r->ctx->c.store, r->ip_key, &p,
                                                  dec_wall_ms(r), failure_counted, r);
        if (r->lock_pending != NULL)
            return DEC_PENDING;
    }
    return unauthorized(r);
}

static bool mode_has(cfg_auth_mode_t m, cfg_auth_mode_t want)
{
    return m == want || m == CFG_AUTH_ANY;
}

/* ---- one-time tickets ----------------------------------------------------- */

/* `?ticket=` of the (original) query, copied into r->ticket when it has a
 * ticket's shape; a value of any other shape is not a ticket. */
static bool ticket_param(dec_req_t *r)
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

/* The stored identity back into r->id, if the credential it was issued for
 * is still good under this config (auth_ticket_restore). */
static dec_step_t ticket_identity(dec_req_t *r, const char *val, size_t len)
{
    const cfg_t *c = r->cfg;
    auth_ticket_check_t chk = {
        .ticket = r->ticket,
        .keys = mode_has(c->auth.mode, CFG_AUTH_API_KEY) && c->auth.api_key_enabled
                    ? c->auth.keys
                    : NULL,
        .jwt = mode_has(c->auth.mode, CFG_AUTH_JWT) && c->auth.jwt_verifier != NULL,
        .revoked = r->ctx->c.revoked,
        .leeway_s = c->auth.jwt.leeway_s,
        .now_s = dec_wall_ms(r) / 1000,
    };
    const char *why = auth_ticket_restore(val, len, &chk, &r->id);

    if (why == NULL)
        return DEC_NEXT;
    r->v.reason = why;
    return count_failure(r);
}

static void ticket_redeemed(const char *val, size_t len, bool failed, void *arg)
{
    dec_req_t *r = arg;

    r->tkt_pending = NULL;
    if (failed) {
        r->v.reason = "ticket_unavailable";
        DEC_HOOK(r, auth_failure, r->v.reason);
        dec_step_done(r, unauthorized(r));
        return;
    }
    dec_step_done(r, ticket_identity(r, val, len));
}

/* Use the ticket once (the store takes it).  A dry run takes nothing, so
 * it cannot know whether the ticket is good: refused (ticket_not_redeemed). */
static dec_step_t redeem_ticket(dec_req_t *r)
{
    char key[AUTH_TICKET_KEY_MAX], *val = NULL;
    dec_step_t st;

    if (r->in.dry_run) {
        r->v.reason = "ticket_not_redeemed";
        return unauthorized(r);
    }
    if (auth_ticket_key(r->ctx->c.ticket_prefix, r->ticket, AUTH_TICKET_LEN, key,
                        sizeof key) != 0) {
        r->v.reason = "ticket_unavailable"; /* no key for it: never stored */
        return count_failure(r);
    }
    switch (stores(r)->ticket_redeem(r->ctx->c.store, key, dec_wall_ms(r), &val,
                                     &r->tkt_pending, ticket_redeemed, r)) {
    case DEC_STORE_NOW:
        st = ticket_identity(r, val, val != NULL ? strlen(val) : 0);
        if (val != NULL)
            OPENSSL_cleanse(val, strlen(val));
        free(val);
        return st;
    case DEC_STORE_LATER:
        return DEC_PENDING;
    case DEC_STORE_FAILED:
    default:
        r->tkt_pending = NULL;
        r->v.reason = "ticket_unavailable";
        DEC_HOOK(r, auth_failure, r->v.reason);
        return unauthorized(r);
    }
}

static dec_step_t ticket_answer(dec_req_t *r, bool stored)
{
    char body[128];
    dec_step_t st;

    if (!stored) {
        r->v.reason = "ticket_unavailable";
        return dec_verdict(r, 503, "unavailable", "the ticket could not be stored");
    }
    if (r->in.dry_run)
        body[0] = '\0';
    else
        snprintf(body, sizeof body, "{\"ticket\":\"%s\",\"expires_in\":%u}", r->ticket,
                 r->cfg->tickets.ttl_s);
    OPENSSL_cleanse(r->ticket, sizeof r->ticket);
    r->v.decision = "allow";
    r->v.reason = "ticket_issued";
    st = dec_verdict_body(r, 200, body[0] != '\0' ? body : NULL);
    OPENSSL_cleanse(body, sizeof body);
    return st;
}

static void ticket_stored(const char *val, size_t len, bool failed, void *arg)
{
    dec_req_t *r = arg;

    (void)len;
    r->tkt_pending = NULL;
    dec_step_done(r, ticket_answer(r, !failed && val != NULL));
}

/* POST tickets.path, authenticated and within its limits: a new ticket for
 * this identity, stored unless its key exists.  A dry run stores none and
 * its 200 carries no ticket. */
dec_step_t dec_issue_ticket(dec_req_t *r)
{
    char key[AUTH_TICKET_KEY_MAX], *val = NULL;
    dec_store_status_t st;
    bool ok;

    if (r->in.dry_run)
        return ticket_answer(r, true);
    ok = auth_ticket_make(r->ticket) == 0 &&
         auth_ticket_key(r->ctx->c.ticket_prefix, r->ticket, AUTH_TICKET_LEN, key,
                         sizeof key) == 0 &&
         (val = auth_ticket_encode(&r->id, r->ticket, r->cfg->auth.keys)) != NULL;
    if (!ok) {
        free(val);
        return ticket_answer(r, false);
    }
    st = stores(r)->ticket_issue(r->ctx->c.store, key, val, r->cfg->tickets.ttl_s,
                                 dec_wall_ms(r), &r->tkt_pending, ticket_stored, r);
    OPENSSL_cleanse(val, strlen(val));
    free(val);
    if (st == DEC_STORE_LATER)
        return DEC_PENDING;
    r->tkt_pending = NULL;
    return ticket_answer(r, st == DEC_STORE_NOW);
}

/* ---- step 5 --------------------------------------------------------------- */

static void jwks_poll(void *arg)
{
    dec_req_t *r = arg;

    r->timer = NULL;
    dec_run(r); /* the authentication step again, with whatever the fetch brought */
}

/* The token's key may arrive with a JWKS fetch that is running: look again
 * every JWKS_POLL_MS until it ends, at most auth_jwt_max_wait_ms(). */
static dec_step_t jwks_wait(dec_req_t *r)
{
    const dec_hooks_t *h = &r->ctx->c.hooks;
    uint64_t now = dec_mono_ms(r);

    if (r->jwks_deadline_ms == 0)
        r->jwks_deadline_ms = now + auth_jwt_max_wait_ms(r->cfg->auth.jwt_verifier);
    if (now >= r->jwks_deadline_ms)
        return DEC_NEXT; /* decide with what there is */
    r->timer = h->timer_add(h->arg, JWKS_POLL_MS, jwks_poll, r);
    return r->timer != NULL ? DEC_PENDING : DEC_NEXT;
}

/* A bearer JWT: DEC_NEXT with r->id filled, DEC_PENDING (JWKS), or a
 * refusal reason in *reason and DEC_ANSWERED. */
static dec_step_t verify_jwt(dec_req_t *r, const char *authz, const char **reason)
{
    const cfg_t *c = r->cfg;
    const char *tok = authz + 7;
    int64_t now = dec_wall_ms(r) / 1000;
    auth_jwt_status_t st;

    while (*tok == ' ')
        tok++;
    st = auth_jwt_verify(c->auth.jwt_verifier, r->ctx->c.jwt_local, tok, strlen(tok), now,
                         &r->id);
    if (st == AUTH_JWT_OK && r->ctx->c.jwt_local != NULL)
        DEC_HOOK(r, jwt_cache, auth_jwt_local_last_hit(r->ctx->c.jwt_local));
    if (st == AUTH_JWT_KEYS_PENDING && jwks_wait(r) == DEC_PENDING)
        return DEC_PENDING;
    if (st == AUTH_JWT_KEYS_PENDING)
        st = AUTH_JWT_UNKNOWN_KID; /* waited long enough */
    if (st == AUTH_JWT_OK) {
        /* Revocation is checked only after signature and claims pass. */
        if (r->ctx->c.revoked == NULL ||
            !auth_revoke_check(r->ctx->c.revoked, r->id.jti,
                               auth_identity_claim(&r->id, "iss", NULL, 0), r->id.subject,
                               r->id.iat, now))
            return DEC_NEXT;
        *reason = "revoked";
    } else {
        *reason = auth_jwt_status_str(st);
    }
    auth_identity_clear(&r->id);
    r->bearer_failed = true;
    return DEC_ANSWERED;
}

/* An API key: DEC_NEXT with r->id filled, or DEC_ANSWERED with *reason. */
static dec_step_t check_api_key(dec_req_t *r, const char *key, const char **reason)
{
    const auth_apikey_t *k = auth_keystore_lookup(r->cfg->auth.keys, key, strlen(key));

    if (k != NULL && k->not_after != 0 && auth_apikey_expired(k, dec_wall_ms(r) / 1000)) {
        *reason = "key_expired"; /* a good key past its not_after */
        return DEC_ANSWERED;
    }
    if (k != NULL && auth_apikey_identity(k, &r->id) == 0)
        return DEC_NEXT;
    *reason = "invalid_api_key";
    return DEC_ANSWERED;
}

/* Explain's as_client: decide as the API-key client `id` would be decided
 * with a good key of its own (the first of its keys not past not_after),
 * its secret never seen.  Only a dry run with an explain sink gets here. */
static dec_step_t as_client(dec_req_t *r, unsigned methods, const char **reason)
{
    const cfg_t *c = r->cfg;
    const auth_apikey_t *k = NULL;
    bool expired = false;

    if (!mode_has(c->auth.mode, CFG_AUTH_API_KEY) || !c->auth.api_key_enabled ||
        !(methods & CFG_METHOD_API_KEY)) {
        *reason = "auth_method";
        return DEC_ANSWERED;
    }
    if (c->auth.keys != NULL)
        k = auth_keystore_find_id(c->auth.keys, r->in.as_client);
    for (; k != NULL; k = auth_keystore_next_of_id(c->auth.keys, k)) {
        if (k->not_after == 0 || !auth_apikey_expired(k, dec_wall_ms(r) / 1000))
            break;
        expired = true;
    }
    if (k != NULL && auth_apikey_identity(k, &r->id) == 0)
        return DEC_NEXT;
    *reason = expired ? "key_expired" : "invalid_api_key";
    return DEC_ANSWERED;
}

static bool explaining(const dec_req_t *r)
{
    return r->in.explain != NULL && r->in.dry_run;
}

/* Step 5.  Next with the identity filled (or anonymous where allowed); a
 * refused credential is counted (pending with Redis) and answered 401. */
static dec_step_t authenticate(dec_req_t *r)
{
    const cfg_t *c = r->cfg;
    const char *key = r->h.api_key, *authz = r->h.authorization, *reason = NULL;
    unsigned methods = r->route->auth_methods != 0 ? r->route->auth_methods
                                                   : CFG_METHOD_API_KEY | CFG_METHOD_JWT;
    bool bearer = authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0;
    dec_step_t st;

    if (r->route->auth == CFG_ROUTE_NONE || c->auth.mode == CFG_AUTH_NONE)
        return DEC_NEXT;
    if (dec_replaying(r))
        st = dec_replay_identity(r, methods, &reason);
    else if (explaining(r) && r->in.as_client != NULL)
        st = as_client(r, methods, &reason);
    else if (key != NULL && mode_has(c->auth.mode, CFG_AUTH_API_KEY) &&
             c->auth.api_key_enabled && (methods & CFG_METHOD_API_KEY))
        st = check_api_key(r, key, &reason);
    else if (bearer && mode_has(c->auth.mode, CFG_AUTH_JWT) &&
             c->auth.jwt_verifier != NULL && (methods & CFG_METHOD_JWT))
        st = verify_jwt(r, authz, &reason);
    else if ((key != NULL && !(methods & CFG_METHOD_API_KEY)) ||
             (bearer && !(methods & CFG_METHOD_JWT))) {
        st = DEC_ANSWERED;
        reason = "auth_method"; /* a credential this route does not take */
    } else if (r->route->tickets && ticket_param(r))
        return redeem_ticket(r);
    else if (r->route->auth == CFG_ROUTE_OPTIONAL)
        return DEC_NEXT;
    else {
        /* A token came but no key is configured to check it (development
         * only): no_key, not missing_credentials.  Not counted for lockout:
         * the client is not at fault. */
        reason = "missing_credentials";
        if (bearer && mode_has(c->auth.mode, CFG_AUTH_JWT) && (methods & CFG_METHOD_JWT))
            reason = "no_key";
        DEC_HOOK(r, auth_failure, reason);
        r->v.reason = reason;
        return unauthorized(r);
    }
    if (st != DEC_ANSWERED)
        return st;
    r->v.reason = reason;
    return count_failure(r);
}

/* The credential presented (the audit line's auth_method, explain's). */
static const char *authn_method(const dec_req_t *r)
{
    const char *authz = r->h.authorization;

    if (r->route->auth == CFG_ROUTE_NONE || r->cfg->auth.mode == CFG_AUTH_NONE)
        return "none"; /* whatever was sent, nothing was read */
    if (dec_replaying(r))
        return r->in.replay_as->method;
    return (explaining(r) && r->in.as_client != NULL) || r->h.api_key != NULL ? "api_key"
           : authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0           ? "jwt"
           : r->ticket[0] != '\0' || r->id.ticket                             ? "ticket"
                                                                              : "none";
}

/* What authentication did, for explain: the credential presented and the
 * outcome (a refusal's reason is the verdict's). */
static void explain_authn(dec_req_t *r, dec_step_t st)
{
    dec_explain_t *e = r->in.explain;

    if (st == DEC_PENDING)
        return; /* a JWKS fetch: the step runs again */
    e->authn_method = r->auth_method;
    if (st == DEC_ANSWERED)
        e->authn = r->v.reason;
    else if (r->id.kind != AUTH_KIND_NONE)
        e->authn = "ok";
    else if (r->route->auth == CFG_ROUTE_NONE || r->cfg->auth.mode == CFG_AUTH_NONE)
        e->authn = "not_required";
    else
        e->authn = "anonymous";
}

dec_step_t dec_step_authenticate(dec_req_t *r)
{
    dec_step_t st;

    r->ticket[0] = '\0'; /* scratch: set only by ticket_param */
    st = authenticate(r);
    r->auth_method = authn_method(r);
    if (explaining(r))
        explain_authn(r, st);
    return st;
}

/* Step 6: the route's scopes must all be the credential's. */
dec_step_t dec_step_authorize(dec_req_t *r)
{
    bool held = r->route->scopes.n == 0 ||
                auth_identity_has_scopes(&r->id, r->route->scopes.v, r->route->scopes.n);

    if (r->in.explain != NULL) {
        r->in.explain->authz_checked = true;
        r->in.explain->authz_ok = held;
    }
    if (!held) {
        r->v.reason = "insufficient_scope";
        return dec_verdict(r, 403, "forbidden", "insufficient scope");
    }
    return DEC_NEXT;
}
