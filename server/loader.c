/* Store watching and reloads, on the libuv loop.
 *
 * A timer polls PRAGMA data_version (one cheap query on the loop thread); on a change, on SIGHUP
 * or on POST /admin/reload, a libuv worker loads every model's live version (the pinned one,
 * else the newest ready one) that is not the one being served, checks it (sto_load's checks,
 * then indexing), and the loop thread swaps the good ones in: a pin or a rollback is served as a
 * publish is. A version that fails is logged, counted and remembered, and not retried until a
 * forced reload; the old version keeps serving. No new version is loaded while a replaced one
 * is still draining, so memory never holds more than old + new. */
#include "server/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void start(srv_t *s);

/* "name\tversion" key of a refused version. */
static char *bad_key(const char *name, int64_t version)
{
    char *k = NULL;
    if (asprintf(&k, "%s\t%lld", name, (long long)version) < 0)
        return NULL;
    return k;
}

static int is_bad(const srv_loader_t *l, const char *key)
{
    for (int i = 0; i < l->n_bad; i++)
        if (strcmp(l->bad[i], key) == 0)
            return 1;
    return 0;
}

/* Remembers (name, version) as refused, once. */
static void remember_bad(srv_loader_t *l, const char *name, int64_t version)
{
    char *key = bad_key(name, version);
    if (!key || is_bad(l, key)) {
        free(key);
        return;
    }
    char **a = realloc(l->bad, (size_t)(l->n_bad + 1) * sizeof *a);
    if (!a) {
        free(key);
        return;
    }
    l->bad = a;
    l->bad[l->n_bad++] = key;
}

static void add_refused(srv_loader_t *l, const char *name, int64_t version, const char *why)
{
    char *line = NULL;
    if (asprintf(&line, "%s\t%lld\t%s", name, (long long)version, why) < 0)
        return;
    char **a = realloc(l->refused, (size_t)(l->n_refused + 1) * sizeof *a);
    if (!a) {
        free(line);
        return;
    }
    l->refused = a;
    l->refused[l->n_refused++] = line;
}

/* Worker thread: load what is new. Reads the registry (thread-safe) and the loader's run
 * fields, which the loop thread does not touch while a run is busy. */
static void work(uv_work_t *w)
{
    srv_t *s = w->data;
    srv_loader_t *l = &s->loader;
    eng_error_t err = {0};
    sto_db_t *db = NULL;
    sto_version_info_t *v = NULL;
    size_t n = 0;
    if (sto_open(s->cfg.db_path, STO_READONLY, &db, &err) < 0 ||
        sto_list(db, NULL, &v, &n, &err) < 0) {
        sto_close(db);
        return; /* no store (yet), or unreadable: nothing to load; logged by the loop */
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i].live)
            continue; /* each name's pinned version, else its newest */
        if (srv_registry_version(s->reg, v[i].name) == v[i].version)
            continue;
        char *key = bad_key(v[i].name, v[i].version);
        int skip = key && !l->force && is_bad(l, key);
        free(key);
        if (skip)
            continue;
        sto_model_t *m = NULL;
        err = (eng_error_t){0};
        /* only the named tensors the kind's abilities need: not the optimizer state */
        int rc = sto_load(db, v[i].name, v[i].version, srv_kind_find(v[i].kind)->tensors, &m, &err);
        srv_version_t *ver = rc == 0 ? srv_version_new(m, s->reaper, &err) : NULL;
        if (!ver) {
            add_refused(l, v[i].name, v[i].version, eng_error_text(&err, rc ? rc : err.code));
            continue;
        }
        srv_version_t **a = realloc(l->loaded, (size_t)(l->n_loaded + 1) * sizeof *a);
        if (!a) {
            srv_version_unref(ver);
            add_refused(l, v[i].name, v[i].version, "out of memory");
            continue;
        }
        l->loaded = a;
        l->loaded[l->n_loaded++] = ver;
    }
    sto_list_free(v, n);
    sto_close(db);
}

/* Loop thread: swap in, log, count, answer the reload requests that waited for this run. */
static void after(uv_work_t *w, int status)
{
    (void)status;
    srv_t *s = w->data;
    srv_loader_t *l = &s->loader;
    json_t *loaded = json_array(), *refused = json_array();
    for (int i = 0; i < l->n_loaded; i++) {
        srv_version_t *v = l->loaded[i];
        const sto_version_info_t *in = &v->model->info;
        srv_log("loaded %s v%lld (%s, %d users, %d items, dim %d, %s kernel)", in->name,
                (long long)in->version, in->kind, in->n_users, in->n_items, in->dim,
                eng_index_kernel(v->dot));
        if (!v->kind->name)
            srv_log("%s v%lld: kind '%s' is unknown to this build: served by inner product, "
                    "with no fold-in or explain",
                    in->name, (long long)in->version, in->kind);
        json_array_append_new(
            loaded, json_pack("{ss,sI}", "name", in->name, "version", (json_int_t)in->version));
        srv_metrics_reload(0);
        srv_registry_swap(s->reg, v);
    }
    for (int i = 0; i < l->n_refused; i++) {
        char *line = l->refused[i], *tab1 = strchr(line, '\t'), *tab2 = strchr(tab1 + 1, '\t');
        *tab1 = *tab2 = '\0';
        long long ver = atoll(tab1 + 1);
        srv_log("refused %s v%lld: %s (still serving v%lld)", line, ver, tab2 + 1,
                (long long)srv_registry_version(s->reg, line));
        json_array_append_new(refused, json_pack("{ss,sI,ss}", "name", line, "version",
                                                 (json_int_t)ver, "reason", tab2 + 1));
        srv_metrics_reload(1);
        remember_bad(l, line, ver);
        free(line);
    }
    free(l->loaded);
    free(l->refused);
    l->loaded = NULL;
    l->refused = NULL;
    l->n_loaded = l->n_refused = 0;

    json_t *result = json_pack("{so,so}", "loaded", loaded, "refused", refused);
    char *text = json_dumps(result, JSON_COMPACT);
    json_decref(result);
    for (req_t *r = l->run_waiters, *next; r; r = next) {
        next = r->next_waiter;
        char *copy = text ? strdup(text) : NULL;
        srv_req_answer(r, 200, copy, copy ? strlen(copy) : 0, "application/json");
        srv_req_resume(r);
    }
    free(text);
    l->run_waiters = NULL;
    l->busy = 0;
    if (l->pending)
        start(s);
}

/* Starts a reload run unless one is running or a replaced version is still draining; either
 * way it happens later (pending). */
static void start(srv_t *s)
{
    srv_loader_t *l = &s->loader;
    if (l->busy || srv_versions_alive() > srv_registry_count(s->reg)) {
        l->pending = 1;
        return;
    }
    l->busy = 1;
    l->force = l->pending_force;
    l->pending = l->pending_force = 0;
    pthread_mutex_lock(&l->lock);
    l->run_waiters = l->waiters;
    l->waiters = NULL;
    pthread_mutex_unlock(&l->lock);
    l->work.data = s;
    if (uv_queue_work(s->loop, &l->work, work, after) != 0) {
        l->busy = 0;
        l->pending = 1;
    }
}

static void on_poll(uv_timer_t *t)
{
    srv_t *s = t->data;
    srv_loader_t *l = &s->loader;
    int changed = l->pending;
    eng_error_t err = {0};
    if (!l->poll_db) {
        if (sto_open(s->cfg.db_path, STO_READONLY, &l->poll_db, &err) == 0) {
            changed = 1;
        } else if (l->first) {
            srv_log("store %s: %s; waiting for a model to be published", s->cfg.db_path,
                    eng_error_text(&err, err.code));
        }
    }
    l->first = 0;
    int64_t dv;
    if (l->poll_db && sto_data_version(l->poll_db, &dv, &err) == 0 && dv != l->data_version) {
        l->data_version = dv;
        changed = 1;
    }
    if (atomic_exchange(&l->force_requested, 0)) {
        l->pending_force = 1;
        changed = 1;
    }
    if (changed)
        start(s);
}

static void on_wake(uv_async_t *a)
{
    on_poll(&((srv_t *)a->data)->loader.poll);
}

static void on_sighup(uv_signal_t *h, int sig)
{
    (void)sig;
    srv_t *s = h->data;
    srv_log("SIGHUP: reloading");
    atomic_store(&s->loader.force_requested, 1);
    on_poll(&s->loader.poll);
}

int srv_loader_start(srv_t *s)
{
    srv_loader_t *l = &s->loader;
    pthread_mutex_init(&l->lock, NULL);
    l->first = 1;
    l->data_version = -1;
    l->poll.data = l->wake.data = l->sighup.data = s;
    if (uv_timer_init(s->loop, &l->poll) || uv_async_init(s->loop, &l->wake, on_wake) ||
        uv_signal_init(s->loop, &l->sighup) || uv_signal_start(&l->sighup, on_sighup, SIGHUP) ||
        uv_timer_start(&l->poll, on_poll, 0, s->cfg.poll_ms))
        return -1;
    return 0;
}

void srv_loader_request(srv_t *s, req_t *r)
{
    srv_loader_t *l = &s->loader;
    if (srv_req_suspend(r) < 0) {
        srv_req_error(r, 503, "the server is shutting down");
        return;
    }
    pthread_mutex_lock(&l->lock);
    r->next_waiter = l->waiters;
    l->waiters = r;
    pthread_mutex_unlock(&l->lock);
    atomic_store(&l->force_requested, 1);
    uv_async_send(&l->wake);
}

void srv_loader_reaped(void *arg, const char *name, int64_t version)
{
    srv_t *s = arg;
    srv_log("freed %s v%lld (%d version(s) in memory)", name, (long long)version,
            srv_versions_alive());
    if (s->loader.pending)
        start(s);
}

void srv_loader_stop(srv_t *s)
{
    srv_loader_t *l = &s->loader;
    uv_timer_stop(&l->poll);
    uv_signal_stop(&l->sighup);
    uv_close((uv_handle_t *)&l->poll, NULL);
    uv_close((uv_handle_t *)&l->wake, NULL);
    uv_close((uv_handle_t *)&l->sighup, NULL);
    sto_close(l->poll_db);
    l->poll_db = NULL;
    for (int i = 0; i < l->n_bad; i++)
        free(l->bad[i]);
    free(l->bad);
    l->bad = NULL;
    l->n_bad = 0;
}
