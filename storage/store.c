/* The model store: the SQLite schema and its migrations, and publishing, listing and loading
 * whole model versions with their named tensors (see docs/store.md for the layout and the reasons
 * behind it).
 *
 * Every blob of a version has a manifest row (dtype, shape, bytes), and every read is checked
 * against it before anything is allocated. Publish and load share one set of checks (tensor
 * names and shapes, finite vectors, well-formed seen lists), so a version that publish accepts is
 * exactly one that load accepts; on publish a failed check is the caller's mistake (ENG_EINVAL),
 * on load it is damage to the store (ENG_ECORRUPT). */
#include "storage/store.h"
#include "storage/store_internal.h"

#include <assert.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Vectors, seen lists and tensors are stored as raw host memory, which the format defines as
 * little-endian. A big-endian port would byte-swap in put_part/read_part. */
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

/* The manifest's element types: the public ones at their sto_dtype_t values, then 'str', the id
 * maps' NUL-terminated ids, whose shape counts ids rather than bytes. Entry 0 is no type. */
enum { DT_STR = STO_U8 + 1, DT_COUNT };
static const struct {
    const char *name;
    size_t size;
} dtypes[DT_COUNT] = {
    [STO_F32] = {"f32", 4}, [STO_I32] = {"i32", 4}, [STO_I64] = {"i64", 8},
    [STO_U8] = {"u8", 1},   [DT_STR] = {"str", 1},
};

/* The six parts every version has, in load order: blob key (= manifest name) and dtype.
 * core_part() gives the shape the models row implies for each. */
#define CORE_PARTS(X)                                                                              \
    X(USER_IDS, "user_ids", DT_STR)                                                                \
    X(ITEM_IDS, "item_ids", DT_STR)                                                                \
    X(USER_VECS, "user_vecs", STO_F32)                                                             \
    X(ITEM_VECS, "item_vecs", STO_F32)                                                             \
    X(SEEN_PTR, "seen_ptr", STO_I64)                                                               \
    X(SEEN_IDX, "seen_idx", STO_I32)

#define CORE_ENUM(e, key, dtype) P_##e,
enum { CORE_PARTS(CORE_ENUM) N_PARTS };
#undef CORE_ENUM
/* Migration 1 -> 2 writes the manifest of exactly these six parts for older versions. */
_Static_assert(N_PARTS == 6, "a new core part needs a migration that fills in its manifest rows");

static const struct {
    const char *key;
    int dtype;
} core[N_PARTS] = {
#define CORE_ROW(e, key, dtype) {key, dtype},
    CORE_PARTS(CORE_ROW)
#undef CORE_ROW
};

/* The core keys as SQL, for `name NOT IN (CORE_KEYS_SQL)`; the closing '' is no tensor's name. */
#define CORE_KEY_SQL(e, key, dtype) "'" key "', "
#define CORE_KEYS_SQL CORE_PARTS(CORE_KEY_SQL) "''"

/* migrations[v] upgrades a store from schema version v to v + 1; version 0 is the empty database,
 * so creating a store is just the first migration. A new schema version appends one entry here
 * and bumps STO_SCHEMA_VERSION; migrate() runs the steps and records the version. An entry is
 * history: once released it never changes, even when the code around it does. */
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
    /* 1 -> 2: the manifest, a row per blob. The versions already there get rows for the core
     * parts they have: shapes from the models row (seen_idx's from its length), bytes from the
     * blobs as they are, so that a damaged blob is still found on load rather than hidden. */
    "CREATE TABLE tensors("
    "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  dtype TEXT NOT NULL,"
    "  shape TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  PRIMARY KEY(model_id, name));"
    "INSERT INTO tensors(model_id, name, dtype, shape, bytes)"
    " SELECT b.model_id, b.key,"
    "  CASE b.key WHEN 'user_ids' THEN 'str' WHEN 'item_ids' THEN 'str'"
    "   WHEN 'seen_ptr' THEN 'i64' WHEN 'seen_idx' THEN 'i32' ELSE 'f32' END,"
    "  CASE b.key WHEN 'user_ids' THEN '[' || m.n_users || ']'"
    "   WHEN 'item_ids' THEN '[' || m.n_items || ']'"
    "   WHEN 'user_vecs' THEN '[' || m.n_users || ',' || m.dim || ']'"
    "   WHEN 'item_vecs' THEN '[' || m.n_items || ',' || m.dim || ']'"
    "   WHEN 'seen_ptr' THEN '[' || (m.n_users + 1) || ']'"
    "   ELSE '[' || (coalesce(sum(length(b.data)), 0) / 4) || ']' END,"
    "  coalesce(sum(length(b.data)), 0)"
    " FROM blobs b JOIN models m ON m.id = b.model_id"
    " WHERE b.key IN ('user_ids', 'item_ids', 'user_vecs', 'item_vecs', 'seen_ptr', 'seen_idx')"
    " GROUP BY b.model_id, b.key;",
    /* 2 -> 3: the interaction log, and pins. AUTOINCREMENT: a sequence number is never reused,
     * so "every event after seq N" stays a valid question. */
    "CREATE TABLE events("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user TEXT NOT NULL,"
    "  item TEXT NOT NULL,"
    "  weight REAL,"
    "  ts REAL NOT NULL);"
    "CREATE INDEX events_ts ON events(ts);"
    "CREATE TABLE pins("
    "  name TEXT PRIMARY KEY,"
    "  version INTEGER NOT NULL);",
};
_Static_assert(sizeof migrations / sizeof *migrations == STO_SCHEMA_VERSION,
               "one migration per schema version");

/* The columns read_info() expects, in its order: the models row, how many named tensors the
 * version has, and whether it is pinned and live. */
#define INFO_COLS                                                                                  \
    "name, kind, created, version, n_users, n_items, dim, bytes, params, metrics,"                 \
    " (SELECT count(*) FROM tensors t WHERE t.model_id = models.id"                                \
    " AND t.name NOT IN (" CORE_KEYS_SQL ")),"                                                     \
    " EXISTS(SELECT 1 FROM pins WHERE pins.name = models.name AND pins.version = models.version)," \
    " models.version IS " STO__LIVE_SQL("models.name")
#define INFO_NCOLS 13

/* ---- errors ---- */

int sto__db_error(sto_db_t *s, eng_error_t *err, const char *what)
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

int sto__exec(sto_db_t *s, const char *sql, const char *what, eng_error_t *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sto__db_error(s, err, what);
    return ENG_OK;
}

int sto__prepare(sto_db_t *s, const char *sql, sqlite3_stmt **st, eng_error_t *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return sto__db_error(s, err, "prepare");
    return ENG_OK;
}

void sto__rollback(sto_db_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- dtypes ---- */

static int public_dtype(int t)
{
    return t >= STO_F32 && t <= STO_U8;
}

size_t sto_dtype_size(sto_dtype_t t)
{
    return public_dtype(t) ? dtypes[t].size : 0;
}

const char *sto_dtype_name(sto_dtype_t t)
{
    return public_dtype(t) ? dtypes[t].name : NULL;
}

/* The dtypes[] index called name, 'str' included, or -1. */
static int dtype_find(const char *name)
{
    for (int t = 1; name && t < DT_COUNT; t++)
        if (strcmp(name, dtypes[t].name) == 0)
            return t;
    return -1;
}

int sto_dtype_from_name(const char *name)
{
    int t = dtype_find(name);
    return public_dtype(t) ? t : -1;
}

/* ---- checks shared by publish (ENG_EINVAL) and load (ENG_ECORRUPT) ---- */

/* One blob of a version: its manifest row (key is the name) and, when writing, its bytes. */
typedef struct {
    const char *key;
    int dtype; /* dtypes[] index */
    int ndim;
    int64_t shape[STO_TENSOR_MAX_DIMS];
    int64_t bytes;
    const void *data; /* [bytes] */
} part_t;

/* Core part p as a version's dimensions make it (seen_idx holds nnz entries): key, dtype, shape.
 * Its bytes and data are the caller's. */
static part_t core_part(int p, int64_t n_users, int64_t n_items, int64_t dim, int64_t nnz)
{
    part_t q = {.key = core[p].key, .dtype = core[p].dtype, .ndim = 1};
    switch (p) {
    case P_USER_IDS:
        q.shape[0] = n_users;
        break;
    case P_ITEM_IDS:
        q.shape[0] = n_items;
        break;
    case P_USER_VECS:
    case P_ITEM_VECS:
        q.ndim = 2;
        q.shape[0] = p == P_USER_VECS ? n_users : n_items;
        q.shape[1] = dim;
        break;
    case P_SEEN_PTR:
        q.shape[0] = n_users + 1;
        break;
    case P_SEEN_IDX:
        q.shape[0] = nnz;
        break;
    }
    return q;
}

/* The manifest's text of a shape, "[d0,d1,...]", in buf. */
#define SHAPE_TEXT_MAX (2 + STO_TENSOR_MAX_DIMS * 21)
static const char *shape_text(int ndim, const int64_t *shape, char buf[SHAPE_TEXT_MAX])
{
    int n = snprintf(buf, SHAPE_TEXT_MAX, "[");
    for (int d = 0; d < ndim; d++)
        n += snprintf(buf + n, (size_t)(SHAPE_TEXT_MAX - n), d ? ",%lld" : "%lld",
                      (long long)shape[d]);
    snprintf(buf + n, (size_t)(SHAPE_TEXT_MAX - n), "]");
    return buf;
}

/* The size in bytes of a dtype (not 'str') tensor of shape [ndim] into *bytes: product(shape) *
 * dtype size in int64_t arithmetic that refuses to overflow. Fails with code when ndim is not
 * 0..STO_TENSOR_MAX_DIMS, a dimension is negative or the size does not fit; what names the
 * tensor in the message. */
static int shape_bytes(int dtype, int ndim, const int64_t *shape, int64_t *bytes, const char *label,
                       const char *what, int code, eng_error_t *err)
{
    if (ndim < 0 || ndim > STO_TENSOR_MAX_DIMS)
        return eng_error_set(err, code, "%s: %s has %d dimensions, not 0..%d", label, what, ndim,
                             STO_TENSOR_MAX_DIMS);
    int zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return eng_error_set(err, code, "%s: %s has dimension %d of %lld", label, what, d,
                                 (long long)shape[d]);
        zero |= shape[d] == 0;
    }
    int64_t n = (int64_t)dtypes[dtype].size;
    for (int d = 0; d < ndim && !zero; d++) {
        if (n > INT64_MAX / shape[d]) {
            char sb[SHAPE_TEXT_MAX];
            return eng_error_set(err, code, "%s: %s of shape %s and dtype %s overflows 64 bits",
                                 label, what, shape_text(ndim, shape, sb), dtypes[dtype].name);
        }
        n *= shape[d];
    }
    *bytes = zero ? 0 : n;
    return ENG_OK;
}

/* Is name a string of 1..NAME_MAX_LEN characters [A-Za-z0-9_.-]? */
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

/* Can name be a named tensor's: a name (name_ok) and not a core part's? Fails with code. */
static int check_tensor_name(const char *name, const char *label, int code, eng_error_t *err)
{
    if (!name_ok(name))
        return eng_error_set(err, code, "%s: tensor name '%s' does not match [A-Za-z0-9_.-]{1,%d}",
                             label, name ? name : "(null)", NAME_MAX_LEN);
    for (int p = 0; p < N_PARTS; p++)
        if (strcmp(name, core[p].key) == 0)
            return eng_error_set(err, code, "%s: tensor name '%s' is reserved for a core part",
                                 label, name);
    return ENG_OK;
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
    return ENG_OK;
}

/* Each user's seen list holds item indices in [0, n_items), strictly increasing: sorted and
 * without repeats, as the top-K exclusion (engine/index.h) and the server rely on. */
static int check_seen_idx(const int64_t *ptr, const int32_t *idx, int32_t n_users, int32_t n_items,
                          const char *label, int code, eng_error_t *err)
{
    for (int32_t u = 0; u < n_users; u++)
        for (int64_t k = ptr[u]; k < ptr[u + 1]; k++) {
            if (idx[k] < 0 || idx[k] >= n_items)
                return eng_error_set(err, code,
                                     "%s: seen_idx[%lld] = %d is not an item index (0..%d)", label,
                                     (long long)k, (int)idx[k], (int)n_items - 1);
            if (k > ptr[u] && idx[k] <= idx[k - 1])
                return eng_error_set(err, code,
                                     "%s: the seen list of user %d is not strictly increasing"
                                     " (seen_idx[%lld] = %d after %d)",
                                     label, (int)u, (long long)k, (int)idx[k], (int)idx[k - 1]);
        }
    return ENG_OK;
}

/* ---- open ---- */

/* The store's schema version into *v: 0 for an empty database (nothing created yet). Fails with
 * ENG_EDB when the database holds something other than a gnnrec store. */
static int schema_version(sto_db_t *s, int64_t *v, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sto__prepare(s,
                     "SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = 'meta')"
                     " FROM sqlite_schema",
                     &st, err);
    if (rc < 0)
        goto fail;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sto__db_error(s, err, "reading the schema");
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
    if ((rc = sto__prepare(s, "SELECT value FROM meta WHERE key = 'schema_version'", &st, err)) < 0)
        goto fail;
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (no schema_version in meta)",
                           s->path);
        goto fail;
    }
    if (step != SQLITE_ROW) {
        rc = sto__db_error(s, err, "reading schema_version");
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
        int rc = sto__exec(s, migrations[v], "upgrading the schema", err);
        if (rc < 0)
            return rc;
    }
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d')",
             STO_SCHEMA_VERSION);
    return sto__exec(s, sql, "recording the schema version", err);
}

/* The connection settings (see the header): WAL so readers never block the publisher; FULL
 * sync, so that a commit that returned is on disk: an acknowledged event must survive a power
 * cut, not only a killed process. It costs one fsync of the WAL per commit, nothing next to a
 * publish's writing, and the intake batches its commits. */
static int configure(sto_db_t *s, int writable, eng_error_t *err)
{
    int rc =
        sto__exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", "configuring", err);
    if (rc < 0 || !writable)
        return rc;
    sqlite3_stmt *st = NULL;
    if ((rc = sto__prepare(s, "PRAGMA journal_mode = WAL", &st, err)) < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = sto__db_error(s, err, "switching to WAL");
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = eng_error_set(err, ENG_EDB, "%s: cannot switch to WAL (journal mode stays %s)",
                           s->path, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

/* A new handle on path, opened with sqlite3_open_v2 flags oflags and configured, into *out. */
static int connect(const char *path, int oflags, sto_db_t **out, eng_error_t *err)
{
    *out = NULL;
    int rc = ENG_ENOMEM;
    sto_db_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        eng_error_set(err, rc, "%s: out of memory opening the store", path);
        goto fail;
    }
    if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = s->db ? eng_error_set(err, ENG_EDB, "%s: cannot open: %s", path, sqlite3_errmsg(s->db))
                   : eng_error_set(err, ENG_ENOMEM, "%s: out of memory opening the store", path);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if ((rc = configure(s, (oflags & SQLITE_OPEN_READWRITE) != 0, err)) < 0)
        goto fail;
    *out = s;
    return ENG_OK;
fail:
    sto_close(s);
    return rc;
}

/* Brings the store of s, a read-write handle, to STO_SCHEMA_VERSION in one transaction: takes the
 * write lock, re-reads the version under it (another process may have created or upgraded the
 * store since the caller looked), runs the missing migrations. On failure the store is unchanged.
 * *v: the version found under the lock, then the version the store is at. */
static int upgrade(sto_db_t *s, int64_t *v, eng_error_t *err)
{
    int rc;
    if ((rc = sto__exec(s, "BEGIN IMMEDIATE", "locking for the upgrade", err)) < 0 ||
        (rc = schema_version(s, v, err)) < 0 ||
        (*v < STO_SCHEMA_VERSION && (rc = migrate(s, *v, err)) < 0) ||
        (rc = sto__exec(s, "COMMIT", "committing the upgrade", err)) < 0) {
        sto__rollback(s);
        return rc;
    }
    if (*v < STO_SCHEMA_VERSION)
        *v = STO_SCHEMA_VERSION;
    return ENG_OK;
}

/* msg without its leading "path: ", for quoting it in another message about path. */
static const char *after_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    return strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0 ? msg + n + 2 : msg;
}

/* Upgrades the store that s, a read-only handle, found at schema version *v < STO_SCHEMA_VERSION
 * through a short-lived read-write handle running upgrade(), then re-reads the version through s
 * into *v. Fails with ENG_EDB naming the path, both versions and why when that cannot be done;
 * the store is then unchanged. */
static int upgrade_readonly(sto_db_t *s, int64_t *v, eng_error_t *err)
{
    eng_error_t why = {0};
    sto_db_t *w = NULL;
    int64_t found = *v;
    int rc = connect(s->path, SQLITE_OPEN_READWRITE, &w, &why);
    /* A file the process may not write, SQLite opens read-only without an error. */
    if (rc == ENG_OK && sqlite3_db_readonly(w->db, "main") == 1)
        rc = eng_error_set(&why, ENG_EDB, "%s: the file is not writable", s->path);
    if (rc == ENG_OK)
        rc = upgrade(w, &found, &why);
    sto_close(w);
    if (rc == ENG_ENOMEM)
        return eng_error_set(err, rc, "%s", why.msg);
    if (rc < 0)
        return eng_error_set(err, ENG_EDB,
                             "%s: schema version %lld needs upgrading to %d, which a read-only open"
                             " does through a read-write connection, and that failed: %s",
                             s->path, (long long)*v, STO_SCHEMA_VERSION,
                             after_path(why.msg, s->path));
    return schema_version(s, v, err);
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
    int64_t v = 0;
    sto_db_t *s = NULL;
    int rc = connect(path, oflags, &s, err);
    if (rc < 0 || (rc = schema_version(s, &v, err)) < 0)
        goto fail;
    if (v == 0 && !(flags & STO_CREATE)) {
        rc = eng_error_set(err, ENG_EDB, "%s: not a gnnrec store (empty database)", path);
        goto fail;
    }
    if (v < STO_SCHEMA_VERSION &&
        (rc = writable ? upgrade(s, &v, err) : upgrade_readonly(s, &v, err)) < 0)
        goto fail;
    if (v > STO_SCHEMA_VERSION) {
        rc = eng_error_set(err, ENG_ECORRUPT,
                           "%s: schema_version %lld is newer than this build's %d", path,
                           (long long)v, STO_SCHEMA_VERSION);
        goto fail;
    }
    *out = s;
    return ENG_OK;
fail:
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

/* Is text a JSON object? Asks SQLite's JSON functions, so the store needs no JSON library. */
static int json_object_ok(sto_db_t *s, const char *text, int *ok, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sto__prepare(s, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sto__db_error(s, err, "checking JSON");
    } else {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        *ok = type && strcmp(type, "object") == 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Named tensor i of m as a part to write; fails with ENG_EINVAL when it cannot be published (a
 * name twice aside: check_model_in looks for that). */
static int tensor_part(const sto_model_in_t *m, int i, const char *label, part_t *p,
                       eng_error_t *err)
{
    const sto_tensor_t *t = &m->tensors[i];
    int rc = check_tensor_name(t->name, label, ENG_EINVAL, err);
    if (rc < 0)
        return rc;
    char what[96];
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    if (!public_dtype(t->dtype))
        return eng_error_set(err, ENG_EINVAL, "%s: %s has unknown dtype %d", label, what,
                             (int)t->dtype);
    *p = (part_t){.key = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
    if (t->ndim >= 0 && t->ndim <= STO_TENSOR_MAX_DIMS)
        memcpy(p->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
    if ((rc = shape_bytes(p->dtype, p->ndim, p->shape, &p->bytes, label, what, ENG_EINVAL, err)) <
        0)
        return rc;
    if (p->bytes > 0 && !t->data)
        return eng_error_set(err, ENG_EINVAL, "%s: %s has %lld bytes but no data", label, what,
                             (long long)p->bytes);
    return ENG_OK;
}

/* Checks m and, when it is publishable, describes its core parts in parts and the size of the
 * whole version, named tensors included, in *total. */
static int check_model_in(sto_db_t *s, const sto_model_in_t *m, part_t parts[N_PARTS],
                          int64_t *total, eng_error_t *err)
{
    if (!m || !name_ok(m->name))
        return eng_error_set(err, ENG_EINVAL, "publish: model name must match [A-Za-z0-9_.-]{1,%d}",
                             NAME_MAX_LEN);
    char label[128];
    snprintf(label, sizeof label, "publish %s", m->name);
    if (!name_ok(m->kind))
        return eng_error_set(err, ENG_EINVAL, "%s: kind must match [A-Za-z0-9_.-]{1,%d}", label,
                             NAME_MAX_LEN);
    if (m->n_users < 0 || m->n_items <= 0 || m->dim <= 0)
        return eng_error_set(err, ENG_EINVAL,
                             "%s: n_users %d must be >= 0, n_items %d and dim %d > 0", label,
                             (int)m->n_users, (int)m->n_items, (int)m->dim);
    if (!m->users || !m->items || eng_idmap_size(m->users) != m->n_users ||
        eng_idmap_size(m->items) != m->n_items)
        return eng_error_set(err, ENG_EINVAL, "%s: id maps must hold n_users %d and n_items %d ids",
                             label, (int)m->n_users, (int)m->n_items);
    if (!m->user_vecs || !m->item_vecs || !m->seen_ptr)
        return eng_error_set(err, ENG_EINVAL, "%s: vectors and seen_ptr are required", label);
    int rc = check_seen_ptr(m->seen_ptr, m->n_users, label, ENG_EINVAL, err);
    if (rc < 0)
        return rc;
    int64_t nnz = m->seen_ptr[m->n_users];
    if (nnz > 0 && !m->seen_idx)
        return eng_error_set(err, ENG_EINVAL, "%s: seen_idx is required", label);
    if (m->n_tensors < 0 || (m->n_tensors > 0 && !m->tensors))
        return eng_error_set(err, ENG_EINVAL, "%s: n_tensors %d without a tensors array", label,
                             m->n_tensors);

    const void *data[N_PARTS] = {[P_USER_VECS] = m->user_vecs,
                                 [P_ITEM_VECS] = m->item_vecs,
                                 [P_SEEN_PTR] = m->seen_ptr,
                                 [P_SEEN_IDX] = m->seen_idx};
    *total = 0;
    for (int i = 0; i < N_PARTS + m->n_tensors; i++) {
        part_t p;
        if (i < N_PARTS) {
            p = core_part(i, m->n_users, m->n_items, m->dim, nnz);
            p.data = data[i];
            if (p.dtype == DT_STR) {
                size_t len;
                p.data = eng_idmap_blob(i == P_USER_IDS ? m->users : m->items, &len);
                p.bytes = (int64_t)len;
            } else if ((rc = shape_bytes(p.dtype, p.ndim, p.shape, &p.bytes, label, p.key,
                                         ENG_EINVAL, err)) < 0) {
                return rc;
            }
            parts[i] = p;
        } else {
            if ((rc = tensor_part(m, i - N_PARTS, label, &p, err)) < 0)
                return rc;
            for (int j = 0; j < i - N_PARTS; j++)
                if (strcmp(m->tensors[j].name, p.key) == 0)
                    return eng_error_set(err, ENG_EINVAL, "%s: tensor '%s' is there twice", label,
                                         p.key);
        }
        if (p.bytes > INT64_MAX - *total)
            return eng_error_set(err, ENG_EINVAL, "%s: the version is over %lld bytes", label,
                                 (long long)INT64_MAX);
        *total += p.bytes;
    }
    if ((rc = check_seen_idx(m->seen_ptr, m->seen_idx, m->n_users, m->n_items, label, ENG_EINVAL,
                             err)) < 0 ||
        (rc = check_finite(m->user_vecs, m->n_users, m->dim, "user_vecs", label, ENG_EINVAL, err)) <
            0 ||
        (rc = check_finite(m->item_vecs, m->n_items, m->dim, "item_vecs", label, ENG_EINVAL, err)) <
            0)
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
    return ENG_OK;
}

/* Inserts part p of model row id with the prepared statements man (its manifest row) and blob
 * (its bytes, as rows chunk 0..k-1 of at most chunk_bytes each). An empty part still gets its
 * chunk 0, so that load can tell "empty" from "missing". */
static int put_part(sto_db_t *s, sqlite3_stmt *man, sqlite3_stmt *blob, int64_t id, const part_t *p,
                    eng_error_t *err)
{
    char shape[SHAPE_TEXT_MAX];
    sqlite3_bind_int64(man, 1, id);
    sqlite3_bind_text(man, 2, p->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(man, 3, dtypes[p->dtype].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(man, 4, shape_text(p->ndim, p->shape, shape), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(man, 5, p->bytes);
    int rc =
        sqlite3_step(man) == SQLITE_DONE ? ENG_OK : sto__db_error(s, err, "writing the manifest");
    sqlite3_reset(man);
    size_t len = (size_t)p->bytes, off = 0;
    for (int64_t chunk = 0; rc == ENG_OK && (chunk == 0 || off < len); chunk++) {
        size_t n = len - off < chunk_bytes ? len - off : chunk_bytes;
        sqlite3_bind_int64(blob, 1, id);
        sqlite3_bind_text(blob, 2, p->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(blob, 3, chunk);
        if (n) /* binding a NULL pointer would store SQL NULL, not an empty blob */
            sqlite3_bind_blob64(blob, 4, (const char *)p->data + off, n, SQLITE_STATIC);
        else
            sqlite3_bind_zeroblob(blob, 4, 0);
        if (sqlite3_step(blob) != SQLITE_DONE)
            rc = sto__db_error(s, err, "writing blobs");
        sqlite3_reset(blob);
        off += n;
    }
    return rc;
}

/* Writes the version's core parts, then its named tensors. */
static int put_parts(sto_db_t *s, int64_t id, const sto_model_in_t *m, const part_t parts[N_PARTS],
                     eng_error_t *err)
{
    char label[128];
    snprintf(label, sizeof label, "publish %s", m->name);
    sqlite3_stmt *man = NULL, *blob = NULL;
    int rc = sto__prepare(s,
                          "INSERT INTO tensors(model_id, name, dtype, shape, bytes)"
                          " VALUES(?1, ?2, ?3, ?4, ?5)",
                          &man, err);
    if (rc == ENG_OK)
        rc = sto__prepare(s, "INSERT INTO blobs(model_id, key, chunk, data) VALUES(?1, ?2, ?3, ?4)",
                          &blob, err);
    for (int i = 0; rc == ENG_OK && i < N_PARTS + m->n_tensors; i++) {
        part_t p;
        if (i < N_PARTS)
            p = parts[i];
        else if ((rc = tensor_part(m, i - N_PARTS, label, &p, err)) < 0)
            break;
        rc = put_part(s, man, blob, id, &p, err);
    }
    sqlite3_finalize(man);
    sqlite3_finalize(blob);
    return rc;
}

int sto_publish(sto_db_t *s, const sto_model_in_t *m, int64_t *version, eng_error_t *err)
{
    part_t parts[N_PARTS];
    int64_t bytes = 0;
    int rc = check_model_in(s, m, parts, &bytes, err);
    if (rc < 0)
        return rc;

    sqlite3_stmt *st = NULL;
    int64_t id = 0, v = 0;
    /* IMMEDIATE takes the write lock now, so two publishers of one name cannot both compute the
     * same next version; the row is 'writing' until every blob is in. */
    if ((rc = sto__exec(s, "BEGIN IMMEDIATE", "starting publish", err)) < 0 ||
        (rc = sto__prepare(
             s,
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
        rc = sto__db_error(s, err, "inserting the model row");
        goto fail;
    }
    id = sqlite3_column_int64(st, 0);
    v = sqlite3_column_int64(st, 1);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sto__db_error(s, err, "inserting the model row");
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = put_parts(s, id, m, parts, err)) < 0)
        goto fail;
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE models SET status = 'ready' WHERE id = %lld", (long long)id);
    if ((rc = sto__exec(s, sql, "marking the version ready", err)) < 0 ||
        (rc = sto__exec(s, "COMMIT", "committing publish", err)) < 0)
        goto fail;
    if (version)
        *version = v;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    sto__rollback(s);
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
    v->n_tensors = sqlite3_column_int(st, 10);
    v->pinned = sqlite3_column_int(st, 11);
    v->live = sqlite3_column_int(st, 12);
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
    int rc = sto__prepare(s,
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
        rc = sto__db_error(s, err, "listing");
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

/* Parses a manifest shape: a JSON array of at most STO_TENSOR_MAX_DIMS integers, each >= 0 (no
 * sign, fraction, exponent or leading zero) and below 2^63. Returns the number of dimensions, or
 * -1 when text is not such an array. */
static int parse_shape(const char *text, int64_t shape[STO_TENSOR_MAX_DIMS])
{
    static const char ws[] = " \t\n\r";
    const char *c = text + strspn(text, ws);
    int n = 0;
    if (*c++ != '[')
        return -1;
    c += strspn(c, ws);
    if (*c == ']')
        c++;
    else
        for (;;) {
            if (n == STO_TENSOR_MAX_DIMS || *c < '0' || *c > '9' ||
                (c[0] == '0' && c[1] >= '0' && c[1] <= '9'))
                return -1;
            int64_t v = 0;
            for (; *c >= '0' && *c <= '9'; c++) {
                if (v > (INT64_MAX - (*c - '0')) / 10)
                    return -1;
                v = v * 10 + (*c - '0');
            }
            shape[n++] = v;
            c += strspn(c, ws);
            if (*c == ']') {
                c++;
                break;
            }
            if (*c++ != ',')
                return -1;
            c += strspn(c, ws);
        }
    c += strspn(c, ws);
    return *c ? -1 : n;
}

/* Reads the manifest row of blob key of model row id into p (p->key and p->data are the
 * caller's) and checks it: a known dtype, a well-formed shape, a byte count that for every dtype
 * but 'str' is the shape's size. *found is 0, and nothing else is done, when there is no row. */
static int read_manifest(sto_db_t *s, const char *label, const char *what, int64_t id,
                         const char *key, part_t *p, int *found, eng_error_t *err)
{
    *found = 0;
    sqlite3_stmt *st = NULL;
    int rc = sto__prepare(s,
                          "SELECT dtype, shape, typeof(bytes), bytes FROM tensors"
                          " WHERE model_id = ?1 AND name = ?2",
                          &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        if (step != SQLITE_DONE)
            rc = sto__db_error(s, err, "reading the manifest");
        sqlite3_finalize(st);
        return rc;
    }
    *found = 1;
    const char *dtype = (const char *)sqlite3_column_text(st, 0);
    const char *shape = (const char *)sqlite3_column_text(st, 1);
    /* A NUL inside the text would hide what follows it from the parser. */
    int shape_ok = shape && strlen(shape) == (size_t)sqlite3_column_bytes(st, 1);
    p->dtype = dtype_find(dtype);
    p->ndim = shape_ok ? parse_shape(shape, p->shape) : -1;
    p->bytes = sqlite3_column_int64(st, 3);
    char sb[SHAPE_TEXT_MAX];
    int64_t size;
    if (p->dtype < 0)
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s has unknown dtype '%s'", label, what,
                           dtype ? dtype : "NULL");
    else if (p->ndim < 0)
        rc = eng_error_set(err, ENG_ECORRUPT,
                           "%s: %s has shape '%s', not a JSON array of at most %d non-negative"
                           " integers",
                           label, what, shape ? shape : "NULL", STO_TENSOR_MAX_DIMS);
    else if (strcmp((const char *)sqlite3_column_text(st, 2), "integer") != 0 || p->bytes < 0)
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s has bytes '%s' in the manifest", label, what,
                           sqlite3_column_text(st, 3));
    else if (p->dtype == DT_STR && p->ndim != 1)
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s of dtype str has shape %s, not [n]", label,
                           what, shape_text(p->ndim, p->shape, sb));
    else if (p->dtype != DT_STR &&
             (rc = shape_bytes(p->dtype, p->ndim, p->shape, &size, label, what, ENG_ECORRUPT,
                               err)) == ENG_OK &&
             size != p->bytes)
        rc = eng_error_set(err, ENG_ECORRUPT,
                           "%s: %s has %lld bytes in the manifest, but shape %s of %s is %lld",
                           label, what, (long long)p->bytes, shape_text(p->ndim, p->shape, sb),
                           dtypes[p->dtype].name, (long long)size);
    sqlite3_finalize(st);
    return rc;
}

/* The manifest row of core part p (read_manifest) into *man; a missing row is damage. */
static int read_core_manifest(sto_db_t *s, const char *label, int64_t id, int p, part_t *man,
                              eng_error_t *err)
{
    int found;
    int rc = read_manifest(s, label, core[p].key, id, core[p].key, man, &found, err);
    if (rc == ENG_OK && !found)
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s has no manifest row", label, core[p].key);
    return rc;
}

/* Fails unless man, the manifest row of core part p, is what the models row in makes it (for
 * seen_idx: what seen_ptr, whose last entry is nnz, makes it). */
static int check_core(const char *label, int p, const part_t *man, const sto_version_info_t *in,
                      int64_t nnz, eng_error_t *err)
{
    part_t want = core_part(p, in->n_users, in->n_items, in->dim, nnz);
    if (man->dtype == want.dtype && man->ndim == want.ndim &&
        memcmp(man->shape, want.shape, (size_t)want.ndim * sizeof *want.shape) == 0)
        return ENG_OK;
    char a[SHAPE_TEXT_MAX], b[SHAPE_TEXT_MAX];
    return eng_error_set(err, ENG_ECORRUPT,
                         "%s: %s is %s %s in the manifest, but %s makes it %s %s", label, want.key,
                         dtypes[man->dtype].name, shape_text(man->ndim, man->shape, a),
                         p == P_SEEN_IDX ? "seen_ptr" : "the models row", dtypes[want.dtype].name,
                         shape_text(want.ndim, want.shape, b));
}

/* Reads blob `key` of model row id, which its manifest says is want bytes, into a new buffer
 * *out. Checks that its chunks are numbered 0..k-1 with none missing and total exactly want
 * bytes before allocating anything: a damaged row cannot make us allocate a huge buffer. what
 * names the blob in messages. */
static int read_part(sto_db_t *s, const char *label, const char *what, int64_t id, const char *key,
                     int64_t want, void **out, eng_error_t *err)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    char *buf = NULL;
    int64_t total = 0, k = 0;
    /* length() and typeof() of a blob are answered from the record header without reading the
     * data, so this first pass is cheap. */
    int rc = sto__prepare(s,
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
                               label, what, (long long)k, (long long)chunk);
            goto fail;
        }
        if (strcmp((const char *)sqlite3_column_text(st, 1), "blob") != 0) {
            rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s chunk %lld is %s, not a blob", label,
                               what, (long long)k, sqlite3_column_text(st, 1));
            goto fail;
        }
        total += sqlite3_column_int64(st, 2);
    }
    if (step != SQLITE_DONE) {
        rc = sto__db_error(s, err, "reading blob sizes");
        goto fail;
    }
    if (k == 0) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s missing", label, what);
        goto fail;
    }
    if (total != want) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s has %lld bytes, expected %lld", label, what,
                           (long long)total, (long long)want);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((uint64_t)total > SIZE_MAX - 1 || !(buf = malloc((size_t)total + 1))) {
        rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory for %s (%lld bytes)", label, what,
                           (long long)total);
        goto fail;
    }
    if ((rc = sto__prepare(s,
                           "SELECT data FROM blobs WHERE model_id = ?1 AND key = ?2 ORDER BY chunk",
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
        rc = sto__db_error(s, err, "reading blobs");
        goto fail;
    }
    if (off != (size_t)total) {
        rc = eng_error_set(err, ENG_ECORRUPT, "%s: %s changed while being read", label, what);
        goto fail;
    }
    sqlite3_finalize(st);
    *out = buf;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    free(buf);
    return rc;
}

/* Reads id map part p, which its manifest says is bytes long, and rebuilds the map, which must
 * hold exactly n distinct ids. */
static int read_idmap(sto_db_t *s, const char *label, int64_t id, int p, int32_t n, int64_t bytes,
                      eng_idmap_t **out, eng_error_t *err)
{
    void *buf;
    int rc = read_part(s, label, core[p].key, id, core[p].key, bytes, &buf, err);
    if (rc < 0)
        return rc;
    *out = eng_idmap_from_blob(buf, (size_t)bytes, n);
    free(buf);
    if (!*out)
        return eng_error_set(err, ENG_ECORRUPT,
                             "%s: %s is not %d distinct non-empty NUL-terminated ids", label,
                             core[p].key, (int)n);
    return ENG_OK;
}

/* Reads the named tensor t->name of model row id into t, after checking its manifest row;
 * *found is 0 (and t untouched) when the version has no such tensor. */
static int read_tensor(sto_db_t *s, const char *label, int64_t id, sto_tensor_t *t, int *found,
                       eng_error_t *err)
{
    char what[96];
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    part_t p;
    void *data;
    int rc = check_tensor_name(t->name, label, ENG_ECORRUPT, err);
    if (rc < 0 || (rc = read_manifest(s, label, what, id, t->name, &p, found, err)) < 0 || !*found)
        return rc;
    if (!public_dtype(p.dtype))
        return eng_error_set(err, ENG_ECORRUPT, "%s: %s has dtype %s, which only id maps have",
                             label, what, dtypes[p.dtype].name);
    if ((rc = read_part(s, label, what, id, t->name, p.bytes, &data, err)) < 0)
        return rc;
    t->dtype = (sto_dtype_t)p.dtype;
    t->ndim = p.ndim;
    memcpy(t->shape, p.shape, sizeof t->shape);
    t->data = data;
    return ENG_OK;
}

/* Reads into m the named tensors of model row id that names chooses (see sto_load; a list has
 * passed check_names). */
static int read_tensors(sto_db_t *s, const char *label, int64_t id, const char *const *names,
                        sto_model_t *m, eng_error_t *err)
{
    int n = 0, rc = ENG_OK;
    while (names && names[n])
        n++;
    if (!names)
        n = m->info.n_tensors; /* counted in this read transaction */
    if (n == 0)
        return ENG_OK;
    if (!(m->tensors = calloc((size_t)n, sizeof *m->tensors)))
        return eng_error_set(err, ENG_ENOMEM, "%s: out of memory for %d tensors", label, n);
    m->n_tensors = n;
    sqlite3_stmt *st = NULL;
    if (!names) {
        if ((rc = sto__prepare(s,
                               "SELECT name FROM tensors WHERE model_id = ?1"
                               " AND name NOT IN (" CORE_KEYS_SQL ") ORDER BY name",
                               &st, err)) < 0)
            return rc;
        sqlite3_bind_int64(st, 1, id);
    }
    for (int i = 0; rc == ENG_OK && i < n; i++) {
        const char *name = names ? names[i] : NULL;
        if (!names && sqlite3_step(st) == SQLITE_ROW)
            name = (const char *)sqlite3_column_text(st, 0);
        if (!name)
            rc = sto__db_error(s, err, "listing the tensors");
        else if (!(m->tensors[i].name = strdup(name)))
            rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory for tensor names", label);
    }
    sqlite3_finalize(st);
    /* A listed name the version lacks is skipped: the tensors kept close up in list order. */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        if (rc == ENG_OK)
            rc = read_tensor(s, label, id, &m->tensors[i], &found, err);
        if (rc == ENG_OK && found)
            m->tensors[kept++] = m->tensors[i];
        else
            free((void *)m->tensors[i].name);
    }
    m->n_tensors = kept;
    if (kept == 0) {
        free(m->tensors);
        m->tensors = NULL;
    }
    return rc;
}

/* sto_load's list of tensor names: each can be a tensor's, none is there twice. */
static int check_names(const char *label, const char *const *names, eng_error_t *err)
{
    for (int i = 0; names && names[i]; i++) {
        int rc = check_tensor_name(names[i], label, ENG_EINVAL, err);
        if (rc < 0)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0)
                return eng_error_set(err, ENG_EINVAL, "%s: tensor '%s' is listed twice", label,
                                     names[i]);
    }
    return ENG_OK;
}

/* The ready version (version 0: the live one) of name; its id comes after INFO_COLS. */
static const char *const find_sql =
    "SELECT " INFO_COLS ", id FROM models WHERE name = ?1 AND status = 'ready'"
    " AND version IS (CASE ?2 WHEN 0 THEN " STO__LIVE_SQL("?1") " ELSE ?2 END)";

int sto_load(sto_db_t *s, const char *name, int64_t version, const char *const *tensors,
             sto_model_t **out, eng_error_t *err)
{
    *out = NULL;
    if (!name || version < 0)
        return eng_error_set(err, ENG_EINVAL, "%s: load: bad model name or version", s->path);
    char label[512];
    snprintf(label, sizeof label, "%s: load %s", s->path, name);
    int rc = check_names(label, tensors, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = ENG_ENOMEM;
    sto_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        eng_error_set(err, rc, "%s: out of memory loading %s", s->path, name);
        goto fail;
    }
    /* One read transaction: the row and all its blobs come from one snapshot of the store. */
    if ((rc = sto__exec(s, "BEGIN", "starting load", err)) < 0 ||
        (rc = sto__prepare(s, find_sql, &st, err)) < 0)
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
        rc = sto__db_error(s, err, "finding the model");
        goto fail;
    }
    int64_t id = sqlite3_column_int64(st, INFO_NCOLS);
    int64_t dims[3] = {sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5),
                       sqlite3_column_int64(st, 6)};
    if ((rc = read_info(st, &m->info)) < 0) {
        eng_error_set(err, rc, "%s: out of memory loading %s", s->path, name);
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;

    const sto_version_info_t *in = &m->info;
    snprintf(label, sizeof label, "%s: model %s v%lld", s->path, name, (long long)in->version);
    for (int d = 0; d < 3; d++)
        if (dims[d] < (d == 0 ? 0 : 1) || dims[d] > INT32_MAX) {
            rc = eng_error_set(err, ENG_ECORRUPT,
                               "%s: bad dimensions: n_users %lld, n_items %lld, dim %lld", label,
                               (long long)dims[0], (long long)dims[1], (long long)dims[2]);
            goto fail;
        }
    /* Every core manifest row, and all but seen_idx's against the models row, before reading
     * any blob; seen_idx's length is checked against seen_ptr once that is read. */
    part_t man[N_PARTS];
    for (int p = 0; p < N_PARTS; p++)
        if ((rc = read_core_manifest(s, label, id, p, &man[p], err)) < 0 ||
            (p != P_SEEN_IDX && (rc = check_core(label, p, &man[p], in, 0, err)) < 0))
            goto fail;
    if ((rc = read_idmap(s, label, id, P_USER_IDS, in->n_users, man[P_USER_IDS].bytes, &m->users,
                         err)) < 0 ||
        (rc = read_idmap(s, label, id, P_ITEM_IDS, in->n_items, man[P_ITEM_IDS].bytes, &m->items,
                         err)) < 0 ||
        (rc = read_part(s, label, "user_vecs", id, "user_vecs", man[P_USER_VECS].bytes,
                        (void **)&m->user_vecs, err)) < 0 ||
        (rc = read_part(s, label, "item_vecs", id, "item_vecs", man[P_ITEM_VECS].bytes,
                        (void **)&m->item_vecs, err)) < 0 ||
        (rc = read_part(s, label, "seen_ptr", id, "seen_ptr", man[P_SEEN_PTR].bytes,
                        (void **)&m->seen_ptr, err)) < 0 ||
        (rc = check_seen_ptr(m->seen_ptr, in->n_users, label, ENG_ECORRUPT, err)) < 0 ||
        (rc = check_core(label, P_SEEN_IDX, &man[P_SEEN_IDX], in, m->seen_ptr[in->n_users], err)) <
            0 ||
        (rc = read_part(s, label, "seen_idx", id, "seen_idx", man[P_SEEN_IDX].bytes,
                        (void **)&m->seen_idx, err)) < 0 ||
        (rc = check_seen_idx(m->seen_ptr, m->seen_idx, in->n_users, in->n_items, label,
                             ENG_ECORRUPT, err)) < 0 ||
        (rc = check_finite(m->user_vecs, in->n_users, in->dim, "user_vecs", label, ENG_ECORRUPT,
                           err)) < 0 ||
        (rc = check_finite(m->item_vecs, in->n_items, in->dim, "item_vecs", label, ENG_ECORRUPT,
                           err)) < 0 ||
        (rc = read_tensors(s, label, id, tensors, m, err)) < 0 ||
        (rc = sto__exec(s, "COMMIT", "ending load", err)) < 0)
        goto fail;
    *out = m;
    return ENG_OK;
fail:
    sqlite3_finalize(st);
    sto__rollback(s);
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
    /* The model owns its tensors' names and data; the public struct's pointers are const only
     * for the borrowed direction, publishing. */
    for (int i = 0; i < m->n_tensors; i++) {
        free((void *)m->tensors[i].name);
        free((void *)m->tensors[i].data);
    }
    free(m->tensors);
    free(m);
}

const sto_tensor_t *sto_model_tensor(const sto_model_t *m, const char *name)
{
    for (int i = 0; m && name && i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* ---- change detection ---- */

int sto_data_version(sto_db_t *s, int64_t *out, eng_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sto__prepare(s, "PRAGMA data_version", &st, err);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = sto__db_error(s, err, "reading data_version");
    sqlite3_finalize(st);
    return rc;
}
