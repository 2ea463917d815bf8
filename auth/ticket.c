/* ticket.c — one-time tickets; see include/tollgate/auth_ticket.h. */
#include "tollgate/auth_ticket.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "tollgate/util_b64.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_hash.h"

#define TICKET_BYTES 32
#define KFP_HEX 64 /* characters of an API key's fingerprint (HMAC-SHA256) */

int auth_ticket_make(char *out)
{
    unsigned char rnd[TICKET_BYTES];

    if (util_random(rnd, sizeof rnd) != 0)
        return -1;
    util_b64url_encode(rnd, sizeof rnd, out);
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

bool auth_ticket_wellformed(const char *s, size_t n)
{
    unsigned char buf[TICKET_BYTES + 2];

    return s != NULL && n == AUTH_TICKET_LEN &&
           util_b64url_decode(s, n, buf, sizeof buf) == TICKET_BYTES;
}

int auth_ticket_key(const char *prefix, const char *ticket, size_t n, char *key,
                    size_t keylen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    char h[2 * SHA256_DIGEST_LENGTH + 1];
    int len;

    SHA256((const unsigned char *)ticket, n, md);
    for (size_t i = 0; i < sizeof md; i++) {
        h[2 * i] = hex[md[i] >> 4];
        h[2 * i + 1] = hex[md[i] & 15];
    }
    h[sizeof h - 1] = '\0';
    len = snprintf(key, keylen, "%s{tkt:%s}", prefix, h);
    return len > 0 && (size_t)len < keylen ? 0 : -1;
}

/* ---- the stored identity ---------------------------------------------------- */

static json_t *jstr_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* The fingerprint of API key `k` for `ticket`: HMAC-SHA256 keyed with the
 * ticket over the key's digest, in hex.  Bound to the key itself (a key
 * rotated under the same id has another), and useless without the ticket,
 * which is never stored: what is in Redis does not help to guess a key. */
static int key_fingerprint(const char *ticket, const auth_apikey_t *k,
                           char out[KFP_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    static const char label[] = "tollgate ticket api key\n";
    unsigned char msg[sizeof label - 1 + sizeof k->sha256], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, k->sha256, sizeof k->sha256);
    if (HMAC(EVP_sha256(), ticket, (int)strlen(ticket), msg, sizeof msg, md, &mdlen) ==
            NULL ||
        mdlen != KFP_HEX / 2)
        return -1;
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[KFP_HEX] = '\0';
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

char *auth_ticket_encode(const auth_identity_t *id, const char *ticket,
                         const auth_keystore_t *keys)
{
    json_t *o = json_object(), *scopes = json_array(), *hdrs = json_object();
    const char *iss = auth_identity_claim(id, "iss", NULL, 0);
    const auth_apikey_t *k = NULL;
    char kfp[KFP_HEX + 1];
    char *text = NULL;

    if (o == NULL || scopes == NULL || hdrs == NULL)
        goto out;
    if (id->kind == AUTH_KIND_API_KEY &&
        ((k = auth_keystore_find_digest(keys, id->key_sha256)) == NULL ||
         id->client_id == NULL || strcmp(k->id, id->client_id) != 0 ||
         key_fingerprint(ticket, k, kfp) != 0 ||
         json_object_set_new(o, "kfp", json_string(kfp)) != 0))
        goto out;
    for (size_t i = 0; i < id->nscopes; i++)
        json_array_append_new(scopes, json_string(id->scopes[i]));
    for (size_t i = 0; i < id->nhdrs; i++)
        json_object_set_new(hdrs, id->hdrs[i].name, json_string(id->hdrs[i].value));
    if (json_object_set_new(o, "v", json_integer(1)) == 0 &&
        json_object_set_new(o, "kind", json_integer(id->kind)) == 0 &&
        json_object_set_new(o, "client_id", jstr_or_null(id->client_id)) == 0 &&
        json_object_set_new(o, "subject", jstr_or_null(id->subject)) == 0 &&
        json_object_set_new(o, "tier", jstr_or_null(id->tier)) == 0 &&
        json_object_set_new(o, "jti", jstr_or_null(id->jti)) == 0 &&
        json_object_set_new(o, "iss", jstr_or_null(iss)) == 0 &&
        json_object_set_new(o, "iat", json_integer(id->iat)) == 0 &&
        json_object_set_new(o, "exp", json_integer(id->exp)) == 0 &&
        json_object_set_new(o, "deprecated", json_boolean(id->deprecated)) == 0 &&
        json_object_set(o, "scopes", scopes) == 0 && json_object_set(o, "hdrs", hdrs) == 0)
        text = json_dumps(o, JSON_COMPACT);
out:
    json_decref(scopes);
    json_decref(hdrs);
    json_decref(o);
    return text;
}

static int opt_str(const json_t *o, const char *name, char **dst)
{
    const json_t *j = json_object_get(o, name);

    *dst = NULL;
    if (j == NULL || json_is_null(j))
        return 0;
    if (!json_is_string(j) || (*dst = strdup(json_string_value(j))) == NULL)
        return -1;
    return 0;
}

static int decode_lists(const json_t *o, auth_identity_t *out)
{
    json_t *scopes = json_object_get(o, "scopes"), *hdrs = json_object_get(o, "hdrs");
    const char *name;
    json_t *v;
    size_t i;

    if (!json_is_array(scopes) || !json_is_object(hdrs))
        return -1;
    out->scopes = calloc(json_array_size(scopes) + 1, sizeof(char *));
    out->hdrs = calloc(json_object_size(hdrs) + 1, sizeof(auth_hdr_t));
    if (out->scopes == NULL || out->hdrs == NULL)
        return -1;
    json_array_foreach(scopes, i, v)
    {
        if (!json_is_string(v) ||
            (out->scopes[out->nscopes] = strdup(json_string_value(v))) == NULL)
            return -1;
        out->nscopes++;
    }
    json_object_foreach(hdrs, name, v)
    {
        auth_hdr_t *h = &out->hdrs[out->nhdrs];

        if (!json_is_string(v))
            return -1;
        h->name = strdup(name);
        h->value = strdup(json_string_value(v));
        out->nhdrs++;
        if (h->name == NULL || h->value == NULL)
            return -1;
    }
    return 0;
}

/* The identity of stored object `o` into `out` (cleared on error). */
static int decode_obj(const json_t *o, auth_identity_t *out)
{
    const json_t *kind = json_object_get(o, "kind"), *iss = json_object_get(o, "iss");
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1 ||
        !json_is_integer(kind) ||
        (json_integer_value(kind) != AUTH_KIND_API_KEY &&
         json_integer_value(kind) != AUTH_KIND_JWT))
        goto out;
    out->kind = (auth_kind_t)json_integer_value(kind);
    out->ticket = true;
    out->deprecated = json_is_true(json_object_get(o, "deprecated"));
    out->iat = json_integer_value(json_object_get(o, "iat"));
    out->exp = json_integer_value(json_object_get(o, "exp"));
    if (opt_str(o, "client_id", &out->client_id) != 0 || out->client_id == NULL ||
        opt_str(o, "subject", &out->subject) != 0 || opt_str(o, "tier", &out->tier) != 0 ||
        opt_str(o, "jti", &out->jti) != 0 || decode_lists(o, out) != 0)
        goto out;
    /* the issuer keeps a JWT user's bucket identity ("j:ISS|SUB") */
    if (json_is_string(iss) &&
        (out->claims = json_pack("{s:s}", "iss", json_string_value(iss))) == NULL)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        auth_identity_clear(out);
    return rc;
}

int auth_ticket_decode(const char *text, size_t len, auth_identity_t *out)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = decode_obj(o, out);

    json_decref(o);
    return rc;
}

/* ---- the credential, checked again on use ------------------------------ */

/* An API key identity against the key store in force: the same key (its
 * fingerprint), then scopes, tier and deprecation as its line says now. */
static const char *recheck_api_key(const auth_ticket_check_t *chk, const char *kfp,
                                   auth_identity_t *id)
{
    const auth_apikey_t *k;
    char want[KFP_HEX + 1];

    if (kfp == NULL || strlen(kfp) != KFP_HEX || chk->ticket == NULL)
        return "invalid_ticket"; /* not one of ours (an older replica's) */
    if (chk->keys == NULL)
        return "ticket_credential_disabled";
    k = auth_keystore_find_id(chk->keys, id->client_id);
    if (k == NULL)
        return "ticket_key_removed";
    /* the very key among the id's keys (rotation overlaps several) */
    for (; k != NULL; k = auth_keystore_next_of_id(chk->keys, k))
        if (key_fingerprint(chk->ticket, k, want) == 0 &&
            CRYPTO_memcmp(want, kfp, KFP_HEX) == 0)
            break;
    if (k == NULL)
        return "ticket_key_rotated";
    if (auth_apikey_expired(k, chk->now_s))
        return "key_expired";
    auth_identity_clear(id);
    if (auth_apikey_identity(k, id) != 0)
        return "invalid_ticket";
    id->ticket = true;
    return NULL;
}

/* A JWT identity: accepted now, not expired (exp + leeway, as a bearer
 * token), not revoked. */
static const char *recheck_jwt(const auth_ticket_check_t *chk, const auth_identity_t *id)
{
    if (!chk->jwt)
        return "ticket_credential_disabled";
    if (id->exp <= 0 || id->exp <= chk->now_s - (int64_t)chk->leeway_s)
        return "ticket_token_expired"; /* exp + leeway <= now, without overflow */
    if (chk->revoked != NULL &&
        auth_revoke_check(chk->revoked, id->jti, auth_identity_claim(id, "iss", NULL, 0),
                          id->subject, id->iat, chk->now_s))
        return "revoked";
    return NULL;
}

const char *auth_ticket_restore(const char *val, size_t len, const auth_ticket_check_t *chk,
                                auth_identity_t *out)
{
    json_t *o;
    const char *why;

    memset(out, 0, sizeof(*out));
    if (val == NULL)
        return "invalid_ticket";
    o = json_loadb(val, len, JSON_REJECT_DUPLICATES, NULL);
    if (decode_obj(o, out) != 0)
        why = "invalid_ticket";
    else if (out->kind == AUTH_KIND_API_KEY)
        why = recheck_api_key(chk, json_string_value(json_object_get(o, "kfp")), out);
    else
        why = recheck_jwt(chk, out);
    json_decref(o);
    if (why != NULL)
        auth_identity_clear(out);
    return why;
}

/* ---- memory store ------------------------------------------------------------ */

typedef struct mem_entry {
    util_hnode_t node;
    char *key, *val;
    int64_t expire_ms;
} mem_entry_t;

struct auth_tickets {
    pthread_mutex_t mu;
    util_htab_t tab;
    size_t max;
};

auth_tickets_t *auth_tickets_new(size_t max)
{
    auth_tickets_t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    if (util_htab_init(&t->tab, 64, util_pow2_at_least(max, (size_t)1 << 22)) != 0) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->max = max;
    return t;
}

static void mem_drop(auth_tickets_t *t, mem_entry_t *e)
{
    util_htab_del(&t->tab, &e->node);
    free(e->key);
    free(e->val);
    free(e);
}

/* Drop every ticket expired at `now_ms` (when the store is full). */
static void mem_sweep(auth_tickets_t *t, int64_t now_ms)
{
    for (size_t i = 0; i < t->tab.nslots; i++) {
        util_hnode_t *n = t->tab.slots[i], *next;

        for (; n != NULL; n = next) {
            mem_entry_t *e =
                (mem_entry_t *)(void *)((char *)n - offsetof(mem_entry_t, node));

            next = n->next;
            if (e->expire_ms <= now_ms)
                mem_drop(t, e);
        }
    }
}

static mem_entry_t *mem_find(auth_tickets_t *t, const char *key, uint64_t h)
{
    for (util_hnode_t *n = util_htab_chain(&t->tab, h); n != NULL; n = n->next) {
        mem_entry_t *e = UTIL_HNODE_ENTRY(n, mem_entry_t, node);

        if (n->hash == h && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

void auth_tickets_free(auth_tickets_t *t)
{
    if (t == NULL)
        return;
    mem_sweep(t, INT64_MAX);
    util_htab_destroy(&t->tab);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int auth_tickets_put(auth_tickets_t *t, const char *key, const char *val, int64_t expire_ms)
{
    uint64_t h = util_hash_bytes(key, strlen(key));
    mem_entry_t *e;
    int rc = -1;

    pthread_mutex_lock(&t->mu);
    if (t->tab.count >= t->max)
        mem_sweep(t, (int64_t)util_wall_ms());
    if (t->tab.count >= t->max || mem_find(t, key, h) != NULL)
        goto out;
    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->key = strdup(key)) == NULL || (e->val = strdup(val)) == NULL) {
        if (e != NULL)
            free(e->key);
        free(e);
        goto out;
    }
    e->expire_ms = expire_ms;
    e->node.hash = h;
    util_htab_add(&t->tab, &e->node);
    rc = 0;
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

char *auth_tickets_take(auth_tickets_t *t, const char *key, int64_t now_ms)
{
    uint64_t h = util_hash_bytes(key, strlen(key));
    mem_entry_t *e;
    char *val = NULL;

    pthread_mutex_lock(&t->mu);
    e = mem_find(t, key, h);
    if (e != NULL) {
        if (e->expire_ms > now_ms) {
            val = e->val;
            e->val = NULL;
        }
        mem_drop(t, e); /* used or expired: gone either way */
    }
    pthread_mutex_unlock(&t->mu);
    return val;
}

/* ---- Redis ------------------------------------------------------------------------ */

struct auth_ticket_op {
    const rc_ops_t *ops;
    void *cl;
    rc_pending_t *pending;
    auth_ticket_done_fn done;
    void *privdata;
};

static void op_reply(rc_client_t *c, redisReply *r, const char *errstr, void *privdata)
{
    auth_ticket_op_t *op = privdata;
    bool failed = r == NULL || r->type == REDIS_REPLY_ERROR;
    bool value =
        !failed && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);

    (void)c;
    (void)errstr;
    op->done(value ? r->str : NULL, value ? r->len : 0, failed, op->privdata);
    free(op);
}

static auth_ticket_op_t *op_send(const rc_ops_t *ops, void *cl, int argc, const char **argv,
                                 auth_ticket_done_fn done, void *privdata)
{
    auth_ticket_op_t *op;

    if (ops == NULL || !ops->up(cl) || (op = calloc(1, sizeof(*op))) == NULL)
        return NULL;
    op->ops = ops;
    op->cl = cl;
    op->done = done;
    op->privdata = privdata;
    op->pending =
        ops->command(cl, argv[1], strlen(argv[1]), argc, argv, NULL, op_reply, op);
    if (op->pending == NULL) {
        free(op);
        return NULL;
    }
    return op;
}

auth_ticket_op_t *auth_ticket_issue(const rc_ops_t *ops, void *cl, const char *key,
                                    const char *val, unsigned ttl_s,
                                    auth_ticket_done_fn done, void *privdata)
{
    char ttl[16];
    const char *argv[] = {"SET", key, val, "EX", ttl, "NX"};

    snprintf(ttl, sizeof ttl, "%u", ttl_s > 0 ? ttl_s : 1);
    return op_send(ops, cl, 6, argv, done, privdata);
}

auth_ticket_op_t *auth_ticket_redeem(const rc_ops_t *ops, void *cl, const char *key,
                                     auth_ticket_done_fn done, void *privdata)
{
    const char *argv[] = {"GETDEL", key};

    return op_send(ops, cl, 2, argv, done, privdata);
}

void auth_ticket_cancel(auth_ticket_op_t *op)
{
    if (op == NULL)
        return;
    op->ops->cancel(op->cl, op->pending);
    free(op);
}
