/* `gnnrec recommend`: offline top-K for users straight from the store (for checking a model). */
#include "engine/index.h"
#include "storage/store.h"
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gnnrec recommend --db FILE [--name NAME] [--version N] [--k K] [--keep-seen] USER...\n"
    "\n"
    "Prints each user's top-K items by the model's score, the user's training items excluded\n"
    "unless --keep-seen. --name defaults to the store's only model; --version to the newest.\n";

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

int cli_cmd_recommend(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", 1, 0, 'd'}, {"name", 1, 0, 'n'},      {"version", 1, 0, 'v'},
        {"k", 1, 0, 'k'},  {"keep-seen", 0, 0, 's'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    const char *path = NULL, *name = NULL;
    long version = 0, k = 10;
    int keep_seen = 0, c;
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
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!path || optind >= argc) {
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
