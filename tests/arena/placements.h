/*
 * placements.h - the six placements the arena tests run in, and what every
 * arena test uses: a pool with an arena in one of them, a buffer's host
 * pointer, a task run to its end, and a task that sums its buffers.
 *
 * Loop tests run once per placement, _i being one of the P_ values:
 * threads, processes, hybrid, processes under the LIMITS and SECCOMP
 * sandboxes, and hybrid under STRICT (with the fallback, so namespaces
 * where the kernel allows them).
 */
#ifndef WALLS_TEST_PLACEMENTS_H
#define WALLS_TEST_PLACEMENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "walls.h"

enum { P_THREADS, P_PROCESSES, P_HYBRID, P_LIMITS, P_SECCOMP, P_STRICT, NPLACEMENTS };
extern const char *const placement_names[NPLACEMENTS];

/* Sandboxed workers hold no writable descriptor of the arena: their
 * outputs are staged and copied back. */
static inline bool staged(int which)
{
    return which >= P_LIMITS;
}

#define ARENA (64u << 20)

/* A pool in placement which (a P_ value) with an arena of that size and
 * that many locks; the test fails if it cannot be created. */
walls_pool *arena_pool(int which, size_t arena, unsigned locks);
/* A pool in placement which with the other options of o. */
walls_pool *placement_pool(int which, struct walls_pool_opts o);
/* The host's pointer to a live buffer; the test fails otherwise. */
void *ptr_of(walls_pool *pool, walls_buf buf);
/* Submits, waits at most 20 s and frees the task; the result's output is
 * a copy that lasts until the next run(). */
struct walls_result run(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                        const struct walls_task_opts *opts);

/* Sums every input as 64-bit words; writes the sum to out, and to the
 * output buffer: the sum in word 0, then word i = i. */
int t_sum(struct walls_call *call);

#endif
