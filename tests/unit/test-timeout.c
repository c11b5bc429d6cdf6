/*
 * test-timeout.c - task time limits: a process task looping forever ends as
 * WALLS_TIMEOUT, never before its limit, and the pool serves the next task;
 * the pool's default limit, a task's own override (none), and bad limits.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <time.h>

#include "helpers.h"
#include "walls.h"

static int spin_forever(struct walls_call *call)
{
    (void)call;
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

START_TEST(test_timeout_process)
{
    /* A task looping forever with a 200 ms limit ends as WALLS_TIMEOUT,
     * and the pool serves the next task. */
    walls_pool *pool = make_pool(WALLS_PROCESSES, 1);
    struct walls_task_opts to = {.timeout_ms = 200};
    walls_task *t, *next;
    struct walls_result r;
    /* The clock starts before the submit, surely before the task does:
     * whatever the machine's pace, the task cannot end earlier than this
     * plus its limit if the limit is kept. */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_int_eq(walls_submit_ex(pool, spin_forever, NULL, 0, &to, &t), 0);
    ck_assert_int_eq(walls_submit(pool, t_echo, "n", 1, &next), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_msg(r.status == WALLS_TIMEOUT, "status %s", walls_status_name(r.status));
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 200); /* never before its limit */
    ck_assert_int_eq(walls_wait(next, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    walls_task_free(next);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_timeout_default_and_override)
{
    struct walls_pool_opts o = {.placement = placements[_i], .processes = 2, .threads = 2,
                                .task_timeout_ms = 150};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    /* Far longer than the limit, so that a starved machine still sees the
     * limit pass first. */
    int ms = 2000;
    walls_task *limited, *unlimited, *quick;
    struct walls_task_opts none = {.timeout_ms = -1};
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &limited), 0);
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &none, &unlimited), 0);
    ck_assert_int_eq(walls_wait(limited, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_TIMEOUT, "status %s", walls_status_name(r.status));
    /* The pool keeps serving, also while a timed-out thread still sleeps. */
    ck_assert_int_eq(walls_submit(pool, t_echo, "q", 1, &quick), 0);
    ck_assert_int_eq(walls_wait(quick, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(unlimited, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    struct walls_task_opts bad = {.timeout_ms = -2};
    walls_task *t;
    ck_assert_int_eq(walls_submit_ex(pool, t_echo, NULL, 0, &bad, &t), -EINVAL);
    bad = (struct walls_task_opts){.reserved[1] = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_echo, NULL, 0, &bad, &t), -EINVAL);
    walls_task_free(limited);
    walls_task_free(unlimited);
    walls_task_free(quick);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("timeout");
    TCase *tc = tcase_create("timeout");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_timeout_process);
    tcase_add_loop_test(tc, test_timeout_default_and_override, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
