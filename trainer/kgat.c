/* KGAT (Wang, He, Cao, Liu, Chua, "KGAT: Knowledge Graph Attention Network for Recommendation",
 * KDD 2019), as its public code and the PyTorch port compute it, with the departures
 * bench/kgat_torch.py (its PyTorch twin) lists.
 *
 * The collaborative knowledge graph (CKG) joins the user-item graph and the knowledge graph:
 * nodes are the entities (each item is its entity) and then the users; every training
 * interaction gives an edge user -> item (relation 0, "interact") and item -> user (R + 1), every
 * triple (h, r, t) an edge h -> t (relation r + 1) and t -> h (R + 2 + r). The attention of an
 * edge is pi(h, r, t) = (e_t W_r) . tanh(e_h W_r + e_r), a softmax over the edges leaving h,
 * computed from the parameters at the start and after every epoch and held fixed in between (as
 * both codes; it takes no gradient from the recommendation loss). A layer is the bi-interaction
 * aggregator, e' = LeakyReLU((e + e_N) W1 + b1) + LeakyReLU((e * e_N) W2 + b2) with e_N = A e and
 * slope 0.2, then message dropout; a node's vector is [e^0, e^1 / |e^1|, ..., e^L / |e^L|].
 *
 * An epoch is a CF phase, then a KG phase, then the attention update: the CF phase's batches of
 * (user, positive, negative) are scored by inner product on their nodes' vectors, each layer
 * computed at the batch's receptive field only (trainer/field.h: the whole graph's values) (BPR,
 * regulariser decay * the mean of |u|^2/2 + |p|^2/2 + |n|^2/2 of the final vectors); the KG
 * phase's batches of (h, r, t, t') from the CKG train TransR, softplus(d(h, r, t) - d(h, r, t'))
 * with d = |e_h W_r + e_r - e_t W_r|^2 plus kg-l2 * the mean squared halves of the projected rows
 * and relation vectors. One Adam steps every parameter in every batch of either phase. The
 * kind's own sampler runs the phases: the training loop sees ceil(interactions / batch) +
 * ceil(CKG edges / kg-batch) steps an epoch, and epoch_end updates the attention. */
#include "engine/rng.h"
#include "engine/vec.h"
#include "trainer/field.h"
#include "trainer/kg.h"
#include "trainer/kge.h"
#include "trainer/layers.h"
#include "trainer/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS TRN_HP_LIST_MAX
#define SLOPE 0.2f
/* Edges whose attention is computed together (bounds the update's buffers). */
#define ATT_CHUNK 4096

typedef struct {
    trn_common_hp_t common; /* decay: the CF regulariser (cf_l2) */
    int dim, rel_dim;
    trn_hp_list_t layers; /* d_1..d_L */
    float dropout;
    int kg_batch;
    float kg_l2;
} kgat_cfg_t;

/* The defaults of both public codes: dims 64, layers 64,32,16, message dropout 0.1, lr 1e-4,
 * cf and kg l2 1e-5, batches 1024 and 2048. */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(kgat_cfg_t, 1e-4, 1e-5, 1024),
    TRN_HP_INT(kgat_cfg_t, dim, "dim", 64, 1, 4096, "embedding size of nodes"),
    TRN_HP_INT(kgat_cfg_t, rel_dim, "rel-dim", 64, 1, 4096, "embedding size of relations"),
    TRN_HP_LIST(kgat_cfg_t, layers, "layer-dims", "64,32,16", 1, 4096, "each layer's width"),
    TRN_HP_FLOAT(kgat_cfg_t, dropout, "dropout", 0.1, 0, 0.95, "message dropout, every layer"),
    TRN_HP_INT(kgat_cfg_t, kg_batch, "kg-batch", 2048, 1, 1 << 24, "triples per KG batch"),
    TRN_HP_FLOAT(kgat_cfg_t, kg_l2, "kg-l2", 1e-5, 0, 1e6, "L2 weight of the TransR loss"),
};

typedef struct {
    int L, dims[MAX_LAYERS + 1], vd, dr;  /* dims[0] = dim; vd = the final vectors' length */
    int32_t n_users, n_ent, nodes, n_rel; /* n_rel: CKG relations, 2R + 2 */
    size_t off_rel, off_wr, off_w1[MAX_LAYERS], off_b1[MAX_LAYERS], off_w2[MAX_LAYERS],
        off_b2[MAX_LAYERS];
    /* the CKG: A's rows are heads, its entries the edges (rel per entry), values the attention */
    eng_csr_t *A;
    int32_t *edge_rel, *by_rel; /* by_rel: A's entries ordered by relation */
    trn_field_t field;          /* the rows each layer of a CF batch computes */
    int32_t *heads, n_heads;    /* nodes with an edge out */
    trn_triples_t ckg;          /* the edges as triples, for the index */
    int32_t *ckg_head;
    trn_kg_index_t index;
    /* the phases */
    int n_cf, n_kg, step, kg_phase, kg_cap;
    trn_sampler_t *sampler;
    int32_t *kh, *kr, *kt, *kn; /* the KG batch, sorted by relation */
    int32_t *kdraw;             /* [4 x kg-batch] the batch as drawn */
    int32_t *count;             /* [n_rel + 1] */
    /* the CF forward, whole graph: per layer l >= 1 */
    float *side[MAX_LAYERS + 1], *S[MAX_LAYERS + 1], *P[MAX_LAYERS + 1], *A1[MAX_LAYERS + 1],
        *A2[MAX_LAYERS + 1], *X[MAX_LAYERS + 1], *xs[MAX_LAYERS + 1], *Xn[MAX_LAYERS + 1],
        *dX[MAX_LAYERS + 1];
    uint8_t *mask[MAX_LAYERS + 1];
    float *tmp, *dS, *dP, *dside, *dA1, *dA2; /* [nodes x max width] */
    /* the batch's nodes, packed */
    int32_t *mark, *bnodes, nb;
    float *fin, *dfin, *nrm, *nrm_div, *dnrm; /* [cap x vd], [cap x vd], [cap x width] ... */
    trn_scores_t scores;
    /* the KG step's rows */
    float *xh, *xt, *xn, *ph, *pt, *pn, *dxh, *dxt, *dxn, *dph, *dpt, *dpn;
    float *dpos, *dneg, *gpos, *gneg, *spos, *sneg;
    /* what explanations need: each user's node, and names of the entities and CKG relations */
    int32_t *user_node;
    eng_idmap_t *ent_names, *rel_names;
    /* the attention update's chunk */
    float *ah, *at, *aph, *apt, *logit;
    int32_t *ar;
} kgat_t;

static void kgat_free(void *impl)
{
    kgat_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->A);
    trn_field_free(&g->field);
    eng_idmap_free(g->ent_names);
    eng_idmap_free(g->rel_names);
    trn_kg_index_free(&g->index);
    trn_sampler_free(g->sampler);
    trn_scores_free(&g->scores);
    void *bufs[] = {g->edge_rel, g->by_rel, g->heads, g->ckg_head, g->kh,    g->kr,   g->kt,
                    g->kn,       g->kdraw,  g->count, g->tmp,      g->dS,    g->dP,   g->dside,
                    g->dA1,      g->dA2,    g->mark,  g->bnodes,   g->fin,   g->dfin, g->nrm,
                    g->nrm_div,  g->dnrm,   g->xh,    g->xt,       g->xn,    g->ph,   g->pt,
                    g->pn,       g->dxh,    g->dxt,   g->dxn,      g->dph,   g->dpt,  g->dpn,
                    g->dpos,     g->dneg,   g->gpos,  g->gneg,     g->spos,  g->sneg, g->user_node,
                    g->ah,       g->at,     g->aph,   g->apt,      g->logit, g->ar};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    for (int l = 0; l <= MAX_LAYERS; l++) {
        free(g->side[l]), free(g->S[l]), free(g->P[l]), free(g->A1[l]), free(g->A2[l]);
        free(g->X[l]), free(g->xs[l]), free(g->Xn[l]), free(g->dX[l]), free(g->mask[l]);
    }
    free(g);
}

/* Parameter layout: E [nodes x d] (entities, then users), Rm [n_rel x dr], W_R [n_rel x d x dr],
 * then W1, b1, W2, b2 per layer. */
static size_t layout(const kgat_cfg_t *c, const trn_inputs_t *in, kgat_t *g)
{
    const size_t nodes = (size_t)in->kg->n_entities + (size_t)in->train->rows;
    const size_t n_rel = 2 * (size_t)in->kg->n_relations + 2, d = (size_t)c->dim;
    size_t off = nodes * d;
    if (g)
        g->off_rel = off;
    off += n_rel * (size_t)c->rel_dim;
    if (g)
        g->off_wr = off;
    off += n_rel * d * (size_t)c->rel_dim;
    size_t din = d;
    for (int l = 0; l < c->layers.n; l++) {
        const size_t dout = (size_t)c->layers.v[l];
        if (g)
            g->off_w1[l] = off, g->off_b1[l] = off + din * dout,
            g->off_w2[l] = off + din * dout + dout, g->off_b2[l] = off + 2 * din * dout + dout;
        off += 2 * (din * dout + dout);
        din = dout;
    }
    return off;
}

static size_t kgat_n_params(const trn_inputs_t *in, const void *cfg)
{
    return layout(cfg, in, NULL);
}

static int kgat_vec_dim(const void *cfg)
{
    const kgat_cfg_t *c = cfg;
    int vd = c->dim;
    for (int l = 0; l < c->layers.n; l++)
        vd += c->layers.v[l];
    return vd;
}

/* The CKG as A: edges grouped by head, each head's sorted by tail. */
static int build_ckg(kgat_t *g, const trn_inputs_t *in)
{
    const eng_csr_t *t = in->train;
    const trn_triples_t *kg = in->kg;
    const int R = kg->n_relations;
    const int64_t M = 2 * (t->nnz + kg->n);
    int32_t *h = malloc(((size_t)M + 1) * sizeof *h), *r = malloc(((size_t)M + 1) * sizeof *r),
            *tl = malloc(((size_t)M + 1) * sizeof *tl);
    g->A = eng_csr_new(g->nodes, g->nodes, M, 1);
    g->edge_rel = malloc(((size_t)M + 1) * sizeof *g->edge_rel);
    g->by_rel = malloc(((size_t)M + 1) * sizeof *g->by_rel);
    g->ckg_head = malloc(((size_t)M + 1) * sizeof *g->ckg_head);
    g->heads = malloc(((size_t)g->nodes + 1) * sizeof *g->heads);
    g->count = calloc((size_t)g->n_rel + 1, sizeof *g->count);
    int rc = ENG_ENOMEM;
    if (!h || !r || !tl || !g->A || !g->edge_rel || !g->by_rel || !g->ckg_head || !g->heads ||
        !g->count)
        goto done;
    int64_t k = 0;
    for (int32_t u = 0; u < t->rows; u++)
        for (int64_t q = t->ptr[u]; q < t->ptr[u + 1]; q++) {
            const int32_t user = g->n_ent + u, item = kg->item_entity[t->idx[q]];
            h[k] = user, r[k] = 0, tl[k++] = item;
            h[k] = item, r[k] = R + 1, tl[k++] = user;
        }
    for (int64_t q = 0; q < kg->n; q++) {
        h[k] = kg->head[q], r[k] = kg->rel[q] + 1, tl[k++] = kg->tail[q];
        h[k] = kg->tail[q], r[k] = R + 2 + kg->rel[q], tl[k++] = kg->head[q];
    }
    /* counting sorts: by tail, then stably by head, so each row of A is sorted by column (the
     * sparse products' kernels split rows by column ranges); then by relation for the attention */
    int64_t *fill = calloc((size_t)g->nodes + 1, sizeof *fill);
    int64_t *by_tail = malloc(((size_t)M + 1) * sizeof *by_tail);
    if (!fill || !by_tail) {
        free(fill), free(by_tail);
        goto done;
    }
    for (k = 0; k < M; k++)
        fill[tl[k] + 1]++;
    for (int32_t v = 0; v < g->nodes; v++)
        fill[v + 1] += fill[v];
    for (k = 0; k < M; k++)
        by_tail[fill[tl[k]]++] = k;
    for (k = 0; k < M; k++)
        g->A->ptr[h[k] + 1]++;
    for (int32_t v = 0; v < g->nodes; v++)
        g->A->ptr[v + 1] += g->A->ptr[v];
    memcpy(fill, g->A->ptr, (size_t)g->nodes * sizeof *fill);
    for (int64_t q = 0; q < M; q++) {
        const int64_t j = by_tail[q], e = fill[h[j]]++;
        g->A->idx[e] = tl[j];
        g->edge_rel[e] = r[j];
        g->ckg_head[e] = h[j];
    }
    free(fill);
    free(by_tail);
    for (int64_t e = 0; e < M; e++)
        g->count[g->edge_rel[e] + 1]++;
    for (int q = 0; q < g->n_rel; q++)
        g->count[q + 1] += g->count[q];
    int32_t *pos = malloc(((size_t)g->n_rel + 1) * sizeof *pos);
    if (!pos)
        goto done;
    memcpy(pos, g->count, (size_t)g->n_rel * sizeof *pos);
    for (int64_t e = 0; e < M; e++)
        g->by_rel[pos[g->edge_rel[e]]++] = (int32_t)e;
    free(pos);
    g->n_heads = 0;
    for (int32_t v = 0; v < g->nodes; v++)
        if (g->A->ptr[v + 1] > g->A->ptr[v])
            g->heads[g->n_heads++] = v;
    g->ckg = (trn_triples_t){M,        g->ckg_head, g->edge_rel, g->A->idx, g->nodes,
                             g->n_rel, NULL,        NULL,        NULL};
    rc = trn_kg_index_build(&g->index, &g->ckg);
done:
    free(h), free(r), free(tl);
    return rc;
}

/* pi(h, r, t) for every edge from the current parameters, then a softmax over each head's
 * edges: A's values. Edges by relation, in chunks; within a chunk, every step shared among th
 * threads, each edge's arithmetic the same whatever their number. */
static void update_attention(kgat_t *g, const float *params, int th)
{
    const int d = g->dims[0], dr = g->dr;
    const float *E = params, *Rm = params + g->off_rel, *WR = params + g->off_wr;
    const int64_t M = g->A->nnz;
    for (int64_t c0 = 0; c0 < M; c0 += ATT_CHUNK) {
        const int n = (int)(M - c0 < ATT_CHUNK ? M - c0 : ATT_CHUNK);
        const int32_t *es = g->by_rel + c0;
#pragma omp parallel for schedule(static) num_threads(th)
        for (int k = 0; k < n; k++) {
            g->ar[k] = g->edge_rel[es[k]];
            memcpy(g->ah + (size_t)k * d, E + (size_t)g->ckg_head[es[k]] * d, d * sizeof(float));
            memcpy(g->at + (size_t)k * d, E + (size_t)g->A->idx[es[k]] * d, d * sizeof(float));
        }
        trn_project_forward(g->aph, g->ah, WR, g->ar, n, d, dr, th);
        trn_project_forward(g->apt, g->at, WR, g->ar, n, d, dr, th);
#pragma omp parallel for schedule(static) num_threads(th)
        for (int k = 0; k < n; k++) {
            const float *hp = g->aph + (size_t)k * dr, *tp = g->apt + (size_t)k * dr,
                        *rv = Rm + (size_t)g->ar[k] * dr;
            float s = 0;
            for (int j = 0; j < dr; j++)
                s += tp[j] * eng_tanh(hp[j] + rv[j]);
            g->A->val[es[k]] = s;
        }
    }
#pragma omp parallel for schedule(dynamic, 256) num_threads(th)
    for (int32_t v = 0; v < g->nodes; v++) {
        const int64_t b = g->A->ptr[v], n = g->A->ptr[v + 1] - b;
        if (n)
            eng_softmax(g->A->val + b, g->A->val + b, (size_t)n);
    }
}

/* The name of index i in names, or its decimal when there are no names. */
static const char *name_or_index(const eng_idmap_t *names, int32_t i, char *buf, size_t len)
{
    if (names && i < eng_idmap_size(names))
        return eng_idmap_name(names, i);
    snprintf(buf, len, "%d", (int)i);
    return buf;
}

static int intern(eng_idmap_t *m, const char *s)
{
    return eng_idmap_intern(m, s, strlen(s)) < 0 ? ENG_ENOMEM : ENG_OK;
}

/* Every CKG node's user row, and the names explanations print: the entities', and the CKG
 * relations' (interact, the graph's own, interacted_by, then each graph relation reversed, "~r").
 */
static int explain_names(kgat_t *g, const trn_triples_t *kg)
{
    char buf[64], rev[512];
    if (!(g->user_node = malloc(((size_t)g->n_users + 1) * sizeof *g->user_node)) ||
        !(g->ent_names = eng_idmap_new()) || !(g->rel_names = eng_idmap_new()))
        return ENG_ENOMEM;
    for (int32_t u = 0; u < g->n_users; u++)
        g->user_node[u] = g->n_ent + u;
    for (int32_t e = 0; e < g->n_ent; e++)
        if (intern(g->ent_names, name_or_index(kg->entity_names, e, buf, sizeof buf)) < 0)
            return ENG_ENOMEM;
    const int32_t R = kg->n_relations;
    for (int32_t r = -1; r <= R; r++) { /* interact, the graph's, interacted_by */
        const char *s = r < 0    ? "interact"
                        : r == R ? "interacted_by"
                                 : name_or_index(kg->relation_names, r, buf, sizeof buf);
        if (intern(g->rel_names, s) < 0)
            return ENG_ENOMEM;
    }
    for (int32_t r = 0; r < R; r++) {
        snprintf(rev, sizeof rev, "~%s", name_or_index(kg->relation_names, r, buf, sizeof buf));
        if (intern(g->rel_names, rev) < 0)
            return ENG_ENOMEM;
    }
    /* a graph relation named like another reversed would merge two names: keep them apart */
    return eng_idmap_size(g->rel_names) == g->n_rel ? ENG_OK : ENG_EINVAL;
}

static int kgat_init(trn_model_t *m, eng_error_t *err)
{
    (void)err;
    const kgat_cfg_t *c = m->cfg;
    const trn_inputs_t *in = m->in;
    kgat_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    g->L = c->layers.n;
    g->dims[0] = c->dim;
    int wmax = c->dim;
    for (int l = 0; l < g->L; l++) {
        g->dims[l + 1] = c->layers.v[l];
        wmax = wmax > c->layers.v[l] ? wmax : c->layers.v[l];
    }
    g->vd = kgat_vec_dim(c);
    g->dr = c->rel_dim;
    g->n_users = in->train->rows;
    g->n_ent = in->kg->n_entities;
    g->nodes = g->n_ent + g->n_users;
    g->n_rel = 2 * in->kg->n_relations + 2;
    layout(c, in, g);
    if (build_ckg(g, in) < 0)
        return ENG_ENOMEM;
    int rc = explain_names(g, in->kg);
    if (rc == ENG_EINVAL)
        return eng_error_set(err, rc,
                             "relation names collide with the reversed ones kgat makes (\"~r\")");
    if (rc < 0)
        return rc;
    const int b = c->common.batch, nneg = c->common.negatives, kb = c->kg_batch;
    g->n_cf = (int)((in->train->nnz + b - 1) / b);
    g->n_kg = (int)((g->A->nnz + kb - 1) / kb);
    g->kg_cap = kb;
    const size_t N = (size_t)g->nodes, cap = (size_t)b * (2 + nneg);
    int ok = (g->sampler = trn_sampler_new(in->train, m->seed ^ 0x6b676174ull)) != NULL &&
             trn_scores_alloc(&g->scores, b, nneg) == ENG_OK;
#define ALLOC(ptr, count) ok = ok && ((ptr) = malloc(((size_t)(count) + 1) * sizeof *(ptr))) != NULL
    for (int l = 1; l <= g->L; l++) {
        const size_t din = (size_t)g->dims[l - 1], dout = (size_t)g->dims[l];
        ALLOC(g->side[l], N * din);
        ALLOC(g->S[l], N * din);
        ALLOC(g->P[l], N * din);
        ALLOC(g->A1[l], N * dout);
        ALLOC(g->A2[l], N * dout);
        ALLOC(g->X[l], N * dout);
        ALLOC(g->xs[l], N * din);
        ALLOC(g->Xn[l], N * dout);
        ALLOC(g->dX[l], N * dout);
        ALLOC(g->mask[l], N * dout);
    }
    ALLOC(g->tmp, N * wmax);
    ALLOC(g->dS, N * wmax);
    ALLOC(g->dP, N * wmax);
    ALLOC(g->dside, N * wmax);
    ALLOC(g->dA1, N * wmax);
    ALLOC(g->dA2, N * wmax);
    ALLOC(g->bnodes, cap);
    ALLOC(g->fin, cap * g->vd);
    ALLOC(g->dfin, cap * g->vd);
    ALLOC(g->nrm, cap * (size_t)(g->vd - c->dim));
    ALLOC(g->dnrm, cap * wmax);
    ALLOC(g->nrm_div, cap * (size_t)(g->L + 1));
    const size_t d = (size_t)c->dim, dr = (size_t)c->rel_dim;
    ALLOC(g->kh, kb);
    ALLOC(g->kr, kb);
    ALLOC(g->kt, kb);
    ALLOC(g->kn, kb);
    ALLOC(g->kdraw, 4 * (size_t)kb);
    float **kgrows[] = {&g->xh, &g->xt, &g->xn, &g->dxh, &g->dxt, &g->dxn};
    for (int i = 0; i < 6; i++)
        ALLOC(*kgrows[i], (size_t)kb * d);
    float **kgproj[] = {&g->ph, &g->pt, &g->pn, &g->dph, &g->dpt, &g->dpn};
    for (int i = 0; i < 6; i++)
        ALLOC(*kgproj[i], (size_t)kb * dr);
    float **kgvals[] = {&g->dpos, &g->dneg, &g->gpos, &g->gneg, &g->spos, &g->sneg};
    for (int i = 0; i < 6; i++)
        ALLOC(*kgvals[i], kb);
    ALLOC(g->ah, (size_t)ATT_CHUNK * d);
    ALLOC(g->at, (size_t)ATT_CHUNK * d);
    ALLOC(g->aph, (size_t)ATT_CHUNK * dr);
    ALLOC(g->apt, (size_t)ATT_CHUNK * dr);
    ALLOC(g->ar, ATT_CHUNK);
#undef ALLOC
    if (!ok || !(g->mark = malloc(N * sizeof *g->mark)) ||
        trn_field_alloc(&g->field, g->nodes, g->L) < 0)
        return ENG_ENOMEM;
    for (int l = 1; l <= g->L; l++) /* all kept, until a dropout draws them */
        memset(g->mask[l], 1, N * (size_t)g->dims[l]);
    for (size_t v = 0; v < N; v++)
        g->mark[v] = -1;
    /* Xavier uniform everywhere but the biases (zero); W_R's bound as torch's for a 3-D tensor:
     * fan_in d * dr, fan_out n_rel * dr */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    trn_init_xavier(m->params, g->nodes, c->dim, &rng);
    trn_init_xavier(m->params + g->off_rel, g->n_rel, g->dr, &rng);
    const double bound = sqrt(6.0 / ((double)g->dr * (c->dim + g->n_rel)));
    for (size_t q = 0; q < (size_t)g->n_rel * d * dr; q++)
        m->params[g->off_wr + q] = (float)(bound * (2 * eng_rng_uniform(&rng) - 1));
    for (int l = 0; l < g->L; l++) {
        trn_init_xavier(m->params + g->off_w1[l], g->dims[l], g->dims[l + 1], &rng);
        trn_init_xavier(m->params + g->off_w2[l], g->dims[l], g->dims[l + 1], &rng);
    }
    update_attention(g, m->params, m->threads);
    return ENG_OK;
}

/* The element-wise steps of a layer, fused: each one pass over memory, in runs of ELEM_RUN
 * entries shared among the threads (restrict parameters, so each run's loop vectorises: inside
 * an OpenMP region's outlined body GCC loses that the arrays do not overlap). */
#define ELEM_RUN 8192

/* S = x + side, P = x * side: the two inputs of the bi-interaction's dense layers. */
static void sp_run(float *restrict S, float *restrict P, const float *restrict x,
                   const float *restrict side, size_t n)
{
    for (size_t q = 0; q < n; q++) {
        S[q] = x[q] + side[q];
        P[q] = x[q] * side[q];
    }
}

/* X = LeakyReLU(A1) + LeakyReLU(A2). */
static void act_run(float *restrict X, const float *restrict A1, const float *restrict A2, size_t n)
{
    for (size_t q = 0; q < n; q++) {
        const float a = A1[q], b = A2[q];
        X[q] = (a > 0 ? a : SLOPE * a) + (b > 0 ? b : SLOPE * b);
    }
}

/* Through the dropout (mask, keep = 1 / (1 - p)) and both LeakyReLUs: trn_dropout_backward's and
 * trn_lrelu_backward's arithmetic, written, not added. */
static void dact_run(float *restrict dA1, float *restrict dA2, const float *restrict dX,
                     const uint8_t *restrict mask, float keep, const float *restrict A1,
                     const float *restrict A2, size_t n)
{
    for (size_t q = 0; q < n; q++) {
        const float h = dX[q] * (float)mask[q] * keep;
        dA1[q] = A1[q] > 0 ? h : SLOPE * h;
        dA2[q] = A2[q] > 0 ? h : SLOPE * h;
    }
}

/* S = x + side and P = x * side backwards: dx = dS + dP side, dside = dS + dP x. */
static void dsp_run(float *restrict dx, float *restrict dside, const float *restrict dS,
                    const float *restrict dP, const float *restrict x, const float *restrict side,
                    size_t n)
{
    for (size_t q = 0; q < n; q++) {
        dx[q] = dS[q] + dP[q] * side[q];
        dside[q] = dS[q] + dP[q] * x[q];
    }
}

#define ELEM_RUNS(n, th, call)                                                                     \
    do {                                                                                           \
        const size_t n_ = (n), runs_ = (n_ + ELEM_RUN - 1) / ELEM_RUN;                             \
        _Pragma("omp parallel for schedule(static) num_threads(th)") for (size_t k_ = 0;           \
                                                                          k_ < runs_; k_++)        \
        {                                                                                          \
            const size_t o = k_ * ELEM_RUN, len = n_ - o < ELEM_RUN ? n_ - o : ELEM_RUN;           \
            call;                                                                                  \
        }                                                                                          \
    } while (0)

/* The layers at the field's rows: layer l at rows[l], packed in that order (side, S, P, A1, A2,
 * X, and xs, the node's own previous layer there), and also node-indexed in Xn[l] for the next
 * layer's sparse product, which reads only rows of layer l (the field's rule); message dropout
 * when rng is not NULL. */
static void propagate(kgat_t *g, const float *params, eng_rng_t *rng, float p, int th)
{
    const trn_field_t *f = &g->field;
    const float *x = params;
    for (int l = 1; l <= g->L; l++) {
        const int din = g->dims[l - 1], dout = g->dims[l];
        const int32_t *rows = f->rows[l], n = f->n[l];
        const size_t ni = (size_t)n * din, no = (size_t)n * dout;
        float *side = g->side[l], *S = g->S[l], *P = g->P[l], *A1 = g->A1[l], *A2 = g->A2[l],
              *X = g->X[l], *xs = g->xs[l];
        eng_csr_spmm_packed(side, g->A, x, din, rows, n, th);
        trn_gather_forward(xs, x, rows, n, din);
        ELEM_RUNS(ni, th, sp_run(S + o, P + o, xs + o, side + o, len));
        trn_dense_forward(A1, S, params + g->off_w1[l - 1], params + g->off_b1[l - 1], n, din, dout,
                          th);
        trn_dense_forward(A2, P, params + g->off_w2[l - 1], params + g->off_b2[l - 1], n, din, dout,
                          th);
        ELEM_RUNS(no, th, act_run(X + o, A1 + o, A2 + o, len));
        if (rng)
            trn_dropout_forward(X, g->mask[l], X, p, no, rng, th);
        trn_field_scatter(f, l, g->Xn[l], X, dout, th);
        x = g->Xn[l];
    }
}

/* The final vectors of nodes[0..n) (n at most the batch buffers' rows) into out [n x vd]; nrm
 * keeps each layer's normalised rows, a block [n x d_l] after the layers before it, and nrm_div
 * their divisors, for the backward. */
static void finals(kgat_t *g, const float *params, const int32_t *nodes, int64_t n, float *out,
                   int th)
{
    const int d0 = g->dims[0];
    for (int64_t q = 0; q < n; q++)
        memcpy(out + q * g->vd, params + (size_t)nodes[q] * d0, (size_t)d0 * sizeof *out);
    int col = d0;
    for (int l = 1; l <= g->L; l++) {
        const int dl = g->dims[l];
        float *nl = g->nrm + (size_t)n * (col - d0); /* layer l's block [n x dl] */
        trn_gather_forward(g->tmp, g->Xn[l], nodes, n, dl);
        trn_l2norm_forward(nl, g->nrm_div + (size_t)l * n, g->tmp, n, dl, th);
        trn_concat_forward(out, nl, n, dl, g->vd, col);
        col += dl;
    }
}

/* The batch's nodes, each once, into g->bnodes; s's rows renumbered to them. */
static void batch_nodes(kgat_t *g, const trn_model_t *m, const trn_batch_t *b)
{
    trn_scores_t *s = &g->scores;
    const int32_t *ie = m->in->kg->item_entity;
    g->nb = 0;
#define NODE(v) (g->mark[v] < 0 ? (g->bnodes[g->nb] = (v), g->mark[v] = g->nb++) : g->mark[v])
    for (int k = 0; k < b->n; k++) {
        s->ru[k] = NODE(g->n_ent + b->users[k]);
        s->rp[k] = NODE(ie[b->pos[k]]);
        for (int j = 0; j < b->nneg; j++) {
            s->rn[k * b->nneg + j] = NODE(ie[b->neg[k * b->nneg + j]]);
            s->rnu[k * b->nneg + j] = s->ru[k];
        }
    }
#undef NODE
    for (int32_t q = 0; q < g->nb; q++)
        g->mark[g->bnodes[q]] = -1;
}

static double cf_grad(trn_model_t *m, kgat_t *g, const trn_batch_t *b, double *reg)
{
    const kgat_cfg_t *c = m->cfg;
    const int th = m->threads;
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    batch_nodes(g, m, b);
    const int64_t nb = g->nb;
    trn_field_rows(&g->field, g->A, g->bnodes, nb);
    propagate(g, m->params, c->dropout > 0 ? &rng : NULL, c->dropout, th);
    finals(g, m->params, g->bnodes, nb, g->fin, th);
    memset(g->dfin, 0, (size_t)nb * g->vd * sizeof *g->dfin);
    const double loss = trn_scores_eval(&g->scores, g->dfin, g->fin, g->vd, m, b);
    *reg = trn_scores_l2(&g->scores, g->dfin, g->fin, g->vd, m->hp->decay, b);
    /* the packed rows' gradients back to the layers */
    float *dE = m->grads;
    const int d0 = g->dims[0];
    for (int64_t q = 0; q < nb; q++) {
        float *o = dE + (size_t)g->bnodes[q] * d0;
        const float *gq = g->dfin + q * g->vd;
        for (int j = 0; j < d0; j++)
            o[j] += gq[j];
    }
    int col = d0;
    for (int l = 1; l <= g->L; l++) {
        const int dl = g->dims[l];
        trn_field_zero(&g->field, l, g->dX[l], dl, th);
        memset(g->dnrm, 0, (size_t)nb * dl * sizeof *g->dnrm);
        trn_concat_backward(g->dnrm, g->dfin, nb, dl, g->vd, col);
        memset(g->tmp, 0, (size_t)nb * dl * sizeof *g->tmp);
        trn_l2norm_backward(g->tmp, g->dnrm, g->nrm + (size_t)nb * (col - d0),
                            g->nrm_div + (size_t)l * nb, nb, dl, th);
        trn_gather_backward(g->dX[l], g->tmp, g->bnodes, nb, dl);
        col += dl;
    }
    /* layer L down to 1, packed over each layer's rows; dX[l] node-indexed at rows[l] */
    const trn_field_t *f = &g->field;
    for (int l = g->L; l >= 1; l--) {
        const int din = g->dims[l - 1], dout = g->dims[l];
        const int32_t *rows = f->rows[l], n = f->n[l];
        const size_t ni = (size_t)n * din, no = (size_t)n * dout;
        /* without dropout the mask stays all ones, as init left it */
        const float keep = c->dropout > 0 ? 1.0f / (1.0f - c->dropout) : 1.0f;
        float *dXp = g->dside; /* packed dX, until dside is written below */
        trn_field_gather(f, l, dXp, g->dX[l], dout, th);
        const float *A1 = g->A1[l], *A2 = g->A2[l];
        const uint8_t *mask = g->mask[l];
        ELEM_RUNS(no, th,
                  dact_run(g->dA1 + o, g->dA2 + o, dXp + o, mask + o, keep, A1 + o, A2 + o, len));
        memset(g->dS, 0, ni * sizeof *g->dS);
        memset(g->dP, 0, ni * sizeof *g->dP);
        trn_dense_backward(g->dS, m->grads + g->off_w1[l - 1], m->grads + g->off_b1[l - 1], g->dA1,
                           g->S[l], m->params + g->off_w1[l - 1], n, din, dout, th);
        trn_dense_backward(g->dP, m->grads + g->off_w2[l - 1], m->grads + g->off_b2[l - 1], g->dA2,
                           g->P[l], m->params + g->off_w2[l - 1], n, din, dout, th);
        /* the node's own input: packed dxs (in tmp); the neighbours': dside, through A^T */
        ELEM_RUNS(ni, th,
                  dsp_run(g->tmp + o, g->dside + o, g->dS + o, g->dP + o, g->xs[l] + o,
                          g->side[l] + o, len));
        float *dx = l == 1 ? dE : g->dX[l - 1];
        trn_field_add(f, l, dx, g->tmp, din, th);
        eng_csr_scatter_packed(dx, g->A, g->dside, din, rows, n, th);
    }
    return loss;
}

static double kg_grad(trn_model_t *m, kgat_t *g, double *reg)
{
    const kgat_cfg_t *c = m->cfg;
    const int n = g->kg_cap, d = g->dims[0], dr = g->dr;
    const float *E = m->params, *Rm = m->params + g->off_rel, *WR = m->params + g->off_wr;
    float *dE = m->grads, *dRm = m->grads + g->off_rel, *dWR = m->grads + g->off_wr;
    trn_gather_forward(g->xh, E, g->kh, n, d);
    trn_gather_forward(g->xt, E, g->kt, n, d);
    trn_gather_forward(g->xn, E, g->kn, n, d);
    trn_project_forward(g->ph, g->xh, WR, g->kr, n, d, dr, m->threads);
    trn_project_forward(g->pt, g->xt, WR, g->kr, n, d, dr, m->threads);
    trn_project_forward(g->pn, g->xn, WR, g->kr, n, d, dr, m->threads);
    trn_trans_forward(g->dpos, g->ph, Rm, g->pt, g->kr, n, dr, TRN_DIST_L2SQ);
    trn_trans_forward(g->dneg, g->ph, Rm, g->pn, g->kr, n, dr, TRN_DIST_L2SQ);
    const double loss =
        trn_dist_loss(TRN_LOSS_BPR, g->gpos, g->gneg, g->spos, g->sneg, g->dpos, g->dneg, n, 1, 0);
    /* kg-l2 * the mean over the batch of |x|^2 / 2 for the projected rows and the relations */
    const float w = c->kg_l2 / (float)n;
    double sq = trn_l2_forward(Rm, g->kr, n, dr);
    float *proj[3] = {g->ph, g->pt, g->pn}, *dproj[3] = {g->dph, g->dpt, g->dpn};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < n; k++) /* per row in eight lanes: vectorised, not one long chain */
            sq += eng_dot(proj[i] + (size_t)k * dr, proj[i] + (size_t)k * dr, dr);
        for (size_t q = 0; q < (size_t)n * dr; q++)
            dproj[i][q] = w * proj[i][q];
    }
    *reg = c->kg_l2 / 2.0 / n * sq;
    trn_l2_backward(dRm, w / 2, Rm, g->kr, n, dr);
    trn_trans_backward(g->dph, dRm, g->dpt, g->gpos, g->dpos, g->ph, Rm, g->pt, g->kr, n, dr,
                       TRN_DIST_L2SQ);
    trn_trans_backward(g->dph, dRm, g->dpn, g->gneg, g->dneg, g->ph, Rm, g->pn, g->kr, n, dr,
                       TRN_DIST_L2SQ);
    float *xs[3] = {g->xh, g->xt, g->xn}, *dxs[3] = {g->dxh, g->dxt, g->dxn};
    const int32_t *rows[3] = {g->kh, g->kt, g->kn};
    for (int i = 0; i < 3; i++) {
        memset(dxs[i], 0, (size_t)n * d * sizeof(float));
        trn_project_backward(dxs[i], dWR, dproj[i], xs[i], WR, g->kr, n, d, dr, m->threads);
        trn_gather_backward(dE, dxs[i], rows[i], n, d);
    }
    return loss;
}

static double kgat_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    kgat_t *g = m->impl;
    return g->kg_phase ? kg_grad(m, g, reg) : cf_grad(m, g, b, reg);
}

/* Triples a KG batch draws per random stream: the draws of a batch are shared among the
 * threads by these fixed chunks, each with a stream of its own, so the batch does not depend on
 * the thread count. */
#define KG_DRAW_CHUNK 256

/* kg-batch (h, r, t, t') from the CKG: h uniform over the nodes with an edge out, one of its
 * edges (r, t) uniform, t' uniform over the nodes while (h, r, t') is an edge; then sorted by
 * relation (stable), so the projections run one sgemm per relation. */
static void sample_kg(trn_model_t *m, kgat_t *g)
{
    const int n = g->kg_cap, chunks = (n + KG_DRAW_CHUNK - 1) / KG_DRAW_CHUNK;
    int32_t *h = g->kdraw, *r = h + n, *t = r + n, *tn = t + n;
#pragma omp parallel for schedule(static) num_threads(m->threads)
    for (int c = 0; c < chunks; c++) {
        eng_rng_t rng;
        eng_rng_seed(&rng, m->seed,
                     0x6b6700000000ull + (uint64_t)m->adam.step * (uint64_t)chunks + (uint64_t)c);
        const int k1 = (c + 1) * KG_DRAW_CHUNK < n ? (c + 1) * KG_DRAW_CHUNK : n;
        for (int k = c * KG_DRAW_CHUNK; k < k1; k++) {
            const int32_t v = g->heads[eng_rng_below(&rng, (uint32_t)g->n_heads)];
            const int64_t b = g->A->ptr[v],
                          e = b + eng_rng_below(&rng, (uint32_t)(g->A->ptr[v + 1] - b));
            h[k] = v;
            r[k] = g->edge_rel[e];
            t[k] = g->A->idx[e];
            do
                tn[k] = (int32_t)eng_rng_below(&rng, (uint32_t)g->nodes);
            while (trn_kg_index_has(&g->index, v, r[k], tn[k]));
        }
    }
    int32_t *pos = g->count; /* [n_rel + 1] */
    memset(pos, 0, ((size_t)g->n_rel + 1) * sizeof *pos);
    for (int k = 0; k < n; k++)
        pos[r[k] + 1]++;
    for (int q = 0; q < g->n_rel; q++)
        pos[q + 1] += pos[q];
    for (int k = 0; k < n; k++) {
        const int32_t o = pos[r[k]]++;
        g->kh[o] = h[k], g->kr[o] = r[k], g->kt[o] = t[k], g->kn[o] = tn[k];
    }
}

static void kgat_sample(trn_model_t *m, trn_batch_t *b, int n)
{
    (void)n;
    kgat_t *g = m->impl;
    const int batch = m->hp->batch;
    g->kg_phase = g->step >= g->n_cf;
    if (!g->kg_phase) {
        const int64_t left = m->in->train->nnz - (int64_t)g->step * batch;
        trn_sampler_next(g->sampler, b, left < batch ? (int)left : batch);
    } else {
        sample_kg(m, g);
        b->n = 0;
    }
    g->step++;
}

static int64_t kgat_epoch_examples(const trn_model_t *m)
{
    const kgat_t *g = m->impl;
    return (int64_t)(g->n_cf + g->n_kg) * m->hp->batch;
}

static void kgat_epoch_end(trn_model_t *m)
{
    kgat_t *g = m->impl;
    update_attention(g, m->params, m->threads);
    g->step = 0;
}

/* The final vectors without dropout: users' rows and their items' entities' rows. */
static int kgat_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    kgat_t *g = m->impl;
    trn_field_all(&g->field);
    propagate(g, m->params, NULL, 0, m->threads);
    /* the users' nodes, then the items' entities, in chunks of the batch buffers' rows */
    const int64_t cap = (int64_t)m->hp->batch * (2 + m->hp->negatives);
    for (int64_t q = 0; q < g->n_users; q += cap)
        finals(g, m->params, g->user_node + q, g->n_users - q < cap ? g->n_users - q : cap,
               user_vecs + q * g->vd, m->threads);
    for (int64_t q = 0; q < m->n_items; q += cap)
        finals(g, m->params, m->in->kg->item_entity + q,
               m->n_items - q < cap ? m->n_items - q : cap, item_vecs + q * g->vd, m->threads);
    return ENG_OK;
}

/* The graph with its current attention, for the server's explanations (docs/serving.md). */
static int kgat_extras(trn_model_t *m, trn_extra_t *out)
{
    kgat_t *g = m->impl;
    const int64_t M = g->A->nnz;
    size_t elen, rlen;
    const char *eb = eng_idmap_blob(g->ent_names, &elen), *rb = eng_idmap_blob(g->rel_names, &rlen);
    int n = 0;
    out[n++] = (trn_extra_t){"kgat.graph_ptr", g->A->ptr, (int64_t)g->nodes + 1, 1,
                             TRN_ROWS_NONE,    STO_I64};
    out[n++] = (trn_extra_t){"kgat.graph_idx", g->A->idx, M, 1, TRN_ROWS_NONE, STO_I32};
    out[n++] = (trn_extra_t){"kgat.graph_rel", g->edge_rel, M, 1, TRN_ROWS_NONE, STO_I32};
    out[n++] = (trn_extra_t){"kgat.graph_att", g->A->val, M, 1, TRN_ROWS_NONE, STO_F32};
    out[n++] =
        (trn_extra_t){"kgat.user_node", g->user_node, g->n_users, 1, TRN_ROWS_USERS, STO_I32};
    out[n++] = (trn_extra_t){
        "kgat.item_node", m->in->kg->item_entity, m->n_items, 1, TRN_ROWS_ITEMS, STO_I32};
    out[n++] = (trn_extra_t){"kgat.entity_names", eb, (int64_t)elen, 1, TRN_ROWS_NONE, STO_U8};
    out[n++] = (trn_extra_t){"kgat.relation_names", rb, (int64_t)rlen, 1, TRN_ROWS_NONE, STO_U8};
    return n;
}

static int kgat_views(const trn_model_t *m, trn_view_t *out)
{
    const kgat_t *g = m->impl;
    const int64_t d = g->dims[0];
    static const char *w1[MAX_LAYERS] = {"W1_1", "W1_2", "W1_3", "W1_4",
                                         "W1_5", "W1_6", "W1_7", "W1_8"},
                      *b1[MAX_LAYERS] = {"b1_1", "b1_2", "b1_3", "b1_4",
                                         "b1_5", "b1_6", "b1_7", "b1_8"},
                      *w2[MAX_LAYERS] = {"W2_1", "W2_2", "W2_3", "W2_4",
                                         "W2_5", "W2_6", "W2_7", "W2_8"},
                      *b2[MAX_LAYERS] = {"b2_1", "b2_2", "b2_3", "b2_4",
                                         "b2_5", "b2_6", "b2_7", "b2_8"};
    int n = 0;
    out[n++] = (trn_view_t){"entity_emb", 0, g->n_ent, d, TRN_ROWS_NONE};
    out[n++] = (trn_view_t){"user_emb", (size_t)g->n_ent * d, g->n_users, d, TRN_ROWS_USERS};
    out[n++] = (trn_view_t){"relation_emb", g->off_rel, g->n_rel, g->dr, TRN_ROWS_NONE};
    out[n++] = (trn_view_t){"W_R", g->off_wr, (int64_t)g->n_rel * d, g->dr, TRN_ROWS_NONE};
    for (int l = 0; l < g->L; l++) {
        const int64_t din = g->dims[l], dout = g->dims[l + 1];
        out[n++] = (trn_view_t){w1[l], g->off_w1[l], din, dout, TRN_ROWS_NONE};
        out[n++] = (trn_view_t){b1[l], g->off_b1[l], 1, dout, TRN_ROWS_NONE};
        out[n++] = (trn_view_t){w2[l], g->off_w2[l], din, dout, TRN_ROWS_NONE};
        out[n++] = (trn_view_t){b2[l], g->off_b2[l], 1, dout, TRN_ROWS_NONE};
    }
    return n;
}

const trn_model_ops_t trn_kgat_ops = {
    .kind = "kgat",
    .about = "KGAT (Wang et al., KDD 2019): attentive propagation on the collaborative KG",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(kgat_cfg_t),
    .needs = TRN_NEEDS_KG,
    .losses =
        TRN_LOSS_BIT(TRN_LOSS_BPR) | TRN_LOSS_BIT(TRN_LOSS_BCE) | TRN_LOSS_BIT(TRN_LOSS_MARGIN),
    .n_params = kgat_n_params,
    .vec_dim = kgat_vec_dim,
    .init = kgat_init,
    .sample = kgat_sample,
    .epoch_examples = kgat_epoch_examples,
    .epoch_end = kgat_epoch_end,
    .batch_grad = kgat_batch_grad,
    .vectors = kgat_vectors,
    .views = kgat_views,
    .extras = kgat_extras,
    .free_impl = kgat_free,
};
