/*
 * peer_handpool.c - the thread pool a C programmer writes by hand: one
 * mutex, a FIFO list of jobs with one malloc per job, a have-work condition
 * variable the workers sleep on and an all-idle one the waiter sleeps on.
 * It is the baseline of the throughput figures and, having one queue that
 * every worker takes from, the fair scheduler the mixes compare with.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

struct job {
    void (*fn)(void *);
    void *arg;
    struct job *next;
};

struct handpool {
    pthread_mutex_t mu;
    pthread_cond_t have_work, all_idle;
    struct job *head, *tail;
    unsigned busy; /* jobs taken and not yet finished */
    bool stop;
    unsigned n;
    pthread_t threads[];
};

static void *worker(void *arg)
{
    struct handpool *hp = arg;
    pthread_mutex_lock(&hp->mu);
    for (;;) {
        while (!hp->stop && !hp->head)
            pthread_cond_wait(&hp->have_work, &hp->mu);
        if (!hp->head)
            break;
        struct job *job = hp->head;
        hp->head = job->next;
        if (!hp->head)
            hp->tail = NULL;
        hp->busy++;
        pthread_mutex_unlock(&hp->mu);
        job->fn(job->arg);
        free(job);
        pthread_mutex_lock(&hp->mu);
        if (--hp->busy == 0 && !hp->head)
            pthread_cond_broadcast(&hp->all_idle);
    }
    pthread_mutex_unlock(&hp->mu);
    return NULL;
}

struct handpool *handpool_start(unsigned workers)
{
    struct handpool *hp = xcalloc(1, sizeof *hp + workers * sizeof(pthread_t));
    pthread_mutex_init(&hp->mu, NULL);
    pthread_cond_init(&hp->have_work, NULL);
    pthread_cond_init(&hp->all_idle, NULL);
    for (hp->n = 0; hp->n < workers; hp->n++)
        if (pthread_create(&hp->threads[hp->n], NULL, worker, hp) != 0) {
            fprintf(stderr, "bench_core: pthread_create failed\n");
            exit(1);
        }
    return hp;
}

void handpool_submit(struct handpool *hp, void (*fn)(void *), void *arg)
{
    struct job *job = malloc(sizeof *job);
    if (!job) {
        fprintf(stderr, "bench_core: out of memory\n");
        exit(1);
    }
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    pthread_mutex_lock(&hp->mu);
    if (hp->tail)
        hp->tail->next = job;
    else
        hp->head = job;
    hp->tail = job;
    pthread_cond_signal(&hp->have_work);
    pthread_mutex_unlock(&hp->mu);
}

void handpool_wait_all(struct handpool *hp)
{
    pthread_mutex_lock(&hp->mu);
    while (hp->head || hp->busy)
        pthread_cond_wait(&hp->all_idle, &hp->mu);
    pthread_mutex_unlock(&hp->mu);
}

void handpool_stop(struct handpool *hp)
{
    pthread_mutex_lock(&hp->mu);
    hp->stop = true;
    pthread_cond_broadcast(&hp->have_work);
    pthread_mutex_unlock(&hp->mu);
    for (unsigned i = 0; i < hp->n; i++)
        pthread_join(hp->threads[i], NULL);
    pthread_cond_destroy(&hp->all_idle);
    pthread_cond_destroy(&hp->have_work);
    pthread_mutex_destroy(&hp->mu);
    free(hp);
}

static void empty(void *arg)
{
    (void)arg;
}

static void round_trip(void *ctx)
{
    handpool_submit(ctx, empty, NULL);
    handpool_wait_all(ctx);
}

static void batch(void *ctx, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        handpool_submit(ctx, empty, NULL);
    handpool_wait_all(ctx);
}

struct figures bench_handpool(const struct counts *c)
{
    printf("\nhand-written pool (mutex, malloc'd FIFO, have-work and all-idle condvars), "
           "%d threads\n",
           WORKERS);
    struct handpool *hp = handpool_start(WORKERS);
    struct figures f = {0};
    f.rt = measure_round_trips(round_trip, hp, c);
    f.tput = measure_throughput(batch, hp, c);
    handpool_stop(hp);
    print_figures(&f, c);
    return f;
}
