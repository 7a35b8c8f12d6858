/* The training losses and the dot-product and L2 layers that feed them. */
#include "trainer/loss.h"
#include "engine/vec.h"

#include <math.h>
#include <string.h>

const char *trn_loss_name(trn_loss_t l)
{
    static const char *names[] = {"bpr", "bce", "margin", "mse"};
    _Static_assert(sizeof names / sizeof *names == TRN_LOSS_MSE + 1, "a name for every loss");
    return names[l];
}

static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* What the loss is a mean over: (positive, negative) pairs for the pairwise losses; positives for
 * BCE, whose terms are one per scored item (the pointwise protocol of NCF), and for MSE. */
static double pair_count(trn_loss_t l, int b, int nneg)
{
    return l == TRN_LOSS_BCE || l == TRN_LOSS_MSE ? (double)b : (double)b * nneg;
}

static double sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double trn_loss_forward(trn_loss_t l, const float *pos, const float *neg, const float *target,
                        int b, int nneg, float margin)
{
    double sum = 0;
    if (l == TRN_LOSS_MSE) {
        for (int k = 0; k < b; k++)
            sum += ((double)pos[k] - target[k]) * ((double)pos[k] - target[k]);
        return b > 0 ? sum / b : 0.0;
    }
    for (int k = 0; k < b; k++) {
        const double p = pos[k];
        const float *nk = neg + (size_t)k * nneg;
        double s = l == TRN_LOSS_BCE ? softplus(-p) : 0;
        for (int j = 0; j < nneg; j++) {
            double n = nk[j];
            switch (l) {
            case TRN_LOSS_BPR:
                s += softplus(n - p);
                break;
            case TRN_LOSS_BCE:
                s += softplus(n);
                break;
            case TRN_LOSS_MARGIN:
                s += fmax(0.0, margin - p + n);
                break;
            case TRN_LOSS_MSE: /* handled above */
                break;
            }
        }
        sum += s;
    }
    return b > 0 ? sum / pair_count(l, b, nneg) : 0.0;
}

void trn_loss_backward(trn_loss_t l, float *dpos, float *dneg, float dloss, const float *pos,
                       const float *neg, const float *target, int b, int nneg, float margin)
{
    if (b <= 0)
        return;
    const double scale = (double)dloss / pair_count(l, b, nneg);
    if (l == TRN_LOSS_MSE) {
        for (int k = 0; k < b; k++)
            dpos[k] += (float)(scale * 2.0 * ((double)pos[k] - target[k]));
        return;
    }
    for (int k = 0; k < b; k++) {
        const double p = pos[k];
        const float *nk = neg + (size_t)k * nneg;
        float *dnk = dneg + (size_t)k * nneg;
        double gp = l == TRN_LOSS_BCE ? -sigmoid(-p) : 0;
        for (int j = 0; j < nneg; j++) {
            double n = nk[j], gn = 0;
            switch (l) {
            case TRN_LOSS_BPR:
                gn = sigmoid(n - p);
                gp -= gn;
                break;
            case TRN_LOSS_BCE:
                gn = sigmoid(n);
                break;
            case TRN_LOSS_MARGIN:
                if (margin - p + n > 0) {
                    gp -= 1;
                    gn = 1;
                }
                break;
            case TRN_LOSS_MSE: /* handled above */
                break;
            }
            dnk[j] += (float)(scale * gn);
        }
        dpos[k] += (float)(scale * gp);
    }
}

void trn_dot_forward(float *score, const float *emb, const int32_t *ra, const int32_t *rb, int b,
                     int dim)
{
    for (int k = 0; k < b; k++) {
        score[k] = eng_dot(emb + (size_t)ra[k] * dim, emb + (size_t)rb[k] * dim, dim);
    }
}

void trn_dot_backward(float *demb, const float *dscore, const float *emb, const int32_t *ra,
                      const int32_t *rb, int b, int dim)
{
    for (int k = 0; k < b; k++) {
        const float *x = emb + (size_t)ra[k] * dim, *y = emb + (size_t)rb[k] * dim;
        float *dx = demb + (size_t)ra[k] * dim, *dy = demb + (size_t)rb[k] * dim;
        const float d = dscore[k];
        for (int j = 0; j < dim; j++) {
            dx[j] += d * y[j];
            dy[j] += d * x[j];
        }
    }
}

double trn_l2_forward(const float *emb, const int32_t *rows, int n, int dim)
{
    double sum = 0;
    for (int k = 0; k < n; k++) {
        const float *x = emb + (size_t)rows[k] * dim;
        sum += eng_dot(x, x, dim); /* a row in float lanes, the rows in double */
    }
    return sum;
}

void trn_l2_backward(float *demb, float dl2, const float *emb, const int32_t *rows, int n, int dim)
{
    for (int k = 0; k < n; k++) {
        const float *x = emb + (size_t)rows[k] * dim;
        float *dx = demb + (size_t)rows[k] * dim;
        for (int j = 0; j < dim; j++)
            dx[j] += 2.0f * dl2 * x[j];
    }
}
