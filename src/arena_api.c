/*
 * arena_api.c - the shared arena's public calls: walls_arena_alloc(),
 * walls_arena_free(), walls_arena_ptr(), and walls_pool_locks().
 *
 * The allocator itself is arena.c, the locks lock.c; these check the
 * caller's arguments and handles and take the pool's lock around them.
 * Only the host allocates: workers never see the bookkeeping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>

#include "api.h"
#include "engine.h"
#include "internal.h"
#include "tables.h"

/* Locks the pool of a live handle that has an arena; NULL with *rc set
 * otherwise. */
static struct walls__pool *arena_pool(walls_pool *handle, const char *call, int *rc)
{
    struct walls__pool *pool = walls__pool_enter(handle, call, rc);
    if (pool && !pool->arena.base) {
        walls__pool_unlock(pool);
        *rc = walls__fail(-EINVAL, "%s: the pool has no arena (opts.arena_size 0)", call);
        return NULL;
    }
    return pool;
}

/* The reason a buffer handle was refused. */
static int bad_buffer(const char *call, walls_buf buf, int rc)
{
    return walls__fail(rc, "%s: %#llx is %s", call, (unsigned long long)buf,
                       rc == -EXDEV ? "a buffer of another pool"
                                    : "not a live buffer of this pool (freed, never "
                                      "allocated, or garbage)");
}

int walls_arena_alloc(walls_pool *handle, size_t size, walls_buf *buf)
{
    static const char call[] = "walls_arena_alloc";
    if (!buf || size == 0)
        return walls__fail(-EINVAL, "%s: %s", call, !buf ? "buf is NULL" : "size is 0");
    int rc;
    struct walls__pool *pool = arena_pool(handle, call, &rc);
    if (!pool)
        return rc;
    rc = walls__arena_alloc(&pool->arena, size, buf);
    walls__pool_unlock(pool);
    if (rc)
        walls__fail(rc, "%s: %s", call,
                    rc == -ENOSPC ? "no free run of pages that large is left in the arena"
                                  : "no memory for the arena's bookkeeping");
    return rc;
}

int walls_arena_free(walls_pool *handle, walls_buf buf)
{
    static const char call[] = "walls_arena_free";
    int rc;
    struct walls__pool *pool = arena_pool(handle, call, &rc);
    if (!pool)
        return rc;
    rc = walls__arena_free(&pool->arena, buf);
    if (rc == -EBUSY) {
        /* A task that named it may have ended without anyone looking. */
        walls__api_harvest(pool);
        rc = walls__arena_free(&pool->arena, buf);
    }
    walls__pool_unlock(pool);
    walls__engine_signal(pool);
    if (rc == -EBUSY)
        walls__fail(rc, "%s: an unfinished task names %#llx; free it once the task is done",
                    call, (unsigned long long)buf);
    else if (rc == -ENOMEM)
        walls__fail(rc, "%s: no memory for the arena's bookkeeping; the buffer stays", call);
    else if (rc)
        bad_buffer(call, buf, rc);
    return rc;
}

int walls_arena_ptr(walls_pool *handle, walls_buf buf, void **ptr, size_t *size)
{
    static const char call[] = "walls_arena_ptr";
    if (!ptr)
        return walls__fail(-EINVAL, "%s: ptr is NULL", call);
    int rc;
    struct walls__pool *pool = arena_pool(handle, call, &rc);
    if (!pool)
        return rc;
    struct walls__arena_rec *r;
    rc = walls__arena_find(&pool->arena, buf, &r);
    if (rc == 0) {
        *ptr = pool->arena.base + (size_t)r->page * WALLS__PAGE;
        if (size)
            *size = r->size;
    }
    walls__pool_unlock(pool);
    return rc ? bad_buffer(call, buf, rc) : 0;
}

int walls_pool_shared(walls_pool *handle, void **base, size_t *size)
{
    if (!base || !size)
        return walls__fail(-EINVAL, "walls_pool_shared: %s",
                           !base ? "base is NULL" : "size is NULL");
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_shared", &rc);
    if (!pool)
        return rc;
    rc = pool->arena.shared ? 0
                            : walls__fail(-ENOENT, "walls_pool_shared: the pool has no shared "
                                                   "region (opts.shared_size 0)");
    if (rc == 0) {
        *base = pool->arena.shared;
        *size = pool->arena.shared_size;
    }
    walls__pool_unlock(pool);
    return rc;
}

int walls_pool_locks(walls_pool *handle, walls_lock **locks, size_t *n)
{
    if (!locks || !n)
        return walls__fail(-EINVAL, "walls_pool_locks: %s", !locks ? "locks is NULL" : "n is NULL");
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, "walls_pool_locks", &rc);
    if (!pool)
        return rc;
    rc = pool->arena.locks ? 0 : walls__fail(-ENOENT, "walls_pool_locks: the pool has no locks "
                                                      "(opts.locks 0)");
    if (rc == 0) {
        *locks = pool->arena.locks;
        *n = pool->arena.nlocks;
    }
    walls__pool_unlock(pool);
    return rc;
}
