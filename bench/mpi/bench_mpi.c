/*
 * bench_mpi.c - what a walls pool across MPI ranks (libwalls-mpi) costs
 * and gives, on one machine. Figures only, never pass/fail; every line is
 * "<mode> <what> <figure>", one figure per line. bench/mpi/run.sh runs all
 * three modes with the rank counts each needs.
 *
 *   mpirun -np 3 bench_mpi latency [ROUND_TRIPS [TASKS [REPS]]]
 *      Empty tasks: the round trip (submit one, wait, free; median and p99
 *      of ROUND_TRIPS, default 5,000) and the throughput (TASKS, default
 *      100,000, in one walls_submit_batch, then walls_wait_all; median of
 *      REPS, default 5), first through a local walls pool of 2 processes
 *      on rank 0, then through the MPI pool of the serving ranks (1
 *      process each), and the ratios.
 *   mpirun -np N bench_mpi cpu PROCESSES [TASKS [TASK_MS [REPS [ITERATIONS]]]]
 *      A batch of TASKS (200) CPU-bound tasks of TASK_MS (20) ms each, a
 *      spin loop calibrated on rank 0 (or ITERATIONS of it, as an earlier
 *      run printed, so that runs compared do the same work), over N-1
 *      serving ranks of PROCESSES worker processes each: wall time, median
 *      of REPS (3).
 *   mpirun -np N bench_mpi crash [TASKS [CRASHERS]]
 *      TASKS (1,000) empty tasks of which CRASHERS (10) die of SIGSEGV,
 *      over N-1 serving ranks of 1 process: counts by status and each
 *      rank's statistics.
 *
 * While rank 0 measures on its own (local pool, calibration), the serving
 * ranks wait in a barrier that sleeps between polls, so that they take no
 * CPU from it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "spin.h"
#include "walls-mpi.h"

static int my_rank, n_ranks;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Unless rc is 0: says what failed and ends the whole job. */
static void check(int rc, const char *what)
{
    if (rc == 0)
        return;
    fprintf(stderr, "bench_mpi rank %d: %s: %s (%s)\n", my_rank, what, walls_strerror(rc),
            walls_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "bench_mpi rank %d: out of memory\n", my_rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v; the nearest-rank percentile p (0-100). */
static double percentile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

/* A barrier that naps between polls: a rank waiting here leaves the CPUs to
 * the ranks still working. */
static void quiet_barrier(void)
{
    MPI_Request req;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static long arg(int argc, char **argv, int i, long dflt)
{
    if (argc <= i)
        return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v <= 0) {
        if (my_rank == 0)
            fprintf(stderr, "bench_mpi: argument %d: \"%s\" is not a positive number\n", i,
                    argv[i]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return v;
}

/* ---- tasks ---- */

static int t_empty(struct walls_call *call)
{
    (void)call;
    return 0;
}


/* in: the iterations (uint64_t); out: spin's result, so it is not dropped. */
static int t_spin(struct walls_call *call)
{
    uint64_t n;
    if (call->in_len != sizeof n || call->out_cap < sizeof n)
        return 1;
    memcpy(&n, call->in, sizeof n);
    uint64_t x = spin(n);
    memcpy(call->out, &x, sizeof x);
    call->out_len = sizeof x;
    return 0;
}

/* A fault the sanitizers leave alone: the worker dies of it. */
static volatile int *volatile nowhere;

__attribute__((no_sanitize("undefined", "address", "thread"))) static void write_nowhere(void)
{
    *nowhere = 1;
}

/* in: one byte, 1 to die of SIGSEGV. */
static int t_maybe_crash(struct walls_call *call)
{
    if (call->in_len == 1 && *(const unsigned char *)call->in == 1)
        write_nowhere();
    return 0;
}

/* ---- measurements on rank 0 ---- */

/* Median and p99 of n empty round trips, after 200 unmeasured ones. */
static void round_trips(walls_pool *pool, size_t n, double *med_ns, double *p99_ns)
{
    double *v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n + 200; i++) {
        walls_task *t;
        struct walls_result r;
        double a = now_ns();
        check(walls_submit(pool, t_empty, NULL, 0, &t), "walls_submit");
        check(walls_wait(t, -1, &r), "walls_wait");
        walls_task_free(t);
        if (r.status != WALLS_OK) {
            fprintf(stderr, "bench_mpi: an empty task ended %s\n", walls_status_name(r.status));
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (i >= 200)
            v[i - 200] = now_ns() - a;
    }
    *med_ns = percentile(v, n, 50);
    *p99_ns = percentile(v, n, 99);
    free(v);
}

/* Submits n tasks of fn in one batch and waits for all: the wall time in
 * ns. Counts the results by status into by_status (may be NULL). */
static double batch(walls_pool *pool, walls_fn *fn, const struct walls_input *in, size_t n,
                    uint64_t *by_status)
{
    walls_task **tasks = xcalloc(n, sizeof *tasks);
    double a = now_ns();
    check(walls_submit_batch(pool, fn, in, n, tasks), "walls_submit_batch");
    check(walls_wait_all(tasks, n, -1), "walls_wait_all");
    double ns = now_ns() - a;
    size_t not_ok = 0;
    for (size_t i = 0; i < n; i++) {
        struct walls_result r;
        check(walls_wait(tasks[i], 0, &r), "walls_wait");
        if (by_status && (unsigned)r.status <= WALLS_BROKEN)
            by_status[r.status]++;
        not_ok += r.status != WALLS_OK;
        walls_task_free(tasks[i]);
    }
    free(tasks);
    if (!by_status && not_ok) {
        fprintf(stderr, "bench_mpi: %zu of %zu tasks did not end ok\n", not_ok, n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return ns;
}

/* Empty-task throughput: the median of reps batches of n, in tasks/s. */
static double throughput(walls_pool *pool, size_t n, int reps)
{
    struct walls_input *in = xcalloc(n, sizeof *in);
    double *rate = xcalloc((size_t)reps, sizeof *rate);
    for (int i = 0; i < reps; i++)
        rate[i] = (double)n / (batch(pool, t_empty, in, n, NULL) / 1e9);
    double med = percentile(rate, (size_t)reps, 50);
    free(rate);
    free(in);
    return med;
}

static walls_pool *mpi_pool(const struct walls_pool_opts *opts)
{
    walls_pool *pool;
    check(walls_mpi_pool_create(&pool, MPI_COMM_WORLD, opts), "walls_mpi_pool_create");
    return pool;
}

static void print_explain(const char *mode, walls_pool *pool)
{
    char line[4096];
    if (walls_pool_explain(pool, line, sizeof line) >= 0)
        printf("%s pool %s\n", mode, line);
}

/* ---- modes ---- */

static void latency(size_t trips, size_t tasks, int reps)
{
    struct walls_pool_opts local_opts = {.placement = WALLS_PROCESSES, .processes = 2};
    walls_pool *local;
    double local_med, local_p99, mpi_med, mpi_p99;
    check(walls_pool_create(&local, &local_opts), "walls_pool_create");
    round_trips(local, trips, &local_med, &local_p99);
    double local_rate = throughput(local, tasks, reps);
    check(walls_pool_destroy(local, 0), "walls_pool_destroy");
    quiet_barrier();

    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = mpi_pool(&opts);
    print_explain("latency", pool);
    round_trips(pool, trips, &mpi_med, &mpi_p99);
    double mpi_rate = throughput(pool, tasks, reps);
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");

    printf("latency round_trips %zu\n", trips);
    printf("latency local_2_processes round_trip_median_us %.1f\n", local_med / 1e3);
    printf("latency local_2_processes round_trip_p99_us %.1f\n", local_p99 / 1e3);
    printf("latency mpi_%d_ranks_x_1_process round_trip_median_us %.1f\n", n_ranks - 1,
           mpi_med / 1e3);
    printf("latency mpi_%d_ranks_x_1_process round_trip_p99_us %.1f\n", n_ranks - 1,
           mpi_p99 / 1e3);
    printf("latency round_trip_ratio_mpi_over_local %.2f\n", mpi_med / local_med);
    printf("throughput tasks_per_batch %zu\n", tasks);
    printf("throughput batches %d\n", reps);
    printf("throughput local_2_processes tasks_per_s %.0f\n", local_rate);
    printf("throughput mpi_%d_ranks_x_1_process tasks_per_s %.0f\n", n_ranks - 1, mpi_rate);
    printf("throughput ratio_local_over_mpi %.2f\n", local_rate / mpi_rate);
}

/* Iterations of spin() that take about ms on this rank: from the fastest
 * of five timings each round, since being descheduled only adds time. */
static uint64_t calibrate(double ms)
{
    uint64_t n = 1000000;
    for (int round = 0; round < 3; round++) {
        double t[5];
        for (int i = 0; i < 5; i++) {
            double a = now_ns();
            volatile uint64_t sink = spin(n);
            (void)sink;
            t[i] = now_ns() - a;
        }
        n = (uint64_t)(ms * 1e6 / (percentile(t, 5, 0) / (double)n));
    }
    return n;
}

static void cpu(unsigned processes, size_t tasks, double task_ms, int reps, uint64_t iters)
{
    bool calibrated = iters == 0;
    if (calibrated)
        iters = calibrate(task_ms);
    quiet_barrier();
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = processes};
    walls_pool *pool = mpi_pool(&opts);
    print_explain("cpu", pool);
    struct walls_input *in = xcalloc(tasks, sizeof *in);
    for (size_t i = 0; i < tasks; i++)
        in[i] = (struct walls_input){.data = &iters, .len = sizeof iters};
    /* One unmeasured task per worker first: every worker has run a task. */
    batch(pool, t_spin, in, (size_t)(n_ranks - 1) * processes, NULL);
    double *wall = xcalloc((size_t)reps, sizeof *wall);
    for (int i = 0; i < reps; i++)
        wall[i] = batch(pool, t_spin, in, tasks, NULL);
    double med = percentile(wall, (size_t)reps, 50);
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
    unsigned workers = (unsigned)(n_ranks - 1) * processes;
    printf("cpu layout %dx%u\n", n_ranks - 1, processes);
    printf("cpu serving_ranks %d\n", n_ranks - 1);
    printf("cpu processes_per_rank %u\n", processes);
    printf("cpu tasks %zu\n", tasks);
    printf("cpu task_ms %.1f\n", task_ms);
    printf("cpu iterations_per_task %" PRIu64 "\n", iters);
    printf("cpu iterations_from %s\n", calibrated ? "calibration_on_rank_0" : "command_line");
    printf("cpu batches %d\n", reps);
    printf("cpu wall_ms %.1f\n", med / 1e6);
    printf("cpu ideal_ms %.1f\n", (double)tasks * task_ms / workers);
    printf("cpu efficiency %.2f\n", (double)tasks * task_ms / workers / (med / 1e6));
    free(wall);
    free(in);
}

static void crash(size_t tasks, size_t crashers)
{
    quiet_barrier();
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = mpi_pool(&opts);
    print_explain("crash", pool);
    static const unsigned char zero = 0, one = 1;
    struct walls_input *in = xcalloc(tasks, sizeof *in);
    size_t every = crashers ? tasks / crashers : tasks + 1;
    for (size_t i = 0; i < tasks; i++)
        in[i] = (struct walls_input){.data = i % every == every / 2 ? &one : &zero, .len = 1};
    uint64_t by_status[WALLS_BROKEN + 1] = {0};
    double ns = batch(pool, t_maybe_crash, in, tasks, by_status);
    printf("crash tasks %zu\n", tasks);
    printf("crash serving_ranks %d\n", n_ranks - 1);
    printf("crash wall_ms %.1f\n", ns / 1e6);
    for (int s = 0; s <= WALLS_BROKEN; s++)
        if (by_status[s] || s == WALLS_OK || s == WALLS_CRASHED)
            printf("crash status_%s %" PRIu64 "\n", walls_status_name((enum walls_status)s),
                   by_status[s]);
    for (int rank = 1; rank < n_ranks; rank++) {
        struct walls_stats st;
        check(walls_mpi_pool_rank_stats(pool, rank, &st), "walls_mpi_pool_rank_stats");
        printf("crash rank_%d submitted %" PRIu64 "\n", rank, st.submitted);
        printf("crash rank_%d completed %" PRIu64 "\n", rank, st.completed);
        printf("crash rank_%d ok %" PRIu64 "\n", rank, st.by_status[WALLS_OK]);
        printf("crash rank_%d crashed %" PRIu64 "\n", rank, st.by_status[WALLS_CRASHED]);
        printf("crash rank_%d restarts %" PRIu64 "\n", rank, st.restarts);
        printf("crash rank_%d latency_p50_us %.1f\n", rank, (double)st.latency_p50_ns / 1e3);
        printf("crash rank_%d latency_p99_us %.1f\n", rank, (double)st.latency_p99_ns / 1e3);
    }
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
    free(in);
}

static void usage(const char *argv0)
{
    if (my_rank == 0)
        fprintf(stderr,
                "usage: mpirun -np 3 %s latency [ROUND_TRIPS [TASKS [REPS]]]\n"
                "       mpirun -np N %s cpu PROCESSES [TASKS [TASK_MS [REPS [ITERATIONS]]]]\n"
                "       mpirun -np N %s crash [TASKS [CRASHERS]]\n"
                "(N >= 2: rank 0 and N-1 serving ranks)\n",
                argv0, argv0, argv0);
}

int main(int argc, char **argv)
{
    int provided;
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    const char *mode = argc > 1 ? argv[1] : "";
    if (n_ranks < 2 || (strcmp(mode, "latency") && strcmp(mode, "cpu") && strcmp(mode, "crash"))) {
        usage(argv[0]);
        MPI_Finalize();
        return 2;
    }
    if (provided < MPI_THREAD_MULTIPLE) {
        if (my_rank == 0)
            fprintf(stderr, "bench_mpi: MPI gives thread level %d, walls needs MULTIPLE\n",
                    provided);
        MPI_Finalize();
        return 1;
    }
    unsigned processes = 1;
    if (strcmp(mode, "cpu") == 0)
        processes = (unsigned)arg(argc, argv, 2, 1);

    if (my_rank == 0) {
        printf("%s ranks %d\n", mode, n_ranks);
        printf("%s cpus_rank_0 %d\n", mode, walls_cpu_count());
        if (strcmp(mode, "latency") == 0)
            latency((size_t)arg(argc, argv, 2, 5000), (size_t)arg(argc, argv, 3, 100000),
                    (int)arg(argc, argv, 4, 5));
        else if (strcmp(mode, "cpu") == 0)
            cpu(processes, (size_t)arg(argc, argv, 3, 200), (double)arg(argc, argv, 4, 20),
                (int)arg(argc, argv, 5, 3), (uint64_t)arg(argc, argv, 6, 0));
        else
            crash((size_t)arg(argc, argv, 2, 1000), (size_t)arg(argc, argv, 3, 10));
    } else {
        quiet_barrier();
        struct walls_pool_opts local = {.placement = WALLS_PROCESSES, .processes = processes};
        check(walls_mpi_serve(MPI_COMM_WORLD, &local), "walls_mpi_serve");
    }
    MPI_Finalize();
    return 0;
}
