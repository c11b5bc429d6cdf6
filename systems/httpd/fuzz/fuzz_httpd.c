/*
 * fuzz_httpd.c - libFuzzer target over walls-httpd's request path: the
 * bytes a client sends, through the parser glue, the limits, routing,
 * static files, the request encoding for a handler and the response back.
 *
 * One loop of a server is set up by hand (no listening socket): a root
 * with a file, a directory and symlinks in and out of it, two handler
 * routes on a walls thread pool, one whose handler echoes the request's
 * method, path, query, headers and body, one whose handler writes garbage
 * as its response, and two fixed responses (returns, answered by the
 * loop). Each input is written into one end of a socketpair whose other
 * end is a connection of that loop; the connection is driven until it
 * closes or has nothing more to do, its handlers' tasks waited for and
 * handed back as the loop would. Whatever the input, the server must not
 * crash or leak, and everything it sends must be HTTP/1.1 responses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "walls-httpd.h"

walls_fn fz_echo, fz_garbage;

int fz_echo(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    /* Everything the handler was given, back as its body. */
    size_t room = call->out_cap > 256 ? call->out_cap - 256 : 0, at = 0;
    static __thread char body[1 << 16];
    at += (size_t)snprintf(body + at, sizeof body - at, "%s %s ? %s\n", req.method, req.path,
                           req.query);
    for (unsigned i = 0; i < req.nheaders && at < sizeof body; i++)
        at += (size_t)snprintf(body + at, sizeof body - at, "%s: %s\n", req.headers[i].name,
                               req.headers[i].value);
    if (at > sizeof body)
        at = sizeof body;
    size_t n = req.body_len < sizeof body - at ? req.body_len : sizeof body - at;
    memcpy(body + at, req.body, n);
    at += n;
    if (at > room)
        at = room;
    struct whttpd_header extra[1] = {{"X-Seen", req.method}};
    return whttpd_respond_headers(call, 200, "text/plain", extra, 1, body, at);
}

int fz_garbage(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    /* The body, as the response's own bytes: whatever the client sent. */
    size_t n = req.body_len < call->out_cap ? req.body_len : call->out_cap;
    memcpy(call->out, req.body, n);
    call->out_len = n;
    return 0;
}

static struct server srv;
static struct routeset routes;
static struct loop loop;

static char root_dir[] = "/tmp/fuzz-httpd-root.XXXXXX";
static const char *const root_names[] = {"index.html", "a.txt", "sub", "out", "in"};

/* The root goes when the fuzzer exits. */
static void remove_root(void)
{
    char path[256];
    for (size_t i = 0; i < sizeof root_names / sizeof root_names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root_dir, root_names[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
    rmdir(root_dir);
}

static void make_root(void)
{
    char *dir = root_dir;
    if (!mkdtemp(dir))
        abort();
    atexit(remove_root);
    char path[256];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    fputs("index\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/a.txt", dir);
    f = fopen(path, "w");
    fputs("0123456789abcdef", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/out", dir);
    if (symlink("/etc", path) != 0)
        abort();
    snprintf(path, sizeof path, "%s/in", dir);
    if (symlink("a.txt", path) != 0)
        abort();
    srv.root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(srv.root, sizeof srv.root, "%s", dir);
}

static void add_route(const char *prefix, walls_fn *fn, walls_pool *pool)
{
    struct route *r = &routes.routes[routes.nroutes++];
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    r->prefix_len = strlen(prefix);
    snprintf(r->function, sizeof r->function, "%s", prefix + 1);
    r->fn = fn;
    r->placement_name = "threads";
    r->placement = WALLS_THREADS;
    r->pool = pool;
    r->pool_fd = -1;
}

static void add_return(const char *prefix, int status, const char *text)
{
    struct route *r = &routes.routes[routes.nroutes++];
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    r->prefix_len = strlen(prefix);
    snprintf(r->function, sizeof r->function, "return %d", status);
    r->placement_name = "loop";
    r->ret_status = status;
    r->ret_len = strlen(text);
    memcpy(r->ret_text, text, r->ret_len + 1);
    r->pool_fd = -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    srv.max_header = 1024;
    srv.max_body = 8192;
    srv.max_output = 1 << 16;
    srv.max_conns = 1000;
    srv.header_timeout_ms = 0;
    srv.nloops = 1;
    srv.loops = &loop;
    srv.error_log = NULL; /* quiet */
    pthread_mutex_init(&srv.log_lock, NULL);
    snprintf(srv.host, sizeof srv.host, "127.0.0.1");
    make_root();
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = 1,
                                .max_output = srv.max_output};
    walls_pool *pool;
    if (walls_pool_create(&pool, &o) != 0)
        abort();
    add_route("/echo", fz_echo, pool);
    add_route("/garbage", fz_garbage, pool);
    add_return("/ret", 200, "hello\n");
    add_return("/moved", 301, "/echo");
    srv.active = &routes;
    loop.srv = &srv;
    loop.ep = epoll_create1(EPOLL_CLOEXEC);
    loop.listen_fd = loop.wake_fd = -1;
    pthread_mutex_init(&loop.inbox_lock, NULL);
    status_start();
    return 0;
}

/* Reads what the server sent so far into out (bounded). */
static void drain(int fd, char *out, size_t cap, size_t *len)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            return;
        size_t k = (size_t)n < cap - *len ? (size_t)n : cap - *len;
        memcpy(out + *len, buf, k);
        *len += k;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size > 65536)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (size && send(sv[0], data, size, 0) != (ssize_t)size)
        abort();
    shutdown(sv[0], SHUT_WR);
    struct conn *c = conn_open(&loop, sv[1], "fuzz");
    if (!c)
        abort();
    static char out[1 << 21];
    size_t out_len = 0;
    for (int turns = 0; turns < 10000; turns++) {
        conn_drive(c);
        drain(sv[0], out, sizeof out, &out_len);
        if (c->dead || c->fd < 0)
            break;
        if (c->state == WAITING) {
            struct walls_result res;
            walls_wait(c->task, -1, &res);
            handler_done(c, c->task);
            continue;
        }
        if (c->state == READING) {
            /* Everything was sent and the client half-closed: the next
             * read ends it; nothing more can come. */
            conn_drive(c);
            drain(sv[0], out, sizeof out, &out_len);
            if (!c->dead && c->fd >= 0)
                conn_close(c);
            break;
        }
    }
    if (!c->dead && c->fd >= 0)
        conn_close(c);
    conn_reap(&loop);
    close(sv[0]);
    /* Whatever was asked, only responses came back. */
    if (out_len && memcmp(out, "HTTP/1.1 ", out_len < 9 ? out_len : 9) != 0) {
        fprintf(stderr, "fuzz_httpd: the server sent something that is not a response\n");
        abort();
    }
    return 0;
}
