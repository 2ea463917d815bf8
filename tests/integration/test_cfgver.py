"""Issue 20, items 4-6: no silent misconfiguration (--check-config and the
no_key audit reason), API key rotation under one id (not_after,
key_expired, one bucket), and versions an SRE can compare (config_version
vs secrets_version, tollgate_build_info, process_* metrics)."""
import re
import signal
import time

from harness import (KEYS, SLOW, TollgateCase, api_key, bearer, key_line, make_jwt, metric,
                     standard_config, wait_for)

NEW_ALICE = "it-key-alice-NEW-0123456789abcdef01"


def versions(tg):
    status, body = tg.readyz()
    assert status == 200, body
    return body["config_version"], body["secrets_version"]


def check_versions(p):
    """(config_version, secrets_version) from --check-config's ok line."""
    m = re.search(r": ok \(config version ([0-9a-f]{16}), secrets version ([0-9a-f]{16})\)",
                  p.stdout)
    assert m, (p.stdout, p.stderr)
    return m.group(1), m.group(2)


def hs256_only(cfg):
    """The issue's config: an HS algorithm listed, no JWT key anywhere."""
    cfg["auth"]["jwt"] = {"algorithms": ["HS256"]}
    return standard_config(cfg)


class NoSilentMisconfig(TollgateCase):
    shared_server = False

    def test_alg_without_key_refused_in_production(self):
        tg = self.spawn(hs256_only, env={"JWT_SECRET": None}, start=False)
        p = tg.run_cli("--config", tg.config_path, "--check-config",
                       env={"ENVIRONMENT": "production"})
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        text = open(tg.config_path).read().splitlines()
        line = [i + 1 for i, l in enumerate(text) if "algorithms" in l][0]
        self.assertIn("%s:%d: auth.jwt.algorithms is set but no JWT key is configured"
                      % (tg.config_path, line), p.stderr)
        self.assertIn("no_key", p.stderr)
        # the same file in development: loads, and says so loudly
        p = tg.run_cli("--config", tg.config_path, "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r" warn .*auth\.jwt\.algorithms is set but no JWT key")

    def test_token_without_key_is_no_key(self):
        tg = self.spawn(hs256_only, env={"JWT_SECRET": None})
        before = metric(tg.metrics(), "tollgate_auth_failures_total", reason="no_key") or 0
        r = tg.get("/auth/orders/1", bearer(make_jwt()))
        self.assertEnvelope(r, 401, "unauthorized")
        rec = tg.audit_for(r.header("X-Request-ID"))
        self.assertEqual(rec["reason"], "no_key")
        self.assertEqual(metric(tg.metrics(), "tollgate_auth_failures_total", reason="no_key"),
                         before + 1)
        # no credential at all is still missing_credentials
        r = tg.get("/auth/orders/1")
        self.assertEqual(tg.audit_for(r.header("X-Request-ID"))["reason"],
                         "missing_credentials")
        # API keys still work
        self.assertEqual(tg.get("/auth/orders/1", api_key("bob")).status, 200)

    def test_shadowed_route_refused(self):
        def configure(cfg):
            standard_config(cfg)
            cfg["routes"].append({"name": "never", "match": {"path": "/orders/7"}})
            return cfg
        tg = self.spawn(configure, start=False)
        p = tg.run_cli("--config", tg.config_path, "--check-config")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r"%s:\d+: routes\[4\] \(never\): never used: routes\[1\] "
                         r"\(orders\)" % re.escape(tg.config_path))


def tight(cfg):
    standard_config(cfg)
    cfg["limits"].append({"name": "per-client", "match": {"path_prefix": "/rot/"},
                          "by": ["client"], "rate": "3/minute"})
    return cfg


class KeyRotation(TollgateCase):
    shared_server = False

    def reload_keys(self, tg, extra_lines):
        before = versions(tg)
        tg.write_keys(extra_lines=extra_lines)
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: versions(tg) != before, 5), "reload not seen")
        after = versions(tg)
        self.assertEqual(after[0], before[0], "a key file change moved config_version")
        self.assertNotEqual(after[1], before[1])

    def test_two_keys_one_identity_one_bucket(self):
        tg = self.spawn(tight)
        old = api_key("alice")
        new = {"X-API-Key": NEW_ALICE}
        self.assertEqual(tg.get("/auth/orders/1", new).status, 401)
        # gen-key for an existing id: the line keeps alice's scopes and tier
        p = tg.run_cli("gen-key", "--id", "alice", "--keys-file", tg.keys_path)
        self.assertEqual(p.returncode, 0, p.stderr)
        line = re.search(r"^line: (.*)$", p.stdout, re.M).group(1)
        self.assertRegex(line, r"^alice [0-9a-f]{64} scopes=orders:read,orders:write tier=gold$")
        self.assertIn("id alice has 1 key(s)", p.stderr)
        # hash-key gives the line for our chosen key; both lines for alice
        p = tg.run_cli("hash-key", "--id", "alice", "--scopes", "orders:read,orders:write",
                       "--tier", "gold", NEW_ALICE)
        self.assertEqual(p.stdout.strip(),
                         key_line("alice", NEW_ALICE, ["orders:read", "orders:write"], "gold"))
        self.reload_keys(tg, [p.stdout.strip()])
        for h in (old, new):
            r = tg.get("/auth/orders/1", h)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Auth-Client-Id"), "alice")
        # one bucket: 3/minute shared by both keys
        got = [tg.get("/auth/rot/%d" % i, h).status for i, h in enumerate((old, new, old))]
        self.assertEqual(got, [200, 200, 200])
        self.assertEqual(tg.get("/auth/rot/x", new).status, 429)
        self.assertEqual(tg.get("/auth/rot/y", old).status, 429)

    def test_expired_key_is_key_expired(self):
        tg = self.spawn(tight)
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        keys = {k: v for k, v in KEYS.items() if k != "alice"}
        a = KEYS["alice"]
        before = versions(tg)
        tg.write_keys(keys, [key_line("alice", a[0], a[1], a[2]) + " not_after=" + past,
                             key_line("alice", NEW_ALICE, a[1], a[2]) + " not_after=" + future])
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: versions(tg) != before, 5))
        r = tg.get("/auth/orders/1", api_key("alice"))
        self.assertEnvelope(r, 401, "unauthorized")
        self.assertIsNone(r.header("X-Auth-Client-Id"))
        self.assertEqual(tg.audit_for(r.header("X-Request-ID"))["reason"], "key_expired")
        self.assertEqual(metric(tg.metrics(), "tollgate_auth_failures_total",
                                reason="key_expired"), 1)
        r = tg.get("/auth/orders/1", {"X-API-Key": NEW_ALICE})
        self.assertEqual((r.status, r.header("X-Auth-Client-Id")), (200, "alice"))
        # the same key twice is refused, the old config kept
        before = versions(tg)
        tg.write_keys(extra_lines=[key_line("alice2", KEYS["bob"][0])])
        r = tg.admin("POST", "/admin/v1/reload")
        self.assertEqual(r.status, 422, r)
        self.assertIn("duplicate digest", r.json()["error"]["detail"])
        self.assertNotIn(KEYS["bob"][0], r.body.decode())
        self.assertEqual(versions(tg), before)


class Versions(TollgateCase):
    shared_server = False

    def test_same_file_two_environments(self):
        tg = self.spawn(standard_config, start=False)
        env_a = {"ALLOWED_API_KEYS": "env-key-aaaaaaaaaaaaaaaa", "ADMIN_TOKEN": "admin-a" * 5,
                 "HOSTNAME": "pod-a", "POD_IP": "10.0.0.1"}
        env_b = {"ALLOWED_API_KEYS": "env-key-bbbbbbbbbbbbbbbb,env-key-cccccccccccccccc",
                 "ADMIN_TOKEN": "admin-a" * 5, "HOSTNAME": "pod-b", "TZ": "Europe/Paris"}
        a = check_versions(tg.run_cli("--config", tg.config_path, "--check-config", env=env_a))
        b = check_versions(tg.run_cli("--config", tg.config_path, "--check-config", env=env_b))
        self.assertEqual(a[0], b[0], "config_version depends on the environment's secrets")
        self.assertNotEqual(a[1], b[1])
        # a changed secret (the admin token) moves secrets_version only
        env_c = dict(env_a, ADMIN_TOKEN="admin-c" * 5)
        c = check_versions(tg.run_cli("--config", tg.config_path, "--check-config", env=env_c))
        self.assertEqual(c[0], a[0])
        self.assertNotEqual(c[1], a[1])
        # and the same env twice gives the same pair
        self.assertEqual(check_versions(tg.run_cli("--config", tg.config_path,
                                                   "--check-config", env=env_a)), a)
        # nothing of a secret shows
        for p in (a, b, c):
            for s in ("env-key", "admin-"):
                self.assertNotIn(s, " ".join(p))
        # a running server says the same as --check-config
        tg.env.update(env_a)
        tg.start()
        self.assertEqual(versions(tg), a)
        r = tg.admin("GET", "/admin/v1/config", token=env_a["ADMIN_TOKEN"])
        self.assertEqual((r.json()["version"], r.json()["secrets_version"]), a)

    def test_build_info_and_process_metrics(self):
        tg = self.spawn(standard_config)
        t0 = time.time()
        cv, sv = versions(tg)
        text = tg.metrics()
        info = [l for l in text.splitlines() if l.startswith("tollgate_build_info{")]
        self.assertEqual(len(info), 1, info)
        self.assertRegex(info[0], r'^tollgate_build_info\{version="\d+\.\d+\.\d+",'
                         r'config_version="%s"\} 1$' % cv)
        # secrets_version: only on the admin listener's /readyz, never on the
        # main listener (it may face clients) nor in a metric
        self.assertNotIn(sv, text)
        self.assertNotIn("secrets_version", tg.get("/readyz").body.decode())
        pid = tg.proc.pid
        with open("/proc/%d/status" % pid) as f:
            rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
        rss = metric(text, "process_resident_memory_bytes")
        self.assertGreater(rss, 1 << 20)
        self.assertLess(abs(rss - rss_kb * 1024), 64 << 20)  # same process, near in time
        self.assertGreaterEqual(metric(text, "process_virtual_memory_bytes"), rss)
        fds = metric(text, "process_open_fds")
        self.assertGreaterEqual(fds, 5)  # std fds, listeners, audit log
        self.assertLessEqual(fds, metric(text, "process_max_fds"))
        start = metric(text, "process_start_time_seconds")
        self.assertLessEqual(start, t0 + 1)
        self.assertGreater(start, t0 - 60 * SLOW)
        cpu = metric(text, "process_cpu_seconds_total")
        self.assertGreaterEqual(cpu, 0)
        self.assertIn("# TYPE process_cpu_seconds_total counter", text)
        # CPU only grows
        for i in range(200):
            tg.get("/auth/orders/%d" % i, api_key("bob"))
        self.assertGreaterEqual(metric(tg.metrics(), "process_cpu_seconds_total"), cpu)
        # a reload that rotates a key: secrets_version moves, the metric's
        # labels do not
        tg.write_keys(extra_lines=[key_line("alice", NEW_ALICE, ["orders:read"], None)])
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: versions(tg) != (cv, sv), 5))
        cv2, sv2 = versions(tg)
        self.assertEqual(cv2, cv)
        self.assertEqual(metric(tg.metrics(), "tollgate_build_info", version="0.1.0",
                                config_version=cv), 1)
        # a config change: the old label set is gone, the new one is 1
        tg.config["shutdown_delay"] = "1s"
        tg.write_config()
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: versions(tg)[0] != cv, 5))
        cv3 = versions(tg)[0]
        text = tg.metrics()
        self.assertIsNone(metric(text, "tollgate_build_info", version="0.1.0", config_version=cv))
        self.assertEqual(metric(text, "tollgate_build_info", version="0.1.0",
                                config_version=cv3), 1)
