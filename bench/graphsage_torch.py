#!/usr/bin/env python3
"""Reference GraphSAGE recommender in PyTorch (CPU): gnnrec's `--model graphsage`, for comparison.

GraphSAGE (Hamilton, Ying & Leskovec, NeurIPS 2017) trained on sampled subgraphs as the paper's
Algorithm 2 and its public code (williamleif/GraphSAGE: graphsage/models.py `SampleAndAggregate`,
aggregators.py `MeanAggregator`, `MaxPoolingAggregator`, `SeqAggregator`), with the sampling
written as PyG's NeighborSampler does it (a node set per hop whose first rows are the previous
hop's nodes, neighbour lists as edge lists over it, so a node reached twice is computed once).
Where gnnrec's graphsage.c (docs/models.md, "graphsage") chooses, this script follows gnnrec:

- nodes are users and items (users' rows first), edges the training pairs in both directions, no
  self-loops; the layer-0 features are learned embeddings E0 [N x dim], N(0, 0.1) (the paper's
  nodes have features; there are none here);
- K layers (--layers 2): h^k_v = norm(sigma(W_k [h^{k-1}_v || AGG_k(h^{k-1} of v's sampled
  neighbours)])), W_k [2 dim x dim] Xavier, no bias: the paper's equation (its code's aggregators
  transform the two halves by separate matrices and, with concat, its default, concatenate the
  results, 2 dim wide; their bias is off by default); sigma ReLU below the last layer, the
  identity at layer K (the code's last layer is linear too); norm each row to unit length at
  every layer (the paper's Algorithm 1, line 7, with tf.math.l2_normalize's floor 1e-12; the
  code normalises only the final output);
- aggregators (--aggregator): mean (the element-wise mean of the neighbours, zeros without any;
  the code's MeanAggregator); max (the element-wise max, zeros without neighbours); pool (max over
  ReLU(h_u P_k + pb_k), P_k [dim x dim] Xavier, pb_k zero: the code's MaxPoolingAggregator, whose
  one hidden layer is 512 wide); lstm (an LSTM of hidden size dim from a zero state over the
  neighbours in a random order, its last hidden state at the list's own length, gates [i f g o] =
  h_u Lx_k + lb_k + h_{t-1} Lh_k, Lx_k, Lh_k [dim x 4 dim] Xavier, lb_k zero, one bias (torch's
  nn.LSTM has two), no peepholes: the code's SeqAggregator, a BasicLSTMCell of 128 units with
  forget bias 1 there; written out step by step over the lists sorted by length, as a packed
  sequence);
- sampling, per batch: B^K = the batch's users, positives and negatives; for k = K..1 every node
  of B^k gets up to S_k neighbours uniform without replacement (Floyd's algorithm, vectorised over
  the nodes; every neighbour when the degree is at most S_k; the paper's code takes the first S_k
  columns, shuffled per batch, of a fixed table of 128 neighbours per node drawn once, with
  repetition below that degree), each list shuffled for lstm; B^{k-1} = B^k plus the new nodes;
  h^k computed on B^k only; --fanout S_1,...,S_K (25,10: the batch's nodes get 10, as the code's
  samples_2 for its first hop);
- the published (and evaluated) vectors: every node, every neighbour (no sampling), the lists in
  index order, h^K;
- BPR (mean softplus(neg - pos)) on h^K, plus decay / 2 / batch * the squared norms of the batch's
  rows of E0 (as gnnrec's lightgcn) plus decay / 2 * the squared norms of W_k and of P_k or
  Lx_k and Lh_k (not the biases) once per batch;
- torch's Adam; defaults gnnrec's: dim 64, 2 layers, fan-outs 25,10, mean, lr 1e-3, decay 1e-4,
  batch 2048.

Data, sampler of triples, training loop, evaluation and output: ../shared/peers/lightgcn_torch.py's,
through bench/torch_refs.py (this model's batch_vectors() gives the batch's rows of h^K from its
subgraph).

  /usr/bin/python3 bench/graphsage_torch.py --data ../shared/data/lastfm --epochs 1 --threads 2
"""
import warnings

import numpy as np
import torch

import torch_refs

warnings.filterwarnings('ignore', message='scatter_reduce')  # beta in torch 1.13

AGGREGATORS = ('mean', 'max', 'pool', 'lstm')


def csr(tu, ti, n_users, n_items):
    """(ptr, idx) of the user-item graph, both directions, rows sorted by column."""
    n = n_users + n_items
    row = np.concatenate([tu, ti + n_users])
    col = np.concatenate([ti + n_users, tu])
    order = np.lexsort((col, row))
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=ptr[1:])
    return torch.from_numpy(ptr), torch.from_numpy(col[order])


class Lists:
    """Neighbour lists of n_out nodes over the rows of an input table: entry q belongs to list
    row[q] and reads input row src[q]; list r holds entries ptr[r] .. ptr[r + 1] in order."""

    def __init__(self, ptr, src):
        self.ptr, self.src = ptr, src
        self.len = ptr[1:] - ptr[:-1]
        self.row = torch.repeat_interleave(torch.arange(len(self.len)), self.len)


class GraphSAGE(torch.nn.Module):
    def __init__(self, n_users, n_items, dim, fanout, aggregator, decay, graph):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.fanout, self.agg, self.decay = fanout, aggregator, decay
        self.ptr, self.idx = graph
        n = n_users + n_items
        self.local = torch.full((n,), -1, dtype=torch.int64)  # a node's row in B^0, or -1
        self.emb = torch.nn.Parameter(torch.empty(n, dim))
        torch.nn.init.normal_(self.emb, std=0.1)

        def xavier(rows, cols):
            return torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(rows, cols)))

        self.W = torch.nn.ParameterList([xavier(2 * dim, dim) for _ in fanout])
        if aggregator == 'pool':
            self.P = torch.nn.ParameterList([xavier(dim, dim) for _ in fanout])
            self.pb = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(1, dim))
                                              for _ in fanout])
        if aggregator == 'lstm':
            self.Lx = torch.nn.ParameterList([xavier(dim, 4 * dim) for _ in fanout])
            self.Lh = torch.nn.ParameterList([xavier(dim, 4 * dim) for _ in fanout])
            self.lb = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(1, 4 * dim))
                                              for _ in fanout])

    # -- sampling ----------------------------------------------------------------------------

    def sample(self, nodes, s):
        """Up to s neighbours of each of nodes, uniform without replacement (Floyd's algorithm,
        all of them at degree <= s), each list shuffled for lstm: Lists over global node ids."""
        start = self.ptr[nodes]
        deg = self.ptr[nodes + 1] - start
        k = deg.clamp(max=s)
        lptr = torch.zeros(len(nodes) + 1, dtype=torch.int64)
        torch.cumsum(k, 0, out=lptr[1:])
        row = torch.repeat_interleave(torch.arange(len(nodes)), k)
        off = torch.arange(len(row)) - lptr[row]  # a short list: every neighbour in order
        big = deg > s
        if big.any():
            d = deg[big]
            pick = torch.empty(len(d), s, dtype=torch.int64)
            for c in range(s):  # Floyd: j runs over deg - s .. deg - 1
                j = d - s + c
                t = (torch.rand(len(d), dtype=torch.float64) * (j + 1)).long().clamp(max=j)
                if c:
                    t = torch.where((pick[:, :c] == t.unsqueeze(1)).any(1), j, t)
                pick[:, c] = t
            off[big[row]] = pick.flatten()  # the long lists' entries, in row order
        if self.agg == 'lstm':  # a random order within every list
            order = torch.argsort(row.double() + torch.rand(len(row), dtype=torch.float64))
            off = off[order]
        return Lists(lptr, self.idx[start[row] + off])

    def subgraph(self, targets):
        """Algorithm 2's node sets for the batch's nodes: (B^0 as global ids, every B^k a prefix
        of it; per layer l, Lists of B^{l+1} over B^l's rows; the targets' rows in B^K)."""
        n_id, inv = torch.unique(targets, return_inverse=True)
        sizes, lists = [len(n_id)], []
        local = self.local
        local[n_id] = torch.arange(len(n_id))
        for s in reversed(self.fanout):
            lst = self.sample(n_id[:sizes[0]], s)
            new = torch.unique(lst.src[local[lst.src] < 0])
            local[new] = torch.arange(len(n_id), len(n_id) + len(new))
            n_id = torch.cat([n_id, new])
            lst.src = local[lst.src]
            lists.insert(0, lst)
            sizes.insert(0, len(n_id))
        local[n_id] = -1
        return n_id, sizes, lists, inv

    # -- layers ------------------------------------------------------------------------------

    def aggregate(self, l, x, lst):
        n, d = len(lst.len), self.dim
        if self.agg == 'mean':
            s = torch.zeros(n, d).index_add(0, lst.row, x[lst.src])
            return s / lst.len.clamp(min=1).unsqueeze(1).to(s.dtype)
        if self.agg in ('max', 'pool'):
            if self.agg == 'pool':
                x = torch.relu(x @ self.P[l] + self.pb[l])
            idx = lst.row.unsqueeze(1).expand(-1, d)
            return torch.zeros(n, d).scatter_reduce(0, idx, x[lst.src], 'amax', include_self=False)
        # lstm: the lists sorted by length, longest first, so that the lists still running at
        # step t are a prefix (a packed sequence)
        xw = x @ self.Lx[l] + self.lb[l]
        order = torch.argsort(lst.len, descending=True)
        lens, first = lst.len[order], lst.ptr[:-1][order]
        steps = int(lens[0]) if n else 0
        running = (lens.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()  # at t
        h, c = torch.zeros(n, d), torch.zeros(n, d)
        for t in range(steps):
            m = running[t]
            g = xw[lst.src[first[:m] + t]]
            if t:
                g = g + h[:m] @ self.Lh[l]
            i, f, gg, o = g.chunk(4, 1)
            c_t = torch.sigmoid(i) * torch.tanh(gg)
            if t:
                c_t = c_t + torch.sigmoid(f) * c[:m]
            h_t = torch.sigmoid(o) * torch.tanh(c_t)
            h, c = torch.cat([h_t, h[m:]]), torch.cat([c_t, c[m:]])
        return h[torch.argsort(order)]

    def layers(self, h, sizes, lists):
        """h^K of B^K's rows from h^0 of B^0's rows."""
        K = len(self.W)
        for l in range(K):
            n = sizes[l + 1]
            z = torch.cat([h[:n], self.aggregate(l, h, lists[l])], 1) @ self.W[l]
            if l < K - 1:
                z = torch.relu(z)
            h = z * torch.rsqrt(z.pow(2).sum(1, keepdim=True).clamp_min(1e-12))
        return h

    def batch_vectors(self, u, p, n):
        nu = self.n_users
        targets = torch.cat([u, nu + p, nu + n])
        n_id, sizes, lists, inv = self.subgraph(targets)
        h = self.layers(self.emb[n_id], sizes, lists)[inv]
        return h.split([len(u), len(p), len(n)])

    def propagate(self):
        """Every node over its full neighbourhood, lists in index order (no sampling)."""
        n = self.n_users + self.n_items
        full = Lists(self.ptr, self.idx)
        h = self.layers(self.emb, [n] * (len(self.W) + 1), [full] * len(self.W))
        return torch.split(h, [self.n_users, self.n_items])

    def reg(self, u, p, n, U, I):
        e = self.emb
        rows = e[u].pow(2).sum() + e[self.n_users + p].pow(2).sum() + e[self.n_users + n].pow(2).sum()
        mats = list(self.W)
        if self.agg == 'pool':
            mats += list(self.P)
        if self.agg == 'lstm':
            mats += list(self.Lx) + list(self.Lh)
        return self.decay / 2 * (rows / len(u) + sum(w.pow(2).sum() for w in mats))


def main():
    ap = torch_refs.parser(__doc__.splitlines()[0], lr=1e-3, decay=1e-4, batch=2048, layers=2)
    ap.add_argument('--fanout', default='25,10',
                    help='neighbours sampled per node for layers 1..K, one value per layer')
    ap.add_argument('--aggregator', default='mean', choices=AGGREGATORS)
    a = ap.parse_args()
    fanout = [int(x) for x in a.fanout.split(',')]
    if len(fanout) != a.layers:
        ap.error(f'--fanout has {len(fanout)} values, one per layer is needed (--layers {a.layers})')
    torch_refs.run(a, lambda d: GraphSAGE(d.n_users, d.n_items, a.dim, fanout, a.aggregator,
                                          a.decay, csr(d.tu, d.ti, d.n_users, d.n_items)))


if __name__ == '__main__':
    main()
