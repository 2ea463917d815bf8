"""Revocation management through the real admin API (server/admin_revoc.c,
auth/revoke.c, auth/shared.c, lua/revoke.lua, lua/unrevoke.lua;
docs/reference.md §4 "Revocations"): subject revocations scoped by issuer
(an IdP's "erin" is not the HS "erin"), undo on every replica at once and on
a replica started afterwards, the paged listing, GET of a subject, expiry of
subject revocations, read vs write tokens — on the memory backend, three
replicas on one Redis, and three on the 6-node cluster."""
import json
import os
import shutil
import socket
import struct
import time
import unittest
import urllib.parse
import uuid

from harness import (AUDIENCE, ISSUER, TollgateCase, bearer, make_jwt, metric,
                     standard_config, unique, wait_for)
import harness
from faultproxy import FaultProxy
from idp import Idp
from jose import Key, token
from test_admin_trail import READ_TOKEN, WRITE_TOKEN, wait_admin_line, with_tokens

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None
JSON = {"Content-Type": "application/json"}


def q(s):
    return urllib.parse.quote(s, safe="")


class RevocationApi:
    """Calls shared by the memory and the Redis cases."""

    def post(self, tg, path, body, token=WRITE_TOKEN):
        return tg.admin("POST", path, JSON, json.dumps(body).encode(), token=token)

    def revoke_subject(self, tg, sub, iss=None, before=None):
        body = {"sub": sub}
        if iss is not None:
            body["iss"] = iss
        if before is not None:
            body["before"] = before
        r = self.post(tg, "/admin/v1/revocations/subject", body)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def subject_path(self, sub, iss=None):
        return "/admin/v1/revocations/subject/" + q(sub) + (
            "?iss=" + q(iss) if iss is not None else "")

    def list_all(self, tg, kind, limit, token=READ_TOKEN):
        """Every entry of `kind`, page by page; the pages as a list too."""
        entries, pages, cursor = [], [], None
        while True:
            path = "/admin/v1/revocations?kind=%s&limit=%d" % (kind, limit)
            if cursor:
                path += "&cursor=" + q(cursor)
            r = tg.admin("GET", path, token=token)
            self.assertEqual(r.status, 200, r)
            page = r.json()
            self.assertLessEqual(len(page["entries"]), limit)
            pages.append(page)
            entries += page["entries"]
            cursor = page["next"]
            if cursor is None:
                return entries, pages
            self.assertLess(len(pages), 100, "the listing never ends")


class RevocationsMemory(RevocationApi, TollgateCase):
    """Memory backend: this replica's set is the store."""

    @staticmethod
    def configure(cfg):
        return with_tokens(cfg)

    def ok(self, tok):
        return self.tg.get("/auth/orders/1", bearer(tok)).status

    def test_scoped_subject_refuses_only_that_issuer(self):
        sub = unique("erin")
        tok = make_jwt({"sub": sub, "scope": "orders:read", "iat": int(time.time()) - 5})
        body = self.revoke_subject(self.tg, sub, iss="https://other-idp.example")
        self.assertEqual((body["scope"], body["iss"], body["sub"]),
                         ("issuer", "https://other-idp.example", sub))
        self.assertEqual(self.ok(tok), 200)  # the HS token's iss is not that one
        body = self.revoke_subject(self.tg, sub, iss=ISSUER)
        self.assertEqual(self.ok(tok), 401)
        r = self.tg.admin("GET", self.subject_path(sub, ISSUER), token=READ_TOKEN)
        self.assertEqual(r.status, 200, r)
        ans = r.json()
        self.assertTrue(ans["revoked"])
        self.assertEqual([(e["iss"], e["scope"]) for e in ans["revocations"]],
                         [(ISSUER, "issuer")])
        # the unscoped form says it applies to every issuer
        other = unique("frank")
        body = self.revoke_subject(self.tg, other)
        self.assertEqual((body["scope"], body["iss"]), ("all_issuers", None))
        self.assertIsInstance(body["expires"], int)
        self.assertEqual(body["expires"] - body["before"], 86400)  # the default 1d

    def test_scoped_subject_issuer_near_miss_refused(self):
        """An iss that misses the configured issuer only by a trailing slash or
        by case would match no token (the verifier compares issuers exactly and
        refuses any other as bad_issuer): a 200 would say a subject is cut off
        while its tokens still pass.  It is a 400 naming the issuer meant, and
        nothing is stored."""
        sub = unique("hal")
        tok = make_jwt({"sub": sub, "scope": "orders:read", "iat": int(time.time()) - 5})
        n = metric(self.tg.metrics(), "tollgate_revocations_cached")
        for iss in (ISSUER + "/", ISSUER.upper(), ISSUER.upper() + "/"):
            with self.subTest(iss=iss):
                r = self.post(self.tg, "/admin/v1/revocations/subject", {"sub": sub, "iss": iss})
                body = self.assertEnvelope(r, 400, "bad_request")
                self.assertIn(ISSUER, body["error"]["message"])
        self.assertEqual(metric(self.tg.metrics(), "tollgate_revocations_cached"), n)
        self.assertEqual(self.ok(tok), 200)
        self.revoke_subject(self.tg, sub, iss=ISSUER)  # the exact issuer is taken
        self.assertEqual(self.ok(tok), 401)
        # an undo naming the issuer with a NUL after it names another issuer
        r = self.tg.admin("DELETE", self.subject_path(sub, ISSUER) + "%00x", token=WRITE_TOKEN)
        self.assertEnvelope(r, 400, "bad_request")
        self.assertEqual(self.ok(tok), 401)

    def test_trail_targets_unambiguous(self):
        """A sub or iss may hold spaces, '%' and '*': the trail's target must
        still tell a scoped revocation from an every-issuer one of another
        subject (\"ted iss=https://idp.example\" unscoped vs \"ted\" of
        https://idp.example), and the undo of issuer "*" from the every-issuer
        undo."""
        ted = unique("ted")
        targets = {}
        for name, body in (("unscoped", {"sub": ted + " iss=https://idp.example"}),
                           ("scoped", {"sub": ted, "iss": "https://idp.example"}),
                           ("star", {"sub": ted, "iss": "*"}),
                           ("all", {"sub": ted})):
            rid = "trail-%s-%s" % (name, ted)
            r = self.tg.admin("POST", "/admin/v1/revocations/subject",
                              dict(JSON, **{"X-Request-ID": rid}),
                              json.dumps(body).encode(), token=WRITE_TOKEN)
            self.assertEqual(r.status, 200, r)
            targets[name] = wait_admin_line(
                self.tg, lambda x, rid=rid: x.get("request_id") == rid)["target"]
        self.assertNotEqual(targets["unscoped"], targets["scoped"], targets)
        self.assertEqual(targets["scoped"], ted + " iss=https://idp.example")
        self.assertEqual(targets["unscoped"], ted + "%20iss=https://idp.example")
        undos = {}
        for name, path in (("star", self.subject_path(ted, "*")),
                           ("all", self.subject_path(ted))):
            rid = "undo-%s-%s" % (name, ted)
            r = self.tg.admin("DELETE", path, token=WRITE_TOKEN, headers={"X-Request-ID": rid})
            self.assertEqual(r.status, 200, r)
            undos[name] = wait_admin_line(
                self.tg, lambda x, rid=rid: x.get("request_id") == rid)["target"]
        self.assertEqual(undos, {"star": "sub=%s iss=%%2A" % ted, "all": "sub=%s iss=*" % ted})

    def test_undo_and_404(self):
        sub = unique("gina")
        tok = make_jwt({"sub": sub, "scope": "orders:read", "iat": int(time.time()) - 5})
        self.revoke_subject(self.tg, sub)
        self.assertEqual(self.ok(tok), 401)
        before = self.tg.metrics()
        r = self.tg.admin("DELETE", self.subject_path(sub), token=READ_TOKEN)
        self.assertEnvelope(r, 403, "insufficient_scope")
        self.assertEqual(self.ok(tok), 401)
        r = self.tg.admin("DELETE", self.subject_path(sub), token=WRITE_TOKEN,
                          headers={"X-Request-ID": "undo-" + sub})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["sub"], r.json()["undone"]), (sub, True))
        self.assertEqual(self.ok(tok), 200)
        rec = wait_admin_line(self.tg, lambda x: x.get("request_id") == "undo-" + sub)
        self.assertEqual((rec["action"], rec["result"], rec["actor"]),
                         ("unrevoke", "ok", "ci-deploy"))
        self.assertEqual(rec["target"], "sub=%s iss=*" % sub)
        after = self.tg.metrics()
        self.assertEqual(metric(after, "tollgate_revocations_undone_total"),
                         metric(before, "tollgate_revocations_undone_total") + 1)
        r = self.tg.admin("DELETE", self.subject_path(sub), token=WRITE_TOKEN)
        self.assertEnvelope(r, 404, "not_found")
        # a jti
        jti = unique("jti")
        tok = make_jwt({"jti": jti, "scope": "orders:read"})
        self.assertEqual(self.post(self.tg, "/admin/v1/revocations", {"token": tok}).status, 200)
        self.assertEqual(self.ok(tok), 401)
        r = self.tg.admin("DELETE", "/admin/v1/revocations/" + q(jti), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.ok(tok), 200)
        r = self.tg.admin("GET", "/admin/v1/revocations/" + q(jti), token=READ_TOKEN)
        self.assertFalse(r.json()["revoked"])
        self.assertEnvelope(
            self.tg.admin("DELETE", "/admin/v1/revocations/" + q(jti), token=WRITE_TOKEN),
            404, "not_found")

    def test_route_order_and_slash_in_jti(self):
        # /subject/{sub} is the subject question, never jti "subject/erin"
        jti = "subject/" + unique("x")
        r = self.post(self.tg, "/admin/v1/revocations", {"jti": jti, "exp": 4102444800})
        self.assertEqual(r.status, 200, r)
        r = self.tg.admin("GET", "/admin/v1/revocations/" + q(jti), token=READ_TOKEN)
        self.assertEqual((r.status, r.json()["revoked"]), (200, True))
        r = self.tg.admin("GET", "/admin/v1/revocations/" + jti, token=READ_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["sub"], jti[len("subject/"):])
        self.assertFalse(r.json()["revoked"])
        r = self.tg.admin("GET", "/admin/v1/revocations/a/b", token=READ_TOKEN)
        self.assertEnvelope(r, 400, "bad_request")

    def test_bad_input_changes_nothing(self):
        n = metric(self.tg.metrics(), "tollgate_revocations_cached")
        for body in ({"sub": "x", "iss": 5}, {"sub": "x", "iss": ""}, {"sub": "x", "iss": "a\nb"},
                     {"sub": "x", "iss": "i" * 257}, {"sub": "x", "aud": "y"},
                     {"sub": "x", "before": 1}):  # 1970: expired long ago
            with self.subTest(body=body):
                r = self.post(self.tg, "/admin/v1/revocations/subject", body)
                self.assertEnvelope(r, 400, "bad_request")
        for query in ("", "?kind=tokens", "?kind=jti&limit=0", "?kind=jti&limit=1001",
                      "?kind=jti&cursor=zzz", "?kind=jti&cursor=m0", "?kind=jti&x=1",
                      "?kind=jti&kind=jti", "?kind=subject&cursor=j5.0",
                      "?kind=jti&cursor=m" + "41" * 700):
            with self.subTest(query=query):
                r = self.tg.admin("GET", "/admin/v1/revocations" + query, token=READ_TOKEN)
                self.assertEnvelope(r, 400, "bad_request")
        for path in (self.subject_path("x") + "?iss=a&iss=b", "/admin/v1/revocations/subject/x?foo=1",
                     "/admin/v1/revocations/subject/%00"):
            with self.subTest(path=path):
                self.assertEnvelope(self.tg.admin("GET", path, token=READ_TOKEN), 400,
                                    "bad_request")
        self.assertEqual(metric(self.tg.metrics(), "tollgate_revocations_cached"), n)

    def test_list_pages_in_memory(self):
        mark = unique("pg")
        subs = ["%s-%d" % (mark, i) for i in range(7)]
        for i, s in enumerate(subs):
            self.revoke_subject(self.tg, s, iss="https://idp-%d.example" % (i % 2))
        self.revoke_subject(self.tg, subs[0])  # and one of every issuer
        entries, pages = self.list_all(self.tg, "subject", 3)
        mine = [(e["iss"], e["sub"]) for e in entries if e["sub"].startswith(mark)]
        self.assertEqual(len(mine), 8, mine)
        self.assertEqual(len(set(mine)), 8, "an entry listed twice")
        self.assertGreater(len(pages), 2)
        self.assertTrue(all(p["source"] == "memory" for p in pages))
        exp = int(time.time()) + 3600
        jtis = ["%s-j%d" % (mark, i) for i in range(5)]
        for j in jtis:  # one exp for all: the order is by jti within it
            r = self.post(self.tg, "/admin/v1/revocations", {"jti": j, "exp": exp})
            self.assertEqual(r.status, 200, r)
        entries, pages = self.list_all(self.tg, "jti", 2)
        self.assertEqual([e["jti"] for e in entries if e["jti"].startswith(mark)], jtis)
        self.assertTrue(all(e["exp"] == exp for e in entries if e["jti"] in jtis))


class FleetBase(RevocationApi):
    """Replicas sharing one store; IdP and HS tokens of the same sub."""
    shared_server = False
    lifetime = None

    def redis_conf(self):  # pragma: no cover - subclasses
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.rs = Key("rsa", "rs-%s" % uuid.uuid4().hex[:6])
        self.idp = Idp(keys=[self.rs.jwk("RS256")])
        self.addCleanup(self.idp.stop)

    def conf(self, cfg):
        with_tokens(cfg)
        cfg["redis"] = self.redis_conf()
        for lim in cfg["limits"]:
            lim["on_redis_error"] = "local"
        cfg["auth"]["jwt"]["providers"] = [{
            "name": "idp", "issuer": self.idp.issuer, "audiences": [AUDIENCE],
            "algorithms": ["RS256"], "discovery": True, "ca_file": self.idp.ca_file}]
        if self.lifetime is not None:
            cfg["auth"]["revocation"] = {"max_token_lifetime": self.lifetime}
        return cfg

    def fleet(self, n=3):
        return [self.spawn(self.conf) for _ in range(n)]

    def idp_tok(self, sub, **claims):
        c = {"sub": sub, "scope": "orders:read", "iat": int(time.time()) - 5}
        c.update(claims)
        return token(self.rs, "RS256", c, iss=self.idp.issuer)

    def hs_tok(self, sub, **claims):
        c = {"sub": sub, "scope": "orders:read", "iat": int(time.time()) - 5}
        c.update(claims)
        return make_jwt(c)

    def status(self, tg, tok):
        return tg.get("/auth/orders/1", bearer(tok)).status

    def wait_status(self, tgs, tok, want, timeout=10.0):
        for tg in tgs:
            got = wait_for(lambda: self.status(tg, tok) == want, timeout)
            self.assertTrue(got, "replica %d: not %d" % (tgs.index(tg), want))


class FleetTests(FleetBase):
    """Three replicas on one store (each subclass says which)."""

    def test_scoped_subject_then_undo_across_the_fleet(self):
        tgs = self.fleet()
        sub = unique("erin")
        idp, hs = self.idp_tok(sub), self.hs_tok(sub)
        self.wait_status(tgs, idp, 200)
        self.assertEqual(self.status(tgs[0], hs), 200)
        body = self.revoke_subject(tgs[0], sub, iss=self.idp.issuer)
        self.assertEqual(body["scope"], "issuer")
        self.wait_status(tgs, idp, 401)
        for tg in tgs:  # the HS "erin" is someone else
            self.assertEqual(self.status(tg, hs), 200)
        # the subject question, on another replica
        r = tgs[1].admin("GET", self.subject_path(sub, self.idp.issuer), token=READ_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["revoked"])
        r = tgs[1].admin("GET", self.subject_path(sub), token=READ_TOKEN)
        self.assertFalse(r.json()["revoked"])  # no every-issuer entry
        # a read token may not undo
        self.assertEnvelope(tgs[2].admin("DELETE", self.subject_path(sub, self.idp.issuer),
                                         token=READ_TOKEN), 403, "insufficient_scope")
        self.assertEqual(self.status(tgs[2], idp), 401)
        # the undo on C reaches every replica
        r = tgs[2].admin("DELETE", self.subject_path(sub, self.idp.issuer), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.wait_status(tgs, idp, 200)
        for tg in tgs:
            r = tg.admin("GET", self.subject_path(sub, self.idp.issuer), token=READ_TOKEN)
            self.assertFalse(r.json()["revoked"])
        # a replica started after the undo loads the index without it
        late = self.spawn(self.conf)
        self.assertEqual(self.status(late, idp), 200)
        self.assertEnvelope(tgs[0].admin("DELETE", self.subject_path(sub, self.idp.issuer),
                                         token=WRITE_TOKEN), 404, "not_found")

    def test_jti_undo_and_late_replica(self):
        tgs = self.fleet()
        jti = unique("jti")
        tok = self.hs_tok("henry", jti=jti)
        r = self.post(tgs[1], "/admin/v1/revocations", {"token": tok})
        self.assertEqual(r.status, 200, r)
        self.wait_status(tgs, tok, 401)
        gauges = [metric(tg.metrics(), "tollgate_revocations_cached") for tg in tgs]
        r = tgs[0].admin("DELETE", "/admin/v1/revocations/" + q(jti), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["jti"], jti)
        self.wait_status(tgs, tok, 200)
        for tg, g in zip(tgs, gauges):  # the gauge follows the undo
            self.assertTrue(wait_for(
                lambda: metric(tg.metrics(), "tollgate_revocations_cached") == g - 1, 5.0))
        late = self.spawn(self.conf)
        self.assertEqual(self.status(late, tok), 200)

    def test_list_pages_from_redis(self):
        tgs = self.fleet(2)
        mark = unique("lp")
        exp = int(time.time()) + 3600
        jtis = ["%s-%02d" % (mark, i) for i in range(9)]
        for i, j in enumerate(jtis):  # three share an exp: ties across pages
            r = self.post(tgs[i % 2], "/admin/v1/revocations",
                          {"jti": j, "exp": exp + (0 if i < 3 else i)})
            self.assertEqual(r.status, 200, r)
        subs = ["%s-s%d" % (mark, i) for i in range(5)]
        for i, s in enumerate(subs):
            self.revoke_subject(tgs[i % 2], s, iss=self.idp.issuer if i % 2 else None)
        entries, pages = self.list_all(tgs[1], "jti", 2)
        got = [e["jti"] for e in entries if e["jti"].startswith(mark)]
        self.assertEqual(sorted(got), jtis)
        self.assertEqual(len(got), len(set(got)), "a jti listed twice")
        self.assertGreaterEqual(len(pages), 5)
        self.assertTrue(all(p["source"] == "redis" for p in pages))
        self.assertEqual([e["exp"] for e in entries], sorted(e["exp"] for e in entries))
        entries, pages = self.list_all(tgs[0], "subject", 2)
        got = {(e["iss"], e["sub"]) for e in entries if e["sub"].startswith(mark)}
        want = {(self.idp.issuer if i % 2 else None, s) for i, s in enumerate(subs)}
        self.assertEqual(got, want)
        # a cursor of the other kind, or of memory, is refused
        r = tgs[0].admin("GET", "/admin/v1/revocations?kind=jti&cursor=s0.0", token=READ_TOKEN)
        self.assertEnvelope(r, 400, "bad_request")


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RevocationsRedis(FleetTests, TollgateCase):
    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def redis_conf(self):
        return {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 500}


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RevocationsMissedUndo(FleetBase, TollgateCase):
    """A replica cut off from Redis while a revocation is undone hears no
    message; once it is back, its resync replaces its set and it forgets
    the undone revocation."""

    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def redis_conf(self):
        return {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 500}

    def test_resync_forgets_an_undo_it_missed(self):
        proxy = FaultProxy(("127.0.0.1", self.redis.port)).start()
        self.addCleanup(proxy.close)
        a = self.spawn(self.conf)

        def via_proxy(cfg):
            self.conf(cfg)
            cfg["redis"]["nodes"] = [proxy.addr]
            return cfg
        b = self.spawn(via_proxy)
        jti = unique("missed")
        tok = self.hs_tok("julia", jti=jti)
        self.assertEqual(self.post(a, "/admin/v1/revocations", {"token": tok}).status, 200)
        self.wait_status([a, b], tok, 401)
        proxy.mode = "blackhole"  # b's connections: nothing either way
        r = a.admin("DELETE", "/admin/v1/revocations/" + q(jti), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.wait_status([a], tok, 200)
        self.assertEqual(self.status(b, tok), 401)  # the message never reached b
        proxy.mode = "pass"  # b reconnects, resubscribes and resyncs
        self.assertTrue(wait_for(lambda: self.status(b, tok) == 200, 30.0),
                        "b still refuses a token whose revocation was undone")


OLD_BIN = os.environ.get("TOLLGATE_OLD_BIN", "")


class OldTollgate(harness.Tollgate):
    """A replica of the version before this one (TOLLGATE_OLD_BIN)."""

    def start(self, args=(), wait=True):
        saved, harness.TOLLGATE_BIN = harness.TOLLGATE_BIN, OLD_BIN
        try:
            super().start(args, wait)
        finally:
            harness.TOLLGATE_BIN = saved


@unittest.skipUnless(HAVE_REDIS and OLD_BIN and os.access(OLD_BIN, os.X_OK),
                     "TOLLGATE_OLD_BIN (a build of the version before) not given")
class RevocationsMixedFleet(FleetBase, TollgateCase):
    """A rolling update: an old and a new replica on one Redis
    (docs/upgrading.md): an old replica never reads a scoped entry as one of
    every issuer, a new one reads every old entry as one of every issuer, an
    old one keeps refusing what it did not hear undone."""

    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def redis_conf(self):
        return {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 500}

    def test_old_and_new_side_by_side(self):
        new = self.spawn(self.conf)
        old = OldTollgate(self.conf)
        self.addCleanup(harness._finish, old)
        # scoped, written by the new one: the old one neither over- nor
        # (for the HS token) wrongly revokes; it cannot enforce the scope
        sub = unique("kim")
        idp, hs = self.idp_tok(sub), self.hs_tok(sub)
        self.wait_status([new, old], idp, 200)
        self.revoke_subject(new, sub, iss=self.idp.issuer)
        self.wait_status([new], idp, 401)
        self.assertEqual(self.status(new, hs), 200)
        self.assertEqual(self.status(old, hs), 200)  # never read as every issuer's
        self.assertEqual(self.status(old, idp), 200)  # documented: old replicas ignore it
        # unscoped, written by the old one: the new one refuses at every issuer
        sub2 = unique("lee")
        r = self.post(old, "/admin/v1/revocations/subject", {"sub": sub2})
        self.assertEqual(r.status, 200, r)
        self.wait_status([new, old], self.idp_tok(sub2), 401)
        self.wait_status([new, old], self.hs_tok(sub2), 401)
        late = self.spawn(self.conf)  # and one started afterwards
        self.assertEqual(self.status(late, self.idp_tok(sub2)), 401)
        r = late.admin("GET", self.subject_path(sub2), token=READ_TOKEN)
        self.assertEqual([e["scope"] for e in r.json()["revocations"]], ["all_issuers"])
        # an undo on the new one: the old one keeps refusing (too strict)
        r = new.admin("DELETE", self.subject_path(sub2), token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.wait_status([new, late], self.hs_tok(sub2), 200)
        self.assertEqual(self.status(old, self.hs_tok(sub2)), 401)


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RevocationsClientLeaves(RevocationApi, TollgateCase):
    """An undo or a listing whose client leaves while its Redis call is held
    (the proxy's "hold"): the undo still completes and is trailed, nothing
    answers a request that is gone, and the replica stops cleanly."""
    shared_server = False

    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)
        self.proxy = FaultProxy(("127.0.0.1", self.redis.port)).start()
        self.addCleanup(self.proxy.close)

    def conf(self, cfg):
        with_tokens(cfg)
        cfg["redis"] = {"mode": "standalone", "nodes": [self.proxy.addr],
                        "timeout_ms": 60000}  # nothing times out while held
        return cfg

    def leave(self, tg, method, path, marker, reset):
        before = self.proxy.sent(marker)
        s = socket.create_connection(("127.0.0.1", tg.admin_port), timeout=5)
        try:
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Length: 0\r\n\r\n" % (method, path, WRITE_TOKEN)).encode())
            self.assertTrue(wait_for(lambda: self.proxy.sent(marker) > before, 10, 0.005),
                            "no Redis call for %r" % marker)
        finally:
            s.close()

    def test_client_leaves_mid_call(self):
        tg = self.spawn(self.conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        jtis = [unique("gone") for _ in range(4)]
        for j in jtis:
            r = self.post(tg, "/admin/v1/revocations", {"jti": j, "exp": 4102444800})
            self.assertEqual(r.status, 200, r)
        self.proxy.mode = "hold"
        try:
            for i, j in enumerate(jtis):
                self.leave(tg, "DELETE", "/admin/v1/revocations/" + j, j.encode(), i % 2)
            self.leave(tg, "GET", "/admin/v1/revocations?kind=subject", b"HSCAN", False)
            self.leave(tg, "GET", "/admin/v1/revocations?kind=jti", b"LIMIT", True)
        finally:
            self.proxy.mode = "pass"  # the late replies come, to no one
        for j in jtis:  # undone all the same, and trailed
            self.assertTrue(wait_for(lambda: not tg.admin(
                "GET", "/admin/v1/revocations/" + j, token=READ_TOKEN).json()["revoked"], 5))
            wait_admin_line(tg, lambda x: x.get("target") == "jti=" + j)
        entries, _ = self.list_all(tg, "jti", 10)
        self.assertFalse(set(jtis) & {e["jti"] for e in entries})
        self.assertTrue(tg.alive())
        self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        self.assertIsNone(tg.sanitizer_report())


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RevocationsCluster(FleetTests, TollgateCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = rh.RedisCluster().up()
        cls.addClassCleanup(cls.cluster.close)

    def redis_conf(self):
        return {"mode": "cluster", "nodes": self.cluster.seeds, "timeout_ms": 500}


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class RevocationExpiry(FleetBase, TollgateCase):
    """auth.revocation.max_token_lifetime 2s: a subject revocation is gone
    from every replica, the listing and Redis once before + 2 s has passed."""
    lifetime = "2s"

    def setUp(self):
        super().setUp()
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)

    def redis_conf(self):
        return {"mode": "standalone", "nodes": [self.redis.addr], "timeout_ms": 500}

    def test_subject_revocation_expires(self):
        tgs = self.fleet(2)
        sub = unique("ivan")
        now = int(time.time())
        # a token that lives no longer than the lifetime, issued before `before`
        tok = self.hs_tok(sub, iat=now - 1, exp=now + 1 + 1)
        body = self.revoke_subject(tgs[0], sub, before=now + 1)
        self.assertEqual(body["expires"], now + 3)
        self.wait_status(tgs, tok, 401)
        key = "tg:{revsub:%s}" % sub
        with self.redis.client() as c:
            ttl = c.call("PTTL", key)
            self.assertGreater(ttl, 0)
            self.assertLessEqual(ttl, 3000)

        def gone(tg):
            r = tg.admin("GET", self.subject_path(sub), token=READ_TOKEN)
            return r.status == 200 and not r.json()["revoked"]
        for tg in tgs:
            self.assertTrue(wait_for(lambda: gone(tg), 10.0), "never expired")
        entries, _ = self.list_all(tgs[1], "subject", 100)
        self.assertNotIn(sub, [e["sub"] for e in entries])
        # the next write trims the index; the key expired on its own
        self.revoke_subject(tgs[1], unique("other"))
        with self.redis.client() as c:
            self.assertEqual(c.call("HEXISTS", "tg:{revlog}:s", sub), 0)
            self.assertEqual(c.call("EXISTS", key), 0)
        # a `before` already past its lifetime is refused
        r = self.post(tgs[0], "/admin/v1/revocations/subject",
                      {"sub": sub, "before": int(time.time()) - 10})
        self.assertEnvelope(r, 400, "bad_request")


if __name__ == "__main__":
    unittest.main()
