"""Config reload (docs/operator-guide.md §3): SIGHUP, POST /admin/v1/reload and a ConfigMap
symlink swap; a bad file leaves the old config in place."""
import os
import re
import signal

from harness import (KEYS, KubeVolume, TollgateCase, api_key, bearer, key_line, make_jwt,
                     standard_config, to_yaml, wait_for, unique)

DAVE_KEY = "it-key-dave-0123456789abcdef0123456"
KEYS_ALL = dict(KEYS, dave=(DAVE_KEY, ["orders:read"], None))
DAVE = {"X-API-Key": DAVE_KEY}


def tight_rate(cfg, rate):
    for lim in cfg["limits"]:
        if lim["name"] == "tight":
            lim["rate"] = rate
    return cfg


def reload_failures(metrics):
    n = 0
    for line in metrics.splitlines():
        m = re.match(r'tollgate_config_reloads_total\{result="([^"]+)"\}\s+(\S+)', line)
        if m and m.group(1) not in ("ok", "success", "succeeded"):
            n += float(m.group(2))
    return n


class Reload(TollgateCase):
    shared_server = False

    def limit_seen(self, tg):
        h = dict(api_key("bob"), **{"X-Test-Bucket": unique("r")})
        r = tg.get("/auth/limited/x", h)
        self.assertEqual(r.status, 200, r)
        return r.header("X-RateLimit-Limit")

    def version(self, tg):
        status, body = tg.readyz()
        self.assertEqual(status, 200)
        return body["config_version"]

    def test_sighup_valid(self):
        tg = self.spawn(standard_config)
        self.assertEqual(self.limit_seen(tg), "3")
        v1 = self.version(tg)
        tight_rate(tg.config, "5/minute")
        tg.write_config()
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: self.version(tg) != v1, 5), "config_version unchanged")
        self.assertEqual(self.limit_seen(tg), "5")
        self.assertIn("tollgate_config_reloads_total{", tg.metrics())

    def test_sighup_invalid_keeps_old(self):
        tg = self.spawn(standard_config)
        v1 = self.version(tg)
        err_before = len(tg.stderr())
        tight_rate(tg.config, "5/minute")
        tg.write_config(to_yaml(tg.config) + "\nno_such_option: 1\n")
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: reload_failures(tg.metrics()) >= 1, 5),
                        "no failed reload in tollgate_config_reloads_total")
        self.assertGreater(len(tg.stderr()), err_before, "no log line for the bad reload")
        self.assertEqual(self.version(tg), v1)
        self.assertEqual(self.limit_seen(tg), "3")
        self.assertTrue(tg.alive())

    def test_admin_reload(self):
        tg = self.spawn(standard_config)
        v1 = self.version(tg)
        tight_rate(tg.config, "7/minute")
        tg.write_config()
        r = tg.admin("POST", "/admin/v1/reload")
        self.assertIn(r.status, (200, 204), r)
        # The answer comes once every worker serves the new config (it used
        # to come as soon as they were told): no wait needed from here on,
        # on whichever worker a new connection lands.
        self.assertNotEqual(self.version(tg), v1)
        self.assertEqual([self.limit_seen(tg) for _ in range(20)], ["7"] * 20)
        # a bad file: an error answer, old config kept
        v2 = self.version(tg)
        tg.write_config("limits: [\n")
        r = tg.admin("POST", "/admin/v1/reload")
        # 422 config_invalid (not bad_request: the request was fine, the
        # file is not), with the parser's FILE:LINE in the detail.
        self.assertEqual(r.status, 422, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "config_invalid")
        self.assertIn("tollgate.yaml:", err["detail"])
        self.assertEqual(self.version(tg), v2)
        self.assertEqual(self.limit_seen(tg), "7")

    def test_reload_replaces_key_file(self):
        tg = self.spawn(standard_config)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        tg.write_keys({"alice": ("it-key-alice-0123456789abcdef0123", ["orders:read"], None)})
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(
            lambda: tg.get("/auth/orders/1", api_key("bob")).status == 401, 5),
            "removed key still accepted after reload")

    def test_configmap_symlink_swap(self):
        """Kubernetes updates a ConfigMap volume by swapping the ..data link."""
        tg = self.spawn(standard_config, start=False)
        cm = os.path.join(tg.tmp, "cm")
        os.makedirs(os.path.join(cm, "..v1"))
        with open(os.path.join(cm, "..v1", "tollgate.yaml"), "w") as f:
            f.write(to_yaml(tg.config) + "\n")
        os.symlink("..v1", os.path.join(cm, "..data"))
        os.symlink("..data/tollgate.yaml", os.path.join(cm, "tollgate.yaml"))
        tg.config_path = os.path.join(cm, "tollgate.yaml")
        tg.start()
        v1 = self.version(tg)
        os.makedirs(os.path.join(cm, "..v2"))
        with open(os.path.join(cm, "..v2", "tollgate.yaml"), "w") as f:
            f.write(to_yaml(tight_rate(tg.config, "9/minute")) + "\n")
        os.symlink("..v2", os.path.join(cm, "..data_tmp"))
        os.replace(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
        self.assertTrue(wait_for(lambda: self.version(tg) != v1, 10),
                        "ConfigMap swap not picked up within 10 s")
        self.assertEqual(self.limit_seen(tg), "9")


class SecretRotation(TollgateCase):
    """Kubernetes rotates a mounted Secret by the same ..data swap as a
    ConfigMap: the API key file and the JWT secret file are watched and
    reloaded (docs/operator-guide.md §3), a bad file keeps the old keys and is counted."""
    shared_server = False

    def keys_text(self, ids, extra=()):
        return "\n".join([key_line(i, *KEYS_ALL[i]) for i in ids] + list(extra)) + "\n"

    def test_api_key_file_rotation(self):
        tg = self.spawn(standard_config, start=False)
        sec = KubeVolume(os.path.join(tg.tmp, "secrets"),
                         {"api-keys": self.keys_text(["alice", "bob"])}, mode=0o400)
        del tg.config["auth"]["api_keys_file"]
        tg.write_config()
        tg.env["API_KEYS_FILE"] = sec.path("api-keys")
        tg.start()
        pid = tg.proc.pid
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)
        self.assertEqual(tg.get("/auth/orders/1", DAVE).status, 401)
        # One key added, one removed.
        sec.update({"api-keys": self.keys_text(["alice", "dave"])})
        # the files are looked at once a second: 5 s (x SLOW) is the bound
        self.assertTrue(wait_for(lambda: tg.get("/auth/orders/1", DAVE).status == 200, 5),
                        "added key not accepted within 5 s")
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 401)
        self.assertEqual(tg.get("/auth/orders/1", api_key("alice")).status, 200)
        self.assertEqual(tg.proc.pid, pid)
        # A broken file: refused, the keys of the last good one stay.
        before = reload_failures(tg.metrics())
        sec.update({"api-keys": "dave not-a-sha256-hash\n"})
        self.assertTrue(wait_for(lambda: reload_failures(tg.metrics()) > before, 5),
                        "bad key file not counted as a failed reload")
        self.assertEqual(tg.get("/auth/orders/1", DAVE).status, 200)
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 401)
        self.assertTrue(tg.alive())

    def test_jwt_secret_file_rotation(self):
        old, new = "rotation-old-secret-0123456789abcdef0123", "rotation-new-secret-abcdef0123456789abcd"
        tg = self.spawn(standard_config, start=False)
        sec = KubeVolume(os.path.join(tg.tmp, "secrets"), {"jwt-secret": old}, mode=0o400)
        tg.env.pop("JWT_SECRET", None)
        tg.env["JWT_SECRET_FILE"] = sec.path("jwt-secret")
        tg.start()
        claims = {"scope": "orders:read"}
        self.assertEqual(tg.get("/auth/orders/1", bearer(make_jwt(claims, old))).status, 200)
        sec.update({"jwt-secret": new})
        self.assertTrue(wait_for(
            lambda: tg.get("/auth/orders/1", bearer(make_jwt(claims, new))).status == 200, 10),
            "token signed with the new secret not accepted within 10 s: %r %r\n%s" % (
                tg.get("/auth/orders/1", bearer(make_jwt(claims, new))),
                [l for l in tg.metrics().splitlines() if "reloads_total{" in l],
                tg.stderr()[-3000:]))
        self.assertEqual(tg.get("/auth/orders/1", bearer(make_jwt(claims, old))).status, 401)
