/* The model store: versioned, complete trained models in one SQLite file.
 *
 * Schema (see docs/store.md): meta(key, value) with schema_version; models(id, name, version,
 * kind, created, status, n_users, n_items, dim, params JSON, metrics JSON, bytes); blobs(model_id,
 * key, chunk, data) holding the id maps, float32 vectors and seen-item lists in chunks below
 * SQLite's blob limit. WAL mode, so readers (the server) work while a trainer publishes.
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

#define STO_SCHEMA_VERSION 1

typedef struct sto_db sto_db_t;

enum { STO_READONLY = 0, STO_READWRITE = 1, STO_CREATE = 2 };

/* Opens (with STO_CREATE: creates if missing and sets up the schema) the store at path; *out is a
 * new handle to close with sto_close. Fails with ENG_EDB (message names the path) when the file is
 * not a gnnrec store, or with ENG_ECORRUPT when its schema_version is newer than this build's.
 * STO_CREATE implies read-write; without it a missing file is ENG_EDB and nothing is created. A
 * read-write open also upgrades an older schema (docs/store.md, "Migrations"). */
int sto_open(const char *path, int flags, sto_db_t **out, eng_error_t *err);
void sto_close(sto_db_t *db);

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
} sto_model_in_t;

/* Publishes m as the next version of m->name (1 for a new name) in one transaction and stores
 * that version number in *version. On any failure nothing of the version is visible and the
 * store is as before. */
int sto_publish(sto_db_t *db, const sto_model_in_t *m, int64_t *version, eng_error_t *err);

/* One ready version, as listed. Strings are owned by the list. */
typedef struct {
    char *name, *kind, *created; /* created: ISO-8601 UTC */
    int64_t version;
    int32_t n_users, n_items, dim;
    int64_t bytes; /* total blob bytes */
    char *params_json, *metrics_json;
} sto_version_info_t;

/* All ready versions, ordered by name then version, into a new array *out of *n entries (free
 * with sto_list_free). name may be NULL for every model. */
int sto_list(sto_db_t *db, const char *name, sto_version_info_t **out, size_t *n, eng_error_t *err);
void sto_list_free(sto_version_info_t *v, size_t n);

/* A loaded version: everything serving needs, owned by this struct. */
typedef struct {
    sto_version_info_t info;
    eng_idmap_t *users, *items;
    float *user_vecs, *item_vecs; /* [n_users x dim], [n_items x dim] */
    int64_t *seen_ptr;            /* [n_users + 1] */
    int32_t *seen_idx;
} sto_model_t;

/* Loads version `version` of model name (version 0: the newest ready one) into a new *out (free
 * with sto_model_free). Checks what it loads: blob sizes against the dimensions, id map counts
 * and uniqueness, seen lists (monotone, indices in range), finite vectors. Fails with
 * ENG_ENOTFOUND when there is no such ready version and ENG_ECORRUPT when a check fails; the
 * message says which. */
int sto_load(sto_db_t *db, const char *name, int64_t version, sto_model_t **out, eng_error_t *err);
void sto_model_free(sto_model_t *m);

/* A number that changes whenever another connection commits to the store (PRAGMA data_version):
 * a cheap "did anything change" poll for the server. This handle's own publishes do not change
 * it, so poll from a handle that does not write. */
int sto_data_version(sto_db_t *db, int64_t *out, eng_error_t *err);

#endif
