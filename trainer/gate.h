/* The quality gate of a retrain: the new model against the live version, on this run's holdout.
 *
 * Both are scored as they are served, by the inner product of their published vectors (the new
 * model's trn_model_vectors, the version's stored ones), on a fresh holdout that neither has
 * trained on: the run's held-out interactions of the users and items both know, less those in
 * the live version's seen lists (a version refitted on its own holdout, or trained before this
 * run's split moved, has learned them: testing it on them would flatter it). Those, and the
 * run's training items, are excluded from both rankings. Test users the live version never saw,
 * and items it cannot recommend, are left out: they would count against it for something the
 * gate is not asking (is the new model worse where the old one answers?). */
#ifndef GNNREC_TRAINER_GATE_H
#define GNNREC_TRAINER_GATE_H

#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/eval.h"
#include "trainer/model.h"

/* Ranking metrics at ks of m (trained on d) into *now and of the version `live` into *then, on
 * d->test restricted as above (n_users counts the users evaluated, the same for both; 0 when
 * there is no fresh interaction to test).
 * Fails with ENG_EINVAL when d has no test set, ENG_ENOMEM, or as trn_eval_ranking. */
int trn_gate_evaluate(trn_model_t *m, const trn_data_t *d, const sto_model_t *live, const int *ks,
                      int nk, trn_metrics_t *now, trn_metrics_t *then, eng_error_t *err);

#endif
