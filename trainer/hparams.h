/* Hyper-parameters as a table: each model declares its own, and everything else is generic.
 *
 * A model keeps its settings in a config struct of its own that begins with trn_common_hp_t (the
 * fields the shared training step reads), and describes every field in a table of trn_hparam_t
 * rows: flag name, type, where the field is, default, allowed range, help. From that table
 * `gnnrec train` builds its flags and --help, values are parsed and checked with clear errors,
 * and the report's and the store's `params` are written: no model-specific code anywhere else. */
#ifndef GNNREC_TRAINER_HPARAMS_H
#define GNNREC_TRAINER_HPARAMS_H

#include "engine/err.h"
#include "trainer/loss.h"

#include <jansson.h>
#include <stddef.h>

typedef enum { TRN_HP_INT, TRN_HP_FLOAT, TRN_HP_CHOICE, TRN_HP_LIST } trn_hp_type_t;

#define TRN_HP_LIST_MAX 8

/* The field of a LIST row: n integers, 1 <= n <= TRN_HP_LIST_MAX (per-layer settings such as
 * GraphSAGE's fan-outs). Written "25,10" on the command line, a JSON array in params. */
typedef struct {
    int n;
    int v[TRN_HP_LIST_MAX];
} trn_hp_list_t;

typedef struct {
    const char *name;    /* the flag without "--", and the key in params */
    trn_hp_type_t type;  /* INT and CHOICE fields are int, FLOAT float, LIST trn_hp_list_t */
    size_t offset;       /* of the field in the model's config struct */
    double def, lo, hi;  /* default and inclusive range; CHOICE: def is the default's index;
                            LIST: lo and hi bound every element, def is unused */
    const char *choices; /* CHOICE: the names, '|'-separated; the field holds the index */
    const char *help;
    const char *def_list; /* LIST: the default as written on the command line ("25,10") */
} trn_hparam_t;

/* The settings the shared training step reads; first member of every model's config struct. */
typedef struct {
    float lr;      /* Adam learning rate */
    float decay;   /* L2 weight */
    int batch;     /* positives per batch */
    int negatives; /* sampled negatives per positive */
    int loss;      /* trn_loss_t */
    float margin;  /* of the margin loss */
} trn_common_hp_t;

/* Table rows. T is the config struct type, F the field (common.lr works too). */
#define TRN_HP_INT(T, F, name, def, lo, hi, help)                                                  \
    {                                                                                              \
        name, TRN_HP_INT, offsetof(T, F), def, lo, hi, NULL, help, NULL                            \
    }
#define TRN_HP_FLOAT(T, F, name, def, lo, hi, help)                                                \
    {                                                                                              \
        name, TRN_HP_FLOAT, offsetof(T, F), def, lo, hi, NULL, help, NULL                          \
    }
#define TRN_HP_CHOICE(T, F, name, def, choices, help)                                              \
    {                                                                                              \
        name, TRN_HP_CHOICE, offsetof(T, F), def, 0, 0, choices, help, NULL                        \
    }
/* A list of integers, each in lo..hi; def is its text, e.g. "25,10". */
#define TRN_HP_LIST(T, F, name, def, lo, hi, help)                                                 \
    {                                                                                              \
        name, TRN_HP_LIST, offsetof(T, F), 0, lo, hi, NULL, help, def                              \
    }

/* The rows of trn_common_hp_t with a model's defaults for the first three; every table starts
 * with them. */
#define TRN_HP_COMMON(T, lr_def, decay_def, batch_def)                                             \
    TRN_HP_COMMON_LOSS(T, lr_def, decay_def, batch_def, TRN_LOSS_BPR)

/* The same with another default loss (a trn_loss_t). */
#define TRN_HP_COMMON_LOSS(T, lr_def, decay_def, batch_def, loss_def)                              \
    TRN_HP_FLOAT(T, common.lr, "lr", lr_def, 1e-9, 10, "Adam learning rate"),                      \
        TRN_HP_FLOAT(T, common.decay, "decay", decay_def, 0, 1e6, "L2 regularisation weight"),     \
        TRN_HP_INT(T, common.batch, "batch", batch_def, 1, 1 << 24, "positive pairs per batch"),   \
        TRN_HP_INT(T, common.negatives, "negatives", 1, 1, 1000,                                   \
                   "sampled negative items per positive"),                                         \
        TRN_HP_CHOICE(T, common.loss, "loss", loss_def, TRN_LOSS_CHOICES,                          \
                      "objective: BPR, pointwise BCE, hinge, or MSE on ratings"),                  \
        TRN_HP_FLOAT(T, common.margin, "margin", 1.0, 0, 1e6, "margin of the margin loss")

/* Fills cfg (the table's config struct) with every row's default. */
void trn_hp_defaults(const trn_hparam_t *t, int n, void *cfg);

/* The row called name, or NULL. */
const trn_hparam_t *trn_hp_find(const trn_hparam_t *t, int n, const char *name);

/* Parses text as row h's value into cfg. On a bad value returns ENG_EINVAL with err saying
 * "--NAME: expected ..., got 'text'"; cfg is then unchanged. */
int trn_hp_parse(const trn_hparam_t *h, void *cfg, const char *text, eng_error_t *err);

/* Row h's value in cfg as text ("64", "0.001", "bpr", "25,10") into buf. */
void trn_hp_format(const trn_hparam_t *h, const void *cfg, char *buf, size_t len);

/* Adds every row's value in cfg to the JSON object o (numbers, strings for choices,
 * arrays of integers for lists). Returns
 * 0 or ENG_ENOMEM. */
int trn_hp_to_json(const trn_hparam_t *t, int n, const void *cfg, json_t *o);

/* One help line per row: "  --NAME VALUE  help (default, range)", written to buf (NUL-terminated,
 * truncated at len). */
void trn_hp_help(const trn_hparam_t *t, int n, char *buf, size_t len);

#endif
