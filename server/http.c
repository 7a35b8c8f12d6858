/* HTTP plumbing on libmicrohttpd: request contexts, who may write (the bearer token), body
 * limits, content types, answers, suspension for asynchronous answers, completion (metrics,
 * access log). */
#include "engine/clock.h"
#include "server/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void srv_log(const char *fmt, ...)
{
    char ts[ENG_UTC_LEN];
    eng_utc_format(eng_unix_now(), ts);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s gnnrec serve: %s\n", ts, line);
}

void srv_req_answer(req_t *r, unsigned status, char *body, size_t len, const char *ctype)
{
    free(r->resp);
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    r->content_type = ctype;
}

static const char *error_code(unsigned status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 422:
        return "unprocessable_entity";
    case 501:
        return "not_implemented";
    case 503:
        return "unavailable";
    default:
        return "internal";
    }
}

void srv_req_error(req_t *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_buf_t b;
    srv_buf_init(&b, 128 + strlen(msg));
    srv_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", error_code(status));
    srv_buf_json_str(&b, msg);
    srv_buf_puts(&b, "}}");
    size_t len = 0;
    char *body = srv_buf_take(&b, &len);
    srv_req_answer(r, status, body, len, "application/json");
}

int srv_req_suspend(req_t *r)
{
    srv_t *s = r->srv;
    /* Count first, then look at `closing`: the shutdown sets `closing` and then waits for the
     * count to reach zero, so no connection can be suspended once it stops the daemon. */
    atomic_fetch_add(&s->suspended, 1);
    if (atomic_load(&s->closing)) {
        atomic_fetch_sub(&s->suspended, 1);
        return -1;
    }
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    return 0;
}

void srv_req_resume(req_t *r)
{
    MHD_resume_connection(r->conn);
}

/* Queues r's answer on its connection. */
static enum MHD_Result send_answer(req_t *r)
{
    static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    struct MHD_Response *resp;
    if (r->resp) {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->resp = NULL; /* the response owns it now */
    } else {
        r->status = 500;
        r->content_type = "application/json";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    /* RFC 7235: a 401 names the scheme that would be accepted. */
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->retry_after) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    /* While draining, a keep-alive client's next request must go to a new connection (another
     * server behind the balancer), not arrive here after the last answer and get a 503. */
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int is_json(const char *ctype)
{
    if (!ctype)
        return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ctype, "application/json", n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* Whether the request carries "Authorization: Bearer <token>" with the server's token. The
 * comparison runs over the whole token whatever is presented, with no early exit and the length
 * folded into the same result, so that its time tells a guesser nothing about how much of a guess
 * was right, nor whether its length was. */
static int bearer_ok(const srv_t *s, struct MHD_Connection *conn)
{
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const unsigned char *p = (const unsigned char *)h + 7, *t = (const unsigned char *)s->token;
    while (*p == ' ')
        p++;
    const size_t n = strlen((const char *)p);
    volatile unsigned char diff = n != s->token_len;
    for (size_t i = 0; i < s->token_len; i++)
        diff |= t[i] ^ p[i < n ? i : 0];
    return diff == 0;
}

/* Answers a write the server does not allow (401 without the token, 403 when writes are off),
 * and returns 1; 0 when the request may go on. */
static int refuse_write(srv_t *s, req_t *r, const char *method, const char *url)
{
    if (s->token) {
        if (bearer_ok(s, r->conn))
            return 0;
        const int sent = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
        srv_req_error(r, 401,
                      sent ? "%s %.200s: the bearer token is not the server's"
                           : "%s %.200s needs Authorization: Bearer <the server's token>",
                      method, url);
        return 1;
    }
    if (s->writes_refused) {
        srv_req_error(r, 403,
                      "%s %.200s: writes are off on a server listening beyond loopback "
                      "without a token: start it with --token-file FILE (or --insecure-writes)",
                      method, url);
        return 1;
    }
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    srv_t *s = cls;
    req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0 = eng_now();
        const char *allow = NULL;
        int write = 0;
        r->ep = srv_api_route(url, method, &allow, &r->json_body, &write);
        *con_cls = r;
        atomic_fetch_add(&s->in_flight, 1);
        /* Before the body's type and size: a client without the token learns nothing more.
         * Answered once the body is read (and dropped), so that the connection stays open. */
        if (write && refuse_write(s, r, method, url)) {
            r->refused = 1;
            return MHD_YES;
        }
        if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && r->json_body) {
            /* Refuse before reading the body: wrong type, or declared over the limit. */
            const char *ctype =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            const char *clen =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (!is_json(ctype)) {
                srv_req_error(r, 415, "POST %.200s takes Content-Type: application/json", url);
                return send_answer(r);
            }
            if (clen && strtoull(clen, NULL, 10) > s->cfg.max_body) {
                srv_req_error(r, 413, "request body of %s bytes is over the limit of %zu", clen,
                              s->cfg.max_body);
                return send_answer(r);
            }
            srv_buf_init(&r->body, 1024);
        }
        /* Answer on a later call, once libmicrohttpd has read the whole request: a response
         * queued earlier makes it close the connection instead of keeping it alive. */
        return MHD_YES;
    }
    if (r->suspended) { /* resumed: the answer is ready */
        r->suspended = 0;
        atomic_fetch_sub(&s->suspended, 1);
        return send_answer(r);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->refused) {
            /* Dropped, up to the limit a kept body has: a client without the token cannot
             * stream into the server for ever (over it, the connection is closed). */
            r->dropped += n;
            return r->dropped <= s->cfg.max_body ? MHD_YES : MHD_NO;
        }
        if (!r->json_body)
            return MHD_YES; /* a body nobody reads: discard it */
        if (r->body.len + n <= s->cfg.max_body) {
            srv_buf_put(&r->body, upload_data, n);
            return MHD_YES;
        }
        /* A chunked body (no declared length) went over the limit. libmicrohttpd cannot answer
         * in the middle of a body, and reading on would let a client stream without bound: close
         * the connection (docs/serving.md, proto/openapi.yaml). */
        return MHD_NO;
    }
    if (!r->refused)
        srv_api_dispatch(r, method, url);
    return r->suspended ? MHD_YES : send_answer(r);
}

static void access_log_line(srv_t *s, req_t *r, double secs)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[64] = "-";
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr,
                  sizeof addr);
    char ts[ENG_UTC_LEN];
    eng_utc_format(eng_unix_now(), ts);
    pthread_mutex_lock(&s->log_lock);
    fprintf(s->access_log, "%s %s %s %u %.3fms\n", ts, addr, srv_endpoint_name(r->ep), r->status,
            secs * 1e3);
    fflush(s->access_log);
    pthread_mutex_unlock(&s->log_lock);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    srv_t *s = cls;
    req_t *r = *con_cls;
    if (!r)
        return;
    if (r->suspended) /* ended (client gone) without being answered after its resume */
        atomic_fetch_sub(&s->suspended, 1);
    double secs = eng_now() - r->t0;
    if (r->status)
        srv_metrics_request(r->ep, r->status, secs);
    if (s->access_log && r->status)
        access_log_line(s, r, secs);
    srv_version_unref(r->ver);
    srv_buf_free(&r->body);
    free(r->resp);
    free(r->top);
    free(r->exclude);
    free(r->qbuf);
    free(r->events.batch.ev);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

int srv_http_start(srv_t *s, char *errbuf, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->cfg.port)};
    if (inet_pton(AF_INET, s->cfg.host, &sa.sin_addr) != 1) {
        snprintf(errbuf, errlen, "--listen: '%s' is not an IPv4 address", s->cfg.host);
        return -1;
    }
    s->quiesced = MHD_INVALID_SOCKET;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s,
                              MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned)s->cfg.http_threads, MHD_OPTION_CONNECTION_LIMIT,
                              s->cfg.max_conns, MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(errbuf, errlen, "cannot listen on %s:%u (address in use?)", s->cfg.host,
                 s->cfg.port);
        return -1;
    }
    if (s->cfg.port == 0) { /* report the port the kernel chose */
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
        if (di)
            s->cfg.port = di->port;
    }
    return 0;
}

void srv_http_quiesce(srv_t *s)
{
    if (s->quiesced == MHD_INVALID_SOCKET)
        s->quiesced = MHD_quiesce_daemon(s->mhd);
}

void srv_http_stop(srv_t *s)
{
    if (!s->mhd)
        return;
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    /* Only now (microhttpd.h, MHD_quiesce_daemon): closed earlier, the socket's number could be
     * reused by a new connection while a daemon thread still removes the old one from its epoll
     * set. ThreadSanitizer reported the close racing with that epoll_ctl. */
    if (s->quiesced != MHD_INVALID_SOCKET)
        close(s->quiesced);
    s->quiesced = MHD_INVALID_SOCKET;
}
