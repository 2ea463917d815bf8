#!/usr/bin/env bash
# Debian packages tollgate needs to build, test and benchmark.
#   deps.sh check    exit 0 when every library and tool is present
#   deps.sh install  apt-get install them (root), else print the command
#   deps.sh image    the daemonless image build's tools (buildah, debootstrap)
set -euo pipefail

PKGS=(build-essential pkg-config libevent-dev libhiredis-dev libssl-dev libjansson-dev
      libjwt-dev libcunit1-dev libyaml-dev libcurl4-openssl-dev redis-server redis-tools
      python3 curl openssl
      wrk nginx-light valgrind cppcheck clang haproxy unzip nodejs)
PC_MODULES=(libevent libevent_openssl libevent_pthreads hiredis openssl jansson libjwt libcurl
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

# scripts/image.sh: buildah (with --isolation chroot) and debootstrap.
IMAGE_PKGS=(buildah debootstrap)
image() {
    local missing=()
    for t in "${IMAGE_PKGS[@]}"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: the image build needs root and: apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

case "${1:-check}" in
    check) check ;;
    install) install ;;
    image) image ;;
    *) echo "usage: $0 check|install|image" >&2; exit 2 ;;
esac
