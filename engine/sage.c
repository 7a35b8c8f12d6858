/* GraphSAGE's inference for one node (engine/sage.h). */
#include "engine/sage.h"

#include "engine/simd.h"
#include "engine/vec.h"

#include <math.h>
#include <string.h>

int eng_sage_agg_find(const char *name)
{
    static const char *const names[] = {"mean", "max", "pool", "lstm"};
    _Static_assert(ENG_SAGE_LSTM + 1 == sizeof names / sizeof *names, "one name per aggregator");
    for (int a = 0; name && a <= ENG_SAGE_LSTM; a++)
        if (strcmp(names[a], name) == 0)
            return a;
    return -1;
}

/* List entries ahead whose rows a reduction prefetches, as engine/csr.c. */
#define PREFETCH_AHEAD 8

void eng_sage_mean(float *out, const float *x, size_t stride, const int32_t *idx, int64_t n, int d)
{
    memset(out, 0, (size_t)d * sizeof *out);
    for (int64_t q = 0; q < n; q++) {
        if (q + PREFETCH_AHEAD < n) /* the rows are random: keep several misses in flight */
            for (size_t j = 0; j < (size_t)d * sizeof(float); j += 64)
                __builtin_prefetch((const char *)(x + (size_t)idx[q + PREFETCH_AHEAD] * stride) +
                                   j);
        const float *r = x + (size_t)idx[q] * stride;
        for (int j = 0; j < d; j++)
            out[j] += r[j];
    }
    if (n > 0) {
        const float inv = 1.0f / (float)n;
        for (int j = 0; j < d; j++)
            out[j] *= inv;
    }
}

/* The running maximum: row r (whose id is id) into out and arg; the first row sets them. */
static void max_step(float *out, int32_t *arg, const float *r, int32_t id, int first, int d)
{
    if (first) {
        memcpy(out, r, (size_t)d * sizeof *out);
        for (int j = 0; arg && j < d; j++)
            arg[j] = id;
        return;
    }
    eng_sage_max_into(out, arg, r, id, d);
}

/* Selects and masks, no branch: a branch on r[j] > out[j] is taken at random, and SSE2, the
 * baseline, has no blend of ints by a float comparison, so the arg-max takes its mask by hand. */
void eng_sage_max_into(float *restrict out, int32_t *restrict arg, const float *restrict r,
                       int32_t id, int d)
{
    if (!arg) {
        for (int j = 0; j < d; j++)
            out[j] = r[j] > out[j] ? r[j] : out[j];
        return;
    }
    for (int j = 0; j < d; j++) {
        const int32_t more = -(int32_t)(r[j] > out[j]); /* strictly: a tie keeps the first */
        out[j] = r[j] > out[j] ? r[j] : out[j];
        arg[j] = (arg[j] & ~more) | (id & more);
    }
}

static void empty_max(float *out, int32_t *arg, int d)
{
    memset(out, 0, (size_t)d * sizeof *out);
    for (int j = 0; arg && j < d; j++)
        arg[j] = -1;
}

void eng_sage_max(float *out, int32_t *arg, const float *x, size_t stride, const int32_t *idx,
                  int64_t n, int d)
{
    if (n == 0)
        empty_max(out, arg, d);
    for (int64_t q = 0; q < n; q++)
        max_step(out, arg, x + (size_t)idx[q] * stride, idx[q], q == 0, d);
}

void eng_sage_lstm_step(float *z, float *c, const float *c_prev, float *h, const float *wh, int d)
{
    const int g4 = 4 * d;
    if (c_prev)
        for (int k = 0; k < d; k++)
            for (int j = 0; j < g4; j++)
                z[j] += h[k] * wh[(size_t)k * g4 + j];
    eng_sage_lstm_cell(z, c, c_prev, h, d);
}

/* The cell's loops, compiled per kind of CPU (engine/simd.h): five exponentials per hidden unit
 * and step, which the AVX2 kind takes eight at a time with fused multiply-adds (graphsage lstm on
 * lastfm: the cell was a fifth of its time in SSE2). */
static ENG_ALWAYS_INLINE void lstm_cell_kernel(float *z, float *c, const float *c_prev, float *h,
                                               int d)
{
    /* gate by gate, each loop without a branch, so that each vectorises */
    for (int j = 0; j < 2 * d; j++)
        z[j] = eng_sigmoid(z[j]);
    for (int j = 2 * d; j < 3 * d; j++)
        z[j] = eng_tanh(z[j]);
    for (int j = 3 * d; j < 4 * d; j++)
        z[j] = eng_sigmoid(z[j]);
    if (c_prev)
        for (int j = 0; j < d; j++)
            c[j] = z[d + j] * c_prev[j] + z[j] * z[2 * d + j];
    else
        for (int j = 0; j < d; j++)
            c[j] = 0.0f + z[j] * z[2 * d + j];
    for (int j = 0; j < d; j++)
        h[j] = z[3 * d + j] * eng_tanh(c[j]);
}

static void lstm_cell_baseline(float *z, float *c, const float *c_prev, float *h, int d)
{
    lstm_cell_kernel(z, c, c_prev, h, d);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void lstm_cell_avx2(float *z, float *c, const float *c_prev, float *h, int d)
{
    lstm_cell_kernel(z, c, c_prev, h, d);
}
#endif

typedef void lstm_cell_fn(float *z, float *c, const float *c_prev, float *h, int d);
static lstm_cell_fn *const lstm_cell_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(lstm_cell_baseline, lstm_cell_avx2, lstm_cell_avx2);

void eng_sage_lstm_cell(float *z, float *c, const float *c_prev, float *h, int d)
{
    lstm_cell_kinds[eng_isa()](z, c, c_prev, h, d);
}

void eng_sage_aggregate(const eng_sage_t *s, int l, float *out, const float *x, size_t stride,
                        const int32_t *idx, int64_t n, float *scratch)
{
    const int d = s->dim;
    switch (s->agg) {
    case ENG_SAGE_MEAN:
        eng_sage_mean(out, x, stride, idx, n, d);
        break;
    case ENG_SAGE_MAX:
        eng_sage_max(out, NULL, x, stride, idx, n, d);
        break;
    case ENG_SAGE_POOL: /* the max of each row's ReLU(row P + pb), as it comes */
        if (n == 0)
            empty_max(out, NULL, d);
        for (int64_t q = 0; q < n; q++) {
            eng_vecmat(scratch, x + (size_t)idx[q] * stride, s->aw[l], s->ab[l], d, d);
            eng_lrelu(scratch, scratch, 0.0f, (size_t)d);
            max_step(out, NULL, scratch, idx[q], q == 0, d);
        }
        break;
    case ENG_SAGE_LSTM: { /* z [4d] and c [d]; h is out */
        float *z = scratch, *c = z + 4 * (size_t)d;
        memset(out, 0, (size_t)d * sizeof *out);
        for (int64_t q = 0; q < n; q++) {
            eng_vecmat(z, x + (size_t)idx[q] * stride, s->aw[l], s->ab[l], d, 4 * d);
            eng_sage_lstm_step(z, c, q > 0 ? c : NULL, out, s->ah[l], d);
        }
        break;
    }
    }
}

void eng_sage_layer(const eng_sage_t *s, int l, float *out, const float *self, const float *x,
                    size_t stride, const int32_t *idx, int64_t n, float *scratch)
{
    const int d = s->dim;
    float *cat = scratch, *z = cat + 2 * (size_t)d; /* [self || AGG], then cat W */
    memcpy(cat, self, (size_t)d * sizeof *cat);
    eng_sage_aggregate(s, l, cat + d, x, stride, idx, n, z + d);
    eng_vecmat(z, cat, s->w[l], NULL, 2 * d, d);
    if (l < s->layers - 1)
        eng_lrelu(z, z, 0.0f, (size_t)d);
    eng_l2norm(out, z, d);
}

void eng_sage_fold_in(const eng_sage_t *s, float *out, const float *item_layers,
                      const int32_t *items, int64_t n, const float *feature, float *scratch)
{
    const int d = s->dim, L = s->layers;
    const size_t stride = (size_t)L * d;
    float *h = scratch; /* the user's h^k */
    if (feature)
        memcpy(h, feature, (size_t)d * sizeof *h);
    else
        eng_sage_mean(h, item_layers, stride, items, n, d);
    for (int l = 0; l < L; l++)
        eng_sage_layer(s, l, h, h, item_layers + (size_t)l * d, stride, items, n, h + d);
    memcpy(out, h, (size_t)d * sizeof *out);
}
