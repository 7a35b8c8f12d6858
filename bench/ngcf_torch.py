#!/usr/bin/env python3
"""Reference NGCF in PyTorch (CPU): gnnrec's `--model ngcf`, for side-by-side comparison.

NGCF (Wang et al., SIGIR 2019) as its public code, xiangwang1223/neural_graph_collaborative_
filtering NGCF/NGCF.py, line for line where gnnrec's ngcf.c follows it (docs/models.md, "ngcf"):

- `_init_weights`: Xavier uniform for every tensor, the user and the item embeddings each with
  their own fan ([users x dim], [items x dim]), W_gc, W_bi [dim x dim], b_gc, b_bi [1 x dim];
- `_create_ngcf_embed`: per layer side = L E; E' = LeakyReLU(side W_gc + b_gc) + LeakyReLU((E *
  side) W_bi + b_bi), slope 0.2 (tf.nn.leaky_relu's); message dropout on E'; E' feeds the next
  layer, and its rows scaled to unit length (tf.math.l2_normalize: x / sqrt(max(sum x^2, 1e-12)))
  join the output [E_0 | norm(E_1) | ... | norm(E_L)];
- `_dropout_sparse` (node dropout): each non-zero of L kept with probability 1 - p, independently
  of its transpose, the kept ones scaled by 1 / (1 - p), drawn once per batch for all layers;
- `create_bpr_loss`: mean softplus(neg - pos) plus decay / 2 / batch * the squared norms of the
  batch's rows of the final, concatenated vectors (tf.nn.l2_loss / batch_size); no weight decay;
- Adam; defaults the paper's: dim 64, 3 layers of 64, lr 1e-4, decay 1e-5, batch 1024, message
  dropout 0.1, node dropout 0.1; neither dropout at evaluation.

Where gnnrec (and so this script) departs from that code: L is the paper's D^-1/2 A D^-1/2
without self-loops (lightgcn_torch.norm_adj; the code's default --adj_type builds D^-1 (A + I));
the regulariser divides by the batch's actual size, which differs from the code's batch_size only
in an epoch's last, shorter batch; the sampler and evaluation are the LightGCN protocol's.

Data, sampler, training loop, evaluation and output: ../shared/peers/lightgcn_torch.py's, through
bench/torch_refs.py. The graph is propagated in full once per batch with torch.sparse.mm (COO).

  /usr/bin/python3 bench/ngcf_torch.py --data ../shared/data/lastfm --epochs 1 --threads 2
"""
import torch

import torch_refs


def xavier(rows, cols):
    return torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(rows, cols)))


class NGCF(torch.nn.Module):
    def __init__(self, n_users, n_items, dim, layers, dropout, node_dropout, decay, graph):
        super().__init__()
        self.n_users, self.n_items, self.graph = n_users, n_items, graph
        self.dropout, self.node_dropout, self.decay = dropout, node_dropout, decay
        self.user = xavier(n_users, dim)
        self.item = xavier(n_items, dim)
        self.W_gc = torch.nn.ParameterList([xavier(dim, dim) for _ in range(layers)])
        self.b_gc = torch.nn.ParameterList([xavier(1, dim) for _ in range(layers)])
        self.W_bi = torch.nn.ParameterList([xavier(dim, dim) for _ in range(layers)])
        self.b_bi = torch.nn.ParameterList([xavier(1, dim) for _ in range(layers)])

    def dropped_graph(self):
        """The graph with each non-zero kept with probability 1 - p and rescaled (still
        coalesced: a subset of a coalesced tensor's entries, in order)."""
        g, p = self.graph, self.node_dropout
        keep = torch.rand(g._nnz()) >= p
        return torch.sparse_coo_tensor(g._indices()[:, keep], g._values()[keep] / (1 - p),
                                       g.shape)._coalesced_(True)

    def propagate(self):
        lrelu = torch.nn.functional.leaky_relu
        graph = self.dropped_graph() if self.training and self.node_dropout > 0 else self.graph
        e = torch.cat([self.user, self.item])
        out = [e]
        for W_gc, b_gc, W_bi, b_bi in zip(self.W_gc, self.b_gc, self.W_bi, self.b_bi):
            side = torch.sparse.mm(graph, e)
            e = lrelu(side @ W_gc + b_gc, 0.2) + lrelu((e * side) @ W_bi + b_bi, 0.2)
            e = torch.nn.functional.dropout(e, self.dropout, self.training)
            out.append(e * torch.rsqrt(e.pow(2).sum(1, keepdim=True).clamp_min(1e-12)))
        return torch.split(torch.cat(out, 1), [self.n_users, self.n_items])

    def reg(self, u, p, n, U, I):
        return self.decay / 2 * (U[u].pow(2).sum() + I[p].pow(2).sum() + I[n].pow(2).sum()) / len(u)


def main():
    ap = torch_refs.parser(__doc__.splitlines()[0], lr=1e-4, decay=1e-5, batch=1024, layers=3,
                           dropout=0.1)
    ap.add_argument('--node-dropout', type=float, default=0.1,
                    help='dropout of the graph\'s non-zeros, redrawn every batch')
    a = ap.parse_args()
    torch_refs.run(a, lambda d: NGCF(d.n_users, d.n_items, a.dim, a.layers, a.dropout,
                                     a.node_dropout, a.decay,
                                     torch_refs.lgn.norm_adj(d.tu, d.ti, d.n_users, d.n_items)))


if __name__ == '__main__':
    main()
