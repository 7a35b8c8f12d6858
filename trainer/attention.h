/* Graph attention (Velickovic et al., ICLR 2018) as forward/backward pairs over an edge set: one
 * head's attention is
 *     st = z [a_src a_dst]                      (trn_dense_forward: st[c] = (s_c, t_c))
 *     e_rc = LeakyReLU(s_r + t_c)               (trn_edge_sum_forward, then trn_lrelu_forward)
 *     alpha_rc = softmax over c in row r of e   (trn_edge_softmax_forward)
 *     out_r = sum_c alpha_rc z_c                (trn_edge_aggregate_forward)
 * so that the paper's a^T [z_r || z_c] costs one dot product per node, not per edge, and memory is
 * O(edges): never an N x N matrix.
 *
 * An edge set (trn_edges_t) is the part of a graph one layer attends over: its rows are the nodes
 * the layer computes, its columns the nodes they read (z, st), each a list of graph nodes, and
 * edge arrays are [nnz] in its storage order. With every node in both lists it is the whole graph.
 *
 * Convention as trainer/layers.h: backward ADDS into every gradient it is given (NULL: not
 * computed). The backward passes of the gathers read each column's entries through the set's
 * transposed index, so that each node's gradient is one sum computed by one thread (OpenMP over
 * rows or columns, static schedule): results do not depend on the thread count. Every pair has a
 * finite-difference test in tests/test_grad.c. None of these can fail but trn_edges_build. */
#ifndef GNNREC_TRAINER_ATTENTION_H
#define GNNREC_TRAINER_ATTENTION_H

#include "engine/csr.h"

#include <stdint.h>

typedef struct {
    eng_csr_t g;       /* [rows x cols] pattern: row r's entries are its neighbours' columns */
    int32_t *self;     /* [rows] row r's own column (where its s_r is) */
    int64_t *col_ptr;  /* [cols + 1] column c's entries are col_edge[col_ptr[c] .. col_ptr[c+1]) */
    int64_t *col_edge; /* [nnz] an entry's index in the edge arrays */
    int32_t *col_row;  /* [nnz] and its row */
    int32_t *pos;      /* [graph nodes] scratch: a node's column */
} trn_edges_t;

/* Room for edge sets of `graph`; 0 or ENG_ENOMEM. Free with trn_edges_free, also after a
 * failure. */
int trn_edges_alloc(trn_edges_t *e, const eng_csr_t *graph);
void trn_edges_free(trn_edges_t *e);

/* e = the entries of graph (square, sorted rows) in the rows rows[0..n_rows), with their columns
 * renumbered as places in cols[0..n_cols) (ascending). Every neighbour of a listed row, and the
 * row itself, must be in cols. */
void trn_edges_build(trn_edges_t *e, const eng_csr_t *graph, const int32_t *rows, int32_t n_rows,
                     const int32_t *cols, int32_t n_cols);

/* e[k] = st[2 self[r]] + st[2 c + 1] for every entry k = (r, c): the edge's attention logit
 * before the LeakyReLU, from the row's score s_r and the neighbour's score t_c. st [cols x 2]. */
void trn_edge_sum_forward(float *e, const float *st, const trn_edges_t *s, int threads);

/* dst[2 self[r]] += the sum of de over row r, dst[2 c + 1] += the sum of de over column c. */
void trn_edge_sum_backward(float *dst, const float *de, const trn_edges_t *s, int threads);

/* alpha = e normalised by a softmax over each row, computed with the row's maximum subtracted (no
 * overflow for any finite e). An empty row has no entries to write. */
void trn_edge_softmax_forward(float *alpha, const float *e, const trn_edges_t *s, int threads);

/* de[k] += alpha[k] (dalpha[k] - sum over k's row of alpha dalpha). */
void trn_edge_softmax_backward(float *de, const float *dalpha, const float *alpha,
                               const trn_edges_t *s, int threads);

/* out[r] = sum over the entries k = (r, c) of alpha[k] z[c]: z [cols x d], out [rows x d]. The
 * sparse product of engine/csr.h with alpha as the values. */
void trn_edge_aggregate_forward(float *out, const float *alpha, const float *z,
                                const trn_edges_t *s, int d, int threads);

/* dalpha[k] += dout[r] . z[c] for k = (r, c); dz[c] += sum over column c's entries (r, c) of
 * alpha dout[r]. dz or dalpha may be NULL. */
void trn_edge_aggregate_backward(float *dz, float *dalpha, const float *dout, const float *alpha,
                                 const float *z, const trn_edges_t *s, int d, int threads);

#endif
