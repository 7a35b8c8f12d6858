/* The training loop. */
#include "trainer/train.h"
#include "engine/clock.h"

#include <stdlib.h>
#include <string.h>

int64_t trn_train_epoch_examples(const trn_model_t *m, const trn_data_t *d)
{
    return m->ops->epoch_examples ? m->ops->epoch_examples(m) : d->train->nnz;
}

static int score_pairs(void *ctx, const int32_t *users, const int32_t *items, int64_t n, float *out)
{
    trn_model_t *m = ctx;
    return m->ops->score(m, users, items, n, out);
}

int trn_train_evaluate(trn_model_t *m, const trn_data_t *d, const int *ks, int nk,
                       trn_metrics_t *out)
{
    if (m->ops->evaluate) {
        memset(out, 0, sizeof *out);
        return m->ops->evaluate(m, out);
    }
    if (m->ops->score) {
        int rc = trn_eval_ranking_pairs(score_pairs, m, d->train, d->test, ks, nk, out);
        return rc == ENG_OK ? trn_eval_auc_pairs(score_pairs, m, d->train, d->test, m->seed, out)
                            : rc;
    }
    float *uv, *iv;
    int rc = trn_model_vectors(m, &uv, &iv);
    const int dim = rc == ENG_OK ? m->ops->vec_dim(m->cfg) : 0;
    if (rc == ENG_OK)
        rc = trn_eval_ranking(uv, iv, dim, d->train, d->test, ks, nk, m->threads, out);
    if (rc == ENG_OK)
        rc = trn_eval_auc(uv, iv, dim, d->train, d->test, m->seed, out);
    if (rc == ENG_OK && m->hp->loss == TRN_LOSS_MSE && d->test->val)
        rc = trn_eval_ratings(uv, iv, dim, d->test, out);
    free(uv);
    free(iv);
    return rc;
}

int trn_train_run(trn_model_t *m, const trn_data_t *d, const trn_train_opts_t *o,
                  trn_epoch_t *epochs, eng_error_t *err)
{
    const int batch = m->hp->batch, rated = m->hp->loss == TRN_LOSS_MSE;
    trn_sampler_t *s = NULL;
    trn_batch_t b = {0};
    int rc;
    if (rated && !d->train->val) {
        rc = eng_error_set(err, ENG_EINVAL, "--loss mse needs ratings: the training data has none");
        goto done;
    }
    if (rated && m->ops->sample) {
        rc = eng_error_set(
            err, ENG_EINVAL,
            "model %s draws its own examples: it cannot train on ratings (--loss mse)",
            m->ops->kind);
        goto done;
    }
    s = trn_sampler_new(d->train, m->seed);
    rc = ENG_ENOMEM;
    if (!s || (rated ? trn_batch_alloc_rated(&b, batch)
                     : trn_batch_alloc(&b, batch, m->hp->negatives)) != ENG_OK) {
        eng_error_set(err, rc, "out of memory allocating the sampler");
        goto done;
    }
    if (!m->ops->sample && (rated ? d->train->nnz : trn_sampler_users(s)) == 0) {
        rc = eng_error_set(err, ENG_EEMPTY, "no user has a training item to sample from");
        goto done;
    }
    const int64_t n_train = trn_train_epoch_examples(m, d);
    int n_batches = (int)((n_train + batch - 1) / batch);
    if (o->max_batches > 0 && o->max_batches < n_batches)
        n_batches = o->max_batches;
    for (int ep = 1; ep <= o->epochs; ep++) {
        trn_epoch_t *e = &epochs[ep - 1];
        *e = (trn_epoch_t){.epoch = ep};
        double t0 = eng_now(), total = 0;
        for (int k = 0; k < n_batches; k++) {
            int64_t left = n_train - (int64_t)k * batch;
            int n = left < batch ? (int)left : batch;
            if (m->ops->sample)
                m->ops->sample(m, &b, n);
            else
                trn_sampler_next(s, &b, n);
            double loss = trn_model_step(m, &b);
            total += loss;
            if (o->on_batch)
                o->on_batch(o->ud, ep, k + 1, n_batches, loss);
        }
        if (m->ops->epoch_end)
            m->ops->epoch_end(m);
        e->batches = n_batches;
        e->loss = total / n_batches;
        e->train_s = eng_now() - t0;
        int due = o->eval_every > 0 ? ep % o->eval_every == 0 || ep == o->epochs : ep == o->epochs;
        if ((d->test || m->ops->evaluate) && due) {
            double t1 = eng_now();
            rc = trn_train_evaluate(m, d, o->ks, o->nk, &e->metrics);
            if (rc < 0) {
                eng_error_set(err, rc, "evaluation failed: %s", eng_strerror(rc));
                goto done;
            }
            e->evaluated = 1;
            e->eval_s = eng_now() - t1;
        }
        if (o->on_epoch)
            o->on_epoch(o->ud, e);
    }
    rc = ENG_OK;
done:
    trn_batch_free(&b);
    trn_sampler_free(s);
    return rc;
}
