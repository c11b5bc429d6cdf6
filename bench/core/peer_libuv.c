/*
 * peer_libuv.c - libuv's threadpool through uv_queue_work
 * (UV_THREADPOOL_SIZE=2, set by main before the first work). A round trip
 * runs the loop until the after-work callback ran; a batch queues every
 * work, then runs the loop until all after-work callbacks ran.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

#ifdef HAVE_LIBUV
#include <uv.h>

struct libuv_bench {
    uv_loop_t loop;
    unsigned long completed; /* after-work callbacks run */
    uv_work_t one;
};

static void check(const char *what, int rc)
{
    if (rc < 0) {
        fprintf(stderr, "bench_core: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void empty(uv_work_t *work)
{
    (void)work;
}

static void after(uv_work_t *work, int status)
{
    check("after_work_cb", status);
    struct libuv_bench *u = work->loop->data;
    u->completed++;
}

static void round_trip(void *ctx)
{
    struct libuv_bench *u = ctx;
    unsigned long before = u->completed;
    check("uv_queue_work", uv_queue_work(&u->loop, &u->one, empty, after));
    while (u->completed == before)
        uv_run(&u->loop, UV_RUN_ONCE);
}

static void batch(void *ctx, unsigned long n)
{
    struct libuv_bench *u = ctx;
    uv_work_t *works = xcalloc(n, sizeof *works);
    unsigned long target = u->completed + n;
    for (unsigned long i = 0; i < n; i++)
        check("uv_queue_work", uv_queue_work(&u->loop, &works[i], empty, after));
    uv_run(&u->loop, UV_RUN_DEFAULT);
    if (u->completed != target) {
        fprintf(stderr, "bench_core: libuv loop stopped after %lu of %lu works\n",
                n - (target - u->completed), n);
        exit(1);
    }
    free(works);
}

struct figures bench_libuv(const struct counts *c)
{
    printf("\nlibuv %s uv_queue_work, UV_THREADPOOL_SIZE=%s\n", uv_version_string(),
           getenv("UV_THREADPOOL_SIZE"));
    struct libuv_bench *u = xcalloc(1, sizeof *u);
    check("uv_loop_init", uv_loop_init(&u->loop));
    u->loop.data = u;
    struct figures f = {0};
    f.rt = measure_round_trips(round_trip, u, c);
    f.tput = measure_throughput(batch, u, c);
    check("uv_loop_close", uv_loop_close(&u->loop));
    free(u);
    uv_library_shutdown();
    print_figures(&f, c);
    return f;
}

#else

struct figures bench_libuv(const struct counts *c)
{
    (void)c;
    printf("\nlibuv threadpool: not built (libuv1-dev missing)\n");
    return (struct figures){0};
}

#endif
