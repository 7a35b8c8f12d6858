#!/bin/bash
# Serving throughput and latency on gowalla (29,858 users, 40,981 items, dim 64), side by side in
# one run: gnnrec top-20 and score requests, nginx serving a static JSON file of the size of a
# top-20 answer (this machine's HTTP ceiling), and the FastAPI + numpy peer
# (../shared/peers/topk_fastapi.py). wrk runs on the same 2 cores. Then gnnrec top-20 at about
# half its measured peak rate, for p50/p99 latency under a steady load.
# Writes bench/out/serve.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/serve_bench.sh
# Env: DATA, PEERS, DURATION (10 s), CONNS (64), EPOCHS (1: throughput does not depend on them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
EPOCHS=${EPOCHS:-1}
bin=$here/build/gnnrec
out=$here/bench/out
export GNNREC_LUA_DIR=$here/bench/lua
mkdir -p "$out"
[ -x "$bin" ] || { echo "build gnnrec first" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

db=$out/gowalla.sqlite
if [ ! -s "$db" ]; then
    echo "training a gowalla model ($EPOCHS epoch(s)) into $db" >&2
    "$bin" train --train "$DATA/gowalla/train.txt" --format lgn --epochs "$EPOCHS" --quiet \
        --db "$db" --name gowalla >/dev/null
fi

# gnnrec
gport=$(free_port)
"$bin" serve --db "$db" --listen "127.0.0.1:$gport" 2>"$out/serve.log" &
pids+=($!)
wait_http "http://127.0.0.1:$gport/readyz"
curl -s "http://127.0.0.1:$gport/v1/users/1/recommendations?k=20" >"$out/top20.json"
size=$(stat -c %s "$out/top20.json")

# nginx with a static file of the same size
nport=$(free_port)
mkdir -p "$out/nginx/html" "$out/nginx/logs"
python3 -c "import sys; sys.stdout.write('{\"pad\":\"' + 'x' * ($size - 10) + '\"}')" >"$out/nginx/html/top20.json"
cat >"$out/nginx/nginx.conf" <<CONF
worker_processes 2;
error_log $out/nginx/logs/error.log;
pid $out/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nport; root $out/nginx/html; default_type application/json; }
}
CONF
/usr/sbin/nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$nport/top20.json"

# the FastAPI peer (skipped when its packages are missing)
fport=$(free_port)
fastapi=0
if /usr/bin/python3 -c 'import fastapi, uvicorn' 2>/dev/null; then
    (cd "$PEERS" && exec /usr/bin/python3 topk_fastapi.py --port "$fport") 2>"$out/fastapi.log" &
    pids+=($!)
    wait_http "http://127.0.0.1:$fport/v1/users/1/recommendations?k=20" && fastapi=1
fi

run() { # name url script [delay_ms]
    GNNREC_DELAY_MS=${4:-0} wrk -t2 -c"$CONNS" -d"${DURATION:-10}s" --latency -s "$GNNREC_LUA_DIR/$3" "$2" \
        >"$out/wrk_$1.txt" 2>&1 || true
    grep '^RESULT' "$out/wrk_$1.txt" | tail -1 | sed "s/^RESULT/$1/"
}

results=()
results+=("$(run gnnrec_top20 "http://127.0.0.1:$gport" users.lua)")
results+=("$(run gnnrec_score "http://127.0.0.1:$gport" score.lua)")
results+=("$(run nginx_static "http://127.0.0.1:$nport/top20.json" static.lua)")
[ "$fastapi" = 1 ] && results+=("$(run fastapi_top20 "http://127.0.0.1:$fport" users.lua)")
# Half the measured top-20 rate: each connection waits between requests so that CONNS connections
# together ask for about rps/2 (a closed loop with think time; wrk2 is not packaged in Debian). A
# short calibration run measures the per-request time on top of the wait, and the wait is set so
# that wait + that time gives the target rate.
rps_of() { echo "$1" | sed 's/.*rps=\([0-9.]*\).*/\1/'; }
peak=$(rps_of "${results[0]}")
delay0=$(python3 -c "print(max(1, int(1000 * $CONNS / ($peak / 2))))")
calib=$(DURATION=3 run gnnrec_top20_calibrate "http://127.0.0.1:$gport" users.lua "$delay0")
delay=$(python3 -c "
c, target, d0, r = $CONNS, $peak / 2, $delay0, $(rps_of "$calib")
extra = 1000 * c / r - d0          # ms per request beyond the wait
print(max(1, round(1000 * c / target - extra)))")
results+=("$(run gnnrec_top20_half "http://127.0.0.1:$gport" users.lua "$delay")")
metrics=$(curl -s "http://127.0.0.1:$gport/metrics" | grep -E '^gnnrec_batch_queries_(sum|count)' | awk '{print $2}' | paste -sd' ')

python3 - "$out/serve.md" "$size" "$metrics" "${results[@]}" <<'PY'
import sys
path, size, metrics, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
def parse(r):
    name, *kv = r.split()
    d = dict(x.split("=") for x in kv)
    return name, {k: float(v) for k, v in d.items()}
rows = [parse(r) for r in rows if r.strip()]
label = {"gnnrec_top20": "gnnrec GET top-20", "gnnrec_score": "gnnrec POST score (20 items)",
         "nginx_static": f"nginx static file ({size} bytes)", "fastapi_top20": "FastAPI + numpy GET top-20",
         "gnnrec_top20_half": "gnnrec GET top-20, paced to about half its peak rate"}
base = dict(rows).get("nginx_static", {}).get("rps")
lines = ["| what | requests/s | p50 ms | p99 ms | errors | vs nginx |", "|---|---:|---:|---:|---:|---:|"]
for name, d in rows:
    ratio = f"{d['rps'] / base:.2f}" if base else "-"
    lines.append(f"| {label.get(name, name)} | {d['rps']:.0f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | {int(d['errors'])} | {ratio} |")
if len(metrics) == 2 and float(metrics[1]) > 0:
    lines.append("")
    lines.append(f"Mean top-K batch over the run: {float(metrics[0]) / float(metrics[1]):.1f} queries.")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
