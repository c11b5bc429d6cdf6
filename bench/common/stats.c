/*
 * stats.c - the clock every benchmark reads and the reduction of samples
 * to figures: median, minimum and maximum, percentiles, and the rule that
 * calls a spread of samples too wide for its median to be trusted.
 *
 * Figures keep their minimum and maximum beside the median because this
 * machine shares its CPUs: one figure's median can move tenfold between
 * two runs, and the spread is what warns of it.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <stdlib.h>
#include <time.h>

double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct summary summarize(double *v, int n)
{
    struct summary s = {0, 0, 0, n, 0, 0};
    if (n <= 0)
        return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.p10 = percentile(v, n, 10);
    s.p90 = percentile(v, n, 90);
    return s;
}

struct summary one_value(double v)
{
    struct summary s = {v, v, v, 1, v, v};
    return s;
}

double percentile(const double *sorted, int n, double p)
{
    if (n <= 0)
        return 0;
    long rank = (long)(p / 100.0 * n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

bool summary_noisy(struct summary s)
{
    return s.n >= 2 && s.p90 > NOISY_RATIO * s.p10;
}
