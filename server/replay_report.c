/* replay_report.c — the arithmetic and the report of `tollgate replay`
 * (srv_replay.h): rows per limit and per route, the would-be-denied
 * clients of a limit (a hash table, top 10 at the end), the limits not
 * replayed exactly, the gate of --max-deny-increase, and the report as
 * text or JSON.  Integers only: counts, and percentages in hundredths.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "srv_replay.h"

#define TOP_N 10

typedef struct srv_replay_count {
    char *name; /* NULL: free slot */
    uint64_t n;
} srv_replay_count_t;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ---- rows --------------------------------------------------------------- */

int64_t srv_replay_row_diff(const srv_replay_row_t *r)
{
    return (int64_t)r->would_deny - (int64_t)r->rec_deny;
}

static int grow(srv_replay_row_t *r)
{
    size_t cap = r->cap ? r->cap * 2 : 64;
    srv_replay_count_t *t = calloc(cap, sizeof(*t));

    if (t == NULL)
        return -1;
    for (size_t i = 0; i < r->cap; i++) {
        size_t j;

        if (r->clients[i].name == NULL)
            continue;
        for (j = str_hash(r->clients[i].name) & (cap - 1); t[j].name != NULL;
             j = (j + 1) & (cap - 1))
            ;
        t[j] = r->clients[i];
    }
    free(r->clients);
    r->clients = t;
    r->cap = cap;
    return 0;
}

int srv_replay_row_deny_client(srv_replay_row_t *r, const char *client)
{
    size_t j;

    if (2 * (r->nclients + 1) > r->cap && grow(r) != 0)
        return -1;
    for (j = str_hash(client) & (r->cap - 1); r->clients[j].name != NULL;
         j = (j + 1) & (r->cap - 1))
        if (strcmp(r->clients[j].name, client) == 0) {
            r->clients[j].n++;
            return 0;
        }
    if ((r->clients[j].name = strdup(client)) == NULL)
        return -1;
    r->clients[j].n = 1;
    r->nclients++;
    return 0;
}

/* Does a rank before b (more denials, then the name)? */
static bool before(const srv_replay_count_t *a, const srv_replay_count_t *b)
{
    return a->n != b->n ? a->n > b->n : strcmp(a->name, b->name) < 0;
}

size_t srv_replay_row_top(const srv_replay_row_t *r, size_t n, const char **names,
                          uint64_t *counts)
{
    const srv_replay_count_t *top[TOP_N] = {NULL};
    size_t k = 0;

    if (n > TOP_N)
        n = TOP_N;
    for (size_t i = 0; i < r->cap; i++) {
        const srv_replay_count_t *c = &r->clients[i];
        size_t j;

        if (c->name == NULL || (k == n && (n == 0 || !before(c, top[k - 1]))))
            continue;
        j = k < n ? k++ : k - 1; /* insert, dropping the last when full */
        for (; j > 0 && before(c, top[j - 1]); j--)
            top[j] = top[j - 1];
        top[j] = c;
    }
    for (size_t i = 0; i < k; i++) {
        names[i] = top[i]->name;
        counts[i] = top[i]->n;
    }
    return k;
}

void srv_replay_row_clear(srv_replay_row_t *r)
{
    for (size_t i = 0; i < r->cap; i++)
        free(r->clients[i].name);
    free(r->clients);
    free(r->name);
    memset(r, 0, sizeof(*r));
}

srv_replay_row_t *srv_replay_row(srv_replay_row_t **rows, size_t *n, const char *name)
{
    srv_replay_row_t *v;

    for (size_t i = 0; i < *n; i++)
        if (strcmp((*rows)[i].name, name) == 0)
            return &(*rows)[i];
    if ((v = realloc(*rows, (*n + 1) * sizeof(*v))) == NULL)
        return NULL;
    *rows = v;
    memset(&v[*n], 0, sizeof(v[*n]));
    if ((v[*n].name = strdup(name)) == NULL)
        return NULL;
    return &v[(*n)++];
}

int srv_replay_note_inexact(srv_replay_report_t *rep, const char *limit, const char *why)
{
    srv_replay_inexact_t *v;

    for (size_t i = 0; i < rep->ninexact; i++)
        if (strcmp(rep->inexact[i].limit, limit) == 0 &&
            strcmp(rep->inexact[i].why, why) == 0) {
            rep->inexact[i].lines++;
            return 0;
        }
    if ((v = realloc(rep->inexact, (rep->ninexact + 1) * sizeof(*v))) == NULL)
        return -1;
    rep->inexact = v;
    v[rep->ninexact] = (srv_replay_inexact_t){strdup(limit), strdup(why), 1};
    if (v[rep->ninexact].limit == NULL || v[rep->ninexact].why == NULL) {
        free(v[rep->ninexact].limit);
        free(v[rep->ninexact].why);
        return -1;
    }
    rep->ninexact++;
    return 0;
}

int srv_replay_decision_index(const char *d)
{
    if (d != NULL && strcmp(d, "allow") == 0)
        return 0;
    if (d != NULL && strcmp(d, "deny") == 0)
        return 1;
    return 2;
}

int64_t srv_replay_increase(const srv_replay_report_t *rep)
{
    return (int64_t)rep->would[1] - (int64_t)rep->rec[1];
}

/* ---- the gate ----------------------------------------------------------- */

int srv_replay_gate_parse(const char *s, srv_replay_gate_t *g)
{
    uint64_t whole = 0, frac = 0;
    size_t i = 0, fd = 0;

    *g = (srv_replay_gate_t){0};
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (whole > 100000000000ULL)
            return -1;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    if (s[i] == '.') {
        for (i++; s[i] >= '0' && s[i] <= '9'; i++, fd++)
            if (fd < 2)
                frac = frac * 10 + (uint64_t)(s[i] - '0');
        if (fd == 0)
            return -1;
        if (fd == 1)
            frac *= 10;
    }
    if (s[i] == '%' && s[i + 1] == '\0') {
        if (whole > 100)
            return -1;
        *g = (srv_replay_gate_t){true, true, whole * 100 + frac};
        return 0;
    }
    if (s[i] != '\0' || fd > 0)
        return -1; /* a count of requests is whole */
    *g = (srv_replay_gate_t){true, false, whole};
    return 0;
}

bool srv_replay_gate_exceeded(const srv_replay_gate_t *g, int64_t increase,
                              uint64_t requests)
{
    if (!g->set || increase <= 0)
        return false;
    if (!g->percent)
        return (uint64_t)increase > g->n;
    /* increase / requests > n / 10000, without division */
    return requests == 0 || (uint64_t)increase * 10000 > g->n * requests;
}

/* ---- output ------------------------------------------------------------- */

/* Hundredths of a percent of a over b, rounded down. */
static int64_t pct100(int64_t a, uint64_t b)
{
    return b == 0 ? 0 : a * 10000 / (int64_t)b;
}

static json_t *row_json(const srv_replay_row_t *r, bool limit)
{
    json_t *o = json_object(), *top;
    const char *names[TOP_N];
    uint64_t counts[TOP_N];
    size_t k;

    json_object_set_new(o, "name", json_string(r->name));
    if (limit)
        json_object_set_new(o, "mode", json_string(r->shadow ? "shadow" : "enforce"));
    json_object_set_new(o, "requests", json_integer((json_int_t)r->requests));
    if (!limit)
        json_object_set_new(o, "recorded_allow", json_integer((json_int_t)r->rec_allow));
    json_object_set_new(o, "recorded_deny", json_integer((json_int_t)r->rec_deny));
    json_object_set_new(o, "would_allow", json_integer((json_int_t)r->would_allow));
    json_object_set_new(o, "would_deny", json_integer((json_int_t)r->would_deny));
    json_object_set_new(o, "diff", json_integer(srv_replay_row_diff(r)));
    if (!limit)
        return o;
    top = json_array();
    k = srv_replay_row_top(r, TOP_N, names, counts);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(top, json_pack("{s:s,s:I}", "client", names[i], "would_deny",
                                             (json_int_t)counts[i]));
    json_object_set_new(o, "top_denied", top);
    return o;
}

static json_t *counts_json(const uint64_t c[3])
{
    return json_pack("{s:I,s:I,s:I}", "allow", (json_int_t)c[0], "deny", (json_int_t)c[1],
                     "error", (json_int_t)c[2]);
}

static void print_json(const srv_replay_report_t *rep, FILE *f)
{
    json_t *o = json_object(), *a;
    int64_t inc = srv_replay_increase(rep);
    char *s;

    json_object_set_new(o, "lines", json_integer((json_int_t)rep->lines));
    json_object_set_new(o, "skipped", json_integer((json_int_t)rep->skipped));
    json_object_set_new(o, "requests", json_integer((json_int_t)rep->requests));
    json_object_set_new(o, "carried", json_integer((json_int_t)rep->carried));
    json_object_set_new(o, "recorded", counts_json(rep->rec));
    json_object_set_new(o, "replayed", counts_json(rep->would));
    json_object_set_new(o, "changed", json_integer((json_int_t)rep->changed));
    json_object_set_new(o, "allow_to_deny", json_integer((json_int_t)rep->allow_to_deny));
    json_object_set_new(o, "deny_to_allow", json_integer((json_int_t)rep->deny_to_allow));
    json_object_set_new(o, "deny_increase", json_integer(inc));
    json_object_set_new(o, "deny_increase_pct",
                        json_real((double)pct100(inc, rep->lines) / 100.0));
    json_object_set_new(
        o, "gate",
        rep->gate.set ? json_pack("{s:I,s:b,s:b}", "max", (json_int_t)rep->gate.n,
                                  "percent", rep->gate.percent, "exceeded",
                                  srv_replay_gate_exceeded(&rep->gate, inc, rep->lines))
                      : json_null());
    a = json_array();
    for (size_t i = 0; i < rep->nlimits; i++)
        json_array_append_new(a, row_json(&rep->limits[i], true));
    json_object_set_new(o, "limits", a);
    a = json_array();
    for (size_t i = 0; i < rep->nroutes; i++)
        json_array_append_new(a, row_json(&rep->routes[i], false));
    json_object_set_new(o, "routes", a);
    a = json_array();
    for (size_t i = 0; i < rep->ninexact; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "limit", rep->inexact[i].limit,
                                           "why", rep->inexact[i].why, "lines",
                                           (json_int_t)rep->inexact[i].lines));
    json_object_set_new(o, "not_exact", a);
    a = json_array();
    for (size_t i = 0; i < rep->nmismatch; i++) {
        const srv_replay_mismatch_t *m = &rep->mismatch[i];

        json_array_append_new(a, json_pack("{s:s,s:s?,s:s,s:s,s:s?}", "where", m->where,
                                           "request_id", m->request_id, "recorded",
                                           m->recorded, "replayed", m->replayed, "reason",
                                           m->reason));
    }
    json_object_set_new(o, "mismatches", a);
    s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (s != NULL)
        fprintf(f, "%s\n", s);
    free(s);
    json_decref(o);
}

static void print_top(const srv_replay_row_t *r, FILE *f)
{
    const char *names[TOP_N];
    uint64_t counts[TOP_N];
    size_t k = srv_replay_row_top(r, TOP_N, names, counts);

    if (k == 0)
        return;
    fprintf(f, "    top would-be-denied:");
    for (size_t i = 0; i < k; i++)
        fprintf(f, "%s %s (%" PRIu64 ")", i ? "," : "", names[i], counts[i]);
    fputc('\n', f);
}

static void print_text(const srv_replay_report_t *rep, FILE *f)
{
    int64_t inc = srv_replay_increase(rep), p = pct100(inc, rep->lines);

    fprintf(f,
            "requests: %" PRIu64 " (%" PRIu64 " decided again, %" PRIu64
            " carried as recorded; %" PRIu64 " lines skipped)\n",
            rep->lines, rep->requests, rep->carried, rep->skipped);
    fprintf(f, "            recorded  replayed\n");
    fprintf(f, "  allow   %10" PRIu64 "%10" PRIu64 "\n", rep->rec[0], rep->would[0]);
    fprintf(f, "  deny    %10" PRIu64 "%10" PRIu64 "\n", rep->rec[1], rep->would[1]);
    fprintf(f, "  error   %10" PRIu64 "%10" PRIu64 "\n", rep->rec[2], rep->would[2]);
    fprintf(f, "changed: %" PRIu64 " (allow->deny %" PRIu64 ", deny->allow %" PRIu64 ")\n",
            rep->changed, rep->allow_to_deny, rep->deny_to_allow);
    fprintf(f, "\n%-24s %-7s %9s %9s %11s %10s %7s\n", "limit", "mode", "requests",
            "rec_deny", "would_allow", "would_deny", "diff");
    for (size_t i = 0; i < rep->nlimits; i++) {
        const srv_replay_row_t *r = &rep->limits[i];

        fprintf(f,
                "%-24s %-7s %9" PRIu64 " %9" PRIu64 " %11" PRIu64 " %10" PRIu64
                " %+7" PRId64 "\n",
                r->name, r->shadow ? "shadow" : "enforce", r->requests, r->rec_deny,
                r->would_allow, r->would_deny, srv_replay_row_diff(r));
        print_top(r, f);
    }
    fprintf(f, "\n%-24s %9s %9s %8s %11s %10s %7s\n", "route", "requests", "rec_allow",
            "rec_deny", "would_allow", "would_deny", "diff");
    for (size_t i = 0; i < rep->nroutes; i++) {
        const srv_replay_row_t *r = &rep->routes[i];

        fprintf(f,
                "%-24s %9" PRIu64 " %9" PRIu64 " %8" PRIu64 " %11" PRIu64 " %10" PRIu64
                " %+7" PRId64 "\n",
                r->name, r->requests, r->rec_allow, r->rec_deny, r->would_allow,
                r->would_deny, srv_replay_row_diff(r));
    }
    if (rep->ninexact > 0)
        fprintf(f, "\nnot replayed exactly:\n");
    for (size_t i = 0; i < rep->ninexact; i++)
        fprintf(f, "  %s: %s (%" PRIu64 " lines)\n", rep->inexact[i].limit,
                rep->inexact[i].why, rep->inexact[i].lines);
    fprintf(f,
            "\ndeny increase: %+" PRId64 " (%s%" PRId64 ".%02" PRId64 "%% of %" PRIu64
            " requests)",
            inc, p < 0 ? "-" : "+", (p < 0 ? -p : p) / 100, (p < 0 ? -p : p) % 100,
            rep->lines);
    if (rep->gate.set)
        fprintf(f, "; --max-deny-increase %" PRIu64 "%s: %s",
                rep->gate.percent ? rep->gate.n / 100 : rep->gate.n,
                rep->gate.percent ? "%" : "",
                srv_replay_gate_exceeded(&rep->gate, inc, rep->lines) ? "EXCEEDED" : "ok");
    fputc('\n', f);
}

void srv_replay_print(const srv_replay_report_t *rep, bool json, FILE *f)
{
    if (json)
        print_json(rep, f);
    else
        print_text(rep, f);
}

void srv_replay_report_clear(srv_replay_report_t *rep)
{
    for (size_t i = 0; i < rep->nlimits; i++)
        srv_replay_row_clear(&rep->limits[i]);
    for (size_t i = 0; i < rep->nroutes; i++)
        srv_replay_row_clear(&rep->routes[i]);
    free(rep->limits);
    free(rep->routes);
    for (size_t i = 0; i < rep->ninexact; i++) {
        free(rep->inexact[i].limit);
        free(rep->inexact[i].why);
    }
    free(rep->inexact);
    for (size_t i = 0; i < rep->nmismatch; i++) {
        free(rep->mismatch[i].where);
        free(rep->mismatch[i].request_id);
        free(rep->mismatch[i].reason);
    }
    memset(rep, 0, sizeof(*rep));
}
