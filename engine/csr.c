/* Compressed sparse rows: construction, lookup and the sparse x dense product. */
#include "engine/csr.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

eng_csr_t *eng_csr_new(int32_t rows, int32_t cols, int64_t nnz, int with_values)
{
    eng_csr_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->rows = rows;
    m->cols = cols;
    m->nnz = nnz;
    m->ptr = calloc((size_t)rows + 1, sizeof *m->ptr);
    m->idx = malloc((size_t)(nnz ? nnz : 1) * sizeof *m->idx);
    if (with_values)
        m->val = malloc((size_t)(nnz ? nnz : 1) * sizeof *m->val);
    if (!m->ptr || !m->idx || (with_values && !m->val)) {
        eng_csr_free(m);
        return NULL;
    }
    return m;
}

void eng_csr_free(eng_csr_t *m)
{
    if (!m)
        return;
    free(m->ptr);
    free(m->idx);
    free(m->val);
    free(m);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

eng_csr_t *eng_csr_from_pairs(int32_t rows, int32_t cols, const int32_t *r, const int32_t *c,
                              int64_t n)
{
    eng_csr_t *m = eng_csr_new(rows, cols, n, 0);
    int64_t *fill = malloc(((size_t)rows + 1) * sizeof *fill);
    if (!m || !fill) {
        free(fill);
        eng_csr_free(m);
        return NULL;
    }
    for (int64_t k = 0; k < n; k++)
        m->ptr[r[k] + 1]++;
    for (int32_t i = 0; i < rows; i++)
        m->ptr[i + 1] += m->ptr[i];
    memcpy(fill, m->ptr, ((size_t)rows + 1) * sizeof *fill);
    for (int64_t k = 0; k < n; k++)
        m->idx[fill[r[k]]++] = c[k];
    free(fill);
    /* Sort each row and squeeze out duplicates, compacting in place. */
    int64_t w = 0;
    for (int32_t i = 0; i < rows; i++) {
        int64_t b = m->ptr[i], e = m->ptr[i + 1];
        qsort(m->idx + b, (size_t)(e - b), sizeof *m->idx, cmp_i32);
        m->ptr[i] = w;
        for (int64_t k = b; k < e; k++)
            if (k == b || m->idx[k] != m->idx[k - 1])
                m->idx[w++] = m->idx[k];
    }
    m->ptr[rows] = w;
    m->nnz = w;
    return m;
}

int eng_csr_has(const eng_csr_t *m, int32_t row, int32_t col)
{
    int64_t lo = m->ptr[row], hi = m->ptr[row + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (m->idx[mid] < col)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->ptr[row + 1] && m->idx[lo] == col;
}

/* First row of thread t's share when rows are split into `parts` runs of about equal non-zeros
 * (plus one unit per row, so that runs of empty rows are split too). */
static int32_t split_row(const eng_csr_t *m, int t, int parts)
{
    if (t == 0)
        return 0;
    if (t == parts)
        return m->rows;
    int64_t target = (m->nnz + m->rows) * t / parts;
    int32_t lo = 0, hi = m->rows;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (m->ptr[mid] + mid < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* How far ahead a row's loop prefetches neighbour rows: the gathers are latency-bound, so keeping
 * several misses in flight is what speeds the product up (measured in DESIGN.md). */
#define PREFETCH_AHEAD 8

/* out[r] = (m x)[r] for rows r0..r1 (or the rows in list[r0..r1) when list is not NULL), and
 * acc[r] += alpha * out[r] when acc is not NULL. */
static void spmm_rows(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                      int dim, const int32_t *list, int32_t r0, int32_t r1)
{
    for (int32_t q = r0; q < r1; q++) {
        int32_t r = list ? list[q] : q;
        float *o = out + (size_t)r * dim;
        memset(o, 0, (size_t)dim * sizeof *o);
        int64_t b = m->ptr[r], e = m->ptr[r + 1];
        for (int64_t k = b; k < e; k++) {
            if (k + PREFETCH_AHEAD < e) {
                const float *p = x + (size_t)m->idx[k + PREFETCH_AHEAD] * dim;
                for (int j = 0; j < dim; j += 16)
                    __builtin_prefetch(p + j);
            }
            const float *xr = x + (size_t)m->idx[k] * dim;
            float v = m->val[k];
            for (int j = 0; j < dim; j++)
                o[j] += v * xr[j];
        }
        if (acc) {
            float *a = acc + (size_t)r * dim;
            for (int j = 0; j < dim; j++)
                a[j] += alpha * o[j];
        }
    }
}

void eng_csr_spmm_acc(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                      int dim, int threads)
{
    if (threads < 1)
        threads = 1;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        spmm_rows(out, acc, alpha, m, x, dim, NULL, split_row(m, t, nt), split_row(m, t + 1, nt));
    }
}

void eng_csr_spmm(float *out, const eng_csr_t *m, const float *x, int dim, int threads)
{
    eng_csr_spmm_acc(out, NULL, 0.0f, m, x, dim, threads);
}

void eng_csr_spmm_rows(float *out, const eng_csr_t *m, const float *x, int dim,
                       const int32_t *rows, int32_t n, int threads)
{
    if (threads < 1)
        threads = 1;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int32_t r0 = (int32_t)((int64_t)n * t / nt), r1 = (int32_t)((int64_t)n * (t + 1) / nt);
        spmm_rows(out, NULL, 0.0f, m, x, dim, rows, r0, r1);
    }
}

void eng_csr_scatter_rows(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                          int dim, const int32_t *rows, int32_t n)
{
    for (int32_t q = 0; q < n; q++) {
        int32_t r = rows[q];
        const float *xr = x + (size_t)r * dim;
        for (int64_t k = m->ptr[r]; k < m->ptr[r + 1]; k++) {
            float v = m->val[k], va = alpha * v;
            float *o = out + (size_t)m->idx[k] * dim;
            for (int j = 0; j < dim; j++)
                o[j] += v * xr[j];
            if (acc) {
                float *a = acc + (size_t)m->idx[k] * dim;
                for (int j = 0; j < dim; j++)
                    a[j] += va * xr[j];
            }
        }
    }
}
