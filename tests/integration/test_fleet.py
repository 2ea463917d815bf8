"""Degraded-mode limits follow the live fleet (issue 20, item 3).

Every replica renews its entry in <prefix>{fleet}:replicas every 2 s (TTL
6 s, lua/fleet.lua) and keeps the count of live replicas it last read there;
while Redis is unreachable, a `local` limit allows rate / that count on each
replica (expected_replicas only until the first count).

The bound the fleet test asserts, from the bucket maths (rl_bucket.h): three
replicas, `rate: 60/minute` (burst 60), Redis gone.  Each replica decides on a
bucket of its own with n = floor(60/3) = 20 per minute and burst 20, full
when its first fallback decision makes it.  Over e ms after that, a replica
admits at most 20 + floor(20 * e / 60000) requests, so the fleet admits at
most 60 + 3 * floor(20 * e / 60000): 60 when the requests take under 3 s.
Before this change, with expected_replicas 1, it admitted up to 180.
"""
import os
import signal
import time
import unittest

from harness import SLOW, TollgateCase, api_key, metric, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and rh.have_redis()

BEAT_S, TTL_S = 2.0, 6.0  # RL_FLEET_BEAT_MS, RL_FLEET_TTL_MS
FLEET_LUA = os.path.join(rh.REPO if rh else ".", "lua", "fleet.lua")

LIMITS = [
    {"name": "fleet", "match": {"path_prefix": "/fl/"}, "by": ["client"],
     "rate": "60/minute", "on_redis_error": "local"},
]


def fleet_conf(nodes, mode="standalone", expected=1, prefix=None):
    def configure(cfg):
        cfg["redis"] = {"mode": mode, "nodes": list(nodes), "timeout_ms": 200}
        if prefix is not None:
            cfg["redis"]["key_prefix"] = prefix
        cfg["expected_replicas"] = expected
        cfg["limits"] = [dict(l) for l in LIMITS]
        return cfg
    return configure


def fleet_count(tg):
    return metric(tg.metrics(), "tollgate_fleet_replicas")


def instance_id(tg):
    """The id a replica logs at start ("fleet: instance ID heartbeats on KEY")."""
    for line in tg.stderr().splitlines():
        if "fleet: instance " in line:
            return line.split("fleet: instance ", 1)[1].split()[0]
    return None


class FleetCase(TollgateCase):
    shared_server = False

    def wait_count(self, tgs, n, timeout):
        self.assertTrue(wait_for(lambda: all(fleet_count(tg) == n for tg in tgs), timeout, 0.05),
                        "tollgate_fleet_replicas is %r, want %d; stderr:\n%s"
                        % ([fleet_count(tg) for tg in tgs], n, tgs[0].stderr()[-2000:]))

    def wait_fallback(self, tgs, timeout=5):
        self.assertTrue(wait_for(lambda: all(tg.readyz()[1].get("fallback") is True
                                             for tg in tgs), timeout, 0.05),
                        "not degraded: %r" % [tg.readyz() for tg in tgs])


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class FleetStandalone(FleetCase):

    def setUp(self):
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def kill_redis(self):
        self.redis.proc.kill()  # SIGKILL, by the PID of the harness's own child
        self.redis.proc.wait(5)
        self.redis.proc = None

    def test_degraded_fleet_admits_the_rate_not_n_times_it(self):
        """expected_replicas 1 (the old advice's worst case): the live count
        3 is what divides, so the fleet admits about 60, not 180."""
        tgs = [self.spawn(fleet_conf([self.redis.addr], expected=1)) for _ in range(3)]
        self.wait_count(tgs, 3, 10)
        age = metric(tgs[0].metrics(), "tollgate_fleet_replicas_age_seconds")
        self.assertIsNotNone(age)
        self.assertLess(age, TTL_S)
        self.kill_redis()
        self.wait_fallback(tgs)
        h = api_key("bob")
        admitted = [0, 0, 0]
        t0 = time.monotonic()
        for i in range(150):  # round-robin: 50 per replica, 30 more than its burst
            r = tgs[i % 3].get("/auth/fl/x", h)
            self.assertIn(r.status, (200, 429), r)
            admitted[i % 3] += r.status == 200
        e_ms = (time.monotonic() - t0) * 1000
        refill = int(20 * e_ms // 60000)
        for i, n in enumerate(admitted):
            self.assertGreaterEqual(n, 20, "replica %d admitted %r" % (i, admitted))
            self.assertLessEqual(n, 20 + refill, "replica %d admitted %r in %.0f ms"
                                 % (i, admitted, e_ms))
        self.assertLessEqual(sum(admitted), 60 + 3 * refill)
        self.assertEqual(fleet_count(tgs[0]), 3, "the last count is kept while Redis is down")
        print("\n    fleet of 3, 60/minute, Redis killed: admitted %d (%r) in %.0f ms; "
              "bound %d" % (sum(admitted), admitted, e_ms, 60 + 3 * refill))

    def test_expected_replicas_until_the_first_count(self):
        """A replica that never reached Redis has no count: expected_replicas
        divides (60/minute over 3: 20)."""
        dead = "127.0.0.1:%d" % self.redis.port
        self.kill_redis()
        tg = self.spawn(fleet_conf([dead], expected=3))
        self.wait_fallback([tg])
        text = tg.metrics()
        self.assertEqual(metric(text, "tollgate_fleet_replicas"), 0)
        self.assertIsNone(metric(text, "tollgate_fleet_replicas_age_seconds"))
        t0 = time.monotonic()
        got = [tg.get("/auth/fl/x", api_key("bob")).status for _ in range(30)]
        refill = int(20 * (time.monotonic() - t0) * 1000 // 60000)
        self.assertGreaterEqual(got.count(200), 20, got)
        self.assertLessEqual(got.count(200), 20 + refill, got)
        # Failing heartbeats are logged once, not every 2 s.
        self.assertLessEqual(tg.stderr().count("fleet heartbeat failing"), 1, tg.stderr()[-2000:])

    def test_sigterm_leaves_at_once_and_a_crash_expires(self):
        prefix = "tgfleet:"
        key = prefix + "{fleet}:replicas"
        tgs = [self.spawn(fleet_conf([self.redis.addr], prefix=prefix)) for _ in range(3)]
        self.wait_count(tgs, 3, 10)
        c = self.redis.client()
        self.addCleanup(c.close)
        self.assertEqual(c.call("ZCARD", key), 3)
        gone = instance_id(tgs[2])
        self.assertRegex(gone or "", r"^[0-9a-f]{32}$")
        self.assertEqual(len({instance_id(tg) for tg in tgs}), 3, "ids not unique")
        self.assertIsNotNone(c.call("ZSCORE", key, gone))

        t0 = time.monotonic()
        self.assertEqual(tgs[2].stop(), 0)  # SIGTERM (shutdown_delay 0s), waits for the exit
        # Removed before it exited: not left to expire after TTL_S.
        self.assertIsNone(c.call("ZSCORE", key, gone))
        self.assertEqual(c.call("ZCARD", key), 2)
        # A lower count is taken only after a TTL of lower replies (a roster
        # rebuilt after it vanished must not lower it on the way).
        self.wait_count(tgs[:2], 2, TTL_S + 2 * BEAT_S + 2)
        self.assertGreater(time.monotonic() - t0, TTL_S - BEAT_S - 0.5,
                           "the others lowered their count before a TTL of lower replies")

        # A crash (SIGKILL) cannot leave: its entry expires after TTL_S.
        crashed = instance_id(tgs[1])
        tgs[1].signal(signal.SIGKILL)
        tgs[1].proc.wait(5)
        t1 = time.monotonic()
        self.assertIsNotNone(c.call("ZSCORE", key, crashed))
        self.wait_count(tgs[:1], 1, 2 * TTL_S + 2 * BEAT_S + 2)
        self.assertGreater(time.monotonic() - t1, TTL_S - BEAT_S - 0.5,
                           "a crashed replica went before its TTL")
        self.assertIsNone(c.call("ZSCORE", key, crashed))

    def test_a_vanished_roster_does_not_lower_the_count(self):
        """The roster key goes (a Redis restart without persistence, a
        failover to a lagging replica, FLUSHALL): the replicas rebuild it one
        heartbeat at a time and hear 1, 2, 3 on the way; none of them may
        divide by less than the 3 that are live, or a Redis failure in the
        middle lets the fleet admit rate x (1 + 1/2 + 1/3)."""
        prefix = "tgwipe:"
        key = prefix + "{fleet}:replicas"
        tgs = [self.spawn(fleet_conf([self.redis.addr], prefix=prefix)) for _ in range(3)]
        self.wait_count(tgs, 3, 10)
        c = self.redis.client()
        self.addCleanup(c.close)
        self.assertEqual(c.call("DEL", key), 1)
        seen = set()

        def rebuilt():
            seen.update(fleet_count(tg) for tg in tgs)
            return c.call("ZCARD", key) == 3

        self.assertTrue(wait_for(rebuilt, 3 * BEAT_S * SLOW, 0.05), "roster not rebuilt")
        # ... and for a whole beat more, every replica still says 3.
        t = time.monotonic()
        while time.monotonic() - t < BEAT_S:
            seen.update(fleet_count(tg) for tg in tgs)
        self.assertEqual(seen, {3}, "a replica lowered its count while the roster was rebuilt")

    def test_fleet_script(self):
        """lua/fleet.lua on its own: Redis's TIME decides expiry; bad
        arguments change nothing."""
        c = self.redis.client()
        self.addCleanup(c.close)
        with open(FLEET_LUA) as f:
            sha = c.call("SCRIPT", "LOAD", f.read()).decode()
        key = "tg:{fleet}:replicas"
        self.assertEqual(c.call("EVALSHA", sha, 1, key, "a" * 32, 300), 1)
        self.assertEqual(c.call("EVALSHA", sha, 1, key, "b" * 32, 60000), 2)
        self.assertEqual(c.call("EVALSHA", sha, 1, key, "b" * 32, 60000), 2, "renewal counted twice")
        for bad in (("", 100), ("x" * 65, 100), ("c", -1), ("c", "1.5"), ("c", "x"),
                    ("c", 600001)):
            with self.assertRaises(rh.RespError):
                c.call("EVALSHA", sha, 1, key, *bad)
        self.assertEqual(c.call("ZCARD", key), 2, "a bad call changed the roster")
        self.assertLessEqual(c.call("PTTL", key), 60000)
        # `a` expires after 300 ms of Redis time (bounded wait, no fixed sleep).
        self.assertTrue(wait_for(lambda: c.call("EVALSHA", sha, 1, key, "b" * 32, 60000) == 1,
                                 5, 0.05))
        self.assertEqual(c.call("EVALSHA", sha, 1, key, "b" * 32, 0), 0)  # leave
        self.assertEqual(c.call("EXISTS", key), 0)


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class FleetCluster(FleetCase):
    """The roster key has one hash tag: one slot of a real 6-node cluster."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_count_on_cluster(self):
        tgs = [self.spawn(fleet_conf(self.cluster.seeds, mode="cluster")) for _ in range(3)]
        self.wait_count(tgs, 3, 10)
        key = "tg:{fleet}:replicas"
        with self.cluster.client_for_key(key) as c:
            self.assertEqual(c.call("ZCARD", key), 3)
        self.assertEqual(tgs[2].stop(), 0)
        with self.cluster.client_for_key(key) as c:
            self.assertEqual(c.call("ZCARD", key), 2)
        self.wait_count(tgs[:2], 2, TTL_S + 2 * BEAT_S + 2)


if __name__ == "__main__":
    unittest.main()
