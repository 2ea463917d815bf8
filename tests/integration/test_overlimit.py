"""The over-limit cache (limiter/olcache_internal.h): a client Redis denied
is denied again locally, without a Redis call, until its bucket could have
refilled — never longer, and never admitting what Redis would deny."""
import time
import unittest

from harness import metric, TollgateCase, api_key, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None


def evalsha_calls(redis):
    with redis.client() as c:
        text = c.call("INFO", "commandstats").decode()
    for line in text.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@unittest.skipUnless(rh is not None and rh.have_redis(), "redis-server not installed")
class OverLimit(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)

    def spawn_on_redis(self, rate):
        def conf(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr],
                            "timeout_ms": 500}
            cfg["limits"] = [{"name": "tight", "match": {}, "by": ["client"], "rate": rate,
                              "on_redis_error": "closed"}]
            return cfg
        tg = self.spawn(conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        return tg

    def test_denials_cost_no_redis_call(self):
        tg = self.spawn_on_redis("3/minute")
        before = evalsha_calls(self.redis)
        got = [tg.get("/auth/x", api_key("bob")) for _ in range(30)]
        codes = [r.status for r in got]
        self.assertEqual(codes[:3], [200] * 3)
        self.assertEqual(codes[3:], [429] * 27)
        calls = evalsha_calls(self.redis) - before
        # 3 allowed + the first denial on each of the 2 worker threads
        self.assertLessEqual(calls, 5, "denials still went to Redis")
        self.assertGreaterEqual(
            metric(tg.metrics(), "tollgate_overlimit_cache_total", result="hit"), 25)
        # a locally denied answer looks like Redis's: Retry-After counts down
        last = got[-1]
        self.assertEqual(last.header("X-RateLimit-Remaining"), "0")
        ra = int(last.header("Retry-After"))
        self.assertTrue(1 <= ra <= 20, ra)

    def test_never_denies_longer_than_redis(self):
        tg = self.spawn_on_redis("5/second")  # one token per 200 ms
        codes = [tg.get("/auth/x", api_key("alice")).status for _ in range(8)]
        self.assertIn(429, codes)
        t0 = time.monotonic()
        ok = wait_for(lambda: tg.get("/auth/x", api_key("alice")).status == 200, 2, 0.01)
        waited = time.monotonic() - t0
        self.assertTrue(ok)
        # Redis admits again within one token's refill (200 ms); a local
        # cache that held a deny for Retry-After's whole second would take
        # 1 s.  The bound sits between, with room for a busy machine's polls.
        self.assertLess(waited, 0.8, "denied %.3f s after a token came back" % waited)

    def test_shared_exactness_with_two_replicas(self):
        a, b = self.spawn_on_redis("10/minute"), self.spawn_on_redis("10/minute")
        allowed = 0
        for i in range(60):
            allowed += (a if i % 2 else b).get("/auth/x", api_key("carol")).status == 200
        self.assertEqual(allowed, 10)


@unittest.skipUnless(rh is not None and rh.have_redis(), "redis-server not installed")
class BatchedExactness(TollgateCase):
    """Batching (redis.batch_max, on by default): concurrent load at one
    bucket through three replicas admits exactly the bucket's tokens."""
    shared_server = False

    def test_one_bucket_three_replicas_concurrent(self):
        import threading
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def conf(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": [redis.addr], "timeout_ms": 1000,
                            "batch_max": 64}
            cfg["limits"] = [{"name": "hot", "match": {}, "by": ["client"], "rate": "40/hour",
                              "on_redis_error": "closed"}]
            return cfg
        tgs = [self.spawn(conf) for _ in range(3)]
        for tg in tgs:
            self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        before = evalsha_calls(redis)
        codes, lock = [], threading.Lock()

        def hammer(tg):
            mine = [tg.get("/auth/x", api_key("carol")).status for _ in range(25)]
            with lock:
                codes.extend(mine)
        threads = [threading.Thread(target=hammer, args=(tgs[i % 3],)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(codes), 300)
        self.assertEqual(codes.count(200), 40)
        self.assertEqual(codes.count(429), 260)
        # 300 decisions cost fewer script calls than requests (batches and
        # the over-limit cache)
        self.assertLess(evalsha_calls(redis) - before, 300)


@unittest.skipUnless(rh is not None and rh.have_redis(), "redis-server not installed")
class Leases(TollgateCase):
    """consistency: leased on a hot key through three replicas: within the
    stated bound (limiter/lease_internal.h), with far fewer Redis calls."""
    shared_server = False

    def test_hot_key_bound_and_calls(self):
        import threading
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)
        LEASE = 10

        def conf(cfg):
            cfg["redis"] = {"mode": "standalone", "nodes": [redis.addr], "timeout_ms": 1000}
            cfg["limits"] = [{"name": "hot", "match": {}, "by": ["client"],
                              "rate": "120/minute", "consistency": "leased",
                              "lease_max": LEASE, "lease_ttl_ms": 2000,
                              "on_redis_error": "closed"}]
            return cfg
        tgs = [self.spawn(conf) for _ in range(3)]
        for tg in tgs:
            self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        before = evalsha_calls(redis)
        t0 = time.monotonic()
        codes, lock = [], threading.Lock()

        def hammer(tg):
            mine = [tg.get("/auth/x", api_key("alice")).status for _ in range(40)]
            with lock:
                codes.extend(mine)
        threads = [threading.Thread(target=hammer, args=(tgs[i % 3],)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.monotonic() - t0
        admitted = codes.count(200)
        refill = int(secs * 2) + 1  # 120/minute
        replicas_threads = 3 * 2
        # every admitted token was charged in Redis first: never more than the bucket
        # (plus refill) in one burst from full; leases left unused lose at most
        # replicas x threads x lease_max
        self.assertLessEqual(admitted, 120 + refill, codes.count(429))
        self.assertGreaterEqual(admitted, 120 - replicas_threads * LEASE)
        self.assertEqual(admitted + codes.count(429), 480)
        calls = evalsha_calls(redis) - before
        self.assertLess(calls, 480 / 3, "leases did not save Redis calls: %d" % calls)
        m = tgs[0].metrics() + tgs[1].metrics() + tgs[2].metrics()
        self.assertIn('tollgate_lease_admits_total{result="local"}', m)
