/* fuzz_hdrs.c — libFuzzer target for the request header checks: the
 * one-pass scan of decide/dec_identify.c, dec_hdrs_scan, fed evhttp's list the
 * way the adapter feeds it (what libevent 2.1 would hand it: names and
 * values without CR/LF), http_hdr_class() and http_hdr_value_encode().
 * Input: lines "name:value"; a line without ':' is a name with an empty
 * value.
 *
 * Checks: an accepted set has token names, no control bytes but HTAB in
 * values, digits-only Content-Length, no Transfer-Encoding next to a
 * Content-Length; a refusal always says why; the encoder's output is visible
 * ASCII without ',' and fits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../../decide/dec_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct evkeyvalq *q, const dec_hdrs_t *h)
{
    for (const struct evkeyval *kv = q->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (!http_hdr_name_ok(kv->key))
            abort();
        for (const unsigned char *p = (const unsigned char *)kv->value; *p; p++)
            if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                abort();
    }
    if (h->content_length != NULL &&
        strspn(h->content_length, "0123456789") != strlen(h->content_length))
        abort();
    if (h->transfer_encoding != NULL && h->content_length != NULL)
        abort();
}

static void check_encode(const char *s)
{
    char out[64];
    size_t n = http_hdr_value_encode(s, false, out, sizeof(out));

    if (n >= sizeof(out) || strlen(out) != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f || out[i] == ',')
            abort();
}

static const char *q_find(void *ctx, const char *name)
{
    return evhttp_find_header(ctx, name);
}

static void q_each(void *ctx, dec_header_fn fn, void *arg)
{
    for (const struct evkeyval *kv = ((struct evkeyvalq *)ctx)->tqh_first; kv != NULL;
         kv = kv->next.tqe_next)
        if (fn(arg, kv->key, kv->value) != 0)
            return;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct evkeyvalq q;
    dec_hdrs_t h;
    char *buf = malloc(size + 1), *line, *save = NULL;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    TAILQ_INIT(&q);
    for (line = strtok_r(buf, "\r\n", &save); line != NULL;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        bool variant;

        if (colon != NULL)
            *colon = '\0';
        http_hdr_class(line, &variant);
        check_encode(line);
        (void)evhttp_add_header(&q, line, colon != NULL ? colon + 1 : "");
    }
    memset(&h, 0, sizeof(h));
    if (dec_hdrs_scan(&h, &(dec_headers_t){&q, q_find, q_each}) == 0)
        check_accepted(&q, &h);
    else if (h.bad == NULL)
        abort();
    evhttp_clear_headers(&q);
    free(buf);
    return 0;
}
