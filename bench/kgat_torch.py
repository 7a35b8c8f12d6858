#!/usr/bin/env python3
"""Reference KGAT in PyTorch (CPU): gnnrec's `--model kgat`, for side-by-side comparison.

KGAT (Wang et al., KDD 2019, "KGAT: Knowledge Graph Attention Network for Recommendation") after
its public code, xiangwang1223/knowledge_graph_attention_network (TensorFlow 1: Model/KGAT.py,
Model/Main.py, Model/utility/loader_kgat.py, load_data.py; "TF" below) and its PyTorch port
LunaBlack/KGAT-pytorch (model/KGAT.py, data_loader/loader_kgat.py + loader_base.py, main_kgat.py;
"KP" below). The C implementation matches the choices listed here exactly; for each, where it
follows which code and where it departs.

Data (`--data DIR`)
- train.txt, test.txt in the LightGCN format (a line per user: `user item item ...`, 0-based),
  read by ../shared/peers/lightgcn_torch.py's read_lgn; kg_final.txt, lines `head relation tail`.
  Item i is entity i (TF, KP). n_users = 1 + max user id, n_items = 1 + max item id (train and
  test; TF, KP), R = 1 + max relation id (TF, KP), n_entities = max(1 + max entity id of the KG,
  n_items) (TF and KP take 1 + max entity id only: they assume every item is in the KG).
- Repeated lines are kept as they are. Departure: TF de-duplicates (np.unique on the KG, set() on
  a user's items), KP too (drop_duplicates on the KG, set() on a user's items). kgcn-music has none.

The collaborative knowledge graph (CKG)
- Nodes: entities 0..n_entities-1, then user u is node n_entities + u (KP's order; TF puts the
  users first, which changes nothing but the numbering). N = n_entities + n_users.
- 2R+2 relations: 0 = interact (user -> item), 1..R = KG relation r as r+1, R+1 = interacted-by
  (item -> user), R+2..2R+1 = inverse KG relation r as r+R+2 (tail -> head). These are TF's ids
  (loader_kgat._get_relational_adj_list); KP numbers them 0 = interact, 1 = interacted-by,
  2..R+1 = KG, R+2..2R+1 = inverse KG (same graph, other ids).
- Every training interaction and every KG triple gives an edge in both directions (TF, KP).
  Edges are kept as they come, a repeated (h, r, t) twice. A pair (h, t) may be joined by
  several relations (kgcn-music: 15518 triples over 9807 (h, t) pairs, 49 self-loops): each is
  its own edge.
  Edges are stored sorted by (head, relation, tail).

Parameters (KP's layout)
- E [N x d] (node embeddings), Rm [(2R+2) x d_r], W_R [(2R+2) x d x d_r] (KP's trans_M, TF's
  trans_W), per layer l = 1..L (d_0 = d, d_1..d_L = --layer-dims) the bi-interaction
  aggregator's W1_l, W2_l (nn.Linear(d_{l-1}, d_l): weight stored [d_l x d_{l-1}], applied as
  x W^T) with biases b1_l, b2_l [d_l].
- Init: torch.nn.init.xavier_uniform_ on each tensor as a whole, U(-a, a), a = sqrt(6 / (fan_in +
  fan_out)) with torch's fans: E: fan_in d, fan_out N; Rm: d_r, 2R+2; W_R (3-D): fan_in = d*d_r,
  fan_out = (2R+2)*d_r; W1_l, W2_l: d_{l-1}, d_l. Biases zero. KP does exactly this for E, Rm,
  W_R and the weights, but leaves the biases at nn.Linear's default U(-1/sqrt(d_{l-1}), ..)
  (departure: zero here). TF: Xavier with TF's fans (users and entities as two tensors; a 3-D
  trans_W gets fan_in = (2R+2)*d, fan_out = (2R+2)*d_r) and Xavier-initialised [1 x d_l] biases.
  Departure from both: no pre-training; TF's README runs KGAT with --pretrain -1 (user and item
  embeddings from a trained BPRMF) and KP's --use_pretrain defaults to 1 (the same).

Attention (KP's update_attention, TF's update_attentive_A / _generate_transE_score)
- Per CKG edge (h, r, t): pi = sum((e_t W_r) * tanh(e_h W_r + r_emb)) (no normalisation, as both),
  softmax over all the edges leaving h, every relation together (TF, KP). A = the sparse [N x N]
  matrix whose (h, t) entry is the sum of the weights of the edges h -> t. Computed with no
  gradient from the current E, Rm, W_R: the CF loss does not train it (TF, KP).
- Computed per relation, vectorised (KP's update_attention_batch), then a sparse softmax over
  rows (torch.sparse.softmax) of the [N x n_edges] matrix with an entry (h, edge id) per edge: a
  softmax per edge even where a pair (h, t) has several edges. KP softmaxes the [N x N] matrix
  directly, and torch.sparse.softmax coalesces it first, which SUMS the logits of a pair's edges
  (weight exp(pi1 + pi2) instead of exp(pi1) + exp(pi2)); TF's tf.sparse.softmax keeps them apart,
  as here.
- When: once at set-up, then after every epoch's KG phase (TF, KP). Departure: both start from
  the sum over relations of the row-normalised per-relation adjacency (TF adj_type 'si', KP
  laplacian_type 'random-walk'), not from attention. Note: in TF the propagation's sparse matrix
  is built from that initial A_in when the graph is constructed (_split_A_hat in
  _create_bi_interaction_embed, constants), and update_attentive_A only rebinds the Python
  attribute, so in TF the attention never reaches the propagation (issue #30 on that repository
  reports the same); KP does use it.

Propagation (the CF forward, every CF batch, on the whole graph; TF _create_bi_interaction_embed)
- e^(0) = E; per layer: e_N = A e^(l-1) (torch.sparse.mm on the coalesced COO A; its gradient
  uses a stored coalesced A^T); e^(l) = LeakyReLU((e^(l-1) + e_N) W1_l + b1_l) +
  LeakyReLU((e^(l-1) * e_N) W2_l + b2_l); message dropout (inverted, p = --dropout per layer) on
  e^(l). The layer's output is row-wise L2-normalised (F.normalize: x / max(||x||, 1e-12); TF's
  l2_normalize is x / sqrt(max(||x||^2, 1e-12))), while the unnormalised e^(l), after dropout,
  feeds the next layer. That is TF (ego_embeddings feeds on, norm_embeddings is only concatenated)
  and KP's model/KGAT.py as of commit 5d6ce2f (calc_cf_embeddings normalises only what it
  appends); KP's model/KGAT.py at commit 134b071 (Aggregator.forward returning the normalised
  vectors) fed the normalised ones forward.
- LeakyReLU slope 0.2: TF's tf.nn.leaky_relu (KP: nn.LeakyReLU(), slope 0.01; departure from KP).
- Final vector = concat(e^(0), norm(e^(1)), ..., norm(e^(L))), d + sum d_l long (176 by default)
  (TF, KP). Score(u, i) = <final(user node), final(item i)> (TF, KP).

CF loss (KP calc_cf_loss = TF _build_loss_phase_I)
- mean softplus(neg - pos) + cf_l2 * mean over the batch of (||u||^2/2 + ||p||^2/2 + ||n||^2/2)
  of the FINAL vectors (KP's _L2_loss_mean; TF's l2_loss / batch_size, the same but that TF divides
  by the nominal batch size).
- Triples: lightgcn_torch.sample_epoch (users uniform with replacement among users with a training
  item, a positive uniform among theirs, a negative uniform among items not in their training
  set), n_train of them per epoch, shuffled, cut into ceil(n_train / --cf-batch) batches (the
  last one shorter). Departure: TF and KP draw every batch anew, the batch's users WITHOUT
  replacement (random.sample) and every batch full, n_train // batch + 1 batches.

KG loss (TransR; KP calc_kg_loss = TF _build_loss_phase_II)
- For (h, r, t, t'): W = W_R[r], hW = e_h W, tW = e_t W, t'W = e_t' W (no normalisation: TF comments
  its l2_normalize lines out, "Remove the l2 normalization terms"; KP has none), pos = ||hW + r_emb
  - tW||^2, neg = ||hW + r_emb - t'W||^2, loss = mean softplus(pos - neg) + kg_l2 * (L2mean(hW) +
  L2mean(r_emb) + L2mean(tW) + L2mean(t'W)), L2mean(x) = mean over rows of ||x||^2 / 2.
  Computed with the batch sorted by relation, one matmul per relation present (KP gathers a
  [B x d x d_r] copy of W_R and uses bmm: the same numbers, several times slower here).
- Sampling, --kg-batch triples per batch: h uniform (with replacement) over the CKG nodes that
  have out-edges, one of h's out-edges (r, t) uniform, t' uniform over all N nodes, redrawn while
  (h, r, t') is a CKG edge (TF, KP, but they draw the batch's heads without replacement). An
  epoch's KG phase = ceil(n_ckg_edges / kg_batch) batches, n_ckg_edges counting both directions
  (TF, KP: n // batch + 1). Every batch is full. TF quirk: its sampler draws
  n_triples // (n_train // batch_size) heads per batch (load_data sets data.batch_size_kg so) while
  the count of batches and the regulariser use --batch_size_kg.

Optimiser
- One torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, no weight decay) over all parameters, --lr.
  Gradients are zeroed, not cleared to None, between batches (every .grad exists from the start),
  so every parameter takes an Adam step in every batch, CF and KG alike, a zero gradient where
  the batch's loss does not depend on it (its moments decay): gnnrec's one flat Adam over the
  parameter block does exactly this. Departure: TF builds two AdamOptimizers, one per loss, each over the variables its loss depends
  on (two separate moment states for E); KP's main_kgat.py (commit 134b071) builds two Adams
  (cf_optimizer, kg_optimizer), each over all model.parameters() (its older DGL-based main, commit
  6ce813b, used one).
- Defaults: KP's parser's and TF's README command's: --dim 64 --rel-dim 64 --layer-dims 64,32,16
  --dropout 0.1 --cf-l2 1e-5 --kg-l2 1e-5 --cf-batch 1024 --kg-batch 2048 --lr 1e-4; --epochs 10
  --seed 2020.

Epoch: CF phase, KG phase, attention update (TF, KP). The epoch's CF triples and KG quadruples
are drawn before the phases (numpy, seeded; "sample_s"), so "s_per_batch" (CF phase seconds / CF
batches) and "kg_s_per_batch" time the steps alone. --max-batches N > 0 stops each phase after N
batches (timing runs).

Evaluation (no dropout, the current A), every --eval-every epochs
- All-ranking: lightgcn_torch.evaluate: per user with a test item, all items scored, training
  items excluded, recall@K and ndcg@K (binary gains, ideal DCG over min(|test|, K)) averaged over
  users. (KP: the same definitions; TF's ndcg takes its ideal from the hits found in the top
  K_max, a known slip.)
- CTR protocol: every test pair (u, i) with one negative per pair drawn once at set-up
  (np.random.default_rng(seed + 1)), uniform among the items u has in neither train nor test;
  AUC = mean over pairs of 1[s_pos > s_neg] + 0.5 * 1[s_pos == s_neg]; F1 of predictions
  score >= 0 (sigmoid >= 0.5) against the labels over the 2 x n_test rows. (KP has no AUC;
  TF's batch_test has only a per-user AUC over all items, with --test_flag full.)

Output, as bench/torch_refs.py: a JSON line of set-up, then a JSON line per epoch: "epoch",
"cf_batches", "kg_batches", "train_s" (CF + KG + attention seconds), "s_per_batch",
"kg_s_per_batch", "att_s", "sample_s", "loss" (mean CF BPR loss, regulariser excluded), "kg_loss"
(mean KG softplus loss, regulariser excluded), and on evaluation epochs "recall@K", "ndcg@K",
"auc", "f1", "eval_s".

Needs Debian's python3-torch and python3-numpy (run with /usr/bin/python3):

  /usr/bin/python3 bench/kgat_torch.py --data /tmp/kgsplit --epochs 10 --threads 2
"""
import argparse, json, math, os, time

import numpy as np
import torch
import torch.nn.functional as F

import torch_refs  # the references' data set-up
from torch_refs import lgn  # lightgcn_torch.py: evaluate


def load(folder):
    """The interactions as bench/torch_refs.py sets them up, plus the KG and the CKG."""
    d = torch_refs.load(folder)
    tu, ti, n_users, n_items = d.tu, d.ti, d.n_users, d.n_items
    kg = np.loadtxt(os.path.join(folder, 'kg_final.txt'), dtype=np.int64, ndmin=2)
    kh, kr, kt = kg[:, 0], kg[:, 1], kg[:, 2]
    n_rel = int(kr.max()) + 1
    n_ent = max(int(max(kh.max(), kt.max())) + 1, n_items)
    n_nodes = n_ent + n_users
    uu = tu + n_ent
    h = np.concatenate([uu, kh, ti, kt])
    t = np.concatenate([ti, kt, uu, kh])
    r = np.concatenate([np.zeros_like(tu), kr + 1, np.full_like(ti, n_rel + 1), kr + n_rel + 2])
    o = np.lexsort((t, r, h))
    h, r, t = h[o], r[o], t[o]
    d.__dict__.update(n_triples=len(kg), n_rel=n_rel, n_ent=n_ent, n_nodes=n_nodes,
                      n_ckg_rel=2 * n_rel + 2, eh=h, er=r, et=t)
    return d


class CKGSampler:
    """(h, r, t, t') quadruples from the CKG, vectorised with numpy."""

    def __init__(self, d):
        self.d = d
        deg = np.bincount(d.eh, minlength=d.n_nodes)
        self.ptr = np.concatenate([[0], np.cumsum(deg)])
        self.deg = deg
        self.heads = np.nonzero(deg)[0]
        self.keys = self.key(d.eh, d.er, d.et)        # sorted: edges are sorted by (h, r, t)

    def key(self, h, r, t):
        return (h * self.d.n_ckg_rel + r) * self.d.n_nodes + t

    def is_edge(self, h, r, t):
        k = self.key(h, r, t)
        p = np.searchsorted(self.keys, k)
        p[p == len(self.keys)] = 0
        return self.keys[p] == k

    def sample(self, rng, n):
        d = self.d
        h = self.heads[rng.integers(0, len(self.heads), n)]
        e = self.ptr[h] + (rng.random(n) * self.deg[h]).astype(np.int64)
        r, t = d.er[e], d.et[e]
        tn = rng.integers(0, d.n_nodes, n)
        bad = np.nonzero(self.is_edge(h, r, tn))[0]
        while len(bad):
            tn[bad] = rng.integers(0, d.n_nodes, len(bad))
            bad = bad[self.is_edge(h[bad], r[bad], tn[bad])]
        return h, r, t, tn

    def batches(self, rng, n_batches, size):
        """n_batches batches of `size` quadruples, each sorted by relation (the loss is a mean:
        the order within a batch changes nothing), as (h, r, t, t', groups) with groups the
        batch's (relation, start, end) runs."""
        h, r, t, tn = self.sample(rng, n_batches * size)
        b = np.arange(n_batches * size) // size
        o = np.argsort(b * self.d.n_ckg_rel + r, kind='stable')
        h, r, t, tn = h[o], r[o], t[o], tn[o]
        out = []
        for k in range(n_batches):
            s = slice(k * size, (k + 1) * size)
            rb = r[s]
            starts = np.concatenate([[0], np.nonzero(rb[1:] != rb[:-1])[0] + 1])
            ends = np.concatenate([starts[1:], [size]])
            groups = [(int(rb[i]), int(i), int(j)) for i, j in zip(starts, ends)]
            out.append(tuple(torch.from_numpy(x[s].copy()) for x in (h, r, t, tn)) + (groups,))
        return out


class SpMM(torch.autograd.Function):
    """A @ X for a constant sparse A, the gradient A^T @ G with a stored, coalesced A^T."""

    @staticmethod
    def forward(ctx, A, At, X):
        ctx.At = At
        return torch.sparse.mm(A, X)

    @staticmethod
    def backward(ctx, G):
        return None, None, torch.sparse.mm(ctx.At, G)


def l2mean(x):
    return (x * x).sum(1).mean() / 2


class KGAT(torch.nn.Module):
    def __init__(self, d, dim, rel_dim, layer_dims, dropout, cf_l2, kg_l2):
        super().__init__()
        self.n_ent, self.n_items, self.n_nodes = d.n_ent, d.n_items, d.n_nodes
        self.dropout, self.cf_l2, self.kg_l2 = dropout, cf_l2, kg_l2
        xu = torch.nn.init.xavier_uniform_
        self.E = torch.nn.Parameter(xu(torch.empty(d.n_nodes, dim)))
        self.Rm = torch.nn.Parameter(xu(torch.empty(d.n_ckg_rel, rel_dim)))
        self.W_R = torch.nn.Parameter(xu(torch.empty(d.n_ckg_rel, dim, rel_dim)))
        dims = [dim] + list(layer_dims)
        self.W1 = torch.nn.ModuleList()
        self.W2 = torch.nn.ModuleList()
        for l in range(len(layer_dims)):
            for lst in (self.W1, self.W2):
                lin = torch.nn.Linear(dims[l], dims[l + 1])
                xu(lin.weight)
                torch.nn.init.zeros_(lin.bias)
                lst.append(lin)
        # the CKG's edges grouped by relation, for the attention
        self.eh = torch.from_numpy(d.eh)
        self.et = torch.from_numpy(d.et)
        ro = np.argsort(d.er, kind='stable')
        rb = np.searchsorted(d.er[ro], np.arange(d.n_ckg_rel + 1))
        self.rel_edges = [(r, torch.from_numpy(ro[rb[r]:rb[r + 1]]))
                          for r in range(d.n_ckg_rel) if rb[r + 1] > rb[r]]
        self.n_edges = len(d.eh)
        self.update_attention()

    @torch.no_grad()
    def update_attention(self):
        E, Rm, W_R = self.E, self.Rm, self.W_R
        logits = torch.empty(self.n_edges)
        for r, idx in self.rel_edges:
            W = W_R[r]
            hW = E.index_select(0, self.eh[idx]) @ W
            tW = E.index_select(0, self.et[idx]) @ W
            logits[idx] = (tW * torch.tanh(hW + Rm[r])).sum(1)
        # one entry (h, edge id) per edge: a softmax per edge over the edges leaving h
        S = torch.sparse_coo_tensor(torch.stack([self.eh, torch.arange(self.n_edges)]), logits,
                                    (self.n_nodes, self.n_edges))._coalesced_(True)
        w = torch.sparse.softmax(S, 1)._values()
        n = self.n_nodes
        self.A = torch.sparse_coo_tensor(torch.stack([self.eh, self.et]), w, (n, n)).coalesce()
        self.At = self.A.t().coalesce()

    def final(self):
        """[N x (d + sum d_l)]: every node's final vector."""
        x = self.E
        out = [x]
        for lin1, lin2 in zip(self.W1, self.W2):
            side = SpMM.apply(self.A, self.At, x)
            x = F.leaky_relu(lin1(x + side), 0.2) + F.leaky_relu(lin2(x * side), 0.2)
            x = F.dropout(x, self.dropout, self.training)
            out.append(F.normalize(x, p=2, dim=1))
        return torch.cat(out, 1)

    def propagate(self):
        """(user vectors, item vectors), for lightgcn_torch.evaluate."""
        f = self.final()
        return f[self.n_ent:], f[:self.n_items]

    def cf_loss(self, u, p, n):
        f = self.final()
        ue, pe, ne = f.index_select(0, torch.cat([u + self.n_ent, p, n])).split(len(u))
        loss = F.softplus((ue * ne).sum(1) - (ue * pe).sum(1)).mean()
        return loss, self.cf_l2 * (l2mean(ue) + l2mean(pe) + l2mean(ne))

    def kg_loss(self, h, r, t, tn, groups):
        """groups: (relation, start, end) of the batch's runs of one relation (the batch sorted
        by relation): e W_r is one matmul per relation present, not a gathered [B x d x d_r]."""
        X = self.E.index_select(0, torch.cat([h, t, tn])).view(3, len(h), -1)
        Xs = X.split([e - s for _, s, e in groups], 1)
        Ws = self.W_R.index_select(0, torch.tensor([q for q, _, _ in groups])).unbind(0)
        P = torch.cat([x @ w for x, w in zip(Xs, Ws)], 1)                  # 3 x B x d_r
        hW, tW, nW = P.unbind(0)
        re = self.Rm.index_select(0, r)
        hr = hW + re
        pos = ((hr - tW) ** 2).sum(1)
        neg = ((hr - nW) ** 2).sum(1)
        loss = F.softplus(pos - neg).mean()
        return loss, self.kg_l2 * (l2mean(hW) + l2mean(re) + l2mean(tW) + l2mean(nW))


def ctr_negatives(d, seed):
    """One negative per test pair, uniform among the items the user has in neither train nor
    test."""
    rng = np.random.default_rng(seed)
    known = np.unique(np.concatenate([d.tu * d.n_items + d.ti, d.vu * d.n_items + d.vi]))
    u = d.vu
    neg = rng.integers(0, d.n_items, len(u))
    bad = np.nonzero(np.isin(u * d.n_items + neg, known))[0]
    while len(bad):
        neg[bad] = rng.integers(0, d.n_items, len(bad))
        bad = bad[np.isin(u[bad] * d.n_items + neg[bad], known)]
    return neg


def ctr_eval(model, d, neg):
    model.eval()
    with torch.no_grad():
        f = model.final()
        ue = f[torch.from_numpy(d.vu + d.n_ent)]
        sp = (ue * f[torch.from_numpy(d.vi)]).sum(1).numpy()
        sn = (ue * f[torch.from_numpy(neg)]).sum(1).numpy()
    model.train()
    auc = float(np.mean((sp > sn) + 0.5 * (sp == sn)))
    tp, fn, fp = int((sp >= 0).sum()), int((sp < 0).sum()), int((sn >= 0).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return auc, f1


def main():
    ap = argparse.ArgumentParser(description='KGAT reference (PyTorch, CPU)')
    ap.add_argument('--data', required=True, help='folder with train.txt, test.txt, kg_final.txt')
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--dim', type=int, default=64)
    ap.add_argument('--rel-dim', type=int, default=64)
    ap.add_argument('--layer-dims', default='64,32,16')
    ap.add_argument('--dropout', type=float, default=0.1, help='message dropout, every layer')
    ap.add_argument('--lr', type=float, default=1e-4)
    ap.add_argument('--cf-l2', type=float, default=1e-5)
    ap.add_argument('--kg-l2', type=float, default=1e-5)
    ap.add_argument('--cf-batch', type=int, default=1024)
    ap.add_argument('--kg-batch', type=int, default=2048)
    ap.add_argument('--topk', type=int, default=20)
    ap.add_argument('--eval-every', type=int, default=1, help='0: never')
    ap.add_argument('--max-batches', type=int, default=0,
                    help='stop each phase after this many batches (timing runs)')
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--seed', type=int, default=2020)
    a = ap.parse_args()
    layer_dims = [int(x) for x in a.layer_dims.split(',') if x.strip()]

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    t0 = time.time()
    d = load(a.data)
    sampler = CKGSampler(d)
    neg_ctr = ctr_negatives(d, a.seed + 1)
    ta = time.time()
    model = KGAT(d, a.dim, a.rel_dim, layer_dims, a.dropout, a.cf_l2, a.kg_l2)
    att0 = time.time() - ta
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    for p in model.parameters():  # every parameter steps in every batch (docstring, Optimiser)
        p.grad = torch.zeros_like(p)
    n_train, n_edges = len(d.tu), len(d.eh)
    print(json.dumps({
        'model': 'kgat', 'users': d.n_users, 'items': d.n_items, 'entities': d.n_ent,
        'relations': d.n_rel, 'ckg_relations': d.n_ckg_rel, 'nodes': d.n_nodes,
        'triples': d.n_triples, 'ckg_edges': n_edges, 'a_nnz': model.A._nnz(),
        'train': n_train, 'test': d.n_test, 'dims': [a.dim] + layer_dims,
        'final_dim': a.dim + sum(layer_dims),
        'params': sum(p.numel() for p in model.parameters()),
        'setup_s': round(time.time() - t0, 3), 'att_s': round(att0, 3),
        'threads': torch.get_num_threads()}), flush=True)

    n_cf = math.ceil(n_train / a.cf_batch)
    n_kg = math.ceil(n_edges / a.kg_batch)
    if a.max_batches:
        n_cf, n_kg = min(n_cf, a.max_batches), min(n_kg, a.max_batches)
    for ep in range(1, a.epochs + 1):
        ts = time.time()
        users, pos, neg = torch_refs.epoch_triples(rng, d, n_train)
        kg_batches = sampler.batches(rng, n_kg, a.kg_batch)
        sample_s = time.time() - ts

        model.train()
        tc = time.time()
        cf_total = 0.0
        for b in range(n_cf):
            s = slice(b * a.cf_batch, (b + 1) * a.cf_batch)
            loss, reg = model.cf_loss(users[s], pos[s], neg[s])
            opt.zero_grad(set_to_none=False)
            (loss + reg).backward()
            opt.step()
            cf_total += loss.item()
        cf_s = time.time() - tc

        tk = time.time()
        kg_total = 0.0
        for batch in kg_batches:
            loss, reg = model.kg_loss(*batch)
            opt.zero_grad(set_to_none=False)
            (loss + reg).backward()
            opt.step()
            kg_total += loss.item()
        kg_s = time.time() - tk

        tt = time.time()
        model.update_attention()
        att_s = time.time() - tt

        rec = {'epoch': ep, 'cf_batches': n_cf, 'kg_batches': n_kg,
               'train_s': round(cf_s + kg_s + att_s, 3),
               's_per_batch': round(cf_s / n_cf, 5), 'kg_s_per_batch': round(kg_s / n_kg, 5),
               'att_s': round(att_s, 4), 'sample_s': round(sample_s, 3),
               'loss': round(cf_total / n_cf, 5), 'kg_loss': round(kg_total / n_kg, 5)}
        if a.eval_every and ep % a.eval_every == 0:
            te = time.time()
            r, g = lgn.evaluate(model, d.train_pos, d.test_pos, d.n_items, a.topk)
            auc, f1 = ctr_eval(model, d, neg_ctr)
            rec.update({f'recall@{a.topk}': round(r, 5), f'ndcg@{a.topk}': round(g, 5),
                        'auc': round(auc, 5), 'f1': round(f1, 5),
                        'eval_s': round(time.time() - te, 3)})
        print(json.dumps(rec), flush=True)


if __name__ == '__main__':
    main()
