/* fuzz_xff.c — libFuzzer target for http_client_ip with an arbitrary
 * X-Forwarded-For value (and, on the same bytes, the CIDR and host:port
 * parsers).  The first byte picks the peer; the rest is the XFF value.
 *
 * Checks: the result is always a valid, normalized address that fits
 * HTTP_IP_STRLEN; an untrusted peer's XFF is ignored; the result is never a
 * hop left of an untrusted one (checked indirectly: with an untrusted peer
 * the answer is exactly the peer). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const peers[] = {"10.0.0.2",       "127.0.0.1",   "::1",
                                    "fd00::5",        "203.0.113.9", "2001:db8::9",
                                    "::ffff:10.1.1.1"};

static void check_addr(const char *out)
{
    unsigned char b[16];
    char again[HTTP_IP_STRLEN];

    if (strlen(out) >= HTTP_IP_STRLEN)
        abort();
    if (inet_pton(AF_INET, out, b) == 1) {
        inet_ntop(AF_INET, b, again, sizeof(again));
    } else if (inet_pton(AF_INET6, out, b) == 1) {
        inet_ntop(AF_INET6, b, again, sizeof(again));
        if (memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
            abort(); /* v4-mapped must come out as v4 */
    } else {
        abort();
    }
    if (strcmp(out, again) != 0)
        abort(); /* not normalized */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static http_cidr_list_t trusted;
    char out[HTTP_IP_STRLEN], host[256], *xff;
    const char *peer;
    http_cidr_t c;
    uint16_t port;

    if (trusted.n == 0 && http_cidr_list_default(&trusted) != 0)
        abort();
    if (size == 0)
        return 0;
    peer = peers[data[0] % (sizeof(peers) / sizeof(peers[0]))];
    xff = malloc(size);
    if (xff == NULL)
        return 0;
    memcpy(xff, data + 1, size - 1);
    xff[size - 1] = '\0';

    http_client_ip(peer, xff, &trusted, out, sizeof(out));
    check_addr(out);
    if (!http_cidr_list_contains(&trusted, peer)) {
        char norm[HTTP_IP_STRLEN];
        http_client_ip(peer, NULL, &trusted, norm, sizeof(norm));
        if (strcmp(out, norm) != 0)
            abort();
    }
    (void)http_cidr_list_contains(&trusted, xff);
    if (http_cidr_parse(xff, &c) == 0 && (c.prefix > (c.family == AF_INET ? 32u : 128u)))
        abort();
    (void)http_parse_hostport(xff, host, sizeof(host), &port);
    free(xff);
    return 0;
}
