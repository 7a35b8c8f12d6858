/* The knowledge-graph kinds' shared parts (trainer/kg.h): the held-out split, the triple index
 * and filtered link prediction, against hand-computed ranks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testdata.h"
#include "trainer/kg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* About the asked fraction held out, every entity of a held-out triple still in a training one,
 * the two lists a partition of the triples, and the same split for the same seed. */
static void test_split(void **state)
{
    (void)state;
    test_kg_t t;
    test_random_kg(&t, 200, 3);
    int32_t *train, *test, *train2, *test2;
    int64_t n_train, n_test, n_train2, n_test2;
    assert_int_equal(trn_kg_split(&t.kg, 0.2, 7, &train, &n_train, &test, &n_test), 0);
    assert_int_equal(n_train + n_test, t.kg.n);
    assert_true(n_test > t.kg.n / 10 && n_test <= t.kg.n / 5 + 1);
    uint8_t *seen = calloc((size_t)t.kg.n, 1), *in_train = calloc((size_t)t.kg.n_entities, 1);
    for (int64_t k = 0; k < n_train; k++) {
        assert_true(k == 0 || train[k] > train[k - 1]);
        seen[train[k]]++;
        in_train[t.kg.head[train[k]]] = in_train[t.kg.tail[train[k]]] = 1;
    }
    for (int64_t k = 0; k < n_test; k++) {
        assert_true(k == 0 || test[k] > test[k - 1]);
        seen[test[k]]++;
        assert_true(in_train[t.kg.head[test[k]]] && in_train[t.kg.tail[test[k]]]);
    }
    for (int64_t k = 0; k < t.kg.n; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(trn_kg_split(&t.kg, 0.2, 7, &train2, &n_train2, &test2, &n_test2), 0);
    assert_int_equal(n_test2, n_test);
    assert_memory_equal(test2, test, (size_t)n_test * sizeof *test);
    free(train2), free(test2), free(train), free(test), free(seen), free(in_train);
    test_kg_free(&t);
}

static const int32_t H[] = {0, 0, 3, 0}, R[] = {0, 0, 1, 0}, T[] = {1, 2, 4, 1};

/* Scores fixed per entity, the same for every query. */
static void fixed_scores(const void *ctx, int32_t h, int32_t r, int32_t t, int tail, float *out)
{
    (void)h, (void)r, (void)t, (void)tail;
    memcpy(out, ctx, 5 * sizeof *out);
}

static void test_index_and_link_eval(void **state)
{
    (void)state;
    trn_triples_t kg = {4, H, R, T, 5, 2, NULL, NULL, NULL}; /* (0, 0, 1) twice */
    trn_kg_index_t ix;
    assert_int_equal(trn_kg_index_build(&ix, &kg), 0);
    assert_int_equal(ix.n, 3); /* the repeat once */
    assert_true(trn_kg_index_has(&ix, 0, 0, 2));
    assert_true(trn_kg_index_has(&ix, 3, 1, 4));
    assert_false(trn_kg_index_has(&ix, 0, 1, 2));
    assert_false(trn_kg_index_has(&ix, 2, 0, 0));
    /* test triple (0, 0, 1). Tail query: 1 scores 0.5; 2 scores above but (0, 0, 2) is true and
     * filtered; 3 ties: rank 1.5. Head query (?, 0, 1): 0 scores 0.1, four score above and none
     * is filtered: rank 5. */
    const float scores[5] = {0.1f, 0.5f, 0.9f, 0.5f, 0.2f};
    const int32_t test[1] = {0};
    trn_metrics_t m = {0};
    for (int threads = 1; threads <= 2; threads++) {
        assert_int_equal(trn_kg_link_eval(&kg, test, 1, &ix, fixed_scores, scores, threads, &m), 0);
        assert_true(m.has_link);
        assert_int_equal(m.link_queries, 2);
        assert_true(fabs(m.mrr - (1 / 1.5 + 1 / 5.0) / 2) <= 1e-12);
        assert_true(m.hits[0] == 0.0 && m.hits[1] == 0.5 && m.hits[2] == 1.0);
    }
    trn_kg_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_index_and_link_eval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
