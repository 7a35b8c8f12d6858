/* The quality gate's evaluation (see trainer/gate.h). */
#include "trainer/gate.h"

#include <stdlib.h>
#include <string.h>

/* The gate's train (the exclusions) and test matrices [d users x common items]: for each user
 * both versions know, its training items and its held-out items the live version was trained
 * on (its seen list: not fresh, so excluded rather than tested), and its other held-out items
 * as the test. col renumbers d's items to the common ones (-1: not common), from_live the live
 * version's items to them. */
static int gate_matrices(const trn_data_t *d, const sto_model_t *live, const int32_t *lu,
                         const int32_t *col, const int32_t *from_live, int32_t cols,
                         eng_csr_t **train, eng_csr_t **test)
{
    const eng_csr_t *t = d->train, *h = d->test;
    int64_t n = 0;
    for (int32_t u = 0; u < t->rows; u++)
        n += lu[u] >= 0 ? (t->ptr[u + 1] - t->ptr[u]) + (h->ptr[u + 1] - h->ptr[u]) : 0;
    int32_t *r = malloc(((size_t)n + 1) * sizeof *r), *c = malloc(((size_t)n + 1) * sizeof *c);
    int32_t *tr = malloc(((size_t)n + 1) * sizeof *tr), *tc = malloc(((size_t)n + 1) * sizeof *tc);
    uint8_t *lseen = calloc((size_t)cols + 1, 1);
    int rc = ENG_ENOMEM;
    if (!r || !c || !tr || !tc || !lseen)
        goto done;
    int64_t nt = 0, nh = 0;
    for (int32_t u = 0; u < t->rows; u++) {
        if (lu[u] < 0)
            continue;
        const int64_t lb = live->seen_ptr[lu[u]], le = live->seen_ptr[lu[u] + 1];
        for (int64_t k = lb; k < le; k++)
            if (from_live[live->seen_idx[k]] >= 0)
                lseen[from_live[live->seen_idx[k]]] = 1;
        for (int64_t k = t->ptr[u]; k < t->ptr[u + 1]; k++)
            if (col[t->idx[k]] >= 0)
                tr[nt] = u, tc[nt++] = col[t->idx[k]];
        for (int64_t k = h->ptr[u]; k < h->ptr[u + 1]; k++) {
            const int32_t i = col[h->idx[k]];
            if (i < 0)
                continue;
            if (lseen[i])
                tr[nt] = u, tc[nt++] = i;
            else
                r[nh] = u, c[nh++] = i;
        }
        for (int64_t k = lb; k < le; k++)
            if (from_live[live->seen_idx[k]] >= 0)
                lseen[from_live[live->seen_idx[k]]] = 0;
    }
    if ((*train = eng_csr_from_pairs(t->rows, cols, tr, tc, nt)) &&
        (*test = eng_csr_from_pairs(t->rows, cols, r, c, nh)))
        rc = ENG_OK;
done:
    free(r), free(c), free(tr), free(tc), free(lseen);
    return rc;
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
    const int32_t nl = live->info.n_items;
    int32_t *lu = malloc(((size_t)nu + 1) * sizeof *lu),
            *li = malloc(((size_t)ni + 1) * sizeof *li),
            *col = malloc(((size_t)ni + 1) * sizeof *col),
            *from_live = malloc(((size_t)nl + 1) * sizeof *from_live);
    float *uv = NULL, *iv = NULL, *niv = NULL, *luv = NULL, *liv = NULL;
    eng_csr_t *train = NULL, *test = NULL;
    int rc = ENG_ENOMEM;
    if (!lu || !li || !col || !from_live)
        goto done;
    for (int32_t i = 0; i < nl; i++)
        from_live[i] = -1;
    int32_t common = 0;
    eng_idmap_translate(d->users, live->users, lu);
    eng_idmap_translate(d->items, live->items, li);
    for (int32_t i = 0; i < ni; i++) {
        col[i] = li[i] >= 0 ? common++ : -1;
        if (li[i] >= 0)
            from_live[li[i]] = col[i];
    }
    if ((rc = gate_matrices(d, live, lu, col, from_live, common, &train, &test)) < 0 ||
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
    free(lu), free(li), free(col), free(from_live);
    free(uv), free(iv), free(niv), free(luv), free(liv);
    eng_csr_free(train);
    eng_csr_free(test);
    return rc;
}
