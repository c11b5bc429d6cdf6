/*
 * conn.c - a connection's state machine (conn.h): reading, parsing with
 * libhttp-parser, answering, writing.
 *
 * The parser is paused at the end of each request, so a pipelined request
 * is looked at only once the previous response is out. While a task runs
 * the connection is not read: a client cannot make the server buffer
 * without bound.
 *
 * A socket is in its loop's epoll set once, edge-triggered for reading and
 * writing, as nginx does: no epoll_ctl per request. A read that returned
 * less than it asked for marks the socket drained, and the next event
 * (new bytes, the peer's close, room to write) clears the mark; until
 * then the machine does not ask the socket again. Bytes that arrive while
 * a task runs raise an event then, and are read once the response is out.
 * conn_drive() turns the machine until it would block;
 * nothing in here calls back into it, so the stack stays flat however many
 * requests a client pipelines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- buffers --------------------------------------------------------------- */

int buf_reserve(struct buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_add(struct buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return -1;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return 0;
        }
        if (buf_reserve(b, (size_t)n + 1) != 0)
            return -1;
    }
}

void buf_free(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}

/* A buffer that grew past this for one request (a large body, a large
 * handler response) is given back before the next request: a keep-alive
 * connection that goes idle keeps small buffers only. */
#define KEEP_BUF (64 * 1024)

static void buf_trim(struct buf *b)
{
    if (b->cap > KEEP_BUF)
        buf_free(b);
}

/* ---- the parser's callbacks ------------------------------------------------ */

static struct conn *conn_of(http_parser *p)
{
    return p->data;
}

static size_t header_bytes(const struct conn *c)
{
    return c->url.len + c->hdr.len;
}

static int refuse(struct conn *c, int status)
{
    if (!c->error_status)
        c->error_status = status;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->url.len = c->hdr.len = c->body.len = 0;
    c->body_seen = 0;
    c->nheaders = 0;
    c->in_value = false;
    c->headers_done = c->message_done = false;
    /* The parser keeps the last request's version until it reads this
     * one's: a version of 0 says none was read yet (conn_respond_error). */
    p->http_major = p->http_minor = 0;
    return 0;
}

/* Appends a piece of the request to b, refused with status past limit. */
static int take(struct conn *c, struct buf *b, const char *at, size_t len, size_t limit,
                int status)
{
    if (b->len + len > limit)
        return refuse(c, status);
    return buf_add(b, at, len) ? refuse(c, 500) : 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    return take(c, &c->url, at, len, c->loop->srv->max_header, 414);
}

/* A chunked body's trailer section is not passed on, but it is held to the
 * limits of the header section: no more than max_header bytes and
 * HEADERS_MAX fields, else 431. */
static int trailer(struct conn *c, size_t len, bool field)
{
    c->trailer_bytes += len;
    if (field && (c->ntrailers == 0 || c->in_value))
        c->ntrailers++;
    c->in_value = !field;
    if (c->trailer_bytes > c->loop->srv->max_header || c->ntrailers > HEADERS_MAX)
        return refuse(c, 431);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->headers_done)
        return trailer(c, len, true);
    if (header_bytes(c) + len + 2 > c->loop->srv->max_header)
        return refuse(c, 431);
    if (c->in_value || c->nheaders == 0) {
        if (c->nheaders > 0 && buf_add(&c->hdr, "", 1))
            return refuse(c, 500);
        if (c->nheaders == HEADERS_MAX)
            return refuse(c, 431);
        c->name_at[c->nheaders++] = c->hdr.len;
        c->in_value = false;
    }
    return buf_add(&c->hdr, at, len) ? refuse(c, 500) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->headers_done)
        return trailer(c, len, false);
    if (header_bytes(c) + len + 2 > c->loop->srv->max_header)
        return refuse(c, 431);
    if (!c->in_value) {
        if (buf_add(&c->hdr, "", 1))
            return refuse(c, 500);
        c->value_at[c->nheaders - 1] = c->hdr.len;
        c->in_value = true;
    }
    return buf_add(&c->hdr, at, len) ? refuse(c, 500) : 0;
}

const char *conn_header_name(const struct conn *c, unsigned i)
{
    return c->hdr.p + c->name_at[i];
}

const char *conn_header_value(const struct conn *c, unsigned i)
{
    return c->hdr.p + c->value_at[i];
}

const char *conn_header(const struct conn *c, const char *name)
{
    for (unsigned i = 0; i < c->nheaders; i++)
        if (strcasecmp(conn_header_name(c, i), name) == 0)
            return conn_header_value(c, i);
    return NULL;
}

/* The request's path as the file system would resolve it (percent-decoded,
 * "//", "/./" and "/x/../" taken out) into *out: small when it fits, else
 * memory to free. 0, or the status that refuses the request: 400 for a
 * path that is malformed or climbs above the root (as nginx answers; the
 * kernel could resolve such a path through a symlink back into the root,
 * to a file under a route's prefix), 500 when memory runs out. */
static int normal_path(struct conn *c, char *small, size_t size, char **out)
{
    const char *q = memchr(c->url.p, '?', c->url.len);
    size_t path_len = q ? (size_t)(q - c->url.p) : c->url.len;
    char *norm = path_len + 2 <= size ? small : malloc(path_len + 2);
    if (!norm)
        return 500;
    if (httpd_normalize_path(c->url.p, path_len, norm) != 0) {
        if (norm != small)
            free(norm);
        return 400;
    }
    *out = norm;
    return 0;
}

/* Routes are matched, and static files opened, on the normalized path
 * alone, so that no spelling of a path reaches a file under a route's
 * prefix, or a route from outside it. */
static bool wants_route(struct conn *c)
{
    char small[512], *path;
    if (!c->url.len || c->url.p[0] != '/' || normal_path(c, small, sizeof small, &path) != 0)
        return false;
    const struct route *r = httpd_route_for(c->loop->srv, path, strlen(path));
    if (path != small)
        free(path);
    return r && !r->ret_status; /* a fixed response takes no body */
}

static void request_line(struct conn *c);

/* "GET http://host/path HTTP/1.1" (the absolute form, RFC 9112, 3.2.2):
 * the server answers for any host, so the path is what counts. */
static void origin_form(struct conn *c)
{
    const char *u = c->url.p;
    size_t skip = strncasecmp(u, "http://", 7) == 0    ? 7
                  : strncasecmp(u, "https://", 8) == 0 ? 8
                                                       : 0;
    if (!skip)
        return;
    const char *path = u + skip;
    while (*path && *path != '/' && *path != '?')
        path++;
    size_t n = c->url.len - (size_t)(path - u);
    if (*path != '/') {
        /* "http://host" or "http://host?q": the root. */
        memmove(c->url.p + 1, path, n + 1);
        c->url.p[0] = '/';
        c->url.len = n + 1;
    } else {
        memmove(c->url.p, path, n + 1);
        c->url.len = n;
    }
}

static int64_t deadline_from_now(const struct conn *c)
{
    int ms = c->loop->srv->header_timeout_ms;
    return ms > 0 ? now_ms() + ms : 0;
}

/* RFC 9110's token characters: what a field name is made of. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* What the headers say of the request, once they are all in: 0, or the
 * status that refuses it. Trailing blanks of every value go here (the
 * parser drops the leading ones), so that checks and handlers see the
 * value itself. */
/* A Host value: uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2):
 * a name of unreserved, percent-encoded and sub-delimiter characters, or
 * an IP literal in brackets. Empty is allowed (the RFC's way to say the
 * target has no authority); spaces, slashes, '@' and the like are not. */
static bool valid_host(const char *v)
{
    const char *p = v;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (!end)
            return false;
        for (p++; p < end; p++)
            if (!strchr("0123456789abcdefABCDEF:.vV", *p))
                return false;
        p = end + 1;
    } else {
        for (; *p && *p != ':'; p++) {
            unsigned char ch = (unsigned char)*p;
            if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
                !(ch >= '0' && ch <= '9') && !strchr("-._~%!$&'()*+,;=", ch))
                return false;
        }
    }
    if (*p == ':')
        for (p++; *p; p++)
            if (*p < '0' || *p > '9')
                return false;
    return *p == '\0';
}

/* How many elements of a Transfer-Encoding list are "chunked". */
static unsigned chunked_count(const char *v)
{
    unsigned n = 0;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *start = v;
        while (*v && *v != ',' && *v != ' ' && *v != '\t' && *v != ';')
            v++;
        n += v - start == 7 && strncasecmp(start, "chunked", 7) == 0;
        while (*v && *v != ',')
            v++;
    }
    return n;
}

/* Whether the last element of a Transfer-Encoding list is "chunked". */
static bool chunked_last(const char *v)
{
    const char *last = strrchr(v, ',');
    last = last ? last + 1 : v;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t;");
    return n == 7 && strncasecmp(last, "chunked", 7) == 0;
}

static int check_headers(struct conn *c)
{
    unsigned hosts = 0, codings = 0;
    for (unsigned i = 0; i < c->nheaders; i++) {
        char *value = c->hdr.p + c->value_at[i];
        size_t len = strlen(value);
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
            value[--len] = '\0';
        const char *name = conn_header_name(c, i);
        /* "Content-Length : 3": a blank before the colon is refused, not
         * taken as part of the name (RFC 9112, 5.1). */
        if (!is_token(name))
            return 400;
        if (strcasecmp(name, "Host") == 0) {
            hosts++;
            if (!valid_host(value))
                return 400;
        }
        /* Only "chunked" is a transfer coding this server decodes, and
         * chunked applied more than once, in one line or over several, is
         * malformed (RFC 9112, 6.1). */
        if (strcasecmp(name, "Transfer-Encoding") == 0) {
            /* HTTP/1.0 has no transfer codings: such a message's framing
             * is faulty, and its connection closes (RFC 9112, 6.1). */
            if (c->parser.http_major == 1 && c->parser.http_minor == 0)
                return 400;
            if (++codings > 1 || chunked_count(value) > 1)
                return 400;
            /* With chunked not the last coding, a request's length cannot
             * be known: 400, and closed (RFC 9112, 6.3). Chunked last
             * after one this server does not decode: 501 (6.1). */
            if (!chunked_last(value))
                return 400;
            if (strcasecmp(value, "chunked") != 0)
                return 501;
        }
    }
    /* An HTTP/1.1 request names one host, no more and no fewer (RFC
     * 9112, 3.2). */
    if (c->parser.http_minor >= 1 && hosts != 1)
        return 400;
    return 0;
}

static void send_continue(struct conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t rc = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc; /* a client that cannot take 26 bytes sends its body anyway */
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    if (c->nheaders > 0 && !c->in_value) {
        /* A field without a value. */
        if (buf_add(&c->hdr, "", 1))
            return refuse(c, 500);
        c->value_at[c->nheaders - 1] = c->hdr.len;
    }
    if (buf_add(&c->hdr, "", 1) || buf_add(&c->url, "", 1))
        return refuse(c, 500);
    c->url.len--; /* the NUL stays after it */
    c->headers_done = true;
    /* The access log's request line is the one received, target as sent. */
    request_line(c);
    origin_form(c);
    if (p->http_major != 1)
        return refuse(c, 505);
    int status = check_headers(c);
    if (status)
        return refuse(c, status);
    bool has_length = p->flags & F_CONTENTLENGTH;
    if (has_length && p->content_length > c->loop->srv->max_body)
        return refuse(c, 413);
    bool body = (has_length && p->content_length > 0) || (p->flags & F_CHUNKED);
    c->body_kept = body && wants_route(c);
    /* The body has the same time between two reads as the headers had
     * in all; read_some() moves the deadline on. */
    c->deadline_ms = body ? deadline_from_now(c) : 0;
    /* An HTTP/1.1 client waits for it (HTTP/1.0 ones know nothing of it);
     * only a route takes a body, so only a request for one gets it. Any
     * other gets its final status at once, as RFC 9110 (10.1.1) asks,
     * without its body: the request is taken as complete, and the
     * connection closes after the response, the body unread. */
    const char *expect = conn_header(c, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && body && p->http_minor >= 1) {
        if (c->body_kept) {
            send_continue(c);
        } else {
            c->message_done = true;
            c->keep_alive = false;
            c->close_after = true;
            http_parser_pause(p, 1);
        }
    }
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    /* A chunk that would take the body past the limit is refused before
     * its bytes come. */
    struct conn *c = conn_of(p);
    if (p->content_length > c->loop->srv->max_body - c->body_seen)
        return refuse(c, 413);
    c->chunk_left = p->content_length;
    return 0;
}

/* The framing between the pieces of a request that the parser hands over
 * (all but a body's data), which libhttp-parser, built without its strict
 * checks, lets pass where RFC 9112 does not: a CR not followed by LF, which
 * it takes for a line's end (2.2: a request line or header section that
 * another server would read differently, the way to smuggle a request),
 * and a chunk's data not followed by CRLF (7.1), whose two bytes it skips
 * unread. Looked at as parsed, across reads. Returns 0, or 400. */
static int scan_framing(struct conn *c, const char *p, const char *end)
{
    for (; p < end; p++) {
        if (c->crlf_due) {
            if (*p != (c->crlf_due == 2 ? '\r' : '\n'))
                return 400;
            c->crlf_due--;
            continue;
        }
        if (c->cr_pending && *p != '\n')
            return 400;
        c->cr_pending = *p == '\r';
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    int status = scan_framing(c, c->scan_from, at);
    /* Data right after a CR, or where a chunk's CRLF should be. */
    if (!status && (c->cr_pending || c->crlf_due))
        status = 400;
    if (status)
        return refuse(c, status);
    c->scan_from = at + len;
    if (p->flags & F_CHUNKED) {
        c->chunk_left -= len < c->chunk_left ? len : c->chunk_left;
        if (c->chunk_left == 0)
            c->crlf_due = 2;
    }
    /* Only a handler reads a body: for any other request (a file, a
     * fixed response, /_status, an error) it is read and dropped, held to
     * the same limit, instead of buffered for nobody. */
    if (len > c->loop->srv->max_body - c->body_seen)
        return refuse(c, 413);
    c->body_seen += len;
    return c->body_kept ? take(c, &c->body, at, len, c->loop->srv->max_body, 413) : 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->message_done = true;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- connections ------------------------------------------------------------- */

/* The connection is done with its route: a reload may retire it once no
 * connection holds it. */
static void drop_route(struct conn *c)
{
    if (c->route)
        httpd_release_sub(&c->route->outstanding, 1);
    c->route = NULL;
}

static void start_request(struct conn *c)
{
    c->state = READING;
    c->error_status = 0;
    drop_route(c);
    c->status = 0;
    c->sent_bytes = 0;
    c->line[0] = '\0';
    c->raw_len = 0;
    c->raw[0] = '\0';
    c->raw_done = c->raw_nul = c->raw_waits = false;
    c->raw_tail_len = 0;
    /* The last request's target is not this one's: bytes the parser
     * refuses before a new request begins are logged as "-", not as the
     * last request again. */
    c->url.len = 0;
    c->out.len = c->out_sent = 0;
    buf_trim(&c->out);
    buf_trim(&c->body);
    c->close_after = false;
    c->headers_done = c->message_done = false;
    c->cr_pending = false;
    c->crlf_due = 0;
    c->chunk_left = 0;
    c->trailer_bytes = 0;
    c->ntrailers = 0;
    c->body_kept = false;
    c->body_seen = 0;
    c->client_left = false;
    c->got = c->in.len > c->in_off;
    c->deadline_ms = c->loop->srv->header_timeout_ms > 0
                         ? now_ms() + c->loop->srv->header_timeout_ms
                         : 0;
}

struct conn *conn_open(struct loop *l, int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->loop = l;
    c->fd = fd;
    c->file_fd = -1;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    httpd_count(&l->nconns, 1);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        c->fd = -1;
        conn_free(c);
        return NULL;
    }
    start_request(c);
    return c;
}

void conn_free(struct conn *c)
{
    struct loop *l = c->loop;
    drop_route(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    httpd_count(&l->nconns, (unsigned)-1);
    if (c->fd >= 0)
        close(c->fd);
    if (c->file_fd >= 0)
        close(c->file_fd);
    buf_free(&c->in);
    buf_free(&c->url);
    buf_free(&c->hdr);
    buf_free(&c->body);
    buf_free(&c->out);
    free(c);
}

void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->loop->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == WAITING) {
        c->peer_gone = true; /* freed once its task ends */
        return;
    }
    if (!c->dead) {
        c->dead = true;
        c->next_dead = c->loop->dead;
        c->loop->dead = c;
    }
}

void conn_reap(struct loop *l)
{
    while (l->dead) {
        struct conn *c = l->dead;
        l->dead = c->next_dead;
        conn_free(c);
    }
}

/* ---- responses ----------------------------------------------------------------- */

/* The Date header's value, formatted once a second by each loop thread. */
static const char *date_now(void)
{
    static __thread time_t at;
    static __thread char date[64];
    time_t now = time(NULL);
    if (now != at) {
        httpd_date(now, date, sizeof date);
        at = now;
    }
    return date;
}

int conn_head(struct conn *c, int status, uint64_t content_length)
{
    const char *date = date_now();
    c->status = status;
    if (httpd_stopping(c->loop->srv))
        c->close_after = true;
    /* 204 and 304 carry no Content-Length (RFC 9110, 8.6); 205 says 0. */
    char length[48] = "";
    if (status != 204 && status != 304)
        snprintf(length, sizeof length, "Content-Length: %llu\r\n",
                 (unsigned long long)content_length);
    return buf_printf(&c->out,
                      "HTTP/1.1 %d %s\r\nServer: " HTTPD_NAME "\r\nDate: %s\r\n"
                      "%sConnection: %s\r\n",
                      status, httpd_reason(status), date, length,
                      c->keep_alive && !c->close_after ? "keep-alive" : "close");
}

bool conn_is_head(const struct conn *c)
{
    return c->parser.method == HTTP_HEAD;
}

void conn_respond(struct conn *c, int status, const char *type, const char *extra,
                  const void *body, size_t len)
{
    c->out.len = c->out_sent = 0;
    if (status == 205) /* Reset Content: no content, whatever was given */
        len = 0;
    bool empty = status == 304 || status == 204;
    bool no_body = conn_is_head(c) || empty;
    if (conn_head(c, status, empty ? 0 : len) ||
        (type && buf_printf(&c->out, "Content-Type: %s\r\n", type)) ||
        (extra && buf_add(&c->out, extra, strlen(extra))) || buf_add(&c->out, "\r\n", 2) ||
        (!no_body && len && buf_add(&c->out, body, len))) {
        /* No memory for it: the client sees the connection close. */
        c->close_after = true;
        c->out.len = 0;
    }
    c->sent_bytes = no_body ? 0 : len;
    c->state = WRITING;
    c->deadline_ms = 0; /* set again if the client is slow to take it */
}

void conn_respond_error(struct conn *c, int status)
{
    /* A request refused once its request line was in (the version read:
     * the target is whole), a 408 for its headers say, is logged with
     * that line, not "-". */
    if (!c->line[0] && c->url.len && c->parser.http_major)
        request_line(c);
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, httpd_reason(status));
    if (status == 400 || status == 408 || status == 413 || status == 414 || status == 431)
        c->close_after = true;
    conn_respond(c, status, "text/plain", status == 503 ? "Retry-After: 1\r\n" : NULL, body,
                 (size_t)n);
}

/* ---- a request, start to end ---------------------------------------------------------- */

/* Keeps the request line as it arrives, from p to end (bytes not seen
 * before: the parser has taken the ones before p, and the buffer may have
 * started over since), up to its end. */
static void keep_raw(struct conn *c, const char *p, const char *end)
{
    for (; p < end && !c->raw_done; p++) {
        if (*p == '\r' || *p == '\n') {
            c->raw_done = c->raw_len > 0; /* empty lines before a request are skipped */
            continue;
        }
        if (c->raw_len < sizeof c->raw - 1)
            c->raw[c->raw_len++] = *p;
        c->raw_nul = c->raw_nul || *p == '\0';
        if (c->raw_tail_len == sizeof c->raw_tail) {
            memmove(c->raw_tail, c->raw_tail + 1, sizeof c->raw_tail - 1);
            c->raw_tail_len--;
        }
        c->raw_tail[c->raw_tail_len++] = *p;
    }
    c->raw[c->raw_len] = '\0';
}

/* Whether the whole line arrived, fits the buffer and holds no NUL: then
 * it is logged as it came. */
static bool raw_whole(const struct conn *c)
{
    return c->raw_done && c->raw_len < sizeof c->raw - 1 && !c->raw_nul;
}

/* Whether the line ends in " HTTP/" and a version of one digit each side
 * of a dot: the parser takes any letters after the H. */
static bool raw_version_ok(const struct conn *c)
{
    const char *t = c->raw_tail;
    return c->raw_tail_len == sizeof c->raw_tail && memcmp(t, " HTTP/", 6) == 0 &&
           t[6] >= '0' && t[6] <= '9' && t[7] == '.' && t[8] >= '0' && t[8] <= '9';
}

static void request_line(struct conn *c)
{
    /* As it came, as nginx logs it; rebuilt from the parsed parts when it
     * did not come whole (the target cut short) or holds a NUL. */
    if (raw_whole(c)) {
        memcpy(c->line, c->raw, c->raw_len + 1);
        return;
    }
    snprintf(c->line, sizeof c->line, "%s %.*s HTTP/%u.%u",
             http_method_str((enum http_method)c->parser.method),
             (int)(c->url.len > 400 ? 400 : c->url.len), c->url.p ? c->url.p : "",
             c->parser.http_major, c->parser.http_minor);
}

static void handle_request(struct conn *c)
{
    if (!c->line[0])
        request_line(c);
    c->start_ns = now_ns();
    c->deadline_ms = 0; /* all of it is in */
    const char *url = c->url.p;
    if (c->parser.upgrade || c->parser.method == HTTP_CONNECT || !url || url[0] != '/' ||
        !raw_version_ok(c)) {
        c->close_after = true;
        conn_respond_error(c, 400);
        return;
    }
    char small[512], *path;
    int status = normal_path(c, small, sizeof small, &path);
    if (status) {
        conn_respond_error(c, status);
        return;
    }
    /* Matched as the path resolves, as routes are: //_status and
     * /%5fstatus are /_status too. */
    if (!status_serve(c, path, strlen(path))) {
        struct route *r = httpd_route_for(c->loop->srv, path, strlen(path));
        if (r && r->ret_status)
            handler_return(c, r);
        else if (r)
            handler_submit(c, r);
        else
            static_serve(c, path);
    }
    if (path != small)
        free(path);
}

/* Whether the parser refused a method it does not know rather than a
 * malformed line: the line so far (p to end, after blank lines) has only
 * the characters of a method (upper-case letters, '-' and '_', as nginx
 * takes them), up to a space, or up to its end while more of the line may
 * come. RFC 9110, 9.1: an unknown method is answered 501. */
static bool unknown_method(const char *p, const char *end, bool more)
{
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    const char *start = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
        p++;
    return p > start && (p == end ? more : *p == ' ');
}

/* A refused request's line for the access log: as the client sent it
 * (nginx logs the bytes too), else as parsed when its target was read and
 * the line holds a NUL, else "-" (nothing of it came). */
static void refused_line(struct conn *c)
{
    if (c->line[0])
        return;
    if (c->url.len && c->raw_nul)
        request_line(c);
    else
        memcpy(c->line, c->raw, c->raw_len + 1);
}

/* Parses what was read. Returns true when it acted on a request (the
 * state changed), false when it needs more bytes. */
static bool parse_some(struct conn *c)
{
    size_t avail = c->in.len - c->in_off;
    if (avail == 0)
        return false;
    c->scan_from = c->in.p + c->in_off;
    keep_raw(c, c->scan_from, c->in.p + c->in.len);
    size_t n;
    enum http_errno err;
    if (c->raw_waits) {
        /* The parser stopped at the method: the rest of the line only
         * completes what is logged. */
        n = avail;
        err = HPE_INVALID_METHOD;
    } else {
        n = http_parser_execute(&c->parser, &settings, c->in.p + c->in_off, avail);
        err = HTTP_PARSER_ERRNO(&c->parser);
    }
    /* An unknown method is judged, and answered, once its line is in
     * (what the parser refused may be only its first letters), or once
     * the line fills the buffer. */
    if (err == HPE_INVALID_METHOD && !c->raw_done && c->raw_len < sizeof c->raw - 1 &&
        unknown_method(c->raw, c->raw + c->raw_len, true)) {
        c->raw_waits = true;
        c->in.len = c->in_off = 0; /* kept in raw */
        return false;
    }
    if (err == HPE_INVALID_METHOD && unknown_method(c->raw, c->raw + c->raw_len, !c->raw_done)) {
        c->error_status = 501;
        refused_line(c);
    }
    /* Its line is in and ends in no HTTP/1.x version: refused now, not
     * after its headers (an HTTP/0.9 line, which has no version and no
     * headers, would wait for the header timeout). */
    if (err == HPE_OK && c->raw_done && !c->headers_done && !raw_version_ok(c)) {
        c->error_status = c->parser.http_major == 0 && c->parser.http_minor == 9 ? 505 : 400;
        err = HPE_STRICT;
    }
    if (err == HPE_OK || err == HPE_PAUSED) {
        int bad = scan_framing(c, c->scan_from, c->in.p + c->in_off + n);
        if (bad) {
            c->error_status = bad;
            err = HPE_STRICT;
        }
    }
    c->in_off += n;
    if (err == HPE_PAUSED && c->message_done) {
        http_parser_pause(&c->parser, 0);
        c->message_done = false;
        handle_request(c);
        return true;
    }
    if (err != HPE_OK || c->parser.upgrade) {
        /* Refused, or an Upgrade (the parser stops after its headers). */
        refused_line(c);
        c->keep_alive = false;
        c->close_after = true;
        conn_respond_error(c, err == HPE_OK || !c->error_status ? 400 : c->error_status);
        return true;
    }
    if (c->in_off == c->in.len)
        c->in.len = c->in_off = 0; /* all parsed: the buffer starts over */
    return false;
}

/* Reads more. Returns true when it got bytes; false when it would block,
 * or when the connection ended. */
static bool read_some(struct conn *c)
{
    if (c->in_off > 0) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (buf_reserve(&c->in, READ_CHUNK) != 0) {
        conn_close(c);
        return false;
    }
    if (c->drained)
        return false;
    for (;;) {
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->fd, c->in.p + c->in.len, room, 0);
        if (n > 0) {
            c->got = true;
            c->in.len += (size_t)n;
            /* A body coming: the next bytes are due within the timeout. */
            if (c->headers_done && c->deadline_ms)
                c->deadline_ms = deadline_from_now(c);
            /* Less than it could: all there was (edge-triggered, bytes
             * arriving after this raise a new event). */
            c->drained = (size_t)n < room && !c->peer_closed;
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->drained = !c->peer_closed;
            return false;
        }
        conn_close(c);
        return false;
    }
}

static void log_access(struct conn *c)
{
    struct server *srv = c->loop->srv;
    if (c->route) {
        httpd_count(&c->route->by_class[c->status / 100 % 6], 1);
        status_record(c->route, now_ns() - c->start_ns);
    }
    if (!httpd_peek(&srv->access_log))
        return;
    httpd_log_access(srv, c->peer, c->line[0] ? c->line : "-", c->status, c->sent_bytes,
                     c->headers_done ? conn_header(c, "Referer") : NULL,
                     c->headers_done ? conn_header(c, "User-Agent") : NULL);
}

static uint64_t unsent_bytes(const struct conn *c)
{
    return (uint64_t)(c->out.len - c->out_sent) +
           (c->file_fd >= 0 && c->file_left > 0 ? (uint64_t)c->file_left : 0);
}

void conn_stalled(struct conn *c)
{
    /* Said in the error log, as nginx says a send timed out: the access
     * log's status is the one the response began with. */
    char shown[4 * sizeof c->line];
    httpd_log_escape(c->line[0] ? c->line : "-", shown, sizeof shown);
    httpd_log_notice(c->loop->srv,
                     "%s: \"%s\": the client took nothing of its response for %d ms, %llu bytes "
                     "unsent: closed",
                     c->peer, shown, c->loop->srv->header_timeout_ms,
                     (unsigned long long)unsent_bytes(c));
    conn_cut_off(c);
}

void conn_cut_off(struct conn *c)
{
    uint64_t unsent = unsent_bytes(c);
    c->sent_bytes = c->sent_bytes > unsent ? c->sent_bytes - unsent : 0;
    log_access(c);
    conn_close(c);
}

void conn_client_left(struct conn *c)
{
    c->status = 499; /* nginx's word for a client that closed its request */
    c->sent_bytes = 0; /* a response made for it never went */
    log_access(c);
    conn_close(c);
}

/* Sends what it can of the response. Returns true once all is sent; false
 * when the socket is full (then watched for writing) or the connection
 * ended. */
/* Bytes of the response in the socket that the client has not
 * acknowledged yet; -1 when the kernel does not say. */
static int unacked(const struct conn *c)
{
    int n = 0;
    return ioctl(c->fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

/* The socket is full: the client must take more within the timeout
 * (counted from the last bytes it took), or the connection is closed. */
static bool blocked(struct conn *c, bool progress)
{
    if (progress || !c->deadline_ms) {
        c->deadline_ms = deadline_from_now(c);
        c->unacked_mark = unacked(c);
    }
    return false; /* until the event that says there is room */
}

bool conn_still_taking(struct conn *c)
{
    /* The kernel says there is room again only once about half of a
     * send buffer of several megabytes has gone: a client reading slowly
     * but all along can take longer than the timeout to get there. What
     * it acknowledged since the mark is what it took. */
    int now = unacked(c);
    if (now < 0 || c->unacked_mark < 0 || now >= c->unacked_mark)
        return false;
    /* Some real progress, not a byte a timeout (a client that keeps a
     * connection for ever so): 16 KiB, or half of what was left. */
    int least = c->unacked_mark / 2 < 16384 ? c->unacked_mark / 2 : 16384;
    if (c->unacked_mark - now < least)
        return false;
    c->unacked_mark = now;
    c->deadline_ms = deadline_from_now(c);
    return true;
}

static bool flush(struct conn *c)
{
    /* With a file to follow, the headers wait for its first bytes: one
     * segment, not two, for a small file. */
    int more = c->file_fd >= 0 && c->file_left > 0 ? MSG_MORE : 0;
    bool progress = false;
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_sent, c->out.len - c->out_sent,
                         MSG_NOSIGNAL | more);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return blocked(c, progress);
        if (n <= 0) {
            conn_cut_off(c);
            return false;
        }
        c->out_sent += (size_t)n;
        progress = true;
    }
    while (c->file_fd >= 0 && c->file_left > 0) {
        ssize_t n = sendfile(c->fd, c->file_fd, &c->file_off, (size_t)c->file_left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return blocked(c, progress);
        if (n <= 0) {
            conn_cut_off(c);
            return false;
        }
        c->file_left -= n;
        progress = true;
    }
    if (c->file_fd >= 0) {
        close(c->file_fd);
        c->file_fd = -1;
    }
    return true;
}

/* Closing a socket with bytes of the client's unread makes the kernel
 * send a reset, which can destroy the response still on its way (the
 * client's stack drops what it had not read): a 413 or 400 sent while the
 * body still comes, the response before pipelined requests that a
 * "Connection: close" cuts off. Then the server shuts its side and reads
 * and drops what comes until the client closes, at most LINGER_IDLE_MS
 * between reads and LINGER_TOTAL_MS in all (RFC 9112, 9.6). */
#define LINGER_IDLE_MS 2000
#define LINGER_TOTAL_MS 10000

/* Whether bytes in b (n of them) hold more than empty lines. */
static bool not_blank(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != '\r' && b[i] != '\n')
            return true;
    return false;
}

bool conn_unread_request(const struct conn *c)
{
    if (not_blank(c->in.p + c->in_off, c->in.len - c->in_off))
        return true;
    /* What waits in the socket, looked at without taking it: empty lines
     * are no request (the parser skips them); past what is looked at, one
     * is assumed. */
    char peek[256];
    ssize_t n = recv(c->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 && ((size_t)n == sizeof peek || not_blank(peek, (size_t)n));
}

static bool unread_input(const struct conn *c)
{
    if (c->in.len > c->in_off || (c->status >= 400 && !c->peer_closed))
        return true;
    int pending = 0;
    return ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0;
}

static void discard(struct conn *c)
{
    char sink[16384];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0) {
            int64_t now = now_ms();
            c->deadline_ms = now + LINGER_IDLE_MS < c->linger_until_ms ? now + LINGER_IDLE_MS
                                                                        : c->linger_until_ms;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(c); /* the client closed (or failed): done */
        return;
    }
}

static void close_or_linger(struct conn *c)
{
    if (!unread_input(c) || httpd_stopping(c->loop->srv) || shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->state = LINGERING;
    int64_t now = now_ms();
    c->linger_until_ms = now + LINGER_TOTAL_MS;
    c->deadline_ms = now + LINGER_IDLE_MS;
    c->in.len = c->in_off = 0;
    buf_trim(&c->in);
    discard(c);
}

void conn_drive(struct conn *c)
{
    while (c->fd >= 0) {
        if (c->state == WAITING)
            return; /* not read while its task runs */
        if (c->state == LINGERING) {
            discard(c);
            return;
        }
        if (c->state == WRITING) {
            if (!flush(c))
                return;
            log_access(c);
            if (c->close_after || !c->keep_alive || httpd_stopping(c->loop->srv)) {
                close_or_linger(c);
                return;
            }
            start_request(c);
            continue;
        }
        if (parse_some(c))
            continue;
        if (!c->headers_done && c->in.len - c->in_off > c->loop->srv->max_header + READ_CHUNK) {
            conn_respond_error(c, 431);
            continue;
        }
        if (!read_some(c))
            return;
    }
}
