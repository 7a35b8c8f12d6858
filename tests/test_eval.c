/* Ranking evaluation and popularity baseline: hand-computed examples, a naive reference on random
 * graphs, thread-count independence, skipped users and argument checks. AUC and rating error:
 * hand-computed examples.
 *
 * The random comparison uses vectors with small integer entries, so every inner product is exact
 * in float whatever order the kernel sums in: the reference and the library must then produce the
 * very same rankings (ties included, and there are many), and the metrics agree to rounding. */
#include "engine/csr.h"
#include "engine/err.h"
#include "engine/rng.h"
#include "trainer/eval.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define near(got, want) check_near((got), (want), #got, __LINE__)

static void check_near(double got, double want, const char *what, int line)
{
    if (!(fabs(got - want) <= 1e-12 * (1.0 + fabs(want))))
        fail_msg("line %d: %s = %.17g, want %.17g", line, what, got, want);
}

/* A pattern matrix from a list of {row, col} pairs. */
static eng_csr_t *csr_of(int32_t rows, int32_t cols, const int32_t (*pairs)[2], int64_t n)
{
    int32_t *r = malloc((size_t)(n ? n : 1) * sizeof *r),
            *c = malloc((size_t)(n ? n : 1) * sizeof *c);
    assert_non_null(r);
    assert_non_null(c);
    for (int64_t k = 0; k < n; k++) {
        r[k] = pairs[k][0];
        c[k] = pairs[k][1];
    }
    eng_csr_t *m = eng_csr_from_pairs(rows, cols, r, c, n);
    assert_non_null(m);
    free(r);
    free(c);
    return m;
}

/* ---- hand-computed ranking example -------------------------------------------------------------
 * 4 users, 5 items, dim 2. Items: i0 (1,0), i1 (0,1), i2 (1,1), i3 (2,0), i4 (0,2).
 *
 * u0 (1,0): scores i0 1, i1 0, i2 1, i3 2, i4 0. train {i3}, test {i2, i4}.
 *   ranking without i3: i0 (1), i2 (1, tie: higher index after i0), i1 (0), i4 (0).
 *   K=1 [i0]:           hits 0: recall 0,   precision 0,   hit 0, ndcg 0.
 *   K=3 [i0 i2 i1]:     hit at p1: recall 1/2, precision 1/3, hit 1,
 *                       ndcg = (1/log2 3) / (1 + 1/log2 3)              (IDCG over min(2,3) = 2).
 *   K=5 [i0 i2 i1 i4]:  only 4 items left; hits at p1, p3: recall 1, precision 2/5, hit 1,
 *                       ndcg = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3).
 * u1 (0,1): scores i0 0, i1 1, i2 1, i3 0, i4 2. no train, test {i4}.
 *   ranking: i4 (2), i1 (1), i2 (1), i0 (0), i3 (0). The hit is at p0 for every K:
 *   recall 1, precision 1/K, hit 1, ndcg 1 (IDCG over min(1,K) = 1 position).
 * u2 (-1,0): scores i0 -1, i1 0, i2 -1, i3 -2, i4 0. train {i4}, test {i1, i3}.
 *   ranking without i4: i1 (0), i0 (-1), i2 (-1), i3 (-2).
 *   K=1 [i1]:           hit at p0: recall 1/2, precision 1, hit 1, ndcg 1 (IDCG over 1).
 *   K=3 [i1 i0 i2]:     hit at p0: recall 1/2, precision 1/3, hit 1, ndcg 1 / (1 + 1/log2 3).
 *   K=5 [i1 i0 i2 i3]:  hits p0, p3: recall 1, precision 2/5, hit 1,
 *                       ndcg = (1 + 1/log2 5) / (1 + 1/log2 3).
 * u3 (1,1): train {i0}, no test: not evaluated.
 *
 * Means over the 3 evaluated users, with a = 1/log2 3 = 0.6309297535714575,
 * b = 1/log2 5 = 0.43067655807339306:
 *   K=1: recall (0 + 1 + 1/2)/3 = 1/2;  precision (0 + 1 + 1)/3 = 2/3;  hit 2/3;  ndcg 2/3.
 *   K=3: recall (1/2 + 1 + 1/2)/3 = 2/3;  precision 1/3;  hit 1;
 *        ndcg (a/(1+a) + 1 + 1/(1+a))/3 = 2/3.
 *   K=5: recall 1;  precision (2/5 + 1/5 + 2/5)/3 = 1/3;  hit 1;
 *        ndcg ((a+b)/(1+a) + 1 + (1+b)/(1+a))/3 = (2 + 2b/(1+a))/3 = 0.8427120817150606. */
static const float hand_items[5 * 2] = {1, 0, 0, 1, 1, 1, 2, 0, 0, 2};
static const float hand_users[4 * 2] = {1, 0, 0, 1, -1, 0, 1, 1};
static const int32_t hand_train[][2] = {{0, 3}, {2, 4}, {3, 0}};
static const int32_t hand_test[][2] = {{0, 2}, {0, 4}, {1, 4}, {2, 1}, {2, 3}};

static void test_ranking_hand(void **state)
{
    (void)state;
    eng_csr_t *train = csr_of(4, 5, hand_train, 3), *test = csr_of(4, 5, hand_test, 5);
    const int ks[] = {1, 3, 5};
    trn_metrics_t m;
    assert_int_equal(trn_eval_ranking(hand_users, hand_items, 2, train, test, ks, 3, 1, &m), 0);
    double a = 1.0 / log2(3.0), b = 1.0 / log2(5.0);
    assert_int_equal(m.n_users, 3);
    assert_int_equal(m.nk, 3);
    assert_int_equal(m.ks[0], 1);
    assert_int_equal(m.ks[1], 3);
    assert_int_equal(m.ks[2], 5);
    near(m.recall[0], 0.5);
    near(m.precision[0], 2.0 / 3);
    near(m.hit[0], 2.0 / 3);
    near(m.ndcg[0], 2.0 / 3);
    near(m.recall[1], 2.0 / 3);
    near(m.precision[1], 1.0 / 3);
    near(m.hit[1], 1.0);
    near(m.ndcg[1], (a / (1 + a) + 1 + 1 / (1 + a)) / 3);
    near(m.ndcg[1], 2.0 / 3);
    near(m.recall[2], 1.0);
    near(m.precision[2], 1.0 / 3);
    near(m.hit[2], 1.0);
    near(m.ndcg[2], (2 + 2 * b / (1 + a)) / 3);
    near(m.ndcg[2], 0.8427120817150606);

    /* Cut-offs in any order give the same numbers per cut-off. */
    const int ks2[] = {5, 1};
    trn_metrics_t m2;
    assert_int_equal(trn_eval_ranking(hand_users, hand_items, 2, train, test, ks2, 2, 2, &m2), 0);
    assert_int_equal(m2.ks[0], 5);
    near(m2.ndcg[0], m.ndcg[2]);
    near(m2.recall[1], m.recall[0]);
    near(m2.precision[1], m.precision[0]);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* A pair scorer of the hand example's vectors, by inner product. */
static int hand_pairs(void *ctx, const int32_t *users, const int32_t *items, int64_t n, float *out)
{
    (void)ctx;
    for (int64_t k = 0; k < n; k++)
        out[k] = hand_users[users[k] * 2] * hand_items[items[k] * 2] +
                 hand_users[users[k] * 2 + 1] * hand_items[items[k] * 2 + 1];
    return 0;
}

/* Ranking and AUC by a model's pair scores (kgcn's path) give what the vectors give when the
 * scores are the vectors' inner products; no scorer is refused. */
static void test_pair_scores(void **state)
{
    (void)state;
    eng_csr_t *train = csr_of(4, 5, hand_train, 3), *test = csr_of(4, 5, hand_test, 5);
    const int ks[] = {1, 3, 5};
    trn_metrics_t v, p;
    memset(&v, 0, sizeof v);
    memset(&p, 0, sizeof p);
    assert_int_equal(trn_eval_ranking(hand_users, hand_items, 2, train, test, ks, 3, 1, &v), 0);
    assert_int_equal(trn_eval_ranking_pairs(hand_pairs, NULL, train, test, ks, 3, &p), 0);
    for (int j = 0; j < 3; j++) {
        near(p.recall[j], v.recall[j]);
        near(p.ndcg[j], v.ndcg[j]);
        near(p.precision[j], v.precision[j]);
    }
    assert_int_equal(p.n_users, v.n_users);
    assert_int_equal(trn_eval_auc(hand_users, hand_items, 2, train, test, 4, &v), 0);
    assert_int_equal(trn_eval_auc_pairs(hand_pairs, NULL, train, test, 4, &p), 0);
    assert_int_equal(p.auc_pairs, v.auc_pairs);
    near(p.auc, v.auc);
    near(p.f1, v.f1);
    assert_int_equal(trn_eval_ranking_pairs(NULL, NULL, train, test, ks, 3, &p), ENG_EINVAL);
    assert_int_equal(trn_eval_auc_pairs(NULL, NULL, train, test, 4, &p), ENG_EINVAL);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* Cold users (at most TRN_EVAL_COLD training items) get means of their own. One-dimensional
 * vectors: item k is k + 1; u0 (-1) ranks low items first, u1 (+1) high ones. u0 has 6 training
 * items {4..9} and test {3}: its top-1 is i0, a miss. u1 has 1, {0}, and test {9}: a hit. */
static void test_cold_users(void **state)
{
    (void)state;
    float items[10], users[2] = {-1, 1};
    for (int k = 0; k < 10; k++)
        items[k] = (float)(k + 1);
    const int32_t tr[][2] = {{0, 4}, {0, 5}, {0, 6}, {0, 7}, {0, 8}, {0, 9}, {1, 0}};
    const int32_t te[][2] = {{0, 3}, {1, 9}};
    eng_csr_t *train = csr_of(2, 10, tr, 7), *test = csr_of(2, 10, te, 2);
    const int ks[] = {1};
    trn_metrics_t m;
    assert_int_equal(trn_eval_ranking(users, items, 1, train, test, ks, 1, 1, &m), 0);
    assert_int_equal(m.n_users, 2);
    assert_int_equal(m.cold_users, 1);
    near(m.recall[0], 0.5);
    near(m.cold_recall[0], 1.0);
    near(m.cold_ndcg[0], 1.0);
    assert_int_equal(trn_eval_popularity(train, test, ks, 1, &m), 0);
    assert_int_equal(m.cold_users, 1);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* ---- hand-computed popularity example ----------------------------------------------------------
 * 4 users, 5 items. train: u0 {i0 i1}, u1 {i1 i2}, u2 {i1}, u3 {i0 i3}.
 * Training users per item: i0 2, i1 3, i2 1, i3 1, i4 0, so the ranking is i1, i0, i2, i3, i4
 * (i2 before i3: equal popularity, lower index first).
 * test: u0 {i2 i4}, u1 {i0}, u2 none (not evaluated), u3 {i1}.
 * u0 list (no i0, i1): i2 i3 i4.  K=1: hit p0: recall 1/2, precision 1, hit 1, ndcg 1.
 *                                  K=3: hits p0, p2: recall 1, precision 2/3, hit 1,
 *                                       ndcg (1 + 1/log2 4) / (1 + 1/log2 3) = 1.5 / (1 + a).
 * u1 list (no i1, i2): i0 i3 i4.   hit p0: recall 1, precision 1/K, hit 1, ndcg 1.
 * u3 list (no i0, i3): i1 i2 i4.   hit p0: recall 1, precision 1/K, hit 1, ndcg 1.
 * Means over 3 users:
 *   K=1: recall (1/2 + 1 + 1)/3 = 5/6; precision 1; hit 1; ndcg 1.
 *   K=3: recall 1; precision (2/3 + 1/3 + 1/3)/3 = 4/9; hit 1;
 *        ndcg (1.5/(1+a) + 2)/3 = 0.9732402630493958. */
static void test_popularity_hand(void **state)
{
    (void)state;
    const int32_t tr[][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 1}, {3, 0}, {3, 3}};
    const int32_t te[][2] = {{0, 2}, {0, 4}, {1, 0}, {3, 1}};
    eng_csr_t *train = csr_of(4, 5, tr, 7), *test = csr_of(4, 5, te, 4);
    const int ks[] = {1, 3};
    trn_metrics_t m;
    assert_int_equal(trn_eval_popularity(train, test, ks, 2, &m), 0);
    double a = 1.0 / log2(3.0);
    assert_int_equal(m.n_users, 3);
    near(m.recall[0], 5.0 / 6);
    near(m.precision[0], 1.0);
    near(m.hit[0], 1.0);
    near(m.ndcg[0], 1.0);
    near(m.recall[1], 1.0);
    near(m.precision[1], 4.0 / 9);
    near(m.hit[1], 1.0);
    near(m.ndcg[1], (1.5 / (1 + a) + 2) / 3);
    near(m.ndcg[1], 0.9732402630493958);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* ---- naive reference ---------------------------------------------------------------------------
 * Straight from the protocol's definition: double loops for the scores, a full qsort per user,
 * linear scans for membership, sums in user order. */

typedef struct {
    double score;
    int32_t idx;
} ref_item_t;

static int ref_cmp(const void *a, const void *b)
{
    const ref_item_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int row_has(const eng_csr_t *m, int32_t u, int32_t i)
{
    for (int64_t q = m->ptr[u]; q < m->ptr[u + 1]; q++)
        if (m->idx[q] == i)
            return 1;
    return 0;
}

/* Reference metrics; scores from vectors when user_vecs is not NULL, else from popularity. */
static void ref_eval(const float *user_vecs, const float *item_vecs, int dim,
                     const eng_csr_t *train, const eng_csr_t *test, const int *ks, int nk,
                     trn_metrics_t *out)
{
    int32_t nu = train->rows, ni = train->cols;
    ref_item_t *list = malloc((size_t)(ni ? ni : 1) * sizeof *list);
    double *pop = calloc((size_t)(ni ? ni : 1), sizeof *pop);
    assert_non_null(list);
    assert_non_null(pop);
    for (int32_t u = 0; u < nu; u++)
        for (int32_t i = 0; i < ni; i++)
            pop[i] += row_has(train, u, i);
    memset(out, 0, sizeof *out);
    out->nk = nk;
    for (int j = 0; j < nk; j++)
        out->ks[j] = ks[j];
    for (int32_t u = 0; u < nu; u++) {
        int64_t nt = test->ptr[u + 1] - test->ptr[u];
        if (nt == 0)
            continue;
        out->n_users++;
        int32_t len = 0;
        for (int32_t i = 0; i < ni; i++) {
            if (row_has(train, u, i))
                continue;
            double s = 0;
            if (user_vecs)
                for (int d = 0; d < dim; d++)
                    s += (double)user_vecs[(size_t)u * dim + d] * item_vecs[(size_t)i * dim + d];
            else
                s = pop[i];
            list[len++] = (ref_item_t){s, i};
        }
        qsort(list, (size_t)len, sizeof *list, ref_cmp);
        for (int j = 0; j < nk; j++) {
            int hits = 0;
            double dcg = 0, idcg = 0;
            for (int p = 0; p < ks[j] && p < len; p++)
                if (row_has(test, u, list[p].idx)) {
                    hits++;
                    dcg += 1.0 / log2(p + 2.0);
                }
            for (int p = 0; p < ks[j] && p < nt; p++)
                idcg += 1.0 / log2(p + 2.0);
            out->recall[j] += (double)hits / (double)nt;
            out->precision[j] += (double)hits / ks[j];
            out->hit[j] += hits > 0;
            out->ndcg[j] += dcg / idcg;
        }
    }
    for (int j = 0; j < nk && out->n_users; j++) {
        out->recall[j] /= (double)out->n_users;
        out->precision[j] /= (double)out->n_users;
        out->hit[j] /= (double)out->n_users;
        out->ndcg[j] /= (double)out->n_users;
    }
    free(list);
    free(pop);
}

static void check_same_metrics(const trn_metrics_t *got, const trn_metrics_t *want)
{
    assert_int_equal(got->n_users, want->n_users);
    assert_int_equal(got->nk, want->nk);
    for (int j = 0; j < want->nk; j++) {
        assert_int_equal(got->ks[j], want->ks[j]);
        near(got->recall[j], want->recall[j]);
        near(got->precision[j], want->precision[j]);
        near(got->hit[j], want->hit[j]);
        near(got->ndcg[j], want->ndcg[j]);
    }
}

/* A random pattern with about density * rows * cols entries (duplicates merged). */
static eng_csr_t *random_csr(eng_rng_t *r, int32_t rows, int32_t cols, double density)
{
    int64_t n = (int64_t)(density * rows * cols);
    int32_t *ru = malloc((size_t)(n ? n : 1) * sizeof *ru),
            *ci = malloc((size_t)(n ? n : 1) * sizeof *ci);
    assert_non_null(ru);
    assert_non_null(ci);
    for (int64_t k = 0; k < n; k++) {
        ru[k] = (int32_t)eng_rng_below(r, (uint32_t)rows);
        ci[k] = (int32_t)eng_rng_below(r, (uint32_t)cols);
    }
    eng_csr_t *m = eng_csr_from_pairs(rows, cols, ru, ci, n);
    assert_non_null(m);
    free(ru);
    free(ci);
    return m;
}

/* Small-integer entries (see the file comment): every score is exact, ties are common. */
static float *random_int_vecs(eng_rng_t *r, int32_t rows, int dim)
{
    float *v = malloc((size_t)rows * (size_t)dim * sizeof *v + 1);
    assert_non_null(v);
    for (size_t k = 0; k < (size_t)rows * (size_t)dim; k++)
        v[k] = (float)((int)eng_rng_below(r, 7) - 3);
    return v;
}

/* Random graphs, sizes and cut-offs; the last few span several item groups of the index and are
 * taller than one user block (64 in eval.c). */
static void test_random_against_reference(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 2024, 0);
    for (int rep = 0; rep < 28; rep++) {
        int wide = rep >= 25;
        int32_t nu = 1 + (int32_t)eng_rng_below(&r, wide ? 600 : 200);
        int32_t ni = 1 + (int32_t)eng_rng_below(&r, 120) + (wide ? 2 * 2048 : 0);
        int dim = 1 + (int)eng_rng_below(&r, 6);
        double scale = wide ? 0.02 : 1.0; /* keep wide rows about as long as narrow ones */
        eng_csr_t *train = random_csr(&r, nu, ni, scale * (0.01 + 0.2 * eng_rng_uniform(&r)));
        eng_csr_t *test = random_csr(&r, nu, ni, scale * (0.005 + 0.05 * eng_rng_uniform(&r)));
        float *uv = random_int_vecs(&r, nu, dim), *iv = random_int_vecs(&r, ni, dim);
        int nk = 1 + (int)eng_rng_below(&r, TRN_EVAL_MAX_K);
        int ks[TRN_EVAL_MAX_K];
        for (int j = 0; j < nk; j++) /* sometimes beyond the number of items */
            ks[j] = 1 + (int)eng_rng_below(&r, (uint32_t)ni + 10);
        int threads = 1 + (int)eng_rng_below(&r, 3);

        trn_metrics_t got, want;
        assert_int_equal(trn_eval_ranking(uv, iv, dim, train, test, ks, nk, threads, &got), 0);
        ref_eval(uv, iv, dim, train, test, ks, nk, &want);
        check_same_metrics(&got, &want);

        assert_int_equal(trn_eval_popularity(train, test, ks, nk, &got), 0);
        ref_eval(NULL, NULL, 0, train, test, ks, nk, &want);
        check_same_metrics(&got, &want);

        free(uv);
        free(iv);
        eng_csr_free(train);
        eng_csr_free(test);
    }
}

/* Real-valued vectors over several user blocks (64 users in eval.c, the last partial): 1, 2 and
 * 3 threads must give the same bits. */
static void test_thread_count_independent(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 99, 0);
    int32_t nu = 1000, ni = 4500;
    int dim = 24;
    eng_csr_t *train = random_csr(&r, nu, ni, 0.01), *test = random_csr(&r, nu, ni, 0.002);
    float *uv = malloc((size_t)nu * dim * sizeof *uv), *iv = malloc((size_t)ni * dim * sizeof *iv);
    assert_non_null(uv);
    assert_non_null(iv);
    for (size_t k = 0; k < (size_t)nu * dim; k++)
        uv[k] = (float)eng_rng_normal(&r);
    for (size_t k = 0; k < (size_t)ni * dim; k++)
        iv[k] = (float)eng_rng_normal(&r);
    const int ks[] = {20, 1, 5, 50};

    trn_metrics_t m[3];
    for (int t = 0; t < 3; t++)
        assert_int_equal(trn_eval_ranking(uv, iv, dim, train, test, ks, 4, t + 1, &m[t]), 0);
    assert_true(m[0].n_users > 64 * 3); /* several blocks per thread */
    assert_true(m[0].recall[3] > 0);
    for (int t = 1; t < 3; t++) {
        assert_int_equal(m[t].n_users, m[0].n_users);
        assert_memory_equal(m[t].recall, m[0].recall, sizeof m[0].recall);
        assert_memory_equal(m[t].precision, m[0].precision, sizeof m[0].precision);
        assert_memory_equal(m[t].hit, m[0].hit, sizeof m[0].hit);
        assert_memory_equal(m[t].ndcg, m[0].ndcg, sizeof m[0].ndcg);
    }
    free(uv);
    free(iv);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* Users without test items are not averaged in; no test items at all gives zero means. */
static void test_users_without_test_skipped(void **state)
{
    (void)state;
    eng_csr_t *train = csr_of(4, 5, hand_train, 3);
    const int ks[] = {1};
    trn_metrics_t m;
    /* The hand example with only u1's test item: u0, u2 and u3 drop out, u1's hit is the mean. */
    const int32_t only_u1[][2] = {{1, 4}};
    eng_csr_t *test1 = csr_of(4, 5, only_u1, 1);
    assert_int_equal(trn_eval_ranking(hand_users, hand_items, 2, train, test1, ks, 1, 1, &m), 0);
    assert_int_equal(m.n_users, 1);
    near(m.recall[0], 1.0);
    near(m.ndcg[0], 1.0);

    eng_csr_t *empty = csr_of(4, 5, NULL, 0);
    memset(&m, 0xff, sizeof m);
    assert_int_equal(trn_eval_ranking(hand_users, hand_items, 2, train, empty, ks, 1, 2, &m), 0);
    assert_int_equal(m.n_users, 0);
    assert_true(m.recall[0] == 0 && m.precision[0] == 0 && m.hit[0] == 0 && m.ndcg[0] == 0);
    memset(&m, 0xff, sizeof m);
    assert_int_equal(trn_eval_popularity(train, empty, ks, 1, &m), 0);
    assert_int_equal(m.n_users, 0);
    assert_true(m.recall[0] == 0 && m.ndcg[0] == 0);
    eng_csr_free(empty);
    eng_csr_free(test1);
    eng_csr_free(train);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    eng_csr_t *train = csr_of(4, 5, hand_train, 3), *test = csr_of(4, 5, hand_test, 5);
    eng_csr_t *wide = csr_of(4, 6, hand_test, 5);
    const int ok[] = {1, 3}, zero[] = {3, 0}, neg[] = {-2};
    const int nine[TRN_EVAL_MAX_K + 1] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    trn_metrics_t m, before;
    memset(&m, 0x5a, sizeof m);
    before = m;
    const float *U = hand_users, *V = hand_items;

    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, ok, 0, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, nine, TRN_EVAL_MAX_K + 1, 1, &m),
                     ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, zero, 2, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, neg, 1, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, NULL, 1, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 0, train, test, ok, 2, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(U, V, 2, train, wide, ok, 2, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_ranking(NULL, V, 2, train, test, ok, 2, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_popularity(train, test, ok, 0, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_popularity(train, test, zero, 2, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_popularity(train, test, nine, TRN_EVAL_MAX_K + 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_popularity(train, wide, ok, 2, &m), ENG_EINVAL);
    assert_memory_equal(&m, &before, sizeof m); /* failures leave *out alone */

    /* The boundaries themselves are fine: TRN_EVAL_MAX_K cut-offs, K = 1, threads < 1. */
    assert_int_equal(trn_eval_ranking(U, V, 2, train, test, nine, TRN_EVAL_MAX_K, 0, &m), 0);
    assert_int_equal(m.nk, TRN_EVAL_MAX_K);
    eng_csr_free(wide);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* ---- hand-computed AUC and rating error --------------------------------------------------------
 * 4 users, 4 items, dim 1. Items i0 3, i1 1, i2 2, i3 2; users u0 1, u1 -1, u2 0, u3 1.
 *   u0: train {i0}, test {i1} (rating 2). Negatives {i2, i3} both score 2 > 1: wrong.
 *   u1: train {i1}, test {i2, i3} (ratings 1, 0). The only negative is i0 (-3 < -2): both right.
 *   u2: train {i0}, test {i3} (rating 0.5). Every score is 0: a tie, 1/2.
 *   u3: train {i0, i1}, test {i2, i3} (ratings 2, 2): no item left to be a negative, skipped.
 * AUC = (0 + 1 + 1 + 1/2) / 4 = 0.625 whatever the draws, for any seed.
 * Errors (score - rating) over the 6 test pairs: -1, -3, -2, -0.5, 0, 0:
 *   rmse = sqrt(14.25 / 6) = 1.5411035007422441, mae = 6.5 / 6. */
static void test_auc_and_ratings_hand(void **state)
{
    (void)state;
    const float items[4] = {3, 1, 2, 2}, users[4] = {1, -1, 0, 1};
    const int32_t tr[][2] = {{0, 0}, {1, 1}, {2, 0}, {3, 0}, {3, 1}};
    const int32_t te[][2] = {{0, 1}, {1, 2}, {1, 3}, {2, 3}, {3, 2}, {3, 3}};
    eng_csr_t *train = csr_of(4, 4, tr, 5), *test = csr_of(4, 4, te, 6);
    trn_metrics_t m = {0};
    for (uint64_t seed = 1; seed <= 3; seed++) {
        assert_int_equal(trn_eval_auc(users, items, 1, train, test, seed, &m), 0);
        assert_true(m.has_auc);
        assert_int_equal(m.auc_pairs, 4);
        near(m.auc, 0.625);
    }
    assert_int_equal(trn_eval_ratings(users, items, 1, test, &m), ENG_EINVAL); /* no ratings */
    assert_false(m.has_rmse);
    test->val = malloc(6 * sizeof *test->val);
    assert_non_null(test->val);
    memcpy(test->val, (const float[]){2, 1, 0, 0.5f, 2, 2}, 6 * sizeof *test->val);
    assert_int_equal(trn_eval_ratings(users, items, 1, test, &m), 0);
    assert_true(m.has_rmse);
    assert_int_equal(m.n_ratings, 6);
    near(m.rmse, 1.5411035007422441);
    near(m.mae, 6.5 / 6);
    near(m.auc, 0.625); /* the other metrics are left as they were */

    eng_csr_t *wide = csr_of(4, 5, te, 6);
    assert_int_equal(trn_eval_auc(users, items, 1, train, wide, 1, &m), ENG_EINVAL);
    assert_int_equal(trn_eval_auc(users, items, 0, train, test, 1, &m), ENG_EINVAL);
    eng_csr_free(wide);
    eng_csr_free(train);
    eng_csr_free(test);
}

/* With random negatives: the same seed draws the same negatives, and the AUC of random vectors on a
 * random graph is an average over real draws, near 1/2. */
static void test_auc_seeded(void **state)
{
    (void)state;
    enum { NU = 50, NI = 40, DIM = 3 };
    int32_t(*pairs)[2] = malloc(NU * 6 * sizeof *pairs);
    assert_non_null(pairs);
    eng_rng_t r;
    eng_rng_seed(&r, 9, 0);
    for (int k = 0; k < NU * 6; k++) {
        pairs[k][0] = k / 6;
        pairs[k][1] = (int32_t)eng_rng_below(&r, NI);
    }
    eng_csr_t *train = csr_of(NU, NI, pairs, NU * 3);
    /* test pairs that are not training pairs */
    int64_t n = 0;
    for (int k = NU * 3; k < NU * 6; k++)
        if (!eng_csr_has(train, pairs[k][0], pairs[k][1]))
            memcpy(pairs[n++], pairs[k], sizeof pairs[k]);
    eng_csr_t *test = csr_of(NU, NI, pairs, n);
    float uv[NU * DIM], iv[NI * DIM];
    for (int k = 0; k < NU * DIM; k++)
        uv[k] = (float)eng_rng_normal(&r);
    for (int k = 0; k < NI * DIM; k++)
        iv[k] = (float)eng_rng_normal(&r);
    trn_metrics_t a = {0}, b = {0}, c = {0};
    assert_int_equal(trn_eval_auc(uv, iv, DIM, train, test, 5, &a), 0);
    assert_int_equal(trn_eval_auc(uv, iv, DIM, train, test, 5, &b), 0);
    assert_int_equal(trn_eval_auc(uv, iv, DIM, train, test, 6, &c), 0);
    assert_true(a.auc == b.auc);
    assert_int_equal(a.auc_pairs, test->nnz);
    assert_true(a.auc != c.auc); /* other negatives */
    assert_true(a.auc > 0.3 && a.auc < 0.7);
    free(pairs);
    eng_csr_free(train);
    eng_csr_free(test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranking_hand),
        cmocka_unit_test(test_cold_users),
        cmocka_unit_test(test_pair_scores),
        cmocka_unit_test(test_popularity_hand),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_users_without_test_skipped),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_auc_and_ratings_hand),
        cmocka_unit_test(test_auc_seeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
