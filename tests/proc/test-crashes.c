/*
 * test-crashes.c - process placement: a crash fails only its own task.
 * A thousand tasks with ten crashes of five kinds (signals, exit, stack
 * overflow, SIGKILL) each end with their own cause while the rest succeed;
 * a worker killed from outside is replaced; tasks queued behind a crash in
 * one worker's ring run on its replacement; a task that signals its
 * process group kills its own worker only; a timer a task leaves armed
 * does not kill the next task of its worker.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

struct crash_kind {
    walls_fn *fn;
    enum walls_status status;
    int code;
};

START_TEST(test_thousand_with_ten_crashes)
{
    static const struct crash_kind kinds[] = {
        {t_segv, WALLS_CRASHED, SIGSEGV},  {t_abort, WALLS_CRASHED, SIGABRT},
        {t_exit3, WALLS_EXITED, 3},        {t_stack, WALLS_CRASHED, SIGSEGV},
        {t_sigkill, WALLS_KILLED, SIGKILL},
    };
    walls_pool *pool = proc_pool(2);
    enum { N = 1000 };
    static walls_task *tasks[N];
    int expect_kind[N];
    for (int i = 0; i < N; i++) {
        expect_kind[i] = -1;
        walls_fn *fn = t_add;
        if (i % 100 == 37) {
            expect_kind[i] = (i / 100) % 5;
            fn = kinds[expect_kind[i]].fn;
        }
        int v[2] = {i, 1};
        ck_assert_int_eq(walls_submit(pool, fn, v, sizeof v, &tasks[i]), 0);
    }
    int ok = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        if (expect_kind[i] < 0) {
            ck_assert_msg(r.status == WALLS_OK, "task %d: %s/%d", i, walls_status_name(r.status),
                          r.code);
            int sum;
            memcpy(&sum, r.out, sizeof sum);
            ck_assert_int_eq(sum, i + 1);
            ok++;
        } else {
            const struct crash_kind *k = &kinds[expect_kind[i]];
            ck_assert_msg(r.status == k->status && r.code == k->code,
                          "task %d: got %s/%d, want %s/%d", i, walls_status_name(r.status), r.code,
                          walls_status_name(k->status), k->code);
            crashed++;
        }
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(ok, 990);
    ck_assert_int_eq(crashed, 10);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 10);
    ck_assert_uint_eq(st.by_status[WALLS_OK], 990);
    /* And it keeps serving. */
    for (int i = 0; i < 100; i++) {
        int v[2] = {i, 2};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &tasks[i]), 0);
    }
    for (int i = 0; i < 100; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_outside_kill_and_replacement)
{
    walls_pool *pool = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    int first;
    memcpy(&first, r.out, sizeof first);
    walls_task_free(t);
    int ms = 5000;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    usleep(100000);
    ck_assert_int_eq(kill(first, SIGTERM), 0);
    ck_assert_int_eq(walls_wait(t, 10000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_KILLED);
    ck_assert_int_eq(r.code, SIGTERM);
    walls_task_free(t);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    int second;
    memcpy(&second, r.out, sizeof second);
    ck_assert_int_ne(first, second);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Signals its own process group, as a careless library might. */
static int t_kill_group(struct walls_call *call)
{
    (void)call;
    return kill(0, SIGTERM) == 0 ? 0 : 1;
}

/* A task that signals its process group reaches its own worker alone:
 * not the fork server every pool's workers come from, nor another pool's
 * workers. Loop: 0 processes, 1 hybrid. */
START_TEST(test_group_signal_stays_inside)
{
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES, .processes = 1};
    walls_pool *a, *b;
    ck_assert_int_eq(walls_pool_create(&a, &o), 0);
    ck_assert_int_eq(walls_pool_create(&b, &o), 0);
    int ms = 1000;
    walls_task *busy, *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(b, t_sleep_ms, &ms, sizeof ms, &busy), 0);
    usleep(50000);
    ck_assert_int_eq(walls_submit(a, t_kill_group, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 10000, &r), 0);
    ck_assert_msg(r.status == WALLS_KILLED && r.code == SIGTERM, "the signalling task ended %s %d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    ck_assert_int_eq(walls_wait(busy, 10000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "the other pool's task ended %s %d",
                  walls_status_name(r.status), r.code);
    walls_task_free(busy);
    /* Both pools serve on, pool a on a replacement. */
    walls_pool *pools[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        int v[2] = {i, 1};
        ck_assert_int_eq(walls_submit(pools[i], t_add, v, sizeof v, &t), 0);
        ck_assert_int_eq(walls_wait(t, 10000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "pool %d afterwards: %s", i,
                      walls_status_name(r.status));
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(a, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(b, 0), 0);
}
END_TEST

START_TEST(test_queued_behind_crash_survive)
{
    /* One worker, a crash in the middle of its ring: the tasks queued behind
     * it were never taken and must run on the replacement. */
    walls_pool *pool = proc_pool(1);
    walls_task *t[20];
    for (int i = 0; i < 20; i++) {
        int v[2] = {i, 0};
        ck_assert_int_eq(walls_submit(pool, i == 5 ? t_segv : t_add, v, sizeof v, &t[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        if (i == 5) {
            ck_assert_int_eq(r.status, WALLS_CRASHED);
            ck_assert_int_eq(r.code, SIGSEGV);
        } else {
            ck_assert_msg(r.status == WALLS_OK, "task %d: %s", i, walls_status_name(r.status));
        }
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Leaves a timer armed and returns: alarm() (_i = 0), or a 50 ms
 * interval timer of real, virtual or profiling time. */
static int t_leave_timer(struct walls_call *call)
{
    int which;
    memcpy(&which, call->in, sizeof which);
    if (which == 0) {
        alarm(1);
        return 0;
    }
    static const int kinds[] = {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF};
    struct itimerval it = {{0, 50000}, {0, 50000}};
    return setitimer(kinds[which - 1], &it, NULL) == 0 ? 0 : 1;
}

/* Runs 1.2 s of the clock, half of it on the CPU. */
static int t_run_a_while(struct walls_call *call)
{
    (void)call;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 600);
    struct timespec rest = {0, 600000000};
    while (nanosleep(&rest, &rest) != 0)
        ;
    return 0;
}

/* A timer one task leaves armed must not kill the next task of its
 * worker. Before, the next one ended WALLS_KILLED by SIGALRM (or
 * SIGVTALRM, SIGPROF). */
START_TEST(test_timer_left_armed)
{
    walls_pool *pool = proc_pool(1);
    walls_task *a, *b;
    struct walls_result r;
    int which = _i;
    ck_assert_int_eq(walls_submit(pool, t_leave_timer, &which, sizeof which, &a), 0);
    ck_assert_int_eq(walls_submit(pool, t_run_a_while, NULL, 0, &b), 0);
    ck_assert_int_eq(walls_wait(a, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "timer %d: the next task ended %s, code %d", which,
                  walls_status_name(r.status), r.code);
    walls_task_free(a);
    walls_task_free(b);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("crashes");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_thousand_with_ten_crashes);
    tcase_add_test(tc, test_outside_kill_and_replacement);
    tcase_add_test(tc, test_queued_behind_crash_survive);
    tcase_add_loop_test(tc, test_group_signal_stays_inside, 0, 2);
    tcase_add_loop_test(tc, test_timer_left_armed, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
