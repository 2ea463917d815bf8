/* hdrs.c — the request headers the pipeline reads, found and checked in one
 * pass.
 *
 * evhttp_find_header() walks the whole list with a case-insensitive compare
 * per header; the pipeline asks for a dozen names per request, so it reads
 * them all in one walk instead.  The same walk refuses what libevent 2.1
 * accepts but an upstream could read differently (request smuggling,
 * RFC 9112 §5.1 and §6.3): field names that are not tokens, control bytes in
 * values, a Content-Length that is not digits, Transfer-Encoding other than
 * a single "chunked" or next to a Content-Length, and a second copy of any
 * header that must be single (Host, credentials, framing, dialect headers).
 * X-Forwarded-For lines are all kept (joined later by the caller).
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "srv_req.h"

typedef struct known {
    const char *name;
    size_t off;
    bool single; /* a second copy is refused */
} known_t;

#define K(n, f, s)                                                                         \
    {                                                                                      \
        n, offsetof(srv_hdrs_t, f), s                                                      \
    }
static const known_t known[] = {
    K("Host", host, true),
    K("Origin", origin, false),
    K("X-API-Key", api_key, true),
    K("X-Real-IP", real_ip, true),
    K("X-Request-ID", request_id, false),
    K("X-Sent-From", sent_from, true),
    K("Authorization", authorization, true),
    K("X-Original-URI", o_uri, true),
    K("X-Original-URL", o_url, true),
    K("X-Forwarded-Uri", f_uri, true),
    K("X-Forwarded-Host", f_host, true),
    K("X-Forwarded-Proto", f_proto, true),
    K("X-Forwarded-Method", f_method, true),
    K("X-Original-Method", o_method, true),
    K("X-Original-Host", o_host, true),
    K("Content-Length", content_length, true),
    K("Transfer-Encoding", transfer_encoding, true),
    K("Access-Control-Request-Method", acrm, false),
    K("Access-Control-Request-Headers", acrh, false),
};
#undef K

/* Visible ASCII, obs-text, SP and HTAB only (RFC 9110 §5.5). */
static bool value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

static bool digits(const char *s)
{
    size_t n = strspn(s, "0123456789");

    return n > 0 && n <= 18 && s[n] == '\0';
}

/* Remember a name spelled like one of tollgate's own headers. */
static void note_reserved(srv_hdrs_t *h, const char *name)
{
    bool variant;
    http_hdr_class_t cls = http_hdr_class(name, &variant);

    if (cls == HTTP_HDR_IDENTITY && variant)
        h->identity_variant = true;
    else if (cls == HTTP_HDR_IDENTITY)
        h->identity_exact = true;
    if (variant)
        h->reserved_variant = true;
}

static int refuse(srv_hdrs_t *h, const char *why)
{
    h->bad = why;
    return -1;
}

/* The message framing of RFC 9112 §6: one unambiguous body length. */
static int check_framing(srv_hdrs_t *h)
{
    if (h->content_length != NULL && !digits(h->content_length))
        return refuse(h, "bad_content_length");
    if (h->transfer_encoding != NULL &&
        (strcasecmp(h->transfer_encoding, "chunked") != 0 || h->content_length != NULL))
        return refuse(h, "bad_transfer_encoding");
    return 0;
}

int srv_hdrs_scan(srv_hdrs_t *h, const struct evkeyvalq *in)
{
    for (const struct evkeyval *kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        size_t len = strlen(kv->key);

        if (!http_hdr_name_ok(kv->key))
            return refuse(h, "bad_header_name");
        if (!value_ok(kv->value))
            return refuse(h, "bad_header_value");
        if (memchr(kv->key, '_', len) != NULL || memchr(kv->key, '.', len) != NULL ||
            strncasecmp(kv->key, "X-Auth-", 7) == 0)
            note_reserved(h, kv->key);
        if (http_hdr_method_override(kv->key))
            h->method_override = true;
        if (len == 15 && strcasecmp(kv->key, "X-Forwarded-For") == 0) {
            if (h->nxff++ == 0)
                h->xff = kv->value;
            continue;
        }
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            const char **slot = (const char **)((char *)h + known[i].off);

            if (strlen(known[i].name) == len && strcasecmp(kv->key, known[i].name) == 0) {
                if (*slot == NULL)
                    *slot = kv->value;
                else if (known[i].single) {
                    h->dup_name = known[i].name;
                    return refuse(h, "duplicate_header");
                }
                break;
            }
        }
    }
    return check_framing(h);
}
