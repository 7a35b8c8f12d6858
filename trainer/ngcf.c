/* NGCF (Wang et al., SIGIR 2019) as its public code (NGCF/NGCF.py, _create_ngcf_embed): per
 * layer a transformed sum of the neighbours' embeddings plus a transformed bi-interaction message,
 * each through LeakyReLU(0.2), message dropout, and the row-normalised layer outputs concatenated
 * with layer 0. docs/models.md has the definition and where the code and the paper differ. Each
 * batch runs the whole graph forward and backward. */
#include "engine/rng.h"
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
 * [dim], W_bi [dim x dim], b_bi [dim]. */
typedef struct {
    int dim, layers, vd; /* vd = (layers + 1) dim, the published vectors' length */
    int64_t nodes;
    float p, p_node;
    eng_csr_t *adj;        /* [N x N] D^-1/2 A D^-1/2 */
    int64_t *transpose;    /* [nnz] the index of entry (c, r) for entry (r, c) */
    float *val, *val_t;    /* [nnz] this batch's dropped graph and its transpose's values */
    uint8_t *edge_mask;    /* [nnz] */
    float *side, *p_msg;   /* [layers x N x dim] L E_l, and E_l * L E_l */
    float *zgc, *zbi;      /* [layers x N x dim] the two messages before LeakyReLU */
    float *e;              /* [layers x N x dim] E_{l+1}, after message dropout */
    float *nrm, *norm;     /* [layers x N x dim] E_{l+1} row-normalised; [layers x N] the norms */
    uint8_t *mask;         /* [layers x N x dim] message dropout masks */
    float *final, *dfinal; /* [N x vd] [E_0 | nrm_1 | ... | nrm_L] and its gradient */
    float *ge, *gpre, *gz, *gside, *gp, *tmp; /* [N x dim] backward scratch */
    trn_scores_t scores;
    float *item_layers; /* [n_items x layers * dim], built for publishing (extras) */
} ngcf_t;

static void ngcf_free(void *impl)
{
    ngcf_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    float *bufs[] = {g->val,  g->val_t, g->side,  g->p_msg, g->zgc,    g->zbi,
                     g->e,    g->nrm,   g->norm,  g->final, g->dfinal, g->ge,
                     g->gpre, g->gz,    g->gside, g->gp,    g->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(g->transpose);
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
    g->transpose = malloc(nnz * sizeof *g->transpose);
    g->val = malloc(nnz * sizeof *g->val);
    g->val_t = malloc(nnz * sizeof *g->val_t);
    g->edge_mask = malloc(nnz);
    float **lay[] = {&g->side, &g->p_msg, &g->zgc, &g->zbi, &g->e, &g->nrm};
    for (size_t i = 0; i < sizeof lay / sizeof *lay; i++)
        *lay[i] = malloc(L * nd * sizeof(float));
    g->norm = malloc(L * (size_t)g->nodes * sizeof *g->norm);
    g->mask = malloc(L * nd);
    g->final = malloc((size_t)g->nodes * g->vd * sizeof *g->final);
    g->dfinal = malloc((size_t)g->nodes * g->vd * sizeof *g->dfinal);
    float **scr[] = {&g->ge, &g->gpre, &g->gz, &g->gside, &g->gp, &g->tmp};
    int ok = trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) == 0;
    for (size_t i = 0; i < sizeof scr / sizeof *scr; i++)
        ok &= (*scr[i] = malloc(nd * sizeof(float))) != NULL;
    for (size_t i = 0; i < sizeof lay / sizeof *lay; i++)
        ok &= *lay[i] != NULL;
    if (!ok || !g->transpose || !g->val || !g->val_t || !g->edge_mask || !g->norm || !g->mask ||
        !g->final || !g->dfinal)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    /* The graph is symmetric in pattern: entry (r, c) has a twin (c, r), found by binary search. */
    const eng_csr_t *a = g->adj;
    for (int32_t r = 0; r < a->rows; r++)
        for (int64_t k = a->ptr[r]; k < a->ptr[r + 1]; k++) {
            const int32_t c2 = a->idx[k];
            int64_t lo = a->ptr[c2], hi = a->ptr[c2 + 1] - 1;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (a->idx[mid] < r)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            g->transpose[k] = lo;
        }
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

/* final = [E_0 | norm(E_1) | ... | norm(E_L)] over all nodes; while training, with the graph's
 * entries and the messages dropped (masks from the batch's RNG). *adj receives the graph the
 * forward used and *adj_t its transpose, for the backward (they share the pattern). */
static void forward(trn_model_t *m, int training, eng_csr_t *adj, eng_csr_t *adj_t)
{
    ngcf_t *g = m->impl;
    const int d = g->dim, th = m->threads;
    const size_t nd = (size_t)g->nodes * d;
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    *adj = *adj_t = *g->adj;
    if (training && g->p_node > 0.0f) {
        const size_t nnz = (size_t)g->adj->nnz;
        trn_dropout_forward(g->val, g->edge_mask, g->adj->val, g->p_node, nnz, &rng);
        for (size_t k = 0; k < nnz; k++)
            g->val_t[k] = g->val[g->transpose[k]];
        adj->val = g->val;
        adj_t->val = g->val_t;
    }
    const float *prev = m->params;
    trn_concat_forward(g->final, prev, g->nodes, d, g->vd, 0);
    for (int l = 0; l < g->layers; l++) {
        const size_t o = (size_t)l * nd;
        float *side = g->side + o, *pm = g->p_msg + o, *e = g->e + o;
        eng_csr_spmm(side, adj, prev, d, th);
        trn_dense_forward(g->zgc + o, side, tensor(m, m->params, l, W_GC),
                          tensor(m, m->params, l, B_GC), g->nodes, d, d, th);
        trn_mul_forward(pm, prev, side, nd);
        trn_dense_forward(g->zbi + o, pm, tensor(m, m->params, l, W_BI),
                          tensor(m, m->params, l, B_BI), g->nodes, d, d, th);
        trn_lrelu_forward(e, g->zgc + o, NGCF_SLOPE, nd);
        trn_lrelu_forward(g->tmp, g->zbi + o, NGCF_SLOPE, nd);
        for (size_t i = 0; i < nd; i++)
            e[i] += g->tmp[i];
        if (training)
            trn_dropout_forward(e, g->mask + o, e, g->p, nd, &rng);
        trn_l2norm_forward(g->nrm + o, g->norm + (size_t)l * g->nodes, e, g->nodes, d, th);
        trn_concat_forward(g->final, g->nrm + o, g->nodes, d, g->vd, (l + 1) * d);
        prev = e;
    }
}

static double ngcf_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    ngcf_t *g = m->impl;
    const int d = g->dim, th = m->threads;
    const size_t nd = (size_t)g->nodes * d, bytes = nd * sizeof(float);
    eng_csr_t adj, adj_t;
    forward(m, 1, &adj, &adj_t);
    memset(g->dfinal, 0, (size_t)g->nodes * g->vd * sizeof *g->dfinal);
    double loss = trn_scores_loss(&g->scores, g->dfinal, g->final, g->vd, m, b);
    /* The public code's regulariser: on the batch's final (concatenated) vectors. */
    *reg = trn_scores_l2(&g->scores, g->dfinal, g->final, g->vd, m->hp->decay, b);

    /* backward, layer L down to 1; ge holds dE_l from the layer above (none above the last) */
    memset(g->ge, 0, bytes);
    for (int l = g->layers - 1; l >= 0; l--) {
        const size_t o = (size_t)l * nd;
        const float *prev = l ? g->e + o - nd : m->params;
        memset(g->tmp, 0, bytes);
        trn_concat_backward(g->tmp, g->dfinal, g->nodes, d, g->vd, (l + 1) * d);
        trn_l2norm_backward(g->ge, g->tmp, g->nrm + o, g->norm + (size_t)l * g->nodes, g->nodes, d,
                            th);
        memset(g->gpre, 0, bytes);
        trn_dropout_backward(g->gpre, g->ge, g->mask + o, g->p, nd);
        memset(g->gz, 0, bytes);
        trn_lrelu_backward(g->gz, g->gpre, g->zgc + o, NGCF_SLOPE, nd);
        memset(g->gside, 0, bytes);
        trn_dense_backward(g->gside, tensor(m, m->grads, l, W_GC), tensor(m, m->grads, l, B_GC),
                           g->gz, g->side + o, tensor(m, m->params, l, W_GC), g->nodes, d, d, th);
        memset(g->gz, 0, bytes);
        trn_lrelu_backward(g->gz, g->gpre, g->zbi + o, NGCF_SLOPE, nd);
        memset(g->gp, 0, bytes);
        trn_dense_backward(g->gp, tensor(m, m->grads, l, W_BI), tensor(m, m->grads, l, B_BI), g->gz,
                           g->p_msg + o, tensor(m, m->params, l, W_BI), g->nodes, d, d, th);
        /* dE_{l-1}: through the bi-interaction and through the graph (transposed) */
        float *dprev = l ? g->ge : m->grads;
        if (l)
            memset(g->ge, 0, bytes);
        trn_mul_backward(dprev, g->gside, g->gp, prev, g->side + o, nd);
        eng_csr_spmm_acc(g->tmp, dprev, 1.0f, &adj_t, g->gside, d, th);
    }
    trn_concat_backward(m->grads, g->dfinal, g->nodes, d, g->vd, 0);
    return loss;
}

static int ngcf_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    ngcf_t *g = m->impl;
    eng_csr_t adj, adj_t;
    forward(m, 0, &adj, &adj_t);
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
    eng_csr_t adj, adj_t;
    forward(m, 0, &adj, &adj_t);
    for (int l = 0; l < L; l++) {
        const float *e =
            (l == 0 ? m->params : g->e + (size_t)(l - 1) * nd) + (size_t)m->n_users * d;
        for (int32_t i = 0; i < m->n_items; i++)
            memcpy(g->item_layers + (size_t)i * cols + (size_t)l * d, e + (size_t)i * d,
                   (size_t)d * sizeof(float));
    }
    out[0] = (trn_extra_t){"ngcf.item_layers", g->item_layers, m->n_items, (int64_t)cols,
                           TRN_ROWS_ITEMS};
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
