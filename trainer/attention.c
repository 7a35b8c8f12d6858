/* Graph attention over an edge set: logits, edge softmax and aggregation (trainer/attention.h).
 *
 * The loops over rows run one row per thread at a time, in storage order; sums over a column (the
 * backward of a gather) run one column per thread, along the set's transposed index, instead of
 * being scattered: no two threads write the same float and the bits do not depend on the thread
 * count. */
#include "trainer/attention.h"
#include "engine/err.h"
#include "engine/simd.h"
#include "engine/vec.h"

#include <omp.h>
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

/* The aggregation's backward, per row and per column, written once and compiled per kind of CPU
 * (engine/simd.h): the AVX2 kind keeps a 64-float row in eight registers (SSE2's sixteen half
 * as wide would spill), and neither calls out per entry. Measured: the two loops were a quarter
 * of a gat batch on gowalla. */

/* dalpha[k] += dout[r] . z[idx[k]] for row r's entries k = b..e-1. */
static ENG_ALWAYS_INLINE void row_dots(float *dalpha, const float *restrict go,
                                       const float *restrict z, const int32_t *idx, int64_t b,
                                       int64_t e, int d, int regs)
{
    if (!regs || d != 64) {
        for (int64_t k = b; k < e; k++) {
            if (k + PREFETCH_AHEAD < e)
                prefetch_row(z, idx[k + PREFETCH_AHEAD], d);
            dalpha[k] += eng_dot(go, z + (size_t)idx[k] * d, d);
        }
        return;
    }
    const eng_v8f_u *gv = (const eng_v8f_u *)go;
    const eng_v8f_u g0 = gv[0], g1 = gv[1], g2 = gv[2], g3 = gv[3];
    const eng_v8f_u g4 = gv[4], g5 = gv[5], g6 = gv[6], g7 = gv[7];
    for (int64_t k = b; k < e; k++) {
        if (k + PREFETCH_AHEAD < e)
            prefetch_row(z, idx[k + PREFETCH_AHEAD], 64);
        const eng_v8f_u *zr = (const eng_v8f_u *)(z + (size_t)idx[k] * 64);
        const eng_v8f_u t = ((g0 * zr[0] + g4 * zr[4]) + (g1 * zr[1] + g5 * zr[5])) +
                            ((g2 * zr[2] + g6 * zr[6]) + (g3 * zr[3] + g7 * zr[7]));
        dalpha[k] += ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    }
}

/* gz += alpha[col_edge[t]] dout[col_row[t]] for a column's entries t = b..e-1, in that order:
 * with regs, the row in registers instead of stored and reloaded after every term. */
static ENG_ALWAYS_INLINE void column_sum(float *restrict gz, const float *alpha,
                                         const float *restrict dout, const trn_edges_t *s,
                                         int64_t b, int64_t e, int d, int regs)
{
    if (!regs || d != 64) {
        for (int64_t t = b; t < e; t++) {
            if (t + PREFETCH_AHEAD < e)
                prefetch_row(dout, s->col_row[t + PREFETCH_AHEAD], d);
            const float a = alpha[s->col_edge[t]], *gr = dout + (size_t)s->col_row[t] * d;
            for (int j = 0; j < d; j++)
                gz[j] += a * gr[j];
        }
        return;
    }
    eng_v8f_u acc[8];
    for (int j = 0; j < 8; j++)
        acc[j] = ((const eng_v8f_u *)gz)[j];
    for (int64_t t = b; t < e; t++) {
        if (t + PREFETCH_AHEAD < e) {
            prefetch_row(dout, s->col_row[t + PREFETCH_AHEAD], 64);
            __builtin_prefetch(alpha + s->col_edge[t + PREFETCH_AHEAD]);
        }
        eng_v8x8_axpy(acc, alpha[s->col_edge[t]], dout + (size_t)s->col_row[t] * 64);
    }
    for (int j = 0; j < 8; j++)
        ((eng_v8f_u *)gz)[j] = acc[j];
}

/* Rows r0..r1 of dalpha, or columns c0..c1 of dz (whichever is not NULL). */
#define AGG_BACK_ARGS                                                                              \
    float *dz, float *dalpha, const float *dout, const float *alpha, const float *z,               \
        const trn_edges_t *s, int d, int32_t i0, int32_t i1
static ENG_ALWAYS_INLINE void agg_back_kernel(AGG_BACK_ARGS, int regs)
{
    const eng_csr_t *g = &s->g;
    for (int32_t i = i0; i < i1; i++)
        if (dalpha)
            row_dots(dalpha, dout + (size_t)i * d, z, g->idx, g->ptr[i], g->ptr[i + 1], d, regs);
        else
            column_sum(dz + (size_t)i * d, alpha, dout, s, s->col_ptr[i], s->col_ptr[i + 1], d,
                       regs);
}

static void agg_back_baseline(AGG_BACK_ARGS)
{
    agg_back_kernel(dz, dalpha, dout, alpha, z, s, d, i0, i1, 0);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void agg_back_avx2(AGG_BACK_ARGS)
{
    agg_back_kernel(dz, dalpha, dout, alpha, z, s, d, i0, i1, 1);
}
#endif

typedef void agg_back_fn(AGG_BACK_ARGS);
static agg_back_fn *const agg_back_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(agg_back_baseline, agg_back_avx2, agg_back_avx2);

void trn_edge_aggregate_backward(float *dz, float *dalpha, const float *dout, const float *alpha,
                                 const float *z, const trn_edges_t *s, int d, int threads)
{
    agg_back_fn *kernel = agg_back_kinds[eng_isa()];
    const int32_t rows = s->g.rows, cols = s->g.cols;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (dalpha)
            kernel(NULL, dalpha, dout, alpha, z, s, d, (int32_t)((int64_t)rows * t / nt),
                   (int32_t)((int64_t)rows * (t + 1) / nt));
        if (dz)
            kernel(dz, NULL, dout, alpha, z, s, d, (int32_t)((int64_t)cols * t / nt),
                   (int32_t)((int64_t)cols * (t + 1) / nt));
    }
}
