#!/usr/bin/env bash
# `make audit-deps`: known vulnerabilities in what tollgate runs on and what its
# tooling installs.
#
#   scripts/audit-deps.sh [BIN]      (build/tollgate)
#
# 1. Debian packages, checked against apt's own view of the release's
#    security suite (bookworm-security), refreshed first with `apt-get update`
#    when run as root:
#      binary  the packages owning every library `ldd BIN` resolves
#              (dpkg -S), at the versions installed here (what BIN is built
#              and tested against);
#      image   the Dockerfile runtime stage's `apt-get install` list and what
#              apt installs with it (Depends, Pre-Depends, recursively), at the
#              versions installed here (check-dockerfile.sh derives the list
#              from this machine; an image build itself installs the newest
#              versions, so a pending fix here means an image built before
#              it lacks it); a package not installed here (an alternative
#              apt does not pick) is only listed;
#      base    when scripts/image.sh has cached its debootstrap tarball: every
#              package in it (the image is built on it, and it is reused
#              until REBUILD_BASE=1).
#    A package whose version is older than the one bookworm-security carries
#    has a known vulnerability with a fix available.
# 2. npm: `npm audit --json` over each tree the repository installs with npm:
#    tools/k8s-validate (its package-lock.json, `npm ci` by make lint-k8s) and
#    the helm/kubectl carrier package of scripts/k8s-tools.sh (its npm
#    dependencies resolved into a throwaway lockfile; npm advisories cannot
#    see the helm and kubectl binaries inside it).  A vulnerability counts as
#    fixable unless npm says fixAvailable: false.
#
# Prints every finding.  Exit 1 only when a known vulnerability has a fix
# available; 0 otherwise, also when a source could not be asked (the apt
# mirror, the npm advisory endpoint): that is printed as NOT CHECKED, and
# AUDIT_STRICT=1 turns it into exit 2.  Every network step is bounded by
# `timeout`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bin="${1:-$root/build/tollgate}"
SUITE="${SUITE:-bookworm}"
SECURITY_SUITE="$SUITE-security"
dockerfile="$root/Dockerfile"
tarball="${IMAGE_CACHE:-$root/.cache/image}/debootstrap-$SUITE-minbase-amd64.tar.gz"
npm_dirs="tools/k8s-validate"
T_APT=${T_APT:-300}     # seconds, per step
T_NPM=${T_NPM:-120}

fixable=0       # known vulnerabilities with a fix available
unchecked=0     # sources that could not be asked
say() { printf 'audit-deps: %s\n' "$*"; }
warn() { printf 'audit-deps: NOT CHECKED: %s\n' "$*" >&2; unchecked=$((unchecked + 1)); }
die() { printf 'audit-deps: ERROR: %s\n' "$*" >&2; exit 2; }

[ -x "$bin" ] || die "no $bin: build it first (make)"
command -v dpkg >/dev/null || die "dpkg not found (needs a Debian system)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/audit-deps.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ---- 1. Debian ----------------------------------------------------------------

# apt's view of the security suite: refreshed when we may, else its age said.
apt_ok=1
if [ "$(id -u)" -eq 0 ]; then
    if ! timeout "$T_APT" apt-get update -qq >"$tmp/apt-update.log" 2>&1; then
        cat "$tmp/apt-update.log" >&2
        warn "apt-get update failed: the lists below may be old"
    fi
else
    say "not root: apt's lists are not refreshed (as root, apt-get update runs first)"
fi
if ! apt-cache policy | grep -q " $SECURITY_SUITE/"; then
    warn "apt has no $SECURITY_SUITE in its sources (/etc/apt/sources.list*)"
    apt_ok=0
fi

owner() {   # the package owning a library path (merged /usr: try both spellings)
    local p
    for p in "$(readlink -f "$1")" "$1" "/usr$1" "${1#/usr}"; do
        dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
    done
    return 1
}

# binary: every library ldd resolves.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do
        owner "$lib" || echo "audit-deps: no package owns $lib" >&2
    done | sort -u >"$tmp/binary"

# image: the runtime stage's install list (after the last FROM), then apt's
# closure of it.
awk '/^[[:space:]]*#/ { next } { line = line $0 }
     /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
     { print line; line = "" }' "$dockerfile" |
    awk 'toupper($1) == "FROM" { stage = "" } { stage = stage "\n" $0 } END { print stage }' |
    grep -oE 'apt-get[[:space:]]+install[^&;|)]*' | sed -E 's/^apt-get[[:space:]]+install//' |
    tr -s ' \t' '\n' | grep -vE '^(-|$)' | sort -u >"$tmp/image-direct"
[ -s "$tmp/image-direct" ] || warn "no apt-get install in the runtime stage of $dockerfile"
# shellcheck disable=SC2046 # a word list
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $(cat "$tmp/image-direct") 2>/dev/null |
    grep -E '^[a-z0-9]' | sed 's/:.*//' | cat - "$tmp/image-direct" | sort -u >"$tmp/image"

# NAME VERSION lines -> the ones bookworm-security has a newer version of.
# Prints "NAME VERSION SECURITY_VERSION", one per pending fix.
pending() {
    local list="$1" name ver sec
    # shellcheck disable=SC2046 # a word list
    apt-cache madison $(cut -d' ' -f1 "$list" | sort -u) 2>/dev/null |
        awk -F' *[|] *' -v suite="$SECURITY_SUITE/" '
            $3 ~ / Packages$/ && index($3, " " suite) { gsub(/^ +/, "", $1); print $1, $2 }' \
        >"$tmp/madison"
    while read -r name ver; do
        [ -n "$ver" ] || continue
        sec="$(awk -v n="$name" '$1 == n { print $2 }' "$tmp/madison" | sort -V | tail -n 1)"
        [ -n "$sec" ] || continue
        if dpkg --compare-versions "$ver" lt "$sec"; then echo "$name $ver $sec"; fi
    done <"$list"
}

installed_versions() {  # package names on stdin -> NAME VERSION (installed here) or NAME -
    local p v
    while read -r p; do
        v="$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$p" 2>/dev/null |
            awk '$1 == "ii" { print $2; exit }' || true)"
        echo "$p ${v:--}"
    done
}

report_debian() {   # LABEL FILE(NAME VERSION lines) WHAT
    local label="$1" list="$2" what="$3" n found
    n="$(wc -l <"$list")"
    found="$(pending "$list")"
    if [ -z "$found" ]; then
        say "$label: $n packages ($what): no pending $SECURITY_SUITE update"
        return
    fi
    say "$label: $n packages ($what): pending $SECURITY_SUITE updates (known vulnerabilities, fixed):"
    while read -r name ver sec; do
        printf '    %-28s %s -> %s\n' "$name" "$ver" "$sec"
        echo "$name" >>"$tmp/fixable-debs"
    done <<<"$found"
}

if [ "$apt_ok" -eq 1 ]; then
    installed_versions <"$tmp/binary" >"$tmp/binary.v"
    report_debian binary "$tmp/binary.v" "ldd $(basename "$bin"), versions installed here"

    installed_versions <"$tmp/image" >"$tmp/image.all"
    awk '$2 != "-"' "$tmp/image.all" >"$tmp/image.v"
    report_debian image "$tmp/image.v" \
        "$(wc -l <"$tmp/image-direct") in the Dockerfile runtime stage and their dependencies, versions installed here"
    absent="$(awk '$2 == "-" { print $1 }' "$tmp/image.all" | tr '\n' ' ')"
    [ -z "$absent" ] || say "image: not installed here, not compared (alternatives apt does not pick): $absent"

    if [ -s "$tarball" ]; then
        if tar -xzf "$tarball" -O ./var/lib/dpkg/status >"$tmp/base-status" 2>/dev/null; then
            awk '/^Package: / { p = $2 } /^Status: / { st = $4 } /^Version: / { v = $2 }
                 /^$/ { if (st == "installed") print p, v; p = st = v = "" }
                 END { if (st == "installed") print p, v }' "$tmp/base-status" >"$tmp/base.v"
            report_debian base "$tmp/base.v" \
                "${tarball#"$root"/}; rebuild with REBUILD_BASE=1 make image"
        else
            warn "cannot read var/lib/dpkg/status from $tarball"
        fi
    else
        say "base: no cached debootstrap tarball ($tarball): nothing to compare"
    fi
fi

# The same package may be in several sets: count it once.
if [ -s "$tmp/fixable-debs" ]; then
    fixable=$((fixable + $(sort -u "$tmp/fixable-debs" | wc -l)))
fi

# ---- 2. npm ---------------------------------------------------------------------

# npm audit --json of DIR (a package-lock.json in it) -> findings; LABEL names it.
npm_audit() {
    local label="$1" dir="$2" rc=0
    (cd "$dir" && timeout "$T_NPM" npm audit --json --no-fund) >"$tmp/npm.json" 2>"$tmp/npm.err" ||
        rc=$?
    python3 - "$label" "$tmp/npm.json" "$rc" <<'EOF'
import json, sys

label, path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    report = json.load(open(path))
except ValueError:
    report = {"error": {"summary": "no JSON from npm audit (exit %d)" % rc}}
if "error" in report or "vulnerabilities" not in report:
    err = report.get("error") or {}
    why = err.get("summary") or report.get("message") or "exit %d" % rc
    print("audit-deps: NOT CHECKED: npm %s: %s" % (label, (why.strip() or "?").splitlines()[0]),
          file=sys.stderr)
    sys.exit(3)
vulns = report["vulnerabilities"]
deps = report.get("metadata", {}).get("dependencies", {}).get("total", "?")
if not vulns:
    print("audit-deps: npm %s: %s packages, no known vulnerability" % (label, deps))
    sys.exit(0)
print("audit-deps: npm %s: %s packages, known vulnerabilities:" % (label, deps))
fixable = 0
for name, v in sorted(vulns.items()):
    fix = v.get("fixAvailable")
    if fix is False:
        how = "no fix available"
    else:
        fixable += 1
        how = "fix: %s@%s" % (fix["name"], fix["version"]) if isinstance(fix, dict) else "fix: npm audit fix"
    titles = sorted({x["title"] for x in v.get("via", []) if isinstance(x, dict) and "title" in x})
    print("    %-28s %-8s %s (%s)%s" % (name, v.get("severity", "?"), v.get("range", ""), how,
                                     ": " + "; ".join(titles) if titles else ""))
sys.exit(1 if fixable else 0)
EOF
}

command -v npm >/dev/null || { warn "npm not found (make deps)"; npm_dirs=""; }
run_npm() {   # LABEL DIR: npm_audit, counting its result
    local rc=0
    npm_audit "$1" "$2" || rc=$?
    case "$rc" in
        0) ;;
        1) fixable=$((fixable + 1)) ;;
        3) unchecked=$((unchecked + 1)) ;;
        *) warn "npm $1: audit parse failed (exit $rc)" ;;
    esac
}
for d in $npm_dirs; do
    [ -f "$d/package-lock.json" ] || { warn "npm $d: no package-lock.json"; continue; }
    run_npm "$d" "$d"
done

# scripts/k8s-tools.sh fetches one package with `npm pack`: resolve it (and
# any dependencies) into a throwaway lockfile and audit that.
if command -v npm >/dev/null; then
    pkg="$(sed -n 's/^PKG="\(.*\)"$/\1/p' scripts/k8s-tools.sh)"
    ver="$(sed -n 's/^VER="\(.*\)"$/\1/p' scripts/k8s-tools.sh)"
    if [ -z "$pkg" ] || [ -z "$ver" ]; then
        warn "npm: no PKG=/VER= in scripts/k8s-tools.sh"
    else
        mkdir -p "$tmp/k8s-tools"
        printf '{"name":"k8s-tools-audit","private":true,"dependencies":{"%s":"%s"}}\n' \
            "$pkg" "$ver" >"$tmp/k8s-tools/package.json"
        if (cd "$tmp/k8s-tools" && timeout "$T_NPM" npm install --package-lock-only \
            --ignore-scripts --no-audit --no-fund --loglevel=error) >"$tmp/npm-lock.log" 2>&1; then
            run_npm "$pkg@$ver (scripts/k8s-tools.sh)" "$tmp/k8s-tools"
        else
            warn "npm $pkg@$ver: cannot resolve it: $(head -n 1 "$tmp/npm-lock.log")"
        fi
    fi
fi

# ---- verdict ----------------------------------------------------------------------
if [ "$fixable" -gt 0 ]; then
    say "FAIL: $fixable package(s) or npm tree(s) with a known vulnerability and a fix (above)"
    exit 1
fi
if [ "$unchecked" -gt 0 ]; then
    say "no fixable vulnerability found, but $unchecked source(s) NOT CHECKED (above)"
    [ "${AUDIT_STRICT:-0}" = 1 ] && exit 2
    exit 0
fi
say "ok: no known vulnerability with a fix available"
