/*
 * walls_part.c - bench_core's walls figures: round trip and throughput of
 * a placement, and how long a crashed worker takes to be replaced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <walls.h>

#include "core.h"

/* Every walls call that can fail returns 0 or a negative errno. */
#define WALLS_CHECK(call) check_walls((call), #call)

static void expect_status(const struct walls_result *res, enum walls_status want, const char *what)
{
    if (res->status != want) {
        fprintf(stderr, "bench_core: %s ended %s (code %d), expected %s\n", what,
                walls_status_name(res->status), res->code, walls_status_name(want));
        exit(1);
    }
}

/* Submit fn, wait for it, free it. The result's out is dropped with the task. */
static struct walls_result run_one(walls_pool *pool, walls_fn *fn)
{
    walls_task *task;
    struct walls_result res;
    WALLS_CHECK(walls_submit(pool, fn, NULL, 0, &task));
    WALLS_CHECK(walls_wait(task, -1, &res));
    walls_task_free(task);
    res.out = NULL;
    res.out_len = 0;
    return res;
}

static void round_trip(void *ctx)
{
    struct walls_result res = run_one(ctx, empty_task);
    expect_status(&res, WALLS_OK, "an empty task");
}

static int busy_task(struct walls_call *call)
{
    (void)call;
    spin_for(SLEEP_TASK_US * 1000ull);
    return 0;
}

/* The round trip of a task long enough that the waiter sleeps: the cost
 * of waking it, which differs between placements (a process worker wakes
 * it across processes). */
static void sleep_trip(void *ctx)
{
    struct walls_result res = run_one(ctx, busy_task);
    expect_status(&res, WALLS_OK, "a busy task");
}

/* The round trip of a program whose event loop sleeps in epoll on the
 * pool's descriptor and takes its results with walls_pool_collect(). */
struct loop {
    walls_pool *pool;
    int epfd;
};

static void loop_trip(void *ctx)
{
    struct loop *l = ctx;
    walls_task *task, *got[4];
    WALLS_CHECK(walls_submit(l->pool, empty_task, NULL, 0, &task));
    for (size_t n = 0; n == 0;) {
        struct epoll_event ev;
        if (epoll_wait(l->epfd, &ev, 1, -1) < 0 && errno != EINTR) {
            perror("bench_core: epoll_wait");
            exit(1);
        }
        WALLS_CHECK(walls_pool_collect(l->pool, got, 4, &n));
    }
    walls_task_free(task);
}

static struct latency measure_loop_trips(walls_pool *pool, const struct counts *c)
{
    struct loop l = {pool, epoll_create1(EPOLL_CLOEXEC)};
    int fd = walls_pool_fd(pool);
    struct epoll_event ev = {.events = EPOLLIN};
    if (l.epfd < 0 || fd < 0 || epoll_ctl(l.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("bench_core: epoll");
        exit(1);
    }
    struct latency lat = measure_round_trips(loop_trip, &l, c);
    close(l.epfd);
    return lat;
}

static void batch(void *ctx, unsigned long n)
{
    walls_pool *pool = ctx;
    walls_task **tasks = xcalloc(n, sizeof *tasks);
    for (unsigned long i = 0; i < n; i++)
        WALLS_CHECK(walls_submit(pool, empty_task, NULL, 0, &tasks[i]));
    for (unsigned long i = 0; i < n; i++) {
        struct walls_result res;
        WALLS_CHECK(walls_wait(tasks[i], -1, &res));
        expect_status(&res, WALLS_OK, "an empty task");
        walls_task_free(tasks[i]);
    }
    free(tasks);
}

/* The same through walls_submit_batch(), BATCH_CALL tasks a call, and
 * walls_wait_all() over all of them. */
static void batch_call(void *ctx, unsigned long n)
{
    walls_pool *pool = ctx;
    walls_task **tasks = xcalloc(n, sizeof *tasks);
    struct walls_input *in = xcalloc(BATCH_CALL, sizeof *in);
    for (unsigned long i = 0; i < n; i += BATCH_CALL) {
        size_t k = n - i < BATCH_CALL ? n - i : BATCH_CALL;
        WALLS_CHECK(walls_submit_batch(pool, empty_task, in, k, &tasks[i]));
    }
    WALLS_CHECK(walls_wait_all(tasks, n, -1));
    for (unsigned long i = 0; i < n; i++) {
        struct walls_result res;
        WALLS_CHECK(walls_wait(tasks[i], 0, &res));
        expect_status(&res, WALLS_OK, "an empty task");
        walls_task_free(tasks[i]);
    }
    free(in);
    free(tasks);
}

static walls_pool *pool_start(enum walls_placement placement, unsigned sandbox, unsigned workers)
{
    struct walls_pool_opts opts = {.placement = placement, .sandbox = sandbox};
    if (placement == WALLS_PROCESSES)
        opts.processes = workers;
    else if (placement == WALLS_HYBRID)
        opts.processes = 1, opts.threads = workers;
    else
        opts.threads = workers;
    walls_pool *pool;
    WALLS_CHECK(walls_pool_create(&pool, &opts));
    char line[640];
    if (walls_pool_explain(pool, line, sizeof line) >= 0)
        printf("  pool         %s\n", line);
    return pool;
}

struct figures bench_walls(const char *title, int placement, unsigned sandbox,
                           const struct counts *c)
{
    printf("\n%s, %d workers\n", title, WORKERS);
    walls_pool *pool = pool_start((enum walls_placement)placement, sandbox, WORKERS);
    struct figures f = {0};
    f.rt = measure_round_trips(round_trip, pool, c);
    /* A tenth as many: each takes SLEEP_TASK_US. */
    struct counts few = *c;
    few.warmup /= 10;
    few.round_trips /= 10;
    f.rt_sleep = measure_round_trips(sleep_trip, pool, &few);
    f.tput = measure_throughput(batch, pool, c);
    f.tput_batch = measure_throughput(batch_call, pool, c);
    /* Last: from here on the pool keeps its completions for the loop. */
    f.rt_loop = measure_loop_trips(pool, c);
    WALLS_CHECK(walls_pool_destroy(pool, 0));
    print_figures(&f, c);
    return f;
}

/* One crash, then one empty round trip on the replacement; returns the
 * time of both, and puts the crash's own part (until its result) in
 * *crash_part. */
static double crash_and_recover(walls_pool *pool, int *sig, double *crash_part)
{
    double t0 = now_ns();
    struct walls_result res = run_one(pool, crash_task);
    expect_status(&res, WALLS_CRASHED, "the crashing task");
    double t1 = now_ns();
    round_trip(pool);
    double elapsed = now_ns() - t0;
    *sig = res.code;
    *crash_part = t1 - t0;
    return elapsed;
}

struct respawn bench_respawn(const struct counts *c)
{
    struct respawn r = {0};
    printf("\nworker crash to replacement serving again: walls processes, 1 worker\n");
    /* c->respawns + 1 restarts stay under the default limit (100 within 1 s). */
    walls_pool *pool = pool_start(WALLS_PROCESSES, WALLS_SANDBOX_NONE, 1);
    r.base = measure_round_trips(round_trip, pool, c);

    double part;
    crash_and_recover(pool, &r.signal, &part); /* warm-up: not timed */
    double *ns = xcalloc(c->respawns, sizeof *ns);
    double *crash = xcalloc(c->respawns, sizeof *crash);
    double *next = xcalloc(c->respawns, sizeof *next);
    for (unsigned i = 0; i < c->respawns; i++) {
        ns[i] = crash_and_recover(pool, &r.signal, &crash[i]);
        next[i] = ns[i] - crash[i];
    }
    r.total = latency_of(ns, c->respawns);
    struct latency crash_lat = latency_of(crash, c->respawns);
    struct latency next_lat = latency_of(next, c->respawns);
    free(ns);
    free(crash);
    free(next);
    r.respawn_us = r.total.median_us - r.base.median_us;

    struct walls_stats stats;
    WALLS_CHECK(walls_pool_stats(pool, &stats));
    r.restarts = stats.restarts;
    WALLS_CHECK(walls_pool_destroy(pool, 0));

    printf("  empty round trip on this pool          median %8.2f us\n", r.base.median_us);
    printf("  crash + next empty round trip          median %8.2f us   p99 %8.2f us\n",
           r.total.median_us, r.total.p99_us);
    printf("    the crash, until its result          median %8.2f us\n", crash_lat.median_us);
    printf("    then the next empty task             median %8.2f us\n", next_lat.median_us);
    printf("  respawn (difference of the medians)           %8.2f us   over %u crashes, signal %d\n",
           r.respawn_us, c->respawns, r.signal);
    printf("  worker restarts counted by the pool           %8llu      (expected %u)\n",
           (unsigned long long)r.restarts, c->respawns + 1);
    fflush(stdout);
    return r;
}

/* The calling worker's CPU time so far: its thread's in a thread pool, its
 * process's (one thread) in a process pool. */
static int cpu_clock_task(struct walls_call *call)
{
    struct timespec ts;
    bool thread = call->in_len == 1 && *(const char *)call->in == 't';
    if (clock_gettime(thread ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID, &ts) != 0 ||
        call->out_cap < sizeof(double))
        return errno ? errno : EINVAL;
    double ns = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
    memcpy(call->out, &ns, sizeof ns);
    call->out_len = sizeof ns;
    return 0;
}

static double worker_cpu_ns(walls_pool *pool, bool thread)
{
    walls_task *task;
    struct walls_result res;
    char which = thread ? 't' : 'p';
    double ns;
    WALLS_CHECK(walls_submit(pool, cpu_clock_task, &which, 1, &task));
    WALLS_CHECK(walls_wait(task, -1, &res));
    expect_status(&res, WALLS_OK, "the CPU clock task");
    memcpy(&ns, res.out, sizeof ns);
    walls_task_free(task);
    return ns;
}

void bench_fed(const struct counts *c)
{
    static const unsigned gaps_us[] = {20, 200, 2000};
    printf("\na worker fed now and then: one empty task, then a gap (nanosleep), "
           "for %u ms a gap; 1 worker\n",
           c->fed_ms);
    for (int p = 0; p < 2; p++) {
        bool thread = p == 0;
        walls_pool *pool = pool_start(thread ? WALLS_THREADS : WALLS_PROCESSES,
                                      WALLS_SANDBOX_NONE, 1);
        round_trip(pool); /* the worker has started */
        for (size_t g = 0; g < sizeof gaps_us / sizeof *gaps_us; g++) {
            unsigned cap = c->fed_ms * 1000 / gaps_us[g] + 1;
            double *ns = xcalloc(cap, sizeof *ns);
            struct timespec gap = {0, (long)gaps_us[g] * 1000};
            double cpu0 = worker_cpu_ns(pool, thread), t0 = now_ns(), end = t0 + c->fed_ms * 1e6;
            unsigned n = 0;
            while (n < cap && now_ns() < end) {
                nanosleep(&gap, NULL);
                double a = now_ns();
                round_trip(pool);
                ns[n++] = now_ns() - a;
            }
            double wall = now_ns() - t0, cpu = worker_cpu_ns(pool, thread) - cpu0;
            struct latency lat = latency_of(ns, n);
            free(ns);
            printf("  %-9s gap %5u us: worker CPU %5.1f%% of a CPU (%6.1f us a task)   "
                   "round trip median %7.2f us   p99 %8.2f us   (%u tasks)\n",
                   thread ? "threads" : "processes", gaps_us[g], 100.0 * cpu / wall,
                   cpu / 1000.0 / n, lat.median_us, lat.p99_us, n);
        }
        WALLS_CHECK(walls_pool_destroy(pool, 0));
    }
    fflush(stdout);
}
