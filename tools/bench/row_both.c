/*
 * row_both.c - row 8, both together. The seed says real systems use both:
 * processes for isolation, threads within. 1000 short tasks (50 us of
 * computation or a 0.1 ms sleep, alternating) on threads and on processes,
 * one worker per CPU; then with 5 of them crashing on processes and on
 * hybrid placement (processes that each run threads). Threads cannot run
 * the crashing load at all: a crash would kill the program.
 */
#include "row.h"
#include "svg.h"
#include "task.h"

#define MIXED_TASKS 1000
#define MAX_RUNS 16

/* How the crashing load ended on processes and on hybrid, for the chart. */
static struct {
    bool ran;
    unsigned ok, crashed, lost;
} ended[2];

static void mixed_load(const struct bench *b, struct task_in *in, bool crashes)
{
    for (int i = 0; i < MIXED_TASKS; i++)
        in[i] = i % 2 ? task(T_SLEEP, 100000u) : task(T_SPIN, (uint64_t)(b->spin_per_ms / 20));
    if (crashes)
        for (int i = 100; i < MIXED_TASKS; i += 200)
            in[i] = task(T_CRASH, 0);
}

static int run_mixed(const struct bench *b, enum walls_placement placement, bool crashes,
                     struct summary *s, struct batch *last)
{
    static struct task_in in[MIXED_TASKS];
    mixed_load(b, in, crashes);
    walls_pool *pool;
    int rc = pool_open(&pool, placement, placement == WALLS_THREADS ? 0 : (unsigned)b->cores,
                       placement == WALLS_THREADS ? (unsigned)b->cores : 0, 0);
    if (rc != 0)
        return rc;
    int n = reps(b, 3, 9);
    double v[MAX_RUNS];
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = run_batch(pool, in, MIXED_TASKS, NULL, NULL, last);
        v[i] = last->ns;
    }
    walls_pool_destroy(pool, 0);
    if (rc == 0)
        *s = summarize(v, n);
    return rc;
}

/* One load on one placement as a figure of the row, or why it failed. */
static int mixed_figure(const struct bench *b, struct row *r, enum walls_placement placement,
                        bool crashes, const char *name, const char *label, struct summary *s,
                        struct batch *last)
{
    int rc = run_mixed(b, placement, crashes, s, last);
    if (rc == 0)
        row_time(r, 0, name, label, *s);
    else
        row_failure(r, 0, name, label, "failed: %s", walls_strerror(rc));
    return rc;
}

static void run(const struct bench *b, struct row *r)
{
    row_line(r, 0, "1000 tasks: 50 us compute / 0.1 ms sleep");
    struct summary st, sp, spc, sh;
    struct batch bt;
    mixed_figure(b, r, WALLS_THREADS, false, "threads_no_crashes", "threads, no crashes", &st,
                 &bt);
    mixed_figure(b, r, WALLS_PROCESSES, false, "processes_no_crashes", "processes, no crashes",
                 &sp, &bt);
    int prc = mixed_figure(b, r, WALLS_PROCESSES, true, "processes_5_crashes",
                           "processes, 5 crash", &spc, &bt);
    if (prc == 0) {
        ended[0].ran = true;
        ended[0].ok = bt.by_status[WALLS_OK];
        ended[0].crashed = bt.by_status[WALLS_CRASHED];
        ended[0].lost = bt.by_status[WALLS_LOST];
        row_line(r, 1, "%u ok, %u crashed", bt.by_status[WALLS_OK], bt.by_status[WALLS_CRASHED]);
        row_value(r, "processes_5_crashes_ok", "ok", "tasks", one_value(bt.by_status[WALLS_OK]));
    }
    row_line(r, 0, "threads can't run the 5 crashers");
    int rc = mixed_figure(b, r, WALLS_HYBRID, true, "hybrid_5_crashes", "hybrid, 5 crash", &sh,
                          &bt);
    if (rc != 0 || prc != 0) {
        row_verdict(r, V_ERROR, "%s run: %s", rc ? "hybrid" : "process", errno_name(rc ? rc : prc));
        return;
    }
    ended[1].ran = true;
    ended[1].ok = bt.by_status[WALLS_OK];
    ended[1].crashed = bt.by_status[WALLS_CRASHED];
    ended[1].lost = bt.by_status[WALLS_LOST];
    bool contained = bt.by_status[WALLS_CRASHED] == 5 &&
                     bt.by_status[WALLS_OK] + bt.by_status[WALLS_LOST] == MIXED_TASKS - 5;
    if (contained) {
        row_basis(r, "processes_5_crashes");
        row_basis(r, "hybrid_5_crashes");
    }
    char th[48], tp[48];
    fmt_time(th, sizeof th, sh.med);
    fmt_time(tp, sizeof tp, spc.med);
    /* The hybrid costs no more when its median lies within 5% of the
     * processes' median or below their 90th percentile: a wider gap is
     * more than this load's run-to-run noise. */
    double bound = spc.med * 1.05 > spc.p90 ? spc.med * 1.05 : spc.p90;
    if (contained && sh.med <= bound)
        row_verdict(r, V_HOLDS, "hybrid contained the crashes in %s (processes %s)", th, tp);
    else if (contained)
        row_verdict(r, V_FAILS, "hybrid contained them but took %s, processes %s", th, tp);
    else
        row_verdict(r, V_FAILS, "hybrid did not contain the crashes (%u ok, %u crashed)",
                    bt.by_status[WALLS_OK], bt.by_status[WALLS_CRASHED]);
}

/* The load's time per placement, from zero, and how the crashing load ended. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    char notes[2][32] = {"", ""};
    for (int i = 0; i < 2; i++)
        if (ended[i].ran)
            snprintf(notes[i], sizeof notes[i], "%u ok, %u crashed, %u lost", ended[i].ok,
                     ended[i].crashed, ended[i].lost);
    const struct series shown[] = {
        {"threads_no_crashes", COLOR_THREADS, NULL},
        {"processes_no_crashes", COLOR_PROCESSES, NULL},
        {"processes_5_crashes", COLOR_PROCESSES, notes[0]},
        {"hybrid_5_crashes", COLOR_HYBRID, notes[1]},
    };
    (void)b;
    svg_figure_dots(f, "1000 short tasks; threads cannot run the 5 crashing ones", r, shown, 4,
                    AXIS_LINEAR, NULL, 0);
}

const struct bench_row row_both = {
    .number = 8,
    .title = "both together",
    .seed_claim = "real systems use both: processes for isolation, threads within",
    .run = run,
    .chart = chart,
};
