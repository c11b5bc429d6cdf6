/*
 * proc_backend.c - the host side of worker processes: the backend's
 * operations for process and hybrid placement.
 *
 * Each worker process gets a memfd holding one mailbox per thread it runs
 * (its lanes: one in process placement, several in hybrid placement) and
 * an eventfd doorbell, made once and reused by every replacement. The fork
 * server forks the workers and reaps them; the pool talks to it over its
 * own socket, so the fork server kills the pool's workers the moment that
 * socket closes, however the host went away.
 *
 * A process's life is proc_state.c's; the thread that watches the
 * descriptors is supervisor.c's. This file starts and stops the whole, and
 * answers for the task functions: which module a function lives in, so
 * that a worker process finds it (by its path, and its offset there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"
#include "module.h"
#include "proc.h"

/* ---- task functions ----------------------------------------------------------------- */

/* Which module fn lives in, and where in it (module.c). Pool lock held. */
static int procs_locate(struct walls__pool *pool, walls_fn *fn, uint16_t *module,
                        uint64_t *offset)
{
    return walls__module_locate(pool, walls__procs_of(pool)->fn_cache, fn, module, offset);
}

/* ---- mailboxes ------------------------------------------------------------------------ */

/* The process's two I/O memfds (io.c): every lane has depth windows in
 * each, of WALLS_IO_MAX in the input one and of max_output in the output
 * one. Both are sparse: memory is taken only for what is written. The
 * worker gets a read-only descriptor of the input one. Returns 0 or
 * -errno. */
static int make_io(struct walls__pool *pool, struct walls__proc *proc)
{
    unsigned depth = walls__io_depth(pool);
    uint64_t in_space = (uint64_t)depth * WALLS__IO_IN_WINDOW;
    uint64_t out_space = (uint64_t)depth * pool->out_window;
    proc->io_in_fd = memfd_create("walls-io-in", MFD_CLOEXEC);
    proc->io_out_fd = memfd_create("walls-io-out", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* The worker writes the output one: sealed, it cannot shrink it under
     * the host's mapping (a read there would fault) nor grow it. */
    if (proc->io_in_fd < 0 || proc->io_out_fd < 0 ||
        ftruncate(proc->io_in_fd, (off_t)(in_space * proc->nlanes)) != 0 ||
        ftruncate(proc->io_out_fd, (off_t)(out_space * proc->nlanes)) != 0 ||
        fcntl(proc->io_out_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return -errno;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", proc->io_in_fd);
    proc->io_in_ro = open(path, O_RDONLY | O_CLOEXEC);
    if (proc->io_in_ro < 0)
        return -errno;
    for (unsigned i = 0; i < proc->nlanes; i++) {
        struct walls__lane *lane = &proc->lanes[i];
        lane->io_in_fd = proc->io_in_fd;
        lane->io_out_fd = proc->io_out_fd;
        lane->io_in_base = in_space * i;
        lane->io_out_base = out_space * i;
        lane->depth = depth;
        int rc = walls__io_view_map(lane);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int make_mailboxes(struct walls__pool *pool, struct walls__proc *proc)
{
    size_t size = (size_t)proc->nlanes * WALLS__MAILBOX_SIZE;
    proc->memfd = memfd_create("walls-mailbox", MFD_CLOEXEC);
    if (proc->memfd < 0)
        return -errno;
    if (ftruncate(proc->memfd, (off_t)size) != 0)
        return -errno;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, proc->memfd, 0);
    if (map == MAP_FAILED)
        return -errno;
    proc->map = map;
    memset(map, 0, size); /* touch every page now, not per task */
    for (unsigned i = 0; i < proc->nlanes; i++) {
        struct walls__lane *lane = &proc->lanes[i];
        lane->mb = (struct walls__mailbox *)((char *)map + (size_t)i * WALLS__MAILBOX_SIZE);
        walls__engine_lane_reset(lane);
    }
    proc->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (proc->doorbell < 0)
        return -errno;
    int rc = make_io(pool, proc);
    if (rc)
        return rc;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_STAGED) {
        proc->staging_fd = memfd_create("walls-staging", MFD_CLOEXEC);
        if (proc->staging_fd < 0 || ftruncate(proc->staging_fd, (off_t)pool->arena.size) != 0)
            return -errno;
        for (unsigned i = 0; i < proc->nlanes; i++)
            proc->lanes[i].staging_fd = proc->staging_fd;
    }
    return walls__procs_watch(pool, proc->doorbell, WALLS__TAG_DOORBELL + proc->index);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Frees the backend state: every process's mailboxes and descriptors.
 * Under the lock: other threads' calls on a pool being destroyed (stats,
 * waits, collects) look at the lanes until it is dead. */
static void close_all(struct walls__pool *pool)
{
    walls__pool_lock(pool);
    struct walls__procs *ps = walls__procs_of(pool);
    for (unsigned i = 0; ps->procs && i < pool->nprocs; i++) {
        struct walls__proc *proc = &ps->procs[i];
        if (proc->map)
            munmap(proc->map, (size_t)proc->nlanes * WALLS__MAILBOX_SIZE);
        proc->map = NULL;
        for (unsigned k = 0; k < proc->nlanes; k++) {
            walls__io_view_unmap(&proc->lanes[k]);
            proc->lanes[k].mb = NULL;
            proc->lanes[k].live = proc->lanes[k].open = false;
            proc->lanes[k].staging_fd = -1;
            proc->lanes[k].io_in_fd = proc->lanes[k].io_out_fd = -1;
        }
        close_fd(&proc->staging_fd);
        close_fd(&proc->io_in_fd);
        close_fd(&proc->io_in_ro);
        close_fd(&proc->io_out_fd);
        close_fd(&proc->memfd);
        close_fd(&proc->doorbell);
        close_fd(&proc->pidfd);
        close_fd(&proc->notify_fd);
    }
    close_fd(&ps->sock);
    close_fd(&ps->epfd);
    close_fd(&ps->cmd_fd);
    free(ps->procs);
    walls__throttle_fini(&ps->restarts);
    free(ps);
    pool->backend_state = NULL;
    walls__pool_unlock(pool);
}

/* ---- starting and stopping ------------------------------------------------------------- */

/* Waits on done_seq until cond holds, up to timeout_ns (-1: forever).
 * Lock NOT held. Returns whether it held. */
static bool wait_until(struct walls__pool *pool, bool (*cond)(struct walls__pool *),
                       int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : walls__now_ns() + timeout_ns;
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        walls__pool_lock(pool);
        bool ok = cond(pool);
        walls__pool_unlock(pool);
        if (ok)
            return true;
        int64_t left = deadline - walls__now_ns();
        if (left <= 0)
            return false;
        walls__fetch_add(&pool->any_waiters, 1);
        walls__fetch_add(&pool->done_waiters, 1);
        walls__futex_wait(&pool->done_seq, seq, left > 50000000 ? 50000000 : left, false);
        walls__fetch_add(&pool->done_waiters, (uint32_t)-1);
        walls__fetch_add(&pool->any_waiters, (uint32_t)-1);
    }
}

static bool started(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    return ps->starting == 0 || ps->start_error != 0;
}

static bool all_stopped(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    for (unsigned i = 0; i < pool->nprocs; i++)
        if (ps->procs[i].state != WALLS__PROC_STOPPED && ps->procs[i].state != WALLS__PROC_DOWN)
            return false;
    return true;
}

static void procs_stop(struct walls__pool *pool, bool cancel)
{
    struct walls__procs *ps = walls__procs_of(pool);
    struct walls__proc_arg arg = {.cancel = cancel};
    walls__pool_lock(pool);
    ps->stopping = true;
    for (unsigned i = 0; i < pool->nprocs; i++)
        walls__proc_event(pool, &ps->procs[i], WALLS__EV_STOP, &arg);
    walls__pool_unlock(pool);
    /* Workers that ignore STOP for two seconds are killed. */
    if (!wait_until(pool, all_stopped, 2000000000)) {
        arg.cancel = true;
        walls__pool_lock(pool);
        for (unsigned i = 0; i < pool->nprocs; i++)
            walls__proc_event(pool, &ps->procs[i], WALLS__EV_STOP, &arg);
        walls__pool_unlock(pool);
        wait_until(pool, all_stopped, 5000000000);
    }
    walls__supervisor_stop(pool);
    close_all(pool);
    walls__forkserver_release(false);
}

/* Makes the backend state and the fork server's socket for the pool. */
static int procs_open(struct walls__pool *pool)
{
    struct walls__procs *ps = calloc(1, sizeof *ps);
    if (!ps)
        return -ENOMEM;
    ps->sock = ps->epfd = ps->cmd_fd = -1;
    ps->next_token = 2; /* 1 is the host's */
    pool->backend_state = ps;
    ps->procs = calloc(pool->nprocs, sizeof *ps->procs);
    if (!ps->procs)
        return -ENOMEM;
    bool watch = pool->recycle_after || pool->recycle_rss_kb;
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &ps->procs[i];
        proc->index = i;
        proc->lanes = &pool->lanes[i * pool->lanes_per];
        proc->nlanes = pool->lanes_per;
        proc->memfd = proc->doorbell = proc->pidfd = proc->staging_fd = proc->notify_fd = -1;
        proc->io_in_fd = proc->io_in_ro = proc->io_out_fd = -1;
        proc->state = WALLS__PROC_DOWN;
        for (unsigned k = 0; k < proc->nlanes; k++) {
            proc->lanes[k].backend = proc;
            proc->lanes[k].shared = true;
            proc->lanes[k].killable = true;
            proc->lanes[k].watch = watch;
        }
    }
    /* Only now: a failure from here on leaves close_all() descriptors it
     * can tell from the program's. */
    if (walls__throttle_init(&ps->restarts, pool->restart_limit, pool->restart_window_ns,
                             pool->restart_backoff_ns))
        return -ENOMEM;
    int rc = walls__forkserver_open_pool(&ps->sock);
    if (rc)
        return rc;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_STAGED) {
        /* A read-only open of the arena: mappings made from it can never
         * be made writable. */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", pool->arena.fd);
        pool->arena.ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (pool->arena.ro_fd < 0)
            return -errno;
    }
    ps->epfd = epoll_create1(EPOLL_CLOEXEC);
    ps->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ps->epfd < 0 || ps->cmd_fd < 0)
        return -errno;
    if ((rc = walls__procs_watch(pool, ps->sock, WALLS__TAG_SOCK)) ||
        (rc = walls__procs_watch(pool, ps->cmd_fd, WALLS__TAG_CMD)))
        return rc;
    for (unsigned i = 0; i < pool->nprocs; i++)
        if ((rc = make_mailboxes(pool, &ps->procs[i])) != 0)
            return rc;
    return 0;
}

/* Whether the fork server closed its end of the pool's socket: it is gone,
 * though the supervisor may not have heard yet. */
static bool sock_hung_up(int sock)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static int procs_start_once(struct walls__pool *pool, bool *server_lost)
{
    int rc = walls__forkserver_acquire(false);
    if (rc)
        return rc;
    if ((rc = procs_open(pool)) != 0) {
        if (pool->backend_state)
            close_all(pool);
        walls__forkserver_release(false);
        *server_lost = rc == -ECHILD;
        return rc;
    }
    struct walls__procs *ps = walls__procs_of(pool);
    ps->creating = true;
    ps->starting = pool->nprocs;
    walls__pool_lock(pool);
    for (unsigned i = 0; i < pool->nprocs; i++) {
        walls__proc_event(pool, &ps->procs[i], WALLS__EV_START, NULL);
        if (ps->procs[i].state != WALLS__PROC_STARTING && !ps->start_error)
            ps->start_error = -ECHILD; /* the fork server is gone */
    }
    walls__pool_unlock(pool);
    if ((rc = walls__supervisor_start(pool)) != 0) {
        /* Closing the socket makes the fork server kill what it forked. */
        close_all(pool);
        walls__forkserver_release(false);
        return rc;
    }
    wait_until(pool, started, -1);
    walls__pool_lock(pool);
    ps->creating = false;
    rc = ps->start_error;
    /* A spawn request the dead server never took fails at once, and the
     * start may end before the supervisor sees the socket hang up. */
    *server_lost = ps->server_lost || (rc == -ECHILD && sock_hung_up(ps->sock));
    walls__pool_unlock(pool);
    if (rc)
        procs_stop(pool, true);
    return rc;
}

/* A fork server killed from outside may not look dead yet (its pidfd not
 * yet readable) when a pool is made right after: the pool then sees it
 * go as it starts. Once, that pool starts again on a new fork server. */
static int procs_start(struct walls__pool *pool)
{
    bool server_lost = false;
    int rc = procs_start_once(pool, &server_lost);
    if (rc == -ECHILD && server_lost) {
        walls__forkserver_forget();
        walls__pool_lock(pool);
        pool->broken = false; /* no task was submitted yet */
        walls__pool_unlock(pool);
        rc = procs_start_once(pool, &server_lost);
    }
    return rc;
}

/* ---- the other operations ----------------------------------------------------------------- */

static int procs_stop_running(struct walls__pool *pool, struct walls__lane *lane, uint32_t seq,
                              enum walls_status status)
{
    /* Its process goes, and the task with it. */
    struct walls__proc_arg arg = {.lane = lane, .reason = status, .targeted = true, .seq = seq};
    walls__proc_event(pool, lane->backend, WALLS__EV_KILL, &arg);
    return 0;
}

static int procs_reset(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    if (ps->server_lost)
        return -ECHILD;
    walls__throttle_reset(&ps->restarts);
    for (unsigned i = 0; i < pool->nprocs; i++)
        walls__proc_event(pool, &ps->procs[i], WALLS__EV_START, NULL);
    walls__procs_wake(pool);
    return 0;
}

static void procs_timed(struct walls__pool *pool)
{
    walls__procs_wake(pool);
}

static bool procs_is_worker(struct walls__pool *pool)
{
    (void)pool;
    return false; /* its workers are other processes */
}

const struct walls__backend walls__proc_backend = {
    .start = procs_start,
    .stop = procs_stop,
    .locate = procs_locate,
    .stop_running = procs_stop_running,
    .attend = walls__procs_attend,
    .reset = procs_reset,
    .timed = procs_timed,
    .is_worker = procs_is_worker,
    .arm_for_sleepers = true,
    .rings_bell = true,
};
