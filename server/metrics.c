/* metrics.c — per-thread Prometheus counters and histograms, summed on
 * scrape.  See include/tollgate/metrics.h.
 *
 * A metrics_t holds fixed-capacity label tables.  Its one writer appends a
 * row (label values copied in, then `count` published with a release store)
 * and bumps counters with relaxed loads and stores; the renderer reads
 * `count` with an acquire load, so it only ever sees complete rows.  The
 * global list of instances and the "retired" totals of freed instances are
 * under one mutex, taken only by metrics_new, metrics_free and
 * metrics_render — never on the request path.  Counters never go backwards:
 * a freed instance's counts are folded into the retired totals first.
 *
 * Label values are cut to MX_VAL_MAX - 1 bytes; a NULL value is "unknown";
 * once a table is full, further label sets are counted in one row whose
 * labels are all "other".
 */
#include "tollgate/metrics.h"
#include "tollgate/util_clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define MX_LABELS 3
#define MX_VAL_MAX 64   /* bytes of a label value, NUL included */
#define MX_AGG_MAX 4096 /* rows of a retired/render aggregate before "other" */
#define MX_BUCKETS_MAX 16

typedef struct mx_row {
    char v[MX_LABELS][MX_VAL_MAX];
    _Atomic uint64_t n;
} mx_row_t;

typedef struct mx_table {
    _Atomic size_t count; /* rows published to the renderer */
    mx_row_t *rows;       /* capacity from its tdef */
} mx_table_t;

typedef struct mx_hist {
    _Atomic uint64_t
        bucket[MX_BUCKETS_MAX + 1]; /* per bucket, not cumulative; last: +Inf */
    _Atomic uint64_t sum_ns;
} mx_hist_t;

enum {
    T_REQUESTS,
    T_LIMITS,
    T_AUTH,
    T_REDIS,
    T_OVERLIMIT,
    T_LEASE,
    T_JWT_CACHE,
    T_DEPRECATED,
    T_ACCEPT,
    T_FWD_REPEATS,
    T_COUNT
};
enum { H_REQUEST, H_REDIS, H_COUNT };

typedef struct tdef {
    const char *name, *help;
    size_t nlabels;
    const char *labels[MX_LABELS];
    size_t cap; /* rows, the last one being "other" */
} tdef_t;

static const tdef_t tdefs[T_COUNT] = {
    [T_REQUESTS] = {"tollgate_requests_total",
                    "Requests answered, by decision and reason.",
                    2,
                    {"decision", "reason"},
                    64},
    [T_LIMITS] = {"tollgate_limit_decisions_total",
                  "Rate-limit decisions, by limit, decision and mode.",
                  3,
                  {"limit", "decision", "mode"},
                  256},
    [T_AUTH] = {"tollgate_auth_failures_total",
                "Failed authentications, by reason.",
                1,
                {"reason"},
                32},
    [T_REDIS] =
        {"tollgate_redis_requests_total", "Redis calls, by result.", 1, {"result"}, 16},
    [T_OVERLIMIT] = {"tollgate_overlimit_cache_total",
                     "Limit checks answered without Redis because Redis denied the same "
                     "call a moment ago and its buckets cannot have refilled yet.",
                     1,
                     {"result"},
                     2},
    [T_LEASE] = {"tollgate_lease_admits_total",
                 "Requests admitted from a token lease (consistency: leased), without "
                 "a Redis call.",
                 1,
                 {"result"},
                 2},
    [T_JWT_CACHE] = {"tollgate_jwt_cache_total",
                     "Verified-token cache lookups of valid-looking JWTs, by result.",
                     1,
                     {"result"},
                     4},
    [T_DEPRECATED] = {"tollgate_deprecated_auth_total",
                      "Requests allowed with a deprecated credential, by client.",
                      1,
                      {"client"},
                      256},
    [T_ACCEPT] = {"tollgate_accept_errors_total",
                  "accept() failures on the main listener, by error (emfile, enfile, "
                  "nomem, other); each pauses that listener for 100 ms.",
                  1,
                  {"error"},
                  4},
    [T_FWD_REPEATS] = {"tollgate_forwarded_header_repeats_total",
                       "Forward-auth requests refused (400 duplicate_header) because a "
                       "dialect header came twice, by dialect (traefik, nginx): a proxy in "
                       "front passes the client's own copy on.",
                       1,
                       {"dialect"},
                       3},
};

typedef struct hdef {
    const char *name, *help;
    size_t nb;
    double bounds[MX_BUCKETS_MAX];
    const char *le[MX_BUCKETS_MAX];
} hdef_t;

static const hdef_t hdefs[H_COUNT] = {
    [H_REQUEST] = {"tollgate_request_duration_seconds",
                   "Time from request received to answer, in seconds.",
                   12,
                   {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                    2.5},
                   {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                    "0.25", "0.5", "1", "2.5"}},
    [H_REDIS] = {"tollgate_redis_duration_seconds",
                 "Redis call round trip, in seconds.",
                 11,
                 {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25},
                 {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
                  "0.025", "0.05", "0.1", "0.25"}},
};

struct metrics {
    mx_table_t t[T_COUNT];
    mx_hist_t h[H_COUNT];
    metrics_t *prev, *next; /* the global list, under g_mu */
};

/* Render-side and retired totals: plain integers, under g_mu. */
typedef struct agg_row {
    char v[MX_LABELS][MX_VAL_MAX];
    uint64_t n;
} agg_row_t;

typedef struct agg {
    agg_row_t *rows;
    size_t n, cap;
} agg_t;

typedef struct agg_hist {
    uint64_t bucket[MX_BUCKETS_MAX + 1];
    uint64_t sum_ns;
} agg_hist_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static metrics_t *g_list;
static agg_t g_retired[T_COUNT];
static agg_hist_t g_retired_hist[H_COUNT];

static _Atomic uint64_t g_reloads_ok, g_reloads_err;
static atomic_int g_fallback;
static atomic_long g_revocations;
static atomic_long g_bans_active;          /* tollgate_bans_active */
static atomic_ullong g_lockouts_lifted;    /* tollgate_lockouts_lifted_total */
static atomic_ullong g_revocations_undone; /* admin undos answered 200 here */
static atomic_uint g_fleet;
static _Atomic uint64_t g_fleet_seen_ms;
static atomic_long g_conns;
static _Atomic uint64_t g_conns_refused, g_read_timeouts;

static const char *const other_vals[MX_LABELS] = {"other", "other", "other"};

/* ---- writer side ---------------------------------------------------------- */

/* Single writer: a plain read-modify-write of a relaxed atomic is enough. */
static void mx_add(_Atomic uint64_t *a, uint64_t d)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* Does the stored (possibly cut) value equal `val` cut the same way? */
static bool val_eq(const char *stored, const char *val)
{
    size_t i;

    for (i = 0; i < MX_VAL_MAX - 1; i++) {
        if (stored[i] != val[i])
            return false;
        if (stored[i] == '\0')
            return true;
    }
    return true;
}

static bool vals_eq(const char (*stored)[MX_VAL_MAX], const char *const *vals, size_t nl)
{
    size_t k;

    for (k = 0; k < nl; k++)
        if (!val_eq(stored[k], vals[k]))
            return false;
    return true;
}

static void vals_copy(char (*dst)[MX_VAL_MAX], const char *const *vals, size_t nl)
{
    size_t k;

    for (k = 0; k < nl; k++) {
        strncpy(dst[k], vals[k], MX_VAL_MAX - 1);
        dst[k][MX_VAL_MAX - 1] = '\0';
    }
}

/* The row of this label set, appended (and published) when new. */
static mx_row_t *table_row(mx_table_t *t, const tdef_t *d, const char *const *vals)
{
    size_t n = atomic_load_explicit(&t->count, memory_order_relaxed), i;
    mx_row_t *r;

    for (i = 0; i < n; i++)
        if (vals_eq((const char(*)[MX_VAL_MAX])t->rows[i].v, vals, d->nlabels))
            return &t->rows[i];
    if (n == d->cap)
        return &t->rows[d->cap - 1]; /* full: the "other" row */
    r = &t->rows[n];
    vals_copy(r->v, n == d->cap - 1 ? other_vals : vals, d->nlabels);
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    return r;
}

static void mx_count(metrics_t *m, int t, const char *a, const char *b, const char *c)
{
    const char *vals[MX_LABELS] = {a ? a : "unknown", b ? b : "unknown", c ? c : "unknown"};

    mx_add(&table_row(&m->t[t], &tdefs[t], vals)->n, 1);
}

static void observe(metrics_t *m, int h, double seconds)
{
    const hdef_t *d = &hdefs[h];
    mx_hist_t *x = &m->h[h];
    size_t i;

    if (!(seconds >= 0)) /* NaN or negative */
        seconds = 0;
    if (seconds > 1e6)
        seconds = 1e6;
    for (i = 0; i < d->nb && seconds > d->bounds[i]; i++)
        ;
    mx_add(&x->bucket[i], 1);
    mx_add(&x->sum_ns, (uint64_t)(seconds * 1e9 + 0.5));
}

void metrics_request(metrics_t *m, const char *decision, const char *reason, double seconds)
{
    if (m == NULL)
        return;
    mx_count(m, T_REQUESTS, decision, reason, NULL);
    observe(m, H_REQUEST, seconds);
}

void metrics_limit(metrics_t *m, const char *limit, const char *decision, const char *mode)
{
    if (m != NULL)
        mx_count(m, T_LIMITS, limit, decision, mode);
}

void metrics_auth_failure(metrics_t *m, const char *reason)
{
    if (m != NULL)
        mx_count(m, T_AUTH, reason, NULL, NULL);
}

void metrics_overlimit_hit(metrics_t *m)
{
    if (m != NULL)
        mx_count(m, T_OVERLIMIT, "hit", NULL, NULL);
}

void metrics_lease_hit(metrics_t *m)
{
    if (m != NULL)
        mx_count(m, T_LEASE, "local", NULL, NULL);
}

void metrics_jwt_cache(metrics_t *m, bool hit)
{
    if (m != NULL)
        mx_count(m, T_JWT_CACHE, hit ? "hit" : "miss", NULL, NULL);
}

void metrics_deprecated(metrics_t *m, const char *client)
{
    if (m != NULL)
        mx_count(m, T_DEPRECATED, client, NULL, NULL);
}

void metrics_forwarded_repeat(metrics_t *m, const char *dialect)
{
    if (m != NULL)
        mx_count(m, T_FWD_REPEATS, dialect, NULL, NULL);
}

void metrics_redis_shed(metrics_t *m)
{
    if (m != NULL)
        mx_count(m, T_REDIS, "shed", NULL, NULL);
}

void metrics_accept_error(metrics_t *m, const char *error)
{
    if (m != NULL)
        mx_count(m, T_ACCEPT, error, NULL, NULL);
}

void metrics_redis(metrics_t *m, const char *result, double seconds)
{
    if (m == NULL)
        return;
    mx_count(m, T_REDIS, result, NULL, NULL);
    observe(m, H_REDIS, seconds);
}

void metrics_config_reload(bool ok)
{
    atomic_fetch_add_explicit(ok ? &g_reloads_ok : &g_reloads_err, 1, memory_order_relaxed);
}

void metrics_set_fallback(int on)
{
    atomic_store_explicit(&g_fallback, on, memory_order_relaxed);
}

void metrics_set_revocations_cached(long n)
{
    atomic_store_explicit(&g_revocations, n, memory_order_relaxed);
}

void metrics_set_bans_active(long n)
{
    atomic_store_explicit(&g_bans_active, n, memory_order_relaxed);
}

void metrics_lockout_lifted(void)
{
    atomic_fetch_add_explicit(&g_lockouts_lifted, 1, memory_order_relaxed);
}

void metrics_revocation_undone(void)
{
    atomic_fetch_add_explicit(&g_revocations_undone, 1, memory_order_relaxed);
}

void metrics_set_fleet(unsigned count, uint64_t seen_mono_ms)
{
    atomic_store_explicit(&g_fleet_seen_ms, seen_mono_ms, memory_order_relaxed);
    atomic_store_explicit(&g_fleet, count, memory_order_relaxed);
}

/* ---- instances ------------------------------------------------------------ */

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof(*m));
    int t;

    if (m == NULL)
        return NULL;
    for (t = 0; t < T_COUNT; t++) {
        m->t[t].rows = calloc(tdefs[t].cap, sizeof(mx_row_t));
        if (m->t[t].rows == NULL)
            goto out_free_rows;
    }
    pthread_mutex_lock(&g_mu);
    m->next = g_list;
    if (g_list != NULL)
        g_list->prev = m;
    g_list = m;
    pthread_mutex_unlock(&g_mu);
    return m;

out_free_rows:
    for (t = 0; t < T_COUNT; t++)
        free(m->t[t].rows);
    free(m);
    return NULL;
}

/* Add n to the row of this label set in a (which grows); past MX_AGG_MAX
 * rows, into "other".  Called under g_mu. */
static void agg_add(agg_t *a, const char (*v)[MX_VAL_MAX], size_t nl, uint64_t n)
{
    const char *vals[MX_LABELS] = {v[0], nl > 1 ? v[1] : "", nl > 2 ? v[2] : ""};
    agg_row_t *rows;
    size_t i;

    for (i = 0; i < a->n; i++) {
        if (vals_eq((const char(*)[MX_VAL_MAX])a->rows[i].v, vals, nl)) {
            a->rows[i].n += n;
            return;
        }
    }
    if (a->n >= MX_AGG_MAX) {
        memcpy(vals, other_vals, sizeof(vals));
        for (i = 0; i < a->n; i++) {
            if (vals_eq((const char(*)[MX_VAL_MAX])a->rows[i].v, vals, nl)) {
                a->rows[i].n += n;
                return;
            }
        }
    }
    if (a->n == a->cap) {
        rows = realloc(a->rows, (a->cap ? a->cap * 2 : 16) * sizeof(*rows));
        if (rows == NULL)
            return; /* lost on OOM; nothing better to do */
        a->rows = rows;
        a->cap = a->cap ? a->cap * 2 : 16;
    }
    memset(&a->rows[a->n], 0, sizeof(a->rows[a->n]));
    vals_copy(a->rows[a->n].v, vals, nl);
    a->rows[a->n++].n = n;
}

static void agg_add_table(agg_t *a, const mx_table_t *t, size_t nl)
{
    size_t n = atomic_load_explicit(&t->count, memory_order_acquire), i;

    for (i = 0; i < n; i++)
        agg_add(a, (const char(*)[MX_VAL_MAX])t->rows[i].v, nl,
                atomic_load_explicit(&t->rows[i].n, memory_order_relaxed));
}

static void agg_add_hist(agg_hist_t *a, const mx_hist_t *h)
{
    size_t i;

    for (i = 0; i <= MX_BUCKETS_MAX; i++)
        a->bucket[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    a->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

void metrics_free(metrics_t *m)
{
    int t;

    if (m == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        g_list = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    for (t = 0; t < T_COUNT; t++)
        agg_add_table(&g_retired[t], &m->t[t], tdefs[t].nlabels);
    for (t = 0; t < H_COUNT; t++)
        agg_add_hist(&g_retired_hist[t], &m->h[t]);
    pthread_mutex_unlock(&g_mu);
    for (t = 0; t < T_COUNT; t++)
        free(m->t[t].rows);
    free(m);
}

/* ---- rendering ------------------------------------------------------------ */

static void header(struct evbuffer *out, const char *name, const char *help,
                   const char *type)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value in the text format: \ " and newline escaped. */
static void label_value(struct evbuffer *out, const char *v)
{
    const char *p;

    evbuffer_add(out, "\"", 1);
    for (p = v; *p != '\0'; p++) {
        if (*p == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*p == '"')
            evbuffer_add(out, "\\\"", 2);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
    evbuffer_add(out, "\"", 1);
}

static void render_table(struct evbuffer *out, const tdef_t *d, const agg_t *a)
{
    size_t i, k;

    header(out, d->name, d->help, "counter");
    for (i = 0; i < a->n; i++) {
        evbuffer_add_printf(out, "%s{", d->name);
        for (k = 0; k < d->nlabels; k++) {
            evbuffer_add_printf(out, "%s%s=", k ? "," : "", d->labels[k]);
            label_value(out, a->rows[i].v[k]);
        }
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)a->rows[i].n);
    }
}

static void render_hist(struct evbuffer *out, const hdef_t *d, const agg_hist_t *h)
{
    unsigned long long cum = 0;
    size_t i;

    header(out, d->name, d->help, "histogram");
    for (i = 0; i < d->nb; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n", d->name, d->le[i], cum);
    }
    cum += h->bucket[d->nb];
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, cum);
    evbuffer_add_printf(out, "%s_sum %.9f\n", d->name, (double)h->sum_ns / 1e9);
    /* _count is the +Inf bucket, so the two agree even mid-update. */
    evbuffer_add_printf(out, "%s_count %llu\n", d->name, cum);
}

void metrics_conn_open(int delta)
{
    atomic_fetch_add_explicit(&g_conns, delta, memory_order_relaxed);
}

void metrics_conn_refused(void)
{
    atomic_fetch_add_explicit(&g_conns_refused, 1, memory_order_relaxed);
}

void metrics_read_timeout(void)
{
    atomic_fetch_add_explicit(&g_read_timeouts, 1, memory_order_relaxed);
}

static void render_fleet(struct evbuffer *out)
{
    uint64_t seen = atomic_load_explicit(&g_fleet_seen_ms, memory_order_relaxed);
    uint64_t now = util_mono_ms();

    header(out, "tollgate_fleet_replicas",
           "Live tollgate replicas sharing this Redis, as last counted (0: not yet); "
           "the local fallback divides each rate by it.",
           "gauge");
    evbuffer_add_printf(out, "tollgate_fleet_replicas %u\n",
                        atomic_load_explicit(&g_fleet, memory_order_relaxed));
    header(out, "tollgate_fleet_replicas_age_seconds",
           "Seconds since tollgate_fleet_replicas was last counted in Redis.", "gauge");
    if (seen != 0)
        evbuffer_add_printf(out, "tollgate_fleet_replicas_age_seconds %.3f\n",
                            (double)(now > seen ? now - seen : 0) / 1000.0);
}

static void render_globals(struct evbuffer *out)
{
    header(out, "tollgate_config_reloads_total", "Configuration reloads, by result.",
           "counter");
    evbuffer_add_printf(
        out, "tollgate_config_reloads_total{result=\"ok\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&g_reloads_ok, memory_order_relaxed));
    evbuffer_add_printf(
        out, "tollgate_config_reloads_total{result=\"error\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&g_reloads_err, memory_order_relaxed));
    header(out, "tollgate_fallback",
           "1 while limits are decided locally because Redis is unreachable.", "gauge");
    evbuffer_add_printf(out, "tollgate_fallback %d\n",
                        atomic_load_explicit(&g_fallback, memory_order_relaxed));
    header(out, "tollgate_revocations_cached", "Revoked tokens held in the local set.",
           "gauge");
    evbuffer_add_printf(out, "tollgate_revocations_cached %ld\n",
                        atomic_load_explicit(&g_revocations, memory_order_relaxed));
    header(out, "tollgate_bans_active", "Bans in force in this replica's set.", "gauge");
    evbuffer_add_printf(out, "tollgate_bans_active %ld\n",
                        atomic_load_explicit(&g_bans_active, memory_order_relaxed));
    header(out, "tollgate_lockouts_lifted_total",
           "Lockouts lifted through the admin API on this replica.", "counter");
    evbuffer_add_printf(
        out, "tollgate_lockouts_lifted_total %llu\n",
        (unsigned long long)atomic_load_explicit(&g_lockouts_lifted, memory_order_relaxed));
    header(out, "tollgate_revocations_undone_total",
           "Revocations undone through this replica's admin API.", "counter");
    evbuffer_add_printf(out, "tollgate_revocations_undone_total %llu\n",
                        (unsigned long long)atomic_load_explicit(&g_revocations_undone,
                                                                 memory_order_relaxed));
    render_fleet(out);
    header(out, "tollgate_connections",
           "Client connections open on the main listener that have sent a request "
           "(the count max_connections bounds).",
           "gauge");
    evbuffer_add_printf(out, "tollgate_connections %ld\n",
                        atomic_load_explicit(&g_conns, memory_order_relaxed));
    header(out, "tollgate_connections_refused_total",
           "Connections closed at their first bytes because max_connections were open.",
           "counter");
    evbuffer_add_printf(
        out, "tollgate_connections_refused_total %llu\n",
        (unsigned long long)atomic_load_explicit(&g_conns_refused, memory_order_relaxed));
    header(out, "tollgate_request_read_timeouts_total",
           "Connections closed because a request took longer than "
           "request_read_timeout_ms to arrive.",
           "counter");
    evbuffer_add_printf(
        out, "tollgate_request_read_timeouts_total %llu\n",
        (unsigned long long)atomic_load_explicit(&g_read_timeouts, memory_order_relaxed));
}

void metrics_render(struct evbuffer *out)
{
    agg_t tables[T_COUNT] = {{0}};
    agg_hist_t hists[H_COUNT];
    const metrics_t *m;
    size_t i;
    int t;

    if (out == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    memcpy(hists, g_retired_hist, sizeof(hists));
    for (t = 0; t < T_COUNT; t++)
        for (i = 0; i < g_retired[t].n; i++)
            agg_add(&tables[t], (const char(*)[MX_VAL_MAX])g_retired[t].rows[i].v,
                    tdefs[t].nlabels, g_retired[t].rows[i].n);
    for (m = g_list; m != NULL; m = m->next) {
        for (t = 0; t < T_COUNT; t++)
            agg_add_table(&tables[t], &m->t[t], tdefs[t].nlabels);
        for (t = 0; t < H_COUNT; t++)
            agg_add_hist(&hists[t], &m->h[t]);
    }
    pthread_mutex_unlock(&g_mu);

    render_table(out, &tdefs[T_REQUESTS], &tables[T_REQUESTS]);
    render_hist(out, &hdefs[H_REQUEST], &hists[H_REQUEST]);
    render_table(out, &tdefs[T_LIMITS], &tables[T_LIMITS]);
    render_table(out, &tdefs[T_AUTH], &tables[T_AUTH]);
    render_table(out, &tdefs[T_REDIS], &tables[T_REDIS]);
    render_table(out, &tdefs[T_OVERLIMIT], &tables[T_OVERLIMIT]);
    render_table(out, &tdefs[T_LEASE], &tables[T_LEASE]);
    render_table(out, &tdefs[T_JWT_CACHE], &tables[T_JWT_CACHE]);
    render_table(out, &tdefs[T_DEPRECATED], &tables[T_DEPRECATED]);
    render_table(out, &tdefs[T_ACCEPT], &tables[T_ACCEPT]);
    render_table(out, &tdefs[T_FWD_REPEATS], &tables[T_FWD_REPEATS]);
    render_hist(out, &hdefs[H_REDIS], &hists[H_REDIS]);
    render_globals(out);
    for (t = 0; t < T_COUNT; t++)
        free(tables[t].rows);
}
