/* GAT fold-in (server/fold.h; docs/serving.md, "GCN, NGCF and GAT fold-in").
 *
 * trainer/gat.c: over the user-item graph with a self-loop on every node, layer l and head h
 * compute z = x_l W_lh, (s, t) = z a_lh, alpha = the softmax over each node's row of
 * LeakyReLU_0.2(s_i + t_j), and o_i = sum_j alpha_ij z_j; hidden layers concatenate the heads and
 * apply ELU to give x_{l+1}, the last averages them, and that is the vector. A new user u with
 * the n items I has x_0(u) = 0; its row holds its self-loop and I, so at every layer and head
 *     z_u = x_l(u) W_lh,  (s_u, t_u) = z_u a_lh,
 *     alpha = softmax(LeakyReLU(s_u + t_u), LeakyReLU(s_u + t_i) for i in I),
 *     o_u = alpha_u z_u + sum over i in I of alpha_i z_i.
 * The items' z for every layer and head are the tensor gat.item_z [n_items x L*H*dim] the trainer
 * publishes (their t is computed here once per version); the weights its views param.W<l>.h<h>
 * and param.a<l>.h<h>. */
#include "engine/vec.h"
#include "server/fold.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 3 /* trainer/gat.c's GAT_MAX_LAYERS */
#define MAX_HEADS 8  /* trainer/gat.c's GAT_MAX_HEADS */
#define SLOPE 0.2f   /* trainer/gat.c's GAT_SLOPE */

#define HEAD(l, h) "param.W" #l ".h" #h, "param.a" #l ".h" #h
#define LAYER(l)                                                                                   \
    HEAD(l, 1), HEAD(l, 2), HEAD(l, 3), HEAD(l, 4), HEAD(l, 5), HEAD(l, 6), HEAD(l, 7), HEAD(l, 8)
const char *const srv_gat_tensors[] = {"gat.item_z", LAYER(1), LAYER(2), LAYER(3), NULL};
#undef LAYER
#undef HEAD
_Static_assert(sizeof srv_gat_tensors / sizeof *srv_gat_tensors == 2 + 2 * MAX_LAYERS * MAX_HEADS,
               "the items' z, then W and a per layer and head");

/* The names of layer l's (from 0) head h's W and a. */
static const char *w_name(int l, int h)
{
    return srv_gat_tensors[1 + 2 * (l * MAX_HEADS + h)];
}

static const char *a_name(int l, int h)
{
    return srv_gat_tensors[2 + 2 * (l * MAX_HEADS + h)];
}

typedef struct {
    int d, layers, heads;                  /* width of a head, L, H */
    const float *z;                        /* [n_items x L*H*d] gat.item_z */
    const float *w[MAX_LAYERS][MAX_HEADS]; /* [din_l x d], din_0 = d, din_l = H d after */
    const float *a[MAX_LAYERS][MAX_HEADS]; /* [d x 2]: a_src, a_dst */
    float *t;                              /* [n_items x L*H] each item's t = z a_dst */
} gat_fold_t;

void srv_gat_release(void *kind_data)
{
    gat_fold_t *f = kind_data;
    free(f->t);
    free(f);
}

int srv_gat_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int d = m->info.dim;
    gat_fold_t w = {.d = d};
    while (w.layers < MAX_LAYERS && sto_model_tensor(m, w_name(w.layers, 0)))
        w.layers++;
    while (w.heads < MAX_HEADS && sto_model_tensor(m, w_name(0, w.heads)))
        w.heads++;
    const int L = w.layers, H = w.heads;
    if (L == 0 || H == 0)
        goto off;
    const int64_t lh = (int64_t)L * H;
    if (!(w.z = srv_fold_tensor(m, "gat.item_z", m->info.n_items, lh * d)))
        goto off;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            if (!(w.w[l][h] = srv_fold_tensor(m, w_name(l, h), l ? (int64_t)H * d : d, d)) ||
                !(w.a[l][h] = srv_fold_tensor(m, a_name(l, h), d, 2)))
                goto off;
    gat_fold_t *f = malloc(sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    *f = w;
    if (!(f->t = malloc(((size_t)m->info.n_items * lh + 1) * sizeof *f->t))) {
        free(f);
        return ENG_ENOMEM;
    }
    for (int32_t i = 0; i < m->info.n_items; i++)
        for (int k = 0; k < lh; k++) {
            float st[2];
            eng_vecmat(st, f->z + ((size_t)i * lh + k) * d, f->a[k / H][k % H], NULL, d, 2);
            f->t[(size_t)i * lh + k] = st[1];
        }
    v->kind_data = f;
    /* x_l(u) and the heads' outputs [H d] each, z_u [d], (s_u, t_u); the logits, one per item
     * and one for the self-loop */
    v->fold_scratch = 2 * (size_t)H * d + (size_t)d + 2 + 1;
    v->fold_scratch_per_item = 1;
    return ENG_OK;
off: /* an older trainer's version, or not the layout this build knows */
    v->abilities &= ~SRV_CAN(SRV_ABILITY_FOLD_IN);
    return ENG_OK;
}

void srv_gat_fold_in(const srv_version_t *v, const int32_t *items, size_t n, float *q)
{
    const gat_fold_t *f = v->kind_data;
    const int d = f->d, L = f->layers, H = f->heads, hd = H * d, lh = L * H;
    float *x = q + d, *cat = x + hd, *zu = cat + hd, *st = zu + d, *alpha = st + 2;
    memset(x, 0, (size_t)d * sizeof *x); /* x_0(u) = 0 */
    for (int l = 0; l < L; l++) {
        for (int h = 0; h < H; h++) {
            const int k = l * H + h;
            eng_vecmat(zu, x, f->w[l][h], NULL, l ? hd : d, d);
            eng_vecmat(st, zu, f->a[l][h], NULL, d, 2);
            /* the row in the trainer's order: the self-loop, then the items */
            alpha[0] = st[0] + st[1];
            for (size_t j = 0; j < n; j++)
                alpha[1 + j] = st[0] + f->t[(size_t)items[j] * lh + k];
            eng_lrelu(alpha, alpha, SLOPE, n + 1);
            eng_softmax(alpha, alpha, n + 1);
            float *o = cat + (size_t)h * d;
            for (int c = 0; c < d; c++)
                o[c] = alpha[0] * zu[c];
            for (size_t j = 0; j < n; j++) {
                const float *zi = f->z + ((size_t)items[j] * lh + k) * d;
                for (int c = 0; c < d; c++)
                    o[c] += alpha[1 + j] * zi[c];
            }
        }
        if (l + 1 < L)
            eng_elu(x, cat, (size_t)hd);
        else
            eng_head_mean(q, cat, H, d);
    }
}
