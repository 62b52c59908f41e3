#!/usr/bin/env bash
# Load script: issuance and introspection throughput on SQLite and on
# PostgreSQL side by side, then cross-node revocation latency (a revocation
# written on node A, refused at a forward-auth gate that follows node B).
#
#   bash bench/cluster.sh [DURATION_SECONDS] [CONNECTIONS] [REVOCATIONS]
#
# Needs wrk and a PostgreSQL server (CASTELLAN_BENCH_POSTGRES, default
# postgres://postgres@127.0.0.1:5432/postgres); each run uses its own
# throwaway databases. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-16}"
REVOCATIONS="${3:-50}"
PG="${CASTELLAN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is required" >&2; exit 2; }

cargo build --release -q -p castellan-cli
BIN=target/release/castellan
WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for d in "${DBS[@]}"; do psql -q "$PG" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
export CASTELLAN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
new_db() {
    local name="castellan_bench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql -q "$PG" -c "CREATE DATABASE $name" >/dev/null
    DBS+=("$name")
    echo "${PG%/*}/$name"
}
# start NAME PORT ISSUER [serve flags...]: a node; waits for its first line.
start() {
    local name=$1 port=$2 issuer=$3; shift 3
    "$BIN" serve --listen "127.0.0.1:$port" --issuer "$issuer" --data-dir "$WORK/$name" --log-format json "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
    eval "PID_$name=$!"
    until [ -s "$WORK/$name.out" ]; do sleep 0.01; done
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

measure() { # measure LABEL PID URL SCRIPT PATH
    local label=$1 pid=$2 url=$3 script=$4 path=$5
    wrk -t1 -c"$CONNS" -d2s -s "$script" "$url$path" >/dev/null
    local c0 c1 out
    c0=$(cpu "$pid")
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$script" "$url$path")
    c1=$(cpu "$pid")
    local rps reqs cpu_s
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | grep -o 'requests=[0-9]*' | cut -d= -f2)
    cpu_s=$(echo "$c0 $c1 $TICKS" | awk '{printf "%.2f", ($2 - $1) / $3}')
    printf '%-28s %10s req/s  %8s per server CPU-s  %s  %s\n' "$label" "$rps" \
        "$(echo "$reqs $cpu_s" | awk '{printf "%.0f", $1 / $2}')" \
        "$(echo "$out" | grep -o 'p50_ms=[0-9.]* p90_ms=[0-9.]* p99_ms=[0-9.]*')" \
        "$(echo "$out" | grep -o 'errors_status=[0-9]*')"
}

echo "== issuance and introspection, wrk -t1 -c$CONNS, ${DURATION}s each (load generator on the same cores)"
for backend in sqlite postgres; do
    port=$(free_port)
    url="http://127.0.0.1:$port"
    if [ "$backend" = postgres ]; then
        start "$backend" "$port" "$url" --database "$(new_db)"
    else
        start "$backend" "$port" "$url"
    fi
    pid_var="PID_$backend"; pid=${!pid_var}
    export CASTELLAN_SERVER="$url" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
    created=$("$BIN" client create bench --audience orders --scope read --json)
    export BENCH_CLIENT_ID=$(echo "$created" | json '["client_id"]')
    export BENCH_CLIENT_SECRET=$(echo "$created" | json '["client_secret"]')
    export BENCH_TOKEN=$(curl -s -u "$BENCH_CLIENT_ID:$BENCH_CLIENT_SECRET" -d grant_type=client_credentials \
        -d scope=read "$url/oauth2/token" | json '["access_token"]')
    measure "issuance ($backend)" "$pid" "$url" bench/issuance.lua /oauth2/token
    measure "introspection ($backend)" "$pid" "$url" bench/introspect.lua /oauth2/introspect
    kill "$pid"
done

echo "== cross-node revocation: written on node A, refused at a gate following node B ($REVOCATIONS runs)"
db=$(new_db)
port_b=$(free_port)
issuer="http://127.0.0.1:$port_b"
start nodeb "$port_b" "$issuer" --database "$db"
start nodea "$(free_port)" "$issuer" --database "$db"
url_a=$(awk '{print $3}' "$WORK/nodea.out")
"$BIN" gate --listen 127.0.0.1:0 --authority "$issuer" --audience orders --forward-auth \
    >"$WORK/gate.out" 2>"$WORK/gate.log" &
PIDS+=($!)
until [ -s "$WORK/gate.out" ]; do sleep 0.01; done
gate=$(awk '{print $3}' "$WORK/gate.out")
export CASTELLAN_SERVER="$url_a" CASTELLAN_CLIENT_ID=bench-admin CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET"
created=$("$BIN" client create revoker --audience orders --json)
python3 - "$url_a" "$issuer" "$gate" "$REVOCATIONS" \
    "$(echo "$created" | json '["client_id"]')" "$(echo "$created" | json '["client_secret"]')" <<'PY'
import base64, json, statistics, sys, time, requests
node_a, issuer, gate, runs, cid, secret = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
s = requests.Session()
admin = s.post(f"{node_a}/oauth2/token", auth=("bench-admin", "bench-admin-secret-0123456789abcdefghijkl"),
               data={"grant_type": "client_credentials", "scope": "castellan.admin", "audience": issuer}).json()["access_token"]
deadline = time.time() + 10
while s.get(gate).status_code == 503 and time.time() < deadline:
    time.sleep(0.05)
lat = []
for _ in range(runs):
    tok = s.post(f"{node_a}/oauth2/token", auth=(cid, secret),
                 data={"grant_type": "client_credentials", "audience": "orders"}).json()["access_token"]
    assert s.get(gate, headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    sid = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))["sid"]
    r = s.post(f"{node_a}/admin/v1/sessions/{sid}/revoke", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code < 300, r.text
    acked = time.perf_counter()
    while s.get(gate, headers={"Authorization": f"Bearer {tok}"}).status_code != 401:
        if time.perf_counter() - acked > 5:
            raise SystemExit("not refused within 5 s")
    lat.append((time.perf_counter() - acked) * 1000)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"acknowledged on A -> refused at the gate following B: p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, "
      f"p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms over {runs} revocations (each poll is one gate round trip)")
PY
