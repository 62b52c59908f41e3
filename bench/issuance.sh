#!/usr/bin/env bash
# Load script: client_credentials issuance over HTTP keep-alive, plus the
# authority's idle RSS and time-to-ready. Loopback only; bounded in time.
#
#   bash bench/issuance.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Needs wrk (apt-get install wrk). Prints one block of numbers for
# docs/BENCHMARKS.md. The server's own CPU time during the run is read from
# /proc so grants per CPU-second (per core) can be told apart from what the
# load generator, sharing the machine, costs.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
CONNS="${2:-16}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }

cargo build --release -q -p castellan-cli
BIN=target/release/castellan
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
T0=$(date +%s%N)
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --log-format json \
    >"$WORK/out" 2>"$WORK/log" &
PID=$!
until [ -s "$WORK/out" ]; do sleep 0.005; done
T1=$(date +%s%N)
URL=$(awk '{print $3}' "$WORK/out")
READY_MS=$(grep -o '"ready_ms":"[0-9.]*"' "$WORK/log" | grep -o '[0-9.]*' | head -1)
sleep 2
RSS_IDLE_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)

export CASTELLAN_SERVER="$URL" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
CREATED=$("$BIN" client create bench --audience orders --scope read --json)
export BENCH_CLIENT_ID=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
export BENCH_CLIENT_SECRET=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')

# Warm-up, then the measured run.
wrk -t1 -c"$CONNS" -d3s -s bench/issuance.lua "$URL/oauth2/token" >/dev/null
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; }
C0=$(cpu)
OUT=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -s bench/issuance.lua "$URL/oauth2/token")
C1=$(cpu)
RSS_LOAD_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
REQS=$(echo "$OUT" | grep -o 'requests=[0-9]*' | cut -d= -f2)
CPU_S=$(echo "$C0 $C1 $TICKS" | awk '{printf "%.2f", ($2 - $1) / $3}')
echo "$OUT" | grep -E 'p50_ms|requests=|Requests/sec'
echo "server_cpu_seconds=$CPU_S"
echo "grants_per_cpu_second=$(echo "$REQS $CPU_S" | awk '{printf "%.0f", $1 / $2}')"
echo "throughput_rps=$RPS (wrk -t1 -c$CONNS, load generator on the same 2 cores)"
echo "idle_rss_mb=$(echo "$RSS_IDLE_KB" | awk '{printf "%.1f", $1 / 1024}') loaded_rss_mb=$(echo "$RSS_LOAD_KB" | awk '{printf "%.1f", $1 / 1024}')"
echo "ready_ms_in_process=$READY_MS spawn_to_listening_ms=$(( (T1 - T0) / 1000000 ))"
