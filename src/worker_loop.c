/*
 * worker_loop.c - the consumer side of a mailbox, shared by thread and
 * process workers.
 *
 * The loop takes requests in ring order, runs each task with its input read
 * in place from the request slot and its output written in place into the
 * next completion slot, then hands the request slot back and publishes the
 * completion. The host never has more requests outstanding than the
 * completion ring holds, so publishing never waits. Everything that
 * differs between a thread and a process worker comes in through the
 * hooks (worker.h).
 */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arena.h"
#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* How long a worker spins for its next request before it sleeps follows
 * what spinning bought lately. A request that came within the longest
 * spin (WALLS__WORKER_SPIN_NS), whether the worker was still spinning or
 * had gone to sleep, sets the next spin to the longest; one that came
 * later shortens it by a quarter, and below WALLS__WORKER_SPIN_FLOOR_NS
 * to nothing. A worker fed again soon after each completion (a round
 * trip, a busy server) spins as it always did; one fed in rounds further
 * apart than the longest spin soon sleeps at once, and leaves the CPU to
 * whoever wants it. */
int64_t walls__worker_spin_next(int64_t window, int64_t idle_ns)
{
    if (idle_ns <= WALLS__WORKER_SPIN_NS)
        return WALLS__WORKER_SPIN_NS;
    window -= window / 4;
    return window < WALLS__WORKER_SPIN_FLOOR_NS ? 0 : window;
}

static uint32_t wait_for_request(struct walls__mailbox *mb, uint32_t head, bool shared,
                                 int64_t *window, const struct walls__worker_hooks *hooks)
{
    /* Acquire: the slot contents are visible once the tail is. */
    uint32_t tail = walls__load_acquire(&mb->rq.tail);
    if (tail != head)
        return tail;
    int64_t start = walls__now_ns();
    int64_t now = start;
    do {
        for (int i = 0; i < 64; i++) {
            walls__cpu_relax();
            tail = walls__load_acquire(&mb->rq.tail);
            if (tail != head) {
                *window = WALLS__WORKER_SPIN_NS;
                return tail;
            }
        }
        if (hooks->idle)
            hooks->idle(hooks->ctx, false);
        if (now - start >= *window)
            break;
        /* With more runnable threads than CPUs, let the producer run. */
        sched_yield();
        now = walls__now_ns();
    } while (now - start < *window);
    if (hooks->idle)
        hooks->idle(hooks->ctx, true);
    for (;;) {
        /* Seq-cst add: the host reads this count after its full fence, so
         * either it sees us counted or we see its new tail below. */
        walls__fetch_add(&mb->rq.tail_waiters, 1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail == head)
            walls__futex_wait(&mb->rq.tail, head, -1, shared);
        walls__fetch_add(&mb->rq.tail_waiters, (uint32_t)-1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail != head)
            break;
    }
    *window = walls__worker_spin_next(*window, walls__now_ns() - start);
    return tail;
}

/* Points the call at its arena buffers, whose references end the request's
 * data; in DIRECT mode makes its output writable (*window). Returns 0 or
 * -errno: the host wrote something it never writes. */
static int arena_call(const struct walls__arena_view *av, const struct walls__req *req,
                      size_t head, struct walls_call *call, struct walls_span *spans,
                      unsigned char **window, size_t *window_len)
{
    unsigned n = req->n_inputs, refs = n + (req->has_output ? 1u : 0u);
    size_t room = (size_t)refs * sizeof(struct walls__bufref);
    if (!av || !av->base || n > WALLS_TASK_INPUTS_MAX || req->has_output > 1 ||
        head + room + req->in_len > WALLS__SLOT_DATA)
        return -EPROTO;
    struct walls__bufref ref[WALLS_TASK_INPUTS_MAX + 1];
    memcpy(ref, req->data + WALLS__SLOT_DATA - room, room);
    for (unsigned i = 0; i < refs; i++)
        if (ref[i].offset % WALLS__PAGE || ref[i].offset > av->size ||
            ref[i].len > av->size - ref[i].offset)
            return -EPROTO;
    for (unsigned i = 0; i < n; i++)
        spans[i] = (struct walls_span){av->base + ref[i].offset, ref[i].len};
    call->inputs = n ? spans : NULL;
    call->n_inputs = n;
    if (req->has_output) {
        uint64_t off = ref[n].offset, len = ref[n].len;
        if (av->staging) {
            call->output = av->staging + off;
        } else {
            call->output = av->base + off;
            if (av->windows) {
                size_t span = (len + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
                if (mprotect(av->base + off, span, PROT_READ | PROT_WRITE) != 0)
                    return -errno;
                *window = av->base + off;
                *window_len = span;
            }
        }
        call->output_len = len;
    }
    return 0;
}

static void thread_ended(void *arg)
{
    ((void (*)(void))arg)();
}

/* fn(call), with a cleanup handler that hears of a pthread_exit() in it. */
static int call_guarded(walls_fn *fn, struct walls_call *call, void (*ended)(void))
{
    int rc;
    pthread_cleanup_push(thread_ended, (void *)ended);
    rc = fn(call);
    pthread_cleanup_pop(0);
    return rc;
}

static void run_task(struct walls__mailbox *mb, struct walls__req *req, struct walls__cqe *cqe,
                     const struct walls__worker_hooks *hooks)
{
    uint32_t expected = WALLS__SLOT_QUEUED;
    if (!walls__cas(&req->state, &expected, WALLS__SLOT_RUNNING)) {
        cqe->kind = WALLS__CQE_ACK; /* cancelled by the host before it started */
        return;
    }
    int err = 0;
    walls_fn *fn = hooks->resolve(hooks->ctx, req->module, req->offset, &err);
    /* When the clock of a time limit starts; the host bounds this claim by
     * what it saw itself. */
    if (walls__load_relaxed(&mb->report_start)) {
        walls__store_relaxed(&mb->current_start_ns, (uint64_t)walls__now_ns());
        walls__store_release(&mb->current_seq, req->seq);
    }
    if (!fn) {
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = err;
        return;
    }
    /* A large input or output: where it is comes first in the slot. */
    struct walls__io io;
    size_t head = walls__req_io(req, &io);
    uint32_t room = (uint32_t)(WALLS__SLOT_DATA - head);
    uint32_t in_len = req->in_len < room ? req->in_len : room;
    uint64_t out_cap = req->out_cap < WALLS__SLOT_DATA ? req->out_cap : WALLS__SLOT_DATA;
    struct walls_call call = {.in = req->data + head,
                              .in_len = in_len,
                              .out = cqe->data,
                              .out_cap = (size_t)out_cap,
                              .out_len = 0};
    void *in_map = NULL, *out_map = NULL;
    if (io.in_len && (!hooks->io_map || io.in_len > WALLS_IO_MAX ||
                      !(in_map = hooks->io_map(hooks->ctx, io.in_at, io.in_len, false, &err)))) {
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = hooks->io_map && io.in_len <= WALLS_IO_MAX ? err : -EPROTO;
        return;
    }
    if (io.out_cap && (!hooks->io_map || io.out_cap > WALLS_IO_MAX ||
                       !(out_map = hooks->io_map(hooks->ctx, io.out_at, io.out_cap, true, &err)))) {
        if (in_map)
            hooks->io_unmap(hooks->ctx, in_map, io.in_len);
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = hooks->io_map && io.out_cap <= WALLS_IO_MAX ? err : -EPROTO;
        return;
    }
    if (in_map) {
        call.in = in_map;
        call.in_len = (size_t)io.in_len;
    }
    if (out_map) {
        call.out = out_map;
        call.out_cap = (size_t)io.out_cap;
        out_cap = io.out_cap;
    }
    struct walls_span spans[WALLS_TASK_INPUTS_MAX];
    unsigned char *window = NULL;
    size_t window_len = 0;
    const struct walls__arena_view *av = hooks->arena;
    if (av) {
        call.locks = av->locks;
        call.n_locks = av->nlocks;
        call.shared = av->shared;
        call.shared_size = av->shared_size;
    }
    if (req->n_inputs || req->has_output)
        err = arena_call(av, req, head, &call, spans, &window, &window_len);
    int rc = err ? 0 : hooks->thread_ended ? call_guarded(fn, &call, hooks->thread_ended)
                                           : fn(&call);
    if (window && mprotect(window, window_len, PROT_READ) != 0)
        abort(); /* the output would stay writable for the next task */
    if (in_map)
        hooks->io_unmap(hooks->ctx, in_map, io.in_len);
    if (out_map)
        hooks->io_unmap(hooks->ctx, out_map, io.out_cap);
    if (err) {
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = err;
        return;
    }
    cqe->kind = WALLS__CQE_DONE;
    if (call.out_len > out_cap) {
        /* The task broke its side of the contract, not this loop: say so,
         * and keep the worker. */
        cqe->status = WALLS_PROTOCOL;
        cqe->code = 0;
        cqe->out_len = 0;
        return;
    }
    cqe->status = rc == 0 ? WALLS_OK : WALLS_FAILED;
    cqe->code = rc;
    cqe->out_len = (uint32_t)call.out_len;
}

void walls__worker_loop(struct walls__mailbox *mb, const struct walls__worker_hooks *hooks,
                        bool shared)
{
    uint32_t head = walls__load_relaxed(&mb->rq.head);
    uint32_t ctail = walls__load_relaxed(&mb->cq.tail);
    int64_t spin_window = WALLS__WORKER_SPIN_NS;
    for (;;) {
        uint32_t tail = wait_for_request(mb, head, shared, &spin_window, hooks);
        while (head != tail) {
            struct walls__req *req = &mb->rq_slots[head & MASK];
            struct walls__cqe *cqe = &mb->cq_slots[ctail & MASK];
            bool stop = false;
            cqe->seq = req->seq;
            cqe->tag = req->tag;
            cqe->status = 0;
            cqe->code = 0;
            cqe->out_len = 0;
            switch (req->kind) {
            case WALLS__REQ_TASK:
            case WALLS__REQ_TASK_IO:
                run_task(mb, req, cqe, hooks);
                break;
            case WALLS__REQ_MODULE: {
                /* The path, then a NUL and the object's build-id when
                 * the host knows it. */
                char path[WALLS__SLOT_DATA];
                uint32_t n = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA - 1;
                memcpy(path, req->data, n);
                path[n] = '\0';
                size_t len = strlen(path);
                const unsigned char *id = len < n ? req->data + len + 1 : NULL;
                size_t id_len = len < n ? n - len - 1 : 0;
                cqe->kind = WALLS__CQE_ACK;
                cqe->code = hooks->define_module ? hooks->define_module(hooks->ctx, req->module,
                                                                        path, id, id_len)
                                                 : 0;
                break;
            }
            case WALLS__REQ_STOP:
            default:
                cqe->kind = WALLS__CQE_ACK;
                stop = true;
                break;
            }
            head++;
            ctail++;
            /* A process worker counts each task completion before the
             * host can take it: the host then knows a ring of the pool's
             * bell is owed for it (mailbox.h). */
            if (shared && cqe->kind != WALLS__CQE_ACK)
                walls__store_relaxed(&mb->bell_begun, mb->bell_begun + 1);
            /* Release: the task is done with the request slot before the
             * host may refill it, and the completion's bytes are written
             * before the host can see the new tail. */
            walls__store_release(&mb->rq.head, head);
            walls__store_release(&mb->cq.tail, ctail);
            /* Caught up with the tail read last: look again, so that a
             * ring the host kept filling is not reported dry (which asks
             * it for a refill: a thread's visit to the pool's lock, a
             * process's doorbell). Acquire, as in wait_for_request(). */
            if (head == tail)
                tail = walls__load_acquire(&mb->rq.tail);
            hooks->published(hooks->ctx, head != tail, (head - 1) & MASK);
            if (stop)
                return;
        }
    }
}
