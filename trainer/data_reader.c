/* Line reader for the data loader: big block reads, lines handed out in place.
 *
 * Loading gowalla's 810k pairs must take well under a second, so there is no per-line allocation
 * and no stdio line function: the reader keeps one buffer, finds line ends with memchr and only
 * moves the unread tail when it refills. The buffer grows (up to max_line) only for long lines. */
#include "trainer/data_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Initial buffer: also the window that format detection sees. */
#define READ_BLOCK (1024 * 1024)

int trn__reader_open(trn__reader_t *r, const char *path, eng_error_t *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->max_line = TRN_CSV_MAX_LINE;
    r->f = fopen(path, "rb");
    if (!r->f)
        return eng_error_set(err, ENG_EIO, "%s: %s", path, strerror(errno));
    r->cap = READ_BLOCK + 1;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        trn__reader_close(r);
        return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", path);
    }
    return ENG_OK;
}

void trn__reader_close(trn__reader_t *r)
{
    if (r->f)
        fclose(r->f);
    free(r->buf);
    r->f = NULL;
    r->buf = NULL;
}

/* Reads more of the file after the unread bytes, keeping one byte free for a terminator. Sets eof
 * when nothing more comes. */
static int fill(trn__reader_t *r, eng_error_t *err)
{
    int first = r->end == 0 && r->line == 0 && r->pos == 0;
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end + 1 >= r->cap) {
        size_t cap = r->cap * 2;
        if (cap > r->max_line + 2)
            cap = r->max_line + 2;
        if (cap <= r->cap) /* cannot happen: callers stop at max_line first */
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: line longer than %zu bytes", r->path,
                                 r->line + 1, r->max_line);
        char *b = realloc(r->buf, cap);
        if (!b)
            return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
        r->buf = b;
        r->cap = cap;
    }
    size_t got = 0;
    do {
        size_t n = fread(r->buf + r->end, 1, r->cap - 1 - r->end, r->f);
        if (n == 0) {
            if (ferror(r->f))
                return eng_error_set(err, ENG_EIO, "%s: %s", r->path, strerror(errno));
            r->eof = 1;
            break;
        }
        r->end += n;
        got += n;
    } while (r->end + 1 < r->cap && got < READ_BLOCK / 2);
    /* Spreadsheet exports often start with a UTF-8 byte-order mark; it is not part of the id. */
    if (first && r->end >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
        r->pos = 3;
    return ENG_OK;
}

/* The first bytes of the file (up to the initial buffer, 1 MiB) without consuming them; *at_eof
 * is set when they are the whole file. Only valid before the first trn__reader_next. Returns 0 or
 * ENG_EIO. */
static int peek(trn__reader_t *r, const char **buf, size_t *len, int *at_eof, eng_error_t *err)
{
    while (!r->eof && r->end + 1 < r->cap) {
        int rc = fill(r, err);
        if (rc < 0)
            return rc;
    }
    *buf = r->buf + r->pos;
    *len = r->end - r->pos;
    *at_eof = r->eof;
    return ENG_OK;
}

int trn__reader_next(trn__reader_t *r, char **line, size_t *len, eng_error_t *err)
{
    char *s, *nl;
    size_t n;
    for (;;) {
        s = r->buf + r->pos;
        nl = memchr(s, '\n', r->end - r->pos);
        if (nl) {
            n = (size_t)(nl - s);
            r->pos += n + 1;
            break;
        }
        if (r->end - r->pos > r->max_line)
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: line longer than %zu bytes", r->path,
                                 r->line + 1, r->max_line);
        if (r->eof) {
            if (r->pos == r->end)
                return 0;
            n = r->end - r->pos; /* last line without a newline */
            r->pos = r->end;
            break;
        }
        int rc = fill(r, err);
        if (rc < 0)
            return rc;
    }
    r->line++;
    if (n > r->max_line)
        return eng_error_set(err, ENG_EPARSE, "%s:%ld: line longer than %zu bytes", r->path,
                             r->line, r->max_line);
    if (memchr(s, '\0', n))
        return eng_error_set(err, ENG_EPARSE, "%s:%ld: NUL byte (binary file?)", r->path, r->line);
    if (n > 0 && s[n - 1] == '\r')
        n--;
    s[n] = '\0';
    *line = s;
    *len = n;
    return 1;
}

static int blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static int sample_lines(const char *buf, size_t len, int at_eof, trn__span_t *out, int max)
{
    int n = 0;
    size_t pos = 0;
    while (n < max && pos < len) {
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l;
        if (nl) {
            l = (size_t)(nl - s);
            pos += l + 1;
        } else if (at_eof) {
            l = len - pos;
            pos = len;
        } else {
            if (n > 0)
                break;
            /* A first line longer than the window: judge its complete tokens. */
            l = len - pos;
            while (l > 0 && s[l - 1] != ' ' && s[l - 1] != '\t')
                l--;
            pos = len;
        }
        if (l > 0 && s[l - 1] == '\r')
            l--;
        if (!blank_line(s, l))
            out[n++] = (trn__span_t){s, l};
    }
    return n;
}

int trn__reader_sample(trn__reader_t *r, trn__span_t *out, int max, eng_error_t *err)
{
    const char *buf;
    size_t len;
    int at_eof;
    int rc = peek(r, &buf, &len, &at_eof, err);
    return rc < 0 ? rc : sample_lines(buf, len, at_eof, out, max);
}
