/*
 * row_share.c - row 5, sharing big data. The seed says copying big data
 * between processes is absurdly slow. Eight tasks each sum the same 64 MiB,
 * on one worker per CPU (at most 8), three ways: a thread pool given a
 * pointer; a process pool whose shared arena holds the buffer (no copy);
 * and forked workers that get the bytes through a pipe for every task (the
 * copy the seed means). The seed's claim is about copying; walls' answer
 * is that processes need not copy.
 */
#define _GNU_SOURCE
#include "row.h"
#include "svg.h"
#include "task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_TASKS 8
#define SHARE_BYTES (64u * MIB)
#define MAX_ROUNDS 16

/* One run: nw forked workers get SHARE_TASKS copies of buf through pipes. */
static int share_by_pipe(const uint64_t *buf, uint64_t expect, int nw, double *ns)
{
    struct pipe_copy copy = {.buf = buf, .bytes = SHARE_BYTES, .expect = expect,
                             .sum = sum_words, .nworkers = nw};
    int rc = pipe_copy_start(&copy);
    if (rc != 0)
        return rc;
    rc = pipe_copy_round(&copy, SHARE_TASKS, ns);
    pipe_copy_stop(&copy);
    return rc;
}

/* One way's times as a figure of the row, or why there are none. */
static struct summary share_figure(struct row *r, const char *name, const char *what, int nw,
                                   int rc, double *v, int n)
{
    struct summary sum = {0};
    char label[48];
    snprintf(label, sizeof label, "%s (%d)", what, nw);
    if (rc == 0) {
        sum = summarize(v, n);
        row_time(r, 0, name, label, sum);
    } else {
        row_failure(r, 0, name, label, "failed: %s", walls_strerror(rc));
    }
    return sum;
}

/* The same batch again on pool; a wrong sum fails it. */
static int sum_batch(walls_pool *pool, const struct task_in *in, const uint64_t *expect,
                     const struct walls_task_opts *opts, double *ns)
{
    struct batch bt;
    int rc = run_batch(pool, in, SHARE_TASKS, expect, opts, &bt);
    if (rc == 0 && (bt.by_status[WALLS_OK] != SHARE_TASKS || bt.bad_outputs))
        rc = -EPROTO;
    *ns = bt.ns;
    return rc;
}

/*
 * Threads by pointer and processes through the shared arena take turns,
 * round by round, after one untimed round each (a process's first touch of
 * the arena maps its pages).
 */
static void by_pointer_and_arena(struct row *r, const uint64_t *buf, uint64_t expect, int nw,
                                 int n, struct summary *ts, struct summary *as, int *rc,
                                 int *arc)
{
    double tv[MAX_ROUNDS], av[MAX_ROUNDS], untimed;
    walls_pool *pool = NULL, *apool = NULL;
    int open_rc = pool_open(&pool, WALLS_THREADS, 0, (unsigned)nw, 0);
    *rc = open_rc;
    struct walls_pool_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.placement = WALLS_PROCESSES;
    ao.processes = (unsigned)nw;
    ao.arena_size = SHARE_BYTES;
    walls_buf abuf = 0;
    void *aptr = NULL;
    int aopen = walls_pool_create(&apool, &ao);
    *arc = aopen;
    if (*arc == 0 && (*arc = walls_arena_alloc(apool, SHARE_BYTES, &abuf)) == 0 &&
        (*arc = walls_arena_ptr(apool, abuf, &aptr, NULL)) == 0)
        memcpy(aptr, buf, SHARE_BYTES);
    struct walls_task_opts aopts;
    memset(&aopts, 0, sizeof aopts);
    aopts.inputs = &abuf;
    aopts.n_inputs = 1;
    struct task_in in[SHARE_TASKS], ain[SHARE_TASKS];
    for (int i = 0; i < SHARE_TASKS; i++) {
        in[i] = task(T_SUM, SHARE_BYTES);
        in[i].addr = (uint64_t)(uintptr_t)buf;
        ain[i] = task(T_SUM, SHARE_BYTES);
    }
    for (int i = -1; (*rc == 0 || *arc == 0) && i < n; i++) {
        if (*rc == 0)
            *rc = sum_batch(pool, in, &expect, NULL, i >= 0 ? &tv[i] : &untimed);
        if (*arc == 0)
            *arc = sum_batch(apool, ain, &expect, &aopts, i >= 0 ? &av[i] : &untimed);
    }
    if (open_rc == 0)
        walls_pool_destroy(pool, 0);
    if (aopen == 0)
        walls_pool_destroy(apool, 0);
    *ts = share_figure(r, "threads_by_pointer", "threads by pointer", nw, *rc, tv, n);
    *as = share_figure(r, "walls_shared_arena", "processes, shared arena", nw, *arc, av, n);
}

static void run(const struct bench *b, struct row *r)
{
    uint64_t *buf = malloc(SHARE_BYTES);
    if (!buf) {
        row_verdict(r, V_ERROR, "no memory for 64 MiB");
        return;
    }
    for (size_t i = 0; i < SHARE_BYTES / sizeof *buf; i++)
        buf[i] = i * 2654435761u;
    uint64_t expect = sum_words(buf, SHARE_BYTES);
    int n = reps(b, 9, 15);
    int nw = b->cores < SHARE_TASKS ? b->cores : SHARE_TASKS;
    struct summary ts, as, ps = {0};
    int rc, arc;
    by_pointer_and_arena(r, buf, expect, nw, n, &ts, &as, &rc, &arc);

    /* The pipe copy is the slow side by far: a few rounds tell it. */
    int np = n < 5 ? n : 5;
    int prc = 0;
    double pv[MAX_ROUNDS];
    for (int i = 0; prc == 0 && i < np; i++)
        prc = share_by_pipe(buf, expect, nw, &pv[i]);
    char label[48];
    snprintf(label, sizeof label, "processes, pipe copy (%d)", nw);
    if (prc == 0) {
        ps = summarize(pv, np);
        row_time(r, 0, "processes_pipe_copy", label, ps);
        double bps = (double)SHARE_TASKS * SHARE_BYTES / (ps.med / 1e9);
        row_value(r, "pipe_copy_rate", "pipe copy rate", "B/s", one_value(bps));
        row_line(r, 1, "= %.2f GB/s through pipes", bps / 1e9);
    } else {
        row_failure(r, 0, "processes_pipe_copy", label, "failed: %s", strerror(-prc));
    }
    free(buf);

    if (rc != 0 || prc != 0 || arc != 0) {
        row_verdict(r, V_ERROR, "a measurement failed");
        return;
    }
    row_basis(r, "threads_by_pointer");
    row_basis(r, "processes_pipe_copy");
    double ratio = ps.med / ts.med, aratio = as.med / ts.med;
    row_value(r, "copy_vs_pointer", "copy / pointer time", "x", one_value(ratio));
    row_value(r, "arena_vs_pointer", "arena / pointer time", "x", one_value(aratio));
    row_line(r, 1, "processes through the arena: x%.2f the threads' time", aratio);
    if (ratio >= 10)
        row_verdict(r, V_HOLDS, "copying x%.1f slower than a pointer; the arena x%.2f", ratio,
                    aratio);
    else
        row_verdict(r, V_FAILS, "copying only x%.1f slower; the arena x%.2f", ratio, aratio);
}

/* "x5.60 threads' time" from the ratio figure called name, or "". */
static void ratio_note(const struct row *r, const char *name, char *buf, size_t len)
{
    const struct figure *f = row_find(r, name);
    if (f && f->numeric)
        snprintf(buf, len, "x%.2f threads' time", f->s.med);
    else if (len > 0)
        buf[0] = '\0';
}

/* The three ways' round times from zero, each against the threads' time. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    char arena[32], copy[32];
    ratio_note(r, "arena_vs_pointer", arena, sizeof arena);
    ratio_note(r, "copy_vs_pointer", copy, sizeof copy);
    const struct series ways[] = {
        {"threads_by_pointer", COLOR_THREADS, NULL},
        {"walls_shared_arena", COLOR_PROCESSES, arena},
        {"processes_pipe_copy", COLOR_PROCESSES, copy},
    };
    (void)b;
    svg_figure_dots(f, "8 tasks each summing the same 64 MiB: time of all 8", r, ways, 3,
                    AXIS_LINEAR, NULL, 0);
}

const struct bench_row row_share = {
    .number = 5,
    .title = "sharing big data",
    .seed_claim = "copying big data between processes: absurdly slow",
    .run = run,
    .chart = chart,
};
