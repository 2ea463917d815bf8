#!/usr/bin/env bash
# Build the tollgate container image without a daemon (buildah) and prove it
# serves.  No registry is needed: the Debian base images are made locally with
# debootstrap from the machine's own Debian mirror.
#
#   scripts/image.sh base     make localhost/debian:bookworm and :bookworm-slim
#   scripts/image.sh build    base if needed, then buildah bud -> $IMAGE
#   scripts/image.sh smoke    build if $IMAGE is missing, then run the image's
#                             binary as 10001:10001, chrooted into a read-only
#                             view of the image rootfs, twice: with the image's
#                             default config and with k8s/base/tollgate.yaml
#                             (secrets as *_FILE, 0440 root:10001), loopback
#                             ports; exit 0 only if GET /healthz on the admin
#                             port answered 200 and the other checks passed
#                             (readyz, forward-auth allow/deny, admin API,
#                             SIGTERM: 503 during shutdown_delay, exit 0)
#   scripts/image.sh clean    remove $IMAGE, the two base images and dangling
#                             (intermediate) images
#
# Runs as root (debootstrap, chroot, buildah with --isolation chroot).  Every
# step is bounded by `timeout` and its time is printed.
#
# Environment (all optional):
#   IMAGE             image to build/test        (localhost/tollgate:dev)
#   DEBIAN_MIRROR     Debian mirror for debootstrap and apt inside the build
#                     (default: the first .../debian URI of /etc/apt/sources*)
#   SECURITY_MIRROR   .../debian-security mirror (default: from /etc/apt too;
#                     "none" leaves it out)
#   SUITE             Debian suite                (bookworm)
#   IMAGE_CACHE       where the debootstrap tarball is kept (.cache/image)
#   REBUILD_BASE=1    rebuild the base images even if present
#   LAYERS=1          buildah bud --layers: reuse unchanged steps (faster
#                     rebuilds, but with vfs every step is a full rootfs copy:
#                     several GB; `clean` removes them)
#   NO_CACHE=1        buildah bud --no-cache
#   STORAGE_DRIVER    buildah storage driver      (vfs: works without overlayfs)
#   BUILDAH_ROOT      buildah storage root        (buildah's default)
#   KEEP=1            smoke: keep the working container and temp dir
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-localhost/tollgate:dev}"
SUITE="${SUITE:-bookworm}"
BASE_IMAGE="localhost/debian:$SUITE"
SLIM_IMAGE="localhost/debian:$SUITE-slim"
cache="${IMAGE_CACHE:-$root/.cache/image}"
tarball="$cache/debootstrap-$SUITE-minbase-amd64.tar.gz"
STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
BUILDAH=(buildah --storage-driver "$STORAGE_DRIVER")
[ -n "${BUILDAH_ROOT:-}" ] && BUILDAH+=(--root "$BUILDAH_ROOT")

T_DEBOOTSTRAP=${T_DEBOOTSTRAP:-1200}   # seconds; each limit is per step
T_COMMIT=${T_COMMIT:-600}
T_BUD=${T_BUD:-1800}
T_START=${T_START:-20}

say() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib-debian.sh
. "$(dirname "$0")/lib-debian.sh"   # now, since, apt_uri, mirror, rm_tree, wait_200

# step NAME SECONDS CMD...: run one external command under `timeout`, print its
# time; on failure print the exit status (124 = timed out) and stop.
step() {
    local name="$1" limit="$2" t0 rc=0
    shift 2
    say "--> $name (limit ${limit}s)"
    t0="$(now)"
    timeout -k 10 "$limit" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && die "$name: timed out after ${limit}s"
        die "$name: failed (exit $rc) after $(since "$t0")s"
    fi
    say "<-- $name: ok in $(since "$t0")s"
}

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and buildah --isolation chroot need it)"; }

image_exists() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# --- base images -----------------------------------------------------------

make_tarball() {
    local m sec work
    m="$(mirror)"
    sec="${SECURITY_MIRROR:-$(apt_uri debian-security)}"
    mkdir -p "$cache"
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    # On any exit: unmount what debootstrap may have left mounted (proc, sys)
    # before removing the tree.
    # shellcheck disable=SC2064
    trap "rm_tree '$work'" EXIT
    say "debootstrap --variant=minbase $SUITE from $m"
    step "debootstrap $SUITE" "$T_DEBOOTSTRAP" \
        debootstrap --variant=minbase --arch=amd64 "$SUITE" "$work/rootfs" "$m"
    # Same apt sources as the official debian image (deb822), this mirror.
    rm -f "$work/rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$m" "$SUITE" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$sec" ] && [ "$sec" != none ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$sec" "$SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } > "$work/rootfs/etc/apt/sources.list.d/debian.sources"
    # debootstrap installs the suite's release versions; the official image
    # also carries the -updates/-security fixes: apply them (the host's DNS
    # for the moment, no daemons started).
    cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' > "$work/rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$work/rootfs/usr/sbin/policy-rc.d"
    step "apt-get update + upgrade in the rootfs" 600 chroot "$work/rootfs" /bin/sh -c \
        'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade && apt-get clean'
    rm -f "$work/rootfs/usr/sbin/policy-rc.d"
    # As the official image: no package caches, no recommends.
    printf 'APT::Install-Recommends "false";\n' > "$work/rootfs/etc/apt/apt.conf.d/00norecommends"
    rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin \
           "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/log/"*.log
    : > "$work/rootfs/etc/resolv.conf"
    step "tar rootfs" 300 tar --numeric-owner --xattrs -C "$work/rootfs" -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    say "cached $tarball ($(du -h "$tarball" | cut -f1))"
    rm_tree "$work"
    trap - EXIT
}


# import_base NAME slim?: the cached rootfs -> `buildah from scratch` -> NAME.
import_base() {
    local name="$1" slim="$2" ctr mnt
    ctr="$("${BUILDAH[@]}" from scratch)"
    mnt="$("${BUILDAH[@]}" mount "$ctr")"
    step "unpack rootfs for $name" 300 tar --numeric-owner --xattrs -C "$mnt" -xzf "$tarball"
    if [ "$slim" = slim ]; then
        # What debian:*-slim does: keep no docs, man pages or translations,
        # now and for every package installed later.
        cat > "$mnt/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
        find "$mnt/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$mnt/usr/share/doc" -mindepth 1 -type d -empty -delete
        rm -rf "$mnt/usr/share/man/"* "$mnt/usr/share/groff/"* "$mnt/usr/share/info/"* \
               "$mnt/usr/share/locale/"* "$mnt/usr/share/lintian/"* "$mnt/usr/share/linda/"*
    fi
    "${BUILDAH[@]}" umount "$ctr" >/dev/null
    "${BUILDAH[@]}" config --os linux --arch amd64 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash --label "org.opencontainers.image.source=debootstrap $SUITE $(mirror)" "$ctr"
    step "commit $name" "$T_COMMIT" "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$name"
}

cmd_base() {
    need_root
    local t0; t0="$(now)"
    if [ "${REBUILD_BASE:-0}" = 1 ] || [ ! -s "$tarball" ]; then
        make_tarball
    else
        say "reusing $tarball"
    fi
    for pair in "$BASE_IMAGE full" "$SLIM_IMAGE slim"; do
        # shellcheck disable=SC2086 # two words: name, variant
        set -- $pair
        if [ "${REBUILD_BASE:-0}" = 1 ] || ! image_exists "$1"; then
            import_base "$1" "$2"
        else
            say "$1 present"
        fi
    done
    say "base images ready in $(since "$t0")s"
}

# --- the tollgate image ----------------------------------------------------

cmd_build() {
    need_root
    local t0; t0="$(now)"
    if [ "${REBUILD_BASE:-0}" = 1 ] || ! image_exists "$BASE_IMAGE" || ! image_exists "$SLIM_IMAGE"; then
        cmd_base
    fi
    local args=(bud --isolation chroot --network host --pull=never
                --build-arg "BASE=$BASE_IMAGE" --build-arg "RUNTIME_BASE=$SLIM_IMAGE"
                -f "$root/Dockerfile" -t "$IMAGE")
    # --layers keeps every step as an image for reuse; with vfs each is a full
    # copy of the rootfs (~630 MB per build-stage step): opt-in.
    if [ "${LAYERS:-0}" = 1 ]; then args+=(--layers); fi
    if [ "${NO_CACHE:-0}" = 1 ]; then args+=(--no-cache); fi
    # The build stage runs apt-get against the mirror in the base image's
    # sources: say which one, and fail early (with the reason) if it is down.
    local m; m="$(mirror)"
    curl -fsS -m 20 -o /dev/null "$m/dists/$SUITE/Release" \
        || die "Debian mirror $m not reachable from this machine (the build stage needs it for apt-get)"
    step "buildah bud $IMAGE" "$T_BUD" "${BUILDAH[@]}" "${args[@]}" "$root"
    "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2 || true
    # The image this build replaced is now dangling: drop it (vfs keeps full copies).
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
    say "image built in $(since "$t0")s"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http URL [curl args...]: the status code ("000" when nothing answered).
http() { local u="$1"; shift; curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "$@" "$u" || true; }

# run_case NAME CONFIG_IN_ROOTFS [VAR=VALUE...]: start the image's tollgate as
# 10001:10001 chrooted into the read-only view of the image rootfs, wait for
# GET /healthz -> 200 on the admin port; the caller then sends requests and
# calls stop_case.  Sets pid, port, admin_port.
run_case() {
    local name="$1" cfg="$2"; shift 2
    say "--> [$name] start tollgate as 10001:10001 in the image rootfs ($cfg; main 127.0.0.1:$port, admin 127.0.0.1:$admin_port)"
    timeout -k 5 300 chroot --userspec=10001:10001 "$view" /usr/bin/env -i \
        PATH=/usr/local/bin:/usr/bin:/bin "$@" \
        tollgate --config "$cfg" --threads 1 >"$tmp/stdout" 2>"$tmp/stderr" &
    pid=$!
    local ts code
    ts="$(now)"
    code="$(wait_200 "$pid" "http://127.0.0.1:$admin_port/healthz" "$T_START" "$tmp/body")"
    if [ "$code" != 200 ]; then
        say "tollgate stderr:"; sed 's/^/    /' "$tmp/stderr" >&2 || true
        die "[$name] GET /healthz on the admin port did not answer 200 within ${T_START}s (last: '${code:-none}')"
    fi
    say "<-- [$name] GET http://127.0.0.1:$admin_port/healthz -> 200 after $(since "$ts")s: $(head -c 200 "$tmp/body")"
}

# stop_case NAME: SIGTERM to tollgate's PID (the child of the timeout(1)
# wrapper: signalling the wrapper would start its -k kill timer); wait
# (<= 30 s: shutdown_delay + the 10 s drain); sets stop_rc and stop_secs.
stop_case() {
    local name="$1" t waited=0 tg
    tg="$(ps -o pid= --ppid "$pid" | tr -d ' ' | head -n 1)"
    [ -n "$tg" ] || die "[$name] no tollgate process under timeout PID $pid"
    t="$(now)"
    kill -TERM "$tg"
    # While shutdown_delay runs, /readyz must already say 503.
    sleep 0.3
    draining="$(http "http://127.0.0.1:$admin_port/readyz")"
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$tg" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
        die "[$name] tollgate did not exit within 30s of SIGTERM"
    fi
    stop_rc=0
    wait "$pid" || stop_rc=$?
    pid=""
    stop_secs="$(since "$t")"
    say "[$name] SIGTERM -> /readyz $draining while stopping, exit $stop_rc after ${stop_secs}s; $(wc -l < "$tmp/stdout") audit line(s) on stdout"
    say "[$name] stderr: $(tr '\n' '|' < "$tmp/stderr" | head -c 700)"
}

expect() {   # NAME GOT WANT
    if [ "$2" = "$3" ]; then say "  ok   $1: $2"; else say "  FAIL $1: $2 (want $3)"; fail=1; fi
}

cmd_smoke() {
    need_root
    local t0; t0="$(now)"
    image_exists "$IMAGE" || cmd_build

    # What the image says about itself.
    local user ep cmd conf
    conf="$("${BUILDAH[@]}" inspect --type image "$IMAGE")"
    oci() { python3 -c 'import json, sys; c = json.load(sys.stdin)["OCIv1"]["config"].get(sys.argv[1])
print(c if isinstance(c, str) else json.dumps(c, separators=(",", ":")))' "$1" <<<"$conf"; }
    user="$(oci User)"; ep="$(oci Entrypoint)"; cmd="$(oci Cmd)"
    say "image config: User=$user Entrypoint=$ep Cmd=$cmd"
    [ "$user" = "10001:10001" ] || die "image User is '$user', want 10001:10001"
    [ "$ep" = '["tollgate"]' ] || die "image Entrypoint is $ep, want [\"tollgate\"]"

    # The image's rootfs: a throwaway working container, mounted (vfs: a plain
    # directory).  tollgate runs in a read-only bind mount of it, as with
    # readOnlyRootFilesystem: true.  Globals: the EXIT trap needs them.
    pid="" view="" fail=0
    ctr="$("${BUILDAH[@]}" from --pull=never "$IMAGE")"
    mnt="$("${BUILDAH[@]}" mount "$ctr")"
    tmp="$(mktemp -d)"
    cleanup() {
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            # shellcheck disable=SC2046 # the PID list of its children
            kill -KILL $(ps -o pid= --ppid "$pid") "$pid" 2>/dev/null || true
        fi
        if [ -n "$view" ]; then umount "$view" 2>/dev/null || umount -l "$view" 2>/dev/null || true; fi
        if [ "${KEEP:-0}" = 1 ]; then
            say "kept container $ctr (rootfs $mnt) and $tmp"
        else
            "${BUILDAH[@]}" umount "$ctr" >/dev/null 2>&1 || true
            "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true
            if [ -n "$view" ]; then rmdir "$view" 2>/dev/null || true; fi
            rm -rf "$tmp"
        fi
    }
    trap cleanup EXIT

    # Test inputs go into the container's /tmp before the read-only view exists.
    local sm="$mnt/tmp/smoke" keyline key
    mkdir -p "$sm/secrets"
    keyline="$(timeout 30 chroot --userspec=10001:10001 "$mnt" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
        tollgate gen-key --id smoke --scopes demo:read)" || die "tollgate gen-key failed in the image"
    key="$(sed -n 's/^key: *//p' <<<"$keyline")"
    sed -n 's/^line: *//p' <<<"$keyline" > "$sm/secrets/api-keys"
    openssl rand -hex 32 | tr -d '\n' > "$sm/secrets/jwt-secret"
    openssl rand -hex 32 | tr -d '\n' > "$sm/secrets/admin-token"
    # As the kubelet writes a Secret volume with fsGroup 10001, defaultMode 0440.
    chown -R 0:10001 "$sm/secrets"; chmod 0750 "$sm/secrets"; chmod 0440 "$sm/secrets/"*

    view="$(mktemp -d /tmp/tollgate-rootfs.XXXXXX)"
    if mount --bind "$mnt" "$view" && mount -o remount,bind,ro "$view"; then
        say "image rootfs mounted read-only at $view"
    else
        umount "$view" 2>/dev/null || true
        die "cannot make a read-only bind mount of the image rootfs (mount said so above)"
    fi

    local in_image=(timeout -k 5 30 chroot --userspec=10001:10001 "$view" /usr/bin/env -i
                    PATH=/usr/local/bin:/usr/bin:/bin)
    step "binary runs in the image (--version)" 30 "${in_image[@]}" tollgate --version
    step "image default config is valid" 30 \
        "${in_image[@]}" tollgate --check-config --config /etc/tollgate/config/tollgate.yaml

    # Case 1: the image's default config (the demo), on loopback ports.
    port="$(free_port)"; admin_port="$(free_port)"
    while [ "$admin_port" = "$port" ]; do admin_port="$(free_port)"; done
    sed -e "s/^listen: .*/listen: \"127.0.0.1:$port\"/" \
        -e "s/^admin_listen: .*/admin_listen: \"127.0.0.1:$admin_port\"/" \
        "$mnt/etc/tollgate/config/tollgate.yaml" > "$sm/default.yaml"
    run_case default /tmp/smoke/default.yaml
    # /readyz turns 200 once the workers have their config (after /healthz):
    # wait for it with a deadline rather than asking once.
    expect "default: GET /readyz" "$(wait_200 "$pid" "http://127.0.0.1:$admin_port/readyz" "$T_START" "$tmp/body")" 200
    expect "default: /auth/demo/hello with a demo key" \
        "$(http "http://127.0.0.1:$port/auth/demo/hello" -H 'X-API-Key: demo-key-alice-0123456789abcdef')" 200
    expect "default: /auth/demo/hello without a key" "$(http "http://127.0.0.1:$port/auth/demo/hello")" 401
    stop_case default
    expect "default: exit status after SIGTERM" "$stop_rc" 0

    # Case 2: k8s/base/tollgate.yaml (environment production) as the Deployment
    # runs it: secrets from *_FILE in a 0440 root:10001 directory.  Loopback is
    # added to trusted_proxies only so that curl may speak the nginx dialect.
    port="$(free_port)"; admin_port="$(free_port)"
    while [ "$admin_port" = "$port" ]; do admin_port="$(free_port)"; done
    sed -e "s/^listen: .*/listen: \"127.0.0.1:$port\"/" \
        -e "s/^admin_listen: .*/admin_listen: \"127.0.0.1:$admin_port\"/" \
        -e "s|^trusted_proxies: \[|trusted_proxies: [127.0.0.0/8, |" \
        "$root/k8s/base/tollgate.yaml" > "$sm/k8s-base.yaml"
    grep -q '^trusted_proxies: \[127.0.0.0/8, ' "$sm/k8s-base.yaml" || die "could not adapt k8s/base/tollgate.yaml"
    local sec=/tmp/smoke/secrets
    run_case k8s-base /tmp/smoke/k8s-base.yaml \
        API_KEYS_FILE=$sec/api-keys JWT_SECRET_FILE=$sec/jwt-secret ADMIN_TOKEN_FILE=$sec/admin-token
    local nginx=(-H 'X-Original-URL: https://shop.example/orders' -H 'X-Original-Method: GET'
                 -H 'X-Sent-From: nginx-ingress-controller')
    # /readyz turns 200 once the workers have their config (after /healthz):
    # wait for it with a deadline rather than asking once.
    expect "k8s-base: GET /readyz" "$(wait_200 "$pid" "http://127.0.0.1:$admin_port/readyz" "$T_START" "$tmp/body")" 200
    expect "k8s-base: forward-auth (nginx) with the key" \
        "$(http "http://127.0.0.1:$port/auth" "${nginx[@]}" -H "X-API-Key: $key")" 200
    expect "k8s-base: forward-auth (nginx) without a key" "$(http "http://127.0.0.1:$port/auth" "${nginx[@]}")" 401
    expect "k8s-base: GET /admin/v1/config with the admin token" \
        "$(http "http://127.0.0.1:$admin_port/admin/v1/config" -H "Authorization: Bearer $(cat "$mnt$sec/admin-token")")" 200
    expect "k8s-base: GET /metrics" "$(http "http://127.0.0.1:$admin_port/metrics")" 200
    stop_case k8s-base
    expect "k8s-base: /readyz during shutdown_delay" "$draining" 503
    expect "k8s-base: exit status after SIGTERM" "$stop_rc" 0
    if awk -v s="$stop_secs" 'BEGIN { exit !(s >= 4.5 && s < 16) }'; then
        say "  ok   k8s-base: stopped after ${stop_secs}s (shutdown_delay 5s + drain)"
    else
        say "  FAIL k8s-base: stopped after ${stop_secs}s, want about 5s (shutdown_delay)"; fail=1
    fi

    [ "$fail" = 0 ] || die "smoke test failed"
    say "smoke ok in $(since "$t0")s: $IMAGE serves /healthz (200) as uid 10001 on a read-only root"
}

cmd_clean() {
    local i
    for i in "$IMAGE" "$SLIM_IMAGE" "$BASE_IMAGE"; do
        if "${BUILDAH[@]}" rmi "$i" >/dev/null 2>&1; then say "removed $i"; fi
    done
    # Untagged images: earlier builds of $IMAGE, LAYERS=1 intermediates.
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
    say "pruned dangling images; the debootstrap tarball stays in $cache"
}

case "${1:-}" in
    base) cmd_base ;;
    build) cmd_build ;;
    smoke) cmd_smoke ;;
    clean) cmd_clean ;;
    *) echo "usage: $0 base|build|smoke|clean" >&2; exit 2 ;;
esac
