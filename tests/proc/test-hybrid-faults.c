/*
 * test-hybrid-faults.c - blame when faults meet in one hybrid process: two
 * tasks faulting at the same instant, and twenty thousand mixed tasks with
 * crashes among them, each end with their own signal or as lost, never
 * with another task's signal. A task that ends its own thread, or exits
 * its process, ends as it would in a worker of one thread.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

/* Two tasks of one hybrid process that fault at the same instant: each
 * meets the other (a counter in the worker's own memory, fresh in every
 * process), then one writes through NULL and the other aborts. */
static uint32_t met;

static void meet(void)
{
    __atomic_fetch_add(&met, 1, __ATOMIC_SEQ_CST);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while (__atomic_load_n(&met, __ATOMIC_SEQ_CST) < 2 &&
           (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000000L);
}

static int meet_segv(struct walls_call *call)
{
    meet();
    return t_segv(call);
}

static int meet_abort(struct walls_call *call)
{
    meet();
    return t_abort(call);
}

START_TEST(test_hybrid_simultaneous_faults)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                .restart_limit = 100000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { ROUNDS = 300 };
    int wrong = 0, both = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* The process is up and both its threads asleep: the pair lands on
         * different threads. */
        walls_task *ready, *s, *a;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &ready), 0);
        ck_assert_int_eq(walls_wait(ready, 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(ready);
        usleep(2000);
        ck_assert_int_eq(walls_submit(pool, meet_segv, NULL, 0, &s), 0);
        ck_assert_int_eq(walls_submit(pool, meet_abort, NULL, 0, &a), 0);
        struct walls_result rs, ra;
        ck_assert_int_eq(walls_wait(s, 20000, &rs), 0);
        ck_assert_int_eq(walls_wait(a, 20000, &ra), 0);
        /* A task that faulted ends with its own signal, never the other's.
         * One may be lost: stopped by the other's death an instant before
         * its own fault. Both lost would mean a fault nobody was blamed for. */
        bool s_own = rs.status == WALLS_CRASHED && rs.code == SIGSEGV;
        bool a_own = ra.status == WALLS_CRASHED && ra.code == SIGABRT;
        bool ok = (s_own || rs.status == WALLS_LOST) && (a_own || ra.status == WALLS_LOST) &&
                  (s_own || a_own);
        both += s_own && a_own;
        if (!ok && wrong++ < 5)
            fprintf(stderr, "round %d: segv task %s/%d, abort task %s/%d\n", round,
                    walls_status_name(rs.status), rs.code, walls_status_name(ra.status), ra.code);
        walls_task_free(s);
        walls_task_free(a);
    }
    fprintf(stderr, "simultaneous faults: %d of %d rounds had both blamed on their own signal\n",
            both, ROUNDS);
    ck_assert_msg(wrong == 0, "%d of %d rounds misreported", wrong, ROUNDS);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Many mixed tasks on two hybrid processes of two threads: a task that
 * faulted ends with its own signal or (when a neighbour's fault killed the
 * process first) as lost; never with another task's signal. */
START_TEST(test_hybrid_fault_soak)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 2,
                                .restart_limit = 100000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 20000 };
    static walls_task *t[N];
    for (int i = 0; i < N; i++) {
        int v[2] = {i, 1};
        walls_fn *fn = i % 40 == 3 ? t_segv : i % 40 == 17 ? t_abort : t_add;
        ck_assert_int_eq(walls_submit(pool, fn, v, sizeof v, &t[i]), 0);
    }
    int wrong = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 60000, &r), 0);
        bool ok;
        if (i % 40 == 3 || i % 40 == 17) {
            int own = i % 40 == 3 ? SIGSEGV : SIGABRT;
            ok = (r.status == WALLS_CRASHED && r.code == own) || r.status == WALLS_LOST;
            crashed += r.status == WALLS_CRASHED;
        } else {
            ok = r.status == WALLS_OK || r.status == WALLS_LOST;
        }
        ok = ok && (r.status != WALLS_LOST || r.code == 0); /* a lost task has no code */
        if (!ok && wrong++ < 5)
            fprintf(stderr, "task %d (%s): %s/%d\n", i,
                    i % 40 == 3 ? "segv" : i % 40 == 17 ? "abort" : "add",
                    walls_status_name(r.status), r.code);
        walls_task_free(t[i]);
    }
    ck_assert_msg(wrong == 0, "%d of %d tasks misreported", wrong, N);
    ck_assert_int_gt(crashed, N / 40);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Ways a task ends its thread or its process without a fault of its own
 * thread: each ends the task as it would in a one-thread worker, and a
 * neighbour on the process's other thread runs again. */
static int end_pthread_exit(struct walls_call *call)
{
    (void)call;
    pthread_exit(NULL);
}

static int end_raw_exit(struct walls_call *call)
{
    (void)call;
    syscall(SYS_exit, 0); /* this thread only, and no destructor runs */
    return 0;
}

static int end_exit_now(struct walls_call *call)
{
    (void)call;
    _exit(3);
}

__attribute__((no_sanitize("undefined", "address", "thread"))) static void *segv_thread(void *arg)
{
    (void)arg;
    *(volatile int *)0 = 1;
    return NULL;
}

static int end_thread_segv(struct walls_call *call)
{
    (void)call;
    pthread_t t;
    if (pthread_create(&t, NULL, segv_thread, NULL) != 0)
        return -1;
    pthread_join(t, NULL);
    return 0;
}

static void *idle_thread(void *arg)
{
    char c;
    ssize_t n = read(*(int *)arg, &c, 1); /* until the pipe closes */
    (void)n;
    return NULL;
}

/* _i = 1: the program has a second thread when its first pool starts, so
 * its fork server is the program run again, from a constructor before
 * main(), and a worker's main thread is not one glibc set up for
 * pthread_exit(). */
START_TEST(test_hybrid_thread_endings)
{
    int idle_pipe[2] = {-1, -1};
    pthread_t idle;
    if (_i == 1) {
        ck_assert_int_eq(pipe(idle_pipe), 0);
        ck_assert_int_eq(pthread_create(&idle, NULL, idle_thread, &idle_pipe[0]), 0);
    }
    static const struct {
        walls_fn *fn;
        const char *name;
        enum walls_status status;
        int code;
        bool threads; /* starts a thread: NONE only (RLIMIT_NPROC, filters) */
        bool shared;  /* unseen by the worker: a neighbour may share it */
    } ends[] = {
        {end_pthread_exit, "pthread_exit()", WALLS_EXITED, 0, false, false},
        {end_raw_exit, "SYS_exit", WALLS_EXITED, 0, false, false},
        {end_exit_now, "_exit(3)", WALLS_EXITED, 3, false, true},
        {end_thread_segv, "a fault in its own thread", WALLS_CRASHED, SIGSEGV, true, true},
    };
    static const unsigned sandboxes[] = {WALLS_SANDBOX_NONE, WALLS_SANDBOX_LIMITS,
                                         WALLS_SANDBOX_SECCOMP, WALLS_SANDBOX_STRICT};
    for (size_t b = 0; b < sizeof sandboxes / sizeof sandboxes[0]; b++) {
        struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                    .restart_limit = 100000, .lost_retries = 3,
                                    .sandbox = sandboxes[b]};
        walls_pool *pool;
        int rc = walls_pool_create(&pool, &o);
        if (rc == -ENOTSUP && sandboxes[b] == WALLS_SANDBOX_STRICT) {
            fprintf(stderr, "thread endings: STRICT skipped: %s\n", walls_last_error());
            continue;
        }
        ck_assert_int_eq(rc, 0);
        for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++) {
            if (ends[e].threads && sandboxes[b] != WALLS_SANDBOX_NONE)
                continue;
            for (int round = 0; round < 20; round++) {
                /* A neighbour asleep on the other thread when it happens. */
                walls_task *nap = submit_nap(pool, 30, round);
                usleep(2000);
                walls_task *t;
                ck_assert_int_eq(walls_submit_ex(pool, ends[e].fn, NULL, 0,
                                                 &(struct walls_task_opts){.timeout_ms = -1},
                                                 &t), 0);
                struct walls_result r;
                ck_assert_msg(walls_wait(t, 20000, &r) == 0, "%s (sandbox %u) never ended",
                              ends[e].name, sandboxes[b]);
                ck_assert_msg(r.status == ends[e].status && r.code == ends[e].code,
                              "%s (sandbox %u, round %d): %s/%d", ends[e].name, sandboxes[b], round,
                              walls_status_name(r.status), r.code);
                walls_task_free(t);
                if (!ends[e].shared) {
                    expect_answer(nap, 20000, round);
                    continue;
                }
                /* No thread of the process said it ended it: every task
                 * running in it shares the cause. */
                struct walls_result rn;
                ck_assert_int_eq(walls_wait(nap, 20000, &rn), 0);
                ck_assert_msg(rn.status == WALLS_OK ||
                                  (rn.status == ends[e].status && rn.code == ends[e].code),
                              "neighbour of %s: %s/%d", ends[e].name,
                              walls_status_name(rn.status), rn.code);
                walls_task_free(nap);
            }
        }
        /* The pool still works, and stops without waiting on a lost thread. */
        walls_task *t;
        ck_assert_int_eq(walls_submit(pool, t_echo, "x", 1, &t), 0);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    /* A one-thread worker too: its only thread is its main one. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    for (int round = 0; round < 5; round++) {
        walls_task *t;
        ck_assert_int_eq(walls_submit(pool, end_pthread_exit, NULL, 0, &t), 0);
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_EXITED && r.code == 0, "processes: %s/%d",
                      walls_status_name(r.status), r.code);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    if (_i == 1) {
        close(idle_pipe[1]);
        pthread_join(idle, NULL);
        close(idle_pipe[0]);
    }
}
END_TEST

/* Blocks every signal, then sleeps: its thread cannot be stopped by a
 * neighbour's fault, which then waits for it a while before dying. */
static int deaf_nap(struct walls_call *call)
{
    (void)call;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    struct timespec ts = {0, 500 * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return 0;
}

__attribute__((no_sanitize("undefined", "address", "thread"))) static int late_segv(
    struct walls_call *call)
{
    (void)call;
    usleep(10000);
    *(volatile int *)0 = 1;
    return 0;
}

/* A task faults while a neighbour that blocks every signal keeps its
 * fault waiting, and a time limit passes meanwhile: the neighbour's
 * (limit_on_fault false) or the faulting task's own. Either way the
 * faulting task ends with its own signal; the neighbour ends with its
 * timeout, or, when the limit was the other task's, LOST (its process
 * died under it). */
static void fault_beside_deaf(int rounds, bool limit_on_fault)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                .restart_limit = 100000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    struct walls_task_opts none = {0}, limit = {.timeout_ms = limit_on_fault ? 60 : 50};
    for (int round = 0; round < rounds; round++) {
        walls_task *deaf, *segv;
        ck_assert_int_eq(
            walls_submit_ex(pool, deaf_nap, NULL, 0, limit_on_fault ? &none : &limit, &deaf), 0);
        ck_assert_int_eq(
            walls_submit_ex(pool, late_segv, NULL, 0, limit_on_fault ? &limit : &none, &segv), 0);
        struct walls_result rd, rs;
        ck_assert_int_eq(walls_wait(segv, 20000, &rs), 0);
        ck_assert_int_eq(walls_wait(deaf, 20000, &rd), 0);
        ck_assert_msg(rs.status == WALLS_CRASHED && rs.code == SIGSEGV,
                      "round %d: the faulting task ended %s/%d", round,
                      walls_status_name(rs.status), rs.code);
        enum walls_status want = limit_on_fault ? WALLS_LOST : WALLS_TIMEOUT;
        ck_assert_msg(rd.status == want, "round %d: the deaf one ended %s/%d", round,
                      walls_status_name(rd.status), rd.code);
        walls_task_free(deaf);
        walls_task_free(segv);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}

START_TEST(test_hybrid_fault_meets_neighbour_timeout)
{
    fault_beside_deaf(5, false);
}
END_TEST

/* The faulting task faulted before its own limit passed: CRASHED, not
 * TIMEOUT. */
START_TEST(test_hybrid_fault_outlives_own_limit)
{
    fault_beside_deaf(3, true);
}
END_TEST

/* A process a task forked exits (or faults) in its worker's image: that
 * is no lane's record, and no later task is blamed for it. Under ASan the
 * child aborts instead: an exit() would run the leak check over the fork
 * server's memory, which is not the child's to free. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_END() abort()
#define CHILD_ENDED(status) (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
#else
#define CHILD_END() exit(5)
#define CHILD_ENDED(status) (WIFEXITED(status) && WEXITSTATUS(status) == 5)
#endif

static int fork_exit5(struct walls_call *call)
{
    (void)call;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        CHILD_END();
    int status;
    waitpid(pid, &status, 0);
    return CHILD_ENDED(status) ? 0 : -2;
}

/* Says in the pool's shared region that it runs, then naps until its
 * process dies (or 20 s): a neighbour that is surely running. */
static int started_nap(struct walls_call *call)
{
    __atomic_store_n((int *)call->shared, 1, __ATOMIC_RELEASE);
    usleep(20 * 1000 * 1000);
    return 0;
}

START_TEST(test_hybrid_forked_child_blames_nobody)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                .restart_limit = 100000, .shared_size = 4096};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    void *shared;
    size_t shared_size;
    ck_assert_int_eq(walls_pool_shared(pool, &shared, &shared_size), 0);
    int *running = shared;
    for (int round = 0; round < 10; round++) {
        walls_task *t;
        struct walls_result r;
        /* Twice, so that both threads have forked such a child. */
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(walls_submit(pool, fork_exit5, NULL, 0, &t), 0);
            ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
            ck_assert_int_eq(r.status, WALLS_OK);
            walls_task_free(t);
        }
        /* The neighbour must be running when the fault comes: a nap the
         * thread had not yet taken would run again elsewhere and end ok. */
        __atomic_store_n(running, 0, __ATOMIC_RELAXED);
        walls_task *nap;
        ck_assert_int_eq(walls_submit(pool, started_nap, NULL, 0, &nap), 0);
        for (int ms = 0; !__atomic_load_n(running, __ATOMIC_ACQUIRE); ms++) {
            ck_assert_msg(ms < 20000, "round %d: the neighbour never started", round);
            usleep(1000);
        }
        ck_assert_int_eq(walls_submit(pool, t_segv, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGSEGV, "round %d: %s/%d", round,
                      walls_status_name(r.status), r.code);
        walls_task_free(t);
        ck_assert_int_eq(walls_wait(nap, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_LOST && r.code == 0,
                      "round %d: the neighbour ended %s/%d", round, walls_status_name(r.status),
                      r.code);
        walls_task_free(nap);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hybrid faults");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hybrid_simultaneous_faults);
    tcase_add_test(tc, test_hybrid_fault_soak);
    tcase_add_loop_test(tc, test_hybrid_thread_endings, 0, 2);
    tcase_add_test(tc, test_hybrid_fault_meets_neighbour_timeout);
    tcase_add_test(tc, test_hybrid_fault_outlives_own_limit);
    tcase_add_test(tc, test_hybrid_forked_child_blames_nobody);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
