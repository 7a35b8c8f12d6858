/* Graph attention over an edge set: logits, edge softmax and aggregation (trainer/attention.h).
 *
 * The loops over rows run one row per thread at a time, in storage order; sums over a column (the
 * backward of a gather) run one column per thread, along the set's transposed index, instead of
 * being scattered: no two threads write the same float and the bits do not depend on the thread
 * count. */
#include "trainer/attention.h"
#include "engine/err.h"
#include "engine/vec.h"

#include <stdlib.h>
#include <string.h>

/* Entries ahead whose neighbour rows a gather prefetches, as engine/csr.c. */
#define PREFETCH_AHEAD 8

int trn_edges_alloc(trn_edges_t *e, const eng_csr_t *graph)
{
    memset(e, 0, sizeof *e);
    const size_t n = (size_t)graph->rows + 1, nnz = (size_t)graph->nnz + 1;
    e->g.ptr = malloc(n * sizeof *e->g.ptr);
    e->g.idx = malloc(nnz * sizeof *e->g.idx);
    e->self = malloc(n * sizeof *e->self);
    e->col_ptr = malloc(n * sizeof *e->col_ptr);
    e->col_edge = malloc(nnz * sizeof *e->col_edge);
    e->col_row = malloc(nnz * sizeof *e->col_row);
    e->pos = malloc(n * sizeof *e->pos);
    return e->g.ptr && e->g.idx && e->self && e->col_ptr && e->col_edge && e->col_row && e->pos
               ? ENG_OK
               : ENG_ENOMEM;
}

void trn_edges_free(trn_edges_t *e)
{
    free(e->g.ptr);
    free(e->g.idx);
    free(e->self);
    free(e->col_ptr);
    free(e->col_edge);
    free(e->col_row);
    free(e->pos);
    memset(e, 0, sizeof *e);
}

void trn_edges_build(trn_edges_t *e, const eng_csr_t *graph, const int32_t *rows, int32_t n_rows,
                     const int32_t *cols, int32_t n_cols)
{
    for (int32_t q = 0; q < n_cols; q++)
        e->pos[cols[q]] = q;
    eng_csr_t *g = &e->g;
    g->rows = n_rows;
    g->cols = n_cols;
    g->val = NULL;
    g->ptr[0] = 0;
    int64_t k = 0;
    for (int32_t r = 0; r < n_rows; r++) {
        const int32_t node = rows[r];
        for (int64_t j = graph->ptr[node]; j < graph->ptr[node + 1]; j++)
            g->idx[k++] = e->pos[graph->idx[j]]; /* ascending, as cols and the row are */
        g->ptr[r + 1] = k;
        e->self[r] = e->pos[node];
    }
    g->nnz = k;
    /* the transpose by counting: column c's entries in row order */
    memset(e->col_ptr, 0, ((size_t)n_cols + 1) * sizeof *e->col_ptr);
    for (int64_t j = 0; j < k; j++)
        e->col_ptr[g->idx[j] + 1]++;
    for (int32_t c = 0; c < n_cols; c++)
        e->col_ptr[c + 1] += e->col_ptr[c];
    for (int32_t r = 0; r < n_rows; r++)
        for (int64_t j = g->ptr[r]; j < g->ptr[r + 1]; j++) {
            const int64_t t = e->col_ptr[g->idx[j]]++;
            e->col_edge[t] = j;
            e->col_row[t] = r;
        }
    for (int32_t c = n_cols; c > 0; c--) /* each start was advanced to the next column's */
        e->col_ptr[c] = e->col_ptr[c - 1];
    e->col_ptr[0] = 0;
}

void trn_edge_sum_forward(float *e, const float *st, const trn_edges_t *s, int threads)
{
    const eng_csr_t *g = &s->g;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++) {
        const float sr = st[2 * (size_t)s->self[r]];
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            e[k] = sr + st[2 * (size_t)g->idx[k] + 1];
    }
}

void trn_edge_sum_backward(float *dst, const float *de, const trn_edges_t *s, int threads)
{
    const eng_csr_t *g = &s->g;
#pragma omp parallel num_threads(threads)
    {
        /* rows write the even slots of their own columns (one row per column), columns the odd */
#pragma omp for schedule(static)
        for (int32_t r = 0; r < g->rows; r++) {
            double ds = 0;
            for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
                ds += de[k];
            dst[2 * (size_t)s->self[r]] += (float)ds;
        }
#pragma omp for schedule(static)
        for (int32_t c = 0; c < g->cols; c++) {
            double dt = 0;
            for (int64_t t = s->col_ptr[c]; t < s->col_ptr[c + 1]; t++)
                dt += de[s->col_edge[t]];
            dst[2 * (size_t)c + 1] += (float)dt;
        }
    }
}

void trn_edge_softmax_forward(float *alpha, const float *e, const trn_edges_t *s, int threads)
{
    const eng_csr_t *g = &s->g;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++)
        eng_softmax(alpha + g->ptr[r], e + g->ptr[r], (size_t)(g->ptr[r + 1] - g->ptr[r]));
}

void trn_edge_softmax_backward(float *de, const float *dalpha, const float *alpha,
                               const trn_edges_t *s, int threads)
{
    const eng_csr_t *g = &s->g;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t r = 0; r < g->rows; r++) {
        double dot = 0;
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            dot += (double)alpha[k] * dalpha[k];
        for (int64_t k = g->ptr[r]; k < g->ptr[r + 1]; k++)
            de[k] += alpha[k] * (dalpha[k] - (float)dot);
    }
}

void trn_edge_aggregate_forward(float *out, const float *alpha, const float *z,
                                const trn_edges_t *s, int d, int threads)
{
    eng_csr_t weighted = s->g;
    weighted.val = (float *)alpha; /* read only: the product does not write the matrix */
    eng_csr_spmm(out, &weighted, z, d, threads);
}

/* Prefetches the d floats of row `row` of x: the rows a gather reads are random. */
static inline void prefetch_row(const float *x, int32_t row, int d)
{
    const char *p = (const char *)(x + (size_t)row * d);
    for (size_t j = 0; j < (size_t)d * sizeof(float); j += 64)
        __builtin_prefetch(p + j);
}

void trn_edge_aggregate_backward(float *dz, float *dalpha, const float *dout, const float *alpha,
                                 const float *z, const trn_edges_t *s, int d, int threads)
{
    const eng_csr_t *g = &s->g;
#pragma omp parallel num_threads(threads)
    {
        if (dalpha) {
#pragma omp for schedule(static)
            for (int32_t r = 0; r < g->rows; r++) {
                const float *go = dout + (size_t)r * d;
                const int64_t end = g->ptr[r + 1];
                for (int64_t k = g->ptr[r]; k < end; k++) {
                    if (k + PREFETCH_AHEAD < end)
                        prefetch_row(z, g->idx[k + PREFETCH_AHEAD], d);
                    dalpha[k] += eng_dot(go, z + (size_t)g->idx[k] * d, d);
                }
            }
        }
        if (dz) {
#pragma omp for schedule(static)
            for (int32_t c = 0; c < g->cols; c++) {
                float *gz = dz + (size_t)c * d;
                const int64_t end = s->col_ptr[c + 1];
                for (int64_t t = s->col_ptr[c]; t < end; t++) {
                    if (t + PREFETCH_AHEAD < end)
                        prefetch_row(dout, s->col_row[t + PREFETCH_AHEAD], d);
                    const float a = alpha[s->col_edge[t]], *gr = dout + (size_t)s->col_row[t] * d;
                    for (int j = 0; j < d; j++)
                        gz[j] += a * gr[j];
                }
            }
        }
    }
}
