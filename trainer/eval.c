/* Ranking evaluation (all-ranking protocol), the popularity baseline, AUC and rating error.
 *
 * Both paths produce, for every evaluated user, a best-first list of recommended items, turn it
 * into per-user metrics in one shared routine, store those in a per-user array, and sum that
 * array in user order at the end. The per-user lists do not depend on how users were spread over
 * threads, and neither does the order of the final sums, so the means are bit-identical for any
 * thread count. AUC and the rating error are one serial pass over the test pairs, cheap next to
 * ranking. docs/evaluation.md has the protocols and the reasoning. */
#include "trainer/eval.h"

#include "engine/err.h"
#include "engine/index.h"
#include "engine/rng.h"
#include "engine/topk.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Users scored together: one eng_index_topk call streams the item matrix through the cache once
 * for the whole block (the serving kernel; docs/serving-kernel.md). Fixed, not derived from the
 * thread count; and the kernel's scores do not depend on the batch anyway. */
#define BLOCK_USERS 64

/* The metrics kept per user and cut-off, in trn_metrics_t field order. */
enum { M_RECALL, M_PRECISION, M_HIT, M_NDCG, N_METRICS };

/* ---- shared parts ------------------------------------------------------------------------- */

/* What every evaluated user's metrics need: the cut-offs, the list depth and discount tables. */
typedef struct {
    const int *ks;
    int nk;
    size_t depth;   /* items to rank per user: max(ks), capped at the number of items */
    double *disc;   /* [depth]: disc[p] = 1 / log2(p + 2), the gain of a hit at position p */
    double *idcg;   /* [depth + 1]: idcg[m] = disc[0] + ... + disc[m - 1] */
    int32_t *users; /* [n_users]: the users with at least one test item, ascending */
    int64_t n_users;
    double *per_user; /* [n_users x N_METRICS x nk] */
} plan_t;

static void plan_free(plan_t *p)
{
    free(p->disc);
    free(p->idcg);
    free(p->users);
    free(p->per_user);
}

/* Checks the arguments both evaluations share and fills p. Returns 0, ENG_EINVAL or ENG_ENOMEM
 * (p holds nothing to free on failure). */
static int plan_init(plan_t *p, const eng_csr_t *train, const eng_csr_t *test, const int *ks,
                     int nk, const trn_metrics_t *out)
{
    memset(p, 0, sizeof *p);
    if (!train || !test || !out || !ks || nk < 1 || nk > TRN_EVAL_MAX_K)
        return ENG_EINVAL;
    if (train->rows != test->rows || train->cols != test->cols)
        return ENG_EINVAL;
    int kmax = 0;
    for (int j = 0; j < nk; j++) {
        if (ks[j] < 1)
            return ENG_EINVAL;
        if (ks[j] > kmax)
            kmax = ks[j];
    }
    p->ks = ks;
    p->nk = nk;
    /* No list is longer than the catalogue, and min(|test|, K) <= depth since |test| <= cols. */
    p->depth = (size_t)kmax < (size_t)test->cols ? (size_t)kmax : (size_t)test->cols;

    for (int32_t u = 0; u < test->rows; u++)
        p->n_users += test->ptr[u + 1] > test->ptr[u];
    p->disc = malloc((p->depth ? p->depth : 1) * sizeof *p->disc);
    p->idcg = malloc((p->depth + 1) * sizeof *p->idcg);
    p->users = malloc((size_t)(p->n_users ? p->n_users : 1) * sizeof *p->users);
    p->per_user = malloc((size_t)(p->n_users ? p->n_users : 1) * N_METRICS * (size_t)nk *
                         sizeof *p->per_user);
    if (!p->disc || !p->idcg || !p->users || !p->per_user) {
        plan_free(p);
        return ENG_ENOMEM;
    }
    p->idcg[0] = 0.0;
    for (size_t i = 0; i < p->depth; i++) {
        p->disc[i] = 1.0 / log2((double)i + 2.0);
        p->idcg[i + 1] = p->idcg[i] + p->disc[i];
    }
    int64_t e = 0;
    for (int32_t u = 0; u < test->rows; u++)
        if (test->ptr[u + 1] > test->ptr[u])
            p->users[e++] = u;
    return 0;
}

/* Metrics of evaluated user number e, whose recommendation list is top[0..count) best-first,
 * into p->per_user (each user writes only its own slot, so callers may run users in parallel). */
static void user_metrics(const plan_t *p, const eng_csr_t *test, int64_t e, const eng_scored_t *top,
                         size_t count)
{
    int32_t u = p->users[e];
    int64_t n_test = test->ptr[u + 1] - test->ptr[u];
    double *v = p->per_user + (size_t)e * N_METRICS * (size_t)p->nk;
    for (int j = 0; j < p->nk; j++) {
        size_t K = (size_t)p->ks[j], len = count < K ? count : K;
        int64_t hits = 0;
        double dcg = 0.0;
        for (size_t q = 0; q < len; q++)
            if (eng_csr_has(test, u, top[q].idx)) {
                hits++;
                dcg += p->disc[q];
            }
        size_t ideal = (size_t)n_test < K ? (size_t)n_test : K;
        v[M_RECALL * p->nk + j] = (double)hits / (double)n_test;
        v[M_PRECISION * p->nk + j] = (double)hits / (double)K;
        v[M_HIT * p->nk + j] = hits > 0;
        v[M_NDCG * p->nk + j] = dcg / p->idcg[ideal];
    }
}

/* Means of the per-user metrics, summed in user order, over every evaluated user and over the
 * cold ones (at most TRN_EVAL_COLD training items); 0 when there is none. */
static void plan_finish(const plan_t *p, const eng_csr_t *train, trn_metrics_t *out)
{
    trn_metrics_t m;
    memset(&m, 0, sizeof m);
    m.nk = p->nk;
    m.n_users = p->n_users;
    for (int64_t e = 0; e < p->n_users; e++) {
        const int32_t u = p->users[e];
        m.cold_users += train->ptr[u + 1] - train->ptr[u] <= TRN_EVAL_COLD;
    }
    double *fields[N_METRICS] = {m.recall, m.precision, m.hit, m.ndcg};
    for (int j = 0; j < p->nk; j++) {
        m.ks[j] = p->ks[j];
        for (int f = 0; f < N_METRICS; f++) {
            double s = 0.0, cold = 0.0;
            for (int64_t e = 0; e < p->n_users; e++) {
                const double v =
                    p->per_user[((size_t)e * N_METRICS + (size_t)f) * (size_t)p->nk + (size_t)j];
                const int32_t u = p->users[e];
                s += v;
                if (train->ptr[u + 1] - train->ptr[u] <= TRN_EVAL_COLD)
                    cold += v;
            }
            fields[f][j] = p->n_users ? s / (double)p->n_users : 0.0;
            if (f == M_RECALL)
                m.cold_recall[j] = m.cold_users ? cold / (double)m.cold_users : 0.0;
            if (f == M_NDCG)
                m.cold_ndcg[j] = m.cold_users ? cold / (double)m.cold_users : 0.0;
        }
    }
    *out = m;
}

/* ---- model ranking ------------------------------------------------------------------------ */

/* One thread's space for a block of users. */
typedef struct {
    void *scratch;     /* eng_index_scratch_bytes(ix, BLOCK_USERS) */
    eng_query_t *qs;   /* [BLOCK_USERS] */
    eng_scored_t *top; /* [BLOCK_USERS x depth]: each user's list */
} work_t;

/* Scores block b of the evaluated users against every item, their training items excluded, and
 * records their metrics. Touches only w and the block's slots of p->per_user. */
static void score_block(const plan_t *p, work_t *w, int64_t b, const eng_index_t *ix,
                        const float *user_vecs, int dim, const eng_csr_t *train,
                        const eng_csr_t *test)
{
    int64_t e0 = b * BLOCK_USERS;
    int rows = (int)(p->n_users - e0 < BLOCK_USERS ? p->n_users - e0 : BLOCK_USERS);
    for (int r = 0; r < rows; r++) {
        int32_t u = p->users[e0 + r];
        w->qs[r] = (eng_query_t){.q = user_vecs + (size_t)u * dim,
                                 .k = p->depth,
                                 .exclude = train->idx + train->ptr[u],
                                 .n_exclude = (size_t)(train->ptr[u + 1] - train->ptr[u]),
                                 .out = w->top + (size_t)r * p->depth};
    }
    eng_index_topk(ix, w->qs, rows, w->scratch);
    for (int r = 0; r < rows; r++)
        user_metrics(p, test, e0 + r, w->qs[r].out, w->qs[r].n_out);
}

int trn_eval_ranking(const float *user_vecs, const float *item_vecs, int dim,
                     const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                     int threads, trn_metrics_t *out)
{
    if (!user_vecs || !item_vecs || dim < 1)
        return ENG_EINVAL;
    plan_t p;
    int rc = plan_init(&p, train, test, ks, nk, out);
    if (rc)
        return rc;

    int64_t n_blocks = (p.n_users + BLOCK_USERS - 1) / BLOCK_USERS;
    if (threads < 1)
        threads = 1;
    if (threads > n_blocks)
        threads = n_blocks > 0 ? (int)n_blocks : 1;

    /* The index and per-thread spaces, all allocated up front so the parallel loop cannot fail. */
    eng_index_t *ix = eng_index_new(item_vecs, train->cols, dim, 0);
    work_t *w = calloc((size_t)threads, sizeof *w);
    rc = ENG_ENOMEM;
    if (!ix || !w)
        goto done;
    for (int t = 0; t < threads; t++) {
        w[t].scratch = malloc(eng_index_scratch_bytes(ix, BLOCK_USERS));
        w[t].qs = malloc(BLOCK_USERS * sizeof *w[t].qs);
        w[t].top = malloc(BLOCK_USERS * (p.depth ? p.depth : 1) * sizeof *w[t].top);
        if (!w[t].scratch || !w[t].qs || !w[t].top)
            goto done;
    }

#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t b = 0; b < n_blocks; b++)
        score_block(&p, &w[omp_get_thread_num()], b, ix, user_vecs, dim, train, test);
    plan_finish(&p, train, out);
    rc = 0;

done:
    for (int t = 0; w && t < threads; t++) {
        free(w[t].scratch);
        free(w[t].qs);
        free(w[t].top);
    }
    free(w);
    eng_index_free(ix);
    plan_free(&p);
    return rc;
}

/* ---- ranking by a model's pair scores ------------------------------------------------------ */

int trn_eval_ranking_pairs(trn_pair_scorer_t score, void *ctx, const eng_csr_t *train,
                           const eng_csr_t *test, const int *ks, int nk, trn_metrics_t *out)
{
    if (!score)
        return ENG_EINVAL;
    plan_t p;
    int rc = plan_init(&p, train, test, ks, nk, out);
    if (rc)
        return rc;
    const int32_t n_items = train->cols;
    const size_t cells = (size_t)BLOCK_USERS * (size_t)n_items;
    int32_t *users = malloc(cells * sizeof *users), *items = malloc(cells * sizeof *items);
    float *scores = malloc(cells * sizeof *scores);
    eng_scored_t *top = malloc((p.depth ? p.depth : 1) * sizeof *top);
    rc = ENG_ENOMEM;
    if (!users || !items || !scores || !top)
        goto done;
    for (int64_t e0 = 0; e0 < p.n_users; e0 += BLOCK_USERS) {
        const int rows = (int)(p.n_users - e0 < BLOCK_USERS ? p.n_users - e0 : BLOCK_USERS);
        for (int r = 0; r < rows; r++)
            for (int32_t i = 0; i < n_items; i++) {
                users[(size_t)r * n_items + i] = p.users[e0 + r];
                items[(size_t)r * n_items + i] = i;
            }
        if ((rc = score(ctx, users, items, (int64_t)rows * n_items, scores)) < 0)
            goto done;
        for (int r = 0; r < rows; r++) {
            const int32_t u = p.users[e0 + r];
            float *row = scores + (size_t)r * n_items;
            for (int64_t q = train->ptr[u]; q < train->ptr[u + 1]; q++)
                row[train->idx[q]] = -INFINITY;
            user_metrics(&p, test, e0 + r, top, eng_topk(row, n_items, p.depth, top));
        }
    }
    plan_finish(&p, train, out);
    rc = 0;
done:
    free(users), free(items), free(scores), free(top);
    plan_free(&p);
    return rc;
}

/* ---- AUC and rating error ------------------------------------------------------------------ */

/* RNG stream of the AUC negatives, distinct from the other users of a seed. */
#define AUC_STREAM 0xa0cULL

static double dot(const float *x, const float *y, int dim)
{
    double s = 0;
    for (int j = 0; j < dim; j++)
        s += (double)x[j] * y[j];
    return s;
}

/* The AUC protocol's pairs: for each test pair (users[k], pos[k]) in entry order, a negative
 * neg[k] drawn uniformly among the items the user has in neither train nor test (a user with no
 * such item is skipped). New arrays (free each); returns their length, or ENG_ENOMEM. */
static int64_t auc_draw(const eng_csr_t *train, const eng_csr_t *test, uint64_t seed,
                        int32_t **users, int32_t **pos, int32_t **neg)
{
    const size_t cap = (size_t)test->nnz + 1;
    *users = malloc(cap * sizeof **users);
    *pos = malloc(cap * sizeof **pos);
    *neg = malloc(cap * sizeof **neg);
    if (!*users || !*pos || !*neg) {
        free(*users), free(*pos), free(*neg);
        *users = *pos = *neg = NULL;
        return ENG_ENOMEM;
    }
    eng_rng_t rng;
    eng_rng_seed(&rng, seed, AUC_STREAM);
    int64_t n = 0;
    for (int32_t u = 0; u < test->rows; u++) {
        int64_t seen = train->ptr[u + 1] - train->ptr[u] + test->ptr[u + 1] - test->ptr[u];
        if (test->ptr[u + 1] == test->ptr[u] || seen >= test->cols)
            continue; /* no test pair, or no item left to be a negative */
        for (int64_t q = test->ptr[u]; q < test->ptr[u + 1]; q++) {
            int32_t j;
            do
                j = (int32_t)eng_rng_below(&rng, (uint32_t)test->cols);
            while (eng_csr_has(train, u, j) || eng_csr_has(test, u, j));
            (*users)[n] = u;
            (*pos)[n] = test->idx[q];
            (*neg)[n++] = j;
        }
    }
    return n;
}

/* AUC and F1 of n pairs scored sp (the test item) and sn (the drawn one) into out. */
static void auc_tally(const double *sp, const double *sn, int64_t n, trn_metrics_t *out)
{
    double right = 0;
    int64_t tp = 0, fp = 0, fn = 0;
    for (int64_t k = 0; k < n; k++) {
        right += sp[k] > sn[k] ? 1.0 : sp[k] == sn[k] ? 0.5 : 0.0;
        tp += sp[k] >= 0;
        fn += sp[k] < 0;
        fp += sn[k] >= 0;
    }
    out->has_auc = n > 0;
    out->auc = n ? right / (double)n : 0.0;
    out->f1 = tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
    out->auc_pairs = n;
}

/* The AUC of scores that score_pairs writes for the drawn pairs: sp, sn [n] each. */
typedef int (*auc_scorer_t)(const void *ctx, const int32_t *users, const int32_t *items, int64_t n,
                            double *out);

static int auc_run(auc_scorer_t score, const void *ctx, const eng_csr_t *train,
                   const eng_csr_t *test, uint64_t seed, trn_metrics_t *out)
{
    int32_t *users, *pos, *neg;
    const int64_t n = auc_draw(train, test, seed, &users, &pos, &neg);
    if (n < 0)
        return (int)n;
    double *sp = malloc(((size_t)n + 1) * sizeof *sp), *sn = malloc(((size_t)n + 1) * sizeof *sn);
    int rc = ENG_ENOMEM;
    if (sp && sn && (rc = score(ctx, users, pos, n, sp)) == 0 &&
        (rc = score(ctx, users, neg, n, sn)) == 0)
        auc_tally(sp, sn, n, out);
    free(sp), free(sn), free(users), free(pos), free(neg);
    return rc;
}

typedef struct {
    const float *user_vecs, *item_vecs;
    int dim;
} vecs_t;

static int score_vecs(const void *ctx, const int32_t *users, const int32_t *items, int64_t n,
                      double *out)
{
    const vecs_t *v = ctx;
    for (int64_t k = 0; k < n; k++)
        out[k] = dot(v->user_vecs + (size_t)users[k] * v->dim,
                     v->item_vecs + (size_t)items[k] * v->dim, v->dim);
    return 0;
}

typedef struct {
    trn_pair_scorer_t score;
    void *ctx;
} pairs_t;

/* The model's float scores, widened. */
static int score_model(const void *ctx, const int32_t *users, const int32_t *items, int64_t n,
                       double *out)
{
    const pairs_t *p = ctx;
    float *f = malloc(((size_t)n + 1) * sizeof *f);
    if (!f)
        return ENG_ENOMEM;
    int rc = p->score(p->ctx, users, items, n, f);
    for (int64_t k = 0; rc == 0 && k < n; k++)
        out[k] = f[k];
    free(f);
    return rc;
}

int trn_eval_auc(const float *user_vecs, const float *item_vecs, int dim, const eng_csr_t *train,
                 const eng_csr_t *test, uint64_t seed, trn_metrics_t *out)
{
    if (!user_vecs || !item_vecs || dim < 1 || !train || !test || !out ||
        train->rows != test->rows || train->cols != test->cols)
        return ENG_EINVAL;
    const vecs_t v = {user_vecs, item_vecs, dim};
    return auc_run(score_vecs, &v, train, test, seed, out);
}

int trn_eval_auc_pairs(trn_pair_scorer_t score, void *ctx, const eng_csr_t *train,
                       const eng_csr_t *test, uint64_t seed, trn_metrics_t *out)
{
    if (!score || !train || !test || !out || train->rows != test->rows || train->cols != test->cols)
        return ENG_EINVAL;
    const pairs_t p = {score, ctx};
    return auc_run(score_model, &p, train, test, seed, out);
}

int trn_eval_ratings(const float *user_vecs, const float *item_vecs, int dim, const eng_csr_t *test,
                     trn_metrics_t *out)
{
    if (!user_vecs || !item_vecs || dim < 1 || !test || !test->val || !out)
        return ENG_EINVAL;
    double se = 0, ae = 0;
    for (int32_t u = 0; u < test->rows; u++)
        for (int64_t q = test->ptr[u]; q < test->ptr[u + 1]; q++) {
            double e =
                dot(user_vecs + (size_t)u * dim, item_vecs + (size_t)test->idx[q] * dim, dim) -
                test->val[q];
            se += e * e;
            ae += fabs(e);
        }
    const int64_t n = test->ptr[test->rows];
    out->has_rmse = 1;
    out->rmse = n ? sqrt(se / (double)n) : 0.0;
    out->mae = n ? ae / (double)n : 0.0;
    out->n_ratings = n;
    return 0;
}

/* ---- popularity baseline ------------------------------------------------------------------ */

typedef struct {
    int64_t pop;
    int32_t idx;
} pop_item_t;

/* Most popular first; equal popularity: lower index first (the order eng_topk would give). */
static int cmp_pop(const void *a, const void *b)
{
    const pop_item_t *x = a, *y = b;
    if (x->pop != y->pop)
        return x->pop > y->pop ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int trn_eval_popularity(const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                        trn_metrics_t *out)
{
    plan_t p;
    int rc = plan_init(&p, train, test, ks, nk, out);
    if (rc)
        return rc;
    int32_t n_items = train->cols;
    pop_item_t *rank = calloc((size_t)(n_items ? n_items : 1), sizeof *rank);
    eng_scored_t *top = malloc((p.depth ? p.depth : 1) * sizeof *top);
    rc = ENG_ENOMEM;
    if (!rank || !top)
        goto done;

    /* Rows hold no duplicates, so an item's count of entries is its number of training users. */
    for (int32_t i = 0; i < n_items; i++)
        rank[i].idx = i;
    for (int64_t q = 0; q < train->ptr[train->rows]; q++)
        rank[train->idx[q]].pop++;
    qsort(rank, (size_t)n_items, sizeof *rank, cmp_pop);

    /* Each user's list: the global ranking minus the user's training items, cut at depth. */
    for (int64_t e = 0; e < p.n_users; e++) {
        int32_t u = p.users[e];
        size_t count = 0;
        for (int32_t r = 0; r < n_items && count < p.depth; r++)
            if (!eng_csr_has(train, u, rank[r].idx))
                top[count++] = (eng_scored_t){rank[r].idx, (float)rank[r].pop};
        user_metrics(&p, test, e, top, count);
    }
    plan_finish(&p, train, out);
    rc = 0;

done:
    free(rank);
    free(top);
    plan_free(&p);
    return rc;
}
