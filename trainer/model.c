/* Model registry, parameter block and the generic training step. */
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

extern const trn_model_ops_t trn_lightgcn_ops, trn_mf_ops, trn_gcn_ops, trn_ngcf_ops, trn_gat_ops,
    trn_graphsage_ops, trn_transe_ops, trn_kgcn_ops, trn_kgat_ops, trn_hetero_ops;

/* Every model kind: adding one is a file and a line here. */
static const trn_model_ops_t *const models[] = {
    &trn_lightgcn_ops,  &trn_mf_ops,     &trn_gcn_ops,  &trn_ngcf_ops, &trn_gat_ops,
    &trn_graphsage_ops, &trn_transe_ops, &trn_kgcn_ops, &trn_kgat_ops, &trn_hetero_ops,
};

#define N_MODELS ((int)(sizeof models / sizeof models[0]))

const trn_model_ops_t *trn_model_find(const char *kind)
{
    for (int i = 0; i < N_MODELS; i++)
        if (strcmp(models[i]->kind, kind) == 0)
            return models[i];
    return NULL;
}

const trn_model_ops_t *const *trn_model_all(int *n)
{
    *n = N_MODELS;
    return models;
}

const char *trn_model_kinds(void)
{
    static char buf[512];
    if (!buf[0])
        for (int i = 0; i < N_MODELS; i++) {
            if (i)
                strcat(buf, " ");
            strcat(buf, models[i]->kind);
        }
    return buf;
}

static const struct {
    unsigned bit;
    const char *what;
} needs[] = {
    {TRN_NEEDS_USER_ATTRS, "user attributes"},
    {TRN_NEEDS_ITEM_ATTRS, "item attributes"},
    {TRN_NEEDS_SOCIAL, "user-user edges"},
    {TRN_NEEDS_KG, "a knowledge graph"},
};

/* The first input ops needs that in lacks, or NULL. */
static const char *missing_input(const trn_model_ops_t *ops, const trn_inputs_t *in)
{
    const void *have[] = {in->user_attrs, in->item_attrs, in->social, in->kg};
    _Static_assert(sizeof have / sizeof *have == sizeof needs / sizeof *needs, "one per input");
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if ((ops->needs & needs[i].bit) && !have[i])
            return needs[i].what;
    return NULL;
}

trn_model_t *trn_model_new(const trn_model_ops_t *ops, const void *cfg, const trn_inputs_t *in,
                           uint64_t seed, int threads, eng_error_t *err)
{
    const char *missing = missing_input(ops, in);
    if (missing) {
        eng_error_set(err, ENG_EINVAL, "model %s needs %s", ops->kind, missing);
        return NULL;
    }
    const trn_common_hp_t *hp = cfg;
    if (ops->losses && !(ops->losses & TRN_LOSS_BIT(hp->loss))) {
        eng_error_set(err, ENG_EINVAL, "model %s does not train with --loss %s (docs/models.md)",
                      ops->kind, trn_loss_name((trn_loss_t)hp->loss));
        return NULL;
    }
    trn_model_t *m = calloc(1, sizeof *m);
    void *c = malloc(ops->config_size);
    if (!m || !c) {
        free(c);
        goto nomem;
    }
    memcpy(c, cfg, ops->config_size);
    m->ops = ops;
    m->cfg = c;
    m->hp = c;
    m->in = in;
    m->n_users = in->train->rows;
    m->n_items = in->train->cols;
    m->seed = seed;
    m->threads = threads > 0 ? threads : 1;
    m->n_params = ops->n_params(in, cfg);
    m->params = calloc(4 * (m->n_params ? m->n_params : 1), sizeof *m->params);
    if (!m->params)
        goto nomem;
    m->grads = m->params + m->n_params;
    m->adam_m = m->grads + m->n_params;
    m->adam_v = m->adam_m + m->n_params;
    m->adam = eng_adam_defaults(m->hp->lr);
    eng_error_t e = {0};
    int rc = ops->init(m, &e);
    if (rc == ENG_ENOMEM)
        goto nomem;
    if (rc < 0) {
        eng_error_set(err, rc, "%s: %s", ops->kind, eng_error_text(&e, rc));
        trn_model_free(m);
        return NULL;
    }
    return m;
nomem:
    eng_error_set(err, ENG_ENOMEM, "out of memory building the %s model", ops->kind);
    trn_model_free(m);
    return NULL;
}

void trn_model_free(trn_model_t *m)
{
    if (!m)
        return;
    if (m->impl)
        m->ops->free_impl(m->impl);
    free((void *)m->cfg);
    free(m->params);
    free(m);
}

double trn_model_step(trn_model_t *m, const trn_batch_t *b)
{
    const eng_row_grads_t *rg = &m->row_grads;
    const size_t head = rg->rows * (size_t)rg->dim;
    memset(m->grads + head, 0, (m->n_params - head) * sizeof *m->grads);
    double reg;
    double loss = m->ops->batch_grad(m, b, &reg);
    if (rg->rows)
        eng_adam_update_rows(&m->adam, m->params, m->grads, m->adam_m, m->adam_v, m->n_params, rg,
                             m->threads);
    else
        eng_adam_update(&m->adam, m->params, m->grads, m->adam_m, m->adam_v, m->n_params,
                        m->threads);
    return loss;
}

/* Stream 0 is the kinds' initialisation and 1 the sampler's; the batches' streams start at 2^32. */
#define BATCH_STREAMS (1ULL << 32)

void trn_model_batch_rng(const trn_model_t *m, eng_rng_t *rng)
{
    eng_rng_seed(rng, m->seed, BATCH_STREAMS + (uint64_t)m->adam.step);
}

int trn_embedding_views(const trn_model_t *m, int64_t dim, trn_view_t *out)
{
    out[0] = (trn_view_t){"user_emb", 0, m->n_users, dim, TRN_ROWS_USERS};
    out[1] = (trn_view_t){"item_emb", (size_t)m->n_users * dim, m->n_items, dim, TRN_ROWS_ITEMS};
    return 2;
}

int trn_model_vectors(trn_model_t *m, float **user_vecs, float **item_vecs)
{
    const size_t dim = (size_t)m->ops->vec_dim(m->cfg);
    float *uv = malloc(((size_t)m->n_users * dim + 1) * sizeof *uv);
    float *iv = malloc(((size_t)m->n_items * dim + 1) * sizeof *iv);
    int rc = uv && iv ? m->ops->vectors(m, uv, iv) : ENG_ENOMEM;
    if (rc < 0) {
        free(uv);
        free(iv);
        uv = iv = NULL;
    }
    *user_vecs = uv;
    *item_vecs = iv;
    return rc;
}

int trn_scores_alloc(trn_scores_t *s, int cap, int nneg)
{
    const size_t n = (size_t)cap, nn = n * (size_t)nneg;
    s->ru = malloc(n * sizeof *s->ru);
    s->rp = malloc(n * sizeof *s->rp);
    s->rn = malloc(nn * sizeof *s->rn);
    s->rnu = malloc(nn * sizeof *s->rnu);
    s->pos = malloc(n * sizeof *s->pos);
    s->dpos = malloc(n * sizeof *s->dpos);
    s->neg = malloc(nn * sizeof *s->neg);
    s->dneg = malloc(nn * sizeof *s->dneg);
    return s->ru && s->rp && s->rn && s->rnu && s->pos && s->dpos && s->neg && s->dneg ? ENG_OK
                                                                                       : ENG_ENOMEM;
}

void trn_scores_free(trn_scores_t *s)
{
    free(s->ru);
    free(s->rp);
    free(s->rn);
    free(s->rnu);
    free(s->pos);
    free(s->dpos);
    free(s->neg);
    free(s->dneg);
}

void trn_scores_rows(trn_scores_t *s, const trn_model_t *m, const trn_batch_t *b)
{
    const int n = b->n, nneg = b->nneg;
    for (int k = 0; k < n; k++) {
        s->ru[k] = b->users[k];
        s->rp[k] = m->n_users + b->pos[k];
        for (int j = 0; j < nneg; j++) {
            s->rnu[k * nneg + j] = b->users[k];
            s->rn[k * nneg + j] = m->n_users + b->neg[k * nneg + j];
        }
    }
}

double trn_scores_loss(trn_scores_t *s, float *demb, const float *emb, int dim,
                       const trn_model_t *m, const trn_batch_t *b)
{
    trn_scores_rows(s, m, b);
    return trn_scores_eval(s, demb, emb, dim, m, b);
}

double trn_scores_eval(trn_scores_t *s, float *demb, const float *emb, int dim,
                       const trn_model_t *m, const trn_batch_t *b)
{
    const trn_common_hp_t *hp = m->hp;
    const int n = b->n, nneg = b->nneg, nn = n * nneg;
    trn_dot_forward(s->pos, emb, s->ru, s->rp, n, dim);
    trn_dot_forward(s->neg, emb, s->rnu, s->rn, nn, dim);
    double loss = trn_loss_forward(hp->loss, s->pos, s->neg, b->rating, n, nneg, hp->margin);
    memset(s->dpos, 0, (size_t)n * sizeof *s->dpos);
    memset(s->dneg, 0, (size_t)nn * sizeof *s->dneg);
    trn_loss_backward(hp->loss, s->dpos, s->dneg, 1.0f, s->pos, s->neg, b->rating, n, nneg,
                      hp->margin);
    trn_dot_backward(demb, s->dpos, emb, s->ru, s->rp, n, dim);
    trn_dot_backward(demb, s->dneg, emb, s->rnu, s->rn, nn, dim);
    return loss;
}

double trn_scores_l2(const trn_scores_t *s, float *demb, const float *emb, int dim, float decay,
                     const trn_batch_t *b)
{
    const int n = b->n, nn = n * b->nneg;
    const float dl2 = decay * 0.5f / (float)n;
    trn_l2_backward(demb, dl2, emb, s->ru, n, dim);
    trn_l2_backward(demb, dl2, emb, s->rp, n, dim);
    trn_l2_backward(demb, dl2, emb, s->rn, nn, dim);
    return (double)dl2 * (trn_l2_forward(emb, s->ru, n, dim) + trn_l2_forward(emb, s->rp, n, dim) +
                          trn_l2_forward(emb, s->rn, nn, dim));
}
