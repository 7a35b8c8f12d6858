/* Adam optimiser over one flat parameter block (PyTorch's torch.optim.Adam semantics).
 *
 * Parameters, gradients and both moments mirror one layout, so one loop updates a whole model. */
#ifndef GNNREC_ENGINE_ADAM_H
#define GNNREC_ENGINE_ADAM_H

#include <stddef.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* weight_decay: coupled L2, as torch (default 0) */
    long step;                                 /* steps taken so far */
} eng_adam_t;

/* Adam with torch's defaults (betas 0.9, 0.999; eps 1e-8) and learning rate lr. */
eng_adam_t eng_adam_defaults(float lr);

/* One step over n parameters: increments a->step, updates moments m, v and params p from
 * gradients g (read only). Threaded over `threads` static chunks; elementwise, so the result does
 * not depend on the thread count. */
void eng_adam_update(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                     int threads);

#endif
