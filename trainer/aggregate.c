/* GraphSAGE's aggregators over neighbour lists: the forwards run the engine's one-node reductions
 * and LSTM cell (engine/sage.h) per node, the dense products with OpenBLAS (trainer/layers.h). */
#include "trainer/aggregate.h"
#include "engine/vec.h"

#include "engine/sage.h"
#include "trainer/layers.h"

#include <math.h>
#include <string.h>

void trn_agg_mean_forward(float *out, const float *x, const int64_t *ptr, const int32_t *idx,
                          int64_t n, int d, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++)
        eng_sage_mean(out + i * d, x, (size_t)d, idx + ptr[i], ptr[i + 1] - ptr[i], d);
}

/* The columns [*c0, *c1) of d that thread t of nt owns in the scattering backwards. */
static void columns(int t, int nt, int d, int *c0, int *c1)
{
    *c0 = (int)((int64_t)d * t / nt);
    *c1 = (int)((int64_t)d * (t + 1) / nt);
}

void trn_agg_mean_backward(float *dx, const float *dout, const int64_t *ptr, const int32_t *idx,
                           int64_t n, int d, int threads)
{
    const int nt = threads < d ? threads : d;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int c0, c1;
        columns(t, nt, d, &c0, &c1);
        for (int64_t i = 0; i < n; i++) {
            const int64_t b = ptr[i], e = ptr[i + 1];
            if (e == b)
                continue;
            const float inv = 1.0f / (float)(e - b);
            const float *g = dout + i * d;
            for (int64_t q = b; q < e; q++) {
                float *r = dx + (int64_t)idx[q] * d;
                for (int j = c0; j < c1; j++)
                    r[j] += g[j] * inv;
            }
        }
    }
}

void trn_agg_max_forward(float *out, int32_t *arg, const float *x, const int64_t *ptr,
                         const int32_t *idx, int64_t n, int d, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++)
        eng_sage_max(out + i * d, arg + i * d, x, (size_t)d, idx + ptr[i], ptr[i + 1] - ptr[i], d);
}

void trn_agg_max_backward(float *dx, const float *dout, const int32_t *arg, int64_t n, int d,
                          int threads)
{
    const int nt = threads < d ? threads : d;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int c0, c1;
        columns(t, nt, d, &c0, &c1);
        for (int64_t i = 0; i < n; i++)
            for (int j = c0; j < c1; j++)
                if (arg[i * d + j] >= 0)
                    dx[(int64_t)arg[i * d + j] * d + j] += dout[i * d + j];
    }
}

void trn_agg_pool_forward(float *out, int32_t *arg, float *pz, float *pa, const float *x,
                          const float *w, const float *b, const int64_t *ptr, const int32_t *idx,
                          int64_t n, int64_t n_in, int d, int threads)
{
    trn_dense_forward(pz, x, w, b, n_in, d, d, threads);
    trn_lrelu_forward(pa, pz, 0.0f, (size_t)n_in * d);
    trn_agg_max_forward(out, arg, pa, ptr, idx, n, d, threads);
}

void trn_agg_pool_backward(float *dx, float *dw, float *db, float *scratch, const float *dout,
                           const int32_t *arg, const float *pz, const float *x, const float *w,
                           int64_t n, int64_t n_in, int d, int threads)
{
    const size_t nd = (size_t)n_in * d;
    float *dpa = scratch, *dpz = scratch + nd;
    memset(dpa, 0, 2 * nd * sizeof *dpa);
    trn_agg_max_backward(dpa, dout, arg, n, d, threads);
    trn_lrelu_backward(dpz, dpa, pz, 0.0f, nd);
    trn_dense_backward(dx, dw, db, dpz, x, w, n_in, d, d, threads);
}

void trn_agg_lstm_forward(float *out, float *xw, float *gates, float *cell, const float *x,
                          const float *wx, const float *wh, const float *b, const int64_t *ptr,
                          const int32_t *idx, int64_t n, int64_t n_in, int d, int threads)
{
    const int g4 = 4 * d;
    trn_dense_forward(xw, x, wx, b, n_in, d, g4, threads);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        float *h = out + i * d; /* h_{t-1}, then h_t */
        memset(h, 0, (size_t)d * sizeof *h);
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {
            float *z = gates + q * g4, *c = cell + q * d;
            memcpy(z, xw + (int64_t)idx[q] * g4, (size_t)g4 * sizeof *z);
            eng_sage_lstm_step(z, c, q > ptr[i] ? c - d : NULL, h, wh, d);
        }
    }
}

void trn_agg_lstm_infer(float *out, const float *xw, const float *wh, const int64_t *ptr,
                        const int32_t *idx, int64_t n, int d, int threads)
{
    const int g4 = 4 * d;
#pragma omp parallel num_threads(threads)
    {
        float z[g4], c[d];
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n; i++) {
            float *h = out + i * d;
            memset(h, 0, (size_t)d * sizeof *h);
            for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {
                memcpy(z, xw + (int64_t)idx[q] * g4, (size_t)g4 * sizeof *z);
                eng_sage_lstm_step(z, c, q > ptr[i] ? c : NULL, h, wh, d);
            }
        }
    }
}

void trn_agg_lstm_backward(float *dx, float *dwx, float *dwh, float *db, float *scratch,
                           const float *dout, const float *gates, const float *cell, const float *x,
                           const float *wx, const float *wh, const int64_t *ptr, const int32_t *idx,
                           int64_t n, int64_t n_in, int d, int threads)
{
    const int g4 = 4 * d;
    const int64_t nnz = ptr[n];
    float *dxw = scratch;        /* [n_in x 4d] */
    float *dz = dxw + n_in * g4; /* [nnz x 4d] the pre-activation gates' gradients */
    float *hp = dz + nnz * g4;   /* [nnz x d] h_{t-1} at each position */
#pragma omp parallel num_threads(threads)
    {
        float dh[d], dc[d];
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n; i++) {
            const int64_t b0 = ptr[i], e = ptr[i + 1];
            for (int64_t q = b0; q < e; q++)
                for (int j = 0; j < d; j++)
                    hp[q * d + j] =
                        q == b0 ? 0.0f
                                : gates[(q - 1) * g4 + 3 * d + j] * tanhf(cell[(q - 1) * d + j]);
            if (e == b0)
                continue;
            memcpy(dh, dout + i * d, (size_t)d * sizeof *dh);
            memset(dc, 0, (size_t)d * sizeof *dc);
            for (int64_t q = e - 1; q >= b0; q--) {
                const float *gt = gates + q * g4, *c = cell + q * d;
                const float *cp = q > b0 ? c - d : NULL;
                float *z = dz + q * g4;
                for (int j = 0; j < d; j++) {
                    const float gi = gt[j], gf = gt[d + j], gg = gt[2 * d + j], go = gt[3 * d + j];
                    const float tc = tanhf(c[j]);
                    const float dcj = dc[j] + dh[j] * go * (1.0f - tc * tc);
                    z[j] = dcj * gg * gi * (1.0f - gi);
                    z[d + j] = cp ? dcj * cp[j] * gf * (1.0f - gf) : 0.0f;
                    z[2 * d + j] = dcj * gi * (1.0f - gg * gg);
                    z[3 * d + j] = dh[j] * tc * go * (1.0f - go);
                    dc[j] = dcj * gf;
                }
                if (q > b0) /* dh_{t-1} = dz wh^T */
                    for (int k = 0; k < d; k++)
                        dh[k] = eng_dot(z, wh + (size_t)k * g4, g4);
            }
        }
    }
    /* dwh = sum over positions of h_{t-1}^T dz; dxw[row] = the sum of its positions' dz */
    trn_dense_backward(NULL, dwh, NULL, dz, hp, wh, nnz, d, g4, threads);
    memset(dxw, 0, (size_t)n_in * g4 * sizeof *dxw);
    const int nt = threads < g4 ? threads : g4;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int c0, c1;
        columns(t, nt, g4, &c0, &c1);
        for (int64_t q = 0; q < nnz; q++)
            for (int j = c0; j < c1; j++)
                dxw[(int64_t)idx[q] * g4 + j] += dz[q * g4 + j];
    }
    trn_dense_backward(dx, dwx, db, dxw, x, wx, n_in, d, g4, threads);
}
