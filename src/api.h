/*
 * api.h - what the files of the public API share: harvesting on the
 * caller's behalf, and sleeping until something completes.
 */
#ifndef WALLS_API_INTERNAL_H
#define WALLS_API_INTERNAL_H

#include <stdint.h>

#include "pool.h"

/* Lock held: consumes every lane's completions, dispatches, and lets the
 * backend act on what asks for it (a protocol break, a recycling). */
void walls__api_harvest(struct walls__pool *pool);
/* Lock held: tells the backend's timekeeper to run when the engine asked
 * for its clock (pool->want_clock). */
void walls__api_clock(struct walls__pool *pool);
/* Lock NOT held: harvests if no other thread is at it, and wakes waiters. */
void walls__api_progress(struct walls__pool *pool);
/* Lock NOT held: sleeps until the pool's done_seq moves past seq, or
 * timeout_ns passes. With tasks (handles; those of other pools are passed
 * over), woken only when one of them finishes or the pool changes;
 * without (NULL), at every completion. */
void walls__api_sleep(struct walls__pool *pool, uint32_t seq, int64_t timeout_ns,
                      walls_task *const *tasks, size_t n);

#endif
