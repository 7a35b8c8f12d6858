/* Tests of the server's model versions (server/registry.c) and kinds table (server/kinds.c),
 * without a server: the kind rows and the fallback for a kind this build does not know, what a
 * version keeps (its kind's row; the items in its indexes only), and who frees it: the thread
 * dropping the last reference when it has no reaper, else its reaper's loop thread. */
#include "server/kinds.h"
#include "server/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

enum { N_USERS = 3, N_ITEMS = 70, DIM = 5 }; /* 70 items: two groups of panels, the last padded */

/* A model as sto_load would return it: kind as given, every vector component distinct. */
static sto_model_t *toy_model(const char *name, int64_t version, const char *kind)
{
    sto_model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->info = (sto_version_info_t){.name = strdup(name),
                                   .kind = strdup(kind),
                                   .created = strdup("2026-01-01T00:00:00Z"),
                                   .version = version,
                                   .n_users = N_USERS,
                                   .n_items = N_ITEMS,
                                   .dim = DIM,
                                   .params_json = strdup("{}"),
                                   .metrics_json = strdup("{}")};
    m->users = eng_idmap_new();
    m->items = eng_idmap_new();
    m->user_vecs = malloc(N_USERS * DIM * sizeof(float));
    m->item_vecs = malloc(N_ITEMS * DIM * sizeof(float));
    m->seen_ptr = calloc(N_USERS + 1, sizeof(int64_t));
    m->seen_idx = malloc(sizeof(int32_t));
    assert_true(m->info.name && m->info.kind && m->users && m->items && m->user_vecs &&
                m->item_vecs && m->seen_ptr && m->seen_idx);
    char id[16];
    for (int u = 0; u < N_USERS; u++) {
        snprintf(id, sizeof id, "u%d", u);
        assert_int_equal(eng_idmap_intern(m->users, id, strlen(id)), u);
    }
    for (int i = 0; i < N_ITEMS; i++) {
        snprintf(id, sizeof id, "i%d", i);
        assert_int_equal(eng_idmap_intern(m->items, id, strlen(id)), i);
    }
    for (int k = 0; k < N_USERS * DIM; k++)
        m->user_vecs[k] = 0.25f * (float)k - 1.0f;
    for (int k = 0; k < N_ITEMS * DIM; k++)
        m->item_vecs[k] = 0.5f * (float)(k % 17) - 0.125f * (float)k;
    return m;
}

static void test_kinds_table(void **state)
{
    (void)state;
    for (const char *const *name = (const char *const[]){"lightgcn", "mf", NULL}; *name; name++) {
        const srv_kind_t *k = srv_kind_find(*name);
        assert_non_null(k->name);
        assert_string_equal(k->name, *name);
        /* a row with an ability has what doing it takes */
        if (srv_kind_can(k, SRV_ABILITY_FOLD_IN))
            assert_non_null(k->fold_in);
        if (k->tensors[0])
            assert_true(k->prepare && k->release);
        assert_false(srv_kind_can(k, SRV_ABILITY_EXPLAIN));
    }
    /* kgat explains, from its published graph */
    const srv_kind_t *kgat = srv_kind_find("kgat");
    assert_true(srv_kind_can(kgat, SRV_ABILITY_EXPLAIN) && kgat->explain && kgat->prepare);
    assert_false(srv_kind_can(kgat, SRV_ABILITY_FOLD_IN));
    /* lightgcn folds in with its published item layers; mf cannot fold in */
    assert_true(srv_kind_can(srv_kind_find("lightgcn"), SRV_ABILITY_FOLD_IN));
    assert_string_equal(srv_kind_find("lightgcn")->tensors[0], "lgn.item_layers");
    assert_false(srv_kind_can(srv_kind_find("mf"), SRV_ABILITY_FOLD_IN));
    assert_null(srv_kind_find("mf")->tensors[0]);
    for (const char *const *name = (const char *const[]){"kgnn", "LightGCN", "", NULL}; *name;
         name++) {
        const srv_kind_t *k = srv_kind_find(*name);
        assert_null(k->name);
        assert_int_equal(k->abilities, 0);
        assert_null(k->tensors[0]);
    }
    assert_ptr_equal(srv_kind_find(NULL), srv_kind_find("kgnn"));
    assert_string_equal(srv_ability_name(SRV_ABILITY_FOLD_IN), "fold-in");
    assert_string_equal(srv_ability_name(SRV_ABILITY_EXPLAIN), "explain");
    assert_string_equal(srv_ability_refusal(SRV_ABILITY_FOLD_IN), "fold in new users");
    assert_string_equal(srv_ability_refusal(SRV_ABILITY_EXPLAIN), "explain recommendations");
}

/* A version points at its kind's row; an unknown kind gets the fallback row. */
static void test_version_kind(void **state)
{
    (void)state;
    eng_error_t err = {0};
    srv_version_t *v = srv_version_new(toy_model("a", 1, "lightgcn"), NULL, &err);
    assert_non_null(v);
    assert_ptr_equal(v->kind, srv_kind_find("lightgcn"));
    /* published without lgn.item_layers (an older trainer): served, but not folding in */
    assert_false(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN));
    assert_null(v->kind_data);
    srv_version_t *w = srv_version_new(toy_model("b", 2, "from-the-future"), NULL, &err);
    assert_non_null(w);
    assert_null(w->kind->name);
    assert_string_equal(w->model->info.kind, "from-the-future");
    assert_int_equal(srv_versions_alive(), 2);
    srv_version_unref(v);
    srv_version_unref(w);
    assert_int_equal(srv_versions_alive(), 0);
}

/* The raw item matrix is freed once indexed; the indexes give every item back exactly. */
static void test_version_frees_item_matrix(void **state)
{
    (void)state;
    sto_model_t *m = toy_model("a", 1, "mf");
    float *copy = malloc(N_ITEMS * DIM * sizeof(float));
    assert_non_null(copy);
    memcpy(copy, m->item_vecs, N_ITEMS * DIM * sizeof(float));
    eng_error_t err = {0};
    srv_version_t *v = srv_version_new(m, NULL, &err);
    assert_non_null(v);
    assert_null(v->model->item_vecs);
    float got[DIM];
    for (int i = 0; i < N_ITEMS; i++) {
        assert_int_equal(eng_index_vector(v->dot, i, got), 0);
        assert_memory_equal(got, copy + i * DIM, sizeof got);
        float s, want = 0;
        const float *q = v->model->user_vecs + DIM;
        assert_int_equal(eng_index_scores(v->dot, q, &(int32_t){i}, 1, &s), 0);
        for (int d = 0; d < DIM; d++)
            want += q[d] * copy[i * DIM + d];
        assert_true(s - want < 1e-4f && want - s < 1e-4f);
    }
    free(copy);
    srv_version_unref(v); /* sto_model_free with item_vecs NULL */
    assert_int_equal(srv_versions_alive(), 0);
}

typedef struct {
    int calls;
    pthread_t thread;
    char name[80];
    int64_t version;
    int alive; /* srv_versions_alive() when reaped was called */
} reaped_t;

static void on_reaped(void *arg, const char *name, int64_t version)
{
    reaped_t *got = arg;
    got->calls++;
    got->thread = pthread_self();
    snprintf(got->name, sizeof got->name, "%s", name);
    got->version = version;
    got->alive = srv_versions_alive();
}

static void *drop(void *v)
{
    srv_version_unref(v);
    return NULL;
}

/* The last reference dropped on another thread (as an HTTP thread finishing a request would):
 * the version stays alive, queued, until the loop thread frees it and reports it. Released after
 * srv_reaper_close, it waits for srv_reaper_free. */
static void test_reaper_frees_on_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    reaped_t got = {0};
    srv_reaper_t *rp = srv_reaper_new(&loop, on_reaped, &got);
    assert_non_null(rp);
    eng_error_t err = {0};
    srv_version_t *v = srv_version_new(toy_model("held", 7, "lightgcn"), rp, &err);
    assert_non_null(v);
    srv_version_ref(v);
    srv_version_unref(v);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drop, v), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(got.calls, 0);
    assert_int_equal(srv_versions_alive(), 1); /* the loader's drain check still counts it */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(got.calls, 1);
    assert_true(pthread_equal(got.thread, pthread_self()));
    assert_string_equal(got.name, "held");
    assert_int_equal(got.version, 7);
    assert_int_equal(got.alive, 0); /* freed before it is reported */

    srv_version_t *w = srv_version_new(toy_model("late", 8, "mf"), rp, &err);
    assert_non_null(w);
    srv_reaper_close(rp);
    srv_version_unref(w);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* closes the handle, nothing else */
    assert_int_equal(got.calls, 1);
    assert_int_equal(srv_versions_alive(), 1);
    srv_reaper_free(rp);
    assert_int_equal(srv_versions_alive(), 0);
    assert_int_equal(got.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_table),
        cmocka_unit_test(test_version_kind),
        cmocka_unit_test(test_version_frees_item_matrix),
        cmocka_unit_test(test_reaper_frees_on_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
