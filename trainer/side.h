/* Side information beside the interaction log: attributes of users and items, user-user edges,
 * and a knowledge graph with its item -> entity map, read from delimited files (docs/data.md,
 * "Side information") into the side-data part of a model's inputs (trn_inputs_t).
 *
 * Users and items are the log's: a row naming a user or item the log does not have is skipped
 * and counted (an attribute file may describe a whole catalogue, the log a part of it). Every
 * other data error names file and line, and a failed load leaves nothing behind. */
#ifndef GNNREC_TRAINER_SIDE_H
#define GNNREC_TRAINER_SIDE_H

#include "engine/csr.h"
#include "engine/err.h"
#include "engine/idmap.h"
#include "trainer/data.h"
#include "trainer/model.h"

#include <stdint.h>

/* The files, each NULL when the run has none. */
typedef struct {
    const char *user_attrs;    /* user,attribute,value */
    const char *item_attrs;    /* item,attribute,value */
    const char *social;        /* user,user */
    const char *kg;            /* head,relation,tail */
    const char *item_entities; /* item,entity: without it an item is the entity of its own id */
} trn_side_opts_t;

enum {
    TRN_SIDE_USER_ATTRS,
    TRN_SIDE_ITEM_ATTRS,
    TRN_SIDE_SOCIAL,
    TRN_SIDE_ITEM_ENTITIES,
    TRN_SIDE_FILES
};

typedef struct {
    /* [n_users x n_user_values] and [n_items x n_item_values] patterns: the values of each row,
     * a column per distinct "attribute=value" (the id maps give their names) */
    eng_csr_t *user_attrs, *item_attrs;
    eng_idmap_t *user_values, *item_values;
    eng_csr_t *social; /* [n_users x n_users] pattern, both directions, no self-loops */
    /* the knowledge graph with --kg (entities set, the arrays NULL for an empty file): its
     * triples in file order, a repeated one as often as it appears; entity and relation names in
     * the id maps; every item has an entity (that of its own id when the map does not name it) */
    trn_triples_t kg;
    int32_t *head, *rel, *tail, *item_entity;
    eng_idmap_t *entities, *relations;
    int64_t skipped[TRN_SIDE_FILES]; /* rows naming a user or item the log lacks, per file */
} trn_side_t;

/* Reads the files o names for the users and items of d into a new *out (free with
 * trn_side_free); a run without side files gets an empty one. Returns 0, or a negative code with
 * err filled ("path:line: reason") and *out NULL. */
int trn_side_load(const trn_side_opts_t *o, const trn_data_t *d, trn_side_t **out,
                  eng_error_t *err);

/* For a kind that trains on the knowledge graph alone (TRN_NEEDS_KG_ONLY): reads the triples of
 * the file kg into a new *side and makes the run's data *data from them: no users, the entities
 * as the items (same names and order; each item its own entity), no interactions. Free both.
 * Returns 0, or a negative code with err filled and both NULL. */
int trn_side_load_kg_only(const char *kg, trn_side_t **side, trn_data_t **data, eng_error_t *err);

void trn_side_free(trn_side_t *s);

/* Points in's side-data fields at s's (NULL where s has none). */
void trn_side_inputs(const trn_side_t *s, trn_inputs_t *in);

#endif
