/* util_str.h — small string helpers shared by the modules. */
#ifndef TOLLGATE_UTIL_STR_H
#define TOLLGATE_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* strdup that keeps NULL as NULL; *ok goes false when the copy fails (so a
 * run of copies is checked once). */
char *util_strdup_opt(const char *s, bool *ok);

/* s[0..len) is 1 to 20 decimal digits (no sign, no space) of a value that
 * fits a uint64_t: 0 and *out set, else -1. */
int util_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
