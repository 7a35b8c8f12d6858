#!/bin/bash
# LightGCN quality on lastfm, gnnrec vs the PyTorch reference, same protocol and hyper-parameters
# (dim 64, 3 layers, lr 1e-3, decay 1e-4, batch 2048, EPOCHS epochs, seed 2020), both evaluated
# once at the end (recall@20, ndcg@20, all-ranking). Writes bench/out/lightgcn_quality.md.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/lightgcn_quality.sh
# Env: DATA, PEERS, EPOCHS (100), THREADS (2), SEEDS ("2020") — several seeds show the noise.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
EPOCHS=${EPOCHS:-100}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-2020}
bin=$here/build/gnnrec
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "build gnnrec first (cmake --build build)" >&2; exit 1; }

rows=()
for seed in $SEEDS; do
    t0=$(date +%s.%N)
    "$bin" train --train "$DATA/lastfm/train.txt" --test "$DATA/lastfm/test.txt" --format lgn \
        --epochs "$EPOCHS" --eval-every 0 --threads "$THREADS" --seed "$seed" --quiet \
        --report "$out/quality_gnnrec_$seed.json" >/dev/null
    t1=$(date +%s.%N)
    /usr/bin/python3 "$PEERS/lightgcn_torch.py" --data "$DATA/lastfm" --epochs "$EPOCHS" \
        --eval-every "$EPOCHS" --threads "$THREADS" --seed "$seed" > "$out/quality_torch_$seed.jsonl"
    t2=$(date +%s.%N)
    rows+=("$seed $(python3 - "$out/quality_gnnrec_$seed.json" "$out/quality_torch_$seed.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["final"]
t = [json.loads(x) for x in open(sys.argv[2])]
t = [x for x in t if "recall@20" in x][-1]
print(g["recall@20"], g["ndcg@20"], t["recall@20"], t["ndcg@20"])
PY
) $(python3 -c "print($t1-$t0, $t2-$t1)")")
done

python3 - "$out/lightgcn_quality.md" "$EPOCHS" "${rows[@]}" <<'PY'
import sys
path, epochs, rows = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
lines = [f"lastfm, {epochs} epochs, paper hyper-parameters, evaluated at the end.", "",
         "| seed | gnnrec recall@20 | PyTorch recall@20 | gnnrec ndcg@20 | PyTorch ndcg@20 | gnnrec wall s | PyTorch wall s |",
         "|---:|---:|---:|---:|---:|---:|---:|"]
for s, gr, gn, tr, tn, gw, tw in rows:
    lines.append(f"| {s} | {float(gr):.4f} | {float(tr):.4f} | {float(gn):.4f} | {float(tn):.4f} | {float(gw):.1f} | {float(tw):.1f} |")
n = len(rows)
if n > 1:
    m = lambda i: sum(float(r[i]) for r in rows) / n
    lines.append(f"| mean | {m(1):.4f} | {m(3):.4f} | {m(2):.4f} | {m(4):.4f} | {m(5):.1f} | {m(6):.1f} |")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
