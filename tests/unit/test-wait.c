/*
 * test-wait.c - waiting: walls_wait with a timeout that runs out (0 and a
 * few milliseconds), one too large to add to the clock, and walls_wait_any
 * reporting the task that finished, in both placements.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>

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

static Suite *suite(void)
{
    Suite *s = suite_create("wait");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_wait_timeout_and_any, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
