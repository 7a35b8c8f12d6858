/* Compressed sparse rows: construction, lookup and the sparse x dense product. */
#include "engine/csr.h"

#include "engine/simd.h"

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

size_t eng_sort_unique_i32(int32_t *a, size_t n)
{
    qsort(a, n, sizeof *a, cmp_i32);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (w == 0 || a[i] != a[w - 1])
            a[w++] = a[i];
    return w;
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
    /* Sort each row and squeeze out duplicates, compacting the rows leftwards in place. */
    int64_t w = 0;
    for (int32_t i = 0; i < rows; i++) {
        int64_t b = m->ptr[i], e = m->ptr[i + 1];
        size_t len = eng_sort_unique_i32(m->idx + b, (size_t)(e - b));
        memmove(m->idx + w, m->idx + b, len * sizeof *m->idx);
        m->ptr[i] = w;
        w += (int64_t)len;
    }
    m->ptr[rows] = w;
    m->nnz = w;
    return m;
}

/* First position in idx[lo..hi) (sorted) holding a value >= v, or hi. */
static int64_t lower_bound(const int32_t *idx, int64_t lo, int64_t hi, int32_t v)
{
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int eng_csr_has(const eng_csr_t *m, int32_t row, int32_t col)
{
    int64_t k = lower_bound(m->idx, m->ptr[row], m->ptr[row + 1], col);
    return k < m->ptr[row + 1] && m->idx[k] == col;
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

/* The row kernels below are always inlined into one function per kind of CPU (engine/simd.h), and
 * each call runs the kind eng_isa() names: packaged binaries stay portable, and the gathers, which
 * are what this code is about, get full-width loads on current CPUs. */

/* One output row for dim == 64, the common case: eight 8-wide accumulators that stay in
 * registers (AVX2) while the neighbour rows stream through. */
static ENG_ALWAYS_INLINE void row64(float *restrict o, const eng_csr_t *m, const float *restrict x,
                                    int64_t b, int64_t e, int64_t pf_end)
{
    eng_v8f_u acc[8] = {{0}};
    for (int64_t k = b; k < e; k++) {
        if (k + PREFETCH_AHEAD < pf_end) {
            const char *p = (const char *)(x + (size_t)m->idx[k + PREFETCH_AHEAD] * 64);
            for (int j = 0; j < 256; j += 64)
                __builtin_prefetch(p + j);
        }
        eng_v8x8_axpy(acc, m->val[k], x + (size_t)m->idx[k] * 64);
    }
    for (int j = 0; j < 8; j++)
        ((eng_v8f_u *)o)[j] = acc[j];
}

/* Any other width: accumulate straight into the output row. */
static ENG_ALWAYS_INLINE void row_any(float *restrict o, const eng_csr_t *m,
                                      const float *restrict x, int dim, int64_t b, int64_t e,
                                      int64_t pf_end)
{
    for (int j = 0; j < dim; j++)
        o[j] = 0.0f;
    for (int64_t k = b; k < e; k++) {
        if (k + PREFETCH_AHEAD < pf_end) {
            const char *p = (const char *)(x + (size_t)m->idx[k + PREFETCH_AHEAD] * dim);
            for (size_t j = 0; j < (size_t)dim * sizeof(float); j += 64)
                __builtin_prefetch(p + j);
        }
        const float *xr = x + (size_t)m->idx[k] * dim;
        const float v = m->val[k];
        for (int j = 0; j < dim; j++)
            o[j] += v * xr[j];
    }
}

/* out[r] = (m x)[r] for rows r0..r1 (or the rows in list[r0..r1) when list is not NULL, each
 * written to out[q], its place in the list, when packed), and acc[r] += alpha * out[r] when acc is
 * not NULL. */
static ENG_ALWAYS_INLINE void rows_kernel(float *restrict out, float *restrict acc, float alpha,
                                          const eng_csr_t *m, const float *restrict x, int dim,
                                          const int32_t *list, int packed, int32_t r0, int32_t r1)
{
    /* Over a run of consecutive rows the prefetch looks ahead into the next rows' neighbours
     * too: most rows are shorter than the distance that hides the latency. */
    const int64_t run_end = list || r1 <= r0 ? 0 : m->ptr[r1];
    for (int32_t q = r0; q < r1; q++) {
        int32_t r = list ? list[q] : q;
        float *o = out + (size_t)(packed ? q : r) * dim;
        const int64_t b = m->ptr[r], e = m->ptr[r + 1], pf_end = list ? e : run_end;
        if (dim == 64)
            row64(o, m, x, b, e, pf_end);
        else
            row_any(o, m, x, dim, b, e, pf_end);
        if (acc) {
            float *a = acc + (size_t)r * dim;
            for (int j = 0; j < dim; j++)
                a[j] += alpha * o[j];
        }
    }
}

/* One thread's part of eng_csr_scatter_rows: the contributions of the n listed rows (row rows[q]
 * of x, or row q when packed) to the destination rows c0..c1, found by binary search in each
 * sorted row. */
static ENG_ALWAYS_INLINE void scatter_kernel(float *restrict out, float *restrict acc, float alpha,
                                             const eng_csr_t *m, const float *restrict x, int dim,
                                             const int32_t *rows, int packed, int32_t n, int32_t c0,
                                             int32_t c1)
{
    for (int32_t q = 0; q < n; q++) {
        int32_t r = rows[q];
        const float *xr = x + (size_t)(packed ? q : r) * dim;
        int64_t k = lower_bound(m->idx, m->ptr[r], m->ptr[r + 1], c0);
        const int64_t e = lower_bound(m->idx, k, m->ptr[r + 1], c1);
        for (; k < e; k++) {
            if (k + PREFETCH_AHEAD < e) { /* the destination rows are random, as a gather's */
                const char *p = (const char *)(out + (size_t)m->idx[k + PREFETCH_AHEAD] * dim);
                for (size_t j = 0; j < (size_t)dim * sizeof(float); j += 64)
                    __builtin_prefetch(p + j, 1);
            }
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

/* The instances, one per kind. AVX-512 runs the AVX2 ones: the rows are 8-float vectors, and
 * what limits the product is memory latency, not vector width. */
#define ROWS_ARGS                                                                                  \
    float *restrict out, float *restrict acc, float alpha, const eng_csr_t *m,                     \
        const float *restrict x, int dim, const int32_t *list, int packed, int32_t r0, int32_t r1
#define SCATTER_ARGS                                                                               \
    float *restrict out, float *restrict acc, float alpha, const eng_csr_t *m,                     \
        const float *restrict x, int dim, const int32_t *rows, int packed, int32_t n, int32_t c0,  \
        int32_t c1

static void rows_baseline(ROWS_ARGS)
{
    rows_kernel(out, acc, alpha, m, x, dim, list, packed, r0, r1);
}

static void scatter_baseline(SCATTER_ARGS)
{
    scatter_kernel(out, acc, alpha, m, x, dim, rows, packed, n, c0, c1);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void rows_avx2(ROWS_ARGS)
{
    rows_kernel(out, acc, alpha, m, x, dim, list, packed, r0, r1);
}

ENG_TARGET_AVX2 static void scatter_avx2(SCATTER_ARGS)
{
    scatter_kernel(out, acc, alpha, m, x, dim, rows, packed, n, c0, c1);
}
#endif

typedef void rows_fn(ROWS_ARGS);
typedef void scatter_fn(SCATTER_ARGS);
static rows_fn *const rows_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(rows_baseline, rows_avx2, rows_avx2);
static scatter_fn *const scatter_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(scatter_baseline, scatter_avx2, scatter_avx2);

void eng_csr_spmm_acc(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                      int dim, int threads)
{
    if (threads < 1)
        threads = 1;
    rows_fn *kernel = rows_kinds[eng_isa()];
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        kernel(out, acc, alpha, m, x, dim, NULL, 0, split_row(m, t, nt), split_row(m, t + 1, nt));
    }
}

void eng_csr_spmm(float *out, const eng_csr_t *m, const float *x, int dim, int threads)
{
    eng_csr_spmm_acc(out, NULL, 0.0f, m, x, dim, threads);
}

static void spmm_list(float *out, const eng_csr_t *m, const float *x, int dim, const int32_t *rows,
                      int32_t n, int packed, int threads)
{
    if (threads < 1)
        threads = 1;
    rows_fn *kernel = rows_kinds[eng_isa()];
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int32_t r0 = (int32_t)((int64_t)n * t / nt), r1 = (int32_t)((int64_t)n * (t + 1) / nt);
        kernel(out, NULL, 0.0f, m, x, dim, rows, packed, r0, r1);
    }
}

void eng_csr_spmm_rows(float *out, const eng_csr_t *m, const float *x, int dim, const int32_t *rows,
                       int32_t n, int threads)
{
    spmm_list(out, m, x, dim, rows, n, 0, threads);
}

void eng_csr_spmm_packed(float *out, const eng_csr_t *m, const float *x, int dim,
                         const int32_t *rows, int32_t n, int threads)
{
    spmm_list(out, m, x, dim, rows, n, 1, threads);
}

static void scatter_list(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                         int dim, const int32_t *rows, int packed, int32_t n, int threads)
{
    if (threads < 1)
        threads = 1;
    scatter_fn *kernel = scatter_kinds[eng_isa()];
    /* Each thread owns a range of destination rows (columns of m, split as eng_csr_spmm splits
     * rows) and walks every listed row's entries inside its range. A destination row thus
     * receives its contributions in list order from one thread: the same sums as a serial
     * scatter, for any thread count, without locks. */
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        kernel(out, acc, alpha, m, x, dim, rows, packed, n, split_row(m, t, nt),
               split_row(m, t + 1, nt));
    }
}

void eng_csr_scatter_rows(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                          int dim, const int32_t *rows, int32_t n, int threads)
{
    scatter_list(out, acc, alpha, m, x, dim, rows, 0, n, threads);
}

void eng_csr_scatter_packed(float *out, const eng_csr_t *m, const float *x, int dim,
                            const int32_t *rows, int32_t n, int threads)
{
    scatter_list(out, NULL, 0.0f, m, x, dim, rows, 1, n, threads);
}
