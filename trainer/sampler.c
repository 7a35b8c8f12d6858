/* Training examples: (user, positive, negatives), or (user, item, rating). */
#include "trainer/sampler.h"
#include "engine/err.h"

#include <stdlib.h>

struct trn_sampler {
    const eng_csr_t *train;
    int32_t *users; /* users that can form a triple */
    int32_t n_users;
    eng_rng_t rng;
};

trn_sampler_t *trn_sampler_new(const eng_csr_t *train, uint64_t seed)
{
    trn_sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->users = malloc(((size_t)train->rows + 1) * sizeof *s->users);
    if (!s->users) {
        free(s);
        return NULL;
    }
    for (int32_t u = 0; u < train->rows; u++) {
        int64_t deg = train->ptr[u + 1] - train->ptr[u];
        if (deg > 0 && deg < train->cols)
            s->users[s->n_users++] = u;
    }
    s->train = train;
    eng_rng_seed(&s->rng, seed, 1);
    return s;
}

void trn_sampler_free(trn_sampler_t *s)
{
    if (!s)
        return;
    free(s->users);
    free(s);
}

int32_t trn_sampler_users(const trn_sampler_t *s)
{
    return s->n_users;
}

/* The row holding entry q of t: the last u with ptr[u] <= q. */
static int32_t row_of(const eng_csr_t *t, int64_t q)
{
    int32_t lo = 0, hi = t->rows - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo + 1) / 2;
        if (t->ptr[mid] <= q)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void trn_sampler_next(trn_sampler_t *s, trn_batch_t *b, int n)
{
    const eng_csr_t *t = s->train;
    if (b->rating) {
        for (int k = 0; k < n; k++) {
            int64_t q = (int64_t)eng_rng_below(&s->rng, (uint32_t)t->nnz);
            b->users[k] = row_of(t, q);
            b->pos[k] = t->idx[q];
            b->rating[k] = t->val[q];
        }
        b->n = n;
        return;
    }
    for (int k = 0; k < n; k++) {
        int32_t u = s->users[eng_rng_below(&s->rng, (uint32_t)s->n_users)];
        int64_t deg = t->ptr[u + 1] - t->ptr[u];
        for (int j = 0; j < b->nneg; j++) {
            int32_t neg;
            do
                neg = (int32_t)eng_rng_below(&s->rng, (uint32_t)t->cols);
            while (eng_csr_has(t, u, neg));
            b->neg[(size_t)k * b->nneg + j] = neg;
        }
        b->users[k] = u;
        b->pos[k] = t->idx[t->ptr[u] + (int64_t)eng_rng_below(&s->rng, (uint32_t)deg)];
    }
    b->n = n;
}

int trn_batch_alloc(trn_batch_t *b, int n, int nneg)
{
    const size_t nn = (size_t)n * (size_t)nneg;
    *b = (trn_batch_t){.nneg = nneg};
    b->users = malloc((size_t)n * sizeof *b->users);
    b->pos = malloc((size_t)n * sizeof *b->pos);
    b->neg = malloc((nn ? nn : 1) * sizeof *b->neg);
    if (!b->users || !b->pos || !b->neg) {
        trn_batch_free(b);
        return ENG_ENOMEM;
    }
    return ENG_OK;
}

int trn_batch_alloc_rated(trn_batch_t *b, int n)
{
    if (trn_batch_alloc(b, n, 0) != ENG_OK)
        return ENG_ENOMEM;
    b->rating = malloc((size_t)n * sizeof *b->rating);
    if (!b->rating) {
        trn_batch_free(b);
        return ENG_ENOMEM;
    }
    return ENG_OK;
}

void trn_batch_free(trn_batch_t *b)
{
    free(b->users);
    free(b->pos);
    free(b->neg);
    free(b->rating);
    b->users = b->pos = b->neg = NULL;
    b->rating = NULL;
}
