#!/usr/bin/env bash
# `make valgrind-integration`: a short integration subset with tollgate under
# valgrind (memcheck): headers and wire format, hostile input, the admin API,
# the audit log.  Every tollgate process writes its own log; the run fails
# when any log holds an error or a definite leak (and prints it).
#   Usage: valgrind-integration.sh BIN [test modules...]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
MODULES=("$@")
[ ${#MODULES[@]} -gt 0 ] || MODULES=(test_headers test_bad_input test_admin test_audit)
command -v valgrind >/dev/null || { echo "valgrind-integration: valgrind not found (make deps)" >&2; exit 1; }

DIR=$(mktemp -d /tmp/tollgate-vg.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
cat > "$DIR/tollgate" <<WRAP
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
    --log-file="$DIR/vg.%p.log" "$BIN" "\$@"
WRAP
chmod +x "$DIR/tollgate"

rc=0
TOLLGATE_SLOW=1 TOLLGATE_BIN="$DIR/tollgate" python3 tests/integration/run.py "${MODULES[@]}" || rc=$?
bad=0
for f in "$DIR"/vg.*.log; do
    [ -e "$f" ] || continue
    if [ -s "$f" ]; then
        echo "valgrind-integration: $(basename "$f"):" >&2
        cat "$f" >&2
        bad=$((bad + 1))
    fi
done
n=$(find "$DIR" -name 'vg.*.log' | wc -l)
if [ "$bad" -gt 0 ]; then
    echo "valgrind-integration: $bad of $n tollgate processes reported errors or definite leaks" >&2
    exit 1
fi
echo "valgrind-integration: $n tollgate processes under valgrind, no error, no definite leak"
exit "$rc"
