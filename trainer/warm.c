/* Warm start from a published version (see trainer/warm.h). */
#include "trainer/warm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "param."

char **trn_warm_names(const trn_model_t *m)
{
    trn_view_t views[TRN_MAX_VIEWS];
    const int nv = m->ops->views(m, views);
    char **names = calloc((size_t)nv + 1, sizeof *names);
    for (int i = 0; names && i < nv; i++) {
        size_t len = strlen(PREFIX) + strlen(views[i].name) + 1;
        if (!(names[i] = malloc(len))) {
            trn_warm_names_free(names);
            return NULL;
        }
        snprintf(names[i], len, PREFIX "%s", views[i].name);
    }
    return names;
}

void trn_warm_names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

/* Row r of dst [rows x cols] from row map[r] of t (when >= 0 and t has it); returns how many. */
static int64_t copy_rows(float *dst, int64_t rows, int64_t cols, const int32_t *map,
                         const sto_tensor_t *t)
{
    const float *src = t->data;
    int64_t copied = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (map[r] < 0 || map[r] >= t->shape[0])
            continue;
        memcpy(dst + r * cols, src + (size_t)map[r] * cols, (size_t)cols * sizeof *dst);
        copied++;
    }
    return copied;
}

int trn_warm_start(trn_model_t *m, const trn_data_t *d, const sto_model_t *from,
                   trn_warm_stats_t *st, eng_error_t *err)
{
    *st = (trn_warm_stats_t){0};
    const sto_version_info_t *in = &from->info;
    if (strcmp(in->kind, m->ops->kind) != 0)
        return eng_error_set(err, ENG_EINVAL,
                             "warm start: %s v%lld is a %s model, this run trains %s", in->name,
                             (long long)in->version, in->kind, m->ops->kind);
    /* this run's users and items in the version's rows, by id */
    int32_t *umap = malloc(((size_t)d->n_users + 1) * sizeof *umap),
            *imap = malloc(((size_t)d->n_items + 1) * sizeof *imap);
    int rc = ENG_OK;
    if (!umap || !imap) {
        rc = eng_error_set(err, ENG_ENOMEM, "warm start: out of memory");
        goto done;
    }
    eng_idmap_translate(d->users, from->users, umap);
    eng_idmap_translate(d->items, from->items, imap);
    trn_view_t views[TRN_MAX_VIEWS];
    const int nv = m->ops->views(m, views);
    for (int i = 0; i < nv; i++) {
        const trn_view_t *v = &views[i];
        char name[96];
        snprintf(name, sizeof name, PREFIX "%s", v->name);
        const sto_tensor_t *t = sto_model_tensor(from, name);
        if (!t || t->dtype != STO_F32 || t->ndim != 2) {
            st->skipped++;
            continue;
        }
        float *dst = m->params + v->offset;
        if (v->rows_of != TRN_ROWS_NONE) {
            if (t->shape[1] != v->cols) {
                rc = eng_error_set(err, ENG_EINVAL,
                                   "warm start: %s v%lld's %s rows have %lld values, this run's "
                                   "%lld (another dim?)",
                                   in->name, (long long)in->version, v->name,
                                   (long long)t->shape[1], (long long)v->cols);
                goto done;
            }
            const int users = v->rows_of == TRN_ROWS_USERS;
            const int64_t own = users ? d->n_users : d->n_items;
            int64_t n =
                copy_rows(dst, v->rows < own ? v->rows : own, v->cols, users ? umap : imap, t);
            int64_t *most = users ? &st->users : &st->items;
            *most = n > *most ? n : *most;
            st->views++;
        } else if (t->shape[0] == v->rows && t->shape[1] == v->cols) {
            memcpy(dst, t->data, (size_t)(v->rows * v->cols) * sizeof *dst);
            st->views++;
        } else {
            st->skipped++;
        }
    }
done:
    free(umap);
    free(imap);
    return rc;
}
