/* GraphSAGE's aggregators over neighbour lists: the forwards run the engine's one-node reductions
 * and LSTM cell (engine/sage.h) per node, the dense products with OpenBLAS (trainer/layers.h). */
#include "trainer/aggregate.h"
#include "engine/vec.h"

#include "engine/sage.h"
#include "engine/simd.h"
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

/* The lists longer than t, in index order, into act; returns how many. */
static int64_t active(int32_t *act, const int64_t *ptr, int64_t n, int64_t t)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (ptr[i + 1] - ptr[i] > t)
            act[k++] = (int32_t)i;
    return k;
}

static int64_t longest(const int64_t *ptr, int64_t n)
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        m = ptr[i + 1] - ptr[i] > m ? ptr[i + 1] - ptr[i] : m;
    return m;
}

/* The LSTM over every list at once, step by step: at step t the lists longer than t gather their
 * hidden states, one sgemm multiplies them all by wh (instead of a vector-matrix product per list
 * and step), and each list's cell runs on its row. h [n x d] (out) holds each list's hidden state
 * and finally its last; gates and cell, when not NULL, receive each position's activated gates
 * and cell (training); otherwise the cell of the step before is kept in cprev [n x d]. */
static void lstm_steps(float *h, float *gates, float *cell, float *cprev, float *scratch,
                       const float *xw, const float *wh, const int64_t *ptr, const int32_t *idx,
                       int64_t n, int d, int threads)
{
    const int g4 = 4 * d;
    int32_t *act = (int32_t *)scratch;                 /* [n] */
    float *hc = scratch + n, *zc = hc + (size_t)n * d; /* [n x d], [n x 4d] */
    memset(h, 0, (size_t)n * d * sizeof *h);
    const int64_t steps = longest(ptr, n);
    for (int64_t t = 0; t < steps; t++) {
        const int64_t na = active(act, ptr, n, t);
        if (t > 0) {
            for (int64_t s = 0; s < na; s++)
                memcpy(hc + s * d, h + (size_t)act[s] * d, (size_t)d * sizeof *hc);
            trn_dense_forward(zc, hc, wh, NULL, na, d, g4, threads);
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t s = 0; s < na; s++) {
            const int64_t i = act[s], q = ptr[i] + t;
            float *z = gates ? gates + q * g4 : zc + s * g4;
            const float *x = xw + (int64_t)idx[q] * g4;
            if (t > 0)
                for (int j = 0; j < g4; j++)
                    z[j] = zc[s * g4 + j] + x[j];
            else
                memcpy(z, x, (size_t)g4 * sizeof *z);
            float *c = cell ? cell + q * d : cprev + i * d;
            const float *cp = t == 0 ? NULL : cell ? c - d : c;
            eng_sage_lstm_cell(z, c, cp, h + i * d, d);
        }
    }
}

void trn_agg_lstm_forward(float *out, float *xw, float *gates, float *cell, float *scratch,
                          const float *x, const float *wx, const float *wh, const float *b,
                          const int64_t *ptr, const int32_t *idx, int64_t n, int64_t n_in, int d,
                          int threads)
{
    trn_dense_forward(xw, x, wx, b, n_in, d, 4 * d, threads);
    lstm_steps(out, gates, cell, NULL, scratch, xw, wh, ptr, idx, n, d, threads);
}

void trn_agg_lstm_infer(float *out, float *scratch, const float *xw, const float *wh,
                        const int64_t *ptr, const int32_t *idx, int64_t n, int d, int threads)
{
    float *cprev = scratch, *rest = scratch + (size_t)n * d;
    lstm_steps(out, NULL, NULL, cprev, rest, xw, wh, ptr, idx, n, d, threads);
}

/* One position of one list: the pre-activation gates' gradients z [4d] from the cell's
 * gradient dc [d] (updated to the step before's) and the hidden state's dh [d], given the
 * activated gates g [4d], the cell c and the cell before cp. Compiled per kind of CPU, as the
 * forward's cell (eng_sage_lstm_cell). */
#define CELL_BACK_ARGS                                                                             \
    float *restrict z, float *restrict dc, const float *restrict dh, const float *restrict g,      \
        const float *restrict c, const float *restrict cp, int d
static ENG_ALWAYS_INLINE void cell_backward_kernel(CELL_BACK_ARGS)
{
    for (int j = 0; j < d; j++) {
        const float gi = g[j], gf = g[d + j], gg = g[2 * d + j], go = g[3 * d + j];
        const float tc = eng_tanh(c[j]);
        const float dcj = dc[j] + dh[j] * go * (1.0f - tc * tc);
        z[j] = dcj * gg * gi * (1.0f - gi);
        z[d + j] = dcj * cp[j] * gf * (1.0f - gf);
        z[2 * d + j] = dcj * gi * (1.0f - gg * gg);
        z[3 * d + j] = dh[j] * tc * go * (1.0f - go);
        dc[j] = dcj * gf;
    }
}

static void cell_backward_baseline(CELL_BACK_ARGS)
{
    cell_backward_kernel(z, dc, dh, g, c, cp, d);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void cell_backward_avx2(CELL_BACK_ARGS)
{
    cell_backward_kernel(z, dc, dh, g, c, cp, d);
}
#endif

typedef void cell_backward_fn(CELL_BACK_ARGS);
static cell_backward_fn *const cell_backward_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(cell_backward_baseline, cell_backward_avx2, cell_backward_avx2);

void trn_agg_lstm_backward(float *dx, float *dwx, float *dwh, float *db, float *scratch,
                           const float *dout, const float *gates, const float *cell, const float *x,
                           const float *wx, const float *wh, const int64_t *ptr, const int32_t *idx,
                           int64_t n, int64_t n_in, int d, int threads)
{
    cell_backward_fn *cell_backward = cell_backward_kinds[eng_isa()];
    const int g4 = 4 * d;
    const int64_t nnz = ptr[n];
    float *dxw = scratch;                   /* [n_in x 4d] */
    float *dz = dxw + n_in * g4;            /* [nnz x 4d] the pre-activation gates' gradients */
    float *hp = dz + nnz * g4;              /* [nnz x d] h_{t-1} at each position */
    float *dh = hp + nnz * d;               /* [n x d] each list's dh_t, then dh_{t-1} */
    float *dc = dh + n * d;                 /* [n x d] each list's dc */
    float *zc = dc + n * d;                 /* [n x 4d] the active lists' dz, gathered */
    float *hc = zc + n * g4;                /* [n x d] their dh_{t-1} */
    int32_t *act = (int32_t *)(hc + n * d); /* [n] */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        if (ptr[i + 1] > ptr[i])
            memset(hp + ptr[i] * d, 0, (size_t)d * sizeof *hp);
        for (int64_t q = ptr[i] + 1; q < ptr[i + 1]; q++)
            for (int j = 0; j < d; j++)
                hp[q * d + j] = gates[(q - 1) * g4 + 3 * d + j] * eng_tanh(cell[(q - 1) * d + j]);
    }
    /* backward through time, every list at once: a list joins at its last step with dh = dout */
    for (int64_t t = longest(ptr, n) - 1; t >= 0; t--) {
        const int64_t na = active(act, ptr, n, t);
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t s = 0; s < na; s++) {
            const int64_t i = act[s], q = ptr[i] + t;
            float *dhi = dh + i * d, *dci = dc + i * d;
            if (q == ptr[i + 1] - 1) {
                memcpy(dhi, dout + i * d, (size_t)d * sizeof *dhi);
                memset(dci, 0, (size_t)d * sizeof *dci);
            }
            const float *gt = gates + q * g4, *c = cell + q * d;
            /* the forget gate's gradient at t = 0, where no cell came before, is zero: computed
             * from any row and overwritten, so that the loop has no branch and vectorises */
            const float *cp = t > 0 ? c - d : c;
            float *z = dz + q * g4;
            cell_backward(z, dci, dhi, gt, c, cp, d);
            if (t == 0)
                memset(z + d, 0, (size_t)d * sizeof *z);
            memcpy(zc + s * g4, z, (size_t)g4 * sizeof *zc);
        }
        if (t == 0)
            break;
        /* dh_{t-1} = dz_t wh^T for every active list: one product */
        memset(hc, 0, (size_t)na * d * sizeof *hc);
        trn_dense_backward(hc, NULL, NULL, zc, NULL, wh, na, d, g4, threads);
        for (int64_t s = 0; s < na; s++)
            memcpy(dh + (size_t)act[s] * d, hc + s * d, (size_t)d * sizeof *hc);
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
