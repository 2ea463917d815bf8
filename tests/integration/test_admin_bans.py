"""Bans and lockouts through the admin API (server/admin_bans.c, auth/ban.c,
lua/ban.lua, decide/dec_ban.c; docs/reference.md "Bans" and "Lockouts").

A ban of an IP or a CIDR refuses a request before its credentials are looked
at (403 banned, a valid key too, and a wrong key counts no lockout failure);
a client-id ban refuses that client once it is known.  Bans are shared
through Redis (3 replicas on one server, 2 on the 6-node cluster) and kept
in memory without it; lockouts are listed and lifted on every replica.
Client addresses come from X-Forwarded-For sent from loopback (a trusted
proxy by default)."""
import json
import os
import shutil
import socket
import struct
import unittest
import urllib.parse

from harness import (TollgateCase, ADMIN_TOKEN, api_key, bearer, make_jwt, metric,
                     standard_config, unique, wait_for)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None

JSON = {"Content-Type": "application/json"}
READ_TOKEN = "sre-dashboard-read-token-0123456789abcdef"
WRITE_TOKEN = "ci-deploy-write-token-0123456789abcdef01"
BAD_KEY = {"X-API-Key": "it-key-wrong-0123456789abcdef0123"}
_ips = [0]


def fresh_ip(net="198.51.100"):
    """An address of TEST-NET-2/3 no other test of this process uses."""
    _ips[0] += 1
    return "%s.%d" % (net, (os.getpid() + _ips[0]) % 250 + 1)


def bans_config(redis=None, mode="standalone"):
    def configure(cfg):
        standard_config(cfg)
        tmp = os.path.dirname(cfg["audit"]["path"])
        path = os.path.join(tmp, "admin-tokens")
        with open(path, "w") as f:
            f.write("sre-dashboard read %s\nci-deploy write %s\n" % (READ_TOKEN, WRITE_TOKEN))
        cfg["admin_tokens_file"] = path
        cfg["threads"] = 1
        cfg["auth"]["lockout"] = {"max_failures": 3, "window": "1m", "base_backoff": "30s",
                                  "max_backoff": "1m"}
        if redis:
            cfg["redis"] = {"mode": mode, "nodes": list(redis), "timeout_ms": 500}
        return cfg
    return configure


def from_ip(ip, headers=None):
    h = dict(headers or {})
    h["X-Forwarded-For"] = ip
    return h


def call(tg, method, path, body=None, token=WRITE_TOKEN):
    data = json.dumps(body).encode() if body is not None else None
    return tg.admin(method, path, JSON if data else None, data, token=token)


def ban(tg, target, duration="1h", reason="it", token=WRITE_TOKEN):
    return call(tg, "POST", "/admin/v1/bans",
                {"target": target, "duration": duration, "reason": reason}, token)


def unban(tg, target, token=WRITE_TOKEN):
    return call(tg, "DELETE", "/admin/v1/bans/" + urllib.parse.quote(target, safe=""),
                token=token)


def status_from(tg, ip, headers=None):
    return tg.get("/auth/orders/1", from_ip(ip, headers)).status


def admin_lines(tg):
    return [r for r in tg.audit() if r.get("kind") == "admin"]


def wait_admin_line(tg, pred, timeout=5.0):
    rec = wait_for(lambda: next((r for r in admin_lines(tg) if pred(r)), None), timeout)
    if rec is None:
        raise AssertionError("no such admin line in:\n%s" % tg.audit_raw()[-3000:])
    return rec


def listed(tg, path, field, key):
    """Every entry of the paged list at `path`, following `next`."""
    out, cursor = [], None
    for _ in range(50):
        q = "?limit=1000" + ("&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
        r = call(tg, "GET", path + q, token=READ_TOKEN)
        assert r.status == 200, r
        out += r.json()[field]
        cursor = r.json()["next"]
        if not r.json()["more"]:
            return {e[key]: e for e in out}
    raise AssertionError("paging does not end")


def lock_out(tg, ip, n=3):
    """n wrong keys from `ip`: the nth starts a lockout."""
    for _ in range(n):
        tg.get("/auth/orders/1", from_ip(ip, BAD_KEY))
    return status_from(tg, ip, api_key("alice"))


class BanChecks:
    """What every backend must do; self.tgs are the replicas (one for memory)."""

    def test_ip_ban_before_auth_everywhere(self):
        a = self.tgs[0]
        ip, other = fresh_ip(), fresh_ip("203.0.113")
        self.assertEqual(status_from(a, ip, api_key("alice")), 200)
        r = ban(a, "ip:" + ip)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["ban"]["target"], "ip:" + ip)
        self.assertEqual(r.json()["ban"]["actor"], "ci-deploy")
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 403, 5),
                            "not refused on a replica")
            r = tg.get("/auth/orders/1", from_ip(ip, api_key("alice")))
            self.assertEnvelope(r, 403, "banned")
            self.assertEqual(r.json()["error"]["message"], "banned")
            self.assertIsNone(r.header("Retry-After"))
            # a wrong key: 403 too, never 401, and no failure counted
            for _ in range(5):
                self.assertEqual(status_from(tg, ip, BAD_KEY), 403)
            self.assertEqual(status_from(tg, other, api_key("alice")), 200)
        rec = a.audit_for(r.header("X-Request-ID")) if len(self.tgs) == 1 else None
        if rec is not None:
            self.assertEqual(rec["reason"], "banned")
        m = self.tgs[-1].metrics()
        self.assertGreaterEqual(metric(m, "tollgate_requests_total", decision="deny",
                                       reason="banned") or 0, 6)
        self.assertGreaterEqual(metric(m, "tollgate_bans_active") or 0, 1)
        # lifted on the last replica: allowed again on all, with no lockout
        self.assertEqual(unban(self.tgs[-1], "ip:" + ip).status, 200)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 200, 5),
                            "still refused after the unban")
        self.assertNotIn(ip, listed(a, "/admin/v1/lockouts", "lockouts", "ip_key"))
        self.assertEqual(unban(a, "ip:" + ip).status, 404)
        wait_admin_line(a, lambda x: x["action"] == "ban" and x["target"] == "ip:" + ip
                        and x["result"] == "ok" and x["actor"] == "ci-deploy")

    def test_client_ban_refuses_that_client_only(self):
        a, b = self.tgs[0], self.tgs[-1]
        ip = fresh_ip()
        self.assertEqual(ban(a, "client:bob", "10m").status, 200)
        self.assertTrue(wait_for(lambda: status_from(b, ip, api_key("bob")) == 403, 5))
        self.assertEnvelope(b.get("/auth/orders/1", from_ip(ip, api_key("bob"))), 403,
                            "banned")
        self.assertEqual(status_from(b, ip, api_key("alice")), 200)
        self.assertIn("client:bob", listed(b, "/admin/v1/bans", "bans", "target"))
        self.assertEqual(unban(b, "client:bob").status, 200)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("bob")) == 200, 5))

    def test_cidr_bans_v4_and_v6(self):
        a, b = self.tgs[0], self.tgs[-1]
        r = ban(a, "cidr:192.0.2.0/24", 600)
        self.assertEqual(r.status, 200, r)
        r = ban(a, "cidr:2001:db8:77::/48")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(wait_for(lambda: status_from(b, "192.0.2.200", api_key("alice"))
                                 == 403, 5))
        self.assertTrue(wait_for(lambda: status_from(b, "2001:db8:77:1::9", api_key("alice"))
                                 == 403, 5))
        self.assertEqual(status_from(b, "::ffff:192.0.2.9", api_key("alice")), 403)
        self.assertEqual(status_from(b, "192.0.3.1", api_key("alice")), 200)
        self.assertEqual(status_from(b, "2001:db8:78::1", api_key("alice")), 200)
        # lifting names the network in any spelling of it
        self.assertEqual(unban(b, "cidr:::ffff:192.0.2.0/120").status, 200)
        self.assertEqual(unban(b, "cidr:2001:DB8:77:0::/48").status, 200)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, "192.0.2.200", api_key("alice"))
                                     == 200, 5))

    def test_ban_expires(self):
        ip = fresh_ip()
        r = ban(self.tgs[0], "ip:" + ip, 1)
        self.assertEqual(r.status, 200, r)
        until = r.json()["ban"]["until_ms"]
        self.assertEqual(until - r.json()["ban"]["created_ms"], 1000)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 200, 6),
                            "the ban did not end")
        self.assertNotIn("ip:" + ip, listed(self.tgs[0], "/admin/v1/bans", "bans", "target"))

    def test_lockout_listed_and_lifted_everywhere(self):
        a, b = self.tgs[0], self.tgs[-1]
        ip = fresh_ip("203.0.113")
        self.assertEqual(lock_out(a, ip), 429)
        locks = wait_for(lambda: listed(b, "/admin/v1/lockouts", "lockouts", "ip_key")
                         .get(ip), 5)
        self.assertTrue(locks, "the lockout is not listed on another replica")
        self.assertEqual(locks["level"], 1)
        self.assertGreater(locks["until_ms"], 0)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 429, 5))
        r = call(b, "DELETE", "/admin/v1/lockouts/" + ip)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"ip_key": ip, "unlocked": True})
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 200, 5),
                            "still locked out after the lift")
        self.assertNotIn(ip, listed(a, "/admin/v1/lockouts", "lockouts", "ip_key"))
        self.assertEqual(call(a, "DELETE", "/admin/v1/lockouts/" + ip).status, 404)
        self.assertGreaterEqual(metric(b.metrics(), "tollgate_lockouts_lifted_total"), 1)
        wait_admin_line(b, lambda x: x["action"] == "unlock" and x["target"] == ip
                        and x["result"] == "ok")

    def test_lockout_lifted_by_any_spelling_of_its_key(self):
        """An IPv6 client's lockout is keyed on its /64 ("2001:db8:..::/64",
        as inet_ntop writes it); upper case, leading zeros, no compression
        or host bits in the path name the same key."""
        a, b = self.tgs[0], self.tgs[-1]
        _ips[0] += 1
        host = "2001:db8:%x:%x::5" % (os.getpid() % 0xffff, _ips[0])
        key = "2001:db8:%x:%x::/64" % (os.getpid() % 0xffff, _ips[0])
        self.assertEqual(lock_out(a, host), 429)
        self.assertTrue(wait_for(lambda: key in listed(b, "/admin/v1/lockouts", "lockouts",
                                                       "ip_key"), 5), "not listed as " + key)
        spelled = "2001:0DB8:%04X:%04X:0:0:0:7/64" % (os.getpid() % 0xffff, _ips[0])
        r = call(b, "DELETE", "/admin/v1/lockouts/" + urllib.parse.quote(spelled, safe=""))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"ip_key": key, "unlocked": True})
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, host, api_key("alice")) == 200, 5),
                            "still locked out after the lift")
        for bad in ("2001:db8::/0", "2001:db8::/129", "2001:db8::/64x", "1.2.3.4/24"):
            r = call(b, "DELETE", "/admin/v1/lockouts/" + urllib.parse.quote(bad, safe=""))
            self.assertEqual(r.status, 400, (bad, r))


class BansMemory(TollgateCase, BanChecks):
    """No Redis: this replica's set and lockout store are the state."""
    configure = staticmethod(bans_config())

    def setUp(self):
        self.tgs = [self.tg]

    def test_read_token_lists_but_cannot_ban(self):
        ip = fresh_ip()
        for method, path, body in (("POST", "/admin/v1/bans", {"target": "ip:" + ip,
                                                                "duration": 60}),
                                   ("DELETE", "/admin/v1/bans/ip:" + ip, None),
                                   ("DELETE", "/admin/v1/lockouts/" + ip, None)):
            r = call(self.tg, method, path, body, READ_TOKEN)
            self.assertEnvelope(r, 403, "insufficient_scope")
        self.assertEqual(status_from(self.tg, ip, api_key("alice")), 200)
        for path in ("/admin/v1/bans", "/admin/v1/lockouts"):
            r = call(self.tg, "GET", path, token=READ_TOKEN)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["source"], "memory")
        self.assertEqual(call(self.tg, "GET", "/admin/v1/bans", token=None).status, 401)
        rec = wait_admin_line(self.tg, lambda x: x["action"] == "ban"
                              and x["actor"] == "sre-dashboard")
        self.assertEqual((rec["result"], rec["code"]), ("refused", "insufficient_scope"))

    def test_targets_canonical_or_refused(self):
        cases = {
            "ip:::ffff:192.0.2.33": "ip:192.0.2.33",
            "cidr:192.0.2.44/32": "ip:192.0.2.44",
            "cidr:::ffff:10.20.0.0/112": "cidr:10.20.0.0/16",
            "ip:2001:DB8:0::1": "ip:2001:db8::1",
        }
        for given, canon in cases.items():
            r = ban(self.tg, given, "1m")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["ban"]["target"], canon)
            self.assertEqual(unban(self.tg, given).status, 200)
        refused = {
            "cidr:203.0.113.7/24": "cidr:203.0.113.0/24",  # the message names the network
            "cidr:0.0.0.0/0": "every client",
            "cidr:::/0": "every client",
            "cidr:10.0.0.0/7": "min_prefix_v4",
            "cidr:2001::/16": "min_prefix_v6",
            "ip:203.0.113.300": "ip:ADDRESS",
            "host:x": "client:ID",
            "client:a b": "client:ID",
            "client:" + "x" * 129: "client:ID",
        }
        for given, why in refused.items():
            r = ban(self.tg, given)
            self.assertEnvelope(r, 400, "bad_request")
            self.assertIn(why, r.json()["error"]["message"])
        self.assertEqual(listed(self.tg, "/admin/v1/bans", "bans", "target").keys() &
                         set(cases.values()), set())

    def test_bad_bodies_change_nothing(self):
        ip = fresh_ip()
        bodies = [b"not json", b"[]", b'{"target":"ip:%s"}' % ip.encode(),
                  b'{"target":"ip:%s","duration":0}' % ip.encode(),
                  b'{"target":"ip:%s","duration":"31d"}' % ip.encode(),
                  b'{"target":"ip:%s","duration":"1.5h"}' % ip.encode(),
                  b'{"target":"ip:%s","duration":-5}' % ip.encode(),
                  b'{"target":"ip:%s","duration":60,"reason":"%s"}' % (ip.encode(), b"r" * 201),
                  b'{"target":"ip:%s","duration":60,"until":1}' % ip.encode(),
                  b'{"target":"ip:%s","target":"ip:%s","duration":60}' % (ip.encode(),
                                                                         ip.encode()),
                  b'{"target":7,"duration":60}', b"{" * 5000]
        for body in bodies:
            r = self.tg.admin("POST", "/admin/v1/bans", JSON, body, token=WRITE_TOKEN)
            self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(status_from(self.tg, ip, api_key("alice")), 200)
        for path in ("/admin/v1/bans/nonsense", "/admin/v1/lockouts/not%20an%20ip",
                     "/admin/v1/lockouts/%00"):
            self.assertEnvelope(call(self.tg, "DELETE", path), 400, "bad_request")
        self.assertEnvelope(unban(self.tg, "client:nobody-" + unique()), 404, "not_found")
        for q in ("limit=0", "limit=1001", "limit=x", "cursor=" + "c" * 400):
            self.assertEnvelope(call(self.tg, "GET", "/admin/v1/bans?" + q, token=READ_TOKEN),
                                400, "bad_request")

    def test_nul_in_path_lifts_nothing(self):
        """A path naming a target or an ip key with %00 in it names another
        one than the text before the NUL: it is refused (400), and the ban
        or lockout of the shorter name stays."""
        cid, ip = unique("nul"), fresh_ip("203.0.113")
        self.assertEqual(ban(self.tg, "client:" + cid).status, 200)
        self.assertEqual(lock_out(self.tg, ip), 429)
        for path in ("/admin/v1/bans/client:%s%%00x" % cid,
                     "/admin/v1/bans/client%%3A%s%%00" % cid,
                     "/admin/v1/lockouts/%s%%00" % ip,
                     "/admin/v1/lockouts/%s%%00%%2F64" % ip):
            with self.subTest(path=path):
                self.assertEnvelope(call(self.tg, "DELETE", path), 400, "bad_request")
        self.assertIn("client:" + cid, listed(self.tg, "/admin/v1/bans", "bans", "target"))
        self.assertEqual(status_from(self.tg, ip, api_key("alice")), 429)
        self.assertEqual(unban(self.tg, "client:" + cid).status, 200)
        # the same through a query value: the bucket reset's key
        t = unique("nulbucket")
        hdrs = dict(api_key("bob"), **{"X-Test-Bucket": t})
        got = [self.tg.get("/auth/limited/x", hdrs).status for _ in range(4)]
        self.assertEqual(got, [200, 200, 200, 429])
        key = urllib.parse.quote("c=k:bob|h:x-test-bucket=" + t, safe="")
        r = call(self.tg, "DELETE", "/admin/v1/buckets?limit=tight&key=%s%%00x" % key)
        self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(self.tg.get("/auth/limited/x", hdrs).status, 429)

    def test_jwt_sub_with_space_or_utf8_banned(self):
        """A JWT sub may hold a space or UTF-8 (X-Auth-Client-Id carries it):
        such a client is banned as client:ID with those bytes %XX-escaped."""
        for sub, target in (("erin smith " + unique(), None), ("Jos\u00e9-" + unique(), None)):
            target = "client:" + urllib.parse.quote(sub, safe="")
            tok = bearer(make_jwt({"sub": sub, "scope": "orders:read"}))
            self.assertEqual(self.tg.get("/auth/orders/1", tok).status, 200)
            r = ban(self.tg, target)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["ban"]["target"], target)
            self.assertEnvelope(self.tg.get("/auth/orders/1", tok), 403, "banned")
            self.assertEqual(unban(self.tg, target).status, 200)
            self.assertEqual(self.tg.get("/auth/orders/1", tok).status, 200)

    def test_reason_sanitised(self):
        ip = fresh_ip()
        r = ban(self.tg, "ip:" + ip, "1m", "line\nbreak\x1b[31m")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["ban"]["reason"], "line?break?[31m")
        self.assertEqual(unban(self.tg, "ip:" + ip).status, 200)

    def test_paging(self):
        tag = unique("pg")
        for i in range(230):
            self.assertEqual(ban(self.tg, "client:%s-%03d" % (tag, i), "10m").status, 200)
        seen, cursor, pages = [], "", 0
        while True:
            r = call(self.tg, "GET", "/admin/v1/bans?limit=100&cursor=" +
                     urllib.parse.quote(cursor, safe=""), token=READ_TOKEN)
            self.assertEqual(r.status, 200, r)
            page = r.json()
            self.assertLessEqual(len(page["bans"]), 100)
            seen += [b["target"] for b in page["bans"]]
            pages += 1
            if not page["more"]:
                self.assertIsNone(page["next"])
                break
            cursor = page["next"]
        mine = [t for t in seen if t.startswith("client:" + tag)]
        self.assertEqual(len(mine), 230)
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertGreaterEqual(pages, 3)
        for i in range(230):
            self.assertEqual(unban(self.tg, "client:%s-%03d" % (tag, i)).status, 200)

    def test_explain_reports_the_ban(self):
        ip = fresh_ip()
        self.assertEqual(ban(self.tg, "ip:" + ip, "1m").status, 200)
        r = call(self.tg, "POST", "/admin/v1/explain",
                 {"method": "GET", "path": "/auth/orders/1", "as_client": "alice",
                  "peer": ip}, READ_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["banned"], "ip", r.json())
        self.assertEqual(r.json()["decision"]["status"], 403)
        self.assertIsNone(r.json()["authentication"])
        self.assertEqual(unban(self.tg, "ip:" + ip).status, 200)
        r = call(self.tg, "POST", "/admin/v1/explain",
                 {"method": "GET", "path": "/auth/orders/1", "as_client": "alice",
                  "peer": ip}, READ_TOKEN)
        self.assertIsNone(r.json()["banned"])


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class BansFleet(TollgateCase, BanChecks):
    """Three replicas on one Redis server."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)
        cls.fleet = [cls.spawn_class(bans_config([cls.redis.addr])) for _ in range(3)]

    def setUp(self):
        self.tgs = self.fleet

    def test_replica_started_later_refuses_at_once(self):
        ip = fresh_ip()
        self.assertEqual(ban(self.tgs[0], "ip:" + ip, "10m").status, 200)
        self.assertEqual(ban(self.tgs[0], "client:carol", "10m").status, 200)
        late = self.spawn(bans_config([self.redis.addr]))
        # ready means the ban index was read: the first request is refused
        self.assertEqual(status_from(late, ip, api_key("alice")), 403)
        self.assertEqual(status_from(late, fresh_ip(), api_key("carol")), 403)
        self.assertEqual(call(late, "GET", "/admin/v1/bans", token=READ_TOKEN).json()["source"],
                         "redis")
        self.assertEqual(unban(self.tgs[1], "ip:" + ip).status, 200)
        self.assertEqual(unban(self.tgs[1], "client:carol").status, 200)
        self.assertTrue(wait_for(lambda: status_from(late, ip, api_key("alice")) == 200, 5))

    def test_resync_is_authoritative(self):
        """The index is the truth: a replica that missed an unban (here the
        index changed behind the channel's back) is not told, but a resync
        (a replica starting, a subscription coming back) replaces its set."""
        ip = fresh_ip()
        self.assertEqual(ban(self.tgs[0], "ip:" + ip, "10m").status, 200)
        # the 200 says Redis stored and published it; each replica applies
        # the message when it arrives: wait for all before going behind it
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 403, 5),
                            "a replica never applied the ban")
        with self.redis.client() as c:
            c.call("HDEL", "tg:{bans}", "ip:" + ip)  # no "u" message
        self.assertEqual(status_from(self.tgs[1], ip, api_key("alice")), 403)
        late = self.spawn(bans_config([self.redis.addr]))
        self.assertEqual(status_from(late, ip, api_key("alice")), 200)
        self.assertNotIn("ip:" + ip, listed(late, "/admin/v1/bans", "bans", "target"))
        # the others learn it from the resync their resubscription makes
        with self.redis.client() as c:
            self.assertGreaterEqual(c.call("CLIENT", "KILL", "TYPE", "pubsub"), 3)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: status_from(tg, ip, api_key("alice")) == 200, 10),
                            "a replica kept a ban the index no longer holds")

    def test_redis_records_the_ban(self):
        ip = fresh_ip()
        self.assertEqual(ban(self.tgs[2], "ip:" + ip, "10m", "abuse ticket 7").status, 200)
        with self.redis.client() as c:
            rec = c.call("HGET", "tg:{bans}", "ip:" + ip)
            self.assertTrue(rec)
            parts = rec.decode().split(" ", 3)
            self.assertEqual(parts[2:], ["ci-deploy", "abuse ticket 7"])
            self.assertGreater(c.call("PTTL", "tg:{bans}"), 0)
        self.assertEqual(unban(self.tgs[0], "ip:" + ip).status, 200)
        with self.redis.client() as c:
            self.assertIsNone(c.call("HGET", "tg:{bans}", "ip:" + ip))


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class BanScript(unittest.TestCase):
    """lua/ban.lua on a real redis-server: a ban's work is bounded (it drops
    at most a batch of ended bans through the {bans}:until index, all of
    them only at max_entries), and a hash an earlier version wrote without
    the index is indexed once."""
    H, Z = "tg:{bans}", "tg:{bans}:until"

    @classmethod
    def setUpClass(cls):
        cls.redis = rh.RedisServer().start()
        cls.addClassCleanup(cls.redis.close)
        cls.c = cls.redis.client()
        cls.addClassCleanup(cls.c.close)
        cls.sha = rh.load_script(cls.c, os.path.join(os.path.dirname(rh.BUCKET_LUA),
                                                     "ban.lua"))

    def setUp(self):
        self.c.call("DEL", self.H, self.Z)

    def ban(self, target, ms=60000, maximum=100000):
        return self.c.call("EVALSHA", self.sha, 2, self.H, self.Z, "b", target, ms, "ops",
                           "it", maximum, "")

    def now_ms(self):
        s, us = self.c.call("TIME")
        return int(s) * 1000 + int(us) // 1000

    def ended(self, n):
        """n bans that ended a minute ago, in both keys."""
        past = self.now_ms() - 60000
        cmds = [("HSET", self.H, "ip:10.9.%d.%d" % (i // 250, i % 250 + 1),
                 "%d %d ops old" % (past, past - 1000)) for i in range(n)]
        cmds += [("ZADD", self.Z, past, "ip:10.9.%d.%d" % (i // 250, i % 250 + 1))
                 for i in range(n)]
        self.c.pipeline(cmds)

    def test_a_ban_drops_a_bounded_batch(self):
        self.ended(1000)
        self.ban("ip:192.0.2.1")
        # 64 dropped, not 1000: the rest go with later bans (or the key's expiry)
        self.assertEqual(self.c.call("HLEN", self.H), 1000 - 64 + 1)
        self.assertEqual(self.c.call("ZCARD", self.Z), 1000 - 64 + 1)
        self.assertIsNotNone(self.c.call("HGET", self.H, "ip:192.0.2.1"))
        self.assertGreater(self.c.call("PTTL", self.Z), 50000)

    def test_full_counts_only_live_bans(self):
        self.ended(300)
        for i in range(3):
            self.ban("ip:192.0.2.%d" % (i + 1), maximum=3)
        # at the bound every ended ban was dropped, and only the live count
        self.assertEqual(self.c.call("HLEN", self.H), 3)
        with self.assertRaises(rh.RespError) as e:
            self.ban("ip:192.0.2.9", maximum=3)
        self.assertIn("full", str(e.exception))
        self.ban("ip:192.0.2.1", ms=120000, maximum=3)  # a held target may be renewed

    def test_unban_leaves_neither_key(self):
        self.ban("client:erin")
        self.assertEqual(self.c.call("EVALSHA", self.sha, 2, self.H, self.Z, "u",
                                     "client:erin", ""), 1)
        self.assertIsNone(self.c.call("HGET", self.H, "client:erin"))
        self.assertIsNone(self.c.call("ZSCORE", self.Z, "client:erin"))

    def test_a_hash_without_its_index_is_indexed_once(self):
        """A fleet upgrading from the version that wrote the hash alone."""
        now = self.now_ms()
        self.c.call("HSET", self.H, "ip:198.51.100.1", "%d %d ops old" % (now + 600000, now),
                    "ip:198.51.100.2", "%d %d ops old" % (now - 1, now - 9000))
        self.c.call("PEXPIREAT", self.H, now + 601000)
        self.ban("ip:198.51.100.3", ms=1000)
        self.assertEqual(self.c.call("ZSCORE", self.Z, "ip:198.51.100.1"),
                         str(now + 600000).encode())
        self.assertIsNone(self.c.call("HGET", self.H, "ip:198.51.100.2"), "ended: dropped")
        # the expiry is the last end of either: the old entry's, not the new ban's
        for k in (self.H, self.Z):
            self.assertGreater(self.c.call("PTTL", k), 500000, k)

@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class BansCluster(TollgateCase):
    """Two replicas on the 6-node cluster: a ban and a lift on one are in
    force on the other."""
    shared_server = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def test_ban_unban_and_unlock_across_replicas(self):
        conf = bans_config(self.cluster.seeds, mode="cluster")
        a, b = self.spawn(conf), self.spawn(conf)
        ip = fresh_ip()
        self.assertEqual(ban(a, "ip:" + ip, "10m").status, 200)
        self.assertTrue(wait_for(lambda: status_from(b, ip, api_key("alice")) == 403, 5))
        self.assertEqual(status_from(b, ip, BAD_KEY), 403)
        self.assertIn("ip:" + ip, listed(b, "/admin/v1/bans", "bans", "target"))
        self.assertEqual(unban(b, "ip:" + ip).status, 200)
        self.assertTrue(wait_for(lambda: status_from(a, ip, api_key("alice")) == 200, 5))
        # a lockout: listed and lifted across the cluster's slots
        other = fresh_ip("203.0.113")
        self.assertEqual(lock_out(a, other), 429)
        self.assertTrue(wait_for(lambda: other in listed(b, "/admin/v1/lockouts", "lockouts",
                                                         "ip_key"), 5))
        self.assertEqual(call(b, "DELETE", "/admin/v1/lockouts/" + other).status, 200)
        self.assertTrue(wait_for(lambda: status_from(a, other, api_key("alice")) == 200, 5))



@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class BansClientLeaves(TollgateCase):
    """A ban, an unban, an unlock or a lockout listing whose client leaves
    (FIN or RST) while its Redis call is held: the writes complete and are
    trailed, nothing answers a request that is gone (no use of a freed
    evhttp request: the ASan build reports nothing), and a replica stopped
    while calls are still held exits cleanly."""
    shared_server = False

    def setUp(self):
        super().setUp()
        from faultproxy import FaultProxy
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)
        self.proxy = FaultProxy(("127.0.0.1", self.redis.port)).start()
        self.addCleanup(self.proxy.close)

    def conf(self, cfg):
        bans_config([self.proxy.addr])(cfg)
        cfg["redis"]["timeout_ms"] = 60000  # nothing times out while held
        return cfg

    def send(self, tg, method, path, body=b"", reset=False):
        s = socket.create_connection(("127.0.0.1", tg.admin_port), timeout=5)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (method, path, WRITE_TOKEN, len(body))).encode() + body)
        return s

    def leave(self, tg, method, path, marker, body=b"", reset=False):
        before = self.proxy.sent(marker)
        s = self.send(tg, method, path, body, reset)
        try:
            self.assertTrue(wait_for(lambda: self.proxy.sent(marker) > before, 10, 0.005),
                            "no Redis call for %r" % marker)
        finally:
            s.close()

    def test_client_leaves_mid_call(self):
        tg = self.spawn(self.conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        gone, kept, locked = fresh_ip(), fresh_ip(), fresh_ip("203.0.113")
        self.assertEqual(ban(tg, "ip:" + kept).status, 200)
        self.assertEqual(lock_out(tg, locked), 429)
        self.assertTrue(wait_for(lambda: locked in listed(tg, "/admin/v1/lockouts",
                                                          "lockouts", "ip_key"), 5))
        self.proxy.mode = "hold"
        try:
            self.leave(tg, "POST", "/admin/v1/bans", gone.encode(), json.dumps(
                {"target": "ip:" + gone, "duration": "1h"}).encode())
            self.leave(tg, "DELETE", "/admin/v1/bans/ip:" + kept, kept.encode(), reset=True)
            self.leave(tg, "DELETE", "/admin/v1/lockouts/" + locked, locked.encode())
            self.leave(tg, "GET", "/admin/v1/lockouts", b"ZRANGEBYSCORE", reset=True)
        finally:
            self.proxy.mode = "pass"  # the late replies come, to no one
        self.assertTrue(wait_for(lambda: status_from(tg, gone) == 403, 5))
        self.assertTrue(wait_for(lambda: status_from(tg, kept, api_key("alice")) == 200, 5))
        self.assertTrue(wait_for(lambda: status_from(tg, locked, api_key("alice")) == 200, 5))
        for action, target in (("ban", "ip:" + gone), ("unban", "ip:" + kept),
                               ("unlock", locked)):
            wait_admin_line(tg, lambda x: (x["action"], x["target"], x["result"]) ==
                            (action, target, "ok"))
        # stopped while a ban and a listing are held: a clean exit
        self.proxy.mode = "hold"
        held = [self.send(tg, "POST", "/admin/v1/bans", json.dumps(
                    {"target": "ip:" + fresh_ip(), "duration": "1h"}).encode()),
                self.send(tg, "GET", "/admin/v1/lockouts")]
        try:
            self.assertTrue(wait_for(lambda: self.proxy.sent(b"ZRANGEBYSCORE") >= 2, 10))
            self.assertTrue(tg.alive())
            self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        finally:
            for s in held:
                s.close()
            self.proxy.mode = "pass"
        self.assertIsNone(tg.sanitizer_report())


if __name__ == "__main__":
    unittest.main()
