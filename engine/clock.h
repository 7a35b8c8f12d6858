/* Clocks: monotonic seconds for progress, rates and timings; calendar time (unix seconds, UTC)
 * and its ISO-8601 text for what is stored and shown. */
#ifndef GNNREC_ENGINE_CLOCK_H
#define GNNREC_ENGINE_CLOCK_H

#include <stddef.h>
#include <time.h>

static inline double eng_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The calendar time in unix seconds, with its fraction. */
static inline double eng_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes of "2026-12-01T10:00:00Z" and its NUL. */
#define ENG_UTC_LEN 21

/* Unix time t (whole seconds taken) as "YYYY-MM-DDTHH:MM:SSZ" into buf. */
void eng_utc_format(double t, char buf[ENG_UTC_LEN]);

/* An ISO-8601 UTC time, "2026-12-01", "2026-12-01T10:00:00Z" or with a fraction of a second
 * ("...:00.250Z"), into unix seconds; 0, or ENG_EPARSE for anything else (another zone
 * included: the store keeps UTC). */
int eng_utc_parse(const char *s, double *out);

#endif
