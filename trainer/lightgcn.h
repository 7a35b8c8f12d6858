/* LightGCN (He et al., SIGIR 2020): embeddings propagated over the normalised user-item graph,
 * the layers averaged with layer 0; no feature transforms, no non-linearities.
 *
 * The propagation is exposed as a forward/backward pair so tests can check it by finite
 * differences; the model itself registers as trn_lightgcn_ops (kind "lightgcn"). */
#ifndef GNNREC_TRAINER_LIGHTGCN_H
#define GNNREC_TRAINER_LIGHTGCN_H

#include "engine/csr.h"

/* out[n x dim] = (e0 + A e0 + ... + A^layers e0) / (layers + 1), with A = adj [n x n].
 * layer_buf: [layers x n x dim] scratch that receives A^l e0 for l = 1..layers. */
void trn_lgn_propagate_forward(float *out, float *layer_buf, const eng_csr_t *adj, const float *e0,
                               int dim, int layers, int threads);

/* de0[n x dim] += d(out)/d(e0)^T dout = (dout + A dout + ... + A^layers dout) / (layers + 1), which
 * holds because adj is symmetric. scratch: [2 x n x dim]. */
void trn_lgn_propagate_backward(float *de0, float *scratch, const float *dout, const eng_csr_t *adj,
                                int dim, int layers, int threads);

#endif
