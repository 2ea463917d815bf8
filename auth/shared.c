/* shared.c — revocations and lockouts shared by every replica through
 * Redis, over rc_ops_t.  See include/tollgate/auth_shared.h.
 */
#include "tollgate/auth_shared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/log.h"
#include "tollgate/util_clock.h"

#define IP_MAX 64

static void changed(auth_shared_t *sh)
{
    if (sh->revocations_changed != NULL)
        sh->revocations_changed(auth_revoke_count(sh->revoked));
}

static int name(char *out, const char *prefix, const char *suffix)
{
    int n = snprintf(out, AUTH_SHARED_NAME_MAX, "%s%s", prefix, suffix);

    return n < 0 || n >= AUTH_SHARED_NAME_MAX ? -1 : 0;
}

int auth_shared_init(auth_shared_t *sh, const char *prefix, auth_revoke_t *revoked,
                     auth_lockout_t *lockout, size_t script_revoke, size_t script_lockout)
{
    *sh = (auth_shared_t){.revoked = revoked,
                          .lockout = lockout,
                          .script_revoke = script_revoke,
                          .script_lockout = script_lockout};
    if (name(sh->prefix, prefix, "") != 0 || name(sh->revlog_j, prefix, "{revlog}:j") ||
        name(sh->revlog_s, prefix, "{revlog}:s") ||
        name(sh->chan_rev, prefix, "revocations") ||
        name(sh->chan_lock, prefix, "lockouts"))
        return -1;
    return 0;
}

/* ---- what Redis says ------------------------------------------------------ */

/* "j <exp> <jti>" | "s <before> <sub>" | "l <until_ms> <ip>" */
int auth_shared_apply(auth_shared_t *sh, const char *msg, size_t len, int64_t now_ms)
{
    char buf[600], *end;
    long long when;

    if (len < 5 || len >= sizeof(buf) || msg[1] != ' ')
        return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    when = strtoll(buf + 2, &end, 10);
    if (*end != ' ' || end[1] == '\0' || when <= 0)
        return -1;
    switch (buf[0]) {
    case 'j':
        auth_revoke_jti(sh->revoked, end + 1, when, now_ms / 1000);
        break;
    case 's':
        auth_revoke_subject(sh->revoked, end + 1, when);
        break;
    case 'l':
        auth_lockout_lock(sh->lockout, end + 1, when, now_ms);
        return 0;
    default:
        return -1;
    }
    changed(sh);
    return 0;
}

static void resync_jti(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_shared_t *sh = privdata;
    int64_t now = util_wall_ms() / 1000;

    (void)c;
    (void)errstr;
    sh->resync_jti_ok = false;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    sh->resync_jti_ok = true;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *score = r->element[i + 1];

        if (id->type == REDIS_REPLY_STRING && score->type == REDIS_REPLY_STRING)
            auth_revoke_jti(sh->revoked, id->str, strtoll(score->str, NULL, 10), now);
    }
    changed(sh);
}

static void resync_sub(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_shared_t *sh = privdata;

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *sub = r->element[i], *before = r->element[i + 1];

        if (sub->type == REDIS_REPLY_STRING && before->type == REDIS_REPLY_STRING)
            auth_revoke_subject(sh->revoked, sub->str, strtoll(before->str, NULL, 10));
    }
    changed(sh);
    /* both keys share the {revlog} tag: one connection, replies in order */
    if (sh->resync_jti_ok)
        atomic_store(&sh->synced, true);
}

bool auth_shared_synced(const auth_shared_t *sh)
{
    return atomic_load(&sh->synced);
}

int auth_shared_resync(auth_shared_t *sh, const rc_ops_t *ops, void *cl, int64_t now_ms)
{
    char now[24];
    const char *kj = sh->revlog_j, *ks = sh->revlog_s;

    snprintf(now, sizeof(now), "%lld", (long long)(now_ms / 1000));
    const char *zr[] = {"ZRANGEBYSCORE", kj, now, "+inf", "WITHSCORES"};
    const char *hg[] = {"HGETALL", ks};
    if (ops->command(cl, kj, strlen(kj), 5, zr, NULL, resync_jti, sh) == NULL)
        return -1;
    return ops->command(cl, ks, strlen(ks), 2, hg, NULL, resync_sub, sh) == NULL ? -1 : 0;
}

/* ---- revoke --------------------------------------------------------------- */

typedef struct revoke_op {
    auth_shared_t *sh;
    const rc_ops_t *ops;
    void *cl;
    auth_shared_kind_t kind;
    char id[AUTH_REVOKE_MAX_ID + 1];
    long long when;
    auth_shared_done_fn done;
    void *privdata;
} revoke_op_t;

static void revoke_finish(revoke_op_t *op, const char *err)
{
    if (err == NULL) {
        if (op->kind == AUTH_SHARED_SUBJECT)
            auth_revoke_subject(op->sh->revoked, op->id, op->when);
        else
            auth_revoke_jti(op->sh->revoked, op->id, op->when, util_wall_ms() / 1000);
        changed(op->sh);
    }
    op->done(err, op->when, op->privdata);
    free(op);
}

static void revoke_key_done(rc_client_t *c, redisReply *r, const char *errstr,
                            void *privdata)
{
    (void)c;
    (void)errstr;
    revoke_finish(privdata, r == NULL || r->type == REDIS_REPLY_ERROR
                                ? "redis did not store the revocation"
                                : NULL);
}

/* revoke.lua answered with the `when` in force: write the per-token key
 * (<prefix>{rev:<jti>} until exp, <prefix>{revsub:<sub>}). */
static void revoke_index_done(rc_client_t *c, redisReply *r, const char *errstr,
                              void *privdata)
{
    revoke_op_t *op = privdata;
    char key[AUTH_SHARED_NAME_MAX + AUTH_REVOKE_MAX_ID + 16], when[24];

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        revoke_finish(op, "redis did not store the revocation");
        return;
    }
    op->when = r->integer;
    snprintf(when, sizeof(when), "%lld", op->when);
    snprintf(key, sizeof(key), "%s{%s:%s}", op->sh->prefix,
             op->kind == AUTH_SHARED_SUBJECT ? "revsub" : "rev", op->id);
    const char *set_jti[] = {"SET", key, when, "EXAT", when};
    const char *set_sub[] = {"SET", key, when};
    if (op->ops->command(op->cl, key, strlen(key), op->kind == AUTH_SHARED_SUBJECT ? 3 : 5,
                         op->kind == AUTH_SHARED_SUBJECT ? set_sub : set_jti, NULL,
                         revoke_key_done, op) == NULL)
        revoke_finish(op, "redis unavailable");
}

int auth_shared_revoke(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                       auth_shared_kind_t kind, const char *id, int64_t when,
                       int64_t now_ms, auth_shared_done_fn done, void *privdata)
{
    revoke_op_t *op;
    char w[24];

    if (ops == NULL) { /* no Redis: this replica is the store */
        int rc = kind == AUTH_SHARED_SUBJECT
                     ? auth_revoke_subject(sh->revoked, id, when)
                     : auth_revoke_jti(sh->revoked, id, when, now_ms / 1000);

        changed(sh);
        done(rc == 0 ? NULL : "not revoked: already expired, or out of room", when,
             privdata);
        return 0;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return -1;
    *op = (revoke_op_t){.sh = sh,
                        .ops = ops,
                        .cl = cl,
                        .kind = kind,
                        .when = when,
                        .done = done,
                        .privdata = privdata};
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(w, sizeof(w), "%lld", (long long)when);
    const char *keys[] = {sh->revlog_j, sh->revlog_s};
    const char *args[] = {kind == AUTH_SHARED_SUBJECT ? "s" : "j", op->id, w, sh->chan_rev};
    size_t klen[] = {strlen(keys[0]), strlen(keys[1])};
    size_t alen[] = {1, strlen(op->id), strlen(w), strlen(sh->chan_rev)};
    if (ops->evalsha(cl, sh->script_revoke, 2, keys, klen, 4, args, alen, revoke_index_done,
                     op) == NULL) {
        free(op);
        return -1;
    }
    /* op belongs to revoke_index_done() now. */
    /* cppcheck-suppress memleak */
    return 0;
}

/* ---- lockouts ------------------------------------------------------------- */

struct auth_lock_op {
    auth_shared_t *sh;
    auth_lockout_policy_t p;
    char ip[IP_MAX];
    auth_lock_done_fn done; /* NULL once detached */
    void *privdata;
};

/* Count the failure here, in memory (no Redis, or Redis refused the call). */
static void count_locally(auth_shared_t *sh, const char *ip, const auth_lockout_policy_t *p,
                          int64_t now_ms)
{
    if (auth_lockout_fail(sh->lockout, ip, p, now_ms) > 0)
        log_warn("lockout: client %s locked out after %u failed authentications", ip,
                 p->max_failures);
}

/* lockout.lua answers {lock_ms, failures}: lock_ms > 0 starts a lockout. */
static void lockout_done(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_lock_op_t *op = privdata;
    int64_t now = util_wall_ms();

    (void)c;
    (void)errstr;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        if (r->element[0]->integer > 0) {
            auth_lockout_lock(op->sh->lockout, op->ip, now + r->element[0]->integer, now);
            log_warn("lockout: client %s locked out for %lld ms", op->ip,
                     r->element[0]->integer);
        }
    } else {
        /* Redis could not count it: count it here, as without Redis. */
        auth_lockout_fail(op->sh->lockout, op->ip, &op->p, now);
    }
    if (op->done != NULL)
        op->done(op->privdata);
    free(op);
}

auth_lock_op_t *auth_shared_lockout_fail(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                                         const char *ip, const auth_lockout_policy_t *p,
                                         int64_t now_ms, auth_lock_done_fn done,
                                         void *privdata)
{
    auth_lock_op_t *op;
    char key[AUTH_SHARED_NAME_MAX + IP_MAX + 8], a[4][24];

    if (ops == NULL || strlen(ip) >= IP_MAX || (op = calloc(1, sizeof(*op))) == NULL) {
        count_locally(sh, ip, p, now_ms);
        return NULL;
    }
    *op = (auth_lock_op_t){.sh = sh, .p = *p, .done = done, .privdata = privdata};
    snprintf(op->ip, sizeof(op->ip), "%s", ip);
    snprintf(key, sizeof(key), "%s{lock:%s}", sh->prefix, ip);
    snprintf(a[0], sizeof(a[0]), "%u", p->max_failures);
    snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)p->window_ms);
    snprintf(a[2], sizeof(a[2]), "%llu", (unsigned long long)p->base_backoff_ms);
    snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)p->max_backoff_ms);
    const char *keys[] = {key};
    const char *args[] = {a[0], a[1], a[2], a[3], sh->chan_lock};
    size_t klen[] = {strlen(key)};
    size_t alen[] = {strlen(a[0]), strlen(a[1]), strlen(a[2]), strlen(a[3]),
                     strlen(sh->chan_lock)};
    if (ops->evalsha(cl, sh->script_lockout, 1, keys, klen, 5, args, alen, lockout_done,
                     op) == NULL) {
        free(op);
        count_locally(sh, ip, p, now_ms);
        return NULL;
    }
    return op;
}

void auth_shared_lockout_detach(auth_lock_op_t *op)
{
    op->done = NULL;
}
