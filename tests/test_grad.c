/* Finite-difference checks of every hand-written backward pass (central differences).
 *
 * Each check perturbs inputs by +-eps, evaluates a scalar objective sum(w * out) in double where
 * the code allows, and compares with the analytic gradient. Pass criterion, stated once:
 * |analytic - numeric| <= TOL_ABS + TOL_REL * max(|analytic|, |numeric|). Float32 forward passes
 * limit the attainable accuracy to about 1e-3 relative at eps = 1e-2..1e-3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/csr.h"
#include "engine/rng.h"
#include "engine/simd.h"
#include "engine/vec.h"
#include "tests/testdata.h"
#include "trainer/aggregate.h"
#include "trainer/attention.h"
#include "trainer/graph.h"
#include "trainer/kge.h"
#include "trainer/gemm.h"
#include "trainer/layers.h"
#include "trainer/lightgcn.h"
#include "trainer/loss.h"
#include "trainer/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_REL 1e-2
#define TOL_ABS 2e-5

static int close_enough(double a, double n)
{
    return fabs(a - n) <= TOL_ABS + TOL_REL * fmax(fabs(a), fabs(n));
}

static double weighted_sum(const float *w, const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * x[i];
    return s;
}

static void check(const char *what, size_t i, double analytic, double numeric)
{
    if (!close_enough(analytic, numeric))
        fail_msg("%s: d/dx[%zu]: analytic %.7g vs numeric %.7g", what, i, analytic, numeric);
}

/* ---- losses ---- */

/* Each loss with nneg negatives per positive, checked against every input. */
static void check_loss(trn_loss_t kind, int nneg)
{
    enum { B = 6, MAXN = 4 };
    float pos[B], neg[B * MAXN], dpos[B] = {0}, dneg[B * MAXN] = {0}, target[B];
    test_fill_normal(pos, B, 1.5, 1);
    test_fill_normal(neg, (size_t)B * nneg, 1.5, 2);
    test_fill_normal(target, B, 2.0, 3);
    const float margin = 0.5f;
    if (kind == TRN_LOSS_MARGIN) /* keep every pair away from the hinge's kink */
        for (int k = 0; k < B; k++)
            for (int j = 0; j < nneg; j++)
                if (fabsf(margin - pos[k] + neg[k * nneg + j]) < 0.1f)
                    neg[k * nneg + j] += 0.3f;
    trn_loss_backward(kind, dpos, dneg, 1.0f, pos, neg, target, B, nneg, margin);
    const float eps = 1e-3f;
    for (int s = 0; s < 2; s++) {
        float *x = s ? neg : pos, *d = s ? dneg : dpos;
        for (int k = 0; k < (s ? B * nneg : B); k++) {
            float x0 = x[k];
            x[k] = x0 + eps;
            double fp = trn_loss_forward(kind, pos, neg, target, B, nneg, margin);
            x[k] = x0 - eps;
            double fm = trn_loss_forward(kind, pos, neg, target, B, nneg, margin);
            x[k] = x0;
            check(trn_loss_name(kind), (size_t)k, d[k], (fp - fm) / (2.0 * (double)eps));
        }
    }
}

static void test_loss_bpr(void **state)
{
    (void)state;
    check_loss(TRN_LOSS_BPR, 1);
    check_loss(TRN_LOSS_BPR, 4);
}
static void test_loss_bce(void **state)
{
    (void)state;
    check_loss(TRN_LOSS_BCE, 1);
    check_loss(TRN_LOSS_BCE, 3);
}
static void test_loss_margin(void **state)
{
    (void)state;
    check_loss(TRN_LOSS_MARGIN, 1);
    check_loss(TRN_LOSS_MARGIN, 4);
}
static void test_loss_mse(void **state)
{
    (void)state;
    check_loss(TRN_LOSS_MSE, 0); /* rating batches have no negatives */
    check_loss(TRN_LOSS_MSE, 2); /* and if a caller passes some, they are ignored */
}

static void test_loss_values(void **state)
{
    (void)state;
    float p[2] = {2.0f, -1.0f}, n[2] = {0.5f, 0.5f};
    /* softplus(-1.5) = 0.2014133, softplus(1.5) = 1.7014133 */
    assert_true(fabs(trn_loss_forward(TRN_LOSS_BPR, p, n, NULL, 2, 1, 0) -
                     (0.2014133 + 1.7014133) / 2) < 1e-6);
    /* hinge with margin 1: max(0, 1-2+0.5)=0, max(0, 1+1+0.5)=2.5 */
    assert_true(fabs(trn_loss_forward(TRN_LOSS_MARGIN, p, n, NULL, 2, 1, 1.0f) - 1.25) < 1e-6);
    /* one positive, two negatives: bpr is the mean of its pairs, bce sums the item terms */
    assert_true(fabs(trn_loss_forward(TRN_LOSS_BPR, p, n, NULL, 1, 2, 0) - 0.2014133) < 1e-6);
    /* softplus(-2) = 0.1269280, softplus(0.5) = 0.9740770 */
    assert_true(fabs(trn_loss_forward(TRN_LOSS_BCE, p, n, NULL, 1, 2, 0) -
                     (0.1269280 + 2 * 0.9740770)) < 1e-6);
    /* stable for large arguments */
    float big_p[1] = {-200.0f}, big_n[1] = {200.0f};
    assert_true(isfinite(trn_loss_forward(TRN_LOSS_BPR, big_p, big_n, NULL, 1, 1, 0)));
    /* mse, no 1/2: ((2 - 3)^2 + (-1 - 1)^2) / 2; negatives not read */
    float t[2] = {3.0f, 1.0f};
    assert_true(fabs(trn_loss_forward(TRN_LOSS_MSE, p, NULL, t, 2, 0, 0) - 2.5) < 1e-6);
}

/* ---- dot product and L2 layers ---- */

static void test_dot(void **state)
{
    (void)state;
    enum { ROWS = 5, DIM = 4, B = 7 };
    float emb[ROWS * DIM], demb[ROWS * DIM] = {0}, score[B], w[B];
    int32_t ra[B] = {0, 1, 2, 0, 4, 4, 3}, rb[B] = {3, 4, 1, 1, 2, 0, 3};
    test_fill_normal(emb, ROWS * DIM, 1.0, 3);
    test_fill_normal(w, B, 1.0, 4);
    trn_dot_backward(demb, w, emb, ra, rb, B, DIM);
    const float eps = 1e-2f;
    for (size_t i = 0; i < ROWS * DIM; i++) {
        float x0 = emb[i];
        emb[i] = x0 + eps;
        trn_dot_forward(score, emb, ra, rb, B, DIM);
        double fp = weighted_sum(w, score, B);
        emb[i] = x0 - eps;
        trn_dot_forward(score, emb, ra, rb, B, DIM);
        double fm = weighted_sum(w, score, B);
        emb[i] = x0;
        check("dot", i, demb[i], (fp - fm) / (2.0 * (double)eps));
    }
}

static void test_l2(void **state)
{
    (void)state;
    enum { ROWS = 4, DIM = 3, N = 5 };
    float emb[ROWS * DIM], demb[ROWS * DIM] = {0};
    int32_t rows[N] = {0, 2, 2, 3, 0};
    test_fill_normal(emb, ROWS * DIM, 1.0, 5);
    const float scale = 0.37f;
    trn_l2_backward(demb, scale, emb, rows, N, DIM);
    const float eps = 1e-2f;
    for (size_t i = 0; i < ROWS * DIM; i++) {
        float x0 = emb[i];
        emb[i] = x0 + eps;
        double fp = scale * trn_l2_forward(emb, rows, N, DIM);
        emb[i] = x0 - eps;
        double fm = scale * trn_l2_forward(emb, rows, N, DIM);
        emb[i] = x0;
        check("l2", i, demb[i], (fp - fm) / (2.0 * (double)eps));
    }
}

/* ---- graph propagation ---- */

static void test_norm_adj(void **state)
{
    (void)state;
    eng_csr_t *train = test_random_train(6, 5, 2, 11);
    for (int self = 0; self <= 1; self++) {
        eng_csr_t *a = trn_graph_norm_adj(train, self);
        assert_non_null(a);
        assert_int_equal(a->rows, 11);
        assert_int_equal(a->nnz, 2 * train->nnz + self * 11);
        /* symmetric, rows sorted, every entry 1/sqrt(deg_r deg_c) with the degrees of A (+ I),
         * which are the row lengths; the diagonal present exactly with self-loops */
        for (int32_t r = 0; r < a->rows; r++) {
            assert_int_equal(eng_csr_has(a, r, r), self);
            for (int64_t k = a->ptr[r]; k < a->ptr[r + 1]; k++) {
                int32_t c = a->idx[k];
                assert_true(k == a->ptr[r] || c > a->idx[k - 1]);
                assert_true(eng_csr_has(a, c, r));
                double dr = (double)(a->ptr[r + 1] - a->ptr[r]),
                       dc = (double)(a->ptr[c + 1] - a->ptr[c]);
                assert_true(fabs(a->val[k] - 1.0 / sqrt(dr * dc)) < 1e-6);
            }
        }
        eng_csr_free(a);
    }
    eng_csr_free(train);
}

/* The rounding error bound of a float sum of n products, in any order, fused or not:
 * |fl(sum) - sum| <= gamma_n * sum |product|, gamma_n = n u / (1 - n u), u = 2^-24. */
static double sum_bound(int64_t n, double scale)
{
    double nu = (double)n * 0x1p-24;
    return nu / (1.0 - nu) * scale + 1e-37;
}

/* Checks y = a * x (rows of width dim), computed in float, against the double product: every
 * entry within the bound of its row's sum. When only is not NULL, only the n_only listed rows of
 * x count (x is zero elsewhere), as for eng_csr_scatter_rows. */
static void check_product(const float *y, const eng_csr_t *a, const float *x, int dim,
                          const int32_t *only, int n_only)
{
    for (int32_t r = 0; r < a->rows; r++)
        for (int j = 0; j < dim; j++) {
            double s = 0, scale = 0;
            int64_t terms = 0;
            for (int64_t k = a->ptr[r]; k < a->ptr[r + 1]; k++) {
                int listed = !only;
                for (int q = 0; q < n_only; q++)
                    listed |= only[q] == a->idx[k];
                if (!listed)
                    continue;
                double p = (double)a->val[k] * x[(size_t)a->idx[k] * dim + j];
                s += p;
                scale += fabs(p);
                terms++;
            }
            double got = y[(size_t)r * dim + j];
            if (fabs(got - s) > sum_bound(terms, scale))
                fail_msg("row %d col %d of %d: %.9g, exact %.9g", r, j, dim, got, s);
        }
}

/* eng_csr_spmm, _acc, _rows and scatter_rows under every kernel kind the CPU runs
 * (engine/simd.h): each against the double-precision product, each bit-identical for 1 and 3
 * threads, and the kinds bit-identical to one another except baseline, which rounds each
 * multiply and add separately (within the same bound). */
static void test_spmm_kinds(void **state)
{
    (void)state;
    eng_csr_t *train = test_random_train(300, 200, 7, 12);
    eng_csr_t *a = trn_graph_norm_adj(train, 0);
    const eng_isa_t saved = eng_isa();
    const int dims[] = {24, 64, 70}; /* 64 has its own register-blocked kernel */
    int32_t rows[] = {5, 0, 499, 250, 17};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int dim = dims[di];
        const size_t n = (size_t)a->rows * dim, bytes = n * sizeof(float);
        float *x = malloc(bytes), *xs = calloc(n, sizeof *xs);
        float *y[ENG_ISA_COUNT] = {0}, *s[ENG_ISA_COUNT] = {0};
        float *y3 = malloc(bytes), *acc = malloc(bytes), *s3 = malloc(bytes), *sacc = malloc(bytes);
        test_fill_normal(x, n, 1.0, 13);
        for (int q = 0; q < 5; q++) /* x restricted to the listed rows */
            memcpy(xs + (size_t)rows[q] * dim, x + (size_t)rows[q] * dim, dim * sizeof *xs);
        for (int k = 0; k < ENG_ISA_COUNT; k++) {
            if (eng_isa_force((eng_isa_t)k) != (eng_isa_t)k)
                continue; /* the CPU lacks it */
            y[k] = malloc(bytes);
            s[k] = calloc(n, sizeof *s[k]);
            eng_csr_spmm(y[k], a, x, dim, 1);
            check_product(y[k], a, x, dim, NULL, 0);
            /* acc += 0.5 out: exact scaling, so the very bits of out / 2 */
            memset(acc, 0, bytes);
            eng_csr_spmm_acc(y3, acc, 0.5f, a, x, dim, 3);
            assert_memory_equal(y3, y[k], bytes);
            for (size_t i = 0; i < n; i++)
                assert_true(acc[i] == 0.5f * y[k][i]);
            /* listed rows only: the same bits on those rows, the others untouched */
            memset(y3, 0, bytes);
            eng_csr_spmm_rows(y3, a, x, dim, rows, 5, 2);
            for (int q = 0; q < 5; q++)
                assert_memory_equal(y3 + (size_t)rows[q] * dim, y[k] + (size_t)rows[q] * dim,
                                    dim * sizeof *y3);
            assert_true(y3[(size_t)1 * dim] == 0.0f);
            /* packed: row q of the output is listed row rows[q], the same bits */
            eng_csr_spmm_packed(y3, a, x, dim, rows, 5, 2);
            for (int q = 0; q < 5; q++)
                assert_memory_equal(y3 + (size_t)q * dim, y[k] + (size_t)rows[q] * dim,
                                    dim * sizeof *y3);
            /* scatter from the listed rows = the product of x restricted to them (a is
             * symmetric), the same bits for 1 and 3 threads */
            float *s1 = s[k];
            memset(s3, 0, bytes);
            memset(sacc, 0, bytes);
            eng_csr_scatter_rows(s1, NULL, 0.0f, a, xs, dim, rows, 5, 1);
            eng_csr_scatter_rows(s3, sacc, 0.5f, a, xs, dim, rows, 5, 3);
            check_product(s1, a, xs, dim, rows, 5);
            assert_memory_equal(s1, s3, bytes);
            /* the packed input gives the same sums */
            for (int q = 0; q < 5; q++)
                memcpy(y3 + (size_t)q * dim, xs + (size_t)rows[q] * dim, dim * sizeof *y3);
            memset(s3, 0, bytes);
            eng_csr_scatter_packed(s3, a, y3, dim, rows, 5, 3);
            assert_memory_equal(s1, s3, bytes);
            /* and it is the transpose's product when m is not symmetric: values made
             * asymmetric, against the double-precision m^T x */
            float *saved_val = a->val, *asym = malloc((size_t)a->nnz * sizeof *asym);
            for (int64_t e = 0; e < a->nnz; e++)
                asym[e] = saved_val[e] * (1.0f + 0.25f * (float)(e % 3));
            a->val = asym;
            memset(s3, 0, bytes);
            eng_csr_scatter_packed(s3, a, y3, dim, rows, 5, 2);
            for (int32_t c = 0; c < a->rows; c++)
                for (int j = 0; j < dim; j++) {
                    double ref = 0, scale = 0;
                    for (int q = 0; q < 5; q++)
                        for (int64_t e = a->ptr[rows[q]]; e < a->ptr[rows[q] + 1]; e++)
                            if (a->idx[e] == c) {
                                double p = (double)asym[e] * y3[(size_t)q * dim + j];
                                ref += p;
                                scale += fabs(p);
                            }
                    assert_true(fabs(s3[(size_t)c * dim + j] - ref) <= sum_bound(5, scale));
                }
            a->val = saved_val;
            free(asym);
            for (size_t i = 0; i < n; i++)
                assert_true(sacc[i] == 0.5f * s1[i]);
        }
        for (int k = ENG_ISA_AVX2 + 1; k < ENG_ISA_COUNT; k++)
            if (y[k]) {
                assert_memory_equal(y[k], y[ENG_ISA_AVX2], bytes);
                assert_memory_equal(s[k], s[ENG_ISA_AVX2], bytes);
            }
        for (int k = 0; k < ENG_ISA_COUNT; k++) {
            free(y[k]);
            free(s[k]);
        }
        free(x);
        free(xs);
        free(y3);
        free(acc);
        free(s3);
        free(sacc);
    }
    eng_isa_force(saved);
    eng_csr_free(a);
    eng_csr_free(train);
}

static void test_propagate(void **state)
{
    (void)state;
    eng_csr_t *train = test_random_train(7, 6, 2, 21);
    eng_csr_t *a = trn_graph_norm_adj(train, 0);
    const int dim = 3, L = 3;
    size_t n = (size_t)a->rows * dim;
    float *e0 = malloc(n * sizeof *e0), *out = malloc(n * sizeof *out), *w = malloc(n * sizeof *w);
    float *layers = malloc(L * n * sizeof *layers), *scratch = malloc(2 * n * sizeof *scratch);
    float *de0 = calloc(n, sizeof *de0);
    test_fill_normal(e0, n, 1.0, 22);
    test_fill_normal(w, n, 1.0, 23);
    trn_lgn_propagate_backward(de0, scratch, w, a, dim, L, 2);
    const float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float x0 = e0[i];
        e0[i] = x0 + eps;
        trn_lgn_propagate_forward(out, layers, a, e0, dim, L, 2);
        double fp = weighted_sum(w, out, n);
        e0[i] = x0 - eps;
        trn_lgn_propagate_forward(out, layers, a, e0, dim, L, 2);
        double fm = weighted_sum(w, out, n);
        e0[i] = x0;
        check("propagate", i, de0[i], (fp - fm) / (2.0 * (double)eps));
    }
    free(e0);
    free(out);
    free(w);
    free(layers);
    free(scratch);
    free(de0);
    eng_csr_free(a);
    eng_csr_free(train);
}

/* The model's batch gradient (last layer restricted to the batch's rows, first backward product
 * scattered) equals the plain full-graph forward and backward, for 0 to 3 layers and 1 or 3
 * negatives. The whole-objective finite-difference check of every model is in test_models.c. */
static void test_lightgcn_fast_path(void **state)
{
    (void)state;
    eng_csr_t *train = test_random_train(120, 90, 4, 41);
    const trn_model_ops_t *ops = trn_model_find("lightgcn");
    assert_non_null(ops);
    for (int L = 0; L <= 3; L++) {
        const int dim = L == 3 ? 64 : 8, nneg = L == 2 ? 3 : 1;
        char cfg[256];
        assert_true(ops->config_size <= sizeof cfg);
        trn_hp_defaults(ops->hparams, ops->n_hparams, cfg);
        char text[3][16];
        snprintf(text[0], sizeof text[0], "%d", dim);
        snprintf(text[1], sizeof text[1], "%d", L);
        snprintf(text[2], sizeof text[2], "%d", nneg);
        const char *names[] = {"dim", "layers", "negatives", "batch"};
        const char *values[] = {text[0], text[1], text[2], "64"};
        for (int i = 0; i < 4; i++)
            assert_int_equal(trn_hp_parse(trn_hp_find(ops->hparams, ops->n_hparams, names[i]), cfg,
                                          values[i], NULL),
                             0);
        const trn_common_hp_t *hp = (const trn_common_hp_t *)cfg;
        trn_inputs_t in = {.train = train};
        eng_error_t err = {0};
        trn_model_t *m = trn_model_new(ops, cfg, &in, 2020, 2, &err);
        assert_non_null(m);
        test_fill_normal(m->params, m->n_params, 0.5, 42 + L);
        trn_sampler_t *s = trn_sampler_new(train, 43);
        trn_batch_t b;
        assert_int_equal(trn_batch_alloc(&b, hp->batch, nneg), 0);
        trn_sampler_next(s, &b, hp->batch);
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
        double reg;
        double loss = m->ops->batch_grad(m, &b, &reg);

        /* reference: full propagation forward and backward */
        eng_csr_t *adj = trn_graph_norm_adj(train, 0);
        size_t nd = m->n_params;
        int n = b.n, nn = n * nneg;
        float *fin = malloc(nd * sizeof *fin), *lay = malloc((L + 1) * nd * sizeof *lay);
        float *scr = malloc(2 * nd * sizeof *scr), *dfin = calloc(nd, sizeof *dfin);
        float *ref = calloc(nd, sizeof *ref);
        float *pos = malloc(n * sizeof *pos), *neg = malloc(nn * sizeof *neg);
        float *dpos = calloc(n, sizeof *dpos), *dneg = calloc(nn, sizeof *dneg);
        int32_t *ru = malloc(n * sizeof *ru), *rp = malloc(n * sizeof *rp),
                *rn = malloc(nn * sizeof *rn), *rnu = malloc(nn * sizeof *rnu);
        for (int k = 0; k < n; k++) {
            ru[k] = b.users[k];
            rp[k] = m->n_users + b.pos[k];
            for (int j = 0; j < nneg; j++) {
                rnu[k * nneg + j] = b.users[k];
                rn[k * nneg + j] = m->n_users + b.neg[k * nneg + j];
            }
        }
        trn_lgn_propagate_forward(fin, lay, adj, m->params, dim, L, 1);
        trn_dot_forward(pos, fin, ru, rp, n, dim);
        trn_dot_forward(neg, fin, rnu, rn, nn, dim);
        double ref_loss = trn_loss_forward(TRN_LOSS_BPR, pos, neg, NULL, n, nneg, 0);
        trn_loss_backward(TRN_LOSS_BPR, dpos, dneg, 1.0f, pos, neg, NULL, n, nneg, 0);
        trn_dot_backward(dfin, dpos, fin, ru, rp, n, dim);
        trn_dot_backward(dfin, dneg, fin, rnu, rn, nn, dim);
        trn_lgn_propagate_backward(ref, scr, dfin, adj, dim, L, 1);
        float dl2 = hp->decay * 0.5f / n;
        trn_l2_backward(ref, dl2, m->params, ru, n, dim);
        trn_l2_backward(ref, dl2, m->params, rp, n, dim);
        trn_l2_backward(ref, dl2, m->params, rn, nn, dim);
        assert_true(fabs(loss - ref_loss) < 1e-6);
        for (size_t i = 0; i < nd; i++)
            if (fabsf(ref[i] - m->grads[i]) > 1e-6f + 1e-4f * fabsf(ref[i]))
                fail_msg("layers %d: grad[%zu] %.8g vs reference %.8g", L, i, m->grads[i], ref[i]);
        free(fin), free(lay), free(scr), free(dfin), free(ref), free(pos), free(neg);
        free(dpos), free(dneg), free(ru), free(rp), free(rn), free(rnu);
        eng_csr_free(adj);
        trn_batch_free(&b);
        trn_sampler_free(s);
        trn_model_free(m);
    }
    eng_csr_free(train);
}

/* ---- dense layers (trainer/layers.h) ---- */

/* Central differences of sum(w * out) in every x[i], out recomputed by f(ctx), against g[i]. */
static void check_fd(const char *what, float *x, const float *g, size_t n, float eps,
                     void (*f)(void *), void *ctx, const float *w, const float *out, size_t n_out)
{
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + eps;
        f(ctx);
        double fp = weighted_sum(w, out, n_out);
        x[i] = x0 - eps;
        f(ctx);
        double fm = weighted_sum(w, out, n_out);
        x[i] = x0;
        check(what, i, g[i], (fp - fm) / (2.0 * (double)eps));
    }
}

/* A dense layer's data, of any shape (test_dense runs several). */
typedef struct {
    int n, din, dout, threads;
    float *in, *w, *b, *out;
} dense_t;

static void dense_f(void *ctx)
{
    dense_t *d = ctx;
    trn_dense_forward(d->out, d->in, d->w, d->b, d->n, d->din, d->dout, d->threads);
}

static float *filled(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    test_fill_normal(x, n, 1.0, seed);
    return x;
}

/* The layer of n rows, din to dout: forward and backward (which adds into what it is given)
 * against plain double loops, the same bits for 1 and 3 threads, and (with fd set) central
 * differences. Shapes whose widths are
 * multiples of 16 run trainer/gemm.c's kernels on an AVX-512 CPU, the others sgemm. */
static void check_dense(int n, int din, int dout, int fd)
{
    dense_t d = {n,
                 din,
                 dout,
                 1,
                 filled((size_t)n * din, 51),
                 filled((size_t)din * dout, 52),
                 filled(dout, 53),
                 calloc((size_t)n * dout, sizeof(float))};
    float *w = filled((size_t)n * dout, 54), *gin = filled((size_t)n * din, 55),
          *gin0 = malloc((size_t)n * din * sizeof *gin0), *one = malloc((size_t)n * dout * 4),
          *gw = filled((size_t)din * dout, 56), *gw0 = malloc((size_t)din * dout * 4),
          *gb = calloc(dout, sizeof *gb);
    assert_true(d.out && gin0 && one && gw0 && gb);
    /* backward accumulates: start from non-zero gradients and subtract them afterwards */
    memcpy(gin0, gin, (size_t)n * din * 4);
    memcpy(gw0, gw, (size_t)din * dout * 4);
    trn_dense_backward(gin, gw, gb, w, d.in, d.w, n, din, dout, 2);
    for (size_t i = 0; i < (size_t)n * din; i++)
        gin[i] -= gin0[i];
    for (size_t i = 0; i < (size_t)din * dout; i++)
        gw[i] -= gw0[i];
    /* the same bits for 1 and 3 threads, forward and backward */
    dense_f(&d);
    memcpy(one, d.out, (size_t)n * dout * 4);
    d.threads = 3;
    dense_f(&d);
    assert_memory_equal(one, d.out, (size_t)n * dout * 4);
    float *g2 = calloc((size_t)n * din, 4), *g3 = calloc((size_t)n * din, 4),
          *w2 = calloc((size_t)din * dout, 4), *w3 = calloc((size_t)din * dout, 4);
    assert_true(g2 && g3 && w2 && w3);
    trn_dense_backward(g2, w2, NULL, w, d.in, d.w, n, din, dout, 1);
    trn_dense_backward(g3, w3, NULL, w, d.in, d.w, n, din, dout, 3);
    assert_memory_equal(g2, g3, (size_t)n * din * 4);
    assert_memory_equal(w2, w3, (size_t)din * dout * 4);
    free(g2), free(g3), free(w2), free(w3);
    /* against plain loops in double */
    for (int r = 0; r < n; r++)
        for (int j = 0; j < dout; j++) {
            double s = d.b[j];
            for (int k = 0; k < din; k++)
                s += (double)d.in[r * din + k] * d.w[k * dout + j];
            assert_true(fabs(d.out[r * dout + j] - s) < 1e-5 * (1 + fabs(s)) * din);
        }
    for (int r = 0; r < n; r++)
        for (int k = 0; k < din; k++) {
            double s = 0;
            for (int j = 0; j < dout; j++)
                s += (double)w[r * dout + j] * d.w[k * dout + j];
            assert_true(fabs(gin[r * din + k] - s) < 1e-5 * (1 + fabs(s)) * dout);
        }
    for (int k = 0; k < din; k++)
        for (int j = 0; j < dout; j++) {
            double s = 0;
            for (int r = 0; r < n; r++)
                s += (double)d.in[r * din + k] * w[r * dout + j];
            assert_true(fabs(gw[k * dout + j] - s) < 1e-5 * (1 + fabs(s)) * n);
        }
    if (fd) {
        d.threads = 2;
        const float eps = 1e-2f;
        const size_t no = (size_t)n * dout;
        check_fd("dense d/dw", d.w, gw, (size_t)din * dout, eps, dense_f, &d, w, d.out, no);
        check_fd("dense d/db", d.b, gb, dout, eps, dense_f, &d, w, d.out, no);
        check_fd("dense d/din", d.in, gin, (size_t)n * din, eps, dense_f, &d, w, d.out, no);
    }
    /* without a bias: the same product, no bias term */
    trn_dense_forward(one, d.in, d.w, NULL, n, din, dout, 2);
    dense_f(&d);
    for (size_t i = 0; i < (size_t)n * dout; i++)
        assert_true(fabsf(d.out[i] - d.b[i % dout] - one[i]) < 1e-5f * (1 + fabsf(one[i])));
    void *bufs[] = {d.in, d.w, d.b, d.out, w, gin, gin0, one, gw, gw0, gb};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
}

static void test_dense(void **state)
{
    (void)state;
    check_dense(300, 5, 3, 1);   /* sgemm everywhere */
    check_dense(70, 16, 32, 1);  /* the AVX-512 kernels, where the CPU has them */
    check_dense(533, 32, 80, 0); /* two row blocks, panels of 64 and 16 columns, a tile's tail
                                  * of rows; dw in halves of 40 columns: by sgemm */
    check_dense(13, 96, 64, 0);  /* fewer rows than a tile */
    if (!trn_gemm_fits(16))
        print_message("[ NOTE     ] no AVX-512: the dense layers ran sgemm only\n");
}

enum { EN = 40 };

typedef struct {
    float a[EN], b[EN], out[EN], slope, p;
    uint8_t mask[EN];
} elem_t;

static void lrelu_f(void *ctx)
{
    elem_t *e = ctx;
    trn_lrelu_forward(e->out, e->a, e->slope, EN);
}

static void test_lrelu(void **state)
{
    (void)state;
    const float slopes[] = {0.0f, 0.2f}; /* ReLU and NGCF's LeakyReLU */
    for (int s = 0; s < 2; s++) {
        elem_t e = {.slope = slopes[s]};
        float w[EN], g[EN] = {0};
        test_fill_normal(e.a, EN, 1.0, 61);
        test_fill_normal(w, EN, 1.0, 62);
        for (int i = 0; i < EN; i++) /* away from the kink */
            if (fabsf(e.a[i]) < 0.05f)
                e.a[i] += 0.1f;
        trn_lrelu_backward(g, w, e.a, e.slope, EN);
        check_fd("lrelu", e.a, g, EN, 1e-2f, lrelu_f, &e, w, e.out, EN);
    }
}

/* The mask is drawn again on every evaluation from the same seed: the rule a model follows so
 * that repeated gradient evaluations of one batch see one mask (docs/models.md). */
static void dropout_f(void *ctx)
{
    elem_t *e = ctx;
    eng_rng_t rng;
    eng_rng_seed(&rng, 71, 3);
    trn_dropout_forward(e->out, e->mask, e->a, e->p, EN, &rng, 2);
}

static void test_dropout(void **state)
{
    (void)state;
    elem_t e = {.p = 0.3f};
    float w[EN], g[EN] = {0};
    test_fill_normal(e.a, EN, 1.0, 72);
    test_fill_normal(w, EN, 1.0, 73);
    dropout_f(&e);
    int kept = 0;
    for (int i = 0; i < EN; i++) {
        kept += e.mask[i];
        assert_true(e.out[i] == (e.mask[i] ? e.a[i] * (1.0f / (1.0f - 0.3f)) : 0.0f));
    }
    assert_true(kept > 0 && kept < EN); /* some dropped, some kept */
    trn_dropout_backward(g, w, e.mask, e.p, EN);
    check_fd("dropout", e.a, g, EN, 1e-2f, dropout_f, &e, w, e.out, EN);
    /* p 0: the identity, mask all ones */
    e.p = 0.0f;
    dropout_f(&e);
    assert_memory_equal(e.out, e.a, sizeof e.a);
    /* many blocks: the same mask for 1 and 3 threads, and about 1 - p of it kept */
    const size_t n = 100003;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *m1 = malloc(n), *m3 = malloc(n);
    test_fill_normal(x, n, 1.0, 74);
    eng_rng_t r1, r3;
    eng_rng_seed(&r1, 75, 0);
    eng_rng_seed(&r3, 75, 0);
    trn_dropout_forward(y, m1, x, 0.25f, n, &r1, 1);
    trn_dropout_forward(y, m3, x, 0.25f, n, &r3, 3);
    assert_memory_equal(m1, m3, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += m3[i];
    assert_true(fabs((double)k / (double)n - 0.75) < 0.01);
    free(x), free(y), free(m1), free(m3);
}

static void mul_f(void *ctx)
{
    elem_t *e = ctx;
    trn_mul_forward(e->out, e->a, e->b, EN);
}

static void test_mul(void **state)
{
    (void)state;
    elem_t e = {0};
    float w[EN], ga[EN] = {0}, gb[EN] = {0};
    test_fill_normal(e.a, EN, 1.0, 81);
    test_fill_normal(e.b, EN, 1.0, 82);
    test_fill_normal(w, EN, 1.0, 83);
    trn_mul_backward(ga, gb, w, e.a, e.b, EN);
    check_fd("mul d/da", e.a, ga, EN, 1e-2f, mul_f, &e, w, e.out, EN);
    check_fd("mul d/db", e.b, gb, EN, 1e-2f, mul_f, &e, w, e.out, EN);
}

static void elu_f(void *ctx)
{
    elem_t *e = ctx;
    trn_elu_forward(e->out, e->a, EN, 2);
}

static void tanh_f(void *ctx)
{
    elem_t *e = ctx;
    trn_tanh_forward(e->out, e->a, EN);
}

static void test_tanh(void **state)
{
    (void)state;
    elem_t e = {0};
    float w[EN], g[EN] = {0};
    test_fill_normal(e.a, EN, 1.5, 67);
    test_fill_normal(w, EN, 1.0, 68);
    tanh_f(&e);
    trn_tanh_backward(g, w, e.out, EN);
    check_fd("tanh", e.a, g, EN, 1e-2f, tanh_f, &e, w, e.out, EN);
}

static void test_elu(void **state)
{
    (void)state;
    elem_t e = {0};
    float w[EN], g[EN] = {0};
    test_fill_normal(e.a, EN, 1.0, 65);
    test_fill_normal(w, EN, 1.0, 66);
    trn_elu_backward(g, w, e.a, EN, 2);
    check_fd("elu", e.a, g, EN, 1e-2f, elu_f, &e, w, e.out, EN);
}

/* ---- knowledge-graph embedding layers ---- */

enum { KN = 7, KD = 5, KR = 3, KDR = 4, KE = 6 };

typedef struct {
    float h[KN * KD], rel[KR * KD], t[KN * KD], dist[KN];
    float x[KN * KD], proj[KR * KD * KDR], out[KN * KDR];
    float src[KE * KD], gathered[KN * KD];
    int32_t r[KN], idx[KN];
    trn_dist_t kind;
} kge_t;

static void trans_f(void *ctx)
{
    kge_t *k = ctx;
    trn_trans_forward(k->dist, k->h, k->rel, k->t, k->r, KN, KD, k->kind);
}

static void project_f(void *ctx)
{
    kge_t *k = ctx;
    trn_project_forward(k->out, k->x, k->proj, k->r, KN, KD, KDR, 2);
}

static void gather_f(void *ctx)
{
    kge_t *k = ctx;
    trn_gather_forward(k->gathered, k->src, k->idx, KN, KD);
}

/* TransE's L1 and L2 distances and TransR's squared one, the relation projection and the row
 * gather, each against every input; relations and rows repeat within the batch. */
static void test_kge(void **state)
{
    (void)state;
    static kge_t k;
    const int32_t r[KN] = {0, 2, 1, 2, 0, 0, 1}, idx[KN] = {3, 0, 3, 5, 1, 3, 2};
    memcpy(k.r, r, sizeof r);
    memcpy(k.idx, idx, sizeof idx);
    test_fill_normal(k.h, KN * KD, 1.0, 91);
    test_fill_normal(k.rel, KR * KD, 1.0, 92);
    test_fill_normal(k.t, KN * KD, 1.0, 93);
    for (int i = 0; i < KN; i++) /* keep L1's kinks (x = 0) away from the steps */
        for (int j = 0; j < KD; j++) {
            float *t = &k.t[i * KD + j];
            const float x = k.h[i * KD + j] + k.rel[r[i] * KD + j] - *t;
            if (fabsf(x) < 0.05f)
                *t += 0.2f;
        }
    float w[KN * KDR];
    test_fill_normal(w, KN * KDR, 1.0, 94);
    const trn_dist_t kinds[3] = {TRN_DIST_L1, TRN_DIST_L2, TRN_DIST_L2SQ};
    const char *names[3] = {"trans l1", "trans l2", "trans l2sq"};
    for (int c = 0; c < 3; c++) {
        k.kind = kinds[c];
        float gh[KN * KD] = {0}, grel[KR * KD] = {0}, gt[KN * KD] = {0};
        trans_f(&k);
        trn_trans_backward(gh, grel, gt, w, k.dist, k.h, k.rel, k.t, k.r, KN, KD, k.kind);
        check_fd(names[c], k.h, gh, KN * KD, 1e-3f, trans_f, &k, w, k.dist, KN);
        check_fd(names[c], k.rel, grel, KR * KD, 1e-3f, trans_f, &k, w, k.dist, KN);
        check_fd(names[c], k.t, gt, KN * KD, 1e-3f, trans_f, &k, w, k.dist, KN);
    }
    test_fill_normal(k.x, KN * KD, 1.0, 95);
    test_fill_normal(k.proj, KR * KD * KDR, 1.0, 96);
    float gx[KN * KD] = {0}, gp[KR * KD * KDR] = {0};
    trn_project_backward(gx, gp, w, k.x, k.proj, k.r, KN, KD, KDR, 2);
    check_fd("project d/dx", k.x, gx, KN * KD, 1e-2f, project_f, &k, w, k.out, KN * KDR);
    check_fd("project d/dproj", k.proj, gp, KR * KD * KDR, 1e-2f, project_f, &k, w, k.out,
             KN * KDR);
    test_fill_normal(k.src, KE * KD, 1.0, 97);
    float gs[KE * KD] = {0}, wg[KN * KD];
    test_fill_normal(wg, KN * KD, 1.0, 101);
    trn_gather_backward(gs, wg, k.idx, KN, KD);
    check_fd("gather", k.src, gs, KE * KD, 1e-2f, gather_f, &k, wg, k.gathered, KN * KD);
}

/* The projection again with a run long enough for its sgemm path beside short ones. */
enum { PN = 24 };

typedef struct {
    float x[PN * KD], proj[KR * KD * KDR], out[PN * KDR];
    int32_t r[PN];
} proj_t;

static void proj_f(void *ctx)
{
    proj_t *p = ctx;
    trn_project_forward(p->out, p->x, p->proj, p->r, PN, KD, KDR, 2);
}

static void test_project_runs(void **state)
{
    (void)state;
    static proj_t p;
    for (int k = 0; k < PN; k++)
        p.r[k] = k < 3 ? 0 : k < 3 + 19 ? 1 : 2; /* runs of 3, 19 and 2 */
    test_fill_normal(p.x, PN * KD, 1.0, 98);
    test_fill_normal(p.proj, KR * KD * KDR, 1.0, 99);
    float w[PN * KDR], gx[PN * KD] = {0}, gp[KR * KD * KDR] = {0};
    test_fill_normal(w, PN * KDR, 1.0, 100);
    trn_project_backward(gx, gp, w, p.x, p.proj, p.r, PN, KD, KDR, 2);
    check_fd("project runs d/dx", p.x, gx, PN * KD, 1e-2f, proj_f, &p, w, p.out, PN * KDR);
    check_fd("project runs d/dproj", p.proj, gp, KR * KD * KDR, 1e-2f, proj_f, &p, w, p.out,
             PN * KDR);
    /* the same bits on 1 and 3 threads; and a relation in two runs (unsorted) is the same sum */
    float out1[PN * KDR], gx1[PN * KD] = {0}, gp1[KR * KD * KDR] = {0};
    trn_project_forward(out1, p.x, p.proj, p.r, PN, KD, KDR, 1);
    trn_project_forward(p.out, p.x, p.proj, p.r, PN, KD, KDR, 3);
    assert_memory_equal(out1, p.out, sizeof out1);
    trn_project_backward(gx1, gp1, w, p.x, p.proj, p.r, PN, KD, KDR, 1);
    memset(gx, 0, sizeof gx);
    memset(gp, 0, sizeof gp);
    trn_project_backward(gx, gp, w, p.x, p.proj, p.r, PN, KD, KDR, 3);
    assert_memory_equal(gx1, gx, sizeof gx);
    assert_memory_equal(gp1, gp, sizeof gp);
    p.r[PN - 1] = 0; /* relation 0 again after 1 and 2: its dproj from two runs */
    float gpu[KR * KD * KDR] = {0};
    memset(gp1, 0, sizeof gp1);
    trn_project_backward(NULL, gp1, w, p.x, p.proj, p.r, PN, KD, KDR, 1);
    trn_project_backward(NULL, gpu, w, p.x, p.proj, p.r, PN, KD, KDR, 3);
    assert_memory_equal(gp1, gpu, sizeof gpu);
}

/* eng_exp within 2 ulp of e^x (relative 2^-22) over its range, exact at 0, clamped outside, and
 * eng_sigmoid and eng_tanh within 3e-7;
 * and ELU, which uses it, the same bits for 1 and 3 threads across several runs of entries. */
static void test_exp(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        const double want = exp((double)x), rel = fabs((double)eng_exp(x) - want) / want;
        worst = rel > worst ? rel : worst;
    }
    if (worst > 0x1p-22)
        fail_msg("eng_exp's worst relative error %.3g", worst);
    assert_true(eng_exp(0.0f) == 1.0f);
    /* the LSTM's activations by it: absolute error, tanh odd */
    double worst_s = 0, worst_t = 0;
    for (int i = 0; i <= 400000; i++) {
        const float x = -20.0f + 40.0f * (float)i / 400000.0f;
        worst_s = fmax(worst_s, fabs(eng_sigmoid(x) - 1.0 / (1.0 + exp(-(double)x))));
        worst_t = fmax(worst_t, fabs(eng_tanh(x) - tanh((double)x)));
        assert_true(eng_tanh(-x) == -eng_tanh(x));
    }
    if (worst_s > 3e-7 || worst_t > 3e-7)
        fail_msg("eng_sigmoid's worst error %.3g, eng_tanh's %.3g", worst_s, worst_t);
    assert_true(eng_tanh(0.0f) == 0.0f && eng_sigmoid(0.0f) == 0.5f);
    assert_true(eng_exp(-1000.0f) == eng_exp(-87.0f) && eng_exp(-87.0f) > 0.0f);
    assert_true(eng_exp(1000.0f) == eng_exp(88.0f) && isfinite(eng_exp(88.0f)));
    enum { N = 3 * 4096 + 77 };
    float *in = malloc(N * sizeof *in), *o1 = malloc(N * sizeof *o1), *o3 = malloc(N * sizeof *o3);
    float *g1 = calloc(N, sizeof *g1), *g3 = calloc(N, sizeof *g3);
    test_fill_normal(in, N, 2.0, 67);
    trn_elu_forward(o1, in, N, 1);
    trn_elu_forward(o3, in, N, 3);
    assert_memory_equal(o1, o3, N * sizeof *o1);
    trn_elu_backward(g1, in, in, N, 1);
    trn_elu_backward(g3, in, in, N, 3);
    assert_memory_equal(g1, g3, N * sizeof *g1);
    for (int i = 0; i < N; i++)
        assert_true(fabs(o1[i] - (in[i] > 0 ? in[i] : expm1(in[i]))) <= 2e-7);
    free(in), free(o1), free(o3), free(g1), free(g3);
}

enum { HR = 6, HH = 3, HD = 4 };

typedef struct {
    float in[HR * HH * HD], out[HR * HD];
} heads_t;

static void head_mean_f(void *ctx)
{
    heads_t *h = ctx;
    trn_head_mean_forward(h->out, h->in, HR, HH, HD);
}

static void test_head_mean(void **state)
{
    (void)state;
    heads_t h;
    float w[HR * HD], g[HR * HH * HD] = {0};
    test_fill_normal(h.in, HR * HH * HD, 1.0, 67);
    test_fill_normal(w, HR * HD, 1.0, 68);
    trn_head_mean_backward(g, w, HR, HH, HD);
    check_fd("head mean", h.in, g, HR * HH * HD, 1e-2f, head_mean_f, &h, w, h.out, HR * HD);
}

enum { NR = 7, ND = 5, NCAT = 12 };

typedef struct {
    float in[NR * ND], out[NR * ND], norm[NR], cat[NR * NCAT];
} rows_t;

static void l2norm_f(void *ctx)
{
    rows_t *r = ctx;
    trn_l2norm_forward(r->out, r->norm, r->in, NR, ND, 2);
}

static void concat_f(void *ctx)
{
    rows_t *r = ctx;
    trn_concat_forward(r->cat, r->in, NR, ND, NCAT, 4);
}

static void test_l2norm_concat(void **state)
{
    (void)state;
    rows_t r = {0};
    float w[NR * NCAT], g[NR * ND] = {0};
    test_fill_normal(r.in, NR * ND, 1.0, 91);
    test_fill_normal(w, NR * NCAT, 1.0, 92);
    l2norm_f(&r);
    for (int i = 0; i < NR; i++) {
        double ss = 0;
        for (int j = 0; j < ND; j++)
            ss += (double)r.out[i * ND + j] * r.out[i * ND + j];
        assert_true(fabs(ss - 1.0) < 1e-5);
    }
    trn_l2norm_backward(g, w, r.out, r.norm, NR, ND, 2);
    check_fd("l2norm", r.in, g, NR * ND, 1e-3f, l2norm_f, &r, w, r.out, NR * ND);
    /* concat: columns 4..8 of a 12-wide table, the others untouched */
    float gc[NR * ND] = {0};
    trn_concat_backward(gc, w, NR, ND, NCAT, 4);
    check_fd("concat", r.in, gc, NR * ND, 1e-2f, concat_f, &r, w, r.cat, NR * NCAT);
    assert_true(r.cat[0] == 0.0f && r.cat[NCAT - 1] == 0.0f);
}

/* ---- graph attention (trainer/attention.h) ---- */

/* trn_graph_adj is trn_graph_norm_adj's pattern; an edge set is the graph's entries of its rows,
 * its columns renumbered, and its transposed index lists each column's entries. */
static void test_adj_edges(void **state)
{
    (void)state;
    eng_csr_t *train = test_random_train(6, 5, 2, 101);
    for (int self = 0; self <= 1; self++) {
        eng_csr_t *p = trn_graph_adj(train, self), *a = trn_graph_norm_adj(train, self);
        assert_non_null(p);
        assert_null(p->val);
        assert_int_equal(p->nnz, a->nnz);
        assert_memory_equal(p->ptr, a->ptr, ((size_t)a->rows + 1) * sizeof *p->ptr);
        assert_memory_equal(p->idx, a->idx, (size_t)a->nnz * sizeof *p->idx);
        eng_csr_free(a);
        if (!self) {
            eng_csr_free(p);
            continue;
        }
        /* rows 1, 4, 7; columns every node (a superset of their neighbourhoods) */
        int32_t rows[3] = {1, 4, 7}, cols[11];
        for (int32_t c = 0; c < p->rows; c++)
            cols[c] = c;
        trn_edges_t es;
        assert_int_equal(trn_edges_alloc(&es, p), 0);
        trn_edges_build(&es, p, rows, 3, cols, p->rows);
        int64_t seen = 0;
        for (int32_t r = 0; r < 3; r++) {
            assert_int_equal(es.self[r], rows[r]);
            assert_int_equal(es.g.ptr[r + 1] - es.g.ptr[r], p->ptr[rows[r] + 1] - p->ptr[rows[r]]);
            seen += es.g.ptr[r + 1] - es.g.ptr[r];
        }
        assert_int_equal(es.g.nnz, seen);
        for (int32_t c = 0; c < p->rows; c++)
            for (int64_t t = es.col_ptr[c]; t < es.col_ptr[c + 1]; t++) {
                const int64_t k = es.col_edge[t];
                assert_int_equal(es.g.idx[k], c);
                assert_true(k >= es.g.ptr[es.col_row[t]] && k < es.g.ptr[es.col_row[t] + 1]);
            }
        assert_int_equal(es.col_ptr[p->rows], es.g.nnz);
        trn_edges_free(&es);
        eng_csr_free(p);
    }
    eng_csr_free(train);
}

enum { AD = 3 }; /* features per node */

/* One head's buffers over the 11-node graph of test_random_train(6, 5, 2) with self-loops: every
 * node attending over its neighbours (square), or only the rows 0, 3, 5, 9 over their
 * neighbourhoods, columns renumbered (a layer of a receptive field). */
typedef struct {
    eng_csr_t *g;
    trn_edges_t es;
    size_t rows, cols, nnz;
    float *st, *e, *alpha, *z, *out;
    float *w_e, *w_out; /* weights of the objectives sum(w * out) */
} attn_t;

static attn_t attn_new(uint64_t seed, int part)
{
    attn_t t = {0};
    eng_csr_t *train = test_random_train(6, 5, 2, seed);
    t.g = trn_graph_adj(train, 1);
    eng_csr_free(train);
    int32_t all[11], rows[4] = {0, 3, 5, 9}, cols[11];
    uint8_t in[11] = {0};
    for (int32_t r = 0; r < t.g->rows; r++)
        all[r] = r;
    int32_t n_rows = part ? 4 : t.g->rows, n_cols = 0;
    const int32_t *list = part ? rows : all;
    for (int32_t q = 0; q < n_rows; q++)
        for (int64_t k = t.g->ptr[list[q]]; k < t.g->ptr[list[q] + 1]; k++)
            in[t.g->idx[k]] = 1;
    for (int32_t c = 0; c < t.g->rows; c++)
        if (in[c])
            cols[n_cols++] = c;
    assert_int_equal(trn_edges_alloc(&t.es, t.g), 0);
    trn_edges_build(&t.es, t.g, list, n_rows, cols, n_cols);
    t.rows = (size_t)n_rows;
    t.cols = (size_t)n_cols;
    t.nnz = (size_t)t.es.g.nnz;
    t.st = malloc(2 * t.cols * sizeof *t.st);
    t.e = malloc(t.nnz * sizeof *t.e);
    t.alpha = malloc(t.nnz * sizeof *t.alpha);
    t.z = malloc(t.cols * AD * sizeof *t.z);
    t.out = malloc(t.rows * AD * sizeof *t.out);
    t.w_e = malloc(t.nnz * sizeof *t.w_e);
    t.w_out = malloc(t.rows * AD * sizeof *t.w_out);
    test_fill_normal(t.st, 2 * t.cols, 1.0, seed + 1);
    test_fill_normal(t.e, t.nnz, 2.0, seed + 2);
    test_fill_normal(t.alpha, t.nnz, 1.0, seed + 3);
    test_fill_normal(t.z, t.cols * AD, 1.0, seed + 4);
    test_fill_normal(t.w_e, t.nnz, 1.0, seed + 5);
    test_fill_normal(t.w_out, t.rows * AD, 1.0, seed + 6);
    return t;
}

static void attn_free(attn_t *t)
{
    eng_csr_free(t->g);
    trn_edges_free(&t->es);
    free(t->st), free(t->e), free(t->alpha), free(t->z), free(t->out);
    free(t->w_e), free(t->w_out);
}

static void edge_sum_f(void *ctx)
{
    attn_t *t = ctx;
    trn_edge_sum_forward(t->e, t->st, &t->es, 2);
}

static void edge_softmax_f(void *ctx)
{
    attn_t *t = ctx;
    trn_edge_softmax_forward(t->alpha, t->e, &t->es, 2);
}

static void edge_aggregate_f(void *ctx)
{
    attn_t *t = ctx;
    trn_edge_aggregate_forward(t->out, t->alpha, t->z, &t->es, AD, 2);
}

/* Runs backward(threads) into g (zeroed to n floats first) for 1 and 3 threads: the same bits. */
#define SAME_FOR_THREADS(g, n, call)                                                               \
    do {                                                                                           \
        float *one_ = calloc((n), sizeof *one_);                                                   \
        memset((g), 0, (n) * sizeof *(g));                                                         \
        {                                                                                          \
            const int threads = 1;                                                                 \
            call;                                                                                  \
        }                                                                                          \
        memcpy(one_, (g), (n) * sizeof *one_);                                                     \
        memset((g), 0, (n) * sizeof *(g));                                                         \
        {                                                                                          \
            const int threads = 3;                                                                 \
            call;                                                                                  \
        }                                                                                          \
        assert_memory_equal(one_, (g), (n) * sizeof *one_);                                        \
        free(one_);                                                                                \
    } while (0)

static void test_edge_sum(void **state)
{
    (void)state;
    for (int part = 0; part <= 1; part++) {
        attn_t t = attn_new(111, part);
        float *g = malloc(2 * t.cols * sizeof *g);
        SAME_FOR_THREADS(g, 2 * t.cols, trn_edge_sum_backward(g, t.w_e, &t.es, threads));
        edge_sum_f(&t);
        for (int32_t r = 0; r < t.es.g.rows; r++) /* e = s_r + t_c */
            for (int64_t k = t.es.g.ptr[r]; k < t.es.g.ptr[r + 1]; k++)
                assert_true(t.e[k] == t.st[2 * t.es.self[r]] + t.st[2 * t.es.g.idx[k] + 1]);
        check_fd("edge sum", t.st, g, 2 * t.cols, 1e-2f, edge_sum_f, &t, t.w_e, t.e, t.nnz);
        free(g);
        attn_free(&t);
    }
}

static void test_edge_softmax(void **state)
{
    (void)state;
    for (int part = 0; part <= 1; part++) {
        attn_t t = attn_new(121, part);
        float *g = malloc(t.nnz * sizeof *g);
        edge_softmax_f(&t);
        for (int32_t r = 0; r < t.es.g.rows; r++) { /* each row a distribution */
            double sum = 0;
            for (int64_t k = t.es.g.ptr[r]; k < t.es.g.ptr[r + 1]; k++) {
                assert_true(t.alpha[k] > 0.0f);
                sum += t.alpha[k];
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
        SAME_FOR_THREADS(g, t.nnz, trn_edge_softmax_backward(g, t.w_e, t.alpha, &t.es, threads));
        check_fd("edge softmax", t.e, g, t.nnz, 1e-2f, edge_softmax_f, &t, t.w_e, t.alpha, t.nnz);
        /* stable with the row maximum subtracted: huge logits give the same coefficients */
        float *a0 = malloc(t.nnz * sizeof *a0);
        memcpy(a0, t.alpha, t.nnz * sizeof *a0);
        for (size_t k = 0; k < t.nnz; k++)
            t.e[k] += 1000.0f;
        edge_softmax_f(&t);
        for (size_t k = 0; k < t.nnz; k++)
            assert_true(isfinite(t.alpha[k]) && fabsf(t.alpha[k] - a0[k]) < 1e-3f);
        free(a0);
        free(g);
        attn_free(&t);
    }
}

static void test_edge_aggregate(void **state)
{
    (void)state;
    for (int part = 0; part <= 1; part++) {
        attn_t t = attn_new(131, part);
        float *gz = malloc(t.cols * AD * sizeof *gz), *ga = malloc(t.nnz * sizeof *ga);
        SAME_FOR_THREADS(
            gz, t.cols * AD,
            trn_edge_aggregate_backward(gz, NULL, t.w_out, t.alpha, t.z, &t.es, AD, threads));
        SAME_FOR_THREADS(
            ga, t.nnz,
            trn_edge_aggregate_backward(NULL, ga, t.w_out, t.alpha, t.z, &t.es, AD, threads));
        check_fd("aggregate d/dz", t.z, gz, t.cols * AD, 1e-2f, edge_aggregate_f, &t, t.w_out,
                 t.out, t.rows * AD);
        check_fd("aggregate d/dalpha", t.alpha, ga, t.nnz, 1e-2f, edge_aggregate_f, &t, t.w_out,
                 t.out, t.rows * AD);
        free(gz);
        free(ga);
        attn_free(&t);
    }
}

/* One whole attention head, as gat.c composes it: st = z a, e = LeakyReLU_0.2(s_r + t_c),
 * alpha = edge softmax, out = aggregate(alpha, z); checked in z and a, on the whole graph and on
 * a part of it. */
typedef struct {
    attn_t t;
    float a[AD * 2], pre[512];
} head_t;

static void head_f(void *ctx)
{
    head_t *h = ctx;
    attn_t *t = &h->t;
    trn_dense_forward(t->st, t->z, h->a, NULL, (int64_t)t->cols, AD, 2, 2);
    trn_edge_sum_forward(h->pre, t->st, &t->es, 2);
    trn_lrelu_forward(t->e, h->pre, 0.2f, t->nnz);
    trn_edge_softmax_forward(t->alpha, t->e, &t->es, 2);
    trn_edge_aggregate_forward(t->out, t->alpha, t->z, &t->es, AD, 2);
}

static void test_attention_head(void **state)
{
    (void)state;
    static head_t h;
    for (int part = 0; part <= 1; part++) {
        h.t = attn_new(141, part);
        attn_t *t = &h.t;
        assert_true(t->nnz <= sizeof h.pre / sizeof *h.pre);
        test_fill_normal(h.a, AD * 2, 1.0, 142);
        head_f(&h);
        float *gz = calloc(t->cols * AD, sizeof *gz), *ga = calloc(AD * 2, sizeof *ga);
        float *dalpha = calloc(t->nnz, sizeof *dalpha), *de = calloc(t->nnz, sizeof *de);
        float *dpre = calloc(t->nnz, sizeof *dpre), *dst = calloc(2 * t->cols, sizeof *dst);
        trn_edge_aggregate_backward(gz, dalpha, t->w_out, t->alpha, t->z, &t->es, AD, 2);
        trn_edge_softmax_backward(de, dalpha, t->alpha, &t->es, 2);
        trn_lrelu_backward(dpre, de, h.pre, 0.2f, t->nnz);
        trn_edge_sum_backward(dst, dpre, &t->es, 2);
        trn_dense_backward(gz, ga, NULL, dst, t->z, h.a, (int64_t)t->cols, AD, 2, 2);
        check_fd("attention head d/da", h.a, ga, AD * 2, 1e-2f, head_f, &h, t->w_out, t->out,
                 t->rows * AD);
        check_fd("attention head d/dz", t->z, gz, t->cols * AD, 1e-2f, head_f, &h, t->w_out, t->out,
                 t->rows * AD);
        free(gz), free(ga), free(dalpha), free(de), free(dpre), free(dst);
        attn_free(t);
    }
}

/* ---- GraphSAGE's aggregators (trainer/aggregate.h) ---- */

/* Five nodes aggregating rows of an 8-row table: lists of several lengths sharing rows, one
 * empty, one a single row. */
enum { SN = 5, SIN = 8, SD = 4 };
static const int64_t agg_ptr[SN + 1] = {0, 3, 3, 4, 8, 10};
static const int32_t agg_idx[10] = {1, 4, 6, 2, 0, 3, 5, 7, 4, 1};

typedef struct {
    float x[SIN * SD], w[SD * SD], b[SD], out[SN * SD], pz[SIN * SD], pa[SIN * SD];
    int32_t arg[SN * SD];
    float lwx[SD * 4 * SD], lwh[SD * 4 * SD], lb[4 * SD]; /* lstm */
    float xw[SIN * 4 * SD], gates[10 * 4 * SD], cell[10 * SD], fscratch[SN * (5 * SD + 1)];
    int kind; /* 0 mean, 1 max, 2 pool, 3 lstm */
    int threads;
} agg_t;

static void agg_f(void *ctx)
{
    agg_t *a = ctx;
    if (a->kind == 0)
        trn_agg_mean_forward(a->out, a->x, agg_ptr, agg_idx, SN, SD, a->threads);
    else if (a->kind == 1)
        trn_agg_max_forward(a->out, a->arg, a->x, agg_ptr, agg_idx, SN, SD, a->threads);
    else if (a->kind == 2)
        trn_agg_pool_forward(a->out, a->arg, a->pz, a->pa, a->x, a->w, a->b, agg_ptr, agg_idx, SN,
                             SIN, SD, a->threads);
    else
        trn_agg_lstm_forward(a->out, a->xw, a->gates, a->cell, a->fscratch, a->x, a->lwx, a->lwh,
                             a->lb, agg_ptr, agg_idx, SN, SIN, SD, a->threads);
}

static void test_aggregators(void **state)
{
    (void)state;
    static const char *const names[4] = {"agg mean", "agg max", "agg pool", "agg lstm"};
    for (int kind = 0; kind < 4; kind++) {
        agg_t a = {.kind = kind, .threads = 2};
        float w[SN * SD], gx[SIN * SD],
            gw[SD * SD] = {0}, gb[SD] = {0},
                    scratch[SIN * 4 * SD + 10 * 5 * SD + SN * (7 * SD + 1)];
        static float gwx[SD * 4 * SD], gwh[SD * 4 * SD], glb[4 * SD];
        memset(gwx, 0, sizeof gwx), memset(gwh, 0, sizeof gwh), memset(glb, 0, sizeof glb);
        test_fill_normal(a.x, SIN * SD, 1.0, 101);
        test_fill_normal(a.w, SD * SD, 1.0, 102);
        test_fill_normal(a.b, SD, 0.5, 103);
        test_fill_normal(w, SN * SD, 1.0, 104);
        test_fill_normal(a.lwx, SD * 4 * SD, 0.6, 106);
        test_fill_normal(a.lwh, SD * 4 * SD, 0.6, 107);
        test_fill_normal(a.lb, 4 * SD, 0.5, 108);
        /* columns whose values are 0.1 apart at least, so no perturbation changes a maximum */
        for (int j = 0; j < SD; j++)
            for (int i = 0; i < SIN; i++)
                a.x[i * SD + j] =
                    0.25f * (float)((i * 3 + j * 5) % SIN) - 1.0f + 0.02f * a.x[i * SD + j];
        /* backward accumulates: start from non-zero and subtract */
        test_fill_normal(gx, SIN * SD, 1.0, 105);
        float gx0[SIN * SD];
        memcpy(gx0, gx, sizeof gx);
        agg_f(&a);
        if (kind == 0)
            trn_agg_mean_backward(gx, w, agg_ptr, agg_idx, SN, SD, 2);
        else if (kind == 1)
            trn_agg_max_backward(gx, w, a.arg, SN, SD, 2);
        else if (kind == 2)
            trn_agg_pool_backward(gx, gw, gb, scratch, w, a.arg, a.pz, a.x, a.w, SN, SIN, SD, 2);
        else
            trn_agg_lstm_backward(gx, gwx, gwh, glb, scratch, w, a.gates, a.cell, a.x, a.lwx, a.lwh,
                                  agg_ptr, agg_idx, SN, SIN, SD, 2);
        for (int i = 0; i < SIN * SD; i++)
            gx[i] -= gx0[i];
        /* the empty list gives zeros; 1 and 3 threads give the same bits */
        for (int j = 0; j < SD; j++)
            assert_true(a.out[1 * SD + j] == 0.0f);
        float one[SN * SD];
        a.threads = 1;
        agg_f(&a);
        memcpy(one, a.out, sizeof one);
        a.threads = 3;
        agg_f(&a);
        assert_memory_equal(one, a.out, sizeof one);
        const float eps = kind == 2 ? 1e-3f : 1e-2f;
        check_fd(names[kind], a.x, gx, SIN * SD, eps, agg_f, &a, w, a.out, SN * SD);
        if (kind == 2) {
            check_fd("agg pool d/dw", a.w, gw, SD * SD, eps, agg_f, &a, w, a.out, SN * SD);
            check_fd("agg pool d/db", a.b, gb, SD, eps, agg_f, &a, w, a.out, SN * SD);
        }
        if (kind == 3) {
            /* inference keeps no gates and gives the same bits, one list per node or per step */
            float inf[SN * SD], iscratch[SN * (6 * SD + 1)];
            trn_agg_lstm_infer(inf, iscratch, a.xw, a.lwh, agg_ptr, agg_idx, SN, SD, 2);
            assert_memory_equal(inf, a.out, sizeof inf);
            check_fd("agg lstm d/dwx", a.lwx, gwx, SD * 4 * SD, eps, agg_f, &a, w, a.out, SN * SD);
            check_fd("agg lstm d/dwh", a.lwh, gwh, SD * 4 * SD, eps, agg_f, &a, w, a.out, SN * SD);
            check_fd("agg lstm d/db", a.lb, glb, 4 * SD, eps, agg_f, &a, w, a.out, SN * SD);
        }
    }
    /* max: the first of tied rows takes the gradient */
    float x[2 * SD], out[SD], g[2 * SD] = {0}, dout[SD] = {1, 1, 1, 1};
    int32_t arg[SD];
    const int64_t ptr[2] = {0, 2};
    const int32_t idx[2] = {1, 0};
    for (int i = 0; i < 2 * SD; i++)
        x[i] = 0.5f;
    trn_agg_max_forward(out, arg, x, ptr, idx, 1, SD, 1);
    trn_agg_max_backward(g, dout, arg, 1, SD, 1);
    for (int j = 0; j < SD; j++)
        assert_true(arg[j] == 1 && g[SD + j] == 1.0f && g[j] == 0.0f);
}

static void test_adam_matches_torch(void **state)
{
    (void)state;
    /* torch.optim.Adam(lr=0.1) on p=[1.0, -2.0] with grads [0.5, -0.25] then [0.1, 0.3]:
     * after step 1: p = [0.9, -1.9]; after step 2 (hand-computed from torch's formula):
     *   m = 0.9*m + 0.1*g; v = 0.999*v + 0.001*g^2; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
    float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    float g1[2] = {0.5f, -0.25f}, g2[2] = {0.1f, 0.3f};
    eng_adam_t a = eng_adam_defaults(0.1f);
    eng_adam_update(&a, p, g1, m, v, 2, 1);
    assert_true(fabsf(p[0] - 0.9f) < 1e-6f && fabsf(p[1] + 1.9f) < 1e-6f);
    eng_adam_update(&a, p, g2, m, v, 2, 2);
    double expect[2];
    for (int i = 0; i < 2; i++) {
        double gg1 = g1[i], gg2 = g2[i];
        double mm = 0.9 * (0.1 * gg1) + 0.1 * gg2;
        double vv = 0.999 * (0.001 * gg1 * gg1) + 0.001 * gg2 * gg2;
        double bc1 = 1 - 0.81, bc2 = 1 - 0.999 * 0.999;
        expect[i] = (i ? -1.9 : 0.9) - 0.1 / bc1 * mm / (sqrt(vv) / sqrt(bc2) + 1e-8);
    }
    assert_true(fabs(p[0] - expect[0]) < 1e-5 && fabs(p[1] - expect[1]) < 1e-5);
}

static void row_from_table(const eng_row_grads_t *rg, size_t r, int32_t pos, float *out)
{
    (void)r;
    memcpy(out, (const float *)rg->ctx + (size_t)pos * rg->dim, (size_t)rg->dim * sizeof *out);
}

/* Adam with a table's gradient by row (as a table, or summed on demand) updates every parameter
 * to the bits of the dense update given the same gradient with zeros in the rows that have none
 * (with weight decay, so that a row without a gradient still moves), at any thread count. */
static void test_adam_rows(void **state)
{
    (void)state;
    enum { ROWS = 37, DIM = 5, TAIL = 23, N = ROWS * DIM + TAIL };
    float p0[N], g[N], rows[ROWS * DIM];
    int32_t pos[ROWS];
    test_fill_normal(p0, N, 1.0, 61);
    test_fill_normal(rows, ROWS * DIM, 1.0, 62);
    test_fill_normal(g, N, 1.0, 63);
    for (int r = 0, k = 0; r < ROWS; r++) { /* every third row has a gradient, in reverse order */
        pos[r] = r % 3 == 0 ? ROWS - 1 - k++ : -1;
        for (int j = 0; j < DIM; j++)
            g[r * DIM + j] = pos[r] >= 0 ? rows[pos[r] * DIM + j] : 0.0f;
    }
    for (int threads = 1; threads <= 3; threads++) {
        float pd[N], md[N] = {0}, vd[N] = {0}, pr[N], mr[N] = {0}, vr[N] = {0}, gr[N];
        memcpy(pd, p0, sizeof pd);
        memcpy(pr, p0, sizeof pr);
        memcpy(gr, g, sizeof gr);
        for (int j = 0; j < ROWS * DIM; j++)
            gr[j] = NAN; /* not read */
        eng_adam_t ad = eng_adam_defaults(0.01f), ar = ad;
        ad.weight_decay = ar.weight_decay = 0.1f;
        /* the rows given as a table, then summed on demand (copied from the table) */
        float pc[N], mc[N] = {0}, vc[N] = {0};
        memcpy(pc, p0, sizeof pc);
        eng_adam_t ac = ar;
        const eng_row_grads_t rg = {.rows = ROWS, .dim = DIM, .pos = pos, .grad = rows};
        const eng_row_grads_t rc = {
            .rows = ROWS, .dim = DIM, .pos = pos, .row = row_from_table, .ctx = rows};
        for (int step = 0; step < 3; step++) {
            eng_adam_update(&ad, pd, g, md, vd, N, threads);
            eng_adam_update_rows(&ar, pr, gr, mr, vr, N, &rg, threads);
            eng_adam_update_rows(&ac, pc, gr, mc, vc, N, &rc, threads);
        }
        assert_int_equal(ad.step, ar.step);
        assert_memory_equal(pd, pr, sizeof pd);
        assert_memory_equal(md, mr, sizeof md);
        assert_memory_equal(vd, vr, sizeof vd);
        assert_memory_equal(pd, pc, sizeof pd);
        assert_memory_equal(md, mc, sizeof md);
        assert_memory_equal(vd, vc, sizeof vd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_bpr),
        cmocka_unit_test(test_loss_bce),
        cmocka_unit_test(test_loss_margin),
        cmocka_unit_test(test_loss_mse),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_dot),
        cmocka_unit_test(test_l2),
        cmocka_unit_test(test_norm_adj),
        cmocka_unit_test(test_spmm_kinds),
        cmocka_unit_test(test_propagate),
        cmocka_unit_test(test_adam_matches_torch),
        cmocka_unit_test(test_adam_rows),
        cmocka_unit_test(test_lightgcn_fast_path),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_lrelu),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_l2norm_concat),
        cmocka_unit_test(test_elu),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_head_mean),
        cmocka_unit_test(test_adj_edges),
        cmocka_unit_test(test_edge_sum),
        cmocka_unit_test(test_edge_softmax),
        cmocka_unit_test(test_edge_aggregate),
        cmocka_unit_test(test_attention_head),
        cmocka_unit_test(test_aggregators),
        cmocka_unit_test(test_kge),
        cmocka_unit_test(test_project_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
