/* The model store: the SQLite schema and its migrations, and publishing, listing and loading
 * whole model versions (see docs/store.md for the layout and the reasons behind it).
 *
 * Publish and load share one set of model checks (finite vectors, well-formed seen lists), so a
 * version that publish accepts is exactly one that load accepts; on publish a failed check is the
 * caller's mistake (ENG_EINVAL), on load it is damage to the store (ENG_ECORRUPT). */
#include "storage/store.h"
#include "storage/store_internal.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Vectors and seen lists are stored as raw host memory, which the format defines as little-endian.
 * A big-endian port would byte-swap in put_parts/read_part. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store's blobs are little-endian; this host needs byte swapping added"
#endif

/* A trainer publishing while the server loads waits on the other's lock at most this long. */
#define BUSY_TIMEOUT_MS 5000
#define NAME_MAX_LEN 64

static size_t chunk_bytes = STO_CHUNK_BYTES;

size_t sto_test_set_chunk_bytes(size_t n)
{
    size_t old = chunk_bytes;
    chunk_bytes = n ? n : STO_CHUNK_BYTES;
    return old;
}

struct sto_db {
    sqlite3 *db;
    char *path; /* for messages: every error names the store it came from */
};

/* migrations[v] upgrades a store from schema version v to v + 1; version 0 is the empty database,
 * so creating a store is just the first migration. A new schema version appends one entry here
 * and bumps STO_SCHEMA_VERSION; migrate() runs the steps and records the version. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE models("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  created TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK(status IN ('writing','ready')),"
    "  n_users INTEGER NOT NULL,"
    "  n_items INTEGER NOT NULL,"
    "  dim INTEGER NOT NULL,"
    "  params TEXT NOT NULL,"
    "  metrics TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  UNIQUE(name, version));"
    "CREATE TABLE blobs("
    "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  chunk INTEGER NOT NULL,"
    "  data BLOB,"
    "  PRIMARY KEY(model_id, key, chunk));",
};
_Static_assert(sizeof migrations / sizeof *migrations == STO_SCHEMA_VERSION,
               "one migration per schema version");

/* The columns read_info() expects, in its order. */
#define INFO_COLS "name, kind, created, version, n_users, n_items, dim, bytes, params, metrics"

/* ---- errors ---- */

/* Fills err from the connection's last SQLite error; what says which step failed. */
static int db_error(sto_db_t *s, eng_error_t *err, const char *what)
{
    int rc = sqlite3_extended_errcode(s->db);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return eng_error_set(err, ENG_ENOMEM, "%s: %s: out of memory", s->path, what);
    case SQLITE_NOTADB:
        return eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (%s)", s->path,
                             sqlite3_errmsg(s->db));
    case SQLITE_CORRUPT:
        return eng_error_set(err, ENG_ECORRUPT, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    }
    return eng_error_set(err, ENG_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(sto_db_t *s, const char *sql, const char *what, eng_error_t *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, what);
    return ENG_OK;
}

static int prepare(sto_db_t *s, const char *sql, sqlite3_stmt **st, eng_error_t *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(s, err, "prepare");
    return ENG_OK;
}

/* Ends a failed transaction, if one is open, so that nothing of it reaches the store. Called
 * after err is filled, because ROLLBACK replaces the connection's error message. */
static void rollback(sto_db_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- model checks shared by publish (ENG_EINVAL) and load (ENG_ECORRUPT) ---- */

/* rows * cols * elem in bytes, or -1 when that does not fit an int64_t. */
static int64_t bytes_of(int64_t rows, int64_t cols, int64_t elem)
{
    if (rows < 0 || cols < 0 || (cols && rows > INT64_MAX / elem / cols))
        return -1;
    return rows * cols * elem;
}

static int check_finite(const float *v, int32_t rows, int32_t dim, const char *key,
                        const char *label, int code, eng_error_t *err)
{
    size_t n = (size_t)rows * (size_t)dim;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return eng_error_set(err, code, "%s: %s row %zu has a non-finite value", label, key,
                                 i / (size_t)dim);
    return ENG_OK;
}

/* seen_ptr must start at 0 and never decrease; its last entry is the size of seen_idx. */
static int check_seen_ptr(const int64_t *ptr, int32_t n_users, const char *label, int code,
                          eng_error_t *err)
{
    if (ptr[0] != 0)
        return eng_error_set(err, code, "%s: seen_ptr[0] is %lld, expected 0", label,
                             (long long)ptr[0]);
    for (int32_t u = 0; u < n_users; u++)
        if (ptr[u + 1] < ptr[u])
            return eng_error_set(err, code, "%s: seen_ptr decreases at user %d (%lld > %lld)",
                                 label, (int)u, (long long)ptr[u], (long long)ptr[u + 1]);
    if (bytes_of(ptr[n_users], 1, sizeof(int32_t)) < 0)
        return eng_error_set(err, code, "%s: seen_ptr[%d] = %lld is too large", label, (int)n_users,
                             (long long)ptr[n_users]);
    return ENG_OK;
}

static int check_seen_idx(const int32_t *idx, int64_t n, int32_t n_items, const char *label,
                          int code, eng_error_t *err)
{
    for (int64_t k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= n_items)
            return eng_error_set(err, code, "%s: seen_idx[%lld] = %d is not an item index (0..%d)",
                                 label, (long long)k, (int)idx[k], (int)n_items - 1);
    return ENG_OK;
}

/* ---- open ---- */

/* The store's schema version into *v: 0 for an empty database (nothing created yet). Fails with
 * ENG_EDB when the database holds something other than a gnnrec store. */
static int schema_version(sto_db_t *s, int64_t *v, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = 'meta')"
                     " FROM sqlite_schema",
                     &st, err);
    if (rc < 0)
        goto fail;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_error(s, err, "reading the schema");
        goto fail;
    }
    int64_t objects = sqlite3_column_int64(st, 0), has_meta = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    *v = 0;
    if (objects == 0)
        return ENG_OK;
    if (!has_meta) {
        rc = eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (no meta table)", s->path);
        goto fail;
    }
    if ((rc = prepare(s, "SELECT value FROM meta WHERE key = 'schema_version'", &st, err)) < 0)
        goto fail;
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (no schema_version in meta)",
                           s->path);
        goto fail;
    }
    if (step != SQLITE_ROW) {
        rc = db_error(s, err, "reading schema_version");
        goto fail;
    }
    const char *text = (const char *)sqlite3_column_text(st, 0);
    char *end = NULL;
    if (!text || (*v = strtoll(text, &end, 10)) < 1 || end == text || *end != '\0')
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: schema_version '%s' is not a version", s->path,
                           text ? text : "NULL");
fail:
    sqlite3_finalize(st);
    return rc;
}

/* Upgrades the store from schema version `from` to STO_SCHEMA_VERSION. Runs inside the caller's
 * transaction, so a failed step leaves the store at `from`. */
static int migrate(sto_db_t *s, int64_t from, eng_error_t *err)
{
    for (int64_t v = from; v < STO_SCHEMA_VERSION; v++) {
        int rc = exec(s, migrations[v], "upgrading the schema", err);
        if (rc < 0)
            return rc;
    }
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d')",
             STO_SCHEMA_VERSION);
    return exec(s, sql, "recording the schema version", err);
}

/* The connection settings (see the header): WAL so readers never block the publisher, NORMAL
 * sync because a publish is one transaction and WAL keeps it atomic across a crash. */
static int configure(sto_db_t *s, int writable, eng_error_t *err)
{
    int rc = exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", "configuring", err);
    if (rc < 0 || !writable)
        return rc;
    sqlite3_stmt *st = NULL;
    if ((rc = prepare(s, "PRAGMA journal_mode = WAL", &st, err)) < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = db_error(s, err, "switching to WAL");
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = eng_error_set(err, ENG_EDB, "%s: cannot switch to WAL (journal mode stays %s)",
                           s->path, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

int sto_open(const char *path, int flags, sto_db_t **out, eng_error_t *err)
{
    *out = NULL;
    if (!path || (flags & ~(STO_READWRITE | STO_CREATE)))
        return eng_error_set(err, ENG_EINVAL, "sto_open: bad path or flags");
    int writable = (flags & (STO_READWRITE | STO_CREATE)) != 0;
    int oflags = writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (flags & STO_CREATE)
        oflags |= SQLITE_OPEN_CREATE;
    int rc = ENG_ENOMEM;
    int64_t v = 0;
    sto_db_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path)))
        goto fail;
    if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = s->db ? eng_error_set(err, ENG_EDB, "%s: cannot open: %s", path, sqlite3_errmsg(s->db))
                   : ENG_ENOMEM;
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if ((rc = configure(s, writable, err)) < 0 || (rc = schema_version(s, &v, err)) < 0)
        goto fail;
    if (v == 0 && !(flags & STO_CREATE)) {
        rc = eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (empty database)", path);
        goto fail;
    }
    if (v < STO_SCHEMA_VERSION) {
        if (!writable) {
            rc = eng_error_set(err, ENG_EDB,
                               "%s: schema version %lld needs upgrading to %d; "
                               "open the store read-write once",
                               path, (long long)v, STO_SCHEMA_VERSION);
            goto fail;
        }
        /* Re-read under the write lock: another process may have created or upgraded the store
         * since we looked. */
        if ((rc = exec(s, "BEGIN IMMEDIATE", "locking for the upgrade", err)) < 0 ||
            (rc = schema_version(s, &v, err)) < 0 ||
            (v < STO_SCHEMA_VERSION && (rc = migrate(s, v, err)) < 0) ||
            (rc = exec(s, "COMMIT", "committing the upgrade", err)) < 0)
            goto fail;
    }
    if (v > STO_SCHEMA_VERSION) {
        rc = eng_error_set(err, ENG_ECORRUPT,
                           "%s: schema_version %lld is newer than this build's %d", path,
                           (long long)v, STO_SCHEMA_VERSION);
        goto fail;
    }
    *out = s;
    return ENG_OK;
fail:
    if (rc == ENG_ENOMEM)
        eng_error_set(err, rc, "%s: out of memory opening the store", path);
    if (s && s->db)
        rollback(s);
    sto_close(s);
    return rc;
}

void sto_close(sto_db_t *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* ---- publish ---- */

/* One blob of a version: its key and its bytes. */
typedef struct {
    const char *key;
    const void *data;
    size_t len;
} part_t;

enum { N_PARTS = 6 };

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Is text a JSON object? Asks SQLite's JSON functions, so the store needs no JSON library. */
static int json_object_ok(sto_db_t *s, const char *text, int *ok, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_error(s, err, "checking JSON");
    } else {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        *ok = type && strcmp(type, "object") == 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Checks m and, when it is publishable, describes its blobs in parts. */
static int check_model_in(sto_db_t *s, const sto_model_in_t *m, part_t parts[N_PARTS],
                          eng_error_t *err)
{
    if (!m || !name_ok(m->name))
        return eng_error_set(err, ENG_EINVAL, "publish: model name must match [A-Za-z0-9_.-]{1,%d}",
                             NAME_MAX_LEN);
    char label[128];
    snprintf(label, sizeof label, "publish %s", m->name);
    if (!name_ok(m->kind))
        return eng_error_set(err, ENG_EINVAL, "%s: kind must match [A-Za-z0-9_.-]{1,%d}", label,
                             NAME_MAX_LEN);
    if (m->n_users <= 0 || m->n_items <= 0 || m->dim <= 0)
        return eng_error_set(err, ENG_EINVAL, "%s: n_users %d, n_items %d, dim %d must be > 0",
                             label, (int)m->n_users, (int)m->n_items, (int)m->dim);
    int64_t uv = bytes_of(m->n_users, m->dim, sizeof(float));
    int64_t iv = bytes_of(m->n_items, m->dim, sizeof(float));
    if (uv < 0 || iv < 0)
        return eng_error_set(err, ENG_EINVAL, "%s: vectors too large", label);
    if (!m->users || !m->items || eng_idmap_size(m->users) != m->n_users ||
        eng_idmap_size(m->items) != m->n_items)
        return eng_error_set(err, ENG_EINVAL, "%s: id maps must hold n_users %d and n_items %d ids",
                             label, (int)m->n_users, (int)m->n_items);
    if (!m->user_vecs || !m->item_vecs || !m->seen_ptr)
        return eng_error_set(err, ENG_EINVAL, "%s: vectors and seen_ptr are required", label);
    int rc;
    if ((rc = check_finite(m->user_vecs, m->n_users, m->dim, "user_vecs", label, ENG_EINVAL, err)) <
            0 ||
        (rc = check_finite(m->item_vecs, m->n_items, m->dim, "item_vecs", label, ENG_EINVAL, err)) <
            0 ||
        (rc = check_seen_ptr(m->seen_ptr, m->n_users, label, ENG_EINVAL, err)) < 0)
        return rc;
    int64_t n_seen = m->seen_ptr[m->n_users];
    if (n_seen > 0 && !m->seen_idx)
        return eng_error_set(err, ENG_EINVAL, "%s: seen_idx is required", label);
    if ((rc = check_seen_idx(m->seen_idx, n_seen, m->n_items, label, ENG_EINVAL, err)) < 0)
        return rc;
    const char *json[2] = {m->params_json, m->metrics_json};
    for (int j = 0; j < 2; j++) {
        int ok = 0;
        if (json[j] && (rc = json_object_ok(s, json[j], &ok, err)) < 0)
            return rc;
        if (!ok)
            return eng_error_set(err, ENG_EINVAL, "%s: %s is not a JSON object", label,
                                 j ? "metrics" : "params");
    }
    size_t len;
    parts[0] = (part_t){"user_ids", eng_idmap_blob(m->users, &len), len};
    parts[1] = (part_t){"item_ids", eng_idmap_blob(m->items, &len), len};
    parts[2] = (part_t){"user_vecs", m->user_vecs, (size_t)uv};
    parts[3] = (part_t){"item_vecs", m->item_vecs, (size_t)iv};
    parts[4] = (part_t){"seen_ptr", m->seen_ptr, ((size_t)m->n_users + 1) * sizeof(int64_t)};
    parts[5] = (part_t){"seen_idx", m->seen_idx, (size_t)n_seen * sizeof(int32_t)};
    return ENG_OK;
}

/* Inserts every part as rows (model_id, key, chunk 0..k-1, data) of at most chunk_bytes each. An
 * empty part still gets its chunk 0, so that load can tell "empty" from "missing". */
static int put_parts(sto_db_t *s, int64_t id, const part_t parts[N_PARTS], eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "INSERT INTO blobs(model_id, key, chunk, data) VALUES(?1, ?2, ?3, ?4)", &st,
                     err);
    for (int p = 0; rc == ENG_OK && p < N_PARTS; p++) {
        size_t off = 0;
        for (int64_t chunk = 0; rc == ENG_OK && (chunk == 0 || off < parts[p].len); chunk++) {
            size_t n = parts[p].len - off < chunk_bytes ? parts[p].len - off : chunk_bytes;
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_text(st, 2, parts[p].key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, chunk);
            if (n) /* binding a NULL pointer would store SQL NULL, not an empty blob */
                sqlite3_bind_blob64(st, 4, (const char *)parts[p].data + off, n, SQLITE_STATIC);
            else
                sqlite3_bind_zeroblob(st, 4, 0);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = db_error(s, err, "writing blobs");
            sqlite3_reset(st);
            off += n;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int sto_publish(sto_db_t *s, const sto_model_in_t *m, int64_t *version, eng_error_t *err)
{
    part_t parts[N_PARTS];
    int rc = check_model_in(s, m, parts, err);
    if (rc < 0)
        return rc;
    int64_t bytes = 0;
    for (int p = 0; p < N_PARTS; p++)
        bytes += (int64_t)parts[p].len;

    sqlite3_stmt *st = NULL;
    int64_t id = 0, v = 0;
    /* IMMEDIATE takes the write lock now, so two publishers of one name cannot both compute the
     * same next version; the row is 'writing' until every blob is in. */
    if ((rc = exec(s, "BEGIN IMMEDIATE", "starting publish", err)) < 0 ||
        (rc = prepare(s,
                      "INSERT INTO models(name, version, kind, created, status, n_users, n_items,"
                      " dim, params, metrics, bytes)"
                      " SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2,"
                      " strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 'writing', ?3, ?4, ?5, ?6, ?7, ?8"
                      " FROM models WHERE name = ?1 RETURNING id, version",
                      &st, err)) < 0)
        goto fail;
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, m->n_users);
    sqlite3_bind_int(st, 4, m->n_items);
    sqlite3_bind_int(st, 5, m->dim);
    sqlite3_bind_text(st, 6, m->params_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, m->metrics_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, bytes);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_error(s, err, "inserting the model row");
        goto fail;
    }
    id = sqlite3_column_int64(st, 0);
    v = sqlite3_column_int64(st, 1);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_error(s, err, "inserting the model row");
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = put_parts(s, id, parts, err)) < 0)
        goto fail;
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE models SET status = 'ready' WHERE id = %lld", (long long)id);
    if ((rc = exec(s, sql, "marking the version ready", err)) < 0 ||
        (rc = exec(s, "COMMIT", "committing publish", err)) < 0)
        goto fail;
    if (version)
        *version = v;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    rollback(s);
    return rc;
}

/* ---- list ---- */

static char *dup_column(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return strdup(t ? t : "");
}

static void info_clear(sto_version_info_t *v)
{
    free(v->name);
    free(v->kind);
    free(v->created);
    free(v->params_json);
    free(v->metrics_json);
}

/* Fills v from a row whose first columns are INFO_COLS. On failure (ENG_ENOMEM) v owns what was
 * copied so far; info_clear frees it. */
static int read_info(sqlite3_stmt *st, sto_version_info_t *v)
{
    v->name = dup_column(st, 0);
    v->kind = dup_column(st, 1);
    v->created = dup_column(st, 2);
    v->version = sqlite3_column_int64(st, 3);
    v->n_users = sqlite3_column_int(st, 4);
    v->n_items = sqlite3_column_int(st, 5);
    v->dim = sqlite3_column_int(st, 6);
    v->bytes = sqlite3_column_int64(st, 7);
    v->params_json = dup_column(st, 8);
    v->metrics_json = dup_column(st, 9);
    if (!v->name || !v->kind || !v->created || !v->params_json || !v->metrics_json)
        return ENG_ENOMEM;
    return ENG_OK;
}

int sto_list(sto_db_t *s, const char *name, sto_version_info_t **out, size_t *n, eng_error_t *err)
{
    *out = NULL;
    *n = 0;
    sto_version_info_t *v = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    int rc = prepare(s,
                     "SELECT " INFO_COLS " FROM models WHERE status = 'ready'"
                     " AND (?1 IS NULL OR name = ?1) ORDER BY name, version",
                     &st, err);
    if (rc < 0)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t c = cap ? cap * 2 : 16;
            sto_version_info_t *w = realloc(v, c * sizeof *w);
            if (!w) {
                rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory listing", s->path);
                goto fail;
            }
            v = w;
            cap = c;
        }
        memset(&v[cnt], 0, sizeof v[cnt]);
        rc = read_info(st, &v[cnt++]);
        if (rc < 0) {
            eng_error_set(err, rc, "%s: out of memory listing", s->path);
            goto fail;
        }
    }
    if (step != SQLITE_DONE) {
        rc = db_error(s, err, "listing");
        goto fail;
    }
    sqlite3_finalize(st);
    *out = v;
    *n = cnt;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    sto_list_free(v, cnt);
    return rc;
}

void sto_list_free(sto_version_info_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        info_clear(&v[i]);
    free(v);
}

/* ---- load ---- */

/* Reads blob `key` of model row id into a new buffer *out of *len bytes. Checks that its chunks
 * are numbered 0..k-1 with none missing and, when want >= 0, that they total exactly want bytes,
 * before allocating anything: a damaged row cannot make us allocate a huge buffer. */
static int read_part(sto_db_t *s, const char *label, int64_t id, const char *key, int64_t want,
                     void **out, size_t *len, eng_error_t *err)
{
    *out = NULL;
    *len = 0;
    sqlite3_stmt *st = NULL;
    char *buf = NULL;
    int64_t total = 0, k = 0;
    /* length() and typeof() of a blob are answered from the record header without reading the
     * data, so this first pass is cheap. */
    int rc = prepare(s,
                     "SELECT chunk, typeof(data), length(data) FROM blobs"
                     " WHERE model_id = ?1 AND key = ?2 ORDER BY chunk",
                     &st, err);
    if (rc < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int step;
    for (; (step = sqlite3_step(st)) == SQLITE_ROW; k++) {
        int64_t chunk = sqlite3_column_int64(st, 0);
        if (chunk != k) {
            rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s chunk %lld missing (found chunk %lld)",
                               label, key, (long long)k, (long long)chunk);
            goto fail;
        }
        if (strcmp((const char *)sqlite3_column_text(st, 1), "blob") != 0) {
            rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s chunk %lld is %s, not a blob", label, key,
                               (long long)k, sqlite3_column_text(st, 1));
            goto fail;
        }
        total += sqlite3_column_int64(st, 2);
    }
    if (step != SQLITE_DONE) {
        rc = db_error(s, err, "reading blob sizes");
        goto fail;
    }
    if (k == 0) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s missing", label, key);
        goto fail;
    }
    if (want >= 0 && total != want) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s has %lld bytes, expected %lld", label, key,
                           (long long)total, (long long)want);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((uint64_t)total > SIZE_MAX - 1 || !(buf = malloc((size_t)total + 1))) {
        rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory for %s (%lld bytes)", label, key,
                           (long long)total);
        goto fail;
    }
    if ((rc = prepare(s, "SELECT data FROM blobs WHERE model_id = ?1 AND key = ?2 ORDER BY chunk",
                      &st, err)) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    size_t off = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n > (size_t)total - off) /* the same snapshot as pass 1, so only a bug gets here */
            break;
        if (n)
            memcpy(buf + off, data, n);
        off += n;
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        rc = db_error(s, err, "reading blobs");
        goto fail;
    }
    if (off != (size_t)total) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s changed while being read", label, key);
        goto fail;
    }
    sqlite3_finalize(st);
    *out = buf;
    *len = (size_t)total;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    free(buf);
    return rc;
}

/* Reads an id map blob and rebuilds the map, which must hold exactly n distinct ids. */
static int read_idmap(sto_db_t *s, const char *label, int64_t id, const char *key, int32_t n,
                      eng_idmap_t **out, eng_error_t *err)
{
    void *buf;
    size_t len;
    int rc = read_part(s, label, id, key, -1, &buf, &len, err);
    if (rc < 0)
        return rc;
    *out = eng_idmap_from_blob(buf, len, n);
    free(buf);
    if (!*out)
        return eng_error_set(err, ENG_ECORRUPT,
                             "%s: %s is not %d distinct non-empty NUL-terminated ids", label, key,
                             (int)n);
    return ENG_OK;
}

/* The ready version (version 0: the newest) of name; its id comes after INFO_COLS. */
static const char *const find_sql =
    "SELECT " INFO_COLS ", id FROM models WHERE name = ?1 AND status = 'ready'"
    " AND (?2 = 0 OR version = ?2) ORDER BY version DESC LIMIT 1";

int sto_load(sto_db_t *s, const char *name, int64_t version, sto_model_t **out, eng_error_t *err)
{
    *out = NULL;
    if (!name || version < 0)
        return eng_error_set(err, ENG_EINVAL, "%s: load: bad model name or version", s->path);
    sqlite3_stmt *st = NULL;
    size_t len;
    int rc = ENG_ENOMEM;
    sto_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        eng_error_set(err, rc, "%s: out of memory loading %s", s->path, name);
        goto fail;
    }
    /* One read transaction: the row and all its blobs come from one snapshot of the store. */
    if ((rc = exec(s, "BEGIN", "starting load", err)) < 0 ||
        (rc = prepare(s, find_sql, &st, err)) < 0)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = version ? eng_error_set(err, ENG_ENOTFOUND, "%s: model %s v%lld not found", s->path,
                                     name, (long long)version)
                     : eng_error_set(err, ENG_ENOTFOUND, "%s: model %s not found", s->path, name);
        goto fail;
    }
    if (step != SQLITE_ROW) {
        rc = db_error(s, err, "finding the model");
        goto fail;
    }
    int64_t id = sqlite3_column_int64(st, 10);
    int64_t dims[3] = {sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5),
                       sqlite3_column_int64(st, 6)};
    if ((rc = read_info(st, &m->info)) < 0) {
        eng_error_set(err, rc, "%s: out of memory loading %s", s->path, name);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;

    const sto_version_info_t *in = &m->info;
    char label[512];
    snprintf(label, sizeof label, "%s: model %s v%lld", s->path, name, (long long)in->version);
    for (int d = 0; d < 3; d++)
        if (dims[d] < 1 || dims[d] > INT32_MAX) {
            rc = eng_error_set(err, ENG_ECORRUPT,
                               "%s: bad dimensions: n_users %lld, n_items %lld, dim %lld", label,
                               (long long)dims[0], (long long)dims[1], (long long)dims[2]);
            goto fail;
        }
    if ((rc = read_idmap(s, label, id, "user_ids", in->n_users, &m->users, err)) < 0 ||
        (rc = read_idmap(s, label, id, "item_ids", in->n_items, &m->items, err)) < 0 ||
        (rc = read_part(s, label, id, "user_vecs", bytes_of(in->n_users, in->dim, sizeof(float)),
                        (void **)&m->user_vecs, &len, err)) < 0 ||
        (rc = read_part(s, label, id, "item_vecs", bytes_of(in->n_items, in->dim, sizeof(float)),
                        (void **)&m->item_vecs, &len, err)) < 0 ||
        (rc = read_part(s, label, id, "seen_ptr", bytes_of(in->n_users + 1, 1, sizeof(int64_t)),
                        (void **)&m->seen_ptr, &len, err)) < 0 ||
        (rc = check_seen_ptr(m->seen_ptr, in->n_users, label, ENG_ECORRUPT, err)) < 0 ||
        (rc = read_part(s, label, id, "seen_idx",
                        bytes_of(m->seen_ptr[in->n_users], 1, sizeof(int32_t)),
                        (void **)&m->seen_idx, &len, err)) < 0 ||
        (rc = check_seen_idx(m->seen_idx, m->seen_ptr[in->n_users], in->n_items, label,
                             ENG_ECORRUPT, err)) < 0 ||
        (rc = check_finite(m->user_vecs, in->n_users, in->dim, "user_vecs", label, ENG_ECORRUPT,
                           err)) < 0 ||
        (rc = check_finite(m->item_vecs, in->n_items, in->dim, "item_vecs", label, ENG_ECORRUPT,
                           err)) < 0 ||
        (rc = exec(s, "COMMIT", "ending load", err)) < 0)
        goto fail;
    *out = m;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    rollback(s);
    sto_model_free(m);
    return rc;
}

void sto_model_free(sto_model_t *m)
{
    if (!m)
        return;
    info_clear(&m->info);
    eng_idmap_free(m->users);
    eng_idmap_free(m->items);
    free(m->user_vecs);
    free(m->item_vecs);
    free(m->seen_ptr);
    free(m->seen_idx);
    free(m);
}

/* ---- change detection ---- */

int sto_data_version(sto_db_t *s, int64_t *out, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, "PRAGMA data_version", &st, err);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = db_error(s, err, "reading data_version");
    sqlite3_finalize(st);
    return rc;
}
