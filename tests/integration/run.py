#!/usr/bin/env python3
"""Run the integration suite: every tests/integration/test_*.py, with unittest.

    TOLLGATE_BIN=build/tollgate python3 tests/integration/run.py [-k PATTERN] [MODULE...]

Prints one line per test, then a last line exactly of the form
`N passed, N failed` (`, N skipped` when some were skipped); exits 1 when
anything failed.  KEEP_TMP=1 keeps each server's temp dir for inspection.
"""
import argparse
import faulthandler
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class HangGuard(unittest.TextTestResult):
    """A hung test must not hang CI: when one test (or its class set-up)
    runs IT_TIMEOUT seconds (600), dump every stack and give up.  The bound
    is per test: a whole suite on a busy machine, or under ASan, may take
    longer than any one test ever should."""
    limit = int(os.environ.get("IT_TIMEOUT", "600"))

    def startTestRun(self):
        super().startTestRun()
        faulthandler.dump_traceback_later(self.limit, exit=True)

    def startTest(self, test):
        faulthandler.dump_traceback_later(self.limit, exit=True)  # re-armed
        super().startTest(test)

    def stopTestRun(self):
        faulthandler.cancel_dump_traceback_later()
        super().stopTestRun()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name contains PATTERN (unittest -k)")
    ap.add_argument("modules", nargs="*", help="test_*.py module names (default: all)")
    args = ap.parse_args()

    if not os.environ.get("TOLLGATE_BIN"):
        root = os.path.dirname(os.path.dirname(HERE))
        os.environ["TOLLGATE_BIN"] = os.path.join(root, "build", "tollgate")
    sys.path.insert(0, HERE)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    if args.modules:
        suite = unittest.TestSuite()
        for m in args.modules:
            m = os.path.basename(m)
            m = m[:-3] if m.endswith(".py") else m
            suite.addTests(loader.loadTestsFromName(m))
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    t0 = time.monotonic()
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, buffer=False,
                                     resultclass=HangGuard)
    result = runner.run(suite)
    # Count tests, not subtests: a test with three failing subtests is one
    # failure.  An error in setUpClass/tearDownClass is one failure of its own
    # (its tests may not have run at all).
    bad = {}
    for t, _ in result.failures + result.errors:
        t = getattr(t, "test_case", t)
        bad[t.id()] = type(t).__name__ != "_ErrorHolder"
    for t in result.unexpectedSuccesses:
        bad[t.id()] = True
    failed = len(bad)
    skipped = len(result.skipped)
    passed = max(result.testsRun - skipped - sum(1 for real in bad.values() if real), 0)
    sys.stdout.write("integration: %.1fs\n" % (time.monotonic() - t0))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
