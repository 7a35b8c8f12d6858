/* `gnnrec train`: data in, trained model out (evaluated, reported, published to the store). */
#include "engine/clock.h"
#include "storage/store.h"
#include "cli/cli.h"
#include "trainer/progress.h"
#include "trainer/train.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: gnnrec train (--train FILE | --synthetic) [options]\n"
    "\n"
    "Trains a model on an interaction log, evaluates it against a popularity baseline and\n"
    "publishes it as a new version in a model store.\n"
    "\n"
    "data:\n"
    "  --train FILE        interaction log: CSV/TSV `user,item[,weight][,timestamp]` or the\n"
    "                      LightGCN format `user item item ...`\n"
    "  --test FILE         held-out interactions in the same format\n"
    "  --format F          csv or lgn (default: detected)\n"
    "  --split S           without --test: random:FRAC or time:FRAC held out per user\n"
    "  --min-weight X      drop CSV rows whose weight is below X (e.g. ratings < 4)\n"
    "  --synthetic         built-in synthetic data with planted communities\n"
    "model:\n"
    "  --model NAME        model kind (default lightgcn)\n"
    "  --dim N             embedding size (64)\n"
    "  --layers N          propagation layers (3)\n"
    "  --loss L            bpr, bce or margin (bpr)\n"
    "  --margin X          margin of the margin loss (1.0)\n"
    "  --lr X              Adam learning rate (1e-3)\n"
    "  --decay X           L2 weight on the batch's embeddings (1e-4)\n"
    "  --batch N           triples per batch (2048)\n"
    "  --epochs N          epochs (20)\n"
    "  --seed N            random seed (2020)\n"
    "  --threads N         threads (default: all cores); same seed + threads = same model\n"
    "evaluation and output:\n"
    "  --eval-every N      evaluate every N epochs (0: only at the end)\n"
    "  --topk K[,K...]     cut-offs for recall/ndcg/precision/hit (20)\n"
    "  --report FILE       write a JSON report of the run\n"
    "  --db FILE           publish to this store (created if missing)\n"
    "  --name NAME         model name in the store (default: the model kind)\n"
    "  --max-batches N     stop each epoch after N batches (timing runs)\n"
    "  --quiet             no progress output\n";

typedef struct {
    trn_data_opts_t data;
    int synthetic;
    trn_hparams_t hp;
    trn_train_opts_t train;
    const char *report, *db, *name;
    int quiet;
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

/* Returns 0, or an exit code (2 usage, or 0 for --help) with *done set. */
static int parse_args(int argc, char **argv, train_args_t *a, int *done)
{
    enum {
        O_TRAIN = 256,
        O_TEST,
        O_FORMAT,
        O_SPLIT,
        O_MINW,
        O_SYNTH,
        O_MODEL,
        O_DIM,
        O_LAYERS,
        O_LOSS,
        O_MARGIN,
        O_LR,
        O_DECAY,
        O_BATCH,
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
        O_HELP
    };
    static const struct option opts[] = {{"train", 1, 0, O_TRAIN},
                                         {"test", 1, 0, O_TEST},
                                         {"format", 1, 0, O_FORMAT},
                                         {"split", 1, 0, O_SPLIT},
                                         {"min-weight", 1, 0, O_MINW},
                                         {"synthetic", 0, 0, O_SYNTH},
                                         {"model", 1, 0, O_MODEL},
                                         {"dim", 1, 0, O_DIM},
                                         {"layers", 1, 0, O_LAYERS},
                                         {"loss", 1, 0, O_LOSS},
                                         {"margin", 1, 0, O_MARGIN},
                                         {"lr", 1, 0, O_LR},
                                         {"decay", 1, 0, O_DECAY},
                                         {"batch", 1, 0, O_BATCH},
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
                                         {0, 0, 0, 0}};
    long v;
    double x;
    *done = 1;
    optind = 0;
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
        case O_MODEL:
            if (!trn_model_find(optarg)) {
                fprintf(stderr, "gnnrec: --model: unknown model '%s' (known: %s)\n", optarg,
                        trn_model_kinds());
                return 2;
            }
            a->hp.model = optarg;
            break;
        case O_DIM:
            if (cli_parse_int("dim", optarg, 1, 4096, &v) < 0)
                return 2;
            a->hp.dim = (int)v;
            break;
        case O_LAYERS:
            if (cli_parse_int("layers", optarg, 0, 16, &v) < 0)
                return 2;
            a->hp.layers = (int)v;
            break;
        case O_LOSS: {
            int l = trn_loss_parse(optarg);
            if (l < 0) {
                fprintf(stderr, "gnnrec: --loss: expected bpr, bce or margin, got '%s'\n", optarg);
                return 2;
            }
            a->hp.loss = (trn_loss_t)l;
            break;
        }
        case O_MARGIN:
            if (cli_parse_double("margin", optarg, 0, 1e6, &x) < 0)
                return 2;
            a->hp.margin = (float)x;
            break;
        case O_LR:
            if (cli_parse_double("lr", optarg, 1e-12, 10, &x) < 0)
                return 2;
            a->hp.lr = (float)x;
            break;
        case O_DECAY:
            if (cli_parse_double("decay", optarg, 0, 1e6, &x) < 0)
                return 2;
            a->hp.decay = (float)x;
            break;
        case O_BATCH:
            if (cli_parse_int("batch", optarg, 1, 1 << 24, &v) < 0)
                return 2;
            a->hp.batch = (int)v;
            break;
        case O_EPOCHS:
            if (cli_parse_int("epochs", optarg, 0, 1000000, &v) < 0)
                return 2;
            a->train.epochs = (int)v;
            break;
        case O_SEED:
            if (cli_parse_int("seed", optarg, 0, __LONG_MAX__, &v) < 0)
                return 2;
            a->hp.seed = (uint64_t)v;
            a->data.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (cli_parse_int("threads", optarg, 1, 1024, &v) < 0)
                return 2;
            a->hp.threads = (int)v;
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
            fputs(usage, stdout);
            return 0;
        default:
            fputs("gnnrec train --help lists the options\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gnnrec train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->synthetic == !a->data.train_path) {
        fputs("gnnrec train: give exactly one of --train FILE and --synthetic\n", stderr);
        return 2;
    }
    if (a->data.test_path && a->data.split != TRN_SPLIT_NONE) {
        fputs("gnnrec train: --split makes a test set; it cannot go with --test\n", stderr);
        return 2;
    }
    *done = 0;
    return 0;
}

typedef struct {
    trn_progress_t progress;
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
    trn_progress_batch(&r->progress, epoch, r->epochs, loss);
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
        json_object_set_new(o, "eval_s", json_real(e->eval_s));
        for (int k = 0; k < e->metrics.nk && n < (int)sizeof line; k++)
            n += snprintf(line + n, sizeof line - n, " recall@%d %.4f ndcg@%d %.4f",
                          e->metrics.ks[k], e->metrics.recall[k], e->metrics.ks[k],
                          e->metrics.ndcg[k]);
    }
    json_array_append_new(r->epochs_json, o);
    trn_progress_line(&r->progress, "%s", line);
}

static json_t *params_json(const train_args_t *a, const trn_data_t *d)
{
    json_t *p = json_pack("{ss,si,si,ss,sf,sf,sf,si,si,sI,si}", "model", a->hp.model, "dim",
                          a->hp.dim, "layers", a->hp.layers, "loss", trn_loss_name(a->hp.loss),
                          "margin", (double)a->hp.margin, "lr", (double)a->hp.lr, "decay",
                          (double)a->hp.decay, "batch", a->hp.batch, "epochs", a->train.epochs,
                          "seed", (json_int_t)a->hp.seed, "threads", a->hp.threads);
    json_object_set_new(p, "data", json_string(a->synthetic ? "synthetic" : a->data.train_path));
    json_object_set_new(p, "users", json_integer(d->n_users));
    json_object_set_new(p, "items", json_integer(d->n_items));
    json_object_set_new(p, "train_interactions", json_integer(d->train->nnz));
    json_object_set_new(p, "test_interactions", json_integer(d->test ? d->test->nnz : 0));
    return p;
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
    printf("(%lld test users)\n", (long long)model->n_users);
}

static int publish(const train_args_t *a, trn_model_t *m, const trn_data_t *d, json_t *params,
                   json_t *metrics, int64_t *version, eng_error_t *err)
{
    const int dim = m->hp.dim;
    float *uv = malloc((size_t)d->n_users * dim * sizeof *uv);
    float *iv = malloc((size_t)d->n_items * dim * sizeof *iv);
    char *pj = json_dumps(params, JSON_COMPACT), *mj = json_dumps(metrics, JSON_COMPACT);
    sto_db_t *db = NULL;
    int rc = ENG_ENOMEM;
    if (!uv || !iv || !pj || !mj) {
        eng_error_set(err, rc, "out of memory preparing the model for the store");
        goto done;
    }
    if ((rc = m->ops->vectors(m, uv, iv)) < 0) {
        eng_error_set(err, rc, "computing the final vectors: %s", eng_strerror(rc));
        goto done;
    }
    if ((rc = sto_open(a->db, STO_READWRITE | STO_CREATE, &db, err)) < 0)
        goto done;
    sto_model_in_t in = {.name = a->name ? a->name : a->hp.model,
                         .kind = a->hp.model,
                         .n_users = d->n_users,
                         .n_items = d->n_items,
                         .dim = dim,
                         .users = d->users,
                         .items = d->items,
                         .user_vecs = uv,
                         .item_vecs = iv,
                         .seen_ptr = d->train->ptr,
                         .seen_idx = d->train->idx,
                         .params_json = pj,
                         .metrics_json = mj};
    rc = sto_publish(db, &in, version, err);
done:
    sto_close(db);
    free(uv);
    free(iv);
    free(pj);
    free(mj);
    return rc;
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
    train_args_t a = {.hp = trn_hparams_defaults(), .train = {.epochs = 20, .nk = 1, .ks = {20}}};
    a.hp.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (a.hp.threads < 1)
        a.hp.threads = 1;
    a.data.seed = a.hp.seed;
    int done, code = parse_args(argc, argv, &a, &done);
    if (done)
        return code;

    eng_error_t err = {0};
    trn_data_t *d = NULL;
    trn_model_t *m = NULL;
    trn_epoch_t *epochs = NULL;
    json_t *report = NULL;
    run_state_t rs = {0};
    code = 1;

    double t0 = eng_now();
    int rc;
    if (a.synthetic) {
        trn_synth_opts_t so = trn_synth_defaults();
        so.seed = a.hp.seed;
        rc = trn_data_synthetic(&so, &d, &err);
    } else {
        rc = trn_data_load(&a.data, &d, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    trn_progress_init(&rs.progress, stderr, 0, a.quiet);
    trn_progress_line(&rs.progress, "data: %d users, %d items, %lld train, %lld test (%.2fs)",
                      d->n_users, d->n_items, (long long)d->train->nnz,
                      (long long)(d->test ? d->test->nnz : 0), eng_now() - t0);

    m = trn_model_new(d->train, &a.hp, &err);
    if (!m) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, err.code));
        goto done;
    }
    epochs = calloc((size_t)a.train.epochs + 1, sizeof *epochs);
    report = json_object();
    rs.epochs_json = json_array();
    json_t *params = params_json(&a, d);
    json_object_set_new(report, "model", json_string(a.hp.model));
    json_object_set_new(report, "params", params);
    json_object_set_new(report, "epochs", rs.epochs_json);
    if (!epochs || !report || !rs.epochs_json || !params) {
        fputs("gnnrec: out of memory\n", stderr);
        goto done;
    }

    rs.epochs = a.train.epochs;
    long n_batches = (long)((d->train->nnz + a.hp.batch - 1) / a.hp.batch);
    if (a.train.max_batches > 0 && a.train.max_batches < n_batches)
        n_batches = a.train.max_batches;
    rs.progress.total = n_batches * a.train.epochs;
    a.train.on_batch = on_batch;
    a.train.on_epoch = on_epoch;
    a.train.ud = &rs;
    trn_progress_line(&rs.progress,
                      "training %s: dim %d, %d layers, %s loss, %d epochs of %ld "
                      "batches, threads: %d",
                      a.hp.model, a.hp.dim, a.hp.layers, trn_loss_name(a.hp.loss), a.train.epochs,
                      n_batches, a.hp.threads);
    if ((rc = trn_train_run(m, d, &a.train, epochs, &err)) < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }

    json_t *metrics = json_object();
    if (d->test) {
        trn_metrics_t final, pop;
        const trn_epoch_t *last = a.train.epochs ? &epochs[a.train.epochs - 1] : NULL;
        if (last && last->evaluated)
            final = last->metrics;
        else if ((rc = trn_train_evaluate(m, d, a.train.ks, a.train.nk, &final)) < 0) {
            fprintf(stderr, "gnnrec: evaluation failed: %s\n", eng_strerror(rc));
            json_decref(metrics);
            goto done;
        }
        if ((rc = trn_eval_popularity(d->train, d->test, a.train.ks, a.train.nk, &pop)) < 0) {
            fprintf(stderr, "gnnrec: evaluation failed: %s\n", eng_strerror(rc));
            json_decref(metrics);
            goto done;
        }
        json_decref(metrics);
        metrics = metrics_json(&final);
        json_object_set_new(metrics, "popularity", metrics_json(&pop));
        if (!a.quiet)
            print_comparison(&final, &pop, a.hp.model);
    }
    json_object_set_new(report, "final", metrics);

    if (a.db) {
        int64_t version = 0;
        if ((rc = publish(&a, m, d, params, metrics, &version, &err)) < 0) {
            fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
            goto done;
        }
        const char *name = a.name ? a.name : a.hp.model;
        json_object_set_new(
            report, "published",
            json_pack("{ss,ss,sI}", "db", a.db, "name", name, "version", (json_int_t)version));
        printf("published %s version %lld to %s\n", name, (long long)version, a.db);
    }
    if (a.report && write_report(a.report, report) < 0)
        goto done;
    code = 0;
done:
    json_decref(report);
    free(epochs);
    trn_model_free(m);
    trn_data_free(d);
    return code;
}
