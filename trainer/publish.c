/* Publishing: keep the trained rows, describe the parameter views as tensors, one sto_publish. */
#include "trainer/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kept rows of one side (users or items): keep[r] is r's new index, or -1. */
typedef struct {
    int32_t *keep; /* [n] */
    int32_t n, kept;
    eng_idmap_t *ids; /* the kept ids, in order */
} rows_t;

static int rows_build(rows_t *r, const eng_idmap_t *ids, const int64_t *deg, int32_t n)
{
    r->n = n;
    r->kept = 0;
    r->keep = malloc(((size_t)n + 1) * sizeof *r->keep);
    r->ids = eng_idmap_new();
    if (!r->keep || !r->ids)
        return ENG_ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        if (deg[i] == 0) {
            r->keep[i] = -1;
            continue;
        }
        const char *s = eng_idmap_name(ids, i);
        if (eng_idmap_intern(r->ids, s, strlen(s)) < 0)
            return ENG_ENOMEM;
        r->keep[i] = r->kept++;
    }
    return ENG_OK;
}

static void rows_free(rows_t *r)
{
    free(r->keep);
    eng_idmap_free(r->ids);
}

/* The kept rows of src [r->n x cols] (4-byte elements) into a new [r->kept x cols] array. */
static void *compact(const rows_t *r, const void *src, int64_t cols)
{
    const size_t row = (size_t)cols * 4;
    char *dst = malloc((size_t)r->kept * row + 4);
    if (!dst)
        return NULL;
    for (int32_t i = 0; i < r->n; i++)
        if (r->keep[i] >= 0)
            memcpy(dst + (size_t)r->keep[i] * row, (const char *)src + (size_t)i * row, row);
    return dst;
}

/* Everything a publish allocates, freed in one place. */
typedef struct {
    rows_t users, items;
    float *uv, *iv, *cuv, *civ;
    int64_t *seen_ptr;
    int32_t *seen_idx;
    sto_tensor_t t[4 * TRN_MAX_VIEWS + 1];
    char names[4 * TRN_MAX_VIEWS][80];
    void *owned[4 * TRN_MAX_VIEWS]; /* compacted copies */
    int n_t, n_owned;
    int64_t step;
} pub_t;

static void pub_free(pub_t *p)
{
    rows_free(&p->users);
    rows_free(&p->items);
    free(p->uv);
    free(p->iv);
    free(p->cuv);
    free(p->civ);
    free(p->seen_ptr);
    free(p->seen_idx);
    for (int i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
}

/* Adds [rows x cols] data as tensor "prefix.name" (or "name" when prefix is NULL), keeping the
 * trained rows when rows_of says whose rows they are. */
static int add_tensor(pub_t *p, const char *prefix, const char *name, const void *data,
                      int64_t rows, int64_t cols, trn_rows_t rows_of, sto_dtype_t dtype)
{
    const rows_t *r = rows_of == TRN_ROWS_USERS   ? &p->users
                      : rows_of == TRN_ROWS_ITEMS ? &p->items
                                                  : NULL;
    if (r) {
        void *c = compact(r, data, cols);
        if (!c)
            return ENG_ENOMEM;
        p->owned[p->n_owned++] = c;
        data = c;
        rows = r->kept;
    }
    char *full = p->names[p->n_t];
    snprintf(full, sizeof p->names[0], "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
    p->t[p->n_t++] = (sto_tensor_t){
        .name = full, .dtype = dtype, .ndim = 2, .shape = {rows, cols}, .data = data};
    return ENG_OK;
}

int trn_publish(sto_db_t *db, trn_model_t *m, const trn_data_t *d, const trn_publish_opts_t *o,
                int64_t *version, eng_error_t *err)
{
    pub_t p = {0};
    const eng_csr_t *t = d->train;
    const int dim = m->ops->vec_dim(m->cfg);
    int rc = ENG_ENOMEM;
    int64_t *udeg = malloc(((size_t)t->rows + 1) * sizeof *udeg);
    int64_t *ideg = calloc((size_t)t->cols + 1, sizeof *ideg);
    if (!udeg || !ideg)
        goto nomem;
    for (int32_t u = 0; u < t->rows; u++)
        udeg[u] = t->ptr[u + 1] - t->ptr[u];
    for (int64_t k = 0; k < t->nnz; k++)
        ideg[t->idx[k]]++;
    /* a kind trained on the knowledge graph alone trained every entity, and has no users */
    const int kg_only = (m->ops->needs & TRN_NEEDS_KG_ONLY) != 0;
    for (int32_t i = 0; kg_only && i < t->cols; i++)
        ideg[i] = 1;
    if (rows_build(&p.users, d->users, udeg, t->rows) < 0 ||
        rows_build(&p.items, d->items, ideg, t->cols) < 0)
        goto nomem;
    if ((p.users.kept == 0 && !kg_only) || p.items.kept == 0) {
        rc = eng_error_set(err, ENG_EEMPTY, "nothing to publish: no training interactions");
        goto done;
    }
    if ((rc = trn_model_vectors(m, &p.uv, &p.iv)) < 0) {
        eng_error_set(err, rc, "computing the final vectors: %s", eng_strerror(rc));
        goto done;
    }
    rc = ENG_ENOMEM;
    p.cuv = compact(&p.users, p.uv, dim);
    p.civ = compact(&p.items, p.iv, dim);
    p.seen_ptr = malloc(((size_t)p.users.kept + 1) * sizeof *p.seen_ptr);
    p.seen_idx = malloc(((size_t)t->nnz + 1) * sizeof *p.seen_idx);
    if (!p.cuv || !p.civ || !p.seen_ptr || !p.seen_idx)
        goto nomem;
    /* Item indices only shrink, keeping order: each row stays sorted and unique. */
    int64_t w = 0;
    p.seen_ptr[0] = 0;
    for (int32_t u = 0; u < t->rows; u++) {
        if (p.users.keep[u] < 0)
            continue;
        for (int64_t k = t->ptr[u]; k < t->ptr[u + 1]; k++)
            p.seen_idx[w++] = p.items.keep[t->idx[k]];
        p.seen_ptr[p.users.keep[u] + 1] = w;
    }

    trn_view_t views[TRN_MAX_VIEWS];
    int nv = m->ops->views(m, views);
    const char *prefix[3] = {"param", "adam_m", "adam_v"};
    const float *block[3] = {m->params, m->adam_m, m->adam_v};
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < nv; i++)
            if (add_tensor(&p, prefix[b], views[i].name, block[b] + views[i].offset, views[i].rows,
                           views[i].cols, views[i].rows_of, STO_F32) < 0)
                goto nomem;
    if (m->ops->extras) {
        trn_extra_t extras[TRN_MAX_VIEWS];
        int ne = m->ops->extras(m, extras);
        if (ne < 0) {
            rc = eng_error_set(err, ne, "computing the %s tensors: %s", m->ops->kind,
                               eng_strerror(ne));
            goto done;
        }
        for (int i = 0; i < ne; i++)
            if (add_tensor(&p, NULL, extras[i].name, extras[i].data, extras[i].rows, extras[i].cols,
                           extras[i].rows_of, extras[i].dtype ? extras[i].dtype : STO_F32) < 0)
                goto nomem;
    }
    p.step = m->adam.step;
    p.t[p.n_t++] =
        (sto_tensor_t){.name = "adam.step", .dtype = STO_I64, .ndim = 0, .data = &p.step};

    sto_model_in_t in = {.name = o->name,
                         .kind = m->ops->kind,
                         .n_users = p.users.kept,
                         .n_items = p.items.kept,
                         .dim = dim,
                         .users = p.users.ids,
                         .items = p.items.ids,
                         .user_vecs = p.cuv,
                         .item_vecs = p.civ,
                         .seen_ptr = p.seen_ptr,
                         .seen_idx = p.seen_idx,
                         .params_json = o->params_json,
                         .metrics_json = o->metrics_json,
                         .tensors = p.t,
                         .n_tensors = p.n_t};
    rc = sto_publish(db, &in, version, err);
    goto done;
nomem:
    rc = eng_error_set(err, ENG_ENOMEM, "out of memory preparing the model for the store");
done:
    free(udeg);
    free(ideg);
    pub_free(&p);
    return rc;
}
