/* util_str.h — small string helpers shared by the modules. */
#ifndef TOLLGATE_UTIL_STR_H
#define TOLLGATE_UTIL_STR_H

#include <stdbool.h>

/* strdup that keeps NULL as NULL; *ok goes false when the copy fails (so a
 * run of copies is checked once). */
char *util_strdup_opt(const char *s, bool *ok);

#endif
