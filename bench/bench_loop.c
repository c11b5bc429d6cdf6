/*
 * bench_loop.c - the round trip of an empty task for a program whose event
 * loop sleeps in epoll on walls_pool_fd() and takes results with
 * walls_pool_collect(): submit, wait for the descriptor, collect, free.
 *
 *   bench_loop [threads|processes|hybrid|strict] [ROUND_TRIPS]
 *
 * Linked against the shared library, so that one binary measures two
 * builds of it side by side (LD_LIBRARY_PATH=OTHER_BUILD bench_loop ...).
 * Figures only.
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

static int empty_task(struct walls_call *call)
{
    (void)call;
    return 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_loop: %s: %s (%s)\n", what, walls_strerror(rc), walls_last_error());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "processes";
    int n = argc > 2 ? atoi(argv[2]) : 5000;
    struct walls_pool_opts o = {0};
    if (strcmp(which, "threads") == 0) {
        o.placement = WALLS_THREADS, o.threads = 2;
    } else if (strcmp(which, "processes") == 0 || strcmp(which, "strict") == 0) {
        o.placement = WALLS_PROCESSES, o.processes = 2;
        o.sandbox = strcmp(which, "strict") == 0 ? WALLS_SANDBOX_STRICT : WALLS_SANDBOX_NONE;
    } else if (strcmp(which, "hybrid") == 0) {
        o.placement = WALLS_HYBRID, o.processes = 1, o.threads = 2;
    } else {
        fprintf(stderr, "usage: bench_loop [threads|processes|hybrid|strict] [ROUND_TRIPS]\n");
        return 2;
    }
    if (n < 10)
        n = 10;
    walls_pool *pool;
    check(walls_pool_create(&pool, &o), "walls_pool_create");
    int fd = walls_pool_fd(pool);
    check(fd, "walls_pool_fd");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("bench_loop: epoll");
        return 1;
    }
    int warm = n / 10;
    double *us = calloc((size_t)n, sizeof *us);
    if (!us)
        return 1;
    for (int i = 0; i < warm + n; i++) {
        double t0 = now_ns();
        walls_task *task, *got[4];
        check(walls_submit(pool, empty_task, NULL, 0, &task), "walls_submit");
        for (size_t k = 0; k == 0;) {
            if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR) {
                perror("bench_loop: epoll_wait");
                return 1;
            }
            check(walls_pool_collect(pool, got, 4, &k), "walls_pool_collect");
        }
        walls_task_free(task);
        if (i >= warm)
            us[i - warm] = (now_ns() - t0) / 1e3;
    }
    qsort(us, (size_t)n, sizeof *us, by_value);
    printf("%-9s loop round trip  median %7.2f us  p90 %7.2f us  p99 %7.2f us  (%d after %d)\n",
           which, us[n / 2], us[n * 9 / 10], us[n * 99 / 100], n, warm);
    free(us);
    close(ep);
    check(walls_pool_destroy(pool, 0), "walls_pool_destroy");
    return 0;
}
