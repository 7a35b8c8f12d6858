/* Internal to storage/: the connection shared by the store's files (store.c: schema, publish,
 * list, load; versions.c: pins and deletion; events.c: the interaction log), and knobs that
 * only tests turn. Not part of the public API (storage/store.h): names are sto__ (two
 * underscores) so that they cannot be mistaken for it.
 *
 * Blobs are written in chunks of STO_CHUNK_BYTES (256 MiB): below SQLite's 1 GB blob limit, yet
 * few enough chunks that a large model is a handful of rows. A test cannot afford 256 MiB
 * blobs, so it shrinks the chunk size to prove that multi-chunk writing and reading work. */
#ifndef GNNREC_STORAGE_STORE_INTERNAL_H
#define GNNREC_STORAGE_STORE_INTERNAL_H

#include "storage/store.h"

#include <sqlite3.h>
#include <stddef.h>

#define STO_CHUNK_BYTES ((size_t)256 << 20)

struct sto_db {
    sqlite3 *db;
    char *path; /* for messages: every error names the store it came from */
};

/* Fills err from the connection's last SQLite error; what says which step failed. Returns the
 * code (ENG_EDB, or ENG_ENOMEM, ENG_ECORRUPT for those). */
int sto__db_error(sto_db_t *s, eng_error_t *err, const char *what);
/* sqlite3_exec / sqlite3_prepare_v2, failing through sto__db_error. */
int sto__exec(sto_db_t *s, const char *sql, const char *what, eng_error_t *err);
int sto__prepare(sto_db_t *s, const char *sql, sqlite3_stmt **st, eng_error_t *err);
/* Ends a failed transaction, if one is open, so that nothing of it reaches the store. Called
 * after err is filled, because ROLLBACK replaces the connection's error message. */
void sto__rollback(sto_db_t *s);

/* The live version of name, as SQL: the pinned one when it is ready, else the newest ready one
 * (NULL when none); ?1 is the name. */
#define STO__LIVE_SQL(name)                                                                        \
    "COALESCE((SELECT p.version FROM pins p JOIN models pm ON pm.name = p.name"                    \
    " AND pm.version = p.version AND pm.status = 'ready' WHERE p.name = " name "),"                \
    " (SELECT MAX(version) FROM models lm WHERE lm.name = " name " AND lm.status = 'ready'))"

/* Sets the chunk size later publishes in this process write (0: back to STO_CHUNK_BYTES) and
 * returns the previous one. Loading reads any chunking, so stores stay compatible. Not
 * thread-safe: call it only while no publish runs. */
size_t sto_test_set_chunk_bytes(size_t n);

#endif
