#!/bin/bash
# Seconds per LightGCN training batch on gowalla (2048 triples, full 3-layer propagation,
# forward + backward + Adam), gnnrec vs the PyTorch reference, 1 and 2 threads, side by side in
# one run, with peak memory (GNU time). Writes bench/out/lightgcn_speed.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/lightgcn_speed.sh
# Env: DATA (default ../shared/data), PEERS (../shared/peers), BATCHES (40), THREADS ("1 2").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
BATCHES=${BATCHES:-40}
THREADS=${THREADS:-1 2}
bin=$here/build/gnnrec
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "build gnnrec first (cmake --build build)" >&2; exit 1; }
[ -f "$DATA/gowalla/train.txt" ] || { echo "no $DATA/gowalla" >&2; exit 1; }

rows=()
for t in $THREADS; do
    # gnnrec: one epoch cut at $BATCHES batches; no test file, so no evaluation is timed.
    /usr/bin/time -v -o "$out/gnnrec_t$t.time" "$bin" train --train "$DATA/gowalla/train.txt" \
        --format lgn --epochs 1 --max-batches "$BATCHES" --threads "$t" --quiet \
        --report "$out/gnnrec_t$t.json" >/dev/null
    g_s=$(python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['epochs'][0]; print(e['train_s']/e['batches'])" "$out/gnnrec_t$t.json")
    g_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/gnnrec_t$t.time")
    # the reference, same data, batches and threads
    /usr/bin/time -v -o "$out/torch_t$t.time" /usr/bin/python3 "$PEERS/lightgcn_torch.py" \
        --data "$DATA/gowalla" --epochs 1 --max-batches "$BATCHES" --eval-every 0 --threads "$t" \
        > "$out/torch_t$t.jsonl"
    p_s=$(python3 -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; print([x for x in l if 'epoch' in x][0]['s_per_batch'])" "$out/torch_t$t.jsonl")
    p_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/torch_t$t.time")
    rows+=("$t $g_s $p_s $g_mem $p_mem")
done

python3 - "$out/lightgcn_speed.md" "${rows[@]}" <<'PY'
import sys
path, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
best_g = min(float(r[1]) for r in rows)
best_p = min(float(r[2]) for r in rows)
lines = ["| threads | gnnrec s/batch | PyTorch s/batch | speed-up | gnnrec peak RSS | PyTorch peak RSS |",
         "|---:|---:|---:|---:|---:|---:|"]
for t, g, p, gm, pm in rows:
    lines.append(f"| {t} | {float(g):.4f} | {float(p):.4f} | {float(p)/float(g):.1f}x | "
                 f"{int(gm)/1024:.0f} MiB | {int(pm)/1024:.0f} MiB |")
lines.append("")
lines.append(f"Best against best: gnnrec {best_g:.4f} s/batch, PyTorch {best_p:.4f} s/batch: "
             f"{best_p/best_g:.1f}x.")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
