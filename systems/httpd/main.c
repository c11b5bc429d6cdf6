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
 * --shutdown-timeout), SIGQUIT at once; SIGHUP reloads the routes (new
 * pools take new requests, the old ones finish theirs and go); SIGUSR1
 * opens the logs again. See docs/httpd.md.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"

/* The plugins loaded at start, which the fork server has mapped. */
static char *start_plugins[HTTPD_ROUTES_MAX];
static unsigned nstart_plugins;

/* Which file each plugin path named when it was first loaded. The dynamic
 * loader hands back the library already loaded under a path, and workers
 * forked from the fork server hold the one it had: a file replaced at its
 * path (a deploy) cannot be loaded beside the old one, and a reload that
 * met it would keep running the old code while saying it had reloaded. */
struct plugin_file {
    char path[PATH_MAX];
    dev_t dev;
    ino_t ino;
};
static struct plugin_file plugin_files[HTTPD_ROUTES_MAX];
static unsigned nplugin_files;

/* Whether path names another file than when it was first loaded. */
static bool plugin_replaced(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false; /* dlopen() says why */
    for (unsigned i = 0; i < nplugin_files; i++)
        if (strcmp(plugin_files[i].path, path) == 0)
            return plugin_files[i].dev != st.st_dev || plugin_files[i].ino != st.st_ino;
    if (nplugin_files < HTTPD_ROUTES_MAX) {
        struct plugin_file *f = &plugin_files[nplugin_files++];
        snprintf(f->path, sizeof f->path, "%s", path);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
    }
    return false;
}

/* Loads each route's plugin and finds its function; a failure names the
 * configuration file's line of the route when it has one. With reloading,
 * a strict route's plugin must be one loaded at start: its workers come
 * from the fork server, which has only those, and cannot open files. */
static int load_plugins(struct server *srv, bool reloading)
{
    int rc = 0;
    for (unsigned i = 0; !rc && i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        if (r->ret_status)
            continue; /* answered by the loops */
        httpd_where = r->where[0] ? r->where : NULL;
        bool known = false;
        for (unsigned k = 0; k < nstart_plugins && !known; k++)
            known = strcmp(start_plugins[k], r->plugin) == 0;
        if (reloading && r->sandbox == WALLS_SANDBOX_STRICT && !known) {
            rc = httpd_fail("route %s: strict, and %s was not loaded at start: its "
                            "sandboxed workers could not load it (restart the server)",
                            r->prefix, r->plugin);
            break;
        }
        if (plugin_replaced(r->plugin)) {
            rc = httpd_fail("route %s: %s was replaced since it was loaded; the old one "
                            "stays loaded, so the new one takes a restart",
                            r->prefix, r->plugin);
            break;
        }
        if (!reloading && !known && nstart_plugins < HTTPD_ROUTES_MAX &&
            !(start_plugins[nstart_plugins++] = strdup(r->plugin)))
            nstart_plugins--; /* no memory: only a strict reload is refused */
        if (!(r->dl = dlopen(r->plugin, RTLD_NOW | RTLD_LOCAL)))
            rc = httpd_fail("route %s: %s", r->prefix, dlerror());
        else if (!(r->fn = (walls_fn *)dlsym(r->dl, r->function)))
            rc = httpd_fail("route %s: %s has no function %s", r->prefix, r->plugin,
                            r->function);
    }
    httpd_where = NULL;
    return rc;
}

static int make_pools(struct server *srv)
{
    for (unsigned i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        if (r->ret_status)
            continue;
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
            httpd_fail("route %s: walls_pool_create: %s (%s)", r->prefix, walls_strerror(rc),
                       walls_last_error());
            return 1;
        }
        r->pool_fd = walls_pool_fd(r->pool);
        if (r->pool_fd < 0) {
            httpd_fail("route %s: walls_pool_fd: %s", r->prefix, walls_strerror(r->pool_fd));
            return 1;
        }
    }
    return 0;
}

/* How destroy_routes treats thread pools. walls_pool_destroy waits for
 * the handlers their threads run, and a handler that overran its limit
 * (answered 504 already) may never return, while the main thread must
 * keep taking signals. */
enum threads_end {
    THREADS_HERE,   /* all destroyed here: nothing runs on them */
    THREADS_APART,  /* those that overran are destroyed by a thread of their own */
    THREADS_LEFT,   /* those that overran are not destroyed: the program is ending,
                     * and their threads end with it */
    THREADS_ALL_LEFT, /* none is destroyed (stopping at once: their handlers are not
                       * waited for) */
};

struct joiner {
    struct server *srv;
    walls_pool *pool;
    unsigned flags;
    char prefix[256];
};

static void *join_pool(void *arg)
{
    struct joiner *j = arg;
    walls_pool_destroy(j->pool, j->flags);
    httpd_log_notice(j->srv, "route %s: its handlers returned; the old pool is gone", j->prefix);
    free(j);
    return NULL;
}

/* Hands pool to a thread that destroys it; here when none can start. */
static void destroy_apart(struct server *srv, const struct route *r, unsigned flags)
{
    httpd_log_notice(srv, "route %s: %s overran its limit on a thread that may still run "
                     "it; its pool goes once it returns", r->prefix, r->function);
    struct joiner *j = calloc(1, sizeof *j);
    pthread_attr_t attr;
    pthread_t t;
    if (j && pthread_attr_init(&attr) == 0) {
        *j = (struct joiner){.srv = srv, .pool = r->pool, .flags = flags};
        snprintf(j->prefix, sizeof j->prefix, "%s", r->prefix);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, join_pool, j);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            return;
    }
    free(j);
    walls_pool_destroy(r->pool, flags);
}

static void destroy_routes(struct server *srv, struct route *routes, unsigned n, bool at_once,
                           enum threads_end threads)
{
    unsigned flags = at_once ? WALLS_CANCEL : 0;
    for (unsigned i = 0; i < n; i++) {
        struct route *r = &routes[i];
        if (!r->pool)
            continue;
        bool overran = r->placement == WALLS_THREADS && httpd_load(&r->overran) > 0;
        if (r->placement == WALLS_THREADS && threads == THREADS_ALL_LEFT) {
            /* ends with the program */
        } else if (overran && threads == THREADS_LEFT) {
            httpd_log_notice(srv, "route %s: not waiting for %s, which overran its limit "
                             "on a thread", r->prefix, r->function);
        } else if (overran && threads == THREADS_APART) {
            destroy_apart(srv, r, flags);
        } else {
            walls_pool_destroy(r->pool, flags);
        }
        r->pool = NULL;
    }
}

/* The parsed routes, with their pools, as the set in force. */
static struct routeset *set_of(const struct server *parsed)
{
    struct routeset *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    memcpy(set->routes, parsed->routes, parsed->nroutes * sizeof parsed->routes[0]);
    set->nroutes = parsed->nroutes;
    return set;
}

/* ---- reloading --------------------------------------------------------------------- */

/* Route sets replaced by a reload, until every loop has turned (none
 * routes by them any more) and their last tasks were answered. */
struct retiring {
    struct routeset *set;
    uint64_t turns[1024];
    bool turned;    /* every loop turned since the swap: none routes by it */
    bool unwatched; /* its pools left the loops' epolls (turns taken again) */
    struct retiring *next;
};

static struct retiring *retiring;
static int saved_argc;
static char **saved_argv;

static void defaults(struct server *srv)
{
    int cpus = walls_cpu_count();
    srv->root_fd = -1;
    srv->workers = srv->nloops = cpus > 0 ? (unsigned)cpus : 1;
    srv->max_header = 8192;
    srv->max_body = 1 << 20;
    srv->max_output = 0; /* --max-body + 64 KiB unless given (httpd_parse_args) */
    srv->max_conns = 4096;
    srv->header_timeout_ms = 10000;
    srv->shutdown_ms = 10000;
}

/* The routes in force as configured, into next: no plugin, pool or count. */
static void same_routes(struct server *srv, struct server *next)
{
    const struct routeset *cur = httpd_routes(srv);
    next->workers = srv->workers;
    next->max_output = srv->max_output;
    next->restart_limit = srv->restart_limit;
    for (unsigned i = 0; i < cur->nroutes; i++) {
        const struct route *from = &cur->routes[i];
        struct route *to = &next->routes[i];
        memcpy(to->prefix, from->prefix, sizeof to->prefix);
        to->prefix_len = from->prefix_len;
        memcpy(to->plugin, from->plugin, sizeof to->plugin);
        memcpy(to->function, from->function, sizeof to->function);
        to->placement_name = from->placement_name;
        to->placement = from->placement;
        to->sandbox = from->sandbox;
        to->timeout_ms = from->timeout_ms;
        to->workers = from->workers;
        to->ret_status = from->ret_status;
        to->ret_len = from->ret_len;
        memcpy(to->ret_text, from->ret_text, sizeof to->ret_text);
        to->pool_fd = -1;
    }
    next->nroutes = cur->nroutes;
}

/* SIGHUP: the command line and the configuration file read again; the
 * routes they give get new pools and take every request from now on; the
 * old routes finish what they have. Other settings take a restart. With
 * renew, the routes in force get new pools the same way (a pool of
 * theirs is broken for good). */
static void reload(struct server *srv, bool renew)
{
    struct server *next = calloc(1, sizeof *next);
    if (!next) {
        httpd_log_error(srv, "reload: no memory; the routes stay as they were");
        return;
    }
    defaults(next);
    int rc = 0;
    if (renew) {
        same_routes(srv, next);
    } else {
        bool check_only = false;
        optind = 0; /* getopt from the start again */
        rc = httpd_parse_args(next, saved_argc, saved_argv, &check_only);
        if (next->access_log)
            fclose(next->access_log);
        if (next->error_log && next->error_log != stderr)
            fclose(next->error_log);
    }
    if (rc == 0)
        rc = load_plugins(next, true);
    if (rc == 0)
        rc = make_pools(next);
    struct routeset *set = rc == 0 ? set_of(next) : NULL;
    if (set && httpd_loops_watch(srv, set, false) != 0) {
        httpd_loops_watch(srv, set, true);
        free(set);
        set = NULL;
    }
    if (!set) {
        destroy_routes(srv, next->routes, next->nroutes, true, THREADS_HERE);
        free(next);
        httpd_log_error(srv, "%s failed; the routes stay as they were",
                        renew ? "making new pools (SIGHUP tries again)" : "reload");
        return;
    }
    free(next);
    struct retiring *old = calloc(1, sizeof *old);
    old->set = httpd_routes(srv);
    httpd_loops_turns(srv, old->turns);
    httpd_store(&srv->active, set);
    old->next = retiring;
    retiring = old;
    httpd_loops_wake(srv); /* each turns, and routes by the new set from then on */
    httpd_log_notice(srv, "%s: %u routes; the %u old ones finish what they have",
                     renew ? "new pools" : "reloaded", set->nroutes, old->set->nroutes);
}

static bool set_idle(const struct routeset *set)
{
    for (unsigned i = 0; i < set->nroutes; i++)
        if (httpd_load(&set->routes[i].outstanding))
            return false;
    return true;
}

/* Retires the old sets that are done; with at_once, all of them, their
 * thread pools as threads says. */
static void retire(struct server *srv, bool at_once, enum threads_end threads)
{
    for (struct retiring **p = &retiring; *p;) {
        struct retiring *r = *p;
        bool turned = httpd_loops_turned(srv, r->turns);
        if (!at_once && !r->turned && turned) {
            r->turned = true;
        } else if (!at_once && r->turned && !r->unwatched && set_idle(r->set) && srv->loops) {
            /* Out of the epolls; a loop may still hold an event of one of
             * its pools from before: freed once every loop turned again. */
            httpd_loops_watch(srv, r->set, true);
            httpd_loops_turns(srv, r->turns);
            httpd_loops_wake(srv);
            r->unwatched = true;
        }
        if (!at_once && !(r->unwatched && turned && httpd_loops_turned(srv, r->turns))) {
            p = &r->next;
            continue;
        }
        if (srv->loops && !r->unwatched)
            httpd_loops_watch(srv, r->set, true);
        destroy_routes(srv, r->set->routes, r->set->nroutes, at_once,
                       at_once ? threads : THREADS_APART);
        *p = r->next;
        free(r->set);
        free(r);
        if (!at_once)
            httpd_log_notice(srv, "the routes before the reload are retired");
    }
}

/* Waits for signals: SIGHUP reloads; the stop signals return once the
 * loops are done. */
static void serve(struct server *srv, const sigset_t *sigs)
{
    for (;;) {
        struct timespec tick = {0, 50000000};
        int sig = sigtimedwait(sigs, NULL, &tick);
        retire(srv, false, THREADS_APART);
        if (sig == SIGHUP)
            reload(srv, false);
        if (sig == SIGUSR1)
            httpd_logs_reopen(srv);
        else if (httpd_load(&srv->renew) && !httpd_stopping(srv)) {
            httpd_store(&srv->renew, false);
            reload(srv, true);
        }
        if (sig == SIGQUIT) {
            /* At once: connections close, running handlers are not
             * waited for. */
            httpd_stop(srv, 2);
            httpd_loops_wake(srv);
            return;
        }
        if (sig == SIGTERM || sig == SIGINT)
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

/* Gives up root for user (with its groups), for good. 0, or 2 with the
 * reason on standard error. */
static int become_user(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        httpd_fail("user %s: no such user", user);
        return 2;
    }
    if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid)
        return 0; /* that user already */
    if (geteuid() != 0) {
        httpd_fail("--user %s: only root can become another user", user);
        return 2;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        httpd_fail("--user %s: %s", user, strerror(errno));
        return 2;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        httpd_fail("--user %s: root could be taken back", user);
        return 2;
    }
    /* The change of user made this process undumpable, which would keep
     * it from taking the sandbox's descriptor from its strict workers
     * (pidfd_getfd): root is gone for good, so it may be dumpable again,
     * as a server started by that user is. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) {
        httpd_fail("--user %s: prctl(PR_SET_DUMPABLE): %s", user, strerror(errno));
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct server srv;
    defaults(&srv);
    srv.error_log = stderr;
    saved_argc = argc;
    saved_argv = argv;
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
    if ((rc = load_plugins(&srv, false)) != 0)
        return check_only ? 1 : rc;
    if (check_only) {
        printf("walls-httpd: the configuration is ok: listen %s:%d, %u route%s%s%s\n", srv.host,
               srv.port, srv.nroutes, srv.nroutes == 1 ? "" : "s", srv.root[0] ? ", root " : "",
               srv.root);
        return 0;
    }
    /* Listening first, while a privileged port may still be bound; then,
     * with --user, this process gives up root before the fork server is
     * forked from it, so that the loops, the fork server and every worker
     * run as that user. */
    if ((rc = httpd_loops_bind(&srv)) != 0) {
        fprintf(stderr, "walls-httpd: cannot listen on %s:%d: %s\n", srv.host, srv.port,
                strerror(-rc));
        return 1;
    }
    if (srv.user[0] && (rc = become_user(srv.user)) != 0)
        return rc;
    bool pools = false; /* a return route needs none */
    for (unsigned i = 0; i < srv.nroutes; i++)
        pools |= srv.routes[i].ret_status == 0;
    if (pools && (rc = walls_init()) != 0) {
        fprintf(stderr, "walls-httpd: walls_init: %s (%s)\n", walls_strerror(rc),
                walls_last_error());
        return 1;
    }
    status_start();
    if ((rc = make_pools(&srv)) != 0 || !(srv.active = set_of(&srv))) {
        destroy_routes(&srv, srv.routes, srv.nroutes, true, THREADS_HERE);
        walls_fini();
        return rc ? rc : 1;
    }
    /* Signals are taken by sigwait here; the loop threads block them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = httpd_loops_open(&srv)) != 0 || (rc = httpd_loops_start(&srv)) != 0) {
        fprintf(stderr, "walls-httpd: cannot listen on %s:%d: %s\n", srv.host, srv.port,
                strerror(-rc));
        httpd_stop(&srv, 2);
        httpd_loops_stop(&srv);
        destroy_routes(&srv, srv.active->routes, srv.active->nroutes, true, THREADS_HERE);
        walls_fini();
        return 1;
    }
    httpd_running = &srv;
    httpd_log_notice(&srv, "listening on http://%s:%d (%u loops, %u routes%s%s)", srv.host,
                    srv.port, srv.nloops, srv.nroutes, srv.root[0] ? ", root " : "", srv.root);
    for (unsigned i = 0; i < srv.nroutes; i++) {
        char line[512];
        if (srv.routes[i].ret_status) {
            httpd_log_notice(&srv, "route %s -> %s (the loops answer it)", srv.routes[i].prefix,
                             srv.routes[i].function);
            continue;
        }
        walls_pool_explain(srv.routes[i].pool, line, sizeof line);
        httpd_log_notice(&srv, "route %s -> %s:%s (%s%s): %s", srv.routes[i].prefix,
                        srv.routes[i].plugin, srv.routes[i].function,
                        srv.routes[i].placement_name,
                        srv.routes[i].timeout_ms ? ", time limit" : "", line);
    }
    serve(&srv, &sigs);
    bool at_once = httpd_stopping(&srv) == 2;
    httpd_loops_stop(&srv);
    /* Thread handlers cannot be stopped. Stopping at once, none is waited
     * for: their pools are left to end with the program (process pools
     * are destroyed, their workers killed). Gracefully, every response
     * is out by now: only a handler that overran its limit (answered 504)
     * may still run, and is not waited for either. */
    enum threads_end threads = at_once ? THREADS_ALL_LEFT : THREADS_LEFT;
    retire(&srv, true, threads);
    destroy_routes(&srv, srv.active->routes, srv.active->nroutes, at_once, threads);
    free(srv.active);
    walls_fini();
    httpd_log_notice(&srv, "stopped%s", at_once ? " at once" : "");
    if (srv.access_log)
        fclose(srv.access_log);
    if (srv.root_fd >= 0)
        close(srv.root_fd);
    return 0;
}
