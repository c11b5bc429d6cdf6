/*
 * test-wait.c - waiting: walls_wait with a timeout that runs out (0 and a
 * few milliseconds), one too large to add to the clock, and walls_wait_any
 * reporting the task that finished, in both placements; and waiters woken
 * for their own tasks only, never missed, in every placement.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes (2
 * hybrid where the test says so).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_wait_timeout_and_any)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    int slow_ms = 400, fast_ms = 20;
    walls_task *t[2];
    struct walls_result r;
    size_t idx = 99;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &slow_ms, sizeof slow_ms, &t[0]), 0);
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &fast_ms, sizeof fast_ms, &t[1]), 0);
    ck_assert_int_eq(walls_wait(t[0], 0, &r), -ETIMEDOUT);
    ck_assert_int_eq(walls_wait(t[0], 10, &r), -ETIMEDOUT);
    /* A timeout too large to add to the clock is as good as forever. */
    ck_assert_int_eq(walls_wait(t[1], INT64_MAX / 1000, &r), 0);
    ck_assert_int_eq(walls_wait_any(t, 2, -1, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    ck_assert_int_eq(walls_wait(t[0], -1, &r), 0);
    ck_assert_int_eq(walls_wait_any(t, 2, 0, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    walls_task_free(t[0]);
    walls_task_free(t[1]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins for in (an int) microseconds; out: when it ended (int64 ns). */
static int t_spin_stamp(struct walls_call *call)
{
    int us;
    if (call->in_len != sizeof us || call->out_cap < sizeof(int64_t))
        return 1;
    memcpy(&us, call->in, sizeof us);
    int64_t until = mono_ns() + (int64_t)us * 1000;
    while (mono_ns() < until)
        ;
    int64_t end = mono_ns();
    memcpy(call->out, &end, sizeof end);
    call->out_len = sizeof end;
    return 0;
}

#define WAITERS 3
#define ROUND_TASKS 80 /* more than two rings hold: some wait in the pool's queue */
#define ROUNDS 40

struct waiter {
    pthread_t thread;
    pthread_barrier_t *start, *done;
    walls_task *task;    /* this round's task */
    int delay_us;        /* how long after the round starts it waits */
    int64_t late_ns;     /* the worst wake-up after its task ended */
    int failures;
    bool quit;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    for (;;) {
        pthread_barrier_wait(w->start);
        if (w->quit)
            return NULL;
        int64_t until = mono_ns() + (int64_t)w->delay_us * 1000;
        while (mono_ns() < until)
            ;
        struct walls_result r;
        int64_t end;
        if (walls_wait(w->task, -1, &r) != 0 || r.status != WALLS_OK || r.out_len != sizeof end) {
            w->failures++;
        } else {
            memcpy(&end, r.out, sizeof end);
            int64_t late = mono_ns() - end;
            if (late > w->late_ns)
                w->late_ns = late;
        }
        pthread_barrier_wait(w->done);
    }
}

/* Several threads each sleep until one task finishes, among many others
 * finishing around them, some still queued when the wait starts, with
 * waits and completions racing, while the main thread submits a second
 * wave (a submit consumes finished tasks where it needs ring slots, so it
 * may be the one that finds a waiter's task done). A waiter is woken only
 * for its own task (or the pool changing), so a missed wake-up would show
 * as a sleep of a whole second, the longest a waiter sleeps before it
 * looks again. _i: 0 threads, 1 processes, 2 hybrid, 3 threads with one
 * worker (one ring, always full while the waves last), 4 threads with one
 * worker per usable CPU (while at least that many tasks are in the rings,
 * waiters sleep at once rather than spin: wait.c's crowded()). */
START_TEST(test_waiters_woken_for_their_tasks)
{
    walls_pool *pool;
    if (_i < 2) {
        pool = make_pool(placements[_i], 2);
    } else if (_i == 3) {
        pool = make_pool(WALLS_THREADS, 1);
    } else if (_i == 4) {
        int cpus = walls_cpu_count();
        ck_assert_int_gt(cpus, 0);
        pool = make_pool(WALLS_THREADS, (unsigned)cpus);
    } else {
        struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2};
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    }
    pthread_barrier_t start, done;
    pthread_barrier_init(&start, NULL, WAITERS + 1);
    pthread_barrier_init(&done, NULL, WAITERS + 1);
    struct waiter w[WAITERS];
    memset(w, 0, sizeof w);
    for (int k = 0; k < WAITERS; k++) {
        w[k].start = &start;
        w[k].done = &done;
        ck_assert_int_eq(pthread_create(&w[k].thread, NULL, waiter_main, &w[k]), 0);
    }
    unsigned seed = 12345u + (unsigned)_i;
    walls_task *tasks[2 * ROUND_TASKS];
    int us[2 * ROUND_TASKS];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < ROUND_TASKS; i++) {
            us[i] = 5 + rand_r(&seed) % 150;
            ck_assert_int_eq(walls_submit(pool, t_spin_stamp, &us[i], sizeof us[i], &tasks[i]), 0);
        }
        for (int k = 0; k < WAITERS; k++) {
            /* The last waiter takes one of the last tasks: still queued. */
            int pick = k == WAITERS - 1 ? ROUND_TASKS - 1 - rand_r(&seed) % 8
                                        : rand_r(&seed) % ROUND_TASKS;
            w[k].task = tasks[pick];
            w[k].delay_us = rand_r(&seed) % 2000;
        }
        pthread_barrier_wait(&start);
        for (int i = ROUND_TASKS; i < 2 * ROUND_TASKS; i++) {
            us[i] = 5 + rand_r(&seed) % 40;
            ck_assert_int_eq(walls_submit(pool, t_spin_stamp, &us[i], sizeof us[i], &tasks[i]), 0);
        }
        pthread_barrier_wait(&done);
        ck_assert_int_eq(walls_wait_all(tasks, 2 * ROUND_TASKS, -1), 0);
        for (int i = 0; i < 2 * ROUND_TASKS; i++)
            walls_task_free(tasks[i]);
    }
    for (int k = 0; k < WAITERS; k++)
        w[k].quit = true;
    pthread_barrier_wait(&start);
    int64_t worst = 0;
    for (int k = 0; k < WAITERS; k++) {
        pthread_join(w[k].thread, NULL);
        ck_assert_int_eq(w[k].failures, 0);
        if (w[k].late_ns > worst)
            worst = w[k].late_ns;
    }
    /* Generous for a loaded machine, and far below the second a missed
     * wake-up costs. */
    ck_assert_msg(worst < 600000000, "a waiter woke %lld ms after its task ended",
                  (long long)(worst / 1000000));
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("wait");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_wait_timeout_and_any, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("woken for their own tasks");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_waiters_woken_for_their_tasks, 0, 5);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
