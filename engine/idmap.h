/* External id <-> dense index map.
 *
 * Users and items arrive with arbitrary string ids; the engine works on dense indices 0..n-1 in
 * order of first insertion. The map owns copies of the strings (in one growing arena) and finds
 * an id in O(1) expected time (open addressing, FNV-1a). Shared by the trainer (building the
 * dataset), the store (serialising) and the server (resolving request ids). */
#ifndef GNNREC_ENGINE_IDMAP_H
#define GNNREC_ENGINE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct eng_idmap eng_idmap_t;

/* A new empty map, or NULL when out of memory. Free with eng_idmap_free. */
eng_idmap_t *eng_idmap_new(void);
void eng_idmap_free(eng_idmap_t *m);

/* Index of id s (len bytes, need not be NUL-terminated), inserting it with the next index when
 * absent. Returns the index (>= 0) or ENG_ENOMEM / ENG_ERANGE (more than INT32_MAX ids); on failure
 * the map is unchanged. */
int32_t eng_idmap_intern(eng_idmap_t *m, const char *s, size_t len);

/* Index of id s, or -1 when absent. */
int32_t eng_idmap_find(const eng_idmap_t *m, const char *s, size_t len);

/* The NUL-terminated id of index i (borrowed; valid until the map is freed). i must be < size. */
const char *eng_idmap_name(const eng_idmap_t *m, int32_t i);

int32_t eng_idmap_size(const eng_idmap_t *m);

/* out[i] = the index in `to` of from's id i, or -1 when `to` lacks it, for every i < size of
 * from: one map's indices in another's (a new run's users in a published version's). */
void eng_idmap_translate(const eng_idmap_t *from, const eng_idmap_t *to, int32_t *out);

/* Serialised form: the ids in index order, each followed by one NUL byte. eng_idmap_blob returns
 * a borrowed pointer to that form (the map keeps it) and its length in *len. */
const char *eng_idmap_blob(const eng_idmap_t *m, size_t *len);

/* A new map from the serialised form, or NULL when out of memory or when the blob is malformed
 * (not NUL-terminated, an empty or duplicate id, or a count other than expect_n; pass -1 to accept
 * any count). */
eng_idmap_t *eng_idmap_from_blob(const char *blob, size_t len, int32_t expect_n);

#endif
