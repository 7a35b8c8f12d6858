/* Hyper-parameter tables: defaults, parsing, formatting, JSON and help from the rows. */
#include "trainer/hparams.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int *int_field(const trn_hparam_t *h, void *cfg)
{
    return (int *)((char *)cfg + h->offset);
}

static float *float_field(const trn_hparam_t *h, void *cfg)
{
    return (float *)((char *)cfg + h->offset);
}

static trn_hp_list_t *list_field(const trn_hparam_t *h, void *cfg)
{
    return (trn_hp_list_t *)((char *)cfg + h->offset);
}

/* Parses "a,b,c" (1..TRN_HP_LIST_MAX integers, each in h's range) into *out; -1 on bad text. */
static int parse_list(const trn_hparam_t *h, const char *text, trn_hp_list_t *out)
{
    trn_hp_list_t l = {0};
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < h->lo || v > h->hi || l.n == TRN_HP_LIST_MAX)
            return -1;
        l.v[l.n++] = (int)v;
        if (*end == '\0')
            break;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
    *out = l;
    return 0;
}

/* The index of choice name (len bytes) in h->choices, or -1. */
static int choice_index(const trn_hparam_t *h, const char *name, size_t len)
{
    const char *p = h->choices;
    for (int i = 0;; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return i;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

/* The name of choice i of h into buf. */
static void choice_name(const trn_hparam_t *h, int i, char *buf, size_t len)
{
    const char *p = h->choices;
    for (; i > 0 && p; i--) {
        p = strchr(p, '|');
        p = p ? p + 1 : NULL;
    }
    if (!p) {
        snprintf(buf, len, "?");
        return;
    }
    const char *bar = strchr(p, '|');
    snprintf(buf, len, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
}

void trn_hp_defaults(const trn_hparam_t *t, int n, void *cfg)
{
    for (int i = 0; i < n; i++) {
        if (t[i].type == TRN_HP_FLOAT)
            *float_field(&t[i], cfg) = (float)t[i].def;
        else if (t[i].type == TRN_HP_LIST)
            parse_list(&t[i], t[i].def_list, list_field(&t[i], cfg)); /* tests check defaults */
        else
            *int_field(&t[i], cfg) = (int)t[i].def;
    }
}

const trn_hparam_t *trn_hp_find(const trn_hparam_t *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

int trn_hp_parse(const trn_hparam_t *h, void *cfg, const char *text, eng_error_t *err)
{
    char *end;
    errno = 0;
    switch (h->type) {
    case TRN_HP_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < h->lo || v > h->hi)
            return eng_error_set(err, ENG_EINVAL,
                                 "--%s: expected an integer in %.0f..%.0f, got '%s'", h->name,
                                 h->lo, h->hi, text);
        *int_field(h, cfg) = (int)v;
        return ENG_OK;
    }
    case TRN_HP_FLOAT: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !(v >= h->lo && v <= h->hi))
            return eng_error_set(err, ENG_EINVAL, "--%s: expected a number in [%g, %g], got '%s'",
                                 h->name, h->lo, h->hi, text);
        *float_field(h, cfg) = (float)v;
        return ENG_OK;
    }
    case TRN_HP_CHOICE: {
        int i = choice_index(h, text, strlen(text));
        if (i < 0)
            return eng_error_set(err, ENG_EINVAL, "--%s: expected one of %s, got '%s'", h->name,
                                 h->choices, text);
        *int_field(h, cfg) = i;
        return ENG_OK;
    }
    case TRN_HP_LIST:
        if (parse_list(h, text, list_field(h, cfg)) < 0)
            return eng_error_set(err, ENG_EINVAL,
                                 "--%s: expected 1 to %d comma-separated integers in %.0f..%.0f, "
                                 "got '%s'",
                                 h->name, TRN_HP_LIST_MAX, h->lo, h->hi, text);
        return ENG_OK;
    }
    return eng_error_set(err, ENG_EINVAL, "--%s: unknown type", h->name);
}

/* "a,b,c" into buf (truncated at len). */
static void format_list(const trn_hp_list_t *l, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n && off < len; i++) {
        int w = snprintf(buf + off, len - off, i ? ",%d" : "%d", l->v[i]);
        off += w > 0 ? (size_t)w : 0;
    }
}

void trn_hp_format(const trn_hparam_t *h, const void *cfg, char *buf, size_t len)
{
    void *c = (void *)cfg;
    if (h->type == TRN_HP_FLOAT)
        snprintf(buf, len, "%g", (double)*float_field(h, c));
    else if (h->type == TRN_HP_INT)
        snprintf(buf, len, "%d", *int_field(h, c));
    else if (h->type == TRN_HP_LIST)
        format_list(list_field(h, c), buf, len);
    else
        choice_name(h, *int_field(h, c), buf, len);
}

int trn_hp_to_json(const trn_hparam_t *t, int n, const void *cfg, json_t *o)
{
    void *c = (void *)cfg;
    for (int i = 0; i < n; i++) {
        json_t *v;
        if (t[i].type == TRN_HP_FLOAT) {
            v = json_real((double)*float_field(&t[i], c));
        } else if (t[i].type == TRN_HP_INT) {
            v = json_integer(*int_field(&t[i], c));
        } else if (t[i].type == TRN_HP_LIST) {
            const trn_hp_list_t *l = list_field(&t[i], c);
            v = json_array();
            for (int k = 0; v && k < l->n; k++)
                if (json_array_append_new(v, json_integer(l->v[k])) != 0) {
                    json_decref(v);
                    v = NULL;
                }
        } else {
            char name[64];
            choice_name(&t[i], *int_field(&t[i], c), name, sizeof name);
            v = json_string(name);
        }
        if (json_object_set_new(o, t[i].name, v) != 0)
            return ENG_ENOMEM;
    }
    return ENG_OK;
}

void trn_hp_help(const trn_hparam_t *t, int n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && off < len; i++) {
        char def[64], flag[64], range[96];
        double d = t[i].def;
        if (t[i].type == TRN_HP_CHOICE) {
            choice_name(&t[i], (int)d, def, sizeof def);
            snprintf(flag, sizeof flag, "--%s NAME", t[i].name);
            snprintf(range, sizeof range, "%s; one of %s", def, t[i].choices);
        } else if (t[i].type == TRN_HP_LIST) {
            snprintf(flag, sizeof flag, "--%s N,N..", t[i].name);
            snprintf(range, sizeof range, "%s; 1..%d values in %.0f..%.0f", t[i].def_list,
                     TRN_HP_LIST_MAX, t[i].lo, t[i].hi);
        } else if (t[i].type == TRN_HP_INT) {
            snprintf(flag, sizeof flag, "--%s N", t[i].name);
            snprintf(range, sizeof range, "%.0f; %.0f..%.0f", d, t[i].lo, t[i].hi);
        } else {
            snprintf(flag, sizeof flag, "--%s X", t[i].name);
            snprintf(range, sizeof range, "%g; %g..%g", d, t[i].lo, t[i].hi);
        }
        int w = snprintf(buf + off, len - off, "  %-20s%s (%s)\n", flag, t[i].help, range);
        off += w > 0 ? (size_t)w : 0;
    }
}
