/* Adam optimiser over one flat parameter block (PyTorch's torch.optim.Adam semantics).
 *
 * Parameters, gradients and both moments mirror one layout, so one loop updates a whole model. */
#ifndef GNNREC_ENGINE_ADAM_H
#define GNNREC_ENGINE_ADAM_H

#include <stddef.h>
#include <stdint.h>

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

/* The gradient of a table at the start of a parameter block, [rows x dim], given by row: row r
 * has a gradient when pos[r] >= 0, zero when pos[r] < 0; that gradient is grad + pos[r] * dim,
 * or, when grad is NULL, what row(rg, r, pos[r], out) writes into out [dim] (a gradient summed on
 * demand, from what the caller keeps in ctx; called in ascending r within each thread's share of
 * the rows, from several threads at once). For an
 * embedding table a batch touches a few rows of: the gradient takes memory for those rows only,
 * or none. */
typedef struct eng_row_grads {
    size_t rows;
    int dim;
    const int32_t *pos; /* [rows] */
    const float *grad;  /* [max pos + 1 x dim], or NULL */
    void (*row)(const struct eng_row_grads *rg, size_t r, int32_t pos, float *out);
    const void *ctx;
} eng_row_grads_t;

/* eng_adam_update with the gradient of the first rg->rows * rg->dim parameters from rg, and of
 * the others from g (indexed as p: g's first rg->rows * rg->dim floats are not read, so they need
 * no memory behind them). Every parameter is updated, a row without a gradient as with a zero
 * one: the same bits as eng_adam_update given the whole gradient, zeros included. */
void eng_adam_update_rows(eng_adam_t *a, float *p, const float *g, float *m, float *v, size_t n,
                          const eng_row_grads_t *rg, int threads);

#endif
