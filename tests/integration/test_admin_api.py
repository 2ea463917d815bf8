"""The admin API's answers in detail (server/admin.c): the bucket document on
the memory backend, every refusal with its envelope, revocation requests that
cannot be honoured, and what the bucket and revocation endpoints answer while
Redis is down.  test_admin.py covers the happy paths and the token."""
import json
import shutil
import unittest
import urllib.parse

from harness import (TollgateCase, api_key, bearer, make_jwt, standard_config, unique)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None

JSON = {"Content-Type": "application/json"}


def bucket_query(limit, key):
    return "/admin/v1/buckets?" + urllib.parse.urlencode({"limit": limit, "key": key})


class AdminBuckets(TollgateCase):
    """GET/DELETE /admin/v1/buckets on the memory backend."""
    configure = staticmethod(standard_config)

    def test_unknown_bucket_is_full(self):
        # a key this limit could spell (client and X-Test-Bucket) with no bucket
        key = "c=k:nobody-%s|h:x-test-bucket=-" % unique()
        r = self.tg.admin("GET", bucket_query("tight", key))
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["exists"], False)
        self.assertEqual(body["state"], "absent (full)")
        self.assertEqual(body["tokens"], 3)
        self.assertEqual(body["capacity"], 3)
        self.assertNotIn("reset_seconds", body)

    def test_bucket_document_after_one_request(self):
        bucket = unique("ab")
        h = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        self.assertEqual(self.tg.get("/auth/limited/x", h).status, 200)
        key = "c=k:bob|h:x-test-bucket=%s" % bucket
        r = self.tg.admin("GET", bucket_query("tight", key))
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["limit"], "tight")
        self.assertEqual(body["key"], key)
        self.assertIs(body["exists"], True)
        self.assertEqual(body["tokens"], 2)
        self.assertEqual(body["capacity"], 3)
        # 3/minute: one token back in 20 s, full again within 20 s
        self.assertGreater(body["reset_seconds"], 0)
        self.assertLessEqual(body["reset_seconds"], 20)

    def test_reset_says_whether_there_was_a_bucket(self):
        bucket = unique("ar")
        h = dict(api_key("bob"), **{"X-Test-Bucket": bucket})
        self.tg.get("/auth/limited/x", h)
        q = bucket_query("tight", "c=k:bob|h:x-test-bucket=%s" % bucket)
        self.assertIs(self.tg.admin("DELETE", q).json()["reset"], True)
        self.assertIs(self.tg.admin("DELETE", q).json()["reset"], False)
        self.assertIs(self.tg.admin("GET", q).json()["exists"], False)

    def test_refusals(self):
        for path, why in (
                ("/admin/v1/buckets", "limit and key are required"),
                ("/admin/v1/buckets?limit=tight", "limit (a configured name) and key are required"),
                ("/admin/v1/buckets?key=c%3Dk:bob", "limit (a configured name) and key are required"),
                ("/admin/v1/buckets?limit=nosuch&key=x", "limit (a configured name) and key are required")):
            with self.subTest(path):
                body = self.assertEnvelope(self.tg.admin("GET", path), 400, "bad_request")
                self.assertEqual(body["error"]["message"], why)

    def test_unknown_endpoints_and_methods(self):
        for method, path in (("GET", "/admin/v1/nothing"), ("GET", "/elsewhere"),
                             ("POST", "/admin/v1/buckets?limit=tight&key=x"),
                             ("GET", "/admin/v1/reload"), ("PUT", "/admin/v1/config"),
                             ("DELETE", "/admin/v1/revocations/x")):
            with self.subTest(method=method, path=path):
                self.assertEnvelope(self.tg.admin(method, path), 404, "not_found")


class AdminRevocations(TollgateCase):
    """POST /admin/v1/revocations[/subject] and GET /admin/v1/revocations/ID
    on the memory backend."""
    configure = staticmethod(standard_config)

    def post(self, path, obj):
        return self.tg.admin("POST", path, JSON, json.dumps(obj).encode())

    def test_token_without_jti(self):
        tok = make_jwt({"sub": "no-jti-user"})
        body = self.assertEnvelope(self.post("/admin/v1/revocations", {"token": tok}), 400,
                                   "bad_request")
        self.assertEqual(body["error"]["message"],
                         "the token has no jti: revoke its subject instead")
        self.assertEqual(self.tg.get("/auth/maybe/x", bearer(tok)).status, 200)

    def test_token_that_does_not_verify(self):
        tok = make_jwt({"sub": "forger", "jti": unique("jti")}, secret="x" * 40)
        body = self.assertEnvelope(self.post("/admin/v1/revocations", {"token": tok}), 400,
                                   "bad_request")
        self.assertTrue(body["error"]["message"].startswith("the token does not verify ("),
                        body)

    def test_bodies_refused(self):
        for raw in (b"", b"[]", b"{\"jti\": 1, \"exp\": 2}", b"{\"token\": \"a\", \"jti\": \"b\"}",
                    b"{\"nope\": 1}"):
            with self.subTest(raw=raw):
                r = self.tg.admin("POST", "/admin/v1/revocations", JSON, raw)
                self.assertEnvelope(r, 400, "bad_request")

    def test_subject_revocation_without_before_covers_tokens_so_far(self):
        sub = unique("sub")
        old = make_jwt({"sub": sub, "jti": unique("jti"), "scope": "orders:read"})
        self.assertEqual(self.tg.get("/auth/orders/1", bearer(old)).status, 200)
        r = self.post("/admin/v1/revocations/subject", {"sub": sub})
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual((body["sub"], body["revoked"]), (sub, True))
        self.assertIsInstance(body["before"], int)
        self.assertEnvelope(self.tg.get("/auth/orders/1", bearer(old)), 401, "unauthorized")

    def test_lookup_refuses_bad_ids(self):
        for jti in ("", "a" * 257, "%00"):
            with self.subTest(len=len(jti)):
                r = self.tg.admin("GET", "/admin/v1/revocations/" + jti)
                body = self.assertEnvelope(r, 400, "bad_request")
                self.assertEqual(body["error"]["message"], "bad jti")
        r = self.tg.admin("GET", "/admin/v1/revocations/" + "a" * 256)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"jti": "a" * 256, "revoked": False, "exp": None})


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class AdminRedisDown(TollgateCase):
    """Bucket and revocation endpoints answer 503 (never hang, never 200)
    when the Redis they need is gone."""
    shared_server = False

    def test_buckets_and_revocations_503(self):
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def configure(cfg):
            standard_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": [redis.addr], "timeout_ms": 200}
            for lim in cfg["limits"]:
                lim["on_redis_error"] = "local"
            return cfg

        tg = self.spawn(configure)
        q = bucket_query("tight", "c=k:bob|h:x-test-bucket=-")  # a key `tight` can spell
        self.assertEqual(tg.admin("GET", q).status, 200)
        redis.stop()
        r = tg.admin("GET", q)
        self.assertEnvelope(r, 503, "unavailable")
        r = tg.admin("DELETE", q)
        self.assertEnvelope(r, 503, "unavailable")
        tok = make_jwt({"sub": "rd-user", "jti": unique("jti")})
        r = tg.admin("POST", "/admin/v1/revocations", JSON, json.dumps({"token": tok}).encode())
        self.assertEnvelope(r, 503, "unavailable")
        # and tollgate itself still serves (on_redis_error: local)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)


if __name__ == "__main__":
    unittest.main()
