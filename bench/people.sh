#!/usr/bin/env bash
# Load script: people signing in (authorization code + PKCE through the login
# page, argon2id at the configured parameters) and refresh-token rotation,
# next to the raw argon2id verify rate of the same core. Loopback only;
# bounded in time.
#
#   bash bench/people.sh [DURATION_SECONDS] [SIGNIN_CONCURRENCY] [REFRESH_CONCURRENCY] [ROUNDS]
#
# The authority runs pinned to core 0 and the load generator
# (crates/castellan-testkit/examples/people_load.rs) to core 1, so "per core"
# is the authority's rate on one core; its CPU time over each measured window
# is read from /proc as well. The argon2id bench runs pinned to core 0 first,
# while the authority is not yet started.
#
# The per-source sign-in limit (signin.per_source_per_minute, 600 by default)
# would cap one load generator at 10 sign-ins a second, so this run raises it
# to 1,000,000 in its config file. The first authority otherwise runs the
# defaults (argon2id m=19456 KiB, t=2, p=1; max_concurrent_hashes = 4); a
# second one, side by side in the same run, differs only in
# max_concurrent_hashes = 1 (one hash per core it is given). The sign-in runs
# alternate between the two for ROUNDS rounds, so both see the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
SIGNIN_C="${2:-8}"
REFRESH_C="${3:-32}"
ROUNDS="${4:-2}"
WARMUP=3
USERS=$(( SIGNIN_C > REFRESH_C ? SIGNIN_C : REFRESH_C ))
PASSWORD="correct horse battery staple"
REDIRECT=http://127.0.0.1:9/cb
command -v taskset >/dev/null || { echo "taskset is required (util-linux)" >&2; exit 2; }

cargo build --release -q -p castellan-cli
cargo build --release -q -p castellan-testkit --example people_load
cargo bench -q -p castellan-authority --bench passwords --no-run
BIN=target/release/castellan
GEN=target/release/examples/people_load
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== argon2id verify, one core (taskset -c 0): interleaved pass, then criterion medians =="
taskset -c 0 cargo bench -q -p castellan-authority --bench passwords -- \
    --warm-up-time 1 --measurement-time 5 2>&1 | grep -E '^interleaved/' || true
for b in raw_verify raw_verify_preallocated raw_verify_4_threads passwords_verify; do
    python3 - "$b" <<'EOF'
import json, sys
b = sys.argv[1]
e = json.load(open(f"target/criterion/argon2id/{b}/new/estimates.json"))
# raw_verify_4_threads does four verifies an iteration; per verify:
ms = e["median"]["point_estimate"] / 1e6 / (4 if b.endswith("4_threads") else 1)
print(f"criterion/{b}: {ms:.2f} ms per verify ({1000 / ms:.1f}/s)")
EOF
done

export CASTELLAN_BOOTSTRAP_ADMIN_ID=bench-admin
export CASTELLAN_BOOTSTRAP_ADMIN_SECRET=bench-admin-secret-0123456789abcdefghijkl
# start_server NAME EXTRA_SIGNIN_TOML: a fresh authority on core 0 with its
# own data dir, a public client (admin CLI) and $USERS people (admin API,
# POST /admin/v1/users). Sets PID, URL, CLIENT_ID.
start_server() {
    mkdir -p "$WORK/$1"
    printf '[signin]\n# Raised for the benchmark only: one load generator is one source address.\nper_source_per_minute = 1000000\n%s\n' \
        "$2" >"$WORK/$1/castellan.toml"
    taskset -c 0 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$1/data" --config "$WORK/$1/castellan.toml" \
        --log-format json >"$WORK/$1/out" 2>"$WORK/$1/log" &
    PID=$!
    until [ -s "$WORK/$1/out" ]; do sleep 0.01; done
    URL=$(awk '{print $3}' "$WORK/$1/out")
    ADMIN_TOKEN=$(curl -sf -u "bench-admin:$CASTELLAN_BOOTSTRAP_ADMIN_SECRET" \
        -d grant_type=client_credentials -d scope=castellan.admin --data-urlencode "audience=$URL" \
        "$URL/oauth2/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    CLIENT_ID=$(CASTELLAN_SERVER="$URL" CASTELLAN_CLIENT_ID=bench-admin \
        CASTELLAN_CLIENT_SECRET="$CASTELLAN_BOOTSTRAP_ADMIN_SECRET" \
        "$BIN" client create bench-web --public --redirect-uri "$REDIRECT" --audience bench --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
    for i in $(seq 0 $(( USERS - 1 ))); do
        admin_post /users "{\"username\":\"bench-user-$i\",\"password\":\"$PASSWORD\"}" >/dev/null
    done
    echo "authority $1: $URL (pid $PID, taskset -c 0), public client $CLIENT_ID, $USERS people;" \
        "rss $(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$PID/status) MiB after setup"
}
admin_post() {
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "$2" "$URL/admin/v1$1"
}
run() { # run MODE CONCURRENCY LABEL: one measured run, its JSON kept in $WORK/results/LABEL.json
    mkdir -p "$WORK/results"
    taskset -c 1 "$GEN" "$1" --url "$URL" --client-id "$CLIENT_ID" --redirect-uri "$REDIRECT" \
        --user-prefix bench-user- --password "$PASSWORD" --concurrency "$2" \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$PID" --clk-tck "$(getconf CLK_TCK)" |
        tee "$WORK/results/$3.json"
}
declare -A PIDS URLS CLIENTS
use() { PID=${PIDS[$1]}; URL=${URLS[$1]}; CLIENT_ID=${CLIENTS[$1]}; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Both authorities sit on core 0; only the one under load does any work.
start_server default ""
PIDS[default]=$PID URLS[default]=$URL CLIENTS[default]=$CLIENT_ID
start_server hashes1 "max_concurrent_hashes = 1"
PIDS[hashes1]=$PID URLS[hashes1]=$URL CLIENTS[hashes1]=$CLIENT_ID
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT

# Sign-in, side by side: the defaults (max_concurrent_hashes = 4) and one hash
# at a time (as many as the cores the authority has), alternating.
for round in $(seq 1 "$ROUNDS"); do
    for cfg in default hashes1; do
        use "$cfg"
        echo "== sign-in [$cfg, round $round]: authorize -> login (argon2id) -> code exchange," \
            "c=$SIGNIN_C, ${DURATION}s after ${WARMUP}s warm-up =="
        run signin "$SIGNIN_C" "signin-$cfg-$round"
    done
done
use default
echo "== sign-in [default], one at a time (c=1): one person on an idle authority =="
run signin 1 signin-default-c1
echo "== refresh [default]: rotating chains, c=$REFRESH_C =="
run refresh "$REFRESH_C" refresh-default
echo "== refresh [default], one chain (c=1) =="
run refresh 1 refresh-default-c1
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== summary =="
python3 - "$WORK/results" <<'EOF'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    d = json.load(open(path))
    n = "signins" if d["mode"] == "signin" else "refreshes"
    lat = d["signin_latency" if d["mode"] == "signin" else "refresh_latency"]
    extra = ""
    if d["mode"] == "signin":
        lp = d["login_post_latency"]
        extra = f"  login POST p50/p99 {lp['p50_ms']}/{lp['p99_ms']} ms"
    print(f"{os.path.basename(path)[:-5]:20} c={d['concurrency']:<3} {d[n + '_per_s']:8.1f}/s"
          f" {d[n + '_per_server_cpu_s'] or 0:8.1f}/server-cpu-s  p50/p99 {lat['p50_ms']}/{lat['p99_ms']} ms"
          f"{extra}  errors {d['errors']}  rss {d['server_rss_mib_at_end']} MiB")
EOF
