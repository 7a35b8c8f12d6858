/* Exact top-K selection over a row of scores. Shared by evaluation and the server. */
#ifndef GNNREC_ENGINE_TOPK_H
#define GNNREC_ENGINE_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t idx;
    float score;
} eng_scored_t;

/* Writes to out the k highest of scores[0..n), best first (ties: lower index first), skipping
 * entries that are -INFINITY or NaN (that is how callers exclude items). Returns how many were
 * written: min(k, number of eligible entries). A bounded min-heap: O(n log k). */
size_t eng_topk(const float *scores, int32_t n, size_t k, eng_scored_t *out);

#endif
