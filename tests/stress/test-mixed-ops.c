/*
 * test-mixed-ops.c - four threads doing everything at once to one pool:
 * submitting (some tasks crash, sleep or time out), waiting, waiting for
 * any, cancelling, freeing running tasks, collecting, reading stats; then
 * destroying with WALLS_CANCEL while tasks are still out. Every task must
 * end with a valid status, nothing may hang, and the counts must add up.
 * Meant for the sanitizer builds as much as for the plain one.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

struct shared {
    walls_pool *pool;
    enum walls_placement placement;
    int stop;
    unsigned long submitted;
};

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *churn(void *arg)
{
    struct shared *sh = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    walls_task *held[16] = {0};
    while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
        unsigned k = (unsigned)rand_r(&seed) % 16;
        unsigned op = (unsigned)rand_r(&seed) % 10;
        struct walls_result r;
        if (!held[k]) {
            int ms = (int)((unsigned)rand_r(&seed) % 3);
            unsigned kind = (unsigned)rand_r(&seed) % 20;
            walls_fn *fn = t_sleep_ms;
            if (kind == 0 && sh->placement != WALLS_THREADS)
                fn = t_segv;
            else if (kind == 1)
                fn = t_fail;
            struct walls_task_opts to = {.timeout_ms = kind == 2 ? 1 : 0};
            if (kind == 2)
                ms = 50;
            int rc = walls_submit_ex(sh->pool, fn, &ms, sizeof ms, &to, &held[k]);
            if (rc != 0 && rc != -ESHUTDOWN && rc != -EBADF)
                return (void *)(uintptr_t)1;
            if (rc == 0)
                __atomic_fetch_add(&sh->submitted, 1, __ATOMIC_RELAXED);
            else
                held[k] = NULL;
            continue;
        }
        switch (op) {
        case 0:
            walls_cancel(held[k]);
            break;
        case 1: /* free whatever state it is in */
            walls_task_free(held[k]);
            held[k] = NULL;
            break;
        case 2: {
            size_t idx;
            walls_task *some[4];
            size_t n = 0;
            for (size_t i = 0; i < 16 && n < 4; i++)
                if (held[i])
                    some[n++] = held[i];
            if (walls_wait_any(some, n, 5, &idx) == 0 && idx >= n)
                return (void *)(uintptr_t)2;
            break;
        }
        case 3: {
            struct walls_stats st;
            if (walls_pool_stats(sh->pool, &st) != 0)
                break;
            if (st.completed > st.submitted)
                return (void *)(uintptr_t)3;
            break;
        }
        default:
            if (walls_wait(held[k], 20, &r) == 0) {
                if ((unsigned)r.status > WALLS_BROKEN)
                    return (void *)(uintptr_t)4;
                walls_task_free(held[k]);
                held[k] = NULL;
            }
            break;
        }
    }
    for (size_t i = 0; i < 16; i++)
        walls_task_free(held[i]);
    return NULL;
}

static void run(enum walls_placement placement)
{
    struct walls_pool_opts o = {.placement = placement, .processes = 2, .threads = 3};
    struct shared sh = {.placement = placement};
    ck_assert_int_eq(walls_pool_create(&sh.pool, &o), 0);
    int fd = walls_pool_fd(sh.pool);
    ck_assert_int_ge(fd, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn, &sh), 0);
    int64_t until = ms_now() + 2000;
    while (ms_now() < until) {
        walls_task *got[16];
        size_t n;
        ck_assert_int_eq(walls_pool_collect(sh.pool, got, 16, &n), 0);
        usleep(2000);
    }
    __atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        ck_assert_msg(rc == NULL, "worker thread failed with %lu", (unsigned long)(uintptr_t)rc);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(sh.pool, &st), 0);
    ck_assert_uint_eq(st.submitted, sh.submitted);
    uint64_t sum = 0;
    for (int s = 0; s <= WALLS_BROKEN; s++)
        sum += st.by_status[s];
    ck_assert_uint_eq(sum, st.completed);
    ck_assert_uint_ge(st.submitted, 100);
    ck_assert_int_eq(walls_pool_destroy(sh.pool, WALLS_CANCEL), 0);
    ck_assert_int_eq(wait_no_children(1000), 0);
}

START_TEST(test_mixed_threads)
{
    run(WALLS_THREADS);
}
END_TEST

START_TEST(test_mixed_processes)
{
    run(WALLS_PROCESSES);
}
END_TEST

START_TEST(test_mixed_hybrid)
{
    run(WALLS_HYBRID);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mixed operations");
    TCase *tc = tcase_create("mixed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mixed_threads);
    tcase_add_test(tc, test_mixed_processes);
    tcase_add_test(tc, test_mixed_hybrid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
