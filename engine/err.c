/* Error code table and error-detail helpers. */
#include "engine/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *eng_strerror(int code)
{
    switch (code) {
    case ENG_OK:
        return "ok";
#define X(name, val, msg)                                                                          \
    case ENG_E##name:                                                                              \
        return msg;
        ENG_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

int eng_error_set(eng_error_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *eng_error_text(const eng_error_t *err, int code)
{
    if (err && err->msg[0])
        return err->msg;
    return eng_strerror(code);
}
