/* rc.c — the Redis client: options, command timeouts, routing, redirects,
 * NOSCRIPT recovery, cancellation and deferred free; the top of redis/, it
 * fills the events struct through which the layers below report to it.  See
 * include/tollgate/rc.h and redis/rc_internal.h for the ownership rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/dns.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include "rc_internal.h"
#include "tollgate/util_clock.h"
#include "tollgate/util_str.h"
#include "tollgate/log.h"

/* Unlink `cmd` from a wait queue it sits in (not from a flight FIFO). */
static void cmd_unwait(rc_cmd_t *cmd)
{
    if (cmd->where == RC_WHERE_CLIENT_WAIT)
        TAILQ_REMOVE(&cmd->c->waitq, cmd, link);
    else if (cmd->where == RC_WHERE_CONN_WAIT)
        TAILQ_REMOVE(&cmd->conn->waitq, cmd, link);
    cmd->where = RC_WHERE_NONE;
}

static void cmd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    rc_cmd_t *cmd = arg;
    rc_client_t *c = cmd->c;

    (void)fd;
    (void)what;
    rc_enter(c);
    cmd->timer_on = false;
    c->stats.timeouts++;
    rc_cmd_deliver(cmd, NULL, "timeout");
    /* In flight it stays as a placeholder for its late reply, unless the
     * node has gone silent: then the connection is dropped (and cmd freed). */
    if (cmd->where == RC_WHERE_CLIENT_WAIT || cmd->where == RC_WHERE_CONN_WAIT) {
        cmd_unwait(cmd);
        rc_cmd_free(cmd);
    } else if (cmd->where == RC_WHERE_CONN_FLIGHT) {
        rc_conn_check_stall(cmd->conn);
    }
    rc_leave(c);
}

void rc_cancel(rc_pending_t *p)
{
    if (p == NULL)
        return;
    if (p->timer_on) {
        event_del(&p->timer);
        p->timer_on = false;
    }
    p->fn = NULL;
    switch (p->where) {
    case RC_WHERE_CLIENT_WAIT:
    case RC_WHERE_CONN_WAIT:
        cmd_unwait(p);
        rc_cmd_free(p);
        break;
    case RC_WHERE_CONN_FLIGHT: /* freed when its reply arrives */
    case RC_WHERE_NONE:        /* being routed: its holder frees it */
        break;
    }
}

/* ---- routing ----------------------------------------------------------- */

/* Cluster: a command for a slot no node owns yet waits for the map when some
 * node could still answer CLUSTER SLOTS. */
static int route_wait_map(rc_client_t *c, rc_cmd_t *cmd)
{
    rc_conn_t *conn;

    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (rc_conn_usable(conn))
            break;
    if (conn == NULL)
        return -1;
    cmd->where = RC_WHERE_CLIENT_WAIT;
    TAILQ_INSERT_TAIL(&c->waitq, cmd, link);
    rc_cluster_refresh(c, c->slots == NULL);
    return 0;
}

int rc_route(rc_client_t *c, rc_cmd_t *cmd, bool deliver)
{
    rc_conn_t *conn;
    char why[sizeof(c->errstr)];

    if (c->closing) {
        rc_seterr(c, "redis client closed");
        goto out_fail;
    }
    if (cmd->pin != NULL)
        conn = cmd->pin;
    else if (!c->o.cluster)
        conn = TAILQ_FIRST(&c->conns);
    else if (cmd->slot < 0)
        conn = rc_cluster_any(c);
    else
        conn = c->slots != NULL ? c->slots[cmd->slot] : NULL;
    if (conn == NULL && c->o.cluster && route_wait_map(c, cmd) == 0)
        return 0;
    if (conn == NULL) {
        rc_seterr(c, "redis: no node for this command (slot map unknown, nodes down)");
        goto out_fail;
    }
    if (rc_conn_send(conn, cmd) == 0)
        return 0;
    if (strstr(c->errstr, conn->name) == NULL)
        rc_seterr(c, "redis %s is down", conn->name);
out_fail:
    snprintf(why, sizeof(why), "%s", c->errstr);
    if (deliver)
        rc_cmd_deliver(cmd, NULL, why);
    rc_cmd_free(cmd);
    return -1;
}

/* Send `cmd` to `conn` or fail it now. */
static void send_or_fail(rc_conn_t *conn, rc_cmd_t *cmd)
{
    char why[sizeof(conn->name) + 32];

    if (rc_conn_send(conn, cmd) == 0)
        return;
    snprintf(why, sizeof(why), "redis %s is down", conn->name);
    rc_cmd_deliver(cmd, NULL, why);
    rc_cmd_free(cmd);
}

/* MOVED / ASK: true when the command was taken over (resent or failed). */
static bool on_redirect(rc_conn_t *conn, rc_cmd_t *cmd, const redisReply *reply)
{
    rc_client_t *c = conn->c;
    rc_redirect_t rd;
    rc_conn_t *target;

    if (!c->o.cluster || rc_redirect_parse(reply->str, reply->len, &rd) != 0)
        return false;
    if (cmd->redirects >= RC_MAX_REDIRECTS || cmd->pin != NULL)
        return false; /* the caller gets the MOVED/ASK error */
    target = rc_conn_find(c, rd.host, rd.port, true);
    if (target == NULL)
        return false;
    cmd->redirects++;
    target->retired = false;
    if (rd.kind == RC_REDIR_MOVED) {
        c->stats.moved++;
        if (c->slots != NULL) {
            c->slots[rd.slot] = target;
            target->in_map = true;
        }
        rc_cluster_refresh(c, false);
    } else {
        c->stats.ask++;
        cmd->asking = true;
    }
    send_or_fail(target, cmd);
    return true;
}

static bool is_error(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);

    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, prefix, n) == 0;
}

void rc_cmd_on_reply(rc_conn_t *conn, rc_cmd_t *cmd, redisReply *reply)
{
    if (cmd->fn == NULL) { /* cancelled, timed out or a placeholder */
        rc_cmd_free(cmd);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (on_redirect(conn, cmd, reply))
            return;
        if (is_error(reply, "NOSCRIPT") && cmd->script >= 0 && !cmd->noscript_retried &&
            conn->state == RC_CONN_READY) {
            cmd->noscript_retried = true;
            conn->c->stats.noscript++;
            rc_conn_load_script(conn, (size_t)cmd->script);
            send_or_fail(conn, cmd);
            return;
        }
        if (is_error(reply, "CLUSTERDOWN"))
            rc_cluster_refresh(conn->c, false);
    }
    rc_cmd_deliver(cmd, reply, NULL);
    rc_cmd_free(cmd);
}

/* Arm the per-command timer and route; NULL when it cannot be sent now. */
static rc_pending_t *submit(rc_client_t *c, rc_cmd_t *cmd)
{
    int r;

    if (c->cmd_tv != NULL) {
        evtimer_assign(&cmd->timer, c->base, cmd_timeout_cb, cmd);
        event_add(&cmd->timer, c->cmd_tv);
        cmd->timer_on = true;
    }
    c->stats.sent++;
    rc_enter(c);
    r = rc_route(c, cmd, false);
    rc_leave(c);
    return r == 0 ? cmd : NULL;
}

rc_pending_t *rc_command_argv(rc_client_t *c, const char *slot_key, size_t slot_key_len,
                              int argc, const char **argv, const size_t *argvlen,
                              rc_reply_fn fn, void *privdata)
{
    rc_cmd_t *cmd;

    if (c->closing) {
        rc_seterr(c, "redis client closed");
        return NULL;
    }
    if (fn == NULL || argc < 1) {
        rc_seterr(c, "redis: bad command");
        return NULL;
    }
    cmd = rc_cmd_new(c, argc, argv, argvlen, fn, privdata);
    if (cmd == NULL) {
        rc_seterr(c, "redis: out of memory");
        return NULL;
    }
    if (c->o.cluster && slot_key != NULL)
        cmd->slot = (int)rc_slot(slot_key, slot_key_len);
    return submit(c, cmd);
}

rc_pending_t *rc_evalsha(rc_client_t *c, size_t script, int nkeys, const char **keys,
                         const size_t *keylens, int nargs, const char **args,
                         const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    int argc = 3 + nkeys + nargs;
    const char **argv;
    size_t *lens;
    char nk[16];
    rc_cmd_t *cmd = NULL;

    if (script >= c->o.nscripts || nkeys < 0 || nargs < 0 || fn == NULL || c->closing) {
        rc_seterr(c, c->closing ? "redis client closed" : "redis: bad EVALSHA call");
        return NULL;
    }
    argv = calloc((size_t)argc, sizeof(*argv));
    lens = calloc((size_t)argc, sizeof(*lens));
    if (argv == NULL || lens == NULL)
        goto out_free_argv;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = c->shas[script];
    argv[2] = nk;
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < nkeys; i++) {
        argv[3 + i] = keys[i];
        lens[3 + i] = keylens != NULL ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = args[i];
        lens[3 + nkeys + i] = arglens != NULL ? arglens[i] : strlen(args[i]);
    }
    cmd = rc_cmd_new(c, argc, argv, lens, fn, privdata);
    if (cmd != NULL) {
        cmd->script = (int)script;
        if (c->o.cluster && nkeys > 0)
            cmd->slot = (int)rc_slot(keys[0], lens[3]);
    }
out_free_argv:
    free(argv);
    free(lens);
    if (cmd == NULL) {
        rc_seterr(c, "redis: out of memory");
        return NULL;
    }
    return submit(c, cmd);
}

/* ---- client ------------------------------------------------------------ */

bool rc_client_up(const rc_client_t *c)
{
    const rc_conn_t *conn;

    if (!c->o.cluster) {
        conn = TAILQ_FIRST(&c->conns);
        return conn != NULL && conn->state == RC_CONN_READY;
    }
    if (!c->map_ok)
        return false;
    for (conn = TAILQ_FIRST(&c->conns); conn != NULL; conn = TAILQ_NEXT(conn, link))
        if (conn->in_map && !rc_conn_usable(conn))
            return false;
    return true;
}

void rc_client_stats(const rc_client_t *c, rc_stats_t *out)
{
    *out = c->stats;
}

const char *rc_script_sha(const rc_client_t *c, size_t script)
{
    return script < c->o.nscripts ? c->shas[script] : "";
}

static void client_destroy(rc_client_t *c);

/* The outermost rc_leave(): free the connections buried meanwhile, and the
 * client when rc_client_free() was called inside a callback. */
static void reap(rc_client_t *c)
{
    rc_conn_t *conn;

    while ((conn = TAILQ_FIRST(&c->graveyard)) != NULL) {
        TAILQ_REMOVE(&c->graveyard, conn, link);
        rc_conn_destroy(conn);
    }
}

static void ev_settle(rc_client_t *c)
{
    reap(c);
    if (c->free_asked)
        client_destroy(c);
}

static void free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void client_destroy(rc_client_t *c)
{
    rc_conn_t *conn;
    rc_cmd_t *cmd;

    c->closing = true;
    c->depth++; /* callbacks below may call rc_client_free: keep it deferred */
    /* First, so that rc_sub_free from a callback below finds them dead. */
    while (TAILQ_FIRST(&c->subs) != NULL)
        rc_sub_kill(TAILQ_FIRST(&c->subs));
    while ((cmd = TAILQ_FIRST(&c->waitq)) != NULL) {
        TAILQ_REMOVE(&c->waitq, cmd, link);
        cmd->where = RC_WHERE_NONE;
        rc_cmd_deliver(cmd, NULL, "client closed");
        rc_cmd_free(cmd);
    }
    while ((conn = TAILQ_FIRST(&c->conns)) != NULL)
        rc_conn_fail(conn, "client closed", true);
    reap(c);
    if (c->o.cluster)
        event_del(&c->refresh_timer);
    if (c->dns != NULL)
        evdns_base_free(c->dns, 0);
    if (c->ssl_ctx != NULL)
        SSL_CTX_free(c->ssl_ctx);
    for (size_t i = 0; c->seeds != NULL && i < c->o.nseeds; i++)
        free(c->seeds[i]);
    free(c->seeds);
    for (size_t i = 0; c->scripts != NULL && i < c->o.nscripts; i++) {
        free((char *)c->scripts[i].name);
        free((char *)c->scripts[i].text);
    }
    free(c->scripts);
    free(c->shas);
    free(c->slots);
    free(c->username);
    free_secret(c->password);
    free(c->tls_ca_file);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->tls_server_name);
    free(c);
}

void rc_client_free(rc_client_t *c)
{
    if (c == NULL)
        return;
    if (c->depth > 0) {
        c->free_asked = true;
        return;
    }
    client_destroy(c);
}

static int copy_scripts(rc_client_t *c, const rc_opts_t *o)
{
    unsigned char md[SHA_DIGEST_LENGTH];

    if (o->nscripts == 0)
        return 0;
    c->scripts = calloc(o->nscripts, sizeof(*c->scripts));
    c->shas = calloc(o->nscripts, sizeof(*c->shas));
    if (c->scripts == NULL || c->shas == NULL)
        return -1;
    for (size_t i = 0; i < o->nscripts; i++) {
        char *text = malloc(o->scripts[i].len + 1);

        c->scripts[i].name = strdup(o->scripts[i].name != NULL ? o->scripts[i].name : "?");
        c->scripts[i].text = text;
        c->scripts[i].len = o->scripts[i].len;
        if (text == NULL || c->scripts[i].name == NULL)
            return -1;
        memcpy(text, o->scripts[i].text, o->scripts[i].len);
        text[o->scripts[i].len] = '\0';
        SHA1((const unsigned char *)text, o->scripts[i].len, md);
        for (size_t j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(c->shas[i] + 2 * j, 3, "%02x", md[j]);
    }
    return 0;
}

static int tls_setup(rc_client_t *c, char *err, size_t errlen)
{
    char buf[160];

    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL)
        goto out_ssl_err;
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (c->tls_ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(c->ssl_ctx, c->tls_ca_file, NULL) != 1)
            goto out_ssl_err;
    } else if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
        goto out_ssl_err;
    }
    if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
        snprintf(err, errlen, "redis TLS: client certificate and key go together");
        return -1;
    }
    if (c->tls_cert_file != NULL &&
        (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, c->tls_cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(c->ssl_ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(c->ssl_ctx) != 1))
        goto out_ssl_err;
    return 0;
out_ssl_err:
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    snprintf(err, errlen, "redis TLS setup: %s", buf);
    ERR_clear_error();
    return -1;
}

/* Copy options; validate seeds.  -1 with `err` set. */
static int copy_opts(rc_client_t *c, const rc_opts_t *o, char *err, size_t errlen)
{
    bool ok = true;
    char host[256];
    unsigned port;

    c->o = *o;
    if (o->nseeds == 0 || o->seeds == NULL) {
        snprintf(err, errlen, "redis: no node given");
        return -1;
    }
    if (o->cluster && o->db > 0) {
        snprintf(err, errlen, "redis: a cluster has only database 0");
        return -1;
    }
    c->o.connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 1000;
    c->o.backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 2000;
    if (c->o.backoff_max_ms < 50)
        c->o.backoff_max_ms = 50;
    c->seeds = calloc(o->nseeds, sizeof(*c->seeds));
    if (c->seeds == NULL)
        goto out_oom;
    for (size_t i = 0; i < o->nseeds; i++) {
        const char *s = o->seeds[i];

        if (s == NULL || rc_hostport_parse(s, strlen(s), host, sizeof(host), &port) != 0) {
            snprintf(err, errlen, "redis: bad node address \"%.64s\" (want host:port)",
                     s != NULL ? s : "");
            return -1;
        }
        c->seeds[i] = util_strdup_opt(s, &ok);
    }
    c->username = util_strdup_opt(o->username, &ok);
    c->password = util_strdup_opt(o->password, &ok);
    c->tls_ca_file = util_strdup_opt(o->tls_ca_file, &ok);
    c->tls_cert_file = util_strdup_opt(o->tls_cert_file, &ok);
    c->tls_key_file = util_strdup_opt(o->tls_key_file, &ok);
    c->tls_server_name = util_strdup_opt(o->tls_server_name, &ok);
    if (!ok || copy_scripts(c, o) != 0)
        goto out_oom;
    c->o.seeds = NULL; /* the copies live in c->seeds */
    c->o.scripts = c->scripts;
    return 0;
out_oom:
    snprintf(err, errlen, "redis: out of memory");
    return -1;
}

/* One node per seed (standalone: the first only). */
static int add_seeds(rc_client_t *c)
{
    char host[256];
    unsigned port;

    for (size_t i = 0; i < (c->o.cluster ? c->o.nseeds : 1); i++) {
        rc_conn_t *conn;

        rc_hostport_parse(c->seeds[i], strlen(c->seeds[i]), host, sizeof(host), &port);
        conn = rc_conn_find(c, host, port, true);
        if (conn == NULL)
            return -1;
        conn->seed = true;
    }
    return 0;
}

/* ---- what the layers below report ---------------------------------------- */

static void ev_ready(rc_conn_t *conn)
{
    if (conn->sub != NULL)
        rc_sub_on_ready(conn->sub);
    else
        rc_cluster_on_conn_ready(conn);
}

static void ev_down(rc_conn_t *conn)
{
    if (conn->sub != NULL)
        rc_sub_on_down(conn->sub);
    else
        rc_cluster_on_conn_down(conn);
}

static void ev_sub_reply(rc_conn_t *conn, const redisReply *r)
{
    rc_sub_on_reply(conn->sub, r);
}

static void ev_sub_retry(rc_conn_t *conn)
{
    rc_sub_pick_node(conn->sub, true);
}

static const rc_events_t events = {
    .ready = ev_ready,
    .down = ev_down,
    .reply = rc_cmd_on_reply,
    .sub_reply = ev_sub_reply,
    .sub_retry = ev_sub_retry,
    .route = rc_route,
    .settle = ev_settle,
};

rc_client_t *rc_client_new(struct event_base *base, const rc_opts_t *o, char *err,
                           size_t errlen)
{
    rc_client_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    c->base = base;
    c->events = &events;
    TAILQ_INIT(&c->conns);
    TAILQ_INIT(&c->graveyard);
    TAILQ_INIT(&c->subs);
    TAILQ_INIT(&c->waitq);
    c->rng = util_mono_ms() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ULL;
    if (copy_opts(c, o, err, errlen) != 0)
        goto out_free;
    if (c->o.tls && tls_setup(c, err, errlen) != 0)
        goto out_free;
    if (c->o.timeout_ms > 0) {
        struct timeval tv = {.tv_sec = c->o.timeout_ms / 1000,
                             .tv_usec = (c->o.timeout_ms % 1000) * 1000};

        c->cmd_tv = event_base_init_common_timeout(base, &tv);
    }
    if (add_seeds(c) != 0) {
        snprintf(err, errlen, "redis: out of memory");
        goto out_free;
    }
    rc_enter(c);
    if (c->o.cluster)
        rc_cluster_start(c);
    else
        rc_conn_start(TAILQ_FIRST(&c->conns));
    rc_leave(c);
    return c;
out_free:
    c->o.cluster = 0; /* no refresh timer was armed */
    client_destroy(c);
    return NULL;
}

/* ---- ops table ------------------------------------------------------------ */

static rc_pending_t *ops_evalsha(void *cl, size_t script, int nkeys, const char **keys,
                                 const size_t *keylens, int nargs, const char **args,
                                 const size_t *arglens, rc_reply_fn fn, void *privdata)
{
    return rc_evalsha(cl, script, nkeys, keys, keylens, nargs, args, arglens, fn, privdata);
}

static rc_pending_t *ops_command(void *cl, const char *slot_key, size_t slot_key_len,
                                 int argc, const char **argv, const size_t *argvlen,
                                 rc_reply_fn fn, void *privdata)
{
    return rc_command_argv(cl, slot_key, slot_key_len, argc, argv, argvlen, fn, privdata);
}

static void ops_cancel(void *cl, rc_pending_t *p)
{
    (void)cl;
    rc_cancel(p);
}

static bool ops_up(const void *cl)
{
    return rc_client_up(cl);
}

const rc_ops_t rc_client_ops = {
    .evalsha = ops_evalsha,
    .command = ops_command,
    .cancel = ops_cancel,
    .up = ops_up,
};
