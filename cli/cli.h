/* The gnnrec subcommands. Each takes the arguments after its name (argv[0] is the subcommand),
 * prints for people, and returns the process exit code: 0 ok, 1 failure, 2 usage error. The
 * commands are the one layer that knows every module (docs/architecture.md). */
#ifndef GNNREC_CLI_CLI_H
#define GNNREC_CLI_CLI_H

int cli_cmd_train(int argc, char **argv);
int cli_cmd_models(int argc, char **argv);
int cli_cmd_recommend(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_import(int argc, char **argv);

/* Parsing helpers shared by the subcommands: each prints "gnnrec: --flag: reason" to stderr and
 * returns -1 when s is not a valid value. */
int cli_parse_int(const char *flag, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out);
/* A time as unix seconds: a number of them, an ISO-8601 UTC date or time (eng_utc_parse), or an
 * age before now ("90d", "12h", "30m", "45s"). */
int cli_parse_time(const char *flag, const char *s, double *out);

#endif
