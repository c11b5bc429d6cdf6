/*
 * placements.c - what every arena test uses (see placements.h).
 */
#define _GNU_SOURCE
#include "placements.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

const char *const placement_names[NPLACEMENTS] = {"threads",          "processes",
                                                  "hybrid",           "processes+limits",
                                                  "processes+seccomp", "hybrid+strict"};

walls_pool *arena_pool(int which, size_t arena, unsigned locks)
{
    struct walls_pool_opts o = {.arena_size = arena, .locks = locks};
    return placement_pool(which, o);
}

walls_pool *placement_pool(int which, struct walls_pool_opts o)
{
    switch (which) {
    case P_THREADS:
        o.placement = WALLS_THREADS;
        o.threads = 2;
        break;
    case P_PROCESSES:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        break;
    case P_HYBRID:
        o.placement = WALLS_HYBRID;
        o.processes = 2;
        o.threads = 2;
        break;
    case P_LIMITS:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        o.sandbox = WALLS_SANDBOX_LIMITS;
        break;
    case P_SECCOMP:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        o.sandbox = WALLS_SANDBOX_SECCOMP;
        break;
    default:
        o.placement = WALLS_HYBRID;
        o.processes = 2;
        o.threads = 2;
        o.sandbox = WALLS_SANDBOX_STRICT;
        o.sandbox_fallback = WALLS_SANDBOX_FALLBACK; /* namespaces where the kernel allows */
        break;
    }
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == 0, "%s: walls_pool_create: %d (%s)", placement_names[which], rc,
                  walls_strerror(rc));
    return pool;
}

void *ptr_of(walls_pool *pool, walls_buf buf)
{
    void *p = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_arena_ptr(pool, buf, &p, &size), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

struct walls_result run(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                        const struct walls_task_opts *opts)
{
    walls_task *t = NULL;
    int rc = walls_submit_ex(pool, fn, in, in_len, opts, &t);
    ck_assert_msg(rc == 0, "submit: %d (%s)", rc, walls_strerror(rc));
    struct walls_result res;
    rc = walls_wait(t, 20000, &res);
    if (rc != 0) {
        /* Rare and not reproduced on demand: say what the pool was doing. */
        struct walls_stats st;
        walls_pool_stats(pool, &st);
        ck_abort_msg("walls_wait: %d (%s); the pool: %llu submitted, %llu completed, %llu in "
                     "flight, %llu queued, %llu restarts, broken %u",
                     rc, walls_strerror(rc), (unsigned long long)st.submitted,
                     (unsigned long long)st.completed, (unsigned long long)st.in_flight,
                     (unsigned long long)st.queued, (unsigned long long)st.restarts, st.broken);
    }
    /* The output is the task's: keep a copy past its free. */
    static unsigned char out[WALLS_INLINE_MAX];
    memcpy(out, res.out, res.out_len);
    res.out = out;
    walls_task_free(t);
    return res;
}

int t_sum(struct walls_call *call)
{
    uint64_t sum = 0;
    for (size_t k = 0; k < call->n_inputs; k++) {
        const uint64_t *w = call->inputs[k].ptr;
        for (size_t i = 0; i < call->inputs[k].len / 8; i++)
            sum += w[i];
    }
    if (call->output) {
        uint64_t *o = call->output;
        for (size_t i = 1; i < call->output_len / 8; i++)
            o[i] = i;
        o[0] = sum;
    }
    memcpy(call->out, &sum, sizeof sum);
    call->out_len = sizeof sum;
    return 0;
}
