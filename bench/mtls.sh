#!/usr/bin/env bash
# Load script: what mTLS costs at `castellan gate`. Two gates in front of the
# same upstream (nginx answering 200 "ok"), one plain HTTP, one with
# `--svid-dir --allow-peer`; the same generator
# (crates/castellan-testkit/examples/mtls_load.rs, rustls + the caller's SVID)
# drives both, on kept-alive connections and with a new connection (for the
# mTLS gate: a full handshake, both certificates verified, the SPIFFE ID
# checked) for every request. Loopback only; bounded in time.
#
#   bash bench/mtls.sh [SECONDS]
#
# Gates pinned to core 0, the generator to core 1. The gates' CPU time over
# each run comes from /proc, so "gate CPU per request" separates the handshake
# cost from the generator's.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is required: apt-get install nginx-light" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is required (util-linux)" >&2; exit 2; }
cargo build --release -q -p castellan-cli
cargo build --release -q -p castellan-testkit --example mtls_load
BIN=target/release/castellan
GEN=target/release/examples/mtls_load
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port)
mkdir -p "$W/up"
cat >"$W/up/nginx.conf" <<CONF
daemon off; master_process on; worker_processes 1; pid $W/up/pid; error_log $W/up/error.log crit;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/up/b; proxy_temp_path $W/up/p; fastcgi_temp_path $W/up/f; uwsgi_temp_path $W/up/u; scgi_temp_path $W/up/s;
server { listen 127.0.0.1:$UP; location / { return 200 'ok'; } } }
CONF
taskset -c 1 "$NGINX" -p "$W/up" -c "$W/up/nginx.conf" & PIDS+=($!)

export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/data" >"$W/auth.out" 2>/dev/null & PIDS+=($!)
until [ -s "$W/auth.out" ]; do sleep 0.01; done
AUTH=$(awk '{print $3}' "$W/auth.out")
export CASTELLAN_SERVER="$AUTH" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
TD=spiffe://127.0.0.1
for who in gate/orders svc/billing; do
  JT=$("$BIN" workload register "$TD/$who" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["join_token"])')
  "$BIN" workload svid --join-token "$JT" --out "$W/svid-${who//\//-}" >/dev/null 2>&1
done
CREATED=$("$BIN" client create bench --audience orders --json)
CID=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
CSEC=$(echo "$CREATED" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
TOKEN=$(curl -s -u "$CID:$CSEC" -d grant_type=client_credentials "$AUTH/oauth2/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

start_gate() { # name extra...
  local name=$1; shift
  taskset -c 0 "$BIN" gate --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$UP" \
    --authority "$AUTH" --audience orders "$@" >"$W/$name.out" 2>/dev/null & PIDS+=($!)
  echo $! >"$W/$name.pid"
  until [ "$(wc -l <"$W/$name.out")" -ge 2 ]; do sleep 0.01; done
  until curl -sf "$(sed -n 2p "$W/$name.out" | awk '{print $3}')/.castellan/ready" >/dev/null; do sleep 0.05; done
}
start_gate plain
start_gate mtls --svid-dir "$W/svid-gate-orders" --allow-peer "$TD/svc/billing"
PLAIN=$(awk 'NR==1 {print $3}' "$W/plain.out")
MTLS=$(awk 'NR==1 {print $3}' "$W/mtls.out")
sleep 0.5

TICKS=$(getconf CLK_TCK)
run() { # label gate-name url conns extra...
  local label=$1 name=$2 url=$3 conns=$4; shift 4
  local pid; pid=$(cat "$W/$name.pid")
  local c0 c1 out
  c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
  out=$(taskset -c 1 "$GEN" --url "$url/" --token "$TOKEN" --concurrency "$conns" --duration "$SECS" --warmup 2 "$@")
  c1=$(awk '{print $14 + $15}' /proc/$pid/stat)
  echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
label, cpu, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
# CPU over warm-up + measured window, per request measured (warm-up runs at the same rate).
per_req = cpu / max(1, r["requests"] * (secs + 2) / secs) * 1e6
print("%-34s c=%-3d rps=%-8.0f p50=%dus p99=%dus errors=%d gate_cpu_per_req=%.0fus" % (
    label, r["concurrency"], r["rps"], r["p50_us"], r["p99_us"], r["errors"], per_req))
' "$label" "$(echo "$c0 $c1 $TICKS" | awk '{printf "%.3f", ($2-$1)/$3}')" "$SECS"
}
SV=(--svid-dir "$W/svid-svc-billing" --server-id "$TD/gate/orders")
echo "== kept-alive connections =="
run "plain gate" plain "$PLAIN" 1
run "mtls gate" mtls "$MTLS" 1 "${SV[@]}"
run "plain gate" plain "$PLAIN" 16
run "mtls gate" mtls "$MTLS" 16 "${SV[@]}"
echo "== a new connection per request =="
run "plain gate (tcp connect)" plain "$PLAIN" 1 --new-connections
run "mtls gate (full mtls handshake)" mtls "$MTLS" 1 --new-connections "${SV[@]}"
run "plain gate (tcp connect)" plain "$PLAIN" 8 --new-connections
run "mtls gate (full mtls handshake)" mtls "$MTLS" 8 --new-connections "${SV[@]}"
