/* The conformance test every registered model passes (trainer/model.c's table), so that a new
 * model gets these checks by being registered:
 *   - its whole objective (mean loss + regulariser, as batch_grad reports them) against central
 *     finite differences, for every parameter, with BPR and BCE and 1 or 3 negatives, margin with
 *     2, and with MSE on rating batches (each loss the kind trains with), over made-up side data
 *     when the kind needs or uses some (world_of), on the kind's own batches when it draws them;
 *   - its hyper-parameter table is well formed (defaults inside their ranges, names unique, the
 *     common rows present) and parses values and rejects bad ones;
 *   - the same seed and thread count give bit-identical vectors, twice in one process;
 *   - the training loop draws from a kind's own sampler when it has one;
 *   - publishing then loading gives back its vectors, parameter views and extras for exactly the
 * trained users and items (an id only in the test file is not published), with sorted seen lists.
 * tests/test_models_served.py adds the served side: the server's top-K equals `gnnrec recommend`.
 *
 * Pass criterion of the gradient check: |analytic - numeric| <= TOL_ABS + TOL_REL * max(|analytic|,
 * |numeric|), eps 2e-3, float32 forward passes. TOL_ABS is the numeric derivative's own noise: an
 * objective of a few units evaluated in float32 carries rounding noise of about 1e-7 (the deep
 * forward of ngcf, with its dense layers and row normalisation, measures 8e-8), which divided by
 * 2 eps is 2e-5 to 4e-5; at eps 1e-3 it doubles, as noise does. An element also passes when it
 * is within TOL_RMS (2%) of the gradient's RMS: under MSE the objective is larger and so is its
 * noise. A parameter that fails is checked again at eps 1e-3 and 5e-4 and passes if one agrees:
 * a kink of a piecewise-linear activation (ReLU, LeakyReLU) within eps of the point bends the
 * central difference by O(eps) and moves out of reach at a smaller eps, while a wrong gradient is
 * wrong at every eps (gat met one: an attention logit at 0.0029 that the +-2e-3 step pushed across
 * zero). A factor-of-two error in any backward still fails (we tried). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/rng.h"
#include "tests/testdata.h"
#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/graphsage.h"
#include "trainer/model.h"
#include "trainer/publish.h"
#include "trainer/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL_REL 1e-2
#define TOL_ABS 4e-5
#define TOL_RMS 2e-2

/* A config for ops with its defaults, then each name=value pair applied; rows the kind lacks are
 * skipped (a model without layers has no --layers). Free with free. */
static void *config(const trn_model_ops_t *ops, const char *const *kv)
{
    void *cfg = malloc(ops->config_size);
    assert_non_null(cfg);
    trn_hp_defaults(ops->hparams, ops->n_hparams, cfg);
    for (; kv && kv[0]; kv += 2) {
        const trn_hparam_t *h = trn_hp_find(ops->hparams, ops->n_hparams, kv[0]);
        if (h)
            assert_int_equal(trn_hp_parse(h, cfg, kv[1], NULL), 0);
    }
    return cfg;
}

/* The inputs a kind trains on over train: the side data it needs, and with optional also the side
 * data it can use, made up (random attributes, user-user edges, a knowledge graph over train's
 * items), and for a kind that trains on the graph alone an empty log over the graph's entities in
 * train's place. Free with world_free. */
typedef struct {
    trn_inputs_t in;
    test_kg_t kg;
    eng_csr_t *kg_log, *user_attrs, *item_attrs, *social;
} world_t;

/* A symmetric user-user graph without self-loops: about two edges a user. */
static eng_csr_t *random_social(int32_t nu, uint64_t seed)
{
    eng_rng_t r;
    eng_rng_seed(&r, seed, 17);
    int32_t a[512], b[512];
    int64_t n = 0;
    for (int32_t u = 0; u < nu && n + 2 <= 512; u++) {
        const int32_t v = (int32_t)eng_rng_below(&r, (uint32_t)nu);
        if (v == u)
            continue;
        a[n] = u, b[n++] = v;
        a[n] = v, b[n++] = u;
    }
    return eng_csr_from_pairs(nu, nu, a, b, n);
}

static const trn_inputs_t *world_of(world_t *w, const trn_model_ops_t *ops, const eng_csr_t *train,
                                    uint64_t seed, int optional)
{
    memset(w, 0, sizeof *w);
    w->in.train = train;
    const unsigned want = ops->needs | (optional ? ops->uses : 0);
    if (want & TRN_NEEDS_USER_ATTRS)
        w->in.user_attrs = w->user_attrs = test_random_train(train->rows, 5, 1, seed + 1);
    if (want & TRN_NEEDS_ITEM_ATTRS)
        w->in.item_attrs = w->item_attrs = test_random_train(train->cols, 4, 1, seed + 2);
    if (want & TRN_NEEDS_SOCIAL)
        w->in.social = w->social = random_social(train->rows, seed + 3);
    if (ops->needs & TRN_NEEDS_KG) {
        test_random_kg(&w->kg, train->cols, seed);
        w->in.kg = &w->kg.kg;
    }
    if (ops->needs & TRN_NEEDS_KG_ONLY) {
        w->kg_log = eng_csr_new(0, w->kg.kg.n_entities, 0, 0);
        assert_non_null(w->kg_log);
        w->in.train = w->kg_log;
    }
    return &w->in;
}

/* With the side data the kind can use as well as what it needs. */
static const trn_inputs_t *world(world_t *w, const trn_model_ops_t *ops, const eng_csr_t *train,
                                 uint64_t seed)
{
    return world_of(w, ops, train, seed, 1);
}

static void world_free(world_t *w)
{
    if (w->in.kg)
        test_kg_free(&w->kg);
    eng_csr_free(w->kg_log);
    eng_csr_free(w->user_attrs);
    eng_csr_free(w->item_attrs);
    eng_csr_free(w->social);
}

/* The kind's next batch: from its own sampler when it has one. */
static void next_batch(trn_model_t *m, trn_sampler_t *s, trn_batch_t *b)
{
    if (m->ops->sample)
        m->ops->sample(m, b, m->hp->batch);
    else
        trn_sampler_next(s, b, m->hp->batch);
}

static int close_enough(double a, double n)
{
    double scale = fmax(fabs(a), fabs(n));
    return fabs(a - n) <= TOL_ABS + TOL_REL * scale;
}

static double objective(trn_model_t *m, const trn_batch_t *b)
{
    double reg = 0;
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    double loss = m->ops->batch_grad(m, b, &reg);
    /* a kind's row gradients (graphsage's E0) into the block, where the check reads them */
    const eng_row_grads_t *rg = &m->row_grads;
    for (size_t r = 0; r < rg->rows; r++) {
        float *row = m->grads + r * rg->dim;
        if (rg->pos[r] >= 0 && !rg->grad)
            rg->row(rg, r, rg->pos[r], row);
        for (int j = 0; rg->pos[r] >= 0 && rg->grad && j < rg->dim; j++)
            row[j] += rg->grad[(size_t)rg->pos[r] * rg->dim + j];
    }
    return loss + reg;
}

/* extra: more name=value pairs (NULL-terminated, at most 6 pairs), or NULL. sparse: on a graph of
 * 250 nodes and 250 edges with a batch of 2 instead of a dense 17-node graph with a batch of
 * 5, so that a kind computing only the batch's receptive field (trainer/field.h) leaves most rows
 * out: their gradient must then be exactly what the whole graph gives. skip: batches drawn and
 * dropped before the one checked (a kind whose sampler runs phases: kgat's KG batches). */
static void check_gradient_at(const trn_model_ops_t *ops, int sparse, const char *loss,
                              const char *nneg, const char *const *extra, int skip)
{
    eng_csr_t *train = sparse ? test_random_train(100, 150, 1, 41) : test_random_train(9, 8, 3, 31);
    const int rated = strcmp(loss, "mse") == 0;
    if (rated)
        test_rate(train, 34);
    /* a large decay, so the regulariser's gradient is visible in the check; none on the sparse
     * graph, where the rows without a gradient are counted and a regulariser may cover whole
     * tables (kgcn's, as its paper's code) */
    const char *kv[32] = {"dim",        "4",
                          "batch",      sparse ? "2" : "5",
                          "decay",      sparse ? "0" : "0.5",
                          "loss",       loss,
                          "negatives",  nneg,
                          "layers",     "2",
                          "layer-dims", "3,2",
                          "rel-dim",    "3",
                          "kg-batch",   "6",
                          NULL};
    for (int k = 0; extra && extra[k]; k++) {
        assert_true(18 + k < 31);
        kv[18 + k] = extra[k];
    }
    void *cfg = config(ops, kv);
    /* on the sparse graph without optional side data: attribute values would join most rows */
    world_t w;
    const trn_inputs_t *in = world_of(&w, ops, train, 35, !sparse);
    eng_error_t err = {0};
    trn_model_t *m = trn_model_new(ops, cfg, in, 2020, 2, &err);
    if (!m)
        fail_msg("%s: %s", ops->kind, err.msg);
    /* larger weights than the usual init, so the scores are not all near zero */
    test_fill_normal(m->params, m->n_params, 0.7, 32);
    trn_sampler_t *s = trn_sampler_new(train, 33);
    trn_batch_t b;
    assert_int_equal(rated ? trn_batch_alloc_rated(&b, m->hp->batch)
                           : trn_batch_alloc(&b, m->hp->batch, m->hp->negatives),
                     0);
    for (int k = 0; k < skip; k++)
        next_batch(m, s, &b);
    next_batch(m, s, &b);
    const double f0 = objective(m, &b);
    float *analytic = malloc(m->n_params * sizeof *analytic);
    memcpy(analytic, m->grads, m->n_params * sizeof *analytic);
    if (sparse && !ops->sample) {
        /* A kind that reads a row its field left out would read whatever an earlier batch left
         * there, a constant to the check below: so the objective and gradient of b must not
         * depend on the batches before it. (A kind with a sampler of its own holds its batch
         * itself: it is not checked this way.) */
        trn_batch_t other;
        assert_int_equal(trn_batch_alloc(&other, m->hp->batch, m->hp->negatives), 0);
        for (int k = 0; k < 2; k++) {
            trn_sampler_next(s, &other, m->hp->batch);
            objective(m, &other);
            if (objective(m, &b) != f0 ||
                memcmp(analytic, m->grads, m->n_params * sizeof *analytic) != 0)
                fail_msg("%s: batch's gradient depends on the batch before it", ops->kind);
        }
        trn_batch_free(&other);
    }
    double sq = 0;
    for (size_t i = 0; i < m->n_params; i++)
        sq += (double)analytic[i] * analytic[i];
    /* Deep float32 forwards (ngcf under MSE) put noise of a fraction of a percent of the typical
     * gradient into every numeric derivative: an element may also be off by up to 2% of the
     * gradient's RMS. A wrong backward is off by the size of the gradients it touches. */
    const double rms = sqrt(sq / (double)m->n_params);
    int nonzero = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        double numeric = 0;
        int ok = 0;
        for (float eps = 2e-3f; !ok && eps >= 5e-4f; eps /= 2) {
            float x0 = m->params[i];
            m->params[i] = x0 + eps;
            double fp = objective(m, &b);
            m->params[i] = x0 - eps;
            double fm = objective(m, &b);
            m->params[i] = x0;
            numeric = (fp - fm) / (2.0 * (double)eps);
            ok = close_enough(analytic[i], numeric) || fabs(analytic[i] - numeric) <= TOL_RMS * rms;
            /* A LeakyReLU (or ReLU, max) input within eps of its kink makes the central
             * difference the mean of the two slopes at every eps tried, however small; the
             * backward takes one side's slope, so it must equal a one-sided difference. */
            if (!ok && eps < 1e-3f) {
                const double f0 = objective(m, &b);
                for (int side = -1; !ok && side <= 1; side += 2) {
                    const double one = side > 0 ? (fp - f0) / eps : (f0 - fm) / eps;
                    ok = close_enough(analytic[i], one) || fabs(analytic[i] - one) <= TOL_RMS * rms;
                }
            }
        }
        if (!ok)
            fail_msg("%s %s negatives %s: d/dparam[%zu] analytic %.8g numeric %.8g (rms %.3g)",
                     ops->kind, loss, nneg, i, analytic[i], numeric, rms);
        nonzero += fabsf(analytic[i]) > 1e-4f;
    }
    assert_true(nonzero > 0); /* the check compared real gradients, not zeros */
    if (sparse && nonzero >= (int)m->n_params / 2) /* and rows without a gradient: the batch
                                                    * reached a part of the graph only */
        fail_msg("%s: %d of %zu gradients non-zero", ops->kind, nonzero, m->n_params);
    free(analytic);
    trn_batch_free(&b);
    trn_sampler_free(s);
    trn_model_free(m);
    world_free(&w);
    free(cfg);
    eng_csr_free(train);
}

static void check_gradient_on(const trn_model_ops_t *ops, int sparse, const char *loss,
                              const char *nneg, const char *const *extra)
{
    check_gradient_at(ops, sparse, loss, nneg, extra, 0);
}

/* Whether ops trains with the loss called name. */
static int trains_with(const trn_model_ops_t *ops, const char *name)
{
    const char *names[] = {"bpr", "bce", "margin", "mse"};
    for (int l = 0; l < 4; l++)
        if (strcmp(names[l], name) == 0)
            return !ops->losses || (ops->losses & TRN_LOSS_BIT(l));
    return 0;
}

static void check_gradient(const trn_model_ops_t *ops, const char *loss, const char *nneg)
{
    if (!trains_with(ops, loss))
        return;
    check_gradient_on(ops, 0, loss, nneg, NULL);
}

static void test_gradients(void **state)
{
    (void)state;
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        check_gradient(all[i], "bpr", "1");
        check_gradient(all[i], "bpr", "3");
        check_gradient(all[i], "bce", "3");
        check_gradient(all[i], "margin", "2");
        check_gradient(all[i], "mse", "1");
        check_gradient_on(all[i], 1, "bpr", "1", NULL);
    }
}

static void test_hparam_tables(void **state)
{
    (void)state;
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    const char *common[] = {"lr", "decay", "batch", "negatives", "loss", "margin"};
    for (int i = 0; i < n; i++) {
        const trn_model_ops_t *ops = all[i];
        assert_non_null(trn_model_find(ops->kind));
        assert_true(ops->config_size >= sizeof(trn_common_hp_t));
        for (size_t c = 0; c < sizeof common / sizeof *common; c++)
            if (!trn_hp_find(ops->hparams, ops->n_hparams, common[c]))
                fail_msg("%s lacks the common setting %s", ops->kind, common[c]);
        for (int r = 0; r < ops->n_hparams; r++) {
            const trn_hparam_t *h = &ops->hparams[r];
            assert_true(h->offset < ops->config_size);
            assert_ptr_equal(trn_hp_find(ops->hparams, ops->n_hparams, h->name), h);
            if ((h->type == TRN_HP_INT || h->type == TRN_HP_FLOAT) &&
                !(h->def >= h->lo && h->def <= h->hi))
                fail_msg("%s --%s: default %g outside [%g, %g]", ops->kind, h->name, h->def, h->lo,
                         h->hi);
            void *cfg = config(ops, NULL);
            char text[64];
            trn_hp_format(h, cfg, text, sizeof text); /* the default round-trips */
            assert_int_equal(trn_hp_parse(h, cfg, text, NULL), 0);
            eng_error_t err = {0};
            assert_int_equal(trn_hp_parse(h, cfg, "bogus", &err), ENG_EINVAL);
            assert_non_null(strstr(err.msg, h->name));
            free(cfg);
        }
        void *cfg = config(ops, NULL);
        json_t *o = json_object();
        assert_int_equal(trn_hp_to_json(ops->hparams, ops->n_hparams, cfg, o), 0);
        assert_int_equal((int)json_object_size(o), ops->n_hparams);
        /* the default loss is one the kind trains with */
        assert_true(trains_with(ops, json_string_value(json_object_get(o, "loss"))));
        json_decref(o);
        free(cfg);
    }
}

/* GraphSAGE's every aggregator, with fan-outs below the degrees so that sampling (and lstm's
 * permutation) is part of the objective (the default table row is mean with every neighbour kept
 * on this graph). (lstm with bce and 3 negatives hits the float32 noise floor on one bias whose
 * gradient is 2e-4: the numeric value moves by 3e-5 between eps 1e-3 and 4e-3; hence bce with 1.)
 */
static void test_graphsage_variants(void **state)
{
    (void)state;
    const trn_model_ops_t *ops = trn_model_find("graphsage");
    assert_non_null(ops);
    const char *aggs[] = {"mean", "max", "pool", "lstm"};
    for (int a = 0; a < 4; a++) {
        const char *extra[] = {"aggregator", aggs[a], "fanout", "2,1", NULL};
        check_gradient_on(ops, 0, "bpr", "3", extra);
        check_gradient_on(ops, 0, "bce", "1", extra);
    }
}

static void test_transe_variants(void **state)
{
    (void)state;
    const trn_model_ops_t *ops = trn_model_find("transe");
    assert_non_null(ops);
    const char *extra[] = {"norm", "l2", NULL};
    check_gradient_on(ops, 0, "margin", "1", extra);
    check_gradient_on(ops, 0, "bpr", "3", extra);
    const char *decay[] = {"norm", "l2", "decay", "0.3", NULL};
    check_gradient_on(ops, 0, "margin", "2", decay);
}

/* Every aggregator, two iterations (ReLU then tanh), fields of fewer and more neighbours than
 * the entities have; and the exact pair scores the evaluation ranks by are the training
 * forward's: their loss is the loss batch_grad reports. */
static void test_kgcn_variants(void **state)
{
    (void)state;
    const trn_model_ops_t *ops = trn_model_find("kgcn");
    assert_non_null(ops);
    const char *aggs[] = {"sum", "concat", "neighbor"};
    for (int a = 0; a < 3; a++) {
        const char *extra[] = {"aggregator", aggs[a], "hops", "2", "neighbors", "2", NULL};
        check_gradient_on(ops, 0, "bce", "1", extra);
        const char *wide[] = {"aggregator", aggs[a], "neighbors", "5", NULL};
        check_gradient_on(ops, 0, "bpr", "2", wide);
    }
    eng_csr_t *train = test_random_train(9, 8, 3, 31);
    world_t w;
    const char *kv[] = {"dim", "4", "batch", "5", "decay", "0", "hops", "2", NULL};
    void *cfg = config(ops, kv);
    trn_model_t *m = trn_model_new(ops, cfg, world(&w, ops, train, 3), 1, 1, NULL);
    assert_non_null(m);
    test_fill_normal(m->params, m->n_params, 0.7, 32);
    trn_sampler_t *s = trn_sampler_new(train, 4);
    trn_batch_t b;
    assert_int_equal(trn_batch_alloc(&b, 5, 1), 0);
    trn_sampler_next(s, &b, 5);
    double reg;
    const double loss = ops->batch_grad(m, &b, &reg);
    int32_t users[10], items[10];
    float scores[10];
    for (int k = 0; k < 5; k++) {
        users[k] = users[5 + k] = b.users[k];
        items[k] = b.pos[k];
        items[5 + k] = b.neg[k];
    }
    assert_int_equal(ops->score(m, users, items, 10, scores), 0);
    assert_true(fabs(trn_loss_forward(TRN_LOSS_BCE, scores, scores + 5, NULL, 5, 1, 1) - loss) <
                1e-6);
    trn_batch_free(&b);
    trn_sampler_free(s);
    trn_model_free(m);
    world_free(&w);
    free(cfg);
    eng_csr_free(train);
}

/* Both phases of kgat's epoch: its CF batches (the conformance test checks the first) and its
 * TransR batches, drawn once the CF batches of an epoch are done; and without dropout. */
static void test_kgat_phases(void **state)
{
    (void)state;
    const trn_model_ops_t *ops = trn_model_find("kgat");
    assert_non_null(ops);
    eng_csr_t *train = test_random_train(9, 8, 3, 31);
    const int n_cf = (int)((train->nnz + 4) / 5); /* batch 5 */
    eng_csr_free(train);
    check_gradient_at(ops, 0, "bpr", "1", NULL, n_cf);
    const char *nodrop[] = {"dropout", "0", "layer-dims", "2,3,2", NULL};
    check_gradient_at(ops, 0, "bpr", "2", nodrop, 0);
    check_gradient_at(ops, 0, "bpr", "1", nodrop, n_cf + 1);
}

/* A list row: parses, formats back, goes to JSON as an array, and refuses bad lists. */
static void test_hparam_list(void **state)
{
    (void)state;
    typedef struct {
        trn_common_hp_t common;
        trn_hp_list_t l;
    } cfg_t;
    static const trn_hparam_t t[] = {
        TRN_HP_COMMON(cfg_t, 1e-3, 1e-4, 16),
        TRN_HP_LIST(cfg_t, l, "fanout", "25,10", 1, 100, "per layer"),
    };
    const int n = sizeof t / sizeof *t;
    cfg_t c;
    trn_hp_defaults(t, n, &c);
    assert_int_equal(c.l.n, 2);
    assert_int_equal(c.l.v[0], 25);
    assert_int_equal(c.l.v[1], 10);
    const trn_hparam_t *h = trn_hp_find(t, n, "fanout");
    assert_int_equal(trn_hp_parse(h, &c, "3,2,1", NULL), 0);
    char buf[64];
    trn_hp_format(h, &c, buf, sizeof buf);
    assert_string_equal(buf, "3,2,1");
    json_t *o = json_object();
    assert_int_equal(trn_hp_to_json(t, n, &c, o), 0);
    char *js = json_dumps(json_object_get(o, "fanout"), JSON_COMPACT);
    assert_string_equal(js, "[3,2,1]");
    free(js);
    json_decref(o);
    const char *bad[] = {"", "3,", ",3", "3,,2", "0", "101", "1,2,3,4,5,6,7,8,9", "2 3", "x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        eng_error_t err = {0};
        assert_int_equal(trn_hp_parse(h, &c, bad[k], &err), ENG_EINVAL);
        assert_non_null(strstr(err.msg, "--fanout: expected 1 to 8 comma-separated integers"));
    }
    assert_int_equal(c.l.n, 3); /* unchanged by the failures */
    char help[2048];
    trn_hp_help(t, n, help, sizeof help);
    assert_non_null(strstr(help, "--fanout N,N..      per layer (25,10; 1..8 values in 1..100)"));
}

/* Small synthetic data: a few seconds of training for any model. */
static trn_data_t *small_data(void)
{
    trn_synth_opts_t so = trn_synth_defaults();
    so.n_users = 300;
    so.n_items = 200;
    so.per_user = 12;
    trn_data_t *d = NULL;
    assert_int_equal(trn_data_synthetic(&so, &d, NULL), 0);
    return d;
}

static trn_model_t *trained(const trn_model_ops_t *ops, const trn_data_t *d, const trn_inputs_t *in,
                            int threads)
{
    const char *kv[] = {"dim", "16", "batch", "256", NULL};
    void *cfg = config(ops, kv);
    eng_error_t err = {0};
    trn_model_t *m = trn_model_new(ops, cfg, in, 7, threads, &err);
    free(cfg);
    if (!m)
        fail_msg("%s: %s", ops->kind, err.msg);
    trn_epoch_t ep[2];
    trn_train_opts_t o = {.epochs = 2, .nk = 1, .ks = {20}};
    assert_int_equal(trn_train_run(m, d, &o, ep, &err), 0);
    return m;
}

static void test_deterministic(void **state)
{
    (void)state;
    trn_data_t *d = small_data();
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    for (int i = 0; i < n; i++)
        for (int threads = 1; threads <= 2; threads++) {
            world_t w;
            const trn_inputs_t *in = world(&w, all[i], d->train, 8);
            trn_model_t *a = trained(all[i], d, in, threads), *b = trained(all[i], d, in, threads);
            float *au, *ai, *bu, *bi;
            assert_int_equal(trn_model_vectors(a, &au, &ai), 0);
            assert_int_equal(trn_model_vectors(b, &bu, &bi), 0);
            size_t dim = (size_t)all[i]->vec_dim(a->cfg);
            if (memcmp(au, bu, (size_t)a->n_users * dim * sizeof *au) != 0 ||
                memcmp(ai, bi, (size_t)a->n_items * dim * sizeof *ai) != 0)
                fail_msg("%s: two runs with seed 7 and %d threads differ", all[i]->kind, threads);
            free(au), free(ai), free(bu), free(bi);
            trn_model_free(a);
            trn_model_free(b);
            world_free(&w);
        }
    trn_data_free(d);
}

/* ---- a kind with a sampler of its own: the training loop draws from it, not the shared one ----
 */

static const trn_model_ops_t *base_ops; /* the kind the test kind wraps */
static int own_batches, foreign_examples;

/* Every example is (user 0, its first item, item of the last index that user 0 lacks). */
static void own_sample(trn_model_t *m, trn_batch_t *b, int n)
{
    const eng_csr_t *t = m->in->train;
    int32_t neg = t->cols - 1;
    while (eng_csr_has(t, 0, neg))
        neg--;
    for (int k = 0; k < n; k++) {
        b->users[k] = 0;
        b->pos[k] = t->idx[t->ptr[0]];
        for (int j = 0; j < b->nneg; j++)
            b->neg[k * b->nneg + j] = neg;
    }
    b->n = n;
}

static double own_batch_grad(trn_model_t *m, const trn_batch_t *b, double *reg)
{
    own_batches++;
    for (int k = 0; k < b->n; k++)
        foreign_examples += b->users[k] != 0;
    return base_ops->batch_grad(m, b, reg);
}

static void test_own_sampler(void **state)
{
    (void)state;
    base_ops = trn_model_find("mf");
    assert_non_null(base_ops);
    trn_model_ops_t own = *base_ops;
    own.sample = own_sample;
    own.batch_grad = own_batch_grad;
    trn_data_t *d = small_data();
    trn_inputs_t in = {.train = d->train};
    const char *kv[] = {"dim", "8", "batch", "512", "negatives", "2", NULL};
    void *cfg = config(&own, kv);
    eng_error_t err = {0};
    trn_model_t *m = trn_model_new(&own, cfg, &in, 1, 1, &err);
    assert_non_null(m);
    trn_epoch_t ep[1];
    trn_train_opts_t o = {.epochs = 1, .nk = 1, .ks = {20}};
    own_batches = foreign_examples = 0;
    assert_int_equal(trn_train_run(m, d, &o, ep, &err), 0);
    assert_int_equal(own_batches, (int)((d->train->nnz + 511) / 512));
    assert_int_equal(foreign_examples, 0);
    trn_model_free(m);
    free(cfg);
    trn_data_free(d);
}

/* --loss mse trains every kind on uniformly drawn rated pairs, and the loss falls; without ratings
 * the run fails with a message before any step. */
static void test_mse_training(void **state)
{
    (void)state;
    trn_data_t *d = small_data();
    const char *kv[] = {"dim", "8", "batch", "256", "loss", "mse", "lr", "0.05", NULL};
    trn_train_opts_t o = {.epochs = 5, .nk = 1, .ks = {20}};
    trn_epoch_t ep[5];
    eng_error_t err = {0};
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    for (int i = 0; i < n; i++) {
        void *cfg = config(all[i], kv);
        world_t w;
        trn_model_t *m = trn_model_new(all[i], cfg, world(&w, all[i], d->train, 4), 3, 2, &err);
        if (!trains_with(all[i], "mse")) { /* refused, with the kind and the loss named */
            assert_null(m);
            assert_non_null(strstr(err.msg, "does not train with --loss mse"));
        } else {
            assert_non_null(m);
            assert_int_equal(trn_train_run(m, d, &o, ep, &err), ENG_EINVAL);
            assert_non_null(strstr(err.msg, "ratings"));
        }
        trn_model_free(m);
        world_free(&w);
        free(cfg);
    }
    test_rate(d->train, 5);
    for (int i = 0; i < n; i++) {
        if (!trains_with(all[i], "mse"))
            continue;
        void *cfg = config(all[i], kv);
        world_t w;
        trn_model_t *m = trn_model_new(all[i], cfg, world(&w, all[i], d->train, 4), 3, 2, &err);
        assert_non_null(m);
        if (trn_train_run(m, d, &o, ep, &err) < 0)
            fail_msg("%s: %s", all[i]->kind, err.msg);
        if (!(ep[4].loss < 0.5 * ep[0].loss))
            fail_msg("%s: mse %g after 5 epochs, %g after 1", all[i]->kind, ep[4].loss, ep[0].loss);
        trn_model_free(m);
        world_free(&w);
        free(cfg);
    }
    trn_data_free(d);
}

/* A kind that needs side data the run lacks is refused, naming what is missing. */
static void test_missing_input(void **state)
{
    (void)state;
    trn_model_ops_t kg_kind = *trn_model_find("mf");
    kg_kind.needs = TRN_NEEDS_KG;
    eng_csr_t *train = test_random_train(9, 8, 3, 31);
    trn_inputs_t in = {.train = train};
    void *cfg = config(&kg_kind, NULL);
    eng_error_t err = {0};
    assert_null(trn_model_new(&kg_kind, cfg, &in, 1, 1, &err));
    assert_int_equal(err.code, ENG_EINVAL);
    assert_string_equal(err.msg, "model mf needs a knowledge graph");
    free(cfg);
    eng_csr_free(train);
}

/* Data with a user (u_new) and an item (i_new) that only the test file has. */
static trn_data_t *data_with_test_only_ids(const char *dir)
{
    char train[512], test[512];
    snprintf(train, sizeof train, "%s/train.csv", dir);
    snprintf(test, sizeof test, "%s/test.csv", dir);
    FILE *f = fopen(train, "w");
    assert_non_null(f);
    eng_rng_t r;
    eng_rng_seed(&r, 5, 0);
    for (int u = 0; u < 40; u++)
        for (int j = 0; j < 6; j++)
            fprintf(f, "u%d,i%u\n", u, (unsigned)eng_rng_below(&r, 30));
    fclose(f);
    f = fopen(test, "w");
    assert_non_null(f);
    fprintf(f, "u1,i_new\nu_new,i3\nu2,i4\n");
    fclose(f);
    trn_data_opts_t o = {.train_path = train, .test_path = test};
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    if (trn_data_load(&o, &d, &err) < 0)
        fail_msg("%s", err.msg);
    return d;
}

/* Tensor name of the loaded version s holds data [rows x cols] of the model trained on d, with
 * only the trained rows when rows_of says whose rows they are, in the version's order. */
static void check_published(const trn_model_ops_t *ops, const sto_model_t *s, const trn_data_t *d,
                            const char *name, const void *data, int64_t rows, int64_t cols,
                            trn_rows_t rows_of, sto_dtype_t dtype)
{
    const sto_tensor_t *t = sto_model_tensor(s, name);
    if (!t)
        fail_msg("%s: no tensor %s", ops->kind, name);
    assert_int_equal(t->dtype, dtype);
    const size_t es = sto_dtype_size(dtype);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], cols);
    const eng_idmap_t *ids = rows_of == TRN_ROWS_USERS   ? s->users
                             : rows_of == TRN_ROWS_ITEMS ? s->items
                                                         : NULL;
    const eng_idmap_t *src = rows_of == TRN_ROWS_USERS ? d->users : d->items;
    assert_int_equal(t->shape[0], ids ? eng_idmap_size(ids) : rows);
    for (int64_t r = 0; r < t->shape[0]; r++) {
        int64_t from = r;
        if (ids) {
            const char *id = eng_idmap_name(ids, (int32_t)r);
            from = eng_idmap_find(src, id, strlen(id));
        }
        assert_memory_equal((const char *)t->data + r * cols * es,
                            (const char *)data + from * cols * es, (size_t)cols * es);
    }
}

static void test_publish_round_trip(void **state)
{
    (void)state;
    test_dir_t td;
    test_dir_new(&td, "models");
    const char *path = td.path;
    trn_data_t *d = data_with_test_only_ids(td.dir);
    assert_true(eng_idmap_find(d->users, "u_new", 5) >= 0); /* the data has them... */
    assert_true(eng_idmap_find(d->items, "i_new", 5) >= 0);
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    sto_db_t *db = NULL;
    eng_error_t err = {0};
    assert_int_equal(sto_open(path, STO_READWRITE | STO_CREATE, &db, &err), 0);
    for (int k = 0; k < n; k++) {
        const trn_model_ops_t *ops = all[k];
        if (ops->needs & TRN_NEEDS_KG_ONLY)
            continue; /* test_kg_only_publish */
        world_t w;
        trn_model_t *m = trained(ops, d, world(&w, ops, d->train, 6), 2);
        int64_t version = 0;
        trn_publish_opts_t po = {.name = ops->kind, .params_json = "{}", .metrics_json = "{}"};
        if (trn_publish(db, m, d, &po, &version, &err) < 0)
            fail_msg("%s: publish: %s", ops->kind, err.msg);
        sto_model_t *s = NULL;
        if (sto_load(db, ops->kind, version, NULL, &s, &err) < 0)
            fail_msg("%s: load: %s", ops->kind, err.msg);
        /* ...the version does not */
        assert_int_equal(eng_idmap_find(s->users, "u_new", 5), -1);
        assert_int_equal(eng_idmap_find(s->items, "i_new", 5), -1);
        assert_int_equal(s->info.n_users, d->n_users - 1);
        assert_int_equal(s->info.n_items, d->n_items - 1);
        assert_string_equal(s->info.kind, ops->kind);
        float *uv, *iv;
        assert_int_equal(trn_model_vectors(m, &uv, &iv), 0);
        const int dim = s->info.dim;
        assert_int_equal(dim, ops->vec_dim(m->cfg));
        trn_view_t views[TRN_MAX_VIEWS];
        int nv = ops->views(m, views);
        assert_true(nv >= 1);
        for (int32_t u = 0; u < s->info.n_users; u++) {
            const char *id = eng_idmap_name(s->users, u);
            int32_t du = eng_idmap_find(d->users, id, strlen(id));
            assert_true(du >= 0);
            assert_memory_equal(s->user_vecs + (size_t)u * dim, uv + (size_t)du * dim,
                                (size_t)dim * sizeof(float));
            /* the same items seen, under the version's item indices, sorted */
            int64_t b = s->seen_ptr[u], e = s->seen_ptr[u + 1];
            assert_int_equal(e - b, d->train->ptr[du + 1] - d->train->ptr[du]);
            for (int64_t q = b; q < e; q++) {
                const char *it = eng_idmap_name(s->items, s->seen_idx[q]);
                int32_t di = eng_idmap_find(d->items, it, strlen(it));
                assert_true(eng_csr_has(d->train, du, di));
                assert_true(q == b || s->seen_idx[q] > s->seen_idx[q - 1]);
            }
        }
        for (int32_t i = 0; i < s->info.n_items; i++) {
            const char *id = eng_idmap_name(s->items, i);
            int32_t di = eng_idmap_find(d->items, id, strlen(id));
            assert_memory_equal(s->item_vecs + (size_t)i * dim, iv + (size_t)di * dim,
                                (size_t)dim * sizeof(float));
        }
        /* every view as param, adam_m and adam_v, and the kind's extras, rows as the vectors' */
        const char *prefix[3] = {"param", "adam_m", "adam_v"};
        const float *block[3] = {m->params, m->adam_m, m->adam_v};
        for (int p = 0; p < 3; p++)
            for (int v = 0; v < nv; v++) {
                char name[96];
                snprintf(name, sizeof name, "%s.%s", prefix[p], views[v].name);
                check_published(ops, s, d, name, block[p] + views[v].offset, views[v].rows,
                                views[v].cols, views[v].rows_of, STO_F32);
            }
        trn_extra_t extras[TRN_MAX_VIEWS];
        int ne = ops->extras ? ops->extras(m, extras) : 0;
        assert_true(ne >= 0);
        for (int x = 0; x < ne; x++)
            check_published(ops, s, d, extras[x].name, extras[x].data, extras[x].rows,
                            extras[x].cols, extras[x].rows_of,
                            extras[x].dtype ? extras[x].dtype : STO_F32);
        const sto_tensor_t *step = sto_model_tensor(s, "adam.step");
        assert_non_null(step);
        assert_int_equal(*(const int64_t *)step->data, m->adam.step);
        free(uv);
        free(iv);
        sto_model_free(s);
        trn_model_free(m);
        world_free(&w);
    }
    sto_close(db);
    trn_data_free(d);
    assert_int_equal(test_dir_remove(&td), 0);
}

/* The inductive function, given a trained user's items and layer-0 feature, reproduces that
 * user's published vector; without the feature (the mean of its items') it is still a unit
 * vector; bad input is refused; and a fan-out list not one per layer is refused at build. */
static void test_graphsage_fold_in(void **state)
{
    (void)state;
    const trn_model_ops_t *ops = trn_model_find("graphsage");
    trn_data_t *d = small_data();
    trn_inputs_t in = {.train = d->train};
    const char *aggs[] = {"mean", "max", "pool", "lstm"};
    for (int a = 0; a < 4; a++) {
        const char *kv[] = {"dim", "16", "batch", "256", "aggregator", aggs[a], NULL};
        void *cfg = config(ops, kv);
        eng_error_t err = {0};
        trn_model_t *m = trn_model_new(ops, cfg, &in, 7, 2, &err);
        assert_non_null(m);
        trn_epoch_t ep[1];
        trn_train_opts_t o = {.epochs = 1, .nk = 1, .ks = {20}};
        assert_int_equal(trn_train_run(m, d, &o, ep, &err), 0);
        float *uv, *iv;
        assert_int_equal(trn_model_vectors(m, &uv, &iv), 0);
        trn_extra_t x[TRN_MAX_VIEWS];
        assert_int_equal(ops->extras(m, x), 1);
        assert_string_equal(x[0].name, "sage.item_layers");
        const int dim = ops->vec_dim(m->cfg);
        float out[16];
        for (int32_t u = 0; u < m->n_users; u += 37) {
            const int32_t *items = d->train->idx + d->train->ptr[u];
            const int n = (int)(d->train->ptr[u + 1] - d->train->ptr[u]);
            assert_int_equal(
                trn_sage_fold_in(m, x[0].data, items, n, m->params + (size_t)u * dim, out), 0);
            for (int j = 0; j < dim; j++)
                if (fabsf(out[j] - uv[(size_t)u * dim + j]) > 1e-5f)
                    fail_msg("%s user %d [%d]: fold-in %g, model %g", aggs[a], u, j, out[j],
                             uv[(size_t)u * dim + j]);
            assert_int_equal(trn_sage_fold_in(m, x[0].data, items, n, NULL, out), 0);
            double ss = 0;
            for (int j = 0; j < dim; j++)
                ss += (double)out[j] * out[j];
            assert_true(fabs(ss - 1.0) < 1e-4);
        }
        const int32_t bad = m->n_items;
        assert_int_equal(trn_sage_fold_in(m, x[0].data, &bad, 1, NULL, out), ENG_EINVAL);
        free(uv);
        free(iv);
        trn_model_free(m);
        free(cfg);
    }
    const char *kv[] = {"layers", "3", NULL};
    void *cfg = config(ops, kv);
    eng_error_t err = {0};
    assert_null(trn_model_new(ops, cfg, &in, 7, 1, &err));
    assert_non_null(strstr(err.msg, "--fanout has 2 values"));
    free(cfg);
    trn_model_t *mf = trained(trn_model_find("mf"), d, &in, 1);
    float out[16];
    assert_int_equal(trn_sage_fold_in(mf, NULL, NULL, 0, NULL, out), ENG_EINVAL);
    trn_model_free(mf);
    trn_data_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparam_tables),     cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_own_sampler),
        cmocka_unit_test(test_mse_training),      cmocka_unit_test(test_publish_round_trip),
        cmocka_unit_test(test_hparam_list),       cmocka_unit_test(test_graphsage_variants),
        cmocka_unit_test(test_graphsage_fold_in), cmocka_unit_test(test_missing_input),
        cmocka_unit_test(test_transe_variants),   cmocka_unit_test(test_kgcn_variants),
        cmocka_unit_test(test_kgat_phases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
