/* admin_bans.c — bans and lockouts in the admin API (srv_admin_bans.h).
 *
 * Bans are listed from this replica's set: with Redis it is the fleet's
 * index (every change arrives on the bans channel, and the resync makes it
 * equal to the index), without Redis it is the state.  Lockouts are listed
 * from the fleet's index <prefix>{lockouts} with each one's failures and
 * level read from its own key, or without Redis from this replica's store.
 * Every write is trailed once (actions ban, unban, unlock).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tollgate/auth_ban.h"
#include "tollgate/auth_shared.h"
#include "tollgate/http.h"
#include "tollgate/log.h"
#include "tollgate/metrics.h"
#include "tollgate/rc.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_str.h"
#include "srv_admin_bans.h"
#include "srv_process.h"
#include "srv_trail.h"

#define LOCKOUT_SCAN_MAX 10000 /* index entries read for one page */

/* ---- the body --------------------------------------------------------- */

/* "90", "90s", "15m", "1h", "7d" (or a JSON integer, as seconds) in ms;
 * -1 when not one of those or out of 1 s .. 30 d. */
static int64_t duration_of(const json_t *d)
{
    const char *s, *p;
    int64_t v = 0, unit = 1000;

    if (json_is_integer(d)) {
        v = json_integer_value(d);
        return v >= 1 && v <= AUTH_BAN_MAX_MS / 1000 ? v * 1000 : -1;
    }
    if (!json_is_string(d))
        return -1;
    s = json_string_value(d);
    for (p = s; *p >= '0' && *p <= '9' && p - s < 9; p++)
        v = v * 10 + (*p - '0');
    if (p == s || json_string_length(d) != (size_t)(p - s) + (*p != '\0'))
        return -1;
    switch (*p) {
    case '\0':
    case 's':
        break;
    case 'm':
        unit = 60 * 1000;
        break;
    case 'h':
        unit = 3600 * 1000;
        break;
    case 'd':
        unit = 86400 * 1000;
        break;
    default:
        return -1;
    }
    v *= unit;
    return v >= AUTH_BAN_MIN_MS && v <= AUTH_BAN_MAX_MS ? v : -1;
}

int srv_admin_parse_ban(const char *body, size_t len, const auth_ban_rules_t *rules,
                        srv_ban_req_t *out, char *err, size_t errlen)
{
    json_t *o, *v;
    json_error_t je;
    const char *k;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (len > SRV_BANS_MAX_BODY) {
        snprintf(err, errlen, "body over %d bytes", SRV_BANS_MAX_BODY);
        return -1;
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "body must be a JSON object");
        goto out;
    }
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "target") != 0 && strcmp(k, "duration") != 0 &&
            strcmp(k, "reason") != 0) {
            snprintf(err, errlen, "unknown member (target, duration and reason are known)");
            goto out;
        }
    }
    v = json_object_get(o, "target");
    if (!json_is_string(v)) {
        snprintf(err, errlen, "target must be a string");
        goto out;
    }
    if (auth_ban_target_parse(json_string_value(v), json_string_length(v), rules,
                              out->target, sizeof out->target, &out->kind, err,
                              errlen) != 0)
        goto out;
    out->duration_ms = duration_of(json_object_get(o, "duration"));
    if (out->duration_ms < 0) {
        snprintf(err, errlen,
                 "duration must be seconds (1 to 2592000) or \"90s\", \"15m\", "
                 "\"1h\", \"7d\" (at most 30d)");
        goto out;
    }
    v = json_object_get(o, "reason");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > AUTH_BAN_REASON_MAX) {
            snprintf(err, errlen, "reason must be a string of at most %d bytes",
                     AUTH_BAN_REASON_MAX);
            goto out;
        }
        auth_ban_reason_clean(json_string_value(v), json_string_length(v), out->reason,
                              sizeof out->reason);
    }
    rc = 0;
out:
    json_decref(o);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- answers ---------------------------------------------------------- */

/* Answer and trail a refusal of a write. */
static void refuse(srv_worker_t *w, struct evhttp_request *req, const char *actor,
                   const char *action, const char *target, int status, const char *code,
                   const char *msg)
{
    srv_admin_trail_answer(w, req, actor, action, target, status, code);
    srv_admin_error(req, status, code, msg);
}

static const rc_ops_t *ops_of(const srv_t *s)
{
    return s->admin.rc != NULL ? &rc_client_ops : NULL;
}

static const char *source_of(const srv_t *s)
{
    return s->admin.rc != NULL ? "redis" : "memory";
}

static json_t *ban_json(const auth_ban_entry_t *e)
{
    return json_pack("{s:s,s:I,s:I,s:s,s:s}", "target", e->target, "until_ms",
                     (json_int_t)e->until_ms, "created_ms", (json_int_t)e->created_ms,
                     "actor", e->actor, "reason", e->reason);
}

/* The part of the path after `prefix`, percent-decoded; NULL when empty,
 * undecodable, over `max` bytes or holding a NUL (%00: the text before it
 * would name another target than the path). */
static char *path_rest(struct evhttp_request *req, const char *prefix, size_t max)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    size_t len = 0;
    char *rest;

    if (path == NULL || strncmp(path, prefix, strlen(prefix)) != 0)
        return NULL;
    rest = evhttp_uridecode(path + strlen(prefix), 0, &len);
    if (rest != NULL && (rest[0] == '\0' || len > max || strlen(rest) != len)) {
        free(rest);
        return NULL;
    }
    return rest;
}

/* ?cursor=&limit= into `cursor` (may stay "") and *limit.  0 or -1 (answered). */
static int page_query(struct evhttp_request *req, char *cursor, size_t cursorlen,
                      size_t *limit)
{
    struct evkeyvalq q;
    const char *uri = evhttp_request_get_uri(req), *qs = strchr(uri, '?'), *c, *l;
    char *end;
    long n = SRV_BANS_PAGE_DEFAULT;
    int rc = -1;

    TAILQ_INIT(&q);
    if (qs != NULL && evhttp_parse_query_str(qs + 1, &q) != 0) {
        srv_admin_error(req, 400, "bad_request", "bad query string");
        goto out;
    }
    l = evhttp_find_header(&q, "limit");
    if (l != NULL) {
        n = strtol(l, &end, 10);
        if (*l < '0' || *l > '9' || *end != '\0' || n < 1 || n > SRV_BANS_PAGE_MAX) {
            srv_admin_error(req, 400, "bad_request",
                            "limit must be an integer from 1 to 1000");
            goto out;
        }
    }
    c = evhttp_find_header(&q, "cursor");
    if (c != NULL && strlen(c) >= cursorlen) {
        srv_admin_error(req, 400, "bad_request", "bad cursor");
        goto out;
    }
    snprintf(cursor, cursorlen, "%s", c != NULL ? c : "");
    *limit = (size_t)n;
    rc = 0;
out:
    evhttp_clear_headers(&q);
    return rc;
}

/* ---- bans ------------------------------------------------------------- */

typedef struct ban_wait {
    srv_worker_t *w;
    struct evhttp_request *req;
    bool unban;
    char actor[AUTH_BAN_ACTOR_MAX + 1];
    char target[AUTH_BAN_TARGET_MAX + 1];
} ban_wait_t;

static void ban_done(auth_shared_result_t res, const auth_ban_entry_t *e, void *privdata)
{
    ban_wait_t *bw = privdata;
    const char *action = bw->unban ? "unban" : "ban";

    switch (res) {
    case AUTH_SHARED_DONE:
        srv_admin_trail_answer(bw->w, bw->req, bw->actor, action, bw->target, 200, NULL);
        log_info("admin: %s %s by %s", action, bw->target, bw->actor);
        srv_admin_send_json(
            bw->req, 200,
            e != NULL ? json_pack("{s:o,s:b}", "ban", ban_json(e), "banned", 1)
                      : json_pack("{s:s,s:b}", "target", bw->target, "unbanned", 1));
        break;
    case AUTH_SHARED_NONE:
        refuse(bw->w, bw->req, bw->actor, action, bw->target, 404, "not_found",
               "no such ban");
        break;
    case AUTH_SHARED_FULL:
        refuse(bw->w, bw->req, bw->actor, action, bw->target, 409, "too_many_bans",
               "auth.bans.max_entries bans are in force: lift one first");
        break;
    case AUTH_SHARED_UNAVAILABLE:
    default:
        refuse(bw->w, bw->req, bw->actor, action, bw->target, 503, "unavailable",
               "redis unavailable: nothing was changed");
        break;
    }
    free(bw);
}

static ban_wait_t *ban_wait_new(srv_worker_t *w, struct evhttp_request *req, bool unban,
                                const char *target)
{
    ban_wait_t *bw = calloc(1, sizeof *bw);

    if (bw == NULL)
        return NULL;
    bw->w = w;
    bw->req = req;
    bw->unban = unban;
    snprintf(bw->actor, sizeof bw->actor, "%s", srv_admin_actor());
    snprintf(bw->target, sizeof bw->target, "%s", target);
    return bw;
}

void srv_admin_ban_post(srv_worker_t *w, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    auth_ban_rules_t rules = {.min_prefix_v4 = w->cfg->auth.bans.min_prefix_v4,
                              .min_prefix_v6 = w->cfg->auth.bans.min_prefix_v6};
    auth_ban_entry_t e = {0};
    srv_ban_req_t rq;
    ban_wait_t *bw;
    char err[200], *body;
    int rc = -1;

    if (len > SRV_BANS_MAX_BODY) {
        refuse(w, req, srv_admin_actor(), "ban", NULL, 400, "bad_request",
               "body over 4096 bytes");
        return;
    }
    body = malloc(len + 1);
    if (body == NULL) {
        refuse(w, req, srv_admin_actor(), "ban", NULL, 500, "error", "out of memory");
        return;
    }
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    rc = srv_admin_parse_ban(body, len, &rules, &rq, err, sizeof err);
    free(body);
    if (rc != 0) {
        refuse(w, req, srv_admin_actor(), "ban", NULL, 400, "bad_request", err);
        return;
    }
    bw = ban_wait_new(w, req, false, rq.target);
    if (bw == NULL) {
        refuse(w, req, srv_admin_actor(), "ban", rq.target, 500, "error", "out of memory");
        return;
    }
    snprintf(e.target, sizeof e.target, "%s", rq.target);
    snprintf(e.actor, sizeof e.actor, "%s", bw->actor);
    snprintf(e.reason, sizeof e.reason, "%s", rq.reason);
    if (auth_shared_ban(&w->srv->shared, ops_of(w->srv), w->srv->admin.rc, &e,
                        rq.duration_ms, util_wall_ms(), ban_done, bw) != 0) {
        refuse(w, req, bw->actor, "ban", rq.target, 503, "unavailable",
               "redis unavailable: nothing was banned");
        free(bw);
    }
}

void srv_admin_ban_delete(srv_worker_t *w, struct evhttp_request *req)
{
    char *raw = path_rest(req, "/admin/v1/bans/", 2 * AUTH_BAN_TARGET_MAX);
    char target[AUTH_BAN_TARGET_MAX + 1], err[200];
    ban_wait_t *bw;

    if (raw == NULL || auth_ban_target_parse(raw, strlen(raw), NULL, target, sizeof target,
                                             NULL, err, sizeof err) != 0) {
        free(raw);
        refuse(w, req, srv_admin_actor(), "unban", NULL, 400, "bad_request",
               "bad target: ip:ADDRESS, cidr:NETWORK/PREFIX or client:ID, percent-encoded");
        return;
    }
    free(raw);
    bw = ban_wait_new(w, req, true, target);
    if (bw == NULL) {
        refuse(w, req, srv_admin_actor(), "unban", target, 500, "error", "out of memory");
        return;
    }
    if (auth_shared_unban(&w->srv->shared, ops_of(w->srv), w->srv->admin.rc, target,
                          util_wall_ms(), ban_done, bw) != 0) {
        refuse(w, req, bw->actor, "unban", target, 503, "unavailable",
               "redis unavailable: nothing was changed");
        free(bw);
    }
}

void srv_admin_bans_get(srv_worker_t *w, struct evhttp_request *req)
{
    char cursor[AUTH_BAN_TARGET_MAX + 1];
    auth_ban_entry_t *page;
    size_t limit, n;
    bool more;
    json_t *arr;

    if (page_query(req, cursor, sizeof cursor, &limit) != 0)
        return;
    page = calloc(limit, sizeof *page);
    arr = json_array();
    if (page == NULL || arr == NULL) {
        free(page);
        json_decref(arr);
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    n = auth_ban_list(w->srv->bans, util_wall_ms(), cursor, page, limit, &more);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, ban_json(&page[i]));
    srv_admin_send_json(req, 200,
                        json_pack("{s:o,s:s?,s:b,s:s}", "bans", arr, "next",
                                  more && n > 0 ? page[n - 1].target : NULL, "more", more,
                                  "source", source_of(w->srv)));
    free(page);
}

/* ---- lockouts --------------------------------------------------------- */

/* An ip key as a path may name one: an address or NET/LEN, nothing else. */
/* The characters of a lockout key, within its size. */
static bool ip_key_ok(const char *k)
{
    size_t n = strlen(k);

    return n > 0 && n < HTTP_IP_KEY_STRLEN && strspn(k, "0123456789abcdefABCDEF.:/") == n;
}

/* The lockout key `k` names, spelled as http_ip_key spells it (the list's
 * spelling): an address (IPv4 as written; IPv6 as inet_ntop writes it) or an
 * IPv6 "NET/LEN" with LEN 1-127 (host bits cleared), so "2001:0DB8:0:0::7/64"
 * lifts "2001:db8::/64".  false: no key could be spelled so. */
static bool ip_key_canon(const char *k, char *out, size_t outlen)
{
    char addr[HTTP_IP_KEY_STRLEN];
    const char *slash = strchr(k, '/');
    size_t n = strlen(k), alen = slash != NULL ? (size_t)(slash - k) : n;
    struct in6_addr a6;
    struct in_addr a4;
    uint64_t len = 128;

    if (!ip_key_ok(k))
        return false;
    memcpy(addr, k, alen);
    addr[alen] = '\0';
    if (slash != NULL) {
        if (inet_pton(AF_INET6, addr, &a6) != 1 ||
            util_parse_u64(slash + 1, strlen(slash + 1), &len) != 0 || len == 0 ||
            len >= 128)
            return false;
    } else if (inet_pton(AF_INET, addr, &a4) != 1 && inet_pton(AF_INET6, addr, &a6) != 1) {
        return false;
    }
    http_ip_key(addr, (unsigned)len, out, outlen);
    return true;
}

typedef struct unlock_wait {
    srv_worker_t *w;
    struct evhttp_request *req;
    char actor[AUTH_BAN_ACTOR_MAX + 1];
    char key[HTTP_IP_KEY_STRLEN];
} unlock_wait_t;

static void unlock_done(auth_shared_result_t res, const auth_ban_entry_t *e, void *privdata)
{
    unlock_wait_t *uw = privdata;

    (void)e;
    if (res == AUTH_SHARED_DONE) {
        metrics_lockout_lifted();
        srv_admin_trail_answer(uw->w, uw->req, uw->actor, "unlock", uw->key, 200, NULL);
        log_info("admin: lockout of %s lifted by %s", uw->key, uw->actor);
        srv_admin_send_json(uw->req, 200,
                            json_pack("{s:s,s:b}", "ip_key", uw->key, "unlocked", 1));
    } else if (res == AUTH_SHARED_NONE) {
        refuse(uw->w, uw->req, uw->actor, "unlock", uw->key, 404, "not_found",
               "no such lockout");
    } else {
        refuse(uw->w, uw->req, uw->actor, "unlock", uw->key, 503, "unavailable",
               "redis unavailable: the lockout may stand");
    }
    free(uw);
}

void srv_admin_lockout_delete(srv_worker_t *w, struct evhttp_request *req)
{
    char *key = path_rest(req, "/admin/v1/lockouts/", HTTP_IP_KEY_STRLEN);
    char canon[HTTP_IP_KEY_STRLEN];
    unlock_wait_t *uw;

    if (key == NULL || !ip_key_canon(key, canon, sizeof canon)) {
        free(key);
        refuse(w, req, srv_admin_actor(), "unlock", NULL, 400, "bad_request",
               "bad ip key: an address, or NET/LEN for IPv6 (as the list spells it)");
        return;
    }
    uw = calloc(1, sizeof *uw);
    if (uw == NULL) {
        free(key);
        refuse(w, req, srv_admin_actor(), "unlock", NULL, 500, "error", "out of memory");
        return;
    }
    uw->w = w;
    uw->req = req;
    snprintf(uw->actor, sizeof uw->actor, "%s", srv_admin_actor());
    snprintf(uw->key, sizeof uw->key, "%s", canon);
    free(key);
    if (auth_shared_unlock(&w->srv->shared, ops_of(w->srv), w->srv->admin.rc, uw->key,
                           unlock_done, uw) != 0) {
        refuse(w, req, uw->actor, "unlock", uw->key, 503, "unavailable",
               "redis unavailable: nothing was changed");
        free(uw);
    }
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const auth_lockout_info_t *)a)->key,
                  ((const auth_lockout_info_t *)b)->key);
}

/* The page of `v` (n entries, sorted) after `cursor`: its first index. */
static size_t page_start(const auth_lockout_info_t *v, size_t n, const char *cursor)
{
    size_t i = 0;

    while (cursor[0] != '\0' && i < n && strcmp(v[i].key, cursor) <= 0)
        i++;
    return i;
}

static json_t *lockout_json(const auth_lockout_info_t *l, bool counts)
{
    return counts ? json_pack("{s:s,s:I,s:I,s:I}", "ip_key", l->key, "failures",
                              (json_int_t)l->failures, "level", (json_int_t)l->level,
                              "until_ms", (json_int_t)l->until_ms)
                  : json_pack("{s:s,s:n,s:n,s:I}", "ip_key", l->key, "failures", "level",
                              "until_ms", (json_int_t)l->until_ms);
}

/* One page of lockouts read from Redis: the index, then each key. */
typedef struct lock_page {
    srv_worker_t *w;
    struct evhttp_request *req;
    char cursor[HTTP_IP_KEY_STRLEN];
    size_t limit, n, first, count, waiting;
    bool more;
    auth_lockout_info_t *v; /* the index, sorted by key */
    bool *read;             /* v[first + i]'s key answered */
} lock_page_t;

typedef struct lock_read {
    lock_page_t *pg;
    size_t i;
} lock_read_t;

static void lock_page_free(lock_page_t *pg)
{
    free(pg->v);
    free(pg->read);
    free(pg);
}

static void lock_page_answer(lock_page_t *pg)
{
    json_t *arr = json_array();
    int64_t now = util_wall_ms();
    const char *next = NULL;

    for (size_t i = 0; arr != NULL && i < pg->count; i++) {
        const auth_lockout_info_t *l = &pg->v[pg->first + i];

        next = l->key;
        if (l->until_ms > now)
            json_array_append_new(arr, lockout_json(l, pg->read[i]));
    }
    srv_admin_send_json(pg->req, 200,
                        arr == NULL ? NULL
                                    : json_pack("{s:o,s:s?,s:b,s:s}", "lockouts", arr,
                                                "next", pg->more ? next : NULL, "more",
                                                pg->more, "source", "redis"));
    lock_page_free(pg);
}

/* HMGET failures level until of one lockout key. */
static void on_lock(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    lock_read_t *lr = privdata;
    lock_page_t *pg = lr->pg;
    auth_lockout_info_t *l = &pg->v[pg->first + lr->i];

    (void)c;
    (void)errstr;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        if (r->element[2]->type != REDIS_REPLY_STRING) {
            l->until_ms = 0; /* gone: lifted or forgotten */
        } else {
            int64_t until = strtoll(r->element[2]->str, NULL, 10);

            l->until_ms = until; /* the key's word over the index's */
            if (r->element[0]->type == REDIS_REPLY_STRING)
                l->failures = (unsigned)strtoul(r->element[0]->str, NULL, 10);
            if (r->element[1]->type == REDIS_REPLY_STRING)
                l->level = (unsigned)strtoul(r->element[1]->str, NULL, 10);
            pg->read[lr->i] = true;
        }
    }
    free(lr);
    if (--pg->waiting == 0)
        lock_page_answer(pg);
}

static void read_locks(lock_page_t *pg)
{
    char key[AUTH_SHARED_NAME_MAX + HTTP_IP_KEY_STRLEN + 8];
    lock_read_t *lr;

    pg->waiting = 1; /* this loop's own, so no answer goes out inside it */
    for (size_t i = 0; i < pg->count; i++) {
        snprintf(key, sizeof key, "%s{lock:%s}", pg->w->srv->redis_prefix,
                 pg->v[pg->first + i].key);
        const char *argv[] = {"HMGET", key, "failures", "level", "until"};
        lr = malloc(sizeof *lr);
        if (lr == NULL)
            continue;
        *lr = (lock_read_t){pg, i};
        pg->waiting++;
        if (rc_command_argv(pg->w->srv->admin.rc, key, strlen(key), 5, argv, NULL, on_lock,
                            lr) == NULL) {
            pg->waiting--;
            free(lr);
        }
    }
    if (--pg->waiting == 0)
        lock_page_answer(pg);
}

/* ZRANGEBYSCORE <index> now +inf WITHSCORES: [key, until, ...] */
static void on_index(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    lock_page_t *pg = privdata;

    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        log_warn("admin lockouts: redis: %s", r != NULL ? "unexpected reply"
                                              : errstr  ? errstr
                                                        : "no reply");
        srv_admin_error(pg->req, 503, "unavailable", "redis unavailable");
        lock_page_free(pg);
        return;
    }
    pg->v = calloc(r->elements / 2 + 1, sizeof *pg->v);
    pg->read = calloc(pg->limit, sizeof *pg->read);
    if (pg->v == NULL || pg->read == NULL) {
        srv_admin_error(pg->req, 500, "error", "out of memory");
        lock_page_free(pg);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *s = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING ||
            !ip_key_ok(k->str))
            continue; /* not one tollgate wrote */
        snprintf(pg->v[pg->n].key, sizeof pg->v[pg->n].key, "%s", k->str);
        pg->v[pg->n++].until_ms = strtoll(s->str, NULL, 10);
    }
    qsort(pg->v, pg->n, sizeof *pg->v, by_key);
    pg->first = page_start(pg->v, pg->n, pg->cursor);
    pg->count = pg->n - pg->first < pg->limit ? pg->n - pg->first : pg->limit;
    pg->more = pg->first + pg->count < pg->n;
    read_locks(pg);
}

static void lockouts_memory(srv_worker_t *w, struct evhttp_request *req, const char *cursor,
                            size_t limit)
{
    auth_lockout_info_t *v = calloc(LOCKOUT_SCAN_MAX, sizeof *v);
    json_t *arr = json_array();
    size_t n, first, i;
    bool more;

    if (v == NULL || arr == NULL) {
        free(v);
        json_decref(arr);
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    n = auth_lockout_locked(w->srv->lockout, util_wall_ms(), v, LOCKOUT_SCAN_MAX);
    qsort(v, n, sizeof *v, by_key);
    first = page_start(v, n, cursor);
    for (i = first; i < n && i - first < limit; i++)
        json_array_append_new(arr, lockout_json(&v[i], true));
    more = i < n;
    srv_admin_send_json(req, 200,
                        json_pack("{s:o,s:s?,s:b,s:s}", "lockouts", arr, "next",
                                  more ? v[i - 1].key : NULL, "more", more, "source",
                                  "memory"));
    free(v);
}

void srv_admin_lockouts_get(srv_worker_t *w, struct evhttp_request *req)
{
    char cursor[HTTP_IP_KEY_STRLEN], now[24], max[24];
    const char *k = w->srv->shared.lock_index;
    lock_page_t *pg;
    size_t limit;

    if (page_query(req, cursor, sizeof cursor, &limit) != 0)
        return;
    if (w->srv->admin.rc == NULL) {
        lockouts_memory(w, req, cursor, limit);
        return;
    }
    pg = calloc(1, sizeof *pg);
    if (pg == NULL) {
        srv_admin_error(req, 500, "error", "out of memory");
        return;
    }
    pg->w = w;
    pg->req = req;
    pg->limit = limit;
    snprintf(pg->cursor, sizeof pg->cursor, "%s", cursor);
    snprintf(now, sizeof now, "%lld", (long long)util_wall_ms());
    snprintf(max, sizeof max, "%d", LOCKOUT_SCAN_MAX);
    const char *argv[] = {"ZRANGEBYSCORE", k, now, "+inf", "WITHSCORES", "LIMIT", "0", max};
    if (rc_command_argv(w->srv->admin.rc, k, strlen(k), 8, argv, NULL, on_index, pg) ==
        NULL) {
        free(pg);
        srv_admin_error(req, 503, "unavailable", "redis unavailable");
    }
}
