/*
 * test-cancel.c - cancelling tasks: queued ones end as WALLS_CANCELLED, a
 * running one is killed with its process or (on a thread, which cannot be
 * stopped) refused with -EBUSY, a finished one gives -EALREADY, also when
 * nobody has harvested it yet: then no other task's process is killed for
 * it. The statistics count each outcome.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_cancel_pending)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 1000;
    walls_task *slow, *queued[40];
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &slow), 0);
    /* 40 behind it: some wait in the worker's ring, the rest in the queue. */
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(walls_submit(pool, t_echo, "q", 1, &queued[i]), 0);
    usleep(50000); /* let the slow one start */
    /* The queued ones first, while the slow one holds the only worker: none
     * of them can have started, so each ends at once. (Cancelling the slow
     * one first would let a replacement process start some of them.) */
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(walls_cancel(queued[i]), 0);
        ck_assert_int_eq(walls_wait(queued[i], 0, &r), 0);
        ck_assert_int_eq(r.status, WALLS_CANCELLED);
        ck_assert_int_eq(walls_cancel(queued[i]), -EALREADY);
        walls_task_free(queued[i]);
    }
    /* Running: a thread cannot be stopped; a process is killed for it. */
    bool threads = placements[_i] == WALLS_THREADS;
    ck_assert_int_eq(walls_cancel(slow), threads ? -EBUSY : 0);
    ck_assert_int_eq(walls_wait(slow, -1, &r), 0);
    ck_assert_int_eq(r.status, threads ? WALLS_OK : WALLS_CANCELLED);
    walls_task_free(slow);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.by_status[WALLS_CANCELLED], threads ? 40 : 41);
    ck_assert_uint_eq(st.by_status[WALLS_OK], threads ? 1 : 0);
    ck_assert_uint_eq(st.completed, 41);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_cancel_finished_unharvested)
{
    /* A finishes and nobody has looked; B runs. Cancelling A must say it is
     * over, and must not kill B's process. */
    walls_pool *pool = proc_pool(1);
    walls_task *a, *b;
    int ms = 300;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &a), 0);
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &b), 0);
    usleep(100000);
    ck_assert_int_eq(walls_cancel(a), -EALREADY);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(a, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(a);
    walls_task_free(b);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc = tcase_create("cancel");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_cancel_pending, 0, 2);
    tcase_add_test(tc, test_cancel_finished_unharvested);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
