/*
 * test-recycle.c - replacing workers on purpose, and their memory limit:
 * recycle_after counts tasks (cancelled ones too) and no task is lost on the
 * way, recycle_rss replaces a worker grown past its size, and a task that
 * exhausts worker_memory_limit crashes flagged WALLS_RESULT_MEMORY while a
 * crash of its own is not blamed on memory, and the limit is what tasks may
 * take beyond what the worker holds at start (a big arena, large-I/O
 * windows, reservations inherited from the host through the fork server).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_recycle_after_n)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 10};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 45 };
    walls_task *t[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t[i]), 0);
    int pids[N], distinct = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        memcpy(&pids[i], r.out, sizeof pids[i]);
        if (i == 0 || pids[i] != pids[i - 1])
            distinct++;
        walls_task_free(t[i]);
    }
    /* Ten tasks per worker process, then a new one: no task lost. */
    ck_assert_int_eq(distinct, 5);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pids[i], pids[i - i % 10]);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.recycled, 4);
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_recycle_counts_cancelled)
{
    /* Given its two tasks, one cancelled before it ran: the worker is
     * still recycled, and the next task runs on its replacement. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    int ms = 200;
    walls_task *a, *b, *c;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &a), 0);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &b), 0);
    ck_assert_int_eq(walls_cancel(b), 0);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(a, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(a);
    walls_task_free(b);
    walls_task_free(c);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.recycled, 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static int grow_rss(struct walls_call *call)
{
    size_t mb = 0;
    memcpy(&mb, call->in, sizeof mb);
    char *p = malloc(mb << 20);
    if (!p)
        return 12;
    memset(p, 1, mb << 20);
    /* Keep it: the worker's resident memory stays high. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
    return t_pid(call);
}

START_TEST(test_recycle_rss)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .recycle_rss = 64u << 20};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    size_t small = 1, big = 100;
    walls_task *a, *b, *c;
    struct walls_result r;
    int pa, pb, pc;
    ck_assert_int_eq(walls_submit(pool, grow_rss, &small, sizeof small, &a), 0);
    ck_assert_int_eq(walls_wait(a, 20000, &r), 0);
    memcpy(&pa, r.out, sizeof pa);
    ck_assert_int_eq(walls_submit(pool, grow_rss, &big, sizeof big, &b), 0);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    memcpy(&pb, r.out, sizeof pb);
    ck_assert_int_eq(pa, pb); /* under the limit until this task */
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    memcpy(&pc, r.out, sizeof pc);
    ck_assert_int_ne(pb, pc); /* replaced after it */
    walls_task_free(a);
    walls_task_free(b);
    walls_task_free(c);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static int exhaust_memory(struct walls_call *call)
{
    (void)call;
    /* Allocate until it fails, then die the way careless code does. */
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p)
            abort();
        memset(p, 1, 4096);
    }
}

START_TEST(test_memory_limit)
{
    /* _i = 1: under the seccomp sandbox, which opens no file: the worker
     * asks the kernel for room, it reads nothing. */
    unsigned layers = 0;
    char why[256];
    if (_i && (walls_sandbox_probe(&layers, why, sizeof why) < 0 ||
               !(layers & WALLS_LAYER_SECCOMP))) {
        printf("skipped: no seccomp sandbox here (%s)\n", why);
        return;
    }
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .worker_memory_limit = 256u << 20,
                                .sandbox = _i ? WALLS_SANDBOX_SECCOMP : WALLS_SANDBOX_NONE};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, exhaust_memory, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGABRT, "%s/%d",
                  walls_status_name(r.status), r.code);
    ck_assert_uint_eq(r.flags & WALLS_RESULT_MEMORY, WALLS_RESULT_MEMORY);
    walls_task_free(t);
    /* A crash of its own, far from the limit, is not blamed on memory. */
    ck_assert_int_eq(walls_submit(pool, t_abort, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_uint_eq(r.flags & WALLS_RESULT_MEMORY, 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST
#endif

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* Takes 64 MiB and touches it: ENOMEM if the worker's limit refused it. */
static int take_64m(struct walls_call *call)
{
    (void)call;
    size_t len = (size_t)64 << 20;
    char *p = malloc(len);
    if (!p)
        return ENOMEM;
    memset(p, 1, len);
    free(p);
    return 0;
}

static void expect_64m(walls_pool *pool)
{
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, take_64m, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "64 MiB under a 256 MiB limit: %s/%d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
}

START_TEST(test_memory_limit_beside_arena)
{
    /* A 1 GiB arena is mapped in every worker, yet a task has its 256 MiB. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .worker_memory_limit = 256u << 20,
                                .arena_size = (size_t)1 << 30};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    expect_64m(pool);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* A hybrid worker whose thread stacks do not fit a tiny limit: the pool
 * is not made, and the error names the limit, not a queue or a lack of
 * processes. */
START_TEST(test_memory_limit_too_small)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 4,
                                .worker_memory_limit = 1};
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == -EAGAIN || rc == -ENOMEM, "%d", rc);
    ck_assert_ptr_null(pool);
    ck_assert_msg(strstr(walls_last_error(), "worker_memory_limit") &&
                      !strstr(walls_last_error(), "max_queued"),
                  "%s", walls_last_error());
}
END_TEST

/* Takes 64 MiB, then echoes its input. */
static int take_64m_echo(struct walls_call *call)
{
    int rc = take_64m(call);
    if (rc != 0 || call->in_len > call->out_cap)
        return rc ? rc : E2BIG;
    memcpy(call->out, call->in, call->in_len);
    call->out_len = call->in_len;
    return 0;
}

START_TEST(test_memory_limit_beside_io)
{
    /* Outputs of up to 1 GiB and inputs of 4 MiB, on windows the worker
     * maps: the windows are the library's, and a task still has its 256 MiB,
     * in every thread of a hybrid process too. */
    enum { IN = 4 << 20 };
    unsigned char *in = malloc(IN);
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < IN; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    static const enum walls_placement where[] = {WALLS_PROCESSES, WALLS_HYBRID};
    for (size_t k = 0; k < 2; k++) {
        struct walls_pool_opts o = {.placement = where[k], .processes = 1,
                                    .threads = where[k] == WALLS_HYBRID ? 2 : 0,
                                    .worker_memory_limit = 256u << 20,
                                    .max_output = WALLS_IO_MAX};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        walls_task *t[4];
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(walls_submit(pool, take_64m_echo, in, IN, &t[i]), 0);
        for (int i = 0; i < 4; i++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
            ck_assert_msg(r.status == WALLS_OK, "%s: 64 MiB beside 1 GiB outputs: %s/%d",
                          where[k] == WALLS_HYBRID ? "hybrid" : "processes",
                          walls_status_name(r.status), r.code);
            ck_assert_uint_eq(r.out_len, IN);
            ck_assert(memcmp(r.out, in, IN) == 0);
            walls_task_free(t[i]);
        }
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    free(in);
}
END_TEST

START_TEST(test_memory_limit_inherited)
{
    /* The host reserves 2 GiB before its first pool: the fork server, forked
     * from this single-threaded process, and so every worker inherit the
     * reservation. It is not the tasks' memory. */
    void *junk = mmap(NULL, (size_t)2 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    ck_assert_ptr_ne(junk, MAP_FAILED);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .worker_memory_limit = 256u << 20,
                                .sandbox = WALLS_SANDBOX_SECCOMP};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    expect_64m(pool);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    munmap(junk, (size_t)2 << 30);
}
END_TEST
#endif

static Suite *suite(void)
{
    Suite *s = suite_create("recycle");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_recycle_after_n);
    tcase_add_test(tc, test_recycle_counts_cancelled);
    tcase_add_test(tc, test_recycle_rss);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Sanitizers reserve terabytes of address space: no RLIMIT_AS fits. */
    tcase_add_loop_test(tc, test_memory_limit, 0, 2);
    tcase_add_test(tc, test_memory_limit_beside_arena);
    tcase_add_test(tc, test_memory_limit_too_small);
    tcase_add_test(tc, test_memory_limit_beside_io);
    tcase_add_test(tc, test_memory_limit_inherited);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
