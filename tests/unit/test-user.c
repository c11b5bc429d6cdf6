/*
 * test-user.c - walls_task_opts.user: the caller's pointer comes back from
 * walls_task_user() whatever became of the task (done, failed, timed out,
 * crashed, cancelled), also for a task found through walls_pool_collect;
 * a NULL or freed handle gives NULL and says why.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "helpers.h"
#include "walls.h"

struct request {
    int id;
};

static walls_task *submit_with(walls_pool *pool, walls_fn *fn, const void *in, size_t len,
                               void *user, int64_t timeout_ms)
{
    struct walls_task_opts o = {.user = user, .timeout_ms = timeout_ms};
    walls_task *t;
    ck_assert_int_eq(walls_submit_ex(pool, fn, in, len, &o, &t), 0);
    return t;
}

START_TEST(test_user_survives)
{
    bool threads = placements[_i] == WALLS_THREADS;
    walls_pool *pool = make_pool(placements[_i], 2);
    int fd = walls_pool_fd(pool);
    ck_assert_int_ge(fd, 0);
    struct request req[5] = {{0}, {1}, {2}, {3}, {4}};
    int ms = 2000;
    walls_task *t[5];
    t[0] = submit_with(pool, t_echo, NULL, 0, &req[0], 0);
    t[1] = submit_with(pool, t_fail, NULL, 0, &req[1], 0);
    t[2] = submit_with(pool, t_sleep_ms, &ms, sizeof ms, &req[2], 100); /* times out */
    /* A crash in a thread would end the test program. */
    t[3] = threads ? submit_with(pool, t_echo, NULL, 0, &req[3], 0)
                   : submit_with(pool, t_segv, NULL, 0, &req[3], 0);
    walls_task *plain;
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &plain), 0);
    ck_assert_ptr_null(walls_task_user(plain));
    struct walls_result r;
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(walls_wait(t[k], -1, &r), 0);
        ck_assert_ptr_eq(walls_task_user(t[k]), &req[k]);
    }
    ck_assert_int_eq(walls_wait(t[2], 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_TIMEOUT);
    ck_assert_int_eq(walls_wait(t[3], 0, &r), 0);
    ck_assert_int_eq(r.status, threads ? WALLS_OK : WALLS_CRASHED);
    /* Collected from the pool's list, each maps back to its request. */
    bool seen[5] = {false};
    walls_task *got[8];
    size_t n, total = 0;
    for (int round = 0; round < 100 && total < 4; round++) {
        ck_assert_int_eq(walls_pool_collect(pool, got, 8, &n), 0);
        for (size_t k = 0; k < n; k++) {
            struct request *q = walls_task_user(got[k]);
            if (!q)
                continue; /* the plain one */
            ck_assert(!seen[q->id]);
            seen[q->id] = true;
            total++;
        }
        if (total < 4)
            ck_assert_int_eq(walls_wait(plain, -1, &r), 0);
    }
    ck_assert_uint_eq(total, 4);
    for (int k = 0; k < 4; k++)
        walls_task_free(t[k]);
    walls_task_free(plain);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_user_cancelled_and_bad_handles)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    struct request a = {7}, b = {8};
    int ms = 300;
    walls_task *slow = submit_with(pool, t_sleep_ms, &ms, sizeof ms, &a, 0);
    walls_task *queued = submit_with(pool, t_echo, NULL, 0, &b, 0);
    ck_assert_int_eq(walls_cancel(queued), 0);
    ck_assert_ptr_eq(walls_task_user(queued), &b);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(slow, -1, &r), 0);
    ck_assert_ptr_eq(walls_task_user(slow), &a);
    walls_task_free(queued);
    walls_task_free(slow);
    ck_assert_ptr_null(walls_task_user(NULL));
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "NULL"));
    ck_assert_ptr_null(walls_task_user(slow)); /* freed */
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "freed"));
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("user");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_user_survives, 0, 2);
    tcase_add_loop_test(tc, test_user_cancelled_and_bad_handles, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
