/*
 * bench_core.c - the core figures of walls, beside GLib's GThreadPool and
 * libuv's threadpool. Figures only: it never passes or fails a run (the
 * exit status is non-zero only when a call it makes fails).
 *
 * What it measures, each pool with 2 workers:
 *  1. Round trip of one empty task: submit, wait, free, one task at a time.
 *     Median and p99 in microseconds over 10,000 round trips, after 1,000
 *     untimed warm-up round trips.
 *  2. Throughput: 1,000,000 empty tasks with at most 4,096 in flight. Once
 *     the window is full the oldest task is waited for and freed before the
 *     next one is submitted. Reported in tasks per second.
 *  3. Process placement only, with 1 worker: how long a crashed worker
 *     takes to be replaced and serve again. One repetition submits a task
 *     that writes through NULL, waits for it (it must end WALLS_CRASHED),
 *     then does one empty round trip. The respawn figure is the median
 *     repetition minus the median empty round trip on the same pool. Beside
 *     it, the median of this program's own fork() + _exit(0) + waitpid().
 *  4. The same round trip and throughput for GThreadPool (2 threads, not
 *     exclusive; each finished job is handed back through a GAsyncQueue, so
 *     the window waits for whichever job finished, not the oldest) and for
 *     libuv's uv_queue_work (UV_THREADPOOL_SIZE=2; a round trip runs the
 *     loop until the after-work callback ran; in the throughput run each
 *     after-work callback queues the next work), when they were found at
 *     build time.
 *  5. The ratios the project targets, each marked "met" or "missed" from
 *     the figures just measured.
 *
 * Run it on an otherwise idle machine: walls spins briefly on both sides
 * before it sleeps, so CPUs busy with other work change its figures most.
 *
 * Every time comes from clock_gettime(CLOCK_MONOTONIC). The median of an
 * even count of samples is the mean of the two middle ones; p99 is the
 * nearest rank. Core dumps are turned off for this program (RLIMIT_CORE = 0,
 * inherited by the worker processes) so that the crash figure does not
 * include writing a core file.
 *
 * Run (from the top of the tree, after building with WALLS_BUILD_BENCH=ON):
 *     ./build/bench/bench_core           full counts (seconds on an idle machine)
 *     ./build/bench/bench_core --quick   2,000 round trips, 200,000 tasks,
 *                                        20 crashes: a smoke run
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <walls.h>

#include "bench_common.h"

#ifdef HAVE_GLIB
#include <glib.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#define WORKERS 2   /* workers of every pool compared */
#define STRICT_LAYERS                                                                        \
    (WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS | WALLS_LAYER_NET_NS |   \
     WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS | WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT)
#define WINDOW 4096 /* tasks in flight at most, in the throughput runs */

struct counts {
    const char *name;
    unsigned warmup;      /* untimed round trips first */
    unsigned round_trips; /* timed round trips */
    unsigned long tasks;  /* tasks of one throughput run */
    unsigned respawns;    /* timed crash + replacement repetitions */
};

static const struct counts full_counts = {"full", 1000, 10000, 1000000, 50};
static const struct counts quick_counts = {"quick", 200, 2000, 200000, 20};

/* ---- statistics ---- */

struct latency {
    bool measured;
    double median_us, p99_us;
};

/* Sorts the samples (ns) in place. */
static struct latency latency_of(double *ns, unsigned n)
{
    struct summary s = summarize(ns, (int)n);
    return (struct latency){true, s.med / 1000.0, percentile(ns, (int)n, 99) / 1000.0};
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "bench_core: out of memory\n");
        exit(1);
    }
    return p;
}

/*
 * The two measurements every backend gets. A backend supplies one round
 * trip (submit one empty task, wait for it, release it) and one throughput
 * run of n tasks through the bounded window; the timing is done here.
 */
typedef void round_trip_fn(void *ctx);
typedef void throughput_fn(void *ctx, unsigned long n);

static struct latency measure_round_trips(round_trip_fn *once, void *ctx, const struct counts *c)
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

/* Tasks per second. */
static double measure_throughput(throughput_fn *run, void *ctx, unsigned long n)
{
    double t0 = now_ns();
    run(ctx, n);
    return (double)n / ((now_ns() - t0) / 1e9);
}

struct figures {
    struct latency rt;
    double tput; /* tasks/s; 0 when not measured */
};

static void print_figures(const struct figures *f, unsigned long tasks)
{
    printf("  round trip   median %8.2f us   p99 %8.2f us\n", f->rt.median_us, f->rt.p99_us);
    printf("  throughput   %10.0f tasks/s   (%lu tasks in %.2f s)\n", f->tput, tasks,
           (double)tasks / f->tput);
    fflush(stdout);
}

/* ---- walls ---- */

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
static struct walls_result walls_run_one(walls_pool *pool, walls_fn *fn)
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

static void walls_round_trip(void *ctx)
{
    struct walls_result res = walls_run_one(ctx, empty_task);
    expect_status(&res, WALLS_OK, "an empty task");
}

static void walls_throughput(void *ctx, unsigned long n)
{
    walls_pool *pool = ctx;
    walls_task **ring = xcalloc(WINDOW, sizeof *ring);
    unsigned long submitted = 0, done = 0;
    while (done < n) {
        if (submitted < n && submitted - done < WINDOW) {
            WALLS_CHECK(walls_submit(pool, empty_task, NULL, 0, &ring[submitted % WINDOW]));
            submitted++;
        } else {
            walls_task *oldest = ring[done % WINDOW];
            struct walls_result res;
            WALLS_CHECK(walls_wait(oldest, -1, &res));
            expect_status(&res, WALLS_OK, "an empty task");
            walls_task_free(oldest);
            done++;
        }
    }
    free(ring);
}

static walls_pool *walls_pool_start(enum walls_placement placement, unsigned sandbox,
                                    unsigned workers)
{
    struct walls_pool_opts opts = {.placement = placement, .sandbox = sandbox};
    if (placement == WALLS_PROCESSES)
        opts.processes = workers;
    else
        opts.threads = workers;
    walls_pool *pool;
    WALLS_CHECK(walls_pool_create(&pool, &opts));
    char line[640];
    if (walls_pool_explain(pool, line, sizeof line) >= 0)
        printf("  pool         %s\n", line);
    return pool;
}

static struct figures bench_walls(const char *title, enum walls_placement placement,
                                  unsigned sandbox, const struct counts *c)
{
    printf("\n%s, %d workers\n", title, WORKERS);
    walls_pool *pool = walls_pool_start(placement, sandbox, WORKERS);
    struct figures f;
    f.rt = measure_round_trips(walls_round_trip, pool, c);
    f.tput = measure_throughput(walls_throughput, pool, c->tasks);
    WALLS_CHECK(walls_pool_destroy(pool, 0));
    print_figures(&f, c->tasks);
    return f;
}

/* ---- crash to replacement, and a bare fork ---- */

static double fork_once(void)
{
    double ns;
    int rc = time_fork(&ns);
    if (rc != 0) {
        fprintf(stderr, "bench_core: fork: %s\n", strerror(-rc));
        exit(1);
    }
    return ns;
}

static struct latency bench_fork(unsigned reps)
{
    double *ns = xcalloc(reps, sizeof *ns);
    fork_once(); /* warm-up */
    for (unsigned i = 0; i < reps; i++)
        ns[i] = fork_once();
    struct latency l = latency_of(ns, reps);
    free(ns);
    return l;
}

/* One crash, then one empty round trip on the replacement; returns the time of both. */
static double crash_and_recover(walls_pool *pool, int *sig)
{
    double t0 = now_ns();
    struct walls_result res = walls_run_one(pool, crash_task);
    expect_status(&res, WALLS_CRASHED, "the crashing task");
    walls_round_trip(pool);
    double elapsed = now_ns() - t0;
    *sig = res.code;
    return elapsed;
}

struct respawn {
    struct latency base;  /* empty round trip, same 1-process pool */
    struct latency total; /* crash + following empty round trip */
    double respawn_us;    /* total median - base median */
    int signal;           /* code of the crashed tasks */
    uint64_t restarts;    /* as counted by the pool */
};

static struct respawn bench_respawn(const struct counts *c)
{
    struct respawn r = {0};
    printf("\nworker crash to replacement serving again: walls processes, 1 worker\n");
    /* c->respawns + 1 restarts stay under the default limit (100 within 1 s). */
    walls_pool *pool = walls_pool_start(WALLS_PROCESSES, WALLS_SANDBOX_NONE, 1);
    r.base = measure_round_trips(walls_round_trip, pool, c);

    crash_and_recover(pool, &r.signal); /* warm-up: not timed */
    double *ns = xcalloc(c->respawns, sizeof *ns);
    for (unsigned i = 0; i < c->respawns; i++)
        ns[i] = crash_and_recover(pool, &r.signal);
    r.total = latency_of(ns, c->respawns);
    free(ns);
    r.respawn_us = r.total.median_us - r.base.median_us;

    struct walls_stats stats;
    WALLS_CHECK(walls_pool_stats(pool, &stats));
    r.restarts = stats.restarts;
    WALLS_CHECK(walls_pool_destroy(pool, 0));

    printf("  empty round trip on this pool          median %8.2f us\n", r.base.median_us);
    printf("  crash + next empty round trip          median %8.2f us   p99 %8.2f us\n",
           r.total.median_us, r.total.p99_us);
    printf("  respawn (difference of the medians)           %8.2f us   over %u crashes, signal %d\n",
           r.respawn_us, c->respawns, r.signal);
    printf("  worker restarts counted by the pool           %8llu      (expected %u)\n",
           (unsigned long long)r.restarts, c->respawns + 1);
    fflush(stdout);
    return r;
}

/* ---- GLib GThreadPool ---- */

#ifdef HAVE_GLIB

struct glib_bench {
    GThreadPool *pool;
    GAsyncQueue *done; /* the worker pushes each finished job here */
};

/* Any non-NULL pointer will do as the job: neither queue accepts NULL. */
static int glib_token;

static void glib_empty(gpointer job, gpointer user_data)
{
    GAsyncQueue *done = user_data;
    g_async_queue_push(done, job);
}

static void glib_push(struct glib_bench *g)
{
    GError *err = NULL;
    if (!g_thread_pool_push(g->pool, &glib_token, &err)) {
        fprintf(stderr, "bench_core: g_thread_pool_push: %s\n", err ? err->message : "failed");
        exit(1);
    }
}

static void glib_round_trip(void *ctx)
{
    struct glib_bench *g = ctx;
    glib_push(g);
    g_async_queue_pop(g->done);
}

static void glib_throughput(void *ctx, unsigned long n)
{
    struct glib_bench *g = ctx;
    unsigned long submitted = 0, done = 0;
    while (done < n) {
        if (submitted < n && submitted - done < WINDOW) {
            glib_push(g);
            submitted++;
        } else {
            g_async_queue_pop(g->done);
            done++;
        }
    }
}

static struct figures bench_glib(const struct counts *c)
{
    printf("\nGLib %u.%u.%u GThreadPool, %d threads (exclusive=FALSE)\n", glib_major_version,
           glib_minor_version, glib_micro_version, WORKERS);
    struct glib_bench g;
    GError *err = NULL;
    g.done = g_async_queue_new();
    g.pool = g_thread_pool_new(glib_empty, g.done, WORKERS, FALSE, &err);
    if (!g.pool) {
        fprintf(stderr, "bench_core: g_thread_pool_new: %s\n", err ? err->message : "failed");
        exit(1);
    }
    struct figures f;
    f.rt = measure_round_trips(glib_round_trip, &g, c);
    f.tput = measure_throughput(glib_throughput, &g, c->tasks);
    g_thread_pool_free(g.pool, FALSE, TRUE);
    g_thread_pool_stop_unused_threads();
    g_async_queue_unref(g.done);
    print_figures(&f, c->tasks);
    return f;
}

#endif /* HAVE_GLIB */

/* ---- libuv threadpool ---- */

#ifdef HAVE_LIBUV

struct libuv_bench {
    uv_loop_t loop;
    unsigned long completed; /* after-work callbacks run */
    unsigned long to_queue;  /* throughput: works still to queue */
    uv_work_t works[WINDOW];
};

static void libuv_check(const char *what, int rc)
{
    if (rc < 0) {
        fprintf(stderr, "bench_core: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void libuv_empty(uv_work_t *work)
{
    (void)work;
}

static void libuv_after(uv_work_t *work, int status)
{
    libuv_check("after_work_cb", status);
    struct libuv_bench *u = work->loop->data;
    u->completed++;
}

static void libuv_round_trip(void *ctx)
{
    struct libuv_bench *u = ctx;
    unsigned long before = u->completed;
    libuv_check("uv_queue_work", uv_queue_work(&u->loop, &u->works[0], libuv_empty, libuv_after));
    while (u->completed == before)
        uv_run(&u->loop, UV_RUN_ONCE);
}

/* Throughput: each finished work queues the next one in its place. */
static void libuv_after_requeue(uv_work_t *work, int status)
{
    libuv_after(work, status);
    struct libuv_bench *u = work->loop->data;
    if (u->to_queue > 0) {
        u->to_queue--;
        libuv_check("uv_queue_work",
                    uv_queue_work(&u->loop, work, libuv_empty, libuv_after_requeue));
    }
}

static void libuv_throughput(void *ctx, unsigned long n)
{
    struct libuv_bench *u = ctx;
    unsigned long target = u->completed + n;
    unsigned long first = n < WINDOW ? n : WINDOW;
    u->to_queue = n - first;
    for (unsigned long i = 0; i < first; i++)
        libuv_check("uv_queue_work",
                    uv_queue_work(&u->loop, &u->works[i], libuv_empty, libuv_after_requeue));
    uv_run(&u->loop, UV_RUN_DEFAULT);
    if (u->completed != target) {
        fprintf(stderr, "bench_core: libuv loop stopped after %lu of %lu works\n",
                n - (target - u->completed), n);
        exit(1);
    }
}

static struct figures bench_libuv(const struct counts *c)
{
    printf("\nlibuv %s uv_queue_work, UV_THREADPOOL_SIZE=%s\n", uv_version_string(),
           getenv("UV_THREADPOOL_SIZE"));
    struct libuv_bench *u = xcalloc(1, sizeof *u);
    libuv_check("uv_loop_init", uv_loop_init(&u->loop));
    u->loop.data = u;
    struct figures f;
    f.rt = measure_round_trips(libuv_round_trip, u, c);
    f.tput = measure_throughput(libuv_throughput, u, c->tasks);
    libuv_check("uv_loop_close", uv_loop_close(&u->loop));
    free(u);
    print_figures(&f, c->tasks);
    return f;
}

#endif /* HAVE_LIBUV */

/* ---- the machine ---- */

static void print_machine(const struct counts *c)
{
    char model[256];
    cpu_model(model, sizeof model);
    printf("machine\n");
    printf("  cpu          %s\n", model);
    char source[128];
    int cpus = walls_cpu_source(source, sizeof source);
    printf("  usable cpus  %d (walls_cpu_count; from %s)\n", walls_cpu_count(),
           cpus > 0 ? source : "?");
    struct utsname u;
    if (uname(&u) == 0)
        printf("  kernel       %s %s %s\n", u.sysname, u.release, u.machine);
    printf("  walls        %s\n", walls_version());
    printf("  counts       %s: %u round trips after %u warm-up, %lu tasks with %d in flight,"
           " %u crashes\n",
           c->name, c->round_trips, c->warmup, c->tasks, WINDOW, c->respawns);
}

/* ---- targets ---- */

static void print_target(const char *what, double ratio, bool at_most, double target)
{
    bool met = at_most ? ratio <= target : ratio >= target;
    printf("  %-44s %6.2fx   target %s %.1fx   %s\n", what, ratio, at_most ? "<=" : ">=", target,
           met ? "met" : "missed");
}

static void print_target_na(const char *what, const char *why)
{
    printf("  %-44s %s\n", what, why);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_core [--quick]\n"
                "  --quick  fewer repetitions (2,000 round trips, 200,000 tasks, 20 crashes)\n");
}

int main(int argc, char **argv)
{
    /* The crashes below should not write core files. The limit is set
     * first so that the fork server, and the workers it forks, inherit it;
     * setrlimit() starts no thread. */
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0)
        fprintf(stderr, "bench_core: setrlimit(RLIMIT_CORE): %s\n", strerror(errno));

    /* Then, while the program still has no thread, the fork server the
     * process workers come from is forked. */
    WALLS_CHECK(walls_init());

    const struct counts *c = &full_counts;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            c = &quick_counts;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            walls_fini();
            return 0;
        } else {
            usage(stderr);
            walls_fini();
            return 2;
        }
    }

#ifdef HAVE_LIBUV
    /* Read by libuv when it starts its threadpool, at the first uv_queue_work. */
    if (setenv("UV_THREADPOOL_SIZE", "2", 1) != 0) {
        fprintf(stderr, "bench_core: setenv: %s\n", strerror(errno));
        return 1;
    }
#endif
    printf("bench_core: empty tasks through walls, GThreadPool and libuv (figures only)\n\n");
    print_machine(c);
    fflush(stdout);

    struct latency fork_lat = bench_fork(c->respawns);

    struct figures thr = bench_walls("walls threads", WALLS_THREADS, WALLS_SANDBOX_NONE, c);
    struct figures proc = bench_walls("walls processes", WALLS_PROCESSES, WALLS_SANDBOX_NONE, c);
    /* The strict sandbox, when this kernel allows all of it. */
    unsigned layers = 0;
    char probe[512];
    bool strict_ok = walls_sandbox_probe(&layers, probe, sizeof probe) > 0 &&
                     (layers & STRICT_LAYERS) == STRICT_LAYERS;
    struct figures strict = {0};
    if (strict_ok)
        strict = bench_walls("walls processes, strict sandbox", WALLS_PROCESSES,
                             WALLS_SANDBOX_STRICT, c);
    else
        printf("\nwalls processes, strict sandbox: not measured (%s)\n", probe);
    struct respawn resp = bench_respawn(c);
    printf("  bare fork()+_exit(0)+waitpid()         median %8.2f us   p99 %8.2f us   (%u reps)\n",
           fork_lat.median_us, fork_lat.p99_us, c->respawns);

#ifdef HAVE_GLIB
    struct figures glib = bench_glib(c);
#else
    struct figures glib = {0};
    printf("\nGLib GThreadPool: not built (libglib2.0-dev missing)\n");
#endif
#ifdef HAVE_LIBUV
    bench_libuv(c);
    uv_library_shutdown();
#else
    printf("\nlibuv threadpool: not built (libuv1-dev missing)\n");
#endif

    printf("\ntargets (round trips compare medians)\n");
    if (glib.rt.measured) {
        print_target("walls processes round trip / GThreadPool's",
                     proc.rt.median_us / glib.rt.median_us, true, 1.0);
        print_target("walls threads round trip / GThreadPool's",
                     thr.rt.median_us / glib.rt.median_us, true, 0.5);
        print_target("walls threads throughput / GThreadPool's", thr.tput / glib.tput, false, 2.0);
        print_target("walls processes throughput / GThreadPool's", proc.tput / glib.tput, false,
                     1.0);
    } else {
        const char *why = "n/a: GThreadPool part not built";
        print_target_na("walls processes round trip / GThreadPool's", why);
        print_target_na("walls threads round trip / GThreadPool's", why);
        print_target_na("walls threads throughput / GThreadPool's", why);
        print_target_na("walls processes throughput / GThreadPool's", why);
    }
    print_target("respawn / bare fork", resp.respawn_us / fork_lat.median_us, true, 1.5);
    if (strict_ok) {
        print_target("strict-sandbox processes round trip / unsandboxed",
                     strict.rt.median_us / proc.rt.median_us, true, 1.1);
        printf("  strict-sandbox processes throughput / unsandboxed   %.2fx\n",
               strict.tput / proc.tput);
    } else {
        print_target_na("strict-sandbox processes round trip / unsandboxed",
                        "n/a: the kernel refuses part of the strict sandbox");
    }

    walls_fini();
    return 0;
}
