/*
 * harvest.c - the engine's consumer side: completions out of the lanes'
 * rings, checked, and time limits.
 *
 * Completions are consumed ("harvested") by whoever gets there first: a
 * thread worker right after it publishes, a host thread spinning in
 * walls_wait(), a loop's walls_pool_collect() (after a process worker
 * rang the pool's descriptor, its bell), or a process pool's supervisor
 * when a doorbell rings. A
 * process worker can write anything into its mailbox, so each completion
 * is believed only if its slot index is outstanding, its tag matches the
 * in-flight table and its length fits; anything else marks the lane broke
 * (its backend then kills the worker and its tasks end as WALLS_PROTOCOL).
 *
 * Time limits count from when a task starts running. The worker announces
 * a start, and the host believes it only within what it saw itself: not
 * before the task was dispatched, nor before the task ahead of it was
 * finished. A thread task past its limit ends for its waiters while its
 * thread runs on; for a process task the engine asks its backend to kill
 * the worker (a kill reason and attention on the lane).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "atomic.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* The lane's worker wrote something the protocol does not allow. A worker
 * that can be killed is marked broke, for its backend to kill (its tasks
 * end as WALLS_PROTOCOL when it is reaped); one that cannot (a thread)
 * keeps serving, and only the task named (e) is failed. */
static void lane_broke(struct walls__pool *pool, struct walls__lane *lane,
                       struct walls__inflight *e)
{
    if (!lane->killable) {
        if (e && e->task) {
            walls__engine_complete(pool, e->task, WALLS_PROTOCOL, 0, NULL, 0);
            e->task = NULL;
        }
        if (e) {
            e->retired = 1;
            walls__io_release(lane, e);
        }
        return;
    }
    if (!lane->broke) {
        lane->broke = true;
        lane->attention = true;
        pool->attention = true;
    }
}

void walls__engine_unhold(struct walls__pool *pool, struct walls__inflight *e)
{
    if (!e->held)
        return;
    walls__arena_pin(&pool->arena, e->held->refs, e->held->n_inputs, e->held->has_output, false);
    free(e->held);
    e->held = NULL;
}

/* The task returned: its staging copy goes into the arena buffer, and its
 * pages back to the system. Only the buffer's own range is read, whatever
 * the worker wrote elsewhere. */
static void stage_out(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task)
{
    const struct walls__bufref *out = &task->refs[task->n_inputs];
    size_t span = (out->len + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
    walls__engine_stage_copy(pool, lane->staging_fd, out, false);
    fallocate(lane->staging_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)out->offset,
              (off_t)span);
}

/* Whether a completion's header is one the host can believe for entry e. */
static bool believable_done(const struct walls__pool *pool, const struct walls__lane *lane,
                            const struct walls__cqe *h)
{
    /* A relay's completions are the host's own: any status, with its
     * result flags in reserved[0]. */
    bool status = lane->relayed ? h->status <= WALLS_BROKEN
                                : h->status == WALLS_OK || h->status == WALLS_FAILED ||
                                      h->status == WALLS_PROTOCOL;
    return status && h->out_len <= pool->max_output &&
           (h->status != WALLS_PROTOCOL || h->out_len == 0);
}

void walls__engine_harvest(struct walls__pool *pool, struct walls__lane *lane)
{
    walls__engine_harvest_at(pool, lane, 0);
}

void walls__engine_harvest_at(struct walls__pool *pool, struct walls__lane *lane, int64_t now)
{
    WALLS__LOCKED(pool);
    if (lane->broke || !lane->live)
        return;
    struct walls__mailbox *mb = lane->mb;
    /* The worker rang the bell and rings again only once told that its
     * completions were looked at: told here, before the look (a full
     * fence between), so that a completion published after the look
     * rings. Only while the bell is armed: unarmed, workers do not ring
     * (and a lane's flag starts clear with each worker). The worker may
     * write anything here: a lie silences only its own rings. */
    if (pool->event_armed && lane->shared && walls__load_relaxed(&mb->bell_rung)) {
        walls__store_relaxed(&mb->bell_rung, 0u);
        walls__fence();
    }
    /* Acquire: completion bytes are read only after the tail that
     * published them. */
    uint32_t tail = walls__load_acquire(&mb->cq.tail);
    uint32_t avail = tail - lane->cq_head;
    if (avail > lane->rq_tail - lane->cq_head) {
        lane_broke(pool, lane, NULL);
        return;
    }
    if (tail != lane->cq_head && !now)
        now = walls__now_ns();
    bool consumed = tail != lane->cq_head;
    while (lane->cq_head != tail) {
        struct walls__cqe *cqe = &mb->cq_slots[lane->cq_head & MASK];
        struct walls__cqe h;
        /* One snapshot of the header: the worker may still be writing. */
        memcpy(&h, cqe, WALLS__SLOT_HEADER);
        bool ok = (uint32_t)(h.seq - lane->oldest) < (uint32_t)(lane->rq_tail - lane->oldest);
        struct walls__inflight *e = &lane->inflight[h.seq & MASK];
        ok = ok && !e->retired && e->tag == h.tag;
        if (!ok) {
            lane_broke(pool, lane, NULL);
            return;
        }
        /* What the worker counted in bell_begun before publishing it. */
        if (h.kind != WALLS__CQE_ACK)
            lane->bells_taken++;
        if (e->kind != WALLS__REQ_TASK || e->cancelled) {
            if (h.kind != WALLS__CQE_ACK) {
                lane_broke(pool, lane, e);
                return;
            }
        } else if (e->abandoned) {
            /* A thread finally returned from a task that timed out. */
            lane->stuck = false;
            walls__engine_unhold(pool, e);
        } else if (h.kind == WALLS__CQE_DONE && lane->kill_reason >= 0 && lane->kill_targeted &&
                   lane->kill_seq == h.seq && lane->kill_reason != WALLS_PROTOCOL) {
            /* It finished after the host decided to stop it (walls_cancel()
             * said 0, or its deadline passed), before the kill landed: it
             * ends as decided, and its worker goes anyway. */
            e->task->attempts++;
            e->task->result_flags |= lane->kill_flags;
            walls__engine_complete_at(pool, e->task, (enum walls_status)lane->kill_reason,
                                      lane->kill_code, NULL, 0, now);
        } else if (h.kind == WALLS__CQE_DONE && believable_done(pool, lane, &h)) {
            e->task->attempts++;
            lane->served = true;
            if (lane->relayed)
                e->task->result_flags = h.reserved[0];
            lane->last_turn_ns = now - e->task->dispatch_ns;
            if (e->task->has_output && lane->staging_fd >= 0)
                stage_out(pool, lane, e->task);
            if (e->io && pool->out_window) {
                int err = 0;
                unsigned char *out = walls__io_output(lane, e, h.out_len, &err);
                if (err)
                    walls__engine_complete_at(pool, e->task, WALLS_FAILED, err, NULL, 0, now);
                else
                    walls__engine_complete_owned(pool, e->task, (enum walls_status)h.status,
                                                 h.code, out, h.out_len, now);
            } else {
                walls__engine_complete_at(pool, e->task, (enum walls_status)h.status, h.code,
                                          cqe->data, h.out_len, now);
            }
        } else if (h.kind == WALLS__CQE_NOFN) {
            e->task->attempts++;
            walls__engine_complete(pool, e->task, WALLS_FAILED, h.code < 0 ? h.code : -ENOENT,
                                   NULL, 0);
        } else {
            lane_broke(pool, lane, e);
            if (lane->broke)
                return;
            lane->cq_head++;
            continue;
        }
        e->task = NULL;
        e->retired = 1;
        walls__io_release(lane, e);
        lane->cq_head++;
    }
    /* Release: we are done reading the consumed completion slots. */
    walls__store_release(&mb->cq.head, lane->cq_head);
    uint32_t was = lane->oldest;
    while (lane->oldest != lane->rq_tail && lane->inflight[lane->oldest & MASK].retired)
        lane->oldest++;
    if (consumed && lane->oldest != was)
        lane->retire_ns = now;
    if (consumed && lane->oldest == lane->rq_tail && pool->nlanes > 1) {
        /* It ran dry: tasks waiting elsewhere may move to it. */
        lane->ran_dry = true;
        pool->rebalance = true;
    }
    if (consumed && lane->watch) {
        lane->attention = true;
        pool->attention = true;
    }
}

void walls__engine_harvest_all(struct walls__pool *pool)
{
    WALLS__LOCKED(pool);
    if (pool->state == WALLS__POOL_DEAD || !pool->lanes)
        return;
    for (unsigned i = 0; i < pool->nlanes; i++)
        walls__engine_harvest(pool, &pool->lanes[i]);
    walls__engine_dispatch(pool);
}

struct walls__lane *walls__engine_take_attention(struct walls__pool *pool, unsigned *from)
{
    WALLS__LOCKED(pool);
    for (; *from < pool->nlanes; (*from)++) {
        struct walls__lane *lane = &pool->lanes[*from];
        if (lane->attention) {
            lane->attention = false;
            (*from)++;
            return lane;
        }
    }
    pool->attention = false;
    return NULL;
}

/* ---- time limits ----------------------------------------------------------------- */

/* The first request of the lane its worker has not finished, if it is a
 * live task (the one a worker runs, or is about to); NULL otherwise. */
static struct walls__inflight *running(struct walls__lane *lane, uint32_t *seq)
{
    for (uint32_t s = lane->oldest; s != lane->rq_tail; s++) {
        struct walls__inflight *e = &lane->inflight[s & MASK];
        if (e->retired || e->kind != WALLS__REQ_TASK || e->cancelled)
            continue;
        if (e->abandoned || !e->task)
            return NULL;
        *seq = s;
        return e;
    }
    return NULL;
}

/* Tasks with a limit queued behind the request seq: none can start before
 * now (the caller has just taken the lane's completions), so none can
 * overrun before now plus its limit. *next is lowered to the earliest. */
static void queued_limits(const struct walls__lane *lane, uint32_t seq, int64_t now,
                          int64_t *next)
{
    for (uint32_t s = seq + 1; s != lane->rq_tail; s++) {
        const struct walls__inflight *e = &lane->inflight[s & MASK];
        if (e->retired || e->kind != WALLS__REQ_TASK || e->cancelled || !e->task ||
            !e->task->limit_ns)
            continue;
        /* Limits are at most INT64_MAX / 4 (walls__ms_to_ns): no overflow. */
        if (now + e->task->limit_ns < *next)
            *next = now + e->task->limit_ns;
    }
}

/* The next lane, from index *from on, whose running task is past its
 * limit at now (its request in *seq); NULL when none is left. *next is
 * lowered to the earliest deadline still ahead: a running task's, or, for
 * a task queued behind it, now plus its limit. No tick: a task dealt
 * later lowers the time to look again when it is pushed (push_task()). */
static struct walls__lane *overrun(struct walls__pool *pool, int64_t now, unsigned *from,
                                   uint32_t *seq, int64_t *next)
{
    WALLS__LOCKED(pool);
    if (!pool->lanes || pool->ntimed == 0)
        return NULL;
    for (; *from < pool->nlanes; (*from)++) {
        struct walls__lane *lane = &pool->lanes[*from];
        struct walls__inflight *e;
        if (!lane->live || lane->kill_reason >= 0 || !(e = running(lane, seq)))
            continue;
        queued_limits(lane, *seq, now, next);
        if (!e->task->limit_ns)
            continue;
        /* It cannot have started before it was dispatched, nor (one task at
         * a time) before the one ahead of it was retired; within those
         * bounds, believe the worker's own clock. A worker that says it
         * started later (it was descheduled, stopped, or slow to start) is
         * believed once, when the limit from the host's bound has passed,
         * up to one limit after the dispatch: the limit then counts from
         * that claim, which no later word of the worker moves. A worker
         * lying so runs a task for two limits from its dispatch at most
         * (or one from the bound, when that is later). */
        int64_t start = e->task->dispatch_ns > lane->retire_ns ? e->task->dispatch_ns
                                                                : lane->retire_ns;
        if (e->start_ns) {
            start = e->start_ns;
        } else if (walls__load_acquire(&lane->mb->current_seq) == *seq) {
            int64_t claimed = (int64_t)walls__load_relaxed(&lane->mb->current_start_ns);
            if (claimed >= e->task->dispatch_ns && claimed < start)
                start = claimed;
            else if (claimed > start && claimed <= now && now >= start + e->task->limit_ns) {
                int64_t most = e->task->dispatch_ns + e->task->limit_ns;
                if (most < start)
                    most = start;
                start = e->start_ns = claimed < most ? claimed : most;
            }
        }
        int64_t deadline = start + e->task->limit_ns;
        if (now < deadline) {
            if (deadline < *next)
                *next = deadline;
            continue;
        }
        (*from)++;
        return lane;
    }
    return NULL;
}

/* A thread task overran: it ends as WALLS_TIMEOUT now, its thread runs on
 * (the lane is stuck until it returns), and the tasks queued behind it go
 * back to the queue. */
static void abandon(struct walls__pool *pool, struct walls__lane *lane, uint32_t seq)
{
    WALLS__LOCKED(pool);
    struct walls__inflight *e = &lane->inflight[seq & MASK];
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
    if (e->io && task->in != task->small_in) {
        /* Its thread may still read its large input: kept until it returns. */
        e->io_in = task->in;
        e->io_in_keep = task->in_len;
        task->in = task->small_in;
    }
    walls__engine_complete(pool, task, WALLS_TIMEOUT, 0, NULL, 0);
    e->task = NULL;
    e->abandoned = 1;
    lane->stuck = true;
    struct walls__task *requeue[WALLS__RING_SLOTS];
    unsigned n = walls__engine_take_back(pool, lane, seq, WALLS__RING_SLOTS, requeue);
    while (n > 0)
        walls__engine_requeue_front(pool, requeue[--n]);
}

int64_t walls__engine_expire(struct walls__pool *pool, int64_t now)
{
    WALLS__LOCKED(pool);
    int64_t next = INT64_MAX;
    unsigned from = 0;
    uint32_t seq;
    struct walls__lane *lane;
    while ((lane = overrun(pool, now, &from, &seq, &next)) != NULL) {
        if (!lane->killable) {
            /* A thread that has not taken the task yet (starved of CPU)
             * gives it back, and the tasks behind it, uncharged. */
            struct walls__task *back[WALLS__RING_SLOTS];
            unsigned n = walls__engine_take_back(pool, lane, seq - 1, WALLS__RING_SLOTS, back);
            bool started = !lane->inflight[seq & MASK].cancelled;
            while (n > 0)
                walls__engine_requeue_front(pool, back[--n]);
            if (started)
                abandon(pool, lane, seq);
            continue;
        }
        /* Its backend kills the worker for it. */
        lane->kill_reason = WALLS_TIMEOUT;
        lane->kill_code = 0;
        lane->kill_flags = 0;
        lane->kill_targeted = true;
        lane->kill_seq = seq;
        lane->attention = true;
        pool->attention = true;
    }
    /* What the dispatch below deals with a limit lowers this (push_task()). */
    pool->clock_next = INT64_MAX;
    walls__engine_dispatch(pool);
    int64_t balance = walls__engine_balance(pool, now);
    if (pool->clock_next < next)
        next = pool->clock_next;
    if (balance < next)
        next = balance;
    pool->clock_next = next;
    return next;
}

/* ---- the pool's bell ---------------------------------------------------------- */

/* A ring is one write(2): the host waits for the rings of the completions
 * it has taken, spinning, then yielding (the worker may have been
 * preempted between publishing and ringing), for at most BELL_WAIT_NS a
 * lane. A lane that made it give up BELL_STRIKES times, or whose counts
 * cannot be true, is not waited for again until its next worker (its
 * rings may then wake a loop for nothing). A worker can so delay a
 * collect by up to BELL_WAIT_NS, as it can wake the loop for nothing by
 * ringing; never hide a completion. */
#define BELL_SPINS 64
#define BELL_WAIT_NS 5000000
#define BELL_STRIKES 8

/* Waits for the rings of the task completions taken from the lane. */
static void wait_for_rings(struct walls__lane *lane)
{
    uint32_t due = lane->bells_taken;
    /* Acquire: the rings happened before the counts. */
    uint32_t begun = walls__load_acquire(&lane->mb->bell_begun);
    if ((int32_t)(begun - due) < 0) {
        lane->bell_unsure = true; /* it published completions it never counted */
        return;
    }
    int64_t start = 0;
    for (unsigned spin = 0; (int32_t)(walls__load_acquire(&lane->mb->bell_done) - due) < 0;
         spin++) {
        if (spin < BELL_SPINS) {
            walls__cpu_relax();
            continue;
        }
        int64_t now = walls__now_ns();
        if (!start)
            start = now;
        if (now - start >= BELL_WAIT_NS) {
            if (++lane->bell_strikes >= BELL_STRIKES)
                lane->bell_unsure = true;
            return;
        }
        sched_yield();
    }
}

void walls__eventfd_take(int fd)
{
    static int nowait = 1; /* RWF_NOWAIT works on eventfds (Linux 5.12 on) */
    uint64_t count;
    struct iovec iov = {&count, sizeof count};
    if (__atomic_load_n(&nowait, __ATOMIC_RELAXED)) {
        ssize_t rd;
        do
            rd = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
        while (rd < 0 && errno == EINTR);
        if (rd >= 0 || errno == EAGAIN || errno == EBADF)
            return;
        __atomic_store_n(&nowait, 0, __ATOMIC_RELAXED);
    }
    /* Readable now stays readable until this read: no worker reads. */
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        ssize_t rd = read(fd, &count, sizeof count);
        (void)rd;
    }
}

void walls__engine_settle_bells(struct walls__pool *pool)
{
    WALLS__LOCKED(pool);
    if (!pool->event_armed || pool->event_fd < 0)
        return;
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        if (lane->mb && lane->shared && lane->live && !lane->bell_unsure)
            wait_for_rings(lane);
    }
    /* Every ring for what was taken has landed: reset, and take what rang
     * since (its ring may be among those just reset). */
    walls__eventfd_take(pool->event_fd);
    pool->fd_raised = false;
    walls__engine_harvest_all(pool);
}
