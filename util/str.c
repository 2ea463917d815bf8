/* str.c — see include/tollgate/util_str.h. */
#include "tollgate/util_str.h"

#include <stdlib.h>
#include <string.h>

char *util_strdup_opt(const char *s, bool *ok)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *ok = false;
    return d;
}
