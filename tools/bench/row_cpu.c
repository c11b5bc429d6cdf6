/*
 * row_cpu.c - row 6, CPU-bound work. The seed says to use as many threads
 * as cores, because more threads only waste time switching. Eight tasks of
 * about 20 ms of computation each (calibrated against the thread's CPU
 * time) on 1 thread and on 1, 2, 4 and 8 times the usable CPUs.
 */
#include "row.h"
#include "scaling.h"
#include "svg.h"

static struct curves curves;

/*
 * The plain pthreads ran round by round, so each round gives a ratio of
 * two counts' times taken close together; the spread of those ratios is
 * the run-to-run noise. A count is only called faster or slower than
 * =cores when it is, by more than 5%, in every round.
 */
static void verdict(const struct bench *b, struct row *r)
{
    const struct point *p = curves.raw;
    int n = curves.nraw, ci, best;
    scale_marks(p, n, b->cores, &ci, &best);
    const struct point *c = &p[ci];
    double lo, hi;
    scale_basis(r, "cpu", c);
    if (best != ci) {
        scale_basis(r, "cpu", &p[best]);
        run_ratios(c, &p[best], &lo, &hi);
        double gain = c->s.med / p[best].s.med - 1;
        if (lo > 1.05)
            row_verdict(r, V_FAILS, "%u pthread%s beat =cores by %.0f%% (%.0f-%.0f%% in "
                        "each of %d runs)", p[best].threads, p[best].threads == 1 ? "" : "s",
                        gain * 100, (lo - 1) * 100, (hi - 1) * 100, c->nruns);
        else
            row_verdict(r, V_HOLDS, "within noise of =cores: %u pthread%s %.0f%% faster, "
                        "run by run %+.0f..%+.0f%%", p[best].threads,
                        p[best].threads == 1 ? "" : "s", gain * 100, (lo - 1) * 100,
                        (hi - 1) * 100);
        return;
    }
    int worst = -1;
    for (int i = ci + 1; i < n; i++)
        if (worst < 0 || p[i].s.med > p[worst].s.med)
            worst = i;
    if (worst < 0) {
        row_verdict(r, V_HOLDS, "=cores is the fastest");
        return;
    }
    scale_basis(r, "cpu", &p[worst]);
    run_ratios(&p[worst], c, &lo, &hi);
    double cost = p[worst].s.med / c->s.med - 1;
    if (lo > 1.05)
        row_verdict(r, V_HOLDS, "=cores best; %u pthreads %+.0f%%", p[worst].threads,
                    cost * 100);
    else
        row_verdict(r, V_HOLDS, "=cores best within noise: %u pthreads %+.0f%%, run by run "
                    "%+.0f..%+.0f%%", p[worst].threads, cost * 100, (lo - 1) * 100,
                    (hi - 1) * 100);
}

static void run(const struct bench *b, struct row *r)
{
    static const unsigned mults[] = {1, 2, 4, 8};
    row_line(r, 0, "8 tasks of 20 ms computation each");
    if (b->load_start >= b->cores)
        row_line(r, 0, "busy machine (load %.1f on %d CPUs): the other work competes for the "
                       "cores", b->load_start, b->cores);
    if (run_scaling(b, r, task(T_SPIN, (uint64_t)(20 * b->spin_per_ms)), 8, mults, 4, "cpu",
                    &curves) == 0)
        verdict(b, r);
}

static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    (void)r;
    chart_scaling(f, "CPU-bound: 8 tasks of 20 ms, speedup vs 1 thread", &curves, b->cores);
}

const struct bench_row row_cpu = {
    .number = 6,
    .title = "CPU-bound work",
    .seed_claim = "threads = cores; more threads just waste time switching",
    .run = run,
    .chart = chart,
};
