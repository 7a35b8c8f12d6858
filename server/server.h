/* The HTTP inference server as a library: one configuration, one entry point.
 *
 * srv_run answers the endpoints of proto/openapi.yaml from the newest ready versions in a model
 * store until SIGTERM or SIGINT, switching to new versions as they are published (docs/serving.md).
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
} srv_config_t;

/* The defaults of every field but db_path: 127.0.0.1:8080, 2 HTTP threads, one scoring worker per
 * core, batches of 64, 1 MiB bodies, 30 s idle timeout, 1024 connections, 500 ms polling. */
srv_config_t srv_config_defaults(void);

/* Serves cfg (borrowed for the call) until SIGTERM/SIGINT, then finishes the requests in flight
 * and returns 0. Returns a negative code with err filled when the server cannot start (the
 * address is taken, the access log cannot be opened, out of memory); nothing is left running. */
int srv_run(const srv_config_t *cfg, eng_error_t *err);

#endif
