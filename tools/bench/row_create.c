/*
 * row_create.c - row 1, creating workers. The seed says a process takes
 * 1-10 ms to create and a thread 10-100 us. Measured: an empty thread
 * created and joined; a small fork, and one with 1 GiB resident (a fork
 * copies page tables, so it grows with the parent); posix_spawn of a new
 * program; and a walls pool of one worker process started and stopped.
 */
#define _GNU_SOURCE
#include "row.h"
#include "svg.h"
#include "task.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *empty_thread(void *arg)
{
    return arg;
}

static int time_thread(double *ns)
{
    pthread_t t;
    double t0 = now_ns();
    int rc = pthread_create(&t, NULL, empty_thread, NULL);
    if (rc != 0)
        return -rc;
    pthread_join(t, NULL);
    *ns = now_ns() - t0;
    return 0;
}

static int time_spawn(double *ns)
{
    char arg0[] = "true";
    char *argv[] = {arg0, NULL};
    pid_t pid;
    double t0 = now_ns();
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (rc != 0)
        return -rc;
    int st;
    rc = wait_child(pid, &st);
    *ns = now_ns() - t0;
    if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        rc = -ENOEXEC;
    return rc;
}

static int time_pool_start(double *ns)
{
    walls_pool *pool;
    double t0 = now_ns();
    int rc = pool_open(&pool, WALLS_PROCESSES, 1, 0, 0);
    if (rc != 0)
        return rc;
    rc = walls_pool_destroy(pool, 0);
    *ns = now_ns() - t0;
    return rc;
}

/* n samples of fn after one warm-up call. */
static int sample(int (*fn)(double *), int n, struct summary *s)
{
    double *v = calloc((size_t)n, sizeof *v);
    if (!v)
        return -ENOMEM;
    double warm;
    int rc = fn(&warm);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = fn(&v[i]);
    if (rc == 0)
        *s = summarize(v, n);
    free(v);
    return rc;
}

/* This process's resident set, from /proc/self/statm. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    long size, resident;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

/* Forks with 1 GiB resident, when the machine has room for it. */
static bool fork_big(const struct bench *b, struct row *r, struct summary *big)
{
    static const char *const name = "fork_1gib", *const label = "fork, 1 GiB (4K pages)";
    long avail = meminfo_kib("MemAvailable");
    if (avail >= 0 && avail < 1536L * 1024) {
        row_text(r, 0, name, label, "skipped: %ld MiB free", avail / 1024);
        return false;
    }
    size_t len = 1024u * MIB;
    char *mem = malloc(len);
    if (!mem) {
        row_text(r, 0, name, label, "skipped: malloc failed");
        return false;
    }
    /* 4 KiB pages, as most heaps have; touched through a volatile pointer
     * so no store can be optimised away. */
    madvise(mem, len, MADV_NOHUGEPAGE);
    volatile char *touch = mem;
    for (size_t off = 0; off < len; off += 4096)
        touch[off] = 1;
    long rss = rss_kib();
    int rc = sample(time_fork, reps(b, 10, 40), big);
    free(mem);
    if (rss >= 0)
        row_value(r, "rss_during_fork_1gib", "resident set during 1 GiB forks", "KiB",
                  one_value((double)rss));
    if (rc != 0) {
        row_failure(r, 0, name, label, "fork failed: %s", strerror(-rc));
        return false;
    }
    row_time(r, 0, name, label, *big);
    return true;
}

static void verdict(struct row *r, struct summary thr, struct summary frk, bool have_big,
                    struct summary big)
{
    row_basis(r, "thread_create_join");
    row_basis(r, "fork_small");
    bool thr_ok = thr.med >= 10e3 && thr.med <= 100e3;
    bool frk_ok = frk.med >= 1e6 && frk.med <= 10e6;
    char t[48], f[48], g[48];
    fmt_time(t, sizeof t, thr.med);
    fmt_time(f, sizeof f, frk.med);
    fmt_time(g, sizeof g, big.med);
    if (thr_ok && frk_ok)
        row_verdict(r, V_HOLDS, "thread %s, fork %s", t, f);
    else if (!thr_ok && !frk_ok)
        row_verdict(r, V_FAILS, "thread took %s, fork %s", t, f);
    else if (!frk_ok)
        row_verdict(r, V_FAILS, "fork took %s%s%s", f, have_big ? "; with 1 GiB " : "",
                    have_big ? g : "");
    else
        row_verdict(r, V_FAILS, "thread took %s", t);
}

static void run(const struct bench *b, struct row *r)
{
    struct summary thr = {0}, frk = {0}, big = {0}, spn = {0}, wst = {0};
    int rc;

    if ((rc = sample(time_thread, reps(b, 200, 1000), &thr)) != 0) {
        row_verdict(r, V_ERROR, "pthread_create failed: %s", strerror(-rc));
        return;
    }
    row_time(r, 0, "thread_create_join", "thread create+join", thr);
    if ((rc = sample(time_fork, reps(b, 60, 300), &frk)) != 0) {
        row_verdict(r, V_ERROR, "fork failed: %s", strerror(-rc));
        return;
    }
    row_time(r, 0, "fork_small", "fork+_exit+waitpid", frk);
    bool have_big = fork_big(b, r, &big);
    if ((rc = sample(time_spawn, reps(b, 60, 300), &spn)) == 0)
        row_time(r, 0, "posix_spawn_true", "posix_spawn /bin/true", spn);
    else
        row_failure(r, 0, "posix_spawn_true", "posix_spawn /bin/true", "failed: %s", strerror(-rc));
    if ((rc = sample(time_pool_start, reps(b, 15, 60), &wst)) == 0)
        row_time(r, 0, "walls_process_pool_1", "walls 1-process pool up+down", wst);
    else
        row_failure(r, 0, "walls_process_pool_1", "walls 1-process pool up+down", "failed: %s",
                    walls_strerror(rc));
    verdict(r, thr, frk, have_big, big);
}

/* Each way of starting a worker beside the ranges the seed gives. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    static const struct series shown[] = {
        {"thread_create_join", COLOR_THREADS, NULL},
        {"fork_small", COLOR_PROCESSES, NULL},
        {"fork_1gib", COLOR_PROCESSES, NULL},
        {"posix_spawn_true", COLOR_PROCESSES, NULL},
        {"walls_process_pool_1", COLOR_PROCESSES, NULL},
    };
    static const struct band seed[] = {
        {10e3, 100e3, COLOR_THREADS, "seed: threads 10-100 us"},
        {1e6, 10e6, COLOR_PROCESSES, "seed: processes 1-10 ms"},
    };
    (void)b;
    svg_figure_dots(f, "Time to create a worker", r, shown, sizeof shown / sizeof shown[0],
                    AXIS_LOG, seed, sizeof seed / sizeof seed[0]);
}

const struct bench_row row_create = {
    .number = 1,
    .title = "creating workers",
    .seed_claim = "processes: 1-10 ms to create; threads: 10-100 us",
    .run = run,
    .chart = chart,
};
