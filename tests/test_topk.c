/* eng_topk against a brute-force sort: random rows of many lengths and k, heavy ties, excluded
 * (-INFINITY, NaN) entries, and the edge cases (k = 0, k > n, n = 0, nothing eligible). Output
 * buffers are allocated at exactly min(k, n) entries so ASan catches any write past what the
 * contract promises. */
#include "engine/rng.h"
#include "engine/topk.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Best first: higher score, then lower index. */
static int cmp_best(const void *a, const void *b)
{
    const eng_scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The reference: every eligible entry, fully sorted. Returns the expected count and fills want
 * (room for n entries). */
static size_t brute_topk(const float *s, int32_t n, size_t k, eng_scored_t *want)
{
    size_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (!isnan(s[i]) && s[i] != -INFINITY)
            want[m++] = (eng_scored_t){i, s[i]};
    qsort(want, m, sizeof *want, cmp_best);
    return m < k ? m : k;
}

/* Runs eng_topk on s and checks it against the reference, entry by entry. */
static void check_row(const float *s, int32_t n, size_t k)
{
    size_t room = (size_t)n < k ? (size_t)n : k;
    eng_scored_t *got = malloc((room ? room : 1) * sizeof *got);
    eng_scored_t *want = malloc(((size_t)n ? (size_t)n : 1) * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    size_t c = eng_topk(s, n, k, got);
    size_t wc = brute_topk(s, n, k, want);
    if (c != wc)
        fail_msg("n=%d k=%zu: count %zu, want %zu", n, k, c, wc);
    for (size_t j = 0; j < c; j++)
        if (got[j].idx != want[j].idx || got[j].score != want[j].score)
            fail_msg("n=%d k=%zu pos %zu: got (%d, %g), want (%d, %g)", n, k, j, got[j].idx,
                     (double)got[j].score, want[j].idx, (double)want[j].score);
    free(got);
    free(want);
}

/* Kinds of random rows: each stresses a different path of the heap. */
enum { ROW_UNIFORM, ROW_TIES, ROW_EXCLUDED, ROW_ASCENDING, ROW_DESCENDING, ROW_CONSTANT, N_ROWS };

static void fill_row(float *s, int32_t n, int kind, eng_rng_t *r)
{
    for (int32_t i = 0; i < n; i++) {
        switch (kind) {
        case ROW_UNIFORM:
            s[i] = (float)eng_rng_normal(r);
            break;
        case ROW_TIES: /* few distinct values: tie-breaking decides most of the order */
            s[i] = (float)eng_rng_below(r, 4);
            break;
        case ROW_EXCLUDED: { /* a third excluded, some +inf, ties */
            uint32_t c = eng_rng_below(r, 12);
            s[i] = c < 2 ? -INFINITY : c < 4 ? NAN : c == 4 ? INFINITY : (float)eng_rng_below(r, 6);
            break;
        }
        case ROW_ASCENDING: /* every entry beats the heap's root: the most replacements */
            s[i] = (float)i;
            break;
        case ROW_DESCENDING: /* nothing after the fill enters */
            s[i] = (float)(n - i);
            break;
        case ROW_CONSTANT:
            s[i] = 1.5f;
            break;
        }
    }
}

static void test_random_rows(void **state)
{
    (void)state;
    static const int32_t ns[] = {1, 2, 3, 5, 15, 16, 17, 31, 32, 33, 100, 257, 1000, 4099};
    eng_rng_t r;
    eng_rng_seed(&r, 7, 0);
    float *s = malloc(4099 * sizeof *s);
    assert_non_null(s);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int32_t n = ns[a];
        size_t ks[] = {1, 2, 3, 7, 20, (size_t)n - 1, (size_t)n, (size_t)n + 1, (size_t)n + 40};
        for (int kind = 0; kind < N_ROWS; kind++)
            for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
                if (ks[b] == 0)
                    continue;
                for (int rep = 0; rep < 3; rep++) {
                    fill_row(s, n, kind, &r);
                    check_row(s, n, ks[b]);
                }
            }
    }
    free(s);
}

/* Many shapes at random, including the server's case (40,981 items, k = 20). */
static void test_random_shapes(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 11, 0);
    float *s = malloc(40981 * sizeof *s);
    assert_non_null(s);
    for (int rep = 0; rep < 400; rep++) {
        int32_t n = 1 + (int32_t)eng_rng_below(&r, 600);
        size_t k = 1 + eng_rng_below(&r, 80);
        fill_row(s, n, (int)eng_rng_below(&r, N_ROWS), &r);
        check_row(s, n, k);
    }
    for (int kind = 0; kind < N_ROWS; kind++) {
        fill_row(s, 40981, kind, &r);
        check_row(s, 40981, 20);
    }
    free(s);
}

/* A row fed to eng_topk_push in random pieces (some empty), then eng_topk_finish, gives exactly
 * what eng_topk gives on the whole row: the tiled evaluation relies on this. */
static void test_push_in_pieces(void **state)
{
    (void)state;
    eng_rng_t r;
    eng_rng_seed(&r, 13, 0);
    float *s = malloc(3000 * sizeof *s);
    eng_scored_t *whole = malloc(3000 * sizeof *whole), *heap = malloc(3000 * sizeof *heap);
    assert_non_null(s);
    assert_non_null(whole);
    assert_non_null(heap);
    for (int rep = 0; rep < 300; rep++) {
        int32_t n = 1 + (int32_t)eng_rng_below(&r, 3000);
        size_t k = 1 + eng_rng_below(&r, rep % 10 == 0 ? 3100 : 40);
        fill_row(s, n, (int)eng_rng_below(&r, N_ROWS), &r);
        size_t want = eng_topk(s, n, k, whole), len = 0;
        for (int32_t b = 0; b < n;) {
            int32_t w = (int32_t)eng_rng_below(&r, 300);
            if (w > n - b)
                w = n - b;
            len = eng_topk_push(s + b, w, b, k, heap, len);
            b += w;
        }
        eng_topk_finish(heap, len);
        assert_int_equal(len, want);
        for (size_t j = 0; j < len; j++) {
            assert_int_equal(heap[j].idx, whole[j].idx);
            assert_true(heap[j].score == whole[j].score);
        }
    }
    /* k = 0 keeps the heap empty; an empty piece changes nothing. */
    assert_int_equal(eng_topk_push(s, 10, 0, 0, heap, 0), 0);
    assert_int_equal(eng_topk_push(s, 0, 5, 3, heap, 2), 2);
    free(s);
    free(whole);
    free(heap);
}

static void test_edges(void **state)
{
    (void)state;
    float s[] = {3.0f, -INFINITY, NAN, 3.0f, -1.0f, INFINITY, 0.0f, -0.0f};
    eng_scored_t out[8], sentinel = {-7, 42.0f};

    /* k = 0 and n <= 0 return 0 and leave out alone. */
    out[0] = sentinel;
    assert_int_equal(eng_topk(s, 8, 0, out), 0);
    assert_int_equal(eng_topk(s, 0, 5, out), 0);
    assert_int_equal(eng_topk(NULL, 0, 5, out), 0);
    assert_int_equal(eng_topk(s, -3, 5, out), 0);
    assert_int_equal(out[0].idx, sentinel.idx);

    /* k > n: every eligible entry, best first; +inf counts, -inf and NaN do not; 0 and -0 tie. */
    size_t c = eng_topk(s, 8, 100, out);
    assert_int_equal(c, 6);
    int32_t want[] = {5, 0, 3, 6, 7, 4};
    for (size_t j = 0; j < c; j++)
        assert_int_equal(out[j].idx, want[j]);

    /* Nothing eligible. */
    float none[] = {-INFINITY, NAN, -INFINITY};
    assert_int_equal(eng_topk(none, 3, 2, out), 0);

    /* Equal scores: lower index wins, including against an entry that would replace the root. */
    float tie[] = {1, 2, 2, 1, 2};
    c = eng_topk(tie, 5, 2, out);
    assert_int_equal(c, 2);
    assert_int_equal(out[0].idx, 1);
    assert_int_equal(out[1].idx, 2);

    /* k = 1 on one entry. */
    float one[] = {-5.0f};
    assert_int_equal(eng_topk(one, 1, 1, out), 1);
    assert_int_equal(out[0].idx, 0);
    check_row(s, 8, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_rows),
        cmocka_unit_test(test_random_shapes),
        cmocka_unit_test(test_push_in_pieces),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
