/* `gnnrec train --report-html FILE`: one self-contained HTML page of a training run (no scripts,
 * fonts or styles from elsewhere): SVG charts of the loss and of each metric per epoch, and a
 * table comparing the new version with the live one on the same holdout. */
#ifndef GNNREC_CLI_REPORT_HTML_H
#define GNNREC_CLI_REPORT_HTML_H

#include "engine/err.h"
#include "trainer/train.h"

#include <stdint.h>

typedef struct {
    const char *name;     /* model name in the store, or NULL when not publishing */
    const char *kind;     /* model kind, e.g. "lightgcn" */
    const char *data;     /* what it trained on, one line ("log of store.sqlite + base.csv") */
    const char *settings; /* the kind's settings, one line ("dim=64 layers=3 ...") */
    const char *finished; /* ISO-8601 UTC time the run ended */
    int64_t n_users, n_items, n_train, n_test; /* the data's sizes */
    const trn_epoch_t *epochs; /* [n_epochs], in order; metrics valid where evaluated */
    int n_epochs;
    /* the final evaluation of the new model (valid when has_new) */
    int has_new;
    trn_metrics_t now;
    /* the live version evaluated on the same holdout (valid when live_version > 0) */
    int64_t live_version;
    trn_metrics_t live;
    /* the quality gate: 0 not run, 1 passed, -1 refused; the cut-off K of the recall@K it
     * compared, and its tolerance on it */
    int gate, gate_k;
    double tolerance;
    int64_t published_version; /* 0: nothing was published */
} cli_html_report_t;

/* Writes r as an HTML page to path, replacing it atomically: the page is written to a temporary
 * file beside path (mode 0644), synced, then renamed over it. r and its strings are borrowed;
 * NULL strings show as "-". Prints nothing. Returns 0, or ENG_EIO (ENG_ENOMEM for the charts'
 * scratch arrays) with err naming the path and the reason; on failure path is unchanged and no
 * temporary file is left. */
int cli_report_html_write(const char *path, const cli_html_report_t *r, eng_error_t *err);

#endif
