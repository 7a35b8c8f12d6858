/* What the knowledge-graph kinds share: a held-out split of the triples, an index of the triples
 * by (head, relation) and by (tail, relation), and link-prediction evaluation in the filtered
 * setting of Bordes et al. (NIPS 2013). */
#ifndef GNNREC_TRAINER_KG_H
#define GNNREC_TRAINER_KG_H

#include "trainer/eval.h"
#include "trainer/model.h"

#include <stdint.h>

/* Splits kg's triple indices into *train and *test (new arrays, free with free): about frac of
 * them held out, drawn in a seeded random order, a triple held out only while its head and tail
 * each keep another training triple (an entity seen only in test would have an untrained
 * embedding). Both lists ascending. Returns 0 or ENG_ENOMEM (both NULL then). */
int trn_kg_split(const trn_triples_t *kg, double frac, uint64_t seed, int32_t **train,
                 int64_t *n_train, int32_t **test, int64_t *n_test);

/* The triples sorted two ways, for membership and for every true answer of a query. */
typedef struct {
    int64_t n;
    int32_t *hrt; /* [n x 3] (head, relation, tail), sorted */
    int32_t *trh; /* [n x 3] (tail, relation, head), sorted */
} trn_kg_index_t;

/* Indexes kg's triples (a repeated one once). Returns 0 or ENG_ENOMEM. */
int trn_kg_index_build(trn_kg_index_t *ix, const trn_triples_t *kg);
void trn_kg_index_free(trn_kg_index_t *ix);

/* Non-zero when (h, r, t) is a triple. */
int trn_kg_index_has(const trn_kg_index_t *ix, int32_t h, int32_t r, int32_t t);

/* Scores of every entity as the tail of (h, r, ?) (tail non-zero; t is the true tail) or as the
 * head of (?, r, t) (h the true head), higher better, into scores[n_entities]. Called from
 * several threads at once: it must only read ctx. */
typedef void (*trn_kg_scorer_t)(const void *ctx, int32_t h, int32_t r, int32_t t, int tail,
                                float *scores);

/* Filtered link prediction over the n test triples kg->(head, rel, tail)[test[k]]: each asks for
 * its tail and for its head, and the true answer's rank is 1 + the candidates scored higher +
 * half those scored equal, counting no candidate that makes a triple of ix (the filtered
 * setting). Sets out's has_link, mrr (mean reciprocal rank over the 2n queries), hits (the
 * fraction ranked within 1, 3 and 10) and link_queries, and nothing else. Queries spread over
 * `threads` threads; the result does not depend on their number. Returns 0 or ENG_ENOMEM. */
int trn_kg_link_eval(const trn_triples_t *kg, const int32_t *test, int64_t n,
                     const trn_kg_index_t *ix, trn_kg_scorer_t score, const void *ctx, int threads,
                     trn_metrics_t *out);

#endif
