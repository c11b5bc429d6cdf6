/*
 * bench_share.c - sharing big data: 8 tasks that each sum the same 64 MiB
 * of 64-bit words, done four ways on as many workers as there are usable
 * CPUs (at most 8):
 *
 *   threads, pointer    a thread pool; each task gets the buffer's address
 *                       (malloc()ed memory)
 *   threads, arena      a thread pool with an arena: the same task code as
 *                       the process pools, reading the arena's pages
 *   processes, arena    a process pool; the buffer lives in the pool's
 *                       shared arena and each task names it as an input
 *   seccomp, arena      the same under WALLS_SANDBOX_SECCOMP
 *   processes, pipe     forked workers, each task's 64 MiB written to its
 *                       worker through a pipe (the copy the seed warns of)
 *
 * The ways take turns round by round, so that a noisy neighbour hits all
 * of them alike. A round is the time from the first submission to the last
 * result. Each way runs one untimed round first, the "first round" shown
 * apart: it includes the page-table faults of a process's first touch of
 * the arena. Figures only, never pass/fail.
 *
 *   ./build/bench/bench_share [--quick] [--rounds N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <walls.h>

#include "bench_common.h"

#define TASKS 8
#define BYTES (64u << 20)
#define MAX_ROUNDS 101

static _Noreturn void die(const char *what, int rc)
{
    fprintf(stderr, "bench_share: %s: %s\n", what, rc < 0 ? walls_strerror(rc) : strerror(rc));
    exit(1);
}

/* Four sums, so that the adds do not wait on one another. Where the whole
 * groups of four words end is computed before the loops. Written as the
 * test i + 4 <= n, it was known to the compiler only late: at -O3, with the
 * size a constant, GCC first turned the tail loop, which then never runs,
 * into one that wraps around all of memory, and warned that it would. */
__attribute__((noinline)) static uint64_t sum_words(const uint64_t *w, size_t bytes)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t n = bytes / sizeof *w, groups_end = n - n % 4, i = 0;
    for (; i < groups_end; i += 4) {
        a += w[i];
        b += w[i + 1];
        c += w[i + 2];
        d += w[i + 3];
    }
    for (; i < n; i++)
        a += w[i];
    return a + b + c + d;
}

/* One task: the buffer is its first arena input, or the address inline. */
static int sum_task(struct walls_call *call)
{
    const void *p;
    size_t len;
    if (call->n_inputs) {
        p = call->inputs[0].ptr;
        len = call->inputs[0].len;
    } else if (call->in_len == sizeof(uintptr_t)) {
        uintptr_t a;
        memcpy(&a, call->in, sizeof a);
        p = (const void *)a;
        len = BYTES;
    } else {
        return 1;
    }
    uint64_t s = sum_words(p, len);
    memcpy(call->out, &s, sizeof s);
    call->out_len = sizeof s;
    return 0;
}

/* One round on a pool: TASKS sums, all submitted, then all waited for. */
static double pool_round(walls_pool *pool, const struct walls_task_opts *opts, uintptr_t addr,
                         uint64_t expect)
{
    walls_task *t[TASKS];
    double t0 = now_ns();
    for (int i = 0; i < TASKS; i++) {
        int rc = opts ? walls_submit_ex(pool, sum_task, NULL, 0, opts, &t[i])
                      : walls_submit(pool, sum_task, &addr, sizeof addr, &t[i]);
        if (rc)
            die("submit", rc);
    }
    for (int i = 0; i < TASKS; i++) {
        struct walls_result res;
        int rc = walls_wait(t[i], -1, &res);
        if (rc)
            die("wait", rc);
        uint64_t s = 0;
        if (res.status != WALLS_OK || res.out_len != sizeof s)
            die(walls_status_name(res.status), -EPROTO);
        memcpy(&s, res.out, sizeof s);
        if (s != expect)
            die("wrong sum", -EPROTO);
        walls_task_free(t[i]);
    }
    return (now_ns() - t0) / 1e6;
}

/* One round of the pipe copy, in ms. */
static double pipe_round(struct pipe_copy *pipes)
{
    double ns;
    int rc = pipe_copy_round(pipes, TASKS, &ns);
    if (rc)
        die("pipe copy", rc);
    return ns / 1e6;
}

int main(int argc, char **argv)
{
    int rounds = 9;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            rounds = 3;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS)
                die("--rounds must be 1 to 101", EINVAL);
        } else {
            fprintf(stderr, "usage: bench_share [--quick] [--rounds N]\n");
            return 2;
        }
    }
    int rc = walls_init();
    if (rc)
        die("walls_init", rc);
    int cpus = walls_cpu_count();
    unsigned nw = cpus < TASKS ? (unsigned)cpus : TASKS;

    uint64_t *buf = malloc(BYTES);
    if (!buf)
        die("malloc", ENOMEM);
    for (size_t i = 0; i < BYTES / 8; i++)
        buf[i] = i * 2654435761u;
    uint64_t expect = sum_words(buf, BYTES);

    walls_pool *threads, *tarena, *procs, *sandboxed;
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = nw};
    if ((rc = walls_pool_create(&threads, &o)))
        die("thread pool", rc);
    o.arena_size = BYTES;
    if ((rc = walls_pool_create(&tarena, &o)))
        die("thread pool with an arena", rc);
    o = (struct walls_pool_opts){.placement = WALLS_PROCESSES, .processes = nw,
                                 .arena_size = BYTES};
    if ((rc = walls_pool_create(&procs, &o)))
        die("process pool", rc);
    o.sandbox = WALLS_SANDBOX_SECCOMP;
    if ((rc = walls_pool_create(&sandboxed, &o)))
        die("sandboxed pool", rc);
    walls_buf ta, a, s;
    void *pta, *pa, *ps;
    if ((rc = walls_arena_alloc(tarena, BYTES, &ta)) ||
        (rc = walls_arena_ptr(tarena, ta, &pta, NULL)) ||
        (rc = walls_arena_alloc(procs, BYTES, &a)) || (rc = walls_arena_ptr(procs, a, &pa, NULL)) ||
        (rc = walls_arena_alloc(sandboxed, BYTES, &s)) ||
        (rc = walls_arena_ptr(sandboxed, s, &ps, NULL)))
        die("arena", rc);
    memcpy(pta, buf, BYTES);
    memcpy(pa, buf, BYTES);
    memcpy(ps, buf, BYTES);
    struct walls_task_opts topts = {.inputs = &ta, .n_inputs = 1};
    struct walls_task_opts aopts = {.inputs = &a, .n_inputs = 1};
    struct walls_task_opts sopts = {.inputs = &s, .n_inputs = 1};
    struct pipe_copy pipes = {.buf = buf, .bytes = BYTES, .expect = expect, .sum = sum_words,
                              .nworkers = (int)nw};
    if ((rc = pipe_copy_start(&pipes)))
        die("pipe workers", rc);

    enum { WAYS = 5 };
    double first[WAYS], t[WAYS][MAX_ROUNDS];
    for (int r = -1; r < rounds; r++) {
        double *at[WAYS];
        for (int m = 0; m < WAYS; m++)
            at[m] = r < 0 ? &first[m] : &t[m][r];
        *at[0] = pool_round(threads, NULL, (uintptr_t)buf, expect);
        *at[1] = pool_round(tarena, &topts, 0, expect);
        *at[2] = pool_round(procs, &aopts, 0, expect);
        *at[3] = pool_round(sandboxed, &sopts, 0, expect);
        *at[4] = pipe_round(&pipes);
    }
    pipe_copy_stop(&pipes);

    static const char *const names[] = {"threads, pointer", "threads, arena",
                                        "processes, arena", "seccomp sandbox, arena",
                                        "processes, pipe copy"};
    printf("%d tasks, each summing the same %u MiB, on %u workers; %d rounds, medians\n\n",
           TASKS, BYTES >> 20, nw, rounds);
    printf("%-24s %12s %12s %12s %14s\n", "", "round (ms)", "min (ms)", "x threads",
           "first round");
    struct summary way[WAYS];
    for (int m = 0; m < WAYS; m++)
        way[m] = summarize(t[m], rounds);
    for (int m = 0; m < WAYS; m++)
        printf("%-24s %12.1f %12.1f %12.2f %11.1f ms\n", names[m], way[m].med, way[m].min,
               way[m].med / way[0].med, first[m]);
    printf("\nsum rate, threads: %.1f GB/s; pipe copy rate: %.2f GB/s\n",
           (double)TASKS * BYTES / (way[0].med / 1e3) / 1e9,
           (double)TASKS * BYTES / (way[4].med / 1e3) / 1e9);

    walls_pool_destroy(threads, 0);
    walls_pool_destroy(tarena, 0);
    walls_pool_destroy(procs, 0);
    walls_pool_destroy(sandboxed, 0);
    free(buf);
    walls_fini();
    return 0;
}
