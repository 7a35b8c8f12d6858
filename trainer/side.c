/* Side information files into a model's side inputs (trainer/side.h). */
#include "trainer/side.h"

#include "trainer/data_internal.h"

#include <stdlib.h>
#include <string.h>

/* A growing list of int32 tuples (pairs or triples), `arity` values each, kept by column: the
 * columns are what eng_csr_from_pairs and trn_triples_t take. */
typedef struct {
    int32_t *col[3];
    int64_t n, cap;
    int arity;
} tuples_t;

static int tuples_push(tuples_t *t, const int32_t *x)
{
    if (t->n == t->cap) {
        const int64_t cap = t->cap ? 2 * t->cap : 1024;
        for (int c = 0; c < t->arity; c++) {
            int32_t *v = realloc(t->col[c], (size_t)cap * sizeof *v);
            if (!v)
                return ENG_ENOMEM; /* the columns grown so far keep their room: harmless */
            t->col[c] = v;
        }
        t->cap = cap;
    }
    for (int c = 0; c < t->arity; c++)
        t->col[c][t->n] = x[c];
    t->n++;
    return ENG_OK;
}

static void tuples_free(tuples_t *t)
{
    for (int c = 0; c < 3; c++)
        free(t->col[c]);
}

/* What a file's rows go into. */
typedef struct {
    const trn_data_t *d;
    trn_side_t *s;
    eng_idmap_t *owners; /* attributes: the log's users or items */
    eng_idmap_t *values; /* attributes: "attribute=value" names */
    tuples_t t;
    int64_t *skipped;
} load_t;

static int oom(const trn__reader_t *r, eng_error_t *err)
{
    return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", r->path);
}

static int intern(const trn__reader_t *r, eng_idmap_t *m, const trn__field_t *f, eng_error_t *err)
{
    return trn__intern(r, m, f->p, f->len, err);
}

/* owner,attribute,value: (owner, the value's column) */
static int attr_row(void *ctx, const trn__reader_t *r, const trn__field_t *f, eng_error_t *err)
{
    load_t *l = ctx;
    const int32_t owner = eng_idmap_find(l->owners, f[0].p, f[0].len);
    if (owner < 0) {
        ++*l->skipped;
        return ENG_OK;
    }
    char key[2 * TRN_DATA_MAX_ID + 2];
    memcpy(key, f[1].p, f[1].len);
    key[f[1].len] = '=';
    memcpy(key + f[1].len + 1, f[2].p, f[2].len);
    const trn__field_t k = {key, f[1].len + 1 + f[2].len};
    const int32_t col = intern(r, l->values, &k, err);
    if (col < 0)
        return col;
    const int32_t x[2] = {owner, col};
    return tuples_push(&l->t, x) < 0 ? oom(r, err) : ENG_OK;
}

/* user,user: both directions, a self-loop dropped */
static int social_row(void *ctx, const trn__reader_t *r, const trn__field_t *f, eng_error_t *err)
{
    load_t *l = ctx;
    const int32_t a = eng_idmap_find(l->d->users, f[0].p, f[0].len);
    const int32_t b = eng_idmap_find(l->d->users, f[1].p, f[1].len);
    if (a < 0 || b < 0) {
        ++*l->skipped;
        return ENG_OK;
    }
    if (a == b)
        return ENG_OK;
    const int32_t x[2] = {a, b}, y[2] = {b, a};
    return tuples_push(&l->t, x) < 0 || tuples_push(&l->t, y) < 0 ? oom(r, err) : ENG_OK;
}

/* head,relation,tail */
static int kg_row(void *ctx, const trn__reader_t *r, const trn__field_t *f, eng_error_t *err)
{
    load_t *l = ctx;
    int32_t x[3];
    if ((x[0] = intern(r, l->s->entities, &f[0], err)) < 0 ||
        (x[1] = intern(r, l->s->relations, &f[1], err)) < 0 ||
        (x[2] = intern(r, l->s->entities, &f[2], err)) < 0)
        return x[0] < 0 ? x[0] : x[1] < 0 ? x[1] : x[2];
    return tuples_push(&l->t, x) < 0 ? oom(r, err) : ENG_OK;
}

/* item,entity */
static int entity_row(void *ctx, const trn__reader_t *r, const trn__field_t *f, eng_error_t *err)
{
    load_t *l = ctx;
    const int32_t item = eng_idmap_find(l->d->items, f[0].p, f[0].len);
    if (item < 0) {
        ++*l->skipped;
        return ENG_OK;
    }
    const int32_t e = intern(r, l->s->entities, &f[1], err);
    if (e < 0)
        return e;
    l->s->item_entity[item] = e;
    return ENG_OK;
}

/* Reads path as a table of cols columns named by stems into l. */
static int read_table(const char *path, int cols, const char *const *stems, trn__row_fn *row,
                      load_t *l, eng_error_t *err)
{
    trn__reader_t r;
    int rc = trn__reader_open(&r, path, err);
    if (rc < 0)
        return rc;
    r.max_line = TRN_CSV_MAX_LINE;
    rc = trn__table_read(&r, cols, stems, row, l, err);
    trn__reader_close(&r);
    return rc < 0 ? rc : ENG_OK;
}

/* The pairs of l as a new pattern [rows x cols] into *out. */
static int pairs_csr(load_t *l, int32_t rows, int32_t cols, eng_csr_t **out)
{
    *out = eng_csr_from_pairs(rows, cols, l->t.col[0], l->t.col[1], l->t.n);
    return *out ? ENG_OK : ENG_ENOMEM;
}

static const char *const user_cols[] = {"user|uid", "attribute|attr|key|feature|field", "value"};
static const char *const item_cols[] = {"item|iid|artist|movie|product",
                                        "attribute|attr|key|feature|field|genre|tag", "value"};
static const char *const social_cols[] = {"user|uid|friend|source|src|from",
                                          "user|uid|friend|target|dst|to"};
static const char *const kg_cols[] = {"head|h|subject|source", "relation|rel|r|predicate",
                                      "tail|t|object|target"};
static const char *const entity_cols[] = {"item|iid|artist|movie|product", "entity|ent"};

/* One attribute file of owners into *csr and *values. */
static int load_attrs(const char *path, const char *const *stems, const trn_data_t *d,
                      eng_idmap_t *owners, int32_t n_owners, eng_csr_t **csr, eng_idmap_t **values,
                      int64_t *skipped, eng_error_t *err)
{
    if (!(*values = eng_idmap_new()))
        return eng_error_set(err, ENG_ENOMEM, "%s: out of memory", path);
    load_t l = {d, NULL, owners, *values, {{NULL}, 0, 0, 2}, skipped};
    int rc = read_table(path, 3, stems, attr_row, &l, err);
    if (rc == ENG_OK && pairs_csr(&l, n_owners, eng_idmap_size(*values), csr) < 0)
        rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory", path);
    tuples_free(&l.t);
    return rc;
}

int trn_side_load(const trn_side_opts_t *o, const trn_data_t *d, trn_side_t **out, eng_error_t *err)
{
    *out = NULL;
    trn_side_t *s = calloc(1, sizeof *s);
    if (!s)
        return eng_error_set(err, ENG_ENOMEM, "out of memory");
    int rc = ENG_OK;
    if (o->user_attrs)
        rc = load_attrs(o->user_attrs, user_cols, d, d->users, d->n_users, &s->user_attrs,
                        &s->user_values, &s->skipped[TRN_SIDE_USER_ATTRS], err);
    if (rc == ENG_OK && o->item_attrs)
        rc = load_attrs(o->item_attrs, item_cols, d, d->items, d->n_items, &s->item_attrs,
                        &s->item_values, &s->skipped[TRN_SIDE_ITEM_ATTRS], err);
    if (rc == ENG_OK && o->social) {
        load_t l = {d, s, NULL, NULL, {{NULL}, 0, 0, 2}, &s->skipped[TRN_SIDE_SOCIAL]};
        rc = read_table(o->social, 2, social_cols, social_row, &l, err);
        if (rc == ENG_OK && pairs_csr(&l, d->n_users, d->n_users, &s->social) < 0)
            rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory", o->social);
        tuples_free(&l.t);
    }
    if (rc == ENG_OK && o->kg) {
        s->entities = eng_idmap_new();
        s->relations = eng_idmap_new();
        s->item_entity = malloc(((size_t)d->n_items + 1) * sizeof *s->item_entity);
        load_t l = {d, s, NULL, NULL, {{NULL}, 0, 0, 3}, NULL};
        if (!s->entities || !s->relations || !s->item_entity)
            rc = eng_error_set(err, ENG_ENOMEM, "%s: out of memory", o->kg);
        else
            rc = read_table(o->kg, 3, kg_cols, kg_row, &l, err);
        for (int32_t i = 0; rc == ENG_OK && i < d->n_items; i++)
            s->item_entity[i] = -1;
        if (rc == ENG_OK && o->item_entities) {
            load_t m = {d, s, NULL, NULL, {{NULL}, 0, 0, 2}, &s->skipped[TRN_SIDE_ITEM_ENTITIES]};
            rc = read_table(o->item_entities, 2, entity_cols, entity_row, &m, err);
        }
        /* an item the map does not name is the entity of its own id */
        for (int32_t i = 0; rc == ENG_OK && i < d->n_items; i++)
            if (s->item_entity[i] < 0) {
                const char *id = eng_idmap_name(d->items, i);
                const int32_t e = eng_idmap_intern(s->entities, id, strlen(id));
                if (e < 0)
                    rc = eng_error_set(err, e, "%s: out of memory", o->kg);
                s->item_entity[i] = e;
            }
        /* the columns become the triples' arrays */
        s->head = l.t.col[0];
        s->rel = l.t.col[1];
        s->tail = l.t.col[2];
        if (rc == ENG_OK)
            s->kg = (trn_triples_t){l.t.n,
                                    s->head,
                                    s->rel,
                                    s->tail,
                                    eng_idmap_size(s->entities),
                                    eng_idmap_size(s->relations),
                                    s->item_entity,
                                    s->entities,
                                    s->relations};
    }
    if (rc < 0) {
        trn_side_free(s);
        return rc;
    }
    *out = s;
    return ENG_OK;
}

void trn_side_free(trn_side_t *s)
{
    if (!s)
        return;
    eng_csr_free(s->user_attrs);
    eng_csr_free(s->item_attrs);
    eng_csr_free(s->social);
    eng_idmap_free(s->user_values);
    eng_idmap_free(s->item_values);
    eng_idmap_free(s->entities);
    eng_idmap_free(s->relations);
    free(s->head);
    free(s->rel);
    free(s->tail);
    free(s->item_entity);
    free(s);
}

void trn_side_inputs(const trn_side_t *s, trn_inputs_t *in)
{
    in->user_attrs = s->user_attrs;
    in->item_attrs = s->item_attrs;
    in->social = s->social;
    in->kg = s->entities ? &s->kg : NULL;
}

int trn_side_load_kg_only(const char *kg, trn_side_t **side, trn_data_t **data, eng_error_t *err)
{
    *side = NULL;
    *data = NULL;
    trn_data_t *none = calloc(1, sizeof *none), *d = calloc(1, sizeof *d);
    int rc = ENG_ENOMEM;
    if (!none || !d || !(none->users = eng_idmap_new()) || !(none->items = eng_idmap_new()) ||
        !(d->users = eng_idmap_new()) || !(d->items = eng_idmap_new())) {
        eng_error_set(err, rc, "out of memory");
        goto fail;
    }
    /* read against a log of no users and no items, so every entity is the graph's own */
    if ((rc = trn_side_load(&(trn_side_opts_t){.kg = kg}, none, side, err)) < 0)
        goto fail;
    trn_side_t *s = *side;
    const int32_t n = s->kg.n_entities;
    rc = ENG_ENOMEM;
    free(s->item_entity);
    if (!(s->item_entity = malloc(((size_t)n + 1) * sizeof *s->item_entity)) ||
        !(d->train = eng_csr_new(0, n, 0, 0))) {
        eng_error_set(err, rc, "%s: out of memory", kg);
        goto fail;
    }
    for (int32_t e = 0; e < n; e++) {
        const char *name = eng_idmap_name(s->entities, e);
        if ((rc = eng_idmap_intern(d->items, name, strlen(name))) < 0) {
            eng_error_set(err, rc, "%s: out of memory", kg);
            goto fail;
        }
        s->item_entity[e] = e;
    }
    s->kg.item_entity = s->item_entity;
    d->n_items = n;
    trn_data_free(none);
    *data = d;
    return ENG_OK;
fail:
    trn_side_free(*side);
    *side = NULL;
    trn_data_free(none);
    trn_data_free(d);
    return rc;
}
