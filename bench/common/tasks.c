/*
 * tasks.c - for benchmarks that measure a pool's own cost: a task that
 * does nothing, a task that dies of SIGSEGV, and the check that ends a
 * benchmark program when a walls call it cannot go on without fails.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <walls.h>

int empty_task(struct walls_call *call)
{
    (void)call;
    return 0;
}

/* Both the pointer and what it points to are volatile, so the compiler can
 * neither see that it is NULL nor drop the store. */
int crash_task(struct walls_call *call)
{
    (void)call;
    volatile int *volatile p = NULL;
    *p = 1;
    raise(SIGSEGV);
    return 0;
}

void check_walls(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s (%d)\n", program_invocation_short_name, what,
                walls_strerror(rc), rc);
        exit(1);
    }
}
