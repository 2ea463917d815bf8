/* replay_line.c — one audit line back into a record, for `tollgate replay`
 * (srv_replay.h).  The log is outside input (anyone who can write the file
 * chooses its bytes): the line is bounded, parsed by jansson with duplicate
 * keys refused, every field must have the type audit.c writes, strings are
 * bounded, and nothing of the line is quoted in an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "srv_replay.h"

#define FIELD_MAX 256   /* bytes of a short string field (audit.c AUDIT_FIELD_MAX) */
#define PATH_MAX_B 8192 /* bytes of path (HTTP_MAX_PATH) */
#define SCOPE_MAX 128   /* bytes of one scope (audit.c) */

void srv_replay_rec_clear(srv_replay_rec_t *r)
{
    char **s[] = {&r->request_id, &r->client_id,   &r->method, &r->path,
                  &r->ip,         &r->decision,    &r->reason, &r->limit,
                  &r->route,      &r->auth_method, &r->iss,    &r->scopes,
                  &r->host,       &r->tier,        &r->peer,   &r->mode};

    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        free(*s[i]);
    for (size_t i = 0; i < r->nkeys; i++) {
        free((char *)r->keys[i].name);
        free((char *)r->keys[i].value);
    }
    memset(r, 0, sizeof(*r));
    r->status = -1;
}

static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t srv_replay_parse_ts(const char *s)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, se, ms;
    time_t t;

    /* YYYY-MM-DDTHH:MM:SS.mmmZ, exactly as audit.c writes it */
    if (s == NULL || strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    se = digits(s + 17, 2);
    ms = digits(s + 20, 3);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 ||
        ms < 0)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}

/* A string field or null into *dst (copied); -1 when it has another type,
 * is longer than `max`, or holds a NUL. */
static int str_field(json_t *o, const char *name, size_t max, bool required, char **dst)
{
    json_t *v = json_object_get(o, name);
    size_t len;

    if (v == NULL || json_is_null(v))
        return required ? -1 : 0;
    if (!json_is_string(v))
        return -1;
    len = json_string_length(v);
    if (len > max || memchr(json_string_value(v), '\0', len) != NULL)
        return -1;
    return (*dst = strndup(json_string_value(v), len)) != NULL ? 0 : -1;
}

/* A list of scopes, joined with spaces; a scope with a space is refused. */
static int scopes_field(json_t *o, char **dst)
{
    json_t *v = json_object_get(o, "scopes"), *e;
    size_t i, len = 0;
    char *s;

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > SRV_REPLAY_SCOPES_MAX)
        return -1;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            json_string_length(e) > SCOPE_MAX ||
            strpbrk(json_string_value(e), " ") != NULL ||
            strlen(json_string_value(e)) != json_string_length(e))
            return -1;
        len += json_string_length(e) + 1;
    }
    if ((s = *dst = calloc(1, len + 1)) == NULL)
        return -1;
    json_array_foreach(v, i, e)
    {
        if (i > 0)
            strcat(s, " ");
        strcat(s, json_string_value(e));
    }
    return 0;
}

/* "keys": {"header:NAME": value|null, "claim:NAME": value|null}, or null. */
static int keys_field(json_t *o, srv_replay_rec_t *r)
{
    json_t *v = json_object_get(o, "keys"), *e;
    const char *k;

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > SRV_REPLAY_KEYS_MAX)
        return -1;
    json_object_foreach(v, k, e)
    {
        size_t klen = strlen(k);
        dec_header_t *h = &r->keys[r->nkeys];

        if ((strncmp(k, "header:", 7) != 0 && strncmp(k, "claim:", 6) != 0) || klen > 96 ||
            klen <= (k[0] == 'h' ? 7u : 6u))
            return -1;
        if (!json_is_null(e) && (!json_is_string(e) || json_string_length(e) > FIELD_MAX ||
                                 strlen(json_string_value(e)) != json_string_length(e)))
            return -1;
        if ((h->name = strdup(k)) == NULL)
            return -1;
        r->nkeys++;
        if (json_is_string(e) && (h->value = strdup(json_string_value(e))) == NULL)
            return -1;
    }
    return 0;
}

/* The fields of audit.c's request line; -1 with the field's name. */
static int fields(json_t *o, srv_replay_rec_t *r, const char **field)
{
    static const struct {
        const char *name;
        size_t off, max;
        bool required;
    } str[] = {
#define F(n, m, q) {#n, offsetof(srv_replay_rec_t, n), m, q}
        F(request_id, FIELD_MAX, false), F(client_id, FIELD_MAX, false),
        F(method, FIELD_MAX, false),     F(path, PATH_MAX_B, false),
        F(ip, FIELD_MAX, false),         F(decision, FIELD_MAX, true),
        F(reason, FIELD_MAX, false),     F(limit, FIELD_MAX, false),
        F(route, FIELD_MAX, false),      F(auth_method, FIELD_MAX, false),
        F(iss, FIELD_MAX, false),        F(host, FIELD_MAX, false),
        F(tier, FIELD_MAX, false),       F(peer, FIELD_MAX, false),
        F(mode, FIELD_MAX, false),
#undef F
    };
    json_t *st = json_object_get(o, "status");

    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++) {
        *field = str[i].name;
        if (str_field(o, str[i].name, str[i].max, str[i].required,
                      (char **)((char *)r + str[i].off)) != 0)
            return -1;
    }
    *field = "status";
    if (st != NULL && !json_is_null(st)) {
        if (!json_is_integer(st) || json_integer_value(st) < 100 ||
            json_integer_value(st) > 599)
            return -1;
        r->status = (int)json_integer_value(st);
    }
    *field = "scopes";
    if (scopes_field(o, &r->scopes) != 0)
        return -1;
    *field = "keys";
    return keys_field(o, r);
}

/* The decision's time: decided_ms when the line has it, else ts. */
static int when(json_t *o, srv_replay_rec_t *r, const char **field)
{
    json_t *d = json_object_get(o, "decided_ms"), *ts = json_object_get(o, "ts");

    *field = "decided_ms";
    if (d != NULL && !json_is_null(d)) {
        if (!json_is_integer(d) || json_integer_value(d) <= 0 ||
            json_integer_value(d) > 253402300799999LL)
            return -1;
        r->t_ms = json_integer_value(d);
        return 0;
    }
    *field = "ts";
    if (!json_is_string(ts) || (r->t_ms = srv_replay_parse_ts(json_string_value(ts))) < 0)
        return -1;
    return 0;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; s != NULL && *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return s == NULL;
}

int srv_replay_parse_line(const char *line, size_t len, srv_replay_rec_t *out, char *err,
                          size_t errlen)
{
    static const char *const decisions[] = {"allow", "deny", "error", NULL};
    static const char *const methods[] = {"api_key", "jwt", "ticket", "none", NULL};
    static const char *const modes[] = {"proxy",   "envoy",  "nginx",
                                        "traefik", "ticket", NULL};
    json_error_t je;
    json_t *o, *kind;
    const char *field = "line";
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->status = -1;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return 0;
    if (len > SRV_REPLAY_LINE_MAX) {
        snprintf(err, errlen, "line longer than %d bytes", SRV_REPLAY_LINE_MAX);
        return -1;
    }
    o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL || !json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object (column %d)", o == NULL ? je.column : 1);
        json_decref(o);
        return -1;
    }
    kind = json_object_get(o, "kind");
    if (kind != NULL && json_is_string(kind) &&
        strcmp(json_string_value(kind), "admin") == 0) {
        json_decref(o);
        return 0; /* a privileged action's line: not a request */
    }
    if (kind != NULL) {
        field = "kind";
    } else if (when(o, out, &field) == 0 && fields(o, out, &field) == 0) {
        out->why = json_object_get(o, "auth_method") != NULL;
        if (!one_of(out->decision, decisions))
            field = "decision";
        else if (!one_of(out->auth_method, methods))
            field = "auth_method";
        else if (!one_of(out->mode, modes))
            field = "mode";
        else
            rc = 1;
    }
    json_decref(o);
    if (rc == 1)
        return 1;
    snprintf(err, errlen, "field \"%s\" missing or not as an audit line writes it", field);
    srv_replay_rec_clear(out);
    return -1;
}
