/* util_b64.h — base64url (RFC 4648 §5) without padding, as JOSE writes it. */
#ifndef TOLLGATE_UTIL_B64_H
#define TOLLGATE_UTIL_B64_H

#include <stddef.h>

/* Bytes that decoding `n` characters can give, at most. */
#define UTIL_B64_DECODED_MAX(n) ((n) / 4 * 3 + 2)

/* Decode canonical unpadded base64url into `out` (`cap` bytes).  The decoded
 * length, or -1 on a bad character or length, non-zero trailing bits (they
 * would give two spellings of one value) or no room. */
long util_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* Encode `n` bytes into `out` (room for 4*ceil(n/3)+1), NUL-terminated;
 * returns the length. */
size_t util_b64url_encode(const unsigned char *in, size_t n, char *out);

#endif
