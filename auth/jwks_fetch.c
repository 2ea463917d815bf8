/* jwks_fetch.c — remote JWK sets; see include/tollgate/auth_jwks_fetch.h.
 *
 * One mutex (g_mu) guards the registry and every source's mutable state; it
 * is taken by the fetch thread, by config builds and by workers when a new
 * generation appears — never per request.  The thread holds a reference to
 * the source it fetches, so a reload that drops the provider meanwhile only
 * frees it after the fetch.
 */
#include "tollgate/auth_jwks_fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tollgate/log.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_str.h"

#define DISCOVERY_PATH "/.well-known/openid-configuration"
#define FETCH_MAX_DOC AUTH_JWKS_MAX_DOC

struct auth_jwks_src {
    auth_jwks_src_t *next; /* registry */
    int refs;              /* under g_mu */
    /* what it fetches: immutable */
    char *name, *jwks_uri, *issuer, *ca_file;
    bool discovery;
    unsigned allowed, refresh_s, min_refresh_s, max_stale_s, timeout_s;
    /* state, under g_mu */
    auth_jwks_t *set;
    uint64_t ok_wall_ms;    /* last good fetch; 0 = never */
    uint64_t next_ms;       /* monotonic: the next scheduled fetch */
    uint64_t last_start_ms; /* monotonic: the last fetch began; 0 = never */
    bool want;              /* an early fetch was asked for */
    bool running;
    char *found_uri; /* jwks_uri read by discovery */
    uint64_t n_ok, n_fetch_error, n_invalid;
    char last_error[160];
    uint64_t id;
    _Atomic uint64_t gen;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond;
static auth_jwks_src_t *g_sources;
static pthread_t g_thread;
static bool g_started, g_stop;
static void (*g_on_fetched)(void *);
static void *g_on_fetched_arg;
static uint64_t g_next_id = 1;

/* ---- sources ------------------------------------------------------------ */

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_opts(const auth_jwks_src_t *s, const auth_jwks_src_opts_t *o)
{
    return str_eq(s->name, o->name) && str_eq(s->jwks_uri, o->jwks_uri) &&
           str_eq(s->issuer, o->issuer) && str_eq(s->ca_file, o->ca_file) &&
           s->discovery == o->discovery && s->allowed == o->allowed &&
           s->refresh_s == o->refresh_s && s->min_refresh_s == o->min_refresh_s &&
           s->max_stale_s == o->max_stale_s && s->timeout_s == o->timeout_s;
}

static void src_free(auth_jwks_src_t *s)
{
    free(s->name);
    free(s->jwks_uri);
    free(s->issuer);
    free(s->ca_file);
    free(s->found_uri);
    auth_jwks_unref(s->set);
    free(s);
}

static auth_jwks_src_t *src_new(const auth_jwks_src_opts_t *o)
{
    auth_jwks_src_t *s = calloc(1, sizeof(*s));
    bool ok = true;

    if (s == NULL)
        return NULL;
    s->name = util_strdup_opt(o->name != NULL ? o->name : "default", &ok);
    s->jwks_uri = util_strdup_opt(o->jwks_uri, &ok);
    s->issuer = util_strdup_opt(o->issuer, &ok);
    s->ca_file = util_strdup_opt(o->ca_file, &ok);
    if (!ok) {
        src_free(s);
        return NULL;
    }
    s->discovery = o->discovery;
    s->allowed = o->allowed;
    s->refresh_s = o->refresh_s > 0 ? o->refresh_s : 300;
    s->min_refresh_s = o->min_refresh_s > 0 ? o->min_refresh_s : 30;
    s->max_stale_s = o->max_stale_s > 0 ? o->max_stale_s : 86400;
    s->timeout_s = o->timeout_s > 0 ? o->timeout_s : 5;
    s->refs = 1;
    atomic_init(&s->gen, 0);
    return s;
}

auth_jwks_src_t *auth_jwks_src_get(const auth_jwks_src_opts_t *o)
{
    auth_jwks_src_t *s;

    pthread_mutex_lock(&g_mu);
    for (s = g_sources; s != NULL; s = s->next)
        if (same_opts(s, o)) {
            s->refs++;
            break;
        }
    if (s == NULL && (s = src_new(o)) != NULL) {
        s->next = g_sources;
        s->id = g_next_id++;
        g_sources = s;
        if (g_started)
            pthread_cond_signal(&g_cond); /* fetch it now */
    }
    pthread_mutex_unlock(&g_mu);
    return s;
}

/* Drop a reference with g_mu held; unlinks and frees at zero. */
static void src_unref_locked(auth_jwks_src_t *s)
{
    auth_jwks_src_t **pp;

    if (--s->refs > 0)
        return;
    for (pp = &g_sources; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    src_free(s);
}

void auth_jwks_src_unref(auth_jwks_src_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    src_unref_locked(s);
    pthread_mutex_unlock(&g_mu);
}

uint64_t auth_jwks_src_id(const auth_jwks_src_t *s)
{
    return s->id;
}

uint64_t auth_jwks_src_gen(const auth_jwks_src_t *s)
{
    return atomic_load_explicit(&s->gen, memory_order_acquire);
}

static bool stale_locked(const auth_jwks_src_t *s, uint64_t now_wall)
{
    return s->ok_wall_ms == 0 || now_wall - s->ok_wall_ms > (uint64_t)s->max_stale_s * 1000;
}

auth_jwks_t *auth_jwks_src_current(auth_jwks_src_t *s, uint64_t *gen)
{
    auth_jwks_t *set = NULL;

    pthread_mutex_lock(&g_mu);
    if (gen != NULL)
        *gen = atomic_load(&s->gen);
    if (!stale_locked(s, util_wall_ms()))
        set = auth_jwks_ref(s->set);
    pthread_mutex_unlock(&g_mu);
    return set;
}

/* May a fetch start now (g_mu held)?  Never faster than min_refresh. */
static bool may_start_locked(const auth_jwks_src_t *s, uint64_t now)
{
    return s->last_start_ms == 0 ||
           now - s->last_start_ms >= (uint64_t)s->min_refresh_s * 1000;
}

/* A fetch ended after the caller's set was taken (g_mu held): its result
 * is newer than what the caller decided with, so the caller looks again. */
static bool newer_locked(const auth_jwks_src_t *s, uint64_t seen_gen)
{
    return atomic_load_explicit(&s->gen, memory_order_relaxed) != seen_gen;
}

bool auth_jwks_src_refetch(auth_jwks_src_t *s, uint64_t seen_gen)
{
    bool wait;

    pthread_mutex_lock(&g_mu);
    wait = g_started &&
           (s->running || newer_locked(s, seen_gen) || may_start_locked(s, util_mono_ms()));
    /* Too soon: still fetch once the interval allows, for the next token. */
    s->want = true;
    if (g_started)
        pthread_cond_signal(&g_cond);
    pthread_mutex_unlock(&g_mu);
    return wait;
}

bool auth_jwks_src_busy(auth_jwks_src_t *s, uint64_t seen_gen)
{
    bool busy;

    pthread_mutex_lock(&g_mu);
    busy = g_started &&
           (s->running || newer_locked(s, seen_gen) ||
            (s->want && may_start_locked(s, util_mono_ms())) || s->last_start_ms == 0);
    pthread_mutex_unlock(&g_mu);
    return busy;
}

bool auth_jwks_settled(void)
{
    bool all = true;

    pthread_mutex_lock(&g_mu);
    for (const auth_jwks_src_t *s = g_sources; s != NULL && all; s = s->next)
        all = s->n_ok + s->n_fetch_error + s->n_invalid > 0;
    pthread_mutex_unlock(&g_mu);
    return all;
}

void auth_jwks_foreach(void (*fn)(const auth_jwks_stats_t *st, void *arg), void *arg)
{
    uint64_t now = util_wall_ms();

    pthread_mutex_lock(&g_mu);
    for (const auth_jwks_src_t *s = g_sources; s != NULL; s = s->next) {
        auth_jwks_stats_t st = {
            .name = s->name,
            .keys = auth_jwks_count(s->set),
            .loaded = s->ok_wall_ms != 0,
            .stale = s->ok_wall_ms != 0 && stale_locked(s, now),
            .age_s = s->ok_wall_ms != 0 ? (int64_t)(now - s->ok_wall_ms) / 1000 : -1,
            .ok = s->n_ok,
            .fetch_error = s->n_fetch_error,
            .invalid = s->n_invalid,
        };

        snprintf(st.last_error, sizeof st.last_error, "%s", s->last_error);
        fn(&st, arg);
    }
    pthread_mutex_unlock(&g_mu);
}

/* ---- one HTTPS GET -------------------------------------------------------- */

typedef struct body {
    char *p;
    size_t n;
    bool too_big;
    long max_age; /* Cache-Control max-age, -1 when absent */
} body_t;

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    body_t *b = arg;
    size_t n = size * nmemb;
    char *grown;

    if (b->n + n > FETCH_MAX_DOC) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    grown = realloc(b->p, b->n + n + 1);
    if (grown == NULL)
        return 0;
    b->p = grown;
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* Cache-Control: ..., max-age=N, ... (RFC 9111 §5.2.2.1). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    body_t *b = arg;
    size_t n = size * nmemb;
    char line[512], *p;

    if (n < 14 || n >= sizeof line || strncasecmp(data, "cache-control:", 14) != 0)
        return n;
    memcpy(line, data, n);
    line[n] = '\0';
    for (p = line + 14; (p = strcasestr(p, "max-age")) != NULL; p += 7) {
        char *q = p + 7, *end;
        long v;

        while (*q == ' ')
            q++;
        if (*q != '=')
            continue;
        q++;
        if (*q == '"')
            q++;
        errno = 0;
        v = strtol(q, &end, 10);
        if (end != q && errno == 0 && v >= 0)
            b->max_age = v;
        break;
    }
    return n;
}

/* GET `url` into *b.  0 on a 200 answer, else -1 with why set. */
static int https_get(const auth_jwks_src_t *s, const char *url, body_t *b, char *why,
                     size_t whylen)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    long code = 0;
    CURLcode rc;

    memset(b, 0, sizeof(*b));
    b->max_age = -1;
    if (h == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FETCH_MAX_DOC);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tollgate");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, b);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(why, whylen, "answer over %d bytes", FETCH_MAX_DOC);
    else if (rc != CURLE_OK)
        snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (code != 200)
        snprintf(why, whylen, "HTTP status %ld", code);
    else
        return 0;
    free(b->p);
    b->p = NULL;
    return -1;
}

/* ---- one fetch ------------------------------------------------------------ */

typedef enum { FETCH_OK, FETCH_ERROR, FETCH_INVALID } fetch_result_t;

/* The discovery document's jwks_uri (OpenID Connect Discovery 1.0 §4: its
 * `issuer` must be ours exactly). */
static fetch_result_t discover(const auth_jwks_src_t *s, char **uri, char *why,
                               size_t whylen)
{
    char url[2048];
    body_t b;
    json_t *doc, *iss, *ju;
    size_t ilen = strlen(s->issuer);
    fetch_result_t r = FETCH_INVALID;

    /* "<issuer>/.well-known/...", the issuer's trailing '/' not doubled */
    snprintf(url, sizeof url, "%.*s%s",
             (int)(ilen > 0 && s->issuer[ilen - 1] == '/' ? ilen - 1 : ilen), s->issuer,
             DISCOVERY_PATH);
    if (https_get(s, url, &b, why, whylen) != 0)
        return FETCH_ERROR;
    doc = json_loadb(b.p, b.n, JSON_REJECT_DUPLICATES, NULL);
    iss = json_object_get(doc, "issuer");
    ju = json_object_get(doc, "jwks_uri");
    if (!json_is_object(doc))
        snprintf(why, whylen, "discovery: not a JSON object");
    else if (!json_is_string(iss) || strcmp(json_string_value(iss), s->issuer) != 0)
        snprintf(why, whylen, "discovery: its issuer is not %.80s", s->issuer);
    else if (!json_is_string(ju) || strncmp(json_string_value(ju), "https://", 8) != 0)
        snprintf(why, whylen, "discovery: no https jwks_uri");
    else if ((*uri = strdup(json_string_value(ju))) != NULL)
        r = FETCH_OK;
    json_decref(doc);
    free(b.p);
    return r;
}

typedef struct fetched {
    fetch_result_t result;
    auth_jwks_t *set;
    char *found_uri; /* discovery's answer, to keep */
    long max_age;
    char why[160];
} fetched_t;

/* Runs without g_mu: only the immutable fields of `s` and a copy of its
 * discovered URI are read. */
static void fetch_one(const auth_jwks_src_t *s, const char *known_uri, fetched_t *f)
{
    char note[200], perr[200];
    unsigned skipped = 0;
    const char *uri = s->jwks_uri != NULL ? s->jwks_uri : known_uri;
    body_t b;

    memset(f, 0, sizeof(*f));
    f->max_age = -1;
    if (uri == NULL) {
        f->result = discover(s, &f->found_uri, f->why, sizeof f->why);
        if (f->result != FETCH_OK)
            return;
        uri = f->found_uri;
    }
    if (https_get(s, uri, &b, f->why, sizeof f->why) != 0) {
        f->result = FETCH_ERROR;
        return;
    }
    f->max_age = b.max_age;
    f->set = auth_jwks_parse(b.p, b.n, s->allowed, &skipped, note, sizeof note, perr,
                             sizeof perr);
    free(b.p);
    if (f->set == NULL) {
        f->result = FETCH_INVALID;
        snprintf(f->why, sizeof f->why, "%.150s", perr);
        return;
    }
    f->result = FETCH_OK;
    if (skipped > 0)
        log_warn("jwks %s: %u key(s) not used; first: %s", s->name, skipped, note);
}

/* Record a fetch's outcome in `s` (g_mu held) and schedule the next. */
static void apply(auth_jwks_src_t *s, fetched_t *f, uint64_t now)
{
    uint64_t wait_s = s->min_refresh_s;

    if (f->found_uri != NULL) {
        free(s->found_uri);
        s->found_uri = f->found_uri;
        f->found_uri = NULL;
    }
    if (f->result == FETCH_OK) {
        if (s->ok_wall_ms == 0 || auth_jwks_count(s->set) != auth_jwks_count(f->set))
            log_info("jwks %s: %zu key(s) loaded", s->name, auth_jwks_count(f->set));
        auth_jwks_unref(s->set);
        s->set = f->set;
        s->ok_wall_ms = util_wall_ms();
        s->n_ok++;
        s->last_error[0] = '\0';
        wait_s = f->max_age >= 0 ? (uint64_t)f->max_age : s->refresh_s;
        if (wait_s > s->refresh_s)
            wait_s = s->refresh_s;
        if (wait_s < s->min_refresh_s)
            wait_s = s->min_refresh_s;
    } else {
        if (f->result == FETCH_INVALID)
            s->n_invalid++;
        else
            s->n_fetch_error++;
        /* a discovered URI that fails is looked up again next time */
        free(s->found_uri);
        s->found_uri = NULL;
        snprintf(s->last_error, sizeof s->last_error, "%s", f->why);
        log_warn("jwks %s: refresh failed (%s); %s", s->name, f->why,
                 s->ok_wall_ms != 0 ? "keeping the last good set" : "no keys yet");
    }
    s->next_ms = now + wait_s * 1000;
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
}

/* ---- the thread ----------------------------------------------------------- */

/* When `s` wants fetching (monotonic ms). */
static uint64_t due_ms(const auth_jwks_src_t *s)
{
    uint64_t early = s->last_start_ms + (uint64_t)s->min_refresh_s * 1000;

    if (s->last_start_ms == 0)
        return 0;
    if (s->want && early < s->next_ms)
        return early;
    return s->next_ms;
}

static void wait_until(uint64_t due, uint64_t now)
{
    struct timespec ts;
    uint64_t ms = due > now ? due - now : 0;

    if (ms > 1000)
        ms = 1000;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g_cond, &g_mu, &ts);
}

static void *fetch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_mu);
    while (!g_stop) {
        uint64_t now = util_mono_ms(), best = UINT64_MAX;
        auth_jwks_src_t *pick = NULL;
        char *known;
        fetched_t f;

        for (auth_jwks_src_t *s = g_sources; s != NULL; s = s->next)
            if (!s->running && due_ms(s) < best) {
                best = due_ms(s);
                pick = s;
            }
        if (pick == NULL || best > now) {
            wait_until(best, now);
            continue;
        }
        pick->running = true;
        pick->want = false;
        pick->last_start_ms = now > 0 ? now : 1;
        pick->refs++;
        known = pick->found_uri != NULL ? strdup(pick->found_uri) : NULL;
        pthread_mutex_unlock(&g_mu);
        fetch_one(pick, known, &f);
        free(known);
        pthread_mutex_lock(&g_mu);
        apply(pick, &f, util_mono_ms());
        pick->running = false;
        src_unref_locked(pick);
        free(f.found_uri);
        if (f.result != FETCH_OK)
            auth_jwks_unref(f.set);
        if (g_on_fetched != NULL) {
            pthread_mutex_unlock(&g_mu);
            g_on_fetched(g_on_fetched_arg);
            pthread_mutex_lock(&g_mu);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

int auth_jwks_fetch_start(void (*on_fetched)(void *arg), void *arg, char *err,
                          size_t errlen)
{
    pthread_condattr_t ca;
    int rc = 0;

    pthread_mutex_lock(&g_mu);
    if (g_started)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl: global init failed");
        rc = -1;
        goto out;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cond, &ca);
    pthread_condattr_destroy(&ca);
    g_on_fetched = on_fetched;
    g_on_fetched_arg = arg;
    g_stop = false;
    if (pthread_create(&g_thread, NULL, fetch_main, NULL) != 0) {
        snprintf(err, errlen, "jwks fetch thread: %s", strerror(errno));
        pthread_cond_destroy(&g_cond);
        curl_global_cleanup();
        rc = -1;
        goto out;
    }
    g_started = true;
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void auth_jwks_fetch_stop(void)
{
    pthread_mutex_lock(&g_mu);
    if (!g_started) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    g_stop = true;
    pthread_cond_signal(&g_cond);
    pthread_mutex_unlock(&g_mu);
    pthread_join(g_thread, NULL);
    pthread_mutex_lock(&g_mu);
    g_started = false;
    g_on_fetched = NULL;
    pthread_cond_destroy(&g_cond);
    pthread_mutex_unlock(&g_mu);
    curl_global_cleanup();
}
