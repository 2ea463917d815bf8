/* fuzz_head.c — libFuzzer target for http_head_scan (http/headers.c), which
 * reads every request head for NUL bytes as it arrives off the socket.
 * Input: byte 0 picks the piece size (1..16), the rest is the stream.
 *
 * Checks, against a one-shot reference over the whole stream: the head ends
 * at the first blank line (LF LF or LF CR LF, the first line included), a
 * NUL is reported exactly when one is in the head, and feeding it in pieces
 * gives the same verdict as feeding it at once. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_head_scan_t whole, pieces;
    bool nul, ended;
    size_t step;

    if (size < 1)
        return 0;
    step = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    reference(data, size, &nul, &ended);

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
    return 0;
}
