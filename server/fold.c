/* What the fold-ins of server/fold_*.c share (server/fold.h). */
#include "server/fold.h"

#include <stdlib.h>

const float *srv_fold_tensor(const sto_model_t *m, const char *name, int64_t rows, int64_t cols)
{
    const sto_tensor_t *t = sto_model_tensor(m, name);
    if (!t || t->dtype != STO_F32 || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return NULL;
    return t->data;
}

int32_t *srv_fold_item_degrees(const sto_model_t *m)
{
    int32_t *deg = calloc((size_t)m->info.n_items + 1, sizeof *deg);
    if (!deg)
        return NULL;
    const int64_t nnz = m->seen_ptr[m->info.n_users];
    for (int64_t k = 0; k < nnz; k++)
        deg[m->seen_idx[k]]++;
    return deg;
}
