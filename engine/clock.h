/* Monotonic wall-clock seconds, for progress, rates and timings. */
#ifndef GNNREC_ENGINE_CLOCK_H
#define GNNREC_ENGINE_CLOCK_H

#include <time.h>

static inline double eng_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
