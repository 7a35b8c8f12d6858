/* Calendar time as ISO-8601 UTC text (see engine/clock.h). */
#include "engine/clock.h"
#include "engine/err.h"

#include <stdio.h>
#include <string.h>

void eng_utc_format(double t, char buf[ENG_UTC_LEN])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, ENG_UTC_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* n decimal digits at s into *v. */
static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return 0;
        *v = *v * 10 + (s[k] - '0');
    }
    return 1;
}

int eng_utc_parse(const char *s, double *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return ENG_EPARSE;
    const char *p = s + 10;
    double frac = 0;
    if (*p == 'T') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || p[6] != ':' ||
            !digits(p + 7, 2, &se))
            return ENG_EPARSE;
        p += 9;
        if (*p == '.') { /* digits only: strtod would take "5e3" too */
            double unit = 0.1;
            if (p[1] < '0' || p[1] > '9')
                return ENG_EPARSE;
            for (p++; *p >= '0' && *p <= '9'; p++, unit /= 10)
                frac += (*p - '0') * unit;
        }
        if (*p++ != 'Z')
            return ENG_EPARSE;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return ENG_EPARSE;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-31 into March: a date that moved was not a date */
    if (tm.tm_mday != d || tm.tm_mon != mo - 1)
        return ENG_EPARSE;
    *out = (double)t + frac;
    return ENG_OK;
}
