/* Graphs built from the training interactions. */
#ifndef GNNREC_TRAINER_GRAPH_H
#define GNNREC_TRAINER_GRAPH_H

#include "engine/csr.h"

/* The symmetric-normalised user-item adjacency of LightGCN/NGCF, without self-loops:
 * nodes are users 0..U-1 then items U..U+I-1, entry (u, U+i) = (i, u) = 1/sqrt(deg(u) deg(i)) for
 * every training pair. Rows sorted. train: [U x I] pattern. A new matrix, or NULL when out of
 * memory. Being symmetric, it is its own transpose: backward passes reuse it. */
eng_csr_t *trn_graph_norm_adj(const eng_csr_t *train);

/* The transpose of a pattern matrix (items -> users lists, sorted); NULL when out of memory. */
eng_csr_t *trn_graph_transpose(const eng_csr_t *m);

#endif
