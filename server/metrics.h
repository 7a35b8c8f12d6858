/* Prometheus metrics of the server: request counts and latency histograms per endpoint and
 * status, reloads, batch sizes. Lock-free (relaxed atomics): recording is on every request. */
#ifndef GNNREC_SERVER_METRICS_H
#define GNNREC_SERVER_METRICS_H

#include "server/buf.h"

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

/* Appends the text exposition (format 0.0.4) of every metric above to b. Model gauges are
 * appended by the caller, who knows the loaded versions. */
void srv_metrics_render(srv_buf_t *b);

#endif
