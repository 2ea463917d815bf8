"""Tokens of a real (local, HTTPS) identity provider: discovery, jwks_uri,
rotation without restart, the last good set when the IdP is down, unknown-kid
storms, a provider that never loaded."""
import json
import re
import threading
import time
import uuid

from harness import (AUDIENCE, TollgateCase, api_key, bearer, metric, standard_config,
                     wait_for)
from idp import Idp
from jose import Key, token


def provider_config(idp, **extra):
    def conf(cfg):
        standard_config(cfg)
        p = {"name": "idp", "issuer": idp.issuer, "audiences": [AUDIENCE],
             "algorithms": ["RS256", "PS256", "ES256", "EdDSA"], "discovery": True,
             "ca_file": idp.ca_file, "claim_to_headers": {"email": "X-Auth-Email"}}
        p.update(extra)
        cfg["auth"]["jwt"]["providers"] = [p]
        return cfg
    return conf


class IdpCase(TollgateCase):
    shared_server = False

    def setUp(self):
        self.rs = Key("rsa", "rs-%s" % uuid.uuid4().hex[:6])
        self.idp = Idp(keys=[self.rs.jwk("RS256")])
        self.addCleanup(self.idp.stop)

    def tok(self, key, alg="RS256", **claims):
        claims.setdefault("scope", "orders:read")
        return token(key, alg, claims, iss=self.idp.issuer)

    def status(self, tg, tok):
        return tg.get("/auth/orders/1", bearer(tok)).status

    def readyz(self, tg):
        return tg.admin("GET", "/readyz", token=None).json()

    def past_min_refresh(self, seconds):
        """Return once the last JWKS fetch began more than `seconds` ago on
        tollgate's own clock, so the next unknown kid may start a fetch.
        That rule is time itself, with nothing to poll: the fetch began
        before the IdP saw it, and the IdP notes that on the same monotonic
        clock, so waiting until then + `seconds` is the condition, not a bet."""
        t = self.idp.last_hit()
        self.assertIsNotNone(t, "no JWKS fetch yet")
        left = t + seconds + 0.02 - time.monotonic()
        if left > 0:
            time.sleep(left)


class Discovery(IdpCase):
    def test_every_algorithm_from_the_idp(self):
        es, ps, ed = Key("ec256", "es-1"), Key("rsa", "ps-1"), Key("ed25519", "ed-1")
        self.idp.set_keys(self.rs.jwk("RS256"), es.jwk(), ps.jwk("PS256"), ed.jwk())
        tg = self.spawn(provider_config(self.idp))
        for key, alg in ((self.rs, "RS256"), (es, "ES256"), (ps, "PS256"), (ed, "EdDSA")):
            with self.subTest(alg):
                r = tg.get("/auth/orders/1", bearer(self.tok(key, alg, email="a@x.test")))
                self.assertEqual(r.status, 200, "%s\nIdP hits: %s\n%s" % (
                    tg.stderr()[-1500:], self.idp.hits, self.idp.stacks()))
                self.assertEqual(r.header("X-Auth-Email"), "a@x.test")
        self.assertEqual(self.idp.count("/.well-known/openid-configuration"), 1)
        self.assertEqual(self.idp.count(), 1)
        self.assertEqual(self.readyz(tg)["jwks"], {"idp": "ok"})
        m = tg.metrics()
        self.assertEqual(metric(m, "tollgate_jwks_keys", provider="idp"), 4)
        self.assertEqual(metric(m, "tollgate_jwks_refresh_total", provider="idp", result="ok"), 1)
        self.assertIsNotNone(metric(m, "tollgate_jwks_age_seconds", provider="idp"))

    def test_jwks_uri_without_discovery(self):
        tg = self.spawn(provider_config(self.idp, discovery=False,
                                        jwks_uri=self.idp.issuer + "/jwks"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.assertEqual(self.idp.count("/.well-known/openid-configuration"), 0)

    def test_discovery_issuer_must_match(self):
        self.idp.discovery_issuer = "https://evil.test"
        tg = self.spawn(provider_config(self.idp))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 401)
        self.assertEqual(self.readyz(tg)["jwks"], {"idp": "not_loaded"})
        self.assertIn("its issuer is not", tg.stderr())

    def test_certificate_is_verified(self):
        # without the test CA the IdP's certificate is not trusted
        tg = self.spawn(provider_config(self.idp, ca_file=None))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 401)
        self.assertEqual(self.readyz(tg)["jwks"], {"idp": "not_loaded"})
        self.assertEqual(self.idp.count(), 0)
        m = tg.metrics()
        self.assertGreaterEqual(
            metric(m, "tollgate_jwks_refresh_total", provider="idp", result="fetch_error"), 1)
        self.assertEqual(metric(m, "tollgate_jwks_keys", provider="idp"), 0)


class Rotation(IdpCase):
    def test_new_kid_accepted_after_one_refetch(self):
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="1s"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.past_min_refresh(1)
        new = Key("ec256", "rotated-1")
        self.idp.set_keys(self.rs.jwk("RS256"), new.jwk())
        before = self.idp.count()
        # the first request with the new kid already succeeds: it waits for the refetch
        self.assertEqual(self.status(tg, self.tok(new, "ES256")), 200, tg.stderr()[-1500:])
        self.assertEqual(self.idp.count(), before + 1)
        # removed at the IdP: refused after the next refresh
        self.idp.set_keys(new.jwk())
        self.past_min_refresh(1)
        self.status(tg, self.tok(Key("rsa", "unknown-x")))  # an unknown kid asks for a refetch
        ok = wait_for(lambda: self.status(tg, self.tok(self.rs)) == 401, 5, 0.1)
        self.assertTrue(ok, "removed key still accepted")
        self.assertEqual(self.status(tg, self.tok(new, "ES256")), 200)

    def test_max_age_drives_refresh(self):
        self.idp.max_age = 1
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="1s",
                                        refresh_interval="1h"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        ok = wait_for(lambda: self.idp.count() >= 3, 6, 0.1)
        self.assertTrue(ok, "max-age=1 did not refresh (fetches: %d)" % self.idp.count())

    def test_unknown_kid_storm_fetches_at_most_once(self):
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="30s"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        first = self.idp.count()
        attacker = Key("rsa", "x")
        toks = [token(attacker, "RS256", {"scope": "orders:read"}, iss=self.idp.issuer,
                      header={"kid": "storm-%d" % i}) for i in range(60)]
        results = []

        def hammer(part):
            for t in part:
                results.append(self.status(tg, t))
        threads = [threading.Thread(target=hammer, args=(toks[i::6],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results.count(401), 60)
        # the storm came within the interval of the start-up fetch: no fetch at all
        self.assertEqual(self.idp.count(), first)
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)


class IdpDown(IdpCase):
    def test_last_good_set_is_kept(self):
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="1s",
                                        refresh_interval="1s"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.idp.down = True
        ok = wait_for(lambda: (metric(tg.metrics(), "tollgate_jwks_refresh_total",
                                      provider="idp", result="fetch_error") or 0) >= 2, 6, 0.2)
        self.assertTrue(ok, tg.stderr()[-1500:])
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.assertEqual(self.readyz(tg)["jwks"], {"idp": "ok"})
        self.assertIn("keeping the last good set", tg.stderr())
        # back up: refreshed again
        self.idp.down = False
        n = metric(tg.metrics(), "tollgate_jwks_refresh_total", provider="idp", result="ok")
        ok = wait_for(lambda: metric(tg.metrics(), "tollgate_jwks_refresh_total",
                                     provider="idp", result="ok") > n, 6, 0.2)
        self.assertTrue(ok)

    def test_max_stale(self):
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="1s",
                                        refresh_interval="1s", max_stale="2s"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.idp.down = True
        ok = wait_for(lambda: self.status(tg, self.tok(self.rs)) == 401, 8, 0.2)
        self.assertTrue(ok, "a stale set was still used")
        self.assertEqual(self.readyz(tg)["jwks"], {"idp": "stale"})

    def test_never_loaded(self):
        self.idp.down = True
        tg = self.spawn(provider_config(self.idp, min_refresh_interval="1s"))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 401)
        rz = tg.admin("GET", "/readyz", token=None)
        self.assertEqual(rz.status, 200)  # API keys and other providers still work
        self.assertEqual(rz.json()["jwks"], {"idp": "not_loaded"})
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        # the IdP comes back: tokens work without a restart
        self.idp.down = False
        ok = wait_for(lambda: self.status(tg, self.tok(self.rs)) == 200, 5, 0.2)
        self.assertTrue(ok)

    def test_reload_keeps_the_set(self):
        tg = self.spawn(provider_config(self.idp))
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        before = self.idp.count()
        tg.config["limits"][0]["rate"] = "999/minute"
        tg.write_config()
        r = tg.admin("POST", "/admin/v1/reload")
        self.assertEqual(r.status, 200, r.body)
        self.idp.down = True
        self.assertEqual(self.status(tg, self.tok(self.rs)), 200)
        self.assertEqual(self.idp.count(), before)
