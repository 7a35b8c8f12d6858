/* Prometheus metrics: fixed arrays of relaxed atomic counters. */
#include "server/metrics.h"

#include <stdatomic.h>
#include <stdint.h>

static const unsigned statuses[] = {200, 202, 400, 401, 403, 404, 405,
                                    413, 415, 422, 500, 501, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                 0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
#define N_BUCKET (sizeof buckets / sizeof buckets[0])
static const int batch_buckets[] = {1, 2, 4, 8, 16, 32, 64};
#define N_BATCH_BUCKET (sizeof batch_buckets / sizeof batch_buckets[0])

static _Atomic uint64_t requests[SRV_EP_COUNT][N_STATUS];
static _Atomic uint64_t latency[SRV_EP_COUNT][N_BUCKET + 1]; /* per bucket, not cumulative */
static _Atomic uint64_t latency_ns[SRV_EP_COUNT];
static _Atomic uint64_t batch_hist[N_BATCH_BUCKET + 1];
static _Atomic uint64_t batch_sum;
static _Atomic uint64_t reloads, reload_failures;
static _Atomic uint64_t events_accepted, event_commits, event_commit_failures;
static _Atomic uint64_t events_rejected[SRV_REJECT_COUNT];

const char *srv_endpoint_name(srv_endpoint_t e)
{
    /* In enum order; a forgotten label fails the assert. */
    static const char *const names[] = {"recommendations", "recommend",    "explain", "similar",
                                        "score",           "models",       "healthz", "readyz",
                                        "metrics",         "admin_reload", "events",  "other"};
    _Static_assert(sizeof names / sizeof *names == SRV_EP_COUNT, "one label per endpoint");
    return names[e];
}

void srv_metrics_request(srv_endpoint_t e, unsigned status, double seconds)
{
    size_t s = N_STATUS - 1;
    for (size_t i = 0; i + 1 < N_STATUS; i++)
        if (statuses[i] == status)
            s = i;
    atomic_fetch_add_explicit(&requests[e][s], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKET && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&latency[e][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_ns[e], (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

void srv_metrics_batch(int n)
{
    size_t b = 0;
    while (b < N_BATCH_BUCKET && n > batch_buckets[b])
        b++;
    atomic_fetch_add_explicit(&batch_hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&batch_sum, (uint64_t)n, memory_order_relaxed);
}

void srv_metrics_reload(int failed)
{
    atomic_fetch_add_explicit(failed ? &reload_failures : &reloads, 1, memory_order_relaxed);
}

void srv_metrics_events_rejected(srv_reject_t why, size_t n)
{
    atomic_fetch_add_explicit(&events_rejected[why], (uint64_t)n, memory_order_relaxed);
}

void srv_metrics_event_commit(int failed, size_t n)
{
    if (failed) {
        atomic_fetch_add_explicit(&event_commit_failures, 1, memory_order_relaxed);
        srv_metrics_events_rejected(SRV_REJECT_FAILED, n);
    } else {
        atomic_fetch_add_explicit(&event_commits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&events_accepted, (uint64_t)n, memory_order_relaxed);
    }
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void srv_metrics_render(srv_buf_t *b)
{
    srv_buf_puts(b, "# HELP gnnrec_http_requests_total HTTP requests by endpoint and status.\n"
                    "# TYPE gnnrec_http_requests_total counter\n");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t n = LOAD(requests[e][s]);
            if (!n)
                continue;
            if (s + 1 < N_STATUS)
                srv_buf_printf(b,
                               "gnnrec_http_requests_total{endpoint=\"%s\",status=\"%u\"} %llu\n",
                               srv_endpoint_name(e), statuses[s], (unsigned long long)n);
            else
                srv_buf_printf(
                    b, "gnnrec_http_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n",
                    srv_endpoint_name(e), (unsigned long long)n);
        }
    srv_buf_puts(b, "# HELP gnnrec_http_request_duration_seconds Request latency by endpoint.\n"
                    "# TYPE gnnrec_http_request_duration_seconds histogram\n");
    for (int e = 0; e < SRV_EP_COUNT; e++) {
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_BUCKET; k++) {
            cum += LOAD(latency[e][k]);
            if (k < N_BUCKET)
                srv_buf_printf(b,
                               "gnnrec_http_request_duration_seconds_bucket{endpoint=\"%s\","
                               "le=\"%g\"} %llu\n",
                               srv_endpoint_name(e), buckets[k], (unsigned long long)cum);
            else
                srv_buf_printf(b,
                               "gnnrec_http_request_duration_seconds_bucket{endpoint=\"%s\","
                               "le=\"+Inf\"} %llu\n",
                               srv_endpoint_name(e), (unsigned long long)cum);
        }
        srv_buf_printf(b, "gnnrec_http_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n",
                       srv_endpoint_name(e), (double)LOAD(latency_ns[e]) * 1e-9);
        srv_buf_printf(b, "gnnrec_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                       srv_endpoint_name(e), (unsigned long long)cum);
    }
    srv_buf_puts(b, "# HELP gnnrec_batch_queries Queries per top-K scoring batch.\n"
                    "# TYPE gnnrec_batch_queries histogram\n");
    uint64_t cum = 0;
    for (size_t k = 0; k <= N_BATCH_BUCKET; k++) {
        cum += LOAD(batch_hist[k]);
        if (k < N_BATCH_BUCKET)
            srv_buf_printf(b, "gnnrec_batch_queries_bucket{le=\"%d\"} %llu\n", batch_buckets[k],
                           (unsigned long long)cum);
        else
            srv_buf_printf(b, "gnnrec_batch_queries_bucket{le=\"+Inf\"} %llu\n",
                           (unsigned long long)cum);
    }
    srv_buf_printf(b, "gnnrec_batch_queries_sum %llu\ngnnrec_batch_queries_count %llu\n",
                   (unsigned long long)LOAD(batch_sum), (unsigned long long)cum);
    srv_buf_printf(b,
                   "# HELP gnnrec_reloads_total Model versions loaded and swapped in.\n"
                   "# TYPE gnnrec_reloads_total counter\ngnnrec_reloads_total %llu\n"
                   "# HELP gnnrec_reload_failures_total Model versions refused by their checks.\n"
                   "# TYPE gnnrec_reload_failures_total counter\n"
                   "gnnrec_reload_failures_total %llu\n",
                   (unsigned long long)LOAD(reloads), (unsigned long long)LOAD(reload_failures));
    static const char *const reasons[] = {"invalid", "overloaded", "failed", "shutdown"};
    _Static_assert(sizeof reasons / sizeof *reasons == SRV_REJECT_COUNT, "one label per reason");
    srv_buf_printf(b,
                   "# HELP gnnrec_events_accepted_total Events committed to the log and "
                   "acknowledged.\n"
                   "# TYPE gnnrec_events_accepted_total counter\n"
                   "gnnrec_events_accepted_total %llu\n"
                   "# HELP gnnrec_event_commits_total Group commits of events (one synced "
                   "transaction each).\n"
                   "# TYPE gnnrec_event_commits_total counter\n"
                   "gnnrec_event_commits_total %llu\n"
                   "# HELP gnnrec_event_commit_failures_total Group commits that failed (their "
                   "requests answered 503).\n"
                   "# TYPE gnnrec_event_commit_failures_total counter\n"
                   "gnnrec_event_commit_failures_total %llu\n"
                   "# HELP gnnrec_events_rejected_total Events of parsed requests not logged, by "
                   "reason.\n"
                   "# TYPE gnnrec_events_rejected_total counter\n",
                   (unsigned long long)LOAD(events_accepted),
                   (unsigned long long)LOAD(event_commits),
                   (unsigned long long)LOAD(event_commit_failures));
    for (int r = 0; r < SRV_REJECT_COUNT; r++)
        srv_buf_printf(b, "gnnrec_events_rejected_total{reason=\"%s\"} %llu\n", reasons[r],
                       (unsigned long long)LOAD(events_rejected[r]));
}
