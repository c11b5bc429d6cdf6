/*
 * dispatch.c - the engine's producer side: tasks from the pending queue
 * into the lanes' request rings, and tasks to their end.
 *
 * A submitted task waits in the pool's pending queue until a lane's
 * request ring has room; dispatch copies it into a ring slot and records,
 * in that lane's in-flight table, which task went to which slot. That
 * record, not anything the worker says, is what ties a completion or a
 * death to its task (harvest.c reads it back).
 *
 * Dispatch gives a task to the lane used last while that lane's worker is
 * awake and keeps completing tasks with a short backlog; otherwise to the
 * open lane with the most room. On a 2-CPU machine this keeps one worker
 * busy and the others asleep for short tasks, instead of having idle
 * workers spin against the submitting thread, while long tasks still
 * spread across lanes.
 *
 * Tasks waiting in one lane's ring move to lanes that idle: balance.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"
#include "tables.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* Dispatch packs onto the last lane used while its backlog stays under
 * this and it completed something this recently (pick_lane()). */
#define PACK_BACKLOG 8u
#define PACK_RECENT_NS 20000
/* ... but not when its last task took WALLS__LONG_TASK_NS or more from
 * dispatch to harvest: waking an idle worker costs little beside such
 * tasks, and packing them would leave the other workers idle. */

/* ---- lists and statistics ---------------------------------------------------- */

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

void walls__engine_uncollect(struct walls__pool *pool, struct walls__task *task)
{
    WALLS__LOCKED(pool);
    list_unlink(&pool->collect, task);
    /* Release: a free that sees false (acquire) comes after the unlink. */
    walls__store_release(&task->collectable, false);
}

/* The latency histogram: 16 buckets per power of two, exact to 1/16. */
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

void walls__hist_add(uint64_t *hist, int64_t ns)
{
    hist[hist_bucket(ns > 0 ? (uint64_t)ns : 0)]++;
}

uint64_t walls__hist_percentile(const uint64_t *hist, uint64_t total, unsigned pct)
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

uint64_t walls__engine_percentile(const struct walls__pool *pool, unsigned pct)
{
    return walls__hist_percentile(pool->hist, pool->completed, pct);
}

/* ---- completion ---------------------------------------------------------------- */

static void pending_unlink(struct walls__pool *pool, struct walls__task *task)
{
    list_unlink(&pool->pending, task);
    pool->npending--;
}

/* The result's bytes are copied from out, or taken with adopt: a malloc'd
 * buffer the task keeps (or frees). */
static void complete_at(struct walls__pool *pool, struct walls__task *task,
                        enum walls_status status, int code, const void *out,
                        unsigned char *adopt, uint32_t out_len, int64_t now)
{
    WALLS__LOCKED(pool);
    if (task->where == WALLS__AT_PENDING)
        pending_unlink(pool, task);
    else if (task->where == WALLS__AT_LANE)
        walls__store_relaxed(&pool->in_rings, pool->in_rings - 1);
    if (task->limit_ns)
        pool->ntimed--;
    if (task->arena_held) {
        walls__arena_pin(&pool->arena, task->refs, task->n_inputs, task->has_output, false);
        task->arena_held = false;
    }
    task->where = WALLS__AT_DONE;
    walls__task_drop_input(task);
    /* A cancel that returned 0 keeps its word: a task that finished, timed
     * out, crashed or was lost before its kill landed ends cancelled,
     * without an output. */
    if (task->cancel_asked && status != WALLS_CANCELLED) {
        status = WALLS_CANCELLED;
        code = 0;
        out = NULL;
        walls__buf_free(adopt, out_len);
        adopt = NULL;
        out_len = 0;
        task->result_flags = 0;
    }
    task->status = status;
    task->code = code;
    task->out_len = 0;
    if (adopt && out_len > WALLS__TASK_SMALL) {
        task->out = adopt; /* exactly out_len bytes */
        task->out_len = out_len;
        adopt = NULL;
    } else if (adopt) {
        out = adopt;
    }
    if (out && out_len && task->out_len == 0) {
        /* Memory for the bytes written only, taken now. */
        unsigned char *copy =
            out_len <= WALLS__TASK_SMALL ? task->small_out : walls__buf_alloc(out_len);
        if (copy) {
            memcpy(copy, out, out_len);
            task->out = copy;
            task->out_len = out_len;
        } else {
            task->status = WALLS_FAILED;
            task->code = -ENOMEM;
        }
    }
    walls__buf_free(adopt, out_len);
    pool->completed++;
    pool->by_status[task->status]++;
    int64_t lat = now - task->submit_ns;
    walls__hist_add(pool->hist, lat);
    walls__fetch_add(&pool->done_seq, 1);
    /* After the bump, with release: a sleeper that takes this mark (and
     * wakes nobody) sees done_seq moved past the value it would sleep on. */
    if (walls__load_relaxed(&task->flags) & WALLS__TASK_WAITED) {
        walls__store_release(&pool->wake_due, 1u);
        pool->wake_owed = true;
    }
    /* Counted only for a watched descriptor: arming it forgets the count. */
    if (pool->fd_armed)
        walls__fetch_add(&pool->unsignalled, 1);
    if (pool->fd_armed && !(walls__load_relaxed(&task->flags) & WALLS__TASK_FREED)) {
        list_append(&pool->collect, task);
        walls__store_relaxed(&task->collectable, true);
    }
    /* Release: the result above is visible to whoever sees DONE. */
    uint32_t old = walls__fetch_or(&task->flags, WALLS__TASK_DONE);
    if (old & WALLS__TASK_FREED)
        walls__task_recycle(task);
}

void walls__engine_complete(struct walls__pool *pool, struct walls__task *task,
                            enum walls_status status, int code, const void *out, uint32_t out_len)
{
    complete_at(pool, task, status, code, out, NULL, out_len, walls__now_ns());
}

void walls__engine_complete_at(struct walls__pool *pool, struct walls__task *task,
                               enum walls_status status, int code, const void *out,
                               uint32_t out_len, int64_t now)
{
    complete_at(pool, task, status, code, out, NULL, out_len, now);
}

void walls__engine_complete_owned(struct walls__pool *pool, struct walls__task *task,
                                  enum walls_status status, int code, unsigned char *out,
                                  uint32_t out_len, int64_t now)
{
    complete_at(pool, task, status, code, NULL, out, out_len, now);
}

void walls__engine_bump(struct walls__pool *pool)
{
    walls__fetch_add(&pool->done_seq, 1);
    walls__store_release(&pool->wake_due, 1u); /* after the bump, as in complete_at() */
}

void walls__engine_signal(struct walls__pool *pool)
{
    /* Seq-cst read of the sleeper count, after the seq-cst bump of
     * done_seq: a waiter counts itself, then re-reads done_seq. Sleepers
     * that wait for particular tasks are woken only when one of those
     * finished (or the pool changed): a thread waiting for one task is not
     * woken by each of a thousand others. A sleeper that missed a wake
     * this way cannot sleep on: done_seq moved past the value it sleeps
     * on, so it looks again first. */
    if (walls__fetch_add(&pool->done_waiters, 0) > 0 &&
        (walls__load_relaxed(&pool->any_waiters) > 0 ||
         __atomic_exchange_n(&pool->wake_due, 0u, __ATOMIC_ACQ_REL)))
        walls__futex_wake(&pool->done_seq, INT_MAX, false);
    /* Nothing to count, or nobody watches the descriptor (the count is
     * forgotten when walls_pool_fd() arms it). */
    if (!walls__load_relaxed(&pool->unsignalled) || !walls__load_relaxed(&pool->fd_armed))
        return;
    /* Under the lock: a destroy in between closes the descriptor, and its
     * number may be the program's again; and walls_pool_collect(), which
     * forgets the count once it took every finished task, is not between
     * taking the count and writing it. */
    walls__pool_lock(pool);
    uint32_t completed = __atomic_exchange_n(&pool->unsignalled, 0, __ATOMIC_ACQ_REL);
    /* Readable already, from a write since the last reset: the tasks
     * counted here were put on the collect list before this (by whoever
     * harvested them, before it signals), so the collect that resets the
     * descriptor takes them. A write per completion would be a system
     * call per task for a loop that is busy anyway. */
    if (completed && pool->fd_armed && pool->event_fd >= 0 && !pool->fd_raised) {
        uint64_t count = completed;
        ssize_t rc = write(pool->event_fd, &count, sizeof count);
        (void)rc;
        pool->fd_raised = true;
    }
    walls__pool_unlock(pool);
}

void walls__engine_requeue_front(struct walls__pool *pool, struct walls__task *task)
{
    WALLS__LOCKED(pool);
    if (task->where == WALLS__AT_LANE)
        walls__store_relaxed(&pool->in_rings, pool->in_rings - 1);
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

void walls__engine_break(struct walls__pool *pool)
{
    WALLS__LOCKED(pool);
    pool->broken = true;
    while (pool->pending.head)
        walls__engine_complete(pool, pool->pending.head, WALLS_BROKEN, 0, NULL, 0);
}

int walls__engine_cancel(struct walls__pool *pool, struct walls__task *task)
{
    WALLS__LOCKED(pool);
    if (task->where == WALLS__AT_DONE)
        return -EALREADY;
    if (task->where == WALLS__AT_PENDING) {
        walls__engine_complete(pool, task, WALLS_CANCELLED, 0, NULL, 0);
        return 0;
    }
    struct walls__lane *lane = &pool->lanes[task->lane];
    struct walls__req *req = &lane->mb->rq_slots[task->seq & MASK];
    /* The worker moves QUEUED to RUNNING the same way: one of us wins. */
    uint32_t expected = WALLS__SLOT_QUEUED;
    if (!walls__cas(&req->state, &expected, WALLS__SLOT_CANCELLED))
        return -EBUSY;
    struct walls__inflight *e = &lane->inflight[task->seq & MASK];
    e->cancelled = 1;
    e->task = NULL;
    walls__engine_complete(pool, task, WALLS_CANCELLED, 0, NULL, 0);
    return 0;
}

/* ---- rings, host side ----------------------------------------------------------- */

void walls__engine_lane_init(struct walls__pool *pool, struct walls__lane *lane, unsigned index)
{
    memset(lane, 0, sizeof *lane);
    lane->pool = pool;
    lane->index = index;
    lane->kill_reason = -1;
    lane->staging_fd = -1;
    lane->io_in_fd = lane->io_out_fd = -1;
    lane->depth = WALLS__IO_DEPTH;
}

int walls__engine_lane_private(struct walls__lane *lane)
{
    lane->mb = aligned_alloc(4096, WALLS__MAILBOX_SIZE);
    if (!lane->mb)
        return -ENOMEM;
    memset(lane->mb, 0, WALLS__MAILBOX_SIZE);
    int rc = walls__io_lane_map(lane);
    if (rc)
        return rc;
    walls__engine_lane_reset(lane);
    lane->mb->worker_state = WALLS__WORKER_READY;
    lane->live = lane->open = true;
    return 0;
}

void walls__engine_lane_private_free(struct walls__lane *lane)
{
    free(lane->mb);
    lane->mb = NULL;
    walls__io_lane_unmap(lane);
}

void walls__engine_lane_reset(struct walls__lane *lane)
{
    struct walls__mailbox *mb = lane->mb;
    memset(&mb->rq, 0, sizeof mb->rq);
    memset(&mb->cq, 0, sizeof mb->cq);
    /* A new worker sees nothing of its predecessor's tasks. */
    memset(mb->rq_slots, 0, sizeof mb->rq_slots);
    memset(mb->cq_slots, 0, sizeof mb->cq_slots);
    walls__io_lane_reset(lane);
    mb->magic = WALLS__MAILBOX_MAGIC;
    mb->version = WALLS__MAILBOX_VERSION;
    mb->worker_state = WALLS__WORKER_STARTING;
    mb->start_error = 0;
    mb->worker_pid = 0;
    mb->fault_sig = mb->exited = mb->memory_hit = mb->tid = 0;
    mb->exit_code = 0;
    mb->notify_fd = -1;
    mb->report_start = lane->pool->timed_ever;
    mb->peak_rss_kb = 0;
    mb->bell_begun = mb->bell_done = mb->bell_rung = 0;
    lane->bells_taken = 0;
    lane->served = false;
    lane->bell_strikes = 0;
    lane->bell_unsure = false;
    lane->rq_tail = lane->oldest = lane->cq_head = 0;
    lane->seen_done = 0;
    lane->modules_sent = 0;
    memset(lane->inflight, 0, sizeof lane->inflight);
    lane->broke = false;
    lane->stuck = false;
    lane->attention = false;
    lane->kill_reason = -1;
    lane->kill_code = 0;
    lane->kill_flags = 0;
    lane->kill_targeted = false;
    lane->target_untaken = false;
}

static unsigned ring_free(const struct walls__lane *lane)
{
    return WALLS__RING_SLOTS - (lane->rq_tail - lane->oldest);
}

/* Fills and queues the next request slot (not yet published). io, when
 * not NULL, goes first in the data (a WALLS__REQ_TASK_IO request), then
 * the inline input; a task's arena references go at the end. */
static void ring_push(struct walls__lane *lane, uint16_t kind, uint16_t module, uint64_t offset,
                      const struct walls__io *io, const void *data, uint32_t len,
                      uint32_t out_cap, struct walls__task *task)
{
    uint32_t seq = lane->rq_tail;
    struct walls__req *req = &lane->mb->rq_slots[seq & MASK];
    struct walls__inflight *e = &lane->inflight[seq & MASK];
    unsigned refs = task ? task->n_inputs + (task->has_output ? 1u : 0u) : 0u;
    req->n_inputs = task ? task->n_inputs : 0;
    req->has_output = task && task->has_output;
    if (refs) {
        size_t room = refs * sizeof(struct walls__bufref);
        memcpy(req->data + WALLS__SLOT_DATA - room, task->refs, room);
    }
    size_t head = io ? sizeof *io : 0;
    if (io)
        memcpy(req->data, io, sizeof *io);
    uint32_t tag = ++lane->next_tag;
    req->seq = seq;
    req->tag = tag;
    req->kind = kind;
    req->module = module;
    req->offset = offset;
    req->in_len = (uint16_t)len;
    req->out_cap = out_cap;
    if (len)
        memcpy(req->data + head, data, len);
    walls__store_relaxed(&req->state, WALLS__SLOT_QUEUED);
    bool waited = task && (walls__load_relaxed(&task->flags) & WALLS__TASK_WAITED);
    uint8_t want = (uint8_t)(waited ? WALLS__WANT_BELL : 0);
    if (walls__load_relaxed(&lane->mb->ring_want[seq & MASK]) != want)
        walls__store_relaxed(&lane->mb->ring_want[seq & MASK], want);
    e->task = task;
    e->tag = tag;
    e->start_ns = 0;
    e->kind = (uint8_t)(kind == WALLS__REQ_TASK_IO ? WALLS__REQ_TASK : kind);
    e->io = kind == WALLS__REQ_TASK_IO;
    if (!e->io) {
        e->io_in_len = 0;
        e->io_in = NULL;
    }
    e->retired = 0;
    e->cancelled = 0;
    e->abandoned = 0;
    lane->rq_tail = seq + 1;
    if (task) {
        if (lane->quota)
            (*lane->quota)--;
        task->where = WALLS__AT_LANE;
        task->lane = lane->index;
        task->seq = seq;
    }
}

void walls__engine_publish(struct walls__lane *lane)
{
    struct walls__mailbox *mb = lane->mb;
    /* Release: the slots written above are visible before the new tail. */
    walls__store_release(&mb->rq.tail, lane->rq_tail);
    /* Full fence: the tail is stored before we read the sleeper count,
     * mirroring the worker's count-then-read in wait_for_request(). */
    walls__fence();
    if (walls__load_relaxed(&mb->rq.tail_waiters))
        walls__futex_wake(&mb->rq.tail, 1, lane->shared);
}

void walls__engine_push_stop(struct walls__lane *lane)
{
    ring_push(lane, WALLS__REQ_STOP, 0, 0, NULL, NULL, 0, 0, NULL);
    walls__engine_publish(lane);
}

static unsigned modules_needed(const struct walls__lane *lane, const struct walls__task *task)
{
    if (task->module == WALLS__MODULE_RAW || task->module < lane->modules_sent)
        return 0;
    return task->module + 1u - lane->modules_sent;
}

void walls__engine_arm(struct walls__pool *pool, unsigned what)
{
    bool every = what & WALLS__ARM_EVERY, refill = what & WALLS__ARM_REFILL;
    bool event = what & WALLS__ARM_EVENT;
    if (pool->doorbells_armed == every && pool->refill_armed == refill &&
        pool->event_armed == event)
        return;
    walls__store_relaxed(&pool->doorbells_armed, every);
    walls__store_relaxed(&pool->refill_armed, refill);
    bool event_on = event && !pool->event_armed;
    pool->event_armed = event;
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct walls__mailbox *mb = pool->lanes[i].mb;
        if (!mb || !pool->lanes[i].shared)
            continue; /* a thread lane reads the pool's flags */
        walls__store_relaxed(&mb->doorbell_armed, every ? 1u : 0u);
        walls__store_relaxed(&mb->refill_armed, refill ? 1u : 0u);
        walls__store_relaxed(&mb->event_armed, event ? 1u : 0u);
        /* Harvests clear a rung bell only while it is armed: a flag left
         * from an earlier arming would silence this lane. */
        if (event_on)
            walls__store_relaxed(&mb->bell_rung, 0u);
    }
    /* Full fence: the flags are stored before the caller looks at the
     * completion rings again (a worker fences between publishing and
     * reading the flags). */
    walls__fence();
}

unsigned walls__engine_armed(const struct walls__pool *pool)
{
    return (pool->doorbells_armed ? WALLS__ARM_EVERY : 0u) |
           (pool->refill_armed ? WALLS__ARM_REFILL : 0u) |
           (pool->event_armed ? WALLS__ARM_EVENT : 0u);
}

/* ---- picking a lane --------------------------------------------------------------- */

bool walls__engine_takes(const struct walls__lane *lane)
{
    return lane->open && !lane->stuck && !lane->broke && (!lane->quota || *lane->quota > 0);
}

/* Whether the lane's worker keeps up with what it is given: awake, and
 * either idle or finishing tasks every few microseconds with a short
 * backlog. Packing short tasks onto such a worker lets the others sleep
 * instead of spinning against the submitting thread for the CPUs; a worker
 * busy with a long task has not completed anything lately and is passed
 * over. The mailbox words read here are hints: a lie only misplaces the
 * liar's own tasks. */
static bool keeps_up(struct walls__lane *lane, int64_t now)
{
    struct walls__mailbox *mb = lane->mb;
    /* Its completion count is a line the worker writes after every task:
     * while what it was last seen to have done leaves it a short backlog,
     * seen lately, that count is trusted instead of read again (a stale
     * count only overstates the backlog). */
    uint32_t done = lane->seen_done;
    if (lane->rq_tail - done >= PACK_BACKLOG / 2 || now - lane->seen_ns >= PACK_RECENT_NS / 2)
        done = walls__load_relaxed(&mb->cq.tail);
    if (done != lane->seen_done) {
        /* Only a finished task shows the pace; a control request's
         * acknowledgement does not. */
        uint32_t last = done - 1;
        if ((uint32_t)(last - lane->oldest) < (uint32_t)(lane->rq_tail - lane->oldest) &&
            lane->inflight[last & MASK].kind == WALLS__REQ_TASK)
            lane->seen_ns = now;
        lane->seen_done = done;
    }
    if (walls__load_relaxed(&mb->rq.tail_waiters))
        return false;
    uint32_t outstanding = lane->rq_tail - done;
    if (outstanding == 0)
        return true;
    return outstanding < PACK_BACKLOG && now - lane->seen_ns < PACK_RECENT_NS &&
           lane->last_turn_ns < WALLS__LONG_TASK_NS;
}

/* Whether task needs a large-I/O window and lane has none left. */
static bool io_full(const struct walls__pool *pool, const struct walls__lane *lane,
                    const struct walls__task *task)
{
    return walls__io_wanted(pool, task) && walls__io_full(lane);
}

/* Completions nobody has consumed yet hold ring slots: they are consumed
 * where the slots are wanted, so that the rings do not fill with finished
 * tasks while the submitting thread queues, and no worker has to come for
 * the pool's lock to be given more. */
static void consume(struct walls__pool *pool, struct walls__lane *lane, int64_t now)
{
    if (lane->live && lane->mb && walls__load_relaxed(&lane->mb->cq.tail) != lane->cq_head)
        walls__engine_harvest_at(pool, lane, now);
}

/* The lane for task: the last one used if it keeps up, else the open lane
 * with the most room; NULL when every ring is full. */
static struct walls__lane *pick_lane(struct walls__pool *pool, const struct walls__task *task,
                                     int64_t now)
{
    /* next_lane is always a lane's index: no division on this path. */
    struct walls__lane *last = &pool->lanes[pool->next_lane];
    /* Its completions are taken once it is half full, in one go: taking
     * each as it comes would read the worker's lines at every submit. */
    if (ring_free(last) < WALLS__RING_SLOTS / 2)
        consume(pool, last, now);
    if (walls__engine_takes(last) && !io_full(pool, last, task) &&
        ring_free(last) >= 1 + modules_needed(last, task) &&
        keeps_up(last, now))
        return last;
    /* The lane with the most room, but one whose task runs long only when
     * no other has room: what waits behind it would have to be moved. */
    struct walls__lane *best = NULL;
    unsigned best_free = 0;
    bool best_long = false;
    for (unsigned k = 0, i = pool->next_lane; k < pool->nlanes;
         k++, i = i + 1 == pool->nlanes ? 0 : i + 1) {
        struct walls__lane *lane = &pool->lanes[i];
        if (k)
            consume(pool, lane, now);
        if (!walls__engine_takes(lane) || io_full(pool, lane, task))
            continue;
        unsigned room = ring_free(lane);
        if (room < 1 + modules_needed(lane, task))
            continue;
        bool slow = room < WALLS__RING_SLOTS && walls__engine_runs_long(lane, now);
        if (!best || (best_long && !slow) || (slow == best_long && room > best_free)) {
            best = lane;
            best_free = room;
            best_long = slow;
            if (room == WALLS__RING_SLOTS)
                break;
        }
    }
    /* Ties go to the lane used last: it is the one most likely awake. */
    if (best)
        pool->next_lane = best->index;
    return best;
}

/* ---- staging (sandboxed processes' arena outputs) ----------------------------------- */

/* Copies len bytes between the arena and a staging memfd, at the same
 * offset. Returns 0 or -errno. */
int walls__engine_stage_copy(struct walls__pool *pool, int fd, const struct walls__bufref *ref,
                             bool in)
{
    return walls__io_file(fd, pool->arena.base + ref->offset, ref->len, ref->offset, in);
}

/* A sandboxed process is about to run a task with an output: its staging
 * copy of that buffer starts as the buffer is, whatever the process wrote
 * there before. Returns 0 or -errno. */
static int stage_in(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task)
{
    if (!task->has_output || lane->staging_fd < 0)
        return 0;
    return walls__engine_stage_copy(pool, lane->staging_fd, &task->refs[task->n_inputs], true);
}

/* ---- dispatch ------------------------------------------------------------------------ */

/* Puts task into lane's ring after the module definitions it needs, not
 * yet published; its staged output (stage_in) is filled already. Returns 0,
 * or -errno when its large input or output could not be placed. */
static int push_task(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task,
                     int64_t now)
{
    while (modules_needed(lane, task)) {
        /* Its path, then a NUL and its build-id when they fit (module.c
         * keeps paths shorter than a slot): a worker that finds another
         * object under the path refuses its functions. */
        const struct walls__module *m = &pool->modules[lane->modules_sent];
        unsigned char def[WALLS__SLOT_DATA];
        size_t len = strlen(m->path);
        memcpy(def, m->path, len);
        /* Shorter than the slot: a worker keeps one byte of it for a NUL. */
        if (m->build_id_len && len + 1 + m->build_id_len < sizeof def) {
            def[len] = '\0';
            memcpy(def + len + 1, m->build_id, m->build_id_len);
            len += 1 + m->build_id_len;
        }
        ring_push(lane, WALLS__REQ_MODULE, (uint16_t)lane->modules_sent, 0, NULL, def,
                  (uint32_t)len, 0, NULL);
        lane->modules_sent++;
    }
    task->dispatch_ns = now;
    /* It cannot overrun before now plus its limit: the timekeeper must
     * look by then (walls__engine_expire), and is told when it planned to
     * look later. */
    if (task->limit_ns && now + task->limit_ns < pool->clock_next) {
        pool->clock_next = now + task->limit_ns;
        pool->want_clock = true;
    }
    if (!walls__io_wanted(pool, task)) {
        ring_push(lane, WALLS__REQ_TASK, task->module, task->offset, NULL, task->in,
                  task->in_len, (uint32_t)pool->max_output, task);
        return 0;
    }
    size_t refs = (task->n_inputs + (task->has_output ? 1u : 0u)) * sizeof(struct walls__bufref);
    bool big_in = task->in_len > WALLS__SLOT_DATA - refs - sizeof(struct walls__io);
    struct walls__io where;
    int rc = walls__io_place(pool, lane, task, big_in, &lane->inflight[lane->rq_tail & MASK],
                             &where);
    if (rc != 0)
        return rc;
    ring_push(lane, WALLS__REQ_TASK_IO, task->module, task->offset, &where, task->in,
              big_in ? 0 : task->in_len, WALLS__SLOT_DATA, task);
    return 0;
}

int walls__engine_deal(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task,
                       int64_t now)
{
    WALLS__LOCKED(pool);
    if (ring_free(lane) < 1 + modules_needed(lane, task) || io_full(pool, lane, task))
        return -ENOSPC;
    /* A staged output is filled for this lane's copy. */
    int rc = stage_in(pool, lane, task);
    return rc ? rc : push_task(pool, lane, task, now);
}

bool walls__engine_wants_refill(const struct walls__pool *pool)
{
    /* More tasks in rings than lanes: some wait behind another, and a lane
     * that runs dry should say so. */
    return pool->npending > 0 || (pool->nlanes > 1 && pool->in_rings > pool->nlanes);
}

static void dispatch_at(struct walls__pool *pool, int64_t now)
{
    WALLS__LOCKED(pool);
    if (pool->broken) {
        walls__engine_break(pool);
        return;
    }
    bool behind = false;
    while (pool->pending.head) {
        struct walls__task *task = pool->pending.head;
        struct walls__lane *lane = pick_lane(pool, task, now);
        if (!lane)
            break;
        behind = behind || lane->oldest != lane->rq_tail;
        int staged = stage_in(pool, lane, task);
        if (staged != 0) {
            /* It ends like any queued task. */
            walls__engine_complete(pool, task, WALLS_FAILED, staged, NULL, 0);
            continue;
        }
        int rc = push_task(pool, lane, task, now);
        if (rc != 0) {
            walls__engine_complete(pool, task, WALLS_FAILED, rc, NULL, 0);
            walls__engine_publish(lane); /* module definitions may have gone in */
            continue;
        }
        pending_unlink(pool, task);
        walls__store_relaxed(&pool->in_rings, pool->in_rings + 1);
        walls__engine_publish(lane);
    }
    if (pool->rebalance) {
        pool->rebalance = false;
        walls__engine_rebalance(pool, now);
        behind = true;
    }
    if (behind)
        walls__engine_watch_balance(pool, now);
    unsigned armed = walls__engine_armed(pool);
    if ((armed & WALLS__ARM_REFILL) && !walls__engine_wants_refill(pool))
        walls__engine_arm(pool, armed & ~WALLS__ARM_REFILL);
}

void walls__engine_dispatch(struct walls__pool *pool)
{
    if (pool->pending.head || pool->rebalance)
        dispatch_at(pool, walls__now_ns());
}

void walls__engine_queue_many(struct walls__pool *pool, struct walls__task *const *tasks,
                              size_t n)
{
    WALLS__LOCKED(pool);
    for (size_t i = 0; i < n; i++) {
        tasks[i]->where = WALLS__AT_PENDING;
        list_append(&pool->pending, tasks[i]);
    }
    pool->submitted += n;
    pool->npending += n;
    dispatch_at(pool, tasks[0]->submit_ns);
    if (walls__engine_wants_refill(pool))
        walls__engine_arm(pool, walls__engine_armed(pool) | WALLS__ARM_REFILL);
}

void walls__engine_queue(struct walls__pool *pool, struct walls__task *task)
{
    walls__engine_queue_many(pool, &task, 1);
}
