"""How tollgate connects to Redis (issue 3): TLS to `redis-server --tls-port`
with a test CA generated here by the openssl CLI (right CA, wrong CA, a
certificate for another host, plain TCP to a TLS port), and AUTH with
requirepass / an ACL user through REDIS_PASSWORD, REDIS_PASSWORD_FILE and
REDIS_URL -- the password never shows in stderr, stdout, the audit log or
/admin/v1/config."""
import os
import shutil
import tempfile
import unittest
import urllib.parse

from harness import SLOW, TollgateCase, metric, wait_for

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and rh.have_redis()
HAVE_OPENSSL = shutil.which("openssl") is not None

KEYS = {cid: ("it-conn-key-%s-0123456789abcdef" % cid, [], None)
        for cid in ("tls", "auth", "acl")}

LIMITS = [
    {"name": "cn", "match": {}, "by": ["client", "header:X-Test-Bucket"],
     "rate": "5/hour", "burst": 5},
]


def hdr(client, bucket):
    return {"X-API-Key": KEYS[client][0], "X-Test-Bucket": bucket}


def conf(redis, on_error="closed"):
    def configure(cfg):
        cfg["redis"] = dict(redis)
        cfg["redis"].setdefault("timeout_ms", 200)
        cfg["expected_replicas"] = 1
        cfg["limits"] = [dict(l, on_redis_error=on_error) for l in LIMITS]
        return cfg
    return configure


def state(tg):
    st, body = tg.readyz()
    return st, body.get("redis"), body.get("fallback")


class ConnCase(TollgateCase):
    shared_server = False

    def wait_state(self, tg, want, timeout):
        self.assertTrue(wait_for(lambda: state(tg) == want, timeout, 0.05),
                        "readyz is %r, want %r; stderr:\n%s"
                        % (state(tg), want, tg.stderr()[-2000:]))

    def assertOnRedis(self, tg, client, redis_client, bucket):
        """Exactly 5 of 6 requests pass, counted in Redis (on_redis_error:
        closed, so a request that did not reach Redis would be a 503)."""
        self.wait_state(tg, (200, "ok", False), 5)
        got = [tg.get("/auth/x", hdr(client, bucket)) for _ in range(6)]
        self.assertEqual([r.status for r in got], [200] * 5 + [429], got)
        self.assertEqual([r.header("X-RateLimit-Remaining") for r in got[:5]],
                         ["4", "3", "2", "1", "0"])
        key = "tg:{c=k:%s|h:x-test-bucket=%s}:b:cn" % (client, bucket)
        with redis_client() as c:
            self.assertEqual(c.call("EXISTS", key), 1, "bucket %s not in Redis" % key)
        # The fleet heartbeat (lua/fleet.lua) goes the same way (TLS, AUTH, ACL).
        self.assertTrue(wait_for(lambda: metric(tg.metrics(), "tollgate_fleet_replicas") == 1,
                                 5, 0.05), tg.metrics())
        with redis_client() as c:
            self.assertEqual(c.call("ZCARD", "tg:{fleet}:replicas"), 1)

    def assertDegraded(self, tg, client, bucket, timeout=6):
        """Redis unusable: readyz says so, requests are answered by the local
        fallback (on_redis_error: local, 5/hour ÷ 1), the process lives."""
        self.wait_state(tg, (200, "down", True), timeout)
        got = [tg.get("/auth/x", hdr(client, bucket), timeout=3) for _ in range(6)]
        self.assertEqual([r.status for r in got], [200] * 5 + [429], got)
        self.assertLess(max(r.elapsed for r in got), 1.0 * SLOW)
        self.assertTrue(tg.alive(), "tollgate died:\n" + tg.stderr()[-3000:])


# ---------------------------------------------------------------------- TLS


@unittest.skipUnless(HAVE_REDIS and HAVE_OPENSSL, "redis-server or openssl not installed")
class Tls(ConnCase):

    @classmethod
    def setUpClass(cls):
        ok, why = rh.redis_has_tls()
        if not ok:
            print("\n    skipping TLS tests: %s" % why)
            raise unittest.SkipTest(why)
        cls.pki_dir = tempfile.mkdtemp(prefix="tg-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = rh.make_test_pki(cls.pki_dir, san="IP:127.0.0.1", name="good")
        cls.other = rh.make_test_pki(cls.pki_dir, san="IP:127.0.0.1", name="other")
        # A certificate from the right CA, but for another host name.
        cls.wrong_host = rh.make_test_pki(cls.pki_dir, san="DNS:redis.example", name="host")
        cls.redis = rh.TlsRedisServer(cls.pki).start()
        cls.addClassCleanup(cls.redis.close)

    def test_buckets_over_tls(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr], "tls": True,
                              "tls_ca_file": self.pki["ca"]}), keys=KEYS)
        self.assertOnRedis(tg, "tls", self.redis.client, "over-tls")

    def test_rediss_url(self):
        tg = self.spawn(conf({"mode": "standalone", "tls_ca_file": self.pki["ca"]}), keys=KEYS,
                        env={"REDIS_URL": "rediss://127.0.0.1:%d" % self.redis.port})
        self.assertOnRedis(tg, "tls", self.redis.client, "rediss-url")

    def test_wrong_ca_is_down_not_a_crash(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr], "tls": True,
                              "tls_ca_file": self.other["ca"]}, on_error="local"), keys=KEYS)
        self.assertDegraded(tg, "tls", "wrong-ca")

    def test_wrong_host_name_is_down(self):
        srv = rh.TlsRedisServer(self.wrong_host, server_name="redis.example").start()
        self.addCleanup(srv.close)
        # The server's certificate is valid (right CA) but names redis.example,
        # not 127.0.0.1: a verified host name must refuse it.
        tg = self.spawn(conf({"mode": "standalone", "nodes": [srv.addr], "tls": True,
                              "tls_ca_file": self.wrong_host["ca"]}, on_error="local"),
                        keys=KEYS)
        self.assertDegraded(tg, "tls", "wrong-host")

    def test_plain_tcp_to_tls_port_is_down(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr]},
                             on_error="local"), keys=KEYS)
        self.assertDegraded(tg, "tls", "plain")


# --------------------------------------------------------------------- AUTH

PASSWORD = "Redis-pw-3f9c1e7a-NEVER-LOGGED"
WRONG = "Wrong-pw-b71d0c55-NEVER-LOGGED"
ACL_USER = "tollgate-it"
ACL_PASSWORD = "acl:pw@with/odd%chars-9e2b"


@unittest.skipUnless(HAVE_REDIS, "redis-server / redis-cli not installed")
class Auth(ConnCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)
        with cls.redis.client() as c:  # requirepass, set once the harness saw PING
            c.call("CONFIG", "SET", "requirepass", PASSWORD)
        with cls.client() as c:
            c.call("ACL", "SETUSER", ACL_USER, "on", ">" + ACL_PASSWORD, "~tg:*",
                   "&*", "+@all")

    @classmethod
    def client(cls):
        c = rh.RespClient("127.0.0.1", cls.redis.port)
        c.call("AUTH", PASSWORD)
        return c

    def assertNeverShown(self, tg, *secrets):
        # the audit log is flushed every 100 ms
        self.assertTrue(wait_for(tg.audit_raw, 3, 0.05), "no audit lines to check")
        r = tg.admin("GET", "/admin/v1/config")
        self.assertEqual(r.status, 200, r)
        where = {"stderr": tg.stderr(), "stdout": tg.stdout(),
                 "audit log": tg.audit_raw().decode("utf-8", "replace"),
                 "/admin/v1/config": r.body.decode("utf-8", "replace")}
        for s in secrets:
            variants = {s, urllib.parse.quote(s, safe=""), s.replace("/", "\\/")}
            for name, text in where.items():
                for v in variants:
                    self.assertNotIn(v, text, "the Redis password appears in %s" % name)

    def test_requirepass_with_redis_password(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr]}), keys=KEYS,
                        env={"REDIS_PASSWORD": PASSWORD})
        self.assertOnRedis(tg, "auth", self.client, "env-pw")
        self.assertNeverShown(tg, PASSWORD)

    def test_redis_password_file(self):
        path = os.path.join(tempfile.mkdtemp(prefix="tg-pw-"), "redis-password")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "w") as f:
            f.write(PASSWORD + "\n")
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr]}), keys=KEYS,
                        env={"REDIS_PASSWORD_FILE": path})
        self.assertOnRedis(tg, "auth", self.client, "file-pw")
        self.assertNeverShown(tg, PASSWORD)

    def test_password_in_redis_url(self):
        url = "redis://:%s@127.0.0.1:%d" % (urllib.parse.quote(PASSWORD, safe=""),
                                            self.redis.port)
        tg = self.spawn(conf({"mode": "standalone"}), keys=KEYS, env={"REDIS_URL": url})
        self.assertOnRedis(tg, "auth", self.client, "url-pw")
        self.assertNeverShown(tg, PASSWORD)

    def test_acl_user_in_redis_url(self):
        url = "redis://%s:%s@127.0.0.1:%d/0" % (ACL_USER, urllib.parse.quote(ACL_PASSWORD, safe=""),
                                                self.redis.port)
        tg = self.spawn(conf({"mode": "standalone"}), keys=KEYS, env={"REDIS_URL": url})
        self.assertOnRedis(tg, "acl", self.client, "acl-url")
        self.assertNeverShown(tg, ACL_PASSWORD)

    def test_acl_username_key_with_redis_password(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr],
                              "username": ACL_USER}), keys=KEYS,
                        env={"REDIS_PASSWORD": ACL_PASSWORD})
        self.assertOnRedis(tg, "acl", self.client, "acl-key")
        self.assertNeverShown(tg, ACL_PASSWORD)

    def test_wrong_password_is_degraded(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr]},
                             on_error="local"), keys=KEYS, env={"REDIS_PASSWORD": WRONG})
        self.assertDegraded(tg, "auth", "wrong-pw")
        self.assertNeverShown(tg, WRONG, PASSWORD)

    def test_no_password_is_degraded(self):
        tg = self.spawn(conf({"mode": "standalone", "nodes": [self.redis.addr]},
                             on_error="local"), keys=KEYS)
        self.assertDegraded(tg, "auth", "no-pw")


if __name__ == "__main__":
    unittest.main()
