"""Port 0 and --port-file (docs/reference.md, Command line): the kernel picks
the ports, every worker joins the one main port, the file names the bound
addresses, a reload never rebinds, and a port file that cannot be written
stops the start."""
import json
import os
import signal

from harness import (TollgateCase, api_key, standard_config, wait_for)


def listening_sockets(port):
    """How many IPv4 sockets listen on 127.0.0.1:port (/proc/net/tcp: one
    line per socket, so each SO_REUSEPORT member counts)."""
    want = "0100007F:%04X" % port
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":  # 0A: LISTEN
                n += 1
    return n


class PortZero(TollgateCase):
    shared_server = False

    def spawn3(self):
        def configure(cfg):
            standard_config(cfg)
            cfg["threads"] = 3
        return self.spawn(configure)

    def test_port_file_names_the_bound_ports(self):
        tg = self.spawn3()
        self.assertEqual(tg.config["listen"], "127.0.0.1:0")
        self.assertEqual(tg.config["admin_listen"], "127.0.0.1:0")
        with open(tg.port_file) as f:
            text = f.read()
        self.assertTrue(text.endswith("}\n"), text)
        bound = json.loads(text)
        self.assertEqual(sorted(bound), ["admin", "listen"])
        self.assertEqual(bound["listen"], "127.0.0.1:%d" % tg.port)
        self.assertEqual(bound["admin"], "127.0.0.1:%d" % tg.admin_port)
        self.assertNotIn(tg.port, (0, tg.admin_port))
        self.assertEqual(os.stat(tg.port_file).st_mode & 0o777, 0o644)
        # no temp file left beside it
        self.assertEqual([n for n in os.listdir(tg.tmp) if n.startswith("ports.json.")], [])
        # the three workers share the one port the first got; admin has its own
        self.assertEqual(listening_sockets(tg.port), 3)
        self.assertEqual(listening_sockets(tg.admin_port), 1)
        for _ in range(30):
            self.assertEqual(tg.get("/auth/orders/1", api_key("alice")).status, 200)
        self.assertEqual(tg.readyz()[0], 200)
        self.assertIn("tollgate listening on 127.0.0.1:%d (3 threads), admin on 127.0.0.1:%d"
                      % (tg.port, tg.admin_port), tg.stderr())

    def test_reload_keeps_the_ports(self):
        tg = self.spawn3()
        port, admin = tg.port, tg.admin_port
        with open(tg.port_file, "rb") as f:
            before = f.read()
        v1 = tg.readyz()[1]["config_version"]
        tg.config["limits"][0]["rate"] = "999/minute"
        tg.write_config()
        tg.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: tg.readyz()[1]["config_version"] != v1, 5),
                        "the reload was not taken")
        self.assertEqual(tg.admin("POST", "/admin/v1/reload").status, 200)
        self.assertNotIn("listen addresses change only on restart", tg.stderr())
        with open(tg.port_file, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(listening_sockets(port), 3)
        self.assertEqual(listening_sockets(admin), 1)
        self.assertEqual(tg.get("/auth/orders/1", api_key("alice")).status, 200)
        self.assertEqual(tg.stderr().count("tollgate listening on"), 1)

    def test_restart_binds_anew(self):
        tg = self.spawn(standard_config)
        first = tg.port
        self.assertEqual(tg.stop(), 0)
        self.assertEqual(listening_sockets(first), 0)
        tg.start()  # the old port file is gone before the new process starts
        self.assertEqual(listening_sockets(tg.port), 2)  # threads: 2
        self.assertEqual(tg.get("/auth/orders/1", api_key("alice")).status, 200)

    def test_unwritable_port_file_stops_the_start(self):
        tg = self.spawn(standard_config, start=False)
        missing = os.path.join(tg.tmp, "no-such-dir", "ports.json")
        tg.start(args=("--port-file", missing), wait=False)
        self.assertTrue(wait_for(lambda: tg.proc.poll() is not None, 10), "did not exit")
        self.assertEqual(tg.proc.returncode, 3, tg.stderr())
        self.assertIn("cannot start: --port-file %s: No such file or directory" % missing,
                      tg.stderr())
        self.assertFalse(os.path.exists(missing))

    def test_empty_port_file_is_a_usage_error(self):
        tg = self.spawn(standard_config, start=False)
        p = tg.run_cli("--config", tg.config_path, "--port-file", "")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--port-file needs a path", p.stderr)

    def test_check_config_port_zero(self):
        tg = self.spawn(standard_config, start=False)
        p = tg.run_cli("--config", tg.config_path, "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)  # both on 127.0.0.1:0
        tg.config["listen"] = tg.config["admin_listen"] = "127.0.0.1:9090"
        tg.write_config()
        p = tg.run_cli("--config", tg.config_path, "--check-config")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("admin_listen must differ from listen", p.stderr)
