/*
 * pool.c - a pool's public calls: walls_pool_create(), walls_pool_destroy(),
 * walls_pool_reset(), walls_pool_fd(), walls_pool_collect(),
 * walls_pool_explain() and walls_pool_stats().
 *
 * Each checks its arguments (naming the first wrong one for
 * walls_last_error()), finds the pool its handle names (refusing a stale
 * handle and another process's), takes the pool's lock, and works through
 * the engine and the pool's backend. walls_pool_create() returns a closed
 * set of errors: anything else a worker reported while starting is told in
 * words and returned as -ECHILD.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api.h"
#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "internal.h"
#include "options.h"
#include "sandbox.h"
#include "tables.h"

/* The closed set walls_pool_create() returns: anything else a worker or
 * the system reported while starting is told in words and returned as
 * -ECHILD (a worker could not start). */
static int create_error(int rc, size_t memory_limit)
{
    if ((rc == -EAGAIN || rc == -ENOMEM) && memory_limit)
        return walls__fail(rc, "walls_pool_create: a worker could not start within "
                               "opts.worker_memory_limit (%zu bytes more than it starts with; "
                               "a hybrid worker's thread stacks count against it): %s",
                           memory_limit, strerror(-rc));
    if (rc == -EAGAIN)
        return walls__fail(rc, "walls_pool_create: no threads or processes were left to start "
                               "workers with");
    switch (rc) {
    case -EINVAL: case -ENOTSUP: case -ENOMEM: case -EAGAIN: case -EMFILE: case -ENFILE:
    case -ECHILD: case -ENOEXEC: case -ENOSYS: case -ENOENT:
        return walls__fail(rc, "walls_pool_create: %s", walls_strerror(rc));
    default:
        /* A program that changed its user is left undumpable by the
         * kernel, and may then not take the sandbox's descriptor from its
         * own workers (pidfd_getfd): say so, and what to do. */
        if (rc == -EPERM && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)
            return walls__fail(-ECHILD,
                               "walls_pool_create: a worker could not start: this process is "
                               "not dumpable (it changed its user or group, which clears the "
                               "flag), so it may not take the sandbox's descriptor from its "
                               "workers; once it has given up root for good, "
                               "prctl(PR_SET_DUMPABLE, 1) lets it");
        return walls__fail(-ECHILD, "walls_pool_create: a worker could not start: %s",
                           walls_strerror(rc));
    }
}

/* Frees what walls_pool_create() gave the pool, past its workers. */
static void free_pool_parts(struct walls__pool *pool)
{
    for (unsigned i = 0; pool->lanes && i < pool->nlanes; i++)
        for (unsigned k = 0; k < WALLS__RING_SLOTS; k++)
            free(pool->lanes[i].inflight[k].held);
    free(pool->lanes);
    pool->lanes = NULL;
    for (unsigned i = 0; i < pool->nmodules; i++)
        free(pool->modules[i].path);
    pool->nmodules = 0;
    walls__arena_close(&pool->arena);
    free(pool->sandbox_conf);
    pool->sandbox_conf = NULL;
    if (pool->event_fd >= 0)
        close(pool->event_fd);
    pool->event_fd = -1;
}

int walls_pool_create(walls_pool **out, const struct walls_pool_opts *opts_in)
{
    if (!out)
        return walls__fail(-EINVAL, "walls_pool_create: pool (the out-parameter) is NULL");
    walls__fork_handlers();
    struct walls_pool_opts o;
    memset(&o, 0, sizeof o);
    if (opts_in)
        o = *opts_in;
    struct walls__plan plan;
    int rc = walls__plan_pool(&o, &plan);
    if (rc)
        return rc;
    return walls__pool_create_planned(out, &o, &plan, NULL);
}

int walls__pool_create_planned(walls_pool **out, const struct walls_pool_opts *opts,
                               struct walls__plan *plan_in, void *backend_state)
{
    const struct walls_pool_opts o = *opts;
    const struct walls__plan *plan = plan_in;
    int rc;
    struct walls__pool *pool = walls__pool_new();
    if (!pool) {
        free(plan->conf);
        return create_error(-ENOMEM, 0);
    }
    pool->backend_state = backend_state;
    walls__store_relaxed(&pool->owner, walls__self());
    pool->placement = plan->placement;
    pool->backend = plan->backend;
    pool->nlanes = plan->nlanes;
    pool->nprocs = plan->nprocs;
    pool->lanes_per = plan->lanes_per;
    pool->cpus = plan->cpus;
    pool->threads_shown = plan->threads_shown;
    pool->sandbox = plan->sandbox;
    pool->sandbox_conf = plan->conf;
    memcpy(pool->explain, plan->explain, sizeof pool->explain);
    pool->lost_retries = o.lost_retries;
    pool->max_queued = o.max_queued;
    pool->recycle_after = o.recycle_after;
    pool->recycle_rss_kb = (o.recycle_rss + 1023) / 1024;
    pool->memory_limit = o.worker_memory_limit;
    pool->max_output = o.max_output ? o.max_output : WALLS_INLINE_MAX;
    if (pool->max_output > WALLS_INLINE_MAX)
        pool->out_window = ((uint64_t)pool->max_output + WALLS__PAGE - 1) & ~(uint64_t)(WALLS__PAGE - 1);
    pool->restart_limit = o.restart_limit ? o.restart_limit : 100;
    pool->restart_window_ns = walls__ms_to_ns(o.restart_window_ms ? o.restart_window_ms : 1000);
    pool->restart_backoff_ns = walls__ms_to_ns(o.restart_backoff_ms);
    pool->default_limit_ns = walls__ms_to_ns(o.task_timeout_ms);
    pool->timed_ever = pool->default_limit_ns != 0;
    pool->clock_next = INT64_MAX; /* nothing to look at until a limited task is dealt */
    pool->arena.fd = pool->arena.ro_fd = pool->arena.lock_fd = pool->arena.shared_fd = -1;
    pool->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pool->lanes = calloc(pool->nlanes, sizeof *pool->lanes);
    if (pool->event_fd < 0 || !pool->lanes) {
        rc = pool->event_fd < 0 ? -errno : -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < pool->nlanes; i++)
        walls__engine_lane_init(pool, &pool->lanes[i], i);
    if ((o.arena_size || o.locks || o.shared_size) &&
        (rc = walls__arena_open(&pool->arena, o.arena_size, o.locks, o.shared_size)) != 0)
        goto fail;
    pool->state = WALLS__POOL_ALIVE;
    if ((rc = pool->backend->start(pool)) != 0)
        goto fail;
    *out = walls__pool_handle(pool);
    return 0;
fail:
    pool->state = WALLS__POOL_DEAD;
    free_pool_parts(pool);
    walls__pool_release(pool);
    return create_error(rc, o.worker_memory_limit);
}

static bool pool_idle(struct walls__pool *pool)
{
    walls__pool_lock(pool);
    bool idle = pool->npending == 0 && pool->in_rings == 0;
    walls__pool_unlock(pool);
    return idle;
}

/* Lock held: with WALLS_CANCEL, queued tasks end as cancelled, and running
 * ones are stopped where they can be. */
static void cancel_all(struct walls__pool *pool)
{
    while (pool->pending.head)
        walls__engine_complete(pool, pool->pending.head, WALLS_CANCELLED, 0, NULL, 0);
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        /* What finished without anyone having looked yet ends as it
         * finished (as for walls_cancel()): only the task still running is
         * stopped, and blamed. */
        if (lane->live && lane->mb)
            walls__engine_harvest(pool, lane);
        for (uint32_t s = lane->oldest; s != lane->rq_tail; s++) {
            struct walls__inflight *e = &lane->inflight[s % WALLS__RING_SLOTS];
            if (e->retired || !e->task)
                continue;
            if (walls__engine_cancel(pool, e->task) == -EBUSY)
                pool->backend->stop_running(pool, lane, s, WALLS_CANCELLED);
        }
    }
}

int walls_pool_destroy(walls_pool *handle, unsigned flags)
{
    static const char call[] = "walls_pool_destroy";
    /* Flags first: a caller's mistake is told even with no pool. */
    if (flags & ~WALLS_CANCEL)
        return walls__fail(-EINVAL, "%s: unknown flags %#x", call, flags & ~WALLS_CANCEL);
    if (!handle)
        return 0;
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, call, &rc);
    if (!pool)
        return rc;
    if (pool->state != WALLS__POOL_ALIVE) {
        walls__pool_unlock(pool);
        return walls__fail(-EBADF, "%s: another thread is destroying the pool", call);
    }
    if (pool->backend->is_worker(pool)) {
        walls__pool_unlock(pool);
        return walls__fail(-EDEADLK, "%s: called from one of the pool's own worker threads",
                           call);
    }
    pool->state = WALLS__POOL_CLOSING;
    if (flags & WALLS_CANCEL) {
        pool->cancelling = true;
        cancel_all(pool);
    }
    walls__pool_unlock(pool);
    walls__engine_signal(pool);

    /* Drain: every task submitted before this call reaches its end. */
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        walls__api_progress(pool);
        if (pool_idle(pool))
            break;
        walls__api_sleep(pool, seq, 100000000, NULL, 0);
    }
    pool->backend->stop(pool, (flags & WALLS_CANCEL) != 0);

    walls__pool_lock(pool);
    pool->state = WALLS__POOL_DEAD;
    while (pool->collect.head)
        walls__engine_uncollect(pool, pool->collect.head);
    walls__store_relaxed(&pool->fd_armed, false);
    free_pool_parts(pool);
    walls__pool_retire(pool); /* under the lock: see walls__pool_still() */
    walls__pool_unlock(pool);
    walls__pool_release(pool);
    /* Freed tasks' memory goes back now, not after the usual delay. */
    walls__tasks_trim();
    return 0;
}

int walls_pool_reset(walls_pool *handle)
{
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_reset", &rc);
    if (!pool)
        return rc;
    /* Being destroyed: its workers are stopping and its backend's state
     * goes (not to be started again). */
    if (pool->state != WALLS__POOL_ALIVE) {
        walls__pool_unlock(pool);
        return walls__fail(-EBADF, "walls_pool_reset: the pool is being destroyed");
    }
    rc = 0;
    if ((pool->broken || pool->backend->reset_unbroken) && pool->backend->reset &&
        (rc = pool->backend->reset(pool)) == 0)
        pool->broken = false;
    walls__pool_unlock(pool);
    if (rc && !pool->backend->reset_unbroken) /* that one says why itself */
        walls__fail(rc, "walls_pool_reset: the pool's fork server is gone; destroy the pool "
                        "and create another");
    return rc;
}

int walls_pool_fd(walls_pool *handle)
{
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_fd", &rc);
    if (!pool)
        return rc;
    bool first = !pool->fd_armed;
    if (first) {
        /* Completions before this are on no list: they make nothing readable. */
        __atomic_store_n(&pool->unsignalled, 0, __ATOMIC_RELAXED);
        walls__store_relaxed(&pool->fd_armed, true);
    }
    walls__engine_arm(pool, walls__engine_armed(pool) | (pool->backend->rings_bell
                                                             ? WALLS__ARM_EVENT
                                                             : WALLS__ARM_EVERY));
    /* Armed and fenced: a completion published before the workers could
     * see the flag rang nothing; take it now, later ones ring. */
    if (first)
        walls__api_harvest(pool);
    int fd = pool->event_fd;
    walls__pool_unlock(pool);
    if (first)
        walls__engine_signal(pool);
    return fd;
}

static void take_collected(struct walls__pool *pool, walls_task **tasks, size_t max, size_t *n)
{
    while (*n < max && pool->collect.head) {
        struct walls__task *task = pool->collect.head;
        walls__engine_uncollect(pool, task);
        tasks[(*n)++] = walls__task_handle(task);
    }
}

int walls_pool_collect(walls_pool *handle, walls_task **tasks, size_t max, size_t *n)
{
    static const char call[] = "walls_pool_collect";
    int rc;
    if (!tasks || !n || max == 0)
        return walls__fail(-EINVAL, "%s: %s", call,
                           !tasks ? "tasks is NULL" : !n ? "n is NULL" : "max is 0");
    *n = 0;
    struct walls__pool *pool = walls__pool_enter(handle, call, &rc);
    if (!pool)
        return rc;
    if (!pool->fd_armed) {
        walls__pool_unlock(pool);
        return walls__fail(-ENOTCONN, "%s: walls_pool_fd() was never called on this pool, so "
                                      "it keeps no list of completed tasks",
                           call);
    }
    /* Reset the descriptor first: a completion after this makes it
     * readable again, and one before it is on the list we take. */
    walls__eventfd_take(pool->event_fd);
    pool->fd_raised = false;
    walls__api_harvest(pool);
    take_collected(pool, tasks, max, n);
    /* All taken: bells that workers rang for them must not leave the
     * descriptor readable. What settling harvests has bells of its own,
     * settled in the next round once it is taken; after a few rounds it
     * stays on the list, and the descriptor readable for it. */
    for (int round = 0; !pool->collect.head && pool->event_armed; round++) {
        walls__engine_settle_bells(pool);
        if (!pool->collect.head || round == 3)
            break;
        take_collected(pool, tasks, max, n);
    }
    /* What settling harvested may want its backend (a worker to retire
     * after its last task, one that broke the protocol). */
    if (pool->attention && pool->backend->attend)
        pool->backend->attend(pool);
    if (pool->collect.head != NULL) {
        uint64_t one = 1;
        ssize_t wr = write(pool->event_fd, &one, sizeof one);
        (void)wr;
        pool->fd_raised = true;
    } else {
        /* Every finished task on the list was taken: completions counted
         * but not yet signalled (here, or by the thread that finished them,
         * which signals after it unlocks) must not make the descriptor
         * readable with nothing to collect. Later ones count anew. */
        __atomic_store_n(&pool->unsignalled, 0, __ATOMIC_RELEASE);
    }
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    return 0;
}

int walls_pool_explain(walls_pool *handle, char *buf, size_t len)
{
    if (!buf || len == 0)
        return walls__fail(-EINVAL, "walls_pool_explain: %s", !buf ? "buf is NULL" : "len is 0");
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_explain", &rc);
    if (!pool)
        return rc;
    int n = snprintf(buf, len, "%s", pool->explain);
    walls__pool_unlock(pool);
    return n;
}

int walls_pool_stats(walls_pool *handle, struct walls_stats *st)
{
    if (!st)
        return walls__fail(-EINVAL, "walls_pool_stats: stats is NULL");
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_stats", &rc);
    if (!pool)
        return rc;
    /* Count what workers finished but nobody consumed yet. */
    walls__api_harvest(pool);
    memset(st, 0, sizeof *st);
    st->placement = pool->placement;
    st->processes = pool->nprocs;
    st->threads = pool->threads_shown;
    st->submitted = pool->submitted;
    st->completed = pool->completed;
    memcpy(st->by_status, pool->by_status, sizeof st->by_status);
    st->restarts = pool->restarts;
    st->queued = pool->npending;
    st->in_flight = pool->in_rings;
    st->latency_p50_ns = walls__engine_percentile(pool, 50);
    st->latency_p99_ns = walls__engine_percentile(pool, 99);
    st->broken = pool->broken;
    st->recycled = pool->recycled;
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    return 0;
}
