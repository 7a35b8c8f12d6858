/* Graphs built from the training interactions. */
#ifndef GNNREC_TRAINER_GRAPH_H
#define GNNREC_TRAINER_GRAPH_H

#include "engine/csr.h"

/* The symmetric-normalised user-item adjacency D^-1/2 (A + s I) D^-1/2 with s = self_loops (0
 * or 1) and D the degrees of A + s I: nodes are users 0..U-1 then items U..U+I-1, entry (u, U+i) =
 * (U+i, u) = 1/sqrt(deg(u) deg(i)) for every training pair, and with self-loops also (r, r) =
 * 1/deg(r). Without self-loops it is LightGCN's and NGCF's graph; with them, the renormalised
 * graph of Kipf & Welling's GCN. Rows sorted. train: [U x I] pattern. A new matrix, or NULL when
 * out of memory. Being symmetric, it is its own transpose: backward passes reuse it. */
eng_csr_t *trn_graph_norm_adj(const eng_csr_t *train, int self_loops);

/* The pattern of the same graph (val NULL): A + s I, users' rows then items', sorted, symmetric.
 * The neighbourhoods over which GAT's attention normalises. A new matrix, or NULL when out of
 * memory. */
eng_csr_t *trn_graph_adj(const eng_csr_t *train, int self_loops);

/* The transpose of a pattern matrix (items -> users lists, sorted); NULL when out of memory. */
eng_csr_t *trn_graph_transpose(const eng_csr_t *m);

#endif
