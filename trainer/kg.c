/* The knowledge-graph kinds' shared parts: split, index, filtered link prediction. */
#include "trainer/kg.h"
#include "engine/rng.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

int trn_kg_split(const trn_triples_t *kg, double frac, uint64_t seed, int32_t **train,
                 int64_t *n_train, int32_t **test, int64_t *n_test)
{
    const int64_t n = kg->n;
    int32_t *order = malloc(((size_t)n + 1) * sizeof *order);
    int32_t *deg = calloc((size_t)kg->n_entities + 1, sizeof *deg);
    uint8_t *held = calloc((size_t)n + 1, 1);
    *train = malloc(((size_t)n + 1) * sizeof **train);
    *test = malloc(((size_t)n + 1) * sizeof **test);
    int rc = ENG_ENOMEM;
    if (!order || !deg || !held || !*train || !*test) {
        free(*train), free(*test);
        *train = *test = NULL;
        goto done;
    }
    for (int64_t k = 0; k < n; k++) {
        order[k] = (int32_t)k;
        deg[kg->head[k]]++;
        deg[kg->tail[k]]++;
    }
    eng_rng_t rng;
    eng_rng_seed(&rng, seed, 0x6b67); /* "kg": a stream of its own */
    for (int64_t k = n - 1; k > 0; k--) {
        const int64_t j = (int64_t)eng_rng_below(&rng, (uint32_t)k + 1);
        const int32_t x = order[k];
        order[k] = order[j];
        order[j] = x;
    }
    const int64_t want = (int64_t)(frac * (double)n + 0.5);
    int64_t got = 0;
    for (int64_t k = 0; k < n && got < want; k++) {
        const int32_t i = order[k], h = kg->head[i], t = kg->tail[i];
        /* a self-loop counts twice in deg but is one triple */
        if (deg[h] - (h == t) > 1 && deg[t] - (h == t) > 1) {
            deg[h]--;
            deg[t]--;
            held[i] = 1;
            got++;
        }
    }
    *n_train = *n_test = 0;
    for (int64_t k = 0; k < n; k++) {
        if (held[k])
            (*test)[(*n_test)++] = (int32_t)k;
        else
            (*train)[(*n_train)++] = (int32_t)k;
    }
    rc = ENG_OK;
done:
    free(order);
    free(deg);
    free(held);
    return rc;
}

static int cmp3(const void *a, const void *b)
{
    const int32_t *x = a, *y = b;
    for (int j = 0; j < 3; j++)
        if (x[j] != y[j])
            return x[j] < y[j] ? -1 : 1;
    return 0;
}

/* Sorts n rows of 3 and drops repeats; returns the new count. */
static int64_t sort_unique3(int32_t *a, int64_t n)
{
    qsort(a, (size_t)n, 3 * sizeof *a, cmp3);
    int64_t w = 0;
    for (int64_t k = 0; k < n; k++)
        if (w == 0 || cmp3(a + 3 * (w - 1), a + 3 * k) != 0)
            memmove(a + 3 * w++, a + 3 * k, 3 * sizeof *a);
    return w;
}

int trn_kg_index_build(trn_kg_index_t *ix, const trn_triples_t *kg)
{
    memset(ix, 0, sizeof *ix);
    ix->hrt = malloc(((size_t)kg->n * 3 + 1) * sizeof *ix->hrt);
    ix->trh = malloc(((size_t)kg->n * 3 + 1) * sizeof *ix->trh);
    if (!ix->hrt || !ix->trh) {
        trn_kg_index_free(ix);
        return ENG_ENOMEM;
    }
    for (int64_t k = 0; k < kg->n; k++) {
        int32_t *a = ix->hrt + 3 * k, *b = ix->trh + 3 * k;
        a[0] = b[2] = kg->head[k];
        a[1] = b[1] = kg->rel[k];
        a[2] = b[0] = kg->tail[k];
    }
    ix->n = sort_unique3(ix->hrt, kg->n);
    sort_unique3(ix->trh, kg->n);
    return ENG_OK;
}

void trn_kg_index_free(trn_kg_index_t *ix)
{
    free(ix->hrt);
    free(ix->trh);
    memset(ix, 0, sizeof *ix);
}

/* The first row of a[n x 3] not below (x, y, z). */
static int64_t lower3(const int32_t *a, int64_t n, int32_t x, int32_t y, int32_t z)
{
    const int32_t key[3] = {x, y, z};
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cmp3(a + 3 * mid, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int trn_kg_index_has(const trn_kg_index_t *ix, int32_t h, int32_t r, int32_t t)
{
    const int64_t k = lower3(ix->hrt, ix->n, h, r, t);
    return k < ix->n && ix->hrt[3 * k] == h && ix->hrt[3 * k + 1] == r && ix->hrt[3 * k + 2] == t;
}

/* The rank of the true answer `want` among scores[n_entities], the other true answers of the
 * query (the third column of a's rows from `first` while they start (x, y)) filtered out. */
static double filtered_rank(const float *scores, int32_t n_entities, int32_t want, const int32_t *a,
                            int64_t n, int64_t first, int32_t x, int32_t y)
{
    const float s = scores[want];
    int64_t above = 0, ties = 0;
    for (int32_t e = 0; e < n_entities; e++) {
        above += scores[e] > s;
        ties += scores[e] == s;
    }
    ties--; /* want itself */
    for (int64_t k = first; k < n && a[3 * k] == x && a[3 * k + 1] == y; k++) {
        const int32_t e = a[3 * k + 2];
        if (e == want)
            continue;
        above -= scores[e] > s;
        ties -= scores[e] == s;
    }
    return 1.0 + (double)above + 0.5 * (double)ties;
}

int trn_kg_link_eval(const trn_triples_t *kg, const int32_t *test, int64_t n,
                     const trn_kg_index_t *ix, trn_kg_scorer_t score, const void *ctx, int threads,
                     trn_metrics_t *out)
{
    const int32_t E = kg->n_entities;
    double *rank = malloc(((size_t)n * 2 + 1) * sizeof *rank);
    float *buf = malloc(((size_t)threads * E + 1) * sizeof *buf);
    if (!rank || !buf) {
        free(rank);
        free(buf);
        return ENG_ENOMEM;
    }
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t q = 0; q < 2 * n; q++) {
        float *s = buf + (size_t)omp_get_thread_num() * E;
        const int32_t i = test[q / 2], h = kg->head[i], r = kg->rel[i], t = kg->tail[i];
        const int tail = (int)(q % 2 == 0);
        score(ctx, h, r, t, tail, s);
        if (tail)
            rank[q] = filtered_rank(s, E, t, ix->hrt, ix->n, lower3(ix->hrt, ix->n, h, r, 0), h, r);
        else
            rank[q] = filtered_rank(s, E, h, ix->trh, ix->n, lower3(ix->trh, ix->n, t, r, 0), t, r);
    }
    static const int cut[3] = {1, 3, 10};
    double mrr = 0, hits[3] = {0};
    for (int64_t q = 0; q < 2 * n; q++) {
        mrr += 1.0 / rank[q];
        for (int c = 0; c < 3; c++)
            hits[c] += rank[q] <= cut[c];
    }
    const double queries = n > 0 ? (double)(2 * n) : 1.0;
    out->has_link = 1;
    out->mrr = mrr / queries;
    for (int c = 0; c < 3; c++)
        out->hits[c] = hits[c] / queries;
    out->link_queries = 2 * n;
    free(rank);
    free(buf);
    return ENG_OK;
}
