/* Argument parsing for the subcommands: numbers and times. */
#include "cli/cli.h"
#include "engine/clock.h"
#include "engine/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "gnnrec: --%s: expected an integer in %ld..%ld, got '%s'\n", flag, lo, hi,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "gnnrec: --%s: expected a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_time(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!errno && end != s && v >= 0 && isfinite(v)) {
        static const struct {
            char unit;
            double secs;
        } ages[] = {{'\0', 0}, {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
        for (size_t k = 0; k < sizeof ages / sizeof *ages; k++)
            if (*end == ages[k].unit && (k == 0 || end[1] == '\0')) {
                *out = k == 0 ? v : eng_unix_now() - v * ages[k].secs;
                return 0;
            }
    }
    if (eng_utc_parse(s, out) == 0)
        return 0;
    fprintf(stderr,
            "gnnrec: --%s: expected unix seconds, a UTC date or time (2026-11-01, "
            "2026-11-01T06:00:00Z) or an age (90d, 12h, 30m, 45s), got '%s'\n",
            flag, s);
    return -1;
}
