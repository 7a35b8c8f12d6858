#!/bin/bash
# The side-information kinds against lightgcn on the same splits, one table (bench/out/
# side_quality.md), each run in both protocols at once: top-K (recall@20, ndcg@20, all-ranking)
# and CTR (AUC and F1: every test pair against one sampled unseen item, F1 at score 0), and
# recall@20 over the cold users (at most 5 training items; docs/evaluation.md):
#   - movielens-100k (u.data, a seeded per-user 80/20 split): lightgcn; hetero without side data;
#     hetero with the genres and demographics (docs/data.md's awk lines);
#   - lastfm (the LightGCN split): lightgcn; hetero with the friend edges;
#   - kgcn-music (bench/kg_split.py's per-user 80/20 split): lightgcn and mf without the graph,
#     kgcn (sum and concat) and kgat with it, and the PyTorch references of kgcn and kgat on the
#     same split; the KGCN paper's last.fm figures beside kgcn's (its own 6:2:2 split with fixed
#     negatives: comparable in kind, not to the digit);
#   - transe's filtered link prediction on kgcn-music's graph alone.
#
#   bench/deps.sh && cmake -S . -B build && cmake --build build -j2 && bench/side_quality.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), THREADS (2),
#      EPOCHS_<name> for a run (defaults below), REFS (1: run the PyTorch references; 0: skip).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
THREADS=${THREADS:-2}
REFS=${REFS:-1}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
for d in movielens-100k lastfm kgcn-music; do
    [ -d "$DATA/$d" ] || { echo "no $DATA/$d" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
epochs() { local v="EPOCHS_${1//-/_}"; echo "${!v:-$2}"; }

runs=()
train() { # dataset name default-epochs kind [flags...]
    local ds=$1 name=$2 ep
    ep=$(epochs "$2" "$3")
    local kind=$4
    shift 4
    echo "$ds: gnnrec $name, $ep epochs" >&2
    "$bin" train --model "$kind" --epochs "$ep" --eval-every 0 --threads "$THREADS" --quiet \
        --report "$out/sq_${ds}_$name.json" "$@" >/dev/null
    runs+=("$ds $name gnnrec $out/sq_${ds}_$name.json")
}

ml=$DATA/movielens-100k
awk -F'|' '{split("unknown action adventure animation children comedy crime documentary drama fantasy film-noir horror musical mystery romance sci-fi thriller war western", g, " ");
            for (k = 6; k <= 24; k++) if ($k == 1) print $1 ",genre," g[k - 5]}' "$ml/u.item" >"$tmp/items.csv"
awk -F'|' '{print $1 ",age," int($2 / 10) * 10; print $1 ",gender," $3; print $1 ",occupation," $4}' "$ml/u.user" >"$tmp/users.csv"
mlset=(--train "$ml/u.data" --split random:0.2 --seed 2020)
train movielens lightgcn 100 lightgcn "${mlset[@]}"
train movielens hetero 100 hetero "${mlset[@]}"
train movielens hetero-side 100 hetero "${mlset[@]}" --item-attrs "$tmp/items.csv" --user-attrs "$tmp/users.csv"

lf=(--train "$DATA/lastfm/train.txt" --test "$DATA/lastfm/test.txt")
train lastfm lightgcn 100 lightgcn "${lf[@]}"
train lastfm hetero-social 100 hetero "${lf[@]}" --social "$DATA/lastfm/social.txt"

/usr/bin/python3 "$here/bench/kg_split.py" --data "$DATA/kgcn-music" --out "$tmp/kg" >&2
km=(--train "$tmp/kg/train.txt" --test "$tmp/kg/test.txt")
kg=(--kg "$tmp/kg/kg_final.txt")
train kgcn-music lightgcn 300 lightgcn "${km[@]}"
train kgcn-music mf 100 mf "${km[@]}"
train kgcn-music kgcn-sum 10 kgcn "${km[@]}" "${kg[@]}" --db "$tmp/kgcn.sqlite"
# what the server ranks kgcn by: the items' representations under the mean user's attention
# (docs/models.md, "kgcn"); recall@20 of `gnnrec recommend` (the served top-K) on the same test
echo "kgcn-music: kgcn-sum's served top-K" >&2
"$bin" recommend --db "$tmp/kgcn.sqlite" --k 20 $(cut -d' ' -f1 "$tmp/kg/test.txt") >"$tmp/served.txt"
served=$(python3 - "$tmp/served.txt" "$tmp/kg/test.txt" <<'PY'
import re, sys
top = {m.group(1): re.findall(r" (\S+?)\([-0-9.e]+\)", m.group(2))
       for m in (re.match(r"user (\S+) \(\S+ v\d+\):(.*)", l) for l in open(sys.argv[1])) if m}
rec = []
for line in open(sys.argv[2]):
    u, *items = line.split()
    rec.append(len(set(top.get(u, [])) & set(items)) / len(items))
print(f"{sum(rec) / len(rec):.4f}")
PY
)
train kgcn-music kgcn-concat 10 kgcn "${km[@]}" "${kg[@]}" --aggregator concat
train kgcn-music kgat 50 kgat "${km[@]}" "${kg[@]}"
if [ "$REFS" = 1 ]; then
    for spec in kgcn-sum:kgcn:10 kgat:kgat:50; do
        IFS=: read -r name kind def <<<"$spec"
        ep=$(epochs "$name" "$def")
        echo "kgcn-music: PyTorch $name, $ep epochs" >&2
        /usr/bin/python3 "$here/bench/${kind}_torch.py" --data "$tmp/kg" --epochs "$ep" \
            --eval-every "$ep" --threads "$THREADS" >"$out/sq_kgcn-music_${name}_torch.jsonl"
        runs+=("kgcn-music $name PyTorch $out/sq_kgcn-music_${name}_torch.jsonl")
    done
fi
ep=$(epochs transe 300)
echo "kgcn-music: gnnrec transe, $ep epochs" >&2
"$bin" train --model transe --kg "$DATA/kgcn-music/kg_final.txt" --epochs "$ep" \
    --threads "$THREADS" --quiet --report "$out/sq_transe.json" >/dev/null

python3 - "$out/side_quality.md" "$out/sq_transe.json" "$served" "${runs[@]}" <<'PY'
import json, sys
path, transe, served = sys.argv[1], sys.argv[2], sys.argv[3]
paper = {"kgcn-sum": (0.794, 0.719), "kgcn-concat": (0.796, 0.721)}
lines = ["Each dataset's runs share one split: movielens-100k u.data with a seeded per-user 80/20 "
         "split (no user there has 5 or fewer training items), lastfm the LightGCN split, "
         "kgcn-music bench/kg_split.py's per-user 80/20 split. Top-K: all-ranking; CTR: every "
         "test pair against one sampled unseen item, F1 at score 0. Cold: users with at most 5 "
         "training items (how many in brackets).", "",
         "| dataset | model | side | epochs | recall@20 | ndcg@20 | AUC | F1 | cold recall@20 | s/epoch | parameters | paper AUC / F1 |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for arg in sys.argv[4:]:
    ds, name, side, f = arg.split()
    if side == "gnnrec":
        r = json.load(open(f))
        fin, eps = r["final"], r["epochs"]
        row = (len(eps), fin["recall@20"], fin["ndcg@20"], fin["auc"], fin["f1"],
               f"{fin['cold']['recall@20']:.4f} ({fin['cold']['users']})",
               sum(e["train_s"] for e in eps) / len(eps), f"{r['parameters']:,}")
    else:
        es = [json.loads(x) for x in open(f)]
        setup, last = es[0], [e for e in es if "epoch" in e][-1]
        row = (last["epoch"], last["recall@20"], last["ndcg@20"], last["auc"], last["f1"], "-",
               sum(e["train_s"] for e in es if "epoch" in e) / last["epoch"], f"{setup['params']:,}")
    p = paper.get(name) if side == "gnnrec" else None
    lines.append(f"| {ds} | {name} | {side} | {row[0]} | {row[1]:.4f} | {row[2]:.4f} | "
                 f"{row[3]:.4f} | {row[4]:.4f} | {row[5]} | {row[6]:.3f} | {row[7]} | "
                 f"{f'{p[0]:.3f} / {p[1]:.3f}' if p else ''} |")
kgcn = json.load(open([a.split()[3] for a in sys.argv[4:] if a.startswith("kgcn-music kgcn-sum gnnrec")][0]))
lines += ["", f"kgcn-sum served: the inner-product top-K the server answers (the items under the mean "
          f"user's attention) has recall@20 {served}, the exact model's {kgcn['final']['recall@20']:.4f}."]
t = json.load(open(transe))
f = t["final"]
lines += ["", f"transe on kgcn-music's graph alone ({len(t['epochs'])} epochs, "
          f"{f['link_queries']:,} filtered queries of its held-out triples): MRR {f['mrr']:.4f}, "
          f"hits@1 {f['hits@1']:.4f}, hits@3 {f['hits@3']:.4f}, hits@10 {f['hits@10']:.4f}, "
          f"{sum(e['train_s'] for e in t['epochs']) / len(t['epochs']):.3f} s/epoch."]
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
