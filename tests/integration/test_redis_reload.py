"""Redis settings are fixed at start (docs/configuration.md):
a reload that changes redis.key_prefix is logged as needing a restart, and
every key and channel (buckets, lockouts) keeps the prefix the replica started
with, so replicas never split their shared state across two prefixes."""
import shutil
import signal
import unittest

from harness import TollgateCase, api_key, standard_config, to_yaml, unique, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class PrefixFixedAtStart(TollgateCase):
    shared_server = False

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)

    def test_prefix_change_needs_restart(self):
        def conf(cfg):
            standard_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": [self.redis.addr],
                            "key_prefix": "first:", "timeout_ms": 500}
            cfg["auth"]["lockout"] = {"max_failures": 2, "window": "1m",
                                      "base_backoff": "30s", "max_backoff": "1m"}
            return cfg
        tg = self.spawn(conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        tg.config["redis"]["key_prefix"] = "second:"
        tg.write_config(to_yaml(tg.config) + "\n")
        version = tg.readyz()[1]["config_version"]
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: tg.readyz()[1]["config_version"] != version, 3))
        self.assertIn("redis settings change only on restart", tg.stderr())

        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        ip = "198.51.100.%d" % (len(unique("x")) % 200 + 20)
        bad = {"X-API-Key": "it-key-wrong-prefix-0123456789ab", "X-Forwarded-For": ip}
        for _ in range(2):
            self.assertEqual(tg.get("/auth/orders/1", bad).status, 401)
        keys = lambda: [k.decode() for k in self.redis.client().call("KEYS", "*")]
        self.assertTrue(wait_for(lambda: "first:{lock:%s}" % ip in keys(), 2), keys())
        self.assertTrue(any(k.startswith("first:{c=k:bob}") for k in keys()), keys())
        self.assertFalse([k for k in keys() if k.startswith("second:")], keys())
