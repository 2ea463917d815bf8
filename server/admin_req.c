/* admin_req.c — see srv_admin_req.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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
                                    ? (const char *const[]){"sub", "before", NULL}
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
