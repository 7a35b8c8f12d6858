#!/bin/bash
# Quality of the knowledge-graph kinds on kgcn-music (the last.fm log and knowledge graph of the
# KGCN paper, ../shared/data/kgcn-music), one fixed per-user 80/20 split (bench/kg_split.py):
# lightgcn and mf without the graph, kgcn (sum and concat) and kgat with it, each in both
# protocols at once: top-K (recall@20, ndcg@20, all-ranking) and CTR (AUC and F1, every test pair
# against one sampled unseen item; docs/evaluation.md), and recall@20 over the cold users (at most
# 5 training items); the PyTorch references of kgcn and kgat on the same split beside gnnrec's;
# the KGCN paper's last.fm figures beside kgcn's (its own 6:2:2 split with fixed negatives, so
# comparable in kind, not to the digit); and transe's filtered link prediction on the graph alone.
# Writes bench/out/kg_quality.md and prints it.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/kg_quality.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), THREADS (2),
#      EPOCHS_lightgcn (300), EPOCHS_mf (100), EPOCHS_kgcn (10, the paper's), EPOCHS_kgat (50),
#      EPOCHS_transe (300), REFS (1: run the PyTorch references too; 0: skip them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
THREADS=${THREADS:-2}
REFS=${REFS:-1}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
[ -f "$DATA/kgcn-music/kg_final.txt" ] || { echo "no $DATA/kgcn-music" >&2; exit 1; }
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
/usr/bin/python3 "$here/bench/kg_split.py" --data "$DATA/kgcn-music" --out "$split"
export OMP_WAIT_POLICY=passive
epochs() { local v="EPOCHS_$1"; echo "${!v:-$2}"; }

runs=()
train() { # name kind epochs [flags...]
    local name=$1 kind=$2 ep=$3
    shift 3
    echo "gnnrec $name: $ep epochs" >&2
    "$bin" train --model "$kind" --train "$split/train.txt" --test "$split/test.txt" \
        --epochs "$ep" --eval-every 0 --threads "$THREADS" --quiet \
        --report "$out/kgq_$name.json" "$@" >/dev/null
    runs+=("$name gnnrec $out/kgq_$name.json")
}
kg=(--kg "$split/kg_final.txt")
train lightgcn lightgcn "$(epochs lightgcn 300)"
train mf mf "$(epochs mf 100)"
train kgcn-sum kgcn "$(epochs kgcn 10)" "${kg[@]}"
train kgcn-concat kgcn "$(epochs kgcn 10)" "${kg[@]}" --aggregator concat
train kgat kgat "$(epochs kgat 50)" "${kg[@]}"
echo "gnnrec transe: $(epochs transe 300) epochs" >&2
"$bin" train --model transe --kg "$DATA/kgcn-music/kg_final.txt" --epochs "$(epochs transe 300)" \
    --threads "$THREADS" --quiet --report "$out/kgq_transe.json" >/dev/null
if [ "$REFS" = 1 ]; then
    for spec in kgcn-sum:kgcn:sum kgat:kgat:; do
        IFS=: read -r name kind agg <<<"$spec"
        ep=$(epochs "$kind" "$([ "$kind" = kgcn ] && echo 10 || echo 50)")
        echo "PyTorch $name: $ep epochs" >&2
        /usr/bin/python3 "$here/bench/${kind}_torch.py" --data "$split" --epochs "$ep" \
            --eval-every "$ep" --threads "$THREADS" ${agg:+--aggregator "$agg"} >"$out/kgq_${name}_torch.jsonl"
        runs+=("$name PyTorch $out/kgq_${name}_torch.jsonl")
    done
fi

python3 - "$out/kg_quality.md" "$out/kgq_transe.json" "${runs[@]}" <<'PY'
import json, sys
path, transe = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
paper = {"kgcn-sum": (0.794, 0.719), "kgcn-concat": (0.796, 0.721)}
lines = ["kgcn-music, one per-user 80/20 split (bench/kg_split.py; 16,928 training and 4,245 test "
         "pairs, 161 cold users with at most 5 training items). Top-K: all-ranking over the "
         "3,846 items; CTR: every test pair against one sampled unseen item, F1 at score 0 "
         "(probability 0.5).", "",
         "| model | side | epochs | recall@20 | ndcg@20 | AUC | F1 | cold recall@20 | s/epoch | parameters | paper AUC / F1 |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for k in range(0, len(args), 3):
    name, side, f = args[k:k + 3]
    if side == "gnnrec":
        r = json.load(open(f))
        fin, eps = r["final"], r["epochs"]
        row = (len(eps), fin["recall@20"], fin["ndcg@20"], fin["auc"], fin["f1"],
               f"{fin['cold']['recall@20']:.4f}", sum(e["train_s"] for e in eps) / len(eps),
               f"{r['parameters']:,}")
    else:
        es = [json.loads(x) for x in open(f)]
        setup, last = es[0], [e for e in es if "epoch" in e][-1]
        row = (last["epoch"], last["recall@20"], last["ndcg@20"], last["auc"], last["f1"], "-",
               sum(e["train_s"] for e in es if "epoch" in e) / last["epoch"], f"{setup['params']:,}")
    p = paper.get(name)
    lines.append(f"| {name} | {side} | {row[0]} | {row[1]:.4f} | {row[2]:.4f} | {row[3]:.4f} | "
                 f"{row[4]:.4f} | {row[5]} | {row[6]:.3f} | {row[7]} | "
                 f"{f'{p[0]:.3f} / {p[1]:.3f}' if p and side == 'gnnrec' else ''} |")
t = json.load(open(transe))
f = t["final"]
lines += ["", f"transe on kgcn-music's graph alone ({len(t['epochs'])} epochs, "
          f"{f['link_queries']:,} filtered queries of its held-out triples): MRR {f['mrr']:.4f}, "
          f"hits@1 {f['hits@1']:.4f}, hits@3 {f['hits@3']:.4f}, hits@10 {f['hits@10']:.4f}, "
          f"{sum(e['train_s'] for e in t['epochs']) / len(t['epochs']):.3f} s/epoch."]
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
