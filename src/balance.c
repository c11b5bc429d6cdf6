/*
 * balance.c - the engine moves tasks that have not started from one lane's
 * ring to lanes that idle.
 *
 * Tasks are dealt before anyone knows how long they run, so a lane's ring
 * can hold tasks behind a long one while another lane idles. The host then
 * moves them (balancing): a task that has not started is taken back by
 * turning its slot from QUEUED to CANCELLED, the same exchange the worker
 * makes to start it, so exactly one side wins, and it is pushed into the
 * idle lane's ring. The worker of the lane it left only acknowledges the
 * cancelled slot; anything else from it breaks the protocol. A worker
 * therefore cannot take, repeat or lose a task of another lane: it can
 * only start its own, or refuse to give them up.
 *
 * Balancing happens when a lane runs dry (its worker reports that while
 * tasks wait behind others: the refill doorbell), taking half of the
 * longest backlog, or all of it when the task ahead of it has run
 * WALLS__LONG_TASK_NS or more; and, for lanes that went idle earlier and sleep,
 * on the engine's clock (walls__engine_balance), every BALANCE_TICK_NS
 * while tasks wait behind a task that runs long. A first task that its
 * worker has still not started after WALLS__LONG_TASK_NS (a stopped
 * worker, or one starved of the CPU) moves as well, so that no task waits
 * on a worker that does not take it while another idles.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>

#include "atomic.h"
#include "engine.h"
#include "internal.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* While tasks wait in one lane's ring and another lane idles, the engine's
 * clock looks for long-running tasks to move them from this often. */
#define BALANCE_TICK_NS 1000000

/* Whether an entry is a task that has not ended (it runs, or waits). */
static bool live_task(const struct walls__inflight *e)
{
    return !e->retired && e->kind == WALLS__REQ_TASK && !e->cancelled && e->task;
}

/* What waits in a lane's ring: the first live task (the one its worker
 * runs, or is about to), how many live tasks could move (those behind it,
 * and itself while its worker has not started it), whether the first has
 * been the first for WALLS__LONG_TASK_NS or more, and whether it is still
 * unstarted then (its worker stopped, or starved of the CPU: it moves too,
 * by the same exchange as the others, which its worker may yet win). */
struct backlog {
    uint32_t runner;
    unsigned movable;
    bool long_runner;
    bool unstarted;
    bool stalled;
};

static struct backlog backlog_of(const struct walls__lane *lane, int64_t now)
{
    struct backlog b = {0, 0, false, false, false};
    if (!lane->live || lane->broke || lane->stuck)
        return b;
    uint32_t s = lane->oldest;
    while (s != lane->rq_tail && !live_task(&lane->inflight[s & MASK]))
        s++;
    if (s == lane->rq_tail)
        return b;
    b.runner = s;
    for (uint32_t t = s + 1; t != lane->rq_tail; t++)
        b.movable += live_task(&lane->inflight[t & MASK]);
    /* It cannot have started before it was dispatched, nor before the
     * request ahead of it was retired. */
    b.long_runner = walls__engine_runs_long(lane, now);
    b.unstarted = walls__load_relaxed(&lane->mb->rq_slots[s & MASK].state) == WALLS__SLOT_QUEUED;
    b.stalled = b.long_runner && b.unstarted;
    b.movable += b.stalled;
    return b;
}

bool walls__engine_runs_long(const struct walls__lane *lane, int64_t now)
{
    if (!lane->live || lane->broke || lane->stuck)
        return false;
    uint32_t s = lane->oldest;
    while (s != lane->rq_tail && !live_task(&lane->inflight[s & MASK]))
        s++;
    if (s == lane->rq_tail)
        return false;
    const struct walls__task *task = lane->inflight[s & MASK].task;
    int64_t start = task->dispatch_ns > lane->retire_ns ? task->dispatch_ns : lane->retire_ns;
    return now - start >= WALLS__LONG_TASK_NS;
}

/* Whether lane takes tasks and has nothing outstanding. */
static bool idle(const struct walls__lane *lane)
{
    return lane->live && walls__engine_takes(lane) && lane->oldest == lane->rq_tail;
}

unsigned walls__engine_take_back(struct walls__pool *pool, struct walls__lane *lane, uint32_t after,
                                 unsigned max, struct walls__task **out)
{
    WALLS__LOCKED(pool);
    struct walls__task *got[WALLS__RING_SLOTS];
    unsigned n = 0;
    /* Newest first: the worker works from the other end. */
    for (uint32_t s = lane->rq_tail; s != after + 1 && n < max;) {
        s--;
        struct walls__inflight *e = &lane->inflight[s & MASK];
        if (!live_task(e))
            continue;
        uint32_t expected = WALLS__SLOT_QUEUED;
        if (!walls__cas(&lane->mb->rq_slots[s & MASK].state, &expected, WALLS__SLOT_CANCELLED))
            break; /* started: so has everything before it */
        e->cancelled = 1;
        got[n++] = e->task;
        e->task = NULL;
        if (lane->quota)
            (*lane->quota)++;
    }
    for (unsigned i = 0; i < n; i++)
        out[i] = got[n - 1 - i];
    return n;
}

void walls__engine_rebalance(struct walls__pool *pool, int64_t now)
{
    WALLS__LOCKED(pool);
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        if (!idle(lane))
            continue;
        struct walls__lane *victim = NULL;
        struct backlog best = {0, 0, false, false, false};
        for (unsigned k = 0; k < pool->nlanes; k++) {
            struct backlog b = backlog_of(&pool->lanes[k], now);
            if (k != i && b.movable > best.movable && (b.long_runner || lane->ran_dry)) {
                victim = &pool->lanes[k];
                best = b;
            }
        }
        if (!victim)
            continue;
        unsigned want = best.long_runner ? best.movable : (best.movable + 1) / 2;
        if (lane->quota && want > *lane->quota)
            want = *lane->quota;
        struct walls__task *moved[WALLS__RING_SLOTS];
        uint32_t after = best.stalled ? best.runner - 1 : best.runner;
        unsigned n = walls__engine_take_back(pool, victim, after, want, moved);
        for (unsigned m = 0; m < n; m++) {
            struct walls__task *task = moved[m];
            int rc = walls__engine_deal(pool, lane, task, now);
            if (rc == 0)
                continue;
            if (rc == -ENOSPC)
                walls__engine_requeue_front(pool, task);
            else
                walls__engine_complete(pool, task, WALLS_FAILED, rc, NULL, 0);
        }
        if (n)
            walls__engine_publish(lane);
    }
    for (unsigned i = 0; i < pool->nlanes; i++)
        pool->lanes[i].ran_dry = false;
}

/* Whether tasks wait in some lane's ring while another lane idles. */
static bool waiting_beside_idle(const struct walls__pool *pool, int64_t now)
{
    /* Idle lanes first: that look is cheap, and while tasks stream in
     * every lane is busy, so the backlogs are seldom counted. */
    bool idling = false;
    for (unsigned i = 0; i < pool->nlanes && !idling; i++)
        idling = idle(&pool->lanes[i]);
    if (!idling)
        return false;
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct backlog b = backlog_of(&pool->lanes[i], now);
        if (b.movable > 0 || b.unstarted)
            return true;
    }
    return false;
}

void walls__engine_watch_balance(struct walls__pool *pool, int64_t now)
{
    if (pool->balance_at || pool->nlanes < 2 || !waiting_beside_idle(pool, now))
        return;
    pool->balance_at = now + BALANCE_TICK_NS;
    pool->want_clock = true;
}

int64_t walls__engine_balance(struct walls__pool *pool, int64_t now)
{
    WALLS__LOCKED(pool);
    if (!pool->balance_at)
        return INT64_MAX;
    if (now < pool->balance_at)
        return pool->balance_at;
    pool->balance_at = 0;
    walls__engine_rebalance(pool, now);
    walls__engine_watch_balance(pool, now);
    pool->want_clock = false; /* the clock runs: it asks itself */
    return pool->balance_at ? pool->balance_at : INT64_MAX;
}

