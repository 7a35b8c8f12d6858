/* `gnnrec serve`: options, process setup, the libuv loop, graceful shutdown. */
#include "server/internal.h"
#include "server/server.h"
#include "trainer/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: gnnrec serve --db FILE [options]\n"
    "\n"
    "Answers recommendation requests over HTTP (JSON; proto/openapi.yaml) from the newest\n"
    "complete model versions in the store, and switches to new versions as they are published.\n"
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
    "\n"
    "SIGHUP or POST /admin/reload: check the store now. SIGTERM/SIGINT: stop accepting, finish\n"
    "the requests in flight, exit 0.\n";

typedef struct {
    srv_t *s;
    uv_signal_t term, intr;
    uv_timer_t drain;
    double drain_started;
    int stopping;
} run_t;

static void close_all(run_t *run)
{
    srv_t *s = run->s;
    srv_http_stop(s);
    srv_batcher_free(s->batcher);
    s->batcher = NULL;
    srv_loader_stop(s);
    /* A second signal during the last steps must not kill the process mid-teardown. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    uv_close((uv_handle_t *)&run->term, NULL);
    uv_close((uv_handle_t *)&run->intr, NULL);
    uv_close((uv_handle_t *)&run->drain, NULL);
}

/* Every 10 ms while stopping. First the requests in flight finish (up to 30 s), served as usual;
 * then the server closes: later requests on open connections are answered 503 at once, and once
 * no connection is suspended the daemon stops (libmicrohttpd requires none to be). */
static void on_drain(uv_timer_t *t)
{
    run_t *run = t->data;
    srv_t *s = run->s;
    if (!atomic_load(&s->closing)) {
        if (atomic_load(&s->in_flight) > 0 && uv_now(t->loop) - run->drain_started < 30000)
            return;
        atomic_store(&s->closing, 1);
    }
    if (atomic_load(&s->suspended) > 0)
        return;
    uv_timer_stop(t);
    srv_log("stopped");
    close_all(run);
}

static void on_stop_signal(uv_signal_t *h, int sig)
{
    run_t *run = h->data;
    if (run->stopping)
        return;
    run->stopping = 1;
    srv_log("%s: finishing %d request(s) in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            atomic_load(&run->s->in_flight));
    /* Stop accepting; connections already open finish their requests. */
    srv_http_quiesce(run->s);
    run->drain_started = (double)uv_now(h->loop);
    uv_timer_start(&run->drain, on_drain, 0, 10);
}

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

int srv_cmd_serve(int argc, char **argv)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    srv_t s = {.cfg = {.host = "127.0.0.1",
                       .port = 8080,
                       .http_threads = 2,
                       .workers = cores > 0 ? (int)cores : 1,
                       .max_batch = 64,
                       .max_body = 1 << 20,
                       .conn_timeout = 30,
                       .max_conns = 1024,
                       .poll_ms = 500}};
    int done, code = parse_args(argc, argv, &s.cfg, &done);
    if (done)
        return code;
    code = 1;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&s.log_lock, NULL);
    atomic_init(&s.in_flight, 0);
    atomic_init(&s.suspended, 0);
    atomic_init(&s.closing, 0);
    run_t run = {.s = &s};
    uv_loop_t loop;
    char err[256];
    if (s.cfg.access_log) {
        s.access_log = strcmp(s.cfg.access_log, "-") == 0 ? stdout : fopen(s.cfg.access_log, "a");
        if (!s.access_log) {
            fprintf(stderr, "gnnrec: --access-log: cannot open %s\n", s.cfg.access_log);
            return 1;
        }
    }
    s.reg = srv_registry_new();
    s.batcher = srv_batcher_new(s.cfg.workers, s.cfg.max_batch);
    if (!s.reg || !s.batcher || uv_loop_init(&loop) != 0) {
        fputs("gnnrec: out of memory starting the server\n", stderr);
        goto done;
    }
    s.loop = &loop;
    /* The loader before the daemon: an HTTP thread may queue a reload (srv_loader_request, which
     * uses the loader's lock and async handle) as soon as the daemon listens. */
    if (srv_loader_start(&s) < 0) {
        fputs("gnnrec: cannot set up the event loop\n", stderr);
        goto done; /* leaks the half-built loop: the process is exiting */
    }
    if (srv_http_start(&s, err, sizeof err) < 0) {
        fprintf(stderr, "gnnrec: %s\n", err);
        srv_loader_stop(&s);
        uv_run(&loop, UV_RUN_DEFAULT); /* the loader's handles close */
        uv_loop_close(&loop);
        goto done;
    }
    run.term.data = run.intr.data = run.drain.data = &run;
    if (uv_signal_init(&loop, &run.term) || uv_signal_init(&loop, &run.intr) ||
        uv_timer_init(&loop, &run.drain) || uv_signal_start(&run.term, on_stop_signal, SIGTERM) ||
        uv_signal_start(&run.intr, on_stop_signal, SIGINT)) {
        fputs("gnnrec: cannot set up the event loop\n", stderr);
        goto done; /* leaks the half-built loop: the process is exiting */
    }
    srv_log("listening on %s:%u (store %s)", s.cfg.host, s.cfg.port, s.cfg.db_path);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    code = 0;
done:
    srv_http_stop(&s);
    srv_batcher_free(s.batcher);
    srv_registry_free(s.reg);
    if (s.access_log && s.access_log != stdout)
        fclose(s.access_log);
    pthread_mutex_destroy(&s.log_lock);
    return code;
}
