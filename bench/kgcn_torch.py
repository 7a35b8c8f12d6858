#!/usr/bin/env python3
"""Reference KGCN in PyTorch (CPU), for side-by-side comparison with gnnrec's C implementation.

Knowledge Graph Convolutional Networks for Recommender Systems (Wang et al., WWW 2019), written
as the paper's public TensorFlow code writes it (hwwang55/KGCN: src/model.py, src/aggregators.py,
src/data_loader.py), with the choices below; the C side makes the same ones. "As KGCN" means as
that code; "departs" says where this script does otherwise and why.

Data (--data DIR, as bench/kg_split.py writes it):
- train.txt, test.txt in the LightGCN text format (`user item item ...`, 0-based) and
  kg_final.txt (`head relation tail`). Item i is entity i (as KGCN's preprocess.py numbers them).
  n_users = 1 + the largest user id in train/test, n_items = 1 + the largest item id,
  n_entities = 1 + the largest entity id in the KG and the items, n_relations = 1 + the largest
  relation id. (KGCN counts distinct ids instead; the same on kgcn-music.)
- Departs: one fixed split, every listened item a positive, negatives sampled during training
  (below); KGCN splits ratings_final 6:2:2 on every run, and that file holds one fixed sampled
  negative per positive, trained as labelled rows.

Knowledge graph, as data_loader.construct_kg / construct_adj:
- undirected: for each triple (h, r, t), t is a neighbour of h and h of t, both with relation r
  (neighbour lists in file order, h's entry before t's, as construct_kg appends them);
- adj_entity, adj_relation [n_entities x K] sampled once at start (numpy default_rng(seed), the
  generator that then draws the epochs' triples; KGCN: np.random.seed(555)): an
  entity with >= K neighbours takes K of them without replacement, one with fewer takes K with
  replacement. Departs: an entity without any neighbour (none on kgcn-music; KGCN's code raises a
  KeyError) gets itself K times with the extra relation index n_relations; the relation table
  always has n_relations + 1 rows, so the parameter count does not depend on the data.

Parameters, as model.py / aggregators.py: user_emb [n_users x d], entity_emb [n_entities x d],
relation_emb [(n_relations + 1) x d], and per iteration i < H an aggregator with W_i ([d x d] for
sum and neighbor, [2d x d] for concat) and b_i [d]; tables and W_i Glorot/Xavier uniform
(tf.contrib.layers.xavier_initializer: U(+-sqrt(6 / (fan_in + fan_out))), torch's
xavier_uniform_ gives the same bound), b_i zeros; torch.manual_seed(seed), drawn in that order.

Forward for a pair (u, v), as model.get_neighbors / aggregate:
- entities[0] = [v], entities[h+1] = adj_entity[entities[h]] flattened (K^(h+1) per pair),
  relations[h+1] = adj_relation[entities[h]] likewise; vectors[h] = entity_emb[entities[h]];
- for i in 0..H-1 (act = relu for i < H-1, tanh for the last), for hop in 0..H-1-i:
  new[hop] = agg_i(self = vectors[hop] [K^hop, d], neigh = vectors[hop+1] as [K^hop, K, d],
  rel = relation_emb[relations[hop+1]] as [K^hop, K, d], user u); vectors = new;
- attention (Aggregator._mix_neighbor_vectors): s_k = MEAN over the d dims of u * r_k
  (tf.reduce_mean, as the code, not a sum), a = softmax_k(s), agg = SUM_k a_k neigh_k.
  Departs: KGCN's code takes tf.reduce_mean over the K neighbours there, i.e. agg = (1/K) sum_k
  a_k neigh_k; this script (and gnnrec) use the plain attention-weighted sum of the paper (eq. 1);
- sum: act((self + agg) W + b); concat: act([self, agg] W + b); neighbor: act(agg W + b) (as
  SumAggregator, ConcatAggregator, NeighborAggregator); no dropout (the code's default 0);
- score(u, v) = <user_emb[u], vectors[0]>: a logit, the predicted probability its sigmoid.

Training:
- each epoch draws as many (user, positive, negative) triples as there are training pairs, with
  ../shared/peers/lightgcn_torch.py's sample_epoch (user uniform among users with a training
  item, positive uniform among its items, one negative uniform over all items, redrawn while it
  is a training item of the user), then shuffles them, as bench/torch_refs.py; batches of
  --batch positives, the last one possibly shorter (departs: KGCN skips an incomplete last batch);
- loss of a batch of b positives (2b scored pairs): (sum_k softplus(-pos_k) + sum_k softplus(neg_k))
  / b, the sigmoid cross-entropy summed over the 2b rows and divided by b (twice KGCN's mean over
  its rows), plus KGCN's regulariser l2 * (||user_emb||^2 + ||entity_emb||^2 + ||relation_emb||^2
  + sum_i ||W_i||^2) / 2 over the whole matrices every batch (tf.nn.l2_loss as _build_train;
  biases not regularised); the reported loss excludes the regulariser; torch.optim.Adam.
- Defaults: KGCN's music settings (main.py): dim 16, 1 iteration (--hops), 8 neighbours, sum
  aggregator, batch 128, lr 5e-4, l2 1e-4, 10 epochs.

Evaluation (--eval-every epochs), with the exact user-specific scores (the item's vector depends
on the user through the attention):
- all-ranking, as lightgcn_torch.py's: for every user with a test item, every item scored, the
  user's training items excluded, recall@K and ndcg@K (binary gains, ideal DCG over
  min(|test|, K) items) averaged over those users. Scored by blocks of users against blocks of
  items (score_all): u . r / d precomputed per user and relation ([(n_relations + 1) x users])
  and gathered, the item side (neighbour indices, embeddings, in the first iteration their
  products with W) shared by the block's users; the same function as the training forward,
  rearranged, and --self-check asserts the two agree on random pairs (before and after training);
- CTR, KGCN's protocol on our split: every test pair (u, i) with one negative, drawn once at start
  (default_rng(seed + 1)) uniformly among the items u has in neither train nor test; AUC as the
  pairwise rate mean(1[s_pos > s_neg] + 0.5 * 1[s_pos == s_neg]) of each positive against its
  own negative (departs: KGCN averages sklearn's roc_auc_score over fixed-size batches of its
  labelled rows), F1 of the predictions score >= 0 (sigmoid >= 0.5, as KGCN's model.eval) against
  the labels over all 2N rows (KGCN: the mean of per-batch F1).

Needs Debian's python3-torch and python3-numpy (run with /usr/bin/python3). Output, as
bench/torch_refs.py: one JSON line of set-up, then one per epoch with "epoch", "batches",
"train_s", "s_per_batch", "sample_s", "loss", and on evaluation epochs "recall@K", "ndcg@K", "auc",
"f1", "eval_s".

  /usr/bin/python3 bench/kg_split.py --data /work/shared/data/kgcn-music --out /tmp/kgsplit
  /usr/bin/python3 bench/kgcn_torch.py --data /tmp/kgsplit --epochs 10 --threads 2
"""
import argparse, json, os, time

import numpy as np
import torch
import torch.nn.functional as F

import torch_refs  # the references' data set-up


def read_data(folder):
    """The interactions as bench/torch_refs.py sets them up, and the knowledge graph."""
    d = torch_refs.load(folder)
    d.kg = np.loadtxt(os.path.join(folder, 'kg_final.txt'), dtype=np.int64, ndmin=2)
    return d


def sample_adjacency(kg, n_entities, n_relations, k, rng):
    """construct_kg + construct_adj, vectorised: the undirected neighbour lists (h's entry for a
    triple before t's, in file order), K of them per entity, without replacement if the entity
    has >= K, with replacement otherwise; an entity without neighbours gets itself K times with
    relation n_relations."""
    h, r, t = kg[:, 0], kg[:, 1], kg[:, 2]
    src = np.stack([h, t], 1).ravel()          # edge 2j: h_j -> t_j, edge 2j+1: t_j -> h_j
    dst = np.stack([t, h], 1).ravel()
    rel = np.repeat(r, 2)
    order = np.argsort(src, kind='stable')     # per entity, its list in construct_kg's order
    src, dst, rel = src[order], dst[order], rel[order]
    deg = np.bincount(src, minlength=n_entities)
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    adj_e = np.empty((n_entities, k), dtype=np.int64)
    adj_r = np.empty((n_entities, k), dtype=np.int64)
    # fewer than K neighbours: K uniform draws with replacement
    few = np.nonzero((deg > 0) & (deg < k))[0]
    pick = start[few, None] + (rng.random((len(few), k)) * deg[few, None]).astype(np.int64)
    adj_e[few], adj_r[few] = dst[pick], rel[pick]
    # at least K: a uniform K-subset, the K smallest of random keys within each entity's list
    many = np.nonzero(deg >= k)[0]
    keys = rng.random(len(src))
    order = np.lexsort((keys, src))            # by entity, then by key
    rank = np.arange(len(src)) - start[src[order]]
    sel = order[(rank < k) & (deg[src[order]] >= k)]   # src[sel] ascending, K per `many` entity
    adj_e[many] = dst[sel].reshape(-1, k)
    adj_r[many] = rel[sel].reshape(-1, k)
    none = np.nonzero(deg == 0)[0]
    adj_e[none] = none[:, None]
    adj_r[none] = n_relations
    return torch.from_numpy(adj_e), torch.from_numpy(adj_r), len(none)


class KGCN(torch.nn.Module):
    def __init__(self, n_users, n_entities, n_relations, adj_e, adj_r, dim, hops, k, aggregator):
        super().__init__()
        self.d, self.H, self.K, self.kind = dim, hops, k, aggregator
        self.adj_e, self.adj_r = adj_e, adj_r
        P = torch.nn.Parameter
        self.user = P(torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.entity = P(torch.nn.init.xavier_uniform_(torch.empty(n_entities, dim)))
        self.relation = P(torch.nn.init.xavier_uniform_(torch.empty(n_relations + 1, dim)))
        din = 2 * dim if aggregator == 'concat' else dim
        self.W = torch.nn.ParameterList(
            [P(torch.nn.init.xavier_uniform_(torch.empty(din, dim))) for _ in range(hops)])
        self.b = torch.nn.ParameterList([P(torch.zeros(dim)) for _ in range(hops)])

    def combine(self, i, selfv, agg):
        """Aggregator i on [..., d] tensors (self and agg broadcast against each other)."""
        if self.kind == 'sum':
            x = selfv + agg
        elif self.kind == 'concat':
            shape = torch.broadcast_shapes(selfv.shape, agg.shape)
            x = torch.cat([selfv.expand(shape), agg.expand(shape)], -1)
        else:
            x = agg
        x = torch.matmul(x, self.W[i]) + self.b[i]
        return torch.relu(x) if i < self.H - 1 else torch.tanh(x)

    def neighbours(self, v):
        """entities[h] [n, K^h] and relations[h] [n, K^h] (relations[0] unused) of items v [n]."""
        ents, rels = [v.view(-1, 1)], [None]
        for h in range(self.H):
            ents.append(self.adj_e[ents[h]].view(len(v), -1))
            rels.append(self.adj_r[ents[h]].view(len(v), -1))
        return ents, rels

    def forward(self, u, v):
        """Training forward: the logits of the pairs (u[j], v[j]), [B]."""
        B, d, K = len(u), self.d, self.K
        uvec = self.user[u]                                    # [B, d]
        ents, rels = self.neighbours(v)
        vecs = [self.entity[e] for e in ents]                  # [B, K^h, d]
        for i in range(self.H):
            new = []
            for hop in range(self.H - i):
                M = K ** hop
                neigh = vecs[hop + 1].view(B, M, K, d)
                r = self.relation[rels[hop + 1]].view(B, M, K, d)
                s = (uvec.view(B, 1, 1, d) * r).mean(-1)      # [B, M, K]
                a = torch.softmax(s, -1)
                agg = (a.unsqueeze(-1) * neigh).sum(2)         # [B, M, d]
                new.append(self.combine(i, vecs[hop].view(B, M, d), agg))
            vecs = new
        return (uvec * vecs[0].view(B, d)).sum(1)

    def score_all(self, u, items):
        """Evaluation: the logits of every (u[a], items[c]), [U, I]; the same function as
        forward(), laid out item-major so that the users of a block share the item side:
        u . r / d computed once per user and relation ([R+1, U]) and gathered per neighbour
        (the attention of a hop is the same in every iteration, so computed once); in the
        first iteration self and neighbours are layer-0 vectors, the same for every user, so
        they are multiplied by W before the attention-weighted sum (linear, so the same value):
        per item one [U x K] by [K x d] product."""
        U, I, d, K = len(u), len(items), self.d, self.K
        uvec = self.user[u]                                    # [U, d]
        urel = self.relation @ uvec.T / d                      # [R+1, U]
        ents, rels = self.neighbours(items)                    # [I, K^h]
        att = [None] + [torch.softmax(urel[rels[h]].view(I, K ** (h - 1), K, U), 2)
                        for h in range(1, self.H + 1)]         # att[h+1]: [I, K^h, K, U]
        vecs = [self.entity[e] for e in ents]                  # [I, K^h, d], no user axis
        for i in range(self.H):
            act = torch.relu_ if i < self.H - 1 else torch.tanh_
            new = []
            for hop in range(self.H - i):
                M, a = K ** hop, att[hop + 1]
                if i == 0:
                    W = self.W[0]
                    Ws, Wn = {'sum': (W, W), 'concat': (W[:d], W[d:]), 'neighbor': (None, W)}[self.kind]
                    pre = torch.matmul(a.transpose(2, 3), vecs[hop + 1].view(I, M, K, d) @ Wn)
                    selfw = self.b[0] if Ws is None else vecs[hop].view(I, M, d) @ Ws + self.b[0]
                    pre += selfw.view(-1, M, 1, d) if Ws is not None else selfw
                else:                                          # vecs[h]: [I, K^h, U, d]
                    agg = (a.unsqueeze(-1) * vecs[hop + 1].view(I, M, K, U, d)).sum(2)
                    selfv, W = vecs[hop], self.W[i]
                    if self.kind == 'sum':
                        pre = torch.matmul(selfv + agg, W)
                    elif self.kind == 'concat':
                        pre = torch.matmul(torch.cat([selfv, agg], -1), W)
                    else:
                        pre = torch.matmul(agg, W)
                    pre += self.b[i]
                new.append(act(pre))                           # [I, M, U, d]
            vecs = new
        return (vecs[0].view(I, U, d) * uvec).sum(-1).T        # [U, I]

    def reg(self):
        return 0.5 * (self.user.pow(2).sum() + self.entity.pow(2).sum()
                      + self.relation.pow(2).sum() + sum(w.pow(2).sum() for w in self.W))


def csr(users, items, rows_of):
    """The pairs (users, items) of the users in rows_of (a dict user -> row), grouped by row:
    (ptr [n_rows+1], row index per pair, item per pair)."""
    keep = np.array([x in rows_of for x in users.tolist()], dtype=bool)
    rows = np.array([rows_of[x] for x in users[keep].tolist()], dtype=np.int64)
    its = items[keep]
    order = np.argsort(rows, kind='stable')
    rows, its = rows[order], its[order]
    ptr = np.searchsorted(rows, np.arange(len(rows_of) + 1))
    return ptr, rows, its


class Evaluator:
    def __init__(self, d, topk, seed):
        self.k = topk
        self.users = np.unique(d.vu)
        row = {u: j for j, u in enumerate(self.users.tolist())}
        self.tr_ptr, self.tr_row, self.tr_item = csr(d.tu, d.ti, row)
        self.te_ptr, self.te_row, self.te_item = csr(d.vu, d.vi, row)
        self.n_test = np.diff(self.te_ptr)
        self.items = torch.arange(d.n_items)
        self.disc = 1.0 / np.log2(np.arange(2, topk + 2))
        self.idcg = np.cumsum(self.disc)
        # CTR: every test pair with one negative among the items the user has in neither set
        rng = np.random.default_rng(seed + 1)
        known = np.unique(np.concatenate([d.tu * d.n_items + d.ti, d.vu * d.n_items + d.vi]))
        n_known = np.bincount(known // d.n_items, minlength=d.n_users)
        if (n_known[d.vu] >= d.n_items).any():
            raise SystemExit('a test user has every item in train or test: no negative to draw')
        neg = rng.integers(0, d.n_items, len(d.vu))
        bad = np.isin(d.vu * d.n_items + neg, known)
        while bad.any():
            neg[bad] = rng.integers(0, d.n_items, int(bad.sum()))
            bad = np.isin(d.vu * d.n_items + neg, known)
        self.ctr_u = torch.from_numpy(d.vu)
        self.ctr_pos = torch.from_numpy(d.vi)
        self.ctr_neg = torch.from_numpy(neg)

    def blocks(self, model):
        """Users per block (the [users x items] scores of a block: about 2^24 floats) and items
        per inner block (about 2^22 floats in score_all's largest [K^(H-1) x d] tensors per
        (user, item) pair)."""
        nu = max(1, min(len(self.users), (1 << 24) // len(self.items)))
        per_pair = model.K ** (model.H - 1) * max(model.d, model.K)
        return nu, max(1, (1 << 22) // (nu * per_pair))

    def ranking(self, model):
        k, n, ni = self.k, len(self.users), len(self.items)
        bu, bi = self.blocks(model)
        recall = ndcg = 0.0
        for s in range(0, n, bu):
            e = min(s + bu, n)
            users = torch.from_numpy(self.users[s:e])
            scores = torch.empty(e - s, ni)
            for c in range(0, ni, bi):
                scores[:, c:c + bi] = model.score_all(users, self.items[c:c + bi])
            a, b = self.tr_ptr[s], self.tr_ptr[e]
            scores[torch.from_numpy(self.tr_row[a:b] - s),
                   torch.from_numpy(self.tr_item[a:b])] = -float('inf')
            top = torch.topk(scores, k, dim=1).indices
            truth = torch.zeros_like(scores, dtype=torch.bool)
            a, b = self.te_ptr[s], self.te_ptr[e]
            truth[torch.from_numpy(self.te_row[a:b] - s), torch.from_numpy(self.te_item[a:b])] = True
            hits = truth.gather(1, top).numpy().astype(np.float64)
            nt = self.n_test[s:e]
            recall += (hits.sum(1) / nt).sum()
            ndcg += ((hits * self.disc).sum(1) / self.idcg[np.minimum(nt, k) - 1]).sum()
        return recall / n, ndcg / n

    def ctr(self, model, batch=8192):
        pos, neg = [], []
        for s in range(0, len(self.ctr_u), batch):
            u = self.ctr_u[s:s + batch]
            pos.append(model(u, self.ctr_pos[s:s + batch]))
            neg.append(model(u, self.ctr_neg[s:s + batch]))
        pos, neg = torch.cat(pos).double(), torch.cat(neg).double()
        auc = ((pos > neg).double() + 0.5 * (pos == neg).double()).mean().item()
        tp = (pos >= 0).sum().item()
        fp = (neg >= 0).sum().item()
        fn = len(pos) - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        return auc, f1

    def __call__(self, model):
        model.eval()
        with torch.no_grad():
            r, g = self.ranking(model)
            auc, f1 = self.ctr(model)
        model.train()
        return r, g, auc, f1


def self_check(model, d, rng, n=512):
    """score_all (evaluation) against forward (training) on n random (user, item) pairs."""
    u = torch.from_numpy(rng.integers(0, d.n_users, n))
    v = torch.from_numpy(rng.integers(0, d.n_items, n))
    with torch.no_grad():
        f = model(u, v)
        uu, ui = torch.unique(u, return_inverse=True)
        vv, vi = torch.unique(v, return_inverse=True)
        g = model.score_all(uu, vv)[ui, vi]
    diff = (f - g).abs().max().item()
    scale = f.abs().max().item()
    assert diff <= 1e-5 * max(1.0, scale), f'evaluation scorer differs from forward: {diff}'
    return diff, scale


def main():
    ap = argparse.ArgumentParser(description='Reference KGCN (PyTorch, CPU)')
    ap.add_argument('--data', required=True, help='folder with train.txt, test.txt, kg_final.txt')
    ap.add_argument('--dim', type=int, default=16)
    ap.add_argument('--hops', type=int, default=1, help='KGCN\'s n_iter')
    ap.add_argument('--neighbors', type=int, default=8, help='K, neighbours sampled per entity')
    ap.add_argument('--aggregator', default='sum', choices=['sum', 'concat', 'neighbor'])
    ap.add_argument('--batch', type=int, default=128, help='positives per batch')
    ap.add_argument('--lr', type=float, default=5e-4)
    ap.add_argument('--l2', type=float, default=1e-4)
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--seed', type=int, default=2020)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--topk', type=int, default=20)
    ap.add_argument('--eval-every', type=int, default=1, help='0: never')
    ap.add_argument('--max-batches', type=int, default=0,
                    help='stop an epoch after this many batches (timing runs)')
    ap.add_argument('--self-check', action='store_true',
                    help='assert the evaluation scorer equals the training forward, before '
                         'and after training')
    a = ap.parse_args()
    if a.hops < 1:
        ap.error('--hops must be >= 1')

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    t0 = time.time()
    d = read_data(a.data)
    n_relations = int(d.kg[:, 1].max()) + 1 if len(d.kg) else 0
    n_entities = max(int(d.kg[:, [0, 2]].max()) + 1 if len(d.kg) else 0, d.n_items)
    adj_e, adj_r, n_isolated = sample_adjacency(d.kg, n_entities, n_relations, a.neighbors, rng)
    model = KGCN(d.n_users, n_entities, n_relations, adj_e, adj_r, a.dim, a.hops, a.neighbors,
                 a.aggregator)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    ev = Evaluator(d, a.topk, a.seed)
    n_train = len(d.tu)
    print(json.dumps({'model': 'kgcn', 'aggregator': a.aggregator, 'dim': a.dim, 'hops': a.hops,
                      'neighbors': a.neighbors, 'n_users': d.n_users, 'n_items': d.n_items,
                      'n_entities': n_entities, 'n_relations': n_relations,
                      'isolated_entities': n_isolated, 'n_train': n_train, 'n_test': len(d.vu),
                      'params': sum(p.numel() for p in model.parameters()),
                      'setup_s': round(time.time() - t0, 3), 'threads': torch.get_num_threads()}),
          flush=True)
    check_rng = np.random.default_rng(a.seed + 2)
    if a.self_check:
        diff, scale = self_check(model, d, check_rng)
        print(json.dumps({'self_check': 'init', 'max_abs_diff': diff, 'max_abs_score': scale}),
              flush=True)

    for ep in range(1, a.epochs + 1):
        ts = time.time()
        users, pos, neg = torch_refs.epoch_triples(rng, d, n_train)
        sample_s = time.time() - ts
        tt = time.time()
        total, nb = 0.0, 0
        for s in range(0, n_train, a.batch):
            u, p, n = users[s:s + a.batch], pos[s:s + a.batch], neg[s:s + a.batch]
            b = len(u)
            logits = model(torch.cat([u, u]), torch.cat([p, n]))
            loss = (F.softplus(-logits[:b]).sum() + F.softplus(logits[b:]).sum()) / b
            opt.zero_grad()
            (loss + a.l2 * model.reg()).backward()
            opt.step()
            total += loss.item()
            nb += 1
            if a.max_batches and nb >= a.max_batches:
                break
        train_s = time.time() - tt
        rec = {'epoch': ep, 'batches': nb, 'train_s': round(train_s, 3),
               's_per_batch': round(train_s / nb, 6), 'sample_s': round(sample_s, 3),
               'loss': round(total / nb, 5)}
        if a.eval_every and ep % a.eval_every == 0:
            te = time.time()
            r, g, auc, f1 = ev(model)
            rec.update({f'recall@{a.topk}': round(r, 5), f'ndcg@{a.topk}': round(g, 5),
                        'auc': round(auc, 5), 'f1': round(f1, 5),
                        'eval_s': round(time.time() - te, 3)})
        print(json.dumps(rec), flush=True)

    if a.self_check:
        diff, scale = self_check(model, d, check_rng)
        print(json.dumps({'self_check': 'trained', 'max_abs_diff': diff, 'max_abs_score': scale}),
              flush=True)


if __name__ == '__main__':
    main()
