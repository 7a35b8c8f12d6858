/* Dense layers: the matrix products with OpenBLAS, or on AVX-512 CPUs with the small-product
 * kernels of trainer/gemm.c where the widths allow (twice sgemm's speed at these shapes, with
 * the Haswell kernels the environment pins); the element-wise layers in plain loops (the
 * forwards of the activations, the row normalisation and the head mean are the engine's one-row
 * kernels, engine/vec.h, which the server's fold-ins run too).
 *
 * Why dense kernels here and hand-written kernels for the sparse products: a dense layer does
 * din * dout multiply-adds per row on data that stays in cache, so it is compute-bound, and
 * register tiling with FMA is several times faster than a plain loop; the sparse products stream
 * the graph from memory once per layer and are bound by memory bandwidth, where sgemm has
 * nothing to offer.
 *
 * Threads: OpenBLAS's own pool is set to one thread and the parallelism is ours, over fixed
 * blocks of BLOCK rows, so the result does not depend on the thread count and OpenBLAS's threads
 * never compete with the OpenMP threads of the sparse products. */
#include "trainer/layers.h"
#include "engine/vec.h"
#include "trainer/gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per sgemm call: fixed, so each row's arithmetic is the same whatever the thread count. */
#define BLOCK 512

/* Column blocks of a weight gradient, when it has at least 2 DW_MIN_COLS columns. */
#define DW_PARTS 2
#define DW_MIN_COLS 16

void trn_dense_forward(float *out, const float *in, const float *w, const float *b, int64_t n,
                       int din, int dout, int threads)
{
    openblas_set_num_threads(1);
    const int own = trn_gemm_fits(dout);
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < blocks; k++) {
        const int64_t r0 = k * BLOCK, rows = n - r0 < BLOCK ? n - r0 : BLOCK;
        float *o = out + r0 * dout;
        if (b)
            for (int64_t r = 0; r < rows; r++)
                memcpy(o + r * dout, b, (size_t)dout * sizeof *o);
        if (own)
            trn_gemm_nn(o, dout, in + r0 * din, din, w, dout, rows, din, dout, b != NULL);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, dout, din, 1.0f,
                        in + r0 * din, din, w, dout, b ? 1.0f : 0.0f, o, dout);
    }
}

void trn_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int64_t n, int din_cols, int dout_cols, int threads)
{
    openblas_set_num_threads(1);
    if (n == 0)
        return;
    if (dw) {
        /* in^T dout in DW_PARTS fixed column blocks, one product each, shared among the threads:
         * each block's sums are the same whatever the thread count. */
        const int parts = dout_cols >= 2 * DW_MIN_COLS ? DW_PARTS : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int k = 0; k < parts; k++) {
            const int c0 = dout_cols * k / parts, c1 = dout_cols * (k + 1) / parts;
            if (trn_gemm_fits(c1 - c0))
                trn_gemm_tn(dw + c0, dout_cols, in, din_cols, dout + c0, dout_cols, n, din_cols,
                            c1 - c0);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, din_cols, c1 - c0, (int)n,
                            1.0f, in, din_cols, dout + c0, dout_cols, 1.0f, dw + c0, dout_cols);
        }
    }
    if (db)
        for (int64_t r = 0; r < n; r++)
            for (int j = 0; j < dout_cols; j++)
                db[j] += dout[r * dout_cols + j];
    if (!din)
        return;
    /* dout w^T: the own kernel reads w^T as its row-major right operand */
    float *wt = trn_gemm_fits(din_cols) ? malloc((size_t)din_cols * dout_cols * sizeof *wt) : NULL;
    for (int i = 0; wt && i < din_cols; i++)
        for (int j = 0; j < dout_cols; j++)
            wt[(size_t)j * din_cols + i] = w[(size_t)i * dout_cols + j];
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t k = 0; k < blocks; k++) {
        const int64_t r0 = k * BLOCK, rows = n - r0 < BLOCK ? n - r0 : BLOCK;
        if (wt)
            trn_gemm_nn(din + r0 * din_cols, din_cols, dout + r0 * dout_cols, dout_cols, wt,
                        din_cols, rows, dout_cols, din_cols, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, din_cols, dout_cols,
                        1.0f, dout + r0 * dout_cols, dout_cols, w, dout_cols, 1.0f,
                        din + r0 * din_cols, din_cols);
    }
    free(wt);
}

void trn_lrelu_forward(float *out, const float *in, float slope, size_t n)
{
    eng_lrelu(out, in, slope, n);
}

/* Branch-free, as eng_lrelu (engine/vec.c says why). */
void trn_lrelu_backward(float *din, const float *dout, const float *in, float slope, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float g = dout[i], pos = in[i] > 0.0f ? g : 0.0f, neg = in[i] > 0.0f ? 0.0f : g;
        din[i] += pos + slope * neg;
    }
}

void trn_tanh_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = eng_tanh(in[i]);
}

void trn_tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* Element-wise, in runs of ELU_RUN entries shared among the threads: the same bits for any
 * thread count. */
#define ELU_RUN 4096

void trn_elu_forward(float *out, const float *in, size_t n, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (size_t b = 0; b < n; b += ELU_RUN)
        eng_elu(out + b, in + b, n - b < ELU_RUN ? n - b : ELU_RUN);
}

void trn_elu_backward(float *din, const float *dout, const float *in, size_t n, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (size_t b = 0; b < n; b += ELU_RUN) {
        const size_t e = n - b < ELU_RUN ? n : b + ELU_RUN;
        for (size_t i = b; i < e; i++) { /* exp of min(x, 0) for every entry: as eng_elu */
            const float x = in[i], ex = eng_exp(x > 0.0f ? 0.0f : x);
            din[i] += x > 0.0f ? dout[i] : dout[i] * ex;
        }
    }
}

/* Entries per dropout block: each block draws from its own stream. */
#define DROP_BLOCK 16384

void trn_dropout_forward(float *out, uint8_t *mask, const float *in, float p, size_t n,
                         eng_rng_t *rng, int threads)
{
    if (p <= 0.0f) {
        memset(mask, 1, n);
        if (out != in)
            memcpy(out, in, n * sizeof *out);
        return;
    }
    /* Two 32-bit uniforms per draw, each kept when at least p 2^32: one generator call per two
     * entries, no conversion to floating point. The entries are cut into fixed blocks, block k
     * drawn from the stream (one draw of rng, k): the masks do not depend on the thread count,
     * and the blocks are drawn in parallel. */
    const uint32_t drop_below = (uint32_t)llround((double)p * 0x1p32);
    const uint64_t seed = eng_rng_next(rng);
    const float scale = 1.0f / (1.0f - p);
    const int64_t blocks = (int64_t)((n + DROP_BLOCK - 1) / DROP_BLOCK);
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (int64_t k = 0; k < blocks; k++) {
        eng_rng_t r;
        eng_rng_seed(&r, seed, (uint64_t)k);
        const size_t i0 = (size_t)k * DROP_BLOCK, i1 = i0 + DROP_BLOCK < n ? i0 + DROP_BLOCK : n;
        size_t i = i0;
        for (; i + 1 < i1; i += 2) {
            const uint64_t v = eng_rng_next(&r);
            mask[i] = (uint32_t)v >= drop_below;
            mask[i + 1] = (uint32_t)(v >> 32) >= drop_below;
        }
        if (i < i1)
            mask[i] = (uint32_t)eng_rng_next(&r) >= drop_below;
        for (i = i0; i < i1; i++)
            out[i] = in[i] * (mask[i] ? scale : 0.0f);
    }
}

void trn_dropout_backward(float *din, const float *dout, const uint8_t *mask, float p, size_t n)
{
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i] * (mask[i] ? scale : 0.0f);
}

void trn_mul_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

void trn_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                      size_t n)
{
    for (size_t i = 0; da && i < n; i++)
        da[i] += dout[i] * b[i];
    for (size_t i = 0; db && i < n; i++)
        db[i] += dout[i] * a[i];
}

void trn_l2norm_forward(float *out, float *norm, const float *in, int64_t n, int d, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < n; r++)
        norm[r] = eng_l2norm(out + r * d, in + r * d, d);
}

void trn_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                         int64_t n, int d, int threads)
{
    const float floor_norm = (float)sqrt(ENG_L2NORM_FLOOR);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < n; r++) {
        const float *y = out + r * d, *g = dout + r * d;
        double dot = 0;
        if (norm[r] > floor_norm)
            for (int j = 0; j < d; j++)
                dot += (double)y[j] * g[j];
        for (int j = 0; j < d; j++)
            din[r * d + j] += (g[j] - (float)dot * y[j]) / norm[r];
    }
}

void trn_concat_forward(float *out, const float *in, int64_t n, int d, int d_out, int col)
{
    for (int64_t r = 0; r < n; r++)
        memcpy(out + r * d_out + col, in + r * d, (size_t)d * sizeof *out);
}

void trn_concat_backward(float *din, const float *dout, int64_t n, int d, int d_out, int col)
{
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++)
            din[r * d + j] += dout[r * d_out + col + j];
}

void trn_head_mean_forward(float *out, const float *in, int64_t n, int heads, int d)
{
    for (int64_t r = 0; r < n; r++)
        eng_head_mean(out + r * d, in + r * heads * d, heads, d);
}

void trn_head_mean_backward(float *din, const float *dout, int64_t n, int heads, int d)
{
    const float inv = 1.0f / (float)heads;
    for (int64_t r = 0; r < n; r++)
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < d; j++)
                din[(r * heads + h) * d + j] += dout[r * d + j] * inv;
}

void trn_gather_forward(float *out, const float *src, const int32_t *idx, int64_t n, int d)
{
    for (int64_t k = 0; k < n; k++)
        memcpy(out + k * d, src + (size_t)idx[k] * d, (size_t)d * sizeof *out);
}

void trn_gather_backward(float *dsrc, const float *dout, const int32_t *idx, int64_t n, int d)
{
    for (int64_t k = 0; k < n; k++) {
        float *o = dsrc + (size_t)idx[k] * d;
        const float *g = dout + k * d;
        for (int j = 0; j < d; j++)
            o[j] += g[j];
    }
}

void trn_init_xavier(float *w, int64_t rows, int64_t cols, eng_rng_t *rng)
{
    const double limit = sqrt(6.0 / (double)(rows + cols));
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(limit * (2.0 * eng_rng_uniform(rng) - 1.0));
}
