/*
 * test-ring.c - the engine's rings on their own: a pool with no backend
 * and no worker, whose lanes' worker side the test plays by hand, the way
 * a worker's loop (worker_loop.c) consumes requests and publishes
 * completions.
 *
 * Tasks go into rings in submission order and come out completed with
 * their outputs; the free-running indices wrap; a full ring leaves tasks
 * in the queue until a completion makes room; a task cancelled in a ring
 * is acknowledged, not run; every lie a worker can tell in its completion
 * ring (an index out of range, a wrong tag, a completion twice, too long an
 * output) marks a process lane broke, or fails the named task of a thread
 * lane; and time limits end thread tasks for their waiters and ask for a
 * process lane's worker to be killed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "engine.h"
#include "futex.h"
#include "helpers.h"
#include "mailbox.h"
#include "pool.h"
#include "tables.h"

#define MASK (WALLS__RING_SLOTS - 1)

static struct walls__pool pool;
static struct walls__lane lanes[2];

/* A pool of n lanes with mailboxes in private memory; killable: process
 * lanes (a protocol break marks them broke), else thread lanes. */
static void open_pool(unsigned n, bool killable)
{
    memset(&pool, 0, sizeof pool);
    pool.clock_next = INT64_MAX;
    ck_assert_int_eq(pthread_mutex_init(&pool.lock, NULL), 0);
    pool.state = WALLS__POOL_ALIVE;
    pool.placement = killable ? WALLS_PROCESSES : WALLS_THREADS;
    pool.nlanes = n;
    pool.lanes = lanes;
    pool.max_output = WALLS_INLINE_MAX;
    pool.event_fd = -1;
    for (unsigned i = 0; i < n; i++) {
        struct walls__lane *lane = &lanes[i];
        walls__engine_lane_init(&pool, lane, i);
        lane->killable = killable;
        lane->mb = aligned_alloc(4096, WALLS__MAILBOX_SIZE);
        ck_assert_ptr_nonnull(lane->mb);
        memset(lane->mb, 0, WALLS__MAILBOX_SIZE);
        walls__engine_lane_reset(lane);
        lane->live = lane->open = true;
    }
    walls__pool_lock(&pool);
}

static void close_pool(void)
{
    walls__pool_unlock(&pool);
    for (unsigned i = 0; i < pool.nlanes; i++)
        free(lanes[i].mb);
    pthread_mutex_destroy(&pool.lock);
}

/* Puts every index of the lane, both sides, at start: to cross the wrap. */
static void set_indices(struct walls__lane *lane, uint32_t start)
{
    struct walls__mailbox *mb = lane->mb;
    lane->rq_tail = lane->oldest = lane->cq_head = lane->seen_done = start;
    mb->rq.tail = mb->rq.head = mb->cq.tail = mb->cq.head = start;
}

static struct walls__task *submit(int value, int64_t limit_ns)
{
    struct walls__task *task = walls__task_new(&pool);
    ck_assert_ptr_nonnull(task);
    task->module = WALLS__MODULE_RAW;
    task->offset = 0;
    task->in_len = sizeof value;
    memcpy(task->in, &value, sizeof value);
    task->submit_ns = walls__now_ns();
    task->limit_ns = limit_ns;
    if (limit_ns)
        pool.ntimed++;
    walls__engine_queue(&pool, task);
    return task;
}

/* The worker's side, for the next request of the lane: takes it (unless
 * the host cancelled it), and publishes a completion whose output is the
 * input doubled. Returns whether there was a request. */
static bool serve_one(struct walls__lane *lane)
{
    struct walls__mailbox *mb = lane->mb;
    uint32_t head = mb->rq.head;
    if (head == walls__load_acquire(&mb->rq.tail))
        return false;
    struct walls__req *req = &mb->rq_slots[head & MASK];
    struct walls__cqe *cqe = &mb->cq_slots[mb->cq.tail & MASK];
    cqe->seq = req->seq;
    cqe->tag = req->tag;
    cqe->status = 0;
    cqe->code = 0;
    cqe->out_len = 0;
    uint32_t queued = WALLS__SLOT_QUEUED;
    if (req->kind == WALLS__REQ_TASK && walls__cas(&req->state, &queued, WALLS__SLOT_RUNNING)) {
        int v;
        memcpy(&v, req->data, sizeof v);
        v *= 2;
        memcpy(cqe->data, &v, sizeof v);
        cqe->kind = WALLS__CQE_DONE;
        cqe->status = WALLS_OK;
        cqe->out_len = sizeof v;
    } else {
        cqe->kind = WALLS__CQE_ACK;
    }
    walls__store_release(&mb->rq.head, head + 1);
    walls__store_release(&mb->cq.tail, mb->cq.tail + 1);
    return true;
}

static int output_of(const struct walls__task *task)
{
    ck_assert_uint_eq(task->out_len, sizeof(int));
    int v;
    memcpy(&v, task->out, sizeof v);
    return v;
}

static void check_accounts(unsigned ntasks, struct walls__task **tasks)
{
    uint64_t done = 0, in_rings = 0, queued = 0;
    for (unsigned i = 0; i < ntasks; i++) {
        done += tasks[i]->where == WALLS__AT_DONE;
        in_rings += tasks[i]->where == WALLS__AT_LANE;
        queued += tasks[i]->where == WALLS__AT_PENDING;
    }
    ck_assert_uint_eq(done, pool.completed);
    ck_assert_uint_eq(in_rings, pool.in_rings);
    ck_assert_uint_eq(queued, pool.npending);
}

/* In order, through the wrap of the 32-bit indices, with the outputs. */
START_TEST(test_order_and_wrap)
{
    open_pool(1, true);
    set_indices(&lanes[0], UINT32_MAX - 40);
    enum { N = 200 };
    static struct walls__task *t[N];
    unsigned next = 0;
    for (unsigned round = 0; next < N; round++) {
        for (unsigned k = 0; k < 7 && next < N; k++, next++)
            t[next] = submit((int)next, 0);
        while (serve_one(&lanes[0])) {
        }
        walls__engine_harvest_all(&pool);
        check_accounts(next, t);
    }
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(t[i]->where, WALLS__AT_DONE);
        ck_assert_int_eq(t[i]->status, WALLS_OK);
        ck_assert_int_eq(output_of(t[i]), 2 * (int)i);
        ck_assert_uint_eq(t[i]->attempts, 1);
    }
    ck_assert(!lanes[0].broke);
    ck_assert_uint_eq(lanes[0].oldest, lanes[0].rq_tail);
    ck_assert_uint_lt(lanes[0].rq_tail, 200); /* it wrapped */
    for (unsigned i = 0; i < N; i++)
        walls__task_recycle(t[i]);
    close_pool();
}
END_TEST

/* A full ring: the 33rd task waits in the queue until a completion. */
START_TEST(test_full_ring)
{
    open_pool(1, true);
    struct walls__task *t[WALLS__RING_SLOTS + 3];
    for (unsigned i = 0; i < WALLS__RING_SLOTS + 3; i++)
        t[i] = submit((int)i, 0);
    ck_assert_uint_eq(pool.in_rings, WALLS__RING_SLOTS);
    ck_assert_uint_eq(pool.npending, 3);
    ck_assert_uint_eq(t[WALLS__RING_SLOTS]->where, WALLS__AT_PENDING);
    /* The worker asks for more when it runs dry (its refill doorbell). */
    ck_assert_uint_eq(walls__engine_armed(&pool) & WALLS__ARM_REFILL, WALLS__ARM_REFILL);
    ck_assert(serve_one(&lanes[0]));
    walls__engine_harvest_all(&pool);
    ck_assert_uint_eq(t[0]->where, WALLS__AT_DONE);
    ck_assert_uint_eq(t[WALLS__RING_SLOTS]->where, WALLS__AT_LANE);
    ck_assert_uint_eq(pool.npending, 2);
    while (pool.completed < WALLS__RING_SLOTS + 3) {
        while (serve_one(&lanes[0])) {
        }
        walls__engine_harvest_all(&pool);
    }
    ck_assert_uint_eq(walls__engine_armed(&pool) & WALLS__ARM_REFILL, 0);
    for (unsigned i = 0; i < WALLS__RING_SLOTS + 3; i++) {
        ck_assert_int_eq(output_of(t[i]), 2 * (int)i);
        walls__task_recycle(t[i]);
    }
    close_pool();
}
END_TEST

/* Cancelled in the ring before the worker took it: acknowledged, never
 * run; the one the worker took cannot be cancelled. */
START_TEST(test_cancel_in_ring)
{
    open_pool(1, true);
    struct walls__task *a = submit(1, 0), *b = submit(2, 0), *c = submit(3, 0);
    ck_assert_int_eq(walls__engine_cancel(&pool, b), 0);
    ck_assert_int_eq(b->status, WALLS_CANCELLED);
    ck_assert_uint_eq(b->where, WALLS__AT_DONE);
    /* The worker takes a: now a is running. */
    struct walls__req *ra = &lanes[0].mb->rq_slots[a->seq & MASK];
    uint32_t queued = WALLS__SLOT_QUEUED;
    ck_assert(walls__cas(&ra->state, &queued, WALLS__SLOT_RUNNING));
    ck_assert_int_eq(walls__engine_cancel(&pool, a), -EBUSY);
    ra->state = WALLS__SLOT_QUEUED; /* give it back for serve_one */
    while (serve_one(&lanes[0])) {
    }
    walls__engine_harvest_all(&pool);
    ck_assert(!lanes[0].broke);
    ck_assert_int_eq(a->status, WALLS_OK);
    ck_assert_int_eq(c->status, WALLS_OK);
    ck_assert_int_eq(output_of(c), 6);
    ck_assert_int_eq(walls__engine_cancel(&pool, c), -EALREADY);
    ck_assert_uint_eq(lanes[0].oldest, lanes[0].rq_tail);
    walls__task_recycle(a);
    walls__task_recycle(b);
    walls__task_recycle(c);
    close_pool();
}
END_TEST

/* Each lie of a worker, on a process lane: the lane is marked broke and
 * asks for attention (its backend kills the worker); nothing it says is
 * believed from then on. */
enum lie { LIE_INDEX, LIE_TAG, LIE_TWICE, LIE_LONG, LIE_STATUS, NLIES };

static void tell(struct walls__lane *lane, enum lie lie)
{
    struct walls__mailbox *mb = lane->mb;
    uint32_t tail = mb->cq.tail;
    struct walls__cqe *cqe = &mb->cq_slots[tail & MASK];
    switch (lie) {
    case LIE_INDEX: /* more completions than requests */
        walls__store_release(&mb->cq.tail, tail + 5);
        return;
    case LIE_TAG:
        ck_assert(serve_one(lane));
        cqe->tag ^= 0x5a5a;
        return;
    case LIE_TWICE:
        ck_assert(serve_one(lane));
        mb->cq_slots[(tail + 1) & MASK] = *cqe;
        walls__store_release(&mb->cq.tail, tail + 2);
        return;
    case LIE_LONG:
        ck_assert(serve_one(lane));
        cqe->out_len = WALLS_INLINE_MAX + 1;
        return;
    case LIE_STATUS:
        ck_assert(serve_one(lane));
        cqe->status = WALLS_CRASHED; /* only the host says that */
        return;
    case NLIES:
        break;
    }
}

START_TEST(test_lies_break_process_lanes)
{
    open_pool(1, true);
    struct walls__task *t = submit(5, 0), *u = submit(6, 0);
    tell(&lanes[0], (enum lie)_i);
    walls__engine_harvest_all(&pool);
    ck_assert_msg(lanes[0].broke, "lie %d was believed", _i);
    ck_assert(lanes[0].attention && pool.attention);
    unsigned from = 0;
    ck_assert_ptr_eq(walls__engine_take_attention(&pool, &from), &lanes[0]);
    ck_assert_ptr_null(walls__engine_take_attention(&pool, &from));
    /* Nothing more is read from it: u stays with the lane, for the
     * backend to settle when the worker is gone. */
    serve_one(&lanes[0]);
    walls__engine_harvest_all(&pool);
    ck_assert_uint_eq(u->where, WALLS__AT_LANE);
    ck_assert(t->where != WALLS__AT_DONE || t->status == WALLS_OK);
    walls__task_recycle(t);
    walls__task_recycle(u);
    close_pool();
}
END_TEST

/* The same lies on a thread lane (its worker cannot be killed): the task
 * named fails as WALLS_PROTOCOL and the lane serves on. */
START_TEST(test_lies_fail_thread_tasks)
{
    open_pool(1, false);
    struct walls__task *t = submit(5, 0);
    tell(&lanes[0], LIE_LONG);
    walls__engine_harvest_all(&pool);
    ck_assert(!lanes[0].broke);
    ck_assert_int_eq(t->status, WALLS_PROTOCOL);
    struct walls__task *u = submit(6, 0);
    while (serve_one(&lanes[0])) {
    }
    walls__engine_harvest_all(&pool);
    ck_assert_int_eq(u->status, WALLS_OK);
    ck_assert_int_eq(output_of(u), 12);
    walls__task_recycle(t);
    walls__task_recycle(u);
    close_pool();
}
END_TEST

/* Time limits: a thread task past its limit ends as WALLS_TIMEOUT, its lane
 * is stuck and the task behind it goes back to the queue (then to the
 * other lane); a process lane gets a kill reason for the request and asks
 * for attention. */
START_TEST(test_expire)
{
    open_pool(2, false);
    pool.next_lane = 0;
    struct walls__task *slow = submit(1, 1000);
    /* Both to lane 0: make lane 1 take nothing for now. */
    lanes[1].open = false;
    struct walls__task *behind = submit(2, 0);
    ck_assert_uint_eq(slow->lane, 0);
    ck_assert_uint_eq(behind->lane, 0);
    lanes[1].open = true;
    struct walls__req *rs = &lanes[0].mb->rq_slots[slow->seq & MASK];
    uint32_t queued = WALLS__SLOT_QUEUED;
    ck_assert(walls__cas(&rs->state, &queued, WALLS__SLOT_RUNNING)); /* it started */
    int64_t now = slow->dispatch_ns + 2000;
    int64_t next = walls__engine_expire(&pool, now);
    ck_assert_int_eq(slow->status, WALLS_TIMEOUT);
    ck_assert(lanes[0].stuck);
    ck_assert_uint_eq(behind->where, WALLS__AT_LANE);
    ck_assert_uint_eq(behind->lane, 1); /* moved, and dispatched again */
    ck_assert_int_eq(next, INT64_MAX); /* no limited task left: no tick either */
    walls__task_recycle(slow);
    walls__task_recycle(behind);
    close_pool();

    open_pool(1, true);
    struct walls__task *p = submit(1, 1000);
    int64_t ahead = walls__engine_expire(&pool, p->dispatch_ns + 500);
    ck_assert_int_eq(ahead, p->dispatch_ns + 1000); /* the deadline, not yet passed */
    walls__engine_expire(&pool, p->dispatch_ns + 2000);
    ck_assert_int_eq(lanes[0].kill_reason, WALLS_TIMEOUT);
    ck_assert(lanes[0].kill_targeted);
    ck_assert_uint_eq(lanes[0].kill_seq, p->seq);
    ck_assert(lanes[0].attention);
    ck_assert_uint_eq(p->where, WALLS__AT_LANE); /* ends when its worker is reaped */
    walls__task_recycle(p);
    close_pool();
}
END_TEST

/* The clock without a tick: a task with a limit queued behind a running
 * one is looked at by now plus its limit (it cannot start before now); a
 * limited task dealt to a ring asks for the clock only when it is due
 * before the clock looks anyway. */
START_TEST(test_expire_untimed)
{
    open_pool(1, true);
    struct walls__task *a = submit(1, 0);
    ck_assert(!pool.want_clock); /* no limit: nothing for the clock */
    ck_assert_int_eq(pool.clock_next, INT64_MAX);
    struct walls__task *b = submit(2, 1000000);
    ck_assert(pool.want_clock);
    ck_assert_int_eq(pool.clock_next, b->dispatch_ns + 1000000);
    pool.want_clock = false;
    struct walls__req *ra = &lanes[0].mb->rq_slots[a->seq & MASK];
    uint32_t queued = WALLS__SLOT_QUEUED;
    ck_assert(walls__cas(&ra->state, &queued, WALLS__SLOT_RUNNING)); /* a started */
    int64_t now = b->dispatch_ns + 5000000;
    int64_t next = walls__engine_expire(&pool, now);
    ck_assert_int_eq(next, now + 1000000); /* b waits behind a: not yet overrun */
    ck_assert_int_eq(pool.clock_next, next);
    ck_assert_int_lt(lanes[0].kill_reason, 0);
    /* Due after the clock looks anyway: no wake-up asked. */
    struct walls__task *c = submit(3, 10000000);
    ck_assert(!pool.want_clock);
    ck_assert_int_eq(pool.clock_next, next);
    /* Due before: asked, and the time lowered. */
    struct walls__task *d = submit(4, 1000);
    ck_assert(pool.want_clock);
    ck_assert_int_eq(pool.clock_next, d->dispatch_ns + 1000);
    walls__task_recycle(a);
    walls__task_recycle(b);
    walls__task_recycle(c);
    walls__task_recycle(d);
    close_pool();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");
    tcase_add_test(tc, test_order_and_wrap);
    tcase_add_test(tc, test_full_ring);
    tcase_add_test(tc, test_cancel_in_ring);
    tcase_add_loop_test(tc, test_lies_break_process_lanes, 0, NLIES);
    tcase_add_test(tc, test_lies_fail_thread_tasks);
    tcase_add_test(tc, test_expire);
    tcase_add_test(tc, test_expire_untimed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
