/*
 * test-hybrid.c - hybrid placement (threads inside worker processes): tasks
 * run and a lone crash or exit() is reported with its own cause; when one
 * thread's task crashes its process, the tasks running in the process's
 * other threads end as WALLS_LOST, or run again with lost_retries.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_hybrid_basics)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 3};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_int_eq(st.placement, WALLS_HYBRID);
    ck_assert_uint_eq(st.processes, 2);
    ck_assert_uint_eq(st.threads, 3);
    walls_task *t[300];
    for (int i = 0; i < 300; i++) {
        int v[2] = {i, 7};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.attempts, 1);
        int sum;
        memcpy(&sum, r.out, sizeof sum);
        ck_assert_int_eq(sum, i + 7);
        walls_task_free(t[i]);
    }
    /* A lone exit() and a lone crash, nothing else running: their own causes. */
    walls_task *e, *c;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_exit3, NULL, 0, &e), 0);
    ck_assert_int_eq(walls_wait(e, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_EXITED);
    ck_assert_int_eq(r.code, 3);
    ck_assert_int_eq(walls_submit(pool, t_segv, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_int_eq(r.code, SIGSEGV);
    walls_task_free(e);
    walls_task_free(c);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

/* Shared with the workers through a memfd of the test process, which each
 * task maps by its /proc path (its input): the workers may be forked from
 * a re-executed fork server (the test process has threads under
 * ThreadSanitizer), which inherits no mapping of the test's. */
struct rendezvous {
    int started;
    int release;
};

static struct rendezvous *rendezvous_of(struct walls_call *call)
{
    static struct rendezvous *mapped; /* per worker process; its threads race to map it */
    struct rendezvous *rv = __atomic_load_n(&mapped, __ATOMIC_ACQUIRE);
    if (rv)
        return rv;
    char path[64] = "";
    memcpy(path, call->in, call->in_len < sizeof path - 1 ? call->in_len : sizeof path - 1);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        abort();
    void *p = mmap(NULL, sizeof *rv, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        abort();
    struct rendezvous *none = NULL;
    if (!__atomic_compare_exchange_n(&mapped, &none, p, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        munmap(p, sizeof *rv);
        return none;
    }
    return p;
}

static int hold(struct walls_call *call)
{
    struct rendezvous *rv = rendezvous_of(call);
    __atomic_fetch_add(&rv->started, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 20000 && !__atomic_load_n(&rv->release, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    return t_pid(call);
}

static int crash_when_seven_hold(struct walls_call *call)
{
    struct rendezvous *rv = rendezvous_of(call);
    for (int i = 0; i < 5000 && __atomic_load_n(&rv->started, __ATOMIC_SEQ_CST) < 7; i++)
        usleep(1000);
    usleep(20000); /* let the holders settle into their calls */
    abort();
}

static void hybrid_lost(unsigned retries, int want_lost)
{
    int memfd = memfd_create("walls-test-rendezvous", MFD_CLOEXEC);
    ck_assert_int_ge(memfd, 0);
    ck_assert_int_eq(ftruncate(memfd, sizeof(struct rendezvous)), 0);
    struct rendezvous *rv =
        mmap(NULL, sizeof *rv, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ck_assert_ptr_ne(rv, MAP_FAILED);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", getpid(), memfd);
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 4,
                                .lost_retries = retries};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 200 };
    walls_task *t[N];
    /* One task per thread: seven holders and the crasher; then the rest. */
    for (int i = 0; i < N; i++) {
        int v[2] = {i, 0};
        if (i < 8)
            ck_assert_int_eq(walls_submit(pool, i < 7 ? hold : crash_when_seven_hold, path,
                                          strlen(path), &t[i]),
                             0);
        else
            ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
    }
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t[7], 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_int_eq(r.code, SIGABRT);
    __atomic_store_n(&rv->release, 1, __ATOMIC_SEQ_CST);
    int lost = 0, ok = 0, retried = 0;
    for (int i = 0; i < N; i++) {
        if (i == 7)
            continue;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK || r.status == WALLS_LOST, "task %d: %s", i,
                      walls_status_name(r.status));
        lost += r.status == WALLS_LOST;
        ok += r.status == WALLS_OK;
        retried += r.attempts == 2;
        ck_assert_uint_le(r.attempts, retries + 1);
    }
    /* The three other threads of the crashed process were running holders. */
    ck_assert_int_eq(lost, want_lost);
    ck_assert_int_eq(ok, N - 1 - want_lost);
    ck_assert_int_eq(retried, 3 - want_lost);
    for (int i = 0; i < N; i++)
        walls_task_free(t[i]);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.by_status[WALLS_LOST], (uint64_t)want_lost);
    ck_assert_uint_eq(st.restarts, 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    munmap(rv, sizeof *rv);
    close(memfd);
}

START_TEST(test_hybrid_crash_loses_neighbours)
{
    hybrid_lost(0, 3);
}
END_TEST

START_TEST(test_hybrid_retries_lost)
{
    hybrid_lost(1, 0);
}
END_TEST

/* A stopped hybrid process ends by its own hand once each of its threads
 * leaves its loop: the pool does not wait out the two seconds after which
 * it kills workers that ignore the stop. (That fallback is what a stop
 * that hangs looks like, so the bound sits just under it.) */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_hybrid_stops_promptly)
{
    for (int round = 0; round < 5; round++) {
        struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 3};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, t_echo, "x", 1, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        walls_task_free(t);
        int64_t start = now_ms();
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        int64_t took = now_ms() - start;
        ck_assert_msg(took < 1900, "round %d: destroy took %lld ms", round, (long long)took);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hybrid");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hybrid_basics);
    tcase_add_test(tc, test_hybrid_crash_loses_neighbours);
    tcase_add_test(tc, test_hybrid_retries_lost);
    tcase_add_test(tc, test_hybrid_stops_promptly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
