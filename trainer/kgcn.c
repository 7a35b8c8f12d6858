/* KGCN (Wang, Zhao, Xie, Li, Guo, "Knowledge Graph Convolutional Networks for Recommender
 * Systems", WWW 2019), as its public code (hwwang55/KGCN) computes it, with the departures
 * bench/kgcn_torch.py lists (its PyTorch twin).
 *
 * An item is its knowledge-graph entity, represented through a receptive field of the graph: each
 * entity has K neighbours sampled once at the start (the graph made undirected; K without
 * replacement from an entity with at least K, with replacement otherwise; an entity without any
 * gets itself through an extra relation), the field reaching `--hops` H levels. Each of the H
 * iterations updates every level still needed from its neighbours, mixed by the user's attention
 * to their relations: a_k = softmax_k(mean_j(u_j r_kj)), agg = sum_k a_k e_k (the paper's eq. 1;
 * the code also divides by K), then the aggregator: sum act((e + agg) W + b), concat act([e, agg]
 * W + b), neighbor act(agg W + b), ReLU before the last iteration and tanh at it. The score of
 * (u, v) is u . v_u, a logit: BCE against sampled negatives is the default loss, as the paper's
 * CTR training. The regulariser is the code's: decay * (|U|^2 + |E|^2 + |R|^2 + sum |W_i|^2) / 2
 * over the whole matrices every batch (biases not regularised).
 *
 * Because v_u depends on u, KGCN is not an inner-product model: evaluation scores every pair
 * exactly (the `score` op), and the published item vectors are the representations under the
 * mean user's attention, which the server ranks by inner product (docs/models.md measures the
 * gap). */
#include "engine/rng.h"
#include "engine/vec.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { AGG_SUM, AGG_CONCAT, AGG_NEIGHBOR };

#define MAX_HOPS 4

/* Pairs a scoring call forwards at once. */
#define SCORE_CHUNK 4096

typedef struct {
    trn_common_hp_t common;
    int dim;
    int hops;
    int neighbors;
    int aggregator;
} kgcn_cfg_t;

/* The KGCN code's music settings: dim 16, one iteration, 8 neighbours, sum, batch 128, lr 5e-4,
 * l2 1e-4; BCE with one sampled negative per positive. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON_LOSS(kgcn_cfg_t, 5e-4, 1e-4, 128, TRN_LOSS_BCE),
    TRN_HP_INT(kgcn_cfg_t, dim, "dim", 16, 1, 4096, "embedding size"),
    TRN_HP_INT(kgcn_cfg_t, hops, "hops", 1, 1, MAX_HOPS,
               "iterations: depth of the receptive field"),
    TRN_HP_INT(kgcn_cfg_t, neighbors, "neighbors", 8, 1, 64, "neighbours sampled per entity"),
    TRN_HP_CHOICE(kgcn_cfg_t, aggregator, "aggregator", 0, "sum|concat|neighbor",
                  "how an entity and its neighbourhood combine"),
};

/* One forward's tensors, for up to cap pairs. Level h holds cap * K^h nodes. */
typedef struct {
    int64_t cap;
    int32_t *ent[MAX_HOPS + 1], *rel[MAX_HOPS + 1]; /* rel[0] unused */
    float *att[MAX_HOPS + 1];  /* [n_{h-1} x K] the attention of level h's nodes, h >= 1 */
    float *datt[MAX_HOPS + 1]; /* its gradient */
    /* vec[i][h]: level h after i iterations (i + h <= H), [n_h x d]; x and pre the aggregator's
     * input and pre-activation of iteration i at level h (h < H - i) */
    float *vec[MAX_HOPS + 1][MAX_HOPS + 1], *dvec[MAX_HOPS + 1][MAX_HOPS + 1];
    float *x[MAX_HOPS][MAX_HOPS], *pre[MAX_HOPS][MAX_HOPS];
    float *dx, *dpre; /* scratch of the largest level */
    float *score, *dscore;
} pass_t;

typedef struct {
    int dim, hops, K, agg, din;
    int32_t n_users, n_entities, n_rel_rows; /* relations + the self relation */
    int32_t *adj_e, *adj_r;                  /* [n_entities x K] */
    size_t off_e, off_r, off_w[MAX_HOPS], off_b[MAX_HOPS];
    pass_t train, eval;
    int32_t *pairs_u, *pairs_i; /* [cap] the batch's pairs */
    float *mean_user;           /* [dim] */
} kgcn_t;

static int64_t level_nodes(const kgcn_t *f, int64_t pairs, int h)
{
    int64_t n = pairs;
    for (int j = 0; j < h; j++)
        n *= f->K;
    return n;
}

static void pass_free(pass_t *p)
{
    for (int h = 0; h <= MAX_HOPS; h++) {
        free(p->ent[h]), free(p->rel[h]), free(p->att[h]), free(p->datt[h]);
        for (int i = 0; i <= MAX_HOPS; i++)
            free(p->vec[i][h]), free(p->dvec[i][h]);
        for (int i = 0; i < MAX_HOPS && h < MAX_HOPS; i++)
            free(p->x[i][h]), free(p->pre[i][h]);
    }
    free(p->dx), free(p->dpre), free(p->score), free(p->dscore);
}

/* Allocates p for cap pairs; with_grad also the backward's tensors. */
static int pass_alloc(pass_t *p, const kgcn_t *f, int64_t cap, int with_grad)
{
    memset(p, 0, sizeof *p);
    p->cap = cap;
    const int H = f->hops, d = f->dim;
    const size_t top = (size_t)level_nodes(f, cap, H);
    int ok = 1;
#define ALLOC(ptr, count) ok = ok && ((ptr) = malloc(((size_t)(count) + 1) * sizeof *(ptr))) != NULL
    for (int h = 0; h <= H; h++) {
        const size_t n = (size_t)level_nodes(f, cap, h);
        ALLOC(p->ent[h], n);
        if (h > 0) {
            ALLOC(p->rel[h], n);
            ALLOC(p->att[h], n);
            if (with_grad)
                ALLOC(p->datt[h], n);
        }
        for (int i = 0; i + h <= H; i++) {
            ALLOC(p->vec[i][h], n * d);
            if (with_grad)
                ALLOC(p->dvec[i][h], n * d);
            if (i < H && h < H - i) {
                ALLOC(p->x[i][h], n * f->din);
                ALLOC(p->pre[i][h], n * d);
            }
        }
    }
    if (with_grad) {
        ALLOC(p->dx, top * f->din);
        ALLOC(p->dpre, top * d);
        ALLOC(p->dscore, cap);
    }
    ALLOC(p->score, cap);
#undef ALLOC
    return ok ? ENG_OK : ENG_ENOMEM;
}

static void kgcn_free(void *impl)
{
    kgcn_t *f = impl;
    if (!f)
        return;
    pass_free(&f->train);
    pass_free(&f->eval);
    free(f->adj_e), free(f->adj_r), free(f->pairs_u), free(f->pairs_i), free(f->mean_user);
    free(f);
}

/* Parameter layout: U, E, R, then W_i and b_i per iteration. */
static size_t layout(const kgcn_cfg_t *c, const trn_inputs_t *in, kgcn_t *f)
{
    const size_t d = (size_t)c->dim, din = (size_t)(c->aggregator == AGG_CONCAT ? 2 : 1) * d;
    size_t off = (size_t)in->train->rows * d;
    if (f)
        f->off_e = off;
    off += (size_t)in->kg->n_entities * d;
    if (f)
        f->off_r = off;
    off += ((size_t)in->kg->n_relations + 1) * d;
    for (int i = 0; i < c->hops; i++) {
        if (f)
            f->off_w[i] = off;
        off += din * d;
        if (f)
            f->off_b[i] = off;
        off += d;
    }
    return off;
}

static size_t kgcn_n_params(const trn_inputs_t *in, const void *cfg)
{
    return layout(cfg, in, NULL);
}

static int kgcn_vec_dim(const void *cfg)
{
    return ((const kgcn_cfg_t *)cfg)->dim;
}

/* Each entity's K neighbours and their relations in the graph made undirected: every neighbour
 * once when it has at least K (a seeded partial shuffle of its list, kept in list order),
 * otherwise K draws with replacement; an entity without any has itself through the extra
 * relation. */
static int sample_adjacency(kgcn_t *f, const trn_triples_t *kg, uint64_t seed)
{
    const int32_t E = kg->n_entities, K = f->K;
    int64_t *ptr = calloc((size_t)E + 1, sizeof *ptr);
    int32_t *nb = malloc(((size_t)kg->n * 2 + 1) * sizeof *nb);
    int32_t *nr = malloc(((size_t)kg->n * 2 + 1) * sizeof *nr);
    int64_t *fill = malloc(((size_t)E + 1) * sizeof *fill);
    int32_t *pick = malloc(((size_t)K + 1) * sizeof *pick);
    f->adj_e = malloc((size_t)E * K * sizeof *f->adj_e);
    f->adj_r = malloc((size_t)E * K * sizeof *f->adj_r);
    int rc = ENG_ENOMEM;
    if (!ptr || !nb || !nr || !fill || !pick || !f->adj_e || !f->adj_r)
        goto done;
    for (int64_t k = 0; k < kg->n; k++) {
        ptr[kg->head[k] + 1]++;
        ptr[kg->tail[k] + 1]++;
    }
    for (int32_t e = 0; e < E; e++)
        ptr[e + 1] += ptr[e];
    memcpy(fill, ptr, (size_t)E * sizeof *fill);
    for (int64_t k = 0; k < kg->n; k++) { /* file order, the head's entry first */
        nb[fill[kg->head[k]]] = kg->tail[k];
        nr[fill[kg->head[k]]++] = kg->rel[k];
        nb[fill[kg->tail[k]]] = kg->head[k];
        nr[fill[kg->tail[k]]++] = kg->rel[k];
    }
    eng_rng_t rng;
    eng_rng_seed(&rng, seed, 0x6b67636eull); /* "kgcn" */
    for (int32_t e = 0; e < E; e++) {
        const int64_t b = ptr[e], deg = ptr[e + 1] - ptr[e];
        int32_t *oe = f->adj_e + (size_t)e * K, * or = f->adj_r + (size_t)e * K;
        if (deg == 0) {
            for (int k = 0; k < K; k++) {
                oe[k] = e;
                or [k] = kg->n_relations;
            }
        } else if (deg >= K) {
            /* Floyd's sampling of K distinct positions, then in list order */
            int n = 0;
            for (int64_t j = deg - K; j < deg; j++) {
                int64_t t = (int64_t)eng_rng_below(&rng, (uint32_t)j + 1);
                for (int q = 0; q < n; q++)
                    if (pick[q] == t) {
                        t = j;
                        break;
                    }
                pick[n++] = (int32_t)t;
            }
            for (int q = 1; q < K; q++) /* insertion sort: K is small */
                for (int s = q; s > 0 && pick[s - 1] > pick[s]; s--) {
                    const int32_t x = pick[s];
                    pick[s] = pick[s - 1];
                    pick[s - 1] = x;
                }
            for (int k = 0; k < K; k++) {
                oe[k] = nb[b + pick[k]];
                or [k] = nr[b + pick[k]];
            }
        } else {
            for (int k = 0; k < K; k++) {
                const int64_t j = b + eng_rng_below(&rng, (uint32_t)deg);
                oe[k] = nb[j];
                or [k] = nr[j];
            }
        }
    }
    rc = ENG_OK;
done:
    free(ptr), free(nb), free(nr), free(fill), free(pick);
    return rc;
}

static int kgcn_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const kgcn_cfg_t *c = m->cfg;
    const trn_inputs_t *in = m->in;
    kgcn_t *f = calloc(1, sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    m->impl = f;
    f->dim = c->dim;
    f->hops = c->hops;
    f->K = c->neighbors;
    f->agg = c->aggregator;
    f->din = (c->aggregator == AGG_CONCAT ? 2 : 1) * c->dim;
    f->n_users = in->train->rows;
    f->n_entities = in->kg->n_entities;
    f->n_rel_rows = in->kg->n_relations + 1;
    layout(c, in, f);
    const int64_t cap = (int64_t)c->common.batch * (1 + c->common.negatives);
    f->pairs_u = malloc((size_t)cap * sizeof *f->pairs_u);
    f->pairs_i = malloc((size_t)cap * sizeof *f->pairs_i);
    f->mean_user = malloc((size_t)c->dim * sizeof *f->mean_user);
    if (!f->pairs_u || !f->pairs_i || !f->mean_user || sample_adjacency(f, in->kg, m->seed) < 0 ||
        pass_alloc(&f->train, f, cap, 1) < 0 || pass_alloc(&f->eval, f, SCORE_CHUNK, 0) < 0)
        return ENG_ENOMEM;
    /* Glorot uniform for the tables and the W_i (the code's xavier_initializer), b_i zero */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    const int d = c->dim;
    trn_init_xavier(m->params, f->n_users, d, &rng);
    trn_init_xavier(m->params + f->off_e, f->n_entities, d, &rng);
    trn_init_xavier(m->params + f->off_r, f->n_rel_rows, d, &rng);
    for (int i = 0; i < f->hops; i++)
        trn_init_xavier(m->params + f->off_w[i], f->din, d, &rng);
    return ENG_OK;
}

/* The forward of p's first n pairs (users[k] rows of `users`, a [.. x d] table, and items[k]),
 * into p->score[0..n). */
static void forward(const kgcn_t *f, pass_t *p, const float *params, const float *users,
                    const int32_t *uidx, const int32_t *items, int64_t n,
                    const int32_t *item_entity, int threads)
{
    const int H = f->hops, K = f->K, d = f->dim;
    const float *E = params + f->off_e, *R = params + f->off_r;
    for (int64_t k = 0; k < n; k++)
        p->ent[0][k] = item_entity[items[k]];
    for (int h = 1; h <= H; h++) {
        const int64_t np = level_nodes(f, n, h - 1);
        for (int64_t q = 0; q < np; q++) {
            memcpy(p->ent[h] + q * K, f->adj_e + (size_t)p->ent[h - 1][q] * K,
                   (size_t)K * sizeof(int32_t));
            memcpy(p->rel[h] + q * K, f->adj_r + (size_t)p->ent[h - 1][q] * K,
                   (size_t)K * sizeof(int32_t));
        }
    }
    for (int h = 0; h <= H; h++)
        trn_gather_forward(p->vec[0][h], E, p->ent[h], level_nodes(f, n, h), d);
    /* attention: a node at level h - 1 of pair k weighs its K children by the user's scores of
     * their relations */
    for (int h = 1; h <= H; h++) {
        const int64_t np = level_nodes(f, n, h - 1), per_pair = level_nodes(f, 1, h - 1);
        for (int64_t q = 0; q < np; q++) {
            const float *u = users + (size_t)uidx[q / per_pair] * d;
            float *a = p->att[h] + q * K;
            for (int k = 0; k < K; k++)
                a[k] = eng_dot(u, R + (size_t)p->rel[h][q * K + k] * d, d) / (float)d;
            eng_softmax(a, a, (size_t)K);
        }
    }
    for (int i = 0; i < H; i++)
        for (int h = 0; h < H - i; h++) {
            const int64_t nh = level_nodes(f, n, h);
            const float *self = p->vec[i][h], *nbr = p->vec[i][h + 1], *att = p->att[h + 1];
            float *x = p->x[i][h];
            for (int64_t q = 0; q < nh; q++) {
                float *xq = x + q * f->din, *agg = f->agg == AGG_CONCAT ? xq + d : xq;
                memset(agg, 0, (size_t)d * sizeof *agg);
                for (int k = 0; k < K; k++) {
                    const float a = att[q * K + k], *e = nbr + (q * K + k) * d;
                    for (int j = 0; j < d; j++)
                        agg[j] += a * e[j];
                }
                if (f->agg == AGG_SUM)
                    for (int j = 0; j < d; j++)
                        xq[j] += self[q * d + j];
                else if (f->agg == AGG_CONCAT)
                    memcpy(xq, self + q * d, (size_t)d * sizeof *xq);
            }
            trn_dense_forward(p->pre[i][h], x, params + f->off_w[i], params + f->off_b[i], nh,
                              f->din, d, threads);
            if (i < H - 1)
                trn_lrelu_forward(p->vec[i + 1][h], p->pre[i][h], 0.0f, (size_t)nh * d);
            else
                trn_tanh_forward(p->vec[i + 1][h], p->pre[i][h], (size_t)nh * d);
        }
    for (int64_t k = 0; k < n; k++)
        p->score[k] = eng_dot(users + (size_t)uidx[k] * d, p->vec[H][0] + k * d, d);
}

/* The gradient of the forward's n pair scores given p->dscore, ADDED into grads. */
static void backward(const kgcn_t *f, pass_t *p, const float *params, float *grads,
                     const int32_t *uidx, int64_t n, int threads)
{
    const int H = f->hops, K = f->K, d = f->dim;
    const float *U = params, *R = params + f->off_r;
    float *dU = grads, *dE = grads + f->off_e, *dR = grads + f->off_r;
    for (int h = 0; h <= H; h++) {
        for (int i = 0; i + h <= H; i++)
            memset(p->dvec[i][h], 0, (size_t)level_nodes(f, n, h) * d * sizeof(float));
        if (h > 0)
            memset(p->datt[h], 0, (size_t)level_nodes(f, n, h) * sizeof(float));
    }
    for (int64_t k = 0; k < n; k++) {
        const float g = p->dscore[k], *u = U + (size_t)uidx[k] * d, *v = p->vec[H][0] + k * d;
        float *du = dU + (size_t)uidx[k] * d, *dv = p->dvec[H][0] + k * d;
        for (int j = 0; j < d; j++) {
            du[j] += g * v[j];
            dv[j] += g * u[j];
        }
    }
    for (int i = H - 1; i >= 0; i--)
        for (int h = 0; h < H - i; h++) {
            const int64_t nh = level_nodes(f, n, h);
            const size_t cells = (size_t)nh * d;
            memset(p->dpre, 0, cells * sizeof *p->dpre);
            if (i < H - 1)
                trn_lrelu_backward(p->dpre, p->dvec[i + 1][h], p->pre[i][h], 0.0f, cells);
            else
                trn_tanh_backward(p->dpre, p->dvec[i + 1][h], p->vec[i + 1][h], cells);
            memset(p->dx, 0, (size_t)nh * f->din * sizeof *p->dx);
            trn_dense_backward(p->dx, grads + f->off_w[i], grads + f->off_b[i], p->dpre, p->x[i][h],
                               params + f->off_w[i], nh, f->din, d, threads);
            const float *nbr = p->vec[i][h + 1], *att = p->att[h + 1];
            float *dself = p->dvec[i][h], *dnbr = p->dvec[i][h + 1], *datt = p->datt[h + 1];
            for (int64_t q = 0; q < nh; q++) {
                const float *dxq = p->dx + q * f->din;
                const float *dagg = f->agg == AGG_CONCAT ? dxq + d : dxq;
                if (f->agg != AGG_NEIGHBOR)
                    for (int j = 0; j < d; j++)
                        dself[q * d + j] += dxq[j];
                for (int k = 0; k < K; k++) {
                    const size_t c = (size_t)(q * K + k);
                    const float a = att[c], *e = nbr + c * d;
                    float *de = dnbr + c * d, s = 0;
                    for (int j = 0; j < d; j++) {
                        de[j] += a * dagg[j];
                        s += dagg[j] * e[j];
                    }
                    datt[c] += s;
                }
            }
        }
    /* through the softmax to the user-relation scores mean_j(u_j r_j) */
    for (int h = 1; h <= H; h++) {
        const int64_t np = level_nodes(f, n, h - 1), per_pair = level_nodes(f, 1, h - 1);
        for (int64_t q = 0; q < np; q++) {
            const int32_t ui = uidx[q / per_pair];
            const float *a = p->att[h] + q * K, *da = p->datt[h] + q * K, *u = U + (size_t)ui * d;
            float dot = 0;
            for (int k = 0; k < K; k++)
                dot += a[k] * da[k];
            for (int k = 0; k < K; k++) {
                const float ds = a[k] * (da[k] - dot) / (float)d;
                const size_t r = (size_t)p->rel[h][q * K + k];
                float *du = dU + (size_t)ui * d, *dr = dR + r * d;
                const float *rv = R + r * d;
                for (int j = 0; j < d; j++) {
                    du[j] += ds * rv[j];
                    dr[j] += ds * u[j];
                }
            }
        }
    }
    for (int h = 0; h <= H; h++)
        trn_gather_backward(dE, p->dvec[0][h], p->ent[h], level_nodes(f, n, h), d);
}

/* Sum of squares of params[lo, hi); ADDS decay * params there into grads. */
static double l2_range(trn_model_t *m, size_t lo, size_t hi, float decay)
{
    double sq = 0;
    for (size_t q = lo; q < hi; q++) {
        sq += (double)m->params[q] * m->params[q];
        m->grads[q] += decay * m->params[q];
    }
    return sq;
}

static double kgcn_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    kgcn_t *f = m->impl;
    pass_t *p = &f->train;
    const int n = b->n, nneg = b->nneg;
    const int64_t pairs = (int64_t)n * (1 + nneg);
    for (int k = 0; k < n; k++) {
        f->pairs_u[k] = b->users[k];
        f->pairs_i[k] = b->pos[k];
        for (int j = 0; j < nneg; j++) {
            f->pairs_u[n + k * nneg + j] = b->users[k];
            f->pairs_i[n + k * nneg + j] = b->neg[k * nneg + j];
        }
    }
    forward(f, p, m->params, m->params, f->pairs_u, f->pairs_i, pairs, m->in->kg->item_entity,
            m->threads);
    const trn_loss_t loss = (trn_loss_t)m->hp->loss;
    const float *pos = p->score, *neg = p->score + n;
    const double value = trn_loss_forward(loss, pos, neg, NULL, n, nneg, m->hp->margin);
    memset(p->dscore, 0, (size_t)pairs * sizeof *p->dscore);
    trn_loss_backward(loss, p->dscore, p->dscore + n, 1.0f, pos, neg, NULL, n, nneg, m->hp->margin);
    backward(f, p, m->params, m->grads, f->pairs_u, pairs, m->threads);
    /* the code's regulariser: every table and W_i, whole, every batch */
    const float decay = m->hp->decay;
    double sq = l2_range(m, 0, f->off_w[0], decay);
    for (int i = 0; i < f->hops; i++)
        sq += l2_range(m, f->off_w[i], f->off_b[i], decay);
    *reg = decay * sq / 2;
    return value;
}

static int kgcn_score(trn_model_t *m, const int32_t *users, const int32_t *items, int64_t n,
                      float *out)
{
    kgcn_t *f = m->impl;
    for (int64_t k = 0; k < n; k += SCORE_CHUNK) {
        const int64_t c = n - k < SCORE_CHUNK ? n - k : SCORE_CHUNK;
        forward(f, &f->eval, m->params, m->params, users + k, items + k, c, m->in->kg->item_entity,
                m->threads);
        memcpy(out + k, f->eval.score, (size_t)c * sizeof *out);
    }
    return ENG_OK;
}

/* Users: their embeddings. Items: their representations under the mean user's attention. */
static int kgcn_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    kgcn_t *f = m->impl;
    const int d = f->dim;
    memcpy(user_vecs, m->params, (size_t)f->n_users * d * sizeof *user_vecs);
    double mean[4096] = {0};
    for (int32_t u = 0; u < f->n_users; u++)
        for (int j = 0; j < d; j++)
            mean[j] += m->params[(size_t)u * d + j];
    for (int j = 0; j < d; j++)
        f->mean_user[j] = f->n_users ? (float)(mean[j] / f->n_users) : 0.0f;
    static const int32_t zero[SCORE_CHUNK];
    int32_t *items = malloc(SCORE_CHUNK * sizeof *items);
    if (!items)
        return ENG_ENOMEM;
    for (int32_t i0 = 0; i0 < m->n_items; i0 += SCORE_CHUNK) {
        const int32_t c = m->n_items - i0 < SCORE_CHUNK ? m->n_items - i0 : SCORE_CHUNK;
        for (int32_t k = 0; k < c; k++)
            items[k] = i0 + k;
        forward(f, &f->eval, m->params, f->mean_user, zero, items, c, m->in->kg->item_entity,
                m->threads);
        memcpy(item_vecs + (size_t)i0 * d, f->eval.vec[f->hops][0], (size_t)c * d * sizeof(float));
    }
    free(items);
    return ENG_OK;
}

static int kgcn_views(const trn_model_t *m, trn_view_t *out)
{
    const kgcn_t *f = m->impl;
    const int64_t d = f->dim;
    static const char *wn[MAX_HOPS] = {"W1", "W2", "W3", "W4"},
                      *bn[MAX_HOPS] = {"b1", "b2", "b3", "b4"};
    int n = 0;
    out[n++] = (trn_view_t){"user_emb", 0, f->n_users, d, TRN_ROWS_USERS};
    out[n++] = (trn_view_t){"entity_emb", f->off_e, f->n_entities, d, TRN_ROWS_NONE};
    out[n++] = (trn_view_t){"relation_emb", f->off_r, f->n_rel_rows, d, TRN_ROWS_NONE};
    for (int i = 0; i < f->hops; i++) {
        out[n++] = (trn_view_t){wn[i], f->off_w[i], f->din, d, TRN_ROWS_NONE};
        out[n++] = (trn_view_t){bn[i], f->off_b[i], 1, d, TRN_ROWS_NONE};
    }
    return n;
}

const trn_model_ops_t trn_kgcn_ops = {
    .kind = "kgcn",
    .about = "KGCN (Wang et al., WWW 2019): items through their knowledge-graph neighbourhood",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(kgcn_cfg_t),
    .needs = TRN_NEEDS_KG,
    .losses =
        TRN_LOSS_BIT(TRN_LOSS_BCE) | TRN_LOSS_BIT(TRN_LOSS_BPR) | TRN_LOSS_BIT(TRN_LOSS_MARGIN),
    .n_params = kgcn_n_params,
    .vec_dim = kgcn_vec_dim,
    .init = kgcn_init,
    .batch_grad = kgcn_batch_grad,
    .score = kgcn_score,
    .vectors = kgcn_vectors,
    .views = kgcn_views,
    .free_impl = kgcn_free,
};
