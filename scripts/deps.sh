#!/usr/bin/env bash
# Debian packages tollgate needs to build, test and benchmark.
#   deps.sh check    exit 0 when every library and tool is present
#   deps.sh install  apt-get install them (root), else print the command
#   deps.sh image    the daemonless image build's tools (buildah, debootstrap)
#   deps.sh fresh    make test-fresh's (debootstrap)
#
# The list is checked against a fresh Debian 12 minbase root by
# `make test-fresh` (scripts/test-fresh.sh): nothing may be assumed present
# beyond what debootstrap --variant=minbase installs.  apt's output is kept
# out of the way while it works and printed in full when it fails.
set -euo pipefail

# Why each one beyond the libraries, for `make test` unless said otherwise:
#   python3          the integration suite (tests/integration/run.py)
#   curl openssl     make run's JWT, the image smoke test, tests (openssl CLI)
#   ca-certificates  HTTPS to the npm registry (k8s-tools.sh, npm ci in lint-k8s)
#   nodejs npm       lint-k8s's validator and assertions, the k8s rehearsal
#   unzip            k8s-tools.sh unpacks helm and kubectl
#   haproxy          the k8s rehearsal's load balancer
#   iproute2         ss: redis-cluster.sh and redis-standalone.sh skip busy ports
#   redis-server redis-tools  the Redis and Redis Cluster tests
#   wrk nginx-light  make bench;  valgrind: make valgrind;  cppcheck: make lint
#   clang libclang-rt-dev  make fuzz (libFuzzer's runtime is only a Recommends of clang)
#   clang-format     make lint (format-check);  gcovr: make coverage
PKGS=(build-essential pkg-config libevent-dev libhiredis-dev libssl-dev libjansson-dev
      libjwt-dev libcunit1-dev libyaml-dev libcurl4-openssl-dev redis-server redis-tools
      python3 curl openssl ca-certificates iproute2
      wrk nginx-light valgrind cppcheck clang libclang-rt-dev clang-format gcovr
      haproxy unzip nodejs)
PC_MODULES=(libevent libevent_openssl libevent_pthreads hiredis openssl jansson libjwt libcurl
            yaml-0.1 cunit)
TOOLS=(cc make pkg-config redis-server redis-cli python3 openssl curl haproxy node npm unzip ss)

# The packages to ask apt for.  On Debian, npm is a package of its own; a
# nodejs from elsewhere (NodeSource's) carries npm and conflicts with Debian's
# npm package, so npm is asked for only when no npm is installed.
wanted() {
    printf '%s\n' "${PKGS[@]}"
    command -v npm >/dev/null 2>&1 || echo npm
}

check() {
    local missing=() m t
    if command -v pkg-config >/dev/null 2>&1; then
        for m in "${PC_MODULES[@]}"; do
            pkg-config --exists "$m" 2>/dev/null || missing+=("$m (pkg-config)")
        done
    else
        missing+=("the libraries (no pkg-config to find them)")
    fi
    for t in "${TOOLS[@]}"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local IFS=,
    echo "deps: missing: ${missing[*]}" | sed 's/,/, /g' >&2
    return 1
}

# apt_quiet WHAT CMD...: run an apt-get command with its output appended to
# one log; on failure print the whole log (apt-get update's warnings explain
# many install failures) and the command, and exit non-zero.
apt_log=""
apt_quiet() {
    local what="$1" rc=0
    shift
    if [ -z "$apt_log" ]; then
        apt_log="$(mktemp "${TMPDIR:-/tmp}/deps-apt.XXXXXX")"
        trap 'rm -f "$apt_log"' EXIT
    fi
    echo "\$ $*" >>"$apt_log"
    DEBIAN_FRONTEND=noninteractive "$@" >>"$apt_log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "deps: $what failed (exit $rc); apt said:" >&2
        sed 's/^/    /' "$apt_log" >&2
        echo "deps: $what failed (exit $rc): see apt's output above" >&2
        exit 1
    fi
}

install() {
    local pkgs
    mapfile -t pkgs < <(wanted)
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: run as root, or run this yourself:"
        echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs[*]}"
        check
        return
    fi
    local t0=$SECONDS
    echo "deps: apt-get update; apt-get install ${#pkgs[@]} packages (a few minutes on a fresh machine)" >&2
    apt_quiet "apt-get update" apt-get update
    apt_quiet "apt-get install" apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${pkgs[@]}"
    check || { echo "deps: apt-get install succeeded but the above is still missing" >&2; return 1; }
    echo "deps: all present ($((SECONDS - t0)) s)" >&2
}

# host_tools WHAT PKG...: install the packages whose command (same name) is
# missing, for a root-only target that runs on this machine, not in a build.
host_tools() {
    local what="$1" missing=() t
    shift
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: $what needs root and: apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    apt_quiet "apt-get update" apt-get update
    apt_quiet "apt-get install ${missing[*]}" \
        apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
}

case "${1:-check}" in
    check) check ;;
    install) install ;;
    # scripts/image.sh: buildah (with --isolation chroot) and debootstrap.
    image) host_tools "the image build" buildah debootstrap ;;
    # scripts/test-fresh.sh: debootstrap.
    fresh) host_tools "make test-fresh" debootstrap ;;
    *) echo "usage: $0 check|install|image|fresh" >&2; exit 2 ;;
esac
