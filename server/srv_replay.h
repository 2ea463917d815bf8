/* srv_replay.h — `tollgate replay` (docs/reference.md §1 "replay"), for
 * server/ sources and their tests only.
 *
 * replay_line.c reads one audit line (outside input: strict, bounded) into
 * a srv_replay_rec_t; replay.c runs the records through a candidate
 * config's decision core on simulated time and reports, per limit and per
 * route, what would change (srv_replay_tally_*: the report's arithmetic).
 */
#ifndef TOLLGATE_SRV_REPLAY_H
#define TOLLGATE_SRV_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tollgate/decide.h"

#define SRV_REPLAY_LINE_MAX (256 * 1024) /* bytes of one audit line */
/* Request lines held at most (--max-lines): each is kept, about 0.8 KiB,
 * until all are read and sorted in time. */
#define SRV_REPLAY_MAX_LINES 1000000
#define SRV_REPLAY_MAX_LINES_CAP 100000000
#define SRV_REPLAY_KEYS_MAX 8    /* "keys" entries (audit.c writes at most 8) */
#define SRV_REPLAY_SCOPES_MAX 64 /* scopes of one identity */

/* One request line.  Every string is malloc'd (srv_replay_rec_clear) or NULL. */
typedef struct srv_replay_rec {
    int64_t t_ms; /* decided_ms, else ts: unix ms */
    bool why;     /* the line has issue 22 item 6's fields (route, auth_method...) */
    char *request_id, *client_id, *method, *path, *ip, *decision, *reason, *limit;
    int status; /* -1: null */
    char *route, *auth_method, *iss, *scopes /* space-separated */, *host, *tier, *peer,
        *mode;
    /* keys: name as written ("header:x-tenant", "claim:org"), value or NULL */
    dec_header_t keys[SRV_REPLAY_KEYS_MAX];
    size_t nkeys;
} srv_replay_rec_t;

/* Parse one line (without its '\n').  1: a request line into `out`;
 * 0: a line to skip (empty, or `"kind":"admin"`); -1: refused, the reason
 * in `err` (never quoting the line).  `out` is cleared first and left
 * cleared unless 1. */
int srv_replay_parse_line(const char *line, size_t len, srv_replay_rec_t *out, char *err,
                          size_t errlen);
void srv_replay_rec_clear(srv_replay_rec_t *r);

/* "2026-11-24T21:40:00.123Z" -> unix ms; -1 when not that form. */
int64_t srv_replay_parse_ts(const char *s);

/* ---- the report's arithmetic (replay.c) -------------------------------- */

/* One row: a limit or a route. */
typedef struct srv_replay_row {
    char *name;
    bool shadow;                  /* a limit in shadow mode (its denials are would-be) */
    uint64_t requests;            /* replayed requests it applied to (limits: matched) */
    uint64_t rec_allow, rec_deny; /* recorded (limits: rec_deny = denied by it) */
    uint64_t would_allow, would_deny; /* replayed */
    struct srv_replay_count *clients; /* would-be-denied per client (hash table) */
    size_t nclients, cap;
} srv_replay_row_t;

/* +would_deny - rec_deny: the increase of denials (negative: fewer). */
int64_t srv_replay_row_diff(const srv_replay_row_t *r);

/* Count one would-be denial of `client`.  0, or -1 when out of memory. */
int srv_replay_row_deny_client(srv_replay_row_t *r, const char *client);

/* The `n` clients with the most would-be denials, most first (ties by
 * name); returns how many were written to names/counts. */
size_t srv_replay_row_top(const srv_replay_row_t *r, size_t n, const char **names,
                          uint64_t *counts);
void srv_replay_row_clear(srv_replay_row_t *r);

/* --max-deny-increase: "N" (requests) or "N%" (of the requests replayed).
 * 0, or -1 when not that form. */
typedef struct srv_replay_gate {
    bool set, percent;
    uint64_t n; /* requests, or percent * 100 (two decimals) */
} srv_replay_gate_t;
int srv_replay_gate_parse(const char *s, srv_replay_gate_t *g);
/* Whether an increase of `increase` denials over `requests` passes the gate. */
bool srv_replay_gate_exceeded(const srv_replay_gate_t *g, int64_t increase,
                              uint64_t requests);

/* A limit the run could not replay exactly, and why (one row per limit
 * and reason). */
typedef struct srv_replay_inexact {
    char *limit, *why;
    uint64_t lines;
} srv_replay_inexact_t;

/* A request whose replayed decision differs from the recorded one (the
 * first SRV_REPLAY_MISMATCHES are kept). */
#define SRV_REPLAY_MISMATCHES 20
typedef struct srv_replay_mismatch {
    char *where; /* FILE:LINE */
    char *request_id;
    const char *recorded, *replayed; /* decisions (static) */
    char *reason;                    /* the replayed reason */
} srv_replay_mismatch_t;

/* What the run adds up (replay_report.c writes it as text or JSON). */
typedef struct srv_replay_report {
    srv_replay_row_t *limits, *routes;
    size_t nlimits, nroutes;
    srv_replay_inexact_t *inexact;
    size_t ninexact;
    srv_replay_mismatch_t mismatch[SRV_REPLAY_MISMATCHES];
    size_t nmismatch;
    uint64_t lines, skipped;   /* request lines read; admin/empty lines skipped */
    uint64_t carried;          /* not decided again: carried as recorded */
    uint64_t requests;         /* decided again */
    uint64_t rec[3], would[3]; /* allow, deny, error (requests and carried) */
    uint64_t changed, allow_to_deny, deny_to_allow;
    srv_replay_gate_t gate;
} srv_replay_report_t;

/* The row named `name` (made on first use); NULL when out of memory. */
srv_replay_row_t *srv_replay_row(srv_replay_row_t **rows, size_t *n, const char *name);
/* One more line of `limit` that is not replayed exactly for `why`. */
int srv_replay_note_inexact(srv_replay_report_t *rep, const char *limit, const char *why);
/* 0 allow, 1 deny, 2 error (anything else). */
int srv_replay_decision_index(const char *decision);
/* Denials replayed minus recorded, over every line. */
int64_t srv_replay_increase(const srv_replay_report_t *rep);
/* The report as text or (json) one JSON document, to `f`. */
void srv_replay_print(const srv_replay_report_t *rep, bool json, FILE *f);
void srv_replay_report_clear(srv_replay_report_t *rep);

/* The subcommand: argv from "replay" on.  Returns the exit code
 * (SRV_REPLAY_EXIT_*; 1 is a candidate config that does not load). */
#define SRV_REPLAY_EXIT_OK 0
#define SRV_REPLAY_EXIT_CONFIG 1
#define SRV_REPLAY_EXIT_USAGE 2 /* bad usage, unreadable file, refused line */
#define SRV_REPLAY_EXIT_GATE 4  /* denials rose past --max-deny-increase */
int srv_replay_main(int argc, char **argv);

#endif
