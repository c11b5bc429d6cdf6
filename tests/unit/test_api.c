/*
 * test_api.c - the contract of every public call: results, and each kind of
 * bad input (NULL, zero, oversized, unknown flags, stale handles), in both
 * placements. Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "helpers.h"
#include "sizing.h"
#include "walls.h"

static void *last_error_of_new_thread(void *arg)
{
    *(const char **)arg = walls_last_error();
    return NULL;
}

START_TEST(test_add_both)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    walls_task *tasks[50];
    for (int i = 0; i < 50; i++) {
        int v[2] = {i, 1000};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &tasks[i]), 0);
    }
    for (int i = 0; i < 50; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.out_len, sizeof(int));
        int sum;
        memcpy(&sum, r.out, sizeof sum);
        ck_assert_int_eq(sum, i + 1000);
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_failed_code)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_fail, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_FAILED);
    ck_assert_int_eq(r.code, 7);
    /* Waiting again gives the same result. */
    struct walls_result again;
    ck_assert_int_eq(walls_wait(t, 0, &again), 0);
    ck_assert_int_eq(again.status, WALLS_FAILED);
    ck_assert_int_eq(again.code, 7);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_inline_max)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    unsigned char big[WALLS_INLINE_MAX + 1];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    walls_task *t = NULL;
    ck_assert_int_eq(walls_submit(pool, t_echo, big, sizeof big, &t), -E2BIG);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(walls_submit(pool, t_echo, big, WALLS_INLINE_MAX, &t), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, WALLS_INLINE_MAX);
    ck_assert_int_eq(memcmp(r.out, big, WALLS_INLINE_MAX), 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_overclaimed_output)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_overclaim, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_msg(r.status == WALLS_PROTOCOL, "status %s", walls_status_name(r.status));
    walls_task_free(t);
    /* The pool still serves. */
    ck_assert_int_eq(walls_submit(pool, t_echo, "x", 1, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

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
    o.max_output = WALLS_INLINE_MAX + 1;
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

START_TEST(test_defaults_and_auto)
{
    /* The seed's rules, for each combination of needs and workload. */
    static const struct {
        unsigned needs;
        enum walls_workload workload;
        enum walls_placement placement;
        unsigned procs_per_cpu, threads_per_cpu, threads_per_proc;
        const char *why;
    } cases[] = {
        {0, WALLS_CPU_BOUND, WALLS_THREADS, 0, 1, 0, "no isolation"},
        {0, WALLS_IO_BOUND, WALLS_THREADS, 0, 4, 0, "no isolation"},
        {WALLS_NEED_CRASH_ISOLATION, WALLS_CPU_BOUND, WALLS_PROCESSES, 1, 0, 0, "isolation"},
        {WALLS_NEED_CRASH_ISOLATION, WALLS_IO_BOUND, WALLS_HYBRID, 1, 0, 4, "isolation"},
    };
    unsigned cpus = (unsigned)walls_cpu_count();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct walls_pool_opts o = {.needs = cases[i].needs, .workload = cases[i].workload};
        walls_pool *pool;
        struct walls_stats st;
        char line[400];
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
        ck_assert_int_eq(st.placement, cases[i].placement);
        ck_assert_uint_eq(st.processes, cases[i].procs_per_cpu * cpus);
        if (cases[i].placement == WALLS_THREADS)
            ck_assert_uint_eq(st.threads, cases[i].threads_per_cpu * cpus);
        else if (cases[i].placement == WALLS_HYBRID)
            ck_assert_uint_eq(st.threads, cases[i].threads_per_proc);
        ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
        ck_assert_msg(strstr(line, "AUTO") && strstr(line, cases[i].why) &&
                          strstr(line, "usable CPUs from"),
                      "explain: %s", line);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    /* Untrusted work: processes under the strict sandbox, or nothing. */
    struct walls_pool_opts o = {.needs = WALLS_NEED_UNTRUSTED};
    walls_pool *pool = NULL;
    unsigned layers = 0;
    ck_assert_int_gt(walls_sandbox_probe(&layers, NULL, 0), 0);
    unsigned strict = WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS |
                      WALLS_LAYER_NET_NS | WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS |
                      WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT;
    char line[640];
    if ((layers & strict) == strict) {
        struct walls_stats st;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
        ck_assert_int_eq(st.placement, WALLS_PROCESSES);
        ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
        ck_assert_msg(strstr(line, "sandbox: strict (") && strstr(line, "seccomp"), "%s", line);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        pool = NULL;
    } else {
        ck_assert_int_eq(walls_pool_create(&pool, &o), -ENOTSUP);
    }
    ck_assert_int_eq(walls_pool_create(&pool, NULL), 0);
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, "threads"));
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
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

START_TEST(test_cancel_pending)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 300;
    walls_task *slow, *queued[40];
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &slow), 0);
    /* 40 behind it: some wait in the worker's ring, the rest in the queue. */
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(walls_submit(pool, t_echo, "q", 1, &queued[i]), 0);
    usleep(50000); /* let the slow one start */
    /* Running: a thread cannot be stopped; a process is killed for it. */
    bool threads = placements[_i] == WALLS_THREADS;
    ck_assert_int_eq(walls_cancel(slow), threads ? -EBUSY : 0);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(walls_cancel(queued[i]), 0);
        ck_assert_int_eq(walls_wait(queued[i], 0, &r), 0);
        ck_assert_int_eq(r.status, WALLS_CANCELLED);
        ck_assert_int_eq(walls_cancel(queued[i]), -EALREADY);
        walls_task_free(queued[i]);
    }
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

START_TEST(test_wait_timeout_and_any)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    int slow_ms = 400, fast_ms = 20;
    walls_task *t[2];
    struct walls_result r;
    size_t idx = 99;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &slow_ms, sizeof slow_ms, &t[0]), 0);
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &fast_ms, sizeof fast_ms, &t[1]), 0);
    ck_assert_int_eq(walls_wait(t[0], 0, &r), -ETIMEDOUT);
    ck_assert_int_eq(walls_wait(t[0], 10, &r), -ETIMEDOUT);
    /* A timeout too large to add to the clock is as good as forever. */
    ck_assert_int_eq(walls_wait(t[1], INT64_MAX / 1000, &r), 0);
    ck_assert_int_eq(walls_wait_any(t, 2, -1, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    ck_assert_int_eq(walls_wait(t[0], -1, &r), 0);
    ck_assert_int_eq(walls_wait_any(t, 2, 0, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    walls_task_free(t[0]);
    walls_task_free(t[1]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_free_running_task)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 100;
    walls_task *t, *u;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    usleep(20000);
    walls_task_free(t); /* runs on; its result is dropped */
    ck_assert_int_eq(walls_wait(t, 0, &r), -EBADF);
    ck_assert_int_eq(walls_submit(pool, t_echo, "k", 1, &u), 0);
    ck_assert_int_eq(walls_wait(u, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(u);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_destroy_cancel)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 200;
    walls_task *t[10];
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t[i]), 0);
    usleep(30000);
    ck_assert_int_eq(walls_pool_destroy(pool, WALLS_CANCEL), 0);
    int cancelled = 0, ok = 0;
    for (int i = 0; i < 10; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 0, &r), 0);
        cancelled += r.status == WALLS_CANCELLED;
        ok += r.status == WALLS_OK;
        walls_task_free(t[i]);
    }
    /* The running one finishes on a thread (it cannot be stopped) and is
     * killed in a process; everything queued is cancelled. */
    if (placements[_i] == WALLS_THREADS) {
        ck_assert_int_eq(ok, 1);
        ck_assert_int_eq(cancelled, 9);
    } else {
        ck_assert_int_eq(ok, 0);
        ck_assert_int_eq(cancelled, 10);
    }
}
END_TEST

static int destroy_rc = -1;

static void *destroy_thread(void *pool)
{
    destroy_rc = walls_pool_destroy(pool, 0);
    return NULL;
}

START_TEST(test_submit_while_destroying)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int ms = 200;
    walls_task *t;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    /* A second thread destroys while this one submits. */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, destroy_thread, pool), 0);
    int refused = 0;
    for (int i = 0; i < 2000 && !refused; i++) {
        walls_task *u;
        int rc = walls_submit(pool, t_echo, NULL, 0, &u);
        if (rc == 0)
            walls_task_free(u);
        else if (rc == -ESHUTDOWN || rc == -EBADF)
            refused = 1;
        else
            ck_abort_msg("submit during destroy: %d", rc);
        usleep(1000);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(refused, 1);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(destroy_rc, 0);
}
END_TEST

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

static walls_pool *self_pool;

static int destroy_own_pool(struct walls_call *call)
{
    int rc = walls_pool_destroy(self_pool, 0);
    memcpy(call->out, &rc, sizeof rc);
    call->out_len = sizeof rc;
    return 0;
}

START_TEST(test_destroy_from_worker)
{
    self_pool = make_pool(WALLS_THREADS, 1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(self_pool, destroy_own_pool, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    int rc;
    memcpy(&rc, r.out, sizeof rc);
    ck_assert_int_eq(rc, -EDEADLK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(self_pool, 0), 0);
}
END_TEST

START_TEST(test_pool_fd)
{
    walls_pool *pool = make_pool(placements[_i], 1);
    int fd = walls_pool_fd(pool);
    ck_assert_int_ge(fd, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    int ms = 50;
    walls_task *t;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    ck_assert_int_eq(poll(&p, 1, 5000), 1); /* readable once it completes */
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_collect)
{
    walls_pool *pool = make_pool(placements[_i], 2);
    walls_task *got[8], *t[5];
    size_t n = 99;
    ck_assert_int_eq(walls_pool_collect(pool, got, 8, &n), -ENOTCONN);
    ck_assert_int_eq(walls_pool_collect(NULL, got, 8, &n), -EINVAL);
    ck_assert_int_eq(walls_pool_collect(pool, NULL, 8, &n), -EINVAL);
    ck_assert_int_eq(walls_pool_collect(pool, got, 0, &n), -EINVAL);
    ck_assert_int_eq(walls_pool_collect(pool, got, 8, NULL), -EINVAL);
    int fd = walls_pool_fd(pool);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(walls_pool_collect(pool, got, 8, &n), 0);
    ck_assert_uint_eq(n, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(walls_submit(pool, t_echo, &i, sizeof i, &t[i]), 0);
    struct walls_result r;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
    walls_task_free(t[3]); /* freed before collected: not reported */
    size_t total = 0;
    bool seen[5] = {false};
    for (int round = 0; round < 5 && total < 4; round++) {
        ck_assert_int_eq(walls_pool_collect(pool, got, 2, &n), 0);
        ck_assert_uint_le(n, 2);
        for (size_t k = 0; k < n; k++)
            for (int i = 0; i < 5; i++)
                if (got[k] == t[i]) {
                    ck_assert(!seen[i]);
                    seen[i] = true;
                }
        total += n;
    }
    ck_assert_uint_eq(total, 4);
    ck_assert(seen[0] && seen[1] && seen[2] && !seen[3] && seen[4]);
    ck_assert_int_eq(walls_pool_collect(pool, got, 8, &n), 0);
    ck_assert_uint_eq(n, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0); /* drained and reset */
    for (int i = 0; i < 5; i++)
        if (i != 3)
            walls_task_free(t[i]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(walls_pool_collect(pool, got, 8, &n), -EBADF);
}
END_TEST

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

START_TEST(test_names)
{
    ck_assert_str_eq(walls_status_name(WALLS_OK), "ok");
    ck_assert_str_eq(walls_status_name(WALLS_CRASHED), "crashed");
    ck_assert_str_eq(walls_status_name(WALLS_BROKEN), "broken");
    ck_assert_str_eq(walls_status_name((enum walls_status)99), "unknown");
    ck_assert_str_eq(walls_status_name((enum walls_status)-1), "unknown");
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EBADF), "stale"));
    ck_assert_str_eq(walls_strerror(-ENOMEM), "Cannot allocate memory");
    ck_assert_str_eq(walls_strerror(12345), "unknown error");
    ck_assert_str_eq(walls_strerror(-99999), "unknown error");
    ck_assert_str_eq(walls_version(), WALLS_VERSION_STRING);
}
END_TEST

START_TEST(test_cpu_count)
{
    int n = walls_cpu_count();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, (int)sysconf(_SC_NPROCESSORS_ONLN));
    char src[64];
    ck_assert_int_eq(walls_cpu_source(src, sizeof src), n);
    ck_assert_int_gt((int)strlen(src), 0);
    ck_assert_int_eq(walls_cpu_source(NULL, 4), -EINVAL);
    /* Pinned to one CPU: the count follows the affinity mask. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    ck_assert_int_eq(walls_cpu_count(), 1);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_cgroup_quota)
{
    char root[] = "/tmp/walls-cg-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char path[512], self[512];
    const char *source = NULL;
    /* v2: 150000/100000 at the leaf, 300000/100000 above: 2 CPUs. */
    snprintf(path, sizeof path, "%s/a", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/a/b", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/a/b/cpu.max", root);
    write_file(path, "150000 100000\n");
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "300000 100000\n");
    snprintf(self, sizeof self, "%s/self", root);
    write_file(self, "0::/a/b\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 2);
    ck_assert_str_eq(source, "cgroup v2 cpu.max quota");
    /* The tighter parent wins. */
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "50000 100000\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 1);
    /* No limit. */
    snprintf(path, sizeof path, "%s/a/b/cpu.max", root);
    write_file(path, "max 100000\n");
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "max 100000\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 0);
    /* v1: 250000/100000 rounds up to 3. */
    snprintf(path, sizeof path, "%s/cpu,cpuacct", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "250000\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_period_us", root);
    write_file(path, "100000\n");
    write_file(self, "4:cpu,cpuacct:/job\n3:memory:/job\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 3);
    ck_assert_str_eq(source, "cgroup v1 cpu.cfs_quota_us");
    /* v1 without a quota (-1). */
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "-1\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 0);
    /* Missing file: no limit. */
    ck_assert_int_eq(walls__cgroup_cpus("/nonexistent/cgroup", root, &source), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- fork(): a child never touches its parent's pools --------------------- */

/* What the child does with its parent's pool and task; 0 when every call
 * was refused as documented, else the number of the step that was not. */
static int child_uses_parent(walls_pool *pool, walls_task *running)
{
    walls_task *t = NULL;
    struct walls_result r;
    size_t index, n;
    struct walls_stats st;
    char line[64];
    walls_task *got[4];
    int v[2] = {1, 2};
    if (walls_submit(pool, t_add, v, sizeof v, &t) != -EPERM || t)
        return 1;
    if (!strstr(walls_last_error(), "fork()"))
        return 2;
    if (walls_wait(running, 0, &r) != -EPERM || walls_wait(running, -1, &r) != -EPERM)
        return 3;
    if (walls_wait_any(&running, 1, -1, &index) != -EPERM)
        return 4;
    if (walls_cancel(running) != -EPERM)
        return 5;
    walls_task_free(running); /* does nothing here */
    if (walls_pool_stats(pool, &st) != -EPERM || walls_pool_fd(pool) != -EPERM ||
        walls_pool_collect(pool, got, 4, &n) != -EPERM ||
        walls_pool_explain(pool, line, sizeof line) != -EPERM || walls_pool_reset(pool) != -EPERM)
        return 6;
    walls_buf buf;
    if (walls_arena_alloc(pool, 4096, &buf) != -EPERM)
        return 7;
    if (walls_pool_destroy(pool, 0) != -EPERM || walls_pool_destroy(pool, WALLS_CANCEL) != -EPERM)
        return 8;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer dies when a child of a multi-threaded program starts
     * a thread, which a pool of its own would. */
    return 0;
#endif
    /* A pool of its own works: it gets its own fork server. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *mine;
    if (walls_pool_create(&mine, &o) != 0)
        return 9;
    if (walls_submit(mine, t_add, v, sizeof v, &t) != 0 || walls_wait(t, 20000, &r) != 0 ||
        r.status != WALLS_OK)
        return 10;
    walls_task_free(t);
    if (walls_pool_destroy(mine, 0) != 0)
        return 11;
    return 0;
}

/* Waits for a child at most 30 s (a hang is a failure, not a stuck test). */
static int reap_child(pid_t pid)
{
    for (int i = 0; i < 3000; i++) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static const enum walls_placement fork_placements[] = {WALLS_THREADS, WALLS_PROCESSES,
                                                       WALLS_HYBRID};

START_TEST(test_fork_child_refused)
{
    struct walls_pool_opts o = {.placement = fork_placements[_i], .processes = 2, .threads = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    /* Busy at the fork: one task running, others queued. */
    int ms = 300;
    walls_task *running, *queued[8];
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &running), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &queued[i]), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_uses_parent(pool, running));
    ck_assert_int_gt(pid, 0);
    int step = reap_child(pid);
    static const char *const names[] = {"threads", "processes", "hybrid"};
    ck_assert_msg(step == 0, "%s: the child's step %d was not refused (-1: it hung)", names[_i],
                  step);
    /* A child that only exits is harmless too. */
    pid = fork();
    if (pid == 0) {
#if defined(__SANITIZE_ADDRESS__)
        __lsan_disable(); /* the parent's memory is not the child's leak */
#endif
        exit(0);
    }
    ck_assert_int_eq(reap_child(pid), 0);
    /* The parent is untouched: its tasks end, and a thousand more run. */
    struct walls_result r;
    ck_assert_int_eq(walls_wait(running, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(running);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(walls_wait(queued[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(queued[i]);
    }
    enum { N = 1000 };
    static walls_task *t[N];
    for (int i = 0; i < N; i++) {
        int v[2] = {i, 1};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "task %d: %s/%d", i, walls_status_name(r.status),
                      r.code);
        int sum;
        memcpy(&sum, r.out, sizeof sum);
        ck_assert_int_eq(sum, i + 1);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(5000), 0);
}
END_TEST

/* ---- why a call failed, in words -------------------------------------------- */

static void expect_error(int rc, int want, const char *words)
{
    ck_assert_msg(rc == want, "got %d (%s), want %d", rc, walls_strerror(rc), want);
    ck_assert_msg(strstr(walls_last_error(), words), "walls_last_error(): \"%s\", want \"%s\"",
                  walls_last_error(), words);
}

START_TEST(test_last_error)
{
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.max_output = 4096};
    expect_error(walls_pool_create(&pool, &o), -EINVAL,
                 "opts.max_output 4096 is over WALLS_INLINE_MAX 480");
    o = (struct walls_pool_opts){.processes = 999};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.processes 999");
    o = (struct walls_pool_opts){.reserved[2] = 1};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.reserved[2]");
    /* An explicit THREADS placement cannot isolate: refused, as untrusted is. */
    o = (struct walls_pool_opts){.placement = WALLS_THREADS,
                                 .needs = WALLS_NEED_CRASH_ISOLATION};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_CRASH_ISOLATION");
    o.needs = WALLS_NEED_UNTRUSTED;
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_UNTRUSTED");
    o = (struct walls_pool_opts){.placement = WALLS_THREADS, .recycle_after = 3};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.recycle_after");
    ck_assert_ptr_null(pool);
    expect_error(walls_pool_create(NULL, NULL), -EINVAL, "out-parameter");

    pool = make_pool(WALLS_THREADS, 1);
    walls_task *t;
    expect_error(walls_submit(pool, NULL, NULL, 0, &t), -EINVAL, "fn is NULL");
    expect_error(walls_submit(pool, t_echo, NULL, 5, &t), -EINVAL, "in is NULL");
    char big[WALLS_INLINE_MAX + 1] = {0};
    expect_error(walls_submit(pool, t_echo, big, sizeof big, &t), -E2BIG, "in_len 481");
    struct walls_task_opts to = {.timeout_ms = -3};
    expect_error(walls_submit_ex(pool, t_echo, NULL, 0, &to, &t), -EINVAL, "timeout_ms -3");
    expect_error(walls_pool_collect(pool, &t, 1, &(size_t){0}), -ENOTCONN, "walls_pool_fd()");
    walls_buf b;
    expect_error(walls_arena_alloc(pool, 64, &b), -EINVAL, "no arena");
    expect_error(walls_pool_destroy(pool, 8), -EINVAL, "unknown flags 0x8");
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    expect_error(walls_submit(pool, t_echo, NULL, 0, &t), -EBADF, "destroyed");
    expect_error(walls_pool_stats(NULL, &(struct walls_stats){0}), -EINVAL, "pool is NULL");
    /* A success leaves the last failure's words. */
    ck_assert_int_eq(walls_cpu_count() > 0, 1);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "pool is NULL"));
    /* Each thread has its own. */
    pthread_t th;
    const char *other = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, last_error_of_new_thread, &other), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_str_eq(other, "no walls call has failed on this thread");
    /* Codes read in walls' terms. */
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTSUP), "kernel refuses a sandbox layer"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTCONN), "walls_pool_fd()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EPERM), "fork()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EINVAL), "walls_last_error()"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *both = tcase_create("both placements");
    tcase_set_timeout(both, 60);
    tcase_add_loop_test(both, test_add_both, 0, 2);
    tcase_add_loop_test(both, test_failed_code, 0, 2);
    tcase_add_loop_test(both, test_inline_max, 0, 2);
    tcase_add_loop_test(both, test_overclaimed_output, 0, 2);
    tcase_add_loop_test(both, test_bad_submit_wait, 0, 2);
    tcase_add_loop_test(both, test_use_after_destroy, 0, 2);
    tcase_add_loop_test(both, test_explain_args, 0, 2);
    tcase_add_loop_test(both, test_cancel_pending, 0, 2);
    tcase_add_loop_test(both, test_wait_timeout_and_any, 0, 2);
    tcase_add_loop_test(both, test_free_running_task, 0, 2);
    tcase_add_loop_test(both, test_destroy_cancel, 0, 2);
    tcase_add_loop_test(both, test_submit_while_destroying, 0, 2);
    tcase_add_loop_test(both, test_pool_fd, 0, 2);
    tcase_add_loop_test(both, test_stats_exact, 0, 2);
    tcase_add_loop_test(both, test_collect, 0, 2);
    tcase_add_loop_test(both, test_stats_concurrent, 0, 2);
    tcase_add_loop_test(both, test_timeout_default_and_override, 0, 2);
    suite_add_tcase(s, both);
    TCase *misc = tcase_create("misc");
    tcase_set_timeout(misc, 60);
    tcase_add_test(misc, test_bad_create);
    tcase_add_test(misc, test_defaults_and_auto);
    tcase_add_test(misc, test_destroy_from_worker);
    tcase_add_test(misc, test_timeout_process);
    tcase_add_test(misc, test_names);
    tcase_add_test(misc, test_cpu_count);
    tcase_add_test(misc, test_cgroup_quota);
    tcase_add_test(misc, test_last_error);
    tcase_add_loop_test(misc, test_fork_child_refused, 0, 3);
    suite_add_tcase(s, misc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
