/* Which version of a model is served, and removing old ones: pins, rollback, delete, gc.
 *
 * The live version of a name is the one pinned in `pins` (when it is ready), else its newest
 * ready one (STO__LIVE_SQL). Servers poll the store's data_version, so a pin or a rollback
 * reaches them through the same hot reload as a publish. Deleting goes through the models row:
 * its blobs and manifest rows follow by ON DELETE CASCADE. */
#include "storage/store_internal.h"

#include <stdio.h>

/* sql prepared into *st with name bound to ?1 and version to ?2. */
static int prepare_nv(sto_db_t *s, const char *sql, const char *name, int64_t version,
                      sqlite3_stmt **st, eng_error_t *err)
{
    int rc = sto__prepare(s, sql, st, err);
    if (rc == 0) {
        sqlite3_bind_text(*st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(*st, 2, version);
    }
    return rc;
}

/* Runs one statement that takes the bind values name (?1) and version (?2) and returns no rows;
 * *changes gets the rows it changed. */
static int run(sto_db_t *s, const char *sql, const char *name, int64_t version, const char *what,
               int64_t *changes, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare_nv(s, sql, name, version, &st, err);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sto__db_error(s, err, what);
    else if (changes)
        *changes = sqlite3_changes64(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* One integer from a query binding name (?1) and version (?2); *found is 0 when it returns no
 * row or NULL. */
static int query_int(sto_db_t *s, const char *sql, const char *name, int64_t version, int64_t *out,
                     int *found, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare_nv(s, sql, name, version, &st, err);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(st);
    *found = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    *out = *found ? sqlite3_column_int64(st, 0) : 0;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sto__db_error(s, err, "reading versions");
    sqlite3_finalize(st);
    return rc;
}

int sto_live(sto_db_t *s, const char *name, int64_t *version, eng_error_t *err)
{
    int found;
    return query_int(s, "SELECT " STO__LIVE_SQL("?1"), name, 0, version, &found, err);
}

static int is_ready(sto_db_t *s, const char *name, int64_t version, int *ready, eng_error_t *err)
{
    int64_t one;
    return query_int(s,
                     "SELECT 1 FROM models WHERE name = ?1 AND version = ?2 AND status = 'ready'",
                     name, version, &one, ready, err);
}

/* Pins name to version inside the caller's write transaction, checking it is ready. */
static int pin_in(sto_db_t *s, const char *name, int64_t version, eng_error_t *err)
{
    int ready;
    int rc = is_ready(s, name, version, &ready, err);
    if (rc < 0)
        return rc;
    if (!ready)
        return eng_error_set(err, ENG_ENOTFOUND, "%s: model %s v%lld not found", s->path, name,
                             (long long)version);
    return run(s, "INSERT OR REPLACE INTO pins(name, version) VALUES(?1, ?2)", name, version,
               "pinning", NULL, err);
}

/* Ends the write transaction a caller began (BEGIN IMMEDIATE; rc its outcome so far): committed
 * when rc is 0, else rolled back. Returns the outcome. */
static int finish(sto_db_t *s, int rc, eng_error_t *err)
{
    if (rc == 0)
        rc = sto__exec(s, "COMMIT", "committing", err);
    if (rc < 0)
        sto__rollback(s);
    return rc;
}

static int begin(sto_db_t *s, eng_error_t *err)
{
    return sto__exec(s, "BEGIN IMMEDIATE", "starting", err);
}

int sto_pin(sto_db_t *s, const char *name, int64_t version, eng_error_t *err)
{
    int rc = begin(s, err);
    return finish(s, rc < 0 ? rc : pin_in(s, name, version, err), err);
}

int sto_unpin(sto_db_t *s, const char *name, eng_error_t *err)
{
    return run(s, "DELETE FROM pins WHERE name = ?1", name, 0, "unpinning", NULL, err);
}

static int rollback_in(sto_db_t *s, const char *name, int64_t *version, eng_error_t *err)
{
    int64_t live, prev;
    int found;
    int rc = sto_live(s, name, &live, err);
    if (rc < 0)
        return rc;
    if (live == 0)
        return eng_error_set(err, ENG_ENOTFOUND, "%s: model %s not found", s->path, name);
    if ((rc = query_int(s,
                        "SELECT MAX(version) FROM models WHERE name = ?1 AND status = 'ready'"
                        " AND version < ?2",
                        name, live, &prev, &found, err)) < 0)
        return rc;
    if (!found)
        return eng_error_set(err, ENG_ENOTFOUND,
                             "%s: model %s has no ready version older than the live v%lld", s->path,
                             name, (long long)live);
    *version = prev;
    return pin_in(s, name, prev, err);
}

int sto_rollback(sto_db_t *s, const char *name, int64_t *version, eng_error_t *err)
{
    int rc = begin(s, err);
    return finish(s, rc < 0 ? rc : rollback_in(s, name, version, err), err);
}

/* A pinned version is live (a pin only ever names a ready version), so refusing the live one
 * refuses it too. */
static int delete_in(sto_db_t *s, const char *name, int64_t version, eng_error_t *err)
{
    int64_t live, n;
    int rc = sto_live(s, name, &live, err);
    if (rc < 0)
        return rc;
    if (version == live)
        return eng_error_set(err, ENG_EINVAL,
                             "%s: model %s v%lld is the live version: publish, pin or roll back "
                             "to another first",
                             s->path, name, (long long)version);
    if ((rc = run(s, "DELETE FROM models WHERE name = ?1 AND version = ?2", name, version,
                  "deleting", &n, err)) < 0)
        return rc;
    if (n == 0)
        return eng_error_set(err, ENG_ENOTFOUND, "%s: model %s v%lld not found", s->path, name,
                             (long long)version);
    return ENG_OK;
}

int sto_delete(sto_db_t *s, const char *name, int64_t version, eng_error_t *err)
{
    int rc = begin(s, err);
    return finish(s, rc < 0 ? rc : delete_in(s, name, version, err), err);
}

static int gc_in(sto_db_t *s, const char *name, int keep, int64_t *deleted, eng_error_t *err)
{
    /* A version goes when `keep` newer ready versions of its name exist and it is not live (a
     * pinned version is live). */
    return run(s,
               "DELETE FROM models WHERE status = 'ready' AND (?1 IS NULL OR name = ?1)"
               " AND (SELECT count(*) FROM models n WHERE n.name = models.name"
               "      AND n.status = 'ready' AND n.version > models.version) >= ?2"
               " AND models.version IS NOT " STO__LIVE_SQL(
                   "models.name") " AND NOT EXISTS(SELECT 1 FROM pins p WHERE p.name = models.name"
                                  "      AND p.version = models.version)",
               name, keep, "collecting old versions", deleted, err);
}

int sto_gc(sto_db_t *s, const char *name, int keep, int64_t *deleted, eng_error_t *err)
{
    *deleted = 0;
    if (keep < 1)
        return eng_error_set(err, ENG_EINVAL, "%s: gc: keep %d: at least 1 version stays", s->path,
                             keep);
    int rc = begin(s, err);
    return finish(s, rc < 0 ? rc : gc_in(s, name, keep, deleted, err), err);
}
