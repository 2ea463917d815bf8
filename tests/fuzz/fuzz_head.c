/* fuzz_head.c — libFuzzer target for http_head_scan (http/headers.c), which
 * reads every request head for NUL bytes as it arrives off the socket.
 * Input: byte 0 picks the piece size (1..16), the rest is the stream.
 *
 * Checks, against a one-shot reference over the whole stream: the head ends
 * at the first blank line (LF LF or LF CR LF, the first line included) and
 * its length is reported, a NUL is reported exactly when one is in the head,
 * the Content-Length is the largest of the plain "Content-Length: digits"
 * lines of the head, and feeding it in pieces gives the same verdict as
 * feeding it at once; the request line's method (conn.c refuses what
 * libevent would not parse) is read alike in pieces, and a token only when
 * one ends at an SP. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tollgate/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The head's length (up to and including its ending LF), or size when the
 * stream has no end of head yet; *nul when a NUL is in it. */
static size_t reference(const uint8_t *p, size_t size, bool *nul, bool *ended)
{
    bool line_start = false; /* after an LF */
    size_t i;

    *nul = false;
    *ended = false;
    for (i = 0; i < size; i++) {
        if (line_start && p[i] == '\n') {
            *ended = true;
            return i + 1;
        }
        if (line_start && p[i] == '\r' && i + 1 < size && p[i + 1] == '\n') {
            *ended = true;
            return i + 2;
        }
        if (line_start && p[i] == '\r' && i + 1 == size)
            return size; /* CR at a line start, its LF not here yet */
        if (p[i] == 0)
            *nul = true;
        line_start = p[i] == '\n';
    }
    return size;
}

/* A header line (without its LF) that is "Content-Length:" OWS digits OWS
 * [CR]: its value, saturated; else -1 (as a flag in *ok). */
static uint64_t ref_clen(const uint8_t *l, size_t n, bool *ok)
{
    size_t i = 15;
    uint64_t v = 0;
    bool digits = false;

    *ok = false;
    if (n < 15 || strncasecmp((const char *)l, "content-length:", 15) != 0)
        return 0;
    if (n > 15 && l[n - 1] == '\r')
        n--;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    for (; i < n && l[i] >= '0' && l[i] <= '9'; i++, digits = true)
        v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (l[i] - '0');
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    *ok = digits && i == n;
    return v;
}

/* The largest Content-Length of the head's complete header lines. */
static bool ref_head_clen(const uint8_t *p, size_t head, uint64_t *clen)
{
    const uint8_t *nl, *line = memchr(p, '\n', head);
    bool has = false, ok;
    uint64_t v;

    *clen = 0;
    while (line != NULL && (size_t)(line + 1 - p) < head) {
        line++;
        nl = memchr(line, '\n', head - (size_t)(line - p));
        if (nl == NULL)
            break;
        v = ref_clen(line, (size_t)(nl - line), &ok);
        if (ok && (!has || v > *clen))
            *clen = v;
        has |= ok;
        line = nl;
    }
    return has;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t clen;
    bool has_clen;
    size_t len;
    http_head_scan_t whole, pieces;
    bool nul, ended;
    size_t step;

    if (size < 1)
        return 0;
    step = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    len = reference(data, size, &nul, &ended);
    has_clen = ref_head_clen(data, len, &clen);

    http_head_scan_start(&whole);
    http_head_scan_feed(&whole, (const char *)data, size);
    http_head_scan_start(&pieces);
    for (size_t off = 0; off < size; off += step)
        http_head_scan_feed(&pieces, (const char *)data + off,
                            size - off < step ? size - off : step);
    if (whole.nul != pieces.nul || whole.in_head != pieces.in_head)
        abort();
    if (whole.nul != nul || whole.in_head == ended)
        abort();
    if (whole.len != pieces.len || whole.len != len)
        abort();
    if (whole.has_clen != pieces.has_clen || whole.clen != pieces.clen)
        abort();
    if (whole.has_clen != has_clen || (has_clen && whole.clen != clen))
        abort();
    /* the method: the same in pieces, a C string of at most 15 bytes, the
     * request line's first bytes; a token only when they are tchars and SP */
    if (whole.mstate != pieces.mstate || strcmp(whole.method, pieces.method) != 0 ||
        whole.mlen != pieces.mlen || whole.method[sizeof whole.method - 1] != '\0')
        abort();
    if (strncmp(whole.method, (const char *)data, strlen(whole.method)) != 0)
        abort();
    if (whole.mstate == HTTP_HEAD_METHOD_TOKEN &&
        (whole.mlen == 0 || whole.mlen >= size ||
         (whole.mlen < 255 && data[whole.mlen] != ' ') ||
         strcspn(whole.method, " \t\r\n\"(),/:;<=>?@[\\]{}") != strlen(whole.method)))
        abort();
    return 0;
}
