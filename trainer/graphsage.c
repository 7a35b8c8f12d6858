/* GraphSAGE (Hamilton et al., NeurIPS 2017) on the user-item graph: learned layer-0 embeddings
 * of users and items (the transductive input), K layers of h^k_v = sigma(W_k [h^{k-1}_v ||
 * AGG_k(h^{k-1} of v's sampled neighbours)]), each row L2-normalised, trained on the sampled
 * subgraph of each batch as the paper's Algorithm 2. docs/models.md has the definition and the
 * choices.
 *
 * A batch's work and memory are bounded by the batch and the fan-outs, not by the graph: its
 * nodes B^K (users, positives, negatives), then B^{k-1} = B^k with up to S_k sampled neighbours of
 * each node of B^k, and h^k computed on B^k alone; what a step holds per node of the graph is the
 * map of B^0's positions, 4 bytes a node (E0's gradient is kept by row, m->row_grads). The
 * published vectors are computed over every node with full neighbourhoods, layer by layer in
 * chunks of nodes. */
#include "trainer/graphsage.h"

#include "engine/rng.h"
#include "engine/sage.h"
#include "engine/vec.h"
#include "trainer/aggregate.h"
#include "trainer/graph.h"
#include "trainer/layers.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The aggregators (eng_sage_agg_t) and their names are the engine's, which the server reads
 * too. */
#define SAGE_MAX_LAYERS ENG_SAGE_MAX_LAYERS
#define SAGE_MAX_FANOUT 1000
/* B^0's rows the pool aggregator transforms at a time in layer 1: a multiple of the dense layers'
 * row block (trainer/layers.c). */
#define POOL_CHUNK 4096

typedef struct {
    trn_common_hp_t common;
    int dim;              /* embedding size and every layer's width */
    int layers;           /* K */
    trn_hp_list_t fanout; /* S_1..S_K */
    int aggregator;       /* eng_sage_agg_t */
} sage_cfg_t;

/* K = 2 with S_1 = 25, S_2 = 10 as the paper; the common settings as the other kinds' (the
 * LightGCN protocol). */
static const trn_hparam_t hparams[] = {
    TRN_HP_COMMON(sage_cfg_t, 1e-3, 1e-4, 2048),
    TRN_HP_INT(sage_cfg_t, dim, "dim", 64, 1, ENG_SAGE_MAX_DIM, "embedding size and layer width"),
    TRN_HP_INT(sage_cfg_t, layers, "layers", 2, 1, SAGE_MAX_LAYERS, "aggregation layers K"),
    TRN_HP_LIST(sage_cfg_t, fanout, "fanout", "25,10", 1, SAGE_MAX_FANOUT,
                "neighbours sampled per node for layers 1..K (one value per layer)"),
    TRN_HP_CHOICE(sage_cfg_t, aggregator, "aggregator", ENG_SAGE_MEAN, ENG_SAGE_AGGREGATORS,
                  "neighbourhood aggregator"),
};

static const char *const weight_names[SAGE_MAX_LAYERS] = {"W1", "W2", "W3", "W4"};
static const char *const pool_w_names[SAGE_MAX_LAYERS] = {"P1", "P2", "P3", "P4"};
static const char *const pool_b_names[SAGE_MAX_LAYERS] = {"pb1", "pb2", "pb3", "pb4"};
static const char *const lstm_x_names[SAGE_MAX_LAYERS] = {"Lx1", "Lx2", "Lx3", "Lx4"};
static const char *const lstm_h_names[SAGE_MAX_LAYERS] = {"Lh1", "Lh2", "Lh3", "Lh4"};
static const char *const lstm_b_names[SAGE_MAX_LAYERS] = {"lb1", "lb2", "lb3", "lb4"};

/* Layer-wise node sets and neighbour lists: B^k is node[0 .. n[k]) (B^K the smallest, each B^k a
 * prefix of B^{k-1}), and layer l + 1 aggregates for node i < n[l + 1] the rows
 * idx[l][ptr[l][i] .. ptr[l][i+1]) of h^l, positions in B^l. h^0 is E0's rows of B^0: gathered
 * into a table of its own, or, when idx0 is set, read in place, layer 1 aggregating E0's rows
 * idx0[q] (the lists as node ids) for node i, whose own row of E0 is self0[i]. */
typedef struct {
    int32_t n[SAGE_MAX_LAYERS + 1];
    const int32_t *node;
    const int64_t *ptr[SAGE_MAX_LAYERS];
    const int32_t *idx[SAGE_MAX_LAYERS];
    const int32_t *idx0, *self0;
} sage_graph_t;

/* The forward's values over a sage_graph_t, for the backward. Layer l + 1 (index l) of n rows
 * from n_in = n[l] rows. */
typedef struct {
    float *h[SAGE_MAX_LAYERS + 1]; /* [n[k] x d] h^k; h^0 E0's rows (NULL when read in place) */
    float *agg[SAGE_MAX_LAYERS];   /* [n x d] AGG */
    float *cat[SAGE_MAX_LAYERS];   /* [n x 2d] [h^l || AGG] */
    float *z[SAGE_MAX_LAYERS];     /* [n x d] cat W, then ReLU(cat W) below the last layer */
    float *norm[SAGE_MAX_LAYERS];  /* [n] the L2 divisors */
    int32_t *arg[SAGE_MAX_LAYERS]; /* [n x d] max, pool: the arg-max row */
    float *pz[SAGE_MAX_LAYERS];    /* [n_in x d] pool: h^l P + pb */
    float *pa[SAGE_MAX_LAYERS];    /* [n_in x d] pool: ReLU(pz) */
    float *xw[SAGE_MAX_LAYERS];    /* [n_in x 4d] lstm: h^l Lx + lb */
    float *gates[SAGE_MAX_LAYERS]; /* [nnz x 4d] lstm: per list position (nnz = the lists' total) */
    float *cell[SAGE_MAX_LAYERS];  /* [nnz x d] lstm */
} sage_acts_t;

/* The block: E0 [N x dim] (users' rows, then items'), then per layer W [2 dim x dim] and, with
 * the pool aggregator, P [dim x dim] and pb [dim], with lstm Lx and Lh [dim x 4 dim] and lb
 * [4 dim]. */
typedef struct {
    int dim, layers, agg;
    int fanout[SAGE_MAX_LAYERS];
    int64_t nodes;
    int64_t cap[SAGE_MAX_LAYERS + 1]; /* the most nodes a batch's B^k can hold */
    eng_csr_t *adj;                   /* [N x N] the user-item graph, both directions */
    /* the batch's subgraph */
    int32_t *local; /* [N] a node's position in B^0, or -1 */
    int32_t *node;  /* [cap[0]] */
    int64_t *ptr[SAGE_MAX_LAYERS];
    int32_t *idx[SAGE_MAX_LAYERS];
    sage_graph_t sub;
    sage_acts_t acts;
    /* backward scratch */
    float *dh[SAGE_MAX_LAYERS + 1]; /* [cap[k] x d] (dh[0] only when h^0 is gathered) */
    float *da, *dz, *dagg, *dcat;   /* [cap[1] x d], dcat [cap[1] x 2d] */
    float *agg_scratch;             /* pool and lstm: their backward's scratch, lstm's forward's */
    float *l2;                      /* [cap[K] x d] the regulariser's gradient of B^K's E0 rows */
    /* mean, max and pool: layer 1 reads E0 in place (sage_graph_t.idx0), and E0's gradient is
     * summed per row when Adam asks for it (e0_row_grad), so a batch keeps no table of B^0's
     * rows; pool transforms B^0's rows a chunk at a time (pool0_forward) */
    int in_place;
    float *pool_x, *pool_a; /* [POOL_CHUNK x d] pool: a chunk of B^0's rows of E0, transformed */
    float *pool_pt;         /* [d x d] pool: P^T of layer 1, for e0_row_grad */
    int32_t *pool_lr;       /* [cap[1] x S_1] pool: layer 1's lists as ranks, each ascending */
    int64_t *pool_cur;      /* [cap[1]] pool: each list's next entry, while chunks pass */
    int64_t *pool_at;       /* [cap[0] + 1] pool: rank k is the arg-max at pool_ent[at[k]..] */
    int32_t *pool_ent;      /* [cap[1] x d] pool: those places i d + j of layer 1's dAGG */
    int32_t *idx0;          /* [cap[1] x S_1] layer 1's lists as node ids */
    float *e0k;             /* [cap[K] x d] E0's rows of B^K, for the regulariser */
    int32_t *u_of;   /* [cap[0]] B^0's positions in ascending node id: the k-th row of E0 ... */
    int32_t *rank;   /* [cap[0]] ... and back: the rank k of position u */
    int64_t *in_ptr; /* [cap[0] + 1] the k-th is in the lists of in_src[in_ptr[k] ..] */
    int32_t *in_src; /* [cap[1] x S_1] those B^1 nodes, ascending */
    float *inv1;     /* [cap[1]] mean: 1 / the length of each B^1 node's list */
    trn_scores_t scores;
    float *item_layers; /* [n_items x K d] published for fold-in */
} sage_t;

static size_t layer_params(int d, int agg)
{
    const size_t dd = (size_t)d * d;
    return 2 * dd + (agg == ENG_SAGE_POOL   ? dd + (size_t)d
                     : agg == ENG_SAGE_LSTM ? 8 * dd + 4 * (size_t)d
                                            : 0);
}

static size_t sage_n_params(const trn_inputs_t *in, const void *cfg)
{
    const sage_cfg_t *c = cfg;
    return ((size_t)in->train->rows + (size_t)in->train->cols) * (size_t)c->dim +
           (size_t)c->layers * layer_params(c->dim, c->aggregator);
}

static int sage_vec_dim(const void *cfg)
{
    const sage_cfg_t *c = cfg;
    return c->dim;
}

static size_t weight_offset(const trn_model_t *m, int l)
{
    const sage_cfg_t *c = m->cfg;
    return ((size_t)m->n_users + (size_t)m->n_items) * (size_t)c->dim +
           (size_t)l * layer_params(c->dim, c->aggregator);
}

/* W of layer l + 1 in block (params or grads); the aggregator's weights follow it. */
static float *weight(const trn_model_t *m, float *block, int l)
{
    return block + weight_offset(m, l);
}

/* P (pool) or Lx (lstm) */
static float *pool_w(const trn_model_t *m, float *block, int l)
{
    const sage_cfg_t *c = m->cfg;
    return weight(m, block, l) + 2 * (size_t)c->dim * c->dim;
}

static float *pool_b(const trn_model_t *m, float *block, int l)
{
    const sage_cfg_t *c = m->cfg;
    return pool_w(m, block, l) + (size_t)c->dim * c->dim;
}

static float *lstm_x(const trn_model_t *m, float *block, int l)
{
    return pool_w(m, block, l);
}

static float *lstm_h(const trn_model_t *m, float *block, int l)
{
    const sage_cfg_t *c = m->cfg;
    return lstm_x(m, block, l) + 4 * (size_t)c->dim * c->dim;
}

static float *lstm_b(const trn_model_t *m, float *block, int l)
{
    const sage_cfg_t *c = m->cfg;
    return lstm_h(m, block, l) + 4 * (size_t)c->dim * c->dim;
}

static void acts_free(sage_acts_t *a)
{
    for (int k = 0; k <= SAGE_MAX_LAYERS; k++)
        free(a->h[k]);
    for (int l = 0; l < SAGE_MAX_LAYERS; l++) {
        free(a->agg[l]);
        free(a->cat[l]);
        free(a->z[l]);
        free(a->norm[l]);
        free(a->arg[l]);
        free(a->pz[l]);
        free(a->pa[l]);
        free(a->xw[l]);
        free(a->gates[l]);
        free(a->cell[l]);
    }
    memset(a, 0, sizeof *a);
}

/* Room for node sets of at most cap[k] nodes and layer l's lists of at most nnz[l] entries; with
 * in_place, no h^0 and no pool transform of it (layer 1 reads E0 in place); 0 or ENG_ENOMEM (free
 * with acts_free either way). */
static int acts_alloc(sage_acts_t *a, const int64_t *cap, const int64_t *nnz, int layers, int d,
                      int agg, int in_place)
{
    memset(a, 0, sizeof *a);
    int ok = 1;
    for (int k = in_place ? 1 : 0; k <= layers; k++)
        ok &= (a->h[k] = malloc((size_t)cap[k] * d * sizeof(float))) != NULL;
    for (int l = 0; l < layers; l++) {
        const size_t nd = (size_t)cap[l + 1] * d, nin = (size_t)cap[l] * d;
        ok &= (a->agg[l] = malloc(nd * sizeof(float))) != NULL;
        ok &= (a->cat[l] = malloc(2 * nd * sizeof(float))) != NULL;
        ok &= (a->z[l] = malloc(nd * sizeof(float))) != NULL;
        ok &= (a->norm[l] = malloc((size_t)cap[l + 1] * sizeof(float))) != NULL;
        if (agg == ENG_SAGE_MAX || agg == ENG_SAGE_POOL)
            ok &= (a->arg[l] = malloc(nd * sizeof(int32_t))) != NULL;
        if (agg == ENG_SAGE_LSTM) {
            const size_t e = (size_t)nnz[l] + 1;
            ok &= (a->xw[l] = malloc(4 * nin * sizeof(float))) != NULL;
            ok &= (a->gates[l] = malloc(4 * e * d * sizeof(float))) != NULL;
            ok &= (a->cell[l] = malloc(e * d * sizeof(float))) != NULL;
        }
        if (agg == ENG_SAGE_POOL && (l > 0 || !in_place)) {
            ok &= (a->pz[l] = malloc(nin * sizeof(float))) != NULL;
            ok &= (a->pa[l] = malloc(nin * sizeof(float))) != NULL;
        }
    }
    return ok ? ENG_OK : ENG_ENOMEM;
}

static void sage_free(void *impl)
{
    sage_t *g = impl;
    if (!g)
        return;
    eng_csr_free(g->adj);
    free(g->local);
    free(g->node);
    for (int l = 0; l < SAGE_MAX_LAYERS; l++) {
        free(g->ptr[l]);
        free(g->idx[l]);
    }
    acts_free(&g->acts);
    for (int k = 0; k <= SAGE_MAX_LAYERS; k++)
        free(g->dh[k]);
    free(g->da);
    free(g->dz);
    free(g->dagg);
    free(g->dcat);
    free(g->agg_scratch);
    free(g->l2);
    free(g->idx0);
    free(g->e0k);
    free(g->u_of);
    free(g->rank);
    free(g->in_ptr);
    free(g->in_src);
    free(g->inv1);
    free(g->pool_x);
    free(g->pool_a);
    free(g->pool_pt);
    free(g->pool_lr);
    free(g->pool_cur);
    free(g->pool_at);
    free(g->pool_ent);
    trn_scores_free(&g->scores);
    free(g->item_layers);
    free(g);
}

static void e0_row_grad(const eng_row_grads_t *rg, size_t r, int32_t k, float *out);

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int sage_init(trn_model_t *m, eng_error_t *err)
{
    const sage_cfg_t *c = m->cfg;
    if (c->fanout.n != c->layers)
        return eng_error_set(err, ENG_EINVAL,
                             "--fanout has %d value%s, one per layer is needed (--layers %d)",
                             c->fanout.n, c->fanout.n == 1 ? "" : "s", c->layers);
    sage_t *g = calloc(1, sizeof *g);
    if (!g)
        return ENG_ENOMEM;
    m->impl = g;
    const int d = c->dim, L = c->layers;
    g->dim = d;
    g->layers = L;
    g->agg = c->aggregator;
    memcpy(g->fanout, c->fanout.v, (size_t)L * sizeof *g->fanout);
    g->nodes = (int64_t)m->n_users + m->n_items;
    g->cap[L] = min64(g->nodes, (int64_t)c->common.batch * (2 + c->common.negatives));
    for (int l = L - 1; l >= 0; l--)
        g->cap[l] = min64(g->nodes, g->cap[l + 1] * (1 + g->fanout[l]));
    g->adj = trn_graph_adj(m->in->train, 0); /* every edge both ways, no values */
    g->local = malloc((size_t)g->nodes * sizeof *g->local);
    g->node = malloc((size_t)g->cap[0] * sizeof *g->node);
    int ok = g->adj && g->local && g->node;
    for (int l = 0; ok && l < L; l++) {
        ok &= (g->ptr[l] = malloc(((size_t)g->cap[l + 1] + 1) * sizeof(int64_t))) != NULL;
        ok &= (g->idx[l] = malloc((size_t)g->cap[l + 1] * g->fanout[l] * sizeof(int32_t))) != NULL;
    }
    g->in_place = g->agg != ENG_SAGE_LSTM;
    for (int k = g->in_place ? 1 : 0; ok && k <= L; k++)
        ok &= (g->dh[k] = malloc((size_t)g->cap[k] * d * sizeof(float))) != NULL;
    if (ok && g->in_place) {
        const size_t e = (size_t)g->cap[1] * g->fanout[0];
        ok &= (g->idx0 = malloc(e * sizeof *g->idx0)) != NULL;
        ok &= (g->in_src = malloc(e * sizeof *g->in_src)) != NULL;
        ok &= (g->in_ptr = malloc(((size_t)g->cap[0] + 1) * sizeof *g->in_ptr)) != NULL;
        ok &= (g->u_of = malloc((size_t)g->cap[0] * sizeof *g->u_of)) != NULL;
        ok &= (g->rank = malloc((size_t)g->cap[0] * sizeof *g->rank)) != NULL;
        ok &= (g->inv1 = malloc((size_t)g->cap[1] * sizeof *g->inv1)) != NULL;
        ok &= (g->e0k = malloc((size_t)g->cap[L] * d * sizeof *g->e0k)) != NULL;
    }
    if (ok && g->agg == ENG_SAGE_POOL) {
        ok &= (g->pool_x = malloc((size_t)POOL_CHUNK * d * sizeof *g->pool_x)) != NULL;
        ok &= (g->pool_a = malloc((size_t)POOL_CHUNK * d * sizeof *g->pool_a)) != NULL;
        ok &= (g->pool_pt = malloc((size_t)d * d * sizeof *g->pool_pt)) != NULL;
        ok &= (g->pool_lr = malloc((size_t)g->cap[1] * g->fanout[0] * sizeof *g->pool_lr)) != NULL;
        ok &= (g->pool_cur = malloc((size_t)g->cap[1] * sizeof *g->pool_cur)) != NULL;
        ok &= (g->pool_at = malloc(((size_t)g->cap[0] + 1) * sizeof *g->pool_at)) != NULL;
        ok &= (g->pool_ent = malloc((size_t)g->cap[1] * d * sizeof *g->pool_ent)) != NULL;
    }
    if (!ok)
        return ENG_ENOMEM; /* trn_model_free releases the partial impl */
    const size_t nd1 = (size_t)g->cap[1] * d;
    g->da = malloc(nd1 * sizeof *g->da);
    g->dz = malloc(nd1 * sizeof *g->dz);
    g->dagg = malloc(nd1 * sizeof *g->dagg);
    g->dcat = malloc(2 * nd1 * sizeof *g->dcat);
    int64_t nnz[SAGE_MAX_LAYERS];
    size_t scratch = 0;
    for (int l = 0; l < L; l++) {
        nnz[l] = g->cap[l + 1] * g->fanout[l];
        /* lstm: its backward's, which holds its forward's [cap[l + 1] x (5d + 1)] */
        const size_t need = g->agg == ENG_SAGE_POOL ? (l ? 2 * (size_t)g->cap[l] * d : 0)
                            : g->agg == ENG_SAGE_LSTM
                                ? ((size_t)g->cap[l] * 4 + (size_t)nnz[l] * 5) * d +
                                      (size_t)g->cap[l + 1] * (7 * (size_t)d + 1)
                                : 0;
        scratch = need > scratch ? need : scratch;
    }
    if (scratch)
        g->agg_scratch = malloc(scratch * sizeof *g->agg_scratch);
    g->l2 = malloc((size_t)g->cap[L] * d * sizeof *g->l2);
    if (!g->da || !g->dz || !g->dagg || !g->dcat || (scratch && !g->agg_scratch) || !g->l2 ||
        acts_alloc(&g->acts, g->cap, nnz, L, d, g->agg, g->in_place) < 0 ||
        trn_scores_alloc(&g->scores, c->common.batch, c->common.negatives) < 0)
        return ENG_ENOMEM;
    for (int64_t v = 0; v < g->nodes; v++)
        g->local[v] = -1;
    /* E0's gradient by row: B^0's rows, in dh[0] or summed on demand */
    m->row_grads = (eng_row_grads_t){.rows = (size_t)g->nodes,
                                     .dim = d,
                                     .pos = g->local,
                                     .grad = g->in_place ? NULL : g->dh[0],
                                     .row = g->in_place ? e0_row_grad : NULL,
                                     .ctx = m};
    /* Embeddings N(0, 0.1) as the other kinds; weights Xavier (the paper's code's glorot); pool
     * and LSTM biases zero. */
    eng_rng_t rng;
    eng_rng_seed(&rng, m->seed, 0);
    const size_t nd = (size_t)g->nodes * d;
    for (size_t i = 0; i < nd; i++)
        m->params[i] = (float)(0.1 * eng_rng_normal(&rng));
    for (int l = 0; l < L; l++) {
        trn_init_xavier(weight(m, m->params, l), 2 * d, d, &rng);
        if (g->agg == ENG_SAGE_POOL)
            trn_init_xavier(pool_w(m, m->params, l), d, d, &rng);
        if (g->agg == ENG_SAGE_LSTM) {
            trn_init_xavier(lstm_x(m, m->params, l), d, 4 * d, &rng);
            trn_init_xavier(lstm_h(m, m->params, l), d, 4 * d, &rng);
        }
    }
    return ENG_OK;
}

/* Node v's position in B^0, appending it when new. */
static int32_t add_node(sage_t *g, int32_t v, int32_t *count)
{
    if (g->local[v] < 0) {
        g->local[v] = *count;
        g->node[(*count)++] = v;
    }
    return g->local[v];
}

/* Unmarks the last batch's B^0 in g->local. */
static void reset_local(sage_t *g)
{
    for (int32_t i = 0; i < g->sub.n[0]; i++)
        g->local[g->node[i]] = -1;
}

/* Algorithm 2's sampling for batch b into g->sub: B^K the batch's users, positives and negatives,
 * then for k = K..1 up to S_k neighbours of every node of B^k, uniform without replacement
 * (Floyd's algorithm; every neighbour when the degree is at most S_k), each list in a random
 * order for the lstm aggregator, drawn from the batch's RNG so that every evaluation of the batch
 * sees the same subgraph. Leaves g->local set for B^0, the map of the gradient rows of E0
 * (m->row_grads.pos) until the next batch's sampling undoes it. */
static void sample_subgraph(trn_model_t *m, const trn_batch_t *b)
{
    sage_t *g = m->impl;
    reset_local(g);
    eng_rng_t rng;
    trn_model_batch_rng(m, &rng);
    int32_t count = 0;
    const int nn = b->n * b->nneg;
    for (int k = 0; k < b->n; k++)
        add_node(g, b->users[k], &count);
    for (int k = 0; k < b->n; k++)
        add_node(g, m->n_users + b->pos[k], &count);
    for (int k = 0; k < nn; k++)
        add_node(g, m->n_users + b->neg[k], &count);
    g->sub.n[g->layers] = count;
    int32_t pick[SAGE_MAX_FANOUT];
    for (int l = g->layers - 1; l >= 0; l--) {
        int64_t *ptr = g->ptr[l];
        int32_t *idx = g->idx[l];
        const int s = g->fanout[l];
        int64_t e = 0;
        ptr[0] = 0;
        for (int32_t i = 0; i < g->sub.n[l + 1]; i++) {
            const int32_t *nb = g->adj->idx + g->adj->ptr[g->node[i]];
            const int32_t deg = (int32_t)(g->adj->ptr[g->node[i] + 1] - g->adj->ptr[g->node[i]]);
            if (deg <= s) {
                for (int32_t q = 0; q < deg; q++)
                    idx[e++] = add_node(g, nb[q], &count);
            } else {
                for (int32_t j = deg - s, c = 0; j < deg; j++, c++) {
                    int32_t t = (int32_t)eng_rng_below(&rng, (uint32_t)j + 1);
                    for (int q = 0; q < c; q++)
                        if (pick[q] == t) {
                            t = j;
                            break;
                        }
                    pick[c] = t;
                    idx[e++] = add_node(g, nb[t], &count);
                }
            }
            if (g->agg == ENG_SAGE_LSTM) /* Fisher-Yates */
                for (int64_t q = e - 1; q > ptr[i]; q--) {
                    const int64_t r = ptr[i] + eng_rng_below(&rng, (uint32_t)(q - ptr[i] + 1));
                    const int32_t t = idx[q];
                    idx[q] = idx[r];
                    idx[r] = t;
                }
            ptr[i + 1] = e;
        }
        g->sub.n[l] = count;
        g->sub.ptr[l] = ptr;
        g->sub.idx[l] = idx;
    }
    g->sub.node = g->node;
    if (g->in_place) {
        const int64_t e = g->ptr[0][g->sub.n[1]];
        for (int64_t q = 0; q < e; q++)
            g->idx0[q] = g->node[g->idx[0][q]];
        g->sub.idx0 = g->idx0;
        g->sub.self0 = g->node;
    }
}

/* g->pool_x = E0's rows of B^0's ranks k0 .. k0 + rows - 1, on the threads. */
static void pool0_gather(const trn_model_t *m, int32_t k0, int32_t rows)
{
    const sage_t *g = m->impl;
    const int d = g->dim;
#pragma omp parallel for schedule(static) num_threads(m->threads)
    for (int32_t q = 0; q < rows; q++)
        memcpy(g->pool_x + (size_t)q * d, m->params + (size_t)g->node[g->u_of[k0 + q]] * d,
               (size_t)d * sizeof(float));
}

/* Layer 1's pool aggregate with E0 read in place: agg[i][j] = the largest ReLU(E0[u] P + pb)[j]
 * over node i's list, and arg[i][j] = the rank of that u in B^0 (index_e0_lists), -1 where no
 * value is positive (then no gradient flows, and which is the maximum does not matter). B^0's
 * rows are transformed POOL_CHUNK at a time in rank order, and each list, its ranks sorted,
 * takes the maximum over its entries in the chunk: the working memory is a chunk's, not B^0's,
 * the chunk's rows stay in cache while the lists read them, and each list meets its candidates
 * in rank order whatever the thread count. */
static void pool0_forward(const trn_model_t *m, sage_acts_t *a)
{
    const sage_t *g = m->impl;
    const int d = g->dim, th = m->threads;
    const int32_t n0 = g->sub.n[0], n1 = g->sub.n[1];
    const int64_t *ptr = g->ptr[0];
    float *agg = a->agg[0];
    int32_t *arg = a->arg[0];
#pragma omp parallel for schedule(static) num_threads(th)
    for (int32_t i = 0; i < n1; i++) {
        for (int j = 0; j < d; j++) {
            agg[(size_t)i * d + j] = 0.0f;
            arg[(size_t)i * d + j] = -1;
        }
        int32_t *lr = g->pool_lr;
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) { /* insertion sort: lists are short */
            const int32_t v = g->rank[g->idx[0][q]];
            int64_t p = q;
            for (; p > ptr[i] && lr[p - 1] > v; p--)
                lr[p] = lr[p - 1];
            lr[p] = v;
        }
        g->pool_cur[i] = ptr[i];
    }
    for (int32_t k0 = 0; k0 < n0; k0 += POOL_CHUNK) {
        const int32_t rows = n0 - k0 < POOL_CHUNK ? n0 - k0 : POOL_CHUNK, k1 = k0 + rows;
        pool0_gather(m, k0, rows);
        trn_dense_forward(g->pool_a, g->pool_x, pool_w(m, m->params, 0), pool_b(m, m->params, 0),
                          rows, d, d, th);
        trn_lrelu_forward(g->pool_a, g->pool_a, 0.0f, (size_t)rows * d);
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t i = 0; i < n1; i++) {
            float *restrict ag = agg + (size_t)i * d;
            int32_t *restrict ar = arg + (size_t)i * d;
            int64_t q = g->pool_cur[i];
            for (; q < ptr[i + 1] && g->pool_lr[q] < k1; q++) {
                const int32_t k = g->pool_lr[q];
                eng_sage_max_into(ag, ar, g->pool_a + (size_t)(k - k0) * d, k, d);
            }
            g->pool_cur[i] = q;
        }
    }
}

/* The places of layer 1's arg-maxima by rank: pool_ent[pool_at[k] .. pool_at[k + 1]) are the
 * i d + j whose arg-max is rank k, in (i, j) order (a counting sort). */
static void pool0_index(sage_t *g)
{
    const int d = g->dim;
    const int32_t n0 = g->sub.n[0];
    const int64_t e = (int64_t)g->sub.n[1] * d;
    const int32_t *arg = g->acts.arg[0];
    int64_t *at = g->pool_at;
    memset(at, 0, ((size_t)n0 + 1) * sizeof *at);
    for (int64_t q = 0; q < e; q++)
        if (arg[q] >= 0)
            at[arg[q] + 1]++;
    for (int32_t k = 0; k < n0; k++)
        at[k + 1] += at[k];
    for (int64_t q = 0; q < e; q++) /* at[k] moves from k's start to its end */
        if (arg[q] >= 0)
            g->pool_ent[at[arg[q]]++] = (int32_t)q;
    for (int32_t k = n0; k > 0; k--)
        at[k] = at[k - 1];
    at[0] = 0;
}

/* dpz = the gradient of ReLU(E0[u] P + pb), u the k-th of B^0, from layer 1's dAGG: the sum of
 * dAGG[i][j] into dpz[j] where u is the arg-max (the value is positive there, ReLU's slope 1). */
static void pool0_dpz(const sage_t *g, int32_t k, float *restrict dpz)
{
    const int d = g->dim;
    memset(dpz, 0, (size_t)d * sizeof *dpz);
    for (int64_t q = g->pool_at[k]; q < g->pool_at[k + 1]; q++)
        dpz[g->pool_ent[q] % d] += g->dagg[g->pool_ent[q]];
}

/* Given layer 1's dAGG, pool's weight gradients with E0 read in place: dP += X^T dPZ and dpb +=
 * the column sums of dPZ over B^0's rows X, a chunk at a time as pool0_forward (dPZ by
 * pool0_dpz). Also P^T into g->pool_pt, with which e0_row_grad takes E0's rows' share. */
static void pool0_backward(trn_model_t *m)
{
    sage_t *g = m->impl;
    const int d = g->dim, th = m->threads;
    const int32_t n0 = g->sub.n[0];
    pool0_index(g);
    for (int32_t k0 = 0; k0 < n0; k0 += POOL_CHUNK) {
        const int32_t rows = n0 - k0 < POOL_CHUNK ? n0 - k0 : POOL_CHUNK;
        pool0_gather(m, k0, rows);
#pragma omp parallel for schedule(static) num_threads(th)
        for (int32_t q = 0; q < rows; q++)
            pool0_dpz(g, k0 + q, g->pool_a + (size_t)q * d);
        trn_dense_backward(NULL, pool_w(m, m->grads, 0), pool_b(m, m->grads, 0), g->pool_a,
                           g->pool_x, pool_w(m, m->params, 0), rows, d, d, th);
    }
    const float *p = pool_w(m, m->params, 0);
    for (int j = 0; j < d; j++)
        for (int t = 0; t < d; t++)
            g->pool_pt[(size_t)j * d + t] = p[(size_t)t * d + j];
}

/* h^{l+1} of n nodes from the rows of h^l x [n_in x d]: AGG over the lists, [h^l || AGG] W, ReLU
 * below the last layer, each row L2-normalised. Node i's own h^l is x's row self[i], or row i
 * when self is NULL. */
static void layer_forward(const trn_model_t *m, int l, int64_t n, int64_t n_in, const float *x,
                          const int32_t *self, const int64_t *ptr, const int32_t *idx,
                          sage_acts_t *a)
{
    const sage_cfg_t *c = m->cfg;
    const int d = c->dim, th = m->threads;
    if (c->aggregator == ENG_SAGE_MEAN)
        trn_agg_mean_forward(a->agg[l], x, ptr, idx, n, d, th);
    else if (c->aggregator == ENG_SAGE_MAX)
        trn_agg_max_forward(a->agg[l], a->arg[l], x, ptr, idx, n, d, th);
    else if (c->aggregator == ENG_SAGE_POOL && self) /* layer 1 reading E0 in place */
        pool0_forward(m, a);
    else if (c->aggregator == ENG_SAGE_POOL)
        trn_agg_pool_forward(a->agg[l], a->arg[l], a->pz[l], a->pa[l], x, pool_w(m, m->params, l),
                             pool_b(m, m->params, l), ptr, idx, n, n_in, d, th);
    else
        trn_agg_lstm_forward(a->agg[l], a->xw[l], a->gates[l], a->cell[l],
                             ((const sage_t *)m->impl)->agg_scratch, x, lstm_x(m, m->params, l),
                             lstm_h(m, m->params, l), lstm_b(m, m->params, l), ptr, idx, n, n_in, d,
                             th);
    if (self) {
#pragma omp parallel for schedule(static) num_threads(th)
        for (int64_t i = 0; i < n; i++)
            memcpy(a->cat[l] + i * 2 * d, x + (size_t)self[i] * d, (size_t)d * sizeof(float));
    } else {
        trn_concat_forward(a->cat[l], x, n, d, 2 * d, 0);
    }
    trn_concat_forward(a->cat[l], a->agg[l], n, d, 2 * d, d);
    trn_dense_forward(a->z[l], a->cat[l], weight(m, m->params, l), NULL, n, 2 * d, d, th);
    if (l < c->layers - 1) /* in place: ReLU(z) > 0 where z > 0, all the backward asks */
        trn_lrelu_forward(a->z[l], a->z[l], 0.0f, (size_t)n * d);
    trn_l2norm_forward(a->h[l + 1], a->norm[l], a->z[l], n, d, th);
}

/* Every layer over sg, h^0 gathered from E0 unless sg reads it in place. */
static void forward(const trn_model_t *m, const sage_graph_t *sg, sage_acts_t *a)
{
    const sage_cfg_t *c = m->cfg;
    const int d = c->dim;
    if (sg->idx0) {
        layer_forward(m, 0, sg->n[1], sg->n[0], m->params, sg->self0, sg->ptr[0], sg->idx0, a);
    } else {
#pragma omp parallel for schedule(static) num_threads(m->threads)
        for (int32_t i = 0; i < sg->n[0]; i++)
            memcpy(a->h[0] + (size_t)i * d, m->params + (size_t)sg->node[i] * d,
                   (size_t)d * sizeof(float));
        layer_forward(m, 0, sg->n[1], sg->n[0], a->h[0], NULL, sg->ptr[0], sg->idx[0], a);
    }
    for (int l = 1; l < c->layers; l++)
        layer_forward(m, l, sg->n[l + 1], sg->n[l], a->h[l], NULL, sg->ptr[l], sg->idx[l], a);
}

/* The lists of layer 1 inverted, for e0_row_grad and pool0_forward: B^0's nodes ranked by node
 * id, the order in which Adam walks E0's rows (u_of and rank map ranks to positions in B^0 and
 * back; rank_e0_rows makes the ranks the row gradients' pos once the batch's gradient is known),
 * and for the k-th the nodes of B^1 whose lists hold it, ascending (a counting sort over the
 * lists in order), in in_ptr and in_src. So Adam reads these tables in order; only the rows of
 * dAGG it sums are scattered. */
static void index_e0_lists(sage_t *g, int64_t nodes)
{
    const int32_t n0 = g->sub.n[0], n1 = g->sub.n[1];
    const int64_t *ptr = g->ptr[0];
    const int32_t *idx = g->idx[0];
    int32_t k = 0;
    for (int64_t r = 0; r < nodes; r++) /* 4 bytes a node, in order: cheaper than a sort */
        if (g->local[r] >= 0) {
            g->u_of[k] = g->local[r];
            g->rank[g->local[r]] = k++;
        }
    int64_t *at = g->in_ptr;
    memset(at, 0, ((size_t)n0 + 1) * sizeof *at);
    for (int64_t q = 0; q < ptr[n1]; q++)
        at[g->rank[idx[q]] + 1]++;
    for (int32_t u = 0; u < n0; u++)
        at[u + 1] += at[u];
    for (int32_t i = 0; i < n1; i++) { /* at[k] moves from k's start to its end */
        g->inv1[i] = 1.0f / (float)(ptr[i + 1] - ptr[i]);
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++)
            g->in_src[at[g->rank[idx[q]]]++] = i;
    }
    for (int32_t u = n0; u > 0; u--)
        at[u] = at[u - 1];
    at[0] = 0;
}

/* g->local, the row gradients' pos, from B^0's positions to the ranks of index_e0_lists. */
static void rank_e0_rows(sage_t *g)
{
    for (int32_t k = 0; k < g->sub.n[0]; k++)
        g->local[g->node[g->u_of[k]]] = k;
}

#define PREFETCH 4 /* lists ahead */

/* The gradient of E0's row r, the k-th of B^0, for Adam (m->row_grads.row): 0, plus the row's
 * own gradient at layer 1 when its node is in B^1, plus each list's share in the order of the
 * lists (mean: dAGG / |list|; max: dAGG where the node is the arg-max; pool: dAGG[i][j] times
 * P's column j where it is the arg-max), then the regulariser's gradient added to that (its node
 * in B^K). For mean and max, the same bits as the gathered path's scatter into dh[0]. */
static void e0_row_grad(const eng_row_grads_t *rg, size_t r, int32_t k, float *restrict out)
{
    const trn_model_t *m = rg->ctx;
    const sage_t *g = m->impl;
    const int d = g->dim, mean = g->agg == ENG_SAGE_MEAN;
    const int32_t u = g->u_of[k], *src = g->in_src;
    const int64_t b = g->in_ptr[k], e = g->in_ptr[k + 1];
    const float *restrict dagg = g->dagg;
    memset(out, 0, (size_t)d * sizeof *out);
    if (u < g->sub.n[1]) {
        const float *restrict self = g->dcat + (size_t)u * 2 * d;
        for (int j = 0; j < d; j++)
            out[j] += self[j];
    }
    for (int64_t q = b; q < e && g->agg != ENG_SAGE_POOL; q++) { /* pool's below */
        const int32_t i = src[q];
        const float *restrict row = dagg + (size_t)i * d;
        if (q + PREFETCH < e) /* the rows are scattered over the batch's table: fetch early */
            for (int j = 0; j < d; j += 16)
                __builtin_prefetch(dagg + (size_t)src[q + PREFETCH] * d + j);
        if (mean) {
            const float inv = g->inv1[i];
            for (int j = 0; j < d; j++)
                out[j] += row[j] * inv;
        } else if (g->agg == ENG_SAGE_MAX) {
            const int32_t *restrict arg = g->acts.arg[0] + (size_t)i * d;
            for (int j = 0; j < d; j++)
                if (arg[j] == (int32_t)r)
                    out[j] += row[j];
        }
    }
    if (g->agg == ENG_SAGE_POOL) { /* through the transform: dPZ's row times P^T */
        float dpz[ENG_SAGE_MAX_DIM], dx[ENG_SAGE_MAX_DIM];
        pool0_dpz(g, k, dpz);
        eng_vecmat(dx, dpz, g->pool_pt, NULL, d, d);
        for (int j = 0; j < d; j++)
            out[j] += dx[j];
    }
    const float *restrict l2 = u < g->sub.n[g->layers] ? g->l2 + (size_t)u * d : NULL;
    for (int j = 0; j < d; j++)
        out[j] = (l2 ? l2[j] : 0.0f) + out[j];
}

/* Given g->dh[K], the gradients of the weights and of E0's rows of the batch's subgraph. */
static void backward(trn_model_t *m)
{
    sage_t *g = m->impl;
    const sage_graph_t *sg = &g->sub;
    const sage_acts_t *a = &g->acts;
    const int d = g->dim, th = m->threads;
    for (int l = g->layers - 1; l >= 0; l--) {
        const int64_t n = sg->n[l + 1], n_in = sg->n[l];
        const size_t nd = (size_t)n * d;
        memset(g->da, 0, nd * sizeof *g->da);
        trn_l2norm_backward(g->da, g->dh[l + 1], a->h[l + 1], a->norm[l], n, d, th);
        float *dz = g->da;
        if (l < g->layers - 1) {
            memset(g->dz, 0, nd * sizeof *g->dz);
            trn_lrelu_backward(g->dz, g->da, a->z[l], 0.0f, nd); /* z: ReLU(z), the same mask */
            dz = g->dz;
        }
        memset(g->dcat, 0, 2 * nd * sizeof *g->dcat);
        trn_dense_backward(g->dcat, weight(m, m->grads, l), NULL, dz, a->cat[l],
                           weight(m, m->params, l), n, 2 * d, d, th);
        memset(g->dagg, 0, nd * sizeof *g->dagg);
        trn_concat_backward(g->dagg, g->dcat, n, d, 2 * d, d);
        if (l == 0 && g->in_place) { /* E0's rows: e0_row_grad sums them from dcat and dagg */
            if (g->agg == ENG_SAGE_POOL)
                pool0_backward(m);
            break;
        }
        float *dx = g->dh[l];
        memset(dx, 0, (size_t)n_in * d * sizeof *dx);
        trn_concat_backward(dx, g->dcat, n, d, 2 * d, 0);
        if (g->agg == ENG_SAGE_MEAN)
            trn_agg_mean_backward(dx, g->dagg, sg->ptr[l], sg->idx[l], n, d, th);
        else if (g->agg == ENG_SAGE_MAX)
            trn_agg_max_backward(dx, g->dagg, a->arg[l], n, d, th);
        else if (g->agg == ENG_SAGE_POOL)
            trn_agg_pool_backward(dx, pool_w(m, m->grads, l), pool_b(m, m->grads, l),
                                  g->agg_scratch, g->dagg, a->arg[l], a->pz[l], a->h[l],
                                  pool_w(m, m->params, l), n, n_in, d, th);
        else
            trn_agg_lstm_backward(dx, lstm_x(m, m->grads, l), lstm_h(m, m->grads, l),
                                  lstm_b(m, m->grads, l), g->agg_scratch, g->dagg, a->gates[l],
                                  a->cell[l], a->h[l], lstm_x(m, m->params, l),
                                  lstm_h(m, m->params, l), sg->ptr[l], sg->idx[l], n, n_in, d, th);
    }
    if (g->in_place) {
        rank_e0_rows(g);
        return;
    }
    /* dh[0] becomes the gradient of B^0's rows of E0 (m->row_grads, whose pos is g->local): the
     * regulariser's gradient of B^K's rows plus the layers', summed in that order */
    const int32_t nk = sg->n[g->layers];
#pragma omp parallel for schedule(static) num_threads(th)
    for (int32_t i = 0; i < sg->n[0]; i++) {
        float *r = g->dh[0] + (size_t)i * d;
        const float *l2 = i < nk ? g->l2 + (size_t)i * d : NULL;
        for (int j = 0; j < d; j++)
            r[j] = (l2 ? l2[j] : 0.0f) + r[j];
    }
}

static double sage_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    sage_t *g = m->impl;
    const int d = g->dim;
    trn_scores_t *s = &g->scores;
    sample_subgraph(m, b);
    if (g->in_place)
        index_e0_lists(g, g->nodes);
    forward(m, &g->sub, &g->acts);

    /* decay / 2 / batch * the batch's rows of E0 (as lightgcn), plus decay / 2 * ||W||^2 (and
     * ||P||^2, or ||Lx||^2 + ||Lh||^2) per layer, as gcn */
    const float decay = m->hp->decay;
    trn_scores_rows(s, m, b);
    /* every row the batch scores is in B^K: as positions in B^0 (B^K is its prefix) */
    const int n = b->n, nn = n * b->nneg;
    for (int k = 0; k < n; k++) {
        s->ru[k] = g->local[s->ru[k]];
        s->rp[k] = g->local[s->rp[k]];
    }
    for (int k = 0; k < nn; k++) {
        s->rnu[k] = g->local[s->rnu[k]];
        s->rn[k] = g->local[s->rn[k]];
    }
    const int K = g->layers;
    /* on E0's rows of B^K, h^0's first rows */
    const float *e0k = g->acts.h[0];
    if (g->in_place) {
        for (int32_t i = 0; i < g->sub.n[K]; i++)
            memcpy(g->e0k + (size_t)i * d, m->params + (size_t)g->node[i] * d,
                   (size_t)d * sizeof(float));
        e0k = g->e0k;
    }
    memset(g->l2, 0, (size_t)g->sub.n[K] * d * sizeof *g->l2);
    *reg = trn_scores_l2(s, g->l2, e0k, d, decay, b);
    static const int32_t row0 = 0;
    for (int l = 0; l < g->layers; l++) {
        const int nw = 2 * d * d;
        const float *w = weight(m, m->params, l);
        trn_l2_backward(weight(m, m->grads, l), 0.5f * decay, w, &row0, 1, nw);
        *reg += 0.5 * decay * trn_l2_forward(w, &row0, 1, nw);
        /* the aggregator's matrices: P, or Lx and Lh (adjacent) */
        const int np = g->agg == ENG_SAGE_POOL ? d * d : g->agg == ENG_SAGE_LSTM ? 8 * d * d : 0;
        if (np) {
            const float *p = pool_w(m, m->params, l);
            trn_l2_backward(pool_w(m, m->grads, l), 0.5f * decay, p, &row0, 1, np);
            *reg += 0.5 * decay * trn_l2_forward(p, &row0, 1, np);
        }
    }

    /* the scores on h^K */
    memset(g->dh[K], 0, (size_t)g->sub.n[K] * d * sizeof(float));
    double loss = trn_scores_eval(s, g->dh[K], g->acts.h[K], d, m, b);
    backward(m);
    return loss;
}

/* Rows of a chunk of the forward over every node: a multiple of the dense layers' row block
 * (trainer/layers.c), so that each product runs on the same blocks as over all rows at once. */
#define CHUNK 16384

/* The forward over every node with full neighbourhoods (each list in index order, which is also
 * lstm's order here), layer by layer, each layer CHUNK nodes at a time: h^{l+1} of a chunk needs
 * h^l of every node, so h^l and h^{l+1} are whole tables, but a layer's aggregates, products and
 * norms are a chunk's, and lstm keeps no gates (trn_agg_lstm_infer). Calls keep(m, ctx, l, h^l)
 * for l = 0..K before h^l is freed (h^0 is E0 itself). The same bits as one pass over every
 * node. 0 or ENG_ENOMEM. */
static int full_forward(trn_model_t *m, void (*keep)(trn_model_t *, void *, int, const float *),
                        void *ctx)
{
    const sage_t *g = m->impl;
    const int d = g->dim, L = g->layers, th = m->threads;
    const int64_t N = g->nodes, C = N < CHUNK ? N : CHUNK;
    const int64_t *ptr = g->adj->ptr;
    const int32_t *idx = g->adj->idx;
    const size_t nd = (size_t)N * d;
    const int pool = g->agg == ENG_SAGE_POOL, lstm = g->agg == ENG_SAGE_LSTM;
    float *h = m->params, *next = NULL, *xw = NULL, *lstm_scratch = NULL;
    float *agg = malloc((size_t)C * d * sizeof *agg),
          *cat = malloc((size_t)C * 2 * d * sizeof *cat), *z = malloc((size_t)C * d * sizeof *z),
          *norm = malloc((size_t)C * sizeof *norm);
    int32_t *arg = g->agg == ENG_SAGE_MAX || pool ? malloc((size_t)C * d * sizeof *arg) : NULL;
    int rc =
        agg && cat && z && norm && (arg || !(g->agg == ENG_SAGE_MAX || pool)) ? ENG_OK : ENG_ENOMEM;
    if (rc == ENG_OK && (pool || lstm) && !(xw = malloc((lstm ? 4 : 1) * nd * sizeof *xw)))
        rc = ENG_ENOMEM;
    if (rc == ENG_OK && lstm && !(lstm_scratch = malloc((size_t)C * (6 * d + 1) * sizeof(float))))
        rc = ENG_ENOMEM;
    for (int l = 0; rc == ENG_OK && l < L; l++) {
        keep(m, ctx, l, h);
        if (!(next = malloc(nd * sizeof *next))) {
            rc = ENG_ENOMEM;
            break;
        }
        /* pool's ReLU(h P + pb) and lstm's h Lx + lb, of every node once */
        if (pool) {
            trn_dense_forward(xw, h, pool_w(m, m->params, l), pool_b(m, m->params, l), N, d, d, th);
            trn_lrelu_forward(xw, xw, 0.0f, nd);
        } else if (lstm) {
            trn_dense_forward(xw, h, lstm_x(m, m->params, l), lstm_b(m, m->params, l), N, d, 4 * d,
                              th);
        }
        for (int64_t r0 = 0; r0 < N; r0 += C) {
            const int64_t n = N - r0 < C ? N - r0 : C;
            const int64_t *p = ptr + r0; /* absolute positions in idx */
            if (g->agg == ENG_SAGE_MEAN)
                trn_agg_mean_forward(agg, h, p, idx, n, d, th);
            else if (g->agg == ENG_SAGE_MAX || pool)
                trn_agg_max_forward(agg, arg, pool ? xw : h, p, idx, n, d, th);
            else
                trn_agg_lstm_infer(agg, lstm_scratch, xw, lstm_h(m, m->params, l), p, idx, n, d,
                                   th);
            trn_concat_forward(cat, h + (size_t)r0 * d, n, d, 2 * d, 0);
            trn_concat_forward(cat, agg, n, d, 2 * d, d);
            trn_dense_forward(z, cat, weight(m, m->params, l), NULL, n, 2 * d, d, th);
            if (l < L - 1)
                trn_lrelu_forward(z, z, 0.0f, (size_t)n * d);
            trn_l2norm_forward(next + (size_t)r0 * d, norm, z, n, d, th);
        }
        if (h != m->params)
            free(h);
        h = next;
    }
    if (rc == ENG_OK)
        keep(m, ctx, L, h);
    if (h != m->params)
        free(h);
    free(agg);
    free(cat);
    free(z);
    free(norm);
    free(arg);
    free(xw);
    free(lstm_scratch);
    return rc;
}

static void keep_vectors(trn_model_t *m, void *ctx, int l, const float *h)
{
    float **out = ctx;
    const sage_t *g = m->impl;
    if (l < g->layers)
        return;
    const size_t vu = (size_t)m->n_users * g->dim;
    memcpy(out[0], h, vu * sizeof *h);
    memcpy(out[1], h + vu, (size_t)m->n_items * g->dim * sizeof *h);
}

static int sage_vectors(trn_model_t *m, float *user_vecs, float *item_vecs)
{
    float *out[2] = {user_vecs, item_vecs};
    return full_forward(m, keep_vectors, out);
}

static void keep_item_layers(trn_model_t *m, void *ctx, int l, const float *h)
{
    (void)ctx;
    sage_t *g = m->impl;
    const int d = g->dim, L = g->layers;
    if (l < L)
        trn_concat_forward(g->item_layers, h + (size_t)m->n_users * d, m->n_items, d, L * d, l * d);
}

/* sage.item_layers [items x K dim]: each item's h^0..h^{K-1} over full neighbourhoods, what
 * trn_sage_fold_in needs to embed a new user. */
static int sage_extras(trn_model_t *m, trn_extra_t *out)
{
    sage_t *g = m->impl;
    const int d = g->dim, L = g->layers;
    if (!g->item_layers &&
        !(g->item_layers = malloc((size_t)m->n_items * L * d * sizeof *g->item_layers)))
        return ENG_ENOMEM;
    int rc = full_forward(m, keep_item_layers, NULL);
    if (rc < 0)
        return rc;
    out[0] = (trn_extra_t){"sage.item_layers", g->item_layers, m->n_items,
                           (int64_t)L * d,     TRN_ROWS_ITEMS, STO_F32};
    return 1;
}

/* s = m's layers, pointing into its parameter block. */
static void sage_layers(const trn_model_t *m, eng_sage_t *s)
{
    const sage_cfg_t *c = m->cfg;
    memset(s, 0, sizeof *s);
    s->dim = c->dim;
    s->layers = c->layers;
    s->agg = (eng_sage_agg_t)c->aggregator;
    for (int l = 0; l < c->layers; l++) {
        s->w[l] = weight(m, m->params, l);
        if (c->aggregator == ENG_SAGE_POOL || c->aggregator == ENG_SAGE_LSTM) {
            s->aw[l] = pool_w(m, m->params, l);
            s->ab[l] =
                c->aggregator == ENG_SAGE_POOL ? pool_b(m, m->params, l) : lstm_b(m, m->params, l);
        }
        if (c->aggregator == ENG_SAGE_LSTM)
            s->ah[l] = lstm_h(m, m->params, l);
    }
}

int trn_sage_fold_in(const trn_model_t *m, const float *item_layers, const int32_t *items, int n,
                     const float *feature, float *out)
{
    if (m->ops != &trn_graphsage_ops || n < 0)
        return ENG_EINVAL;
    for (int j = 0; j < n; j++)
        if (items[j] < 0 || items[j] >= m->n_items)
            return ENG_EINVAL;
    eng_sage_t s;
    sage_layers(m, &s);
    float *scratch = malloc(ENG_SAGE_SCRATCH(s.dim) * sizeof *scratch);
    if (!scratch)
        return ENG_ENOMEM;
    eng_sage_fold_in(&s, out, item_layers, items, n, feature, scratch);
    free(scratch);
    return ENG_OK;
}

/* user_emb and item_emb (layer 0), then per layer W (and P, pb, or Lx, Lh, lb). */
static int sage_views(const trn_model_t *m, trn_view_t *out)
{
    const sage_cfg_t *c = m->cfg;
    const int64_t d = c->dim;
    int n = trn_embedding_views(m, d, out);
    for (int l = 0; l < c->layers; l++) {
        const size_t w = weight_offset(m, l);
        out[n++] = (trn_view_t){weight_names[l], w, 2 * d, d, TRN_ROWS_NONE};
        if (c->aggregator == ENG_SAGE_POOL) {
            out[n++] = (trn_view_t){pool_w_names[l], w + 2 * d * d, d, d, TRN_ROWS_NONE};
            out[n++] = (trn_view_t){pool_b_names[l], w + 3 * d * d, 1, d, TRN_ROWS_NONE};
        }
        if (c->aggregator == ENG_SAGE_LSTM) {
            out[n++] = (trn_view_t){lstm_x_names[l], w + 2 * d * d, d, 4 * d, TRN_ROWS_NONE};
            out[n++] = (trn_view_t){lstm_h_names[l], w + 6 * d * d, d, 4 * d, TRN_ROWS_NONE};
            out[n++] = (trn_view_t){lstm_b_names[l], w + 10 * d * d, 1, 4 * d, TRN_ROWS_NONE};
        }
    }
    return n;
}

/* Not mse: the vectors are unit length (the paper's normalisation), so a score stays in [-1, 1]
 * and cannot regress ratings. */
const trn_model_ops_t trn_graphsage_ops = {
    .losses =
        TRN_LOSS_BIT(TRN_LOSS_BPR) | TRN_LOSS_BIT(TRN_LOSS_BCE) | TRN_LOSS_BIT(TRN_LOSS_MARGIN),
    .kind = "graphsage",
    .about = "GraphSAGE (Hamilton et al., NeurIPS 2017): sampled neighbourhoods, mean, max, pool "
             "or LSTM aggregators",
    .hparams = hparams,
    .n_hparams = sizeof hparams / sizeof hparams[0],
    .config_size = sizeof(sage_cfg_t),
    .n_params = sage_n_params,
    .vec_dim = sage_vec_dim,
    .init = sage_init,
    .batch_grad = sage_batch_grad,
    .vectors = sage_vectors,
    .views = sage_views,
    .extras = sage_extras,
    .free_impl = sage_free,
};
