/* Small dense products on AVX-512 (see trainer/gemm.h). */
#include "trainer/gemm.h"
#include "engine/simd.h"

#include <stddef.h>

int trn_gemm_fits(int m)
{
    return ENG_SIMD_X86 && eng_isa() == ENG_ISA_AVX512 && m > 0 && m % 16 == 0;
}

#if ENG_SIMD_X86

typedef float v16 __attribute__((vector_size(64), aligned(4)));

/* Rows of the output tile of trn_gemm_nn, and columns of A of trn_gemm_tn's tile: with 4 vectors
 * (64 columns) a row, 6 rows are 24 accumulators of the 32 registers, the weights' 4 the rest. */
#define TILE 6
/* trn_gemm_tn's rows per pass: a block of G and A stays in L2 while the tiles of columns of A
 * go over it. */
#define TN_ROWS 256

/* C rows [r, r + R) (R <= TILE) of a panel of NV vectors (16 NV columns) starting at column c. */
#define NN_TILE(R, NV)                                                                             \
    do {                                                                                           \
        v16 acc[R][NV];                                                                            \
        for (int i = 0; i < R; i++)                                                                \
            for (int j = 0; j < NV; j++)                                                           \
                acc[i][j] =                                                                        \
                    acc_in ? *(const v16 *)(C + (r + i) * (size_t)ldc + c + 16 * j) : (v16){0};    \
        for (int kk = 0; kk < k; kk++) {                                                           \
            v16 b[NV];                                                                             \
            for (int j = 0; j < NV; j++)                                                           \
                b[j] = *(const v16 *)(B + (size_t)kk * ldb + c + 16 * j);                          \
            for (int i = 0; i < R; i++) {                                                          \
                const float a = A[(r + i) * (size_t)lda + kk];                                     \
                for (int j = 0; j < NV; j++)                                                       \
                    acc[i][j] += a * b[j];                                                         \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < R; i++)                                                                \
            for (int j = 0; j < NV; j++)                                                           \
                *(v16 *)(C + (r + i) * (size_t)ldc + c + 16 * j) = acc[i][j];                      \
    } while (0)

/* One panel of NV vectors: tiles of TILE rows, then the rows left one at a time. */
#define NN_PANEL(NV)                                                                               \
    ENG_TARGET_AVX512 static void nn_panel_##NV(float *C, int ldc, const float *A, int lda,        \
                                                const float *B, int ldb, int64_t n, int k, int c,  \
                                                int acc_in)                                        \
    {                                                                                              \
        int64_t r = 0;                                                                             \
        for (; r + TILE <= n; r += TILE)                                                           \
            NN_TILE(TILE, NV);                                                                     \
        for (; r < n; r++)                                                                         \
            NN_TILE(1, NV);                                                                        \
    }
NN_PANEL(1)
NN_PANEL(2)
NN_PANEL(3)
NN_PANEL(4)

/* C rows [i, i + T) of a panel of NV vectors at column c, over the rows [r0, r1) of A and G. */
#define TN_TILE(T, NV)                                                                             \
    do {                                                                                           \
        v16 acc[T][NV];                                                                            \
        for (int t = 0; t < T; t++)                                                                \
            for (int j = 0; j < NV; j++)                                                           \
                acc[t][j] = *(const v16 *)(C + (size_t)(i + t) * ldc + c + 16 * j);                \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            v16 g[NV];                                                                             \
            for (int j = 0; j < NV; j++)                                                           \
                g[j] = *(const v16 *)(G + r * (size_t)ldg + c + 16 * j);                           \
            const float *a = A + r * (size_t)lda + i;                                              \
            for (int t = 0; t < T; t++)                                                            \
                for (int j = 0; j < NV; j++)                                                       \
                    acc[t][j] += a[t] * g[j];                                                      \
        }                                                                                          \
        for (int t = 0; t < T; t++)                                                                \
            for (int j = 0; j < NV; j++)                                                           \
                *(v16 *)(C + (size_t)(i + t) * ldc + c + 16 * j) = acc[t][j];                      \
    } while (0)

#define TN_PANEL(NV)                                                                               \
    ENG_TARGET_AVX512 static void tn_panel_##NV(float *C, int ldc, const float *A, int lda,        \
                                                const float *G, int ldg, int64_t n, int k, int c)  \
    {                                                                                              \
        for (int64_t r0 = 0; r0 < n; r0 += TN_ROWS) {                                              \
            const int64_t r1 = r0 + TN_ROWS < n ? r0 + TN_ROWS : n;                                \
            int i = 0;                                                                             \
            for (; i + TILE <= k; i += TILE)                                                       \
                TN_TILE(TILE, NV);                                                                 \
            for (; i < k; i++)                                                                     \
                TN_TILE(1, NV);                                                                    \
        }                                                                                          \
    }
TN_PANEL(1)
TN_PANEL(2)
TN_PANEL(3)
TN_PANEL(4)

typedef void nn_fn(float *, int, const float *, int, const float *, int, int64_t, int, int, int);
typedef void tn_fn(float *, int, const float *, int, const float *, int, int64_t, int, int);
static nn_fn *const nn_panels[5] = {NULL, nn_panel_1, nn_panel_2, nn_panel_3, nn_panel_4};
static tn_fn *const tn_panels[5] = {NULL, tn_panel_1, tn_panel_2, tn_panel_3, tn_panel_4};

/* The columns in panels of up to 64 (4 vectors), each panel one pass. */
void trn_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int64_t n,
                 int k, int m, int acc)
{
    for (int c = 0; c < m; c += 64) {
        const int nv = (m - c < 64 ? m - c : 64) / 16;
        nn_panels[nv](C, ldc, A, lda, B, ldb, n, k, c, acc);
    }
}

void trn_gemm_tn(float *C, int ldc, const float *A, int lda, const float *G, int ldg, int64_t n,
                 int k, int m)
{
    for (int c = 0; c < m; c += 64) {
        const int nv = (m - c < 64 ? m - c : 64) / 16;
        tn_panels[nv](C, ldc, A, lda, G, ldg, n, k, c);
    }
}

#else /* no AVX-512 kind compiled: trn_gemm_fits is always 0 and these are never called */

void trn_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int64_t n,
                 int k, int m, int acc)
{
    (void)C, (void)ldc, (void)A, (void)lda, (void)B, (void)ldb, (void)n, (void)k, (void)m,
        (void)acc;
}

void trn_gemm_tn(float *C, int ldc, const float *A, int lda, const float *G, int ldg, int64_t n,
                 int k, int m)
{
    (void)C, (void)ldc, (void)A, (void)lda, (void)G, (void)ldg, (void)n, (void)k, (void)m;
}

#endif
