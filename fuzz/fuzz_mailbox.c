/*
 * fuzz_mailbox.c - the host reading a hostile worker's mailbox.
 *
 * A process worker can write anything into its mailbox. This libFuzzer
 * target builds a pool with one process lane (no real process: a kill is
 * only a mark), dispatches a few tasks into its ring as the host would,
 * then overwrites every byte the worker could have written with the
 * fuzzer's input and lets the host harvest, check deadlines and dispatch
 * again. Under AddressSanitizer any read or write
 * out of bounds is a finding; so is any broken accounting: every task must
 * still be either finished, in a ring, or queued.
 *
 *   build: make fuzz   (clang, -fsanitize=fuzzer,address,undefined)
 *   run:   ./build-fuzz/fuzz_mailbox -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "internal.h"
#include "mailbox.h"

enum { NTASKS = 40 };

static int never_called(struct walls_call *call)
{
    (void)call;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct walls__pool pool;
    static struct walls__lane lane;
    static struct walls__task tasks[NTASKS];
    static struct walls__mailbox *mb;
    static unsigned char outs[NTASKS][WALLS_INLINE_MAX];
    if (!mb) {
        mb = aligned_alloc(4096, WALLS__MAILBOX_SIZE);
        pthread_mutex_init(&pool.lock, NULL);
    }
    memset(mb, 0, WALLS__MAILBOX_SIZE);
    size_t keep = offsetof(struct walls__pool, owner);
    memset((char *)&pool + keep, 0, sizeof pool - keep);
    pool.state = WALLS__POOL_ALIVE;
    pool.placement = WALLS_PROCESSES;
    pool.nlanes = 1;
    pool.nprocs = 1;
    pool.lanes_per = 1;
    pool.max_output = WALLS_INLINE_MAX;
    pool.lanes = &lane;
    pool.event_fd = -1;
    pool.restart_limit = 100;
    /* A process lane with no real process: a kill is only a mark. */
    walls__engine_lane_init(&pool, &lane, 0);
    lane.mb = mb;
    lane.shared = true;
    lane.killable = true;
    walls__engine_lane_reset(&lane);
    lane.live = lane.open = true;

    /* The host queues and dispatches: 32 go into the ring, the rest wait. */
    for (unsigned i = 0; i < NTASKS; i++) {
        struct walls__task *t = &tasks[i];
        memset(t, 0, sizeof *t);
        t->pool = &pool;
        t->module = WALLS__MODULE_RAW;
        t->offset = (uint64_t)(uintptr_t)never_called;
        t->in = t->small_in;
        t->out = outs[i];
        t->where = WALLS__AT_PENDING;
        t->prev = i ? &tasks[i - 1] : NULL;
        if (i)
            tasks[i - 1].next = t;
        pool.submitted++;
    }
    pool.pending.head = &tasks[0];
    pool.pending.tail = &tasks[NTASKS - 1];
    pool.npending = NTASKS;
    walls__pool_lock(&pool);
    walls__engine_dispatch(&pool);

    /* The worker writes whatever it likes: over the completion ring, the
     * request ring and the header, in the input's order, round after round. */
    size_t off = 0;
    while (off < size && !lane.broke) {
        size_t chunk = size - off;
        size_t at = 0;
        if (chunk > 4) {
            memcpy(&at, data + off, 2);
            at %= WALLS__MAILBOX_SIZE;
            off += 2;
            chunk = size - off;
        }
        if (chunk > 64)
            chunk = 64;
        if (at + chunk > WALLS__MAILBOX_SIZE)
            chunk = WALLS__MAILBOX_SIZE - at;
        memcpy((char *)mb + at, data + off, chunk);
        off += chunk;
        walls__engine_harvest(&pool, &lane);
        walls__engine_expire(&pool, 1);
    }

    /* Accounting: every task is finished, in the ring, or queued. */
    uint64_t done = 0, in_ring = 0, queued = 0;
    for (unsigned i = 0; i < NTASKS; i++) {
        if (tasks[i].where == WALLS__AT_DONE)
            done++;
        else if (tasks[i].where == WALLS__AT_LANE)
            in_ring++;
        else if (tasks[i].where == WALLS__AT_PENDING)
            queued++;
        if ((tasks[i].flags & WALLS__TASK_DONE) != (tasks[i].where == WALLS__AT_DONE))
            abort();
        if (tasks[i].where == WALLS__AT_DONE && tasks[i].out_len > WALLS_INLINE_MAX)
            abort();
    }
    if (done != pool.completed || in_ring != pool.in_rings || queued != pool.npending ||
        done + in_ring + queued != NTASKS)
        abort();
    if (lane.rq_tail - lane.oldest > WALLS__RING_SLOTS)
        abort();
    walls__pool_unlock(&pool);
    return 0;
}
