/*
 * bench_common.h - what `walls bench` and the programs under bench/ share:
 * the clock, summaries of samples, the formatting of times, timing a bare
 * fork, a ping-pong between two threads or two processes, copying data
 * through pipes to forked workers, the simplest tasks, and facts about the
 * machine.
 *
 * The library is internal to the build: the walls command and the bench
 * programs link it, nothing installs it. Functions that can fail return 0
 * or a negative errno and print nothing.
 */
#ifndef WALLS_BENCH_COMMON_H
#define WALLS_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spin.h"

/* ---- time and statistics (stats.c) ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
double now_ns(void);

/* The median, minimum and maximum of n samples, and the 10th and 90th
 * percentiles (nearest rank) that say how wide their middle is. */
struct summary {
    double med, min, max;
    int n;
    double p10, p90;
};

/*
 * Sorts v in place and summarizes it. The median of an even count is the
 * mean of the two middle samples. n <= 0 gives a summary of zeros.
 */
struct summary summarize(double *v, int n);

/* A single measured value as a summary of one sample. */
struct summary one_value(double v);

/* The nearest-rank percentile p (0-100) of n sorted samples. */
double percentile(const double *sorted, int n, double p);

/*
 * A spread is wide, and its median likely to differ in another run, when
 * the 90th percentile is more than NOISY_RATIO times the 10th: most samples
 * disagree, not just an outlier (a machine that shares its CPUs gives every
 * long series a few). It takes at least two samples to have a spread; with
 * fewer than ten, the percentiles are the extremes.
 */
#define NOISY_RATIO 3.0
bool summary_noisy(struct summary s);

/* ---- formatting (format.c) ---- */

/* A time in ns with three significant digits and its unit: "21.4 us". */
void fmt_time(char *buf, size_t len, double ns);

/* A time without trailing zeros, as an axis labels it: "20 us", "2.5 ms". */
void fmt_time_short(char *buf, size_t len, double ns);

/* A time summary, min and max in the median's unit: "21.4 us (18.9-40.2)". */
void fmt_summary(char *buf, size_t len, struct summary s);

/* ---- child processes (children.c) ---- */

/* waitpid() that retries on EINTR; status may be NULL. */
int wait_child(pid_t pid, int *status);

/* One fork() whose child calls _exit(0), and its waitpid(): the time of all three. */
int time_fork(double *ns);

/* ---- round trips between two threads or two processes (pingpong.c) ---- */

enum pingpong_kind {
    PINGPONG_MUTEX,         /* two threads, a mutex and a condition variable */
    PINGPONG_FUTEX,         /* two threads, a private futex */
    PINGPONG_PIPE,          /* two processes, a pipe each way */
    PINGPONG_SOCKET,        /* two processes, a Unix socketpair */
    PINGPONG_SHARED_FUTEX,  /* two processes, a futex on a MAP_SHARED page */
};

/* Whether the partner of this kind is a forked process rather than a thread. */
bool pingpong_between_processes(enum pingpong_kind kind);

/*
 * Times batches of iters round trips after one untimed batch, and
 * summarizes the time per round trip over the batches. Forks the partner
 * for the process kinds.
 */
int pingpong_measure(enum pingpong_kind kind, int iters, int batches, struct summary *s);

/* ---- copying data through pipes (pipe_copy.c) ---- */

#define PIPE_COPY_MAX_WORKERS 8
#define PIPE_COPY_CHUNK (1u << 20)

/* The feeding side of one forked worker. */
struct pipe_copy_worker {
    int to_worker, from_worker;
    pid_t pid;
    int ntasks; /* tasks of the current round */
    int err;
    const struct pipe_copy *copy;
};

/*
 * Forked workers that each receive a task's bytes through a pipe, sum them
 * as 64-bit words, and send the sum back. Fill in the first five fields,
 * then pipe_copy_start(), any number of pipe_copy_round(), pipe_copy_stop().
 */
struct pipe_copy {
    const uint64_t *buf; /* borrowed: every task's bytes */
    size_t bytes;        /* a multiple of PIPE_COPY_CHUNK */
    uint64_t expect;     /* the sum every task must answer */
    uint64_t (*sum)(const uint64_t *words, size_t bytes);
    int nworkers;        /* 1 to PIPE_COPY_MAX_WORKERS */
    int started;
    bool failed;
    struct pipe_copy_worker workers[PIPE_COPY_MAX_WORKERS];
};

/* Forks the workers. On failure the ones started are stopped again. */
int pipe_copy_start(struct pipe_copy *copy);

/*
 * One round: ntasks tasks spread over the workers, each worker fed by its
 * own thread; ns is the time from the first byte written to the last sum
 * read. A wrong sum fails the round with -EPROTO.
 */
int pipe_copy_round(struct pipe_copy *copy, int ntasks, double *ns);

/* Closes the pipes and reaps the workers (killing them after a failure). */
void pipe_copy_stop(struct pipe_copy *copy);

/* ---- tasks and checks for benchmark programs (tasks.c) ---- */

struct walls_call;



/* A walls task that does nothing and returns 0. */
int empty_task(struct walls_call *call);

/* A walls task that writes through a NULL pointer: it ends WALLS_CRASHED, SIGSEGV. */
int crash_task(struct walls_call *call);

/* Unless rc is 0: prints "program: what: error" on stderr and exits 1. */
void check_walls(int rc, const char *what);

/* ---- the machine (machine.c) ---- */

/* The CPU model from /proc/cpuinfo, or "unknown". */
void cpu_model(char *buf, size_t len);

/* The transparent huge page mode ("always", "madvise", "never") or "unknown". */
void thp_mode(char *buf, size_t len);

/* The 1-minute load average, or -1. */
double load_average(void);

/* A /proc/meminfo field in KiB ("MemTotal", "MemAvailable"), or -1. */
long meminfo_kib(const char *key);

#endif
