#!/usr/bin/env bash
# Load script: RFC 8693 token exchanges per second over HTTP keep-alive,
# side by side with client_credentials grants on the same authority in the
# same run. Loopback only; bounded in time.
#
#   bash bench/exchange.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Setup: a caller client gets a token for `orders` (1 h); the `orders`
# service (--serves orders --exchange-audience inventory) exchanges it for an
# `inventory` token with an `act` claim: verify the subject token, check its
# session is not revoked, sign a new token. Needs wrk. The authority is
# pinned to core 0 and wrk to core 1; its CPU time per run comes from /proc.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-16}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
cargo build --release -q -p castellan-cli
BIN=target/release/castellan
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
cat >"$WORK/config.toml" <<CONF
[tokens]
access_token_ttl = "1h"
max_access_token_ttl = "1h"
CONF
taskset -c 0 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --config "$WORK/config.toml" \
  >"$WORK/out" 2>/dev/null &
PID=$!
until [ -s "$WORK/out" ]; do sleep 0.005; done
URL=$(awk '{print $3}' "$WORK/out")
export CASTELLAN_SERVER="$URL" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
CALLER=$("$BIN" client create caller --audience orders --scope read --json)
SERVICE=$("$BIN" client create orders --audience orders --serves orders --exchange-audience inventory --json)
CALLER_ID=$(echo "$CALLER" | field client_id); CALLER_SECRET=$(echo "$CALLER" | field client_secret)
export BENCH_CLIENT_ID=$(echo "$SERVICE" | field client_id)
export BENCH_CLIENT_SECRET=$(echo "$SERVICE" | field client_secret)
export BENCH_SUBJECT_TOKEN=$(curl -s -u "$CALLER_ID:$CALLER_SECRET" -d grant_type=client_credentials -d audience=orders "$URL/oauth2/token" | field access_token)
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; }
measure() { # label lua
  taskset -c 1 wrk -t1 -c"$CONNS" -d3s -s "$2" "$URL/oauth2/token" >/dev/null
  local c0 c1 out reqs
  c0=$(cpu)
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$2" "$URL/oauth2/token")
  c1=$(cpu)
  reqs=$(echo "$out" | grep -o 'requests=[0-9]*' | cut -d= -f2)
  echo "$1: $(echo "$out" | grep -E 'p50_ms') $(echo "$out" | grep -o 'requests=[0-9]* errors_status=[0-9]*')"
  echo "$1: rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}') per_server_cpu_second=$(echo "$reqs $c0 $c1 $TICKS" | awk '{printf "%.0f", $1 / (($3 - $2) / $4)}')"
}
# The exchange must work before it is measured.
CHECK=$(curl -s -u "$BENCH_CLIENT_ID:$BENCH_CLIENT_SECRET" \
  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \
  -d audience=inventory -d "subject_token=$BENCH_SUBJECT_TOKEN" "$URL/oauth2/token")
echo "$CHECK" | grep -q access_token || { echo "exchange refused: $CHECK" >&2; exit 1; }
measure exchange bench/exchange.lua
BENCH_CLIENT_ID=$CALLER_ID BENCH_CLIENT_SECRET=$CALLER_SECRET measure client_credentials bench/issuance.lua
