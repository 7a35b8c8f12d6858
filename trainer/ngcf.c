/* NGCF (Wang et al., SIGIR 2019) as its public code (NGCF/NGCF.py, _create_ngcf_embed): per
 * layer a transformed sum of the neighbours' embeddings plus a transformed bi-interaction message,
 * each through LeakyReLU(0.2), message dropout, and the row-normalised layer outputs concatenated
 * with layer 0. docs/models.md has the definition and where the code and the paper differ. Each
 * batch computes each layer at its receptive field only (trainer/field.h). */
#include "engine/rng.h"
#include "trainer/field.h"
#include "trainer/graph.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    trn_common_hp_t common;
    int dim;            /* embedding size and every layer's width */
    int layers;         /* propagation layers */
    float dropout;      /* message dropout on every layer's output */
    float node_dropout; /* dropout of the graph's entries, per batch */
} ngcf_cfg_t;

#define NGCF_MAX_LAYERS 6
#define NGCF_SLOPE 0.2f /* tf.nn.leaky_relu's default, as the public code */

/* The paper's settings (Section 4.2 and its dropout study): dim 64, three layers of 64, lr 1e-4,
 * batch 1024, decay 1e-5, message dropout 0.1, node dropout 0.1. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(ngcf_cfg_t, 1e-4, 1e-5, 1024),
    TRN_HP_INT(ngcf_cfg_t, dim, "dim", 64, 1, 4096, "embedding size and layer width"),
    TRN_HP_INT(ngcf_cfg_t, layers, "layers", 3, 1, NGCF_MAX_LAYERS, "propagation layers"),
    TRN_HP_FLOAT(ngcf_cfg_t, dropout, "dropout", 0.1, 0, 0.9, "message dropout on each layer"),
    TRN_HP_FLOAT(ngcf_cfg_t, node_dropout, "node-dropout", 0.1, 0, 0.9,
                 "dropout of the graph's entries, redrawn every batch"),
};

/* A layer's four tensors, in block order. */
enum { W_GC, B_GC, W_BI, B_BI, N_TENSORS };

#define LAYER_NAMES(l)                                                                             \
    {                                                                                              \
        "W_gc_" #l, "b_gc_" #l, "W_bi_" #l, "b_bi_" #l                                             \
    }
static const char *const tensor_names[NGCF_MAX_LAYERS][N_TENSORS] = {
    LAYER_NAMES(1), LAYER_NAMES(2), LAYER_NAMES(3), LAYER_NAMES(4), LAYER_NAMES(5), LAYER_NAMES(6),
};

/* The block: E0 [N x dim] (users' rows, then items'), then per layer W_gc [dim x dim], b_gc
 * [dim], W_bi [dim x dim], b_bi [dim].
 *
 * Layer l's tensors hold the rows field.rows[l] in that order (packed): every row in a whole-graph
 * forward, where they are node-indexed too. */
typedef struct {
    int dim, layers, vd; /* vd = (layers + 1) dim, the published vectors' length */
    int64_t nodes;
    float p, p_node;
    eng_csr_t *adj;        /* [N x N] D^-1/2 A D^-1/2 */
    trn_field_t field;     /* the rows each layer computes */
    float *val;            /* [nnz] this batch's graph: adj's values after node dropout */
    uint8_t *edge_mask;    /* [nnz] */
    float *prev, *side;    /* [layers x N x dim] E_l at layer l's rows, and L E_l */
    float *p_msg;          /* [layers x N x dim] E_l * L E_l */
    float *zgc, *zbi;      /* [layers x N x dim] the two messages before LeakyReLU */
    float *e;              /* [layers x N x dim] E_{l+1}, after message dropout */
    float *nrm, *norm;     /* [layers x N x dim] E_{l+1} row-normalised; [layers x N] the norms */
    uint8_t *mask;         /* [layers x N x dim] message dropout masks */
    float *final, *dfinal; /* [N x vd] [E_0 | nrm_1 | ... | nrm_L] at the output rows, gradient */
    float *x, *gx;         /* [N x dim] node-indexed: the last layer's E, and a layer's gradient */
    float *ge, *gn, *gpre, *gz, *gside, *gp, *tmp; /* [N x dim] packed backward scratch */
    trn_scores_t scores;
    float *item_layers; /* [n_items x layers * dim], built for publishing (extras) */
} ngcf_t;

static void ngcf_free(void *impl)
{
    ngcf_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    trn_field_free(&g->field);
    float *bufs[] = {g->val, g->prev, g->side,  g->p_msg,  g->zgc, g->zbi, g->e,
                     g->nrm, g->norm, g->final, g->dfinal, g->x,   g->gx,  g->ge,
                     g->gn,  g->gpre, g->gz,    g->gside,  g->gp,  g->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(g->edge_mask);
    free(g->mask);
    free(g->item_layers);
    trn_scores_free(&g->scores);
    free(g);
}

static size_t layer_size(int d)
{
    return 2 * (size_t)d * d + 2 * (size_t)d;
}

static size_t ngcf_n_params(const trn_inputs_t *in, const void *cfg)
{
    const ngcf_cfg_t *c = cfg;
    return ((size_t)in->train->rows + (size_t)in->train->cols) * (size_t)c->dim +
           (size_t)c->layers * layer_size(c->dim);
}

static int ngcf_vec_dim(const void *cfg)
{
    const ngcf_cfg_t *c = cfg;
    return (c->layers + 1) * c->dim;
}

/* Offset of layer l's tensor t in the block. */
static size_t tensor_offset(int64_t nodes, int d, int l, int t)
{
    static const int before[N_TENSORS] = {0, 1, 1, 2}; /* [d x d] tensors before t */
    return (size_t)nodes * d + (size_t)l * layer_size(d) + (size_t)before[t] * d * d +
           (size_t)(t / 2) * d;
}

static float *tensor(const trn_model_t *m, float *block, int l, int t)
{
    const ngcf_t *g = m->impl;
    return block + tensor_offset(g->nodes, g->dim, l, t);
}

static int ngcf_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const ngcf_cfg_t *c = m->cfg;
    ngcf_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->dim = c->dim;
    g->layers = c->layers;
    g->vd = (c->layers + 1) * c->dim;
    g->nodes = (int64_t)m->n_users + m->n_items;
    g->p = c->dropout;
    g->p_node = c->node_dropout;
    const size_t nd = (size_t)g->nodes * g->dim, L = (size_t)g->layers;
    g->adj = trn_graph_norm_adj(m->in->train, 0);
    if (!g->adj)
        return ENG_ENOMEM;
    const size_t nnz = (size_t)g->adj->nnz;
    g->val = malloc(nnz * sizeof *g->val);
    g->edge_mask = malloc(nnz);
    float **lay[] = {&g->prev, &g->side, &g->p_msg, &g->zgc, &g->zbi, &g->e, &g->nrm};
    for (size_t i = 0; i < sizeof lay / sizeof *lay; i++)
        *lay[i] = malloc(L * nd * sizeof(float));
    g->norm = malloc(L * (size_t)g->nodes * sizeof *g->norm);
    g->mask = malloc(L * nd);
    g->final = malloc((size_t)g->nodes * g->vd * sizeof *g->final);
    g->dfinal = malloc((size_t)g->nodes * g->vd * sizeof *g->dfinal);
    float **scr[] = {&g->x, &g->gx, &g->ge, &g->gn, &g->gpre, &g->gz, &g->gside, &g->gp, &g->tmp};
    int ok = trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) == 0 &&
             trn_field_alloc(&g->field, (int32_t)g->nodes, g->layers) == 0;
    for (size_t i = 0; i < sizeof scr / sizeof *scr; i++)
        ok &= (*scr[i] = malloc(nd * sizeof(float))) != NULL;
    for (size_t i = 0; i < sizeof lay / sizeof *lay; i++)
        ok &= *lay[i] != NULL;
    if (!ok || !g->val || !g->edge_mask || !g->norm || !g->mask || !g->final || !g->dfinal)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    /* Xavier for every tensor, the embeddings and the biases [1 x dim] too, as the public code. */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    trn_init_xavier(m->params, m->n_users, g->dim, &rng);
    trn_init_xavier(m->params + (size_t)m->n_users * g->dim, m->n_items, g->dim, &rng);
    for (int l = 0; l < g->layers; l++)
        for (int t = 0; t < N_TENSORS; t++)
            trn_init_xavier(tensor(m, m->params, l, t), t % 2 ? 1 : g->dim, g->dim, &rng);
    return ENG_OK;
}

/* final = [E_0 | norm(E_1) | ... | norm(E_L)] at the field's output rows, each layer computed at
 * its rows; while training, with the graph's entries and the messages dropped (masks from the
 * batch's RNG). *adj receives the graph the forward used, for the backward. */
static void forward(trn_model_t *m, int training, eng_csr_t *adj)
{
    ngcf_t *g = m->impl;
    trn_field_t *f = &g->field;
    const int d = g->dim, th = m->threads, L = g->layers;
    const size_t nd = (size_t)g->nodes * d, row = (size_t)d * sizeof(float);
    const int32_t *out = f->rows[L], n_out = f->n[L];
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    *adj = *g->adj;
    if (training && g->p_node > 0.0f) {
        trn_dropout_forward(g->val, g->edge_mask, g->adj->val, g->p_node, (size_t)g->adj->nnz, &rng,
                            th);
        adj->val = g->val;
    }
    const float *x = m->params; /* E_l, node-indexed */
    for (int32_t q = 0; q < n_out; q++)
        memcpy(g->final + (size_t)out[q] * g->vd, x + (size_t)out[q] * d, row);
    for (int l = 0; l < L; l++) {
        const int32_t *rows = f->rows[l + 1], n = f->n[l + 1];
        const size_t o = (size_t)l * nd, pn = (size_t)n * d;
        float *prev = g->prev + o, *side = g->side + o, *pm = g->p_msg + o, *e = g->e + o;
        eng_csr_spmm_packed(side, adj, x, d, rows, n, th);
        /* The row-wise layers run over rows shared among the threads (each row's arithmetic
         * the same for any thread count): on gowalla with 2 threads, 0.138 -> 0.125 s a batch. */
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < n; q++) {
            const size_t r = (size_t)q * d;
            memcpy(prev + r, x + (size_t)rows[q] * d, row);
            trn_mul_forward(pm + r, prev + r, side + r, (size_t)d);
        }
        trn_dense_forward(g->zgc + o, side, tensor(m, m->params, l, W_GC),
                          tensor(m, m->params, l, B_GC), n, d, d, th);
        trn_dense_forward(g->zbi + o, pm, tensor(m, m->params, l, W_BI),
                          tensor(m, m->params, l, B_BI), n, d, d, th);
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < n; q++) {
            const size_t r = (size_t)q * d;
            trn_lrelu_forward(e + r, g->zgc + o + r, NGCF_SLOPE, (size_t)d);
            trn_lrelu_forward(g->tmp + r, g->zbi + o + r, NGCF_SLOPE, (size_t)d);
            for (int j = 0; j < d; j++)
                e[r + j] += g->tmp[r + j];
        }
        if (training)
            trn_dropout_forward(e, g->mask + o, e, g->p, pn, &rng, th);
        float *nrm = g->nrm + o;
        trn_l2norm_forward(nrm, g->norm + (size_t)l * g->nodes, e, n, d, th);
        trn_field_positions(f, l + 1);
        for (int32_t q = 0; q < n_out; q++)
            memcpy(g->final + (size_t)out[q] * g->vd + (size_t)(l + 1) * d,
                   nrm + (size_t)f->pos[out[q]] * d, row);
        /* node-indexed for the next layer: it reads only rows of this layer */
        trn_field_scatter(f, l + 1, g->x, e, d, th);
        x = g->x;
    }
}

static double ngcf_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    ngcf_t *g = m->impl;
    trn_field_t *f = &g->field;
    const int d = g->dim, th = m->threads, L = g->layers;
    const size_t nd = (size_t)g->nodes * d, row = (size_t)d * sizeof(float);
    trn_scores_rows(&g->scores, m, b);
    trn_field_batch(f, g->adj, &g->scores, b->n, b->nneg);
    eng_csr_t adj;
    forward(m, 1, &adj);
    const int32_t *out = f->rows[L], n_out = f->n[L];
    for (int32_t q = 0; q < n_out; q++)
        memset(g->dfinal + (size_t)out[q] * g->vd, 0, (size_t)g->vd * sizeof *g->dfinal);
    double loss = trn_scores_eval(&g->scores, g->dfinal, g->final, g->vd, m, b);
    /* The public code's regulariser: on the batch's final (concatenated) vectors. */
    *reg = trn_scores_l2(&g->scores, g->dfinal, g->final, g->vd, m->hp->decay, b);

    /* backward, layer L down to 1; ge holds dE_l from the layer above (none above the last),
     * packed over layer l's rows */
    memset(g->ge, 0, (size_t)n_out * row);
    for (int l = L - 1; l >= 0; l--) {
        const int32_t *rows = f->rows[l + 1], n = f->n[l + 1];
        const size_t o = (size_t)l * nd;
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < n; q++)
            memset(g->gn + (size_t)q * d, 0, row);
        trn_field_positions(f, l + 1);
        for (int32_t q = 0; q < n_out; q++)
            memcpy(g->gn + (size_t)f->pos[out[q]] * d,
                   g->dfinal + (size_t)out[q] * g->vd + (size_t)(l + 1) * d, row);
        trn_l2norm_backward(g->ge, g->gn, g->nrm + o, g->norm + (size_t)l * g->nodes, n, d, th);
        /* gpre through the dropout; gz and gp (free until its product below) through the two
         * LeakyReLUs; gside and tmp zeroed for the products that add into them */
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < n; q++) {
            const size_t r = (size_t)q * d;
            memset(g->gpre + r, 0, row);
            trn_dropout_backward(g->gpre + r, g->ge + r, g->mask + o + r, g->p, (size_t)d);
            memset(g->gz + r, 0, row);
            trn_lrelu_backward(g->gz + r, g->gpre + r, g->zgc + o + r, NGCF_SLOPE, (size_t)d);
            memset(g->tmp + r, 0, row);
            trn_lrelu_backward(g->tmp + r, g->gpre + r, g->zbi + o + r, NGCF_SLOPE, (size_t)d);
            memset(g->gside + r, 0, row);
            memset(g->gp + r, 0, row);
        }
        trn_dense_backward(g->gside, tensor(m, m->grads, l, W_GC), tensor(m, m->grads, l, B_GC),
                           g->gz, g->side + o, tensor(m, m->params, l, W_GC), n, d, d, th);
        trn_dense_backward(g->gp, tensor(m, m->grads, l, W_BI), tensor(m, m->grads, l, B_BI),
                           g->tmp, g->p_msg + o, tensor(m, m->params, l, W_BI), n, d, d, th);
        /* dE_{l-1} (node-indexed, at the rows layer l read): through the bi-interaction, at
         * layer l's own rows, and through the graph (transposed: scattered) */
        float *dprev = l ? g->gx : m->grads;
        if (l)
            trn_field_zero(f, l, g->gx, d, th);
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < n; q++) {
            const size_t r = (size_t)q * d;
            memset(g->tmp + r, 0, row);
            trn_mul_backward(g->tmp + r, g->gside + r, g->gp + r, g->prev + o + r, g->side + o + r,
                             (size_t)d);
            float *dst = dprev + (size_t)rows[q] * d;
            for (int j = 0; j < d; j++)
                dst[j] += g->tmp[r + j];
        }
        eng_csr_scatter_packed(dprev, &adj, g->gside, d, rows, n, th);
        if (l)
            trn_field_gather(f, l, g->ge, g->gx, d, th);
    }
    for (int32_t q = 0; q < n_out; q++)
        trn_concat_backward(m->grads + (size_t)out[q] * d, g->dfinal + (size_t)out[q] * g->vd, 1, d,
                            g->vd, 0);
    return loss;
}

static int ngcf_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    ngcf_t *g = m->impl;
    eng_csr_t adj;
    trn_field_all(&g->field);
    forward(m, 0, &adj);
    const size_t vu = (size_t)m->n_users * g->vd;
    memcpy(user_vecs, g->final, vu * sizeof *user_vecs);
    memcpy(item_vecs, g->final + vu, (size_t)m->n_items * g->vd * sizeof *item_vecs);
    return ENG_OK;
}

/* What the server folds a new user in with (docs/serving.md, "NGCF, GCN and GAT fold-in"): each
 * item's E_0..E_{L-1}, the unnormalised inputs of the layers as the forward computes them without
 * dropout, one row per item, layer after layer. The weights are the views. */
static int ngcf_extras(trn_model_t *m, trn_extra_t *out)
{
    ngcf_t *g = m->impl;
    const int d = g->dim, L = g->layers;
    const size_t nd = (size_t)g->nodes * d, cols = (size_t)L * d;
    if (!g->item_layers && !(g->item_layers = malloc((size_t)m->n_items * cols * sizeof(float))))
        return ENG_ENOMEM;
    eng_csr_t adj;
    trn_field_all(&g->field);
    forward(m, 0, &adj);
    for (int l = 0; l < L; l++) {
        const float *e =
            (l == 0 ? m->params : g->e + (size_t)(l - 1) * nd) + (size_t)m->n_users * d;
        for (int32_t i = 0; i < m->n_items; i++)
            memcpy(g->item_layers + (size_t)i * cols + (size_t)l * d, e + (size_t)i * d,
                   (size_t)d * sizeof(float));
    }
    out[0] = (trn_extra_t){"ngcf.item_layers", g->item_layers, m->n_items,
                           (int64_t)cols,      TRN_ROWS_ITEMS, STO_F32};
    return 1;
}

/* user_emb and item_emb (layer 0), then each layer's W_gc_l, b_gc_l, W_bi_l, b_bi_l. */
static int ngcf_views(const trn_model_t *m, trn_view_t *out)
{
    const ngcf_cfg_t *c = m->cfg;
    const int d = c->dim;
    const int64_t nodes = (int64_t)m->n_users + m->n_items;
    int n = trn_embedding_views(m, d, out);
    for (int l = 0; l < c->layers; l++)
        for (int t = 0; t < N_TENSORS; t++)
            out[n++] = (trn_view_t){tensor_names[l][t], tensor_offset(nodes, d, l, t),
                                    t % 2 ? 1 : d, d, TRN_ROWS_NONE};
    return n;
}

const trn_model_ops_t trn_ngcf_ops = {
    .kind = "ngcf",
    .about = "NGCF (Wang et al., SIGIR 2019): graph and bi-interaction messages, LeakyReLU, "
             "normalised layers concatenated",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(ngcf_cfg_t),
    .n_params = ngcf_n_params,
    .vec_dim = ngcf_vec_dim,
    .init = ngcf_init,
    .batch_grad = ngcf_batch_grad,
    .vectors = ngcf_vectors,
    .views = ngcf_views,
    .extras = ngcf_extras,
    .free_impl = ngcf_free,
};
