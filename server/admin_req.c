/* admin_req.c — see srv_admin_req.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tollgate/util_str.h"
#include "tollgate/auth_jwt.h"
#include "srv_admin_req.h"

/* A printable id of 1..256 bytes, no control characters. */
static int copy_id(const json_t *v, char *out, size_t outlen)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (s == NULL || n == 0 || n >= outlen || n > 256)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int get_time(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
        json_integer_value(v) > SRV_ADMIN_MAX_TIME)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int srv_admin_parse_revoke(const char *body, size_t len, int subject, srv_revoke_req_t *out,
                           char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *o, *v;
    const char *key;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > SRV_ADMIN_MAX_BODY) {
        snprintf(err, errlen, "body must be a JSON object of at most %d bytes",
                 SRV_ADMIN_MAX_BODY);
        return -1;
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "body is not a JSON object");
        goto out_free;
    }
    json_object_foreach(o, key, v)
    {
        const char *const *ok = subject
                                    ? (const char *const[]){"sub", "before", "iss", NULL}
                                    : (const char *const[]){"jti", "exp", "token", NULL};
        int known = 0;

        for (; *ok != NULL; ok++)
            known |= strcmp(key, *ok) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown member in body");
            goto out_free;
        }
    }
    if (subject) {
        out->kind = SRV_REVOKE_SUBJECT;
        if (copy_id(json_object_get(o, "sub"), out->id, sizeof(out->id)) != 0) {
            snprintf(err, errlen, "\"sub\" must be a string of 1..256 printable bytes");
            goto out_free;
        }
        v = json_object_get(o, "iss");
        if (v != NULL && copy_id(v, out->iss, sizeof(out->iss)) != 0) {
            snprintf(err, errlen, "\"iss\" must be a string of 1..256 printable bytes");
            goto out_free;
        }
        v = json_object_get(o, "before");
        if (v != NULL && get_time(v, &out->when) != 0) {
            snprintf(err, errlen, "\"before\" must be a positive integer (unix seconds)");
            goto out_free;
        }
        rc = 0;
        goto out_free;
    }
    v = json_object_get(o, "token");
    if (v != NULL) {
        const char *t = json_string_value(v);

        if (json_object_get(o, "jti") || json_object_get(o, "exp") || t == NULL ||
            json_string_length(v) == 0 || json_string_length(v) > AUTH_JWT_MAX_LEN) {
            snprintf(err, errlen, "give either {\"token\"} or {\"jti\",\"exp\"}");
            goto out_free;
        }
        out->kind = SRV_REVOKE_TOKEN;
        out->token = strdup(t);
        rc = out->token != NULL ? 0 : -1;
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    out->kind = SRV_REVOKE_JTI;
    if (copy_id(json_object_get(o, "jti"), out->id, sizeof(out->id)) != 0 ||
        get_time(json_object_get(o, "exp"), &out->when) != 0) {
        snprintf(err, errlen,
                 "\"jti\" (1..256 printable bytes) and \"exp\" (unix seconds) "
                 "are required");
        goto out_free;
    }
    rc = 0;
out_free:
    json_decref(o);
    if (rc != 0)
        srv_revoke_req_clear(out); /* a refused body leaves nothing behind */
    return rc;
}

void srv_revoke_req_clear(srv_revoke_req_t *r)
{
    if (r->token != NULL) {
        memset(r->token, 0, strlen(r->token));
        free(r->token);
    }
    memset(r, 0, sizeof(*r));
}

/* ---- GET /admin/v1/audit ------------------------------------------------ */

int srv_admin_parse_audit_query(const char *since, const char *limit, char *start,
                                size_t startlen, unsigned *count, char *err, size_t errlen)
{
    uint64_t ms, seq, n = SRV_AUDIT_PAGE_DEFAULT;
    const char *dash;

    if (limit != NULL && (util_parse_u64(limit, strlen(limit), &n) != 0 || n == 0 ||
                          n > SRV_AUDIT_PAGE_MAX)) {
        snprintf(err, errlen, "limit must be an integer from 1 to %d", SRV_AUDIT_PAGE_MAX);
        return -1;
    }
    *count = (unsigned)n;
    if (since == NULL) {
        snprintf(start, startlen, "-");
        return 0;
    }
    dash = strchr(since, '-');
    if (dash == NULL && util_parse_u64(since, strlen(since), &ms) == 0) {
        snprintf(start, startlen, "%llu-0", (unsigned long long)ms);
        return 0;
    }
    if (dash != NULL && util_parse_u64(since, (size_t)(dash - since), &ms) == 0 &&
        util_parse_u64(dash + 1, strlen(dash + 1), &seq) == 0) {
        snprintf(start, startlen, "(%llu-%llu", (unsigned long long)ms,
                 (unsigned long long)seq);
        return 0;
    }
    snprintf(err, errlen,
             "since must be a stream id (MS-SEQ, the last page's next) or unix ms");
    return -1;
}

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A value as printable ASCII, at most 256 bytes. */
static json_t *clean_str(const redisReply *v)
{
    char buf[257];
    size_t n = v->len < 256 ? v->len : 256;

    for (size_t i = 0; i < n; i++)
        buf[i] = (v->str[i] >= 0x20 && v->str[i] < 0x7f) ? v->str[i] : '?';
    buf[n] = '\0';
    return json_string(buf);
}

static json_t *int_of(const redisReply *v)
{
    uint64_t n;

    if (util_parse_u64(v->str, v->len, &n) != 0 || n > (uint64_t)INT64_MAX)
        return json_null();
    return json_integer((json_int_t)n);
}

static const char *const trail_fields[] = {
    "ts",
    "action",
    "target",
    "result",
    "status",
    "code",
    "actor",
    "replica",
    "request_id",
    "config_version_before",
    "config_version_after",
    "secrets_version_before",
    "secrets_version_after",
    NULL,
};

/* One [id, [field, value, ...]]; NULL when malformed. */
static json_t *trail_entry(const redisReply *e)
{
    const redisReply *id, *kv;
    json_t *o;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return NULL;
    id = e->element[0];
    kv = e->element[1];
    if (!is_str(id) || id->len == 0 || id->len > SRV_AUDIT_ID_MAX || kv == NULL ||
        kv->type != REDIS_REPLY_ARRAY || kv->elements % 2 != 0)
        return NULL;
    o = json_object();
    if (o == NULL || json_object_set_new(o, "id", clean_str(id)) != 0)
        goto out_bad;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *f = kv->element[i], *v = kv->element[i + 1];
        const char *const *k;

        if (!is_str(f) || !is_str(v))
            goto out_bad;
        for (k = trail_fields; *k != NULL; k++)
            if (strlen(*k) == f->len && memcmp(*k, f->str, f->len) == 0)
                break;
        if (*k == NULL)
            continue; /* not ours: left out */
        if (json_object_set_new(o, *k,
                                strcmp(*k, "ts") == 0 || strcmp(*k, "status") == 0
                                    ? int_of(v)
                                    : clean_str(v)) != 0)
            goto out_bad;
    }
    return o;
out_bad:
    json_decref(o);
    return NULL;
}

json_t *srv_admin_trail_entries(const redisReply *rep, size_t max, char *last,
                                size_t lastlen, char *err, size_t errlen)
{
    json_t *a;

    if (lastlen > 0)
        last[0] = '\0';
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "the stream's reply is not an array");
        return NULL;
    }
    a = json_array();
    for (size_t i = 0; a != NULL && i < rep->elements && i < max; i++) {
        json_t *e = trail_entry(rep->element[i]);

        if (e == NULL || json_array_append_new(a, e) != 0) {
            snprintf(err, errlen, "entry %zu of the stream's reply is malformed", i);
            json_decref(a);
            return NULL;
        }
        snprintf(last, lastlen, "%s", json_string_value(json_object_get(e, "id")));
    }
    if (a == NULL)
        snprintf(err, errlen, "out of memory");
    return a;
}
