/* Graph attention (Velickovic et al., ICLR 2018) as forward/backward pairs over the edges of a
 * graph in CSR form: one head's attention is
 *     st = z [a_src a_dst]                      (trn_dense_forward: st[i] = (s_i, t_i))
 *     e_ij = LeakyReLU(s_i + t_j)               (trn_edge_sum_forward, then trn_lrelu_forward)
 *     alpha_ij = softmax over j in row i of e   (trn_edge_softmax_forward)
 *     out_i = sum_j alpha_ij z_j                (trn_edge_aggregate_forward)
 * so that the paper's a^T [z_i || z_j] costs one dot product per node, not per edge, and memory is
 * O(edges): never an N x N matrix. Edge arrays are [nnz], in the graph's storage order.
 *
 * Convention as trainer/layers.h: backward ADDS into every gradient it is given (NULL: not
 * computed). The backward passes of the gathers need the graph's pattern to be symmetric and the
 * reverse-edge index of trn_graph_reverse, so that each node's gradient is one sum computed by one
 * thread (OpenMP over rows, static schedule): results do not depend on the thread count. Every
 * pair has a finite-difference test in tests/test_grad.c. None of these can fail. */
#ifndef GNNREC_TRAINER_ATTENTION_H
#define GNNREC_TRAINER_ATTENTION_H

#include "engine/csr.h"

#include <stdint.h>

/* e[k] = st[2 r] + st[2 c + 1] for every entry k = (r, c) of g: the edge's attention logit
 * before the LeakyReLU, from the source's score s_r and the neighbour's score t_c. st [rows x 2].
 */
void trn_edge_sum_forward(float *e, const float *st, const eng_csr_t *g, int threads);

/* dst[2 r] += the sum of de over row r, dst[2 c + 1] += the sum of de over column c (gathered
 * along row c through rev). */
void trn_edge_sum_backward(float *dst, const float *de, const eng_csr_t *g, const int64_t *rev,
                           int threads);

/* alpha = e normalised by a softmax over each row of g, computed with the row's maximum
 * subtracted (no overflow for any finite e). An empty row has no entries to write. */
void trn_edge_softmax_forward(float *alpha, const float *e, const eng_csr_t *g, int threads);

/* de[k] += alpha[k] (dalpha[k] - sum over k's row of alpha dalpha). */
void trn_edge_softmax_backward(float *de, const float *dalpha, const float *alpha,
                               const eng_csr_t *g, int threads);

/* out[r] = sum over the entries k = (r, c) of alpha[k] z[c]: z, out [rows x d]. The sparse
 * product of engine/csr.h with alpha as the values. */
void trn_edge_aggregate_forward(float *out, const float *alpha, const float *z, const eng_csr_t *g,
                                int d, int threads);

/* dalpha[k] += dout[r] . z[c] for k = (r, c); dz[c] += sum over the entries (r, c) of alpha
 * dout[r], gathered along row c through rev. dz or dalpha may be NULL. */
void trn_edge_aggregate_backward(float *dz, float *dalpha, const float *dout, const float *alpha,
                                 const float *z, const eng_csr_t *g, const int64_t *rev, int d,
                                 int threads);

#endif
