/* rc_cmd.c — the bottom of the client (redis/): command objects (formatted
 * once, delivered once), the callback nesting guard, the client's error
 * text and jitter.  Everything above uses these; they call nothing above
 * but through c->events.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "rc_internal.h"

/* xorshift64*: jitter and node picks only, no need for quality. */
uint64_t rc_rand(rc_client_t *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (c->rng * 2685821657736338717ULL) >> 11;
}

void rc_seterr(rc_client_t *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
}

const char *rc_client_errstr(const rc_client_t *c)
{
    return c->errstr;
}

/* ---- commands ---------------------------------------------------------- */

rc_cmd_t *rc_cmd_new(rc_client_t *c, int argc, const char **argv, const size_t *argvlen,
                     rc_reply_fn fn, void *privdata)
{
    rc_cmd_t *cmd = calloc(1, sizeof(*cmd));
    char *buf = NULL;
    int len;

    if (cmd == NULL)
        return NULL;
    len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    if (len < 0 || buf == NULL) {
        free(cmd);
        return NULL;
    }
    cmd->c = c;
    cmd->fn = fn;
    cmd->privdata = privdata;
    cmd->buf = buf;
    cmd->len = (size_t)len;
    cmd->slot = -1;
    cmd->script = -1;
    return cmd;
}

void rc_cmd_free(rc_cmd_t *cmd)
{
    if (cmd->timer_on)
        event_del(&cmd->timer);
    redisFreeCommand(cmd->buf);
    free(cmd);
}

void rc_cmd_deliver(rc_cmd_t *cmd, redisReply *reply, const char *errstr)
{
    rc_reply_fn fn = cmd->fn;
    rc_client_t *c = cmd->c;

    if (cmd->timer_on) {
        event_del(&cmd->timer);
        cmd->timer_on = false;
    }
    if (fn == NULL)
        return;
    cmd->fn = NULL;
    if (reply != NULL)
        c->stats.replies++;
    else
        c->stats.failed++;
    c->depth++;
    fn(c, reply, reply != NULL ? NULL : (errstr != NULL ? errstr : "no reply"),
       cmd->privdata);
    c->depth--;
}

void rc_enter(rc_client_t *c)
{
    c->depth++;
}

void rc_leave(rc_client_t *c)
{
    if (--c->depth > 0)
        return;
    c->events->settle(c);
}
