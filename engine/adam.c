/* Adam optimiser. */
#include "engine/adam.h"
#include "engine/simd.h"

#include <math.h>
#include <string.h>

eng_adam_t eng_adam_defaults(float lr)
{
    return (eng_adam_t){.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
}

/* A step's constants: p -= step_size * m / (sqrt(v) / bc2_sqrt + eps). */
typedef struct {
    float b1, b2, eps, wd, step_size, bc2_sqrt;
} step_t;

static step_t next_step(eng_adam_t *a)
{
    a->step++;
    const float bc1 = 1.0f - powf(a->beta1, (float)a->step);
    const float bc2 = 1.0f - powf(a->beta2, (float)a->step);
    return (step_t){a->beta1, a->beta2, a->eps, a->weight_decay, a->lr / bc1, sqrtf(bc2)};
}

/* Same arithmetic as torch.optim.Adam (non-fused): p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). */
static inline void update(const step_t *s, float *p, float g, float *m, float *v)
{
    float gi = g + s->wd * *p;
    float mi = s->b1 * *m + (1.0f - s->b1) * gi;
    float vi = s->b2 * *v + (1.0f - s->b2) * gi * gi;
    *m = mi;
    *v = vi;
    *p -= s->step_size * mi / (sqrtf(vi) / s->bc2_sqrt + s->eps);
}

/* The loop over a run of entries, built per CPU kind: restrict lets it vectorise (sqrt and
 * division are exact in every width, so the kinds differ only where a wider kind fuses a multiply
 * and an add, as the sparse products do). */
#define RUN_ARGS                                                                                   \
    const step_t *s, float *restrict p, const float *restrict g, float *restrict m,                \
        float *restrict v, size_t n

static inline void run_kernel(RUN_ARGS)
{
    const step_t c = *s; /* in registers for the whole loop */
    for (size_t i = 0; i < n; i++)
        update(&c, p + i, g[i], m + i, v + i);
}

static void run_baseline(RUN_ARGS)
{
    run_kernel(s, p, g, m, v, n);
}

#if ENG_SIMD_X86
ENG_TARGET_AVX2 static void run_avx2(RUN_ARGS)
{
    run_kernel(s, p, g, m, v, n);
}

ENG_TARGET_AVX512 static void run_avx512(RUN_ARGS)
{
    run_kernel(s, p, g, m, v, n);
}
#endif

typedef void run_fn(RUN_ARGS);
static run_fn *const run_kinds[ENG_ISA_COUNT] = ENG_ISA_TABLE(run_baseline, run_avx2, run_avx512);

/* Entries per run: fixed, so a thread's share never splits a vector differently. */
#define RUN 4096

/* Runs [lo, hi) shared among the threads. */
static void update_range(const step_t *s, float *p, const float *g, float *m, float *v, size_t lo,
                         size_t hi, int threads)
{
    run_fn *run = run_kinds[eng_isa()];
    const size_t runs = (hi - lo + RUN - 1) / RUN;
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (size_t r = 0; r < runs; r++) {
        const size_t i = lo + r * RUN, len = hi - i < RUN ? hi - i : RUN;
        run(s, p + i, g + i, m + i, v + i, len);
    }
}

void eng_adam_update(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                     int threads)
{
    const step_t s = next_step(a);
    update_range(&s, p, g, m, v, 0, n, threads);
}

void eng_adam_update_rows(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                          const eng_row_grads_t *rg, int threads)
{
    const step_t s = next_step(a);
    const size_t d = (size_t)rg->dim, head = rg->rows * d;
    run_fn *run = run_kinds[eng_isa()];
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        float own[d], zero[d]; /* a row summed on demand; a row without a gradient */
        memset(zero, 0, sizeof zero);
#pragma omp for schedule(static)
        for (size_t r = 0; r < rg->rows; r++) {
            const float *gr = zero;
            if (rg->pos[r] >= 0 && rg->grad)
                gr = rg->grad + (size_t)rg->pos[r] * d;
            else if (rg->pos[r] >= 0) {
                rg->row(rg, r, rg->pos[r], own);
                gr = own;
            }
            run(&s, p + r * d, gr, m + r * d, v + r * d, d);
        }
    }
    update_range(&s, p, g, m, v, head, n, threads);
}
