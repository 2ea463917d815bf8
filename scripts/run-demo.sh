#!/usr/bin/env bash
# `make run`: start tollgate with config/tollgate.yaml (memory backend, demo
# keys) and print a few curl commands to try.   Usage: run-demo.sh BIN
#
# The secrets below are DEVELOPMENT ONLY: they are public, in this file.
set -euo pipefail
BIN=${1:?usage: run-demo.sh BIN}
cd "$(dirname "$0")/.."

export JWT_SECRET=${JWT_SECRET:-dev-only-jwt-secret-do-not-use-in-prod-0123456789}
export ADMIN_TOKEN=${ADMIN_TOKEN:-dev-only-admin-token}
ALICE=demo-key-alice-0123456789abcdef
BOB=demo-key-bob-fedcba9876543210
BASE=http://127.0.0.1:8080
ADMIN=http://127.0.0.1:9090

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# An HS256 JWT for subject "demo-user", valid for one hour.
now=$(date +%s)
header=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"sub":"demo-user","aud":"tollgate","scope":"demo:read","iat":%d,"exp":%d}' \
    "$now" "$((now + 3600))" | b64url)
sig=$(printf '%s' "$header.$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)
JWT="$header.$payload.$sig"

cat <<MSG
tollgate demo — development only (memory backend, demo keys, demo secrets)
  main listener  $BASE      admin listener  $ADMIN
  JWT_SECRET=$JWT_SECRET   ADMIN_TOKEN=$ADMIN_TOKEN

Try, from another terminal:

  # 1. allowed: 200 with X-Auth-Client-Id and X-RateLimit-* headers
  curl -i -H 'X-API-Key: $ALICE' $BASE/auth/demo/hello

  # 2. no credential: 401 with the JSON error envelope
  curl -i $BASE/auth/demo/hello

  # 3. wrong scope: demo-bob may not use /demo/admin, 403
  curl -i -H 'X-API-Key: $BOB' $BASE/auth/demo/admin

  # 4. rate limit: /demo/limited allows 3 a minute, the 4th gets 429 + Retry-After
  for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{http_code}\\n' \\
      -H 'X-API-Key: $BOB' $BASE/auth/demo/limited; done

  # 5. a JWT (HS256, sub demo-user, one hour)
  curl -i -H 'Authorization: Bearer $JWT' $BASE/auth/demo/hello

  # 6. readiness, metrics, and the effective config (admin token needed)
  curl -s $ADMIN/readyz; curl -s $ADMIN/metrics | head
  curl -s -H 'Authorization: Bearer $ADMIN_TOKEN' $ADMIN/admin/v1/config

Audit lines (one JSON object per request) follow on stdout. Ctrl-C stops.

MSG
exec "$BIN" --config config/tollgate.yaml
