/* `gnnrec train --report-html FILE`: the run as one HTML page that needs nothing else to display.
 *
 * Every chart is drawn by chart() (hand-written SVG: axes, ticks, a polyline per series, a
 * legend), and every metric the page shows, as a chart series or a table row, comes from the one
 * table `metrics`: a metric added there appears in both. Text from outside (names, paths,
 * settings) goes through esc(). The page is written with stdio to a temporary file beside the
 * target and renamed over it, so a reader sees the old page or the new one, never half of one. */
#include "cli/report_html.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* When a metric is present in a trn_metrics_t. */
enum { ALWAYS, AUC, RATINGS, COLD, LINK };
/* The per-epoch charts the metrics go on (NOCHART: the table only). */
enum { RANKING, CTR, RATING, COLDCH, LINKCH, NOCHART };

static const struct {
    const char *title, *ylabel;
} charts[] = {
    [RANKING] = {"Ranking on the holdout", "recall, ndcg"},
    [CTR] = {"AUC and F1", "auc, f1"},
    [RATING] = {"Rating error", "rmse, mae"},
    [COLDCH] = {"Cold users", "recall"},
    [LINKCH] = {"Link prediction", "mrr, hits"},
};

/* recall first: the gate's verdict reads metrics[RECALL] */
#define RECALL 0
static const struct {
    const char *name; /* per_k: shown as name@K for each K */
    size_t off;       /* the double (per_k: the [TRN_EVAL_MAX_K] array) in trn_metrics_t */
    int per_k, needs, chart;
    int lower; /* lower is better */
} metrics[] = {
    {"recall", offsetof(trn_metrics_t, recall), 1, ALWAYS, RANKING, 0},
    {"ndcg", offsetof(trn_metrics_t, ndcg), 1, ALWAYS, RANKING, 0},
    {"precision", offsetof(trn_metrics_t, precision), 1, ALWAYS, NOCHART, 0},
    {"hit", offsetof(trn_metrics_t, hit), 1, ALWAYS, NOCHART, 0},
    {"cold recall", offsetof(trn_metrics_t, cold_recall), 1, COLD, COLDCH, 0},
    {"cold ndcg", offsetof(trn_metrics_t, cold_ndcg), 1, COLD, NOCHART, 0},
    {"auc", offsetof(trn_metrics_t, auc), 0, AUC, CTR, 0},
    {"f1", offsetof(trn_metrics_t, f1), 0, AUC, CTR, 0},
    {"rmse", offsetof(trn_metrics_t, rmse), 0, RATINGS, RATING, 1},
    {"mae", offsetof(trn_metrics_t, mae), 0, RATINGS, RATING, 1},
    {"mrr", offsetof(trn_metrics_t, mrr), 0, LINK, LINKCH, 0},
    {"hits@1", offsetof(trn_metrics_t, hits[0]), 0, LINK, LINKCH, 0},
    {"hits@3", offsetof(trn_metrics_t, hits[1]), 0, LINK, LINKCH, 0},
    {"hits@10", offsetof(trn_metrics_t, hits[2]), 0, LINK, LINKCH, 0},
};
#define N_METRICS ((int)(sizeof metrics / sizeof *metrics))
#define MAX_SERIES (2 * TRN_EVAL_MAX_K) /* the ranking chart: recall and ndcg at every K */

/* Series colours, far from the page's greys and from the pass/fail colours (the screenshot test
 * looks for them); series past the palette repeat it dashed. */
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
#define N_PALETTE ((int)(sizeof palette / sizeof *palette))

static int present(const trn_metrics_t *m, int needs)
{
    switch (needs) {
    case AUC:
        return m->has_auc;
    case RATINGS:
        return m->has_rmse;
    case COLD:
        return m->cold_users > 0;
    case LINK:
        return m->has_link;
    }
    return 1;
}

/* Metric i of m at cut-off k (ignored unless per K); NaN when m does not have it. */
static double metric(const trn_metrics_t *m, int i, int k)
{
    if (!present(m, metrics[i].needs))
        return NAN;
    const double *v = (const double *)((const char *)m + metrics[i].off);
    if (!metrics[i].per_k)
        return *v;
    for (int j = 0; j < m->nk && j < TRN_EVAL_MAX_K; j++)
        if (m->ks[j] == k)
            return v[j];
    return NAN;
}

/* The metric's name, per K with its cut-off. */
static void metric_name(char *buf, size_t n, int i, int k)
{
    if (metrics[i].per_k)
        snprintf(buf, n, "%s@%d", metrics[i].name, k);
    else
        snprintf(buf, n, "%s", metrics[i].name);
}

/* A metric's value as the page prints it. */
static const char *num(char *buf, size_t n, double v)
{
    snprintf(buf, n, isfinite(v) ? "%.4f" : "n/a", v);
    return buf;
}

/* s as HTML text or attribute value; NULL as "-". Control characters other than tab and
 * newline are dropped (HTML has no way to write them). */
static void esc(FILE *f, const char *s)
{
    for (s = s ? s : "-"; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '"')
            fputs("&quot;", f);
        else if (c == '\'')
            fputs("&#39;", f);
        else if (c >= 0x20 || c == '\t' || c == '\n')
            fputc(c, f);
    }
}

/* A value an axis can place: finite, and small enough that spans of such values stay finite. */
static int plottable(double v)
{
    return isfinite(v) && fabs(v) < 1e300;
}

/* An axis over [*lo, *hi] with about n ticks of 1, 2 or 5 times a power of ten: widens the range
 * by margin times its span (an empty range by a tenth of its value, or 1; not below 0 when it was
 * not), rounds both ends out to a tick, returns the step. */
static double axis(double *lo, double *hi, int n, double margin)
{
    double d = *hi > *lo ? (*hi - *lo) * margin : *lo != 0 ? fabs(*lo) * 0.1 : 1;
    *lo = *lo >= 0 && *lo < d ? 0 : *lo - d, *hi += d; /* no negative ticks for times, metrics */
    double raw = (*hi - *lo) / n, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    *lo = floor(*lo / step) * step;
    *hi = ceil(*hi / step) * step;
    return step;
}

/* A tick label with as many decimals as the step needs. */
static void tick_label(char *buf, size_t n, double v, double step)
{
    if (fabs(v) >= 1e6 || step < 1e-6) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", dec, fabs(v) < step * 1e-9 ? 0.0 : v);
}

typedef struct {
    char name[32];
    const double *y; /* [n], NaN where the series has no value */
} series_t;

/* Chart geometry: the plot's box inside the SVG, the legend's rows below it. */
enum { CW = 860, PL = 70, PR = CW - 20, PT = 14, PB = PT + 240, LEG_ITEM = 150, LEG_ROW = 20 };

/* One SVG line chart of ns series over x[0..n) (the epochs): y axis from the values that are
 * plottable (the others are skipped, the line joining the points on either side), x axis over
 * all of x. Points get markers while a series has few, so that a single point shows. */
static void chart(FILE *f, const char *title, const char *ylabel, const double *x, int n,
                  const series_t *s, int ns)
{
    double xlo = n ? x[0] : 0, xhi = n ? x[n - 1] : 0, ylo = INFINITY, yhi = -INFINITY;
    for (int j = 0; j < ns; j++)
        for (int i = 0; i < n; i++)
            if (plottable(s[j].y[i]))
                ylo = fmin(ylo, s[j].y[i]), yhi = fmax(yhi, s[j].y[i]);
    int empty = !(ylo <= yhi);
    if (empty)
        ylo = 0, yhi = 1;
    double ystep = axis(&ylo, &yhi, 5, 0.04);
    double xstep = fmax(1, round(axis(&xlo, &xhi, 8, 0))); /* whole epochs */
    xlo = floor(xlo / xstep) * xstep, xhi = ceil(xhi / xstep) * xstep;
#define PX(v) (PL + ((v)-xlo) / (xhi - xlo) * (PR - PL))
#define PY(v) (PB - ((v)-ylo) / (yhi - ylo) * (PB - PT))

    const int per_row = (PR - PL) / LEG_ITEM, rows = (ns + per_row - 1) / per_row;
    const int h = PB + 56 + rows * LEG_ROW;
    fprintf(f, "<h2>");
    esc(f, title);
    fprintf(f,
            "</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
            CW, h, CW, h);
    esc(f, title);
    fputs("\">\n<g class=\"grid\">", f);
    char lab[48];
    for (int i = 0; i <= 40; i++) {
        double v = ylo + i * ystep;
        if (v > yhi + ystep * 1e-6)
            break;
        tick_label(lab, sizeof lab, v, ystep);
        fprintf(f,
                "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"yt\" x=\"%d\" y=\"%.1f\">%s</text>\n",
                PL, PR, PY(v), PY(v), PL - 6, PY(v) + 4, lab);
    }
    for (int i = 0; i <= 40; i++) {
        double v = xlo + i * xstep;
        if (v > xhi + 1e-9)
            break;
        tick_label(lab, sizeof lab, v, 1);
        fprintf(f,
                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>"
                "<text class=\"xt\" x=\"%.1f\" y=\"%d\">%s</text>\n",
                PX(v), PX(v), PB, PB + 5, PX(v), PB + 18, lab);
    }
    fprintf(f,
            "</g>\n<text class=\"xl\" x=\"%d\" y=\"%d\">epoch</text>\n"
            "<text class=\"yl\" transform=\"translate(16 %d) rotate(-90)\">",
            (PL + PR) / 2, PB + 36, (PT + PB) / 2);
    esc(f, ylabel);
    fputs("</text>\n", f);
    if (empty)
        fprintf(f, "<text class=\"xl\" x=\"%d\" y=\"%d\">no finite values</text>\n", (PL + PR) / 2,
                (PT + PB) / 2);

    for (int j = 0; j < ns; j++) {
        const char *col = palette[j % N_PALETTE];
        const char *dash = j >= N_PALETTE ? " stroke-dasharray=\"6 3\"" : "";
        int m = 0;
        for (int i = 0; i < n; i++)
            m += plottable(s[j].y[i]);
        if (m) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col,
                    dash);
            for (int i = 0, first = 1; i < n; i++)
                if (plottable(s[j].y[i]))
                    fprintf(f, "%s%.1f,%.1f", first ? "" : " ", PX(x[i]), PY(s[j].y[i])), first = 0;
            fputs("\"/>\n", f);
        }
        for (int i = 0; m <= 40 && i < n; i++)
            if (plottable(s[j].y[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(x[i]),
                        PY(s[j].y[i]), col);
        int lx = PL + (j % per_row) * LEG_ITEM, ly = PB + 56 + (j / per_row) * LEG_ROW;
        fprintf(f,
                "\n<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
                "stroke-width=\"3\"%s/><text x=\"%d\" y=\"%d\">",
                lx, lx + 20, ly - 4, ly - 4, col, dash, lx + 26, ly);
        esc(f, s[j].name);
        fputs("</text>\n", f);
    }
    /* The frame last, over any line that runs along it. */
    fprintf(f, "<path class=\"axis\" d=\"M%d %dV%dH%d\"/>\n</svg>\n", PL, PT, PB, PR);
#undef PX
#undef PY
}

/* The metric charts: for each chart, a series per metric on it (per K at every K of the first
 * evaluated epoch) that some evaluated epoch has. ys: room for MAX_SERIES series of n. */
static void metric_charts(FILE *f, const cli_html_report_t *r, const double *x, double *ys)
{
    const trn_epoch_t *e = r->epochs;
    const int n = r->n_epochs;
    const trn_metrics_t *ref = NULL;
    for (int i = 0; i < n && !ref; i++)
        if (e[i].evaluated)
            ref = &e[i].metrics;
    if (!ref) {
        fputs("<h2>Metrics</h2>\n<p class=\"note\">No epoch was evaluated.</p>\n", f);
        return;
    }
    const int nk = ref->nk < TRN_EVAL_MAX_K ? ref->nk : TRN_EVAL_MAX_K;
    for (int c = 0; c < NOCHART; c++) {
        series_t s[MAX_SERIES];
        int ns = 0;
        for (int mi = 0; mi < N_METRICS; mi++) {
            if (metrics[mi].chart != c)
                continue;
            for (int kj = 0; kj < (metrics[mi].per_k ? nk : 1) && ns < MAX_SERIES; kj++) {
                double *y = ys + (size_t)ns * n;
                int any = 0;
                for (int i = 0; i < n; i++) {
                    y[i] = e[i].evaluated ? metric(&e[i].metrics, mi, ref->ks[kj]) : NAN;
                    any |= !isnan(y[i]);
                }
                if (!any)
                    continue;
                metric_name(s[ns].name, sizeof s[ns].name, mi, ref->ks[kj]);
                s[ns].y = y;
                ns++;
            }
        }
        if (ns)
            chart(f, charts[c].title, charts[c].ylabel, x, n, s, ns);
    }
}

/* The final metrics: the new model's, beside the live version's when there is one. */
static void comparison(FILE *f, const cli_html_report_t *r)
{
    if (!r->has_new) {
        fputs("<h2>Final evaluation</h2>\n<p class=\"note\">The new model was not evaluated.</p>\n",
              f);
        return;
    }
    const int live = r->live_version > 0;
    if (live)
        fprintf(f,
                "<h2>New model against the live version</h2>\n<p>Both evaluated on the same "
                "holdout.</p>\n<table class=\"cmp\">\n<tr><th>metric</th><th>live v%lld</th>"
                "<th>new</th><th>difference</th></tr>\n",
                (long long)r->live_version);
    else
        fputs("<h2>Final evaluation</h2>\n<table class=\"cmp\">\n"
              "<tr><th>metric</th><th>new</th></tr>\n",
              f);
    const int nk = r->now.nk < TRN_EVAL_MAX_K ? r->now.nk : TRN_EVAL_MAX_K;
    for (int mi = 0; mi < N_METRICS; mi++)
        for (int kj = 0; kj < (metrics[mi].per_k ? nk : 1); kj++) {
            char name[32], a[32], b[32];
            const int k = r->now.ks[kj];
            const double v = metric(&r->now, mi, k), w = live ? metric(&r->live, mi, k) : NAN;
            if (isnan(v) && isnan(w))
                continue;
            metric_name(name, sizeof name, mi, k);
            fputs("<tr><td>", f);
            esc(f, name);
            if (live) {
                const double d = v - w;
                const int better = metrics[mi].lower ? d < 0 : d > 0;
                fprintf(f, "</td><td>%s", num(a, sizeof a, w));
                if (isnan(d))
                    fprintf(f, "</td><td>%s</td><td>n/a", num(b, sizeof b, v));
                else
                    fprintf(f, "</td><td>%s</td><td class=\"%s\">%+.4f", num(b, sizeof b, v),
                            d == 0   ? "same"
                            : better ? "better"
                                     : "worse",
                            d);
            } else {
                fprintf(f, "</td><td>%s", num(b, sizeof b, v));
            }
            fputs("</td></tr>\n", f);
        }
    fputs("</table>\n", f);
}

/* The gate's verdict in words, with both models' recall at the gate's cut-off. */
static void verdict(FILE *f, const cli_html_report_t *r)
{
    char a[32], b[32], c[32];
    const int k = r->gate_k;
    const double v = r->has_new ? metric(&r->now, RECALL, k) : NAN;
    const double w = r->live_version > 0 ? metric(&r->live, RECALL, k) : NAN;
    if (r->gate == 0) {
        fputs("<td>not run</td>", f);
    } else if (r->live_version <= 0) {
        fprintf(f, "<td class=\"%s\">%s (no live version to compare with)</td>",
                r->gate > 0 ? "better" : "worse", r->gate > 0 ? "passed" : "refused");
    } else {
        fprintf(f,
                "<td class=\"%s\">%s: recall@%d of the new model %s, of live v%lld %s; "
                "the gate requires at least %s (live minus the tolerance %.4f)</td>",
                r->gate > 0 ? "better" : "worse", r->gate > 0 ? "passed" : "refused", k,
                num(a, sizeof a, v), (long long)r->live_version, num(b, sizeof b, w),
                num(c, sizeof c, w - r->tolerance), r->tolerance);
    }
}

/* A header row whose value is text from outside. */
static void fact(FILE *f, const char *name, const char *value)
{
    fprintf(f, "<tr><th>%s</th><td>", name);
    esc(f, value);
    fputs("</td></tr>\n", f);
}

static const char css[] =
    "body{font:15px/1.4 system-ui,sans-serif;color:#222;background:#fff;margin:24px auto;"
    "max-width:900px;padding:0 12px}\n"
    "h1{font-size:22px}h2{font-size:17px;margin:28px 0 6px}\n"
    "table{border-collapse:collapse}th,td{padding:3px 10px;text-align:left;vertical-align:top}\n"
    "table.facts th{color:#555;font-weight:normal;white-space:nowrap}\n"
    "table.cmp td{text-align:right;font-variant-numeric:tabular-nums}"
    "table.cmp td:first-child{text-align:left}\n"
    "table.cmp tr:nth-child(even){background:#f4f4f4}\n"
    ".better{color:#006000}.worse{color:#a00000}.note{color:#555}\n"
    "svg{display:block;max-width:100%;height:auto}\n"
    "svg text{font-size:12px;fill:#222}\n"
    "svg .grid line{stroke:#e2e2e2}svg .axis{stroke:#444;fill:none}\n"
    "svg .grid line,svg .axis{shape-rendering:crispEdges}\n"
    "svg .yt{text-anchor:end}svg .xt,svg .xl,svg .yl{text-anchor:middle}\n";

/* The whole page to f. Returns 0, or ENG_ENOMEM (the charts' scratch arrays). */
static int page(FILE *f, const cli_html_report_t *r)
{
    const int n = r->n_epochs > 0 ? r->n_epochs : 0;
    /* x: the epochs; base: loss, training and evaluation time; ys: the metric charts' series */
    double *x = malloc(sizeof *x * ((size_t)n * (4 + MAX_SERIES) + 1));
    if (!x)
        return ENG_ENOMEM;
    double *base = x + n, *ys = base + 3 * n;
    const char *title = r->name ? r->name : r->kind;

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>gnnrec training report: ",
          f);
    esc(f, title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>Training report: ", css);
    esc(f, title);
    fputs("</h1>\n<table class=\"facts\">\n<tr><th>model</th><td>", f);
    esc(f, r->name ? r->name : "(not published)");
    fputs(", kind ", f);
    esc(f, r->kind);
    fputs("</td></tr>\n", f);
    fact(f, "data", r->data);
    fact(f, "settings", r->settings);
    fprintf(f,
            "<tr><th>sizes</th><td>%lld users, %lld items, %lld training and %lld test "
            "interactions</td></tr>\n",
            (long long)r->n_users, (long long)r->n_items, (long long)r->n_train,
            (long long)r->n_test);
    fprintf(f, "<tr><th>epochs</th><td>%d</td></tr>\n", n);
    fact(f, "finished", r->finished);
    if (r->published_version > 0)
        fprintf(f, "<tr><th>published</th><td>as version %lld</td></tr>\n",
                (long long)r->published_version);
    else
        fputs("<tr><th>published</th><td>no</td></tr>\n", f);
    fputs("<tr><th>quality gate</th>", f);
    verdict(f, r);
    fputs("</tr>\n</table>\n", f);

    for (int i = 0; i < n; i++) {
        const trn_epoch_t *e = &r->epochs[i];
        x[i] = e->epoch;
        base[i] = e->loss;
        base[n + i] = e->train_s;
        base[2 * n + i] = e->evaluated ? e->eval_s : NAN;
    }
    const series_t loss = {"loss", base},
                   times[2] = {{"training", base + n}, {"evaluation", base + 2 * n}};
    chart(f, "Loss per epoch", "mean batch loss", x, n, &loss, 1);
    metric_charts(f, r, x, ys);
    chart(f, "Time per epoch", "seconds", x, n, times, 2);
    comparison(f, r);
    fputs("</body>\n</html>\n", f);
    free(x);
    return 0;
}

int cli_report_html_write(const char *path, const cli_html_report_t *r, eng_error_t *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp)
        return eng_error_set(err, ENG_EIO, "%s: path too long", path);
    int fd = mkstemp(tmp), rc = ENG_EIO, e;
    if (fd < 0)
        return eng_error_set(err, rc, "%s: %s", path, strerror(errno));
    FILE *f = NULL, *done;
    /* mkstemp makes the file private; a report is for reading. */
    if (fchmod(fd, 0644) != 0 || !(f = fdopen(fd, "w")))
        goto fail;
    if ((rc = page(f, r)) != ENG_OK)
        goto fail;
    rc = ENG_EIO;
    errno = EIO; /* should stdio report a failed write without saying why */
    if (fflush(f) != 0 || ferror(f) || fsync(fd) != 0)
        goto fail;
    done = f, f = NULL, fd = -1;
    if (fclose(done) != 0 || rename(tmp, path) != 0)
        goto fail;
    return ENG_OK;
fail:
    e = errno;
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    unlink(tmp);
    return eng_error_set(err, rc, "%s: %s", path, rc == ENG_ENOMEM ? "out of memory" : strerror(e));
}
