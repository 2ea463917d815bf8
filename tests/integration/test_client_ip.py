"""Per-IP keys (`by: [ip]` limits, auth-failure lockouts) for IPv6 clients.

One IPv6 host is handed a whole /64 (SLAAC, privacy addresses), so keying on
the full address gives it 2^64 buckets and 2^64 lockout counters: it sheds
any limit or lockout by changing its address.  tollgate keys an IPv6 client
on its /`client_ipv6_prefix` (default 64); an IPv4-mapped address
(::ffff:a.b.c.d) keys as the IPv4 address; the audit log keeps the full
address.  The client addresses come from X-Forwarded-For sent from loopback
(a trusted proxy by default), and from real IPv6 / dual-stack sockets.
"""
import os
import socket
import unittest
import urllib.parse

from harness import (TollgateCase, api_key, request, standard_config, unique, wait_for)

BAD_KEY = {"X-API-Key": "it-key-wrong-0123456789abcdef0123"}
_nets = [0]


def fresh_net():
    """A /64 of 2001:db8::/32 no other test of this process uses: "2001:db8:P:N:"."""
    _nets[0] += 1
    return "2001:db8:%x:%x:" % (os.getpid() & 0xffff, _nets[0])


def ip_config(cfg):
    standard_config(cfg)
    cfg["auth"]["lockout"] = {"max_failures": 3, "window": "1m", "base_backoff": "30s",
                              "max_backoff": "1m"}
    cfg["routes"].insert(0, {"name": "ip-route", "match": {"path_prefix": "/ipl/"},
                             "auth": "none"})
    cfg["limits"].append({"name": "ip-limit", "match": {"path_prefix": "/ipl/"},
                          "by": ["ip"], "rate": "3/minute"})
    return cfg


def from_ip(ip, headers=None, rid=None):
    """Forward-auth (Envoy form) for a client at `ip`, through loopback (trusted)."""
    h = dict(headers or {})
    h["X-Forwarded-For"] = ip
    if rid is not None:
        h["X-Request-ID"] = rid
    return h


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Ipv6Keys(TollgateCase):
    configure = staticmethod(ip_config)

    def test_limit_keys_on_the_64(self):
        """The attack: one host, a new address of its /64 per request."""
        net = fresh_net()
        for i in range(3):
            r = self.tg.get("/auth/ipl/x", from_ip(net + ":%x" % (i + 1)))
            self.assertEqual(r.status, 200, r)
        r = self.tg.get("/auth/ipl/x", from_ip(net + "ffff:ffff:ffff:fff9"))
        self.assertEnvelope(r, 429, "rate_limited")
        self.assertEqual(r.header("X-RateLimit-Limit"), "3")
        # the neighbouring /64 is another client
        other = fresh_net()
        self.assertEqual(self.tg.get("/auth/ipl/x", from_ip(other + ":1")).status, 200)
        # the bucket's identity, as docs/redis.md spells it
        key = "ip=" + net + ":%2F64"
        q = urllib.parse.urlencode({"limit": "ip-limit", "key": key})
        r = self.tg.admin("GET", "/admin/v1/buckets?" + q)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["exists"], r.body)

    def test_lockout_keys_on_the_64(self):
        """The attack: guess keys from a new address of the /64 each time."""
        net = fresh_net()
        for i in range(3):
            r = self.tg.get("/auth/orders/1", from_ip(net + ":%x" % (i + 1), BAD_KEY))
            self.assertEnvelope(r, 401, "unauthorized")
        rid = unique("v6lock")
        full = net + "abcd:ef01:2345:6789"
        r = self.tg.get("/auth/orders/1", from_ip(full, BAD_KEY, rid))
        self.assertEnvelope(r, 429, "locked_out")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        # locked before its credential is looked at: a good key waits too
        r = self.tg.get("/auth/orders/1", from_ip(net + ":77", api_key("bob")))
        self.assertEnvelope(r, 429, "locked_out")
        # the audit line keeps the full address: only the key is the prefix
        rec = self.tg.audit_for(rid)
        self.assertEqual((rec["ip"], rec["reason"]), (full, "locked_out"))
        # another /64 is not locked out
        r = self.tg.get("/auth/orders/1", from_ip(fresh_net() + ":1", api_key("bob")))
        self.assertEqual(r.status, 200, r)

    def test_ipv4_mapped_keys_as_ipv4(self):
        """::ffff:a.b.c.d is the IPv4 client a.b.c.d: one bucket, and never
        one /64 for every IPv4 client."""
        n = 10 + os.getpid() % 200
        v4, v4b = "198.51.100.%d" % n, "198.51.100.%d" % (n + 1)
        for ip in ("::ffff:" + v4, v4, "::FFFF:" + v4):
            self.assertEqual(self.tg.get("/auth/ipl/x", from_ip(ip)).status, 200)
        rid = unique("mapped")
        self.assertEnvelope(self.tg.get("/auth/ipl/x", from_ip("::ffff:" + v4, rid=rid)),
                            429, "rate_limited")
        self.assertEqual(self.tg.audit_for(rid)["ip"], v4)
        self.assertEqual(self.tg.get("/auth/ipl/x", from_ip("::ffff:" + v4b)).status, 200)
        # neither does ::/64 (where ::ffff:0:0/96 lies) share their bucket
        self.assertEqual(self.tg.get("/auth/ipl/x", from_ip("::1")).status, 200)

    def test_full_address_in_audit(self):
        rid = unique("v6audit")
        full = fresh_net() + "1:2:3:4"
        r = self.tg.get("/auth/ipl/x", from_ip(full, rid=rid))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.tg.audit_for(rid)["ip"], full)


class Ipv6PrefixConfig(TollgateCase):
    shared_server = False

    def test_prefix_is_configurable_and_reloadable(self):
        def conf(cfg):
            ip_config(cfg)
            cfg["client_ipv6_prefix"] = 56
            return cfg
        tg = self.spawn(conf)
        r = tg.admin("GET", "/admin/v1/config")
        self.assertEqual(r.json()["client_ipv6_prefix"], 56, r.body)
        # one /56: 2001:db8:c:100::/56 holds ...:100: to ...:1ff:
        for ip in ("2001:db8:c:100::1", "2001:db8:c:1ff::1", "2001:db8:c:180::1"):
            self.assertEqual(tg.get("/auth/ipl/x", from_ip(ip)).status, 200)
        self.assertEqual(tg.get("/auth/ipl/x", from_ip("2001:db8:c:1aa::9")).status, 429)
        self.assertEqual(tg.get("/auth/ipl/x", from_ip("2001:db8:c:200::1")).status, 200)
        # 128: the full address again (reloadable)
        version = tg.readyz()[1]["config_version"]
        tg.config["client_ipv6_prefix"] = 128
        tg.write_config()
        self.assertIn(tg.admin("POST", "/admin/v1/reload").status, (200, 204))
        self.assertTrue(wait_for(lambda: tg.readyz()[1]["config_version"] != version, 5))
        for i in range(4):
            self.assertEqual(tg.get("/auth/ipl/x", from_ip("2001:db8:d::%x" % (i + 1))).status,
                             200)

    def test_out_of_range_refused(self):
        tg = self.spawn(ip_config, start=False)
        for bad in (0, 31, 129, "64s", "/64"):
            tg.config["client_ipv6_prefix"] = bad
            tg.write_config()
            p = tg.run_cli("--check-config", tg.config_path)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("client_ipv6_prefix: expected an integer from 32 to 128", p.stderr)
        tg.config["client_ipv6_prefix"] = 48
        tg.write_config()
        p = tg.run_cli("--check-config", tg.config_path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


@unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback")
class DualStackSocket(TollgateCase):
    """Real sockets: tollgate on [::], a client over IPv4 (its peer address is
    ::ffff:127.0.0.1) and one over ::1.  They are two clients."""
    shared_server = False

    def test_mapped_peer_is_ipv4(self):
        def conf(cfg):
            ip_config(cfg)
            cfg["listen"] = "[::]:%s" % cfg["listen"].rsplit(":", 1)[1]
            return cfg
        tg = self.spawn(conf)
        for _ in range(3):
            self.assertEqual(tg.get("/auth/ipl/x").status, 200)
        rid = unique("v4peer")
        r = tg.get("/auth/ipl/x", {"X-Request-ID": rid})
        self.assertEnvelope(r, 429, "rate_limited")
        self.assertEqual(tg.audit_for(rid)["ip"], "127.0.0.1")
        rid = unique("v6peer")
        r = request(tg.port, "GET", "/auth/ipl/x", {"X-Request-ID": rid}, host="::1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(tg.audit_for(rid)["ip"], "::1")


try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None


@unittest.skipUnless(rh is not None and rh.have_redis(), "redis-server not installed")
class Ipv6KeysRedis(TollgateCase):
    """With Redis the lockout (lua/lockout.lua) and the bucket keys are the
    prefix too: tg:{lock:NET/64}, tg:{ip=NET%2F64}:b:LIMIT."""
    shared_server = False

    def test_redis_keys_are_the_prefix(self):
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def conf(cfg):
            ip_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": ["127.0.0.1:%d" % redis.port],
                            "timeout_ms": 500}
            return cfg
        tg = self.spawn(conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        net = "2001:db8:e:1:"
        for i in range(3):
            r = tg.get("/auth/orders/1", from_ip(net + ":%x" % (i + 1), BAD_KEY))
            self.assertEqual(r.status, 401, r)
        r = tg.get("/auth/orders/1", from_ip(net + ":99", BAD_KEY))
        self.assertEnvelope(r, 429, "locked_out")
        for i in range(3):
            self.assertEqual(tg.get("/auth/ipl/x", from_ip(net + ":%x" % (i + 10))).status, 200)
        self.assertEqual(tg.get("/auth/ipl/x", from_ip(net + ":20")).status, 429)
        with redis.client() as c:
            keys = sorted(k.decode() if isinstance(k, bytes) else k
                          for k in c.call("KEYS", "tg:*"))
        self.assertIn("tg:{lock:2001:db8:e:1::/64}", keys)
        self.assertIn("tg:{ip=2001:db8:e:1::%2F64}:b:ip-limit", keys)
        self.assertFalse([k for k in keys if "2001:db8:e:1::1" in k or "::99" in k], keys)
