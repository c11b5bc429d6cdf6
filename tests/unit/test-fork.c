/*
 * test-fork.c - fork() in a program that has pools: the child's calls on
 * its parent's pools and tasks are refused with -EPERM and say why, a pool
 * of its own works, and the parent's pool carries on untouched; in every
 * placement (_i = 0 threads, 1 processes, 2 hybrid). Handles passed up
 * the fork tree, from a child or from far below, are refused as well.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
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
#if defined(__SANITIZE_ADDRESS__)
    /* This AddressSanitizer takes no lock of its own around fork(): a
     * pool thread still starting when the program forks can hold its
     * internal lock, and the child, making a pool of its own, waits on it
     * for ever (one run in a few dozen). The pool's threads are past
     * their start well within this; the task is still running. */
    usleep(50000);
#endif
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

/* A worker's task given its host's pool and task handles (as bytes): each
 * call is refused with -EPERM, never taken for one of the worker's own
 * entries. Writes the first step that was not refused, or 0. */
static int t_use_host_handles(struct walls_call *call)
{
    walls_pool *pool;
    walls_task *task, *t = NULL;
    memcpy(&pool, call->in, sizeof pool);
    memcpy(&task, (const char *)call->in + sizeof pool, sizeof task);
    struct walls_result r;
    struct walls_stats st;
    int v[2] = {1, 2}, step = 0;
    if (walls_wait(task, 0, &r) != -EPERM)
        step = 1;
    else if (!strstr(walls_last_error(), "another process"))
        step = 2;
    else if (walls_submit(pool, t_add, v, sizeof v, &t) != -EPERM || t)
        step = 3;
    else if (walls_cancel(task) != -EPERM || walls_pool_stats(pool, &st) != -EPERM)
        step = 4;
    walls_task_free(task); /* does nothing */
    memcpy(call->out, &step, sizeof step);
    call->out_len = sizeof step;
    return 0;
}

START_TEST(test_worker_given_host_handles)
{
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                .processes = 1, .threads = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    int ms = 200;
    walls_task *running, *t;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &running), 0);
    char in[sizeof pool + sizeof running];
    memcpy(in, &pool, sizeof pool);
    memcpy(in + sizeof pool, &running, sizeof running);
    ck_assert_int_eq(walls_submit(pool, t_use_host_handles, in, sizeof in, &t), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "%s/%d", walls_status_name(r.status), r.code);
    int step;
    memcpy(&step, r.out, sizeof step);
    ck_assert_msg(step == 0, "the worker's step %d was not refused with -EPERM", step);
    walls_task_free(t);
    ck_assert_int_eq(walls_wait(running, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(running);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static void *idle_thread(void *arg)
{
    int fd = *(int *)arg;
    char c;
    ssize_t n = read(fd, &c, 1); /* until the pipe closes */
    (void)n;
    return NULL;
}

/* The same through a fork server started again from the program (it had
 * a second thread then), which inherits no memory of the program: each
 * worker's epoch must still avoid the program's. A worker per task over
 * enough tasks that, by its pid alone, some worker would take the
 * program's epoch. */
START_TEST(test_reexec_worker_given_host_handles)
{
    int idle_pipe[2];
    pthread_t idle;
    ck_assert_int_eq(pipe(idle_pipe), 0);
    ck_assert_int_eq(pthread_create(&idle, NULL, idle_thread, &idle_pipe[0]), 0);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .recycle_after = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *done, *t;
    int v[2] = {1, 2};
    ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &done), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(done, 20000, &r), 0);
    char in[sizeof pool + sizeof done];
    memcpy(in, &pool, sizeof pool);
    memcpy(in + sizeof pool, &done, sizeof done);
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(walls_submit(pool, t_use_host_handles, in, sizeof in, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "%s/%d", walls_status_name(r.status), r.code);
        int step;
        memcpy(&step, r.out, sizeof step);
        ck_assert_msg(step == 0, "task %d: the worker's step %d was not refused with -EPERM", i,
                      step);
        walls_task_free(t);
    }
    walls_task_free(done);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    close(idle_pipe[1]);
    pthread_join(idle, NULL);
    close(idle_pipe[0]);
}
END_TEST

/* A child's handles sent back to its parent: the two made their entries
 * the same way from the same tables, so without the process in the handle
 * the child's would name the parent's own task. */
START_TEST(test_parent_given_child_handle)
{
#if defined(__SANITIZE_THREAD__)
    /* The child would start threads (a pool), which ThreadSanitizer
     * forbids in a child of a multi-threaded program. */
    return;
#endif
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        walls_pool *mine;
        walls_task *t = NULL;
        int ms = 1;
        if (walls_pool_create(&mine, &o) == 0 &&
            walls_submit(mine, t_sleep_ms, &ms, sizeof ms, &t) == 0) {
            ssize_t w = write(fds[1], &t, sizeof t);
            (void)w;
            struct walls_result r;
            walls_wait(t, 20000, &r);
            walls_task_free(t);
            walls_pool_destroy(mine, 0);
        }
        _exit(0);
    }
    close(fds[1]);
    walls_task *theirs = NULL;
    ssize_t got = read(fds[0], &theirs, sizeof theirs);
    close(fds[0]);
    ck_assert_int_eq(reap_child(pid), 0);
    ck_assert_int_eq(got, (ssize_t)sizeof theirs);
    /* The parent's own task, made as the child made its one. */
    int ms = 300;
    walls_task *own;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &own), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(theirs, 0, &r), -EPERM);
    ck_assert_int_eq(walls_cancel(theirs), -EPERM);
    walls_task_free(theirs); /* does nothing */
    ck_assert_int_eq(walls_wait(own, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "the parent's own task: %s", walls_status_name(r.status));
    walls_task_free(own);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(5000), 0);
}
END_TEST

/* A child's exit status, waited for (128 + signal when killed). */
static int exit_status(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Makes and destroys a pool: the calling process has its handle number
 * from then on. */
static void learn_epoch(void)
{
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = 1};
    walls_pool *p;
    if (walls_pool_create(&p, &o) != 0)
        _exit(90);
    walls_pool_destroy(p, 0);
}

/* Handles made far down the fork tree and passed up to the program are
 * refused too: no descendant, however deep, has the program's number.
 * Five generations down (each using walls), 500 children each make a pool
 * and send its handle up; the program's calls on every one of them must
 * be -EPERM. Numbers that avoided only the nearest ancestors' let about
 * four of the 500 have the program's, whose handles then read as its own
 * destroyed pools (-EBADF), or as a live one of its pools. */
START_TEST(test_deep_descendant_handles)
{
#if defined(__SANITIZE_THREAD__)
    return; /* the descendants start threads (see above) */
#endif
    enum { DEPTH = 5, CHILDREN = 500 };
    learn_epoch();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t top = fork();
    if (top == 0) {
        close(fds[0]);
        for (int depth = 1; depth < DEPTH; depth++) {
            learn_epoch();
            pid_t c = fork();
            if (c < 0)
                _exit(91);
            if (c > 0)
                _exit(exit_status(c) == 0 ? 0 : 92);
        }
        learn_epoch();
        for (int i = 0; i < CHILDREN; i++) {
            int pp[2];
            if (pipe(pp) != 0)
                _exit(93);
            pid_t c = fork();
            if (c == 0) {
                struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = 1};
                walls_pool *q = NULL;
                if (walls_pool_create(&q, &o) != 0)
                    _exit(94);
                ssize_t w = write(pp[1], &q, sizeof q);
                walls_pool_destroy(q, 0);
                _exit(w == sizeof q ? 0 : 95);
            }
            walls_pool *q = NULL;
            ssize_t got = c > 0 ? read(pp[0], &q, sizeof q) : -1;
            close(pp[0]);
            close(pp[1]);
            if (c < 0 || exit_status(c) != 0 || got != sizeof q ||
                write(fds[1], &q, sizeof q) != sizeof q)
                _exit(96);
        }
        _exit(0);
    }
    close(fds[1]);
    /* The program's own pool, live while it tries the others' handles. */
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = 1};
    walls_pool *own;
    ck_assert_int_eq(walls_pool_create(&own, &o), 0);
    int refused = 0, n = 0;
    walls_pool *q;
    while (read(fds[0], &q, sizeof q) == sizeof q) {
        walls_task *t = NULL;
        int rc = walls_submit(q, t_sleep_ms, NULL, 0, &t);
        ck_assert_msg(rc == -EPERM, "a descendant's pool handle %p: walls_submit gave %d (%s)",
                      (void *)q, rc, walls_last_error());
        refused += rc == -EPERM;
        n++;
    }
    close(fds[0]);
    ck_assert_int_eq(reap_child(top), 0);
    ck_assert_int_eq(n, CHILDREN);
    ck_assert_int_eq(refused, CHILDREN);
    ck_assert_int_eq(walls_pool_destroy(own, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_fork_child_refused, 0, 3);
    tcase_add_loop_test(tc, test_worker_given_host_handles, 0, 2);
    tcase_add_test(tc, test_reexec_worker_given_host_handles);
    tcase_add_test(tc, test_parent_given_child_handle);
    tcase_add_test(tc, test_deep_descendant_handles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
