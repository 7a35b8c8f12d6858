#!/bin/bash
# The retraining loop's command line: `gnnrec import` into the store's log (file:line errors,
# all or nothing), `train --from-log` (with a base file, --since), `--warm-start` (users and items
# matched by id: a warm start is ahead of a cold one after one epoch), the quality gate (a
# degraded model exits 3 and publishes nothing; the live version stays), and `models` pin,
# unpin, rollback, delete and gc, with what `recommend` then answers.
set -u
bin=${GNNREC_BIN:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/shlib.sh"
q() { sqlite3 "$db" "$1"; }
db=$tmp/store.sqlite

# A log with planted structure: 400 users in 5 communities, 12 interactions each over 250 items,
# timestamped; the last 2 of each user are its newest.
python3 - "$tmp" <<'PY'
import random, sys
random.seed(7)
with open(sys.argv[1] + "/log.csv", "w") as f:
    f.write("user,item,weight,ts\n")
    for u in range(400):
        for k in range(12):
            i = random.randrange(50) * 5 + u % 5 if random.random() < 0.9 else random.randrange(250)
            f.write(f"u{u},i{i},1,{1700000000 + u * 20 + k}\n")
with open(sys.argv[1] + "/more.tsv", "w") as f:  # no header, no times: stamped at the import
    for u in range(400, 420):
        for k in range(6):
            f.write(f"u{u}\ti{(u % 5) + 5 * k}\n")
PY

# import: file:line errors, nothing of a bad file logged
printf 'user,item,ts\nu1,i1,1700000000\nu2,i2,1700000000000\n' >"$tmp/ms.csv"
expect_rc 1 "a time in milliseconds" "$bin" import --db "$db" "$tmp/ms.csv"
expect_err "ms.csv:3: ts 1.7e\+12 is not a time" "the bad line is named"
[ "$(q 'SELECT count(*) FROM events')" = 0 ] && ok || bad "a bad file logs nothing"
expect_rc 2 "import without a file" "$bin" import --db "$db"
expect_rc 0 "import" "$bin" import --db "$db" "$tmp/log.csv" "$tmp/more.tsv"
expect_out "log.csv: 4800 events logged \(seq 1-4800\)" "import says what it logged"
expect_out "more.tsv: 120 events logged \(seq 4801-4920\)" "the second file follows"
[ "$(q 'SELECT count(*) FROM events WHERE ts > 1750000000')" = 120 ] && ok || bad "rows without a time get the import's"
[ "$(q "SELECT user || ' ' || item || ' ' || weight FROM events WHERE seq = 13")" = "u1 i1 1.0" ] ||
    [ "$(q "SELECT user FROM events WHERE seq = 13")" = u1 ] && ok || bad "ids and weights as in the file"

# train from the log: every event, or those since a time; usage errors
expect_rc 2 "--from-log without --db" "$bin" train --from-log --epochs 1
expect_err "need the store" "--from-log without --db says why"
expect_rc 2 "--since without --from-log" "$bin" train --synthetic --since 30d
expect_rc 2 "a bad --since" "$bin" train --db "$db" --from-log --since yesterday
expect_err "expected unix seconds, a UTC date" "a bad --since says what it takes"
expect_rc 2 "--from-log with --synthetic" "$bin" train --db "$db" --from-log --synthetic
expect_rc 0 "train on the log" "$bin" train --db "$db" --name m --from-log --split time:0.2 \
    --epochs 40 --threads 2 --report "$tmp/v1.json"
expect_err "data: 420 users, 250 items" "every logged user and item"
python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))
assert r['published']['version'] == 1, r['published']
assert r['final']['recall@20'] > 0.3, r['final']" "$tmp/v1.json" && ok || bad "v1 learned the communities"
cp "$db" "$tmp/other.sqlite" # runs that publish under other names, away from the store below
expect_rc 0 "--since" "$bin" train --db "$tmp/other.sqlite" --from-log --since 1700004000 --epochs 1
expect_err "data: 220 users" "--since keeps the events from then on (u200.. and the import's)"
printf 'user,item\nu1,i1\nnewbie,i3\nnewbie,i8\n' >"$tmp/base.csv"
expect_rc 0 "a base file and the log" "$bin" train --db "$tmp/other.sqlite" --train "$tmp/base.csv" \
    --from-log --epochs 1
expect_err "data: 421 users" "the base file's users join the log's"
printf '0 1 2\n1 2\n' >"$tmp/lgn.txt"
expect_rc 1 "a LightGCN base with the log" "$bin" train --db "$db" --train "$tmp/lgn.txt" --from-log --epochs 1
expect_err "cannot be combined with the log" "says why"

# warm start: users and items matched by id; after one epoch it is far ahead of a cold start
expect_rc 0 "cold, 1 epoch" "$bin" train --db "$tmp/cold.sqlite" --train "$tmp/log.csv" --split time:0.2 \
    --epochs 1 --threads 2 --report "$tmp/cold.json"
expect_rc 0 "warm, 1 epoch" "$bin" train --db "$db" --name m --from-log --split time:0.2 --epochs 1 \
    --threads 2 --warm-start --report "$tmp/warm.json"
expect_err "warm start from v1: 420 of 420 users and 250 of 250 items known" "the warm start reports its matches"
python3 -c "
import json,sys
c=json.load(open(sys.argv[1]))['final']['recall@20']; w=json.load(open(sys.argv[2]))['final']['recall@20']
v1=json.load(open(sys.argv[3]))['final']['recall@20']
assert w > c + 0.1 and w > 0.9 * v1, (c, w, v1)" "$tmp/cold.json" "$tmp/warm.json" "$tmp/v1.json" &&
    ok || bad "a warm start keeps what v1 learned"
expect_rc 1 "warm start of another kind" "$bin" train --db "$db" --name m --from-log --model mf --epochs 1 --warm-start
expect_err "is a lightgcn model, this run trains mf" "says why"
expect_rc 1 "warm start with another dim" "$bin" train --db "$db" --name m --from-log --dim 32 --epochs 1 --warm-start
expect_err "user_emb rows have 64 values, this run's 32 \(another dim\?\)" "says why"
expect_rc 1 "the gate without a holdout" "$bin" train --db "$db" --name m --from-log --epochs 1 --gate-tolerance 0.01
expect_err "the quality gate needs a holdout: give --split or --test" "says why"
expect_rc 0 "warm start with no live version" "$bin" train --db "$tmp/other.sqlite" --name fresh \
    --from-log --epochs 1 --warm-start
expect_err "fresh has no live version yet: a cold start" "says it starts cold"

# the gate: one epoch on a tenth of the log, cold, is refused: exit 3, nothing published
live_before=$(q "SELECT max(version) FROM models WHERE name = 'm'")
head -n 480 "$tmp/log.csv" >"$tmp/tenth.csv"
expect_rc 3 "a degraded model" "$bin" train --db "$db" --name m --train "$tmp/tenth.csv" --split time:0.2 \
    --epochs 1 --gate-tolerance 0.02 --report "$tmp/gate.json"
expect_err "gate: recall@20 on the fresh holdout of [0-9]+ users both versions know: new 0\.[0-9]+, live v2 0\.[0-9]+, tolerance 0.02: refused" \
    "the refusal gives both numbers"
[ "$(q "SELECT max(version) FROM models WHERE name = 'm'")" = "$live_before" ] && ok || bad "nothing published"
python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))
g=r['gate']; assert not g['passed'] and g['new_recall'] < g['live_recall'] - 0.02 and 'published' not in r, r" \
    "$tmp/gate.json" && ok || bad "the report records the refusal"
expect_rc 0 "a good retrain passes" "$bin" train --db "$db" --name m --from-log --split time:0.2 --epochs 2 \
    --warm-start --gate-tolerance 0.02 --refit-epochs 1 --report "$tmp/refit.json"
expect_err "tolerance 0.02: passed" "the gate passes a good model"
expect_err "refit: 1 epochs on all 4490 interactions, the holdout included" "the refit trains on everything"
expect_out "published m version 3" "and it is published"
# the refitted version knows every logged interaction as seen: none comes back recommended
expect_rc 0 "recommend every item" "$bin" recommend --db "$db" --name m --k 250 u5 u399
for u in u5 u399; do
    got=$(grep "^user $u " "$tmp/out" | tr ' ' '\n' | sed -n 's/(.*//p' | sort)
    logged=$(q "SELECT DISTINCT item FROM events WHERE user = '$u'" | sort)
    [ -n "$got" ] && [ -z "$(comm -12 <(echo "$got") <(echo "$logged"))" ] && ok ||
        bad "$u: a logged item recommended after the refit"
done

# versions: pin, rollback, unpin, delete, gc; recommend answers from the live version
expect_rc 0 "rollback" "$bin" models rollback --db "$db" m
expect_out "m: rolled back, pinned to v2" "rollback pins the version before the live one"
expect_rc 0 "list" "$bin" models --db "$db" --name m
expect_out "^m +2 +live,pinned " "the list shows the pin"
expect_out "^m +3 +- " "v3 is not live"
expect_rc 0 "recommend from the pinned version" "$bin" recommend --db "$db" --name m --k 3 u1
expect_out "\(m v2\)" "recommend loads the pinned version"
expect_rc 1 "delete the live version" "$bin" models delete --db "$db" m 2
expect_err "is the live version" "says why"
expect_rc 1 "pin a missing version" "$bin" models pin --db "$db" m 99
expect_rc 2 "pin without a version" "$bin" models pin --db "$db" m
expect_rc 0 "unpin" "$bin" models unpin --db "$db" m
expect_out "live is v3" "unpinning serves the newest again"
expect_rc 0 "gc" "$bin" models gc --db "$db" --name m --keep 1
expect_out "deleted 2 versions" "gc keeps the newest"
[ "$(q "SELECT group_concat(version) FROM models WHERE name = 'm'")" = 3 ] && ok || bad "only v3 is left"
[ "$(q "SELECT count(*) FROM blobs WHERE model_id NOT IN (SELECT id FROM models)")" = 0 ] && ok || bad "gc left blobs"

finish
