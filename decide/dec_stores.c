/* dec_stores.c — the real stores behind dec_stores_ops_t: this replica's
 * lockouts (auth_lockout_*), counted through Redis when there is one
 * (auth_shared_lockout_*: lua/lockout.lua tells every replica), and one-time
 * tickets in Redis (auth_ticket_*) or, without it, in this replica's store
 * (auth_tickets_*).
 */
#include <stdlib.h>

#include "tollgate/auth_shared.h"
#include "tollgate/auth_ticket.h"
#include "dec_internal.h"

static uint64_t lockout_check(void *st, const char *ip_key, int64_t now_ms)
{
    dec_stores_real_t *s = st;

    return auth_lockout_check(s->lockout, ip_key, now_ms);
}

static void *lockout_fail(void *st, const char *ip_key, const auth_lockout_policy_t *p,
                          int64_t now_ms, dec_count_done_fn *done, void *arg)
{
    dec_stores_real_t *s = st;

    return auth_shared_lockout_fail(s->shared, s->rc != NULL ? s->rc_ops : NULL, s->rc,
                                    ip_key, p, now_ms, done, arg);
}

static void lockout_detach(void *op)
{
    auth_shared_lockout_detach(op);
}

static dec_store_status_t ticket_redeem(void *st, const char *key, int64_t now_ms,
                                        char **val, void **op, dec_ticket_done_fn *done,
                                        void *arg)
{
    dec_stores_real_t *s = st;

    if (s->rc == NULL) {
        *val = auth_tickets_take(s->tickets, key, now_ms);
        return DEC_STORE_NOW;
    }
    *op = auth_ticket_redeem(s->rc_ops, s->rc, key, done, arg);
    return *op != NULL ? DEC_STORE_LATER : DEC_STORE_FAILED;
}

static dec_store_status_t ticket_issue(void *st, const char *key, const char *val,
                                       unsigned ttl_s, int64_t now_ms, void **op,
                                       dec_ticket_done_fn *done, void *arg)
{
    dec_stores_real_t *s = st;

    if (s->rc == NULL)
        return auth_tickets_put(s->tickets, key, val, now_ms + (int64_t)ttl_s * 1000) == 0
                   ? DEC_STORE_NOW
                   : DEC_STORE_FAILED;
    *op = auth_ticket_issue(s->rc_ops, s->rc, key, val, ttl_s, done, arg);
    return *op != NULL ? DEC_STORE_LATER : DEC_STORE_FAILED;
}

static void ticket_cancel(void *op)
{
    auth_ticket_cancel(op);
}

const dec_stores_ops_t dec_stores_real_ops = {
    .lockout_check = lockout_check,
    .lockout_fail = lockout_fail,
    .lockout_detach = lockout_detach,
    .ticket_redeem = ticket_redeem,
    .ticket_issue = ticket_issue,
    .ticket_cancel = ticket_cancel,
};
