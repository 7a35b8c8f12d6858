/* engine/clock.c: ISO-8601 UTC text to unix seconds and back; what is not such a time is
 * refused, not guessed at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/clock.h"
#include "engine/err.h"

#include <math.h>
#include <string.h>

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double want;
    } good[] = {
        {"1970-01-01", 0},
        {"2026-12-01", 1796083200},
        {"2026-12-01T10:00:00Z", 1796083200 + 36000},
        {"2026-12-01T10:00:00.25Z", 1796083200 + 36000.25},
        {"2024-02-29T23:59:59Z", 1709251199},
    };
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        double t = -1;
        assert_int_equal(eng_utc_parse(good[k].text, &t), ENG_OK);
        if (fabs(t - good[k].want) > 1e-6)
            fail_msg("%s: %.3f, want %.3f", good[k].text, t, good[k].want);
    }
    static const char *const bad[] = {
        "",
        "2026-12-1",
        "2026-13-01",
        "2026-02-30",
        "2025-02-29",
        "2026-12-01T10:00:00",
        "2026-12-01T10:00:00+00:00",
        "2026-12-01T24:00:00Z",
        "2026-12-01T10:00:00.Z",
        "2026-12-01T10:00:00.5e3Z",
        "2026-12-01 10:00:00Z",
        "2026-12-01T10:00Z",
        "1796083200",
        "2026-12-01T10:00:00Zjunk",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        double t = 42;
        if (eng_utc_parse(bad[k], &t) != ENG_EPARSE)
            fail_msg("'%s' was taken as %.3f", bad[k], t);
        assert_true(t == 42);
    }
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[ENG_UTC_LEN];
    eng_utc_format(1796083200 + 36000.75, buf);
    assert_string_equal(buf, "2026-12-01T10:00:00Z");
    double t;
    assert_int_equal(eng_utc_parse(buf, &t), ENG_OK);
    assert_true(t == 1796083200 + 36000);
    assert_true(eng_unix_now() > 1.7e9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
