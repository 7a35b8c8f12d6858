/* Error codes and the error-detail struct shared by every gnnrec module.
 *
 * Functions return 0 on success or a negative ENG_E* code. Functions that can fail for a reason
 * a user must see (a bad data line, a broken store) also take an `eng_error_t *` (may be NULL) and
 * fill it with the code and a one-line message such as "data.csv:17: expected 2 columns, got 1".
 * Deep code never prints; the CLI and the HTTP layer decide what the user sees. */
#ifndef GNNREC_ENGINE_ERR_H
#define GNNREC_ENGINE_ERR_H

#define ENG_ERRNO_MAP(X)                                                                           \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(IO, -2, "i/o error")                                                                         \
    X(PARSE, -3, "malformed input")                                                                \
    X(EMPTY, -4, "empty dataset")                                                                  \
    X(INVAL, -5, "invalid argument")                                                               \
    X(DB, -6, "database error")                                                                    \
    X(NOTFOUND, -7, "not found")                                                                   \
    X(CORRUPT, -8, "corrupt data")                                                                 \
    X(RANGE, -9, "value out of range")

enum {
    ENG_OK = 0,
#define X(name, val, msg) ENG_E##name = (val),
    ENG_ERRNO_MAP(X)
#undef X
};

typedef struct {
    int code;
    char msg[512];
} eng_error_t;

/* The static text for a code ("unknown error" for codes not in the table). */
const char *eng_strerror(int code);

/* Fills err (if not NULL) with code and a printf-formatted message; returns code, so that
 * `return eng_error_set(err, ENG_EPARSE, "%s:%ld: ...", ...)` reads as one statement. */
int eng_error_set(eng_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message in err, or eng_strerror(code) when err is NULL or has no message. */
const char *eng_error_text(const eng_error_t *err, int code);

#endif
