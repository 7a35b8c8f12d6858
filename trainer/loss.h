/* The training losses (pairwise ranking, pointwise, rating regression) and the layers that feed
 * them, as forward/backward pairs.
 *
 * Convention (llm.c): forward(out..., in..., sizes); backward(din..., dout, in..., sizes) ADDS into
 * din, so the caller zeroes gradients once per step. Every pair here has a finite-difference test
 * in tests/test_grad.c. */
#ifndef GNNREC_TRAINER_LOSS_H
#define GNNREC_TRAINER_LOSS_H

#include <stdint.h>

typedef enum { TRN_LOSS_BPR, TRN_LOSS_BCE, TRN_LOSS_MARGIN, TRN_LOSS_MSE } trn_loss_t;

/* The names in enum order, as the "loss" row of a hyper-parameter table lists them. */
#define TRN_LOSS_CHOICES "bpr|bce|margin|mse"

const char *trn_loss_name(trn_loss_t l);

/* A loss as a bit of a set (trn_model_ops_t.losses). */
#define TRN_LOSS_BIT(l) (1u << (l))

/* The loss of b positives, each with nneg negatives: positive scores pos[b], negative scores
 * neg[b x nneg] (row k holds positive k's negatives), and for mse the ratings target[b]:
 *   bpr:    mean over the b * nneg pairs of softplus(neg - pos)      (Rendle et al., as LightGCN)
 *   bce:    (sum over k of softplus(-pos[k]) + sum over j of softplus(neg[k][j])) / b
 *           (-log s(pos) - log(1 - s(neg)), the pointwise protocol of NCF)
 *   margin: mean over the pairs of max(0, margin - pos + neg)          (hinge)
 *   mse:    mean over k of (pos[k] - target[k])^2, without a 1/2, so that its square root is the
 *           batch's RMSE; neg is not read (rating batches have no negatives)
 * target is read only by mse (NULL is fine otherwise). With nneg 1 each ranking loss is the
 * familiar per-triple loss. Computed in double; softplus is evaluated stably for large
 * arguments. */
double trn_loss_forward(trn_loss_t l, const float *pos, const float *neg, const float *target,
                        int b, int nneg, float margin);

/* dpos[k] += dloss * d(loss)/d(pos[k]), dneg[k * nneg + j] likewise, for the loss above (mse
 * touches no dneg). */
void trn_loss_backward(trn_loss_t l, float *dpos, float *dneg, float dloss, const float *pos,
                       const float *neg, const float *target, int b, int nneg, float margin);

/* score[k] = dot(emb[ra[k]], emb[rb[k]]) for k < b; emb is [rows x dim]. */
void trn_dot_forward(float *score, const float *emb, const int32_t *ra, const int32_t *rb, int b,
                     int dim);

/* demb[ra[k]] += dscore[k] * emb[rb[k]] and demb[rb[k]] += dscore[k] * emb[ra[k]]. Serial, in k
 * order, so rows repeated in the batch accumulate deterministically. */
void trn_dot_backward(float *demb, const float *dscore, const float *emb, const int32_t *ra,
                      const int32_t *rb, int b, int dim);

/* Sum over k < n of ||emb[rows[k]]||^2 (rows may repeat; each occurrence counts), in double. */
double trn_l2_forward(const float *emb, const int32_t *rows, int n, int dim);

/* demb[rows[k]] += 2 * dl2 * emb[rows[k]] for each occurrence. */
void trn_l2_backward(float *demb, float dl2, const float *emb, const int32_t *rows, int n, int dim);

#endif
