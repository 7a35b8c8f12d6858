#!/bin/bash
# Every model kind (and each GraphSAGE aggregator) on the same splits with a stated epoch budget,
# each kind's own defaults (dim 64, BPR with one negative; lr, decay, batch, layers from its table),
# evaluated once at the end with the all-ranking protocol (recall@20, ndcg@20). Also: mean seconds
# per training epoch (evaluation excluded, from the run's --report), the parameter count, and peak
# RSS (GNU time). movielens-100k is u.data with 20% of each user's ratings held out
# (--split random:0.2, every rating an interaction); lastfm and gowalla are the LightGCN splits.
# The published gowalla recall@20 (NGCF and LightGCN papers) stands beside ours where there is one.
# Writes bench/out/models_quality.md.
#
#   cmake -S . -B build && cmake --build build -j2 && bench/models_quality.sh
# Env: DATA, KINDS (below; graphsage:AGG picks an aggregator), DATASETS ("movielens-100k lastfm
#      gowalla"), EPOCHS_<dataset with - as _> (movielens_100k 50, lastfm 100, gowalla 20),
#      THREADS (2), SEED (2020).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
KINDS=${KINDS:-mf lightgcn gcn ngcf gat graphsage:mean graphsage:max graphsage:pool graphsage:lstm}
DATASETS=${DATASETS:-movielens-100k lastfm gowalla}
THREADS=${THREADS:-2}
SEED=${SEED:-2020}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "build gnnrec first (cmake --build build)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (bench/deps.sh)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # no spinning threads on a shared machine

rows=()
for ds in $DATASETS; do
    var=EPOCHS_${ds//-/_}
    case $ds in
    movielens-100k) def=50 data=(--train "$DATA/$ds/u.data" --split random:0.2) ;;
    gowalla) def=20 data=(--train "$DATA/$ds/train.txt" --test "$DATA/$ds/test.txt" --format lgn) ;;
    *) def=100 data=(--train "$DATA/$ds/train.txt" --test "$DATA/$ds/test.txt" --format lgn) ;;
    esac
    epochs=${!var:-$def}
    for spec in $KINDS; do
        kind=${spec%%:*}
        extra=()
        [ "$spec" != "$kind" ] && extra=(--aggregator "${spec#*:}")
        report=$out/models_${ds}_${spec/:/_}.json
        /usr/bin/time -v -o "$report.time" "$bin" train --model "$kind" "${extra[@]}" "${data[@]}" \
            --epochs "$epochs" --eval-every 0 --threads "$THREADS" --seed "$SEED" --quiet \
            --report "$report" >/dev/null
        rows+=("$ds $spec $epochs $report")
    done
done

python3 - "$out/models_quality.md" "$THREADS" "${rows[@]}" <<'PY'
import json, re, sys
path, threads, rows = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
# recall@20 on gowalla as published: NGCF paper (MF, GC-MC-style GCN, GAT, NGCF), LightGCN paper.
published = {"mf": 0.1291, "gcn": 0.1393, "gat": 0.1501, "ngcf": 0.1570, "lightgcn": 0.1830}
lines = [f"Each kind's defaults, {threads} threads, evaluated at the end.", "",
         "| dataset | kind | epochs | recall@20 | ndcg@20 | published recall@20 | s/epoch | parameters | peak RSS |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for ds, spec, epochs, report in rows:
    r = json.load(open(report))
    f = r["final"]
    train_s = [e["train_s"] for e in r["epochs"]]
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(report + ".time").read())
    pub = published.get(spec) if ds == "gowalla" else None
    lines.append(f"| {ds} | {spec} | {epochs} | {f['recall@20']:.4f} | {f['ndcg@20']:.4f} | "
                 f"{pub if pub else '-'} | {sum(train_s) / len(train_s):.2f} | "
                 f"{r['parameters']:,} | {int(rss.group(1)) / 1024:.0f} MiB |")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
