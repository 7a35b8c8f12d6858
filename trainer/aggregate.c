/* GraphSAGE's aggregators: mean, max and pool over neighbour lists. */
#include "trainer/aggregate.h"

#include "trainer/layers.h"

#include <string.h>

void trn_agg_mean_forward(float *out, const float *x, const int64_t *ptr, const int32_t *idx,
                          int64_t n, int d, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        float *o = out + i * d;
        memset(o, 0, (size_t)d * sizeof *o);
        const int64_t b = ptr[i], e = ptr[i + 1];
        for (int64_t q = b; q < e; q++) {
            const float *r = x + (int64_t)idx[q] * d;
            for (int j = 0; j < d; j++)
                o[j] += r[j];
        }
        if (e > b) {
            const float inv = 1.0f / (float)(e - b);
            for (int j = 0; j < d; j++)
                o[j] *= inv;
        }
    }
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
    for (int64_t i = 0; i < n; i++) {
        float *o = out + i * d;
        int32_t *a = arg + i * d;
        const int64_t b = ptr[i], e = ptr[i + 1];
        if (e == b) {
            memset(o, 0, (size_t)d * sizeof *o);
            for (int j = 0; j < d; j++)
                a[j] = -1;
            continue;
        }
        memcpy(o, x + (int64_t)idx[b] * d, (size_t)d * sizeof *o);
        for (int j = 0; j < d; j++)
            a[j] = idx[b];
        for (int64_t q = b + 1; q < e; q++) {
            const float *r = x + (int64_t)idx[q] * d;
            for (int j = 0; j < d; j++)
                if (r[j] > o[j]) { /* strictly: the first maximum keeps a tie */
                    o[j] = r[j];
                    a[j] = idx[q];
                }
        }
    }
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
