/* The HTTP inference server as a library: one configuration, one entry point.
 *
 * srv_run answers the endpoints of proto/openapi.yaml from the live versions in a model store
 * (each model's pinned version, else its newest) until SIGTERM or SIGINT, switching versions as
 * they are published or pinned (docs/serving.md).
 * The command line (cli/cmd_serve.c) only fills an srv_config_t. */
#ifndef GNNREC_SERVER_SERVER_H
#define GNNREC_SERVER_SERVER_H

#include "engine/err.h"

#include <stddef.h>

typedef struct {
    const char *db_path;
    const char *model; /* default model name, or NULL */
    const char *host;  /* listen address */
    unsigned port;
    int http_threads; /* libmicrohttpd thread pool */
    int workers;      /* scoring threads */
    int max_batch;
    size_t max_body;       /* bytes */
    unsigned conn_timeout; /* seconds */
    unsigned max_conns;
    unsigned poll_ms;
    const char *access_log; /* path, "-" for stdout, NULL for none */
    /* Writes (POST /v1/events, every /admin/ path) need "Authorization: Bearer T", T the first line
     * of this file, whitespace trimmed; NULL: no token. Without one, a server listening beyond
     * loopback (not 127.0.0.0/8) answers writes 403 unless insecure_writes is set. */
    const char *token_file;
    int insecure_writes;
    size_t max_queued_events; /* events queued for the log at most; beyond, 503 */
} srv_config_t;

/* The defaults of every field but db_path: 127.0.0.1:8080, 2 HTTP threads, one scoring worker per
 * core, batches of 64, 1 MiB bodies, 30 s idle timeout, 1024 connections, 500 ms polling, no
 * token, 100000 queued events. */
srv_config_t srv_config_defaults(void);

/* Serves cfg (borrowed for the call) until SIGTERM/SIGINT, then finishes the requests in flight
 * (the events queued are committed and answered) and returns 0. Returns a negative code with err
 * filled when the server cannot start (the address is taken, the token file cannot be read or its
 * first line is empty, the access log cannot be opened, out of memory); nothing is left
 * running. */
int srv_run(const srv_config_t *cfg, eng_error_t *err);

#endif
