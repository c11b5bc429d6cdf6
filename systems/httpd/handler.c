/*
 * handler.c - requests for the routes' handlers: the request encoded for
 * the task (walls-httpd.h reads it), the task submitted with its
 * connection as user data, and its end turned into a response: the
 * handler's own, checked (a worker's output is not trusted), or the
 * failure's status, with the cause in the error log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "walls-httpd.h"

struct route *httpd_route_for(struct server *srv, const char *path, size_t len)
{
    struct route *best = NULL;
    struct routeset *set = httpd_routes(srv);
    for (unsigned i = 0; i < set->nroutes; i++) {
        struct route *r = &set->routes[i];
        if (r->prefix_len <= len && memcmp(path, r->prefix, r->prefix_len) == 0 &&
            (!best || r->prefix_len > best->prefix_len))
            best = r;
    }
    return best;
}

/* The request for the handler: magic, header count, body length, then
 * method, path, query, each header's name and value (NUL-terminated), and
 * the body (walls-httpd.h reads it). */
static int encode_request(struct conn *c, struct buf *b)
{
    const char *url = c->url.p;
    const char *q = memchr(url, '?', c->url.len);
    size_t path_len = q ? (size_t)(q - url) : c->url.len;
    const char *query = q ? q + 1 : "";
    size_t query_len = q ? c->url.len - path_len - 1 : 0;
    unsigned n = c->nheaders < WHTTPD_HEADERS_MAX ? c->nheaders : WHTTPD_HEADERS_MAX;
    if (c->body.len > UINT32_MAX)
        return -1;
    uint32_t head[3] = {WHTTPD_REQUEST_MAGIC, n, (uint32_t)c->body.len};
    const char *method = http_method_str((enum http_method)c->parser.method);
    if (buf_add(b, head, sizeof head) || buf_add(b, method, strlen(method) + 1) ||
        buf_add(b, url, path_len) || buf_add(b, "", 1) || buf_add(b, query, query_len) ||
        buf_add(b, "", 1))
        return -1;
    for (unsigned i = 0; i < n; i++) {
        const char *name = conn_header_name(c, i), *value = conn_header_value(c, i);
        while (*value == ' ' || *value == '\t')
            value++;
        size_t vlen = strlen(value);
        while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
            vlen--;
        if (buf_add(b, name, strlen(name) + 1) || buf_add(b, value, vlen) || buf_add(b, "", 1))
            return -1;
    }
    return c->body.len ? buf_add(b, c->body.p, c->body.len) : 0;
}

void handler_submit(struct conn *c, struct route *r)
{
    struct buf in = {0};
    c->route = r; /* held until the response is out (conn.c drops it) */
    httpd_count(&r->outstanding, 1);
    httpd_count(&r->requests, 1);
    if (encode_request(c, &in) != 0) {
        buf_free(&in);
        conn_respond_error(c, 500);
        return;
    }
    struct walls_task_opts opts = {.user = c};
    int rc = walls_submit_ex(r->pool, r->fn, in.p, in.len, &opts, &c->task);
    buf_free(&in);
    if (rc != 0) {
        httpd_log_error(c->loop->srv, "route %s: walls_submit: %s (%s)", r->prefix,
                        walls_strerror(rc), walls_last_error());
        c->task = NULL;
        conn_respond_error(c, rc == -EAGAIN || rc == -ESHUTDOWN ? 503 : 500);
        return;
    }
    c->state = WAITING;
}

void handler_return(struct conn *c, struct route *r)
{
    c->route = r; /* held until the response is out, as for a handler */
    httpd_count(&r->outstanding, 1);
    httpd_count(&r->requests, 1);
    int s = r->ret_status;
    bool redirect = httpd_is_redirect(s);
    if (!redirect && (r->ret_len || s < 400)) {
        conn_respond(c, s, r->ret_len ? "text/plain" : NULL, NULL, r->ret_text, r->ret_len);
        return;
    }
    /* A redirect's text is its Location (checked to be printable ASCII);
     * its body, and a bare 4xx's or 5xx's, says the status, as the server's
     * own errors do. The connection stays open, whatever the status. */
    char location[HTTPD_RETURN_MAX + 16], body[64];
    if (redirect)
        snprintf(location, sizeof location, "Location: %s\r\n", r->ret_text);
    int n = snprintf(body, sizeof body, "%d %s\n", s, httpd_reason(s));
    conn_respond(c, s, "text/plain", redirect ? location : NULL, body, (size_t)n);
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Checks and turns a handler's output into the response. Returns false
 * when the output is not a response walls-httpd.h wrote. */
static bool respond_from(struct conn *c, const unsigned char *p, size_t len)
{
    uint32_t head[4];
    if (len < sizeof head)
        return false;
    memcpy(head, p, sizeof head);
    if (head[0] != WHTTPD_RESPONSE_MAGIC || head[1] < 200 || head[1] > 599 ||
        head[2] > WHTTPD_RESPONSE_HEADERS_MAX || head[3] > len - sizeof head)
        return false;
    size_t at = sizeof head, body_at = len - head[3];
    struct buf extra = {0};
    bool ok = true;
    for (uint32_t i = 0; ok && i < head[2]; i++) {
        const unsigned char *name = p + at;
        const unsigned char *nul = at < body_at ? memchr(name, '\0', body_at - at) : NULL;
        if (!nul) {
            ok = false;
            break;
        }
        const unsigned char *value = nul + 1;
        size_t vat = (size_t)(value - p);
        const unsigned char *vnul = vat < body_at ? memchr(value, '\0', body_at - vat) : NULL;
        if (!vnul || nul == name) {
            ok = false;
            break;
        }
        /* A name is a token (RFC 9110, 5.1); a value has nothing that
         * would end a header line or forge one, and no control characters
         * but the tab (5.5). */
        for (const unsigned char *q = name; q < nul; q++)
            if (!is_tchar(*q))
                ok = false;
        for (const unsigned char *q = value; q < vnul; q++)
            if ((*q < ' ' && *q != '\t') || *q == 0x7f)
                ok = false;
        /* Date and Server are the server's own: a handler's are dropped,
         * as nginx drops an upstream's, not sent twice. */
        if (ok && (strcasecmp((const char *)name, "Date") == 0 ||
                   strcasecmp((const char *)name, "Server") == 0)) {
            at = (size_t)(vnul - p) + 1;
            continue;
        }
        ok = ok && strcasecmp((const char *)name, "Content-Length") != 0 &&
             strcasecmp((const char *)name, "Connection") != 0 &&
             strcasecmp((const char *)name, "Transfer-Encoding") != 0 &&
             buf_printf(&extra, "%s: %s\r\n", name, value) == 0;
        at = (size_t)(vnul - p) + 1;
    }
    if (!ok || at != body_at) {
        buf_free(&extra);
        return false;
    }
    if (buf_add(&extra, "", 1)) {
        buf_free(&extra);
        return false;
    }
    conn_respond(c, (int)head[1], NULL, extra.p, p + body_at, head[3]);
    buf_free(&extra);
    return true;
}

static const char *signal_name(int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    static __thread char buf[32];
    snprintf(buf, sizeof buf, "SIG%s", abbrev ? abbrev : "?");
    return abbrev ? buf : "an unknown signal";
}

void handler_done(struct conn *c, walls_task *task)
{
    struct server *srv = c->loop->srv;
    struct route *r = c->route;
    struct walls_result res;
    c->task = NULL;
    c->state = READING; /* nothing runs for it any more */
    if (c->peer_gone || walls_wait(task, 0, &res) != 0) {
        walls_task_free(task);
        conn_close(c);
        return;
    }
    /* The client closed while its request waited (the task was
     * cancelled) or ran (it ended anyway), and sent nothing after it: no
     * response goes, and the log says 499, as nginx says of a client that
     * closed before its response; how the handler ended is still said
     * and counted below. One that sent more requests before its close (a
     * half close) still wants their answers. */
    if (c->client_left && res.status == WALLS_CANCELLED) {
        walls_task_free(task);
        conn_client_left(c);
        return;
    }
    bool gone = c->client_left && !conn_unread_request(c);
    /* The request line, quoted in the error log as in the access log. */
    char shown[4 * sizeof c->line];
    httpd_log_escape(c->line, shown, sizeof shown);
    switch (res.status) {
    case WALLS_OK:
        if (!respond_from(c, res.out, res.out_len)) {
            httpd_log_error(srv, "route %s: %s:%s wrote no valid response (%zu bytes)", r->prefix,
                            r->plugin, r->function, res.out_len);
            conn_respond_error(c, 502);
        }
        break;
    case WALLS_FAILED:
        httpd_log_error(srv, "route %s: %s returned %d for \"%s\"", r->prefix, r->function,
                        res.code, shown);
        conn_respond_error(c, 500);
        break;
    case WALLS_CRASHED:
        httpd_log_error(srv, "route %s: %s crashed %s for \"%s\"", r->prefix, r->function,
                        signal_name(res.code), shown);
        conn_respond_error(c, 502);
        break;
    case WALLS_TIMEOUT:
        /* A thread cannot be stopped: it runs the handler on, and takes
         * no other task until the handler returns. */
        if (r->placement == WALLS_THREADS)
            httpd_count(&r->overran, 1);
        httpd_log_error(srv, "route %s: %s timed out after %lld ms for \"%s\"; %s", r->prefix,
                        r->function, (long long)r->timeout_ms, shown,
                        r->placement == WALLS_THREADS ? "its thread still runs it"
                                                      : "its worker was killed");
        conn_respond_error(c, 504);
        break;
    case WALLS_VIOLATION:
        httpd_log_error(srv, "route %s: %s stopped by the sandbox calling %s for \"%s\"",
                        r->prefix, r->function, walls_syscall_name(res.code), shown);
        conn_respond_error(c, 502);
        break;
    case WALLS_BROKEN: {
        int64_t none = 0;
        if (httpd_cas(&r->broken_ms, &none, now_ms()))
            httpd_log_error(srv, "route %s: the pool is broken (its workers keep dying); "
                            "answering 503 for a second, then trying again", r->prefix);
        conn_respond_error(c, 503);
        break;
    }
    case WALLS_CANCELLED:
        conn_respond_error(c, 503);
        break;
    default:
        httpd_log_error(srv, "route %s: %s ended %s (code %d) for \"%s\"", r->prefix, r->function,
                        walls_status_name(res.status), res.code, shown);
        conn_respond_error(c, 502);
        break;
    }
    walls_task_free(task); /* after its output was copied into the response */
    if (gone)
        conn_client_left(c);
    else
        conn_drive(c);
}

