"""`tollgate replay` (issue 22 item 7, docs/reference.md §1 "replay") against
audit logs recorded by real runs (item 6's fields): a scripted load — several
API-key clients (one over its limit), a JWT subject, a 403, two 401s, an
anonymous route over its per-ip limit, an admin action — on the memory
backend, on one real redis-server, and on three replicas sharing it.

Asserted: the same config reproduces every recorded verdict (memory: all;
one Redis replica: all, with the Redis TIME vs local clock skew measured
against the refill period; three replicas: the totals per limit and route,
and any changed verdict is one of two requests decided in the same ms, whose
order the log cannot tell); a tightened config reports the expected extra
denials for the expected clients; --max-deny-increase gates the exit code;
--json parses; garbage gives a line-numbered error and exit 2; limits keyed
on a header the line does not hold, or on a credential, are listed as not
exactly replayable; and nothing from outside can use the replay identity.
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

from harness import (ISSUER, SLOW, TOLLGATE_BIN, TollgateCase, api_key, bearer, make_jwt,
                     to_yaml)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None

PER_CLIENT = 5  # /orders/ per client and minute: a refill every 12 s


def replay_conf(nodes=None, per_client=PER_CLIENT, extra_limits=(), mode="standalone"):
    def configure(cfg):
        if nodes:
            cfg["redis"] = {"mode": mode, "nodes": list(nodes), "timeout_ms": 500}
        cfg["threads"] = 1
        cfg["routes"] = [
            {"name": "orders-admin", "match": {"path_prefix": "/orders/admin"},
             "auth": "required", "scopes": ["orders:write"]},
            {"name": "orders", "match": {"path_prefix": "/orders/"}, "auth": "required",
             "scopes": ["orders:read"]},
            {"name": "public", "match": {"path_prefix": "/public/"}, "auth": "none"},
        ]
        cfg["limits"] = [
            {"name": "default", "match": {}, "by": ["client"], "rate": "1000/minute"},
            {"name": "per-client", "match": {"path_prefix": "/orders/"}, "by": ["client"],
             "rate": "%d/minute" % per_client},
            {"name": "tenant", "match": {"path_prefix": "/orders/"},
             "by": ["client", "header:X-Tenant"], "rate": "100/minute"},
            {"name": "public-ip", "match": {"path_prefix": "/public/"}, "by": ["ip"],
             "rate": "4/minute"},
            {"name": "by-credential", "match": {"path_prefix": "/never/"},
             "by": ["header:Authorization"], "rate": "1/minute", "mode": "shadow"},
        ] + list(extra_limits)
        return cfg
    return configure


def jwt_subject():
    return bearer(make_jwt({"sub": "svc-jwt", "scope": "orders:read"}))


# (headers, path, how many, expected statuses in order)
def load():
    return [
        (dict(api_key("bob"), **{"X-Tenant": "t1"}), "/auth/orders/1", 8, [200] * 5 + [429] * 3),
        (dict(api_key("alice"), **{"X-Tenant": "t2"}), "/auth/orders/2", 3, [200] * 3),
        (api_key("carol"), "/auth/orders/3", 2, [403] * 2),
        ({}, "/auth/orders/4", 1, [401]),
        ({"X-API-Key": "it-key-wrong-0123456789abcdef0123"}, "/auth/orders/5", 1, [401]),
        ({}, "/auth/public/x", 6, [200] * 4 + [429] * 2),
        (jwt_subject(), "/auth/orders/6", 2, [200] * 2),
    ]


LINES = sum(n for _, _, n, _ in load())  # request lines of one run


def send(case, tgs):
    """The load, request by request, round-robin over `tgs`; an admin
    action in the middle (its line must be skipped)."""
    k = 0
    for hdrs, path, n, want in load():
        got = []
        for _ in range(n):
            got.append(tgs[k % len(tgs)].get(path, hdrs).status)
            k += 1
        case.assertEqual(got, want, path)
    case.assertEqual(tgs[0].admin("POST", "/admin/v1/reload").status, 200)


def stop_all(case, tgs):
    """Stop the replicas (the audit buffers are flushed on exit)."""
    for tg in tgs:
        case.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])


class ReplayRun:
    def write(self, tg, name, configure):
        """A candidate config beside tg's own (same key file)."""
        cfg = configure(copy.deepcopy(tg.config_base))
        path = os.path.join(tg.tmp, name)
        with open(path, "w") as f:
            f.write(to_yaml(cfg))
        return path

    def replay(self, tg, config, logs, *args):
        env = dict(tg.env)
        p = subprocess.run([TOLLGATE_BIN, "replay", "--config", config] + list(args) + logs,
                           capture_output=True, text=True, env=env, cwd=tg.tmp,
                           timeout=60 * SLOW)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, p.stderr)
        return p

    def replay_json(self, tg, config, logs, *args):
        p = self.replay(tg, config, logs, "--json", *args)
        self.assertIn(p.returncode, (0, 4), p.stderr)
        return p.returncode, json.loads(p.stdout)

    @staticmethod
    def row(rows, name):
        for r in rows:
            if r["name"] == name:
                return r
        raise AssertionError("no row %s in %r" % (name, rows))

    def assert_same(self, rep, lines=LINES):
        self.assertEqual(rep["lines"], lines, rep)
        self.assertEqual(rep["skipped"] >= 1, True, "the admin line is skipped")
        self.assertEqual(rep["changed"], 0, rep["mismatches"])
        self.assertEqual(rep["recorded"], rep["replayed"])
        self.assertEqual(rep["deny_increase"], 0)
        for name, rec_deny in (("per-client", 3), ("public-ip", 2), ("tenant", 0)):
            lim = self.row(rep["limits"], name)
            self.assertEqual((lim["recorded_deny"], lim["would_deny"], lim["diff"]),
                             (rec_deny, rec_deny, 0), lim)
        self.assertEqual(self.row(rep["limits"], "per-client")["top_denied"],
                         [{"client": "bob", "would_deny": 3}])
        orders = self.row(rep["routes"], "orders")
        self.assertEqual((orders["requests"], orders["recorded_deny"], orders["would_deny"]),
                         (17, 7, 7), orders)  # 8 + 3 + 2 + 1 + 1 + 2; 3 x 429, 2 x 403, 2 x 401
        self.assertEqual(self.row(rep["routes"], "public")["would_deny"], 2)


def record(tg_factory, n=1):
    return [tg_factory() for _ in range(n)]


class Replay(TollgateCase, ReplayRun):
    shared_server = False

    def recorded(self, nodes=None, replicas=1, mode="standalone"):
        tgs = [self.spawn(replay_conf(nodes, mode=mode)) for _ in range(replicas)]
        for tg in tgs:
            tg.config_base = copy.deepcopy(tg.config)
        send(self, tgs)
        stop_all(self, tgs)
        return tgs

    def test_audit_line_says_why(self):
        tg = self.recorded()[0]
        recs = tg.audit()
        self.assertIn("admin", [r.get("kind") for r in recs])
        reqs = [r for r in recs if "kind" not in r]
        self.assertEqual(len(reqs), LINES)
        denied = [r for r in reqs if r["status"] == 429 and r["route"] == "orders"]
        self.assertEqual({(r["limit"], r["auth_method"], r["client_id"]) for r in denied},
                         {("per-client", "api_key", "bob")})
        forbidden = [r for r in reqs if r["status"] == 403]
        self.assertEqual(forbidden[0]["scopes_required"], ["orders:read"])
        self.assertEqual(forbidden[0]["scopes"], [])
        jwt = [r for r in reqs if r["client_id"] == "svc-jwt"]
        self.assertEqual((jwt[0]["auth_method"], jwt[0]["iss"]), ("jwt", ISSUER))
        anon = [r for r in reqs if r["route"] == "public"]
        self.assertEqual({r["auth_method"] for r in anon}, {"none"})
        for r in reqs:
            self.assertLessEqual(r["decided_ms"] / 1000.0, time.time())
            self.assertEqual((r["mode"], r["peer"]), ("envoy", "127.0.0.1"))
            self.assertNotIn("header:authorization", r["keys"] or {})
        self.assertEqual(denied[0]["keys"], {"header:x-tenant": "t1"})
        raw = tg.audit_raw().decode()
        for secret in ("it-key-", "eyJ"):
            self.assertNotIn(secret, raw)

    def test_same_config_same_verdicts_memory(self):
        tg = self.recorded()[0]
        rc, rep = self.replay_json(tg, tg.config_path, [tg.audit_path])
        self.assertEqual(rc, 0)
        self.assert_same(rep)
        # the text report says the same
        p = self.replay(tg, tg.config_path, [tg.audit_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("changed: 0 (allow->deny 0, deny->allow 0)", p.stdout)

    def test_tightened_config(self):
        tg = self.recorded()[0]
        tight = self.write(tg, "tight.yaml", replay_conf(per_client=2))
        rc, rep = self.replay_json(tg, tight, [tg.audit_path])
        self.assertEqual(rc, 0)
        lim = self.row(rep["limits"], "per-client")
        # bob 8 -> 6 denied, alice 3 -> 1, svc-jwt 2 -> 0: 7 instead of 3
        self.assertEqual((lim["recorded_deny"], lim["would_deny"], lim["diff"]), (3, 7, 4), lim)
        self.assertEqual(lim["top_denied"], [{"client": "bob", "would_deny": 6},
                                             {"client": "alice", "would_deny": 1}])
        self.assertEqual((rep["deny_increase"], rep["allow_to_deny"], rep["deny_to_allow"]),
                         (4, 4, 0))
        self.assertEqual(self.row(rep["routes"], "orders")["diff"], 4)
        # the gate: absolute and percent (4 of 23 lines = 17.39 %)
        for args, want in ((("--max-deny-increase", "3"), 4), (("--max-deny-increase", "4"), 0),
                           (("--max-deny-increase", "10%"), 4),
                           (("--max-deny-increase", "20%"), 0)):
            p = self.replay(tg, tight, [tg.audit_path], *args)
            self.assertEqual(p.returncode, want, (args, p.stdout, p.stderr))
        rc, rep = self.replay_json(tg, tight, [tg.audit_path], "--max-deny-increase", "3")
        self.assertEqual((rc, rep["gate"]["exceeded"]), (4, True))
        # a looser one: fewer denials never fail the gate
        loose = self.write(tg, "loose.yaml", replay_conf(per_client=50))
        rc, rep = self.replay_json(tg, loose, [tg.audit_path], "--max-deny-increase", "0")
        self.assertEqual((rc, rep["deny_increase"], rep["deny_to_allow"]), (0, -3, 3))

    def test_not_exactly_replayable(self):
        tg = self.recorded()[0]
        cand = self.write(tg, "keyed.yaml", replay_conf(extra_limits=[
            {"name": "by-other", "match": {"path_prefix": "/orders/"},
             "by": ["header:X-Other"], "rate": "100/minute"}]))
        rc, rep = self.replay_json(tg, cand, [tg.audit_path])
        self.assertEqual(rc, 0)
        notes = {(n["limit"], n["why"]): n["lines"] for n in rep["not_exact"]}
        self.assertEqual(notes.get(("by-other",
                                    "keyed on header:x-other, which the line does not hold")),
                         13, notes)  # the /orders/ requests that reached the limits: 8+3+2
        self.assertFalse([k for k in notes if k[0] in ("per-client", "tenant", "public-ip")],
                         notes)
        # a limit keyed on a credential is never exactly replayable
        cand = self.write(tg, "cred.yaml", replay_conf(extra_limits=[
            {"name": "by-key", "match": {"path_prefix": "/orders/"},
             "by": ["header:X-API-Key"], "rate": "100/minute"}]))
        rc, rep = self.replay_json(tg, cand, [tg.audit_path])
        self.assertIn("keyed on header:x-api-key, which may carry a credential: never recorded",
                      [n["why"] for n in rep["not_exact"] if n["limit"] == "by-key"])
        # a value audit.c cut to 256 bytes is not the value the limit saw
        line = next(r for r in tg.audit() if r.get("client_id") == "bob")
        line["keys"] = {"header:x-tenant": "a" * 256}
        cut = os.path.join(tg.tmp, "cut.log")
        with open(cut, "w") as f:
            f.write(json.dumps(line) + "\n")
        rc, rep = self.replay_json(tg, tg.config_path, [cut])
        self.assertIn(("tenant", "keyed on header:x-tenant, whose value the line cut to 256 "
                                 "bytes", 1),
                      [(n["limit"], n["why"], n["lines"]) for n in rep["not_exact"]])
        # a line from before item 6 (the old twelve fields) is replayed, and said so
        old = os.path.join(tg.tmp, "old.log")
        with open(old, "w") as f:
            f.write(json.dumps({
                "ts": "2026-11-24T21:40:00.123Z", "request_id": "old-1", "client_id": "bob",
                "method": "GET", "path": "/orders/1", "status": 200, "duration_ms": 0.1,
                "ip": "127.0.0.1", "decision": "allow", "reason": "ok", "limit": None,
                "upstream_status": None}) + "\n")
        rc, rep = self.replay_json(tg, tg.config_path, [old])
        self.assertEqual((rc, rep["changed"]), (0, 0), rep)
        self.assertTrue(any("before issue 22 item 6" in n["why"] for n in rep["not_exact"]))

    def test_credential_names_never_recorded(self):
        """A header or claim whose name may carry a credential by another word
        than auth/token/key (X-Hub-Signature, a claim session_token) is never
        written into the line's keys, and replay says so instead of guessing."""
        conf = replay_conf(extra_limits=[
            {"name": "by-sig", "match": {"path_prefix": "/orders/"},
             "by": ["header:X-Hub-Signature", "claim:session_token"], "rate": "100/minute",
             "mode": "shadow"}])
        tg = self.spawn(conf)
        tok = make_jwt({"sub": "svc-sig", "scope": "orders:read",
                        "session_token": "st-claim-value-SECRET"})
        hdrs = dict(bearer(tok), **{"X-Hub-Signature": "sha256=hub-value-SECRET"})
        self.assertEqual(tg.get("/auth/orders/7", hdrs).status, 200)
        self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        raw = tg.audit_raw().decode()
        self.assertNotIn("SECRET", raw)
        line = next(r for r in tg.audit() if r.get("client_id") == "svc-sig")
        self.assertNotIn("header:x-hub-signature", line["keys"] or {})
        self.assertNotIn("claim:session_token", line["keys"] or {})
        rc, rep = self.replay_json(tg, tg.config_path, [tg.audit_path])
        whys = [n["why"] for n in rep["not_exact"] if n["limit"] == "by-sig"]
        self.assertTrue(any("claim:session_token, which may carry a credential" in w
                            for w in whys), whys)
        self.assertTrue(any("x-hub-signature, which may carry a credential" in w.lower()
                            for w in whys), whys)

    def test_bad_input(self):
        tg = self.recorded()[0]
        with open(tg.audit_path) as f:
            lines = f.read().splitlines()
        bad = os.path.join(tg.tmp, "bad.log")
        with open(bad, "w") as f:
            f.write("\n".join(lines[:2] + ['{"ts": "SECRET-GARBAGE"'] + lines[2:]) + "\n")
        p = self.replay(tg, tg.config_path, [bad])
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad.log:3:", p.stderr)
        self.assertNotIn("SECRET-GARBAGE", p.stderr)
        self.assertEqual(p.stdout, "")
        p = self.replay(tg, tg.config_path, [os.path.join(tg.tmp, "missing.log")])
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing.log", p.stderr)
        for args in ([], ["--config", tg.config_path], ["--max-deny-increase", "x%",
                                                        "--config", tg.config_path,
                                                        tg.audit_path]):
            p = subprocess.run([TOLLGATE_BIN, "replay"] + args, capture_output=True,
                               text=True, env=tg.env, cwd=tg.tmp, timeout=30 * SLOW)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("usage", p.stderr)
        broken = os.path.join(tg.tmp, "broken.yaml")
        with open(broken, "w") as f:
            f.write("limits: [{name: x, rate: fast}]\n")
        p = self.replay(tg, broken, [tg.audit_path])
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_max_lines_bounds_memory(self):
        """Every request line is held to be sorted in time: --max-lines
        (default 1,000,000) bounds that, counting request lines of all the
        logs together; past it, exit 2 and a message that says what to do."""
        tg = self.recorded()[0]
        p = self.replay(tg, tg.config_path, [tg.audit_path, tg.audit_path],
                        "--max-lines", str(2 * LINES - 1))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("more than %d request lines" % (2 * LINES - 1), p.stderr)
        self.assertIn("--max-lines", p.stderr)
        self.assertEqual(p.stdout, "")
        p = self.replay(tg, tg.config_path, [tg.audit_path, tg.audit_path],
                        "--max-lines", str(2 * LINES))
        self.assertIn(p.returncode, (0, 4), p.stderr)
        for bad in ("0", "-1", "x", "100000001"):
            p = self.replay(tg, tg.config_path, [tg.audit_path], "--max-lines", bad)
            self.assertEqual(p.returncode, 2, bad)
            self.assertIn("--max-lines", p.stderr)

    def test_endless_line_is_bounded(self):
        """A hostile log whose line never ends (a pipe of endless bytes) is
        refused once the line passes the 256 KiB bound, not read whole into
        memory first: replay stops reading and exits 2 with a line-numbered
        error while the writer has sent a few MiB at most."""
        import threading
        tg = self.spawn(replay_conf())
        p = subprocess.Popen([TOLLGATE_BIN, "replay", "--config", tg.config_path, "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(tg.env), cwd=tg.tmp)
        sent = [0]
        limit = 128 << 20
        chunk = b"a" * (64 << 10)

        def feed():
            try:
                p.stdin.write(b'{"ts":"')
                while sent[0] < limit:
                    p.stdin.write(chunk)
                    sent[0] += len(chunk)
                p.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        try:
            p.wait(timeout=60 * SLOW)  # stdin stays the feeder's to close
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        t.join(timeout=10)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(p.returncode, 2, err[-2000:])
        self.assertIn(b"-:1: line longer than 262144 bytes", err)
        self.assertLess(sent[0], 16 << 20, "the whole line was read before it was refused")

    def test_live_listener_ignores_replay_identity(self):
        """No request can be decided as a recorded identity: the listener's
        decision context ignores replay_as (tests/unit/test_decide.c), and
        neither headers spelled like the audit fields nor an explain body
        naming one get anyone authenticated."""
        tg = self.spawn(replay_conf())
        spoof = {"X-Replay-As": "alice", "Replay-As": "alice", "Auth-Method": "api_key",
                 "Client-Id": "alice", "X-Client-Id": "alice"}
        r = tg.get("/auth/orders/1", spoof)
        self.assertEqual(r.status, 401)
        rec = tg.audit_for(r.header("X-Request-ID"))
        self.assertEqual((rec["client_id"], rec["auth_method"]), (None, "none"))
        body = json.dumps({"method": "GET", "path": "/orders/1",
                           "replay_as": {"method": "api_key", "client_id": "alice"}})
        r = tg.admin("POST", "/admin/v1/explain", {"Content-Type": "application/json"},
                     body)
        self.assertNotEqual(r.status, 200, "an explain body may not name a replay identity")
        self.assertEqual(r.json()["error"]["code"], "bad_request")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class ReplayRedis(Replay):
    """The same, recorded on a real redis-server (buckets refill on Redis
    TIME; replay decides on the recorded local times)."""

    def redis(self):
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)
        return redis

    def skew_ms(self, redis):
        """|Redis TIME - the local clock|, measured (the same machine here;
        in production the replicas' NTP and Redis' own)."""
        with redis.client() as c:
            t0 = time.time()
            s, us = c.call("TIME")
            t1 = time.time()
        return abs(int(s) + int(us) / 1e6 - (t0 + t1) / 2) * 1000 + (t1 - t0) * 1000

    def test_same_config_same_verdicts_redis(self):
        redis = self.redis()
        tg = self.recorded([redis.addr])[0]
        skew = self.skew_ms(redis)
        # a verdict can only move when a refill boundary (every 12 s here)
        # falls inside the skew; measured, then the verdicts must all match
        sys.stderr.write("[redis TIME vs local clock: %.3f ms, refill every %d ms] "
                         % (skew, 60000 // PER_CLIENT))
        self.assertLess(skew, 60000 / PER_CLIENT / 10, "Redis TIME vs local clock: %r ms" % skew)
        rc, rep = self.replay_json(tg, tg.config_path, [tg.audit_path])
        self.assertEqual(rc, 0)
        self.assert_same(rep)

    def test_three_replicas_one_redis(self):
        redis = self.redis()
        self.check_three(self.recorded([redis.addr], replicas=3))

    def check_three(self, tgs):
        logs = [tg.audit_path for tg in tgs]
        rc, rep = self.replay_json(tgs[0], tgs[0].config_path, logs)
        self.assertEqual(rc, 0)
        self.assertEqual(rep["lines"], LINES)
        self.assertEqual(rep["recorded"], rep["replayed"])
        for lim in rep["limits"]:
            self.assertEqual(lim["diff"], 0, lim)
        sys.stderr.write("[3 replicas: %d of %d verdicts changed] " % (rep["changed"], LINES))
        # a changed verdict can only be one of two requests of one client
        # decided in the same ms on two replicas: the logs cannot order them
        recs = {}
        for tg in tgs:
            for r in tg.audit():
                if "kind" not in r:
                    recs[r["request_id"]] = r
        for m in rep["mismatches"]:
            r = recs[m["request_id"]]
            twins = [o for o in recs.values() if o is not r and
                     o["decided_ms"] == r["decided_ms"] and o["client_id"] == r["client_id"]]
            self.assertTrue(twins, m)

    # the cases that do not depend on the backend run once (in Replay)
    test_tightened_config = None
    test_not_exactly_replayable = None
    test_bad_input = None
    test_live_listener_ignores_replay_identity = None
    test_audit_line_says_why = None
    test_same_config_same_verdicts_memory = None


@unittest.skipUnless(HAVE_REDIS and rh is not None and rh.have_redis(),
                     "redis-server / redis-cli not installed")
class ReplayCluster(TollgateCase, ReplayRun):
    """Recorded by three replicas sharing the buckets on the real 6-node
    cluster: the merged logs replay to the recorded totals."""
    shared_server = False
    recorded = Replay.recorded
    check_three = ReplayRedis.check_three

    @classmethod
    def setUpClass(cls):
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_three_replicas_on_cluster(self):
        self.check_three(self.recorded(self.cluster.seeds, replicas=3, mode="cluster"))


if __name__ == "__main__":
    unittest.main()
