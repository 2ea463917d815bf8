/* admin_revoc.c — the revocation endpoints of the admin API; see
 * srv_admin_revoc.h and docs/reference.md §4 *Revocations*.
 *
 * Writes (revoke, undo) go through srv_shared_revoke / srv_shared_unrevoke:
 * Redis first when there is one (the index, the channel every replica
 * applies, the per-token key), then this replica's set; each writes one
 * admin trail line.  Reads of one entry answer from this replica's set; the
 * listing reads Redis' index when there is one (bounded pages: ZRANGEBYSCORE
 * LIMIT for jtis, HSCAN for subjects), else this replica's set.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tollgate/util_str.h"
#include "tollgate/auth.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/auth_shared.h"
#include "tollgate/log.h"
#include "tollgate/rc.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_fmt.h"
#include "srv_admin_req.h"
#include "srv_admin_revoc.h"
#include "srv_process.h"
#include "srv_trail.h"

#define PREFIX "/admin/v1/revocations/"
#define SUBJECT_PREFIX "/admin/v1/revocations/subject/"

/* ---- answering ------------------------------------------------------------ */

static int64_t now_s(void)
{
    return util_wall_ms() / 1000;
}

static int64_t lifetime_of(srv_worker_t *w)
{
    return auth_revoke_lifetime(w->srv->revoked);
}

json_t *srv_revoc_subject_json(const char *iss, const char *sub, int64_t before,
                               int64_t lifetime)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "iss", iss ? json_string(iss) : json_null()) != 0 ||
        json_object_set_new(o, "sub", json_string(sub)) != 0 ||
        json_object_set_new(o, "before", json_integer(before)) != 0 ||
        json_object_set_new(o, "expires",
                            lifetime > 0 ? json_integer(before + lifetime) : json_null()) !=
            0 ||
        json_object_set_new(o, "scope", json_string(iss ? "issuer" : "all_issuers")) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A trail line's target.  A revocation's is the jti or sub, as it has
 * always been, with " iss=<iss>" for a scoped subject; an undo's names its
 * kind: "jti=<jti>" or "sub=<sub> iss=<iss>" ("*": every issuer).  Ids and
 * issuers are written with ' ', '%' and '*' escaped (target_part). */
/* Append `s` to out[0..len) at `o` (kept terminated; cut to fit), with ' ',
 * '%' and '*' written %20, %25, %2A when `esc`: an id or issuer holding
 * " iss=" or being "*" cannot pass for the parts target_of() joins.  The
 * new end. */
static size_t target_put(char *out, size_t len, size_t o, const char *s, bool esc)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        bool e = esc && (*s == ' ' || *s == '%' || *s == '*');

        if (o + (e ? 3 : 1) >= len)
            break;
        if (e) {
            out[o++] = '%';
            out[o++] = hex[(unsigned char)*s >> 4];
            out[o++] = hex[(unsigned char)*s & 15];
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return o;
}

static void target_of(bool undo, bool subject, const char *iss, const char *id, char *out,
                      size_t len)
{
    bool scoped = iss != NULL && *iss != '\0';
    size_t o = 0;

    if (len == 0)
        return;
    out[0] = '\0';
    if (undo)
        o = target_put(out, len, o, subject ? "sub=" : "jti=", false);
    o = target_put(out, len, o, id, true);
    if (subject && (scoped || undo)) {
        o = target_put(out, len, o, " iss=", false);
        (void)target_put(out, len, o, scoped ? iss : "*", scoped);
    }
}

/* ---- POST: revoke --------------------------------------------------------- */

/* The request body as a NUL-terminated copy (admin bodies are small:
 * the admin listener caps them at 64 KiB). */
static char *body_of(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *b;

    *len = evbuffer_get_length(in);
    b = malloc(*len + 1);
    if (b == NULL)
        return NULL;
    evbuffer_copyout(in, b, *len);
    b[*len] = '\0';
    return b;
}

/* The admin request waiting for Redis to store (or undo) a revocation. */
typedef struct revoke_wait {
    srv_worker_t *w;
    struct evhttp_request *req;
    bool subject;
    const char *action; /* revoke_jti | revoke_token | revoke_subject | unrevoke */
    int64_t lifetime;   /* subject revocations: as at the request */
    char actor[AUTH_ADMINTOK_ID_MAX + 1];
    char id[AUTH_REVOKE_MAX_ID + 1];
    char iss[AUTH_REVOKE_MAX_ID + 1]; /* "": every issuer */
} revoke_wait_t;

static const char *revoke_action(bool subject, srv_revoke_kind_t kind)
{
    return subject                    ? "revoke_subject"
           : kind == SRV_REVOKE_TOKEN ? "revoke_token"
                                      : "revoke_jti";
}

static void revoke_done(const char *err, int64_t when, void *privdata)
{
    revoke_wait_t *rw = privdata;
    bool redis = err != NULL && strstr(err, "redis") != NULL;
    char target[SRV_TRAIL_TARGET_MAX + 1];
    json_t *o;

    target_of(false, rw->subject, rw->iss, rw->id, target, sizeof target);
    srv_admin_trail_answer(rw->w, rw->req, rw->actor, rw->action, target,
                           err == NULL ? 200
                           : redis     ? 503
                                       : 400,
                           redis ? "unavailable" : "bad_request");
    if (err != NULL) {
        srv_admin_error(rw->req, redis ? 503 : 400, redis ? "unavailable" : "bad_request",
                        err);
    } else if (rw->subject) {
        log_info("revoked subject %s of %s (before %lld)", rw->id,
                 rw->iss[0] ? rw->iss : "every issuer", (long long)when);
        o = srv_revoc_subject_json(rw->iss[0] ? rw->iss : NULL, rw->id, when, rw->lifetime);
        if (o != NULL)
            json_object_set_new(o, "revoked", json_true());
        srv_admin_send_json(rw->req, 200, o);
    } else {
        log_info("revoked jti %s (until %lld)", rw->id, (long long)when);
        srv_admin_send_json(rw->req, 200,
                            json_pack("{s:s,s:I,s:b}", "jti", rw->id, "exp",
                                      (json_int_t)when, "revoked", 1));
    }
    free(rw);
}

/* {"token"}: its jti and exp into rq, or -1 with a message in err. */
static int token_jti(srv_worker_t *w, srv_revoke_req_t *rq, int64_t now, char *err,
                     size_t errlen)
{
    auth_identity_t id = {0};
    auth_jwt_status_t st = w->cfg->auth.jwt_verifier
                               ? auth_jwt_verify(w->cfg->auth.jwt_verifier, w->jwt_local,
                                                 rq->token, strlen(rq->token), now, &id)
                               : AUTH_JWT_BAD_ALG;

    if (st == AUTH_JWT_OK && id.jti == NULL)
        snprintf(err, errlen, "the token has no jti: revoke its subject instead");
    else if (st != AUTH_JWT_OK)
        snprintf(err, errlen, "the token does not verify (%s)", auth_jwt_status_str(st));
    else
        snprintf(rq->id, sizeof(rq->id), "%s", id.jti);
    rq->when = id.exp < SRV_ADMIN_MAX_TIME ? id.exp : SRV_ADMIN_MAX_TIME;
    auth_identity_clear(&id);
    return st == AUTH_JWT_OK && rq->id[0] != '\0' ? 0 : -1;
}

/* Refuse (400, trailed) a request that changes nothing. */
static void refuse(srv_worker_t *w, struct evhttp_request *req, const char *action,
                   const char *target, int status, const char *code, const char *msg)
{
    srv_admin_trail_answer(w, req, srv_admin_actor(), action, target, status, code);
    srv_admin_error(req, status, code, msg);
}

/* POST /admin/v1/revocations and /admin/v1/revocations/subject. */
static void revoke(srv_worker_t *w, struct evhttp_request *req, bool subject)
{
    srv_revoke_req_t rq;
    char err[256];
    size_t len;
    char *body = body_of(req, &len);
    int64_t now = now_s(), lifetime = lifetime_of(w);
    revoke_wait_t *rw;
    const char *meant;
    int rc;

    rc = body ? srv_admin_parse_revoke(body, len, subject, &rq, err, sizeof(err)) : -1;
    free(body);
    if (rc != 0) {
        refuse(w, req, revoke_action(subject, SRV_REVOKE_JTI), NULL, body ? 400 : 500,
               body ? "bad_request" : "error", body ? err : "out of memory");
        return;
    }
    if (rq.kind == SRV_REVOKE_TOKEN && token_jti(w, &rq, now, err, sizeof err) != 0) {
        srv_revoke_req_clear(&rq);
        refuse(w, req, "revoke_token", NULL, 400, "bad_request", err);
        return;
    }
    if (rq.kind == SRV_REVOKE_SUBJECT && rq.iss[0] != '\0' &&
        (meant = auth_jwt_issuer_near_miss(w->cfg->auth.jwt_verifier, rq.iss)) != NULL) {
        /* issuers compare exactly: this one would match no token */
        snprintf(
            err, sizeof err,
            "no JWT provider takes iss as written; the configured issuer is \"%.120s\" "
            "(exactly: case and trailing slash count)",
            meant);
        srv_revoke_req_clear(&rq);
        refuse(w, req, "revoke_subject", NULL, 400, "bad_request", err);
        return;
    }
    if (rq.kind == SRV_REVOKE_SUBJECT && rq.when == 0)
        rq.when = now + 1; /* every token issued up to now */
    if (rq.kind == SRV_REVOKE_SUBJECT && lifetime > 0 && rq.when + lifetime <= now) {
        srv_revoke_req_clear(&rq);
        refuse(w, req, "revoke_subject", NULL, 400, "bad_request",
               "\"before\" is more than auth.revocation.max_token_lifetime ago: "
               "no token it could match is still valid");
        return;
    }
    rw = calloc(1, sizeof(*rw));
    if (rw == NULL) {
        srv_revoke_req_clear(&rq);
        refuse(w, req, revoke_action(subject, rq.kind), NULL, 500, "error",
               "out of memory");
        return;
    }
    *rw = (revoke_wait_t){.w = w,
                          .req = req,
                          .subject = subject,
                          .action = revoke_action(subject, rq.kind),
                          .lifetime = lifetime};
    snprintf(rw->actor, sizeof rw->actor, "%s", srv_admin_actor());
    snprintf(rw->id, sizeof(rw->id), "%s", rq.id);
    snprintf(rw->iss, sizeof(rw->iss), "%s", rq.iss);
    if (srv_shared_revoke(w->srv, rq.kind, rq.iss[0] ? rq.iss : NULL, rq.id, rq.when,
                          revoke_done, rw) != 0) {
        char target[SRV_TRAIL_TARGET_MAX + 1];

        target_of(false, subject, rw->iss, rw->id, target, sizeof target);
        srv_admin_trail_answer(w, req, rw->actor, rw->action, target, 503, "unavailable");
        free(rw);
        srv_admin_error(req, 503, "unavailable", "redis unavailable: nothing was revoked");
    }
    srv_revoke_req_clear(&rq);
}

void srv_admin_revoke_jti(srv_worker_t *w, struct evhttp_request *req)
{
    revoke(w, req, false);
}

void srv_admin_revoke_subject(srv_worker_t *w, struct evhttp_request *req)
{
    revoke(w, req, true);
}

/* ---- the path's id and the query's iss ----------------------------------- */

/* The id after `prefix` in the request's path, URL-decoded into out: a jti
 * or sub of 1..256 printable bytes.  A raw '/' is refused: a jti holding
 * one is written %2F, so "subject/erin" is never a jti.  0 or -1 with err. */
static int path_id(struct evhttp_request *req, const char *prefix, char *out, size_t outlen,
                   char *err, size_t errlen)
{
    const char *what = strcmp(prefix, SUBJECT_PREFIX) == 0 ? "sub" : "jti";
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const char *raw = path + strlen(prefix);
    size_t n;
    char *id;

    if (strchr(raw, '/') != NULL) {
        snprintf(err, errlen, "bad %s: a '/' in it must be written %%2F", what);
        return -1;
    }
    id = evhttp_uridecode(raw, 0, &n);
    if (id == NULL || n == 0 || n > AUTH_REVOKE_MAX_ID || n >= outlen ||
        memchr(id, '\0', n) != NULL) {
        free(id);
        snprintf(err, errlen, "bad %s", what);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
            free(id);
            snprintf(err, errlen, "bad %s", what);
            return -1;
        }
    memcpy(out, id, n + 1);
    free(id);
    return 0;
}

/* The query's `iss` (optional; nothing else is accepted) into out ("" when
 * absent).  0 or -1 with err. */
static int query_iss(struct evhttp_request *req, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    struct evkeyval *p;
    int rc = 0, seen = 0;

    out[0] = '\0';
    if (q == NULL || *q == '\0')
        return 0;
    TAILQ_INIT(&kv);
    if (evhttp_parse_query_str(q, &kv) != 0) {
        snprintf(err, errlen, "bad query string");
        return -1;
    }
    TAILQ_FOREACH(p, &kv, next)
    {
        size_t n = strlen(p->value), i;

        if (strcmp(p->key, "iss") != 0 || seen++ > 0 || n == 0 || n >= outlen ||
            n > AUTH_REVOKE_MAX_ID) {
            snprintf(err, errlen, "the query takes one iss of 1..256 bytes, nothing else");
            rc = -1;
            break;
        }
        for (i = 0; i < n && (unsigned char)p->value[i] >= 0x20 && p->value[i] != 0x7f; i++)
            ;
        if (i < n) {
            snprintf(err, errlen, "iss must not hold control characters");
            rc = -1;
            break;
        }
        memcpy(out, p->value, n + 1);
    }
    evhttp_clear_headers(&kv);
    return rc;
}

/* ---- GET one -------------------------------------------------------------- */

void srv_admin_revocation_get(srv_worker_t *w, struct evhttp_request *req)
{
    char id[AUTH_REVOKE_MAX_ID + 1], err[128];
    int64_t exp = 0;
    bool revoked;

    if (path_id(req, PREFIX, id, sizeof id, err, sizeof err) != 0) {
        srv_admin_error(req, 400, "bad_request", err);
        return;
    }
    revoked = auth_revoke_get(w->srv->revoked, id, now_s(), &exp);
    srv_admin_send_json(
        req, 200,
        revoked
            ? json_pack("{s:s,s:b,s:I}", "jti", id, "revoked", 1, "exp", (json_int_t)exp)
            : json_pack("{s:s,s:b,s:n}", "jti", id, "revoked", 0, "exp"));
}

/* GET /admin/v1/revocations/subject/{sub}?iss=: does a subject revocation
 * apply to sub's tokens (of issuer iss)?  The every-issuer entry, and with
 * iss the one of that issuer, from this replica's set. */
void srv_admin_revocation_subject_get(srv_worker_t *w, struct evhttp_request *req)
{
    char sub[AUTH_REVOKE_MAX_ID + 1], iss[AUTH_REVOKE_MAX_ID + 1], err[128];
    int64_t before = 0, now = now_s(), lifetime = lifetime_of(w);
    json_t *list = json_array(), *o;

    if (path_id(req, SUBJECT_PREFIX, sub, sizeof sub, err, sizeof err) != 0 ||
        query_iss(req, iss, sizeof iss, err, sizeof err) != 0) {
        json_decref(list);
        srv_admin_error(req, 400, "bad_request", err);
        return;
    }
    if (list != NULL && auth_revoke_subject_get(w->srv->revoked, NULL, sub, now, &before))
        json_array_append_new(list, srv_revoc_subject_json(NULL, sub, before, lifetime));
    if (list != NULL && iss[0] != '\0' &&
        auth_revoke_subject_get(w->srv->revoked, iss, sub, now, &before))
        json_array_append_new(list, srv_revoc_subject_json(iss, sub, before, lifetime));
    o = list ? json_pack("{s:s,s:s?,s:b,s:O}", "sub", sub, "iss", iss[0] ? iss : NULL,
                         "revoked", json_array_size(list) > 0, "revocations", list)
             : NULL;
    json_decref(list);
    srv_admin_send_json(req, 200, o);
}

/* ---- DELETE: undo --------------------------------------------------------- */

static void unrevoke_done(const char *err, int64_t when, void *privdata)
{
    revoke_wait_t *rw = privdata;
    char target[SRV_TRAIL_TARGET_MAX + 1];
    int status = err != NULL ? 503 : when == 0 ? 404 : 200;
    const char *code = status == 503 ? "unavailable" : "not_found";

    target_of(true, rw->subject, rw->iss, rw->id, target, sizeof target);
    srv_admin_trail_answer(rw->w, rw->req, rw->actor, "unrevoke", target, status, code);
    if (status == 200) {
        metrics_revocation_undone();
        log_info("admin %s undid the revocation of %s", rw->actor, target);
    }
    if (status == 503)
        srv_admin_error(rw->req, 503, "unavailable", err);
    else if (status == 404)
        srv_admin_error(rw->req, 404, "not_found", "no such revocation");
    else if (rw->subject)
        srv_admin_send_json(rw->req, 200,
                            json_pack("{s:s,s:s?,s:I,s:b}", "sub", rw->id, "iss",
                                      rw->iss[0] ? rw->iss : NULL, "before",
                                      (json_int_t)when, "undone", 1));
    else
        srv_admin_send_json(rw->req, 200,
                            json_pack("{s:s,s:I,s:b}", "jti", rw->id, "exp",
                                      (json_int_t)when, "undone", 1));
    free(rw);
}

static void unrevoke(srv_worker_t *w, struct evhttp_request *req, bool subject)
{
    char err[128];
    revoke_wait_t *rw = calloc(1, sizeof(*rw));

    if (rw == NULL) {
        refuse(w, req, "unrevoke", NULL, 500, "error", "out of memory");
        return;
    }
    *rw = (revoke_wait_t){.w = w, .req = req, .subject = subject, .action = "unrevoke"};
    snprintf(rw->actor, sizeof rw->actor, "%s", srv_admin_actor());
    if (path_id(req, subject ? SUBJECT_PREFIX : PREFIX, rw->id, sizeof rw->id, err,
                sizeof err) != 0 ||
        (subject && query_iss(req, rw->iss, sizeof rw->iss, err, sizeof err) != 0)) {
        free(rw);
        refuse(w, req, "unrevoke", NULL, 400, "bad_request", err);
        return;
    }
    if (srv_shared_unrevoke(w->srv, subject, rw->iss[0] ? rw->iss : NULL, rw->id,
                            unrevoke_done, rw) != 0) {
        char target[SRV_TRAIL_TARGET_MAX + 1];

        target_of(true, subject, rw->iss, rw->id, target, sizeof target);
        srv_admin_trail_answer(w, req, rw->actor, "unrevoke", target, 503, "unavailable");
        free(rw);
        srv_admin_error(req, 503, "unavailable", "redis unavailable: nothing was undone");
    }
}

void srv_admin_unrevoke_jti(srv_worker_t *w, struct evhttp_request *req)
{
    unrevoke(w, req, false);
}

void srv_admin_unrevoke_subject(srv_worker_t *w, struct evhttp_request *req)
{
    unrevoke(w, req, true);
}

/* ---- the listing: query and cursor --------------------------------------- */

/* "<a>.<b>" of two u64s. */
static int pair_of(const char *s, uint64_t *a, uint64_t *b)
{
    const char *dot = strchr(s, '.');

    return dot != NULL && util_parse_u64(s, (size_t)(dot - s), a) == 0 &&
                   util_parse_u64(dot + 1, strlen(dot + 1), b) == 0
               ? 0
               : -1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An id of 1..256 (iss: 0..256) printable bytes at s[0..n) into out. */
static int id_of(const char *s, size_t n, bool may_be_empty, char *out)
{
    if ((n == 0 && !may_be_empty) || n > AUTH_REVOKE_MAX_ID)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* "m" + hex of "<t>:<0|1>:<iss>\x1f<id>" back into c->after. */
static int mem_cursor(const char *hex, srv_revoc_cursor_t *c)
{
    char buf[SRV_REVOC_CURSOR_MAX / 2 + 1], *p, *q, *sep;
    size_t n = strlen(hex), len = n / 2;
    uint64_t t;

    if (n == 0 || n % 2 != 0 || len >= sizeof buf)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -1;
        buf[i] = (char)(hi * 16 + lo);
    }
    buf[len] = '\0';
    if ((p = strchr(buf, ':')) == NULL || util_parse_u64(buf, (size_t)(p - buf), &t) != 0 ||
        t > SRV_ADMIN_MAX_TIME || (p[1] != '0' && p[1] != '1') || p[2] != ':')
        return -1;
    q = p + 3;
    if ((sep = strchr(q, AUTH_SHARED_SEP)) == NULL ||
        id_of(q, (size_t)(sep - q), p[1] == '0', c->after.iss) != 0 ||
        id_of(sep + 1, strlen(sep + 1), false, c->after.id) != 0 ||
        (p[1] == '1') != (c->after.iss[0] != '\0'))
        return -1;
    c->after.t = (int64_t)t;
    c->after.scoped = p[1] == '1';
    return 0;
}

static int parse_cursor(const char *s, srv_revoc_cursor_t *c)
{
    uint64_t a, b;

    memset(c, 0, sizeof(*c));
    if (s == NULL)
        return 0;
    if (strlen(s) >= SRV_REVOC_CURSOR_MAX)
        return -1;
    switch (s[0]) {
    case 'm':
        c->type = 'm';
        return mem_cursor(s + 1, c);
    case 'j':
        if (pair_of(s + 1, &a, &b) != 0 || a > SRV_ADMIN_MAX_TIME || b > 1000000000)
            return -1;
        *c = (srv_revoc_cursor_t){.type = 'j', .exp = (int64_t)a, .skip = b};
        return 0;
    case 's':
    case 'i':
        if (pair_of(s + 1, &a, &b) != 0 || b > 1000000000)
            return -1;
        *c = (srv_revoc_cursor_t){.type = s[0], .scan = a, .skip = b};
        return 0;
    default:
        return -1;
    }
}

int srv_revoc_parse_query(const char *kind, const char *cursor, const char *limit,
                          bool *subject, srv_revoc_cursor_t *cur, unsigned *count,
                          char *err, size_t errlen)
{
    uint64_t n = SRV_REVOC_PAGE_DEFAULT;

    if (kind == NULL || (strcmp(kind, "jti") != 0 && strcmp(kind, "subject") != 0)) {
        snprintf(err, errlen, "kind must be jti or subject");
        return -1;
    }
    *subject = strcmp(kind, "subject") == 0;
    if (limit != NULL && (util_parse_u64(limit, strlen(limit), &n) != 0 || n == 0 ||
                          n > SRV_REVOC_PAGE_MAX)) {
        snprintf(err, errlen, "limit must be an integer from 1 to %d", SRV_REVOC_PAGE_MAX);
        return -1;
    }
    if (parse_cursor(cursor, cur) != 0 || (cur->type == 'j' && *subject) ||
        ((cur->type == 's' || cur->type == 'i') && !*subject) ||
        (cur->type == 'm' && cur->after.scoped && !*subject)) {
        snprintf(err, errlen, "bad cursor: give the `next` of the previous page");
        return -1;
    }
    *count = (unsigned)n;
    return 0;
}

int srv_revoc_cursor_str(const srv_revoc_cursor_t *c, char *out, size_t outlen)
{
    char plain[SRV_REVOC_CURSOR_MAX / 2];
    int n;
    size_t i, len;

    switch (c->type) {
    case 'j':
        n = snprintf(out, outlen, "j%" PRId64 ".%" PRIu64, c->exp, c->skip);
        break;
    case 's':
    case 'i':
        n = snprintf(out, outlen, "%c%" PRIu64 ".%" PRIu64, c->type, c->scan, c->skip);
        break;
    case 'm':
        n = snprintf(plain, sizeof plain, "%" PRId64 ":%d:%s%c%s", c->after.t,
                     c->after.scoped ? 1 : 0, c->after.iss, AUTH_SHARED_SEP, c->after.id);
        if (n < 0 || (size_t)n >= sizeof plain || outlen < 2 * (size_t)n + 2)
            return -1;
        len = (size_t)n;
        out[0] = 'm';
        for (i = 0; i < len; i++)
            snprintf(out + 1 + 2 * i, 3, "%02x", (unsigned char)plain[i]);
        return 0;
    default:
        n = snprintf(out, outlen, "%s", "");
        break;
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---- the listing: Redis' replies ----------------------------------------- */

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A Redis string that is a valid id into out; false otherwise. */
static bool rep_id(const redisReply *r, char *out)
{
    return is_str(r) && memchr(r->str, '\0', r->len) == NULL &&
           id_of(r->str, r->len, false, out) == 0;
}

/* A Redis integer as a string ("123"; a score) within 1..SRV_ADMIN_MAX_TIME. */
static bool rep_time(const redisReply *r, int64_t *out)
{
    uint64_t v;

    if (!is_str(r) || util_parse_u64(r->str, r->len, &v) != 0 || v == 0 ||
        v > SRV_ADMIN_MAX_TIME)
        return false;
    *out = (int64_t)v;
    return true;
}

json_t *srv_revoc_jti_entries(const redisReply *rep, const srv_revoc_cursor_t *cur,
                              size_t max, char *next, size_t nextlen, char *err,
                              size_t errlen)
{
    json_t *a;
    int64_t last = 0, exp;
    uint64_t same = 0;
    char id[AUTH_REVOKE_MAX_ID + 1];
    size_t pairs;

    next[0] = '\0';
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0) {
        snprintf(err, errlen, "not an array of pairs");
        return NULL;
    }
    pairs = rep->elements / 2;
    if ((a = json_array()) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < pairs && i < max; i++) {
        if (!rep_time(rep->element[2 * i + 1], &exp)) {
            json_decref(a);
            snprintf(err, errlen, "a score is not a time");
            return NULL;
        }
        same = exp == last ? same + 1 : 1;
        last = exp;
        if (rep_id(rep->element[2 * i], id))
            json_array_append_new(
                a, json_pack("{s:s,s:I}", "jti", id, "exp", (json_int_t)exp));
    }
    if (pairs >= max && max > 0) {
        srv_revoc_cursor_t n = {.type = 'j', .exp = last, .skip = same};

        if (cur->type == 'j' && cur->exp == last)
            n.skip += cur->skip;
        if (srv_revoc_cursor_str(&n, next, nextlen) != 0)
            next[0] = '\0';
    }
    return a;
}

json_t *srv_revoc_subject_entries(const redisReply *rep, const srv_revoc_cursor_t *cur,
                                  size_t max, int64_t lifetime, int64_t now, char *next,
                                  size_t nextlen, char *err, size_t errlen)
{
    const redisReply *batch;
    char key[2 * AUTH_REVOKE_MAX_ID + 2], sub[AUTH_REVOKE_MAX_ID + 1];
    char iss[AUTH_REVOKE_MAX_ID + 1];
    bool scoped = cur->type == 'i';
    uint64_t scan, i, pairs;
    srv_revoc_cursor_t n = {.type = scoped ? 'i' : 's'};
    int64_t before;
    json_t *a;

    next[0] = '\0';
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        !is_str(rep->element[0]) ||
        util_parse_u64(rep->element[0]->str, rep->element[0]->len, &scan) != 0 ||
        (batch = rep->element[1])->type != REDIS_REPLY_ARRAY || batch->elements % 2 != 0) {
        snprintf(err, errlen, "not [cursor, [field, value, ...]]");
        return NULL;
    }
    if ((a = json_array()) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pairs = batch->elements / 2;
    for (i = cur->skip; i < pairs && i < cur->skip + max; i++) {
        const redisReply *f = batch->element[2 * i];
        char *sep;

        if (!rep_time(batch->element[2 * i + 1], &before) ||
            (lifetime > 0 && before + lifetime <= now) || !is_str(f) ||
            f->len >= sizeof key || memchr(f->str, '\0', f->len) != NULL)
            continue;
        memcpy(key, f->str, f->len);
        key[f->len] = '\0';
        sep = scoped ? strchr(key, AUTH_SHARED_SEP) : NULL;
        if (scoped && (sep == NULL || id_of(key, (size_t)(sep - key), false, iss) != 0 ||
                       id_of(sep + 1, strlen(sep + 1), false, sub) != 0))
            continue;
        if (!scoped && id_of(key, f->len, false, sub) != 0)
            continue;
        json_array_append_new(
            a, srv_revoc_subject_json(scoped ? iss : NULL, sub, before, lifetime));
    }
    if (i < pairs) { /* the rest of this batch */
        n.scan = cur->scan;
        n.skip = i;
    } else if (scan != 0) {
        n.scan = scan;
    } else if (!scoped) {
        n.type = 'i'; /* then the one-issuer hash, from its start */
    } else {
        return a;
    }
    if (srv_revoc_cursor_str(&n, next, nextlen) != 0)
        next[0] = '\0';
    return a;
}

/* ---- the listing: the handler -------------------------------------------- */

typedef struct list_page {
    srv_worker_t *w;
    struct evhttp_request *req;
    bool subject;
    srv_revoc_cursor_t cur;
    unsigned count;
    int64_t lifetime, now;
} list_page_t;

static void send_page(struct evhttp_request *req, bool subject, json_t *entries,
                      const char *next, const char *source)
{
    srv_admin_send_json(req, 200,
                        entries ? json_pack("{s:s,s:o,s:s?,s:s}", "kind",
                                            subject ? "subject" : "jti", "entries", entries,
                                            "next", next && *next ? next : NULL, "source",
                                            source)
                                : NULL);
}

static void on_page(rc_client_t *c, redisReply *rep, const char *errstr, void *privdata)
{
    list_page_t *lp = privdata;
    char next[SRV_REVOC_CURSOR_MAX], err[128];
    json_t *entries;

    (void)c;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        log_warn("admin revocations: redis: %s", rep      ? "error reply"
                                                 : errstr ? errstr
                                                          : "no reply");
        srv_admin_error(lp->req, 503, "unavailable", "redis unavailable");
        goto out_free;
    }
    entries = lp->subject
                  ? srv_revoc_subject_entries(rep, &lp->cur, lp->count, lp->lifetime,
                                              lp->now, next, sizeof next, err, sizeof err)
                  : srv_revoc_jti_entries(rep, &lp->cur, lp->count, next, sizeof next, err,
                                          sizeof err);
    if (entries == NULL) {
        log_warn("admin revocations: %s", err);
        srv_admin_error(lp->req, 502, "bad_gateway",
                        "the revocation index's reply is malformed");
        goto out_free;
    }
    send_page(lp->req, lp->subject, entries, next, "redis");
out_free:
    free(lp);
}

/* Ask Redis for the page `lp` describes; -1: not sent. */
static int redis_page(list_page_t *lp)
{
    const auth_shared_t *sh = &lp->w->srv->shared;
    char a[3][24];
    const char *key;

    if (!lp->subject) {
        key = sh->revlog_j;
        if (lp->cur.type == 'j' && lp->cur.exp > lp->now) {
            snprintf(a[0], sizeof a[0], "%" PRId64, lp->cur.exp);
        } else { /* the first page, or one whose exp has passed: from now */
            snprintf(a[0], sizeof a[0], "(%" PRId64, lp->now);
            lp->cur = (srv_revoc_cursor_t){0};
        }
        snprintf(a[1], sizeof a[1], "%" PRIu64, lp->cur.skip);
        snprintf(a[2], sizeof a[2], "%u", lp->count);
        const char *argv[] = {"ZRANGEBYSCORE", key,     a[0], "+inf",
                              "WITHSCORES",    "LIMIT", a[1], a[2]};
        return rc_command_argv(lp->w->srv->admin.rc, key, strlen(key), 8, argv, NULL,
                               on_page, lp) == NULL
                   ? -1
                   : 0;
    }
    if (lp->cur.type == 0)
        lp->cur.type = 's';
    key = lp->cur.type == 'i' ? sh->revlog_si : sh->revlog_s;
    snprintf(a[0], sizeof a[0], "%" PRIu64, lp->cur.scan);
    snprintf(a[1], sizeof a[1], "%u", lp->count);
    const char *argv[] = {"HSCAN", key, a[0], "COUNT", a[1]};
    return rc_command_argv(lp->w->srv->admin.rc, key, strlen(key), 5, argv, NULL, on_page,
                           lp) == NULL
               ? -1
               : 0;
}

/* This replica's set, without Redis. */
static void memory_page(list_page_t *lp)
{
    auth_revoke_item_t *items = calloc(lp->count, sizeof(*items));
    char next[SRV_REVOC_CURSOR_MAX] = "";
    json_t *a = json_array();
    size_t n, i;

    n = items && a ? auth_revoke_list(lp->w->srv->revoked,
                                      lp->subject ? AUTH_REVOKE_SUBJECT : AUTH_REVOKE_JTI,
                                      lp->cur.type == 'm' ? &lp->cur.after : NULL, items,
                                      lp->count, lp->now)
                   : 0;
    for (i = 0; a != NULL && i < n; i++)
        json_array_append_new(
            a, lp->subject ? srv_revoc_subject_json(items[i].scoped ? items[i].iss : NULL,
                                                    items[i].id, items[i].t, lp->lifetime)
                           : json_pack("{s:s,s:I}", "jti", items[i].id, "exp",
                                       (json_int_t)items[i].t));
    if (n == lp->count && n > 0) {
        srv_revoc_cursor_t c = {.type = 'm', .after = items[n - 1]};

        if (srv_revoc_cursor_str(&c, next, sizeof next) != 0)
            next[0] = '\0';
    }
    free(items);
    if (a == NULL) {
        srv_admin_error(lp->req, 500, "error", "out of memory");
        return;
    }
    send_page(lp->req, lp->subject, a, next, "memory");
}

/* kind, cursor and limit, each at most once; nothing else. */
static int list_query(struct evhttp_request *req, list_page_t *lp, char *err, size_t errlen)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    const char *names[] = {"kind", "cursor", "limit"}, *vals[3] = {NULL, NULL, NULL};
    struct evkeyvalq kv;
    struct evkeyval *p;
    int rc = 0;

    TAILQ_INIT(&kv);
    if (q != NULL && evhttp_parse_query_str(q, &kv) != 0) {
        snprintf(err, errlen, "bad query string");
        return -1;
    }
    TAILQ_FOREACH(p, &kv, next)
    {
        size_t i;

        for (i = 0; i < 3 && strcmp(p->key, names[i]) != 0; i++)
            ;
        if (i == 3 || vals[i] != NULL) {
            snprintf(err, errlen, "kind, cursor and limit only, each at most once");
            rc = -1;
            break;
        }
        vals[i] = p->value;
    }
    if (rc == 0)
        rc = srv_revoc_parse_query(vals[0], vals[1], vals[2], &lp->subject, &lp->cur,
                                   &lp->count, err, errlen);
    evhttp_clear_headers(&kv);
    return rc;
}

void srv_admin_revocations_list(srv_worker_t *w, struct evhttp_request *req)
{
    list_page_t *lp = calloc(1, sizeof(*lp));
    char err[160];
    bool redis = w->srv->admin.rc != NULL;

    if (lp == NULL) {
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    *lp = (list_page_t){.w = w, .req = req, .lifetime = lifetime_of(w), .now = now_s()};
    if (list_query(req, lp, err, sizeof err) != 0) {
        free(lp);
        srv_admin_error(req, 400, "bad_request", err);
        return;
    }
    if ((lp->cur.type == 'm') == redis && lp->cur.type != 0) {
        free(lp);
        srv_admin_error(req, 400, "bad_request",
                        "bad cursor: it is from a listing of another store; start again");
        return;
    }
    if (!redis) {
        memory_page(lp);
        free(lp);
        return;
    }
    if (redis_page(lp) != 0) {
        free(lp);
        srv_admin_error(req, 503, "unavailable", "redis unavailable");
    }
}
