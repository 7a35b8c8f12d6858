/* The LightGCN text format: one line `user item item ...` per user, 0-based decimal ids, users in
 * strictly ascending order (the format of NGCF/LightGCN's Data/<name>/train.txt). */
#include "trainer/data_internal.h"

#include <math.h>
#include <stdint.h>

/* An id space larger than this many times the ids read (plus the slack) is not a dense 0-based
 * numbering but a sparse one that would make the dense matrices and id maps huge; such files are
 * refused instead of exhausting memory. */
#define DENSE_FACTOR 16
#define DENSE_SLACK (1 << 20)
#define SHOW 40

/* Parses the id token at s (up to a blank or the end; digits only) into *v and its length into
 * *tl. Returns 1, 0 for no token, -1 for a malformed token and -2 for one above INT32_MAX - 1. */
static int parse_id(const char *s, int32_t *v, size_t *tl)
{
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != '\t')
        n++;
    *tl = n;
    if (n == 0)
        return 0;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (x < INT32_MAX)
            x = x * 10 + (s[i] - '0');
    }
    if (x >= INT32_MAX) /* the count, max + 1, must fit in int32 */
        return -2;
    *v = (int32_t)x;
    return 1;
}

int trn__lgn_detect(const trn__span_t *lines, int n)
{
    if (n == 0)
        return 0;
    int varied = 0, items = 0;
    int64_t prev = -1;
    size_t first_count = 0;
    for (int k = 0; k < n; k++) {
        const char *s = lines[k].p;
        size_t len = lines[k].len, count = 0;
        int64_t head = 0;
        /* Non-negative integers separated by single spaces, nothing else. */
        for (size_t i = 0; i < len;) {
            size_t b = i;
            int64_t x = 0;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (x < INT32_MAX)
                    x = x * 10 + (s[i] - '0');
                i++;
            }
            if (i == b)
                return 0;
            if (count++ == 0)
                head = x;
            if (i < len) {
                if (s[i] != ' ' || i + 1 == len)
                    return 0;
                i++;
            }
        }
        if (head <= prev)
            return 0;
        if (count >= 2)
            items = 1;
        prev = head;
        if (k == 0)
            first_count = count;
        /* Lines that all have the same 2-4 columns read just as well as `user item weight ts`;
         * only varying lengths (or long lines) show item lists. A user without items (a line of
         * one id) is allowed, as the LightGCN loaders allow it. */
        if (count != first_count || count > 4)
            varied = 1;
    }
    return varied && items;
}

/* Refuses a sparse id space (see DENSE_FACTOR). */
static int check_dense(const trn__reader_t *r, const char *what, int32_t max, long line,
                       int64_t tokens, eng_error_t *err)
{
    if ((int64_t)max < DENSE_SLACK + DENSE_FACTOR * tokens)
        return ENG_OK;
    return eng_error_set(err, ENG_ERANGE,
                         "%s:%ld: %s id %d is too large for a file of %lld ids (LightGCN ids are "
                         "dense; read sparse ids as CSV)",
                         r->path, line, what, max, (long long)tokens);
}

int trn__lgn_read(trn__reader_t *r, trn__pairs_t *p, int32_t *max_user, int32_t *max_item,
                  eng_error_t *err)
{
    char *s;
    size_t len;
    int rc;
    int64_t prev = -1, tokens = 0;
    int32_t fmax_user = -1, fmax_item = -1;
    long user_line = 0, item_line = 0;
    while ((rc = trn__reader_next(r, &s, &len, err)) > 0) {
        char *q = s;
        int32_t user = -1, v;
        size_t tl;
        for (;;) {
            while (*q == ' ' || *q == '\t')
                q++;
            int t = parse_id(q, &v, &tl);
            if (t == 0)
                break;
            const char *what = user < 0 ? "user" : "item";
            if (t == -1)
                return eng_error_set(err, ENG_EPARSE, "%s:%ld: invalid %s id '%.*s'", r->path,
                                     r->line, what, (int)(tl < SHOW ? tl : SHOW), q);
            if (t == -2)
                return eng_error_set(err, ENG_ERANGE, "%s:%ld: %s id '%.*s' out of range", r->path,
                                     r->line, what, (int)(tl < SHOW ? tl : SHOW), q);
            q += tl;
            tokens++;
            if (user < 0) {
                if (v <= prev)
                    return eng_error_set(err, ENG_EPARSE, "%s:%ld: users not in ascending order",
                                         r->path, r->line);
                user = v;
                prev = v;
                if (v > fmax_user) {
                    fmax_user = v;
                    user_line = r->line;
                }
                continue;
            }
            if (v > fmax_item) {
                fmax_item = v;
                item_line = r->line;
            }
            if (trn__pairs_push(p, user, v, (double)p->n, NAN, r->line) < 0)
                return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
        }
    }
    if (rc < 0)
        return rc;
    if ((rc = check_dense(r, "user", fmax_user, user_line, tokens, err)) < 0 ||
        (rc = check_dense(r, "item", fmax_item, item_line, tokens, err)) < 0)
        return rc;
    if (fmax_user > *max_user)
        *max_user = fmax_user;
    if (fmax_item > *max_item)
        *max_item = fmax_item;
    return ENG_OK;
}
