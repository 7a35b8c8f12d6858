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
# the references --eval-every 0). The whole set runs REPS times, the two sides alternating, and
# each side's time is its fastest round: on a shared machine a neighbour's burst slows whichever
# side it meets, and the fastest round is the one it disturbed least (the table gives the slowest
# too). Writes bench/out/models_speed.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/models_speed.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), PEERS (../shared/peers),
#      KINDS ("gcn ngcf lightgcn gat graphsage"), BATCHES (20), THREADS ("1 2"), REPS (3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
KINDS=${KINDS:-gcn ngcf lightgcn gat graphsage}
BATCHES=${BATCHES:-20}
THREADS=${THREADS:-1 2}
REPS=${REPS:-3}
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
for rep in $(seq "$REPS"); do
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
done

python3 "$here/bench/speed_table.py" "$out/models_speed.md" \
    "gowalla, $BATCHES training batches of each kind's defaults, seconds per batch: each side's fastest of $REPS alternating rounds (its slowest in brackets)." \
    "${rows[@]}"
