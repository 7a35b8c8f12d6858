/* Compressed sparse rows: the user-item interaction lists and the propagation graph.
 *
 * Row r's columns are idx[ptr[r] .. ptr[r+1]), sorted ascending without duplicates when built by
 * eng_csr_from_pairs. val is NULL for a pattern-only matrix (interaction lists). */
#ifndef GNNREC_ENGINE_CSR_H
#define GNNREC_ENGINE_CSR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t rows, cols;
    int64_t nnz;
    int64_t *ptr; /* [rows + 1] */
    int32_t *idx; /* [nnz] */
    float *val;   /* [nnz], or NULL */
} eng_csr_t;

/* A new matrix with ptr zeroed and idx (and val when with_values) allocated for nnz entries but
 * uninitialised; NULL when out of memory. Free with eng_csr_free (NULL is fine). */
eng_csr_t *eng_csr_new(int32_t rows, int32_t cols, int64_t nnz, int with_values);
void eng_csr_free(eng_csr_t *m);

/* A new pattern-only matrix holding the n (r[k], c[k]) pairs, rows sorted, duplicates merged.
 * Every r[k] must be in [0, rows) and c[k] in [0, cols). NULL when out of memory. */
eng_csr_t *eng_csr_from_pairs(int32_t rows, int32_t cols, const int32_t *r, const int32_t *c,
                              int64_t n);

/* Sorts a[0..n) ascending and removes repeats in place; returns the new length. The form of a
 * CSR row and of every exclusion list. */
size_t eng_sort_unique_i32(int32_t *a, size_t n);

/* Non-zero when (row, col) is stored; rows must be sorted (binary search). */
int eng_csr_has(const eng_csr_t *m, int32_t row, int32_t col);

/* out[rows x dim] = m[rows x cols] * x[cols x dim] (val must not be NULL). Rows are split
 * statically among `threads` OpenMP threads with balanced non-zeros; each output row is computed
 * by one thread in a fixed order, so the result does not depend on the thread count. The products
 * below run the kernel kind eng_isa() names (engine/simd.h); the kinds give the same bits, except
 * baseline, which rounds each multiply and add separately (no fused multiply-add). */
void eng_csr_spmm(float *out, const eng_csr_t *m, const float *x, int dim, int threads);

/* As eng_csr_spmm, and also acc[rows x dim] += alpha * out in the same pass (acc may be NULL):
 * propagation accumulates every layer into a running sum, and fusing saves a pass over memory. */
void eng_csr_spmm_acc(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                      int dim, int threads);

/* Only the listed rows of m * x: out[rows[k]] = (m x)[rows[k]] for k < n; other rows of out are
 * untouched. rows must not repeat. Threaded like eng_csr_spmm, and as deterministic. */
void eng_csr_spmm_rows(float *out, const eng_csr_t *m, const float *x, int dim, const int32_t *rows,
                       int32_t n, int threads);

/* As eng_csr_spmm_rows with the output packed: out[k] = (m x)[rows[k]], out [n x dim]. A model
 * that computes a layer for some rows only keeps that layer's rows packed, for its dense
 * products. */
void eng_csr_spmm_packed(float *out, const eng_csr_t *m, const float *x, int dim,
                         const int32_t *rows, int32_t n, int threads);

/* out += m * x for an x that is zero outside the n listed rows, computed by scattering those rows
 * along their columns: out[c] += m[r][c] x[r]. That equals m x only when m is symmetric (it reads
 * row r for column r). acc, when not NULL, receives acc += alpha * (the same contributions).
 * Costs the listed rows' non-zeros instead of all of them. Threaded by destination rows, and the
 * result does not depend on the thread count (each destination sums in list order). */
void eng_csr_scatter_rows(float *out, float *acc, float alpha, const eng_csr_t *m, const float *x,
                          int dim, const int32_t *rows, int32_t n, int threads);

/* out[cols x dim] += m^T x for x [n x dim] packed (x[k] is the value of row rows[k]), m square,
 * symmetric or not: the backward of eng_csr_spmm_packed. Threaded and deterministic as
 * eng_csr_scatter_rows. */
void eng_csr_scatter_packed(float *out, const eng_csr_t *m, const float *x, int dim,
                            const int32_t *rows, int32_t n, int threads);

#endif
