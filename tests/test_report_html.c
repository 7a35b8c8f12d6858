/* cli_report_html_write on made-up runs: the page is self-contained (nothing fetched, no script),
 * has the charts and points the epochs call for, escapes text from outside, compares with the
 * live version, survives one epoch, no evaluated epoch, NaN, infinities and constant series, and
 * fails with ENG_EIO and no temporary file left behind. cli/ is not a library: the file under
 * test is compiled here. */
#include "cli/report_html.c"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/* ks {10, 20}; metrics rising with the epoch so that no series is constant. */
static void fill_metrics(trn_metrics_t *m, double t, int extras)
{
    *m = (trn_metrics_t){.nk = 2, .ks = {10, 20}, .n_users = 100};
    for (int j = 0; j < 2; j++) {
        m->recall[j] = 0.05 * (j + 1) + 0.01 * t;
        m->ndcg[j] = 0.04 * (j + 1) + 0.008 * t;
        m->precision[j] = 0.02 + 0.001 * t;
        m->hit[j] = 0.3 + 0.02 * t;
        m->cold_recall[j] = 0.01 * (j + 1) + 0.002 * t;
        m->cold_ndcg[j] = 0.01 + 0.001 * t;
    }
    if (extras) {
        m->cold_users = 7;
        m->has_auc = 1, m->auc = 0.7 + 0.01 * t, m->f1 = 0.6 + 0.01 * t, m->auc_pairs = 50;
    }
}

/* n epochs, evaluated every eval_every (0: none), loss falling. */
static void fill_epochs(trn_epoch_t *e, int n, int eval_every, int extras)
{
    for (int i = 0; i < n; i++) {
        e[i] = (trn_epoch_t){
            .epoch = i + 1, .loss = 0.7 / (i + 1), .batches = 10, .train_s = 0.5 + 0.01 * i};
        if (eval_every && (i + 1) % eval_every == 0) {
            e[i].evaluated = 1, e[i].eval_s = 0.1;
            fill_metrics(&e[i].metrics, i, extras);
        }
    }
}

/* A fresh directory for a test's files. */
static void tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/gnnrec-html-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Writes r to dir/name, returns the page (free it). */
static char *write_read(const char *dir, const cli_html_report_t *r)
{
    char path[256];
    snprintf(path, sizeof path, "%s/report.html", dir);
    eng_error_t err = {0};
    assert_int_equal(cli_report_html_write(path, r, &err), 0);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *s = malloc((size_t)len + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = 0;
    fclose(f);
    return s;
}

static int count(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

/* The number of points of each polyline in order, into pts; returns how many polylines. */
static int polyline_points(const char *s, int *pts, int max)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, "<polyline")); p++) {
        const char *q = strstr(p, "points=\"");
        assert_non_null(q);
        q += 8;
        int k = *q != '"';
        for (; *q != '"'; q++)
            k += *q == ' ';
        assert_true(n < max);
        pts[n++] = k;
    }
    return n;
}

/* Nothing the page would fetch or run. */
static void assert_self_contained(const char *s)
{
    assert_int_equal(strncmp(s, "<!DOCTYPE html>", 15), 0);
    assert_int_equal(count(s, "http://"), count(s, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_int_equal(count(s, "https://"), 0);
    const char *banned[] = {"<script", "src=", "@import", "url(", "<link", "<img", "<iframe"};
    for (size_t i = 0; i < sizeof banned / sizeof *banned; i++)
        assert_null(strstr(s, banned[i]));
    /* No value that failed to format: NaN and infinities are skipped, never printed. */
    assert_null(strstr(s, "nan"));
    assert_null(strstr(s, "inf"));
    assert_non_null(strstr(s, "</html>\n"));
}

static void test_full_run(void **state)
{
    (void)state;
    char dir[64];
    tmpdir(dir, sizeof dir);
    trn_epoch_t e[6];
    fill_epochs(e, 6, 2, 1);
    cli_html_report_t r = {.name = "<b>news & \"sports\"</b>",
                           .kind = "lightgcn",
                           .data = "log of a<b>.sqlite + 'base'.csv",
                           .settings = "dim=64 layers=3",
                           .finished = "2024-05-01T03:00:00Z",
                           .n_users = 100,
                           .n_items = 50,
                           .n_train = 900,
                           .n_test = 100,
                           .epochs = e,
                           .n_epochs = 6,
                           .has_new = 1,
                           .live_version = 6,
                           .gate = 1,
                           .gate_k = 20,
                           .tolerance = 0.01,
                           .published_version = 7};
    fill_metrics(&r.now, 5, 1);
    fill_metrics(&r.live, 3, 1);
    r.live.auc = 0.9; /* the new model worse on one metric */
    char *s = write_read(dir, &r);
    assert_self_contained(s);

    /* loss; recall@10, recall@20, ndcg@10, ndcg@20; auc, f1; cold recall@10, @20; time x2 */
    assert_int_equal(count(s, "<svg"), 5);
    assert_int_equal(count(s, "</svg>"), 5);
    int pts[32], want[] = {6, 3, 3, 3, 3, 3, 3, 3, 3, 6, 3};
    int np = polyline_points(s, pts, 32);
    assert_int_equal(np, 11);
    for (int i = 0; i < np; i++)
        assert_int_equal(pts[i], want[i]);
    assert_int_equal(count(s, "<circle"), 6 + 8 * 3 + 6 + 3); /* few points: all marked */
    assert_non_null(strstr(s, ">recall@20</text>"));
    assert_non_null(strstr(s, ">cold recall@10</text>"));

    /* Text from outside, escaped wherever it appears. */
    assert_null(strstr(s, "<b>"));
    assert_int_equal(count(s, "&lt;b&gt;news &amp; &quot;sports&quot;&lt;/b&gt;"), 3);
    assert_non_null(strstr(s, "log of a&lt;b&gt;.sqlite + &#39;base&#39;.csv"));

    assert_non_null(strstr(s, "as version 7"));
    assert_non_null(strstr(s, "passed: recall@20 of the new model 0.1500, of live v6 0.1300"));
    assert_non_null(strstr(s, "at least 0.1200 (live minus the tolerance 0.0100)"));

    /* The comparison: a row per metric and K, live then new then the difference. */
    assert_non_null(strstr(s, "<th>live v6</th><th>new</th><th>difference</th>"));
    assert_non_null(strstr(s, "<tr><td>recall@20</td><td>0.1300</td><td>0.1500</td>"
                              "<td class=\"better\">+0.0200</td></tr>"));
    assert_non_null(strstr(s, "<tr><td>auc</td><td>0.9000</td><td>0.7500</td>"
                              "<td class=\"worse\">-0.1500</td></tr>"));
    const char *table = strstr(s, "<table class=\"cmp\">");
    assert_non_null(table);
    assert_int_equal(count(table, "<tr>"), 1 + 6 * 2 + 2); /* header, 6 per-K metrics, auc, f1 */
    free(s);

    /* Refused by the gate, nothing published, no live version: the new model's metrics alone. */
    r.gate = -1, r.published_version = 0;
    s = write_read(dir, &r);
    assert_non_null(strstr(s, "refused: recall@20 of the new model 0.1500, of live v6 0.1300"));
    assert_non_null(strstr(s, "<th>published</th><td>no</td>"));
    free(s);
    r.live_version = 0, r.gate = 0, r.name = NULL;
    s = write_read(dir, &r);
    assert_self_contained(s);
    assert_null(strstr(s, "difference"));
    assert_non_null(strstr(s, "<tr><th>metric</th><th>new</th></tr>"));
    assert_non_null(strstr(s, "<tr><td>recall@20</td><td>0.1500</td></tr>"));
    assert_non_null(strstr(s, "<tr><th>quality gate</th><td>not run</td></tr>"));
    assert_non_null(strstr(s, "Training report: lightgcn</h1>"));
    free(s);

    char path[256];
    snprintf(path, sizeof path, "%s/report.html", dir);
    unlink(path);
    rmdir(dir);
}

static void test_edges(void **state)
{
    (void)state;
    char dir[64];
    tmpdir(dir, sizeof dir);
    trn_epoch_t e[8];
    cli_html_report_t r = {.kind = "mf", .epochs = e};

    /* One epoch, evaluated: every chart has one point, drawn as a marker. */
    fill_epochs(e, 1, 1, 0);
    r.n_epochs = 1;
    char *s = write_read(dir, &r);
    assert_self_contained(s);
    int pts[32];
    assert_int_equal(count(s, "<svg"), 3); /* loss, ranking, time */
    assert_int_equal(polyline_points(s, pts, 32), 1 + 4 + 2);
    for (int i = 0; i < 7; i++)
        assert_int_equal(pts[i], 1);
    assert_int_equal(count(s, "<circle"), 7);
    assert_non_null(strstr(s, "The new model was not evaluated."));
    free(s);

    /* No epoch evaluated; NaN and infinite losses skipped; ks without 20: the gate compared at
     * the first. */
    fill_epochs(e, 5, 0, 0);
    e[1].loss = NAN, e[2].loss = INFINITY, e[4].loss = -INFINITY;
    r.n_epochs = 5, r.has_new = 1, r.live_version = 2, r.gate = -1, r.gate_k = 10;
    fill_metrics(&r.now, 1, 0);
    fill_metrics(&r.live, 1, 0);
    r.now.ks[1] = r.live.ks[1] = 50;
    s = write_read(dir, &r);
    assert_self_contained(s);
    assert_int_equal(count(s, "<svg"), 2);
    assert_non_null(strstr(s, "No epoch was evaluated."));
    assert_int_equal(polyline_points(s, pts, 32), 2); /* loss, training time */
    assert_int_equal(pts[0], 2);
    assert_int_equal(pts[1], 5);
    assert_non_null(strstr(s, "refused: recall@10 of the new model 0.0600, of live v2 0.0600"));
    assert_non_null(strstr(s, "<tr><td>recall@50</td><td>0.1100</td><td>0.1100</td>"
                              "<td class=\"same\">+0.0000</td></tr>"));
    free(s);

    /* Constant series, every loss NaN, no epochs at all. */
    fill_epochs(e, 4, 1, 0);
    for (int i = 0; i < 4; i++)
        e[i].metrics = e[0].metrics, e[i].loss = NAN, e[i].train_s = 0;
    r.n_epochs = 4;
    s = write_read(dir, &r);
    assert_self_contained(s);
    assert_int_equal(count(s, "no finite values"), 1);
    assert_int_equal(polyline_points(s, pts, 32), 4 + 2);
    free(s);
    r.n_epochs = 0;
    s = write_read(dir, &r);
    assert_self_contained(s);
    assert_int_equal(count(s, "<svg"), 2);
    assert_int_equal(count(s, "<polyline"), 0);
    free(s);

    /* Every K: 16 series, the ones past the palette dashed. */
    fill_epochs(e, 8, 2, 0);
    for (int i = 1; i < 8; i += 2) {
        e[i].metrics.nk = TRN_EVAL_MAX_K;
        for (int j = 0; j < TRN_EVAL_MAX_K; j++)
            e[i].metrics.ks[j] = 5 * (j + 1), e[i].metrics.recall[j] = 0.1 * j + 0.01 * i;
    }
    r.n_epochs = 8;
    s = write_read(dir, &r);
    assert_self_contained(s);
    assert_int_equal(polyline_points(s, pts, 32), 1 + 2 * TRN_EVAL_MAX_K + 2);
    assert_int_equal(count(s, "stroke-dasharray"), 2 * (2 * TRN_EVAL_MAX_K - N_PALETTE));
    assert_non_null(strstr(s, ">ndcg@40</text>"));
    free(s);

    char path[256];
    snprintf(path, sizeof path, "%s/report.html", dir);
    unlink(path);
    rmdir(dir);
}

static void test_unwritable(void **state)
{
    (void)state;
    trn_epoch_t e[2];
    fill_epochs(e, 2, 1, 0);
    cli_html_report_t r = {.kind = "mf", .epochs = e, .n_epochs = 2};
    eng_error_t err = {0};

    /* A directory that does not exist: nothing can be created. */
    assert_int_equal(cli_report_html_write("/nonexistent-gnnrec/r.html", &r, &err), ENG_EIO);
    assert_int_equal(err.code, ENG_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-gnnrec/r.html"));

    /* The target is a directory: the page is written, the rename fails, the temporary file goes. */
    char dir[64], path[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/report.html", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    err = (eng_error_t){0};
    assert_int_equal(cli_report_html_write(path, &r, &err), ENG_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(count_entries(dir), 1);
    rmdir(path);

    /* A write that fails part way (the file size limit, its signal ignored: write returns EFBIG):
     * ENG_EIO, the temporary file goes, the page written before is still there, whole. */
    assert_int_equal(cli_report_html_write(path, &r, &err), 0);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 512;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    err = (eng_error_t){0};
    int rc = cli_report_html_write(path, &r, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, ENG_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(count_entries(dir), 1);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino && before.st_size == after.st_size);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_run),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
