/* rl_topk.h — who is limited: a bounded heavy-hitters summary per limit.
 *
 * A summary (rl_topk_sum_t) is Space-Saving (Metwally, Agrawal, El Abbadi,
 * 2005) with RL_TOPK_CAP counters: an identity already counted adds to its
 * counter; a new one takes a free counter, or, when all are taken, the
 * smallest one, inheriting its count as its error.  Each kept entry has
 * `count` (an upper bound of the true count) and `err` (true count >=
 * count - err); an identity not kept has a true count of at most
 * rl_topk_sum_floor().  Over a stream of N the floor, and so every err, is
 * at most N / RL_TOPK_CAP.
 *
 * Merging (replica + replica, worker + worker, slice + slice) is defined so
 * that the same guarantees hold for the union of the two streams: every
 * identity of either side is counted count_a + count_b, an identity absent
 * from one side counting that side's floor (count and err), and the
 * RL_TOPK_CAP largest are kept.  The floor of the result is at most
 * N_a/CAP + N_b/CAP = N/CAP.
 *
 * The recorder (rl_topk_t) keeps, per limit, a ring of RL_TOPK_SLICES
 * one-minute slices, each with a summary of requests and one of denials.
 * A window of W minutes (1, 5, 15) is the merge of the current slice and
 * the W before it: it covers at least the last W minutes and at most W+1.
 * Memory is fixed: sizeof(rl_topk_t) plus, per limit seen (at most
 * RL_TOPK_MAX_LIMITS), RL_TOPK_SLICES * 2 summaries (docs/reference.md
 * states the bytes).  A recorder belongs to one thread; nothing locks.
 *
 * Identities are kept as rl_topk_spell() writes them: a `header:` part whose
 * header name may carry a credential is redacted, and a long identity is
 * shortened with a hash.  They are shown in the admin API, the metrics and
 * Redis.
 */
#ifndef TOLLGATE_RL_TOPK_H
#define TOLLGATE_RL_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tollgate/rl_policy.h"

#define RL_TOPK_CAP 48         /* counters per summary */
#define RL_TOPK_ID_LEN 64      /* bytes of a kept identity, NUL included */
#define RL_TOPK_NAME_LEN 65    /* a limit name ([A-Za-z0-9._-]{1,64}) and its NUL */
#define RL_TOPK_SLICES 16      /* one-minute slices per limit: the 15-minute window + 1 */
#define RL_TOPK_SLICE_MS 60000 /* one slice */
#define RL_TOPK_MAX_LIMITS 64  /* limits one recorder tracks at once */
#define RL_TOPK_NWIN 3         /* windows: 1, 5, 15 minutes */
#define RL_TOPK_WIRE_MAX 65536 /* bytes of one encoded limit, at most */
#define RL_TOPK_COUNT_MAX 999999999999999ull /* a larger count on the wire is refused */

typedef enum { RL_TOPK_REQUESTS, RL_TOPK_DENIED, RL_TOPK_NKIND } rl_topk_kind_t;

typedef struct rl_topk_entry {
    uint64_t count; /* upper bound of the true count */
    uint64_t err;   /* count - err is a lower bound; err <= count */
    char id[RL_TOPK_ID_LEN];
} rl_topk_entry_t;

typedef struct rl_topk_sum {
    uint32_t n;     /* entries in use */
    uint64_t total; /* everything ever added (N) */
    uint32_t hash[RL_TOPK_CAP];
    rl_topk_entry_t e[RL_TOPK_CAP];
} rl_topk_sum_t;

/* One limit's summaries by window (rl_topk_windows order) and kind. */
typedef struct rl_topk_lview {
    char name[RL_TOPK_NAME_LEN];
    rl_topk_sum_t w[RL_TOPK_NWIN][RL_TOPK_NKIND];
} rl_topk_lview_t;

/* Every limit's, as one thread or one replica has them. */
typedef struct rl_topk_view {
    size_t n;
    rl_topk_lview_t lim[RL_TOPK_MAX_LIMITS];
} rl_topk_view_t;

/* The windows in minutes: {1, 5, 15}. */
extern const unsigned rl_topk_windows[RL_TOPK_NWIN];
/* Index of a window of `minutes`, -1 when it is not one. */
int rl_topk_window_index(unsigned minutes);

void rl_topk_sum_init(rl_topk_sum_t *s);
/* Count `inc` more for `id` (NUL-terminated, shorter than RL_TOPK_ID_LEN;
 * a longer one is cut). */
void rl_topk_sum_add(rl_topk_sum_t *s, const char *id, uint64_t inc);
/* Recompute the lookup hashes after the entries were written directly. */
void rl_topk_sum_rehash(rl_topk_sum_t *s);
/* dst := dst + src as defined above. */
void rl_topk_sum_merge(rl_topk_sum_t *dst, const rl_topk_sum_t *src);
/* An identity not kept was counted at most this many times (0 until full). */
uint64_t rl_topk_sum_floor(const rl_topk_sum_t *s);
/* The entries by count, largest first (ties by id), at most `max` pointers
 * into `s` written to `out`; returns how many. */
size_t rl_topk_sum_sorted(const rl_topk_sum_t *s, const rl_topk_entry_t **out, size_t max);

/* Whether a header or claim named `name` may carry a credential: the name
 * contains auth, token, key, secret, cookie, session, pass, signature,
 * credential, csrf, xsrf or jwt, in any case (Authorization,
 * Proxy-Authorization, X-Hub-Signature, X-Amz-Credential...).  The one rule
 * of the top lists, the audit line's keys and replay. */
bool rl_name_may_be_credential(const char *name);

/* The identity as kept and shown: each `header:NAME` part of `lim`'s `by`
 * whose NAME may carry a credential (rl_name_may_be_credential) is
 * written "h:NAME=*"; an identity that would not fit RL_TOPK_ID_LEN is its
 * first 38 bytes, '~' and 16 hex digits of a 64-bit hash of the whole.
 * `out` has RL_TOPK_ID_LEN bytes. */
void rl_topk_spell(const rl_limit_t *lim, const char *identity, char *out);
/* `identity` with those secret header parts written "h:NAME=*" and nothing
 * cut or hashed (the bucket reset's trail target, the admin log), into
 * `out` of `outlen` > 0 bytes; parts that do not fit are left out whole.
 * Returns the length written. */
size_t rl_topk_redact(const rl_limit_t *lim, const char *identity, char *out,
                      size_t outlen);

typedef struct rl_topk rl_topk_t;

rl_topk_t *rl_topk_new(void);
void rl_topk_free(rl_topk_t *t); /* NULL: no-op */

/* One decided request of `identity` (as rl_policy_identity spelled it)
 * under `lim`, at monotonic `now_ms`.  A limit past RL_TOPK_MAX_LIMITS,
 * when no tracked one is idle for the whole ring, is not recorded
 * (rl_topk_dropped counts it). */
void rl_topk_record(rl_topk_t *t, int64_t now_ms, const rl_limit_t *lim,
                    const char *identity, bool denied);
uint64_t rl_topk_dropped(const rl_topk_t *t);

/* Every tracked limit's windows at `now_ms` into `out` (overwritten). */
void rl_topk_view(const rl_topk_t *t, int64_t now_ms, rl_topk_view_t *out);

/* Empty view / merge `src` into `dst` limit by limit (by name; a limit
 * `dst` cannot take is left out).  The limit `name` of a view, NULL. */
void rl_topk_view_reset(rl_topk_view_t *v);
void rl_topk_view_merge(rl_topk_view_t *dst, const rl_topk_view_t *src);
const rl_topk_lview_t *rl_topk_view_find(const rl_topk_view_t *v, const char *name);
void rl_topk_lview_init(rl_topk_lview_t *lv, const char *name);
void rl_topk_lview_merge(rl_topk_lview_t *dst, const rl_topk_lview_t *src);

/* The wire form of one limit's windows (what a replica publishes in
 * Redis): text, "tg-top 1\n", then for each window and kind in order a line
 * "W K N TOTAL\n" (K: r or d) and N lines "COUNT ERR ID\n".  Returns the
 * length written (NUL-terminated), -1 when `outlen` is too small. */
int rl_topk_encode(const rl_topk_lview_t *lv, char *out, size_t outlen);
/* Parse that form (outside input: another replica's, through Redis) into
 * `out` (its name is left empty).  Bounded and strict: at most
 * RL_TOPK_WIRE_MAX bytes, RL_TOPK_CAP entries a section, counts up to
 * RL_TOPK_COUNT_MAX, err <= count, identities 1..RL_TOPK_ID_LEN-1 bytes of
 * [A-Za-z0-9._:@=%|~*-], no identity twice in a section, nothing after
 * the last section.  0, or -1 with a reason in `err` (`out` then holds
 * nothing to use). */
int rl_topk_decode(const char *buf, size_t len, rl_topk_lview_t *out, char *err,
                   size_t errlen);

#endif
