/*
 * bench_supervision.c - what supervision costs: how late an overrunning
 * task is stopped, how long a crashed worker takes to serve again, and how
 * hybrid placement compares with threads and processes on the empty-task
 * round trip and throughput. Figures only, never pass/fail.
 *
 *   ./build/bench/bench_supervision [--quick]
 *
 * Timeout overshoot: 100 tasks that spin forever, each with a 50 ms limit,
 * in a 2-process pool; the figure is (time from submit to WALLS_TIMEOUT)
 * minus 50 ms: median and max. Restart: in a one-process pool, a task that
 * segfaults is waited for, then an empty task: the time from submitting the
 * crash to the empty task's completion, minus one normal empty round trip;
 * median over 50. Beside it, a bare fork()+_exit()+waitpid() of this
 * program, the reference the project's target is set against. Round trip: submit,
 * wait and free one empty task at a time; median and p99 over 10,000.
 * Throughput: 1,000,000 empty tasks (a window of 4,096 in flight).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <walls.h>

static int quick;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench_supervision: %s: %s\n", what, walls_strerror(rc));
        exit(1);
    }
}

static int empty(struct walls_call *call)
{
    (void)call;
    return 0;
}

static int spin(struct walls_call *call)
{
    (void)call;
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

static int segv(struct walls_call *call)
{
    (void)call;
    raise(SIGSEGV);
    return 0;
}

static walls_pool *make_pool(enum walls_placement placement, unsigned processes,
                             unsigned threads)
{
    struct walls_pool_opts o = {.placement = placement, .processes = processes,
                                .threads = threads};
    walls_pool *pool;
    check(walls_pool_create(&pool, &o), "walls_pool_create");
    return pool;
}

static double round_trip(walls_pool *pool)
{
    walls_task *t;
    struct walls_result r;
    double a = now_us();
    check(walls_submit(pool, empty, NULL, 0, &t), "walls_submit");
    check(walls_wait(t, -1, &r), "walls_wait");
    walls_task_free(t);
    return now_us() - a;
}

static void timeout_overshoot(void)
{
    walls_pool *pool = make_pool(WALLS_PROCESSES, 2, 0);
    enum { N = 100 };
    int n = quick ? 20 : N;
    double late[N];
    struct walls_task_opts limit = {.timeout_ms = 50};
    for (int i = 0; i < n; i++) {
        walls_task *t;
        struct walls_result r;
        double a = now_us();
        check(walls_submit_ex(pool, spin, NULL, 0, &limit, &t), "walls_submit_ex");
        check(walls_wait(t, -1, &r), "walls_wait");
        late[i] = now_us() - a - 50000.0;
        if (r.status != WALLS_TIMEOUT) {
            fprintf(stderr, "bench_supervision: spinning task ended as %s\n",
                    walls_status_name(r.status));
            exit(1);
        }
        walls_task_free(t);
    }
    double max = late[0];
    for (int i = 1; i < n; i++)
        max = late[i] > max ? late[i] : max;
    printf("timeout overshoot, 50 ms limit, %d tasks:  median %.2f ms  max %.2f ms\n", n,
           percentile(late, (size_t)n, 0.5) / 1000.0, max / 1000.0);
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
}

static void restart_time(const char *name, enum walls_placement placement, unsigned threads)
{
    walls_pool *pool = make_pool(placement, 1, threads);
    enum { N = 50 };
    int n = quick ? 10 : N;
    double normal[N], restart[N];
    for (int i = 0; i < 20; i++)
        round_trip(pool);
    for (int i = 0; i < n; i++) {
        normal[i] = round_trip(pool);
        walls_task *crash, *next;
        struct walls_result r;
        double a = now_us();
        check(walls_submit(pool, segv, NULL, 0, &crash), "walls_submit");
        check(walls_wait(crash, -1, &r), "walls_wait");
        check(walls_submit(pool, empty, NULL, 0, &next), "walls_submit");
        struct walls_result done;
        check(walls_wait(next, -1, &done), "walls_wait");
        restart[i] = now_us() - a;
        if (r.status != WALLS_CRASHED) {
            fprintf(stderr, "bench_supervision: crash ended as %s\n", walls_status_name(r.status));
            exit(1);
        }
        walls_task_free(crash);
        walls_task_free(next);
    }
    double base = percentile(normal, (size_t)n, 0.5);
    printf("restart after a crash, %-9s:           median %.0f us (p99 %.0f us)\n", name,
           percentile(restart, (size_t)n, 0.5) - base, percentile(restart, (size_t)n, 0.99) - base);
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
}

static void bare_fork(void)
{
    enum { N = 50 };
    double v[N];
    for (int i = 0; i < N; i++) {
        double a = now_us();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        waitpid(pid, NULL, 0);
        v[i] = now_us() - a;
    }
    printf("bare fork+_exit+waitpid (reference):       median %.0f us\n",
           percentile(v, N, 0.5));
}

static void placement_figures(const char *name, walls_pool *pool)
{
    enum { RT = 10000, WINDOW = 4096 };
    int rt = quick ? 2000 : RT;
    static double rtt[RT];
    for (int i = 0; i < 1000; i++)
        round_trip(pool);
    for (int i = 0; i < rt; i++)
        rtt[i] = round_trip(pool);
    long total = quick ? 200000 : 1000000;
    static walls_task *window[WINDOW];
    struct walls_result r;
    double a = now_us();
    for (long i = 0; i < total + WINDOW; i++) {
        long k = i % WINDOW;
        if (i >= WINDOW) {
            check(walls_wait(window[k], -1, &r), "walls_wait");
            walls_task_free(window[k]);
        }
        if (i < total)
            check(walls_submit(pool, empty, NULL, 0, &window[k]), "walls_submit");
    }
    double secs = (now_us() - a) / 1e6;
    printf("%-28s round trip median %6.2f us  p99 %7.2f us   throughput %5.2f M/s\n", name,
           percentile(rtt, (size_t)rt, 0.5), percentile(rtt, (size_t)rt, 0.99),
           (double)total / secs / 1e6);
}

int main(int argc, char **argv)
{
    check(walls_init(), "walls_init");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: bench_supervision [--quick]\n");
            return 2;
        }
    }
    printf("walls %s, %d usable CPUs\n", walls_version(), walls_cpu_count());
    timeout_overshoot();
    bare_fork();
    restart_time("processes", WALLS_PROCESSES, 0);
    restart_time("hybrid 1x2", WALLS_HYBRID, 2);
    struct {
        const char *name;
        enum walls_placement placement;
        unsigned processes, threads;
    } pools[] = {
        {"threads, 2", WALLS_THREADS, 0, 2},
        {"processes, 2", WALLS_PROCESSES, 2, 0},
        {"hybrid, 1 process x 2", WALLS_HYBRID, 1, 2},
        {"hybrid, 2 processes x 2", WALLS_HYBRID, 2, 2},
    };
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        walls_pool *pool = make_pool(pools[i].placement, pools[i].processes, pools[i].threads);
        placement_figures(pools[i].name, pool);
        check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
    }
    walls_fini();
    return 0;
}
