/* Training data: interaction logs in, dense user-item lists out.
 *
 * Reads (a) CSV/TSV logs `user,item[,weight][,timestamp]` with delimiter and header detected and
 * arbitrary string ids, or (b) the LightGCN text format (`user item item ...` per line, 0-based
 * ids). Maps ids to dense indices, merges duplicate pairs, keeps the weights as ratings, and
 * either reads a test file or splits a test set off per user. Every data error names file and
 * line. */
#ifndef GNNREC_TRAINER_DATA_H
#define GNNREC_TRAINER_DATA_H

#include "engine/csr.h"
#include "engine/err.h"
#include "engine/idmap.h"
#include "storage/store.h"

#include <stdint.h>

typedef enum { TRN_FMT_AUTO, TRN_FMT_CSV, TRN_FMT_LGN } trn_format_t;
typedef enum { TRN_SPLIT_NONE, TRN_SPLIT_RANDOM, TRN_SPLIT_TIME } trn_split_t;

typedef struct {
    int32_t n_users, n_items;
    eng_idmap_t *users, *items; /* external ids <-> dense indices, owned */
    eng_csr_t *train;           /* [n_users x n_items] each user's items, sorted, owned */
    eng_csr_t *test;            /* same shape and form, or NULL when there is no test set */
    /* Ratings: train->val (test->val) holds each pair's weight when every row of the file has
     * one (of merged duplicates, the latest row's), else it is NULL; the LightGCN format and the
     * synthetic data have none. */
} trn_data_t;

typedef struct {
    const char *train_path; /* may be NULL when log is given */
    sto_db_t *log;          /* not NULL: also every event of this store's interaction log with
                             * ts >= log_since, after train_path's rows (a CSV log's) */
    double log_since;       /* unix seconds; -INFINITY for the whole log */
    const char *test_path;  /* NULL: no test file (then `split` may make one) */
    trn_format_t format;    /* TRN_FMT_AUTO: detect from the train file's first lines */
    trn_split_t split;      /* used only when test_path is NULL */
    double split_frac;      /* fraction of each user's interactions held out, in (0, 1) */
    int use_min_weight;     /* when non-zero, CSV rows with weight < min_weight are dropped */
    double min_weight;
    uint64_t seed; /* for the random split */
} trn_data_opts_t;

/* Loads the data described by o into a new *out (free with trn_data_free). On failure returns a
 * negative code, fills err with "path:line: reason" for data errors (or "path: reason" for file
 * errors and "path: no interactions" for an empty dataset) and leaves *out NULL.
 *
 * With a log, its events are rows like a CSV log's: ids as they are, weight when given (NAN
 * otherwise), and ts as the row's time, so a time split holds out each user's latest events; a
 * train file's rows without a time column come before every event. A LightGCN-format train file
 * cannot go with a log (its ids are numbers of another space): ENG_EINVAL. */
int trn_data_load(const trn_data_opts_t *o, trn_data_t **out, eng_error_t *err);

/* Appends the interaction log at path, read as trn_data_load reads a train file (format
 * detected, the same "path:line: reason" errors; no minimum weight), to db's interaction log in
 * one transaction: each row an event with its ids, weight (when the file has them) and time (its
 * timestamp, when every row has one; otherwise the time of the import). *n gets the rows appended
 * and *first_seq the first one's sequence number. On failure nothing is appended. */
int trn_data_import(const char *path, sto_db_t *db, int64_t *n, int64_t *first_seq,
                    eng_error_t *err);

typedef struct {
    int32_t n_users, n_items;
    int32_t communities; /* users and items each belong to one of these */
    int32_t per_user;    /* mean interactions per user */
    double in_community; /* probability an interaction stays in the user's community */
    double test_frac;    /* per-user random holdout */
    uint64_t seed;
} trn_synth_opts_t;

/* Default synthetic settings: a model trains on them in seconds on one core. */
trn_synth_opts_t trn_synth_defaults(void);

/* Built-in synthetic data with planted structure (user and item communities, Zipf-skewed item
 * popularity), split per user into train and test. Ids are "u<n>" and "i<n>". */
int trn_data_synthetic(const trn_synth_opts_t *o, trn_data_t **out, eng_error_t *err);

/* A new *out with d's users and items and, as its training data, d's training and test
 * interactions together (no test set): what a model is refitted on once its evaluation is done.
 * Ratings are kept when both matrices have them. Returns 0 or ENG_ENOMEM. */
int trn_data_merged(const trn_data_t *d, trn_data_t **out);

void trn_data_free(trn_data_t *d);

#endif
