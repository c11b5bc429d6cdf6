/*
 * ui.c - the live page of `walls-tabs serve`: a small HTTP/1.1 server that
 * lists the tabs (state, memory, CPU, messages, last error) and reloads or
 * closes them on request.
 *
 * It runs on the broker's own poll loop and owns no thread: the listening
 * socket, each connection and a once-a-second sweep timer (a timerfd, armed
 * only while a connection is open) are descriptors the broker watches for
 * it. Every socket is non-blocking and every resource is bounded: at most
 * CONNS_MAX connections, a request of at most REQUEST_MAX bytes, a
 * connection that makes no progress for IDLE_MS is closed. Each connection
 * carries one request and one answer (Connection: close); after the answer
 * the socket is shut for writing and whatever the client still sends is
 * read and dropped for a moment, so that closing never resets a connection
 * before the client has read its answer.
 *
 * What tabs say (names, logs, errors, messages) is hostile: it reaches the
 * JSON only through json_str(), and the page only through textContent.
 * The page answers only to Host names that are an address or "localhost"
 * (no DNS rebinding), and a POST only from its own origin (no cross-site
 * reload or close).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <http_parser.h>

#include "tabs.h"

#define CONNS_MAX 64          /* open connections; more are refused */
#define REQUEST_MAX 8192      /* bytes of one request: line, headers and body */
#define URL_MAX 1024          /* bytes of a request's target */
#define FIELD_MAX 64          /* bytes of a Host or Origin value */
#define IDLE_MS 10000         /* a connection without progress this long is closed */
#define LIFETIME_MS 30000     /* and any connection this old */
#define LINGER_MS 2000        /* reading what follows an answer, at most this long */
#define LINGER_BYTES 65536    /* and at most this much */
#define ACCEPTS_PER_WAKE 16   /* connections taken per wake of the listening socket */

enum conn_state {
    READING,   /* the request */
    WRITING,   /* the answer */
    LINGERING, /* answered and shut for writing: dropping what the client still sends */
};

/* A header the server reads (Host, Origin); the others are skipped. */
struct kept_header {
    char s[FIELD_MAX + 1];
    size_t len;
    int seen;
};

struct conn {
    int fd;
    enum conn_state state;
    int64_t opened_ms, active_ms, answered_ms;
    http_parser parser;
    size_t got;                  /* request bytes given to the parser */
    char url[URL_MAX + 1];
    size_t url_len;
    char name[16];               /* the header field being read, lower case */
    size_t name_len;
    int in_value;
    struct kept_header *value;   /* where the value being read goes, or NULL */
    struct kept_header host, origin;
    int headers_done, message_done;
    int refusal;                 /* a status the callbacks chose to refuse with */
    char *out;
    size_t out_len, out_sent;
    size_t lingered;
};

/* The one server of this process; main() starts at most one. */
static struct {
    struct broker *b;
    int listen_fd, timer_fd;
    int timer_on, accept_paused;
    struct conn *conns[CONNS_MAX];
    size_t n;
} ui = {.listen_fd = -1, .timer_fd = -1};

/* A growing buffer for answers; failed is set once memory ran out. */
struct out {
    char *p;
    size_t len, cap;
    int failed;
};

/* The page's HTML, at the end of this file. */
static const char *page(size_t *len);

/* ---- buffers ------------------------------------------------------------ */

static int out_reserve(struct out *o, size_t more)
{
    if (o->failed)
        return -1;
    if (o->len + more + 1 <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + more + 1)
        cap *= 2;
    char *grown = realloc(o->p, cap);
    if (grown == NULL) {
        o->failed = 1;
        return -1;
    }
    o->p = grown;
    o->cap = cap;
    return 0;
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || out_reserve(o, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

/* Appends s as a JSON string; an escape takes at most 6 bytes per byte. */
static void out_json_str(struct out *o, const char *s)
{
    size_t n = strlen(s);
    if (out_reserve(o, 6 * n + 2))
        return;
    o->len = json_str(o->p, o->cap, o->len, s, n);
}

/* ---- the sweep timer ---------------------------------------------------- */

/* Arms the timer while it has work (open connections, a paused accept). */
static void update_timer(void)
{
    int want = ui.n > 0 || ui.accept_paused;
    if (want == ui.timer_on || ui.timer_fd < 0)
        return;
    struct itimerspec its = {0};
    if (want) {
        its.it_value.tv_sec = 1;
        its.it_interval.tv_sec = 1;
    }
    if (timerfd_settime(ui.timer_fd, 0, &its, NULL) == 0)
        ui.timer_on = want;
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    for (size_t i = 0; i < ui.n; i++)
        if (ui.conns[i] == c) {
            ui.conns[i] = ui.conns[--ui.n];
            break;
        }
    broker_unwatch(ui.b, c->fd);
    close(c->fd);
    free(c->out);
    free(c);
}

static void on_listen(void *arg, int fd, short revents);

/* Takes connections again after running out of descriptors. */
static void resume_accept(void)
{
    if (!ui.accept_paused)
        return;
    if (broker_watch(ui.b, ui.listen_fd, POLLIN, on_listen, NULL) == 0)
        ui.accept_paused = 0;
}

/* Closes what has been idle, too long open or lingering long enough. */
static void sweep(void)
{
    int64_t now = tabs_now_ms();
    for (size_t i = ui.n; i-- > 0;) {
        struct conn *c = ui.conns[i];
        if (now - c->active_ms > IDLE_MS || now - c->opened_ms > LIFETIME_MS ||
            (c->state == LINGERING && now - c->answered_ms > LINGER_MS))
            conn_close(c);
    }
    resume_accept();
    update_timer();
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void on_conn(void *arg, int fd, short revents);

/* Sends what it can of the answer; once all is out, shuts the socket for
 * writing and lingers. Returns -1 when it closed the connection. */
static int conn_write(struct conn *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_sent += (size_t)n;
            c->active_ms = tabs_now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (broker_watch(ui.b, c->fd, POLLOUT, on_conn, c)) {
                conn_close(c);
                return -1;
            }
            return 0;
        }
        conn_close(c);
        return -1;
    }
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    c->state = LINGERING;
    c->answered_ms = tabs_now_ms();
    if (broker_watch(ui.b, c->fd, POLLIN, on_conn, c)) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Queues the answer and starts writing it; the connection ends after it.
 * headers: extra header lines, each ending in CRLF, or "". */
static void answer(struct conn *c, int status, const char *type, const char *headers,
                   const char *body, size_t len)
{
    struct out o = {0};
    out_printf(&o,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "Cache-Control: no-store\r\n"
               "X-Content-Type-Options: nosniff\r\n"
               "%s"
               "Connection: close\r\n"
               "\r\n",
               status, reason(status), type, len, headers);
    if (out_reserve(&o, len) == 0) {
        memcpy(o.p + o.len, body, len);
        o.len += len;
    }
    if (o.failed) {
        free(o.p);
        conn_close(c);
        return;
    }
    c->state = WRITING;
    c->out = o.p;
    c->out_len = o.len;
    c->out_sent = 0;
    conn_write(c);
}

static void answer_json(struct conn *c, int status, const char *headers, const char *body)
{
    answer(c, status, "application/json", headers, body, strlen(body));
}

static void answer_error(struct conn *c, int status)
{
    char body[96];
    snprintf(body, sizeof body, "{\"error\":\"%s\"}", reason(status));
    for (char *p = body + 10; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    answer_json(c, status, "", body);
}

/* ---- the parser's callbacks --------------------------------------------- */

static struct conn *conn_of(http_parser *p)
{
    return p->data;
}

static int refuse(struct conn *c, int status)
{
    if (!c->refusal)
        c->refusal = status;
    return -1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (len > URL_MAX - c->url_len)
        return refuse(c, 414);
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->headers_done)
        return 0; /* a chunked body's trailer */
    if (c->in_value) {
        c->in_value = 0;
        c->name_len = 0;
    }
    /* Only short names matter; a longer one is kept as "too long". */
    for (size_t i = 0; i < len; i++) {
        if (c->name_len < sizeof c->name - 1) {
            char ch = at[i];
            c->name[c->name_len] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        if (c->name_len < sizeof c->name)
            c->name_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->headers_done)
        return 0;
    if (!c->in_value) {
        c->in_value = 1;
        c->value = NULL;
        if (c->name_len == 4 && memcmp(c->name, "host", 4) == 0)
            c->value = &c->host;
        else if (c->name_len == 6 && memcmp(c->name, "origin", 6) == 0)
            c->value = &c->origin;
        if (c->value && c->value->seen)
            return refuse(c, 400); /* two of them: which would count? */
        if (c->value)
            c->value->seen = 1;
    }
    struct kept_header *t = c->value;
    if (t == NULL)
        return 0;
    if (len > FIELD_MAX - t->len)
        return refuse(c, 400);
    memcpy(t->s + t->len, at, len);
    t->len += len;
    t->s[t->len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->headers_done = 1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > REQUEST_MAX)
        return refuse(c, 413);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = conn_of(p);
    c->message_done = 1;
    http_parser_pause(p, 1); /* whatever follows is not read */
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---- routes ------------------------------------------------------------- */

static const char *state_name(const struct tab_info *in)
{
    if (in->closed)
        return "closed";
    if (!in->running)
        return "stopped";
    return in->busy ? "busy" : "running";
}

static void serve_tabs(struct conn *c)
{
    struct out o = {0};
    size_t n = broker_count(ui.b);
    out_printf(&o, "[");
    for (size_t i = 0; i < n; i++) {
        struct tab_info in;
        broker_info(ui.b, i, &in);
        out_printf(&o, "%s{\"name\":", i ? ",\n" : "");
        out_json_str(&o, in.name);
        out_printf(&o, ",\"origin\":");
        out_json_str(&o, in.origin);
        out_printf(&o, ",\"state\":\"%s\",\"outcome\":\"%s\",\"detail\":", state_name(&in),
                   tab_outcome_name(in.outcome));
        out_json_str(&o, in.detail);
        out_printf(&o,
                   ",\"lua_bytes\":%llu,\"cpu_ms\":%.1f,\"events\":%llu,\"sent\":%llu,"
                   "\"received\":%llu,\"dropped\":%llu,\"queued\":%u,\"timers\":%u,"
                   "\"last_log\":",
                   (unsigned long long)in.lua_bytes, (double)in.cpu_ns / 1e6,
                   (unsigned long long)in.events, (unsigned long long)in.sent,
                   (unsigned long long)in.received, (unsigned long long)in.dropped, in.queued,
                   in.timers);
        out_json_str(&o, in.last_log);
        out_printf(&o, ",\"result\":");
        /* The broker keeps a result whole as JSON, or replaces one too long
         * to keep by {"truncated":true,...}: either is a JSON value. */
        if (in.result_json[0] == '\0')
            out_printf(&o, "null");
        else
            out_printf(&o, "%s", in.result_json);
        out_printf(&o, "}");
    }
    out_printf(&o, "]\n");
    if (o.failed) {
        free(o.p);
        answer_error(c, 500);
        return;
    }
    answer(c, 200, "application/json", "", o.p, o.len);
    free(o.p);
}

/* POST /api/tabs/NAME/VERB; rest is "NAME/VERB". */
static void serve_action(struct conn *c, const char *rest, size_t len)
{
    const char *slash = memchr(rest, '/', len);
    if (slash == NULL) {
        answer_error(c, 404);
        return;
    }
    size_t name_len = (size_t)(slash - rest);
    const char *verb = slash + 1;
    size_t verb_len = len - name_len - 1;
    int reload = verb_len == 6 && memcmp(verb, "reload", 6) == 0;
    int close_it = verb_len == 5 && memcmp(verb, "close", 5) == 0;
    if (!reload && !close_it) {
        answer_error(c, 404);
        return;
    }
    if (c->parser.method != HTTP_POST) {
        answer_json(c, 405, "Allow: POST\r\n", "{\"error\":\"method not allowed\"}");
        return;
    }
    char name[TAB_NAME_MAX + 1];
    int i = -1;
    if (name_len > 0 && name_len <= TAB_NAME_MAX) {
        memcpy(name, rest, name_len);
        name[name_len] = '\0';
        i = broker_find(ui.b, name);
    }
    if (i < 0) {
        answer_json(c, 404, "", "{\"error\":\"no such tab\"}");
        return;
    }
    if (reload)
        broker_reload(ui.b, (size_t)i);
    else
        broker_close(ui.b, (size_t)i);
    answer_json(c, 200, "", "{\"ok\":true}");
}

/* A Host that is a domain name means the page was reached through some
 * name that resolves here (DNS rebinding): only addresses and localhost. */
static int host_ok(const struct kept_header *host)
{
    if (!host->seen)
        return 1;
    char h[FIELD_MAX + 1];
    snprintf(h, sizeof h, "%s", host->s);
    char *colon = strrchr(h, ':');
    if (colon) {
        if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1))
            return 0;
        *colon = '\0';
    }
    struct in_addr a;
    return strcasecmp(h, "localhost") == 0 || inet_pton(AF_INET, h, &a) == 1;
}

/* A browser names the origin of every POST: only the page's own. */
static int origin_ok(const struct conn *c)
{
    if (!c->origin.seen)
        return 1;
    return c->host.seen && strncmp(c->origin.s, "http://", 7) == 0 &&
           strcmp(c->origin.s + 7, c->host.s) == 0;
}

static void route(struct conn *c)
{
    size_t path_len = strcspn(c->url, "?#");
    const char *path = c->url;
    int method = c->parser.method;
    static const char prefix[] = "/api/tabs/";
    if (!host_ok(&c->host)) {
        answer_json(c, 403, "", "{\"error\":\"unknown host name\"}");
        return;
    }
    if (path_len == 1 && path[0] == '/') {
        if (method != HTTP_GET) {
            answer_json(c, 405, "Allow: GET\r\n", "{\"error\":\"method not allowed\"}");
            return;
        }
        size_t html_len;
        const char *html = page(&html_len);
        answer(c, 200, "text/html; charset=utf-8",
               "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
               "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'\r\n"
               "X-Frame-Options: DENY\r\n"
               "Referrer-Policy: no-referrer\r\n",
               html, html_len);
    } else if (path_len == 9 && memcmp(path, "/api/tabs", 9) == 0) {
        if (method != HTTP_GET) {
            answer_json(c, 405, "Allow: GET\r\n", "{\"error\":\"method not allowed\"}");
            return;
        }
        serve_tabs(c);
    } else if (path_len > sizeof prefix - 1 && memcmp(path, prefix, sizeof prefix - 1) == 0) {
        if (method == HTTP_POST && !origin_ok(c)) {
            answer_json(c, 403, "", "{\"error\":\"cross-origin request refused\"}");
            return;
        }
        serve_action(c, path + sizeof prefix - 1, path_len - (sizeof prefix - 1));
    } else {
        answer_error(c, 404);
    }
}

/* ---- reading ------------------------------------------------------------ */

/* Reads and parses; answers once the request is whole or refused. */
static void conn_read(struct conn *c)
{
    for (;;) {
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c); /* gone before its request was whole */
            return;
        }
        c->active_ms = tabs_now_ms();
        size_t room = REQUEST_MAX - c->got;
        size_t feed = (size_t)n < room ? (size_t)n : room;
        http_parser_execute(&c->parser, &settings, buf, feed);
        c->got += feed;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (c->message_done) {
            route(c);
            return;
        }
        if (err != HPE_OK) {
            answer_error(c, c->refusal ? c->refusal : 400);
            return;
        }
        if (c->got >= REQUEST_MAX) {
            answer_error(c, c->headers_done ? 413 : 431);
            return;
        }
    }
}

/* Drops what the client sends after its answer, until it closes. */
static void conn_linger(struct conn *c)
{
    for (;;) {
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || (c->lingered += (size_t)n) > LINGER_BYTES) {
            conn_close(c);
            return;
        }
    }
}

/* A connection's descriptor is ready. The broker may hand over readiness
 * seen before another callback closed the descriptor and accept() reused
 * its number, so revents is only a hint: each step just tries. */
static void on_conn(void *arg, int fd, short revents)
{
    struct conn *c = arg;
    (void)fd;
    (void)revents;
    switch (c->state) {
    case READING:
        conn_read(c);
        break;
    case WRITING:
        conn_write(c);
        break;
    case LINGERING:
        conn_linger(c);
        break;
    }
    sweep();
}

static void conn_open(int fd)
{
    if (ui.n == CONNS_MAX) {
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Content-Length: 29\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
            "{\"error\":\"too many clients\"}\n";
        ssize_t rc = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)rc; /* best effort: the connection closes either way */
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->state = READING;
    c->opened_ms = c->active_ms = tabs_now_ms();
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (broker_watch(ui.b, fd, POLLIN, on_conn, c)) {
        close(fd);
        free(c);
        return;
    }
    ui.conns[ui.n++] = c;
    update_timer();
}

static void on_listen(void *arg, int fd, short revents)
{
    (void)arg;
    (void)revents;
    sweep();
    for (int k = 0; k < ACCEPTS_PER_WAKE; k++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            conn_open(cfd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: stop listening until the sweep timer says
             * to try again, rather than wake on the same backlog forever. */
            broker_unwatch(ui.b, fd);
            ui.accept_paused = 1;
            update_timer();
        }
        return;
    }
}

static void on_timer(void *arg, int fd, short revents)
{
    (void)arg;
    (void)revents;
    uint64_t ticks;
    ssize_t rc = read(fd, &ticks, sizeof ticks);
    (void)rc; /* EAGAIN on a spurious wake: nothing to do but sweep */
    sweep();
}

/* ---- start and stop ----------------------------------------------------- */

/* Parses "A.B.C.D:PORT". */
static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
    const char *colon = strrchr(addr, ':');
    char host[INET_ADDRSTRLEN];
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    const char *port = colon + 1;
    if (*port == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return -1;
    long p = strtol(port, NULL, 10);
    if (p > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)p);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int ui_start(struct broker *b, const char *addr)
{
    struct sockaddr_in sa;
    if (ui.b != NULL) {
        fprintf(stderr, "walls-tabs: the ui is already running\n");
        return -1;
    }
    if (parse_addr(addr, &sa)) {
        fprintf(stderr,
                "walls-tabs: --ui \"%s\": needs an IPv4 address and a port from 0 to 65535, "
                "like 127.0.0.1:8080 (0: any free port)\n",
                addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "walls-tabs: --ui %s: cannot open a socket: %s\n", addr, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, SOMAXCONN) ||
        getsockname(fd, (struct sockaddr *)&sa, &len)) {
        fprintf(stderr, "walls-tabs: --ui %s: cannot listen: %s\n", addr, strerror(errno));
        close(fd);
        return -1;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) {
        fprintf(stderr, "walls-tabs: --ui: cannot make a timer: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    if (broker_watch(b, fd, POLLIN, on_listen, NULL) ||
        broker_watch(b, tfd, POLLIN, on_timer, NULL)) {
        fprintf(stderr, "walls-tabs: --ui: out of memory\n");
        broker_unwatch(b, fd);
        close(fd);
        close(tfd);
        return -1;
    }
    ui.b = b;
    ui.listen_fd = fd;
    ui.timer_fd = tfd;
    ui.timer_on = 0;
    ui.accept_paused = 0;
    ui.n = 0;
    char shown[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
        fprintf(stderr,
                "walls-tabs: warning: the ui has no login and can reload and close tabs; "
                "%s is reachable from other machines\n",
                shown);
    printf("walls-tabs: ui on http://%s:%u/\n", shown, (unsigned)ntohs(sa.sin_port));
    fflush(stdout);
    return 0;
}

void ui_stop(void)
{
    if (ui.b == NULL)
        return;
    while (ui.n > 0)
        conn_close(ui.conns[ui.n - 1]);
    broker_unwatch(ui.b, ui.listen_fd);
    broker_unwatch(ui.b, ui.timer_fd);
    close(ui.listen_fd);
    close(ui.timer_fd);
    ui.listen_fd = ui.timer_fd = -1;
    ui.b = NULL;
}

/* ---- the page ----------------------------------------------------------- */

/* Plain HTML, CSS and JavaScript, no outside files. Everything a tab says
 * goes into the page through textContent, never as markup. */
static const char page_html[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>walls-tabs</title>\n"
    "<style>\n"
    ":root { --fg: #1f2933; --muted: #6b7280; --line: #e5e7eb; --bg: #f4f5f7; }\n"
    "* { box-sizing: border-box; }\n"
    "body { margin: 0; background: var(--bg); color: var(--fg);\n"
    "  font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
    "sans-serif; }\n"
    "header { padding: 22px 32px 12px; }\n"
    "h1 { margin: 0; font-size: 22px; font-weight: 650; letter-spacing: -0.01em; }\n"
    "#summary { margin-top: 4px; color: var(--muted); }\n"
    "#problem { margin: 0 32px 12px; padding: 8px 12px; border-radius: 6px; background: #fdecea;\n"
    "  color: #8a1c14; display: none; }\n"
    "main { padding: 4px 32px 32px; overflow-x: auto; }\n"
    "table { width: 100%; min-width: 1120px; table-layout: fixed; border-collapse: separate;\n"
    "  border-spacing: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;\n"
    "  overflow: hidden; box-shadow: 0 1px 2px rgba(0,0,0,0.04); }\n"
    "th, td { padding: 9px 10px; text-align: left; vertical-align: top;\n"
    "  border-bottom: 1px solid var(--line); }\n"
    "tbody tr:last-child td { border-bottom: none; }\n"
    "tbody tr:hover { background: #fafbfc; }\n"
    "th { background: #f9fafb; color: var(--muted); font-size: 11px; font-weight: 600;\n"
    "  text-transform: uppercase; letter-spacing: 0.04em; vertical-align: bottom; }\n"
    ".num { text-align: right; font-variant-numeric: tabular-nums; }\n"
    ".name { font-weight: 600; overflow-wrap: anywhere; }\n"
    ".muted { color: var(--muted); overflow-wrap: anywhere; }\n"
    ".badge { display: inline-block; min-width: 62px; padding: 1px 8px; border-radius: 999px;\n"
    "  color: #fff; font-size: 12px; font-weight: 600; text-align: center; white-space: nowrap; }\n"
    ".badge.running { background: #1f9d55; }\n"
    ".badge.busy { background: #2563eb; }\n"
    ".badge.stopped { background: #dc2626; }\n"
    ".badge.closed { background: #9ca3af; }\n"
    ".outcome { white-space: nowrap; }\n"
    ".outcome.bad { color: #b91c1c; font-weight: 600; }\n"
    ".detail { margin-top: 2px; color: #b91c1c; font-size: 12px;\n"
    "  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;\n"
    "  white-space: pre-wrap; overflow-wrap: anywhere; }\n"
    ".log, .result { overflow: hidden; text-overflow: ellipsis;\n"
    "  white-space: nowrap; font-size: 12px;\n"
    "  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }\n"
    ".result { color: var(--muted); margin-top: 2px; }\n"
    ".actions { white-space: nowrap; text-align: right; }\n"
    "button { font: inherit; font-size: 12.5px; padding: 3px 9px; margin-left: 4px;\n"
    "  border: 1px solid #d1d5db; border-radius: 6px; background: #fff; color: var(--fg);\n"
    "  cursor: pointer; }\n"
    "button:hover { background: #f3f4f6; }\n"
    "button:disabled { color: #b0b4ba; cursor: default; background: #fff; }\n"
    "button.close:hover:enabled { border-color: #f1a5a5; color: #b91c1c; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<header>\n"
    "<h1>walls-tabs</h1>\n"
    "<div id=\"summary\">Loading&hellip;</div>\n"
    "</header>\n"
    "<div id=\"problem\"></div>\n"
    "<main>\n"
    "<table id=\"tabs\">\n"
    "<colgroup><col style=\"width: 9%\"><col style=\"width: 7%\"><col style=\"width: 96px\">\n"
    "<col style=\"width: 13%\"><col style=\"width: 84px\"><col style=\"width: 76px\">\n"
    "<col style=\"width: 112px\"><col style=\"width: 72px\"><col style=\"width: 68px\">\n"
    "<col style=\"width: 17%\"><col style=\"width: 150px\"></colgroup>\n"
    "<thead><tr>\n"
    "<th>Tab</th><th>Origin</th><th>State</th><th>Outcome</th>\n"
    "<th class=\"num\">Memory (KiB)</th><th class=\"num\">CPU (ms)</th>\n"
    "<th class=\"num\">Sent / recv / dropped</th><th class=\"num\">Queued</th>\n"
    "<th class=\"num\">Timers</th><th>Last log</th><th></th>\n"
    "</tr></thead>\n"
    "<tbody></tbody>\n"
    "</table>\n"
    "</main>\n"
    "<script>\n"
    "'use strict';\n"
    "const tbody = document.querySelector('#tabs tbody');\n"
    "const summary = document.getElementById('summary');\n"
    "const problem = document.getElementById('problem');\n"
    "const STATES = ['running', 'busy', 'stopped', 'closed'];\n"
    "const rows = new Map();\n"
    "\n"
    "function el(tag, cls, parent) {\n"
    "  const e = document.createElement(tag);\n"
    "  if (cls) e.className = cls;\n"
    "  if (parent) parent.appendChild(e);\n"
    "  return e;\n"
    "}\n"
    "\n"
    "function setText(e, text) {\n"
    "  text = String(text);\n"
    "  if (e.textContent !== text) e.textContent = text;\n"
    "}\n"
    "\n"
    "function showProblem(text) {\n"
    "  problem.textContent = text;\n"
    "  problem.style.display = text ? 'block' : 'none';\n"
    "}\n"
    "\n"
    "async function act(name, verb) {\n"
    "  try {\n"
    "    const r = await fetch('/api/tabs/' + encodeURIComponent(name) + '/' + verb,\n"
    "                          { method: 'POST' });\n"
    "    if (!r.ok) showProblem(verb + ' ' + name + ': HTTP ' + r.status);\n"
    "  } catch (e) {\n"
    "    showProblem(verb + ' ' + name + ': ' + e);\n"
    "  }\n"
    "  refresh();\n"
    "}\n"
    "\n"
    "function makeRow(name) {\n"
    "  const tr = el('tr');\n"
    "  const r = { tr: tr };\n"
    "  r.name = el('td', 'name', tr);\n"
    "  r.origin = el('td', 'muted', tr);\n"
    "  r.badge = el('span', 'badge', el('td', '', tr));\n"
    "  const oc = el('td', '', tr);\n"
    "  r.outcome = el('div', 'outcome', oc);\n"
    "  r.detail = el('div', 'detail', oc);\n"
    "  r.memory = el('td', 'num', tr);\n"
    "  r.cpu = el('td', 'num', tr);\n"
    "  r.msgs = el('td', 'num', tr);\n"
    "  r.queued = el('td', 'num', tr);\n"
    "  r.timers = el('td', 'num', tr);\n"
    "  const lg = el('td', '', tr);\n"
    "  r.log = el('div', 'log', lg);\n"
    "  r.result = el('div', 'result', lg);\n"
    "  const actions = el('td', 'actions', tr);\n"
    "  r.reload = el('button', 'reload', actions);\n"
    "  r.reload.textContent = 'Reload';\n"
    "  r.reload.addEventListener('click', () => act(name, 'reload'));\n"
    "  r.close = el('button', 'close', actions);\n"
    "  r.close.textContent = 'Close';\n"
    "  r.close.addEventListener('click', () => act(name, 'close'));\n"
    "  return r;\n"
    "}\n"
    "\n"
    "function update(r, t) {\n"
    "  const state = STATES.includes(t.state) ? t.state : 'closed';\n"
    "  setText(r.name, t.name);\n"
    "  setText(r.origin, t.origin);\n"
    "  r.badge.className = 'badge ' + state;\n"
    "  setText(r.badge, state);\n"
    "  setText(r.outcome, t.outcome);\n"
    "  r.outcome.className = 'outcome' + (t.outcome === 'ok' ? '' : ' bad');\n"
    "  setText(r.detail, t.outcome === 'ok' ? '' : t.detail);\n"
    "  setText(r.memory, (t.lua_bytes / 1024).toFixed(1));\n"
    "  setText(r.cpu, Number(t.cpu_ms).toFixed(1));\n"
    "  setText(r.msgs, t.sent + ' / ' + t.received + ' / ' + t.dropped);\n"
    "  setText(r.queued, t.queued);\n"
    "  setText(r.timers, t.timers);\n"
    "  setText(r.log, t.last_log);\n"
    "  r.log.title = t.last_log;\n"
    "  const result = t.result === null ? '' : '\\u2192 broker: ' + JSON.stringify(t.result);\n"
    "  setText(r.result, result);\n"
    "  r.result.title = result;\n"
    "  r.close.disabled = state === 'closed';\n"
    "}\n"
    "\n"
    "function render(tabs) {\n"
    "  const counts = { running: 0, busy: 0, stopped: 0, closed: 0 };\n"
    "  const seen = new Set();\n"
    "  const order = [];\n"
    "  for (const t of tabs) {\n"
    "    const name = String(t.name);\n"
    "    let r = rows.get(name);\n"
    "    if (!r) { r = makeRow(name); rows.set(name, r); }\n"
    "    update(r, t);\n"
    "    if (t.state in counts) counts[t.state]++;\n"
    "    seen.add(name);\n"
    "    order.push(r.tr);\n"
    "  }\n"
    "  for (const name of Array.from(rows.keys())) if (!seen.has(name)) rows.delete(name);\n"
    "  order.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, "
    "tbody.children[i] || null); });\n"
    "  while (tbody.children.length > order.length) tbody.removeChild(tbody.lastChild);\n"
    "  const live = counts.running + counts.busy;\n"
    "  setText(summary, tabs.length + (tabs.length === 1 ? ' tab' : ' tabs') + ': ' + live +\n"
    "          ' running, ' + counts.stopped + ' stopped, ' + counts.closed + ' closed' +\n"
    "          ' \\u00b7 updated ' + new Date().toLocaleTimeString());\n"
    "}\n"
    "\n"
    "let timer = null;\n"
    "async function refresh() {\n"
    "  clearTimeout(timer);\n"
    "  try {\n"
    "    const r = await fetch('/api/tabs', { cache: 'no-store' });\n"
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "    render(await r.json());\n"
    "    if (problem.textContent.startsWith('Cannot reach')) showProblem('');\n"
    "  } catch (e) {\n"
    "    showProblem('Cannot reach walls-tabs (' + e.message + '); retrying.');\n"
    "  }\n"
    "  timer = setTimeout(refresh, 1000);\n"
    "}\n"
    "refresh();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

static const char *page(size_t *len)
{
    *len = sizeof page_html - 1;
    return page_html;
}
