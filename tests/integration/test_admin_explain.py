"""POST /admin/v1/explain (docs/reference.md §4 "Explain") through the real admin API:
a request explained by one dry run of the decision core — the route, the
authentication, the scopes, every limit with its bucket key and tokens, the
decision — consuming nothing; the key taken from the answer reads that very
bucket through GET /admin/v1/buckets on the memory backend and on a real
redis-server; refused bodies; and the buckets API refusing keys no request
could spell (a decoded %7C, a wrong `by` shape, a bad escape)."""
import json
import shutil
import time
import unittest
import urllib.parse

from harness import (TollgateCase, api_key, make_jwt, standard_config, unique,
                     wait_for)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None
HAVE_CLUSTER = rh is not None and rh.have_redis()

JSON = {"Content-Type": "application/json"}


def bucket_query(limit, key):
    return "/admin/v1/buckets?" + urllib.parse.urlencode({"limit": limit, "key": key})


def limited(client, bucket):
    return dict(api_key(client), **{"X-Test-Bucket": bucket})


def limit_of(answer, name):
    for lim in answer["limits"] or ():
        if lim["name"] == name:
            return lim
    raise AssertionError("no limit %s in %r" % (name, answer))


class ExplainMixin:
    def explain(self, obj, tg=None, status=200):
        r = (tg or self.tg).admin("POST", "/admin/v1/explain", JSON,
                                  json.dumps(obj).encode())
        self.assertEqual(r.status, status, r)
        return r

    def explained(self, obj, tg=None):
        return self.explain(obj, tg).json()

    def round_trip(self, tg, headers, path="/auth/limited/x"):
        """One real request; explain the next; feed explain's key to the
        buckets API, both as the key (URL-encoded by the test) and as the
        ready URL the answer gives: the same bucket, the same tokens."""
        self.assertEqual(tg.get(path, headers).status, 200)
        ans = self.explained({"method": "GET", "path": path, "headers": headers}, tg)
        lim = limit_of(ans, "tight")
        # now: in the bucket; remaining: after this request (X-RateLimit-Remaining)
        self.assertEqual((lim["tokens"]["now"], lim["tokens"]["remaining"]), (2, 1), lim)
        for q in (bucket_query("tight", lim["key"]), lim["buckets"]):
            r = tg.admin("GET", q)
            self.assertEqual(r.status, 200, r)
            b = r.json()
            self.assertEqual(b["key"], lim["key"])
            self.assertIs(b["exists"], True, b)
            self.assertEqual(b["state"], "present")
            self.assertEqual(b["tokens"], 2, b)
        return lim


class Explain(ExplainMixin, TollgateCase):
    """The memory backend, the forward-auth config of most tests."""
    configure = staticmethod(standard_config)

    def test_denied_request_explained(self):
        h = limited("bob", unique("ex"))
        for _ in range(3):
            self.assertEqual(self.tg.get("/auth/limited/x", h).status, 200)
        ans = self.explained({"method": "GET", "path": "/auth/limited/x", "headers": h})
        d = ans["decision"]
        self.assertEqual((d["status"], d["reason"], d["limit"]), (429, "rate_limited", "tight"))
        lim = limit_of(ans, "tight")
        self.assertEqual(lim["mode"], "enforce")
        self.assertEqual(lim["outcome"], "deny")
        self.assertEqual(lim["key"], "c=k:bob|h:x-test-bucket=" + h["X-Test-Bucket"])
        self.assertEqual(lim["tokens"]["remaining"], 0)
        self.assertEqual(lim["tokens"]["limit"], 3)
        self.assertTrue(1 <= lim["tokens"]["retry_after_seconds"] <= 20, lim)
        hdrs = dict(d["headers"])
        self.assertEqual(hdrs["X-RateLimit-Remaining"], "0")
        self.assertEqual(hdrs["Retry-After"], str(lim["tokens"]["retry_after_seconds"]))
        self.assertEqual(ans["authentication"]["reason"], "ok")
        self.assertEqual(ans["authentication"]["identity"]["client_id"], "bob")
        # the real next request agrees
        self.assertEqual(self.tg.get("/auth/limited/x", h).status, 429)

    def test_shadow_limit_would_deny(self):
        h = limited("bob", unique("sh"))
        self.assertEqual(self.tg.get("/auth/shadow/x", h).status, 200)
        ans = self.explained({"method": "GET", "path": "/auth/shadow/x", "headers": h})
        lim = limit_of(ans, "shadowed")
        self.assertEqual((lim["mode"], lim["outcome"]), ("shadow", "deny"))
        self.assertEqual(ans["decision"]["status"], 200)
        self.assertEqual(ans["decision"]["reason"], "shadow_rate_limited")

    def test_scope_denial(self):
        ans = self.explained({"method": "POST", "path": "/auth/orders/admin/1",
                              "headers": api_key("bob")})
        self.assertEqual(ans["route"]["name"], "orders-admin")
        self.assertEqual(ans["decision"]["status"], 403)
        ans = self.explained({"method": "POST", "path": "/auth/nowhere/1",
                              "headers": api_key("bob")})
        self.assertEqual(ans["route"]["name"], "default")  # forward-auth: default_route
        ans = self.explained({"method": "POST", "path": "/orders/admin/1",
                              "dialect": "envoy", "headers": api_key("bob")})
        self.assertEqual(ans["route"]["name"], "orders-admin")
        self.assertEqual(ans["scopes"], {"required": ["orders:write"],
                                         "held": ["orders:read"], "ok": False})
        self.assertEqual((ans["decision"]["status"], ans["decision"]["reason"]),
                         (403, "insufficient_scope"))
        self.assertIsNone(ans["limits"])  # the decision ended before the limits
        ans = self.explained({"method": "POST", "path": "/orders/admin/1",
                              "dialect": "envoy", "headers": api_key("alice")})
        self.assertIs(ans["scopes"]["ok"], True)
        self.assertEqual(ans["decision"]["status"], 200)

    def test_authentication_failures(self):
        ans = self.explained({"method": "GET", "path": "/auth/orders/1",
                              "headers": {"X-API-Key": "not-a-key"}})
        self.assertEqual(ans["authentication"]["method"], "api_key")
        self.assertEqual(ans["authentication"]["reason"], "invalid_api_key")
        self.assertNotIn("identity", ans["authentication"])
        self.assertEqual(ans["decision"]["status"], 401)
        tok = make_jwt({"sub": "erin", "exp": int(time.time()) - 3600})
        ans = self.explained({"method": "GET", "path": "/auth/orders/1",
                              "headers": [["Authorization", "Bearer " + tok]]})
        self.assertEqual(ans["authentication"]["method"], "jwt")
        self.assertEqual(ans["authentication"]["reason"], "expired")
        ans = self.explained({"method": "GET", "path": "/auth/orders/1"})
        self.assertEqual(ans["authentication"]["reason"], "missing_credentials")
        ans = self.explained({"method": "GET", "path": "/auth/public/1"})
        self.assertEqual(ans["authentication"]["reason"], "not_required")
        ans = self.explained({"method": "GET", "path": "/auth/maybe/1"})
        self.assertEqual(ans["authentication"]["reason"], "anonymous")
        self.assertEqual(ans["decision"]["status"], 200)

    def test_as_client(self):
        bucket = unique("as")
        for _ in range(2):
            self.tg.get("/auth/limited/x", limited("bob", bucket))
        ans = self.explained({"method": "GET", "path": "/limited/x", "dialect": "nginx",
                              "host": "app.example.com", "as_client": "bob",
                              "headers": {"X-Test-Bucket": bucket}})
        a = ans["authentication"]
        self.assertEqual((a["method"], a["reason"], a["as_client"]), ("api_key", "ok", True))
        self.assertEqual(a["identity"]["client_id"], "bob")
        self.assertEqual(limit_of(ans, "tight")["tokens"]["remaining"], 0)
        self.assertEqual(ans["request"]["host"], "app.example.com")
        ans = self.explained({"method": "GET", "path": "/auth/orders/1",
                              "as_client": "nobody"})
        self.assertEqual(ans["authentication"]["reason"], "invalid_api_key")
        r = self.explain({"method": "GET", "path": "/auth/orders/1", "as_client": "bob",
                          "headers": api_key("bob")}, status=400)
        self.assertIn("give one", r.json()["error"]["message"])

    def test_explain_consumes_nothing(self):
        h = limited("carol", unique("nc"))
        for _ in range(10):
            ans = self.explained({"method": "GET", "path": "/auth/limited/x", "headers": h})
            self.assertEqual(limit_of(ans, "tight")["tokens"]["remaining"], 2)
        seen = [self.tg.get("/auth/limited/x", h) for _ in range(4)]
        self.assertEqual([r.status for r in seen], [200, 200, 200, 429])
        self.assertEqual([r.header("X-RateLimit-Remaining") for r in seen[:3]],
                         ["2", "1", "0"])

    def test_key_round_trips_memory(self):
        self.round_trip(self.tg, limited("bob", unique("rt")))

    def test_jwt_key_with_escapes_round_trips(self):
        """A JWT client's identity holds %3A, %2F and %7C (iss|sub): the key
        from explain, URL-encoded once, finds the bucket; the same key sent
        unencoded (its %7C decoded to '|') is refused, never read as full."""
        tok = make_jwt({"sub": "erin-" + unique()})
        h = {"Authorization": "Bearer " + tok, "X-Test-Bucket": unique("jw")}
        lim = self.round_trip(self.tg, h)
        self.assertIn("%7C", lim["key"])
        self.assertTrue(lim["key"].startswith("c=j:https:%2F%2Fissuer.test%7Cerin-"),
                        lim["key"])
        raw = "/admin/v1/buckets?limit=tight&key=" + lim["key"]
        body = self.assertEnvelope(self.tg.admin("GET", raw), 400, "bad_request")
        self.assertIn("part", body["error"]["message"])

    def test_refused_bodies(self):
        secret = "sekrit-" + unique()
        for body, why in (
                (b"{", "invalid JSON (line 1, column 1)"),
                (b"[]", "the body must be a JSON object"),
                (b'{"path":"/x"}', "method and path are required"),
                (b'{"method":"get","path":"/x"}', "method: an upper-case method name"),
                (b'{"method":"GET","path":"x"}', "path: a string starting with '/'"),
                (b'{"method":"GET","path":"/x","extra":1}', 'unknown field "extra"'),
                (b'{"method":"GET","path":"/x","method":"GET"}', "invalid JSON"),
                (b'{"method":"GET","path":"/x","peer":"nope"}', "peer: an IPv4"),
                (b'{"method":"GET","path":"/x","dialect":"apache"}', "dialect:"),
                (b'{"method":"GET","path":"/x","headers":{"X-A":"a\\r\\nb"}}',
                 "headers: a value must have no control byte"),
                (b'{"method":"GET","path":"/x","headers":[["X-A"]]}', "[name, value]"),
                (('{"method":"GET","path":"/x","headers":{"X-API-Key":"%s","Bad Name":"v"}}'
                  % secret).encode(), "headers: a name must be an HTTP token")):
            with self.subTest(body=body[:60]):
                r = self.tg.admin("POST", "/admin/v1/explain", JSON, body)
                env = self.assertEnvelope(r, 400, "bad_request")
                self.assertIn(why, env["error"]["message"])
                self.assertNotIn(secret, r.body.decode())
        many = {"headers": [["X-H%d" % i, "v"] for i in range(101)], "method": "GET",
                "path": "/x"}
        env = self.assertEnvelope(self.tg.admin("POST", "/admin/v1/explain", JSON,
                                                json.dumps(many).encode()), 400, "bad_request")
        self.assertEqual(env["error"]["message"], "headers: more than 100")
        # over the admin listener's 64 KiB body cap: refused before it is read
        big = b'{"method":"GET","path":"/x","host":"' + b"a" * 70000 + b'"}'
        self.assertEqual(self.tg.admin("POST", "/admin/v1/explain", JSON, big).status, 413)
        # only POST, only with the admin token
        self.assertEnvelope(self.tg.admin("GET", "/admin/v1/explain"), 404, "not_found")
        self.assertEnvelope(self.tg.admin("POST", "/admin/v1/explain", JSON, b"{}", token=None),
                            401, "unauthorized")
        self.assertNotIn(secret, self.tg.stderr())
        self.assertServing()

    def test_buckets_refuse_impossible_keys(self):
        for key, why in (
                ("c=k:bob", "key has 1 '|'-separated part(s); limit tight is keyed by 2"),
                ("ip=10.0.0.7|h:x-test-bucket=a", 'key part 1 must start with "c="'),
                ("c=k:bob|h:x-other=a", 'key part 2 must start with "h:x-test-bucket="'),
                ("c=j:https%3A%2F%2Fissuer.test|erin|h:x-test-bucket=a", "3 '|'"),
                ("c=k:b%zzob|h:x-test-bucket=a", "not a %XX escape"),
                ("c=k:b%6Fb|h:x-test-bucket=a", "spelled as itself"),
                ("c=k:bob|h:x-test-bucket=a b", "not a %XX escape"),
                ("c=k:bob|h:x-test-bucket=" + "a" * 97, "longer than a spelled value")):
            for method in ("GET", "DELETE"):
                with self.subTest(key=key, method=method):
                    body = self.assertEnvelope(self.tg.admin(method, bucket_query("tight", key)),
                                               400, "bad_request")
                    self.assertIn(why, body["error"]["message"])
        ok = bucket_query("tight", "c=-|h:x-test-bucket=%2D")
        self.assertEqual(self.tg.admin("GET", ok).json()["state"], "absent (full)")


class ExplainLockout(ExplainMixin, TollgateCase):
    """Failures explained are never counted: the lockout does not advance."""

    @staticmethod
    def configure(cfg):
        standard_config(cfg)
        cfg["auth"]["lockout"] = {"max_failures": 2, "window": "1m", "base_backoff": "30s",
                                  "max_backoff": "1m"}
        return cfg

    def test_failures_not_counted(self):
        for _ in range(5):
            ans = self.explained({"method": "GET", "path": "/auth/orders/1",
                                  "peer": "127.0.0.1", "headers": {"X-API-Key": "wrong"}})
            self.assertEqual(ans["authentication"]["reason"], "invalid_api_key")
        self.assertEqual(self.tg.get("/auth/orders/1", api_key("bob")).status, 200)
        # real failures do lock out: the explain then says so
        for _ in range(2):
            self.assertEqual(self.tg.get("/auth/orders/1", {"X-API-Key": "wrong"}).status, 401)
        ans = self.explained({"method": "GET", "path": "/auth/orders/1", "peer": "127.0.0.1",
                              "headers": api_key("bob")})
        self.assertEqual(ans["decision"]["reason"], "locked_out")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class ExplainRedis(ExplainMixin, TollgateCase):
    """Two replicas on a real redis-server: explain on either reads the
    shared bucket, and its key reads it through the buckets API."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)

    def replicas(self, mode="standalone", nodes=None):
        def conf(cfg):
            standard_config(cfg)
            cfg["redis"] = {"mode": mode, "nodes": nodes or [self.redis.addr],
                            "timeout_ms": 500}
            cfg["expected_replicas"] = 3
            for lim in cfg["limits"]:
                lim["on_redis_error"] = "closed"
            return cfg
        tgs = [self.spawn(conf) for _ in range(3)]
        for tg in tgs:
            wait_for(lambda: tg.readyz()[1]["redis"] == "ok", 5, 0.05)
        return tgs

    def shared_round_trip(self, tgs, tag):
        """A real request on one replica, explained on the next, its bucket
        read on the third; explains spent nothing of the shared bucket."""
        a, b, c = tgs
        h = limited("bob", unique(tag))
        self.round_trip(a, h)
        lim = limit_of(self.explained({"method": "GET", "path": "/auth/limited/x",
                                       "headers": h}, b), "tight")
        self.assertEqual((lim["tokens"]["now"], lim["fallback"]), (2, False))
        r = c.admin("GET", lim["buckets"]).json()
        self.assertEqual((r["exists"], r["tokens"]), (True, 2))
        seen = [t.get("/auth/limited/x", h).status for t in (a, b, c)]
        self.assertEqual(seen, [200, 200, 429])

    def test_key_round_trips_redis(self):
        tgs = self.replicas()
        self.shared_round_trip(tgs, "rr")
        keys = self.redis.client().call("KEYS", "*")
        self.assertTrue(any(b":b:tight" in k for k in keys), keys)

    def test_jwt_key_round_trips_redis(self):
        a, _, _ = self.replicas()
        tok = make_jwt({"sub": "erin-" + unique()})
        self.round_trip(a, {"Authorization": "Bearer " + tok,
                            "X-Test-Bucket": unique("rj")})
        absent = bucket_query("tight", "c=k:nobody|h:x-test-bucket=" + unique())
        r = a.admin("GET", absent).json()
        self.assertEqual((r["exists"], r["state"], r["tokens"]), (False, "absent (full)", 3))


@unittest.skipUnless(HAVE_CLUSTER, "redis-server / redis-cli not installed")
class ExplainCluster(ExplainRedis):
    """Three replicas on the real 6-node Redis Cluster: identities on
    different slots (primaries), each explained and read on other replicas."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_key_round_trips_redis(self):
        tgs = self.replicas("cluster", self.cluster.seeds[:1])
        for i in range(5):  # identities hash to different slots
            self.shared_round_trip(tgs, "cl%d-" % i)

    def test_jwt_key_round_trips_redis(self):
        a, _, _ = self.replicas("cluster", self.cluster.seeds[:1])
        tok = make_jwt({"sub": "erin-" + unique()})
        self.round_trip(a, {"Authorization": "Bearer " + tok,
                            "X-Test-Bucket": unique("cj")})


if __name__ == "__main__":
    unittest.main()
