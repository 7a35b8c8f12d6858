// clang-format off
/* Serving-kernel timing: exact top-20 over gowalla-sized random data (40,981 items x 64, 1 thread),
 * microseconds per query for
 *   sgemv    one cblas_sgemv + eng_topk per query (the path before the index)
 *   sgemm    cblas_sgemm over 64 queries + eng_topk per row (the DESIGN.md yardstick)
 *   index/N  eng_index_topk in batches of N = 1, 8, 32, 64 queries, for each kind of kernel the
 *            CPU runs (avx512, avx2, baseline; eng_isa_force picks them)
 * Each user excludes 27 random seen items (gowalla's mean). Every mode runs the same 512 queries,
 * best of 3 passes; the index results are checked against the sgemv path's (same items; scores
 * may differ in the last bits, since the summation order differs). Built on request only:
 *
 *   cmake --build build --target bench_index && build/bench_index
 *
 * Optional arguments: n_items dim k (defaults 40981 64 20). The sgemv and sgemm lines depend on
 * the OpenBLAS kernel: compare with OPENBLAS_CORETYPE=Haswell in the environment. */
// clang-format on
#include "engine/clock.h"
#include "engine/index.h"
#include "engine/rng.h"
#include "engine/simd.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_QUERIES 512
#define N_SEEN 27
#define PASSES 3

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The baseline: score every item with one sgemv, mask the excluded, select. */
static size_t sgemv_topk(const float *items, int32_t n_items, int dim, const float *q,
                         const int32_t *exclude, size_t n_excl, size_t k, float *scratch,
                         eng_scored_t *out)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_items, dim, 1.0f, items, dim, q, 1, 0.0f, scratch,
                1);
    for (size_t e = 0; e < n_excl; e++)
        scratch[exclude[e]] = -INFINITY;
    return eng_topk(scratch, n_items, k, out);
}

int main(int argc, char **argv)
{
    int32_t n_items = argc > 1 ? atoi(argv[1]) : 40981;
    int dim = argc > 2 ? atoi(argv[2]) : 64;
    size_t k = argc > 3 ? (size_t)atoi(argv[3]) : 20;
    openblas_set_num_threads(1);

    eng_rng_t r;
    eng_rng_seed(&r, 42, 0);
    float *items = malloc((size_t)n_items * dim * sizeof *items);
    float *qv = malloc((size_t)N_QUERIES * dim * sizeof *qv);
    int32_t *seen = malloc((size_t)N_QUERIES * N_SEEN * sizeof *seen);
    float *scratch = malloc((size_t)64 * n_items * sizeof *scratch);
    eng_scored_t *ref = malloc((size_t)N_QUERIES * k * sizeof *ref);
    eng_scored_t *got = malloc((size_t)N_QUERIES * k * sizeof *got);
    eng_query_t *qs = malloc(N_QUERIES * sizeof *qs);
    size_t *ref_n = malloc(N_QUERIES * sizeof *ref_n);
    if (!items || !qv || !seen || !scratch || !ref || !got || !qs || !ref_n)
        return 1;
    for (size_t i = 0; i < (size_t)n_items * dim; i++)
        items[i] = (float)(0.1 * eng_rng_normal(&r));
    for (size_t i = 0; i < (size_t)N_QUERIES * dim; i++)
        qv[i] = (float)(0.1 * eng_rng_normal(&r));
    for (int u = 0; u < N_QUERIES; u++) {
        int32_t *s = seen + (size_t)u * N_SEEN;
        for (int j = 0; j < N_SEEN; j++)
            s[j] = (int32_t)eng_rng_below(&r, (uint32_t)n_items);
        qsort(s, N_SEEN, sizeof *s, cmp_i32);
    }
    printf("items %d, dim %d, k %zu, %d queries, 1 thread, best of %d passes\n", n_items, dim, k,
           N_QUERIES, PASSES);

    double best = INFINITY;
    for (int pass = 0; pass < PASSES; pass++) {
        double t0 = eng_now();
        for (int u = 0; u < N_QUERIES; u++)
            ref_n[u] = sgemv_topk(items, n_items, dim, qv + (size_t)u * dim,
                                  seen + (size_t)u * N_SEEN, N_SEEN, k, scratch, ref + u * k);
        double t = eng_now() - t0;
        best = t < best ? t : best;
    }
    printf("%-12s %8.1f us/query\n", "sgemv", 1e6 * best / N_QUERIES);

    best = INFINITY;
    for (int pass = 0; pass < PASSES; pass++) {
        double t0 = eng_now();
        for (int u0 = 0; u0 < N_QUERIES; u0 += 64) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 64, n_items, dim, 1.0f,
                        qv + (size_t)u0 * dim, dim, items, dim, 0.0f, scratch, n_items);
            for (int u = u0; u < u0 + 64; u++) {
                float *row = scratch + (size_t)(u - u0) * n_items;
                for (int j = 0; j < N_SEEN; j++)
                    row[seen[(size_t)u * N_SEEN + j]] = -INFINITY;
                eng_topk(row, n_items, k, got + u * k);
            }
        }
        double t = eng_now() - t0;
        best = t < best ? t : best;
    }
    printf("%-12s %8.1f us/query\n", "sgemm/64", 1e6 * best / N_QUERIES);

    static const int batches[] = {1, 8, 32, 64};
    for (int kd = ENG_ISA_COUNT - 1; kd >= 0; kd--) {
        if (eng_isa_force((eng_isa_t)kd) != (eng_isa_t)kd)
            continue; /* the CPU lacks this kind */
        eng_index_t *ix = eng_index_new(items, n_items, dim, 0);
        void *ixs = malloc(eng_index_scratch_bytes(ix, 64));
        if (!ix || !ixs)
            return 1;
        const char *kind = eng_index_kernel(ix);
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
            int nq = batches[b];
            for (int u = 0; u < N_QUERIES; u++)
                qs[u] = (eng_query_t){.q = qv + (size_t)u * dim,
                                      .k = k,
                                      .exclude = seen + (size_t)u * N_SEEN,
                                      .n_exclude = N_SEEN,
                                      .out = got + u * k};
            best = INFINITY;
            for (int pass = 0; pass < PASSES; pass++) {
                double t0 = eng_now();
                for (int u0 = 0; u0 < N_QUERIES; u0 += nq)
                    eng_index_topk(ix, qs + u0, nq, ixs);
                double t = eng_now() - t0;
                best = t < best ? t : best;
            }
            int bad = 0;
            for (int u = 0; u < N_QUERIES; u++) {
                bad += qs[u].n_out != ref_n[u];
                for (size_t j = 0; j < qs[u].n_out && j < ref_n[u]; j++)
                    bad += got[u * k + j].idx != ref[u * k + j].idx;
            }
            char name[32];
            snprintf(name, sizeof name, "%s/%d", kind, nq);
            printf("%-12s %8.1f us/query  (%d entries differ from sgemv's order)\n", name,
                   1e6 * best / N_QUERIES, bad);
        }
        eng_index_free(ix);
        free(ixs);
    }
    free(items);
    free(qv);
    free(seen);
    free(scratch);
    free(ref);
    free(got);
    free(qs);
    free(ref_n);
    return 0;
}
