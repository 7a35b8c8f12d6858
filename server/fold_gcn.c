/* GCN fold-in (server/fold.h; docs/serving.md, "GCN, NGCF and GAT fold-in").
 *
 * trainer/gcn.c: H_l = ReLU(Â H_{l-1} W_l) over the user-item graph with self-loops, Â = D^-1/2
 * (A + I) D^-1/2, and the vectors are [H_0 | H_1 | ... | H_L]. A new user u with the n items I
 * has H_0(u) = 0 and, for l = 1..L,
 *     H_l(u) = ReLU((H_{l-1}(u) / (n + 1) + sum over i in I of H_{l-1}(i) / sqrt((n + 1) d_i)) W_l)
 * where d_i, the item's degree in A + I, counts the new user's edge: training degree + 2. The
 * items' layers H_0..H_{L-1} are the first L blocks of their published vectors, which the index
 * holds: no tensor beyond the weights param.W1..WL is needed. */
#include "engine/vec.h"
#include "server/fold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 6 /* trainer/gcn.c's GCN_MAX_LAYERS */

const char *const srv_gcn_tensors[] = {"param.W1", "param.W2", "param.W3", "param.W4",
                                       "param.W5", "param.W6", NULL};
_Static_assert(sizeof srv_gcn_tensors / sizeof *srv_gcn_tensors == MAX_LAYERS + 1,
               "a weight per layer");

typedef struct {
    int d, layers;              /* the layers' width and L: the vectors are (L + 1) d wide */
    const float *w[MAX_LAYERS]; /* [d x d] param.W1..WL, borrowed from the version's model */
    int32_t *deg;               /* [n_items] training degrees */
} gcn_fold_t;

void srv_gcn_release(void *kind_data)
{
    gcn_fold_t *f = kind_data;
    free(f->deg);
    free(f);
}

int srv_gcn_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int dim = m->info.dim;
    int L = 0;
    while (L < MAX_LAYERS && sto_model_tensor(m, srv_gcn_tensors[L]))
        L++;
    if (L == 0 || dim % (L + 1) != 0)
        goto off;
    const int d = dim / (L + 1);
    const float *w[MAX_LAYERS];
    for (int l = 0; l < L; l++)
        if (!(w[l] = srv_fold_tensor(m, srv_gcn_tensors[l], d, d)))
            goto off;
    gcn_fold_t *f = calloc(1, sizeof *f);
    if (!f || !(f->deg = srv_fold_item_degrees(m))) {
        free(f);
        return ENG_ENOMEM;
    }
    f->d = d;
    f->layers = L;
    memcpy(f->w, w, (size_t)L * sizeof *w);
    v->kind_data = f;
    v->fold_scratch = (size_t)dim + (size_t)L * d; /* an item's vector; the items' sums */
    return ENG_OK;
off: /* an older trainer's version, or not the layout this build knows */
    v->abilities &= ~SRV_CAN(SRV_ABILITY_FOLD_IN);
    return ENG_OK;
}

void srv_gcn_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q)
{
    const gcn_fold_t *f = v->kind_data;
    const int d = f->d, L = f->layers, dim = (L + 1) * d;
    float *row = q + dim, *sum = row + dim; /* sum [L x d]: layer l's items' share of Â H_l(u) */
    memset(sum, 0, (size_t)L * d * sizeof *sum);
    const double du = (double)n + 1.0; /* the new user's degree in A + I */
    for (size_t j = 0; j < n; j++) {
        eng_index_vector(v->dot, items[j], row); /* [H_0 | ... | H_L] of the item */
        /* Â's entry as trn_graph_norm_adj computes it */
        const float a = (float)(1.0 / sqrt(du * ((double)f->deg[items[j]] + 2.0)));
        for (int k = 0; k < L * d; k++)
            sum[k] += a * row[k];
    }
    const float self = (float)(1.0 / sqrt(du * du));
    memset(q, 0, (size_t)d * sizeof *q); /* H_0(u) = 0 */
    for (int l = 1; l <= L; l++) {
        float *s = sum + (size_t)(l - 1) * d;
        const float *prev = q + (size_t)(l - 1) * d;
        for (int k = 0; k < d; k++)
            s[k] += self * prev[k];
        eng_vecmat(q + (size_t)l * d, s, f->w[l - 1], NULL, d, d);
        eng_lrelu(q + (size_t)l * d, q + (size_t)l * d, 0.0f, (size_t)d);
    }
}
