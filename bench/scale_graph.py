#!/usr/bin/python3
"""A graph SCALE times larger than a LightGCN-format training file, with the same degree
distributions, written in the same format: for bench/sage_memory.sh.

Each of the source's users is copied SCALE times with its degree, each item SCALE times with its
degree, and the user-item edges are drawn as a configuration model: every item copy contributes
as many stubs as its degree, the stubs are shuffled and dealt out to the users in order of their
degrees (a user drawing the same item twice keeps it once, so a few edges are lost). So the new
graph has SCALE x the users, items and edges, each side's degree distribution, and no structure
beyond that. Deterministic for a seed. Writes OUT (put it under /tmp: never in the repository).

    bench/scale_graph.py ../shared/data/gowalla/train.txt 10 /tmp/gowalla10x.txt
"""
import sys

import numpy as np


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    src, scale, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seed = int(sys.argv[4]) if len(sys.argv) == 5 else 1
    user_deg, item_deg = [], {}
    with open(src) as f:
        for line in f:
            items = line.split()[1:]
            user_deg.append(len(items))
            for i in items:
                item_deg[int(i)] = item_deg.get(int(i), 0) + 1
    n_items = max(item_deg) + 1
    rng = np.random.default_rng(seed)
    udeg = np.tile(np.array(user_deg), scale)
    rng.shuffle(udeg)
    ideg = np.tile(np.array([item_deg.get(i, 0) for i in range(n_items)]), scale)
    stubs = np.repeat(np.arange(len(ideg), dtype=np.int64), ideg)
    rng.shuffle(stubs)
    ptr = np.concatenate([[0], np.cumsum(udeg)])
    edges = 0
    with open(out, "w") as f:
        for u in range(len(udeg)):
            items = np.unique(stubs[ptr[u]:ptr[u + 1]])
            rng.shuffle(items)
            edges += len(items)
            f.write(f"{u} {' '.join(map(str, items.tolist()))}\n")
    print(f"{out}: {len(udeg)} users, {len(ideg)} items, {edges} interactions "
          f"({ptr[-1] - edges} repeated draws dropped)")


if __name__ == "__main__":
    main()
