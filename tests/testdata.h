/* Random inputs shared by the cmocka tests (header-only: each test is its own executable). */
#ifndef GNNREC_TESTS_TESTDATA_H
#define GNNREC_TESTS_TESTDATA_H

#include "engine/csr.h"
#include "engine/rng.h"
#include "trainer/model.h"

#include <stdio.h>
#include <stdlib.h>

/* A new empty directory for a test's store: dir "/tmp/gnnrec-<name>-XXXXXX" made by mkdtemp, path
 * its store.sqlite. Aborts when the directory cannot be made. Remove with test_dir_remove. */
typedef struct {
    char dir[64], path[96];
} test_dir_t;

static inline void test_dir_new(test_dir_t *t, const char *name)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/gnnrec-%s-XXXXXX", name);
    if (!mkdtemp(t->dir))
        abort();
    snprintf(t->path, sizeof t->path, "%s/store.sqlite", t->dir);
}

/* The directory and everything in it; non-zero when that failed. */
static inline int test_dir_remove(const test_dir_t *t)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    return system(cmd);
}

/* x[0..n) drawn from N(0, sd^2), the same for the same seed. */
static inline void test_fill_normal(float *x, size_t n, double sd, uint64_t seed)
{
    eng_rng_t r;
    eng_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sd * eng_rng_normal(&r));
}

/* A random bipartite training graph [nu x ni]: per_user random items per user, plus one random
 * user per item, so that every user and every item has an edge. Free with eng_csr_free. */
static inline eng_csr_t *test_random_train(int32_t nu, int32_t ni, int per_user, uint64_t seed)
{
    eng_rng_t r;
    eng_rng_seed(&r, seed, 9);
    int64_t n = (int64_t)nu * per_user + ni, k = 0;
    int32_t *us = malloc((size_t)n * sizeof *us), *is = malloc((size_t)n * sizeof *is);
    if (!us || !is)
        abort();
    for (int32_t u = 0; u < nu; u++)
        for (int j = 0; j < per_user; j++, k++) {
            us[k] = u;
            is[k] = (int32_t)eng_rng_below(&r, (uint32_t)ni);
        }
    for (int32_t i = 0; i < ni; i++, k++) {
        us[k] = (int32_t)eng_rng_below(&r, (uint32_t)nu);
        is[k] = i;
    }
    eng_csr_t *m = eng_csr_from_pairs(nu, ni, us, is, n);
    free(us);
    free(is);
    return m;
}

/* A random knowledge graph for n_items items: entities 0..n_items-1 are the items (item_entity
 * the identity), n_items / 2 + 3 more are other entities; every item has 2 triples to random
 * entities, and n_items / 4 + 1 triples join two random entities; 3 relations. The arrays are
 * new (free each with free; kg->item_entity is *item_entity). */
typedef struct {
    trn_triples_t kg;
    int32_t *head, *rel, *tail, *item_entity;
} test_kg_t;

static inline void test_random_kg(test_kg_t *t, int32_t n_items, uint64_t seed)
{
    eng_rng_t r;
    eng_rng_seed(&r, seed, 13);
    const int32_t E = n_items + n_items / 2 + 3;
    const int64_t n = 2 * (int64_t)n_items + n_items / 4 + 1;
    t->head = malloc((size_t)n * sizeof *t->head);
    t->rel = malloc((size_t)n * sizeof *t->rel);
    t->tail = malloc((size_t)n * sizeof *t->tail);
    t->item_entity = malloc(((size_t)n_items + 1) * sizeof *t->item_entity);
    if (!t->head || !t->rel || !t->tail || !t->item_entity)
        abort();
    for (int64_t k = 0; k < n; k++) {
        t->head[k] =
            k < 2 * (int64_t)n_items ? (int32_t)(k / 2) : (int32_t)eng_rng_below(&r, (uint32_t)E);
        t->rel[k] = (int32_t)eng_rng_below(&r, 3);
        t->tail[k] = (int32_t)eng_rng_below(&r, (uint32_t)E);
    }
    for (int32_t i = 0; i < n_items; i++)
        t->item_entity[i] = i;
    t->kg = (trn_triples_t){n, t->head, t->rel, t->tail, E, 3, t->item_entity, NULL, NULL};
}

static inline void test_kg_free(test_kg_t *t)
{
    free(t->head);
    free(t->rel);
    free(t->tail);
    free(t->item_entity);
}

/* Gives m (pattern-only) ratings: val[k] uniform over 1..5 stars, the same for the same seed. */
static inline void test_rate(eng_csr_t *m, uint64_t seed)
{
    eng_rng_t r;
    eng_rng_seed(&r, seed, 11);
    m->val = malloc((size_t)(m->nnz ? m->nnz : 1) * sizeof *m->val);
    if (!m->val)
        abort();
    for (int64_t k = 0; k < m->nnz; k++)
        m->val[k] = (float)(1 + eng_rng_below(&r, 5));
}

#endif
