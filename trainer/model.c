/* Model registry, parameter block and the generic training step. */
#include "trainer/model.h"

#include <stdlib.h>
#include <string.h>

extern const trn_model_ops_t trn_lightgcn_ops;

static const trn_model_ops_t *const models[] = {&trn_lightgcn_ops};

#define N_MODELS (sizeof models / sizeof models[0])

trn_hparams_t trn_hparams_defaults(void)
{
    return (trn_hparams_t){.model = "lightgcn",
                           .dim = 64,
                           .layers = 3,
                           .lr = 1e-3f,
                           .decay = 1e-4f,
                           .margin = 1.0f,
                           .loss = TRN_LOSS_BPR,
                           .batch = 2048,
                           .seed = 2020,
                           .threads = 1};
}

const trn_model_ops_t *trn_model_find(const char *kind)
{
    for (size_t i = 0; i < N_MODELS; i++)
        if (strcmp(models[i]->kind, kind) == 0)
            return models[i];
    return NULL;
}

const char *trn_model_kinds(void)
{
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0; i < N_MODELS; i++) {
            if (i)
                strcat(buf, " ");
            strcat(buf, models[i]->kind);
        }
    return buf;
}

trn_model_t *trn_model_new(const eng_csr_t *train, const trn_hparams_t *hp, eng_error_t *err)
{
    const trn_model_ops_t *ops = trn_model_find(hp->model);
    if (!ops) {
        eng_error_set(err, ENG_EINVAL, "unknown model '%s' (known: %s)", hp->model,
                      trn_model_kinds());
        return NULL;
    }
    if (hp->dim < 1 || hp->dim > 4096 || hp->layers < 0 || hp->layers > 16 || hp->batch < 1 ||
        !(hp->lr > 0) || !(hp->decay >= 0)) {
        eng_error_set(err, ENG_EINVAL,
                      "bad settings: need 1 <= dim <= 4096, 0 <= layers <= 16, batch >= 1, "
                      "lr > 0, decay >= 0");
        return NULL;
    }
    trn_model_t *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->ops = ops;
    m->hp = *hp;
    m->n_users = train->rows;
    m->n_items = train->cols;
    m->n_params = ops->n_params(train->rows, train->cols, hp);
    m->params = calloc(4 * m->n_params, sizeof *m->params);
    if (!m->params)
        goto nomem;
    m->grads = m->params + m->n_params;
    m->adam_m = m->grads + m->n_params;
    m->adam_v = m->adam_m + m->n_params;
    m->adam = eng_adam_defaults(hp->lr);
    int rc = ops->init(m, train);
    if (rc == ENG_ENOMEM)
        goto nomem;
    if (rc < 0) {
        eng_error_set(err, rc, "%s: initialisation failed: %s", ops->kind, eng_strerror(rc));
        trn_model_free(m);
        return NULL;
    }
    return m;
nomem:
    eng_error_set(err, ENG_ENOMEM, "out of memory building the %s model", hp->model);
    trn_model_free(m);
    return NULL;
}

void trn_model_free(trn_model_t *m)
{
    if (!m)
        return;
    if (m->impl)
        m->ops->free_impl(m->impl);
    free(m->params);
    free(m);
}

double trn_model_step(trn_model_t *m, const trn_batch_t *b)
{
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    double loss = m->ops->batch_grad(m, b);
    eng_adam_update(&m->adam, m->params, m->grads, m->adam_m, m->adam_v, m->n_params,
                    m->hp.threads);
    return loss;
}
