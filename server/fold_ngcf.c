/* NGCF fold-in (server/fold.h; docs/serving.md, "GCN, NGCF and GAT fold-in").
 *
 * trainer/ngcf.c: over L = D^-1/2 A D^-1/2 (no self-loops), side = L E_l and
 *     E_{l+1} = LeakyReLU(side W_gc + b_gc) + LeakyReLU((E_l * side) W_bi + b_bi),
 * slope 0.2, and the vectors are [E_0 | norm(E_1) | ... | norm(E_L)], norm each row to unit
 * length. A new user u with the n items I has E_0(u) = 0 and side(u) = sum over i in I of
 * E_l(i) / sqrt(n d_i), d_i counting the new user's edge (training degree + 1). The items' E_0..
 * E_{L-1} are the tensor ngcf.item_layers [n_items x L*dim] the trainer publishes, the weights its
 * views param.W_gc_l, b_gc_l, W_bi_l, b_bi_l. */
#include "engine/vec.h"
#include "server/fold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 6  /* trainer/ngcf.c's NGCF_MAX_LAYERS */
#define SLOPE 0.2f    /* trainer/ngcf.c's NGCF_SLOPE */
#define N_PER_LAYER 4 /* W_gc, b_gc, W_bi, b_bi */

#define LAYER(l) "param.W_gc_" #l, "param.b_gc_" #l, "param.W_bi_" #l, "param.b_bi_" #l
const char *const srv_ngcf_tensors[] = {"ngcf.item_layers", LAYER(1), LAYER(2), LAYER(3),
                                        LAYER(4),           LAYER(5), LAYER(6), NULL};
#undef LAYER
_Static_assert(sizeof srv_ngcf_tensors / sizeof *srv_ngcf_tensors == 2 + MAX_LAYERS * N_PER_LAYER,
               "the item layers, then four tensors per layer");

typedef struct {
    int d, layers;                           /* the layers' width and L */
    const float *item_layers;                /* [n_items x L*d] E_0..E_{L-1} of every item */
    const float *t[MAX_LAYERS][N_PER_LAYER]; /* W_gc [d x d], b_gc [d], W_bi [d x d], b_bi [d] */
    int32_t *deg;                            /* [n_items] training degrees */
} ngcf_fold_t;

void srv_ngcf_release(void *kind_data)
{
    ngcf_fold_t *f = kind_data;
    free(f->deg);
    free(f);
}

int srv_ngcf_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int dim = m->info.dim;
    const sto_tensor_t *x = sto_model_tensor(m, "ngcf.item_layers");
    if (!x || x->ndim != 2 || x->shape[1] >= dim)
        goto off;
    /* dim = (L + 1) d and the item layers are L d wide */
    const int d = dim - (int)x->shape[1], L = (int)x->shape[1] / d;
    if (L < 1 || L > MAX_LAYERS || (int64_t)L * d != x->shape[1])
        goto off;
    ngcf_fold_t w = {.d = d, .layers = L};
    if (!(w.item_layers = srv_fold_tensor(m, "ngcf.item_layers", m->info.n_items, (int64_t)L * d)))
        goto off;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < N_PER_LAYER; k++)
            if (!(w.t[l][k] = srv_fold_tensor(m, srv_ngcf_tensors[1 + l * N_PER_LAYER + k],
                                              k % 2 ? 1 : d, d)))
                goto off;
    ngcf_fold_t *f = malloc(sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    *f = w;
    if (!(f->deg = srv_fold_item_degrees(m))) {
        free(f);
        return ENG_ENOMEM;
    }
    v->kind_data = f;
    v->fold_scratch = (size_t)(L + 4) * d; /* the layers' sides; E_l(u), E_l(u) * side, messages */
    return ENG_OK;
off: /* an older trainer's version, or not the layout this build knows */
    v->abilities &= ~SRV_CAN(SRV_ABILITY_FOLD_IN);
    return ENG_OK;
}

void srv_ngcf_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q)
{
    const ngcf_fold_t *f = v->kind_data;
    const int d = f->d, L = f->layers, dim = (L + 1) * d;
    float *side = q + dim, *e = side + (size_t)L * d, *pm = e + d, *zgc = pm + d, *zbi = zgc + d;
    memset(side, 0, (size_t)L * d * sizeof *side);
    for (size_t j = 0; j < n; j++) { /* every layer's side in one pass over the items */
        const float *row = f->item_layers + (size_t)items[j] * L * d;
        /* L's entry as trn_graph_norm_adj computes it */
        const float a = (float)(1.0 / sqrt((double)n * ((double)f->deg[items[j]] + 1.0)));
        for (int k = 0; k < L * d; k++)
            side[k] += a * row[k];
    }
    memset(q, 0, (size_t)d * sizeof *q); /* E_0(u) = 0 */
    memset(e, 0, (size_t)d * sizeof *e);
    for (int l = 0; l < L; l++) {
        const float *s = side + (size_t)l * d;
        for (int k = 0; k < d; k++)
            pm[k] = e[k] * s[k];
        eng_vecmat(zgc, s, f->t[l][0], f->t[l][1], d, d);
        eng_vecmat(zbi, pm, f->t[l][2], f->t[l][3], d, d);
        eng_lrelu(zgc, zgc, SLOPE, (size_t)d);
        eng_lrelu(zbi, zbi, SLOPE, (size_t)d);
        for (int k = 0; k < d; k++)
            e[k] = zgc[k] + zbi[k]; /* E_{l+1}(u) */
        eng_l2norm(q + (size_t)(l + 1) * d, e, d);
    }
}
