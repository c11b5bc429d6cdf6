/*
 * bench_core - the core figures of walls beside the thread pools people
 * use: a hand-written one, GLib's GThreadPool, libuv's threadpool and
 * oneTBB's task_group. Figures only: it never passes or fails a run (the
 * exit status is non-zero only when a call it makes fails).
 *
 * What it measures, each pool with 2 workers:
 *  1. Round trip of one empty task: submit, wait, free, one task at a time.
 *     Median and p99 in microseconds over 10,000 round trips, after 1,000
 *     untimed warm-up round trips.
 *  2. Throughput: a batch of 1,000,000 empty tasks submitted at once, then
 *     waited for; the median (min-max) of 5 batches after one untimed, in
 *     tasks per second. walls waits for each task in submission order and
 *     frees it; the peers wait in their own way (see each part). For walls
 *     also through walls_submit_batch(), 1,000 tasks a call, and one
 *     walls_wait_all().
 *  3. Process placement only, with 1 worker: how long a crashed worker
 *     takes to be replaced and serve again. One repetition submits a task
 *     that writes through NULL, waits for it (it must end WALLS_CRASHED),
 *     then does one empty round trip. The respawn figure is the median
 *     repetition minus the median empty round trip on the same pool, shown
 *     in its two parts too (the crash until its result; the next task,
 *     which waits for the replacement: the median of each, which need not
 *     add up to the whole's). Beside it, the median of this
 *     program's own fork() + _exit(0) + waitpid().
 *  4. A worker fed now and then: a 1-worker pool in threads and in
 *     processes, fed one empty task, then a nanosleep() of 20, 200 or
 *     2,000 us (longer in fact, by the timer's slack), for a second each.
 *     The worker's CPU time over that second (its thread's or its
 *     process's CPU clock, read by a task at each end), and the round
 *     trips: what a worker's waiting for work costs where tasks come
 *     apart.
 *  5. Uneven mixes (mix.c): the makespan of tasks of very different
 *     lengths in walls threads, processes and hybrid, beside one shared
 *     queue that every worker takes from.
 *  6. The ratios the project targets, each marked "met" or "missed" from
 *     the figures just measured.
 *
 * The peers are built when found at build time (GLib, libuv, oneTBB); a
 * missing one is named in its place.
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
 *     ./build/bench/bench_core           full counts (a minute or two)
 *     ./build/bench/bench_core --quick   fewer of everything: a smoke run
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <walls.h>

#include "core.h"

#define WALLS_CHECK(call) check_walls((call), #call)
#define STRICT_LAYERS                                                                        \
    (WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS | WALLS_LAYER_NET_NS |   \
     WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS | WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT)

static const struct counts full_counts = {"full", 1000, 10000, 1000000, 5, 50, 5, 1000};
static const struct counts quick_counts = {"quick", 200, 2000, 100000, 3, 20, 3, 300};

#ifndef HAVE_TBB
struct figures bench_tbb(const struct counts *c)
{
    (void)c;
    printf("\noneTBB task_group: not built (libtbb-dev or a C++ compiler missing)\n");
    return (struct figures){0};
}
#endif

/* ---- a bare fork ---- */

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
    printf("  load average %.2f at the start\n", load_average());
    printf("  walls        %s\n", walls_version());
    printf("  counts       %s: %u round trips after %u warm-up; %u batches of %lu tasks after "
           "one untimed; %u crashes; %u runs of each mix\n",
           c->name, c->round_trips, c->warmup, c->batches, c->tasks, c->respawns, c->mix_runs);
}

/* ---- targets ---- */

static void print_target(const char *what, double ratio, bool at_most, double target)
{
    bool met = at_most ? ratio <= target : ratio >= target;
    printf("  %-52s %6.2fx   target %s %.2fx   %s\n", what, ratio, at_most ? "<=" : ">=",
           target, met ? "met" : "missed");
}

static void print_target_na(const char *what, const char *why)
{
    printf("  %-52s %s\n", what, why);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_core [--quick]\n"
                "  --quick  fewer repetitions (2,000 round trips, 3 batches of 100,000 tasks,\n"
                "           20 crashes, 3 runs of each mix)\n");
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

    /* Read by libuv when it starts its threadpool, at the first uv_queue_work. */
    if (setenv("UV_THREADPOOL_SIZE", "2", 1) != 0) {
        fprintf(stderr, "bench_core: setenv: %s\n", strerror(errno));
        return 1;
    }
    printf("bench_core: walls beside a hand-written pool, GThreadPool, libuv and oneTBB "
           "(figures only)\n\n");
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

    bench_fed(c);

    struct figures hand = bench_handpool(c);
    struct figures glib = bench_glib(c);
    bench_libuv(c);
    struct figures tbb = bench_tbb(c);

    double worst[3];
    bench_mixes(c, worst);

    printf("\ntargets (round trips and throughputs compare medians)\n");
    print_target("walls threads throughput / hand-written pool's", thr.tput.med / hand.tput.med,
                 false, 2.0);
    if (tbb.tput.n)
        print_target("walls threads throughput / oneTBB task_group's",
                     thr.tput.med / tbb.tput.med, false, 1.0);
    else
        print_target_na("walls threads throughput / oneTBB task_group's", "n/a: not built");
    print_target("walls processes throughput / hand-written pool's",
                 proc.tput.med / hand.tput.med, false, 1.0);
    printf("  %-52s %6.2fx   %s\n", "walls threads, batch call / hand-written pool's",
           thr.tput_batch.med / hand.tput.med, "(more than single submits wanted)");
    printf("  %-52s %6.2fx   %s\n", "walls processes, batch call / hand-written pool's",
           proc.tput_batch.med / hand.tput.med, "(more than single submits wanted)");
    if (glib.rt.measured) {
        print_target("walls processes round trip / GThreadPool's",
                     proc.rt.median_us / glib.rt.median_us, true, 1.0);
        print_target("walls threads round trip / GThreadPool's",
                     thr.rt.median_us / glib.rt.median_us, true, 0.5);
    } else {
        print_target_na("walls round trips / GThreadPool's", "n/a: GThreadPool part not built");
    }
    printf("  %-52s %6.2fx   %s\n", "walls processes sleep trip / threads'",
           proc.rt_sleep.median_us / thr.rt_sleep.median_us,
           "(the waiter sleeps; 1.00x = a process wakes it as fast as a thread)");
    print_target("respawn / bare fork", resp.respawn_us / fork_lat.median_us, true, 1.5);
    static const char *const placements[3] = {"threads", "processes", "hybrid"};
    for (int p = 0; p < 3; p++) {
        char what[96];
        snprintf(what, sizeof what, "worst mix makespan, %s / shared queue's", placements[p]);
        print_target(what, worst[p], true, 1.05);
    }
    if (strict_ok) {
        print_target("strict-sandbox processes round trip / unsandboxed",
                     strict.rt.median_us / proc.rt.median_us, true, 1.1);
        printf("  %-52s %6.2fx\n", "strict-sandbox processes throughput / unsandboxed",
               strict.tput.med / proc.tput.med);
    } else {
        print_target_na("strict-sandbox processes round trip / unsandboxed",
                        "n/a: the kernel refuses part of the strict sandbox");
    }

    walls_fini();
    return 0;
}
