/*
 * wait.c - waiting for tasks: walls_wait() and walls_wait_any(), and the
 * harvesting a waiting thread does on the way.
 *
 * A waiter first spins (up to WALLS__HOST_SPIN_NS), consuming completions
 * itself when nobody else holds the pool's lock: a worker that answers
 * within microseconds is seen without a sleep on either side. It does not
 * spin while the pool's busy workers take every usable CPU (crowded()):
 * there the spin would slow the very tasks it waits for. Then it
 * counts itself among the pool's sleepers, arms the doorbells if process
 * lanes need them to report to the supervisor, harvests once more (a
 * completion published before it counted itself is its to find), and
 * sleeps on the pool's completion counter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>

#include "api.h"
#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"
#include "tables.h"

void walls__api_harvest(struct walls__pool *pool)
{
    WALLS__LOCKED(pool);
    walls__engine_harvest_all(pool);
    if (pool->attention && pool->backend->attend)
        pool->backend->attend(pool);
    walls__api_clock(pool);
}

void walls__api_clock(struct walls__pool *pool)
{
    WALLS__LOCKED(pool);
    if (pool->want_clock) {
        pool->want_clock = false;
        pool->backend->timed(pool);
    }
}

void walls__api_progress(struct walls__pool *pool)
{
    if (!walls__pool_trylock(pool))
        return;
    walls__api_harvest(pool);
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
}

/* Where a thread waiting for one task in a worker process's ring sleeps
 * besides the pool's completion counter: that ring's completion tail,
 * which the worker wakes when it finishes the task. */
struct direct_sleep {
    uint32_t *word; /* NULL: the counter alone */
    uint32_t expected;
};

/* Lock held: marks the unfinished ones of tasks that belong to pool, so
 * that their completion wakes the pool's sleepers. A task unfinished under
 * the lock cannot be recycled meanwhile. Returns false when one of them
 * was freed meanwhile (by another thread): nothing would wake us for it,
 * and the caller reports it instead of sleeping.
 *
 * A single task in a worker process's ring is marked for a direct wake
 * (*direct filled in) where the kernel has futex_waitv(2): the worker
 * wakes the waiter itself, instead of ringing the supervisor, which would
 * wake it after consuming the completion. A task moved to another lane
 * meanwhile is marked there for the doorbell (ring_push()), and the
 * supervisor's wake on the counter reaches the waiter as before. */
static bool mark_waited(struct walls__pool *pool, walls_task *const *tasks, size_t n,
                        struct direct_sleep *direct)
{
    WALLS__LOCKED(pool);
    bool rung = false;
    struct walls__lane *direct_lane = NULL;
    for (size_t i = 0; i < n; i++) {
        struct walls__task *task = walls__task_get(tasks[i]);
        if (!task)
            return false;
        if (task->pool != pool || walls__task_done(task))
            continue;
        walls__fetch_or(&task->flags, WALLS__TASK_WAITED);
        /* In a ring: its worker rings when it finishes it (a task still
         * queued is marked when it is dealt, ring_push()). */
        struct walls__lane *lane = task->where == WALLS__AT_LANE ? &pool->lanes[task->lane] : NULL;
        if (lane && lane->mb) {
            uint8_t *want = &lane->mb->ring_want[task->seq % WALLS__RING_SLOTS];
            bool wake = n == 1 && lane->shared && !lane->relayed && walls__futex_wait2_works();
            walls__store_relaxed(want, (uint8_t)(walls__load_relaxed(want) |
                                                 (wake ? WALLS__WANT_WAKE : WALLS__WANT_BELL)));
            direct_lane = wake ? lane : NULL;
            rung = true;
        }
    }
    /* Full fence: the marks are stored before the harvest that follows
     * reads the completion rings (a worker fences between publishing and
     * reading its mark), and before the tail a direct sleep expects is
     * read: a completion published after this read wakes it, or moves
     * the tail past what it expects. */
    if (rung)
        walls__fence();
    if (direct_lane) {
        direct->word = &direct_lane->mb->cq.tail;
        direct->expected = walls__load_relaxed(direct->word);
    }
    return true;
}

void walls__api_sleep(struct walls__pool *pool, uint32_t seq, int64_t timeout_ns,
                      walls_task *const *tasks, size_t n)
{
    if (!tasks)
        walls__fetch_add(&pool->any_waiters, 1);
    walls__fetch_add(&pool->done_waiters, 1);
    /* Thread workers read done_waiters (seq-cst above) after they publish;
     * process workers read the flag armed here (walls__engine_arm fences).
     * Then look once more, waiting for the lock if need be: a completion
     * published before we counted ourselves is ours to find. The marks go
     * first: a completion consumed from here on sees them (under the
     * lock), and one consumed before moved done_seq past seq. */
    walls__pool_lock(pool);
    struct direct_sleep direct = {NULL, 0};
    bool sleep = !tasks || mark_waited(pool, tasks, n, &direct);
    if (!tasks && pool->backend->arm_for_sleepers && pool->state != WALLS__POOL_DEAD &&
        pool->lanes)
        walls__engine_arm(pool, walls__engine_armed(pool) | WALLS__ARM_EVERY);
    walls__api_harvest(pool);
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    /* The mailbox outlives this sleep unless the pool is destroyed
     * meanwhile, which wakes the counter; a word unmapped by then only
     * makes the call return early. A futex_waitv refused returns at once:
     * the task is marked for the worker's wake, which nobody would hear,
     * and the caller looks again, marking it for the doorbell. */
    if (sleep && walls__load_acquire(&pool->done_seq) == seq) {
        if (direct.word)
            walls__futex_wait2(&pool->done_seq, seq, direct.word, direct.expected, timeout_ns);
        else
            walls__futex_wait(&pool->done_seq, seq, timeout_ns, false);
    }
    walls__fetch_add(&pool->done_waiters, (uint32_t)-1);
    if (!tasks)
        walls__fetch_add(&pool->any_waiters, (uint32_t)-1);
}

static int64_t deadline_of(int64_t timeout_ms)
{
    if (timeout_ms < 0 || timeout_ms > INT64_MAX / 4000000)
        return INT64_MAX;
    return walls__now_ns() + timeout_ms * 1000000;
}

static void fill_result(const struct walls__task *task, struct walls_result *res)
{
    res->status = task->status;
    res->code = task->code;
    res->out = task->out;
    res->out_len = task->out_len;
    res->attempts = task->attempts;
    res->flags = task->result_flags;
}

/* Which of tasks[0..n) has finished, the lowest index first; n if none.
 * A task freed meanwhile is -EBADF (in *rc). The pool to sleep on, and
 * whether the tasks span several pools, come back too. */
static size_t finished(walls_task *const *tasks, size_t n, struct walls__pool **first,
                       bool *mixed, int *rc)
{
    *first = NULL;
    *mixed = false;
    for (size_t i = 0; i < n; i++) {
        struct walls__task *task = walls__task_get(tasks[i]);
        if (!task) {
            *rc = walls__fail(-EBADF, "walls_wait_any: tasks[%zu] was freed meanwhile", i);
            return i;
        }
        if (!*first)
            *first = task->pool;
        else if (task->pool != *first)
            *mixed = true;
        if (walls__task_done(task))
            return i;
    }
    return n;
}

/* Harvests each pool of tasks[0..n) once (tasks of one pool are usually
 * adjacent); unless must, giving way to a pool whose lock is busy. */
static void look(walls_task *const *tasks, size_t n, bool must)
{
    struct walls__pool *last = NULL;
    for (size_t k = 0; k < n; k++) {
        struct walls__task *task = walls__task_get(tasks[k]);
        if (!task || task->pool == last)
            continue;
        last = task->pool;
        if (must)
            walls__pool_lock(last);
        else if (!walls__pool_trylock(last))
            continue;
        walls__api_harvest(last);
        walls__pool_unlock(last);
        walls__engine_signal(last);
    }
}

/* Whether a waiter spinning on pool would take a CPU its workers need:
 * the workers with tasks, and the waiter, outnumber the usable CPUs. Then
 * it sleeps at once; a wake-up costs it a few microseconds, where a spin
 * beside busy workers would slow all of them. The count is a hint, read
 * without the lock: tasks in rings, up to one per worker, which counts a
 * worker with two tasks as two while another idles. */
static bool crowded(const struct walls__pool *pool)
{
    uint64_t busy = walls__load_relaxed(&pool->in_rings);
    if (busy > pool->nlanes)
        busy = pool->nlanes;
    return busy + 1 > pool->cpus;
}

/* Waits until one of tasks[0..n) (checked already) has finished: spins a
 * while, harvesting each of their pools, then sleeps on the first task's
 * pool (tasks of several pools: for a millisecond at a time, since none of
 * the others can wake it). Returns 0 with *index set, -ETIMEDOUT or
 * -EBADF. */
static int wait_for(walls_task *const *tasks, size_t n, int64_t timeout_ms, size_t *index)
{
    int64_t deadline = deadline_of(timeout_ms);
    int64_t spin_until = walls__now_ns() + WALLS__HOST_SPIN_NS;
    bool looked = false;
    for (;;) {
        struct walls__pool *first;
        bool mixed;
        int rc = 0;
        size_t i = finished(tasks, n, &first, &mixed, &rc);
        if (i < n) {
            *index = i;
            return rc;
        }
        /* The counter first: a completion after it wakes the sleep below. */
        uint32_t seq = walls__load_acquire(&first->done_seq);
        look(tasks, n, false);
        if ((i = finished(tasks, n, &first, &mixed, &rc)) < n) {
            *index = i;
            return rc;
        }
        int64_t now = walls__now_ns();
        if (now >= deadline) {
            /* The look above gives way to a busy lock; the last one waits
             * for it, so that a task whose completion was published (its
             * bell rang) is not reported unfinished. */
            if (looked)
                return -ETIMEDOUT;
            looked = true;
            look(tasks, n, true);
            continue;
        }
        /* Tasks of several pools: the others' completions cannot wake a
         * sleep on the first, so spin as before. */
        if (now < spin_until && !mixed && crowded(first))
            spin_until = now;
        if (now < spin_until) {
            for (int k = 0; k < 64; k++)
                walls__cpu_relax();
            continue;
        }
        int64_t left = deadline - now, cap = mixed ? 1000000 : 1000000000;
        /* Tasks of several pools: the others' completions cannot wake it,
         * and it sleeps a millisecond at a time. */
        walls__api_sleep(first, seq, left > cap ? cap : left, tasks, n);
    }
}

int walls_wait(walls_task *handle, int64_t timeout_ms, struct walls_result *res)
{
    int rc;
    struct walls__task *task = walls__task_from(handle, "walls_wait", &rc);
    if (!task)
        return rc;
    if (!res)
        return walls__fail(-EINVAL, "walls_wait: res is NULL");
    if (timeout_ms < -1)
        return walls__fail(-EINVAL, "walls_wait: timeout_ms %lld is below -1",
                           (long long)timeout_ms);
    size_t index;
    if (!walls__task_done(task) && (rc = wait_for(&handle, 1, timeout_ms, &index)) != 0)
        return rc == -EBADF ? walls__fail(rc, "walls_wait: the task was freed meanwhile") : rc;
    fill_result(task, res);
    return 0;
}

int walls_wait_any(walls_task **handles, size_t n, int64_t timeout_ms, size_t *index)
{
    if (!handles || n == 0 || !index)
        return walls__fail(-EINVAL, "walls_wait_any: %s", !handles ? "tasks is NULL"
                                                           : n == 0 ? "n is 0"
                                                                    : "index is NULL");
    if (timeout_ms < -1)
        return walls__fail(-EINVAL, "walls_wait_any: timeout_ms %lld is below -1",
                           (long long)timeout_ms);
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (!handles[i])
            return walls__fail(-EINVAL, "walls_wait_any: tasks[%zu] is NULL", i);
        if (!walls__task_from(handles[i], "walls_wait_any", &rc))
            return rc;
    }
    return wait_for(handles, n, timeout_ms, index);
}

int walls_wait_all(walls_task **handles, size_t n, int64_t timeout_ms)
{
    static const char call[] = "walls_wait_all";
    if (!handles || n == 0)
        return walls__fail(-EINVAL, "%s: %s", call, !handles ? "tasks is NULL" : "n is 0");
    if (timeout_ms < -1)
        return walls__fail(-EINVAL, "%s: timeout_ms %lld is below -1", call,
                           (long long)timeout_ms);
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (!handles[i])
            return walls__fail(-EINVAL, "%s: tasks[%zu] is NULL", call, i);
        if (!walls__task_from(handles[i], call, &rc))
            return rc;
    }
    /* One after the other, within one deadline: the time spent on one is
     * time the others ran too. In order: a waiter woken for each task
     * consumes the finished ones and refills the rings as it goes, which
     * thread workers would otherwise stop to do (waiting for the last task
     * first made a thread pool's batch a fifth to a third slower). */
    int64_t deadline = deadline_of(timeout_ms);
    for (size_t i = 0; i < n; i++) {
        struct walls__task *task = walls__task_get(handles[i]);
        if (!task)
            return walls__fail(-EBADF, "%s: tasks[%zu] was freed meanwhile", call, i);
        if (walls__task_done(task))
            continue;
        int64_t left_ms = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - walls__now_ns();
            left_ms = left > 0 ? (left + 999999) / 1000000 : 0;
        }
        size_t index;
        int rc = wait_for(&handles[i], 1, left_ms, &index);
        if (rc == -EBADF)
            return walls__fail(rc, "%s: tasks[%zu] was freed meanwhile", call, i);
        if (rc != 0)
            return rc;
    }
    return 0;
}
