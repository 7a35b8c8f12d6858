/* The quality gate's evaluation (see trainer/gate.h). */
#include "trainer/gate.h"

#include <stdlib.h>
#include <string.h>

/* m's entries at the users with known[u] and the items with col[i] >= 0, renumbered to col[i]:
 * a new [m->rows x cols] matrix, rows still sorted (col keeps the items' order). */
static eng_csr_t *restrict_to(const eng_csr_t *m, const uint8_t *known, const int32_t *col,
                              int32_t cols)
{
    int64_t nnz = 0;
    for (int32_t u = 0; u < m->rows; u++)
        for (int64_t k = m->ptr[u]; known[u] && k < m->ptr[u + 1]; k++)
            nnz += col[m->idx[k]] >= 0;
    eng_csr_t *r = eng_csr_new(m->rows, cols, nnz, 0);
    if (!r)
        return NULL;
    int64_t w = 0;
    for (int32_t u = 0; u < m->rows; u++) {
        for (int64_t k = m->ptr[u]; known[u] && k < m->ptr[u + 1]; k++)
            if (col[m->idx[k]] >= 0)
                r->idx[w++] = col[m->idx[k]];
        r->ptr[u + 1] = w;
    }
    return r;
}

/* Row `from` of src [.. x dim] into row `to` of dst, or zeros when from < 0. */
static void put_row(float *dst, int64_t to, const float *src, int64_t from, int dim)
{
    if (from < 0)
        memset(dst + to * dim, 0, (size_t)dim * sizeof *dst);
    else
        memcpy(dst + to * dim, src + from * dim, (size_t)dim * sizeof *dst);
}

int trn_gate_evaluate(trn_model_t *m, const trn_data_t *d, const sto_model_t *live, const int *ks,
                      int nk, trn_metrics_t *now, trn_metrics_t *then, eng_error_t *err)
{
    if (!d->test)
        return eng_error_set(err, ENG_EINVAL,
                             "the quality gate needs a holdout: give --split or --test");
    const int32_t nu = d->n_users, ni = d->n_items;
    const int dn = m->ops->vec_dim(m->cfg), dl = live->info.dim;
    uint8_t *known = calloc((size_t)nu + 1, 1);
    int32_t *lu = malloc(((size_t)nu + 1) * sizeof *lu),
            *li = malloc(((size_t)ni + 1) * sizeof *li),
            *col = malloc(((size_t)ni + 1) * sizeof *col);
    float *uv = NULL, *iv = NULL, *niv = NULL, *luv = NULL, *liv = NULL;
    eng_csr_t *train = NULL, *test = NULL;
    int rc = ENG_ENOMEM;
    if (!known || !lu || !li || !col)
        goto done;
    int32_t common = 0;
    for (int32_t u = 0; u < nu; u++) {
        const char *id = eng_idmap_name(d->users, u);
        lu[u] = eng_idmap_find(live->users, id, strlen(id));
        known[u] = lu[u] >= 0;
    }
    for (int32_t i = 0; i < ni; i++) {
        const char *id = eng_idmap_name(d->items, i);
        li[i] = eng_idmap_find(live->items, id, strlen(id));
        col[i] = li[i] >= 0 ? common++ : -1;
    }
    if (!(train = restrict_to(d->train, known, col, common)) ||
        !(test = restrict_to(d->test, known, col, common)) ||
        (rc = trn_model_vectors(m, &uv, &iv)) < 0)
        goto done;
    rc = ENG_ENOMEM;
    niv = malloc(((size_t)common + 1) * dn * sizeof *niv);
    luv = malloc(((size_t)nu + 1) * dl * sizeof *luv);
    liv = malloc(((size_t)common + 1) * dl * sizeof *liv);
    if (!niv || !luv || !liv)
        goto done;
    for (int32_t u = 0; u < nu; u++)
        put_row(luv, u, live->user_vecs, lu[u], dl);
    for (int32_t i = 0; i < ni; i++)
        if (col[i] >= 0) {
            put_row(niv, col[i], iv, i, dn);
            put_row(liv, col[i], live->item_vecs, li[i], dl);
        }
    if (common == 0) { /* nothing in common: no user evaluated, as trn_eval_ranking says it */
        memset(now, 0, sizeof *now);
        now->nk = nk;
        memcpy(now->ks, ks, (size_t)nk * sizeof *ks);
        *then = *now;
        rc = ENG_OK;
        goto done;
    }
    if ((rc = trn_eval_ranking(uv, niv, dn, train, test, ks, nk, m->threads, now)) < 0 ||
        (rc = trn_eval_ranking(luv, liv, dl, train, test, ks, nk, m->threads, then)) < 0)
        goto done;
done:
    if (rc == ENG_ENOMEM)
        eng_error_set(err, rc, "out of memory evaluating the live version");
    else if (rc < 0 && err && !err->msg[0])
        eng_error_set(err, rc, "evaluating the live version: %s", eng_strerror(rc));
    free(known), free(lu), free(li), free(col);
    free(uv), free(iv), free(niv), free(luv), free(liv);
    eng_csr_free(train);
    eng_csr_free(test);
    return rc;
}
