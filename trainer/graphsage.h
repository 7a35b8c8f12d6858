/* GraphSAGE's inductive side: the vector of a user the model was not trained on. */
#ifndef GNNREC_TRAINER_GRAPHSAGE_H
#define GNNREC_TRAINER_GRAPHSAGE_H

#include "trainer/model.h"

extern const trn_model_ops_t trn_graphsage_ops;

/* The final vector out [dim] of a new user who interacted with items[0..n) (item indices, n >= 0)
 * under m's trained weights: h^0 = feature [dim], or the mean of the items' layer-0 embeddings
 * when feature is NULL (zeros for n = 0); then for k = 1..K, h^k = the layer-k update of h^{k-1}
 * with the aggregator over the items' h^{k-1}, every item read (no sampling), as the published
 * vectors are computed. item_layers [n_items x K * dim] holds each item's h^0..h^{K-1}: the
 * extra tensor sage.item_layers of m. The new user does not join its items' neighbourhoods (one
 * step of fold-in). This is eng_sage_fold_in (engine/sage.h) over m's weights, which the server
 * runs over the published ones: the same bits for the same items in the same order (the server
 * passes them sorted). Returns 0, ENG_EINVAL when m is not a graphsage model or an item index
 * is out of range, or ENG_ENOMEM. */
int trn_sage_fold_in(const trn_model_t *m, const float *item_layers, const int32_t *items, int n,
                     const float *feature, float *out);

#endif
