/*
 * peer_glib.c - GLib's GThreadPool (2 threads, not exclusive). Each
 * finished job is handed back through a GAsyncQueue, so a round trip waits
 * for its job and a batch for all of its jobs.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

#ifdef HAVE_GLIB
#include <glib.h>

struct glib_bench {
    GThreadPool *pool;
    GAsyncQueue *done; /* the worker pushes each finished job here */
};

/* Any non-NULL pointer will do as the job: neither queue accepts NULL. */
static int token;

static void empty(gpointer job, gpointer user_data)
{
    GAsyncQueue *done = user_data;
    g_async_queue_push(done, job);
}

static void push(struct glib_bench *g)
{
    GError *err = NULL;
    if (!g_thread_pool_push(g->pool, &token, &err)) {
        fprintf(stderr, "bench_core: g_thread_pool_push: %s\n", err ? err->message : "failed");
        exit(1);
    }
}

static void round_trip(void *ctx)
{
    struct glib_bench *g = ctx;
    push(g);
    g_async_queue_pop(g->done);
}

static void batch(void *ctx, unsigned long n)
{
    struct glib_bench *g = ctx;
    for (unsigned long i = 0; i < n; i++)
        push(g);
    for (unsigned long i = 0; i < n; i++)
        g_async_queue_pop(g->done);
}

struct figures bench_glib(const struct counts *c)
{
    printf("\nGLib %u.%u.%u GThreadPool, %d threads (exclusive=FALSE)\n", glib_major_version,
           glib_minor_version, glib_micro_version, WORKERS);
    struct glib_bench g;
    GError *err = NULL;
    g.done = g_async_queue_new();
    g.pool = g_thread_pool_new(empty, g.done, WORKERS, FALSE, &err);
    if (!g.pool) {
        fprintf(stderr, "bench_core: g_thread_pool_new: %s\n", err ? err->message : "failed");
        exit(1);
    }
    struct figures f = {0};
    f.rt = measure_round_trips(round_trip, &g, c);
    f.tput = measure_throughput(batch, &g, c);
    g_thread_pool_free(g.pool, FALSE, TRUE);
    g_thread_pool_stop_unused_threads();
    g_async_queue_unref(g.done);
    print_figures(&f, c);
    return f;
}

#else

struct figures bench_glib(const struct counts *c)
{
    (void)c;
    printf("\nGLib GThreadPool: not built (libglib2.0-dev missing)\n");
    return (struct figures){0};
}

#endif
