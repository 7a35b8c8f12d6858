/* Neighbourhood aggregators of GraphSAGE (Hamilton et al., NeurIPS 2017), as forward/backward
 * pairs over neighbour lists.
 *
 * Node i < n aggregates the rows x[idx[ptr[i] .. ptr[i+1])] of a feature table x [n_in x d] into
 * out[i] [d]; a node with an empty list gets zeros. Conventions as trainer/layers.h: backward ADDS
 * into every gradient it is given; rows of x repeat freely across lists. Threads split rows in
 * the forwards and columns in the backwards (which scatter into dx), each element summed in a
 * fixed order, so the bits do not depend on the thread count. Each pair has a finite-difference
 * test in tests/test_grad.c. None of these can fail. */
#ifndef GNNREC_TRAINER_AGGREGATE_H
#define GNNREC_TRAINER_AGGREGATE_H

#include <stdint.h>

/* out[i] = the mean of node i's neighbour rows. */
void trn_agg_mean_forward(float *out, const float *x, const int64_t *ptr, const int32_t *idx,
                          int64_t n, int d, int threads);

/* dx[u] += dout[i] / |list i| for every u in node i's list. */
void trn_agg_mean_backward(float *dx, const float *dout, const int64_t *ptr, const int32_t *idx,
                           int64_t n, int d, int threads);

/* out[i][j] = the largest x[u][j] over node i's list; arg[i][j] = that u (the first in the list
 * on ties), -1 for an empty list. arg is [n x d]. */
void trn_agg_max_forward(float *out, int32_t *arg, const float *x, const int64_t *ptr,
                         const int32_t *idx, int64_t n, int d, int threads);

/* dx[arg[i][j]][j] += dout[i][j]: the gradient goes to the maximum alone. */
void trn_agg_max_backward(float *dx, const float *dout, const int32_t *arg, int64_t n, int d,
                          int threads);

/* The pooling aggregator: every row of x through a dense layer and a ReLU, pz = x w + b and pa =
 * ReLU(pz) [n_in x d], then the element-wise max over node i's list of pa rows (arg as
 * trn_agg_max_forward). w [d x d], b [d]. */
void trn_agg_pool_forward(float *out, int32_t *arg, float *pz, float *pa, const float *x,
                          const float *w, const float *b, const int64_t *ptr, const int32_t *idx,
                          int64_t n, int64_t n_in, int d, int threads);

/* For the pool above given dout [n x d]: dx [n_in x d], dw [d x d] and db [d] accumulate (each
 * may be NULL); scratch [2 x n_in x d] is overwritten. */
void trn_agg_pool_backward(float *dx, float *dw, float *db, float *scratch, const float *dout,
                           const int32_t *arg, const float *pz, const float *x, const float *w,
                           int64_t n, int64_t n_in, int d, int threads);

/* The LSTM aggregator: node i's list, in its order, through an LSTM of hidden size d from a zero
 * state, out[i] = its last hidden state. Per position t: z = x_t wx + b + h_{t-1} wh, cut into
 * [i f g o] d wide each; i, f, o sigmoid, g tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t).
 * wx, wh [d x 4d], b [4d]. Writes xw [n_in x 4d] = x wx + b (each row once, as rows repeat across
 * lists), and per list position q < ptr[n] the activated gates gates[q] [4d] and the cell
 * cell[q] [d], which the backward reads. The lists run side by side, step t of every list longer
 * than t in one product by wh. scratch [n x (5d + 1)] is overwritten. Order matters: the caller
 * permutes the lists. */
void trn_agg_lstm_forward(float *out, float *xw, float *gates, float *cell, float *scratch,
                          const float *x, const float *wx, const float *wh, const float *b,
                          const int64_t *ptr, const int32_t *idx, int64_t n, int64_t n_in, int d,
                          int threads);

/* The LSTM aggregator's output alone, for inference: out[i] as trn_agg_lstm_forward computes it,
 * from xw [.. x 4d] = x wx + b computed by the caller, keeping no gates or cells: scratch
 * [n x (6d + 1)] instead of 5d floats per list position. */
void trn_agg_lstm_infer(float *out, float *scratch, const float *xw, const float *wh,
                        const int64_t *ptr, const int32_t *idx, int64_t n, int d, int threads);

/* Backpropagation through time for the LSTM above given dout [n x d]: dx [n_in x d], dwx and dwh
 * [d x 4d] and db [4d] accumulate (dx, dwx, db may be NULL); scratch [n_in x 4d + ptr[n] x 5d +
 * n x (7d + 1)] is overwritten. */
void trn_agg_lstm_backward(float *dx, float *dwx, float *dwh, float *db, float *scratch,
                           const float *dout, const float *gates, const float *cell, const float *x,
                           const float *wx, const float *wh, const int64_t *ptr, const int32_t *idx,
                           int64_t n, int64_t n_in, int d, int threads);

#endif
