#!/usr/bin/env python3
"""Redis CPU per decision of lua/bucket.lua: two versions of the script, the
same calls, on one real redis-server (started on a free port, stopped by PID).

    tests/bench/bucket_lua_cpu.py OLD.lua NEW.lua [--calls N] [--rounds R]

Each round resets INFO commandstats, sends N single-form EVALSHA calls of one
version (pipelined, 500 a time) and reads evalsha's usec_per_call, then does
the same with the other version (the order alternates per round), in two
regimes: "allow" (N/10 buckets of 10/minute: every call allowed and
written) and "deny" (64 buckets: after the first 640 calls every call is
denied, read only).  Prints the median per version and regime for normal
(non-dry) calls, and the new script's dry calls (ARGV[1] = 'D').
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import redis_harness as rh  # noqa: E402

RATE = [10, 60000, 10, 0]  # 10/minute, enforce


def usec_per_call(c):
    info = c.call("INFO", "commandstats").decode()
    for line in info.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            for kv in line.split(":", 1)[1].split(","):
                k, v = kv.split("=")
                if k == "usec_per_call":
                    return float(v)
    raise RuntimeError("no evalsha in INFO commandstats")


def run(c, sha, calls, dry, nkeys):
    c.call("FLUSHALL")
    c.call("CONFIG", "RESETSTAT")
    sent = 0
    while sent < calls:
        batch = []
        for i in range(min(500, calls - sent)):
            key = "tg:{bench:%d}:b:d" % ((sent + i) % nkeys)
            head = ["D"] if dry else []
            batch.append(["EVALSHA", sha, 1, key] + head + [1] + RATE)
        for rep in c.pipeline(batch):
            if isinstance(rep, rh.RespError):
                raise rep
        sent += len(batch)
    return usec_per_call(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    regimes = {"allow": max(1, a.calls // 10), "deny": 64}
    res = {}
    with rh.RedisServer() as srv, srv.client() as c:
        sha = {v: c.call("SCRIPT", "LOAD", open(p, "rb").read()).decode()
               for v, p in (("old", a.old), ("new", a.new))}
        for r in range(a.rounds):
            for reg, nkeys in regimes.items():
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for v in order:
                    res.setdefault((reg, v), []).append(
                        run(c, sha[v], a.calls, False, nkeys))
                res.setdefault((reg, "new-dry"), []).append(
                    run(c, sha["new"], a.calls, True, nkeys))
    for (reg, v), xs in res.items():
        print("%-5s %-8s usec_per_call median %.3f  (rounds: %s)"
              % (reg, v, statistics.median(xs), " ".join("%.2f" % x for x in xs)))


if __name__ == "__main__":
    main()
