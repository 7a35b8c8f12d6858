/* Pairwise ranking losses and the dot-product and L2 layers that feed them. */
#include "trainer/loss.h"

#include <math.h>
#include <string.h>

int trn_loss_parse(const char *s)
{
    if (strcmp(s, "bpr") == 0)
        return TRN_LOSS_BPR;
    if (strcmp(s, "bce") == 0)
        return TRN_LOSS_BCE;
    if (strcmp(s, "margin") == 0)
        return TRN_LOSS_MARGIN;
    return -1;
}

const char *trn_loss_name(trn_loss_t l)
{
    static const char *names[] = {"bpr", "bce", "margin"};
    return names[l];
}

static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double trn_loss_forward(trn_loss_t l, const float *pos, const float *neg, int b, float margin)
{
    double sum = 0;
    for (int k = 0; k < b; k++) {
        double p = pos[k], n = neg[k];
        switch (l) {
        case TRN_LOSS_BPR:
            sum += softplus(n - p);
            break;
        case TRN_LOSS_BCE:
            sum += softplus(-p) + softplus(n);
            break;
        case TRN_LOSS_MARGIN:
            sum += fmax(0.0, margin - p + n);
            break;
        }
    }
    return b > 0 ? sum / b : 0.0;
}

void trn_loss_backward(trn_loss_t l, float *dpos, float *dneg, float dloss, const float *pos,
                       const float *neg, int b, float margin)
{
    if (b <= 0)
        return;
    const double scale = (double)dloss / b;
    for (int k = 0; k < b; k++) {
        double p = pos[k], n = neg[k], gp = 0, gn = 0;
        switch (l) {
        case TRN_LOSS_BPR:
            gn = sigmoid(n - p);
            gp = -gn;
            break;
        case TRN_LOSS_BCE:
            gp = -sigmoid(-p);
            gn = sigmoid(n);
            break;
        case TRN_LOSS_MARGIN:
            if (margin - p + n > 0) {
                gp = -1;
                gn = 1;
            }
            break;
        }
        dpos[k] += (float)(scale * gp);
        dneg[k] += (float)(scale * gn);
    }
}

void trn_dot_forward(float *score, const float *emb, const int32_t *ra, const int32_t *rb, int b,
                     int dim)
{
    for (int k = 0; k < b; k++) {
        const float *x = emb + (size_t)ra[k] * dim, *y = emb + (size_t)rb[k] * dim;
        float s = 0;
        for (int j = 0; j < dim; j++)
            s += x[j] * y[j];
        score[k] = s;
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
        for (int j = 0; j < dim; j++)
            sum += (double)x[j] * x[j];
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
