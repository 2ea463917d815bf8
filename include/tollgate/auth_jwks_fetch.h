/* auth_jwks_fetch.h — JWK sets fetched from identity providers.
 *
 * One background thread (libcurl, blocking easy handles: never on a worker's
 * event loop) keeps every remote set fresh: it fetches a provider's
 * `jwks_uri` (or first reads it from `<issuer>/.well-known/
 * openid-configuration`), over HTTPS only, with CA verification, a timeout
 * and a size cap; it refetches after `Cache-Control: max-age` clamped to
 * [min_refresh, refresh] (refresh when absent), and early when a worker
 * meets an unknown kid — at most once per min_refresh.  A failed fetch keeps
 * the last good set, used until it is max_stale old.
 *
 * Sources live in a process-wide registry keyed by what they fetch, so a
 * config reload that keeps a provider keeps its set (no refetch, no gap).
 * Building a source never fetches: auth_jwks_fetch_start() starts the
 * thread (the server does; --check-config and unit tests do not).
 *
 * Readers: auth_jwks_src_gen() is one atomic load; auth_jwks_src_current()
 * takes the source's mutex to hand out a reference, which a worker does
 * once per new generation (auth_jwt.h keeps the per-thread copy).
 */
#ifndef TOLLGATE_AUTH_JWKS_FETCH_H
#define TOLLGATE_AUTH_JWKS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/auth_jwks.h"

typedef struct auth_jwks_src auth_jwks_src_t;

typedef struct auth_jwks_src_opts {
    const char *name;     /* provider name: metric label, logs */
    const char *jwks_uri; /* https URL, or NULL with discovery */
    const char *issuer;   /* for discovery (and its `issuer` check) */
    bool discovery;       /* jwks_uri from <issuer>/.well-known/openid-configuration */
    const char *ca_file;  /* PEM bundle to trust; NULL = the system's */
    unsigned allowed;     /* algorithm mask, as auth_jwks_parse */
    unsigned refresh_s;   /* longest time between fetches */
    unsigned min_refresh_s;
    unsigned max_stale_s;
    unsigned timeout_s;
} auth_jwks_src_opts_t;

/* The source for `o` (an existing one when every option matches), with a
 * reference for the caller; NULL when out of memory. */
auth_jwks_src_t *auth_jwks_src_get(const auth_jwks_src_opts_t *o);
void auth_jwks_src_unref(auth_jwks_src_t *s); /* NULL is a no-op */

/* A number no other source of this process has or had. */
uint64_t auth_jwks_src_id(const auth_jwks_src_t *s);

/* Bumped each time a fetch ends (success or failure). */
uint64_t auth_jwks_src_gen(const auth_jwks_src_t *s);

/* The set to verify with now (a new reference), NULL when none was ever
 * loaded or the last good one is older than max_stale; *gen (may be NULL)
 * is the generation it belongs to. */
auth_jwks_t *auth_jwks_src_current(auth_jwks_src_t *s, uint64_t *gen);

/* A token named a kid the set of generation `seen_gen` lacks: ask for an
 * early fetch.  True when the caller should wait and look again: a fetch is
 * running, was just asked for, or has ended since `seen_gen` (its set may
 * hold the kid: without this, a fetch that ends between the caller taking
 * its set and this call would leave the token refused with the old set);
 * false when the set is current and the last fetch started less than
 * min_refresh ago (the token is decided with what there is). */
bool auth_jwks_src_refetch(auth_jwks_src_t *s, uint64_t seen_gen);

/* A fetch is running or queued for `s`, or one ended since `seen_gen`. */
bool auth_jwks_src_busy(auth_jwks_src_t *s, uint64_t seen_gen);

typedef struct auth_jwks_stats {
    const char *name;
    size_t keys;                       /* in the current set; 0 when none */
    bool loaded;                       /* a set was loaded at least once */
    bool stale;                        /* the last good set is past max_stale */
    int64_t age_s;                     /* since the last good fetch; -1 when never */
    uint64_t ok, fetch_error, invalid; /* fetches by result */
    char last_error[160];              /* the last failure, "" when none */
} auth_jwks_stats_t;

/* Call fn once per live source (for /metrics and /readyz).  `fn` must not
 * call back into this module. */
void auth_jwks_foreach(void (*fn)(const auth_jwks_stats_t *st, void *arg), void *arg);

/* Every source has finished its first fetch (or there is none). */
bool auth_jwks_settled(void);

/* Start the fetch thread (idempotent); `on_fetched` (may be NULL) runs on
 * that thread after every fetch, to wake waiting workers.  0, or -1 with
 * err set. */
int auth_jwks_fetch_start(void (*on_fetched)(void *arg), void *arg, char *err,
                          size_t errlen);

/* Stop and join the thread (idempotent).  Sources still referenced stay. */
void auth_jwks_fetch_stop(void);

#endif
