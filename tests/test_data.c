/* Data loading: the data-driven cases in tests/cases/data, the splits, the synthetic generator,
 * and the real datasets in $GNNREC_DATA.
 *
 * Each folder tests/cases/data/<case>/ is one test: `train` (absent for the missing-file case),
 * optional `test`, optional `args` (`format=auto|csv|lgn split=none|random:F|time:F
 * min_weight=W seed=N`) and `expected`. `expected` is either `error: <message>` with $TRAIN and
 * $TEST standing for the paths, or the dump that render() writes: a counts line, the item ids in
 * index order, then per user `<user>: <train items> | <test items>`. The same folders seed the
 * loader's fuzzer. */
#include "engine/idmap.h"
#include "trainer/data.h"

#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- Helpers ---- */

/* A growing string for dumps. */
typedef struct {
    char *s;
    size_t len, cap;
} buf_t;

static void bprintf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* An id as the dump shows it: quoted when it holds a character the dump uses as syntax. */
static void put_id(buf_t *b, const char *id)
{
    if (strpbrk(id, " \t|:\"") || !*id)
        bprintf(b, " \"%s\"", id);
    else
        bprintf(b, " %s", id);
}

static void put_row(buf_t *b, const trn_data_t *d, const eng_csr_t *m, int32_t u)
{
    for (int64_t k = m->ptr[u]; k < m->ptr[u + 1]; k++)
        put_id(b, eng_idmap_name(d->items, m->idx[k]));
}

/* The dump compared against `expected`; the caller frees it. */
static char *render(const trn_data_t *d)
{
    buf_t b = {0};
    bprintf(&b, "users=%d items=%d train=%lld test=", d->n_users, d->n_items,
            (long long)d->train->nnz);
    if (d->test)
        bprintf(&b, "%lld\n", (long long)d->test->nnz);
    else
        bprintf(&b, "none\n");
    bprintf(&b, "items:");
    for (int32_t i = 0; i < d->n_items; i++)
        put_id(&b, eng_idmap_name(d->items, i));
    bprintf(&b, "\n");
    for (int32_t u = 0; u < d->n_users; u++) {
        put_id(&b, eng_idmap_name(d->users, u));
        bprintf(&b, ":");
        put_row(&b, d, d->train, u);
        if (d->test) {
            bprintf(&b, " |");
            put_row(&b, d, d->test, u);
        }
        bprintf(&b, "\n");
    }
    return b.s;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf_t b = {0};
    char chunk[4096];
    size_t n;
    bprintf(&b, "%s", "");
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        bprintf(&b, "%.*s", (int)n, chunk);
    fclose(f);
    return b.s;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* s with every occurrence of key replaced by val (new string). */
static char *replace(const char *s, const char *key, const char *val)
{
    buf_t b = {0};
    bprintf(&b, "%s", "");
    size_t kl = strlen(key);
    for (const char *p; (p = strstr(s, key)); s = p + kl)
        bprintf(&b, "%.*s%s", (int)(p - s), s, val);
    bprintf(&b, "%s", s);
    return b.s;
}

static void strip_trailing_newlines(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* Options from a case's args text. */
static void parse_args(const char *text, trn_data_opts_t *o)
{
    char *copy = strdup(text), *save = NULL;
    assert_non_null(copy);
    for (char *t = strtok_r(copy, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (strcmp(t, "format=auto") == 0)
            o->format = TRN_FMT_AUTO;
        else if (strcmp(t, "format=csv") == 0)
            o->format = TRN_FMT_CSV;
        else if (strcmp(t, "format=lgn") == 0)
            o->format = TRN_FMT_LGN;
        else if (strcmp(t, "split=none") == 0)
            o->split = TRN_SPLIT_NONE;
        else if (strncmp(t, "split=random:", 13) == 0) {
            o->split = TRN_SPLIT_RANDOM;
            o->split_frac = atof(t + 13);
        } else if (strncmp(t, "split=time:", 11) == 0) {
            o->split = TRN_SPLIT_TIME;
            o->split_frac = atof(t + 11);
        } else if (strncmp(t, "min_weight=", 11) == 0) {
            o->use_min_weight = 1;
            o->min_weight = atof(t + 11);
        } else if (strncmp(t, "seed=", 5) == 0)
            o->seed = strtoull(t + 5, NULL, 10);
        else
            fail_msg("unknown case argument '%s'", t);
    }
    free(copy);
}

/* ---- Data-driven cases ---- */

static void run_case(void **state)
{
    const char *dir = *state;
    char train[4096], test[4096], path[4096];
    snprintf(train, sizeof train, "%s/train", dir);
    snprintf(test, sizeof test, "%s/test", dir);
    trn_data_opts_t o = {.train_path = train, .test_path = exists(test) ? test : NULL, .seed = 1};
    snprintf(path, sizeof path, "%s/args", dir);
    char *args = read_text(path);
    if (args)
        parse_args(args, &o);
    free(args);
    snprintf(path, sizeof path, "%s/expected", dir);
    char *raw = read_text(path);
    if (!raw)
        fail_msg("%s: no expected file", dir);
    char *t1 = replace(raw, "$TRAIN", train);
    char *want = replace(t1, "$TEST", test);
    free(raw);
    free(t1);
    strip_trailing_newlines(want);

    trn_data_t *d = (trn_data_t *)(uintptr_t)1; /* must be reset to NULL on failure */
    eng_error_t err = {0};
    int rc = trn_data_load(&o, &d, &err);
    char *got;
    if (rc < 0) {
        assert_null(d);
        assert_int_equal(err.code, rc);
        buf_t b = {0};
        bprintf(&b, "error: %s", err.msg);
        got = b.s;
    } else {
        assert_int_equal(rc, 0);
        assert_non_null(d);
        got = render(d);
        strip_trailing_newlines(got);
        trn_data_free(d);
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n--- got ---\n%s\n--- expected ---\n%s", dir, got, want);
    free(got);
    free(want);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The case folders, sorted by name: $GNNREC_SOURCE_DIR/tests/cases/data, else relative paths
 * that work from the source tree or a build folder beside it. Returns their count. */
static int find_cases(char ***dirs, char ***names)
{
    char root[4096];
    const char *src = getenv("GNNREC_SOURCE_DIR");
    const char *tries[] = {"tests/cases/data", "../tests/cases/data"};
    DIR *dd = NULL;
    if (src) {
        snprintf(root, sizeof root, "%s/tests/cases/data", src);
        dd = opendir(root);
    }
    for (size_t k = 0; !dd && k < sizeof tries / sizeof tries[0]; k++) {
        snprintf(root, sizeof root, "%s", tries[k]);
        dd = opendir(root);
    }
    if (!dd) {
        fprintf(stderr, "test_data: no tests/cases/data folder (set GNNREC_SOURCE_DIR)\n");
        return 0;
    }
    int n = 0, cap = 0;
    *names = NULL;
    for (struct dirent *e; (e = readdir(dd));) {
        char p[8192];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *names = realloc(*names, (size_t)cap * sizeof **names);
        }
        (*names)[n++] = strdup(e->d_name);
    }
    closedir(dd);
    qsort(*names, (size_t)n, sizeof **names, cmp_names);
    *dirs = malloc(((size_t)n + 1) * sizeof **dirs);
    for (int k = 0; k < n; k++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", root, (*names)[k]);
        (*dirs)[k] = strdup(p);
    }
    return n;
}

/* ---- Splits ---- */

static char tmpdir[] = "/tmp/gnnrec_test_data_XXXXXX";

/* A log where user u (of 40) has u % 12 + 1 distinct items, item ids and timestamps scrambled,
 * plus one repeated (user, item) row per user at an earlier time. Returns its path (static). */
static const char *split_log(void)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/split.csv", tmpdir);
    buf_t b = {0};
    bprintf(&b, "user,item,rating,timestamp\n");
    for (int u = 0; u < 40; u++) {
        int n = u % 12 + 1;
        for (int j = 0; j < n; j++)
            bprintf(&b, "u%d,i%d,1,%d\n", u, (j * 7 + u) % 50,
                    1000 + (j * 5 + u * 3) % 17 * 10 + j);
        bprintf(&b, "u%d,i%d,1,5\n", u, u % 50); /* a repeat of j = 0, older */
    }
    write_file(path, b.s);
    free(b.s);
    return path;
}

static trn_data_t *load_split(trn_split_t how, double frac, uint64_t seed)
{
    trn_data_opts_t o = {.train_path = split_log(), .split = how, .split_frac = frac, .seed = seed};
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    int rc = trn_data_load(&o, &d, &err);
    if (rc < 0)
        fail_msg("load: %s", err.msg);
    return d;
}

static int csr_equal(const eng_csr_t *a, const eng_csr_t *b)
{
    return a->rows == b->rows && a->cols == b->cols && a->nnz == b->nnz &&
           memcmp(a->ptr, b->ptr, ((size_t)a->rows + 1) * sizeof *a->ptr) == 0 &&
           memcmp(a->idx, b->idx, (size_t)a->nnz * sizeof *a->idx) == 0;
}

/* Every user's train and test are disjoint, together hold the user's distinct items, and test
 * holds min(round(frac * n), n - 1) of them (none when n < 2). */
static void check_split_counts(const trn_data_t *d, double frac)
{
    for (int32_t u = 0; u < d->n_users; u++) {
        int64_t ntr = d->train->ptr[u + 1] - d->train->ptr[u];
        int64_t nte = d->test->ptr[u + 1] - d->test->ptr[u];
        int64_t n = ntr + nte;
        int want_n = atoi(eng_idmap_name(d->users, u) + 1) % 12 + 1;
        assert_int_equal(n, want_n);
        int64_t hold = n < 2 ? 0 : (int64_t)floor(frac * (double)n + 0.5);
        if (n >= 2 && hold > n - 1)
            hold = n - 1;
        assert_int_equal(nte, hold);
        for (int64_t k = d->test->ptr[u]; k < d->test->ptr[u + 1]; k++)
            assert_false(eng_csr_has(d->train, u, d->test->idx[k]));
    }
}

static void test_split_random(void **state)
{
    (void)state;
    trn_data_t *a = load_split(TRN_SPLIT_RANDOM, 0.3, 7), *b = load_split(TRN_SPLIT_RANDOM, 0.3, 7),
               *c = load_split(TRN_SPLIT_RANDOM, 0.3, 8);
    check_split_counts(a, 0.3);
    check_split_counts(c, 0.3);
    assert_true(csr_equal(a->train, b->train) && csr_equal(a->test, b->test));
    assert_false(csr_equal(a->test, c->test)); /* another seed, another holdout */
    trn_data_free(a);
    trn_data_free(b);
    trn_data_free(c);
    trn_data_t *d = load_split(TRN_SPLIT_RANDOM, 0.9, 1); /* at least one item stays in train */
    check_split_counts(d, 0.9);
    trn_data_free(d);
}

static void test_split_time(void **state)
{
    (void)state;
    trn_data_t *d = load_split(TRN_SPLIT_TIME, 0.4, 1);
    check_split_counts(d, 0.4);
    /* Recompute each user's latest items from the generator's formula: item (j * 7 + u) % 50 at
     * time 1000 + (j * 5 + u * 3) % 17 * 10 + j (distinct times, so no ties to break). The repeat
     * of item u % 50 at time 5 is older and must not pull it into train. */
    for (int32_t ui = 0; ui < d->n_users; ui++) {
        int u = atoi(eng_idmap_name(d->users, ui) + 1), n = u % 12 + 1;
        int64_t nte = d->test->ptr[ui + 1] - d->test->ptr[ui];
        for (int j = 0; j < n; j++) {
            int t = 1000 + (j * 5 + u * 3) % 17 * 10 + j, later = 0;
            for (int k = 0; k < n; k++)
                later += 1000 + (k * 5 + u * 3) % 17 * 10 + k > t;
            char id[16];
            snprintf(id, sizeof id, "i%d", (j * 7 + u) % 50);
            int32_t item = eng_idmap_find(d->items, id, strlen(id));
            assert_true(item >= 0);
            if (eng_csr_has(d->test, ui, item) != (later < nte))
                fail_msg("user u%d item %s: %d later items, %lld held out", u, id, later,
                         (long long)nte);
        }
    }
    trn_data_free(d);
}

/* Ties in time go by line order: the later line is the later interaction. */
static void test_split_time_ties(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/ties.tsv", tmpdir);
    write_file(path, "a\tx\t1\t7\na\ty\t1\t7\na\tz\t1\t7\na\tw\t1\t7\n");
    trn_data_opts_t o = {.train_path = path, .split = TRN_SPLIT_TIME, .split_frac = 0.5};
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    assert_int_equal(trn_data_load(&o, &d, &err), 0);
    assert_int_equal(d->test->nnz, 2);
    assert_true(eng_csr_has(d->test, 0, eng_idmap_find(d->items, "z", 1)));
    assert_true(eng_csr_has(d->test, 0, eng_idmap_find(d->items, "w", 1)));
    trn_data_free(d);
}

static void test_bad_options(void **state)
{
    (void)state;
    trn_data_t *d = (trn_data_t *)(uintptr_t)1;
    eng_error_t err = {0};
    trn_data_opts_t o = {.train_path = split_log(), .split = TRN_SPLIT_RANDOM, .split_frac = 1.0};
    assert_int_equal(trn_data_load(&o, &d, &err), ENG_EINVAL);
    assert_null(d);
    assert_string_equal(err.msg, "split fraction 1 is not in (0, 1)");
    o = (trn_data_opts_t){0};
    assert_int_equal(trn_data_load(&o, &d, &err), ENG_EINVAL);
    assert_int_equal(trn_data_load(&o, &d, NULL), ENG_EINVAL); /* err may be NULL */
}

/* A line too long for any buffer refill: the error names it, and nothing leaks (ASan). */
static void test_long_lines(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/long.txt", tmpdir);
    size_t n = 3 * 1024 * 1024;
    char *s = malloc(n + 64);
    assert_non_null(s);
    strcpy(s, "0 1 2\n1 ");
    size_t len = strlen(s);
    for (int k = 0; len < n; k++)
        len += (size_t)sprintf(s + len, "%d ", k % 1000);
    strcpy(s + len, "7\n2 5\n");
    write_file(path, s);
    free(s);
    /* LightGCN lines may be megabytes long... */
    trn_data_opts_t o = {.train_path = path, .format = TRN_FMT_LGN};
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    assert_int_equal(trn_data_load(&o, &d, &err), 0);
    assert_int_equal(d->n_users, 3);
    assert_int_equal(d->n_items, 1000);
    trn_data_free(d);
    /* ...a CSV line may not. */
    o.format = TRN_FMT_CSV;
    assert_int_equal(trn_data_load(&o, &d, &err), ENG_EPARSE);
    char want[4400];
    snprintf(want, sizeof want, "%s:2: line longer than 65536 bytes", path);
    assert_string_equal(err.msg, want);
}

/* ---- Synthetic data ---- */

static void test_synth_deterministic(void **state)
{
    (void)state;
    trn_synth_opts_t o = trn_synth_defaults();
    trn_data_t *a = NULL, *b = NULL, *c = NULL;
    eng_error_t err = {0};
    assert_int_equal(trn_data_synthetic(&o, &a, &err), 0);
    assert_int_equal(trn_data_synthetic(&o, &b, &err), 0);
    o.seed++;
    assert_int_equal(trn_data_synthetic(&o, &c, &err), 0);
    assert_true(csr_equal(a->train, b->train) && csr_equal(a->test, b->test));
    assert_false(csr_equal(a->train, c->train));
    assert_string_equal(eng_idmap_name(a->users, 17), "u17");
    assert_string_equal(eng_idmap_name(a->items, 1499), "i1499");
    trn_data_free(a);
    trn_data_free(b);
    trn_data_free(c);
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

static void test_synth_structure(void **state)
{
    (void)state;
    trn_synth_opts_t o = trn_synth_defaults();
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    assert_int_equal(trn_data_synthetic(&o, &d, &err), 0);
    assert_int_equal(d->n_users, o.n_users);
    assert_int_equal(d->n_items, o.n_items);
    int64_t total = 0, own = 0, test = d->test->nnz;
    int64_t *pop = calloc((size_t)d->n_items, sizeof *pop);
    assert_non_null(pop);
    int32_t fewest = INT32_MAX;
    for (int32_t u = 0; u < d->n_users; u++) {
        const eng_csr_t *ms[2] = {d->train, d->test};
        int32_t n_u = 0;
        for (int m = 0; m < 2; m++)
            for (int64_t k = ms[m]->ptr[u]; k < ms[m]->ptr[u + 1]; k++) {
                int32_t i = ms[m]->idx[k];
                own += i % o.communities == u % o.communities;
                pop[i]++;
                n_u++;
            }
        total += n_u;
        if (n_u < fewest)
            fewest = n_u;
    }
    /* Own-community share: the in_community draws plus the global draws that land there. */
    double share = (double)own / (double)total;
    double want = o.in_community + (1 - o.in_community) / o.communities;
    print_message("synthetic: %lld interactions, own-community share %.3f (model %.3f), test "
                  "%.3f\n",
                  (long long)total, share, want, (double)test / (double)total);
    assert_true(fabs(share - want) < 0.02);
    assert_true(fewest >= 5);
    double mean = (double)total / d->n_users;
    assert_true(mean > 0.85 * o.per_user && mean < 1.15 * o.per_user);
    assert_true(fabs((double)test / (double)total - o.test_frac) < 0.02);
    /* Zipf popularity: the most popular tenth of the items holds far more than a tenth. */
    qsort(pop, (size_t)d->n_items, sizeof *pop, cmp_desc);
    int64_t head = 0;
    for (int32_t i = 0; i < d->n_items / 10; i++)
        head += pop[i];
    print_message("synthetic: top 10%% of items hold %.3f of interactions\n",
                  (double)head / (double)total);
    assert_true((double)head / (double)total > 0.35);
    free(pop);
    trn_data_free(d);
}

static void test_synth_bad_options(void **state)
{
    (void)state;
    trn_synth_opts_t o = trn_synth_defaults();
    o.communities = 0;
    trn_data_t *d = (trn_data_t *)(uintptr_t)1;
    eng_error_t err = {0};
    assert_int_equal(trn_data_synthetic(&o, &d, &err), ENG_EINVAL);
    assert_null(d);
    o = trn_synth_defaults();
    o.test_frac = 1;
    assert_int_equal(trn_data_synthetic(&o, &d, &err), ENG_EINVAL);
    o = trn_synth_defaults();
    o.test_frac = 0; /* no holdout: no test matrix */
    o.n_users = 50;
    assert_int_equal(trn_data_synthetic(&o, &d, &err), 0);
    assert_null(d->test);
    trn_data_free(d);
}

/* ---- Real datasets ---- */

/* Path of a file in $GNNREC_DATA, or NULL (the test then skips). */
static const char *data_file(char *buf, size_t size, const char *rel)
{
    const char *root = getenv("GNNREC_DATA");
    if (!root) {
        print_message("GNNREC_DATA not set: skipping\n");
        return NULL;
    }
    snprintf(buf, size, "%s/%s", root, rel);
    if (!exists(buf)) {
        print_message("%s absent: skipping\n", buf);
        return NULL;
    }
    return buf;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static trn_data_t *load_real(const trn_data_opts_t *o)
{
    trn_data_t *d = NULL;
    eng_error_t err = {0};
    double t0 = now();
    if (trn_data_load(o, &d, &err) < 0)
        fail_msg("%s", err.msg);
    print_message("%s: %d users, %d items, %lld train, %lld test in %.3f s\n", o->train_path,
                  d->n_users, d->n_items, (long long)d->train->nnz,
                  d->test ? (long long)d->test->nnz : -1LL, now() - t0);
    return d;
}

static void test_real_gowalla(void **state)
{
    (void)state;
    char tr[4096], te[4096];
    if (!data_file(tr, sizeof tr, "gowalla/train.txt") ||
        !data_file(te, sizeof te, "gowalla/test.txt"))
        skip();
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr, .test_path = te});
    assert_int_equal(d->n_users, 29858);
    assert_int_equal(d->n_items, 40981);
    assert_int_equal(d->train->nnz, 810128);
    assert_int_equal(d->test->nnz, 217242);
    assert_string_equal(eng_idmap_name(d->items, 40980), "40980");
    trn_data_free(d);
}

static void test_real_lastfm(void **state)
{
    (void)state;
    char tr[4096], te[4096];
    if (!data_file(tr, sizeof tr, "lastfm/train.txt") ||
        !data_file(te, sizeof te, "lastfm/test.txt"))
        skip();
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr, .test_path = te});
    assert_int_equal(d->n_users, 1892);
    assert_int_equal(d->n_items, 4489);
    assert_int_equal(d->train->nnz, 42135);
    assert_int_equal(d->test->nnz, 10533);
    trn_data_free(d);
}

static void test_real_movielens(void **state)
{
    (void)state;
    char tr[4096];
    if (!data_file(tr, sizeof tr, "movielens-100k/u.data"))
        skip();
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr});
    assert_int_equal(d->n_users, 943);
    assert_int_equal(d->n_items, 1682);
    assert_int_equal(d->train->nnz, 100000);
    assert_null(d->test);
    assert_string_equal(eng_idmap_name(d->users, 0), "196"); /* first line: 196 242 3 ... */
    assert_string_equal(eng_idmap_name(d->items, 0), "242");
    assert_non_null(d->train->val); /* the third column, 1..5 stars, summing to 352,986 */
    double stars = 0;
    for (int64_t k = 0; k < d->train->nnz; k++) {
        assert_true(d->train->val[k] >= 1 && d->train->val[k] <= 5);
        stars += d->train->val[k];
    }
    assert_true(stars == 352986);
    trn_data_free(d);

    for (int how = TRN_SPLIT_RANDOM; how <= TRN_SPLIT_TIME; how++) {
        d = load_real(&(trn_data_opts_t){
            .train_path = tr, .split = (trn_split_t)how, .split_frac = 0.2, .seed = 3});
        assert_int_equal(d->train->nnz + d->test->nnz, 100000);
        int64_t want = 0; /* every user has >= 20 ratings: exactly round(0.2 n) held out */
        for (int32_t u = 0; u < d->n_users; u++) {
            int64_t n =
                d->train->ptr[u + 1] - d->train->ptr[u] + d->test->ptr[u + 1] - d->test->ptr[u];
            want += (int64_t)floor(0.2 * (double)n + 0.5);
        }
        assert_int_equal(d->test->nnz, want);
        trn_data_free(d);
    }

    /* min_weight 4 keeps the 4- and 5-star ratings: 34,174 + 21,201. */
    d = load_real(&(trn_data_opts_t){.train_path = tr, .use_min_weight = 1, .min_weight = 4});
    assert_int_equal(d->train->nnz, 34174 + 21201);
    trn_data_free(d);
}

static void test_real_kgcn(void **state)
{
    (void)state;
    char tr[4096];
    if (!data_file(tr, sizeof tr, "kgcn-music/interactions.txt"))
        skip();
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr});
    assert_int_equal(d->n_users, 1872);
    assert_int_equal(d->n_items, 3846);
    assert_int_equal(d->train->nnz, 21173);
    trn_data_free(d);
}

static void test_real_kgcn_raw(void **state)
{
    (void)state;
    char tr[4096];
    if (!data_file(tr, sizeof tr, "kgcn-music/user_artists.dat"))
        skip();
    /* hetrec's `userID artistID weight` header: columns by name, every row kept. */
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr});
    assert_int_equal(d->n_users, 1892);
    assert_int_equal(d->n_items, 17632);
    assert_int_equal(d->train->nnz, 92834);
    trn_data_free(d);
}

/* The rating of user u's item named id in m (which must hold it). */
static float rating_of(const trn_data_t *d, const eng_csr_t *m, const char *u, const char *id)
{
    int32_t r = eng_idmap_find(d->users, u, strlen(u)),
            c = eng_idmap_find(d->items, id, strlen(id));
    for (int64_t k = m->ptr[r]; k < m->ptr[r + 1]; k++)
        if (m->idx[k] == c)
            return m->val[k];
    fail_msg("%s has no item %s", u, id);
    return NAN;
}

/* Weights are kept as ratings: of merged duplicates the latest row's, through the test file's
 * filtering and through a split; not at all when a row lacks one or in the LightGCN format. */
static void test_ratings(void **state)
{
    (void)state;
    char tr[4200], te[4200];
    snprintf(tr, sizeof tr, "%s/ratings.csv", tmpdir);
    snprintf(te, sizeof te, "%s/ratings_test.csv", tmpdir);
    write_file(tr, "a,x,3,10\na,x,5,20\na,y,4,5\nb,y,2,1\nb,x,1,3\n");
    write_file(te, "a,z,1,1\nb,y,3,1\nb,z,4.5,2\n");
    trn_data_t *d = load_real(&(trn_data_opts_t){.train_path = tr, .test_path = te});
    assert_non_null(d->train->val);
    assert_non_null(d->test->val);
    assert_true(rating_of(d, d->train, "a", "x") == 5.0f); /* the later timestamp wins */
    assert_true(rating_of(d, d->train, "a", "y") == 4.0f);
    assert_true(rating_of(d, d->train, "b", "y") == 2.0f);
    assert_int_equal(d->test->nnz, 2); /* b,y is a training pair */
    assert_true(rating_of(d, d->test, "a", "z") == 1.0f);
    assert_true(rating_of(d, d->test, "b", "z") == 4.5f);
    trn_data_free(d);

    /* a split carries each pair's rating to whichever side it lands on */
    for (int how = TRN_SPLIT_RANDOM; how <= TRN_SPLIT_TIME; how++) {
        d = load_real(&(trn_data_opts_t){
            .train_path = tr, .split = (trn_split_t)how, .split_frac = 0.5, .seed = 1});
        assert_int_equal(d->train->nnz + d->test->nnz, 4);
        const eng_csr_t *a_x = eng_csr_has(d->train, 0, 0) ? d->train : d->test;
        assert_true(rating_of(d, a_x, "a", "x") == 5.0f);
        const eng_csr_t *b_x = eng_csr_has(d->train, 1, 0) ? d->train : d->test;
        assert_true(rating_of(d, b_x, "b", "x") == 1.0f);
        trn_data_free(d);
    }

    write_file(tr, "a,x,3\nb,y\n"); /* one row without a weight: no ratings */
    d = load_real(&(trn_data_opts_t){.train_path = tr});
    assert_null(d->train->val);
    trn_data_free(d);
    write_file(tr, "0 1 2\n1 0\n");
    d = load_real(&(trn_data_opts_t){.train_path = tr});
    assert_null(d->train->val);
    trn_data_free(d);
}

static int make_tmpdir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    const char *files[] = {"split.csv", "ties.tsv", "long.txt", "ratings.csv", "ratings_test.csv"};
    char p[4200];
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[k]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

/* One map's indices in another's: a shared id's index, -1 for one the other lacks. */
static void test_idmap_translate(void **state)
{
    (void)state;
    eng_idmap_t *a = eng_idmap_new(), *b = eng_idmap_new();
    assert_true(a && b);
    const char *ai[] = {"u1", "u2", "u3"}, *bi[] = {"u3", "x", "u1"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(eng_idmap_intern(a, ai[k], strlen(ai[k])), k);
        assert_int_equal(eng_idmap_intern(b, bi[k], strlen(bi[k])), k);
    }
    int32_t out[3] = {7, 7, 7};
    eng_idmap_translate(a, b, out);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], -1);
    assert_int_equal(out[2], 0);
    eng_idmap_free(a);
    eng_idmap_free(b);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_split_random),
        cmocka_unit_test(test_split_time),
        cmocka_unit_test(test_split_time_ties),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_idmap_translate),
        cmocka_unit_test(test_synth_deterministic),
        cmocka_unit_test(test_synth_structure),
        cmocka_unit_test(test_synth_bad_options),
        cmocka_unit_test(test_real_gowalla),
        cmocka_unit_test(test_real_lastfm),
        cmocka_unit_test(test_real_movielens),
        cmocka_unit_test(test_real_kgcn),
        cmocka_unit_test(test_real_kgcn_raw),
        cmocka_unit_test(test_ratings),
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    char **dirs = NULL, **names = NULL;
    int ncases = find_cases(&dirs, &names);
    struct CMUnitTest *tests = calloc(nfixed + (size_t)ncases, sizeof *tests);
    if (!tests)
        return 1;
    for (int k = 0; k < ncases; k++)
        tests[k] =
            (struct CMUnitTest){.name = names[k], .test_func = run_case, .initial_state = dirs[k]};
    memcpy(tests + ncases, fixed, sizeof fixed);
    int failed =
        _cmocka_run_group_tests("data", tests, nfixed + (size_t)ncases, make_tmpdir, remove_tmpdir);
    for (int k = 0; k < ncases; k++) {
        free(dirs[k]);
        free(names[k]);
    }
    free(dirs);
    free(names);
    free(tests);
    if (ncases == 0)
        return 1; /* the cases are the core of this suite: missing them is a failure */
    return failed;
}
