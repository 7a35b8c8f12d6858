/* Evaluation of user and item vectors scored by inner product.
 *
 * Ranking, the all-ranking protocol of NGCF/LightGCN: for every user with at least one test item,
 * score every item, drop the items the user has in train, take the top K, and average recall@K
 * (hits / |test|), precision@K (hits / K), hit-rate@K (any hit) and ndcg@K (binary gains, ideal
 * DCG over min(|test|, K) positions) over those users.
 * AUC, the CTR protocol of NCF/KGCN: each test pair against one sampled item the user has in
 * neither train nor test. RMSE and MAE of the scores on held-out ratings. docs/evaluation.md. */
#ifndef GNNREC_TRAINER_EVAL_H
#define GNNREC_TRAINER_EVAL_H

#include "engine/csr.h"

#include <stdint.h>

#define TRN_EVAL_MAX_K 8

/* A cold user has at most this many training items: where side information should pay. */
#define TRN_EVAL_COLD 5

typedef struct {
    int nk;
    int ks[TRN_EVAL_MAX_K];
    double recall[TRN_EVAL_MAX_K], precision[TRN_EVAL_MAX_K], hit[TRN_EVAL_MAX_K],
        ndcg[TRN_EVAL_MAX_K];
    int64_t n_users; /* users evaluated */
    /* the same means over the cold users: those with at most TRN_EVAL_COLD training items */
    int64_t cold_users;
    double cold_recall[TRN_EVAL_MAX_K], cold_ndcg[TRN_EVAL_MAX_K];
    int has_auc; /* auc, f1 and auc_pairs are set (trn_eval_auc found a pair) */
    double auc, f1;
    int64_t auc_pairs;
    int has_rmse; /* rmse, mae and n_ratings are set (trn_eval_ratings ran) */
    double rmse, mae;
    int64_t n_ratings;
    /* link prediction of a knowledge-graph kind (trainer/kg.h): mrr and hits@1, 3, 10 */
    int has_link;
    double mrr, hits[3];
    int64_t link_queries;
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

/* AUC of the vectors on test: for each test pair (u, i) in entry order, one item j drawn
 * uniformly among those u has in neither train nor test (seeded by seed; a user with no such item
 * is skipped), and auc = (pairs with score(u, i) > score(u, j) + half the ties) / pairs; and the
 * F1 of the click predictions score >= 0 (a probability sigmoid(score) >= 0.5, KGCN's threshold)
 * over the test pairs labelled 1 and the drawn pairs labelled 0. Sets has_auc (when some pair was
 * drawn), auc, f1 and auc_pairs of *out and nothing else. Single-threaded:
 * the result depends only on the inputs and seed. Returns 0, or ENG_EINVAL (NULL pointers, dim < 1,
 * mismatched shapes; *out unchanged). */
int trn_eval_auc(const float *user_vecs, const float *item_vecs, int dim, const eng_csr_t *train,
                 const eng_csr_t *test, uint64_t seed, trn_metrics_t *out);

/* A model's scores of (user, item) pairs when they are not the inner product of two vectors
 * (kgcn: an item's representation depends on the user): out[k] = score(users[k], items[k]) for
 * k < n. Called from one thread (it may use threads of its own). Returns 0 or a negative code. */
typedef int (*trn_pair_scorer_t)(void *ctx, const int32_t *users, const int32_t *items, int64_t n,
                                 float *out);

/* trn_eval_ranking with the scores of a pair scorer: every item scored for each evaluated user
 * (blocks of users per call), training items excluded, the same top-K selection and metrics. */
int trn_eval_ranking_pairs(trn_pair_scorer_t score, void *ctx, const eng_csr_t *train,
                           const eng_csr_t *test, const int *ks, int nk, trn_metrics_t *out);

/* trn_eval_auc with the scores of a pair scorer: the same drawn pairs, AUC and F1. */
int trn_eval_auc_pairs(trn_pair_scorer_t score, void *ctx, const eng_csr_t *train,
                       const eng_csr_t *test, uint64_t seed, trn_metrics_t *out);

/* Rating error of the vectors on test's ratings (test->val): over its pairs, rmse = sqrt(mean of
 * (dot(u, i) - rating)^2) and mae = mean |dot(u, i) - rating| (0 when test is empty), summed in
 * entry order. Sets has_rmse, rmse, mae and n_ratings of *out and nothing else. Returns 0, or
 * ENG_EINVAL (NULL pointers or test->val NULL, dim < 1; *out unchanged). */
int trn_eval_ratings(const float *user_vecs, const float *item_vecs, int dim, const eng_csr_t *test,
                     trn_metrics_t *out);

/* The same metrics for the popularity baseline: every user gets the items with the most training
 * users (ties: lower index first), minus the user's own training items. Same requirements,
 * return codes and failure behaviour as trn_eval_ranking; single-threaded. */
int trn_eval_popularity(const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                        trn_metrics_t *out);

#endif
