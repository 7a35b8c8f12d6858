/* KGAT's explanations (the paper's section 4.5): in the collaborative knowledge graph the version
 * was trained on, the paths of up to three hops from the user to the item, weighted by the
 * product of the attention on their edges, the attention the model propagated with.
 *
 * The trainer publishes the graph as CSR over its nodes (entities, then users) with each edge's
 * relation and attention (kgat.graph_*), each version user's and item's node (kgat.user_node,
 * kgat.item_node) and the names of the entities and relations. prepare adds the reverse: each
 * node's incoming edges sorted by source, so a path's last hop is a binary search, and each
 * node's version user or item. A request walks the user's edges and their targets' edges (the
 * first two hops), and looks up the hop into the item. */
#include "server/explain.h"
#include "engine/idmap.h"
#include "server/kinds.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>

const char *const srv_kgat_tensors[] = {
    "kgat.graph_ptr",    "kgat.graph_idx",      "kgat.graph_rel",
    "kgat.graph_att",    "kgat.user_node",      "kgat.item_node",
    "kgat.entity_names", "kgat.relation_names", NULL};

typedef struct {
    int64_t nodes, edges;
    int32_t n_ent;
    const int64_t *ptr;             /* [nodes + 1] out-edges */
    const int32_t *idx, *rel;       /* [edges] */
    const float *att;               /* [edges] */
    const int32_t *user_node;       /* [n_users] */
    const int32_t *item_node;       /* [n_items] */
    int64_t *in_ptr;                /* [nodes + 1] in-edges, by source within a target */
    int32_t *in_src, *in_edge;      /* [edges] */
    int32_t *node_user, *node_item; /* [nodes]: the version's user or item there, or -1 */
    eng_idmap_t *ent_names, *rel_names;
} kgat_explain_t;

void srv_kgat_release(void *kind_data)
{
    kgat_explain_t *x = kind_data;
    if (!x)
        return;
    free(x->in_ptr), free(x->in_src), free(x->in_edge), free(x->node_user), free(x->node_item);
    eng_idmap_free(x->ent_names);
    eng_idmap_free(x->rel_names);
    free(x);
}

/* Tensor name of m when it has dtype and shape [rows x 1] (rows < 0: any), else NULL. */
static const sto_tensor_t *column(const sto_model_t *m, const char *name, sto_dtype_t dtype,
                                  int64_t rows)
{
    const sto_tensor_t *t = sto_model_tensor(m, name);
    if (!t || t->dtype != dtype || t->ndim != 2 || t->shape[1] != 1 ||
        (rows >= 0 && t->shape[0] != rows))
        return NULL;
    return t;
}

/* The graph's arrays checked against each other: an index out of range would be read. */
static int graph_ok(const kgat_explain_t *x, int32_t n_users, int32_t n_items)
{
    if (x->ptr[0] != 0 || x->ptr[x->nodes] != x->edges)
        return 0;
    for (int64_t v = 0; v < x->nodes; v++)
        if (x->ptr[v + 1] < x->ptr[v])
            return 0;
    for (int64_t e = 0; e < x->edges; e++)
        if (x->idx[e] < 0 || x->idx[e] >= x->nodes || x->rel[e] < 0 ||
            x->rel[e] >= eng_idmap_size(x->rel_names))
            return 0;
    for (int32_t u = 0; u < n_users; u++)
        if (x->user_node[u] < x->n_ent || x->user_node[u] >= x->nodes)
            return 0;
    for (int32_t i = 0; i < n_items; i++)
        if (x->item_node[i] < 0 || x->item_node[i] >= x->n_ent)
            return 0;
    return 1;
}

int srv_kgat_prepare(srv_version_t *v)
{
    const sto_model_t *m = v->model;
    const int32_t n_users = m->info.n_users, n_items = m->info.n_items;
    const sto_tensor_t *ptr = column(m, "kgat.graph_ptr", STO_I64, -1);
    const int64_t nodes = ptr ? ptr->shape[0] - 1 : -1;
    const sto_tensor_t *idx = column(m, "kgat.graph_idx", STO_I32, -1);
    const int64_t edges = idx ? idx->shape[0] : -1;
    const sto_tensor_t *rel = column(m, "kgat.graph_rel", STO_I32, edges),
                       *att = column(m, "kgat.graph_att", STO_F32, edges),
                       *un = column(m, "kgat.user_node", STO_I32, n_users),
                       *in = column(m, "kgat.item_node", STO_I32, n_items),
                       *en = column(m, "kgat.entity_names", STO_U8, -1),
                       *rn = column(m, "kgat.relation_names", STO_U8, -1);
    kgat_explain_t *x = NULL;
    if (!ptr || nodes < 0 || nodes > INT32_MAX || !idx || !rel || !att || !un || !in || !en || !rn)
        goto lacks;
    if (!(x = calloc(1, sizeof *x)))
        return ENG_ENOMEM;
    x->ent_names = eng_idmap_from_blob(en->data, (size_t)en->shape[0], -1);
    x->rel_names = eng_idmap_from_blob(rn->data, (size_t)rn->shape[0], -1);
    if (!x->ent_names || !x->rel_names)
        goto lacks;
    *x = (kgat_explain_t){.nodes = nodes,
                          .edges = edges,
                          .n_ent = eng_idmap_size(x->ent_names),
                          .ptr = ptr->data,
                          .idx = idx->data,
                          .rel = rel->data,
                          .att = att->data,
                          .user_node = un->data,
                          .item_node = in->data,
                          .ent_names = x->ent_names,
                          .rel_names = x->rel_names};
    if (x->n_ent > nodes || !graph_ok(x, n_users, n_items))
        goto lacks;
    x->in_ptr = calloc((size_t)nodes + 1, sizeof *x->in_ptr);
    x->in_src = malloc(((size_t)edges + 1) * sizeof *x->in_src);
    x->in_edge = malloc(((size_t)edges + 1) * sizeof *x->in_edge);
    x->node_user = malloc(((size_t)nodes + 1) * sizeof *x->node_user);
    x->node_item = malloc(((size_t)nodes + 1) * sizeof *x->node_item);
    if (!x->in_ptr || !x->in_src || !x->in_edge || !x->node_user || !x->node_item) {
        srv_kgat_release(x);
        return ENG_ENOMEM;
    }
    for (int64_t e = 0; e < edges; e++)
        x->in_ptr[x->idx[e] + 1]++;
    for (int64_t q = 0; q < nodes; q++)
        x->in_ptr[q + 1] += x->in_ptr[q];
    int64_t *fill = malloc(((size_t)nodes + 1) * sizeof *fill);
    if (!fill) {
        srv_kgat_release(x);
        return ENG_ENOMEM;
    }
    memcpy(fill, x->in_ptr, (size_t)nodes * sizeof *fill);
    for (int64_t s = 0; s < nodes; s++) /* sources ascending: each in-list comes out sorted */
        for (int64_t e = x->ptr[s]; e < x->ptr[s + 1]; e++) {
            const int64_t q = fill[x->idx[e]]++;
            x->in_src[q] = (int32_t)s;
            x->in_edge[q] = (int32_t)e;
        }
    free(fill);
    for (int64_t q = 0; q < nodes; q++)
        x->node_user[q] = x->node_item[q] = -1;
    for (int32_t u = 0; u < n_users; u++)
        x->node_user[x->user_node[u]] = u;
    for (int32_t i = 0; i < n_items; i++)
        x->node_item[x->item_node[i]] = i;
    v->kind_data = x;
    return ENG_OK;
lacks: /* a version of an older trainer, or tensors that do not fit together */
    if (x) {
        eng_idmap_free(x->ent_names);
        eng_idmap_free(x->rel_names);
        free(x);
    }
    v->abilities &= ~SRV_CAN(SRV_ABILITY_EXPLAIN);
    return ENG_OK;
}

/* The edge from src into dst (the first, when repeated), or -1. */
static int64_t edge_into(const kgat_explain_t *x, int32_t src, int32_t dst)
{
    int64_t lo = x->in_ptr[dst], hi = x->in_ptr[dst + 1];
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (x->in_src[mid] < src)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->in_ptr[dst + 1] && x->in_src[lo] == src ? x->in_edge[lo] : -1;
}

/* Adds p to out[0..*n), the strongest at most max, best first. */
static void keep(srv_path_t *out, int *n, int max, const srv_path_t *p)
{
    if (*n == max && out[max - 1].weight >= p->weight)
        return;
    int at = *n < max ? (*n)++ : max - 1;
    while (at > 0 && out[at - 1].weight < p->weight) {
        out[at] = out[at - 1];
        at--;
    }
    out[at] = *p;
}

/* Names a path of nodes nd[0..n) joined by edges ed[0..n-1). */
static srv_path_t path_of(const srv_version_t *v, const kgat_explain_t *x, const int32_t *nd,
                          const int64_t *ed, int n)
{
    const sto_model_t *m = v->model;
    srv_path_t p = {.n = n, .weight = 1.0f};
    for (int k = 0; k < n; k++) {
        const int32_t node = nd[k];
        if (x->node_user[node] >= 0) {
            p.type[k] = SRV_NODE_USER;
            p.name[k] = eng_idmap_name(m->users, x->node_user[node]);
        } else if (x->node_item[node] >= 0) {
            p.type[k] = SRV_NODE_ITEM;
            p.name[k] = eng_idmap_name(m->items, x->node_item[node]);
        } else {
            p.type[k] = SRV_NODE_ENTITY;
            p.name[k] = node < x->n_ent ? eng_idmap_name(x->ent_names, node) : "?";
        }
        if (k + 1 < n) {
            p.rel[k] = eng_idmap_name(x->rel_names, x->rel[ed[k]]);
            p.weight *= x->att[ed[k]];
        }
    }
    return p;
}

int srv_kgat_explain(const srv_version_t *v, int32_t user, int32_t item, srv_path_t *out, int max)
{
    const kgat_explain_t *x = v->kind_data;
    const int32_t u = x->user_node[user], i = x->item_node[item];
    int n = 0;
    for (int64_t e1 = x->ptr[u]; e1 < x->ptr[u + 1]; e1++) {
        const int32_t a = x->idx[e1];
        if (a == i) { /* an item the user has: the one-hop path */
            const int32_t nd[2] = {u, i};
            const int64_t ed[1] = {e1};
            srv_path_t p = path_of(v, x, nd, ed, 2);
            keep(out, &n, max, &p);
            continue;
        }
        const int64_t e2i = edge_into(x, a, i);
        if (e2i >= 0) {
            const int32_t nd[3] = {u, a, i};
            const int64_t ed[2] = {e1, e2i};
            srv_path_t p = path_of(v, x, nd, ed, 3);
            keep(out, &n, max, &p);
        }
        for (int64_t e2 = x->ptr[a]; e2 < x->ptr[a + 1]; e2++) {
            const int32_t b = x->idx[e2];
            if (b == u || b == i)
                continue;
            const int64_t e3 = edge_into(x, b, i);
            if (e3 < 0)
                continue;
            /* cheap bound first: most candidates lose to the max-th path already kept */
            if (n == max && x->att[e1] * x->att[e2] * x->att[e3] <= out[max - 1].weight)
                continue;
            const int32_t nd[4] = {u, a, b, i};
            const int64_t ed[3] = {e1, e2, e3};
            srv_path_t p = path_of(v, x, nd, ed, 4);
            keep(out, &n, max, &p);
        }
    }
    return n;
}
