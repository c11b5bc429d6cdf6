/*
 * row_talk.c - row 2, talking. The seed says threads communicate
 * instantly and processes pay IPC overhead. Measured: round trips between
 * two threads (mutex and condition variable; futex) and between two
 * processes (pipe; socketpair; futex on shared memory), and one empty
 * walls task through a thread pool and a process pool of one worker.
 */
#define _GNU_SOURCE
#include "row.h"
#include "svg.h"
#include "task.h"

#include <math.h>
#include <string.h>

static const struct channel {
    enum pingpong_kind kind;
    const char *name, *label;
    const char *short_label; /* in the verdict */
} channels[] = {
    {PINGPONG_MUTEX, "rt_threads_mutex_condvar", "threads, mutex+condvar", "mutex+condvar"},
    {PINGPONG_FUTEX, "rt_threads_futex", "threads, futex", "futex"},
    {PINGPONG_PIPE, "rt_processes_pipe", "processes, pipe", "pipe"},
    {PINGPONG_SOCKET, "rt_processes_socketpair", "processes, socketpair", "socketpair"},
    {PINGPONG_SHARED_FUTEX, "rt_processes_shared_futex", "processes, shared futex",
     "shared futex"},
};
#define NCHANNELS (sizeof channels / sizeof channels[0])

/* Empty tasks through a one-worker pool of placement. */
static void walls_trips(struct row *r, enum walls_placement placement, int n, const char *name,
                        const char *label, struct summary *s, int *rc)
{
    walls_pool *pool;
    *rc = pool_open(&pool, placement, placement == WALLS_PROCESSES ? 1 : 0,
                    placement == WALLS_THREADS ? 1 : 0, 0);
    if (*rc == 0) {
        *rc = round_trips(pool, n, s);
        walls_pool_destroy(pool, 0);
    }
    if (*rc == 0)
        row_time(r, 0, name, label, *s);
    else
        row_failure(r, 0, name, label, "failed: %s", walls_strerror(*rc));
}

/* The fastest channel between threads against the fastest between processes. */
static void verdict(struct row *r, const struct summary *s, const bool *measured)
{
    const struct channel *best_thr = NULL, *best_proc = NULL;
    double thr = INFINITY, proc = INFINITY;
    for (size_t k = 0; k < NCHANNELS; k++) {
        if (!measured[k])
            continue;
        if (!pingpong_between_processes(channels[k].kind) && s[k].med < thr) {
            thr = s[k].med;
            best_thr = &channels[k];
        } else if (pingpong_between_processes(channels[k].kind) && s[k].med < proc) {
            proc = s[k].med;
            best_proc = &channels[k];
        }
    }
    if (!best_thr || !best_proc) {
        row_verdict(r, V_ERROR, "a ping-pong failed");
        return;
    }
    row_basis(r, best_thr->name);
    row_basis(r, best_proc->name);
    char t[48], p[48];
    fmt_time(t, sizeof t, thr);
    fmt_time(p, sizeof p, proc);
    double ratio = proc / thr;
    if (ratio >= 2)
        row_verdict(r, V_HOLDS, "best process trip %s is x%.1f threads' %s", p, ratio, t);
    else
        row_verdict(r, V_FAILS, "%s between processes %s, threads %s (x%.1f)",
                    best_proc->short_label, p, t, ratio);
}

static void run(const struct bench *b, struct row *r)
{
    int iters = reps(b, 1000, 2000), batches = reps(b, 7, 21);
    struct summary s[NCHANNELS];
    bool measured[NCHANNELS];
    for (size_t k = 0; k < NCHANNELS; k++) {
        int rc = pingpong_measure(channels[k].kind, iters, batches, &s[k]);
        measured[k] = rc == 0;
        if (rc == 0)
            row_time(r, 0, channels[k].name, channels[k].label, s[k]);
        else
            row_failure(r, 0, channels[k].name, channels[k].label, "failed: %s", strerror(-rc));
    }
    int n = reps(b, 2000, 10000), rct, rcp;
    struct summary wt, wp;
    walls_trips(r, WALLS_THREADS, n, "rt_walls_threads", "walls empty task, threads", &wt, &rct);
    walls_trips(r, WALLS_PROCESSES, n, "rt_walls_processes", "walls empty task, processes", &wp,
                &rcp);
    if (rct == 0 && rcp == 0)
        row_line(r, 0, "walls: processes x%.2g threads' time", wp.med / wt.med);
    verdict(r, s, measured);
}

/* Every channel's round trip, then walls' own, coloured by who talks. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    struct series shown[NCHANNELS + 2];
    for (size_t k = 0; k < NCHANNELS; k++)
        shown[k] = (struct series){channels[k].name,
                                   pingpong_between_processes(channels[k].kind) ? COLOR_PROCESSES
                                                                                : COLOR_THREADS,
                                   NULL};
    shown[NCHANNELS] = (struct series){"rt_walls_threads", COLOR_THREADS, NULL};
    shown[NCHANNELS + 1] = (struct series){"rt_walls_processes", COLOR_PROCESSES, NULL};
    (void)b;
    svg_figure_dots(f, "One round trip", r, shown, NCHANNELS + 2, AXIS_LOG, NULL, 0);
}

const struct bench_row row_talk = {
    .number = 2,
    .title = "talking",
    .seed_claim = "threads: instant communication; processes: IPC overhead",
    .run = run,
    .chart = chart,
};
