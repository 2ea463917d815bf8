/* replay.c — `tollgate replay --config CANDIDATE [--json]
 * [--max-deny-increase N[%]] AUDIT.LOG...` (docs/reference.md §1).
 *
 * Every request line of the logs (replay_line.c), in the order of its
 * decision time, goes through the candidate config's decision core —
 * dec_start, the code that decides live traffic — on a context made for
 * replay (dec_ctx_new_replay):
 *  - limits: the memory backend, decided at the line's recorded time
 *    (rl_memory_decide_groups), no Redis, no network;
 *  - time: the clock hooks return the recorded time; the core's "later"
 *    (the delivery of a verdict, a JWKS poll) and the limiter's answers go
 *    into a small queue run in order, so nothing waits on a wall clock;
 *  - identity: the line's (auth_method, client_id, iss, scopes, tier),
 *    through dec_input_t.replay_as; the candidate's key store supplies an
 *    API-key client's scopes and tier when it names the id;
 *  - stores count nothing: no lockout is counted or checked, no ticket is
 *    redeemed (a ticket holder is decided as its recorded identity);
 *    revocations are not checked (the line's verdict on a revoked token is
 *    a refused credential, decided as refused again).
 * A line whose verdict hangs on what the line does not hold (a lockout,
 * the raw headers that were refused, a client that left) is carried as
 * recorded.  replay_report.c adds up and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "tollgate/util_str.h"
#include "tollgate/cfg.h"
#include "tollgate/rl_memory.h"
#include "srv_replay.h"

#define SIM_BUCKETS ((size_t)1 << 20) /* the memory store's size */
#define SIM_STEPS_MAX 100000          /* events of one decision before it is a bug */

/* One recorded request and where it came from. */
typedef struct item {
    srv_replay_rec_t rec;
    const char *file;
    size_t line;
    size_t idx; /* reading order: ties of time keep it */
} item_t;

/* Something the core or the limiter asked to run later. */
typedef struct sim_ev {
    uint64_t due, seq;
    dec_timer_fn *fn; /* a core timer, or */
    void *arg;
    rl_backend_done_fn bdone; /* a backend's answer */
} sim_ev_t;

typedef struct sim {
    struct event_base *base; /* the limiter's own zero-delay events only */
    rl_memory_t *mem;
    rl_limiter_t *limiter;
    dec_ctx_t *ctx;
    const cfg_t *cfg;
    int64_t wall;  /* the recorded time of the line being decided */
    uint64_t mono; /* never behind wall; timers move it on */
    sim_ev_t **q;
    size_t nq, capq;
    uint64_t seq;
    /* the line being decided */
    const item_t *cur;
    bool decided;
    srv_replay_report_t *rep;
    bool oom;
} sim_t;

/* ---- the queue ------------------------------------------------------------ */

static sim_ev_t *sim_push(sim_t *s, unsigned ms)
{
    sim_ev_t *e;

    if (s->nq == s->capq) {
        size_t cap = s->capq ? s->capq * 2 : 8;
        sim_ev_t **q = realloc(s->q, cap * sizeof(*q));

        if (q == NULL)
            return NULL;
        s->q = q;
        s->capq = cap;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    e->due = s->mono + ms;
    e->seq = s->seq++;
    s->q[s->nq++] = e;
    return e;
}

static void sim_remove(sim_t *s, sim_ev_t *e)
{
    for (size_t i = 0; i < s->nq; i++)
        if (s->q[i] == e) {
            s->q[i] = s->q[--s->nq];
            free(e);
            return;
        }
}

/* The earliest (then the first queued), taken off the queue. */
static sim_ev_t *sim_pop(sim_t *s)
{
    size_t best = 0;
    sim_ev_t *e;

    if (s->nq == 0)
        return NULL;
    for (size_t i = 1; i < s->nq; i++)
        if (s->q[i]->due < s->q[best]->due ||
            (s->q[i]->due == s->q[best]->due && s->q[i]->seq < s->q[best]->seq))
            best = i;
    e = s->q[best];
    s->q[best] = s->q[--s->nq];
    return e;
}

/* ---- the context's hooks, backend and stores ------------------------------ */

static void *timer_add(void *arg, unsigned ms, dec_timer_fn *fn, void *fn_arg)
{
    sim_ev_t *e = sim_push(arg, ms);

    if (e != NULL) {
        e->fn = fn;
        e->arg = fn_arg;
    }
    return e;
}

static void timer_cancel(void *arg, void *timer)
{
    sim_remove(arg, timer);
}

static int64_t wall_ms(void *arg)
{
    return ((sim_t *)arg)->wall;
}

static uint64_t mono_ms(void *arg)
{
    return ((sim_t *)arg)->mono;
}

static void on_limit(void *arg, const char *name, const char *outcome, const char *mode);

static void *sim_check(void *be, struct event_base *base, rl_group_t *groups, size_t n,
                       rl_backend_done_fn done, void *privdata)
{
    sim_t *s = be;
    sim_ev_t *e = sim_push(s, 0);

    (void)base;
    if (e == NULL)
        return NULL;
    e->bdone = done;
    e->arg = privdata;
    rl_memory_decide_groups(s->mem, groups, n, s->wall);
    return e;
}

static void sim_cancel(void *be, void *token)
{
    sim_remove(be, token);
}

static const rl_backend_ops_t sim_ops = {
    .name = "replay", .check = sim_check, .cancel = sim_cancel};

static uint64_t no_lockout(void *st, const char *ip_key, int64_t now_ms)
{
    (void)st;
    (void)ip_key;
    (void)now_ms;
    return 0;
}

static void *no_count(void *st, const char *ip_key, const auth_lockout_policy_t *p,
                      int64_t now_ms, dec_count_done_fn *done, void *arg)
{
    (void)st, (void)ip_key, (void)p, (void)now_ms, (void)done, (void)arg;
    return NULL; /* "counted": nothing to wait for */
}

static void no_detach(void *op)
{
    (void)op;
}

static dec_store_status_t no_redeem(void *st, const char *key, int64_t now_ms, char **val,
                                    void **op, dec_ticket_done_fn *done, void *arg)
{
    (void)st, (void)key, (void)now_ms, (void)op, (void)done, (void)arg;
    *val = NULL;
    return DEC_STORE_NOW;
}

static dec_store_status_t no_issue(void *st, const char *key, const char *val,
                                   unsigned ttl_s, int64_t now_ms, void **op,
                                   dec_ticket_done_fn *done, void *arg)
{
    (void)st, (void)key, (void)val, (void)ttl_s, (void)now_ms, (void)op, (void)done,
        (void)arg;
    return DEC_STORE_NOW;
}

static const dec_stores_ops_t no_stores = {
    .lockout_check = no_lockout,
    .lockout_fail = no_count,
    .lockout_detach = no_detach,
    .ticket_redeem = no_redeem,
    .ticket_issue = no_issue,
    .ticket_cancel = no_detach,
};

static int sim_init(sim_t *s, const cfg_t *cfg, srv_replay_report_t *rep)
{
    dec_ctx_cfg_t c = {
        .stores = &no_stores,
        .ticket_prefix = "replay:",
        .hooks = {.arg = s,
                  .timer_add = timer_add,
                  .timer_cancel = timer_cancel,
                  .limit = on_limit,
                  .wall_ms = wall_ms,
                  .mono_ms = mono_ms},
    };

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->rep = rep;
    if ((s->base = event_base_new()) == NULL ||
        (s->mem = rl_memory_new(SIM_BUCKETS)) == NULL ||
        (s->limiter = rl_limiter_new(s->base, &sim_ops, s)) == NULL)
        return -1;
    c.limiter = s->limiter;
    return (s->ctx = dec_ctx_new_replay(&c)) != NULL ? 0 : -1;
}

static void sim_clear(sim_t *s)
{
    dec_ctx_free(s->ctx);
    rl_limiter_free(s->limiter);
    rl_memory_free(s->mem);
    while (s->nq > 0)
        free(s->q[--s->nq]);
    free(s->q);
    if (s->base != NULL)
        event_base_free(s->base);
}

/* ---- a recorded request as the core's input -------------------------------- */

typedef struct rec_hdrs {
    dec_header_t h[SRV_REPLAY_KEYS_MAX];
    size_t n;
} rec_hdrs_t;

static const char *h_find(void *ctx, const char *name)
{
    const rec_hdrs_t *h = ctx;

    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->h[i].name, name) == 0)
            return h->h[i].value;
    return NULL;
}

static void h_each(void *ctx, dec_header_fn fn, void *arg)
{
    const rec_hdrs_t *h = ctx;

    for (size_t i = 0; i < h->n; i++)
        if (fn(arg, h->h[i].name, h->h[i].value) != 0)
            return;
}

/* The line's header keys as headers, its claim keys as claims. */
static void split_keys(const srv_replay_rec_t *r, rec_hdrs_t *h, rec_hdrs_t *cl)
{
    h->n = cl->n = 0;
    for (size_t i = 0; i < r->nkeys; i++) {
        const char *k = r->keys[i].name;

        if (r->keys[i].value == NULL)
            continue;
        if (strncmp(k, "header:", 7) == 0)
            h->h[h->n++] = (dec_header_t){k + 7, r->keys[i].value};
        else
            cl->h[cl->n++] = (dec_header_t){k + 6, r->keys[i].value};
    }
}

/* How the request came: the line's mode; a line from before item 6 says
 * nothing: proxy when the candidate proxies any route, else forward-auth. */
static dec_dialect_t dialect_of(const sim_t *s, const srv_replay_rec_t *r)
{
    if (r->mode == NULL) {
        for (size_t i = 0; i < s->cfg->nroutes; i++)
            if (s->cfg->routes[i].upstream != NULL)
                return DEC_DIALECT_NONE;
        return DEC_DIALECT_ENVOY;
    }
    if (strcmp(r->mode, "envoy") == 0)
        return DEC_DIALECT_ENVOY;
    if (strcmp(r->mode, "nginx") == 0)
        return DEC_DIALECT_NGINX;
    if (strcmp(r->mode, "traefik") == 0)
        return DEC_DIALECT_TRAEFIK;
    return DEC_DIALECT_NONE; /* proxy, ticket */
}

/* The recorded identity: a line from before item 6 has a client id but no
 * method; it is taken to be an API-key client. */
static void replay_id(const srv_replay_rec_t *r, const rec_hdrs_t *cl, dec_replay_id_t *id)
{
    *id = (dec_replay_id_t){
        .method = r->auth_method,
        .client_id = r->client_id,
        .refused = r->client_id == NULL ? r->reason : NULL,
        .iss = r->iss,
        .scopes = r->scopes,
        .tier = r->tier,
        .claims = cl->h,
        .nclaims = cl->n,
    };
    if (!r->why && r->client_id != NULL)
        id->method = "api_key";
}

/* Verdicts that hang on what the line does not hold: carried as recorded. */
static bool carried(const srv_replay_rec_t *r)
{
    static const char *const reasons[] = {
        "locked_out",          "headers_too_large",
        "body_too_large",      "client_closed",
        "bad_header_name",     "bad_header_value",
        "duplicate_header",    "nul_in_header",
        "bad_content_length",  "bad_transfer_encoding",
        "method_override",     "reserved_header",
        "untrusted_forwarder", "dialect_conflict",
        "bad_original",        "cors_origin",
        "preflight",           "health",
        "out_of_memory",       "host_mismatch",
    };

    if (r->method == NULL || r->path == NULL)
        return true;
    if (r->reason != NULL && strcmp(r->reason, "banned") == 0)
        return true; /* a ban is the fleet's state, not the config's */
    for (size_t i = 0; r->reason != NULL && i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(r->reason, reasons[i]) == 0)
            return true;
    return false;
}

/* ---- adding up ------------------------------------------------------------- */

static const char *client_label(const srv_replay_rec_t *r, char *buf, size_t len)
{
    if (r->client_id != NULL)
        return r->client_id;
    snprintf(buf, len, "ip:%s", r->ip != NULL ? r->ip : r->peer != NULL ? r->peer : "-");
    return buf;
}

/* The line's key (kind:name), or NULL when it has none. */
static const dec_header_t *rec_key(const srv_replay_rec_t *r, const char *kind,
                                   const char *name)
{
    char want[128];

    snprintf(want, sizeof want, "%s:%s", kind, name);
    for (size_t i = 0; i < r->nkeys; i++)
        if ((kind[0] == 'h' ? strcasecmp : strcmp)(r->keys[i].name, want) == 0)
            return &r->keys[i];
    return NULL;
}

static bool rec_has_key(const srv_replay_rec_t *r, const char *kind, const char *name)
{
    return rec_key(r, kind, name) != NULL;
}

/* audit.c writes a value's first 256 bytes: a longer one is not the same. */
static bool rec_key_cut(const srv_replay_rec_t *r, const rl_by_t *by)
{
    const dec_header_t *k =
        rec_key(r, by->kind == RL_BY_HEADER ? "header" : "claim", by->name);

    return k != NULL && k->value != NULL && strlen(k->value) >= 256;
}

/* Why `lim` cannot be replayed exactly on this line, one note per reason. */
static void check_exact(sim_t *s, const rl_limit_t *lim)
{
    const srv_replay_rec_t *r = &s->cur->rec;
    char why[256];
    int rc = 0;

    if (!r->why)
        rc |= srv_replay_note_inexact(s->rep, lim->name,
                                      "lines from before issue 22 item 6 (no auth method, "
                                      "mode or key values): clients taken as API keys");
    for (size_t i = 0; i < lim->nby; i++) {
        const rl_by_t *by = &lim->by[i];

        why[0] = '\0';
        if ((by->kind == RL_BY_HEADER || by->kind == RL_BY_CLAIM) &&
            dec_header_is_credential(by->name))
            snprintf(why, sizeof why,
                     "keyed on %s:%s, which may carry a credential: never recorded",
                     by->kind == RL_BY_HEADER ? "header" : "claim", by->name);
        else if (r->why && by->kind == RL_BY_HEADER && !rec_has_key(r, "header", by->name))
            snprintf(why, sizeof why, "keyed on header:%s, which the line does not hold",
                     by->name);
        else if (r->why && by->kind == RL_BY_CLAIM && r->iss != NULL &&
                 !rec_has_key(r, "claim", by->name))
            snprintf(why, sizeof why, "keyed on claim:%s, which the line does not hold",
                     by->name);
        else if (r->why && (by->kind == RL_BY_HEADER || by->kind == RL_BY_CLAIM) &&
                 rec_key_cut(r, by))
            snprintf(why, sizeof why,
                     "keyed on %s:%s, whose value the line cut to 256 bytes",
                     by->kind == RL_BY_HEADER ? "header" : "claim", by->name);
        if (why[0] != '\0')
            rc |= srv_replay_note_inexact(s->rep, lim->name, why);
    }
    if (rc != 0)
        s->oom = true;
}

static const rl_limit_t *find_limit(const cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->policy.nlimits; i++)
        if (strcmp(c->policy.limits[i].name, name) == 0)
            return &c->policy.limits[i];
    return NULL;
}

/* The core's observation of one limit of the request being decided. */
static void on_limit(void *arg, const char *name, const char *outcome, const char *mode)
{
    sim_t *s = arg;
    srv_replay_row_t *row = srv_replay_row(&s->rep->limits, &s->rep->nlimits, name);
    const rl_limit_t *lim = find_limit(s->cfg, name);
    char buf[HTTP_IP_STRLEN + 4];

    (void)mode;
    if (row == NULL) {
        s->oom = true;
        return;
    }
    row->requests++;
    if (strcmp(outcome, "deny") == 0) {
        row->would_deny++;
        if (srv_replay_row_deny_client(row, client_label(&s->cur->rec, buf, sizeof buf)) !=
            0)
            s->oom = true;
    } else {
        row->would_allow++;
    }
    if (lim != NULL)
        check_exact(s, lim);
}

static void note_mismatch(sim_t *s, const char *replayed, const char *reason)
{
    srv_replay_report_t *rep = s->rep;
    srv_replay_mismatch_t *m = &rep->mismatch[rep->nmismatch];
    char where[600];

    if (rep->nmismatch == SRV_REPLAY_MISMATCHES)
        return;
    snprintf(where, sizeof where, "%s:%zu", s->cur->file, s->cur->line);
    *m = (srv_replay_mismatch_t){
        .where = strdup(where),
        .request_id = s->cur->rec.request_id ? strdup(s->cur->rec.request_id) : NULL,
        .recorded = s->cur->rec.decision,
        .replayed = replayed,
        .reason = reason ? strdup(reason) : NULL,
    };
    rep->nmismatch++;
}

/* One line's recorded and replayed decisions into the totals and its route. */
static void tally(sim_t *s, const char *decision, const char *reason, const char *route)
{
    srv_replay_report_t *rep = s->rep;
    const srv_replay_rec_t *r = &s->cur->rec;
    int was = srv_replay_decision_index(r->decision),
        now = srv_replay_decision_index(decision);
    srv_replay_row_t *row = srv_replay_row(&rep->routes, &rep->nroutes, route);

    rep->rec[was]++;
    rep->would[now]++;
    if (was != now) {
        rep->changed++;
        rep->allow_to_deny += was == 0 && now == 1;
        rep->deny_to_allow += was == 1 && now == 0;
        note_mismatch(s, now == 0 ? "allow" : now == 1 ? "deny" : "error", reason);
    }
    if (r->limit != NULL && r->reason != NULL &&
        (strcmp(r->reason, "rate_limited") == 0 ||
         strcmp(r->reason, "shadow_rate_limited") == 0)) {
        srv_replay_row_t *l = srv_replay_row(&rep->limits, &rep->nlimits, r->limit);

        if (l != NULL)
            l->rec_deny++;
    }
    if (row == NULL) {
        s->oom = true;
        return;
    }
    row->requests++;
    row->rec_allow += was == 0;
    row->rec_deny += was == 1;
    row->would_allow += now == 0;
    row->would_deny += now == 1;
}

static void on_done(const dec_verdict_t *v, void *arg)
{
    sim_t *s = arg;

    s->decided = true;
    s->rep->requests++;
    tally(s, v->decision, v->reason, v->route != NULL ? v->route->name : "(none)");
}

/* ---- the run --------------------------------------------------------------- */

/* Run what is due until the decision is delivered.  -1: it never was. */
static int drive(sim_t *s)
{
    sim_ev_t *e;

    for (unsigned steps = 0; !s->decided && steps < SIM_STEPS_MAX; steps++) {
        if (event_base_loop(s->base, EVLOOP_NONBLOCK) == 0 && s->decided)
            break;
        if ((e = sim_pop(s)) == NULL) {
            if (event_base_loop(s->base, EVLOOP_NONBLOCK) != 0 && !s->decided)
                return -1; /* nothing queued, nothing active */
            continue;
        }
        if (e->due > s->mono)
            s->mono = e->due;
        if (e->bdone != NULL)
            e->bdone(0, NULL, e->arg);
        else
            e->fn(e->arg);
        free(e);
    }
    return s->decided ? 0 : -1;
}

static int replay_one(sim_t *s, const item_t *it)
{
    const srv_replay_rec_t *r = &it->rec;
    rec_hdrs_t h, cl;
    dec_replay_id_t id;
    dec_input_t in = {.headers = {&h, h_find, h_each}, .replay_as = &id};
    dec_pending_t *p;

    s->cur = it;
    s->decided = false;
    if (carried(r)) {
        s->rep->carried++;
        tally(s, r->decision, r->reason, r->route != NULL ? r->route : "(none)");
        return 0;
    }
    split_keys(r, &h, &cl);
    replay_id(r, &cl, &id);
    s->wall = r->t_ms;
    if ((uint64_t)r->t_ms > s->mono)
        s->mono = (uint64_t)r->t_ms;
    in.peer = r->ip != NULL ? r->ip : r->peer != NULL ? r->peer : "";
    in.dialect = dialect_of(s, r);
    in.method = r->method;
    in.target = r->path;
    in.host = r->host;
    if (in.dialect != DEC_DIALECT_NONE) {
        in.method = "GET";
        in.target = s->cfg->forward_auth.path;
        in.o_method = r->method;
        in.o_target = r->path;
        in.o_host = r->host;
    }
    if ((p = dec_start(s->ctx, s->cfg, &in, on_done, s)) == NULL)
        return -1;
    return drive(s);
}

static int by_time(const void *a, const void *b)
{
    const item_t *x = a, *y = b;

    if (x->rec.t_ms != y->rec.t_ms)
        return x->rec.t_ms < y->rec.t_ms ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* ---- reading the logs ------------------------------------------------------ */

typedef struct items {
    item_t *v;
    size_t n, cap;
} items_t;

/* One line of `f` (NULs and all, without its '\n') into buf[0..max]: its
 * length, max + 1 when it is longer than max (the rest left unread: a line
 * that never ends is not read into memory), -1 at the end. */
static ssize_t read_line(FILE *f, char *buf, size_t max)
{
    size_t n = 0;
    int c;

    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n == max)
            return (ssize_t)max + 1;
        buf[n++] = (char)c;
    }
    return c == EOF && n == 0 ? -1 : (ssize_t)n;
}

static int read_file(const char *path, items_t *it, size_t max_lines,
                     srv_replay_report_t *rep)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = malloc(SRV_REPLAY_LINE_MAX + 1), err[256];
    size_t lineno = 0;
    ssize_t len;
    int rc = 0;

    if (f == NULL || line == NULL) {
        fprintf(stderr, "tollgate replay: %s: %s\n", path,
                f == NULL ? strerror(errno) : "out of memory");
        free(line);
        if (f != NULL && f != stdin)
            fclose(f);
        return -1;
    }
    while ((len = read_line(f, line, SRV_REPLAY_LINE_MAX)) >= 0) {
        srv_replay_rec_t rec;
        int st;

        lineno++;
        if (len > SRV_REPLAY_LINE_MAX) {
            fprintf(stderr, "tollgate replay: %s:%zu: line longer than %d bytes\n", path,
                    lineno, SRV_REPLAY_LINE_MAX);
            rc = -1;
            break;
        }
        st = srv_replay_parse_line(line, (size_t)len, &rec, err, sizeof err);
        if (st < 0) {
            fprintf(stderr, "tollgate replay: %s:%zu: %s\n", path, lineno, err);
            rc = -1;
            break;
        }
        if (st == 0) {
            rep->skipped++;
            continue;
        }
        if (it->n == max_lines) {
            srv_replay_rec_clear(&rec);
            fprintf(stderr,
                    "tollgate replay: %s:%zu: more than %zu request lines (each is held to "
                    "be sorted in time): replay a shorter span, or raise --max-lines\n",
                    path, lineno, max_lines);
            rc = -1;
            break;
        }
        if (it->n == it->cap) {
            size_t ncap = it->cap ? it->cap * 2 : 1024;
            item_t *v = realloc(it->v, ncap * sizeof(*v));

            if (v == NULL) {
                srv_replay_rec_clear(&rec);
                fprintf(stderr, "tollgate replay: out of memory\n");
                rc = -1;
                break;
            }
            it->v = v;
            it->cap = ncap;
        }
        it->v[it->n] = (item_t){rec, path, lineno, it->n};
        it->n++;
        rep->lines++;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "tollgate replay: %s: read error\n", path);
        rc = -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

static void items_clear(items_t *it)
{
    for (size_t i = 0; i < it->n; i++)
        srv_replay_rec_clear(&it->v[i].rec);
    free(it->v);
}

/* ---- the command ----------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tollgate replay --config CANDIDATE.yaml [--json]\n"
               "                       [--max-deny-increase N|N%%] [--max-lines N] "
               "AUDIT.LOG...\n"
               "Exit: 0 ok, 1 the candidate config does not load, 2 usage or a bad log,\n"
               "      4 denials rose by more than --max-deny-increase.\n");
}

typedef struct args {
    const char *config;
    bool json;
    srv_replay_gate_t gate;
    size_t max_lines; /* request lines held at most */
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"max-deny-increase", required_argument, NULL, 'm'},
        {"max-lines", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        case 'm':
            if (srv_replay_gate_parse(optarg, &a->gate) != 0) {
                fprintf(stderr,
                        "tollgate replay: --max-deny-increase: expected N (requests) "
                        "or N%% (0-100, of the requests replayed)\n");
                return -1;
            }
            break;
        case 'l': {
            uint64_t n;

            if (util_parse_u64(optarg, strlen(optarg), &n) != 0 || n == 0 ||
                n > SRV_REPLAY_MAX_LINES_CAP) {
                fprintf(stderr, "tollgate replay: --max-lines: expected 1-%d\n",
                        SRV_REPLAY_MAX_LINES_CAP);
                return -1;
            }
            a->max_lines = (size_t)n;
            break;
        }
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (a->config == NULL || optind >= argc) {
        fprintf(stderr, "tollgate replay: %s\n",
                a->config == NULL ? "--config CANDIDATE is required"
                                  : "no audit log given");
        return -1;
    }
    return 0;
}

static int run(cfg_t *cfg, items_t *it, srv_replay_report_t *rep)
{
    sim_t s;
    int rc = 0;

    for (size_t i = 0; i < cfg->policy.nlimits; i++) { /* every limit, in config order */
        srv_replay_row_t *row =
            srv_replay_row(&rep->limits, &rep->nlimits, cfg->policy.limits[i].name);
        if (row == NULL)
            return -1;
        row->shadow = cfg->policy.limits[i].mode == RL_MODE_SHADOW;
    }
    qsort(it->v, it->n, sizeof(*it->v), by_time);
    if (sim_init(&s, cfg, rep) != 0) {
        sim_clear(&s);
        return -1;
    }
    for (size_t i = 0; i < it->n && rc == 0; i++)
        if (replay_one(&s, &it->v[i]) != 0 || s.oom) {
            fprintf(stderr, "tollgate replay: %s:%zu: could not be decided\n",
                    it->v[i].file, it->v[i].line);
            rc = -1;
        }
    sim_clear(&s);
    return rc;
}

int srv_replay_main(int argc, char **argv)
{
    args_t a = {.max_lines = SRV_REPLAY_MAX_LINES};
    items_t it = {0};
    srv_replay_report_t rep = {0};
    char err[8192];
    cfg_t *cfg = NULL;
    int rc = SRV_REPLAY_EXIT_USAGE;

    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return SRV_REPLAY_EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++)
        if (read_file(argv[i], &it, a.max_lines, &rep) != 0)
            goto out;
    err[0] = '\0';
    if ((cfg = cfg_load(a.config, err, sizeof err)) == NULL) {
        fprintf(stderr, "tollgate replay: %s: %s", a.config,
                err[0] ? err : "cannot load\n");
        rc = SRV_REPLAY_EXIT_CONFIG;
        goto out;
    }
    rep.gate = a.gate;
    if (run(cfg, &it, &rep) != 0) {
        rc = 3;
        goto out;
    }
    srv_replay_print(&rep, a.json, stdout);
    fflush(stdout);
    rc = srv_replay_gate_exceeded(&rep.gate, srv_replay_increase(&rep), rep.lines)
             ? SRV_REPLAY_EXIT_GATE
             : SRV_REPLAY_EXIT_OK;
out:
    srv_replay_report_clear(&rep);
    items_clear(&it);
    cfg_unref(cfg);
    return rc;
}
