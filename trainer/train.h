/* The training loop: epochs of sampled batches, periodic evaluation, callbacks for progress.
 *
 * An epoch draws as many positives as there are training interactions (users uniform), in batches
 * of the model's `batch` setting with a smaller last batch, as the LightGCN code; with the MSE
 * loss, as many rated pairs (pairs uniform, no negatives); a kind may count its epoch otherwise
 * (trn_model_ops_t.epoch_examples: transe's training triples). Nothing here prints: the caller sees
 * progress through the callbacks. */
#ifndef GNNREC_TRAINER_TRAIN_H
#define GNNREC_TRAINER_TRAIN_H

#include "trainer/data.h"
#include "trainer/eval.h"
#include "trainer/model.h"

typedef struct {
    int epoch;
    double loss; /* mean batch loss */
    int batches;
    double train_s;
    int evaluated; /* metrics below are valid */
    trn_metrics_t metrics;
    double eval_s;
} trn_epoch_t;

typedef struct {
    int epochs;
    int eval_every; /* evaluate every N epochs; 0: only after the last; no test set: never */
    int ks[TRN_EVAL_MAX_K];
    int nk;
    int max_batches; /* > 0: stop each epoch after this many batches (timing runs) */
    /* Called after every batch and every epoch; may be NULL. */
    void (*on_batch)(void *ud, int epoch, int batch, int n_batches, double loss);
    void (*on_epoch)(void *ud, const trn_epoch_t *e);
    void *ud;
} trn_train_opts_t;

/* Trains m on d for o->epochs epochs and fills epochs[0..o->epochs) (caller-provided). Returns 0,
 * or a negative code with err filled (no user can form a triple, the MSE loss without ratings in
 * d->train or with a kind that has its own sampler, out of memory). */
int trn_train_run(trn_model_t *m, const trn_data_t *d, const trn_train_opts_t *o,
                  trn_epoch_t *epochs, eng_error_t *err);

/* The examples in one of m's epochs on d: d's training interactions, unless the kind says. */
int64_t trn_train_epoch_examples(const trn_model_t *m, const trn_data_t *d);

/* The kind's own evaluation when it has one (transe's link prediction), else the model's final
 * vectors evaluated on d->test (then d->test must not be NULL): ranking and AUC with F1
 * (negatives seeded by the model's seed), and with the MSE loss RMSE and MAE on the test ratings.
 */
int trn_train_evaluate(trn_model_t *m, const trn_data_t *d, const int *ks, int nk,
                       trn_metrics_t *out);

#endif
