/* b64.c — see include/tollgate/util_b64.h. */
#include "tollgate/util_b64.h"

static const char b64url_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long util_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t i, o = 0, rem = n % 4;
    unsigned long acc = 0;
    int bits = 0, d;

    if (rem == 1 || n / 4 * 3 + (rem ? rem - 1 : 0) > cap)
        return -1;
    for (i = 0; i < n; i++) {
        d = b64url_val((unsigned char)in[i]);
        if (d < 0)
            return -1;
        acc = (acc << 6 | (unsigned long)d) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1ul << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

size_t util_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    unsigned long v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_tab[v >> 18 & 63];
        out[o++] = b64url_tab[v >> 12 & 63];
        out[o++] = b64url_tab[v >> 6 & 63];
        out[o++] = b64url_tab[v & 63];
    }
    if (n - i == 1) {
        v = (unsigned long)in[i] << 16;
        out[o++] = b64url_tab[v >> 18 & 63];
        out[o++] = b64url_tab[v >> 12 & 63];
    } else if (n - i == 2) {
        v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
        out[o++] = b64url_tab[v >> 18 & 63];
        out[o++] = b64url_tab[v >> 12 & 63];
        out[o++] = b64url_tab[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}
