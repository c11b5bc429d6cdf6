/*
 * plugin-thread.c - a library whose constructor starts a thread that never
 * ends, allocating all the time: loaded into a re-executed fork server, it
 * makes that fork server a threaded process whose workers are forked while
 * the thread may hold the allocator's locks.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walls.h"

__attribute__((visibility("default"))) int plugin_thread_triple(struct walls_call *call);

static void *churn(void *arg)
{
    (void)arg;
    for (unsigned i = 0;; i++) {
        void *p = malloc(64 + (i % 4096));
        if (p)
            memset(p, (int)i, 64);
        free(p);
        /* The allocator's lock held a while, now and then. */
        if (i % 64 == 0)
            malloc_trim(0);
        if (i % 4096 == 0) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

__attribute__((constructor)) static void start_churn(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) == 0)
        pthread_detach(t);
}

int plugin_thread_triple(struct walls_call *call)
{
    int v;
    if (call->in_len != sizeof v || call->out_cap < sizeof v)
        return 22;
    memcpy(&v, call->in, sizeof v);
    /* The worker's own allocations, after a fork from the threaded server. */
    char *p = malloc(4096);
    if (!p)
        return 12;
    memset(p, 1, 4096);
    free(p);
    v = 3 * v + 1;
    memcpy(call->out, &v, sizeof v);
    call->out_len = sizeof v;
    return 0;
}
