/* Knowledge-graph embedding layers. Batches are small (a few thousand triples of a few dozen
 * floats) and each row's work is a handful of vector operations, so these are single-threaded
 * loops the compiler vectorises; the relation gradients accumulate in batch order. */
#include "trainer/kge.h"

#include <math.h>
#include <string.h>

void trn_trans_forward(float *dist, const float *h, const float *rel, const float *t,
                       const int32_t *r, int n, int d, trn_dist_t kind)
{
    for (int k = 0; k < n; k++) {
        const float *hk = h + (size_t)k * d, *rk = rel + (size_t)r[k] * d, *tk = t + (size_t)k * d;
        float s = 0;
        if (kind == TRN_DIST_L1)
            for (int j = 0; j < d; j++)
                s += fabsf(hk[j] + rk[j] - tk[j]);
        else
            for (int j = 0; j < d; j++) {
                const float x = hk[j] + rk[j] - tk[j];
                s += x * x;
            }
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

void trn_project_forward(float *out, const float *x, const float *proj, const int32_t *r, int n,
                         int d, int dr)
{
    for (int k = 0; k < n; k++) {
        float *o = out + (size_t)k * dr;
        const float *xk = x + (size_t)k * d, *p = proj + (size_t)r[k] * d * dr;
        memset(o, 0, (size_t)dr * sizeof *o);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < dr; j++)
                o[j] += xk[i] * p[(size_t)i * dr + j];
    }
}

void trn_project_backward(float *dx, float *dproj, const float *dout, const float *x,
                          const float *proj, const int32_t *r, int n, int d, int dr)
{
    for (int k = 0; k < n; k++) {
        const float *g = dout + (size_t)k * dr, *xk = x + (size_t)k * d;
        const size_t off = (size_t)r[k] * d * dr;
        for (int i = 0; i < d; i++) {
            const float *p = proj + off + (size_t)i * dr;
            if (dx) {
                float s = 0;
                for (int j = 0; j < dr; j++)
                    s += g[j] * p[j];
                dx[(size_t)k * d + i] += s;
            }
            if (dproj) {
                float *dp = dproj + off + (size_t)i * dr;
                for (int j = 0; j < dr; j++)
                    dp[j] += xk[i] * g[j];
            }
        }
    }
}
