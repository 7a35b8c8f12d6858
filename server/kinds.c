/* The model kinds table and the abilities table. */
#include "server/kinds.h"

#include <stddef.h>
#include <string.h>

/* One row per ability, in enum order. A new ability needs a row here, a route that checks it,
 * and a column in the kinds below: the count is asserted so that it cannot be half-added. */
static const struct {
    const char *name, *refusal;
} abilities[] = {
    [SRV_ABILITY_FOLD_IN] = {"fold-in", "fold in new users"},
    [SRV_ABILITY_EXPLAIN] = {"explain", "explain recommendations"},
};
_Static_assert(SRV_ABILITY_COUNT == 2,
               "a new ability needs a name, a route and kinds that have it");
_Static_assert(sizeof abilities / sizeof *abilities == SRV_ABILITY_COUNT,
               "one row per ability in the abilities table");

/* No tensors beyond what every version has (ids, vectors, seen lists). */
static const char *const no_tensors[] = {NULL};

static const srv_kind_t kinds[] = {
    {"gcn", 0, no_tensors},
    {"lightgcn", 0, no_tensors},
    {"mf", 0, no_tensors},
    {"ngcf", 0, no_tensors},
};

/* A kind this build does not know: served by inner product like every kind, nothing more. */
static const srv_kind_t fallback = {NULL, 0, no_tensors};

const srv_kind_t *srv_kind_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return &fallback;
}

int srv_kind_can(const srv_kind_t *k, srv_ability_t a)
{
    return (k->abilities & SRV_CAN(a)) != 0;
}

const char *srv_ability_name(srv_ability_t a)
{
    return abilities[a].name;
}

const char *srv_ability_refusal(srv_ability_t a)
{
    return abilities[a].refusal;
}
