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
 * written: min(k, number of eligible entries); out needs room for min(k, n) entries. k == 0 or
 * n <= 0 writes nothing. A bounded min-heap: O(n log k), with one comparison per score that does
 * not beat the current k-th best. */
size_t eng_topk(const float *scores, int32_t n, size_t k, eng_scored_t *out);

/* eng_topk for a row that arrives in pieces (scored tile by tile). Feeds scores[0..n), the entries
 * with indices base .. base + n - 1, into heap, which holds len entries from earlier pieces (0 for
 * a new row) and has room for k; returns the new len. Pieces must come in increasing index order
 * (that is what makes ties go to the lower index). Between pushes heap is a min-heap: once
 * len == k, heap[0] is the current k-th best, the score a new entry must beat (engine/index.c
 * tests whole panels against it before pushing). eng_topk_finish then sorts heap[0..len)
 * best-first. */
size_t eng_topk_push(const float *scores, int32_t n, int32_t base, size_t k, eng_scored_t *heap,
                     size_t len);
void eng_topk_finish(eng_scored_t *heap, size_t len);

#endif
