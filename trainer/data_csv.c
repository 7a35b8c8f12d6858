/* CSV/TSV interaction logs: `user,item[,weight][,timestamp]` with arbitrary string ids.
 *
 * The delimiter and a header line are detected from the first lines of each file; with a header,
 * columns are matched by name. Fields are split in place in the reader's buffer (quoted fields
 * unescaped in place), so a row costs no allocation beyond new ids in the id maps. The rules are
 * spelled out in docs/data.md. */
#include "trainer/data_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fields of a row that are looked at; later ones are counted but ignored. */
#define MAX_FIELDS 64
#define SAMPLE_LINES 32
/* Delimiter value meaning "runs of spaces and tabs". */
#define DELIM_BLANKS 0
/* How much of a bad field an error message quotes. */
#define SHOW 64

typedef struct {
    char *p;
    size_t len;
} field_t;

enum { SPLIT_OK, SPLIT_UNTERMINATED, SPLIT_AFTER_QUOTE };

static int is_blank(int c, int delim)
{
    return (c == ' ' || c == '\t') && c != delim;
}

/* Splits the NUL-terminated line s[0, len) at delim (DELIM_BLANKS: at runs of blanks) into fields
 * with surrounding blanks trimmed and double quotes removed ("" inside quotes is one quote; a
 * quoted field may hold the delimiter). Stores the first maxf fields in f, each followed by a NUL
 * written into s, and their total number in *nf. Returns SPLIT_OK or the kind of quoting error. */
static int split_fields(char *s, size_t len, int delim, field_t *f, int maxf, int *nf)
{
    char *p = s, *end = s + len;
    int n = 0;
    for (;;) {
        while (p < end && is_blank(*p, delim))
            p++;
        char *b, *e;
        if (p < end && *p == '"') {
            char *w = ++p;
            b = w;
            for (;;) {
                if (p == end)
                    return SPLIT_UNTERMINATED;
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            e = w;
            char *q = p;
            while (p < end && is_blank(*p, delim))
                p++;
            if (p < end && (delim == DELIM_BLANKS ? p == q : *p != delim))
                return SPLIT_AFTER_QUOTE;
        } else {
            b = p;
            while (p < end && (delim == DELIM_BLANKS ? !is_blank(*p, delim) : *p != delim))
                p++;
            e = p;
            while (e > b && is_blank(e[-1], delim))
                e--;
        }
        if (n < maxf)
            f[n] = (field_t){b, (size_t)(e - b)};
        n++;
        if (delim == DELIM_BLANKS) {
            while (p < end && is_blank(*p, delim))
                p++;
            if (p == end)
                break;
        } else {
            if (p == end)
                break;
            p++;
        }
    }
    /* Terminate only now: a terminator may land on a delimiter the scan above still needed. */
    for (int j = 0; j < n && j < maxf; j++)
        f[j].p[f[j].len] = '\0';
    *nf = n;
    return SPLIT_OK;
}

/* Fields of s[0, len) at delim, counted without modifying s (for delimiter detection). */
static int count_fields(const char *s, size_t len, int delim)
{
    int n = 0, quoted = 0, in_field = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"')
            quoted = !quoted;
        if (quoted)
            continue;
        if (delim == DELIM_BLANKS) {
            int blank = c == ' ' || c == '\t';
            if (!blank && !in_field)
                n++;
            in_field = !blank;
        } else if (c == delim) {
            n++;
        }
    }
    return delim == DELIM_BLANKS ? n : n + 1;
}

/* The delimiter under which most sample lines have at least two fields; ties go to the earlier
 * candidate, so a tab-separated file whose titles hold commas stays tab-separated. */
static int detect_delim(const trn__span_t *lines, int n)
{
    static const int cand[] = {'\t', ',', ';', '|', DELIM_BLANKS};
    int best = DELIM_BLANKS, best_score = -1;
    for (size_t c = 0; c < sizeof cand / sizeof cand[0]; c++) {
        int score = 0;
        for (int k = 0; k < n; k++)
            score += count_fields(lines[k].p, lines[k].len, cand[c]) >= 2;
        if (score > best_score) {
            best = cand[c];
            best_score = score;
        }
    }
    return best;
}

/* Non-zero when the whole field is a finite number (strtod syntax). */
static int numeric(const field_t *f, double *v)
{
    if (f->len == 0)
        return 0;
    char *end;
    double x = strtod(f->p, &end);
    if (end != f->p + f->len || !isfinite(x))
        return 0;
    if (v)
        *v = x;
    return 1;
}

enum { ROLE_NONE, ROLE_USER, ROLE_ITEM, ROLE_WEIGHT, ROLE_TIME };

/* Whether f names a column by stem[0, sl): the stem (case-insensitive), then nothing (always,
 * and only, when exact), or a tail that reads like part of a column name ("userId", "user_id",
 * "items", "timestamp") but never holds a digit, so that a data row such as "user1,item7" is
 * not mistaken for a header. */
static int names_stem(const field_t *f, const char *stem, size_t sl, int exact)
{
    static const char *tails[] = {"s", "id", "ids", "name", "stamp"};
    if (f->len < sl || strncasecmp(f->p, stem, sl) != 0)
        return 0;
    const char *t = f->p + sl;
    const size_t tl = f->len - sl;
    if (tl == 0)
        return 1;
    if (exact)
        return 0;
    for (size_t i = 0; i < tl; i++)
        if (isdigit((unsigned char)t[i]))
            return 0;
    if (!islower((unsigned char)t[0]))
        return 1; /* separator or camelCase: "user_id", "userId" */
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++)
        if (strlen(tails[i]) == tl && strncasecmp(t, tails[i], tl) == 0)
            return 1;
    return 0;
}

/* What a header field names (names_stem over the names below). */
static int column_role(const field_t *f)
{
    static const struct {
        const char *stem;
        int role, exact;
    } names[] = {
        {"user", ROLE_USER, 0},    {"uid", ROLE_USER, 1},      {"item", ROLE_ITEM, 0},
        {"movie", ROLE_ITEM, 0},   {"artist", ROLE_ITEM, 0},   {"product", ROLE_ITEM, 0},
        {"iid", ROLE_ITEM, 1},     {"weight", ROLE_WEIGHT, 0}, {"rating", ROLE_WEIGHT, 0},
        {"count", ROLE_WEIGHT, 0}, {"score", ROLE_WEIGHT, 0},  {"time", ROLE_TIME, 0},
        {"ts", ROLE_TIME, 1},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (names_stem(f, names[k].stem, strlen(names[k].stem), names[k].exact))
            return names[k].role;
    return ROLE_NONE;
}

typedef struct {
    int delim;
    int header;                 /* the first non-blank line is a header */
    int ucol, icol, wcol, tcol; /* column of each role, -1 when absent */
    int need;                   /* fields a row must have */
} layout_t;

/* Columns named by a header row (roles of f[0, n)): user and item must both be named. */
static int named_columns(const field_t *f, int n, layout_t *l)
{
    int col[5] = {-1, -1, -1, -1, -1};
    for (int j = n - 1; j >= 0; j--) /* backwards, so the first of a role wins */
        col[column_role(&f[j])] = j;
    if (col[ROLE_USER] < 0 || col[ROLE_ITEM] < 0)
        return 0;
    if (l) {
        l->ucol = col[ROLE_USER];
        l->icol = col[ROLE_ITEM];
        l->wcol = col[ROLE_WEIGHT];
        l->tcol = col[ROLE_TIME];
    }
    return 1;
}

/* A NUL-terminated copy of a sample line (the reader's buffer must stay as it is), split at delim
 * into f as split_fields does; *nf is 0 for a line with a quoting error (reading it reports the
 * error) and at most maxf. Returns the copy, which the fields point into (free it), or NULL when
 * out of memory. */
static char *split_copy(const trn__span_t *line, int delim, field_t *f, int maxf, int *nf)
{
    char *copy = malloc(line->len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, line->p, line->len);
    copy[line->len] = '\0';
    if (split_fields(copy, line->len, delim, f, maxf, nf) != SPLIT_OK)
        *nf = 0;
    if (*nf > maxf)
        *nf = maxf;
    return copy;
}

/* Detects delimiter, header and columns from the first lines of the file. */
static int detect_layout(trn__reader_t *r, layout_t *l, eng_error_t *err)
{
    trn__span_t lines[SAMPLE_LINES];
    int n = trn__reader_sample(r, lines, SAMPLE_LINES, err);
    if (n < 0)
        return n;
    *l = (layout_t){detect_delim(lines, n), 0, 0, 1, 2, 3, 2};
    if (n == 0)
        return ENG_OK;

    /* Split copies of the first two lines. */
    char *copy[2] = {NULL, NULL};
    field_t f[2][MAX_FIELDS];
    int nf[2] = {0, 0};
    int have = n < 2 ? n : 2;
    int rc = ENG_OK;
    for (int k = 0; k < have; k++)
        if (!(copy[k] = split_copy(&lines[k], l->delim, f[k], MAX_FIELDS, &nf[k]))) {
            rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
            goto done;
        }
    /* A header names the user and item columns (unless the next line does too: then the "names"
     * are data), or is all text above a line with a number in the same column. */
    int by_name =
        named_columns(f[0], nf[0], NULL) && !(have == 2 && named_columns(f[1], nf[1], NULL));
    int by_type = 0;
    if (have == 2 && nf[0] >= 2) {
        int any_num = 0;
        for (int j = 0; j < nf[0]; j++)
            any_num |= numeric(&f[0][j], NULL);
        for (int j = 0; j < nf[0] && j < nf[1] && !any_num; j++)
            by_type |= numeric(&f[1][j], NULL);
    }
    l->header = by_name || by_type;
    if (by_name) {
        named_columns(f[0], nf[0], l);
        l->need = (l->ucol > l->icol ? l->ucol : l->icol) + 1;
    }
done:
    free(copy[0]);
    free(copy[1]);
    return rc;
}

/* Checks an id field; returns 0 or fills err. */
static int check_id(const trn__reader_t *r, const field_t *f, const char *what, eng_error_t *err)
{
    if (f->len == 0)
        return eng_error_set(err, ENG_EPARSE, "%s:%ld: empty %s id", r->path, r->line, what);
    if (f->len > TRN_DATA_MAX_ID)
        return eng_error_set(err, ENG_EPARSE, "%s:%ld: %s id longer than %d bytes", r->path,
                             r->line, what, TRN_DATA_MAX_ID);
    return ENG_OK;
}

/* Reads optional numeric column col of the row into *v (unchanged when the row lacks it or the
 * field is empty); returns 0 or fills err. */
static int optional_number(const trn__reader_t *r, const field_t *f, int nf, int col,
                           const char *what, double *v, eng_error_t *err)
{
    if (col < 0 || col >= nf || col >= MAX_FIELDS || f[col].len == 0)
        return ENG_OK;
    if (!numeric(&f[col], v))
        return eng_error_set(err, ENG_EPARSE, "%s:%ld: invalid %s '%.*s'", r->path, r->line, what,
                             (int)(f[col].len < SHOW ? f[col].len : SHOW), f[col].p);
    return ENG_OK;
}

int trn__intern(const trn__reader_t *r, eng_idmap_t *m, const char *p, size_t len, eng_error_t *err)
{
    int32_t id = eng_idmap_intern(m, p, len);
    if (id == ENG_ERANGE)
        return eng_error_set(err, ENG_ERANGE, "%s:%ld: too many distinct ids", r->path, r->line);
    if (id < 0)
        return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
    return id;
}

/* The next data row of r split at delim into f (as split_fields), past blank lines and, while
 * *header is set, one header line (then cleared): 1, 0 at the end, or a negative code with err
 * filled for a quoting error. */
static int next_row(trn__reader_t *r, int delim, int *header, field_t *f, int maxf, int *nf,
                    eng_error_t *err)
{
    char *s;
    size_t len;
    int rc;
    while ((rc = trn__reader_next(r, &s, &len, err)) > 0) {
        size_t b = 0;
        while (b < len && (s[b] == ' ' || s[b] == '\t'))
            b++;
        if (b == len)
            continue; /* blank line */
        if (*header) {
            *header = 0;
            continue;
        }
        int q = split_fields(s, len, delim, f, maxf, nf);
        if (q == SPLIT_UNTERMINATED)
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: unterminated quoted field", r->path,
                                 r->line);
        if (q == SPLIT_AFTER_QUOTE)
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: text after a closing quote", r->path,
                                 r->line);
        return 1;
    }
    return rc;
}

int trn__csv_read(trn__reader_t *r, const trn_data_opts_t *o, eng_idmap_t *users,
                  eng_idmap_t *items, trn__pairs_t *p, eng_error_t *err)
{
    layout_t l;
    int rc = detect_layout(r, &l, err);
    if (rc < 0)
        return rc;
    int skip_header = l.header;
    p->timed = l.tcol >= 0; /* until a row lacks its time */
    field_t f[MAX_FIELDS];
    int nf;
    while ((rc = next_row(r, l.delim, &skip_header, f, MAX_FIELDS, &nf, err)) > 0) {
        if (nf < l.need)
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: expected at least %d columns, got %d",
                                 r->path, r->line, l.need, nf);
        if ((rc = check_id(r, &f[l.ucol], "user", err)) < 0 ||
            (rc = check_id(r, &f[l.icol], "item", err)) < 0)
            return rc;
        double w = NAN, key = (double)p->n; /* NAN: the row has no weight */
        if (l.tcol >= nf || (l.tcol >= 0 && f[l.tcol].len == 0))
            p->timed = 0;
        if ((rc = optional_number(r, f, nf, l.wcol, "weight", &w, err)) < 0 ||
            (rc = optional_number(r, f, nf, l.tcol, "timestamp", &key, err)) < 0)
            return rc;
        if (o->use_min_weight && (isnan(w) ? 1 : w) < o->min_weight)
            continue; /* dropped before its ids are seen: it never existed */
        int32_t u = trn__intern(r, users, f[l.ucol].p, f[l.ucol].len, err);
        if (u < 0)
            return u;
        int32_t i = trn__intern(r, items, f[l.icol].p, f[l.icol].len, err);
        if (i < 0)
            return i;
        if (trn__pairs_push(p, u, i, key, (float)w, r->line) < 0)
            return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
    }
    return rc;
}

/* Non-zero when f names a column by one of the '|'-separated stems (names_stem, not exact). */
static int names_column(const field_t *f, const char *stems)
{
    for (const char *s = stems; *s;) {
        const char *e = strchr(s, '|');
        const size_t sl = e ? (size_t)(e - s) : strlen(s);
        if (names_stem(f, s, sl, 0))
            return 1;
        s += sl + (e != NULL);
    }
    return 0;
}

#define TABLE_MAX_COLS 8

int trn__table_read(trn__reader_t *r, int cols, const char *const *stems, trn__row_fn *row,
                    void *ctx, eng_error_t *err)
{
    trn__span_t lines[SAMPLE_LINES];
    int n = trn__reader_sample(r, lines, SAMPLE_LINES, err);
    if (n < 0)
        return n;
    const int delim = detect_delim(lines, n);
    int header = 0;
    if (n > 0) {
        field_t f[TABLE_MAX_COLS];
        int nf = 0;
        char *copy = split_copy(&lines[0], delim, f, TABLE_MAX_COLS, &nf);
        if (!copy)
            return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
        header = nf >= cols;
        for (int j = 0; header && j < cols; j++)
            header = names_column(&f[j], stems[j]);
        free(copy);
    }
    field_t f[TABLE_MAX_COLS];
    trn__field_t out[TABLE_MAX_COLS];
    int nf, rc;
    while ((rc = next_row(r, delim, &header, f, TABLE_MAX_COLS, &nf, err)) > 0) {
        if (nf < cols)
            return eng_error_set(err, ENG_EPARSE, "%s:%ld: expected at least %d columns, got %d",
                                 r->path, r->line, cols, nf);
        for (int j = 0; j < cols; j++) {
            if ((rc = check_id(r, &f[j], "field", err)) < 0)
                return rc;
            out[j] = (trn__field_t){f[j].p, f[j].len};
        }
        if ((rc = row(ctx, r, out, err)) < 0)
            return rc;
    }
    return rc;
}
