/*
 * submit.c - a task's public calls apart from waiting: walls_submit(),
 * walls_submit_ex(), walls_cancel() and walls_task_free().
 *
 * Each checks its arguments (naming the first wrong one for
 * walls_last_error()), finds the objects its handles name (refusing stale
 * handles and another process's), and hands the work to the engine, or to
 * the backend for what only it can do (locating a task function for a
 * worker process, stopping a running task).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"
#include "options.h"
#include "tables.h"

/* Checks the task's arena buffers and pins them. Lock held. */
static int take_buffers(struct walls__pool *pool, struct walls__task *task,
                        const struct walls_task_opts *opts)
{
    if (!pool->arena.base)
        return walls__fail(-EINVAL, "walls_submit_ex: arena buffers given to a pool without "
                                    "an arena (opts.arena_size 0)");
    unsigned n = opts->n_inputs;
    for (unsigned i = 0; i <= n; i++) {
        walls_buf buf = i < n ? opts->inputs[i] : opts->output;
        if (i == n && !buf)
            break;
        struct walls__arena_rec *r;
        int rc = walls__arena_find(&pool->arena, buf, &r);
        const char *what = rc == -EXDEV ? "a buffer of another pool"
                                        : "not a live buffer of this pool";
        if (rc && i < n)
            return walls__fail(rc, "walls_submit_ex: inputs[%u] %#llx is %s", i,
                               (unsigned long long)buf, what);
        if (rc)
            return walls__fail(rc, "walls_submit_ex: output %#llx is %s",
                               (unsigned long long)buf, what);
        if (i == n && r->out_busy)
            return walls__fail(-EBUSY, "walls_submit_ex: output %#llx is already the output "
                                       "of an unfinished task",
                               (unsigned long long)buf);
        task->refs[i] = (struct walls__bufref){(uint64_t)r->page * WALLS__PAGE, r->size};
    }
    task->n_inputs = (uint8_t)n;
    task->has_output = opts->output != 0;
    walls__arena_pin(&pool->arena, task->refs, n, task->has_output, true);
    task->arena_held = true;
    return 0;
}

/* Checks what walls_submit_ex() was given that needs no pool: 0 or
 * -EINVAL/-E2BIG with the reason kept. */
static int check_submit(const char *call, walls_fn *fn, const void *in, size_t in_len,
                        const struct walls_task_opts *opts, walls_task **out_task)
{
    if (!fn || !out_task || (in_len > 0 && !in))
        return walls__fail(-EINVAL, "%s: %s", call,
                           !fn         ? "fn is NULL"
                           : !out_task ? "task (the out-parameter) is NULL"
                                       : "in is NULL with in_len above 0");
    if (opts) {
        if (opts->timeout_ms < -1)
            return walls__fail(-EINVAL, "%s: opts.timeout_ms %lld is below -1", call,
                               (long long)opts->timeout_ms);
        if (opts->n_inputs > WALLS_TASK_INPUTS_MAX)
            return walls__fail(-EINVAL, "%s: opts.n_inputs %u is over WALLS_TASK_INPUTS_MAX %u",
                               call, opts->n_inputs, WALLS_TASK_INPUTS_MAX);
        if (opts->n_inputs && !opts->inputs)
            return walls__fail(-EINVAL, "%s: opts.inputs is NULL with n_inputs %u", call,
                               opts->n_inputs);
        for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
            if (opts->reserved[i])
                return walls__fail(-EINVAL, "%s: opts.reserved[%zu] is not zero", call, i);
    }
    if (in_len > WALLS_IO_MAX)
        return walls__fail(-E2BIG, "%s: in_len %zu is over WALLS_IO_MAX %zu", call, in_len,
                           WALLS_IO_MAX);
    return 0;
}

/* The task's time limit: its own, else the pool's. */
static int64_t limit_of(const struct walls__pool *pool, const struct walls_task_opts *opts)
{
    if (opts && opts->timeout_ms == -1)
        return 0;
    if (opts && opts->timeout_ms > 0)
        return walls__ms_to_ns(opts->timeout_ms);
    return pool->default_limit_ns;
}

/* A new task of pool holding a copy of in; NULL (the reason kept) when
 * memory runs out. */
static struct walls__task *task_with_input(struct walls__pool *pool, const void *in,
                                           size_t in_len, const char *call)
{
    struct walls__task *task = walls__task_new(pool);
    if (!task) {
        walls__fail(-ENOMEM, "%s: no memory for the task", call);
        return NULL;
    }
    task->in_len = (uint32_t)in_len;
    if (in_len > WALLS__TASK_SMALL && !(task->in = walls__buf_alloc(in_len))) {
        walls__task_recycle(task);
        walls__fail(-ENOMEM, "%s: no memory for a copy of %zu bytes of input", call, in_len);
        return NULL;
    }
    if (in_len)
        memcpy(task->in, in, in_len);
    return task;
}

/* Lock held: whether the pool takes n more tasks of fn, whose place (module
 * and offset) it finds. 0, or -errno with the reason kept. */
static int admit(struct walls__pool *pool, walls_pool *handle, walls_fn *fn, size_t n,
                 uint16_t *module, uint64_t *offset, const char *call)
{
    if (!walls__pool_still(pool, handle) || pool->state == WALLS__POOL_DEAD)
        return walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
    if (pool->state != WALLS__POOL_ALIVE)
        return walls__fail(-ESHUTDOWN, "%s: the pool is being destroyed", call);
    /* Waiting: the unfinished tasks beyond one per worker. Completions
     * are taken when ring slots are wanted, not as they come: before
     * refusing, the finished tasks are counted out. */
    uint64_t limit = (uint64_t)pool->max_queued + pool->nlanes;
    uint64_t unfinished = pool->submitted - pool->completed;
    if (pool->max_queued && unfinished + n > limit) {
        uint64_t was = pool->completed;
        walls__api_harvest(pool);
        unfinished = pool->submitted - pool->completed;
        /* Who sleeps on any completion hears of these at the unlock. */
        if (pool->completed != was)
            pool->wake_owed = true;
    }
    if (pool->max_queued && unfinished + n > limit)
        return walls__fail(-EAGAIN,
                           "%s: %llu tasks unfinished on %u workers; %zu more would take the "
                           "waiting ones past opts.max_queued %u",
                           call, (unsigned long long)unfinished, pool->nlanes, n,
                           pool->max_queued);
    int rc = pool->backend->locate(pool, fn, module, offset);
    if (rc != 0)
        return walls__fail(rc, "%s: %s", call,
                           rc == -ENOENT ? "fn lies in no loaded module (process placement needs "
                                           "a function of the program or of a shared library)"
                           : rc == -ENAMETOOLONG ? "the path of fn's module does not fit a ring slot"
                           : rc == -ESTALE ? "fn's library was replaced at its path and loaded "
                                             "again, and the workers would find another file "
                                             "under that path: the old one, if this pool's "
                                             "workers or the fork server loaded it (a new "
                                             "pool, or a fork server started after "
                                             "walls_fini(), runs the new one)"
                                           : "no memory to record fn's module");
    return 0;
}

/* Lock held: gives an admitted task its time limit and stamps, and tells
 * the workers to report starts from the first limited task on. The
 * timekeeper hears of a limited task when it is dealt to a ring
 * (push_task()): before that it cannot start. */
static void stamp(struct walls__pool *pool, struct walls__task *task,
                  const struct walls_task_opts *opts, int64_t now)
{
    task->submit_ns = now;
    task->limit_ns = limit_of(pool, opts);
    task->user = opts ? opts->user : NULL;
    if (!task->limit_ns)
        return;
    pool->ntimed++;
    if (!pool->timed_ever) {
        /* From now on workers say when they start a task. */
        pool->timed_ever = true;
        for (unsigned i = 0; i < pool->nlanes; i++)
            if (pool->lanes[i].mb)
                walls__store_relaxed(&pool->lanes[i].mb->report_start, 1u);
    }
}

/* walls_submit() and walls_submit_ex(), each named as itself in what it
 * says of a failure. */
static int submit_as(const char *call, walls_pool *handle, walls_fn *fn, const void *in,
                     size_t in_len, const struct walls_task_opts *opts, walls_task **out_task)
{
    int rc;
    struct walls__pool *pool = walls__pool_from(handle, call, &rc);
    if (!pool)
        return rc;
    if ((rc = check_submit(call, fn, in, in_len, opts, out_task)) != 0)
        return rc;
    struct walls__task *task = task_with_input(pool, in, in_len, call);
    if (!task)
        return -ENOMEM;

    walls__pool_lock(pool);
    rc = admit(pool, handle, fn, 1, &task->module, &task->offset, call);
    if (rc == 0 && opts && (opts->n_inputs || opts->output))
        rc = take_buffers(pool, task, opts);
    if (rc != 0) {
        walls__pool_unlock(pool);
        walls__task_recycle(task);
        return rc;
    }
    stamp(pool, task, opts, walls__now_ns());
    walls__engine_queue(pool, task);
    *out_task = walls__task_handle(task);
    walls__api_clock(pool);
    walls__pool_unlock(pool);
    return 0;
}

int walls_submit(walls_pool *handle, walls_fn *fn, const void *in, size_t in_len,
                 walls_task **out_task)
{
    return submit_as("walls_submit", handle, fn, in, in_len, NULL, out_task);
}

int walls_submit_ex(walls_pool *handle, walls_fn *fn, const void *in, size_t in_len,
                    const struct walls_task_opts *opts, walls_task **out_task)
{
    return submit_as("walls_submit_ex", handle, fn, in, in_len, opts, out_task);
}

int walls_submit_batch(walls_pool *handle, walls_fn *fn, const struct walls_input *in, size_t n,
                       walls_task **out_tasks)
{
    static const char call[] = "walls_submit_batch";
    int rc;
    struct walls__pool *pool = walls__pool_from(handle, call, &rc);
    if (!pool)
        return rc;
    if (!fn || !in || !out_tasks || n == 0)
        return walls__fail(-EINVAL, "%s: %s", call,
                           !fn      ? "fn is NULL"
                           : !in    ? "in is NULL"
                           : !out_tasks ? "tasks (the out-parameter) is NULL"
                                        : "n is 0");
    /* A batch that could not fit an idle pool fails before its inputs are
     * read or copied (admit() says the same of any batch, under the lock). */
    if (pool->max_queued && n > (uint64_t)pool->max_queued + pool->nlanes)
        return walls__fail(-EAGAIN,
                           "%s: %zu tasks can never wait at once: opts.max_queued %u plus "
                           "one per worker (%u) is the most; split the batch",
                           call, n, pool->max_queued, pool->nlanes);
    if (n > UINT32_MAX)
        return walls__fail(-ENOMEM, "%s: n %zu is more tasks than a pool can hold", call, n);
    for (size_t i = 0; i < n; i++) {
        if (in[i].len > 0 && !in[i].data)
            return walls__fail(-EINVAL, "%s: in[%zu].data is NULL with len %zu", call, i,
                               in[i].len);
        if (in[i].len > WALLS_IO_MAX)
            return walls__fail(-E2BIG, "%s: in[%zu].len %zu is over WALLS_IO_MAX %zu", call, i,
                               in[i].len, WALLS_IO_MAX);
    }
    struct walls__task **tasks = malloc(n * sizeof *tasks);
    if (!tasks)
        return walls__fail(-ENOMEM, "%s: no memory for %zu tasks", call, n);
    size_t made = 0;
    for (; made < n; made++)
        if (!(tasks[made] = task_with_input(pool, in[made].data, in[made].len, call)))
            break;
    rc = made < n ? -ENOMEM : 0;

    if (rc == 0) {
        walls__pool_lock(pool);
        uint16_t module;
        uint64_t offset;
        rc = admit(pool, handle, fn, n, &module, &offset, call);
        if (rc == 0) {
            int64_t now = walls__now_ns();
            for (size_t i = 0; i < n; i++) {
                tasks[i]->module = module;
                tasks[i]->offset = offset;
                stamp(pool, tasks[i], NULL, now);
            }
            walls__engine_queue_many(pool, tasks, n);
            walls__api_clock(pool);
        }
        walls__pool_unlock(pool);
    }
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            out_tasks[i] = walls__task_handle(tasks[i]);
    else
        while (made > 0)
            walls__task_recycle(tasks[--made]);
    free(tasks);
    return rc;
}

void *walls_task_user(walls_task *handle)
{
    int rc;
    struct walls__task *task = walls__task_from(handle, "walls_task_user", &rc);
    return task ? task->user : NULL;
}

int walls_cancel(walls_task *handle)
{
    return walls_cancel_ex(handle, 0);
}

int walls_cancel_ex(walls_task *handle, unsigned flags)
{
    int rc;
    if (flags & ~WALLS_CANCEL_QUEUED)
        return walls__fail(-EINVAL, "walls_cancel_ex: unknown flags %#x",
                           flags & ~WALLS_CANCEL_QUEUED);
    struct walls__task *task = walls__task_from(handle, "walls_cancel", &rc);
    if (!task)
        return rc;
    if (walls__task_done(task))
        return walls__fail(-EALREADY, "walls_cancel: the task has finished already");
    struct walls__pool *pool = task->pool;
    walls__pool_lock(pool);
    /* It may have finished without anyone having looked yet. */
    if (!walls__task_done(task) && task->where == WALLS__AT_LANE)
        walls__engine_harvest(pool, &pool->lanes[task->lane]);
    rc = walls__task_done(task) ? -EALREADY : walls__engine_cancel(pool, task);
    bool queued_only = flags & WALLS_CANCEL_QUEUED;
    if (rc == -EBUSY && !queued_only)
        rc = pool->backend->stop_running(pool, &pool->lanes[task->lane], task->seq,
                                         WALLS_CANCELLED);
    if (rc == 0 && !walls__task_done(task))
        task->cancel_asked = true;
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    if (rc)
        walls__fail(rc, rc == -EALREADY ? "walls_cancel: the task has finished already"
                        : queued_only   ? "walls_cancel_ex: the task is running "
                                          "(WALLS_CANCEL_QUEUED leaves it)"
                                        : "walls_cancel: the task is running in a thread, "
                                          "which cannot be stopped");
    return rc;
}

void walls_task_free(walls_task *handle)
{
    if (!handle)
        return;
    struct walls__task *task = walls__task_get(handle);
    /* Freed already, or another process's (a child of fork()): nothing. */
    if (!task || walls__load_relaxed(&task->pool->owner) != walls__self())
        return;
    /* A finished task that is on no list is the caller's alone. */
    if (walls__task_done(task) && !walls__load_acquire(&task->collectable)) {
        walls__handle_retire(task);
        walls__fetch_or(&task->flags, WALLS__TASK_FREED);
        walls__task_recycle(task);
        return;
    }
    /* Otherwise under the pool's lock, so that completion (which may put
     * the task on the collect list, or recycle a freed one) sees either all
     * of this or none. The pool entry outlives the pool, so its lock is
     * always there. */
    struct walls__pool *pool = task->pool;
    walls__pool_lock(pool);
    if (!walls__task_done(task))
        walls__engine_cancel(pool, task);
    if (task->collectable)
        walls__engine_uncollect(pool, task);
    /* From here on the handle is dead, even while the task still runs. */
    walls__handle_retire(task);
    uint32_t old = walls__fetch_or(&task->flags, WALLS__TASK_FREED);
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    if ((old & (WALLS__TASK_DONE | WALLS__TASK_FREED)) == WALLS__TASK_DONE)
        walls__task_recycle(task);
}
