/* Graphs built from the training interactions. */
#include "trainer/graph.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

eng_csr_t *trn_graph_transpose(const eng_csr_t *m)
{
    eng_csr_t *t = eng_csr_new(m->cols, m->rows, m->nnz, 0);
    int64_t *fill = malloc(((size_t)m->cols + 1) * sizeof *fill);
    if (!t || !fill)
        goto fail;
    for (int64_t k = 0; k < m->nnz; k++)
        t->ptr[m->idx[k] + 1]++;
    for (int32_t c = 0; c < m->cols; c++)
        t->ptr[c + 1] += t->ptr[c];
    for (int32_t c = 0; c <= m->cols; c++)
        fill[c] = t->ptr[c];
    /* Rows visited in order, so each transposed row comes out sorted. */
    for (int32_t r = 0; r < m->rows; r++)
        for (int64_t k = m->ptr[r]; k < m->ptr[r + 1]; k++)
            t->idx[fill[m->idx[k]]++] = r;
    free(fill);
    return t;
fail:
    free(fill);
    eng_csr_free(t);
    return NULL;
}

/* The user-item graph's pattern (with self-loops when s is 1), values allocated but unset when
 * with_values: nodes are users then items, rows sorted. */
static eng_csr_t *bipartite(const eng_csr_t *train, int s, int with_values)
{
    const int32_t nu = train->rows, ni = train->cols;
    eng_csr_t *items = trn_graph_transpose(train);
    eng_csr_t *a =
        eng_csr_new(nu + ni, nu + ni, 2 * train->nnz + (int64_t)s * (nu + ni), with_values);
    if (!items || !a)
        goto fail;
    /* A user's self-loop precedes its item columns and an item's follows its user columns, so
     * the rows come out sorted. */
    int64_t w = 0;
    for (int32_t u = 0; u < nu; u++) {
        a->ptr[u] = w;
        if (s)
            a->idx[w++] = u;
        for (int64_t k = train->ptr[u]; k < train->ptr[u + 1]; k++)
            a->idx[w++] = nu + train->idx[k];
    }
    for (int32_t i = 0; i < ni; i++) {
        a->ptr[nu + i] = w;
        for (int64_t k = items->ptr[i]; k < items->ptr[i + 1]; k++)
            a->idx[w++] = items->idx[k];
        if (s)
            a->idx[w++] = nu + i;
    }
    a->ptr[nu + ni] = w;
    eng_csr_free(items);
    return a;
fail:
    eng_csr_free(items);
    eng_csr_free(a);
    return NULL;
}

eng_csr_t *trn_graph_adj(const eng_csr_t *train, int self_loops)
{
    return bipartite(train, self_loops ? 1 : 0, 0);
}

eng_csr_t *trn_graph_norm_adj(const eng_csr_t *train, int self_loops)
{
    eng_csr_t *a = bipartite(train, self_loops ? 1 : 0, 1);
    if (!a)
        return NULL;
    /* A row's length is its node's degree in A + s I. */
    for (int32_t r = 0; r < a->rows; r++) {
        const double dr = (double)(a->ptr[r + 1] - a->ptr[r]);
        for (int64_t k = a->ptr[r]; k < a->ptr[r + 1]; k++) {
            const int32_t c = a->idx[k];
            a->val[k] = (float)(1.0 / sqrt(dr * (double)(a->ptr[c + 1] - a->ptr[c])));
        }
    }
    return a;
}
