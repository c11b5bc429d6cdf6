/*
 * peer_tbb.cpp - oneTBB's task_group in an arena of 2 threads: the caller
 * is one of them, as TBB runs it (it submits, then runs tasks itself while
 * it waits). Throughput only: a round trip through a task_group whose
 * waiter may run the task itself would not cross threads.
 */
#include <cstdio>
#include <cstdlib>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

extern "C" {
#include "core.h"
}

static void batch(void *ctx, unsigned long n)
{
    auto *arena = static_cast<tbb::task_arena *>(ctx);
    arena->execute([n] {
        tbb::task_group group;
        for (unsigned long i = 0; i < n; i++)
            group.run([] {});
        group.wait();
    });
}

extern "C" struct figures bench_tbb(const struct counts *c)
{
    std::printf("\noneTBB %d.%d task_group, task_arena of %d threads (the caller included)\n",
                TBB_VERSION_MAJOR, TBB_VERSION_MINOR, WORKERS);
    tbb::task_arena arena(WORKERS);
    struct figures f = {};
    f.tput = measure_throughput(batch, &arena, c);
    print_figures(&f, c);
    return f;
}
