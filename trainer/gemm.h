/* Small dense products for the dense layers (trainer/layers.c): the shapes of a graph model's
 * feature transforms, a tall block of rows times a weight matrix of 16 to a few hundred columns.
 *
 * OpenBLAS's sgemm packs both operands on every call and, with the Haswell kernels the
 * environment pins (OPENBLAS_CORETYPE), runs 8 floats wide: on one core of the AVX-512 machines
 * it reaches about 120 GFlop/s at these shapes (512 x 64 times 64 x 64, and the weight gradient's
 * 64 x 9,000 times 9,000 x 64), where these kernels, which keep a tile of the output in the 32
 * vector registers and read the weights from L1 unpacked, reach 215-265 (measured with a
 * standalone loop of each, side by side). They exist for the AVX-512 kind only (engine/simd.h)
 * and for output widths that are multiples of 16: trn_gemm_fits says when, and layers.c runs
 * sgemm otherwise, so every other CPU keeps OpenBLAS. Each output element is summed in a fixed
 * order (over k, or over the rows, ascending), so the bits do not depend on the thread count;
 * they differ from sgemm's in the last places. tests/test_grad.c (test_dense) holds both paths
 * to plain loops in double and to central differences. */
#ifndef GNNREC_TRAINER_GEMM_H
#define GNNREC_TRAINER_GEMM_H

#include <stdint.h>

/* Whether the kernels run here for an output of m columns: an AVX-512 CPU (eng_isa) and m a
 * multiple of 16. */
int trn_gemm_fits(int m);

/* C[n x m] = A[n x k] B[k x m] (acc 0) or C += A B (acc 1); row-major with leading dimensions
 * lda, ldb, ldc (in floats). Only where trn_gemm_fits(m). */
void trn_gemm_nn(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int64_t n,
                 int k, int m, int acc);

/* C[k x m] += A^T G for A [n x k], G [n x m], summed over the rows in order. Only where
 * trn_gemm_fits(m). */
void trn_gemm_tn(float *C, int ldc, const float *A, int lda, const float *G, int ldg, int64_t n,
                 int k, int m);

#endif
