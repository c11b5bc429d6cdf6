/*
 * test-cancel.c - cancelling tasks: queued ones end as WALLS_CANCELLED, a
 * running one is killed with its process or (on a thread, which cannot be
 * stopped) refused with -EBUSY, a finished one gives -EALREADY, also when
 * nobody has harvested it yet: then no other task's process is killed for
 * it; a destroy that cancels leaves finished tasks their results and
 * cancels the running one. The statistics count each outcome. A cancel that races the task's
 * end is believed: 0 means cancelled. Workers killed to cancel or time
 * out their tasks are no crash loop.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

START_TEST(test_destroy_cancel_blames_the_running_one)
{
    /* One worker (_i = 0 a process, 1 a hybrid process of one thread):
     * three tasks finish and nobody looks, one runs, one waits behind it.
     * A destroy with WALLS_CANCEL leaves the finished ones their results,
     * cancels the running one (not LOST) and the waiting one. */
    for (int round = 0; round < 3; round++) {
        struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                    .processes = 1, .threads = 1};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        walls_task *t[5];
        int ms = 20000;
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(walls_submit(pool, t_echo, "x", 1, &t[i]), 0);
        ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t[3]), 0);
        ck_assert_int_eq(walls_submit(pool, t_echo, "y", 1, &t[4]), 0);
        usleep(200000);
        ck_assert_int_eq(walls_pool_destroy(pool, WALLS_CANCEL), 0);
        static const enum walls_status want[5] = {WALLS_OK, WALLS_OK, WALLS_OK, WALLS_CANCELLED,
                                                  WALLS_CANCELLED};
        for (int i = 0; i < 5; i++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[i], 0, &r), 0);
            ck_assert_msg(r.status == want[i], "round %d: task %d ended %s, not %s", round, i,
                          walls_status_name(r.status), walls_status_name(want[i]));
            walls_task_free(t[i]);
        }
    }
}
END_TEST

START_TEST(test_cancel_queued_only)
{
    /* WALLS_CANCEL_QUEUED: a waiting task is cancelled, a running one is
     * left to finish (its worker not killed), in every placement. */
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *run, *wait;
    int ms = 300;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &run), 0);
    ck_assert_int_eq(walls_submit(pool, t_echo, "w", 1, &wait), 0);
    usleep(100000); /* run has started */
    ck_assert_int_eq(walls_cancel_ex(wait, WALLS_CANCEL_QUEUED), 0);
    ck_assert_int_eq(walls_cancel_ex(run, WALLS_CANCEL_QUEUED), -EBUSY);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "WALLS_CANCEL_QUEUED"));
    ck_assert_int_eq(walls_cancel_ex(run, 4), -EINVAL);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "unknown flags 0x4"));
    ck_assert_int_eq(walls_cancel_ex(NULL, WALLS_CANCEL_QUEUED), -EINVAL);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(wait, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CANCELLED);
    ck_assert_int_eq(walls_wait(run, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_cancel_ex(run, WALLS_CANCEL_QUEUED), -EALREADY);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 0);
    walls_task_free(run);
    walls_task_free(wait);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Busy for the microseconds it is given (an int). */
static int spin_us(struct walls_call *call)
{
    int us;
    if (call->in_len != sizeof us)
        return 1;
    memcpy(&us, call->in, sizeof us);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 < us);
    return 0;
}

static void spin_here(int us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

/* Cancels land just before, during and just after a short task's end,
 * hundreds of times, in process and hybrid pools: a 0 from walls_cancel
 * always means WALLS_CANCELLED (never a finished result), -EALREADY always
 * a finished one; and killing workers to cancel their tasks, hundreds of
 * times a second, never counts as a crash loop. Loop: 0 processes,
 * 1 hybrid. */
START_TEST(test_cancel_races_the_finish)
{
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                .processes = 1, .threads = _i ? 2 : 0};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    /* The cancels land within twice the task's round trip here (which a
     * sanitizer or a busy machine stretches), measured first: the median
     * of 21, so that the first ones (a worker starting) or a stall of the
     * machine do not stretch it past the task, where every cancel would
     * come too late. */
    int us = 200;
    int trips[21];
    for (int k = 0; k < 21; k++) {
        walls_task *t;
        struct walls_result r;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        ck_assert_int_eq(walls_submit(pool, spin_us, &us, sizeof us, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        walls_task_free(t);
        trips[k] = (int)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
    }
    for (int i = 1; i < 21; i++)
        for (int k = i; k > 0 && trips[k - 1] > trips[k]; k--) {
            int t = trips[k];
            trips[k] = trips[k - 1];
            trips[k - 1] = t;
        }
    int span = 2 * trips[10];
    unsigned seed = 12345;
    int killed = 0, finished = 0, recent_killed = 0;
    for (int k = 0; k < 600; k++) {
        /* The machine's pace changes under the test (a sanitizer, other
         * tests beside it): every 50 rounds the span follows what the
         * cancels met, longer when nearly all came before the end,
         * shorter when nearly all came after it. */
        if (k > 0 && k % 50 == 0) {
            if (recent_killed > 40)
                span += span / 2;
            else if (recent_killed < 10 && span > 1)
                span -= span / 3;
            recent_killed = 0;
        }
        walls_task *t;
        ck_assert_int_eq(walls_submit(pool, spin_us, &us, sizeof us, &t), 0);
        spin_here((int)(rand_r(&seed) % (unsigned)span));
        int rc = walls_cancel(t);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        if (rc == 0) {
            ck_assert_msg(r.status == WALLS_CANCELLED, "round %d: cancel said 0, the task ended %s",
                          k, walls_status_name(r.status));
            ck_assert_uint_eq(r.out_len, 0);
            killed++;
            recent_killed++;
        } else {
            ck_assert_int_eq(rc, -EALREADY);
            ck_assert_msg(r.status == WALLS_OK, "round %d: cancel said -EALREADY, the task ended %s",
                          k, walls_status_name(r.status));
            finished++;
        }
        walls_task_free(t);
    }
    /* Both ends many times over: 600 rounds at random points of the
     * task's span give about 300 of each on a quiet machine; under
     * ThreadSanitizer beside other tests the pace changed enough within
     * the test to leave 10 of one before the span followed it. */
    ck_assert_msg(killed >= 15 && finished >= 15,
                  "%d cancelled, %d finished (cancels within %d us): the race was missed", killed,
                  finished, span);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_msg(!st.broken, "the pool broke after %llu restarts",
                  (unsigned long long)st.restarts);
    walls_task *t;
    us = 1;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, spin_us, &us, sizeof us, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Tasks that each overrun a 1 ms limit, back to back: every one ends
 * WALLS_TIMEOUT with its worker killed, and the pool never breaks. */
/* A cancel that comes as the task's own time limit runs out: the kill for
 * the limit may already be on its way when walls_cancel() returns 0, and
 * the task must still end WALLS_CANCELLED; -EALREADY means it ended
 * WALLS_TIMEOUT. Loop: 0 processes, 1 hybrid. */
START_TEST(test_cancel_races_the_deadline)
{
    walls_pool *pool = make_pool(_i ? WALLS_HYBRID : WALLS_PROCESSES, 1);
    unsigned seed = 777;
    int cancelled = 0, timed_out = 0;
    /* The cancels aim at a point that follows the race: later after each
     * cancel that won, earlier after each that lost, so that both ends
     * come however the machine's pace (a sanitizer, other tests beside)
     * moves the deadline's kill; 80 rounds, and more until each end came
     * five times. */
    int aim = 20000;
    for (int k = 0; k < 400 && (k < 80 || cancelled < 5 || timed_out < 5); k++) {
        int us = 400000;
        struct walls_task_opts to = {.timeout_ms = 20};
        walls_task *t;
        ck_assert_int_eq(walls_submit_ex(pool, spin_us, &us, sizeof us, &to, &t), 0);
        spin_here(aim - 4000 + (int)(rand_r(&seed) % 8000u));
        int rc = walls_cancel(t);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        if (rc == 0) {
            ck_assert_msg(r.status == WALLS_CANCELLED, "round %d: cancel said 0, the task ended %s",
                          k, walls_status_name(r.status));
            cancelled++;
            aim = aim + 500 < 200000 ? aim + 500 : aim;
        } else {
            ck_assert_int_eq(rc, -EALREADY);
            ck_assert_msg(r.status == WALLS_TIMEOUT, "round %d: cancel said -EALREADY, the task "
                          "ended %s", k, walls_status_name(r.status));
            timed_out++;
            aim = aim - 500 > 4000 ? aim - 500 : aim;
        }
        walls_task_free(t);
    }
    ck_assert_msg(cancelled >= 5 && timed_out >= 5, "%d cancelled, %d timed out: the race was missed",
                  cancelled, timed_out);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* One worker: task A is cancelled as it finishes (its kill decided for
 * it), then task B, which the worker took behind it before the kill
 * landed, is cancelled too. Each cancel that returned 0 ends its own task
 * WALLS_CANCELLED: B is not lost with A's worker, nor run again. Loop: 0
 * processes, 1 hybrid. */
START_TEST(test_cancel_the_task_behind_a_killed_one)
{
    walls_pool *pool = make_pool(_i ? WALLS_HYBRID : WALLS_PROCESSES, 1);
    unsigned seed = 99;
    int both = 0;
    for (int k = 0; k < 300; k++) {
        int a_us = 2000, b_us = 30000;
        walls_task *ta, *tb;
        ck_assert_int_eq(walls_submit(pool, spin_us, &a_us, sizeof a_us, &ta), 0);
        ck_assert_int_eq(walls_submit(pool, spin_us, &b_us, sizeof b_us, &tb), 0);
        spin_here(1500 + (int)(rand_r(&seed) % 1500u));
        int ca = walls_cancel(ta);
        int cb = walls_cancel(tb);
        struct walls_result ra, rb;
        ck_assert_int_eq(walls_wait(ta, 20000, &ra), 0);
        ck_assert_int_eq(walls_wait(tb, 20000, &rb), 0);
        if (ca == 0)
            ck_assert_msg(ra.status == WALLS_CANCELLED, "round %d: A's cancel said 0, A ended %s",
                          k, walls_status_name(ra.status));
        if (cb == 0)
            ck_assert_msg(rb.status == WALLS_CANCELLED && rb.attempts <= 1,
                          "round %d: B's cancel said 0, B ended %s after %u runs", k,
                          walls_status_name(rb.status), rb.attempts);
        both += ca == 0 && cb == 0;
        walls_task_free(ta);
        walls_task_free(tb);
    }
    ck_assert_msg(both >= 5, "both cancels said 0 in %d rounds only: the race was missed", both);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_timeouts_are_no_crash_loop)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .task_timeout_ms = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 300 };
    static walls_task *t[N];
    /* Each is killed about a millisecond into its spin; the spin is long
     * so that a timekeeper held off the CPUs for a while by a loaded
     * machine still kills it before it ends. */
    int us = 500000;
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(walls_submit(pool, spin_us, &us, sizeof us, &t[k]), 0);
    for (int k = 0; k < N; k++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[k], 60000, &r), 0);
        ck_assert_msg(r.status == WALLS_TIMEOUT, "task %d ended %s", k,
                      walls_status_name(r.status));
        walls_task_free(t[k]);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert(!st.broken);
    ck_assert_uint_ge(st.restarts, N);
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
    tcase_add_loop_test(tc, test_cancel_queued_only, 0, 2);
    tcase_add_loop_test(tc, test_destroy_cancel_blames_the_running_one, 0, 2);
    tcase_add_loop_test(tc, test_cancel_races_the_finish, 0, 2);
    tcase_add_test(tc, test_timeouts_are_no_crash_loop);
    tcase_add_loop_test(tc, test_cancel_races_the_deadline, 0, 2);
    tcase_add_loop_test(tc, test_cancel_the_task_behind_a_killed_one, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
