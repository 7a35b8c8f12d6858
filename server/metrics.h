/* Prometheus metrics of the server: request counts and latency histograms per endpoint and
 * status, reloads, batch sizes, event intake. Lock-free (relaxed atomics): recording is on every
 * request. */
#ifndef GNNREC_SERVER_METRICS_H
#define GNNREC_SERVER_METRICS_H

#include "server/buf.h"

#include <stddef.h>

typedef enum {
    SRV_EP_RECOMMEND,
    SRV_EP_RECOMMEND_NEW, /* POST /v1/recommend (fold-in) */
    SRV_EP_EXPLAIN,
    SRV_EP_SIMILAR,
    SRV_EP_SCORE,
    SRV_EP_MODELS,
    SRV_EP_HEALTHZ,
    SRV_EP_READYZ,
    SRV_EP_METRICS,
    SRV_EP_RELOAD,
    SRV_EP_EVENTS, /* POST /v1/events */
    SRV_EP_OTHER,
    SRV_EP_COUNT
} srv_endpoint_t;

/* The endpoint's label value ("recommendations", "recommend", "explain", "similar", ...). */
const char *srv_endpoint_name(srv_endpoint_t e);

/* Counts one finished request and its latency. */
void srv_metrics_request(srv_endpoint_t e, unsigned status, double seconds);
/* Counts one top-K batch of n queries. */
void srv_metrics_batch(int n);
void srv_metrics_reload(int failed);

/* Why the events of a parsed POST /v1/events were not logged (gnnrec_events_rejected_total's
 * reason label). Requests refused before their events are counted (malformed JSON, 401, 403,
 * 413, 415) show in gnnrec_http_requests_total only. */
typedef enum {
    SRV_REJECT_INVALID,    /* 400: a bad event refuses its whole request */
    SRV_REJECT_OVERLOADED, /* 503: the queue is full */
    SRV_REJECT_FAILED,     /* 503: the commit failed */
    SRV_REJECT_SHUTDOWN,   /* 503: the server is stopping */
    SRV_REJECT_COUNT
} srv_reject_t;

/* Counts n events of a request refused for why. */
void srv_metrics_events_rejected(srv_reject_t why, size_t n);
/* Counts one group commit of n events: accepted, or failed (its events rejected as failed). */
void srv_metrics_event_commit(int failed, size_t n);

/* Appends the text exposition (format 0.0.4) of every metric above to b. Model gauges are
 * appended by the caller, who knows the loaded versions. */
void srv_metrics_render(srv_buf_t *b);

#endif
