/* The model kinds table and the abilities table. */
#include "server/kinds.h"
#include "engine/err.h"
#include "server/explain.h"
#include "server/fold.h"
#include "server/registry.h"
#include "server/fold_sage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One row per ability, in enum order. A new ability needs a row here, a route that checks it,
 * and a column in the kinds below: the count is asserted so that it cannot be half-added. */
static const struct {
    const char *name, *refusal;
} abilities[] = {
    [SRV_ABILITY_FOLD_IN] = {"fold-in", "fold in new users"},
    [SRV_ABILITY_EXPLAIN] = {"explain", "explain recommendations"},
};
_Static_assert(SRV_ABILITY_COUNT == 2,
               "a new ability needs a name, a route and kinds that have it");
_Static_assert(sizeof abilities / sizeof *abilities == SRV_ABILITY_COUNT,
               "one row per ability in the abilities table");

/* No tensors beyond what every version has (ids, vectors, seen lists). */
static const char *const no_tensors[] = {NULL};

/* ---- LightGCN fold-in ----
 *
 * LightGCN's propagation gives a user who interacted with the items I, at layer k + 1,
 *     e_u(k+1) = sum over i in I of e_i(k) / sqrt(|I| d_i),
 * and the user's vector is the mean of layers 0..L. A user the model has never seen has no
 * layer-0 embedding (taken as 0); the items' layers e_i(0..L-1) are the trained ones, published
 * as the tensor lgn.item_layers [n_items x L*dim], and d_i counts the new user's edge (the
 * training degree + 1). So the new user is one step of the trained propagation, with the items
 * as they are: the graph is not re-propagated, which would move the items too. */

static const char *const lightgcn_tensors[] = {"lgn.item_layers", NULL};

typedef struct {
    const float *layers; /* [n_items x L*dim]: lgn.item_layers */
    int n_layers;        /* L */
    float *inv_sqrt_deg; /* [n_items]: 1 / sqrt(training degree + 1) */
} lightgcn_fold_t;

static void lightgcn_release(void *data)
{
    lightgcn_fold_t *f = data;
    free(f->inv_sqrt_deg);
    free(f);
}

static int lightgcn_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int32_t n_items = m->info.n_items, dim = m->info.dim;
    const sto_tensor_t *t = sto_model_tensor(m, "lgn.item_layers");
    if (!t || t->dtype != STO_F32 || t->ndim != 2 || t->shape[0] != n_items ||
        t->shape[1] % dim != 0 || t->shape[1] == 0) {
        v->abilities &= ~SRV_CAN(SRV_ABILITY_FOLD_IN); /* an older trainer's version */
        return ENG_OK;
    }
    lightgcn_fold_t *f = calloc(1, sizeof *f);
    int32_t *deg = srv_fold_item_degrees(m);
    if (!f || !deg ||
        !(f->inv_sqrt_deg = malloc(((size_t)n_items + 1) * sizeof *f->inv_sqrt_deg))) {
        free(f);
        free(deg);
        return ENG_ENOMEM;
    }
    f->layers = t->data;
    f->n_layers = (int)(t->shape[1] / dim);
    for (int32_t i = 0; i < n_items; i++)
        f->inv_sqrt_deg[i] = 1.0f / sqrtf((float)deg[i] + 1.0f);
    free(deg);
    v->kind_data = f;
    return ENG_OK;
}

static void lightgcn_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q)
{
    const lightgcn_fold_t *f = v->kind_data;
    const int dim = v->model->info.dim, L = f->n_layers;
    const float su = 1.0f / sqrtf((float)n);
    memset(q, 0, (size_t)dim * sizeof *q);
    for (size_t j = 0; j < n; j++) {
        const float *row = f->layers + (size_t)items[j] * L * dim;
        const float w = su * f->inv_sqrt_deg[items[j]];
        for (int l = 0; l < L; l++)
            for (int d = 0; d < dim; d++)
                q[d] += w * row[l * dim + d];
    }
    for (int d = 0; d < dim; d++)
        q[d] /= (float)(L + 1);
}

static const srv_kind_t kinds[] = {
    {"gat", SRV_CAN(SRV_ABILITY_FOLD_IN), srv_gat_tensors, srv_gat_prepare, srv_gat_release,
     srv_gat_fold_in, NULL},
    {"gcn", SRV_CAN(SRV_ABILITY_FOLD_IN), srv_gcn_tensors, srv_gcn_prepare, srv_gcn_release,
     srv_gcn_fold_in, NULL},
    {"graphsage", SRV_CAN(SRV_ABILITY_FOLD_IN), srv_sage_tensors, srv_sage_prepare,
     srv_sage_release, srv_sage_fold_in, NULL},
    {"kgat", SRV_CAN(SRV_ABILITY_EXPLAIN), srv_kgat_tensors, srv_kgat_prepare, srv_kgat_release,
     NULL, srv_kgat_explain},
    {"lightgcn", SRV_CAN(SRV_ABILITY_FOLD_IN), lightgcn_tensors, lightgcn_prepare, lightgcn_release,
     lightgcn_fold_in, NULL},
    {"mf", 0, no_tensors, NULL, NULL, NULL, NULL},
    {"ngcf", SRV_CAN(SRV_ABILITY_FOLD_IN), srv_ngcf_tensors, srv_ngcf_prepare, srv_ngcf_release,
     srv_ngcf_fold_in, NULL},
    /* the entities are its items and it has no users: similar items only */
    {"transe", 0, no_tensors, NULL, NULL, NULL, NULL},
};

/* A kind this build does not know: served by inner product like every kind, nothing more. */
static const srv_kind_t fallback = {NULL, 0, no_tensors, NULL, NULL, NULL, NULL};

size_t srv_fold_floats(const srv_version_t *v, size_t n)
{
    return (size_t)v->model->info.dim + v->fold_scratch + v->fold_scratch_per_item * n;
}

const srv_kind_t *srv_kind_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return &fallback;
}

int srv_kind_can(const srv_kind_t *k, srv_ability_t a)
{
    return (k->abilities & SRV_CAN(a)) != 0;
}

const char *srv_node_name(srv_node_t t)
{
    return t == SRV_NODE_USER ? "user" : t == SRV_NODE_ITEM ? "item" : "entity";
}

const char *srv_ability_name(srv_ability_t a)
{
    return abilities[a].name;
}

const char *srv_ability_refusal(srv_ability_t a)
{
    return abilities[a].refusal;
}
