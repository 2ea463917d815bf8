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
                          .script_lockout = script_lockout,
                          .script_unrevoke = (size_t)-1};
    if (name(sh->prefix, prefix, "") != 0 || name(sh->revlog_j, prefix, "{revlog}:j") ||
        name(sh->revlog_s, prefix, "{revlog}:s") ||
        name(sh->revlog_si, prefix, "{revlog}:si") ||
        name(sh->revlog_sx, prefix, "{revlog}:sx") ||
        name(sh->chan_rev, prefix, "revocations") ||
        name(sh->chan_lock, prefix, "lockouts"))
        return -1;
    return 0;
}

/* ---- what Redis says ------------------------------------------------------ */

/* A scoped subject's id, "iss\x1fsub", split in place: *sub points past
 * the separator.  -1 unless one separator parts two non-empty halves. */
static int split_scoped(char *id, char **sub)
{
    char *sep = strchr(id, AUTH_SHARED_SEP);

    if (sep == NULL || sep == id || sep[1] == '\0' || strchr(sep + 1, AUTH_SHARED_SEP))
        return -1;
    *sep = '\0';
    *sub = sep + 1;
    return 0;
}

/* One revocation message (a kind of "jsiJSI") applied to the store. */
static int apply_revocation(auth_shared_t *sh, char kind, char *id, long long when,
                            int64_t now_ms)
{
    char *sub = NULL;
    bool scoped = kind == 'i' || kind == 'I';

    if (scoped && split_scoped(id, &sub) != 0)
        return -1;
    switch (kind) {
    case 'j':
        auth_revoke_jti(sh->revoked, id, when, now_ms / 1000);
        break;
    case 's':
    case 'i':
        auth_revoke_subject(sh->revoked, scoped ? id : NULL, scoped ? sub : id, when,
                            now_ms / 1000);
        break;
    case 'J':
        auth_revoke_unjti(sh->revoked, id);
        break;
    default: /* 'S', 'I' */
        auth_revoke_unsubject(sh->revoked, scoped ? id : NULL, scoped ? sub : id);
        break;
    }
    changed(sh);
    return 0;
}

/* "j <exp> <jti>" | "s <before> <sub>" | "i <before> <iss>\x1f<sub>" |
 * "J|S|I <when> <id>" (undone) | "l <until_ms> <ip>" */
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
    if (buf[0] == 'l') {
        auth_lockout_lock(sh->lockout, end + 1, when, now_ms);
        return 0;
    }
    if (strchr("jsiJSI", buf[0]) == NULL || buf[0] == '\0')
        return -1;
    return apply_revocation(sh, buf[0], end + 1, when, now_ms);
}

/* A resync's three replies arrive in order on one connection (the keys
 * share the {revlog} tag); each stamps what it writes with the resync's
 * generation, and the last one forgets what none of them held. */
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

/* HGETALL of the every-issuer (`scoped` false) or the one-issuer hash. */
static bool resync_subjects(auth_shared_t *sh, const redisReply *r, bool scoped)
{
    int64_t now = util_wall_ms() / 1000;
    char id[2 * AUTH_REVOKE_MAX_ID + 2], *sub;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *before = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || before->type != REDIS_REPLY_STRING ||
            k->len >= sizeof id || memchr(k->str, '\0', k->len) != NULL)
            continue;
        memcpy(id, k->str, k->len + 1);
        if (!scoped)
            auth_revoke_subject(sh->revoked, NULL, id, strtoll(before->str, NULL, 10), now);
        else if (split_scoped(id, &sub) == 0)
            auth_revoke_subject(sh->revoked, id, sub, strtoll(before->str, NULL, 10), now);
    }
    changed(sh);
    return true;
}

static void resync_sub(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_shared_t *sh = privdata;

    (void)c;
    (void)errstr;
    sh->resync_sub_ok = resync_subjects(sh, r, false);
}

static void resync_isub(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_shared_t *sh = privdata;

    (void)c;
    (void)errstr;
    if (!resync_subjects(sh, r, true) || !sh->resync_jti_ok || !sh->resync_sub_ok)
        return;
    /* the index was read whole: it is the truth, undos missed included */
    auth_revoke_sync_end(sh->revoked, sh->resync_gen);
    changed(sh);
    atomic_store(&sh->synced, true);
}

bool auth_shared_synced(const auth_shared_t *sh)
{
    return atomic_load(&sh->synced);
}

int auth_shared_resync(auth_shared_t *sh, const rc_ops_t *ops, void *cl, int64_t now_ms)
{
    char now[24];
    const char *kj = sh->revlog_j, *ks = sh->revlog_s, *ki = sh->revlog_si;

    snprintf(now, sizeof(now), "%lld", (long long)(now_ms / 1000));
    const char *zr[] = {"ZRANGEBYSCORE", kj, now, "+inf", "WITHSCORES"};
    const char *hg[] = {"HGETALL", ks};
    const char *hi[] = {"HGETALL", ki};
    sh->resync_gen = auth_revoke_sync_begin(sh->revoked);
    if (ops->command(cl, kj, strlen(kj), 5, zr, NULL, resync_jti, sh) == NULL ||
        ops->command(cl, ks, strlen(ks), 2, hg, NULL, resync_sub, sh) == NULL)
        return -1;
    return ops->command(cl, ki, strlen(ki), 2, hi, NULL, resync_isub, sh) == NULL ? -1 : 0;
}

/* ---- revoke and undo ------------------------------------------------------ */

typedef struct revoke_op {
    auth_shared_t *sh;
    const rc_ops_t *ops;
    void *cl;
    auth_shared_kind_t kind;
    bool undo;
    bool scoped; /* a subject of issuer `iss` */
    char iss[AUTH_REVOKE_MAX_ID + 1];
    char id[AUTH_REVOKE_MAX_ID + 1];
    long long when;
    auth_shared_done_fn done;
    void *privdata;
} revoke_op_t;

/* This replica's store, as the op says; 0 or -1 (a revocation refused),
 * or for an undo 1 when there was an entry, else 0. */
static int apply_op(const revoke_op_t *op, int64_t now)
{
    const char *iss = op->scoped ? op->iss : NULL;
    int rc;

    if (op->undo)
        rc = op->kind == AUTH_SHARED_SUBJECT
                 ? auth_revoke_unsubject(op->sh->revoked, iss, op->id)
                 : auth_revoke_unjti(op->sh->revoked, op->id);
    else
        rc = op->kind == AUTH_SHARED_SUBJECT
                 ? auth_revoke_subject(op->sh->revoked, iss, op->id, op->when, now)
                 : auth_revoke_jti(op->sh->revoked, op->id, op->when, now);
    changed(op->sh);
    return rc;
}

static void revoke_finish(revoke_op_t *op, const char *err)
{
    if (err == NULL && (!op->undo || op->when > 0))
        apply_op(op, util_wall_ms() / 1000);
    op->done(err, op->when, op->privdata);
    free(op);
}

static void revoke_key_done(rc_client_t *c, redisReply *r, const char *errstr,
                            void *privdata)
{
    revoke_op_t *op = privdata;

    (void)c;
    (void)errstr;
    revoke_finish(op, r == NULL || r->type == REDIS_REPLY_ERROR
                          ? (op->undo ? "redis did not delete the revocation's key"
                                      : "redis did not store the revocation")
                          : NULL);
}

/* The per-token key: <prefix>{rev:<jti>}, <prefix>{revsub:<sub>} (every
 * issuer), <prefix>{revsub:<sub>}:<iss> (one issuer).  -1: too long. */
static int token_key(const revoke_op_t *op, char *key, size_t keylen)
{
    int n = op->kind == AUTH_SHARED_JTI
                ? snprintf(key, keylen, "%s{rev:%s}", op->sh->prefix, op->id)
            : op->scoped
                ? snprintf(key, keylen, "%s{revsub:%s}:%s", op->sh->prefix, op->id, op->iss)
                : snprintf(key, keylen, "%s{revsub:%s}", op->sh->prefix, op->id);

    return n < 0 || (size_t)n >= keylen ? -1 : 0;
}

/* revoke.lua answered with the `when` in force (unrevoke.lua: the one
 * removed, or 0): write (delete) the per-token key, which expires with the
 * revocation (a subject's at before + lifetime; for ever with lifetime 0). */
static void revoke_index_done(rc_client_t *c, redisReply *r, const char *errstr,
                              void *privdata)
{
    revoke_op_t *op = privdata;
    char key[AUTH_SHARED_NAME_MAX + 2 * AUTH_REVOKE_MAX_ID + 16], when[24], until[24];
    int64_t lifetime = auth_revoke_lifetime(op->sh->revoked);
    int argc;

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        revoke_finish(op, op->undo ? "redis did not undo the revocation"
                                   : "redis did not store the revocation");
        return;
    }
    op->when = r->integer;
    if ((op->undo && op->when == 0) || token_key(op, key, sizeof key) != 0) {
        revoke_finish(op, NULL); /* nothing to undo; or no key of that length */
        return;
    }
    snprintf(when, sizeof(when), "%lld", op->when);
    snprintf(until, sizeof(until), "%lld",
             op->kind == AUTH_SHARED_JTI ? op->when : op->when + lifetime);
    const char *del[] = {"DEL", key};
    const char *set[] = {"SET", key, when, "EXAT", until};
    argc = op->undo ? 2 : op->kind == AUTH_SHARED_SUBJECT && lifetime == 0 ? 3 : 5;
    if (op->ops->command(op->cl, key, strlen(key), argc, op->undo ? del : set, NULL,
                         revoke_key_done, op) == NULL)
        revoke_finish(op, "redis unavailable");
}

/* The script's arguments: kind, id ("iss\x1fsub" when scoped); -1 when the
 * id does not fit. */
static int script_id(const revoke_op_t *op, char *kind, char *id, size_t idlen)
{
    int n = op->scoped ? snprintf(id, idlen, "%s%c%s", op->iss, AUTH_SHARED_SEP, op->id)
                       : snprintf(id, idlen, "%s", op->id);

    kind[0] = op->kind == AUTH_SHARED_JTI ? 'j' : op->scoped ? 'i' : 's';
    kind[1] = '\0';
    return n < 0 || (size_t)n >= idlen ? -1 : 0;
}

/* Send revoke.lua / unrevoke.lua for `op`; -1: not sent (op not freed). */
static int send_script(revoke_op_t *op)
{
    auth_shared_t *sh = op->sh;
    char kind[2], id[2 * AUTH_REVOKE_MAX_ID + 2], w[24], life[24];
    const char *keys[] = {sh->revlog_j, sh->revlog_s, sh->revlog_si, sh->revlog_sx};
    size_t klen[] = {strlen(keys[0]), strlen(keys[1]), strlen(keys[2]), strlen(keys[3])};

    if (script_id(op, kind, id, sizeof id) != 0)
        return -1;
    snprintf(w, sizeof(w), "%lld", op->when);
    snprintf(life, sizeof(life), "%lld", (long long)auth_revoke_lifetime(sh->revoked));
    const char *rargs[] = {kind, id, w, sh->chan_rev, life};
    const char *uargs[] = {kind, id, sh->chan_rev, life};
    size_t ralen[] = {1, strlen(id), strlen(w), strlen(sh->chan_rev), strlen(life)};
    size_t ualen[] = {1, strlen(id), strlen(sh->chan_rev), strlen(life)};
    if (op->undo)
        return op->ops->evalsha(op->cl, sh->script_unrevoke, 4, keys, klen, 4, uargs, ualen,
                                revoke_index_done, op) == NULL
                   ? -1
                   : 0;
    return op->ops->evalsha(op->cl, sh->script_revoke, 4, keys, klen, 5, rargs, ralen,
                            revoke_index_done, op) == NULL
               ? -1
               : 0;
}

/* A revocation (`undo` false) or its undo, everywhere. */
static int revoke_any(auth_shared_t *sh, const rc_ops_t *ops, void *cl, bool undo,
                      auth_shared_kind_t kind, const char *iss, const char *id,
                      int64_t when, int64_t now_ms, auth_shared_done_fn done,
                      void *privdata)
{
    revoke_op_t *op = calloc(1, sizeof(*op));
    int rc;

    if (op == NULL)
        return -1;
    *op = (revoke_op_t){.sh = sh,
                        .ops = ops,
                        .cl = cl,
                        .kind = kind,
                        .undo = undo,
                        .scoped = kind == AUTH_SHARED_SUBJECT && iss != NULL,
                        .when = when,
                        .done = done,
                        .privdata = privdata};
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(op->iss, sizeof(op->iss), "%s", op->scoped ? iss : "");
    if (ops == NULL) { /* no Redis: this replica is the store */
        int64_t t = 0;
        bool had =
            undo && (kind == AUTH_SHARED_SUBJECT
                         ? auth_revoke_subject_get(sh->revoked, op->scoped ? iss : NULL, id,
                                                   now_ms / 1000, &t)
                         : auth_revoke_get(sh->revoked, id, now_ms / 1000, &t));

        rc = apply_op(op, now_ms / 1000);
        if (undo)
            done(NULL, had ? t : 0, privdata);
        else
            done(rc == 0 ? NULL : "not revoked: already expired, or out of room", when,
                 privdata);
        free(op);
        return 0;
    }
    if (send_script(op) != 0) {
        free(op);
        return -1;
    }
    /* op belongs to revoke_index_done() now. */
    /* cppcheck-suppress memleak */
    return 0;
}

int auth_shared_revoke(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                       auth_shared_kind_t kind, const char *iss, const char *id,
                       int64_t when, int64_t now_ms, auth_shared_done_fn done,
                       void *privdata)
{
    return revoke_any(sh, ops, cl, false, kind, iss, id, when, now_ms, done, privdata);
}

int auth_shared_unrevoke(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                         auth_shared_kind_t kind, const char *iss, const char *id,
                         int64_t now_ms, auth_shared_done_fn done, void *privdata)
{
    return revoke_any(sh, ops, cl, true, kind, iss, id, 0, now_ms, done, privdata);
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
