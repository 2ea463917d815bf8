"""lua/bucket.lua against a real redis-server and a real 6-node cluster.

Expected values come from `model()`, the integer formulas of
include/tollgate/rl_bucket.h written again in Python, plus literal cross-check
vectors shared with the C tests (10/second burst 10: ten allowed, then denied
with retry-after 100 ms; cost 3 on 2 tokens denied, nothing charged).

The script's clock is Redis TIME, so a call is bracketed by two TIME reads
[t0, t1] and must equal model(now) for some now in that window, including the
fields it wrote: exact, yet independent of how fast the machine is.  Where a
fixed clock is wanted, the bucket's `ts` is put in the future: a clock that
went backwards adds nothing, so no refill happens during the test.

Dry runs (ARGV[1] = 'D', or 'D' before a request's k in the batch form) are
checked the same way, and for writing nothing: the key's DUMP and
PEXPIRETIME, and Redis' rdb_changes_since_last_save, are the same after.
"""

import hashlib
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis_harness as rh  # noqa: E402

SECOND, MINUTE, HOUR, DAY = 1000, 60000, 3600000, 86400000
MARGIN_MS = 1000  # EXPIRE_MARGIN_MS of bucket.lua
ENFORCE, SHADOW = 0, 1


def ceil_div(a, b):
    return -(-a // b)


class Rate:
    def __init__(self, n, period_ms, burst=None, mode=ENFORCE):
        self.n, self.period, self.burst, self.mode = n, period_ms, burst or n, mode

    @property
    def cap(self):
        return self.burst * self.period

    def argv(self):
        return [self.n, self.period, self.burst, self.mode]


def model(cost, rates, states, now):
    """What bucket.lua must answer: (reply, new_states).  states[i] is
    (level, ts) or None (missing / corrupt: a full bucket); new_states[i] is
    the (level, ts) written, or None when the key is not written."""
    cur = []
    for r, st in zip(rates, states):
        level, ts = st if st is not None else (r.cap, now)
        level = min(level, r.cap)
        if now > ts:
            level = min(r.cap, level + (now - ts) * r.n)
            ts = now
        cur.append((level, ts))
    fits = [lv >= cost * r.period for r, (lv, _) in zip(rates, cur)]
    allowed = all(f or r.mode == SHADOW for r, f in zip(rates, fits))
    retry = 0
    if not allowed:
        retry = max(ceil_div(cost * r.period - lv, r.n)
                    for r, (lv, _), f in zip(rates, cur, fits)
                    if not f and r.mode == ENFORCE)
    reply, written = [1 if allowed else 0, retry], []
    for r, (lv, ts), f in zip(rates, cur, fits):
        need = cost * r.period
        w = None
        if allowed and f and cost > 0:
            lv -= need
            w = (lv, ts)
        written.append(w)
        reply += [1 if f else 0, lv // r.period, ceil_div(r.cap - lv, r.n),
                  0 if f else ceil_div(need - lv, r.n)]
    return reply, written


C_VECTORS = os.path.join(rh.REPO, "tests", "unit", "test_rl_bucket.c")


def c_vectors():
    """The vectors of tests/unit/test_rl_bucket.c (between its BEGIN/END
    markers): dicts with name, n, period, burst, level, ts, now, cost,
    allowed, remaining, reset, retry, level_after, ts_after."""
    with open(C_VECTORS) as f:
        text = f.read()
    body = text.split("BEGIN bucket vectors", 1)[1].split("END bucket vectors", 1)[0]
    fields = ("n period burst level ts now cost allowed remaining reset retry "
              "level_after ts_after").split()
    out = []
    for name, nums in re.findall(r'\{\s*"([^"]*)"\s*,([^{}]*)\}', body):
        vals = [int(v) for v in nums.replace("\n", " ").split(",") if v.strip()]
        if len(vals) != len(fields):
            raise ValueError("vector %r has %d numbers" % (name, len(vals)))
        d = dict(zip(fields, vals))
        d["name"] = name
        out.append(d)
    return out


# More vectors in the same shape, for edges the C table does not reach yet.
EXTRA_VECTORS = [
    # refill that would overshoot the capacity by 2 units lands exactly on it
    dict(name="refill overshoot", n=3, period=1000, burst=1, level=990, ts=0, now=4,
         cost=1, allowed=1, remaining=0, reset=334, retry=0, level_after=0, ts_after=4),
    # one ms short of the saturation point: plain elapsed * n
    dict(name="refill one ms short", n=3, period=1000, burst=1, level=990, ts=0, now=3,
         cost=1, allowed=0, remaining=0, reset=1, retry=1, level_after=999, ts_after=3),
    dict(name="cost 0 peek", n=5, period=60000, burst=5, level=100, ts=0, now=0,
         cost=0, allowed=1, remaining=0, reset=59980, retry=0, level_after=100, ts_after=0),
    dict(name="max n per ms", n=4294967295, period=1, burst=10000000, level=0, ts=0, now=0,
         cost=1, allowed=0, remaining=0, reset=1, retry=1, level_after=0, ts_after=0),
]


def parse_state(fields):
    """HMGET tokens ts -> (level, ts) or None, as the script reads it."""
    try:
        lv, ts = int(fields[0]), int(fields[1])
    except (TypeError, ValueError):
        return None
    return (lv, ts) if lv >= 0 and ts >= 0 else None


@unittest.skipUnless(rh.have_redis(), "redis-server / redis-cli not installed")
class BucketCase(unittest.TestCase):
    """Helpers shared by the standalone and the cluster tests."""

    def evalsha(self, c, keys, rates, cost=1, sha=None, dry=False):
        args = (["D"] if dry else []) + [cost]
        for r in rates:
            args += r.argv()
        return c.call("EVALSHA", sha or self.sha, len(keys), *keys, *args)

    @staticmethod
    def now_ms(c):
        s, us = c.call("TIME")
        return int(s) * 1000 + int(us) // 1000

    @staticmethod
    def raw_state(c, key):
        return c.call("HMGET", key, "tokens", "ts")

    def set_state(self, c, key, level, ts):
        c.call("DEL", key)
        c.call("HSET", key, "tokens", level, "ts", ts)

    @staticmethod
    def image(c, key):
        """Everything of a key a write could change: its serialized value
        (DUMP: type, fields, encoding) and its absolute expiry."""
        return c.call("DUMP", key), c.call("PEXPIRETIME", key)

    @staticmethod
    def changes(c):
        """Redis' count of writes since the last save (every write bumps it)."""
        info = c.call("INFO", "persistence").decode()
        return int(re.search(r"rdb_changes_since_last_save:(\d+)", info).group(1))

    def checked(self, c, keys, rates, cost=1):
        """EVALSHA, and check the reply and every key's fields against
        model(now) for a `now` between two TIME reads around the call."""
        raw = [self.raw_state(c, k) for k in keys]
        before = [parse_state(f) for f in raw]
        t0 = self.now_ms(c)
        reply = self.evalsha(c, keys, rates, cost)
        t1 = self.now_ms(c)
        after_raw = [self.raw_state(c, k) for k in keys]
        self.assert_ints(reply)
        tried = []
        for now in range(t0, t1 + 1):
            want, written = model(cost, rates, before, now)
            tried.append(want)
            if want != reply:
                continue
            ok = True
            for w, old, new in zip(written, raw, after_raw):
                if w is None:
                    ok = ok and new == old
                else:
                    ok = ok and new == [b"%d" % w[0], b"%d" % w[1]]
            if ok:
                return reply
        self.fail("reply %r / fields %r match no now in [%d, %d]: model says %r"
                  % (reply, after_raw, t0, t1, tried))

    def assert_ints(self, reply):
        self.assertIsInstance(reply, list)
        for v in reply:
            self.assertIsInstance(v, int)
        return reply


class TestLuaBucketStandalone(BucketCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = rh.RedisServer().start()
        cls.c = cls.srv.client()
        cls.sha = rh.load_script(cls.c)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.srv.close()

    def setUp(self):
        self.c.call("FLUSHALL")
        self.c.call("SCRIPT", "LOAD", open(rh.BUCKET_LUA, "rb").read())

    def frozen(self, key, level):
        """A bucket at `level` whose ts is an hour ahead: no refill."""
        self.set_state(self.c, key, level, self.now_ms(self.c) + HOUR)

    # -- the script itself --------------------------------------------------

    def test_sha_is_sha1_of_the_file(self):
        with open(rh.BUCKET_LUA, "rb") as f:
            self.assertEqual(self.sha, hashlib.sha1(f.read()).hexdigest())

    def test_cross_check_10_per_second_frozen(self):
        r = Rate(10, SECOND, 10)
        k = "tg:{client:x}:b:default"
        self.frozen(k, r.cap)
        for i in range(10):
            self.assertEqual(self.evalsha(self.c, [k], [r]),
                             [1, 0, 1, 9 - i, (i + 1) * 100, 0])
        self.assertEqual(self.evalsha(self.c, [k], [r]), [0, 100, 0, 0, 1000, 100])
        self.assertEqual(self.raw_state(self.c, k)[0], b"0")

    def test_cross_check_10_per_second_real_time(self):
        r = Rate(10, SECOND, 10)
        k = "tg:{client:y}:b:default"
        for i in range(10):
            self.assertEqual(self.checked(self.c, [k], [r])[0], 1, "request %d" % i)
        reply = self.checked(self.c, [k], [r])
        self.assertEqual(reply[0], 0)
        # 100 ms for one token, less whatever refilled while the test ran.
        self.assertTrue(50 <= reply[1] <= 100, reply)

    def test_cost_3_on_2_tokens_denied_nothing_charged(self):
        r = Rate(10, SECOND, 10)
        k = "tg:{client:z}:b:default"
        ts = self.now_ms(self.c) + HOUR
        self.set_state(self.c, k, 2000, ts)
        pttl = self.c.call("PTTL", k)
        self.assertEqual(self.evalsha(self.c, [k], [r], cost=3), [0, 100, 0, 2, 800, 100])
        self.assertEqual(self.raw_state(self.c, k), [b"2000", b"%d" % ts])
        self.assertEqual(self.c.call("PTTL", k), pttl)  # not written at all
        # With the real clock too (a denied call writes nothing).
        self.set_state(self.c, k, 2000, self.now_ms(self.c))
        self.assertEqual(self.checked(self.c, [k], [r], cost=3)[0], 0)

    def test_fixed_point_vectors(self):
        """Frozen clock, every formula, against model() and literals."""
        big = Rate(1, DAY, 10 ** 7)
        vectors = [
            # rate, level, cost, literal reply (allowed, retry, fits, rem, reset, retry)
            (Rate(10, SECOND, 10), 10000, 1, [1, 0, 1, 9, 100, 0]),
            (Rate(10, SECOND, 10), 0, 1, [0, 100, 0, 0, 1000, 100]),
            (Rate(10, SECOND, 10), 999, 1, [0, 1, 0, 0, 901, 1]),
            (Rate(60, MINUTE, 60), 30000, 1, [0, 500, 0, 0, 59500, 500]),
            (Rate(7, HOUR, 3), 1, 1, [0, 514286, 0, 0, 1542857, 514286]),
            (Rate(100, SECOND, 5), 4999, 5, [0, 1, 0, 4, 1, 1]),
            (Rate(100, SECOND, 5), 5000, 5, [1, 0, 1, 0, 50, 0]),
            (Rate(1, SECOND, 1), 1000, 2, [0, 1000, 0, 1, 0, 1000]),  # cost > burst
            (big, big.cap, 1, [1, 0, 1, 9999999, DAY, 0]),
            (big, 0, 10 ** 7, [0, big.cap, 0, 0, big.cap, big.cap]),
            (Rate(4294967295, 1, 10 ** 7), 0, 1, [0, 1, 0, 0, 1, 1]),
            (Rate(3, 7, 2), 13, 1, [1, 0, 1, 0, 3, 0]),
            (Rate(5, MINUTE, 5), 100, 0, [1, 0, 1, 0, 59980, 0]),  # cost 0: peek
        ]
        for i, (r, level, cost, lit) in enumerate(vectors):
            with self.subTest(vector=i):
                k = "tg:{v}:b:%d" % i
                ts = self.now_ms(self.c) + HOUR
                self.set_state(self.c, k, level, ts)
                want, written = model(cost, [r], [(level, ts)], ts - HOUR)
                self.assertEqual(want, lit, "model vs literal")
                self.assertEqual(self.assert_ints(self.evalsha(self.c, [k], [r], cost)), lit)
                w = written[0] or (level, ts)
                self.assertEqual(self.raw_state(self.c, k), [b"%d" % w[0], b"%d" % ts])

    def test_c_vectors_in_python_model(self):
        vecs = c_vectors()
        self.assertGreaterEqual(len(vecs), 10)
        for v in vecs + EXTRA_VECTORS:
            with self.subTest(v["name"]):
                r = Rate(v["n"], v["period"], v["burst"])
                reply, written = model(v["cost"], [r], [(v["level"], v["ts"])], v["now"])
                self.assertEqual(reply, [v["allowed"], v["retry"], v["allowed"],
                                         v["remaining"], v["reset"], v["retry"]])
                lv, ts = written[0] or (None, None)
                if v["allowed"] and v["cost"] > 0:
                    self.assertEqual((lv, ts), (v["level_after"], v["ts_after"]))

    def test_c_vectors_in_lua(self):
        """Every C vector through the script, at the vector's clock: state is
        stored relative to a target ms T (vector `now` -> T), and the call runs
        in MULTI/EXEC between two TIMEs; a run counts only when both TIMEs
        read T, so the script saw exactly now = T.  Retried until it does."""
        for v in c_vectors() + EXTRA_VECTORS:
            with self.subTest(v["name"]):
                r = Rate(v["n"], v["period"], v["burst"])
                k = "tg:{cvec}:b:" + v["name"].replace(" ", "-")
                # a try misses when this process or Redis is descheduled
                # across the ms (often, on a busy machine): cheap, so many
                for _ in range(500):
                    got = self.run_at_target(k, r, v)
                    if got is not None:
                        break
                else:
                    self.fail("no run landed within one ms")
                reply, fields, target = got
                self.assertEqual(reply, [v["allowed"], v["retry"], v["allowed"],
                                         v["remaining"], v["reset"], v["retry"]])
                if v["allowed"] and v["cost"] > 0:
                    shift = target - v["now"]
                    self.assertEqual(fields, [b"%d" % v["level_after"],
                                              b"%d" % (v["ts_after"] + shift)])

    def test_c_vectors_dry_in_lua(self):
        """The same vectors as dry runs: the same reply at the same clock,
        and the key exactly as it was (the state it had, no expiry set)."""
        for v in c_vectors() + EXTRA_VECTORS:
            with self.subTest(v["name"]):
                r = Rate(v["n"], v["period"], v["burst"])
                k = "tg:{cvecdry}:b:" + v["name"].replace(" ", "-")
                for _ in range(500):
                    got = self.run_at_target(k, r, v, dry=True)
                    if got is not None:
                        break
                else:
                    self.fail("no run landed within one ms")
                reply, fields, target = got
                self.assertEqual(reply, [v["allowed"], v["retry"], v["allowed"],
                                         v["remaining"], v["reset"], v["retry"]])
                shift = target - v["now"]
                self.assertEqual(fields, [b"%d" % v["level"], b"%d" % (v["ts"] + shift)])
                self.assertEqual(self.c.call("PTTL", k), -1)

    def run_at_target(self, k, r, v, dry=False):
        target = int(time.time() * 1000) + 3
        shift = target - v["now"]
        self.set_state(self.c, k, v["level"], v["ts"] + shift)
        while time.time() * 1000 < target + 0.05:
            pass
        head = ["D"] if dry else []
        cmds = [["MULTI"], ["TIME"], ["EVALSHA", self.sha, 1, k] + head + [v["cost"]] + r.argv(),
                ["TIME"], ["EXEC"]]
        res = self.c.pipeline(cmds)[-1]
        t0, reply, t1 = res
        ms = [int(t[0]) * 1000 + int(t[1]) // 1000 for t in (t0, t1)]
        if ms != [target, target]:
            return None
        return reply, self.raw_state(self.c, k), target

    def test_big_values_stored_exactly(self):
        r = Rate(1, DAY, 10 ** 7)
        k = "tg:{big}:b:d"
        reply = self.checked(self.c, [k], [r])
        self.assertEqual(reply[:4], [1, 0, 1, 10 ** 7 - 1])
        self.assertEqual(self.raw_state(self.c, k)[0], b"863999913600000")

    # -- refill with the real clock -----------------------------------------

    def test_refill_from_the_past(self):
        r = Rate(1, SECOND, 100)
        k = "tg:{refill}:b:d"
        self.set_state(self.c, k, 0, self.now_ms(self.c) - 12345)
        reply = self.checked(self.c, [k], [r])
        self.assertEqual(reply[:4], [1, 0, 1, 11])

    def test_refill_caps_at_burst_and_ancient_ts(self):
        r = Rate(10 ** 6, 1, 10 ** 7)  # large n: elapsed * n would pass 2^53
        k = "tg:{old}:b:d"
        self.set_state(self.c, k, 0, 0)  # 1970
        reply = self.checked(self.c, [k], [r])
        self.assertEqual(reply, [1, 0, 1, 10 ** 7 - 1, 1, 0])

    def test_clock_backwards_adds_nothing(self):
        r = Rate(10, SECOND, 10)
        k = "tg:{back}:b:d"
        ts = self.now_ms(self.c) + 5000
        self.set_state(self.c, k, 1500, ts)
        self.assertEqual(self.evalsha(self.c, [k], [r]), [1, 0, 1, 0, 950, 0])
        self.assertEqual(self.raw_state(self.c, k), [b"500", b"%d" % ts])

    def test_level_above_capacity_is_capped(self):
        r = Rate(2, SECOND, 2)  # e.g. burst lowered from 100 to 2
        k = "tg:{cap}:b:d"
        self.set_state(self.c, k, 100 * SECOND, self.now_ms(self.c) + HOUR)
        self.assertEqual(self.evalsha(self.c, [k], [r]), [1, 0, 1, 1, 500, 0])

    # -- all-or-nothing and shadow ------------------------------------------

    def test_all_or_nothing_over_two_keys(self):
        a, b = "tg:{client:ab}:b:default", "tg:{client:ab}:b:batch"
        ra, rb = Rate(10, SECOND, 10), Rate(10, MINUTE, 10)
        ts = self.now_ms(self.c) + HOUR
        self.set_state(self.c, a, 5000, ts)
        self.set_state(self.c, b, 0, ts)
        before = [self.raw_state(self.c, k) for k in (a, b)]
        reply = self.evalsha(self.c, [a, b], [ra, rb])
        self.assertEqual(reply, [0, 6000, 1, 5, 500, 0, 0, 0, 60000, 6000])
        self.assertEqual([self.raw_state(self.c, k) for k in (a, b)], before)
        # Give b one token: now both are charged.
        self.set_state(self.c, b, MINUTE, ts)
        reply = self.evalsha(self.c, [a, b], [ra, rb])
        self.assertEqual(reply, [1, 0, 1, 4, 600, 0, 1, 0, 60000, 0])
        self.assertEqual(self.raw_state(self.c, a)[0], b"4000")
        self.assertEqual(self.raw_state(self.c, b)[0], b"0")

    def test_all_or_nothing_real_time_missing_keys(self):
        keys = ["tg:{client:m}:b:%s" % n for n in ("a", "b", "c")]
        rates = [Rate(5, SECOND, 5), Rate(2, DAY, 2), Rate(100, MINUTE, 100)]
        for i in range(2):
            self.assertEqual(self.checked(self.c, keys, rates)[0], 1)
        reply = self.checked(self.c, keys, rates)  # b is empty now
        self.assertEqual(reply[0], 0)
        self.assertEqual([reply[2], reply[6], reply[10]], [1, 0, 1])

    def test_denied_by_largest_retry(self):
        keys = ["tg:{client:r}:b:a", "tg:{client:r}:b:b"]
        rates = [Rate(1, SECOND, 1), Rate(1, MINUTE, 1)]
        ts = self.now_ms(self.c) + HOUR
        for k in keys:
            self.set_state(self.c, k, 0, ts)
        reply = self.evalsha(self.c, keys, rates)
        self.assertEqual(reply[:2], [0, MINUTE])

    def test_shadow_never_blocks(self):
        e, s = "tg:{client:s}:b:enf", "tg:{client:s}:b:shadow"
        re_, rs = Rate(10, SECOND, 10), Rate(1, MINUTE, 1, SHADOW)
        ts = self.now_ms(self.c) + HOUR
        self.set_state(self.c, e, 10000, ts)
        self.set_state(self.c, s, 0, ts)
        reply = self.evalsha(self.c, [e, s], [re_, rs])
        self.assertEqual(reply, [1, 0, 1, 9, 100, 0, 0, 0, 60000, 60000])
        self.assertEqual(self.raw_state(self.c, e)[0], b"9000")
        self.assertEqual(self.raw_state(self.c, s)[0], b"0")
        # A denied request charges no shadow bucket either.
        self.set_state(self.c, e, 0, ts)
        self.set_state(self.c, s, MINUTE, ts)
        reply = self.evalsha(self.c, [e, s], [re_, rs])
        self.assertEqual(reply, [0, 100, 0, 0, 1000, 100, 1, 1, 0, 0])
        self.assertEqual(self.raw_state(self.c, s)[0], b"%d" % MINUTE)
        # Allowed and fitting: the shadow bucket is charged.
        self.set_state(self.c, e, 10000, ts)
        reply = self.evalsha(self.c, [e, s], [re_, rs])
        self.assertEqual(reply, [1, 0, 1, 9, 100, 0, 1, 0, 60000, 0])
        self.assertEqual(self.raw_state(self.c, s)[0], b"0")

    def test_only_shadow_keys_always_allowed(self):
        k = "tg:{client:o}:b:shadow"
        r = Rate(1, DAY, 1, SHADOW)
        for _ in range(3):
            self.assertEqual(self.checked(self.c, [k], [r])[0], 1)

    # -- expiry --------------------------------------------------------------

    def test_pexpire_is_full_refill_time(self):
        k = "tg:{client:e}:b:d"
        r = Rate(60, MINUTE, 60)
        reply = self.checked(self.c, [k], [r], cost=60)
        self.assertEqual(reply[:4], [1, 0, 1, 0])
        pttl = self.c.call("PTTL", k)
        self.assertTrue(0 < pttl <= MINUTE + MARGIN_MS, pttl)
        self.assertTrue(pttl > MINUTE - 1000, pttl)  # set to the full refill
        r10 = Rate(10, SECOND, 10)
        k2 = "tg:{client:e}:b:e"
        self.checked(self.c, [k2], [r10])
        pttl = self.c.call("PTTL", k2)
        self.assertTrue(0 < pttl <= 100 + MARGIN_MS, pttl)
        # Peeks and denials do not create or touch keys.
        self.assertEqual(self.checked(self.c, ["tg:{client:e}:b:new"], [r10], cost=0)[0], 1)
        self.assertEqual(self.c.call("EXISTS", "tg:{client:e}:b:new"), 0)

    # -- bad input and corrupt state ----------------------------------------

    def test_corrupt_state_is_a_full_bucket(self):
        r = Rate(10, SECOND, 10)
        now = self.now_ms(self.c)
        cases = {
            "garbage": [("tokens", "abc"), ("ts", now)],
            "inf": [("tokens", "inf"), ("ts", now)],
            "nan": [("tokens", "nan"), ("ts", now)],
            "negative": [("tokens", -5), ("ts", now)],
            "no-ts": [("tokens", 3000)],
            "no-tokens": [("ts", now)],
            "other-field": [("x", 1)],
        }
        for name, fields in cases.items():
            with self.subTest(name):
                k = "tg:{corrupt}:b:" + name
                for f, v in fields:
                    self.c.call("HSET", k, f, v)
                reply = self.evalsha(self.c, [k], [r])
                self.assertEqual(reply, [1, 0, 1, 9, 100, 0])
        k = "tg:{corrupt}:b:string"
        self.c.call("SET", k, "not a hash")
        self.assertEqual(self.evalsha(self.c, [k], [r]), [1, 0, 1, 9, 100, 0])
        self.assertEqual(self.c.call("TYPE", k), "hash")
        k = "tg:{corrupt}:b:list"
        self.c.call("RPUSH", k, "x")
        self.assertEqual(self.evalsha(self.c, [k], [r], cost=0), [1, 0, 1, 10, 0, 0])
        self.assertEqual(self.c.call("TYPE", k), "list")  # peek writes nothing

    def test_bad_arguments_are_errors(self):
        k = "tg:{bad}:b:d"
        good = [1, 10, 1000, 10, 0]
        bad = {
            "no keys": (0, [], [1]),
            "short argv": (1, [k], good[:-1]),
            "long argv": (1, [k], good + [1]),
            "cost negative": (1, [k], [-1] + good[1:]),
            "cost fraction": (1, [k], [0.5] + good[1:]),
            "cost huge": (1, [k], [10 ** 7 + 1] + good[1:]),
            "cost text": (1, [k], ["x"] + good[1:]),
            "n zero": (1, [k], [1, 0, 1000, 10, 0]),
            "n too big": (1, [k], [1, 2 ** 32, 1000, 10, 0]),
            "period zero": (1, [k], [1, 10, 0, 10, 0]),
            "period > day": (1, [k], [1, 10, DAY + 1, 10, 0]),
            "burst zero": (1, [k], [1, 10, 1000, 0, 0]),
            "burst too big": (1, [k], [1, 10, 1000, 10 ** 7 + 1, 0]),
            "mode 2": (1, [k], [1, 10, 1000, 10, 2]),
            "inf": (1, [k], [1, "inf", 1000, 10, 0]),
        }
        for name, (nk, keys, argv) in bad.items():
            with self.subTest(name):
                with self.assertRaises(rh.RespError) as cm:
                    self.c.call("EVALSHA", self.sha, nk, *keys, *argv)
                self.assertIn("tollgate bucket", str(cm.exception))
                self.assertTrue(str(cm.exception).startswith("ERR"), str(cm.exception))
        self.assertEqual(self.c.call("EXISTS", k), 0)

    def test_noscript_after_flush(self):
        k = "tg:{client:n}:b:d"
        r = Rate(10, SECOND, 10)
        self.assertEqual(self.evalsha(self.c, [k], [r])[0], 1)
        self.c.call("SCRIPT", "FLUSH")
        with self.assertRaises(rh.RespError) as cm:
            self.evalsha(self.c, [k], [r])
        self.assertEqual(cm.exception.code, "NOSCRIPT")
        self.assertEqual(rh.load_script(self.c), self.sha)
        self.assertEqual(self.evalsha(self.c, [k], [r])[:4], [1, 0, 1, 8])

    # -- dry runs (rl_request_t.dry_run) --------------------------------------

    def test_dry_run_same_reply_key_byte_identical(self):
        """After real calls, a dry run answers exactly what the next real call
        answers and leaves the key byte-identical (DUMP, PEXPIRETIME) and
        Redis without a single write; allowed, then denied."""
        r = Rate(3, SECOND, 3)
        k = "tg:{client:dry}:b:d"
        self.set_state(self.c, k, r.cap, self.now_ms(self.c) + HOUR)  # frozen
        self.c.call("PEXPIRE", k, 2 * HOUR)
        for i in range(4):
            with self.subTest(call=i):
                before, writes = self.image(self.c, k), self.changes(self.c)
                dry = self.evalsha(self.c, [k], [r], dry=True)
                self.assertEqual(self.image(self.c, k), before)
                self.assertEqual(self.changes(self.c), writes)
                real = self.evalsha(self.c, [k], [r])
                self.assertEqual(dry, real)
                self.assertEqual(real[0], 1 if i < 3 else 0)
        self.assertEqual(dry, [0, 334, 0, 0, 1000, 334])  # exhausted: retry-after

    def test_dry_run_real_clock_matches_model(self):
        """With the real clock: the reply is model(now) for a now between two
        TIME reads, and no field was written (checked() compares them)."""
        r = Rate(10, SECOND, 10)
        k = "tg:{client:dryclock}:b:d"
        self.set_state(self.c, k, 2500, self.now_ms(self.c) - 100)
        raw = self.raw_state(self.c, k)
        t0 = self.now_ms(self.c)
        reply = self.evalsha(self.c, [k], [r], dry=True)
        t1 = self.now_ms(self.c)
        want = [model(1, [r], [parse_state(raw)], now)[0] for now in range(t0, t1 + 1)]
        self.assertIn(reply, want)
        self.assertEqual(self.raw_state(self.c, k), raw)

    def test_dry_run_of_a_missing_bucket_creates_nothing(self):
        keys = ["tg:{client:drynew}:b:a", "tg:{client:drynew}:b:b"]
        rates = [Rate(5, SECOND, 5), Rate(1, DAY, 1)]
        writes = self.changes(self.c)
        for cost in (1, 2):  # allowed; denied by b
            reply = self.evalsha(self.c, keys, rates, cost=cost, dry=True)
            self.assertEqual(reply[0], 1 if cost == 1 else 0)
        self.assertEqual(reply, [0, DAY, 1, 5, 0, 0, 0, 1, 0, DAY])  # nothing charged
        self.assertEqual(self.c.call("EXISTS", *keys), 0)
        self.assertEqual(self.changes(self.c), writes)

    def test_dry_run_all_or_nothing_and_shadow(self):
        """Two enforce keys and a shadow one, one enforce key empty: the dry
        reply is the real one (nothing would be charged) and nothing moves."""
        keys = ["tg:{client:dryab}:b:%s" % n for n in ("a", "b", "s")]
        rates = [Rate(10, SECOND, 10), Rate(10, MINUTE, 10), Rate(1, MINUTE, 1, SHADOW)]
        ts = self.now_ms(self.c) + HOUR
        for k, lv in zip(keys, (5000, 0, MINUTE)):
            self.set_state(self.c, k, lv, ts)
        before = [self.image(self.c, k) for k in keys]
        dry = self.evalsha(self.c, keys, rates, dry=True)
        self.assertEqual([self.image(self.c, k) for k in keys], before)
        self.assertEqual(dry, self.evalsha(self.c, keys, rates))
        self.assertEqual(dry[:2], [0, 6000])

    def test_dry_run_leaves_a_key_of_another_type(self):
        """A real call replaces a corrupt key; a dry one decides it as a full
        bucket and leaves it."""
        k = "tg:{client:drylist}:b:d"
        self.c.call("RPUSH", k, "x")
        r = Rate(10, SECOND, 10)
        self.assertEqual(self.evalsha(self.c, [k], [r], dry=True), [1, 0, 1, 9, 100, 0])
        self.assertEqual(self.c.call("TYPE", k), "list")
        self.assertEqual(self.evalsha(self.c, [k], [r]), [1, 0, 1, 9, 100, 0])
        self.assertEqual(self.c.call("TYPE", k), "hash")

    def test_dry_run_bad_arguments_are_errors(self):
        k = "tg:{bad}:b:dry"
        good = [1, 10, 1000, 10, 0]
        for name, argv in {"D alone": ["D"], "short": ["D"] + good[:-1],
                           "long": ["D"] + good + [1], "D twice": ["D", "D"] + good,
                           "cost text": ["D", "x"] + good[1:]}.items():
            with self.subTest(name):
                with self.assertRaises(rh.RespError) as cm:
                    self.c.call("EVALSHA", self.sha, 1, k, *argv)
                self.assertIn("tollgate bucket", str(cm.exception))
        self.assertEqual(self.c.call("EXISTS", k), 0)

    def test_batch_dry_and_real_share_a_batch(self):
        """[real, dry, real, dry] on one bucket of 3: the dry request sees the
        first one's charge and charges nothing, so the third gets what the
        dry one reported; only the real ones are stored."""
        k = "tg:{client:bdry}:b:d"
        other = "tg:{client:bdry}:b:new"
        r = Rate(3, HOUR, 3)
        self.set_state(self.c, k, r.cap, self.now_ms(self.c) + HOUR)
        keys = [k, k, k, other]
        args = ["B", 4, 1, 1] + r.argv() + ["D", 1, 1] + r.argv() + [1, 1] + r.argv() \
            + ["D", 1, 1] + r.argv()
        replies = self.c.call("EVALSHA", self.sha, len(keys), *keys, *args)
        self.assertEqual([x[0] for x in replies], [1, 1, 1, 1])
        self.assertEqual([x[3] for x in replies], [2, 1, 1, 2])  # remaining
        self.assertEqual(parse_state(self.raw_state(self.c, k))[0], 1 * HOUR)
        self.assertEqual(self.c.call("EXISTS", other), 0)
        # a dry request denied in a batch: the same reply a real one gets
        self.set_state(self.c, k, 0, self.now_ms(self.c) + HOUR)
        replies = self.c.call("EVALSHA", self.sha, 2, k, k,
                              "B", 2, "D", 1, 1, *r.argv(), 1, 1, *r.argv())
        self.assertEqual(replies[0], replies[1])
        self.assertEqual(replies[0][:2], [0, HOUR // 3])

    def test_batch_dry_bad_layout_refused_whole(self):
        k = "tg:{client:bbd}:b:d"
        good = [1, 10, 1000, 10, 0]
        for name, argv in {"D at the end": ["B", 1, 1] + good + ["D"],
                           "D without k": ["B", 1, "D"] + good[1:],
                           "D D": ["B", 1, "D", "D", 1] + good}.items():
            with self.subTest(name):
                with self.assertRaises(rh.RespError) as cm:
                    self.c.call("EVALSHA", self.sha, 1, k, *argv)
                self.assertIn("tollgate bucket", str(cm.exception))
        self.assertEqual(self.c.call("EXISTS", k), 0)

    # -- the batch form (limiter batching) -----------------------------------

    def batch(self, reqs):
        """reqs: [(keys, rates, cost)] -> the batch reply (one reply each)."""
        keys, args = [], ["B", len(reqs)]
        for ks, rates, cost in reqs:
            keys += ks
            args += [len(ks), cost]
            for r in rates:
                args += r.argv()
        return self.c.call("EVALSHA", self.sha, len(keys), *keys, *args)

    def test_batch_same_bucket_in_arrival_order(self):
        k = "tg:{client:bo}:b:d"
        r = Rate(3, HOUR, 3)
        replies = self.batch([([k], [r], 1)] * 5)
        self.assertEqual([x[0] for x in replies], [1, 1, 1, 0, 0])
        self.assertEqual([x[3] for x in replies], [2, 1, 0, 0, 0])  # remaining
        self.assertEqual(parse_state(self.raw_state(self.c, k))[0], 0)

    def test_batch_equals_calls_of_their_own(self):
        # the same requests, batched on one set of buckets and one by one on
        # a copy: the same verdicts, the same stored levels
        a, b = Rate(5, HOUR, 5), Rate(2, HOUR, 2)
        reqs = lambda t: [([t + "x"], [a], 1), ([t + "x", t + "y"], [a, b], 2),
                          ([t + "y"], [b], 1), ([t + "x", t + "y"], [a, b], 1),
                          ([t + "z"], [Rate(1, HOUR, 1)], 3)]
        batched = self.batch(reqs("tg:{client:be}:b:"))
        alone = [self.evalsha(self.c, ks, rates, cost)
                 for ks, rates, cost in reqs("tg:{client:bf}:b:")]
        self.assertEqual([x[0] for x in batched], [x[0] for x in alone])
        self.assertEqual([x[2::4] for x in batched], [x[2::4] for x in alone])  # fits
        self.assertEqual([x[3::4] for x in batched], [x[3::4] for x in alone])  # remaining
        # stored levels in whole tokens (the copy ran a few ms later: refill
        # adds fractions of a token)
        for suffix, rate in (("x", a), ("y", b)):
            lv = [parse_state(self.raw_state(self.c, t + suffix))[0] // rate.period
                  for t in ("tg:{client:be}:b:", "tg:{client:bf}:b:")]
            self.assertEqual(lv[0], lv[1], suffix)

    def test_batch_bad_layout_refused_whole(self):
        k = "tg:{client:bb}:b:d"
        good = [1, 10, 1000, 10, 0]
        for name, argv in {"no size": ["B"], "size zero": ["B", 0, 1] + good,
                           "k too big": ["B", 1, 2] + good,
                           "short": ["B", 2, 1] + good,
                           "long": ["B", 1, 1] + good + [1]}.items():
            with self.subTest(name):
                with self.assertRaises(rh.RespError) as cm:
                    self.c.call("EVALSHA", self.sha, 1, k, *argv)
                self.assertIn("tollgate bucket", str(cm.exception))
        self.assertEqual(self.c.call("EXISTS", k), 0)

    def test_pipelined_calls_never_over_admit(self):
        k = "tg:{client:p}:b:d"
        r = Rate(10, MINUTE, 10)
        cmd = ["EVALSHA", self.sha, 1, k, 1] + r.argv()
        replies = self.c.pipeline([cmd] * 50)
        self.assertEqual(sum(x[0] for x in replies), 10)
        self.assertEqual([x[0] for x in replies[:10]], [1] * 10)


class TestLuaBucketCluster(BucketCase):
    """The script on a real 6-node cluster: one hash tag = one slot."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = rh.RedisCluster().up()
        cls.sha = None
        for port in cls.cluster.primaries():
            with cls.cluster.client(port) as c:
                cls.sha = rh.load_script(c)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_one_hash_tag_runs_on_the_owner_and_replicates(self):
        keys = ["tg:{client:alice}:b:default", "tg:{client:alice}:b:batch-orders"]
        slots = {self.cluster.keyslot(k) for k in keys}
        self.assertEqual(len(slots), 1)
        rates = [Rate(60, MINUTE, 60), Rate(10, MINUTE, 10)]
        with self.cluster.client_for_key(keys[0]) as c:
            reply = self.checked(c, keys, rates)
            self.assertEqual(reply[:2], [1, 0])
            self.assertEqual([reply[3], reply[7]], [59, 9])
            want = [self.raw_state(c, k) for k in keys]
            self.assertEqual(c.call("WAIT", 1, 5000), 1)
        # Effects replication: the replica holds the same fields.
        replica = self.cluster.replicas_of_key(keys[0])[0]
        with self.cluster.client(replica) as r:
            r.call("READONLY")
            self.assertEqual([self.raw_state(r, k) for k in keys], want)
            self.assertGreater(r.call("PTTL", keys[0]), 0)

    def test_dry_run_on_the_owner_writes_nothing_anywhere(self):
        """On the slot's owner: a dry run leaves an existing key
        byte-identical and creates no missing one, on the primary and (after
        WAIT) on its replica; the real call that follows is replicated."""
        k = "tg:{client:drycl}:b:default"
        new = "tg:{client:drycl}:b:new"
        r = Rate(10, MINUTE, 10)
        with self.cluster.client_for_key(k) as c:
            self.evalsha(c, [k], [r])
            self.assertEqual(c.call("WAIT", 1, 5000), 1)
            before = self.image(c, k)
            dry = self.evalsha(c, [k, new], [r, r], dry=True)
            self.assertEqual(dry[:2], [1, 0])
            self.assertEqual([dry[3], dry[7]], [8, 9])
            self.assertEqual(self.image(c, k), before)
            self.assertEqual(c.call("EXISTS", new), 0)
            self.evalsha(c, [new], [r])  # a real write: the replica syncs
            self.assertEqual(c.call("WAIT", 1, 5000), 1)
            want = self.raw_state(c, k)
        replica = self.cluster.replicas_of_key(k)[0]
        with self.cluster.client(replica) as rc:
            rc.call("READONLY")
            self.assertEqual(self.raw_state(rc, k), want)
            self.assertEqual(parse_state(self.raw_state(rc, k))[0] // MINUTE, 9)

    def test_cross_slot_keys_are_refused(self):
        a, b = "tg:{client:alice}:b:default", "tg:{client:bob}:b:default"
        self.assertNotEqual(self.cluster.keyslot(a), self.cluster.keyslot(b))
        r = Rate(10, SECOND, 10)
        with self.cluster.client_for_key(a) as c:
            with self.assertRaises(rh.RespError) as cm:
                self.evalsha(c, [a, b], [r, r])
        self.assertEqual(cm.exception.code, "CROSSSLOT")

    def test_wrong_node_answers_moved(self):
        k = "tg:{client:carol}:b:default"
        owner = self.cluster.owner_of_key(k)
        other = next(p for p in self.cluster.primaries() if p != owner)
        with self.cluster.client(other) as c:
            with self.assertRaises(rh.RespError) as cm:
                self.evalsha(c, [k], [Rate(10, SECOND, 10)])
        code, slot, addr = str(cm.exception).split()
        self.assertEqual(code, "MOVED")
        self.assertEqual(int(slot), self.cluster.keyslot(k))
        self.assertEqual(addr, "127.0.0.1:%d" % owner)

    def test_every_primary_serves_its_identities(self):
        seen = set()
        for i in range(64):
            keys = ["tg:{client:%d}:b:default" % i, "tg:{client:%d}:b:x" % i]
            owner = self.cluster.owner_of_key(keys[0])
            seen.add(owner)
            with self.cluster.client(owner) as c:
                self.assertEqual(self.evalsha(c, keys, [Rate(1, DAY, 1)] * 2)[:2], [1, 0])
                self.assertEqual(self.evalsha(c, keys, [Rate(1, DAY, 1)] * 2)[0], 0)
        self.assertEqual(seen, set(self.cluster.primaries()))

    def test_noscript_after_flush_on_one_primary(self):
        k = "tg:{client:flush}:b:default"
        r = Rate(10, SECOND, 10)
        with self.cluster.client_for_key(k) as c:
            c.call("SCRIPT", "FLUSH")
            with self.assertRaises(rh.RespError) as cm:
                self.evalsha(c, [k], [r])
            self.assertEqual(cm.exception.code, "NOSCRIPT")
            self.assertEqual(rh.load_script(c), self.sha)
            self.assertEqual(self.evalsha(c, [k], [r])[:2], [1, 0])


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(rh.have_redis(), "redis-server / redis-cli not installed")
class TestRespClient(unittest.TestCase):
    """The harness's RESP client reads every reply type (RESP2 and RESP3)."""

    def test_reply_types(self):
        with rh.RedisServer() as srv, srv.client() as c:
            self.assertEqual(c.call("SET", "s", "v"), "OK")
            self.assertEqual(c.call("GET", "s"), b"v")
            self.assertIsNone(c.call("GET", "missing"))
            self.assertEqual(c.call("INCRBY", "i", -7), -7)
            self.assertEqual(c.call("RPUSH", "l", "a", "b"), 2)
            self.assertEqual(c.call("LRANGE", "l", 0, -1), [b"a", b"b"])
            with self.assertRaises(rh.RespError) as cm:
                c.call("LPUSH", "s", "x")
            self.assertEqual(cm.exception.code, "WRONGTYPE")
            self.assertIsNone(c.call("BLPOP", "none", "0.01"))  # RESP2 nil array
            replies = c.pipeline([["PING"], ["NOSUCHCOMMAND"], ["ECHO", b"\r\n\x00"]])
            self.assertEqual(replies[0], "PONG")
            self.assertIsInstance(replies[1], rh.RespError)
            self.assertEqual(replies[2], b"\r\n\x00")
            c.call("HELLO", 3)
            c.call("HSET", "h", "f", "1")
            self.assertEqual(c.call("HGETALL", "h"), {b"f": b"1"})
            c.call("ZADD", "z", "1.5", "m")
            self.assertEqual(c.call("ZSCORE", "z", "m"), 1.5)
            self.assertIsNone(c.call("GET", "missing"))
            self.assertEqual(c.call("EVAL", "redis.setresp(3) return true", 0), True)
            self.assertEqual(c.call("SMEMBERS", "l2"), [])
