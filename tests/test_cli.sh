#!/bin/bash
# End-to-end checks of the gnnrec command line: help and usage errors, flags from a kind's
# hyper-parameter table, a schema-1 store upgraded and answering as before, data errors with file:line,
# train -> store -> models -> recommend, the JSON report, --loss mse on ratings, reproducibility
# (same seed and threads give bit-identical vectors), and, with ../shared/data, LightGCN beating
# popularity on lastfm.
set -u
bin=${GNNREC_BIN:?}
data=${GNNREC_DATA:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/shlib.sh"

# help and usage
expect_rc 0 "help" "$bin" help
expect_rc 0 "train --help" "$bin" train --help
grep -q -- "--synthetic" "$tmp/out" && ok || bad "train --help lists --synthetic"
expect_rc 2 "no command" "$bin"
expect_rc 2 "unknown command" "$bin" frobnicate
expect_rc 2 "train without data" "$bin" train
expect_rc 2 "bad --dim" "$bin" train --synthetic --dim 0
expect_err "--dim" "bad --dim names the flag"
expect_rc 2 "bad --split" "$bin" train --train x.csv --split sideways:0.2

# side information: loaded and reported, its errors named by file and line
printf 'u1,i1\nu1,i2\nu2,i2\n' >"$tmp/side_log.csv"
printf 'item,attribute,value\ni1,genre,Rock\ni3,genre,Pop\n' >"$tmp/side_items.csv"
printf 'u1 u2\n' >"$tmp/side_social.txt"
printf 'i1\tmember_of\te1\n' >"$tmp/side_kg.tsv"
expect_rc 0 "train with side files" "$bin" train --train "$tmp/side_log.csv" --item-attrs "$tmp/side_items.csv" \
    --social "$tmp/side_social.txt" --kg "$tmp/side_kg.tsv" --epochs 1 --threads 2
expect_err "side_items.csv: 1 item values, 1 distinct, 1 rows of unknown items" "side files reported"
expect_err "side_kg.tsv: 1 triples, 3 entities, 1 relations" "the knowledge graph reported"
expect_err "note: model lightgcn does not use --item-attrs" "a side file the kind does not use is noted"
printf 'item,attribute,value\ni1,genre\n' >"$tmp/side_bad.csv"
expect_rc 1 "a short side row" "$bin" train --train "$tmp/side_log.csv" --item-attrs "$tmp/side_bad.csv" --epochs 1
expect_err "side_bad.csv:2: expected at least 3 columns, got 2" "a side file's error names file and line"
expect_rc 2 "--item-entities without --kg" "$bin" train --train "$tmp/side_log.csv" --item-entities "$tmp/side_bad.csv"

# a knowledge-graph embedding trains on the graph alone and publishes its entities as items
expect_rc 0 "transe on a graph" "$bin" train --model transe --kg "$tmp/side_kg.tsv" --epochs 2 \
    --db "$tmp/kg.sqlite" --report "$tmp/kg.json"
grep -q "mrr" "$tmp/kg.json" && ok || bad "transe reports link prediction"
"$bin" models --db "$tmp/kg.sqlite" | grep -qE "^transe +1 +live +transe .* 0 +2 +50 " && ok || bad "transe: 0 users, 2 items (i1, e1), dim 50"
expect_rc 2 "transe with a log" "$bin" train --model transe --kg "$tmp/side_kg.tsv" --train "$tmp/side_log.csv"
expect_err "trains on a knowledge graph alone" "transe with a log: says why"
expect_rc 2 "transe without --kg" "$bin" train --model transe
: >"$tmp/kg_empty.tsv"
expect_rc 1 "transe on an empty graph" "$bin" train --model transe --kg "$tmp/kg_empty.tsv"
expect_err "the knowledge graph has no triple" "transe on an empty graph: says why"
printf 'i1\tr\te1\ni2\t~r\te1\n' >"$tmp/kg_tilde.tsv"
expect_rc 1 "kgat with a relation named as a reversed one" "$bin" train --model kgat \
    --train "$tmp/side_log.csv" --kg "$tmp/kg_tilde.tsv" --epochs 1
expect_err "relation names collide with the reversed ones" "kgat's name collision: says why"
expect_rc 0 "transe --help" "$bin" train --model transe --help
grep -q "^needs: --kg, and no interaction log" "$tmp/out" && ok || bad "transe --help says what it needs"

# flags come from the chosen kind's hyper-parameter table
expect_rc 0 "train --model lightgcn --help" "$bin" train --model lightgcn --help
grep -qE -- "--layers N +propagation layers \(3; 0\.\.16\)" "$tmp/out" && ok || bad "lightgcn --help lists --layers from its table"
grep -qE -- "--negatives N" "$tmp/out" && ok || bad "--help lists the common --negatives"
expect_rc 0 "train --model mf --help" "$bin" train --model mf --help
grep -qE -- "^model mf: BPR-MF" "$tmp/out" && grep -qE -- "--dim N +embedding size \(64; 1\.\.4096\)" "$tmp/out" &&
    ! grep -q -- "--layers" "$tmp/out" && ok || bad "mf --help lists its own table: $(head -c 300 "$tmp/out")"
expect_rc 2 "a flag of another kind" "$bin" train --synthetic --model mf --layers 2
expect_err "unknown option '--layers' for model mf" "another kind's flag is refused with the kind's name"
expect_rc 0 "train mf" "$bin" train --synthetic --model mf --epochs 20 --threads 2 --quiet --report "$tmp/mf.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['model']=='mf' and r['params']['dim']==64 and 'layers' not in r['params']; f=r['final']; assert f['recall@20']>f['popularity']['recall@20'], f" "$tmp/mf.json" && ok || bad "mf report and quality"
# mf is lightgcn without layers: the same vectors, bit for bit
expect_rc 0 "mf into a store" "$bin" train --synthetic --model mf --epochs 1 --threads 2 --quiet --db "$tmp/eq.sqlite" --name a
expect_rc 0 "lightgcn --layers 0 into a store" "$bin" train --synthetic --model lightgcn --layers 0 --epochs 1 --threads 2 --quiet --db "$tmp/eq.sqlite" --name b
vh() { sqlite3 "$tmp/eq.sqlite" "SELECT hex(data) FROM blobs b JOIN models m ON m.id=b.model_id WHERE m.name='$1' AND b.key='$2' ORDER BY chunk" | md5sum; }
[ "$(vh a user_vecs)" = "$(vh b user_vecs)" ] && [ "$(vh a item_vecs)" = "$(vh b item_vecs)" ] && ok || bad "mf equals lightgcn --layers 0"
expect_rc 2 "unknown kind" "$bin" train --synthetic --model nope
expect_err "unknown model 'nope' \(known: .*lightgcn" "unknown kind names the known ones"
expect_rc 2 "bad choice" "$bin" train --synthetic --loss hinge
expect_err "--loss: expected one of bpr\|bce\|margin\|mse, got 'hinge'" "bad choice message"
# --loss mse regresses the ratings of a CSV's weight column; rmse (and auc) in the output and report
python3 - "$tmp/ratings.csv" <<'PY'
import random, sys
r = random.Random(1)
with open(sys.argv[1], "w") as f:
    for u in range(60):
        for i in r.sample(range(40), 12):
            f.write(f"u{u},i{i},{1 + (u * i) % 5}\n")
PY
expect_rc 0 "train --loss mse" "$bin" train --train "$tmp/ratings.csv" --split random:0.2 --model mf --loss mse \
    --lr 0.05 --dim 8 --batch 64 --epochs 20 --eval-every 10 --threads 2 --report "$tmp/mse.json"
grep -qE "^rmse +[0-9.]+ +-$" "$tmp/out" && ok || bad "the printed comparison has rmse: $(head -c 600 "$tmp/out")"
python3 - "$tmp/mse.json" <<'PY' && ok || bad "mse report: rmse per epoch and final, below predicting 0"
import json, sys
r = json.load(open(sys.argv[1]))
f, e = r["final"], r["epochs"]
assert r["params"]["loss"] == "mse"
assert "rmse" in e[9] and "mae" in e[9] and "rmse" not in e[0], e
assert 0 < f["rmse"] < 1.5 and 0 < f["mae"] <= f["rmse"] and 0 < f["auc"] < 1, f
assert "rmse" not in f["popularity"], f
PY
printf '0 1 2\n1 0 2\n' >"$tmp/lgn.txt"
expect_rc 1 "--loss mse without ratings" "$bin" train --train "$tmp/lgn.txt" --format lgn --loss mse --epochs 1 --quiet
expect_err "lgn.txt: --loss mse needs ratings" "mse on the LightGCN format names the file"
expect_rc 2 "bad float" "$bin" train --synthetic --lr -1
expect_err "--lr: expected a number in" "bad float message"
expect_rc 2 "missing value" "$bin" train --synthetic --dim
expect_err "option '--dim' needs a value" "missing value message"

# a store written by schema-1 gnnrec opens (read-only commands upgrade it), lists and answers
# exactly as the build that wrote it
fixture="${GNNREC_SOURCE_DIR:?}/tests/cases/store/schema1"
cp "$fixture/store.sqlite" "$tmp/old.sqlite"
expect_rc 0 "models on a schema-1 store" "$bin" models --db "$tmp/old.sqlite"
[ "$(grep -c '^legacy ' "$tmp/out")" -eq 2 ] && ok || bad "schema-1 store lists both versions: $(cat "$tmp/out")"
[ "$(sqlite3 "$tmp/old.sqlite" "SELECT value FROM meta WHERE key='schema_version'")" -gt 1 ] && ok || bad "schema-1 store upgraded"
expect_rc 0 "recommend on an upgraded store" "$bin" recommend --db "$tmp/old.sqlite" --name legacy --k 5 $(seq -f 'u%g' 0 11)
cmp -s "$tmp/out" "$fixture/recommend.expected" && ok || bad "upgraded store answers as before: $(diff "$tmp/out" "$fixture/recommend.expected" | head -5)"

# data errors name file and line, exit non-zero, publish nothing
printf 'user,item\nu1,i1\nu2\nu3,i3\n' >"$tmp/bad.csv"
expect_rc 1 "malformed csv" "$bin" train --train "$tmp/bad.csv" --db "$tmp/bad.sqlite" --quiet
expect_err "bad.csv:3: " "malformed csv message"
[ ! -s "$tmp/bad.sqlite" ] && ok || bad "a failed run must not create a store with content"
printf '0 1 2\n2 1\n1 0\n' >"$tmp/unsorted.txt"
expect_rc 1 "unsorted lgn" "$bin" train --train "$tmp/unsorted.txt" --format lgn --quiet
expect_err "unsorted.txt:3: " "unsorted lgn message"
expect_rc 1 "missing file" "$bin" train --train "$tmp/nope.csv" --quiet
expect_err "nope.csv" "missing file message"
: >"$tmp/empty.csv"
expect_rc 1 "empty file" "$bin" train --train "$tmp/empty.csv" --quiet
expect_err "empty.csv" "empty file message"

# train -> store -> models -> recommend
db="$tmp/store.sqlite"
train=("$bin" train --synthetic --epochs 3 --threads 2 --quiet --db "$db" --name demo)
expect_rc 0 "train synthetic" "${train[@]}" --report "$tmp/r1.json"
grep -q "published demo version 1" "$tmp/out" && ok || bad "first publish is version 1"
python3 - "$tmp/r1.json" <<'PY' && ok || bad "report structure"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["model"] == "lightgcn"
p = r["params"]
assert p["dim"] == 64 and p["layers"] == 3 and p["batch"] == 2048 and p["epochs"] == 3
assert len(r["epochs"]) == 3 and r["epochs"][0]["epoch"] == 1
e = r["epochs"][-1]
for k in ("loss", "batches", "train_s", "recall@20", "ndcg@20"):
    assert k in e, k
assert "recall@20" not in r["epochs"][0]          # evaluated only at the end by default
assert r["final"]["recall@20"] > r["final"]["popularity"]["recall@20"]
assert r["published"]["version"] == 1
PY
expect_rc 0 "train again" "${train[@]}"
grep -q "published demo version 2" "$tmp/out" && ok || bad "second publish is version 2"
expect_rc 0 "models" "$bin" models --db "$db"
[ "$(grep -c '^demo ' "$tmp/out")" -eq 2 ] && ok || bad "models lists both versions: $(cat "$tmp/out")"
expect_rc 0 "models --json" "$bin" models --db "$db" --json
python3 -c "import json,sys; v=json.load(open(sys.argv[1])); assert [x['version'] for x in v]==[1,2]; assert v[0]['metrics']['recall@20']>0" "$tmp/out" && ok || bad "models --json"

# same data, seed and threads: bit-identical vectors; another seed: different
h() { sqlite3 "$db" "SELECT hex(data) FROM blobs b JOIN models m ON m.id=b.model_id WHERE m.name='demo' AND m.version=$1 AND b.key='$2' ORDER BY chunk" | md5sum; }
[ "$(h 1 user_vecs)" = "$(h 2 user_vecs)" ] && [ "$(h 1 item_vecs)" = "$(h 2 item_vecs)" ] && ok || bad "same seed and threads give the same model"
expect_rc 0 "train other seed" "${train[@]}" --seed 7
[ "$(h 1 item_vecs)" != "$(h 3 item_vecs)" ] && ok || bad "another seed gives another model"

expect_rc 0 "recommend" "$bin" recommend --db "$db" --name demo --k 5 u1 u2
[ "$(grep -c '^user u[12] (demo v3):' "$tmp/out")" -eq 2 ] && ok || bad "recommend prints both users from the newest version: $(cat "$tmp/out")"
expect_rc 1 "recommend unknown user" "$bin" recommend --db "$db" --name demo nobody
expect_err "unknown user 'nobody'" "unknown user message"
expect_rc 1 "recommend missing store" "$bin" recommend --db "$tmp/none.sqlite" u1

# real data: lastfm, 10 epochs of the paper's settings already beat popularity clearly
if [ -n "$data" ] && [ -f "$data/lastfm/train.txt" ]; then
    expect_rc 0 "train lastfm" "$bin" train --train "$data/lastfm/train.txt" --test "$data/lastfm/test.txt" \
        --epochs 10 --threads 2 --quiet --report "$tmp/lastfm.json"
    python3 - "$tmp/lastfm.json" <<'PY' && ok || bad "lastfm: lightgcn beats popularity"
import json, sys
f = json.load(open(sys.argv[1]))["final"]
assert f["recall@20"] > 2 * f["popularity"]["recall@20"], f
assert f["users"] == 1858, f
PY
else
    echo "SKIP: lastfm check: no ../shared/data/lastfm (set GNNREC_DATA)"
fi

# real data: transe on kgcn-music's graph, 30 epochs, ranks held-out triples far above chance
# (a uniform ranking of 9,366 entities has an MRR near 0.001; 300 epochs reach about 0.83)
if [ -n "$data" ] && [ -f "$data/kgcn-music/kg_final.txt" ]; then
    expect_rc 0 "transe kgcn-music" "$bin" train --model transe --kg "$data/kgcn-music/kg_final.txt" \
        --epochs 30 --threads 2 --quiet --report "$tmp/transe.json"
    python3 - "$tmp/transe.json" <<'PY' && ok || bad "kgcn-music: transe link prediction"
import json, sys
f = json.load(open(sys.argv[1]))["final"]
assert f["mrr"] > 0.5 and f["hits@10"] > 0.7, f
assert f["link_queries"] == 2 * 1552, f
PY
else
    echo "SKIP: transe check: no ../shared/data/kgcn-music (set GNNREC_DATA)"
fi

finish
