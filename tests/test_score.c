/* The serving index (engine/index.h) against references, in three layers:
 *
 * 1. Arithmetic: every returned score is within the rigorous error bound of a dot product of
 *    length dim of the double-precision score, and the returned list matches the
 *    double-precision ranking position by position, except that two items may trade places
 *    when their exact scores are closer than the two scores' error bounds (a tie the float
 *    arithmetic cannot resolve), so the test cannot flake.
 * 2. Selection: the list is exactly (index and bits) eng_topk over the row of eng_index_scores
 *    with the excluded items set to -INFINITY: exclusion, padding and tie order are right.
 * 3. Determinism: a query's results are bit-identical alone and inside batches of 7 and 64, in
 *    any position, and eng_index_scores agrees bitwise with the scores eng_index_topk returns;
 *    the AVX-512 and AVX2 kernels agree bitwise.
 *
 * The whole suite runs once per kind of kernel the CPU has (AVX-512, AVX2, baseline), forced with
 * eng_isa_force (engine/simd.h), so every compiled path is tested on one machine.
 *
 * Output arrays and scratch are allocated at exactly the size the contract promises, so ASan
 * catches any write past it. */
#include "engine/err.h"
#include "engine/index.h"
#include "engine/rng.h"
#include "engine/simd.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- references ------------------------------------------------------------------------- */

typedef struct {
    int32_t idx;
    double score; /* exact enough: double sum of float products */
    double scale; /* sum of |q_d x_d|, what the float rounding error is proportional to */
} ref_t;

static int cmp_ref(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_best(const void *a, const void *b)
{
    const eng_scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Membership in a sorted exclude list (duplicates and out-of-range entries allowed). */
static int excluded(const int32_t *ex, size_t n_ex, int32_t i)
{
    for (size_t e = 0; e < n_ex; e++)
        if (ex[e] == i)
            return 1;
    return 0;
}

/* The error bound of a float dot product of length dim, with or without fused multiply-adds:
 * |fl(q.x) - q.x| <= gamma_dim * sum |q_d x_d|, gamma_n = n u / (1 - n u), u = 2^-24. */
static double err_bound(int dim, double scale)
{
    double nu = dim * 0x1p-24;
    return nu / (1.0 - nu) * scale + 1e-37;
}

/* Checks one query's results (got[0..n_got)) against the double-precision ranking of the
 * stored item vectors. */
static void check_against_double(const eng_index_t *ix, const eng_query_t *q, const float *vecs)
{
    int32_t n = eng_index_items(ix);
    int dim = eng_index_dim(ix);
    ref_t *ref = xmalloc((size_t)n * sizeof *ref);
    double *exact = xmalloc((size_t)n * sizeof *exact), *scale = xmalloc((size_t)n * sizeof *scale);
    size_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        double s = 0.0, a = 0.0;
        for (int d = 0; d < dim; d++) {
            double p = (double)q->q[d] * vecs[(size_t)i * dim + d];
            s += p;
            a += fabs(p);
        }
        exact[i] = s;
        scale[i] = a;
        if (!excluded(q->exclude, q->n_exclude, i))
            ref[m++] = (ref_t){i, s, a};
    }
    qsort(ref, m, sizeof *ref, cmp_ref);
    size_t want = m < q->k ? m : q->k;
    if (q->n_out != want)
        fail_msg("n=%d dim=%d k=%zu: n_out %zu, want %zu", n, dim, q->k, q->n_out, want);
    for (size_t j = 0; j < q->n_out; j++) {
        int32_t g = q->out[j].idx;
        assert_true(g >= 0 && g < n);
        assert_false(excluded(q->exclude, q->n_exclude, g));
        double e = err_bound(dim, scale[g]);
        if (fabs((double)q->out[j].score - exact[g]) > e)
            fail_msg("n=%d dim=%d item %d: score %.9g, exact %.9g", n, dim, g,
                     (double)q->out[j].score, exact[g]);
        if (g != ref[j].idx && fabs(exact[g] - ref[j].score) > e + err_bound(dim, ref[j].scale))
            fail_msg("n=%d dim=%d k=%zu pos %zu: item %d (exact %.9g), want %d (exact %.9g)", n,
                     dim, q->k, j, g, exact[g], ref[j].idx, ref[j].score);
    }
    free(ref);
    free(exact);
    free(scale);
}

/* Checks one query's results are exactly eng_topk over eng_index_scores' row, excluded items
 * set to -INFINITY. */
static void check_against_row(const eng_index_t *ix, const eng_query_t *q)
{
    int32_t n = eng_index_items(ix);
    float *row = xmalloc((size_t)n * sizeof *row);
    int32_t *all = xmalloc((size_t)n * sizeof *all);
    for (int32_t i = 0; i < n; i++)
        all[i] = i;
    assert_int_equal(eng_index_scores(ix, q->q, all, (size_t)n, row), 0);
    for (size_t e = 0; e < q->n_exclude; e++)
        if (q->exclude[e] >= 0 && q->exclude[e] < n)
            row[q->exclude[e]] = -INFINITY;
    size_t room = (size_t)n < q->k ? (size_t)n : q->k;
    eng_scored_t *want = xmalloc(room * sizeof *want);
    size_t wc = eng_topk(row, n, q->k, want);
    if (q->n_out != wc)
        fail_msg("n=%d k=%zu: n_out %zu, eng_topk %zu", n, q->k, q->n_out, wc);
    for (size_t j = 0; j < wc; j++)
        if (q->out[j].idx != want[j].idx ||
            memcmp(&q->out[j].score, &want[j].score, sizeof(float)) != 0)
            fail_msg("n=%d k=%zu pos %zu: got (%d, %a), eng_topk (%d, %a)", n, q->k, j,
                     q->out[j].idx, (double)q->out[j].score, want[j].idx, (double)want[j].score);
    free(row);
    free(all);
    free(want);
}

/* ---- fixtures --------------------------------------------------------------------------- */

/* A random sorted exclude list of about frac * n distinct items. */
static size_t random_excludes(eng_rng_t *r, int32_t n, double frac, int32_t *ex)
{
    size_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (eng_rng_uniform(r) < frac)
            ex[m++] = i;
    return m;
}

static float *random_matrix(eng_rng_t *r, size_t rows, int dim)
{
    float *m = xmalloc(rows * (size_t)dim * sizeof *m);
    for (size_t i = 0; i < rows * (size_t)dim; i++)
        m[i] = (float)eng_rng_normal(r);
    return m;
}

/* A batch of nq queries with their own k and exclude lists, all buffers sized exactly. */
typedef struct {
    int nq;
    eng_query_t *qs;
    int32_t **ex;
    void *scratch;
} batch_t;

static void batch_init(batch_t *b, const eng_index_t *ix, const float *qv, int nq, const size_t *ks,
                       eng_rng_t *r, double ex_frac)
{
    int32_t n = eng_index_items(ix);
    int dim = eng_index_dim(ix);
    b->nq = nq;
    b->qs = xmalloc((size_t)nq * sizeof *b->qs);
    b->ex = xmalloc((size_t)nq * sizeof *b->ex);
    for (int j = 0; j < nq; j++) {
        size_t room = (size_t)n < ks[j] ? (size_t)n : ks[j];
        b->ex[j] = xmalloc((size_t)n * sizeof *b->ex[j]);
        size_t ne = random_excludes(r, n, ex_frac, b->ex[j]);
        b->qs[j] = (eng_query_t){.q = qv + (size_t)j * dim,
                                 .k = ks[j],
                                 .exclude = ne ? b->ex[j] : NULL,
                                 .n_exclude = ne,
                                 .out = room ? xmalloc(room * sizeof(eng_scored_t)) : NULL,
                                 .n_out = 12345};
    }
    b->scratch = xmalloc(eng_index_scratch_bytes(ix, nq));
}

static void batch_free(batch_t *b)
{
    for (int j = 0; j < b->nq; j++) {
        free(b->ex[j]);
        free(b->qs[j].out);
    }
    free(b->ex);
    free(b->qs);
    free(b->scratch);
}

/* Runs a batch and checks every query in all three layers. */
static void run_and_check(const eng_index_t *ix, batch_t *b, const float *vecs)
{
    eng_index_topk(ix, b->qs, b->nq, b->scratch);
    for (int j = 0; j < b->nq; j++) {
        eng_query_t *q = &b->qs[j];
        check_against_double(ix, q, vecs);
        check_against_row(ix, q);
        /* eng_index_scores on the returned items gives the returned bits. */
        float *s = xmalloc(q->n_out * sizeof *s);
        int32_t *it = xmalloc(q->n_out * sizeof *it);
        for (size_t t = 0; t < q->n_out; t++)
            it[t] = q->out[t].idx;
        assert_int_equal(eng_index_scores(ix, q->q, it, q->n_out, s), 0);
        for (size_t t = 0; t < q->n_out; t++)
            assert_memory_equal(&s[t], &q->out[t].score, sizeof(float));
        free(s);
        free(it);
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

/* One random index of n x dim and one batch of up to 13 queries (every kernel shape), each with
 * its own k (0, small, n and beyond) and exclusions, all checked. */
static void check_shape(eng_rng_t *r, int32_t n, int dim, double ex_frac)
{
    float *items = random_matrix(r, (size_t)n, dim);
    eng_index_t *ix = eng_index_new(items, n, dim, 0);
    assert_non_null(ix);
    assert_int_equal(eng_index_items(ix), n);
    assert_int_equal(eng_index_dim(ix), dim);
    /* Smaller batches on the big shapes keep the double reference quick. */
    int nq = 1 + (int)eng_rng_below(r, n >= 1000 ? 8 : 13);
    float *qv = random_matrix(r, (size_t)nq, dim);
    size_t ks[13];
    for (int j = 0; j < nq; j++) {
        const size_t kc[] = {0, 1, 2, 5, 20, 63, (size_t)n, (size_t)n + 3};
        ks[j] = kc[eng_rng_below(r, 8)];
    }
    batch_t bt;
    batch_init(&bt, ix, qv, nq, ks, r, ex_frac);
    run_and_check(ix, &bt, items);
    batch_free(&bt);
    free(qv);
    free(items);
    eng_index_free(ix);
}

/* Item counts around the panel (16) and group (64) sizes and up to 5000, dims around the vector
 * width (8), 64 and 100; no, light and heavy exclusion. */
static void test_random_shapes(void **state)
{
    (void)state;
    static const int32_t ns[] = {1, 2, 15, 16, 17, 63, 64, 65, 100, 257, 1000, 5000};
    static const int dims[] = {1, 3, 8, 64, 100};
    static const double fracs[] = {0.0, 0.1, 0.5};
    eng_rng_t r;
    eng_rng_seed(&r, 2024, 0);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof dims / sizeof *dims; b++)
            for (size_t c = 0; c < sizeof fracs / sizeof *fracs; c++)
                check_shape(&r, ns[a], dims[b], fracs[c]);
}

/* Heavy exact ties: small-integer vectors, so every float score is exact, with duplicated
 * items. The list must then be exactly the double ranking with ties by lower index. */
static void test_exact_ties(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 5, 0);
    for (int rep = 0; rep < 20; rep++) {
        int32_t n = 1 + (int32_t)eng_rng_below(&r, 300);
        int dim = 1 + (int)eng_rng_below(&r, 20);
        float *items = xmalloc((size_t)n * dim * sizeof *items);
        for (int32_t i = 0; i < n; i++)
            for (int d = 0; d < dim; d++)
                items[(size_t)i * dim + d] = i > 0 && eng_rng_below(&r, 3) == 0
                                                 ? items[(size_t)(i - 1) * dim + d]
                                                 : (float)((int)eng_rng_below(&r, 5) - 2);
        eng_index_t *ix = eng_index_new(items, n, dim, 0);
        assert_non_null(ix);
        int nq = 1 + (int)eng_rng_below(&r, 9);
        float *qv = xmalloc((size_t)nq * dim * sizeof *qv);
        for (int t = 0; t < nq * dim; t++)
            qv[t] = (float)((int)eng_rng_below(&r, 3) - 1);
        size_t ks[9];
        for (int j = 0; j < nq; j++)
            ks[j] = 1 + eng_rng_below(&r, (uint32_t)n + 5);
        batch_t bt;
        batch_init(&bt, ix, qv, nq, ks, &r, 0.1);
        eng_index_topk(ix, bt.qs, nq, bt.scratch);
        for (int j = 0; j < nq; j++) {
            eng_query_t *q = &bt.qs[j];
            eng_scored_t *want = xmalloc((size_t)n * sizeof *want);
            size_t m = 0;
            for (int32_t i = 0; i < n; i++) {
                if (excluded(q->exclude, q->n_exclude, i))
                    continue;
                double s = 0.0;
                for (int d = 0; d < dim; d++)
                    s += (double)q->q[d] * items[(size_t)i * dim + d];
                want[m++] = (eng_scored_t){i, (float)s};
            }
            qsort(want, m, sizeof *want, cmp_best);
            assert_int_equal(q->n_out, m < q->k ? m : q->k);
            for (size_t t = 0; t < q->n_out; t++) {
                assert_int_equal(q->out[t].idx, want[t].idx);
                assert_true(q->out[t].score == want[t].score);
            }
            free(want);
        }
        batch_free(&bt);
        free(qv);
        free(items);
        eng_index_free(ix);
    }
}

/* A query's results are bit-identical alone, in batches of 7 and of 64 in various positions:
 * the server batches whatever requests arrive together. */
static void test_batch_independence(void **state)
{
    (void)state;
    static const int dims[] = {64, 3, 100};
    eng_rng_t r;
    eng_rng_seed(&r, 77, 0);
    for (size_t b = 0; b < sizeof dims / sizeof *dims; b++) {
        int dim = dims[b];
        int32_t n = 2000 + (int32_t)b * 333;
        float *items = random_matrix(&r, (size_t)n, dim);
        eng_index_t *ix = eng_index_new(items, n, dim, 0);
        assert_non_null(ix);
        enum { NQ = 64 };
        float *qv = random_matrix(&r, NQ, dim);
        size_t ks[NQ];
        for (int j = 0; j < NQ; j++)
            ks[j] = 1 + eng_rng_below(&r, 40);
        batch_t alone, all;
        batch_init(&alone, ix, qv, NQ, ks, &r, 0.05);
        batch_init(&all, ix, qv, NQ, ks, &r, 0.0);
        /* Same queries, same exclusions, in every arrangement. */
        for (int j = 0; j < NQ; j++) {
            all.qs[j].exclude = alone.qs[j].exclude;
            all.qs[j].n_exclude = alone.qs[j].n_exclude;
        }
        for (int j = 0; j < NQ; j++)
            eng_index_topk(ix, &alone.qs[j], 1, alone.scratch);

        /* All 64 at once, then in runs of 7 (the last run shorter), then all 64 reversed. */
        eng_index_topk(ix, all.qs, NQ, all.scratch);
        for (int pass = 0; pass < 3; pass++) {
            if (pass == 1)
                for (int j0 = 0; j0 < NQ; j0 += 7)
                    eng_index_topk(ix, all.qs + j0, NQ - j0 < 7 ? NQ - j0 : 7, all.scratch);
            if (pass == 2) {
                eng_query_t rev[NQ];
                for (int j = 0; j < NQ; j++)
                    rev[j] = all.qs[NQ - 1 - j];
                eng_index_topk(ix, rev, NQ, all.scratch);
                for (int j = 0; j < NQ; j++)
                    all.qs[NQ - 1 - j].n_out = rev[j].n_out;
            }
            for (int j = 0; j < NQ; j++) {
                assert_int_equal(all.qs[j].n_out, alone.qs[j].n_out);
                assert_memory_equal(all.qs[j].out, alone.qs[j].out,
                                    alone.qs[j].n_out * sizeof(eng_scored_t));
            }
        }
        check_against_double(ix, &alone.qs[0], items);
        batch_free(&alone);
        batch_free(&all);
        free(qv);
        free(items);
        eng_index_free(ix);
    }
}

/* normalize: stored vectors have unit length (zero vectors stay zero), scores of unit queries
 * are cosines, and "similar items" (an item's own vector, itself excluded) ranks by cosine. */
static void test_normalize(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 99, 0);
    int32_t n = 777;
    int dim = 24;
    float *items = random_matrix(&r, (size_t)n, dim);
    for (int32_t i = 0; i < n; i++) /* some long and short vectors, and zeros */
        for (int d = 0; d < dim; d++)
            items[(size_t)i * dim + d] *= i % 50 == 0 ? 0.0f : (float)(1 + i % 7) * 0.3f;
    eng_index_t *ix = eng_index_new(items, n, dim, 1);
    assert_non_null(ix);
    float *stored = xmalloc((size_t)n * dim * sizeof *stored);
    for (int32_t i = 0; i < n; i++) {
        float *v = stored + (size_t)i * dim;
        assert_int_equal(eng_index_vector(ix, i, v), 0);
        double ss = 0.0;
        for (int d = 0; d < dim; d++)
            ss += (double)v[d] * v[d];
        if (i % 50 == 0)
            assert_true(ss == 0.0);
        else
            assert_true(fabs(sqrt(ss) - 1.0) < 1e-6);
    }
    for (int32_t src = 1; src < n; src += 97) {
        float q[24];
        assert_int_equal(eng_index_vector(ix, src, q), 0);
        eng_scored_t out[30];
        eng_query_t qq = {q, 30, &src, 1, out, 0};
        void *scratch = xmalloc(eng_index_scratch_bytes(ix, 1));
        eng_index_topk(ix, &qq, 1, scratch);
        free(scratch);
        assert_int_equal(qq.n_out, 30);
        for (size_t t = 0; t < qq.n_out; t++) {
            assert_true(out[t].idx != src);
            assert_true(out[t].score <= 1.0f + 1e-6f && out[t].score >= -1.0f - 1e-6f);
        }
        check_against_double(ix, &qq, stored);
        check_against_row(ix, &qq);
        /* The item's own cosine is 1 up to rounding; a zero vector's is 0. */
        float self, zero;
        int32_t z = 50;
        assert_int_equal(eng_index_scores(ix, q, &src, 1, &self), 0);
        assert_int_equal(eng_index_scores(ix, q, &z, 1, &zero), 0);
        assert_true(fabsf(self - 1.0f) < 1e-5f);
        assert_true(zero == 0.0f);
    }
    /* A zero query: every score is 0, so the lowest indices win. */
    float q0[24] = {0};
    eng_scored_t out[5];
    eng_query_t qq = {q0, 5, NULL, 0, out, 0};
    void *scratch = xmalloc(eng_index_scratch_bytes(ix, 1));
    eng_index_topk(ix, &qq, 1, scratch);
    free(scratch);
    assert_int_equal(qq.n_out, 5);
    for (int t = 0; t < 5; t++) {
        assert_int_equal(out[t].idx, t);
        assert_true(out[t].score == 0.0f);
    }
    free(stored);
    free(items);
    eng_index_free(ix);
}

/* k = 0, k > n, everything excluded, nq = 0, an empty index, messy exclude lists. */
static void test_edges(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 3, 0);
    int32_t n = 37;
    int dim = 5;
    float *items = random_matrix(&r, (size_t)n, dim);
    float *qv = random_matrix(&r, 3, dim);
    eng_index_t *ix = eng_index_new(items, n, dim, 0);
    assert_non_null(ix);
    assert_string_equal(eng_index_kernel(ix), eng_isa_name(eng_isa())); /* the kind in force */
    void *scratch = xmalloc(eng_index_scratch_bytes(ix, 3));

    /* k = 0 beside k > n: the first returns nothing and touches no output. */
    eng_scored_t big[37];
    int32_t all[37];
    for (int32_t i = 0; i < n; i++)
        all[i] = i;
    int32_t some[] = {0, 5, 36};
    eng_query_t qs[3] = {
        {qv, 0, NULL, 0, NULL, 9},
        {qv + dim, 1000, some, 3, big, 9},
        {qv + 2 * dim, 4, all, 37, big, 9}, /* all excluded: out is never written */
    };
    eng_index_topk(ix, qs, 3, scratch);
    assert_int_equal(qs[0].n_out, 0);
    assert_int_equal(qs[1].n_out, 34);
    assert_int_equal(qs[2].n_out, 0);
    check_against_double(ix, &qs[1], items);
    check_against_row(ix, &qs[1]);

    /* nq = 0 does nothing. */
    eng_index_topk(ix, NULL, 0, scratch);

    /* Duplicates and out-of-range entries in a sorted exclude list are harmless. */
    int32_t messy[] = {-5, -1, 3, 3, 3, 10, 36, 36, 37, 1000};
    eng_scored_t out[40];
    eng_query_t q = {qv, 40, messy, sizeof messy / sizeof *messy, out, 0};
    eng_index_topk(ix, &q, 1, scratch);
    assert_int_equal(q.n_out, 34);
    check_against_row(ix, &q);

    /* Invalid items for scores and vectors: ENG_EINVAL, out untouched. */
    float s[2] = {7.0f, 7.0f}, v[5];
    int32_t bad[] = {1, 37};
    assert_int_equal(eng_index_scores(ix, qv, bad, 2, s), ENG_EINVAL);
    assert_true(s[0] == 7.0f);
    bad[1] = -1;
    assert_int_equal(eng_index_scores(ix, qv, bad, 2, s), ENG_EINVAL);
    assert_int_equal(eng_index_scores(ix, qv, bad, 0, s), 0);
    assert_int_equal(eng_index_vector(ix, 37, v), ENG_EINVAL);
    assert_int_equal(eng_index_vector(ix, -1, v), ENG_EINVAL);
    assert_int_equal(eng_index_vector(ix, 36, v), 0);
    assert_memory_equal(v, items + 36 * dim, sizeof v);
    eng_index_free(ix);
    free(scratch);

    /* Bad sizes. */
    assert_null(eng_index_new(items, -1, dim, 0));
    assert_null(eng_index_new(items, n, 0, 0));
    assert_null(eng_index_new(NULL, n, dim, 0));

    /* An empty index: every query finds nothing. */
    ix = eng_index_new(NULL, 0, dim, 1);
    assert_non_null(ix);
    scratch = xmalloc(eng_index_scratch_bytes(ix, 1));
    eng_query_t e = {qv, 5, NULL, 0, NULL, 9};
    eng_index_topk(ix, &e, 1, scratch);
    assert_int_equal(e.n_out, 0);
    free(scratch);
    eng_index_free(ix);
    eng_index_free(NULL);
    free(items);
    free(qv);
}

/* NaN and infinities behave as in eng_topk: NaN and -INFINITY scores are never returned,
 * +INFINITY ranks first; a NaN query finds nothing. */
static void test_nonfinite(void **state)
{
    (void)state;
    int dim = 4;
    int32_t n = 40;
    float *items = xmalloc((size_t)n * dim * sizeof *items);
    for (int32_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            items[(size_t)i * dim + d] = (float)((i * 7 + d * 3) % 11) - 5.0f;
    items[3 * dim] = NAN;        /* item 3: NaN score */
    items[20 * dim] = INFINITY;  /* item 20: +inf score for q[0] > 0 */
    items[33 * dim] = -INFINITY; /* item 33: -inf score */
    eng_index_t *ix = eng_index_new(items, n, dim, 0);
    assert_non_null(ix);
    void *scratch = xmalloc(eng_index_scratch_bytes(ix, 2));
    float q[2][4] = {{1, 0.5f, 0.25f, 2}, {NAN, 1, 1, 1}};
    eng_scored_t out0[40], out1[40];
    eng_query_t qs[2] = {{q[0], 40, NULL, 0, out0, 0}, {q[1], 40, NULL, 0, out1, 0}};
    eng_index_topk(ix, qs, 2, scratch);
    assert_int_equal(qs[0].n_out, 38);
    assert_int_equal(out0[0].idx, 20);
    assert_true(out0[0].score == INFINITY);
    for (size_t t = 0; t < qs[0].n_out; t++)
        assert_true(out0[t].idx != 3 && out0[t].idx != 33);
    check_against_row(ix, &qs[0]);
    assert_int_equal(qs[1].n_out, 0);
    free(scratch);
    free(items);
    eng_index_free(ix);
}

/* The AVX-512 and AVX2 kernels give the same bits (each lane is the same chain of fused
 * multiply-adds); on a CPU without AVX-512 both indexes run AVX2 and this holds trivially. */
static void test_kernels_agree(void **state)
{
    (void)state;
    const eng_isa_t saved = eng_isa();
    if (saved == ENG_ISA_BASELINE)
        return; /* baseline rounds differently */
    eng_rng_t r;
    eng_rng_seed(&r, 8, 0);
    int32_t n = 3001;
    int dim = 64;
    float *items = random_matrix(&r, (size_t)n, dim);
    eng_isa_force(ENG_ISA_AVX512);
    eng_index_t *best = eng_index_new(items, n, dim, 0);
    eng_isa_force(ENG_ISA_AVX2);
    eng_index_t *avx2 = eng_index_new(items, n, dim, 0);
    eng_isa_force(saved);
    assert_non_null(best);
    assert_non_null(avx2);
    enum { NQ = 13 };
    float *qv = random_matrix(&r, NQ, dim);
    size_t ks[NQ];
    for (int j = 0; j < NQ; j++)
        ks[j] = 50;
    batch_t a, b;
    batch_init(&a, best, qv, NQ, ks, &r, 0.1);
    batch_init(&b, avx2, qv, NQ, ks, &r, 0.1);
    eng_index_topk(best, a.qs, NQ, a.scratch);
    eng_index_topk(avx2, b.qs, NQ, b.scratch);
    for (int j = 0; j < NQ; j++) {
        /* Different exclusions, so compare each item's score where both lists have it. */
        for (size_t s = 0; s < a.qs[j].n_out; s++)
            for (size_t t = 0; t < b.qs[j].n_out; t++)
                if (a.qs[j].out[s].idx == b.qs[j].out[t].idx)
                    assert_memory_equal(&a.qs[j].out[s].score, &b.qs[j].out[t].score,
                                        sizeof(float));
        float sa[NQ], sb[NQ];
        int32_t it[NQ];
        for (int t = 0; t < NQ; t++)
            it[t] = (int32_t)eng_rng_below(&r, (uint32_t)n);
        assert_int_equal(eng_index_scores(best, a.qs[j].q, it, NQ, sa), 0);
        assert_int_equal(eng_index_scores(avx2, a.qs[j].q, it, NQ, sb), 0);
        assert_memory_equal(sa, sb, sizeof sa);
    }
    batch_free(&a);
    batch_free(&b);
    free(qv);
    free(items);
    eng_index_free(best);
    eng_index_free(avx2);
}

/* Every test runs once for each kind of kernel this CPU has (eng_isa_force picks it; an index
 * keeps the kind it was built with), so the AVX2 and baseline code is tested on an AVX-512 machine
 * too. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_shapes),
        cmocka_unit_test(test_exact_ties),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_kernels_agree),
    };
    int failed = 0;
    for (int k = ENG_ISA_COUNT - 1; k >= 0; k--)
        if (eng_isa_force((eng_isa_t)k) == (eng_isa_t)k)
            failed += cmocka_run_group_tests_name(eng_isa_name((eng_isa_t)k), tests, NULL, NULL);
    return failed;
}
