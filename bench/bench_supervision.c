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

#include <walls.h>

#include "bench_common.h"

static int quick;

static double now_us(void)
{
    return now_ns() / 1e3;
}

static int spin_forever(struct walls_call *call)
{
    (void)call;
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

/* Raises SIGSEGV rather than faulting: the restart figure here has always
 * been taken with a raised signal (docs/benchmarks.md compares it with
 * bench_core's, whose crash is a real fault). */
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
    check_walls(walls_pool_create(&pool, &o), "walls_pool_create");
    return pool;
}

static double round_trip(walls_pool *pool)
{
    walls_task *t;
    struct walls_result r;
    double a = now_us();
    check_walls(walls_submit(pool, empty_task, NULL, 0, &t), "walls_submit");
    check_walls(walls_wait(t, -1, &r), "walls_wait");
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
        check_walls(walls_submit_ex(pool, spin_forever, NULL, 0, &limit, &t), "walls_submit_ex");
        check_walls(walls_wait(t, -1, &r), "walls_wait");
        late[i] = now_us() - a - 50000.0;
        if (r.status != WALLS_TIMEOUT) {
            fprintf(stderr, "bench_supervision: spinning task ended as %s\n",
                    walls_status_name(r.status));
            exit(1);
        }
        walls_task_free(t);
    }
    struct summary s = summarize(late, n);
    printf("timeout overshoot, 50 ms limit, %d tasks:  median %.2f ms  max %.2f ms\n", n,
           s.med / 1000.0, s.max / 1000.0);
    check_walls(walls_pool_destroy(pool, 0), "walls_pool_destroy");
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
        check_walls(walls_submit(pool, segv, NULL, 0, &crash), "walls_submit");
        check_walls(walls_wait(crash, -1, &r), "walls_wait");
        check_walls(walls_submit(pool, empty_task, NULL, 0, &next), "walls_submit");
        struct walls_result done;
        check_walls(walls_wait(next, -1, &done), "walls_wait");
        restart[i] = now_us() - a;
        if (r.status != WALLS_CRASHED) {
            fprintf(stderr, "bench_supervision: crash ended as %s\n", walls_status_name(r.status));
            exit(1);
        }
        walls_task_free(crash);
        walls_task_free(next);
    }
    double base = summarize(normal, n).med;
    struct summary s = summarize(restart, n);
    printf("restart after a crash, %-9s:           median %.0f us (p99 %.0f us)\n", name,
           s.med - base, percentile(restart, n, 99) - base);
    check_walls(walls_pool_destroy(pool, 0), "walls_pool_destroy");
}

static void bare_fork(void)
{
    enum { N = 50 };
    double v[N];
    for (int i = 0; i < N; i++)
        check_walls(time_fork(&v[i]), "fork");
    printf("bare fork+_exit+waitpid (reference):       median %.0f us\n",
           summarize(v, N).med / 1e3);
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
            check_walls(walls_wait(window[k], -1, &r), "walls_wait");
            walls_task_free(window[k]);
        }
        if (i < total)
            check_walls(walls_submit(pool, empty_task, NULL, 0, &window[k]), "walls_submit");
    }
    double secs = (now_us() - a) / 1e6;
    struct summary s = summarize(rtt, rt);
    printf("%-28s round trip median %6.2f us  p99 %7.2f us   throughput %5.2f M/s\n", name,
           s.med, percentile(rtt, rt, 99), (double)total / secs / 1e6);
}

int main(int argc, char **argv)
{
    check_walls(walls_init(), "walls_init");
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
        check_walls(walls_pool_destroy(pool, 0), "walls_pool_destroy");
    }
    walls_fini();
    return 0;
}
