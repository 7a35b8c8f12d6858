#!/usr/bin/env python3
"""The table of a side-by-side speed run (bench/models_speed.sh, bench/kg_speed.sh): each kind and
thread count, gnnrec's and the PyTorch reference's seconds per batch, each side's fastest round
(its slowest in brackets), the ratio, peak memory; then each kind's best against best.

  speed_table.py OUT CAPTION ROW...   with ROW = "kind threads gnnrec_s torch_s gnnrec_KiB torch_KiB"

Writes OUT and prints it."""
import sys

path, caption = sys.argv[1], sys.argv[2]
runs = {}  # (kind, threads) -> every round's (gnnrec s, PyTorch s, gnnrec KiB, PyTorch KiB)
for r in sys.argv[3:]:
    kind, t, g, p, gm, pm = r.split()
    runs.setdefault((kind, t), []).append((float(g), float(p), int(gm), int(pm)))
lines = [caption, "",
         "| kind | threads | gnnrec s/batch | PyTorch s/batch | speed-up | gnnrec peak RSS | PyTorch peak RSS |",
         "|---|---:|---:|---:|---:|---:|---:|"]
best = {}
for (kind, t), rs in runs.items():
    g = min(r[0] for r in rs)
    p = min(r[1] for r in rs)
    best[(kind, t)] = (g, p)
    lines.append(f"| {kind} | {t} | {g:.5f} ({max(r[0] for r in rs):.5f}) | "
                 f"{p:.5f} ({max(r[1] for r in rs):.5f}) | {p / g:.1f}x | "
                 f"{max(r[2] for r in rs) / 1024:.0f} MiB | {max(r[3] for r in rs) / 1024:.0f} MiB |")
lines.append("")
for kind in dict.fromkeys(k for k, _ in runs):
    mine = {t: v for (k, t), v in best.items() if k == kind}
    tg = min(mine, key=lambda t: mine[t][0])
    tp = min(mine, key=lambda t: mine[t][1])
    lines.append(f"- {kind}, best against best: gnnrec {mine[tg][0]:.5f} s/batch ({tg} threads), "
                 f"PyTorch {mine[tp][1]:.5f} s/batch ({tp} threads): "
                 f"{mine[tp][1] / mine[tg][0]:.1f}x.")
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
