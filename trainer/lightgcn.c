/* LightGCN: propagation forward/backward and the model's trn_model_ops_t. */
#include "trainer/lightgcn.h"
#include "engine/rng.h"
#include "trainer/graph.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

void trn_lgn_propagate_forward(float *out, float *layer_buf, const eng_csr_t *adj, const float *e0,
                               int dim, int layers, int threads)
{
    const size_t n = (size_t)adj->rows * dim;
    const float scale = 1.0f / (float)(layers + 1);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        out[i] = scale * e0[i];
    const float *prev = e0;
    for (int l = 0; l < layers; l++) {
        float *x = layer_buf + (size_t)l * n;
        eng_csr_spmm_acc(x, out, scale, adj, prev, dim, threads);
        prev = x;
    }
}

void trn_lgn_propagate_backward(float *de0, float *scratch, const float *dout, const eng_csr_t *adj,
                                int dim, int layers, int threads)
{
    const size_t n = (size_t)adj->rows * dim;
    const float scale = 1.0f / (float)(layers + 1);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        de0[i] += scale * dout[i];
    const float *g = dout;
    for (int l = 0; l < layers; l++) {
        float *x = scratch + (size_t)(l & 1) * n;
        eng_csr_spmm_acc(x, de0, scale, adj, g, dim, threads);
        g = x;
    }
}

/* Settings (He et al., SIGIR 2020; the defaults are the paper's). */
typedef struct {
    trn_common_hp_t common;
    int dim;    /* embedding size */
    int layers; /* propagation layers */
} lightgcn_cfg_t;

static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(lightgcn_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(lightgcn_cfg_t, dim, "dim", 64, 1, 4096, "embedding size"),
    TRN_HP_INT(lightgcn_cfg_t, layers, "layers", 3, 0, 16, "propagation layers"),
};

typedef struct {
    int dim, layers;
    eng_csr_t *adj;      /* [N x N], N = users + items */
    float *final;        /* [N x dim] propagated embeddings */
    float *dfinal;       /* [N x dim] their gradient */
    float *layer_out;    /* [layers x N x dim] */
    float *scratch;      /* [2 x N x dim] */
    trn_scores_t scores; /* the batch's rows in the node numbering, scores and their gradients */
    int32_t *rows;       /* [batch x (2 + negatives)] the distinct rows among them */
    int32_t n_rows;
    uint32_t *mark; /* [N] mark[r] == stamp: row r already in rows */
    uint32_t stamp;
    float *item_layers; /* [n_items x layers * dim], built for publishing (extras) */
} lightgcn_t;

static void lightgcn_free(void *impl)
{
    lightgcn_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    free(g->final);
    free(g->dfinal);
    free(g->layer_out);
    free(g->scratch);
    trn_scores_free(&g->scores);
    free(g->rows);
    free(g->mark);
    free(g->item_layers);
    free(g);
}

static size_t lightgcn_n_params(const trn_inputs_t *in, const void *cfg)
{
    const lightgcn_cfg_t *c = cfg;
    return ((size_t)in->train->rows + (size_t)in->train->cols) * (size_t)c->dim;
}

static int lightgcn_vec_dim(const void *cfg)
{
    return ((const lightgcn_cfg_t *)cfg)->dim;
}

static int lightgcn_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const lightgcn_cfg_t *c = m->cfg;
    const size_t nd = m->n_params, cap = (size_t)c->common.batch;
    const size_t nneg = (size_t)c->common.negatives;
    const int L = c->layers;
    lightgcn_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->dim = c->dim;
    g->layers = L;
    g->adj = trn_graph_norm_adj(m->in->train, 0);
    if (!g->adj)
        return ENG_ENOMEM;
    g->final = malloc(nd * sizeof(float));
    g->dfinal = malloc(nd * sizeof(float));
    g->layer_out = malloc((L ? (size_t)L : 1) * nd * sizeof(float));
    g->scratch = malloc(2 * nd * sizeof(float));
    g->rows = malloc((2 + nneg) * cap * sizeof(int32_t));
    g->mark = calloc((size_t)g->adj->rows, sizeof(uint32_t));
    if (!g->final || !g->dfinal || !g->layer_out || !g->scratch || !g->rows || !g->mark ||
        trn_scores_alloc(&g->scores, (int)cap, (int)nneg) < 0)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    /* N(0, 0.1) as the LightGCN code's nn.init.normal_(std=0.1). */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    for (size_t i = 0; i < nd; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    return ENG_OK;
}

static void add_row(lightgcn_t *g, int32_t r)
{
    if (g->mark[r] != g->stamp) {
        g->mark[r] = g->stamp;
        g->rows[g->n_rows++] = r;
    }
}

/* The batch only reads the propagated embeddings of its own rows R, and its loss gradient lives
 * on R alone. So the forward computes the last layer for R only (A^L e0 restricted to R), and the
 * backward's first product A dfinal scatters from R instead of sweeping the whole graph: L-1 full
 * sparse products each way instead of L. Same result as trn_lgn_propagate_forward/backward (a
 * test compares them). */
static double lightgcn_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    lightgcn_t *g = m->impl;
    const int dim = g->dim, L = g->layers, th = m->threads, n = b->n, nneg = b->nneg;
    const size_t nd = m->n_params;
    const float scale = 1.0f / (float)(L + 1);
    const float *e0 = m->params;

    if (++g->stamp == 0) { /* wrapped: forget every mark */
        memset(g->mark, 0, (size_t)g->adj->rows * sizeof *g->mark);
        g->stamp = 1;
    }
    trn_scores_t *sc = &g->scores;
    trn_scores_rows(sc, m, b);
    g->n_rows = 0;
    for (int k = 0; k < n; k++) {
        add_row(g, sc->ru[k]);
        add_row(g, sc->rp[k]);
        for (int j = 0; j < nneg; j++)
            add_row(g, sc->rn[k * nneg + j]);
    }

    /* forward: final[R] = scale * (e0 + X1 + ... + X_{L-1} + A X_{L-1})[R] */
    const float *prev = e0;
    for (int l = 0; l + 1 < L; l++) {
        float *x = g->layer_out + (size_t)l * nd;
        eng_csr_spmm(x, g->adj, prev, dim, th);
        prev = x;
    }
    if (L > 0)
        eng_csr_spmm_rows(g->final, g->adj, prev, dim, g->rows, g->n_rows, th);
    for (int32_t q = 0; q < g->n_rows; q++) {
        size_t off = (size_t)g->rows[q] * dim;
        float *f = g->final + off;
        for (int j = 0; j < dim; j++) {
            float s = e0[off + j] + (L > 0 ? f[j] : 0.0f);
            for (int l = 0; l + 1 < L; l++)
                s += g->layer_out[(size_t)l * nd + off + j];
            f[j] = scale * s;
        }
        memset(g->dfinal + off, 0, (size_t)dim * sizeof(float));
    }

    double loss = trn_scores_eval(sc, g->dfinal, g->final, dim, m, b);

    /* backward: de0 += scale * (I + A + ... + A^L) dfinal, dfinal non-zero on R only */
    for (int32_t q = 0; q < g->n_rows; q++) {
        size_t off = (size_t)g->rows[q] * dim;
        for (int j = 0; j < dim; j++)
            m->grads[off + j] += scale * g->dfinal[off + j];
    }
    if (L > 0) {
        float *g1 = g->scratch;
        memset(g1, 0, nd * sizeof(float));
        eng_csr_scatter_rows(g1, m->grads, scale, g->adj, g->dfinal, dim, g->rows, g->n_rows, th);
        const float *gl = g1;
        for (int l = 1; l < L; l++) {
            float *x = g->scratch + (size_t)(l & 1) * nd;
            eng_csr_spmm_acc(x, m->grads, scale, g->adj, gl, dim, th);
            gl = x;
        }
    }

    /* L2 on the batch's layer-0 rows, scaled decay / 2 / batch, as the LightGCN code. */
    *reg = trn_scores_l2(sc, m->grads, e0, dim, m->hp->decay, b);
    return loss;
}

static int lightgcn_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    lightgcn_t *g = m->impl;
    const int dim = g->dim;
    trn_lgn_propagate_forward(g->final, g->layer_out, g->adj, m->params, dim, g->layers,
                              m->threads);
    memcpy(user_vecs, g->final, (size_t)m->n_users * dim * sizeof(float));
    memcpy(item_vecs, g->final + (size_t)m->n_users * dim,
           (size_t)m->n_items * dim * sizeof(float));
    return ENG_OK;
}

/* What the server folds a new user in with: each item's embedding at layers 0..L-1 (the inputs of
 * the propagation steps a user's layers 1..L sum), one row per item, layer after layer. A model
 * without layers has nothing to propagate and publishes none. */
static int lightgcn_extras(trn_model_t *m, trn_extra_t *out)
{
    lightgcn_t *g = m->impl;
    const int dim = g->dim, L = g->layers;
    if (L == 0)
        return 0;
    const size_t nd = m->n_params, cols = (size_t)L * dim;
    if (!g->item_layers && !(g->item_layers = malloc((size_t)m->n_items * cols * sizeof(float))))
        return ENG_ENOMEM;
    trn_lgn_propagate_forward(g->final, g->layer_out, g->adj, m->params, dim, L, m->threads);
    for (int l = 0; l < L; l++) {
        const float *e =
            (l == 0 ? m->params : g->layer_out + (size_t)(l - 1) * nd) + (size_t)m->n_users * dim;
        for (int32_t i = 0; i < m->n_items; i++)
            memcpy(g->item_layers + (size_t)i * cols + (size_t)l * dim, e + (size_t)i * dim,
                   (size_t)dim * sizeof(float));
    }
    out[0] = (trn_extra_t){"lgn.item_layers", g->item_layers, m->n_items,
                           (int64_t)cols,     TRN_ROWS_ITEMS, STO_F32};
    return 1;
}

/* The layer-0 embeddings: users' rows first, then items'. */
static int lightgcn_views(const trn_model_t *m, trn_view_t *out)
{
    return trn_embedding_views(m, ((const lightgcn_cfg_t *)m->cfg)->dim, out);
}

const trn_model_ops_t trn_lightgcn_ops = {
    .kind = "lightgcn",
    .about = "LightGCN (He et al., SIGIR 2020): linear propagation, layer mean",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(lightgcn_cfg_t),
    .n_params = lightgcn_n_params,
    .vec_dim = lightgcn_vec_dim,
    .init = lightgcn_init,
    .batch_grad = lightgcn_batch_grad,
    .vectors = lightgcn_vectors,
    .views = lightgcn_views,
    .extras = lightgcn_extras,
    .free_impl = lightgcn_free,
};
