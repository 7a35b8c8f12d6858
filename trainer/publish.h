/* Publishing a trained model as a new version in the store.
 *
 * What a version holds: the id maps, user and item vectors and seen lists of the users and items
 * that have at least one training interaction (an id seen only in the test data has an untrained,
 * random vector: it is left out, so the server answers 404 for it and `models` does not count it;
 * a kind trained on the knowledge graph alone has no users and keeps every entity as an item),
 * and, for every named view of the parameter block, three tensors: `param.NAME`, `adam_m.NAME`
 * and `adam_v.NAME`, plus `adam.step` (int64 scalar), which is what a warm start needs, and the
 * kind's extras (what its serving abilities need) under their own names. Tensors of user or item
 * rows keep the same rows as the vectors, in the same order. */
#ifndef GNNREC_TRAINER_PUBLISH_H
#define GNNREC_TRAINER_PUBLISH_H

#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/model.h"

typedef struct {
    const char *name;         /* model name in the store */
    const char *params_json;  /* JSON object: the run's settings */
    const char *metrics_json; /* JSON object: final metrics ("{}" when none) */
} trn_publish_opts_t;

/* Publishes m, trained on d, into db (open read-write) as the next version of o->name and stores
 * its number in *version. Fails with err filled when there is nothing trained to publish, out of
 * memory, or the store refuses (then nothing of the version is visible). */
int trn_publish(sto_db_t *db, trn_model_t *m, const trn_data_t *d, const trn_publish_opts_t *o,
                int64_t *version, eng_error_t *err);

#endif
