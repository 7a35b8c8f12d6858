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
#include <stdint.h>

/* out[dout] = x[din] w[din x dout] (+ b[dout] when b is not NULL), w row-major: out starts as b
 * (or 0) and gains x[i] w[i] for i = 0..din-1 in order. out must not overlap x. */
void eng_vecmat(float *out, const float *x, const float *w, const float *b, int din, int dout);

/* a[d] . b[d] in eight interleaved partial sums (lane j % 8), added pairwise at the end: the
 * form a compiler vectorises without reassociating on its own, so the same bits on every CPU. */
float eng_dot(const float *a, const float *b, int d);

/* out[i] = in[i] for in[i] > 0, slope * in[i] otherwise: LeakyReLU, and ReLU with slope 0.
 * out may be in. */
void eng_lrelu(float *out, const float *in, float slope, size_t n);

/* e^x by Cephes' expf reduction and polynomial (within 2 ulp of e^x on [-87, 88]; x clamped to
 * that range, so 0 < result < inf), branch-free and in plain float arithmetic: a loop over it
 * vectorises, where libm's expf and expm1f are a call per element, and it gives the same bits
 * on every CPU for code compiled for one kind (engine/simd.h; the AVX2 kind fuses its
 * multiply-adds). What the activations and the softmax below exponentiate with. */
static inline float eng_exp(float x)
{
    x = x < -87.0f ? -87.0f : x; /* two selects, each vectorised as a blend */
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2), by the add-and-subtract of 1.5 * 2^23 that rounds to an integer */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln 2, in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = (p * (r * r) + r) + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23}; /* 2^n */
    return y * scale.f;
}

/* 1 / (1 + e^-x) by eng_exp: within 3e-7 of the logistic function, and vectorisable. */
static inline float eng_sigmoid(float x)
{
    return 1.0f / (1.0f + eng_exp(-x));
}

/* tanh(x) = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|) by eng_exp: odd exactly, within 3e-7 of tanh
 * (absolute), and vectorisable, where libm's tanhf is a call per element. */
static inline float eng_tanh(float x)
{
    const float ax = x < 0.0f ? -x : x, t = eng_exp(-2.0f * ax), r = (1.0f - t) / (1.0f + t);
    return x < 0.0f ? -r : r;
}

/* out[i] = in[i] for in[i] > 0, eng_exp(in[i]) - 1 otherwise: ELU with alpha 1. out may be
 * in. */
void eng_elu(float *out, const float *in, size_t n);

/* tf.math.l2_normalize's floor on the squared length. */
#define ENG_L2NORM_FLOOR 1e-12

/* out[d] = in[d] / sqrt(max(||in||^2, ENG_L2NORM_FLOOR)), the squared length summed in double;
 * returns that divisor (as a float). out may be in. */
float eng_l2norm(float *out, const float *in, int d);

/* out[d] = the mean of the `heads` blocks of in[heads x d] (a multi-head layer's output). */
void eng_head_mean(float *out, const float *in, int heads, int d);

/* out[n] = softmax(in[n]), computed with the maximum subtracted (no overflow for any finite in),
 * e^x by eng_exp, and the sum in double. n 0 writes nothing. out may be in. */
void eng_softmax(float *out, const float *in, size_t n);

#endif
