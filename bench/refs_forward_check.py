#!/usr/bin/env python3
"""Checks that a PyTorch reference computes gnnrec's vectors: loads a version gnnrec published
(its parameters and settings, from the SQLite store) into gcn_torch.py's, ngcf_torch.py's,
gat_torch.py's or graphsage_torch.py's model, propagates without dropout, and compares with the
version's user_vecs and item_vecs. For graphsage that is the published forward, over every
neighbour without sampling (lstm: the lists in index order), which is deterministic for every
aggregator; the sampled training forward is not compared.

  gnnrec train --model gcn --train D/train.txt --format lgn --epochs 1 --max-batches 3 \
      --db /tmp/chk.sqlite --name chk
  /usr/bin/python3 bench/refs_forward_check.py --data D --db /tmp/chk.sqlite --name chk

Prints the largest absolute difference over all published rows and exits 1 if it is above --tol.
"""
import argparse, json, os, sqlite3, sys

import numpy as np
import torch

import torch_refs
import gat_torch
import gcn_torch
import graphsage_torch
import ngcf_torch


def tensors(db, name):
    c = sqlite3.connect(db)
    mid, kind, params = c.execute(
        'SELECT id, kind, params FROM models WHERE name = ? ORDER BY version DESC LIMIT 1',
        (name,)).fetchone()
    out = {}
    for key, dtype, shape in c.execute('SELECT name, dtype, shape FROM tensors WHERE model_id = ?',
                                       (mid,)):
        data = b''.join(r[0] for r in c.execute(
            'SELECT data FROM blobs WHERE model_id = ? AND key = ? ORDER BY chunk', (mid, key)))
        if dtype == 'str':
            out[key] = [int(s) for s in data.decode().split('\0')[:-1]]
        else:
            dims = [int(x) for x in shape.strip('[]').split(',') if x]
            out[key] = np.frombuffer(data, dtype={'f32': np.float32, 'i32': np.int32,
                                                  'i64': np.int64, 'u8': np.uint8}[dtype]).reshape(dims)
    return kind, json.loads(params), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', required=True)
    ap.add_argument('--db', required=True)
    ap.add_argument('--name', required=True)
    ap.add_argument('--tol', type=float, default=1e-4)
    a = ap.parse_args()
    kind, hp, t = tensors(a.db, a.name)
    d = torch_refs.load(a.data)
    users, items = np.array(t['user_ids']), np.array(t['item_ids'])
    dim = t['param.user_emb'].shape[1]
    torch.manual_seed(0)
    if kind == 'gcn':
        layers = sum(1 for k in t if k.startswith('param.W'))
        m = gcn_torch.GCN(d.n_users, d.n_items, dim, layers, 0.0, 0.0,
                          gcn_torch.renorm_adj(d.tu, d.ti, d.n_users, d.n_items))
        with torch.no_grad():
            m.emb[torch.from_numpy(users)] = torch.from_numpy(t['param.user_emb'].copy())
            m.emb[torch.from_numpy(items + d.n_users)] = torch.from_numpy(t['param.item_emb'].copy())
            for l, W in enumerate(m.W):
                W.copy_(torch.from_numpy(t[f'param.W{l + 1}'].copy()))
    elif kind == 'ngcf':
        layers = sum(1 for k in t if k.startswith('param.W_gc_'))
        m = ngcf_torch.NGCF(d.n_users, d.n_items, dim, layers, 0.0, 0.0, 0.0,
                            torch_refs.lgn.norm_adj(d.tu, d.ti, d.n_users, d.n_items))
        with torch.no_grad():
            m.user[torch.from_numpy(users)] = torch.from_numpy(t['param.user_emb'].copy())
            m.item[torch.from_numpy(items)] = torch.from_numpy(t['param.item_emb'].copy())
            for l in range(layers):
                for p in ('W_gc', 'b_gc', 'W_bi', 'b_bi'):
                    getattr(m, p)[l].copy_(torch.from_numpy(t[f'param.{p}_{l + 1}'].copy()))
    elif kind == 'gat':
        m = gat_torch.GAT(d.n_users, d.n_items, dim, hp['layers'], hp['heads'], 0.0, 0.0, 0.0,
                          gat_torch.Graph(d.tu, d.ti, d.n_users, d.n_items))
        with torch.no_grad():
            m.emb[torch.from_numpy(users)] = torch.from_numpy(t['param.user_emb'].copy())
            m.emb[torch.from_numpy(items + d.n_users)] = torch.from_numpy(t['param.item_emb'].copy())
            for l in range(hp['layers']):
                for h in range(hp['heads']):
                    m.W[l][h].copy_(torch.from_numpy(t[f'param.W{l + 1}.h{h + 1}'].copy()))
                    m.a[l][h].copy_(torch.from_numpy(t[f'param.a{l + 1}.h{h + 1}'].copy()))
    elif kind == 'graphsage':
        agg = hp['aggregator']
        m = graphsage_torch.GraphSAGE(d.n_users, d.n_items, dim, hp['fanout'], agg, 0.0,
                                      graphsage_torch.csr(d.tu, d.ti, d.n_users, d.n_items))
        names = {'mean': ['W'], 'max': ['W'], 'pool': ['W', 'P', 'pb'],
                 'lstm': ['W', 'Lx', 'Lh', 'lb']}[agg]
        with torch.no_grad():
            m.emb[torch.from_numpy(users)] = torch.from_numpy(t['param.user_emb'].copy())
            m.emb[torch.from_numpy(items + d.n_users)] = torch.from_numpy(t['param.item_emb'].copy())
            for l in range(hp['layers']):
                for p in names:
                    getattr(m, p)[l].copy_(torch.from_numpy(t[f'param.{p}{l + 1}'].copy()))
    else:
        sys.exit(f'{kind}: no reference here')
    m.eval()
    with torch.no_grad():
        U, I = m.propagate()
    du = np.abs(U[torch.from_numpy(users)].numpy() - t['user_vecs']).max()
    di = np.abs(I[torch.from_numpy(items)].numpy() - t['item_vecs']).max()
    scale = max(np.abs(t['user_vecs']).max(), np.abs(t['item_vecs']).max())
    what = f'{kind}:{hp["aggregator"]}' if kind == 'graphsage' else kind
    print(f'{what}: {len(users)} users, {len(items)} items, vectors of {t["user_vecs"].shape[1]}: '
          f'max |diff| users {du:.3g}, items {di:.3g} (largest entry {scale:.3g})')
    sys.exit(0 if max(du, di) <= a.tol else 1)


if __name__ == '__main__':
    main()
