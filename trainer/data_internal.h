/* Internal to the data loader, shared by data.c (orchestration, split), data_reader.c (lines),
 * data_csv.c, data_lgn.c and synth.c. Not part of the trainer's API: names are trn__ (two
 * underscores) so that they cannot be mistaken for it. */
#ifndef GNNREC_TRAINER_DATA_INTERNAL_H
#define GNNREC_TRAINER_DATA_INTERNAL_H

#include "engine/csr.h"
#include "engine/err.h"
#include "engine/idmap.h"
#include "trainer/data.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest external id accepted (bytes, after trimming and unquoting). */
#define TRN_DATA_MAX_ID 256
/* Longest line: a CSV row is a handful of short fields, so anything longer is not a log; a
 * LightGCN line holds all of one user's items, so it may legitimately be long. */
#define TRN_CSV_MAX_LINE (64 * 1024)
#define TRN_LGN_MAX_LINE (16 * 1024 * 1024)

/* ---- Line reader (data_reader.c) ----
 * Reads a file in large blocks and hands out lines in place: no per-line allocation. */
typedef struct {
    FILE *f;
    const char *path; /* borrowed, for messages */
    char *buf;
    size_t cap, pos, end; /* unread bytes are buf[pos, end); one byte past end is always free */
    size_t max_line;      /* longer lines are an error */
    int eof;
    long line; /* number of the last line returned, 1-based */
} trn__reader_t;

/* Opens path for reading (r need not be initialised). A leading UTF-8 byte-order mark is
 * skipped. On failure fills err with "path: <strerror>", returns ENG_EIO (ENG_ENOMEM) and leaves r
 * closed. */
int trn__reader_open(trn__reader_t *r, const char *path, eng_error_t *err);

/* Releases r; safe on a reader whose open failed or that was zero-initialised. */
void trn__reader_close(trn__reader_t *r);

/* The next line, without its LF or CRLF, NUL-terminated in the reader's buffer (valid until the
 * next call; the caller may modify it in place). Returns 1 with *line and *len set, 0 at the end
 * of the file, or a negative code with err filled: a line longer than r->max_line, a NUL byte in
 * a line (a binary file), or a read error. A last line without a newline is fine. */
int trn__reader_next(trn__reader_t *r, char **line, size_t *len, eng_error_t *err);

/* A line of a detection sample: bytes in the peeked buffer, without the line end. */
typedef struct {
    const char *p;
    size_t len;
} trn__span_t;

/* Up to max non-blank lines from the start of the file, for format detection, without consuming
 * them (only valid before the first trn__reader_next). An unterminated last line counts only at
 * EOF, or cut back to its last blank when it is the only line (a first line longer than the
 * buffer). Returns the number of lines, or ENG_EIO with err filled. */
int trn__reader_sample(trn__reader_t *r, trn__span_t *out, int max, eng_error_t *err);

/* ---- Interaction list (data.c) ---- */
typedef struct {
    int32_t *user, *item;
    double *key;   /* time-split order: the timestamp, or the row's position when it has none */
    float *weight; /* the row's weight (a rating), NAN when it has none */
    int64_t n, cap;
    int64_t weighted; /* rows with a weight: the matrices keep ratings when it is n */
    int timed;        /* every key is a timestamp (a CSV whose rows all have one), no position */
    long *line;       /* each row's line in its file, kept only when track_lines is set */
    int track_lines;
} trn__pairs_t;

/* Appends one interaction with weight (NAN: none), read from line `line` of its file;
 * ENG_ENOMEM leaves p unchanged. */
int trn__pairs_push(trn__pairs_t *p, int32_t user, int32_t item, double key, float weight,
                    long line);
void trn__pairs_free(trn__pairs_t *p);

/* Inserts the ids prefix"0" .. prefix"<n-1>" so that index == number (LightGCN ids, synthetic
 * ids). m must be empty. Returns 0 or ENG_ENOMEM. */
int trn__idmap_numbered(eng_idmap_t *m, const char *prefix, int32_t n);

/* Splits p per user into new *train and *test matrices [n_users x n_items]: duplicates of a
 * (user, item) pair are merged first (keeping the largest key, ties the later row), then each
 * user with n >= 2 distinct items holds out min(round(frac * n), n - 1) of them, chosen at random
 * (TRN_SPLIT_RANDOM, deterministic in seed) or the latest by key (TRN_SPLIT_TIME, ties by row
 * order). TRN_SPLIT_NONE only merges: everything goes to *train, and test may be NULL. When every
 * row of p has a weight, the matrices' val holds the kept row's weight, else val is NULL. Returns
 * 0 or ENG_ENOMEM (then the outputs are NULL). */
int trn__split(const trn__pairs_t *p, int32_t n_users, int32_t n_items, trn_split_t how,
               double frac, uint64_t seed, eng_csr_t **train, eng_csr_t **test);

/* ---- Formats (data_csv.c, data_lgn.c) ---- */

/* Non-zero when the sample looks like the LightGCN format (see docs/data.md, "Detection"). */
int trn__lgn_detect(const trn__span_t *lines, int n);

/* Reads the rest of a CSV/TSV log from r, detecting its delimiter and header, interning ids into
 * users and items and appending kept rows to p (rows below o->min_weight are dropped when
 * o->use_min_weight). Returns 0 or a negative code with err filled ("path:line: reason"). */
int trn__csv_read(trn__reader_t *r, const trn_data_opts_t *o, eng_idmap_t *users,
                  eng_idmap_t *items, trn__pairs_t *p, eng_error_t *err);

/* Reads a LightGCN file from r into p (key = row position) and raises *max_user / *max_item to
 * the largest ids seen (callers start them at -1). Returns 0 or a negative code with err filled. */
int trn__lgn_read(trn__reader_t *r, trn__pairs_t *p, int32_t *max_user, int32_t *max_item,
                  eng_error_t *err);

/* The index of id p[0, len) in m, inserted when new; or a negative code with err filled
 * ("path:line: too many distinct ids", "path: out of memory"). */
int trn__intern(const trn__reader_t *r, eng_idmap_t *m, const char *p, size_t len,
                eng_error_t *err);

/* ---- Delimited tables (data_csv.c): the side-information files ----
 * A field of a row, NUL-terminated in the reader's buffer. */
typedef struct {
    const char *p;
    size_t len;
} trn__field_t;

/* Called for each data row of a table with its first columns (as many as trn__table_read was
 * asked for); returns 0, or a negative code with err filled ("path:line: reason"). */
typedef int trn__row_fn(void *ctx, const trn__reader_t *r, const trn__field_t *f, eng_error_t *err);

/* Reads the rest of r as a table of at least `cols` columns (1..8), its delimiter detected as a
 * log's (tab, comma, semicolon, bar, or runs of blanks); its first line is a header when each of
 * its first `cols` fields names its column: stems[j] lists that column's names, separated by '|'
 * ("item|artist|movie"), each matched as a log's header names are (a stem and a tail without
 * digits: "item_id", "itemId", "items"). Blank lines are skipped; a row with fewer fields, an
 * empty field among the first cols or one longer than TRN_DATA_MAX_ID, or a quoting error is an
 * error naming file and line. */
int trn__table_read(trn__reader_t *r, int cols, const char *const *stems, trn__row_fn *row,
                    void *ctx, eng_error_t *err);

#endif
