/* Knowledge-graph embedding layers. Batches are small (a few thousand triples of a few dozen
 * floats): the distances are loops in eight interleaved lanes the compiler vectorises, the
 * relation gradients accumulated in batch order; the projection is one single-threaded sgemm per
 * run of a relation (OpenBLAS set to one thread), or plain loops for a run too short to pay for
 * the call, the runs shared among OpenMP threads. */
#include "trainer/kge.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void trn_trans_forward(float *dist, const float *h, const float *rel, const float *t,
                       const int32_t *r, int n, int d, trn_dist_t kind)
{
    for (int k = 0; k < n; k++) {
        const float *hk = h + (size_t)k * d, *rk = rel + (size_t)r[k] * d, *tk = t + (size_t)k * d;
        /* eight interleaved partial sums, as eng_dot: one long chain of adds does not vectorise */
        float acc[8] = {0};
        int j = 0;
        for (; j + 8 <= d; j += 8)
            for (int q = 0; q < 8; q++) {
                const float x = hk[j + q] + rk[j + q] - tk[j + q];
                acc[q] += kind == TRN_DIST_L1 ? fabsf(x) : x * x;
            }
        for (int q = 0; j < d; j++, q++) {
            const float x = hk[j] + rk[j] - tk[j];
            acc[q] += kind == TRN_DIST_L1 ? fabsf(x) : x * x;
        }
        const float s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        dist[k] = kind == TRN_DIST_L2 ? sqrtf(s) : s;
    }
}

void trn_trans_backward(float *dh, float *drel, float *dt, const float *ddist, const float *dist,
                        const float *h, const float *rel, const float *t, const int32_t *r, int n,
                        int d, trn_dist_t kind)
{
    for (int k = 0; k < n; k++) {
        const float *hk = h + (size_t)k * d, *rk = rel + (size_t)r[k] * d, *tk = t + (size_t)k * d;
        float scale = ddist[k];
        if (kind == TRN_DIST_L2)
            scale = dist[k] > 0 ? ddist[k] / dist[k] : 0;
        else if (kind == TRN_DIST_L2SQ)
            scale = 2 * ddist[k];
        float *dhk = dh ? dh + (size_t)k * d : NULL, *dtk = dt ? dt + (size_t)k * d : NULL;
        float *drk = drel ? drel + (size_t)r[k] * d : NULL;
        for (int j = 0; j < d; j++) {
            const float x = hk[j] + rk[j] - tk[j];
            const float g = kind == TRN_DIST_L1 ? scale * (float)((x > 0) - (x < 0)) : scale * x;
            if (dhk)
                dhk[j] += g;
            if (drk)
                drk[j] += g;
            if (dtk)
                dtk[j] -= g;
        }
    }
}

double trn_dist_loss(trn_loss_t l, float *gpos, float *gneg, float *spos, float *sneg,
                     const float *dpos, const float *dneg, int n, int nneg, float margin)
{
    const int nn = n * nneg;
    for (int k = 0; k < n; k++)
        spos[k] = -dpos[k];
    for (int k = 0; k < nn; k++)
        sneg[k] = -dneg[k];
    const double value = trn_loss_forward(l, spos, sneg, NULL, n, nneg, margin);
    memset(gpos, 0, (size_t)n * sizeof *gpos);
    memset(gneg, 0, (size_t)nn * sizeof *gneg);
    trn_loss_backward(l, gpos, gneg, 1.0f, spos, sneg, NULL, n, nneg, margin);
    for (int k = 0; k < n; k++) /* d/d(distance) = -d/d(score) */
        gpos[k] = -gpos[k];
    for (int k = 0; k < nn; k++)
        gneg[k] = -gneg[k];
    return value;
}

/* The rows of one relation run together: one sgemm per run of equal r[k] (a batch sorted by
 * relation makes few, long runs; the layer is correct for any order). */
static int run_end(const int32_t *r, int n, int k)
{
    int e = k + 1;
    while (e < n && r[e] == r[k])
        e++;
    return e;
}

/* Below this many rows a run is cheaper as plain loops than as an sgemm call (most relations
 * have only a few rows in a batch). */
#define SGEMM_MIN_ROWS 16

/* Whether each relation of r[0..n) is one run: then the runs' weight gradients are disjoint
 * blocks, and the runs can go to different threads. */
static int one_run_each(const int32_t *r, int n)
{
    for (int k = 1; k < n; k++)
        if (r[k] < r[k - 1])
            return 0;
    return 1;
}

/* Threads: the runs are shared out (dynamically: their lengths vary), each run computed whole by
 * one thread with OpenBLAS's own pool at one thread, so every row's arithmetic is the same
 * whatever the thread count. A run is processed by the thread that meets its first row. */
static void project_run(float *out, const float *x, const float *proj, const int32_t *r, int n,
                        int k, int d, int dr)
{
    const int e = run_end(r, n, k);
    const float *w = proj + (size_t)r[k] * d * dr;
    if (e - k >= SGEMM_MIN_ROWS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, e - k, dr, d, 1.0f,
                    x + (size_t)k * d, d, w, dr, 0.0f, out + (size_t)k * dr, dr);
        return;
    }
    for (int q = k; q < e; q++) {
        float *restrict o = out + (size_t)q * dr;
        const float *xq = x + (size_t)q * d;
        memset(o, 0, (size_t)dr * sizeof *o);
        for (int i = 0; i < d; i++) {
            const float *restrict wi = w + (size_t)i * dr;
            for (int j = 0; j < dr; j++)
                o[j] += xq[i] * wi[j];
        }
    }
}

void trn_project_forward(float *out, const float *x, const float *proj, const int32_t *r, int n,
                         int d, int dr, int threads)
{
    openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
    for (int k = 0; k < n; k++)
        if (k == 0 || r[k] != r[k - 1])
            project_run(out, x, proj, r, n, k, d, dr);
}

static void project_run_backward(float *dx, float *dproj, const float *dout, const float *x,
                                 const float *proj, const int32_t *r, int n, int k, int d, int dr)
{
    const int e = run_end(r, n, k);
    const size_t off = (size_t)r[k] * d * dr;
    if (e - k >= SGEMM_MIN_ROWS) {
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, e - k, d, dr, 1.0f,
                        dout + (size_t)k * dr, dr, proj + off, dr, 1.0f, dx + (size_t)k * d, d);
        if (dproj)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, dr, e - k, 1.0f,
                        x + (size_t)k * d, d, dout + (size_t)k * dr, dr, 1.0f, dproj + off, dr);
        return;
    }
    for (int q = k; q < e; q++) {
        const float *restrict g = dout + (size_t)q * dr, *xq = x + (size_t)q * d;
        for (int i = 0; i < d; i++) {
            const float *restrict w = proj + off + (size_t)i * dr;
            if (dx) {
                float s = 0;
                for (int j = 0; j < dr; j++)
                    s += g[j] * w[j];
                dx[(size_t)q * d + i] += s;
            }
            if (dproj) {
                float *restrict dw = dproj + off + (size_t)i * dr;
                for (int j = 0; j < dr; j++)
                    dw[j] += xq[i] * g[j];
            }
        }
    }
}

void trn_project_backward(float *dx, float *dproj, const float *dout, const float *x,
                          const float *proj, const int32_t *r, int n, int d, int dr, int threads)
{
    openblas_set_num_threads(1);
    /* a relation in two runs would have two threads adding into its dproj block */
    const int th = dproj && !one_run_each(r, n) ? 1 : threads;
#pragma omp parallel for schedule(dynamic, 8) num_threads(th)
    for (int k = 0; k < n; k++)
        if (k == 0 || r[k] != r[k - 1])
            project_run_backward(dx, dproj, dout, x, proj, r, n, k, d, dr);
}
