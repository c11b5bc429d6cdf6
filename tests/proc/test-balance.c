/*
 * test-balance.c - tasks do not wait in one worker's queue while another
 * worker of the pool idles: tasks that have not started move to the idle
 * worker, in every placement, and each still ends exactly once.
 *
 *  - A long task, then short ones behind it: every short one finishes
 *    while the long one still runs (without moving, half of them would
 *    wait for it).
 *  - Short tasks, a long one and short ones again, in one burst after the
 *    pool warmed up on tiny tasks: the short ones behind the long one move
 *    to the other worker even though it sleeps by then (the engine's
 *    clock, not a worker running dry, moves them).
 *  - A worker stopped by an operator while idle: what is dealt to it, its
 *    first task included, moves to the other worker.
 *  - A hostile worker that turns the slots the host took back from it
 *    into queued ones again: the host believes one run of each task, the
 *    one in the lane it moved to; the liar is killed, and the pool serves.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes, 2 hybrid.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "mailbox.h"
#include "walls.h"

#define NSHORT 12

static const enum walls_placement where[3] = {WALLS_THREADS, WALLS_PROCESSES, WALLS_HYBRID};

START_TEST(test_short_ones_pass_a_long_one)
{
    walls_pool *pool = two_workers(where[_i]);
    walls_task *lng = submit_nap(pool, 3000, -1), *sht[NSHORT];
    for (int k = 0; k < NSHORT; k++)
        sht[k] = submit_nap(pool, 20, k);
    /* On the other worker alone they take 240 ms. */
    for (int k = 0; k < NSHORT; k++)
        expect_answer(sht[k], 2000, k);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(lng, 0, &r), -ETIMEDOUT);
    expect_answer(lng, -1, -1);
    for (int k = 0; k < NSHORT; k++)
        walls_task_free(sht[k]);
    walls_task_free(lng);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_stuck_behind_a_sleeping_worker)
{
    walls_pool *pool = two_workers(where[_i]);
    /* Tiny tasks first, so that the pool packs the next ones onto the
     * worker that keeps up while the other sleeps. */
    for (int k = 0; k < 2000; k++) {
        walls_task *t = submit_nap(pool, 0, k);
        expect_answer(t, -1, k);
        walls_task_free(t);
    }
    walls_task *before[3], *lng, *after[5];
    for (int k = 0; k < 3; k++)
        before[k] = submit_nap(pool, 0, k);
    lng = submit_nap(pool, 3000, -1);
    for (int k = 0; k < 5; k++)
        after[k] = submit_nap(pool, 0, 100 + k);
    for (int k = 0; k < 3; k++)
        expect_answer(before[k], 2000, k);
    for (int k = 0; k < 5; k++)
        expect_answer(after[k], 2000, 100 + k);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(lng, 0, &r), -ETIMEDOUT);
    expect_answer(lng, -1, -1);
    for (int k = 0; k < 3; k++)
        walls_task_free(before[k]);
    for (int k = 0; k < 5; k++)
        walls_task_free(after[k]);
    walls_task_free(lng);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* For 500 ms, turns every slot of its ring the host took back (CANCELLED)
 * into a queued one again, so that its worker runs those tasks too once
 * this one returns. Answers how many slots it turned. */
static int hostile_requeue(struct walls_call *call)
{
    struct walls__mailbox *mb = worker_mailbox();
    if (!mb || call->out_cap < sizeof(int))
        return 1;
    int turned = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (unsigned s = 0; s < WALLS__RING_SLOTS; s++) {
            uint32_t cancelled = WALLS__SLOT_CANCELLED;
            turned += __atomic_compare_exchange_n(&mb->rq_slots[s].state, &cancelled,
                                                  WALLS__SLOT_QUEUED, false, __ATOMIC_SEQ_CST,
                                                  __ATOMIC_SEQ_CST);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 500);
    memcpy(call->out, &turned, sizeof turned);
    call->out_len = sizeof turned;
    return 0;
}

/* n naps of no time, one after another, each answering its id from
 * first on: the pool serves. */
static void serves_on(walls_pool *pool, int n, int first)
{
    for (int k = 0; k < n; k++) {
        walls_task *t = submit_nap(pool, 0, first + k);
        expect_answer(t, 5000, first + k);
        walls_task_free(t);
    }
}

START_TEST(test_hostile_requeue)
{
    walls_pool *pool = proc_pool(2);
    walls_task *sht[NSHORT];
    int turned = 0;
    /* Whether the host takes slots back from the liar's ring depends on
     * when the other worker runs dry: tried until it happens. */
    for (int attempt = 0; attempt < 10 && turned == 0; attempt++) {
        walls_task *h;
        ck_assert_int_eq(walls_submit(pool, hostile_requeue, NULL, 0, &h), 0);
        for (int k = 0; k < NSHORT; k++)
            sht[k] = submit_nap(pool, 20, k);
        /* Each short task ends once, with its own answer: from the worker
         * the host moved it to, whatever the liar runs afterwards. */
        for (int k = 0; k < NSHORT; k++) {
            expect_answer(sht[k], 5000, k);
            walls_task_free(sht[k]);
        }
        struct walls_result r;
        ck_assert_int_eq(walls_wait(h, 5000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "the hostile task ended %s",
                      walls_status_name(r.status));
        memcpy(&turned, r.out, sizeof turned);
        walls_task_free(h);
    }
    ck_assert_msg(turned > 0, "no slot was taken back from the hostile worker in 10 tries: "
                              "nothing tested");
    /* Its worker then runs tasks that are no longer its own: it is killed
     * for the first it reports, and replaced. The pool serves on. */
    struct walls_stats st = {0};
    for (int k = 0; k < 500 && st.restarts == 0; k++) {
        walls_task *t = submit_nap(pool, 10, 1000 + k);
        expect_answer(t, 5000, 1000 + k);
        walls_task_free(t);
        ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    }
    ck_assert_uint_ge(st.restarts, 1);
    serves_on(pool, 10, 2000);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Its worker's pid, after 5 ms: two at once run in two workers. */
static int slow_pid(struct walls_call *call)
{
    usleep(5000);
    return t_pid(call);
}

/* A worker stopped by an operator (SIGSTOP) while idle: the tasks dealt
 * to it, the first one included, which it never starts, move to the other
 * worker; before, the first waited until the worker was continued.
 * _i = 0 processes, 1 hybrid (two processes of one thread). */
START_TEST(test_stopped_worker)
{
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                .processes = 2, .threads = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    pid_t first = pid_from(pool, t_pid), other = first;
    for (int k = 0; k < 200 && other == first; k++) {
        walls_task *t[2];
        for (int j = 0; j < 2; j++)
            ck_assert_int_eq(walls_submit(pool, slow_pid, NULL, 0, &t[j]), 0);
        for (int j = 0; j < 2; j++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[j], 10000, &r), 0);
            pid_t p;
            memcpy(&p, r.out, sizeof p);
            if (p != first)
                other = p;
            walls_task_free(t[j]);
        }
    }
    ck_assert_msg(other != first, "the pool showed one worker only");
    ck_assert_int_eq(kill(first, SIGSTOP), 0);
    usleep(20000);
    walls_task *t[6];
    for (int k = 0; k < 6; k++)
        t[k] = submit_nap(pool, 20, k);
    for (int k = 0; k < 6; k++)
        expect_answer(t[k], 3000, k);
    ck_assert_int_eq(kill(first, SIGCONT), 0);
    for (int k = 0; k < 6; k++)
        walls_task_free(t[k]);
    serves_on(pool, 4, 100);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("balance");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_short_ones_pass_a_long_one, 0, 3);
    tcase_add_loop_test(tc, test_stuck_behind_a_sleeping_worker, 0, 3);
    tcase_add_test(tc, test_hostile_requeue);
    tcase_add_loop_test(tc, test_stopped_worker, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
