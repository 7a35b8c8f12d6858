/* Growable response buffer with JSON escaping. */
#include "server/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_buf_init(srv_buf_t *b, size_t cap_hint)
{
    *b = (srv_buf_t){0};
    b->data = malloc(cap_hint ? cap_hint : 256);
    if (b->data) {
        b->cap = cap_hint ? cap_hint : 256;
        b->data[0] = '\0';
    } else {
        b->failed = 1;
    }
}

void srv_buf_free(srv_buf_t *b)
{
    free(b->data);
    *b = (srv_buf_t){0};
}

char *srv_buf_take(srv_buf_t *b, size_t *len)
{
    if (b->failed) {
        srv_buf_free(b);
        return NULL;
    }
    char *d = b->data;
    if (len)
        *len = b->len;
    *b = (srv_buf_t){0};
    return d;
}

static int reserve(srv_buf_t *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void srv_buf_put(srv_buf_t *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void srv_buf_puts(srv_buf_t *b, const char *s)
{
    srv_buf_put(b, s, strlen(s));
}

void srv_buf_printf(srv_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        srv_buf_put(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when it is not valid. */
static int utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = s[0] >= 0xf0 && s[0] <= 0xf4  ? 4
            : s[0] >= 0xe0                ? 3
            : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
                                          : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

void srv_buf_json_str(srv_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    srv_buf_put(b, "\"", 1);
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            srv_buf_put(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p++};
            srv_buf_put(b, esc, 2);
        } else if (*p >= 0x80 && utf8_len(p) > 0) {
            int n = utf8_len(p);
            srv_buf_put(b, (const char *)p, (size_t)n);
            p += n;
        } else {
            srv_buf_printf(b, "\\u%04x", *p++);
        }
    }
    srv_buf_put(b, "\"", 1);
}

void srv_buf_json_num(srv_buf_t *b, double v)
{
    if (!isfinite(v))
        v = 0;
    srv_buf_printf(b, "%.9g", v);
}
