/*
 * core.h - the parts of bench_core: how a pool is measured (round trip,
 * throughput, the makespan of uneven mixes) and the pools measured, walls'
 * placements beside the peers.
 *
 * A pool part supplies one round trip (submit one empty task, wait for it,
 * release it), one throughput batch (submit n empty tasks, then wait for
 * all of them) and, for the mixes, one run of tasks of given durations;
 * the timing is done by the measuring functions here.
 */
#ifndef WALLS_BENCH_CORE_H
#define WALLS_BENCH_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_common.h"

#define WORKERS 2 /* workers of every pool compared */
#define BATCH_CALL 1000u /* tasks per walls_submit_batch() in the batch-call figure */

/* The task of the sleep trips: this long on the CPU, well past the 50 us a
 * waiter spins before it sleeps. */
#define SLEEP_TASK_US 200

struct counts {
    const char *name;
    unsigned warmup;      /* untimed round trips first */
    unsigned round_trips; /* timed round trips */
    unsigned long tasks;  /* tasks of one throughput batch */
    unsigned batches;     /* timed throughput batches (after one untimed) */
    unsigned respawns;    /* timed crash + replacement repetitions */
    unsigned mix_runs;    /* timed runs of each mix */
    unsigned fed_ms;      /* how long a worker is fed now and then, per gap */
};

struct latency {
    bool measured;
    double median_us, p99_us;
};

struct figures {
    struct latency rt;
    struct latency rt_loop;    /* the same from an epoll loop on walls_pool_fd (walls only) */
    struct latency rt_sleep;   /* a SLEEP_TASK_US task's, whose waiter sleeps (walls only) */
    struct summary tput;       /* tasks/s over the batches; n 0 when not measured */
    struct summary tput_batch; /* the same through walls_submit_batch (walls only) */
};

typedef void round_trip_fn(void *ctx);
typedef void batch_fn(void *ctx, unsigned long n);

/* The round trips' median and p99 (after the warm-up ones). */
struct latency measure_round_trips(round_trip_fn *once, void *ctx, const struct counts *c);
/* Tasks per second of c->batches batches of c->tasks, after one untimed. */
struct summary measure_throughput(batch_fn *run, void *ctx, const struct counts *c);
/* Prints both, indented under the pool's title. */
void print_figures(const struct figures *f, const struct counts *c);
/* Median and p99 of n samples in ns, which are sorted in place. */
struct latency latency_of(double *ns, unsigned n);
/* calloc() that ends the program when memory runs out. */
void *xcalloc(size_t n, size_t size);

/* ---- the pools (each part prints its own title and figures) ---- */

/* walls with placement (WALLS_THREADS, _PROCESSES, _HYBRID) and sandbox. */
struct figures bench_walls(const char *title, int placement, unsigned sandbox,
                           const struct counts *c);

/* A crashed worker's replacement serving again, walls processes, 1 worker. */
struct respawn {
    struct latency base;  /* empty round trip, same 1-process pool */
    struct latency total; /* crash + following empty round trip */
    double respawn_us;    /* total median - base median */
    int signal;           /* code of the crashed tasks */
    uint64_t restarts;    /* as counted by the pool */
};
struct respawn bench_respawn(const struct counts *c);

/* A 1-worker pool fed one empty task at a time, a gap apart, in threads
 * and processes: what the worker's waiting for work costs in CPU, and the
 * round trips. */
void bench_fed(const struct counts *c);

/* The hand-written pool: a mutex, a FIFO list with one malloc per job, and
 * have-work and all-idle condition variables. */
struct figures bench_handpool(const struct counts *c);
/* GLib's GThreadPool; .tput.n 0 when not built. */
struct figures bench_glib(const struct counts *c);
/* libuv's uv_queue_work; .tput.n 0 when not built. */
struct figures bench_libuv(const struct counts *c);
/* oneTBB's task_group (throughput only); .tput.n 0 when not built. */
struct figures bench_tbb(const struct counts *c);

/* ---- the hand-written pool, also the shared queue the mixes compare with ---- */

struct handpool;
struct handpool *handpool_start(unsigned workers);
void handpool_submit(struct handpool *hp, void (*fn)(void *), void *arg);
/* Waits until no job is queued or running. */
void handpool_wait_all(struct handpool *hp);
void handpool_stop(struct handpool *hp);

/* ---- uneven mixes: makespan beside one shared queue (mix.c) ---- */

/* Busy-waits for ns nanoseconds of the monotonic clock. */
void spin_for(uint64_t ns);
/* Runs every mix on the shared-queue pool and on walls threads, processes
 * and hybrid, and prints the makespans and their ratios; worst[] gets each
 * placement's highest ratio (threads, processes, hybrid). */
void bench_mixes(const struct counts *c, double worst[3]);

#endif
