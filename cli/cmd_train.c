/* `gnnrec train`: data in, trained model out (evaluated, reported, published to the store). */
#include "engine/clock.h"
#include "storage/store.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/report_html.h"
#include "trainer/gate.h"
#include "trainer/publish.h"
#include "trainer/side.h"
#include "trainer/train.h"
#include "trainer/warm.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_head[] =
    "usage: gnnrec train (--train FILE | --synthetic) [--model NAME] [options]\n"
    "       gnnrec train --db STORE --from-log [--train BASE] [--warm-start] [options]\n"
    "       gnnrec train --model transe --kg FILE [options]\n"
    "\n"
    "Trains a model on an interaction log, evaluates it against a popularity baseline and\n"
    "publishes it as a new version in a model store. A knowledge-graph embedding (transe)\n"
    "trains on --kg alone and is evaluated by link prediction on triples it holds out.\n"
    "\n"
    "data:\n"
    "  --train FILE        interaction log: CSV/TSV `user,item[,weight][,timestamp]` or the\n"
    "                      LightGCN format `user item item ...`\n"
    "  --test FILE         held-out interactions in the same format\n"
    "  --format F          csv or lgn (default: detected)\n"
    "  --split S           without --test: random:FRAC or time:FRAC held out per user\n"
    "  --min-weight X      drop CSV rows whose weight is below X (e.g. ratings < 4)\n"
    "  --synthetic         built-in synthetic data with planted communities\n"
    "  --from-log          the interaction log of the --db store (events posted to the server,\n"
    "                      `gnnrec import`), after --train's rows when given\n"
    "  --since TIME        only the log's events from TIME: unix seconds, 2026-11-01,\n"
    "                      2026-11-01T06:00:00Z, or an age: 90d, 12h, 30m\n"
    "side information (CSV/TSV/space-separated, detected as the log; docs/data.md):\n"
    "  --item-attrs FILE   item,attribute,value (genres, tags)\n"
    "  --user-attrs FILE   user,attribute,value (occupation, age bucket)\n"
    "  --social FILE       user,user edges (friends)\n"
    "  --kg FILE           head,relation,tail knowledge-graph triples\n"
    "  --item-entities F   item,entity: the items' entities in --kg (default: an item's id)\n"
    "run:\n"
    "  --model NAME        model kind (lightgcn); `--model NAME --help` lists its settings\n"
    "  --epochs N          epochs (20)\n"
    "  --seed N            random seed (2020)\n"
    "  --threads N         threads (default: all cores); same seed + threads = same model\n"
    "  --warm-start        start from the live version of --name in --db where its users,\n"
    "                      items and weights still apply (optimizer state fresh)\n"
    "evaluation and output:\n"
    "  --eval-every N      evaluate every N epochs (0: only at the end)\n"
    "  --topk K[,K...]     cut-offs for recall/ndcg/precision/hit (20)\n"
    "  --report FILE       write a JSON report of the run\n"
    "  --report-html FILE  write a self-contained HTML page: charts per epoch, new vs live\n"
    "  --db FILE           publish to this store (created if missing)\n"
    "  --name NAME         model name in the store (default: the model kind)\n"
    "  --gate-tolerance T  publish only if recall@20 on the holdout is at least the live\n"
    "                      version's minus T (both on the users and items both know);\n"
    "                      otherwise exit 3 and publish nothing\n"
    "  --refit-epochs N    once evaluated (and past the gate), train N more epochs on all the\n"
    "                      data, the holdout included, and publish that model: what a\n"
    "                      production retrain wants (its users' newest items known and seen)\n"
    "  --max-batches N     stop each epoch after N batches (timing runs)\n"
    "  --quiet             no progress output\n"
    "exit status: 0 trained (and published with --db), 1 failed (nothing published), 2 bad\n"
    "usage, 3 refused by the quality gate (nothing published, the live version stays)\n";

/* The side inputs a kind can need or use, by flag. */
static const struct {
    unsigned bit;
    const char *flag;
} side_flags[] = {{TRN_NEEDS_USER_ATTRS, "--user-attrs"},
                  {TRN_NEEDS_ITEM_ATTRS, "--item-attrs"},
                  {TRN_NEEDS_SOCIAL, "--social"},
                  {TRN_NEEDS_KG, "--kg"}};

/* --help: the common options, then the chosen model's settings from its table, then the kinds. */
static void print_usage(FILE *out, const trn_model_ops_t *ops)
{
    char rows[8192];
    trn_hp_help(ops->hparams, ops->n_hparams, rows, sizeof rows);
    fprintf(out, "%smodel %s: %s\n", usage_head, ops->kind, ops->about);
    const size_t n_flags = sizeof side_flags / sizeof *side_flags;
    if (ops->needs) {
        fputs("needs:", out);
        for (size_t i = 0; i < n_flags; i++)
            if (ops->needs & side_flags[i].bit)
                fprintf(out, " %s", side_flags[i].flag);
        fputs(ops->needs & TRN_NEEDS_KG_ONLY ? ", and no interaction log\n" : "\n", out);
    }
    if (ops->uses) {
        fputs("uses when given:", out);
        for (size_t i = 0; i < n_flags; i++)
            if (ops->uses & side_flags[i].bit)
                fprintf(out, " %s", side_flags[i].flag);
        fputs("\n", out);
    }
    fprintf(out, "%s\nmodels:\n", rows);
    int n;
    const trn_model_ops_t *const *all = trn_model_all(&n);
    for (int i = 0; i < n; i++)
        fprintf(out, "  %-18s  %s\n", all[i]->kind, all[i]->about);
}

typedef struct {
    trn_data_opts_t data;
    trn_side_opts_t side;
    int synthetic;
    const trn_model_ops_t *ops;
    void *cfg; /* ops->config_size bytes, owned */
    uint64_t seed;
    int threads;
    trn_train_opts_t train;
    const char *report, *report_html, *db, *name; /* name: the kind's when not given */
    int quiet;
    int from_log, warm_start, gate, refit_epochs;
    double tolerance;
} train_args_t;

static int parse_ks(const char *s, int *ks, int *nk)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *nk = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long k;
        if (*nk == TRN_EVAL_MAX_K || cli_parse_int("topk", tok, 1, 10000, &k) < 0)
            return -1;
        ks[(*nk)++] = (int)k;
    }
    return *nk ? 0 : -1;
}

static int parse_split(const char *s, trn_data_opts_t *d)
{
    const char *colon = strchr(s, ':');
    double frac = 0.2;
    if (colon && cli_parse_double("split", colon + 1, 1e-6, 0.999999, &frac) < 0)
        return -1;
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n == 6 && strncmp(s, "random", 6) == 0)
        d->split = TRN_SPLIT_RANDOM;
    else if (n == 4 && strncmp(s, "time", 4) == 0)
        d->split = TRN_SPLIT_TIME;
    else {
        fprintf(stderr, "gnnrec: --split: expected random:FRAC or time:FRAC, got '%s'\n", s);
        return -1;
    }
    d->split_frac = frac;
    return 0;
}

/* The kind named by the last --model NAME or --model=NAME in argv (lightgcn when none), or NULL
 * after printing the error. Read before parsing: the kind decides which flags exist. */
static const trn_model_ops_t *find_kind(int argc, char **argv)
{
    const char *kind = "lightgcn";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            kind = argv[++i];
        else if (strncmp(argv[i], "--model=", 8) == 0)
            kind = argv[i] + 8;
    }
    const trn_model_ops_t *ops = trn_model_find(kind);
    if (!ops)
        fprintf(stderr, "gnnrec: --model: unknown model '%s' (known: %s)\n", kind,
                trn_model_kinds());
    return ops;
}

enum {
    O_TRAIN = 256,
    O_TEST,
    O_FORMAT,
    O_SPLIT,
    O_MINW,
    O_SYNTH,
    O_MODEL,
    O_EPOCHS,
    O_SEED,
    O_THREADS,
    O_EVAL,
    O_TOPK,
    O_REPORT,
    O_DB,
    O_NAME,
    O_MAXB,
    O_QUIET,
    O_UATTRS,
    O_IATTRS,
    O_SOCIAL,
    O_KG,
    O_ENTITIES,
    O_HELP,
    O_FROM_LOG,
    O_SINCE,
    O_WARM,
    O_GATE,
    O_HTML,
    O_REFIT,
    O_HPARAM /* + row index of the model's table */
};

static const struct option run_opts[] = {
    {"train", 1, 0, O_TRAIN},
    {"test", 1, 0, O_TEST},
    {"format", 1, 0, O_FORMAT},
    {"split", 1, 0, O_SPLIT},
    {"min-weight", 1, 0, O_MINW},
    {"synthetic", 0, 0, O_SYNTH},
    {"model", 1, 0, O_MODEL},
    {"epochs", 1, 0, O_EPOCHS},
    {"seed", 1, 0, O_SEED},
    {"threads", 1, 0, O_THREADS},
    {"eval-every", 1, 0, O_EVAL},
    {"topk", 1, 0, O_TOPK},
    {"report", 1, 0, O_REPORT},
    {"db", 1, 0, O_DB},
    {"name", 1, 0, O_NAME},
    {"max-batches", 1, 0, O_MAXB},
    {"quiet", 0, 0, O_QUIET},
    {"help", 0, 0, O_HELP},
    {"user-attrs", 1, 0, O_UATTRS},
    {"item-attrs", 1, 0, O_IATTRS},
    {"social", 1, 0, O_SOCIAL},
    {"kg", 1, 0, O_KG},
    {"item-entities", 1, 0, O_ENTITIES},
    {"from-log", 0, 0, O_FROM_LOG},
    {"since", 1, 0, O_SINCE},
    {"warm-start", 0, 0, O_WARM},
    {"gate-tolerance", 1, 0, O_GATE},
    {"report-html", 1, 0, O_HTML},
    {"refit-epochs", 1, 0, O_REFIT},
};

#define N_RUN_OPTS (sizeof run_opts / sizeof run_opts[0])
#define MAX_HPARAMS 64

/* Returns 0, or an exit code (2 usage, or 0 for --help) with *done set. */
static int parse_args(int argc, char **argv, train_args_t *a, int *done)
{
    *done = 1;
    const trn_model_ops_t *ops = a->ops;
    struct option opts[N_RUN_OPTS + MAX_HPARAMS + 1];
    _Static_assert(N_RUN_OPTS < MAX_HPARAMS, "room for the options");
    if (ops->n_hparams > MAX_HPARAMS) {
        fprintf(stderr, "gnnrec: model %s has too many settings\n", ops->kind);
        return 2;
    }
    memcpy(opts, run_opts, sizeof run_opts);
    for (int i = 0; i < ops->n_hparams; i++)
        opts[N_RUN_OPTS + i] = (struct option){ops->hparams[i].name, 1, 0, O_HPARAM + i};
    opts[N_RUN_OPTS + ops->n_hparams] = (struct option){0, 0, 0, 0};

    long v;
    double x;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_TRAIN:
            a->data.train_path = optarg;
            break;
        case O_TEST:
            a->data.test_path = optarg;
            break;
        case O_FORMAT:
            if (strcmp(optarg, "csv") == 0)
                a->data.format = TRN_FMT_CSV;
            else if (strcmp(optarg, "lgn") == 0)
                a->data.format = TRN_FMT_LGN;
            else {
                fprintf(stderr, "gnnrec: --format: expected csv or lgn, got '%s'\n", optarg);
                return 2;
            }
            break;
        case O_SPLIT:
            if (parse_split(optarg, &a->data) < 0)
                return 2;
            break;
        case O_MINW:
            if (cli_parse_double("min-weight", optarg, -1e300, 1e300, &x) < 0)
                return 2;
            a->data.use_min_weight = 1;
            a->data.min_weight = x;
            break;
        case O_SYNTH:
            a->synthetic = 1;
            break;
        case O_UATTRS:
            a->side.user_attrs = optarg;
            break;
        case O_IATTRS:
            a->side.item_attrs = optarg;
            break;
        case O_SOCIAL:
            a->side.social = optarg;
            break;
        case O_KG:
            a->side.kg = optarg;
            break;
        case O_ENTITIES:
            a->side.item_entities = optarg;
            break;
        case O_MODEL: /* chosen by find_kind before parsing */
            break;
        case O_FROM_LOG:
            a->from_log = 1;
            break;
        case O_SINCE:
            if (cli_parse_time("since", optarg, &a->data.log_since) < 0)
                return 2;
            break;
        case O_WARM:
            a->warm_start = 1;
            break;
        case O_GATE:
            if (cli_parse_double("gate-tolerance", optarg, 0, 1, &a->tolerance) < 0)
                return 2;
            a->gate = 1;
            break;
        case O_HTML:
            a->report_html = optarg;
            break;
        case O_REFIT:
            if (cli_parse_int("refit-epochs", optarg, 0, 1000000, &v) < 0)
                return 2;
            a->refit_epochs = (int)v;
            break;
        case O_EPOCHS:
            if (cli_parse_int("epochs", optarg, 0, 1000000, &v) < 0)
                return 2;
            a->train.epochs = (int)v;
            break;
        case O_SEED:
            if (cli_parse_int("seed", optarg, 0, __LONG_MAX__, &v) < 0)
                return 2;
            a->seed = (uint64_t)v;
            a->data.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (cli_parse_int("threads", optarg, 1, 1024, &v) < 0)
                return 2;
            a->threads = (int)v;
            break;
        case O_EVAL:
            if (cli_parse_int("eval-every", optarg, 0, 1000000, &v) < 0)
                return 2;
            a->train.eval_every = (int)v;
            break;
        case O_TOPK:
            if (parse_ks(optarg, a->train.ks, &a->train.nk) < 0) {
                fprintf(stderr, "gnnrec: --topk: expected up to %d cut-offs like 10,20\n",
                        TRN_EVAL_MAX_K);
                return 2;
            }
            break;
        case O_REPORT:
            a->report = optarg;
            break;
        case O_DB:
            a->db = optarg;
            break;
        case O_NAME:
            a->name = optarg;
            break;
        case O_MAXB:
            if (cli_parse_int("max-batches", optarg, 0, 1 << 30, &v) < 0)
                return 2;
            a->train.max_batches = (int)v;
            break;
        case O_QUIET:
            a->quiet = 1;
            break;
        case O_HELP:
        case 'h':
            print_usage(stdout, ops);
            return 0;
        case '?':
        case ':':
            if (optopt)
                fprintf(stderr, "gnnrec train: option '%s' needs a value\n", argv[optind - 1]);
            else
                fprintf(stderr,
                        "gnnrec train: unknown option '%s' for model %s "
                        "(`gnnrec train --model %s --help` lists them)\n",
                        argv[optind - 1], ops->kind, ops->kind);
            return 2;
        default: {
            eng_error_t err = {0};
            if (trn_hp_parse(&ops->hparams[c - O_HPARAM], a->cfg, optarg, &err) < 0) {
                fprintf(stderr, "gnnrec: %s\n", err.msg);
                return 2;
            }
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gnnrec train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (ops->needs & TRN_NEEDS_KG_ONLY) {
        const trn_side_opts_t *o = &a->side;
        if (!o->kg || a->synthetic || a->data.train_path || a->data.test_path ||
            a->data.split != TRN_SPLIT_NONE || o->user_attrs || o->item_attrs || o->social ||
            o->item_entities) {
            fprintf(stderr,
                    "gnnrec train: model %s trains on a knowledge graph alone: give --kg FILE "
                    "and no interaction log or other side file\n",
                    ops->kind);
            return 2;
        }
    } else if (a->from_log ? a->synthetic : !a->synthetic == !a->data.train_path) {
        fputs("gnnrec train: give exactly one of --train FILE, --synthetic and --from-log (with "
              "--train as its base)\n",
              stderr);
        return 2;
    }
    if (!a->name)
        a->name = ops->kind;
    if ((a->from_log || a->warm_start || a->gate) && !a->db) {
        fputs("gnnrec train: --from-log, --warm-start and --gate-tolerance need the store: --db "
              "FILE\n",
              stderr);
        return 2;
    }
    if (a->data.log_since > -INFINITY && !a->from_log) {
        fputs("gnnrec train: --since picks the log's events: give --from-log\n", stderr);
        return 2;
    }
    if (a->data.test_path && a->data.split != TRN_SPLIT_NONE) {
        fputs("gnnrec train: --split makes a test set; it cannot go with --test\n", stderr);
        return 2;
    }
    if (a->side.item_entities && !a->side.kg) {
        fputs("gnnrec train: --item-entities maps items into --kg's graph; give --kg too\n",
              stderr);
        return 2;
    }
    *done = 0;
    return 0;
}

typedef struct {
    cli_progress_t progress;
    int epochs;
    const int *ks;
    int nk;
    json_t *epochs_json;
} run_state_t;

static void on_batch(void *ud, int epoch, int batch, int n_batches, double loss)
{
    (void)batch;
    (void)n_batches;
    run_state_t *r = ud;
    cli_progress_batch(&r->progress, epoch, r->epochs, loss);
}

static json_t *metrics_json(const trn_metrics_t *m)
{
    json_t *o = json_object();
    char key[32];
    for (int k = 0; k < m->nk; k++) {
        snprintf(key, sizeof key, "recall@%d", m->ks[k]);
        json_object_set_new(o, key, json_real(m->recall[k]));
        snprintf(key, sizeof key, "ndcg@%d", m->ks[k]);
        json_object_set_new(o, key, json_real(m->ndcg[k]));
        snprintf(key, sizeof key, "precision@%d", m->ks[k]);
        json_object_set_new(o, key, json_real(m->precision[k]));
        snprintf(key, sizeof key, "hit@%d", m->ks[k]);
        json_object_set_new(o, key, json_real(m->hit[k]));
    }
    json_object_set_new(o, "users", json_integer(m->n_users));
    if (m->nk) {
        json_t *cold = json_pack("{sI}", "users", (json_int_t)m->cold_users);
        for (int k = 0; k < m->nk; k++) {
            snprintf(key, sizeof key, "recall@%d", m->ks[k]);
            json_object_set_new(cold, key, json_real(m->cold_recall[k]));
            snprintf(key, sizeof key, "ndcg@%d", m->ks[k]);
            json_object_set_new(cold, key, json_real(m->cold_ndcg[k]));
        }
        json_object_set_new(o, "cold", cold);
    }
    if (m->has_auc) {
        json_object_set_new(o, "auc", json_real(m->auc));
        json_object_set_new(o, "f1", json_real(m->f1));
    }
    if (m->has_link) {
        json_object_set_new(o, "mrr", json_real(m->mrr));
        static const char *const hits[3] = {"hits@1", "hits@3", "hits@10"};
        for (int c = 0; c < 3; c++)
            json_object_set_new(o, hits[c], json_real(m->hits[c]));
        json_object_set_new(o, "link_queries", json_integer(m->link_queries));
    }
    if (m->has_rmse) {
        json_object_set_new(o, "rmse", json_real(m->rmse));
        json_object_set_new(o, "mae", json_real(m->mae));
    }
    return o;
}

static void on_epoch(void *ud, const trn_epoch_t *e)
{
    run_state_t *r = ud;
    json_t *o = json_pack("{si,sf,si,sf}", "epoch", e->epoch, "loss", e->loss, "batches",
                          e->batches, "train_s", e->train_s);
    char line[512];
    int n = snprintf(line, sizeof line, "epoch %d/%d loss %.5f train %.2fs", e->epoch, r->epochs,
                     e->loss, e->train_s);
    if (e->evaluated) {
        json_t *mj = metrics_json(&e->metrics);
        json_object_update(o, mj);
        json_decref(mj);
        json_object_del(o, "users");
        json_object_del(o, "cold");
        json_object_set_new(o, "eval_s", json_real(e->eval_s));
        for (int k = 0; k < e->metrics.nk && n < (int)sizeof line; k++)
            n += snprintf(line + n, sizeof line - n, " recall@%d %.4f ndcg@%d %.4f",
                          e->metrics.ks[k], e->metrics.recall[k], e->metrics.ks[k],
                          e->metrics.ndcg[k]);
        if (e->metrics.has_auc && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - n, " auc %.4f f1 %.4f", e->metrics.auc,
                          e->metrics.f1);
        if (e->metrics.has_link && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - n,
                          " mrr %.4f hits@1 %.4f hits@3 %.4f hits@10 %.4f", e->metrics.mrr,
                          e->metrics.hits[0], e->metrics.hits[1], e->metrics.hits[2]);
        if (e->metrics.has_rmse && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - n, " rmse %.4f", e->metrics.rmse);
    }
    json_array_append_new(r->epochs_json, o);
    cli_progress_line(&r->progress, "%s", line);
}

/* The run's settings: the kind, every row of its table, the run options, the data. */
/* A progress line per side file: what it holds, and its rows skipped for naming a user or item
 * the log lacks. */
static void report_side(cli_progress_t *p, const trn_side_opts_t *o, const trn_side_t *s)
{
    if (o->user_attrs)
        cli_progress_line(p, "%s: %lld user values, %d distinct, %lld rows of unknown users",
                          o->user_attrs, (long long)s->user_attrs->nnz, s->user_attrs->cols,
                          (long long)s->skipped[TRN_SIDE_USER_ATTRS]);
    if (o->item_attrs)
        cli_progress_line(p, "%s: %lld item values, %d distinct, %lld rows of unknown items",
                          o->item_attrs, (long long)s->item_attrs->nnz, s->item_attrs->cols,
                          (long long)s->skipped[TRN_SIDE_ITEM_ATTRS]);
    if (o->social)
        cli_progress_line(p, "%s: %lld user-user edges (both ways), %lld rows of unknown users",
                          o->social, (long long)s->social->nnz / 2,
                          (long long)s->skipped[TRN_SIDE_SOCIAL]);
    if (o->kg)
        cli_progress_line(p, "%s: %lld triples, %d entities, %d relations", o->kg,
                          (long long)s->kg.n, s->kg.n_entities, s->kg.n_relations);
    if (o->item_entities)
        cli_progress_line(p, "%s: %lld rows of unknown items", o->item_entities,
                          (long long)s->skipped[TRN_SIDE_ITEM_ENTITIES]);
}

static json_t *params_json(const train_args_t *a, const trn_data_t *d)
{
    json_t *p = json_pack("{ss}", "model", a->ops->kind);
    if (!p || trn_hp_to_json(a->ops->hparams, a->ops->n_hparams, a->cfg, p) < 0) {
        json_decref(p);
        return NULL;
    }
    json_object_set_new(p, "epochs", json_integer(a->train.epochs));
    json_object_set_new(p, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(p, "threads", json_integer(a->threads));
    json_object_set_new(p, "data",
                        json_string(a->synthetic         ? "synthetic"
                                    : a->data.train_path ? a->data.train_path
                                                         : a->side.kg));
    json_object_set_new(p, "users", json_integer(d->n_users));
    json_object_set_new(p, "items", json_integer(d->n_items));
    json_object_set_new(p, "train_interactions", json_integer(d->train->nnz));
    json_object_set_new(p, "test_interactions", json_integer(d->test ? d->test->nnz : 0));
    return p;
}

/* "dim=64 layers=3 ..." for the banner. */
static void settings_line(const train_args_t *a, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < a->ops->n_hparams && off < len; i++) {
        char v[64];
        trn_hp_format(&a->ops->hparams[i], a->cfg, v, sizeof v);
        int w = snprintf(buf + off, len - off, "%s%s=%s", i ? " " : "", a->ops->hparams[i].name, v);
        off += w > 0 ? (size_t)w : 0;
    }
}

static void print_comparison(const trn_metrics_t *model, const trn_metrics_t *pop, const char *kind)
{
    printf("\n%-14s %12s %12s\n", "metric", kind, "popularity");
    for (int k = 0; k < model->nk; k++) {
        const char *names[4] = {"recall", "ndcg", "precision", "hit"};
        const double *mv[4] = {model->recall, model->ndcg, model->precision, model->hit};
        const double *pv[4] = {pop->recall, pop->ndcg, pop->precision, pop->hit};
        for (int j = 0; j < 4; j++) {
            char label[32];
            snprintf(label, sizeof label, "%s@%d", names[j], model->ks[k]);
            printf("%-14s %12.4f %12.4f\n", label, mv[j][k], pv[j][k]);
        }
    }
    if (model->has_auc) {
        printf("%-14s %12.4f %12s\n", "auc", model->auc, "-");
        printf("%-14s %12.4f %12s\n", "f1", model->f1, "-");
    }
    if (model->has_rmse) {
        printf("%-14s %12.4f %12s\n", "rmse", model->rmse, "-");
        printf("%-14s %12.4f %12s\n", "mae", model->mae, "-");
    }
    for (int k = 0; k < model->nk; k++) {
        char label[32];
        snprintf(label, sizeof label, "cold recall@%d", model->ks[k]);
        printf("%-14s %12.4f %12.4f\n", label, model->cold_recall[k], pop->cold_recall[k]);
    }
    printf("(%lld test users, %lld cold: at most %d training items)\n", (long long)model->n_users,
           (long long)model->cold_users, TRN_EVAL_COLD);
}

/* Link prediction of a knowledge-graph embedding (filtered, both directions). */
static void print_link(const trn_metrics_t *m)
{
    printf("\nlink prediction, filtered (%lld queries)\n", (long long)m->link_queries);
    printf("%-14s %12.4f\n%-14s %12.4f\n%-14s %12.4f\n%-14s %12.4f\n", "mrr", m->mrr, "hits@1",
           m->hits[0], "hits@3", m->hits[1], "hits@10", m->hits[2]);
}

static int publish(const train_args_t *a, sto_db_t *db, trn_model_t *m, const trn_data_t *d,
                   json_t *params, json_t *metrics, int64_t *version, eng_error_t *err)
{
    char *pj = json_dumps(params, JSON_COMPACT), *mj = json_dumps(metrics, JSON_COMPACT);
    int rc = ENG_ENOMEM;
    if (!pj || !mj)
        eng_error_set(err, rc, "out of memory preparing the model for the store");
    else
        rc = trn_publish(
            db, m, d, &(trn_publish_opts_t){.name = a->name, .params_json = pj, .metrics_json = mj},
            version, err);
    free(pj);
    free(mj);
    return rc;
}

/* The live version of the run's name with what a warm start reads (its parameter tensors) into
 * *out, or NULL when there is none yet. */
static int load_live(const train_args_t *a, sto_db_t *db, const trn_model_t *m, sto_model_t **out,
                     eng_error_t *err)
{
    *out = NULL;
    int64_t v;
    int rc = sto_live(db, a->name, &v, err);
    if (rc < 0 || v == 0)
        return rc;
    static const char *const none[] = {NULL};
    char **names = a->warm_start ? trn_warm_names(m) : NULL;
    if (a->warm_start && !names)
        return eng_error_set(err, ENG_ENOMEM, "out of memory");
    rc = sto_load(db, a->name, v, names ? (const char *const *)names : none, out, err);
    trn_warm_names_free(names);
    return rc;
}

/* The refit: a new model of the same kind and settings over all of d's interactions (*all),
 * starting from m's weights (the same users and items, so the same parameter layout), trained
 * a->refit_epochs more epochs without evaluation into *fitted. */
static int refit(const train_args_t *a, cli_progress_t *p, const trn_side_t *side,
                 const trn_data_t *d, const trn_model_t *m, trn_data_t **all, trn_model_t **fitted,
                 eng_error_t *err)
{
    if (trn_data_merged(d, all) < 0)
        return eng_error_set(err, ENG_ENOMEM, "out of memory");
    trn_inputs_t in = {.train = (*all)->train};
    trn_side_inputs(side, &in);
    if (!(*fitted = trn_model_new(a->ops, a->cfg, &in, a->seed, a->threads, err)))
        return err->code;
    if ((*fitted)->n_params == m->n_params)
        memcpy((*fitted)->params, m->params, m->n_params * sizeof *m->params);
    else
        cli_progress_line(p, "refit: the model's size changed with the holdout: a cold start");
    cli_progress_line(p, "refit: %d epochs on all %lld interactions, the holdout included",
                      a->refit_epochs, (long long)(*all)->train->nnz);
    trn_train_opts_t o = a->train;
    o.epochs = a->refit_epochs;
    o.eval_every = 0;
    o.on_batch = NULL;
    o.on_epoch = NULL;
    trn_epoch_t *e = calloc((size_t)o.epochs, sizeof *e);
    if (!e)
        return eng_error_set(err, ENG_ENOMEM, "out of memory");
    int rc = trn_train_run(*fitted, *all, &o, e, err);
    free(e);
    return rc;
}

/* The gate's cut-off: 20 when among the run's, else its first. */
static int gate_k(const trn_metrics_t *m)
{
    for (int k = 0; k < m->nk; k++)
        if (m->ks[k] == 20)
            return k;
    return 0;
}

static int write_report(const char *path, json_t *report)
{
    if (json_dump_file(report, path, JSON_INDENT(1) | JSON_REAL_PRECISION(8)) != 0) {
        fprintf(stderr, "gnnrec: %s: cannot write the report\n", path);
        return -1;
    }
    return 0;
}

int cli_cmd_train(int argc, char **argv)
{
    train_args_t a = {.seed = 2020, .train = {.epochs = 20, .nk = 1, .ks = {20}}};
    a.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (a.threads < 1)
        a.threads = 1;
    a.data.seed = a.seed;
    a.data.log_since = -INFINITY;
    if (!(a.ops = find_kind(argc, argv)))
        return 2;
    if (!(a.cfg = malloc(a.ops->config_size))) {
        fputs("gnnrec: out of memory\n", stderr);
        return 1;
    }
    trn_hp_defaults(a.ops->hparams, a.ops->n_hparams, a.cfg);
    int done, code = parse_args(argc, argv, &a, &done);
    if (done) {
        free(a.cfg);
        return code;
    }
    const trn_common_hp_t *hp = a.cfg;

    eng_error_t err = {0};
    trn_data_t *d = NULL;
    trn_side_t *side = NULL;
    trn_model_t *m = NULL;
    trn_epoch_t *epochs = NULL;
    json_t *report = NULL;
    run_state_t rs = {0};
    sto_db_t *db = NULL;
    sto_model_t *live = NULL;
    trn_data_t *all = NULL;     /* the refit's data: train and holdout together */
    trn_model_t *fitted = NULL; /* the refitted model, published instead of m */
    code = 1;

    double t0 = eng_now();
    int rc;
    /* The store first when the run reads from it (the log, the live version): nothing trains for
     * a store that fails. Otherwise it is opened, and created, only to publish: a failed run
     * leaves no empty store behind. A log must exist to be read. */
    if (a.db && (a.from_log || a.warm_start || a.gate) &&
        (rc = sto_open(a.db, a.from_log ? STO_READWRITE : STO_READWRITE | STO_CREATE, &db, &err)) <
            0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    if (a.from_log)
        a.data.log = db;
    if (a.ops->needs & TRN_NEEDS_KG_ONLY) {
        rc = trn_side_load_kg_only(a.side.kg, &side, &d, &err);
    } else if (a.synthetic) {
        trn_synth_opts_t so = trn_synth_defaults();
        so.seed = a.seed;
        rc = trn_data_synthetic(&so, &d, &err);
    } else {
        rc = trn_data_load(&a.data, &d, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    /* Say which file lacks ratings, while the names are at hand. */
    if (hp->loss == TRN_LOSS_MSE && (!d->train->val || (d->test && !d->test->val))) {
        fprintf(stderr,
                "gnnrec: %s: --loss mse needs ratings: a weight column on every row (the "
                "LightGCN format and --synthetic have none)\n",
                a.synthetic      ? "synthetic data"
                : !d->train->val ? a.data.train_path
                                 : a.data.test_path);
        goto done;
    }
    cli_progress_init(&rs.progress, stderr, 0, a.quiet);
    cli_progress_line(&rs.progress, "data: %d users, %d items, %lld train, %lld test (%.2fs)",
                      d->n_users, d->n_items, (long long)d->train->nnz,
                      (long long)(d->test ? d->test->nnz : 0), eng_now() - t0);

    if (!side && (rc = trn_side_load(&a.side, d, &side, &err)) < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    report_side(&rs.progress, &a.side, side);
    /* a side file the kind neither needs nor uses: say so rather than let it seem to count */
    const char *given[] = {a.side.user_attrs, a.side.item_attrs, a.side.social, a.side.kg};
    _Static_assert(sizeof given / sizeof *given == sizeof side_flags / sizeof *side_flags,
                   "one per side flag");
    for (size_t i = 0; i < sizeof given / sizeof *given; i++)
        if (given[i] && !((a.ops->needs | a.ops->uses) & side_flags[i].bit))
            cli_progress_line(&rs.progress,
                              "note: model %s does not use %s (read and checked only)", a.ops->kind,
                              side_flags[i].flag);
    trn_inputs_t inputs = {.train = d->train};
    trn_side_inputs(side, &inputs);
    m = trn_model_new(a.ops, a.cfg, &inputs, a.seed, a.threads, &err);
    if (!m) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, err.code));
        goto done;
    }
    if ((a.warm_start || a.gate) && (rc = load_live(&a, db, m, &live, &err)) < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    if (a.warm_start && !live) {
        cli_progress_line(&rs.progress, "warm start: %s has no live version yet: a cold start",
                          a.name);
    } else if (a.warm_start) {
        trn_warm_stats_t ws;
        if ((rc = trn_warm_start(m, d, live, &ws, &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
        cli_progress_line(&rs.progress,
                          "warm start from v%lld: %lld of %d users and %lld of %d items known, %d "
                          "weights copied, %d left fresh",
                          (long long)live->info.version, (long long)ws.users, d->n_users,
                          (long long)ws.items, d->n_items, ws.views, ws.skipped);
    }
    epochs = calloc((size_t)a.train.epochs + 1, sizeof *epochs);
    report = json_object();
    rs.epochs_json = json_array();
    json_t *params = params_json(&a, d);
    json_object_set_new(report, "model", json_string(a.ops->kind));
    json_object_set_new(report, "parameters", json_integer((json_int_t)m->n_params));
    json_object_set_new(report, "params", params);
    json_object_set_new(report, "epochs", rs.epochs_json);
    if (!epochs || !report || !rs.epochs_json || !params) {
        fputs("gnnrec: out of memory\n", stderr);
        goto done;
    }

    rs.epochs = a.train.epochs;
    long n_batches = (long)((trn_train_epoch_examples(m, d) + hp->batch - 1) / hp->batch);
    if (a.train.max_batches > 0 && a.train.max_batches < n_batches)
        n_batches = a.train.max_batches;
    rs.progress.total = n_batches * a.train.epochs;
    a.train.on_batch = on_batch;
    a.train.on_epoch = on_epoch;
    a.train.ud = &rs;
    char settings[1024];
    settings_line(&a, settings, sizeof settings);
    cli_progress_line(&rs.progress, "training %s (%s): %d epochs of %ld batches, threads: %d",
                      a.ops->kind, settings, a.train.epochs, n_batches, a.threads);
    if ((rc = trn_train_run(m, d, &a.train, epochs, &err)) < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }

    json_t *metrics = json_object();
    cli_html_report_t html = {.kind = a.ops->kind,
                              .name = a.db ? a.name : NULL,
                              .n_users = d->n_users,
                              .n_items = d->n_items,
                              .n_train = d->train->nnz,
                              .n_test = d->test ? d->test->nnz : 0,
                              .epochs = epochs,
                              .n_epochs = a.train.epochs,
                              .settings = settings};
    trn_metrics_t final, pop;
    if (d->test || a.ops->evaluate) {
        const trn_epoch_t *last = a.train.epochs ? &epochs[a.train.epochs - 1] : NULL;
        if (last && last->evaluated)
            final = last->metrics;
        else if ((rc = trn_train_evaluate(m, d, a.train.ks, a.train.nk, &final)) < 0) {
            fprintf(stderr, "gnnrec: evaluation failed: %s\n", eng_strerror(rc));
            json_decref(metrics);
            goto done;
        }
        json_decref(metrics);
        metrics = metrics_json(&final);
        html.has_new = 1;
        html.now = final;
        if (a.ops->evaluate) {
            if (!a.quiet)
                print_link(&final);
        } else if ((rc = trn_eval_popularity(d->train, d->test, a.train.ks, a.train.nk, &pop)) <
                   0) {
            fprintf(stderr, "gnnrec: evaluation failed: %s\n", eng_strerror(rc));
            json_decref(metrics);
            goto done;
        } else {
            json_object_set_new(metrics, "popularity", metrics_json(&pop));
            if (!a.quiet)
                print_comparison(&final, &pop, a.ops->kind);
        }
    }
    json_object_set_new(report, "final", metrics);

    int refused = 0;
    if (a.gate && !live) {
        cli_progress_line(&rs.progress, "gate: no live version to compare with: passed");
        html.gate = 1;
    } else if (a.gate) {
        trn_metrics_t now, then;
        if ((rc = trn_gate_evaluate(m, d, live, a.train.ks, a.train.nk, &now, &then, &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
        const int k = gate_k(&now);
        refused = now.n_users > 0 && now.recall[k] < then.recall[k] - a.tolerance;
        html.gate = refused ? -1 : 1;
        html.tolerance = a.tolerance;
        html.gate_k = now.ks[k];
        html.live_version = live->info.version;
        html.live = then;
        html.now = now;
        html.has_new = 1;
        json_object_set_new(report, "gate",
                            json_pack("{sb,si,sf,sI,sf,sf,sI}", "passed", !refused, "k", now.ks[k],
                                      "tolerance", a.tolerance, "live_version",
                                      (json_int_t)live->info.version, "live_recall", then.recall[k],
                                      "new_recall", now.recall[k], "users",
                                      (json_int_t)now.n_users));
        char line[256];
        snprintf(line, sizeof line,
                 "gate: recall@%d on the fresh holdout of %lld users both versions know: new %.4f, "
                 "live v%lld %.4f, tolerance %g: %s",
                 now.ks[k], (long long)now.n_users, now.recall[k], (long long)live->info.version,
                 then.recall[k], a.tolerance, refused ? "refused, nothing published" : "passed");
        /* an outcome, not progress: printed under --quiet too, for the retrain job's log */
        fprintf(stderr, "gnnrec train: %s\n", line);
    }

    if (!refused && a.refit_epochs > 0 && d->test) {
        if ((rc = refit(&a, &rs.progress, side, d, m, &all, &fitted, &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
        json_object_set_new(report, "refit",
                            json_pack("{si,sI}", "epochs", a.refit_epochs, "interactions",
                                      (json_int_t)all->train->nnz));
    }
    if (a.db && !refused) {
        int64_t version = 0;
        if ((!db && (rc = sto_open(a.db, STO_READWRITE | STO_CREATE, &db, &err)) < 0) ||
            (rc = publish(&a, db, fitted ? fitted : m, fitted ? all : d, params, metrics, &version,
                          &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
        json_object_set_new(
            report, "published",
            json_pack("{ss,ss,sI}", "db", a.db, "name", a.name, "version", (json_int_t)version));
        printf("published %s version %lld to %s\n", a.name, (long long)version, a.db);
        html.published_version = version;
    }
    if (a.report && write_report(a.report, report) < 0)
        goto done;
    if (a.report_html) {
        char finished[ENG_UTC_LEN], data[1024];
        eng_utc_format(eng_unix_now(), finished);
        snprintf(data, sizeof data, "%s%s%s%s",
                 a.synthetic         ? "synthetic"
                 : a.data.train_path ? a.data.train_path
                                     : "",
                 a.from_log && a.data.train_path ? " + " : "", a.from_log ? "the log of " : "",
                 a.from_log ? a.db : "");
        html.finished = finished;
        html.data = data;
        if ((rc = cli_report_html_write(a.report_html, &html, &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
    }
    code = refused ? 3 : 0;
done:
    trn_model_free(fitted);
    trn_data_free(all);
    sto_model_free(live);
    sto_close(db);
    json_decref(report);
    free(epochs);
    trn_model_free(m);
    trn_side_free(side);
    trn_data_free(d);
    free(a.cfg);
    return code;
}
