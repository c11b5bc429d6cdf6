/*
 * thread_backend.c - workers that are threads of the host.
 *
 * A thread worker runs the same loop over the same mailbox as a process
 * worker; the mailbox is just private memory. Because it lives in the host,
 * it harvests its own completion right after publishing it, and refills its
 * ring from the pending queue, so no supervisor is needed. A time-limit
 * thread, started with the first limited task, ends overrun tasks for
 * their waiters.
 *
 * What threads cannot do (DESIGN.md, invariant 6): a task that crashes
 * takes the whole program with it, and a running task cannot be stopped:
 * a timed-out one ends for its waiters while its thread runs on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"
#include "worker.h"

struct thread_lane {
    pthread_t thread;
    bool started;
    /* Its thread's own, read and written by it alone: its ring ran dry
     * while other rings held tasks waiting (watching), and how far each
     * other lane's worker had got then (seen[i]: that ring's head). */
    bool watching;
    uint32_t *seen;
};

struct threads {
    struct thread_lane *lanes;
    /* The time-limit thread [pool lock]: */
    pthread_t timer;
    bool timer_started;
    bool timer_stop;
    uint32_t timer_word; /* [atomic] bumped to wake it */
    uint32_t ended;      /* [atomic] lane threads whose loop returned, bumped by each */
};

static struct threads *state_of(struct walls__pool *pool)
{
    return pool->backend_state;
}

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
static void threads_timed(struct walls__pool *pool);

/* A thread reads a large input where the task keeps it, and writes a large
 * output into the buffer the host made for it: both are the host's memory. */
static void *thread_io_map(void *ctx, uint64_t at, uint64_t len, bool out, int *err)
{
    (void)ctx, (void)len, (void)out;
    if (!at)
        *err = -EPROTO;
    return (void *)(uintptr_t)at;
}

static void thread_io_unmap(void *ctx, void *p, uint64_t len)
{
    (void)ctx, (void)p, (void)len;
}

/* When a lane that ran dry looks at the other rings (worth_refill). */
enum refill_look {
    LOOK_FIRST, /* the ring just ran dry: note how far the others are */
    LOOK_AGAIN, /* spinning since: has a waiting ring's worker moved on? */
    LOOK_LAST,  /* about to sleep */
};

/* Whether this lane, run dry, should come for the pool's lock to be given
 * something: tasks queued in the pool, or tasks waiting behind a running
 * one in another lane's ring. The refill flag stays armed while the engine
 * thinks that may be so; asking the rings themselves spares the lock when
 * the other lanes have caught up since. Tasks in another ring are worth
 * moving only while the task ahead of them holds them up: a ring whose
 * worker finishes tasks as fast as this thread looks empties itself, and
 * coming for the lock each time would only fight the submitting thread
 * for it. So the first look notes how far each other worker had got; a
 * lane still waiting at a later look in the spin, its worker not having
 * taken one more, is worth the visit; and so is any waiting lane before
 * this thread sleeps, since a sleeper looks no more. The words are read
 * without the lock, as hints: seeing work that is gone costs one needless
 * visit, and work queued after this look is dispatched by whoever queues
 * it. The pool's queue is read as it was when the lock was last let go
 * (pending_seen), not as a dispatch under way counts it. */
static bool worth_refill(const struct walls__pool *pool, const struct walls__lane *self,
                         enum refill_look look)
{
    struct thread_lane *me = self->backend;
    if (walls__load_relaxed(&pool->pending_seen))
        return true;
    bool waiting = false;
    for (unsigned i = 0; i < pool->nlanes; i++) {
        const struct walls__lane *lane = &pool->lanes[i];
        if (lane == self || !lane->mb)
            continue;
        /* Published, minus finished, minus the one that may be running. */
        uint32_t head = walls__load_relaxed(&lane->mb->rq.head);
        uint32_t queued = walls__load_relaxed(&lane->mb->rq.tail) - head;
        if (queued < 2)
            continue;
        if (look == LOOK_LAST || (look == LOOK_AGAIN && me->seen[i] == head))
            return true;
        me->seen[i] = head;
        waiting = true;
    }
    me->watching = waiting;
    return false;
}

/* Takes the lane's completions and deals what waits, under the lock. */
static void refill(struct walls__pool *pool, struct walls__lane *lane)
{
    struct thread_lane *me = lane->backend;
    me->watching = false;
    walls__pool_lock(pool);
    walls__engine_harvest(pool, lane);
    walls__engine_dispatch(pool);
    if (pool->want_clock) {
        pool->want_clock = false;
        threads_timed(pool);
    }
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
}

static void thread_published(void *ctx, bool more, uint32_t slot)
{
    struct walls__lane *lane = ctx;
    struct walls__pool *pool = lane->pool;
    /* Full fence: our completion tail is stored before we read the flags;
     * a waiter counts itself, or marks its task, before it looks at our
     * ring. */
    walls__fence();
    if (walls__load_relaxed(&pool->any_waiters) == 0 &&
        !walls__load_relaxed(&lane->mb->ring_want[slot]) &&
        !walls__load_relaxed(&pool->doorbells_armed) &&
        !(!more && walls__load_relaxed(&pool->refill_armed) &&
          worth_refill(pool, lane, LOOK_FIRST)))
        return;
    refill(pool, lane);
}

/* Spinning for a request after the ring ran dry: looks again whether the
 * tasks waiting in other rings are held up (worth_refill). */
static void thread_idle(void *ctx, bool last)
{
    struct walls__lane *lane = ctx;
    struct thread_lane *me = lane->backend;
    if (!me->watching)
        return;
    struct walls__pool *pool = lane->pool;
    if (!walls__load_relaxed(&pool->refill_armed)) {
        me->watching = false;
        return;
    }
    if (worth_refill(pool, lane, last ? LOOK_LAST : LOOK_AGAIN))
        refill(pool, lane);
    else if (last)
        me->watching = false;
}

/* Counts a lane thread out, however it ends: its loop returned, or a task
 * ended the thread (pthread_exit(), which walls.h forbids and describes).
 * Seq-cst: after everything the thread did; join_lanes() sleeps on it. The
 * pool's state outlives every lane thread. */
static void lane_thread_gone(void *arg)
{
    struct walls__lane *lane = arg;
    struct threads *t = state_of(lane->pool);
    walls__fetch_add(&t->ended, 1);
    walls__futex_wake(&t->ended, INT_MAX, false);
}

static void *thread_main(void *arg)
{
    struct walls__lane *lane = arg;
    /* Threads see the arena and locks where the host maps them. */
    const struct walls__arena *a = &lane->pool->arena;
    struct walls__arena_view view = {
        .base = a->base, .size = a->size, .locks = a->locks, .nlocks = a->nlocks,
        .shared = a->shared, .shared_size = a->shared_size};
    struct walls__worker_hooks hooks = {
        .resolve = raw_resolve,
        .published = thread_published,
        .idle = thread_idle,
        .io_map = thread_io_map,
        .io_unmap = thread_io_unmap,
        .ctx = lane,
        .arena = a->base || a->locks || a->shared ? &view : NULL,
    };
    pthread_cleanup_push(lane_thread_gone, lane);
    walls__worker_loop(lane->mb, &hooks, false);
    pthread_cleanup_pop(1);
    return NULL;
}

/* Joins the lane threads as they end, not in lane order: while one still
 * runs a task that timed out, those that ended are joined already, so a
 * program that exits meanwhile (its destroy left to another thread) leaves
 * no ended thread unjoined. Sleeps on `ended` in between; a thread that
 * said it ended may not have quite gone yet, so that sleep is short while
 * such a thread is not joined. */
static void join_lanes(struct walls__pool *pool)
{
    struct threads *t = state_of(pool);
    unsigned left = 0, joined = 0;
    for (unsigned i = 0; i < pool->nlanes; i++)
        left += t->lanes[i].started;
    while (left > 0) {
        uint32_t ended = walls__load_acquire(&t->ended);
        bool all_going = ended - joined >= left;
        for (unsigned i = 0; i < pool->nlanes; i++) {
            if (!t->lanes[i].started)
                continue;
            /* Every one left has ended its loop: a join is brief. */
            if (all_going)
                pthread_join(t->lanes[i].thread, NULL);
            else if (pthread_tryjoin_np(t->lanes[i].thread, NULL) != 0)
                continue;
            t->lanes[i].started = false;
            left--;
            joined++;
        }
        /* Never for ever: a thread gone without being counted would hold
         * the destroy; the next try joins it. */
        if (left > 0 && !all_going)
            walls__futex_wait(&t->ended, ended, ended != joined ? 1000000 : 100000000, false);
    }
}

/* Ends overrun tasks at their deadlines, sleeping until the next one (or a
 * tick, since a task's start is not announced), or until told that a
 * limited task appeared. */
static void *timer_main(void *arg)
{
    struct walls__pool *pool = arg;
    struct threads *t = state_of(pool);
    walls__pool_lock(pool);
    while (!t->timer_stop) {
        uint32_t word = walls__load_acquire(&t->timer_word);
        walls__engine_harvest_all(pool);
        int64_t now = walls__now_ns();
        int64_t next = walls__engine_expire(pool, now);
        walls__pool_unlock(pool);
        walls__engine_signal(pool);
        walls__futex_wait(&t->timer_word, word, next == INT64_MAX ? -1 : next - now, false);
        walls__pool_lock(pool);
    }
    walls__pool_unlock(pool);
    return NULL;
}

/* Lock held. Starts the time-limit thread if it is not running, and wakes
 * it: it may be asleep with no deadline to wait for. */
static void threads_timed(struct walls__pool *pool)
{
    struct threads *t = state_of(pool);
    if (!t->timer_started && pool->state == WALLS__POOL_ALIVE)
        t->timer_started = walls__thread_start(&t->timer, timer_main, pool) == 0;
    walls__fetch_add(&t->timer_word, 1);
    walls__futex_wake(&t->timer_word, 1, false);
}

static void threads_stop(struct walls__pool *pool, bool cancel)
{
    (void)cancel; /* a thread cannot be killed: each finishes its task */
    struct threads *t = state_of(pool);
    walls__pool_lock(pool);
    bool timer = t->timer_started;
    t->timer_started = false;
    t->timer_stop = true;
    walls__pool_unlock(pool);
    if (timer) {
        walls__fetch_add(&t->timer_word, 1);
        walls__futex_wake(&t->timer_word, 1, false);
        pthread_join(t->timer, NULL);
    }
    /* A thread still running a task that timed out may have a full ring
     * behind it: make room by consuming what it acknowledged, waiting for
     * it if need be (it cannot be stopped any other way). */
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        for (;;) {
            walls__pool_lock(pool);
            bool pushed = !t->lanes[i].started || !lane->open;
            if (!pushed) {
                walls__engine_harvest(pool, lane);
                if (lane->rq_tail - lane->oldest < WALLS__RING_SLOTS) {
                    lane->open = false;
                    walls__engine_push_stop(lane);
                    pushed = true;
                }
            }
            walls__pool_unlock(pool);
            if (pushed)
                break;
            usleep(1000);
        }
    }
    join_lanes(pool);
    /* Other callers harvest under the lock, and skip lanes not live. The
     * last harvest consumes what the threads said on their way out (a task
     * that had timed out, the stop), and gives back what it held. */
    walls__pool_lock(pool);
    for (unsigned i = 0; i < pool->nlanes; i++) {
        walls__engine_harvest(pool, &pool->lanes[i]);
        pool->lanes[i].live = false;
        pool->lanes[i].open = false;
    }
    walls__pool_unlock(pool);
    for (unsigned i = 0; i < pool->nlanes; i++) {
        walls__engine_lane_private_free(&pool->lanes[i]);
        free(t->lanes[i].seen);
    }
    free(t->lanes);
    free(t);
    pool->backend_state = NULL;
}

static int threads_start(struct walls__pool *pool)
{
    struct threads *t = calloc(1, sizeof *t);
    if (t)
        t->lanes = calloc(pool->nlanes, sizeof *t->lanes);
    if (!t || !t->lanes) {
        free(t);
        return -ENOMEM;
    }
    pool->backend_state = t;
    int rc = 0;
    for (unsigned i = 0; i < pool->nlanes && rc == 0; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        lane->backend = &t->lanes[i];
        if (!(t->lanes[i].seen = calloc(pool->nlanes, sizeof *t->lanes[i].seen))) {
            rc = -ENOMEM;
            break;
        }
        if ((rc = walls__engine_lane_private(lane)) != 0)
            break;
        rc = walls__thread_start(&t->lanes[i].thread, thread_main, lane);
        t->lanes[i].started = rc == 0;
    }
    if (rc == 0 && pool->default_limit_ns) {
        walls__pool_lock(pool);
        threads_timed(pool);
        rc = state_of(pool)->timer_started ? 0 : -EAGAIN;
        walls__pool_unlock(pool);
    }
    if (rc)
        threads_stop(pool, false);
    return rc;
}

static int threads_locate(struct walls__pool *pool, walls_fn *fn, uint16_t *module,
                          uint64_t *offset)
{
    (void)pool;
    *module = WALLS__MODULE_RAW;
    *offset = (uint64_t)(uintptr_t)fn;
    return 0;
}

static int threads_stop_running(struct walls__pool *pool, struct walls__lane *lane,
                                uint32_t seq, enum walls_status status)
{
    (void)pool, (void)lane, (void)seq, (void)status;
    return -EBUSY;
}

static bool threads_is_worker(struct walls__pool *pool)
{
    struct threads *t = state_of(pool);
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < pool->nlanes; i++)
        if (t->lanes[i].started && pthread_equal(t->lanes[i].thread, self))
            return true;
    return false;
}

const struct walls__backend walls__thread_backend = {
    .start = threads_start,
    .stop = threads_stop,
    .locate = threads_locate,
    .stop_running = threads_stop_running,
    .timed = threads_timed,
    .is_worker = threads_is_worker,
    .arm_for_sleepers = false,
};
