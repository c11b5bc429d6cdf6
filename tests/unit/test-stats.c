/*
 * test-stats.c - walls_pool_stats counts exactly: submitted, completed, by
 * status, in flight, queued and latencies, also when four threads submit at
 * once.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdint.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_stats_exact)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    walls_task *t[300];
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(walls_submit(pool, i % 3 ? t_echo : t_fail, "s", 1, &t[i]), 0);
    for (int i = 0; i < 300; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        walls_task_free(t[i]);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.submitted, 300);
    ck_assert_uint_eq(st.completed, 300);
    ck_assert_uint_eq(st.by_status[WALLS_OK], 200);
    ck_assert_uint_eq(st.by_status[WALLS_FAILED], 100);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_gt(st.latency_p50_ns, 0);
    ck_assert_uint_ge(st.latency_p99_ns, st.latency_p50_ns);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

struct mixed_args {
    walls_pool *pool;
    int seed;
};

static void *submit_mixed(void *arg)
{
    struct mixed_args *a = arg;
    walls_task *t[250];
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 250; i++) {
            int k = (a->seed + round * 250 + i) % 10;
            walls_fn *fn = k < 7 ? t_echo : k < 9 ? t_fail : t_overclaim;
            if (walls_submit(a->pool, fn, &k, sizeof k, &t[i]) != 0)
                return (void *)1;
        }
        for (int i = 0; i < 250; i++) {
            struct walls_result r;
            if (walls_wait(t[i], -1, &r) != 0)
                return (void *)2;
            walls_task_free(t[i]);
        }
    }
    return NULL;
}

START_TEST(test_stats_concurrent)
{
    /* 4 threads submit 2,500 tasks each: 7 in 10 succeed, 2 fail, 1 breaks
     * the output protocol. The counts must add up exactly. */
    walls_pool *pool = make_pool(placements[_i], 2);
    pthread_t th[4];
    struct mixed_args args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct mixed_args){pool, i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit_mixed, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        ck_assert_ptr_null(rc);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.submitted, 10000);
    ck_assert_uint_eq(st.completed, 10000);
    ck_assert_uint_eq(st.by_status[WALLS_OK], 7000);
    ck_assert_uint_eq(st.by_status[WALLS_FAILED], 2000);
    ck_assert_uint_eq(st.by_status[WALLS_PROTOCOL], 1000);
    uint64_t sum = 0;
    for (int s = 0; s <= WALLS_BROKEN; s++)
        sum += st.by_status[s];
    ck_assert_uint_eq(sum, 10000);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("both placements");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_stats_exact, 0, 2);
    tcase_add_loop_test(tc, test_stats_concurrent, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
