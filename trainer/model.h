/* The trainable-model interface: what every graph model implements, and the parameter block.
 *
 * A model's weights live in one block `params` of n_params floats; `grads`, `adam_m` and `adam_v`
 * mirror its layout in the same allocation, so a step is: zero grads, the model's forward and
 * backward into grads, one flat Adam loop. Adding a model means adding a file with a
 * trn_model_ops_t and one line in the table in model.c. */
#ifndef GNNREC_TRAINER_MODEL_H
#define GNNREC_TRAINER_MODEL_H

#include "engine/adam.h"
#include "engine/csr.h"
#include "engine/err.h"
#include "trainer/loss.h"
#include "trainer/sampler.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *model; /* model kind, e.g. "lightgcn" */
    int dim, layers;
    float lr, decay, margin;
    trn_loss_t loss;
    int batch;
    uint64_t seed;
    int threads;
} trn_hparams_t;

/* The paper's LightGCN defaults: dim 64, 3 layers, lr 1e-3, decay 1e-4, batch 2048, BPR. */
trn_hparams_t trn_hparams_defaults(void);

typedef struct trn_model trn_model_t;

typedef struct {
    const char *kind;
    /* Number of parameters for this data and these settings. */
    size_t (*n_params)(int32_t n_users, int32_t n_items, const trn_hparams_t *hp);
    /* Initialises m->params and builds m->impl from train (borrowed; outlives the model). */
    int (*init)(trn_model_t *m, const eng_csr_t *train);
    /* Forward and backward for one batch: ADDS the gradient of (mean ranking loss + regulariser)
     * into m->grads and returns the mean ranking loss (the regulariser excluded, as the papers
     * report it). */
    double (*batch_grad)(trn_model_t *m, const trn_batch_t *b);
    /* Final vectors, scored by inner product: user_vecs [n_users x dim], item_vecs [n_items x
     * dim] (any model-specific head folded in). */
    int (*vectors)(trn_model_t *m, float *user_vecs, float *item_vecs);
    void (*free_impl)(void *impl);
} trn_model_ops_t;

struct trn_model {
    const trn_model_ops_t *ops;
    trn_hparams_t hp;
    int32_t n_users, n_items;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v; /* views into one allocation of 4 * n_params */
    eng_adam_t adam;
    void *impl;
};

/* The ops for a kind name, or NULL when unknown. */
const trn_model_ops_t *trn_model_find(const char *kind);

/* A space-separated list of the known kinds (for help and error messages). */
const char *trn_model_kinds(void);

/* A new model of kind hp->model over train (borrowed; must outlive the model); NULL on failure
 * with err filled (unknown kind, bad settings, out of memory). */
trn_model_t *trn_model_new(const eng_csr_t *train, const trn_hparams_t *hp, eng_error_t *err);
void trn_model_free(trn_model_t *m);

/* One optimisation step on batch b: zero grads, batch_grad, Adam. Returns the batch loss. */
double trn_model_step(trn_model_t *m, const trn_batch_t *b);

#endif
