/*
 * format.c - times as people read them: three significant digits in the
 * largest unit that keeps the number at 1 or above ("21.4 us", "1.05 s"),
 * and a summary's minimum and maximum in its median's unit, so that the
 * three numbers compare at a glance.
 */
#include "bench_common.h"

#include <stdio.h>

static void fmt_3(char *buf, size_t len, double v)
{
    if (v < 9.995)
        snprintf(buf, len, "%.2f", v);
    else if (v < 99.95)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.0f", v);
}

static const char *time_unit(double ns, double *div)
{
    if (ns < 1e3) {
        *div = 1;
        return "ns";
    }
    if (ns < 1e6) {
        *div = 1e3;
        return "us";
    }
    if (ns < 1e9) {
        *div = 1e6;
        return "ms";
    }
    *div = 1e9;
    return "s";
}

void fmt_time(char *buf, size_t len, double ns)
{
    double div;
    const char *unit = time_unit(ns, &div);
    char num[32];
    fmt_3(num, sizeof num, ns / div);
    snprintf(buf, len, "%s %s", num, unit);
}

void fmt_time_short(char *buf, size_t len, double ns)
{
    double div;
    const char *unit = time_unit(ns, &div);
    snprintf(buf, len, "%.3g %s", ns / div, unit);
}

void fmt_summary(char *buf, size_t len, struct summary s)
{
    double div;
    const char *unit = time_unit(s.med, &div);
    char med[32], lo[32], hi[32];
    fmt_3(med, sizeof med, s.med / div);
    fmt_3(lo, sizeof lo, s.min / div);
    fmt_3(hi, sizeof hi, s.max / div);
    if (s.n <= 1)
        snprintf(buf, len, "%s %s", med, unit);
    else
        snprintf(buf, len, "%s %s (%s-%s)", med, unit, lo, hi);
}
