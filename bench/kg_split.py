#!/usr/bin/env python3
"""A fixed train/test split of the kgcn-music data set, for side-by-side KGCN runs.

kgcn-music (the KGCN paper's last.fm data, as hwwang55/KGCN's preprocess.py maps it: items are
the KG entities 0..n_items-1) ships its interactions as one file, `interactions.txt` (`user item
listen_count`, 0-based), and its knowledge graph as `kg_final.txt` (`head relation tail`). KGCN's
own code splits the ratings 6:2:2 at random on every run (data_loader.dataset_split, with
np.random.seed(555) and a fixed file of sampled negatives); gnnrec and the PyTorch reference
(bench/kgcn_torch.py) need one split, written once, that both read. This script writes it:

- per user, with n_u items: n_test = int(round(frac * n_u)) (Python's round, half to even),
  clipped to [0, n_u - 1] so that every user keeps at least one training item; the n_test test
  items are drawn without replacement from the user's items (sorted ascending first) with
  numpy.random.default_rng(seed), users taken in ascending order; listen counts are ignored
  (every listened artist is a positive, as preprocess.py's threshold 0 for music) and a repeated
  (user, item) line counts once (kgcn-music has none);
- DIR/train.txt and DIR/test.txt in the LightGCN text format (a line per user: `user item item
  ...`, items ascending; a user without test items has no line in test.txt);
- DIR/kg_final.txt: a symlink to the data set's kg_final.txt (absolute path).

  /usr/bin/python3 bench/kg_split.py --data /work/shared/data/kgcn-music --out /tmp/kgsplit

prints one line: users, items, train and test pairs, test users.
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True, help='folder with interactions.txt and kg_final.txt')
    ap.add_argument('--out', required=True, help='folder to write train.txt, test.txt, kg_final.txt')
    ap.add_argument('--frac', type=float, default=0.2, help='share of each user\'s items held out')
    ap.add_argument('--seed', type=int, default=2020)
    a = ap.parse_args()

    inter = np.loadtxt(os.path.join(a.data, 'interactions.txt'), dtype=np.int64, ndmin=2)
    users, items = inter[:, 0], inter[:, 1]
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    keep = np.ones(len(users), dtype=bool)
    keep[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])  # drop duplicate pairs
    users, items = users[keep], items[keep]

    rng = np.random.default_rng(a.seed)
    uniq, starts, counts = np.unique(users, return_index=True, return_counts=True)
    os.makedirs(a.out, exist_ok=True)
    n_tr = n_te = n_te_users = 0
    with open(os.path.join(a.out, 'train.txt'), 'w') as ftr, \
            open(os.path.join(a.out, 'test.txt'), 'w') as fte:
        for u, s, n in zip(uniq.tolist(), starts.tolist(), counts.tolist()):
            its = items[s:s + n]
            n_test = min(max(int(round(a.frac * n)), 0), n - 1)
            mask = np.zeros(n, dtype=bool)
            if n_test:
                mask[rng.choice(n, size=n_test, replace=False)] = True
            tr, te = its[~mask], its[mask]
            ftr.write(' '.join(map(str, [u] + tr.tolist())) + '\n')
            n_tr += len(tr)
            if len(te):
                fte.write(' '.join(map(str, [u] + te.tolist())) + '\n')
                n_te += len(te)
                n_te_users += 1

    link = os.path.join(a.out, 'kg_final.txt')
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(os.path.join(a.data, 'kg_final.txt')), link)
    print(f'kg_split: {len(uniq)} users, {int(items.max()) + 1} items, {n_tr} train pairs, '
          f'{n_te} test pairs over {n_te_users} users (frac {a.frac}, seed {a.seed}) -> {a.out}')


if __name__ == '__main__':
    main()
