/*
 * test-fork.c - fork() in a program that has pools: the child's calls on
 * its parent's pools and tasks are refused with -EPERM and say why, a pool
 * of its own works, and the parent's pool carries on untouched; in every
 * placement (_i = 0 threads, 1 processes, 2 hybrid).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "helpers.h"
#include "walls.h"

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

static Suite *suite(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_fork_child_refused, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
