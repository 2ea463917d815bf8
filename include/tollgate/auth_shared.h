/* auth_shared.h — the auth state every replica shares through Redis
 * (revocations and auth-failure lockouts), over rc_ops_t (auth/shared.c).
 *
 * Each replica keeps both in memory (an auth_revoke_t, an auth_lockout_t) so
 * the request path never waits on Redis for them.  Redis holds the truth and
 * tells every replica of a change on two channels:
 *   <prefix>revocations   "j <exp> <jti>", "s <before> <sub>",
 *                         "i <before> <iss>\x1f<sub>"           (lua/revoke.lua)
 *                         "J|S|I <when> <id>": that one undone  (lua/unrevoke.lua)
 *   <prefix>lockouts      "l <until_ms> <ip>"                  (lua/lockout.lua)
 * and keeps the revocation index <prefix>{revlog}:j (ZSET jti -> exp),
 * <prefix>{revlog}:s (HASH sub -> before, every issuer), <prefix>{revlog}:si
 * (HASH "iss\x1fsub" -> before, one issuer) and <prefix>{revlog}:sx (ZSET:
 * the subject entries by before, to trim the expired) for a replica that
 * missed messages; a resync replaces the replica's set (an undo it missed
 * is forgotten).
 *
 * This module owns the key and channel names, the message format, and what
 * each Redis reply means for the stores.  The server owns the wiring: which
 * client (a worker's, the admin thread's), the subscription, the timers.
 * Every function may be called from any thread: the stores lock themselves
 * and the names are fixed at auth_shared_new().
 */
#ifndef TOLLGATE_AUTH_SHARED_H
#define TOLLGATE_AUTH_SHARED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth_ban.h"
#include "tollgate/auth_lockout.h"
#include "tollgate/auth_revoke.h"
#include "tollgate/rc.h"

#define AUTH_SHARED_NAME_MAX 256
#define AUTH_SHARED_SEP '\x1f' /* between iss and sub in a scoped subject's id */

typedef struct auth_shared {
    auth_revoke_t *revoked;
    auth_lockout_t *lockout;
    size_t script_revoke, script_lockout; /* rc script indices */
    char prefix[AUTH_SHARED_NAME_MAX];
    char revlog_j[AUTH_SHARED_NAME_MAX], revlog_s[AUTH_SHARED_NAME_MAX];
    char chan_rev[AUTH_SHARED_NAME_MAX], chan_lock[AUTH_SHARED_NAME_MAX];
    /* Told the number of cached revocations after every change (a gauge);
     * may be NULL. */
    void (*revocations_changed)(size_t n);
    /* resync: the jti half of the one in flight was read (its thread only) */
    bool resync_jti_ok;
    _Atomic bool synced; /* a resync was read whole: auth_shared_synced() */
    /* Bans (auth_shared_init_bans; bans NULL: none) and the lockout index. */
    auth_ban_t *bans;
    size_t script_ban;
    size_t bans_max;     /* auth.bans.max_entries */
    size_t lockouts_max; /* entries of the lockout index kept */
    char bans_key[AUTH_SHARED_NAME_MAX], chan_ban[AUTH_SHARED_NAME_MAX];
    char bans_until[AUTH_SHARED_NAME_MAX]; /* <prefix>{bans}:until: when each ends */
    char lock_index[AUTH_SHARED_NAME_MAX];
    void (*bans_changed)(size_t n); /* told the live count after a change; may be NULL */
    _Atomic bool bans_synced;       /* the ban index was read whole once */
    /* issue 22 item 4: scoped subjects, undo, authoritative resync */
    char revlog_si[AUTH_SHARED_NAME_MAX], revlog_sx[AUTH_SHARED_NAME_MAX];
    size_t script_unrevoke; /* rc script index of lua/unrevoke.lua; set after init */
    bool resync_sub_ok;     /* the every-issuer subjects of the resync were read */
    uint64_t resync_gen;    /* auth_revoke_sync_begin's, of the resync in flight */
} auth_shared_t;

/* Fill `sh` for key prefix `prefix` ("tg:"); the stores are borrowed.
 * 0, or -1 when the prefix is too long for the names. */
int auth_shared_init(auth_shared_t *sh, const char *prefix, auth_revoke_t *revoked,
                     auth_lockout_t *lockout, size_t script_revoke, size_t script_lockout);

/* Apply one channel message ("j ...", "s ...", "i ...", "J ...", "S ...",
 * "I ...", "l ..."); a malformed or unknown one is ignored.  Returns 0 when
 * applied, -1 when ignored. */
int auth_shared_apply(auth_shared_t *sh, const char *msg, size_t len, int64_t now_ms);

/* Reload the revocation index (ZRANGEBYSCORE of live jtis, HGETALL of both
 * subject hashes) into the store, which it replaces once all three replies
 * were read; the replies arrive later.  -1: not sent. */
int auth_shared_resync(auth_shared_t *sh, const rc_ops_t *ops, void *cl, int64_t now_ms);

/* Bans and the lockout index (after auth_shared_init):
 *   <prefix>{bans}       HASH target -> "<until_ms> <created_ms> <actor> <reason>"
 *   <prefix>bans         channel: "b <target> <until_ms> <created_ms> <actor> <reason>",
 *                        "u <target>"                          (lua/ban.lua)
 *   <prefix>{lockouts}   ZSET ip key -> until_ms of a lockout (written after
 *                        lua/lockout.lua started one; trimmed, at most
 *                        `lockouts_max`); "u <ip key>" on <prefix>lockouts lifts one.
 * 0, or -1 when the prefix is too long. */
int auth_shared_init_bans(auth_shared_t *sh, auth_ban_t *bans, size_t script_ban,
                          size_t bans_max, size_t lockouts_max);

/* Apply one message of the bans channel; -1 when malformed (ignored). */
int auth_shared_apply_ban(auth_shared_t *sh, const char *msg, size_t len, int64_t now_ms);

/* Apply "u <ip key>" of the lockouts channel; -1 when it is not one. */
int auth_shared_apply_unlock(auth_shared_t *sh, const char *msg, size_t len);

/* Reload the ban index (HGETALL) and make it the set: a ban lifted while
 * this replica was away goes too.  -1: not sent. */
int auth_shared_resync_bans(auth_shared_t *sh, const rc_ops_t *ops, void *cl);

/* The HGETALL reply of the ban index into the set (the resync's callback,
 * exposed for the fuzz target).  -1 when the reply is not a hash's. */
int auth_shared_bans_reply(auth_shared_t *sh, const redisReply *r, int64_t now_ms);

typedef enum {
    AUTH_SHARED_DONE,        /* applied (or, unban/unlock: there was one) */
    AUTH_SHARED_NONE,        /* unban/unlock: there was none */
    AUTH_SHARED_FULL,        /* ban: auth.bans.max_entries live bans held */
    AUTH_SHARED_UNAVAILABLE, /* Redis did not answer, or refused */
} auth_shared_result_t;

/* `e` (ban: what is in force) valid during the call only, else NULL. */
typedef void (*auth_shared_ban_fn)(auth_shared_result_t res, const auth_ban_entry_t *e,
                                   void *privdata);

/* Ban e->target (canonical) for `duration_ms`, with e->actor and e->reason:
 * lua/ban.lua (index + channel), then this replica's set; `done` runs
 * once, later — at once without Redis (`ops` NULL).  -1: not sent, `done`
 * not called. */
int auth_shared_ban(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                    const auth_ban_entry_t *e, int64_t duration_ms, int64_t now_ms,
                    auth_shared_ban_fn done, void *privdata);

/* Lift the ban of canonical `target` everywhere. */
int auth_shared_unban(auth_shared_t *sh, const rc_ops_t *ops, void *cl, const char *target,
                      int64_t now_ms, auth_shared_ban_fn done, void *privdata);

/* Lift the lockout of `ip_key` everywhere: DEL <prefix>{lock:<ip key>},
 * ZREM from the index, "u <ip key>" on the lockouts channel, and this
 * replica's store.  AUTH_SHARED_NONE when neither Redis nor this replica
 * held one. */
int auth_shared_unlock(auth_shared_t *sh, const rc_ops_t *ops, void *cl, const char *ip_key,
                       auth_shared_ban_fn done, void *privdata);

/* The revocation index was read whole at least once (both replies of one
 * resync): a replica that is not synced may accept a token revoked before
 * it started, so the server is not ready until it is (or its start grace
 * ends).  Any thread. */
bool auth_shared_synced(const auth_shared_t *sh);

typedef enum { AUTH_SHARED_JTI, AUTH_SHARED_SUBJECT } auth_shared_kind_t;

/* `err` NULL when stored; `when` is what is in force (an earlier
 * subject cut-off stays). */
typedef void (*auth_shared_done_fn)(const char *err, int64_t when, void *privdata);

/* Revoke everywhere: lua/revoke.lua (index + channel), then the per-token
 * key, then this replica's store; `done` runs once, later.  `iss` (subjects
 * only; NULL: every issuer) scopes a subject revocation to one issuer.
 * With `ops` NULL (no Redis) this replica's store is the state and `done`
 * runs at once.  -1: nothing sent, `done` not called. */
int auth_shared_revoke(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                       auth_shared_kind_t kind, const char *iss, const char *id,
                       int64_t when, int64_t now_ms, auth_shared_done_fn done,
                       void *privdata);

/* Undo a revocation everywhere: lua/unrevoke.lua (index + channel), then the
 * per-token key's DEL, then this replica's store.  `done` gets the `when`
 * that was in force, 0 when there was no live revocation (nothing done).
 * Otherwise as auth_shared_revoke. */
int auth_shared_unrevoke(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                         auth_shared_kind_t kind, const char *iss, const char *id,
                         int64_t now_ms, auth_shared_done_fn done, void *privdata);

/* Count a refused credential of `ip`.  With Redis (lua/lockout.lua, which
 * tells every replica when a lockout starts) returns a handle and `done`
 * runs once the count is stored, so the 401 goes out only after the lock, if
 * any, exists; a failed call is counted in memory instead.  Returns NULL when
 * counted already (no Redis, or the call could not be sent): `done` is not
 * called. */
typedef struct auth_lock_op auth_lock_op_t;
typedef void (*auth_lock_done_fn)(void *privdata);
auth_lock_op_t *auth_shared_lockout_fail(auth_shared_t *sh, const rc_ops_t *ops, void *cl,
                                         const char *ip, const auth_lockout_policy_t *p,
                                         int64_t now_ms, auth_lock_done_fn done,
                                         void *privdata);

/* The request went away: `done` will not run, the count still completes. */
void auth_shared_lockout_detach(auth_lock_op_t *op);

#endif
