/* Deterministic pseudo-random numbers (xoshiro256**, seeded by splitmix64).
 *
 * Every random choice in gnnrec (initialisation, sampling, splits, synthetic data) draws from an
 * eng_rng_t seeded from --seed, so the same seed reproduces the same model. Independent streams
 * (one per thread, one per purpose) come from eng_rng_seed with distinct stream numbers. */
#ifndef GNNREC_ENGINE_RNG_H
#define GNNREC_ENGINE_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} eng_rng_t;

static inline uint64_t eng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void eng_rng_seed(eng_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = eng_splitmix64(&x);
}

static inline uint64_t eng_rng_next(eng_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is irrelevant here). */
static inline uint32_t eng_rng_below(eng_rng_t *r, uint32_t n)
{
    return (uint32_t)(((eng_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform double in [0, 1). */
static inline double eng_rng_uniform(eng_rng_t *r)
{
    return (double)(eng_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller, one value per call). */
static inline double eng_rng_normal(eng_rng_t *r)
{
    double u1 = eng_rng_uniform(r), u2 = eng_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
