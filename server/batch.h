/* Top-K batching: concurrent top-K queries scored together, so the item matrix streams through
 * the cache once per batch instead of once per query.
 *
 * Request threads submit jobs and return at once (the HTTP layer suspends the connection);
 * worker threads take up to max_batch queued jobs at a time, score every group of jobs that share
 * an index in one eng_index_topk call, and call each job's done callback on the worker thread. A
 * job alone in the queue is scored alone: batching adds no waiting, it only happens under load. */
#ifndef GNNREC_SERVER_BATCH_H
#define GNNREC_SERVER_BATCH_H

#include "engine/index.h"

typedef struct srv_job srv_job_t;
struct srv_job {
    const eng_index_t *ix; /* borrowed; must outlive the job (the request holds its version) */
    eng_query_t q;         /* q.out has room for q.k results; n_out is filled in */
    int failed;            /* set when scoring could not run (out of memory) */
    void (*done)(srv_job_t *job);
    srv_job_t *next; /* queue link, owned by the batcher */
};

typedef struct srv_batcher srv_batcher_t;

/* A new batcher with `workers` threads taking up to max_batch jobs each; NULL on failure. */
srv_batcher_t *srv_batcher_new(int workers, int max_batch);

/* Queues job (borrowed until its done callback has run). Returns 0, or ENG_EINVAL once the
 * batcher is stopping (the job is not queued and done is not called). */
int srv_batcher_submit(srv_batcher_t *b, srv_job_t *job);

/* Scores what is queued, stops the workers and frees the batcher. */
void srv_batcher_free(srv_batcher_t *b);

#endif
