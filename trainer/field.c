/* The receptive field of a batch, layer by layer. */
#include "trainer/field.h"
#include "engine/err.h"

#include <stdlib.h>
#include <string.h>

int trn_field_alloc(trn_field_t *f, int32_t nodes, int layers)
{
    memset(f, 0, sizeof *f);
    f->layers = layers;
    f->nodes = nodes;
    f->mark = calloc((size_t)nodes + 1, 1);
    f->pos = malloc(((size_t)nodes + 1) * sizeof *f->pos);
    if (!f->mark || !f->pos)
        return ENG_ENOMEM;
    for (int l = 0; l <= layers; l++)
        if (!(f->rows[l] = malloc(((size_t)nodes + 1) * sizeof *f->rows[l])))
            return ENG_ENOMEM;
    return 0;
}

void trn_field_free(trn_field_t *f)
{
    for (int l = 0; l <= TRN_FIELD_MAX_LAYERS; l++)
        free(f->rows[l]);
    free(f->mark);
    free(f->pos);
    memset(f, 0, sizeof *f);
}

void trn_field_all(trn_field_t *f)
{
    for (int l = 0; l <= f->layers; l++) {
        for (int32_t r = 0; r < f->nodes; r++)
            f->rows[l][r] = r;
        f->n[l] = f->nodes;
    }
}

/* The marked rows into out, ascending, clearing the marks: a pass over all nodes, cheap next to
 * any layer (a byte per node against a row of floats per edge). */
static int32_t collect(uint8_t *mark, int32_t nodes, int32_t *out)
{
    int32_t n = 0;
    for (int32_t r = 0; r < nodes; r++)
        if (mark[r]) {
            out[n++] = r;
            mark[r] = 0;
        }
    return n;
}

static void mark_list(uint8_t *mark, const int32_t *rows, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        mark[rows[k]] = 1;
}

/* rows[l - 1] = rows[l] and their neighbours in adj, from the last layer's marks. */
static void expand(trn_field_t *f, const eng_csr_t *adj)
{
    const int L = f->layers;
    f->n[L] = collect(f->mark, f->nodes, f->rows[L]);
    for (int l = L; l > 0; l--) {
        for (int32_t q = 0; q < f->n[l]; q++) {
            const int32_t r = f->rows[l][q];
            f->mark[r] = 1;
            mark_list(f->mark, adj->idx + adj->ptr[r], adj->ptr[r + 1] - adj->ptr[r]);
        }
        f->n[l - 1] = collect(f->mark, f->nodes, f->rows[l - 1]);
    }
}

void trn_field_batch(trn_field_t *f, const eng_csr_t *adj, const trn_scores_t *s, int n, int nneg)
{
    mark_list(f->mark, s->ru, n);
    mark_list(f->mark, s->rp, n);
    mark_list(f->mark, s->rn, (int64_t)n * nneg);
    expand(f, adj);
}

void trn_field_rows(trn_field_t *f, const eng_csr_t *adj, const int32_t *rows, int64_t n)
{
    mark_list(f->mark, rows, n);
    expand(f, adj);
}

void trn_field_positions(trn_field_t *f, int l)
{
    for (int32_t q = 0; q < f->n[l]; q++)
        f->pos[f->rows[l][q]] = q;
}

void trn_field_gather(const trn_field_t *f, int l, float *packed, const float *nodes, int d,
                      int threads)
{
    const size_t row = (size_t)d * sizeof *packed;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t q = 0; q < f->n[l]; q++)
        memcpy(packed + (size_t)q * d, nodes + (size_t)f->rows[l][q] * d, row);
}

void trn_field_scatter(const trn_field_t *f, int l, float *nodes, const float *packed, int d,
                       int threads)
{
    const size_t row = (size_t)d * sizeof *packed;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t q = 0; q < f->n[l]; q++)
        memcpy(nodes + (size_t)f->rows[l][q] * d, packed + (size_t)q * d, row);
}

void trn_field_add(const trn_field_t *f, int l, float *nodes, const float *packed, int d,
                   int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t q = 0; q < f->n[l]; q++) {
        float *restrict o = nodes + (size_t)f->rows[l][q] * d;
        const float *restrict p = packed + (size_t)q * d;
        for (int j = 0; j < d; j++)
            o[j] += p[j];
    }
}

void trn_field_zero(const trn_field_t *f, int l, float *nodes, int d, int threads)
{
    const size_t row = (size_t)d * sizeof *nodes;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int32_t q = 0; q < f->n[l]; q++)
        memset(nodes + (size_t)f->rows[l][q] * d, 0, row);
}
