/*
 * test-locks.c - locks that survive their holder: a task holding a lock
 * is killed (its time limit) and the next holder, the host or a task, is
 * told (-EOWNERDEAD) and the lock is healthy after; one writer and three
 * readers never see a torn update; the host of a pool made inside a task
 * keeps its lock when one of that pool's workers dies.
 *
 * Loop tests run once per placement (placements.h); a few cases make sense
 * in only some of them, and the test says so where it returns early.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

/* Takes lock 0, writes half of an update, then hangs: in = milliseconds
 * (-1: until killed), after which it lets go. */
static int t_lock_and_hang(struct walls_call *call)
{
    int ms = -1;
    if (call->in_len == sizeof ms)
        memcpy(&ms, call->in, sizeof ms);
    int rc = walls_lock_acquire(&call->locks[0], 5000);
    if (rc != 0 && rc != -EOWNERDEAD)
        return 100 - rc;
    if (call->output)
        ((uint64_t *)call->output)[0] = 1; /* word 1 would follow */
    while (ms < 0) /* nanosleep: the seccomp sandbox allows it, not pause */
        sleep(1);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    walls_lock_release(&call->locks[0]);
    return 0;
}

/* Takes lock 0; returns what walls_lock_acquire said (as a positive code). */
static int t_lock_take(struct walls_call *call)
{
    int rc = walls_lock_acquire(&call->locks[0], 5000);
    if (rc == 0 || rc == -EOWNERDEAD)
        walls_lock_release(&call->locks[0]);
    return rc == 0 ? 0 : -rc;
}

/* Writer: bumps two words of its output together under lock 0, many times. */
static int t_lock_writer(struct walls_call *call)
{
    volatile uint64_t *o = call->output;
    for (int i = 0; i < 20000; i++) {
        if (walls_lock_acquire(&call->locks[0], 5000) != 0)
            return 1;
        o[0] = o[0] + 1;
        for (volatile int spin = 0; spin < 20; spin++)
            ;
        o[1] = o[1] + 1;
        walls_lock_release(&call->locks[0]);
    }
    return 0;
}

/* Reader: under lock 0, the two words must always be equal. Returns the
 * number of torn reads seen. */
static int t_lock_reader(struct walls_call *call)
{
    const volatile uint64_t *in = call->inputs[0].ptr;
    int torn = 0;
    for (int i = 0; i < 20000; i++) {
        if (walls_lock_acquire(&call->locks[0], 5000) != 0)
            return 1000000;
        if (in[0] != in[1])
            torn++;
        walls_lock_release(&call->locks[0]);
    }
    return torn;
}

START_TEST(test_lock_holder_killed)
{
    walls_pool *pool = arena_pool(_i, ARENA, 4);
    walls_lock *locks;
    size_t n;
    ck_assert_int_eq(walls_pool_locks(pool, &locks, &n), 0);
    ck_assert_uint_eq(n, 4);
    walls_buf state;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &state), 0);
    struct walls_task_opts opts = {.output = state, .timeout_ms = 1000};
    int hang = _i == P_THREADS ? 3000 : -1; /* well past the limit, even on a slow machine */
    walls_task *t;
    ck_assert_int_eq(walls_submit_ex(pool, t_lock_and_hang, &hang, sizeof hang, &opts, &t), 0);
    /* Wait until the task holds the lock (taking it first just delays the task). */
    int rc = 0;
    for (int i = 0; i < 5000; i++) {
        rc = walls_lock_acquire(&locks[0], 0);
        if (rc == -ETIMEDOUT)
            break;
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
        usleep(1000);
    }
    ck_assert_int_eq(rc, -ETIMEDOUT);
    /* Held by the task, not by us. */
    ck_assert_int_eq(walls_lock_release(&locks[0]), -EPERM);
    struct walls_result res;
    ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
    ck_assert_msg(res.status == WALLS_TIMEOUT, "%s: %s %d", placement_names[_i],
                  walls_status_name(res.status), res.code);
    walls_task_free(t);
    if (_i == P_THREADS) {
        /* A thread cannot be killed: its task ended for us, but it holds
         * the lock until it lets go by itself; nobody died. */
        ck_assert_int_eq(walls_lock_acquire(&locks[0], 0), -ETIMEDOUT);
        ck_assert_int_eq(walls_lock_acquire(&locks[0], 10000), 0);
        ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        return;
    }
    /* The supervisor released it on reaping the holder: the next holder is told. */
    ck_assert_int_eq(walls_lock_acquire(&locks[0], 5000), -EOWNERDEAD);
    ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    /* From then on the lock is healthy, for the host and for tasks. */
    ck_assert_int_eq(walls_lock_acquire(&locks[0], 0), 0);
    ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    res = run(pool, t_lock_take, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    /* A task that finds a dead holder hears of it too. */
    hang = -1;
    res = run(pool, t_lock_and_hang, &hang, sizeof hang, &opts);
    ck_assert_int_eq(res.status, WALLS_TIMEOUT);
    res = run(pool, t_lock_take, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_FAILED);
    ck_assert_int_eq(res.code, EOWNERDEAD);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_lock_excludes)
{
    if (staged(_i))
        return; /* the writer's output is staged: readers would not see it */
    walls_pool *pool = arena_pool(_i, ARENA, 1);
    walls_buf shared;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &shared), 0);
    struct walls_task_opts wopts = {.output = shared};
    struct walls_task_opts ropts = {.inputs = &shared, .n_inputs = 1};
    walls_task *w, *r[3];
    ck_assert_int_eq(walls_submit_ex(pool, t_lock_writer, NULL, 0, &wopts, &w), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls_submit_ex(pool, t_lock_reader, NULL, 0, &ropts, &r[i]), 0);
    struct walls_result res;
    ck_assert_int_eq(walls_wait(w, 60000, &res), 0);
    ck_assert_int_eq(res.status, WALLS_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_wait(r[i], 60000, &res), 0);
        ck_assert_msg(res.status == WALLS_OK, "%s: reader %d: %s %d torn", placement_names[_i],
                      i, walls_status_name(res.status), res.code);
        walls_task_free(r[i]);
    }
    walls_task_free(w);
    const uint64_t *o = ptr_of(pool, shared);
    ck_assert_uint_eq(o[0], 20000);
    ck_assert_uint_eq(o[1], 20000);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static void *t_release_other(void *arg)
{
    return (void *)(intptr_t)walls_lock_release(arg);
}

/* Only the holding thread lets go: not another thread of its process, and
 * not a child of fork() (same token, and a copy of the holder's cached
 * thread id), which must be told -EPERM and leave the lock held. */
START_TEST(test_lock_release_by_others)
{
    walls_pool *pool = arena_pool(P_THREADS, ARENA, 1);
    walls_lock *locks;
    size_t n;
    ck_assert_int_eq(walls_pool_locks(pool, &locks, &n), 0);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(walls_lock_acquire(&locks[0], 0), 0);
        pthread_t th;
        void *rc;
        ck_assert_int_eq(pthread_create(&th, NULL, t_release_other, &locks[0]), 0);
        ck_assert_int_eq(pthread_join(th, &rc), 0);
        ck_assert_int_eq((int)(intptr_t)rc, -EPERM);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int r = walls_lock_release(&locks[0]);
            int t = walls_lock_acquire(&locks[0], 0);
            _exit(r == -EPERM && t == -ETIMEDOUT ? 0 : 1);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "a child of fork() let go of its parent's lock");
        /* Still ours, and healthy. */
        ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static int t_crash(struct walls_call *call)
{
    (void)call;
    raise(SIGSEGV);
    return 0;
}

/* Takes lock 0 for at most 300 ms: its result, the lock let go again. */
static int t_try_lock(struct walls_call *call)
{
    int rc = walls_lock_acquire(&call->locks[0], 300);
    if (rc == 0 || rc == -EOWNERDEAD)
        walls_lock_release(&call->locks[0]);
    return -rc;
}

/* A task that makes a pool of its own with a lock, holds it as that
 * pool's host, and lets one of its workers die: the lock stays its own.
 * Answers 0, or what went wrong (1xx: a call of its own; 2xx: the other
 * worker took the lock). */
static int t_nested_host(struct walls_call *call)
{
    (void)call;
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .locks = 1};
    walls_pool *inner;
    if (walls_pool_create(&inner, &o) != 0)
        return 101;
    walls_lock *locks;
    size_t n;
    int answer = 0;
    if (walls_pool_locks(inner, &locks, &n) != 0 || walls_lock_acquire(&locks[0], 0) != 0)
        answer = 102;
    walls_task *t;
    struct walls_result r;
    if (!answer && (walls_submit(inner, t_crash, NULL, 0, &t) != 0 || walls_wait(t, 20000, &r) != 0))
        answer = 103;
    else if (!answer)
        walls_task_free(t);
    if (!answer && (walls_submit(inner, t_try_lock, NULL, 0, &t) != 0 || walls_wait(t, 20000, &r) != 0))
        answer = 104;
    else if (!answer) {
        if (r.status != WALLS_FAILED || r.code != ETIMEDOUT)
            answer = 200 + (r.code > 0 && r.code < 50 ? r.code : 49);
        walls_task_free(t);
    }
    if (!answer && walls_lock_release(&locks[0]) != 0)
        answer = 105;
    walls_pool_destroy(inner, 0);
    return answer;
}

/* The host of a pool made inside a task holds its locks with the host's
 * token, not with the one it holds as a worker of the outer pool, which
 * the inner pool gives its own first worker too: when that worker died,
 * the lock its host held was let go as the worker's (the next taker got
 * -EOWNERDEAD while the host still held it, and the host's release
 * failed with -EPERM). */
START_TEST(test_lock_of_a_pool_made_in_a_task)
{
    walls_pool *outer = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(outer, t_nested_host, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "the task ended %s, code %d (1xx: its own call failed; "
                  "200 + errno: the inner task's acquire answered that, not ETIMEDOUT)",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(outer, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("arena locks");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_lock_holder_killed, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_lock_excludes, 0, NPLACEMENTS);
    tcase_add_test(tc, test_lock_release_by_others);
    tcase_add_test(tc, test_lock_of_a_pool_made_in_a_task);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
