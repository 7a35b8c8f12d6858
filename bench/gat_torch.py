#!/usr/bin/env python3
"""Reference GAT recommender in PyTorch (CPU): gnnrec's `--model gat`, for side-by-side comparison.

Graph attention networks (Velickovic et al., ICLR 2018) on the user-item graph, written as the
paper's public code writes a layer (PetarV-/GAT utils/layers.py `attn_head`, models/gat.py; the
multi-head layer of its PPI model), on the sparse structure as DGL's GATConv computes it: the two
halves of the logit gathered per edge, the edge softmax (a scatter-max, exp, a scatter-sum, as
DGL's and PyG's edge_softmax), and the weighted sum of the neighbours as DGL's update_all(u_mul_e,
sum): a sparse product per head, never N x N.
Where gnnrec's gat.c (docs/models.md, "gat") chooses, this script follows gnnrec:

- the layer-0 features are learned embeddings of users and items, N(0, 0.1), one [N x dim] table
  (users' rows first); the paper's nodes have fixed features;
- the graph: every training pair in both directions plus a self-loop on every node (the paper's
  N_i includes i; its code's bias_mat adds the identity too);
- layer l, head h: x = dropout(H_{l-1}) (--dropout, inverted), drawn once per layer and shared by
  the heads (the paper's code draws one per head and also drops the transformed features z);
  z = x W_lh (W_lh [din x dim], no bias: the paper's conv1d has none either); s = z a_src,
  t = z a_dst (the paper's a in R^{2 dim} in its halves; its code computes them with two conv1d
  that carry biases, gnnrec's have none); e_ij = LeakyReLU_0.2(s_i + t_j) for the edge (i, j),
  i the node that aggregates; alpha = softmax of e over row i (its maximum subtracted); dropout
  on alpha (--attn-dropout, per head and edge); o_i = sum_j alpha_ij z_j, no bias (the paper's
  code adds one);
- hidden layers: ELU of the heads concatenated, [N x heads dim]; the last layer: the heads'
  mean, no nonlinearity (the paper's PPI output layer); no residual connections;
- the published vectors are the last layer's output, [N x dim];
- BPR (mean softplus(neg - pos)), plus decay / 2 / batch * the squared norms of the batch's
  layer-0 rows (the LightGCN code's regulariser, as gnnrec's lightgcn and gcn) plus decay / 2 *
  the squared norm of every W and a once per batch (the paper's L2 on the weights, tf.nn.l2_loss
  times its own coefficient);
- W and a Glorot uniform with gain 1 (the paper's TensorFlow code: glorot for its conv1d kernels;
  pyGAT uses gain 1.414), a with the fan of a [2 dim x 1] vector as the paper writes it;
- torch's Adam; defaults gnnrec's: dim 64, 2 layers, 4 heads in every layer, dropout 0.1,
  attention dropout 0.1 (the paper's 0.6 is for a few hundred labelled nodes with bag-of-words
  features), lr 1e-3, decay 1e-4, batch 2048.

Data, sampler, training loop, evaluation and output: ../shared/peers/lightgcn_torch.py's, through
bench/torch_refs.py. Each batch runs the whole graph forward and backward: per layer one sgemm for
all heads, [edges x heads] logits and coefficients, and per head a torch.sparse.mm (COO) each
way; the coefficients' gradient is a dot product per edge, gathered in chunks (EdgeAggregate: a
hand-written backward, since torch 1.13's sparse.mm would form the dense N x N gradient of the
sparse values). PyG's GATConv instead materialises [edges x heads x dim] messages: written that
way this script took 11 GiB and 85% of its time in page faults on gowalla.

  /usr/bin/python3 bench/gat_torch.py --data ../shared/data/lastfm --epochs 1 --threads 2
"""
import warnings

import numpy as np
import torch

import torch_refs

warnings.filterwarnings('ignore', message='scatter_reduce')  # beta in torch 1.13


class Graph:
    """The user-item graph, both directions, with a self-loop on every node, as an edge list in
    CSR order (row: the node that aggregates, col: its neighbour), and the same edges transposed
    for the backward."""

    def __init__(self, tu, ti, n_users, n_items):
        n = n_users + n_items
        loops = np.arange(n)
        row = np.concatenate([tu, ti + n_users, loops])
        col = np.concatenate([ti + n_users, tu, loops])
        order = np.lexsort((col, row))  # as gnnrec's CSR; only the rounding depends on it
        self.n = n
        self.row, self.col = torch.from_numpy(row[order]), torch.from_numpy(col[order])
        self.perm_t = torch.from_numpy(np.lexsort((self.row.numpy(), self.col.numpy())))
        self.idx = torch.stack([self.row, self.col])
        self.idx_t = torch.stack([self.col[self.perm_t], self.row[self.perm_t]])

    def matrix(self, values):
        """[n x n] sparse, values[k] at (row[k], col[k])."""
        return torch.sparse_coo_tensor(self.idx, values, (self.n, self.n))._coalesced_(True)

    def matrix_t(self, values):
        """The transpose of matrix(values)."""
        return torch.sparse_coo_tensor(self.idx_t, values[self.perm_t],
                                       (self.n, self.n))._coalesced_(True)


def edge_softmax(e, row, n):
    """e [E x H] -> alpha [E x H], the softmax of e over each row's edges (PyG's and DGL's
    edge_softmax: the row's maximum subtracted)."""
    idx = row.unsqueeze(1).expand_as(e)
    mx = torch.full((n, e.shape[1]), -float('inf')).scatter_reduce(0, idx, e.detach(), 'amax')
    ex = (e - mx[row]).exp()
    return ex / torch.zeros(n, e.shape[1]).index_add(0, row, ex)[row]


class EdgeAggregate(torch.autograd.Function):
    """o[i, h] = sum over the edges (i, j) of alpha[(i, j), h] z[j, h]: DGL's update_all(u_mul_e,
    sum), a sparse product per head, whose backward is the product with the transpose (for z)
    and a sampled dot product per edge (for alpha), never an [edges x heads x dim] tensor."""

    CHUNK = 1 << 15  # edges per gather of the backward's dot products

    @staticmethod
    def forward(ctx, alpha, z, graph):
        ctx.save_for_backward(alpha, z)
        ctx.graph = graph
        return torch.stack([torch.sparse.mm(graph.matrix(alpha[:, h].contiguous()),
                                            z[:, h].contiguous()) for h in range(z.shape[1])], 1)

    @staticmethod
    def backward(ctx, dout):
        alpha, z = ctx.saved_tensors
        g = ctx.graph
        dalpha = dz = None
        if ctx.needs_input_grad[1]:
            dz = torch.stack([torch.sparse.mm(g.matrix_t(alpha[:, h].contiguous()),
                                              dout[:, h].contiguous())
                              for h in range(z.shape[1])], 1)
        if ctx.needs_input_grad[0]:
            dalpha = torch.empty_like(alpha)
            for s in range(0, len(g.row), EdgeAggregate.CHUNK):
                r, c = g.row[s:s + EdgeAggregate.CHUNK], g.col[s:s + EdgeAggregate.CHUNK]
                dalpha[s:s + len(r)] = (dout[r] * z[c]).sum(2)
        return dalpha, dz, None


class GAT(torch.nn.Module):
    def __init__(self, n_users, n_items, dim, layers, heads, dropout, attn_dropout, decay, graph):
        super().__init__()
        self.n_users, self.n_items, self.dim, self.heads = n_users, n_items, dim, heads
        self.dropout, self.attn_dropout, self.decay = dropout, attn_dropout, decay
        self.graph = graph
        self.emb = torch.nn.Parameter(torch.empty(n_users + n_items, dim))
        torch.nn.init.normal_(self.emb, std=0.1)
        self.W = torch.nn.ParameterList()  # layer l: [heads x din x dim]
        self.a = torch.nn.ParameterList()  # layer l: [heads x dim x 2], columns a_src, a_dst
        for l in range(layers):
            din = dim if l == 0 else heads * dim
            W, a = torch.empty(heads, din, dim), torch.empty(heads, dim, 2)
            for h in range(heads):
                torch.nn.init.xavier_uniform_(W[h])
                torch.nn.init.xavier_uniform_(a[h].view(2 * dim, 1))
            self.W.append(torch.nn.Parameter(W))
            self.a.append(torch.nn.Parameter(a))

    def propagate(self):
        n, H, d = self.emb.shape[0], self.heads, self.dim
        row, col = self.graph.row, self.graph.col
        drop = torch.nn.functional.dropout
        h = self.emb
        for l, (W, a) in enumerate(zip(self.W, self.a)):
            x = drop(h, self.dropout, self.training)
            z = (x @ W.permute(1, 0, 2).reshape(W.shape[1], H * d)).view(n, H, d)  # one sgemm
            s = (z * a[:, :, 0]).sum(2)  # [n x H]
            t = (z * a[:, :, 1]).sum(2)
            e = torch.nn.functional.leaky_relu(s[row] + t[col], 0.2)  # [E x H]
            alpha = drop(edge_softmax(e, row, n), self.attn_dropout, self.training)
            o = EdgeAggregate.apply(alpha, z, self.graph)  # [n x H x d]
            if l + 1 < len(self.W):
                h = torch.nn.functional.elu(o.reshape(n, H * d))
            else:
                h = o.mean(1)
        return torch.split(h, [self.n_users, self.n_items])

    def reg(self, u, p, n, U, I):
        e = self.emb
        rows = e[u].pow(2).sum() + e[self.n_users + p].pow(2).sum() + e[self.n_users + n].pow(2).sum()
        weights = sum(W.pow(2).sum() for W in self.W) + sum(a.pow(2).sum() for a in self.a)
        return self.decay / 2 * (rows / len(u) + weights)


def main():
    ap = torch_refs.parser(__doc__.splitlines()[0], lr=1e-3, decay=1e-4, batch=2048, layers=2)
    ap.add_argument('--heads', type=int, default=4, help='attention heads of every layer')
    ap.add_argument('--dropout', type=float, default=0.1, help='on every layer\'s input')
    ap.add_argument('--attn-dropout', type=float, default=0.1,
                    help='on the attention coefficients, per head and edge')
    a = ap.parse_args()
    torch_refs.run(a, lambda d: GAT(d.n_users, d.n_items, a.dim, a.layers, a.heads, a.dropout,
                                    a.attn_dropout, a.decay,
                                    Graph(d.tu, d.ti, d.n_users, d.n_items)))


if __name__ == '__main__':
    main()
