/* GAT (Velickovic et al., ICLR 2018) for recommendation: node embeddings of users and items
 * propagated by multi-head graph attention over the user-item graph with self-loops; hidden layers
 * concatenate their heads and apply ELU, the last layer averages its heads, and its output is the
 * published vectors. docs/models.md has the definition and the choices. Each batch computes each
 * layer at its receptive field only (trainer/field.h); memory is O(edges x heads), never N x N. */
#include "engine/rng.h"
#include "trainer/attention.h"
#include "trainer/field.h"
#include "trainer/graph.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    trn_common_hp_t common;
    int dim;            /* embedding size and every head's width */
    int layers;         /* attention layers */
    int heads;          /* attention heads of every layer */
    float dropout;      /* on every layer's input while training */
    float attn_dropout; /* on the attention coefficients while training */
} gat_cfg_t;

#define GAT_MAX_LAYERS 3
#define GAT_MAX_HEADS 8
#define GAT_SLOPE 0.2f /* the attention logits' LeakyReLU, as the paper */

_Static_assert(2 + 2 * GAT_MAX_LAYERS * GAT_MAX_HEADS <= TRN_MAX_VIEWS,
               "a view per embedding table, and W and a per layer and head");

/* Two layers and four heads as the paper's PPI model (whose output layer averages its heads); the
 * common settings as the other kinds' (the LightGCN protocol). Dropout small: the paper's 0.6 is
 * for a few hundred labelled nodes with bag-of-words features, not for trained embeddings. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(gat_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(gat_cfg_t, dim, "dim", 64, 1, 4096, "embedding size and width of every head"),
    TRN_HP_INT(gat_cfg_t, layers, "layers", 2, 1, GAT_MAX_LAYERS, "graph attention layers"),
    TRN_HP_INT(gat_cfg_t, heads, "heads", 4, 1, GAT_MAX_HEADS,
               "attention heads per layer (concatenated in hidden layers, averaged in the last)"),
    TRN_HP_FLOAT(gat_cfg_t, dropout, "dropout", 0.1, 0, 0.9, "dropout on each layer's input"),
    TRN_HP_FLOAT(gat_cfg_t, attn_dropout, "attn-dropout", 0.1, 0, 0.9,
                 "dropout on the attention coefficients"),
};

/* The block: E0 [N x dim] (users' rows, then items'), then for each layer l its heads' W_lh
 * [din_l x dim] (din_0 = dim, din_l = heads * dim after), then its heads' a_lh [dim x 2]:
 * column 0 is a_src, column 1 a_dst, the paper's a in R^{2 dim} split in its halves.
 *
 * Layer l reads the rows field.rows[l] and computes the rows field.rows[l + 1] over the edge set
 * edges[l] between them; its node tensors are packed in the order of those lists (every row, in
 * order, in a whole-graph forward), its edge tensors in the edge set's order. */
typedef struct {
    int dim, layers, heads, hd; /* hd = heads * dim, a hidden layer's width */
    int64_t nodes;
    size_t nnz;
    float p, pa;
    eng_csr_t *g;      /* [N x N] the user-item graph with self-loops, pattern only */
    trn_field_t field; /* the rows each layer computes */
    trn_edges_t edges[GAT_MAX_LAYERS];
    int din[GAT_MAX_LAYERS];
    size_t w_off[GAT_MAX_LAYERS], a_off[GAT_MAX_LAYERS]; /* of W_l0 and a_l0 in the block */
    char names[2 * GAT_MAX_LAYERS * GAT_MAX_HEADS][16];  /* the views' names */
    /* Activations, per layer l, in one allocation: */
    float *x[GAT_MAX_LAYERS];       /* [N x din_l] the layer's input at its rows, after dropout */
    float *z[GAT_MAX_LAYERS];       /* [heads x N x dim] x W_lh */
    float *pre[GAT_MAX_LAYERS];     /* [heads x nnz] s_r + t_c */
    float *alpha[GAT_MAX_LAYERS];   /* [heads x nnz] edge softmax of LeakyReLU(pre) */
    float *alpha_d[GAT_MAX_LAYERS]; /* [heads x nnz] alpha after dropout */
    float *cat[GAT_MAX_LAYERS];     /* [N x hd] the heads' outputs side by side */
    float *out;                     /* [N x dim] the last layer's head mean (packed) */
    float *final, *dfinal;          /* [N x dim] node-indexed: the vectors at the output rows */
    /* and scratch */
    float *e, *dpre, *dalpha_d, *dalpha, *de; /* [nnz] */
    float *agg, *dout, *dz;                   /* [N x dim] */
    float *st, *dst;                          /* [N x 2] z a_lh: (s_i, t_i), and its gradient */
    float *dx, *dcat;                         /* [N x hd] */
    float *act;                               /* the allocation behind all of the above */
    uint8_t *xmask[GAT_MAX_LAYERS];           /* [N x din_l] */
    uint8_t *amask[GAT_MAX_LAYERS];           /* [heads x nnz] */
    uint8_t *masks;                           /* the allocation behind the masks */
    trn_scores_t scores;
    float *item_z; /* [n_items x layers * heads * dim], built for publishing (extras) */
} gat_t;

static void gat_free(void *impl)
{
    gat_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->g);
    trn_field_free(&g->field);
    for (int l = 0; l < GAT_MAX_LAYERS; l++)
        trn_edges_free(&g->edges[l]);
    free(g->act);
    free(g->masks);
    free(g->item_z);
    trn_scores_free(&g->scores);
    free(g);
}

static int din_of(const gat_cfg_t *c, int l)
{
    return l == 0 ? c->dim : c->heads * c->dim;
}

static size_t gat_n_params(const trn_inputs_t *in, const void *cfg)
{
    const gat_cfg_t *c = cfg;
    const size_t d = (size_t)c->dim, h = (size_t)c->heads;
    size_t n = ((size_t)in->train->rows + (size_t)in->train->cols) * d;
    for (int l = 0; l < c->layers; l++)
        n += h * ((size_t)din_of(c, l) * d + d * 2);
    return n;
}

static int gat_vec_dim(const void *cfg)
{
    const gat_cfg_t *c = cfg;
    return c->dim;
}

static float *w_of(const gat_t *g, float *block, int l, int h)
{
    return block + g->w_off[l] + (size_t)h * g->din[l] * g->dim;
}

static float *a_of(const gat_t *g, float *block, int l, int h)
{
    return block + g->a_off[l] + (size_t)h * g->dim * 2;
}

/* Points every activation and mask into two allocations; returns 0 or ENG_ENOMEM. */
static int alloc_activations(gat_t *g)
{
    const size_t n = (size_t)g->nodes, d = (size_t)g->dim, H = (size_t)g->heads, E = g->nnz;
    const size_t hd = (size_t)g->hd;
    size_t floats = 5 * E + 6 * n * d + 4 * n + 2 * n * hd, bytes = 0;
    for (int l = 0; l < g->layers; l++) {
        floats += n * g->din[l] + H * n * d + 3 * H * E + n * hd;
        bytes += n * g->din[l] + H * E;
    }
    g->act = malloc(floats * sizeof *g->act);
    g->masks = malloc(bytes);
    if (!g->act || !g->masks)
        return ENG_ENOMEM;
    float *f = g->act;
    uint8_t *b = g->masks;
#define TAKE(ptr, count) (ptr = f, f += (count))
    for (int l = 0; l < g->layers; l++) {
        TAKE(g->x[l], n * g->din[l]);
        TAKE(g->z[l], H * n * d);
        TAKE(g->pre[l], H * E);
        TAKE(g->alpha[l], H * E);
        TAKE(g->alpha_d[l], H * E);
        TAKE(g->cat[l], n * hd);
        g->xmask[l] = b, b += n * g->din[l];
        g->amask[l] = b, b += H * E;
    }
    TAKE(g->out, n * d);
    TAKE(g->final, n * d);
    TAKE(g->dfinal, n * d);
    TAKE(g->e, E);
    TAKE(g->dpre, E);
    TAKE(g->dalpha_d, E);
    TAKE(g->dalpha, E);
    TAKE(g->de, E);
    TAKE(g->agg, n * d);
    TAKE(g->dout, n * d);
    TAKE(g->dz, n * d);
    TAKE(g->st, n * 2);
    TAKE(g->dst, n * 2);
    TAKE(g->dx, n * hd);
    TAKE(g->dcat, n * hd);
#undef TAKE
    return ENG_OK;
}

static int gat_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const gat_cfg_t *c = m->cfg;
    gat_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->dim = c->dim;
    g->layers = c->layers;
    g->heads = c->heads;
    g->hd = c->heads * c->dim;
    g->nodes = (int64_t)m->n_users + m->n_items;
    g->p = c->dropout;
    g->pa = c->attn_dropout;
    size_t off = (size_t)g->nodes * g->dim;
    for (int l = 0; l < g->layers; l++) {
        g->din[l] = din_of(c, l);
        g->w_off[l] = off;
        off += (size_t)g->heads * g->din[l] * g->dim;
        g->a_off[l] = off;
        off += (size_t)g->heads * g->dim * 2;
        for (int h = 0; h < g->heads; h++) {
            snprintf(g->names[2 * (l * g->heads + h)], sizeof g->names[0], "W%d.h%d", l + 1, h + 1);
            snprintf(g->names[2 * (l * g->heads + h) + 1], sizeof g->names[0], "a%d.h%d", l + 1,
                     h + 1);
        }
    }
    g->g = trn_graph_adj(m->in->train, 1);
    if (!g->g || trn_field_alloc(&g->field, (int32_t)g->nodes, g->layers) < 0)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    for (int l = 0; l < g->layers; l++)
        if (trn_edges_alloc(&g->edges[l], g->g) < 0)
            return ENG_ENOMEM;
    g->nnz = (size_t)g->g->nnz;
    if (alloc_activations(g) < 0 ||
        trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) < 0)
        return ENG_ENOMEM;
    /* Embeddings N(0, 0.1) as the other kinds; W and a Glorot-uniform as the paper's code, a with
     * the fan of its shape there, [2 dim x 1]. */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    for (size_t i = 0; i < (size_t)g->nodes * g->dim; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    for (int l = 0; l < g->layers; l++)
        for (int h = 0; h < g->heads; h++) {
            trn_init_xavier(w_of(g, m->params, l, h), g->din[l], g->dim, &rng);
            trn_init_xavier(a_of(g, m->params, l, h), 2 * (int64_t)g->dim, 1, &rng);
        }
    return ENG_OK;
}

/* out = the last layer's output at the field's output rows (packed), and final the same rows
 * node-indexed. Layer l, over the edge set from its input rows to its output rows: x_l =
 * dropout(input), per head h z = x_l W_lh, alpha = dropout(edge softmax(LeakyReLU(s_r + t_c)))
 * with (s, t) = z a_lh, the head's output sum_c alpha_rc z_c; the heads concatenated then ELU in
 * hidden layers, averaged in the last. Dropout only when training, its masks from the batch's RNG
 * in a fixed order. */
static void forward(trn_model_t *m, int training)
{
    gat_t *g = m->impl;
    const trn_field_t *f = &g->field;
    const int d = g->dim, H = g->heads, th = m->threads, L = g->layers;
    const size_t E = g->nnz, nd = (size_t)g->nodes * d;
    const float p = training ? g->p : 0.0f, pa = training ? g->pa : 0.0f;
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    for (int l = 0; l < L; l++)
        trn_edges_build(&g->edges[l], g->g, f->rows[l + 1], f->n[l + 1], f->rows[l], f->n[l]);
    trn_field_gather(f, 0, g->x[0], m->params, d, th); /* layer 0's input: E0 at its rows */
    for (int l = 0; l < L; l++) {
        const trn_edges_t *es = &g->edges[l];
        const int64_t n_in = f->n[l], n_out = f->n[l + 1];
        const size_t nnz = (size_t)es->g.nnz;
        trn_dropout_forward(g->x[l], g->xmask[l], g->x[l], p, (size_t)n_in * g->din[l], &rng, th);
        for (int h = 0; h < H; h++) {
            float *z = g->z[l] + h * nd, *pre = g->pre[l] + h * E, *alpha = g->alpha[l] + h * E;
            float *alpha_d = g->alpha_d[l] + h * E;
            trn_dense_forward(z, g->x[l], w_of(g, m->params, l, h), NULL, n_in, g->din[l], d, th);
            trn_dense_forward(g->st, z, a_of(g, m->params, l, h), NULL, n_in, d, 2, th);
            trn_edge_sum_forward(pre, g->st, es, th);
            trn_lrelu_forward(g->e, pre, GAT_SLOPE, nnz);
            trn_edge_softmax_forward(alpha, g->e, es, th);
            trn_dropout_forward(alpha_d, g->amask[l] + h * E, alpha, pa, nnz, &rng, th);
            trn_edge_aggregate_forward(g->agg, alpha_d, z, es, d, th);
            trn_concat_forward(g->cat[l], g->agg, n_out, d, g->hd, h * d);
        }
        if (l + 1 < L) /* the next layer reads this one's rows, in this order */
            trn_elu_forward(g->x[l + 1], g->cat[l], (size_t)n_out * g->hd, th);
        else
            trn_head_mean_forward(g->out, g->cat[l], n_out, H, d);
    }
    trn_field_scatter(f, L, g->final, g->out, d, th);
}

/* Given g->dout, the gradient of the last layer's output (packed): ADDS the gradients of E0 and
 * of every W and a into m->grads. */
static void backward(trn_model_t *m)
{
    gat_t *g = m->impl;
    const trn_field_t *f = &g->field;
    const int d = g->dim, H = g->heads, th = m->threads, L = g->layers;
    const size_t E = g->nnz, nd = (size_t)g->nodes * d;
    float *dx = g->dx, *dcat = g->dcat; /* [N x hd] each; swapped between layers */
    const size_t n_last = (size_t)f->n[L] * g->hd;
    memset(dcat, 0, n_last * sizeof *dcat);
    trn_head_mean_backward(dcat, g->dout, f->n[L], H, d);
    for (int l = L - 1; l >= 0; l--) {
        const trn_edges_t *es = &g->edges[l];
        const int64_t n_in = f->n[l], n_out = f->n[l + 1];
        const size_t nin = (size_t)n_in * g->din[l], nnz = (size_t)es->g.nnz;
        memset(dx, 0, nin * sizeof *dx);
        for (int h = 0; h < H; h++) {
            const float *z = g->z[l] + h * nd, *pre = g->pre[l] + h * E;
            const float *alpha = g->alpha[l] + h * E, *alpha_d = g->alpha_d[l] + h * E;
            memset(g->agg, 0, (size_t)n_out * d * sizeof *g->agg); /* the head's output grad */
            trn_concat_backward(g->agg, dcat, n_out, d, g->hd, h * d);
            memset(g->dz, 0, (size_t)n_in * d * sizeof *g->dz);
            memset(g->dalpha_d, 0, nnz * sizeof *g->dalpha_d);
            trn_edge_aggregate_backward(g->dz, g->dalpha_d, g->agg, alpha_d, z, es, d, th);
            memset(g->dalpha, 0, nnz * sizeof *g->dalpha);
            trn_dropout_backward(g->dalpha, g->dalpha_d, g->amask[l] + h * E, g->pa, nnz);
            memset(g->de, 0, nnz * sizeof *g->de);
            trn_edge_softmax_backward(g->de, g->dalpha, alpha, es, th);
            memset(g->dpre, 0, nnz * sizeof *g->dpre);
            trn_lrelu_backward(g->dpre, g->de, pre, GAT_SLOPE, nnz);
            memset(g->dst, 0, (size_t)n_in * 2 * sizeof *g->dst);
            trn_edge_sum_backward(g->dst, g->dpre, es, th);
            trn_dense_backward(g->dz, a_of(g, m->grads, l, h), NULL, g->dst, z,
                               a_of(g, m->params, l, h), n_in, d, 2, th);
            trn_dense_backward(dx, w_of(g, m->grads, l, h), NULL, g->dz, g->x[l],
                               w_of(g, m->params, l, h), n_in, g->din[l], d, th);
        }
        if (l == 0) { /* through the input dropout, into the embeddings' rows */
            memset(dcat, 0, nin * sizeof *dcat);
            trn_dropout_backward(dcat, dx, g->xmask[0], g->p, nin);
            for (int32_t q = 0; q < f->n[0]; q++) {
                float *dst = m->grads + (size_t)f->rows[0][q] * d;
                const float *src = dcat + (size_t)q * d;
                for (int j = 0; j < d; j++)
                    dst[j] += src[j];
            }
        } else { /* through this layer's input dropout and the previous layer's ELU */
            memset(dcat, 0, nin * sizeof *dcat);
            trn_dropout_backward(dcat, dx, g->xmask[l], g->p, nin);
            memset(dx, 0, nin * sizeof *dx);
            trn_elu_backward(dx, dcat, g->cat[l - 1], nin, th);
            float *t = dx;
            dx = dcat;
            dcat = t;
        }
    }
}

static double gat_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    gat_t *g = m->impl;
    const trn_field_t *f = &g->field;
    const int d = g->dim, L = g->layers;
    const size_t row = (size_t)d * sizeof(float);
    trn_scores_rows(&g->scores, m, b);
    trn_field_batch(&g->field, g->g, &g->scores, b->n, b->nneg);
    forward(m, 1);
    for (int32_t q = 0; q < f->n[L]; q++)
        memset(g->dfinal + (size_t)f->rows[L][q] * d, 0, row);
    double loss = trn_scores_eval(&g->scores, g->dfinal, g->final, d, m, b);
    trn_field_gather(f, L, g->dout, g->dfinal, d, m->threads);
    backward(m);
    /* decay / 2 / batch * the batch's layer-0 rows (as lightgcn), plus decay / 2 * the squared
     * norm of every W and a (the paper's L2), which follow E0 in the block */
    const float decay = m->hp->decay;
    *reg = trn_scores_l2(&g->scores, m->grads, m->params, d, decay, b);
    static const int32_t row0 = 0;
    const size_t e0 = (size_t)g->nodes * d;
    const int nw = (int)(m->n_params - e0);
    trn_l2_backward(m->grads + e0, 0.5f * decay, m->params + e0, &row0, 1, nw);
    *reg += 0.5 * decay * trn_l2_forward(m->params + e0, &row0, 1, nw);
    return loss;
}

static int gat_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    gat_t *g = m->impl;
    trn_field_all(&g->field);
    forward(m, 0);
    const size_t vu = (size_t)m->n_users * g->dim;
    memcpy(user_vecs, g->final, vu * sizeof *user_vecs);
    memcpy(item_vecs, g->final + vu, (size_t)m->n_items * g->dim * sizeof *item_vecs);
    return ENG_OK;
}

/* What the server folds a new user in with (docs/serving.md, "NGCF, GCN and GAT fold-in"): each
 * item's z = x_l W_lh for every layer l and head h, as the forward computes them without dropout
 * (the messages an item sends, and through a_dst its attention logit's share), one row per item,
 * layer after layer and head after head. The weights are the views. */
static int gat_extras(trn_model_t *m, trn_extra_t *out)
{
    gat_t *g = m->impl;
    const int d = g->dim, L = g->layers, H = g->heads;
    const size_t nd = (size_t)g->nodes * d, cols = (size_t)L * H * d;
    if (!g->item_z && !(g->item_z = malloc((size_t)m->n_items * cols * sizeof(float))))
        return ENG_ENOMEM;
    trn_field_all(&g->field);
    forward(m, 0);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            const float *z = g->z[l] + h * nd + (size_t)m->n_users * d;
            for (int32_t i = 0; i < m->n_items; i++)
                memcpy(g->item_z + (size_t)i * cols + (size_t)(l * H + h) * d, z + (size_t)i * d,
                       (size_t)d * sizeof(float));
        }
    out[0] =
        (trn_extra_t){"gat.item_z", g->item_z, m->n_items, (int64_t)cols, TRN_ROWS_ITEMS, STO_F32};
    return 1;
}

/* user_emb and item_emb (layer 0), then per layer l and head h W<l>.h<h> [din_l x dim] and
 * a<l>.h<h> [dim x 2] (columns a_src, a_dst), counting from 1. */
static int gat_views(const trn_model_t *m, trn_view_t *out)
{
    const gat_t *g = m->impl;
    int n = trn_embedding_views(m, g->dim, out);
    for (int l = 0; l < g->layers; l++)
        for (int h = 0; h < g->heads; h++) {
            out[n++] = (trn_view_t){g->names[2 * (l * g->heads + h)],
                                    g->w_off[l] + (size_t)h * g->din[l] * g->dim, g->din[l], g->dim,
                                    TRN_ROWS_NONE};
            out[n++] = (trn_view_t){g->names[2 * (l * g->heads + h) + 1],
                                    g->a_off[l] + (size_t)h * g->dim * 2, g->dim, 2, TRN_ROWS_NONE};
        }
    return n;
}

const trn_model_ops_t trn_gat_ops = {
    .kind = "gat",
    .about = "GAT (Velickovic et al., ICLR 2018): multi-head graph attention over the user-item "
             "graph, ELU between layers, the last layer's heads averaged",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(gat_cfg_t),
    .n_params = gat_n_params,
    .vec_dim = gat_vec_dim,
    .init = gat_init,
    .batch_grad = gat_batch_grad,
    .vectors = gat_vectors,
    .views = gat_views,
    .extras = gat_extras,
    .free_impl = gat_free,
};
