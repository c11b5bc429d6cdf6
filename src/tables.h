/*
 * tables.h - the handle tables of pools and tasks: how a handle the caller
 * holds becomes the object behind it, checked, and how objects are made
 * and recycled.
 */
#ifndef WALLS_TABLES_H
#define WALLS_TABLES_H

#include "pool.h"

/* A new task with a fresh handle and no input yet; NULL when memory runs
 * out. */
struct walls__task *walls__task_new(struct walls__pool *pool);
/* Frees the task's buffers and makes its entry reusable. */
void walls__task_recycle(struct walls__task *task);
/* Gives the memory of freed tasks back to the system now, not when it has
 * been unused for a while (see handle.h). */
void walls__tasks_trim(void);
/* The task's copy of its input goes: it is not needed once the task ended. */
void walls__task_drop_input(struct walls__task *task);
/* Memory for a task's input or result of len bytes (malloc, or a mapping
 * of its own with huge pages when large); freed with the same len. */
void *walls__buf_alloc(size_t len);
void walls__buf_free(void *p, size_t len);
/* Whether the task has its result (acquire: the result is visible). */
bool walls__task_done(const struct walls__task *task);
/* The handle the caller holds for a live task. */
walls_task *walls__task_handle(const struct walls__task *task);
/* The live task a handle names, or NULL: no check of the process. */
struct walls__task *walls__task_get(walls_task *handle);

/* The task a handle names, checked before anything of it is touched: NULL
 * with *rc set (and the reason kept for walls_last_error) when the handle
 * is NULL (-EINVAL), stale (-EBADF), or another process's (-EPERM: a child
 * of fork() holds its parent's handles). call names the public call. */
struct walls__task *walls__task_from(walls_task *handle, const char *call, int *rc);
/* The same for a pool. */
struct walls__pool *walls__pool_from(walls_pool *handle, const char *call, int *rc);
/* The live pool a handle names, locked; NULL with *rc set otherwise (a
 * pool destroyed, or destroyed meanwhile, is -EBADF). */
struct walls__pool *walls__pool_enter(walls_pool *handle, const char *call, int *rc);
/* After taking a pool's lock: whether the handle still names this pool
 * (entries are reused). */
bool walls__pool_still(const struct walls__pool *pool, walls_pool *handle);

/* A pool entry with a fresh generation, its fields past the lock zeroed;
 * NULL when memory runs out. */
struct walls__pool *walls__pool_new(void);
/* Invalidates every handle to the pool (lock held). */
void walls__pool_retire(struct walls__pool *pool);
/* Makes the entry reusable. */
void walls__pool_release(struct walls__pool *pool);
/* The handle the caller holds for a live pool. */
walls_pool *walls__pool_handle(const struct walls__pool *pool);

#endif
