/* Loaded model versions, the registry that serves them, and the reaper that frees them.
 *
 * A srv_version_t is immutable once built and refcounted: a request takes a reference when it
 * starts and drops it when its response is done; the registry holds one for the current version
 * of each model. Swapping in a new version replaces the registry's pointer under a mutex held for
 * a few instructions, so requests in flight finish on the version they started with. Freeing a
 * version (tens of MB, then malloc_trim) is kept off the request path: whichever thread drops the
 * last reference, a version built with a reaper is queued to it and freed on the libuv loop
 * thread. */
#ifndef GNNREC_SERVER_REGISTRY_H
#define GNNREC_SERVER_REGISTRY_H

#include "engine/clock.h"
#include "engine/index.h"
#include "server/kinds.h"
#include "storage/store.h"

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

typedef struct srv_reaper srv_reaper_t;

typedef struct srv_version {
    atomic_int refs;
    srv_reaper_t *reaper;     /* frees it once unreferenced, or NULL: whoever drops the last ref */
    struct srv_version *next; /* in the reaper's queue */
    sto_model_t *model;       /* ids, user vectors, seen lists, info; item_vecs is NULL */
    const srv_kind_t *kind;   /* the row of model->info.kind (the fallback row when unknown) */
    unsigned abilities;       /* the kind's, less those this version lacks the tensors for */
    void *kind_data;          /* what kind->prepare built for the abilities, or NULL */
    eng_index_t *dot;         /* item vectors laid out for top-K by inner product */
    eng_index_t *cos;         /* unit item vectors, for similar items */
    char loaded_at[ENG_UTC_LEN]; /* ISO-8601 UTC */
    double loaded_unix;
    /* Floats of scratch kind->fold_in needs after q[dim] for a user of n items: fold_scratch +
     * fold_scratch_per_item * n (set by kind->prepare; 0 when none). */
    size_t fold_scratch, fold_scratch_per_item;
} srv_version_t;

/* A new version with one reference, built from m (taken: freed with the version, also on
 * failure), to be freed by reaper (borrowed; must outlive the version) or, with reaper NULL, by
 * the thread that drops its last reference. The item vectors move into the two indexes:
 * m->item_vecs is freed and set to NULL once they are built (read items with eng_index_vector and
 * eng_index_scores). NULL with err filled when out of memory. */
srv_version_t *srv_version_new(sto_model_t *m, srv_reaper_t *reaper, eng_error_t *err);
srv_version_t *srv_version_ref(srv_version_t *v);
/* Drops a reference (any thread; NULL is fine). The last one hands the version to its reaper,
 * which frees it later on the loop thread; a version without a reaper (built outside a running
 * server, as the tests do) is freed here, on the calling thread, and malloc_trim'd. */
void srv_version_unref(srv_version_t *v);
/* Versions in memory: in the registry, held by requests, or unreferenced and queued to a reaper
 * but not yet freed. The loader waits for this to come down to the registry's count before it
 * loads more (memory stays at old + new). */
int srv_versions_alive(void);

/* Called on the loop thread after a version queued to the reaper is freed (its name and number;
 * srv_versions_alive no longer counts it). */
typedef void srv_reaped_fn(void *arg, const char *name, int64_t version);

/* A new reaper on loop (on the loop thread): versions built with it and released on any thread
 * are freed by the loop thread, each followed by malloc_trim and reaped(arg, ...). NULL when out
 * of memory or when libuv cannot set up its async handle. */
srv_reaper_t *srv_reaper_new(uv_loop_t *loop, srv_reaped_fn *reaped, void *arg);

/* Closes the reaper's loop handle (on the loop thread, so that uv_run can return). Versions
 * released afterwards, or still queued, wait for srv_reaper_free; reaped is not called again. */
void srv_reaper_close(srv_reaper_t *r);

/* Frees the versions still queued, then r (after uv_run has returned; NULL is fine). Every
 * version built with r must be released by then: none may hold a pointer to it afterwards. */
void srv_reaper_free(srv_reaper_t *r);

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
