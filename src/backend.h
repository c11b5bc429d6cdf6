/*
 * backend.h - what a placement does that the engine cannot: start, stop
 * and kill the workers of a pool's lanes.
 *
 * Each placement fills one struct of operations (as nginx's event modules
 * fill ngx_event_actions_t): threads of the host (thread_backend.c), or
 * worker processes, one lane each or several (proc_backend.c). The public
 * API calls these operations and the engine; a backend calls the engine
 * and nothing above it. The note on each operation says whether the pool's
 * lock is held when it is called.
 */
#ifndef WALLS_BACKEND_H
#define WALLS_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

struct walls__backend {
    /* Starts the pool's workers and its backend state; every worker serves
     * when it returns 0. Lock NOT held. Returns 0 or -errno, and leaves
     * nothing started on failure. */
    int (*start)(struct walls__pool *pool);
    /* Stops every worker and waits for each to be gone: cancel false lets
     * each finish what its ring holds, cancel true kills what can be
     * killed. Frees the backend state. Lock NOT held. */
    void (*stop)(struct walls__pool *pool, bool cancel);
    /* Where a worker finds fn: module and offset. Lock held. Returns 0,
     * -ENOENT (in no module), -ENAMETOOLONG or -ENOMEM. */
    int (*locate)(struct walls__pool *pool, walls_fn *fn, uint16_t *module, uint64_t *offset);
    /* The task in request seq of lane has started: stop it, so that it ends
     * with status (WALLS_CANCELLED). Returns 0 (it will end so), or -EBUSY
     * (it cannot be stopped: a thread). Lock held. */
    int (*stop_running)(struct walls__pool *pool, struct walls__lane *lane, uint32_t seq,
                        enum walls_status status);
    /* After the engine consumed completions: act on the lanes that ask for
     * attention (walls__engine_take_attention). NULL when the backend never
     * asks. Lock held. */
    void (*attend)(struct walls__pool *pool);
    /* Brings a broken pool's workers back. Returns 0 or -ECHILD (it cannot:
     * the fork server is gone). Lock held. */
    int (*reset)(struct walls__pool *pool);
    /* Whether reset is called for a pool that is not broken too: part of
     * it may be (a pool across ranks, one of whose ranks broke). */
    bool reset_unbroken;
    /* A task with a time limit was submitted: the timekeeper must look at
     * it. Lock held. */
    void (*timed)(struct walls__pool *pool);
    /* Whether the calling thread is one of the pool's workers (destroying
     * the pool from there would wait for itself). Lock held. */
    bool (*is_worker)(struct walls__pool *pool);
    /* Whether a host thread about to sleep on completions must arm the
     * doorbells first: process lanes cannot see the host's sleepers. */
    bool arm_for_sleepers;
    /* Whether its workers ring the pool's eventfd themselves once a loop
     * watches it (WALLS__ARM_EVENT); otherwise they report every
     * completion as for a sleeper (WALLS__ARM_EVERY). */
    bool rings_bell;
};

extern const struct walls__backend walls__thread_backend;
extern const struct walls__backend walls__proc_backend;

#endif
