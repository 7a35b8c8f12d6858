#!/bin/bash
# Seconds per training batch on gowalla for the kinds with layers (gcn, ngcf, gat, graphsage) and
# lightgcn for reference, gnnrec vs its PyTorch reference, 1 and 2 threads each, side by side in
# one run, with peak memory (GNU time). Each kind runs its own defaults on both sides (gcn: 2
# layers, batch 2048; ngcf: 3 layers, batch 1024, message and node dropout; lightgcn: 3 layers,
# batch 2048; gat: 2 layers of 4 heads, dropout and attention dropout, batch 2048; graphsage: 2
# layers, fan-outs 25,10, mean, batch 2048, or graphsage:AGG for another aggregator), BATCHES
# batches of one epoch. A reference runs the whole graph forward and backward plus Adam per batch,
# as the papers' public code does; gnnrec computes each layer at the batch's receptive field only
# (docs/models.md, "Receptive fields": the same loss and gradient) plus Adam; graphsage, on both
# sides, its sampled subgraph's forward and backward (the sampling included) plus Adam over every
# parameter. Neither side evaluates (gnnrec gets no test file,
# the references --eval-every 0). Writes bench/out/models_speed.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/models_speed.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), PEERS (../shared/peers),
#      KINDS ("gcn ngcf lightgcn gat graphsage"), BATCHES (20), THREADS ("1 2").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
KINDS=${KINDS:-gcn ngcf lightgcn gat graphsage}
BATCHES=${BATCHES:-20}
THREADS=${THREADS:-1 2}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
[ -f "$DATA/gowalla/train.txt" ] || { echo "no $DATA/gowalla" >&2; exit 1; }
export PEERS

reference() {
    case $1 in
    lightgcn) echo "$PEERS/lightgcn_torch.py" ;;
    *) echo "$here/bench/$1_torch.py" ;;
    esac
}

rows=()
for spec in $KINDS; do
    kind=${spec%%:*}
    extra=()
    [ "$spec" != "$kind" ] && extra=(--aggregator "${spec#*:}")
    ref=$(reference "$kind")
    [ -f "$ref" ] || { echo "no reference for $kind at $ref" >&2; exit 1; }
    for t in $THREADS; do
        tag=speed_${spec/:/_}_t$t
        # gnnrec: one epoch cut at $BATCHES batches; train_s / batches from the report
        /usr/bin/time -v -o "$out/${tag}_gnnrec.time" "$bin" train --model "$kind" "${extra[@]}" \
            --train "$DATA/gowalla/train.txt" --format lgn --epochs 1 --max-batches "$BATCHES" \
            --threads "$t" --quiet --report "$out/${tag}_gnnrec.json" >/dev/null
        g_s=$(python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['epochs'][0]; print(e['train_s']/e['batches'])" "$out/${tag}_gnnrec.json")
        g_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/${tag}_gnnrec.time")
        # the reference, same data, kind defaults, batches and threads
        /usr/bin/time -v -o "$out/${tag}_torch.time" /usr/bin/python3 "$ref" "${extra[@]}" \
            --data "$DATA/gowalla" --epochs 1 --max-batches "$BATCHES" --eval-every 0 \
            --threads "$t" > "$out/${tag}_torch.jsonl"
        p_s=$(python3 -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; print([x for x in l if 'epoch' in x][0]['s_per_batch'])" "$out/${tag}_torch.jsonl")
        p_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/${tag}_torch.time")
        rows+=("$spec $t $g_s $p_s $g_mem $p_mem")
    done
done

python3 - "$out/models_speed.md" "$BATCHES" "${rows[@]}" <<'PY'
import sys
path, batches, rows = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
lines = [f"gowalla, {batches} training batches of each kind's defaults, seconds per batch.", "",
         "| kind | threads | gnnrec s/batch | PyTorch s/batch | speed-up | gnnrec peak RSS | PyTorch peak RSS |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for kind, t, g, p, gm, pm in rows:
    lines.append(f"| {kind} | {t} | {float(g):.4f} | {float(p):.4f} | {float(p)/float(g):.1f}x | "
                 f"{int(gm)/1024:.0f} MiB | {int(pm)/1024:.0f} MiB |")
lines.append("")
for kind in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == kind]
    bg = min(mine, key=lambda r: float(r[2]))
    bp = min(mine, key=lambda r: float(r[3]))
    lines.append(f"- {kind}, best against best: gnnrec {float(bg[2]):.4f} s/batch ({bg[1]} threads), "
                 f"PyTorch {float(bp[3]):.4f} s/batch ({bp[1]} threads): "
                 f"{float(bp[3])/float(bg[2]):.1f}x.")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
