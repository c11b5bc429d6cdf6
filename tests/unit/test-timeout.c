/*
 * test-timeout.c - task time limits: a process task looping forever ends as
 * WALLS_TIMEOUT, never before its limit, and the pool serves the next task;
 * the pool's default limit, a task's own override (none), and bad limits;
 * limits kept by a supervisor that is preempted in the middle of its turn;
 * a timekeeper that sleeps while limits are far, and a limit that counts
 * from the start of a task queued behind another; a task whose worker was
 * stopped before it started it, and one that started late.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
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

/* The threads of this process, at most max of them; returns how many. */
static size_t thread_ids(pid_t *ids, size_t max)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max)
        if (e->d_name[0] != '.')
            ids[n++] = (pid_t)atoi(e->d_name);
    closedir(d);
    return n;
}

static int preempting = 1;

/* Takes its CPU for 8 ms at a time, with naps of 1 to 100 us between: a
 * SCHED_IDLE thread of that CPU runs in the naps, and is preempted for the
 * next 8 ms wherever it is when the nap ends. */
static void *preempter(void *arg)
{
    (void)arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* naps as short as asked */
    unsigned seed = 1;
    while (__atomic_load_n(&preempting, __ATOMIC_RELAXED)) {
        struct timespec nap = {0, 1000 + (long)(rand_r(&seed) % 100) * 1000}, a, b;
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &a);
        do
            clock_gettime(CLOCK_MONOTONIC, &b);
        while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 8000000L);
    }
    return NULL;
}

START_TEST(test_timeout_preempted_supervisor)
{
    /* The supervisor sleeps until the next deadline (or its tick) as it
     * reckoned it during its turn. A turn that ends past that time, the
     * supervisor preempted on a busy machine, must look again at once,
     * not sleep until something else wakes it: the task would run on past
     * its limit. Here the pool's threads (the supervisor) run at SCHED_IDLE
     * on one CPU beside a thread that takes it for 8 ms at a time. */
    cpu_set_t was, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof was, &was), 0);
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &was)) {
            CPU_SET(cpu, &one);
            break;
        }
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    pid_t before[64], after[64];
    size_t nbefore = thread_ids(before, 64);
    walls_pool *pool = make_pool(WALLS_PROCESSES, 1);
    size_t nafter = thread_ids(after, 64);
    struct sched_param idle = {0};
    for (size_t i = 0; i < nafter; i++) {
        bool old = false;
        for (size_t k = 0; k < nbefore; k++)
            old |= after[i] == before[k];
        if (!old)
            ck_assert_int_eq(sched_setscheduler(after[i], SCHED_IDLE, &idle), 0);
    }
    pthread_t busy;
    ck_assert_int_eq(pthread_create(&busy, NULL, preempter, NULL), 0);
    struct walls_task_opts to = {.timeout_ms = 100};
    int ms = 60000, late = -1;
    for (int i = 0; i < 20 && late < 0; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &to, &t), 0);
        if (walls_wait(t, 10000, &r) != 0)
            late = i;
        else
            ck_assert_msg(r.status == WALLS_TIMEOUT, "status %s", walls_status_name(r.status));
        walls_task_free(t);
    }
    __atomic_store_n(&preempting, 0, __ATOMIC_RELAXED);
    pthread_join(busy, NULL);
    ck_assert_msg(late < 0, "task %d: still running 10 s past its 100 ms limit", late);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(sched_setaffinity(0, sizeof was, &was), 0);
}
END_TEST

/* Threads, processes, hybrid (one process of one thread): one worker. */
static walls_pool *one_worker(int which)
{
    struct walls_pool_opts o = {.placement = which == 0   ? WALLS_THREADS
                                             : which == 1 ? WALLS_PROCESSES
                                                          : WALLS_HYBRID,
                                .threads = 1, .processes = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    return pool;
}

/* Voluntary context switches of every thread of this process so far. */
static long switches(void)
{
    pid_t ids[64];
    size_t n = thread_ids(ids, 64);
    long sum = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)ids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* ended meanwhile */
        long v;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
                sum += v;
        fclose(f);
    }
    return sum;
}

static long since_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

START_TEST(test_timeout_far_limit_sleeps)
{
    /* A task far from its limit: the pool's timekeeper sleeps until the
     * deadline, instead of looking every few milliseconds (a tick of 2 ms
     * was 500 wake-ups a second). */
    walls_pool *pool = one_worker(_i);
    struct walls_task_opts to = {.timeout_ms = 30000};
    int ms = 1500;
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &to, &t), 0);
    struct timespec nap = {0, 300000000L};
    nanosleep(&nap, NULL); /* it starts; the timekeeper settles */
    long before = switches();
    nap = (struct timespec){1, 0};
    nanosleep(&nap, NULL);
    long woke = switches() - before;
    ck_assert_msg(woke < 50, "%ld wake-ups in the process in 1 s with one task far from "
                             "its limit", woke);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_timeout_queued_behind)
{
    /* One worker: a limited task queued behind an unlimited one starts
     * when that one ends, and its limit counts from then: it ends as
     * WALLS_TIMEOUT no sooner than both together, and long before it
     * would have finished. */
    walls_pool *pool = one_worker(_i);
    struct walls_task_opts none = {.timeout_ms = -1}, to = {.timeout_ms = 200};
    int first = 400, second = 4000;
    walls_task *a, *b;
    struct walls_result r;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &first, sizeof first, &none, &a), 0);
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &second, sizeof second, &to, &b), 0);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    long ms = since_ms(&t0);
    ck_assert_msg(r.status == WALLS_TIMEOUT, "status %s", walls_status_name(r.status));
    ck_assert_int_ge(ms, first + 200);
    ck_assert_msg(ms < 3500, "timed out after %ld ms: its limit ran out at about %d ms", ms,
                  first + 200);
    ck_assert_int_eq(walls_wait(a, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(a);
    walls_task_free(b);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* A one-worker process (which 0) or hybrid (1) pool whose worker is
 * stopped (SIGSTOP), its pid in *pid, and a task of ms milliseconds with
 * a limit of limit_ms submitted to it. */
static walls_pool *stopped_worker(int which, pid_t *pid, int ms, int64_t limit_ms, walls_task **t)
{
    walls_pool *pool = one_worker(1 + which);
    *pid = pid_from(pool, t_pid);
    ck_assert_int_eq(kill(*pid, SIGSTOP), 0);
    struct walls_task_opts to = {.timeout_ms = limit_ms};
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &to, t), 0);
    return pool;
}

START_TEST(test_timeout_never_started)
{
    /* The only worker is stopped before a limited task is dealt to it, so
     * the task cannot start: when its limit from the dispatch has passed,
     * the worker is replaced and the task runs on the new one, whole.
     * (It ended WALLS_TIMEOUT, its function never entered, when every kill
     * the engine asked for was taken for a protocol break.) */
    pid_t stopped;
    walls_task *t;
    struct walls_result r;
    walls_pool *pool = stopped_worker(_i, &stopped, 1, 100, &t);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "status %s (code %d), attempts %u",
                  walls_status_name(r.status), r.code, r.attempts);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_int_ne(pid_from(pool, t_pid), stopped);
    kill(stopped, SIGCONT); /* killed by now, unless something is wrong */
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_timeout_started_late)
{
    /* The only worker is stopped when a task is dealt to it and goes on
     * half its limit later: the task starts then, and its limit counts
     * from then. It runs for 0.7 of its limit: past the limit counted from
     * the dispatch, well within the one counted from its start. */
    pid_t worker;
    walls_task *t;
    struct walls_result r;
    walls_pool *pool = stopped_worker(_i, &worker, 700, 1000, &t);
    struct timespec half = {0, 500000000};
    nanosleep(&half, NULL);
    ck_assert_int_eq(kill(worker, SIGCONT), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "status %s (code %d), attempts %u",
                  walls_status_name(r.status), r.code, r.attempts);
    ck_assert_int_eq(pid_from(pool, t_pid), worker);
    walls_task_free(t);
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
    tcase_add_test(tc, test_timeout_preempted_supervisor);
    tcase_add_loop_test(tc, test_timeout_far_limit_sleeps, 0, 3);
    tcase_add_loop_test(tc, test_timeout_queued_behind, 0, 3);
    tcase_add_loop_test(tc, test_timeout_never_started, 0, 2);
    tcase_add_loop_test(tc, test_timeout_started_late, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
