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
    trn_scores_t scores;
} mf_t;

static void mf_free(void *impl)
{
    mf_t *f = impl;
    if (!f)
        return;
    trn_scores_free(&f->scores);
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
    mf_t *f = calloc(1, sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    m->impl = f;
    f->dim = c->dim;
    if (trn_scores_alloc(&f->scores, c->common.batch, c->common.negatives) < 0)
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
    double loss = trn_scores_loss(&f->scores, m->grads, m->params, f->dim, m, b);
    *reg = trn_scores_l2(&f->scores, m->grads, m->params, f->dim, m->hp->decay, b);
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
