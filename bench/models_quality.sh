#!/bin/bash
# Quality and training time of every compared model kind on the same split, same epochs, same
# common settings (dim 64, batch 2048, BPR, one negative, each kind's default lr and decay), one
# run per (dataset, kind), evaluated once at the end with the all-ranking protocol (recall@20,
# ndcg@20). Seconds per epoch are the training epochs' mean wall time (evaluation excluded), from
# the run's --report. Writes bench/out/models_quality.md.
#
#   cmake -S . -B build && cmake --build build -j2 && bench/models_quality.sh
# Env: DATA, KINDS ("mf lightgcn"), DATASETS ("lastfm gowalla"), EPOCHS_lastfm (100),
#      EPOCHS_gowalla (20), THREADS (2), SEED (2020).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
KINDS=${KINDS:-mf lightgcn}
DATASETS=${DATASETS:-lastfm gowalla}
THREADS=${THREADS:-2}
SEED=${SEED:-2020}
bin=$here/build/gnnrec
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "build gnnrec first (cmake --build build)" >&2; exit 1; }

rows=()
for ds in $DATASETS; do
    var=EPOCHS_$ds
    epochs=${!var:-$([ "$ds" = gowalla ] && echo 20 || echo 100)}
    for kind in $KINDS; do
        report=$out/models_${ds}_${kind}.json
        "$bin" train --model "$kind" --train "$DATA/$ds/train.txt" --test "$DATA/$ds/test.txt" \
            --format lgn --epochs "$epochs" --eval-every 0 --threads "$THREADS" --seed "$SEED" \
            --quiet --report "$report" >/dev/null
        rows+=("$ds $kind $epochs $report")
    done
done

python3 - "$out/models_quality.md" "$THREADS" "${rows[@]}" <<'PY'
import json, sys
path, threads, rows = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
lines = [f"Same split, same epochs, each kind's defaults, {threads} threads, evaluated at the end.", "",
         "| dataset | kind | epochs | recall@20 | ndcg@20 | s/epoch |",
         "|---|---|---:|---:|---:|---:|"]
for ds, kind, epochs, report in rows:
    r = json.load(open(report))
    f = r["final"]
    train_s = [e["train_s"] for e in r["epochs"]]
    lines.append(f"| {ds} | {kind} | {epochs} | {f['recall@20']:.4f} | {f['ndcg@20']:.4f} | "
                 f"{sum(train_s) / len(train_s):.2f} |")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
