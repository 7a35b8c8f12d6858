/* Ranking evaluation: the all-ranking protocol of NGCF/LightGCN.
 *
 * For every user with at least one test item, score every item by the inner product of the user's
 * and the item's vectors, drop the items the user has in train, take the top K, and average
 * recall@K (hits / |test|), precision@K (hits / K), hit-rate@K (any hit) and ndcg@K (binary gains,
 * ideal DCG over min(|test|, K) positions) over those users. */
#ifndef GNNREC_TRAINER_EVAL_H
#define GNNREC_TRAINER_EVAL_H

#include "engine/csr.h"

#include <stdint.h>

#define TRN_EVAL_MAX_K 8

typedef struct {
    int nk;
    int ks[TRN_EVAL_MAX_K];
    double recall[TRN_EVAL_MAX_K], precision[TRN_EVAL_MAX_K], hit[TRN_EVAL_MAX_K],
        ndcg[TRN_EVAL_MAX_K];
    int64_t n_users; /* users evaluated */
} trn_metrics_t;

/* Evaluates vectors user_vecs [train->rows x dim] and item_vecs [train->cols x dim] on test (same
 * shape as train). ks: nk (1..TRN_EVAL_MAX_K) cut-offs, each >= 1, in any order. train and test
 * rows must be sorted without duplicates (as eng_csr_from_pairs builds them). Ranks blocks of
 * users with the serving index's exact top-K (engine/index.c), the blocks spread over `threads`
 * OpenMP threads (< 1 means 1); the result does not depend on the thread count. Means are 0 when
 * no user has a test item. Returns 0, ENG_EINVAL for bad
 * ks, NULL pointers, dim < 1 or mismatched shapes, or ENG_ENOMEM; on failure *out is unchanged. */
int trn_eval_ranking(const float *user_vecs, const float *item_vecs, int dim,
                     const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                     int threads, trn_metrics_t *out);

/* The same metrics for the popularity baseline: every user gets the items with the most training
 * users (ties: lower index first), minus the user's own training items. Same requirements,
 * return codes and failure behaviour as trn_eval_ranking; single-threaded. */
int trn_eval_popularity(const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                        trn_metrics_t *out);

#endif
