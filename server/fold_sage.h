/* GraphSAGE's fold-in on the server: the functions of graphsage's row in server/kinds.c.
 *
 * A new user's vector is eng_sage_fold_in (engine/sage.h) over the version's published layer
 * weights and sage.item_layers, with the user's h^0 the mean of its items' h^0: what the trainer's
 * trn_sage_fold_in computes for the same items in the same (ascending) order, bit for bit. */
#ifndef GNNREC_SERVER_FOLD_SAGE_H
#define GNNREC_SERVER_FOLD_SAGE_H

#include <stddef.h>
#include <stdint.h>

struct srv_version;

/* The tensors the fold-in loads: sage.item_layers and every layer weight any aggregator and
 * depth may have (param.W1..W4, P1..P4, pb1..pb4, Lx1..Lx4, Lh1..Lh4, lb1..lb4); the store skips
 * those a version lacks. NULL-terminated. */
extern const char *const srv_sage_tensors[];

/* Points v->kind_data at the loaded weights. Clears the fold-in ability, and succeeds, when the
 * version cannot fold in: its params name no aggregator this build knows, a tensor its aggregator
 * and depth need is missing or of the wrong shape (a version of an older trainer), or its dim is
 * above ENG_SAGE_MAX_DIM. Returns 0 or ENG_ENOMEM. */
int srv_sage_prepare(struct srv_version *v);
void srv_sage_release(void *kind_data);

/* q[dim] = the vector of a new user who interacted with items (n > 0 indices, sorted, unique). */
void srv_sage_fold_in(const struct srv_version *v, const int32_t *items, size_t n, float *q);

#endif
