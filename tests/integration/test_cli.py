"""The command line (docs/reference.md §1): --check-config, exit codes, hash-key,
gen-key; environment overrides (§4)."""
import os
import re
import socket

from harness import (TollgateCase, api_key, bearer, make_jwt, sha256_hex, standard_config,
                     to_yaml, wait_for)


class Cli(TollgateCase):
    shared_server = False

    def offline(self, configure=standard_config, env=None):
        tg = self.spawn(configure, env=env, start=False)
        return tg

    def check(self, tg, text=None, env=None):
        if text is not None:
            tg.write_config(text)
        return tg.run_cli("--config", tg.config_path, "--check-config", env=env)

    def test_check_config_ok(self):
        tg = self.offline()
        p = self.check(tg)
        self.assertEqual(p.returncode, 0, p.stderr)

    def assertFileLine(self, tg, p, text, needle):
        line = [i + 1 for i, l in enumerate(text.splitlines()) if needle in l][0]
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("%s:%d:" % (tg.config_path, line), p.stderr)

    def test_check_config_unknown_key(self):
        tg = self.offline()
        text = to_yaml(tg.config) + "\n"
        text = text.replace("threads: 2\n", "threads: 2\nthreadz: 4\n")
        self.assertFileLine(tg, self.check(tg, text), text, "threadz")

    def test_check_config_unknown_nested_key(self):
        tg = self.offline()
        lim = tg.config["limits"][1]
        lim["rate_limit"] = lim.pop("rate")
        text = to_yaml(tg.config) + "\n"
        self.assertFileLine(tg, self.check(tg, text), text, "rate_limit")

    def test_check_config_bad_rate(self):
        tg = self.offline()
        tg.config["limits"][1]["rate"] = "3/fortnight"
        text = to_yaml(tg.config) + "\n"
        self.assertFileLine(tg, self.check(tg, text), text, "fortnight")

    def test_check_config_yaml_syntax(self):
        tg = self.offline()
        p = self.check(tg, "listen: \"127.0.0.1:1\"\nlimits: [\n  {name: x\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(tg.config_path + ":", p.stderr)

    def test_check_config_missing_file_reference(self):
        tg = self.offline()
        tg.config["auth"]["api_keys_file"] = "/nonexistent/tollgate/keys"
        p = self.check(tg, to_yaml(tg.config))
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/tollgate/keys", p.stderr)

    def test_check_config_production_rules(self):
        tg = self.offline()
        tg.config["environment"] = "production"
        tg.config["auth"]["mode"] = "none"
        self.assertEqual(self.check(tg, to_yaml(tg.config)).returncode, 1)
        tg.config["auth"]["mode"] = "jwt"
        p = self.check(tg, to_yaml(tg.config), env={"JWT_SECRET": "short-secret"})
        self.assertEqual(p.returncode, 1, "short HS256 secret accepted in production")
        self.assertNotIn("short-secret", p.stderr)
        tg.config["cors"] = {"allowed_origins": ["*"]}
        self.assertEqual(self.check(tg, to_yaml(tg.config)).returncode, 1)

    def test_check_config_env_errors(self):
        tg = self.offline()
        p = self.check(tg, env={"RATE_LIMIT_PER_MINUTE": "lots"})
        self.assertEqual(p.returncode, 1)
        self.assertIn("RATE_LIMIT_PER_MINUTE", p.stderr)

    def test_version_help_usage(self):
        tg = self.offline()
        p = tg.run_cli("--version")
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.strip())
        p = tg.run_cli("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--config", p.stdout + p.stderr)
        self.assertEqual(tg.run_cli("--no-such-flag").returncode, 2)
        self.assertEqual(tg.run_cli("hash-key").returncode, 2)

    def test_hash_key(self):
        tg = self.offline()
        p = tg.run_cli("hash-key", "--id", "svc-a", "some-plain-key-0123456789")
        self.assertEqual(p.returncode, 0, p.stderr)
        fields = p.stdout.split()
        self.assertEqual(fields[:2], ["svc-a", sha256_hex("some-plain-key-0123456789")])
        self.assertNotEqual(tg.run_cli("hash-key", "--id", "bad id", "k").returncode, 0)

    def test_gen_key_round_trip(self):
        tg = self.offline()
        p = tg.run_cli("gen-key", "--id", "svc-gen", "--scopes", "orders:read", "--tier", "gold")
        self.assertEqual(p.returncode, 0, p.stderr)
        # the key file line, possibly labelled ("line: svc-gen ...")
        line = [re.sub(r"^[a-z]+:\s+", "", l).strip() for l in p.stdout.splitlines()
                if re.match(r"^([a-z]+:\s+)?svc-gen\s", l)]
        self.assertEqual(len(line), 1, p.stdout)
        line = line[0]
        key = re.search(r"\btg_[A-Za-z0-9_-]{43}\b", p.stdout)
        self.assertTrue(key, p.stdout)
        key = key.group(0)
        self.assertEqual(line.split()[1], sha256_hex(key))
        self.assertIn("scopes=orders:read", line)
        self.assertIn("tier=gold", line)
        tg.write_keys(extra_lines=[line])
        tg.start()
        r = tg.get("/auth/orders/1", {"X-API-Key": key})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "svc-gen")
        self.assertEqual(r.header("X-Auth-Scopes"), "orders:read")
        self.assertEnvelope(tg.get("/auth/orders/admin", {"X-API-Key": key}), 403, "forbidden")
        p2 = tg.run_cli("gen-key", "--id", "svc-gen")
        self.assertNotEqual(p2.stdout.split(), p.stdout.split(), "gen-key repeated a key")

    def test_start_failure_port_in_use(self):
        tg = self.offline()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        tg.config["listen"] = "127.0.0.1:%d" % s.getsockname()[1]
        tg.write_config()
        tg.start(wait=False)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 5), "did not exit")
        self.assertEqual(tg.proc.returncode, 3, tg.stderr())

    def test_start_failure_bad_config_exit_1(self):
        tg = self.offline()
        tg.write_config(to_yaml(tg.config) + "\nbogus: true\n")
        tg.start(wait=False)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 5), "did not exit")
        self.assertEqual(tg.proc.returncode, 1)
        self.assertIn(tg.config_path + ":", tg.stderr())


class Environment(TollgateCase):
    shared_server = False

    def test_rate_limit_per_minute(self):
        tg = self.spawn(env={"RATE_LIMIT_PER_MINUTE": "7"})
        r = tg.get("/auth/x", api_key("bob"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-RateLimit-Limit"), "7")

    def test_implicit_default_limit(self):
        def no_limits(cfg):
            del cfg["limits"]
        tg = self.spawn(no_limits)
        r = tg.get("/auth/x", api_key("bob"))
        self.assertEqual(r.header("X-RateLimit-Limit"), "60")
        self.assertIn('"default";q=60;w=60', r.header("RateLimit-Policy", ""))

    def test_allowed_api_keys(self):
        plain = "env-plain-key-0123456789abcdef"
        tg = self.spawn(env={"ALLOWED_API_KEYS": plain + ",other-plain-key-0123456789"})
        r = tg.get("/auth/x", {"X-API-Key": plain})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Auth-Client-Id"), "key-" + sha256_hex(plain)[:8])
        tg.stop()
        self.assertNotIn(plain, tg.stderr() + tg.stdout() + tg.audit_raw().decode())

    def test_auth_mode_and_api_key_enabled(self):
        tg = self.spawn(env={"AUTH_MODE": "jwt"})
        self.assertEqual(tg.get("/auth/x", api_key("bob")).status, 401)
        tg = self.spawn(env={"API_KEY_ENABLED": "false"})
        self.assertEqual(tg.get("/auth/x", api_key("bob")).status, 401)

    def test_max_request_body_bytes(self):
        tg = self.spawn(env={"MAX_REQUEST_BODY_BYTES": "100"})
        self.assertEqual(tg.req("POST", "/auth/x", api_key("bob"), b"z" * 200).status, 413)
        self.assertEqual(tg.req("POST", "/auth/x", api_key("bob"), b"z" * 50).status, 200)

    def test_audit_log_path(self):
        tg = self.spawn(start=False)
        other = os.path.join(tg.tmp, "audit-env.log")
        tg.env["AUDIT_LOG_PATH"] = other
        tg.start()
        rid = tg.get("/auth/x", api_key("bob")).header("X-Request-ID")
        self.assertTrue(wait_for(lambda: os.path.exists(other) and
                                 rid.encode() in open(other, "rb").read(), 3))

    def test_secret_files(self):
        tg = self.spawn(start=False, env={"JWT_SECRET": None, "ADMIN_TOKEN": None})
        secret = "file-jwt-secret-0123456789abcdef0123456789"
        with open(os.path.join(tg.tmp, "admin-token"), "w") as f:
            f.write("file-admin-token-0123456789\n")
        with open(os.path.join(tg.tmp, "jwt-secret"), "w") as f:
            f.write(secret + "\n")
        tg.env["ADMIN_TOKEN_FILE"] = os.path.join(tg.tmp, "admin-token")
        tg.env["JWT_SECRET_FILE"] = os.path.join(tg.tmp, "jwt-secret")
        tg.start()
        r = tg.admin("GET", "/admin/v1/config", token="file-admin-token-0123456789")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(b"file-admin-token-0123456789", r.body)
        self.assertNotIn(secret.encode(), r.body)
        r = tg.get("/auth/x", bearer(make_jwt({"sub": "f"}, secret=secret)))
        self.assertEqual(r.status, 200, r)
