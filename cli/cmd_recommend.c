/* `gnnrec recommend`: offline top-K for users straight from the store (for checking a model), and
 * for a user the model has never seen, folded in from its items as the server's POST
 * /v1/recommend does (the server's kind table and index, so the answers are the server's). */
#include "engine/csr.h"
#include "engine/index.h"
#include "storage/store.h"
#include "server/registry.h"
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gnnrec recommend --db FILE [--name NAME] [--version N] [--k K] [--keep-seen] USER...\n"
    "       gnnrec recommend --db FILE [--name NAME] [--version N] [--k K] --items ITEM[,ITEM...]\n"
    "\n"
    "Prints each user's top-K items by the model's score, the user's training items excluded\n"
    "unless --keep-seen. --name defaults to the store's only model; --version to the live one "
    "(pinned, else newest).\n"
    "With --items (repeatable), the top-K for a user the model has never seen who interacted\n"
    "with those items, folded in as the server's POST /v1/recommend does: items the model does\n"
    "not know are ignored while one is known, the known ones are excluded; a model whose kind\n"
    "cannot fold in is refused.\n";

/* The only model name in the store, copied into buf; -1 (with a message) when there is not
 * exactly one. */
static int only_model(sto_db_t *db, char *buf, size_t n)
{
    sto_version_info_t *v = NULL;
    size_t count = 0;
    eng_error_t err = {0};
    int rc = sto_list(db, NULL, &v, &count, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return -1;
    }
    int ok = count > 0;
    for (size_t i = 1; i < count; i++)
        ok &= strcmp(v[i].name, v[0].name) == 0;
    if (ok)
        snprintf(buf, n, "%s", v[0].name);
    else
        fputs(count ? "gnnrec: the store holds several models; pick one with --name\n"
                    : "gnnrec: the store holds no model\n",
              stderr);
    sto_list_free(v, count);
    return ok ? 0 : -1;
}

#define MAX_ITEM_ARGS 64
#define MAX_ITEMS 10000 /* as many as POST /v1/recommend takes */

/* The kind of version `version` of name (0: the newest), copied into buf; -1 with a message when
 * there is no such version. */
static int version_kind(sto_db_t *db, const char *name, int64_t version, char *buf, size_t n)
{
    sto_version_info_t *v = NULL;
    size_t count = 0;
    eng_error_t err = {0};
    int rc = sto_list(db, name, &v, &count, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return -1;
    }
    const sto_version_info_t *hit = NULL;
    for (size_t i = 0; i < count; i++) /* ordered by version */
        if (version == 0 || v[i].version == version)
            hit = &v[i];
    if (hit)
        snprintf(buf, n, "%s", hit->kind);
    else
        fprintf(stderr, "gnnrec: model %s has no version %lld\n", name, (long long)version);
    sto_list_free(v, count);
    return hit ? 0 : -1;
}

/* --items: loads the version with the tensors its kind's fold-in needs, as the server's loader
 * does, builds the server's version (kind row, abilities, index) and answers as POST
 * /v1/recommend: fold-in over the known items, sorted and unique, top-K without them. Returns the
 * exit code. */
static int new_user(sto_db_t *db, const char *name, int64_t version, size_t k,
                    const char *const *args, int n_args)
{
    char kind[128];
    if (version_kind(db, name, version, kind, sizeof kind) < 0)
        return 1;
    eng_error_t err = {0};
    sto_model_t *m = NULL;
    int rc = sto_load(db, name, version, srv_kind_find(kind)->tensors, &m, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return 1;
    }
    srv_version_t *v = srv_version_new(m, NULL, &err); /* takes m */
    if (!v) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, err.code));
        return 1;
    }
    const sto_version_info_t *in = &v->model->info;
    int code = 1;
    int32_t *known = malloc(MAX_ITEMS * sizeof *known);
    float *q = NULL;
    eng_scored_t *top = malloc(k * sizeof *top);
    void *scratch = malloc(eng_index_scratch_bytes(v->dot, 1));
    if (!known || !top || !scratch) {
        fputs("gnnrec: out of memory\n", stderr);
        goto done;
    }
    size_t n = 0, given = 0;
    for (int a = 0; a < n_args; a++)
        for (const char *s = args[a], *e; *s; s = *e ? e + 1 : e) {
            e = strchr(s, ',');
            e = e ? e : s + strlen(s);
            if (++given > MAX_ITEMS) {
                fprintf(stderr, "gnnrec: --items: at most %d ids\n", MAX_ITEMS);
                goto done;
            }
            int32_t i = eng_idmap_find(v->model->items, s, (size_t)(e - s));
            if (i >= 0)
                known[n++] = i;
            else
                fprintf(stderr, "gnnrec: ignoring item '%.*s', unknown to %s v%lld\n", (int)(e - s),
                        s, in->name, (long long)in->version);
        }
    if (n == 0) {
        fprintf(stderr, "gnnrec: no item given is known to model %s v%lld\n", in->name,
                (long long)in->version);
        goto done;
    }
    if (!(v->abilities & SRV_CAN(SRV_ABILITY_FOLD_IN))) {
        fprintf(stderr, "gnnrec: model %s v%lld (kind %s) %s %s\n", in->name,
                (long long)in->version, in->kind,
                srv_kind_can(v->kind, SRV_ABILITY_FOLD_IN)
                    ? "was published without what it needs to"
                    : "cannot",
                srv_ability_refusal(SRV_ABILITY_FOLD_IN));
        goto done;
    }
    n = eng_sort_unique_i32(known, n);
    if (!(q = malloc(srv_fold_floats(v, n) * sizeof *q))) {
        fputs("gnnrec: out of memory\n", stderr);
        goto done;
    }
    v->kind->fold_in(v, known, n, q);
    eng_query_t query = {.q = q, .k = k, .exclude = known, .n_exclude = n, .out = top};
    eng_index_topk(v->dot, &query, 1, scratch);
    printf("new user (%s v%lld, %zu known items):", in->name, (long long)in->version, n);
    for (size_t i = 0; i < query.n_out; i++)
        printf(" %s(%.3f)", eng_idmap_name(v->model->items, top[i].idx), top[i].score);
    putchar('\n');
    code = 0;
done:
    free(known);
    free(q);
    free(top);
    free(scratch);
    srv_version_unref(v);
    return code;
}

int cli_cmd_recommend(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", 1, 0, 'd'},        {"name", 1, 0, 'n'},  {"version", 1, 0, 'v'}, {"k", 1, 0, 'k'},
        {"keep-seen", 0, 0, 's'}, {"items", 1, 0, 'i'}, {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    const char *path = NULL, *name = NULL;
    long version = 0, k = 10;
    int keep_seen = 0, c;
    const char *items[MAX_ITEM_ARGS];
    int n_item_args = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            path = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'v':
            if (cli_parse_int("version", optarg, 1, __LONG_MAX__, &version) < 0)
                return 2;
            break;
        case 'k':
            if (cli_parse_int("k", optarg, 1, 1000, &k) < 0)
                return 2;
            break;
        case 's':
            keep_seen = 1;
            break;
        case 'i':
            if (n_item_args == MAX_ITEM_ARGS) {
                fprintf(stderr, "gnnrec: --items: at most %d of them\n", MAX_ITEM_ARGS);
                return 2;
            }
            items[n_item_args++] = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!path || (optind >= argc) == (n_item_args == 0) || (n_item_args && keep_seen)) {
        fputs(usage, stderr);
        return 2;
    }
    eng_error_t err = {0};
    sto_db_t *db = NULL;
    sto_model_t *m = NULL;
    eng_index_t *ix = NULL;
    void *scratch = NULL;
    eng_scored_t *top = NULL;
    char only[128];
    int code = 1, rc = sto_open(path, STO_READONLY, &db, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    if (!name) {
        if (only_model(db, only, sizeof only) < 0)
            goto done;
        name = only;
    }
    if (n_item_args) {
        code = new_user(db, name, version, (size_t)k, items, n_item_args);
        goto done;
    }
    static const char *const no_tensors[] = {NULL}; /* ranking needs the vectors only */
    if ((rc = sto_load(db, name, version, no_tensors, &m, &err)) < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        goto done;
    }
    /* The server's index, so that offline answers are the server's, bit for bit. */
    ix = eng_index_new(m->item_vecs, m->info.n_items, m->info.dim, 0);
    scratch = ix ? malloc(eng_index_scratch_bytes(ix, 1)) : NULL;
    top = malloc((size_t)k * sizeof *top);
    if (!ix || !scratch || !top) {
        fputs("gnnrec: out of memory\n", stderr);
        goto done;
    }
    code = 0;
    for (int a = optind; a < argc; a++) {
        int32_t u = eng_idmap_find(m->users, argv[a], strlen(argv[a]));
        if (u < 0) {
            fprintf(stderr, "gnnrec: unknown user '%s' in %s v%lld\n", argv[a], name,
                    (long long)m->info.version);
            code = 1;
            continue;
        }
        const int32_t *seen = m->seen_idx + m->seen_ptr[u];
        size_t n_seen = keep_seen ? 0 : (size_t)(m->seen_ptr[u + 1] - m->seen_ptr[u]);
        eng_query_t q = {.q = m->user_vecs + (size_t)u * m->info.dim,
                         .k = (size_t)k,
                         .exclude = seen,
                         .n_exclude = n_seen,
                         .out = top};
        eng_index_topk(ix, &q, 1, scratch);
        size_t n = q.n_out;
        printf("user %s (%s v%lld):", argv[a], name, (long long)m->info.version);
        for (size_t i = 0; i < n; i++)
            printf(" %s(%.3f)", eng_idmap_name(m->items, top[i].idx), top[i].score);
        putchar('\n');
    }
done:
    free(scratch);
    free(top);
    eng_index_free(ix);
    sto_model_free(m);
    sto_close(db);
    return code;
}
