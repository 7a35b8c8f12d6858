/* Graph attention over CSR edges: logits, edge softmax and aggregation (trainer/attention.h).
 *
 * Every loop runs over the rows of the graph, one row per thread at a time, in storage order:
 * sums over a column (the backward of a gather) are read along the transposed entry's row through
 * the reverse-edge index instead of scattered, so no two threads write the same float and the
 * bits do not depend on the thread count. */
#include "trainer/attention.h"
#include "engine/vec.h"

void trn_edge_sum_forward(float *e, const float *st, const eng_csr_t *g, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++)
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            e[k] = st[2 * (size_t)r] + st[2 * (size_t)g->idx[k] + 1];
}

void trn_edge_sum_backward(float *dst, const float *de, const eng_csr_t *g, const int64_t *rev,
                           int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++) {
        double ds = 0, dt = 0;
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++) {
            ds += de[k];
            dt += de[rev[k]]; /* the entry (idx[k], r): r as the neighbour */
        }
        dst[2 * (size_t)r] += (float)ds;
        dst[2 * (size_t)r + 1] += (float)dt;
    }
}

void trn_edge_softmax_forward(float *alpha, const float *e, const eng_csr_t *g, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++)
        eng_softmax(alpha + g->ptr[r], e + g->ptr[r], (size_t)(g->ptr[r + 1] - g->ptr[r]));
}

void trn_edge_softmax_backward(float *de, const float *dalpha, const float *alpha,
                               const eng_csr_t *g, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++) {
        double dot = 0;
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            dot += (double)alpha[k] * dalpha[k];
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            de[k] += alpha[k] * (dalpha[k] - (float)dot);
    }
}

void trn_edge_aggregate_forward(float *out, const float *alpha, const float *z, const eng_csr_t *g,
                                int d, int threads)
{
    eng_csr_t weighted = *g;
    weighted.val = (float *)alpha; /* read only: the product does not write the matrix */
    eng_csr_spmm(out, &weighted, z, d, threads);
}

void trn_edge_aggregate_backward(float *dz, float *dalpha, const float *dout, const float *alpha,
                                 const float *z, const eng_csr_t *g, const int64_t *rev, int d,
                                 int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++) {
        const float *go = dout + (size_t)r * d;
        float *gz = dz ? dz + (size_t)r * d : NULL;
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++) {
            const int32_t c = g->idx[k];
            if (dalpha) {
                const float *zc = z + (size_t)c * d;
                float dot = 0;
                for (int j = 0; j < d; j++)
                    dot += go[j] * zc[j];
                dalpha[k] += dot;
            }
            if (gz) { /* r as the neighbour of c: the entry (c, r) at rev[k] */
                const float a = alpha[rev[k]], *gc = dout + (size_t)c * d;
                for (int j = 0; j < d; j++)
                    gz[j] += a * gc[j];
            }
        }
    }
}
