"""Identity-provider JWTs from JWKS files: RS/PS/ES/EdDSA, providers by iss,
algorithm pinning, kid selection, rotation by file, claim_to_headers."""
import json
import os
import signal

from harness import (metric, AUDIENCE, ISSUER, TollgateCase, bearer, b64url, make_jwt,
                     standard_config, wait_for)
from jose import Key, jwks, token

OTHER_ISS = "https://other-idp.test"


class Keys:
    """One key of each kind, made once for the module."""
    made = None

    @classmethod
    def get(cls):
        if cls.made is None:
            cls.made = {
                "rs": Key("rsa", "rs-1"), "ps": Key("rsa", "ps-1"),
                "es": Key("ec256", "es-1"), "es384": Key("ec384", "es-2"),
                "ed": Key("ed25519", "ed-1"), "other": Key("rsa", "other-1"),
                "rs2": Key("rsa", "rs-2"),
            }
        return cls.made


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def idp_config(cfg):
    k = Keys.get()
    tmp = os.path.dirname(cfg["audit"]["path"])
    main = os.path.join(tmp, "jwks.json")
    other = os.path.join(tmp, "other-jwks.json")
    write(main, jwks(k["rs"].jwk("RS256"), k["ps"].jwk("PS256"), k["es"].jwk(),
                     k["es384"].jwk("ES384"), k["ed"].jwk(),
                     {"kty": "oct", "kid": "hs-file", "alg": "HS256",
                      "k": b64url(b"file-secret-0123456789abcdef-0123456789")},
                     # not for signatures: never used
                     k["rs2"].jwk("RS256", use="enc")))
    write(other, jwks(k["other"].jwk("RS256")))
    standard_config(cfg)
    cfg["auth"]["jwt"].update({
        "algorithms": ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"],
        "keys_file": main,
        "claim_to_headers": {"email": "X-Auth-Email"},
    })
    cfg["auth"]["jwt"]["providers"] = [{
        "name": "other", "issuer": OTHER_ISS, "audiences": ["api", AUDIENCE],
        "algorithms": ["RS256"], "keys_file": other, "scopes_claim": "roles",
        "claim_to_headers": {"org": "X-Auth-Org"},
    }]
    return cfg


class JwksFile(TollgateCase):
    configure = staticmethod(idp_config)

    def ok(self, tok, path="/auth/orders/1"):
        r = self.tg.get(path, bearer(tok))
        self.assertEqual(r.status, 200, "%r %s" % (r, self.tg.stderr()[-800:]))
        return r

    def refused(self, tok, why):
        r = self.tg.get("/auth/orders/1", bearer(tok))
        with self.subTest(why):
            self.assertEnvelope(r, 401, "unauthorized")

    def test_every_algorithm(self):
        k = Keys.get()
        for name, alg in (("rs", "RS256"), ("ps", "PS256"), ("es", "ES256"),
                          ("es384", "ES384"), ("ed", "EdDSA")):
            with self.subTest(alg):
                r = self.ok(token(k[name], alg, {"sub": "u-" + alg, "scope": "orders:read"}))
                self.assertEqual(r.header("X-Auth-Subject"), "u-" + alg)
                self.assertEqual(r.header("X-Auth-Method"), "jwt")

    def test_hs_secrets_side_by_side(self):
        # JWT_SECRET (no kid) and a kid-keyed HS secret from the file
        self.ok(make_jwt({"scope": "orders:read"}))
        t = make_jwt({"scope": "orders:read"}, header={"kid": "hs-file"},
                     secret="file-secret-0123456789abcdef-0123456789")
        self.ok(t)
        # the file's kid with JWT_SECRET's signature: the kid decides the key
        self.refused(make_jwt({"scope": "orders:read"}, header={"kid": "hs-file"}),
                     "kid names the file secret, signed with JWT_SECRET")

    def test_at_jwt(self):
        k = Keys.get()
        self.ok(token(k["rs"], "RS256", {"scope": "orders:read"}, header={"typ": "at+jwt"}))
        self.refused(token(k["rs"], "RS256", {"scope": "orders:read"},
                           header={"typ": "JOSE"}), "typ JOSE")

    def test_alg_pinned_by_key(self):
        k = Keys.get()
        rs = k["rs"]
        # an RSA key pinned to RS256 does not verify PS256, even though PS256 is allowed
        self.refused(token(rs, "PS256", {"scope": "orders:read"}), "PS256 with an RS256 key")
        # HS256 'signed' with the RSA public key, naming the RSA kid (alg confusion)
        for secret in (rs.pub_pem.decode(), rs.jwk()["n"]):
            t = make_jwt({"scope": "orders:read"}, header={"kid": "rs-1"}, secret=secret)
            self.refused(t, "HS256 with the RSA public key as secret")
        # RS token naming the HS secret's kid
        self.refused(token(rs, "RS256", {"scope": "orders:read"}, header={"kid": "hs-file"}),
                     "RS256 naming an HS kid")
        self.refused(make_jwt(alg="none", header={"kid": "rs-1"}), "alg none")

    def test_kid_rules(self):
        k = Keys.get()
        self.refused(token(k["rs"], "RS256", header={"kid": "nope"}), "unknown kid")
        # no kid: the only RS256 key is used (the enc key is not in the set)
        self.ok(token(k["rs"], "RS256", {"scope": "orders:read"}, kid=False))
        # a key marked use=enc is never used
        self.refused(token(k["rs2"], "RS256", {"scope": "orders:read"}), "use=enc key")
        # jku / x5u / an embedded jwk do not bring keys
        evil = Key("rsa", "rs-1")
        self.refused(token(evil, "RS256", {"scope": "orders:read"},
                           header={"jwk": evil.jwk("RS256"), "jku": "http://127.0.0.1:1/k"}),
                     "embedded attacker jwk")
        self.refused(token(k["rs"], "RS256", header={"crit": ["exp"]}), "crit")

    def test_provider_by_issuer(self):
        k = Keys.get()
        t = token(k["other"], "RS256", {"roles": ["orders:read"], "org": "acme"},
                  iss=OTHER_ISS, aud="api")
        r = self.ok(t)
        self.assertEqual(r.header("X-Auth-Scopes"), "orders:read")
        self.assertEqual(r.header("X-Auth-Org"), "acme")
        # forward-auth sends every configured claim header: unset ones empty
        self.assertEqual(r.header("X-Auth-Email"), "")
        # the other provider's key with the main issuer, and the reverse
        self.refused(token(k["other"], "RS256", {"scope": "orders:read"}), "key of B, iss A")
        self.refused(token(k["rs"], "RS256", {"roles": ["orders:read"]}, iss=OTHER_ISS,
                           aud="api"), "key of A, iss B")
        self.refused(token(k["rs"], "RS256", iss="https://nobody.test"), "unknown issuer")
        self.refused(token(k["other"], "RS256", iss=OTHER_ISS, aud="someone"), "aud")
        # scopes come only from the configured claim of that provider
        r = self.tg.get("/auth/orders/1", bearer(token(
            k["other"], "RS256", {"scope": "orders:read"}, iss=OTHER_ISS, aud="api")))
        self.assertEnvelope(r, 403, "forbidden")

    def test_claim_to_headers(self):
        k = Keys.get()
        r = self.ok(token(k["es"], "ES256", {"scope": "orders:read",
                                              "email": "jane@example.com"}))
        self.assertEqual(r.header("X-Auth-Email"), "jane@example.com")
        self.assertEqual(r.header("X-Auth-Org"), "")
        # CR/LF in a claim: never copied (the token is still good)
        r = self.ok(token(k["es"], "ES256", {"scope": "orders:read",
                                              "email": "a@b\r\nX-Auth-Admin: 1"}))
        self.assertEqual(r.header("X-Auth-Email"), "")
        self.assertIsNone(r.header("X-Auth-Admin"))
        r = self.ok(token(k["es"], "ES256", {"scope": "orders:read", "email": "x" * 600}))
        self.assertEqual(r.header("X-Auth-Email"), "")
        # a client's own X-Auth-Email never passes as the claim
        r = self.tg.get("/auth/orders/1", dict(bearer(token(k["es"], "ES256", {
            "scope": "orders:read"})), **{"X-Auth-Email": "ceo@example.com"}))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Auth-Email"), "")

    def test_config_dump(self):
        r = self.tg.admin("GET", "/admin/v1/config")
        self.assertEqual(r.status, 200)
        jwt = r.json()["auth"]["jwt"]
        self.assertEqual(jwt["providers"][0]["name"], "other")
        self.assertEqual(jwt["claim_to_headers"], {"email": "X-Auth-Email"})
        self.assertNotIn("file-secret", r.body.decode())


class JwksRotation(TollgateCase):
    """A JWKS file (a mounted Secret) is re-read on change like the config."""
    shared_server = False

    def test_rotate_by_file(self):
        k = Keys.get()
        tg = self.spawn(idp_config)
        path = os.path.join(tg.tmp, "jwks.json")
        new = Key("ec256", "es-new")
        t_new = token(new, "ES256", {"scope": "orders:read"})
        t_old = token(k["es"], "ES256", {"scope": "orders:read"})
        for _ in range(4):  # cached on both threads
            self.assertEqual(tg.get("/auth/orders/1", bearer(t_old)).status, 200)
        self.assertEqual(tg.get("/auth/orders/1", bearer(t_new)).status, 401)
        write(path, jwks(k["rs"].jwk("RS256"), new.jwk()))
        ok = wait_for(lambda: tg.get("/auth/orders/1", bearer(t_new)).status == 200, 5, 0.1)
        self.assertTrue(ok, tg.stderr()[-2000:])
        # the removed key no longer verifies, cached or not; the kept one does
        for _ in range(4):
            self.assertEqual(tg.get("/auth/orders/1", bearer(t_old)).status, 401)
        self.assertEqual(tg.get("/auth/orders/1", bearer(
            token(k["rs"], "RS256", {"scope": "orders:read"}))).status, 200)
        # a broken JWKS is refused and changes nothing
        def failed():
            return metric(tg.metrics(), "tollgate_config_reloads_total", result="error") or 0
        before = failed()
        write(path, '{"keys": [{"kty": "RSA", "kid": "weak", "alg": "RS256", "n": "AQAB", '
                    '"e": "AQAB"}]}')
        ok = wait_for(lambda: failed() > before and "RSA modulus" in tg.stderr(), 5, 0.05)
        self.assertTrue(ok, "the broken JWKS was not read and refused: " + tg.stderr()[-2000:])
        self.assertEqual(tg.get("/auth/orders/1", bearer(t_new)).status, 200)

    def test_bad_jwks_at_start(self):
        def conf(cfg):
            idp_config(cfg)
            write(cfg["auth"]["jwt"]["keys_file"],
                  json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}))
            return cfg
        tg = self.spawn(conf, start=False)
        r = tg.run_cli("--check-config", tg.config_path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("keys_file", r.stderr)
        self.assertIn("EC key needs 'x' and 'y'", r.stderr)


class TokenCache(TollgateCase):
    configure = staticmethod(idp_config)

    def test_repeat_hits_and_revocation_still_refuses(self):
        k = Keys.get()
        t = token(k["rs"], "RS256", {"scope": "orders:read", "jti": "cache-jti-1"})
        hits0 = metric(self.tg.metrics(), "tollgate_jwt_cache_total", result="hit") or 0
        for _ in range(10):
            self.assertEqual(self.tg.get("/auth/orders/1", bearer(t)).status, 200)
        m = self.tg.metrics()
        # two worker threads: at most two misses (one each), the rest hits
        self.assertGreaterEqual(metric(m, "tollgate_jwt_cache_total", result="hit") - hits0, 8)
        r = self.tg.admin("POST", "/admin/v1/revocations", body=json.dumps({"token": t}))
        self.assertIn(r.status, (200, 201), r.body)
        for _ in range(4):
            self.assertEnvelope(self.tg.get("/auth/orders/1", bearer(t)), 401, "unauthorized")

    def test_cached_identity_is_the_tokens(self):
        k = Keys.get()
        t1 = token(k["es"], "ES256", {"sub": "alice", "scope": "orders:read",
                                      "email": "alice@x.test"})
        t2 = token(k["es"], "ES256", {"sub": "bob", "scope": "orders:read"})
        for _ in range(3):
            r1 = self.tg.get("/auth/orders/1", bearer(t1))
            r2 = self.tg.get("/auth/orders/1", bearer(t2))
            self.assertEqual((r1.header("X-Auth-Subject"), r1.header("X-Auth-Email")),
                             ("alice", "alice@x.test"))
            self.assertEqual((r2.header("X-Auth-Subject"), r2.header("X-Auth-Email")),
                             ("bob", ""))
        # a cached token is still checked against the route's scopes
        self.assertEnvelope(self.tg.get("/auth/orders/admin/x", bearer(t1)), 403, "forbidden")
