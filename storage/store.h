/* The model store: versioned, complete trained models in one SQLite file.
 *
 * Schema (see docs/store.md): meta(key, value) with schema_version; models(id, name, version,
 * kind, created, status, n_users, n_items, dim, params JSON, metrics JSON, bytes); blobs(model_id,
 * key, chunk, data) holding each blob in chunks below SQLite's blob limit; tensors(model_id, name,
 * dtype, shape, bytes), the manifest, one row per blob: the six core parts every version has (id
 * maps, float32 vectors, seen-item lists) and the version's named tensors (optimizer state, extra
 * weights); events(seq, user, item, weight, ts), the interaction log the server appends to and
 * retrains read; pins(name, version), the version an operator chose to serve. WAL mode, so
 * readers (the server) work while a trainer publishes; every commit is synced (synchronous =
 * FULL), so a commit that returned survives a crash of the process or the machine.
 *
 * Publishing writes a whole version in one transaction and marks it 'ready' last: a reader, or a
 * store reopened after the writer was killed at any point, sees either the complete version or
 * nothing of it. A sto_db_t handle is for one thread at a time. */
#ifndef GNNREC_STORAGE_STORE_H
#define GNNREC_STORAGE_STORE_H

#include "engine/err.h"
#include "engine/idmap.h"

#include <stddef.h>
#include <stdint.h>

#define STO_SCHEMA_VERSION 3

typedef struct sto_db sto_db_t;

enum { STO_READONLY = 0, STO_READWRITE = 1, STO_CREATE = 2 };

/* Opens (with STO_CREATE: creates if missing and sets up the schema) the store at path; *out is a
 * new handle to close with sto_close. Fails with ENG_EDB (message names the path) when the file is
 * not a gnnrec store, or with ENG_ECORRUPT when its schema_version is newer than this build's.
 * STO_CREATE implies read-write; without it a missing file is ENG_EDB and nothing is created.
 *
 * Any open upgrades an older schema (docs/store.md, "Migrations"): a read-write open on its own
 * connection, a read-only open through a short-lived read-write connection to the same file,
 * after which the handle is read-only as asked. When that upgrade is impossible (the file is not
 * writable, another writer holds the lock past the busy timeout, ...) a read-only open fails with
 * ENG_EDB naming the path, both schema versions and why, and the file is unchanged. */
int sto_open(const char *path, int flags, sto_db_t **out, eng_error_t *err);
void sto_close(sto_db_t *db);

/* Element types of named tensors. The manifest also knows 'str' (NUL-terminated ids), which only
 * the id maps use. */
typedef enum { STO_F32 = 1, STO_I32, STO_I64, STO_U8 } sto_dtype_t;

#define STO_TENSOR_MAX_DIMS 4

/* A named tensor of a version: row-major, little-endian. */
typedef struct {
    const char *name; /* [A-Za-z0-9_.-]{1,64}, not a core part name (user_ids, ...) */
    sto_dtype_t dtype;
    int ndim; /* 0..STO_TENSOR_MAX_DIMS; 0 is a scalar */
    int64_t shape[STO_TENSOR_MAX_DIMS];
    const void *data; /* product(shape) * size of dtype bytes */
} sto_tensor_t;

/* Size in bytes of one element of dtype, 0 for an unknown one. */
size_t sto_dtype_size(sto_dtype_t t);

/* The dtype's name in the manifest ("f32", ...), NULL for an unknown one; and back: the dtype
 * called name, or -1 for an unknown name (also for "str", which is not a tensor dtype). */
const char *sto_dtype_name(sto_dtype_t t);
int sto_dtype_from_name(const char *name);

/* A model to publish; every pointer is borrowed for the duration of the call. */
typedef struct {
    const char *name; /* [A-Za-z0-9_.-]{1,64} */
    const char *kind; /* model family, e.g. "lightgcn" */
    int32_t n_users, n_items, dim;
    const eng_idmap_t *users, *items; /* sizes n_users and n_items */
    const float *user_vecs;           /* [n_users x dim] */
    const float *item_vecs;           /* [n_items x dim]; score(u, i) = dot(user u, item i) */
    const int64_t *seen_ptr;          /* [n_users + 1] training items of each user (CSR) */
    const int32_t *seen_idx;          /* [seen_ptr[n_users]] */
    const char *params_json;          /* hyper-parameters, a JSON object text */
    const char *metrics_json;         /* final metrics, a JSON object text ("{}" when none) */
    const sto_tensor_t *tensors;      /* [n_tensors] named tensors; NULL when n_tensors is 0 */
    int n_tensors;
} sto_model_in_t;

/* Publishes m as the next version of m->name (1 for a new name) in one transaction and stores
 * that version number in *version: the models row, a manifest row and the chunked blob of each
 * core part and each named tensor. Checks m first and fails with ENG_EINVAL (message naming what
 * is wrong, for a tensor its name) when it is not publishable: see docs/store.md, "Publishing";
 * among the checks, each user's seen list must be strictly increasing, and each tensor needs a
 * valid, unreserved, unique name, a known dtype, 0..4 non-negative dimensions whose size in bytes
 * fits an int64_t, and data unless that size is 0. On any failure nothing of the version is
 * visible and the store is as before. */
int sto_publish(sto_db_t *db, const sto_model_in_t *m, int64_t *version, eng_error_t *err);

/* One ready version, as listed. Strings are owned by the list. */
typedef struct {
    char *name, *kind, *created; /* created: ISO-8601 UTC */
    int64_t version;
    int32_t n_users, n_items, dim;
    int64_t bytes; /* total blob bytes, named tensors included */
    int n_tensors; /* named tensors of the version, not counting the six core parts */
    int pinned;    /* the version its name is pinned to */
    int live;      /* the version served for its name: the pinned one, else the newest */
    char *params_json, *metrics_json;
} sto_version_info_t;

/* All ready versions, ordered by name then version, into a new array *out of *n entries (free
 * with sto_list_free). name may be NULL for every model. */
int sto_list(sto_db_t *db, const char *name, sto_version_info_t **out, size_t *n, eng_error_t *err);
void sto_list_free(sto_version_info_t *v, size_t n);

/* A loaded version: everything serving needs, and the named tensors asked for, owned by this
 * struct (tensor names and data included). */
typedef struct {
    sto_version_info_t info;
    eng_idmap_t *users, *items;
    float *user_vecs, *item_vecs; /* [n_users x dim], [n_items x dim] */
    int64_t *seen_ptr;            /* [n_users + 1] */
    int32_t *seen_idx;            /* [seen_ptr[n_users]], each user's list strictly increasing */
    sto_tensor_t *tensors;        /* [n_tensors] the named tensors loaded; NULL when none */
    int n_tensors;
} sto_model_t;

/* Loads version `version` of model name (version 0: the live one, sto_live) into a new *out (free
 * with sto_model_free), with the named tensors chosen by tensors: NULL for every named tensor of
 * the version (in byte order of their names), else a NULL-terminated list of names, loaded in
 * that order ({NULL}: none); a listed name the version lacks is skipped (a tensor an older
 * trainer did not publish: the caller asks sto_model_tensor and does without). The core parts are
 * always loaded.
 *
 * Checks what it loads against the version's manifest before allocating for it: each blob's
 * manifest row has a known dtype and a shape of 0..4 non-negative integers whose size in bytes
 * fits an int64_t and equals the row's bytes, and the blob's chunks add up to those bytes; the
 * core parts' manifest agrees with the models row (user_vecs is f32 [n_users, dim], ...). Then
 * the content: id map counts and uniqueness, seen lists (monotone pointers, indices in range,
 * each user's list strictly increasing), finite vectors.
 *
 * Fails with ENG_EINVAL when a listed name is not a tensor name (malformed, a core part's name,
 * or listed twice), ENG_ENOTFOUND when there is no such ready version, and ENG_ECORRUPT when a
 * check fails; the message says which. */
int sto_load(sto_db_t *db, const char *name, int64_t version, const char *const *tensors,
             sto_model_t **out, eng_error_t *err);
void sto_model_free(sto_model_t *m);

/* The loaded tensor called name, or NULL. Borrowed from m. */
const sto_tensor_t *sto_model_tensor(const sto_model_t *m, const char *name);

/* A number that changes whenever another connection commits to the store (PRAGMA data_version):
 * a cheap "did anything change" poll for the server. This handle's own publishes do not change
 * it, so poll from a handle that does not write. */
int sto_data_version(sto_db_t *db, int64_t *out, eng_error_t *err);

/* ---- Versions: which one is served, and removing old ones ---- */

/* The live version of name into *version: the one it is pinned to, else its newest ready one;
 * 0 when name has no ready version. */
int sto_live(sto_db_t *db, const char *name, int64_t *version, eng_error_t *err);

/* Pins name to its ready version `version`: from the next reload on, servers serve it and
 * sto_load(name, 0) loads it, whatever is published later. ENG_ENOTFOUND when there is no such
 * ready version. */
int sto_pin(sto_db_t *db, const char *name, int64_t version, eng_error_t *err);

/* Removes name's pin (none is fine): its newest ready version is live again. */
int sto_unpin(sto_db_t *db, const char *name, eng_error_t *err);

/* Pins name to the newest ready version older than its live one and stores that number in
 * *version. ENG_ENOTFOUND when there is none. */
int sto_rollback(sto_db_t *db, const char *name, int64_t *version, eng_error_t *err);

/* Deletes version `version` of name with its blobs. Refuses (ENG_EINVAL, saying why) the live
 * version (a pinned version is live); ENG_ENOTFOUND when there is no such version. */
int sto_delete(sto_db_t *db, const char *name, int64_t version, eng_error_t *err);

/* Deletes, for name (NULL: every name), every ready version but the newest `keep` (>= 1) and
 * the live one, in one transaction; *deleted counts them. The file does not shrink:
 * SQLite reuses the freed pages for the next versions. */
int sto_gc(sto_db_t *db, const char *name, int keep, int64_t *deleted, eng_error_t *err);

/* ---- The interaction log ---- */

/* Longest user or item id in the log, in bytes (the trainer's readers take the same). */
#define STO_EVENT_ID_MAX 256

/* One logged interaction. Ids are borrowed, NUL-terminated. */
typedef struct {
    const char *user, *item; /* 1..STO_EVENT_ID_MAX bytes, no control characters */
    double weight;           /* finite; NAN: none given (a log without weights is not ratings) */
    double ts;               /* unix seconds, finite and >= 0; NAN: the time of the append */
} sto_event_t;

/* 0 when e may be logged, else ENG_EINVAL with err saying what is wrong with it (not where). */
int sto_event_check(const sto_event_t *e, eng_error_t *err);

/* Appends ev[0..n) to the log in one synced transaction, with consecutive sequence numbers, the
 * first stored in *first_seq (may be NULL). Checks every event first: the first bad one fails
 * the call with ENG_EINVAL, "event K: reason" (K 0-based), and nothing is written. On return 0
 * the events are on disk. */
int sto_events_append(sto_db_t *db, const sto_event_t *ev, size_t n, int64_t *first_seq,
                      eng_error_t *err);

/* Called for each event of a scan with its sequence number; a negative return stops the scan and
 * is returned by it. The event's strings are valid only during the call. */
typedef int sto_event_fn(void *ctx, int64_t seq, const sto_event_t *e, eng_error_t *err);

/* Calls fn for every logged event with ts >= since (-INFINITY: all), in sequence order, from one
 * snapshot of the log. */
int sto_events_scan(sto_db_t *db, double since, sto_event_fn *fn, void *ctx, eng_error_t *err);

/* How many events the log holds and the last sequence number (0 and 0 when empty). */
int sto_events_count(sto_db_t *db, int64_t *count, int64_t *last_seq, eng_error_t *err);

#endif
