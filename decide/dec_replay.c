/* dec_replay.c — step 5 for replay (server/replay.c): a recorded request
 * is decided as the identity its audit line names, its secret never in the
 * log.  Only a context made by dec_ctx_new_replay() reads
 * dec_input_t.replay_as: the listeners' and explain's contexts never do, so
 * no request from outside can choose who it is decided as.
 *
 * API-key clients take their scopes and tier from the candidate's key store
 * when it has the id (its first key not past not_after at the recorded
 * time), else from the line; JWT subjects and ticket holders from the line.
 * The route's accepted methods and the auth mode are the candidate's.
 */
#include <stdlib.h>
#include <string.h>

#include "tollgate/auth_apikey.h"
#include "dec_internal.h"

bool dec_replaying(const dec_req_t *r)
{
    const char *m;

    if (!r->ctx->replay || r->in.replay_as == NULL || (m = r->in.replay_as->method) == NULL)
        return false;
    return strcmp(m, "api_key") == 0 || strcmp(m, "jwt") == 0 || strcmp(m, "ticket") == 0;
}

static bool mode_has(cfg_auth_mode_t m, cfg_auth_mode_t want)
{
    return m == want || m == CFG_AUTH_ANY;
}

/* "a b c" into id->scopes.  0, or -1 when out of memory. */
static int split_scopes(auth_identity_t *id, const char *s)
{
    size_t n = 0, cap = 0;
    const char *p = s;

    while (p != NULL && *p != '\0') {
        size_t len;
        char **v;

        p += strspn(p, " ");
        len = strcspn(p, " ");
        if (len == 0)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            if ((v = realloc(id->scopes, cap * sizeof(*v))) == NULL)
                return -1;
            id->scopes = v;
        }
        if ((id->scopes[n] = strndup(p, len)) == NULL)
            return -1;
        id->nscopes = ++n;
        p += len;
    }
    return 0;
}

/* The JWT claims a decision reads of a recorded subject: iss, sub, and the
 * values recorded for limits keyed on claims. */
static json_t *claims_of(const dec_replay_id_t *rid)
{
    json_t *c = json_object();

    if (c == NULL)
        return NULL;
    if (rid->iss != NULL)
        json_object_set_new(c, "iss", json_string(rid->iss));
    json_object_set_new(c, "sub", json_string(rid->client_id));
    for (size_t i = 0; i < rid->nclaims; i++)
        if (rid->claims[i].value != NULL)
            json_object_set_new(c, rid->claims[i].name, json_string(rid->claims[i].value));
    return c;
}

/* The line's identity into r->id.  0, or -1 when out of memory. */
static int recorded(dec_req_t *r, auth_kind_t kind)
{
    const dec_replay_id_t *rid = r->in.replay_as;
    auth_identity_t *id = &r->id;

    id->kind = kind;
    id->ticket = strcmp(rid->method, "ticket") == 0;
    if ((id->client_id = strdup(rid->client_id)) == NULL ||
        (id->subject = strdup(rid->client_id)) == NULL ||
        (rid->tier != NULL && (id->tier = strdup(rid->tier)) == NULL) ||
        split_scopes(id, rid->scopes) != 0 ||
        (kind == AUTH_KIND_JWT && (id->claims = claims_of(rid)) == NULL)) {
        auth_identity_clear(id);
        return -1;
    }
    return 0;
}

/* An API-key client as the candidate's key store has it, at the recorded
 * time; NULL when the store does not name it. */
static const auth_apikey_t *candidate_key(const dec_req_t *r, const char *client)
{
    const auth_keystore_t *ks = r->cfg->auth.keys;
    const auth_apikey_t *k = ks != NULL ? auth_keystore_find_id(ks, client) : NULL;

    for (; k != NULL; k = auth_keystore_next_of_id(ks, k))
        if (k->not_after == 0 || !auth_apikey_expired(k, dec_wall_ms(r) / 1000))
            return k;
    return NULL;
}

dec_step_t dec_replay_identity(dec_req_t *r, unsigned methods, const char **reason)
{
    const dec_replay_id_t *rid = r->in.replay_as;
    const cfg_t *c = r->cfg;
    bool jwt = strcmp(rid->method, "jwt") == 0 ||
               (strcmp(rid->method, "ticket") == 0 && rid->iss != NULL);
    cfg_auth_mode_t want = jwt ? CFG_AUTH_JWT : CFG_AUTH_API_KEY;
    unsigned bit = jwt ? CFG_METHOD_JWT : CFG_METHOD_API_KEY;
    const auth_apikey_t *k;

    if (rid->client_id == NULL) {
        *reason = rid->refused != NULL ? rid->refused : "invalid_credentials";
        return DEC_ANSWERED; /* refused when recorded: its secret is not here */
    }
    if (!mode_has(c->auth.mode, want) || (!jwt && !c->auth.api_key_enabled) ||
        (strcmp(rid->method, "ticket") != 0 && !(methods & bit)) ||
        (strcmp(rid->method, "ticket") == 0 && !r->route->tickets)) {
        *reason = "auth_method";
        return DEC_ANSWERED;
    }
    if (!jwt && (k = candidate_key(r, rid->client_id)) != NULL &&
        auth_apikey_identity(k, &r->id) == 0) {
        r->id.ticket = strcmp(rid->method, "ticket") == 0;
        return DEC_NEXT;
    }
    if (recorded(r, jwt ? AUTH_KIND_JWT : AUTH_KIND_API_KEY) == 0)
        return DEC_NEXT;
    *reason = "out_of_memory";
    return DEC_ANSWERED;
}
