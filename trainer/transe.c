/* TransE (Bordes et al., "Translating Embeddings for Modeling Multi-relational Data", NIPS 2013):
 * an entity and a relation embedding, a triple (h, r, t) scored by -||h + r - t|| in L1 or L2,
 * trained on the knowledge graph alone (TRN_NEEDS_KG_ONLY) with the margin ranking loss against
 * corrupted triples, and evaluated by filtered link prediction on triples it holds out.
 *
 * As the paper's Algorithm 1: embeddings uniform in +-6 / sqrt(dim), relations normalised once,
 * the entities of each minibatch (its heads, tails and corrupted entities) renormalised to unit
 * L2 length before the step, a corrupted triple replacing the head or the tail (even odds) by an
 * entity drawn uniformly (not checked against the graph), loss sum [margin + d(h + r, t) -
 * d(h' + r, t')]_+ (here the batch mean). Departures: Adam instead of SGD; with --negatives N each
 * triple gets N corruptions; --loss bpr is allowed (softplus of the distance difference); an
 * optional L2 term, off by default (decay / 2 / batch * the squared norms of the batch's rows).
 *
 * Served: the entities are the version's items, so the server's similar-items answers with the
 * entities nearest in embedding; there are no users. */
#include "engine/rng.h"
#include "trainer/kg.h"
#include "trainer/kge.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    trn_common_hp_t common;
    int dim;
    int norm;      /* 0: L1, 1: L2 */
    float holdout; /* fraction of the triples held out for link prediction */
} transe_cfg_t;

/* The paper's FB15k setting for dim and margin (k 50, gamma 1). Its best distance there was L1;
 * on kgcn-music L2 ranks far better (filtered MRR 0.83 against 0.43 after 300 epochs,
 * docs/models.md), so L2 is the default. lr 3e-3: Adam's best of 1e-3, 3e-3, 1e-2 there. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON_LOSS(transe_cfg_t, 3e-3, 0, 1024, TRN_LOSS_MARGIN),
    TRN_HP_INT(transe_cfg_t, dim, "dim", 50, 1, 4096, "embedding size"),
    TRN_HP_CHOICE(transe_cfg_t, norm, "norm", 1, "l1|l2", "distance: L1 or L2 norm of h + r - t"),
    TRN_HP_FLOAT(transe_cfg_t, holdout, "holdout", 0.1, 0, 0.5,
                 "fraction of the triples held out for link prediction"),
};

typedef struct {
    int dim, cap, nneg;
    trn_dist_t dist;
    int32_t *train, *test; /* triple indices */
    int64_t n_train, n_test;
    trn_kg_index_t index; /* every triple, for the filtered ranking */
    /* the batch sample() drew: n triples, n * nneg corruptions */
    int n;
    int32_t *h, *r, *t, *hn, *rn, *tn;
    float *eh, *et, *ehn, *etn;     /* gathered rows */
    float *deh, *det, *dehn, *detn; /* their gradients */
    float *dpos, *dneg, *pos, *neg; /* distances, then scores */
    float *gpos, *gneg;             /* loss gradients */
} transe_t;

static void transe_free(void *impl)
{
    transe_t *f = impl;
    if (!f)
        return;
    void *bufs[] = {f->train, f->test, f->h,   f->r,   f->t,    f->hn,  f->rn,   f->tn,
                    f->eh,    f->et,   f->ehn, f->etn, f->deh,  f->det, f->dehn, f->detn,
                    f->dpos,  f->dneg, f->pos, f->neg, f->gpos, f->gneg};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    trn_kg_index_free(&f->index);
    free(f);
}

static size_t transe_n_params(const trn_inputs_t *in, const void *cfg)
{
    return ((size_t)in->kg->n_entities + (size_t)in->kg->n_relations) *
           (size_t)((const transe_cfg_t *)cfg)->dim;
}

static int transe_vec_dim(const void *cfg)
{
    return ((const transe_cfg_t *)cfg)->dim;
}

static float *relations(const trn_model_t *m)
{
    return m->params + (size_t)m->in->kg->n_entities * ((const transe_cfg_t *)m->cfg)->dim;
}

static void unit_rows(float *x, const int32_t *rows, int n, int d)
{
    for (int k = 0; k < n; k++) {
        float *v = x + (size_t)(rows ? rows[k] : k) * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)v[j] * v[j];
        const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int j = 0; j < d; j++)
            v[j] *= inv;
    }
}

static int transe_init(trn_model_t *m, eng_error_t *err)
{
    const transe_cfg_t *c = m->cfg;
    const trn_triples_t *kg = m->in->kg;
    transe_t *f = calloc(1, sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    m->impl = f;
    f->dim = c->dim;
    f->cap = c->common.batch;
    f->nneg = c->common.negatives;
    f->dist = c->norm ? TRN_DIST_L2 : TRN_DIST_L1;
    if (trn_kg_split(kg, c->holdout, m->seed, &f->train, &f->n_train, &f->test, &f->n_test) < 0 ||
        trn_kg_index_build(&f->index, kg) < 0)
        return ENG_ENOMEM;
    if (f->n_train == 0)
        return eng_error_set(err, ENG_EEMPTY, "the knowledge graph has no triple");
    const size_t b = (size_t)f->cap, bn = b * (size_t)f->nneg, d = (size_t)f->dim;
    int32_t **ints[] = {&f->h, &f->r, &f->t};
    for (int i = 0; i < 3; i++)
        if (!(*ints[i] = malloc(b * sizeof **ints[i])))
            return ENG_ENOMEM;
    int32_t **nints[] = {&f->hn, &f->rn, &f->tn};
    for (int i = 0; i < 3; i++)
        if (!(*nints[i] = malloc(bn * sizeof **nints[i])))
            return ENG_ENOMEM;
    float **rows[] = {&f->eh, &f->et, &f->deh, &f->det};
    for (int i = 0; i < 4; i++)
        if (!(*rows[i] = malloc(b * d * sizeof **rows[i])))
            return ENG_ENOMEM;
    float **nrows[] = {&f->ehn, &f->etn, &f->dehn, &f->detn};
    for (int i = 0; i < 4; i++)
        if (!(*nrows[i] = malloc(bn * d * sizeof **nrows[i])))
            return ENG_ENOMEM;
    float **vals[] = {&f->dpos, &f->pos, &f->gpos};
    for (int i = 0; i < 3; i++)
        if (!(*vals[i] = malloc(b * sizeof **vals[i])))
            return ENG_ENOMEM;
    float **nvals[] = {&f->dneg, &f->neg, &f->gneg};
    for (int i = 0; i < 3; i++)
        if (!(*nvals[i] = malloc(bn * sizeof **nvals[i])))
            return ENG_ENOMEM;
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    const double bound = 6.0 / sqrt((double)c->dim);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = (float)(bound * (2 * eng_rng_uniform(&rng) - 1));
    unit_rows(relations(m), NULL, kg->n_relations, c->dim);
    return ENG_OK;
}

static int64_t transe_epoch_examples(const trn_model_t *m)
{
    return ((const transe_t *)m->impl)->n_train;
}

/* n training triples uniformly, each with nneg corruptions; the batch's entities renormalised. */
static void transe_sample(trn_model_t *m, trn_batch_t *b, int n)
{
    transe_t *f = m->impl;
    const trn_triples_t *kg = m->in->kg;
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0x7e00000000ull + (uint64_t)m->adam.step);
    for (int k = 0; k < n; k++) {
        const int32_t i = f->train[eng_rng_below(&rng, (uint32_t)f->n_train)];
        f->h[k] = kg->head[i];
        f->r[k] = kg->rel[i];
        f->t[k] = kg->tail[i];
        for (int j = 0; j < f->nneg; j++) {
            const int q = k * f->nneg + j;
            const int32_t e = (int32_t)eng_rng_below(&rng, (uint32_t)kg->n_entities);
            const int head = (int)(eng_rng_next(&rng) >> 63);
            f->hn[q] = head ? e : f->h[k];
            f->rn[q] = f->r[k];
            f->tn[q] = head ? f->t[k] : e;
        }
    }
    f->n = n;
    unit_rows(m->params, f->h, n, f->dim);
    unit_rows(m->params, f->t, n, f->dim);
    unit_rows(m->params, f->hn, n * f->nneg, f->dim);
    unit_rows(m->params, f->tn, n * f->nneg, f->dim);
    b->n = n;
}

static double transe_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    (void)b;
    transe_t *f = m->impl;
    const int n = f->n, nn = n * f->nneg, d = f->dim;
    const float *ent = m->params, *rel = relations(m);
    float *dent = m->grads, *drel = m->grads + (rel - m->params);
    trn_gather_forward(f->eh, ent, f->h, n, d);
    trn_gather_forward(f->et, ent, f->t, n, d);
    trn_gather_forward(f->ehn, ent, f->hn, nn, d);
    trn_gather_forward(f->etn, ent, f->tn, nn, d);
    trn_trans_forward(f->dpos, f->eh, rel, f->et, f->r, n, d, f->dist);
    trn_trans_forward(f->dneg, f->ehn, rel, f->etn, f->rn, nn, d, f->dist);
    const double value = trn_dist_loss((trn_loss_t)m->hp->loss, f->gpos, f->gneg, f->pos, f->neg,
                                       f->dpos, f->dneg, n, f->nneg, m->hp->margin);
    memset(f->deh, 0, (size_t)n * d * sizeof *f->deh);
    memset(f->det, 0, (size_t)n * d * sizeof *f->det);
    memset(f->dehn, 0, (size_t)nn * d * sizeof *f->dehn);
    memset(f->detn, 0, (size_t)nn * d * sizeof *f->detn);
    trn_trans_backward(f->deh, drel, f->det, f->gpos, f->dpos, f->eh, rel, f->et, f->r, n, d,
                       f->dist);
    trn_trans_backward(f->dehn, drel, f->detn, f->gneg, f->dneg, f->ehn, rel, f->etn, f->rn, nn, d,
                       f->dist);
    /* the optional L2 term on the positive triples' rows */
    const float decay = m->hp->decay;
    double l2 = 0;
    if (decay > 0) {
        l2 = trn_l2_forward(ent, f->h, n, d) + trn_l2_forward(ent, f->t, n, d) +
             trn_l2_forward(rel, f->r, n, d);
        const float scale = decay / 2 / (float)n;
        trn_l2_backward(dent, scale, ent, f->h, n, d);
        trn_l2_backward(dent, scale, ent, f->t, n, d);
        trn_l2_backward(drel, scale, rel, f->r, n, d);
    }
    *reg = decay / 2.0 / n * l2;
    trn_gather_backward(dent, f->deh, f->h, n, d);
    trn_gather_backward(dent, f->det, f->t, n, d);
    trn_gather_backward(dent, f->dehn, f->hn, nn, d);
    trn_gather_backward(dent, f->detn, f->tn, nn, d);
    return value;
}

typedef struct {
    const float *ent, *rel;
    int32_t n_entities;
    int dim;
    trn_dist_t dist;
} scorer_t;

/* -d(h + r, e) for every entity e as the tail, -d(e + r, t) = -d(e, t - r) as the head. */
static void transe_score(const void *ctx, int32_t h, int32_t r, int32_t t, int tail, float *out)
{
    const scorer_t *s = ctx;
    const int d = s->dim;
    float x[4096];
    const float *rv = s->rel + (size_t)r * d;
    const float *anchor = s->ent + (size_t)(tail ? h : t) * d;
    for (int j = 0; j < d; j++)
        x[j] = tail ? anchor[j] + rv[j] : anchor[j] - rv[j];
    for (int32_t e = 0; e < s->n_entities; e++) {
        const float *v = s->ent + (size_t)e * d;
        float acc = 0;
        if (s->dist == TRN_DIST_L1)
            for (int j = 0; j < d; j++)
                acc += fabsf(x[j] - v[j]);
        else {
            for (int j = 0; j < d; j++)
                acc += (x[j] - v[j]) * (x[j] - v[j]);
            acc = sqrtf(acc);
        }
        out[e] = -acc;
    }
}

static int transe_evaluate(trn_model_t *m, trn_metrics_t *out)
{
    transe_t *f = m->impl;
    const scorer_t s = {m->params, relations(m), m->in->kg->n_entities, f->dim, f->dist};
    return trn_kg_link_eval(m->in->kg, f->test, f->n_test, &f->index, transe_score, &s, m->threads,
                            out);
}

/* The entities are the items; there are no users. */
static int transe_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    (void)user_vecs;
    memcpy(item_vecs, m->params,
           (size_t)m->in->kg->n_entities * ((transe_t *)m->impl)->dim * sizeof *item_vecs);
    return ENG_OK;
}

static int transe_views(const trn_model_t *m, trn_view_t *out)
{
    const int64_t d = ((const transe_cfg_t *)m->cfg)->dim, E = m->in->kg->n_entities;
    out[0] = (trn_view_t){"entity_emb", 0, E, d, TRN_ROWS_ITEMS};
    out[1] =
        (trn_view_t){"relation_emb", (size_t)(E * d), m->in->kg->n_relations, d, TRN_ROWS_NONE};
    return 2;
}

const trn_model_ops_t trn_transe_ops = {
    .kind = "transe",
    .about = "TransE (Bordes et al., NIPS 2013): knowledge-graph embeddings, --kg alone",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(transe_cfg_t),
    .needs = TRN_NEEDS_KG | TRN_NEEDS_KG_ONLY,
    .losses = TRN_LOSS_BIT(TRN_LOSS_MARGIN) | TRN_LOSS_BIT(TRN_LOSS_BPR),
    .n_params = transe_n_params,
    .vec_dim = transe_vec_dim,
    .init = transe_init,
    .sample = transe_sample,
    .epoch_examples = transe_epoch_examples,
    .batch_grad = transe_batch_grad,
    .evaluate = transe_evaluate,
    .vectors = transe_vectors,
    .views = transe_views,
    .free_impl = transe_free,
};
