/* GCN (Kipf & Welling, ICLR 2017) for recommendation, as the GCN baseline of the NGCF paper: node
 * embeddings of users and items propagated over the renormalised graph with a weight matrix and
 * a ReLU per layer, the layers' outputs concatenated. docs/models.md has the definition and the
 * choices. Each batch computes each layer at its receptive field only (trainer/field.h). */
#include "engine/rng.h"
#include "trainer/field.h"
#include "trainer/graph.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    trn_common_hp_t common;
    int dim;       /* embedding size and every layer's width */
    int layers;    /* graph convolutions */
    float dropout; /* on every layer's output while training */
} gcn_cfg_t;

#define GCN_MAX_LAYERS 6

/* Two layers as Kipf & Welling, whose deeper models did worse; the common settings as mf's and
 * lightgcn's (the LightGCN protocol). */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(gcn_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(gcn_cfg_t, dim, "dim", 64, 1, 4096, "embedding size and layer width"),
    TRN_HP_INT(gcn_cfg_t, layers, "layers", 2, 1, GCN_MAX_LAYERS, "graph convolution layers"),
    TRN_HP_FLOAT(gcn_cfg_t, dropout, "dropout", 0.1, 0, 0.9, "dropout on each layer's output"),
};

static const char *const weight_names[GCN_MAX_LAYERS] = {"W1", "W2", "W3", "W4", "W5", "W6"};

/* The block: E0 [N x dim] (users' rows, then items'), then W_1..W_L [dim x dim].
 *
 * Layer l's tensors hold the rows field.rows[l] in that order (packed): every row in a whole-graph
 * forward, where they are node-indexed too. */
typedef struct {
    int dim, layers, vd; /* vd = (layers + 1) dim, the published vectors' length */
    int64_t nodes;
    float p;
    eng_csr_t *adj;        /* [N x N] D^-1/2 (A + I) D^-1/2 */
    trn_field_t field;     /* the rows each layer computes */
    float *s, *z, *h;      /* [layers x N x dim]: Â H_{l-1}, its product with W_l, H_l */
    uint8_t *mask;         /* [layers x N x dim] dropout masks */
    float *final, *dfinal; /* [N x vd] [H_0 | H_1 | ... | H_L] at the output rows, its gradient */
    float *x, *gx;         /* [N x dim] node-indexed: the last layer's H, and a layer's gradient */
    float *gh, *ga, *gz;   /* [N x dim] packed backward scratch */
    trn_scores_t scores;
} gcn_t;

static void gcn_free(void *impl)
{
    gcn_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    trn_field_free(&g->field);
    float *bufs[] = {g->s, g->z, g->h, g->final, g->dfinal, g->x, g->gx, g->gh, g->ga, g->gz};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(g->mask);
    trn_scores_free(&g->scores);
    free(g);
}

static size_t gcn_n_params(const trn_inputs_t *in, const void *cfg)
{
    const gcn_cfg_t *c = cfg;
    const size_t d = (size_t)c->dim;
    return ((size_t)in->train->rows + (size_t)in->train->cols) * d + (size_t)c->layers * d * d;
}

static int gcn_vec_dim(const void *cfg)
{
    const gcn_cfg_t *c = cfg;
    return (c->layers + 1) * c->dim;
}

static float *weight(const trn_model_t *m, float *block, int l)
{
    const gcn_t *g = m->impl;
    return block + (size_t)g->nodes * g->dim + (size_t)l * g->dim * g->dim;
}

static int gcn_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const gcn_cfg_t *c = m->cfg;
    gcn_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->dim = c->dim;
    g->layers = c->layers;
    g->vd = (c->layers + 1) * c->dim;
    g->nodes = (int64_t)m->n_users + m->n_items;
    g->p = c->dropout;
    const size_t nd = (size_t)g->nodes * g->dim, L = (size_t)g->layers;
    g->adj = trn_graph_norm_adj(m->in->train, 1);
    g->s = malloc(L * nd * sizeof *g->s);
    g->z = malloc(L * nd * sizeof *g->z);
    g->h = malloc(L * nd * sizeof *g->h);
    g->mask = malloc(L * nd);
    g->final = malloc((size_t)g->nodes * g->vd * sizeof *g->final);
    g->dfinal = malloc((size_t)g->nodes * g->vd * sizeof *g->dfinal);
    float **scr[] = {&g->x, &g->gx, &g->gh, &g->ga, &g->gz};
    int ok = g->adj && g->s && g->z && g->h && g->mask && g->final && g->dfinal &&
             trn_field_alloc(&g->field, (int32_t)g->nodes, g->layers) == 0 &&
             trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) == 0;
    for (size_t i = 0; i < sizeof scr / sizeof *scr; i++)
        ok &= (*scr[i] = malloc(nd * sizeof(float))) != NULL;
    if (!ok)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    /* Embeddings N(0, 0.1) as mf and lightgcn; weights Xavier, as Kipf & Welling's code. */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    for (size_t i = 0; i < nd; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    for (int l = 0; l < g->layers; l++)
        trn_init_xavier(weight(m, m->params, l), g->dim, g->dim, &rng);
    return ENG_OK;
}

/* Row r of x [N x dim] into columns [col, col + d) of final's row r, for the field's output rows.
 */
static void to_final(gcn_t *g, const float *x, int col)
{
    const trn_field_t *f = &g->field;
    for (int32_t q = 0; q < f->n[g->layers]; q++) {
        const size_t r = (size_t)f->rows[g->layers][q];
        memcpy(g->final + r * g->vd + col, x + r * g->dim, (size_t)g->dim * sizeof *x);
    }
}

/* final = [E0 | H_1 | ... | H_L] at the output rows, H_l = dropout(ReLU(Â H_{l-1} W_l)) at layer
 * l's rows, with dropout only when training (masks from the batch's RNG). */
static void forward(trn_model_t *m, int training)
{
    gcn_t *g = m->impl;
    const trn_field_t *f = &g->field;
    const int d = g->dim, th = m->threads;
    const size_t nd = (size_t)g->nodes * d;
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    const float *prev = m->params;
    to_final(g, prev, 0);
    for (int l = 0; l < g->layers; l++) {
        const int32_t *rows = f->rows[l + 1], n = f->n[l + 1];
        const size_t pn = (size_t)n * d;
        float *s = g->s + l * nd, *z = g->z + l * nd, *h = g->h + l * nd;
        eng_csr_spmm_packed(s, g->adj, prev, d, rows, n, th);
        trn_dense_forward(z, s, weight(m, m->params, l), NULL, n, d, d, th);
        trn_lrelu_forward(h, z, 0.0f, pn);
        if (training)
            trn_dropout_forward(h, g->mask + l * nd, h, g->p, pn, &rng, th);
        /* node-indexed for the next layer's product: it reads only rows of this layer */
        trn_field_scatter(f, l + 1, g->x, h, d, th);
        to_final(g, g->x, (l + 1) * d);
        prev = g->x;
    }
}

static double gcn_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    gcn_t *g = m->impl;
    const trn_field_t *f = &g->field;
    const int d = g->dim, th = m->threads, L = g->layers;
    const size_t nd = (size_t)g->nodes * d, row = (size_t)d * sizeof(float);
    trn_scores_rows(&g->scores, m, b);
    trn_field_batch(&g->field, g->adj, &g->scores, b->n, b->nneg);
    forward(m, 1);
    const int32_t *out = f->rows[L], n_out = f->n[L];
    for (int32_t q = 0; q < n_out; q++)
        memset(g->dfinal + (size_t)out[q] * g->vd, 0, (size_t)g->vd * sizeof *g->dfinal);
    double loss = trn_scores_eval(&g->scores, g->dfinal, g->final, g->vd, m, b);

    /* backward, layer L down to 1; gh holds dH_l packed over layer l's rows */
    for (int32_t q = 0; q < n_out; q++)
        memcpy(g->gh + (size_t)q * d, g->dfinal + (size_t)out[q] * g->vd + (size_t)L * d, row);
    for (int l = L - 1; l >= 0; l--) {
        const int32_t *rows = f->rows[l + 1], n = f->n[l + 1];
        const size_t pn = (size_t)n * d;
        memset(g->ga, 0, pn * sizeof *g->ga);
        trn_dropout_backward(g->ga, g->gh, g->mask + l * nd, g->p, pn);
        memset(g->gz, 0, pn * sizeof *g->gz);
        trn_lrelu_backward(g->gz, g->ga, g->z + l * nd, 0.0f, pn);
        /* gs (in ga, free again) = dZ W^T, and dW_l */
        memset(g->ga, 0, pn * sizeof *g->ga);
        trn_dense_backward(g->ga, weight(m, m->grads, l), NULL, g->gz, g->s + l * nd,
                           weight(m, m->params, l), n, d, d, th);
        /* dH_{l-1} = its slice of dfinal + Â^T gs, at the rows layer l read; H_0 is E0 itself */
        float *dprev = l == 0 ? m->grads : g->gx;
        if (l > 0)
            trn_field_zero(f, l, g->gx, d, th);
        for (int32_t q = 0; q < n_out; q++)
            trn_concat_backward(dprev + (size_t)out[q] * d, g->dfinal + (size_t)out[q] * g->vd, 1,
                                d, g->vd, l * d);
        eng_csr_scatter_packed(dprev, g->adj, g->ga, d, rows, n, th);
        if (l > 0)
            trn_field_gather(f, l, g->gh, g->gx, d, th);
    }

    /* decay / 2 / batch * the batch's layer-0 rows (as lightgcn), plus decay / 2 * ||W_l||^2 */
    const float decay = m->hp->decay;
    *reg = trn_scores_l2(&g->scores, m->grads, m->params, d, decay, b);
    static const int32_t row0 = 0;
    for (int l = 0; l < L; l++) {
        const float *w = weight(m, m->params, l);
        trn_l2_backward(weight(m, m->grads, l), 0.5f * decay, w, &row0, 1, d * d);
        *reg += 0.5 * decay * trn_l2_forward(w, &row0, 1, d * d);
    }
    return loss;
}

static int gcn_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    gcn_t *g = m->impl;
    trn_field_all(&g->field);
    forward(m, 0);
    const size_t vu = (size_t)m->n_users * g->vd;
    memcpy(user_vecs, g->final, vu * sizeof *user_vecs);
    memcpy(item_vecs, g->final + vu, (size_t)m->n_items * g->vd * sizeof *item_vecs);
    return ENG_OK;
}

/* user_emb and item_emb (layer 0), then W1..WL. */
static int gcn_views(const trn_model_t *m, trn_view_t *out)
{
    const gcn_cfg_t *c = m->cfg;
    const int64_t d = c->dim;
    int n = trn_embedding_views(m, d, out);
    const size_t e = ((size_t)m->n_users + (size_t)m->n_items) * (size_t)d;
    for (int l = 0; l < c->layers; l++)
        out[n++] = (trn_view_t){weight_names[l], e + (size_t)l * d * d, d, d, TRN_ROWS_NONE};
    return n;
}

const trn_model_ops_t trn_gcn_ops = {
    .kind = "gcn",
    .about = "GCN (Kipf & Welling, ICLR 2017): graph convolutions with weights and ReLU, layers "
             "concatenated",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(gcn_cfg_t),
    .n_params = gcn_n_params,
    .vec_dim = gcn_vec_dim,
    .init = gcn_init,
    .batch_grad = gcn_batch_grad,
    .vectors = gcn_vectors,
    .views = gcn_views,
    .free_impl = gcn_free,
};
