/*
 * test-modules.c - what a worker process runs and holds: functions of a
 * library dlopen()ed after the fork server and the workers started run in
 * the workers, and a worker holds no descriptor but the standard streams,
 * its mailbox and its doorbell.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"
#include "walls.h"

#ifndef PLUGIN_PATH
#error "PLUGIN_PATH must name the test plugin"
#endif

START_TEST(test_dlopen_after_start)
{
    walls_pool *pool = proc_pool(2);
    /* Loaded after the fork server and the workers started. */
    void *lib = dlopen(PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    walls_fn *triple = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_triple");
    ck_assert_ptr_nonnull((void *)(uintptr_t)triple);
    walls_task *t[10];
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(walls_submit(pool, triple, &i, sizeof i, &t[i]), 0);
    for (int i = 0; i < 10; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "status %s code %d", walls_status_name(r.status),
                      r.code);
        int v;
        memcpy(&v, r.out, sizeof v);
        ck_assert_int_eq(v, 3 * i + 1);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
}
END_TEST

START_TEST(test_worker_descriptors)
{
    walls_pool *pool = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_fds, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    size_t n = r.out_len / sizeof(int);
    /* The standard streams, the mailbox, the doorbell, the two I/O
     * memfds and the pool's bell; nothing else. */
    for (size_t i = 0; i < n; i++) {
        int fd;
        memcpy(&fd, (const char *)r.out + i * sizeof fd, sizeof fd);
        ck_assert_msg(fd <= 7, "worker holds descriptor %d", fd);
    }
    ck_assert_uint_le(n, 8);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("modules");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dlopen_after_start);
    tcase_add_test(tc, test_worker_descriptors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
