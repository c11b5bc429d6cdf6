/*
 * main.c - walls-httpd: an HTTP/1.1 server whose dynamic handlers run
 * behind walls (threads, processes, hybrid or strictly sandboxed processes,
 * per route), with static files served by the event loops themselves.
 *
 *   walls-httpd --listen 127.0.0.1:8080 --root ./www \
 *       --route /hello=./walls-httpd-examples.so:hello:threads \
 *       --route /dyn=./walls-httpd-examples.so:dyn:processes:1000
 *
 * Start-up order matters: the plugins are loaded first, then the fork
 * server is started (walls_init) while the program has one thread, so
 * that every worker, sandboxed or not, has the plugins mapped already;
 * then the pools, then the loops. SIGTERM and SIGINT stop gracefully
 * (no more accepts, responses in progress finish, at most
 * --shutdown-timeout), SIGQUIT at once. See docs/httpd.md.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: walls-httpd --listen HOST:PORT [options]\n"
            "  --listen HOST:PORT       IPv4 address and port (port 0: any free one)\n"
            "  --root DIR               serve static files from DIR\n"
            "  --route PREFIX=PLUGIN.so:FUNCTION[:PLACEMENT[:TIMEOUT_MS]]\n"
            "                           requests whose path starts with PREFIX go to FUNCTION;\n"
            "                           PLACEMENT: threads, processes (default), hybrid, strict\n"
            "  --workers N              workers per route (default: usable CPUs)\n"
            "  --loops N                event-loop threads (default: usable CPUs)\n"
            "  --max-header BYTES       request line and headers (default 8192)\n"
            "  --max-body BYTES         request body (default 1048576)\n"
            "  --max-output BYTES       a handler's response (default 1048576)\n"
            "  --max-conns N            open connections (default 4096)\n"
            "  --header-timeout MS      408 for headers slower than this (default 10000)\n"
            "  --shutdown-timeout MS    graceful stop bound (default 10000)\n"
            "  --restart-limit N        worker restarts within a second that break a\n"
            "                           route's pool (503 until it is reset; default 100)\n"
            "  --access-log FILE        combined-format access log (default: none)\n"
            "  --error-log FILE         error log (default: standard error)\n"
            "  --help, --version\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "walls-httpd: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

static int parse_size(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* PREFIX=PLUGIN.so:FUNCTION[:PLACEMENT[:TIMEOUT_MS]] */
static int parse_route(struct server *srv, const char *spec)
{
    if (srv->nroutes == HTTPD_ROUTES_MAX)
        return fail("too many routes (at most 64): %s", spec);
    struct route *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || spec[0] != '/' || (size_t)(eq - spec) >= sizeof r->prefix)
        return fail("--route %s: want PREFIX=PLUGIN.so:FUNCTION, PREFIX starting with /", spec);
    memcpy(r->prefix, spec, (size_t)(eq - spec));
    r->prefix_len = (size_t)(eq - spec);
    char rest[PATH_MAX + 256];
    if (strlen(eq + 1) >= sizeof rest)
        return fail("--route %s: too long", spec);
    strcpy(rest, eq + 1);
    char *fields[4] = {NULL};
    int n = 0;
    for (char *p = rest; n < 4; n++) {
        fields[n] = p;
        char *colon = strchr(p, ':');
        if (!colon) {
            n++;
            break;
        }
        *colon = '\0';
        p = colon + 1;
        if (n == 3)
            return fail("--route %s: too many fields", spec);
    }
    if (n < 2 || !*fields[0] || !*fields[1])
        return fail("--route %s: want PLUGIN.so:FUNCTION after the =", spec);
    if (!realpath(fields[0], r->plugin))
        return fail("--route: plugin %s not found", fields[0]);
    if (strlen(fields[1]) >= sizeof r->function)
        return fail("--route %s: function name too long", spec);
    strcpy(r->function, fields[1]);
    const char *placement = n > 2 && *fields[2] ? fields[2] : "processes";
    static const struct {
        const char *name;
        enum walls_placement placement;
        unsigned sandbox;
    } kinds[] = {{"threads", WALLS_THREADS, WALLS_SANDBOX_NONE},
                 {"processes", WALLS_PROCESSES, WALLS_SANDBOX_NONE},
                 {"hybrid", WALLS_HYBRID, WALLS_SANDBOX_NONE},
                 {"strict", WALLS_PROCESSES, WALLS_SANDBOX_STRICT}};
    size_t k = 0;
    while (k < 4 && strcmp(kinds[k].name, placement) != 0)
        k++;
    if (k == 4)
        return fail("--route: unknown placement %s (threads, processes, hybrid or strict)",
                    placement);
    r->placement_name = kinds[k].name;
    r->placement = kinds[k].placement;
    r->sandbox = kinds[k].sandbox;
    if (n > 3) {
        unsigned long long ms;
        if (parse_size(fields[3], 86400000ULL, &ms) != 0 || ms == 0)
            return fail("--route: time limit %s is not a number of milliseconds (1-86400000)",
                        fields[3]);
        r->timeout_ms = (int64_t)ms;
    }
    r->pool_fd = -1;
    srv->nroutes++;
    return 0;
}

static int parse_listen(struct server *srv, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    unsigned long long port;
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof srv->host ||
        parse_size(colon + 1, 65535, &port) != 0)
        return fail("--listen %s: want an IPv4 HOST:PORT", spec);
    memcpy(srv->host, spec, (size_t)(colon - spec));
    srv->host[colon - spec] = '\0';
    srv->port = (int)port;
    return 0;
}

static int parse_args(struct server *srv, int argc, char **argv)
{
    enum { O_LISTEN = 256, O_ROOT, O_ROUTE, O_WORKERS, O_LOOPS, O_MAX_HEADER, O_MAX_BODY,
           O_MAX_OUTPUT, O_MAX_CONNS, O_HEADER_TIMEOUT, O_SHUTDOWN_TIMEOUT, O_ACCESS_LOG,
           O_ERROR_LOG, O_RESTART_LIMIT, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"root", required_argument, NULL, O_ROOT},
        {"route", required_argument, NULL, O_ROUTE},
        {"workers", required_argument, NULL, O_WORKERS},
        {"loops", required_argument, NULL, O_LOOPS},
        {"max-header", required_argument, NULL, O_MAX_HEADER},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"max-output", required_argument, NULL, O_MAX_OUTPUT},
        {"max-conns", required_argument, NULL, O_MAX_CONNS},
        {"header-timeout", required_argument, NULL, O_HEADER_TIMEOUT},
        {"shutdown-timeout", required_argument, NULL, O_SHUTDOWN_TIMEOUT},
        {"access-log", required_argument, NULL, O_ACCESS_LOG},
        {"error-log", required_argument, NULL, O_ERROR_LOG},
        {"restart-limit", required_argument, NULL, O_RESTART_LIMIT},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    bool listened = false;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        unsigned long long v = 0;
        int rc = 0;
        switch (ch) {
        case O_LISTEN:
            rc = parse_listen(srv, optarg);
            listened = true;
            break;
        case O_ROOT:
            if (!realpath(optarg, srv->root))
                return fail("--root %s: no such directory", optarg);
            break;
        case O_ROUTE:
            rc = parse_route(srv, optarg);
            break;
        case O_WORKERS:
        case O_LOOPS:
        case O_MAX_CONNS:
            if (parse_size(optarg, 1024, &v) != 0 || v == 0)
                return fail("%s is not a count from 1 to 1024", optarg);
            if (ch == O_WORKERS)
                srv->workers = (unsigned)v;
            else if (ch == O_LOOPS)
                srv->nloops = (unsigned)v;
            else
                srv->max_conns = (unsigned)v;
            break;
        case O_MAX_HEADER:
            if (parse_size(optarg, 65536, &v) != 0 || v < 256)
                return fail("--max-header %s: want 256 to 65536 bytes", optarg);
            srv->max_header = (size_t)v;
            break;
        case O_MAX_BODY:
        case O_MAX_OUTPUT:
            if (parse_size(optarg, WALLS_IO_MAX - 65536, &v) != 0 || v < 64)
                return fail("%s: want 64 bytes to just under 1 GiB", optarg);
            if (ch == O_MAX_BODY)
                srv->max_body = (size_t)v;
            else
                srv->max_output = (size_t)v;
            break;
        case O_RESTART_LIMIT:
            if (parse_size(optarg, 100000, &v) != 0 || v == 0)
                return fail("--restart-limit %s: want 1 to 100000", optarg);
            srv->restart_limit = (unsigned)v;
            break;
        case O_HEADER_TIMEOUT:
        case O_SHUTDOWN_TIMEOUT:
            if (parse_size(optarg, 3600000, &v) != 0 || v == 0)
                return fail("%s: want 1 to 3600000 milliseconds", optarg);
            if (ch == O_HEADER_TIMEOUT)
                srv->header_timeout_ms = (int)v;
            else
                srv->shutdown_ms = (int)v;
            break;
        case O_ACCESS_LOG:
        case O_ERROR_LOG: {
            FILE *f = fopen(optarg, "ae");
            if (!f)
                return fail("cannot open log %s", optarg);
            setvbuf(f, NULL, _IOFBF, 1 << 16);
            if (ch == O_ACCESS_LOG)
                srv->access_log = f;
            else
                srv->error_log = f;
            break;
        }
        case O_HELP:
            usage(stdout);
            exit(0);
        case O_VERSION:
            printf("walls-httpd (walls %s)\n", walls_version());
            exit(0);
        default:
            usage(stderr);
            return fail("unknown or incomplete option %s", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return fail("unexpected argument %s", argv[optind]);
    if (!listened)
        return fail("--listen HOST:PORT is required");
    return 0;
}

/* Loads each route's plugin and finds its function. */
static int load_plugins(struct server *srv)
{
    for (unsigned i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        r->dl = dlopen(r->plugin, RTLD_NOW | RTLD_LOCAL);
        if (!r->dl) {
            fprintf(stderr, "walls-httpd: --route %s: %s\n", r->prefix, dlerror());
            return 2;
        }
        r->fn = (walls_fn *)dlsym(r->dl, r->function);
        if (!r->fn) {
            fprintf(stderr, "walls-httpd: --route %s: %s has no function %s\n", r->prefix,
                    r->plugin, r->function);
            return 2;
        }
    }
    return 0;
}

static int make_pools(struct server *srv)
{
    for (unsigned i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        struct walls_pool_opts o = {.placement = r->placement,
                                    .sandbox = r->sandbox,
                                    .task_timeout_ms = r->timeout_ms,
                                    .max_output = srv->max_output,
                                    .max_queued = 4096,
                                    .restart_limit = srv->restart_limit};
        unsigned w = r->workers ? r->workers : srv->workers;
        if (r->placement == WALLS_THREADS) {
            o.threads = w;
        } else if (r->placement == WALLS_HYBRID) {
            o.processes = w > 1 ? w / 2 : 1;
            o.threads = 2;
        } else {
            o.processes = w;
        }
        int rc = walls_pool_create(&r->pool, &o);
        if (rc != 0) {
            fprintf(stderr, "walls-httpd: route %s: walls_pool_create: %s (%s)\n", r->prefix,
                    walls_strerror(rc), walls_last_error());
            return 1;
        }
        r->pool_fd = walls_pool_fd(r->pool);
        if (r->pool_fd < 0) {
            fprintf(stderr, "walls-httpd: route %s: walls_pool_fd: %s\n", r->prefix,
                    walls_strerror(r->pool_fd));
            return 1;
        }
    }
    return 0;
}

static void destroy_pools(struct server *srv, bool at_once)
{
    for (unsigned i = 0; i < srv->nroutes; i++)
        if (srv->routes[i].pool) {
            walls_pool_destroy(srv->routes[i].pool, at_once ? WALLS_CANCEL : 0);
            srv->routes[i].pool = NULL;
        }
}

/* Waits for the stop signals; returns once the loops are done. */
static void serve(struct server *srv, const sigset_t *sigs)
{
    for (;;) {
        int sig = sigwaitinfo(sigs, NULL);
        if (sig == SIGHUP) {
            httpd_log_notice(srv, "SIGHUP: reloading is not supported by this version; ignored");
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
            break;
    }
    httpd_stop(srv, 1);
    httpd_loops_wake(srv);
    /* Graceful: the loops leave once their connections are done; a second
     * signal, or the bound, makes it at once. */
    struct timespec bound = {srv->shutdown_ms / 1000, (long)(srv->shutdown_ms % 1000) * 1000000};
    for (;;) {
        if (httpd_loops_done(srv))
            break;
        struct timespec tick = {0, 20000000};
        int sig = sigtimedwait(sigs, NULL, &tick);
        bound.tv_nsec -= 20000000;
        if (bound.tv_nsec < 0) {
            bound.tv_nsec += 1000000000;
            bound.tv_sec--;
        }
        if (sig == SIGQUIT || sig == SIGTERM || sig == SIGINT || bound.tv_sec < 0) {
            httpd_stop(srv, 2);
            httpd_loops_wake(srv);
            break;
        }
    }
}

int main(int argc, char **argv)
{
    static struct server srv;
    int cpus = walls_cpu_count();
    srv.root_fd = -1;
    srv.workers = srv.nloops = cpus > 0 ? (unsigned)cpus : 1;
    srv.max_header = 8192;
    srv.max_body = 1 << 20;
    srv.max_output = 1 << 20;
    srv.max_conns = 4096;
    srv.header_timeout_ms = 10000;
    srv.shutdown_ms = 10000;
    srv.error_log = stderr;
    pthread_mutex_init(&srv.log_lock, NULL);
    int rc = parse_args(&srv, argc, argv);
    if (rc)
        return rc;
    if (srv.root[0] &&
        (srv.root_fd = open(srv.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return fail("--root %s: not a directory", srv.root);
    if ((rc = load_plugins(&srv)) != 0)
        return rc;
    if (srv.nroutes && (rc = walls_init()) != 0) {
        fprintf(stderr, "walls-httpd: walls_init: %s (%s)\n", walls_strerror(rc),
                walls_last_error());
        return 1;
    }
    status_start();
    if ((rc = make_pools(&srv)) != 0) {
        destroy_pools(&srv, true);
        walls_fini();
        return rc;
    }
    /* Signals are taken by sigwait here; the loop threads block them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv.max_conns = (srv.max_conns + srv.nloops - 1) / srv.nloops;
    if ((rc = httpd_loops_open(&srv)) != 0 || (rc = httpd_loops_start(&srv)) != 0) {
        fprintf(stderr, "walls-httpd: cannot listen on %s:%d: %s\n", srv.host, srv.port,
                strerror(-rc));
        httpd_stop(&srv, 2);
        httpd_loops_stop(&srv);
        destroy_pools(&srv, true);
        walls_fini();
        return 1;
    }
    httpd_log_notice(&srv, "listening on http://%s:%d (%u loops, %u routes%s%s)", srv.host,
                    srv.port, srv.nloops, srv.nroutes, srv.root[0] ? ", root " : "", srv.root);
    for (unsigned i = 0; i < srv.nroutes; i++) {
        char line[512];
        walls_pool_explain(srv.routes[i].pool, line, sizeof line);
        httpd_log_notice(&srv, "route %s -> %s:%s (%s%s): %s", srv.routes[i].prefix,
                        srv.routes[i].plugin, srv.routes[i].function,
                        srv.routes[i].placement_name,
                        srv.routes[i].timeout_ms ? ", time limit" : "", line);
    }
    serve(&srv, &sigs);
    bool at_once = httpd_stopping(&srv) == 2;
    httpd_loops_stop(&srv);
    destroy_pools(&srv, at_once);
    walls_fini();
    httpd_log_notice(&srv, "stopped%s", at_once ? " at once" : "");
    if (srv.access_log)
        fclose(srv.access_log);
    if (srv.root_fd >= 0)
        close(srv.root_fd);
    return 0;
}
