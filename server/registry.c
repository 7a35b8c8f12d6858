/* Refcounted model versions, the registry of current ones, and the reaper that frees the rest on
 * the loop thread. */
#include "server/registry.h"
#include "engine/clock.h"

#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int alive;

struct srv_reaper {
    uv_async_t wake; /* the loop thread frees what is queued */
    pthread_mutex_t lock;
    srv_version_t *queue; /* unreferenced versions, linked by next */
    int closed;           /* wake is closed: queued versions wait for srv_reaper_free */
    srv_reaped_fn *reaped;
    void *arg;
};

srv_version_t *srv_version_new(sto_model_t *m, srv_reaper_t *reaper, eng_error_t *err)
{
    srv_version_t *v = calloc(1, sizeof *v);
    if (!v)
        goto nomem;
    v->model = m;
    v->reaper = reaper;
    const sto_version_info_t *in = &m->info;
    v->kind = srv_kind_find(in->kind);
    v->dot = eng_index_new(m->item_vecs, in->n_items, in->dim, 0);
    v->cos = eng_index_new(m->item_vecs, in->n_items, in->dim, 1);
    if (!v->dot || !v->cos)
        goto nomem;
    /* The indexes hold the items from now on (eng_index_vector, eng_index_scores): the raw matrix
     * would be a third copy nobody reads. */
    free(m->item_vecs);
    m->item_vecs = NULL;
    v->abilities = v->kind->abilities;
    if (v->kind->prepare && v->kind->prepare(v) < 0)
        goto nomem;
    atomic_init(&v->refs, 1);
    v->loaded_unix = eng_unix_now();
    eng_utc_format(v->loaded_unix, v->loaded_at);
    atomic_fetch_add(&alive, 1);
    return v;
nomem:
    eng_error_set(err, ENG_ENOMEM, "out of memory indexing %s v%lld", m->info.name,
                  (long long)m->info.version);
    if (v) {
        eng_index_free(v->dot);
        eng_index_free(v->cos);
        if (v->kind_data)
            v->kind->release(v->kind_data);
        free(v);
    }
    sto_model_free(m);
    return NULL;
}

srv_version_t *srv_version_ref(srv_version_t *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

/* Frees v, whose last reference is gone, and gives its memory back to the system. */
static void version_free(srv_version_t *v)
{
    eng_index_free(v->dot);
    eng_index_free(v->cos);
    if (v->kind_data)
        v->kind->release(v->kind_data);
    sto_model_free(v->model);
    free(v);
    atomic_fetch_sub(&alive, 1);
#ifdef __GLIBC__
    /* A version is tens of MB in blocks glibc may keep in its arenas; give them back, so that
     * resident memory follows "old + new" across reloads and does not drift upwards. */
    malloc_trim(0);
#endif
}

void srv_version_unref(srv_version_t *v)
{
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    srv_reaper_t *r = v->reaper;
    if (!r) {
        version_free(v);
        return;
    }
    /* Wake the loop under the lock: srv_reaper_close cannot close the handle in between. */
    pthread_mutex_lock(&r->lock);
    v->next = r->queue;
    r->queue = v;
    if (!r->closed)
        uv_async_send(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* Takes r's queue and frees it; with reaped set, reports each version once it is freed. */
static void reap(srv_reaper_t *r, srv_reaped_fn *reaped)
{
    pthread_mutex_lock(&r->lock);
    srv_version_t *v = r->queue;
    r->queue = NULL;
    pthread_mutex_unlock(&r->lock);
    while (v) {
        srv_version_t *next = v->next;
        char name[80]; /* store names are at most 64 characters */
        snprintf(name, sizeof name, "%s", v->model->info.name);
        int64_t version = v->model->info.version;
        version_free(v);
        if (reaped)
            reaped(r->arg, name, version);
        v = next;
    }
}

static void on_wake(uv_async_t *h)
{
    srv_reaper_t *r = h->data;
    reap(r, r->reaped);
}

srv_reaper_t *srv_reaper_new(uv_loop_t *loop, srv_reaped_fn *reaped, void *arg)
{
    srv_reaper_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (uv_async_init(loop, &r->wake, on_wake) != 0) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->wake.data = r;
    r->reaped = reaped;
    r->arg = arg;
    return r;
}

void srv_reaper_close(srv_reaper_t *r)
{
    pthread_mutex_lock(&r->lock);
    r->closed = 1;
    pthread_mutex_unlock(&r->lock);
    uv_close((uv_handle_t *)&r->wake, NULL);
}

void srv_reaper_free(srv_reaper_t *r)
{
    if (!r)
        return;
    reap(r, NULL);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int srv_versions_alive(void)
{
    return atomic_load(&alive);
}

struct srv_registry {
    pthread_mutex_t lock;
    srv_version_t **cur; /* sorted by model name */
    int n, cap;
};

srv_registry_t *srv_registry_new(void)
{
    srv_registry_t *r = calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

void srv_registry_free(srv_registry_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        srv_version_unref(r->cur[i]);
    free(r->cur);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Index of model name, or -(insertion point) - 1. Caller holds the lock. */
static int find(const srv_registry_t *r, const char *name)
{
    int lo = 0, hi = r->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(r->cur[mid]->model->info.name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -lo - 1;
}

srv_version_t *srv_registry_acquire(srv_registry_t *r, const char *name, int *why)
{
    srv_version_t *v = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->n == 0)
        *why = SRV_ACQ_NONE;
    else if (!name)
        *why = r->n == 1 ? (v = r->cur[0], SRV_ACQ_OK) : SRV_ACQ_AMBIGUOUS;
    else {
        int i = find(r, name);
        *why = i >= 0 ? (v = r->cur[i], SRV_ACQ_OK) : SRV_ACQ_UNKNOWN;
    }
    if (v)
        srv_version_ref(v);
    pthread_mutex_unlock(&r->lock);
    return v;
}

int srv_registry_swap(srv_registry_t *r, srv_version_t *v)
{
    srv_version_t *old = NULL;
    int rc = ENG_OK;
    pthread_mutex_lock(&r->lock);
    int i = find(r, v->model->info.name);
    if (i >= 0) {
        old = r->cur[i];
        r->cur[i] = v;
        goto out;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 4;
        srv_version_t **a = realloc(r->cur, (size_t)cap * sizeof *a);
        if (!a) {
            old = v;
            rc = ENG_ENOMEM;
            goto out;
        }
        r->cur = a;
        r->cap = cap;
    }
    i = -i - 1;
    memmove(r->cur + i + 1, r->cur + i, (size_t)(r->n - i) * sizeof *r->cur);
    r->cur[i] = v;
    r->n++;
out:
    pthread_mutex_unlock(&r->lock);
    srv_version_unref(old);
    return rc;
}

int srv_registry_count(srv_registry_t *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int64_t srv_registry_version(srv_registry_t *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    int i = find(r, name);
    int64_t ver = i >= 0 ? r->cur[i]->model->info.version : 0;
    pthread_mutex_unlock(&r->lock);
    return ver;
}

int srv_registry_snapshot(srv_registry_t *r, srv_version_t ***out)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n;
    srv_version_t **a = malloc((size_t)(n ? n : 1) * sizeof *a);
    if (a)
        for (int i = 0; i < n; i++)
            a[i] = srv_version_ref(r->cur[i]);
    pthread_mutex_unlock(&r->lock);
    *out = a;
    return a ? n : -1;
}
