/* gnnrec: one command, subcommands for training, inspecting and serving models. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: gnnrec COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  train       train a model on an interaction log and publish it to a store\n"
    "  import      append interaction logs to a store's log, for retrains (--from-log)\n"
    "  models      list a store's model versions; pin, roll back, delete, gc\n"
    "  recommend   top-K items for users, or for a new user from its items, from a store\n"
    "  serve       answer recommendation requests over HTTP from a store\n"
    "  help        this text\n"
    "\n"
    "`gnnrec COMMAND --help` describes each command's options.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return cli_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0)
        return cli_cmd_import(argc - 1, argv + 1);
    if (strcmp(cmd, "models") == 0)
        return cli_cmd_models(argc - 1, argv + 1);
    if (strcmp(cmd, "recommend") == 0)
        return cli_cmd_recommend(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cli_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "gnnrec: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
