/* `gnnrec models`: list the versions in a store, choose which one is served (pin, unpin,
 * rollback) and remove old ones (delete, gc). */
#include "storage/store.h"
#include "cli/cli.h"

#include <getopt.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: gnnrec models [list] --db FILE [--name NAME] [--json]\n"
    "       gnnrec models pin --db FILE NAME VERSION\n"
    "       gnnrec models unpin --db FILE NAME\n"
    "       gnnrec models rollback --db FILE NAME\n"
    "       gnnrec models delete --db FILE NAME VERSION\n"
    "       gnnrec models gc --db FILE --keep N [--name NAME]\n"
    "\n"
    "list      the ready versions: name, version, kind, created, trained users and items, dim,\n"
    "          size, final metrics, and which one is served (live) and pinned (--json adds the\n"
    "          settings and the number of named tensors)\n"
    "pin       serve VERSION of NAME from now on, whatever is published later\n"
    "unpin     serve the newest version of NAME again\n"
    "rollback  pin NAME to the version before the live one\n"
    "delete    remove a version that is not live\n"
    "gc        remove every version but the newest N of each name (or of --name) and the live\n"
    "          one\n"
    "\n"
    "Running servers pick up a pin, an unpin or a rollback as they pick up a publish: within\n"
    "their poll interval (0.5 s by default), without failing a request.\n";

/* The store keeps metrics as JSON text; show the recall/ndcg entries in one short string. */
static void short_metrics(const char *metrics_json, char *buf, size_t n)
{
    buf[0] = '\0';
    json_t *m = metrics_json ? json_loads(metrics_json, 0, NULL) : NULL;
    const char *key;
    json_t *v;
    size_t used = 0;
    json_object_foreach(m, key, v)
    {
        if (json_is_number(v) && (strncmp(key, "recall@", 7) == 0 || strncmp(key, "ndcg@", 5) == 0))
            used += (size_t)snprintf(buf + used, used < n ? n - used : 0, "%s%s=%.4f",
                                     used ? " " : "", key, json_number_value(v));
    }
    json_decref(m);
}

static int list(sto_db_t *db, const char *name, int as_json, eng_error_t *err)
{
    sto_version_info_t *v = NULL;
    size_t n = 0;
    int rc = sto_list(db, name, &v, &n, err);
    if (rc < 0)
        return rc;
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_pack("{ss,sI,ss,ss,si,si,si,sI,si,sb,sb}", "name", v[i].name,
                                  "version", (json_int_t)v[i].version, "kind", v[i].kind, "created",
                                  v[i].created, "users", v[i].n_users, "items", v[i].n_items, "dim",
                                  v[i].dim, "bytes", (json_int_t)v[i].bytes, "tensors",
                                  v[i].n_tensors, "live", v[i].live, "pinned", v[i].pinned);
            json_t *p = json_loads(v[i].params_json ? v[i].params_json : "{}", 0, NULL);
            json_t *m = json_loads(v[i].metrics_json ? v[i].metrics_json : "{}", 0, NULL);
            json_object_set_new(o, "params", p ? p : json_object());
            json_object_set_new(o, "metrics", m ? m : json_object());
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s)
            puts(s);
        free(s);
        json_decref(arr);
    } else {
        printf("%-20s %7s %-11s %-10s %-20s %8s %8s %5s %10s  %s\n", "NAME", "VERSION", "STATE",
               "KIND", "CREATED", "USERS", "ITEMS", "DIM", "BYTES", "METRICS");
        for (size_t i = 0; i < n; i++) {
            char metrics[256];
            short_metrics(v[i].metrics_json, metrics, sizeof metrics);
            const char *state = v[i].pinned ? "live,pinned" : v[i].live ? "live" : "-";
            printf("%-20s %7lld %-11s %-10s %-20s %8d %8d %5d %10lld  %s\n", v[i].name,
                   (long long)v[i].version, state, v[i].kind, v[i].created, v[i].n_users,
                   v[i].n_items, v[i].dim, (long long)v[i].bytes, metrics);
        }
    }
    sto_list_free(v, n);
    return ENG_OK;
}

/* The version argument of pin and delete. */
static int parse_version(const char *s, int64_t *out)
{
    long v;
    if (cli_parse_int("VERSION", s, 1, INT32_MAX, &v) < 0)
        return -1;
    *out = v;
    return 0;
}

enum { LIST, PIN, UNPIN, ROLLBACK, DELETE, GC };
static const struct {
    const char *name;
    int args; /* positional arguments after the action */
} actions[] = {[LIST] = {"list", 0},         [PIN] = {"pin", 2},       [UNPIN] = {"unpin", 1},
               [ROLLBACK] = {"rollback", 1}, [DELETE] = {"delete", 2}, [GC] = {"gc", 0}};

int cli_cmd_models(int argc, char **argv)
{
    static const struct option opts[] = {{"db", 1, 0, 'd'},   {"name", 1, 0, 'n'},
                                         {"json", 0, 0, 'j'}, {"keep", 1, 0, 'k'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *path = NULL, *name = NULL;
    int as_json = 0, c;
    long keep = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            path = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'k':
            if (cli_parse_int("keep", optarg, 1, INT32_MAX, &keep) < 0)
                return 2;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    int action = LIST;
    if (optind < argc) {
        for (action = 0; action <= GC && strcmp(argv[optind], actions[action].name); action++)
            ;
        if (action > GC) {
            fprintf(stderr, "gnnrec models: unknown action '%s'\n\n%s", argv[optind], usage);
            return 2;
        }
        optind++;
    }
    char **pos = argv + optind;
    int64_t version = 0;
    if (!path || argc - optind != actions[action].args || (action == GC && !keep) ||
        ((action == PIN || action == DELETE) && parse_version(pos[1], &version) < 0)) {
        fputs(usage, stderr);
        return 2;
    }
    eng_error_t err = {0};
    sto_db_t *db = NULL;
    int rc = sto_open(path, action == LIST ? STO_READONLY : STO_READWRITE, &db, &err);
    int64_t n = 0;
    if (rc == 0) {
        switch (action) {
        case LIST:
            rc = list(db, name, as_json, &err);
            break;
        case PIN:
            if ((rc = sto_pin(db, pos[0], version, &err)) == 0)
                printf("%s: pinned to v%lld\n", pos[0], (long long)version);
            break;
        case UNPIN:
            if ((rc = sto_unpin(db, pos[0], &err)) == 0 &&
                (rc = sto_live(db, pos[0], &n, &err)) == 0)
                printf("%s: unpinned, live is v%lld\n", pos[0], (long long)n);
            break;
        case ROLLBACK:
            if ((rc = sto_rollback(db, pos[0], &n, &err)) == 0)
                printf("%s: rolled back, pinned to v%lld\n", pos[0], (long long)n);
            break;
        case DELETE:
            if ((rc = sto_delete(db, pos[0], version, &err)) == 0)
                printf("%s: deleted v%lld\n", pos[0], (long long)version);
            break;
        case GC:
            if ((rc = sto_gc(db, name, (int)keep, &n, &err)) == 0)
                printf("deleted %lld versions\n", (long long)n);
            break;
        }
    }
    sto_close(db);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return 1;
    }
    return 0;
}
