/* Knowledge-graph embedding layers: the translation distances of TransE and TransR and the
 * relation projection TransR and KGAT apply, as forward/backward pairs.
 *
 * Convention (llm.c, as trainer/loss.h): forward(out..., in..., sizes); backward(din..., dout,
 * in..., sizes) ADDS into every gradient it is given. Rows are gathered before these layers
 * (trn_gather_forward), so each works on [n x d] arrays of a batch. Every pair has a
 * finite-difference test in tests/test_grad.c. trn_dist_loss, the ranking loss over distances
 * both kinds train with, is checked through their objectives (tests/test_models.c). */
#ifndef GNNREC_TRAINER_KGE_H
#define GNNREC_TRAINER_KGE_H

#include "trainer/loss.h"

#include <stdint.h>

/* The distance a translation model scores a triple by. */
typedef enum {
    TRN_DIST_L1,   /* ||x||_1: TransE's dissimilarity L1 */
    TRN_DIST_L2,   /* ||x||_2: TransE's dissimilarity L2 (not squared) */
    TRN_DIST_L2SQ, /* ||x||_2^2: TransR's score, as the KGAT code computes it */
} trn_dist_t;

/* dist[k] = ||h[k] + rel[r[k]] - t[k]|| in the distance `kind`, for k < n: h and t [n x d] are
 * the batch's (gathered, or projected) head and tail rows, rel [.. x d] the relation table. */
void trn_trans_forward(float *dist, const float *h, const float *rel, const float *t,
                       const int32_t *r, int n, int d, trn_dist_t kind);

/* dh[k] += ddist[k] * g, drel[r[k]] += ddist[k] * g and dt[k] -= ddist[k] * g, with g the
 * distance's gradient at x = h[k] + rel[r[k]] - t[k]: sign(x) for L1 (0 at 0), x / ||x|| for L2
 * (0 when x = 0), 2x for L2SQ. Any gradient may be NULL. drel accumulates in k order (rows repeat
 * across a batch), so it is deterministic. */
void trn_trans_backward(float *dh, float *drel, float *dt, const float *ddist, const float *dist,
                        const float *h, const float *rel, const float *t, const int32_t *r, int n,
                        int d, trn_dist_t kind);

/* The ranking loss l (trainer/loss.h) of n triples' distances dpos[n] against their nneg
 * corrupted triples' dneg[n x nneg], a triple scored by minus its distance (TransE's margin loss,
 * KGAT's softplus of the difference); spos [n] and sneg [n x nneg] receive those scores. Writes
 * the loss's gradient with respect to each distance into gpos and gneg (not added) and returns
 * the mean loss. */
double trn_dist_loss(trn_loss_t l, float *gpos, float *gneg, float *spos, float *sneg,
                     const float *dpos, const float *dneg, int n, int nneg, float margin);

/* out[k] = x[k] proj[r[k]] for k < n: each row of x [n x d] through its relation's projection
 * proj[r] [d x dr] (TransR's M_r, KGAT's W_r), out [n x dr]. One sgemm per run of rows with the
 * same relation (loops for a short run), the runs shared among `threads` OpenMP threads: sort a
 * batch by relation for speed. The result does not depend on the thread count. */
void trn_project_forward(float *out, const float *x, const float *proj, const int32_t *r, int n,
                         int d, int dr, int threads);

/* dx[k] += dout[k] proj[r[k]]^T and dproj[r[k]] += x[k]^T dout[k]; either may be NULL. The runs
 * go to threads as forward's when each relation is one run (r sorted), else to one thread. */
void trn_project_backward(float *dx, float *dproj, const float *dout, const float *x,
                          const float *proj, const int32_t *r, int n, int d, int dr, int threads);

#endif
