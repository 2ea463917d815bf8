#!/usr/bin/env bash
# Static checks of the Dockerfile (no daemon, no image build), for CI:
#   1. the runtime stage's apt-get install list is exactly the set of Debian
#      packages owning the shared libraries BIN links directly (readelf -d
#      NEEDED, resolved by ldd, owned via dpkg -S),
#      minus what every base has (libc6, libgcc-s1), plus ca-certificates;
#   2. the runtime USER is numeric and not root (uid and gid);
#   3. ENTRYPOINT is ["tollgate"];
#   4. no COPY/ADD brings in a secret-looking file (*.pem, *.key, *key*, .env,
#      api-keys...), except config/demo-api-keys (digests of public demo keys);
#      no `COPY .` of the whole context; no ADD of a URL;
#   5. every source module of the Makefile's MODULES is copied into the build
#      stage (`COPY M M`): a module added to the Makefile and not here builds
#      everywhere but in the image (decide/ was missed once).
#
#   scripts/check-dockerfile.sh [DOCKERFILE [BIN]]   (Dockerfile, build/tollgate)
# Needs BIN built on a Debian system of the same release as the image (make).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="${1:-$root/Dockerfile}"
bin="${2:-$root/build/tollgate}"
# In every base image; never installed by the runtime stage.
BASE_PKGS="libc6 libgcc-s1"
# Wanted in the runtime stage although no library of BIN is in them.
EXTRA_PKGS="ca-certificates"
# The one key-looking file the image may carry.
ALLOWED_KEY_FILES="config/demo-api-keys"

fail=0
bad() { printf 'check-dockerfile: FAIL: %s\n' "$*" >&2; fail=1; }
ok() { printf 'check-dockerfile: ok: %s\n' "$*"; }

[ -f "$dockerfile" ] || { echo "check-dockerfile: no $dockerfile" >&2; exit 1; }
[ -x "$bin" ] || { echo "check-dockerfile: no $bin: build it first (make)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "check-dockerfile: dpkg not found (needs a Debian system)" >&2; exit 1; }

# Logical lines: comments dropped, `\` continuations joined.
logical_lines() {
    awk '
        /^[[:space:]]*#/ { next }
        { line = line $0 }
        /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
        { if (line ~ /[^[:space:]]/) print line; line = "" }
    ' "$dockerfile"
}
# The runtime stage: the lines from the last FROM on.
runtime_stage() {
    logical_lines | awk 'toupper($1) == "FROM" { n++ } { print n "\t" $0 }' |
        awk -F'\t' -v last="$(logical_lines | awk 'toupper($1) == "FROM"' | wc -l)" '$1 == last { print $2 }'
}
stage="$(runtime_stage)"
[ -n "$stage" ] || { echo "check-dockerfile: no FROM in $dockerfile" >&2; exit 1; }

# 1. runtime packages -------------------------------------------------------
# Words after `apt-get install` up to the next && ; | or ), options dropped.
have="$(printf '%s\n' "$stage" | awk 'toupper($1) == "RUN"' |
    grep -oE 'apt-get[[:space:]]+install[^&;|)]*' |
    sed -E 's/^apt-get[[:space:]]+install//' | tr -s ' \t' '\n' | grep -vE '^(-|$)' | sort -u || true)"

owner() {   # the package owning a library path (merged /usr: try both spellings)
    local p real
    real="$(readlink -f "$1")"
    for p in "$real" "$1" "/usr$1" "${1#/usr}"; do
        dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
    done
    return 1
}
# The binary's direct dependencies (DT_NEEDED), resolved by ldd; apt brings
# their own (libcurl4 alone pulls in a dozen), so only these are listed.
needed="$(readelf -d "$bin" | awk '$2 == "(NEEDED)" { gsub(/[][]/, "", $5); print $5 }')"
libs="$(ldd "$bin" | awk -v need="$needed" '
    BEGIN { n = split(need, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
    $2 == "=>" && $3 ~ /^\// && ($1 in want) { print $3 }')"
want=""
while read -r lib; do
    [ -n "$lib" ] || continue
    pkg="$(owner "$lib")" || { bad "no package owns $lib (ldd $bin)"; continue; }
    want="$want $pkg"
done <<<"$libs"
# shellcheck disable=SC2086 # word lists
want="$(printf '%s\n' $want $EXTRA_PKGS | grep -vxF -f <(printf '%s\n' $BASE_PKGS) | sort -u)"

missing="$(comm -23 <(echo "$want") <(echo "$have") | tr '\n' ' ')"
extra="$(comm -13 <(echo "$want") <(echo "$have") | tr '\n' ' ')"
[ -z "$missing" ] || bad "runtime stage does not install: $missing(needed by ldd $bin via dpkg -S)"
[ -z "$extra" ] || bad "runtime stage installs packages no library of $bin is in: $extra"
[ -n "$missing$extra" ] || ok "runtime packages = ldd + dpkg -S: $(tr '\n' ' ' <<<"$have")"

# 2. USER -------------------------------------------------------------------
user="$(printf '%s\n' "$stage" | awk 'toupper($1) == "USER" { u = $2 } END { print u }')"
if [ -z "$user" ]; then
    bad "the runtime stage has no USER (it would run as root)"
elif ! [[ "$user" =~ ^([0-9]+):([0-9]+)$ ]]; then
    bad "USER '$user' must be numeric UID:GID (runAsNonRoot cannot verify a name)"
elif [ "${BASH_REMATCH[1]}" -eq 0 ] || [ "${BASH_REMATCH[2]}" -eq 0 ]; then
    bad "USER '$user' is root (uid or gid 0)"
else
    ok "USER $user"
fi

# 3. ENTRYPOINT ---------------------------------------------------------------
ep="$(printf '%s\n' "$stage" | awk 'toupper($1) == "ENTRYPOINT" { $1 = ""; e = $0 } END { print e }' | tr -d ' \t')"
if [ "$ep" = '["tollgate"]' ]; then ok "ENTRYPOINT [\"tollgate\"]"; else bad "ENTRYPOINT is '${ep:-unset}', want [\"tollgate\"]"; fi

# 4. secrets in COPY/ADD ------------------------------------------------------
secretish() {   # $1 = path relative to the repository
    local b; b="$(basename "$1")"
    case " $ALLOWED_KEY_FILES " in *" $1 "*) return 1 ;; esac
    case "$b" in
        *.pem | *.key | *.p12 | *.pfx | *.jks | id_rsa* | id_ed25519* | .env | *.env) return 0 ;;
        *secret* | *password* | *token* | *api-keys* | *api_keys* | *credential*) return 0 ;;
        *.c | *.h | *.lua) return 1 ;;   # source code such as auth/apikey.c
        *key*) return 0 ;;
    esac
    return 1
}
copies="$(logical_lines | awk 'toupper($1) == "COPY" || toupper($1) == "ADD"')"
nsrc=0 nsecret=0
flag() { bad "$*"; nsecret=$((nsecret + 1)); }
while read -r instr args; do
    [ -n "$instr" ] || continue
    [[ "$args" == *--from=* ]] && continue          # from another stage, not the context
    # Drop --chown=... and other flags; the last word is the destination.
    read -r -a words <<<"$(printf '%s' "$args" | sed -E 's/(^| )--[^ ]+//g')"
    [[ "${words[0]:-}" == \[* ]] && { flag "$instr in JSON form is not checked: $args"; continue; }
    for src in "${words[@]:0:${#words[@]}-1}"; do
        nsrc=$((nsrc + 1))
        case "$src" in
            http://* | https://*) flag "$instr of a URL ($src): fetch in a RUN with a checksum"; continue ;;
            . | ./) flag "$instr $src copies the whole context: name the paths"; continue ;;
        esac
        found=0
        while read -r f; do
            [ -n "$f" ] || continue
            found=1
            rel="${f#"$root"/}"
            secretish "$rel" && flag "$instr $src brings in $rel (secret-looking name)"
        done < <(cd "$root" && compgen -G "$src" | while read -r m; do find "$root/$m" -type f; done)
        if [ "$found" = 0 ]; then
            secretish "$src" && flag "$instr $src looks like a secret"
            flag "$instr $src: no such file in the repository"
        fi
    done
done <<<"$copies"
[ "$nsecret" -gt 0 ] || ok "no secret-looking file among $nsrc COPY/ADD sources (allowed: $ALLOWED_KEY_FILES)"

modules="$(sed -n 's/^MODULES *:= *//p' "$root/Makefile")"
[ -n "$modules" ] || bad "no MODULES line in $root/Makefile"
missing=""
for m in $modules; do
    grep -Eq "^COPY[[:space:]]+$m/?[[:space:]]+$m/?[[:space:]]*$" "$dockerfile" || missing="$missing $m"
done
if [ -n "$missing" ]; then
    bad "modules of the Makefile not copied into the build stage:$missing (add COPY M M)"
else
    ok "every Makefile module is copied:" $modules
fi

if [ "$fail" = 1 ]; then echo "check-dockerfile: $dockerfile has problems (see above)" >&2; exit 1; fi
echo "check-dockerfile: $dockerfile ok"
