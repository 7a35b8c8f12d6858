/* Dense kernels on one row (engine/vec.h). */
#include "engine/vec.h"

#include <math.h>
#include <string.h>

void eng_vecmat(float *out, const float *x, const float *w, const float *b, int din, int dout)
{
    if (b)
        memcpy(out, b, (size_t)dout * sizeof *out);
    else
        memset(out, 0, (size_t)dout * sizeof *out);
    for (int i = 0; i < din; i++) {
        const float xi = x[i], *wi = w + (size_t)i * dout;
        for (int j = 0; j < dout; j++)
            out[j] += xi * wi[j];
    }
}

float eng_dot(const float *a, const float *b, int d)
{
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= d; j += 8)
        for (int t = 0; t < 8; t++)
            acc[t] += a[j + t] * b[j + t];
    for (int t = 0; j < d; j++, t++)
        acc[t] += a[j] * b[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Written as the sum of two selects of x or 0, which GCC turns into vector blends; the form
 * "x > 0 ? x : slope * x" stays a branch, mispredicted half the time on activations of random
 * sign (measured: a tenth of a GCN training batch). Same values, up to the sign of a zero. */
void eng_lrelu(float *out, const float *in, float slope, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float x = in[i], pos = x > 0.0f ? x : 0.0f, neg = x > 0.0f ? 0.0f : x;
        out[i] = pos + slope * neg;
    }
}

/* The exponential is computed for every entry (of min(x, 0)) and selected afterwards: computed
 * only in the select's arm, it stays a branch (GCC may not run a float operation the program did
 * not ask for), and the loop is not vectorised. */
void eng_elu(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float x = in[i], em1 = eng_exp(x > 0.0f ? 0.0f : x) - 1.0f;
        out[i] = x > 0.0f ? x : em1;
    }
}

float eng_l2norm(float *out, const float *in, int d)
{
    double ss = 0;
    for (int j = 0; j < d; j++)
        ss += (double)in[j] * in[j];
    const float norm = (float)sqrt(fmax(ss, ENG_L2NORM_FLOOR));
    for (int j = 0; j < d; j++)
        out[j] = in[j] / norm;
    return norm;
}

void eng_head_mean(float *out, const float *in, int heads, int d)
{
    const float inv = 1.0f / (float)heads;
    for (int j = 0; j < d; j++) {
        float s = 0;
        for (int h = 0; h < heads; h++)
            s += in[(size_t)h * d + j];
        out[j] = s * inv;
    }
}

void eng_softmax(float *out, const float *in, size_t n)
{
    if (n == 0)
        return;
    float mx = in[0];
    for (size_t k = 1; k < n; k++)
        mx = fmaxf(mx, in[k]);
    for (size_t k = 0; k < n; k++)
        out[k] = eng_exp(in[k] - mx);
    double sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += out[k];
    const float inv = (float)(1.0 / sum);
    for (size_t k = 0; k < n; k++)
        out[k] *= inv;
}
