/* Exact inner-product search: the panel layout, the batched scoring kernel and the fused top-K.
 *
 * Layout: items are stored in panels of PANEL (16) items; a panel holds, for each coordinate d,
 * the 16 items' values side by side (one 64-byte cache line), so the kernel reads a panel front to
 * back and multiplies one broadcast query coordinate into 16 item lanes at a time. Panels come in
 * groups of GROUP (4) and the last group is padded with zero items, which are scored but never
 * offered to the selection.
 *
 * Batching: for each group, every query of the batch is scored against it while the group sits
 * in L1 (16 KB at dim 64), so the matrix streams from memory once per batch. A query's scores for
 * the group go to a small buffer and are offered to its heap (the caller's out array,
 * eng_topk_push) only when one of them beats the heap's current k-th best: after the first few
 * groups almost none do, so selection and exclusion cost nearly nothing.
 *
 * Determinism: every score is one chain, acc = acc + q[d] * x[d] for d = 0, 1, ..., dim - 1 in one
 * vector lane, starting from 0. Lanes do not interact, so the score of an item does not depend on
 * which kernel shape or vector width computed it, on the batch, or on which other items share its
 * vector. All shapes are instances of one always-inline kernel, so the compiler makes the same
 * fused multiply-add choice for each of them (tests/test_score.c checks the bits). */
#include "engine/index.h"

#include "engine/err.h"
#include "engine/simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PANEL 16 /* items per panel: 16 floats, one cache line per coordinate */
#define GROUP 4  /* panels per group: the unit every query of a batch scores in turn */
#define GROUP_ITEMS (GROUP * PANEL)
/* Most queries scored together: 6 x 2 accumulators + 2 columns + 1 broadcast fill the 16 AVX2
 * registers, 6 x 4 + 4 + 1 most of the 32 AVX-512 ones. */
#define QBLOCK 6

/* The scoring code is compiled for each kind of CPU in engine/simd.h: baseline (4-float vectors),
 * AVX2+FMA (8 floats) and AVX-512 (16 floats and 32 registers, twice the multiply-adds per
 * instruction). eng_index_new fixes the kind eng_isa() names at that moment and the index runs it
 * for every call, so that eng_index_scores always follows topk's choice (and the tests can build
 * an index of each kind on one machine). AVX2 and AVX-512 give the same bits, one rounding per
 * multiply-add lane by lane; baseline rounds twice, so its last bits differ. */

struct eng_index {
    int32_t n_items;
    int dim;
    int32_t n_groups;
    size_t panel_floats; /* dim * PANEL */
    eng_isa_t isa;       /* which compilation of the kernels to run */
    float *panels;       /* [n_groups * GROUP][dim][PANEL], 64-byte aligned, padding zero */
};

/* Per-query selection state, in the caller's scratch. */
typedef struct {
    size_t len; /* entries in the query's heap (its out array) */
    size_t cur; /* first exclude entry not yet passed */
    float thr;  /* a score must be above this to enter: -INFINITY until the heap is full, then
                 * the heap's worst score */
} qstate_t;

eng_index_t *eng_index_new(const float *item_vecs, int32_t n_items, int dim, int normalize)
{
    if (n_items < 0 || dim < 1 || (n_items > 0 && !item_vecs))
        return NULL;
    int32_t n_groups = (int32_t)(((int64_t)n_items + GROUP_ITEMS - 1) / GROUP_ITEMS);
    size_t panel_floats = (size_t)dim * PANEL;
    size_t n_panels = (size_t)n_groups * GROUP;
    if (n_panels && panel_floats > SIZE_MAX / sizeof(float) / n_panels)
        return NULL;
    size_t bytes = n_panels * panel_floats * sizeof(float); /* a multiple of 64 */

    eng_index_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        goto fail;
    ix->n_items = n_items;
    ix->dim = dim;
    ix->n_groups = n_groups;
    ix->panel_floats = panel_floats;
    ix->isa = eng_isa();
    ix->panels = aligned_alloc(64, bytes ? bytes : 64);
    if (!ix->panels)
        goto fail;
    memset(ix->panels, 0, bytes);

    for (int32_t i = 0; i < n_items; i++) {
        const float *x = item_vecs + (size_t)i * dim;
        float *p = ix->panels + (size_t)(i / PANEL) * panel_floats + i % PANEL;
        double scale = 1.0;
        if (normalize) {
            double ss = 0.0;
            for (int d = 0; d < dim; d++)
                ss += (double)x[d] * x[d];
            scale = ss > 0.0 ? 1.0 / sqrt(ss) : 1.0;
        }
        for (int d = 0; d < dim; d++)
            p[(size_t)d * PANEL] = normalize ? (float)(x[d] * scale) : x[d];
    }
    return ix;

fail:
    eng_index_free(ix);
    return NULL;
}

void eng_index_free(eng_index_t *ix)
{
    if (!ix)
        return;
    free(ix->panels);
    free(ix);
}

int32_t eng_index_items(const eng_index_t *ix)
{
    return ix->n_items;
}

int eng_index_dim(const eng_index_t *ix)
{
    return ix->dim;
}

const char *eng_index_kernel(const eng_index_t *ix)
{
    return eng_isa_name(ix->isa);
}

int eng_index_vector(const eng_index_t *ix, int32_t i, float *out)
{
    if (i < 0 || i >= ix->n_items)
        return ENG_EINVAL;
    const float *p = ix->panels + (size_t)(i / PANEL) * ix->panel_floats + i % PANEL;
    for (int d = 0; d < ix->dim; d++)
        out[d] = p[(size_t)d * PANEL];
    return 0;
}

/* The kernel: out[j * GROUP_ITEMS + p * PANEL + l] = q[j] . (lane l of panel pan[p]) for nqb
 * queries and npan panels, all accumulators in registers. Returns a mask with bit j set when one
 * of query j's scores may be above thr[j] (always when one is; NaN never is), tested while the
 * scores are still in registers. nqb and npan are constants at every call site, so the loops
 * unroll and the arrays become registers. Defined for vectors VF of 4, 8 and 16 floats, VI being
 * the int vector of the same size; a panel's 16 lanes are VPC vectors. Each lane's arithmetic is
 * the same in all of them. */
#define DEFINE_KERNEL(name, VF, VI)                                                                \
    static ENG_ALWAYS_INLINE unsigned name(const int nqb, const int npan, int dim,                 \
                                           const float *const *q, const float *const *pan,         \
                                           const float *thr, float *out)                           \
    {                                                                                              \
        enum { VPC = PANEL * sizeof(float) / sizeof(VF) };                                         \
        VF acc[QBLOCK][GROUP][VPC];                                                                \
        for (int j = 0; j < nqb; j++)                                                              \
            for (int p = 0; p < npan; p++)                                                         \
                for (int v = 0; v < VPC; v++)                                                      \
                    acc[j][p][v] = (VF){0};                                                        \
        for (int d = 0; d < dim; d++) {                                                            \
            VF c[GROUP][VPC];                                                                      \
            for (int p = 0; p < npan; p++)                                                         \
                for (int v = 0; v < VPC; v++)                                                      \
                    c[p][v] = ((const VF *)(pan[p] + (size_t)d * PANEL))[v];                       \
            for (int j = 0; j < nqb; j++) {                                                        \
                const float s = q[j][d];                                                           \
                for (int p = 0; p < npan; p++)                                                     \
                    for (int v = 0; v < VPC; v++)                                                  \
                        acc[j][p][v] += s * c[p][v];                                               \
            }                                                                                      \
        }                                                                                          \
        /* Sign of thr - score: set when the score is above thr, and for a few scores that are     \
         * not (NaN, a zero of the other sign): a superset that costs no compare instruction       \
         * (GCC 12 turns AVX-512 vector compares into scalar ones); the caller checks exactly. */  \
        unsigned hits = 0;                                                                         \
        for (int j = 0; j < nqb; j++) {                                                            \
            const VF t = thr[j] - (VF){0};                                                         \
            VI sign = {0};                                                                         \
            for (int p = 0; p < npan; p++)                                                         \
                for (int v = 0; v < VPC; v++) {                                                    \
                    ((VF *)(out + (size_t)j * GROUP_ITEMS + (size_t)p * PANEL))[v] = acc[j][p][v]; \
                    sign |= (VI)(t - acc[j][p][v]);                                                \
                }                                                                                  \
            /* Any sign bit set? Once per query and group, so a few extracts are fine. */          \
            uint64_t w[sizeof(VI) / 8], any = 0;                                                   \
            memcpy(w, &sign, sizeof w);                                                            \
            for (size_t i = 0; i < sizeof w / sizeof *w; i++)                                      \
                any |= w[i];                                                                       \
            hits |= (unsigned)((any & UINT64_C(0x8000000080000000)) != 0) << j;                    \
        }                                                                                          \
        return hits;                                                                               \
    }

DEFINE_KERNEL(kernel4, eng_v4f, eng_v4i)
DEFINE_KERNEL(kernel8, eng_v8f, eng_v8i)
DEFINE_KERNEL(kernel16, eng_v16f, eng_v16i)

/* Scores nqb queries against the GROUP panels starting at g into buf [nqb][GROUP_ITEMS], with a
 * kernel shape that keeps enough independent accumulators (multiply-add latency times throughput
 * is 8 on current x86) and fits the registers. width, a constant at each call site, is the vector
 * width in floats:
 *   16 (AVX-512, 32 registers): nqb queries x 4 panels, up to 24 accumulators;
 *    8 (AVX2, 16 registers): one query x 4 panels (8 accumulators) up to 6 queries x 1 panel (12);
 *    4 (SSE or NEON, 16 registers): pairs of queries x 1 panel (8), a last single query x 2.
 * Returns the kernels' mask over the whole group. */
static ENG_ALWAYS_INLINE unsigned score_group(const int width, int nqb, int dim,
                                              const float *const *q, const float *g,
                                              size_t panel_floats, const float *thr, float *buf)
{
    const float *pan[GROUP];
    for (int p = 0; p < GROUP; p++)
        pan[p] = g + (size_t)p * panel_floats;
    unsigned hits = 0;
    if (width == 16) {
        switch (nqb) {
        case 1:
            return kernel16(1, 4, dim, q, pan, thr, buf);
        case 2:
            return kernel16(2, 4, dim, q, pan, thr, buf);
        case 3:
            return kernel16(3, 4, dim, q, pan, thr, buf);
        case 4:
            return kernel16(4, 4, dim, q, pan, thr, buf);
        case 5:
            return kernel16(5, 4, dim, q, pan, thr, buf);
        default:
            return kernel16(6, 4, dim, q, pan, thr, buf);
        }
    }
    if (width == 4) {
        for (int j = 0; j < nqb; j += 2) {
            float *b = buf + (size_t)j * GROUP_ITEMS;
            if (nqb - j >= 2)
                for (int p = 0; p < GROUP; p++)
                    hits |= kernel4(2, 1, dim, q + j, pan + p, thr + j, b + p * PANEL) << j;
            else
                for (int p = 0; p < GROUP; p += 2)
                    hits |= kernel4(1, 2, dim, q + j, pan + p, thr + j, b + p * PANEL) << j;
        }
        return hits;
    }
    switch (nqb) {
    case 1:
        return kernel8(1, 4, dim, q, pan, thr, buf);
    case 2:
        hits = kernel8(2, 2, dim, q, pan, thr, buf);
        return hits | kernel8(2, 2, dim, q, pan + 2, thr, buf + 2 * PANEL);
    case 3:
        hits = kernel8(3, 2, dim, q, pan, thr, buf);
        return hits | kernel8(3, 2, dim, q, pan + 2, thr, buf + 2 * PANEL);
    default:
        for (int p = 0; p < GROUP; p++) {
            float *b = buf + p * PANEL;
            if (nqb == 4)
                hits |= kernel8(4, 1, dim, q, pan + p, thr, b);
            else if (nqb == 5)
                hits |= kernel8(5, 1, dim, q, pan + p, thr, b);
            else
                hits |= kernel8(6, 1, dim, q, pan + p, thr, b);
        }
        return hits;
    }
}

/* Non-zero when any of s[0..n) is above thr (NaN never is). */
static int any_above(const float *s, int n, float thr)
{
    for (int i = 0; i < n; i++)
        if (s[i] > thr)
            return 1;
    return 0;
}

/* Offers the scores sc[0..n) of items base .. base + n - 1 to query q's heap. Excluded items are
 * masked only here, when a score beats the threshold: masking can only lower scores, so a piece
 * with nothing above it has nothing to mask, and the cursor skips its exclusions the next time. */
static void offer(eng_query_t *q, qstate_t *st, float *sc, int n, int32_t base)
{
    size_t c = st->cur;
    while (c < q->n_exclude && q->exclude[c] < base)
        c++;
    for (; c < q->n_exclude && q->exclude[c] < base + n; c++)
        sc[q->exclude[c] - base] = -INFINITY;
    st->cur = c;
    st->len = eng_topk_push(sc, n, base, q->k, q->out, st->len);
    /* eng_topk_push keeps a min-heap in out: out[0] is the k-th best once the heap is full. */
    if (st->len == q->k)
        st->thr = q->out[0].score;
}

/* Scores every item for the active queries and feeds their heaps. width: see score_group. */
static ENG_ALWAYS_INLINE void topk_batch(const int width, const eng_index_t *ix, eng_query_t *qs,
                                         const int *active, int na, qstate_t *st, float *buf)
{
    const int dim = ix->dim;
    for (int32_t g = 0; g < ix->n_groups; g++) {
        const int32_t base = g * GROUP_ITEMS;
        const int n = ix->n_items - base < GROUP_ITEMS ? ix->n_items - base : GROUP_ITEMS;
        const float *gp = ix->panels + (size_t)g * GROUP * ix->panel_floats;
        for (int j0 = 0; j0 < na; j0 += QBLOCK) {
            const int nqb = na - j0 < QBLOCK ? na - j0 : QBLOCK;
            const float *q[QBLOCK];
            float thr[QBLOCK];
            for (int j = 0; j < nqb; j++) {
                q[j] = qs[active[j0 + j]].q;
                thr[j] = st[j0 + j].thr;
            }
            unsigned hits = score_group(width, nqb, dim, q, gp, ix->panel_floats, thr, buf);
            /* The rare case: a query has a candidate somewhere in the group. Only its panels
             * holding one are offered (the padding of the last group never is). */
            for (int j = 0; hits; j++, hits >>= 1) {
                if (!(hits & 1))
                    continue;
                for (int p = 0; p * PANEL < n; p++) {
                    float *ps = buf + (size_t)j * GROUP_ITEMS + p * PANEL;
                    const int m = n - p * PANEL < PANEL ? n - p * PANEL : PANEL;
                    if (any_above(ps, m, st[j0 + j].thr))
                        offer(&qs[active[j0 + j]], &st[j0 + j], ps, m, base + p * PANEL);
                }
            }
        }
    }
}

static void topk_base(const eng_index_t *ix, eng_query_t *qs, const int *active, int na,
                      qstate_t *st, float *buf)
{
    topk_batch(4, ix, qs, active, na, st, buf);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void topk_avx2(const eng_index_t *ix, eng_query_t *qs, const int *active,
                                      int na, qstate_t *st, float *buf)
{
    topk_batch(8, ix, qs, active, na, st, buf);
}

ENG_TARGET_AVX512 static void topk_avx512(const eng_index_t *ix, eng_query_t *qs, const int *active,
                                          int na, qstate_t *st, float *buf)
{
    topk_batch(16, ix, qs, active, na, st, buf);
}
#endif

typedef void topk_fn(const eng_index_t *ix, eng_query_t *qs, const int *active, int na,
                     qstate_t *st, float *buf);
static topk_fn *const topk_kinds[ENG_ISA_COUNT] = ENG_ISA_TABLE(topk_base, topk_avx2, topk_avx512);

/* Scratch layout: the score buffer (aligned), then the query states, then the active list. */
#define BUF_BYTES ((size_t)QBLOCK * GROUP_ITEMS * sizeof(float))

size_t eng_index_scratch_bytes(const eng_index_t *ix, int nq)
{
    (void)ix;
    size_t n = nq > 0 ? (size_t)nq : 0;
    return 64 + BUF_BYTES + n * (sizeof(qstate_t) + sizeof(int));
}

void eng_index_topk(const eng_index_t *ix, eng_query_t *qs, int nq, void *scratch)
{
    if (nq <= 0)
        return;
    uintptr_t a = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    float *buf = (float *)a;
    qstate_t *st = (qstate_t *)(a + BUF_BYTES);
    int *active = (int *)(st + nq);

    /* Queries that want nothing take no part: they cost no kernel work. */
    int na = 0;
    for (int j = 0; j < nq; j++) {
        qs[j].n_out = 0;
        if (qs[j].k > 0 && ix->n_items > 0)
            active[na++] = j;
    }
    for (int j = 0; j < na; j++)
        st[j] = (qstate_t){0, 0, -INFINITY};
    if (na == 0)
        return;
    topk_kinds[ix->isa](ix, qs, active, na, st, buf);
    for (int j = 0; j < na; j++) {
        eng_query_t *q = &qs[active[j]];
        eng_topk_finish(q->out, st[j].len);
        q->n_out = st[j].len;
    }
}

/* Four items at a time through the one-query kernel shape, each lane computed exactly as in
 * topk_batch (other lanes of the panels are computed and dropped). */
static ENG_ALWAYS_INLINE void scores_items(const int width, const eng_index_t *ix, const float *q,
                                           const int32_t *items, size_t n, float *out)
{
    float buf[GROUP_ITEMS] __attribute__((aligned(64)));
    for (size_t j = 0; j < n; j += GROUP) {
        size_t m = n - j < GROUP ? n - j : GROUP;
        const float *pan[GROUP];
        for (size_t p = 0; p < GROUP; p++) {
            int32_t i = items[j + (p < m ? p : 0)];
            pan[p] = ix->panels + (size_t)(i / PANEL) * ix->panel_floats;
        }
        const float thr = INFINITY; /* the mask is not needed */
        if (width == 4) {           /* two calls: 16 accumulators would not fit its 16 registers */
            kernel4(1, 2, ix->dim, &q, pan, &thr, buf);
            kernel4(1, 2, ix->dim, &q, pan + 2, &thr, buf + 2 * PANEL);
        } else
            kernel8(1, 4, ix->dim, &q, pan, &thr, buf);
        for (size_t p = 0; p < m; p++)
            out[j + p] = buf[p * PANEL + items[j + p] % PANEL];
    }
}

static void scores_base(const eng_index_t *ix, const float *q, const int32_t *items, size_t n,
                        float *out)
{
    scores_items(4, ix, q, items, n, out);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void scores_avx2(const eng_index_t *ix, const float *q, const int32_t *items,
                                        size_t n, float *out)
{
    scores_items(8, ix, q, items, n, out);
}
#endif

/* AVX-512 runs the AVX2 instance: a lane's fused multiply-adds give the same bits at either
 * width, and one query against four items fills 8-float vectors. */
typedef void scores_fn(const eng_index_t *ix, const float *q, const int32_t *items, size_t n,
                       float *out);
static scores_fn *const scores_kinds[ENG_ISA_COUNT] =
    ENG_ISA_TABLE(scores_base, scores_avx2, scores_avx2);

int eng_index_scores(const eng_index_t *ix, const float *q, const int32_t *items, size_t n,
                     float *out)
{
    for (size_t j = 0; j < n; j++)
        if (items[j] < 0 || items[j] >= ix->n_items)
            return ENG_EINVAL;
    scores_kinds[ix->isa](ix, q, items, n, out);
    return 0;
}
