/* `gnnrec models`: list the versions in a store. */
#include "storage/store.h"
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char usage[] = "usage: gnnrec models --db FILE [--name NAME] [--json]\n"
                            "\n"
                            "Lists the ready model versions in a store: name, version, kind,\n"
                            "created, trained users and items, dim, size and final metrics\n"
                            "(--json adds the settings and the number of named tensors).\n";

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

int cli_cmd_models(int argc, char **argv)
{
    static const struct option opts[] = {{"db", 1, 0, 'd'},
                                         {"name", 1, 0, 'n'},
                                         {"json", 0, 0, 'j'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL, *name = NULL;
    int as_json = 0, c;
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
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!path || optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    eng_error_t err = {0};
    sto_db_t *db = NULL;
    sto_version_info_t *v = NULL;
    size_t n = 0;
    int rc = sto_open(path, STO_READONLY, &db, &err);
    if (rc == 0)
        rc = sto_list(db, name, &v, &n, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        sto_close(db);
        return 1;
    }
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o =
                json_pack("{ss,sI,ss,ss,si,si,si,sI,si}", "name", v[i].name, "version",
                          (json_int_t)v[i].version, "kind", v[i].kind, "created", v[i].created,
                          "users", v[i].n_users, "items", v[i].n_items, "dim", v[i].dim, "bytes",
                          (json_int_t)v[i].bytes, "tensors", v[i].n_tensors);
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
        printf("%-20s %7s %-10s %-20s %8s %8s %5s %10s  %s\n", "NAME", "VERSION", "KIND", "CREATED",
               "USERS", "ITEMS", "DIM", "BYTES", "METRICS");
        for (size_t i = 0; i < n; i++) {
            char metrics[256];
            short_metrics(v[i].metrics_json, metrics, sizeof metrics);
            printf("%-20s %7lld %-10s %-20s %8d %8d %5d %10lld  %s\n", v[i].name,
                   (long long)v[i].version, v[i].kind, v[i].created, v[i].n_users, v[i].n_items,
                   v[i].dim, (long long)v[i].bytes, metrics);
        }
    }
    sto_list_free(v, n);
    sto_close(db);
    return 0;
}
