/* The server's fold-in (server/kinds.c, server/fold_*.c) against the trainer's own forward, for
 * the kinds whose new user has a zero layer-0 embedding: lightgcn, gcn, ngcf and gat.
 *
 * The server computes a new user's vector from its items' trained per-layer representations,
 * the user joining no item's neighbourhood. The trainer's forward computes the same for a trained
 * user u whose layer-0 embedding is zero, if we take the items' representations as that forward
 * gives them: u is among their neighbours there, but with whatever u contributes to them already
 * in the published tensors, u's own layers are exactly the fold-in rule applied to its items.
 * So, per kind and settings: train a small model, zero u's layer-0 row, take u's vector from
 * trn_model_vectors (the forward, dropout off), publish (the extras come from the same forward),
 * load with the kind's tensors, remove u from the loaded seen lists (the server counts an item's
 * degree over the seen lists and adds the new user's edge: without u, that is the degree the
 * trained graph has), build the served version, fold u in from its items, and compare.
 *
 * Pass criterion: every element within TOL_ABS + TOL_REL * max(|fold-in|, |forward|). Both
 * sides are float32 and differ only in summation order (OpenBLAS sgemm and sparse kernels in the
 * trainer, one-row loops in the server): measured differences are below 2e-7 at these sizes. A
 * wrong rule is off by far more; each of these was tried and fails: gcn without the self-loop
 * term, or with either degree not counting the new user's edge or self-loop; ngcf without b_bi,
 * with the bi-interaction not multiplied by E_l(u), or the item degree without the new user;
 * gat without the self-loop in the softmax, without ELU between layers, or with slope 0.1 for
 * 0.2; lightgcn's degree without the new user's edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "server/kinds.h"
#include "server/registry.h"
#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/model.h"
#include "trainer/publish.h"
#include "trainer/train.h"
#include "tests/testdata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL_ABS 2e-6
#define TOL_REL 2e-5

/* A config for ops with its defaults, then each name=value pair applied. Free with free. */
static void *config(const trn_model_ops_t *ops, const char *const *kv)
{
    void *cfg = malloc(ops->config_size);
    assert_non_null(cfg);
    trn_hp_defaults(ops->hparams, ops->n_hparams, cfg);
    for (; kv && kv[0]; kv += 2) {
        const trn_hparam_t *h = trn_hp_find(ops->hparams, ops->n_hparams, kv[0]);
        assert_non_null(h);
        assert_int_equal(trn_hp_parse(h, cfg, kv[1], NULL), 0);
    }
    return cfg;
}

static trn_data_t *small_data(void)
{
    trn_synth_opts_t so = trn_synth_defaults();
    so.n_users = 120;
    so.n_items = 80;
    so.per_user = 8;
    trn_data_t *d = NULL;
    assert_int_equal(trn_data_synthetic(&so, &d, NULL), 0);
    return d;
}

/* Removes user u's row from m's seen lists (its list becomes empty). */
static void drop_seen(sto_model_t *m, int32_t u)
{
    const int64_t b = m->seen_ptr[u], e = m->seen_ptr[u + 1], nnz = m->seen_ptr[m->info.n_users];
    memmove(m->seen_idx + b, m->seen_idx + e, (size_t)(nnz - e) * sizeof *m->seen_idx);
    for (int32_t r = u + 1; r <= m->info.n_users; r++)
        m->seen_ptr[r] -= e - b;
}

/* The served version of m's current state, as the server builds it, with user `user` (an index
 * of d) taken out of its seen lists. */
static srv_version_t *served(sto_db_t *db, trn_model_t *m, const trn_data_t *d, int32_t user,
                             const char *const *tensors)
{
    eng_error_t err = {0};
    int64_t version = 0;
    trn_publish_opts_t po = {.name = m->ops->kind, .params_json = "{}", .metrics_json = "{}"};
    if (trn_publish(db, m, d, &po, &version, &err) < 0)
        fail_msg("%s: publish: %s", m->ops->kind, err.msg);
    sto_model_t *s = NULL;
    if (sto_load(db, m->ops->kind, version, tensors, &s, &err) < 0)
        fail_msg("%s: load: %s", m->ops->kind, err.msg);
    const char *id = eng_idmap_name(d->users, user);
    int32_t su = eng_idmap_find(s->users, id, strlen(id));
    assert_true(su >= 0);
    drop_seen(s, su);
    srv_version_t *v = srv_version_new(s, NULL, &err);
    if (!v)
        fail_msg("%s: version: %s", m->ops->kind, err.msg);
    return v;
}

/* Checks the fold-in of user u of d against the trainer's vector for u, after zeroing u's
 * layer-0 embedding in m. Returns the largest difference. */
static double check_user(sto_db_t *db, trn_model_t *m, const trn_data_t *d, int32_t u,
                         const char *what)
{
    trn_view_t views[TRN_MAX_VIEWS];
    int nv = m->ops->views(m, views), found = 0;
    for (int k = 0; k < nv; k++)
        if (strcmp(views[k].name, "user_emb") == 0) {
            memset(m->params + views[k].offset + (size_t)u * views[k].cols, 0,
                   (size_t)views[k].cols * sizeof(float));
            found = 1;
        }
    assert_true(found);
    float *uv, *iv;
    assert_int_equal(trn_model_vectors(m, &uv, &iv), 0);
    const int dim = m->ops->vec_dim(m->cfg);
    const float *want = uv + (size_t)u * dim;

    srv_version_t *v = served(db, m, d, u, srv_kind_find(m->ops->kind)->tensors);
    if (!(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN)))
        fail_msg("%s: the served version cannot fold in", what);
    const int64_t b = d->train->ptr[u], e = d->train->ptr[u + 1];
    const size_t n = (size_t)(e - b);
    int32_t *items = malloc(n * sizeof *items);
    assert_non_null(items);
    for (size_t j = 0; j < n; j++) { /* the version's indices keep the trainer's order */
        const char *id = eng_idmap_name(d->items, d->train->idx[b + (int64_t)j]);
        items[j] = eng_idmap_find(v->model->items, id, strlen(id));
        assert_true(items[j] >= 0 && (j == 0 || items[j] > items[j - 1]));
    }
    float *q = malloc((dim + v->fold_scratch + v->fold_scratch_per_item * n) * sizeof *q);
    assert_non_null(q);
    v->kind->fold_in(v, items, n, q);
    double worst = 0, norm = 0;
    for (int k = 0; k < dim; k++) {
        const double diff = fabs((double)q[k] - want[k]);
        if (diff > TOL_ABS + TOL_REL * fmax(fabs(q[k]), fabs(want[k])))
            fail_msg("%s, user %d (%zu items), [%d]: fold-in %.9g, trainer %.9g", what, u, n, k,
                     q[k], want[k]);
        worst = fmax(worst, diff);
        norm += (double)want[k] * want[k];
    }
    if (norm < 1e-6) /* a zero vector would match a fold-in that does nothing */
        fail_msg("%s, user %d: the trainer's vector is zero", what, u);
    free(q);
    free(items);
    srv_version_unref(v);
    free(uv);
    free(iv);
    return worst;
}

static void test_fold_in_equals_forward(void **state)
{
    (void)state;
    static const struct {
        const char *kind;
        const char *kv[8];
    } cases[] = {
        {"lightgcn", {"layers", "3"}},
        {"gcn", {"layers", "1"}},
        {"gcn", {"layers", "3"}},
        {"ngcf", {"layers", "1"}},
        {"ngcf", {"layers", "3", "node-dropout", "0.2"}},
        {"gat", {"layers", "1", "heads", "1"}},
        {"gat", {"layers", "2", "heads", "3"}},
        {"gat", {"layers", "3", "heads", "2"}},
    };
    test_dir_t td;
    test_dir_new(&td, "foldin");
    const char *path = td.path;
    sto_db_t *db = NULL;
    eng_error_t err = {0};
    assert_int_equal(sto_open(path, STO_READWRITE | STO_CREATE, &db, &err), 0);
    trn_data_t *d = small_data();
    trn_inputs_t in = {.train = d->train};
    /* users with the fewest and the most items, and one between */
    int32_t few = -1, many = -1;
    for (int32_t u = 0; u < d->train->rows; u++) {
        const int64_t n = d->train->ptr[u + 1] - d->train->ptr[u];
        if (n > 0 && (few < 0 || n < d->train->ptr[few + 1] - d->train->ptr[few]))
            few = u;
        if (many < 0 || n > d->train->ptr[many + 1] - d->train->ptr[many])
            many = u;
    }
    int32_t mid = (few + many) / 2;
    while (d->train->ptr[mid + 1] == d->train->ptr[mid] || mid == few || mid == many)
        mid = (mid + 1) % d->train->rows;
    const int32_t users[] = {few, many, mid};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const trn_model_ops_t *ops = trn_model_find(cases[c].kind);
        assert_non_null(ops);
        const char *common[] = {"dim", "8", "batch", "128", "lr", "0.01", NULL};
        void *cfg = config(ops, common);
        for (const char *const *kv = cases[c].kv; kv[0]; kv += 2) {
            const trn_hparam_t *h = trn_hp_find(ops->hparams, ops->n_hparams, kv[0]);
            assert_non_null(h);
            assert_int_equal(trn_hp_parse(h, cfg, kv[1], NULL), 0);
        }
        trn_model_t *m = trn_model_new(ops, cfg, &in, 11, 2, &err);
        if (!m)
            fail_msg("%s: %s", ops->kind, err.msg);
        trn_epoch_t ep[2];
        trn_train_opts_t o = {.epochs = 2, .nk = 1, .ks = {20}};
        assert_int_equal(trn_train_run(m, d, &o, ep, &err), 0);
        char what[128];
        int w = snprintf(what, sizeof what, "%s", ops->kind);
        for (const char *const *kv = cases[c].kv; kv[0]; kv += 2)
            w += snprintf(what + w, sizeof what - (size_t)w, " --%s %s", kv[0], kv[1]);
        double worst = 0;
        /* zeroed one after another: the ones before stay zero, users of the graph like any */
        for (size_t k = 0; k < sizeof users / sizeof *users; k++)
            worst = fmax(worst, check_user(db, m, d, users[k], what));
        print_message("%s: largest difference %.3g\n", what, worst);
        trn_model_free(m);
        free(cfg);
    }
    trn_data_free(d);
    sto_close(db);
    assert_int_equal(test_dir_remove(&td), 0);
}

/* A version without the tensors its kind's fold-in needs (an older trainer's) is served without
 * the ability; the kinds with trained layers list what they load. */
static void test_without_tensors(void **state)
{
    (void)state;
    test_dir_t td;
    test_dir_new(&td, "foldin");
    const char *path = td.path;
    sto_db_t *db = NULL;
    eng_error_t err = {0};
    assert_int_equal(sto_open(path, STO_READWRITE | STO_CREATE, &db, &err), 0);
    trn_data_t *d = small_data();
    trn_inputs_t in = {.train = d->train};
    static const char *const none[] = {NULL};
    static const char *const weights_only[] = {"param.W1",     "param.W2",    "param.W1.h1",
                                               "param.a1.h1",  "param.W2.h1", "param.a2.h1",
                                               "param.W_gc_1", NULL};
    const char *kinds[] = {"lightgcn", "gcn", "ngcf", "gat"};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        const srv_kind_t *row = srv_kind_find(kinds[k]);
        assert_true(srv_kind_can(row, SRV_ABILITY_FOLD_IN));
        assert_non_null(row->tensors[0]);
        assert_true(row->prepare && row->release && row->fold_in);
        const trn_model_ops_t *ops = trn_model_find(kinds[k]);
        const char *kv[] = {"dim", "8", "layers", "2", NULL};
        void *cfg = config(ops, kv);
        trn_model_t *m = trn_model_new(ops, cfg, &in, 11, 1, &err);
        assert_non_null(m);
        for (int t = 0; t < 2; t++) {
            srv_version_t *v = served(db, m, d, 0, t ? weights_only : none);
            /* gcn's item layers are its vectors: its weights are all it needs */
            const int can = t == 1 && strcmp(kinds[k], "gcn") == 0;
            if (!!(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN)) != can)
                fail_msg("%s, %s: fold-in %s", kinds[k], t ? "some weights" : "no tensors",
                         can ? "off" : "on");
            srv_version_unref(v);
        }
        trn_model_free(m);
        free(cfg);
    }
    trn_data_free(d);
    sto_close(db);
    assert_int_equal(test_dir_remove(&td), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_in_equals_forward),
        cmocka_unit_test(test_without_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
