/* lua_scripts.h — the Redis scripts of lua/, embedded at build time by
 * scripts/embed-lua.sh.  Look one up by its file name without ".lua". */
#ifndef TOLLGATE_LUA_SCRIPTS_H
#define TOLLGATE_LUA_SCRIPTS_H

#include <stddef.h>

typedef struct tg_lua_script {
    const char *name; /* "bucket" for lua/bucket.lua; NULL ends the table */
    const char *text;
    size_t len;
} tg_lua_script_t;

extern const tg_lua_script_t tg_lua_scripts[];

#endif
