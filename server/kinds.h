/* What each model kind can do beyond inner-product ranking: one row per kind.
 *
 * Every version is served by inner product (recommendations, similar items, scores) whatever its
 * kind. The rows here add what varies by kind: abilities (answering POST /v1/recommend for a user
 * the model has never seen; explaining a recommendation) and the named store tensors a kind needs
 * in memory to exercise them, and the functions that do so. An ability is a route that answers 422
 * for a version whose kind lacks it (docs/serving.md, "Model kinds"). A kind this build does not
 * know (a store written by a newer trainer) gets the fallback row: inner product only. */
#ifndef GNNREC_SERVER_KINDS_H
#define GNNREC_SERVER_KINDS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SRV_ABILITY_FOLD_IN, /* rank for a user the model has never seen, from the request's items */
    SRV_ABILITY_EXPLAIN, /* paths linking a user to a recommended item */
    SRV_ABILITY_COUNT
} srv_ability_t;

#define SRV_CAN(a) (1u << (a))

struct srv_version;

/* Nodes of a path at most: user -> item -> entity -> item. */
#define SRV_PATH_NODES 4

typedef enum { SRV_NODE_USER, SRV_NODE_ITEM, SRV_NODE_ENTITY } srv_node_t;

/* One path from the user to the item: n nodes, each a user, an item or an entity of the
 * knowledge graph, by name; the relation of each of the n - 1 hops; and its weight, the product
 * of the hops' attention. The names are the version's (valid while it is held). */
typedef struct {
    int n;
    float weight;
    srv_node_t type[SRV_PATH_NODES];
    const char *name[SRV_PATH_NODES];
    const char *rel[SRV_PATH_NODES - 1];
} srv_path_t;

/* Static text: "user", "item", "entity". */
const char *srv_node_name(srv_node_t t);

typedef struct {
    const char *name;           /* as in the store's models.kind; NULL in the fallback row */
    unsigned abilities;         /* SRV_CAN(SRV_ABILITY_...) bits */
    const char *const *tensors; /* store tensors its abilities need in memory, NULL-terminated
                                 * (the loader reads only these, never optimizer state) */
    /* Builds what the abilities need from a loaded version into v->kind_data, and clears from
     * v->abilities an ability the version lacks the tensors for (a version published by an older
     * trainer). Returns 0 or ENG_ENOMEM. NULL: nothing to build. */
    int (*prepare)(struct srv_version *v);
    void (*release)(void *kind_data);
    /* Fold-in: q[dim] = the vector of a user the model has not seen who interacted with items
     * (n > 0 item indices, sorted, unique). q is followed by the scratch the version asks for
     * (v->fold_scratch + v->fold_scratch_per_item * n floats), which fold_in may overwrite.
     * Needed by SRV_ABILITY_FOLD_IN. */
    void (*fold_in)(const struct srv_version *v, const int32_t *items, size_t n, float *q);
    /* Explain: up to max paths from the version's user `user` to its item `item`, strongest
     * first, into out; returns their count (0: none). Needed by SRV_ABILITY_EXPLAIN. */
    int (*explain)(const struct srv_version *v, int32_t user, int32_t item, srv_path_t *out,
                   int max);
} srv_kind_t;

/* How many floats a fold-in of n items writes: the query vector q[dim], then the scratch the
 * version's kind asks for. Whoever calls fold_in allocates that many. */
size_t srv_fold_floats(const struct srv_version *v, size_t n);

/* The row of kind name; for a name no row has (or NULL), the fallback row, whose name is NULL and
 * which has no abilities and no tensors. Never NULL; the rows are static. */
const srv_kind_t *srv_kind_find(const char *name);

/* Non-zero when kind k has ability a. */
int srv_kind_can(const srv_kind_t *k, srv_ability_t a);

/* Static text: the ability's name ("fold-in", "explain") and what a kind without it cannot do,
 * completing "model M vN (kind K) cannot ..." ("fold in new users", "explain recommendations"). */
const char *srv_ability_name(srv_ability_t a);
const char *srv_ability_refusal(srv_ability_t a);

#endif
