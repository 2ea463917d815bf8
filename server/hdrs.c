/* hdrs.c — the request headers the pipeline reads, found in one pass.
 *
 * evhttp_find_header() walks the whole list with a case-insensitive compare
 * per header; the pipeline asks for a dozen names per request, so it reads
 * them all in one walk instead.  Like evhttp_find_header, the first of
 * repeated headers wins, except X-Forwarded-For, whose lines are all kept
 * (joined later by the caller).
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "srv_internal.h"

typedef struct known {
    const char *name;
    size_t off;
} known_t;

#define K(n, f)                                                                            \
    {                                                                                      \
        n, offsetof(srv_hdrs_t, f)                                                         \
    }
static const known_t known[] = {
    K("Host", host),
    K("Origin", origin),
    K("X-API-Key", api_key),
    K("X-Real-IP", real_ip),
    K("X-Request-ID", request_id),
    K("X-Sent-From", sent_from),
    K("Authorization", authorization),
    K("X-Original-URI", o_uri),
    K("X-Original-URL", o_url),
    K("X-Forwarded-Uri", f_uri),
    K("X-Forwarded-Host", f_host),
    K("X-Forwarded-Proto", f_proto),
    K("X-Forwarded-Method", f_method),
    K("X-Original-Method", o_method),
    K("Access-Control-Request-Method", acrm),
    K("Access-Control-Request-Headers", acrh),
};
#undef K

void srv_hdrs_scan(srv_hdrs_t *h, const struct evkeyvalq *in)
{
    for (const struct evkeyval *kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        size_t len = strlen(kv->key);

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
                break;
            }
        }
    }
}
