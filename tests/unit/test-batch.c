/*
 * test-batch.c - walls_submit_batch: n tasks at once, all or none, each
 * with its own input and result; bad batches are refused whole, with the
 * bad element named, and submit nothing. walls_wait_all waits for all of
 * them, whichever order they finish in.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"
#include "walls.h"

#define N 300

static void no_task_submitted(walls_pool *pool, uint64_t before)
{
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.submitted, before);
}

START_TEST(test_batch_results)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    static int values[N];
    struct walls_input in[N];
    walls_task *t[N];
    for (int i = 0; i < N; i++) {
        values[i] = i * 7;
        in[i] = (struct walls_input){&values[i], sizeof values[i]};
    }
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, N, t), 0);
    ck_assert_int_eq(walls_wait_all(t, N, 20000), 0);
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 0, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.out_len, sizeof(int));
        int v;
        memcpy(&v, r.out, sizeof v);
        ck_assert_int_eq(v, i * 7);
        walls_task_free(t[i]);
    }
    /* A batch of one, and empty inputs. */
    struct walls_input empty = {NULL, 0};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, &empty, 1, t), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t[0], -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, 0);
    walls_task_free(t[0]);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.submitted, N + 1);
    ck_assert_uint_eq(st.by_status[WALLS_OK], N + 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_batch_bad_input)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int v = 1;
    static char big[WALLS_INLINE_MAX + 1];
    struct walls_input in[4] = {{&v, sizeof v}, {&v, sizeof v}, {&v, sizeof v}, {&v, sizeof v}};
    walls_task *t[4] = {NULL, NULL, NULL, NULL};
    ck_assert_int_eq(walls_submit_batch(NULL, t_echo, in, 4, t), -EINVAL);
    ck_assert_int_eq(walls_submit_batch(pool, NULL, in, 4, t), -EINVAL);
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, NULL, 4, t), -EINVAL);
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 4, NULL), -EINVAL);
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 0, t), -EINVAL);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "n is 0"));
    /* One bad element refuses the whole batch, and says which. */
    in[2] = (struct walls_input){NULL, 3};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 4, t), -EINVAL);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "in[2]"));
    in[2] = (struct walls_input){big, WALLS_IO_MAX + 1};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 4, t), -E2BIG);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "in[2]"));
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_null(t[i]); /* untouched */
    no_task_submitted(pool, 0);
    /* An input past the inline slot is taken. */
    in[2] = (struct walls_input){big, sizeof big};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 4, t), 0);
    ck_assert_int_eq(walls_wait_all(t, 4, -1), 0);
    for (int i = 0; i < 4; i++)
        walls_task_free(t[i]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* After destroy, a stale handle. */
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 1, t), -EBADF);
}
END_TEST

START_TEST(test_wait_all_args)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 300;
    walls_task *t[2];
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t[0]), 0);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &t[1]), 0);
    ck_assert_int_eq(walls_wait_all(NULL, 2, 0), -EINVAL);
    ck_assert_int_eq(walls_wait_all(t, 0, 0), -EINVAL);
    ck_assert_int_eq(walls_wait_all(t, 2, -2), -EINVAL);
    walls_task *with_null[2] = {t[0], NULL};
    ck_assert_int_eq(walls_wait_all(with_null, 2, 0), -EINVAL);
    /* The sleeper is not done: a poll and a short wait time out. */
    ck_assert_int_eq(walls_wait_all(t, 2, 0), -ETIMEDOUT);
    ck_assert_int_eq(walls_wait_all(t, 2, 10), -ETIMEDOUT);
    ck_assert_int_eq(walls_wait_all(t, 2, 10000), 0);
    walls_task_free(t[1]);
    ck_assert_int_eq(walls_wait_all(t, 2, 0), -EBADF);
    walls_task_free(t[0]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* walls_wait_all returns once every task finished, whichever order they
 * finish in: the last one first, the first one last, or mixed; with a
 * time limit that runs out between two finishes, it says so. */
START_TEST(test_wait_all_any_order)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    static const int orders[3][6] = {{120, 100, 80, 60, 40, 20},
                                     {20, 40, 60, 80, 100, 120},
                                     {60, 10, 120, 30, 90, 0}};
    for (int o = 0; o < 3; o++) {
        walls_task *t[6];
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &orders[o][i], sizeof(int), &t[i]), 0);
        ck_assert_int_eq(walls_wait_all(t, 6, -1), 0);
        for (int i = 0; i < 6; i++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[i], 0, &r), 0);
            ck_assert_int_eq(r.status, WALLS_OK);
            walls_task_free(t[i]);
        }
    }
    /* The last task finishes at once, the first after 400 ms: a 50 ms
     * limit runs out on the first. */
    int slow = 400, none = 0;
    walls_task *t[2];
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &slow, sizeof slow, &t[0]), 0);
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &none, sizeof none, &t[1]), 0);
    ck_assert_int_eq(walls_wait_all(t, 2, 50), -ETIMEDOUT);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t[1], -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait_all(t, 2, -1), 0);
    ck_assert_int_eq(walls_wait(t[0], 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t[0]);
    walls_task_free(t[1]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_batch_results, 0, 2);
    tcase_add_loop_test(tc, test_batch_bad_input, 0, 2);
    tcase_add_loop_test(tc, test_wait_all_args, 0, 2);
    tcase_add_loop_test(tc, test_wait_all_any_order, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
