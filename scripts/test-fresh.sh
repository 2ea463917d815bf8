#!/usr/bin/env bash
# make test-fresh: the repository as a new user gets it, on a fresh Debian 12.
#
#   1. a minbase bookworm root: debootstrap --variant=minbase from the
#      machine's Debian mirror, updates applied, cached as a tarball in
#      .cache/fresh (REBUILD_BASE=1 makes it again), unpacked into a new
#      temporary directory;
#   2. `git clone` of this checkout's committed HEAD into /root/tollgate there
#      (uncommitted changes are not part of the run: it says so);
#   3. chroot, as root: `apt-get install make` (the README's prerequisite
#      beside git, which is not needed in the root: the clone is made from
#      outside), then `make test`, which must install every other Debian
#      package itself (`make deps`: --no-install-recommends, so nothing comes
#      in by chance);
#   4. `make run` in the background; GET /healthz on 127.0.0.1:9090 must answer
#      200 and the README's first request (alice's key, /auth/demo/hello on
#      127.0.0.1:8080) 200, without a key 401; then SIGTERM to tollgate's PID
#      and `make run` must exit 0;
#   5. on any exit: processes left in the root stopped, everything unmounted,
#      the root removed (KEEP=1 keeps it); each step's time and the total.
#
# Runs as root (debootstrap, chroot, mount).  The root shares this machine's
# network: apt inside uses the same Debian mirror (its sources are written
# from /etc/apt, Debian's only: no third-party repository a fresh machine
# would not have), npm the npm registry; `make run` listens on loopback
# 8080/9090, so those must be free here (checked first).  Services that
# packages would start on installation (redis-server, nginx, haproxy) are not
# started: they would listen on this machine's loopback (policy-rc.d).  CA
# certificates added locally here (/usr/local/share/ca-certificates) are
# copied in, so that HTTPS works from the root wherever it works from here.
# Every step is bounded by `timeout`.
#
# Environment (all optional):
#   DEBIAN_MIRROR     .../debian mirror (default: the first in /etc/apt/sources*)
#   SECURITY_MIRROR   .../debian-security (default: from /etc/apt; "none": left out)
#   SUITE             Debian suite                        (bookworm)
#   FRESH_CACHE       where the debootstrap tarball is kept (.cache/fresh)
#   FRESH_TMP         where the root is unpacked           (/var/tmp)
#   REBUILD_BASE=1    debootstrap again even if the tarball exists
#   KEEP=1            keep the root (processes are still stopped, mounts undone)
#   T_TEST            seconds for `make test` in the root  (3600)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
SUITE="${SUITE:-bookworm}"
cache="${FRESH_CACHE:-$root/.cache/fresh}"
tarball="$cache/debootstrap-$SUITE-minbase-amd64.tar.gz"
ALICE=demo-key-alice-0123456789abcdef     # config/demo-api-keys, public
PORT=8080 ADMIN_PORT=9090                 # config/tollgate.yaml

T_DEBOOTSTRAP=${T_DEBOOTSTRAP:-1200}   # seconds; each limit is per step
T_UPGRADE=${T_UPGRADE:-600}
T_TAR=${T_TAR:-300}
T_CLONE=${T_CLONE:-300}
T_TEST=${T_TEST:-3600}
T_RUN=${T_RUN:-600}        # make run as a whole (deps-check, build, serve)
T_START=${T_START:-120}    # make run: until /healthz answers 200
T_STOP=${T_STOP:-30}       # SIGTERM until make run has exited

ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '[test-fresh] %s\n' "$*" >&2; }
die() { printf '[test-fresh] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib-debian.sh
. "$(dirname "$0")/lib-debian.sh"   # now, since, apt_uri, mirror, rm_tree, wait_200

t_all="$(now)"
times=()    # "SECONDS NAME" of each finished step, for the summary
result=FAILED

# step NAME SECONDS CMD...: run one external command under `timeout`, print
# and record its time; on failure print the exit status (124 = timed out)
# and stop.
step() {
    local name="$1" limit="$2" t0 rc=0
    shift 2
    say "--> $name (limit ${limit}s)"
    t0="$(now)"
    timeout -k 10 "$limit" "$@" || rc=$?
    times+=("$(since "$t0") $name")
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && die "$name: timed out after ${limit}s"
        die "$name: failed (exit $rc) after $(since "$t0")s"
    fi
    say "<-- $name: ok in $(since "$t0")s"
}

# "${quietly[@]}" LOG CMD...: CMD's output into LOG, its end printed only on
# failure (a command, not a function: `step` runs it under timeout).
# shellcheck disable=SC2016 # expanded by that bash
quietly=(bash -c 'log="$1"; shift; "$@" >"$log" 2>&1 || { rc=$?; tail -n 80 "$log" >&2; exit "$rc"; }' quietly)

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mount need it)"; }

# write_sources DIR: the apt sources of a Debian image (deb822), this mirror.
write_sources() {
    local d="$1" m sec
    m="$(mirror)"
    sec="${SECURITY_MIRROR:-$(apt_uri debian-security)}"
    rm -f "$d/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$m" "$SUITE" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$sec" ] && [ "$sec" != none ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$sec" "$SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } > "$d/etc/apt/sources.list.d/debian.sources"
}

no_services() {   # DIR: packages installed there start no daemon
    printf '#!/bin/sh\nexit 101\n' > "$1/usr/sbin/policy-rc.d"
    chmod 0755 "$1/usr/sbin/policy-rc.d"
}


# --- the cached minbase root ----------------------------------------------

make_tarball() {
    local m work
    m="$(mirror)"
    "$root/scripts/deps.sh" fresh || die "debootstrap is needed (scripts/deps.sh fresh)"
    mkdir -p "$cache"
    # Global: cleanup removes it (and what debootstrap may have left mounted).
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    say "debootstrap --variant=minbase $SUITE from $m"
    step "debootstrap $SUITE minbase" "$T_DEBOOTSTRAP" "${quietly[@]}" "$work/debootstrap.log" \
        debootstrap --variant=minbase --arch=amd64 "$SUITE" "$work/rootfs" "$m"
    # As a fresh install today: the point release's and security updates.
    write_sources "$work/rootfs"
    cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
    no_services "$work/rootfs"
    step "apt-get update + upgrade in the new root" "$T_UPGRADE" chroot "$work/rootfs" \
        /usr/bin/env -i PATH="$ROOT_PATH" DEBIAN_FRONTEND=noninteractive /bin/sh -c \
        'apt-get update -qq && apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade >/dev/null && apt-get clean'
    rm -f "$work/rootfs/usr/sbin/policy-rc.d"
    # No package lists: `make deps` must run apt-get update itself.
    rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin \
           "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/log/"*.log
    : > "$work/rootfs/etc/resolv.conf"
    step "tar the root" "$T_TAR" tar --numeric-owner --xattrs -C "$work/rootfs" -czf "$work/root.tar.gz" .
    mv "$work/root.tar.gz" "$tarball"
    say "cached $tarball ($(du -h "$tarball" | cut -f1))"
    rm_tree "$work"
    work=""
}

# --- the run -----------------------------------------------------------------

listening() {   # PORT: does anything listen on this TCP port (any address)?
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

ports_free() {
    local p
    for p in "$PORT" "$ADMIN_PORT"; do
        if listening "$p"; then
            die "something already listens on port $p here (a \`make run\`?); the fresh root shares this machine's loopback and \`make run\` needs 127.0.0.1:$PORT and :$ADMIN_PORT: stop it first"
        fi
    done
}

root_pids() {   # the processes whose root directory is the fresh root
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$fresh" ] && echo "${p#/proc/}"
    done
    return 0
}

# stop_root_pids: TERM, then KILL, whatever still runs in the fresh root (all
# started by this script); says so, because a clean run leaves nothing.
stop_root_pids() {
    local pids deadline
    pids="$(root_pids | tr '\n' ' ')"
    [ -n "${pids// /}" ] || return 0
    say "processes still running in the root: $(for p in $pids; do printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)"
    # shellcheck disable=SC2086 # a PID list
    kill -TERM $pids 2>/dev/null || true
    deadline=$(( $(date +%s) + 10 ))
    while [ -n "$(root_pids)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    pids="$(root_pids | tr '\n' ' ')"
    # shellcheck disable=SC2086
    [ -z "${pids// /}" ] || kill -KILL $pids 2>/dev/null || true
}

summary() {
    local t
    say "step times:"
    for t in "${times[@]}"; do printf '[test-fresh]   %8ss  %s\n' "${t%% *}" "${t#* }" >&2; done
    say "make test-fresh: $result in $(since "$t_all")s${commit:+ (HEAD $commit)}"
}

cleanup() {
    local rc=$?
    if [ -n "${run_pid:-}" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM -- "-$run_pid" 2>/dev/null || true
    fi
    [ -z "${work:-}" ] || rm_tree "$work"
    if [ -n "${fresh:-}" ] && [ -d "$fresh" ]; then
        stop_root_pids
        if [ "${KEEP:-0}" = 1 ]; then
            local m
            for m in $(findmnt -rn -o TARGET | grep -F "$fresh/" | sort -r); do
                umount "$m" 2>/dev/null || umount -l "$m" || true
            done
            say "kept the root: $fresh (chroot $fresh /bin/bash)"
        else
            rm_tree "$fresh"
        fi
    fi
    [ -z "${work_log:-}" ] || rm -f "$work_log"
    summary
    exit "$rc"
}

# mount_root: what a booted machine has and the suite uses.  /dev is a bind
# of this machine's (no device is created), made a slave so that nothing
# mounted or unmounted under it reaches the host's.
mount_root() {
    mount -t proc proc "$fresh/proc"
    mount -t sysfs sysfs "$fresh/sys" 2>/dev/null || mount --rbind /sys "$fresh/sys"
    mount --make-rslave "$fresh/sys"
    mount --bind /dev "$fresh/dev"
    mount --make-rslave "$fresh/dev"
    mount --bind /dev/pts "$fresh/dev/pts"
    mount --make-rslave "$fresh/dev/pts"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$fresh/dev/shm"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$fresh/tmp"
}

# The root's own resolver, hosts and apt sources (this machine's mirror);
# CA certificates this machine added locally (/usr/local/share/ca-certificates:
# e.g. a TLS-inspecting proxy's, without which no HTTPS host is reachable
# from here) go where update-ca-certificates finds them when `make deps`
# installs ca-certificates.
prepare_root() {
    cp /etc/resolv.conf "$fresh/etc/resolv.conf"
    cp /etc/hosts "$fresh/etc/hosts"
    write_sources "$fresh"
    no_services "$fresh"
    if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
        cp -r /usr/local/share/ca-certificates/. "$fresh/usr/local/share/ca-certificates/"
        say "local CA certificates copied: $(cd /usr/local/share/ca-certificates && find . -name '*.crt' | sed 's|^\./||' | tr '\n' ' ')"
    fi
}

http() {   # URL [curl args...]: the status code ("000" when nothing answered)
    local u="$1"; shift
    curl -s -m 5 -o "$work_log" -w '%{http_code}' "$@" "$u" || true
}

# serve: `make run` in the background (its own process group: timeout's),
# /healthz and the README's first requests, SIGTERM to tollgate, exit 0.
serve() {
    local t0 code="" deadline tg="" p log="$fresh/tmp/make-run.log"
    ports_free
    say "--> make run (limit ${T_RUN}s; /healthz within ${T_START}s)"
    t0="$(now)"
    timeout -k 5 "$T_RUN" "${in_root[@]}" /bin/sh -c 'cd /root/tollgate && exec make run' \
        >"$log" 2>&1 </dev/null &
    run_pid=$!
    code="$(wait_200 "$run_pid" "http://127.0.0.1:$ADMIN_PORT/healthz" "$T_START" "$work_log")"
    if [ "$code" != 200 ]; then
        say "make run's output:"; tail -n 40 "$log" | sed 's/^/    /' >&2
        die "make run: GET /healthz on :$ADMIN_PORT did not answer 200 within ${T_START}s (last: '${code:-none}')"
    fi
    times+=("$(since "$t0") make run until /healthz 200")
    say "    GET /healthz -> 200 after $(since "$t0")s: $(head -c 200 "$work_log")"
    code="$(http "http://127.0.0.1:$PORT/auth/demo/hello" -H "X-API-Key: $ALICE")"
    [ "$code" = 200 ] || die "make run: /auth/demo/hello with alice's key -> $code, want 200: $(head -c 300 "$work_log")"
    say "    GET /auth/demo/hello with alice's key -> 200"
    code="$(http "http://127.0.0.1:$PORT/auth/demo/hello")"
    [ "$code" = 401 ] || die "make run: /auth/demo/hello without a key -> $code, want 401"
    say "    GET /auth/demo/hello without a key -> 401"

    # Stop tollgate itself (make's child, in the root), then make must end 0.
    for p in $(root_pids); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = tollgate ]; then tg="$p"; fi
    done
    [ -n "$tg" ] || die "make run: no tollgate process found in the root"
    t0="$(now)"
    kill -TERM "$tg"
    deadline=$(( $(date +%s) + T_STOP ))
    while kill -0 "$run_pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$run_pid" 2>/dev/null; then
        die "make run: still running ${T_STOP}s after SIGTERM to tollgate ($tg)"
    fi
    local rc=0
    wait "$run_pid" || rc=$?
    run_pid=""
    times+=("$(since "$t0") make run: SIGTERM to tollgate until make exited")
    if [ "$rc" -ne 0 ]; then
        say "make run's output:"; tail -n 20 "$log" | sed 's/^/    /' >&2
        die "make run exited $rc after SIGTERM to tollgate, want 0"
    fi
    say "<-- make run: served, stopped by SIGTERM, exit 0 ($(grep -c '^{' "$log" || true) audit lines)"
}

main() {
    need_root
    command -v curl >/dev/null || die "curl not found (make deps)"
    command -v git >/dev/null || die "git not found"
    ports_free
    trap cleanup EXIT
    commit="$(git -C "$root" rev-parse --short HEAD)"
    if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
        say "note: the checkout has uncommitted changes; they are not tested (HEAD $commit is)"
    fi
    if [ "${REBUILD_BASE:-0}" = 1 ] || [ ! -s "$tarball" ]; then
        make_tarball
    else
        say "reusing $tarball ($(date -r "$tarball" '+%F %R')); REBUILD_BASE=1 makes it again"
    fi
    work_log="$(mktemp)"
    fresh="$(mktemp -d "${FRESH_TMP:-/var/tmp}/tollgate-fresh.XXXXXX")"
    chmod 0755 "$fresh"
    say "fresh root: $fresh"
    step "unpack the minbase root" "$T_TAR" tar --numeric-owner --xattrs -C "$fresh" -xzf "$tarball"
    step "git clone (HEAD $commit)" "$T_CLONE" \
        git clone --quiet --no-hardlinks "$root" "$fresh/root/tollgate"
    prepare_root
    mount_root
    in_root=(chroot "$fresh" /usr/bin/env -i HOME=/root PATH="$ROOT_PATH" TERM="${TERM:-dumb}")
    # shellcheck disable=SC2016 # expanded in the root
    step "apt-get install make (the README's prerequisite)" "$T_UPGRADE" \
        "${in_root[@]}" DEBIAN_FRONTEND=noninteractive /bin/sh -c \
        'apt-get update >/tmp/apt.log 2>&1 &&
         apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 make >>/tmp/apt.log 2>&1 ||
         { rc=$?; cat /tmp/apt.log; exit $rc; }'
    step "make test (in the root; make deps first)" "$T_TEST" \
        "${in_root[@]}" /bin/sh -c 'cd /root/tollgate && exec make test'
    [ -z "$(root_pids)" ] || say "note: make test left processes in the root (stopped at the end)"
    serve
    result=PASSED
}

main "$@"
