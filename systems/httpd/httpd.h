/*
 * httpd.h - walls-httpd's server and routes, shared by its parts: main.c
 * (the command line, plugins, pools, signals), loop.c (the event loops),
 * conn.c (a connection: reading, parsing, writing; conn.h), handler.c (the
 * routes' handlers), static.c (static files), http.c (reason phrases and
 * dates) and log.c (the error and access logs).
 *
 * Each loop thread owns its listening socket (SO_REUSEPORT) and the
 * connections it accepted; nothing of a connection is touched by another
 * thread. The routes' pools are shared: every loop watches every pool's
 * descriptor (EPOLLEXCLUSIVE, so one loop wakes per completion), and a loop
 * that collects a task of another loop's connection hands it over through
 * that loop's inbox.
 */
#ifndef WALLS_HTTPD_INTERNAL_H
#define WALLS_HTTPD_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <http_parser.h>
#include <walls.h>

#define HTTPD_ROUTES_MAX 64
#define HTTPD_LAT_BUCKETS 128 /* latency histogram: 4 buckets per power of two of us */
#define HTTPD_NAME "walls-httpd"
#define HTTPD_RETURN_MAX 2048 /* a fixed response's text (return), bytes */

struct route {
    char prefix[256];
    size_t prefix_len;
    char where[160]; /* "FILE:LINE" of a route from a configuration file, else "" */
    char plugin[PATH_MAX];
    char function[128];
    void *dl;
    walls_fn *fn;
    const char *placement_name; /* threads, processes, hybrid, strict */
    enum walls_placement placement;
    unsigned sandbox;
    int64_t timeout_ms; /* 0: none */
    unsigned workers;
    /* A fixed response, answered by the loops themselves (nginx's return):
     * no plugin, no pool. For a redirect (301, 302, 303, 307, 308) the text
     * is its Location. */
    int ret_status;       /* 0: the route has a handler */
    size_t ret_len;
    char ret_text[HTTPD_RETURN_MAX];
    walls_pool *pool;
    int pool_fd;
    int64_t broken_ms;  /* [atomic] when its pool was found broken; 0: it is not */
    /* Counted by the loops, atomically. */
    uint64_t requests;
    uint64_t by_class[6]; /* 1xx..5xx by first digit; [0] unused */
    uint64_t latency[HTTPD_LAT_BUCKETS]; /* request complete to response sent (status.c) */
    uint64_t outstanding; /* [atomic] connections whose request it took and that have
                           * not sent its response yet (a reload waits for 0) */
    uint64_t overran;     /* [atomic] threads placement: handlers that overran their
                           * limit (their threads may run them still) */
    int lost;             /* [atomic] its pool is broken for good (its fork server is
                           * gone): new pools are on their way */
};

/* The routes in force: replaced whole by a reload, while connections that
 * started under the old ones finish with them. */
struct routeset {
    unsigned nroutes;
    struct route routes[HTTPD_ROUTES_MAX];
};

struct server {
    struct route routes[HTTPD_ROUTES_MAX]; /* as parsed (options.c, config.c) */
    unsigned nroutes;
    struct routeset *active; /* [atomic] what the loops route by (httpd_routes) */
    char root[PATH_MAX];
    int root_fd;            /* -1: no static files */
    char host[64];
    int port;               /* the bound one once listening */
    bool listening;         /* an address was given */
    char user[64];          /* --user: who the server runs as once it listens ("": as started) */
    unsigned nloops;
    struct loop *loops;
    size_t max_header;      /* request line and headers, bytes */
    size_t max_body;
    int header_timeout_ms;  /* 408 for a client slower than this */
    unsigned max_conns;     /* open connections of all loops together */
    size_t max_output;      /* a handler's response at most */
    unsigned workers;       /* default per route */
    int shutdown_ms;        /* graceful stop bound */
    unsigned restart_limit; /* the pools' crash-loop limit (0: walls' default) */
    FILE *access_log;       /* NULL: none; swapped under log_lock (SIGUSR1) */
    FILE *error_log;
    char access_log_path[PATH_MAX]; /* "": none given (SIGUSR1 opens them again) */
    char error_log_path[PATH_MAX];
    pthread_mutex_t log_lock;
    int stopping;           /* [atomic] 0, or 1: graceful, 2: at once (httpd_stopping) */
    bool renew;             /* [atomic] a pool was lost: the main thread makes the routes
                             * in force new pools */
};

/* Words shared between threads. Counters (statistics, connections) are
 * relaxed: nothing is read through them. Loads and stores that hand over
 * state are acquire and release: what was written before the store is seen
 * after the load that sees it. */
#define httpd_count(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define httpd_peek(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define httpd_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define httpd_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define httpd_release_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#define httpd_release_sub(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_RELEASE)
#define httpd_cas(p, expected, v)                                                               \
    __atomic_compare_exchange_n((p), (expected), (v), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/* How the server stops: 0 (it does not), 1 (gracefully), 2 (at once). */
static inline int httpd_stopping(const struct server *srv)
{
    return httpd_load(&srv->stopping);
}

static inline void httpd_stop(struct server *srv, int how)
{
    httpd_store(&srv->stopping, how);
}

/* The routes in force now. */
static inline struct routeset *httpd_routes(const struct server *srv)
{
    return httpd_load(&srv->active);
}

/* ---- options.c, config.c: the settings ---- */

extern const char *httpd_where;      /* "FILE:LINE" while a configuration file is read */
extern struct server *httpd_running; /* set once serving */
/* Prints "walls-httpd: [where: ]message" to standard error, or once the
 * server runs, to its error log; returns 2. */
int httpd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void httpd_usage(FILE *to);
/* Applies one setting, by its option name without dashes ("max-body"). 0, or
 * 2 with the reason printed. */
int httpd_option(struct server *srv, const char *name, const char *value);
/* The command line, with -c FILE read where it stands; *check_only for -t. */
int httpd_parse_args(struct server *srv, int argc, char **argv, bool *check_only);
/* Reads a configuration file (config.c). 0, or 2 with FILE:LINE: reason. */
int httpd_config_load(struct server *srv, const char *path);
/* A route of prefix, not yet counted (srv->nroutes++ once complete). */
struct route *httpd_route_new(struct server *srv, const char *prefix, size_t len);
int httpd_route_handler(struct route *r, const char *plugin, const char *function);
int httpd_route_placement(struct route *r, const char *placement);
int httpd_route_timeout(struct route *r, const char *ms);
int httpd_route_workers(struct route *r, const char *n);
/* Makes r answer STATUS with TEXT ("" for none), whose \n, \r, \t, \"
 * and \\ stand for their characters. */
int httpd_route_return(struct route *r, const char *status, const char *text);

/* ---- handler.c ---- */

/* The route whose prefix is the longest one path starts with, or NULL. */
struct route *httpd_route_for(struct server *srv, const char *path, size_t len);

/* ---- loop.c ---- */

struct loop;
/* Creates the loops' sockets and epolls (binding srv->port if 0); 0 or -errno. */
/* Makes the loops and their listening sockets, once: before the server
 * gives up root (--user), so that a privileged port can be bound. 0 or
 * -errno. */
int httpd_loops_bind(struct server *srv);
int httpd_loops_open(struct server *srv);
/* Runs them on threads; 0 or -errno. */
int httpd_loops_start(struct server *srv);
/* Wakes every loop to look at srv->stopping. */
void httpd_loops_wake(struct server *srv);
/* Adds (or, remove: takes away) the pools of set to every loop's epoll. */
int httpd_loops_watch(struct server *srv, struct routeset *set, bool remove);
/* How many turns the loops have taken in all; one that has left counts
 * as turning for ever. */
void httpd_loops_turns(struct server *srv, uint64_t *turns);
/* Whether every loop turned since turns were taken. */
bool httpd_loops_turned(struct server *srv, const uint64_t *turns);
/* Whether every loop has left (graceful stop: its connections are done). */
bool httpd_loops_done(struct server *srv);
/* Wakes the loops, joins them, and frees what they held. */
void httpd_loops_stop(struct server *srv);

/* ---- log.c ---- */

void httpd_log_error(struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void httpd_log_notice(struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as a quoted log field writes it, for "%s" in an error line: quotes,
 * backslashes, control and non-ASCII bytes as \xHH, cut with "..." to fit
 * len bytes (at least 8). Returns buf. */
const char *httpd_log_escape(const char *s, char *buf, size_t len);
/* SIGUSR1: the access and error logs given by path opened again (after
 * they were moved away), each swapped in whole under the log lock. */
void httpd_logs_reopen(struct server *srv);
/* A log file opened for appending, never waiting to open it (a FIFO with
 * no reader is refused, ENXIO, rather than wait for one); NULL and errno. */
FILE *httpd_log_open(const char *path);
/* One line of the combined format. */
void httpd_log_access(struct server *srv, const char *peer, const char *request_line,
                      int status, uint64_t bytes, const char *referer, const char *agent);

/* ---- http.c ---- */

/* 301, 302, 303, 307, 308: a return's text is the Location. */
bool httpd_is_redirect(int status);
/* The reason phrase of an HTTP status. */
const char *httpd_reason(int status);
/* Writes an RFC 7231 date of t into buf (at least 30 bytes). */
void httpd_date(time_t t, char *buf, size_t len);
/* Parses an RFC 7231 date (or the two obsolete forms); -1 if it is none. */
time_t httpd_parse_date(const char *s);

/* ---- static.c ---- */

struct stat;
/* The Content-Type for a file name's extension. */
const char *httpd_mime_type(const char *path);
/* Opens the file a normalized request path (httpd_normalize_path) names
 * under the root: 200 with *fd, *st and *type (its Content-Type, from the
 * name of the file served), or the status to answer (403 outside the root
 * or not a regular file, 404, 301 a directory named without its trailing
 * slash, 503 out of descriptors or memory). */
int httpd_static_open(struct server *srv, const char *path, int *fd, struct stat *st,
                      const char **type);
/* The path part of url (up to '?' or '#') percent-decoded, with "//",
 * "/./" and "/x/../" taken out, into out (room for len + 2): 0, or -1
 * when malformed or above the root. Routes are matched on this. */
int httpd_normalize_path(const char *url, size_t len, char *out);

#endif
