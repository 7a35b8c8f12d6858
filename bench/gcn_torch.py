#!/usr/bin/env python3
"""Reference GCN recommender in PyTorch (CPU): gnnrec's `--model gcn`, for side-by-side comparison.

Kipf & Welling's graph convolution (ICLR 2017) used as a recommender the way the NGCF paper's GCN
baseline is: the structure of `_create_gcn_embed` in xiangwang1223/neural_graph_collaborative_
filtering NGCF/NGCF.py (user and item embeddings stacked; per layer the graph times the previous
layer, a weight matrix, an activation, message dropout; all layers concatenated with layer 0,
scored by inner product), with gnnrec's choices where gnnrec's gcn.c departs from that code
(docs/models.md, "gcn"):

- the graph is Kipf & Welling's renormalised adjacency with self-loops, D^-1/2 (A + I) D^-1/2,
  D the degrees of A + I (the NGCF code feeds its --adj_type matrix instead);
- H_l = dropout(ReLU(Â H_{l-1} W_l)): ReLU (the NGCF code: LeakyReLU) and no bias (the NGCF code
  has b_gc; Kipf's layer has none), inverted dropout --dropout on every layer's output, masks
  drawn once per batch, none at evaluation;
- the embeddings N(0, 0.1) as mf and lightgcn; the W_l [dim x dim] Xavier uniform (NGCF code:
  Xavier for everything);
- the vectors [H_0 | H_1 | ... | H_L], length (L + 1) dim;
- BPR (mean softplus(neg - pos)), plus decay / 2 / batch * the squared norms of the batch's
  layer-0 rows (the LightGCN code's regulariser, as gnnrec's lightgcn; the NGCF code puts it on
  the final vectors) plus decay / 2 * sum_l ||W_l||_F^2 once per batch;
- torch's Adam; defaults dim 64, 2 layers, dropout 0.1, lr 1e-3, decay 1e-4, batch 2048.

Data, sampler, training loop, evaluation and output: ../shared/peers/lightgcn_torch.py's, through
bench/torch_refs.py. The graph is propagated in full once per batch with torch.sparse.mm (COO, as
lightgcn_torch.py: torch 1.13's CSR backward was slower on gowalla).

  /usr/bin/python3 bench/gcn_torch.py --data ../shared/data/lastfm --epochs 1 --threads 2
"""
import numpy as np
import torch

import torch_refs


def renorm_adj(tu, ti, n_users, n_items):
    """D^-1/2 (A + I) D^-1/2 over users then items, D the degrees of A + I, as sparse COO."""
    n = n_users + n_items
    loops = np.arange(n)
    rows = np.concatenate([tu, ti + n_users, loops])
    cols = np.concatenate([ti + n_users, tu, loops])
    dinv = (np.bincount(rows, minlength=n).astype(np.float64)) ** -0.5  # >= 1: the self-loop
    vals = (dinv[rows] * dinv[cols]).astype(np.float32)
    idx = torch.from_numpy(np.vstack([rows, cols]))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(vals), (n, n)).coalesce()


class GCN(torch.nn.Module):
    def __init__(self, n_users, n_items, dim, layers, dropout, decay, graph):
        super().__init__()
        self.n_users, self.n_items, self.graph = n_users, n_items, graph
        self.dropout, self.decay = dropout, decay
        self.emb = torch.nn.Parameter(torch.empty(n_users + n_items, dim))
        torch.nn.init.normal_(self.emb, std=0.1)
        self.W = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(dim, dim)))
             for _ in range(layers)])

    def propagate(self):
        h = self.emb
        out = [h]
        for W in self.W:
            h = torch.relu(torch.sparse.mm(self.graph, h) @ W)
            h = torch.nn.functional.dropout(h, self.dropout, self.training)
            out.append(h)
        return torch.split(torch.cat(out, 1), [self.n_users, self.n_items])

    def reg(self, u, p, n, U, I):
        e = self.emb
        rows = e[u].pow(2).sum() + e[self.n_users + p].pow(2).sum() + e[self.n_users + n].pow(2).sum()
        return self.decay / 2 * (rows / len(u) + sum(W.pow(2).sum() for W in self.W))


def main():
    ap = torch_refs.parser(__doc__.splitlines()[0], lr=1e-3, decay=1e-4, batch=2048, layers=2,
                           dropout=0.1)
    a = ap.parse_args()
    torch_refs.run(a, lambda d: GCN(d.n_users, d.n_items, a.dim, a.layers, a.dropout, a.decay,
                                    renorm_adj(d.tu, d.ti, d.n_users, d.n_items)))


if __name__ == '__main__':
    main()
