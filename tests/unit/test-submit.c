/*
 * test-submit.c - submitting tasks and reading their results, in both
 * placements: outputs, failure codes, a second wait giving the same result,
 * the inline input limit (WALLS_INLINE_MAX), output claimed past out_cap
 * (WALLS_PROTOCOL, and the pool serves on), and a task freed while it runs.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_add_both)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    walls_task *tasks[50];
    for (int i = 0; i < 50; i++) {
        int v[2] = {i, 1000};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &tasks[i]), 0);
    }
    for (int i = 0; i < 50; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.out_len, sizeof(int));
        int sum;
        memcpy(&sum, r.out, sizeof sum);
        ck_assert_int_eq(sum, i + 1000);
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_failed_code)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_fail, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_FAILED);
    ck_assert_int_eq(r.code, 7);
    /* Waiting again gives the same result. */
    struct walls_result again;
    ck_assert_int_eq(walls_wait(t, 0, &again), 0);
    ck_assert_int_eq(again.status, WALLS_FAILED);
    ck_assert_int_eq(again.code, 7);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_inline_max)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    unsigned char big[WALLS_INLINE_MAX + 1];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    walls_task *t = NULL;
    /* Past WALLS_IO_MAX: refused before a byte is read. */
    ck_assert_int_eq(walls_submit(pool, t_echo, big, WALLS_IO_MAX + 1, &t), -E2BIG);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(walls_submit(pool, t_echo, big, WALLS_INLINE_MAX, &t), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, WALLS_INLINE_MAX);
    ck_assert_int_eq(memcmp(r.out, big, WALLS_INLINE_MAX), 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_overclaimed_output)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_overclaim, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_msg(r.status == WALLS_PROTOCOL, "status %s", walls_status_name(r.status));
    walls_task_free(t);
    /* The pool still serves. */
    ck_assert_int_eq(walls_submit(pool, t_echo, "x", 1, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_free_running_task)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 100;
    walls_task *t, *u;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    usleep(20000);
    walls_task_free(t); /* runs on; its result is dropped */
    ck_assert_int_eq(walls_wait(t, 0, &r), -EBADF);
    ck_assert_int_eq(walls_submit(pool, t_echo, "k", 1, &u), 0);
    ck_assert_int_eq(walls_wait(u, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(u);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("submit");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_add_both, 0, 2);
    tcase_add_loop_test(tc, test_failed_code, 0, 2);
    tcase_add_loop_test(tc, test_inline_max, 0, 2);
    tcase_add_loop_test(tc, test_overclaimed_output, 0, 2);
    tcase_add_loop_test(tc, test_free_running_task, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
