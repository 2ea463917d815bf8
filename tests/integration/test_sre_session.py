"""An SRE's session end to end (issue 22, "Done when"): on three replicas
sharing one Redis, a client hammering a limit is found from the fleet's top
list, its next request is explained, it is banned fleet-wide and unbanned,
and a tighter limit is replayed against the fleet's audit logs before it
ships — each step through the real admin API and the real `tollgate
replay`, with a token that may only read for the looking and one that may
write for the acting.

Set TOLLGATE_SRE_TRANSCRIPT=FILE to keep the session's requests and answers
(what docs/operator-guide.md "Tuning a limit" walks through)."""
import copy
import json
import os
import shutil
import subprocess
import unittest

from harness import (SLOW, TOLLGATE_BIN, TollgateCase, api_key, to_yaml, wait_for)

try:
    import redis_harness as rh
except ImportError:  # pragma: no cover
    rh = None

HAVE_REDIS = rh is not None and shutil.which("redis-server") is not None

READ_TOKEN = "sre-dashboard-read-token-0123456789abcdef"
WRITE_TOKEN = "sre-oncall-write-token-0123456789abcdef01"
JSON = {"Content-Type": "application/json"}
PER_CLIENT = 20  # /api/ per client and hour: nothing refills during the test
# bob hammers, the others stay under (carol: 5 here, 3 while bob is banned)
LOAD = {"bob": 45, "alice": 15, "carol": 5}


def session_conf(redis, per_client=PER_CLIENT):
    def configure(cfg):
        tmp = os.path.dirname(cfg["audit"]["path"])
        path = os.path.join(tmp, "admin-tokens")
        with open(path, "w") as f:
            f.write("sre-dashboard read %s\nsre-oncall write %s\n" % (READ_TOKEN, WRITE_TOKEN))
        cfg["admin_tokens_file"] = path
        cfg["redis"] = {"mode": "standalone", "nodes": [redis], "timeout_ms": 500}
        cfg["threads"] = 1
        cfg["top"] = {"publish_interval": "1s", "metric_clients": 3}
        cfg["routes"] = [{"name": "api", "match": {"path_prefix": "/api/"},
                          "auth": "required"}]
        cfg["limits"] = [{"name": "per-client", "match": {"path_prefix": "/api/"},
                          "by": ["client"], "rate": "%d/hour" % per_client}]
        return cfg
    return configure


@unittest.skipUnless(HAVE_REDIS, "redis-server not installed")
class SreSession(TollgateCase):
    shared_server = False

    def setUp(self):
        self.transcript = []
        self.redis = rh.RedisServer().start()
        self.addCleanup(self.redis.close)
        self.tgs = [self.spawn(session_conf(self.redis.addr)) for _ in range(3)]
        for tg in self.tgs:
            tg.config_base = copy.deepcopy(tg.config)

    def tearDown(self):
        out = os.environ.get("TOLLGATE_SRE_TRANSCRIPT")
        if out:
            with open(out, "w") as f:
                f.write("\n".join(self.transcript) + "\n")

    def say(self, text):
        self.transcript.append(text)

    def admin(self, tg, method, path, body=None, token=READ_TOKEN, show=True):
        data = json.dumps(body).encode() if body is not None else None
        r = tg.admin(method, path, JSON if data else None, data, token=token)
        if show:
            self.say("$ %s %s  (replica %d, token %s)%s\n%d %s" % (
                method, path, self.tgs.index(tg) if tg in self.tgs else -1,
                "read" if token == READ_TOKEN else "write",
                "\n  " + json.dumps(body) if body is not None else "",
                r.status, r.body.decode(errors="replace")[:1500]))
        return r

    def status(self, tg, client):
        return tg.get("/auth/api/x", api_key(client)).status

    def hammer(self):
        """LOAD's requests, interleaved, round-robin over the replicas."""
        order = [c for k in range(max(LOAD.values())) for c in sorted(LOAD) if k < LOAD[c]]
        seen = {}
        for i, client in enumerate(order):
            st = self.status(self.tgs[i % 3], client)
            seen.setdefault(client, {}).setdefault(st, 0)
            seen[client][st] += 1
        self.say("load: %s" % json.dumps(seen, sort_keys=True))
        return seen

    def test_find_explain_ban_unban_replay(self):
        seen = self.hammer()
        self.assertEqual(seen["bob"], {200: PER_CLIENT, 429: LOAD["bob"] - PER_CLIENT})
        self.assertEqual(seen["alice"], {200: LOAD["alice"]})

        # 1. who is limited: the fleet's top list, asked of any replica
        def fleet_counts_all():
            r = self.admin(self.tgs[2], "GET", "/admin/v1/limits/per-client/top?window=5m",
                           show=False)
            b = r.json()
            return r.status == 200 and b["scope"] == "fleet" and b["replicas"] == 3 and \
                b["top"] and b["top"][0]["count"] == LOAD["bob"] - PER_CLIENT
        self.assertTrue(wait_for(fleet_counts_all, 20, 0.2), "the fleet's top list never "
                        "counted bob's denials on all three replicas")
        top = self.admin(self.tgs[2], "GET", "/admin/v1/limits/per-client/top?window=5m").json()
        self.assertIn("bob", top["top"][0]["client"])
        self.assertEqual(len(top["top"]), 1, "only bob was denied")

        # 2. why: bob's next request, explained without spending a token
        ex = self.admin(self.tgs[1], "POST", "/admin/v1/explain",
                        {"method": "GET", "path": "/auth/api/x", "as_client": "bob"})
        self.assertEqual(ex.status, 200, ex)
        ans = ex.json()
        self.assertEqual(ans["decision"]["status"], 429, ans)
        self.assertEqual(ans["route"]["name"], "api", ans)
        lim = [x for x in ans["limits"] if x["name"] == "per-client"][0]
        self.assertEqual(lim["tokens"]["remaining"], 0, lim)
        # a read token may look but not act
        r = self.admin(self.tgs[0], "POST", "/admin/v1/bans",
                       {"target": "client:bob", "duration": "15m", "reason": "INC-7"})
        self.assertEqual(r.status, 403, r)

        # 3. ban bob on one replica: every replica refuses bob, and only bob
        r = self.admin(self.tgs[0], "POST", "/admin/v1/bans",
                       {"target": "client:bob", "duration": "15m", "reason": "INC-7 hammering"},
                       token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: self.status(tg, "bob") == 403, 5),
                            "a replica still answers bob")
            self.assertEqual(self.status(tg, "carol"), 200)
        self.say("after the ban: bob %s" % [self.status(tg, "bob") for tg in self.tgs])
        bans = self.admin(self.tgs[2], "GET", "/admin/v1/bans").json()["bans"]
        self.assertEqual([(b["target"], b["actor"]) for b in bans],
                         [("client:bob", "sre-oncall")])

        # 4. unban on another replica: bob is back to his limit everywhere
        r = self.admin(self.tgs[2], "DELETE", "/admin/v1/bans/client%3Abob", token=WRITE_TOKEN)
        self.assertEqual(r.status, 200, r)
        for tg in self.tgs:
            self.assertTrue(wait_for(lambda: self.status(tg, "bob") == 429, 5),
                            "a replica still bans bob")
        trail = self.admin(self.tgs[1], "GET", "/admin/v1/audit").json()
        actions = [(e["action"], e["actor"], e["result"]) for e in trail["entries"]]
        self.assertIn(("ban", "sre-oncall", "ok"), actions)
        self.assertIn(("unban", "sre-oncall", "ok"), actions)
        self.assertIn(("ban", "sre-dashboard", "refused"), actions)

        # 5. replay a tighter limit (10/hour) on the fleet's audit logs first
        for tg in self.tgs:
            self.assertEqual(tg.stop(), 0, tg.stderr()[-2000:])
        logs = [tg.audit_path for tg in self.tgs]
        same = self.replay(self.tgs[0].config_path, logs, "--max-deny-increase", "0")
        self.assertEqual(same.returncode, 0, same.stdout + same.stderr)
        rep = json.loads(self.replay(self.tgs[0].config_path, logs, "--json").stdout)
        lim = [x for x in rep["limits"] if x["name"] == "per-client"][0]
        self.assertEqual((lim["recorded_deny"], lim["would_deny"]), (lim["would_deny"],
                                                                     lim["recorded_deny"]))
        self.assertGreaterEqual(rep["carried"], 6, "the banned requests are carried")

        tight = os.path.join(self.tgs[0].tmp, "tight.yaml")
        with open(tight, "w") as f:
            f.write(to_yaml(session_conf(self.redis.addr, per_client=10)(
                copy.deepcopy(self.tgs[0].config_base))))
        p = self.replay(tight, logs, "--max-deny-increase", "0")
        self.say("$ tollgate replay --config tight.yaml --max-deny-increase 0 audit-*.log\n"
                 "exit %d\n%s" % (p.returncode, p.stdout))
        self.assertEqual(p.returncode, 4, p.stdout + p.stderr)
        rep = json.loads(self.replay(tight, logs, "--json").stdout)
        lim = [x for x in rep["limits"] if x["name"] == "per-client"][0]
        # alice's 15 now pass 10 (5 more denials); bob's allowed 20 become 10
        # (and his denied ones stay denied)
        top = {e["client"]: e["would_deny"] for e in lim["top_denied"]}
        self.assertEqual(top.get("alice"), LOAD["alice"] - 10, lim)
        self.assertNotIn("carol", top)
        self.assertEqual(lim["would_deny"] - lim["recorded_deny"],
                         (LOAD["alice"] - 10) + (PER_CLIENT - 10), lim)

    def replay(self, config, logs, *args):
        p = subprocess.run([TOLLGATE_BIN, "replay", "--config", config] + list(args) + logs,
                           capture_output=True, text=True, env=dict(self.tgs[0].env),
                           cwd=self.tgs[0].tmp, timeout=60 * SLOW)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, p.stderr)
        return p


if __name__ == "__main__":
    unittest.main()
