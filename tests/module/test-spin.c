/*
 * test-spin.c - how long a worker spins for its next request before it
 * sleeps (walls__worker_spin_next, worker_loop.c): the longest spin again
 * whenever a request came within it, shorter by a quarter for each that
 * came later, and nothing once that falls below the floor; and a worker
 * that stopped spinning still takes every request, however they come.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"
#include "worker.h"

#define LONGEST WALLS__WORKER_SPIN_NS

START_TEST(test_soon_keeps_the_longest)
{
    /* Came while spinning, or after the worker slept but within a spin. */
    ck_assert_int_eq(walls__worker_spin_next(LONGEST, 0), LONGEST);
    ck_assert_int_eq(walls__worker_spin_next(LONGEST, LONGEST), LONGEST);
    /* A worker that had stopped spinning spins again at once. */
    ck_assert_int_eq(walls__worker_spin_next(0, 1), LONGEST);
    ck_assert_int_eq(walls__worker_spin_next(0, LONGEST), LONGEST);
    ck_assert_int_eq(walls__worker_spin_next(LONGEST / 3, LONGEST / 2), LONGEST);
}
END_TEST

START_TEST(test_late_shortens_to_nothing)
{
    int64_t w = LONGEST;
    unsigned steps = 0;
    while (w > 0) {
        int64_t next = walls__worker_spin_next(w, LONGEST + 1);
        ck_assert_int_lt(next, w);
        if (next > 0) {
            ck_assert_int_eq(next, w - w / 4);
            ck_assert_int_ge(next, WALLS__WORKER_SPIN_FLOOR_NS);
        } else {
            ck_assert_int_lt(w - w / 4, WALLS__WORKER_SPIN_FLOOR_NS);
        }
        w = next;
        steps++;
    }
    /* 50 us to under 2 us by quarters: a dozen rounds, not hundreds. */
    ck_assert_uint_le(steps, 16);
    ck_assert_uint_ge(steps, 2);
    /* And it stays there while requests keep coming late. */
    ck_assert_int_eq(walls__worker_spin_next(0, 10 * LONGEST), 0);
    ck_assert_int_eq(walls__worker_spin_next(0, INT64_MAX), 0);
}
END_TEST

/* Requests further apart than the longest spin, then back to back, then
 * apart again: every one is taken and answered, in each placement, by a
 * worker that stopped spinning and one that spins again. */
static void feed_in_rounds(enum walls_placement placement)
{
    walls_pool *pool = make_pool(placement, 1);
    for (int i = 0; i < 120; i++) {
        if (i < 40 || i >= 80) {
            struct timespec gap = {0, 3 * LONGEST};
            nanosleep(&gap, NULL);
        }
        int in[2] = {i, 1}, sum;
        walls_task *t;
        ck_assert_int_eq(walls_submit(pool, t_add, in, sizeof in, &t), 0);
        struct walls_result res;
        ck_assert_int_eq(walls_wait(t, 10000, &res), 0);
        ck_assert_int_eq(res.status, WALLS_OK);
        ck_assert_uint_eq(res.out_len, sizeof sum);
        memcpy(&sum, res.out, sizeof sum);
        ck_assert_int_eq(sum, i + 1);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}

START_TEST(test_threads_fed_in_rounds)
{
    feed_in_rounds(WALLS_THREADS);
}
END_TEST

START_TEST(test_processes_fed_in_rounds)
{
    feed_in_rounds(WALLS_PROCESSES);
}
END_TEST

START_TEST(test_hybrid_fed_in_rounds)
{
    feed_in_rounds(WALLS_HYBRID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spin");
    TCase *tc = tcase_create("spin");
    tcase_add_test(tc, test_soon_keeps_the_longest);
    tcase_add_test(tc, test_late_shortens_to_nothing);
    tcase_add_test(tc, test_threads_fed_in_rounds);
    tcase_add_test(tc, test_processes_fed_in_rounds);
    tcase_add_test(tc, test_hybrid_fed_in_rounds);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
