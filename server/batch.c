/* Top-K batching over worker threads. */
#include "server/batch.h"
#include "engine/err.h"
#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    struct srv_batcher *b;
    pthread_t thread;
    int started;
    srv_job_t **taken, **group; /* [max_batch] */
    eng_query_t *qs;            /* [max_batch] */
    void *scratch;              /* grown to what the largest index needs */
    size_t scratch_cap;
} worker_t;

struct srv_batcher {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    srv_job_t *head, *tail;
    int stopping;
    int max_batch;
    int n_workers;
    worker_t *workers;
};

/* Scores group[0..n) (all sharing group[0]->ix) as one batch. */
static void score_group(worker_t *w, int n)
{
    srv_job_t **jobs = w->group;
    const eng_index_t *ix = jobs[0]->ix;
    size_t need = eng_index_scratch_bytes(ix, n);
    if (need > w->scratch_cap) {
        void *s = realloc(w->scratch, need);
        if (!s) {
            for (int i = 0; i < n; i++)
                jobs[i]->failed = 1;
            return;
        }
        w->scratch = s;
        w->scratch_cap = need;
    }
    for (int i = 0; i < n; i++)
        w->qs[i] = jobs[i]->q;
    eng_index_topk(ix, w->qs, n, w->scratch);
    for (int i = 0; i < n; i++)
        jobs[i]->q.n_out = w->qs[i].n_out;
    srv_metrics_batch(n);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    srv_batcher_t *b = w->b;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->ready, &b->lock);
        if (!b->head) { /* stopping and drained */
            pthread_mutex_unlock(&b->lock);
            return NULL;
        }
        int n = 0;
        while (b->head && n < b->max_batch) {
            w->taken[n++] = b->head;
            b->head = b->head->next;
        }
        if (!b->head)
            b->tail = NULL;
        else
            pthread_cond_signal(&b->ready); /* more for another worker */
        pthread_mutex_unlock(&b->lock);
        /* Group by index (jobs of one model version share it), in arrival order. */
        for (int i = 0; i < n; i++) {
            if (!w->taken[i])
                continue;
            const eng_index_t *ix = w->taken[i]->ix;
            int g = 0;
            for (int j = i; j < n; j++)
                if (w->taken[j] && w->taken[j]->ix == ix) {
                    w->group[g++] = w->taken[j];
                    w->taken[j] = NULL;
                }
            score_group(w, g);
            for (int j = 0; j < g; j++)
                w->group[j]->done(w->group[j]);
        }
    }
}

srv_batcher_t *srv_batcher_new(int workers, int max_batch)
{
    srv_batcher_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->ready, NULL);
    b->max_batch = max_batch > 0 ? max_batch : 1;
    b->workers = calloc((size_t)(workers > 0 ? workers : 1), sizeof *b->workers);
    if (!b->workers)
        goto fail;
    b->n_workers = workers > 0 ? workers : 1;
    for (int i = 0; i < b->n_workers; i++) {
        worker_t *w = &b->workers[i];
        w->b = b;
        w->taken = malloc((size_t)b->max_batch * sizeof *w->taken);
        w->group = malloc((size_t)b->max_batch * sizeof *w->group);
        w->qs = malloc((size_t)b->max_batch * sizeof *w->qs);
        if (!w->taken || !w->group || !w->qs)
            goto fail;
    }
    for (int i = 0; i < b->n_workers; i++) {
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]) != 0)
            goto fail;
        b->workers[i].started = 1;
    }
    return b;
fail:
    srv_batcher_free(b);
    return NULL;
}

int srv_batcher_submit(srv_batcher_t *b, srv_job_t *job)
{
    job->next = NULL;
    job->failed = 0;
    pthread_mutex_lock(&b->lock);
    if (b->stopping) {
        pthread_mutex_unlock(&b->lock);
        return ENG_EINVAL;
    }
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    pthread_cond_signal(&b->ready);
    pthread_mutex_unlock(&b->lock);
    return ENG_OK;
}

void srv_batcher_free(srv_batcher_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = 1;
    pthread_cond_broadcast(&b->ready);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; b->workers && i < b->n_workers; i++) {
        worker_t *w = &b->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        free(w->taken);
        free(w->group);
        free(w->qs);
        free(w->scratch);
    }
    free(b->workers);
    pthread_cond_destroy(&b->ready);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
