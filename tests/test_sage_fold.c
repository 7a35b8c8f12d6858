/* GraphSAGE's fold-in is one function for the trainer and the server (engine/sage.h): for every
 * aggregator, a trained model published to a store and loaded as the server loads it (the
 * tensors graphsage's row of server/kinds.c lists, its prepare) folds a new user in to the same
 * bits as the trainer's trn_sage_fold_in on the model in memory, for the same items in the same
 * (ascending) order. A version whose params do not name its aggregator is served without
 * fold-in. tests/test_models_served.py holds the HTTP answer to `gnnrec recommend --items`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/rng.h"
#include "engine/sage.h"
#include "server/registry.h"
#include "storage/store.h"
#include "trainer/data.h"
#include "trainer/graphsage.h"
#include "trainer/model.h"
#include "trainer/publish.h"
#include "trainer/train.h"
#include "tests/testdata.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const aggs[] = {"mean", "max", "pool", "lstm"};

/* Trains graphsage with aggregator agg (dim 16, 2 epochs) on d. */
static trn_model_t *train_sage(const trn_data_t *d, const trn_inputs_t *in, const char *agg,
                               char **params_json)
{
    const trn_model_ops_t *ops = trn_model_find("graphsage");
    void *cfg = malloc(ops->config_size);
    assert_non_null(cfg);
    trn_hp_defaults(ops->hparams, ops->n_hparams, cfg);
    const char *kv[] = {"dim", "16", "batch", "256", "aggregator", agg, NULL};
    for (int k = 0; kv[k]; k += 2)
        assert_int_equal(
            trn_hp_parse(trn_hp_find(ops->hparams, ops->n_hparams, kv[k]), cfg, kv[k + 1], NULL),
            0);
    json_t *p = json_object();
    assert_int_equal(trn_hp_to_json(ops->hparams, ops->n_hparams, cfg, p), 0);
    *params_json = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    eng_error_t err = {0};
    trn_model_t *m = trn_model_new(ops, cfg, in, 11, 2, &err);
    free(cfg);
    assert_non_null(m);
    trn_epoch_t ep[2];
    trn_train_opts_t o = {.epochs = 2, .nk = 1, .ks = {20}};
    assert_int_equal(trn_train_run(m, d, &o, ep, &err), 0);
    return m;
}

/* The version `version` of name, loaded as the server loads it. */
static srv_version_t *load_served(sto_db_t *db, const char *name, int64_t version)
{
    eng_error_t err = {0};
    sto_model_t *s = NULL;
    if (sto_load(db, name, version, srv_kind_find("graphsage")->tensors, &s, &err) < 0)
        fail_msg("%s: load: %s", name, err.msg);
    srv_version_t *v = srv_version_new(s, NULL, &err);
    assert_non_null(v);
    return v;
}

static void test_server_equals_trainer(void **state)
{
    (void)state;
    test_dir_t td;
    test_dir_new(&td, "sagefold");
    const char *path = td.path;
    trn_synth_opts_t so = trn_synth_defaults();
    so.n_users = 300;
    so.n_items = 200;
    so.per_user = 12;
    trn_data_t *d = NULL;
    assert_int_equal(trn_data_synthetic(&so, &d, NULL), 0);
    trn_inputs_t in = {.train = d->train};
    sto_db_t *db = NULL;
    eng_error_t err = {0};
    assert_int_equal(sto_open(path, STO_READWRITE | STO_CREATE, &db, &err), 0);
    for (int a = 0; a < 4; a++) {
        char *params = NULL, name[32];
        trn_model_t *m = train_sage(d, &in, aggs[a], &params);
        snprintf(name, sizeof name, "graphsage-%s", aggs[a]);
        int64_t version = 0;
        trn_publish_opts_t po = {.name = name, .params_json = params, .metrics_json = "{}"};
        if (trn_publish(db, m, d, &po, &version, &err) < 0)
            fail_msg("%s: publish: %s", name, err.msg);
        srv_version_t *v = load_served(db, name, version);
        assert_true(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN));
        const sto_model_t *s = v->model;
        const int dim = s->info.dim;
        trn_extra_t x[TRN_MAX_VIEWS];
        assert_int_equal(m->ops->extras(m, x), 1);
        /* item sets: each 7th trained user's items, and random draws of 1..40 items */
        eng_rng_t rng;
        eng_rng_seed(&rng, 5, 0);
        int32_t served[64], trainer[64];
        float q[16], out[16];
        for (int t = 0; t < 60; t++) {
            size_t n = 0;
            if (t < 30) {
                const int32_t u = (int32_t)(t * 7 % s->info.n_users);
                for (int64_t k = s->seen_ptr[u]; k < s->seen_ptr[u + 1] && n < 64; k++)
                    served[n++] = s->seen_idx[k];
            } else {
                const int want = 1 + (int)eng_rng_below(&rng, 40);
                for (int k = 0; k < want; k++)
                    served[n++] = (int32_t)eng_rng_below(&rng, (uint32_t)s->info.n_items);
                n = eng_sort_unique_i32(served, n);
            }
            for (size_t j = 0; j < n; j++) { /* the same items under the trainer's indices */
                const char *id = eng_idmap_name(s->items, served[j]);
                trainer[j] = eng_idmap_find(d->items, id, strlen(id));
                assert_true(trainer[j] >= 0);
            }
            v->kind->fold_in(v, served, n, q);
            assert_int_equal(trn_sage_fold_in(m, x[0].data, trainer, (int)n, NULL, out), 0);
            if (memcmp(q, out, (size_t)dim * sizeof *q) != 0)
                fail_msg("%s, item set %d: the server's fold-in differs from the trainer's "
                         "([0]: %.9g, %.9g)",
                         name, t, q[0], out[0]);
        }
        srv_version_unref(v);
        /* the same model published without its hyper-parameters: no aggregator, no fold-in */
        po.params_json = "{}";
        assert_int_equal(trn_publish(db, m, d, &po, &version, &err), 0);
        v = load_served(db, name, version);
        assert_false(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN));
        assert_true(srv_kind_can(v->kind, SRV_ABILITY_FOLD_IN));
        srv_version_unref(v);
        free(params);
        trn_model_free(m);
    }
    sto_close(db);
    trn_data_free(d);
    assert_int_equal(test_dir_remove(&td), 0);
}

/* The aggregator names the server reads from a version's params are the trainer's choices. */
static void test_aggregator_names(void **state)
{
    (void)state;
    for (int a = 0; a < 4; a++)
        assert_int_equal(eng_sage_agg_find(aggs[a]), a);
    assert_int_equal(eng_sage_agg_find("gcn"), -1);
    assert_int_equal(eng_sage_agg_find(NULL), -1);
    const trn_model_ops_t *ops = trn_model_find("graphsage");
    const trn_hparam_t *h = trn_hp_find(ops->hparams, ops->n_hparams, "aggregator");
    assert_non_null(h);
    assert_string_equal(h->choices, ENG_SAGE_AGGREGATORS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aggregator_names),
        cmocka_unit_test(test_server_equals_trainer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
