/* Event intake, the server's write side (POST /v1/events): parsing a request's events, and the
 * queue and writer thread that append them to the store's interaction log with group commit.
 *
 * HTTP threads only parse and check (srv_events_parse) and queue (srv_intake_submit): they never
 * touch the store, so intake never holds up a recommendation. One writer thread owns a read-write
 * handle on the store (opened on first use, creating the store when it is missing). It takes
 * every job queued so far, appends all their events with ONE sto_events_append call (one synced
 * transaction), and only then calls each job's done callback, on the writer thread: with its
 * sequence numbers, or marked failed, when the commit failed and nothing of the group was
 * written. Under load many requests share one fsync; alone, a request is committed at once.
 *
 * The queue is bounded in events (those queued or being committed): a job that would go over the
 * bound is refused at once, so that a client that writes faster than the disk gets 503 and
 * retries instead of the server's memory growing. */
#ifndef GNNREC_SERVER_INTAKE_H
#define GNNREC_SERVER_INTAKE_H

#include "engine/err.h"
#include "storage/store.h"

#include <stddef.h>
#include <stdint.h>

/* Most events in one request. */
#define SRV_EVENTS_MAX 10000

/* A request's events: ev[0..n) in ONE allocation that also holds their id strings (free(ev)). */
typedef struct {
    sto_event_t *ev;
    size_t n;
} srv_event_batch_t;

/* Parses a request body, one event {"user", "item", "weight"?, "ts"?} or a JSON array of
 * 1..SRV_EVENTS_MAX of them, into *out and checks every event with sto_event_check. "ts" is unix
 * seconds or an ISO-8601 UTC time as eng_utc_parse reads it ("2026-12-01T10:00:00Z", a fraction
 * of a second allowed, or a date); an absent weight or ts is NAN (none given, the time of the
 * append). Returns 0, ENG_ENOMEM, or ENG_EINVAL with err's message saying what is
 * wrong, for an event with its index ("events[3]: ts must be ..."; "events[0]" for a single
 * object too). On failure out->ev is NULL and out->n counts the events the body holds (an array's
 * length, 1 for an object, 0 when it is not JSON). */
int srv_events_parse(const char *body, size_t len, srv_event_batch_t *out, eng_error_t *err);

typedef struct srv_intake_job srv_intake_job_t;
struct srv_intake_job {
    srv_event_batch_t batch; /* borrowed until done has run */
    int64_t first_seq;       /* set before done: the sequence number of batch.ev[0] */
    int failed;              /* the group's commit failed: nothing of the batch is in the log */
    const char *error;       /* when failed, why; valid during done only */
    void (*done)(srv_intake_job_t *job);
    srv_intake_job_t *next; /* queue link, owned by the intake */
};

typedef struct srv_intake srv_intake_t;

/* A new intake appending to the store at db_path (borrowed; must outlive the intake) with at most
 * max_queued events queued or committing, and its writer thread. NULL when out of memory or the
 * thread cannot start. */
srv_intake_t *srv_intake_new(const char *db_path, size_t max_queued);

/* Queues job (borrowed until its done callback has run, on the writer thread). Returns 0;
 * ENG_ERANGE when its events would take the queue over its bound; ENG_EINVAL once the intake is
 * stopping. On an error the job is not queued and done is not called. */
int srv_intake_submit(srv_intake_t *in, srv_intake_job_t *job);

/* Events queued or being committed, not yet answered. Any thread. */
size_t srv_intake_queued(srv_intake_t *in);

/* Commits and answers everything queued, stops the writer, closes its store handle and frees in
 * (NULL is fine). */
void srv_intake_free(srv_intake_t *in);

#endif
