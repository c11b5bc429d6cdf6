/*
 * thread_backend.c - workers that are threads of the host.
 *
 * A thread worker runs the same loop over the same mailbox as a process
 * worker; the mailbox is just private memory. Because it lives in the host,
 * it harvests its own completion right after publishing it, and refills its
 * ring from the pending queue, so no supervisor is needed.
 *
 * What threads cannot do (DESIGN.md, invariant 6): a task that crashes
 * takes the whole program with it, and a running task cannot be stopped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "worker.h"

static walls_fn *raw_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    (void)ctx;
    if (module != WALLS__MODULE_RAW) {
        *err = -ENOENT;
        return NULL;
    }
    return (walls_fn *)(uintptr_t)offset;
}

/* A thread worker consumes its own completions when a process worker would
 * ring its doorbell: somebody sleeps on a result (or watches the pool's
 * descriptor), or its ring ran dry while tasks wait in the queue. Host
 * threads spinning in walls_wait() consume them otherwise. */
static void thread_published(void *ctx, bool more)
{
    struct walls__worker *w = ctx;
    struct walls__pool *pool = w->pool;
    /* Full fence: our completion tail is stored before we read the flags;
     * a waiter counts itself before it looks at our ring. */
    walls__fence();
    if (walls__load_relaxed(&pool->done_waiters) == 0 &&
        !walls__load_relaxed(&pool->doorbells_armed) &&
        !(!more && walls__load_relaxed(&pool->refill_armed)))
        return;
    pthread_mutex_lock(&pool->lock);
    walls__pool_harvest(pool, w);
    walls__pool_dispatch(pool);
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
}

static void *thread_main(void *arg)
{
    struct walls__worker *w = arg;
    /* Threads see the arena and locks where the host maps them. */
    const struct walls__arena *a = &w->pool->arena;
    struct walls__arena_view view = {
        .base = a->base, .size = a->size, .locks = a->locks, .nlocks = a->nlocks};
    struct walls__worker_hooks hooks = {
        .resolve = raw_resolve,
        .published = thread_published,
        .ctx = w,
        .arena = a->base || a->locks ? &view : NULL,
    };
    walls__worker_loop(w->mb, &hooks, false);
    return NULL;
}

/* Worker threads (and the supervisor) block asynchronous signals, so those
 * keep going to the program's own threads; faults still kill. */
void walls__block_async_signals(sigset_t *old)
{
    sigset_t set;
    sigfillset(&set);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&set, faults[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

int walls__threads_start(struct walls__pool *pool)
{
    sigset_t old;
    walls__block_async_signals(&old);
    int rc = 0;
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct walls__worker *w = &pool->workers[i];
        w->mb = aligned_alloc(4096, WALLS__MAILBOX_SIZE);
        if (!w->mb) {
            rc = -ENOMEM;
            break;
        }
        memset(w->mb, 0, WALLS__MAILBOX_SIZE);
        walls__ring_reset(w);
        w->mb->worker_state = WALLS__WORKER_READY;
        w->state = WALLS__W_UP;
        int err = pthread_create(&w->thread, NULL, thread_main, w);
        if (err) {
            rc = -err;
            w->state = WALLS__W_STOPPED;
            break;
        }
        w->thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        walls__threads_stop(pool);
    return rc;
}

/* Thread pools with time limits: a thread that ends overrun tasks at their
 * deadlines, sleeping until the next one (or a tick, since a task's start
 * is not announced), or until a first limit appears. */
static void *timer_main(void *arg)
{
    struct walls__pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    while (!pool->timer_stop) {
        uint32_t word = walls__load_acquire(&pool->timer_word);
        walls__pool_harvest_all(pool);
        int64_t now = walls__now_ns();
        int64_t next = walls__pool_check_deadlines(pool, now);
        pthread_mutex_unlock(&pool->lock);
        walls__pool_signal(pool);
        walls__futex_wait(&pool->timer_word, word, next == INT64_MAX ? -1 : next - now, false);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int walls__threads_start_timer(struct walls__pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    int rc = 0;
    if (!pool->timer_started && pool->state == WALLS__POOL_ALIVE) {
        sigset_t old;
        walls__block_async_signals(&old);
        rc = -pthread_create(&pool->timer, NULL, timer_main, pool);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pool->timer_started = rc == 0;
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

void walls__threads_stop(struct walls__pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    bool timer = pool->timer_started;
    pool->timer_started = false;
    pthread_mutex_unlock(&pool->lock);
    if (timer) {
        pthread_mutex_lock(&pool->lock);
        pool->timer_stop = true;
        pthread_mutex_unlock(&pool->lock);
        walls__fetch_add(&pool->timer_word, 1);
        walls__futex_wake(&pool->timer_word, 1, false);
        pthread_join(pool->timer, NULL);
    }
    /* A thread still running a task that timed out may have a full ring
     * behind it: make room by consuming what it acknowledged, waiting for
     * it if need be (it cannot be stopped any other way). */
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct walls__worker *w = &pool->workers[i];
        for (;;) {
            pthread_mutex_lock(&pool->lock);
            bool pushed = !w->thread_started || w->state != WALLS__W_UP;
            if (!pushed) {
                walls__pool_harvest(pool, w);
                if (w->rq_tail - w->oldest < WALLS__RING_SLOTS) {
                    w->state = WALLS__W_STOPPING;
                    walls__ring_push_stop(w);
                    pushed = true;
                }
            }
            pthread_mutex_unlock(&pool->lock);
            if (pushed)
                break;
            usleep(1000);
        }
    }
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct walls__worker *w = &pool->workers[i];
        if (w->thread_started)
            pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    /* Other callers harvest under the lock, and skip stopped workers. */
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < pool->nworkers; i++)
        pool->workers[i].state = WALLS__W_STOPPED;
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nworkers; i++) {
        free(pool->workers[i].mb);
        pool->workers[i].mb = NULL;
    }
}

bool walls__threads_is_worker(struct walls__pool *pool)
{
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].thread_started && pthread_equal(pool->workers[i].thread, self))
            return true;
    return false;
}
