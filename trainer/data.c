/* Data loading: picks the format, reads the train (and test) file, builds the dense matrices, and
 * splits a test set off per user when there is no test file. The parsers live in data_csv.c and
 * data_lgn.c, the line reader in data_reader.c; docs/data.md describes the behaviour. */
#include "trainer/data.h"
#include "trainer/data_internal.h"

#include "engine/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines of the file start that format detection looks at. */
#define SAMPLE_LINES 64
/* RNG stream of the random split, distinct from the other users of --seed. */
#define SPLIT_STREAM 0x5e1170ULL

int trn__pairs_push(trn__pairs_t *p, int32_t user, int32_t item, double key, float weight,
                    long line)
{
    if (p->n == p->cap) {
        int64_t cap = p->cap ? p->cap * 2 : 4096;
        int32_t *u = realloc(p->user, (size_t)cap * sizeof *u);
        if (!u)
            return ENG_ENOMEM;
        p->user = u;
        int32_t *i = realloc(p->item, (size_t)cap * sizeof *i);
        if (!i)
            return ENG_ENOMEM;
        p->item = i;
        double *k = realloc(p->key, (size_t)cap * sizeof *k);
        if (!k)
            return ENG_ENOMEM;
        p->key = k;
        float *w = realloc(p->weight, (size_t)cap * sizeof *w);
        if (!w)
            return ENG_ENOMEM;
        p->weight = w;
        if (p->track_lines) {
            long *l = realloc(p->line, (size_t)cap * sizeof *l);
            if (!l)
                return ENG_ENOMEM;
            p->line = l;
        }
        p->cap = cap;
    }
    if (p->track_lines)
        p->line[p->n] = line;
    p->user[p->n] = user;
    p->item[p->n] = item;
    p->key[p->n] = key;
    p->weight[p->n] = weight;
    p->weighted += !isnan(weight);
    p->n++;
    return ENG_OK;
}

void trn__pairs_free(trn__pairs_t *p)
{
    free(p->user);
    free(p->item);
    free(p->key);
    free(p->weight);
    free(p->line);
    memset(p, 0, sizeof *p);
}

int trn__idmap_numbered(eng_idmap_t *m, const char *prefix, int32_t n)
{
    char s[48];
    for (int32_t i = 0; i < n; i++) {
        int len = snprintf(s, sizeof s, "%s%d", prefix, i);
        if (eng_idmap_intern(m, s, (size_t)len) != i)
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

/* ---- Split ---- */

typedef struct {
    int32_t item;
    float weight;
    double key;
    int64_t row;
} entry_t;

static int cmp_item_key(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->item != y->item)
        return (x->item > y->item) - (x->item < y->item);
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_key(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->row > y->row) - (x->row < y->row);
}

/* A matrix being filled row by row in order, each row's items ascending. */
typedef struct {
    eng_csr_t *m;
    int64_t n;
} csr_fill_t;

/* Appends e[0, n) (distinct items, any order) as user u's row; rows must come in order. */
static void fill_row(csr_fill_t *f, int32_t u, entry_t *e, int64_t n)
{
    qsort(e, (size_t)n, sizeof *e, cmp_item_key);
    for (int64_t j = 0; j < n; j++) {
        f->m->idx[f->n] = e[j].item;
        if (f->m->val)
            f->m->val[f->n] = e[j].weight;
        f->n++;
    }
    f->m->ptr[u + 1] = f->n;
}

int trn__split(const trn__pairs_t *p, int32_t n_users, int32_t n_items, trn_split_t how,
               double frac, uint64_t seed, eng_csr_t **train, eng_csr_t **test)
{
    int rc = ENG_ENOMEM;
    int64_t n = p->n;
    const int rated = n > 0 && p->weighted == n;
    int64_t *start = calloc((size_t)n_users + 1, sizeof *start);
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    entry_t *e = NULL;
    /* Sized for every row: merging duplicates only shrinks them. */
    csr_fill_t tr = {eng_csr_new(n_users, n_items, n, rated), 0};
    csr_fill_t te = {how == TRN_SPLIT_NONE ? NULL : eng_csr_new(n_users, n_items, n, rated), 0};
    *train = NULL;
    if (test)
        *test = NULL;
    if (!start || !order || !tr.m || (how != TRN_SPLIT_NONE && !te.m))
        goto fail;

    /* Group row numbers by user, keeping file order within a user (counting sort). */
    for (int64_t k = 0; k < n; k++)
        start[p->user[k] + 1]++;
    int64_t most = 0;
    for (int32_t u = 0; u < n_users; u++) {
        if (start[u + 1] > most)
            most = start[u + 1];
        start[u + 1] += start[u];
    }
    for (int64_t k = 0; k < n; k++)
        order[start[p->user[k]]++] = k;
    for (int32_t u = n_users; u > 0; u--)
        start[u] = start[u - 1];
    start[0] = 0;
    e = malloc((size_t)(most ? most : 1) * sizeof *e);
    if (!e)
        goto fail;

    eng_rng_t rng;
    eng_rng_seed(&rng, seed, SPLIT_STREAM);
    for (int32_t u = 0; u < n_users; u++) {
        int64_t m = 0;
        for (int64_t k = start[u]; k < start[u + 1]; k++) {
            int64_t row = order[k];
            e[m++] = (entry_t){p->item[row], p->weight[row], p->key[row], row};
        }
        /* Merge duplicates: the last of each item's run is its latest interaction. */
        qsort(e, (size_t)m, sizeof *e, cmp_item_key);
        int64_t d = 0;
        for (int64_t j = 0; j < m; j++)
            if (j + 1 == m || e[j + 1].item != e[j].item)
                e[d++] = e[j];
        int64_t hold = 0;
        if (how != TRN_SPLIT_NONE && d >= 2) {
            hold = (int64_t)floor(frac * (double)d + 0.5);
            if (hold > d - 1)
                hold = d - 1;
        }
        /* The held-out entries end up in e[0, hold) (random) or e[d - hold, d) (time). */
        if (how == TRN_SPLIT_TIME) {
            qsort(e, (size_t)d, sizeof *e, cmp_key);
            fill_row(&te, u, e + d - hold, hold);
            fill_row(&tr, u, e, d - hold);
        } else {
            for (int64_t j = 0; j < hold; j++) { /* partial Fisher-Yates */
                int64_t r = j + (int64_t)eng_rng_below(&rng, (uint32_t)(d - j));
                entry_t t = e[j];
                e[j] = e[r];
                e[r] = t;
            }
            if (te.m)
                fill_row(&te, u, e, hold);
            fill_row(&tr, u, e + hold, d - hold);
        }
    }
    tr.m->nnz = tr.n;
    *train = tr.m;
    tr.m = NULL;
    if (te.m) {
        te.m->nnz = te.n;
        *test = te.m;
        te.m = NULL;
    }
    rc = ENG_OK;
fail:
    eng_csr_free(tr.m);
    eng_csr_free(te.m);
    free(start);
    free(order);
    free(e);
    return rc;
}

/* ---- Loading ---- */

static int check_opts(const trn_data_opts_t *o, eng_error_t *err)
{
    if (!o || (!o->train_path && !o->log))
        return eng_error_set(err, ENG_EINVAL, "no training data file given");
    if (o->log && !(o->log_since < INFINITY))
        return eng_error_set(err, ENG_EINVAL, "the log's start time is not a time");
    if (o->format != TRN_FMT_AUTO && o->format != TRN_FMT_CSV && o->format != TRN_FMT_LGN)
        return eng_error_set(err, ENG_EINVAL, "unknown data format %d", (int)o->format);
    if (o->split != TRN_SPLIT_NONE && o->split != TRN_SPLIT_RANDOM && o->split != TRN_SPLIT_TIME)
        return eng_error_set(err, ENG_EINVAL, "unknown split %d", (int)o->split);
    if (!o->test_path && o->split != TRN_SPLIT_NONE && !(o->split_frac > 0 && o->split_frac < 1))
        return eng_error_set(err, ENG_EINVAL, "split fraction %g is not in (0, 1)", o->split_frac);
    if (o->use_min_weight && !isfinite(o->min_weight))
        return eng_error_set(err, ENG_EINVAL, "minimum weight %g is not finite", o->min_weight);
    return ENG_OK;
}

/* The format of the file behind r: o's choice, or detected from its first lines. */
static int pick_format(trn__reader_t *r, trn_format_t want, trn_format_t *fmt, eng_error_t *err)
{
    *fmt = want;
    if (want != TRN_FMT_AUTO)
        return ENG_OK;
    trn__span_t lines[SAMPLE_LINES];
    int n = trn__reader_sample(r, lines, SAMPLE_LINES, err);
    if (n < 0)
        return n;
    *fmt = trn__lgn_detect(lines, n) ? TRN_FMT_LGN : TRN_FMT_CSV;
    return ENG_OK;
}

/* Reads one file in format fmt into p; for LightGCN raises *max_user / *max_item. An empty file
 * (no interaction kept) is an error. */
static int read_file(const char *path, const trn_data_opts_t *o, trn_format_t fmt, trn_data_t *d,
                     trn__pairs_t *p, int32_t *max_user, int32_t *max_item, trn_format_t *detected,
                     eng_error_t *err)
{
    trn__reader_t r;
    int rc = trn__reader_open(&r, path, err);
    if (rc < 0)
        return rc;
    rc = pick_format(&r, fmt, detected, err);
    if (rc < 0)
        goto fail;
    if (*detected == TRN_FMT_LGN) {
        r.max_line = TRN_LGN_MAX_LINE;
        rc = trn__lgn_read(&r, p, max_user, max_item, err);
    } else {
        r.max_line = TRN_CSV_MAX_LINE;
        rc = trn__csv_read(&r, o, d->users, d->items, p, err);
    }
    if (rc < 0)
        goto fail;
    if (p->n == 0 && !o->log)
        rc = eng_error_set(err, ENG_EEMPTY, "%s: no interactions", path);
fail:
    trn__reader_close(&r);
    return rc;
}

/* The train (and test) matrices of d from the pairs read: from the test file when there is one,
 * else from the split o asks for. Returns 0 or ENG_ENOMEM. */
static int build_matrices(const trn_data_opts_t *o, trn_data_t *d, const trn__pairs_t *tr,
                          trn__pairs_t *te)
{
    const trn_split_t how = o->test_path ? TRN_SPLIT_NONE : o->split;
    int rc = trn__split(tr, d->n_users, d->n_items, how, o->split_frac, o->seed, &d->train,
                        how == TRN_SPLIT_NONE ? NULL : &d->test);
    if (rc < 0 || !o->test_path)
        return rc;
    /* A pair in both files is a training positive; also counting it as a test positive would
     * reward memorising the training set. */
    int64_t w = 0, weighted = 0;
    for (int64_t k = 0; k < te->n; k++)
        if (!eng_csr_has(d->train, te->user[k], te->item[k])) {
            te->user[w] = te->user[k];
            te->item[w] = te->item[k];
            te->key[w] = te->key[k];
            te->weight[w] = te->weight[k];
            weighted += !isnan(te->weight[w++]);
        }
    te->n = w;
    te->weighted = weighted;
    return trn__split(te, d->n_users, d->n_items, TRN_SPLIT_NONE, 0, 0, &d->test, NULL);
}

/* Scan state: the log's events into the pairs, ids interned as a CSV log's. */
typedef struct {
    trn_data_t *d;
    trn__pairs_t *p;
    const trn_data_opts_t *o;
} log_ctx_t;

static int log_event(void *ctx, int64_t seq, const sto_event_t *e, eng_error_t *err)
{
    log_ctx_t *c = ctx;
    if (c->o->use_min_weight && (isnan(e->weight) ? 1 : e->weight) < c->o->min_weight)
        return ENG_OK;
    int32_t u = eng_idmap_intern(c->d->users, e->user, strlen(e->user));
    int32_t i = u < 0 ? u : eng_idmap_intern(c->d->items, e->item, strlen(e->item));
    if (i == ENG_ERANGE)
        return eng_error_set(err, ENG_ERANGE, "the log's event %lld: too many distinct ids",
                             (long long)seq);
    if (i < 0 || trn__pairs_push(c->p, u, i, e->ts, (float)e->weight, 0) < 0)
        return eng_error_set(err, ENG_ENOMEM, "out of memory reading the log");
    return ENG_OK;
}

int trn_data_load(const trn_data_opts_t *o, trn_data_t **out, eng_error_t *err)
{
    trn__pairs_t tr = {0}, te = {0};
    trn_data_t *d = NULL;
    *out = NULL;
    int rc = check_opts(o, err);
    if (rc < 0)
        return rc;
    rc = ENG_ENOMEM;
    d = calloc(1, sizeof *d);
    if (!d || !(d->users = eng_idmap_new()) || !(d->items = eng_idmap_new()))
        goto fail;

    trn_format_t fmt = TRN_FMT_CSV;
    int32_t max_user = -1, max_item = -1;
    if (o->train_path &&
        (rc = read_file(o->train_path, o, o->format, d, &tr, &max_user, &max_item, &fmt, err)) < 0)
        goto fail;
    if (o->log) {
        if (fmt == TRN_FMT_LGN) {
            rc = eng_error_set(err, ENG_EINVAL,
                               "%s: a LightGCN-format file cannot be combined with the log (its "
                               "ids are row numbers, the log's are names): give a CSV",
                               o->train_path);
            goto fail;
        }
        log_ctx_t ctx = {d, &tr, o};
        if ((rc = sto_events_scan(o->log, o->log_since, log_event, &ctx, err)) < 0)
            goto fail;
        if (tr.n == 0) {
            rc = eng_error_set(err, ENG_EEMPTY, "no interactions in the log%s%s",
                               o->train_path ? " or " : "", o->train_path ? o->train_path : "");
            goto fail;
        }
    }
    /* The test file is read in the train file's format: a short LightGCN test file could be
     * detected as CSV on its own. */
    if (o->test_path) {
        rc = read_file(o->test_path, o, fmt, d, &te, &max_user, &max_item, &fmt, err);
        if (rc < 0)
            goto fail;
    }

    rc = ENG_ENOMEM;
    if (fmt == TRN_FMT_LGN) { /* ids are the numbers themselves, gaps included */
        d->n_users = max_user + 1;
        d->n_items = max_item + 1;
        if (trn__idmap_numbered(d->users, "", d->n_users) < 0 ||
            trn__idmap_numbered(d->items, "", d->n_items) < 0)
            goto fail;
    } else {
        d->n_users = eng_idmap_size(d->users);
        d->n_items = eng_idmap_size(d->items);
    }
    rc = build_matrices(o, d, &tr, &te);
    if (rc < 0)
        goto fail;
    *out = d;
    d = NULL;
fail:
    if (rc == ENG_ENOMEM) /* the failed allocations above set no message */
        eng_error_set(err, rc, "out of memory");
    trn__pairs_free(&tr);
    trn__pairs_free(&te);
    trn_data_free(d);
    return rc;
}

int trn_data_import(const char *path, sto_db_t *db, int64_t *n, int64_t *first_seq,
                    eng_error_t *err)
{
    const trn_data_opts_t o = {.train_path = path};
    trn__pairs_t p = {.track_lines = 1};
    trn_data_t d = {0};
    sto_event_t *ev = NULL;
    trn_format_t fmt;
    int32_t max_user = -1, max_item = -1;
    int rc = ENG_ENOMEM;
    if (!(d.users = eng_idmap_new()) || !(d.items = eng_idmap_new()))
        goto fail;
    if ((rc = read_file(path, &o, TRN_FMT_AUTO, &d, &p, &max_user, &max_item, &fmt, err)) < 0)
        goto fail;
    rc = ENG_ENOMEM;
    if (fmt == TRN_FMT_LGN && (trn__idmap_numbered(d.users, "", max_user + 1) < 0 ||
                               trn__idmap_numbered(d.items, "", max_item + 1) < 0))
        goto fail;
    if (!(ev = malloc(((size_t)p.n + 1) * sizeof *ev)))
        goto fail;
    for (int64_t k = 0; k < p.n; k++) {
        ev[k] =
            (sto_event_t){eng_idmap_name(d.users, p.user[k]), eng_idmap_name(d.items, p.item[k]),
                          p.weight[k], p.timed ? p.key[k] : NAN};
        /* what the log refuses and the reader takes: a control character, a time in ms */
        eng_error_t why = {0};
        if ((rc = sto_event_check(&ev[k], &why)) < 0) {
            eng_error_set(err, rc, "%s:%ld: %s", path, p.line[k], why.msg);
            goto fail;
        }
    }
    if ((rc = sto_events_append(db, ev, (size_t)p.n, first_seq, err)) < 0)
        goto fail;
    *n = p.n;
fail:
    if (rc == ENG_ENOMEM)
        eng_error_set(err, rc, "%s: out of memory", path);
    free(ev);
    trn__pairs_free(&p);
    eng_idmap_free(d.users);
    eng_idmap_free(d.items);
    return rc;
}

static eng_idmap_t *idmap_copy(const eng_idmap_t *m)
{
    size_t len;
    const char *blob = eng_idmap_blob(m, &len);
    return eng_idmap_from_blob(blob, len, eng_idmap_size(m));
}

int trn_data_merged(const trn_data_t *d, trn_data_t **out)
{
    const eng_csr_t *a = d->train, *b = d->test;
    trn_data_t *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m)
        return ENG_ENOMEM;
    m->n_users = d->n_users;
    m->n_items = d->n_items;
    const int vals = a->val && (!b || b->val);
    if (!(m->users = idmap_copy(d->users)) || !(m->items = idmap_copy(d->items)) ||
        !(m->train = eng_csr_new(a->rows, a->cols, a->nnz + (b ? b->nnz : 0), vals))) {
        trn_data_free(m);
        return ENG_ENOMEM;
    }
    /* each row's two sorted, disjoint lists merged */
    eng_csr_t *t = m->train;
    int64_t w = 0;
    for (int32_t u = 0; u < a->rows; u++) {
        int64_t p = a->ptr[u], q = b ? b->ptr[u] : 0;
        const int64_t pe = a->ptr[u + 1], qe = b ? b->ptr[u + 1] : 0;
        while (p < pe || q < qe) {
            const int from_a = q >= qe || (p < pe && a->idx[p] < b->idx[q]);
            const int64_t k = from_a ? p++ : q++;
            t->idx[w] = from_a ? a->idx[k] : b->idx[k];
            if (vals)
                t->val[w] = from_a ? a->val[k] : b->val[k];
            w++;
        }
        t->ptr[u + 1] = w;
    }
    *out = m;
    return ENG_OK;
}

void trn_data_free(trn_data_t *d)
{
    if (!d)
        return;
    eng_idmap_free(d->users);
    eng_idmap_free(d->items);
    eng_csr_free(d->train);
    eng_csr_free(d->test);
    free(d);
}
