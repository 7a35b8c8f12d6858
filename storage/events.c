/* The interaction log: events appended by the server's intake and `gnnrec import`, read back by
 * retrains (`gnnrec train --from-log`). One table, `events(seq, user, item, weight, ts)`; an
 * append is one transaction, synced like every commit of the store (synchronous = FULL), so an
 * event whose append returned is on disk. */
#include "engine/clock.h"
#include "storage/store_internal.h"

#include <math.h>
#include <string.h>

/* 9999-12-31T23:59:59Z: a later time is a unit mistake (milliseconds), not a date. */
#define TS_MAX 253402300799.0

static int check_id(const char *id, const char *what, eng_error_t *err)
{
    if (!id || !*id)
        return eng_error_set(err, ENG_EINVAL, "empty %s id", what);
    size_t n = strlen(id);
    if (n > STO_EVENT_ID_MAX)
        return eng_error_set(err, ENG_EINVAL, "%s id longer than %d bytes", what, STO_EVENT_ID_MAX);
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)id[k] < 0x20 || id[k] == 0x7f)
            return eng_error_set(err, ENG_EINVAL, "%s id has a control character", what);
    return ENG_OK;
}

int sto_event_check(const sto_event_t *e, eng_error_t *err)
{
    int rc;
    if ((rc = check_id(e->user, "user", err)) < 0 || (rc = check_id(e->item, "item", err)) < 0)
        return rc;
    if (!isnan(e->weight) && !isfinite(e->weight))
        return eng_error_set(err, ENG_EINVAL, "weight is not finite");
    if (!isnan(e->ts) && !(e->ts >= 0 && e->ts <= TS_MAX))
        return eng_error_set(err, ENG_EINVAL,
                             "ts %g is not a time in unix seconds (0 to the year 9999)", e->ts);
    return ENG_OK;
}

int sto_events_append(sto_db_t *s, const sto_event_t *ev, size_t n, int64_t *first_seq,
                      eng_error_t *err)
{
    for (size_t k = 0; k < n; k++) {
        eng_error_t why = {0};
        if (sto_event_check(&ev[k], &why) < 0)
            return eng_error_set(err, ENG_EINVAL, "event %zu: %s", k, why.msg);
    }
    if (n == 0) {
        if (first_seq)
            *first_seq = 0;
        return ENG_OK;
    }
    const double now = eng_unix_now();
    sqlite3_stmt *st = NULL;
    int64_t first = 0;
    int rc;
    if ((rc = sto__exec(s, "BEGIN IMMEDIATE", "starting an append", err)) < 0 ||
        (rc = sto__prepare(s, "INSERT INTO events(user, item, weight, ts) VALUES(?1, ?2, ?3, ?4)",
                           &st, err)) < 0)
        goto fail;
    for (size_t k = 0; k < n; k++) {
        sqlite3_bind_text(st, 1, ev[k].user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ev[k].item, -1, SQLITE_STATIC);
        if (isnan(ev[k].weight))
            sqlite3_bind_null(st, 3);
        else
            sqlite3_bind_double(st, 3, ev[k].weight);
        sqlite3_bind_double(st, 4, isnan(ev[k].ts) ? now : ev[k].ts);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sto__db_error(s, err, "appending events");
            goto fail;
        }
        if (k == 0)
            first = sqlite3_last_insert_rowid(s->db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = sto__exec(s, "COMMIT", "committing events", err)) < 0)
        goto fail;
    if (first_seq)
        *first_seq = first;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    sto__rollback(s);
    return rc;
}

int sto_events_scan(sto_db_t *s, double since, sto_event_fn *fn, void *ctx, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;
    /* One read transaction: events appended while the scan runs are not half seen. */
    if ((rc = sto__exec(s, "BEGIN", "starting a scan", err)) < 0 ||
        (rc = sto__prepare(s,
                           "SELECT seq, user, item, weight, ts FROM events"
                           " WHERE ?1 IS NULL OR ts >= ?1 ORDER BY seq",
                           &st, err)) < 0)
        goto done;
    if (isfinite(since))
        sqlite3_bind_double(st, 1, since);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const sto_event_t e = {
            (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2),
            sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3),
            sqlite3_column_double(st, 4),
        };
        if (!e.user || !e.item) {
            rc = eng_error_set(err, ENG_ECORRUPT, "%s: event %lld has no user or item", s->path,
                               (long long)sqlite3_column_int64(st, 0));
            goto done;
        }
        if ((rc = fn(ctx, sqlite3_column_int64(st, 0), &e, err)) < 0)
            goto done;
    }
    if (step != SQLITE_DONE)
        rc = sto__db_error(s, err, "reading events");
done:
    sqlite3_finalize(st);
    if (rc == 0)
        rc = sto__exec(s, "COMMIT", "ending a scan", err);
    sto__rollback(s);
    return rc;
}

int sto_events_count(sto_db_t *s, int64_t *count, int64_t *last_seq, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sto__prepare(s, "SELECT count(*), COALESCE(MAX(seq), 0) FROM events", &st, err);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        *last_seq = sqlite3_column_int64(st, 1);
    } else {
        rc = sto__db_error(s, err, "counting events");
    }
    sqlite3_finalize(st);
    return rc;
}
