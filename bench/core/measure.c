/*
 * measure.c - how bench_core times a pool: round trips one at a time, and
 * throughput as batches of empty tasks submitted all at once and then
 * waited for.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "bench_core: out of memory\n");
        exit(1);
    }
    return p;
}

struct latency latency_of(double *ns, unsigned n)
{
    struct summary s = summarize(ns, (int)n);
    return (struct latency){true, s.med / 1000.0, percentile(ns, (int)n, 99) / 1000.0};
}

struct latency measure_round_trips(round_trip_fn *once, void *ctx, const struct counts *c)
{
    for (unsigned i = 0; i < c->warmup; i++)
        once(ctx);
    double *ns = xcalloc(c->round_trips, sizeof *ns);
    for (unsigned i = 0; i < c->round_trips; i++) {
        double t0 = now_ns();
        once(ctx);
        ns[i] = now_ns() - t0;
    }
    struct latency l = latency_of(ns, c->round_trips);
    free(ns);
    return l;
}

struct summary measure_throughput(batch_fn *run, void *ctx, const struct counts *c)
{
    run(ctx, c->tasks); /* warm-up: memory the batches reuse */
    double *rate = xcalloc(c->batches, sizeof *rate);
    for (unsigned i = 0; i < c->batches; i++) {
        double t0 = now_ns();
        run(ctx, c->tasks);
        rate[i] = (double)c->tasks / ((now_ns() - t0) / 1e9);
    }
    struct summary s = summarize(rate, (int)c->batches);
    free(rate);
    return s;
}

void print_figures(const struct figures *f, const struct counts *c)
{
    if (f->rt.measured)
        printf("  round trip   median %8.2f us   p99 %8.2f us\n", f->rt.median_us,
               f->rt.p99_us);
    if (f->rt_loop.measured)
        printf("  loop trip    median %8.2f us   p99 %8.2f us   (epoll on walls_pool_fd, "
               "then walls_pool_collect)\n",
               f->rt_loop.median_us, f->rt_loop.p99_us);
    if (f->rt_sleep.measured)
        printf("  sleep trip   median %8.2f us   p99 %8.2f us   (a %d us task; the waiter "
               "sleeps: %.2f us over the task)\n",
               f->rt_sleep.median_us, f->rt_sleep.p99_us, SLEEP_TASK_US,
               f->rt_sleep.median_us - SLEEP_TASK_US);
    printf("  throughput   median %10.0f tasks/s   (%.0f-%.0f; %u batches of %lu)\n",
           f->tput.med, f->tput.min, f->tput.max, c->batches, c->tasks);
    if (f->tput_batch.n)
        printf("  batch call   median %10.0f tasks/s   (%.0f-%.0f; submitted %u at a time)\n",
               f->tput_batch.med, f->tput_batch.min, f->tput_batch.max, BATCH_CALL);
    fflush(stdout);
}
