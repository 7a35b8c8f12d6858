/* Exact top-K recommendation for one query vector: the path every model's serving shares. */
#ifndef GNNREC_ENGINE_SCORE_H
#define GNNREC_ENGINE_SCORE_H

#include "engine/topk.h"

#include <stddef.h>
#include <stdint.h>

/* Scores every item (item_vecs [n_items x dim] . q) into scratch [n_items], sets the scores of the
 * n_excl items in exclude[] to -INFINITY, and writes the best k to out (best first). Returns how
 * many were written. Single-threaded: callers parallelise across queries. */
size_t eng_score_topk(const float *item_vecs, int32_t n_items, int dim, const float *q,
                      const int32_t *exclude, size_t n_excl, size_t k, float *scratch,
                      eng_scored_t *out);

#endif
