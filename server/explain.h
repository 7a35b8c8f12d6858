/* Explanations for the kinds with SRV_ABILITY_EXPLAIN (kgat: server/explain_kgat.c). A kind's
 * functions fill its row of server/kinds.c: the tensors it loads, prepare (what it builds from a
 * loaded version, or the ability cleared when the version lacks those tensors), release and
 * explain (srv_kind_t). */
#ifndef GNNREC_SERVER_EXPLAIN_H
#define GNNREC_SERVER_EXPLAIN_H

#include "server/registry.h"

#include <stddef.h>
#include <stdint.h>

extern const char *const srv_kgat_tensors[];
int srv_kgat_prepare(srv_version_t *v);
void srv_kgat_release(void *kind_data);
/* The paths of up to three hops in the collaborative knowledge graph (srv_kind_t.explain). */
int srv_kgat_explain(const srv_version_t *v, int32_t user, int32_t item, srv_path_t *out, int max);

#endif
