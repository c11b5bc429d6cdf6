/*
 * test-contract.c - the contract of the calls on pools and tasks: each kind
 * of bad input (NULL, zero, oversized, unknown flags and levels, reserved
 * fields, contradictory options) is refused with its documented code, and
 * stale handles (a freed task, a destroyed pool, garbage) are refused with
 * -EBADF, never touched.
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

START_TEST(test_bad_create)
{
    walls_pool *pool = NULL;
    struct walls_pool_opts o;
    ck_assert_int_eq(walls_pool_create(NULL, NULL), -EINVAL);
    memset(&o, 0, sizeof o);
    o.placement = (enum walls_placement)17;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.workload = (enum walls_workload)9;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.needs = 1u << 7;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.threads = 1u << 30;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.processes = 100000;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.task_timeout_ms = -5;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.max_output = WALLS_IO_MAX + 1;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.reserved[3] = 1;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.restart_limit = 100001;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.restart_window_ms = -1;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.restart_backoff_ms = -1;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.lost_retries = 101;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    memset(&o, 0, sizeof o);
    o.placement = WALLS_HYBRID;
    o.threads = 65;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    /* Untrusted work never runs in threads or under a weaker sandbox. */
    memset(&o, 0, sizeof o);
    o.needs = WALLS_NEED_UNTRUSTED;
    o.placement = WALLS_THREADS;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    o.placement = WALLS_PROCESSES;
    o.sandbox = WALLS_SANDBOX_SECCOMP;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    /* Permission groups: known bits, STRICT only, paths only with files. */
    static const char *const rel[] = {"etc", NULL};
    static const char *const none[] = {NULL};
    static const char *const many[] = {"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", NULL};
    static const char *const ok[] = {"/etc", NULL};
    const struct walls_pool_opts bad[] = {
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT, .sandbox_allow = 4},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_SECCOMP,
         .sandbox_allow = WALLS_ALLOW_NETWORK},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT, .sandbox_fallback = 2},
        {.placement = WALLS_THREADS, .sandbox_fallback = 1},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT,
         .sandbox_allow = WALLS_ALLOW_READ_FILES},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT,
         .sandbox_allow = WALLS_ALLOW_READ_FILES, .sandbox_read_paths = none},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT,
         .sandbox_allow = WALLS_ALLOW_READ_FILES, .sandbox_read_paths = rel},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT,
         .sandbox_allow = WALLS_ALLOW_READ_FILES, .sandbox_read_paths = many},
        {.placement = WALLS_PROCESSES, .sandbox = WALLS_SANDBOX_STRICT, .sandbox_read_paths = ok},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(walls_pool_create(&pool, &bad[i]) == -EINVAL, "case %zu", i);
    ck_assert_ptr_null(pool);
}
END_TEST

START_TEST(test_bad_submit_wait)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t = NULL;
    struct walls_result r;
    size_t idx;
    ck_assert_int_eq(walls_submit(NULL, t_echo, NULL, 0, &t), -EINVAL);
    ck_assert_int_eq(walls_submit(pool, NULL, NULL, 0, &t), -EINVAL);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, NULL), -EINVAL);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 5, &t), -EINVAL);
    ck_assert_int_eq(walls_submit(pool, t_echo, "x", (size_t)-1, &t), -E2BIG);
    ck_assert_int_eq(walls_submit((walls_pool *)(uintptr_t)0xdeadbeef, t_echo, NULL, 0, &t),
                     -EBADF);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(walls_wait(NULL, -1, &r), -EINVAL);
    ck_assert_int_eq(walls_submit(pool, t_echo, "ab", 2, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, NULL), -EINVAL);
    ck_assert_int_eq(walls_wait(t, -2, &r), -EINVAL);
    ck_assert_int_eq(walls_wait_any(NULL, 1, -1, &idx), -EINVAL);
    ck_assert_int_eq(walls_wait_any(&t, 0, -1, &idx), -EINVAL);
    ck_assert_int_eq(walls_wait_any(&t, 1, -1, NULL), -EINVAL);
    walls_task *with_null[2] = {t, NULL};
    ck_assert_int_eq(walls_wait_any(with_null, 2, -1, &idx), -EINVAL);
    ck_assert_int_eq(walls_cancel(NULL), -EINVAL);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(walls_cancel(t), -EALREADY);
    walls_task_free(t);
    /* Stale task handle: refused, never touched. */
    ck_assert_int_eq(walls_wait(t, -1, &r), -EBADF);
    ck_assert_int_eq(walls_cancel(t), -EBADF);
    ck_assert_int_eq(walls_wait_any(&t, 1, 0, &idx), -EBADF);
    walls_task_free(t); /* freeing twice: nothing */
    walls_task_free(NULL);
    /* Made-up handles, including ones whose index names a task entry never
     * handed out: refused, never followed. */
    for (uint64_t g = 1; g < 6; g++)
        for (uint64_t index = 1; index < 5000; index += 499) {
            walls_task *forged = (walls_task *)(uintptr_t)(g << 32 | index);
            if (forged == t)
                continue;
            ck_assert_int_eq(walls_wait(forged, 0, &r), -EBADF);
            ck_assert_int_eq(walls_cancel(forged), -EBADF);
            walls_task_free(forged);
            walls_pool *fp = (walls_pool *)(uintptr_t)(g << 32 | (index % 64 + 1));
            if (fp != pool)
                ck_assert_int_eq(walls_pool_stats(fp, &(struct walls_stats){0}), -EBADF);
        }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_use_after_destroy)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t;
    struct walls_result r;
    struct walls_stats st;
    char buf[64];
    ck_assert_int_eq(walls_submit(pool, t_echo, "z", 1, &t), 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 7), -EINVAL); /* unknown flag */
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* The drained task's result outlives the pool. */
    ck_assert_int_eq(walls_wait(t, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, 1);
    walls_task_free(t);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &t), -EBADF);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), -EBADF);
    ck_assert_int_eq(walls_pool_stats(pool, &st), -EBADF);
    ck_assert_int_eq(walls_pool_fd(pool), -EBADF);
    ck_assert_int_eq(walls_pool_explain(pool, buf, sizeof buf), -EBADF);
    ck_assert_int_eq(walls_pool_destroy(NULL, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(NULL, 0x40), -EINVAL); /* flags checked first */
    ck_assert_int_eq(walls_pool_stats(NULL, &st), -EINVAL);
    ck_assert_int_eq(walls_pool_fd(NULL), -EINVAL);
    ck_assert_int_eq(walls_pool_explain(NULL, buf, sizeof buf), -EINVAL);
}
END_TEST

START_TEST(test_explain_args)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    char small[8];
    ck_assert_int_eq(walls_pool_explain(pool, NULL, 10), -EINVAL);
    ck_assert_int_eq(walls_pool_explain(pool, small, 0), -EINVAL);
    int full = walls_pool_explain(pool, small, sizeof small);
    ck_assert_int_gt(full, (int)sizeof small);
    ck_assert_uint_eq(strlen(small), sizeof small - 1); /* truncated, terminated */
    ck_assert_int_eq(walls_pool_stats(pool, NULL), -EINVAL);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("contract");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bad_submit_wait, 0, 2);
    tcase_add_loop_test(tc, test_use_after_destroy, 0, 2);
    tcase_add_loop_test(tc, test_explain_args, 0, 2);
    tcase_add_test(tc, test_bad_create);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
