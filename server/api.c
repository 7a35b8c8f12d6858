/* The endpoints of proto/openapi.yaml: routing, parameters, and the answers. */
#include "engine/clock.h"
#include "engine/csr.h"
#include "server/internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_K 20
#define MAX_K 1000
/* Paths an explanation lists, by default and at most. */
#define DEFAULT_PATHS 5
#define MAX_PATHS 50
#define MAX_SCORE_ITEMS 10000 /* ids in a JSON body's list (score, recommend) */

#define GET "GET, HEAD"
#define POST "POST"

/* The paths of proto/openapi.yaml. In a path, "{}" stands for one non-empty segment (no '/'). */
static const struct route {
    const char *path;
    srv_endpoint_t ep;
    const char *allow; /* the methods it takes, for 405 and its Allow header */
    int json_body;     /* its POST body is JSON, read up to --max-body */
    int write;         /* it changes what the server holds: needs the token (so does /admin/) */
} routes[] = {
    {"/v1/users/{}/recommendations", SRV_EP_RECOMMEND, GET, 0, 0},
    {"/v1/users/{}/recommendations/{}/explain", SRV_EP_EXPLAIN, GET, 0, 0},
    {"/v1/recommend", SRV_EP_RECOMMEND_NEW, POST, 1, 0},
    {"/v1/items/{}/similar", SRV_EP_SIMILAR, GET, 0, 0},
    {"/v1/score", SRV_EP_SCORE, POST, 1, 0},
    {"/v1/events", SRV_EP_EVENTS, POST, 1, 1},
    {"/v1/models", SRV_EP_MODELS, GET, 0, 0},
    {"/healthz", SRV_EP_HEALTHZ, GET, 0, 0},
    {"/readyz", SRV_EP_READYZ, GET, 0, 0},
    {"/metrics", SRV_EP_METRICS, GET, 0, 0},
    {"/admin/reload", SRV_EP_RELOAD, POST, 0, 1},
};

enum { MAX_SEGS = 2 };

/* Whether url matches path; on a match seg[i], len[i] are the i-th "{}" segment of url. */
static int match(const char *url, const char *path, const char **seg, size_t *len)
{
    for (int n = 0; *path;) {
        if (path[0] == '{' && path[1] == '}') {
            size_t l = strcspn(url, "/");
            if (l == 0 || n == MAX_SEGS)
                return 0;
            seg[n] = url;
            len[n++] = l;
            url += l;
            path += 2;
        } else if (*url++ != *path++) {
            return 0;
        }
    }
    return *url == '\0';
}

/* The route of url and its segments, or NULL for an unknown path. */
static const struct route *route(const char *url, const char **seg, size_t *len)
{
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (match(url, routes[i].path, seg, len))
            return &routes[i];
    return NULL;
}

/* Whether rt takes method. */
static int method_ok(const struct route *rt, const char *method)
{
    if (strcmp(rt->allow, POST) == 0)
        return strcmp(method, "POST") == 0;
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

srv_endpoint_t srv_api_route(const char *url, const char *method, const char **allow,
                             int *json_body, int *write)
{
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    const struct route *rt = route(url, seg, len);
    *allow = rt ? rt->allow : NULL;
    *json_body = rt ? rt->json_body : 0;
    /* Every /admin/ route needs the token, whatever its row says: one added later cannot be left
     * open by mistake. A method the route does not take is answered 405 without the token. */
    *write = rt && (rt->write || strncmp(rt->path, "/admin/", 7) == 0) && method_ok(rt, method);
    return rt ? rt->ep : SRV_EP_OTHER;
}

static const char *arg(req_t *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Takes a reference to the model version the request asks for (?model= or the default), or
 * answers with the error and returns NULL. */
static srv_version_t *acquire(req_t *r)
{
    const char *name = arg(r, "model");
    if (!name)
        name = r->srv->cfg.model;
    int why;
    srv_version_t *v = srv_registry_acquire(r->srv->reg, name, &why);
    if (!v) {
        if (why == SRV_ACQ_NONE)
            srv_req_error(r, 503, "no model version is loaded yet");
        else if (why == SRV_ACQ_UNKNOWN)
            srv_req_error(r, 404, "unknown model '%s'", name);
        else
            srv_req_error(r, 400, "several models are loaded: pick one with ?model=NAME");
        return NULL;
    }
    r->ver = v;
    return v;
}

/* The index of id (len bytes) in map, the users or items of v, or -1 after answering 404 naming
 * the model and version (the id may be known to another one). what: "user" or "item". */
static int32_t find_id(req_t *r, const srv_version_t *v, const eng_idmap_t *map, const char *what,
                       const char *id, size_t len)
{
    int32_t i = eng_idmap_find(map, id, len);
    if (i < 0)
        srv_req_error(r, 404, "unknown %s '%.*s' in model %s v%lld", what,
                      (int)(len > 200 ? 200 : len), id, v->model->info.name,
                      (long long)v->model->info.version);
    return i;
}

/* Whether v's kind has ability a; answers 422 when it does not. Called once the request is
 * otherwise valid for v, so that a 422 means "ask a model of another kind", not "fix the
 * request". */
static int able(req_t *r, const srv_version_t *v, srv_ability_t a)
{
    if (v->abilities & SRV_CAN(a))
        return 1;
    const sto_version_info_t *in = &v->model->info;
    if (srv_kind_can(v->kind, a))
        srv_req_error(r, 422,
                      "model %s v%lld (kind %s) was published without what it needs to %s: "
                      "retrain it with this build",
                      in->name, (long long)in->version, in->kind, srv_ability_refusal(a));
    else
        srv_req_error(r, 422, "model %s v%lld (kind %s) cannot %s", in->name,
                      (long long)in->version, in->kind, srv_ability_refusal(a));
    return 0;
}

/* r's body as JSON, or NULL after answering 400. */
static json_t *body_json(req_t *r)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
    if (!doc)
        srv_req_error(r, 400, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
    return doc;
}

/* ?k=: 1..MAX_K, default DEFAULT_K. Returns -1 after answering 400. */
static long parse_k(req_t *r)
{
    const char *s = arg(r, "k");
    if (!s)
        return DEFAULT_K;
    char *end;
    errno = 0;
    long k = strtol(s, &end, 10);
    if (errno || end == s || *end || k < 1 || k > MAX_K) {
        srv_req_error(r, 400, "k must be an integer in 1..%d, got '%s'", MAX_K, s);
        return -1;
    }
    return k;
}

/* ?name=true|false|1|0, default def. Returns -1 after answering 400. */
static int parse_bool(req_t *r, const char *name, int def)
{
    const char *s = arg(r, name);
    if (!s)
        return def;
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        return 0;
    srv_req_error(r, 400, "%s must be true or false, got '%s'", name, s);
    return -1;
}

/* Resolves a comma-separated item list into *out (malloc'd, sorted, unique). Unknown ids are
 * skipped when skip_unknown, else answered 404. Returns the count or -1 after answering. */
static long item_list(req_t *r, const eng_idmap_t *items, const char *csv, int skip_unknown,
                      int32_t **out)
{
    size_t cap = 1;
    for (const char *p = csv; *p; p++)
        cap += *p == ',';
    int32_t *a = malloc(cap * sizeof *a);
    if (!a) {
        srv_req_error(r, 500, "out of memory");
        return -1;
    }
    size_t n = 0;
    for (const char *p = csv;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            int32_t i = eng_idmap_find(items, p, len);
            if (i >= 0)
                a[n++] = i;
            else if (!skip_unknown) {
                srv_req_error(r, 404, "unknown item '%.*s'", (int)(len > 200 ? 200 : len), p);
                free(a);
                return -1;
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = a;
    return (long)eng_sort_unique_i32(a, n);
}

/* Merges sorted unique a and b into a new sorted unique array. */
static int32_t *merge_sorted(const int32_t *a, size_t na, const int32_t *b, size_t nb, size_t *n)
{
    int32_t *m = malloc((na + nb + 1) * sizeof *m);
    if (!m)
        return NULL;
    size_t i = 0, j = 0, w = 0;
    while (i < na || j < nb) {
        int32_t x = j >= nb || (i < na && a[i] <= b[j]) ? a[i++] : b[j++];
        if (w == 0 || m[w - 1] != x)
            m[w++] = x;
    }
    *n = w;
    return m;
}

/* Writes {"model","version",<subject_key>:<subject>,"items":[...]} for r's top list; with
 * subject_key NULL (a folded-in user), "known_items" in place of the subject. */
static void answer_items(req_t *r, const char *subject_key, const char *subject, size_t n)
{
    const sto_model_t *m = r->ver->model;
    srv_buf_t b;
    srv_buf_init(&b, 96 + 48 * n);
    srv_buf_puts(&b, "{\"model\":");
    srv_buf_json_str(&b, m->info.name);
    srv_buf_printf(&b, ",\"version\":%lld,", (long long)m->info.version);
    if (subject_key) {
        srv_buf_printf(&b, "\"%s\":", subject_key);
        srv_buf_json_str(&b, subject);
        srv_buf_puts(&b, ",");
    } else {
        srv_buf_printf(&b, "\"known_items\":%lld,", (long long)r->n_known);
    }
    srv_buf_puts(&b, "\"items\":[");
    for (size_t i = 0; i < n; i++) {
        srv_buf_puts(&b, i ? ",{\"item\":" : "{\"item\":");
        srv_buf_json_str(&b, eng_idmap_name(m->items, r->top[i].idx));
        srv_buf_puts(&b, ",\"score\":");
        srv_buf_json_num(&b, r->top[i].score);
        srv_buf_puts(&b, "}");
    }
    srv_buf_puts(&b, "]}");
    size_t len = 0;
    char *body = srv_buf_take(&b, &len);
    srv_req_answer(r, 200, body, len, "application/json");
}

/* Batcher callback (worker thread): the top-K list is ready. */
static void topk_done(srv_job_t *job)
{
    req_t *r = (req_t *)((char *)job - offsetof(req_t, job));
    if (job->failed)
        srv_req_error(r, 500, "out of memory scoring the request");
    else if (r->ep == SRV_EP_RECOMMEND)
        answer_items(r, "user", eng_idmap_name(r->ver->model->users, r->subject), job->q.n_out);
    else if (r->ep == SRV_EP_RECOMMEND_NEW)
        answer_items(r, NULL, NULL, job->q.n_out);
    else
        answer_items(r, "item", eng_idmap_name(r->ver->model->items, r->subject), job->q.n_out);
    srv_req_resume(r);
}

/* Queues r's top-K job; answers 500/503 itself when it cannot. */
static void submit(req_t *r, const eng_index_t *ix, const float *q, size_t k)
{
    r->job.ix = ix;
    r->job.q.q = q;
    r->job.q.k = k;
    r->job.q.out = r->top;
    r->job.done = topk_done;
    if (srv_req_suspend(r) < 0) {
        srv_req_error(r, 503, "the server is shutting down");
        return;
    }
    if (srv_batcher_submit(r->srv->batcher, &r->job) != ENG_OK) {
        srv_req_error(r, 503, "the server is shutting down");
        srv_req_resume(r);
    }
}

static void recommend(req_t *r, const char *uid, size_t ulen)
{
    long k = parse_k(r);
    int exclude_seen = k < 0 ? -1 : parse_bool(r, "exclude_seen", 1);
    if (k < 0 || exclude_seen < 0)
        return;
    srv_version_t *v = acquire(r);
    if (!v)
        return;
    const sto_model_t *m = v->model;
    int32_t u = find_id(r, v, m->users, "user", uid, ulen);
    if (u < 0)
        return;
    r->subject = u;
    const int32_t *seen = m->seen_idx + m->seen_ptr[u];
    size_t n_seen = exclude_seen ? (size_t)(m->seen_ptr[u + 1] - m->seen_ptr[u]) : 0;
    int32_t *extra = NULL;
    long n_extra = 0;
    const char *ex = arg(r, "exclude");
    if (ex && (n_extra = item_list(r, m->items, ex, 1, &extra)) < 0)
        return;
    size_t n_excl = 0;
    r->exclude = merge_sorted(seen, n_seen, extra, (size_t)n_extra, &n_excl);
    free(extra);
    r->top = malloc((size_t)k * sizeof *r->top);
    if (!r->exclude || !r->top) {
        srv_req_error(r, 500, "out of memory");
        return;
    }
    const float *q = m->user_vecs + (size_t)u * m->info.dim;
    const char *cand = arg(r, "candidates");
    if (!cand) {
        r->job.q.exclude = r->exclude;
        r->job.q.n_exclude = n_excl;
        submit(r, v->dot, q, (size_t)k);
        return;
    }
    /* Ranking a given candidate list is small work: done here, not batched. */
    int32_t *c = NULL;
    long nc = item_list(r, m->items, cand, 0, &c);
    if (nc < 0)
        return;
    float *scores = malloc(((size_t)nc + 1) * sizeof *scores);
    if (!scores) {
        free(c);
        srv_req_error(r, 500, "out of memory");
        return;
    }
    eng_index_scores(v->dot, q, c, (size_t)nc, scores);
    size_t e = 0;
    for (long i = 0; i < nc; i++) { /* both lists sorted: one merge pass masks the excluded */
        while (e < n_excl && r->exclude[e] < c[i])
            e++;
        if (e < n_excl && r->exclude[e] == c[i])
            scores[i] = -INFINITY;
    }
    size_t n = eng_topk(scores, (int32_t)nc, (size_t)k, r->top);
    for (size_t i = 0; i < n; i++)
        r->top[i].idx = c[r->top[i].idx];
    free(scores);
    free(c);
    answer_items(r, "user", eng_idmap_name(m->users, u), n);
}

static void similar(req_t *r, const char *iid, size_t ilen)
{
    long k = parse_k(r);
    if (k < 0)
        return;
    srv_version_t *v = acquire(r);
    if (!v)
        return;
    const sto_model_t *m = v->model;
    int32_t i = find_id(r, v, m->items, "item", iid, ilen);
    if (i < 0)
        return;
    r->subject = i;
    r->top = malloc((size_t)k * sizeof *r->top);
    r->exclude = malloc(sizeof *r->exclude);
    r->qbuf = malloc((size_t)m->info.dim * sizeof *r->qbuf);
    if (!r->top || !r->exclude || !r->qbuf) {
        srv_req_error(r, 500, "out of memory");
        return;
    }
    r->exclude[0] = i;
    r->job.q.exclude = r->exclude;
    r->job.q.n_exclude = 1;
    eng_index_vector(v->cos, i, r->qbuf);
    submit(r, v->cos, r->qbuf, (size_t)k);
}

/* Resolves a JSON string id; answers 400/404 and returns -1 when it is not a known one. */
static int32_t json_id(req_t *r, const srv_version_t *v, const json_t *s, const eng_idmap_t *map,
                       const char *what)
{
    if (!json_is_string(s)) {
        srv_req_error(r, 400, "every %s must be a string", what);
        return -1;
    }
    return find_id(r, v, map, what, json_string_value(s), json_string_length(s));
}

static void score(req_t *r)
{
    json_t *doc = body_json(r);
    if (!doc)
        return;
    json_t *user = json_object_get(doc, "user"), *items = json_object_get(doc, "items"),
           *pairs = json_object_get(doc, "pairs");
    json_t *list = pairs ? pairs : items;
    float *out = NULL;
    srv_buf_t b = {0};
    const char *bad = NULL;
    if (!json_is_object(doc))
        bad = "the body must be a JSON object";
    else if (pairs ? (user || items || json_object_size(doc) != 1)
                   : (!user || !items || json_object_size(doc) != 2))
        bad = "the body must be {\"user\": \"u\", \"items\": [...]} or {\"pairs\": [[\"u\", "
              "\"i\"], ...]}";
    else if (!json_is_array(list) || json_array_size(list) < 1 ||
             json_array_size(list) > MAX_SCORE_ITEMS)
        bad = pairs ? "pairs must be an array of 1..10000 [user, item] pairs"
                    : "items must be an array of 1..10000 item ids";
    if (bad) {
        srv_req_error(r, 400, "%s", bad);
        goto done;
    }
    srv_version_t *v = acquire(r);
    if (!v)
        goto done;
    const sto_model_t *m = v->model;
    size_t n = json_array_size(list);
    out = malloc(n * sizeof *out);
    if (!out) {
        srv_req_error(r, 500, "out of memory");
        goto done;
    }
    int32_t u = -1;
    if (!pairs && (u = json_id(r, v, user, m->users, "user")) < 0)
        goto done;
    for (size_t k = 0; k < n; k++) {
        json_t *e = json_array_get(list, k), *it = e;
        int32_t pu = u;
        if (pairs) {
            if (!json_is_array(e) || json_array_size(e) != 2) {
                srv_req_error(r, 400, "pairs[%zu] must be a [user, item] pair of strings", k);
                goto done;
            }
            if ((pu = json_id(r, v, json_array_get(e, 0), m->users, "user")) < 0)
                goto done;
            it = json_array_get(e, 1);
        }
        int32_t i = json_id(r, v, it, m->items, "item");
        if (i < 0)
            goto done;
        eng_index_scores(v->dot, m->user_vecs + (size_t)pu * m->info.dim, &i, 1, &out[k]);
    }
    srv_buf_init(&b, 64 + 16 * n);
    srv_buf_puts(&b, "{\"model\":");
    srv_buf_json_str(&b, m->info.name);
    srv_buf_printf(&b, ",\"version\":%lld,", (long long)m->info.version);
    if (!pairs) {
        srv_buf_puts(&b, "\"user\":");
        srv_buf_json_str(&b, json_string_value(user));
        srv_buf_puts(&b, ",");
    }
    srv_buf_puts(&b, "\"scores\":[");
    for (size_t k = 0; k < n; k++) {
        if (k)
            srv_buf_puts(&b, ",");
        srv_buf_json_num(&b, out[k]);
    }
    srv_buf_puts(&b, "]}");
    size_t len = 0;
    char *body = srv_buf_take(&b, &len);
    srv_req_answer(r, 200, body, len, "application/json");
done:
    free(out);
    json_decref(doc);
}

/* POST /v1/recommend {"items": [...], "k"?}: top-K for a user the model has never seen, from the
 * items that user interacted with. The body is checked in full (400), then the model (404, 503),
 * then the items: ids the model does not know are ignored as long as one is known (404 when none
 * is), then the version's abilities (422 without fold-in). The kind's fold_in makes the user's
 * vector, and the top-K is batched like any other, the known items excluded as seen. */
static void recommend_new(req_t *r)
{
    json_t *doc = body_json(r);
    if (!doc)
        return;
    json_t *items = json_object_get(doc, "items"), *kj = json_object_get(doc, "k");
    size_t n = json_array_size(items);
    const char *bad = NULL;
    if (!json_is_object(doc) || !items)
        bad = "the body must be {\"items\": [\"i1\", ...], \"k\": 20} (k optional)";
    else if (json_object_get(doc, "model"))
        bad = "pick the model with ?model=NAME, not in the body";
    else if (json_object_size(doc) != (kj ? 2u : 1u))
        bad = "the body takes only \"items\" and \"k\"";
    else if (!json_is_array(items) || n < 1 || n > MAX_SCORE_ITEMS)
        bad = "items must be an array of 1..10000 item ids";
    else if (kj &&
             (!json_is_integer(kj) || json_integer_value(kj) < 1 || json_integer_value(kj) > MAX_K))
        bad = "k must be an integer in 1..1000";
    for (size_t j = 0; !bad && j < n; j++)
        if (!json_is_string(json_array_get(items, j)))
            bad = "every item must be a string";
    if (bad) {
        srv_req_error(r, 400, "%s", bad);
        goto done;
    }
    srv_version_t *v = acquire(r);
    if (!v)
        goto done;
    const sto_model_t *m = v->model;
    int32_t *known = malloc(n * sizeof *known);
    if (!known) {
        srv_req_error(r, 500, "out of memory");
        goto done;
    }
    size_t n_known = 0;
    for (size_t j = 0; j < n; j++) {
        const json_t *s = json_array_get(items, j);
        int32_t i = eng_idmap_find(m->items, json_string_value(s), json_string_length(s));
        if (i >= 0)
            known[n_known++] = i;
    }
    r->exclude = known; /* freed with r */
    if (n_known == 0) {
        srv_req_error(r, 404, "no item in the request is known to model %s v%lld (%zu given)",
                      m->info.name, (long long)m->info.version, n);
        goto done;
    }
    if (!able(r, v, SRV_ABILITY_FOLD_IN))
        goto done;
    /* The new user's items are their seen items: excluded, as a known user's are. */
    n_known = eng_sort_unique_i32(known, n_known);
    const size_t k = kj ? (size_t)json_integer_value(kj) : DEFAULT_K;
    r->n_known = (int64_t)n_known;
    r->qbuf = malloc(srv_fold_floats(v, n_known) * sizeof *r->qbuf);
    r->top = malloc(k * sizeof *r->top);
    if (!r->qbuf || !r->top) {
        srv_req_error(r, 500, "out of memory");
        goto done;
    }
    v->kind->fold_in(v, known, n_known, r->qbuf);
    r->job.q.exclude = known;
    r->job.q.n_exclude = n_known;
    submit(r, v->dot, r->qbuf, k);
done:
    json_decref(doc);
}

/* GET /v1/users/{user}/recommendations/{item}/explain?k=N: the N (5) strongest paths linking the
 * user to the item, by the kind's explain. 404 for an unknown model, user or item, then 422 for
 * a kind without explain; 200 with no paths when none is within the kind's reach. Answered on
 * the HTTP thread: a walk of the user's neighbourhood, no scoring of the catalogue. */
static void explain(req_t *r, const char *uid, size_t ulen, const char *iid, size_t ilen)
{
    const char *ks = arg(r, "k");
    char *end = NULL;
    const long k = ks ? strtol(ks, &end, 10) : DEFAULT_PATHS;
    if (ks && (end == ks || *end || k < 1 || k > MAX_PATHS)) {
        srv_req_error(r, 400, "k must be an integer in 1..%d, got '%s'", MAX_PATHS, ks);
        return;
    }
    srv_version_t *v = acquire(r);
    if (!v)
        return;
    const sto_model_t *m = v->model;
    const int32_t u = find_id(r, v, m->users, "user", uid, ulen);
    const int32_t i = u < 0 ? -1 : find_id(r, v, m->items, "item", iid, ilen);
    if (i < 0 || !able(r, v, SRV_ABILITY_EXPLAIN))
        return;
    srv_path_t paths[MAX_PATHS];
    const int n = v->kind->explain(v, u, i, paths, (int)k);
    srv_buf_t b;
    srv_buf_init(&b, 256 + 256 * (size_t)n);
    srv_buf_puts(&b, "{\"model\":");
    srv_buf_json_str(&b, m->info.name);
    srv_buf_printf(&b, ",\"version\":%lld,\"user\":", (long long)m->info.version);
    srv_buf_json_str(&b, eng_idmap_name(m->users, u));
    srv_buf_puts(&b, ",\"item\":");
    srv_buf_json_str(&b, eng_idmap_name(m->items, i));
    srv_buf_puts(&b, ",\"paths\":[");
    for (int p = 0; p < n; p++) {
        srv_buf_puts(&b, p ? ",{\"weight\":" : "{\"weight\":");
        srv_buf_json_num(&b, paths[p].weight);
        srv_buf_puts(&b, ",\"nodes\":[");
        for (int q = 0; q < paths[p].n; q++) {
            srv_buf_printf(&b, "%s{\"type\":\"%s\",\"id\":", q ? "," : "",
                           srv_node_name(paths[p].type[q]));
            srv_buf_json_str(&b, paths[p].name[q]);
            srv_buf_puts(&b, "}");
        }
        srv_buf_puts(&b, "],\"relations\":[");
        for (int q = 0; q + 1 < paths[p].n; q++) {
            if (q)
                srv_buf_puts(&b, ",");
            srv_buf_json_str(&b, paths[p].rel[q]);
        }
        srv_buf_puts(&b, "]}");
    }
    srv_buf_puts(&b, "]}");
    size_t len = 0;
    char *body = srv_buf_take(&b, &len);
    srv_req_answer(r, 200, body, len, "application/json");
}

/* Intake writer callback: the request's events are committed (or their group failed). */
static void events_done(srv_intake_job_t *job)
{
    req_t *r = (req_t *)((char *)job - offsetof(req_t, events));
    if (job->failed) {
        srv_req_error(r, 503, "the events were not logged (nothing of the request was written): %s",
                      job->error);
    } else {
        srv_buf_t b;
        srv_buf_init(&b, 96);
        srv_buf_printf(&b, "{\"accepted\":%zu,\"first_seq\":%lld,\"last_seq\":%lld}", job->batch.n,
                       (long long)job->first_seq,
                       (long long)(job->first_seq + (int64_t)job->batch.n - 1));
        size_t len = 0;
        char *body = srv_buf_take(&b, &len);
        srv_req_answer(r, 200, body, len, "application/json");
    }
    srv_req_resume(r);
}

/* POST /v1/events: one event or an array of them. Parsed and checked here, on the HTTP thread (a
 * bad event: 400 naming its index, and nothing of the request is queued), queued to the intake's
 * writer, and answered by events_done once the group it joined is committed. A full queue is 503
 * at once: the client retries later, and a request never waits here. */
static void post_events(req_t *r)
{
    srv_intake_job_t *job = &r->events;
    eng_error_t err = {0};
    int rc = srv_events_parse(r->body.data, r->body.len, &job->batch, &err);
    if (rc < 0) {
        if (rc == ENG_EINVAL)
            srv_metrics_events_rejected(SRV_REJECT_INVALID, job->batch.n);
        srv_req_error(r, rc == ENG_EINVAL ? 400 : 500, "%s", eng_error_text(&err, rc));
        return;
    }
    job->done = events_done;
    if (srv_req_suspend(r) < 0) {
        srv_metrics_events_rejected(SRV_REJECT_SHUTDOWN, job->batch.n);
        srv_req_error(r, 503, "the server is shutting down");
        return;
    }
    rc = srv_intake_submit(r->srv->intake, job);
    if (rc == ENG_OK)
        return;
    if (rc == ENG_ERANGE) {
        srv_metrics_events_rejected(SRV_REJECT_OVERLOADED, job->batch.n);
        r->retry_after = 1;
        srv_req_error(r, 503, "the event queue is full (%zu events waiting for the disk): retry",
                      srv_intake_queued(r->srv->intake));
    } else {
        srv_metrics_events_rejected(SRV_REJECT_SHUTDOWN, job->batch.n);
        srv_req_error(r, 503, "the server is shutting down");
    }
    srv_req_resume(r);
}

static void answer_json(req_t *r, unsigned status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    srv_req_answer(r, status, s, s ? strlen(s) : 0, "application/json");
}

static void models(req_t *r)
{
    srv_version_t **vs;
    int n = srv_registry_snapshot(r->srv->reg, &vs);
    if (n < 0) {
        srv_req_error(r, 500, "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const sto_version_info_t *in = &vs[i]->model->info;
        json_t *metrics = json_loads(in->metrics_json ? in->metrics_json : "{}", 0, NULL);
        json_t *abilities = json_array();
        for (int a = 0; a < SRV_ABILITY_COUNT; a++)
            if (vs[i]->abilities & SRV_CAN(a))
                json_array_append_new(abilities, json_string(srv_ability_name(a)));
        json_array_append_new(arr, json_pack("{ss,sI,ss,so,ss,ss,si,si,si,so}", "name", in->name,
                                             "version", (json_int_t)in->version, "kind", in->kind,
                                             "abilities", abilities, "created", in->created,
                                             "loaded_at", vs[i]->loaded_at, "users", in->n_users,
                                             "items", in->n_items, "dim", in->dim, "metrics",
                                             metrics ? metrics : json_object()));
        srv_version_unref(vs[i]);
    }
    free(vs);
    answer_json(r, 200, json_pack("{so}", "models", arr));
}

static void metrics(req_t *r)
{
    srv_buf_t b;
    srv_buf_init(&b, 16384);
    srv_metrics_render(&b);
    srv_version_t **vs;
    int n = srv_registry_snapshot(r->srv->reg, &vs);
    srv_buf_puts(&b, "# HELP gnnrec_model_version Loaded version of each model.\n"
                     "# TYPE gnnrec_model_version gauge\n");
    for (int i = 0; i < n; i++)
        srv_buf_printf(&b, "gnnrec_model_version{model=\"%s\"} %lld\n", vs[i]->model->info.name,
                       (long long)vs[i]->model->info.version);
    srv_buf_puts(&b, "# HELP gnnrec_model_loaded_timestamp_seconds When each model's version "
                     "was loaded.\n# TYPE gnnrec_model_loaded_timestamp_seconds gauge\n");
    for (int i = 0; i < n; i++)
        srv_buf_printf(&b, "gnnrec_model_loaded_timestamp_seconds{model=\"%s\"} %.3f\n",
                       vs[i]->model->info.name, vs[i]->loaded_unix);
    srv_buf_puts(&b, "# HELP gnnrec_model_version_age_seconds Seconds since each loaded version "
                     "was published (its created time).\n"
                     "# TYPE gnnrec_model_version_age_seconds gauge\n");
    const double now = eng_unix_now();
    for (int i = 0; i < n; i++) {
        const sto_version_info_t *in = &vs[i]->model->info;
        double created;
        /* The store writes every created time; one it could not have written is left out
         * rather than shown as a made-up age. */
        if (in->created && eng_utc_parse(in->created, &created) == 0)
            srv_buf_printf(&b, "gnnrec_model_version_age_seconds{model=\"%s\"} %.3f\n", in->name,
                           now - created);
    }
    for (int i = 0; i < n; i++)
        srv_version_unref(vs[i]);
    free(vs);
    srv_buf_printf(&b,
                   "# HELP gnnrec_versions_alive Model versions in memory (current and draining).\n"
                   "# TYPE gnnrec_versions_alive gauge\ngnnrec_versions_alive %d\n"
                   "# HELP gnnrec_requests_in_flight Requests being answered.\n"
                   "# TYPE gnnrec_requests_in_flight gauge\ngnnrec_requests_in_flight %d\n"
                   "# HELP gnnrec_events_queued Events queued or being committed, not yet "
                   "answered.\n"
                   "# TYPE gnnrec_events_queued gauge\ngnnrec_events_queued %zu\n",
                   srv_versions_alive(), atomic_load(&r->srv->in_flight),
                   srv_intake_queued(r->srv->intake));
    size_t len = 0;
    char *body = srv_buf_take(&b, &len);
    srv_req_answer(r, 200, body, len, "text/plain; version=0.0.4");
}

void srv_api_dispatch(req_t *r, const char *method, const char *url)
{
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    const struct route *rt = route(url, seg, len);
    if (!rt) {
        srv_req_error(r, 404, "no such path: %.200s", url);
        return;
    }
    if (!method_ok(rt, method)) {
        r->allow = rt->allow;
        srv_req_error(r, 405, "%s does not take %s (allowed: %s)", url, method, rt->allow);
        return;
    }
    switch (rt->ep) {
    case SRV_EP_RECOMMEND:
        recommend(r, seg[0], len[0]);
        break;
    case SRV_EP_RECOMMEND_NEW:
        recommend_new(r);
        break;
    case SRV_EP_EXPLAIN:
        explain(r, seg[0], len[0], seg[1], len[1]);
        break;
    case SRV_EP_SIMILAR:
        similar(r, seg[0], len[0]);
        break;
    case SRV_EP_SCORE:
        score(r);
        break;
    case SRV_EP_MODELS:
        models(r);
        break;
    case SRV_EP_HEALTHZ:
        answer_json(r, 200, json_pack("{ss}", "status", "ok"));
        break;
    case SRV_EP_READYZ: {
        int n = srv_registry_count(r->srv->reg);
        if (n > 0)
            answer_json(r, 200, json_pack("{ss,si}", "status", "ready", "models", n));
        else
            srv_req_error(r, 503, "no model version is loaded yet");
        break;
    }
    case SRV_EP_METRICS:
        metrics(r);
        break;
    case SRV_EP_RELOAD:
        srv_loader_request(r->srv, r);
        break;
    case SRV_EP_EVENTS:
        post_events(r);
        break;
    case SRV_EP_OTHER:
    case SRV_EP_COUNT:
        srv_req_error(r, 404, "no such path");
        break;
    }
}
