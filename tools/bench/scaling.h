/*
 * scaling.h - what rows 6 and 7 share: the same tasks timed on walls
 * thread pools and on plain pthreads of growing counts, the speedup of
 * each count against one thread, and the chart of both curves.
 */
#ifndef WALLS_TOOLS_BENCH_SCALING_H
#define WALLS_TOOLS_BENCH_SCALING_H

#include "row.h"
#include "task.h"

#define MAX_POINTS 8
#define MAX_RUNS 16

/* One thread count of a scaling curve. */
struct point {
    unsigned threads;
    struct summary s;
    double speedup;
    double runs[MAX_RUNS]; /* the samples in the order taken (plain pthreads only) */
    int nruns;
};

/* Both curves of one scaling row. */
struct curves {
    struct point walls[MAX_POINTS], raw[MAX_POINTS];
    int nwalls, nraw;
};

/*
 * Times ntasks copies of in on 1 thread and on cores times each of mults,
 * walls pools and plain pthreads, and records both curves in r. The names
 * of the figures start with prefix. Sets an error verdict and returns it
 * when a run fails.
 */
int run_scaling(const struct bench *b, struct row *r, struct task_in in, int ntasks,
                const unsigned *mults, int nmults, const char *prefix, struct curves *c);

/* Index of the point at =cores (or the last one below it), and the fastest. */
void scale_marks(const struct point *p, int n, int cores, int *at_cores, int *best);

/* Marks the plain pthreads' time at p as one the verdict rests on. */
void scale_basis(struct row *r, const char *prefix, const struct point *p);

/* The lowest and highest ratio, round by round, of a's time to b's. */
void run_ratios(const struct point *a, const struct point *b, double *lo, double *hi);

/* Speedup against thread count, both axes log2: walls pool and plain pthreads. */
void chart_scaling(FILE *f, const char *title, const struct curves *c, int cores);

#endif
