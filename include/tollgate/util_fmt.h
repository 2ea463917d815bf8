/* util_fmt.h — number formatting without printf, for the request path
 * (snprintf costs ~1k instructions a call; these, a few dozen). */
#ifndef TOLLGATE_UTIL_FMT_H
#define TOLLGATE_UTIL_FMT_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_FMT_U64_MAX 21 /* bytes for any uint64_t, NUL included */

/* Decimal `v` into `out` (>= UTIL_FMT_U64_MAX bytes), NUL-terminated;
 * returns the length. */
size_t util_fmt_u64(char *out, uint64_t v);
size_t util_fmt_i64(char *out, int64_t v);

/* The value of hex digit `c` (either case), or -1.  Inline: the path and
 * query decoders call it per escape on the request path. */
static inline int util_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
