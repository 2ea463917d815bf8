"""Admin tokens with ids and scopes, and the trail of privileged actions
(server/admin.c, server/trail.c; docs/reference.md "Admin tokens" and "Admin
trail"): read vs write tokens on every admin endpoint, 401/403 envelopes,
the token's id (never its bytes) in the local audit log and in the fleet's
Redis stream, reloads by POST, SIGHUP and file watch with the versions before
and after, GET /admin/v1/audit from another replica, and Redis down."""
import json
import os
import shutil
import signal
import unittest
import urllib.parse

from harness import (TollgateCase, ADMIN_TOKEN, api_key, make_jwt, metric, raw_request,
                     standard_config, unique, wait_for)
from faultproxy import FaultProxy

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None

JSON = {"Content-Type": "application/json"}
READ_TOKEN = "sre-dashboard-read-token-0123456789abcdef"
WRITE_TOKEN = "ci-deploy-write-token-0123456789abcdef01"
SECRETS = (READ_TOKEN, WRITE_TOKEN, ADMIN_TOKEN)


def tokens_file(tmp, extra=""):
    path = os.path.join(tmp, "admin-tokens")
    with open(path + ".new", "w") as f:
        f.write("# id scope token\nsre-dashboard read %s\nci-deploy write %s\n%s"
                % (READ_TOKEN, WRITE_TOKEN, extra))
    os.replace(path + ".new", path)
    return path


def with_tokens(cfg, tmp=None):
    standard_config(cfg)
    # the harness's tmp is the directory of the audit log
    tmp = tmp or os.path.dirname(cfg["audit"]["path"])
    cfg["admin_tokens_file"] = tokens_file(tmp)
    return cfg


def bucket_query(limit, key):
    return "/admin/v1/buckets?" + urllib.parse.urlencode({"limit": limit, "key": key})


# method, path, body, needs write
ENDPOINTS = [
    ("GET", "/admin/v1/config", None, False),
    ("POST", "/admin/v1/explain", {"path": "/orders/1"}, False),
    ("GET", "/admin/v1/limits/tight/top", None, False),
    ("GET", bucket_query("tight", "c=k:scope-probe|h:x-test-bucket=-"), None, False),
    ("GET", "/admin/v1/revocations/some-jti", None, False),
    ("GET", "/admin/v1/audit", None, False),
    ("DELETE", bucket_query("tight", "c=k:scope-probe|h:x-test-bucket=-"), None, True),
    ("POST", "/admin/v1/reload", None, True),
    ("POST", "/admin/v1/revocations", {"jti": "scope-probe", "exp": 4102444800}, True),
    ("POST", "/admin/v1/revocations/subject", {"sub": "scope-probe"}, True),
    ("GET", "/admin/v1/revocations?kind=jti", None, False),
    ("GET", "/admin/v1/revocations/subject/scope-probe?iss=x", None, False),
    ("DELETE", "/admin/v1/revocations/scope-probe", None, True),
    ("DELETE", "/admin/v1/revocations/subject/scope-probe", None, True),
]


def admin_lines(tg):
    return [r for r in tg.audit() if r.get("kind") == "admin"]


def wait_admin_line(tg, pred, timeout=5.0):
    rec = wait_for(lambda: next((r for r in admin_lines(tg) if pred(r)), None), timeout)
    if rec is None:
        raise AssertionError("no such admin line in:\n%s" % tg.audit_raw()[-3000:])
    return rec


class AdminScopes(TollgateCase):
    """Memory backend, ADMIN_TOKEN plus a tokens file of one read and one
    write token."""
    configure = staticmethod(with_tokens)

    def call(self, method, path, body, token):
        data = json.dumps(body).encode() if body is not None else None
        return self.tg.admin(method, path, JSON if data else None, data, token=token)

    def test_scope_table(self):
        for method, path, body, write in ENDPOINTS:
            with self.subTest(method=method, path=path):
                r = self.call(method, path, body, READ_TOKEN)
                if write:
                    self.assertEnvelope(r, 403, "insufficient_scope")
                    self.assertIn('error="insufficient_scope"',
                                  r.header("WWW-Authenticate", ""))
                else:
                    self.assertNotIn(r.status, (401, 403), r)
                for tok in (WRITE_TOKEN, ADMIN_TOKEN):
                    r = self.call(method, path, body, tok)
                    self.assertNotIn(r.status, (401, 403), r)
                for tok in (None, "wrong", READ_TOKEN[:-1], READ_TOKEN + "x",
                            "sre-dashboard"):
                    r = self.call(method, path, body, tok)
                    self.assertEnvelope(r, 401, "unauthorized")
                    self.assertIn("Bearer", r.header("WWW-Authenticate", ""))

    def test_explain_with_a_credential_needs_write(self):
        """Explaining a request that carries a credential says whether the
        credential is good, with no failure counted (a dry run): a read
        token would make a credential-testing service of it.  A read token
        names the client with as_client instead."""
        keyed = {"method": "GET", "path": "/orders/1", "headers": api_key("bob")}
        for body in (keyed,
                     {"method": "GET", "path": "/orders/1",
                      "headers": {"Authorization": "Bearer x.y.z"}},
                     {"method": "GET", "path": "/orders/1?a=1&ticket=abc"}):
            with self.subTest(body=list(body.get("headers", {"path": body["path"]}))):
                r = self.call("POST", "/admin/v1/explain", body, READ_TOKEN)
                self.assertEnvelope(r, 403, "insufficient_scope")
                self.assertIn("as_client", r.json()["error"]["message"])
                self.assertNotIn(api_key("bob")["X-API-Key"].encode(), r.body)
        r = self.call("POST", "/admin/v1/explain", keyed, WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        r = self.call("POST", "/admin/v1/explain",
                      {"method": "GET", "path": "/orders/1", "as_client": "bob"}, READ_TOKEN)
        self.assertEqual(r.status, 200, r)

    def test_refused_write_changes_nothing_and_is_trailed(self):
        sub = unique("scope-sub")
        r = self.call("POST", "/admin/v1/revocations/subject", {"sub": sub}, READ_TOKEN)
        self.assertEnvelope(r, 403, "insufficient_scope")
        rec = wait_admin_line(self.tg, lambda x: x["action"] == "revoke_subject"
                              and x["actor"] == "sre-dashboard")
        self.assertEqual((rec["result"], rec["status"], rec["code"]),
                         ("refused", 403, "insufficient_scope"))
        # nothing was revoked: a token of that subject still passes
        tok = make_jwt({"sub": sub, "jti": unique("jti"), "scope": "orders:read"})
        self.assertEqual(self.tg.get("/auth/orders/1",
                                     {"Authorization": "Bearer " + tok}).status, 200)

    def test_actions_trailed_by_id_never_token(self):
        bucket = unique("tb")
        h = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        self.assertEqual(self.tg.get("/auth/limited/x", h).status, 200)
        key = "c=k:bob|h:x-test-bucket=%s" % bucket
        r = self.tg.admin("DELETE", bucket_query("tight", key), token=WRITE_TOKEN,
                          headers={"X-Request-ID": "trail-reset-1"})
        self.assertEqual(r.status, 200, r)
        rec = wait_admin_line(self.tg, lambda x: x.get("request_id") == "trail-reset-1")
        self.assertEqual(rec["action"], "bucket_reset")
        self.assertEqual(rec["actor"], "ci-deploy")
        self.assertEqual(rec["result"], "ok")
        self.assertEqual(rec["status"], 200)
        self.assertIn(bucket, rec["target"])
        self.assertRegex(rec["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(rec["replica"])
        jti = unique("jti")
        r = self.call("POST", "/admin/v1/revocations", {"jti": jti, "exp": 4102444800},
                      ADMIN_TOKEN)
        self.assertEqual(r.status, 200, r)
        rec = wait_admin_line(self.tg, lambda x: x.get("target") == jti)
        self.assertEqual((rec["action"], rec["actor"], rec["result"]),
                         ("revoke_jti", "admin", "ok"))
        # a bad body: refused, trailed, nothing revoked
        r = self.call("POST", "/admin/v1/revocations", {"jti": "x"}, WRITE_TOKEN)
        self.assertEnvelope(r, 400, "bad_request")
        wait_admin_line(self.tg, lambda x: x["action"] == "revoke_jti"
                        and x["result"] == "refused" and x["code"] == "bad_request")
        # request lines keep their format: no `kind`
        self.assertTrue(wait_for(lambda: any("kind" not in x and x.get("decision")
                                             for x in self.tg.audit()), 3.0))
        raw = self.tg.audit_raw() + self.tg.stderr().encode() + self.tg.stdout().encode()
        for secret in SECRETS:
            self.assertNotIn(secret.encode(), raw)
        text = self.tg.metrics()
        self.assertGreaterEqual(metric(text, "tollgate_admin_actions_total",
                                       action="bucket_reset", result="ok") or 0, 1)
        self.assertGreaterEqual(metric(text, "tollgate_admin_actions_total",
                                       action="revoke_jti", result="refused") or 0, 1)

    def test_audit_without_redis_is_503(self):
        r = self.tg.admin("GET", "/admin/v1/audit", token=READ_TOKEN)
        body = self.assertEnvelope(r, 503, "unavailable")
        self.assertIn("local audit log", body["error"]["message"])
        for q in ("since=x", "since=1-2-3", "limit=0", "limit=1001", "limit=abc"):
            r = self.tg.admin("GET", "/admin/v1/audit?" + q, token=READ_TOKEN)
            self.assertEnvelope(r, 400, "bad_request")


class AdminReloadTrail(TollgateCase):
    """Reloads however triggered: POST, SIGHUP, file watch, a bad config,
    and the tokens file itself."""
    shared_server = False

    def test_reloads_recorded_with_versions(self):
        tg = self.spawn(with_tokens)
        _, ready = tg.readyz()
        v0 = ready["config_version"]
        # POST by a write token, nothing changed: before == after
        r = tg.admin("POST", "/admin/v1/reload", token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        rec = wait_admin_line(tg, lambda x: x["action"] == "reload")
        self.assertEqual((rec["actor"], rec["result"], rec["status"]), ("ci-deploy", "ok", 200))
        self.assertEqual(rec["config_version_before"], v0)
        self.assertEqual(rec["config_version_after"], v0)
        self.assertRegex(rec["secrets_version_before"], r"^[0-9a-f]{16}$")
        # SIGHUP after a change: signal, before != after
        tg.config["limits"][0]["rate"] = "999/minute"
        tg.write_config()
        n = len(admin_lines(tg))
        tg.signal(signal.SIGHUP)
        rec = wait_admin_line(tg, lambda x: x["action"] == "reload" and x["actor"] in
                              ("signal", "watch") and admin_lines(tg).index(x) >= n)
        self.assertEqual(rec["config_version_before"], v0)
        self.assertNotEqual(rec["config_version_after"], v0)
        self.assertIsNone(rec["status"])
        v1 = rec["config_version_after"]
        # the watch sees a new tokens file: secrets_version moves, the new
        # token works at once after
        new_tok = "oncall-write-token-0123456789abcdef0123"
        tokens_file(tg.tmp, "oncall write %s\n" % new_tok)
        rec = wait_admin_line(tg, lambda x: x["action"] == "reload" and x["actor"] == "watch"
                              and x["secrets_version_before"] != x["secrets_version_after"],
                              timeout=10.0)
        self.assertEqual(rec["config_version_after"], rec["config_version_before"])
        r = tg.admin("DELETE", bucket_query("tight", "c=k:x|h:x-test-bucket=-"), token=new_tok)
        self.assertEqual(r.status, 200, r)
        wait_admin_line(tg, lambda x: x["actor"] == "oncall" and x["action"] == "bucket_reset")
        # a bad config: refused, recorded, the old one stays
        tg.write_config("limits: [oops\n")
        r = tg.admin("POST", "/admin/v1/reload", token=ADMIN_TOKEN)
        self.assertEnvelope(r, 422, "config_invalid")
        rec = wait_admin_line(tg, lambda x: x["action"] == "reload" and
                              x["result"] == "refused" and x["actor"] == "admin")
        self.assertEqual(rec["code"], "config_invalid")
        self.assertEqual(rec["config_version_before"], rec["config_version_after"])
        self.assertEqual(rec["config_version_before"], v1)
        raw = tg.audit_raw() + tg.stderr().encode()
        for secret in SECRETS + (new_tok,):
            self.assertNotIn(secret.encode(), raw)

    def test_audit_off_goes_to_the_log(self):
        def configure(cfg):
            with_tokens(cfg)
            cfg["audit"]["path"] = "off"
            return cfg
        tg = self.spawn(configure)
        r = tg.admin("DELETE", bucket_query("tight", "c=k:off-probe|h:x-test-bucket=-"), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(wait_for(lambda: "admin trail: bucket_reset limit=tight key=c=k:off-probe|h:x-test-bucket=- "
                                 "by ci-deploy: ok" in tg.stderr(), 5.0), tg.stderr()[-2000:])
        self.assertNotIn(WRITE_TOKEN, tg.stderr() + tg.stdout())

    def test_bucket_reset_target_hides_credential_header(self):
        # A limit keyed by a credential header spells the credential into
        # its bucket key; the trail (audit log, Redis stream, GET
        # /admin/v1/audit for read tokens) must not repeat it: the value is
        # written '*' as in the top lists.
        def configure(cfg):
            with_tokens(cfg)
            cfg["limits"].append({"name": "per-session",
                                  "match": {"path_prefix": "/sess/"},
                                  "by": ["header:X-Session-Token", "header:X-Test-Bucket"],
                                  "rate": "3/minute"})
            return cfg
        tg = self.spawn(configure)
        secret = unique("sessval")
        key = "h:x-session-token=%s|h:x-test-bucket=plain-part" % secret
        r = tg.admin("DELETE", bucket_query("per-session", key), token=WRITE_TOKEN,
                     headers={"X-Request-ID": "trail-redact-1"})
        self.assertEqual(r.status, 200, r)
        rec = wait_admin_line(tg, lambda x: x.get("request_id") == "trail-redact-1")
        self.assertEqual(rec["target"],
                         "limit=per-session key=h:x-session-token=*|h:x-test-bucket=plain-part")
        self.assertNotIn(secret.encode(), tg.audit_raw() + tg.stderr().encode())
        # a key no request could spell is refused, and that refusal of a
        # write is trailed like every other 400 of a bucket reset
        r = tg.admin("DELETE", bucket_query("per-session", "c=k:x"), token=WRITE_TOKEN,
                     headers={"X-Request-ID": "trail-redact-400"})
        self.assertEnvelope(r, 400, "bad_request")
        rec = wait_admin_line(tg, lambda x: x.get("request_id") == "trail-redact-400")
        self.assertEqual((rec["action"], rec["result"], rec["code"], rec["target"]),
                         ("bucket_reset", "refused", "bad_request", None))

    def test_short_token_refused_in_production(self):
        def configure(cfg):
            with_tokens(cfg)
            cfg["environment"] = "production"
            return cfg
        tg = self.spawn(configure, env={"ADMIN_TOKEN": "short-admin-token"}, start=False)
        r = tg.run_cli("--config", tg.config_path, "--check-config")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("admin token admin is 17 bytes; production needs at least 32", r.stderr)
        self.assertNotIn("short-admin-token", r.stderr + r.stdout)


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class AdminTrailFleet(TollgateCase):
    """Two replicas on one real redis-server: the trail is one stream."""
    shared_server = False

    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def configure(self, cfg):
        with_tokens(cfg)
        cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 200}
        for lim in cfg["limits"]:
            lim["on_redis_error"] = "local"
        return cfg

    def audit_page(self, tg, query=""):
        r = tg.admin("GET", "/admin/v1/audit" + query, token=READ_TOKEN)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_bucket_reset_in_redis_hides_credential_header(self):
        # as AdminReloadTrail's memory case, on the Redis path: the stream a
        # read token pages through, the local line and the operator log
        def configure(cfg):
            self.configure(cfg)
            cfg["limits"].append({"name": "per-session",
                                  "match": {"path_prefix": "/public/sess/"},
                                  "by": ["header:X-Session-Token"], "rate": "3/minute"})
            return cfg
        tg = self.spawn(configure)
        secret = unique("sessval")
        self.assertEqual(tg.get("/auth/public/sess/x", {"X-Session-Token": secret}).status, 200)
        r = tg.admin("DELETE", bucket_query("per-session", "h:x-session-token=" + secret),
                     token=WRITE_TOKEN, headers={"X-Request-ID": "trail-redact-2"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["reset"], r)
        want = "limit=per-session key=h:x-session-token=*"
        e = wait_for(lambda: next((x for x in self.audit_page(tg)["entries"]
                                   if x.get("request_id") == "trail-redact-2"), None), 5.0)
        self.assertIsNotNone(e)
        self.assertEqual(e["target"], want)
        rec = wait_admin_line(tg, lambda x: x.get("request_id") == "trail-redact-2")
        self.assertEqual(rec["target"], want)
        page = tg.admin("GET", "/admin/v1/audit", token=READ_TOKEN).body
        self.assertNotIn(secret.encode(), page + tg.audit_raw() + tg.stderr().encode())

    def test_action_on_a_read_on_b(self):
        a = self.spawn(self.configure)
        b = self.spawn(self.configure)
        jti = unique("fleet-jti")
        r = a.admin("POST", "/admin/v1/revocations", JSON,
                    json.dumps({"jti": jti, "exp": 4102444800}).encode(), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)

        def found():
            return next((e for e in self.audit_page(b)["entries"] if e.get("target") == jti),
                        None)
        e = wait_for(found, 5.0)
        self.assertIsNotNone(e, "the action on A never reached B's /admin/v1/audit")
        self.assertEqual((e["action"], e["actor"], e["result"], e["status"]),
                         ("revoke_jti", "ci-deploy", "ok", 200))
        self.assertRegex(e["id"], r"^\d+-\d+$")
        self.assertIsInstance(e["ts"], int)
        # B's own reload joins the same stream, after A's action
        self.assertEqual(b.admin("POST", "/admin/v1/reload", token=ADMIN_TOKEN).status, 200)
        e2 = wait_for(lambda: next((x for x in self.audit_page(b, "?since=" + e["id"])
                                    ["entries"] if x["action"] == "reload"), None), 5.0)
        self.assertIsNotNone(e2)
        self.assertEqual(e2["actor"], "admin")
        self.assertNotEqual(e2["replica"], "")
        self.assertTrue(e2["config_version_before"])
        # pages: limit=1 walks every entry once, oldest first, via `next`
        whole = self.audit_page(a)["entries"]
        walked, since = [], ""
        for _ in range(len(whole) + 2):
            page = self.audit_page(a, "?limit=1" + ("&since=" + since if since else ""))
            walked += page["entries"]
            if not page["entries"]:
                self.assertIsNone(page["next"])
                break
            since = page["next"]
        self.assertEqual([x["id"] for x in walked], [x["id"] for x in whole])
        # unix ms: inclusive from that time
        page = self.audit_page(a, "?since=%d" % e["ts"])
        self.assertIn(e["id"], [x["id"] for x in page["entries"]])
        # the stream itself holds ids, never a token's bytes
        with self.redis.client() as c:
            raw = json.dumps(c.call("XRANGE", "tg:{audit}:admin", "-", "+"),
                             default=lambda o: o.decode("latin-1")).encode()
        self.assertIn(b"ci-deploy", raw)
        for secret in SECRETS:
            self.assertNotIn(secret.encode(), raw)

    def test_stream_is_capped(self):
        def configure(cfg):
            self.configure(cfg)
            cfg["audit"]["admin_stream_max"] = 5
            return cfg
        tg = self.spawn(configure)
        for i in range(300):
            self.assertEqual(tg.admin("DELETE", bucket_query("tight", "c=k:cap%d|h:x-test-bucket=-" % i),
                                      token=WRITE_TOKEN).status, 200)
        text = wait_for(lambda: (lambda t: t if (metric(
            t, "tollgate_admin_trail_stream_writes_total", result="ok") or 0) >= 300
            else None)(tg.metrics()), 10.0)
        self.assertIsNotNone(text, "300 stream writes not all acknowledged")
        with self.redis.client() as c:
            n = c.call("XLEN", "tg:{audit}:admin")
        # MAXLEN ~ trims whole macro nodes (100 entries by default): bounded,
        # far below the 300 written
        self.assertLess(n, 300)
        self.assertGreaterEqual(n, 5)

    def test_client_leaves_while_xrange_is_pending(self):
        """The admin client goes away while its XRANGE waits on Redis: the
        late reply (or its timeout) answers nobody, nothing is used after
        free (ASan builds report it), and the next page is served."""
        proxy = FaultProxy(("127.0.0.1", self.redis.port)).start()
        self.addCleanup(proxy.close)

        def configure(cfg):
            self.configure(cfg)
            cfg["redis"]["nodes"] = [proxy.addr]
            cfg["redis"]["timeout_ms"] = 1000
            return cfg
        tg = self.spawn(configure)
        self.assertEqual(self.audit_page(tg)["entries"], [])
        for release in ("reply", "timeout"):
            with self.subTest(release=release):
                before = proxy.sent(b"XRANGE")
                proxy.mode = "hold"
                raw_request(tg.admin_port, b"GET /admin/v1/audit HTTP/1.1\r\nHost: a\r\n"
                            b"Authorization: Bearer " + READ_TOKEN.encode() + b"\r\n\r\n",
                            read=False)
                self.assertTrue(wait_for(lambda: proxy.sent(b"XRANGE") > before, 5.0))
                if release == "reply":
                    proxy.mode = "pass"
                else:  # the command times out first (its log line), then the reply flows
                    self.assertTrue(wait_for(lambda: tg.stderr().count("admin audit: redis")
                                             > 0, 5.0))
                    proxy.mode = "pass"
                page = wait_for(lambda: (lambda r: r.json() if r.status == 200 else None)(
                    tg.admin("GET", "/admin/v1/audit", token=READ_TOKEN)), 5.0)
                self.assertIsNotNone(page, "the audit endpoint did not recover")
                self.assertTrue(tg.alive())
                self.assertIsNone(tg.sanitizer_report())

    def test_redis_down(self):
        tg = self.spawn(self.configure)
        self.assertEqual(self.audit_page(tg)["entries"] is not None, True)
        before = metric(tg.metrics(), "tollgate_admin_trail_stream_writes_total",
                        result="failed") or 0
        self.redis.stop()
        r = tg.admin("POST", "/admin/v1/reload", token=WRITE_TOKEN,
                     headers={"X-Request-ID": "reload-redis-down"})
        self.assertEqual(r.status, 200, r)
        rec = wait_admin_line(tg, lambda x: x.get("request_id") == "reload-redis-down")
        self.assertEqual((rec["action"], rec["actor"], rec["result"]),
                         ("reload", "ci-deploy", "ok"))
        self.assertIsNotNone(wait_for(lambda: (metric(
            tg.metrics(), "tollgate_admin_trail_stream_writes_total", result="failed") or 0)
            > before, 5.0), "the failed stream write was not counted")
        r = tg.admin("GET", "/admin/v1/audit", token=READ_TOKEN)
        body = self.assertEnvelope(r, 503, "unavailable")
        self.assertIn("local audit log", body["error"]["message"])
        self.assertTrue(tg.alive())


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class AdminTrailCluster(TollgateCase):
    """Three replicas on a real 6-node Redis Cluster: the stream's one hash
    tag puts it in one slot; every replica writes and reads the same trail."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_three_replicas_one_trail(self):
        def configure(cfg):
            with_tokens(cfg)
            cfg["redis"] = {"mode": "cluster", "nodes": self.cluster.seeds, "timeout_ms": 500}
            for lim in cfg["limits"]:
                lim["on_redis_error"] = "local"
            return cfg
        tgs = [self.spawn(configure) for _ in range(3)]
        jtis = [unique("cl-jti") for _ in tgs]
        for tg, jti in zip(tgs, jtis):
            r = tg.admin("POST", "/admin/v1/revocations", JSON,
                         json.dumps({"jti": jti, "exp": 4102444800}).encode(), token=WRITE_TOKEN)
            self.assertEqual(r.status, 200, r)

        def all_seen(tg):
            r = tg.admin("GET", "/admin/v1/audit?limit=1000", token=READ_TOKEN)
            if r.status != 200:
                return None
            targets = [e.get("target") for e in r.json()["entries"]]
            return all(j in targets for j in jtis) and r.json()
        for tg in tgs:
            page = wait_for(lambda: all_seen(tg), 10.0)
            self.assertTrue(page, "a replica's /admin/v1/audit misses an action of another")
        replicas = {e["replica"] for e in page["entries"] if e.get("target") in jtis}
        self.assertEqual(len(replicas), 3, replicas)
        key = "tg:{audit}:admin"
        with self.cluster.client_for_key(key) as c:
            self.assertGreaterEqual(c.call("XLEN", key), 3)


if __name__ == "__main__":
    unittest.main()
