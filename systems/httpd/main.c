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
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"

/* Loads each route's plugin and finds its function. */
static int load_plugins(struct server *srv)
{
    for (unsigned i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        r->dl = dlopen(r->plugin, RTLD_NOW | RTLD_LOCAL);
        if (!r->dl) {
            fprintf(stderr, "walls-httpd: route %s: %s\n", r->prefix, dlerror());
            return 2;
        }
        r->fn = (walls_fn *)dlsym(r->dl, r->function);
        if (!r->fn) {
            fprintf(stderr, "walls-httpd: route %s: %s has no function %s\n", r->prefix,
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
    bool check_only = false;
    int rc = httpd_parse_args(&srv, argc, argv, &check_only);
    if (rc)
        return check_only ? 1 : rc;
    if (srv.root[0] &&
        (srv.root_fd = open(srv.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        httpd_fail("root %s: not a directory", srv.root);
        return check_only ? 1 : 2;
    }
    if ((rc = load_plugins(&srv)) != 0)
        return check_only ? 1 : rc;
    if (check_only) {
        printf("walls-httpd: the configuration is ok: listen %s:%d, %u route%s%s%s\n", srv.host,
               srv.port, srv.nroutes, srv.nroutes == 1 ? "" : "s", srv.root[0] ? ", root " : "",
               srv.root);
        return 0;
    }
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
