/*
 * test-busy-host.c - a host that already runs 8 busy threads (allocating
 * and printing, so malloc and stdio locks are held at random moments)
 * creates and destroys a process pool 200 times. Workers must never be
 * forked from this multi-threaded host: the fork server is re-executed, or
 * was forked by walls_init() before the threads started. A fork of the
 * host itself would sooner or later inherit a held lock and hang.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "walls.h"

static int stop_busy; /* read and written with __atomic builtins */

static void *busy(void *arg)
{
    FILE *sink = fopen("/dev/null", "w");
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!__atomic_load_n(&stop_busy, __ATOMIC_RELAXED)) {
        size_t n = 16 + rand_r(&seed) % 4096;
        char *p = malloc(n);
        if (p) {
            memset(p, 'x', n);
            fprintf(sink, "%zu %c\n", n, p[n / 2]);
            free(p);
        }
    }
    fclose(sink);
    return NULL;
}

static void churn(int rounds)
{
    pthread_t threads[8];
    __atomic_store_n(&stop_busy, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, busy, (void *)(uintptr_t)(i + 1)), 0);
    for (int round = 0; round < rounds; round++) {
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2};
        walls_pool *pool;
        int rc = walls_pool_create(&pool, &o);
        ck_assert_msg(rc == 0, "round %d: create %d (%s)", round, rc, walls_strerror(rc));
        walls_task *t[4];
        for (int i = 0; i < 4; i++) {
            int v[2] = {round, i};
            ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
            ck_assert_int_eq(r.status, WALLS_OK);
            int sum;
            memcpy(&sum, r.out, sizeof sum);
            ck_assert_int_eq(sum, round + i);
            walls_task_free(t[i]);
        }
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    __atomic_store_n(&stop_busy, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        pthread_join(threads[i], NULL);
}

START_TEST(test_reexec_fork_server)
{
    churn(200);
    ck_assert_int_eq(wait_no_children(1000), 0);
}
END_TEST

START_TEST(test_init_before_threads)
{
    ck_assert_int_eq(walls_init(), 0);
    churn(200);
    walls_fini();
    ck_assert_int_eq(wait_no_children(1000), 0);
}
END_TEST

START_TEST(test_dlopen_in_reexec_fork_server)
{
    /* A thread first, so the fork server is a fresh execution of this
     * program; then a library loaded after it: workers must load it too. */
    pthread_t thread;
    __atomic_store_n(&stop_busy, 0, __ATOMIC_RELAXED);
    ck_assert_int_eq(pthread_create(&thread, NULL, busy, (void *)(uintptr_t)9), 0);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    void *lib = dlopen(PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    walls_fn *triple = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_triple");
    ck_assert_ptr_nonnull((void *)(uintptr_t)triple);
    for (int i = 0; i < 20; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, i % 2 ? triple : t_add, &i, sizeof i, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        if (i % 2) {
            ck_assert_int_eq(r.status, WALLS_OK);
            int v;
            memcpy(&v, r.out, sizeof v);
            ck_assert_int_eq(v, 3 * i + 1);
        } else {
            ck_assert_int_eq(r.status, WALLS_FAILED); /* t_add wants two ints */
            ck_assert_int_eq(r.code, 22);
        }
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
    __atomic_store_n(&stop_busy, 1, __ATOMIC_RELAXED);
    pthread_join(thread, NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("busy host");
    TCase *tc = tcase_create("busy host");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_reexec_fork_server);
    tcase_add_test(tc, test_init_before_threads);
    tcase_add_test(tc, test_dlopen_in_reexec_fork_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
