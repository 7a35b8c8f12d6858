/* `gnnrec serve`: the options, turned into an srv_config_t for srv_run. */
#include "cli/cli.h"
#include "server/server.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: gnnrec serve --db FILE [options]\n"
    "\n"
    "Answers recommendation requests over HTTP (JSON; proto/openapi.yaml) from the live model\n"
    "versions in the store (the newest complete one of each model, or the one pinned with\n"
    "`gnnrec models pin`), and switches versions as they are published or pinned.\n"
    "\n"
    "  --db FILE           the model store (may not exist yet: served 503 until a model appears)\n"
    "  --listen HOST:PORT  address to listen on (127.0.0.1:8080; port 0 picks a free one)\n"
    "  --model NAME        default model for requests without ?model= (default: the only one)\n"
    "  --threads N         HTTP threads (2)\n"
    "  --workers N         top-K scoring threads (default: cores)\n"
    "  --max-batch N       top-K queries scored together at most (64)\n"
    "  --max-body BYTES    largest request body (1048576)\n"
    "  --conn-timeout S    close connections idle for S seconds (30)\n"
    "  --max-conns N       most simultaneous connections (1024)\n"
    "  --poll-ms MS        how often to check the store for new versions (500)\n"
    "  --access-log FILE   one line per request to FILE ('-': stdout; default off)\n"
    "  --token-file FILE   writes (POST /v1/events, /admin/*) need 'Authorization: Bearer T',\n"
    "                      T the first line of FILE (whitespace trimmed); reads stay open\n"
    "  --insecure-writes   take writes without a token on an address beyond loopback (by\n"
    "                      default such a server answers them 403)\n"
    "  --max-queued-events N  events waiting for the disk at most, beyond which POST /v1/events\n"
    "                      answers 503 (100000; at least 10000)\n"
    "\n"
    "POST /v1/events takes one event {\"user\", \"item\", \"weight\"?, \"ts\"?} or an array of\n"
    "them, and answers once they are committed to the store's log (docs/serving.md).\n"
    "SIGHUP or POST /admin/reload: check the store now. SIGTERM/SIGINT: stop accepting, finish\n"
    "the requests in flight, exit 0.\n";

static int parse_listen(const char *s, srv_config_t *c)
{
    static char host[64];
    const char *colon = strrchr(s, ':');
    long port;
    if (!colon || (size_t)(colon - s) >= sizeof host ||
        cli_parse_int("listen", colon + 1, 0, 65535, &port) < 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    c->host = host[0] ? host : "0.0.0.0";
    c->port = (unsigned)port;
    return 0;
}

static int parse_args(int argc, char **argv, srv_config_t *c, int *done)
{
    static const struct option opts[] = {{"db", 1, 0, 'd'},
                                         {"listen", 1, 0, 'l'},
                                         {"model", 1, 0, 'm'},
                                         {"threads", 1, 0, 't'},
                                         {"workers", 1, 0, 'w'},
                                         {"max-batch", 1, 0, 'b'},
                                         {"max-body", 1, 0, 'B'},
                                         {"conn-timeout", 1, 0, 'T'},
                                         {"max-conns", 1, 0, 'c'},
                                         {"poll-ms", 1, 0, 'p'},
                                         {"access-log", 1, 0, 'a'},
                                         {"token-file", 1, 0, 'k'},
                                         {"insecure-writes", 0, 0, 'i'},
                                         {"max-queued-events", 1, 0, 'q'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    long v;
    int o;
    *done = 1;
    optind = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            c->db_path = optarg;
            break;
        case 'l':
            if (parse_listen(optarg, c) < 0) {
                fprintf(stderr, "gnnrec: --listen: expected HOST:PORT, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'm':
            c->model = optarg;
            break;
        case 't':
            if (cli_parse_int("threads", optarg, 1, 256, &v) < 0)
                return 2;
            c->http_threads = (int)v;
            break;
        case 'w':
            if (cli_parse_int("workers", optarg, 1, 256, &v) < 0)
                return 2;
            c->workers = (int)v;
            break;
        case 'b':
            if (cli_parse_int("max-batch", optarg, 1, 1024, &v) < 0)
                return 2;
            c->max_batch = (int)v;
            break;
        case 'B':
            if (cli_parse_int("max-body", optarg, 16, 1L << 30, &v) < 0)
                return 2;
            c->max_body = (size_t)v;
            break;
        case 'T':
            if (cli_parse_int("conn-timeout", optarg, 1, 86400, &v) < 0)
                return 2;
            c->conn_timeout = (unsigned)v;
            break;
        case 'c':
            if (cli_parse_int("max-conns", optarg, 1, 1000000, &v) < 0)
                return 2;
            c->max_conns = (unsigned)v;
            break;
        case 'p':
            if (cli_parse_int("poll-ms", optarg, 10, 3600000, &v) < 0)
                return 2;
            c->poll_ms = (unsigned)v;
            break;
        case 'a':
            c->access_log = optarg;
            break;
        case 'k':
            c->token_file = optarg;
            break;
        case 'i':
            c->insecure_writes = 1;
            break;
        case 'q':
            if (cli_parse_int("max-queued-events", optarg, 10000, 100000000, &v) < 0)
                return 2;
            c->max_queued_events = (size_t)v;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs("gnnrec serve --help lists the options\n", stderr);
            return 2;
        }
    }
    if (!c->db_path || optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    *done = 0;
    return 0;
}

int cli_cmd_serve(int argc, char **argv)
{
    srv_config_t cfg = srv_config_defaults();
    int done, code = parse_args(argc, argv, &cfg, &done);
    if (done)
        return code;
    eng_error_t err = {0};
    int rc = srv_run(&cfg, &err);
    if (rc < 0) {
        fprintf(stderr, "gnnrec: %s\n", eng_error_text(&err, rc));
        return 1;
    }
    return 0;
}
