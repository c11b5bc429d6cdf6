/*
 * pool.c - the public task API and the host side of every mailbox.
 *
 * A submitted task waits in the pool's pending queue until a worker's
 * request ring has room; dispatch copies it into a ring slot and records,
 * in that worker's in-flight table, which task went to which slot. That
 * record, not anything the worker says, is what ties a crash to its task.
 *
 * Completions are consumed ("harvested") by whoever gets there first: a
 * thread worker right after it publishes, a host thread spinning in
 * walls_wait(), or a process pool's supervisor when a doorbell rings. Each
 * completion is checked against the in-flight table before it is believed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "sandbox.h"

#define MASK (WALLS__RING_SLOTS - 1)

static void pool_entry_init(void *entry)
{
    struct walls__pool *pool = entry;
    pthread_mutex_init(&pool->lock, NULL);
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

static void wake_timekeeper(struct walls__pool *pool);

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

static struct walls__pool *pool_get(walls_pool *handle)
{
    return walls__handle_get(&pool_table, (uint64_t)(uintptr_t)handle);
}

/* After taking a pool's lock: whether the handle still names this pool.
 * Entries are reused, so a handle checked before the lock may have been
 * destroyed, and its entry given to a new pool, meanwhile. */
static bool pool_still(struct walls__pool *pool, walls_pool *handle)
{
    return walls__handle_of(pool) == (uint64_t)(uintptr_t)handle;
}

/* The pool a handle names, checked before anything of it is touched: NULL
 * with *rc set (and the reason kept for walls_last_error) when the handle
 * is NULL, stale, or another process's (a child of fork() holds its
 * parent's handles: it must not touch their rings, locks or workers). */
static struct walls__pool *pool_from(walls_pool *handle, const char *call, int *rc)
{
    if (!handle) {
        *rc = walls__fail(-EINVAL, "%s: pool is NULL", call);
        return NULL;
    }
    struct walls__pool *pool = pool_get(handle);
    if (!pool) {
        *rc = walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
        return NULL;
    }
    pid_t owner = walls__load_relaxed(&pool->owner);
    if (owner != walls__self()) {
        *rc = walls__fail(-EPERM,
                          "%s: the pool belongs to process %d; a child of fork() cannot use its "
                          "parent's pools",
                          call, (int)owner);
        return NULL;
    }
    return pool;
}

/* The live pool a handle names, locked; NULL with *rc set otherwise (a
 * destroyed pool is -EBADF). */
static struct walls__pool *pool_lock(walls_pool *handle, const char *call, int *rc)
{
    struct walls__pool *pool = pool_from(handle, call, rc);
    if (!pool)
        return NULL;
    pthread_mutex_lock(&pool->lock);
    if (!pool_still(pool, handle) || pool->state == WALLS__POOL_DEAD) {
        pthread_mutex_unlock(&pool->lock);
        *rc = walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
        return NULL;
    }
    return pool;
}

static struct walls__task *task_get(walls_task *handle)
{
    return walls__handle_get(&task_table, (uint64_t)(uintptr_t)handle);
}

/* The task a handle names, checked like pool_from(). */
static struct walls__task *task_from(walls_task *handle, const char *call, int *rc)
{
    if (!handle) {
        *rc = walls__fail(-EINVAL, "%s: task is NULL", call);
        return NULL;
    }
    struct walls__task *task = task_get(handle);
    if (!task) {
        *rc = walls__fail(-EBADF, "%s: the task was freed (stale handle)", call);
        return NULL;
    }
    pid_t owner = walls__load_relaxed(&task->pool->owner);
    if (owner != walls__self()) {
        *rc = walls__fail(-EPERM,
                          "%s: the task belongs to process %d; a child of fork() cannot use its "
                          "parent's tasks",
                          call, (int)owner);
        return NULL;
    }
    return task;
}

static bool task_done(struct walls__task *task)
{
    /* Acquire: the result fields are written before DONE is set. */
    return walls__load_acquire(&task->flags) & WALLS__TASK_DONE;
}

static void list_unlink(struct walls__task_list *list, struct walls__task *task)
{
    if (task->prev)
        task->prev->next = task->next;
    else
        list->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        list->tail = task->prev;
    task->next = task->prev = NULL;
}

static void list_append(struct walls__task_list *list, struct walls__task *task)
{
    task->next = NULL;
    task->prev = list->tail;
    if (list->tail)
        list->tail->next = task;
    else
        list->head = task;
    list->tail = task;
}

static void collect_unlink(struct walls__pool *pool, struct walls__task *task)
{
    list_unlink(&pool->collect, task);
    /* Release: a free that sees false (acquire) comes after the unlink. */
    walls__store_release(&task->collectable, false);
}

/* The task's copy of its input is needed until it ends (a task lost with
 * its process runs again from it). */
static void drop_input(struct walls__task *task)
{
    if (task->in != task->small_in)
        free(task->in);
    task->in = task->small_in;
}

static void task_recycle(struct walls__task *task)
{
    drop_input(task);
    if (task->out != task->small_out)
        free(task->out);
    task->out = task->small_out;
    walls__handle_release(&task_table, task);
}

/* ---- statistics --------------------------------------------------------- */

static unsigned hist_bucket(uint64_t ns)
{
    if (ns < 16)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned sub = (unsigned)(ns >> (msb - 4)) & 15u;
    return (msb - 3) * 16 + sub;
}

static uint64_t hist_value(unsigned bucket)
{
    if (bucket < 16)
        return bucket;
    unsigned msb = bucket / 16 + 3, sub = bucket % 16;
    uint64_t low = (uint64_t)(16 + sub) << (msb - 4);
    return low + ((uint64_t)1 << (msb - 4)) / 2;
}

static uint64_t hist_percentile(const uint64_t *hist, uint64_t total, unsigned pct)
{
    if (total == 0)
        return 0;
    uint64_t rank = (total * pct + 99) / 100, seen = 0;
    for (unsigned b = 0; b < WALLS__HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return hist_value(b);
    }
    return 0;
}

/* ---- completion ---------------------------------------------------------- */

static void pool_bump(struct walls__pool *pool)
{
    walls__fetch_add(&pool->done_seq, 1);
}

static void pending_unlink(struct walls__pool *pool, struct walls__task *task)
{
    list_unlink(&pool->pending, task);
    pool->npending--;
}

static void complete_at(struct walls__pool *pool, struct walls__task *task,
                        enum walls_status status, int code, const void *out, uint32_t out_len,
                        int64_t now);

void walls__pool_complete(struct walls__pool *pool, struct walls__task *task,
                          enum walls_status status, int code, const void *out, uint32_t out_len)
{
    complete_at(pool, task, status, code, out, out_len, walls__now_ns());
}

static void complete_at(struct walls__pool *pool, struct walls__task *task,
                        enum walls_status status, int code, const void *out, uint32_t out_len,
                        int64_t now)
{
    if (task->where == WALLS__AT_PENDING)
        pending_unlink(pool, task);
    else if (task->where == WALLS__AT_WORKER)
        pool->in_rings--;
    if (task->limit_ns)
        pool->ntimed--;
    if (task->arena_held) {
        walls__arena_pin(&pool->arena, task->refs, task->n_inputs, task->has_output, false);
        task->arena_held = false;
    }
    task->where = WALLS__AT_DONE;
    drop_input(task);
    task->status = status;
    task->code = code;
    task->out_len = 0;
    if (out && out_len) {
        /* Memory for the bytes written only, taken now. */
        unsigned char *copy = out_len <= WALLS__TASK_SMALL ? task->small_out : malloc(out_len);
        if (copy) {
            memcpy(copy, out, out_len);
            task->out = copy;
            task->out_len = out_len;
        } else {
            task->status = WALLS_FAILED;
            task->code = -ENOMEM;
        }
    }
    pool->completed++;
    pool->by_status[task->status]++;
    int64_t lat = now - task->submit_ns;
    pool->hist[hist_bucket(lat > 0 ? (uint64_t)lat : 0)]++;
    pool_bump(pool);
    walls__fetch_add(&pool->unsignalled, 1);
    if (pool->fd_armed && !(walls__load_relaxed(&task->flags) & WALLS__TASK_FREED)) {
        list_append(&pool->collect, task);
        walls__store_relaxed(&task->collectable, true);
    }
    /* Release: the result above is visible to whoever sees DONE. */
    uint32_t old = walls__fetch_or(&task->flags, WALLS__TASK_DONE);
    if (old & WALLS__TASK_FREED)
        task_recycle(task);
}

void walls__pool_signal(struct walls__pool *pool)
{
    /* Seq-cst read of the sleeper count, after the seq-cst bump of
     * done_seq: a waiter counts itself, then re-reads done_seq. */
    if (walls__fetch_add(&pool->done_waiters, 0) > 0)
        walls__futex_wake(&pool->done_seq, INT_MAX, false);
    uint32_t completed = __atomic_exchange_n(&pool->unsignalled, 0, __ATOMIC_ACQ_REL);
    if (completed && walls__load_relaxed(&pool->fd_armed)) {
        /* Under the lock: a destroy in between closes the descriptor, and
         * its number may be the program's again. */
        pthread_mutex_lock(&pool->lock);
        if (pool->fd_armed && pool->event_fd >= 0) {
            uint64_t count = completed;
            ssize_t rc = write(pool->event_fd, &count, sizeof count);
            (void)rc;
        }
        pthread_mutex_unlock(&pool->lock);
    }
}

void walls__pool_requeue_front(struct walls__pool *pool, struct walls__task *task)
{
    if (task->where == WALLS__AT_WORKER)
        pool->in_rings--;
    task->where = WALLS__AT_PENDING;
    task->prev = NULL;
    task->next = pool->pending.head;
    if (pool->pending.head)
        pool->pending.head->prev = task;
    else
        pool->pending.tail = task;
    pool->pending.head = task;
    pool->npending++;
}

/* ---- rings, host side ----------------------------------------------------- */

void walls__ring_reset(struct walls__worker *w)
{
    struct walls__mailbox *mb = w->mb;
    memset(&mb->rq, 0, sizeof mb->rq);
    memset(&mb->cq, 0, sizeof mb->cq);
    mb->magic = WALLS__MAILBOX_MAGIC;
    mb->version = WALLS__MAILBOX_VERSION;
    mb->worker_state = WALLS__WORKER_STARTING;
    mb->start_error = 0;
    mb->worker_pid = 0;
    mb->fault_sig = mb->exited = mb->memory_hit = mb->tid = 0;
    mb->exit_code = 0;
    mb->notify_fd = -1;
    mb->report_start = w->pool->timed_ever;
    mb->peak_rss_kb = 0;
    w->rq_tail = w->oldest = w->cq_head = 0;
    w->modules_sent = 0;
    memset(w->inflight, 0, sizeof w->inflight);
    w->broke = false;
    w->kill_reason = -1;
    w->kill_code = 0;
    w->kill_flags = 0;
    w->kill_targeted = false;
    w->stuck = false;
}

static unsigned ring_free(const struct walls__worker *w)
{
    return WALLS__RING_SLOTS - (w->rq_tail - w->oldest);
}

static void ring_push(struct walls__worker *w, uint16_t kind, uint16_t module, uint64_t offset,
                      const void *data, uint32_t len, uint32_t out_cap, struct walls__task *task)
{
    struct walls__req *slot = &w->mb->rq_slots[w->rq_tail & MASK];
    unsigned refs = task ? task->n_inputs + (task->has_output ? 1u : 0u) : 0u;
    slot->n_inputs = task ? task->n_inputs : 0;
    slot->has_output = task && task->has_output;
    if (refs) {
        size_t room = refs * sizeof(struct walls__bufref);
        memcpy(slot->data + WALLS__SLOT_DATA - room, task->refs, room);
    }
    uint32_t seq = w->rq_tail;
    struct walls__req *req = &w->mb->rq_slots[seq & MASK];
    struct walls__inflight *e = &w->inflight[seq & MASK];
    uint32_t tag = ++w->next_tag;
    req->seq = seq;
    req->tag = tag;
    req->kind = kind;
    req->module = module;
    req->offset = offset;
    req->in_len = (uint16_t)len;
    req->out_cap = out_cap;
    if (len)
        memcpy(req->data, data, len);
    walls__store_relaxed(&req->state, WALLS__SLOT_QUEUED);
    e->task = task;
    e->tag = tag;
    e->kind = (uint8_t)kind;
    e->retired = 0;
    e->cancelled = 0;
    e->abandoned = 0;
    w->rq_tail = seq + 1;
    if (task) {
        if (w->proc)
            w->proc->tasks_given++;
        task->where = WALLS__AT_WORKER;
        task->worker = (int)w->index;
        task->seq = seq;
    }
}

static void ring_publish(struct walls__worker *w)
{
    struct walls__mailbox *mb = w->mb;
    /* Release: the slots written above are visible before the new tail. */
    walls__store_release(&mb->rq.tail, w->rq_tail);
    /* Full fence: the tail is stored before we read the sleeper count,
     * mirroring the worker's count-then-read in wait_for_request(). */
    walls__fence();
    if (walls__load_relaxed(&mb->rq.tail_waiters))
        walls__futex_wake(&mb->rq.tail, 1, w->pool->placement != WALLS_THREADS);
}

void walls__ring_push_stop(struct walls__worker *w)
{
    ring_push(w, WALLS__REQ_STOP, 0, 0, NULL, 0, 0, NULL);
    ring_publish(w);
}

static unsigned modules_needed(const struct walls__worker *w, const struct walls__task *task)
{
    if (task->module == WALLS__MODULE_RAW || task->module < w->modules_sent)
        return 0;
    return task->module + 1u - w->modules_sent;
}

void walls__pool_arm(struct walls__pool *pool, bool every, bool refill)
{
    if (pool->doorbells_armed == every && pool->refill_armed == refill)
        return;
    walls__store_relaxed(&pool->doorbells_armed, every);
    walls__store_relaxed(&pool->refill_armed, refill);
    if (pool->placement != WALLS_THREADS) {
        for (unsigned i = 0; i < pool->nworkers; i++) {
            struct walls__mailbox *mb = pool->workers[i].mb;
            if (!mb)
                continue;
            walls__store_relaxed(&mb->doorbell_armed, every ? 1u : 0u);
            walls__store_relaxed(&mb->refill_armed, refill ? 1u : 0u);
        }
    }
    /* Full fence: the flags are stored before the caller looks at the
     * completion rings again (a worker fences between publishing and
     * reading the flags). */
    walls__fence();
}

/* Whether w's process takes no more tasks: it is to be recycled, or has
 * been given all the tasks it may run. */
static bool retiring(const struct walls__pool *pool, const struct walls__worker *w)
{
    return w->proc && (w->proc->recycling ||
                       (pool->recycle_after && w->proc->tasks_given >= pool->recycle_after));
}

/* Whether w keeps up with what it is given: awake, and either idle or
 * finishing tasks every few microseconds with a short backlog. Packing
 * short tasks onto such a worker lets the others sleep instead of
 * spinning against the submitting thread for the CPUs; a worker busy with
 * a long task has not completed anything lately and is passed over. The
 * mailbox words read here are hints: a lie only misplaces the liar's own
 * tasks. */
static bool keeps_up(struct walls__worker *w, int64_t now)
{
    struct walls__mailbox *mb = w->mb;
    uint32_t done = walls__load_relaxed(&mb->cq.tail);
    if (done != w->seen_done) {
        /* Only a finished task shows the pace; a control request's
         * acknowledgement does not. */
        uint32_t last = done - 1;
        if ((uint32_t)(last - w->oldest) < (uint32_t)(w->rq_tail - w->oldest) &&
            w->inflight[last & MASK].kind == WALLS__REQ_TASK)
            w->seen_ns = now;
        w->seen_done = done;
    }
    if (walls__load_relaxed(&mb->rq.tail_waiters))
        return false;
    uint32_t outstanding = w->rq_tail - done;
    if (outstanding == 0)
        return true;
    return outstanding < WALLS__PACK_BACKLOG && now - w->seen_ns < WALLS__PACK_RECENT_NS &&
           w->last_turn_ns < WALLS__PACK_LONG_NS;
}

/* The worker for task: the last one used if it keeps up, else the running
 * worker with the most room; NULL when every ring is full. */
static struct walls__worker *pick_worker(struct walls__pool *pool, const struct walls__task *task,
                                         int64_t now)
{
    struct walls__worker *last = &pool->workers[pool->rr % pool->nworkers];
    if (last->state == WALLS__W_UP && !last->stuck && !retiring(pool, last) &&
        ring_free(last) >= 1 + modules_needed(last, task) && keeps_up(last, now))
        return last;
    struct walls__worker *best = NULL;
    unsigned best_free = 0;
    for (unsigned k = 0; k < pool->nworkers; k++) {
        struct walls__worker *w = &pool->workers[(pool->rr + k) % pool->nworkers];
        if (w->state != WALLS__W_UP || w->stuck || retiring(pool, w))
            continue;
        unsigned room = ring_free(w);
        if (room >= 1 + modules_needed(w, task) && room > best_free) {
            best = w;
            best_free = room;
            if (room == WALLS__RING_SLOTS)
                break;
        }
    }
    /* Ties go to the worker used last: it is the one most likely awake. */
    if (best)
        pool->rr = best->index;
    return best;
}

static void dispatch_at(struct walls__pool *pool, int64_t now);
static int stage_in(struct walls__pool *pool, struct walls__worker *w, struct walls__task *task);

void walls__pool_break(struct walls__pool *pool)
{
    pool->broken = true;
    while (pool->pending.head)
        walls__pool_complete(pool, pool->pending.head, WALLS_BROKEN, 0, NULL, 0);
}

void walls__pool_dispatch(struct walls__pool *pool)
{
    if (pool->pending.head)
        dispatch_at(pool, walls__now_ns());
}

static void dispatch_at(struct walls__pool *pool, int64_t now)
{
    if (!pool->pending.head)
        return;
    if (pool->broken) {
        walls__pool_break(pool);
        return;
    }
    while (pool->pending.head) {
        struct walls__task *task = pool->pending.head;
        struct walls__worker *w = pick_worker(pool, task, now);
        if (!w)
            break;
        /* A staged output is filled while the task is still queued: if
         * that fails, it ends like any queued task. */
        int staged = stage_in(pool, w, task);
        if (staged != 0) {
            walls__pool_complete(pool, task, WALLS_FAILED, staged, NULL, 0);
            continue;
        }
        pending_unlink(pool, task);
        while (modules_needed(w, task)) {
            const char *path = pool->modules[w->modules_sent].path;
            ring_push(w, WALLS__REQ_MODULE, (uint16_t)w->modules_sent, 0, path,
                      (uint32_t)strlen(path), 0, NULL);
            w->modules_sent++;
        }
        task->dispatch_ns = now;
        ring_push(w, WALLS__REQ_TASK, task->module, task->offset, task->in, task->in_len,
                  (uint32_t)pool->max_output, task);
        pool->in_rings++;
        ring_publish(w);
    }
    if (!pool->pending.head && pool->refill_armed)
        walls__pool_arm(pool, pool->doorbells_armed, false);
}

/* A worker wrote something the protocol does not allow. A process worker
 * is killed and its tasks end as WALLS_PROTOCOL when it is reaped; a
 * thread worker cannot be killed, so only the task named is failed. */
static void worker_broke(struct walls__pool *pool, struct walls__worker *w,
                         struct walls__inflight *e)
{
    if (pool->placement == WALLS_THREADS) {
        if (e && e->task) {
            walls__pool_complete(pool, e->task, WALLS_PROTOCOL, 0, NULL, 0);
            e->task = NULL;
        }
        if (e)
            e->retired = 1;
        return;
    }
    if (!w->broke)
        walls__procs_kill(w, WALLS_PROTOCOL, false, 0);
}

void walls__inflight_unhold(struct walls__pool *pool, struct walls__inflight *e)
{
    if (!e->held)
        return;
    walls__arena_pin(&pool->arena, e->held->refs, e->held->n_inputs, e->held->has_output, false);
    free(e->held);
    e->held = NULL;
}

/* Copies len bytes between the arena and a staging memfd, at the same
 * offset. Returns 0 or -errno. */
static int stage_copy(struct walls__pool *pool, int fd, const struct walls__bufref *ref, bool in)
{
    unsigned char *p = pool->arena.base + ref->offset;
    for (uint64_t done = 0; done < ref->len;) {
        size_t n = (size_t)(ref->len - done);
        off_t at = (off_t)(ref->offset + done);
        ssize_t rc = in ? pwrite(fd, p + done, n, at) : pread(fd, p + done, n, at);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc < 0 ? -errno : -EIO;
        done += (uint64_t)rc;
    }
    return 0;
}

/* A sandboxed process is about to run a task with an output: its staging
 * copy of that buffer starts as the buffer is, whatever the process wrote
 * there before. Returns 0 or -errno. */
static int stage_in(struct walls__pool *pool, struct walls__worker *w, struct walls__task *task)
{
    if (!task->has_output || !w->proc || w->proc->staging_fd < 0)
        return 0;
    return stage_copy(pool, w->proc->staging_fd, &task->refs[task->n_inputs], true);
}

/* It returned: the staging copy goes into the arena buffer, and its pages
 * back to the system. Only the buffer's own range is read, whatever the
 * worker wrote elsewhere. */
static void stage_out(struct walls__pool *pool, struct walls__proc *proc, struct walls__task *task)
{
    const struct walls__bufref *out = &task->refs[task->n_inputs];
    size_t span = (out->len + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
    stage_copy(pool, proc->staging_fd, out, false);
    fallocate(proc->staging_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)out->offset,
              (off_t)span);
}

void walls__pool_harvest(struct walls__pool *pool, struct walls__worker *w)
{
    if (w->broke || (w->state != WALLS__W_UP && w->state != WALLS__W_STOPPING))
        return;
    struct walls__mailbox *mb = w->mb;
    /* Acquire: completion bytes are read only after the tail that
     * published them. */
    uint32_t tail = walls__load_acquire(&mb->cq.tail);
    uint32_t avail = tail - w->cq_head;
    if (avail > w->rq_tail - w->cq_head) {
        worker_broke(pool, w, NULL);
        return;
    }
    int64_t now = tail != w->cq_head ? walls__now_ns() : 0;
    while (w->cq_head != tail) {
        struct walls__cqe *cqe = &mb->cq_slots[w->cq_head & MASK];
        struct walls__cqe h;
        /* One snapshot of the header: the worker may still be writing. */
        memcpy(&h, cqe, WALLS__SLOT_HEADER);
        bool ok = (uint32_t)(h.seq - w->oldest) < (uint32_t)(w->rq_tail - w->oldest);
        struct walls__inflight *e = &w->inflight[h.seq & MASK];
        ok = ok && !e->retired && e->tag == h.tag;
        if (!ok) {
            worker_broke(pool, w, NULL);
            return;
        }
        if (e->kind != WALLS__REQ_TASK || e->cancelled) {
            if (h.kind != WALLS__CQE_ACK) {
                worker_broke(pool, w, e);
                return;
            }
        } else if (e->abandoned) {
            /* A thread finally returned from a task that timed out. */
            w->stuck = false;
            walls__inflight_unhold(pool, e);
        } else if (h.kind == WALLS__CQE_DONE) {
            if ((h.status != WALLS_OK && h.status != WALLS_FAILED && h.status != WALLS_PROTOCOL) ||
                h.out_len > pool->max_output || (h.status == WALLS_PROTOCOL && h.out_len)) {
                worker_broke(pool, w, e);
                if (w->broke)
                    return;
                w->cq_head++;
                continue;
            }
            e->task->attempts++;
            w->last_turn_ns = now - e->task->dispatch_ns;
            if (e->task->has_output && w->proc && w->proc->staging_fd >= 0)
                stage_out(pool, w->proc, e->task);
            complete_at(pool, e->task, (enum walls_status)h.status, h.code, cqe->data, h.out_len,
                        now);
        } else if (h.kind == WALLS__CQE_NOFN) {
            e->task->attempts++;
            walls__pool_complete(pool, e->task, WALLS_FAILED, h.code < 0 ? h.code : -ENOENT, NULL,
                                 0);
        } else {
            worker_broke(pool, w, e);
            if (w->broke)
                return;
            w->cq_head++;
            continue;
        }
        e->task = NULL;
        e->retired = 1;
        w->cq_head++;
    }
    /* Release: we are done reading the consumed completion slots. */
    walls__store_release(&mb->cq.head, w->cq_head);
    uint32_t was = w->oldest;
    while (w->oldest != w->rq_tail && w->inflight[w->oldest & MASK].retired)
        w->oldest++;
    if (w->oldest != was && pool->ntimed)
        w->retire_ns = now;
    if (w->proc)
        walls__procs_harvested(pool, w);
}

/* The first request of w the worker has not finished, if it is a live
 * task: the one a process worker is running (or about to). */
static struct walls__inflight *first_task(struct walls__worker *w, uint32_t *seq)
{
    for (uint32_t s = w->oldest; s != w->rq_tail; s++) {
        struct walls__inflight *e = &w->inflight[s & MASK];
        if (e->retired || e->kind != WALLS__REQ_TASK || e->cancelled)
            continue;
        if (e->abandoned || !e->task)
            return NULL;
        *seq = s;
        return e;
    }
    return NULL;
}

/* A thread task overran: it ends now, its thread runs on, and the tasks
 * queued behind it go to other threads. */
static void abandon(struct walls__pool *pool, struct walls__worker *w, struct walls__inflight *e,
                    uint32_t seq)
{
    struct walls__task *task = e->task;
    task->attempts++;
    if (task->arena_held) {
        /* Its thread may still use its buffers: they stay pinned until it
         * returns. Without memory for that note, they stay pinned for good. */
        e->held = malloc(sizeof *e->held);
        if (e->held) {
            e->held->n_inputs = task->n_inputs;
            e->held->has_output = task->has_output;
            memcpy(e->held->refs, task->refs, sizeof task->refs);
        }
        task->arena_held = false;
    }
    walls__pool_complete(pool, task, WALLS_TIMEOUT, 0, NULL, 0);
    e->task = NULL;
    e->abandoned = 1;
    w->stuck = true;
    struct walls__task *requeue[WALLS__RING_SLOTS];
    unsigned n = 0;
    for (uint32_t s = seq + 1; s != w->rq_tail; s++) {
        struct walls__inflight *b = &w->inflight[s & MASK];
        if (b->retired || b->kind != WALLS__REQ_TASK || b->cancelled || !b->task)
            continue;
        uint32_t expected = WALLS__SLOT_QUEUED;
        if (!walls__cas(&w->mb->rq_slots[s & MASK].state, &expected, WALLS__SLOT_CANCELLED))
            continue;
        b->cancelled = 1;
        requeue[n++] = b->task;
        b->task = NULL;
    }
    while (n > 0)
        walls__pool_requeue_front(pool, requeue[--n]);
}

int64_t walls__pool_check_deadlines(struct walls__pool *pool, int64_t now)
{
    if (pool->ntimed == 0 || !pool->workers)
        return INT64_MAX;
    int64_t next = now + WALLS__DEADLINE_TICK_NS;
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct walls__worker *w = &pool->workers[i];
        uint32_t seq;
        struct walls__inflight *e;
        if (w->state != WALLS__W_UP || w->kill_reason >= 0 || !(e = first_task(w, &seq)) ||
            !e->task->limit_ns)
            continue;
        /* It cannot have started before it was dispatched, nor (one task at
         * a time) before the one ahead of it was retired; within those
         * bounds, believe the worker's own clock. */
        int64_t start = e->task->dispatch_ns > w->retire_ns ? e->task->dispatch_ns : w->retire_ns;
        if (walls__load_acquire(&w->mb->current_seq) == seq) {
            int64_t claimed = (int64_t)walls__load_relaxed(&w->mb->current_start_ns);
            if (claimed >= e->task->dispatch_ns && claimed < start)
                start = claimed;
        }
        int64_t deadline = start + e->task->limit_ns;
        if (now < deadline) {
            if (deadline < next)
                next = deadline;
        } else if (pool->placement == WALLS_THREADS) {
            abandon(pool, w, e, seq);
        } else {
            walls__procs_kill(w, WALLS_TIMEOUT, true, seq);
        }
    }
    walls__pool_dispatch(pool);
    return next;
}

void walls__pool_harvest_all(struct walls__pool *pool)
{
    if (pool->state == WALLS__POOL_DEAD || !pool->workers)
        return;
    for (unsigned i = 0; i < pool->nworkers; i++)
        walls__pool_harvest(pool, &pool->workers[i]);
    walls__pool_dispatch(pool);
}

/* Harvest every worker if nobody else is at it. */
static void pool_progress(struct walls__pool *pool)
{
    if (pthread_mutex_trylock(&pool->lock) != 0)
        return;
    walls__pool_harvest_all(pool);
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
}

/* ---- waiting ---------------------------------------------------------------- */

/* Sleep until the pool's done_seq moves past seq or timeout_ns passes. A
 * process pool is asked to ring its doorbells first, so that completions
 * reach the supervisor while nobody spins. */
static void pool_sleep(struct walls__pool *pool, uint32_t seq, int64_t timeout_ns)
{
    walls__fetch_add(&pool->done_waiters, 1);
    /* Thread workers read done_waiters (seq-cst above) after they publish;
     * process workers read the flag armed here (walls__pool_arm fences).
     * Then look once more, waiting for the lock if need be: a completion
     * published before we counted ourselves is ours to find. */
    pthread_mutex_lock(&pool->lock);
    if (pool->placement != WALLS_THREADS && pool->state != WALLS__POOL_DEAD && pool->workers)
        walls__pool_arm(pool, true, pool->refill_armed);
    walls__pool_harvest_all(pool);
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
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
    struct walls__task *task = task_from(handle, "walls_wait", &rc);
    if (!task)
        return rc;
    if (!res)
        return walls__fail(-EINVAL, "walls_wait: res is NULL");
    if (timeout_ms < -1)
        return walls__fail(-EINVAL, "walls_wait: timeout_ms %lld is below -1",
                           (long long)timeout_ms);
    if (task_done(task)) {
        fill_result(task, res);
        return 0;
    }
    struct walls__pool *pool = task->pool;
    int64_t deadline = deadline_of(timeout_ms);
    int64_t spin_until = walls__now_ns() + WALLS__HOST_SPIN_NS;
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        if (task_done(task))
            break;
        pool_progress(pool);
        if (task_done(task))
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
        pool_sleep(pool, seq, left > 1000000000 ? 1000000000 : left);
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
        if (!task_from(handles[i], "walls_wait_any", &rc))
            return rc;
    }
    int64_t deadline = deadline_of(timeout_ms);
    int64_t spin_until = walls__now_ns() + WALLS__HOST_SPIN_NS;
    for (;;) {
        struct walls__pool *first = NULL;
        bool mixed = false;
        uint32_t seq = 0;
        for (size_t i = 0; i < n; i++) {
            struct walls__task *task = task_get(handles[i]);
            if (!task)
                return walls__fail(-EBADF, "walls_wait_any: tasks[%zu] was freed meanwhile", i);
            if (!first) {
                first = task->pool;
                seq = walls__load_acquire(&first->done_seq);
            } else if (task->pool != first) {
                mixed = true;
            }
            if (task_done(task)) {
                *index = i;
                return 0;
            }
        }
        struct walls__pool *last = NULL;
        for (size_t i = 0; i < n; i++) {
            struct walls__task *task = task_get(handles[i]);
            if (task && task->pool != last) {
                last = task->pool;
                pool_progress(last);
            }
        }
        int64_t now = walls__now_ns();
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) {
            struct walls__task *task = task_get(handles[i]);
            if (task && task_done(task)) {
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
        int64_t left = deadline - now;
        int64_t cap = mixed ? 1000000 : 1000000000;
        pool_sleep(first, seq, left > cap ? cap : left);
    }
}

/* ---- tasks ---------------------------------------------------------------- */

/* Checks the task's arena buffers and pins them. Pool lock held. */
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
        if (rc)
            return i < n ? walls__fail(rc, "walls_submit_ex: inputs[%u] %#llx is %s", i,
                                       (unsigned long long)buf,
                                       rc == -EXDEV ? "a buffer of another pool"
                                                    : "not a live buffer of this pool")
                         : walls__fail(rc, "walls_submit_ex: output %#llx is %s",
                                       (unsigned long long)buf,
                                       rc == -EXDEV ? "a buffer of another pool"
                                                    : "not a live buffer of this pool");
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

int walls_submit(walls_pool *handle, walls_fn *fn, const void *in, size_t in_len,
                 walls_task **out_task)
{
    return walls_submit_ex(handle, fn, in, in_len, NULL, out_task);
}

int walls_submit_ex(walls_pool *handle, walls_fn *fn, const void *in, size_t in_len,
                    const struct walls_task_opts *opts, walls_task **out_task)
{
    static const char call[] = "walls_submit";
    int rc;
    struct walls__pool *pool = pool_from(handle, call, &rc);
    if (!pool)
        return rc;
    if (!fn || !out_task || (in_len > 0 && !in))
        return walls__fail(-EINVAL, "%s: %s", call,
                           !fn         ? "fn is NULL"
                           : !out_task ? "task (the out-parameter) is NULL"
                                       : "in is NULL with in_len above 0");
    unsigned nbufs = 0;
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
        nbufs = opts->n_inputs + (opts->output ? 1u : 0u);
    }
    if (in_len > WALLS_INLINE_MAX - nbufs * sizeof(struct walls__bufref))
        return walls__fail(-E2BIG, "%s: in_len %zu is over the %zu bytes a ring slot has for "
                                   "it (WALLS_INLINE_MAX %u, less 16 per arena buffer)",
                           call, in_len, WALLS_INLINE_MAX - nbufs * sizeof(struct walls__bufref),
                           WALLS_INLINE_MAX);
    struct walls__task *task = walls__handle_alloc(&task_table);
    if (!task)
        return walls__fail(-ENOMEM, "%s: no memory for the task", call);
    task->flags = 0;
    task->pool = pool;
    task->next = task->prev = NULL;
    task->status = WALLS_OK;
    task->code = 0;
    task->out_len = 0;
    task->attempts = 0;
    task->result_flags = 0;
    task->n_inputs = 0;
    task->has_output = false;
    task->arena_held = false;
    task->in_len = (uint32_t)in_len;
    task->in = in_len <= WALLS__TASK_SMALL ? task->small_in : malloc(in_len);
    task->out = task->small_out;
    if (!task->in) {
        task->in = task->small_in;
        task_recycle(task);
        return walls__fail(-ENOMEM, "%s: no memory for a copy of %zu bytes of input", call,
                           in_len);
    }
    if (in_len)
        memcpy(task->in, in, in_len);

    pthread_mutex_lock(&pool->lock);
    rc = 0;
    if (!pool_still(pool, handle) || pool->state == WALLS__POOL_DEAD) {
        rc = walls__fail(-EBADF, "%s: the pool was destroyed (stale handle)", call);
    } else if (pool->state != WALLS__POOL_ALIVE) {
        rc = walls__fail(-ESHUTDOWN, "%s: the pool is being destroyed", call);
    } else if (pool->placement == WALLS_THREADS) {
        task->module = WALLS__MODULE_RAW;
        task->offset = (uint64_t)(uintptr_t)fn;
    } else if ((rc = walls__procs_locate(pool, fn, &task->module, &task->offset)) != 0) {
        rc = walls__fail(rc, "%s: %s", call,
                         rc == -ENOENT ? "fn lies in no loaded module (process placement needs "
                                         "a function of the program or of a shared library)"
                         : rc == -ENAMETOOLONG ? "the path of fn's module does not fit a ring slot"
                                               : "no memory to record fn's module");
    }
    if (rc == 0 && nbufs)
        rc = take_buffers(pool, task, opts);
    if (rc != 0) {
        pthread_mutex_unlock(&pool->lock);
        task_recycle(task);
        return rc;
    }
    task->submit_ns = walls__now_ns();
    task->limit_ns = pool->default_limit_ns;
    if (opts && opts->timeout_ms == -1)
        task->limit_ns = 0;
    else if (opts && opts->timeout_ms > 0)
        task->limit_ns = opts->timeout_ms > INT64_MAX / 1000000 ? INT64_MAX / 4
                                                                 : opts->timeout_ms * 1000000;
    bool first_timed = false;
    if (task->limit_ns) {
        first_timed = pool->ntimed == 0;
        pool->ntimed++;
        if (!pool->timed_ever) {
            /* From now on workers say when they start a task. */
            pool->timed_ever = true;
            for (unsigned i = 0; i < pool->nworkers; i++)
                if (pool->workers[i].mb)
                    walls__store_relaxed(&pool->workers[i].mb->report_start, 1u);
        }
    }
    pool->submitted++;
    task->where = WALLS__AT_PENDING;
    list_append(&pool->pending, task);
    pool->npending++;
    dispatch_at(pool, task->submit_ns);
    if (pool->npending)
        walls__pool_arm(pool, pool->doorbells_armed, true);
    *out_task = (walls_task *)(uintptr_t)walls__handle_of(task);
    bool need_timer = task->limit_ns && pool->placement == WALLS_THREADS && !pool->timer_started;
    if (first_timed)
        wake_timekeeper(pool);
    pthread_mutex_unlock(&pool->lock);
    if (need_timer)
        walls__threads_start_timer(pool);
    return 0;
}

/* The thread that watches deadlines may be asleep with no deadline to
 * wait for: tell it there is one now. */
static void wake_timekeeper(struct walls__pool *pool)
{
    if (pool->placement == WALLS_THREADS) {
        walls__fetch_add(&pool->timer_word, 1);
        walls__futex_wake(&pool->timer_word, 1, false);
    } else {
        uint64_t one = 1;
        ssize_t rc = write(pool->cmd_fd, &one, sizeof one);
        (void)rc;
    }
}

/* Cancels a task that has not started. Pool lock held. */
static int cancel_locked(struct walls__pool *pool, struct walls__task *task)
{
    if (task->where == WALLS__AT_DONE)
        return -EALREADY;
    if (task->where == WALLS__AT_PENDING) {
        walls__pool_complete(pool, task, WALLS_CANCELLED, 0, NULL, 0);
        return 0;
    }
    struct walls__worker *w = &pool->workers[task->worker];
    struct walls__req *req = &w->mb->rq_slots[task->seq & MASK];
    uint32_t expected = WALLS__SLOT_QUEUED;
    if (!walls__cas(&req->state, &expected, WALLS__SLOT_CANCELLED))
        return -EBUSY;
    struct walls__inflight *e = &w->inflight[task->seq & MASK];
    e->cancelled = 1;
    e->task = NULL;
    walls__pool_complete(pool, task, WALLS_CANCELLED, 0, NULL, 0);
    return 0;
}

int walls_cancel(walls_task *handle)
{
    int rc;
    struct walls__task *task = task_from(handle, "walls_cancel", &rc);
    if (!task)
        return rc;
    if (task_done(task))
        return walls__fail(-EALREADY, "walls_cancel: the task has finished already");
    struct walls__pool *pool = task->pool;
    pthread_mutex_lock(&pool->lock);
    /* It may have finished without anyone having looked yet. */
    if (!task_done(task) && task->where == WALLS__AT_WORKER)
        walls__pool_harvest(pool, &pool->workers[task->worker]);
    rc = task_done(task) ? -EALREADY : cancel_locked(pool, task);
    if (rc == -EBUSY && pool->placement != WALLS_THREADS) {
        /* Running in a process: that process goes, and the task with it. */
        walls__procs_kill(&pool->workers[task->worker], WALLS_CANCELLED, true, task->seq);
        rc = 0;
    }
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
    if (rc)
        walls__fail(rc, rc == -EALREADY ? "walls_cancel: the task has finished already"
                                        : "walls_cancel: the task is running in a thread, "
                                          "which cannot be stopped");
    return rc;
}

void walls_task_free(walls_task *handle)
{
    if (!handle)
        return;
    struct walls__task *task = task_get(handle);
    /* Freed already, or another process's (a child of fork()): nothing. */
    if (!task || walls__load_relaxed(&task->pool->owner) != walls__self())
        return;
    /* A finished task that is on no list is the caller's alone. */
    if (task_done(task) && !walls__load_acquire(&task->collectable)) {
        walls__handle_retire(task);
        walls__fetch_or(&task->flags, WALLS__TASK_FREED);
        task_recycle(task);
        return;
    }
    /* Otherwise under the pool's lock, so that completion (which may put
     * the task on the collect list, or recycle a freed one) sees either all
     * of this or none. The pool entry outlives the pool, so its lock is
     * always there. */
    struct walls__pool *pool = task->pool;
    pthread_mutex_lock(&pool->lock);
    if (!task_done(task))
        cancel_locked(pool, task);
    if (task->collectable)
        collect_unlink(pool, task);
    /* From here on the handle is dead, even while the task still runs. */
    walls__handle_retire(task);
    uint32_t old = walls__fetch_or(&task->flags, WALLS__TASK_FREED);
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
    if ((old & (WALLS__TASK_DONE | WALLS__TASK_FREED)) == WALLS__TASK_DONE)
        task_recycle(task);
}

/* ---- pools ------------------------------------------------------------------ */

static int64_t ms_to_ns(int64_t ms)
{
    return ms > INT64_MAX / 4000000 ? INT64_MAX / 4 : ms * 1000000;
}

/* Every option checked, the first wrong one named. */
static int check_opts(const struct walls_pool_opts *o)
{
#define BAD(...) walls__fail(-EINVAL, "walls_pool_create: " __VA_ARGS__)
    if ((unsigned)o->placement > WALLS_HYBRID)
        return BAD("opts.placement %u is not a walls_placement", (unsigned)o->placement);
    if ((unsigned)o->workload > WALLS_IO_BOUND)
        return BAD("opts.workload %u is not a walls_workload", (unsigned)o->workload);
    if (o->needs & ~(WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED))
        return BAD("opts.needs has unknown bits %#x",
                   o->needs & ~(WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED));
    if (o->processes > WALLS__MAX_PROCESSES)
        return BAD("opts.processes %u is over %u", o->processes, WALLS__MAX_PROCESSES);
    if (o->threads > WALLS__MAX_THREADS)
        return BAD("opts.threads %u is over %u", o->threads, WALLS__MAX_THREADS);
    if (o->placement == WALLS_HYBRID && o->threads > WALLS__MAX_LANES)
        return BAD("opts.threads %u is over %u threads per hybrid process", o->threads,
                   WALLS__MAX_LANES);
    if (o->task_timeout_ms < 0)
        return BAD("opts.task_timeout_ms %lld is negative", (long long)o->task_timeout_ms);
    if (o->max_output > WALLS_INLINE_MAX)
        return BAD("opts.max_output %zu is over WALLS_INLINE_MAX %u", o->max_output,
                   WALLS_INLINE_MAX);
    if (o->restart_limit > 100000)
        return BAD("opts.restart_limit %u is over 100000", o->restart_limit);
    if (o->restart_window_ms < 0)
        return BAD("opts.restart_window_ms %lld is negative", (long long)o->restart_window_ms);
    if (o->restart_backoff_ms < 0)
        return BAD("opts.restart_backoff_ms %lld is negative",
                   (long long)o->restart_backoff_ms);
    if (o->lost_retries > 100)
        return BAD("opts.lost_retries %u is over 100", o->lost_retries);
    if (o->sandbox > WALLS_SANDBOX_SECCOMP)
        return BAD("opts.sandbox %u is not a walls_sandbox level", o->sandbox);
    if (o->arena_size > WALLS_ARENA_MAX)
        return BAD("opts.arena_size %zu is over WALLS_ARENA_MAX", o->arena_size);
    if (o->locks > WALLS_LOCKS_MAX)
        return BAD("opts.locks %u is over WALLS_LOCKS_MAX %u", o->locks, WALLS_LOCKS_MAX);
    if (o->placement == WALLS_THREADS) {
        /* Threads cannot give what only worker processes have: asking for
         * it with an explicit THREADS placement is a contradiction, never
         * silently dropped. */
        const char *what = (o->needs & WALLS_NEED_CRASH_ISOLATION) ? "WALLS_NEED_CRASH_ISOLATION"
                           : (o->needs & WALLS_NEED_UNTRUSTED)      ? "WALLS_NEED_UNTRUSTED"
                           : o->sandbox                             ? "a sandbox"
                           : o->sandbox_allow                       ? "opts.sandbox_allow"
                           : o->sandbox_fallback                    ? "opts.sandbox_fallback"
                           : o->sandbox_read_paths                  ? "opts.sandbox_read_paths"
                           : o->recycle_after                       ? "opts.recycle_after"
                           : o->recycle_rss                         ? "opts.recycle_rss"
                           : o->worker_memory_limit ? "opts.worker_memory_limit"
                                                    : NULL;
        if (what)
            return BAD("placement WALLS_THREADS cannot give %s: threads share the program's "
                       "process (use WALLS_PROCESSES, WALLS_HYBRID or WALLS_AUTO)",
                       what);
    }
    /* Untrusted input gets the strict sandbox, never less. */
    if ((o->needs & WALLS_NEED_UNTRUSTED) && o->sandbox != WALLS_SANDBOX_NONE &&
        o->sandbox != WALLS_SANDBOX_STRICT)
        return BAD("WALLS_NEED_UNTRUSTED needs the strict sandbox, and opts.sandbox asks for "
                   "a weaker one (%u)",
                   o->sandbox);
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i])
            return BAD("opts.reserved[%zu] is not zero", i);
    return 0;
#undef BAD
}

/* Whether the options ask for something only worker processes give: an
 * isolation need, a sandbox, recycling or a memory limit. Under AUTO that
 * means processes; it never silently means threads without them. */
static bool wants_processes(const struct walls_pool_opts *o)
{
    return (o->needs & (WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED)) || o->sandbox ||
           o->sandbox_allow || o->sandbox_fallback || o->sandbox_read_paths ||
           o->recycle_after || o->recycle_rss || o->worker_memory_limit;
}

static void explain(struct walls__pool *pool, const struct walls_pool_opts *o, int cpus,
                    const char *source, const char *sandbox)
{
    bool io = o->workload == WALLS_IO_BOUND;
    const char *why = "placement given by the program";
    if (o->placement == WALLS_AUTO && !o->needs && wants_processes(o)) {
        why = io ? "AUTO: options only processes have (sandbox, recycling, memory limit), "
                   "IO-bound: processes each with threads"
                 : "AUTO: options only processes have (sandbox, recycling, memory limit), "
                   "CPU-bound: one process per CPU";
    } else if (o->placement == WALLS_AUTO) {
        if (!wants_processes(o))
            why = io ? "AUTO: no isolation asked for, IO-bound: threads of this process"
                     : "AUTO: no isolation asked for, CPU-bound: threads of this process";
        else
            why = io ? "AUTO: isolation asked for, IO-bound: processes each with threads"
                     : "AUTO: isolation asked for, CPU-bound: one process per CPU";
    }
    char size[96];
    unsigned t = pool->placement == WALLS_THREADS ? pool->nworkers : pool->lanes_per;
    const char *threads = t == 1 ? "thread" : "threads";
    const char *procs = pool->nprocs == 1 ? "process" : "processes";
    if (pool->placement == WALLS_THREADS)
        snprintf(size, sizeof size, "%u %s (%s)", t, threads,
                 o->threads ? "given" : io ? "4 per usable CPU" : "1 per usable CPU");
    else if (pool->placement == WALLS_PROCESSES)
        snprintf(size, sizeof size, "%u %s (%s)", pool->nprocs, procs,
                 o->processes ? "given" : "1 per usable CPU");
    else
        snprintf(size, sizeof size, "%u %s (%s) x %u %s (%s)", pool->nprocs, procs,
                 o->processes ? "given" : "1 per usable CPU", t, threads,
                 o->threads ? "given" : io ? "4 for IO-bound work" : "1 for CPU-bound work");
    static const char *const names[] = {"auto", "threads", "processes", "hybrid"};
    char arena[96] = "";
    bool staged = pool->sandbox != WALLS_SANDBOX_NONE;
    if (o->arena_size || o->locks)
        snprintf(arena, sizeof arena, "; arena: %zu KiB%s, %u locks",
                 (o->arena_size + 4095) / 4096 * 4,
                 !o->arena_size                     ? ""
                 : pool->placement == WALLS_THREADS ? " (shared memory)"
                 : staged                           ? " (read-only, outputs staged)"
                                                    : " (read-only, outputs in place)",
                 o->locks);
    snprintf(pool->explain, sizeof pool->explain, "%s: %s; %s; %d usable CPUs from %s%s%s",
             names[pool->placement], size, why, cpus, source, sandbox, arena);
}

/* The closed set walls_pool_create() returns: anything else a worker or
 * the system reported while starting is told in words and returned as
 * -ECHILD (a worker could not start). */
static int create_error(int rc)
{
    switch (rc) {
    case -EINVAL: case -ENOTSUP: case -ENOMEM: case -EAGAIN: case -EMFILE: case -ENFILE:
    case -ECHILD: case -ENOEXEC: case -ENOSYS: case -ENOENT:
        return walls__fail(rc, "walls_pool_create: %s", walls_strerror(rc));
    default:
        return walls__fail(-ECHILD, "walls_pool_create: a worker could not start: %s",
                           walls_strerror(rc));
    }
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
    int rc = check_opts(&o);
    if (rc)
        return rc;
    /* The seed's rules: isolation means processes, and IO-bound work under
     * isolation means processes that each hold a few threads. */
    bool io = o.workload == WALLS_IO_BOUND;
    enum walls_placement placement = o.placement;
    if (placement == WALLS_AUTO) {
        if (wants_processes(&o))
            placement = io ? WALLS_HYBRID : WALLS_PROCESSES;
        else
            placement = WALLS_THREADS;
    }
    /* What the sandbox asks of the kernel, checked before anything starts. */
    unsigned level = (o.needs & WALLS_NEED_UNTRUSTED) ? WALLS_SANDBOX_STRICT : o.sandbox;
    char sandbox[320] = "";
    struct walls__sandbox_conf *conf = NULL;
    if (placement != WALLS_THREADS) {
        conf = malloc(sizeof *conf);
        if (!conf)
            return create_error(-ENOMEM);
        rc = walls__sandbox_plan(&o, level, conf, sandbox, sizeof sandbox);
        if (rc) {
            free(conf);
            return rc;
        }
    }
    const char *source = "affinity mask";
    int cpus = walls__cpu_count_source(&source);
    unsigned n, per = 1;
    if (placement == WALLS_THREADS) {
        n = o.threads ? o.threads : (unsigned)cpus * (io ? WALLS__IO_THREADS_PER_CPU : 1u);
        if (n > WALLS__MAX_THREADS)
            n = WALLS__MAX_THREADS;
    } else {
        unsigned procs = o.processes ? o.processes : (unsigned)cpus;
        if (procs > WALLS__MAX_PROCESSES)
            procs = WALLS__MAX_PROCESSES;
        if (placement == WALLS_HYBRID)
            per = o.threads ? o.threads : io ? WALLS__IO_THREADS_PER_CPU : 1u;
        n = procs * per;
    }

    struct walls__pool *pool = walls__handle_alloc(&pool_table);
    if (!pool) {
        free(conf);
        return create_error(-ENOMEM);
    }
    /* A stale handle's caller may still take this entry's lock: reset it
     * under the lock (that caller then sees the new generation). */
    pthread_mutex_lock(&pool->lock);
    size_t keep = offsetof(struct walls__pool, state);
    memset((char *)pool + keep, 0, sizeof *pool - keep);
    pthread_mutex_unlock(&pool->lock);
    walls__store_relaxed(&pool->owner, walls__self());
    pool->placement = placement;
    pool->lanes_per = per;
    pool->nprocs = placement == WALLS_THREADS ? 0 : n / per;
    pool->lost_retries = o.lost_retries;
    pool->recycle_after = o.recycle_after;
    pool->recycle_rss_kb = (o.recycle_rss + 1023) / 1024;
    pool->memory_limit = o.worker_memory_limit;
    pool->sandbox = level;
    pool->sandbox_conf = conf;
    pool->arena.fd = pool->arena.ro_fd = pool->arena.lock_fd = -1;
    pool->next_token = 2; /* 1 is the host's */
    pool->nworkers = n;
    pool->max_output = o.max_output ? o.max_output : WALLS_INLINE_MAX;
    pool->restart_limit = o.restart_limit ? o.restart_limit : 100;
    pool->restart_window_ns = ms_to_ns(o.restart_window_ms ? o.restart_window_ms : 1000);
    pool->restart_backoff_ns = ms_to_ns(o.restart_backoff_ms);
    pool->default_limit_ns = o.task_timeout_ms > INT64_MAX / 1000000
                                 ? INT64_MAX / 4
                                 : o.task_timeout_ms * 1000000;
    pool->timed_ever = pool->default_limit_ns != 0;
    pool->sock = pool->epfd = pool->cmd_fd = -1;
    explain(pool, &o, cpus, source, sandbox);
    pool->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pool->workers = calloc(n, sizeof *pool->workers);
    pool->restart_times = calloc(pool->restart_limit + 1, sizeof *pool->restart_times);
    if (pool->event_fd < 0 || !pool->workers || !pool->restart_times) {
        rc = pool->event_fd < 0 ? -errno : -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < n; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i;
        pool->workers[i].kill_reason = -1;
    }
    if ((o.arena_size || o.locks) &&
        (rc = walls__arena_open(&pool->arena, o.arena_size, o.locks)) != 0)
        goto fail;
    pool->state = WALLS__POOL_ALIVE;
    rc = placement == WALLS_THREADS ? walls__threads_start(pool) : walls__procs_start(pool);
    if (rc)
        goto fail;
    if (placement == WALLS_THREADS && pool->default_limit_ns &&
        (rc = walls__threads_start_timer(pool)) != 0) {
        walls__threads_stop(pool);
        goto fail;
    }
    *out = (walls_pool *)(uintptr_t)walls__handle_of(pool);
    return 0;
fail:
    pool->state = WALLS__POOL_DEAD;
    walls__arena_close(&pool->arena);
    if (pool->event_fd >= 0)
        close(pool->event_fd);
    free(pool->workers);
    pool->workers = NULL;
    free(pool->restart_times);
    pool->restart_times = NULL;
    free(pool->sandbox_conf);
    pool->sandbox_conf = NULL;
    walls__handle_release(&pool_table, pool);
    return create_error(rc);
}

static bool pool_idle(struct walls__pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    bool idle = pool->npending == 0 && pool->in_rings == 0;
    pthread_mutex_unlock(&pool->lock);
    return idle;
}

int walls_pool_destroy(walls_pool *handle, unsigned flags)
{
    static const char call[] = "walls_pool_destroy";
    if (!handle)
        return 0;
    if (flags & ~WALLS_CANCEL)
        return walls__fail(-EINVAL, "%s: unknown flags %#x", call, flags & ~WALLS_CANCEL);
    int rc;
    struct walls__pool *pool = pool_lock(handle, call, &rc);
    if (!pool)
        return rc;
    if (pool->state != WALLS__POOL_ALIVE) {
        pthread_mutex_unlock(&pool->lock);
        return walls__fail(-EBADF, "%s: another thread is destroying the pool", call);
    }
    if (pool->placement == WALLS_THREADS && walls__threads_is_worker(pool)) {
        pthread_mutex_unlock(&pool->lock);
        return walls__fail(-EDEADLK, "%s: called from one of the pool's own worker threads",
                           call);
    }
    pool->state = WALLS__POOL_CLOSING;
    if (flags & WALLS_CANCEL) {
        while (pool->pending.head)
            walls__pool_complete(pool, pool->pending.head, WALLS_CANCELLED, 0, NULL, 0);
        for (unsigned i = 0; i < pool->nworkers; i++) {
            struct walls__worker *w = &pool->workers[i];
            bool running = false;
            for (uint32_t s = w->oldest; s != w->rq_tail; s++) {
                struct walls__inflight *e = &w->inflight[s & MASK];
                if (e->retired || !e->task)
                    continue;
                if (cancel_locked(pool, e->task) == -EBUSY)
                    running = true;
            }
            if (running && pool->placement != WALLS_THREADS)
                walls__procs_kill(w, WALLS_CANCELLED, false, 0);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);

    /* Drain: every task submitted before this call reaches its end. */
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        pool_progress(pool);
        if (pool_idle(pool))
            break;
        pool_sleep(pool, seq, 100000000);
    }
    if (pool->placement == WALLS_THREADS)
        walls__threads_stop(pool);
    else
        walls__procs_stop(pool, (flags & WALLS_CANCEL) != 0);

    pthread_mutex_lock(&pool->lock);
    pool->state = WALLS__POOL_DEAD;
    while (pool->collect.head)
        collect_unlink(pool, pool->collect.head);
    walls__store_relaxed(&pool->fd_armed, false);
    for (unsigned i = 0; i < pool->nworkers; i++)
        for (unsigned k = 0; k < WALLS__RING_SLOTS; k++)
            free(pool->workers[i].inflight[k].held);
    free(pool->workers);
    pool->workers = NULL;
    free(pool->restart_times);
    pool->restart_times = NULL;
    for (unsigned i = 0; i < pool->nmodules; i++)
        free(pool->modules[i].path);
    pool->nmodules = 0;
    walls__arena_close(&pool->arena);
    free(pool->sandbox_conf);
    pool->sandbox_conf = NULL;
    close(pool->event_fd);
    pool->event_fd = -1;
    walls__handle_retire(pool); /* under the lock: see pool_still() */
    pthread_mutex_unlock(&pool->lock);
    walls__handle_release(&pool_table, pool);
    return 0;
}

int walls_pool_reset(walls_pool *handle)
{
    int rc;
    struct walls__pool *pool = pool_lock(handle, "walls_pool_reset", &rc);
    if (!pool)
        return rc;
    if (pool->fs_lost) {
        pthread_mutex_unlock(&pool->lock);
        return walls__fail(-ECHILD, "walls_pool_reset: the pool's fork server is gone; "
                                    "destroy the pool and create another");
    }
    bool wake = false;
    if (pool->broken) {
        pool->broken = false;
        pool->restart_count = 0;
        pool->restart_next = 0;
        if (pool->placement != WALLS_THREADS)
            wake = walls__procs_reset(pool);
    }
    if (wake)
        wake_timekeeper(pool);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int walls_pool_fd(walls_pool *handle)
{
    int rc;
    struct walls__pool *pool = pool_lock(handle, "walls_pool_fd", &rc);
    if (!pool)
        return rc;
    walls__store_relaxed(&pool->fd_armed, true);
    walls__pool_arm(pool, true, pool->refill_armed);
    int fd = pool->event_fd;
    pthread_mutex_unlock(&pool->lock);
    return fd;
}

int walls_pool_collect(walls_pool *handle, walls_task **tasks, size_t max, size_t *n)
{
    static const char call[] = "walls_pool_collect";
    int rc;
    if (!tasks || !n || max == 0)
        return walls__fail(-EINVAL, "%s: %s", call,
                           !tasks ? "tasks is NULL" : !n ? "n is NULL" : "max is 0");
    *n = 0;
    struct walls__pool *pool = pool_lock(handle, call, &rc);
    if (!pool)
        return rc;
    if (!pool->fd_armed) {
        pthread_mutex_unlock(&pool->lock);
        return walls__fail(-ENOTCONN, "%s: walls_pool_fd() was never called on this pool, so "
                                      "it keeps no list of completed tasks",
                           call);
    }
    /* Reset the descriptor first: a completion after this makes it
     * readable again, and one before it is on the list we take. */
    uint64_t count;
    ssize_t rd = read(pool->event_fd, &count, sizeof count);
    (void)rd;
    walls__pool_harvest_all(pool);
    while (*n < max && pool->collect.head) {
        struct walls__task *task = pool->collect.head;
        collect_unlink(pool, task);
        tasks[(*n)++] = (walls_task *)(uintptr_t)walls__handle_of(task);
    }
    if (pool->collect.head != NULL) {
        uint64_t one = 1;
        ssize_t wr = write(pool->event_fd, &one, sizeof one);
        (void)wr;
    }
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
    return 0;
}

int walls_pool_explain(walls_pool *handle, char *buf, size_t len)
{
    if (!buf || len == 0)
        return walls__fail(-EINVAL, "walls_pool_explain: %s", !buf ? "buf is NULL" : "len is 0");
    int rc;
    struct walls__pool *pool = pool_lock(handle, "walls_pool_explain", &rc);
    if (!pool)
        return rc;
    int n = snprintf(buf, len, "%s", pool->explain);
    pthread_mutex_unlock(&pool->lock);
    return n;
}

int walls_pool_stats(walls_pool *handle, struct walls_stats *st)
{
    if (!st)
        return walls__fail(-EINVAL, "walls_pool_stats: stats is NULL");
    int rc;
    struct walls__pool *pool = pool_lock(handle, "walls_pool_stats", &rc);
    if (!pool)
        return rc;
    /* Count what workers finished but nobody consumed yet. */
    walls__pool_harvest_all(pool);
    memset(st, 0, sizeof *st);
    st->placement = pool->placement;
    st->processes = pool->placement == WALLS_THREADS ? 0 : pool->nprocs;
    st->threads = pool->placement == WALLS_THREADS   ? pool->nworkers
                  : pool->placement == WALLS_HYBRID ? pool->lanes_per
                                                    : 0;
    st->submitted = pool->submitted;
    st->completed = pool->completed;
    memcpy(st->by_status, pool->by_status, sizeof st->by_status);
    st->restarts = pool->restarts;
    st->queued = pool->npending;
    st->in_flight = pool->in_rings;
    st->latency_p50_ns = hist_percentile(pool->hist, pool->completed, 50);
    st->latency_p99_ns = hist_percentile(pool->hist, pool->completed, 99);
    st->broken = pool->broken;
    st->recycled = pool->recycled;
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
    return 0;
}

/* ---- the shared arena ------------------------------------------------------- */

/* Locks the pool of a live handle that has an arena; NULL with *rc set
 * otherwise. */
static struct walls__pool *arena_pool(walls_pool *handle, const char *call, int *rc)
{
    struct walls__pool *pool = pool_lock(handle, call, rc);
    if (pool && !pool->arena.base) {
        pthread_mutex_unlock(&pool->lock);
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
    pthread_mutex_unlock(&pool->lock);
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
        walls__pool_harvest_all(pool);
        rc = walls__arena_free(&pool->arena, buf);
    }
    pthread_mutex_unlock(&pool->lock);
    walls__pool_signal(pool);
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
    pthread_mutex_unlock(&pool->lock);
    return rc ? bad_buffer(call, buf, rc) : 0;
}

int walls_pool_locks(walls_pool *handle, walls_lock **locks, size_t *n)
{
    if (!locks || !n)
        return walls__fail(-EINVAL, "walls_pool_locks: %s", !locks ? "locks is NULL" : "n is NULL");
    int rc;
    struct walls__pool *pool = pool_lock(handle, "walls_pool_locks", &rc);
    if (!pool)
        return rc;
    rc = pool->arena.locks ? 0 : walls__fail(-ENOENT, "walls_pool_locks: the pool has no locks "
                                                      "(opts.locks 0)");
    if (rc == 0) {
        *locks = pool->arena.locks;
        *n = pool->arena.nlocks;
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}
