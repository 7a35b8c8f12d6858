/* Fold-in for the kinds with trained layers: gcn (server/fold_gcn.c), ngcf (server/fold_ngcf.c)
 * and gat (server/fold_gat.c), and what they share (server/fold.c). Each kind's functions fill
 * its row of server/kinds.c: the tensors its fold-in loads, prepare (what it builds from a loaded
 * version, or the ability cleared when the version lacks those tensors), release and fold_in.
 *
 * The rule is the same for the three (docs/serving.md, "GCN, NGCF and GAT fold-in"): the new
 * user's vector is computed layer by layer with the kind's trained propagation rule, as the
 * trainer's forward computes a user whose layer-0 embedding is 0, from the items' per-layer
 * representations as trained (the new user joins no item's neighbourhood, so the items do not
 * move), with dropout off. The one-row arithmetic is the engine's (engine/vec.h), the trainer's
 * forwards run the same kernels per row. tests/test_foldin.c holds each fold_in to the trainer's
 * own forward. */
#ifndef GNNREC_SERVER_FOLD_H
#define GNNREC_SERVER_FOLD_H

#include "server/registry.h"
#include "storage/store.h"

#include <stddef.h>
#include <stdint.h>

/* The data of m's float32 tensor name when it is 2-d [rows x cols], else NULL (absent: a version
 * of an older trainer; or another shape). */
const float *srv_fold_tensor(const sto_model_t *m, const char *name, int64_t rows, int64_t cols);

/* A new array [n_items + 1] holding each item's training degree (its count over the seen lists,
 * which are the training graph), or NULL when out of memory. Free with free. */
int32_t *srv_fold_item_degrees(const sto_model_t *m);

extern const char *const srv_gcn_tensors[];
int srv_gcn_prepare(srv_version_t *v);
void srv_gcn_release(void *kind_data);
void srv_gcn_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q);

extern const char *const srv_ngcf_tensors[];
int srv_ngcf_prepare(srv_version_t *v);
void srv_ngcf_release(void *kind_data);
void srv_ngcf_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q);

extern const char *const srv_gat_tensors[];
int srv_gat_prepare(srv_version_t *v);
void srv_gat_release(void *kind_data);
void srv_gat_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q);

#endif
