/* Training progress for people: a redrawn bar with rate and ETA on a terminal, plain lines
 * otherwise (logs, CI). */
#ifndef GNNREC_CLI_PROGRESS_H
#define GNNREC_CLI_PROGRESS_H

#include <stdio.h>

typedef struct {
    FILE *out;
    int tty;        /* out is a terminal: draw the bar */
    int quiet;      /* print nothing */
    double t_start; /* of the run */
    double t_drawn; /* last redraw, to draw at most ~10 times a second */
    long done;      /* batches completed in the run */
    long total;     /* batches in the run */
} cli_progress_t;

/* Starts progress for a run of total_batches batches written to out (borrowed). */
void cli_progress_init(cli_progress_t *p, FILE *out, long total_batches, int quiet);

/* One batch done: on a terminal, redraws "epoch e/E [====>   ] 45% 120.3 batch/s ETA 0:12
 * loss 0.4123" at most ten times a second; otherwise nothing. */
void cli_progress_batch(cli_progress_t *p, int epoch, int epochs, double loss);

/* Prints a whole line (clearing the bar first on a terminal); printf-style. */
void cli_progress_line(cli_progress_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
