/*
 * test-wake.c - a thread that waits for one task in a worker process's
 * ring is woken by that worker itself (futex_waitv on the ring's
 * completion tail), and still woken whatever happens to the task meanwhile.
 *
 *  - Sleeping waits in processes and hybrid pools, many in a row: each
 *    returns its own task's answer.
 *  - A waited task moved to another worker while its waiter sleeps on the
 *    first one's ring: the waiter wakes when it finishes there, long before
 *    the task it queued behind.
 *  - A waited task whose worker crashes, and one cancelled: the waiter
 *    wakes with the outcome.
 *  - Several threads waiting for tasks of one ring at once.
 *  - A kernel (or a filter) without futex_waitv: waits work as before,
 *    through the supervisor.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

static const enum walls_placement where[2] = {WALLS_PROCESSES, WALLS_HYBRID};

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_sleeping_waits)
{
    walls_pool *pool = two_workers(where[_i]);
    /* Long enough that the waiter sleeps; one at a time and two at once. */
    for (int k = 0; k < 200; k++) {
        walls_task *t = submit_nap(pool, 1, k);
        expect_answer(t, 5000, k);
        walls_task_free(t);
    }
    for (int k = 0; k < 100; k++) {
        walls_task *a = submit_nap(pool, 2, k), *b = submit_nap(pool, 1, 1000 + k);
        expect_answer(a, 5000, k);
        expect_answer(b, 5000, 1000 + k);
        walls_task_free(a);
        walls_task_free(b);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_moved_while_waited)
{
    walls_pool *pool = two_workers(where[_i]);
    for (int round = 0; round < 4; round++) {
        /* One long task on each worker; then tasks that queue behind
         * them. Whatever waits behind the 4 s one moves to the other
         * worker once its 200 ms one is over: the waiter, asleep on the
         * first worker's ring, must hear of it. */
        walls_task *lng = submit_nap(pool, 4000, -1), *mid = submit_nap(pool, 200, -3);
        walls_task *sht[4];
        for (int k = 0; k < 4; k++)
            sht[k] = submit_nap(pool, 0, k);
        int64_t t0 = ms_now();
        for (int k = 0; k < 4; k++)
            expect_answer(sht[k], 3000, k);
        ck_assert_msg(ms_now() - t0 < 3000, "the short tasks waited for the long one");
        expect_answer(mid, 3000, -3);
        ck_assert_int_eq(walls_cancel(lng), 0);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(lng, 5000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_CANCELLED);
        for (int k = 0; k < 4; k++)
            walls_task_free(sht[k]);
        walls_task_free(lng);
        walls_task_free(mid);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_crash_and_cancel_wake_the_waiter)
{
    walls_pool *pool = two_workers(where[_i]);
    for (int k = 0; k < 5; k++) {
        walls_task *t = submit_nap(pool, 20, -2);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t, 5000, &r), 0);
        ck_assert_msg(r.status == WALLS_CRASHED, "ended %s", walls_status_name(r.status));
        walls_task_free(t);
        /* The replacement serves. */
        t = submit_nap(pool, 1, k);
        expect_answer(t, 5000, k);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

struct waiter {
    walls_task *task;
    int id;
    int ok;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct walls_result r;
    w->ok = walls_wait(w->task, 10000, &r) == 0 && r.status == WALLS_OK && r.out_len == sizeof(int) &&
            memcmp(r.out, &w->id, sizeof w->id) == 0;
    return NULL;
}

START_TEST(test_many_waiters)
{
    walls_pool *pool = two_workers(where[_i]);
    enum { N = 8 };
    for (int round = 0; round < 20; round++) {
        struct waiter w[N];
        pthread_t th[N];
        for (int k = 0; k < N; k++) {
            w[k] = (struct waiter){submit_nap(pool, 1 + k % 3, round * N + k), round * N + k, 0};
            ck_assert_int_eq(pthread_create(&th[k], NULL, wait_thread, &w[k]), 0);
        }
        for (int k = 0; k < N; k++) {
            ck_assert_int_eq(pthread_join(th[k], NULL), 0);
            ck_assert_msg(w[k].ok, "waiter %d of round %d got the wrong outcome", k, round);
            walls_task_free(w[k].task);
        }
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* In a child of its own (the library asks the kernel once per process):
 * futex_waitv refused with err, then sleeping waits in each placement. */
static void waits_without_waitv(int err)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), SCMP_SYS(futex_waitv), 0) != 0 ||
            seccomp_load(ctx) != 0)
            _exit(3);
        seccomp_release(ctx);
        /* A lost wake costs a waiter the rest of its nap (a second),
         * and the child this alarm. */
        alarm(20);
        for (int i = 0; i < 2; i++) {
            walls_pool *pool = two_workers(where[i]);
            for (int k = 0; k < 50; k++) {
                walls_task *t = submit_nap(pool, 1, k);
                struct walls_result r;
                if (walls_wait(t, 5000, &r) != 0 || r.status != WALLS_OK)
                    _exit(4);
                walls_task_free(t);
            }
            if (walls_pool_destroy(pool, 0) != 0)
                _exit(5);
        }
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ended with %#x",
                  status);
}

START_TEST(test_without_futex_waitv)
{
    /* The library has not asked the kernel yet: it asks under the filter. */
    waits_without_waitv(ENOSYS);
    waits_without_waitv(EPERM);
    /* Now it has, and was told yes: the children learn otherwise on their
     * first sleep, and must not lose the wake that sleep was marked for. */
    walls_pool *pool = two_workers(0);
    walls_task *t = submit_nap(pool, 20, 7);
    expect_answer(t, 5000, 7);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    waits_without_waitv(ENOSYS);
    waits_without_waitv(EPERM);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("wake");
    TCase *tc = tcase_create("wake");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_sleeping_waits, 0, 2);
    tcase_add_loop_test(tc, test_moved_while_waited, 0, 2);
    tcase_add_loop_test(tc, test_crash_and_cancel_wake_the_waiter, 0, 2);
    tcase_add_loop_test(tc, test_many_waiters, 0, 2);
    tcase_add_test(tc, test_without_futex_waitv);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
