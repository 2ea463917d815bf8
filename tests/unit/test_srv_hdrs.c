/* test_srv_hdrs.c — the one-pass header scan (dec_hdrs_scan, moved from
 * server/hdrs.c to decide/dec_identify.c), fed evhttp's header list the way
 * the adapter feeds it: what it finds, and what it refuses that libevent 2.1
 * accepts (issue 7 §3). */
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../../decide/dec_internal.h"
#include "unit.h"

/* The headers of the last scan: `h` borrows from them until the next one. */
static struct evkeyvalq q = TAILQ_HEAD_INITIALIZER(q);

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

/* Scan `pairs` (name, value, ..., NULL); returns h->bad or "" when accepted.
 * NULL `pairs` only frees the last headers. */
static const char *scan(dec_hdrs_t *h, const char *const *pairs)
{
    evhttp_clear_headers(&q);
    memset(h, 0, sizeof(*h));
    if (pairs == NULL)
        return "";
    for (size_t i = 0; pairs[i] != NULL; i += 2)
        CU_ASSERT_EQUAL_FATAL(evhttp_add_header(&q, pairs[i], pairs[i + 1]), 0);
    int rc = dec_hdrs_scan(h, &(dec_headers_t){&q, q_find, q_each});
    CU_ASSERT_EQUAL(rc == 0, h->bad == NULL);
    return h->bad != NULL ? h->bad : "";
}

static void test_finds(void)
{
    static const char *const ok[] = {"host", "a.example", "X-API-Key", "k1",
                                     "X-Forwarded-For", "1.1.1.1", "x-forwarded-for",
                                     "2.2.2.2", "Content-Length", "5", NULL};
    dec_hdrs_t h;

    CU_ASSERT_STRING_EQUAL(scan(&h, ok), "");
    CU_ASSERT_STRING_EQUAL(h.host, "a.example");
    CU_ASSERT_STRING_EQUAL(h.api_key, "k1");
    CU_ASSERT_STRING_EQUAL(h.xff, "1.1.1.1");
    CU_ASSERT_EQUAL(h.nxff, 2);
    CU_ASSERT_STRING_EQUAL(h.content_length, "5");
    CU_ASSERT_FALSE(h.identity_exact || h.identity_variant || h.reserved_variant);
    scan(&h, NULL);
}

static void test_refuses(void)
{
    static const struct {
        const char *pairs[7];
        const char *why;
    } cases[] = {
        {{"Transfer-Encoding ", "chunked", NULL}, "bad_header_name"},
        {{"X-Foo bar", "1", NULL}, "bad_header_name"},
        {{"X-Foo", "a\001b", NULL}, "bad_header_value"},
        {{"X-Foo", "a\177", NULL}, "bad_header_value"},
        {{"Content-Length", "5", "Content-Length", "6", NULL}, "duplicate_header"},
        {{"Content-Length", "5", "content-length", "5", NULL}, "duplicate_header"},
        {{"Content-Length", "+5", NULL}, "bad_content_length"},
        {{"Content-Length", " 5", NULL}, "bad_content_length"},
        {{"Content-Length", "", NULL}, "bad_content_length"},
        {{"Transfer-Encoding", "gzip, chunked", NULL}, "bad_transfer_encoding"},
        {{"Transfer-Encoding", "chunked", "Content-Length", "3", NULL},
         "bad_transfer_encoding"},
        {{"X-API-Key", "a", "X-API-Key", "b", NULL}, "duplicate_header"},
        {{"Authorization", "Bearer a", "authorization", "Bearer b", NULL},
         "duplicate_header"},
        {{"Host", "a", "Host", "b", NULL}, "duplicate_header"},
        {{"X-Original-URI", "/a", "X-Original-URI", "/b", NULL}, "duplicate_header"},
    };
    dec_hdrs_t h;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(scan(&h, cases[i].pairs), cases[i].why) != 0)
            CU_FAIL(cases[i].pairs[0]);
    scan(&h, NULL);
}

static void test_accepts_tab_and_obs_text(void)
{
    static const char *const ok[] = {"X-Foo", "a\tb \xc3\xbc", "Transfer-Encoding",
                                      "Chunked", "X-Request-ID", "a", "X-Request-ID", "b",
                                      NULL};
    dec_hdrs_t h;

    CU_ASSERT_STRING_EQUAL(scan(&h, ok), "");
    CU_ASSERT_STRING_EQUAL(h.request_id, "a"); /* the first of a repeatable header */
    scan(&h, NULL);
}

static void test_reserved_spellings(void)
{
    static const char *const exact[] = {"X-Auth-Scopes", "admin", NULL};
    static const char *const variant[] = {"X_Auth_Scopes", "admin", NULL};
    static const char *const other[] = {"X_Real_IP", "6.6.6.6", "X_Custom", "1", NULL};
    dec_hdrs_t h;

    scan(&h, exact);
    CU_ASSERT_TRUE(h.identity_exact);
    CU_ASSERT_FALSE(h.identity_variant || h.reserved_variant);
    scan(&h, variant);
    CU_ASSERT_TRUE(h.identity_variant && h.reserved_variant);
    scan(&h, other);
    CU_ASSERT_FALSE(h.identity_exact || h.identity_variant);
    CU_ASSERT_TRUE(h.reserved_variant);
    scan(&h, NULL);
}

static const unit_test_t tests[] = {
    {"finds", test_finds},
    {"refuses", test_refuses},
    {"accepts_tab_and_obs_text", test_accepts_tab_and_obs_text},
    {"reserved_spellings", test_reserved_spellings},
    {NULL, NULL},
};

int test_srv_hdrs_add(void)
{
    return unit_add_suite("srv_hdrs", tests);
}
