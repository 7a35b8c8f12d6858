/* Dense layers for the models with feature transforms (GCN, NGCF, GAT), as forward/backward pairs.
 *
 * Convention (llm.c, as trainer/loss.h): forward(out..., in..., sizes); backward(din..., dout,
 * in..., sizes) ADDS into every gradient it is given, so the caller zeroes gradients once per step;
 * a gradient pointer given as NULL is not computed. Matrices are row-major. Every pair has a
 * finite-difference test in tests/test_grad.c. None of these can fail. */
#ifndef GNNREC_TRAINER_LAYERS_H
#define GNNREC_TRAINER_LAYERS_H

#include "engine/rng.h"

#include <stddef.h>
#include <stdint.h>

/* out[n x dout] = in[n x din] w[din x dout] (+ b[dout] on every row when b is not NULL).
 * The rows are cut into fixed blocks shared among `threads` OpenMP threads, one single-threaded
 * product per block (trainer/gemm.c's kernels on an AVX-512 CPU for widths that are multiples of
 * 16, else sgemm): the block boundaries do not depend on the thread count, so neither do the
 * bits of out. */
void trn_dense_forward(float *out, const float *in, const float *w, const float *b, int64_t n,
                       int din, int dout, int threads);

/* For the layer above, given dout[n x dout]: din[n x din] += dout w^T, dw[din x dout] += in^T
 * dout, db[dout] += the column sums of dout. din, dw and db may each be NULL. dw is one sum over
 * all n rows per fixed block of its columns and db one sum (so the same bits for any thread
 * count); din is blocked as the forward. */
void trn_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int64_t n, int din_cols, int dout_cols, int threads);

/* out[i] = in[i] for in[i] > 0, slope * in[i] otherwise: LeakyReLU, and ReLU with slope 0. */
void trn_lrelu_forward(float *out, const float *in, float slope, size_t n);

/* din[i] += dout[i] for in[i] > 0, slope * dout[i] otherwise (the kink's gradient is slope's). */
void trn_lrelu_backward(float *din, const float *dout, const float *in, float slope, size_t n);

/* out[i] = tanh(in[i]) (eng_tanh). out may be in. */
void trn_tanh_forward(float *out, const float *in, size_t n);

/* din[i] += dout[i] * (1 - out[i]^2), from the forward's output. */
void trn_tanh_backward(float *din, const float *dout, const float *out, size_t n);

/* out[i] = in[i] for in[i] > 0, exp(in[i]) - 1 otherwise: ELU (Clevert et al.) with alpha 1, as
 * GAT's hidden layers (eng_elu, exp by eng_exp), the entries shared among `threads` threads. */
void trn_elu_forward(float *out, const float *in, size_t n, int threads);

/* din[i] += dout[i] for in[i] > 0, dout[i] exp(in[i]) otherwise (eng_exp), threaded as the
 * forward. */
void trn_elu_backward(float *din, const float *dout, const float *in, size_t n, int threads);

/* Inverted dropout with an explicit mask: mask[i] = 1 with probability 1 - p (to 2^-32), and
 * out[i] = in[i] * mask[i] / (1 - p). p in [0, 1); with p 0 the mask is all ones and rng is not
 * used. Otherwise one draw of rng seeds a stream per fixed block of entries, two entries per
 * draw, so the mask is the same for any thread count; the blocks are shared among `threads`
 * OpenMP threads. out may be in. Whoever needs the same mask again (the backward, a repeated
 * gradient evaluation) keeps mask or re-seeds rng identically. */
void trn_dropout_forward(float *out, uint8_t *mask, const float *in, float p, size_t n,
                         eng_rng_t *rng, int threads);

/* din[i] += dout[i] * mask[i] / (1 - p), with the forward's mask. */
void trn_dropout_backward(float *din, const float *dout, const uint8_t *mask, float p, size_t n);

/* out[i] = a[i] * b[i]: NGCF's bi-interaction message. */
void trn_mul_forward(float *out, const float *a, const float *b, size_t n);

/* da[i] += dout[i] * b[i], db[i] += dout[i] * a[i]; da or db may be NULL. */
void trn_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                      size_t n);

/* Each row to unit length as tf.math.l2_normalize: out[r] = in[r] / sqrt(max(||in[r]||^2,
 * 1e-12)), in[n x d]; norm[r] receives that divisor, for the backward. */
void trn_l2norm_forward(float *out, float *norm, const float *in, int64_t n, int d, int threads);

/* din[r] += (dout[r] - out[r] (out[r] . dout[r])) / norm[r] for a row whose squared length was
 * above 1e-12, dout[r] / norm[r] for one at the floor (where the divisor is constant). */
void trn_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                         int64_t n, int d, int threads);

/* out[n x d_out] columns [col, col + d) = in[n x d]: a model's output as the concatenation of
 * its layers. The other columns of out are untouched. */
void trn_concat_forward(float *out, const float *in, int64_t n, int d, int d_out, int col);

/* din[n x d] += dout[n x d_out] columns [col, col + d). */
void trn_concat_backward(float *din, const float *dout, int64_t n, int d, int d_out, int col);

/* out[n x d] = the mean of the `heads` column blocks of in[n x heads * d]: the output layer of a
 * multi-head model (GAT) averages its heads. */
void trn_head_mean_forward(float *out, const float *in, int64_t n, int heads, int d);

/* din[n x heads * d] += dout[n x d] / heads in every head's block. */
void trn_head_mean_backward(float *din, const float *dout, int64_t n, int heads, int d);

/* out[k] = src[idx[k]] for k < n: rows [d] of a table gathered into a batch (an embedding
 * lookup). */
void trn_gather_forward(float *out, const float *src, const int32_t *idx, int64_t n, int d);

/* dsrc[idx[k]] += dout[k], in k order (an index may repeat). */
void trn_gather_backward(float *dsrc, const float *dout, const int32_t *idx, int64_t n, int d);

/* w[rows x cols] drawn uniform in +-sqrt(6 / (rows + cols)): Glorot & Bengio's (Xavier)
 * initialisation, as TensorFlow's xavier_initializer. */
void trn_init_xavier(float *w, int64_t rows, int64_t cols, eng_rng_t *rng);

#endif
