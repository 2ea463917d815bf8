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
    return atomic_load(&sh->synced) && (sh->bans == NULL || atomic_load(&sh->bans_synced));
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
    const rc_ops_t *ops; /* to write the lockout index */
    void *cl;
};

static void lockout_index_add(auth_lock_op_t *op, int64_t until_ms, int64_t now_ms);

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
            lockout_index_add(op, now + r->element[0]->integer, now);
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
    *op = (auth_lock_op_t){
        .sh = sh, .p = *p, .done = done, .privdata = privdata, .ops = ops, .cl = cl};
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

/* ---- bans and the lockout index ------------------------------------------- */

#define BANS_RESYNC_MAX AUTH_BAN_MAX_ENTRIES /* entries of an index reply looked at */

int auth_shared_init_bans(auth_shared_t *sh, auth_ban_t *bans, size_t script_ban,
                          size_t bans_max, size_t lockouts_max)
{
    sh->bans = bans;
    sh->script_ban = script_ban;
    sh->bans_max = bans_max;
    sh->lockouts_max = lockouts_max;
    if (name(sh->bans_key, sh->prefix, "{bans}") != 0 ||
        name(sh->bans_until, sh->prefix, "{bans}:until") != 0 ||
        name(sh->chan_ban, sh->prefix, "bans") != 0 ||
        name(sh->lock_index, sh->prefix, "{lockouts}") != 0)
        return -1;
    return 0;
}

static void bans_changed(auth_shared_t *sh, int64_t now_ms)
{
    if (sh->bans_changed != NULL)
        sh->bans_changed(auth_ban_count(sh->bans, now_ms));
}

/* "b <target> <until_ms> <created_ms> <actor> <reason>" | "u <target>" */
int auth_shared_apply_ban(auth_shared_t *sh, const char *msg, size_t len, int64_t now_ms)
{
    char target[AUTH_BAN_TARGET_MAX + 1];
    const char *sp;
    auth_ban_entry_t e;
    size_t tlen;

    if (sh->bans == NULL || len < 3 || msg[1] != ' ' || (msg[0] != 'b' && msg[0] != 'u'))
        return -1;
    sp = memchr(msg + 2, ' ', len - 2);
    tlen = (sp != NULL ? (size_t)(sp - msg) : len) - 2;
    if (msg[0] == 'u') {
        if (sp != NULL || tlen > AUTH_BAN_TARGET_MAX)
            return -1;
        memcpy(target, msg + 2, tlen);
        target[tlen] = '\0';
        auth_ban_remove(sh->bans, target, now_ms);
    } else {
        if (sp == NULL || auth_ban_record_parse(msg + 2, tlen, sp + 1,
                                                (size_t)(msg + len - sp - 1), &e) != 0)
            return -1;
        (void)auth_ban_put(sh->bans, &e, now_ms); /* full: the resync tells */
    }
    bans_changed(sh, now_ms);
    return 0;
}

int auth_shared_apply_unlock(auth_shared_t *sh, const char *msg, size_t len)
{
    char ip[IP_MAX];

    if (len < 3 || len - 2 >= sizeof ip || msg[0] != 'u' || msg[1] != ' ' ||
        memchr(msg + 2, ' ', len - 2) != NULL || memchr(msg + 2, '\0', len - 2) != NULL)
        return -1;
    memcpy(ip, msg + 2, len - 2);
    ip[len - 2] = '\0';
    auth_lockout_unlock(sh->lockout, ip);
    return 0;
}

int auth_shared_bans_reply(auth_shared_t *sh, const redisReply *r, int64_t now_ms)
{
    auth_ban_entry_t *v;
    size_t n = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0 ||
        r->elements / 2 > BANS_RESYNC_MAX)
        return -1;
    v = calloc(r->elements / 2 + 1, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *t = r->element[i], *rec = r->element[i + 1];

        if (t->type == REDIS_REPLY_STRING && rec->type == REDIS_REPLY_STRING &&
            auth_ban_record_parse(t->str, t->len, rec->str, rec->len, &v[n]) == 0)
            n++;
    }
    auth_ban_replace(sh->bans, v, n, now_ms);
    free(v);
    bans_changed(sh, now_ms);
    return 0;
}

static void resync_bans(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_shared_t *sh = privdata;

    (void)c;
    (void)errstr;
    if (auth_shared_bans_reply(sh, r, util_wall_ms()) == 0)
        atomic_store(&sh->bans_synced, true);
}

int auth_shared_resync_bans(auth_shared_t *sh, const rc_ops_t *ops, void *cl)
{
    const char *hg[] = {"HGETALL", sh->bans_key};

    if (sh->bans == NULL)
        return 0;
    return ops->command(cl, sh->bans_key, strlen(sh->bans_key), 2, hg, NULL, resync_bans,
                        sh) == NULL
               ? -1
               : 0;
}

typedef struct ban_op {
    auth_shared_t *sh;
    auth_ban_entry_t e;
    bool unban;
    bool found;          /* unlock: this replica held it */
    const rc_ops_t *ops; /* unlock: the next command */
    void *cl;
    auth_shared_ban_fn done;
    void *privdata;
} ban_op_t;

static void ban_finish(ban_op_t *op, auth_shared_result_t res)
{
    op->done(res, res == AUTH_SHARED_DONE && !op->unban ? &op->e : NULL, op->privdata);
    free(op);
}

static void ban_reply(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    ban_op_t *op = privdata;
    int64_t now = util_wall_ms();

    (void)c;
    (void)errstr;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "full") != NULL) {
        ban_finish(op, AUTH_SHARED_FULL);
        return;
    }
    if (op->unban && r != NULL && r->type == REDIS_REPLY_INTEGER) {
        bool here = auth_ban_remove(op->sh->bans, op->e.target, now);

        bans_changed(op->sh, now);
        ban_finish(op, r->integer > 0 || here ? AUTH_SHARED_DONE : AUTH_SHARED_NONE);
        return;
    }
    if (!op->unban && r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        op->e.until_ms = r->element[0]->integer;
        op->e.created_ms = r->element[1]->integer;
        (void)auth_ban_put(op->sh->bans, &op->e, now); /* the resync fixes a miss */
        bans_changed(op->sh, now);
        ban_finish(op, AUTH_SHARED_DONE);
        return;
    }
    ban_finish(op, AUTH_SHARED_UNAVAILABLE);
}

/* Without Redis: this replica's set is the state. */
static int ban_local(auth_shared_t *sh, ban_op_t *op, int64_t duration_ms, int64_t now_ms)
{
    auth_shared_result_t res;

    if (op->unban) {
        res = auth_ban_remove(sh->bans, op->e.target, now_ms) ? AUTH_SHARED_DONE
                                                              : AUTH_SHARED_NONE;
    } else {
        op->e.created_ms = now_ms;
        op->e.until_ms = now_ms + duration_ms;
        res = auth_ban_put(sh->bans, &op->e, now_ms) == 0 ? AUTH_SHARED_DONE
                                                          : AUTH_SHARED_FULL;
    }
    bans_changed(sh, now_ms);
    ban_finish(op, res);
    return 0;
}

static ban_op_t *ban_op_new(auth_shared_t *sh, const char *target, auth_shared_ban_fn done,
                            void *privdata)
{
    ban_op_t *op = calloc(1, sizeof *op);

    if (op == NULL)
        return NULL;
    op->sh = sh;
    op->done = done;
    op->privdata = privdata;
    snprintf(op->e.target, sizeof op->e.target, "%s", target);
    return op;
}

int auth_shared_ban(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                    const auth_ban_entry_t *e, int64_t duration_ms, int64_t now_ms,
                    auth_shared_ban_fn done, void *privdata)
{
    ban_op_t *op = ban_op_new(sh, e->target, done, privdata);
    char dur[24], max[24];

    if (op == NULL)
        return -1;
    snprintf(op->e.actor, sizeof op->e.actor, "%s", e->actor);
    snprintf(op->e.reason, sizeof op->e.reason, "%s", e->reason);
    if (ops == NULL)
        return ban_local(sh, op, duration_ms, now_ms);
    snprintf(dur, sizeof dur, "%lld", (long long)duration_ms);
    snprintf(max, sizeof max, "%zu", sh->bans_max);
    const char *keys[] = {sh->bans_key, sh->bans_until};
    const char *args[] = {"b",          op->e.target, dur,         op->e.actor,
                          op->e.reason, max,          sh->chan_ban};
    if (ops->evalsha(cl, sh->script_ban, 2, keys, NULL, 7, args, NULL, ban_reply, op) ==
        NULL) {
        free(op);
        return -1;
    }
    /* op belongs to ban_reply() now. */
    /* cppcheck-suppress memleak */
    return 0;
}

int auth_shared_unban(auth_shared_t *sh, const rc_ops_t *ops, void *cl, const char *target,
                      int64_t now_ms, auth_shared_ban_fn done, void *privdata)
{
    ban_op_t *op = ban_op_new(sh, target, done, privdata);

    if (op == NULL)
        return -1;
    op->unban = true;
    if (ops == NULL)
        return ban_local(sh, op, 0, now_ms);
    const char *keys[] = {sh->bans_key, sh->bans_until};
    const char *args[] = {"u", op->e.target, sh->chan_ban};
    if (ops->evalsha(cl, sh->script_ban, 2, keys, NULL, 3, args, NULL, ban_reply, op) ==
        NULL) {
        free(op);
        return -1;
    }
    /* cppcheck-suppress memleak */
    return 0;
}

/* ---- lifting a lockout: DEL, ZREM, PUBLISH -------------------------------- */

static void ignore_reply(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    (void)c;
    (void)r;
    (void)errstr;
    (void)privdata;
}

/* A lockout started: note it in the index (a separate command: the index
 * is another slot than the lockout's key), drop what is over, keep it
 * bounded.  A lost write leaves the lockout out of the list only. */
static void lockout_index_add(auth_lock_op_t *op, int64_t until_ms, int64_t now_ms)
{
    const char *k = op->sh->lock_index;
    char until[24], now[24], keep[24];

    if (op->ops == NULL || op->sh->lockouts_max == 0)
        return;
    snprintf(until, sizeof until, "%lld", (long long)until_ms);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(keep, sizeof keep, "%lld", -(long long)op->sh->lockouts_max - 1);
    const char *add[] = {"ZADD", k, "GT", until, op->ip};
    const char *trim[] = {"ZREMRANGEBYSCORE", k, "-inf", now};
    const char *bound[] = {"ZREMRANGEBYRANK", k, "0", keep};
    (void)op->ops->command(op->cl, k, strlen(k), 5, add, NULL, ignore_reply, NULL);
    (void)op->ops->command(op->cl, k, strlen(k), 4, trim, NULL, ignore_reply, NULL);
    (void)op->ops->command(op->cl, k, strlen(k), 4, bound, NULL, ignore_reply, NULL);
}

static void unlock_published(rc_client_t *c, redisReply *r, const char *errstr,
                             void *privdata)
{
    ban_op_t *op = privdata;

    (void)c;
    (void)errstr;
    ban_finish(op, r == NULL || r->type == REDIS_REPLY_ERROR ? AUTH_SHARED_UNAVAILABLE
                   : op->found                               ? AUTH_SHARED_DONE
                                                             : AUTH_SHARED_NONE);
}

static void unlock_unindexed(rc_client_t *c, redisReply *r, const char *errstr,
                             void *privdata)
{
    ban_op_t *op = privdata;
    char msg[AUTH_BAN_TARGET_MAX + 4];

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        ban_finish(op, AUTH_SHARED_UNAVAILABLE);
        return;
    }
    op->found |= r->integer > 0;
    snprintf(msg, sizeof msg, "u %s", op->e.target);
    const char *pub[] = {"PUBLISH", op->sh->chan_lock, msg};
    if (op->ops->command(op->cl, op->sh->chan_lock, strlen(op->sh->chan_lock), 3, pub, NULL,
                         unlock_published, op) == NULL)
        ban_finish(op, AUTH_SHARED_UNAVAILABLE);
}

static void unlock_deleted(rc_client_t *c, redisReply *r, const char *errstr,
                           void *privdata)
{
    ban_op_t *op = privdata;
    const char *k = op->sh->lock_index;

    (void)c;
    (void)errstr;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        ban_finish(op, AUTH_SHARED_UNAVAILABLE);
        return;
    }
    op->found |= r->integer > 0;
    const char *zrem[] = {"ZREM", k, op->e.target};
    if (op->ops->command(op->cl, k, strlen(k), 3, zrem, NULL, unlock_unindexed, op) == NULL)
        ban_finish(op, AUTH_SHARED_UNAVAILABLE);
}

int auth_shared_unlock(auth_shared_t *sh, const rc_ops_t *ops, void *cl, const char *ip_key,
                       auth_shared_ban_fn done, void *privdata)
{
    char key[AUTH_SHARED_NAME_MAX + IP_MAX + 8];
    ban_op_t *op;

    if (strlen(ip_key) >= IP_MAX || (op = ban_op_new(sh, ip_key, done, privdata)) == NULL)
        return -1;
    op->unban = true;
    op->found = auth_lockout_unlock(sh->lockout, ip_key);
    if (ops == NULL) {
        ban_finish(op, op->found ? AUTH_SHARED_DONE : AUTH_SHARED_NONE);
        return 0;
    }
    op->ops = ops;
    op->cl = cl;
    snprintf(key, sizeof key, "%s{lock:%s}", sh->prefix, ip_key);
    const char *del[] = {"DEL", key};
    if (ops->command(cl, key, strlen(key), 2, del, NULL, unlock_deleted, op) == NULL) {
        free(op);
        return -1;
    }
    /* cppcheck-suppress memleak */
    return 0;
}
