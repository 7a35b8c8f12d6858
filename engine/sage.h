/* GraphSAGE's inference for one node (Hamilton et al., NeurIPS 2017): the aggregators'
 * reductions over a neighbour list, the LSTM aggregator's cell, a layer's update, and the vector
 * of a new user folded in from the items it interacted with. One definition for the trainer and
 * the server: the trainer's trn_sage_fold_in is eng_sage_fold_in over its parameter block, the
 * server's graphsage fold-in (server/fold_sage.c) the same function over the published tensors,
 * and the trainer's batched forward (trainer/aggregate.c) runs eng_sage_mean, eng_sage_max and
 * eng_sage_lstm_step per node. Only the dense products differ: the trainer multiplies whole
 * matrices with OpenBLAS, this file one row at a time with eng_vecmat (engine/vec.h; the engine
 * does not link BLAS), so a vector computed here equals the trainer's batched forward up to float
 * rounding, and trn_sage_fold_in bit for bit.
 *
 * Rows are read as x + idx[q] * stride: a table [rows x stride] whose row r starts at x + r *
 * stride, so a layer's block of sage.item_layers [items x K dim] is read in place. No function
 * here allocates or fails; scratch is the caller's. */
#ifndef GNNREC_ENGINE_SAGE_H
#define GNNREC_ENGINE_SAGE_H

#include <stddef.h>
#include <stdint.h>

/* The aggregators, in the order of their names: the trainer's --aggregator choice and the
 * "aggregator" of a published version's params both index this list. */
typedef enum { ENG_SAGE_MEAN, ENG_SAGE_MAX, ENG_SAGE_POOL, ENG_SAGE_LSTM } eng_sage_agg_t;
#define ENG_SAGE_AGGREGATORS "mean|max|pool|lstm"

#define ENG_SAGE_MAX_LAYERS 4
#define ENG_SAGE_MAX_DIM 4096

/* Floats of scratch eng_sage_layer and eng_sage_fold_in need for width dim. */
#define ENG_SAGE_SCRATCH(dim) (10 * (size_t)(dim))

/* A trained model's layers k = 1..layers (index k - 1), every pointer borrowed. */
typedef struct {
    int dim, layers; /* 1..ENG_SAGE_MAX_DIM, 1..ENG_SAGE_MAX_LAYERS */
    eng_sage_agg_t agg;
    const float *w[ENG_SAGE_MAX_LAYERS];  /* W_k [2 dim x dim] */
    const float *aw[ENG_SAGE_MAX_LAYERS]; /* pool: P_k [dim x dim]; lstm: Lx_k [dim x 4 dim] */
    const float *ab[ENG_SAGE_MAX_LAYERS]; /* pool: pb_k [dim]; lstm: lb_k [4 dim] */
    const float *ah[ENG_SAGE_MAX_LAYERS]; /* lstm: Lh_k [dim x 4 dim] */
} eng_sage_t;

/* The aggregator called name ("mean", ...), or -1 for an unknown name. */
int eng_sage_agg_find(const char *name);

/* out[d] = the mean of the n rows (zeros for n = 0), summed in list order. */
void eng_sage_mean(float *out, const float *x, size_t stride, const int32_t *idx, int64_t n, int d);

/* One step of a running element-wise maximum: out[j] = r[j] and arg[j] = id (arg may be NULL)
 * where r[j] > out[j] (strictly: a tie keeps the earlier). */
void eng_sage_max_into(float *out, int32_t *arg, const float *r, int32_t id, int d);

/* out[j] = the largest row element j over the n rows; arg[j] (arg may be NULL) = the idx of the
 * first row holding it (a strict comparison: the first maximum keeps a tie). n = 0: zeros, and
 * arg -1. */
void eng_sage_max(float *out, int32_t *arg, const float *x, size_t stride, const int32_t *idx,
                  int64_t n, int d);

/* One step of the LSTM aggregator (hidden size d): z [4d] holds x_t Lx + lb on entry; unless
 * c_prev is NULL (the first step, from the zero state) it gains h_{t-1} wh (wh = Lh [d x 4d],
 * h_{t-1} read from h); then z becomes the activated gates [i f g o] (sigmoid, sigmoid, tanh,
 * sigmoid), c [d] = f c_prev + i g (i g at the first step) and h [d] = o tanh(c). c may equal
 * c_prev. */
void eng_sage_lstm_step(float *z, float *c, const float *c_prev, float *h, const float *wh, int d);

/* The cell of that step alone, for a z [4d] that already holds x_t Lx + lb + h_{t-1} Lh (the
 * trainer multiplies the hidden states of many lists at once): the activations, c and h. */
void eng_sage_lstm_cell(float *z, float *c, const float *c_prev, float *h, int d);

/* out[dim] = AGG_l (layer index l, 0-based) over the n rows, with s's aggregator and weights:
 * mean and max as above, pool the max of ReLU(row P_l + pb_l), lstm the last hidden state over
 * the rows in list order (zeros for n = 0). scratch: ENG_SAGE_SCRATCH(dim) floats. */
void eng_sage_aggregate(const eng_sage_t *s, int l, float *out, const float *x, size_t stride,
                        const int32_t *idx, int64_t n, float *scratch);

/* out[dim] = h^{l+1} of a node whose h^l is self [dim] and whose neighbours' h^l are the n rows:
 * the L2-normalised [self || AGG_l] W_l, through a ReLU below the last layer. out may equal self.
 * scratch: ENG_SAGE_SCRATCH(dim) floats. */
void eng_sage_layer(const eng_sage_t *s, int l, float *out, const float *self, const float *x,
                    size_t stride, const int32_t *idx, int64_t n, float *scratch);

/* out[dim] = the final vector of a user the model was not trained on who interacted with the n
 * items (indices, each < the rows of item_layers; their order is the lstm aggregator's order):
 * h^0 = feature [dim], or the mean of the items' h^0 when feature is NULL (zeros for n = 0); then
 * h^k = eng_sage_layer over the items' h^{k-1}, every item read (no sampling). item_layers
 * [items x layers * dim] holds each item's h^0..h^{K-1} (the published sage.item_layers). The
 * user does not join its items' neighbourhoods (one step of fold-in). scratch:
 * ENG_SAGE_SCRATCH(dim) floats. */
void eng_sage_fold_in(const eng_sage_t *s, float *out, const float *item_layers,
                      const int32_t *items, int64_t n, const float *feature, float *scratch);

#endif
