/* Training examples: (user, positive item, nneg negative items), or (user, item, rating).
 *
 * Ranking examples as the LightGCN code: the user uniform over users with at least one training
 * item, the positive uniform over that user's items, each negative uniform over all items,
 * redrawn while it is one of the user's training items. Rating examples (for the MSE loss): a
 * training pair uniform over all pairs, with its rating, and no negatives. */
#ifndef GNNREC_TRAINER_SAMPLER_H
#define GNNREC_TRAINER_SAMPLER_H

#include "engine/csr.h"
#include "engine/rng.h"

typedef struct {
    int n;                /* examples in the batch */
    int nneg;             /* negatives per example */
    int32_t *users, *pos; /* [n]; items as item indices 0..n_items-1 */
    int32_t *neg;         /* [n x nneg]: example k's negatives are neg[k * nneg ..] */
    float *rating;        /* [n] the pair's rating in a rating batch (nneg 0), else NULL */
} trn_batch_t;

typedef struct trn_sampler trn_sampler_t;

/* A sampler over train (borrowed; must outlive the sampler), or NULL when out of memory. Users
 * who have every item in train can form no triple and are never drawn. */
trn_sampler_t *trn_sampler_new(const eng_csr_t *train, uint64_t seed);
void trn_sampler_free(trn_sampler_t *s);

/* Number of users that can be drawn (0: no triple can be formed). */
int32_t trn_sampler_users(const trn_sampler_t *s);

/* Fills the first n examples of b (capacity provided by the caller) and sets b->n = n: ranking
 * examples with b->nneg negatives each, or, when b->rating is not NULL, rating examples (users,
 * pos = the item, rating), for which train must have values and at most 2^32 entries. */
void trn_sampler_next(trn_sampler_t *s, trn_batch_t *b, int n);

/* Allocates a batch for n ranking examples of nneg >= 0 negatives, or (trn_batch_alloc_rated) for
 * n rating examples; free with trn_batch_free. Returns 0 or ENG_ENOMEM (then b holds nothing to
 * free). */
int trn_batch_alloc(trn_batch_t *b, int n, int nneg);
int trn_batch_alloc_rated(trn_batch_t *b, int n);
void trn_batch_free(trn_batch_t *b);

#endif
