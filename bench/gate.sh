#!/usr/bin/env bash
# Load script: what does `castellan gate` add to a request, next to a plain
# nginx reverse proxy in front of the same upstream? Loopback only, bounded.
#
#   bash bench/gate.sh [SECONDS]
#
# Upstream: nginx answering 200 "ok" (1 worker). Plain proxy: nginx with
# keep-alive to the upstream (2 workers, like the gate's 2 runtime threads).
# Gate: `castellan gate --upstream` with a valid token on every request (the
# nginx runs get the same Authorization header, which they ignore).
# For each target: latency with 1 connection (wrk -c1), throughput with 32.
# Gate CPU and RSS come from /proc during its throughput run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is required: apt-get install nginx-light" >&2; exit 2; }
cargo build --release -q -p castellan-cli
BIN=target/release/castellan
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port)
nginx_conf() { # name workers body
  mkdir -p "$W/$1"
  cat >"$W/$1/nginx.conf" <<CONF
daemon off; master_process on; worker_processes $2; pid $W/$1/pid; error_log $W/$1/error.log crit;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/$1/b; proxy_temp_path $W/$1/p; fastcgi_temp_path $W/$1/f; uwsgi_temp_path $W/$1/u; scgi_temp_path $W/$1/s;
$3
}
CONF
  "$NGINX" -p "$W/$1" -c "$W/$1/nginx.conf" & PIDS+=($!)
}
nginx_conf upstream 1 "server { listen 127.0.0.1:$UP; location / { return 200 'ok'; } }"
nginx_conf proxy 2 "upstream app { server 127.0.0.1:$UP; keepalive 64; }
server { listen 127.0.0.1:$PX; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/data" >"$W/auth.out" 2>/dev/null & PIDS+=($!)
until [ -s "$W/auth.out" ]; do sleep 0.01; done
AUTH=$(awk '{print $3}' "$W/auth.out")
export CASTELLAN_SERVER="$AUTH" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
CREATED=$("$BIN" client create bench --audience orders --json)
CID=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
CSEC=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
TOKEN=$(curl -s -u "$CID:$CSEC" -d grant_type=client_credentials "$AUTH/oauth2/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

"$BIN" gate --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$UP" --authority "$AUTH" --audience orders >"$W/gate.out" 2>/dev/null & GPID=$!; PIDS+=($GPID)
until [ -s "$W/gate.out" ]; do sleep 0.01; done
GATE=$(awk '{print $3}' "$W/gate.out")
until curl -sf "$GATE/.castellan/ready" >/dev/null; do sleep 0.05; done
sleep 0.5
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$GATE/")" = 200 ] || { echo "gate refused the bench token" >&2; exit 1; }

run() { # label url conns
  wrk -t1 -c"$3" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$2" 2>&1 \
    | awk -v l="$1" -v c="$3" '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF}
       END {printf "%-6s c=%-3s p50=%-9s p99=%-9s rps=%-10s non2xx=%s\n", l, c, p50, p99, rps, (bad==""?0:bad)}'
}
echo "== latency, 1 connection =="
run direct "http://127.0.0.1:$UP/" 1
run nginx "http://127.0.0.1:$PX/" 1
run gate "$GATE/" 1
echo "== throughput, 32 connections =="
run direct "http://127.0.0.1:$UP/" 32
run nginx "http://127.0.0.1:$PX/" 32
TICKS=$(getconf CLK_TCK)
C0=$(awk '{print $14 + $15}' /proc/$GPID/stat)
OUT=$(run gate "$GATE/" 32)
C1=$(awk '{print $14 + $15}' /proc/$GPID/stat)
echo "$OUT"
RPS=$(echo "$OUT" | sed -E 's/.*rps=([0-9.]+).*/\1/')
echo "gate_cpu_seconds=$(echo "$C0 $C1 $TICKS" | awk '{printf "%.2f", ($2-$1)/$3}') over ${SECS}s"
echo "gate_core_per_1000_rps=$(echo "$C0 $C1 $TICKS $RPS $SECS" | awk '{printf "%.4f", (($2-$1)/$3/$5) / ($4/1000)}')"
echo "gate_rss_mb=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$GPID/status)"
