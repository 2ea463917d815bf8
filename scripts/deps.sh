#!/usr/bin/env bash
# Debian packages tollgate needs to build, test and benchmark.
#   deps.sh check    exit 0 when every library and tool is present
#   deps.sh install  apt-get install them (root), else print the command
set -euo pipefail

PKGS=(build-essential pkg-config libevent-dev libhiredis-dev libssl-dev libjansson-dev
      libjwt-dev libcunit1-dev libyaml-dev redis-server redis-tools python3 curl openssl
      wrk nginx-light valgrind cppcheck clang haproxy unzip nodejs)
PC_MODULES=(libevent libevent_openssl libevent_pthreads hiredis openssl jansson libjwt
            yaml-0.1 cunit)
TOOLS=(cc pkg-config redis-server redis-cli python3 openssl curl haproxy npm unzip)

check() {
    local missing=0
    for m in "${PC_MODULES[@]}"; do
        pkg-config --exists "$m" 2>/dev/null || { echo "deps: pkg-config cannot find $m" >&2; missing=1; }
    done
    for t in "${TOOLS[@]}"; do
        command -v "$t" >/dev/null 2>&1 || { echo "deps: $t not found" >&2; missing=1; }
    done
    return $missing
}

install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: run as root, or run this yourself:"
        echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${PKGS[*]}"
        check
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
    check
}

case "${1:-check}" in
    check) check ;;
    install) install ;;
    *) echo "usage: $0 check|install" >&2; exit 2 ;;
esac
