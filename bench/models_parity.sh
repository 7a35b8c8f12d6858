#!/bin/bash
# Quality parity on lastfm for the kinds with layers: gnnrec's gcn, ngcf, gat and graphsage
# against their PyTorch references (bench/<kind>_torch.py), each kind's defaults on both sides
# (gcn: dim 64, 2 layers, dropout 0.1, lr 1e-3, decay 1e-4, batch 2048; ngcf: dim 64, 3 layers,
# message and node dropout 0.1, lr 1e-4, decay 1e-5, batch 1024; gat: dim 64, 2 layers of 4
# heads, dropout and attention dropout 0.1, lr 1e-3, decay 1e-4, batch 2048; graphsage: dim 64,
# 2 layers, fan-outs 25,10, lr 1e-3, decay 1e-4, batch 2048, the aggregator named in the kind as
# graphsage:AGG), the same epoch budget, several seeds, THREADS threads, both evaluated once at
# the end (all-ranking recall@20 and ndcg@20), with each side's mean training loss (BPR, the
# regulariser excluded) over the last epoch. The seeds drive different random streams in the two
# programs, so the comparison is of means, not pairs.
# Writes bench/out/models_parity.md and prints it.
#
#   cmake -S . -B build && cmake --build build -j2 && bench/models_parity.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA, PEERS, KINDS ("gcn ngcf gat graphsage:mean
#      graphsage:max graphsage:pool"; graphsage:lstm too on request: an epoch with its
#      evaluation takes either side about 6 s at one thread), EPOCHS_<kind> with : as _ (gcn 40,
#      ngcf 20, gat 10, graphsage_mean 30, graphsage_max 10, graphsage_pool 10, graphsage_lstm 10;
#      an EPOCHS_graphsage sets every aggregator's), THREADS (1), SEEDS ("2020 1 2"). One thread by
#      default: quality does not depend on it, and on the shared 2 cores a busy neighbour makes
#      two-thread runs of either program many times slower (the default budget took about 24 minutes
#      at one thread on the loaded shared machine, a third of it gat's).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
PEERS=${PEERS:-$here/../shared/peers}
KINDS=${KINDS:-gcn ngcf gat graphsage:mean graphsage:max graphsage:pool}
THREADS=${THREADS:-1}
SEEDS=${SEEDS:-2020 1 2}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
export PEERS
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # no spinning threads on a shared machine

rows=()
for spec in $KINDS; do
    kind=${spec%%:*}
    extra=()
    [ "$spec" != "$kind" ] && extra=(--aggregator "${spec#*:}")
    case $spec in
    gcn) def=40 ;; ngcf) def=20 ;; gat) def=10 ;; graphsage:mean) def=30 ;;
    *) def=10 ;;
    esac
    var=EPOCHS_${spec//:/_}
    kvar=EPOCHS_$kind
    epochs=${!var:-${!kvar:-$def}}
    for seed in $SEEDS; do
        tag=parity_${spec/:/_}_$seed
        t0=$(date +%s.%N)
        "$bin" train --model "$kind" "${extra[@]}" --train "$DATA/lastfm/train.txt" \
            --test "$DATA/lastfm/test.txt" --format lgn --epochs "$epochs" --eval-every 0 \
            --threads "$THREADS" --seed "$seed" --quiet --report "$out/${tag}_gnnrec.json" >/dev/null
        t1=$(date +%s.%N)
        /usr/bin/python3 "$here/bench/${kind}_torch.py" "${extra[@]}" --data "$DATA/lastfm" \
            --epochs "$epochs" --eval-every "$epochs" --threads "$THREADS" --seed "$seed" \
            > "$out/${tag}_torch.jsonl"
        t2=$(date +%s.%N)
        rows+=("$spec $epochs $seed $(python3 - "$out/${tag}_gnnrec.json" "$out/${tag}_torch.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
g = r["final"]
t = [json.loads(x) for x in open(sys.argv[2])]
t = [x for x in t if "recall@20" in x][-1]
print(g["recall@20"], g["ndcg@20"], t["recall@20"], t["ndcg@20"], r["epochs"][-1]["loss"], t["loss"])
PY
) $(python3 -c "print($t1-$t0, $t2-$t1)")")
    done
done

python3 - "$out/models_parity.md" "$THREADS" "${rows[@]}" <<'PY'
import sys
path, threads, rows = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
lines = [f"lastfm, each kind's defaults on both sides, {threads} threads, evaluated at the end.", "",
         "| kind | epochs | seed | gnnrec recall@20 | PyTorch recall@20 | gnnrec ndcg@20 | PyTorch ndcg@20 | gnnrec loss | PyTorch loss | gnnrec wall s | PyTorch wall s |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for kind in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == kind]
    for k, e, s, gr, gn, tr, tn, gl, tl, gw, tw in mine:
        lines.append(f"| {k} | {e} | {s} | {float(gr):.4f} | {float(tr):.4f} | {float(gn):.4f} | "
                     f"{float(tn):.4f} | {float(gl):.4f} | {float(tl):.4f} | {float(gw):.1f} | "
                     f"{float(tw):.1f} |")
    if len(mine) > 1:
        m = lambda i: sum(float(r[i]) for r in mine) / len(mine)
        lines.append(f"| {kind} | {mine[0][1]} | mean | {m(3):.4f} | {m(5):.4f} | {m(4):.4f} | "
                     f"{m(6):.4f} | {m(7):.4f} | {m(8):.4f} | {m(9):.1f} | {m(10):.1f} |")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
