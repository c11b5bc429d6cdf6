/*
 * wait.c - waiting for tasks: walls_wait() and walls_wait_any(), and the
 * harvesting a waiting thread does on the way.
 *
 * A waiter first spins (up to WALLS__HOST_SPIN_NS), consuming completions
 * itself when nobody else holds the pool's lock: a worker that answers
 * within microseconds is seen without a sleep on either side. Then it
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
}

void walls__api_progress(struct walls__pool *pool)
{
    if (!walls__pool_trylock(pool))
        return;
    walls__api_harvest(pool);
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
}

void walls__api_sleep(struct walls__pool *pool, uint32_t seq, int64_t timeout_ns)
{
    walls__fetch_add(&pool->done_waiters, 1);
    /* Thread workers read done_waiters (seq-cst above) after they publish;
     * process workers read the flag armed here (walls__engine_arm fences).
     * Then look once more, waiting for the lock if need be: a completion
     * published before we counted ourselves is ours to find. */
    walls__pool_lock(pool);
    if (pool->backend->arm_for_sleepers && pool->state != WALLS__POOL_DEAD && pool->lanes)
        walls__engine_arm(pool, walls__engine_armed(pool) | WALLS__ARM_EVERY);
    walls__api_harvest(pool);
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    if (walls__load_acquire(&pool->done_seq) == seq)
        walls__futex_wait(&pool->done_seq, seq, timeout_ns, false);
    walls__fetch_add(&pool->done_waiters, (uint32_t)-1);
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
    if (walls__task_done(task)) {
        fill_result(task, res);
        return 0;
    }
    struct walls__pool *pool = task->pool;
    int64_t deadline = deadline_of(timeout_ms);
    int64_t spin_until = walls__now_ns() + WALLS__HOST_SPIN_NS;
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        if (walls__task_done(task))
            break;
        walls__api_progress(pool);
        if (walls__task_done(task))
            break;
        int64_t now = walls__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        if (now < spin_until) {
            for (int i = 0; i < 64; i++)
                walls__cpu_relax();
            continue;
        }
        int64_t left = deadline - now;
        walls__api_sleep(pool, seq, left > 1000000000 ? 1000000000 : left);
    }
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
    int64_t deadline = deadline_of(timeout_ms);
    int64_t spin_until = walls__now_ns() + WALLS__HOST_SPIN_NS;
    for (;;) {
        struct walls__pool *first = NULL;
        bool mixed = false;
        uint32_t seq = 0;
        for (size_t i = 0; i < n; i++) {
            struct walls__task *task = walls__task_get(handles[i]);
            if (!task)
                return walls__fail(-EBADF, "walls_wait_any: tasks[%zu] was freed meanwhile", i);
            if (!first) {
                first = task->pool;
                seq = walls__load_acquire(&first->done_seq);
            } else if (task->pool != first) {
                mixed = true;
            }
            if (walls__task_done(task)) {
                *index = i;
                return 0;
            }
        }
        struct walls__pool *last = NULL;
        for (size_t i = 0; i < n; i++) {
            struct walls__task *task = walls__task_get(handles[i]);
            if (task && task->pool != last) {
                last = task->pool;
                walls__api_progress(last);
            }
        }
        int64_t now = walls__now_ns();
        for (size_t i = 0; i < n; i++) {
            struct walls__task *task = walls__task_get(handles[i]);
            if (task && walls__task_done(task)) {
                *index = i;
                return 0;
            }
        }
        if (now >= deadline)
            return -ETIMEDOUT;
        if (now < spin_until) {
            for (int i = 0; i < 16; i++)
                walls__cpu_relax();
            continue;
        }
        /* Tasks of several pools: none of them can wake us, so look again
         * every millisecond. */
        int64_t left = deadline - now;
        int64_t cap = mixed ? 1000000 : 1000000000;
        walls__api_sleep(first, seq, left > cap ? cap : left);
    }
}
