#!/usr/bin/env bash
# make lint-k8s: the Helm chart and the kustomize manifests, checked offline.
#
#   scripts/lint-k8s.sh            (TOLLGATE_BIN=build/tollgate by default)
#
# 1. tools: helm + kubectl (scripts/k8s-tools.sh), the validator's npm packages
#    (tools/k8s-validate, `npm ci` again only when package-lock.json changes).
# 2. the validator proves it is strict: tests/k8s/good.yaml passes, every
#    tests/k8s/bad-*.yaml fails with each of its `# expect:` messages.
# 3. helm lint --strict with the default values, each helm/tollgate/values-*.yaml
#    and tests/k8s/values-all-features.yaml (every optional template on).
# 4. helm template of each, kubectl kustomize of k8s/base and every
#    k8s/overlays/*: every object validated against the Kubernetes OpenAPI
#    schemas (unknown fields, wrong types, missing fields, unknown kinds fail).
# 5. every rendered tollgate.yaml loaded by `tollgate --check-config` with the
#    environment its Deployment sets (throwaway secret files), once each
#    *_FILE it names is shown to come from a mounted, rendered volume item.
# 6. assertions on the renders: tests/k8s/rendered.test.js (node:test).
#
# One summary line per step with its time; a failing step prints its output and
# the script goes on to the next, then exits 1.  Every command is bounded by
# `timeout`.  Renders are kept in $LINT_K8S_OUT (default: a temporary dir);
# LINT_K8S_VERBOSE=1 prints every step's output (one line per object, ...).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

chart=helm/tollgate
validator=tools/k8s-validate
bin_tollgate="${TOLLGATE_BIN:-$root/build/tollgate}"
T_SHORT=60   # seconds for one helm / kubectl / node run
T_LONG=300   # fetching the tools, npm ci

if [ -n "${LINT_K8S_OUT:-}" ]; then
    out="$LINT_K8S_OUT"; rm -rf "$out"; mkdir -p "$out"
else
    out="$(mktemp -d "${TMPDIR:-/tmp}/lint-k8s.XXXXXX")"
    trap 'rm -rf "$out"' EXIT
fi
renders="$out/renders"; mkdir -p "$renders"

failures=0
t_all=$(date +%s%N)

# step NAME CMD...: run CMD with its output in a log; print "ok|FAIL NAME (Ns)"
# and the log's last line (the command's own summary); all of it on failure.
step() {
    local name="$1"; shift
    local log="$out/step.log" t0 t1 rc=0
    t0=$(date +%s%N)
    "$@" >"$log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    local last
    if grep -qE '^ℹ (tests|pass|fail) [0-9]+' "$log"; then  # node --test's closing lines
        last=$(grep -E '^ℹ (tests|pass|fail) [0-9]+' "$log" | sed 's/^ℹ //' | paste -sd, - | sed 's/,/, /g')
    else
        last=$(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-110 || true)
    fi
    if [ "$rc" -eq 0 ]; then
        printf 'lint-k8s: ok   %-52s %5ss  %s\n' "$name" "$secs" "$last"
        [ -z "${LINT_K8S_VERBOSE:-}" ] || sed 's/^/    /' "$log"
    else
        printf 'lint-k8s: FAIL %-52s %5ss  (exit %s)\n' "$name" "$secs" "$rc"
        # node:test failures: keep the messages, drop stack frames and the error dumps
        grep -vE '^\s+at |^\s+(generatedMessage|code|actual|expected|operator): |^\s+}$' "$log" \
            | sed 's/^/    /' | head -n 300
        failures=$((failures + 1))
    fi
    return 0
}

die() { echo "lint-k8s: $*" >&2; exit 1; }
failed_render() { cat "$1"; return 1; }

# ---- 1. tools ---------------------------------------------------------------
t0=$(date +%s%N)
k8sbin="$(timeout "$T_LONG" scripts/k8s-tools.sh)" || die "scripts/k8s-tools.sh failed"
HELM="$k8sbin/helm"; KUBECTL="$k8sbin/kubectl"
export HELM
command -v node >/dev/null || die "node is not installed (scripts/deps.sh installs it)"
lock_sha="$(sha256sum "$validator/package-lock.json" | cut -d' ' -f1)"
stamp="$validator/node_modules/.package-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_sha" ]; then
    (cd "$validator" && timeout "$T_LONG" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
        >"$out/npm.log" 2>&1 || { cat "$out/npm.log" >&2; die "npm ci in $validator failed"; }
    echo "$lock_sha" >"$stamp"
fi
[ -x "$bin_tollgate" ] || die "$bin_tollgate is not built (make lint-k8s builds it)"
printf 'lint-k8s: ok   %-52s %5ss  %s\n' "tools (helm, kubectl, validator)" \
    "$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" \
    "$("$HELM" version --short) / kubectl $("$KUBECTL" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -1)"

validate() { timeout "$T_SHORT" node "$validator/validate.js" "$@"; }

# ---- 2. the validator is strict -------------------------------------------
selftest() {
    validate tests/k8s/good.yaml || { echo "tests/k8s/good.yaml: refused"; return 1; }
    local f outp bad=0 n=0
    for f in tests/k8s/bad-*.yaml; do
        n=$((n + 1))
        local rc=0
        outp="$(validate "$f")" || rc=$?
        echo "$outp"
        if [ "$rc" -ne 1 ]; then echo "$f: exit $rc, want 1"; bad=1; fi
        if grep -q '^OK ' <<<"$outp"; then echo "$f: an object passed"; bad=1; fi
        while IFS= read -r want; do
            grep -qF -- "$want" <<<"$outp" || { echo "$f: no \"$want\" in the output"; bad=1; }
        done < <(sed -n 's/^# expect: //p' "$f")
    done
    [ "$bad" -eq 0 ] && echo "validator: good.yaml accepted, $n bad manifests refused for the expected reasons"
}
step "validator strictness (tests/k8s)" selftest

# ---- 3./4. helm -------------------------------------------------------------
if [ ! -f "$chart/Chart.yaml" ]; then
    echo "lint-k8s: FAIL no chart at $chart"; failures=$((failures + 1))
else
    # name|values file ("" = the chart's defaults)
    sets=("default|")
    for f in "$chart"/values-*.yaml; do
        [ -e "$f" ] || continue
        n="$(basename "$f" .yaml)"; sets+=("${n#values-}|$f")
    done
    sets+=("test-all-features|tests/k8s/values-all-features.yaml")
    for s in "${sets[@]}"; do
        n="${s%%|*}"; f="${s#*|}"
        args=(); [ -n "$f" ] && args=(-f "$f")
        step "helm lint --strict ($n)" timeout "$T_SHORT" "$HELM" lint --strict "$chart" "${args[@]}"
        r="$renders/helm-$n.yaml"
        if timeout "$T_SHORT" "$HELM" template tollgate "$chart" --namespace tollgate "${args[@]}" \
            >"$r" 2>"$out/render.err"; then
            step "helm template ($n) | validate" validate "$r"
        else
            rm -f "$r"
            step "helm template ($n)" failed_render "$out/render.err"
        fi
    done
fi

# ---- 4. kustomize -----------------------------------------------------------
kdirs=()
[ -f k8s/base/kustomization.yaml ] && kdirs+=(k8s/base)
for d in k8s/overlays/*/; do [ -f "$d/kustomization.yaml" ] && kdirs+=("${d%/}"); done
if [ "${#kdirs[@]}" -eq 0 ]; then
    echo "lint-k8s: FAIL no k8s/base or k8s/overlays/*/kustomization.yaml"; failures=$((failures + 1))
fi
for d in "${kdirs[@]}"; do
    n="$(basename "$d")"
    r="$renders/kustomize-$n.yaml"
    if timeout "$T_SHORT" "$KUBECTL" kustomize "$d" >"$r" 2>"$out/render.err"; then
        step "kubectl kustomize $d | validate" validate "$r"
    else
        rm -f "$r"
        step "kubectl kustomize $d" failed_render "$out/render.err"
    fi
done

# ---- 5. tollgate --check-config ---------------------------------------------
if compgen -G "$renders/*.yaml" >/dev/null; then
    step "tollgate --check-config (every tollgate.yaml)" \
        timeout "$T_SHORT" node tests/k8s/check-configs.js --tollgate "$bin_tollgate" "$renders"/*.yaml
fi

# ---- 6. assertions ----------------------------------------------------------
step "assertions (tests/k8s/rendered.test.js)" env RENDER_DIR="$renders" HELM="$HELM" CHART="$root/$chart" \
    TOLLGATE_BIN="$bin_tollgate" timeout "$T_LONG" node --test --test-reporter=spec tests/k8s/rendered.test.js

total=$(awk -v a="$t_all" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
if [ "$failures" -ne 0 ]; then
    echo "lint-k8s: $failures step(s) FAILED (${total}s)"
    exit 1
fi
echo "lint-k8s: all passed (${total}s)"
