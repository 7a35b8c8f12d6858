/* Knobs of the model store that only tests turn. Not part of the public API (storage/store.h).
 *
 * Blobs are written in chunks of STO_CHUNK_BYTES (256 MiB): below SQLite's 1 GB blob limit, yet
 * few enough chunks that a large model is a handful of rows. A test cannot afford 256 MiB
 * blobs, so it shrinks the chunk size to prove that multi-chunk writing and reading work. */
#ifndef GNNREC_STORAGE_STORE_INTERNAL_H
#define GNNREC_STORAGE_STORE_INTERNAL_H

#include <stddef.h>

#define STO_CHUNK_BYTES ((size_t)256 << 20)

/* Sets the chunk size later publishes in this process write (0: back to STO_CHUNK_BYTES) and
 * returns the previous one. Loading reads any chunking, so stores stay compatible. Not
 * thread-safe: call it only while no publish runs. */
size_t sto_test_set_chunk_bytes(size_t n);

#endif
