/* The quality gate of a retrain: the new model against the live version, on this run's holdout.
 *
 * Both are scored as they are served, by the inner product of their published vectors (the new
 * model's trn_model_vectors, the version's stored ones), on the holdout restricted to the users
 * and items both know: test users the live version never saw, and items it cannot recommend,
 * would count against it for something the gate is not asking (is the new model worse where the
 * old one answers?). Training items of this run are excluded for both. */
#ifndef GNNREC_TRAINER_GATE_H
#define GNNREC_TRAINER_GATE_H

#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/eval.h"
#include "trainer/model.h"

/* Ranking metrics at ks of m (trained on d) into *now and of the version `live` into *then, on
 * d->test restricted as above (then->n_users counts the users evaluated, the same for both).
 * Fails with ENG_EINVAL when d has no test set, ENG_ENOMEM, or as trn_eval_ranking. */
int trn_gate_evaluate(trn_model_t *m, const trn_data_t *d, const sto_model_t *live, const int *ks,
                      int nk, trn_metrics_t *now, trn_metrics_t *then, eng_error_t *err);

#endif
