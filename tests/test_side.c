/* Side information files (trainer/side.h): attributes, user-user edges, a knowledge graph and its
 * item map, their skipped rows and their errors; and kgcn-music's graph when the data is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/testdata.h"
#include "trainer/side.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct {
    test_dir_t dir;
    char log[128], a[128], b[128], c[128];
    trn_data_t *d;
} fixture_t;

/* A log of users u1, u2 and items i1, i2 in a new directory. */
static void fixture(fixture_t *x)
{
    test_dir_new(&x->dir, "side");
    snprintf(x->log, sizeof x->log, "%s/log.csv", x->dir.dir);
    snprintf(x->a, sizeof x->a, "%s/a.csv", x->dir.dir);
    snprintf(x->b, sizeof x->b, "%s/b.tsv", x->dir.dir);
    snprintf(x->c, sizeof x->c, "%s/c.txt", x->dir.dir);
    write_file(x->log, "user,item\nu1,i1\nu1,i2\nu2,i2\n");
    eng_error_t err = {0};
    assert_int_equal(trn_data_load(&(trn_data_opts_t){.train_path = x->log}, &x->d, &err), 0);
}

static void fixture_done(fixture_t *x)
{
    trn_data_free(x->d);
    assert_int_equal(test_dir_remove(&x->dir), 0);
}

static void test_attrs_and_social(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    write_file(x.a, "item,attribute,value\ni1,genre,Rock\ni2,genre,Jazz\ni9,genre,Pop\n"
                    "i1,genre,Rock\ni2,decade,1990s\n");
    write_file(x.b, "u1\tu2\nu2\tu1\nu1\tu1\nu3\tu1\n");
    eng_error_t err = {0};
    trn_side_t *s = NULL;
    assert_int_equal(
        trn_side_load(&(trn_side_opts_t){.item_attrs = x.a, .social = x.b}, x.d, &s, &err), 0);
    /* i1: Rock (twice, one entry); i2: Jazz, 1990s; i9 is not in the log */
    assert_int_equal(s->item_attrs->rows, 2);
    assert_int_equal(s->item_attrs->cols, 3);
    assert_int_equal(s->item_attrs->nnz, 3);
    assert_int_equal(eng_idmap_find(s->item_values, "genre=Rock", 10), 0);
    assert_int_equal(s->skipped[TRN_SIDE_ITEM_ATTRS], 1);
    /* u1 - u2 both ways once, the self-loop dropped, u3 unknown */
    assert_int_equal(s->social->nnz, 2);
    assert_true(eng_csr_has(s->social, 0, 1) && eng_csr_has(s->social, 1, 0));
    assert_int_equal(s->skipped[TRN_SIDE_SOCIAL], 1);
    trn_inputs_t in = {0};
    trn_side_inputs(s, &in);
    assert_ptr_equal(in.item_attrs, s->item_attrs);
    assert_null(in.user_attrs);
    assert_null(in.kg);
    trn_side_free(s);
    fixture_done(&x);
}

static void test_kg(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    write_file(x.a, "i1 member_of e5\ne5 member_of i2\ne5 genre e6\n");
    eng_error_t err = {0};
    trn_side_t *s = NULL;
    assert_int_equal(trn_side_load(&(trn_side_opts_t){.kg = x.a}, x.d, &s, &err), 0);
    assert_int_equal(s->kg.n, 3);
    assert_int_equal(s->kg.n_relations, 2);
    assert_int_equal(s->kg.n_entities, 4); /* i1 e5 i2 e6 */
    /* without a map, an item is the entity of its own id */
    assert_string_equal(eng_idmap_name(s->entities, s->item_entity[0]), "i1");
    assert_string_equal(eng_idmap_name(s->entities, s->item_entity[1]), "i2");
    assert_int_equal(s->kg.head[1], s->kg.tail[0]);
    trn_side_free(s);
    /* with a map: i1 is e6, i2 is not named (its own id), i7 is not in the log */
    write_file(x.b, "item\tentity\ni1\te6\ni7\te5\n");
    assert_int_equal(
        trn_side_load(&(trn_side_opts_t){.kg = x.a, .item_entities = x.b}, x.d, &s, &err), 0);
    assert_string_equal(eng_idmap_name(s->entities, s->item_entity[0]), "e6");
    assert_string_equal(eng_idmap_name(s->entities, s->item_entity[1]), "i2");
    assert_int_equal(s->skipped[TRN_SIDE_ITEM_ENTITIES], 1);
    trn_side_free(s);
    /* the graph alone: its entities are the items, in order, each its own entity; no users */
    trn_data_t *d = NULL;
    assert_int_equal(trn_side_load_kg_only(x.a, &s, &d, &err), 0);
    assert_int_equal(d->n_users, 0);
    assert_int_equal(d->n_items, 4);
    assert_int_equal(d->train->rows, 0);
    assert_int_equal(d->train->cols, 4);
    assert_null(d->test);
    for (int32_t e = 0; e < 4; e++) {
        assert_string_equal(eng_idmap_name(d->items, e), eng_idmap_name(s->entities, e));
        assert_int_equal(s->kg.item_entity[e], e);
    }
    trn_side_free(s);
    trn_data_free(d);
    write_file(x.b, "i1 member_of\n");
    assert_int_equal(trn_side_load_kg_only(x.b, &s, &d, &err), ENG_EPARSE);
    assert_null(s);
    assert_null(d);
    assert_non_null(strstr(err.msg, ":1: expected at least 3 columns, got 2"));
    fixture_done(&x);
}

static void test_errors(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    eng_error_t err = {0};
    trn_side_t *s = (trn_side_t *)&err; /* must come back NULL */
    write_file(x.a, "item,attribute,value\ni1,genre\n");
    assert_true(trn_side_load(&(trn_side_opts_t){.item_attrs = x.a}, x.d, &s, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "a.csv:2: expected at least 3 columns, got 2"));
    write_file(x.a, "h,r,t\n\"i1,r,t\n");
    assert_true(trn_side_load(&(trn_side_opts_t){.kg = x.a}, x.d, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "a.csv:2: unterminated quoted field"));
    write_file(x.a, "u1,,v\n");
    assert_true(trn_side_load(&(trn_side_opts_t){.user_attrs = x.a}, x.d, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "a.csv:1: empty field id"));
    assert_true(trn_side_load(&(trn_side_opts_t){.social = "/nonexistent/x"}, x.d, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
    fixture_done(&x);
}

/* kgcn-music: the log and kg_final.txt as shipped, items their own entities (the identity map). */
static void test_kgcn_music(void **state)
{
    (void)state;
    const char *root = getenv("GNNREC_DATA");
    char log[4096], kg[4096];
    struct stat st;
    if (!root) {
        print_message("GNNREC_DATA not set: skipping\n");
        skip();
    }
    snprintf(log, sizeof log, "%s/kgcn-music/interactions.txt", root);
    snprintf(kg, sizeof kg, "%s/kgcn-music/kg_final.txt", root);
    if (stat(log, &st) != 0 || stat(kg, &st) != 0) {
        print_message("%s/kgcn-music absent: skipping\n", root);
        skip();
    }
    eng_error_t err = {0};
    trn_data_t *d = NULL;
    if (trn_data_load(&(trn_data_opts_t){.train_path = log}, &d, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(d->n_items, 3846);
    trn_side_t *s = NULL;
    if (trn_side_load(&(trn_side_opts_t){.kg = kg}, d, &s, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(s->kg.n, 15518);
    assert_int_equal(s->kg.n_relations, 60);
    assert_int_equal(s->kg.n_entities, 9366); /* every item is in the graph already */
    for (int32_t i = 0; i < d->n_items; i++)
        assert_string_equal(eng_idmap_name(s->entities, s->item_entity[i]),
                            eng_idmap_name(d->items, i));
    trn_side_free(s);
    trn_data_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attrs_and_social),
        cmocka_unit_test(test_kg),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_kgcn_music),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
