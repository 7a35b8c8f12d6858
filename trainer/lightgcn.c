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
    const float *prev = e0;
    for (int l = 0; l < layers; l++) {
        float *x = layer_buf + (size_t)l * n;
        eng_csr_spmm(x, adj, prev, dim, threads);
        prev = x;
    }
    const float scale = 1.0f / (float)(layers + 1);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        float s = e0[i];
        for (int l = 0; l < layers; l++)
            s += layer_buf[(size_t)l * n + i];
        out[i] = s * scale;
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
        eng_csr_spmm(x, adj, g, dim, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; i++)
            de0[i] += scale * x[i];
        g = x;
    }
}

typedef struct {
    eng_csr_t *adj; /* [N x N], N = users + items */
    float *final;   /* [N x dim] propagated embeddings */
    float *dfinal;  /* [N x dim] their gradient */
    float *layers;  /* [layers x N x dim] */
    float *scratch; /* [2 x N x dim] */
    int cap;        /* batch capacity of the arrays below */
    int32_t *ru, *rp, *rn;
    float *pos, *neg, *dpos, *dneg;
} lightgcn_t;

static void lightgcn_free(void *impl)
{
    lightgcn_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    free(g->final);
    free(g->dfinal);
    free(g->layers);
    free(g->scratch);
    free(g->ru);
    free(g->rp);
    free(g->rn);
    free(g->pos);
    free(g->neg);
    free(g->dpos);
    free(g->dneg);
    free(g);
}

static size_t lightgcn_n_params(int32_t n_users, int32_t n_items, const trn_hparams_t *hp)
{
    return ((size_t)n_users + (size_t)n_items) * (size_t)hp->dim;
}

static int lightgcn_init(trn_model_t *m, const eng_csr_t *train)
{
    const size_t nd = m->n_params;
    const int cap = m->hp.batch, L = m->hp.layers;
    lightgcn_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->adj = trn_graph_norm_adj(train);
    g->final = malloc(nd * sizeof(float));
    g->dfinal = malloc(nd * sizeof(float));
    g->layers = malloc((L ? (size_t)L : 1) * nd * sizeof(float));
    g->scratch = malloc(2 * nd * sizeof(float));
    g->cap = cap;
    g->ru = malloc((size_t)cap * sizeof(int32_t));
    g->rp = malloc((size_t)cap * sizeof(int32_t));
    g->rn = malloc((size_t)cap * sizeof(int32_t));
    g->pos = malloc((size_t)cap * sizeof(float));
    g->neg = malloc((size_t)cap * sizeof(float));
    g->dpos = malloc((size_t)cap * sizeof(float));
    g->dneg = malloc((size_t)cap * sizeof(float));
    if (!g->adj || !g->final || !g->dfinal || !g->layers || !g->scratch || !g->ru || !g->rp ||
        !g->rn || !g->pos || !g->neg || !g->dpos || !g->dneg)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    /* N(0, 0.1) as the LightGCN code's nn.init.normal_(std=0.1). */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->hp.seed, 0);
    for (size_t i = 0; i < nd; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    return ENG_OK;
}

static double lightgcn_batch_grad(trn_model_t *m, const trn_batch_t *b)
{
    lightgcn_t *g = m->impl;
    const int dim = m->hp.dim, L = m->hp.layers, th = m->hp.threads, n = b->n;
    const size_t nd = m->n_params;
    const int32_t nu = m->n_users;

    trn_lgn_propagate_forward(g->final, g->layers, g->adj, m->params, dim, L, th);
    for (int k = 0; k < n; k++) {
        g->ru[k] = b->users[k];
        g->rp[k] = nu + b->pos[k];
        g->rn[k] = nu + b->neg[k];
    }
    trn_dot_forward(g->pos, g->final, g->ru, g->rp, n, dim);
    trn_dot_forward(g->neg, g->final, g->ru, g->rn, n, dim);
    double loss = trn_loss_forward(m->hp.loss, g->pos, g->neg, n, m->hp.margin);

    memset(g->dpos, 0, (size_t)n * sizeof(float));
    memset(g->dneg, 0, (size_t)n * sizeof(float));
    trn_loss_backward(m->hp.loss, g->dpos, g->dneg, 1.0f, g->pos, g->neg, n, m->hp.margin);
    memset(g->dfinal, 0, nd * sizeof(float));
    trn_dot_backward(g->dfinal, g->dpos, g->final, g->ru, g->rp, n, dim);
    trn_dot_backward(g->dfinal, g->dneg, g->final, g->ru, g->rn, n, dim);
    trn_lgn_propagate_backward(m->grads, g->scratch, g->dfinal, g->adj, dim, L, th);

    /* L2 on the batch's layer-0 rows, scaled decay / 2 / batch, as the LightGCN code. */
    const float dl2 = m->hp.decay * 0.5f / (float)n;
    trn_l2_backward(m->grads, dl2, m->params, g->ru, n, dim);
    trn_l2_backward(m->grads, dl2, m->params, g->rp, n, dim);
    trn_l2_backward(m->grads, dl2, m->params, g->rn, n, dim);
    return loss;
}

static int lightgcn_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    lightgcn_t *g = m->impl;
    const int dim = m->hp.dim;
    trn_lgn_propagate_forward(g->final, g->layers, g->adj, m->params, dim, m->hp.layers,
                              m->hp.threads);
    memcpy(user_vecs, g->final, (size_t)m->n_users * dim * sizeof(float));
    memcpy(item_vecs, g->final + (size_t)m->n_users * dim,
           (size_t)m->n_items * dim * sizeof(float));
    return ENG_OK;
}

const trn_model_ops_t trn_lightgcn_ops = {
    .kind = "lightgcn",
    .n_params = lightgcn_n_params,
    .init = lightgcn_init,
    .batch_grad = lightgcn_batch_grad,
    .vectors = lightgcn_vectors,
    .free_impl = lightgcn_free,
};
