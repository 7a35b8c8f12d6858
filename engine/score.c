/* Exact top-K for one query vector. */
#include "engine/score.h"

#include <cblas.h>
#include <math.h>

size_t eng_score_topk(const float *item_vecs, int32_t n_items, int dim, const float *q,
                      const int32_t *exclude, size_t n_excl, size_t k, float *scratch,
                      eng_scored_t *out)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n_items, dim, 1.0f, item_vecs, dim, q, 1, 0.0f,
                scratch, 1);
    for (size_t e = 0; e < n_excl; e++)
        scratch[exclude[e]] = -INFINITY;
    return eng_topk(scratch, n_items, k, out);
}
