/* explain_req.c — POST /admin/v1/explain's body (srv_explain_req.h).
 *
 *   {"method":"GET","path":"/v1/orders?x=1","host":"api.example.com",
 *    "headers":{"X-API-Key":"..."} or [["X-API-Key","..."],...],
 *    "peer":"10.0.0.7","tls":false,"as_client":"orders-svc",
 *    "dialect":"nginx"|"traefik"|"envoy"}
 *
 * method and path are required; every other member is optional and an
 * unknown one is refused, as are duplicates (JSON_REJECT_DUPLICATES).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "srv_explain_req.h"

static int fail(srv_explain_req_t *rq, char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    srv_explain_req_clear(rq);
    return -1;
}

void srv_explain_req_clear(srv_explain_req_t *rq)
{
    json_decref(rq->root);
    memset(rq, 0, sizeof(*rq));
}

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A string member of at most `max` bytes, no NUL inside; NULL otherwise. */
static const char *str_of(const json_t *v, size_t max)
{
    const char *s = json_string_value(v);

    if (s == NULL || json_string_length(v) != strlen(s) || strlen(s) > max)
        return NULL;
    return s;
}

static bool no_ctl(const char *s, bool space_ok)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || (!space_ok && *s == ' '))
            return false;
    return true;
}

static const char *add_header(srv_explain_req_t *rq, const char *n, const json_t *val)
{
    const char *v = str_of(val, SRV_EXPLAIN_MAX_VALUE);

    if (rq->nheaders == SRV_EXPLAIN_MAX_HEADERS)
        return "headers: more than 100";
    if (n == NULL || n[0] == '\0' || strlen(n) > SRV_EXPLAIN_MAX_NAME)
        return "headers: a name must be a string of 1 to 256 bytes";
    for (const char *p = n; *p != '\0'; p++)
        if (!tchar((unsigned char)*p))
            return "headers: a name must be an HTTP token";
    if (v == NULL)
        return "headers: a value must be a string of at most 8192 bytes";
    for (const char *p = v; *p != '\0'; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return "headers: a value must have no control byte (CR, LF, NUL...)";
    rq->headers[rq->nheaders++] = (dec_header_t){n, v};
    return NULL;
}

/* {"name":"value",...} or [["name","value"],...] */
static const char *headers_of(srv_explain_req_t *rq, const json_t *h)
{
    const char *why, *k;
    const json_t *v;
    size_t i;

    if (json_is_object(h)) {
        json_object_foreach((json_t *)h, k, v)
        {
            if ((why = add_header(rq, k, v)) != NULL)
                return why;
        }
        return NULL;
    }
    if (!json_is_array(h))
        return "headers: an object or an array of [name, value] pairs";
    json_array_foreach(h, i, v)
    {
        if (!json_is_array(v) || json_array_size(v) != 2)
            return "headers: each entry of the array must be [name, value]";
        why = add_header(rq, str_of(json_array_get(v, 0), SRV_EXPLAIN_MAX_NAME),
                         json_array_get(v, 1));
        if (why != NULL)
            return why;
    }
    return NULL;
}

static bool is_ip(const char *s)
{
    unsigned char a[16];

    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 128)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("._:@-", *s) != NULL))
            return false;
    return true;
}

/* One member; NULL when taken, else why it is refused. */
static const char *member(srv_explain_req_t *rq, const char *k, const json_t *v)
{
    const char *s;

    if (strcmp(k, "method") == 0) {
        s = str_of(v, 16);
        if (s == NULL || s[0] == '\0' ||
            strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s))
            return "method: an upper-case method name (GET, POST...)";
        rq->method = s;
    } else if (strcmp(k, "path") == 0) {
        s = str_of(v, SRV_EXPLAIN_MAX_PATH);
        if (s == NULL || s[0] != '/' || !no_ctl(s, false))
            return "path: a string starting with '/', no space or control byte, "
                   "at most 8192 bytes";
        rq->path = s;
    } else if (strcmp(k, "host") == 0) {
        s = str_of(v, 255);
        if (s == NULL || s[0] == '\0' || !no_ctl(s, false))
            return "host: a string of 1 to 255 bytes, no space or control byte";
        rq->host = s;
    } else if (strcmp(k, "peer") == 0) {
        if ((s = str_of(v, 64)) == NULL || !is_ip(s))
            return "peer: an IPv4 or IPv6 address";
        rq->peer = s;
    } else if (strcmp(k, "tls") == 0) {
        if (!json_is_boolean(v))
            return "tls: true or false";
        rq->tls = json_is_true(v);
    } else if (strcmp(k, "as_client") == 0) {
        if ((s = str_of(v, 128)) == NULL || !id_ok(s))
            return "as_client: an API key id ([A-Za-z0-9._:@-]{1,128})";
        rq->as_client = s;
    } else if (strcmp(k, "dialect") == 0) {
        s = str_of(v, 16);
        if (s != NULL && strcmp(s, "nginx") == 0)
            rq->dialect = DEC_DIALECT_NGINX;
        else if (s != NULL && strcmp(s, "traefik") == 0)
            rq->dialect = DEC_DIALECT_TRAEFIK;
        else if (s != NULL && strcmp(s, "envoy") == 0)
            rq->dialect = DEC_DIALECT_ENVOY;
        else
            return "dialect: \"nginx\", \"traefik\" or \"envoy\"";
    } else if (strcmp(k, "headers") == 0) {
        return headers_of(rq, v);
    } else {
        return "unknown field (allowed: method, path, host, headers, peer, tls, "
               "as_client, dialect)";
    }
    return NULL;
}

static bool has_credential(const srv_explain_req_t *rq)
{
    for (size_t i = 0; i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, "X-API-Key") == 0 ||
            strcasecmp(rq->headers[i].name, "Authorization") == 0)
            return true;
    return false;
}

int srv_explain_parse(const char *body, size_t len, srv_explain_req_t *out, char *err,
                      size_t errlen)
{
    json_error_t jerr;
    const char *k, *why;
    json_t *v;

    memset(out, 0, sizeof(*out));
    if (len > SRV_EXPLAIN_MAX_BODY)
        return fail(out, err, errlen, "body over 65536 bytes");
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (out->root == NULL) {
        /* the position only: jansson's text may quote the body */
        snprintf(err, errlen, "invalid JSON (line %d, column %d)", jerr.line, jerr.column);
        srv_explain_req_clear(out);
        return -1;
    }
    if (!json_is_object(out->root))
        return fail(out, err, errlen, "the body must be a JSON object");
    json_object_foreach(out->root, k, v)
    {
        if ((why = member(out, k, v)) == NULL)
            continue;
        if (strncmp(why, "unknown field", 13) == 0 && id_ok(k) && strlen(k) <= 64)
            snprintf(err, errlen,
                     "unknown field \"%s\" (allowed: method, path, host, "
                     "headers, peer, tls, as_client, dialect)",
                     k);
        else
            snprintf(err, errlen, "%s", why);
        srv_explain_req_clear(out);
        return -1;
    }
    if (out->method == NULL || out->path == NULL)
        return fail(out, err, errlen, "method and path are required");
    if (out->as_client != NULL && has_credential(out))
        return fail(out, err, errlen,
                    "as_client and a credential header (X-API-Key, Authorization): "
                    "give one");
    if (out->peer == NULL)
        out->peer = "";
    return 0;
}

bool srv_explain_carries_credential(const srv_explain_req_t *rq)
{
    static const char *const names[] = {"X-API-Key", "Authorization", "Proxy-Authorization",
                                        "Cookie"};
    const char *q = strchr(rq->path, '?');

    for (size_t i = 0; i < rq->nheaders; i++)
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcasecmp(rq->headers[i].name, names[k]) == 0)
                return true;
    for (; q != NULL; q = strchr(q + 1, '&'))
        if (strncmp(q + 1, "ticket=", 7) == 0)
            return true;
    return false;
}
