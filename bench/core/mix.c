/*
 * mix.c - uneven mixes of tasks: how long a pool takes for all of them
 * (the makespan), beside one shared queue that every worker takes from.
 *
 * A task busy-waits for its duration on the monotonic clock, so it takes
 * that long whichever worker runs it. Every mix is submitted at once, then
 * waited for; the makespan runs from the first submit to the last result.
 * A pool that deals tasks to workers early and never moves them can leave
 * one worker idle while tasks wait behind a long one on another; a shared
 * queue cannot, so its makespan is the mark.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <walls.h>

#include "core.h"

#define WALLS_CHECK(call) check_walls((call), #call)
#define MS 1000000ull
#define US 1000ull

struct mix {
    const char *name;
    unsigned n;
    uint64_t *ns; /* each task's duration */
};

void spin_for(uint64_t ns)
{
    double until = now_ns() + (double)ns;
    while (now_ns() < until)
        ;
}

static int spin_task(struct walls_call *call)
{
    uint64_t ns;
    if (call->in_len != sizeof ns)
        return 1;
    memcpy(&ns, call->in, sizeof ns);
    spin_for(ns);
    return 0;
}

static void spin_job(void *arg)
{
    spin_for(*(const uint64_t *)arg);
}

/* xorshift64*: the same durations every run. */
static double uniform(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (double)((*state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static struct mix make_long_then_short(void)
{
    struct mix m = {"1 x 100 ms, then 20 x 5 ms", 21, xcalloc(21, sizeof(uint64_t))};
    m.ns[0] = 100 * MS;
    for (unsigned i = 1; i < m.n; i++)
        m.ns[i] = 5 * MS;
    return m;
}

static struct mix make_exponential(void)
{
    struct mix m = {"200 exponential, mean 1 ms", 200, xcalloc(200, sizeof(uint64_t))};
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < m.n; i++) {
        double u = uniform(&state);
        double ms = -log(1.0 - u);
        m.ns[i] = (uint64_t)(ms * (double)MS);
    }
    return m;
}

static struct mix make_few_long(void)
{
    struct mix m = {"4 x 20 ms among 2000 x 20 us", 2004, xcalloc(2004, sizeof(uint64_t))};
    for (unsigned i = 0; i < m.n; i++)
        m.ns[i] = i % 501 == 250 ? 20 * MS : 20 * US;
    return m;
}

static double run_shared(struct handpool *hp, const struct mix *m)
{
    double t0 = now_ns();
    for (unsigned i = 0; i < m->n; i++)
        handpool_submit(hp, spin_job, &m->ns[i]);
    handpool_wait_all(hp);
    return now_ns() - t0;
}

static double run_walls(walls_pool *pool, const struct mix *m, walls_task **tasks)
{
    double t0 = now_ns();
    for (unsigned i = 0; i < m->n; i++)
        WALLS_CHECK(walls_submit(pool, spin_task, &m->ns[i], sizeof m->ns[i], &tasks[i]));
    for (unsigned i = 0; i < m->n; i++) {
        struct walls_result res;
        WALLS_CHECK(walls_wait(tasks[i], -1, &res));
        if (res.status != WALLS_OK) {
            fprintf(stderr, "bench_core: a mix task ended %s\n", walls_status_name(res.status));
            exit(1);
        }
        walls_task_free(tasks[i]);
    }
    return now_ns() - t0;
}

enum { SHARED, THREADS, PROCESSES, HYBRID, NPOOLS };
static const char *const pool_names[NPOOLS] = {"shared queue", "walls threads", "walls processes",
                                               "walls hybrid 1x2"};

static walls_pool *walls_start(int which)
{
    struct walls_pool_opts opts = {0};
    if (which == THREADS) {
        opts.placement = WALLS_THREADS;
        opts.threads = WORKERS;
    } else if (which == PROCESSES) {
        opts.placement = WALLS_PROCESSES;
        opts.processes = WORKERS;
    } else {
        opts.placement = WALLS_HYBRID;
        opts.processes = 1;
        opts.threads = WORKERS;
    }
    walls_pool *pool;
    WALLS_CHECK(walls_pool_create(&pool, &opts));
    return pool;
}

void bench_mixes(const struct counts *c, double worst[3])
{
    worst[0] = worst[1] = worst[2] = 0;
    struct mix mixes[] = {make_long_then_short(), make_exponential(), make_few_long()};
    unsigned nmixes = sizeof mixes / sizeof mixes[0], most = 0;
    for (unsigned k = 0; k < nmixes; k++)
        if (mixes[k].n > most)
            most = mixes[k].n;
    walls_task **tasks = xcalloc(most, sizeof *tasks);
    double *runs = xcalloc(c->mix_runs, sizeof *runs);

    printf("\nuneven mixes, %d workers each: makespan, median of %u runs (min-max)\n", WORKERS,
           c->mix_runs);
    printf("  shared queue: the hand-written pool, whose workers all take from one list\n");
    for (unsigned k = 0; k < nmixes; k++) {
        const struct mix *m = &mixes[k];
        uint64_t total = 0;
        for (unsigned i = 0; i < m->n; i++)
            total += m->ns[i];
        printf("  %s (%.1f ms of work in all)\n", m->name, (double)total / 1e6);
        double shared_med = 0;
        for (int p = SHARED; p < NPOOLS; p++) {
            struct handpool *hp = p == SHARED ? handpool_start(WORKERS) : NULL;
            walls_pool *pool = p == SHARED ? NULL : walls_start(p);
            for (unsigned r = 0; r < c->mix_runs; r++)
                runs[r] = hp ? run_shared(hp, m) : run_walls(pool, m, tasks);
            if (hp)
                handpool_stop(hp);
            else
                WALLS_CHECK(walls_pool_destroy(pool, 0));
            struct summary s = summarize(runs, (int)c->mix_runs);
            if (p == SHARED)
                shared_med = s.med;
            printf("    %-18s %8.1f ms (%.1f-%.1f)", pool_names[p], s.med / 1e6, s.min / 1e6,
                   s.max / 1e6);
            if (p != SHARED) {
                printf("   x%.3f the shared queue's", s.med / shared_med);
                if (s.med / shared_med > worst[p - THREADS])
                    worst[p - THREADS] = s.med / shared_med;
            }
            printf("\n");
            fflush(stdout);
        }
    }
    free(runs);
    free(tasks);
    for (unsigned k = 0; k < nmixes; k++)
        free(mixes[k].ns);
}
