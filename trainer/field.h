/* The rows a batch needs from each layer of a graph propagation (its receptive field).
 *
 * A model whose loss reads its final vectors at the batch's nodes B needs layer L at B only, and
 * layer l - 1 at the rows layer l reads: those of layer l and their neighbours. Computing each
 * layer on those rows alone, instead of on the whole graph, gives the same loss and gradient at a
 * fraction of the cost (the last layers most). gcn, ngcf and gat run their layers over these lists,
 * with each layer's tensors packed in list order. */
#ifndef GNNREC_TRAINER_FIELD_H
#define GNNREC_TRAINER_FIELD_H

#include "engine/csr.h"
#include "trainer/model.h"

#include <stdint.h>

#define TRN_FIELD_MAX_LAYERS 16

typedef struct {
    int layers;
    int32_t nodes;
    int32_t *rows[TRN_FIELD_MAX_LAYERS + 1]; /* [nodes] each: layer l's rows, ascending */
    int32_t n[TRN_FIELD_MAX_LAYERS + 1];     /* how many */
    int32_t *pos;                            /* [nodes] see trn_field_positions */
    uint8_t *mark;                           /* [nodes] zero between calls */
} trn_field_t;

/* Room for `layers` (1..TRN_FIELD_MAX_LAYERS) layers over `nodes` nodes. 0 or ENG_ENOMEM; free
 * with trn_field_free, also after a failure. */
int trn_field_alloc(trn_field_t *f, int32_t nodes, int layers);
void trn_field_free(trn_field_t *f);

/* Every layer at every row, in order (0..nodes-1): the whole-graph forward, where packed and
 * node-indexed layouts coincide. */
void trn_field_all(trn_field_t *f);

/* rows[L] = the rows s holds (trn_scores_rows: users, positives and negatives of a batch of n
 * positives with nneg negatives each), rows[l - 1] = rows[l] and their neighbours in adj. */
void trn_field_batch(trn_field_t *f, const eng_csr_t *adj, const trn_scores_t *s, int n, int nneg);

/* The same from the last layer's rows given as a list (any order, repeats allowed): for a model
 * whose output rows are not a trn_scores_t's. */
void trn_field_rows(trn_field_t *f, const eng_csr_t *adj, const int32_t *rows, int64_t n);

/* f->pos[r] = the place of row r in layer l's list, for the rows of that list (other entries are
 * stale): where a row's values sit in layer l's packed tensors. */
void trn_field_positions(trn_field_t *f, int l);

/* Moving layer l's rows (d floats each) between a packed table [n[l] x d], row q for node
 * rows[l][q], and a node-indexed one [nodes x d], the rows shared among `threads` OpenMP threads:
 * gather packed[q] = nodes[rows[l][q]]; scatter nodes[rows[l][q]] = packed[q]; add
 * nodes[rows[l][q]] += packed[q] (a row of the field is one node, so no two threads add into one
 * row); zero sets those rows of the node-indexed table to 0. The other rows are untouched. */
void trn_field_gather(const trn_field_t *f, int l, float *packed, const float *nodes, int d,
                      int threads);
void trn_field_scatter(const trn_field_t *f, int l, float *nodes, const float *packed, int d,
                       int threads);
void trn_field_add(const trn_field_t *f, int l, float *nodes, const float *packed, int d,
                   int threads);
void trn_field_zero(const trn_field_t *f, int l, float *nodes, int d, int threads);

#endif
