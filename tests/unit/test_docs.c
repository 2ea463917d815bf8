/* test_docs.c — the user docs stay in step with the code: every config key
 * the parser accepts (cfg_keys) has its row in docs/configuration.md and
 * every row names a key the parser accepts; every top-level key and every
 * metric /metrics exports (metrics_render) is in docs/reference.md; the
 * metrics are in the operator guide's table and back; every audit reason
 * the code sets is in reference.md's reason table and back; every admin
 * endpoint (server/admin.c's route table) is in reference.md §4's table with
 * its scope, and every row of it is served. */
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <jansson.h>

#include "tollgate/audit.h"
#include "tollgate/auth_jwt.h"
#include "tollgate/cfg.h"
#include "tollgate/metrics.h"
#include "../../server/srv_admin_routes.h"
#include "../../server/srv_process.h"
#include "../../server/srv_trail.h"
#include "unit.h"

#define MAX_NAMES 256
#define NAME_MAX_LEN 128

typedef struct names {
    char v[MAX_NAMES][NAME_MAX_LEN];
    size_t n;
} names_t;

static void add(names_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return;
    if (s->n < MAX_NAMES)
        snprintf(s->v[s->n++], NAME_MAX_LEN, "%s", name);
}

static bool has(const names_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return true;
    return false;
}

/* Every name of `a` missing from `b`, reported; returns how many. */
static size_t missing(const names_t *a, const names_t *b, const char *what)
{
    size_t n = 0;

    for (size_t i = 0; i < a->n; i++)
        if (!has(b, a->v[i])) {
            fprintf(stderr, "\n  docs: %s: %s", what, a->v[i]);
            n++;
        }
    return n;
}

static void collect_key(const char *key, void *arg)
{
    add(arg, key);
}

/* The first `name` between backticks in `s` into out; NULL when none. */
static const char *backticked(const char *s, char *out, size_t len)
{
    const char *a = strchr(s, '`'), *b = a ? strchr(a + 1, '`') : NULL;

    if (b == NULL || (size_t)(b - a - 1) >= len)
        return NULL;
    memcpy(out, a + 1, (size_t)(b - a - 1));
    out[b - a - 1] = '\0';
    return b + 1;
}

/* The prefixes a section's rows are relative to: "Top level" none, "`redis`"
 * "redis.", "`limits`" "limits[].", "Match ..." both lists' "match.", a
 * section naming several keys (rows are dotted then) none.  0 prefixes: not
 * a section of config keys (environment, validation, ...). */
static size_t section_prefixes(const char *title, char pre[2][NAME_MAX_LEN], bool *keys)
{
    char name[NAME_MAX_LEN - 8];
    const char *rest;

    *keys = true;
    if (strncmp(title, "Top level", 9) == 0) {
        pre[0][0] = '\0';
        return 1;
    }
    if (strncmp(title, "Match", 5) == 0) {
        snprintf(pre[0], NAME_MAX_LEN, "limits[].match.");
        snprintf(pre[1], NAME_MAX_LEN, "routes[].match.");
        return 2;
    }
    rest = backticked(title, name, sizeof name);
    if (rest == NULL) {
        *keys = false;
        return 0;
    }
    if (strchr(rest, '`') != NULL) { /* several: the rows are dotted */
        pre[0][0] = '\0';
        return 1;
    }
    if (strcmp(name, "tiers") == 0) { /* tier names are the user's */
        *keys = false;
        return 0;
    }
    snprintf(pre[0], NAME_MAX_LEN, "%s%s.", name,
             strcmp(name, "limits") == 0 || strcmp(name, "routes") == 0 ? "[]" : "");
    return 1;
}

/* Calls fn(full key, its row) for every key row of configuration.md's key
 * sections: the row's first backticked name, with its section's prefix
 * (each prefix, for a section of two) unless it is dotted already. */
typedef void key_row_fn(const char *key, const char *line, void *arg);

static int doc_key_rows(const char *path, key_row_fn *fn, void *arg)
{
    FILE *f = fopen(path, "r");
    char line[4096], name[NAME_MAX_LEN], full[512];
    char pre[2][NAME_MAX_LEN] = {{0}};
    size_t npre = 0;
    bool keys = false;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "## ", 3) == 0 || strncmp(line, "### ", 4) == 0) {
            npre = section_prefixes(strchr(line, ' ') + 1, pre, &keys);
            continue;
        }
        if (!keys || strncmp(line, "| `", 3) != 0 ||
            backticked(line, name, sizeof name) == NULL)
            continue;
        for (size_t i = 0; i < npre; i++) {
            snprintf(full, sizeof full, "%s%s", strchr(name, '.') ? "" : pre[i], name);
            fn(full, line, arg);
        }
    }
    fclose(f);
    return 0;
}

static void add_key(const char *key, const char *line, void *arg)
{
    (void)line;
    add(arg, key);
}

static int doc_keys(const char *path, names_t *out)
{
    return doc_key_rows(path, add_key, out);
}

/* Every backticked first cell of a table row of `path`. */
static int table_names(const char *path, names_t *out)
{
    FILE *f = fopen(path, "r");
    char line[4096], name[NAME_MAX_LEN];

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "| `", 3) == 0 && backticked(line, name, sizeof name) != NULL)
            add(out, name);
    fclose(f);
    return 0;
}

static void top_level(const char *key, void *arg)
{
    if (strchr(key, '.') == NULL && strchr(key, '[') == NULL)
        add(arg, key);
}

static void test_reference_lists_keys(void)
{
    static names_t top, ref;

    top.n = ref.n = 0;
    cfg_keys(top_level, &top);
    CU_ASSERT_FATAL(top.n > 15);
    CU_ASSERT_EQUAL_FATAL(table_names("../../docs/reference.md", &ref), 0);
    CU_ASSERT_EQUAL(missing(&top, &ref, "top-level key not in reference.md"), 0);
}

static void test_config_keys_documented(void)
{
    static names_t code, doc;

    code.n = doc.n = 0;
    cfg_keys(collect_key, &code);
    CU_ASSERT_FATAL(code.n > 50);
    CU_ASSERT_TRUE(has(&code, "redis.nodes"));
    CU_ASSERT_TRUE(has(&code, "limits[].match.path_prefix"));
    CU_ASSERT_EQUAL_FATAL(doc_keys("../../docs/configuration.md", &doc), 0);
    CU_ASSERT_EQUAL(missing(&code, &doc, "accepted but not in configuration.md"), 0);
    CU_ASSERT_EQUAL(missing(&doc, &code, "in configuration.md but not accepted"), 0);
}

/* Cell `n` (0-based) of markdown table row `line` into `out` ("\|" is not
 * a separator); false when the row has fewer cells. */
static bool cell(const char *line, int n, char *out, size_t len)
{
    const char *p = strchr(line, '|');
    size_t o = 0;

    for (int i = 0; p != NULL && i < n; i++) {
        for (p++; *p != '\0' && !(*p == '|' && p[-1] != '\\'); p++)
            ;
        if (*p == '\0')
            p = NULL;
    }
    if (p == NULL)
        return false;
    for (p++; *p != '\0' && !(*p == '|' && p[-1] != '\\') && o + 1 < len; p++)
        out[o++] = *p;
    out[o] = '\0';
    return *p == '|';
}

typedef struct doc_default {
    names_t keys, values; /* parallel */
} doc_default_t;

/* A key row's default (its third cell's first backticked value, outer
 * quotes removed), when it has one. */
static void add_default(const char *key, const char *line, void *arg)
{
    doc_default_t *out = arg;
    char def[1024], val[NAME_MAX_LEN];
    size_t n;

    if (!cell(line, 2, def, sizeof def) || backticked(def, val, sizeof val) == NULL ||
        out->keys.n >= MAX_NAMES)
        return;
    n = strlen(val);
    if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
        memmove(val, val + 1, n - 2);
        val[n - 2] = '\0';
    }
    snprintf(out->keys.v[out->keys.n++], NAME_MAX_LEN, "%.120s", key);
    snprintf(out->values.v[out->values.n++], NAME_MAX_LEN, "%s", val);
}

/* Each key row's default in configuration.md's key sections. */
static int doc_defaults(const char *path, doc_default_t *out)
{
    return doc_key_rows(path, add_default, out);
}

typedef struct default_check {
    const doc_default_t *doc;
    unsigned checked, wrong;
} default_check_t;

static void check_default(const char *key, const char *dumped, const char *def, void *arg)
{
    default_check_t *d = arg;

    (void)dumped;
    if (def == NULL)
        return;
    for (size_t i = 0; i < d->doc->keys.n; i++)
        if (strcmp(d->doc->keys.v[i], key) == 0) {
            d->checked++;
            if (strcmp(d->doc->values.v[i], def) != 0) {
                fprintf(stderr, "\n  docs: %s: configuration.md says `%s`, the schema `%s`",
                        key, d->doc->values.v[i], def);
                d->wrong++;
            }
        }
}

/* Each default the schema's table has is the one configuration.md states
 * (the table is their one source in the code). */
static void test_config_defaults_documented(void)
{
    static doc_default_t doc;
    default_check_t d = {&doc, 0, 0};

    doc.keys.n = doc.values.n = 0;
    CU_ASSERT_EQUAL_FATAL(doc_defaults("../../docs/configuration.md", &doc), 0);
    cfg_keys_info(check_default, &d);
    CU_ASSERT(d.checked > 40);
    CU_ASSERT_EQUAL(d.wrong, 0);
}

static void test_metrics_documented(void)
{
    static names_t code, doc;
    struct evbuffer *b = evbuffer_new();
    char *text, *line, *save = NULL, name[NAME_MAX_LEN];
    FILE *f;
    char buf[4096];

    code.n = doc.n = 0;
    CU_ASSERT_FATAL(b != NULL);
    metrics_render(b);
    srv_jwks_metrics(b);                    /* the rest of /metrics (server/health.c) */
    metrics_render_build_info(b, "0", "0"); /* and server/admin.c's */
    metrics_render_process(b);
    srv_trail_metrics(NULL, b); /* the admin trail's (server/trail.c) */
    evbuffer_add(b, "", 1);
    text = (char *)evbuffer_pullup(b, -1);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "# TYPE ", 7) == 0 && sscanf(line + 7, "%127s", name) == 1)
            add(&code, name);
    evbuffer_free(b);
    CU_ASSERT_FATAL(code.n >= 9);
    f = fopen("../../docs/operator-guide.md", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (fgets(buf, sizeof buf, f) != NULL)
        if ((strncmp(buf, "| `tollgate_", 12) == 0 ||
             strncmp(buf, "| `process_", 11) == 0) &&
            backticked(buf, name, sizeof name))
            add(&doc, name);
    fclose(f);
    CU_ASSERT_EQUAL(missing(&code, &doc, "exported but not in operator-guide.md"), 0);
    CU_ASSERT_EQUAL(missing(&doc, &code, "in operator-guide.md but not exported"), 0);
    doc.n = 0;
    CU_ASSERT_EQUAL_FATAL(table_names("../../docs/reference.md", &doc), 0);
    CU_ASSERT_EQUAL(missing(&code, &doc, "exported but not in reference.md"), 0);
}

/* The audit reasons the sources set, found by how the code spells a reason:
 * `reason = "x"` (srv_req_t, locals, proxy answers), `refuse(..., "x")`
 * (decide/dec_fwd.c), `bad = "x"` (request headers), and
 * `return "x"` in auth/ticket.c (a ticket's reasons); the JWT reasons come
 * from auth_jwt_status_str.  A new way of setting a reason needs its
 * pattern here, or the reason goes unchecked. */
static void source_reasons(const char *dir, names_t *out)
{
    static const char *const pats[] = {
        "reason = \"([a-z_]+)\"",
        "refuse\\([^;]*\"([a-z_]+)\"\\)",
        "bad = \"([a-z_]+)\"",
    };
    regex_t re[4];
    regmatch_t m[2];
    char path[512], line[4096], name[NAME_MAX_LEN];
    struct dirent *e;
    DIR *d = opendir(dir);
    size_t npat = sizeof pats / sizeof pats[0];

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (size_t i = 0; i < npat; i++)
        CU_ASSERT_EQUAL_FATAL(regcomp(&re[i], pats[i], REG_EXTENDED), 0);
    CU_ASSERT_EQUAL_FATAL(regcomp(&re[npat], "return \"([a-z_]+)\";", REG_EXTENDED), 0);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        bool ticket = strcmp(e->d_name, "ticket.c") == 0;
        FILE *f;

        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        f = fopen(path, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        while (fgets(line, sizeof line, f) != NULL)
            for (size_t i = 0; i < npat + (ticket ? 1 : 0); i++)
                if (regexec(&re[i], line, 2, m, 0) == 0 &&
                    (size_t)(m[1].rm_eo - m[1].rm_so) < sizeof name) {
                    memcpy(name, line + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
                    name[m[1].rm_eo - m[1].rm_so] = '\0';
                    add(out, name);
                }
        fclose(f);
    }
    closedir(d);
    for (size_t i = 0; i <= npat; i++)
        regfree(&re[i]);
}

/* Every backticked name in the rows of reference.md's reason table (the
 * table whose header starts "| `reason` | decision |"). */
static int doc_reasons(const char *path, names_t *out)
{
    FILE *f = fopen(path, "r");
    char line[4096], name[NAME_MAX_LEN];
    bool in = false;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "| `reason` | decision |", 23) == 0) {
            in = true;
            continue;
        }
        if (!in || strncmp(line, "|---", 4) == 0)
            continue;
        if (line[0] != '|')
            break;
        /* the first cell only: the others are decisions and statuses */
        char *end = strchr(line + 1, '|');
        const char *p = line;

        if (end != NULL)
            *end = '\0';
        while ((p = backticked(p, name, sizeof name)) != NULL)
            add(out, name);
    }
    fclose(f);
    return 0;
}

/* The first backticked name of every row of reference.md's audit field
 * table (the one whose header is "| field | type | value |"), in order. */
static int doc_audit_fields(const char *path, names_t *out)
{
    FILE *f = fopen(path, "r");
    char line[4096], name[NAME_MAX_LEN];
    bool in = false;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "| field | type | value |", 24) == 0) {
            in = true;
            continue;
        }
        if (!in || strncmp(line, "|---", 4) == 0)
            continue;
        if (line[0] != '|')
            break;
        if (backticked(line, name, sizeof name) != NULL)
            add(out, name);
    }
    fclose(f);
    return 0;
}

/* Every field of a request audit line (audit_format) is in reference.md
 * §7's table, in the order the line has them, and the table has no other. */
static void test_audit_fields_documented(void)
{
    audit_rec_t r = {.ts_ms = 1, .status = 200, .duration_ms = 1, .upstream_status = -1};
    char line[4096];
    names_t code = {.n = 0}, doc = {.n = 0};
    const char *key;
    json_t *j, *v;
    int n = audit_format(&r, line, sizeof line);

    CU_ASSERT_FATAL(n > 0);
    j = json_loads(line, JSON_PRESERVE_ORDER, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_object_foreach(j, key, v) add(&code, key);
    json_decref(j);
    CU_ASSERT_EQUAL_FATAL(doc_audit_fields("../../docs/reference.md", &doc), 0);
    CU_ASSERT_EQUAL(missing(&code, &doc, "audit field written but not in reference.md §7"),
                    0);
    CU_ASSERT_EQUAL(missing(&doc, &code, "audit field in reference.md §7 but not written"),
                    0);
    CU_ASSERT_EQUAL(code.n, doc.n);
    for (size_t i = 0; i < code.n && i < doc.n; i++)
        CU_ASSERT_STRING_EQUAL(code.v[i], doc.v[i]); /* in the line's order */
}

/* A row of reference.md §4's endpoint table: "| `GET` | `/admin/v1/x/{id}?q=..` |
 * read | ..." -> method, path ("{..}" as "x", no query), write. */
static bool admin_row(const char *line, char *method, size_t mlen, char *path, size_t plen,
                      bool *write)
{
    const char *m = line + 3, *p, *e;
    size_t n = 0;

    if (strncmp(line, "| `", 3) != 0 || (e = strchr(m, '`')) == NULL ||
        (size_t)(e - m) >= mlen || strncmp(e, "` | `/admin/", 12) != 0)
        return false;
    snprintf(method, mlen, "%.*s", (int)(e - m), m);
    for (p = e + 5; *p != '\0' && *p != '`' && *p != '?' && n + 2 < plen; p++) {
        if (*p == '{') {
            path[n++] = 'x';
            while (*p != '\0' && *p != '}')
                p++;
            if (*p == '\0')
                return false;
        } else {
            path[n++] = *p;
        }
    }
    path[n] = '\0';
    while (*p != '\0' && *p != '`') /* the query may hold "\|" */
        p++;
    if (strncmp(p, "` | write |", 11) == 0)
        *write = true;
    else if (strncmp(p, "` | read |", 10) == 0)
        *write = false;
    else
        return false;
    return true;
}

static void test_admin_endpoints_documented(void)
{
    bool seen[64] = {false}, write, doc_write;
    const char *method, *path;
    char buf[8192], m[16], p[256];
    size_t nroutes = 0, rows = 0;
    FILE *f = fopen("../../docs/reference.md", "r");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (fgets(buf, sizeof buf, f) != NULL) {
        long i;

        if (!admin_row(buf, m, sizeof m, p, sizeof p, &doc_write))
            continue;
        rows++;
        i = srv_admin_route_find(m, p);
        if (i < 0 || i >= 64) {
            fprintf(stderr, "\n  reference.md lists %s %s, which is not served", m, p);
            CU_FAIL("an endpoint in reference.md is not served");
            continue;
        }
        seen[i] = true;
        CU_ASSERT_FATAL(srv_admin_route_at((size_t)i, &method, &path, &write));
        if (write != doc_write) {
            fprintf(stderr, "\n  reference.md says %s %s needs a %s token", m, p,
                    doc_write ? "write" : "read");
            CU_FAIL("an endpoint's scope differs from reference.md");
        }
    }
    fclose(f);
    CU_ASSERT(rows >= 10);
    while (srv_admin_route_at(nroutes, &method, &path, &write)) {
        if (nroutes < 64 && !seen[nroutes]) {
            fprintf(stderr, "\n  %s %s is served but not in reference.md §4", method, path);
            CU_FAIL("an admin endpoint is not in reference.md");
        }
        nroutes++;
    }
    CU_ASSERT(nroutes < 64);
}

static void test_audit_reasons_documented(void)
{
    static names_t code, doc;

    code.n = doc.n = 0;
    source_reasons("../../server", &code);
    source_reasons("../../decide", &code);
    source_reasons("../../auth", &code);
    for (int s = AUTH_JWT_MALFORMED; s <= AUTH_JWT_NO_KEYS; s++)
        add(&code, auth_jwt_status_str((auth_jwt_status_t)s));
    add(&code, "ok");    /* pipeline.c: the default of an answer below 400 */
    add(&code, "error"); /* ... and of one from 400 with no reason set */
    CU_ASSERT_FATAL(code.n > 40);
    CU_ASSERT_TRUE(has(&code, "duplicate_header"));
    CU_ASSERT_TRUE(has(&code, "ticket_key_removed"));
    CU_ASSERT_EQUAL_FATAL(doc_reasons("../../docs/reference.md", &doc), 0);
    CU_ASSERT_EQUAL(
        missing(&code, &doc, "audit reason set in the code but not in reference.md"), 0);
    CU_ASSERT_EQUAL(
        missing(&doc, &code, "audit reason in reference.md but not in the code"), 0);
}

/* The repository stands on its own: no file cites the planning documents
 * that live outside it (DESIGN.md, STYLE.md), which a reader of the
 * repository does not have.  Flat directories and a few top-level files. */
static void test_no_outside_references(void)
{
    static const char *const dirs[] = {
        "../../server",
        "../../auth",
        "../../http",
        "../../redis",
        "../../limiter",
        "../../cfg",
        "../../util",
        "../../lua",
        "../../include/tollgate",
        "../../tests/unit",
        "../../tests/integration",
        "../../tests/fuzz",
        "../../scripts",
        "../../docs",
    };
    static const char *const files[] = {"../../README.md", "../../Makefile",
                                        "../../CHANGELOG.md", "../../Dockerfile"};
    static const char *const bad[] = {"DESIGN \xc2\xa7", "DESIGN.md", "STYLE.md"};
    char path[512], line[8192];
    size_t found = 0, read = 0;

    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0] + sizeof files / sizeof files[0];
         d++) {
        bool is_dir = d < sizeof dirs / sizeof dirs[0];
        DIR *dir = is_dir ? opendir(dirs[d]) : NULL;
        struct dirent *e = NULL;

        CU_ASSERT_FATAL(!is_dir || dir != NULL);
        do {
            FILE *f;

            if (is_dir) {
                if ((e = readdir(dir)) == NULL)
                    break;
                if (e->d_name[0] == '.' || strcmp(e->d_name, "test_docs.c") == 0)
                    continue;
                snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            } else {
                snprintf(path, sizeof path, "%s", files[d - sizeof dirs / sizeof dirs[0]]);
            }
            f = fopen(path, "r");
            if (f == NULL)
                continue; /* a subdirectory */
            read++;
            while (fgets(line, sizeof line, f) != NULL)
                for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
                    if (strstr(line, bad[b]) != NULL) {
                        fprintf(stderr, "\n  docs: %s cites %s: %s", path, bad[b], line);
                        found++;
                    }
            fclose(f);
        } while (is_dir);
        if (dir != NULL)
            closedir(dir);
    }
    CU_ASSERT(read > 100);
    CU_ASSERT_EQUAL(found, 0);
}

int test_docs_add(void)
{
    static const unit_test_t tests[] = {
        {"every config key in configuration.md, and back", test_config_keys_documented},
        {"every default in configuration.md is the schema's",
         test_config_defaults_documented},
        {"every top-level key in the reference", test_reference_lists_keys},
        {"every metric in the operator guide (and back) and the reference",
         test_metrics_documented},
        {"every audit reason in the reference, and back", test_audit_reasons_documented},
        {"every audit field in the reference, in order, and back",
         test_audit_fields_documented},
        {"every admin endpoint in the reference with its scope, and back",
         test_admin_endpoints_documented},
        {"no file cites documents outside the repository", test_no_outside_references},
        {NULL, NULL},
    };

    return unit_add_suite("docs", tests);
}
