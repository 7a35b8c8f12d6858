/* `gnnrec import`: interaction logs into a store's log, for retrains (`gnnrec train --from-log`).
 */
#include "cli/cli.h"
#include "storage/store.h"
#include "trainer/data.h"

#include <getopt.h>
#include <stdio.h>

static const char usage[] =
    "usage: gnnrec import --db FILE LOG [LOG ...]\n"
    "\n"
    "Appends each interaction log (CSV/TSV `user,item[,weight][,timestamp]` or the LightGCN\n"
    "format, read as `gnnrec train --train` reads it) to the store's interaction log, where\n"
    "events posted to the server go too: one transaction per file, so a file with a bad line\n"
    "(reported as file:line) adds nothing. Rows without a timestamp get the time of the import.\n"
    "The store is created if missing.\n";

int cli_cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {{"db", 1, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *path = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!path || optind == argc) {
        fputs(usage, stderr);
        return 2;
    }
    eng_error_t err = {0};
    sto_db_t *db = NULL;
    int rc = sto_open(path, STO_READWRITE | STO_CREATE, &db, &err);
    for (int i = optind; rc == 0 && i < argc; i++) {
        int64_t n = 0, first = 0;
        if ((rc = trn_data_import(argv[i], db, &n, &first, &err)) == 0)
            printf("%s: %lld events logged (seq %lld-%lld)\n", argv[i], (long long)n,
                   (long long)first, (long long)(first + n - 1));
    }
    sto_close(db);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return 1;
    }
    return 0;
}
