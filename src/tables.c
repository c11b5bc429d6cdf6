/*
 * tables.c - the handle tables of pools and tasks (see tables.h).
 *
 * Both are generation-checked tables (handle.c): a stale handle is refused,
 * never followed. Every lookup for a public call also checks that the
 * object belongs to the calling process before anything of it is touched,
 * since a child of fork() holds copies of its parent's handles, whose
 * locks, rings and workers are its parent's. The check is a load: the
 * process id comes from walls__self(). A pool entry's lock is initialised
 * once and never destroyed: a caller holding a stale handle may still take
 * it, and then finds the generation changed.
 */
#define _GNU_SOURCE
#include "tables.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "atomic.h"
#include "internal.h"

static void pool_entry_init(void *entry)
{
    struct walls__pool *pool = entry;
    /* Held for short stretches by the submitting thread and the workers
     * alike: spinning a little before sleeping beats a futex round trip. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&pool->lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

static struct walls__handles task_table = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .entry_size = sizeof(struct walls__task),
    .chunk_entries = 4096,
};

static struct walls__handles pool_table = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .entry_size = sizeof(struct walls__pool),
    .chunk_entries = 16,
    .init_entry = pool_entry_init,
};

void walls__tables_at_fork(enum walls__fork_phase phase)
{
    if (phase == WALLS__FORK_PREPARE) {
        pthread_mutex_lock(&pool_table.lock);
        pthread_mutex_lock(&task_table.lock);
    } else if (phase == WALLS__FORK_RESET) {
        pool_table.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
        task_table.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    } else {
        pthread_mutex_unlock(&task_table.lock);
        pthread_mutex_unlock(&pool_table.lock);
    }
}

/* Whether an object of process owner may be used here: a child of fork()
 * holds its parent's handles, and must not touch what they name. */
static bool ours(pid_t owner, const char *call, const char *what, int *rc)
{
    if (owner == walls__self())
        return true;
    *rc = walls__fail(-EPERM,
                      "%s: the %s belongs to process %d; a child of fork() cannot use its "
                      "parent's %ss",
                      call, what, (int)owner, what);
    return false;
}

/* A handle another process made: a parent's, given to a worker's task, or
 * a child's, sent back to its parent. Nothing of it is looked at. */
static int foreign(const char *call, const char *what)
{
    return walls__fail(-EPERM,
                       "%s: the %s was made by another process (a parent, a child of fork() "
                       "or a worker cannot use each other's %ss)",
                       call, what, what);
}

/* ---- tasks ------------------------------------------------------------------ */

struct walls__task *walls__task_new(struct walls__pool *pool)
{
    struct walls__task *task = walls__handle_alloc(&task_table);
    if (!task)
        return NULL;
    task->flags = 0;
    task->pool = pool;
    task->next = task->prev = NULL;
    task->collectable = false;
    task->status = WALLS_OK;
    task->code = 0;
    task->out_len = 0;
    task->in_len = 0;
    task->attempts = 0;
    task->result_flags = 0;
    task->cancel_asked = false;
    task->n_inputs = 0;
    task->has_output = false;
    task->arena_held = false;
    task->user = NULL;
    task->in = task->small_in;
    task->out = task->small_out;
    return task;
}

/* Buffers this large are mapped on their own, with huge pages where the
 * kernel gives them: a 64 MiB copy then takes 32 page faults, not 16384. */
#define BIG_BUF ((size_t)4 << 20)

void *walls__buf_alloc(size_t len)
{
    if (len < BIG_BUF)
        return malloc(len);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

void walls__buf_free(void *p, size_t len)
{
    if (!p)
        return;
    if (len < BIG_BUF)
        free(p);
    else
        munmap(p, len);
}

void walls__task_drop_input(struct walls__task *task)
{
    if (task->in != task->small_in)
        walls__buf_free(task->in, task->in_len);
    task->in = task->small_in;
}

void walls__task_recycle(struct walls__task *task)
{
    walls__task_drop_input(task);
    if (task->out != task->small_out)
        walls__buf_free(task->out, task->out_len);
    task->out = task->small_out;
    walls__handle_release(&task_table, task);
}

void walls__tasks_trim(void)
{
    walls__handle_trim(&task_table, 0);
}

bool walls__task_done(const struct walls__task *task)
{
    /* Acquire: the result fields are written before DONE is set. */
    return walls__load_acquire(&task->flags) & WALLS__TASK_DONE;
}

walls_task *walls__task_handle(const struct walls__task *task)
{
    return (walls_task *)(uintptr_t)walls__handle_of(task);
}

struct walls__task *walls__task_get(walls_task *handle)
{
    return walls__handle_get(&task_table, (uint64_t)(uintptr_t)handle);
}

struct walls__task *walls__task_from(walls_task *handle, const char *call, int *rc)
{
    if (!handle) {
        *rc = walls__fail(-EINVAL, "%s: task is NULL", call);
        return NULL;
    }
    struct walls__task *task = walls__task_get(handle);
    if (!task && walls__handle_foreign((uint64_t)(uintptr_t)handle)) {
        *rc = foreign(call, "task");
        return NULL;
    }
    if (!task) {
        *rc = walls__fail(-EBADF, "%s: the task was freed (stale handle)", call);
        return NULL;
    }
    return ours(walls__load_relaxed(&task->pool->owner), call, "task", rc) ? task : NULL;
}

/* ---- pools ------------------------------------------------------------------ */

struct walls__pool *walls__pool_new(void)
{
    struct walls__pool *pool = walls__handle_alloc(&pool_table);
    if (!pool)
        return NULL;
    /* A stale handle's caller may still take this entry's lock: reset it
     * under the lock (that caller then sees the new generation). */
    pthread_mutex_lock(&pool->lock);
    size_t keep = offsetof(struct walls__pool, owner);
    memset((char *)pool + keep, 0, sizeof *pool - keep);
    pthread_mutex_unlock(&pool->lock);
    return pool;
}

void walls__pool_retire(struct walls__pool *pool)
{
    walls__handle_retire(pool);
}

void walls__pool_release(struct walls__pool *pool)
{
    walls__handle_release(&pool_table, pool);
}

walls_pool *walls__pool_handle(const struct walls__pool *pool)
{
    return (walls_pool *)(uintptr_t)walls__handle_of(pool);
}

bool walls__pool_still(const struct walls__pool *pool, walls_pool *handle)
{
    return walls__handle_of(pool) == (uint64_t)(uintptr_t)handle;
}

struct walls__pool *walls__pool_from(walls_pool *handle, const char *call, int *rc)
{
    if (!handle) {
        *rc = walls__fail(-EINVAL, "%s: pool is NULL", call);
        return NULL;
    }
    struct walls__pool *pool = walls__handle_get(&pool_table, (uint64_t)(uintptr_t)handle);
    if (!pool && walls__handle_foreign((uint64_t)(uintptr_t)handle)) {
        *rc = foreign(call, "pool");
        return NULL;
    }
    if (!pool) {
        *rc = walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
        return NULL;
    }
    return ours(walls__load_relaxed(&pool->owner), call, "pool", rc) ? pool : NULL;
}

struct walls__pool *walls__pool_enter(walls_pool *handle, const char *call, int *rc)
{
    struct walls__pool *pool = walls__pool_from(handle, call, rc);
    if (!pool)
        return NULL;
    walls__pool_lock(pool);
    if (!walls__pool_still(pool, handle) || pool->state == WALLS__POOL_DEAD) {
        walls__pool_unlock(pool);
        *rc = walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
        return NULL;
    }
    return pool;
}
