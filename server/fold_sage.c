/* GraphSAGE's fold-in on the server (server/fold_sage.h). */
#include "server/fold_sage.h"
#include "server/fold.h"

#include "engine/err.h"
#include "engine/sage.h"
#include "server/registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define LAYER_TENSORS(k)                                                                           \
    "param.W" #k, "param.P" #k, "param.pb" #k, "param.Lx" #k, "param.Lh" #k, "param.lb" #k
const char *const srv_sage_tensors[] = {"sage.item_layers", LAYER_TENSORS(1), LAYER_TENSORS(2),
                                        LAYER_TENSORS(3),   LAYER_TENSORS(4), NULL};
_Static_assert(ENG_SAGE_MAX_LAYERS == 4, "one LAYER_TENSORS per layer the trainer can build");

typedef struct {
    eng_sage_t layers;
    const float *item_layers; /* [n_items x K dim]: sage.item_layers */
} sage_fold_t;

/* The data of float32 tensor "param.<name><k>" of m when it is [rows x cols], else NULL. */
static const float *weight(const sto_model_t *m, const char *name, int k, int64_t rows,
                           int64_t cols)
{
    char full[32];
    snprintf(full, sizeof full, "param.%s%d", name, k);
    return srv_fold_tensor(m, full, rows, cols);
}

/* The version's aggregator from its params ({"aggregator": "mean", ...}), or -1. */
static int aggregator(const sto_model_t *m)
{
    json_t *p = m->info.params_json ? json_loads(m->info.params_json, 0, NULL) : NULL;
    int a = eng_sage_agg_find(json_string_value(json_object_get(p, "aggregator")));
    json_decref(p);
    return a;
}

int srv_sage_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int64_t n_items = m->info.n_items, d = m->info.dim;
    const sto_tensor_t *t = sto_model_tensor(m, "sage.item_layers");
    eng_sage_t s = {.dim = (int)d};
    int a = aggregator(m), ok = a >= 0 && d >= 1 && d <= ENG_SAGE_MAX_DIM && t &&
                                t->dtype == STO_F32 && t->ndim == 2 && t->shape[0] == n_items &&
                                t->shape[1] % d == 0 && t->shape[1] >= d &&
                                t->shape[1] <= ENG_SAGE_MAX_LAYERS * d;
    if (ok) {
        s.layers = (int)(t->shape[1] / d);
        s.agg = (eng_sage_agg_t)a;
    }
    for (int l = 0; ok && l < s.layers; l++) {
        ok &= (s.w[l] = weight(m, "W", l + 1, 2 * d, d)) != NULL;
        if (a == ENG_SAGE_POOL) {
            ok &= (s.aw[l] = weight(m, "P", l + 1, d, d)) != NULL;
            ok &= (s.ab[l] = weight(m, "pb", l + 1, 1, d)) != NULL;
        } else if (a == ENG_SAGE_LSTM) {
            ok &= (s.aw[l] = weight(m, "Lx", l + 1, d, 4 * d)) != NULL;
            ok &= (s.ah[l] = weight(m, "Lh", l + 1, d, 4 * d)) != NULL;
            ok &= (s.ab[l] = weight(m, "lb", l + 1, 1, 4 * d)) != NULL;
        }
    }
    if (!ok) {
        v->abilities &= ~SRV_CAN(SRV_ABILITY_FOLD_IN);
        return ENG_OK;
    }
    sage_fold_t *f = malloc(sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    f->layers = s;
    f->item_layers = t->data;
    v->kind_data = f;
    return ENG_OK;
}

void srv_sage_release(void *kind_data)
{
    free(kind_data);
}

void srv_sage_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q)
{
    const sage_fold_t *f = v->kind_data;
    float scratch[ENG_SAGE_SCRATCH(f->layers.dim)]; /* at most 160 KiB: dim <= ENG_SAGE_MAX_DIM */
    eng_sage_fold_in(&f->layers, q, f->item_layers, items, (int64_t)n, NULL, scratch);
}
