/* A growable byte buffer for building HTTP response bodies, with JSON string escaping.
 *
 * Appends never fail visibly: on allocation failure the buffer is marked failed, later appends
 * are no-ops, and srv_buf_take returns NULL: the caller answers 500 instead. */
#ifndef GNNREC_SERVER_BUF_H
#define GNNREC_SERVER_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} srv_buf_t;

void srv_buf_init(srv_buf_t *b, size_t cap_hint);
void srv_buf_free(srv_buf_t *b);
/* Hands the contents (NUL-terminated) to the caller, who frees them with free(); the buffer is
 * left empty. NULL when an append failed. */
char *srv_buf_take(srv_buf_t *b, size_t *len);

void srv_buf_put(srv_buf_t *b, const char *s, size_t n);
void srv_buf_puts(srv_buf_t *b, const char *s);
void srv_buf_printf(srv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included; control characters and invalid UTF-8 bytes are
 * escaped as \u00XX so the output is always valid JSON. */
void srv_buf_json_str(srv_buf_t *b, const char *s);
/* A float as a JSON number (shortest round-trip-ish %.9g; non-finite values as 0, which JSON
 * cannot represent and vectors checked at load time cannot produce anyway). */
void srv_buf_json_num(srv_buf_t *b, double v);

#endif
