/* Exact inner-product search over a fixed item matrix: the server's top-K, score and similar-items
 * paths. The items are copied once into a layout the scoring kernel streams well (panels of 16
 * items, 64-byte aligned) and then only read, so one index serves any number of threads.
 * Concurrent queries are scored in batches: the item matrix streams through the caches once per
 * batch instead of once per query. docs/serving-kernel.md has the layout, the measurements and the
 * determinism argument. */
#ifndef GNNREC_ENGINE_INDEX_H
#define GNNREC_ENGINE_INDEX_H

#include "engine/topk.h"

#include <stddef.h>
#include <stdint.h>

/* Immutable after eng_index_new returns; every function below may run on many threads at once. */
typedef struct eng_index eng_index_t;

/* A new index over item_vecs [n_items x dim] (copied; the caller keeps item_vecs). normalize != 0
 * stores each item scaled to unit length (the norm computed in double), so that the inner
 * product with a unit-length query is the cosine; zero vectors stay zero. n_items may be 0 (every
 * query then finds nothing). Returns NULL when n_items < 0, dim < 1, item_vecs is NULL with
 * n_items > 0, the size overflows, or memory runs out. */
eng_index_t *eng_index_new(const float *item_vecs, int32_t n_items, int dim, int normalize);
void eng_index_free(eng_index_t *ix);

int32_t eng_index_items(const eng_index_t *ix);
int eng_index_dim(const eng_index_t *ix);

/* Which compilation of the scoring code ix runs: eng_isa_name of the kind eng_isa() named when
 * eng_index_new built it ("avx512", "avx2" or "baseline"; engine/simd.h), for logs. The index
 * keeps that kind for every call, so eng_index_scores gives the bits eng_index_topk gives.
 * AVX-512 and AVX2 give bit-identical scores; baseline (4-float vectors; on x86 SSE2, without
 * fused multiply-add) may differ from them in the last bits. Off x86-64 and GCC, baseline is the
 * only kind. */
const char *eng_index_kernel(const eng_index_t *ix);

/* One top-K request. The caller fills q, k, exclude, n_exclude and out; eng_index_topk fills
 * n_out. */
typedef struct {
    const float *q;         /* [dim] query vector (borrowed) */
    size_t k;               /* results wanted; 0 is allowed and returns nothing */
    const int32_t *exclude; /* [n_exclude] items never to return, sorted ascending (borrowed);
                             * duplicates and indices outside [0, n_items) are harmless; an
                             * unsorted list excludes an unspecified subset. NULL when n_exclude
                             * is 0. */
    size_t n_exclude;
    eng_scored_t *out; /* [min(k, n_items)] results, best first, ties by lower index */
    size_t n_out;      /* set to min(k, eligible items) */
} eng_query_t;

/* Bytes of scratch eng_index_topk needs for a batch of nq queries (nq >= 0): 1.6 KB plus 28
 * bytes per query. Any alignment will do. */
size_t eng_index_scratch_bytes(const eng_index_t *ix, int nq);

/* Exact top-k of q . item over every item of ix, for each of qs[0..nq): like eng_topk on the
 * full score row with excluded items set to -INFINITY, so items whose score is NaN or -INFINITY
 * are never returned and +INFINITY counts as a score. Single-threaded, allocates nothing: the
 * caller runs one batch per worker thread and owns scratch (eng_index_scratch_bytes(ix, nq)
 * bytes). Every score is the same float whatever the batch holds: a query's results do not depend
 * on nq or on the other queries, and equal those of a batch of one. nq <= 0 does nothing. */
void eng_index_topk(const eng_index_t *ix, eng_query_t *qs, int nq, void *scratch);

/* out[j] = q . item[items[j]] for j < n, bit for bit the score eng_index_topk gives that item
 * for the same q. Returns 0, or ENG_EINVAL (out untouched) when an item is outside
 * [0, n_items). */
int eng_index_scores(const eng_index_t *ix, const float *q, const int32_t *items, size_t n,
                     float *out);

/* Copies the stored vector of item i (unit length when the index normalises) into out[dim].
 * Returns 0, or ENG_EINVAL (out untouched) when i is outside [0, n_items). For "items similar to
 * i", this is the query, with i itself excluded. */
int eng_index_vector(const eng_index_t *ix, int32_t i, float *out);

#endif
