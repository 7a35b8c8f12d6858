/* Dense kernels on one row: the element-wise activations, row normalisation, head mean and
 * softmax that the trainer's layers run over whole matrices (trainer/layers.c and
 * trainer/attention.c call these per row, so there is one definition of each) and that the
 * server's fold-ins run for one new user; and the vector-matrix product of that one user (the
 * trainer multiplies whole matrices with OpenBLAS, which the server does not link).
 *
 * Plain loops, single-threaded, no allocation; none of these can fail. out may equal in where
 * a function says so. */
#ifndef GNNREC_ENGINE_VEC_H
#define GNNREC_ENGINE_VEC_H

#include <stddef.h>

/* out[dout] = x[din] w[din x dout] (+ b[dout] when b is not NULL), w row-major: out starts as b
 * (or 0) and gains x[i] w[i] for i = 0..din-1 in order. out must not overlap x. */
void eng_vecmat(float *out, const float *x, const float *w, const float *b, int din, int dout);

/* a[d] . b[d] in eight interleaved partial sums (lane j % 8), added pairwise at the end: the
 * form a compiler vectorises without reassociating on its own, so the same bits on every CPU. */
float eng_dot(const float *a, const float *b, int d);

/* out[i] = in[i] for in[i] > 0, slope * in[i] otherwise: LeakyReLU, and ReLU with slope 0.
 * out may be in. */
void eng_lrelu(float *out, const float *in, float slope, size_t n);

/* out[i] = in[i] for in[i] > 0, expm1(in[i]) otherwise: ELU with alpha 1. out may be in. */
void eng_elu(float *out, const float *in, size_t n);

/* tf.math.l2_normalize's floor on the squared length. */
#define ENG_L2NORM_FLOOR 1e-12

/* out[d] = in[d] / sqrt(max(||in||^2, ENG_L2NORM_FLOOR)), the squared length summed in double;
 * returns that divisor (as a float). out may be in. */
float eng_l2norm(float *out, const float *in, int d);

/* out[d] = the mean of the `heads` blocks of in[heads x d] (a multi-head layer's output). */
void eng_head_mean(float *out, const float *in, int heads, int d);

/* out[n] = softmax(in[n]), computed with the maximum subtracted (no overflow for any finite in)
 * and the sum in double. n 0 writes nothing. out may be in. */
void eng_softmax(float *out, const float *in, size_t n);

#endif
