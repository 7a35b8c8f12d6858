/* Warm start: a new model begins from a published version's parameters where they still apply.
 *
 * For each parameter view of the new model, the version's `param.NAME` tensor (trainer/publish.h)
 * is copied in: for a view of user (item) rows, the row of each user (item) whose id the version
 * knows, matched by id, so users and items new in this run keep their fresh initialisation and
 * those gone are dropped; for any other view, the whole tensor when its shape is the view's. The
 * optimizer starts fresh (Adam's moments belong to the old run's loss surface and step count). */
#ifndef GNNREC_TRAINER_WARM_H
#define GNNREC_TRAINER_WARM_H

#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/model.h"

typedef struct {
    int64_t users, items; /* users' and items' rows copied (of the view with the most) */
    int views, skipped;   /* views copied in part or whole; views left fresh (absent, reshaped) */
} trn_warm_stats_t;

/* The names of the tensors trn_warm_start reads for m's kind, as sto_load takes them: a new
 * NULL-terminated array of new strings (free with trn_warm_names_free), or NULL when out of
 * memory. */
char **trn_warm_names(const trn_model_t *m);
void trn_warm_names_free(char **names);

/* Copies from's parameters into m (trained on d, not yet trained further) as above and fills
 * *st. Fails with ENG_EINVAL when from is of another kind or its rows have another width than
 * m's views (another dim): nothing useful could be copied; ENG_ENOMEM when out of memory. */
int trn_warm_start(trn_model_t *m, const trn_data_t *d, const sto_model_t *from,
                   trn_warm_stats_t *st, eng_error_t *err);

#endif
