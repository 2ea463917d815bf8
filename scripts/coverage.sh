#!/usr/bin/env bash
# `make coverage`: line and branch coverage of the unit and integration suites
# together.
#
#   scripts/coverage.sh
#
# 1. builds tollgate and the unit runner in $COV_BUILD (build-cov) with
#    `make COV=1` (gcc --coverage -O0, no hardening flags); with SAN=1 in
#    build-cov-asan with `make COV=1 SAN=1` (ASan + UBSan at -O1 as well:
#    CI's sanitizer run and its coverage in one pass of the suites);
# 2. deletes the counts of any earlier run, runs the unit tests, then the
#    integration suite against build-cov/tollgate.  Every tollgate the tests
#    start adds its counts to the same .gcda files when it exits (the harness
#    stops it with SIGTERM and main() returns; libgcov locks each file while it
#    merges, so concurrent processes are fine).  Processes a test SIGKILLs on
#    purpose (test_audit, test_redis_backend) add nothing;
# 3. gcovr over the Makefile's MODULES only (util/ ... decide/ server/; tests/
#    and the generated build-cov/gen/ are not measured): one line per module
#    and overall, the 5 files with the most uncovered lines, the per-file text
#    report in build-cov/coverage/files.txt and an HTML report in
#    build-cov/coverage/index.html.
#
# Exits 1 when overall line coverage is under COVERAGE_MIN (80) percent or a
# test suite failed (the report is printed in both cases); 2 when a build or
# gcovr step fails.  Every step is bounded by `timeout` and its time printed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

SAN="${SAN:-}"                    # 1: also ASan + UBSan (make coverage SAN=1)
if [ "$SAN" = 1 ]; then BUILD="${COV_BUILD:-build-cov-asan}"; else BUILD="${COV_BUILD:-build-cov}"; fi
MIN="${COVERAGE_MIN:-80}"
# the Makefile's MODULES, read from it so that a new module is measured too
# (decide/ was left out of the report while this list was written here)
MODULES="$(sed -n 's/^MODULES *:= *//p' Makefile)"
[ -n "$MODULES" ] || { echo "coverage: no MODULES line in the Makefile" >&2; exit 2; }
T_BUILD=${T_BUILD:-900}          # seconds, per step
T_UNIT=${T_UNIT:-600}
T_INTEGRATION=${T_INTEGRATION:-1800}
T_REPORT=${T_REPORT:-600}
out="$BUILD/coverage"

say() { printf 'coverage: %s\n' "$*" >&2; }
die() { printf 'coverage: ERROR: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

command -v gcovr >/dev/null || die "gcovr not found (make deps, or apt-get install gcovr)"
command -v gcov >/dev/null || die "gcov not found (make deps)"

t_all=$(now)

# 1. build -----------------------------------------------------------------
t0=$(now)
timeout "$T_BUILD" make --no-print-directory -j"$(nproc)" BUILD="$BUILD" COV=1 \
    ${SAN:+SAN="$SAN"} "$BUILD/tollgate" "$BUILD/unit-tests" || die "build failed"
say "build${SAN:+ with ASan + UBSan} ($(since "$t0")s)"

# 2. tests -----------------------------------------------------------------
find "$BUILD" -name '*.gcda' -delete
rm -rf "$out"
mkdir -p "$out"
tests_ok=1

t0=$(now)
if (cd tests/unit && timeout "$T_UNIT" "../../$BUILD/unit-tests"); then
    say "unit tests ok ($(since "$t0")s)"
else
    say "unit tests FAILED ($(since "$t0")s)"
    tests_ok=0
fi

t0=$(now)
if TOLLGATE_BIN="$root/$BUILD/tollgate" timeout "$T_INTEGRATION" \
    python3 tests/integration/run.py; then
    say "integration tests ok ($(since "$t0")s)"
else
    say "integration tests FAILED ($(since "$t0")s)"
    tests_ok=0
fi

# 3. report ----------------------------------------------------------------
t0=$(now)
filter="^($(echo "$MODULES" | tr ' ' '|'))/"
timeout "$T_REPORT" gcovr --root . --object-directory "$BUILD" -j "$(nproc)" \
    --filter "$filter" --exclude-unreachable-branches \
    --json-summary "$out/summary.json" --txt "$out/files.txt" \
    --html-details "$out/index.html" >/dev/null || die "gcovr failed"
say "gcovr ($(since "$t0")s)"

report_ok=1
python3 - "$out/summary.json" "$MIN" "$MODULES" <<'EOF' || report_ok=0
import json, sys

summary, floor, modules = sys.argv[1], float(sys.argv[2]), sys.argv[3].split()
files = json.load(open(summary))["files"]
keys = ("line_covered", "line_total", "branch_covered", "branch_total")


def pct(c, t):
    return 100.0 * c / t if t else 100.0


def row(name, s):
    print("%-10s %7.1f%% %6d/%-6d %7.1f%% %6d/%-6d"
          % (name, pct(s[0], s[1]), s[0], s[1], pct(s[2], s[3]), s[2], s[3]))


print("%-10s %8s %13s %8s %13s" % ("module", "lines", "", "branches", ""))
total = [0, 0, 0, 0]
for m in modules:
    s = [0, 0, 0, 0]
    for f in files:
        if f["filename"].split("/")[0] == m:
            s = [a + f[k] for a, k in zip(s, keys)]
    total = [a + b for a, b in zip(total, s)]
    row(m, s)
row("overall", total)

print("\nmost uncovered lines:")
worst = sorted(files, key=lambda f: f["line_covered"] - f["line_total"])[:5]
for f in worst:
    print("  %-24s %4d uncovered (%5.1f%% of %d)"
          % (f["filename"], f["line_total"] - f["line_covered"],
             pct(f["line_covered"], f["line_total"]), f["line_total"]))

overall = pct(total[0], total[1])
if overall < floor:
    print("\ncoverage: FAIL: %.1f%% of lines, under %g%%" % (overall, floor))
    sys.exit(1)
print("\ncoverage: ok: %.1f%% of lines (floor %g%%)" % (overall, floor))
EOF
say "per-file report: $out/files.txt, HTML: $out/index.html ($(since "$t_all")s in all)"

[ "$tests_ok" -eq 1 ] || { say "FAIL: a test suite failed (see above)"; exit 1; }
[ "$report_ok" -eq 1 ] || exit 1
exit 0
