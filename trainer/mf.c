/* BPR-MF (Rendle et al., UAI 2009): a user and an item embedding, scored by inner product; the
 * baseline of every graph-recommender results table. Trained with the shared losses (BPR by
 * default) and the LightGCN code's regulariser (decay / 2 * squared norms of the batch's rows,
 * divided by the batch size), which makes it LightGCN with zero layers, computed without a graph.
 */
#include "engine/rng.h"
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    trn_common_hp_t common;
    int dim; /* embedding size */
} mf_cfg_t;

/* The defaults of the NGCF and LightGCN papers' MF baseline: dim 64, lr 1e-3, batch 2048. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(mf_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(mf_cfg_t, dim, "dim", 64, 1, 4096, "embedding size"),
};

typedef struct {
    int dim;
    int32_t *ru, *rp;  /* [batch] user rows and positive item rows (items after the users) */
    int32_t *rn, *rnu; /* [batch x negatives] negative item rows and the user row of each */
    float *pos, *neg, *dpos, *dneg;
} mf_t;

static void mf_free(void *impl)
{
    mf_t *f = impl;
    if (!f)
        return;
    free(f->ru);
    free(f->rp);
    free(f->rn);
    free(f->rnu);
    free(f->pos);
    free(f->neg);
    free(f->dpos);
    free(f->dneg);
    free(f);
}

static size_t mf_n_params(const trn_inputs_t *in, const void *cfg)
{
    return ((size_t)in->train->rows + (size_t)in->train->cols) *
           (size_t)((const mf_cfg_t *)cfg)->dim;
}

static int mf_vec_dim(const void *cfg)
{
    return ((const mf_cfg_t *)cfg)->dim;
}

static int mf_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const mf_cfg_t *c = m->cfg;
    const size_t cap = (size_t)c->common.batch, nn = cap * (size_t)c->common.negatives;
    mf_t *f = calloc(1, sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    m->impl = f;
    f->dim = c->dim;
    f->ru = malloc(cap * sizeof(int32_t));
    f->rp = malloc(cap * sizeof(int32_t));
    f->rn = malloc(nn * sizeof(int32_t));
    f->rnu = malloc(nn * sizeof(int32_t));
    f->pos = malloc(cap * sizeof(float));
    f->dpos = malloc(cap * sizeof(float));
    f->neg = malloc(nn * sizeof(float));
    f->dneg = malloc(nn * sizeof(float));
    if (!f->ru || !f->rp || !f->rn || !f->rnu || !f->pos || !f->dpos || !f->neg || !f->dneg)
        return ENG_ENOMEM;
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    return ENG_OK;
}

static double mf_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    mf_t *f = m->impl;
    const trn_common_hp_t *hp = m->hp;
    const int dim = f->dim, n = b->n, nneg = b->nneg, nn = n * nneg;
    const int32_t nu = m->n_users;
    for (int k = 0; k < n; k++) {
        f->ru[k] = b->users[k];
        f->rp[k] = nu + b->pos[k];
        for (int j = 0; j < nneg; j++) {
            f->rnu[k * nneg + j] = b->users[k];
            f->rn[k * nneg + j] = nu + b->neg[k * nneg + j];
        }
    }
    const float *e = m->params;
    trn_dot_forward(f->pos, e, f->ru, f->rp, n, dim);
    trn_dot_forward(f->neg, e, f->rnu, f->rn, nn, dim);
    double loss = trn_loss_forward(hp->loss, f->pos, f->neg, b->rating, n, nneg, hp->margin);
    memset(f->dpos, 0, (size_t)n * sizeof(float));
    memset(f->dneg, 0, (size_t)nn * sizeof(float));
    trn_loss_backward(hp->loss, f->dpos, f->dneg, 1.0f, f->pos, f->neg, b->rating, n, nneg,
                      hp->margin);
    trn_dot_backward(m->grads, f->dpos, e, f->ru, f->rp, n, dim);
    trn_dot_backward(m->grads, f->dneg, e, f->rnu, f->rn, nn, dim);
    const float dl2 = hp->decay * 0.5f / (float)n;
    trn_l2_backward(m->grads, dl2, e, f->ru, n, dim);
    trn_l2_backward(m->grads, dl2, e, f->rp, n, dim);
    trn_l2_backward(m->grads, dl2, e, f->rn, nn, dim);
    *reg = (double)dl2 * (trn_l2_forward(e, f->ru, n, dim) + trn_l2_forward(e, f->rp, n, dim) +
                          trn_l2_forward(e, f->rn, nn, dim));
    return loss;
}

static int mf_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    const size_t du = (size_t)m->n_users * ((mf_t *)m->impl)->dim;
    memcpy(user_vecs, m->params, du * sizeof(float));
    memcpy(item_vecs, m->params + du, (m->n_params - du) * sizeof(float));
    return ENG_OK;
}

static int mf_views(const trn_model_t *m, trn_view_t *out)
{
    return trn_embedding_views(m, ((const mf_cfg_t *)m->cfg)->dim, out);
}

const trn_model_ops_t trn_mf_ops = {
    .kind = "mf",
    .about = "BPR-MF (Rendle et al., UAI 2009): user and item embeddings, inner product",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(mf_cfg_t),
    .n_params = mf_n_params,
    .vec_dim = mf_vec_dim,
    .init = mf_init,
    .batch_grad = mf_batch_grad,
    .vectors = mf_vectors,
    .views = mf_views,
    .free_impl = mf_free,
};
