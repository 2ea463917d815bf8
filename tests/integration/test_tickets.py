"""One-time tickets (memory backend; the Redis Cluster case is in
test_redis_cluster): POST /v1/tickets, `?ticket=` once on routes with
`tickets: true`, WebSocket upgrades in forward-auth and proxy mode."""
import hashlib
import json
import time
import unittest

from harness import (KEYS, TollgateCase, Upstream, api_key, bearer, make_jwt, sha256_hex,
                     standard_config, unique, wait_for)


def ticket_config(cfg):
    standard_config(cfg)
    cfg["routes"].insert(0, {"name": "ws", "match": {"path_prefix": "/ws/"},
                             "tickets": True, "scopes": ["orders:read"]})
    cfg["tickets"] = {"ttl": "30s", "scopes": ["orders:read"]}
    return cfg


class Tickets(TollgateCase):
    configure = staticmethod(ticket_config)

    def issue(self, headers=None):
        r = self.tg.req("POST", "/v1/tickets", headers or api_key("bob"))
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["expires_in"], 30)
        self.assertEqual(len(body["ticket"]), 43)
        self.assertIn("no-store", r.header("Cache-Control", ""))
        return body["ticket"]

    def test_once(self):
        t = self.issue()
        r = self.tg.get("/auth/ws/chat?room=1&ticket=" + t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "bob")
        self.assertEqual(r.header("X-Auth-Method"), "ticket")
        self.assertEqual(r.header("X-Auth-Scopes"), "orders:read")
        # replay, on any thread
        for _ in range(3):
            self.assertEnvelope(self.tg.get("/auth/ws/chat?ticket=" + t), 401, "unauthorized")

    def test_only_on_ticket_routes(self):
        t = self.issue()
        self.assertEnvelope(self.tg.get("/auth/orders/1?ticket=" + t), 401, "unauthorized")
        # not consumed by the refusal above
        self.assertEqual(self.tg.get("/auth/ws/x?ticket=" + t).status, 200)

    def test_issue_needs_credentials_and_scopes(self):
        self.assertEnvelope(self.tg.req("POST", "/v1/tickets"), 401, "unauthorized")
        weak = make_jwt({"sub": "weak", "scope": "profile"})
        self.assertEnvelope(self.tg.req("POST", "/v1/tickets", bearer(weak)), 403, "forbidden")
        r = self.tg.get("/v1/tickets", api_key("bob"))
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")
        # a ticket is not a credential for issuing tickets
        t = self.issue()
        self.assertEnvelope(self.tg.req("POST", "/v1/tickets?ticket=" + t), 401, "unauthorized")

    def test_jwt_identity_and_revocation(self):
        tok = make_jwt({"sub": "jwt-ws", "scope": "orders:read", "jti": "tkt-jti-1"})
        t1, t2 = self.issue(bearer(tok)), self.issue(bearer(tok))
        r = self.tg.get("/auth/ws/a?ticket=" + t1)
        self.assertEqual((r.status, r.header("X-Auth-Subject")), (200, "jwt-ws"))
        # the token is revoked: its outstanding ticket is refused too
        r = self.tg.admin("POST", "/admin/v1/revocations", body=json.dumps({"token": tok}))
        self.assertIn(r.status, (200, 201), r.body)
        self.assertEnvelope(self.tg.get("/auth/ws/a?ticket=" + t2), 401, "unauthorized")

    def test_malformed_and_unknown(self):
        for bad in ("", "abc", "A" * 42, "A" * 44, "%41" * 43, "!" * 43):
            r = self.tg.get("/auth/ws/a?ticket=" + bad)
            self.assertEnvelope(r, 401, "unauthorized")
        r = self.tg.get("/auth/ws/a?ticket=" + "A" * 43)  # well-formed, never issued
        self.assertEnvelope(r, 401, "unauthorized")

    def test_websocket_upgrade_forward_auth(self):
        t = self.issue()
        h = {"Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
             "X-Original-URI": "/ws/chat?ticket=" + t, "X-Original-Method": "GET"}
        r = self.tg.get("/auth", h)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Method"), "ticket")

    def test_never_logged(self):
        rid = unique("tkt")
        t = self.issue(dict(api_key("bob"), **{"X-Request-ID": rid + "-issue"}))
        r = self.tg.get("/auth/ws/a?ticket=" + t, {"X-Request-ID": rid + "-use"})
        self.assertEqual(r.status, 200)
        # both lines written (each worker flushes its own batch), then look
        self.tg.audit_for(rid + "-issue")
        self.assertTrue(self.tg.audit_for(rid + "-use")["path"].startswith("/ws/a"))
        self.assertNotIn(t.encode(), self.tg.audit_raw())
        self.assertNotIn(t, self.tg.stderr())
        self.assertNotIn(t, self.tg.stdout())


def issue(tg, headers):
    r = tg.req("POST", "/v1/tickets", headers)
    assert r.status == 200, r
    return r.json()["ticket"]


def reload_now(case, tg):
    """POST /admin/v1/reload and wait until the new config serves."""
    def versions():
        body = tg.readyz()[1]
        return body["config_version"], body["secrets_version"]
    # a key file change moves secrets_version only
    version = versions()
    r = tg.admin("POST", "/admin/v1/reload")
    case.assertIn(r.status, (200, 204), r.body)
    case.assertTrue(wait_for(lambda: versions() != version, 5), "versions unchanged")


def redeem_refused(case, tg, ticket, reason):
    """The ticket gets 401, and the audit line says why."""
    rid = unique("tkt")
    r = tg.get("/auth/ws/a?ticket=" + ticket, {"X-Request-ID": rid})
    case.assertEnvelope(r, 401, "unauthorized")
    case.assertEqual(tg.audit_for(rid)["reason"], reason)


class TicketCredentialGone(TollgateCase):
    """A ticket never outlives the credential it was issued for: the API key
    removed from the key file or rotated out, the JWT expired (revoked:
    Tickets.test_jwt_identity_and_revocation) between issue and use."""
    shared_server = False

    def test_key_removed(self):
        tg = self.spawn(ticket_config)
        t_bob, t_alice = issue(tg, api_key("bob")), issue(tg, api_key("alice"))
        tg.write_keys({k: v for k, v in KEYS.items() if k != "bob"})
        reload_now(self, tg)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 401)
        redeem_refused(self, tg, t_bob, "ticket_key_removed")
        # a key still in the file keeps its ticket
        r = tg.get("/auth/ws/a?ticket=" + t_alice)
        self.assertEqual((r.status, r.header("X-Auth-Client-Id")), (200, "alice"), r)
        self.assertIn('tollgate_auth_failures_total{reason="ticket_key_removed"} 1',
                      tg.metrics())

    def test_key_rotated(self):
        """Same id, another key: the old key's ticket is the old key's."""
        tg = self.spawn(ticket_config)
        t = issue(tg, api_key("bob"))
        t2 = issue(tg, api_key("bob"))
        new_key = "it-key-bob-rotated-0123456789abcdef"
        tg.write_keys(dict(KEYS, bob=(new_key, ["orders:read"], None)))
        reload_now(self, tg)
        redeem_refused(self, tg, t, "ticket_key_rotated")
        t_new = issue(tg, {"X-API-Key": new_key})
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t_new).status, 200)
        # rotated back: the very key again, so its ticket is good again
        tg.write_keys(KEYS)
        reload_now(self, tg)
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t2).status, 200)

    def test_scopes_narrowed(self):
        """The key's line now has fewer scopes: the ticket has them too."""
        tg = self.spawn(ticket_config)
        t = issue(tg, api_key("bob"))
        tg.write_keys(dict(KEYS, bob=(KEYS["bob"][0], ["profile:read"], None)))
        reload_now(self, tg)
        rid = unique("tkt")
        r = tg.get("/auth/ws/a?ticket=" + t, {"X-Request-ID": rid})
        self.assertEnvelope(r, 403, "forbidden")
        self.assertEqual(tg.audit_for(rid)["client_id"], "bob")

    def test_api_keys_turned_off(self):
        tg = self.spawn(ticket_config)
        t = issue(tg, api_key("bob"))
        tg.config["auth"]["mode"] = "jwt"
        tg.write_config()
        reload_now(self, tg)
        redeem_refused(self, tg, t, "ticket_credential_disabled")

    def test_jwt_expired(self):
        def conf(cfg):
            ticket_config(cfg)
            cfg["auth"]["jwt"]["leeway_seconds"] = 0
            return cfg
        tg = self.spawn(conf)
        # 3 to 4 s left (exp is whole seconds): room for three requests on a
        # busy machine before it expires (was 1 to 2 s)
        exp = int(time.time()) + 4
        tok = make_jwt({"sub": "short-lived", "scope": "orders:read", "exp": exp})
        t, t_used = issue(tg, bearer(tok)), issue(tg, bearer(tok))
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t_used).status, 200)
        # the token expires; the ticket (ttl 30 s) would still be good
        self.assertTrue(wait_for(lambda: time.time() >= exp + 0.2, 10))
        self.assertEqual(tg.get("/auth/orders/1", bearer(tok)).status, 401)
        redeem_refused(self, tg, t, "ticket_token_expired")


class TicketExpiry(TollgateCase):
    shared_server = False

    def test_expired(self):
        def conf(cfg):
            ticket_config(cfg)
            cfg["tickets"]["ttl"] = "1s"
            return cfg
        tg = self.spawn(conf)
        t = tg.req("POST", "/v1/tickets", api_key("bob")).json()["ticket"]
        # Expiry is time itself, with nothing to poll (and a ticket is used
        # up by trying it): the store sets expire_ms = issue time + ttl, and
        # the issue came before its answer, so 1.2 s from here is past it.
        time.sleep(1.2)
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t).status, 401)


class TicketProxy(TollgateCase):
    shared_server = False

    def test_upgrade_request_in_proxy_mode(self):
        up = Upstream()
        self.addCleanup(up.close)

        def conf(cfg):
            ticket_config(cfg)
            cfg["routes"] = [{"name": "ws", "match": {"path_prefix": "/ws/"}, "tickets": True,
                              "upstream": "http://127.0.0.1:%d" % up.port}]
            return cfg
        tg = self.spawn(conf)
        t = tg.req("POST", "/v1/tickets", api_key("bob")).json()["ticket"]
        r = tg.get("/ws/chat?ticket=" + t, {"Upgrade": "websocket", "Connection": "Upgrade"})
        self.assertEqual(r.status, 200, r)
        seen = dict((k.lower(), v) for k, v in up.requests[-1]["headers"])
        self.assertEqual(seen.get("x-auth-method"), "ticket")
        self.assertEqual(seen.get("x-auth-client-id"), "bob")
        self.assertEqual(tg.get("/ws/chat?ticket=" + t).status, 401)


try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None


@unittest.skipUnless(rh is not None and rh.have_redis(), "redis-server not installed")
class TicketsRedis(TollgateCase):
    """Standalone Redis: stored hashed, used once; Redis down fails closed."""
    shared_server = False

    def test_redis_and_down(self):
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def conf(cfg):
            ticket_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": ["127.0.0.1:%d" % redis.port],
                            "timeout_ms": 200}
            return cfg
        tg = self.spawn(conf)
        self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        t = tg.req("POST", "/v1/tickets", api_key("bob")).json()["ticket"]
        key = "tg:{tkt:%s}" % hashlib.sha256(t.encode()).hexdigest()
        with redis.client() as c:
            self.assertEqual(c.call("EXISTS", key), 1)
            self.assertLessEqual(c.call("TTL", key), 30)
            self.assertEqual(c.call("KEYS", "*%s*" % t), [])  # never stored in clear
            stored = json.loads(c.call("GET", key))
        self.assertEqual(stored["client_id"], "bob")
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t).status, 200)
        with redis.client() as c:
            self.assertEqual(c.call("EXISTS", key), 0)
        self.assertEqual(tg.get("/auth/ws/a?ticket=" + t).status, 401)
        t2 = tg.req("POST", "/v1/tickets", api_key("bob")).json()["ticket"]
        redis.stop()
        r = tg.get("/auth/ws/a?ticket=" + t2)
        self.assertEnvelope(r, 401, "unauthorized")
        self.assertEnvelope(tg.req("POST", "/v1/tickets", api_key("bob")), 503, "unavailable")

    def test_key_removed_redis(self):
        """Issued on one replica, used on another after the key was removed
        from the key file: refused; Redis holds no digest of the key."""
        redis = rh.RedisServer().start()
        self.addCleanup(redis.close)

        def conf(cfg):
            ticket_config(cfg)
            cfg["redis"] = {"mode": "standalone", "nodes": ["127.0.0.1:%d" % redis.port],
                            "timeout_ms": 500}
            return cfg
        issuer, user = self.spawn(conf), self.spawn(conf)
        for tg in (issuer, user):
            self.assertTrue(wait_for(lambda: tg.readyz()[1].get("redis") == "ok", 5))
        t = issue(issuer, api_key("bob"))
        key = "tg:{tkt:%s}" % hashlib.sha256(t.encode()).hexdigest()
        with redis.client() as c:
            stored = c.call("GET", key)
        stored = stored.decode() if isinstance(stored, bytes) else stored
        user.write_keys({k: v for k, v in KEYS.items() if k != "bob"})
        reload_now(self, user)
        redeem_refused(self, user, t, "ticket_key_removed")
        with redis.client() as c:
            self.assertEqual(c.call("EXISTS", key), 0)  # used up all the same
        # the key is named by a fingerprint keyed with the ticket, not its digest
        self.assertEqual(len(json.loads(stored)["kfp"]), 64)
        self.assertNotIn(sha256_hex(KEYS["bob"][0]), stored)
