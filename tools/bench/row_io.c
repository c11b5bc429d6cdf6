/*
 * row_io.c - row 7, IO-bound work. The seed says more threads than cores
 * is fine for IO-bound work. 64 tasks that each sleep 10 ms, on 1 thread
 * and on 1, 2, 4, 8 and 16 times the usable CPUs.
 */
#include "row.h"
#include "scaling.h"
#include "svg.h"

static struct curves curves;

static void verdict(const struct bench *b, struct row *r)
{
    const struct point *p = curves.raw;
    int ci, best;
    scale_marks(p, curves.nraw, b->cores, &ci, &best);
    scale_basis(r, "io", &p[ci]);
    scale_basis(r, "io", &p[best]);
    double gain = p[best].speedup / p[ci].speedup;
    if (p[best].threads > (unsigned)b->cores && gain >= 1.5)
        row_verdict(r, V_HOLDS, "%u pthreads x%.1f faster than =cores", p[best].threads, gain);
    else
        row_verdict(r, V_FAILS, "more pthreads gained only x%.2f", gain);
}

static void run(const struct bench *b, struct row *r)
{
    static const unsigned mults[] = {1, 2, 4, 8, 16};
    row_line(r, 0, "64 tasks sleeping 10 ms each");
    if (run_scaling(b, r, task(T_SLEEP, 10000000u), 64, mults, 5, "io", &curves) == 0)
        verdict(b, r);
}

static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    (void)r;
    chart_scaling(f, "IO-bound: 64 tasks sleeping 10 ms, speedup vs 1 thread", &curves, b->cores);
}

const struct bench_row row_io = {
    .number = 7,
    .title = "IO-bound work",
    .seed_claim = "IO-bound: more threads than cores is fine",
    .run = run,
    .chart = chart,
};
