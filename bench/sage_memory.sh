#!/bin/bash
# GraphSAGE's working memory per training batch on gowalla and on a graph SCALE (10) times its size
# with the same degree distributions (bench/scale_graph.py writes it under $TMPDIR, never in the
# repository), side by side in one run, at the same settings (the kind's defaults: batch 2048,
# fan-outs 25,10, dim 64), and the ratio big / gowalla per aggregator. Writes
# bench/out/sage_memory.md and prints it.
#
# Working memory per batch = peak RSS of `gnnrec train` running BATCHES batches (one epoch cut
# short; no test file, so no evaluation, no store)
#   - peak RSS of the same command with --epochs 0 (data loaded, graph built, parameters
#     initialised: that run's peak is its state when training would start; the loader's own
#     transient peak is below it on both graphs)
#   - Adam's two moments, 2 x parameters x 4 bytes (the report's "parameters"), every page of which
#     the first step writes.
# What is left is what the batches need: the sampled subgraph, the layers' activations and their
# gradients, the weights' gradient, the sampler's batch.
#
#   cmake -S . -B build && cmake --build build -j2 && bench/sage_memory.sh
# Env: BIN (gnnrec binary, default build/gnnrec), DATA (../shared/data), AGGS ("mean max"),
#      BATCHES (10), THREADS (2), SCALE (10), TMPDIR (/tmp), EXTRA (more train flags, e.g.
#      "--batch 512").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../shared/data}
AGGS=${AGGS:-mean max}
BATCHES=${BATCHES:-10}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
EXTRA=${EXTRA:-}
bin=${BIN:-$here/build/gnnrec}
out=$here/bench/out
mkdir -p "$out"
[ -x "$bin" ] || { echo "no gnnrec binary at $bin (build it, or set BIN)" >&2; exit 1; }
[ -f "$DATA/gowalla/train.txt" ] || { echo "no $DATA/gowalla" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
big=${TMPDIR:-/tmp}/gnnrec-gowalla-x$SCALE.txt
[ -s "$big" ] || /usr/bin/python3 "$here/bench/scale_graph.py" "$DATA/gowalla/train.txt" "$SCALE" "$big"

# peak RSS in KiB of gnnrec train over $1 with epochs/batches $2 and aggregator $3; the report
# lands in $4
peak() {
    # shellcheck disable=SC2086
    /usr/bin/time -f %M -o "$4.time" "$bin" train --model graphsage --aggregator "$3" \
        --train "$1" --format lgn $2 --threads "$THREADS" --quiet --report "$4" $EXTRA >/dev/null
    cat "$4.time"
}

rows=()
for agg in $AGGS; do
    for graph in gowalla big; do
        file=$DATA/gowalla/train.txt
        [ "$graph" = big ] && file=$big
        tag=$out/sage_memory_${agg}_$graph
        base=$(peak "$file" "--epochs 0" "$agg" "$tag.base.json")
        run=$(peak "$file" "--epochs 1 --max-batches $BATCHES" "$agg" "$tag.run.json")
        rows+=("$agg $graph $base $run $tag.run.json")
    done
done

python3 - "$out/sage_memory.md" "$BATCHES" "$SCALE" "$EXTRA" "${rows[@]}" <<'PY'
import json, sys
path, batches, scale, extra, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
mib = lambda kib: kib / 1024
lines = [f"GraphSAGE, {batches} training batches, kind defaults{' ' + extra if extra else ''}; "
         f"working memory = peak RSS - peak RSS at 0 epochs - Adam's moments.", "",
         "| aggregator | graph | users | items | interactions | parameters | peak RSS, 0 epochs | "
         "peak RSS | Adam moments | working memory |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
work = {}
for r in rows:
    agg, graph, base, run, report = r.split()
    rep = json.load(open(report))
    n = rep["parameters"]
    adam = 2 * n * 4 / 1024
    w = int(run) - int(base) - adam
    work.setdefault(agg, {})[graph] = w
    p = rep["params"]
    name = "gowalla" if graph == "gowalla" else f"gowalla x{scale}"
    lines.append(f"| {agg} | {name} | {p['users']:,} | {p['items']:,} | {p['train_interactions']:,} "
                 f"| {n:,} | {mib(int(base)):.0f} MiB | {mib(int(run)):.0f} MiB | {mib(adam):.0f} MiB "
                 f"| **{mib(w):.0f} MiB** |")
lines.append("")
for agg, w in work.items():
    lines.append(f"{agg}: working memory per batch x{scale} / gowalla = "
                 f"{mib(w['big']):.0f} / {mib(w['gowalla']):.0f} MiB = **{w['big'] / w['gowalla']:.2f}x**")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
