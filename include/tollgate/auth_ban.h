/* auth_ban.h — bans of an IP, a CIDR or a client id, in memory
 * (docs/security.md "Bans"; the admin API in docs/reference.md §4).
 *
 * A ban refuses every request from its target until `until_ms`: an IP or a
 * CIDR before authentication (the client ip as the decision computes it,
 * trusted_proxies honoured), a client id once the identity is known.  The
 * set is shared by all worker threads (one read-write lock: a check takes
 * it for reading; an empty set is not locked at all), bounded in size, and
 * drops expired entries (lazily: a check ignores them, every write and
 * auth_ban_expire() remove them).
 *
 * CIDR matching: addresses and networks are held in one hash table keyed
 * by (family, prefix length, masked address), with a count of entries per
 * prefix length; a check masks the address once for each prefix length in
 * use (at most 33 for IPv4, 129 for IPv6, usually a handful) and looks it
 * up — O(prefix lengths in use), whatever the number of bans.
 *
 * Targets are canonical text (auth_ban_target_parse): "ip:203.0.113.7",
 * "ip:2001:db8::1", "cidr:203.0.113.0/24", "client:svc-1".  With Redis,
 * auth/shared.c keeps every replica's set equal to the index key.
 */
#ifndef TOLLGATE_AUTH_BAN_H
#define TOLLGATE_AUTH_BAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth.h"

#define AUTH_BAN_TARGET_MAX (7 + 3 * AUTH_MAX_ID_LEN) /* "client:" + an id, %XX */
#define AUTH_BAN_REASON_MAX 200                       /* bytes of a reason */
#define AUTH_BAN_ACTOR_MAX 64                         /* an admin token's id */
#define AUTH_BAN_MIN_MS 1000LL                        /* the shortest ban: 1 s */
#define AUTH_BAN_MAX_MS (30LL * 86400 * 1000)         /* the longest: 30 days */
#define AUTH_BAN_DEFAULT_MAX 10000                    /* auth.bans.max_entries */
/* auth.bans.max_entries at most: the entries a replica's resync reads from
 * the index (auth_shared_bans_reply refuses a larger reply, and a replica
 * is not ready until one resync has been read) */
#define AUTH_BAN_MAX_ENTRIES 100000

typedef enum { AUTH_BAN_IP, AUTH_BAN_CIDR, AUTH_BAN_CLIENT } auth_ban_kind_t;

/* One ban.  `target` canonical; `reason` printable ASCII (sanitised). */
typedef struct auth_ban_entry {
    char target[AUTH_BAN_TARGET_MAX + 1];
    int64_t until_ms;   /* wall clock: refused before then */
    int64_t created_ms; /* wall clock */
    char actor[AUTH_BAN_ACTOR_MAX + 1];
    char reason[AUTH_BAN_REASON_MAX + 1];
} auth_ban_entry_t;

/* What a target may be. */
typedef struct auth_ban_rules {
    unsigned min_prefix_v4; /* a CIDR shorter than this is refused (>= 1) */
    unsigned min_prefix_v6;
} auth_ban_rules_t;

/* Parse `in` (`len` bytes, not NUL-terminated) into its canonical text in
 * `out` (>= AUTH_BAN_TARGET_MAX + 1).  An IPv4-mapped IPv6 address or
 * network becomes its IPv4 form; a CIDR of a whole host (/32, /128) becomes
 * "ip:"; a CIDR with host bits set is refused (naming the network meant).
 * 0, or -1 with a reason in `err` (never the input's bytes beyond what is
 * printable).  `rules` NULL: any prefix but /0. */
int auth_ban_target_parse(const char *in, size_t len, const auth_ban_rules_t *rules,
                          char *out, size_t outlen, auth_ban_kind_t *kind, char *err,
                          size_t errlen);

/* `in` (`len` bytes) as a reason: control bytes and non-ASCII as '?', cut to
 * AUTH_BAN_REASON_MAX bytes, into `out` (>= AUTH_BAN_REASON_MAX + 1). */
void auth_ban_reason_clean(const char *in, size_t len, char *out, size_t outlen);

/* A record of the Redis index ("<until_ms> <created_ms> <actor> <reason>",
 * auth/shared.c) for `target` into `e`.  0, or -1 when malformed. */
int auth_ban_record_parse(const char *target, size_t tlen, const char *rec, size_t rlen,
                          auth_ban_entry_t *e);

typedef struct auth_ban auth_ban_t;

/* At most `max_entries` bans (0: AUTH_BAN_DEFAULT_MAX). */
auth_ban_t *auth_ban_new(size_t max_entries);
void auth_ban_free(auth_ban_t *b);

/* Add or replace the ban of e->target (canonical).  0; -1 when it is
 * already over, malformed, or the set is full of live bans. */
int auth_ban_put(auth_ban_t *b, const auth_ban_entry_t *e, int64_t now_ms);

/* Lift the ban of canonical `target`: true when a live one was held. */
bool auth_ban_remove(auth_ban_t *b, const char *target, int64_t now_ms);

/* Replace the whole set with `n` entries (a resync): what is not among them
 * is lifted.  Entries over or malformed are skipped, and those past the
 * bound.  Returns how many are held. */
size_t auth_ban_replace(auth_ban_t *b, const auth_ban_entry_t *e, size_t n, int64_t now_ms);

/* The client address `ip` (text, as the decision has it) is banned: true,
 * with the ban's end in *until_ms when not NULL.  Malformed text: false. */
bool auth_ban_check_ip(auth_ban_t *b, const char *ip, int64_t now_ms, int64_t *until_ms);

/* Client id `id` is banned. */
bool auth_ban_check_client(auth_ban_t *b, const char *id, int64_t now_ms,
                           int64_t *until_ms);

/* Drop the bans that are over; returns the live count. */
size_t auth_ban_expire(auth_ban_t *b, int64_t now_ms);

/* Live bans held (expired ones not yet dropped are not counted). */
size_t auth_ban_count(auth_ban_t *b, int64_t now_ms);

/* One page of live bans ordered by target: those after `after` (NULL or ""
 * from the first), at most `max`, into `out` (malloc'd by the caller).
 * Returns how many; *more when others follow. */
size_t auth_ban_list(auth_ban_t *b, int64_t now_ms, const char *after,
                     auth_ban_entry_t *out, size_t max, bool *more);

#endif
