/* External id <-> dense index map: string arena + offsets + open-addressing hash table. */
#include "engine/idmap.h"
#include "engine/err.h"

#include <stdlib.h>
#include <string.h>

struct eng_idmap {
    char *arena; /* ids, each NUL-terminated, in index order: also the serialised form */
    size_t arena_len, arena_cap;
    size_t *off; /* off[i]: start of id i in arena */
    int32_t n, off_cap;
    int32_t *slots; /* hash table of indices, -1 empty; capacity a power of two */
    size_t slot_mask;
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

eng_idmap_t *eng_idmap_new(void)
{
    eng_idmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->slot_mask = 63;
    m->slots = malloc(64 * sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    memset(m->slots, 0xff, 64 * sizeof *m->slots);
    return m;
}

void eng_idmap_free(eng_idmap_t *m)
{
    if (!m)
        return;
    free(m->arena);
    free(m->off);
    free(m->slots);
    free(m);
}

/* Slot holding id s, or the empty slot where it would go. */
static size_t probe(const eng_idmap_t *m, const char *s, size_t len)
{
    size_t h = fnv1a(s, len) & m->slot_mask;
    for (;;) {
        int32_t i = m->slots[h];
        if (i < 0)
            return h;
        const char *t = m->arena + m->off[i];
        if (strncmp(t, s, len) == 0 && t[len] == '\0')
            return h;
        h = (h + 1) & m->slot_mask;
    }
}

int32_t eng_idmap_find(const eng_idmap_t *m, const char *s, size_t len)
{
    if (memchr(s, '\0', len))
        return -1;
    return m->slots[probe(m, s, len)];
}

void eng_idmap_translate(const eng_idmap_t *from, const eng_idmap_t *to, int32_t *out)
{
    for (int32_t i = 0; i < eng_idmap_size(from); i++) {
        const char *id = eng_idmap_name(from, i);
        out[i] = eng_idmap_find(to, id, strlen(id));
    }
}

static int grow_slots(eng_idmap_t *m)
{
    size_t cap = (m->slot_mask + 1) * 2;
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!slots)
        return ENG_ENOMEM;
    memset(slots, 0xff, cap * sizeof *slots);
    for (int32_t i = 0; i < m->n; i++) {
        const char *t = m->arena + m->off[i];
        size_t h = fnv1a(t, strlen(t)) & (cap - 1);
        while (slots[h] >= 0)
            h = (h + 1) & (cap - 1);
        slots[h] = i;
    }
    free(m->slots);
    m->slots = slots;
    m->slot_mask = cap - 1;
    return ENG_OK;
}

int32_t eng_idmap_intern(eng_idmap_t *m, const char *s, size_t len)
{
    size_t h = probe(m, s, len);
    if (m->slots[h] >= 0)
        return m->slots[h];
    if (m->n == INT32_MAX)
        return ENG_ERANGE;
    /* Reserve everything first so that a failed allocation leaves the map unchanged. */
    if (m->arena_len + len + 1 > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap * 2 : 4096;
        while (cap < m->arena_len + len + 1)
            cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a)
            return ENG_ENOMEM;
        m->arena = a;
        m->arena_cap = cap;
    }
    if (m->n == m->off_cap) {
        int32_t cap = m->off_cap ? (m->off_cap > INT32_MAX / 2 ? INT32_MAX : m->off_cap * 2) : 256;
        size_t *o = realloc(m->off, (size_t)cap * sizeof *o);
        if (!o)
            return ENG_ENOMEM;
        m->off = o;
        m->off_cap = cap;
    }
    if ((size_t)(m->n + 1) * 2 > m->slot_mask + 1) {
        if (grow_slots(m) != ENG_OK)
            return ENG_ENOMEM;
        h = probe(m, s, len);
    }
    memcpy(m->arena + m->arena_len, s, len);
    m->arena[m->arena_len + len] = '\0';
    m->off[m->n] = m->arena_len;
    m->arena_len += len + 1;
    m->slots[h] = m->n;
    return m->n++;
}

const char *eng_idmap_name(const eng_idmap_t *m, int32_t i)
{
    return m->arena + m->off[i];
}

int32_t eng_idmap_size(const eng_idmap_t *m)
{
    return m->n;
}

const char *eng_idmap_blob(const eng_idmap_t *m, size_t *len)
{
    *len = m->arena_len;
    return m->arena ? m->arena : "";
}

eng_idmap_t *eng_idmap_from_blob(const char *blob, size_t len, int32_t expect_n)
{
    if (len > 0 && blob[len - 1] != '\0')
        return NULL;
    eng_idmap_t *m = eng_idmap_new();
    if (!m)
        return NULL;
    size_t pos = 0;
    while (pos < len) {
        size_t l = strlen(blob + pos);
        if (l == 0)
            goto fail;
        int32_t before = m->n;
        int32_t idx = eng_idmap_intern(m, blob + pos, l);
        if (idx < 0 || idx != before) /* failure, or a duplicate id */
            goto fail;
        pos += l + 1;
    }
    if (expect_n >= 0 && m->n != expect_n)
        goto fail;
    return m;
fail:
    eng_idmap_free(m);
    return NULL;
}
