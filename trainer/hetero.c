/* hetero: a heterogeneous graph attention network for user-item ranking, in the manner of HAN
 * (Wang et al., "Heterogeneous Graph Attention Network", WWW 2019) and HGT (Hu et al.,
 * "Heterogeneous Graph Transformer", WWW 2020), over typed nodes: users, items, and, when given,
 * user attribute values (--user-attrs) and item attribute values (--item-attrs), each node with
 * an embedding of its own; relations, each in both directions: interactions, user and item
 * attributes, and (--social) user-user edges.
 *
 * Layer l, for every node v of type t:
 *   - per relation r into t (HGT's relation-specific messages): z_u = h_u W_r for its sources,
 *     attention within the relation as GAT's, alpha_vu = softmax_u LeakyReLU(a_r [z_v || z_u])
 *     (slope 0.2), m_{v,r} = sum_u alpha_vu z_u;
 *   - across relations (HAN's semantic attention, per node as HGT weighs its sources):
 *     beta_{v,r} = softmax_r q_t . tanh(m_{v,r} S_t + c_t) over the relations into t;
 *   - h_v^l = ELU(sum_r beta_{v,r} m_{v,r}) + h_v^{l-1} (HGT's residual).
 * h^0 = e W_t, the type-specific input transform. The vectors are the mean of h^0..h^L for users
 * and items, scored by inner product; BPR and the LightGCN code's regulariser on the batch's
 * embeddings, as the other kinds. The whole graph is computed for each batch (the side datasets
 * are small; a receptive field as gcn's would cut it, not done). */
#include "engine/rng.h"
#include "engine/vec.h"
#include "trainer/attention.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 3
#define SLOPE 0.2f

enum { T_USER, T_ITEM, T_UVAL, T_IVAL, N_TYPES };

/* The relations a run can have: (source type, target type). */
enum { R_UI, R_IU, R_VU, R_UV, R_JI, R_IJ, R_UU, N_RELS };
static const int rel_src[N_RELS] = {T_USER, T_ITEM, T_UVAL, T_USER, T_IVAL, T_ITEM, T_USER};
static const int rel_dst[N_RELS] = {T_ITEM, T_USER, T_USER, T_UVAL, T_ITEM, T_IVAL, T_USER};

typedef struct {
    trn_common_hp_t common;
    int dim, layers;
} hetero_cfg_t;

static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(hetero_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(hetero_cfg_t, dim, "dim", 64, 1, 4096, "embedding size and every layer's width"),
    TRN_HP_INT(hetero_cfg_t, layers, "layers", 2, 1, MAX_LAYERS, "heterogeneous attention layers"),
};

typedef struct {
    int present;           /* the run has edges of this relation */
    eng_csr_t *g;          /* [N x N]: row v's entries are its sources under r */
    int32_t *rows, n_rows; /* the target type's nodes */
    int32_t *cols, n_cols; /* the source and target types' nodes, ascending */
    trn_edges_t e;
    size_t off_w[MAX_LAYERS], off_a[MAX_LAYERS];
    /* per layer: X (h^{l-1} at cols), Z = X W_r, st, logits before and after the LeakyReLU,
     * alpha, m [n_rows x d], and tu = tanh(m S_t + c_t) [n_rows x d] */
    float *x[MAX_LAYERS], *z[MAX_LAYERS], *st[MAX_LAYERS], *pre[MAX_LAYERS], *lg[MAX_LAYERS],
        *alpha[MAX_LAYERS], *m[MAX_LAYERS], *tu[MAX_LAYERS];
    float *dm, *du; /* [n_rows x d] the backward's, one layer at a time */
} rel_t;

typedef struct {
    int dim, L;
    int32_t off[N_TYPES + 1], n[N_TYPES]; /* each type's global node range */
    int32_t nodes;
    size_t off_in[N_TYPES], off_s[MAX_LAYERS][N_TYPES], off_c[MAX_LAYERS][N_TYPES],
        off_q[MAX_LAYERS][N_TYPES];
    rel_t r[N_RELS];
    int into[N_TYPES][N_RELS], n_into[N_TYPES]; /* the relations into each type */
    /* h[l] [nodes x d]; agg[l] the pre-ELU sums; beta[l][t] [n_t x n_into]; final [U + I x d] */
    float *h[MAX_LAYERS + 1], *agg[MAX_LAYERS + 1], *beta[MAX_LAYERS + 1][N_TYPES];
    float *final, *dfinal, *dh, *dh_prev, *dagg, *dz, *dx, *dst, *dlg, *dpre;
    trn_scores_t scores;
    char names[TRN_MAX_VIEWS][40]; /* the views' names that are made up */
} hetero_t;

static void rel_free(rel_t *r)
{
    eng_csr_free(r->g);
    free(r->rows), free(r->cols);
    trn_edges_free(&r->e);
    free(r->dm), free(r->du);
    for (int l = 0; l < MAX_LAYERS; l++)
        free(r->x[l]), free(r->z[l]), free(r->st[l]), free(r->pre[l]), free(r->lg[l]),
            free(r->alpha[l]), free(r->m[l]), free(r->tu[l]);
}

static void hetero_free(void *impl)
{
    hetero_t *g = impl;
    if (!g)
        return;
    for (int r = 0; r < N_RELS; r++)
        rel_free(&g->r[r]);
    for (int l = 0; l <= MAX_LAYERS; l++) {
        free(g->h[l]), free(g->agg[l]);
        for (int t = 0; t < N_TYPES; t++)
            free(g->beta[l][t]);
    }
    void *bufs[] = {g->final, g->dfinal, g->dh,  g->dh_prev, g->dagg,
                    g->dz,    g->dx,     g->dst, g->dlg,     g->dpre};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    trn_scores_free(&g->scores);
    free(g);
}

/* The node counts of each type for these inputs. */
static void type_sizes(const trn_inputs_t *in, int32_t n[N_TYPES])
{
    n[T_USER] = in->train->rows;
    n[T_ITEM] = in->train->cols;
    n[T_UVAL] = in->user_attrs ? in->user_attrs->cols : 0;
    n[T_IVAL] = in->item_attrs ? in->item_attrs->cols : 0;
}

/* Whether relation r has edges in these inputs. */
static int rel_present(const trn_inputs_t *in, int r)
{
    switch (r) {
    case R_UI:
    case R_IU:
        return in->train->nnz > 0;
    case R_VU:
    case R_UV:
        return in->user_attrs && in->user_attrs->nnz > 0;
    case R_JI:
    case R_IJ:
        return in->item_attrs && in->item_attrs->nnz > 0;
    default:
        return in->social && in->social->nnz > 0;
    }
}

/* Parameter layout: the embeddings of every node (types in order), W_t per type, then per layer
 * each present relation's W_r [d x d] and a_r [d x 2], then each type's S_t [d x d], c_t [d] and
 * q_t [d]. */
static size_t layout(const hetero_cfg_t *c, const trn_inputs_t *in, hetero_t *g)
{
    int32_t n[N_TYPES];
    type_sizes(in, n);
    const size_t d = (size_t)c->dim;
    size_t off = 0;
    for (int t = 0; t < N_TYPES; t++)
        off += (size_t)n[t] * d;
    for (int t = 0; t < N_TYPES; t++) {
        if (g)
            g->off_in[t] = off;
        off += n[t] ? d * d : 0;
    }
    for (int l = 0; l < c->layers; l++) {
        for (int r = 0; r < N_RELS; r++) {
            if (!rel_present(in, r))
                continue;
            if (g)
                g->r[r].off_w[l] = off, g->r[r].off_a[l] = off + d * d;
            off += d * d + 2 * d;
        }
        for (int t = 0; t < N_TYPES; t++) {
            if (!n[t])
                continue;
            if (g)
                g->off_s[l][t] = off, g->off_c[l][t] = off + d * d,
                g->off_q[l][t] = off + d * d + d;
            off += d * d + 2 * d;
        }
    }
    return off;
}

static size_t hetero_n_params(const trn_inputs_t *in, const void *cfg)
{
    return layout(cfg, in, NULL);
}

static int hetero_vec_dim(const void *cfg)
{
    return ((const hetero_cfg_t *)cfg)->dim;
}

/* Relation r's graph [N x N]: row v (a target) lists its sources, global ids. */
static eng_csr_t *rel_graph(const hetero_t *g, const trn_inputs_t *in, int r)
{
    const eng_csr_t *m = r == R_UI || r == R_IU   ? in->train
                         : r == R_VU || r == R_UV ? in->user_attrs
                         : r == R_JI || r == R_IJ ? in->item_attrs
                                                  : in->social;
    /* m's rows are of one type (users or items) and its columns of another: which is the source
     * depends on the direction */
    const int row_type = m == in->item_attrs ? T_ITEM : T_USER;
    const int col_type = m == in->train        ? T_ITEM
                         : m == in->user_attrs ? T_UVAL
                         : m == in->item_attrs ? T_IVAL
                                               : T_USER;
    const int forward = rel_dst[r] == col_type && rel_src[r] == row_type;
    int32_t *a = malloc(((size_t)m->nnz + 1) * sizeof *a),
            *b = malloc(((size_t)m->nnz + 1) * sizeof *b);
    eng_csr_t *out = NULL;
    if (a && b) {
        for (int32_t i = 0; i < m->rows; i++)
            for (int64_t k = m->ptr[i]; k < m->ptr[i + 1]; k++) {
                const int32_t x = g->off[row_type] + i, y = g->off[col_type] + m->idx[k];
                a[k] = forward ? y : x; /* target */
                b[k] = forward ? x : y; /* source */
            }
        out = eng_csr_from_pairs(g->nodes, g->nodes, a, b, m->nnz);
    }
    free(a), free(b);
    return out;
}

static int hetero_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const hetero_cfg_t *c = m->cfg;
    hetero_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->dim = c->dim;
    g->L = c->layers;
    type_sizes(m->in, g->n);
    for (int t = 0; t < N_TYPES; t++)
        g->off[t + 1] = g->off[t] + g->n[t];
    g->nodes = g->off[N_TYPES];
    layout(c, m->in, g);
    const size_t N = (size_t)g->nodes, d = (size_t)c->dim;
    int ok = trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) == ENG_OK;
#define ALLOC(ptr, count) ok = ok && ((ptr) = malloc(((size_t)(count) + 1) * sizeof *(ptr))) != NULL
    for (int r = 0; r < N_RELS && ok; r++) {
        rel_t *R = &g->r[r];
        if (!(R->present = rel_present(m->in, r)))
            continue;
        const int s = rel_src[r], t = rel_dst[r];
        g->into[t][g->n_into[t]++] = r;
        ok = (R->g = rel_graph(g, m->in, r)) != NULL && trn_edges_alloc(&R->e, R->g) == ENG_OK;
        ALLOC(R->rows, g->n[t]);
        ALLOC(R->cols, (size_t)g->n[s] + g->n[t]);
        if (!ok)
            break;
        R->n_rows = g->n[t];
        for (int32_t k = 0; k < g->n[t]; k++)
            R->rows[k] = g->off[t] + k;
        /* the two types' ranges, ascending (one when the relation stays in a type) */
        const int lo = s < t ? s : t, hi = s < t ? t : s;
        R->n_cols = 0;
        for (int32_t k = 0; k < g->n[lo]; k++)
            R->cols[R->n_cols++] = g->off[lo] + k;
        for (int32_t k = 0; hi != lo && k < g->n[hi]; k++)
            R->cols[R->n_cols++] = g->off[hi] + k;
        trn_edges_build(&R->e, R->g, R->rows, R->n_rows, R->cols, R->n_cols);
        const size_t nnz = (size_t)R->e.g.nnz;
        for (int l = 0; l < g->L; l++) {
            ALLOC(R->x[l], (size_t)R->n_cols * d);
            ALLOC(R->z[l], (size_t)R->n_cols * d);
            ALLOC(R->st[l], (size_t)R->n_cols * 2);
            ALLOC(R->pre[l], nnz);
            ALLOC(R->lg[l], nnz);
            ALLOC(R->alpha[l], nnz);
            ALLOC(R->m[l], (size_t)R->n_rows * d);
            ALLOC(R->tu[l], (size_t)R->n_rows * d);
        }
        ALLOC(R->dm, (size_t)R->n_rows * d);
        ALLOC(R->du, (size_t)R->n_rows * d);
    }
    size_t most = 1; /* the largest edge set, column list and type */
    for (int r = 0; r < N_RELS; r++)
        if (g->r[r].present) {
            most = most > (size_t)g->r[r].e.g.nnz ? most : (size_t)g->r[r].e.g.nnz;
            most = most > (size_t)g->r[r].n_cols ? most : (size_t)g->r[r].n_cols;
        }
    for (int l = 0; l <= g->L; l++) {
        ALLOC(g->h[l], N * d);
        ALLOC(g->agg[l], N * d);
        for (int t = 0; t < N_TYPES; t++)
            ALLOC(g->beta[l][t], (size_t)g->n[t] * N_RELS);
    }
    ALLOC(g->final, ((size_t)g->n[T_USER] + g->n[T_ITEM]) * d);
    ALLOC(g->dfinal, ((size_t)g->n[T_USER] + g->n[T_ITEM]) * d);
    ALLOC(g->dh, N * d);
    ALLOC(g->dh_prev, N * d);
    ALLOC(g->dagg, N * d);
    ALLOC(g->dz, most * d);
    ALLOC(g->dx, most * d);
    ALLOC(g->dst, most * 2);
    ALLOC(g->dlg, most);
    ALLOC(g->dpre, most);
#undef ALLOC
    if (!ok)
        return ENG_ENOMEM;
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    for (size_t q = 0; q < N * d; q++) /* N(0, 0.1) as mf and lightgcn */
        m->params[q] = (float)(0.1 * eng_rng_normal(&rng));
    for (int t = 0; t < N_TYPES; t++)
        if (g->n[t])
            trn_init_xavier(m->params + g->off_in[t], c->dim, c->dim, &rng);
    for (int l = 0; l < g->L; l++) {
        for (int r = 0; r < N_RELS; r++)
            if (g->r[r].present) {
                trn_init_xavier(m->params + g->r[r].off_w[l], c->dim, c->dim, &rng);
                trn_init_xavier(m->params + g->r[r].off_a[l], c->dim, 2, &rng);
            }
        for (int t = 0; t < N_TYPES; t++)
            if (g->n[t]) {
                trn_init_xavier(m->params + g->off_s[l][t], c->dim, c->dim, &rng);
                trn_init_xavier(m->params + g->off_q[l][t], c->dim, 1, &rng);
            }
    }
    return ENG_OK;
}

/* Every layer on the whole graph, and the final vectors of users and items. */
static void forward(hetero_t *g, const float *P, int th)
{
    const int d = g->dim;
    for (int t = 0; t < N_TYPES; t++)
        if (g->n[t])
            trn_dense_forward(g->h[0] + (size_t)g->off[t] * d, P + (size_t)g->off[t] * d,
                              P + g->off_in[t], NULL, g->n[t], d, d, th);
    for (int l = 0; l < g->L; l++) {
        const float *h = g->h[l];
        for (int r = 0; r < N_RELS; r++) {
            rel_t *R = &g->r[r];
            if (!R->present)
                continue;
            const size_t nnz = (size_t)R->e.g.nnz;
            trn_gather_forward(R->x[l], h, R->cols, R->n_cols, d);
            trn_dense_forward(R->z[l], R->x[l], P + R->off_w[l], NULL, R->n_cols, d, d, th);
            trn_dense_forward(R->st[l], R->z[l], P + R->off_a[l], NULL, R->n_cols, d, 2, th);
            trn_edge_sum_forward(R->pre[l], R->st[l], &R->e, th);
            trn_lrelu_forward(R->lg[l], R->pre[l], SLOPE, nnz);
            trn_edge_softmax_forward(R->alpha[l], R->lg[l], &R->e, th);
            trn_edge_aggregate_forward(R->m[l], R->alpha[l], R->z[l], &R->e, d, th);
            /* the semantic score's argument: tanh(m S_t + c_t) */
            const int t = rel_dst[r];
            trn_dense_forward(R->tu[l], R->m[l], P + g->off_s[l][t], P + g->off_c[l][t], R->n_rows,
                              d, d, th);
            trn_tanh_forward(R->tu[l], R->tu[l],
                             (size_t)R->n_rows * d); /* the backward reads tanh */
        }
        for (int t = 0; t < N_TYPES; t++) {
            const int nr = g->n_into[t];
            float *agg = g->agg[l + 1] + (size_t)g->off[t] * d;
            const float *hp = h + (size_t)g->off[t] * d;
            float *hn = g->h[l + 1] + (size_t)g->off[t] * d;
            if (!nr) { /* no relation reaches the type: it keeps its value */
                memset(agg, 0, (size_t)g->n[t] * d * sizeof *agg);
                memcpy(hn, hp, (size_t)g->n[t] * d * sizeof *hn);
                continue;
            }
            const float *q = P + g->off_q[l][t];
            float *beta = g->beta[l + 1][t];
            for (int32_t v = 0; v < g->n[t]; v++) {
                float *b = beta + (size_t)v * N_RELS;
                for (int k = 0; k < nr; k++)
                    b[k] = eng_dot(q, g->r[g->into[t][k]].tu[l] + (size_t)v * d, d);
                eng_softmax(b, b, (size_t)nr);
                float *a = agg + (size_t)v * d;
                memset(a, 0, (size_t)d * sizeof *a);
                for (int k = 0; k < nr; k++) {
                    const float *mv = g->r[g->into[t][k]].m[l] + (size_t)v * d;
                    for (int j = 0; j < d; j++)
                        a[j] += b[k] * mv[j];
                }
            }
            trn_elu_forward(hn, agg, (size_t)g->n[t] * d, th);
            for (size_t q2 = 0; q2 < (size_t)g->n[t] * d; q2++)
                hn[q2] += hp[q2];
        }
    }
    const size_t ui = ((size_t)g->n[T_USER] + g->n[T_ITEM]) * d; /* users and items lead */
    const float inv = 1.0f / (float)(g->L + 1);
    for (size_t q = 0; q < ui; q++) {
        float s = 0;
        for (int l = 0; l <= g->L; l++)
            s += g->h[l][q];
        g->final[q] = s * inv;
    }
}

static double hetero_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    hetero_t *g = m->impl;
    const int d = g->dim, th = m->threads;
    const float *P = m->params;
    float *G = m->grads;
    forward(g, P, th);
    const size_t ui = ((size_t)g->n[T_USER] + g->n[T_ITEM]) * d, N = (size_t)g->nodes;
    memset(g->dfinal, 0, ui * sizeof *g->dfinal);
    const double loss = trn_scores_loss(&g->scores, g->dfinal, g->final, d, m, b);
    *reg = trn_scores_l2(&g->scores, G, P, d, m->hp->decay, b);
    /* dh: the gradient of h^{l+1}; dh_prev, of h^l, built from it */
    const float inv = 1.0f / (float)(g->L + 1);
    memset(g->dh, 0, N * d * sizeof *g->dh);
    for (size_t q = 0; q < ui; q++)
        g->dh[q] = g->dfinal[q] * inv;
    for (int l = g->L - 1; l >= 0; l--) {
        /* the residual and the final mean's share */
        memcpy(g->dh_prev, g->dh, N * d * sizeof *g->dh_prev);
        for (size_t q = 0; q < ui; q++)
            g->dh_prev[q] += g->dfinal[q] * inv;
        memset(g->dagg, 0, N * d * sizeof *g->dagg);
        trn_elu_backward(g->dagg, g->dh, g->agg[l + 1], N * d, th);
        /* the semantic attention, per type: into each relation's dm and du */
        for (int t = 0; t < N_TYPES; t++) {
            const int nr = g->n_into[t];
            for (int k = 0; k < nr; k++) {
                rel_t *R = &g->r[g->into[t][k]];
                memset(R->dm, 0, (size_t)R->n_rows * d * sizeof *R->dm);
            }
            const float *q = P + g->off_q[l][t], *beta = g->beta[l + 1][t];
            float *dq = G + g->off_q[l][t];
            for (int32_t v = 0; v < g->n[t] && nr; v++) {
                const float *da = g->dagg + ((size_t)g->off[t] + v) * d,
                            *bv = beta + (size_t)v * N_RELS;
                float dbeta[N_RELS], dot = 0;
                for (int k = 0; k < nr; k++) {
                    const rel_t *R = &g->r[g->into[t][k]];
                    dbeta[k] = eng_dot(da, R->m[l] + (size_t)v * d, d);
                    dot += bv[k] * dbeta[k];
                }
                for (int k = 0; k < nr; k++) {
                    rel_t *R = &g->r[g->into[t][k]];
                    const float ds = bv[k] * (dbeta[k] - dot);
                    const float *tu = R->tu[l] + (size_t)v * d;
                    float *dm = R->dm + (size_t)v * d, *du = R->du + (size_t)v * d;
                    for (int j = 0; j < d; j++) {
                        dm[j] += bv[k] * da[j];
                        dq[j] += ds * tu[j];
                        du[j] = ds * q[j] * (1.0f - tu[j] * tu[j]);
                    }
                }
            }
        }
        /* each relation: the semantic score's dense layer, then the attention, back to h^l */
        for (int r = 0; r < N_RELS; r++) {
            rel_t *R = &g->r[r];
            if (!R->present)
                continue;
            const int t = rel_dst[r];
            const size_t nnz = (size_t)R->e.g.nnz, nc = (size_t)R->n_cols;
            trn_dense_backward(R->dm, G + g->off_s[l][t], G + g->off_c[l][t], R->du, R->m[l],
                               P + g->off_s[l][t], R->n_rows, d, d, th);
            memset(g->dz, 0, nc * d * sizeof *g->dz);
            memset(g->dlg, 0, nnz * sizeof *g->dlg);
            trn_edge_aggregate_backward(g->dz, g->dlg, R->dm, R->alpha[l], R->z[l], &R->e, d, th);
            memset(g->dpre, 0, nnz * sizeof *g->dpre);
            trn_edge_softmax_backward(g->dpre, g->dlg, R->alpha[l], &R->e, th);
            memset(g->dlg, 0, nnz * sizeof *g->dlg);
            trn_lrelu_backward(g->dlg, g->dpre, R->pre[l], SLOPE, nnz);
            memset(g->dst, 0, nc * 2 * sizeof *g->dst);
            trn_edge_sum_backward(g->dst, g->dlg, &R->e, th);
            trn_dense_backward(g->dz, G + R->off_a[l], NULL, g->dst, R->z[l], P + R->off_a[l],
                               (int64_t)nc, d, 2, th);
            memset(g->dx, 0, nc * d * sizeof *g->dx);
            trn_dense_backward(g->dx, G + R->off_w[l], NULL, g->dz, R->x[l], P + R->off_w[l],
                               (int64_t)nc, d, d, th);
            trn_gather_backward(g->dh_prev, g->dx, R->cols, (int64_t)nc, d);
        }
        float *swap = g->dh;
        g->dh = g->dh_prev;
        g->dh_prev = swap;
    }
    /* h^0 = e W_t */
    for (int t = 0; t < N_TYPES; t++)
        if (g->n[t])
            trn_dense_backward(G + (size_t)g->off[t] * d, G + g->off_in[t], NULL,
                               g->dh + (size_t)g->off[t] * d, P + (size_t)g->off[t] * d,
                               P + g->off_in[t], g->n[t], d, d, th);
    return loss;
}

static int hetero_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    hetero_t *g = m->impl;
    forward(g, m->params, m->threads);
    const size_t du = (size_t)g->n[T_USER] * g->dim;
    memcpy(user_vecs, g->final, du * sizeof *user_vecs);
    memcpy(item_vecs, g->final + du, (size_t)g->n[T_ITEM] * g->dim * sizeof *item_vecs);
    return ENG_OK;
}

static int hetero_views(const trn_model_t *m, trn_view_t *out)
{
    const hetero_t *g = m->impl;
    const int64_t d = g->dim;
    static const char *emb[N_TYPES] = {"user_emb", "item_emb", "user_value_emb", "item_value_emb"},
                      *win[N_TYPES] = {"W_user", "W_item", "W_user_value", "W_item_value"},
                      *rel[N_RELS] = {"ui", "iu", "vu", "uv", "ji", "ij", "uu"},
                      *typ[N_TYPES] = {"user", "item", "user_value", "item_value"};
    static const trn_rows_t rows_of[N_TYPES] = {TRN_ROWS_USERS, TRN_ROWS_ITEMS, TRN_ROWS_NONE,
                                                TRN_ROWS_NONE};
    char(*names)[40] = ((hetero_t *)m->impl)->names;
    int n = 0;
    for (int t = 0; t < N_TYPES; t++)
        if (g->n[t]) {
            out[n++] = (trn_view_t){emb[t], (size_t)g->off[t] * d, g->n[t], d, rows_of[t]};
            out[n++] = (trn_view_t){win[t], g->off_in[t], d, d, TRN_ROWS_NONE};
        }
    for (int l = 0; l < g->L; l++) {
        for (int r = 0; r < N_RELS; r++)
            if (g->r[r].present && n + 2 <= TRN_MAX_VIEWS) {
                snprintf(names[n], sizeof names[0], "W_%s_%d", rel[r], l + 1);
                out[n] = (trn_view_t){names[n], g->r[r].off_w[l], d, d, TRN_ROWS_NONE};
                n++;
                snprintf(names[n], sizeof names[0], "a_%s_%d", rel[r], l + 1);
                out[n] = (trn_view_t){names[n], g->r[r].off_a[l], d, 2, TRN_ROWS_NONE};
                n++;
            }
        for (int t = 0; t < N_TYPES; t++)
            if (g->n[t] && n + 1 <= TRN_MAX_VIEWS) {
                /* S_t, c_t and q_t are consecutive: one view [d + 2 x d] */
                snprintf(names[n], sizeof names[0], "sem_%s_%d", typ[t], l + 1);
                out[n] = (trn_view_t){names[n], g->off_s[l][t], d + 2, d, TRN_ROWS_NONE};
                n++;
            }
    }
    return n;
}

const trn_model_ops_t trn_hetero_ops = {
    .kind = "hetero",
    .about = "heterogeneous graph attention (HAN/HGT style) over users, items, attribute values",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(hetero_cfg_t),
    .uses = TRN_NEEDS_USER_ATTRS | TRN_NEEDS_ITEM_ATTRS | TRN_NEEDS_SOCIAL,
    .losses =
        TRN_LOSS_BIT(TRN_LOSS_BPR) | TRN_LOSS_BIT(TRN_LOSS_BCE) | TRN_LOSS_BIT(TRN_LOSS_MARGIN),
    .n_params = hetero_n_params,
    .vec_dim = hetero_vec_dim,
    .init = hetero_init,
    .batch_grad = hetero_batch_grad,
    .vectors = hetero_vectors,
    .views = hetero_views,
    .free_impl = hetero_free,
};
