"""The shared driver of the PyTorch references with dense layers (gcn_torch.py, ngcf_torch.py,
gat_torch.py, graphsage_torch.py).

The protocol is lightgcn_torch.py's, imported from ../shared/peers (env PEERS overrides): its data
reader, graph normalisation, epoch sampler and all-ranking evaluation are used as they are; this
file adds only what that script keeps inside its main(): the flags, the data set-up and the
training loop, so that the two models differ only in their module. A model given to run() has
`propagate()` -> (user vectors, item vectors), honouring `self.training` for its dropout, and
`reg(u, p, n, U, I)` -> its regulariser for a batch (U, I the vectors propagate() returned). A
model that computes a batch's vectors on a sampled subgraph instead of the whole graph
(graphsage_torch.py) also has `batch_vectors(u, p, n)` -> the rows of the batch's users,
positives and negatives; training then calls it instead of propagate() and passes U = I = None
to reg(); evaluation still calls propagate() (in eval mode: the whole graph).

Output, as lightgcn_torch.py: one JSON line of set-up, then one per epoch with "epoch",
"batches", "train_s", "s_per_batch", "sample_s", "loss" (the mean BPR loss, regulariser
excluded), and on evaluation epochs "recall@K", "ndcg@K", "eval_s".
"""
import argparse, json, os, sys, time

import numpy as np
import torch

PEERS = os.environ.get('PEERS') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'peers')
sys.path.insert(0, PEERS)
import lightgcn_torch as lgn  # noqa: E402  (read_lgn, norm_adj, sample_epoch, evaluate)


def parser(description, lr, decay, batch, layers, dropout=None):
    """lightgcn_torch.py's flags with a model's defaults, plus --dropout unless dropout is None
    (a model without dropout)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument('--data', required=True, help='folder with train.txt and test.txt')
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--dim', type=int, default=64, help='embedding size and every layer\'s width')
    ap.add_argument('--layers', type=int, default=layers)
    if dropout is not None:
        ap.add_argument('--dropout', type=float, default=dropout, help='on every layer\'s output')
    ap.add_argument('--lr', type=float, default=lr)
    ap.add_argument('--decay', type=float, default=decay)
    ap.add_argument('--batch', type=int, default=batch)
    ap.add_argument('--topk', type=int, default=20)
    ap.add_argument('--eval-every', type=int, default=1, help='0: never')
    ap.add_argument('--max-batches', type=int, default=0,
                    help='stop an epoch after this many batches (timing runs)')
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--seed', type=int, default=2020)
    return ap


def load(folder):
    """The data as lightgcn_torch.py's main() sets it up."""
    tu, ti = lgn.read_lgn(os.path.join(folder, 'train.txt'))
    vu, vi = lgn.read_lgn(os.path.join(folder, 'test.txt'))
    n_users = int(max(tu.max(), vu.max())) + 1
    n_items = int(max(ti.max(), vi.max())) + 1
    order = np.argsort(tu, kind='stable')
    tu, ti = tu[order], ti[order]
    bounds = np.searchsorted(tu, np.arange(n_users + 1))
    pos_lists = [ti[bounds[u]:bounds[u + 1]] for u in range(n_users)]
    test_pos = {}
    for u, i in zip(vu, vi):
        test_pos.setdefault(int(u), []).append(int(i))
    return argparse.Namespace(
        tu=tu, ti=ti, vu=vu, vi=vi, n_users=n_users, n_items=n_items, n_test=len(vu),
        pos_lists=pos_lists,
        pos_sets=[set(p.tolist()) for p in pos_lists],
        users_with_pos=np.array([u for u in range(n_users) if len(pos_lists[u])]),
        train_pos={u: pos_lists[u] for u in range(n_users)},
        test_pos={u: np.array(v) for u, v in test_pos.items()})


def epoch_triples(rng, d, n_train):
    """An epoch's (user, positive, negative) triples as lightgcn_torch.py draws them, shuffled,
    as torch tensors."""
    users, pos, neg = lgn.sample_epoch(rng, n_train, d.n_items, d.pos_lists, d.pos_sets,
                                       d.users_with_pos)
    perm = rng.permutation(n_train)
    return tuple(torch.from_numpy(x[perm]) for x in (users, pos, neg))


def run(a, build):
    """Trains build(data) as lightgcn_torch.py trains LightGCN: BPR over one uniformly sampled
    negative, plus model.reg(), Adam; the whole graph propagated once per batch (or the batch's
    subgraph, through model.batch_vectors)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    d = load(a.data)

    t0 = time.time()
    model = build(d)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    print(json.dumps({'users': d.n_users, 'items': d.n_items, 'train': len(d.tu), 'test': d.n_test,
                      'setup_s': round(time.time() - t0, 3), 'threads': torch.get_num_threads()}),
          flush=True)

    n_train = len(d.tu)
    for ep in range(1, a.epochs + 1):
        ts = time.time()
        users, pos, neg = epoch_triples(rng, d, n_train)
        sample_s = time.time() - ts
        tt = time.time()
        total, nb = 0.0, 0
        for s in range(0, n_train, a.batch):
            u, p, n = users[s:s + a.batch], pos[s:s + a.batch], neg[s:s + a.batch]
            if hasattr(model, 'batch_vectors'):
                U = I = None
                ue, pe, ne = model.batch_vectors(u, p, n)
            else:
                U, I = model.propagate()
                ue, pe, ne = U[u], I[p], I[n]
            loss = torch.nn.functional.softplus((ue * ne).sum(1) - (ue * pe).sum(1)).mean()
            opt.zero_grad()
            (loss + model.reg(u, p, n, U, I)).backward()
            opt.step()
            total += loss.item()
            nb += 1
            if a.max_batches and nb >= a.max_batches:
                break
        rec = {'epoch': ep, 'batches': nb, 'train_s': round(time.time() - tt, 3),
               's_per_batch': round((time.time() - tt) / nb, 5),
               'sample_s': round(sample_s, 3), 'loss': round(total / nb, 5)}
        if a.eval_every and ep % a.eval_every == 0:
            te = time.time()
            r, g = lgn.evaluate(model, d.train_pos, d.test_pos, d.n_items, a.topk)
            rec.update({f'recall@{a.topk}': round(r, 5), f'ndcg@{a.topk}': round(g, 5),
                        'eval_s': round(time.time() - te, 3)})
        print(json.dumps(rec), flush=True)
