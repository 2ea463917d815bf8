/* dec_internal.h — the decision core's private types, for decide/ sources
 * only: dec_req_t is the decision state of one request (what dec_start()
 * hands out as dec_pending_t), moving through the steps of
 * docs/architecture.md §5.  No transport type: headers come through
 * dec_headers_t, the answer goes out as dec_verdict_t.
 */
#ifndef TOLLGATE_DEC_INTERNAL_H
#define TOLLGATE_DEC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tollgate/auth_ticket.h"
#include "tollgate/decide.h"
#include "tollgate/http.h"

struct dec_ctx {
    dec_ctx_cfg_t c;
    bool replay; /* dec_ctx_new_replay(): dec_input_t.replay_as is honoured */
};

/* What a step did.  A step never answers: one that decided records the
 * answer in r->v (dec_verdict()) and returns DEC_ANSWERED; whoever ran it
 * delivers the verdict (dec_run(), or a pending step's callback through
 * dec_step_done()). */
typedef enum {
    DEC_NEXT,     /* go on with the next step */
    DEC_ANSWERED, /* r->v is the answer */
    DEC_PENDING,  /* waiting on the limiter, a store or a timer: its callback goes on */
} dec_step_t;

/* How the request asks (dec_identify.c). */
typedef enum {
    DEC_MODE_PROXY,
    DEC_MODE_FWD_ENVOY,
    DEC_MODE_FWD_NGINX,
    DEC_MODE_FWD_TRAEFIK,
    DEC_MODE_TICKET, /* POST tickets.path: issue a one-time ticket */
} dec_mode_t;

/* The request headers the steps read, found and checked in one walk of
 * dec_headers_t.each (dec_hdrs_scan); values borrowed from the input. */
typedef struct dec_hdrs {
    const char *host, *origin, *api_key, *real_ip, *request_id, *sent_from, *authorization;
    const char *o_uri, *o_url, *o_method, *o_host;   /* nginx dialect */
    const char *f_uri, *f_host, *f_proto, *f_method; /* Traefik dialect, X-Forwarded-* */
    const char *acrm, *acrh;                         /* CORS preflight */
    const char *content_length, *transfer_encoding;  /* framing */
    const char *content_type;
    const char *xff;       /* the first X-Forwarded-For line */
    int nxff;              /* how many there are */
    bool identity_exact;   /* an X-Auth-* header */
    bool identity_variant; /* an X_Auth_*, X.Auth.* ... */
    bool reserved_variant; /* a '_'/'.' spelling of any reserved name */
    bool method_override;  /* X-HTTP-Method-Override or a sibling (http.h) */
    const char *bad;       /* why dec_hdrs_scan() refused, the audit reason */
    const char *dup_name;  /* duplicate_header: the name repeated (canonical) */
} dec_hdrs_t;

/* Fill `h` (zeroed) from `in`; -1 when the headers are refused (h->bad). */
int dec_hdrs_scan(dec_hdrs_t *h, const dec_headers_t *in);

typedef struct dec_pending dec_req_t;

/* X-Auth-* values of an allow, encoded (http_hdr_value_encode). */
typedef struct dec_ident_hdrs {
    char client_id[3 * AUTH_MAX_ID_LEN + 1];
    char subject[3 * AUTH_MAX_ID_LEN + 1];
    char scopes[3 * 1024]; /* room for every escape: never a scope cut short */
} dec_ident_hdrs_t;

struct dec_pending {
    dec_ctx_t *ctx;
    const cfg_t *cfg;
    dec_input_t in; /* a copy; what it points to is the caller's */
    dec_done_fn *done;
    void *arg;
    dec_hdrs_t h;
    dec_mode_t mode;
    char reqid[HTTP_REQID_MAX + 1];
    char ip[HTTP_IP_STRLEN];         /* client ip */
    char ip_key[HTTP_IP_KEY_STRLEN]; /* its key in limits and lockouts (http_ip_key) */
    bool peer_trusted;
    bool https;
    const char *method; /* the original method */
    unsigned method_bit;
    bool route_method_denied; /* the route has other_methods: deny and not this method */
    const char *target;       /* the original target (path?query), raw */
    const char *host;         /* the original host, may be NULL */
    char *target_own;         /* target built here (malloc'd) or NULL */
    char *path;               /* normalized original path (malloc'd) */
    unsigned path_flags;      /* HTTP_PATH_* seen while normalizing */
    const char *query;        /* points into target, NULL when none */
    const char *origin;       /* Origin when allowed by CORS, else NULL */
    const cfg_route_t *route; /* matched route, or &cfg->default_route */
    auth_identity_t id;
    bool bearer_failed;
    bool deprecated;
    /* The steps run in order from `step`.  At most one of rl_pending,
     * lock_pending, tkt_pending and timer is set, while its step waits. */
    unsigned step;
    bool starting;  /* inside dec_start(): a verdict waits for `timer` */
    bool delivered; /* the verdict is final */
    rl_pending_t *rl_pending;
    void *lock_pending;
    void *tkt_pending;
    void *timer;               /* the JWKS poll, or the delivery of a quick verdict */
    uint64_t jwks_deadline_ms; /* monotonic; 0 = not waited yet */
    char *owned[2];            /* allow: the forward target, claim values */
    int64_t decided_ms;        /* the wall hook at dec_start (audit, replay) */
    const char *auth_method;   /* the authentication step's credential kind, or NULL */
    /* From here on not zeroed by dec_start (scratch, or used up to a
     * count): keep dec_verdict_t's set[] and vals[] last. */
    char hostbuf[256]; /* host taken from X-Original-URL */
    char claimbuf[64];
    char keybuf[DEC_VERDICT_KEYS][32]; /* numeric claim values of verdict keys */
    char ticket[AUTH_TICKET_LEN + 1];
    dec_ident_hdrs_t idv; /* the identity headers' values of an allow */
    dec_verdict_t v;
};

/* decide.c: the verdict, and the run of the steps */
dec_step_t dec_verdict(dec_req_t *r, int status, const char *code, const char *message);
dec_step_t dec_verdict_body(dec_req_t *r, int status, const char *body);
void dec_verdict_header(dec_req_t *r, const char *name, const char *value, bool copy);
void dec_step_done(dec_req_t *r, dec_step_t st); /* a pending step's callback ends */
void dec_run(dec_req_t *r);                      /* run from r->step on */
int64_t dec_wall_ms(const dec_req_t *r);
uint64_t dec_mono_ms(const dec_req_t *r);
#define DEC_HOOK(r, fn, ...)                                                               \
    do {                                                                                   \
        if ((r)->ctx->c.hooks.fn != NULL)                                                  \
            (r)->ctx->c.hooks.fn((r)->ctx->c.hooks.arg, __VA_ARGS__);                      \
    } while (0)

/* dec_identify.c: steps 1 and 2 */
dec_step_t dec_step_identify(dec_req_t *r);
dec_step_t dec_step_own_paths(dec_req_t *r);

/* dec_route.c: step 3 */
dec_step_t dec_step_route(dec_req_t *r);
unsigned dec_methods_served(const dec_req_t *r);
dec_step_t dec_refuse_method(dec_req_t *r, unsigned allow);

/* dec_authn.c: steps 4 to 6, tickets */
dec_step_t dec_step_lockout(dec_req_t *r);
dec_step_t dec_step_authenticate(dec_req_t *r);
dec_step_t dec_step_authorize(dec_req_t *r);
dec_step_t dec_issue_ticket(dec_req_t *r);

/* dec_ban.c: the ban steps, before step 4 (ip, cidr) and after 5 (client) */
dec_step_t dec_step_ban_ip(dec_req_t *r);
dec_step_t dec_step_ban_client(dec_req_t *r);

/* dec_limits.c: step 7 */
dec_step_t dec_step_limits(dec_req_t *r);
/* The values the snapshot's limits key on, into r->v.keys (the audit line). */
void dec_limits_keys(dec_req_t *r);

/* dec_replay.c: replay's recorded identity.  Whether the request is to be
 * decided as one: a replay context, and replay_as names a credential
 * (api_key, jwt, ticket; "none" is decided from the headers as usual). */
bool dec_replaying(const dec_req_t *r);
/* Step 5 for a recorded identity: DEC_NEXT with r->id filled, or
 * DEC_ANSWERED with *reason (a refused credential, or one the route or the
 * auth mode does not take). */
dec_step_t dec_replay_identity(dec_req_t *r, unsigned methods, const char **reason);

/* dec_allow.c: after the last step */
dec_step_t dec_allow(dec_req_t *r);

#endif
