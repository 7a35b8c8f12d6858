/* Event intake: request bodies into events, and the writer thread's group commit. */
#include "server/intake.h"
#include "engine/clock.h"
#include "server/internal.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- Parsing ---- */

/* A JSON string id into *id (borrowed from the document); else err says why. The document was
 * parsed without JSON_ALLOW_NUL, which refuses "\u0000": a string is a whole C string. */
static int read_id(const json_t *v, const char *name, const char **id, eng_error_t *err)
{
    if (!v)
        return eng_error_set(err, ENG_EINVAL, "%s is missing", name);
    if (!json_is_string(v))
        return eng_error_set(err, ENG_EINVAL, "%s must be a string", name);
    *id = json_string_value(v);
    return 0;
}

/* One event object into *e (ids borrowed from the document), checked; else err says why. */
static int read_event(const json_t *o, sto_event_t *e, eng_error_t *err)
{
    if (!json_is_object(o))
        return eng_error_set(err, ENG_EINVAL,
                             "an event must be an object {\"user\", \"item\", \"weight\"?, "
                             "\"ts\"?}");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        if (strcmp(key, "user") != 0 && strcmp(key, "item") != 0 && strcmp(key, "weight") != 0 &&
            strcmp(key, "ts") != 0)
            return eng_error_set(err, ENG_EINVAL,
                                 "unknown field \"%.64s\" (an event takes user, item, weight, ts)",
                                 key);
    }
    *e = (sto_event_t){.weight = NAN, .ts = NAN};
    if (read_id(json_object_get(o, "user"), "user", &e->user, err) < 0 ||
        read_id(json_object_get(o, "item"), "item", &e->item, err) < 0)
        return ENG_EINVAL;
    if ((v = json_object_get(o, "weight"))) {
        if (!json_is_number(v))
            return eng_error_set(err, ENG_EINVAL, "weight must be a number");
        e->weight = json_number_value(v);
    }
    if ((v = json_object_get(o, "ts"))) {
        if (json_is_number(v))
            e->ts = json_number_value(v);
        else if (!json_is_string(v) || eng_utc_parse(json_string_value(v), &e->ts) < 0)
            return eng_error_set(err, ENG_EINVAL,
                                 "ts must be unix seconds or an RFC 3339 UTC time such as "
                                 "\"2026-12-01T10:00:00Z\"");
    }
    return sto_event_check(e, err);
}

int srv_events_parse(const char *body, size_t len, srv_event_batch_t *out, eng_error_t *err)
{
    *out = (srv_event_batch_t){0};
    json_error_t jerr;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return eng_error_set(err, ENG_EINVAL, "malformed JSON at line %d column %d: %s", jerr.line,
                             jerr.column, jerr.text);
    /* Without JSON_DECODE_ANY, json_loadb returns an object or an array, nothing else. */
    const int array = json_is_array(doc);
    const size_t n = array ? json_array_size(doc) : 1;
    sto_event_t *ev = NULL;
    int rc = ENG_EINVAL;
    out->n = n;
    if (array && (n == 0 || n > SRV_EVENTS_MAX)) {
        eng_error_set(err, rc, "the body must be an array of 1..%d events, not %zu", SRV_EVENTS_MAX,
                      n);
        goto done;
    }
    if (!(ev = malloc(n * sizeof *ev))) {
        rc = eng_error_set(err, ENG_ENOMEM, "out of memory");
        goto done;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        eng_error_t why = {0};
        if (read_event(array ? json_array_get(doc, i) : doc, &ev[i], &why) < 0) {
            eng_error_set(err, rc, "events[%zu]: %s", i, why.msg);
            goto done;
        }
        bytes += strlen(ev[i].user) + strlen(ev[i].item) + 2;
    }
    /* The ids move behind the events, into the same block: the document is freed below, and the
     * batch is one allocation whoever frees it. */
    sto_event_t *block = realloc(ev, n * sizeof *ev + bytes);
    if (!block) {
        rc = eng_error_set(err, ENG_ENOMEM, "out of memory");
        goto done;
    }
    ev = block;
    char *p = (char *)(ev + n);
    for (size_t i = 0; i < n; i++) {
        const char **ids[2] = {&ev[i].user, &ev[i].item};
        for (int k = 0; k < 2; k++) {
            size_t l = strlen(*ids[k]) + 1;
            memcpy(p, *ids[k], l);
            *ids[k] = p;
            p += l;
        }
    }
    *out = (srv_event_batch_t){.ev = ev, .n = n};
    ev = NULL;
    rc = ENG_OK;
done:
    free(ev);
    json_decref(doc);
    return rc;
}

/* ---- The queue and the writer ---- */

struct srv_intake {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    srv_intake_job_t *head, *tail;
    size_t queued; /* events of the jobs queued or being committed */
    size_t max_queued;
    int stopping;
    pthread_t thread;
    int started;
    /* the writer thread's own */
    const char *db_path;
    sto_db_t *db;        /* read-write, opened on first use, closed after a failed commit */
    sto_event_t *all;    /* every event of a group, for the one append */
    size_t all_cap;      /* events */
    double last_log;     /* when a failed commit was last logged */
    unsigned long quiet; /* failed commits since, not logged */
};

/* Logs a failed commit, at most one line a second: a broken disk fails every commit, as fast as
 * clients retry, and the log must stay readable. */
static void log_failure(srv_intake_t *in, size_t n, const char *why)
{
    const double now = eng_now();
    if (in->last_log > 0 && now - in->last_log < 1.0) {
        in->quiet++;
        return;
    }
    if (in->quiet)
        srv_log("events: commit of %zu event(s) failed: %s (and %lu more failed commit(s))", n, why,
                in->quiet);
    else
        srv_log("events: commit of %zu event(s) failed: %s", n, why);
    in->last_log = now;
    in->quiet = 0;
}

/* Appends every event of the jobs in group with one sto_events_append, then answers each. */
static void commit(srv_intake_t *in, srv_intake_job_t *group)
{
    size_t n = 0;
    for (srv_intake_job_t *j = group; j; j = j->next)
        n += j->batch.n;
    eng_error_t err = {0};
    int rc = ENG_OK;
    int64_t first = 0;
    if (n > in->all_cap) {
        sto_event_t *a = realloc(in->all, n * sizeof *a);
        if (a) {
            in->all = a;
            in->all_cap = n;
        } else {
            rc = eng_error_set(&err, ENG_ENOMEM, "out of memory");
        }
    }
    if (rc == ENG_OK) {
        size_t k = 0;
        for (srv_intake_job_t *j = group; j; j = j->next) {
            memcpy(in->all + k, j->batch.ev, j->batch.n * sizeof *in->all);
            k += j->batch.n;
        }
        if (!in->db)
            rc = sto_open(in->db_path, STO_CREATE, &in->db, &err);
        if (rc == ENG_OK)
            rc = sto_events_append(in->db, in->all, n, &first, &err);
    }
    if (rc < 0) {
        log_failure(in, n, eng_error_text(&err, rc));
        /* Reopened for the next group: whatever went wrong (a store replaced, an I/O error),
         * a fresh connection is the one state known to be clean. */
        sto_close(in->db);
        in->db = NULL;
    }
    srv_metrics_event_commit(rc < 0, n);
    pthread_mutex_lock(&in->lock);
    in->queued -= n;
    pthread_mutex_unlock(&in->lock);
    /* A job may be freed as soon as its done has run (its request completes on an HTTP thread):
     * read its link first. */
    for (srv_intake_job_t *j = group, *next; j; j = next) {
        next = j->next;
        j->failed = rc < 0;
        j->error = rc < 0 ? eng_error_text(&err, rc) : NULL;
        j->first_seq = first;
        first += (int64_t)j->batch.n;
        j->done(j);
    }
}

static void *writer_main(void *arg)
{
    srv_intake_t *in = arg;
    for (;;) {
        pthread_mutex_lock(&in->lock);
        while (!in->head && !in->stopping)
            pthread_cond_wait(&in->ready, &in->lock);
        srv_intake_job_t *group = in->head;
        in->head = in->tail = NULL;
        pthread_mutex_unlock(&in->lock);
        if (!group) /* stopping, and everything queued is committed */
            return NULL;
        commit(in, group);
    }
}

srv_intake_t *srv_intake_new(const char *db_path, size_t max_queued)
{
    srv_intake_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    pthread_mutex_init(&in->lock, NULL);
    pthread_cond_init(&in->ready, NULL);
    in->db_path = db_path;
    /* A bound below one request's most would refuse such a request forever, not for a while. */
    in->max_queued = max_queued < SRV_EVENTS_MAX ? SRV_EVENTS_MAX : max_queued;
    if (pthread_create(&in->thread, NULL, writer_main, in) != 0) {
        srv_intake_free(in);
        return NULL;
    }
    in->started = 1;
    return in;
}

int srv_intake_submit(srv_intake_t *in, srv_intake_job_t *job)
{
    job->next = NULL;
    job->failed = 0;
    job->error = NULL;
    int rc = ENG_OK;
    pthread_mutex_lock(&in->lock);
    if (in->stopping) {
        rc = ENG_EINVAL;
    } else if (in->queued + job->batch.n > in->max_queued) {
        rc = ENG_ERANGE;
    } else {
        if (in->tail)
            in->tail->next = job;
        else
            in->head = job;
        in->tail = job;
        in->queued += job->batch.n;
        pthread_cond_signal(&in->ready);
    }
    pthread_mutex_unlock(&in->lock);
    return rc;
}

size_t srv_intake_queued(srv_intake_t *in)
{
    pthread_mutex_lock(&in->lock);
    size_t n = in->queued;
    pthread_mutex_unlock(&in->lock);
    return n;
}

void srv_intake_free(srv_intake_t *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->lock);
    in->stopping = 1;
    pthread_cond_signal(&in->ready);
    pthread_mutex_unlock(&in->lock);
    if (in->started)
        pthread_join(in->thread, NULL);
    sto_close(in->db);
    free(in->all);
    pthread_cond_destroy(&in->ready);
    pthread_mutex_destroy(&in->lock);
    free(in);
}
