#!/bin/bash
# Seconds per training batch of the knowledge-aware kinds on kgcn-music, gnnrec vs its PyTorch
# reference (bench/kgcn_torch.py, bench/kgat_torch.py), 1 and 2 threads each, side by side in one
# run, with peak memory (GNU time). Both sides train EPOCHS whole epochs of the kind's defaults on
# the same split (bench/kg_split.py) without evaluating, and a batch's time is an epoch's training
# time over its batches: for kgcn its BCE batches (128 positives, one negative each); for kgat
# its CF and KG batches together (17 of 1,024 interactions, 32 of 2,048 graph edges), the epoch's
# attention update included, on both sides. Each side's figure is its fastest epoch of REPS
# alternating rounds (the table gives its slowest round's fastest epoch too): on a shared machine
# a neighbour's burst slows whichever side it meets. Writes bench/out/kg_speed.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/kg_speed.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), KINDS ("kgcn kgat"),
#      EPOCHS (3), THREADS ("1 2"), REPS (3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
KINDS=${KINDS:-kgcn kgat}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-1 2}
REPS=${REPS:-3}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
[ -f "$DATA/kgcn-music/kg_final.txt" ] || { echo "no $DATA/kgcn-music" >&2; exit 1; }
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
/usr/bin/python3 "$here/bench/kg_split.py" --data "$DATA/kgcn-music" --out "$split" >/dev/null
export OMP_WAIT_POLICY=passive

rows=()
for rep in $(seq "$REPS"); do
    for kind in $KINDS; do
        for t in $THREADS; do
            tag=kgspeed_${kind}_t$t
            /usr/bin/time -v -o "$out/${tag}_gnnrec.time" "$bin" train --model "$kind" \
                --train "$split/train.txt" --kg "$split/kg_final.txt" --epochs "$EPOCHS" \
                --threads "$t" --quiet --report "$out/${tag}_gnnrec.json" >/dev/null
            g_s=$(python3 -c "import json,sys; print(min(e['train_s']/e['batches'] for e in json.load(open(sys.argv[1]))['epochs']))" "$out/${tag}_gnnrec.json")
            g_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/${tag}_gnnrec.time")
            /usr/bin/time -v -o "$out/${tag}_torch.time" /usr/bin/python3 "$here/bench/${kind}_torch.py" \
                --data "$split" --epochs "$EPOCHS" --eval-every 0 --threads "$t" >"$out/${tag}_torch.jsonl"
            p_s=$(python3 -c "
import json, sys
es = [e for e in map(json.loads, open(sys.argv[1])) if 'epoch' in e]
print(min(e['train_s'] / e.get('batches', e.get('cf_batches', 0) + e.get('kg_batches', 0)) for e in es))" "$out/${tag}_torch.jsonl")
            p_mem=$(awk -F': ' '/Maximum resident/{print $2}' "$out/${tag}_torch.time")
            rows+=("$kind $t $g_s $p_s $g_mem $p_mem")
        done
    done
done

python3 "$here/bench/speed_table.py" "$out/kg_speed.md" \
    "kgcn-music (bench/kg_split.py), $EPOCHS epochs of each kind's defaults, seconds per training batch (an epoch's training time over its batches): each side's fastest of $REPS alternating rounds (its slowest in brackets)." \
    "${rows[@]}"
