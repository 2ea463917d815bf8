"""Asymmetric JWTs for the tests, made with the openssl command line.

No Python crypto library is needed (the machine's Python may lack one): keys
come from `openssl genpkey`, signatures from `openssl dgst -sign` (RSA PKCS#1
v1.5 and PSS, ECDSA) and `openssl pkeyutl -rawin` (Ed25519).  ECDSA's DER
signature is turned into JOSE's R||S here (RFC 7518 §3.4).

    k = Key("rsa", kid="k1")          # or ec256, ec384, ec521, ed25519
    k.jwk("RS256")                    # the public JWK, alg pinned
    token(k, "RS256", {"sub": "u"})   # a signed token
"""
import json
import os
import subprocess
import tempfile
import time

from harness import AUDIENCE, ISSUER, b64url

_GEN = {
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ec256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ec384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ec521": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "ed25519": ["-algorithm", "ED25519"],
}
_CURVE = {"ec256": ("P-256", 32), "ec384": ("P-384", 48), "ec521": ("P-521", 66)}
_DIGEST = {"256": "-sha256", "384": "-sha384", "512": "-sha512"}


def _run(args, data=None):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True,
                          check=True).stdout


def _der_len(buf, i):
    n = buf[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(buf[i + 1:i + 1 + k], "big"), i + 1 + k


def _ecdsa_raw(der, size):
    """DER ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) to R||S."""
    assert der[0] == 0x30
    _, i = _der_len(der, 1)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n, i = _der_len(der, i + 1)
        v = der[i:i + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += n
    return out


class Key:
    _dir = None

    def __init__(self, kind, kid=None):
        if Key._dir is None:
            Key._dir = tempfile.mkdtemp(prefix="tollgate-jose-")
        self.kind, self.kid = kind, kid
        fd, self.pem = tempfile.mkstemp(suffix=".pem", dir=Key._dir)
        os.close(fd)
        _run(["genpkey"] + _GEN[kind] + ["-out", self.pem])
        self.spki = _run(["pkey", "-in", self.pem, "-pubout", "-outform", "DER"])
        self.pub_pem = _run(["pkey", "-in", self.pem, "-pubout"])

    def jwk(self, alg=None, **extra):
        if self.kind == "rsa":
            text = _run(["rsa", "-in", self.pem, "-noout", "-modulus"]).decode()
            n = bytes.fromhex(text.strip().split("=", 1)[1])
            j = {"kty": "RSA", "n": b64url(n), "e": b64url((65537).to_bytes(3, "big"))}
        elif self.kind == "ed25519":
            j = {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.spki[-32:])}
        else:
            crv, size = _CURVE[self.kind]
            point = self.spki[-(2 * size + 1):]
            assert point[0] == 4
            j = {"kty": "EC", "crv": crv, "x": b64url(point[1:1 + size]),
                 "y": b64url(point[1 + size:])}
        if self.kid is not None:
            j["kid"] = self.kid
        if alg is not None:
            j["alg"] = alg
        j["use"] = "sig"
        j.update(extra)
        return {k: v for k, v in j.items() if v is not None}

    def sign(self, alg, data):
        with tempfile.NamedTemporaryFile(dir=Key._dir) as f:
            f.write(data)
            f.flush()
            if alg == "EdDSA":
                return _run(["pkeyutl", "-sign", "-inkey", self.pem, "-rawin", "-in", f.name])
            args = ["dgst", _DIGEST[alg[2:]], "-sign", self.pem]
            if alg.startswith("PS"):
                args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt",
                         "rsa_pss_saltlen:digest"]
            sig = _run(args + [f.name])
        if alg.startswith("ES"):
            return _ecdsa_raw(sig, _CURVE[self.kind][1])
        return sig


def jwks(*jwk_list):
    return json.dumps({"keys": list(jwk_list)})


def token(key, alg, claims=None, header=None, lifetime=300, iss=ISSUER, aud=AUDIENCE,
          kid=True):
    """A token signed by `key` with `alg`; header kid = the key's unless kid=False."""
    now = int(time.time())
    c = {"sub": "idp-user", "iss": iss, "aud": aud, "iat": now, "exp": now + lifetime}
    c.update(claims or {})
    c = {k: v for k, v in c.items() if v is not None}
    h = {"alg": alg, "typ": "JWT"}
    if kid and key.kid is not None:
        h["kid"] = key.kid
    h.update(header or {})
    h = {k: v for k, v in h.items() if v is not None}
    signing_input = (b64url(json.dumps(h, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(c, separators=(",", ":")).encode()))
    return signing_input + "." + b64url(key.sign(alg, signing_input.encode()))
