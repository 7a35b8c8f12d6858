/* Adam optimiser. */
#include "engine/adam.h"

#include <math.h>

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

void eng_adam_update(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                     int threads)
{
    const step_t s = next_step(a);
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (size_t i = 0; i < n; i++)
        update(&s, p + i, g[i], m + i, v + i);
}

void eng_adam_update_rows(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                          const eng_row_grads_t *rg, int threads)
{
    const step_t s = next_step(a);
    const size_t d = (size_t)rg->dim, head = rg->rows * d;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        float own[rg->grad ? 1 : d]; /* a row summed on demand */
#pragma omp for schedule(static)
        for (size_t r = 0; r < rg->rows; r++) {
            const float *gr = NULL;
            if (rg->pos[r] >= 0 && rg->grad)
                gr = rg->grad + (size_t)rg->pos[r] * d;
            else if (rg->pos[r] >= 0) {
                rg->row(rg, r, rg->pos[r], own);
                gr = own;
            }
            for (size_t j = 0, i = r * d; j < d; j++, i++)
                update(&s, p + i, gr ? gr[j] : 0.0f, m + i, v + i);
        }
#pragma omp for schedule(static)
        for (size_t i = head; i < n; i++)
            update(&s, p + i, g[i], m + i, v + i);
    }
}
