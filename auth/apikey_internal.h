/* apikey_internal.h — test seam of auth/apikey.c; not for other modules. */
#ifndef TOLLGATE_AUTH_APIKEY_INTERNAL_H
#define TOLLGATE_AUTH_APIKEY_INTERNAL_H

#include <stddef.h>

/* The comparison that confirms a digest match: CRYPTO_memcmp.  Only the unit
 * tests replace it (with a counting wrapper) to prove the constant-time path
 * is the one taken; it is never changed while requests are served. */
extern int (*auth_apikey_memcmp)(const void *a, const void *b, size_t len);

#endif
