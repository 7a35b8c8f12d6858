/* Loaded model versions and the registry that serves them.
 *
 * A srv_version_t is immutable once built and refcounted: a request takes a reference when it
 * starts and drops it when its response is done; the registry holds one for the current version
 * of each model. Swapping in a new version replaces the registry's pointer under a mutex held for
 * a few instructions; the old version is freed by whoever drops its last reference, so requests
 * in flight finish on the version they started with. */
#ifndef GNNREC_SERVER_REGISTRY_H
#define GNNREC_SERVER_REGISTRY_H

#include "engine/index.h"
#include "server/kinds.h"
#include "storage/store.h"

#include <stdatomic.h>
#include <stddef.h>

typedef struct {
    atomic_int refs;
    sto_model_t *model;     /* ids, user vectors, seen lists, info; item_vecs is NULL */
    const srv_kind_t *kind; /* the row of model->info.kind (the fallback row when unknown) */
    eng_index_t *dot;       /* item vectors laid out for top-K by inner product */
    eng_index_t *cos;       /* unit item vectors, for similar items */
    char loaded_at[32];     /* ISO-8601 UTC */
    double loaded_unix;
} srv_version_t;

/* A new version with one reference, built from m (taken: freed with the version, also on
 * failure). The item vectors move into the two indexes: m->item_vecs is freed and set to NULL
 * once they are built (read items with eng_index_vector and eng_index_scores). NULL with err
 * filled when out of memory. */
srv_version_t *srv_version_new(sto_model_t *m, eng_error_t *err);
srv_version_t *srv_version_ref(srv_version_t *v);
/* Drops a reference; the last one frees the version. NULL is fine. */
void srv_version_unref(srv_version_t *v);
/* Versions currently alive (in the registry or held by requests). */
int srv_versions_alive(void);

typedef struct srv_registry srv_registry_t;

srv_registry_t *srv_registry_new(void);
/* Drops the registry's references. */
void srv_registry_free(srv_registry_t *r);

enum { SRV_ACQ_OK = 0, SRV_ACQ_NONE = -1, SRV_ACQ_UNKNOWN = -2, SRV_ACQ_AMBIGUOUS = -3 };

/* A new reference to the current version of model name; with name NULL, of the only loaded
 * model. Returns NULL and sets *why to SRV_ACQ_NONE (nothing loaded), SRV_ACQ_UNKNOWN (no such
 * model) or SRV_ACQ_AMBIGUOUS (name NULL and several models loaded). */
srv_version_t *srv_registry_acquire(srv_registry_t *r, const char *name, int *why);

/* Installs v (its reference is taken) as the current version of its model, and drops the
 * registry's reference to the version it replaces. Returns 0 or ENG_ENOMEM (v dropped). */
int srv_registry_swap(srv_registry_t *r, srv_version_t *v);

/* How many models have a current version. */
int srv_registry_count(srv_registry_t *r);

/* The version number loaded for model name, or 0. */
int64_t srv_registry_version(srv_registry_t *r, const char *name);

/* New references to every current version, sorted by name, in a new array (free each with
 * srv_version_unref and the array with free). Returns the count, or -1 when out of memory. */
int srv_registry_snapshot(srv_registry_t *r, srv_version_t ***out);

#endif
