/* The server's entry point: process setup, the libuv loop, graceful shutdown. */
#include "server/internal.h"
#include "server/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    srv_intake_free(s->intake); /* nothing is queued: every intake request has been answered */
    s->intake = NULL;
    srv_loader_stop(s);
    srv_reaper_close(s->reaper); /* what is released from now on is freed after the loop */
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
    /* Stop accepting; connections already open finish their requests, then close. */
    atomic_store(&run->s->draining, 1);
    srv_http_quiesce(run->s);
    run->drain_started = (double)uv_now(h->loop);
    uv_timer_start(&run->drain, on_drain, 0, 10);
}

srv_config_t srv_config_defaults(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return (srv_config_t){.host = "127.0.0.1",
                          .port = 8080,
                          .http_threads = 2,
                          .workers = cores > 0 ? (int)cores : 1,
                          .max_batch = 64,
                          .max_body = 1 << 20,
                          .conn_timeout = 30,
                          .max_conns = 1024,
                          .poll_ms = 500,
                          .max_queued_events = 100000};
}

/* The token in the file at path: its first line, whitespace trimmed, into a new string *out of
 * *len bytes. ENG_EIO naming the file when it cannot be read, ENG_EINVAL when that line is
 * empty: a server told to require a token never runs without one. */
static int read_token(const char *path, char **out, size_t *len, eng_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return eng_error_set(err, ENG_EIO, "--token-file %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getline(&line, &cap, f);
    const int e = errno, failed = ferror(f);
    fclose(f);
    if (failed) {
        free(line);
        return eng_error_set(err, ENG_EIO, "--token-file %s: %s", path, strerror(e));
    }
    size_t a = 0, b = n > 0 ? (size_t)n : 0;
    while (a < b && isspace((unsigned char)line[a]))
        a++;
    while (b > a && isspace((unsigned char)line[b - 1]))
        b--;
    if (a == b) {
        free(line);
        return eng_error_set(err, ENG_EINVAL,
                             "--token-file %s: the first line is empty; write the token there",
                             path);
    }
    memmove(line, line + a, b - a);
    line[b - a] = '\0';
    *out = line;
    *len = b - a;
    return ENG_OK;
}

/* Whether host, an IPv4 address, is a loopback one (127.0.0.0/8). */
static int is_loopback(const char *host)
{
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && ntohl(a.s_addr) >> 24 == 127;
}

/* Logs who may write, once the server listens. */
static void log_writes(const srv_t *s)
{
    if (s->token)
        srv_log("writes (POST /v1/events, /admin/*) need the bearer token of %s",
                s->cfg.token_file);
    else if (s->writes_refused)
        srv_log("writes refused (403): %s is beyond loopback and no --token-file was given; "
                "start with --token-file FILE (or --insecure-writes) to take events",
                s->cfg.host);
    else if (!is_loopback(s->cfg.host))
        srv_log("--insecure-writes: whoever reaches %s:%u may post events and reload models",
                s->cfg.host, s->cfg.port);
}

int srv_run(const srv_config_t *cfg, eng_error_t *err)
{
    if (!cfg->db_path || !cfg->host)
        return eng_error_set(err, ENG_EINVAL,
                             "serve: a store path and a listen address are needed");
    srv_t s = {.cfg = *cfg};
    int rc = ENG_ENOMEM;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&s.log_lock, NULL);
    atomic_init(&s.in_flight, 0);
    atomic_init(&s.suspended, 0);
    atomic_init(&s.draining, 0);
    atomic_init(&s.closing, 0);
    run_t run = {.s = &s};
    uv_loop_t loop;
    char msg[256];
    if (s.cfg.token_file && (rc = read_token(s.cfg.token_file, &s.token, &s.token_len, err)) < 0)
        goto done;
    s.writes_refused = !s.token && !s.cfg.insecure_writes && !is_loopback(s.cfg.host);
    rc = ENG_ENOMEM;
    if (s.cfg.access_log) {
        s.access_log = strcmp(s.cfg.access_log, "-") == 0 ? stdout : fopen(s.cfg.access_log, "a");
        if (!s.access_log) {
            rc = eng_error_set(err, ENG_EIO, "access log %s: cannot open for appending",
                               s.cfg.access_log);
            goto done;
        }
    }
    s.reg = srv_registry_new();
    s.batcher = srv_batcher_new(s.cfg.workers, s.cfg.max_batch);
    s.intake = srv_intake_new(s.cfg.db_path, s.cfg.max_queued_events);
    if (!s.reg || !s.batcher || !s.intake || uv_loop_init(&loop) != 0) {
        eng_error_set(err, rc, "out of memory starting the server");
        goto done;
    }
    s.loop = &loop;
    /* The reaper and the loader before the daemon: an HTTP thread may queue a reload
     * (srv_loader_request uses the loader's lock and async handle) as soon as the daemon
     * listens. */
    if (!(s.reaper = srv_reaper_new(&loop, srv_loader_reaped, &s)) || srv_loader_start(&s) < 0) {
        rc = eng_error_set(err, ENG_ENOMEM, "cannot set up the event loop");
        goto done; /* leaks the half-built loop's handles: libuv cannot close them unstarted */
    }
    if (srv_http_start(&s, msg, sizeof msg) < 0) {
        rc = eng_error_set(err, ENG_EIO, "%s", msg);
        srv_loader_stop(&s);
        srv_reaper_close(s.reaper);
        uv_run(&loop, UV_RUN_DEFAULT); /* the loader's and the reaper's handles close */
        uv_loop_close(&loop);
        goto done;
    }
    run.term.data = run.intr.data = run.drain.data = &run;
    if (uv_signal_init(&loop, &run.term) || uv_signal_init(&loop, &run.intr) ||
        uv_timer_init(&loop, &run.drain) || uv_signal_start(&run.term, on_stop_signal, SIGTERM) ||
        uv_signal_start(&run.intr, on_stop_signal, SIGINT)) {
        rc = eng_error_set(err, ENG_ENOMEM, "cannot set up the event loop");
        goto done; /* leaks the half-built loop's handles: libuv cannot close them unstarted */
    }
    srv_log("listening on %s:%u (store %s)", s.cfg.host, s.cfg.port, s.cfg.db_path);
    log_writes(&s);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    rc = ENG_OK;
done:
    srv_http_stop(&s);
    srv_batcher_free(s.batcher);
    srv_intake_free(s.intake);
    srv_registry_free(s.reg);
    srv_reaper_free(s.reaper); /* last: every version is released by now */
    if (s.access_log && s.access_log != stdout)
        fclose(s.access_log);
    pthread_mutex_destroy(&s.log_lock);
    if (s.token)
        explicit_bzero(s.token, s.token_len);
    free(s.token);
    return rc;
}
