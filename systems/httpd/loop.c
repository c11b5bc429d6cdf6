/*
 * loop.c - the event loops: accepting connections, collecting the tasks
 * of the routes' pools, handing them to the loop that owns their
 * connection, deadlines, and stopping.
 *
 * Each loop has its own listening socket on the same address
 * (SO_REUSEPORT) and its own epoll. Every loop watches every pool's
 * descriptor with EPOLLEXCLUSIVE, so a completion wakes one loop, which
 * collects what finished; a task of another loop's connection goes to that
 * loop's inbox. Every sweep (200 ms) each loop also collects, so nothing
 * waits on a loop that was woken while it was leaving.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

/* Open connections of all loops: --max-conns bounds their sum. */
static unsigned conns_open(const struct server *srv)
{
    unsigned n = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        n += httpd_peek(&srv->loops[i].nconns);
    return n;
}

/* accept4 failed for want of descriptors or memory: the pending
 * connection stays queued and the level-triggered listening socket would
 * wake this loop at once, forever. It stops watching the socket until the
 * next sweep (a connection may have closed by then), and says so once a
 * second. */
static void pause_accepting(struct loop *l, int err)
{
    epoll_ctl(l->ep, EPOLL_CTL_DEL, l->listen_fd, NULL);
    l->accept_paused = true;
    int64_t now = now_ms();
    if (now - l->accept_logged_ms >= 1000) {
        l->accept_logged_ms = now;
        httpd_log_error(l->srv, "accept: %s; not accepting for %d ms", strerror(err), SWEEP_MS);
    }
}

/* Puts the listening socket in the loop's epoll set: 0 or -1. */
static int watch_listen(struct loop *l)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTEN};
    return epoll_ctl(l->ep, EPOLL_CTL_ADD, l->listen_fd, &ev);
}

static void resume_accepting(struct loop *l)
{
    if (l->listen_fd >= 0 && watch_listen(l) == 0)
        l->accept_paused = false;
}

static void accept_all(struct loop *l)
{
    struct server *srv = l->srv;
    for (;;) {
        struct sockaddr_in sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(l->listen_fd, (struct sockaddr *)&sa, &salen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(l, errno);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char peer[64];
        inet_ntop(AF_INET, &sa.sin_addr, peer, sizeof peer);
        struct conn *c = conn_open(l, fd, peer);
        if (c && conns_open(srv) > srv->max_conns) {
            /* Over the cap: told so, and closed. */
            c->keep_alive = false;
            conn_respond_error(c, 503);
            conn_drive(c);
        }
    }
}

/* Hands tasks of another loop's connections to that loop: one lock for
 * all of them, and a write of its wake descriptor only when its inbox was
 * empty. A non-empty inbox has a wake pending, or its owner is draining it
 * and takes everything up to the moment it finds it empty, under the same
 * lock; waking it once per task made half of all requests on two loops
 * cost a write and a wake-up. */
static void hand_over(struct loop *l, struct loop *owner, walls_task **tasks, size_t n)
{
    pthread_mutex_lock(&owner->inbox_lock);
    bool was_empty = owner->inbox_len == 0;
    if (owner->inbox_cap - owner->inbox_len < n) {
        size_t cap = owner->inbox_cap ? owner->inbox_cap : 64;
        while (cap - owner->inbox_len < n)
            cap *= 2;
        walls_task **grown = realloc(owner->inbox, cap * sizeof *grown);
        if (!grown) {
            /* Cannot hand them over: the owner never hears, so those
             * connections time out with their clients. */
            pthread_mutex_unlock(&owner->inbox_lock);
            httpd_log_error(l->srv, "out of memory handing %zu responses over", n);
            return;
        }
        owner->inbox = grown;
        owner->inbox_cap = cap;
    }
    memcpy(owner->inbox + owner->inbox_len, tasks, n * sizeof *tasks);
    owner->inbox_len += n;
    pthread_mutex_unlock(&owner->inbox_lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t rc = write(owner->wake_fd, &one, sizeof one);
        (void)rc;
    }
}

/* Tasks collected by this loop: its own connections' are answered here,
 * the others' handed to their loops, each loop's in one go. */
/* Tasks a collect takes at a time. */
#define COLLECT_MAX 64

static void finish_all(struct loop *l, walls_task **tasks, size_t n)
{
    size_t foreign = 0;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = walls_task_user(tasks[i]);
        if (!c)
            walls_task_free(tasks[i]);
        else if (c->loop == l)
            handler_done(c, tasks[i]);
        else
            tasks[foreign++] = tasks[i];
    }
    while (foreign > 0) {
        struct loop *owner = ((struct conn *)walls_task_user(tasks[0]))->loop;
        size_t same = 0, rest = 0;
        walls_task *theirs[COLLECT_MAX];
        for (size_t i = 0; i < foreign; i++) {
            if (((struct conn *)walls_task_user(tasks[i]))->loop == owner)
                theirs[same++] = tasks[i];
            else
                tasks[rest++] = tasks[i];
        }
        hand_over(l, owner, theirs, same);
        foreign = rest;
    }
}

static void collect(struct loop *l, struct route *r)
{
    walls_task *tasks[COLLECT_MAX];
    size_t n;
    while (walls_pool_collect(r->pool, tasks, COLLECT_MAX, &n) == 0 && n > 0) {
        finish_all(l, tasks, n);
        if (n < COLLECT_MAX)
            break;
    }
}

static void drain_inbox(struct loop *l)
{
    uint64_t v;
    ssize_t rc = read(l->wake_fd, &v, sizeof v);
    (void)rc;
    for (;;) {
        walls_task *tasks[COLLECT_MAX];
        size_t n = 0;
        pthread_mutex_lock(&l->inbox_lock);
        while (n < COLLECT_MAX && l->inbox_len > 0)
            tasks[n++] = l->inbox[--l->inbox_len];
        pthread_mutex_unlock(&l->inbox_lock);
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++)
            handler_done(walls_task_user(tasks[i]), tasks[i]);
    }
}

static void sweep(struct loop *l, int64_t now)
{
    struct server *srv = l->srv;
    if (l->accept_paused && !l->draining)
        resume_accepting(l);
    for (struct conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->fd < 0 || c->dead)
            continue;
        bool idle = !c->got && c->in.len == c->in_off;
        if (c->state == READING && c->deadline_ms && now >= c->deadline_ms) {
            if (idle) {
                conn_close(c); /* an idle keep-alive connection: just closed */
                continue;
            }
            c->keep_alive = false;
            conn_respond_error(c, 408);
            conn_drive(c);
            continue;
        }
        /* Stopping: idle connections go; busy ones when their response is out. */
        if (httpd_stopping(srv) && c->state == READING && idle)
            conn_close(c);
        /* A client that stopped taking its response, or one that a
         * lingering close waited for long enough (or the server stops). */
        else if (c->state == WRITING && c->deadline_ms && now >= c->deadline_ms &&
                 !conn_still_taking(c))
            conn_stalled(c); /* logged with what it took */
        else if (c->state == LINGERING && c->deadline_ms && now >= c->deadline_ms)
            conn_close(c);
        else if (c->state == LINGERING && httpd_stopping(srv))
            conn_close(c);
    }
    struct routeset *set = httpd_routes(srv);
    for (unsigned k = 0; k < set->nroutes; k++) {
        struct route *r = &set->routes[k];
        if (!r->pool)
            continue;
        /* A completion another loop was woken for but left (it was
         * stopping): looked for here too, so it waits a sweep at most. */
        collect(l, r);
        /* A broken pool is given another chance after a second. */
        int64_t broken = httpd_load(&r->broken_ms);
        if (broken && now - broken >= 1000 && !httpd_load(&r->lost) &&
            httpd_cas(&r->broken_ms, &broken, 0)) {
            int rc = walls_pool_reset(r->pool);
            if (rc == -ECHILD) {
                /* Broken for good: its fork server is gone. The main
                 * thread gives the routes new pools, as a reload does;
                 * until then the route stays broken (503, said once). */
                int no = 0;
                httpd_store(&r->broken_ms, broken);
                if (httpd_cas(&r->lost, &no, 1)) {
                    /* The call's own reason, not the errno's general one. */
                    httpd_log_error(srv, "route %s: the pool cannot be reset: %s; making "
                                    "new pools", r->prefix, walls_last_error());
                    httpd_store(&srv->renew, true);
                }
                continue;
            }
            httpd_log_notice(srv, "route %s: pool reset%s%s", r->prefix, rc ? ": " : "",
                             rc ? walls_last_error() : "");
        }
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct server *srv = l->srv;
    int64_t next_sweep = now_ms() + SWEEP_MS;
    for (;;) {
        if (httpd_stopping(srv) == 2)
            break;
        if (httpd_stopping(srv) && !l->draining) {
            l->draining = true;
            epoll_ctl(l->ep, EPOLL_CTL_DEL, l->listen_fd, NULL);
            close(l->listen_fd);
            l->listen_fd = -1;
            sweep(l, now_ms());
        }
        if (l->draining && !l->conns)
            break;
        struct epoll_event evs[64];
        int n = epoll_wait(l->ep, evs, 64, SWEEP_MS);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_LISTEN) {
                accept_all(l);
            } else if (tag == TAG_WAKE) {
                drain_inbox(l);
            } else if (tag & TAG_ROUTE) {
                collect(l, (struct route *)(uintptr_t)(tag & ~(uint64_t)TAG_ROUTE));
            } else {
                struct conn *c = evs[i].data.ptr;
                if (c->fd >= 0 && !c->dead) {
                    c->drained = false;
                    /* The peer's close is reported once, maybe with the
                     * last bytes: reads go on until they see it. */
                    if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                        c->peer_closed = true;
                    conn_drive(c);
                    /* Gone while its request waits for a worker (the
                     * close may have come with the request's last bytes):
                     * the request is dropped, as nginx drops one whose
                     * client aborts; a handler already running is left
                     * to finish, no worker killed for it. */
                    if (c->peer_closed && !c->dead && c->state == WAITING && c->task &&
                        !c->client_left) {
                        c->client_left = true;
                        walls_cancel_ex(c->task, WALLS_CANCEL_QUEUED);
                    }
                }
            }
        }
        int64_t now = now_ms();
        if (now >= next_sweep) {
            sweep(l, now);
            next_sweep = now + SWEEP_MS;
        }
        conn_reap(l);
        /* Release: this turn's use of the routes is over before it counts. */
        httpd_release_add(&l->turns, 1);
    }
    /* At once: connections go; tasks still running end with their pools
     * (what is left is freed by httpd_loops_stop). */
    conn_reap(l);
    for (struct conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->fd >= 0) {
            epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        if (c->state == WAITING)
            c->peer_gone = true;
        else
            conn_free(c);
    }
    httpd_store(&l->finished, true);
    return NULL;
}

/* ---- setting up -------------------------------------------------------------------------- */

/* SO_REUSEPORT, which gives each loop a socket of its own on the one
 * port, would also let a second server started on a port in use share it
 * (and its clients) with the first. A plain bind first says whether
 * anyone listens there: -EADDRINUSE, as the first bind of any server. */
static int port_free(const struct server *srv)
{
    if (srv->port == 0)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    int rc = 0;
    if (inet_pton(AF_INET, srv->host, &sa.sin_addr) != 1)
        rc = -EINVAL;
    else if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int listen_on(struct server *srv, int *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    if (inet_pton(AF_INET, srv->host, &sa.sin_addr) != 1) {
        close(fd);
        return -EINVAL;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (srv->port == 0) {
        socklen_t len = sizeof sa;
        getsockname(fd, (struct sockaddr *)&sa, &len);
        srv->port = ntohs(sa.sin_port);
    }
    *out = fd;
    return 0;
}

int httpd_loops_bind(struct server *srv)
{
    if (srv->loops)
        return 0;
    srv->loops = calloc(srv->nloops, sizeof *srv->loops);
    if (!srv->loops)
        return -ENOMEM;
    /* All of them first: a failure below leaves nothing that reads as
     * descriptor 0 to the clean-up. */
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *l = &srv->loops[i];
        l->srv = srv;
        l->index = i;
        l->listen_fd = l->wake_fd = l->ep = -1;
        pthread_mutex_init(&l->inbox_lock, NULL);
    }
    for (unsigned i = 0; i < srv->nloops; i++) {
        int rc = i == 0 ? port_free(srv) : 0;
        if (rc || (rc = listen_on(srv, &srv->loops[i].listen_fd)) != 0)
            return rc;
    }
    return 0;
}

int httpd_loops_open(struct server *srv)
{
    int rc = httpd_loops_bind(srv);
    if (rc)
        return rc;
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *l = &srv->loops[i];
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->ep < 0 || l->wake_fd < 0)
            return -errno;
        struct epoll_event wake = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
        if (watch_listen(l) != 0 ||
            epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &wake) != 0)
            return -errno;
    }
    return httpd_loops_watch(srv, httpd_routes(srv), false);
}

int httpd_loops_watch(struct server *srv, struct routeset *set, bool remove)
{
    for (unsigned i = 0; i < srv->nloops; i++)
        for (unsigned k = 0; k < set->nroutes; k++) {
            struct route *r = &set->routes[k];
            if (!r->pool)
                continue; /* a return: no pool */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                                     .data.u64 = (uint64_t)(uintptr_t)r | TAG_ROUTE};
            if (epoll_ctl(srv->loops[i].ep, remove ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, r->pool_fd,
                          &ev) != 0 && !remove)
                return -errno;
        }
    return 0;
}

void httpd_loops_turns(struct server *srv, uint64_t *turns)
{
    for (unsigned i = 0; srv->loops && i < srv->nloops; i++)
        turns[i] = httpd_load(&srv->loops[i].turns);
}

bool httpd_loops_turned(struct server *srv, const uint64_t *turns)
{
    /* Once the loops are stopped (and freed), every one has turned. */
    for (unsigned i = 0; srv->loops && i < srv->nloops; i++)
        if (httpd_load(&srv->loops[i].turns) == turns[i] &&
            !httpd_load(&srv->loops[i].finished))
            return false;
    return true;
}

int httpd_loops_start(struct server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        int rc = pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i]);
        if (rc)
            return -rc;
        srv->loops[i].started = true;
    }
    return 0;
}

void httpd_loops_wake(struct server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        uint64_t one = 1;
        ssize_t rc = write(srv->loops[i].wake_fd, &one, sizeof one);
        (void)rc;
    }
}

bool httpd_loops_done(struct server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++)
        if (srv->loops[i].started && !httpd_load(&srv->loops[i].finished))
            return false;
    return true;
}

void httpd_loops_stop(struct server *srv)
{
    if (!srv->loops)
        return;
    httpd_loops_wake(srv);
    for (unsigned i = 0; i < srv->nloops; i++)
        if (srv->loops[i].started)
            pthread_join(srv->loops[i].thread, NULL);
    /* What is left: connections whose tasks still run, and tasks handed
     * to a loop that had stopped. Their results are dropped. */
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *l = &srv->loops[i];
        conn_reap(l);
        while (l->conns) {
            if (l->conns->task)
                walls_task_free(l->conns->task);
            conn_free(l->conns);
        }
        for (size_t k = 0; k < l->inbox_len; k++)
            walls_task_free(l->inbox[k]);
        l->inbox_len = 0;
    }
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *l = &srv->loops[i];
        if (l->listen_fd >= 0)
            close(l->listen_fd);
        if (l->wake_fd >= 0)
            close(l->wake_fd);
        if (l->ep >= 0)
            close(l->ep);
        free(l->inbox);
        pthread_mutex_destroy(&l->inbox_lock);
    }
    free(srv->loops);
    srv->loops = NULL;
}
