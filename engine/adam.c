/* Adam optimiser. */
#include "engine/adam.h"

#include <math.h>

eng_adam_t eng_adam_defaults(float lr)
{
    return (eng_adam_t){.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
}

void eng_adam_update(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                     int threads)
{
    a->step++;
    /* Same arithmetic as torch.optim.Adam (non-fused): p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
     */
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps, wd = a->weight_decay;
    const float bc1 = 1.0f - powf(b1, (float)a->step), bc2 = 1.0f - powf(b2, (float)a->step);
    const float step_size = a->lr / bc1, bc2_sqrt = sqrtf(bc2);
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
