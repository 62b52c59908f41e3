#!/usr/bin/env bash
# Load script: revocation propagation from one authority to N live stream
# subscribers (the stream every verifier and gate follows). Loopback only.
#
#   bash bench/revocation.sh [SUBSCRIBERS] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS="${1:-1000}"
EVENTS="${2:-5}"
ulimit -n 65536 2>/dev/null || ulimit -n 8192
cargo build --release -q -p castellan-cli
cargo build --release -q -p castellan-verify --example revocation_fanout
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
target/release/castellan serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/log" &
PID=$!
until [ -s "$WORK/out" ]; do sleep 0.01; done
URL=$(awk '{print $3}' "$WORK/out")
target/release/examples/revocation_fanout "$URL" bench-admin "$CASTELLAN_BOOTSTRAP_ADMIN_SECRET" "$SUBS" "$EVENTS"
echo "authority_rss_mb=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$PID/status) with $SUBS streams open"
