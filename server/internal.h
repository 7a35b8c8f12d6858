/* Shared state of the server's parts: HTTP plumbing and who may write (http.c), endpoints
 * (api.c), store watching and reloads (loader.c), event intake (intake.c), process setup and the
 * loop (server.c). Internal to server/. */
#ifndef GNNREC_SERVER_INTERNAL_H
#define GNNREC_SERVER_INTERNAL_H

#include "server/batch.h"
#include "server/buf.h"
#include "server/intake.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/server.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <uv.h>

typedef struct srv srv_t;

/* One HTTP request in flight. Created on its first callback, freed when libmicrohttpd reports
 * it complete; holds a reference to the model version it is answered from. */
typedef struct req {
    srv_t *srv;
    struct MHD_Connection *conn;
    srv_endpoint_t ep;
    int json_body; /* the endpoint reads a JSON body (POST) */
    double t0;
    srv_buf_t body;     /* request body (POST) */
    srv_version_t *ver; /* held reference, or NULL */
    /* an answer produced off the HTTP thread (batcher, reload), queued when resumed */
    int suspended;
    unsigned status;
    char *resp; /* malloc'd body */
    size_t resp_len;
    const char *content_type;
    const char *allow; /* Allow header for 405 */
    int retry_after;   /* seconds for a Retry-After header (503 when the queue is full), or 0 */
    int refused;       /* answered before its body (401, 403): the body is read and dropped */
    size_t dropped;    /* bytes of a refused request's body dropped so far */
    /* top-K job state */
    srv_job_t job;
    eng_scored_t *top;
    int32_t *exclude;
    float *qbuf;             /* query vector: similar items; fold-in, then the kind's scratch */
    int32_t subject;         /* user or item index */
    int64_t n_known;         /* fold-in: the request's items the model knows */
    struct req *next_waiter; /* reload waiters list */
    srv_intake_job_t events; /* POST /v1/events: the parsed events (freed with r) */
} req_t;

/* The store watcher and reload machinery, run on the libuv loop thread. */
typedef struct {
    uv_timer_t poll;
    uv_async_t wake; /* reload requested from another thread */
    uv_signal_t sighup;
    uv_work_t work;
    sto_db_t *poll_db; /* read-only handle for PRAGMA data_version */
    int64_t data_version;
    int busy, pending, force, pending_force, first;
    atomic_int force_requested;
    /* reload waiters (POST /admin/reload): added by HTTP threads, answered after a run */
    pthread_mutex_t lock;
    req_t *waiters;     /* for the next run */
    req_t *run_waiters; /* for the run in progress */
    /* the run in progress (worker thread writes, loop thread reads after completion) */
    srv_version_t **loaded;
    int n_loaded;
    char **refused; /* "name\tversion\treason" */
    int n_refused;
    /* (name, version) pairs refused before, not retried until forced */
    char **bad;
    int n_bad;
} srv_loader_t;

struct srv {
    srv_config_t cfg;
    srv_registry_t *reg;
    srv_reaper_t *reaper; /* frees released versions on the loop thread */
    srv_batcher_t *batcher;
    srv_intake_t *intake; /* POST /v1/events: the queue and its writer thread */
    char *token;          /* --token-file's token (writes need it), or NULL */
    size_t token_len;
    int writes_refused; /* no token, listening beyond loopback, no --insecure-writes: 403 */
    struct MHD_Daemon *mhd;
    MHD_socket quiesced; /* the listening socket after srv_http_quiesce, closed by srv_http_stop */
    uv_loop_t *loop;
    srv_loader_t loader;
    atomic_int in_flight; /* requests between first callback and completion */
    atomic_int suspended; /* connections suspended for an asynchronous answer */
    atomic_int draining;  /* SIGTERM seen: every answer closes its connection */
    atomic_int closing;   /* shutting down: answer everything synchronously */
    FILE *access_log;
    pthread_mutex_t log_lock;
};

/* Logs one line to stderr with a timestamp ("gnnrec serve: ..."). Thread-safe. */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* http.c */
int srv_http_start(srv_t *s, char *errbuf, size_t errlen);
/* Stops accepting connections; those open go on. The listening socket stays open until
 * srv_http_stop: libmicrohttpd's threads may still use it until they are stopped. */
void srv_http_quiesce(srv_t *s);
/* Stops the daemon (waits for its threads), then closes the quiesced socket. Harmless when the
 * daemon was never started. */
void srv_http_stop(srv_t *s);
/* Sets r's answer: status, body (taken), content type. */
void srv_req_answer(req_t *r, unsigned status, char *body, size_t len, const char *ctype);
/* Sets r's answer to an error body {"error":{"code","message"}} with the code for status. */
void srv_req_error(req_t *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Suspends r's connection until srv_req_resume (from any thread) after its answer is set.
 * Returns 0, or -1 when the server is closing (r is not suspended: answer it now). */
int srv_req_suspend(req_t *r);
void srv_req_resume(req_t *r);

/* api.c: routes r (method, url) and produces its answer, or suspends it for an asynchronous one. */
void srv_api_dispatch(req_t *r, const char *method, const char *url);
/* Which endpoint a path is (for metrics), the methods it allows (NULL: unknown path), whether it
 * reads a JSON body (before the body is read: for 413 and 415), and whether the request writes
 * (a method the route takes on a route that changes what the server holds: /v1/events and every
 * /admin/ path), so that it needs the token. */
srv_endpoint_t srv_api_route(const char *url, const char *method, const char **allow,
                             int *json_body, int *write);

/* loader.c */
int srv_loader_start(srv_t *s);
void srv_loader_stop(srv_t *s);
/* Queues r to be answered with the result of the next reload, and asks for one (any thread). */
void srv_loader_request(srv_t *s, req_t *r);
/* The reaper's callback (srv_reaped_fn, arg the srv_t): logs the freed version and starts the
 * reload run that was waiting for it to drain. */
void srv_loader_reaped(void *arg, const char *name, int64_t version);

#endif
