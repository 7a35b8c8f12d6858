/* The trainable-model interface: what a model declares, and the parameter block.
 *
 * A model is one file holding a trn_model_ops_t plus one line in the table in model.c. It
 * declares
 *   - its hyper-parameters: a config struct starting with trn_common_hp_t and a table describing
 *     every field (trainer/hparams.h), from which the command builds flags, help and `params`;
 *   - the inputs it needs: bits of trn_inputs_t beyond the interaction graph;
 *   - its training step over a batch of (user, positive, nneg negatives) from the shared sampler
 *     or from a sampler of its own (with the MSE loss: (user, item, rating), nneg 0, and the kind
 *     passes b->rating to the losses as their target);
 *   - what it publishes: the vectors the server ranks with by inner product, named views of its
 *     parameter block, each published with its optimizer moments, and any extra tensors its
 *     serving abilities need (trainer/publish.h).
 *
 * The weights live in one block `params` of n_params floats; `grads`, `adam_m` and `adam_v`
 * mirror its layout in the same allocation, so a step is: zero grads, the model's forward and
 * backward into grads, one flat Adam loop (a kind may keep its embedding table's gradient by
 * row instead: row_grads below). */
#ifndef GNNREC_TRAINER_MODEL_H
#define GNNREC_TRAINER_MODEL_H

#include "engine/adam.h"
#include "engine/csr.h"
#include "engine/err.h"
#include "engine/idmap.h"
#include "engine/rng.h"
#include "storage/store.h"
#include "trainer/eval.h"
#include "trainer/hparams.h"
#include "trainer/loss.h"
#include "trainer/sampler.h"

#include <stddef.h>
#include <stdint.h>

/* Knowledge-graph triples (head, relation, tail) over dense entity and relation indices. */
typedef struct {
    int64_t n;
    const int32_t *head, *rel, *tail; /* [n] */
    int32_t n_entities, n_relations;
    const int32_t *item_entity; /* [n_items]: each item's entity */
    /* the entities' and relations' names, for explanations; NULL when not known */
    const eng_idmap_t *entity_names, *relation_names;
} trn_triples_t;

/* What a model trains on. Everything is borrowed and outlives the model. Side data is NULL when
 * the run has none; the model's `needs` says which it requires. */
typedef struct {
    const eng_csr_t *train;      /* [n_users x n_items] each user's training items, sorted */
    const eng_csr_t *user_attrs; /* [n_users x n_user_values] attribute values of each user */
    const eng_csr_t *item_attrs; /* [n_items x n_item_values] attribute values of each item */
    const eng_csr_t *social;     /* [n_users x n_users] user-user edges */
    const trn_triples_t *kg;     /* knowledge graph with the item -> entity map */
} trn_inputs_t;

enum {
    TRN_NEEDS_USER_ATTRS = 1 << 0,
    TRN_NEEDS_ITEM_ATTRS = 1 << 1,
    TRN_NEEDS_SOCIAL = 1 << 2,
    TRN_NEEDS_KG = 1 << 3,
    /* trains on the knowledge graph alone: the run has no interaction log, no users, and the
     * graph's entities are its items (in->train is an empty [0 x n_entities]) */
    TRN_NEEDS_KG_ONLY = 1 << 4,
};

/* Whose rows a view's (or a published tensor's) first dimension indexes: publishing keeps only
 * the rows of trained users and items (those with a training interaction). */
typedef enum { TRN_ROWS_NONE, TRN_ROWS_USERS, TRN_ROWS_ITEMS } trn_rows_t;

/* A named [rows x cols] slice of the parameter block, starting at float `offset`. */
typedef struct {
    const char *name;
    size_t offset;
    int64_t rows, cols;
    trn_rows_t rows_of;
} trn_view_t;

#define TRN_MAX_VIEWS 64

/* A tensor published besides the parameter views: [rows x cols] of dtype (STO_F32 when left 0)
 * the model owns. A tensor of user or item rows must have 4-byte elements. */
typedef struct {
    const char *name;
    const void *data;
    int64_t rows, cols;
    trn_rows_t rows_of;
    sto_dtype_t dtype;
} trn_extra_t;

typedef struct trn_model trn_model_t;

typedef struct {
    const char *kind;  /* [a-z0-9_]: the --model name and the store's kind */
    const char *about; /* one line for help: the model and its paper */
    const trn_hparam_t *hparams;
    int n_hparams;
    size_t config_size; /* bytes of the config struct the table describes */
    unsigned needs;     /* TRN_NEEDS_*: inputs it cannot train without */
    unsigned uses;      /* TRN_NEEDS_*: side inputs it reads when the run has them */
    unsigned losses;    /* TRN_LOSS_BIT(l) of each loss it trains with; 0: every loss */
    /* Parameters for these inputs and settings. */
    size_t (*n_params)(const trn_inputs_t *in, const void *cfg);
    /* Length of the published user and item vectors. */
    int (*vec_dim)(const void *cfg);
    /* Initialises m->params (from m->seed) and builds m->impl; returns 0, ENG_ENOMEM, or another
     * negative code with err filled. */
    int (*init)(trn_model_t *m, eng_error_t *err);
    /* Optional: draws the next n training examples into b itself (b->nneg negatives each, the
     * capacity allocated for the kind's batch and negatives settings) instead of the shared
     * sampler, for a kind whose examples are not uniform (user, positive, negatives) triples
     * (subgraph or knowledge-graph sampling). NULL: the shared sampler (trainer/sampler.h). */
    void (*sample)(trn_model_t *m, trn_batch_t *b, int n);
    /* Optional, with sample: the examples in an epoch when it is not one pass over the training
     * interactions (transe: its training triples). */
    int64_t (*epoch_examples)(const trn_model_t *m);
    /* Optional: called after each epoch's batches, before its evaluation (kgat recomputes its
     * attention from the parameters there, as its paper's code does after each epoch). */
    void (*epoch_end)(trn_model_t *m);
    /* Optional: the kind's own evaluation instead of ranking its vectors on the test
     * interactions (transe: link prediction on the triples it held out), into out (zeroed by the
     * caller); runs whether or not the data has a test set. Returns 0 or a negative code. */
    int (*evaluate)(trn_model_t *m, trn_metrics_t *out);
    /* Optional: the model's own score of (user, item) pairs, out[k] for (users[k], items[k]),
     * when the inner product of its published vectors only approximates it (kgcn: an item's
     * representation depends on the user through the attention; its vectors use the mean
     * user's). Evaluation ranks by these. Returns 0 or a negative code. */
    int (*score)(trn_model_t *m, const int32_t *users, const int32_t *items, int64_t n, float *out);
    /* Forward and backward for one batch: ADDS the gradient of (mean loss + regulariser) into
     * m->grads, stores the regulariser's value in *reg and returns the mean loss (reported
     * without the regulariser, as the papers do). A kind with row gradients (m->row_grads.rows >
     * 0) leaves the first rows x dim floats of m->grads alone and points m->row_grads at their
     * gradient instead, valid until its next batch_grad. */
    double (*batch_grad)(trn_model_t *m, const trn_batch_t *b, double *reg);
    /* Final vectors, scored by inner product: user_vecs [n_users x vec_dim], item_vecs [n_items x
     * vec_dim] (any model-specific head folded in). Returns 0 or a negative code. */
    int (*vectors)(trn_model_t *m, float *user_vecs, float *item_vecs);
    /* Named views of the parameter block into out[TRN_MAX_VIEWS]; returns their count. */
    int (*views)(const trn_model_t *m, trn_view_t *out);
    /* Optional: what the server needs of the kind beyond the vectors (LightGCN's per-layer item
     * embeddings, which fold a new user in), into out[TRN_MAX_VIEWS]; returns the count, or a
     * negative code. The data stays valid until the next call on m. */
    int (*extras)(trn_model_t *m, trn_extra_t *out);
    void (*free_impl)(void *impl);
} trn_model_ops_t;

struct trn_model {
    const trn_model_ops_t *ops;
    const void *cfg;           /* the kind's config struct (owned copy) */
    const trn_common_hp_t *hp; /* its common part: cfg itself */
    const trn_inputs_t *in;    /* borrowed */
    int32_t n_users, n_items;
    uint64_t seed;
    int threads;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v; /* views into one allocation of 4 * n_params */
    /* Optional, set by a kind's init: the gradient of the table at the block's start (its node
     * embeddings) kept by row, for the rows a batch touches, instead of in grads, so that a
     * step's working memory does not grow with the table (graphsage: a batch reads the rows of
     * its sampled subgraph only). rows 0: none, the whole gradient is in grads. */
    eng_row_grads_t row_grads;
    eng_adam_t adam;
    void *impl;
};

/* The ops for a kind name, or NULL when unknown. */
const trn_model_ops_t *trn_model_find(const char *kind);

/* Every registered kind, in table order: *n gets the count. */
const trn_model_ops_t *const *trn_model_all(int *n);

/* A space-separated list of the known kinds (for help and error messages). */
const char *trn_model_kinds(void);

/* A new model of kind ops over in (borrowed; must outlive the model) with settings cfg (copied;
 * ops->config_size bytes). NULL on failure with err filled (missing input, out of memory). */
trn_model_t *trn_model_new(const trn_model_ops_t *ops, const void *cfg, const trn_inputs_t *in,
                           uint64_t seed, int threads, eng_error_t *err);
void trn_model_free(trn_model_t *m);

/* One optimisation step on batch b: zero grads, batch_grad, Adam. Returns the batch loss. With
 * row gradients, grads' rows of that table are neither zeroed nor read (their pages are never
 * touched), and Adam takes those rows' gradients from m->row_grads. */
double trn_model_step(trn_model_t *m, const trn_batch_t *b);

/* The RNG of one batch's random draws (dropout masks), seeded from (m->seed, m->adam.step): the
 * same draws for every batch_grad call until the next trn_model_step, so that evaluating a
 * batch's objective twice (the finite-difference test, a line search) sees one function. Every
 * stochastic kind draws from it, never from a generator that advances between calls. */
void trn_model_batch_rng(const trn_model_t *m, eng_rng_t *rng);

/* For the many kinds whose block begins with the user and then the item embedding tables,
 * [n_users x dim] and [n_items x dim]: fills out[0..2) with the views user_emb and item_emb and
 * returns 2. */
int trn_embedding_views(const trn_model_t *m, int64_t dim, trn_view_t *out);

/* A batch scored by inner product on a node table [(n_users + n_items) x dim] (users' rows
 * first, then items'): the rows the batch reads, its scores and their gradients, for batches of
 * up to cap positives with nneg negatives each. For the kinds whose whole forward ends in one
 * such table (gcn, ngcf). */
typedef struct {
    int32_t *ru, *rp;  /* [cap] the user and positive rows */
    int32_t *rn, *rnu; /* [cap x nneg] the negative rows, and the user row of each */
    float *pos, *neg, *dpos, *dneg;
} trn_scores_t;

/* Allocates s; returns 0 or ENG_ENOMEM. Free with trn_scores_free, also after a failure. */
int trn_scores_alloc(trn_scores_t *s, int cap, int nneg);
void trn_scores_free(trn_scores_t *s);

/* Fills s's rows for batch b: user u is row u, item i row m->n_users + i. */
void trn_scores_rows(trn_scores_t *s, const trn_model_t *m, const trn_batch_t *b);

/* The mean loss (hp->loss) of batch b scored on emb [.. x dim] at the rows s holds (from
 * trn_scores_rows, or renumbered by a kind whose table holds only the batch's nodes); ADDS its
 * gradient into demb [.. x dim]. */
double trn_scores_eval(trn_scores_t *s, float *demb, const float *emb, int dim,
                       const trn_model_t *m, const trn_batch_t *b);

/* trn_scores_rows, then trn_scores_eval. */
double trn_scores_loss(trn_scores_t *s, float *demb, const float *emb, int dim,
                       const trn_model_t *m, const trn_batch_t *b);

/* The regulariser decay / 2 / b->n * (sum of ||emb[r]||^2 over the rows of the last
 * trn_scores_loss's users, positives and negatives, each occurrence counted) of the LightGCN and
 * NGCF code; ADDS its gradient into demb and returns its value. */
double trn_scores_l2(const trn_scores_t *s, float *demb, const float *emb, int dim, float decay,
                     const trn_batch_t *b);

/* The model's final vectors into new arrays *user_vecs and *item_vecs (free both with free);
 * returns 0 or a negative code (both NULL then). */
int trn_model_vectors(trn_model_t *m, float **user_vecs, float **item_vecs);

#endif
