"""Which limit the rate-limit headers report (docs/reference.md §5.2): the
limiter's report (rl_result_t.report), shown only when it is an enforced
limit that was decided.  A shadow limit never shows, and neither does a
limit whose backend failed: the 503 of a `closed` limit carries no numbers,
not those of a `local` limit that happened to match the same request."""
import unittest

from harness import TollgateCase, api_key, unique, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and rh.have_redis()

RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
              "Retry-After", "RateLimit", "RateLimit-Policy")

LIMITS = [
    {"name": "m-local", "match": {"path_prefix": "/m/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "100/minute", "on_redis_error": "local"},
    {"name": "m-closed", "match": {"path_prefix": "/m/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "50/minute", "on_redis_error": "closed"},
    {"name": "o-local", "match": {"path_prefix": "/o/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "100/minute", "on_redis_error": "local"},
    {"name": "o-open", "match": {"path_prefix": "/o/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "50/minute", "on_redis_error": "open"},
    {"name": "s-shadow", "match": {"path_prefix": "/s/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "100/minute", "mode": "shadow", "on_redis_error": "local"},
    {"name": "s-open", "match": {"path_prefix": "/s/"}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "50/minute", "on_redis_error": "open"},
    {"name": "only-shadow", "match": {"path_prefix": "/shadow-only/"},
     "by": ["client", "header:X-Test-Bucket"], "rate": "1/minute", "mode": "shadow"},
]


def headers(bucket):
    h = api_key("bob")
    h["X-Test-Bucket"] = bucket
    return h


class ReportMemory(TollgateCase):
    """Memory backend: only shadow limits match -> no rate-limit headers,
    also once the shadow limit would have denied."""

    @staticmethod
    def configure(cfg):
        cfg["limits"] = [dict(l) for l in LIMITS if l["name"] == "only-shadow"]
        return cfg

    def test_shadow_only_shows_nothing(self):
        h = headers(unique("so"))
        for want_reason in ("ok", "shadow_rate_limited"):
            r = self.tg.get("/auth/shadow-only/x", h)
            self.assertEqual(r.status, 200, r)
            for name in RL_HEADERS:
                self.assertIsNone(r.header(name), "%s on a shadow-only answer: %r" % (name, r))
            rec = self.tg.audit_for(r.header("X-Request-ID"))
            self.assertEqual(rec["reason"], want_reason, rec)


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class ReportRedisDown(TollgateCase):
    shared_server = False

    def setUp(self):
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def test_failed_limits_show_nothing(self):
        def configure(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 200}
            cfg["limits"] = [dict(l) for l in LIMITS]
            return cfg

        tg = self.spawn(configure)
        up = tg.get("/auth/m/x", headers(unique("up")))
        self.assertEqual(up.status, 200, up)
        self.assertEqual(up.header("X-RateLimit-Limit"), "50", up)  # m-closed: fewest left
        self.assertEqual(up.header("RateLimit-Policy"),
                         '"m-local";q=100;w=60, "m-closed";q=50;w=60', up)

        self.redis.stop()
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "down", 5, 0.05),
                        tg.stderr()[-2000:])

        # closed failed -> 503; m-local decided on the fallback, but its
        # numbers are not the answer's: no rate-limit header at all.
        r = tg.get("/auth/m/x", headers(unique("m")), timeout=3)
        self.assertEnvelope(r, 503, "unavailable")
        for name in RL_HEADERS:
            self.assertIsNone(r.header(name), "%s on a limiter_unavailable 503: %r" % (name, r))
        self.assertEqual(tg.audit_for(r.header("X-Request-ID"))["reason"],
                         "limiter_unavailable")

        # open failed, local decided: the local limit is reported.
        r = tg.get("/auth/o/x", headers(unique("o")), timeout=3)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-RateLimit-Limit"), "100", r)
        self.assertEqual(r.header("X-RateLimit-Remaining"), "99", r)
        self.assertTrue(r.header("RateLimit", "").startswith('"o-local";r=99;'), r)

        # open failed, only the shadow limit has numbers: nothing shown.
        r = tg.get("/auth/s/x", headers(unique("s")), timeout=3)
        self.assertEqual(r.status, 200, r)
        for name in RL_HEADERS:
            self.assertIsNone(r.header(name), "%s from a shadow limit: %r" % (name, r))


if __name__ == "__main__":
    unittest.main()
