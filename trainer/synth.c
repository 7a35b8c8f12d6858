/* Synthetic interaction data with planted structure, for tests, demos and benchmarks.
 *
 * User u and item i belong to community u % C and i % C; item i's popularity rank within its
 * community is i / C, and its weight is Zipf in that rank, so popularity is skewed both within a
 * community and over all items. Each user draws a varying number of distinct items, each from
 * their own community (by weight within it) with probability in_community, else from all items by
 * weight. A model that learns the communities therefore beats the popularity ranking, which only
 * sees the weights. The test set is the same per-user random holdout the loader uses. */
#include "trainer/data.h"
#include "trainer/data_internal.h"

#include "engine/rng.h"

#include <math.h>
#include <stdlib.h>

/* Zipf exponent of item popularity within a community. */
#define ZIPF 1.0
/* Every user has at least this many interactions (fewer only if per_user is smaller). */
#define MIN_PER_USER 5
/* Draws tried for one new distinct item from one source before giving up on that source. */
#define ATTEMPTS 64
/* RNG stream of the generator (the split uses its own stream of the same seed). */
#define SYNTH_STREAM 0x5f47ULL

trn_synth_opts_t trn_synth_defaults(void)
{
    return (trn_synth_opts_t){
        .n_users = 2000,
        .n_items = 1500,
        .communities = 10,
        .per_user = 30,
        .in_community = 0.8,
        .test_frac = 0.2,
        .seed = 1,
    };
}

static int check_opts(const trn_synth_opts_t *o, eng_error_t *err)
{
    if (o->n_users < 1 || o->n_items < 2)
        return eng_error_set(err, ENG_EINVAL, "synthetic data: need at least 1 user and 2 items");
    if (o->communities < 1 || o->communities > o->n_items)
        return eng_error_set(err, ENG_EINVAL, "synthetic data: communities must be in [1, %d]",
                             o->n_items);
    if (o->per_user < 1 || o->per_user > o->n_items)
        return eng_error_set(err, ENG_EINVAL,
                             "synthetic data: interactions per user must be in [1, %d]",
                             o->n_items);
    if (!(o->in_community >= 0 && o->in_community <= 1))
        return eng_error_set(err, ENG_EINVAL, "synthetic data: in_community must be in [0, 1]");
    if (!(o->test_frac >= 0 && o->test_frac < 1))
        return eng_error_set(err, ENG_EINVAL, "synthetic data: test_frac must be in [0, 1)");
    return ENG_OK;
}

/* First index in cum[0, n) whose cumulative weight exceeds a uniform draw over cum[n - 1]. */
static int32_t draw(eng_rng_t *rng, const double *cum, int32_t n)
{
    double x = eng_rng_uniform(rng) * cum[n - 1];
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int trn_data_synthetic(const trn_synth_opts_t *o, trn_data_t **out, eng_error_t *err)
{
    *out = NULL;
    int rc = check_opts(o, err);
    if (rc < 0)
        return rc;
    const int32_t C = o->communities, n_items = o->n_items;
    const int32_t ranks = (n_items + C - 1) / C; /* size of the largest community */
    rc = ENG_ENOMEM;                             /* the only failure from here on */
    trn__pairs_t p = {0};
    trn_data_t *d = calloc(1, sizeof *d);
    double *cum_rank = malloc((size_t)ranks * sizeof *cum_rank);
    double *cum_item = malloc((size_t)n_items * sizeof *cum_item);
    int32_t *seen = malloc((size_t)n_items * sizeof *seen); /* user who last drew each item */
    if (!d || !cum_rank || !cum_item || !seen)
        goto fail;
    d->n_users = o->n_users;
    d->n_items = n_items;
    if (!(d->users = eng_idmap_new()) || !(d->items = eng_idmap_new()) ||
        trn__idmap_numbered(d->users, "u", d->n_users) < 0 ||
        trn__idmap_numbered(d->items, "i", d->n_items) < 0)
        goto fail;

    for (int32_t r = 0; r < ranks; r++)
        cum_rank[r] = (r ? cum_rank[r - 1] : 0) + pow(r + 1.0, -ZIPF);
    for (int32_t i = 0; i < n_items; i++) {
        cum_item[i] = (i ? cum_item[i - 1] : 0) + pow(i / C + 1.0, -ZIPF);
        seen[i] = -1;
    }

    eng_rng_t rng;
    eng_rng_seed(&rng, o->seed, SYNTH_STREAM);
    int32_t min_u = o->per_user < MIN_PER_USER ? o->per_user : MIN_PER_USER;
    int32_t cap = o->per_user > n_items / 4 ? n_items : 4 * o->per_user;
    double extra = o->per_user - min_u; /* mean of the geometric part */
    for (int32_t u = 0; u < o->n_users; u++) {
        int32_t c = u % C, size_c = (n_items - c + C - 1) / C;
        int64_t n_u = min_u;
        if (extra > 0) { /* failures before a success of probability 1 / (extra + 1) */
            double g = floor(log(1.0 - eng_rng_uniform(&rng)) / log(extra / (extra + 1.0)));
            n_u += g < cap ? (int64_t)g : cap;
        }
        if (n_u > cap)
            n_u = cap;
        for (int64_t t = 0; t < n_u; t++) {
            int own = eng_rng_uniform(&rng) < o->in_community;
            int32_t item = -1;
            /* Try the chosen source first; the other only when the user has exhausted it, so the
             * share of own-community draws stays in_community. */
            for (int pass = 0; pass < 2 && item < 0; pass++, own = !own)
                for (int a = 0; a < ATTEMPTS; a++) {
                    int32_t i =
                        own ? c + draw(&rng, cum_rank, size_c) * C : draw(&rng, cum_item, n_items);
                    if (seen[i] != u) {
                        item = i;
                        break;
                    }
                }
            if (item < 0)
                continue;
            seen[item] = u;
            if (trn__pairs_push(&p, u, item, (double)p.n, NAN, 0) < 0)
                goto fail;
        }
    }

    if (o->test_frac > 0) {
        if (trn__split(&p, d->n_users, d->n_items, TRN_SPLIT_RANDOM, o->test_frac, o->seed,
                       &d->train, &d->test) < 0)
            goto fail;
    } else if (!(d->train = eng_csr_from_pairs(d->n_users, d->n_items, p.user, p.item, p.n))) {
        goto fail;
    }
    *out = d;
    d = NULL;
    rc = ENG_OK;
fail:
    if (rc < 0)
        eng_error_set(err, rc, "synthetic data: out of memory");
    free(cum_rank);
    free(cum_item);
    free(seen);
    trn__pairs_free(&p);
    trn_data_free(d);
    return rc;
}
